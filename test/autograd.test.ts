import { NativeError, Tensor, isGradEnabled, noGrad, enableGrad, randn, manualSeed } from '../lib';

const values = async (t: Tensor) => Array.from((await t.toTypedArray()) as Float64Array);

describe('autograd', () => {
  it('computes d/dx sum(x²) = 2x', async () => {
    const x = Tensor.from([1, -2, 3.5], { dtype: 'float64', requiresGrad: true });
    const y = await (await x.square()).sum();
    expect(y.requiresGrad).toBe(true);
    expect(await x.grad()).toBeNull();
    await y.backward();
    expect(await values((await x.grad())!)).toEqual([2, -4, 7]);
  });

  it('matches the analytic gradient of log_softmax + gather in float64', async () => {
    manualSeed(7);
    const logits = await (await randn([3, 5], { dtype: 'float64' })).setRequiresGrad();
    const index = Tensor.from([[4], [0], [2]], { dtype: 'int64' });
    const picked = await (await logits.logSoftmax(1)).gather(1, index);
    await (await picked.sum()).backward();
    const softmax = await values(await logits.detach().softmax(1));
    const grad = await values((await logits.grad())!);
    const labels = [4, 0, 2];
    for (let r = 0; r < 3; r += 1) {
      for (let c = 0; c < 5; c += 1) {
        const expected = (c === labels[r] ? 1 : 0) - softmax[r * 5 + c];
        expect(Math.abs(grad[r * 5 + c] - expected)).toBeLessThan(1e-12);
      }
    }
  });

  it('accumulates gradients over two backward passes', async () => {
    const w = Tensor.from([[1, 2], [3, 4]], { dtype: 'float64', requiresGrad: true });
    const x = Tensor.from([[1], [1]], { dtype: 'float64' });
    for (let i = 0; i < 2; i += 1) await (await (await w.matmul(x)).sum()).backward();
    expect(await values((await w.grad())!)).toEqual([2, 2, 2, 2]);
  });

  it('records no history inside noGrad, across awaits and concurrent scopes', async () => {
    const x = Tensor.from([1, 2], { requiresGrad: true });
    const inside = noGrad(async () => {
      const a = await x.mul(2);
      await new Promise((r) => setTimeout(r, 5));
      expect(isGradEnabled()).toBe(false);
      const b = await a.add(1);
      const c = await enableGrad(() => x.mul(3));
      return [a.requiresGrad, b.requiresGrad, c.requiresGrad];
    });
    const outside = await x.mul(2); // submitted while the noGrad scope is suspended
    expect(outside.requiresGrad).toBe(true);
    expect(await inside).toEqual([false, false, true]);
    expect(isGradEnabled()).toBe(true);
  });

  it('tracks setRequiresGrad and detach', async () => {
    const x = Tensor.from([1, 2]);
    expect(x.requiresGrad).toBe(false);
    await x.setRequiresGrad(true);
    expect(x.requiresGrad).toBe(true);
    expect(x.detach().requiresGrad).toBe(false);
    await x.setRequiresGrad(false);
    expect(x.requiresGrad).toBe(false);
  });

  it('turns autograd misuse into NativeError', async () => {
    const x = Tensor.from([1, 2], { requiresGrad: true });
    const y = await x.mul(2);
    await expect(y.backward()).rejects.toThrow(NativeError);
    await expect(y.backward()).rejects.toThrow(/grad can be implicitly created only for scalar outputs/);
    const ints = Tensor.from([1, 2], { dtype: 'int64' });
    await expect(ints.setRequiresGrad()).rejects.toThrow(/floating point/);
  });
});
