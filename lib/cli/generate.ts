import { writeFileAtomic } from '../atomic-file';
import { readRows } from '../data/readers';
import { HfTokenizer, type ChatMessage } from '../data/tokenizer';
import { DataError } from '../errors';
import { generate } from '../generation/generate';
import type { GenerationPrompt } from '../generation/prompts';
import { loadModel } from '../models/load-model';
import type { DType } from '../native/binding';
import { resolveDevice } from '../train/device';

export interface GenerateCommandOptions {
  model: string;
  prompts: string;
  chat?: boolean;
  out?: string;
  maxNewTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  seed: number;
  stop: string[];
  batchSize: number;
  device: string;
  dtype?: DType;
}

/** A row's prompt: a string, a list of messages, or a row object with `prompt` (or `messages`). */
function promptOf(value: unknown, chat: boolean, where: string): GenerationPrompt {
  const raw = value !== null && typeof value === 'object' && !Array.isArray(value)
    ? ((value as Record<string, unknown>).prompt ?? (value as Record<string, unknown>).messages)
    : value;
  if (typeof raw === 'string') return chat ? [{ role: 'user', content: raw }] : raw;
  if (Array.isArray(raw) && raw.every((m) => m && typeof m === 'object' && typeof (m as ChatMessage).role === 'string' && typeof (m as ChatMessage).content === 'string')) {
    return raw as ChatMessage[];
  }
  throw new DataError(`${where}: expected a prompt (a string, a list of {role, content} messages, or an object with "prompt"), got ${JSON.stringify(value).slice(0, 80)}`);
}

/**
 * `torch-dpo generate --model DIR --prompts FILE`: one JSON line per prompt (prompt, completion,
 * finish_reason, tokens, logprob) on stdout or into --out (written whole, atomically).
 */
export async function runGenerate(o: GenerateCommandOptions): Promise<number> {
  const prompts: GenerationPrompt[] = [];
  for await (const row of readRows(o.prompts)) {
    if (row instanceof Error) throw row;
    prompts.push(promptOf(row.value, o.chat ?? false, `${row.source.file}:${row.source.line}`));
  }
  const tokenizer = HfTokenizer.fromDir(o.model);
  const model = await loadModel(o.model, { device: resolveDevice(o.device), dtype: o.dtype, preferBuiltin: true });
  try {
    const notice = (m: string) => process.stderr.write(`torch-dpo generate: ${m}\n`);
    const options = { maxNewTokens: o.maxNewTokens, temperature: o.temperature, topK: o.topK, topP: o.topP, seed: o.seed, stop: o.stop, batchSize: o.batchSize };
    const results = await generate(model, tokenizer, prompts, options, { notice });
    const lines = results.map((g) => JSON.stringify({
      prompt: g.prompt, completion: g.text, finish_reason: g.finishReason, tokens: g.ids.length, logprob: g.logprobs.reduce((a, b) => a + b, 0),
    }) + '\n');
    if (o.out) writeFileAtomic(o.out, lines);
    else process.stdout.write(lines.join(''));
    return 0;
  } finally {
    model.dispose();
  }
}
