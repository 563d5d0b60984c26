import { writeSync } from 'node:fs';

/** Set by `torch-dpo launch` for its workers: the launcher's pid, which also gives them an IPC channel. */
export const LAUNCHER_PID_VARIABLE = 'TORCH_DPO_LAUNCHER_PID';

/**
 * In a worker started by `torch-dpo launch`: when the launcher disappears (killed with -9, its machine
 * session gone) the IPC channel closes and this worker ends at once, so no worker of the run
 * survives its launcher. The channel does not keep the worker alive otherwise.
 */
export function exitWithLauncher(): void {
  const launcher = process.env[LAUNCHER_PID_VARIABLE];
  if (!launcher || !process.channel) return;
  process.channel.unref();
  process.on('disconnect', () => {
    writeSync(2, `torch-dpo: the launcher (pid ${launcher}) is gone: this worker (pid ${process.pid}) stops now\n`);
    process.kill(process.pid, 'SIGKILL');
  });
}
