import { copyFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { collate, disposeBatch } from '../data/collate';
import type { TokenizedPair } from '../data/tokenize-pairs';
import { generate } from '../generation/generate';
import { writeDemoTask } from '../demo/sentiment-task';
import { noGrad } from '../grad-mode';
import type { CausalLM } from '../models/causal-lm';
import { batchLogps } from '../train/dpo-step';
import { DPOTrainer, type LogRecord } from '../train/trainer';

export interface DemoOptions {
  dir?: string;
  sftSteps?: number;
  dpoSteps?: number;
  json?: boolean;
}

/** How often the model gives the chosen completion more probability than the rejected one. */
async function preferenceAccuracy(model: CausalLM, pairs: TokenizedPair[], padId: number | null): Promise<number> {
  let wins = 0;
  for (let start = 0; start < pairs.length; start += 16) {
    const chunk = pairs.slice(start, start + 16);
    const batch = collate(chunk, { padId });
    try {
      const { logps } = await noGrad(() => batchLogps(model, batch, { tokenLogps: false, wpo: false, metrics: false, fusedLinear: true }));
      const values = Array.from((await logps.toTypedArray()) as Float32Array);
      for (let i = 0; i < chunk.length; i += 1) if (values[i] > values[i + chunk.length]) wins += 1;
    } finally {
      disposeBatch(batch);
    }
  }
  return wins / pairs.length;
}

/**
 * Trains a tiny GPT-2 (built in) to prefer positive reviews: a short SFT on mixed-sentiment reviews
 * gives the starting model, then DPO on (positive, negative) pairs; reports held-out accuracies before
 * and after, sample completions, and where metrics and checkpoints are.
 */
export async function runDemo(values: DemoOptions): Promise<number> {
  const started = Date.now();
  const say = (line: string) => process.stdout.write(`${line}\n`);
  const dir = resolve(values.dir ?? 'torch-dpo-demo');
  const notice = (message: string) => process.stderr.write(`torch-dpo demo: ${message}\n`);
  const task = writeDemoTask(join(dir, 'task'));
  const model = { architecture: 'gpt2' as const, config: { vocab_size: task.vocabSize, n_positions: 32, n_embd: 64, n_layer: 2, n_head: 4 } };

  say(`demo: workspace ${dir}`);
  say('1/3 SFT: a neutral starting model from mixed-sentiment reviews');
  const sft = await DPOTrainer.create({
    model, tokenizer_name_or_path: join(dir, 'task'), train_dataset: task.files.sft, output_dir: join(dir, 'sft'),
    loss_type: 'sft', reference_free: true, learning_rate: 3e-3, lr_scheduler_type: 'constant',
    max_steps: values.sftSteps ?? 400, per_device_train_batch_size: 16, logging_steps: 50, save_steps: 100000, cache_dir: false, seed: 1,
  }, { notice });
  sft.on('log', (r: LogRecord) => say(`  sft step ${r.step}: token cross-entropy ${r.loss.toFixed(3)}`));
  await sft.train();
  const start = join(dir, 'start-model');
  await sft.policy.exportSafetensors(start);
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(dir, 'task', f), join(start, f));
  sft.dispose();

  say('2/3 DPO: prefer the positive review (reference = the starting model)');
  const dpo = await DPOTrainer.create({
    model_name_or_path: start, train_dataset: task.files.train, eval_dataset: task.files.heldOut, output_dir: join(dir, 'dpo'),
    learning_rate: 2e-3, beta: 0.1, max_steps: values.dpoSteps ?? 40, per_device_train_batch_size: 8,
    logging_steps: 5, eval_strategy: 'steps', eval_steps: 10, save_steps: 100000, cache_dir: false, seed: 2, run_name: 'demo',
  }, { notice });
  const prompts = ['review of the concert :', 'review of the laptop :', 'review of the museum :'];
  const greedy = async () => (await generate(dpo.policy, dpo.tokenizer, prompts, { maxNewTokens: 12, temperature: 0 })).map((g) => g.text);
  const before = await greedy();
  const initialPreference = await preferenceAccuracy(dpo.policy, dpo.evalPairs, dpo.tokenizer.padId);
  const initialEval = await dpo.evaluate();
  dpo.on('log', (r: LogRecord) => say(`  dpo step ${r.step}: loss ${r.loss.toFixed(4)}, reward accuracy ${r['rewards/accuracies'].toFixed(2)}, margin ${r['rewards/margins'].toFixed(3)}`));
  await dpo.train();
  const finalEval = await dpo.evaluate();
  const finalPreference = await preferenceAccuracy(dpo.policy, dpo.evalPairs, dpo.tokenizer.padId);
  const after = await greedy();
  dpo.dispose();

  const seconds = (Date.now() - started) / 1000;
  say('3/3 results on held-out prompts (items never seen in training)');
  say(`  rewards/accuracies: ${initialEval['eval_rewards/accuracies'].toFixed(2)} at step 0 (policy = reference) → ${finalEval['eval_rewards/accuracies'].toFixed(2)} after DPO`);
  say(`  preference accuracy (log p(chosen) > log p(rejected)): ${initialPreference.toFixed(2)} before → ${finalPreference.toFixed(2)} after`);
  prompts.forEach((p, i) => say(`  "${p}"\n     before: ${before[i].trim()}\n     after:  ${after[i].trim()}`));
  say(`  report: ${join(dir, 'dpo', 'report.html')} (open it in a browser); metrics: ${join(dir, 'dpo', 'metrics.jsonl')}`);
  say(`  TensorBoard: tensorboard --logdir ${join(dir, 'dpo', 'runs')}; final model: ${join(dir, 'dpo', 'final')}; ${seconds.toFixed(1)} s in all`);
  if (values.json) {
    say(JSON.stringify({
      initial_eval_rewards_accuracies: initialEval['eval_rewards/accuracies'], final_eval_rewards_accuracies: finalEval['eval_rewards/accuracies'],
      initial_preference_accuracy: initialPreference, final_preference_accuracy: finalPreference, wall_seconds: seconds,
    }));
  }
  return 0;
}
