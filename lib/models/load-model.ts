import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ConfigError, DataError } from '../errors';
import { noGrad } from '../grad-mode';
import type { DType } from '../native/binding';
import { scope } from '../scope';
import { Tensor } from '../tensor';
import { CausalLM, createModel, freezeBase, type ModelInfo } from './causal-lm';
import { ScriptModule } from './script-module';
import { bakedDevices, bakedFloatDtypes } from './traced-graph';
import { FLOAT_DTYPES } from '../dtypes';
import { storedFloatDtype } from './weights';
import { ARCHITECTURES } from './architectures';
import { addTracedAdapters } from './traced-lora';
import type { LoraOptions } from './lora';
import { hasSafetensorsWeights, weightFiles } from './weight-files';

export interface LoadModelOptions {
  device?: string;
  /** Parameter dtype; default: as stored. */
  dtype?: DType;
  /** LoRA adapters on the built-in architecture (a folder's safetensors are used even beside a model.pt). */
  lora?: LoraOptions | null;
  /**
   * A folder with safetensors of a built-in architecture loads into it even beside a model.pt (what
   * generation wants: the built-in architectures keep a KV cache, a traced graph cannot).
   */
  preferBuiltin?: boolean;
}

/**
 * Loads a model folder in HF layout (config.json, tokenizer.json, tokenizer_config.json, and
 * model.pt and/or safetensors weights: model.safetensors or shards with model.safetensors.index.json)
 * or a single TorchScript file. TorchScript is preferred; a folder with only safetensors builds the
 * built-in architecture of its model_type and reads the weights into it tensor by tensor.
 */
export async function loadModel(path: string, options: LoadModelOptions = {}): Promise<CausalLM> {
  if (!existsSync(path)) throw new DataError(`${path}: no such file or folder`);
  const isDir = statSync(path).isDirectory();
  const dir = isDir ? path : dirname(path);
  const configFile = join(dir, 'config.json');
  const config = existsSync(configFile) ? readJson(configFile) : {};
  if (isDir && !existsSync(configFile)) throw new DataError(`${dir}: config.json is missing`);
  const tokenizerFile = join(dir, 'tokenizer.json');
  if (isDir && !existsSync(tokenizerFile)) throw new DataError(`${dir}: tokenizer.json is missing (the model folder needs its tokenizer)`);

  const scriptFile = isDir ? join(dir, 'model.pt') : path;
  // Under LoRA a folder's safetensors go into the built-in architecture (it also checkpoints layers).
  const traced = existsSync(scriptFile) && !((options.lora || options.preferBuiltin) && isDir && hasSafetensorsWeights(dir) && isBuiltinArchitecture(config.model_type));
  const model = traced ? await loadTorchScript(scriptFile, config, options) : await loadBuiltin(dir, config, options);
  try {
    await checkVocabulary(model, isDir ? tokenizerFile : undefined);
  } catch (err) {
    model.dispose();
    throw err;
  }
  return model;
}

async function loadTorchScript(scriptFile: string, config: Record<string, unknown>, options: LoadModelOptions): Promise<CausalLM> {
  const module = await ScriptModule.load(scriptFile, { device: options.device });
  try {
    const described = await module.describe();
    const forward = described.methods.find((m) => m.name === 'forward');
    if (!forward) throw new DataError(`${scriptFile}: the TorchScript module has no forward method`);
    if (forward.args.length < 1 || forward.args.length > 3) {
      throw new DataError(`${scriptFile}: forward(${forward.args.join(', ')}) is not (input_ids[, attention_mask[, position_ids]])`);
    }
    const warnings: string[] = [];
    const baked = bakedDevices(forward.graph);
    const wanted = (options.device ?? 'cpu').split(':')[0];
    if (baked.some((d) => d !== wanted)) {
      warnings.push(`${scriptFile} was traced with device constants on ${baked.join(', ')} but is loaded on ${options.device ?? 'cpu'}: parts of the graph may run on the wrong device; trace it on ${wanted}`);
    }
    const cast = options.dtype ? await bakedCast(module, forward.graph, options.dtype) : null;
    if (cast?.downcast) throw new ConfigError(`${scriptFile}: dtype ${options.dtype} cannot be applied: ${downcastFix(cast, options.dtype!, config)}`);
    if (cast) warnings.push(`${scriptFile}: cast to ${options.dtype}, but ${cast.what}: those ops still compute in ${cast.traced}`);
    if (!described.training) warnings.push(`${scriptFile} was saved in eval mode: a traced graph keeps that mode, so dropout stays off while training`);
    const info: ModelInfo = {
      source: 'torchscript', path: scriptFile, architecture: String((config.architectures as string[] | undefined)?.[0] ?? described.type),
      vocabSize: Number(config.vocab_size ?? 0), forwardArgs: forward.args,
      hasForwardHidden: described.methods.some((m) => m.name === 'forward_hidden'), warnings,
      maxPositions: Number(config.n_positions ?? config.max_position_embeddings ?? Number.POSITIVE_INFINITY),
    };
    const model = new CausalLM(module, config, info);
    if (options.dtype) await model.to({ dtype: options.dtype });
    // Before anything runs the module: the adapters redirect calls in its graphs.
    if (options.lora) {
      model.info.adapters = await addTracedAdapters(module, options.lora, String(config.model_type ?? ''), scriptFile);
      await freezeBase(model);
    }
    return model;
  } catch (err) {
    module.dispose();
    throw err;
  }
}

const isBuiltinArchitecture = (modelType: unknown) => typeof modelType === 'string' && modelType in ARCHITECTURES;

