import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../atomic-file';
import { DataError } from '../errors';
import { faultPoint } from '../fault-point';
import { fileAction } from '../file-errors';

export type MetricsRow = Record<string, number>;

/**
 * The rows of a metrics.jsonl text. Only the last line may be torn (a write cut short by a kill or a
 * full disk): it is left out and reported; a bad line anywhere else is a DataError naming file:line.
 */
export function parseMetricsLines(text: string, file: string): { rows: MetricsRow[]; torn: string | null } {
  const lines = text.split('\n');
  const rows: MetricsRow[] = [];
  let torn: string | null = null;
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    try {
      rows.push(JSON.parse(line) as MetricsRow);
    } catch (err) {
      const isLast = lines.slice(i + 1).every((l) => !l.trim());
      if (!isLast) throw new DataError(`${file}:${i + 1}: not a JSON record (${(err as Error).message})`);
      torn = `${file}:${i + 1}: the last line is incomplete (${line.length} characters, an interrupted write); it is left out`;
    }
  });
  return { rows, torn };
}

/** output_dir/metrics.jsonl: one JSON record per line, appended as training goes. */
export class MetricsLog {
  constructor(readonly path: string) {}

  /** Appends one record; a failing disk becomes a FileError naming the file and step. */
  append(record: MetricsRow): void {
    fileAction('append to', this.path, () => {
      faultPoint('metrics:append');
      appendFileSync(this.path, `${JSON.stringify(record)}\n`);
    }, `at step ${record.step}`);
  }

  /**
   * Makes the file end where training (re)starts: drops a torn last line and every row of a step after
   * `step` (left by a run that stopped after its last checkpoint). Returns what was dropped.
   */
  truncateAfter(step: number): { torn: string | null; dropped: number } {
    if (!existsSync(this.path)) return { torn: null, dropped: 0 };
    const { rows, torn } = parseMetricsLines(fileAction('read', this.path, () => readFileSync(this.path, 'utf8')), this.path);
    const kept = rows.filter((r) => !(r.step > step));
    const dropped = rows.length - kept.length;
    if (dropped > 0 || torn) {
      fileAction('rewrite', this.path, () => writeFileAtomic(this.path, kept.map((r) => `${JSON.stringify(r)}\n`).join('')), `at step ${step}`);
    }
    return { torn, dropped };
  }
}
