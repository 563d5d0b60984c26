import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DataError } from '../errors';
import { noGrad } from '../grad-mode';
import type { DType } from '../native/binding';
import type { Tensor } from '../tensor';
import { entryToTensor, readSafetensors, writeSafetensors } from './safetensors';
import type { ScriptModule } from './script-module';
import { writeFileAtomic } from '../atomic-file';
import { scope } from '../scope';

/**
 * Copies a safetensors file into a module's parameters (and buffers), strictly: every tensor in
 * the file must name a parameter (or one of its tied aliases) with the same shape, and every
 * parameter must be covered. A mismatch is a DataError listing the whole diff.
 */
export function loadSafetensorsInto(module: ScriptModule, file: string): Promise<void> {
  // Parameter handles and converted copies live only for this load.
  return scope(() => loadInto(module, file));
}

async function loadInto(module: ScriptModule, file: string): Promise<void> {
  const { tensors } = readSafetensors(file);
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
  for (const [name, entry] of tensors) {
    const target = targets.get(name);
    if (!target) unexpected.push(name);
    else if (target.shape.join(',') !== entry.shape.join(',')) wrongShape.push(`${name}: file [${entry.shape}] vs model [${target.shape}]`);
    else covered.add(canonical.get(name)!);
  }
  const parameters = (await module.namedParameters()).map((p) => p.name);
  const missing = parameters.filter((name) => !covered.has(name));
  if (unexpected.length || wrongShape.length || missing.length) {
    const parts = [
      missing.length ? `missing from the file: ${missing.join(', ')}` : '',
      unexpected.length ? `not in the model: ${unexpected.join(', ')}` : '',
      wrongShape.length ? `shape mismatch: ${wrongShape.join('; ')}` : '',
    ].filter(Boolean);
    throw new DataError(`${file} does not fit the model:\n  ${parts.join('\n  ')}`);
  }
  await noGrad(async () => {
    for (const [name, entry] of tensors) {
      const source = entryToTensor(entry);
      const target = targets.get(name)!;
      const converted = await source.to({ device: target.device, dtype: target.dtype });
      await target.copy_(converted);
      source.dispose();
      converted.dispose();
    }
  });
}

/**
 * Writes HF-style weights: `model.safetensors` (HF names, tied weights once, in `dtype`) and
 * `config.json`, into `dir` (created if needed). Each file is written atomically.
 */
export function exportSafetensors(module: ScriptModule, dir: string, config: object, dtype?: DType): Promise<void> {
  return scope(() => exportInto(module, dir, config, dtype));
}

async function exportInto(module: ScriptModule, dir: string, config: object, dtype?: DType): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const tensors = new Map<string, Tensor>();
  const owned: Tensor[] = [];
  for (const p of await module.namedParameters()) {
    const value = dtype && dtype !== p.tensor.dtype ? await noGrad(() => p.tensor.to(dtype)) : p.tensor.detach();
    owned.push(value);
    tensors.set(p.name, value);
  }
  try {
    await writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  } finally {
    for (const t of owned) t.dispose();
  }
  writeFileAtomic(join(dir, 'config.json'), `${JSON.stringify({ ...config, ...(dtype ? { torch_dtype: dtype } : {}) }, null, 2)}\n`);
}
