import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ConfigError, NativeError, ProcessGroup, distributedEnv } from '../lib';
import { rankDevice } from '../lib/distributed/data-parallel';
import { freePort } from './support/free-port';

const DIST = join(__dirname, '..', 'dist', 'index.js'); // scripts/setup.sh builds dist/

const RANK_SCRIPT = `
const t = require(process.env.TORCH_DPO_DIST);
(async () => {
  const where = t.distributedEnv();
  const group = await t.ProcessGroup.init(where, { timeoutMs: 30000 });
  const x = t.Tensor.from([where.rank + 1, 10 * (where.rank + 1)]);
  await group.allReduce([x], 'avg');
  const b = t.Tensor.from([where.rank === 0 ? 42 : -1]);
  await group.broadcast([b], 0);
  const parts = await group.allGather(t.Tensor.from([where.rank * 7]));
  const input = t.Tensor.from([1, 2, 3, 4, 5, 6].map((v) => v * (where.rank + 1)), { dtype: 'float64' });
  const scattered = await group.reduceScatter(input, 'sum');
  const scatteredAvg = await group.reduceScatter(input, 'avg');
  const padded = await group.reduceScatter([t.Tensor.from([1, 2]), t.Tensor.from([[3]])], 'sum');
  // Coalesced all-reduce of several shapes and dtypes; slices gathered from their owners.
  const m = t.Tensor.from([[1, 2], [3, 4]]);
  const v = t.Tensor.from([5 * (where.rank + 1)], { dtype: 'float64' });
  await group.allReduce([m, v], 'sum');
  const owned = [t.Tensor.from([where.rank, where.rank]), t.Tensor.from([[where.rank], [where.rank]])];
  await group.allGatherSlices(owned);
  // Gradients averaged while backward runs: grad of sum((rank+1)·w) is rank+1 → average 1.5.
  const w = t.Tensor.from([1, 2, 3], { requiresGrad: true });
  const reducer = group.gradReducer([w]);
  reducer.arm();
  await (await (await w.mul(where.rank + 1)).sum()).backward();
  await reducer.finish();
  const reduced = { grad: await (await w.grad()).toArray(), ...reducer.stats() };
  await (await (await w.mul(where.rank + 1)).sum()).backward(); // not armed: reduced in finish()
  await reducer.finish();
  reduced.unarmed = reducer.stats().launchedInBackward;
  reducer.dispose();
  // Two 16 MB parameters: two buckets, launched in order as backward finalises them.
  const big = [await t.ones([4 << 20]), await t.ones([4 << 20])];
  for (const p of big) await p.setRequiresGrad(true);
  const bigReducer = group.gradReducer(big);
  bigReducer.arm();
  await (await (await (await big[0].mul(where.rank + 1)).sum()).add(await (await big[1].mul(3 * (where.rank + 1))).sum())).backward();
  await bigReducer.finish();
  const bigGrads = await Promise.all(big.map(async (p) => { const g = await p.grad(); return [await (await g.amin()).item(), await (await g.amax()).item()]; }));
  reduced.big = { grads: bigGrads, ...bigReducer.stats() };
  bigReducer.dispose();
  let mixed = '';
  try { await group.reduceScatter([t.Tensor.from([1]), t.Tensor.from([1], { dtype: 'float64' })]); } catch (e) { mixed = e.message; }
  await group.barrier();
  process.stdout.write(JSON.stringify({
    rank: group.rank, size: group.size, backends: group.backends, avg: await x.toArray(), b: await b.toArray(), parts: await Promise.all(parts.map((p) => p.item())),
    scattered: await scattered.toArray(), scatteredAvg: await scatteredAvg.toArray(), input: await input.toArray(), padded: await padded.toArray(),
    m: await m.toArray(), v: await v.toArray(), owned: await Promise.all(owned.map((o) => o.toArray())), mixed, reduced,
  }));
  group.dispose();
})().catch((e) => { process.stderr.write(e.message); process.exit(1); });
`;

function runRank(rank: number, port: number): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['-e', RANK_SCRIPT], {
      env: { ...process.env, TORCH_DPO_DIST: DIST, RANK: String(rank), WORLD_SIZE: '2', LOCAL_RANK: String(rank), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code) => resolve({ code, out, err }));
  });
}

