import { Worker } from 'node:worker_threads';
import { Tensor, randn } from '../lib';
import { addonInfo } from '../lib/native/binding';

describe('threading', () => {
  it('keeps the event loop ticking while a large native job runs', async () => {
    const a = await randn([1536, 1536]);
    let done = false;
    let ticks = 0;
    const started = Date.now();
    // Six chained products (~40 GFLOP in all) queue on the CPU worker; JS keeps running meanwhile.
    const job = (async () => {
      let x = a;
      for (let i = 0; i < 6; i += 1) x = await (await x.matmul(a)).tanh();
      done = true;
      return x;
    })();
    while (!done) {
      await new Promise((resolve) => setTimeout(resolve, 0));
      ticks += 1;
    }
    const elapsed = Date.now() - started;
    await job;
    // A blocked loop would tick about once per job; a free one ticks every millisecond or so.
    expect(elapsed).toBeGreaterThan(50);
    expect(ticks).toBeGreaterThan(elapsed / 10);
  });

  it('runs jobs of one device in submission order', async () => {
    const x = Tensor.from([1]);
    const order: number[] = [];
    await Promise.all(Array.from({ length: 20 }, (_, i) => x.add(i).then(() => order.push(i))));
    expect(order).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  it('loads and computes inside worker_threads, two at once', async () => {
    const addonPath = addonInfo().path;
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const addon = require(workerData.addonPath);
      (async () => {
        const t = addon.fromData(new Float64Array([1, 2, 3, 4]), [2, 2], 'float64');
        const p = await addon.op('matmul', [t, t], undefined, true);
        const s = await addon.op('sum', [p], undefined, true);
        parentPort.postMessage({ sum: await s.item(), torch: addon.version().torch });
      })().catch((e) => parentPort.postMessage({ error: e.message }));
    `;
    const run = () =>
      new Promise<{ sum: number; torch: string }>((resolve, reject) => {
        const worker = new Worker(code, { eval: true, workerData: { addonPath } });
        worker.once('message', (m) => (m.error ? reject(new Error(m.error)) : resolve(m)));
        worker.once('error', reject);
      });
    const [a, b] = await Promise.all([run(), run()]);
    expect(a.sum).toBe(7 + 10 + 15 + 22);
    expect(b.sum).toBe(54);
    expect(a.torch).toMatch(/^\d+\.\d+/);
  });

  it('survives workers terminated mid-call and mid-job, repeatedly', async () => {
    // Each worker queues big jobs, then calls into the addon in a tight loop until terminated, so
    // termination lands inside native calls as well as while jobs run on its device worker.
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const addon = require(workerData.addonPath);
      (async () => {
        const big = await addon.op('randn', [], { shape: [512, 512] }, true);
        for (let i = 0; i < 20; i += 1) addon.op('matmul', [big, big], undefined, true);
        const small = addon.fromData(new Float32Array(16), [4, 4], 'float32');
        parentPort.postMessage('started');
        for (;;) addon.op('matmul', [small, small], undefined, true);
      })();
    `;
    for (let i = 0; i < 8; i += 1) {
      const worker = new Worker(code, { eval: true, workerData: { addonPath: addonInfo().path } });
      await new Promise((resolve) => worker.once('message', resolve));
      await new Promise((resolve) => setTimeout(resolve, i));
      expect(await worker.terminate()).toBe(1);
    }
    expect(await (await Tensor.from([2]).mul(3)).item()).toBe(6); // the main thread's worker is unaffected
  });
});
