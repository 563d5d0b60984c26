/**
 * The complete typed interface of the native addon (native/*.cc). Nothing else in torch-dpo touches
 * the addon untyped: import `native()` from here.
 */
import { loadAddon, type LoadedAddon } from './loader';

export type DType = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int32' | 'int64' | 'uint8' | 'bool';

/** Host copies of tensor data, by dtype (float16/bfloat16 come back as raw 16-bit words). */
export type HostArray = Float32Array | Float64Array | Uint16Array | Int32Array | BigInt64Array | Uint8Array;

/** The handle class behind Tensor. Methods that do ATen work return Promises (run off the JS thread). */
export interface NativeTensor {
  readonly shape: number[];
  readonly dtype: DType;
  readonly device: string;
  readonly numel: number;
  readonly requiresGrad: boolean;
  readonly disposed: boolean;
  dispose(): void;
  detach(): NativeTensor;
  to(device: string | undefined, dtype: DType | undefined, gradEnabled: boolean): Promise<NativeTensor>;
  toTypedArray(): Promise<HostArray>;
  item(): Promise<number | bigint | boolean>;
  backward(gradient: NativeTensor | undefined, retainGraph: boolean): Promise<void>;
  grad(): Promise<NativeTensor | null>;
  setRequiresGrad(flag: boolean): Promise<void>;
}

export interface NativeNamedTensor {
  name: string;
  tensor: NativeTensor;
  /** Other names of the same tensor (tied weights). */
  aliases: string[];
}

/** A value a module method returns: tensors, numbers, strings, null, and lists/dicts of them. */
export type NativeModuleValue = NativeTensor | number | boolean | string | null | NativeModuleValue[] | { [key: string]: NativeModuleValue };
export type NativeModuleInput = NativeTensor | NativeTensor[] | number | boolean | null;

export interface NativeModuleDescription {
  type: string;
  training: boolean;
  /** graph: the method's TorchScript IR (what a trace baked in). */
  methods: { name: string; schema: string; args: string[]; graph: string }[];
}

/** A TorchScript module. Every method runs on the worker of the device its parameters live on. */
export interface NativeModule {
  readonly device: string;
  readonly disposed: boolean;
  dispose(): void;
  run(method: string, inputs: NativeModuleInput[], gradEnabled: boolean): Promise<NativeModuleValue>;
  /** Submodule `path` (dotted)'s method on tensors, activation-checkpointed: only the inputs are kept; backward re-runs it. */
  runCheckpointed(path: string, method: string, inputs: NativeTensor[], zero?: { units: NativeShardedUnits; unit: number; next?: number; previous?: number }): Promise<NativeModuleValue>;
  describe(): Promise<NativeModuleDescription>;
  namedParameters(): Promise<NativeNamedTensor[]>;
  namedBuffers(): Promise<NativeNamedTensor[]>;
  setTraining(on: boolean): Promise<void>;
  setRequiresGrad(on: boolean): Promise<void>;
  /** Sets the bool attribute `name` on this module and every submodule that has one; resolves to the count. */
  setFlag(name: string, on: boolean): Promise<number>;
  /** A handle on submodule `path` (dotted): registrations and definitions through it change the root's submodule. */
  submodule(path: string): Promise<NativeModule>;
  /** In this module's graphs, self.<child>.<from>(…) calls become self.<child>.<to>(…); resolves to the count. Before the first run only. */
  redirectCalls(child: string, from: string, to: string): Promise<number>;
  /** Drops the cached optimized (inlined) copies of every method's graph in the tree, after graph edits. */
  forgetOptimizedGraphs(): Promise<void>;
  to(device: string | undefined, dtype: DType | undefined): Promise<void>;
  deepCopy(): Promise<NativeModule>;
  /** Atomic: written to `<path>.partial`, then renamed. */
  save(path: string): Promise<void>;
  registerParameter(name: string, value: NativeTensor, isBuffer: boolean): Promise<void>;
  registerModule(name: string, module: NativeModule): Promise<void>;
  registerAttribute(name: string, value: boolean | number, kind?: 'int' | 'float'): Promise<void>;
  define(source: string): Promise<void>;
}

