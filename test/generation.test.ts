import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { completionLogps, createModel, generate, HfTokenizer, loadModel, manualSeed, type CausalLM } from '../lib';
import { cli } from './support/cli-project';

const TINY_GPT2 = join(__dirname, 'fixtures', 'tiny-gpt2');
const QWEN3 = join(__dirname, 'fixtures', 'hf-qwen3');
const tokenizer = HfTokenizer.fromDir(TINY_GPT2);
// Different lengths: the cached path left-pads them together.
const PROMPTS = ['w1 w2 w3', 'w4', 'w5 w6 w7 w8 w9 w10', 'w11 w12'];

const BUILT_IN: [string, Record<string, unknown>][] = [
  ['gpt2', { vocab_size: 64, n_positions: 64, n_embd: 32, n_layer: 2, n_head: 4 }],
  // Grouped-query attention.
  ['llama', { vocab_size: 64, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64 }],
  // A sliding window shorter than prompt + completion: the cache must apply it by position.
  ['mistral', { vocab_size: 64, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 1, max_position_embeddings: 64, sliding_window: 5 }],
  ['qwen3', { vocab_size: 64, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 8, max_position_embeddings: 64 }],
];

// Random fp64 models: no argmax ties. The eager attention's softmax runs in fp32 (HF's numerics), so
// log-probs of differently shaped forwards agree to ~1e-6, not to fp64's precision.
async function builtIn(architecture: string, config: Record<string, unknown>): Promise<CausalLM> {
  // Seeded: the same weights whatever ran before in this process.
  manualSeed(5);
  return createModel(architecture, { ...config, initializer_range: 0.5 }, { dtype: 'float64' });
}

const maxAbs = (a: number[], b: number[]) => Math.max(0, ...a.map((x, i) => Math.abs(x - b[i])));

