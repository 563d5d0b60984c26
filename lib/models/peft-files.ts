import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../atomic-file';
import { DataError } from '../errors';
import { scope } from '../scope';
import type { Tensor } from '../tensor';
import { adapterParameterNames, isAdapterParameter, layerNames, loraScaling, type AdapterInfo, type LoraOptions } from './lora';
import { writeSafetensors } from './safetensors';
import type { ScriptModule } from './script-module';
import { loadSafetensorsInto, type ExportView } from './weights';

/** PEFT's files (peft/utils/constants.py): the adapter's config and weights. */
export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';
/** PEFT saves a causal LM's adapter under PeftModelForCausalLM → LoraModel → the HF model. */
const PEFT_PREFIX = 'base_model.model.';

export const hasAdapterFiles = (dir: string) => existsSync(join(dir, ADAPTER_CONFIG)) && existsSync(join(dir, ADAPTER_WEIGHTS));

/**
 * adapter_config.json as PEFT's LoraConfig.save_pretrained writes it (the fields every PEFT release
 * since 0.9 reads; later ones add fields with defaults). target_modules lists the layer names that
 * were adapted ('all-linear' is expanded, as PEFT expands it before saving).
 */
export function adapterConfigJson(adapters: AdapterInfo, baseModel: string | null): Record<string, unknown> {
  const o = adapters.options;
  const targets = typeof o.targetModules === 'string' && o.targetModules !== 'all-linear'
    ? o.targetModules
    : layerNames(adapters.modules).sort();
  return {
    alpha_pattern: {}, auto_mapping: null, base_model_name_or_path: baseModel, bias: 'none', fan_in_fan_out: adapters.fanInFanOut,
    inference_mode: true, init_lora_weights: true, layers_pattern: null, layers_to_transform: null, loftq_config: {},
    lora_alpha: o.alpha, lora_dropout: o.dropout, megatron_config: null, megatron_core: 'megatron.core', modules_to_save: null,
    peft_type: 'LORA', r: o.r, rank_pattern: {}, revision: null, target_modules: targets, task_type: 'CAUSAL_LM',
    use_dora: false, use_rslora: o.useRslora,
  };
}

/** Writes adapter_config.json and adapter_model.safetensors (PEFT's key names, the adapters' dtype). */
export async function writeAdapterFiles(module: ScriptModule, adapters: AdapterInfo, dir: string, baseModel: string | null): Promise<void> {
  mkdirSync(dir, { recursive: true });
  await scope(async () => {
    const tensors = new Map<string, Tensor>();
    const byName = new Map((await module.namedParameters()).map((p) => [p.name, p.tensor]));
    for (const path of adapters.modules) {
      for (const name of adapterParameterNames(path)) tensors.set(`${PEFT_PREFIX}${name}`, await byName.get(name)!.detach());
    }
    await writeSafetensors(join(dir, ADAPTER_WEIGHTS), tensors, { format: 'pt' });
  });
  writeFileAtomic(join(dir, ADAPTER_CONFIG), `${JSON.stringify(adapterConfigJson(adapters, baseModel), null, 2)}\n`);
}

/**
 * The LoRA options of a PEFT adapter folder; what torch-dpo cannot reproduce (DoRA, biases, per-layer
 * ranks, modules_to_save, layer subsets) is refused by name.
 */
export function readAdapterOptions(dir: string): LoraOptions {
  const file = join(dir, ADAPTER_CONFIG);
  if (!existsSync(file)) throw new DataError(`${dir}: no ${ADAPTER_CONFIG} (not a PEFT adapter folder)`);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new DataError(`${file}: not valid JSON (${(err as Error).message})`);
  }
  const refuse = (field: string, why: string) => {
    throw new DataError(`${file}: ${field} ${JSON.stringify(raw[field])} is not supported (${why})`);
  };
  if (raw.peft_type !== 'LORA') refuse('peft_type', 'only LORA adapters load');
  if (raw.use_dora === true) refuse('use_dora', 'DoRA adapters are not implemented');
  if (raw.bias !== undefined && raw.bias !== 'none') refuse('bias', 'only bias "none": the layer biases stay frozen');
  for (const field of ['rank_pattern', 'alpha_pattern'] as const) {
    if (raw[field] && Object.keys(raw[field] as object).length > 0) refuse(field, 'one rank and alpha for every layer');
  }
  for (const field of ['modules_to_save', 'layers_to_transform', 'target_parameters', 'trainable_token_indices'] as const) {
    const v = raw[field];
    if (v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0)) refuse(field, 'only target_modules adapters');
  }
  const r = Number(raw.r ?? 8);
  const alpha = Number(raw.lora_alpha ?? 8);
  const targets = raw.target_modules;
  if (!(Number.isInteger(r) && r > 0) || !Number.isFinite(alpha)) refuse('r', 'r must be a positive integer and lora_alpha a number');
  if (!(typeof targets === 'string' || (Array.isArray(targets) && targets.every((t) => typeof t === 'string')))) refuse('target_modules', 'a list of names or a regular expression');
  return { r, alpha, dropout: Number(raw.lora_dropout ?? 0), targetModules: targets as string[] | string, useRslora: raw.use_rslora === true };
}

/** Reads adapter_model.safetensors into the model's adapters, strictly (every adapter, nothing else). */
export function loadAdapterWeights(module: ScriptModule, dir: string): Promise<void> {
  const file = join(dir, ADAPTER_WEIGHTS);
  if (!existsSync(file)) throw new DataError(`${dir}: no ${ADAPTER_WEIGHTS}`);
  return loadSafetensorsInto(module, dir, {
    files: [file], covers: isAdapterParameter,
    // PEFT ≤ 0.6 and some tools keep the adapter name ("lora_A.default.weight").
    rename: (name) => (name.startsWith(PEFT_PREFIX) ? name.slice(PEFT_PREFIX.length) : name).replace(/\.lora_([AB])\.default\.weight$/, '.lora_$1.weight'),
  });
}

/**
 * The merged model as an export sees it (torch-dpo export --merge): each adapted weight is
 * W + scaling · B·A (transposed for Conv1D), computed in the adapters' dtype and rounded once to W's,
 * as PEFT's merge_and_unload; the lora_* tensors are left out.
 */
export function mergedView(module: ScriptModule, adapters: AdapterInfo): ExportView {
  const adapted = new Set(adapters.modules.map((path) => `${path}.weight`));
  const scaling = loraScaling(adapters.options);
  return {
    includes: (name) => !isAdapterParameter(name),
    async value(name, weight) {
      if (!adapted.has(name)) return weight;
      // Looked up per weight: handles made here end with the shard being written.
      const byName = new Map((await module.namedParameters()).map((p) => [p.name, p.tensor]));
      const [a, b] = adapterParameterNames(name.slice(0, -'.weight'.length)).map((n) => byName.get(n)!);
      const delta = await (await b.matmul(a)).mul(scaling);
      const oriented = adapters.fanInFanOut ? await delta.transpose(0, 1) : delta;
      return (await (await weight.to(a.dtype)).add(oriented)).to(weight.dtype);
    },
  };
}
