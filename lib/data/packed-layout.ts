import { DataError } from '../errors';
import type { TokenizedPair } from './tokenize-pairs';

/**
 * The padding-free layout of a micro-batch (padding_free, prefix_sharing). Each pair is a segment:
 * with prefix sharing `[shared prefix, chosen tail, rejected tail]` (the shared prefix is the longest
 * common prefix of the two token sequences, normally the prompt), else two segments `[prompt+chosen]`
 * and `[prompt+rejected]`. The segments follow each other in one stream of N tokens with no padding:
 * every token-wise layer (embeddings, projections, MLP, norms) runs on exactly the real tokens.
 *
 * Attention runs per segment: each segment's tokens are gathered into a block (`segmentIndex`,
 * blocks padded to the longest segment), attend there, and go back to the stream (`tokenSlot`). A
 * token sees the earlier tokens of its segment, except that rejected-tail tokens never see
 * chosen-tail tokens. Positions restart at 0 per segment, and the rejected tail continues from the
 * shared prefix (as in its own padded row).
 *
 * The log-prob side is the padded 2B layout itself (`sequenceIndex`): sequence s (chosen rows
 * 0..B-1, then rejected rows B..2B-1, as collate) at position t is stream token
 * sequenceIndex[s·L + t]. Gathering the model's hidden states by that index gives, for every
 * sequence, exactly the states its padded row would have, so the log-prob ops (t predicts t+1) run
 * unchanged; the first rejected-tail token is predicted by the last shared token's state.
 */
export interface PackedLayout {
  /** N: the stream's tokens, all real. */
  tokens: number;
  /** [N] token ids. */
  inputIds: number[];
  /** [N] position of each token in its own sequence. */
  positionIds: number[];
  /** Segments S and the longest segment W: attention blocks are [S, W]. */
  segments: number;
  segmentWidth: number;
  /** [S·W] stream index of each block slot (padding slots: N, a zero row the model appends). */
  segmentIndex: number[];
  /** [S·W] 0 shared / whole sequence, 1 chosen tail, 2 rejected tail; −1 on padding slots. */
  segmentBranches: number[];
  /** [S·W] the slot's position (padding: 0). */
  segmentPositions: number[];
  /** [N] the block slot (s·W + offset) of each stream token. */
  tokenSlot: number[];
  /** Longest sequence L: the padded layout is [2B, L]. */
  sequenceLength: number;
  /** [2B·L] stream index of each sequence token (padding positions: 0, masked out by the completion mask). */
  sequenceIndex: number[];
  /** The padded 2B layout's token slots (2B·L), for the padding the stream saves. */
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
}

/** The tokens a pair takes in the packed stream: its shared prefix once with prefix sharing. */
export function pairTokens(pair: TokenizedPair, prefixSharing: boolean): number {
  const both = pair.chosen.ids.length + pair.rejected.ids.length;
  return prefixSharing ? both - commonPrefix(pair.chosen.ids, pair.rejected.ids) : both;
}

/** Lays a micro-batch's pairs out as one stream of segments (see PackedLayout). */
export function packPairs(pairs: TokenizedPair[], options: PackingOptions): PackedLayout {
  if (pairs.length === 0) throw new DataError('packPairs: a batch needs at least one pair');
  const B = pairs.length;
  const segments: Segment[] = options.prefixSharing
    ? pairs.map((p, i) => sharedPair(p.chosen.ids, p.rejected.ids, i, B + i))
    : [...pairs.map((p, i) => wholeSequence(p.chosen.ids, i)), ...pairs.map((p, i) => wholeSequence(p.rejected.ids, B + i))];
  const N = segments.reduce((n, seg) => n + seg.ids.length, 0);
  const W = Math.max(...segments.map((seg) => seg.ids.length));
  const L = Math.max(...pairs.flatMap((p) => [p.chosen.ids.length, p.rejected.ids.length]));
  const out: PackedLayout = {
    tokens: N, inputIds: [], positionIds: [], segments: segments.length, segmentWidth: W,
    segmentIndex: new Array(segments.length * W).fill(N), segmentBranches: new Array(segments.length * W).fill(-1),
    segmentPositions: new Array(segments.length * W).fill(0), tokenSlot: [], sequenceLength: L,
    sequenceIndex: new Array(2 * B * L).fill(0), paddedTokens: 2 * B * L,
  };
  segments.forEach((segment, k) => {
    const start = out.inputIds.length;
    segment.ids.forEach((id, offset) => {
      out.inputIds.push(id);
      out.positionIds.push(segment.positions[offset]);
      out.tokenSlot.push(k * W + offset);
      out.segmentIndex[k * W + offset] = start + offset;
      out.segmentBranches[k * W + offset] = segment.branches[offset];
      out.segmentPositions[k * W + offset] = segment.positions[offset];
    });
    for (const { s, offsets } of segment.sequences) offsets.forEach((offset, t) => { out.sequenceIndex[s * L + t] = start + offset; });
  });
  return out;
}
