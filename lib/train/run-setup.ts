import { dirname, join } from 'node:path';
import { dataOptionsOf } from '../data/data-options';
import { loadPreferenceData, type DataReport } from '../data/preference-data';
import { BatchSampler, type PairSampler } from '../data/sampler';
import { TokenBudgetSampler } from '../data/token-budget-sampler';
import { pairTokens } from '../data/packed-layout';
import { defaultCacheDir } from '../data/token-cache';
import { HfTokenizer } from '../data/tokenizer';
import type { TokenizedPair } from '../data/tokenize-pairs';
import { bucketBytesOf } from '../distributed/buckets';
import { DataParallel } from '../distributed/data-parallel';
import { ConfigError } from '../errors';
import { faultPoint } from '../fault-point';
import { noGrad } from '../grad-mode';
import { dpoLossConfigOf, type DpoLossConfig } from '../loss/dpo-config';
import { CausalLM, createModel } from '../models/causal-lm';
import { loadModel } from '../models/load-model';
import { MixedPrecision } from './mixed-precision';
import { batchLayoutNotice, batchLayoutOf } from './batch-layout';
import type { CollateOptions } from '../data/collate';
import type { LoraOptions } from '../models/lora';
import { readAdapterOptions } from '../models/peft-files';
import { createOptimizer, zeroStageOf, type Optimizer } from '../optim/optimizer';
import { ZeroLayers } from '../distributed/zero-layers';
import { optimizerConfigOf } from '../optim/optimizer-config';
import { manualSeed } from '../runtime';
import { scope } from '../scope';
import type { TrainerConfig } from './config';
import { resolveDevice } from './device';
import { OutputDir } from './output-dir';
import { precomputeReferenceLogps, type Reference } from './reference';
import { runSchedule, type RunSchedule } from './run-schedule';
import { StoppedBeforeTrainingError } from './train-records';

/** Everything a training run holds, built by loadRun in order; DPOTrainer owns it. */
export interface RunParts {
  config: TrainerConfig;
  loss: DpoLossConfig;
  parallel: DataParallel | null;
  /** Rank 0's hold on output_dir (lock, metrics); null on other ranks and for read-only commands. */
  output: OutputDir | null;
  device: string;
  /** The trained weights (fp32 masters under bf16 mixed precision): optimizer, checkpoints, exports. */
  policy: CausalLM;
  /** bf16: true: the working copy forward and backward run on, and its bookkeeping. */
  mixed: MixedPrecision | null;
  /** How batches are laid out (padded, or packed with padding_free / prefix_sharing). */
  layout: CollateOptions;
  reference: Reference;
  tokenizer: HfTokenizer;
  pairs: TokenizedPair[];
  evalPairs: TokenizedPair[];
  dataReport: DataReport;
  evalDataReport: DataReport | null;
  sampler: PairSampler;
  optimizer: Optimizer;
  schedule: RunSchedule;
}

export interface LoadOptions {
  /** Aborted: stop between phases with StoppedBeforeTrainingError. */
  signal?: AbortSignal;
  /** false: output_dir is only read (eval, export, precompute-ref), so it is neither locked nor tidied. */
  writesOutput?: boolean;
  notice?: (message: string) => void;
  /** A model folder with safetensors of a built-in architecture loads into it even beside a model.pt. */
  preferBuiltin?: boolean;
}

/**
 * The LoRA options of a run: the config's lora_* keys, or those of the adapter it continues
 * (adapter_name_or_path), as PEFT's PeftModel.from_pretrained takes the saved adapter's config.
 */
function loraOptionsOf(c: TrainerConfig, notice: (message: string) => void): LoraOptions {
  const own: LoraOptions = { r: c.lora_r, alpha: c.lora_alpha, dropout: c.lora_dropout, targetModules: c.lora_target_modules, useRslora: c.use_rslora };
  if (!c.adapter_name_or_path) return own;
  const saved = readAdapterOptions(c.adapter_name_or_path);
  const differs = (['r', 'alpha', 'dropout', 'useRslora'] as const).filter((k) => saved[k] !== own[k]);
  if (differs.length) notice(`adapter_name_or_path ${c.adapter_name_or_path}: its adapter_config.json sets ${differs.map((k) => `${k} ${saved[k]}`).join(', ')}, used instead of the lora_* options`);
  return saved;
}

