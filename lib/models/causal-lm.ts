import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ConfigError, DataError } from '../errors';
import { noGrad } from '../grad-mode';
import { scope } from '../scope';
import type { DType } from '../native/binding';
import { Tensor } from '../tensor';
import { arange } from '../tensor-functions';
import { createGpt2 } from './gpt2';
import { createLlama } from './llama';
import { ScriptModule, type ModuleValue } from './script-module';
import { exportSafetensors, loadSafetensorsInto } from './weights';
import { hasSafetensorsWeights, weightFiles } from './weight-files';
import { disposeSymbol } from '../dispose-symbols';

export interface ModelInfo {
  source: 'torchscript' | 'builtin';
  /** The file or folder it came from (absent for a fresh built-in model). */
  path?: string;
  architecture: string;
  vocabSize: number;
  /** The forward's argument names after self, e.g. ['input_ids', 'attention_mask']. */
  forwardArgs: string[];
  hasForwardHidden: boolean;
  warnings: string[];
}

/** A causal language model: forward(input_ids, attention_mask) → logits [N,T,V]. */
export class CausalLM {
  constructor(
    readonly module: ScriptModule,
    readonly config: Record<string, unknown>,
    readonly info: ModelInfo,
  ) {}

  /** Logits; anything else the module returns (an HF export's past_key_values, hidden states) is disposed at once. */
  forward(inputIds: Tensor, attentionMask: Tensor): Promise<Tensor> {
    return scope(async () => logitsOf(await this.module.run('forward', await this.forwardInputs(inputIds, attentionMask))));
  }

  /** Last hidden states [N,T,H] (built-in architectures), for the fused-linear loss with lm_head.weight. */
  async forwardHidden(inputIds: Tensor, attentionMask: Tensor): Promise<Tensor> {
    if (!this.info.hasForwardHidden) throw new ConfigError(`${this.info.architecture} from ${this.info.path ?? 'memory'} has no forward_hidden method`);
    return scope(async () => (await this.module.run('forward_hidden', [inputIds, attentionMask])) as Tensor);
  }

  /** The output projection [V,H] (the tied embedding for GPT-2), for the fused-linear loss. */
  async lmHeadWeight(): Promise<Tensor | null> {
    // The handles of the other parameters were made for this search only: the scope releases them.
    return scope(async () => (await this.module.namedParameters()).find((p) => p.name === 'lm_head.weight' || p.aliases.includes('lm_head.weight'))?.tensor ?? null);
  }

  train(on = true) { return this.module.train(on); }
  eval() { return this.module.eval(); }
  freeze() { return this.module.freeze(); }
  parameters() { return this.module.parameters(); }
  namedParameters() { return this.module.namedParameters(); }
  to(target: { device?: string; dtype?: DType }) { return this.module.to(target); }
  save(path: string) { return this.module.save(path); }
  /** Weights from a safetensors file or an HF model folder (single file or shards), strictly. */
  loadSafetensors(path: string) { return loadSafetensorsInto(this.module, path); }
  /** HF layout into `dir`: model.safetensors, or shards of at most maxShardSize (default "5GB") with the index; config.json. */
  exportSafetensors(dir: string, options: { dtype?: DType; maxShardSize?: string | number } = {}) {
    return exportSafetensors(this.module, dir, this.config, options.dtype, options.maxShardSize);
  }

  /** An independent frozen copy in eval mode: the DPO reference model. */
  async referenceCopy(): Promise<CausalLM> {
    const copy = await this.module.deepCopy();
    await copy.freeze();
    await copy.eval();
    return new CausalLM(copy, this.config, { ...this.info });
  }

  dispose(): void { this.module.dispose(); }
  [disposeSymbol](): void { this.dispose(); }

  private async forwardInputs(inputIds: Tensor, attentionMask: Tensor): Promise<Tensor[]> {
    const args = this.info.forwardArgs;
    if (args.length === 1) return [inputIds];
    if (args.length === 2) return [inputIds, attentionMask];
    // position_ids: 0, 1, 2, … along each row (right padding).
    const positions = await (await arange(0, inputIds.shape[1], 1, { device: inputIds.device })).expand(inputIds.shape);
    return [inputIds, attentionMask, positions];
  }
}

function logitsOf(out: ModuleValue): Tensor {
  if (out instanceof Tensor) return out;
  if (Array.isArray(out) && out[0] instanceof Tensor) return out[0];
  if (out && typeof out === 'object' && !Array.isArray(out) && (out as Record<string, ModuleValue>).logits instanceof Tensor) {
    return (out as Record<string, ModuleValue>).logits as Tensor;
  }
  throw new DataError('the model returned neither logits, a tuple starting with logits, nor a dict with "logits"');
}

