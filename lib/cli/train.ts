import { parseArgs } from 'node:util';
import { TorchDpoError } from '../errors';
import { osReason } from '../file-errors';
import { DPOTrainer, StoppedBeforeTrainingError, type LogRecord } from '../train/trainer';
import { StopSignals } from './stop-signals';
import { applyOverrides, readConfigFile } from './config-file';

export const TRAIN_USAGE = `usage: torch-dpo train --config <file.yaml|json> [--set key=value ...]

Runs DPO training with TRL's option names (see README). --set overrides any option
(dotted keys for nested ones, values parsed as JSON when possible). SIGINT/SIGTERM finish the
current optimizer step, save a checkpoint and exit with 130/143; further signals do not interrupt the
save; a third SIGINT exits at once without saving.
`;

function formatLog(r: LogRecord): string {
  const f = (x: number, d = 4) => (Number.isFinite(x) ? x.toFixed(d) : String(x));
  return `step ${r.step} | epoch ${f(r.epoch, 2)} | loss ${f(r.loss)} | acc ${f(r['rewards/accuracies'], 3)} | margin ${f(r['rewards/margins'])} | lr ${r.learning_rate.toExponential(2)} | ${Math.round(r.tokens_per_second)} tok/s | nonfinite ${r.nonfinite_steps ?? 0}`;
}

export async function runTrain(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string' }, set: { type: 'string', multiple: true } }, strict: true });
  if (!values.config) {
    process.stderr.write(TRAIN_USAGE);
    return 2;
  }
  const config = applyOverrides(readConfigFile(values.config), values.set ?? []);
  const trainer = new DPOTrainer(config as never);
  const stop = new StopSignals('train', () => trainer.stopPlan()).install();
  const bar = process.stdout.isTTY ? new ProgressBar() : null;
  // Messages clear the bar's line first; the next step redraws it.
  const say = (line: string) => process.stdout.write(`${bar ? '\r\x1b[K' : ''}${line}\n`);
  trainer.on('notice', (message: string) => process.stderr.write(`${bar ? '\r\x1b[K' : ''}torch-dpo train: ${message}\n`));
  try {
    try {
      await trainer.setup({ signal: stop.signal });
    } catch (err) {
      if (err instanceof StoppedBeforeTrainingError) {
        process.stderr.write(`torch-dpo train: ${err.message}\n`);
        return stop.code || 130;
      }
      throw err;
    }
    const r = trainer.dataReport;
    process.stdout.write(`data: ${r.kept} pairs kept of ${r.rowsRead} (${JSON.stringify(r.formats)}), dropped ${JSON.stringify(r.dropped)}; ${trainer.plan.totalSteps} steps\n`);
    const total = trainer.plan.totalSteps;
    let latest: LogRecord | null = null;
    trainer.on('step', ({ step }: { step: number }) => bar?.draw(step, total, latest));
    trainer.on('log', (record: LogRecord) => {
      latest = record;
      if (!bar) process.stdout.write(`${formatLog(record)}\n`);
    });
    trainer.on('checkpoint', (path: string) => say(`checkpoint: ${path}`));
    trainer.on('eval', (m: Record<string, number>) => say(`eval step ${m.step} | loss ${m.eval_loss.toFixed(4)} | acc ${m['eval_rewards/accuracies'].toFixed(3)}`));
    trainer.on('export', (path: string) => say(`final model: ${path}`));
    trainer.on('report', (path: string) => say(`report: ${path}`));
    const result = await trainer.train({ signal: stop.signal });
    const saved = result.checkpoint ? `; newest checkpoint ${result.checkpoint}` : '; no checkpoint';
    say(`${result.stopped === 'done' ? 'done' : 'stopped'} after ${result.steps} steps${saved}; metrics in ${trainer.config.output_dir}/metrics.jsonl`);
    if (result.nonfiniteSteps > 0) {
      process.stderr.write(`torch-dpo train: WARNING: ${result.nonfiniteSteps} of ${result.steps} steps skipped: non-finite loss or gradient (check learning_rate, dtype and the data)\n`);
    }
    return result.stopped === 'aborted' ? stop.code || 130 : 0;
  } finally {
    stop.uninstall();
    trainer.dispose();
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
