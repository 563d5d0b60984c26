import { dirname } from 'node:path';
import { ConfigError, DataError } from '../errors';
import { isGradEnabled } from '../grad-mode';
import { scope } from '../scope';
import type { DType } from '../native/binding';
import { Tensor } from '../tensor';
import { arange } from '../tensor-functions';
import { ARCHITECTURE_NAMES, ARCHITECTURES } from './architectures';
import { ScriptModule, type ModuleValue } from './script-module';
import { exportSafetensors, loadSafetensorsInto } from './weights';
import { copyCompanionFiles, hasSafetensorsWeights } from './weight-files';
import { isAdapterParameter, type AdapterInfo, type LoraOptions } from './lora';
import { ADAPTER_CONFIG, hasAdapterFiles, loadAdapterWeights, mergedView, writeAdapterFiles } from './peft-files';
import { disposeSymbol } from '../dispose-symbols';
import type { PackedTensors } from '../data/collate';
import type { ZeroLayers } from '../distributed/zero-layers';
import { isZeroCheckpoint, loadConsolidated } from '../distributed/zero-checkpoint';

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
  /** The longest sequence it takes (n_positions, max_position_embeddings; unbounded for dynamic rope). */
  maxPositions: number;
  /** Built-in architectures: forward_hidden_packed for packed rows (padding_free). */
  packs?: boolean;
  /** Built-in architectures: where the layers are, for activation checkpointing (`<prefix>.<i>`). */
  layers?: { prefix: string; count: number };
  /** LoRA adapters (built-in architectures built with `lora`): the base is frozen, only they train. */
  adapters?: AdapterInfo;
}

/** A causal language model: forward(input_ids, attention_mask) → logits [N,T,V]. */
export class CausalLM {
  /** Layers run one by one, checkpointed, while gradients are recorded (setGradientCheckpointing). */
  #checkpointing = false;
  /** The mode train()/eval() last set (built modules start in training mode). */
  #training = true;
  /** ZeRO-3: the layers' parameters, sharded at rest (setShardedLayers). */
  #zero: ZeroLayers | null = null;

  constructor(
    readonly module: ScriptModule,
    readonly config: Record<string, unknown>,
    readonly info: ModelInfo,
  ) {}

  /** Logits; anything else the module returns (an HF export's past_key_values, hidden states) is disposed at once. */
  forward(inputIds: Tensor, attentionMask: Tensor): Promise<Tensor> {
    if (this.checkpointsLayers()) return scope(async () => (await this.module.run('logits_from_hidden', [await this.hiddenByLayers('prepare_layers', [inputIds, attentionMask])])) as Tensor);
    return scope(async () => logitsOf(await this.module.run('forward', await this.forwardInputs(inputIds, attentionMask))));
  }

  /** Last hidden states [N,T,H] (built-in architectures), for the fused-linear loss with lm_head.weight. */
  async forwardHidden(inputIds: Tensor, attentionMask: Tensor): Promise<Tensor> {
    if (!this.info.hasForwardHidden) throw new ConfigError(`${this.info.architecture} from ${this.info.path ?? 'memory'} has no forward_hidden method`);
    if (this.checkpointsLayers()) return scope(() => this.hiddenByLayers('prepare_layers', [inputIds, attentionMask]));
    return scope(async () => (await this.module.run('forward_hidden', [inputIds, attentionMask])) as Tensor);
  }

  /**
   * Last hidden states [1,N,H] of a packed stream (padding_free; lib/data/packed-layout.ts):
   * positions per token, attention per segment. Built-in architectures (info.packs).
   */
  async forwardHiddenPacked(packed: PackedTensors): Promise<Tensor> {
    if (!this.info.packs) throw new ConfigError(`${this.info.architecture} from ${this.info.path ?? 'memory'} takes no packed rows (a traced export has a fixed signature)`);
    const inputs = [packed.inputIds, packed.positionIds, packed.segmentIndex, packed.segmentBranches, packed.segmentPositions, packed.tokenSlot];
    if (this.checkpointsLayers()) return scope(() => this.hiddenByLayers('prepare_packed_layers', inputs));
    return scope(async () => (await this.module.run('forward_hidden_packed', inputs)) as Tensor);
  }

  /**
   * Activation checkpointing per layer (gradient_checkpointing): while gradients are recorded, each
   * layer keeps only its input and is re-run in backward. Built-in architectures only: a traced
   * export is one graph that cannot be split into layers.
   */
  setGradientCheckpointing(on: boolean): void {
    if (on && !this.info.layers) {
      throw new ConfigError(`gradient_checkpointing: ${this.info.path ?? this.info.architecture} is a traced TorchScript export, which cannot be split into layers; load the folder's safetensors into a built-in architecture (delete model.pt) or turn it off`);
    }
    this.#checkpointing = on;
  }

