import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RawRow } from '../data/readers';
import type { ChatMessage, HfTokenizer } from '../data/tokenizer';
import { DataError } from '../errors';
import type { CausalLM } from '../models/causal-lm';

/** A prompt to continue: text, or chat messages (rendered with the tokenizer's chat template). */
export type GenerationPrompt = string | ChatMessage[];

/**
 * A prompt's token ids, as the trainer tokenizes a pair's prompt (lib/data/tokenize-pairs.ts): text
 * with the tokenizer's default special tokens; messages through the chat template with the
 * generation prompt, so a generated completion is what a pair's chosen or rejected side would hold.
 */
export function promptIds(tokenizer: HfTokenizer, prompt: GenerationPrompt): number[] {
  return tokenizer.encode(typeof prompt === 'string' ? prompt : tokenizer.renderChat(prompt, { addGenerationPrompt: true }));
}

/**
 * The ids that end a row: the tokenizer's EOS and, as HF's generate reads it, generation_config.json's
 * eos_token_id (one id or a list: Llama 3 ends turns with <|eot_id|>) of the folder the model came from.
 */
export function endOfSequenceIds(model: CausalLM, tokenizer: HfTokenizer): Set<number> {
  const ids = new Set<number>();
  if (tokenizer.eosId !== null) ids.add(tokenizer.eosId);
  const folder = model.info.path && (model.info.source === 'torchscript' ? join(model.info.path, '..') : model.info.path);
  const file = folder ? join(folder, 'generation_config.json') : null;
  if (file && existsSync(file)) {
    try {
      const eos = (JSON.parse(readFileSync(file, 'utf8')) as { eos_token_id?: unknown }).eos_token_id;
      for (const id of Array.isArray(eos) ? eos : [eos]) if (typeof id === 'number') ids.add(id);
    } catch {
      // An unreadable generation_config.json leaves the tokenizer's EOS, as loading ignores it too.
    }
  }
  return ids;
}

/**
 * The prompt of a data row: a string, a list of {role, content} messages, or an object holding one
 * in `column` (default prompt; or messages). `chat` renders a text prompt as one user message.
 */
export function promptFromRow(row: RawRow, options: { chat?: boolean; column?: string } = {}): GenerationPrompt {
  const value = row.value;
  const raw = value !== null && typeof value === 'object' && !Array.isArray(value)
    ? ((value as Record<string, unknown>)[options.column ?? 'prompt'] ?? (value as Record<string, unknown>).messages)
    : value;
  if (typeof raw === 'string') return options.chat ? [{ role: 'user', content: raw }] : raw;
  const isMessage = (m: unknown) => !!m && typeof m === 'object' && typeof (m as ChatMessage).role === 'string' && typeof (m as ChatMessage).content === 'string';
  if (Array.isArray(raw) && raw.length > 0 && raw.every(isMessage)) return raw as ChatMessage[];
  throw new DataError(`${row.source.file}:${row.source.line}: expected a prompt (a string, a list of {role, content} messages, or an object with "${options.column ?? 'prompt'}"), got ${JSON.stringify(value).slice(0, 80)}`);
}
