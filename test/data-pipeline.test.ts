import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { ConfigError, DataError } from '../lib';
import { collate } from '../lib/data/collate';
import { loadPreferenceData } from '../lib/data/preference-data';
import { BatchSampler, prefetch } from '../lib/data/sampler';
import { HfTokenizer } from '../lib/data/tokenizer';
import { qwen3Tokenizer } from './support/qwen3';

const tok = qwen3Tokenizer();
const dir = () => mkdtempSync(join(tmpdir(), 'torch-dpo-data-'));
const jsonl = (rows: unknown[]) => rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n');
const good = (i: number) => ({ prompt: `Question ${i}?`, chosen: ` Answer ${i}.`, rejected: ` Wrong ${i}.` });

describe('reading', () => {
  it('reads JSONL, JSON arrays and Parquet, from files, folders and globs, with column mapping', async () => {
    const d = dir();
    writeFileSync(join(d, 'a.jsonl'), jsonl([good(1), good(2)]));
    writeFileSync(join(d, 'b.json'), JSON.stringify([good(3)]));
    const columns = { question: ['Q4?', 'Q5?'], good: [' yes', ' sure'], bad: [' no', ' never'] };
    const buffer = parquetWriteBuffer({ columnData: Object.entries(columns).map(([name, data]) => ({ name, data })) });
    const pq = join(d, 'mapped.parquet');
    writeFileSync(pq, Buffer.from(buffer));
    const folder = await loadPreferenceData(join(d), tok, { on_invalid: 'skip', cache_dir: false });
    expect(folder.report.rowsRead).toBe(5);
    expect(folder.report.kept).toBe(3); // the Parquet rows use other column names
    expect(folder.report.dropped).toEqual({ missing_field: 2 });
    const mapped = await loadPreferenceData(pq, tok, { prompt_column: 'question', chosen_column: 'good', rejected_column: 'bad', cache_dir: false });
    expect(mapped.report).toMatchObject({ kept: 2, formats: { standard: 2 } });
    const glob = await loadPreferenceData(join(d, '*.json*'), tok, { cache_dir: false });
    expect(glob.report.files.map((f) => f.split('/').pop())).toEqual(['a.jsonl', 'b.json']);
    expect(glob.report.tokens.total).toBeGreaterThan(0);
  });

  it('names file, line and field for every kind of bad row; skip counts each reason', async () => {
    const d = dir();
    const rows = [
      good(1),
      '{"prompt": "broken", ',
      { prompt: 'P', chosen: 'c' },
      { prompt: 'P', chosen: 5, rejected: 'r' },
      { prompt: 'P', chosen: '', rejected: 'r' },
      { prompt: 'P', chosen: ' same', rejected: ' same' },
      { prompt: [{ role: 'user', content: 'Hi' }], chosen: [{ role: 'user', content: 'x' }], rejected: [{ role: 'assistant', content: 'y' }] },
      { prompt: [{ role: 'wizard', content: 'Hi' }], chosen: [{ role: 'assistant', content: 'x' }], rejected: [{ role: 'assistant', content: 'y' }] },
      good(2),
    ];
    const file = join(d, 'bad.jsonl');
    writeFileSync(file, jsonl(rows));
    const expectations: [number, RegExp][] = [
      [2, /bad\.jsonl:2: malformed JSON/],
      [3, /bad\.jsonl:3 field "rejected": is missing/],
      [4, /bad\.jsonl:4 field "chosen": must be a string/],
      [5, /bad\.jsonl:5 field "chosen": the chosen completion is empty/],
      [6, /bad\.jsonl:6 field "rejected": chosen and rejected are identical/],
      [7, /bad\.jsonl:7 field "chosen": has no assistant turn/],
      [8, /bad\.jsonl:8 field "prompt\[0\]\.role": unknown role "wizard"/],
    ];
    for (const [line, message] of expectations) {
      const only = join(d, `only-${line}.jsonl`);
      writeFileSync(only, '\n'.repeat(line - 1) + jsonl([rows[line - 1]])); // same line number, blank lines before
      await expect(loadPreferenceData(only, tok, { cache_dir: false })).rejects.toThrow(DataError);
      await expect(loadPreferenceData(only, tok, { cache_dir: false })).rejects.toThrow(new RegExp(message.source.replace('bad\\.jsonl', `only-${line}\\.jsonl`)));
    }
    const { report } = await loadPreferenceData(file, tok, { on_invalid: 'skip', cache_dir: false });
    expect(report).toMatchObject({
      rowsRead: 9, kept: 2,
      dropped: { malformed_json: 1, missing_field: 1, wrong_type: 1, empty_completion: 1, identical_pair: 1, no_assistant_turn: 1, unknown_role: 1 },
    });
  });

  it('reports template errors and bad options clearly', async () => {
    const d = dir();
    const file = join(d, 'chat.jsonl');
    writeFileSync(file, jsonl([{ prompt: [{ role: 'user', content: 'Hi' }], chosen: [{ role: 'assistant', content: 'A' }], rejected: [{ role: 'assistant', content: 'B' }] }]));
    const { json } = { json: tok.json };
    const noTemplate = new HfTokenizer(json, { eos_token: '<|im_end|>' }, 'no-template');
    await expect(loadPreferenceData(file, noTemplate, { cache_dir: false })).rejects.toThrow(/no-template: tokenizer_config.json has no chat_template/);
    const broken = new HfTokenizer(json, { eos_token: '<|im_end|>', chat_template: '{% for m in messages %}{{ m.content | nosuchfilter }}{% endfor %}' }, 'broken');
    await expect(loadPreferenceData(file, broken, { cache_dir: false })).rejects.toThrow(/chat\.jsonl:1: the chat template failed/);
    await expect(loadPreferenceData(file, tok, { max_length: -1 })).rejects.toThrow(ConfigError);
    await expect(loadPreferenceData(join(d, 'nope.jsonl'), tok)).rejects.toThrow(/nope\.jsonl: no such file/);
  });
});

