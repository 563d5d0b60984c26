import { z } from 'zod';
import { ATTENTION_IMPLEMENTATIONS } from './attention';
import { decoderArchitecture, type ArchitectureSpec } from './decoder';
import { ropeSpecOf } from './rope';

/**
 * Llama (HF LlamaConfig: names and defaults). The schemas of the family share these fields; each
 * architecture file adds or overrides its own and maps the parsed config to a DecoderSpec.
 */
export const decoderConfigFields = {
  vocab_size: z.number().int().positive().default(32000),
  hidden_size: z.number().int().positive().default(4096),
  intermediate_size: z.number().int().positive().default(11008),
  num_hidden_layers: z.number().int().positive().default(32),
  num_attention_heads: z.number().int().positive().default(32),
  num_key_value_heads: z.number().int().positive().nullable().default(null),
  head_dim: z.number().int().positive().nullable().default(null),
  max_position_embeddings: z.number().int().positive().default(2048),
  rms_norm_eps: z.number().positive().default(1e-6),
  rope_theta: z.number().positive().optional(),
  rope_scaling: z.record(z.unknown()).nullable().optional(),
  rope_parameters: z.record(z.unknown()).nullable().optional(),
  attention_dropout: z.number().min(0).max(1).default(0),
  initializer_range: z.number().positive().default(0.02),
  tie_word_embeddings: z.boolean().default(false),
  hidden_act: z.literal('silu').default('silu'),
  attn_implementation: z.enum(ATTENTION_IMPLEMENTATIONS).nullish(),
};

export const llamaConfigSchema = z
  .object({ ...decoderConfigFields, attention_bias: z.boolean().default(false), mlp_bias: z.boolean().default(false) })
  .passthrough()
  .superRefine(checkHeads);

/** Heads must group evenly; head_dim null means hidden_size / num_attention_heads. */
export function checkHeads(c: { num_attention_heads: number; num_key_value_heads: number | null; head_dim: number | null; hidden_size: number }, ctx: z.RefinementCtx): void {
  const kv = c.num_key_value_heads ?? c.num_attention_heads;
  if (c.num_attention_heads % kv !== 0) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['num_key_value_heads'], message: `${c.num_attention_heads} attention heads are not a multiple of ${kv} key/value heads` });
  }
  if (c.head_dim === null && c.hidden_size % c.num_attention_heads !== 0) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['num_attention_heads'], message: `hidden_size ${c.hidden_size} is not divisible by num_attention_heads` });
  }
}

export type DecoderConfig = z.output<z.ZodObject<typeof decoderConfigFields>>;

/** The fields every Llama-family architecture maps the same way. */
export function commonDecoderSpec(c: DecoderConfig, defaultTheta: number, headDim: number): Omit<ArchitectureSpec, 'qkvBias' | 'outputBias' | 'mlpBias' | 'qkNorm' | 'windows'> {
  return {
    vocabSize: c.vocab_size, hiddenSize: c.hidden_size, intermediateSize: c.intermediate_size, layers: c.num_hidden_layers,
    heads: c.num_attention_heads, kvHeads: c.num_key_value_heads ?? c.num_attention_heads, headDim, rmsNormEps: c.rms_norm_eps,
    rope: ropeSpecOf(c, defaultTheta), attentionDropout: c.attention_dropout, tieWordEmbeddings: c.tie_word_embeddings,
    initializerRange: c.initializer_range, attnImplementation: c.attn_implementation ?? null,
  };
}

export function llamaSpec(input: z.output<typeof llamaConfigSchema>): ArchitectureSpec {
  return {
    ...commonDecoderSpec(input, 10000, input.head_dim ?? input.hidden_size / input.num_attention_heads),
    qkvBias: input.attention_bias, outputBias: input.attention_bias, mlpBias: input.mlp_bias, qkNorm: false,
    windows: new Array<number>(input.num_hidden_layers).fill(0),
  };
}

export const llama = decoderArchitecture('llama', llamaConfigSchema, llamaSpec, 'Llama');
