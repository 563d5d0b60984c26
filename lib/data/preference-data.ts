import { z } from 'zod';
import { ConfigError } from '../errors';
import { RowError, toExample, type DropReason, type PreferenceFormat } from './examples';
import { readRows } from './readers';
import type { HfTokenizer } from './tokenizer';
import { tokenizePair, type TokenizedPair } from './tokenize-pairs';

/** Data options with TRL's names; defaults here and only here. */
export const dataOptionsSchema = z
  .object({
    prompt_column: z.string().default('prompt'),
    chosen_column: z.string().default('chosen'),
    rejected_column: z.string().default('rejected'),
    max_length: z.number().int().positive().default(1024),
    max_prompt_length: z.number().int().positive().optional(),
    truncation_mode: z.enum(['keep_start', 'keep_end']).default('keep_start'),
    /** error: the first bad row stops loading with its file, line and field; skip: count and go on. */
    on_invalid: z.enum(['error', 'skip']).default('error'),
  })
  .strict();
export type DataOptionsInput = z.input<typeof dataOptionsSchema>;

interface LengthStats {
  min: number;
  mean: number;
  max: number;
}

export interface DataReport {
  files: string[];
  rowsRead: number;
  kept: number;
  dropped: Partial<Record<DropReason, number>>;
  /** How many rows were read in each format; the detected format is the one all rows share. */
  formats: Partial<Record<PreferenceFormat, number>>;
  boundaryMismatches: number;
  truncated: number;
  tokens: { prompt: LengthStats; chosen: LengthStats; rejected: LengthStats; total: number };
}

function stats(values: number[]): LengthStats {
  if (values.length === 0) return { min: 0, mean: 0, max: 0 };
  return { min: Math.min(...values), mean: values.reduce((a, b) => a + b, 0) / values.length, max: Math.max(...values) };
}

/**
 * Reads preference rows (JSONL, JSON arrays, Parquet; files, folders or globs), detects their
 * format, tokenizes them by the spec's rules and reports what was kept and dropped and why.
 */
export async function loadPreferenceData(
  paths: string | string[],
  tokenizer: HfTokenizer,
  input: DataOptionsInput = {},
): Promise<{ pairs: TokenizedPair[]; report: DataReport }> {
  const parsed = dataOptionsSchema.safeParse(input);
  if (!parsed.success) throw new ConfigError(`data options are invalid: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const o = parsed.data;
  const report: DataReport = {
    files: [], rowsRead: 0, kept: 0, dropped: {}, formats: {}, boundaryMismatches: 0, truncated: 0,
    tokens: { prompt: stats([]), chosen: stats([]), rejected: stats([]), total: 0 },
  };
  const pairs: TokenizedPair[] = [];
  const lengths = { prompt: [] as number[], chosen: [] as number[], rejected: [] as number[] };
  const files = new Set<string>();
  for await (const row of readRows(paths)) {
    report.rowsRead += 1;
    try {
      if (row instanceof RowError) throw row;
      files.add(row.source.file);
      const example = toExample(row.value, row.source, o);
      report.formats[example.format] = (report.formats[example.format] ?? 0) + 1;
      const pair = tokenizePair(example, tokenizer, { maxLength: o.max_length, maxPromptLength: o.max_prompt_length, truncationMode: o.truncation_mode });
      pairs.push(pair);
      if (pair.boundaryMismatch) report.boundaryMismatches += 1;
      if (pair.truncated) report.truncated += 1;
      lengths.prompt.push(pair.chosen.promptLength);
      lengths.chosen.push(pair.chosen.ids.length - pair.chosen.promptLength);
      lengths.rejected.push(pair.rejected.ids.length - pair.rejected.promptLength);
    } catch (err) {
      if (!(err instanceof RowError) || o.on_invalid === 'error') throw err;
      files.add(err.source.file);
      report.dropped[err.reason] = (report.dropped[err.reason] ?? 0) + 1;
    }
  }
  report.files = [...files];
  report.kept = pairs.length;
  report.tokens = {
    prompt: stats(lengths.prompt), chosen: stats(lengths.chosen), rejected: stats(lengths.rejected),
    total: pairs.reduce((s, p) => s + p.chosen.ids.length + p.rejected.ids.length, 0),
  };
  return { pairs, report };
}
