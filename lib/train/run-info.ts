import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../atomic-file';
import { fileAction } from '../file-errors';

/** One process's part of a run: a fresh start, or a resume. */
export interface RunSegment {
  started: string;
  ended?: string;
  from_step: number;
  to_step?: number;
  /** done, stopped (a signal), or failed; absent while running or when killed. */
  outcome?: 'done' | 'stopped' | 'failed';
  seconds?: number;
}

/**
 * output_dir/run.json: what the report shows beside the curves — the run's config, model, data report,
 * versions and, per start or resume, when it ran and how it ended.
 */
export interface RunInfo {
  run_name: string | null;
  versions: Record<string, string>;
  model: Record<string, unknown>;
  data: Record<string, unknown>;
  config: Record<string, unknown>;
  nonfinite_steps: number;
  segments: RunSegment[];
}

export const RUN_INFO_FILE = 'run.json';

export function readRunInfo(outputDir: string): RunInfo | null {
  const path = join(outputDir, RUN_INFO_FILE);
  if (!existsSync(path)) return null;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as RunInfo;
  } catch {
    return null; // the report still draws the curves
  }
}

/** Rank 0's record of the run, rewritten whole (atomically) when a segment starts and ends. */
export class RunInfoFile {
  private readonly info: RunInfo;
  private readonly segment: RunSegment;

  constructor(private readonly outputDir: string, current: Omit<RunInfo, 'segments' | 'nonfinite_steps'>, fromStep: number) {
    // A resume continues the record; segments of earlier processes are kept.
    const earlier = fromStep > 0 ? readRunInfo(outputDir)?.segments ?? [] : [];
    this.segment = { started: new Date().toISOString(), from_step: fromStep };
    this.info = { ...current, nonfinite_steps: 0, segments: [...earlier.filter((s) => s.from_step < fromStep), this.segment] };
    this.write();
  }

  finish(outcome: RunSegment['outcome'], step: number, nonfiniteSteps: number): void {
    const ended = new Date();
    Object.assign(this.segment, { ended: ended.toISOString(), to_step: step, outcome, seconds: (ended.getTime() - Date.parse(this.segment.started)) / 1000 });
    this.info.nonfinite_steps = nonfiniteSteps;
    this.write();
  }

  private write(): void {
    const path = join(this.outputDir, RUN_INFO_FILE);
    fileAction('write', path, () => writeFileAtomic(path, `${JSON.stringify(this.info, null, 1)}\n`));
  }
}
