import { copyFileSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../atomic-file';
import { HfTokenizer } from '../data/tokenizer';
import { completionLogps } from '../generation/completion-logps';
import { generate, type Generation } from '../generation/generate';
import { loadModel } from '../models/load-model';
import { scanCheckpoints } from '../train/checkpoint';
import { DPOTrainer } from '../train/trainer';
import { writeFrontierReport, type FrontierResult } from '../report/frontier-report';
import { reviewPrompts, sentimentReward, writeDemoTask, writeMixedSentimentSft } from './sentiment-task';

export interface FrontierOptions {
  dir?: string;
  betas?: number[];
  sftSteps?: number;
  /** The steps of each DPO run whose checkpoints are evaluated (the last one ends the run). */
  evalSteps?: number[];
  /** Instead of evalSteps: run this many steps, evaluating every 8 steps and at the end. */
  dpoSteps?: number;
  /** Prompts sampled (4 completions each) for the preference pairs. */
  pairPrompts?: number;
  /** Held-out samples per evaluation. */
  evalSamples?: number;
  learningRate?: number;
  json?: boolean;
}

const SAMPLING = { maxNewTokens: 12, temperature: 1, batchSize: 256 };
// GPT-2 shape of the SFT model. The demo's 2 × 64 model fits the SFT data too, but DPO on it displaces
// likelihood within ~10 steps (samples lose the sentence structure, KL jumps past 10 nats at flat
// reward): 4 × 128 keeps the runs in distribution long enough to trace a frontier (see the issue 16 note).
const MODEL = { n_positions: 32, n_embd: 128, n_layer: 4, n_head: 4 };
const bestOfN = [1, 2, 4, 8, 16, 32, 64];
const MAX_N = bestOfN.at(-1)!;

/**
 * The DPO paper's controlled-sentiment experiment (Rafailov et al. 2023, Fig. 2) on the demo's review
 * world: an SFT model of mixed sentiment; pairs sampled from it (4 completions per prompt, every pair
 * of different reward, the higher one chosen) labelled by the ground-truth sentiment reward; DPO at
 * several β from the SFT model; at checkpoints along each run, the mean reward of samples on held-out
 * prompts and KL(π‖π_ref) estimated from the same samples (mean of Σ log π − Σ log π_ref). Baseline:
 * best-of-N sampling from the SFT model at KL log N − (N−1)/N (its upper bound). Writes frontier.json
 * and frontier.html (reward against KL) in the workspace.
 */
export async function runFrontier(values: FrontierOptions): Promise<number> {
  const started = Date.now();
  const say = (line: string) => process.stdout.write(`${line}\n`);
  const notice = (message: string) => process.stderr.write(`torch-dpo demo frontier: ${message}\n`);
  const dir = resolve(values.dir ?? 'torch-dpo-frontier');
  const betas = values.betas ?? [0.05, 0.1, 0.2, 0.5, 1];
  // Every 8 steps: on this task KL stays small for ~60 steps, then rises within a few dozen.
  const evalSteps = values.evalSteps ?? everyEighth(values.dpoSteps ?? 128);
  const dpoSteps = evalSteps.at(-1)!;
  const saveEvery = evalSteps.reduce(gcd);
  const taskDir = join(dir, 'task');
  const task = writeDemoTask(taskDir);
  const sftFile = writeMixedSentimentSft(taskDir);
  const tokenizer = HfTokenizer.fromDir(taskDir);
  say(`demo frontier: workspace ${dir}`);

  say(`1/4 SFT: a model of mixed-sentiment reviews (${values.sftSteps ?? 400} steps)`);
  const start = join(dir, 'sft-model');
  const sft = await DPOTrainer.create({
    model: { architecture: 'gpt2', config: { vocab_size: task.vocabSize, ...MODEL } },
    tokenizer_name_or_path: taskDir, train_dataset: sftFile, output_dir: join(dir, 'sft'), loss_type: 'sft', reference_free: true,
    learning_rate: 3e-3, lr_scheduler_type: 'constant', max_steps: values.sftSteps ?? 400, per_device_train_batch_size: 16,
    save_steps: 100000, cache_dir: false, seed: 1, report_to: [],
  }, { notice });
  await sft.train();
  await sft.policy.exportSafetensors(start);
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(taskDir, f), join(start, f));
  sft.dispose();
  const reference = await loadModel(start, { preferBuiltin: true });

  say('2/4 preference pairs: 4 samples per prompt from the SFT model, labelled by the sentiment reward');
  const pairPrompts = reviewPrompts(values.pairPrompts ?? 128, 21);
  const drawn = await generate(reference, tokenizer, pairPrompts.flatMap((p) => [p, p, p, p]), { ...SAMPLING, seed: 22 });
  const pairs: Record<string, string>[] = [];
  pairPrompts.forEach((prompt, i) => {
    const texts = drawn.slice(4 * i, 4 * i + 4).map((g) => g.text);
    for (let a = 0; a < 4; a += 1) {
      for (let b = a + 1; b < 4; b += 1) {
        const [ra, rb] = [sentimentReward(texts[a]), sentimentReward(texts[b])];
        if (ra !== rb && texts[a] !== texts[b]) pairs.push({ prompt, chosen: ra > rb ? texts[a] : texts[b], rejected: ra > rb ? texts[b] : texts[a] });
      }
    }
  });
  const pairsFile = join(dir, 'pairs.jsonl');
  writeFileSync(pairsFile, pairs.map((p) => JSON.stringify(p)).join('\n'));
  say(`  ${pairs.length} pairs from ${pairPrompts.length} prompts (equal rewards dropped)`);

  // Every evaluation samples the same held-out prompts with the same seed (common random numbers).
  const evalPrompts = reviewPrompts(values.evalSamples ?? 256, 31, true);
  const evaluate = async (path: string) => {
    const policy = path === start ? reference : await loadModel(path, { preferBuiltin: true });
    try {
      const samples = await generate(policy, tokenizer, evalPrompts, { ...SAMPLING, seed: 32 });
      const refLogps = await completionLogps(reference, samples);
      const kl = mean(samples.map((g, i) => sum(g.logprobs) - refLogps[i]));
      return { kl, ...meanAndError(samples.map((g) => sentimentReward(g.text))) };
    } finally {
      if (policy !== reference) policy.dispose();
    }
  };

  say(`3/4 baseline: best-of-N sampling from the SFT model (N = ${bestOfN.join(', ')})`);
  const sftPoint = await evaluate(start);
  const many = await generate(reference, tokenizer, evalPrompts.flatMap((p) => Array(MAX_N).fill(p) as string[]), { ...SAMPLING, seed: 33 });
  const bestOf = bestOfN.map((n) => ({
    n, kl: Math.log(n) - (n - 1) / n,
    ...meanAndError(evalPrompts.map((_, i) => Math.max(...many.slice(MAX_N * i, MAX_N * i + n).map((g: Generation) => sentimentReward(g.text))))),
  }));

  say(`4/4 DPO from the SFT model at β = ${betas.join(', ')} (${dpoSteps} steps each, checkpoints at steps ${evalSteps.join(', ')} evaluated)`);
  const runs: FrontierResult['runs'] = [];
  for (const beta of betas) {
    const out = join(dir, `dpo-beta-${beta}`);
    const trainer = await DPOTrainer.create({
      model_name_or_path: start, train_dataset: pairsFile, output_dir: out, beta, learning_rate: values.learningRate ?? 1e-4, lr_scheduler_type: 'constant',
      max_steps: dpoSteps, save_steps: saveEvery, per_device_train_batch_size: 16,
      logging_steps: 10, cache_dir: false, seed: 2, report_to: [], save_final_model: false,
    }, { notice, preferBuiltin: true });
    await trainer.train();
    trainer.dispose();
    const points = [{ step: 0, kl: 0, reward: sftPoint.reward, reward_se: sftPoint.reward_se }];
    for (const checkpoint of scanCheckpoints(out).complete) {
      if (evalSteps.includes(checkpoint.step)) points.push({ step: checkpoint.step, ...(await evaluate(checkpoint.path)) });
      // The points are kept in frontier.json; of the checkpoints only the run's last one (the policy).
      if (checkpoint.step !== dpoSteps) rmSync(checkpoint.path, { recursive: true, force: true });
    }
    runs.push({ beta, points });
    say(`  β ${beta}: ${points.slice(1).map((p) => `step ${p.step} KL ${p.kl.toFixed(2)} reward ${p.reward.toFixed(3)}`).join('; ')}`);
  }
  reference.dispose();

  const result: FrontierResult = { sft_reward: sftPoint.reward, pairs: pairs.length, eval_samples: evalPrompts.length, best_of_n: bestOf, runs, seconds: (Date.now() - started) / 1000 };
  writeFileAtomic(join(dir, 'frontier.json'), `${JSON.stringify(result, null, 1)}\n`);
  const report = writeFrontierReport(dir, result);
  say(`best-of-N: ${bestOf.map((b) => `N ${b.n} KL ≤ ${b.kl.toFixed(2)} reward ${b.reward.toFixed(3)}`).join('; ')}`);
  say(`report: ${report}; points: ${join(dir, 'frontier.json')}; ${result.seconds.toFixed(1)} s in all`);
  if (values.json) say(JSON.stringify(result));
  return existsSync(report) ? 0 : 1;
}

/** 8, 16, … below `last`, then `last`. */
function everyEighth(last: number): number[] {
  const steps: number[] = [];
  for (let s = 8; s < last; s += 8) steps.push(s);
  return [...steps, last];
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const mean = (xs: number[]) => sum(xs) / xs.length;
/** Mean reward and its standard error. */
function meanAndError(xs: number[]): { reward: number; reward_se: number } {
  const m = mean(xs);
  const variance = sum(xs.map((x) => (x - m) ** 2)) / Math.max(1, xs.length - 1);
  return { reward: m, reward_se: Math.sqrt(variance / xs.length) };
}