describe('cache and worker threads', () => {
  const rows = Array.from({ length: 3000 }, (_, i) => ({ prompt: `Row ${i}: what is ${i} plus ${i % 7}?`, chosen: ` It is ${i + (i % 7)}.`, rejected: ` It is ${i - 1}, probably.` }));
  const asArrays = (pairs: { chosen: { ids: ArrayLike<number>; promptLength: number }; rejected: { ids: ArrayLike<number>; promptLength: number } }[]) =>
    pairs.map((p) => [Array.from(p.chosen.ids), p.chosen.promptLength, Array.from(p.rejected.ids), p.rejected.promptLength]);

  it('tokenizes on worker threads with the same result as on this thread', async () => {
    const d = dir();
    writeFileSync(join(d, 'many.jsonl'), jsonl(rows));
    const workerScript = join(__dirname, '..', 'dist', 'data', 'tokenize-worker.js'); // scripts/setup.sh compiles dist/
    const parallel = await loadPreferenceData(join(d, 'many.jsonl'), tok, { cache_dir: false, dataset_num_proc: 2 }, { workerScript, minExamples: 1000 });
    const serial = await loadPreferenceData(join(d, 'many.jsonl'), tok, { cache_dir: false }, { workerScript: null });
    expect(parallel.report).toMatchObject({ kept: 3000, tokenizeThreads: 2 });
    expect(serial.report.tokenizeThreads).toBe(1);
    expect(asArrays(parallel.pairs)).toEqual(asArrays(serial.pairs));
  });

  it('reuses the token cache and invalidates it when data, tokenizer or settings change', async () => {
    const d = dir();
    const cache = join(d, 'cache');
    const file = join(d, 'data.jsonl');
    writeFileSync(file, jsonl(rows.slice(0, 200)));
    const first = await loadPreferenceData(file, tok, { cache_dir: cache });
    expect(first.report.cache.hit).toBe(false);
    const second = await loadPreferenceData(file, tok, { cache_dir: cache });
    expect(second.report.cache).toEqual({ hit: true, path: first.report.cache.path });
    expect(second.report.tokens).toEqual(first.report.tokens);
    expect(second.report.tokenizeThreads).toBe(0);
    expect(asArrays(second.pairs)).toEqual(asArrays(first.pairs));
    expect((await loadPreferenceData(file, tok, { cache_dir: cache, max_length: 24 })).report.cache.hit).toBe(false);
    const other = new HfTokenizer(tok.json, { ...tok.config, eos_token: '<|endoftext|>' });
    expect((await loadPreferenceData(file, other, { cache_dir: cache })).report.cache.hit).toBe(false);
    writeFileSync(file, jsonl(rows.slice(0, 201)));
    const changed = await loadPreferenceData(file, tok, { cache_dir: cache });
    expect(changed.report).toMatchObject({ cache: { hit: false }, kept: 201 });
    // A damaged cache file is rebuilt, never trusted.
    writeFileSync(changed.report.cache.path!, 'garbage');
    expect((await loadPreferenceData(file, tok, { cache_dir: cache })).report).toMatchObject({ cache: { hit: false }, kept: 201 });
  });
});

