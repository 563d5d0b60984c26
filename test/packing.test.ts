import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { collate, disposeBatch, type PreferenceBatch } from '../lib/data/collate';
import { BRANCH, packPairs } from '../lib/data/packed-layout';
import type { TokenizedPair } from '../lib/data/tokenize-pairs';
import { F_DIVERGENCES, LOSS_TYPES, parseDpoLossConfig, type DpoLossConfigInput } from '../lib/loss/dpo-config';
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
    const layout = packPairs(pairs, { prefixSharing: true });
    expect(layout.inputIds).toEqual([5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
    expect(layout.positionIds).toEqual([0, 1, 2, 3, 4, 3, 0, 1, 2, 2, 3, 4]);
    expect(layout).toMatchObject({ tokens: 12, segments: 2, segmentWidth: 6, paddedTokens: 20 });
    expect(layout.segmentIndex).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    const { shared: S, chosen: C, rejected: R } = BRANCH;
    expect(layout.segmentBranches).toEqual([S, S, S, C, C, R, S, S, C, R, R, R]);
    expect(layout.tokenSlot).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    // Sequences in collate's order: chosen 0, chosen 1, rejected 0, rejected 1 (L = 5, padding → 0).
    expect(layout.sequenceIndex).toEqual([0, 1, 2, 3, 4, /**/ 6, 7, 8, 0, 0, /**/ 0, 1, 2, 5, 0, /**/ 6, 7, 9, 10, 11]);
  });

  it('without prefix sharing: one segment per sequence; attention blocks padded to the longest, each token with its slot', () => {
    const pairs = [pair([5, 6, 7], [8, 9], [10]), pair([11, 12], [13], [14, 15, 16])];
    const layout = packPairs(pairs, { prefixSharing: false });
    // Segments of 5, 3 (chosen), 4, 5 (rejected) tokens: N = 17, blocks of W = 5 (slot 17 is the zero row).
    expect(layout).toMatchObject({ tokens: 17, segments: 4, segmentWidth: 5 });
    expect(layout.segmentIndex).toEqual([0, 1, 2, 3, 4, /**/ 5, 6, 7, 17, 17, /**/ 8, 9, 10, 11, 17, /**/ 12, 13, 14, 15, 16]);
    expect(layout.segmentBranches.slice(5, 10)).toEqual([0, 0, 0, -1, -1]);
    expect(layout.tokenSlot).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13, 15, 16, 17, 18, 19]);
    expect(layout.positionIds.slice(5, 8)).toEqual([0, 1, 2]);
  });
});

// A batch with shared prompts of several lengths, completions that differ from their first token or
// share some, and lengths beyond the fixtures' sliding windows (3 and 4).
const PAIRS = [
  pair([3, 14, 15, 9, 26, 5], [35, 8, 9], [7, 9, 32, 38, 4]),
  pair([27, 18, 28], [18, 28, 45, 9, 4, 5, 2], [18, 28, 61]), // completions share two tokens
  pair([31, 41, 59, 26, 53, 58, 9, 7, 9], [3, 2], [38, 4, 6, 2, 6]),
];

async function lossAndGradients(model: CausalLM, batch: PreferenceBatch, fused: boolean, lossConfig: DpoLossConfigInput = { beta: 0.5 }): Promise<{ loss: number; metrics: Record<string, number>; grads: number[][] }> {
  const reference = await model.referenceCopy();
  const { result, loss, metrics } = await pairLoss(model, { kind: 'model', model: reference }, batch, parseDpoLossConfig(lossConfig), fused);
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
    ['padding-free', { prefixSharing: false }],
    ['prefix-shared', { prefixSharing: true }],
  ] as const)('%s: loss, every metric and every gradient within 1e-5 (the contract)', async (_, packing) => {
    const model = await builtin(name);
    await model.eval();
    const padded = collate(PAIRS, { padId: 0 });
    const base = await lossAndGradients(model, padded, true);
    const packedBatch = collate(PAIRS, { padId: 0, packing });
    expect(packedBatch.packed!.tokens).toBeLessThan(packedBatch.inputIds.numel);
    // The logits path here, the fused-linear path in the loss-type sweep below.
    const packed = await lossAndGradients(model, packedBatch, false);
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

describe('every loss type and f-divergence: prefix-shared ≡ padded (Qwen3, fp64, fused-linear)', () => {
  const cases: [string, DpoLossConfigInput][] = [
    ...LOSS_TYPES.map((loss_type): [string, DpoLossConfigInput] => [loss_type, { loss_type, beta: 0.5, ...(loss_type === 'exo_pair' ? { label_smoothing: 1e-3 } : {}) }]),
    ...F_DIVERGENCES.map((f_divergence_type): [string, DpoLossConfigInput] => [`sigmoid with ${f_divergence_type}`, { f_divergence_type, beta: 0.5 }]),
  ];
  it.each(cases)('%s', async (_, lossConfig) => {
    const model = await builtin('hf-qwen3');
    await model.eval();
    const padded = collate(PAIRS, { padId: 0 });
    const packedBatch = collate(PAIRS, { padId: 0, packing: { prefixSharing: true } });
    const [base, packed] = [await lossAndGradients(model, padded, true, lossConfig), await lossAndGradients(model, packedBatch, true, lossConfig)];
    expect(Math.abs(packed.loss - base.loss)).toBeLessThan(1e-5);
    for (const [key, value] of Object.entries(base.metrics)) expect([key, Math.abs(packed.metrics[key] - value) < 1e-5]).toEqual([key, true]);
    expect(maxDiff(packed.grads, base.grads)).toBeLessThan(1e-5);
    disposeBatch(padded);
    disposeBatch(packedBatch);
    model.dispose();
  });
});
