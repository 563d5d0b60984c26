import { z } from 'zod';

/** One option as `torch-dpo config` and the README's table show it. */
export interface OptionDoc {
  key: string;
  type: string;
  /** The default as YAML would spell it; '' when the option has none (unset). */
  default: string;
  /** No default and not optional: the config must set it. */
  required: boolean;
  doc: string;
}

function typeName(schema: z.ZodTypeAny): string {
  if (schema instanceof z.ZodDefault || schema instanceof z.ZodOptional || schema instanceof z.ZodNullable) {
    const inner = typeName(schema._def.innerType);
    return schema instanceof z.ZodNullable ? `${inner} | null` : inner;
  }
  if (schema instanceof z.ZodEffects) return typeName(schema.innerType());
  if (schema instanceof z.ZodString) return 'string';
  if (schema instanceof z.ZodNumber) return schema.isInt ? 'integer' : 'number';
  if (schema instanceof z.ZodBoolean) return 'boolean';
  if (schema instanceof z.ZodEnum) return (schema.options as string[]).join(' | ');
  if (schema instanceof z.ZodLiteral) return JSON.stringify(schema.value);
  if (schema instanceof z.ZodArray) {
    const item = typeName(schema.element);
    return item.includes(' | ') ? `list of (${item})` : `list of ${item}`;
  }
  if (schema instanceof z.ZodUnion) return [...new Set((schema.options as z.ZodTypeAny[]).map(typeName))].join(' | ');
  if (schema instanceof z.ZodObject || schema instanceof z.ZodRecord) return 'mapping';
  return 'value';
}

function defaultOf(schema: z.ZodTypeAny): string {
  if (schema instanceof z.ZodDefault) {
    const value = schema._def.defaultValue();
    return Array.isArray(value) ? `[${value.join(', ')}]` : typeof value === 'object' && value !== null ? JSON.stringify(value) : String(value);
  }
  if (schema instanceof z.ZodEffects) return defaultOf(schema.innerType());
  return '';
}

function descriptionOf(schema: z.ZodTypeAny): string {
  let node: z.ZodTypeAny | undefined = schema;
  while (node) {
    if (node.description) return node.description;
    node = node instanceof z.ZodEffects ? node.innerType() : (node._def as { innerType?: z.ZodTypeAny }).innerType;
  }
  return '';
}

/** Every option of an object schema (through refinements) with its type, default and one-line doc. */
export function describeOptions(schema: z.ZodTypeAny): OptionDoc[] {
  let inner = schema;
  while (inner instanceof z.ZodEffects) inner = inner.innerType();
  if (!(inner instanceof z.ZodObject)) return [];
  return Object.entries(inner.shape as Record<string, z.ZodTypeAny>).map(([key, field]) => ({
    key, type: typeName(field), default: defaultOf(field), doc: descriptionOf(field), required: !field.isOptional(),
  }));
}

/** The options as aligned text (the `torch-dpo config` listing). */
export function formatOptionsText(options: OptionDoc[]): string {
  const width = Math.max(...options.map((o) => o.key.length));
  return options.map((o) => `${o.key.padEnd(width)}  ${o.type}${o.default === '' ? '' : ` = ${o.default}`}${o.required ? ' (required)' : ''}\n${' '.repeat(width + 2)}${o.doc}`).join('\n');
}

/** The options as a Markdown table (the README's key table). */
export function formatOptionsMarkdown(options: OptionDoc[]): string {
  // Pipes would end the cell; <time> and <host> would render as HTML tags.
  const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  return ['| option | type | default | what it does |', '|---|---|---|---|',
    ...options.map((o) => `| \`${o.key}\` | ${cell(o.type)} | ${o.required ? 'required' : o.default === '' ? '' : `\`${cell(o.default)}\``} | ${cell(o.doc)} |`)].join('\n');
}
