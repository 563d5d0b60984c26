import { writeSync } from 'node:fs';

/**
 * Deterministic crash points for tests of crash safety: TORCH_DPO_FAULT_POINT=<name>[@<n>][:<action>]
 * makes the n-th (default: first) arrival at `faultPoint(name)` in this process
 * - kill the process with SIGKILL (default action `kill`): what a kill -9 or a lost machine does, or
 * - throw an fs error of that code (action `ENOSPC`, `EIO`, …): what a full or failing disk does, or
 * - pause 3 s (action `pause`) after printing "fault point <name> reached" to stderr, so that a test
 *   can send signals while the process is exactly there (they are handled when the pause ends).
 * Unset (always, outside tests) it costs one environment lookup.
 */
const counts = new Map<string, number>();

export function faultPoint(name: string): void {
  const spec = process.env.TORCH_DPO_FAULT_POINT;
  if (!spec) return;
  const match = /^(.+?)(?:@(\d+))?(?::(kill|pause|E[A-Z]+))?$/.exec(spec);
  if (!match || match[1] !== name) return;
  const seen = (counts.get(name) ?? 0) + 1;
  counts.set(name, seen);
  if (seen !== Number(match[2] ?? 1)) return;
  const action = match[3] ?? 'kill';
  if (action === 'pause') {
    writeSync(2, `torch-dpo: fault point ${name} reached (pausing 3 s)\n`);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 3000);
    return;
  }
  if (action === 'kill') {
    process.kill(process.pid, 'SIGKILL');
    // SIGKILL to oneself is delivered before kill() returns; never carry on past a fault point.
    for (;;) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000);
  }
  throw Object.assign(new Error(`${action}: fault injected at ${name} (TORCH_DPO_FAULT_POINT)`), { code: action, syscall: 'write' });
}
