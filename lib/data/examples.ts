import { DataError } from '../errors';
import type { ChatMessage } from './tokenizer';

/** Where a row came from: the file and its 1-based line (JSONL) or row (JSON array, Parquet). */
export interface RowSource {
  file: string;
  line: number;
}

export type PreferenceFormat = 'standard' | 'implicit_prompt' | 'conversational' | 'conversational_implicit_prompt';

export interface PreferenceExample {
  format: PreferenceFormat;
  prompt: string | ChatMessage[];
  chosen: string | ChatMessage[];
  rejected: string | ChatMessage[];
  tools?: unknown[];
  chatTemplateKwargs?: Record<string, unknown>;
  source: RowSource;
}

/** Why a row was not used; counted per reason in the data report. */
export type DropReason =
  | 'malformed_json' | 'missing_field' | 'wrong_type' | 'empty_completion' | 'identical_pair'
  | 'no_assistant_turn' | 'unknown_role' | 'template_error' | 'prompt_too_long' | 'invalid_utf8';

/** A DataError that knows its row and reason, so that on_invalid: skip can count it. */
export class RowError extends DataError {
  constructor(
    readonly reason: DropReason,
    readonly source: RowSource,
    readonly field: string | null,
    readonly detail: string,
  ) {
    super(`${source.file}:${source.line}${field ? ` field "${field}"` : ''}: ${detail}`);
  }
}

export interface ColumnMapping {
  prompt_column?: string;
  chosen_column?: string;
  rejected_column?: string;
}

const ROLES = new Set(['system', 'user', 'assistant', 'tool', 'developer']);

function checkMessages(value: unknown[], field: string, source: RowSource): ChatMessage[] {
  value.forEach((m, i) => {
    if (!m || typeof m !== 'object' || typeof (m as ChatMessage).role !== 'string' || typeof (m as ChatMessage).content !== 'string') {
      throw new RowError('wrong_type', source, `${field}[${i}]`, 'each message needs a string "role" and "content"');
    }
    if (!ROLES.has((m as ChatMessage).role)) {
      throw new RowError('unknown_role', source, `${field}[${i}].role`, `unknown role "${(m as ChatMessage).role}" (known: ${[...ROLES].join(', ')})`);
    }
  });
  return value as ChatMessage[];
}

/** The longest common prefix split, moved back onto a space so the completion starts with it. */
export function splitCommonTextPrefix(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i += 1;
  if (i > 0 && a[i - 1] === ' ') i -= 1;
  return i;
}

function splitCommonMessages(a: ChatMessage[], b: ChatMessage[]): number {
  let i = 0;
  while (i < a.length && i < b.length && JSON.stringify(a[i]) === JSON.stringify(b[i])) i += 1;
  return i;
}

/**
 * Turns a raw row into a preference example, detecting its format: explicit or implicit prompt,
 * text or conversation. Every problem is a RowError naming file, line and field.
 */
export function toExample(row: unknown, source: RowSource, columns: ColumnMapping = {}): PreferenceExample {
  if (!row || typeof row !== 'object' || Array.isArray(row)) throw new RowError('wrong_type', source, null, 'a row must be a JSON object');
  const record = row as Record<string, unknown>;
  const names = { prompt: columns.prompt_column ?? 'prompt', chosen: columns.chosen_column ?? 'chosen', rejected: columns.rejected_column ?? 'rejected' };
  for (const field of [names.chosen, names.rejected]) {
    if (record[field] === undefined || record[field] === null) throw new RowError('missing_field', source, field, 'is missing');
  }
  const hasPrompt = record[names.prompt] !== undefined && record[names.prompt] !== null;
  const chosen = record[names.chosen];
  const rejected = record[names.rejected];
  const prompt = hasPrompt ? record[names.prompt] : undefined;
  const conversational = Array.isArray(chosen);
  const extras = {
    tools: Array.isArray(record.tools) ? (record.tools as unknown[]) : undefined,
    chatTemplateKwargs: record.chat_template_kwargs && typeof record.chat_template_kwargs === 'object' ? (record.chat_template_kwargs as Record<string, unknown>) : undefined,
  };

  if (!conversational) {
    for (const [field, value] of [[names.chosen, chosen], [names.rejected, rejected], ...(hasPrompt ? [[names.prompt, prompt]] : [])] as [string, unknown][]) {
      if (typeof value !== 'string') throw new RowError('wrong_type', source, field, `must be a string like "${names.chosen}" (got ${Array.isArray(value) ? 'a list' : typeof value})`);
    }
    let p = (prompt as string | undefined) ?? '';
    let c = chosen as string;
    let r = rejected as string;
    if (!hasPrompt) {
      const split = splitCommonTextPrefix(c, r);
      p = c.slice(0, split);
      c = c.slice(split);
      r = r.slice(split);
    }
    if (c.length === 0) throw new RowError('empty_completion', source, names.chosen, 'the chosen completion is empty');
    if (r.length === 0) throw new RowError('empty_completion', source, names.rejected, 'the rejected completion is empty');
    if (c === r) throw new RowError('identical_pair', source, names.rejected, 'chosen and rejected are identical');
    return { format: hasPrompt ? 'standard' : 'implicit_prompt', prompt: p, chosen: c, rejected: r, ...extras, source };
  }

  if (!Array.isArray(rejected)) throw new RowError('wrong_type', source, names.rejected, 'must be a list of messages like "chosen"');
  if (hasPrompt && !Array.isArray(prompt)) throw new RowError('wrong_type', source, names.prompt, 'must be a list of messages like "chosen"');
  let p = hasPrompt ? checkMessages(prompt as unknown[], names.prompt, source) : [];
  let c = checkMessages(chosen, names.chosen, source);
  let r = checkMessages(rejected, names.rejected, source);
  if (!hasPrompt) {
    const split = splitCommonMessages(c, r);
    p = c.slice(0, split);
    c = c.slice(split);
    r = r.slice(split);
  }
  if (!c.some((m) => m.role === 'assistant')) throw new RowError('no_assistant_turn', source, names.chosen, 'has no assistant turn');
  if (!r.some((m) => m.role === 'assistant')) throw new RowError('no_assistant_turn', source, names.rejected, 'has no assistant turn');
  if (c.every((m) => m.content.length === 0)) throw new RowError('empty_completion', source, names.chosen, 'the chosen completion is empty');
  if (r.every((m) => m.content.length === 0)) throw new RowError('empty_completion', source, names.rejected, 'the rejected completion is empty');
  if (JSON.stringify(c) === JSON.stringify(r)) throw new RowError('identical_pair', source, names.rejected, 'chosen and rejected are identical');
  return { format: hasPrompt ? 'conversational' : 'conversational_implicit_prompt', prompt: p, chosen: c, rejected: r, ...extras, source };
}
