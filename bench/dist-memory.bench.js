'use strict';
// Part of `npm run bench:dist`: per-rank memory and step time of ZeRO stages 0-3 with 2 ranks (Gloo,
// 1 thread each) on a llama-like ~100M model (hidden 768, 12 layers, GQA 12/4, SwiGLU 2048, vocab
// 32000, tied), fp32, 2 pairs per rank, 3 DPO steps with a live reference. Per rank: peak RSS, the
// CPU allocator's peak bytes in tensors, and bytes in tensors after the run (weights of policy and
// reference, gradients, AdamW moments; activations are gone); seconds per step in collectives; and
// LoRA (r 16, all linears) and bf16 mixed precision at stages 0 and 3.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const freePort = require('./free-port');

const CLI = path.join(__dirname, '..', 'dist', 'cli', 'main.js');
const MODEL = { vocab_size: 32000, hidden_size: 768, intermediate_size: 2048, num_hidden_layers: 12, num_attention_heads: 12, num_key_value_heads: 4, max_position_embeddings: 256, tie_word_embeddings: true };

const WORKER = (dir, { stage, extra }) => `
const t = require(${JSON.stringify(path.join(__dirname, '..', 'dist'))});
(async () => {
  const trainer = await t.DPOTrainer.create({
    model: { architecture: 'llama', config: ${JSON.stringify(MODEL)} }, tokenizer_name_or_path: ${JSON.stringify(path.join(__dirname, '..', 'test', 'fixtures', 'tiny-gpt2'))},
    train_dataset: ${JSON.stringify(path.join(dir, 'train.jsonl'))}, output_dir: ${JSON.stringify(path.join(dir, `out-${stage}`))}, zero_stage: ${stage}, ...${JSON.stringify(extra ?? {})},
    max_steps: 3, per_device_train_batch_size: 2, logging_steps: 1, report_to: [], save_strategy: 'no', save_final_model: false, cache_dir: false, learning_rate: 1e-5,
  });
  await trainer.train();
  const m = t.memory();
  const steps = trainer.history.filter((r) => r.step_seconds !== undefined).slice(1);
  // Seconds spent in collectives over the run (3 steps): the layer units' gathers (the wait only: a
  // finished prefetch costs none) and gradient reduce-scatters (policy and reference), the bucket
  // reducer's waits, and the optimizer's own reduce-scatter (stage 1) and all-gather after the update.
  const run = trainer.run;
  const units = [run.policy.shardedLayers, run.reference.kind === 'model' ? run.reference.model.shardedLayers : null].filter(Boolean).map((z) => z.units.stats());
  const optimizer = run.optimizer;
  const comm = {
    gather: units.reduce((s, u) => s + u.gatherWaitSeconds, 0), reduceScatter: units.reduce((s, u) => s + u.reduceSeconds, 0) + (optimizer.reducer ? optimizer.reducer.stats().waitSeconds : 0) + (optimizer.collectiveSeconds?.reduceScatter ?? 0),
    allGather: optimizer.collectiveSeconds?.allGather ?? 0,
  };
  console.log(JSON.stringify({ rank: Number(process.env.RANK), peakRssMB: process.resourceUsage().maxRSS / 1024, peakTensorMB: m.cpu.peakAllocatedBytes / 1e6, tensorsAfterMB: m.cpu.allocatedBytes / 1e6,
    stepSeconds: steps.reduce((s, r) => s + r.step_seconds, 0) / Math.max(1, steps.length), commPerStep: Object.fromEntries(Object.entries(comm).map(([k, v]) => [k, v / 3])) }));
  trainer.dispose();
})().catch((e) => { console.error(e); process.exit(1); });`;

(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'torch-dpo-bench-zero-'));
  const rows = Array.from({ length: 32 }, (_, i) => ({ prompt: `w${10 + (i % 20)} w${11 + (i % 7)} w12 w13`, chosen: ` w3 w${4 + (i % 3)} w20 w21 w22`, rejected: ` w5 w${7 + (i % 4)} w30 w31` }));
  fs.writeFileSync(path.join(dir, 'train.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n'));
  console.log('\nZeRO stages, 2 ranks × 1 thread (Gloo), llama-like 100M (tied, fp32), 2 pairs per rank, live reference; per rank (max of the two)');
  console.log('| stage | peak RSS | peak bytes in tensors | bytes in tensors after the run | step | waiting for layer gathers | gradient reduce-scatters | all-gather after the update |\n|---|---|---|---|---|---|---|---|');
  // LoRA (r 16 on every linear: the frozen base sharded at stage 3) and bf16 mixed precision (fp32 masters) at stages 0 and 3 too.
  const lora = { use_peft: true, lora_r: 16, lora_alpha: 32, lora_target_modules: 'all-linear' };
  const variants = [0, 1, 2, 3].map((stage) => ({ stage, label: String(stage) }))
    .concat([0, 3].map((stage) => ({ stage, label: `${stage} + LoRA r 16`, extra: lora })), [0, 3].map((stage) => ({ stage, label: `${stage} + bf16 mixed`, extra: { bf16: true } })));
  for (const variant of variants) {
    const run = spawnSync(process.execPath, [CLI, 'launch', '--nproc-per-node', '2', '--master-port', String(await freePort()), '--', process.execPath, '-e', WORKER(dir, variant)],
      { encoding: 'utf8', env: { ...process.env, TORCH_DPO_NUM_THREADS: '1' } });
    if (run.status !== 0) throw new Error(run.stderr);
    const ranks = run.stdout.trim().split('\n').map((l) => JSON.parse(l.replace(/^\[rank \d+\] /, '')));
    const max = (key) => Math.max(...ranks.map((r) => r[key]));
    const comm = (key) => `${Math.max(...ranks.map((r) => r.commPerStep[key])).toFixed(2)} s`;
    console.log(`| ${variant.label} | ${(max('peakRssMB') / 1024).toFixed(2)} GiB | ${(max('peakTensorMB') / 1024).toFixed(2)} GB | ${(max('tensorsAfterMB') / 1024).toFixed(2)} GB | ${max('stepSeconds').toFixed(1)} s | ${comm('gather')} | ${comm('reduceScatter')} | ${comm('allGather')} |`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
