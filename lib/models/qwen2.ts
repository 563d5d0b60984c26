import { z } from 'zod';
import { decoderArchitecture, type ArchitectureSpec } from './decoder';
import { checkHeads, commonDecoderSpec, decoderConfigFields } from './llama';

/** Fields Qwen2 and Qwen3 share (HF Qwen2Config/Qwen3Config names and defaults). */
export const qwenConfigFields = {
  ...decoderConfigFields,
  vocab_size: z.number().int().positive().default(151936),
  intermediate_size: z.number().int().positive().default(22016),
  max_position_embeddings: z.number().int().positive().default(32768),
  use_sliding_window: z.boolean().default(false),
  sliding_window: z.number().int().positive().nullable().default(4096),
  max_window_layers: z.number().int().min(0).default(28),
  layer_types: z.array(z.enum(['full_attention', 'sliding_attention'])).nullable().default(null),
};

/**
 * Per-layer windows as HF's config derives them: sliding_window counts only with use_sliding_window;
 * layer_types, when absent, slides layers ≥ max_window_layers.
 */
export function qwenWindows(c: { use_sliding_window: boolean; sliding_window: number | null; max_window_layers: number; layer_types: string[] | null; num_hidden_layers: number }): number[] {
  const window = c.use_sliding_window ? c.sliding_window : null;
  const types = c.layer_types ?? Array.from({ length: c.num_hidden_layers }, (_, i) => (window !== null && i >= c.max_window_layers ? 'sliding_attention' : 'full_attention'));
  return types.map((t) => (t === 'sliding_attention' && window !== null ? window : 0));
}

export const qwen2ConfigSchema = z
  .object(qwenConfigFields)
  .passthrough()
  .superRefine(checkQwenConfig);

export function checkQwenConfig(c: Parameters<typeof checkHeads>[0] & { layer_types: string[] | null; num_hidden_layers: number }, ctx: z.RefinementCtx): void {
  checkHeads(c, ctx);
  if (c.layer_types && c.layer_types.length !== c.num_hidden_layers) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['layer_types'], message: `${c.layer_types.length} entries for ${c.num_hidden_layers} layers` });
  }
}

/** Qwen2 / Qwen2.5: biases on q, k, v always (not from the config), none on o_proj. */
export const qwen2Spec = (c: z.output<typeof qwen2ConfigSchema>): ArchitectureSpec => ({
  ...commonDecoderSpec(c, 10000, c.head_dim ?? c.hidden_size / c.num_attention_heads),
  qkvBias: true, outputBias: false, mlpBias: false, qkNorm: false, windows: qwenWindows(c),
});

export const qwen2 = decoderArchitecture('qwen2', qwen2ConfigSchema, qwen2Spec, 'Qwen2');