/**
 * A c10d process group: Gloo for CPU tensors, NCCL for CUDA tensors when built with it. Collectives run
 * on the worker of the tensors' device; allReduce and broadcast change tensors in place.
 */
export interface NativeProcessGroup {
  readonly rank: number;
  readonly size: number;
  /** 'gloo', plus 'nccl' when CUDA tensors go over NCCL. */
  readonly backends: string[];
  dispose(): void;
  /** Any shapes; coalesced into buckets of the group's bucketBytes per dtype through a reused buffer. */
  allReduce(tensors: NativeTensor[], op: 'sum' | 'avg' | 'max' | 'min'): Promise<void>;
  broadcast(tensors: NativeTensor[], root: number): Promise<void>;
  allGather(tensor: NativeTensor): Promise<NativeTensor[]>;
  /** The tensors end to end, zero-padded to a multiple of the world size; resolves to this rank's reduced slice (nothing: it is written into `out` when given). */
  reduceScatter(tensors: NativeTensor[], op: 'sum' | 'avg' | 'max' | 'min', out?: NativeTensor): Promise<NativeTensor | undefined>;
  /** The tensors end to end as one flat array padded to a multiple of the world size: every rank receives slice r from rank r. */
  allGatherSlices(tensors: NativeTensor[]): Promise<void>;
  /** Hooks on the parameters' gradient accumulators that all-reduce ~25 MB buckets during backward. */
  gradReducer(params: NativeTensor[], options?: { shard?: boolean }): NativeGradReducer;
  /** ZeRO-3: the parameters, in units, sharded at rest (each rank keeps its slice of each unit). */
  shardUnits(units: NativeTensor[][], options?: ShardUnitsOptions): Promise<NativeShardedUnits>;
  barrier(): Promise<void>;
}

/** Gradient averaging overlapped with backward (DDP's reducer). */
export interface NativeGradReducer {
  /** The next backward launches each bucket's all-reduce once its gradients are final. */
  arm(): void;
  /** Waits for every bucket (launching those backward did not) and writes the averages into the gradients. */
  finish(): Promise<void>;
  /** Of the last finish(): buckets, and how many of them backward had already launched. */
  stats(): { buckets: number; launchedInBackward: number; waitSeconds: number };
  /** Shard mode (ZeRO-2): this rank's slice of each bucket's gradient sum, accumulated over backwards. */
  slices(): NativeTensor[];
  /** Per bucket, the indices (into the params given) of its parameters, end to end. */
  layout(): number[][];
  /** Shard mode: per parameter, whether it had a gradient since the last call. */
  takeSeen(): boolean[];
  /** Releases the reducer; its hooks become no-ops. */
  dispose(): void;
}

/** ZeRO-3 units of parameters, sharded at rest (native/sharded_units.h). */
export interface NativeShardedUnits {
  /** All-gathers unit u into its parameters (and starts gathering `prefetch`). */
  gather(u: number, prefetch?: number): Promise<void>;
  /** Empties unit u's parameters: only this rank's slice remains. */
  free(u: number): Promise<void>;
  /** Reduce-scatters unit u's gradients into its gradient slice (summed over ranks) and releases them. */
  reduceGrads(u: number): Promise<void>;
  /** Unit u is gathered and its parameters were written: this rank's slice of them becomes its shard. */
  commit(u: number): Promise<void>;
  /** This rank's slice of each unit's values. */
  shards(): NativeTensor[];
  /** This rank's slice of each unit's gradient sum (null for a frozen unit). */
  gradShards(): (NativeTensor | null)[];
  /** Cumulative: seconds waited for gathers (a finished prefetch costs none) and spent in gradient reduce-scatters. */
  stats(): UnitCommStats;
  dispose(): void;
}

export interface UnitCommStats {
  gatherWaitSeconds: number;
  gathers: number;
  reduceSeconds: number;
  reduces: number;
}

/** ZeRO-3 units' options: no gradient slices (grads: false), or slices in another dtype (fp32 for bf16 weights). */
export interface ShardUnitsOptions {
  grads?: boolean;
  gradDtype?: DType;
  /** Where the slices live and the units gather (default: the parameters' device): a model staged in host memory is sharded onto its GPU. */
  device?: string;
}