describe('generate', () => {
  it.each(BUILT_IN)('%s: greedy with the KV cache ≡ greedy re-running the whole sequence (ids identical, log-probs equal)', async (architecture, config) => {
    const model = await builtIn(architecture, config);
    const options = { maxNewTokens: 12, temperature: 0 };
    const cached = await generate(model, tokenizer, PROMPTS, options);
    const plain = await generate(model, tokenizer, PROMPTS, { ...options, useCache: false });
    expect(cached.map((g) => g.ids)).toEqual(plain.map((g) => g.ids));
    for (let i = 0; i < PROMPTS.length; i += 1) expect(maxAbs(cached[i].logprobs, plain[i].logprobs)).toBeLessThan(1e-5);
    // Something was generated beyond the first token (not all rows ended at once).
    expect(Math.max(...cached.map((g) => g.ids.length))).toBeGreaterThan(3);
    model.dispose();
  });

  it.each(BUILT_IN)('%s: sampling is reproducible by seed and the same in a batch as one by one', async (architecture, config) => {
    const model = await builtIn(architecture, config);
    const options = { maxNewTokens: 10, temperature: 0.9, topK: 20, topP: 0.95, seed: 7 };
    const batched = await generate(model, tokenizer, PROMPTS, options);
    const again = await generate(model, tokenizer, PROMPTS, options);
    const alone = await generate(model, tokenizer, PROMPTS, { ...options, batchSize: 1 });
    const otherSeed = await generate(model, tokenizer, PROMPTS, { ...options, seed: 8 });
    expect(again.map((g) => g.ids)).toEqual(batched.map((g) => g.ids));
    expect(alone.map((g) => g.ids)).toEqual(batched.map((g) => g.ids));
    for (let i = 0; i < PROMPTS.length; i += 1) expect(maxAbs(alone[i].logprobs, batched[i].logprobs)).toBeLessThan(1e-5);
    expect(otherSeed.map((g) => g.ids)).not.toEqual(batched.map((g) => g.ids));
    model.dispose();
  });

  it.each(BUILT_IN)('%s: per-token log-probs sum to the sequence log-prob of the generated tokens (trainer op)', async (architecture, config) => {
    const model = await builtIn(architecture, config);
    const out = await generate(model, tokenizer, PROMPTS, { maxNewTokens: 8, seed: 3 });
    const sums = await completionLogps(model, out);
    out.forEach((g, i) => expect(Math.abs(g.logprobs.reduce((a, b) => a + b, 0) - sums[i])).toBeLessThan(1e-5));
    model.dispose();
  });

  it('samples from the model: token frequencies match its probabilities (temperature 1) and top-k keeps k tokens', async () => {
    const model = await builtIn(...BUILT_IN[0]);
    const prompts = Array.from({ length: 400 }, () => 'w1 w2');
    const draws = await generate(model, tokenizer, prompts, { maxNewTokens: 1, seed: 11, batchSize: 400 });
    // Every draw reports log p of its own token: the empirical frequency of each token ≈ exp(logp).
    const counts = new Map<number, { n: number; p: number }>();
    for (const d of draws) {
      const entry = counts.get(d.ids[0]) ?? { n: 0, p: Math.exp(d.logprobs[0]) };
      entry.n += 1;
      counts.set(d.ids[0], entry);
    }
    const top = [...counts.values()].sort((a, b) => b.n - a.n)[0];
    expect(Math.abs(top.n / prompts.length - top.p)).toBeLessThan(4 * Math.sqrt((top.p * (1 - top.p)) / prompts.length) + 0.01);
    const topTwo = await generate(model, tokenizer, prompts.slice(0, 100), { maxNewTokens: 1, seed: 5, topK: 2 });
    expect(new Set(topTwo.map((d) => d.ids[0])).size).toBeLessThanOrEqual(2);
    const greedy = await generate(model, tokenizer, ['w1 w2'], { maxNewTokens: 1, temperature: 0 });
    expect(topTwo.map((d) => d.ids[0])).toContain(greedy[0].ids[0]);
    model.dispose();
  });

  it('stops at EOS (generation_config.json ids too) and at stop strings, cutting the text before them', async () => {
    const model = await builtIn(...BUILT_IN[1]);
    const free = await generate(model, tokenizer, ['w1 w2'], { maxNewTokens: 10, temperature: 0 });
    expect(free[0].finishReason === 'length' || free[0].finishReason === 'eos').toBe(true);
    const words = free[0].text.split(' ');
    const stopWord = words[Math.min(2, words.length - 1)];
    const stopped = await generate(model, tokenizer, ['w1 w2'], { maxNewTokens: 10, temperature: 0, stop: [stopWord] });
    expect(stopped[0].finishReason).toBe('stop');
    expect(stopped[0].text).toBe(free[0].text.slice(0, free[0].text.indexOf(stopWord)));
    expect(free[0].ids.slice(0, stopped[0].ids.length)).toEqual(stopped[0].ids);
    model.dispose();

    // The Qwen3 fixture's generation_config.json lists eos_token_id [0]; its tokenizer's EOS differs.
    const qwen = await loadModel(QWEN3, { dtype: 'float64' });
    const qwenTokenizer = HfTokenizer.fromDir(QWEN3);
    const out = await generate(qwen, qwenTokenizer, ['hello world', 'a b c'], { maxNewTokens: 24, seed: 1 });
    for (const g of out) if (g.finishReason === 'eos') expect([0, qwenTokenizer.eosId]).toContain(g.ids[g.ids.length - 1]);
    for (const g of out) expect(g.ids.slice(0, -1).every((id) => id !== 0 && id !== qwenTokenizer.eosId)).toBe(true);
    qwen.dispose();
  });

  it('a traced export generates without a cache (with a notice), the same tokens as its weights in the built-in GPT-2', async () => {
    const traced = await loadModel(TINY_GPT2, { dtype: 'float64' });
    expect(traced.info.source).toBe('torchscript');
    const builtin = await loadModel(join(TINY_GPT2, 'model.safetensors'), { dtype: 'float64' }).catch(async () => {
      const m = await createModel('gpt2', traced.config, { init: false, dtype: 'float64' });
      await m.loadSafetensors(join(TINY_GPT2, 'model.safetensors'));
      return m;
    });
    const notices: string[] = [];
    const options = { maxNewTokens: 8, temperature: 0.8, seed: 2 };
    const slow = await generate(traced, tokenizer, PROMPTS, options, { notice: (m) => notices.push(m) });
    const fast = await generate(builtin, tokenizer, PROMPTS, options);
    expect(slow.map((g) => g.ids)).toEqual(fast.map((g) => g.ids));
    expect(notices.join('\n')).toMatch(/traced export without a KV cache/);
    traced.dispose();
    builtin.dispose();
  });

  it('refuses options and prompts it cannot honour, naming the value', async () => {
    const model = await builtIn(...BUILT_IN[0]);
    await expect(generate(model, tokenizer, ['w1'], { temperature: -1 })).rejects.toThrow(/temperature/);
    await expect(generate(model, tokenizer, ['w1'], { topP: 0 })).rejects.toThrow(/topP/);
    await expect(generate(model, tokenizer, ['w1'], { max_new_tokens: 3 } as never)).rejects.toThrow(/max_new_tokens/);
    await expect(generate(model, tokenizer, ['w1 w2 w3'], { maxNewTokens: 62 })).rejects.toThrow(/prompt 0 has 3 tokens; with maxNewTokens 62 that is 65 positions, the model takes 64/);
    model.dispose();
  });

  it('CLI: torch-dpo generate writes one JSON line per prompt, the same as the API', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'torch-dpo-generate-'));
    const prompts = join(dir, 'prompts.jsonl');
    writeFileSync(prompts, ['{"prompt": "w1 w2"}', '"w3 w4 w5"'].join('\n'));
    const out = join(dir, 'out.jsonl');
    const run = cli(['generate', '--model', TINY_GPT2, '--prompts', prompts, '--max-new-tokens', '6', '--seed', '4', '--top-k', '10', '--out', out]);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const rows = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const model = await loadModel(TINY_GPT2, { preferBuiltin: true });
    expect(model.info.source).toBe('builtin');
    const api = await generate(model, tokenizer, ['w1 w2', 'w3 w4 w5'], { maxNewTokens: 6, seed: 4, topK: 10 });
    expect(rows.map((r) => r.completion)).toEqual(api.map((g) => g.text));
    expect(rows.map((r) => r.tokens)).toEqual(api.map((g) => g.ids.length));
    expect(rows[1].prompt).toBe('w3 w4 w5');
    model.dispose();
    const bad = cli(['generate', '--model', TINY_GPT2, '--prompts', prompts, '--top-p', '2']);
    expect(bad.status).toBe(1);
    expect(bad.stderr.trim().split('\n')).toEqual([expect.stringMatching(/topP: Number must be less than or equal to 1 \(got 2\)/)]);
  });
});
