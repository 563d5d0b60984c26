import type { TrainerConfigInput } from '../train/config';
import type { LogRecord } from '../train/trainer';
import { trainIterative, type RoundSummary } from '../iterative/iterative-dpo';
import { StopSignals } from './stop-signals';

function describeRound(s: RoundSummary, rounds: number): string {
  const score = s.judge_mean_score === null ? '' : `judge mean score ${s.judge_mean_score.toFixed(4)}, `;
  const what = s.round === rounds ? 'final policy' : `round ${s.round}`;
  const trained = s.trained ? `; trained ${s.trained.steps} steps → ${s.trained.final}` : '';
  return `${what}: ${score}${s.pairs} pairs, ${s.ties_dropped} ties dropped of ${s.prompts} prompts × ${s.samples / s.prompts} samples, ${(100 * s.eos_fraction).toFixed(0)}% ended with EOS, ${s.mean_completion_tokens.toFixed(1)} tokens on average (from ${s.policy})${trained}`;
}

/**
 * `torch-dpo train` with `judge` in the config: iterative DPO (lib/iterative/iterative-dpo.ts), one
 * line per judged round and per logged step. SIGINT/SIGTERM stop the round's training at a step
 * boundary with a checkpoint; rerunning the command resumes.
 */
export async function runIterativeTrain(config: Record<string, unknown>): Promise<number> {
  const stop = new StopSignals('train', () => 'stopping the round at the next step boundary (checkpoint saved; rerun to resume)').install();
  const say = (line: string) => process.stdout.write(`${line}\n`);
  const rounds = Number(config.iterative_rounds ?? 1);
  try {
    const result = await trainIterative(config as TrainerConfigInput, {
      signal: stop.signal,
      notice: (m) => process.stderr.write(`torch-dpo train: ${m}\n`),
      onRound: (s) => say(describeRound(s, rounds)),
      onTrainer: (trainer, round) => {
        trainer.on('log', (r: LogRecord) => say(`round ${round} step ${r.step} | loss ${r.loss.toFixed(4)} | acc ${r['rewards/accuracies'].toFixed(3)} | margin ${r['rewards/margins'].toFixed(4)}`));
        trainer.on('checkpoint', (path: string) => say(`checkpoint: ${path}`));
      },
    });
    say(`${result.stopped === 'done' ? 'done' : 'stopped'}: policy ${result.policy}; rounds in ${String(config.output_dir)}/iterative.json`);
    return result.stopped === 'aborted' ? stop.code || 130 : 0;
  } finally {
    stop.uninstall();
  }
}
