import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';

// Fresh CPU memory is expensive on VMs (first-touch page faults): glibc hands big tensors back to the
// kernel on every free, so each training step faults them in again. jemalloc told to keep freed
// memory made DPO steps ~1.7× faster here (bench:train). A caching allocator inside the addon is
// the lasting fix; until then the CLI re-executes itself with jemalloc when the system has it.
const JEMALLOC = ['/usr/lib/x86_64-linux-gnu/libjemalloc.so.2', '/usr/lib/aarch64-linux-gnu/libjemalloc.so.2', '/usr/lib64/libjemalloc.so.2'];
const MALLOC_CONF = 'dirty_decay_ms:-1,muzzy_decay_ms:-1';

/** Environment additions that switch the process to a retaining jemalloc, or null to stay as is. */
export function allocatorEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> | null {
  if (env.TORCH_DPO_ALLOCATOR === 'system' || (env.LD_PRELOAD ?? '').includes('jemalloc')) return null;
  const lib = JEMALLOC.find((p) => existsSync(p));
  if (!lib) return null;
  return { LD_PRELOAD: [lib, env.LD_PRELOAD].filter(Boolean).join(':'), MALLOC_CONF: env.MALLOC_CONF ?? MALLOC_CONF, TORCH_DPO_ALLOCATOR: 'jemalloc' };
}

/**
 * Runs this same command again under jemalloc, forwarding SIGINT/SIGTERM, and resolves with the
 * child's exit code; null when no re-execution is wanted.
 */
export function reexecWithAllocator(argv: string[]): Promise<number> | null {
  const extra = allocatorEnv();
  if (!extra) return null;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...process.execArgv, ...argv], { stdio: 'inherit', env: { ...process.env, ...extra } });
    const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
    const onInt = forward('SIGINT');
    const onTerm = forward('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
    child.on('exit', (code, signal) => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      resolve(code ?? (signal === 'SIGINT' ? 130 : signal === 'SIGTERM' ? 143 : 1));
    });
  });
}
