import { DisposedError } from '../errors';
import type { NativeShardedUnits, UnitCommStats } from '../native/binding';
import { keep } from '../scope';
import { settle, Tensor } from '../tensor';

/**
 * ZeRO-3 units (native/sharded_units.h): groups of parameters (one per decoder layer) stored sharded
 * at rest: each rank keeps its slice of each unit's flat values (`shards`), the parameters themselves
 * are empty except while a checkpointed layer call gathers them (CausalLM.setShardedLayers). The
 * gradients of a unit are reduce-scattered into `gradShards` (sums over ranks) as its backward ends.
 */
export class ShardedUnits {
  #handle: NativeShardedUnits | null;

  constructor(handle: NativeShardedUnits) {
    this.#handle = handle;
  }

  /** @internal */
  get handle(): NativeShardedUnits {
    if (!this.#handle) throw new DisposedError('ShardedUnits');
    return this.#handle;
  }

  gather(unit: number, prefetch?: number): Promise<void> {
    return settle(`gathering unit ${unit}`, this.handle.gather(unit, prefetch));
  }

  free(unit: number): Promise<void> {
    return settle(`freeing unit ${unit}`, this.handle.free(unit));
  }

  reduceGrads(unit: number): Promise<void> {
    return settle(`reducing unit ${unit}'s gradients`, this.handle.reduceGrads(unit));
  }

  /** After writing into a gathered unit's parameters: this rank's slice of them becomes its shard. */
  commit(unit: number): Promise<void> {
    return settle(`committing unit ${unit}`, this.handle.commit(unit));
  }

  /** This rank's slice of each unit's values (the units' own tensors). */
  shards(): Tensor[] {
    return this.handle.shards().map((h) => keep(new Tensor(h)));
  }

  /** This rank's slice of each unit's gradient sum over ranks (null for a frozen unit). */
  gradShards(): (Tensor | null)[] {
    return this.handle.gradShards().map((h) => (h ? keep(new Tensor(h)) : null));
  }

  /** Cumulative: seconds waited for all-gathers, seconds in gradient reduce-scatters, and their counts. */
  stats(): UnitCommStats {
    return this.handle.stats();
  }

  dispose(): void {
    this.#handle?.dispose();
    this.#handle = null;
  }
}
