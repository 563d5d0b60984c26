import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../atomic-file';
import { readRows } from '../data/readers';
import { HfTokenizer } from '../data/tokenizer';
import { ConfigError } from '../errors';
import { ensureWritableDir } from '../file-errors';
import type { GenerationOptionsInput } from '../generation/generation-options';
import { promptFromRow, type GenerationPrompt } from '../generation/prompts';
import { parseTrainerConfigWithNotices, type TrainerConfig, type TrainerConfigInput } from '../train/config';
import { scanCheckpoints } from '../train/checkpoint';
import { resolveDevice } from '../train/device';
import { loadPolicy } from '../train/run-setup';
import { RunLock } from '../train/run-lock';
import { DPOTrainer } from '../train/trainer';
import { loadJudge, type Judge } from './judge';
import { pairRows, sampleAndJudge, type SampleStats } from './round-samples';

export interface IterativeRunOptions {
  /** The judge function, or a module path; default: the config's `judge`. */
  judge?: Judge | string;
  /** Prompts; default: the prompts of the config's train_dataset. Kept in output_dir/prompts.jsonl. */
  prompts?: GenerationPrompt[];
  /** Default: iterative_rounds. */
  rounds?: number;
  /** Default: samples_per_prompt. */
  samplesPerPrompt?: number;
  /** Default: reference_update. */
  referenceUpdate?: 'fixed' | 'per_round';
  /** Overrides the config's generation keys (max_new_tokens, temperature, top_k, top_p, stop_strings). */
  generation?: GenerationOptionsInput;
  /** Aborted: the current round's training stops at a step boundary and saves; the run can resume. */
  signal?: AbortSignal;
  notice?: (message: string) => void;
  /** Each round's trainer before it trains (attach 'log' listeners here). */
  onTrainer?: (trainer: DPOTrainer, round: number) => void;
  /** Each round's summary once its samples are judged, and again once it is trained. */
  onRound?: (summary: RoundSummary) => void;
}

/** A line of output_dir/iterative.json. */
export interface RoundSummary extends SampleStats {
  /** 0-based; the entry after the last round (`final`) scores the final policy and trains nothing. */
  round: number;
  /** The model folder (and adapter) the samples came from. */
  policy: string;
  trained?: { steps: number; final: string; loss: number | null };
}

export interface IterativeResult {
  rounds: RoundSummary[];
  /** The judge on samples of the final policy; null when stopped before. */
  final: RoundSummary | null;
  /** The trained policy's folder (LoRA: its adapter). */
  policy: string;
  stopped: 'done' | 'aborted';
}

/** A trainer config whose train_dataset (prompts) may be left out when the prompts are passed in. */
export type IterativeConfigInput = Omit<TrainerConfigInput, 'train_dataset'> & { train_dataset?: TrainerConfigInput['train_dataset'] };

interface IterativeState {
  rounds: RoundSummary[];
  final: RoundSummary | null;
}

const STATE_FILE = 'iterative.json';

/**
 * Iterative DPO: each round samples `samplesPerPrompt` completions per prompt from the current policy,
 * lets the judge rank them, writes best-vs-worst pairs (round-N/pairs.jsonl; ties dropped and counted)
 * and trains one epoch of DPO on them in round-N/ (its own metrics, report, checkpoints and final/).
 * The reference is the starting model (fixed) or the round's starting policy (per_round). State is
 * kept in output_dir/iterative.json: a rerun skips finished rounds, reuses judged pairs and resumes
 * a round's training from its newest checkpoint. One process (no launch with several ranks yet).
 */
