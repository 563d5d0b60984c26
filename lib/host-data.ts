import { DataError } from './errors';
import { types } from 'node:util';
import type { DType, HostArray } from './native/binding';

/** Plain JS data a tensor can be made from: typed arrays, or (nested) arrays of numbers/bigints/booleans. */
export type TensorData = HostArray | ArrayBuffer | NestedArray<number> | NestedArray<bigint> | NestedArray<boolean>;
type NestedArray<T> = T | NestedArray<T>[];

/** Typed array or raw buffer (realm-independent: arrays may come from a vm context or the addon). */
export function isBinary(data: unknown): data is ArrayBufferView | ArrayBuffer {
  return ArrayBuffer.isView(data) || types.isArrayBuffer(data);
}

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

/** The dtype a typed array holds when none is asked for. */
export function defaultDtypeOf(data: TensorData): DType {
  if (types.isFloat32Array(data)) return 'float32';
  if (types.isFloat64Array(data)) return 'float64';
  if (types.isInt32Array(data)) return 'int32';
  if (types.isBigInt64Array(data)) return 'int64';
  if (types.isUint8Array(data)) return 'uint8';
  if (types.isUint16Array(data) || types.isArrayBuffer(data)) {
    throw new DataError('raw 16-bit data needs an explicit dtype: float16 or bfloat16');
  }
  const first = flatten(data)[0];
  if (typeof first === 'bigint') return 'int64';
  if (typeof first === 'boolean') return 'bool';
  return 'float32';
}

/** The shape of a nested array (rectangular, or a TypeError naming where it is not). */
export function inferShape(data: unknown): number[] {
  if (!Array.isArray(data)) return [];
  const shape = [data.length];
  if (data.length === 0) return shape;
  const inner = inferShape(data[0]);
  data.forEach((item, i) => {
    const s = inferShape(item);
    if (s.length !== inner.length || s.some((d, k) => d !== inner[k])) {
      throw new DataError(`ragged array: element ${i} has shape [${s}] but element 0 has [${inner}]`);
    }
  });
  return shape.concat(inner);
}

function flatten(data: unknown): unknown[] {
  return Array.isArray(data) ? (data as unknown[]).flat(Infinity) : [data];
}

/** Plain arrays → the typed array of `dtype`, refusing any value the dtype cannot hold exactly. */
export function toHostArray(data: TensorData, dtype: DType): ArrayBufferView | ArrayBuffer {
  if (isBinary(data)) return data;
  const values = flatten(data);
  const bad = (i: number, why: string) => new DataError(`value ${String(values[i])} at flat index ${i} ${why} for dtype ${dtype}`);
  switch (dtype) {
    case 'float32':
    case 'float64': {
      const out = dtype === 'float32' ? new Float32Array(values.length) : new Float64Array(values.length);
      values.forEach((v, i) => {
        if (typeof v !== 'number') throw bad(i, 'is not a number');
        out[i] = v;
      });
      return out;
    }
    case 'int32':
    case 'uint8':
    case 'bool': {
      const out = dtype === 'int32' ? new Int32Array(values.length) : new Uint8Array(values.length);
      const [lo, hi] = dtype === 'int32' ? [INT32_MIN, INT32_MAX] : dtype === 'uint8' ? [0, 255] : [0, 1];
      values.forEach((v, i) => {
        const n = typeof v === 'boolean' ? Number(v) : typeof v === 'bigint' ? Number(v) : v;
        if (typeof n !== 'number' || !Number.isInteger(n)) throw bad(i, 'is not an integer');
        if (n < lo || n > hi) throw bad(i, 'is out of range');
        out[i] = n;
      });
      return out;
    }
    case 'int64': {
      const out = new BigInt64Array(values.length);
      values.forEach((v, i) => {
        if (typeof v === 'bigint') {
          if (BigInt.asIntN(64, v) !== v) throw bad(i, 'is out of range');
          out[i] = v;
        } else if (typeof v === 'number' && Number.isSafeInteger(v)) {
          out[i] = BigInt(v);
        } else {
          throw bad(i, 'is not a safe integer (pass a bigint for values beyond 2^53)');
        }
      });
      return out;
    }
    default:
      throw new DataError(
        `plain arrays cannot become ${dtype} directly: pass raw 16-bit words (Uint16Array), or make a float32 tensor and convert it with .to('${dtype}')`,
      );
  }
}
