import { RowError, type PreferenceExample } from './examples';
import type { ChatMessage, HfTokenizer } from './tokenizer';

export interface TokenizeOptions {
  /** Each of prompt+chosen and prompt+rejected is cut to this many tokens (default 1024; null: no limit). */
  maxLength?: number | null;
  /** The prompt is cut (its start dropped) to this many tokens first, when set. */
  maxPromptLength?: number;
  /** Each completion is cut (its end dropped) to this many tokens first, when set. */
  maxCompletionLength?: number;
  /** keep_start keeps the head of each sequence, keep_end its tail. */
  truncationMode?: 'keep_start' | 'keep_end';
}

/** One side of a pair: prompt followed by completion, and where the completion starts. */
export interface TokenizedSequence {
  ids: number[] | Int32Array;
  promptLength: number;
}

export interface TokenizedPair {
  chosen: TokenizedSequence;
  rejected: TokenizedSequence;
  /** The joint encoding of prompt+completion did not start with the prompt's own encoding. */
  boundaryMismatch: boolean;
  truncated: boolean;
}

interface TextParts {
  prompt: string;
  chosen: string;
  rejected: string;
}

/** Conversations → text: the prompt with the generation prompt, each completion as what follows it. */
function renderConversation(example: PreferenceExample, tokenizer: HfTokenizer): TextParts {
  const render = (messages: ChatMessage[], addGenerationPrompt: boolean) => {
    try {
      return tokenizer.renderChat(messages, { addGenerationPrompt, tools: example.tools, kwargs: example.chatTemplateKwargs });
    } catch (err) {
      throw new RowError('template_error', example.source, null, `the chat template failed: ${(err as Error).message}`);
    }
  };
  const prompt = render(example.prompt as ChatMessage[], true);
  const full = (completion: ChatMessage[]) => render([...(example.prompt as ChatMessage[]), ...completion], false);
  const tail = (text: string, field: string) => {
    if (!text.startsWith(prompt)) {
      throw new RowError('template_error', example.source, field, 'the rendered conversation does not start with the rendered prompt (a template that rewrites earlier turns)');
    }
    return text.slice(prompt.length);
  };
  return { prompt, chosen: tail(full(example.chosen as ChatMessage[]), 'chosen'), rejected: tail(full(example.rejected as ChatMessage[]), 'rejected') };
}

function withEos(text: string, eos: string | null): string {
  return eos && !text.endsWith(eos) ? text + eos : text;
}

/**
 * Tokenizes a pair by the spec's rules: prompt ids with the default special tokens; completion ids
 * = the tail of the joint encoding after the prompt's length (mismatches are flagged); EOS appended
 * to text completions (chat templates end turns themselves); then truncation. A prompt that alone
 * fills max_length drops the row (RowError 'prompt_too_long').
 */
export function tokenizePair(example: PreferenceExample, tokenizer: HfTokenizer, options: TokenizeOptions = {}): TokenizedPair {
  const maxLength = options.maxLength === null ? Infinity : (options.maxLength ?? 1024);
  const conversational = typeof example.prompt !== 'string';
  const text: TextParts = conversational
    ? renderConversation(example, tokenizer)
    : {
        prompt: example.prompt as string,
        chosen: withEos(example.chosen as string, tokenizer.eosToken),
        rejected: withEos(example.rejected as string, tokenizer.eosToken),
      };
  let promptIds = tokenizer.encode(text.prompt);
  let mismatch = false;
  const completion = (completionText: string) => {
    const joint = tokenizer.encode(text.prompt + completionText);
    if (!promptIds.every((id, i) => joint[i] === id)) mismatch = true;
    return joint.slice(promptIds.length);
  };
  let truncated = false;
  const capped = (ids: number[]) => {
    if (options.maxCompletionLength === undefined || ids.length <= options.maxCompletionLength) return ids;
    truncated = true;
    return ids.slice(0, options.maxCompletionLength);
  };
  const chosenIds = capped(completion(text.chosen));
  const rejectedIds = capped(completion(text.rejected));
  if (options.maxPromptLength !== undefined && promptIds.length > options.maxPromptLength) {
    promptIds = promptIds.slice(promptIds.length - options.maxPromptLength);
    truncated = true;
  }
  if (promptIds.length >= maxLength) {
    throw new RowError('prompt_too_long', example.source, 'prompt', `the prompt has ${promptIds.length} tokens, max_length is ${maxLength}`);
  }
  for (const [ids, field] of [[chosenIds, 'chosen'], [rejectedIds, 'rejected']] as const) {
    if (ids.length === 0) throw new RowError('empty_completion', example.source, field, 'the completion has no tokens after the prompt');
  }
  const side = (ids: number[]): TokenizedSequence => {
    const all = promptIds.concat(ids);
    if (all.length <= maxLength) return { ids: all, promptLength: promptIds.length };
    truncated = true;
    if ((options.truncationMode ?? 'keep_start') === 'keep_start') return { ids: all.slice(0, maxLength), promptLength: promptIds.length };
    const cut = all.length - maxLength;
    return { ids: all.slice(cut), promptLength: Math.max(0, promptIds.length - cut) };
  };
  return { chosen: side(chosenIds), rejected: side(rejectedIds), boundaryMismatch: mismatch, truncated };
}
