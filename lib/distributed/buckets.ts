/** The bucket size of gradient collectives (DDP's default bucket_cap_mb); the native side coalesces alike. */
export const BUCKET_BYTES = 25 * 1024 * 1024;
const ITEM_BYTES: Record<string, number> = { float32: 4, float64: 8, float16: 2, bfloat16: 2, int32: 4, int64: 8, uint8: 1, bool: 1 };

/** Groups tensors of one dtype into ~25 MB buckets, in order (as DDP's reducer does): their indices. */
export function bucketIndices(tensors: { numel: number; dtype: string }[]): number[][] {
  const out: number[][] = [];
  let current: number[] = [];
  let bytes = 0;
  tensors.forEach((t, i) => {
    const size = t.numel * ITEM_BYTES[t.dtype];
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
