import { ConfigError } from '../errors';

/**
 * Keys of TRL's DPOConfig, transformers' TrainingArguments and TRL's ModelConfig / ScriptArguments
 * (TRL 1.x, transformers 4.5x–5.x, and the 0.2x DPOConfig keys configs still carry) that torch-dpo
 * does not take as they are. Each is translated before validation: mapped onto torch-dpo's key (with
 * a one-line notice), accepted as a no-op (a notice unless the value is TRL's default, which asks
 * for nothing), or refused with the reason and the torch-dpo way. Keys torch-dpo takes with TRL's
 * meaning are in the schemas themselves (lib/train/config.ts and the schemas it merges).
 */

type Out = Record<string, unknown>;
/** Applies the key's value to the config being built; returns a notice, or throws Refusal. */
type Translate = (value: unknown, out: Out) => string | void;

class Refusal extends Error {}
/** Marks a translation that has no effect (the notice says so). */
const NO_EFFECT = '\u0000';

const isOff = (v: unknown) => v === null || v === undefined || v === false || v === '' || v === 0 || (Array.isArray(v) && v.length === 0) || (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0);
const show = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));

/** Has no effect in torch-dpo: a notice when the value asks for something, silence at TRL's default. */
const ignored = (why: string, quiet: (v: unknown) => boolean = isOff): Translate => (v) => (quiet(v) ? undefined : `${NO_EFFECT}${why}`);
/** Asks for what torch-dpo does not do: refused unless the value asks for nothing. */
const refused = (why: string, quiet: (v: unknown) => boolean = isOff): Translate => (v) => {
  if (!quiet(v)) throw new Refusal(why);
};
/** An older name of a torch-dpo key; when both are given, the current name wins. */
const renamed = (to: string): Translate => (v, out) => {
  if (out[to] !== undefined || v === null) return;
  out[to] = v;
  return `read as ${to}: ${show(v)}`;
};
const is = (...values: unknown[]) => (v: unknown) => values.some((x) => JSON.stringify(x) === JSON.stringify(v));
const setDtype = (v: unknown, out: Out): string | void => {
  if (v === 'auto' || v === null || v === undefined) return;
  out.dtype ??= v === 'bf16' ? 'bfloat16' : v === 'fp16' ? 'float16' : v;
  return `read as dtype: ${show(out.dtype)}`;
};
const LAUNCH = 'torch-dpo launch --nproc-per-node N -- train … (data parallel on c10d) with optimizer_sharding: true (ZeRO-1)';
const NOT_YET = (what: string) => `${what} is not in torch-dpo yet`;

const MODEL_KWARGS: Record<string, Translate> = {
  dtype: setDtype,
  torch_dtype: setDtype,
  trust_remote_code: ignored('no Python code runs; models are TorchScript or safetensors'),
  attn_implementation: ignored('attention is the exported graph\'s own'),
  revision: ignored('models load from a local folder'),
  low_cpu_mem_usage: ignored('weights are loaded straight into the parameters'),
  device_map: ignored('use device (one device per rank)'),
  use_cache: ignored('training never keeps a KV cache'),
};

