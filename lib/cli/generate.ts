import { writeFileAtomic } from '../atomic-file';
import { readRows } from '../data/readers';
import { HfTokenizer } from '../data/tokenizer';
import { generate } from '../generation/generate';
import { promptFromRow, type GenerationPrompt } from '../generation/prompts';
import { loadModel } from '../models/load-model';
import type { DType } from '../native/binding';
import { resolveDevice } from '../train/device';

export interface GenerateCommandOptions {
  model: string;
  prompts: string;
  chat?: boolean;
  out?: string;
  maxNewTokens?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  stop: string[];
  batchSize?: number;
  device: string;
  dtype?: DType;
}

/**
 * `torch-dpo generate --model DIR --prompts FILE`: one JSON line per prompt (prompt, completion,
 * finish_reason, tokens, logprob) on stdout or into --out (written whole, atomically).
 */
export async function runGenerate(o: GenerateCommandOptions): Promise<number> {
  const prompts: GenerationPrompt[] = [];
  for await (const row of readRows(o.prompts)) {
    if (row instanceof Error) throw row;
    prompts.push(promptFromRow(row, { chat: o.chat ?? false }));
  }
  const tokenizer = HfTokenizer.fromDir(o.model);
  const model = await loadModel(o.model, { device: resolveDevice(o.device), dtype: o.dtype, preferBuiltin: true });
  try {
    const notice = (m: string) => process.stderr.write(`torch-dpo generate: ${m}\n`);
    // Only what the command line gave: the schema holds the defaults.
    const given = { maxNewTokens: o.maxNewTokens, temperature: o.temperature, topK: o.topK, topP: o.topP, seed: o.seed, stop: o.stop, batchSize: o.batchSize };
    const options = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined));
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
