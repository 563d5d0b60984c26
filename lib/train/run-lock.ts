import { linkSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../errors';
import { fileAction } from '../file-errors';
import { isProcessAlive, processStartTime } from './process-liveness';

export const LOCK_FILE = 'torch-dpo.lock';

export interface LockHolder {
  pid: number;
  host: string;
  /** ISO time the run took the lock. */
  started: string;
  /** The process's start time (see processStartTime), to tell a reused pid from the holder. */
  processStart: string | null;
}

/**
 * One run per output_dir: a lock file holding the pid, host and start of the run that owns the folder.
 * It is created atomically (a complete file hard-linked into place: two runs cannot both succeed); a
 * lock whose process is gone on this host is taken over with a notice; a live one is refused.
 */
export class RunLock {
  private released = false;

  private constructor(readonly path: string, readonly holder: LockHolder) {}

  static acquire(outputDir: string, notice: (message: string) => void = () => {}): RunLock {
    const path = join(outputDir, LOCK_FILE);
    const holder: LockHolder = { pid: process.pid, host: hostname(), started: new Date().toISOString(), processStart: processStartTime(process.pid) };
    const temporary = `${path}.${process.pid}.new`;
    fileAction('write the lock file', temporary, () => writeFileSync(temporary, `${JSON.stringify(holder)}\n`));
    try {
      for (let attempt = 0; attempt < 5; attempt += 1) {
        try {
          linkSync(temporary, path);
          return new RunLock(path, holder);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        }
        const other = readHolder(path);
        if (other && holderIsRunning(other)) {
          const where = other.host === holder.host ? `pid ${other.pid}` : `pid ${other.pid} on host ${other.host}`;
          const advice = other.host === holder.host ? 'stop that run or choose another output_dir' : `if that run is over, delete ${path}`;
          throw new ConfigError(`output_dir ${outputDir} is in use by another torch-dpo run (${where}, since ${other.started}): ${advice}`);
        }
        // The holder is gone: move its lock aside under a name of our own (one taker wins), then retry.
        try {
          renameSync(path, `${path}.stale-${process.pid}`);
          rmSync(`${path}.stale-${process.pid}`, { force: true });
          notice(other ? `taking over ${path}: its run (pid ${other.pid}, since ${other.started}) is no longer running` : `replacing the unreadable lock file ${path}`);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
      }
      throw new ConfigError(`output_dir ${outputDir}: could not take ${path} (other runs keep taking it)`);
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      throw new ConfigError(`cannot take the lock ${path}: ${(err as Error).message}`, { cause: err });
    } finally {
      rmSync(temporary, { force: true });
    }
  }

  /** Removes the lock file if it is still this run's. Idempotent. */
  release(): void {
    if (this.released) return;
    this.released = true;
    const current = readHolder(this.path);
    if (current && current.pid === this.holder.pid && current.host === this.holder.host) rmSync(this.path, { force: true });
  }
}

function readHolder(path: string): LockHolder | null {
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as LockHolder;
    return Number.isInteger(parsed.pid) && typeof parsed.host === 'string' ? parsed : null;
  } catch {
    return null;
  }
}

/** A holder on another host cannot be checked and counts as running; here, its pid must be alive and the same process. */
function holderIsRunning(other: LockHolder): boolean {
  if (other.host !== hostname()) return true;
  if (!isProcessAlive(other.pid)) return false;
  const start = processStartTime(other.pid);
  return other.processStart === null || start === null || start === other.processStart;
}
