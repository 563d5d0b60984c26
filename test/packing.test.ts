import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { collate, disposeBatch, type PreferenceBatch } from '../lib/data/collate';
import { BRANCH, packPairs } from '../lib/data/packed-layout';
import type { TokenizedPair } from '../lib/data/tokenize-pairs';
import { parseDpoLossConfig } from '../lib/loss/dpo-config';
import type { CausalLM } from '../lib/models/causal-lm';
import { createModel } from '../lib/models/causal-lm';
import { pairLoss } from '../lib/train/dpo-step';

/** padding_free / prefix_sharing: packed rows give the padded 2B layout's log-probs, loss, metrics and gradients. */
const pair = (prompt: number[], chosen: number[], rejected: number[]): TokenizedPair => ({
  chosen: { ids: [...prompt, ...chosen], promptLength: prompt.length },
  rejected: { ids: [...prompt, ...rejected], promptLength: prompt.length },
  boundaryMismatch: false, truncated: false,
});

describe('packed layout', () => {
  it('shares each prefix once, restarts positions per pair, continues the rejected tail from the prefix, indexes every sequence token', () => {
    const pairs = [pair([5, 6, 7], [8, 9], [10]), pair([11, 12], [13], [14, 15, 16])];
    const layout = packPairs(pairs, 0, { prefixSharing: true, rowTokens: 64 });
    expect(layout.rows).toBe(1);
    expect(layout.inputIds).toEqual([5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
    expect(layout.positionIds).toEqual([0, 1, 2, 3, 4, 3, 0, 1, 2, 2, 3, 4]);
    expect(layout.segmentIds).toEqual([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]);
    const { shared: S, chosen: C, rejected: R } = BRANCH;
    expect(layout.branchIds).toEqual([S, S, S, C, C, R, S, S, C, R, R, R]);
    expect(layout.sequenceLength).toBe(5);
    // Sequences in collate's order: chosen 0, chosen 1, rejected 0, rejected 1 (L = 5, padding → 0).
    expect(layout.sequenceIndex).toEqual([0, 1, 2, 3, 4, /**/ 6, 7, 8, 0, 0, /**/ 0, 1, 2, 5, 0, /**/ 6, 7, 9, 10, 11]);
    expect(layout).toMatchObject({ realTokens: 12, paddedTokens: 20 });
  });

  it('without prefix sharing: one segment per sequence; rows fill first-fit up to the budget and pad to the longest', () => {
    const pairs = [pair([5, 6, 7], [8, 9], [10]), pair([11, 12], [13], [14, 15, 16])];
    const layout = packPairs(pairs, 0, { prefixSharing: false, rowTokens: 8 });
    // Segments of 5, 3, 4, 5 tokens: [5+3], [4], [5] → width 8.
    expect(layout.rows).toBe(3);
    expect(layout.width).toBe(8);
    expect(layout.segmentIds).toEqual([0, 0, 0, 0, 0, 1, 1, 1, /**/ 2, 2, 2, 2, -1, -1, -1, -1, /**/ 3, 3, 3, 3, 3, -1, -1, -1]);
    expect(layout.positionIds.slice(0, 8)).toEqual([0, 1, 2, 3, 4, 0, 1, 2]);
  });
});

// A batch with shared prompts of several lengths, completions that differ from their first token or
// share some, and lengths beyond the fixtures' sliding windows (3 and 4).
const PAIRS = [
  pair([3, 14, 15, 9, 26, 5], [35, 8, 9], [7, 9, 32, 38, 4]),
  pair([27, 18, 28], [18, 28, 45, 9, 4, 5, 2], [18, 28, 61]), // completions share two tokens
  pair([31, 41, 59, 26, 53, 58, 9, 7, 9], [3, 2], [38, 4, 6, 2, 6]),
];

async function lossAndGradients(model: CausalLM, batch: PreferenceBatch): Promise<{ loss: number; metrics: Record<string, number>; grads: number[][] }> {
  const reference = await model.referenceCopy();
  const { result, loss, metrics } = await pairLoss(model, { kind: 'model', model: reference }, batch, parseDpoLossConfig({ beta: 0.5 }), true);
  await result.backward();
  const params = await model.parameters();
  const grads = await Promise.all(params.map(async (p) => Array.from((await (await p.grad())!.toTypedArray()) as Float64Array)));
  for (const p of params) await (await p.grad())!.zero_();
  reference.dispose();
  return { loss, metrics, grads };
}

/** The fixture's safetensors in its built-in architecture (tiny-gpt2's folder also has a traced model.pt). */
async function builtin(name: string): Promise<CausalLM> {
  const dir = join(__dirname, 'fixtures', name);
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  const model = await createModel(config.model_type, config, { init: false, dtype: 'float64' });
  await model.loadSafetensors(dir);
  expect(model.info.packs).toBe(true);
  return model;
}

const maxDiff = (a: number[][], b: number[][]) => Math.max(...a.map((g, i) => Math.max(...g.map((x, j) => Math.abs(x - b[i][j])))));

describe.each(['hf-llama3', 'hf-mistral', 'hf-qwen2', 'hf-qwen3', 'tiny-gpt2'])('%s: packed ≡ padded (fp64)', (name) => {
  it.each([
    ['padding-free, one row', { prefixSharing: false, rowTokens: 256 }],
    ['padding-free, rows of 12', { prefixSharing: false, rowTokens: 12 }],
    ['padding-free, rows as long as the longest sequence', { prefixSharing: false }],
    ['prefix-shared, one row', { prefixSharing: true, rowTokens: 256 }],
    ['prefix-shared, rows of 16', { prefixSharing: true, rowTokens: 16 }],
    ['prefix-shared, rows as long as the longest segment', { prefixSharing: true }],
  ] as const)('%s: loss, every metric and every gradient within 1e-5 (the contract)', async (_, packing) => {
    const model = await builtin(name);
    await model.eval();
    const padded = collate(PAIRS, { padId: 0 });
    const base = await lossAndGradients(model, padded);
    const packedBatch = collate(PAIRS, { padId: 0, packing });
    expect(packedBatch.packed!.realTokens).toBeLessThan(packedBatch.inputIds.numel);
    const packed = await lossAndGradients(model, packedBatch);
    // Not 1e-15: the eager attention's softmax runs in fp32 (as HF's, whatever the model's dtype), and
    // a rejected tail's keys sit at other offsets of a longer row than in its padded row, so fp32 sums
    // group differently (seen here: 4e-7 on logps/rejected, 1.2e-6 on a Qwen2 gradient; padding-free
    // without sharing agreed to 1e-10, which other CPUs' fp32 kernels need not repeat).
    const tolerance = 1e-5;
    expect(Math.abs(packed.loss - base.loss)).toBeLessThan(tolerance);
    for (const [key, value] of Object.entries(base.metrics)) expect([key, Math.abs(packed.metrics[key] - value) < tolerance]).toEqual([key, true]);
    expect(maxDiff(packed.grads, base.grads)).toBeLessThan(tolerance);
    disposeBatch(padded);
    disposeBatch(packedBatch);
    model.dispose();
  });
});
