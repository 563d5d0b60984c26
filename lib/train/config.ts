import { z } from 'zod';
import { ARCHITECTURE_NAMES } from '../models/architectures';
import { describeOptions, type OptionDoc } from '../config/describe-options';
import { isParsed, keysOf, parseOnce } from '../config/parse';
import { translateTrlKeys, FOREIGN_KEYS } from '../config/trl-compat';
import { dataOptionsSchema } from '../data/data-options';
import { iterativeOptionsSchema } from '../iterative/iterative-options';
import { dpoLossConfigSchema } from '../loss/dpo-config';
import { optimizerConfigSchema, stepsOrRatio } from '../optim/optimizer-config';

const INTERVALS = ['no', 'steps', 'epoch'] as const;
const DTYPES = ['float32', 'float64', 'bfloat16', 'float16'] as const;

/**
 * What a run is: model, data, schedule, logging, evaluation, checkpoints, reference. With the data,
 * loss and optimizer schemas merged in, this is every option torch-dpo takes, with TRL's DPOConfig /
 * TrainingArguments names and TRL's defaults; the descriptions are what `torch-dpo config` prints.
 */
const runOptionsSchema = z.object({
  model_name_or_path: z.string().optional().describe('A folder with an exported model (TorchScript model.pt or safetensors + config.json) and its tokenizer.'),
  model: z.object({ architecture: z.enum(ARCHITECTURE_NAMES), config: z.record(z.unknown()).default({}) }).strict().optional()
    .describe(`A built-in model instead of model_name_or_path: { architecture: ${ARCHITECTURE_NAMES.join(' | ')}, config: {...} } (HF config.json keys).`),
  tokenizer_name_or_path: z.string().optional().describe('Folder of tokenizer.json (+ tokenizer_config.json); default: model_name_or_path.'),
  train_dataset: z.union([z.string(), z.array(z.string()).nonempty()]).describe('Preference data: JSONL, JSON or Parquet files, folders or globs.'),
  eval_dataset: z.union([z.string(), z.array(z.string()).nonempty()]).optional().describe('Held-out preference data, same formats.'),
  output_dir: z.string().describe('Where checkpoints, metrics.jsonl, report.html, runs/ and final/ go.'),
  run_name: z.string().optional().describe('A name for the run, shown in the report and run.json.'),
  device: z.string().regex(/^(auto|cpu|cuda(:\d+)?)$/, 'must be auto, cpu, cuda or cuda:N').default('auto')
    .describe('auto: cuda when libtorch has CUDA and a GPU is visible, else cpu; or cpu, cuda, cuda:N.'),
  dtype: z.enum(DTYPES).optional().describe('Parameter dtype after loading (TRL: model_init_kwargs.dtype); default: as stored.'),
  bf16: z.boolean().nullable().default(false).transform((v) => v === true)
    .describe('bf16 mixed precision: forward and backward in bfloat16, fp32 master weights, gradients and AdamW moments (18 bytes per parameter vs 16 in fp32). TRL turns it on by default; torch-dpo does not, since CPUs without bf16 units run it slower.'),
  gradient_checkpointing: z.boolean().nullable().default(false).transform((v) => v === true)
    .describe('Activation checkpointing per layer (built-in architectures): each layer keeps only its input and is re-run in backward (with the same dropout). Less memory, about a third more compute. TRL turns it on by default; torch-dpo does not.'),
  padding_free: z.boolean().default(false)
    .describe("Pack each micro-batch's sequences into rows without padding (built-in architectures; a traced export stays padded, with a notice). Attention stays within each sequence; log-probs, loss and gradients equal the padded layout's."),
  prefix_sharing: z.boolean().default(false)
    .describe('Lay each pair out as [prompt, chosen, rejected] so the prompt is computed once (rejected tokens never see chosen ones; positions restart after the prompt); with padding_free the pairs also pack together.'),
  max_tokens_per_batch: z.number().int().positive().optional()
    .describe('With padding_free or prefix_sharing: micro-batches by token budget instead of per_device_train_batch_size pairs. Pairs of similar length fill each micro-batch up to this many tokens (as the packed layout runs them); the partition is fixed, its order shuffled each epoch; every rank gets the same number.'),
  use_peft: z.boolean().default(false)
    .describe('LoRA (built-in architectures): the model is frozen and low-rank adapters train; the reference is the same model with its adapters off (no second copy); checkpoints and final/ hold the adapter in PEFT format.'),
  lora_r: z.number().int().positive().default(16).describe('LoRA rank r.'),
  lora_alpha: z.number().positive().default(32).describe('LoRA α: the adapters are scaled by α / r (α / √r with use_rslora).'),
  lora_dropout: z.number().min(0).max(1).default(0.05).describe("Dropout on the adapters' input while training (off with disable_dropout, as in TRL)."),
  lora_target_modules: z.union([z.array(z.string()).nonempty(), z.string()]).nullable().default(null)
    .describe("Layers that get adapters: names (a layer matches when its path ends with one), a regular expression over the whole path, or all-linear; default PEFT's for the architecture (q_proj, v_proj; GPT-2: c_attn)."),
  use_rslora: z.boolean().default(false).describe('rsLoRA: scale the adapters by α / √r instead of α / r.'),
  adapter_name_or_path: z.string().optional()
    .describe('A PEFT adapter folder (adapter_config.json + adapter_model.safetensors) to continue training from; its r, α, dropout and targets apply. Needs use_peft.'),
  seed: z.number().int().min(0).default(42).describe('Seed of initialisation and dropout.'),
  data_seed: z.number().int().min(0).optional().describe('Seed of the batch order; default: seed.'),
  disable_dropout: z.boolean().default(true).describe('Train with dropout off in policy and reference.'),
  use_fused_linear: z.union([z.boolean(), z.literal('auto')]).default('auto')
    .describe("Fused lm_head + log-softmax log-probs (the logits never exist) for models with forward_hidden: true, false, or auto = fused once a micro-batch's logits would pass 64M elements (256 MiB in fp32), the logits path below (as fast or faster there)."),
  per_device_train_batch_size: z.number().int().positive().default(8).describe('Pairs per micro-batch on each rank.'),
  per_device_eval_batch_size: z.number().int().positive().default(8).describe('Pairs per evaluation batch on each rank.'),
  gradient_accumulation_steps: z.number().int().positive().default(1).describe('Micro-batches per optimizer step.'),
  num_train_epochs: z.number().positive().default(3).describe('Epochs to train (a fraction trains part of the last one).'),
  max_steps: z.number().int().default(-1).describe('When > 0: optimizer steps to train, overriding num_train_epochs.'),
  train_sampling_strategy: z.enum(['random', 'sequential', 'group_by_length']).default('random')
    .describe('Batch order: shuffled each epoch, in file order, or shuffled among batches of similar length (less padding).'),
  pad_to_multiple_of: z.number().int().positive().optional().describe('Pad batch lengths up to a multiple of N.'),
  logging_strategy: z.enum(INTERVALS).default('steps').describe('When training metrics are logged: every logging_steps, every epoch, or never.'),
  logging_steps: stepsOrRatio.default(10).describe('Steps between logs (a fraction in (0, 1): of the total steps).'),
  logging_first_step: z.boolean().default(false).describe('Also log after the first step.'),
  report_to: z.array(z.enum(['tensorboard'])).default(['tensorboard'])
    .describe('Integrations besides metrics.jsonl and report.html: tensorboard (runs/<time>_<host>), or none.'),
  logging_dir: z.string().optional().describe('Where TensorBoard event files go; default output_dir/runs/<time>_<host>.'),
  disable_tqdm: z.boolean().default(false).describe('No progress bar: print each log as a line instead.'),
  eval_strategy: z.enum(INTERVALS).optional()
    .describe('When eval_dataset is evaluated: every eval_steps, every epoch, or never; default: steps when eval_steps is set, else no.'),
  eval_steps: stepsOrRatio.optional().describe('Steps between evaluations; default logging_steps (a fraction: of the total steps).'),
  eval_delay: z.number().min(0).default(0).describe('No evaluation before this many steps (epochs with eval_strategy epoch).'),
  eval_on_start: z.boolean().default(false).describe('Evaluate once before the first step.'),
  save_strategy: z.enum(INTERVALS).default('steps').describe('When checkpoints are saved: every save_steps, every epoch, or only when stopped early.'),
  save_steps: stepsOrRatio.default(500).describe('Steps between checkpoints (a fraction: of the total steps).'),
  save_total_limit: z.number().int().positive().optional().describe('Keep only the newest N checkpoints.'),
  save_final_model: z.boolean().default(true).describe('Write output_dir/final (safetensors + config + tokenizer + TorchScript model.pt) at the end.'),
  resume_from_checkpoint: z.union([z.string(), z.boolean()]).optional().describe('A checkpoint folder, or true for the newest complete one in output_dir.'),
  ddp_timeout: z.number().int().positive().default(1800).describe('Seconds a collective may wait for the other ranks before the run fails.'),
  ddp_bucket_cap_mb: z.number().positive().optional().describe('MB per bucket of the gradient all-reduce (overlapped with backward); default 25, as DDP.'),
  max_nonfinite_steps: z.number().int().positive().default(3).describe('Stop after this many non-finite steps in a row (each is skipped).'),
  torch_empty_cache_steps: z.number().int().positive().optional().describe('Empty the allocator caches (CUDA and CPU) every N steps.'),
  precompute_ref_log_probs: z.boolean().default(false).describe('Reference log-probs computed once before training (cached on disk); no reference kept in memory.'),
  precompute_ref_batch_size: z.number().int().positive().optional().describe('Batch size of that pass; default per_device_eval_batch_size.'),
  ref_model: z.string().optional().describe("A model folder for the frozen reference (TRL's DPOTrainer ref_model argument); default: a copy of the policy as loaded."),
  sync_ref_model: z.boolean().default(false).describe('TR-DPO: every ref_model_sync_steps, reference ← α·policy + (1 − α)·reference.'),
  ref_model_mixup_alpha: z.number().min(0).max(1).default(0.6).describe('TR-DPO α.'),
  ref_model_sync_steps: z.number().int().positive().default(512).describe('TR-DPO τ: steps between syncs.'),
});

