import { ConfigError } from '../errors';
import { layerNames } from '../models/lora';
import type { DType } from '../native/binding';
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { collate, disposeBatch } from '../data/collate';
import type { DataReport } from '../data/preference-data';
import type { HfTokenizer } from '../data/tokenizer';
import type { TokenizedPair } from '../data/tokenize-pairs';
import type { DpoLossConfig } from '../loss/dpo-config';
import type { CausalLM } from '../models/causal-lm';
import { copyCompanionFiles } from '../models/weight-files';
import { packageVersion } from '../native/package-root';
import { emptyCache, version } from '../runtime';
import { letPendingSignalsIn } from '../event-loop-turns';
import { writeHtmlReport } from '../report/html-report';
import { parseTrainerConfigWithNotices, type TrainerConfig, type TrainerConfigInput } from './config';
import { newestCompleteCheckpoint } from './checkpoint';
import { microStep, type MicroStepResult } from './dpo-step';
import { evaluatePairs } from './evaluate';
import { batchReference, syncReference, type Reference } from './reference';
import { resumeRun, saveRunCheckpoint, type RunProgress } from './run-checkpoint';
import { RunInfoFile } from './run-info';
import { defaultRunDir, RunLog } from './run-log';
import { loadRun, type LoadOptions, type RunParts } from './run-setup';
import { TrainingDivergedError, type LogRecord, type TrainResult } from './train-records';
import { describeModel, type ModelSummary } from './model-summary';
import { trainIterative, type IterativeConfigInput, type IterativeResult, type IterativeRunOptions } from '../iterative/iterative-dpo';

export { StoppedBeforeTrainingError, TrainingDivergedError, type LogRecord, type TrainResult } from './train-records';

/**
 * DPO training with TRL's DPOTrainer semantics: policy and frozen reference, fused log-probs, the DPO
 * loss family, gradient accumulation, clipping, AdamW with HF's schedules. `DPOTrainer.create(config)`
 * returns a trainer with everything loaded; `train()` runs the loop. Events: 'notice' (a message),
 * 'step' ({ step, loss, skipped }), 'log' (LogRecord), 'eval', 'checkpoint', 'export', 'report' (paths).
 */
export class DPOTrainer extends EventEmitter {
  readonly config: TrainerConfig;
  readonly loss: DpoLossConfig;
  readonly policy: CausalLM;
  readonly reference: Reference;
  readonly tokenizer: HfTokenizer;
  readonly pairs: TokenizedPair[];
  readonly evalPairs: TokenizedPair[];
  readonly dataReport: DataReport;
  readonly evalDataReport: DataReport | null;
  /** The resolved device (auto → cuda or cpu; cuda → cuda:LOCAL_RANK with several ranks). */
  readonly device: string;
  /** What a config translation and loading had to say (mapped TRL keys, ignored options, recoveries). */
  readonly notices: string[];
  step = 0;
  /** Steps skipped so far (non-finite loss or gradient), over the whole run including before a resume. */
  nonfiniteSteps = 0;
  private tokensSeen = 0;
  private readonly log: RunLog;
  /** The step this process started training from (0, or the resumed checkpoint's). */
  private startStep = 0;
  /** The step of the newest checkpoint this run saved or resumed from; -1 when none. */
  private lastSavedStep = -1;
  /** Inside an optimizer step (a stop then saves the step being finished). */
  private stepping = false;
  private trainingStarted = false;
  private resumedPath: string | null = null;

  private constructor(private readonly run: RunParts, notices: string[]) {
    super();
    ({ config: this.config, loss: this.loss, policy: this.policy, reference: this.reference, tokenizer: this.tokenizer, pairs: this.pairs,
      evalPairs: this.evalPairs, dataReport: this.dataReport, evalDataReport: this.evalDataReport, device: this.device } = run);
    this.notices = notices;
    const tensorboard = run.output && this.config.report_to.includes('tensorboard') ? (this.config.logging_dir ?? defaultRunDir(this.config.output_dir)) : null;
    this.log = new RunLog(run.output, tensorboard);
  }