export type OpAttrValue = number | bigint | boolean | string | number[];
export type OpAttrs = Record<string, OpAttrValue | undefined>;

export interface NativeVersion {
  torch: string;
  napi: number;
  cxx11Abi: boolean;
  cudaBuild: boolean;
}

/** The caching CPU allocator (native/cpu_caching_allocator.cc); caching is false when TORCH_DPO_CPU_CACHE_LIMIT=0. */
export interface NativeCpuMemory {
  caching: boolean;
  /** Bytes in tensors now (size classes), and the most there ever were. */
  allocatedBytes: number;
  peakAllocatedBytes: number;
  /** Bytes in tensors now as they asked for them (no size-class rounding), and the peak. */
  requestedBytes: number;
  peakRequestedBytes: number;
  /** Freed bytes kept for reuse, and the cap on them. */
  cachedBytes: number;
  cacheLimitBytes: number;
  cacheHits: number;
  cacheMisses: number;
}

export interface NativeMemory {
  liveTensors: number;
  liveBytes: number;
  cpu: NativeCpuMemory;
  cuda: { device: number; allocatedBytes: number; reservedBytes: number; peakAllocatedBytes: number }[];
}

export interface NativeAddon {
  NativeTensor: abstract new (...args: never[]) => NativeTensor;
  NativeModule: abstract new (...args: never[]) => NativeModule;
  /** torch::jit::load onto a device. */
  loadModule(path: string, device?: string): Promise<NativeModule>;
  /** An empty module (with a `training` attribute) to assemble from parameters, submodules and source. */
  createModule(name: string): NativeModule;
  NativeProcessGroup: abstract new (...args: never[]) => NativeProcessGroup;
  /** TCPStore rendezvous (rank 0 hosts it) + ProcessGroupGloo (+ ProcessGroupNCCL); resolves when every rank has joined. */
  createProcessGroup(options: { rank: number; worldSize: number; masterAddr: string; masterPort: number; timeoutMs: number; bucketBytes: number }): Promise<NativeProcessGroup>;
  /** Copies host data into a new CPU tensor (synchronous: a memcpy, no ATen compute). */
  fromData(data: ArrayBufferView | ArrayBuffer, shape: number[], dtype: DType, requiresGrad?: boolean): NativeTensor;
  op(name: string, inputs: NativeTensor[], attrs: OpAttrs | undefined, gradEnabled: boolean): Promise<NativeTensor>;
  /** Ops with several named outputs (fused log-probs, the DPO loss family). */
  fusedOp(name: string, inputs: NativeTensor[], attrs: OpAttrs | undefined, gradEnabled: boolean): Promise<Record<string, NativeTensor>>;
  listOps(): string[];
  version(): NativeVersion;
  cudaAvailable(): boolean;
  cudaDeviceCount(): number;
  numThreads(): number;
  setNumThreads(n: number): Promise<number>;
  manualSeed(seed: number | bigint): void;
  memory(): NativeMemory;
  /** Generator states [cpu, cuda:0, …] as bytes (checkpoints). */
  rngStates(): Uint8Array[];
  setRngStates(states: Uint8Array[]): void;
  /** Gives cached CPU blocks and cached CUDA memory back to the system. */
  emptyCache(): void;
  /** The CPU allocator's and the CUDA devices' peaks start again from what is allocated now. */
  resetPeakMemory(): void;
  /** Caps the bytes the CPU allocator keeps cached (releasing what is above). */
  setCpuCacheLimit(bytes: number): void;
  /** Ends the process at once (no exit handlers, no static destructors) with this code. */
  exitImmediately(code: number): never;
  showConfig(): string;
  parallelInfo(): string;
  loadedBlas(): string[];
}

let loaded: LoadedAddon<NativeAddon> | undefined;

/** The loaded addon with where it came from; loads it on first use. */
export function addonInfo(): LoadedAddon<NativeAddon> {
  loaded ??= loadAddon<NativeAddon>();
  return loaded;
}

/** The addon itself; throws AddonLoadError with advice when it cannot be loaded. */
export function native(): NativeAddon {
  return addonInfo().addon;
}
