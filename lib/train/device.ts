import { ConfigError } from '../errors';
import { cudaAvailable, cudaDeviceCount, version } from '../runtime';

/**
 * The device a config's `device` names on this machine, checked before anything loads: auto is cuda
 * when libtorch has CUDA and a GPU is visible, else cpu; cuda on a CPU-only libtorch, or a cuda:N
 * beyond the visible devices, is a ConfigError that says what to check.
 */
export function resolveDevice(configured: string): string {
  if (configured === 'cpu') return 'cpu';
  const usable = cudaAvailable() ? cudaDeviceCount() : 0;
  if (configured === 'auto') return usable > 0 ? 'cuda' : 'cpu';
  if (usable === 0) {
    const why = version().cudaBuild ? 'libtorch has CUDA but sees no GPU (check nvidia-smi and CUDA_VISIBLE_DEVICES)' : 'this libtorch is a CPU build (point LIBTORCH at a CUDA libtorch and rebuild; `torch-dpo doctor` shows which one is loaded)';
    throw new ConfigError(`device: '${configured}' is not usable: ${why}; device: auto or cpu trains on the CPU`);
  }
  const index = /^cuda:(\d+)$/.exec(configured);
  if (index && Number(index[1]) >= usable) throw new ConfigError(`device: '${configured}' does not exist: ${usable} CUDA device(s) are visible (cuda:0 … cuda:${usable - 1})`);
  return configured;
}
