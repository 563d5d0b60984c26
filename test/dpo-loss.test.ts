import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, NativeError, Tensor, dpoLoss, type DpoLossConfigInput, type DpoLossInputs } from '../lib';

interface GoldenCase {
  config: DpoLossConfigInput;
  loss: number;
  losses: number[];
  metrics: Record<string, number>;
  grads: Record<string, number[] | number[][]>;
}
// Written by scripts/make-loss-fixtures.py (Debian's torch, float64, formulas of the spec).
const golden = JSON.parse(readFileSync(join(__dirname, 'fixtures', 'dpo-loss-golden.json'), 'utf8')) as {
  inputs: Record<string, number[] | number[][]>;
  cases: GoldenCase[];
};
const g = golden.inputs;
const f64 = (x: number[] | number[][]) => Tensor.from(x, { dtype: 'float64' });
const values = async (t: Tensor) => Array.from((await t.toTypedArray()) as Float64Array);
const close = (got: number, want: number, tol = 1e-10) => expect(Math.abs(got - want)).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(want)));

function goldenInputs(leaves: Record<string, Tensor>): DpoLossInputs {
  return {
    policyChosenLogps: leaves.policyChosen ?? f64(g.policyChosen),
    policyRejectedLogps: leaves.policyRejected ?? f64(g.policyRejected),
    referenceChosenLogps: g.referenceChosen as number[],
    referenceRejectedLogps: g.referenceRejected as number[],
    chosenLengths: g.chosenLengths as number[],
    rejectedLengths: g.rejectedLengths as number[],
    chosenWpoLogSum: g.chosenWpoLogSum as number[],
    rejectedWpoLogSum: g.rejectedWpoLogSum as number[],
    chosenTokenLogps: leaves.chosenTokenLogps ?? f64(g.chosenTokenLogps),
    rejectedTokenLogps: leaves.rejectedTokenLogps ?? f64(g.rejectedTokenLogps),
    referenceChosenTokenLogps: f64(g.referenceChosenTokenLogps),
    referenceRejectedTokenLogps: f64(g.referenceRejectedTokenLogps),
    chosenMask: f64(g.chosenMask),
    rejectedMask: f64(g.rejectedMask),
  };
}

describe('dpoLoss against golden values (every loss type and f-divergence)', () => {
  for (const c of golden.cases) {
    it(JSON.stringify(c.config), async () => {
      const leaves: Record<string, Tensor> = {};
      for (const name of Object.keys(c.grads)) leaves[name] = await f64(g[name]).setRequiresGrad();
      const result = await dpoLoss(goldenInputs(leaves), c.config);
      expect(result.loss.shape).toEqual([]);
      close((await result.loss.item()) as number, c.loss);
      (await values(result.losses)).forEach((v, i) => close(v, c.losses[i]));
      for (const [name, value] of Object.entries(c.metrics)) close(result.metrics[name as keyof typeof result.metrics], value);
      await result.loss.backward();
      for (const [name, expected] of Object.entries(c.grads)) {
        const grad = await leaves[name].grad();
        const got = grad ? await values(grad) : [];
        (expected as number[]).flat().forEach((v, i) => close(got[i] ?? 0, v));
      }
    });
  }
});

describe('dpoLoss invariants and gradients', () => {
  it('is exactly ln 2 at step 0 (policy = reference), with zero rewards and accuracy', async () => {
    const logps = [-12.5, -40.25, -3.125, -77];
    const result = await dpoLoss({
      policyChosenLogps: logps, policyRejectedLogps: logps.map((x) => x - 5),
      referenceChosenLogps: logps, referenceRejectedLogps: logps.map((x) => x - 5),
    });
    expect(await result.loss.item()).toBe(Math.LN2);
    expect(result.metrics['rewards/chosen']).toBe(0);
    expect(result.metrics['rewards/rejected']).toBe(0);
    expect(result.metrics['rewards/accuracies']).toBe(0);
    expect(result.metrics['rewards/margins']).toBe(0);
    expect(result.metrics['logps/chosen']).toBeCloseTo(logps.reduce((a, b) => a + b) / 4, 12);
  });

  it('matches central finite differences w.r.t. the policy log-probs', async () => {
    const base = { chosen: [-10.5, -22.1, -7.3], rejected: [-11.2, -20.7, -9.9] };
    const reference = { referenceChosenLogps: [-10, -21, -8], referenceRejectedLogps: [-12, -20, -9] };
    const lengths = { chosenLengths: [5, 9, 3], rejectedLengths: [6, 7, 4] };
    for (const config of [{}, { loss_type: 'ipo' }, { loss_type: 'hinge', beta: 0.05 }, { loss_type: ['sigmoid', 'sft'], f_divergence_type: 'js_divergence' }] as DpoLossConfigInput[]) {
      const lossAt = async (chosen: number[], rejected: number[]) =>
        (await (await dpoLoss({ policyChosenLogps: chosen, policyRejectedLogps: rejected, ...reference, ...lengths }, config)).loss.item()) as number;
      const pc = await f64(base.chosen).setRequiresGrad();
      const pr = await f64(base.rejected).setRequiresGrad();
      await (await dpoLoss({ policyChosenLogps: pc, policyRejectedLogps: pr, ...reference, ...lengths }, config)).loss.backward();
      const analytic = [...(await values((await pc.grad())!)), ...(await values((await pr.grad())!))];
      const h = 1e-6;
      for (let i = 0; i < 6; i += 1) {
        const bump = (d: number) => {
          const c = [...base.chosen], r = [...base.rejected];
          if (i < 3) c[i] += d; else r[i - 3] += d;
          return lossAt(c, r);
        };
        const numeric = ((await bump(h)) - (await bump(-h))) / (2 * h);
        expect(Math.abs(numeric - analytic[i])).toBeLessThan(1e-7);
      }
    }
  });
});