export const FOREIGN_KEYS: Record<string, Translate> = {
  // ── mapped onto torch-dpo keys ──
  torch_dtype: setDtype,
  model_init_kwargs: (v, out) => {
    if (isOff(v)) return;
    if (typeof v !== 'object' || Array.isArray(v)) throw new Refusal('must be a mapping of from_pretrained arguments');
    const notes: string[] = [];
    for (const [key, value] of Object.entries(v as Out)) {
      const translate = MODEL_KWARGS[key] ?? ignored('not a torch-dpo loading option');
      const note = translate(value, out);
      if (note) notes.push(note.startsWith(NO_EFFECT) ? `${key} has no effect (${note.slice(1)})` : note);
    }
    return notes.length > 0 ? notes.join('; ') : undefined;
  },
  ref_model_init_kwargs: ignored('the reference is a copy of the policy as loaded'),
  evaluation_strategy: renamed('eval_strategy'),
  group_by_length: (v, out) => {
    if (v === true) out.train_sampling_strategy ??= 'group_by_length';
  },
  use_cpu: (v, out) => {
    if (v !== true) return;
    out.device = 'cpu';
    return 'read as device: cpu';
  },
  no_cuda: (v, out) => {
    if (v !== true) return;
    out.device = 'cpu';
    return 'read as device: cpu';
  },
  rpo_alpha: (v, out) => {
    if (v === null || v === undefined) return;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new Refusal('must be a number');
    const types = out.loss_type === undefined ? ['sigmoid'] : Array.isArray(out.loss_type) ? [...out.loss_type] : [out.loss_type];
    const weights = Array.isArray(out.loss_weights) ? [...out.loss_weights] : types.map(() => 1);
    out.loss_type = [...types, 'sft'];
    out.loss_weights = [...weights, v];
    return `read as loss_type: [${show(out.loss_type).slice(1, -1)}] with loss_weights: ${show(out.loss_weights)} (RPO, as current TRL spells it)`;
  },
  dataset_name: (v, out) => {
    if (isOff(v)) return;
    if (out.train_dataset === undefined) out.train_dataset = v;
    return `read as train_dataset: ${show(out.train_dataset)} (a local file or folder; torch-dpo does not download from the Hub)`;
  },
  dataset_train_split: ignored('train_dataset names the files', is('train')),
  dataset_test_split: ignored('eval_dataset names the files', is('test')),
  dataset_config: ignored('train_dataset names the files'),
  dataset_streaming: refused('streaming datasets are not supported: rows are read and tokenized up front (and cached)'),
  // ── accepted, no effect in torch-dpo ──
  dataloader_num_workers: ignored('data is tokenized up front (dataset_num_proc threads); batches are built from memory'),
  dataloader_pin_memory: ignored('batches are built in memory', is(true, false)),
  dataloader_persistent_workers: ignored('no loader workers'),
  dataloader_prefetch_factor: ignored('the next batch is always built while the device works'),
  dataloader_drop_last: ignored('a short last batch is kept'),
  remove_unused_columns: ignored('only the prompt/chosen/rejected columns are read', is(true, false)),
  label_names: ignored('labels are the completion tokens'),
  length_column_name: ignored('lengths come from the tokenized pairs', is('length')),
  trust_remote_code: ignored('no Python code runs; models are TorchScript or safetensors'),
  attn_implementation: ignored('attention is the exported graph\'s own'),
  model_revision: ignored('models load from a local folder', is('main')),
  router_aux_loss_coef: ignored('no mixture-of-experts architectures', is(0.001, 0)),
  use_cache: ignored('training never keeps a KV cache'),
  local_rank: ignored('ranks come from torchrun\'s environment (LOCAL_RANK)', is(-1)),
  ddp_backend: ignored('NCCL on CUDA, Gloo on CPU'),
  ddp_find_unused_parameters: ignored('parameters without gradients are reduced as zeros'),
  ddp_broadcast_buffers: ignored('the models have no buffers that change'),
  log_level: ignored('torch-dpo prints its start summary, logs and notices', is('passive')),
  log_level_replica: ignored('ranks other than 0 print errors only', is('warning')),
  log_on_each_node: ignored('rank 0 logs', is(true, false)),
  logging_nan_inf_filter: ignored('non-finite steps are skipped, counted and left out of the logged averages', is(true, false)),
  include_num_input_tokens_seen: ignored('num_tokens is always logged', is('no', true, false, 'all', 'non_padding')),
  skip_memory_metrics: ignored('see bench:train for memory', is(true)),
  project: ignored('no trackio integration', is('huggingface')),
  trackio_space_id: ignored('no trackio integration', is('trackio', null)),
  prediction_loss_only: ignored('evaluation returns the DPO metrics'),
  eval_do_concat_batches: ignored('evaluation averages per batch', is(true, false)),
  eval_use_gather_object: ignored('evaluation averages over ranks'),
  eval_accumulation_steps: ignored('evaluation keeps only running sums'),
  include_for_metrics: ignored('there is no compute_metrics'),
  batch_eval_metrics: ignored('there is no compute_metrics'),
  restore_callback_states_from_checkpoint: ignored('there are no callbacks'),
  ignore_data_skip: ignored('a resume jumps to its batch without reading the skipped ones'),
  full_determinism: ignored('CPU runs are deterministic for a seed; CUDA kernels are as libtorch picks them'),
  save_on_each_node: ignored('rank 0 saves (with optimizer_sharding every rank adds its file)'),
  save_safetensors: ignored('weights are always safetensors', is(true)),
  save_only_model: ignored('checkpoints keep the optimizer so that every run can resume'),
  enable_jit_checkpoint: ignored('a SIGTERM or SIGINT always finishes the step and saves'),
  overwrite_output_dir: ignored('a run continues in output_dir with resume_from_checkpoint, and refuses a folder another run holds'),
  do_train: ignored('`torch-dpo train` trains', is(true, false)),
  do_eval: ignored('eval_strategy decides', is(true, false)),
  do_predict: ignored('there is no prediction step'),
  debug: ignored('see `torch-dpo doctor`'),
  average_tokens_across_devices: ignored('the DPO loss is a mean over pairs', is(true, false)),
  use_logits_to_keep: ignored('log-probs are only computed at completion positions'),
  use_num_logits_to_keep: ignored('log-probs are only computed at completion positions'),
  use_liger_kernel: ignored('the fused linear log-probs (use_fused_linear) already avoid the logits'),
  use_liger_loss: ignored('the fused linear log-probs (use_fused_linear) already avoid the logits'),
  liger_kernel_config: ignored('no Liger kernels'),
  torch_compile: ignored('models run as TorchScript graphs'),
  torch_compile_backend: ignored('models run as TorchScript graphs'),
  torch_compile_mode: ignored('models run as TorchScript graphs'),
  tf32: ignored('libtorch\'s default matmul precision is kept', is(null, false)),
  label_pad_token_id: ignored('completion masks, not label values, mark what counts', is(-100)),
  padding_value: ignored('the tokenizer\'s pad token is used'),
  pad_token: ignored('set it in the tokenizer folder (tokenizer_config.json)'),
  base_model_attribute_name: ignored('not needed for TorchScript models', is('model')),
  force_use_ref_model: ignored('a reference is kept unless reference_free or precompute_ref_log_probs'),
  is_encoder_decoder: refused('only decoder-only (causal LM) models are supported'),
  metric_for_best_model: ignored('there is no best-model selection'),
  greater_is_better: ignored('there is no best-model selection'),
  hub_token: ignored('nothing is pushed'),
  hub_model_id: ignored('nothing is pushed'),
  hub_strategy: ignored('nothing is pushed', is('every_save')),
  hub_private_repo: ignored('nothing is pushed'),
  hub_always_push: ignored('nothing is pushed'),
  hub_revision: ignored('nothing is pushed'),
  // ── asked for what torch-dpo does not (yet) do: refused unless off ──
  fp16: refused('fp16 mixed precision needs dynamic loss scaling, which torch-dpo does not do: use bf16: true (fp32\'s range, no scaling needed)', is(false, null)),
  bf16_full_eval: ignored('evaluation runs in the parameters\' dtype'),
  fp16_full_eval: ignored('evaluation runs in the parameters\' dtype'),
  gradient_checkpointing_kwargs: ignored('torch-dpo checkpoints each layer natively; there are no options'),
  activation_offloading: refused(NOT_YET('activation offloading')),
  deepspeed: refused(`DeepSpeed does not run here; use ${LAUNCH}`),
  fsdp: refused(`FSDP does not run here; use ${LAUNCH}`),
  fsdp_config: refused(`FSDP does not run here; use ${LAUNCH}`),
  accelerator_config: refused(`Accelerate does not run here; use ${LAUNCH}`),
  parallelism_config: refused(`Accelerate does not run here; use ${LAUNCH}`),
  push_to_hub: refused('torch-dpo does not upload: output_dir/final is an HF folder (`huggingface-cli upload <repo> <output_dir>/final`)'),
  load_best_model_at_end: refused('there is no best-model selection: save_total_limit keeps the newest checkpoints, each with its eval metrics in metrics.jsonl'),
  auto_find_batch_size: refused('batch sizes are fixed: set per_device_train_batch_size and gradient_accumulation_steps'),
  neftune_noise_alpha: refused('NEFTune noise is not supported'),
  label_smoothing_factor: refused('this is the classification label smoothing of Trainer; the DPO one is label_smoothing'),
  optim_args: refused('the optimizer is AdamW; its options are adam_beta1, adam_beta2, adam_epsilon, weight_decay'),
  optim_target_modules: refused('GaLore/APOLLO are not supported; every parameter trains with AdamW'),
  lr_scheduler_kwargs: refused('scheduler arguments are not supported; lr_scheduler_type is one of linear, cosine, constant, constant_with_warmup'),
  lora_target_parameters: refused('LoRA on parameters (MoE experts) is not supported: adapters go on linear layers (lora_target_modules)'),
  lora_modules_to_save: refused('only the LoRA adapters train under use_peft (no fully trained modules beside them)'),
  lora_task_type: refused('adapters are for causal language models only (CAUSAL_LM)', is('CAUSAL_LM', null)),
  use_dora: refused('DoRA is not supported: use_peft trains plain LoRA (use_rslora for α/√r scaling)'),
  load_in_8bit: refused('quantized (bitsandbytes) loading is not supported'),
  load_in_4bit: refused('quantized (bitsandbytes) loading is not supported'),
  bnb_4bit_quant_type: ignored('no quantized loading', is('nf4')),
  use_bnb_nested_quant: ignored('no quantized loading'),
  bnb_4bit_quant_storage: ignored('no quantized loading'),
  model_adapter_name: refused('one adapter per model: with use_peft the policy is the model with its adapters and the reference the model without them'),
  ref_adapter_name: refused('one adapter per model: with use_peft the reference is the model with its adapters off'),
  generate_during_eval: refused(NOT_YET('generation during evaluation')),
  tools: refused('tools belong in each row (a "tools" column), where the chat template reads them'),
  datasets: refused('dataset mixtures are not supported: list the files in train_dataset'),
  streaming: refused('streaming datasets are not supported: rows are read and tokenized up front (and cached)'),
  test_split_size: refused('no automatic eval split: put held-out rows in their own file and set eval_dataset'),
  ignore_bias_buffers: ignored('the models have no bool buffers'),
  gradient_checkpointing_use_reentrant: ignored('torch-dpo checkpoints each layer natively; there are no options'),
};

