import { availableParallelism } from 'node:os';
import {
  addonLocation, blasInfo, cudaAvailable, cudaDeviceCount, emptyCache, findLibtorch, manualSeed, memory,
  numThreads, randn, setNumThreads, version,
} from '../lib';

describe('runtime', () => {
  it('reports the libtorch the addon was built against, matching discovery', () => {
    const v = version();
    const found = findLibtorch();
    expect(v.torch.split('.').slice(0, 2)).toEqual(found.version.split('.').slice(0, 2));
    expect(v.napi).toBe(8);
    expect(v.cxx11Abi).toBe(found.cxx11Abi);
    expect(v.cudaBuild).toBe(found.cuda);
    const where = addonLocation();
    expect(where.metadata?.torchVersion).toBe(found.version);
    expect(where.path).toMatch(/\.node$/);
  });

  it('defaults intra-op threads to the core count and can change them', async () => {
    expect(numThreads()).toBe(availableParallelism());
    expect(await setNumThreads(1)).toBe(1);
    expect(numThreads()).toBe(1);
    expect(await setNumThreads(availableParallelism())).toBe(availableParallelism());
    expect(() => setNumThreads(0)).toThrow(/integer from 1 to 4096/);
    expect(() => setNumThreads(1.5)).toThrow(/integer/);
  });

  it('makes random streams reproducible with manualSeed (number or bigint)', async () => {
    manualSeed(1234);
    const a = await (await randn([8])).toTypedArray();
    manualSeed(1234n);
    const b = await (await randn([8])).toTypedArray();
    expect(Array.from(b as Float32Array)).toEqual(Array.from(a as Float32Array));
    expect(() => manualSeed(-1)).toThrow(/non-negative/);
    expect(() => manualSeed(2n ** 64n)).toThrow(/64 bits/);
  });

  it('describes CUDA and memory consistently', () => {
    const m = memory();
    expect(m.liveTensors).toBeGreaterThanOrEqual(0);
    expect(Array.isArray(m.cuda)).toBe(true);
    expect(typeof cudaAvailable()).toBe('boolean');
    if (!cudaAvailable()) {
      expect(cudaDeviceCount()).toBe(0);
      expect(m.cuda).toEqual([]);
    }
    expect(() => emptyCache()).not.toThrow();
  });

  it('names the BLAS that actually runs', () => {
    const blas = blasInfo();
    expect(blas.configured.length).toBeGreaterThan(0);
    expect(blas.loaded.length).toBeGreaterThan(0);
    expect(blas.name.length).toBeGreaterThan(0);
  });
});