  /**
   * Validates the config (TRL keys translated, see lib/config/trl-compat.ts), takes output_dir, loads
   * model, reference, tokenizer and data, builds the optimizer and, with resume_from_checkpoint,
   * restores the checkpoint. Notices go to `options.notice` as they happen and stay in `notices`.
   */
  static async create(input: TrainerConfigInput, options: LoadOptions = {}): Promise<DPOTrainer> {
    const { config, notices } = parseTrainerConfigWithNotices(input);
    const heard: string[] = [];
    const notice = (message: string) => {
      heard.push(message);
      options.notice?.(message);
    };
    notices.forEach(notice);
    const run = await loadRun(config, { ...options, notice });
    const trainer = new DPOTrainer(run, heard);
    try {
      if (config.resume_from_checkpoint) {
        const mainNotice = trainer.isMain ? notice : () => {};
        const path = config.resume_from_checkpoint === true ? newestCompleteCheckpoint(config.output_dir, mainNotice) : config.resume_from_checkpoint;
        trainer.restore(path, await resumeRun(run, path));
      }
    } catch (err) {
      trainer.dispose();
      throw err;
    }
    return trainer;
  }

  /**
   * Iterative DPO (lib/iterative/iterative-dpo.ts): rounds of sampling from the policy, a judge
   * written in TypeScript ranking the samples, and one epoch of DPO on best-vs-worst pairs, each round
   * a trainer of its own in output_dir/round-N.
   */
  static trainIterative(config: IterativeConfigInput, options: IterativeRunOptions = {}): Promise<IterativeResult> {
    return trainIterative(config, options);
  }

  private restore(path: string, progress: RunProgress): void {
    this.step = this.startStep = this.lastSavedStep = progress.step;
    this.tokensSeen = progress.tokensSeen;
    this.nonfiniteSteps = progress.nonfiniteSteps;
    this.log.logHistory = progress.logHistory;
    this.resumedPath = path;
  }

  get rank(): number { return this.run.parallel?.rank ?? 0; }
  get worldSize(): number { return this.run.parallel?.worldSize ?? 1; }
  /** Rank 0 writes logs, checkpoints, reports and exports, and prints; the others compute. */
  get isMain(): boolean { return this.rank === 0; }
  get history(): LogRecord[] { return this.log.history; }
  /** The checkpoint this trainer resumed from, with its step; null for a fresh run. */
  get resumedFrom(): { path: string; step: number } | null { return this.resumedPath ? { path: this.resumedPath, step: this.startStep } : null; }
  /** Optimizer steps per epoch and in the whole run. */
  get plan(): { stepsPerEpoch: number; totalSteps: number } {
    return { stepsPerEpoch: this.run.schedule.stepsPerEpoch, totalSteps: this.run.schedule.totalSteps };
  }
  /** Where TensorBoard event files of this run go (null when not written). */
  get tensorboardPath(): string | null { return this.log.tensorboardPath; }

  /** The model forward and backward run on: the bf16 working copy under mixed precision, else the policy. */
  private get compute(): CausalLM {
    return this.run.mixed?.working ?? this.policy;
  }

  /** The policy as the start summary and the report describe it. */
  async describeModel(): Promise<ModelSummary> {
    const summary = await describeModel(this.policy, this.device);
    const adapters = this.policy.info.adapters;
    const parts = [this.run.mixed ? `${summary.dtype} masters, bfloat16 compute (bf16 mixed precision)` : summary.dtype];
    if (adapters) {
      const o = adapters.options;
      const frozen = summary.dtype.split('+').filter((d) => d !== adapters.dtype).join('+') || adapters.dtype;
      const names = layerNames(adapters.modules).join(', ');
      parts[0] = `${frozen} frozen model, ${adapters.dtype} LoRA adapters (r ${o.r}, alpha ${o.alpha}${o.useRslora ? ', rsLoRA' : ''}) on ${adapters.modules.length} layers (${names}), reference = adapters off`;
    }
    if (this.compute.gradientCheckpointing) parts.push('activation checkpointing per layer');
    return { ...summary, dtype: parts.join(', ') };
  }

  /** Saves output_dir/checkpoint-<step> (every rank calls it); returns its path. */
  async saveCheckpoint(): Promise<string> {
    const path = await saveRunCheckpoint(this.run, { step: this.step, tokensSeen: this.tokensSeen, nonfiniteSteps: this.nonfiniteSteps, logHistory: this.log.logHistory });
    if (this.isMain) this.emit('checkpoint', path);
    this.lastSavedStep = this.step;
    return path;
  }

