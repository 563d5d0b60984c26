import { runFusedOp, type Tensor } from '../tensor';

export interface SamplingSettings {
  /** 0: greedy (argmax); otherwise the logits are divided by it before sampling. */
  temperature: number;
  /** Keep the k most probable tokens (ties included); 0: off. */
  topK: number;
  /** Keep the most probable tokens up to this mass; 1: off. */
  topP: number;
}

/**
 * The next token of each row (native `sample_tokens`): greedy, or drawn after temperature, top-k and
 * top-p (HF's warpers, in HF's order) by inverse CDF with one caller-supplied uniform per row.
 * `logps` is each chosen token's log-probability under the model's own (unwarped) distribution.
 */
export async function sampleTokens(logits: Tensor, uniforms: Tensor | null, settings: SamplingSettings): Promise<{ ids: Tensor; logps: Tensor }> {
  const attrs = { temperature: settings.temperature, top_k: settings.topK, top_p: settings.topP };
  return (await runFusedOp('sample_tokens', uniforms ? [logits, uniforms] : [logits], attrs)) as { ids: Tensor; logps: Tensor };
}
