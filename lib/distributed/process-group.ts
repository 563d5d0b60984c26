import { ConfigError, DisposedError } from '../errors';
import { native, type NativeGradReducer, type NativeProcessGroup, type ShardUnitsOptions } from '../native/binding';
import { keep } from '../scope';
import { settle, Tensor } from '../tensor';
import { BUCKET_BYTES } from './buckets';
import { ShardedUnits } from './sharded-units';

/** Where this process sits in a torchrun-style launch. */
export interface DistributedEnv {
  rank: number;
  localRank: number;
  worldSize: number;
  localWorldSize: number;
  masterAddr: string;
  masterPort: number;
}

function integer(env: NodeJS.ProcessEnv, name: string, fallback?: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') {
    if (fallback !== undefined) return fallback;
    throw new ConfigError(`${name} is not set: launch with \`torch-dpo launch\` or torchrun, or set RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT`);
  }
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) throw new ConfigError(`${name}=${raw} is not a non-negative integer`);
  return value;
}

/** Reads torchrun's environment (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), checked before any collective. */
export function distributedEnv(env: NodeJS.ProcessEnv = process.env): DistributedEnv {
  const worldSize = integer(env, 'WORLD_SIZE');
  const rank = integer(env, 'RANK');
  if (worldSize < 1) throw new ConfigError('WORLD_SIZE must be at least 1');
  if (rank >= worldSize) throw new ConfigError(`RANK=${rank} is not below WORLD_SIZE=${worldSize}`);
  const masterPort = integer(env, 'MASTER_PORT');
  if (masterPort < 1 || masterPort > 65535) throw new ConfigError(`MASTER_PORT=${masterPort} is not a port (1..65535)`);
  const masterAddr = env.MASTER_ADDR;
  if (!masterAddr) throw new ConfigError('MASTER_ADDR is not set (the address of rank 0)');
  return { rank, worldSize, masterAddr, masterPort, localRank: integer(env, 'LOCAL_RANK', rank), localWorldSize: integer(env, 'LOCAL_WORLD_SIZE', worldSize) };
}

/**
 * A c10d process group over PyTorch's own backends (Gloo for CPU tensors, NCCL for CUDA tensors when
 * built with it) and TCPStore rendezvous.
 */
export class ProcessGroup {
  #handle: NativeProcessGroup | null;

  /** Bytes per bucket of coalesced collectives and of the gradient reducer. */
  readonly bucketBytes: number;

  private constructor(handle: NativeProcessGroup, bucketBytes: number) {
    this.#handle = handle;
    this.bucketBytes = bucketBytes;
  }

  /** Joins the group; rank 0 hosts the store. Fails after timeoutMs if a rank never arrives. */
  static async init(where: DistributedEnv, options: { timeoutMs?: number; bucketBytes?: number } = {}): Promise<ProcessGroup> {
    const bucketBytes = options.bucketBytes ?? BUCKET_BYTES;
    const handle = await settle('process group rendezvous', native().createProcessGroup({
      rank: where.rank, worldSize: where.worldSize, masterAddr: where.masterAddr, masterPort: where.masterPort, timeoutMs: options.timeoutMs ?? 300000, bucketBytes,
    }));
    return new ProcessGroup(handle, bucketBytes);
  }

