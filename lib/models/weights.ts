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
export function loadSafetensorsInto(module: ScriptModule, path: string, part: WeightsPart = {}): Promise<void> {
  // Parameter handles and converted copies live only for this load.
  return scope(() => loadInto(module, path, part));
}

/** Which of a module's tensors a file holds, and how the file names them (an adapter file, a base checkpoint). */
export interface WeightsPart {
  /** The parameters (and buffers) the file is expected to cover; default all. */
  covers?: (name: string) => boolean;
  /** The file may also hold the model's tensors that `covers` leaves out (one part of a model is loaded at a time). */
  partial?: boolean;
  /** The model's name of a file's tensor name (e.g. without PEFT's `base_model.model.`). */
  rename?: (fileName: string) => string;
  /** The files to read when `path` is a folder; default its model weights (one file or shards). */
  files?: string[];
}

async function loadInto(module: ScriptModule, path: string, part: WeightsPart): Promise<void> {
  const readers: SafetensorsReader[] = [];
  const covers = part.covers ?? (() => true);
  const rename = part.rename ?? ((name: string) => name);
  try {
    const files = part.files ?? (existsSync(path) && statSync(path).isDirectory() ? weightFiles(path) : [path]);
    for (const file of files) readers.push(new SafetensorsReader(file));
    const targets = new Map<string, Tensor>();
    const canonical = new Map<string, string>();
    // The model's tensors this load does not cover: a file may hold them (a part of a model is loaded).
    const elsewhere = new Set<string>();
    for (const p of [...(await module.namedParameters()), ...(await module.namedBuffers())]) {
      if (!covers(p.name)) {
        for (const name of [p.name, ...p.aliases]) elsewhere.add(name);
        continue;
      }
      for (const name of [p.name, ...p.aliases]) {
        targets.set(name, p.tensor);
        canonical.set(name, p.name);
      }
    }
    const unexpected: string[] = [];
    const wrongShape: string[] = [];
    const covered = new Set<string>();
    for (const reader of readers) {
      for (const [fileName, at] of reader.header.tensors) {
        const name = rename(fileName);
        const target = targets.get(name);
        if (!target) {
          if (!IGNORED.test(name) && !(part.partial && elsewhere.has(name))) unexpected.push(fileName);
        } else if (target.shape.join(',') !== at.shape.join(',')) wrongShape.push(`${name}: file [${at.shape}] vs model [${target.shape}]`);
        else covered.add(canonical.get(name)!);
      }
    }
    const missing = (await module.namedParameters()).map((p) => p.name).filter((name) => covers(name) && !covered.has(name));
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
        for (const [fileName, at] of reader.header.tensors) {
          const target = targets.get(rename(fileName));
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
export async function readTensorInto(target: Tensor, file: string, at: SafetensorsLocation): Promise<void> {
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
export function exportSafetensors(module: ScriptModule, dir: string, config: object, dtype?: DType, maxShardSize: string | number = '5GB', view: ExportView = {}): Promise<void> {
  return scope(() => exportInto(module, dir, config, dtype, parseShardSize(maxShardSize), view));
}

/** What an export writes of a module: some of its parameters, each possibly transformed (LoRA merged in). */
export interface ExportView {
  includes?: (name: string) => boolean;
  /** The tensor to write for a parameter (made while its shard is written, disposed after). */
  value?: (name: string, tensor: Tensor) => Promise<Tensor>;
  /** The files' plan: the parameter names of each shard (default: shards of at most maxShardSize). */
  shards?: string[][];
  /** Runs `write` for shard k (ZeRO-3 gathers a unit's parameters around it). */
  around?: (k: number, write: () => Promise<void>) => Promise<void>;
  /** false: walk the plan (and `around`) without writing anything (the other ranks under ZeRO-3). */
  writes?: boolean;
}

async function exportInto(module: ScriptModule, dir: string, config: object, dtype: DType | undefined, maxBytes: number, view: ExportView): Promise<void> {
  if (view.writes ?? true) mkdirSync(dir, { recursive: true });
  const parameters = (await module.namedParameters()).filter((p) => view.includes?.(p.name) ?? true);
  const writes = view.writes ?? true;
  const byName = new Map(parameters.map((p, i) => [p.name, i]));
  const shards = view.shards
    ? view.shards.map((names) => names.map((n) => byName.get(n)!))
    : planShards(parameters.map((p) => p.tensor.numel * DTYPE_BYTES[dtype ?? p.tensor.dtype]), maxBytes);
  const names = shards.length === 1 ? [SINGLE_FILE] : shards.map((_, k) => shardName(k + 1, shards.length));
  const weightMap: Record<string, string> = {};
  let totalBytes = 0;
  for (const [k, shard] of shards.entries()) {
    // A shard's tensors (converted when a dtype is asked for) exist only while it is written.
    const write = () => scope(async () => {
      if (!writes) return;
      const tensors = new Map<string, Tensor>();
      for (const i of shard) {
        const p = parameters[i];
        const value = view.value ? await noGrad(() => view.value!(p.name, p.tensor)) : p.tensor;
        tensors.set(p.name, dtype && dtype !== value.dtype ? await noGrad(() => value.to(dtype)) : await value.detach());
        weightMap[p.name] = names[k];
        totalBytes += p.tensor.numel * DTYPE_BYTES[dtype ?? p.tensor.dtype];
      }
      await writeSafetensors(join(dir, names[k]), tensors, { format: 'pt' });
    });
    await (view.around ? view.around(k, write) : write());
  }
  if (!writes) return;
  if (shards.length > 1) {
    const index = { metadata: { total_size: totalBytes }, weight_map: weightMap };
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
