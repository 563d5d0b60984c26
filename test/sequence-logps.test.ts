import { Tensor, noGrad, randn } from '../lib';
import { sequenceLogps, sequenceLogpsFromHidden } from '../lib/ops/sequence-logps';
import { freshSeed, randomBatch, randomLogits } from './support/random-batch';

const N = 4, T = 9, V = 37, H = 6;
const values = async (t: Tensor) => Array.from((await t.toTypedArray()) as Float64Array);
const maxDiff = (a: number[], b: number[]) => Math.max(...a.map((x, i) => Math.abs(x - b[i])));

/** The straightforward version: log_softmax over V, gather the next token, mask, sum. */
async function naiveLogps(logits: Tensor, inputIds: Tensor, completionMask: Tensor): Promise<Tensor> {
  const lp = await (await logits.narrow(1, 0, T - 1)).logSoftmax(2);
  const labels = await (await inputIds.narrow(1, 1, T - 1)).unsqueeze(2);
  const picked = await (await lp.gather(2, labels)).squeeze(2);
  const m = await (await completionMask.narrow(1, 1, T - 1)).to('float64');
  return (await picked.mul(m)).sum(1);
}

async function gradOf(param: Tensor, output: Tensor, upstream: Tensor): Promise<number[]> {
  await (await (await output.mul(upstream)).sum()).backward();
  const g = await values((await param.grad())!);
  return g;
}

