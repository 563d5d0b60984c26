import { z } from 'zod';
import { ConfigError } from '../errors';

// The one place zod problems become user messages: a wrong value is echoed with the choices, an
// unknown key gets the nearest known name, and every problem is listed once in one ConfigError.

/** Edit distance (insertions, deletions, substitutions, adjacent swaps): "sigmiod" is 1 from "sigmoid". */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i += 1) {
    for (let j = 1; j <= b.length; j += 1) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** The candidate closest to `name`, when it is close enough to be a likely typo; else null. */
export function closest(name: string, candidates: Iterable<string>): string | null {
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  return best !== null && bestDistance <= Math.max(2, Math.floor(name.length / 4)) ? best : null;
}

const show = (value: unknown) => (typeof value === 'string' ? `'${value}'` : JSON.stringify(value));

function valueAt(input: unknown, path: (string | number)[]): unknown {
  let node = input;
  for (const key of path) node = node && typeof node === 'object' ? (node as Record<string | number, unknown>)[key] : undefined;
  return node;
}

/** The innermost enum error of a union (a key that takes one value or a list of them). */
function enumIssueOf(issue: z.ZodIssue): z.ZodInvalidEnumValueIssue | null {
  if (issue.code === z.ZodIssueCode.invalid_enum_value) return issue;
  if (issue.code !== z.ZodIssueCode.invalid_union) return null;
  for (const union of issue.unionErrors) {
    for (const inner of union.issues) {
      const found = enumIssueOf(inner);
      if (found) return found;
    }
  }
  return null;
}

/** One line per problem: `key: problem`, with the value given and what would be accepted. */
export function describeIssues(error: z.ZodError, input: unknown, knownKeys: Iterable<string> = []): string[] {
  const lines: string[] = [];
  for (const issue of error.issues) {
    const where = issue.path.join('.') || '(root)';
    const enumIssue = enumIssueOf(issue);
    if (enumIssue) {
      const choices = enumIssue.options.map(String);
      const hint = typeof enumIssue.received === 'string' ? closest(enumIssue.received, choices) : null;
      const at = enumIssue.path.length > issue.path.length ? enumIssue.path.join('.') : where;
      lines.push(`${at}: ${show(enumIssue.received)} is not one of ${choices.join(', ')}${hint ? ` (did you mean '${hint}'?)` : ''}`);
    } else if (issue.code === z.ZodIssueCode.unrecognized_keys) {
      for (const key of issue.keys) {
        const hint = closest(key, knownKeys);
        lines.push(`${[...issue.path, key].join('.')}: unknown option${hint ? ` (did you mean '${hint}'?)` : ''}; \`torch-dpo config\` lists every option`);
      }
    } else if (issue.code === z.ZodIssueCode.invalid_type && issue.received === 'undefined') {
      lines.push(`${where}: required`);
    } else {
      const value = valueAt(input, issue.path);
      lines.push(`${where}: ${issue.message}${value === undefined ? '' : ` (got ${show(value)})`}`);
    }
  }
  return [...new Set(lines)];
}

// Parsed configs are remembered, so passing one down again costs nothing: parsed once, used often.
const parsed = new WeakSet<object>();

export function isParsed(input: unknown): boolean {
  return !!input && typeof input === 'object' && parsed.has(input);
}

/** Validates `input` against `schema` at the boundary; a parsed result passes through unchanged. */
export function parseOnce<S extends z.ZodTypeAny>(schema: S, input: unknown, where: string, knownKeys?: Iterable<string>): z.output<S> {
  if (input && typeof input === 'object' && parsed.has(input)) return input as z.output<S>;
  const result = schema.safeParse(input ?? {});
  if (!result.success) throw new ConfigError(`${where} is invalid:\n  ${describeIssues(result.error, input, knownKeys ?? keysOf(schema)).join('\n  ')}`);
  if (result.data && typeof result.data === 'object') parsed.add(result.data);
  return result.data;
}

/** The part of a bigger config (the trainer's) that `schema` declares, parsed: its keys only. */
export function parsePart<S extends z.ZodTypeAny>(schema: S, config: Record<string, unknown>, where: string): z.output<S> {
  const keys = new Set(keysOf(schema));
  return parseOnce(schema, Object.fromEntries(Object.entries(config).filter(([k]) => keys.has(k))), where);
}

/** The option names of an object schema (through refinements). */
export function keysOf(schema: z.ZodTypeAny): string[] {
  let inner: z.ZodTypeAny = schema;
  while (inner instanceof z.ZodEffects) inner = inner.innerType();
  return inner instanceof z.ZodObject ? Object.keys(inner.shape) : [];
}
