import { parseTrainerConfig } from '../lib/train/config';
import { runSchedule } from '../lib/train/run-schedule';

const base = { model_name_or_path: 'm', train_dataset: 'x.jsonl', output_dir: 'out' };
const schedule = (extra: Record<string, unknown>, batches = 10) => runSchedule(parseTrainerConfig({ ...base, ...extra }), batches);
const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

// transformers' get_linear_schedule_with_warmup / get_cosine_schedule_with_warmup lr_lambda, written out:
const hfLinear = (step: number, warmup: number, total: number) => (step < warmup ? step / Math.max(1, warmup) : Math.max(0, (total - step) / Math.max(1, total - warmup)));
const hfCosine = (step: number, warmup: number, total: number) => (step < warmup ? step / Math.max(1, warmup)
  : Math.max(0, 0.5 * (1 + Math.cos(Math.PI * 2 * 0.5 * ((step - warmup) / Math.max(1, total - warmup))))));

describe('run schedule (HF Trainer semantics)', () => {
  it('logs the learning rate as HF does: after step s the scheduler has stepped s times', () => {
    const s = schedule({ max_steps: 6, warmup_steps: 2, learning_rate: 1 });
    // Step 1 of a warmup logs lr/2, never 0 (HF logs get_last_lr() after lr_scheduler.step()).
    expect(range(6).map((k) => s.loggedLearningRate(k))).toEqual([0.5, 1, 0.75, 0.5, 0.25, 0]);
    expect(range(6).map((k) => s.learningRateFor(k))).toEqual([0, 0.5, 1, 0.75, 0.5, 0.25]);
    const cosine = schedule({ max_steps: 20, warmup_ratio: 0.1, lr_scheduler_type: 'cosine', learning_rate: 2e-6 });
    expect(cosine.warmupSteps).toBe(2);
    range(20).forEach((k) => expect(cosine.loggedLearningRate(k)).toBeCloseTo(2e-6 * hfCosine(k, 2, 20), 18));
    const linear = schedule({ max_steps: 37, warmup_steps: 0.25, learning_rate: 1e-6 }); // transformers v5: a float is a ratio
    expect(linear.warmupSteps).toBe(10);
    range(37).forEach((k) => expect(linear.loggedLearningRate(k)).toBeCloseTo(1e-6 * hfLinear(k, 10, 37), 18));
  });

  it('logs, evaluates and saves by strategy, with fractions of the run and the first step', () => {
    const s = schedule({ max_steps: 20, logging_steps: 0.25, logging_first_step: true, eval_steps: 0.5, save_steps: 7, eval_dataset: 'e.jsonl', eval_strategy: 'steps' });
    expect([s.loggingSteps, s.evalSteps, s.saveSteps]).toEqual([5, 10, 7]);
    expect(range(20).filter((k) => s.logsAt(k))).toEqual([1, 5, 10, 15, 20]);
    expect(range(20).filter((k) => s.evaluatesAt(k))).toEqual([10, 20]);
    expect(range(20).filter((k) => s.savesAt(k))).toEqual([7, 14, 20]);
    const epochs = schedule({ num_train_epochs: 3, gradient_accumulation_steps: 2, logging_strategy: 'epoch', save_strategy: 'epoch', eval_strategy: 'epoch', eval_dataset: 'e.jsonl', eval_delay: 2 }, 8);
    expect([epochs.stepsPerEpoch, epochs.totalSteps]).toEqual([4, 12]);
    expect(range(12).filter((k) => epochs.logsAt(k))).toEqual([4, 8, 12]);
    expect(range(12).filter((k) => epochs.evaluatesAt(k))).toEqual([8, 12]); // not before epoch 2
    expect(range(12).filter((k) => epochs.savesAt(k))).toEqual([4, 8, 12]);
    const none = schedule({ max_steps: 5, save_strategy: 'no', logging_strategy: 'no', eval_steps: 2, eval_dataset: 'e.jsonl', eval_strategy: 'no' });
    expect(range(5).filter((k) => none.logsAt(k) || none.savesAt(k) || none.evaluatesAt(k))).toEqual([]);
    // eval_steps alone (torch-dpo 0.1 configs) still evaluates every eval_steps; eval_delay holds it back.
    const legacy = schedule({ max_steps: 6, eval_steps: 2, eval_delay: 3, eval_dataset: 'e.jsonl' });
    expect(range(6).filter((k) => legacy.evaluatesAt(k))).toEqual([4, 6]);
  });
});
