import { Tensor, arange, cat, full, linear, ones, rand, randint, stack, where, zeros } from '../lib';

const f64 = (data: number[] | number[][], shape?: number[]) => Tensor.from(data, { dtype: 'float64', shape });
const vals = async (t: Promise<Tensor> | Tensor) => (await t).toArray();

describe('ops against plain JS math', () => {
  const a = f64([[1, -2, 3], [4, 5, -6]]);
  const b = f64([[0.5, 2, -1], [3, -0.25, 2]]);

  it('does elementwise arithmetic with tensors and scalars', async () => {
    expect(await vals(a.add(b))).toEqual([1.5, 0, 2, 7, 4.75, -4]);
    expect(await vals(a.sub(1))).toEqual([0, -3, 2, 3, 4, -7]);
    expect(await vals(a.mul(b))).toEqual([0.5, -4, -3, 12, -1.25, -12]);
    expect(await vals(a.div(2))).toEqual([0.5, -1, 1.5, 2, 2.5, -3]);
    expect(await vals(a.pow(2))).toEqual([1, 4, 9, 16, 25, 36]);
    expect(await vals(a.rsub(1))).toEqual([0, 3, -2, -3, -4, 7]);
    expect(await vals(a.neg())).toEqual([-1, 2, -3, -4, -5, 6]);
    expect(await vals(a.abs())).toEqual([1, 2, 3, 4, 5, 6]);
    expect(await vals(a.clamp({ min: -1, max: 4 }))).toEqual([1, -1, 3, 4, 4, -1]);
    expect(await vals(a.maximum(b))).toEqual([1, 2, 3, 4, 5, 2]);
    expect(await vals(a.gt(b))).toEqual([true, false, true, true, true, false]);
    expect(await vals(a.eq(3))).toEqual([false, false, true, false, false, false]);
  });

  it('keeps integer dtypes with integer scalars', async () => {
    const i = Tensor.from([1, 2, 3], { dtype: 'int64' });
    const sum = await i.add(2);
    expect(sum.dtype).toBe('int64');
    expect(await sum.toArray()).toEqual([3n, 4n, 5n]);
    expect((await i.mul(0.5)).dtype).toBe('float32');
  });

  it('matches transcendental functions to float64 precision', async () => {
    const x = [-3, -0.5, 0, 0.25, 2];
    const t = f64(x);
    const close = (got: number[], want: number[]) => got.forEach((g, k) => expect(Math.abs(g - want[k])).toBeLessThan(1e-15));
    close((await vals(t.exp())) as number[], x.map(Math.exp));
    close((await vals(t.sigmoid())) as number[], x.map((v) => 1 / (1 + Math.exp(-v))));
    close((await vals(t.logSigmoid())) as number[], x.map((v) => -Math.log1p(Math.exp(-v))));
    close((await vals(t.tanh())) as number[], x.map(Math.tanh));
    close((await vals(t.relu())) as number[], x.map((v) => Math.max(v, 0)));
  });

  it('reduces over all or chosen dimensions', async () => {
    expect(await (await a.sum()).item()).toBe(5);
    expect(await vals(a.sum(1))).toEqual([2, 3]);
    expect((await a.sum(0, { keepdim: true })).shape).toEqual([1, 3]);
    expect(await vals(a.mean([0, 1]))).toEqual([5 / 6]);
    expect(await vals(a.amax(1))).toEqual([3, 5]);
    expect(await vals(a.argmax(1))).toEqual([2n, 1n]);
    const lse = (await vals(a.logsumexp(1))) as number[];
    expect(Math.abs(lse[0] - Math.log(Math.exp(1) + Math.exp(-2) + Math.exp(3)))).toBeLessThan(1e-14);
  });

  it('reshapes and combines', async () => {
    expect((await a.reshape([3, 2])).shape).toEqual([3, 2]);
    expect(await vals(a.transpose(0, 1))).toEqual([1, 4, -2, 5, 3, -6]);
    expect((await a.unsqueeze(0)).shape).toEqual([1, 2, 3]);
    expect(await vals(a.narrow(1, 1, 2))).toEqual([-2, 3, 5, -6]);
    expect((await cat([a, b], 0)).shape).toEqual([4, 3]);
    expect((await stack([a, b], 0)).shape).toEqual([2, 2, 3]);
    expect(await vals(where(await a.gt(0), a, b))).toEqual([1, 2, 3, 4, 5, 2]);
    expect(await vals(a.gather(1, Tensor.from([[2], [0]], { dtype: 'int64' })))).toEqual([3, 4]);
  });

  it('does matmul and linear', async () => {
    const m = await a.matmul(await b.transpose(0, 1));
    expect(await vals(m)).toEqual([0.5 - 4 - 3, 3 + 0.5 + 6, 2 + 10 + 6, 12 - 1.25 - 12]);
    const l = await linear(a, b, f64([1, -1]));
    expect(await vals(l)).toEqual([0.5 - 4 - 3 + 1, 3 + 0.5 + 6 - 1, 2 + 10 + 6 + 1, 12 - 1.25 - 12 - 1]);
  });

  it('creates tensors on a device with a dtype', async () => {
    expect(await vals(zeros([2], { dtype: 'int32' }))).toEqual([0, 0]);
    expect(await vals(ones([2]))).toEqual([1, 1]);
    expect(await vals(full([2], 7.5, { dtype: 'float64' }))).toEqual([7.5, 7.5]);
    expect(await vals(arange(0, 5, 2))).toEqual([0n, 2n, 4n]);
    const r = (await vals(rand([100]))) as number[];
    expect(r.every((v) => v >= 0 && v < 1)).toBe(true);
    const ri = (await vals(randint(3, 6, [50]))) as bigint[];
    expect(ri.every((v) => v >= 3n && v < 6n)).toBe(true);
  });

  it('rejects shape mismatches with the libtorch message', async () => {
    await expect(a.matmul(a)).rejects.toThrow(/matmul: .*(shapes cannot be multiplied|size mismatch)/);
    await expect(a.add(f64([1, 2]))).rejects.toThrow(/add: The size of tensor a \(3\) must match/);
  });
});
