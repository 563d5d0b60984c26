import { createReadStream, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { DataError } from '../errors';
import { RowError, type RowSource } from './examples';

export interface RawRow {
  value: unknown;
  source: RowSource;
}

const EXTENSIONS = new Set(['.jsonl', '.json', '.parquet']);

function globToRegExp(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]');
  return new RegExp(`^${escaped}$`);
}

/** Data files for a file, a folder (its .jsonl/.json/.parquet shards) or a glob of file names. */
export function resolveDataFiles(paths: string | string[]): string[] {
  const files: string[] = [];
  for (const path of Array.isArray(paths) ? paths : [paths]) {
    if (/[*?]/.test(basename(path))) {
      const dir = dirname(path);
      if (!existsSync(dir)) throw new DataError(`${path}: folder ${dir} does not exist`);
      const re = globToRegExp(basename(path));
      const hits = readdirSync(dir).filter((f) => re.test(f)).sort().map((f) => join(dir, f));
      if (hits.length === 0) throw new DataError(`${path}: no file matches`);
      files.push(...hits);
    } else if (!existsSync(path)) {
      throw new DataError(`${path}: no such file or folder`);
    } else if (statSync(path).isDirectory()) {
      const hits = readdirSync(path).filter((f) => EXTENSIONS.has(extname(f))).sort().map((f) => join(path, f));
      if (hits.length === 0) throw new DataError(`${path}: no .jsonl, .json or .parquet files in this folder`);
      files.push(...hits);
    } else {
      files.push(path);
    }
  }
  for (const f of files) {
    if (!EXTENSIONS.has(extname(f))) throw new DataError(`${f}: unsupported data file type (use .jsonl, .json or .parquet)`);
  }
  return files.map((f) => resolve(f));
}

async function* readJsonl(file: string): AsyncGenerator<RawRow | RowError> {
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  let line = 0;
  for await (const text of lines) {
    line += 1;
    if (text.trim() === '') continue;
    try {
      yield { value: JSON.parse(text), source: { file, line } };
    } catch (err) {
      yield new RowError('malformed_json', { file, line }, null, `malformed JSON (${(err as Error).message})`);
    }
  }
}

function* readJsonArray(file: string): Generator<RawRow> {
  let rows: unknown;
  try {
    rows = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new DataError(`${file}: malformed JSON (${(err as Error).message}); one object per line needs the .jsonl extension`);
  }
  if (!Array.isArray(rows)) throw new DataError(`${file}: a .json data file must hold an array of rows`);
  for (const [i, value] of rows.entries()) yield { value, source: { file, line: i + 1 } };
}

async function* readParquet(file: string): AsyncGenerator<RawRow> {
  // hyparquet is ESM-only; Node ≥ 20.19 loads it from CommonJS.
  const { parquetReadObjects } = await import('hyparquet');
  const bytes = readFileSync(file);
  let rows: Record<string, unknown>[];
  try {
    rows = await parquetReadObjects({ file: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) });
  } catch (err) {
    throw new DataError(`${file}: not a readable Parquet file (${(err as Error).message})`);
  }
  for (const [i, value] of rows.entries()) yield { value, source: { file, line: i + 1 } };
}

/**
 * Every row of the data files in order, with its file and line. Malformed JSONL lines come through
 * as RowError values so that the caller's on_invalid policy decides; other unreadable files throw.
 */
export async function* readRows(paths: string | string[]): AsyncGenerator<RawRow | RowError> {
  for (const file of resolveDataFiles(paths)) {
    const ext = extname(file);
    if (ext === '.jsonl') yield* readJsonl(file);
    else if (ext === '.json') yield* readJsonArray(file);
    else yield* readParquet(file);
  }
}
