import { join } from 'node:path';
import { ConfigError } from '../errors';
import type { CausalLM } from '../models/causal-lm';
import { isAdapterParameter } from '../models/lora';
import { loadSafetensorsInto, type ExportView } from '../models/weights';
import { scope } from '../scope';
import { isGradEnabled } from '../grad-mode';
import { writeFileAtomic } from '../atomic-file';
import { readUnitShards, REPLICATED_FILE, writeReplicatedWeights, writeUnitShards } from './zero-checkpoint';
import type { ProcessGroup } from './process-group';
import type { UnitLayout } from './sharded-adamw';
import type { ShardedUnits } from './sharded-units';
import type { ShardUnitsOptions } from '../native/binding';
import type { Tensor } from '../tensor';

/**
 * ZeRO-3 for a built-in model: one unit per decoder layer plus one "outer" unit for the weights
 * outside the layers (embeddings, final norm, head), all sharded at rest over the ranks. A layer is
 * gathered only inside its checkpointed call; the outer unit from the start of a forward (the
 * embeddings) until its micro-batch's backward has passed the head and the embeddings again
 * (finishMicroBatch), or until a forward without backward is done (release). LoRA's adapters stay
 * replicated (small, trained: the stage-2 reducer). Saving and loading go unit by unit, so no rank
 * ever holds more than one gathered unit: an export is an HF sharded folder with one file per unit.
 */
export class ZeroLayers implements UnitLayout {
  private constructor(
    readonly units: ShardedUnits,
    /** Per unit, its parameters' names, sizes and shapes, in the units' order (the outer unit last). */
    readonly members: { name: string; numel: number; shape: number[] }[][],
    /** Parameters in no unit (LoRA's adapters). */
    private readonly replicated: string[],
    /** The outer unit's index (null when every weight is in a layer). */
    readonly outer: number | null,
    private readonly rank: number,
    private readonly size: number,
  ) {}

  /** Shards the model's weights (every rank calls it with the same weights) and hands them to the model. */
  static async shard(model: CausalLM, group: ProcessGroup, options: ShardUnitsOptions = {}): Promise<ZeroLayers> {
    if (!model.info.layers) {
      throw new ConfigError(`zero_stage 3: ${model.info.path ?? model.info.architecture} is a traced TorchScript export, which cannot be split into layers; load the folder's safetensors into a built-in architecture (delete model.pt)`);
    }
    const { prefix, count } = model.info.layers;
    const layers = await scope(async () => {
      const named = (await model.namedParameters()).filter((p) => !isAdapterParameter(p.name));
      const inLayer = (name: string, i: number) => name.startsWith(`${prefix}.${i}.`);
      const members = Array.from({ length: count }, (_, i) => named.filter((p) => inLayer(p.name, i)));
      const outside = named.filter((p) => !members.some((m) => m.includes(p)));
      if (outside.length > 0) members.push(outside);
      // Sizes are read before sharding empties the parameters.
      const info = members.map((m) => m.map((p) => ({ name: p.name, numel: p.tensor.numel, shape: p.tensor.shape })));
      const units = await group.shardUnits(members.map((m) => m.map((p) => p.tensor)), options);
      const inUnits = new Set(info.flat().map((m) => m.name));
      const replicated = (await model.namedParameters()).map((p) => p.name).filter((n) => !inUnits.has(n));
      return new ZeroLayers(units, info, replicated, outside.length > 0 ? count : null, group.rank, group.size);
    });
    model.setShardedLayers(layers);
    return layers;
  }

  /** A forward recording gradients gathered the outer unit: its backward will need it. */
  #backwardPending = false;

  /** Before a forward: the outer unit gathered, the first layer's gather started. Every rank, in step. */
  async gatherOuter(): Promise<void> {
    if (this.outer === null) return;
    if (isGradEnabled()) this.#backwardPending = true;
    await this.units.gather(this.outer, 0);
  }

  /** After a micro-batch's backward: the outer unit's gradients reduce-scattered into its slice, and the unit freed. */
  async finishMicroBatch(): Promise<void> {
    if (this.outer === null) return;
    this.#backwardPending = false;
    await this.units.reduceGrads(this.outer);
    await this.units.free(this.outer);
  }

