import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';
import { DataError } from '../errors';

export interface ChatMessage {
  role: string;
  content: string;
  [key: string]: unknown;
}

type TokenSpec = string | { content: string } | null | undefined;
const tokenText = (t: TokenSpec) => (t == null ? null : typeof t === 'string' ? t : t.content);

/** A Hugging Face tokenizer (tokenizer.json + tokenizer_config.json) with its chat template. */
export class HfTokenizer {
  readonly eosToken: string | null;
  readonly eosId: number | null;
  readonly padId: number | null;
  readonly bosToken: string | null;
  readonly chatTemplate: string | null;
  private readonly tokenizer: Tokenizer;
  private template: Template | null = null;

  constructor(
    readonly json: Record<string, unknown>,
    readonly config: Record<string, unknown>,
    readonly source = 'memory',
  ) {
    try {
      this.tokenizer = new Tokenizer(json, config);
    } catch (err) {
      throw new DataError(`${source}: not a usable tokenizer.json (${(err as Error).message})`);
    }
    this.eosToken = tokenText(config.eos_token as TokenSpec);
    this.bosToken = tokenText(config.bos_token as TokenSpec);
    this.eosId = this.eosToken === null ? null : this.tokenId(this.eosToken);
    const pad = tokenText(config.pad_token as TokenSpec);
    // No pad token: pad with EOS (padding is masked out anyway).
    this.padId = pad !== null ? this.tokenId(pad) : this.eosId;
    const template = config.chat_template;
    this.chatTemplate = typeof template === 'string' ? template : Array.isArray(template) ? ((template as { name: string; template: string }[]).find((t) => t.name === 'default')?.template ?? null) : null;
  }

  /** Reads tokenizer.json and tokenizer_config.json from a model folder. */
  static fromDir(dir: string): HfTokenizer {
    const read = (name: string, required: boolean) => {
      const file = join(dir, name);
      if (!existsSync(file)) {
        if (required) throw new DataError(`${file} is missing`);
        return {};
      }
      try {
        return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
      } catch (err) {
        throw new DataError(`${file}: ${(err as Error).message}`);
      }
    };
    return new HfTokenizer(read('tokenizer.json', true), read('tokenizer_config.json', false), dir);
  }

  tokenId(token: string): number {
    const id = this.tokenizer.token_to_id(token);
    if (id === undefined) throw new DataError(`${this.source}: token ${JSON.stringify(token)} is not in the vocabulary`);
    return id;
  }

  /** Token ids, with the tokenizer's default special tokens unless asked otherwise. */
  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  }

  decode(ids: ArrayLike<number>, options: { skipSpecialTokens?: boolean } = {}): string {
    return this.tokenizer.decode(Array.from(ids), { skip_special_tokens: options.skipSpecialTokens ?? false });
  }

  /** Renders messages with the chat template (errors name the template problem). */
  renderChat(messages: ChatMessage[], options: { addGenerationPrompt: boolean; tools?: unknown[]; kwargs?: Record<string, unknown> }): string {
    if (!this.chatTemplate) throw new DataError(`${this.source}: tokenizer_config.json has no chat_template, so conversational rows cannot be rendered`);
    this.template ??= new Template(this.chatTemplate);
    return this.template.render({
      ...options.kwargs,
      messages,
      tools: options.tools,
      add_generation_prompt: options.addGenerationPrompt,
      bos_token: this.bosToken ?? '',
      eos_token: this.eosToken ?? '',
    });
  }
}