/** Device types a traced graph hard-codes (e.g. torch.arange(..., device=cpu) recorded as a constant). */
export function bakedDevices(graph: string): string[] {
  const found = new Set<string>();
  for (const m of graph.matchAll(/Device = prim::Constant\[value="([a-z]+)/g)) found.add(m[1]);
  return [...found];
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

const ARCHITECTURES: Record<string, (config: unknown) => Promise<{ module: ScriptModule; config: object }>> = {
  gpt2: createGpt2,
  llama: createLlama,
};

/** A fresh built-in model ('gpt2' or 'llama') with HF's initialiser. */
export async function createModel(architecture: string, config: Record<string, unknown> = {}): Promise<CausalLM> {
  const build = ARCHITECTURES[architecture];
  if (!build) throw new ConfigError(`unknown architecture '${architecture}' (built in: ${Object.keys(ARCHITECTURES).join(', ')})`);
  const { module, config: full } = await build(config);
  const info: ModelInfo = {
    source: 'builtin', architecture, vocabSize: Number((full as { vocab_size: number }).vocab_size),
    forwardArgs: ['input_ids', 'attention_mask'], hasForwardHidden: true, warnings: [],
  };
  return new CausalLM(module, { model_type: architecture, ...full }, info);
}

/**
 * Loads a model folder in HF layout (config.json, tokenizer.json, tokenizer_config.json, and
 * model.pt and/or model.safetensors) or a single TorchScript file. TorchScript is preferred; a
 * folder with only safetensors builds the matching built-in architecture.
 */
export async function loadModel(path: string, options: { device?: string; dtype?: DType } = {}): Promise<CausalLM> {
  if (!existsSync(path)) throw new DataError(`${path}: no such file or folder`);
  const isDir = statSync(path).isDirectory();
  const dir = isDir ? path : dirname(path);
  const configFile = join(dir, 'config.json');
  const config = existsSync(configFile) ? readJson(configFile) : {};
  if (isDir && !existsSync(configFile)) throw new DataError(`${dir}: config.json is missing`);
  const tokenizerFile = join(dir, 'tokenizer.json');
  if (isDir && !existsSync(tokenizerFile)) throw new DataError(`${dir}: tokenizer.json is missing (the model folder needs its tokenizer)`);
  const warnings: string[] = [];

  let model: CausalLM;
  const scriptFile = isDir ? join(dir, 'model.pt') : path;
  if (existsSync(scriptFile)) {
    const module = await ScriptModule.load(scriptFile, { device: options.device });
    const described = await module.describe();
    const forward = described.methods.find((m) => m.name === 'forward');
    if (!forward) throw new DataError(`${scriptFile}: the TorchScript module has no forward method`);
    const baked = bakedDevices(forward.graph);
    const wanted = (options.device ?? 'cpu').split(':')[0];
    if (baked.some((d) => d !== wanted)) {
      warnings.push(`${scriptFile} was traced with device constants on ${baked.join(', ')} but is loaded on ${options.device ?? 'cpu'}: parts of the graph may run on the wrong device; trace it on ${wanted}`);
    }
    if (!described.training) warnings.push(`${scriptFile} was saved in eval mode: a traced graph keeps that mode, so dropout stays off while training`);
    const info: ModelInfo = {
      source: 'torchscript', path: scriptFile, architecture: String((config.architectures as string[] | undefined)?.[0] ?? described.type),
      vocabSize: Number(config.vocab_size ?? 0), forwardArgs: forward.args,
      hasForwardHidden: described.methods.some((m) => m.name === 'forward_hidden'), warnings,
    };
    if (forward.args.length < 1 || forward.args.length > 3) {
      throw new DataError(`${scriptFile}: forward(${forward.args.join(', ')}) is not (input_ids[, attention_mask[, position_ids]])`);
    }
    model = new CausalLM(module, config, info);
  } else {
    if (!hasSafetensorsWeights(dir)) weightFiles(dir); // throws: says what is there instead (pickles, nothing)
    model = await createModel(String(config.model_type ?? ''), config);
    await model.loadSafetensors(dir);
    Object.assign(model.info, { path: dir });
    if (options.device && options.device !== 'cpu') await model.to({ device: options.device });
  }
  if (options.dtype) await model.to({ dtype: options.dtype });
  await checkVocabulary(model, isDir ? tokenizerFile : undefined);
  return model;
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
