import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { TokenizedPair } from './tokenize-pairs';
import { writeFileAtomic } from '../atomic-file';

// A tokenized dataset on disk: "TDPOTOK1", u32 pair count, u32 token count, then per pair six i32
// (chosen offset/length/prompt length, rejected offset/length/prompt length), then every token id as
// i32, then one byte of flags per pair. Little-endian. The report sits beside it as JSON.
const MAGIC = 'TDPOTOK1';
const FORMAT_VERSION = '1';

export function defaultCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'torch-dpo', 'datasets');
}

/**
 * The cache key: the data files' bytes (streamed: files of any size), the tokenizer files and every
 * option that shapes the tokens.
 */
export async function cacheKey(files: string[], tokenizer: { json: object; config: object }, options: object): Promise<string> {
  const hash = createHash('sha256').update(FORMAT_VERSION);
  for (const file of files) {
    hash.update(file).update('\0');
    for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  }
  hash.update(JSON.stringify(tokenizer.json)).update(JSON.stringify(tokenizer.config)).update(JSON.stringify(options));
  return hash.digest('hex').slice(0, 32);
}

export function writeTokenCache(path: string, pairs: TokenizedPair[], report: object): void {
  const total = pairs.reduce((s, p) => s + p.chosen.ids.length + p.rejected.ids.length, 0);
  const header = Buffer.alloc(16);
  header.write(MAGIC, 0, 'latin1');
  header.writeUInt32LE(pairs.length, 8);
  header.writeUInt32LE(total, 12);
  const index = new Int32Array(pairs.length * 6);
  const tokens = new Int32Array(total);
  const flags = new Uint8Array(pairs.length);
  let offset = 0;
  pairs.forEach((p, i) => {
    [p.chosen, p.rejected].forEach((side, k) => {
      index[i * 6 + k * 3] = offset;
      index[i * 6 + k * 3 + 1] = side.ids.length;
      index[i * 6 + k * 3 + 2] = side.promptLength;
      tokens.set(side.ids, offset);
      offset += side.ids.length;
    });
    flags[i] = (p.boundaryMismatch ? 1 : 0) | (p.truncated ? 2 : 0);
  });
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileAtomic(path, [header, new Uint8Array(index.buffer), new Uint8Array(tokens.buffer), flags]);
  writeFileAtomic(`${path}.report.json`, JSON.stringify(report));
}

/** The cached pairs (ids are views into one buffer), or null when absent or unreadable. */
export function readTokenCache<R>(path: string): { pairs: TokenizedPair[]; report: R } | null {
  if (!existsSync(path) || !existsSync(`${path}.report.json`)) return null;
  const bytes = readFileSync(path);
  if (bytes.length < 16 || bytes.toString('latin1', 0, 8) !== MAGIC) return null;
  const count = bytes.readUInt32LE(8);
  const total = bytes.readUInt32LE(12);
  if (bytes.length !== 16 + count * 24 + total * 4 + count) return null; // truncated or foreign: rebuild
  const aligned = new Uint8Array(bytes.length - 16);
  aligned.set(bytes.subarray(16));
  const index = new Int32Array(aligned.buffer, 0, count * 6);
  const tokens = new Int32Array(aligned.buffer, count * 24, total);
  const flags = new Uint8Array(aligned.buffer, count * 24 + total * 4, count);
  const pairs: TokenizedPair[] = new Array(count);
  for (let i = 0; i < count; i += 1) {
    const side = (k: number) => ({
      ids: tokens.subarray(index[i * 6 + k * 3], index[i * 6 + k * 3] + index[i * 6 + k * 3 + 1]),
      promptLength: index[i * 6 + k * 3 + 2],
    });
    pairs[i] = { chosen: side(0), rejected: side(1), boundaryMismatch: (flags[i] & 1) !== 0, truncated: (flags[i] & 2) !== 0 };
  }
  return { pairs, report: JSON.parse(readFileSync(`${path}.report.json`, 'utf8')) as R };
}
