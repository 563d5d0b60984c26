'use strict';
// Part of `npm run bench:model`: generation tokens/s with the KV cache and without it (every new
// token re-runs the whole sequence, as a traced export must), greedy, 32 prompts of 32 tokens × 64
// new tokens, for a GPT-2 and a Llama-like model with grouped-query attention (random weights).
const path = require('node:path');

const MODELS = [
  ['GPT-2 (6 × 384, vocab 50257)', 'gpt2', { vocab_size: 50257, n_positions: 1024, n_embd: 384, n_layer: 6, n_head: 6 }],
  ['Llama-like (6 × 384, GQA 6/2, vocab 32000)', 'llama', { vocab_size: 32000, hidden_size: 384, intermediate_size: 1024, num_hidden_layers: 6, num_attention_heads: 6, num_key_value_heads: 2, max_position_embeddings: 1024 }],
];
const PROMPTS = 32, PROMPT_TOKENS = 32, NEW_TOKENS = 64;

async function main() {
  const { createModel, generate, HfTokenizer, numThreads, scope } = require('../dist');
  // A word-level tokenizer (64 words) is enough: the prompts are 32 of its words.
  const tokenizer = HfTokenizer.fromDir(path.join(__dirname, '..', 'test', 'fixtures', 'tiny-gpt2'));
  const prompts = Array.from({ length: PROMPTS }, (_, i) => Array.from({ length: PROMPT_TOKENS }, (_, t) => `w${(i * 7 + t * 3) % 60}`).join(' '));
  console.log(`\ngeneration: ${PROMPTS} prompts × ${PROMPT_TOKENS} tokens, up to ${NEW_TOKENS} new tokens each, greedy, fp32, ${numThreads()} threads (random weights; tokens counted as generated)`);
  console.log('| model | parameters | KV cache | new tokens | time | tokens/s | speed-up |\n|---|---|---|---|---|---|---|');
  for (const [name, architecture, config] of MODELS) {
    const model = await createModel(architecture, config);
    const parameters = `${(await scope(async () => (await model.parameters()).reduce((n, p) => n + p.numel, 0)) / 1e6).toFixed(1)}M`;
    let withCache = 0;
    for (const useCache of [true, false]) {
      const options = { maxNewTokens: NEW_TOKENS, temperature: 0, useCache, batchSize: PROMPTS };
      await generate(model, tokenizer, prompts.slice(0, 2), { ...options, maxNewTokens: 4 });
      const started = process.hrtime.bigint();
      const out = await generate(model, tokenizer, prompts, options);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const tokens = out.reduce((s, g) => s + g.ids.length, 0);
      const rate = tokens / seconds;
      if (useCache) withCache = rate;
      console.log(`| ${name} | ${parameters} | ${useCache ? 'yes' : 'no'} | ${tokens} | ${seconds.toFixed(1)} s | ${rate.toFixed(0)} | ${useCache ? '' : `${(withCache / rate).toFixed(1)}× with cache`} |`);
    }
    model.dispose();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
