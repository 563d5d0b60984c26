import { hostname } from 'node:os';
import { join } from 'node:path';
import { TensorBoardWriter } from '../report/tensorboard';
import type { OutputDir } from './output-dir';
import { averageRecords, prefixed, type LogRecord } from './train-records';

/** HF's default logging_dir name: runs/<Mon><DD>_<HH>-<MM>-<SS>_<host>, one per run. */
export function defaultRunDir(outputDir: string, now = new Date()): string {
  const month = now.toLocaleString('en-US', { month: 'short' });
  const two = (n: number) => String(n).padStart(2, '0');
  return join(outputDir, 'runs', `${month}${two(now.getDate())}_${two(now.getHours())}-${two(now.getMinutes())}-${two(now.getSeconds())}_${hostname()}`);
}

/**
 * Where a run's metrics go: the window of step records averaged at each log, metrics.jsonl, TensorBoard
 * and the log history (HF's log_history: training logs and evaluations) that checkpoints keep. Only
 * rank 0 has an output; the other ranks keep nothing.
 */
export class RunLog {
  /** Training logs and evaluation results in order, as HF's log_history. */
  logHistory: Record<string, number>[] = [];
  private window: LogRecord[] = [];
  private readonly tensorboard: TensorBoardWriter | null;

  constructor(private readonly output: OutputDir | null, tensorboardDir: string | null) {
    this.tensorboard = output && tensorboardDir ? new TensorBoardWriter(tensorboardDir) : null;
  }

  /** Where TensorBoard event files go, when they are written. */
  get tensorboardPath(): string | null {
    return this.tensorboard?.path ?? null;
  }

  /** The training logs of the history (what TrainResult.history reports). */
  get history(): LogRecord[] {
    return this.logHistory.filter((r) => 'loss' in r) as LogRecord[];
  }

  /** A finite step's record, averaged into the next log. */
  add(record: LogRecord): void {
    this.window.push(record);
  }

  /** Averages the window into one log record, written where logs go; null when the window is empty. */
  flush(latest: Partial<LogRecord>): LogRecord | null {
    if (this.window.length === 0) return null;
    const averaged = { ...averageRecords(this.window), ...latest } as LogRecord;
    this.window = [];
    if (!this.output) return averaged;
    this.logHistory.push(averaged);
    this.output.metrics.append(averaged);
    this.tensorboard?.scalars(averaged.step, prefixed('train/', averaged));
    return averaged;
  }

  /** An evaluation's eval_-prefixed metrics at `step`. */
  addEval(step: number, epoch: number, metrics: Record<string, number>): void {
    if (!this.output) return;
    const row = { ...metrics, epoch, step };
    this.logHistory.push(row);
    this.output.metrics.append(row);
    this.tensorboard?.scalars(step, Object.fromEntries(Object.entries(metrics).map(([k, v]) => [`eval/${k.replace(/^eval_/, '')}`, v])));
  }
}
