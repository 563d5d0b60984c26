import { consecutiveGroups } from '../consecutive-groups';
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
  const sizes = tensors.map((t) => t.numel * DTYPE_BYTES[t.dtype as DType]);
  return consecutiveGroups(sizes, bucketBytes, (i) => tensors[i].dtype !== tensors[i - 1].dtype);
}