  /**
   * After a forward without backward (a reference, an evaluation), and before anything writes the
   * slices: the outer unit freed (a gathered copy would go stale), unless a training forward's
   * backward still needs it (LoRA's reference is the policy with its adapters off, computed between
   * the policy's forward and backward). Local, but every rank calls it at the same point: whether
   * the next forward gathers must agree across ranks.
   */
  async release(): Promise<void> {
    if (this.outer !== null && !this.#backwardPending) await this.units.free(this.outer);
  }

  /** This rank's slice of each unit's values. */
  shards(): Tensor[] {
    return this.units.shards();
  }

  /** Runs `use` with this rank's slices of the units' values; the handles end with it (the slices stay with the units). */
  async withSlices<T>(use: (slices: Tensor[]) => Promise<T>): Promise<T> {
    const slices = this.units.shards();
    try {
      return await use(slices);
    } finally {
      for (const slice of slices) slice.dispose();
    }
  }

  /** This rank's slice of each unit's gradient sum (null: frozen, or kept elsewhere). */
  gradShards(): (Tensor | null)[] {
    return this.units.gradShards();
  }

  /** An export plan: one file per unit (and one for the replicated weights, if any), each gathered while it is written. */
  exportView(writes: boolean, includes: (name: string) => boolean = () => true): ExportView {
    const files = [{ names: this.replicated, unit: -1 }, ...this.members.map((m, unit) => ({ names: m.map((p) => p.name), unit }))]
      .map((f) => ({ ...f, names: f.names.filter(includes) }))
      .filter((f) => f.names.length > 0);
    return {
      writes,
      shards: files.map((f) => f.names),
      around: async (k, write) => {
        const { unit } = files[k];
        if (unit < 0) return write();
        await this.units.gather(unit);
        try {
          await write();
        } finally {
          await this.units.free(unit);
        }
      },
    };
  }

  /** Loads weights (a file or HF folder) unit by unit: each gathered, read into, kept as this rank's slice, freed. */
  async load(model: CausalLM, path: string, covers: (name: string) => boolean = () => true): Promise<void> {
    const replicated = new Set(this.replicated);
    await loadSafetensorsInto(model.module, path, { covers: (n) => replicated.has(n) && covers(n), partial: true });
    for (const [u, members] of this.members.entries()) {
      const names = new Set(members.map((m) => m.name));
      await this.units.gather(u);
      try {
        await loadSafetensorsInto(model.module, path, { covers: (n) => names.has(n) && covers(n), partial: true });
        await this.units.commit(u);
      } finally {
        await this.units.free(u);
      }
    }
  }

  /**
   * Checkpoint weights without any gather: this rank's slice of every unit into its own file, and
   * (rank 0) the replicated weights and config.json. Every rank calls it on the same folder.
   */
  async saveShards(model: CausalLM, dir: string): Promise<void> {
    if (this.rank === 0) {
      await scope(async () => {
        const replicated = new Set(this.replicated);
        const tensors = new Map((await model.namedParameters()).filter((p) => replicated.has(p.name)).map((p) => [p.name, p.tensor]));
        await writeReplicatedWeights(dir, tensors, this.size);
      });
      writeFileAtomic(join(dir, 'config.json'), `${JSON.stringify(model.config, null, 2)}\n`);
      model.copyCompanionsTo(dir); // tokenizer and generation_config, as in every checkpoint
    }
    await this.withSlices((slices) => writeUnitShards(dir, slices, this.members, this.rank, this.size));
  }

  /** Reads what saveShards wrote (same world size): each rank its own slices, no traffic. */
  async loadShards(model: CausalLM, dir: string): Promise<void> {
    await this.release();
    const replicated = new Set(this.replicated);
    await loadSafetensorsInto(model.module, join(dir, REPLICATED_FILE), { covers: (n) => replicated.has(n) });
    await this.withSlices((slices) => readUnitShards(dir, slices, this.members, this.rank, this.size));
  }

  dispose(): void {
    this.units.dispose();
  }
}