  /** Loss and metrics (eval_ prefixed) on held-out pairs, default eval_dataset, without gradients. */
  async evaluate(pairs: TokenizedPair[] = this.evalPairs): Promise<Record<string, number>> {
    const split = pairs === this.evalPairs ? 'eval' : 'other';
    return evaluatePairs(pairs, {
      policy: this.compute, loss: this.loss, layout: this.run.layout, parallel: this.run.parallel,
      referenceFor: (indices) => batchReference(this.reference, split, indices),
      batchSize: this.config.per_device_eval_batch_size, fusedLinear: this.config.use_fused_linear,
    });
  }

  /**
   * Trains to the planned step. An aborted `signal` stops between optimizer steps (all ranks at the
   * same one) and saves a checkpoint, unless this run took no step yet or that step is saved already.
   */
  async train(options: { signal?: AbortSignal } = {}): Promise<TrainResult> {
    const c = this.config;
    const schedule = this.run.schedule;
    this.trainingStarted = true;
    const info = this.run.output ? await this.startRunInfo() : null;
    if (this.run.output) {
      // Rows after the step training restarts from were written by a run that stopped unsaved.
      const { torn, dropped } = this.run.output.metrics.truncateAfter(this.step);
      if (torn) this.emit('notice', torn);
      if (dropped > 0) this.emit('notice', `${this.run.output.metrics.path}: dropped ${dropped} row(s) after step ${this.step}, written after the checkpoint this run starts from`);
    }
    const result = (stopped: TrainResult['stopped']): TrainResult => ({
      steps: this.step, history: this.history, stopped, nonfiniteSteps: this.nonfiniteSteps,
      checkpoint: this.lastSavedStep >= 0 ? join(c.output_dir, `checkpoint-${this.lastSavedStep}`) : null,
    });
    try {
      if (c.eval_on_start && this.step === 0 && this.evalPairs.length > 0) await this.evaluateAndLog();
      let nonFiniteInRow = 0;
      while (this.step < schedule.totalSteps) {
        // A signal that came during synchronous work (a save) is handled here, so the stop happens at
        // this step boundary and not one step later.
        await letPendingSignalsIn();
        if (await this.anyRank(options.signal?.aborted ?? false)) {
          // Keep what was learned since the last save; all ranks agree on the step.
          if (this.step > this.startStep && this.step !== this.lastSavedStep) await this.saveCheckpoint();
          await this.run.parallel?.barrier();
          info?.finish('stopped', this.step, this.nonfiniteSteps);
          return result('aborted');
        }
        const { finite, loss, gradNorm } = await this.optimizerStep();
        nonFiniteInRow = finite ? 0 : nonFiniteInRow + 1;
        if (nonFiniteInRow >= c.max_nonfinite_steps) throw new TrainingDivergedError(`${nonFiniteInRow} non-finite steps in a row (last at step ${this.step}): loss ${loss}, grad norm ${gradNorm}`);
        if (schedule.logsAt(this.step)) {
          const record = this.log.flush({ learning_rate: schedule.loggedLearningRate(this.step), nonfinite_steps: this.nonfiniteSteps });
          if (record && this.isMain) this.emit('log', record);
        }
        if (this.evalPairs.length > 0 && schedule.evaluatesAt(this.step)) await this.evaluateAndLog();
        if (schedule.savesAt(this.step)) await this.saveCheckpoint();
        if (c.torch_empty_cache_steps && this.step % c.torch_empty_cache_steps === 0) emptyCache();
      }
      // ZeRO-3: every rank gathers the layers one by one while rank 0 writes them.
      if (c.save_final_model && (this.isMain || this.policy.shardedLayers)) {
        const path = await this.exportFinal(join(c.output_dir, 'final'), { writes: this.isMain });
        if (this.isMain) this.emit('export', path);
      }
      if (this.isMain) {
        info?.finish('done', this.step, this.nonfiniteSteps);
        if (this.history.length > 0) this.emit('report', writeHtmlReport(c.output_dir, undefined, (m) => this.emit('notice', m)));
      }
      await this.run.parallel?.barrier();
      return result('done');
    } catch (err) {
      info?.finish('failed', this.step, this.nonfiniteSteps);
      throw err;
    }
  }