export const trainerConfigSchema = runOptionsSchema
  .merge(dataOptionsSchema)
  .merge(optimizerConfigSchema)
  .merge(iterativeOptionsSchema)
  .merge(dpoLossConfigSchema.innerType())
  .strict()
  .superRefine((c, ctx) => {
    const fail = (path: string, message: string) => ctx.addIssue({ code: z.ZodIssueCode.custom, path: [path], message });
    if (!c.model_name_or_path && !c.model) fail('model_name_or_path', 'set model_name_or_path or model');
    if (c.model && !c.tokenizer_name_or_path) fail('tokenizer_name_or_path', 'a built-in model needs tokenizer_name_or_path');
    if (c.precompute_ref_log_probs && c.sync_ref_model) fail('sync_ref_model', 'cannot be combined with precompute_ref_log_probs (the reference changes)');
    if (c.precompute_ref_log_probs && c.ld_alpha !== undefined) fail('ld_alpha', 'LD-DPO needs per-token reference log-probs: not with precompute_ref_log_probs');
    if (c.sync_ref_model && c.reference_free) fail('sync_ref_model', 'there is no reference to sync with reference_free');
    if (c.eval_strategy && c.eval_strategy !== 'no' && !c.eval_dataset) fail('eval_strategy', `'${c.eval_strategy}' needs eval_dataset`);
    if (c.bf16 && !c.use_peft && c.dtype && c.dtype !== 'float32') fail('dtype', `${c.dtype} with bf16: true: mixed precision keeps fp32 master weights; drop dtype (dtype: bfloat16 alone trains in pure bf16)`);
    if (c.bf16 && c.use_peft && c.dtype && c.dtype !== 'bfloat16') fail('dtype', `${c.dtype} with bf16: true and use_peft: the frozen model computes in bfloat16 (the adapters stay fp32); drop dtype or bf16`);
    if (c.adapter_name_or_path && !c.use_peft) fail('adapter_name_or_path', 'needs use_peft: true');
    if (c.max_tokens_per_batch !== undefined && !c.padding_free && !c.prefix_sharing) fail('max_tokens_per_batch', 'needs padding_free or prefix_sharing (a padded batch costs its longest row times its rows, not its tokens)');
    if (c.ref_model && c.use_peft) fail('ref_model', 'with use_peft the reference is the model with its adapters off; drop ref_model (or use_peft)');
    if (c.ref_model && c.reference_free) fail('ref_model', 'reference_free uses no reference; drop one of them');
    if (c.use_peft && c.sync_ref_model) fail('sync_ref_model', 'with use_peft the reference is the model with its adapters off: there is no reference copy to sync');
    if (c.judge) {
      if (!c.model_name_or_path) fail('model_name_or_path', 'iterative DPO (judge) starts from a model folder: set model_name_or_path');
      if (c.precompute_ref_log_probs) fail('precompute_ref_log_probs', 'iterative DPO (judge) trains on new pairs every round: the reference runs live');
      if (c.ref_model) fail('ref_model', 'iterative DPO (judge) sets each round\'s reference by reference_update');
      if (c.use_peft && c.reference_update === 'per_round') fail('reference_update', "'per_round' with use_peft: the reference is the model with its adapters off; use 'fixed'");
    }
    // The loss options' own cross-checks (exo_pair ε, robust ε, WPO with aot, weights per type).
    const lossKeys = new Set(keysOf(dpoLossConfigSchema));
    const loss = dpoLossConfigSchema.safeParse(Object.fromEntries(Object.entries(c).filter(([k]) => lossKeys.has(k))));
    if (!loss.success) for (const issue of loss.error.issues) ctx.addIssue(issue);
  });

export type TrainerConfigInput = z.input<typeof trainerConfigSchema>;
export type TrainerConfig = z.output<typeof trainerConfigSchema>;

/** Every option torch-dpo takes, with its type, default and doc (for `torch-dpo config` and the README). */
export function trainerOptions(): OptionDoc[] {
  return describeOptions(trainerConfigSchema);
}

/**
 * Validates a config at the boundary. TRL / transformers keys torch-dpo does not take as they are are
 * translated first (mapped, accepted as no-ops, or refused with the torch-dpo way); `notices` says
 * what was mapped or ignored, one line each.
 */
export function parseTrainerConfigWithNotices(input: unknown, where = 'trainer config'): { config: TrainerConfig; notices: string[] } {
  if (isParsed(input)) return { config: input as TrainerConfig, notices: [] };
  const { config, notices } = translateTrlKeys((input ?? {}) as Record<string, unknown>, where);
  return { config: parseOnce(trainerConfigSchema, config, where, [...keysOf(trainerConfigSchema), ...Object.keys(FOREIGN_KEYS)]), notices };
}

export function parseTrainerConfig(input: unknown, where = 'trainer config'): TrainerConfig {
  return parseTrainerConfigWithNotices(input, where).config;
}
