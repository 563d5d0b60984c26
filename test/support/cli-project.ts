import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// The compiled CLI (scripts/setup.sh builds dist/ before the tests run).
export const CLI = join(__dirname, '..', '..', 'dist', 'cli', 'main.js');
export const TINY_GPT2 = join(__dirname, '..', 'fixtures', 'tiny-gpt2');

/** A folder with 32 training pairs for the tiny GPT-2 fixture and a config training `steps` steps. */
export function cliProject(steps: number, extra: string[] = []): { dir: string; config: string; out: string } {
  const dir = mkdtempSync(join(tmpdir(), 'torch-dpo-cli-'));
  const rows = Array.from({ length: 32 }, (_, i) => ({ prompt: `w${10 + (i % 20)} w11`, chosen: ' w3 w4', rejected: ' w5 w9' }));
  writeFileSync(join(dir, 'train.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n'));
  const config = join(dir, 'config.yaml');
  writeFileSync(config, [`model_name_or_path: ${TINY_GPT2}`, `train_dataset: ${join(dir, 'train.jsonl')}`, `output_dir: ${join(dir, 'out')}`,
    `max_steps: ${steps}`, 'logging_steps: 1', 'per_device_train_batch_size: 2', 'cache_dir: false', 'learning_rate: 0.001', ...extra].join('\n'));
  return { dir, config, out: join(dir, 'out') };
}

/** Runs the CLI to its end. */
export function cli(args: string[], env: NodeJS.ProcessEnv = {}): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
}

export interface RunningCli {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves when stdout or stderr has matched the pattern. */
  waitFor: (pattern: RegExp) => Promise<void>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts the CLI in a process group of its own (as a terminal job), so that tests can signal the group. */
export function startCli(args: string[], env: NodeJS.ProcessEnv = {}): RunningCli {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, ...env } });
  let out = '';
  let err = '';
  const waiters: { pattern: RegExp; resolve: () => void }[] = [];
  const check = () => {
    for (const w of [...waiters]) {
      if (w.pattern.test(out) || w.pattern.test(err)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  };
  child.stdout!.on('data', (chunk: Buffer) => { out += chunk.toString(); check(); });
  child.stderr!.on('data', (chunk: Buffer) => { err += chunk.toString(); check(); });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    waitFor: (pattern) => new Promise<void>((resolve, reject) => {
      waiters.push({ pattern, resolve });
      check();
      void exit.then(() => setTimeout(() => reject(new Error(`exited before ${pattern}:\n${out}\n${err}`)), 50));
    }),
    exit,
  };
}

/** Sends a signal to the process group the child leads (as Ctrl-C in a terminal or systemd would). */
export function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  process.kill(-child.pid!, signal);
}

/** The rows of output_dir/metrics.jsonl with a training loss. */
export function lossRows(out: string): { step: number; loss: number; nonfinite_steps?: number }[] {
  return readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((r) => 'loss' in r);
}

/** Checkpoint folders and temporary (dot) folders of output_dir. */
export function checkpointNames(out: string): { checkpoints: string[]; temporaries: string[] } {
  const names = existsSync(out) ? readdirSync(out) : [];
  return {
    checkpoints: names.filter((n) => n.startsWith('checkpoint-')).sort((a, b) => Number(a.slice(11)) - Number(b.slice(11))),
    temporaries: names.filter((n) => n.startsWith('.checkpoint-')),
  };
}

/** Pids of live processes whose environment holds `entry` (e.g. a launcher's pid variable). */
export function processesWithEnv(entry: string): number[] {
  return liveProcessesWhere((pid) => readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(entry));
}

/** Pids of live processes with `argument` among their command-line arguments (e.g. a config path). */
export function processesWithArgument(argument: string): number[] {
  return liveProcessesWhere((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(argument));
}

function liveProcessesWhere(test: (pid: string) => boolean): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const status = readFileSync(`/proc/${name}/status`, 'utf8');
      if (/^State:\s+Z/m.test(status)) continue; // a zombie is dead, only not yet reaped
      if (test(name)) pids.push(Number(name));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return pids;
}