describe('dpoLoss configuration and input errors', () => {
  const ok: DpoLossInputs = { policyChosenLogps: [-1, -2], policyRejectedLogps: [-2, -3], referenceChosenLogps: [-1, -2], referenceRejectedLogps: [-2, -3] };

  it.each([
    [{ loss_type: 'exo_pair' }, /exo_pair needs label_smoothing > 0/],
    [{ loss_type: 'robust', label_smoothing: 0.5 }, /robust needs 0 <= label_smoothing < 0.5/],
    [{ loss_type: 'aot', use_weighting: true }, /WPO weighting cannot be combined with aot/],
    [{ loss_type: 'kto' }, /loss_type/],
    [{ loss_type: ['sigmoid', 'ipo'], loss_weights: [1] }, /one weight per loss_type: 2 type\(s\), 1 weight/],
    [{ f_divergence_type: 'hellinger' }, /f_divergence_type/],
    [{ betta: 0.1 }, /betta: unknown option \(did you mean 'beta'\?\)/],
    [{ beta: -1 }, /beta/],
  ] as [Record<string, unknown>, RegExp][])('rejects %j before any compute', async (config, message) => {
    await expect(dpoLoss(ok, config as DpoLossConfigInput)).rejects.toThrow(ConfigError);
    await expect(dpoLoss(ok, config as DpoLossConfigInput)).rejects.toThrow(message);
  });

  it('names the inputs a configuration needs', async () => {
    const noReference = { policyChosenLogps: [-1], policyRejectedLogps: [-2] };
    await expect(dpoLoss(noReference)).rejects.toThrow(/needs referenceChosenLogps, referenceRejectedLogps/);
    expect(await (await dpoLoss(noReference, { reference_free: true })).loss.item()).toBeCloseTo(-Math.log(1 / (1 + Math.exp(-0.1))), 12);
    await expect(dpoLoss(ok, { loss_type: 'ipo' })).rejects.toThrow(/loss_type ipo needs chosenLengths, rejectedLengths/);
    await expect(dpoLoss(ok, { use_weighting: true })).rejects.toThrow(/use_weighting \(WPO\) needs chosenWpoLogSum/);
    await expect(dpoLoss(ok, { ld_alpha: 0.5 })).rejects.toThrow(/ld_alpha \(LD-DPO\) needs chosenTokenLogps/);
  });

  it('rejects shape mismatches, non-finite values and empty batches with clear errors', async () => {
    await expect(dpoLoss({ ...ok, policyRejectedLogps: [-1, -2, -3] })).rejects.toThrow(NativeError);
    await expect(dpoLoss({ ...ok, policyRejectedLogps: [-1, -2, -3] })).rejects.toThrow(/must be non-empty \[B\] tensors of one size/);
    await expect(dpoLoss({ ...ok, referenceChosenLogps: [-1] })).rejects.toThrow(/every per-pair input must be \[B\] with B = 2/);
    await expect(dpoLoss({ ...ok, policyChosenLogps: [-1, Number.NaN] })).rejects.toThrow(/input 'policyChosen' is not finite at index 1/);
    await expect(dpoLoss({ policyChosenLogps: [], policyRejectedLogps: [], referenceChosenLogps: [], referenceRejectedLogps: [] })).rejects.toThrow(/non-empty/);
  });
});
