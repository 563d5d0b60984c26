import { join } from 'node:path';
import { ensureWritableDir } from '../file-errors';
import { recoverStaleTemporaries } from './checkpoint';
import { MetricsLog } from './metrics-log';
import { RunLock } from './run-lock';

/**
 * The output_dir of a training run, owned by this process for the run's lifetime: checked writable
 * (before any model or data is loaded), locked against a second run, cleared of temporary folders
 * that killed runs left behind.
 */
export class OutputDir {
  readonly metrics: MetricsLog;

  private constructor(readonly path: string, private readonly lock: RunLock) {
    this.metrics = new MetricsLog(join(path, 'metrics.jsonl'));
  }

  static open(path: string, notice: (message: string) => void): OutputDir {
    ensureWritableDir(path);
    const lock = RunLock.acquire(path, notice);
    try {
      for (const line of recoverStaleTemporaries(path)) notice(line);
    } catch (err) {
      lock.release();
      throw err;
    }
    return new OutputDir(path, lock);
  }

  release(): void {
    this.lock.release();
  }
}
