import { z } from 'zod';
import { decoderArchitecture, type ArchitectureSpec } from './decoder';
import { checkHeads, commonDecoderSpec, decoderConfigFields } from './llama';

/**
 * Mistral (HF MistralConfig): Llama without biases, plus `sliding_window` on every layer. Its default
 * is 4096: only an explicit null gives full attention.
 */
export const mistralConfigSchema = z
  .object({
    ...decoderConfigFields,
    intermediate_size: z.number().int().positive().default(14336),
    num_key_value_heads: z.number().int().positive().nullable().default(8),
    max_position_embeddings: z.number().int().positive().default(4096 * 32),
    sliding_window: z.number().int().positive().nullable().default(4096),
  })
  .passthrough()
  .superRefine(checkHeads);

export const mistralSpec = (c: z.output<typeof mistralConfigSchema>): ArchitectureSpec => ({
  ...commonDecoderSpec(c, 10000, c.head_dim ?? c.hidden_size / c.num_attention_heads),
  qkvBias: false, outputBias: false, mlpBias: false, qkNorm: false,
  windows: new Array<number>(c.num_hidden_layers).fill(c.sliding_window ?? 0),
});

export const mistral = decoderArchitecture('mistral', mistralConfigSchema, mistralSpec, 'Mistral');
