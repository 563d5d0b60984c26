import type { DataReport } from '../data/preference-data';
import { ConfigError, TorchDpoError } from '../errors';
import type { TrainerConfigInput } from '../train/config';
import { osReason } from '../file-errors';
import { formatCount } from '../train/model-summary';
import { DPOTrainer, StoppedBeforeTrainingError, type LogRecord } from '../train/trainer';
import { StopSignals } from './stop-signals';
import { runIterativeTrain } from './train-iterative';
import { isMainRank, loadConfig, type ConfigOptions } from './commands';

function formatLog(r: LogRecord): string {
  const f = (x: number, d = 4) => (Number.isFinite(x) ? x.toFixed(d) : String(x));
  return `step ${r.step} | epoch ${f(r.epoch, 2)} | loss ${f(r.loss)} | acc ${f(r['rewards/accuracies'], 3)} | margin ${f(r['rewards/margins'])} | lr ${r.learning_rate.toExponential(2)} | ${Math.round(r.tokens_per_second)} tok/s | nonfinite ${r.nonfinite_steps ?? 0}`;
}

/** One line of a data report: kept and dropped by reason, formats, truncation, boundary mismatches, lengths. */
export function describeData(name: string, r: DataReport): string {
  const percent = (n: number) => `${((100 * n) / Math.max(r.kept, 1)).toFixed(1)}%`;
  const dropped = Object.entries(r.dropped).map(([reason, n]) => `${reason} ${n}`).join(', ');
  const formats = Object.entries(r.formats).map(([format, n]) => `${format} ${n}`).join(', ');
  const t = r.tokens;
  return [
    `${name}: ${r.kept} pairs kept of ${r.rowsRead} rows (${formats || 'no rows'})${dropped ? `; dropped ${dropped}` : ''}`,
    `truncated ${r.truncated} (${percent(r.truncated)})`,
    `boundary mismatches ${r.boundaryMismatches}${r.boundaryMismatches ? ' (the prompt tokenizes differently inside prompt+completion)' : ''}`,
    `tokens min/mean/max: prompt ${t.prompt.min}/${t.prompt.mean.toFixed(0)}/${t.prompt.max}, chosen ${t.chosen.min}/${t.chosen.mean.toFixed(0)}/${t.chosen.max}, rejected ${t.rejected.min}/${t.rejected.mean.toFixed(0)}/${t.rejected.max}`,
    r.cache.hit ? `from cache ${r.cache.path}` : '',
  ].filter(Boolean).join('; ');
}

/** What the run is, printed before the first step: device, model, data, plan, resume point. */
async function startSummary(trainer: DPOTrainer): Promise<string[]> {
  const c = trainer.config;
  const m = await trainer.describeModel();
  const { stepsPerEpoch, totalSteps } = trainer.plan;
  const lines = [
    `device: ${trainer.device}${c.device === 'auto' ? ' (device: auto)' : ''}`,
    `model: ${m.architecture} (${m.source}${m.path ? ` from ${m.path}` : ''}), ${formatCount(m.parameters)} parameters (${formatCount(m.trainable)} trainable), ${m.dtype}`,
    ...m.warnings.map((w) => `model warning: ${w}`),
    describeData('data', trainer.dataReport),
  ];
  const truncated = trainer.dataReport.truncated / Math.max(trainer.dataReport.kept, 1);
  if (truncated > 0.05) {
    lines.push(`data warning: ${(100 * truncated).toFixed(1)}% of the pairs are truncated (max_length ${c.max_length}${c.max_prompt_length ? `, max_prompt_length ${c.max_prompt_length}` : ''}${c.max_completion_length ? `, max_completion_length ${c.max_completion_length}` : ''}): what is cut off is not trained on`);
  }
  if (trainer.evalDataReport) lines.push(describeData('eval data', trainer.evalDataReport));
  const pairsPerStep = c.per_device_train_batch_size * c.gradient_accumulation_steps * trainer.worldSize;
  const batching = c.max_tokens_per_batch !== undefined
    ? `micro-batches of up to ${c.max_tokens_per_batch} tokens × ${c.gradient_accumulation_steps} accumulation × ${trainer.worldSize} rank(s)`
    : `${pairsPerStep} pairs per step (${c.per_device_train_batch_size} × ${c.gradient_accumulation_steps} accumulation × ${trainer.worldSize} rank(s))`;
  const layout = c.padding_free || c.prefix_sharing ? `; ${[c.padding_free ? 'padding-free' : '', c.prefix_sharing ? 'prefix-shared' : ''].filter(Boolean).join(', ')} layout` : '';
  lines.push(`plan: ${totalSteps} steps (${stepsPerEpoch} per epoch), ${batching}${layout}; loss ${[c.loss_type].flat().join('+')}, β ${c.beta}, lr ${c.learning_rate} ${c.lr_scheduler_type}; output ${c.output_dir}`);
  if (trainer.resumedFrom) lines.push(`resume: from ${trainer.resumedFrom.path} at step ${trainer.resumedFrom.step} of ${totalSteps}`);
  if (trainer.tensorboardPath) lines.push(`tensorboard: ${trainer.tensorboardPath}`);
  return lines;
}

