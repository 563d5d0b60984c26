import { z } from 'zod';

/**
 * Iterative (online) DPO: with `judge` set, train_dataset holds prompts and each round samples from
 * the current policy, lets the judge rank the samples, and trains one epoch of DPO on best-vs-worst
 * pairs. Generation keys are TRL OnlineDPOConfig's (max_new_tokens 64, temperature 0.9,
 * missing_eos_penalty); the trainer config includes these keys.
 */
export const iterativeOptionsSchema = z.object({
  judge: z.string().optional()
    .describe('Iterative DPO: a JavaScript module (path) exporting judge(prompt, completions) → a score per completion, or the index of the preferred one (async allowed). With it, train_dataset holds prompts.'),
  iterative_rounds: z.number().int().positive().default(1).describe('Rounds of generate → judge → train one epoch.'),
  samples_per_prompt: z.number().int().min(2).default(2).describe('Completions sampled per prompt each round; the best and the worst form the pair (ties dropped and counted).'),
  reference_update: z.enum(['fixed', 'per_round']).default('fixed')
    .describe("The reference of each round: fixed = the starting model; per_round = the policy as the round starts (the previous round's result)."),
  max_new_tokens: z.number().int().positive().default(64).describe('Tokens generated at most per completion.'),
  temperature: z.number().min(0).default(0.9).describe('Sampling temperature of the rounds (0: greedy, which gives identical samples).'),
  top_k: z.number().int().min(0).default(0).describe('Sample among the k most probable tokens; 0: off.'),
  top_p: z.number().gt(0).max(1).default(1).describe('Sample among the most probable tokens up to this mass; 1: off.'),
  stop_strings: z.array(z.string().min(1)).default([]).describe('Strings that end a completion (cut before them).'),
  missing_eos_penalty: z.number().positive().optional().describe('Subtracted from the score of a completion that did not end with EOS (scores only).'),
  generation_batch_size: z.number().int().positive().default(64).describe('Prompts per generation forward.'),
});

export type IterativeOptions = z.output<typeof iterativeOptionsSchema>;
