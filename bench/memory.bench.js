'use strict';
// `npm run bench:memory`: peak RSS and time of one DPO step (4 pairs, T tokens per row, half prompt)
// on a llama-like model of ~100M parameters (hidden 768, 12 layers, 12 heads / 4 kv heads, SwiGLU
// 2048, vocab 32000, tied embeddings), for torch-dpo in fp32 (full fine-tuning, reference copy),
// + bf16 mixed precision, + activation checkpointing, + LoRA r 16 on all linear layers (frozen model
// in bf16, reference = adapters off), and a TRL-style Python step (bench/memory_python.py: fp32,
// full logits, deep-copied frozen reference). Then the longest T that trains within BUDGET_GIB for
// torch-dpo with everything on and for the Python step: peak RSS measured at three lengths, a
// quadratic through them solved for the budget, and a run at that length to confirm it.
// Each case runs in a fresh process (peak RSS is per process). TORCH_DPO_BENCH_T overrides T.
const { spawnSync } = require('node:child_process');
const os = require('node:os');
const path = require('node:path');

const PAIRS = 4;
const T = Number(process.env.TORCH_DPO_BENCH_T ?? 1024);
const BUDGET_GIB = Number(process.env.TORCH_DPO_BENCH_BUDGET_GIB ?? 6);
const CONFIG = {
  vocab_size: 32000, hidden_size: 768, intermediate_size: 2048, num_hidden_layers: 12, num_attention_heads: 12, num_key_value_heads: 4,
  max_position_embeddings: 65536, rms_norm_eps: 1e-6, tie_word_embeddings: true,
};
const MODES = {
  'fp32': {},
  '+ bf16 mixed': { bf16: true },
  '+ checkpointing': { bf16: true, checkpointing: true },
  '+ LoRA r 16': { bf16: true, checkpointing: true, lora: true },
};

async function runCase(mode, length) {
  const t = require('../dist');
  const { microStep } = require('../dist/train/dpo-step');
  const { MixedPrecision } = require('../dist/train/mixed-precision');
  const options = MODES[mode];
  t.manualSeed(0);
  const lora = options.lora ? { r: 16, alpha: 32, dropout: 0, targetModules: 'all-linear', useRslora: false } : null;
  // As loadRun: under LoRA the frozen model is bf16 and the adapters fp32; otherwise fp32 masters.
  const policy = await t.createModel('llama', CONFIG, { lora, dtype: lora && options.bf16 ? 'bfloat16' : 'float32' });
  await policy.eval();
  const mixed = options.bf16 && !lora ? await MixedPrecision.create(policy) : null;
  const compute = mixed ? mixed.working : policy;
  compute.setGradientCheckpointing(Boolean(options.checkpointing));
  const reference = { kind: 'model', model: lora ? policy.adaptersOff() : await compute.referenceCopy() };
  const optimizer = new t.AdamW(await policy.namedParameters(), { lr: 1e-6 });
  const ids = (await (await t.randint(0, CONFIG.vocab_size, [2 * PAIRS, length])).toArray()).map(Number);
  const row = (r) => ({ ids: ids.slice(r * length, (r + 1) * length), promptLength: length / 2 });
  const pairs = Array.from({ length: PAIRS }, (_, i) => ({ chosen: row(i), rejected: row(PAIRS + i), boundaryMismatch: false, truncated: false }));
  const loss = t.parseDpoLossConfig({});
  const start = process.hrtime.bigint();
  const batch = t.collate(pairs, { padId: 0 });
  await microStep(compute, reference, batch, loss, 1, true);
  t.disposeBatch(batch);
  await mixed?.accumulateGrads();
  await optimizer.clipGradNorm(1.0);
  await optimizer.step();
  await optimizer.zeroGrad();
  await mixed?.refresh();
  const stepMs = Number(process.hrtime.bigint() - start) / 1e6;
  const params = (await policy.parameters()).reduce((n, p) => n + p.numel, 0);
  process.stdout.write(JSON.stringify({ stepMs, peakRssMiB: process.resourceUsage().maxRSS / 1024, params }));
}

const threads = os.availableParallelism();

function measure(mode, length) {
  const child = mode === 'python'
    ? spawnSync('/usr/bin/python3', [path.join(__dirname, 'memory_python.py'), String(threads), String(PAIRS), String(length), JSON.stringify(CONFIG)], { encoding: 'utf8' })
    : spawnSync(process.execPath, [__filename, '--case', mode, String(length)], { encoding: 'utf8' });
  if (child.status !== 0) return { failed: (child.stderr || `killed by ${child.signal}`).trim().split('\n').pop() };
  return JSON.parse(child.stdout.trim().split('\n').pop());
}

