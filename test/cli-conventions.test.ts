import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { parseTrainerConfig, trainerOptions } from '../lib/train/config';
import { cli } from './support/cli-project';

const COMMANDS = ['demo', 'train', 'eval', 'precompute-ref', 'export', 'report', 'config', 'launch', 'doctor'];
const { version } = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version: string };

describe('CLI conventions', () => {
  it('--version and -V print the version', () => {
    for (const flag of ['--version', '-V']) {
      const run = cli([flag]);
      expect([run.status, run.stdout.trim()]).toEqual([0, version]);
    }
  });

  it('every subcommand has its own help, by -h, --help and help <command>', () => {
    for (const command of COMMANDS) {
      for (const args of [[command, '--help'], [command, '-h'], ['help', command]]) {
        const run = cli(args);
        expect(run.status).toBe(0);
        expect(run.stdout).toMatch(new RegExp(`^Usage: torch-dpo ${command} `));
      }
    }
    expect(cli(['--help']).stdout).toMatch(/Commands:[\s\S]*train \[options\][\s\S]*config \[options\]/);
  });

  it('usage errors are one line on stderr with exit 2', () => {
    const cases: [string[], string][] = [
      [['trian'], "torch-dpo: unknown command 'trian' (did you mean train?); torch-dpo --help lists the options"],
      [['train', '--confg', 'x.yaml'], "torch-dpo train: unknown option '--confg' (did you mean --config?); torch-dpo train --help lists the options"],
      [['train'], "torch-dpo train: required option '-c, --config <file>' not specified; torch-dpo train --help lists the options"],
      [['export', '--config', 'x.yaml', '--checkpoint', 'c', '--out', 'o', '--dtype', 'fp8'], "torch-dpo export: option '--dtype <dtype>' argument 'fp8' is invalid. Allowed choices are float32, bfloat16, float16.; torch-dpo export --help lists the options"],
      [['demo', '--dpo-steps', 'many'], "torch-dpo demo: option '--dpo-steps <n>' argument 'many' is invalid. 'many' is not a positive integer.; torch-dpo demo --help lists the options"],
      [['report'], "torch-dpo report: missing required argument 'output_dir'; torch-dpo report --help lists the options"],
    ];
    for (const [args, line] of cases) {
      const run = cli(args);
      expect([run.status, run.stderr]).toEqual([2, `${line}\n`]);
    }
  });

  it('config lists every option with its type, default and doc, generated from the schema', () => {
    const run = cli(['config']);
    expect(run.status).toBe(0);
    const options = trainerOptions();
    for (const o of options) expect(run.stdout).toMatch(new RegExp(`^${o.key} +${o.type.replace(/[|()]/g, '\\$&')}${o.default ? ` = ${o.default.replace(/[[\]().+]/g, '\\$&')}` : ''}${o.required ? ' \\(required\\)' : ''}$`, 'm'));
    expect(options.filter((o) => o.required).map((o) => o.key).sort()).toEqual(['output_dir', 'train_dataset']);
    expect(options.filter((o) => o.doc === '').map((o) => o.key)).toEqual([]);
    expect(run.stdout).toMatch(/^learning_rate +number = 0\.000001\n +Peak learning rate of AdamW\.$/m);
  });

  it('config --init writes a starter YAML that parses, and never overwrites without --force', () => {
    const dir = mkdtempSync(join(tmpdir(), 'torch-dpo-init-'));
    const path = join(dir, 'dpo.yaml');
    expect(cli(['config', '--init', path]).status).toBe(0);
    expect(parseTrainerConfig(parseYaml(readFileSync(path, 'utf8'))).loss_type).toBe('sigmoid');
    const again = cli(['config', '--init', path]);
    expect([again.status, again.stderr]).toEqual([1, `torch-dpo: ${path} exists: choose another file (config --init other.yaml) or add --force\n`]);
    expect(cli(['config', '--init', path, '--force']).status).toBe(0);
    expect(existsSync(path)).toBe(true);
  });
});
