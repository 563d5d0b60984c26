import { DisposedError, Tensor, memory, randn, runOp } from '../lib';
import { native } from '../lib/native/binding';
import { settleGarbage } from './support/gc';

describe('dispose and memory accounting', () => {
  beforeEach(settleGarbage);

  it('returns to the baseline live count and bytes after disposing', async () => {
    const before = memory();
    const made: Tensor[] = [];
    for (let i = 0; i < 50; i += 1) {
      const a = Tensor.from(new Float32Array(1000).fill(i), { shape: [10, 100] });
      const at = await a.transpose(0, 1);
      const b = await a.matmul(at);
      const e = await b.exp();
      const c = await e.sum([1], { keepdim: true });
      made.push(a, at, b, e, c);
    }
    const during = memory();
    expect(during.liveTensors - before.liveTensors).toBe(250);
    expect(during.liveBytes - before.liveBytes).toBeGreaterThanOrEqual(50 * (4000 + 400 + 40));
    for (const t of made) t.dispose();
    expect(memory().liveTensors).toBe(before.liveTensors);
    expect(memory().liveBytes).toBe(before.liveBytes);
  });

  it('frees tensors nobody disposed once they are garbage collected (the fallback)', async () => {
    const before = memory().liveTensors;
    await (async () => {
      for (let i = 0; i < 20; i += 1) await (await randn([64, 64])).exp();
    })();
    expect(memory().liveTensors).toBeGreaterThan(before);
    await settleGarbage();
    expect(memory().liveTensors).toBe(before);
  });

  it('counts a shared storage once', async () => {
    const before = memory();
    const a = await randn([256, 256]);
    const view = a.detach();
    expect(memory().liveTensors - before.liveTensors).toBe(2);
    expect(memory().liveBytes - before.liveBytes).toBe(256 * 256 * 4);
    a.dispose();
    view.dispose();
  });

  it('throws DisposedError on any use after dispose, and dispose is idempotent', async () => {
    const t = Tensor.from([1, 2, 3]);
    t.dispose();
    t.dispose();
    expect(t.disposed).toBe(true);
    expect(() => t.shape).toThrow(DisposedError);
    expect(() => t.toTypedArray()).toThrow(/Tensor was disposed/);
    const other = Tensor.from([1, 2, 3]);
    await expect(other.add(t)).rejects.toThrow(DisposedError);
    expect(String(t)).toBe('Tensor(disposed)');
  });

  it('supports `using` and `await using`', async () => {
    const before = memory().liveTensors;
    {
      using a = Tensor.from([1, 2]);
      await using b = await a.mul(2);
      expect(memory().liveTensors - before).toBe(2);
      expect(await b.toArray()).toEqual([2, 4]);
    }
    expect(memory().liveTensors).toBe(before);
  });

  it('rejects objects that are not tensors, even look-alikes', async () => {
    const fake = { shape: [1], dtype: 'float32', device: 'cpu', disposed: false };
    expect(() => native().op('neg', [fake as never], undefined, true)).toThrow(/neg input 0 must be a Tensor/);
    expect(() => native().op('neg', [{} as never], undefined, true)).toThrow(/must be a Tensor/);
    const NativeTensor = native().NativeTensor as unknown as new (...args: unknown[]) => unknown;
    expect(() => new NativeTensor()).toThrow(/created by torch-dpo, not with new/);
    const t = Tensor.from([1]);
    const handle = t.handle;
    t.dispose();
    expect(() => native().op('neg', [handle], undefined, true)).toThrow(/Tensor was disposed/);
  });

  it('reports bad op calls clearly', async () => {
    const t = Tensor.from([1, 2]);
    expect(() => native().op('no_such_op', [t.handle], undefined, true)).toThrow(/unknown op 'no_such_op'/);
    expect(() => native().op('matmul', [t.handle], undefined, true)).toThrow(/takes 2 tensor inputs, got 1/);
    await expect(runOp('sum', [t], { dim: 1.5 })).rejects.toThrow(/'dim' must be a list of integers|integer/);
    await expect(runOp('transpose', [t], { dim0: 0 })).rejects.toThrow(/attribute 'dim1' is required/);
    await expect(runOp('zeros', [], { shape: [2], device: 'tpu:0' })).rejects.toThrow();
  });
});
