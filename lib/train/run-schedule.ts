import { scheduleFactor, warmupSteps } from '../optim/schedulers';
import type { TrainerConfig } from './config';

/** When a run logs, evaluates and saves, and its learning rate, as HF's Trainer decides them. */
export interface RunSchedule {
  stepsPerEpoch: number;
  totalSteps: number;
  warmupSteps: number;
  /** Resolved intervals in steps (fractions of the total turned into counts, as TrainingArguments does). */
  loggingSteps: number;
  evalSteps: number;
  saveSteps: number;
  /** After optimizer step `step` (1-based): log the training metrics? */
  logsAt(step: number): boolean;
  evaluatesAt(step: number): boolean;
  savesAt(step: number): boolean;
  /** The learning rate optimizer step `step` (1-based) updates with. */
  learningRateFor(step: number): number;
  /**
   * The learning rate HF logs after step `step`: the scheduler has already advanced, so it is the rate
   * of the next step (get_last_lr() after lr_scheduler.step()).
   */
  loggedLearningRate(step: number): number;
}

/** A steps option: a count, or a fraction in (0, 1) of the total steps, rounded up (HF's rule). */
const resolve = (value: number, total: number) => (value < 1 ? Math.max(1, Math.ceil(total * value)) : value);

export function runSchedule(c: TrainerConfig, batchesPerEpoch: number): RunSchedule {
  const stepsPerEpoch = Math.max(1, Math.floor(batchesPerEpoch / c.gradient_accumulation_steps));
  const totalSteps = c.max_steps > 0 ? c.max_steps : Math.ceil(c.num_train_epochs * stepsPerEpoch);
  const warmup = warmupSteps(totalSteps, c.warmup_steps, c.warmup_ratio);
  const loggingSteps = resolve(c.logging_steps, totalSteps);
  const evalSteps = resolve(c.eval_steps ?? c.logging_steps, totalSteps);
  const saveSteps = resolve(c.save_steps, totalSteps);
  const evalStrategy = c.eval_strategy ?? (c.eval_steps !== undefined ? 'steps' : 'no');
  const endOfEpoch = (step: number) => step % stepsPerEpoch === 0;
  const last = (step: number) => step === totalSteps;
  const rate = (step: number) => c.learning_rate * scheduleFactor(c.lr_scheduler_type, step, totalSteps, warmup);
  return {
    stepsPerEpoch, totalSteps, warmupSteps: warmup, loggingSteps, evalSteps, saveSteps,
    logsAt: (step) => c.logging_strategy !== 'no'
      && (last(step) || (c.logging_first_step && step === 1) || (c.logging_strategy === 'steps' ? step % loggingSteps === 0 : endOfEpoch(step))),
    evaluatesAt: (step) => {
      if (evalStrategy === 'no') return false;
      const delay = evalStrategy === 'epoch' ? c.eval_delay * stepsPerEpoch : c.eval_delay;
      return step >= delay && (last(step) || (evalStrategy === 'steps' ? step % evalSteps === 0 : endOfEpoch(step)));
    },
    savesAt: (step) => c.save_strategy !== 'no' && (last(step) || (c.save_strategy === 'steps' ? step % saveSteps === 0 : endOfEpoch(step))),
    learningRateFor: (step) => rate(step - 1),
    loggedLearningRate: (step) => rate(step),
  };
}