export async function trainIterative(input: IterativeConfigInput, options: IterativeRunOptions = {}): Promise<IterativeResult> {
  const notice = options.notice ?? (() => {});
  if (Number(process.env.WORLD_SIZE ?? '1') > 1) throw new ConfigError('iterative DPO (judge) runs in one process: launch it without --nproc-per-node (several ranks are not supported yet)');
  const raw = { ...(input as Record<string, unknown>) };
  if (options.prompts) raw.train_dataset = writePrompts(String(raw.output_dir), options.prompts);
  const { config: c, notices } = parseTrainerConfigWithNotices(raw);
  notices.forEach(notice);
  const judge = typeof options.judge === 'function' ? options.judge : await loadJudge(options.judge ?? c.judge ?? missingJudge());
  const rounds = options.rounds ?? c.iterative_rounds;
  const perPrompt = options.samplesPerPrompt ?? c.samples_per_prompt;
  const referenceUpdate = options.referenceUpdate ?? c.reference_update;
  if (c.use_peft && referenceUpdate === 'per_round') throw new ConfigError("reference_update: 'per_round' with use_peft: the reference is the model with its adapters off; use 'fixed'");
  ensureWritableDir(c.output_dir);
  const lock = RunLock.acquire(c.output_dir, notice);
  try {
    const prompts = await readPrompts(c);
    const tokenizer = HfTokenizer.fromDir(c.tokenizer_name_or_path ?? c.model_name_or_path!);
    const statePath = join(c.output_dir, STATE_FILE);
    const state: IterativeState = existsSync(statePath) ? JSON.parse(readFileSync(statePath, 'utf8')) as IterativeState : { rounds: [], final: null };
    const save = () => writeFileAtomic(statePath, `${JSON.stringify(state, null, 1)}\n`);
    const start = c.model_name_or_path!;
    // What round r trains (and samples) from: the previous round's final/ (under LoRA: its adapter).
    const source = (r: number) => {
      const previous = r === 0 ? null : join(c.output_dir, `round-${r - 1}`, 'final');
      return c.use_peft ? { model: start, adapter: previous ?? c.adapter_name_or_path } : { model: previous ?? start, adapter: undefined };
    };
    const describe = (s: { model: string; adapter?: string }) => (s.adapter ? `${s.model} + adapter ${s.adapter}` : s.model);
    const generation = (round: number): GenerationOptionsInput => ({
      maxNewTokens: c.max_new_tokens, temperature: c.temperature, topK: c.top_k, topP: c.top_p, stop: c.stop_strings,
      batchSize: c.generation_batch_size, ...options.generation, seed: (options.generation?.seed ?? c.seed) + round,
    });
    const sample = async (round: number, file: string) => {
      const from = source(round);
      const policy = await loadPolicy({ ...c, model_name_or_path: from.model, adapter_name_or_path: from.adapter }, resolveDevice(c.device), notice, true);
      try {
        const { samples, stats } = await sampleAndJudge(policy, tokenizer, prompts, judge, { perPrompt, generation: generation(round), missingEosPenalty: c.missing_eos_penalty, round, notice });
        writeFileAtomic(file, samples.map((s) => `${JSON.stringify(s)}\n`));
        return { summary: { round, policy: describe(from), ...stats }, samples };
      } finally {
        policy.dispose();
      }
    };

    for (let r = 0; r < rounds; r += 1) {
      if (state.rounds[r]?.trained) continue;
      const dir = join(c.output_dir, `round-${r}`);
      const pairsFile = join(dir, 'pairs.jsonl');
      if (options.signal?.aborted) return result(state, 'aborted', c);
      if (!state.rounds[r] || !existsSync(pairsFile)) {
        ensureWritableDir(dir);
        const { summary, samples } = await sample(r, join(dir, 'samples.jsonl'));
        state.rounds[r] = summary;
        save();
        writeFileAtomic(pairsFile, pairRows(samples).map((row) => `${JSON.stringify(row)}\n`));
        options.onRound?.(summary);
      }
      if (state.rounds[r].pairs === 0) throw new ConfigError(`round ${r}: the judge preferred no completion over another for any of the ${prompts.length} prompts (all ties): nothing to train on; raise temperature or samples_per_prompt`);
      const from = source(r);
      const trainer = await DPOTrainer.create({
        ...c, judge: undefined, train_dataset: pairsFile, output_dir: dir, model_name_or_path: from.model, adapter_name_or_path: from.adapter,
        ref_model: referenceUpdate === 'fixed' && r > 0 && !c.use_peft ? start : undefined, num_train_epochs: 1,
        resume_from_checkpoint: scanCheckpoints(dir).complete.length > 0 ? true : undefined, run_name: `${c.run_name ?? 'iterative'} round ${r}`,
        // A pair the pipeline refuses (an empty completion: EOS at once) is dropped and counted in the round's data report.
        on_invalid: 'skip',
      } as TrainerConfigInput, { signal: options.signal, notice, preferBuiltin: true });
      try {
        options.onTrainer?.(trainer, r);
        const trained = await trainer.train({ signal: options.signal });
        if (trained.stopped === 'aborted') return result(state, 'aborted', c);
        state.rounds[r].trained = { steps: trained.steps, final: join(dir, 'final'), loss: trained.history.at(-1)?.loss ?? null };
        save();
        options.onRound?.(state.rounds[r]);
      } finally {
        trainer.dispose();
      }
    }
    if (state.final?.round !== rounds) {
      const { summary } = await sample(rounds, join(c.output_dir, 'final-samples.jsonl'));
      state.final = summary;
      save();
      options.onRound?.(summary);
    }
    return result(state, 'done', c);
  } finally {
    lock.release();
  }
}

function result(state: IterativeState, stopped: IterativeResult['stopped'], c: TrainerConfig): IterativeResult {
  const last = [...state.rounds].reverse().find((r) => r.trained);
  return { rounds: state.rounds, final: state.final, policy: last?.trained?.final ?? c.model_name_or_path!, stopped };
}

function missingJudge(): never {
  throw new ConfigError('iterative DPO needs a judge: set judge (a module path) in the config, or pass options.judge');
}

/** API prompts are kept beside the run (output_dir/prompts.jsonl), so a rerun resumes on the same ones. */
function writePrompts(outputDir: string, prompts: GenerationPrompt[]): string {
  ensureWritableDir(outputDir);
  const file = join(outputDir, 'prompts.jsonl');
  writeFileAtomic(file, prompts.map((p) => `${JSON.stringify({ prompt: p })}\n`));
  return file;
}

async function readPrompts(c: TrainerConfig): Promise<GenerationPrompt[]> {
  const prompts: GenerationPrompt[] = [];
  for await (const row of readRows(c.train_dataset)) {
    if (row instanceof Error) throw row;
    prompts.push(promptFromRow(row, { column: c.prompt_column }));
  }
  if (prompts.length === 0) throw new ConfigError(`train_dataset ${JSON.stringify(c.train_dataset)}: no prompts to sample from`);
  return prompts;
}