const PRECISION: Partial<Record<DType, number>> = { float16: 1, bfloat16: 1, float32: 2, float64: 3 };

interface BakedCast {
  /** The dtype the model was traced in (its parameters' dtype). */
  traced: DType;
  /** "the model was traced in float32 and the trace baked float32 into 19 op(s) (first: …)". */
  what: string;
  downcast: boolean;
}

/**
 * A trace records the dtype of every x.to(dtype) / full_like(..., dtype) it saw. Cast below the dtype
 * it was traced in (fp32 → bf16), such a graph sends fp32 activations into bf16 matmuls and fails
 * deep in the interpreter; cast above it (fp32 → fp64, for exact references) the baked parts promote
 * and run, in the old precision. Constants of a model traced in the target dtype are its intended
 * casts (fp32 norms in a bf16 trace). Null: nothing baked stands in the way.
 */
async function bakedCast(module: ScriptModule, graph: string, dtype: DType): Promise<BakedCast | null> {
  const traced = await scope(async () => (await module.namedParameters()).map((p) => p.tensor.dtype).find((d) => FLOAT_DTYPES.has(d)));
  const baked = bakedFloatDtypes(graph);
  if (!traced || traced === dtype || baked.length === 0) return null;
  const first = baked.find((b) => b.dtype === traced) ?? baked[0];
  const what = `the model was traced in ${traced} and the trace baked ${first.dtype} into ${baked.length} op(s) (first: ${first.node})`;
  return { traced, what, downcast: (PRECISION[dtype] ?? 0) < (PRECISION[traced] ?? 0) };
}

/** Why a loaded model cannot run in `dtype` (a traced export cast below its traced dtype, with the fix), or null. */
export async function bakedDowncastProblem(model: CausalLM, dtype: DType): Promise<string | null> {
  if (model.info.source !== 'torchscript') return null;
  const forward = (await model.module.describe()).methods.find((m) => m.name === 'forward');
  const cast = forward ? await bakedCast(model.module, forward.graph, dtype) : null;
  return cast?.downcast ? downcastFix(cast, dtype, model.config) : null;
}

/** What a down-cast trace baked, and the two ways out. */
function downcastFix(cast: BakedCast, dtype: DType, config: Record<string, unknown>): string {
  const builtin = config.model_type ? `, or delete model.pt so the folder's safetensors load into the built-in '${String(config.model_type)}' architecture` : '';
  return `${cast.what}; trace it in ${dtype} (model.to(torch.${dtype}) before torch.jit.trace)${builtin}`;
}

async function loadBuiltin(dir: string, config: Record<string, unknown>, options: LoadModelOptions): Promise<CausalLM> {
  if (!hasSafetensorsWeights(dir)) weightFiles(dir); // throws: says what is there instead (pickles, nothing)
  const stored = storedFloatDtype(dir);
  const dtype = options.dtype ?? stored;
  // Built in its final dtype on its final device, uninitialised: the checkpoint's bytes go straight in.
  const model = await createModel(String(config.model_type ?? ''), config, { init: false, dtype, device: options.device, lora: options.lora });
  try {
    await model.loadSafetensors(dir);
  } catch (err) {
    model.dispose();
    throw err;
  }
  model.info.path = dir;
  // Under LoRA only the adapters train, and they are fp32.
  if (!options.dtype && !options.lora && (stored === 'bfloat16' || stored === 'float16')) {
    model.info.warnings.push(`${dir}: weights loaded as stored, in ${stored}; training in pure ${stored} loses small updates (set dtype: float32 to train in fp32)`);
  }
  return model;
}

function readJson(file: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new DataError(`${file}: ${(err as Error).message}`);
  }
}

/** Tokens the tokenizer can emit: its model vocabulary plus added tokens beyond it. */
export function tokenizerVocabSize(file: string): number {
  const tokenizer = readJson(file) as { model?: { vocab?: Record<string, number> | [string, number][] }; added_tokens?: { id: number }[] };
  const vocab = tokenizer.model?.vocab;
  if (!vocab) throw new DataError(`${file}: no model.vocab: not a Hugging Face tokenizer.json`);
  const ids = Array.isArray(vocab) ? vocab.map((_, i) => i) : Object.values(vocab);
  for (const t of tokenizer.added_tokens ?? []) ids.push(t.id);
  return Math.max(...ids) + 1;
}

/** Probes one forward pass: logits must be [1,2,vocab_size], and the tokenizer must fit inside. */
function checkVocabulary(model: CausalLM, tokenizerFile?: string): Promise<void> {
  // The probe's inputs and logits end with it.
  return scope(() => probeVocabulary(model, tokenizerFile));
}

async function probeVocabulary(model: CausalLM, tokenizerFile?: string): Promise<void> {
  const device = model.module.device;
  const ids = await Tensor.from([[0, 0]], { dtype: 'int64' }).to(device);
  const mask = await Tensor.from([[1, 1]], { dtype: 'int64' }).to(device);
  const logits = await noGrad(() => model.forward(ids, mask));
  const vocab = logits.shape[logits.shape.length - 1];
  const where = model.info.path ?? model.info.architecture;
  if (model.info.vocabSize && vocab !== model.info.vocabSize) {
    throw new DataError(`${where}: the model's logits have ${vocab} entries but config.json says vocab_size ${model.info.vocabSize}`);
  }
  model.info.vocabSize = vocab;
  if (tokenizerFile) {
    const tokens = tokenizerVocabSize(tokenizerFile);
    if (tokens > vocab) throw new DataError(`${tokenizerFile}: the tokenizer has ${tokens} tokens but the model's vocabulary is ${vocab}`);
  }
}
