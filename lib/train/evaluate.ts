import { collate, disposeBatch, type CollateOptions } from '../data/collate';
import type { TokenizedPair } from '../data/tokenize-pairs';
import { ConfigError } from '../errors';
import { noGrad } from '../grad-mode';
import type { DpoLossConfig } from '../loss/dpo-config';
import type { CausalLM } from '../models/causal-lm';
import type { DataParallel } from '../distributed/data-parallel';
import { pairLoss, type BatchReference, type FusedLinearChoice } from './dpo-step';

export interface EvaluationSetup {
  policy: CausalLM;
  /** The reference side of a batch of these pairs at the given indices. */
  referenceFor: (indices: number[]) => BatchReference;
  loss: DpoLossConfig;
  /** Padded or packed batches (the run's layout). */
  layout: CollateOptions;
  batchSize: number;
  fusedLinear: FusedLinearChoice;
  parallel: DataParallel | null;
}

/**
 * The DPO loss and metrics over `pairs` without gradients, keyed with the eval_ prefix and weighted
 * by pairs. With data parallel each rank takes every world-size-th batch and the totals are summed
 * in one collective.
 */
export async function evaluatePairs(pairs: TokenizedPair[], setup: EvaluationSetup): Promise<Record<string, number>> {
  if (pairs.length === 0) throw new ConfigError('evaluate: no evaluation pairs (set eval_dataset)');
  const { parallel, batchSize: size } = setup;
  const [rank, worldSize] = parallel ? [parallel.rank, parallel.worldSize] : [0, 1];
  const starts = Array.from({ length: Math.ceil(pairs.length / size) }, (_, i) => i * size);
  // Every rank runs the same number of batches: one left without a batch in a round evaluates the
  // first with weight 0, so that every rank knows the metric names, joins the sum, and (ZeRO-3) takes
  // part in every layer's gather.
  const rounds = Math.max(1, Math.ceil(starts.length / worldSize));
  const work = Array.from({ length: rounds }, (_, r) => {
    const start = starts[r * worldSize + rank];
    return start === undefined ? { start: 0, weight: 0 } : { start, weight: 1 };
  });
  const totals: Record<string, number> = {};
  for (const { start, weight } of work) {
    const chunk = pairs.slice(start, start + size);
    const batch = collate(chunk, setup.layout);
    try {
      const reference = setup.referenceFor(chunk.map((_, k) => start + k));
      const r = await noGrad(() => pairLoss(setup.policy, reference, batch, setup.loss, setup.fusedLinear));
      r.result.dispose();
      for (const [key, value] of Object.entries({ loss: r.loss, ...r.metrics })) totals[key] = (totals[key] ?? 0) + value * r.pairs * weight;
    } finally {
      disposeBatch(batch);
    }
  }
  const keys = Object.keys(totals).sort();
  const summed = parallel ? await parallel.sum(Float64Array.from(keys.map((k) => totals[k]))) : keys.map((k) => totals[k]);
  return Object.fromEntries(keys.map((key, i) => [`eval_${key}`, summed[i] / pairs.length]));
}
