import { join } from 'node:path';
import { loadModel, ProcessGroup, Tensor, cudaAvailable, cudaDeviceCount, dpoLoss, emptyCache, memory, randint, randn, sequenceLogps, sequenceLogpsFromHidden } from '../lib';
import { freePort } from './support/free-port';

// These run only where a GPU is present (scripts/gpu-check.sh); elsewhere jest lists them as skipped.
const gpu = cudaAvailable();
const describeCuda = gpu ? describe : describe.skip;
if (!gpu) process.stdout.write('cuda.test.ts: no CUDA device, CUDA tests skipped\n');

describeCuda('CUDA', () => {
  it('counts devices', () => {
    expect(cudaDeviceCount()).toBeGreaterThan(0);
  });

  it('runs collectives on CUDA tensors (NCCL when built with it; one rank)', async () => {
    const group = await ProcessGroup.init({ rank: 0, worldSize: 1, localRank: 0, localWorldSize: 1, masterAddr: '127.0.0.1', masterPort: await freePort() }, { timeoutMs: 60000 });
    try {
      process.stdout.write(`process group backends: ${group.backends.join(', ')}\n`);
      const a = await Tensor.from([1, 2, 3]).to('cuda');
      const b = await Tensor.from([[4, 5]], { dtype: 'float64' }).to('cuda');
      await group.allReduce([a, b], 'avg');
      expect(await a.toArray()).toEqual([1, 2, 3]);
      expect(await b.toArray()).toEqual([4, 5]);
      const slice = await group.reduceScatter([a, await Tensor.from([9]).to('cuda')], 'sum');
      expect(slice.device).toBe('cuda:0');
      expect(await slice.toArray()).toEqual([1, 2, 3, 9]);
      await group.allGatherSlices([a]);
      expect(await a.toArray()).toEqual([1, 2, 3]);
      await group.barrier();
    } finally {
      group.dispose();
    }
  });

  it('round-trips every dtype through the GPU', async () => {
    const cases: [Tensor, unknown[]][] = [
      [Tensor.from([1.5, -2], { dtype: 'float32' }), [1.5, -2]],
      [Tensor.from([1.5, -2], { dtype: 'float64' }), [1.5, -2]],
      [Tensor.from([2n ** 60n + 1n]), [2n ** 60n + 1n]],
      [Tensor.from([7, -7], { dtype: 'int32' }), [7, -7]],
      [Tensor.from([true, false]), [true, false]],
    ];
    for (const [host, expected] of cases) {
      const onGpu = await host.to('cuda');
      expect(onGpu.device).toBe('cuda:0');
      expect(await onGpu.toArray()).toEqual(expected);
      expect(await (await onGpu.to('cpu')).toArray()).toEqual(expected);
    }
    const bf16 = await (await Tensor.from([1.5, -2]).to({ device: 'cuda', dtype: 'bfloat16' })).toTypedArray();
    expect(Array.from(bf16 as Uint16Array)).toEqual([0x3fc0, 0xc000]);
  });

  it('computes ops and gradients on the device, matching the CPU', async () => {
    const a = await randn([64, 32], { dtype: 'float64' });
    const b = await randn([32, 16], { dtype: 'float64' });
    const cpu = await (await a.matmul(b)).toArray();
    const ga = await (await a.to('cuda')).setRequiresGrad();
    const out = await ga.matmul(await b.to('cuda'));
    const onGpu = (await out.toArray()) as number[];
    onGpu.forEach((v, i) => expect(Math.abs(v - (cpu as number[])[i])).toBeLessThan(1e-10));
    await (await out.sum()).backward();
    const grad = await ga.grad();
    expect(grad!.device).toBe('cuda:0');
  });

  it('creates tensors on the device and reports allocator memory', async () => {
    const big = await randn([1024, 1024], { device: 'cuda' });
    expect(big.device).toBe('cuda:0');
    const stats = memory().cuda[0];
    expect(stats.allocatedBytes).toBeGreaterThanOrEqual(4 * 1024 * 1024);
    big.dispose();
    emptyCache();
    expect(memory().cuda[0].reservedBytes).toBeLessThanOrEqual(stats.reservedBytes);
  });

  it('turns device errors into NativeError', async () => {
    const a = await randn([2], { device: 'cuda' });
    await expect(a.add(Tensor.from([1, 2]))).rejects.toThrow(/same device|cuda/i);
  });

  it('computes fused log-probs and their gradients on the device, matching the CPU', async () => {
    const [n, t, v, h] = [4, 16, 101, 8];
    const ids = await randint(0, v, [n, t]);
    const mask = Tensor.from(Array.from({ length: n }, () => Array.from({ length: t }, (_, k) => (k >= 4 ? 1 : 0))), { dtype: 'bool' });
    const logits = await randn([n, t, v], { dtype: 'float64' });
    const cpuLeaf = await logits.detach().setRequiresGrad();
    const cpu = await sequenceLogps(cpuLeaf, ids, mask);
    await (await cpu.logps.sum()).backward();
    const gpuLeaf = await (await logits.to('cuda')).setRequiresGrad();
    const gpu = await sequenceLogps(gpuLeaf, await ids.to('cuda'), await mask.to('cuda'), { chunkRows: 7 });
    await (await gpu.logps.sum()).backward();
    const a = (await cpu.logps.toArray()) as number[], b = (await gpu.logps.toArray()) as number[];
    a.forEach((x, i) => expect(Math.abs(x - b[i])).toBeLessThan(1e-9));
    const ga = (await (await cpuLeaf.grad())!.toArray()) as number[], gb = (await (await gpuLeaf.grad())!.toArray()) as number[];
    ga.forEach((x, i) => expect(Math.abs(x - gb[i])).toBeLessThan(1e-9));

    const hidden = await randn([n, t, h], { device: 'cuda', dtype: 'bfloat16' });
    const weight = await randn([v, h], { device: 'cuda', dtype: 'bfloat16' });
    const fused = await sequenceLogpsFromHidden(hidden, weight, undefined, await ids.to('cuda'), await mask.to('cuda'));
    expect(fused.logps.device).toBe('cuda:0');
    expect(fused.logps.dtype).toBe('float32');
    const loss = await dpoLoss({ policyChosenLogps: await fused.logps.narrow(0, 0, 2), policyRejectedLogps: await fused.logps.narrow(0, 2, 2) }, { reference_free: true });
    expect(Number.isFinite(await loss.loss.item())).toBe(true);
  });

  it('warns that the traced CPU fixture has device constants baked in', async () => {
    const model = await loadModel(join(__dirname, 'fixtures', 'tiny-gpt2'), { device: 'cuda' });
    expect(model.info.warnings.join('\n')).toMatch(/device constants on cpu/);
  });
});