/** Micro-batches of per_device_train_batch_size pairs, or by token budget (max_tokens_per_batch). */
function samplerOf(c: TrainerConfig, pairs: TokenizedPair[], parallel: DataParallel | null): PairSampler {
  const common = { seed: c.data_seed ?? c.seed, shuffle: c.train_sampling_strategy !== 'sequential', rank: parallel?.rank ?? 0, worldSize: parallel?.worldSize ?? 1 };
  if (c.max_tokens_per_batch !== undefined) {
    return new TokenBudgetSampler(pairs.map((p) => pairTokens(p, c.prefix_sharing)), { ...common, budget: c.max_tokens_per_batch });
  }
  return new BatchSampler(pairs.map((p) => Math.max(p.chosen.ids.length, p.rejected.ids.length)), {
    ...common, batchSize: c.per_device_train_batch_size, groupByLength: c.train_sampling_strategy === 'group_by_length',
  });
}

/**
 * A sequence longer than the model's positions (n_positions, max_position_embeddings) would fail deep
 * inside a forward ("index out of range"): refused before any compute, with the lengths and the fix.
 */
function checkPositions(policy: CausalLM, c: TrainerConfig, pairs: TokenizedPair[]): void {
  const positions = policy.info.maxPositions;
  if (!Number.isFinite(positions)) return;
  let longest = 0;
  let over = 0;
  for (const p of pairs) {
    const length = Math.max(p.chosen.ids.length, p.rejected.ids.length);
    longest = Math.max(longest, length);
    if (length > positions) over += 1;
  }
  if (over > 0) {
    throw new ConfigError(`max_length ${c.max_length ?? 'null (no limit)'} lets ${over} pair(s) exceed the model's ${positions} positions (longest ${longest} tokens): set max_length: ${positions} or less`);
  }
}

/**
 * The policy a config describes: model_name_or_path (or a built-in `model`), with LoRA adapters
 * (use_peft; adapter_name_or_path's weights), in the dtype training wants, on `device`.
 */
export async function loadPolicy(c: TrainerConfig, device: string, notice: (message: string) => void = () => {}, preferBuiltin = false): Promise<CausalLM> {
  const lora = c.use_peft ? loraOptionsOf(c, notice) : null;
  // bf16 mixed precision keeps the policy's weights in fp32 (the masters), whatever is stored; under
  // LoRA the frozen model computes in bf16 and the adapters (fp32) are the trained weights.
  const dtype = c.dtype ?? (c.bf16 ? (lora ? 'bfloat16' : 'float32') : undefined);
  const policy = c.model_name_or_path
    ? await loadModel(c.model_name_or_path, { device, dtype, lora, preferBuiltin })
    : await createModel(c.model!.architecture, c.model!.config, { dtype, device, lora });
  try {
    if (c.adapter_name_or_path) await policy.loadTrained(c.adapter_name_or_path);
  } catch (err) {
    policy.dispose();
    throw err;
  }
  return policy;
}

/** ref_model: a frozen model from its own folder, computing in the dtype the policy computes in. */
async function loadReference(path: string, device: string, c: TrainerConfig, preferBuiltin = false): Promise<CausalLM> {
  const reference = await loadModel(path, { device, dtype: c.bf16 ? 'bfloat16' : c.dtype, preferBuiltin });
  await reference.freeze();
  await reference.eval();
  return reference;
}

/**
 * Takes output_dir (checked writable, locked) before anything heavy, resolves the device, then loads
 * model, reference, tokenizer and data, and builds sampler and optimizer. On failure (or a stop)
 * whatever was made is released again.
 */
