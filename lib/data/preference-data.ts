import { join } from 'node:path';
import { DataError } from '../errors';
import { parseDataOptions, type DataOptions, type DataOptionsInput } from './data-options';
import { RowError, toExample, type DropReason, type PreferenceExample, type PreferenceFormat } from './examples';
import { tokenizeAll } from './parallel-tokenize';
import { readRows, resolveDataFiles } from './readers';
import { cacheKey, defaultCacheDir, readTokenCache, writeTokenCache } from './token-cache';
import type { HfTokenizer } from './tokenizer';
import type { TokenizedPair } from './tokenize-pairs';


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
  /** Threads that tokenized (1: this thread; 0: nothing tokenized, loaded from the cache). */
  tokenizeThreads: number;
  /** hit: loaded from the token cache at `path` instead of tokenizing. */
  cache: { hit: boolean; path: string | null };
}

function stats(values: number[]): LengthStats {
  if (values.length === 0) return { min: 0, mean: 0, max: 0 };
  let min = Infinity, max = -Infinity, sum = 0;
  for (const v of values) {
    min = Math.min(min, v);
    max = Math.max(max, v);
    sum += v;
  }
  return { min, mean: sum / values.length, max };
}

/**
 * Reads preference rows (JSONL, JSON arrays, Parquet; files, folders or globs), detects their
 * format, tokenizes them by the spec's rules and reports what was kept and dropped and why.
 */
export async function loadPreferenceData(
  paths: string | string[],
  tokenizer: HfTokenizer,
  input: DataOptionsInput | DataOptions = {},
  parallel: { workerScript?: string | null; minExamples?: number } = {},
): Promise<{ pairs: TokenizedPair[]; report: DataReport }> {
  const o = parseDataOptions(input);
  const files = resolveDataFiles(paths);
  const { dataset_num_proc: _threads, cache_dir: cacheDir, ...shaping } = o;
  const cachePath = cacheDir === false ? null : join(cacheDir ?? defaultCacheDir(), `${await cacheKey(files, tokenizer, shaping)}.tokens`);
  const cached = cachePath ? readTokenCache<DataReport>(cachePath) : null;
  if (cached) return { pairs: cached.pairs, report: { ...cached.report, tokenizeThreads: 0, cache: { hit: true, path: cachePath } } };

  const report: DataReport = {
    files, rowsRead: 0, kept: 0, dropped: {}, formats: {}, boundaryMismatches: 0, truncated: 0,
    tokens: { prompt: stats([]), chosen: stats([]), rejected: stats([]), total: 0 }, tokenizeThreads: 1, cache: { hit: false, path: cachePath },
  };
  // Rows in file order: an example to tokenize, or the error that stopped it.
  const slots: (RowError | number)[] = [];
  const examples: PreferenceExample[] = [];
  for await (const row of readRows(files)) {
    report.rowsRead += 1;
    if (row instanceof RowError) {
      if (o.on_invalid === 'error') throw row;
      slots.push(row);
      continue;
    }
    try {
      const example = toExample(row.value, row.source, o);
      report.formats[example.format] = (report.formats[example.format] ?? 0) + 1;
      slots.push(examples.length);
      examples.push(example);
    } catch (err) {
      if (!(err instanceof RowError) || o.on_invalid === 'error') throw err;
      slots.push(err);
    }
  }
  const { results, threads } = await tokenizeAll(examples, tokenizer, { maxLength: o.max_length, maxPromptLength: o.max_prompt_length, maxCompletionLength: o.max_completion_length, truncationMode: o.truncation_mode }, { threads: o.dataset_num_proc, ...parallel });
  const pairs: TokenizedPair[] = [];
  const lengths = { prompt: [] as number[], chosen: [] as number[], rejected: [] as number[] };
  for (const slot of slots) {
    const result = typeof slot === 'number' ? results[slot] : null;
    const error = slot instanceof RowError ? slot : result && 'error' in result ? new RowError(result.error.reason, result.error.source, result.error.field, result.error.detail) : null;
    if (error) {
      if (o.on_invalid === 'error') throw error;
      report.dropped[error.reason] = (report.dropped[error.reason] ?? 0) + 1;
      continue;
    }
    const pair = (result as { pair: TokenizedPair }).pair;
    pairs.push(pair);
    if (pair.boundaryMismatch) report.boundaryMismatches += 1;
    if (pair.truncated) report.truncated += 1;
    lengths.prompt.push(pair.chosen.promptLength);
    lengths.chosen.push(pair.chosen.ids.length - pair.chosen.promptLength);
    lengths.rejected.push(pair.rejected.ids.length - pair.rejected.promptLength);
  }
  report.kept = pairs.length;
  if (pairs.length === 0) {
    const where = files.join(', ');
    if (report.rowsRead === 0) throw new DataError(`${where}: no rows; nothing to train on`);
    const reasons = Object.entries(report.dropped).map(([reason, n]) => `${reason}: ${n}`).join(', ');
    throw new DataError(`${where}: all ${report.rowsRead} rows were dropped (${reasons}); nothing to train on (on_invalid: error stops at the first bad row and names it)`);
  }
  report.tokenizeThreads = threads;
  report.tokens = {
    prompt: stats(lengths.prompt), chosen: stats(lengths.chosen), rejected: stats(lengths.rejected),
    total: pairs.reduce((s, p) => s + p.chosen.ids.length + p.rejected.ids.length, 0),
  };
  if (cachePath) writeTokenCache(cachePath, pairs, report);
  return { pairs, report };
}
