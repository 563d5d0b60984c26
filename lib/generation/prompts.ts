import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChatMessage, HfTokenizer } from '../data/tokenizer';
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
