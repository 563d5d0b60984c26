import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConfigError, TorchDpoError } from '../errors';
import type { GenerationPrompt } from '../generation/prompts';

/**
 * A judge ranks the completions of one prompt: a score per completion (higher is better), or the
 * index of the preferred one, or null for no preference. It may be async (a test suite, a model
 * call, a human queue).
 */
export type Judge = (prompt: GenerationPrompt, completions: string[]) => number[] | number | null | Promise<number[] | number | null>;

/** The judge returned something other than scores, an index or null. */
export class JudgeError extends TorchDpoError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'ERR_JUDGE', options);
  }
}

/** What one prompt's samples came to. */
export interface Verdict {
  /** Scores as returned (null for an index judge). */
  scores: number[] | null;
  /** The pair (chosen, rejected) indices, or null when the judge saw no difference. */
  pair: [number, number] | null;
}

// Native import() (TypeScript would compile it to require, which cannot load an ES module).
const importModule = new Function('url', 'return import(url)') as (url: string) => Promise<Record<string, unknown>>;

/** The judge function of a module path: its default export, an export named `judge`, or module.exports itself. */
export async function loadJudge(path: string): Promise<Judge> {
  const file = resolve(path);
  if (!existsSync(file)) throw new ConfigError(`judge: ${path}: no such file (a JavaScript module exporting judge(prompt, completions))`);
  let loaded: Record<string, unknown>;
  try {
    loaded = await importModule(pathToFileURL(file).href);
  } catch (err) {
    throw new ConfigError(`judge: ${path} failed to load: ${(err as Error).message.split('\n')[0]}`, { cause: err });
  }
  const candidates = [loaded.default, loaded.judge, (loaded.default as Record<string, unknown> | undefined)?.judge];
  const judge = candidates.find((c) => typeof c === 'function');
  if (!judge) throw new ConfigError(`judge: ${path} exports no function (export default, export judge, or module.exports = function)`);
  return judge as Judge;
}

/**
 * Asks the judge about one prompt's completions and picks the pair: the best against the worst score
 * (the first of equals; missing_eos_penalty lowers completions without EOS), or the preferred index
 * against the first other completion. All scores equal, or null: no pair.
 */
export async function judgeCompletions(
  judge: Judge, prompt: GenerationPrompt, completions: string[], endedWithEos: boolean[], where: string, missingEosPenalty?: number,
): Promise<Verdict> {
  let answer: unknown;
  try {
    answer = await judge(prompt, completions);
  } catch (err) {
    throw new JudgeError(`${where}: the judge threw: ${(err as Error)?.message ?? String(err)}`, { cause: err });
  }
  if (answer === null || answer === undefined) return { scores: null, pair: null };
  if (typeof answer === 'number') {
    if (!Number.isInteger(answer) || answer < 0 || answer >= completions.length) {
      throw new JudgeError(`${where}: the judge returned ${answer} for ${completions.length} completions: expected a score per completion or the index (0 … ${completions.length - 1}) of the preferred one`);
    }
    return { scores: null, pair: [answer, answer === 0 ? 1 : 0] };
  }
  if (!Array.isArray(answer) || answer.length !== completions.length || !answer.every((s) => typeof s === 'number' && Number.isFinite(s))) {
    throw new JudgeError(`${where}: the judge returned ${JSON.stringify(answer)?.slice(0, 60)} for ${completions.length} completions: expected ${completions.length} finite scores or the index of the preferred one`);
  }
  const scores = answer as number[];
  const ranked = scores.map((s, i) => s - (missingEosPenalty && !endedWithEos[i] ? missingEosPenalty : 0));
  const best = ranked.indexOf(Math.max(...ranked));
  const worst = ranked.indexOf(Math.min(...ranked));
  return { scores, pair: ranked[best] === ranked[worst] ? null : [best, worst] };
}