describe('sequenceLogps (float64 references)', () => {
  const seed = freshSeed('sequence-logps');

  it('equals log_softmax + gather within 1e-10, with matching gradients and counts', async () => {
    const batch = await randomBatch(N, T, V, seed);
    const upstream = await randn([N], { dtype: 'float64' });
    const a = await randomLogits(N, T, V);
    const b = (await a.detach().clone()).detach();
    await b.setRequiresGrad();
    const fused = await sequenceLogps(a, batch.inputIds, batch.completionMask, { chunkRows: 5 });
    const naive = await naiveLogps(b, batch.inputIds, batch.completionMask);
    expect(maxDiff(await values(fused.logps), await values(naive))).toBeLessThan(1e-10);
    expect(await fused.counts.toArray()).toEqual(batch.mask.map((row) => BigInt(row.slice(1).reduce((s, x) => s + x, 0))));
    const g1 = await gradOf(a, fused.logps, upstream);
    const g2 = await gradOf(b, naive, upstream);
    expect(maxDiff(g1, g2)).toBeLessThan(1e-10);
  });

  it('gives the same values and gradients for every chunk size and in place', async () => {
    const batch = await randomBatch(N, T, V, seed + 1);
    const base = await randomLogits(N, T, V);
    const upstream = await randn([N], { dtype: 'float64' });
    const results: number[][] = [];
    const grads: number[][] = [];
    for (const options of [{ chunkRows: 1 }, { chunkRows: 7 }, {}, { chunkRows: 3, inplaceBackward: true }]) {
      const leaf = await (await base.detach().clone()).setRequiresGrad();
      // In place needs logits nobody else keeps: a non-leaf copy, as a model's output would be.
      const logits = options.inplaceBackward ? await leaf.mul(1) : leaf;
      const out = await sequenceLogps(logits, batch.inputIds, batch.completionMask, options);
      results.push(await values(out.logps));
      grads.push(await gradOf(leaf, out.logps, upstream));
    }
    for (let k = 1; k < results.length; k += 1) {
      expect(maxDiff(results[k], results[0])).toBeLessThan(1e-12);
      expect(maxDiff(grads[k], grads[0])).toBeLessThan(1e-12);
    }
  });

  it('returns differentiable per-token log-probs and metric sums from the same pass', async () => {
    const batch = await randomBatch(N, T, V, seed + 2);
    const logits = await randomLogits(N, T, V);
    const out = await sequenceLogps(logits, batch.inputIds, batch.completionMask, { tokenLogps: true, metrics: true, wpo: true });
    const tok = await values(out.tokenLogps!);
    const lp = await values(await noGrad(async () => (await logits.detach().logSoftmax(2))));
    const z = await values(logits.detach());
    const sums = { logp: [0, 0, 0, 0], ent: [0, 0, 0, 0], mean: [0, 0, 0, 0], hit: [0, 0, 0, 0], wpo: [0, 0, 0, 0] };
    for (let n = 0; n < N; n += 1) {
      for (let t = 1; t < T; t += 1) {
        const expected = batch.mask[n][t] ? lp[(n * T + t - 1) * V + Number(batch.ids[n][t])] : 0;
        expect(Math.abs(tok[n * T + t] - expected)).toBeLessThan(1e-10);
        if (!batch.mask[n][t]) continue;
        const row = lp.slice((n * T + t - 1) * V, (n * T + t) * V);
        const zr = z.slice((n * T + t - 1) * V, (n * T + t) * V);
        sums.logp[n] += expected;
        sums.ent[n] -= row.reduce((s, l) => s + Math.exp(l) * l, 0);
        sums.mean[n] += zr.reduce((s, x) => s + x, 0) / V;
        sums.hit[n] += zr.indexOf(Math.max(...zr)) === Number(batch.ids[n][t]) ? 1 : 0;
        sums.wpo[n] += expected - Math.log(row.reduce((s, l) => s + Math.exp(2 * l), 0));
      }
      expect(Math.abs(tok[n * T]) ).toBe(0);
    }
    expect(maxDiff(await values(out.logps), sums.logp)).toBeLessThan(1e-10);
    expect(maxDiff(await values(out.entropySum!), sums.ent)).toBeLessThan(1e-10);
    expect(maxDiff(await values(out.meanLogitSum!), sums.mean)).toBeLessThan(1e-10);
    expect(await values(out.argmaxHits!)).toEqual(sums.hit);
    expect(maxDiff(await values(out.wpoLogSum!), sums.wpo)).toBeLessThan(1e-10);
    // The per-token output is differentiable: d(Σ tok)/dlogits equals d(Σ logps)/dlogits.
    const g1 = await gradOf(logits, out.tokenLogps!, Tensor.from(1, { dtype: 'float64' }));
    const again = await (await logits.detach().clone()).setRequiresGrad();
    const g2 = await gradOf(again, (await sequenceLogps(again, batch.inputIds, batch.completionMask)).logps, Tensor.from(1, { dtype: 'float64' }));
    expect(maxDiff(g1, g2)).toBeLessThan(1e-12);
  });

  it('keeps the entropy finite when part of the vocabulary is masked with -inf', async () => {
    const data = new Float64Array(2 * 3 * 4).map((_, i) => (i % 5) * 0.3);
    data[1] = Number.NEGATIVE_INFINITY; // row 0: token 1 impossible
    const logits = Tensor.from(data, { shape: [2, 3, 4] });
    const ids = Tensor.from([[0, 2, 3], [1, 0, 2]], { dtype: 'int64' });
    const mask = Tensor.from([[0, 1, 1], [0, 1, 1]], { dtype: 'bool' });
    const out = await sequenceLogps(logits, ids, mask, { metrics: true });
    const entropy = await values(out.entropySum!);
    const lp = await values(await logits.logSoftmax(2));
    const rowEntropy = (r: number) => -lp.slice(r * 4, r * 4 + 4).reduce((s, l) => s + (Number.isFinite(l) ? Math.exp(l) * l : 0), 0);
    expect(Math.abs(entropy[0] - (rowEntropy(0) + rowEntropy(1)))).toBeLessThan(1e-12);
    expect(Math.abs(entropy[1] - (rowEntropy(3) + rowEntropy(4)))).toBeLessThan(1e-12);
  });

  it('matches fp32 within bf16 tolerance for bf16 logits', async () => {
    const batch = await randomBatch(N, T, V, seed + 3);
    const logits = await (await randn([N, T, V])).mul(2);
    const bf16 = await logits.to('bfloat16');
    const reference = await values(await (await sequenceLogps(await logits.to('float64'), batch.inputIds, batch.completionMask)).logps);
    const low = await (await sequenceLogps(bf16, batch.inputIds, batch.completionMask)).logps;
    expect(low.dtype).toBe('float32');
    const got = Array.from((await low.toTypedArray()) as Float32Array);
    // bf16 keeps 8 bits of mantissa: |logit error| ≤ 2^-8·|z| ≈ 0.03 per logit on these scales.
    got.forEach((g, i) => expect(Math.abs(g - reference[i])).toBeLessThan(0.05 * (1 + batch.mask[i].reduce((s, x) => s + x, 0))));
  });
});