/**
 * Values of torch-dpo's own keys in the forms TRL configs write them: report_to as a string, 'none' or
 * 'all'; dtype 'auto'; a float warmup_steps is TrainingArguments v5's ratio and is taken as is.
 */
const VALUE_FORMS: Record<string, (v: unknown, out: Out) => string | void> = {
  report_to: (v, out) => {
    const list = v === null || v === 'none' ? [] : v === 'all' ? ['tensorboard'] : Array.isArray(v) ? v : [v];
    const wanted = list.filter((x) => x !== 'none');
    const kept = wanted.filter((x) => x === 'tensorboard' || x === 'all');
    const reportTo = kept.length > 0 ? ['tensorboard'] : [];
    out.report_to = reportTo;
    const dropped = wanted.filter((x) => x !== 'tensorboard' && x !== 'all');
    if (dropped.length > 0) return `report_to: ${dropped.join(', ')} not supported; metrics go to metrics.jsonl, report.html${reportTo.length ? ' and TensorBoard' : ''}`;
  },
  dtype: (v, out) => {
    if (v === 'auto' || v === null) delete out.dtype;
  },
};

/** max_length: null is no truncation; max_grad_norm: null is no clipping. */
const NULL_MEANS_SOMETHING = new Set(['max_length', 'max_grad_norm']);

