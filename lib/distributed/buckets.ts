import { DTYPE_BYTES } from '../dtypes';
import type { DType } from '../native/binding';

/**
 * The bucket size of gradient collectives: DDP's default bucket_cap_mb (25), unless ddp_bucket_cap_mb
 * says otherwise. The one place of this rule: a process group passes its size to the native side,
 * which coalesces all-reduces and lays out the gradient reducer's buckets by it.
 */
export const BUCKET_BYTES = 25 * 1024 * 1024;
export const bucketBytesOf = (capMb: number | undefined) => (capMb === undefined ? BUCKET_BYTES : Math.round(capMb * 1024 * 1024));

/** Groups tensors of one dtype into buckets of up to bucketBytes, in order (as DDP's reducer does): their indices. */
export function bucketIndices(tensors: { numel: number; dtype: string }[], bucketBytes = BUCKET_BYTES): number[][] {
  const out: number[][] = [];
  let current: number[] = [];
  let bytes = 0;
  tensors.forEach((t, i) => {
    const size = t.numel * DTYPE_BYTES[t.dtype as DType];
    if (current.length > 0 && (bytes + size > bucketBytes || tensors[current[0]].dtype !== t.dtype)) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(i);
    bytes += size;
  });
  if (current.length > 0) out.push(current);
  return out;
}
