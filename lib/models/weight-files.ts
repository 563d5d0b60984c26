import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../atomic-file';
import { consecutiveGroups } from '../consecutive-groups';
import { ConfigError, DataError } from '../errors';

// How HF lays a model's weights out in a folder: one `model.safetensors`, or shards
// `model-00001-of-00003.safetensors` listed by `model.safetensors.index.json`
// ({ metadata: { total_size }, weight_map: { name: shard file } }), as save_pretrained writes them.

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';
/** A ZeRO-3 checkpoint's replicated weights (beside per-rank slices of the layers: distributed/zero-checkpoint.ts). */
export const ZERO3_REPLICATED_FILE = 'zero3-replicated.safetensors';
export const shardName = (k: number, n: number) => `model-${String(k).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;

/** Files of an HF model folder that travel with its weights on export (when the source has them). */
const COMPANION_FILES = [
  'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json',
  'chat_template.jinja', 'chat_template.json', 'tokenizer.model', 'vocab.json', 'merges.txt',
];

/** Copies the companion files `from` has into `to`, each written atomically. */
export function copyCompanionFiles(from: string, to: string): void {
  if (resolve(from) === resolve(to)) return;
  for (const name of COMPANION_FILES) {
    if (existsSync(join(from, name))) writeFileAtomic(join(to, name), readFileSync(join(from, name)));
  }
}

/** True when the folder holds safetensors weights (one file or an index of shards). */
export function hasSafetensorsWeights(dir: string): boolean {
  return existsSync(join(dir, INDEX_FILE)) || existsSync(join(dir, SINGLE_FILE));
}

/**
 * The safetensors files holding a folder's weights: the shards its index names (each checked to
 * exist), or the single file. PyTorch pickles (`pytorch_model.bin`) are refused: unpickling runs code.
 */
export function weightFiles(dir: string): string[] {
  const index = join(dir, INDEX_FILE);
  if (existsSync(index)) {
    let parsed: { weight_map?: Record<string, string> };
    try {
      parsed = JSON.parse(readFileSync(index, 'utf8')) as typeof parsed;
    } catch (err) {
      throw new DataError(`${index}: not JSON (${(err as Error).message})`);
    }
    if (!parsed.weight_map || typeof parsed.weight_map !== 'object') throw new DataError(`${index}: no weight_map`);
    const files = [...new Set(Object.values(parsed.weight_map))].sort();
    const missing = files.filter((f) => !existsSync(join(dir, f)));
    if (missing.length > 0) throw new DataError(`${index} names shard(s) that are not in ${dir}: ${missing.join(', ')} (an incomplete download?)`);
    return files.map((f) => join(dir, f));
  }
  if (existsSync(join(dir, SINGLE_FILE))) return [join(dir, SINGLE_FILE)];
  if (existsSync(join(dir, ZERO3_REPLICATED_FILE))) {
    throw new DataError(`${dir} is a ZeRO-3 checkpoint (each rank's slice of the layers), not a model folder: resume it with the world size that wrote it, or write a model folder with torch-dpo export --checkpoint ${dir}`);
  }
  if (existsSync(join(dir, 'pytorch_model.bin')) || existsSync(join(dir, 'pytorch_model.bin.index.json'))) {
    throw new DataError(`${dir} has PyTorch pickle weights (pytorch_model.bin), which torch-dpo does not read (unpickling runs code): convert them once with transformers (AutoModelForCausalLM.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)) or the safetensors convert script`);
  }
  throw new DataError(`${dir}: no ${SINGLE_FILE} or ${INDEX_FILE}`);
}

/** "5GB" → 5·10⁹ bytes, as transformers' convert_file_size_to_int (GB, MB, KB decimal; GiB, MiB, KiB binary). */
export function parseShardSize(size: string | number): number {
  if (typeof size === 'number') return size;
  const match = /^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KIB|MIB|GIB)?\s*$/i.exec(size);
  if (!match) throw new ConfigError(`max_shard_size: '${size}' is not a size (e.g. 5GB, 500MB, 2GiB)`);
  const unit = (match[2] ?? 'B').toUpperCase();
  const scale: Record<string, number> = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9, KIB: 2 ** 10, MIB: 2 ** 20, GIB: 2 ** 30 };
  return Math.floor(Number(match[1]) * scale[unit]);
}

/** Tensors split into shards in order, each at most maxBytes unless one tensor alone is larger (transformers' rule). */
export function planShards(sizes: number[], maxBytes: number): number[][] {
  return consecutiveGroups(sizes, maxBytes);
}
