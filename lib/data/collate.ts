import { DataError } from '../errors';
import { Tensor } from '../tensor';
import type { TokenizedPair } from './tokenize-pairs';
import { packPairs, type PackedLayout, type PackingOptions } from './packed-layout';

/** The packed layout's tensors (lib/data/packed-layout.ts), int64 unless said. */
export interface PackedTensors {
  /** [1, N] the stream's token ids and positions. */
  inputIds: Tensor;
  positionIds: Tensor;
  /** [S, W] stream index of each attention-block slot (padding: N), and its branch (−1 padding) and position. */
  segmentIndex: Tensor;
  segmentBranches: Tensor;
  segmentPositions: Tensor;
  /** [N] each stream token's block slot. */
  tokenSlot: Tensor;
  /** [2B·L] the stream index of each token of the padded 2B layout. */
  sequenceIndex: Tensor;
  /** N: the tokens the model's token-wise layers run on (all real). */
  tokens: number;
}

export interface PreferenceBatch {
  /**
   * With padding_free: the packed rows the model runs on; the padded fields below still describe
   * the 2B sequences (labels and masks of the log-prob ops, and the fallback for traced models).
   */
  packed?: PackedTensors;
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

export interface CollateOptions {
  padId: number | null;
  padToMultipleOf?: number;
  /** Also the packed layout (padding_free / prefix_sharing; see packPairs). */
  packing?: PackingOptions | null;
}

/**
 * The 2B-row layout of the spec, padded with `padId` to the longest row (rounded up to
 * padToMultipleOf); with `packing`, also the packed layout (then rows are not rounded up: the
 * padded fields only index labels).
 */
export function collate(pairs: TokenizedPair[], options: CollateOptions): PreferenceBatch {
  if (pairs.length === 0) throw new DataError('collate: a batch needs at least one pair');
  if (options.padId === null) throw new DataError('collate: the tokenizer has neither a pad nor an EOS token to pad with');
  const rows = [...pairs.map((p) => p.chosen), ...pairs.map((p) => p.rejected)];
  let width = Math.max(...rows.map((r) => r.ids.length));
  const multiple = options.packing ? 1 : options.padToMultipleOf ?? 1;
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
    ...(options.packing ? { packed: packedTensors(packPairs(pairs, options.packing)) } : {}),
  };
}

function packedTensors(layout: PackedLayout): PackedTensors {
  const int64 = (values: number[], shape: number[]) => Tensor.from(BigInt64Array.from(values, (v) => BigInt(v)), { shape });
  const blocks = [layout.segments, layout.segmentWidth];
  return {
    inputIds: int64(layout.inputIds, [1, layout.tokens]), positionIds: int64(layout.positionIds, [1, layout.tokens]),
    segmentIndex: int64(layout.segmentIndex, blocks), segmentBranches: int64(layout.segmentBranches, blocks),
    segmentPositions: int64(layout.segmentPositions, blocks), tokenSlot: int64(layout.tokenSlot, [layout.tokens]),
    sequenceIndex: int64(layout.sequenceIndex, [layout.sequenceIndex.length]), tokens: layout.tokens,
  };
}

export function disposeBatch(batch: PreferenceBatch): void {
  const p = batch.packed;
  if (p) for (const t of [p.inputIds, p.positionIds, p.segmentIndex, p.segmentBranches, p.segmentPositions, p.tokenSlot, p.sequenceIndex]) t.dispose();
  batch.inputIds.dispose();
  batch.attentionMask.dispose();
  batch.completionMask.dispose();
}
