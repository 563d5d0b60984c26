'use strict';
// Native core overheads: op round trip through the device worker, host↔tensor copies, matmul rate.
const { Tensor, randn, numThreads, blasInfo, version, cudaAvailable } = require('../dist');

const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
async function time(fn, repeats) {
  await fn(); // warm-up
  const samples = [];
  for (let i = 0; i < repeats; i += 1) {
    const t0 = process.hrtime.bigint();
    await fn();
    samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return median(samples);
}

(async () => {
  const rows = [];
  const small = Tensor.from([1, 2, 3]);
  const latency = await time(async () => (await small.add(1)).dispose(), 2000);
  rows.push(['op round trip (3-element add)', `${(latency * 1000).toFixed(1)} µs`, 'JS → worker → JS, result wrapped']);

  const bytes = 64 * 1024 * 1024;
  const host = new Float32Array(bytes / 4).fill(1.5);
  const fromMs = await time(async () => Tensor.from(host).dispose(), 20);
  rows.push(['Tensor.from 64 MiB', `${(bytes / 2 ** 30 / (fromMs / 1000)).toFixed(1)} GiB/s`, `${fromMs.toFixed(1)} ms (copy on the JS thread into freshly mapped pages)`]);
  const big = Tensor.from(host);
  const toMs = await time(async () => { await big.toTypedArray(); }, 20);
  rows.push(['toTypedArray 64 MiB', `${(bytes / 2 ** 30 / (toMs / 1000)).toFixed(1)} GiB/s`, `${toMs.toFixed(1)} ms (copy on the worker, zero-copy handoff)`]);

  const n = 1024;
  const a = await randn([n, n]);
  const mmMs = await time(async () => (await a.matmul(a)).dispose(), 10);
  rows.push([`matmul ${n}×${n} fp32`, `${((2 * n ** 3) / (mmMs / 1000) / 1e9).toFixed(1)} GFLOP/s`, `${mmMs.toFixed(1)} ms, ${blasInfo().name}, ${numThreads()} threads`]);

  if (cudaAvailable()) {
    const onGpu = await small.to('cuda');
    const gpuLatency = await time(async () => (await onGpu.add(1)).dispose(), 2000);
    rows.push(['cuda op round trip (3-element add)', `${(gpuLatency * 1000).toFixed(1)} µs`, 'kernel launch, no sync']);
    const m = 8192;
    const g = await randn([m, m], { device: 'cuda', dtype: 'bfloat16' });
    // item() waits for the device, so each sample covers the whole product.
    const gpuMs = await time(async () => { await (await (await g.matmul(g)).amax()).item(); }, 10);
    rows.push([`cuda matmul ${m}×${m} bf16`, `${((2 * m ** 3) / (gpuMs / 1000) / 1e12).toFixed(0)} TFLOP/s`, `${gpuMs.toFixed(2)} ms incl. amax + sync`]);
  }

  console.log(`\ncore (libtorch ${version().torch})`);
  console.log('| measure | value | note |\n|---|---|---|');
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
