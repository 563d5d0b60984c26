import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { freePort } from './support/free-port';

const CLI = join(__dirname, '..', 'dist', 'cli', 'main.js'); // scripts/setup.sh builds dist/

// Two ranks, the same fp64 GPT-2 on each: `plain` keeps every weight, `sharded` has its layers as
// ZeRO-3 units. Each rank runs half of a batch through `sharded` (two micro-batches); `plain` runs the
// whole batch. The units' gradient slices (sums over ranks, / 2) must equal this rank's slice of
// plain's flat layer gradients; the layers' parameters must be empty outside their calls.
const SCRIPT = `const t = require(${JSON.stringify(join(__dirname, '..', 'dist'))});
(async () => {
  const group = await t.ProcessGroup.init(t.distributedEnv(), { timeoutMs: 30000 });
  const config = { vocab_size: 64, n_positions: 16, n_embd: 32, n_layer: 3, n_head: 4, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0 };
  t.manualSeed(1);
  const plain = await t.createModel('gpt2', config, { dtype: 'float64' });
  t.manualSeed(1);
  const sharded = await t.createModel('gpt2', config, { dtype: 'float64' });
  const named = await sharded.namedParameters();
  const zero = await t.ZeroLayers.shard(sharded, group);
  const units = zero.units;
  const unitParams = zero.members.map((m) => m.map((x) => named.find((p) => p.name === x.name)));
  const emptyAtRest = unitParams.flat().every((p) => p.tensor.numel === 0);
  t.manualSeed(7);
  const ids = await t.randint(0, 64, [8, 10]);
  const mask = await t.ones([8, 10], { dtype: 'int64' });
  const loss = async (model, rows) => (await (await model.forward(await ids.narrow(0, rows[0], rows[1]), await mask.narrow(0, rows[0], rows[1]))).logsumexp(2)).mean();
  // Plain: the whole batch as the same four quarters (each rank's two micro-batches), averaged.
  let plainLoss = 0;
  for (const q of [0, 1, 2, 3]) {
    const l = await (await loss(plain, [2 * q, 2])).mul(0.25);
    await l.backward();
    plainLoss += await l.item();
  }
  // Sharded: this rank's two quarters, each weighted 1/2 (the mean over ranks gives 1/4 overall).
  const mine = group.rank === 0 ? [0, 1] : [2, 3];
  let shardedLoss = 0;
  for (const q of mine) {
    const l = await (await loss(sharded, [2 * q, 2])).mul(0.5);
    await l.backward();
    // The outer unit (embeddings, final norm, head) stays gathered through backward; then its
    // gradients are reduce-scattered and it is freed (what the optimizer does after a micro-batch).
    await zero.finishMicroBatch();
    shardedLoss += await l.item();
  }
  const grads = units.gradShards();
  let maxDiff = 0;
  const plainNamed = await plain.namedParameters();
  for (const [i, unit] of unitParams.entries()) {
    const flat = [];
    for (const p of unit) {
      const g = await (plainNamed.find((q) => q.name === p.name).tensor.grad());
      flat.push(...Array.from(await g.toTypedArray()));
    }
    const chunk = Math.ceil(flat.length / group.size);
    const mineFlat = flat.slice(group.rank * chunk, (group.rank + 1) * chunk);
    const got = Array.from(await grads[i].toTypedArray()).map((v) => v / group.size);
    for (let k = 0; k < mineFlat.length; k += 1) maxDiff = Math.max(maxDiff, Math.abs(mineFlat[k] - got[k]));
  }
  const stillEmpty = unitParams.flat().every((p) => p.tensor.numel === 0);
  const noGrads = (await Promise.all(unitParams.flat().map((p) => p.tensor.grad()))).every((g) => g === null);
  const shardNumel = units.shards().reduce((n, s) => n + s.numel, 0);
  const plainLayers = plainNamed.reduce((n, p) => n + p.tensor.numel, 0);
  const outerNames = zero.members[zero.outer].map((m) => m.name).sort();
  console.log(JSON.stringify({ rank: group.rank, maxDiff, emptyAtRest, stillEmpty, noGrads, shardNumel, plainLayers, plainLoss, shardedLoss, outerNames, units: zero.members.length }));
  group.dispose();
})().catch((e) => { console.error(e); process.exit(1); });`;

describe('ZeRO-3 units (launch, 2 ranks, Gloo)', () => {
  it('layers and the outer unit sharded at rest, gathered only while they compute; gradient slices equal the unsharded gradients', async () => {
    const run = spawnSync(process.execPath, [CLI, 'launch', '--nproc-per-node', '2', '--master-port', String(await freePort()), '--', process.execPath, '-e', SCRIPT], { encoding: 'utf8' });
    expect({ status: run.status, stderr: run.status === 0 ? '' : run.stderr }).toEqual({ status: 0, stderr: '' });
    const rows = run.stdout.trim().split('\n').map((l) => JSON.parse(l.replace(/^\[rank \d+\] /, ''))).sort((a, b) => a.rank - b.rank);
    expect(rows).toHaveLength(2);
    for (const r of rows) {
      expect(r.emptyAtRest).toBe(true);
      expect(r.stillEmpty).toBe(true);
      expect(r.noGrads).toBe(true);
      expect(r.maxDiff).toBeLessThan(1e-12);
      expect(r.shardNumel).toBeLessThanOrEqual(Math.ceil(r.plainLayers / 2) + 4);
      // 3 layers and the outer unit (GPT-2's tied head is wte, listed once).
      expect(r.units).toBe(4);
      expect(r.outerNames).toEqual(['transformer.ln_f.bias', 'transformer.ln_f.weight', 'transformer.wpe.weight', 'transformer.wte.weight']);
    }
    // The two ranks' losses add up to plain's.
    expect(Math.abs(rows[0].shardedLoss + rows[1].shardedLoss - 2 * rows[0].plainLoss)).toBeLessThan(1e-12);
  });
});
