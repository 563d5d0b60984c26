import { DataError } from '../errors';
import type { TokenizedPair } from './tokenize-pairs';

/**
 * The padding-free layout of a micro-batch (padding_free, prefix_sharing). Each pair is a segment:
 * with prefix sharing `[shared prefix, chosen tail, rejected tail]` (the shared prefix is the longest
 * common prefix of the two token sequences, normally the prompt), else two segments `[prompt+chosen]`
 * and `[prompt+rejected]`. Segments pack into rows of at most `rowTokens` tokens (a longer segment
 * gets a row of its own); rows are right-padded to the longest.
 *
 * Attention (the model builds the mask from these vectors): a token sees the earlier tokens of its
 * segment, except that rejected-tail tokens never see chosen-tail tokens. Positions restart at 0 per
 * segment, and the rejected tail continues from the shared prefix (as in its own padded row).
 *
 * The log-prob side is the padded 2B layout itself (`sequenceIndex`): sequence s (chosen rows
 * 0..B-1, then rejected rows B..2B-1, as collate) at position t is the token at flat layout index
 * sequenceIndex[s·L + t]. Gathering the model's hidden states by that index gives, for every
 * sequence, exactly the states its padded row would have, so the log-prob ops (t predicts t+1) run
 * unchanged; the first rejected-tail token is predicted by the last shared token's state.
 */
export interface PackedLayout {
  rows: number;
  width: number;
  /** [rows·width] token ids (pad: padId). */
  inputIds: number[];
  /** [rows·width] position of each token in its own sequence (pad: 0). */
  positionIds: number[];
  /** [rows·width] segment number, unique within the batch (pad: −1). */
  segmentIds: number[];
  /** [rows·width] 0 shared / whole sequence, 1 chosen tail, 2 rejected tail (pad: 0). */
  branchIds: number[];
  /** Longest sequence L: the padded layout is [2B, L]. */
  sequenceLength: number;
  /** [2B·L] flat layout index of each sequence token (padding positions: 0, masked out by the completion mask). */
  sequenceIndex: number[];
  /** Tokens in the layout that are real (not row padding), and the padded 2B layout's token count. */
  realTokens: number;
  paddedTokens: number;
}

export const BRANCH = { shared: 0, chosen: 1, rejected: 2 } as const;

interface Segment {
  ids: number[];
  positions: number[];
  branches: number[];
  /** For each sequence this segment carries: its number s and the segment offset of each token. */
  sequences: { s: number; offsets: number[] }[];
}

function commonPrefix(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n += 1;
  return n;
}

function wholeSequence(ids: ArrayLike<number>, s: number): Segment {
  const n = ids.length;
  const offsets = Array.from({ length: n }, (_, t) => t);
  return { ids: Array.from(ids), positions: offsets, branches: new Array(n).fill(BRANCH.shared), sequences: [{ s, offsets }] };
}

/** One pair as one segment: the shared prefix once, then each side's tail. */
function sharedPair(chosen: ArrayLike<number>, rejected: ArrayLike<number>, sChosen: number, sRejected: number): Segment {
  const shared = commonPrefix(chosen, rejected);
  const ids: number[] = [];
  const positions: number[] = [];
  const branches: number[] = [];
  const push = (id: number, position: number, branch: number) => {
    ids.push(id);
    positions.push(position);
    branches.push(branch);
    return ids.length - 1;
  };
  const prefix = Array.from({ length: shared }, (_, t) => push(chosen[t], t, BRANCH.shared));
  const chosenTail = Array.from({ length: chosen.length - shared }, (_, k) => push(chosen[shared + k], shared + k, BRANCH.chosen));
  const rejectedTail = Array.from({ length: rejected.length - shared }, (_, k) => push(rejected[shared + k], shared + k, BRANCH.rejected));
  return { ids, positions, branches, sequences: [{ s: sChosen, offsets: [...prefix, ...chosenTail] }, { s: sRejected, offsets: [...prefix, ...rejectedTail] }] };
}

export interface PackingOptions {
  /** Each pair's shared prefix once (prefix_sharing); otherwise one segment per sequence. */
  prefixSharing: boolean;
  /**
   * Tokens per row; a longer segment gets a row of its own. Default: the longest segment of the
   * batch (rows as long as the padded layout's, so attention over a row costs what a padded row does).
   */
  rowTokens?: number;
}

/** Packs a micro-batch's pairs (see PackedLayout). */
export function packPairs(pairs: TokenizedPair[], padId: number | null, options: PackingOptions): PackedLayout {
  if (pairs.length === 0) throw new DataError('packPairs: a batch needs at least one pair');
  if (padId === null) throw new DataError('packPairs: the tokenizer has neither a pad nor an EOS token to pad with');
  const B = pairs.length;
  const segments: Segment[] = options.prefixSharing
    ? pairs.map((p, i) => sharedPair(p.chosen.ids, p.rejected.ids, i, B + i))
    : [...pairs.map((p, i) => wholeSequence(p.chosen.ids, i)), ...pairs.map((p, i) => wholeSequence(p.rejected.ids, B + i))];
  // First fit in batch order: deterministic, and rows stay near the budget.
  const rowTokens = options.rowTokens ?? Math.max(...segments.map((s) => s.ids.length));
  const rows: Segment[][] = [];
  const used: number[] = [];
  for (const segment of segments) {
    const row = used.findIndex((n) => n + segment.ids.length <= rowTokens);
    if (row >= 0) {
      rows[row].push(segment);
      used[row] += segment.ids.length;
    } else {
      rows.push([segment]);
      used.push(segment.ids.length);
    }
  }
  const width = Math.max(...used);
  const L = Math.max(...pairs.flatMap((p) => [p.chosen.ids.length, p.rejected.ids.length]));
  const out: PackedLayout = {
    rows: rows.length, width, inputIds: new Array(rows.length * width).fill(padId), positionIds: new Array(rows.length * width).fill(0),
    segmentIds: new Array(rows.length * width).fill(-1), branchIds: new Array(rows.length * width).fill(0),
    sequenceLength: L, sequenceIndex: new Array(2 * B * L).fill(0), realTokens: used.reduce((a, b) => a + b, 0),
    paddedTokens: 2 * B * L,
  };
  let segmentNumber = 0;
  rows.forEach((row, r) => {
    let start = r * width;
    for (const segment of row) {
      segment.ids.forEach((id, k) => {
        out.inputIds[start + k] = id;
        out.positionIds[start + k] = segment.positions[k];
        out.segmentIds[start + k] = segmentNumber;
        out.branchIds[start + k] = segment.branches[k];
      });
      for (const { s, offsets } of segment.sequences) offsets.forEach((offset, t) => { out.sequenceIndex[s * L + t] = start + offset; });
      start += segment.ids.length;
      segmentNumber += 1;
    }
  });
  return out;
}
