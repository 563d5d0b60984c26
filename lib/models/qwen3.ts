import { z } from 'zod';
import { decoderArchitecture, type ArchitectureSpec } from './decoder';
import { commonDecoderSpec } from './llama';
import { checkQwenConfig, qwenConfigFields, qwenWindows } from './qwen2';

/**
 * Qwen3 (HF Qwen3Config): per-head RMSNorm of q and k (q_norm, k_norm over head_dim) before rope;
 * head_dim defaults to 128, independent of hidden_size / heads; attention_bias on q, k, v and o.
 */
export const qwen3ConfigSchema = z
  .object({ ...qwenConfigFields, head_dim: z.number().int().positive().default(128), attention_bias: z.boolean().default(false) })
  .passthrough()
  .superRefine(checkQwenConfig);

export const qwen3Spec = (c: z.output<typeof qwen3ConfigSchema>): ArchitectureSpec => ({
  ...commonDecoderSpec(c, 10000, c.head_dim),
  qkvBias: c.attention_bias, outputBias: c.attention_bias, mlpBias: false, qkNorm: true, windows: qwenWindows(c),
});

export const qwen3 = decoderArchitecture('qwen3', qwen3ConfigSchema, qwen3Spec, 'Qwen3');
