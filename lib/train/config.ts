import { z } from 'zod';
import { ConfigError } from '../errors';
import { dpoLossConfigSchema } from '../loss/dpo-config';

/**
 * The trainer's options with TRL's DPOConfig names. Defaults (TRL's, so configs move over) live here
 * and only here; the loss options come from lib/loss/dpo-config.ts.
 */
export const trainerConfigSchema = z
  .object({
    model_name_or_path: z.string().optional(),
    /** A built-in model instead: { architecture: 'gpt2' | 'llama', config: {...} } plus a tokenizer folder. */
    model: z.object({ architecture: z.enum(['gpt2', 'llama']), config: z.record(z.unknown()).default({}) }).optional(),
    tokenizer_name_or_path: z.string().optional(),
    train_dataset: z.union([z.string(), z.array(z.string()).nonempty()]),
    eval_dataset: z.union([z.string(), z.array(z.string()).nonempty()]).optional(),
    output_dir: z.string(),
    device: z.string().default('cpu'),
    /** Parameter dtype after loading (TRL's model_init_kwargs.torch_dtype); default: as stored. */
    dtype: z.enum(['float32', 'float64', 'bfloat16', 'float16']).optional(),
    learning_rate: z.number().positive().default(1e-6),
    adam_beta1: z.number().min(0).lt(1).default(0.9),
    adam_beta2: z.number().min(0).lt(1).default(0.999),
    adam_epsilon: z.number().positive().default(1e-8),
    weight_decay: z.number().min(0).default(0),
    lr_scheduler_type: z.enum(['linear', 'cosine', 'constant', 'constant_with_warmup']).default('linear'),
    warmup_steps: z.number().int().min(0).default(0),
    warmup_ratio: z.number().min(0).max(1).default(0),
    max_grad_norm: z.number().positive().nullable().default(1.0),
    per_device_train_batch_size: z.number().int().positive().default(8),
    per_device_eval_batch_size: z.number().int().positive().default(8),
    gradient_accumulation_steps: z.number().int().positive().default(1),
    num_train_epochs: z.number().positive().default(3),
    /** > 0 overrides num_train_epochs. */
    max_steps: z.number().int().default(-1),
    max_length: z.number().int().positive().default(1024),
    max_prompt_length: z.number().int().positive().optional(),
    truncation_mode: z.enum(['keep_start', 'keep_end']).default('keep_start'),
    pad_to_multiple_of: z.number().int().positive().optional(),
    group_by_length: z.boolean().default(false),
    disable_dropout: z.boolean().default(true),
    logging_steps: z.number().int().positive().default(10),
    /** Where metrics go besides metrics.jsonl and the HTML report: TensorBoard event files in output_dir/runs. */
    report_to: z.array(z.enum(['tensorboard'])).default(['tensorboard']),
    save_steps: z.number().int().positive().default(500),
    /** Evaluate on eval_dataset every eval_steps optimizer steps (and at the end). */
    eval_steps: z.number().int().positive().optional(),
    /** Keep only the newest N checkpoints. */
    save_total_limit: z.number().int().positive().optional(),
    /** A checkpoint folder, or true for the newest one in output_dir. */
    resume_from_checkpoint: z.union([z.string(), z.boolean()]).optional(),
    /** Seconds a collective may wait for the other ranks before the run fails (HF's ddp_timeout). */
    ddp_timeout: z.number().int().positive().default(1800),
    /**
     * ZeRO stage 1 with several ranks: each rank keeps AdamW moments for 1/world size of the parameters
     * (per-rank optimizer files in checkpoints; on several machines output_dir must be shared storage).
     */
    optimizer_sharding: z.boolean().default(false),
    /** Stop after this many non-finite steps in a row. */
    max_nonfinite_steps: z.number().int().positive().default(3),
    seed: z.number().int().min(0).default(42),
    /** Reference log-probs computed once before training (cached on disk); no reference kept in memory. */
    precompute_ref_log_probs: z.boolean().default(false),
    precompute_ref_batch_size: z.number().int().positive().optional(),
    /** TR-DPO: every ref_model_sync_steps, reference ← α·policy + (1 − α)·reference. */
    sync_ref_model: z.boolean().default(false),
    ref_model_mixup_alpha: z.number().min(0).max(1).default(0.6),
    ref_model_sync_steps: z.number().int().positive().default(512),
    /** Write output_dir/final (safetensors + config + tokenizer + TorchScript model.pt) at the end. */
    save_final_model: z.boolean().default(true),
    /** Use forward_hidden + the fused-linear log-probs when the model has them. */
    use_fused_linear: z.boolean().default(true),
    on_invalid: z.enum(['error', 'skip']).default('error'),
    dataset_num_proc: z.number().int().positive().optional(),
    cache_dir: z.union([z.string(), z.literal(false)]).optional(),
  })
  .merge(dpoLossConfigSchema.innerType())
  .strict()
  .superRefine((c, ctx) => {
    if (!c.model_name_or_path && !c.model) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['model_name_or_path'], message: 'set model_name_or_path or model' });
    if (c.model && !c.tokenizer_name_or_path) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['tokenizer_name_or_path'], message: 'a built-in model needs tokenizer_name_or_path' });
    if (c.precompute_ref_log_probs && c.sync_ref_model) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['sync_ref_model'], message: 'cannot be combined with precompute_ref_log_probs (the reference changes)' });
    if (c.precompute_ref_log_probs && c.ld_alpha !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['ld_alpha'], message: 'LD-DPO needs per-token reference log-probs: not with precompute_ref_log_probs' });
    if (c.sync_ref_model && c.reference_free) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['sync_ref_model'], message: 'there is no reference to sync with reference_free' });
    // The loss options' own cross-checks (exo_pair ε, robust ε, WPO with aot, weights per type).
    const loss = dpoLossConfigSchema.safeParse(Object.fromEntries(Object.entries(c).filter(([k]) => k in dpoLossConfigSchema.innerType().shape)));
    if (!loss.success) for (const issue of loss.error.issues) ctx.addIssue(issue);
  });

export type TrainerConfigInput = z.input<typeof trainerConfigSchema>;
export type TrainerConfig = z.output<typeof trainerConfigSchema>;

export function parseTrainerConfig(input: unknown, where = 'trainer config'): TrainerConfig {
  const result = trainerConfigSchema.safeParse(input);
  if (!result.success) {
    // The loss options are checked twice (shape and cross-checks): report each problem once.
    const lines = [...new Set(result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`))];
    throw new ConfigError(`${where} is invalid:\n  ${lines.join('\n  ')}`);
  }
  return result.data;
}
