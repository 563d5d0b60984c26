import { z } from 'zod';
import { parseOnce, parsePart } from '../config/parse';

/** The optimizers TrainingArguments names that torch-dpo's AdamW is (torch.optim.AdamW's update). */
export const ADAMW_NAMES = ['adamw_torch', 'adamw_torch_fused', 'adamw_hf'] as const;
export const SCHEDULER_TYPES = ['linear', 'cosine', 'constant', 'constant_with_warmup'] as const;

/** Steps as TrainingArguments takes them: an integer count, or a fraction in (0, 1) of the run's steps. */
export const stepsOrRatio = z.number().positive().refine((v) => v < 1 || Number.isInteger(v), { message: 'must be an integer of steps, or a fraction in (0, 1) of the total steps' });

/**
 * Optimizer and schedule options with TrainingArguments' names; TRL's defaults (learning_rate 1e-6)
 * here and only here.
 */
export const optimizerConfigSchema = z
  .object({
    optim: z.enum(ADAMW_NAMES).default('adamw_torch').describe('The optimizer: AdamW (torch.optim.AdamW\'s update; the fused/hf names are the same math).'),
    learning_rate: z.number().positive().default(1e-6).describe('Peak learning rate of AdamW.'),
    adam_beta1: z.number().min(0).lt(1).default(0.9).describe('AdamW β1 (first-moment decay).'),
    adam_beta2: z.number().min(0).lt(1).default(0.999).describe('AdamW β2 (second-moment decay).'),
    adam_epsilon: z.number().positive().default(1e-8).describe('AdamW ε.'),
    weight_decay: z.number().min(0).default(0).describe('Decoupled weight decay; biases and norm weights are excluded, as in HF Trainer.'),
    lr_scheduler_type: z.enum(SCHEDULER_TYPES).default('linear').describe('Learning-rate schedule after warmup (HF get_scheduler names).'),
    warmup_steps: z.number().min(0).refine((v) => v < 1 || Number.isInteger(v), { message: 'must be an integer of steps, or a fraction in [0, 1) of the total steps' }).default(0)
      .describe('Linear warmup from 0: a number of steps, or a fraction in (0, 1) of the total steps (transformers v5).'),
    warmup_ratio: z.number().min(0).max(1).default(0).describe('Warmup as a fraction of the total steps; used when warmup_steps is 0 (transformers v4).'),
    max_grad_norm: z.number().min(0).nullable().default(1.0).describe('Clip gradients to this global L2 norm; 0 or null: no clipping (the norm is still logged).'),
    optimizer_sharding: z.boolean().default(false)
      .describe('ZeRO stage 1 with several ranks: each keeps AdamW moments for 1/world size of the parameters (output_dir must be shared storage); the same as zero_stage: 1.'),
    zero_stage: z.union([z.literal(0), z.literal(1), z.literal(2), z.literal(3)]).default(0)
      .describe("ZeRO stage with several ranks (DeepSpeed's numbering): 1 shards AdamW moments, 2 also gradients (reduce-scattered bucket by bucket during backward, released at once), 3 also the weights (built-in architectures; one unit per decoder layer, gathered only while it computes, checkpointed, and one for embeddings, final norm and head)."),
  })
  .strict();

export type OptimizerConfig = z.output<typeof optimizerConfigSchema>;

export function parseOptimizerConfig(input: unknown): OptimizerConfig {
  return parseOnce(optimizerConfigSchema, input, 'optimizer config');
}

/** The optimizer options out of a bigger config (the trainer's), parsed already. */
export function optimizerConfigOf(config: Record<string, unknown>): OptimizerConfig {
  return parsePart(optimizerConfigSchema, config, 'optimizer config');
}