/**
 * Translates TRL / transformers keys (FOREIGN_KEYS) and value forms (VALUE_FORMS) into torch-dpo's
 * config. Every refused key is listed in one ConfigError; unknown keys are left for validation (which
 * suggests the nearest name).
 */
export function translateTrlKeys(input: Record<string, unknown>, where: string): { config: Out; notices: string[] } {
  const out: Out = {};
  const foreign: [string, unknown][] = [];
  for (const [key, value] of Object.entries(input)) {
    if (key in FOREIGN_KEYS) foreign.push([key, value]);
    // TRL writes None for "unset" (a dumped config is full of them); only these keys give null a meaning.
    else if (value !== null || NULL_MEANS_SOMETHING.has(key)) out[key] = value;
  }
  const notices: string[] = [];
  const refusals: string[] = [];
  for (const [key, value] of Object.entries(out)) {
    const note = VALUE_FORMS[key]?.(value, out);
    if (note) notices.push(note);
  }
  for (const [key, value] of foreign) {
    try {
      const note = FOREIGN_KEYS[key](value, out);
      if (note) notices.push(note.startsWith(NO_EFFECT) ? `${key}: ${show(value)} has no effect: ${note.slice(1)}` : `${key}: ${note}`);
    } catch (err) {
      if (!(err instanceof Refusal)) throw err;
      refusals.push(`${key}: ${show(value)} is not supported: ${err.message}`);
    }
  }
  if (refusals.length > 0) throw new ConfigError(`${where} is invalid:\n  ${refusals.join('\n  ')}`);
  return { config: out, notices };
}