/**
 * The longest multiple of 64 whose peak RSS stays within the budget: runs at `lengths`, a quadratic
 * through them (activations grow with T, eager attention scores with T²) solved for the budget as the
 * first guess, then bisection between the longest run within the budget and the shortest over it.
 */
function longestLength(mode, lengths) {
  const budget = BUDGET_GIB * 1024;
  const runs = new Map();
  const within = (length) => {
    if (!runs.has(length)) runs.set(length, measure(mode, length));
    const r = runs.get(length);
    return !r.failed && r.peakRssMiB <= budget; // a run killed for memory is over the budget too
  };
  let good = 0;
  let bad = Number.POSITIVE_INFINITY;
  for (const length of lengths) {
    if (within(length)) good = Math.max(good, length);
    else bad = Math.min(bad, length);
  }
  const points = lengths.map((length) => [length, runs.get(length).peakRssMiB]).filter(([, y]) => y !== undefined);
  let guess = null;
  if (points.length === 3) {
    const [[x0, y0], [x1, y1], [x2, y2]] = points;
    const c = ((y2 - y0) / (x2 - x0) - (y1 - y0) / (x1 - x0)) / (x2 - x1);
    const b = (y1 - y0) / (x1 - x0) - c * (x0 + x1);
    const a = y0 - b * x0 - c * x0 * x0;
    guess = Math.floor((c > 1e-9 ? (-b + Math.sqrt(b * b - 4 * c * (a - budget))) / (2 * c) : (budget - a) / b) / 64) * 64;
  }
  if (good === 0) return { failed: runs.get(lengths[0]).failed ?? `over ${BUDGET_GIB} GiB already at T ${lengths[0]}` };
  if (bad === Number.POSITIVE_INFINITY) bad = 2 * Math.max(...lengths); // not reached: one probe beyond
  while (bad - good > 64) {
    const middle = guess !== null && guess > good && guess < bad ? guess : Math.floor((good + bad) / 2 / 64) * 64;
    guess = null;
    if (within(middle)) good = middle;
    else bad = middle;
  }
  return { length: good, ...runs.get(good) };
}

function main() {
  const rows = Object.keys(MODES).map((mode) => ({ mode: `torch-dpo ${mode}`, ...measure(mode, T) }));
  const python = measure('python', T);
  rows.push({ mode: 'Python step, TRL-style (fp32, full logits, reference copy)', ...python });
  const params = rows.find((r) => r.params)?.params ?? 0;
  console.log(`\nbench:memory: one DPO step, ${PAIRS} pairs × T ${T}, llama-like ${(params / 1e6).toFixed(1)}M parameters, ${threads} threads, CPU`);
  console.log('| mode | peak RSS | step |\n|---|---|---|');
  for (const r of rows) console.log(r.failed ? `| ${r.mode} | failed: ${r.failed} | |` : `| ${r.mode} | ${(r.peakRssMiB / 1024).toFixed(2)} GiB | ${(r.stepMs / 1000).toFixed(1)} s |`);

  const ours = longestLength('+ LoRA r 16', [512, 1024, 2048]);
  const theirs = longestLength('python', [128, 256, 512]);
  console.log(`\nlongest T per row (4 pairs) within ${BUDGET_GIB} GiB peak RSS`);
  console.log('| | longest T | peak RSS there | step there |\n|---|---|---|---|');
  for (const [name, r] of [['torch-dpo, bf16 + checkpointing + LoRA r 16', ours], ['Python step, TRL-style', theirs]]) {
    console.log(r.failed ? `| ${name} | failed: ${r.failed} | | |` : `| ${name} | ${r.length} | ${(r.peakRssMiB / 1024).toFixed(2)} GiB | ${(r.stepMs / 1000).toFixed(1)} s |`);
  }
  if (!ours.failed && !theirs.failed) console.log(`\ntorch-dpo trains ${(ours.length / theirs.length).toFixed(1)}× longer sequences within the budget (target ≥ 4×)`);
}

if (process.argv[2] === '--case') {
  runCase(process.argv[3], Number(process.argv[4])).catch((err) => {
    console.error(err);
    process.exit(1);
  });
} else {
  main();
}
