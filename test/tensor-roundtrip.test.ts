import { Tensor, type DType, type HostArray } from '../lib';

const SHAPES: number[][] = [[], [0], [5], [2, 3], [2, 0, 4], [1, 1, 1, 7], [3, 2, 2]];

function sample(dtype: DType, n: number): HostArray {
  const ramp = (f: (i: number) => number) => Array.from({ length: n }, (_, i) => f(i));
  switch (dtype) {
    case 'float32': return Float32Array.from(ramp((i) => (i - 3) * 0.37));
    case 'float64': return Float64Array.from(ramp((i) => Math.PI * (i - 2) * 1e-3 + i * 1e10));
    case 'int32': return Int32Array.from(ramp((i) => (i % 2 ? -1 : 1) * (2 ** 31 - 1 - i)));
    case 'int64': return BigInt64Array.from(ramp((i) => i), (i) => (BigInt(i) - 3n) * 2n ** 60n + BigInt(i));
    case 'uint8': return Uint8Array.from(ramp((i) => (i * 37) % 256));
    case 'bool': return Uint8Array.from(ramp((i) => i % 3 === 0 ? 1 : 0));
    // float16 / bfloat16 travel as raw 16-bit words.
    case 'float16':
    case 'bfloat16': return Uint16Array.from(ramp((i) => (0x3c00 + i * 97) & 0x7bff));
  }
}

describe('host data round trip', () => {
  const dtypes: DType[] = ['float32', 'float64', 'float16', 'bfloat16', 'int32', 'int64', 'uint8', 'bool'];
  for (const dtype of dtypes) {
    for (const shape of SHAPES) {
      it(`${dtype} [${shape}]`, async () => {
        const n = shape.reduce((a, b) => a * b, 1);
        const data = sample(dtype, n);
        const t = Tensor.from(data, { shape, dtype });
        expect(t.shape).toEqual(shape);
        expect(t.dtype).toBe(dtype);
        expect(t.device).toBe('cpu');
        expect(t.numel).toBe(n);
        const back = await t.toTypedArray();
        // Arrays made by the addon belong to Node's main realm, not jest's sandbox: compare by name.
        expect(back.constructor.name).toBe(data.constructor.name);
        expect(Array.from(back as ArrayLike<unknown>)).toEqual(Array.from(data as ArrayLike<unknown>));
        t.dispose();
      });
    }
  }

  it('keeps int64 values beyond 2^53 exact, both ways', async () => {
    const values = [2n ** 53n + 1n, -(2n ** 63n), 2n ** 63n - 1n, 9007199254740993n];
    const t = Tensor.from(BigInt64Array.from(values));
    expect(Array.from(await t.toTypedArray() as BigInt64Array)).toEqual(values);
    const first = await (await t.narrow(0, 0, 1)).reshape([]);
    expect(await first.item()).toBe(2n ** 53n + 1n);
    const sum = await (await Tensor.from([2n ** 62n, 2n ** 61n + 7n]).sum()).item();
    expect(sum).toBe(2n ** 62n + 2n ** 61n + 7n);
  });

  it('accepts raw bytes for bfloat16 and float16, and converts to float32 exactly', async () => {
    // 1.5 is 0x3FC0 in bfloat16 and 0x3E00 in float16; -2 is 0xC000 in both.
    const bf16 = Tensor.from(new Uint8Array([0xc0, 0x3f, 0x00, 0xc0]), { dtype: 'bfloat16' });
    expect(bf16.shape).toEqual([2]);
    expect(Array.from(await (await bf16.to('float32')).toTypedArray() as Float32Array)).toEqual([1.5, -2]);
    const f16 = Tensor.from(new Uint16Array([0x3e00, 0xc000]).buffer, { dtype: 'float16', shape: [2, 1] });
    expect(Array.from(await (await f16.to('float32')).toTypedArray() as Float32Array)).toEqual([1.5, -2]);
    const back = await (await Tensor.from([1.5, -2]).to('bfloat16')).toTypedArray();
    expect(Array.from(back as Uint16Array)).toEqual([0x3fc0, 0xc000]);
  });

  it('builds tensors from nested arrays with the shape inferred', async () => {
    const t = Tensor.from([[1, 2, 3], [4, 5, 6]]);
    expect(t.shape).toEqual([2, 3]);
    expect(t.dtype).toBe('float32');
    expect(await t.toArray()).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Tensor.from([[true], [false]]).dtype).toBe('bool');
    expect(await Tensor.from([[true], [false]]).toArray()).toEqual([true, false]);
    expect(Tensor.from([1, 2], { dtype: 'int32' }).dtype).toBe('int32');
    expect(Tensor.from(7).shape).toEqual([]);
    expect(await Tensor.from(7, { dtype: 'int64' }).item()).toBe(7n);
    expect(await Tensor.from(true).item()).toBe(true);
  });

  it('gives zero-copy host arrays that do not alias the tensor', async () => {
    const t = Tensor.from([1, 2, 3]);
    const host = (await t.toTypedArray()) as Float32Array;
    host[0] = 100;
    expect(Array.from(await t.toTypedArray() as Float32Array)).toEqual([1, 2, 3]);
  });
});

describe('host data errors', () => {
  it('rejects a typed array of another dtype', () => {
    expect(() => Tensor.from(new Float64Array(4), { dtype: 'float32' })).toThrow(/float32 tensor needs a Float32Array, got a Float64Array/);
    expect(() => Tensor.from(new Int32Array(2), { dtype: 'int64' })).toThrow(/BigInt64Array/);
  });
  it('rejects data that does not fill the shape', () => {
    expect(() => Tensor.from(new Float32Array(5), { shape: [2, 3] })).toThrow(/holds 5 float32 values but shape needs 6/);
    expect(() => Tensor.from(new Float32Array(1), { shape: [] , dtype: 'float32'})).not.toThrow();
    expect(() => Tensor.from(new Float32Array(0), { shape: [] })).toThrow(/shape needs 1/);
    expect(() => Tensor.from(new Uint8Array(3), { dtype: 'bfloat16' })).toThrow(/3 bytes is not a whole number of 2-byte bfloat16 values/);
  });
  it('rejects bad shapes and dtypes', () => {
    expect(() => Tensor.from(new Float32Array(2), { shape: [-2] })).toThrow(/shape\[0\] must be a non-negative integer/);
    expect(() => Tensor.from(new Float32Array(2), { shape: [1.5] })).toThrow(/shape\[0\]/);
    expect(() => Tensor.from(new Float32Array(2), { dtype: 'float8' as DType })).toThrow(/unknown dtype 'float8'/);
    expect(() => Tensor.from([[1, 2], [3]])).toThrow(/ragged array/);
  });
  it('never narrows integers silently', () => {
    expect(() => Tensor.from([2 ** 31], { dtype: 'int32' })).toThrow(/out of range for dtype int32/);
    expect(() => Tensor.from([1.5], { dtype: 'int32' })).toThrow(/not an integer/);
    expect(() => Tensor.from([2 ** 60], { dtype: 'int64' })).toThrow(/not a safe integer/);
    expect(() => Tensor.from([2n ** 64n])).toThrow(/out of range for dtype int64/);
    expect(() => Tensor.from([256], { dtype: 'uint8' })).toThrow(/out of range/);
    expect(() => Tensor.from(new Uint8Array([0, 2]), { dtype: 'bool' })).toThrow(/bool data must hold 0 or 1, found 2 at index 1/);
    expect(() => Tensor.from([1, 2], { dtype: 'bfloat16' })).toThrow(/to\('bfloat16'\)/);
  });
});