export async function loadRun(config: TrainerConfig, options: LoadOptions = {}): Promise<RunParts> {
  const c = config;
  const notice = options.notice ?? (() => {});
  const made: { dispose(): void }[] = [];
  const stopIfAsked = () => {
    if (options.signal?.aborted) throw new StoppedBeforeTrainingError();
  };
  try {
    const device = resolveDevice(c.device);
    manualSeed(c.seed);
    const parallel = await DataParallel.join(c.ddp_timeout, bucketBytesOf(c.ddp_bucket_cap_mb));
    if (parallel) made.push(parallel);
    const isMain = (parallel?.rank ?? 0) === 0;
    const output = isMain && options.writesOutput !== false ? OutputDir.open(c.output_dir, notice) : null;
    if (output) made.push({ dispose: () => output.release() });
    // Every rank sees output_dir after rank 0 has tidied it (a recovered checkpoint counts for resume).
    await parallel?.barrier();
    stopIfAsked();
    const rankDevice = parallel?.device(device) ?? device;
    const loss = dpoLossConfigOf(c);
    const lora = c.use_peft;
    const stage = zeroStageOf(optimizerConfigOf(c));
    // ZeRO-3: the models are staged in host memory and sharded onto the device unit by unit, so no
    // accelerator ever holds a whole model (host memory holds one, briefly). On the CPU the same path.
    const staged = stage === 3 && parallel !== null;
    const loadDevice = staged ? 'cpu' : rankDevice;
    const policy = await loadPolicy(c, loadDevice, notice, options.preferBuiltin);
    made.push(policy);
    // Every rank starts from rank 0's weights.
    if (parallel) await scope(() => noGrad(async () => parallel.group.broadcast((await policy.namedParameters()).map((p) => p.tensor), 0)));
    // disable_dropout: train in eval mode (the built-in models' only train-mode behaviour is dropout).
    await policy.train(!c.disable_dropout);
    const mixed = c.bf16 && !lora ? await MixedPrecision.create(policy) : null;
    if (mixed) made.push(mixed);
    if (c.gradient_checkpointing) (mixed?.working ?? policy).setGradientCheckpointing(true);
    faultPoint('setup:model-loaded');
    // The reference computes like the policy does (in bf16 under mixed precision); under LoRA it is
    // the policy with its adapters off.
    let referenceModel = loss.reference_free ? null : lora ? policy.adaptersOff() : c.ref_model ? await loadReference(c.ref_model, loadDevice, c, options.preferBuiltin) : await (mixed?.working ?? policy).referenceCopy();
    if (referenceModel) made.push(referenceModel);
    // ZeRO-3: the policy's weights sharded over the ranks (the reference's once it is kept, below);
    // then what is in no unit (buffers, LoRA's adapters) follows onto the device.
    if (stage === 3 && parallel) {
      await (mixed ? mixed.shardLayers(policy, parallel.group, rankDevice) : ZeroLayers.shard(policy, parallel.group, { device: rankDevice }));
      if (staged) for (const model of [policy, mixed?.working]) await model?.to({ device: rankDevice });
    }
    stopIfAsked();
    const tokenizer = HfTokenizer.fromDir(c.tokenizer_name_or_path ?? c.model_name_or_path!);
    const layout = batchLayoutOf(c, tokenizer.padId, policy);
    const layoutNotice = batchLayoutNotice(c, policy);
    if (layoutNotice) notice(layoutNotice);
    const dataOptions = dataOptionsOf(c);
    const train = await loadPreferenceData(c.train_dataset, tokenizer, dataOptions);
    const evaluation = c.eval_dataset ? await loadPreferenceData(c.eval_dataset, tokenizer, dataOptions) : null;
    checkPositions(policy, c, [...train.pairs, ...(evaluation?.pairs ?? [])]);
    stopIfAsked();
    let reference: Reference = referenceModel ? { kind: 'model', model: referenceModel } : { kind: 'none' };
    // A staged reference that is precomputed runs whole, on the device.
    if (staged && referenceModel && !lora && c.precompute_ref_log_probs) await referenceModel.to({ device: rankDevice });
    if (c.precompute_ref_log_probs && referenceModel) {
      // One pass with a temporary reference, then only the numbers are kept.
      const cacheDir = c.cache_dir === false ? null : join(c.cache_dir ?? dirname(defaultCacheDir()), 'reference');
      const pass = { layout, batchSize: c.precompute_ref_batch_size ?? c.per_device_eval_batch_size, fusedLinear: c.use_fused_linear, cacheDir, parallel };
      const trainLogps = (await precomputeReferenceLogps(referenceModel, train.pairs, pass)).logps;
      const evalLogps = evaluation && evaluation.pairs.length > 0 ? (await precomputeReferenceLogps(referenceModel, evaluation.pairs, pass)).logps : null;
      referenceModel.dispose();
      referenceModel = null;
      reference = { kind: 'precomputed', train: trainLogps, eval: evalLogps };
    }
    // A precomputing reference ran whole, once; a kept one is sharded like the policy.
    // (Under LoRA the reference is the policy's own sharded layers with the adapters off.)
    if (stage === 3 && parallel && reference.kind === 'model' && !lora) {
      await ZeroLayers.shard(reference.model, parallel.group, { device: rankDevice });
      if (staged) await reference.model.to({ device: rankDevice });
    }
    const sampler = samplerOf(c, train.pairs, parallel);
    // Handles of parameters the optimizer does not keep (frozen ones) end with this scope.
    const optimizer = await scope(async () => createOptimizer(await policy.namedParameters(), optimizerConfigOf(c), parallel?.group ?? null, mixed?.unitLayout() ?? policy.shardedLayers));
    made.push(optimizer);
    stopIfAsked();
    return {
      config: c, loss, parallel, output, device: rankDevice, policy, mixed, layout, reference, tokenizer, pairs: train.pairs, evalPairs: evaluation?.pairs ?? [],
      dataReport: train.report, evalDataReport: evaluation?.report ?? null, sampler, optimizer, schedule: runSchedule(c, sampler.stepsPerEpoch),
    };
  } catch (err) {
    for (const part of made.reverse()) part.dispose();
    throw err;
  }
}