describe('c10d process group (Gloo, 2 processes on 127.0.0.1)', () => {
  it('all-reduces, broadcasts, all-gathers, reduce-scatters and meets at a barrier', async () => {
    const port = await freePort();
    const results = await Promise.all([runRank(0, port), runRank(1, port)]);
    for (const r of results) expect(r.code).toBe(0);
    const [a, b] = results.map((r) => JSON.parse(r.out));
    for (const r of [a, b]) {
      expect(r.size).toBe(2);
      expect(r.avg).toEqual([1.5, 15]);
      expect(r.b).toEqual([42]);
      expect(r.parts).toEqual([0, 7]);
      expect(r.backends).toEqual(['gloo']);
      expect(r.m).toEqual([2, 4, 6, 8]);
      expect(r.v).toEqual([15]);
      // [r, r, r, r] end to end: rank 0 owns elements 0-1, rank 1 elements 2-3.
      expect(r.owned).toEqual([[0, 0], [1, 1]]);
      expect(r.mixed).toMatch(/one dtype/);
      const waited = expect.any(Number); // seconds blocked on buckets (stats().waitSeconds)
      expect(r.reduced).toEqual({ grad: [1.5, 1.5, 1.5], buckets: 1, launchedInBackward: 1, unarmed: 0, waitSeconds: waited, big: { grads: [[1.5, 1.5], [4.5, 4.5]], buckets: 2, launchedInBackward: 2, waitSeconds: waited } });
    }
    // Sum over ranks of [1..6]·(rank+1) = [3, 6, 9, 12, 15, 18]; rank 0 keeps the first half.
    expect(a.scattered).toEqual([3, 6, 9]);
    expect(b.scattered).toEqual([12, 15, 18]);
    expect(a.scatteredAvg).toEqual([1.5, 3, 4.5]);
    expect(b.input).toEqual([2, 4, 6, 8, 10, 12]); // the input is left as it was
    // [1, 2] and [[3]] end to end, padded to 4 elements: rank 0 gets [2, 4], rank 1 [6, 0].
    expect(a.padded).toEqual([2, 4]);
    expect(b.padded).toEqual([6, 0]);
    expect([a.rank, b.rank]).toEqual([0, 1]);
  });

  it('rejects a bad environment before any collective', () => {
    const base = { RANK: '0', WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: '29500' };
    expect(distributedEnv(base)).toMatchObject({ rank: 0, worldSize: 2, localRank: 0, localWorldSize: 2, masterPort: 29500 });
    expect(() => distributedEnv({ ...base, MASTER_PORT: undefined })).toThrow(/MASTER_PORT is not set/);
    expect(() => distributedEnv({ ...base, RANK: '2' })).toThrow(/RANK=2 is not below WORLD_SIZE=2/);
    expect(() => distributedEnv({ ...base, WORLD_SIZE: 'two' })).toThrow(ConfigError);
    expect(() => distributedEnv({ ...base, MASTER_ADDR: '' })).toThrow(/MASTER_ADDR is not set/);
    expect(() => distributedEnv({ ...base, MASTER_PORT: '70000' })).toThrow(/not a port/);
  });

  it('binds each worker to cuda:LOCAL_RANK when training on CUDA', () => {
    expect(rankDevice('cuda', 1, 2)).toBe('cuda:1');
    expect(rankDevice('cuda:0', 1, 2)).toBe('cuda:0'); // an explicit index is kept
    expect(rankDevice('cpu', 3, 0)).toBe('cpu');
    expect(() => rankDevice('cuda', 2, 2)).toThrow(/LOCAL_RANK=2 but this machine has 2 CUDA device\(s\)/);
  });

  it('gives up with an error, not a hang, when a rank never arrives', async () => {
    const port = await freePort();
    const started = Date.now();
    await expect(ProcessGroup.init({ rank: 0, worldSize: 2, localRank: 0, localWorldSize: 2, masterAddr: '127.0.0.1', masterPort: port }, { timeoutMs: 1500 }))
      .rejects.toThrow(NativeError);
    expect(Date.now() - started).toBeLessThan(15000);
  });
});