  private get handle(): NativeProcessGroup {
    if (!this.#handle) throw new DisposedError('ProcessGroup');
    return this.#handle;
  }

  get rank(): number { return this.handle.rank; }
  get size(): number { return this.handle.size; }
  get backends(): string[] { return this.handle.backends; }

  /** Reduces every tensor in place over ranks (any shapes: coalesced into buckets of bucketBytes per dtype). */
  allReduce(tensors: Tensor[], op: 'sum' | 'avg' | 'max' | 'min' = 'sum'): Promise<void> {
    return settle('allReduce', this.handle.allReduce(tensors.map((t) => t.handle), op));
  }
  /** Every rank's tensors take the values of rank `root`'s. */
  broadcast(tensors: Tensor[], root = 0): Promise<void> {
    return settle('broadcast', this.handle.broadcast(tensors.map((t) => t.handle), root));
  }
  async allGather(tensor: Tensor): Promise<Tensor[]> {
    return (await settle('allGather', this.handle.allGather(tensor.handle))).map((h) => new Tensor(h));
  }
  /**
   * Reduces the tensors, taken end to end and zero-padded to a multiple of the world size (n elements),
   * over ranks; resolves to this rank's slice [rank·n/size, (rank+1)·n/size), written into `out` when
   * given. The inputs are left unchanged.
   */
  async reduceScatter(tensors: Tensor | Tensor[], op: 'sum' | 'avg' | 'max' | 'min' = 'sum', out?: Tensor): Promise<Tensor> {
    const list = Array.isArray(tensors) ? tensors : [tensors];
    const handle = await settle('reduceScatter', this.handle.reduceScatter(list.map((t) => t.handle), op, out?.handle));
    return out ?? new Tensor(handle!);
  }
  /**
   * The tensors, end to end and padded to a multiple of the world size, form one flat array of which
   * rank r owns slice r: every rank's tensors receive each slice from its owner.
   */
  allGatherSlices(tensors: Tensor[]): Promise<void> {
    return settle('allGatherSlices', this.handle.allGatherSlices(tensors.map((t) => t.handle)));
  }
  /**
   * Averages the gradients of `params` over ranks with the reduction overlapped with backward: arm()
   * before the backward whose gradients are final (the last micro-batch of a step), finish() after.
   * `shard` (ZeRO-2): arm() before every backward, finish() after each: buckets are reduce-scattered
   * into slices() (sums over ranks, accumulated) and the parameters' gradients released.
   */
  gradReducer(params: Tensor[], options: { shard?: boolean } = {}): GradReducer {
    return new GradReducer(this.handle.gradReducer(params.map((p) => p.handle), options));
  }
  /** ZeRO-3: shards the parameters of each unit at rest (every rank passes the same units, same values). */
  async shardUnits(units: Tensor[][], options: ShardUnitsOptions = {}): Promise<ShardedUnits> {
    return new ShardedUnits(await settle('shardUnits', this.handle.shardUnits(units.map((u) => u.map((p) => p.handle)), options)));
  }
  barrier(): Promise<void> {
    return settle('barrier', this.handle.barrier());
  }
  dispose(): void {
    this.#handle?.dispose();
    this.#handle = null;
  }
}

/** Gradient averaging overlapped with backward: buckets are all-reduced as backward finalises them. */
export class GradReducer {
  #handle: NativeGradReducer | null;

  constructor(handle: NativeGradReducer) {
    this.#handle = handle;
  }

  private get handle(): NativeGradReducer {
    if (!this.#handle) throw new DisposedError('GradReducer');
    return this.#handle;
  }

  /** The next backward launches each bucket's all-reduce as soon as its gradients are final. */
  arm(): void {
    this.handle.arm();
  }

  /** Resolves when every gradient holds its average over ranks. */
  finish(): Promise<void> {
    return settle('gradient all-reduce', this.handle.finish());
  }

  /** Of the last finish(): buckets, and how many of them backward had already launched (the overlap); seconds waited for buckets (cumulative). */
  stats(): { buckets: number; launchedInBackward: number; waitSeconds: number } {
    return this.handle.stats();
  }

  /** Shard mode: this rank's slice of each bucket's gradient sum (the reducer's tensors; kept, never disposed by scopes). */
  slices(): Tensor[] {
    return this.handle.slices().map((h) => keep(new Tensor(h)));
  }

  /** Per bucket, the indices (into the params given) of its parameters, end to end. */
  layout(): number[][] {
    return this.handle.layout();
  }

  /** Shard mode: per parameter, whether it had a gradient since the last call. */
  takeSeen(): boolean[] {
    return this.handle.takeSeen();
  }

  dispose(): void {
    this.#handle?.dispose();
    this.#handle = null;
  }
}
