import { TorchDpoError } from '../errors';

export interface TrainResult {
  steps: number;
  history: LogRecord[];
  stopped: 'done' | 'aborted';
  /** Steps skipped because of a non-finite loss or gradient (whole run). */
  nonfiniteSteps: number;
  /** The newest checkpoint of the run, or null when none was written. */
  checkpoint: string | null;
}

export interface LogRecord {
  step: number;
  epoch: number;
  learning_rate: number;
  grad_norm: number;
  loss: number;
  num_tokens: number;
  tokens_per_second: number;
  step_seconds: number;
  [metric: string]: number;
}

/** A stop was asked for (a signal) before training started: nothing was trained, nothing saved. */
export class StoppedBeforeTrainingError extends TorchDpoError {
  constructor() {
    super('stopped before training started: no checkpoint written', 'ERR_STOPPED');
  }
}

/** Stops a run: too many non-finite steps in a row. The last good state is what was saved. */
export class TrainingDivergedError extends TorchDpoError {
  constructor(message: string) {
    super(message, 'ERR_DIVERGED');
  }
}

/** A record's metrics under a prefix (TensorBoard tags), without the step. */
export function prefixed(prefix: string, record: LogRecord): Record<string, number> {
  return Object.fromEntries(Object.entries(record).filter(([k]) => k !== 'step').map(([k, v]) => [`${prefix}${k}`, v]));
}

/** Metrics averaged over the logging interval; counters and the step keep their latest value. */
export function averageRecords(records: LogRecord[]): LogRecord {
  const last = records[records.length - 1];
  const out = { ...last };
  for (const key of Object.keys(last)) {
    if (['step', 'epoch', 'learning_rate', 'num_tokens', 'nonfinite_steps'].includes(key)) continue;
    out[key] = records.reduce((s, r) => s + r[key], 0) / records.length;
  }
  return out;
}
