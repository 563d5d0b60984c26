'use strict';
// `npm run bench:model`: forward+backward tokens/s of GPT-2 (~10M parameters, 8 × 256 tokens) —
// torch-dpo's built-in (TorchScript from TypeScript), torch-dpo running the Python-traced file, and
// the traced model driven from Python (Debian's torch) with the same threads and BLAS. Each side in
// its own process. Loss: mean logsumexp of the logits (the same in all three).
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const STEPS = 5;

async function timeSteps(model, ids, mask) {
  const params = await model.parameters();
  const step = async () => {
    for (const p of params) (await p.grad())?.zero_();
    const logits = await model.forward(ids, mask);
    await (await (await logits.logsumexp(2)).mean()).backward();
  };
  for (let i = 0; i < 2; i += 1) await step();
  const start = process.hrtime.bigint();
  for (let i = 0; i < STEPS; i += 1) await step();
  return Number(process.hrtime.bigint() - start) / 1e6 / STEPS;
}

async function runTorchDpo(folder, variant) {
  const { loadModel, createModel, randint, ones, numThreads } = require('../dist');
  const config = JSON.parse(fs.readFileSync(path.join(folder, 'config.json'), 'utf8'));
  let model;
  if (variant === 'traced') {
    model = await loadModel(folder);
  } else {
    model = await createModel('gpt2', config);
    await model.loadSafetensors(path.join(folder, 'model.safetensors'));
  }
  const ids = await randint(0, config.vocab_size, [8, 256]);
  const mask = await ones([8, 256], { dtype: 'int64' });
  const stepMs = await timeSteps(model, ids, mask);
  process.stdout.write(JSON.stringify({ stepMs, tokensPerSec: (8 * 256 * 1000) / stepMs, threads: numThreads() }));
}

function main() {
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'torch-dpo-bench-model-'));
  const threads = require('os').availableParallelism();
  const py = spawnSync('/usr/bin/python3', [path.join(__dirname, 'model_python.py'), folder, String(threads), String(STEPS)], { encoding: 'utf8' });
  if (py.status !== 0) {
    console.log(`bench:model needs Debian's python3-torch for the comparison and the weights: ${py.stderr.trim().split('\n').pop()}`);
    process.exit(1);
  }
  const python = JSON.parse(py.stdout.trim().split('\n').pop());
  const rows = [['Python, traced (Debian torch ' + python.torch + ')', python]];
  for (const variant of ['builtin', 'traced']) {
    const child = spawnSync(process.execPath, [__filename, '--variant', variant, folder], { encoding: 'utf8' });
    if (child.status !== 0) throw new Error(`${variant}: ${child.stderr}`);
    rows.push([variant === 'builtin' ? 'torch-dpo built-in GPT-2' : 'torch-dpo, the Python-traced file', JSON.parse(child.stdout)]);
  }
  console.log(`\nmodel: GPT-2 ${(python.params / 1e6).toFixed(1)}M params, batch 8 × 256 tokens, forward + backward, ${threads} threads, mean of ${STEPS} steps`);
  console.log('| runner | step | tokens/s | × Python |\n|---|---|---|---|');
  for (const [name, r] of rows) {
    console.log(`| ${name} | ${r.stepMs.toFixed(0)} ms | ${r.tokensPerSec.toFixed(0)} | ${(r.tokensPerSec / python.tokensPerSec).toFixed(2)} |`);
  }
  fs.rmSync(folder, { recursive: true, force: true });
}

if (process.argv[2] === '--variant') {
  runTorchDpo(process.argv[4], process.argv[3]).catch((err) => {
    console.error(err);
    process.exit(1);
  });
} else {
  main();
}
