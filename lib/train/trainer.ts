import { EventEmitter } from 'node:events';
import { copyFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { collate, disposeBatch } from '../data/collate';
import { loadPreferenceData, type DataReport } from '../data/preference-data';
import { defaultCacheDir } from '../data/token-cache';
import { BatchSampler } from '../data/sampler';
import { HfTokenizer } from '../data/tokenizer';
import type { TokenizedPair } from '../data/tokenize-pairs';
import { TorchDpoError } from '../errors';
import { faultPoint } from '../fault-point';
import { parseDpoLossConfig, type DpoLossConfig } from '../loss/dpo-config';
import { CausalLM, createModel, loadModel } from '../models/causal-lm';
import { manualSeed } from '../runtime';
import { AdamW } from './adamw';
import { beginCheckpoint, finishCheckpoint, newestCompleteCheckpoint, optimizerFile, partialCheckpointDir, readCheckpoint } from './checkpoint';
import { OutputDir } from './output-dir';
import { parseTrainerConfig, type TrainerConfig, type TrainerConfigInput } from './config';
import { microStep, type MicroStepResult } from './dpo-step';
import { noGrad } from '../grad-mode';
import type { GradReducer } from '../distributed/process-group';
import { ShardedAdamW } from '../distributed/sharded-adamw';
import { writeSafetensors } from '../models/safetensors';
import { DataParallel } from './data-parallel';
import { writeHtmlReport } from '../report/html-report';
import { TensorBoardWriter } from '../report/tensorboard';
import { precomputeReferenceLogps, syncReference, type ReferenceLogps } from './reference';
import { scheduleFactor, warmupSteps } from './schedulers';
import { evaluatePairs } from './evaluate';
import { averageRecords, pick, prefixed, StoppedBeforeTrainingError, TrainingDivergedError, type LogRecord, type TrainResult } from './train-records';

export { StoppedBeforeTrainingError, TrainingDivergedError, type LogRecord, type TrainResult } from './train-records';

/**
 * DPO training (TRL's DPOTrainer semantics): policy and frozen reference, fused log-probs, the DPO
 * loss family, gradient accumulation, clipping, AdamW with schedules. Events: 'log' (LogRecord every
 * logging_steps), 'step' ({ step, loss }). Run `setup()` once, then `train({ signal })`.
 */
export class DPOTrainer extends EventEmitter {
  readonly config: TrainerConfig;
  readonly loss: DpoLossConfig;
  policy!: CausalLM;
  reference: CausalLM | null = null;
  tokenizer!: HfTokenizer;
  pairs: TokenizedPair[] = [];
  evalPairs: TokenizedPair[] = [];
  /** With precompute_ref_log_probs: reference log-probs per pair (train and eval). */
  private refLogps: ReferenceLogps | null = null;
  private evalRefLogps: ReferenceLogps | null = null;
  dataReport!: DataReport;
  /** AdamW, or its ZeRO-1 form with optimizer_sharding on several ranks. */
  optimizer!: AdamW | ShardedAdamW;
  private sampler!: BatchSampler;
  step = 0;
  history: LogRecord[] = [];
  private tokensSeen = 0;
  /** Steps skipped so far (non-finite loss or gradient), over the whole run including before a resume. */
  nonfiniteSteps = 0;
  /** The step this process started training from (0, or the resumed checkpoint's). */
  private startStep = 0;
  /** The step of the newest checkpoint this run saved or resumed from; -1 when none. */
  private lastSavedStep = -1;
  /** Inside an optimizer step (a stop then saves the step being finished). */
  private stepping = false;
  private trainingStarted = false;
  /** Rank 0's hold on output_dir (lock, metrics). */
  private output: OutputDir | null = null;
  private tensorboard: TensorBoardWriter | null = null;
  /** Data parallel: the process group and this rank's place when WORLD_SIZE > 1 (torchrun's environment). */
  parallel: DataParallel | null = null;
  /** Without optimizer sharding: averages gradients over ranks while backward runs. */
  private gradReducer: GradReducer | null = null;

  get rank(): number { return this.parallel?.rank ?? 0; }
  get worldSize(): number { return this.parallel?.worldSize ?? 1; }

  /** Rank 0 writes logs, checkpoints, reports and exports; the others compute. */
  get isMain(): boolean {
    return this.rank === 0;
  }

  constructor(input: TrainerConfigInput) {
    super();
    this.config = parseTrainerConfig(input);
    this.loss = parseDpoLossConfig(Object.fromEntries(
      Object.entries(this.config).filter(([k]) => ['loss_type', 'loss_weights', 'beta', 'label_smoothing', 'f_divergence_type', 'f_alpha_divergence_coef', 'discopop_tau', 'use_weighting', 'ld_alpha', 'reference_free'].includes(k)),
    ));
  }

  /**
   * Takes output_dir (checked writable, locked; skipped with writesOutput: false, for commands that only
   * read), then loads model, reference, tokenizer and data, and builds the optimizer. An aborted `signal`
   * stops between these phases with StoppedBeforeTrainingError. Events: 'notice' (a message).
   */
  async setup(options: { signal?: AbortSignal; writesOutput?: boolean } = {}): Promise<void> {
    const c = this.config;
    const stopIfAsked = () => {
      if (options.signal?.aborted) throw new StoppedBeforeTrainingError();
    };
    manualSeed(c.seed);
    this.parallel = await DataParallel.join(c.ddp_timeout);
    if (this.isMain && options.writesOutput !== false) this.output = OutputDir.open(c.output_dir, (m) => this.emit('notice', m));
    // Every rank sees output_dir after rank 0 has tidied it (a recovered checkpoint counts for resume).
    await this.parallel?.barrier();
    stopIfAsked();
    const device = this.parallel?.device(c.device) ?? c.device;
    if (c.model_name_or_path) {
      this.policy = await loadModel(c.model_name_or_path, { device, dtype: c.dtype });
    } else {
      this.policy = await createModel(c.model!.architecture, c.model!.config);
      if (device !== 'cpu' || c.dtype) await this.policy.to({ device, dtype: c.dtype });
    }
    // Every rank starts from rank 0's weights.
    if (this.parallel) await noGrad(async () => this.parallel!.group.broadcast((await this.policy.namedParameters()).map((p) => p.tensor), 0));
    // disable_dropout: train in eval mode (the built-in models' only train-mode behaviour is dropout).
    await this.policy.train(!c.disable_dropout);
    faultPoint('setup:model-loaded');
    this.reference = this.loss.reference_free ? null : await this.policy.referenceCopy();
    stopIfAsked();
    this.tokenizer = HfTokenizer.fromDir(c.tokenizer_name_or_path ?? c.model_name_or_path!);
    const dataOptions = {
      max_length: c.max_length, max_prompt_length: c.max_prompt_length, truncation_mode: c.truncation_mode,
      on_invalid: c.on_invalid, dataset_num_proc: c.dataset_num_proc, cache_dir: c.cache_dir,
    };
    const { pairs, report } = await loadPreferenceData(c.train_dataset, this.tokenizer, dataOptions);
    this.pairs = pairs;
    this.dataReport = report;
    if (c.eval_dataset) this.evalPairs = (await loadPreferenceData(c.eval_dataset, this.tokenizer, dataOptions)).pairs;
    stopIfAsked();
    if (c.precompute_ref_log_probs && !this.loss.reference_free) {
      // One pass with a temporary reference, then only the numbers are kept.
      const reference = this.reference!;
      const cacheDir = c.cache_dir === false ? null : join(c.cache_dir ?? dirname(defaultCacheDir()), 'reference');
      const options = { padId: this.tokenizer.padId, batchSize: c.precompute_ref_batch_size ?? c.per_device_eval_batch_size, fusedLinear: c.use_fused_linear, cacheDir, parallel: this.parallel };
      this.refLogps = (await precomputeReferenceLogps(reference, this.pairs, options)).logps;
      if (this.evalPairs.length > 0) this.evalRefLogps = (await precomputeReferenceLogps(reference, this.evalPairs, options)).logps;
      reference.dispose();
      this.reference = null;
    }
    this.sampler = new BatchSampler(pairs.map((p) => Math.max(p.chosen.ids.length, p.rejected.ids.length)), {
      batchSize: c.per_device_train_batch_size, seed: c.seed, groupByLength: c.group_by_length, rank: this.rank, worldSize: this.worldSize,
    });
    const adamw = { lr: c.learning_rate, betas: [c.adam_beta1, c.adam_beta2] as [number, number], eps: c.adam_epsilon, weightDecay: c.weight_decay };
    const parameters = await this.policy.namedParameters();
    this.optimizer = c.optimizer_sharding && this.parallel ? new ShardedAdamW(parameters, adamw, this.parallel.group) : new AdamW(parameters, adamw);
    if (this.parallel && this.optimizer instanceof AdamW) this.gradReducer = this.parallel.group.gradReducer(this.optimizer.params.map((p) => p.tensor));
    if (c.report_to.includes('tensorboard') && this.output) this.tensorboard = new TensorBoardWriter(join(c.output_dir, 'runs'));
    if (c.resume_from_checkpoint) {
      const notice = (m: string) => this.isMain && this.emit('notice', m);
      await this.resume(c.resume_from_checkpoint === true ? newestCompleteCheckpoint(c.output_dir, notice) : c.resume_from_checkpoint);
    }
    stopIfAsked();
  }

  private get sharded(): boolean {
    return this.optimizer instanceof ShardedAdamW;
  }

  /**
   * Saves output_dir/checkpoint-<step> (weights, optimizer, RNG, position, config, metrics); every rank
   * calls it. Rank 0 writes; with optimizer sharding each rank first adds its optimizer file to the
   * temporary folder that rank 0 completes and renames.
   */
  async saveCheckpoint(): Promise<string> {
    const c = this.config;
    const final = join(c.output_dir, `checkpoint-${this.step}`);
    const partial = partialCheckpointDir(c.output_dir, this.step, this.parallel?.tag ?? process.pid);
    if (this.isMain) beginCheckpoint(partial, this.step);
    if (this.sharded) {
      await this.parallel!.barrier();
      if (!existsSync(partial)) {
        throw new TorchDpoError(`optimizer_sharding: rank ${this.rank} does not see ${partial}, which rank 0 created: every rank writes its optimizer file into the checkpoint, so output_dir must be one folder shared by all ranks (the same path on shared storage)`, 'ERR_CONFIG');
      }
      await writeSafetensors(join(partial, optimizerFile(this.rank)), this.optimizer.stateTensors());
      await this.parallel!.barrier();
    }
    if (this.isMain) {
      await finishCheckpoint(partial, c.output_dir, this.step, {
        exportWeights: (dir) => this.policy.exportSafetensors(dir),
        optimizer: this.sharded ? null : this.optimizer.stateTensors(),
        state: {
          step: this.step, optimizerSteps: this.optimizer.steps, tokensSeen: this.tokensSeen, nonfiniteSteps: this.nonfiniteSteps, worldSize: this.worldSize, optimizerSharding: this.sharded,
          history: this.history, config: this.config as Record<string, unknown>,
        },
      }, c.save_total_limit);
      this.emit('checkpoint', final);
    }
    this.lastSavedStep = this.step;
    return final;
  }

  /** Continues from a checkpoint: policy weights, optimizer moments, step, RNG and metrics. */
  async resume(path: string): Promise<void> {
    const { state, optimizer } = readCheckpoint(path, this.rank);
    if ((state.worldSize ?? 1) !== this.worldSize) {
      throw new TorchDpoError(`${path} was written by ${state.worldSize ?? 1} rank(s); resume it with the same world size (now ${this.worldSize})`, 'ERR_CONFIG');
    }
    if ((state.optimizerSharding ?? false) !== this.sharded) {
      throw new TorchDpoError(`${path} was written with optimizer_sharding ${state.optimizerSharding ? 'on' : 'off'}; resume it with the same setting`, 'ERR_CONFIG');
    }
    await this.policy.loadSafetensors(join(path, 'model.safetensors'));
    if (this.optimizer instanceof ShardedAdamW) await this.optimizer.loadState(optimizer, state.optimizerSteps, join(path, optimizerFile(this.rank)));
    else await this.optimizer.loadState(optimizer, state.optimizerSteps);
    for (const t of optimizer.values()) t.dispose();
    this.step = state.step;
    this.startStep = state.step;
    this.lastSavedStep = state.step;
    this.tokensSeen = state.tokensSeen;
    this.nonfiniteSteps = state.nonfiniteSteps ?? 0;
    this.history = state.history as LogRecord[];
  }

  /**
   * The loss and metrics on held-out pairs (default: eval_dataset), without gradients, keyed with the
   * eval_ prefix. Uses the policy as it is now; dropout follows disable_dropout as in training.
   */
  async evaluate(pairs: TokenizedPair[] = this.evalPairs): Promise<Record<string, number>> {
    const precomputed = pairs === this.evalPairs ? this.evalRefLogps : null;
    if (!precomputed && this.refLogps && !this.loss.reference_free) {
      throw new TorchDpoError('evaluate: with precompute_ref_log_probs only eval_dataset can be evaluated (no reference model is kept)', 'ERR_CONFIG');
    }
    return evaluatePairs(pairs, {
      policy: this.policy, reference: precomputed ?? this.reference, loss: this.loss, padId: this.tokenizer.padId,
      batchSize: this.config.per_device_eval_batch_size, padToMultipleOf: this.config.pad_to_multiple_of,
      fusedLinear: this.config.use_fused_linear, parallel: this.parallel,
    });
  }

  /** Optimizer steps per epoch and in the whole run. */
  get plan(): { stepsPerEpoch: number; totalSteps: number } {
    const c = this.config;
    const stepsPerEpoch = Math.max(1, Math.floor(this.sampler.stepsPerEpoch / c.gradient_accumulation_steps));
    const totalSteps = c.max_steps > 0 ? c.max_steps : Math.ceil(c.num_train_epochs * stepsPerEpoch);
    return { stepsPerEpoch, totalSteps };
  }

  /**
   * Trains to the planned step. An aborted `signal` stops between optimizer steps (all ranks at the
   * same one) and saves a checkpoint, unless this run took no step yet or that step is saved already.
   */
  async train(options: { signal?: AbortSignal } = {}): Promise<TrainResult> {
    const c = this.config;
    const { stepsPerEpoch, totalSteps } = this.plan;
    const warmup = warmupSteps(totalSteps, c.warmup_steps, c.warmup_ratio);
    this.trainingStarted = true;
    if (this.output) {
      // Rows after the step training restarts from were written by a run that stopped unsaved.
      const { torn, dropped } = this.output.metrics.truncateAfter(this.step);
      if (torn) this.emit('notice', torn);
      if (dropped > 0) this.emit('notice', `${this.output.metrics.path}: dropped ${dropped} row(s) after step ${this.step}, written after the checkpoint this run starts from`);
    }
    let window: LogRecord[] = [];
    let nonFiniteInRow = 0;
    const result = (stopped: TrainResult['stopped']): TrainResult => ({
      steps: this.step, history: this.history, stopped, nonfiniteSteps: this.nonfiniteSteps,
      checkpoint: this.lastSavedStep >= 0 ? join(c.output_dir, `checkpoint-${this.lastSavedStep}`) : null,
    });
    while (this.step < totalSteps) {
      // A signal that came during synchronous work (a save) is handled here, so the stop happens at
      // this step boundary and not one step later: the second turn's poll phase reads it.
      for (let turn = 0; turn < 2; turn += 1) await new Promise((resolve) => setImmediate(resolve));
      if (await this.anyRank(options.signal?.aborted ?? false)) {
        // Keep what was learned since the last save; all ranks agree on the step.
        if (this.step > this.startStep && this.step !== this.lastSavedStep) await this.saveCheckpoint();
        await this.parallel?.barrier();
        return result('aborted');
      }
      this.stepping = true;
      const started = process.hrtime.bigint();
      const { results, pairsInStep } = await this.accumulateGradients(stepsPerEpoch);
      const gradNorm = await this.averagedGradNorm();
      // Loss and per-pair metrics of the micro-batches (weighted by their pairs), averaged over ranks
      // in one collective.
      const keys = Object.keys(results[0].metrics);
      const local = [results.reduce((s, r) => s + r.loss * r.pairs, 0), ...keys.map((key) => results.reduce((s, r) => s + r.metrics[key] * r.pairs, 0))];
      const [lossValue, ...reduced] = await this.meanOverRanks(local.map((v) => v / pairsInStep));
      const finite = Number.isFinite(gradNorm) && Number.isFinite(lossValue);
      if (finite) {
        nonFiniteInRow = 0;
        this.optimizer.lr = c.learning_rate * scheduleFactor(c.lr_scheduler_type, this.step, totalSteps, warmup);
        await this.optimizer.step();
      } else {
        // A non-finite loss or gradient: skip the update (the data moves on), count it, stop when it keeps happening.
        nonFiniteInRow += 1;
        this.nonfiniteSteps += 1;
        if (nonFiniteInRow >= c.max_nonfinite_steps) {
          await this.optimizer.zeroGrad();
          throw new TrainingDivergedError(`${nonFiniteInRow} non-finite steps in a row (last at step ${this.step + 1}): loss ${lossValue}, grad norm ${gradNorm}`);
        }
      }
      await this.optimizer.zeroGrad();
      this.step += 1;
      this.stepping = false;
      if (finite && c.sync_ref_model && this.reference && this.step % c.ref_model_sync_steps === 0) {
        await syncReference(this.policy, this.reference, c.ref_model_mixup_alpha);
      }
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const tokens = results.reduce((s, r) => s + r.tokens, 0);
      this.tokensSeen += tokens;
      if (finite) {
        const record: LogRecord = {
          step: this.step, epoch: this.step / stepsPerEpoch, learning_rate: this.optimizer.lr, grad_norm: gradNorm, loss: lossValue,
          num_tokens: this.tokensSeen, tokens_per_second: (tokens / seconds) * this.worldSize, step_seconds: seconds, nonfinite_steps: this.nonfiniteSteps,
        };
        keys.forEach((key, i) => (record[key] = reduced[i]));
        window.push(record);
      }
      this.emit('step', { step: this.step, loss: lossValue, skipped: !finite });
      if ((this.step % c.logging_steps === 0 || this.step === totalSteps) && window.length > 0) {
        const averaged = { ...averageRecords(window), nonfinite_steps: this.nonfiniteSteps };
        window = [];
        if (this.isMain) {
          this.history.push(averaged);
          this.output?.metrics.append(averaged);
          this.tensorboard?.scalars(this.step, prefixed('train/', averaged));
          this.emit('log', averaged);
        }
      }
      if (c.eval_steps && this.evalPairs.length > 0 && (this.step % c.eval_steps === 0 || this.step === totalSteps)) {
        const metrics = { step: this.step, ...(await this.evaluate()) };
        this.output?.metrics.append(metrics);
        this.tensorboard?.scalars(this.step, Object.fromEntries(Object.entries(metrics).filter(([k]) => k !== 'step').map(([k, v]) => [`eval/${k.slice(5)}`, v])));
        if (this.isMain) this.emit('eval', metrics);
      }
      if (this.step % c.save_steps === 0) await this.saveCheckpoint();
    }
    if (this.step !== this.lastSavedStep) await this.saveCheckpoint();
    if (this.isMain) {
      if (c.save_final_model) this.emit('export', await this.exportFinal(join(c.output_dir, 'final')));
      if (this.history.length > 0) this.emit('report', writeHtmlReport(c.output_dir, undefined, (m) => this.emit('notice', m)));
    }
    await this.parallel?.barrier();
    return result('done');
  }

  /** Forward and backward of this step's micro-batches (gradients accumulate, scaled by their share of pairs). */
  private async accumulateGradients(stepsPerEpoch: number): Promise<{ results: MicroStepResult[]; pairsInStep: number }> {
    const c = this.config;
    const epoch = Math.floor(this.step / stepsPerEpoch);
    const inEpoch = this.step % stepsPerEpoch;
    const micro = this.sampler.batches(epoch).slice(inEpoch * c.gradient_accumulation_steps, (inEpoch + 1) * c.gradient_accumulation_steps);
    const pairsInStep = micro.reduce((s, b) => s + b.length, 0);
    const results: MicroStepResult[] = [];
    const collateAt = (k: number) => collate(micro[k].map((i) => this.pairs[i]), { padId: this.tokenizer.padId, padToMultipleOf: c.pad_to_multiple_of });
    let batch = collateAt(0);
    for (let k = 0; k < micro.length; k += 1) {
      const indices = micro[k];
      const reference = this.refLogps ? pick(this.refLogps, indices) : this.reference;
      // Gradients are final in the last micro-batch's backward: reduce them over ranks as it runs.
      if (k === micro.length - 1) this.gradReducer?.arm();
      // Submit this micro-batch's forward, then build the next batch while the device works.
      const pending = microStep(this.policy, reference, batch, this.loss, indices.length / pairsInStep, c.use_fused_linear);
      const next = k + 1 < micro.length ? collateAt(k + 1) : null;
      try {
        results.push(await pending);
      } catch (err) {
        if (next) disposeBatch(next);
        throw err;
      } finally {
        disposeBatch(batch);
      }
      if (next) batch = next;
    }
    return { results, pairsInStep };
  }

  /** What a stop asked for now would do, for the messages of a signal handler. */
  stopPlan(): string {
    if (!this.trainingStarted) return 'stopping before training starts: no checkpoint is written';
    const target = this.stepping ? this.step + 1 : this.step;
    if (target === this.lastSavedStep) return `checkpoint-${target} is saved already`;
    if (target === this.startStep) return 'no step was taken: no checkpoint is written';
    return `saving checkpoint-${target}`;
  }

  /** The trained policy in HF layout (safetensors + config + tokenizer) and as TorchScript model.pt. */
  async exportFinal(dir: string): Promise<string> {
    await this.policy.exportSafetensors(dir);
    const tokenizerDir = this.config.tokenizer_name_or_path ?? this.config.model_name_or_path!;
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
      if (existsSync(join(tokenizerDir, f))) copyFileSync(join(tokenizerDir, f), join(dir, f));
    }
    await this.policy.save(join(dir, 'model.pt'));
    return dir;
  }

  /**
   * Gradients averaged over ranks (all-reduced in buckets during backward, or reduce-scattered to their
   * owners with optimizer sharding), clipped to max_grad_norm; returns the global norm before clipping.
   */
  private async averagedGradNorm(): Promise<number> {
    const maxNorm = this.config.max_grad_norm ?? undefined;
    if (this.optimizer instanceof ShardedAdamW) return this.optimizer.reduceGradients(maxNorm);
    await this.gradReducer?.finish();
    return this.optimizer.clipGradNorm(maxNorm);
  }

  /** True when any rank asks to stop (so that all ranks stop at the same step). */
  private anyRank(flag: boolean): Promise<boolean> {
    return this.parallel ? this.parallel.any(flag) : Promise.resolve(flag);
  }

  /** The mean over ranks of numbers every rank computed for its own shard. */
  private meanOverRanks(values: number[]): Promise<number[]> {
    return this.parallel ? this.parallel.mean(values) : Promise.resolve(values);
  }

  dispose(): void {
    this.output?.release();
    this.output = null;
    this.policy?.dispose();
    this.reference?.dispose();
    this.gradReducer?.dispose();
    this.parallel?.dispose();
  }
}
