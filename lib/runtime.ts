import { addonInfo, native, type NativeMemory, type NativeVersion } from './native/binding';

export type { NativeMemory as MemoryStats };

/** libtorch's version and build facts of the loaded addon. */
export function version(): NativeVersion {
  return native().version();
}

export function cudaAvailable(): boolean {
  return native().cudaAvailable();
}

export function cudaDeviceCount(): number {
  return native().cudaDeviceCount();
}

/** Intra-op threads the device workers use (default: the number of cores). */
export function numThreads(): number {
  return native().numThreads();
}

/** Sets intra-op threads for every device worker; resolves with the count libtorch applied. */
export function setNumThreads(n: number): Promise<number> {
  return native().setNumThreads(n);
}

/** Seeds the CPU and all CUDA generators. */
export function manualSeed(seed: number | bigint): void {
  native().manualSeed(seed);
}

/** The CPU and CUDA generator states, for checkpoints that resume bit-exact. */
export function rngStates(): Uint8Array[] {
  return native().rngStates();
}

export function setRngStates(states: Uint8Array[]): void {
  native().setRngStates(states);
}

/** Live tensors held from JS (count, bytes of distinct storages), the CPU allocator's and CUDA's figures. */
export function memory(): NativeMemory {
  return native().memory();
}

/** memory()'s peaks (CPU allocator, CUDA devices) start again from what is allocated now: the peak of one phase. */
export function resetPeakMemory(): void {
  native().resetPeakMemory();
}

/** Returns cached, unused memory to the system: the CPU allocator's blocks and CUDA's cache. */
export function emptyCache(): void {
  native().emptyCache();
}

/**
 * Caps the bytes the caching CPU allocator keeps for reuse (default: a quarter of physical memory, or
 * TORCH_DPO_CPU_CACHE_LIMIT at startup); what is cached above the cap is released now.
 */
export function setCpuCacheLimit(bytes: number): void {
  native().setCpuCacheLimit(bytes);
}

export interface BlasInfo {
  /** What libtorch was configured with (BLAS_INFO of show_config). */
  configured: string;
  /** The BLAS libraries actually mapped into this process. */
  loaded: string[];
  /** A short name for what runs the matrix products: OpenBLAS, MKL, reference BLAS, ... */
  name: string;
}

export function blasInfo(): BlasInfo {
  const configured = /BLAS_INFO=([^,\s]+)/.exec(native().showConfig())?.[1] ?? 'unknown';
  const loaded = native().loadedBlas();
  const all = loaded.join(' ').toLowerCase();
  const name = all.includes('openblas')
    ? 'OpenBLAS'
    : all.includes('mkl') || configured === 'mkl'
      ? 'MKL'
      : all.includes('blis')
        ? 'BLIS'
        : loaded.some((p) => /\/blas\/libblas/.test(p))
          ? 'reference BLAS (slow: install libopenblas0-pthread)'
          : configured;
  return { configured, loaded, name };
}

/** Where the addon was loaded from and what it was built against. */
export function addonLocation() {
  const info = addonInfo();
  return { path: info.path, kind: info.kind, metadata: info.metadata, libtorch: info.libtorch, skipped: info.skipped };
}
