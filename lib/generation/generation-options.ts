import { z } from 'zod';
import { parseOnce } from '../config/parse';

/**
 * What generate() takes, declared once with defaults and help. The sampling defaults are plain
 * sampling from the model (temperature 1, no top-k, no top-p: vLLM's SamplingParams defaults, not
 * HF's top_k 50), so log-probs and KL estimates describe the policy itself; temperature 0 is greedy.
 */
export const generationOptionsSchema = z.object({
  maxNewTokens: z.number().int().positive().default(64).describe('Tokens to generate at most per prompt.'),
  temperature: z.number().min(0).default(1).describe('Divides the logits before sampling; 0: greedy (argmax).'),
  topK: z.number().int().min(0).default(0).describe('Sample among the k most probable tokens (ties kept); 0: off.'),
  topP: z.number().gt(0).max(1).default(1).describe('Sample among the most probable tokens up to this probability mass; 1: off.'),
  seed: z.number().int().min(0).default(0).describe('Row i of the call samples from its own stream seeded by (seed, i): the same text alone or in any batch.'),
  stop: z.array(z.string().min(1)).default([]).describe('Strings that end a row (the text is cut before them); EOS always ends a row.'),
  batchSize: z.number().int().positive().default(64).describe('Prompts per forward (left-padded together).'),
  useCache: z.boolean().default(true).describe('KV cache (built-in architectures); false re-runs the whole sequence for every token, as a traced export must.'),
}).strict();

export type GenerationOptionsInput = z.input<typeof generationOptionsSchema>;
export type GenerationOptions = z.output<typeof generationOptionsSchema>;

export function parseGenerationOptions(input: unknown, where = 'generation options'): GenerationOptions {
  return parseOnce(generationOptionsSchema, input ?? {}, where);
}