describe('sequenceLogpsFromHidden (fused linear)', () => {
  const seed = freshSeed('sequence-logps-from-hidden');

  it('matches matmul + sequenceLogps in values and all three gradients', async () => {
    const batch = await randomBatch(N, T, V, seed);
    const upstream = await randn([N], { dtype: 'float64' });
    const make = async (shape: number[]) => (await randn(shape, { dtype: 'float64' })).setRequiresGrad();
    const h1 = await make([N, T, H]), w1 = await make([V, H]), b1 = await make([V]);
    const copy = async (x: Tensor) => (await x.detach().clone()).setRequiresGrad();
    const h2 = await copy(h1), w2 = await copy(w1), b2 = await copy(b1);

    const fused = await sequenceLogpsFromHidden(h1, w1, b1, batch.inputIds, batch.completionMask, { chunkRows: 4 });
    const logits = await (await h2.matmul(await w2.transpose(0, 1))).add(b2);
    const plain = await sequenceLogps(logits, batch.inputIds, batch.completionMask);
    expect(maxDiff(await values(fused.logps), await values(plain.logps))).toBeLessThan(1e-10);
    await (await (await fused.logps.mul(upstream)).sum()).backward();
    await (await (await plain.logps.mul(upstream)).sum()).backward();
    for (const [a, b] of [[h1, h2], [w1, w2], [b1, b2]]) {
      expect(maxDiff(await values((await a.grad())!), await values((await b.grad())!))).toBeLessThan(1e-10);
    }
  });

  it('works without a bias', async () => {
    const batch = await randomBatch(N, T, V, seed + 1);
    const h = await randn([N, T, H], { dtype: 'float64' });
    const w = await randn([V, H], { dtype: 'float64' });
    const fused = await sequenceLogpsFromHidden(h, w, undefined, batch.inputIds, batch.completionMask);
    const plain = await sequenceLogps(await h.matmul(await w.transpose(0, 1)), batch.inputIds, batch.completionMask);
    expect(maxDiff(await values(fused.logps), await values(plain.logps))).toBeLessThan(1e-10);
  });
});

describe('sequenceLogps bad inputs', () => {
  const ids = Tensor.from([[1, 2, 3]], { dtype: 'int64' });
  const mask = Tensor.from([[0, 1, 1]], { dtype: 'bool' });

  it('names shape mismatches, out-of-vocabulary ids and empty batches', async () => {
    const logits = await randn([1, 3, 4]);
    await expect(sequenceLogps(await randn([1, 3]), ids, mask)).rejects.toThrow(/logits must be \[N,T,V\]/);
    await expect(sequenceLogps(await randn([2, 3, 4]), ids, mask)).rejects.toThrow(/disagree on N or T/);
    await expect(sequenceLogps(logits, ids, Tensor.from([[0, 1]], { dtype: 'bool' }))).rejects.toThrow(/completionMask \[1,2\] must match inputIds \[1,3\]/);
    await expect(sequenceLogps(await randn([1, 3, 3]), ids, mask)).rejects.toThrow(/token id \(3\) is outside the vocabulary \[0, 3\)/);
    await expect(sequenceLogps(await randn([0, 3, 4]), Tensor.from(new BigInt64Array(0), { shape: [0, 3] }), Tensor.from(new Uint8Array(0), { shape: [0, 3], dtype: 'bool' }))).rejects.toThrow(/batch is empty/);
    await expect(sequenceLogps(logits, Tensor.from([[1.5, 2, 3]]), mask)).rejects.toThrow(/inputIds must hold integers/);
  });

  it('names the sequence and position of non-finite logits', async () => {
    const data = new Float32Array(12).fill(0.5);
    data[4 + 1] = Number.NaN; // position 1 predicts token 2 (a completion token)
    await expect(sequenceLogps(Tensor.from(data, { shape: [1, 3, 4] }), ids, mask)).rejects.toThrow(/sequence 0, position 2 is not finite/);
  });
});
