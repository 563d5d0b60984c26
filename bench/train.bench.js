'use strict';
// `npm run bench:train`: DPO optimizer steps on the built-in GPT-2 (~10.6M parameters), 8 pairs of
// 256 tokens (64 prompt + 192 completion): live reference (logits path, in-place backward),
// precomputed reference, fused-linear path, and the same step written in Python with Debian's torch
// (concatenated forward, gather of log_softmax, sigmoid loss, AdamW). Same threads and BLAS.
// The live-reference step runs once per CPU allocator (bench/allocators.js).
const { spawnSync } = require('node:child_process');
const os = require('node:os');
const path = require('node:path');
const { allocatorVariants } = require('./allocators');

const STEPS = 3;
const [PAIRS, LENGTH, PROMPT] = [8, 256, 64];

async function runVariant(variant) {
  const t = require('../dist');
  const { microStep } = require('../dist/train/dpo-step');
  t.manualSeed(0);
  const policy = await t.createModel('gpt2', { vocab_size: 16384, n_positions: 256, n_embd: 256, n_layer: 8, n_head: 8, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0 });
  await policy.eval();
  const model = await policy.referenceCopy();
  let reference = { kind: 'model', model };
  const ids = (await (await t.randint(0, 16384, [2 * PAIRS, LENGTH])).toArray()).map(Number);
  const row = (r) => ({ ids: ids.slice(r * LENGTH, (r + 1) * LENGTH), promptLength: PROMPT });
  const pairs = Array.from({ length: PAIRS }, (_, i) => ({ chosen: row(i), rejected: row(PAIRS + i), boundaryMismatch: false, truncated: false }));
  const loss = t.parseDpoLossConfig({});
  const fused = variant === 'fused-linear';
  if (variant === 'precomputed reference') {
    const batch = t.collate(pairs, { padId: 0 });
    const { batchLogps } = require('../dist/train/dpo-step');
    const { logps } = await t.noGrad(() => batchLogps(model, batch, { tokenLogps: false, wpo: false, metrics: false, fusedLinear: false }));
    const v = Array.from(await logps.toTypedArray());
    model.dispose();
    reference = { kind: 'logps', chosen: v.slice(0, PAIRS), rejected: v.slice(PAIRS) };
  }
  const optimizer = new t.AdamW(await policy.namedParameters(), { lr: 1e-6 });
  const step = async () => {
    const batch = t.collate(pairs, { padId: 0 });
    await microStep(policy, reference, batch, loss, 1, fused);
    t.disposeBatch(batch);
    await optimizer.clipGradNorm(1.0);
    await optimizer.step();
    await optimizer.zeroGrad();
  };
  await step();
  const start = process.hrtime.bigint();
  for (let i = 0; i < STEPS - 1; i += 1) await step();
  const before = t.memory().cpu;
  await step();
  const after = t.memory().cpu;
  const stepMs = Number(process.hrtime.bigint() - start) / 1e6 / STEPS;
  const cache = after.caching ? { hits: after.cacheHits - before.cacheHits, misses: after.cacheMisses - before.cacheMisses } : null;
  process.stdout.write(JSON.stringify({ stepMs, tokensPerSec: (2 * PAIRS * LENGTH * 1000) / stepMs, cache }));
}

function main() {
  const threads = os.availableParallelism();
  const rows = [];
  const py = spawnSync('/usr/bin/python3', [path.join(__dirname, 'train_python.py'), String(threads), String(STEPS)], { encoding: 'utf8' });
  // The Python row needs Debian's python3-torch (apt-get install python3-torch); the rest runs without.
  const python = py.status === 0 ? JSON.parse(py.stdout.trim().split('\n').pop()) : null;
  if (python) rows.push([`Python step (Debian torch ${python.torch})`, python]);
  else console.log(`bench:train: no Python row (apt-get install python3-torch to add it): ${py.stderr.trim().split('\n').pop()}`);
  const run = (variant, env = {}) => {
    const child = spawnSync(process.execPath, [__filename, '--variant', variant], { encoding: 'utf8', env: { ...process.env, ...env } });
    if (child.status !== 0) throw new Error(`${variant}: ${child.stderr}`);
    return JSON.parse(child.stdout);
  };
  for (const variant of ['live reference', 'precomputed reference', 'fused-linear']) rows.push([`torch-dpo, ${variant}`, run(variant)]);
  const { variants, missing } = allocatorVariants();
  const allocatorRows = variants.map(({ name, env }) => [name, run('live reference', env)]);
  const live = rows.find(([name]) => name.endsWith('live reference'))[1];
  console.log(`\ntrain: DPO steps, GPT-2 10.6M params, ${PAIRS} pairs × ${LENGTH} tokens, ${threads} threads, mean of ${STEPS} steps after 1 warm-up`);
  console.log('| variant | step | steps/s | tokens/s | × Python | × live step time |\n|---|---|---|---|---|---|');
  for (const [name, r] of rows) {
    console.log(`| ${name} | ${(r.stepMs / 1000).toFixed(2)} s | ${(1000 / r.stepMs).toFixed(3)} | ${Math.round(r.tokensPerSec)} | ${python ? (r.tokensPerSec / python.tokensPerSec).toFixed(2) : 'n/a'} | ${(r.stepMs / live.stepMs).toFixed(2)} |`);
  }
  const jemalloc = allocatorRows.find(([name]) => name.startsWith('jemalloc'));
  console.log(`\ntrain: live-reference step by CPU allocator (Python above runs on glibc)${missing ? `; ${missing}` : ''}`);
  console.log('| allocator | step | × jemalloc step time | cache hits / misses in the last step |\n|---|---|---|---|');
  for (const [name, r] of allocatorRows) {
    const ratio = jemalloc ? (r.stepMs / jemalloc[1].stepMs).toFixed(2) : 'n/a';
    console.log(`| ${name} | ${(r.stepMs / 1000).toFixed(3)} s | ${ratio} | ${r.cache ? `${r.cache.hits} / ${r.cache.misses}` : 'off'} |`);
  }
}

if (process.argv[2] === '--variant') {
  runVariant(process.argv[3]).catch((err) => {
    console.error(err);
    process.exit(1);
  });
} else {
  main();
}
