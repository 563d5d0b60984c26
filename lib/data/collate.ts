import { DataError } from '../errors';
import { Tensor } from '../tensor';
import type { TokenizedPair } from './tokenize-pairs';

export interface PreferenceBatch {
  /** [2B,T] int64: prompt+chosen rows 0..B-1, then prompt+rejected rows B..2B-1, right-padded. */
  inputIds: Tensor;
  /** [2B,T] int64: 1 on real tokens. */
  attentionMask: Tensor;
  /** [2B,T] bool: 1 only on completion tokens. */
  completionMask: Tensor;
  /** Real length of each of the 2B rows. */
  lengths: number[];
  pairs: number;
}

/** The 2B-row layout of the spec, padded with `padId` to the longest row (rounded up to padToMultipleOf). */
export function collate(pairs: TokenizedPair[], options: { padId: number | null; padToMultipleOf?: number }): PreferenceBatch {
  if (pairs.length === 0) throw new DataError('collate: a batch needs at least one pair');
  if (options.padId === null) throw new DataError('collate: the tokenizer has neither a pad nor an EOS token to pad with');
  const rows = [...pairs.map((p) => p.chosen), ...pairs.map((p) => p.rejected)];
  let width = Math.max(...rows.map((r) => r.ids.length));
  const multiple = options.padToMultipleOf ?? 1;
  width = Math.ceil(width / multiple) * multiple;
  const n = rows.length;
  const ids = new BigInt64Array(n * width).fill(BigInt(options.padId));
  const attention = new BigInt64Array(n * width);
  const completion = new Uint8Array(n * width);
  rows.forEach((row, r) => {
    const base = r * width;
    for (let t = 0; t < row.ids.length; t += 1) {
      ids[base + t] = BigInt(row.ids[t]);
      attention[base + t] = 1n;
      if (t >= row.promptLength) completion[base + t] = 1;
    }
  });
  return {
    inputIds: Tensor.from(ids, { shape: [n, width] }),
    attentionMask: Tensor.from(attention, { shape: [n, width] }),
    completionMask: Tensor.from(completion, { shape: [n, width], dtype: 'bool' }),
    lengths: rows.map((r) => r.ids.length),
    pairs: pairs.length,
  };
}

export function disposeBatch(batch: PreferenceBatch): void {
  batch.inputIds.dispose();
  batch.attentionMask.dispose();
  batch.completionMask.dispose();
}
