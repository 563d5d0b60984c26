import type { Architecture } from './architecture';
import { gpt2 } from './gpt2';
import { llama } from './llama';
import { mistral } from './mistral';
import { qwen2 } from './qwen2';
import { qwen3 } from './qwen3';

/** The built-in architectures by HF model_type. A new one is one file plus one line here. */
export const ARCHITECTURES = { gpt2, llama, mistral, qwen2, qwen3 } satisfies Record<string, Architecture>;
export type ArchitectureName = keyof typeof ARCHITECTURES;
export const ARCHITECTURE_NAMES = Object.keys(ARCHITECTURES) as [ArchitectureName, ...ArchitectureName[]];
