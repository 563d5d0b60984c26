import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { ConfigError } from '../errors';
import { LAUNCHER_PID_VARIABLE } from './launch-link';

export const LAUNCH_USAGE = `Usage: torch-dpo launch --nproc-per-node N [--nnodes M --node-rank R --master-addr A --master-port P] -- <command> [args]

Starts N worker processes on this node with torchrun's environment (RANK, LOCAL_RANK, WORLD_SIZE,
LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT). <command> is a torch-dpo command (train, eval, …) or any
executable. Output lines are prefixed with the rank; SIGINT/SIGTERM/SIGHUP reach each worker once
(workers run in their own process group, so a terminal's Ctrl-C is not delivered twice); when a
worker fails, the others are stopped and launch exits with its code; when launch itself is killed,
torch-dpo workers stop too.
`;

const TORCH_DPO_COMMANDS = new Set(['train', 'eval', 'precompute-ref', 'export', 'demo', 'doctor']);

interface LaunchOptions {
  nprocPerNode: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  masterPort: number;
  command: string[];
}

export function parseLaunchArgs(args: string[]): LaunchOptions {
  const split = args.indexOf('--');
  if (split < 0 || split === args.length - 1) throw new ConfigError(`launch needs -- <command>\n${LAUNCH_USAGE}`);
  const flags = args.slice(0, split);
  const value = (name: string, fallback?: string) => {
    const i = flags.indexOf(name);
    if (i < 0) {
      if (fallback === undefined) throw new ConfigError(`launch needs ${name}\n${LAUNCH_USAGE}`);
      return fallback;
    }
    return flags[i + 1];
  };
  const int = (name: string, fallback?: string, min = 0) => {
    const n = Number(value(name, fallback));
    if (!Number.isInteger(n) || n < min) throw new ConfigError(`${name} must be an integer ≥ ${min}`);
    return n;
  };
  const o = {
    nprocPerNode: int('--nproc-per-node', undefined, 1), nnodes: int('--nnodes', '1', 1), nodeRank: int('--node-rank', '0'),
    masterAddr: value('--master-addr', '127.0.0.1'), masterPort: int('--master-port', '29500', 1), command: args.slice(split + 1),
  };
  if (o.nodeRank >= o.nnodes) throw new ConfigError(`--node-rank ${o.nodeRank} is not below --nnodes ${o.nnodes}`);
  if (o.masterPort > 65535) throw new ConfigError('--master-port must be 1..65535');
  return o;
}

/** Runs the workers of this node and resolves with the launch's exit code. */
export function runLaunch(args: string[], cliPath: string): Promise<number> {
  const o = parseLaunchArgs(args);
  const [first, ...rest] = o.command;
  const [exe, exeArgs] = TORCH_DPO_COMMANDS.has(first) ? [process.execPath, [cliPath, first, ...rest]] : [first, rest];
  const children: ChildProcess[] = [];
  let finished = false;
  return new Promise((resolve) => {
    let remaining = o.nprocPerNode;
    let exitCode = 0;
    const stopOthers = (signal: NodeJS.Signals) => {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill(signal);
      // Whoever ignores the polite signal is killed: no orphans survive a failed launch.
      setTimeout(() => { for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL'); }, 10000).unref();
    };
    let signalled = false;
    const forward = (signal: NodeJS.Signals) => () => {
      signalled = true;
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill(signal);
    };
    const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as NodeJS.Signals[]).map((name) => [name, forward(name)] as const);
    for (const [name, handler] of handlers) process.on(name, handler);
    for (let local = 0; local < o.nprocPerNode; local += 1) {
      const rank = o.nodeRank * o.nprocPerNode + local;
      const child = spawn(exe, exeArgs, {
        // The IPC channel tells a torch-dpo worker when the launcher is gone (see launch-link.ts);
        // detached: a process group of its own, so signals come from the launcher only.
        stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
        detached: true,
        env: {
          ...process.env, [LAUNCHER_PID_VARIABLE]: String(process.pid), RANK: String(rank), LOCAL_RANK: String(local), WORLD_SIZE: String(o.nnodes * o.nprocPerNode),
          LOCAL_WORLD_SIZE: String(o.nprocPerNode), MASTER_ADDR: o.masterAddr, MASTER_PORT: String(o.masterPort),
        },
      });
      children.push(child);
      createInterface({ input: child.stdout! }).on('line', (line) => process.stdout.write(`[rank ${rank}] ${line}\n`));
      createInterface({ input: child.stderr! }).on('line', (line) => process.stderr.write(`[rank ${rank}] ${line}\n`));
      child.on('exit', (code, signal) => {
        const failed = code !== 0;
        if (failed && !finished) {
          finished = true;
          exitCode = code ?? (signal === 'SIGINT' ? 130 : signal === 'SIGTERM' ? 143 : 1);
          // After a forwarded signal, workers exiting with 130/143 are the stop that was asked for.
          if (!signalled) {
            process.stderr.write(`launch: rank ${rank} exited with ${code ?? signal}; stopping the other workers\n`);
            stopOthers('SIGTERM');
          }
        }
        remaining -= 1;
        if (remaining === 0) {
          for (const [name, handler] of handlers) process.off(name, handler);
          resolve(exitCode);
        }
      });
    }
  });
}
