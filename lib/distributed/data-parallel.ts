import { ConfigError } from '../errors';
import { BUCKET_BYTES } from './buckets';
import { distributedEnv, ProcessGroup, type DistributedEnv } from './process-group';
import { cudaDeviceCount } from '../runtime';
import { scope } from '../scope';
import { Tensor } from '../tensor';

/**
 * The device of the worker with this LOCAL_RANK: 'cuda' (no index) binds to cuda:LOCAL_RANK, as
 * torchrun scripts do; an explicit index or the CPU is kept.
 */
export function rankDevice(configured: string, localRank: number, cudaDevices: number): string {
  if (configured !== 'cuda') return configured;
  if (localRank >= cudaDevices) {
    throw new ConfigError(`LOCAL_RANK=${localRank} but this machine has ${cudaDevices} CUDA device(s): start at most ${cudaDevices} workers per machine`);
  }
  return `cuda:${localRank}`;
}

/**
 * The trainer's view of a torchrun-style launch: the process group, where this rank sits, and the
 * few collectives the training loop agrees through. Null when WORLD_SIZE is absent or 1.
 */
export class DataParallel {
  private constructor(readonly group: ProcessGroup, readonly where: DistributedEnv, readonly tag: number) {}

  /** Joins the group from torchrun's environment (validated before any collective). */
  static async join(timeoutSeconds: number, bucketBytes: number = BUCKET_BYTES, env: NodeJS.ProcessEnv = process.env): Promise<DataParallel | null> {
    if (Number(env.WORLD_SIZE ?? '1') <= 1) return null;
    const where = distributedEnv(env);
    const group = await ProcessGroup.init(where, { timeoutMs: timeoutSeconds * 1000, bucketBytes });
    // Rank 0's pid names the temporary folders every rank writes checkpoint parts into.
    const tag = Tensor.from([process.pid], { dtype: 'float64' });
    await group.broadcast([tag], 0);
    const rank0Pid = (await tag.item()) as number;
    tag.dispose();
    return new DataParallel(group, where, rank0Pid);
  }

  get rank(): number { return this.where.rank; }
  get worldSize(): number { return this.where.worldSize; }

  /** The device this rank trains on (see rankDevice). */
  device(configured: string): string {
    return rankDevice(configured, this.where.localRank, configured === 'cuda' ? cudaDeviceCount() : 0);
  }

  /** True when any rank says so (so that all ranks stop at the same step). */
  any(flag: boolean): Promise<boolean> {
    return scope(async () => {
      const t = Tensor.from([flag ? 1 : 0], { dtype: 'float32' });
      await this.group.allReduce([t], 'max');
      return ((await t.item()) as number) > 0;
    });
  }

  /**
   * The mean over ranks of named numbers every rank computed for its own shard, in one collective
   * (keys in sorted order, so every rank packs them alike).
   */
  mean(values: Record<string, number>): Promise<Record<string, number>> {
    const names = Object.keys(values).sort();
    return scope(async () => {
      const t = Tensor.from(names.map((n) => values[n]), { dtype: 'float64' });
      await this.group.allReduce([t], 'avg');
      const averaged = (await t.toArray()) as number[];
      return Object.fromEntries(names.map((n, i) => [n, averaged[i]]));
    });
  }

  /** Element-wise sum over ranks: ranks that each filled disjoint entries (zeros elsewhere) all get every entry. */
  sum(values: Float64Array): Promise<Float64Array> {
    return scope(async () => {
      const t = Tensor.from(values, { dtype: 'float64' });
      await this.group.allReduce([t], 'sum');
      return Float64Array.from((await t.toTypedArray()) as Float64Array);
    });
  }

  barrier(): Promise<void> {
    return this.group.barrier();
  }

  dispose(): void {
    this.group.dispose();
  }
}
