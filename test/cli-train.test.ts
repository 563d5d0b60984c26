import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, cliProject } from './support/cli-project';

const project = (steps: number) => cliProject(steps);

describe('torch-dpo train (CLI)', () => {
  it('trains from a YAML config with --set overrides', () => {
    const { dir, config } = project(3);
    const run = spawnSync(process.execPath, [CLI, 'train', '--config', config, '--set', 'lr_scheduler_type=constant'], { encoding: 'utf8' });
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/data: 32 pairs kept of 32/);
    expect(run.stdout).toMatch(/step 3 \| epoch [\d.]+ \| loss/);
    expect(existsSync(join(dir, 'out', 'checkpoint-3', 'model.safetensors'))).toBe(true);
  });

  it('evaluates, precomputes the reference, exports and reports from the command line', () => {
    const { dir, config } = project(3);
    const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
    const extra = ['--set', `eval_dataset=${join(dir, 'train.jsonl')}`, '--set', `cache_dir=${join(dir, 'cache')}`];
    expect(cli('train', '--config', config, ...extra).status).toBe(0);
    const evaluation = cli('eval', '--config', config, ...extra, '--checkpoint', join(dir, 'out', 'checkpoint-3'));
    expect(evaluation.status).toBe(0);
    expect(JSON.parse(evaluation.stdout)).toHaveProperty('eval_rewards/accuracies');
    expect(cli('precompute-ref', '--config', config, ...extra).stdout).toMatch(/ready for 32 train and 32 eval pairs/);
    const exported = cli('export', '--config', config, '--checkpoint', join(dir, 'out', 'checkpoint-3'), '--out', join(dir, 'exp'), '--dtype', 'bfloat16');
    expect(exported.status).toBe(0);
    expect(existsSync(join(dir, 'exp', 'model.pt'))).toBe(true);
    expect(cli('report', join(dir, 'out')).stdout.trim()).toBe(join(dir, 'out', 'report.html'));
    expect(cli('report', '--help').stdout).toMatch(/Usage: torch-dpo report/);
  });

  it('exits non-zero with a one-line reason on bad config or data', () => {
    const { config } = project(3);
    const bad = spawnSync(process.execPath, [CLI, 'train', '--config', config, '--set', 'beta=-1'], { encoding: 'utf8' });
    expect(bad.status).toBe(1);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/^torch-dpo: trainer config is invalid: beta: Number must be greater than 0/);
    const missing = spawnSync(process.execPath, [CLI, 'train', '--config', config, '--set', 'train_dataset=/nope.jsonl'], { encoding: 'utf8' });
    expect(missing.stderr.trim()).toBe('torch-dpo: /nope.jsonl: no such file or folder');
  });

  it('on SIGINT finishes the step, saves a checkpoint and exits 130', async () => {
    const { dir, config } = project(500);
    const child = spawn(process.execPath, [CLI, 'train', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const code = await new Promise<number | null>((resolve) => {
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (/step 2 \|/.test(out) && !child.killed) child.kill('SIGINT');
      });
      child.on('exit', resolve);
    });
    expect(code).toBe(130);
    const saved = /checkpoint: (.*checkpoint-(\d+))/.exec(out);
    expect(saved).not.toBeNull();
    expect(existsSync(join(saved![1], 'trainer_state.json'))).toBe(true);
    expect(Number(saved![2])).toBeLessThan(500);
    expect(existsSync(join(dir, 'out', 'metrics.jsonl'))).toBe(true);
  });
});
