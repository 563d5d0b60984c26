import { createReadStream, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
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

// Strict: a byte sequence that is not UTF-8 is an error naming its line, never a silent U+FFFD.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** The file's lines as bytes (without \n or \r\n), streamed: files of any size. */
async function* byteLines(file: string): AsyncGenerator<Buffer> {
  let rest = Buffer.alloc(0);
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
    const data = rest.length > 0 ? Buffer.concat([rest, chunk as Buffer]) : (chunk as Buffer);
    let start = 0;
    for (let newline = data.indexOf(10, start); newline >= 0; newline = data.indexOf(10, start)) {
      const end = newline > start && data[newline - 1] === 13 ? newline - 1 : newline;
      yield data.subarray(start, end);
      start = newline + 1;
    }
    rest = Buffer.from(data.subarray(start));
  }
  if (rest.length > 0) yield rest;
}

/** The first byte that is not valid UTF-8 (0-based), for the message. */
function firstInvalidByte(bytes: Uint8Array): number {
  let good = 0;
  for (let end = 1; end <= bytes.length; end += 1) {
    try {
      strictUtf8.decode(bytes.subarray(good, end));
      good = end;
    } catch {
      if (end - good >= 4) return good;
    }
  }
  return good;
}

async function* readJsonl(file: string): AsyncGenerator<RawRow | RowError> {
  let line = 0;
  for await (const bytes of byteLines(file)) {
    line += 1;
    let text: string;
    try {
      text = strictUtf8.decode(bytes);
    } catch {
      yield new RowError('invalid_utf8', { file, line }, null, `invalid UTF-8 at byte ${firstInvalidByte(bytes) + 1} of the line (save the file as UTF-8)`);
      continue;
    }
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
  const bytes = readFileSync(file);
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    const at = firstInvalidByte(bytes);
    const line = bytes.subarray(0, at).filter((b) => b === 10).length + 1;
    throw new DataError(`${file}:${line}: invalid UTF-8 at byte ${at + 1} of the file (save the file as UTF-8)`);
  }
  try {
    rows = JSON.parse(text);
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
