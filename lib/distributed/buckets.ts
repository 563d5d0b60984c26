import { noGrad } from '../grad-mode';
import type { Tensor } from '../tensor';
import { cat } from '../tensor-functions';
import type { ProcessGroup } from './process-group';

const BUCKET_BYTES = 25 * 1024 * 1024;
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

const buckets = (tensors: Tensor[]): Tensor[][] => bucketIndices(tensors).map((bucket) => bucket.map((i) => tensors[i]));

/** Runs a collective over flattened buckets and copies the results back into the tensors. */
async function bucketed(tensors: Tensor[], collective: (flat: Tensor) => Promise<void>): Promise<void> {
  await noGrad(async () => {
    for (const bucket of buckets(tensors)) {
      const flat = await cat(await Promise.all(bucket.map((t) => t.reshape([-1]))));
      await collective(flat);
      let offset = 0;
      for (const t of bucket) {
        await t.copy_(await (await flat.narrow(0, offset, t.numel)).reshape(t.shape));
        offset += t.numel;
      }
      flat.dispose();
    }
  });
}

export const allReduceBucketed = (group: ProcessGroup, tensors: Tensor[], op: 'sum' | 'avg' | 'max' | 'min' = 'avg') =>
  bucketed(tensors, (flat) => group.allReduce([flat], op));

export const broadcastBucketed = (group: ProcessGroup, tensors: Tensor[], root = 0) => bucketed(tensors, (flat) => group.broadcast([flat], root));
