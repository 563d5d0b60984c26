'use strict';
// `npm run bench:throughput`: useful tokens/s of DPO steps (forward + backward + reference forward +
// AdamW, fp32) on the built-in llama at ~56M parameters (hidden 512, 8 layers, 8/4 heads, SwiGLU
// 1408, vocab 32000), 4 pairs per step, for the padded 2B layout, padding_free, and padding_free +
// prefix_sharing, and a TRL-style padded Python step (bench/throughput_python.py: concatenated 2B
// rows, full logits, selective log-softmax, deep-copied frozen reference) on the same model shape and
// the same batches. Two synthetic sets written here: HH-style (shared prompts of 200–600 tokens,
// completions of 20–200) and standard (prompts of 20–60). Useful tokens: each sequence's own tokens
// (a shared prompt counts once per sequence), so every row divides the same work by its time.
const { spawnSync } = require('node:child_process');
const { mkdtempSync, writeFileSync } = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const STEPS = Number(process.env.TORCH_DPO_BENCH_STEPS ?? 3);
const PAIRS = 4;
const CONFIG = {
  vocab_size: 32000, hidden_size: 512, intermediate_size: 1408, num_hidden_layers: 8, num_attention_heads: 8, num_key_value_heads: 4,
  max_position_embeddings: 4096, rms_norm_eps: 1e-6,
};
const SETS = { 'HH-style (prompts 200–600)': [200, 600], 'standard (prompts 20–60)': [20, 60] };
const MODES = { padded: null, padding_free: { prefixSharing: false }, 'padding_free + prefix_sharing': { prefixSharing: true } };

/** Deterministic pseudo-random integers (the same batches in every process). */
function generator(seed) {
  let state = seed >>> 0;
  return (low, high) => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return low + (state % (high - low + 1));
  };
}

/** STEPS batches of PAIRS pairs: [prompt, chosen, rejected] token ids. */
function batches([promptLow, promptHigh]) {
  const next = generator(7);
  const ids = (n) => Array.from({ length: n }, () => next(1, CONFIG.vocab_size - 1));
  return Array.from({ length: STEPS + 1 }, () => Array.from({ length: PAIRS }, () => {
    const prompt = ids(next(promptLow, promptHigh));
    return { prompt, chosen: ids(next(20, 200)), rejected: ids(next(20, 200)) };
  }));
}

async function runCase(setName, mode) {
  const t = require('../dist');
  const { microStep } = require('../dist/train/dpo-step');
  t.manualSeed(0);
  const policy = await t.createModel('llama', CONFIG);
  await policy.eval();
  const reference = { kind: 'model', model: await policy.referenceCopy() };
  const optimizer = new t.AdamW(await policy.namedParameters(), { lr: 1e-6 });
  const loss = t.parseDpoLossConfig({});
  const data = batches(SETS[setName]).map((batch) => batch.map(({ prompt, chosen, rejected }) => ({
    chosen: { ids: [...prompt, ...chosen], promptLength: prompt.length },
    rejected: { ids: [...prompt, ...rejected], promptLength: prompt.length },
    boundaryMismatch: false, truncated: false,
  })));
  const step = async (pairs) => {
    const batch = t.collate(pairs, { padId: 0, packing: MODES[mode] });
    const r = await microStep(policy, reference, batch, loss, 1, true);
    t.disposeBatch(batch);
    await optimizer.clipGradNorm(1.0);
    await optimizer.step();
    await optimizer.zeroGrad();
    return r;
  };
  await step(data[0]); // warm-up
  let useful = 0;
  let processed = 0;
  const start = process.hrtime.bigint();
  for (const pairs of data.slice(1)) {
    const r = await step(pairs);
    useful += r.tokens;
    processed += r.processedTokens;
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  process.stdout.write(JSON.stringify({ usefulPerSec: useful / seconds, processedPerSec: processed / seconds, stepSeconds: seconds / STEPS, processedShare: processed / useful }));
}

function main() {
  const threads = os.availableParallelism();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'torch-dpo-throughput-'));
  console.log(`\nbench:throughput: DPO steps of ${PAIRS} pairs, built-in llama ~56M fp32, ${threads} threads, mean of ${STEPS} steps after one warm-up; useful tokens = each sequence's own`);
  for (const setName of Object.keys(SETS)) {
    const rows = [];
    for (const mode of Object.keys(MODES)) {
      const child = spawnSync(process.execPath, [__filename, '--case', setName, mode], { encoding: 'utf8' });
      rows.push({ name: `torch-dpo ${mode}`, ...(child.status === 0 ? JSON.parse(child.stdout) : { failed: child.stderr.trim().split('\n').pop() }) });
    }
    const file = path.join(dir, 'batches.json');
    writeFileSync(file, JSON.stringify(batches(SETS[setName])));
    const py = spawnSync('/usr/bin/python3', [path.join(__dirname, 'throughput_python.py'), String(threads), file, JSON.stringify(CONFIG)], { encoding: 'utf8' });
    if (py.status === 0) rows.push({ name: 'Python step, TRL-style (padded)', ...JSON.parse(py.stdout.trim().split('\n').pop()) });
    else console.log(`bench:throughput: no Python row (apt-get install python3-torch to add it): ${py.stderr.trim().split('\n').pop()}`);
    const padded = rows[0];
    const python = rows.find((r) => r.name.startsWith('Python'));
    console.log(`\n${setName}\n| layout | useful tokens/s | step | token slots run / useful | vs padded | vs Python |\n|---|---|---|---|---|---|`);
    for (const r of rows) {
      if (r.failed) { console.log(`| ${r.name} | failed: ${r.failed} | | | | |`); continue; }
      const ratio = (other) => (other && !other.failed ? (r.usefulPerSec / other.usefulPerSec).toFixed(2) : 'n/a');
      console.log(`| ${r.name} | ${r.usefulPerSec.toFixed(0)} | ${r.stepSeconds.toFixed(2)} s | ${r.processedShare.toFixed(2)} | ${ratio(padded)} | ${ratio(python)} |`);
    }
  }
}

if (process.argv[2] === '--case') {
  runCase(process.argv[3], process.argv[4]).catch((err) => {
    console.error(err);
    process.exit(1);
  });
} else {
  main();
}
