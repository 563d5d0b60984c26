import type { DType } from './native/binding';

/** Bytes per element of each dtype (the one table; buckets, host copies and memory figures use it). */
export const DTYPE_BYTES: Record<DType, number> = { float32: 4, float64: 8, float16: 2, bfloat16: 2, int32: 4, int64: 8, uint8: 1, bool: 1 };

/** The floating dtypes (what a checkpoint's "as stored" and a trace's dtype are read from). */
export const FLOAT_DTYPES: ReadonlySet<DType> = new Set<DType>(['float16', 'bfloat16', 'float32', 'float64']);