describe('batching', () => {
  it('lays out 2B right-padded rows with completion masks, padding with EOS when there is no pad token', async () => {
    const pairs = [
      { chosen: { ids: [1, 2, 3], promptLength: 2 }, rejected: { ids: [1, 2, 4, 5], promptLength: 2 }, boundaryMismatch: false, truncated: false },
      { chosen: { ids: [7, 8], promptLength: 1 }, rejected: { ids: [7, 9, 9], promptLength: 1 }, boundaryMismatch: false, truncated: false },
    ];
    const batch = collate(pairs, { padId: 0, padToMultipleOf: 8 });
    expect(batch.inputIds.shape).toEqual([4, 8]);
    expect(batch.lengths).toEqual([3, 2, 4, 3]);
    const ids = (await batch.inputIds.toArray()) as bigint[];
    expect(ids.slice(0, 8).map(Number)).toEqual([1, 2, 3, 0, 0, 0, 0, 0]);
    expect(ids.slice(16, 24).map(Number)).toEqual([1, 2, 4, 5, 0, 0, 0, 0]);
    const completion = (await batch.completionMask.toArray()) as boolean[];
    expect(completion.slice(0, 8)).toEqual([false, false, true, false, false, false, false, false]);
    expect(completion.slice(8, 16)).toEqual([false, true, false, false, false, false, false, false]);
    expect(((await batch.attentionMask.toArray()) as bigint[]).slice(24, 32).map(Number)).toEqual([1, 1, 1, 0, 0, 0, 0, 0]);
    expect(new HfTokenizer(tok.json, { eos_token: '<|im_end|>' }).padId).toBe(tok.tokenId('<|im_end|>'));
  });

  it('samples deterministically per epoch, shards disjointly with equal steps, and groups by length', () => {
    const lengths = Array.from({ length: 103 }, (_, i) => (i * 37) % 50);
    const a = new BatchSampler(lengths, { batchSize: 4, seed: 1 });
    expect(a.batches(0)).toEqual(new BatchSampler(lengths, { batchSize: 4, seed: 1 }).batches(0));
    expect(a.batches(1)).not.toEqual(a.batches(0));
    const ranks = [0, 1, 2].map((rank) => new BatchSampler(lengths, { batchSize: 4, seed: 1, rank, worldSize: 3 }).batches(2));
    expect(new Set(ranks.map((r) => r.length))).toEqual(new Set([8])); // floor(103 / 12)
    const seen = ranks.flat(2);
    expect(new Set(seen).size).toBe(seen.length); // disjoint
    expect(seen.length).toBe(96); // covers all but the last incomplete global batch
    const padding = (batches: number[][]) => batches.reduce((s, b) => s + b.length * Math.max(...b.map((i) => lengths[i])) - b.reduce((t, i) => t + lengths[i], 0), 0);
    const grouped = new BatchSampler(lengths, { batchSize: 4, seed: 1, groupByLength: true }).batches(0);
    expect(padding(grouped)).toBeLessThan(padding(a.batches(0)) / 2);
    expect(() => new BatchSampler(lengths, { batchSize: 4, rank: 3, worldSize: 3 })).toThrow(/rank 3 is not within world size 3/);
    expect(() => new BatchSampler([1, 2], { batchSize: 4 })).toThrow(/2 pairs cannot fill one batch/);
  });

  it('prefetches the next item while the current one is consumed', async () => {
    const made: number[] = [];
    async function* source() {
      for (let i = 0; i < 3; i += 1) {
        made.push(i);
        yield i;
      }
    }
    const seen: [number, number][] = [];
    for await (const item of prefetch(source(), 1)) seen.push([item, made.length]);
    expect(seen.map(([item]) => item)).toEqual([0, 1, 2]);
    expect(seen[0][1]).toBeGreaterThanOrEqual(2); // item 1 was being made while item 0 was handed out
  });
});
