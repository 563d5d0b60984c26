import { join } from 'node:path';
import { ConfigError } from '../errors';
import type { CausalLM } from '../models/causal-lm';
import { isAdapterParameter } from '../models/lora';
import { loadSafetensorsInto, type ExportView } from '../models/weights';
import { scope } from '../scope';
import { writeFileAtomic } from '../atomic-file';
import { readUnitShards, REPLICATED_FILE, writeReplicatedWeights, writeUnitShards } from './zero-checkpoint';
import type { ProcessGroup } from './process-group';
import type { UnitLayout } from './sharded-adamw';
import type { ShardedUnits } from './sharded-units';
import type { ShardUnitsOptions } from '../native/binding';
import type { Tensor } from '../tensor';

/**
 * ZeRO-3 for a built-in model: one unit per decoder layer, sharded at rest over the ranks (the
 * embeddings, final norm and head stay replicated: they compute outside the layer loop). Saving
 * and loading go unit by unit, so no rank ever holds more than one gathered layer: an export is an
 * HF sharded folder with the replicated weights in the first file and one file per layer.
 */
export class ZeroLayers implements UnitLayout {
  private constructor(
    readonly units: ShardedUnits,
    /** Per unit, its parameters' names, sizes and shapes, in the units' order. */
    readonly members: { name: string; numel: number; shape: number[] }[][],
    private readonly replicated: string[],
    private readonly rank: number,
    private readonly size: number,
  ) {}

  /** Shards the model's layers (every rank calls it with the same weights) and hands them to the model. */
  static async shard(model: CausalLM, group: ProcessGroup, options: ShardUnitsOptions = {}): Promise<ZeroLayers> {
    if (!model.info.layers) {
      throw new ConfigError(`zero_stage 3: ${model.info.path ?? model.info.architecture} is a traced TorchScript export, which cannot be split into layers; load the folder's safetensors into a built-in architecture (delete model.pt)`);
    }
    const { prefix, count } = model.info.layers;
    const layers = await scope(async () => {
      const named = await model.namedParameters();
      // LoRA: the frozen base weights are sharded; the adapters (small, trained) stay replicated and
      // go through the stage-2 reducer like the embeddings.
      const members = Array.from({ length: count }, (_, i) => named.filter((p) => p.name.startsWith(`${prefix}.${i}.`) && !isAdapterParameter(p.name)));
      // Sizes are read before sharding empties the parameters.
      const info = members.map((m) => m.map((p) => ({ name: p.name, numel: p.tensor.numel, shape: p.tensor.shape })));
      const units = await group.shardUnits(members.map((m) => m.map((p) => p.tensor)), options);
      const inUnits = new Set(info.flat().map((m) => m.name));
      return new ZeroLayers(units, info, named.map((p) => p.name).filter((n) => !inUnits.has(n)), group.rank, group.size);
    });
    model.setShardedLayers(layers);
    return layers;
  }

  /** This rank's slice of each unit's values. */
  shards(): Tensor[] {
    return this.units.shards();
  }

  /** This rank's slice of each unit's gradient sum (null: frozen, or kept elsewhere). */
  gradShards(): (Tensor | null)[] {
    return this.units.gradShards();
  }

  /** An export plan: the replicated weights, then one file per layer, gathered while it is written. */
  exportView(writes: boolean, includes: (name: string) => boolean = () => true): ExportView {
    return {
      writes,
      shards: [this.replicated, ...this.members.map((m) => m.map((p) => p.name))].map((names) => names.filter(includes)),
      around: async (k, write) => {
        if (k === 0) return write();
        await this.units.gather(k - 1);
        try {
          await write();
        } finally {
          await this.units.free(k - 1);
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
    await scope(() => writeUnitShards(dir, this.units.shards(), this.members, this.rank, this.size));
  }

  /** Reads what saveShards wrote (same world size): each rank its own slices, no traffic. */
  async loadShards(model: CausalLM, dir: string): Promise<void> {
    const replicated = new Set(this.replicated);
    await loadSafetensorsInto(model.module, join(dir, REPLICATED_FILE), { covers: (n) => replicated.has(n) });
    await scope(() => readUnitShards(dir, this.units.shards(), this.members, this.rank, this.size));
  }

  dispose(): void {
    this.units.dispose();
  }
}
