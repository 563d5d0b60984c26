export type SchedulerType = 'linear' | 'cosine' | 'constant' | 'constant_with_warmup';

/**
 * The learning-rate factor for optimizer step `step` (0-based) of `total`, as HF's schedulers
 * compute it (get_linear_schedule_with_warmup, get_cosine_schedule_with_warmup, …).
 */
export function scheduleFactor(type: SchedulerType, step: number, total: number, warmup: number): number {
  if ((type !== 'constant') && step < warmup) return step / Math.max(1, warmup);
  switch (type) {
    case 'constant':
    case 'constant_with_warmup':
      return 1;
    case 'linear':
      return Math.max(0, (total - step) / Math.max(1, total - warmup));
    case 'cosine': {
      const progress = (step - warmup) / Math.max(1, total - warmup);
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
    }
  }
}

/**
 * As TrainingArguments.get_warmup_steps: warmup_steps ≥ 1 is a count, a fraction in (0, 1) is a ratio
 * of the total (transformers v5); else ceil(warmup_ratio · total) (v4's separate key).
 */
export function warmupSteps(total: number, warmupStepsOption: number, warmupRatio: number): number {
  if (warmupStepsOption >= 1) return warmupStepsOption;
  if (warmupStepsOption > 0) return Math.ceil(warmupStepsOption * total);
  return Math.ceil(warmupRatio * total);
}
