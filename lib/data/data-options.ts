import { z } from 'zod';
import { parseOnce, parsePart } from '../config/parse';

/**
 * How preference rows are read and tokenized, with TRL's names; defaults here and only here. The
 * trainer's config includes these keys; loadPreferenceData takes them parsed or raw.
 */
export const dataOptionsSchema = z
  .object({
    prompt_column: z.string().default('prompt').describe('Column of the prompt (or conversation so far).'),
    chosen_column: z.string().default('chosen').describe('Column of the preferred completion.'),
    rejected_column: z.string().default('rejected').describe('Column of the dispreferred completion.'),
    max_length: z.number().int().positive().nullable().default(1024)
      .describe('Each of prompt+chosen and prompt+rejected is cut to this many tokens (truncation_mode says which end); null: no limit.'),
    max_prompt_length: z.number().int().positive().optional()
      .describe('The prompt is cut to its last N tokens first (TRL <= 0.2x key).'),
    max_completion_length: z.number().int().positive().optional()
      .describe('Each completion is cut to its first N tokens before max_length applies (TRL <= 0.2x key).'),
    truncation_mode: z.enum(['keep_start', 'keep_end']).default('keep_start')
      .describe('keep_start keeps the head of an over-long sequence, keep_end its tail (deprecated in TRL).'),
    on_invalid: z.enum(['error', 'skip']).default('error')
      .describe('error: the first bad row stops loading, naming file, line and field; skip: drop it, count it by reason.'),
    dataset_num_proc: z.number().int().positive().optional()
      .describe('Worker threads that tokenize large datasets; default: the core count.'),
    cache_dir: z.union([z.string(), z.literal(false)]).optional()
      .describe('Where tokenized datasets and reference log-probs are cached (false: no cache); default ~/.cache/torch-dpo.'),
  })
  .strict();

export type DataOptionsInput = z.input<typeof dataOptionsSchema>;
export type DataOptions = z.output<typeof dataOptionsSchema>;

export function parseDataOptions(input: unknown): DataOptions {
  return parseOnce(dataOptionsSchema, input, 'data options');
}

/** The data options out of a bigger config (the trainer's), parsed already. */
export function dataOptionsOf(config: Record<string, unknown>): DataOptions {
  return parsePart(dataOptionsSchema, config, 'data options');
}