  get gradientCheckpointing(): boolean { return this.#checkpointing; }

  /**
   * ZeRO-3: the layers' parameters are the units of `units` (unit i = layer i), sharded at rest; every
   * forward then runs layer by layer, each layer checkpointed and gathered only while it computes.
   */
  setShardedLayers(zero: ZeroLayers): void {
    this.#zero = zero;
  }

  /** ZeRO-3: the layers' units (null when the model holds all its weights). */
  get shardedLayers(): ZeroLayers | null { return this.#zero; }

  private checkpointsLayers(): boolean {
    return this.#zero !== null || (this.#checkpointing && isGradEnabled());
  }

  /** `prepare` (prepare_layers or prepare_packed_layers), each layer checkpointed, finish_layers. */
  private async hiddenByLayers(prepare: string, inputs: Tensor[]): Promise<Tensor> {
    const { prefix, count } = this.info.layers!;
    await this.#zero?.gatherOuter(); // ZeRO-3: the embeddings (and head) for this forward
    const [first, ...rest] = (await this.module.run(prepare, inputs)) as Tensor[];
    let x = first;
    const units = this.#zero?.units;
    for (let i = 0; i < count; i += 1) {
      const zero = units ? { units, unit: i, next: i + 1 < count ? i + 1 : -1, previous: i - 1 } : undefined;
      x = await this.module.runCheckpointed(`${prefix}.${i}`, 'forward', [x, ...rest], zero);
    }
    return (await this.module.run('finish_layers', [x])) as Tensor;
  }

  /** Logits of given last hidden states (lm_head): the logits path over packed streams. Built-in architectures. */
  logitsFromHidden(hidden: Tensor): Promise<Tensor> {
    return scope(async () => (await this.module.run('logits_from_hidden', [hidden])) as Tensor);
  }

  /** The output projection [V,H] (the tied embedding for GPT-2), for the fused-linear loss. */
  async lmHeadWeight(): Promise<Tensor | null> {
    // The handles of the other parameters were made for this search only: the scope releases them.
    return scope(async () => (await this.module.namedParameters()).find((p) => p.name === 'lm_head.weight' || p.aliases.includes('lm_head.weight'))?.tensor ?? null);
  }

  train(on = true) {
    this.#training = on;
    return this.module.train(on);
  }
  eval() { return this.train(false); }
  get training(): boolean { return this.#training; }
  freeze() { return this.module.freeze(); }
  parameters() { return this.module.parameters(); }
  namedParameters() { return this.module.namedParameters(); }
  to(target: { device?: string; dtype?: DType }) { return this.module.to(target); }
  save(path: string) { return this.module.save(path); }
  /** Weights from a safetensors file or an HF model folder (single file or shards), strictly (the adapters are not in it); ZeRO-3 unit by unit. */
  loadSafetensors(path: string) {
    if (this.#zero) return this.#zero.load(this, path);
    return loadSafetensorsInto(this.module, path, this.info.adapters ? { covers: (name) => !isAdapterParameter(name) } : {});
  }
  /**
   * HF layout into `dir`: model.safetensors, or shards of at most maxShardSize (default "5GB") with the
   * index; config.json (with the dtype written); generation_config.json and the tokenizer files of
   * the folder the model came from.
   */
  async exportSafetensors(dir: string, options: { dtype?: DType; maxShardSize?: string | number; writes?: boolean } = {}): Promise<void> {
    // With LoRA: the merged model (W + scaling·B·A), never the base beside lora_* tensors. ZeRO-3:
    // one file per layer, each gathered while it is written; every rank walks the plan (writes: rank 0).
    const merged = this.info.adapters ? mergedView(this.module, this.info.adapters) : {};
    const view = this.#zero ? { ...merged, ...this.#zero.exportView(options.writes ?? true, merged.includes) } : merged;
    await exportSafetensors(this.module, dir, this.config, options.dtype, options.maxShardSize, view);
    if (options.writes ?? true) this.copyCompanionsTo(dir);
  }

  /** generation_config.json and the tokenizer files of the folder the model came from, if any. */
  copyCompanionsTo(dir: string): void {
    const source = this.info.path && (this.info.source === 'torchscript' ? dirname(this.info.path) : this.info.path);
    if (source) copyCompanionFiles(source, dir);
  }

  /**
   * What training changes, for checkpoints and final/: the adapters as PEFT files under LoRA, else
   * the whole model in HF layout.
   */
  async saveTrained(dir: string): Promise<void> {
    if (!this.info.adapters) return this.exportSafetensors(dir);
    await writeAdapterFiles(this.module, this.info.adapters, dir, this.info.path ?? null);
    this.copyCompanionsTo(dir);
  }

  /** Reads back what saveTrained wrote: the adapters (PEFT files) under LoRA, else all weights. */
  loadTrained(dir: string): Promise<void> {
    const adapter = hasAdapterFiles(dir);
    if (adapter && !this.info.adapters) throw new ConfigError(`${dir} holds a LoRA adapter (${ADAPTER_CONFIG}), not model weights: load it with use_peft: true`);
    const zeroShards = isZeroCheckpoint(dir);
    if (!adapter && this.info.adapters && (hasSafetensorsWeights(dir) || zeroShards)) throw new ConfigError(`${dir} holds full model weights, not a LoRA adapter: load it without use_peft (or as model_name_or_path)`);
    if (this.info.adapters) return loadAdapterWeights(this.module, dir);
    // A ZeRO-3 checkpoint: per-rank slices (read as they are by a sharded model, joined by a whole one).
    if (zeroShards) return this.#zero ? this.#zero.loadShards(this, dir) : loadConsolidated(this.module, dir);
    return this.loadSafetensors(dir);
  }

  /** LoRA: adapters on (the policy) or off (the base model). */
  async setAdapters(on: boolean): Promise<void> {
    await this.module.setFlag('lora_enabled', on);
  }

  /**
   * LoRA's reference: this model with its adapters off (and in eval mode) while it computes — the
   * base model, with no second copy. The view shares the weights: its dispose() releases nothing.
   */
  adaptersOff(): CausalLM {
    if (!this.info.adapters) throw new ConfigError('adaptersOff: the model has no LoRA adapters');
    return new AdaptersOffView(this);
  }

  /** An independent frozen copy in eval mode: the DPO reference model. */
  async referenceCopy(): Promise<CausalLM> {
    const copy = await this.module.deepCopy();
    await copy.freeze();
    await copy.eval();
    return new CausalLM(copy, this.config, { ...this.info });
  }

  dispose(): void {
    this.#zero?.dispose();
    this.module.dispose();
  }
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

/**
 * A built-in model (see ARCHITECTURES) with HF's initialiser; `init: false` (a checkpoint is about to
 * be loaded) leaves the weights uninitialised, allocated in `dtype` (default float32).
 */
export async function createModel(architecture: string, config: Record<string, unknown> = {}, options: { init?: boolean; dtype?: DType; device?: string; lora?: LoraOptions | null } = {}): Promise<CausalLM> {
  const built = ARCHITECTURES[architecture as keyof typeof ARCHITECTURES];
  if (!built) {
    throw new ConfigError(`model_type '${architecture}' is not a built-in architecture (built in: ${ARCHITECTURE_NAMES.join(', ')}); for another one, export it to TorchScript (torch.jit.trace) as model.pt in the model folder`);
  }
  const { module, config: full, adapters } = await built.create(config, { init: options.init ?? true, dtype: options.dtype, device: options.device, lora: options.lora });
  const info: ModelInfo = {
    source: 'builtin', architecture, vocabSize: Number((full as { vocab_size: number }).vocab_size),
    forwardArgs: ['input_ids', 'attention_mask'], hasForwardHidden: true, packs: true, warnings: [], maxPositions: built.maxPositions(full), layers: built.layers(full),
    ...(adapters ? { adapters } : {}),
  };
  const model = new CausalLM(module, { model_type: architecture, architectures: [built.className], ...full }, info);
  if (adapters) await freezeBase(model);
  return model;
}

/** LoRA: the base weights get no gradient and no optimizer state; the adapters train. */
export async function freezeBase(model: CausalLM): Promise<void> {
  await model.freeze();
  await scope(async () => {
    for (const p of await model.namedParameters()) if (isAdapterParameter(p.name)) await p.tensor.setRequiresGrad(true);
  });
}

/** The reference under LoRA: the policy's module with the adapters off, in eval mode, for each call. */
class AdaptersOffView extends CausalLM {
  constructor(private readonly owner: CausalLM) {
    super(owner.module, owner.config, owner.info);
  }

  override forward(inputIds: Tensor, attentionMask: Tensor): Promise<Tensor> {
    return this.withAdaptersOff(() => this.owner.forward(inputIds, attentionMask));
  }

  override forwardHidden(inputIds: Tensor, attentionMask: Tensor): Promise<Tensor> {
    return this.withAdaptersOff(() => this.owner.forwardHidden(inputIds, attentionMask));
  }

  override forwardHiddenPacked(packed: PackedTensors): Promise<Tensor> {
    return this.withAdaptersOff(() => this.owner.forwardHiddenPacked(packed));
  }

  /** ZeRO-3: the owner's units (the view computes with them). */
  override get shardedLayers(): ZeroLayers | null {
    return this.owner.shardedLayers;
  }

  /** The base model's parameters (what a reference cache key hashes). */
  override async namedParameters() {
    return (await this.owner.namedParameters()).filter((p) => !isAdapterParameter(p.name));
  }

  override dispose(): void {}

  private async withAdaptersOff<T>(compute: () => Promise<T>): Promise<T> {
    const training = this.owner.training;
    await this.owner.setAdapters(false);
    await this.module.train(false);
    try {
      return await compute();
    } finally {
      // The policy's backward may re-run layers (activation checkpointing): adapters on again first.
      await this.owner.setAdapters(true);
      await this.module.train(training);
    }
  }
}
