import type { CollateOptions } from '../data/collate';
import type { CausalLM } from '../models/causal-lm';
import type { TrainerConfig } from './config';

/**
 * How a run lays out its batches: padded 2B rows, or the packed stream (padding_free,
 * prefix_sharing; lib/data/packed-layout.ts) when the model takes it. Either option gives the
 * stream; prefix_sharing also shares each pair's prompt.
 */
export function batchLayoutOf(c: TrainerConfig, padId: number | null, model: CausalLM): CollateOptions {
  const packs = (c.padding_free || c.prefix_sharing) && model.info.packs === true;
  return { padId, padToMultipleOf: c.pad_to_multiple_of, packing: packs ? { prefixSharing: c.prefix_sharing } : null };
}

/** Why the asked-for packing does not happen (a traced export), or null. */
export function batchLayoutNotice(c: TrainerConfig, model: CausalLM): string | null {
  if (!(c.padding_free || c.prefix_sharing) || model.info.packs) return null;
  const keys = [c.padding_free ? 'padding_free' : '', c.prefix_sharing ? 'prefix_sharing' : ''].filter(Boolean).join(' and ');
  return `${keys}: ${model.info.path ?? model.info.architecture} is a traced TorchScript export whose forward takes padded rows only; its batches stay padded (the safetensors of a built-in architecture would pack)`;
}