/**
 * Runs DPO training from a config file. SIGINT/SIGTERM finish the current optimizer step, save a
 * checkpoint and exit with 130/143; further signals do not interrupt the save; a third SIGINT exits
 * at once without saving. Only rank 0 prints progress; other ranks print errors only.
 */
export async function runTrain(options: ConfigOptions & { dryRun?: boolean }): Promise<number> {
  const config = loadConfig(options);
  if (config.judge && options.dryRun) throw new ConfigError('--dry-run: not available for iterative DPO (judge) yet; run with iterative_rounds: 1 and a few prompts to try the setup');
  if (config.judge) return runIterativeTrain(config);
  const quiet = !isMainRank();
  let trainer: DPOTrainer | null = null;
  const stop = new StopSignals('train', () => trainer?.stopPlan() ?? 'stopping before training starts: no checkpoint is written').install();
  const bar = process.stdout.isTTY && !quiet && config.disable_tqdm !== true ? new ProgressBar() : null;
  // Messages clear the bar's line first; the next step redraws it.
  const say = (line: string) => quiet || process.stdout.write(`${bar ? '\r\x1b[K' : ''}${line}\n`);
  const notice = (message: string) => quiet || process.stderr.write(`${bar ? '\r\x1b[K' : ''}torch-dpo train: ${message}\n`);
  try {
    try {
      // A dry run only reads: output_dir is neither locked nor tidied nor written.
      trainer = await DPOTrainer.create(config as TrainerConfigInput, { signal: stop.signal, notice, writesOutput: !options.dryRun });
    } catch (err) {
      if (err instanceof StoppedBeforeTrainingError) {
        process.stderr.write(`torch-dpo train: ${err.message}\n`);
        return stop.code || 130;
      }
      throw err;
    }
    const t = trainer;
    for (const line of await startSummary(t)) say(line);
    if (options.dryRun) {
      say('dry run: the config, model and data load; nothing was trained and output_dir was not touched');
      return 0;
    }
    const total = t.plan.totalSteps;
    let latest: LogRecord | null = null;
    t.on('notice', notice);
    t.on('step', ({ step }: { step: number }) => bar?.draw(step, total, latest));
    t.on('log', (record: LogRecord) => {
      latest = record;
      if (!bar) say(formatLog(record));
    });
    t.on('checkpoint', (path: string) => say(`checkpoint: ${path}`));
    t.on('eval', (m: Record<string, number>) => say(`eval step ${m.step} | loss ${m.eval_loss.toFixed(4)} | acc ${m['eval_rewards/accuracies'].toFixed(3)}`));
    t.on('export', (path: string) => say(`final model: ${path}`));
    t.on('report', (path: string) => say(`report: ${path}`));
    const result = await t.train({ signal: stop.signal });
    const saved = result.checkpoint ? `; newest checkpoint ${result.checkpoint}` : '; no checkpoint';
    say(`${result.stopped === 'done' ? 'done' : 'stopped'} after ${result.steps} steps${saved}; metrics in ${t.config.output_dir}/metrics.jsonl`);
    if (result.nonfiniteSteps > 0 && !quiet) {
      process.stderr.write(`torch-dpo train: WARNING: ${result.nonfiniteSteps} of ${result.steps} steps skipped: non-finite loss or gradient (check learning_rate, dtype and the data)\n`);
    }
    return result.stopped === 'aborted' ? stop.code || 130 : 0;
  } finally {
    stop.uninstall();
    trainer?.dispose();
  }
}

/** One line redrawn per step on a terminal: progress, the latest logged metrics, ETA. */
class ProgressBar {
  private readonly started = Date.now();

  draw(step: number, total: number, latest: LogRecord | null): void {
    const done = step / total;
    const eta = ((Date.now() - this.started) / step) * (total - step) / 1000;
    const cells = Math.round(done * 24);
    const stats = latest ? ` loss ${latest.loss.toFixed(4)} acc ${latest['rewards/accuracies'].toFixed(2)} margin ${latest['rewards/margins'].toFixed(3)} ${Math.round(latest.tokens_per_second)} tok/s nonfinite ${latest.nonfinite_steps ?? 0}` : '';
    process.stdout.write(`\r[${'#'.repeat(cells)}${'.'.repeat(24 - cells)}] ${step}/${total}${stats} ETA ${eta.toFixed(0)}s\x1b[K`);
  }
}

/** One-line reasons for errors users cause (config, data, native); anything else keeps its stack. */
export function describeFailure(err: unknown): string {
  if (err instanceof TorchDpoError) return err.message.replace(/:?\n\s*/g, '; ').replace(/^([^;]*); /, '$1: ');
  // An OS error no code path wrapped (FileError does): still one line with the call, path and reason.
  const os = err as NodeJS.ErrnoException;
  if (os?.syscall && os.code && /^E[A-Z]+$/.test(os.code)) return `${os.syscall} ${os.path ?? ''}: ${osReason(err)}`.replace(' :', ':');
  return err instanceof Error ? (err.stack ?? err.message) : String(err);
}