  /** One optimizer step: accumulate, reduce and clip, update (skipped when non-finite). */
  private async optimizerStep(): Promise<{ finite: boolean; loss: number; gradNorm: number }> {
    const schedule = this.run.schedule;
    const optimizer = this.run.optimizer;
    this.stepping = true;
    const started = process.hrtime.bigint();
    const { results, pairsInStep } = await this.accumulateGradients();
    const maxNorm = this.config.max_grad_norm ? this.config.max_grad_norm : undefined;
    const gradNorm = await optimizer.reduceAndClip(maxNorm);
    // Loss and per-pair metrics of the micro-batches (weighted by their pairs), averaged over ranks in one collective.
    const local: Record<string, number> = { loss: 0 };
    for (const r of results) {
      local.loss += (r.loss * r.pairs) / pairsInStep;
      for (const [key, value] of Object.entries(r.metrics)) local[key] = (local[key] ?? 0) + (value * r.pairs) / pairsInStep;
    }
    const { loss: lossValue, ...reduced } = await this.meanOverRanks(local);
    const finite = Number.isFinite(gradNorm) && Number.isFinite(lossValue);
    if (finite) {
      optimizer.lr = schedule.learningRateFor(this.step + 1);
      await optimizer.step();
      await this.run.mixed?.refresh();
    } else {
      // A non-finite loss or gradient: skip the update (the data moves on) and count it.
      this.nonfiniteSteps += 1;
    }
    await optimizer.zeroGrad();
    this.step += 1;
    this.stepping = false;
    if (finite && this.config.sync_ref_model && this.reference.kind === 'model' && this.step % this.config.ref_model_sync_steps === 0) {
      await syncReference(this.compute, this.reference.model, this.config.ref_model_mixup_alpha);
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const tokens = results.reduce((s, r) => s + r.tokens, 0);
    const processed = results.reduce((s, r) => s + r.processedTokens, 0);
    this.tokensSeen += tokens;
    if (finite) {
      // tokens_per_second counts useful tokens (each sequence's own); processed ones include padding
      // and count a shared prompt once: their ratio is what packing and prefix sharing change.
      const record: LogRecord = {
        step: this.step, epoch: this.step / schedule.stepsPerEpoch, learning_rate: optimizer.lr, grad_norm: gradNorm, loss: lossValue,
        num_tokens: this.tokensSeen, tokens_per_second: (tokens / seconds) * this.worldSize, step_seconds: seconds, nonfinite_steps: this.nonfiniteSteps,
        'tokens/padding_fraction': 1 - results.reduce((s, r) => s + r.layoutTokens, 0) / processed,
        'tokens/processed_per_second': (processed / seconds) * this.worldSize,
      };
      this.log.add({ ...record, ...reduced });
    }
    this.emit('step', { step: this.step, loss: lossValue, skipped: !finite });
    return { finite, loss: lossValue, gradNorm };
  }

  private async evaluateAndLog(): Promise<void> {
    const metrics = await this.evaluate();
    this.log.addEval(this.step, this.step / this.run.schedule.stepsPerEpoch, metrics);
    if (this.isMain) this.emit('eval', { step: this.step, ...metrics });
  }

  /** Forward and backward of this step's micro-batches (gradients accumulate, scaled by their share of pairs). */
  private async accumulateGradients(): Promise<{ results: MicroStepResult[]; pairsInStep: number }> {
    const c = this.config;
    const { stepsPerEpoch } = this.run.schedule;
    const epoch = Math.floor(this.step / stepsPerEpoch);
    const inEpoch = this.step % stepsPerEpoch;
    const [from, to] = [inEpoch * c.gradient_accumulation_steps, (inEpoch + 1) * c.gradient_accumulation_steps];
    const micro = this.run.sampler.batches(epoch).slice(from, to);
    // The loss is a mean over the step's pairs on all ranks; ranks may hold different counts (token
    // budget), and the gradient all-reduce averages over ranks: each micro-batch weighs pairs × ranks / all.
    const pairsInStep = this.run.sampler.globalPairs(epoch, from, to) / this.worldSize;
    const results: MicroStepResult[] = [];
    const collateAt = (k: number) => collate(micro[k].map((i) => this.pairs[i]), this.run.layout);
    let batch = collateAt(0);
    for (let k = 0; k < micro.length; k += 1) {
      const indices = micro[k];
      // Gradients are final in the last micro-batch's backward: the optimizer may start reducing them as it runs.
      this.run.optimizer.beforeBackward(k === micro.length - 1);
      // Submit this micro-batch's forward, then build the next batch while the device works.
      const pending = microStep(this.compute, batchReference(this.reference, 'train', indices), batch, this.loss, indices.length / pairsInStep, c.use_fused_linear);
      const next = k + 1 < micro.length ? collateAt(k + 1) : null;
      try {
        results.push(await pending);
        await this.run.mixed?.accumulateGrads();
        await this.run.optimizer.afterMicroBatch();
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

  /**
   * The trained policy in HF layout (safetensors + config + tokenizer) and as TorchScript model.pt;
   * under LoRA the adapter in PEFT format (adapter_config.json + adapter_model.safetensors + tokenizer),
   * or with `merge` the merged model in HF layout (no model.pt: the folder loads into the built-in
   * architecture, which a TorchScript file would override).
   */
  async exportFinal(dir: string, options: { merge?: boolean; dtype?: DType; writes?: boolean } = {}): Promise<string> {
    const adapters = this.policy.info.adapters;
    if (this.policy.shardedLayers && !(adapters && !options.merge)) {
      // ZeRO-3: HF shards, one per layer (rank 0 writes as every rank gathers; LoRA merged in while
      // a layer is gathered); no model.pt (the folder loads into the built-in architecture). A LoRA
      // adapter alone is replicated: it is written below as in one process.
      if (options.dtype) throw new ConfigError(`export --dtype ${options.dtype}: not with zero_stage 3 in several processes; export the checkpoint from one process`);
      await this.policy.exportSafetensors(dir, { writes: options.writes ?? true });
      if ((options.writes ?? true) && this.config.tokenizer_name_or_path) copyCompanionFiles(this.config.tokenizer_name_or_path, dir);
      return dir;
    }
    if (options.writes === false) return dir; // a replicated adapter: rank 0 writes it
    if (options.merge && !adapters) throw new ConfigError('export --merge: the model has no LoRA adapters (use_peft is off); a plain export already holds every weight');
    if (adapters && !options.merge && options.dtype) throw new ConfigError(`export --dtype ${options.dtype}: an adapter is written in its own dtype (${adapters.dtype}); --dtype applies with --merge`);
    if (adapters && !options.merge) await this.policy.saveTrained(dir);
    else if (adapters) await this.policy.exportSafetensors(dir, { dtype: options.dtype });
    else {
      if (options.dtype) await this.policy.to({ dtype: options.dtype });
      await this.policy.exportSafetensors(dir);
    }
    // A separate tokenizer folder wins over the model folder's tokenizer files.
    if (this.config.tokenizer_name_or_path) copyCompanionFiles(this.config.tokenizer_name_or_path, dir);
    if (!adapters) await this.policy.save(join(dir, 'model.pt'));
    return dir;
  }

  private async startRunInfo(): Promise<RunInfoFile> {
    const v = version();
    const torchDpo = packageVersion();
    const data = { train: this.dataReport, eval: this.evalDataReport };
    return new RunInfoFile(this.config.output_dir, {
      run_name: this.config.run_name ?? null, versions: { 'torch-dpo': torchDpo, torch: v.torch, node: process.version },
      model: { ...(await this.describeModel()) }, data, config: this.config as Record<string, unknown>,
    }, this.step);
  }

  /** True when any rank asks to stop (so that all ranks stop at the same step). */
  private anyRank(flag: boolean): Promise<boolean> {
    return this.run.parallel ? this.run.parallel.any(flag) : Promise.resolve(flag);
  }

  /** The mean over ranks of named numbers every rank computed for its own shard. */
  private meanOverRanks(values: Record<string, number>): Promise<Record<string, number>> {
    return this.run.parallel ? this.run.parallel.mean(values) : Promise.resolve(values);
  }

  dispose(): void {
    this.run.output?.release();
    this.policy.dispose();
    this.run.mixed?.dispose();
    if (this.reference.kind === 'model') this.reference.model.dispose();
    this.run.optimizer.dispose();
    this.run.parallel?.dispose();
  }
}
