import { DTYPE_BYTES } from '../dtypes';
import type { DType } from '../native/binding';

/** The bucket size of gradient collectives (DDP's default bucket_cap_mb); the native side coalesces alike. */
export const BUCKET_BYTES = 25 * 1024 * 1024;

/** Groups tensors of one dtype into ~25 MB buckets, in order (as DDP's reducer does): their indices. */
export function bucketIndices(tensors: { numel: number; dtype: string }[]): number[][] {
  const out: number[][] = [];
  let current: number[] = [];
  let bytes = 0;
  tensors.forEach((t, i) => {
    const size = t.numel * DTYPE_BYTES[t.dtype as DType];
    if (current.length > 0 && (bytes + size > BUCKET_BYTES || tensors[current[0]].dtype !== t.dtype)) {
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
