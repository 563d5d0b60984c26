import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DataError } from '../errors';
import { noGrad } from '../grad-mode';
import { DTYPE_BYTES, FLOAT_DTYPES } from '../dtypes';
import type { DType } from '../native/binding';
import type { Tensor } from '../tensor';
import { SafetensorsReader, writeSafetensors, type SafetensorsLocation } from './safetensors';
import { empty } from '../tensor-functions';
import type { ScriptModule } from './script-module';
import { writeFileAtomic } from '../atomic-file';
import { scope } from '../scope';
import { INDEX_FILE, parseShardSize, planShards, shardName, SINGLE_FILE, weightFiles } from './weight-files';

/** Buffers HF keeps in checkpoints that the built-in architectures compute instead. */
const IGNORED = /(^|\.)rotary_emb\.inv_freq$/;

/**
 * Copies safetensors weights into a module's parameters (and buffers), strictly: every tensor must
 * name a parameter (or one of its tied aliases) with the same shape, and every parameter must be
 * covered; a mismatch is a DataError listing the whole diff. `path` is a file, or a model folder
 * (one model.safetensors, or shards with model.safetensors.index.json). Lean: tensor by tensor with
 * positioned reads straight into the parameter (at most one staging tensor when dtype or device differ).
 */
export function loadSafetensorsInto(module: ScriptModule, path: string): Promise<void> {
  // Parameter handles and converted copies live only for this load.
  return scope(() => loadInto(module, path));
}

async function loadInto(module: ScriptModule, path: string): Promise<void> {
  const readers: SafetensorsReader[] = [];
  try {
    for (const file of existsSync(path) && statSync(path).isDirectory() ? weightFiles(path) : [path]) readers.push(new SafetensorsReader(file));
    const targets = new Map<string, Tensor>();
    const canonical = new Map<string, string>();
    for (const p of [...(await module.namedParameters()), ...(await module.namedBuffers())]) {
      for (const name of [p.name, ...p.aliases]) {
        targets.set(name, p.tensor);
        canonical.set(name, p.name);
      }
    }
    const unexpected: string[] = [];
    const wrongShape: string[] = [];
    const covered = new Set<string>();
    for (const reader of readers) {
      for (const [name, at] of reader.header.tensors) {
        const target = targets.get(name);
        if (!target) {
          if (!IGNORED.test(name)) unexpected.push(name);
        } else if (target.shape.join(',') !== at.shape.join(',')) wrongShape.push(`${name}: file [${at.shape}] vs model [${target.shape}]`);
        else covered.add(canonical.get(name)!);
      }
    }
    const missing = (await module.namedParameters()).map((p) => p.name).filter((name) => !covered.has(name));
    if (unexpected.length || wrongShape.length || missing.length) {
      const parts = [
        missing.length ? `missing from the file: ${missing.join(', ')}` : '',
        unexpected.length ? `not in the model: ${unexpected.join(', ')}` : '',
        wrongShape.length ? `shape mismatch: ${wrongShape.join('; ')}` : '',
      ].filter(Boolean);
      throw new DataError(`${path} does not fit the model:\n  ${parts.join('\n  ')}`);
    }
    await noGrad(async () => {
      for (const reader of readers) {
        for (const [name, at] of reader.header.tensors) {
          const target = targets.get(name);
          if (target) await readTensorInto(target, reader.path, at);
        }
      }
    });
  } finally {
    for (const reader of readers) reader.close();
  }
}

/** The dtype of the first floating tensor of a weights file or folder (the checkpoint's "as stored"). */
export function storedFloatDtype(path: string): DType | undefined {
  for (const file of existsSync(path) && statSync(path).isDirectory() ? weightFiles(path) : [path]) {
    const reader = new SafetensorsReader(file);
    try {
      for (const at of reader.header.tensors.values()) if (FLOAT_DTYPES.has(at.dtype)) return at.dtype;
    } finally {
      reader.close();
    }
  }
  return undefined;
}

/**
 * A parameter on the CPU in the file's dtype is read into directly; otherwise the bytes go through one
 * staging tensor in the file's dtype and copy_ converts (bf16 rounding to nearest even) and moves them.
 */
async function readTensorInto(target: Tensor, file: string, at: SafetensorsLocation): Promise<void> {
  if (target.device === 'cpu' && target.dtype === at.dtype) {
    await target.readFile_(file, at.offset);
    return;
  }
  await scope(async () => target.copy_(await (await empty(at.shape, { dtype: at.dtype })).readFile_(file, at.offset)));
}

/**
 * Writes HF-style weights into `dir` (created if needed): HF names, tied weights once, in `dtype`;
 * one `model.safetensors`, or shards of at most `maxShardSize` (HF's default "5GB") with
 * `model.safetensors.index.json`; and `config.json`. Each file is written atomically; weight files of
 * an earlier export in the other layout are removed.
 */
export function exportSafetensors(module: ScriptModule, dir: string, config: object, dtype?: DType, maxShardSize: string | number = '5GB'): Promise<void> {
  return scope(() => exportInto(module, dir, config, dtype, parseShardSize(maxShardSize)));
}

async function exportInto(module: ScriptModule, dir: string, config: object, dtype: DType | undefined, maxBytes: number): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const parameters = await module.namedParameters();
  const sizes = parameters.map((p) => p.tensor.numel * DTYPE_BYTES[dtype ?? p.tensor.dtype]);
  const shards = planShards(sizes, maxBytes);
  const names = shards.length === 1 ? [SINGLE_FILE] : shards.map((_, k) => shardName(k + 1, shards.length));
  const weightMap: Record<string, string> = {};
  for (const [k, shard] of shards.entries()) {
    // A shard's tensors (converted when a dtype is asked for) exist only while it is written.
    await scope(async () => {
      const tensors = new Map<string, Tensor>();
      for (const i of shard) {
        const p = parameters[i];
        tensors.set(p.name, dtype && dtype !== p.tensor.dtype ? await noGrad(() => p.tensor.to(dtype)) : await p.tensor.detach());
        weightMap[p.name] = names[k];
      }
      await writeSafetensors(join(dir, names[k]), tensors, { format: 'pt' });
    });
  }
  if (shards.length > 1) {
    const index = { metadata: { total_size: sizes.reduce((a, b) => a + b, 0) }, weight_map: weightMap };
    writeFileAtomic(join(dir, INDEX_FILE), `${JSON.stringify(index, null, 2)}\n`);
  }
  // Weight files of an earlier export that this one does not list would mislead a reader.
  const listed = new Set(shards.length > 1 ? [...names, INDEX_FILE] : names);
  const weightFile = (f: string) => f === SINGLE_FILE || f === INDEX_FILE || /^model-\d{5}-of-\d{5}\.safetensors$/.test(f);
  for (const f of readdirSync(dir)) if (weightFile(f) && !listed.has(f)) rmSync(join(dir, f), { force: true });
  // torch_dtype for transformers 4.x, dtype for ≥ 4.56: the dtype the weights are written in.
  const written = dtype ?? parameters.find((p) => FLOAT_DTYPES.has(p.tensor.dtype))?.tensor.dtype;
  writeFileAtomic(join(dir, 'config.json'), `${JSON.stringify({ ...config, ...(written ? { torch_dtype: written, dtype: written } : {}) }, null, 2)}\n`);
}
