import { createWriteStream, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataError } from '../lib';
import { loadPreferenceData } from '../lib/data/preference-data';
import { cacheKey } from '../lib/data/token-cache';
import { HfTokenizer } from '../lib/data/tokenizer';
import { TINY_GPT2 } from './support/cli-project';

const tokenizer = HfTokenizer.fromDir(TINY_GPT2);
const row = (i: number) => JSON.stringify({ prompt: `w${10 + i} w11`, chosen: ' w3 w4', rejected: ' w5 w9' });

describe('data files are read strictly', () => {
  it('invalid UTF-8 is a row error naming file:line, never a silent replacement character', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'torch-dpo-utf8-'));
    const file = join(dir, 'train.jsonl');
    // Line 2 holds a Latin-1 "é" (0xE9), not UTF-8.
    writeFileSync(file, Buffer.concat([Buffer.from(`${row(0)}\n`), Buffer.from('{"prompt": "caf'), Buffer.from([0xe9]), Buffer.from(`", "chosen": " w3", "rejected": " w5"}\r\n${row(1)}\n`)]));
    await expect(loadPreferenceData(file, tokenizer, { cache_dir: false })).rejects.toThrow(`${file}:2: invalid UTF-8 at byte 16 of the line (save the file as UTF-8)`);
    const skipped = await loadPreferenceData(file, tokenizer, { cache_dir: false, on_invalid: 'skip' });
    expect(skipped.report.dropped).toEqual({ invalid_utf8: 1 });
    expect(skipped.pairs).toHaveLength(2);
    const array = join(dir, 'train.json');
    writeFileSync(array, Buffer.concat([Buffer.from(`[${row(0)},\n{"prompt": "caf`), Buffer.from([0xe9]), Buffer.from('"}]')]));
    await expect(loadPreferenceData(array, tokenizer, { cache_dir: false })).rejects.toThrow(`${array}:2: invalid UTF-8`);
  });

  it('says how many rows were dropped and why when none is left', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'torch-dpo-dropped-'));
    const file = join(dir, 'train.jsonl');
    writeFileSync(file, [JSON.stringify({ prompt: 'w1', chosen: ' w3' }), JSON.stringify({ prompt: 'w1', chosen: ' w3', rejected: ' w3' }), 'not json'].join('\n'));
    const error = await loadPreferenceData(file, tokenizer, { cache_dir: false, on_invalid: 'skip' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DataError);
    expect((error as Error).message).toBe(`${file}: all 3 rows were dropped (missing_field: 1, identical_pair: 1, malformed_json: 1); nothing to train on (on_invalid: error stops at the first bad row and names it)`);
  });

  it('hashes data files as streams for the cache key (files of any size)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'torch-dpo-key-'));
    const file = join(dir, 'big.jsonl');
    // 64 MiB in 1 MiB writes: the key must not depend on reading the file in one piece.
    const out = createWriteStream(file);
    const block = Buffer.alloc(1 << 20, 0x20);
    for (let i = 0; i < 64; i += 1) out.write(block);
    await new Promise((resolve) => out.end(resolve));
    const key = await cacheKey([file], { json: {}, config: {} }, {});
    expect(key).toMatch(/^[0-9a-f]{32}$/);
    writeFileSync(join(dir, 'big.jsonl'), Buffer.alloc(64 << 20, 0x20).fill(0x21, 1000, 1001));
    expect(await cacheKey([file], { json: {}, config: {} }, {})).not.toBe(key);
  });
});
