import type { ChatMessage, HfTokenizer } from '../data/tokenizer';
import { generate, type Generation } from '../generation/generate';
import type { GenerationOptionsInput } from '../generation/generation-options';
import type { GenerationPrompt } from '../generation/prompts';
import type { CausalLM } from '../models/causal-lm';
import { judgeCompletions, type Judge } from './judge';

/** One prompt's samples of a round, as samples.jsonl keeps them. */
export interface PromptSamples {
  prompt: GenerationPrompt;
  completions: string[];
  scores: number[] | null;
  finish_reasons: Generation['finishReason'][];
  /** Σ log π(completion) under the policy that sampled it. */
  logprobs: number[];
  tokens: number[];
  /** [chosen, rejected] indices, or null (a tie). */
  pair: [number, number] | null;
}

/** What a round's samples came to (a line of iterative.json). */
export interface SampleStats {
  prompts: number;
  samples: number;
  /** Mean of the judge's scores over all samples (null for a judge that names a preferred index). */
  judge_mean_score: number | null;
  pairs: number;
  ties_dropped: number;
  eos_fraction: number;
  mean_completion_tokens: number;
}

/**
 * Samples `perPrompt` completions of every prompt from the policy (row i·perPrompt + j draws from its
 * own seeded stream) and asks the judge about each prompt's set.
 */
export async function sampleAndJudge(
  policy: CausalLM, tokenizer: HfTokenizer, prompts: GenerationPrompt[], judge: Judge,
  options: { perPrompt: number; generation: GenerationOptionsInput; missingEosPenalty?: number; round: number; notice?: (m: string) => void },
): Promise<{ samples: PromptSamples[]; stats: SampleStats }> {
  const rows = prompts.flatMap((p) => Array.from({ length: options.perPrompt }, () => p));
  const generated = await generate(policy, tokenizer, rows, options.generation, { notice: options.notice });
  const samples: PromptSamples[] = [];
  for (let i = 0; i < prompts.length; i += 1) {
    const mine = generated.slice(i * options.perPrompt, (i + 1) * options.perPrompt);
    const completions = mine.map((g) => g.text);
    const verdict = await judgeCompletions(judge, prompts[i], completions, mine.map((g) => g.finishReason === 'eos'), `round ${options.round}, prompt ${i}`, options.missingEosPenalty);
    // Two identical texts teach nothing (the data pipeline refuses such pairs): a tie.
    if (verdict.pair && completions[verdict.pair[0]] === completions[verdict.pair[1]]) verdict.pair = null;
    samples.push({
      prompt: prompts[i], completions, scores: verdict.scores, finish_reasons: mine.map((g) => g.finishReason),
      logprobs: mine.map((g) => g.logprobs.reduce((a, b) => a + b, 0)), tokens: mine.map((g) => g.ids.length), pair: verdict.pair,
    });
  }
  const scored = samples.flatMap((s) => s.scores ?? []);
  const pairs = samples.filter((s) => s.pair).length;
  return {
    samples,
    stats: {
      prompts: prompts.length, samples: generated.length,
      judge_mean_score: scored.length === generated.length ? scored.reduce((a, b) => a + b, 0) / scored.length : null,
      pairs, ties_dropped: samples.length - pairs,
      eos_fraction: generated.filter((g) => g.finishReason === 'eos').length / generated.length,
      mean_completion_tokens: generated.reduce((a, g) => a + g.ids.length, 0) / generated.length,
    },
  };
}

/** The preference rows of a round: the judged pairs, as conversations when the prompt is one. */
export function pairRows(samples: PromptSamples[]): Record<string, unknown>[] {
  return samples.filter((s) => s.pair).map((s) => {
    const [chosen, rejected] = s.pair!.map((i) => s.completions[i]);
    if (typeof s.prompt === 'string') return { prompt: s.prompt, chosen, rejected };
    const reply = (content: string): ChatMessage[] => [{ role: 'assistant', content }];
    return { prompt: s.prompt, chosen: reply(chosen), rejected: reply(rejected) };
  });
}
