import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { collate, disposeBatch, type CollateOptions } from '../data/collate';
import type { TokenizedPair } from '../data/tokenize-pairs';
import { noGrad } from '../grad-mode';
import { scope } from '../scope';
import { UsageError } from '../errors';
import type { CausalLM } from '../models/causal-lm';
import type { DataParallel } from '../distributed/data-parallel';
import { batchLogps, type BatchReference, type FusedLinearChoice } from './dpo-step';
import { ConfigError } from '../errors';
import { writeFileAtomic } from '../atomic-file';

export interface ReferenceLogps {
  chosen: Float64Array;
  rejected: Float64Array;
}

/**
 * A run's reference: a frozen model, log-probs computed once before training for the train and eval
 * pairs (precompute_ref_log_probs), or none (reference_free).
 */
export type Reference =
  | { kind: 'model'; model: CausalLM }
  | { kind: 'precomputed'; train: ReferenceLogps; eval: ReferenceLogps | null }
  | { kind: 'none' };

/** The reference side of a batch of `split`'s pairs at these indices ('other': pairs of neither). */
export function batchReference(reference: Reference, split: 'train' | 'eval' | 'other', indices: number[]): BatchReference {
  if (reference.kind !== 'precomputed') return reference;
  const logps = split === 'train' ? reference.train : split === 'eval' ? reference.eval : null;
  if (!logps) throw new ConfigError('with precompute_ref_log_probs only eval_dataset can be evaluated (no reference model is kept)');
  return { kind: 'logps', chosen: indices.map((i) => logps.chosen[i]), rejected: indices.map((i) => logps.rejected[i]) };
}

/** A key for precomputed reference log-probs: the tokenized pairs and the reference's weights. */
export async function referenceKey(reference: CausalLM, pairs: TokenizedPair[]): Promise<string> {
  const hash = createHash('sha256').update('reflogps-v1');
  for (const p of pairs) {
    for (const side of [p.chosen, p.rejected]) {
      hash.update(new Uint8Array(Int32Array.from(side.ids).buffer)).update(String(side.promptLength));
    }
  }
  await scope(async () => {
    for (const p of await reference.namedParameters()) {
      const values = await (await p.tensor.detach().to('cpu')).toTypedArray();
      hash.update(p.name).update(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
    }
  });
  return hash.digest('hex').slice(0, 32);
}

function readCached(path: string | null, count: number): Float64Array | null {
  if (!path || !existsSync(path)) return null;
  const bytes = readFileSync(path);
  return bytes.length === count * 16 ? new Float64Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length)) : null;
}

/**
 * Reference log-probs of every pair in one pass without gradients, cached on disk (2N float64) so
 * later runs over the same data and reference skip the pass. With data parallel, each rank computes
 * every world-size-th batch and the ranks exchange their results; only rank 0 writes the cache.
 */
export async function precomputeReferenceLogps(
  reference: CausalLM,
  pairs: TokenizedPair[],
  options: { layout: CollateOptions; batchSize: number; fusedLinear: FusedLinearChoice; cacheDir: string | null; parallel?: DataParallel | null },
): Promise<{ logps: ReferenceLogps; cached: boolean; path: string | null }> {
  const parallel = options.parallel ?? null;
  const path = options.cacheDir ? join(options.cacheDir, `${await referenceKey(reference, pairs)}.reflogps`) : null;
  const cached = readCached(path, pairs.length);
  // Every rank must take the same branch: the cache counts only when all of them can read it.
  const everyRankHasIt = parallel ? !(await parallel.any(cached === null)) : cached !== null;
  if (cached && everyRankHasIt) {
    return { logps: { chosen: cached.slice(0, pairs.length), rejected: cached.slice(pairs.length) }, cached: true, path };
  }
  // chosen log-probs in [0, n), rejected in [n, 2n): the cache file's layout.
  let all: Float64Array = new Float64Array(pairs.length * 2);
  const [rank, ranks] = parallel ? [parallel.rank, parallel.worldSize] : [0, 1];
  for (let start = rank * options.batchSize; start < pairs.length; start += options.batchSize * ranks) {
    const chunk = pairs.slice(start, start + options.batchSize);
    const batch = collate(chunk, options.layout);
    try {
      const values = await scope(async () => {
        const { logps } = await noGrad(() => batchLogps(reference, batch, { tokenLogps: false, wpo: false, metrics: false, fusedLinear: options.fusedLinear }));
        return Array.from((await logps.toTypedArray()) as ArrayLike<number>);
      });
      all.set(values.slice(0, chunk.length), start);
      all.set(values.slice(chunk.length), pairs.length + start);
    } finally {
      disposeBatch(batch);
    }
  }
  // Each entry was computed by exactly one rank (zeros elsewhere), so the sum over ranks is a gather.
  if (parallel) all = await parallel.sum(all);
  if (path && (!parallel || parallel.rank === 0)) {
    mkdirSync(options.cacheDir!, { recursive: true });
    writeFileAtomic(path, new Uint8Array(all.buffer));
  }
  return { logps: { chosen: all.slice(0, pairs.length), rejected: all.slice(pairs.length) }, cached: false, path };
}

/** TR-DPO: reference ← α·policy + (1 − α)·reference, parameter by parameter. */
export function syncReference(policy: CausalLM, reference: CausalLM, alpha: number): Promise<void> {
  return scope(() => mix(policy, reference, alpha));
}

async function mix(policy: CausalLM, reference: CausalLM, alpha: number): Promise<void> {
  const refs = new Map((await reference.namedParameters()).map((p) => [p.name, p.tensor]));
  // ZeRO-3: the layers are empty at rest (no-ops above); both models' units share one layout, so each
  // rank mixes its own slices, with no traffic.
  const [from, to] = [policy.shardedLayers, reference.shardedLayers];
  if (!from !== !to) throw new UsageError('syncReference: the policy and the reference must both be ZeRO-3 sharded, or neither');
  await from?.release();
  await to?.release();
  await noGrad(async () => {
    for (const p of await policy.namedParameters()) {
      const r = refs.get(p.name);
      if (!r) continue;
      await r.mul_(1 - alpha);
      await r.add_(p.tensor, alpha);
    }
    if (from && to) {
      await from.withSlices((policySlices) => to.withSlices(async (slices) => {
        for (const [u, slice] of slices.entries()) {
          await slice.mul_(1 - alpha);
          await slice.add_(policySlices[u], alpha);
        }
      }));
    }
  });
}
