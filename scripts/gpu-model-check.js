'use strict';
// Part of the GPU check (scripts/gpu-check.sh): the built-in architectures on CUDA with libtorch 2.x.
// 1. The Qwen3 fixture (sharded bf16) on cuda: SDPA (the default on 2.x) against the eager path and
//    against the Python reference logits, in fp32 and in bf16.
//    LoRA (bf16 base, fp32 adapters): adapters off ≡ the plain model; checkpointed ≡ plain gradients.
//    Packed, prefix-shared batches (SDPA over per-segment blocks) ≡ the padded layout.
//    Generation: greedy with the KV cache ≡ without it; sampling batched ≡ one by one (rows differing: 0).
//    ZeRO-3 on NCCL (one rank): the layer-sharded model's loss and gradients ≡ the plain model's.
// 2. A Qwen3-style ~0.6B model in bf16, batch 8 × 1024, forward + backward: tokens/s and peak CUDA
//    memory with SDPA and with the eager path, each in its own process (peak memory is per process).
// Prints one JSON object per line; exit 1 when a comparison fails.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const FIXTURE = path.join(__dirname, '..', '.gpu-bundle', 'js', 'test', 'fixtures', 'hf-qwen3');
const BIG = { model_type: 'qwen3', vocab_size: 151936, hidden_size: 1024, intermediate_size: 3072, num_hidden_layers: 24, num_attention_heads: 16,
  num_key_value_heads: 8, head_dim: 128, max_position_embeddings: 40960, tie_word_embeddings: true, rope_theta: 1000000 };

async function logits(t, implementation, dtype) {
  const config = JSON.parse(fs.readFileSync(path.join(FIXTURE, 'config.json'), 'utf8'));
  const reference = JSON.parse(fs.readFileSync(path.join(FIXTURE, 'reference.json'), 'utf8'));
  const model = await t.createModel('qwen3', { ...config, attn_implementation: implementation }, { init: false, dtype, device: 'cuda' });
  await model.loadSafetensors(FIXTURE);
  const ids = await t.Tensor.from(reference.input_ids, { dtype: 'int64' }).to('cuda');
  const mask = await t.Tensor.from(reference.attention_mask, { dtype: 'int64' }).to('cuda');
  const out = await t.noGrad(() => model.forward(ids, mask));
  const values = Array.from(await (await (await out.to('float32')).to('cpu')).toTypedArray());
  model.dispose();
  const [, T, V] = reference.logits_shape;
  const real = (flat) => flat.filter((_, i) => reference.attention_mask[Math.floor(i / (T * V))][Math.floor(i / V) % T] === 1);
  return { ours: real(values), fp32: real(reference.logits_fp32), bf16: real(reference.logits_bf16) };
}

// Activation checkpointing on CUDA: the recomputation must redraw SDPA's dropout from the CUDA generator.
async function checkpointedGradientGap(t) {
  const config = JSON.parse(fs.readFileSync(path.join(FIXTURE, 'config.json'), 'utf8'));
  const model = await t.createModel('qwen3', { ...config, attention_dropout: 0.3 }, { init: false, dtype: 'float32', device: 'cuda' });
  await model.loadSafetensors(FIXTURE);
  await model.train(true);
  const ids = await t.randint(0, config.vocab_size, [2, 16], { device: 'cuda' });
  const mask = await t.ones([2, 16], { dtype: 'int64', device: 'cuda' });
  const grads = async () => {
    t.manualSeed(5);
    const loss = await (await (await model.forward(ids, mask)).pow(2)).mean();
    await loss.backward();
    const params = await model.parameters();
    const out = await Promise.all(params.map(async (p) => Array.from(await (await (await p.grad()).to('cpu')).toTypedArray())));
    for (const p of params) await (await p.grad()).zero_();
    return out;
  };
  const plain = await grads();
  model.setGradientCheckpointing(true);
  const checkpointed = await grads();
  model.dispose();
  return Math.max(...plain.map((g, i) => maxAbsDiff(g, checkpointed[i])));
}

// LoRA on CUDA (bf16 frozen model, fp32 adapters): adapters off is the plain model exactly; with
// lora_dropout the checkpointed re-run redraws the adapters' dropout masks from the CUDA generator.
async function loraGaps(t) {
  const lora = { r: 8, alpha: 16, dropout: 0.2, targetModules: 'all-linear', useRslora: false };
  const config = JSON.parse(fs.readFileSync(path.join(FIXTURE, 'config.json'), 'utf8'));
  const plain = await t.loadModel(FIXTURE, { device: 'cuda' });
  const model = await t.loadModel(FIXTURE, { device: 'cuda', lora });
  const ids = await t.randint(0, config.vocab_size, [2, 16], { device: 'cuda' });
  const mask = await t.ones([2, 16], { dtype: 'int64', device: 'cuda' });
  const host = async (x) => Array.from(await (await (await x.to('float32')).to('cpu')).toTypedArray());
  await t.noGrad(async () => {
    for (const p of await model.namedParameters()) if (p.name.endsWith('lora_B.weight')) await p.tensor.copy_(await (await t.randn(p.tensor.shape, { device: 'cuda' })).mul(0.1));
  });
  const base = await host(await t.noGrad(() => plain.forward(ids, mask)));
  const off = await host(await t.noGrad(() => model.adaptersOff().forward(ids, mask)));
  await model.train(true);
  const grads = async () => {
    t.manualSeed(7);
    const loss = await (await (await (await model.forward(ids, mask)).to('float32')).pow(2)).mean();
    await loss.backward();
    const adapters = (await model.namedParameters()).filter((p) => p.tensor.requiresGrad);
    const out = await Promise.all(adapters.map(async (p) => host(await p.tensor.grad())));
    for (const p of adapters) await (await p.tensor.grad()).zero_();
    return out;
  };
  const straight = await grads();
  model.setGradientCheckpointing(true);
  const checkpointed = await grads();
  plain.dispose();
  model.dispose();
  return { adaptersOff: maxAbsDiff(base, off), checkpointed: Math.max(...straight.map((g, i) => maxAbsDiff(g, checkpointed[i]))) };
}

// Packed, prefix-shared batches on CUDA (SDPA over the per-segment blocks with their masks) against
// the padded layout: loss and the policy's gradient norm.
async function packedGaps(t) {
  const { pairLoss } = require('../dist/train/dpo-step');
  const config = JSON.parse(fs.readFileSync(path.join(FIXTURE, 'config.json'), 'utf8'));
  const model = await t.createModel('qwen3', config, { init: false, dtype: 'float32', device: 'cuda' });
  await model.loadSafetensors(FIXTURE);
  await model.eval();
  const reference = { kind: 'model', model: await model.referenceCopy() };
  const pair = (prompt, chosen, rejected) => ({ chosen: { ids: [...prompt, ...chosen], promptLength: prompt.length }, rejected: { ids: [...prompt, ...rejected], promptLength: prompt.length }, boundaryMismatch: false, truncated: false });
  const pairs = [pair([3, 14, 15, 9, 26, 5], [35, 8, 9], [7, 9, 32, 38, 4]), pair([27, 18, 28], [18, 28, 45, 9, 4, 5, 2], [18, 28, 61])];
  const run = async (packing) => {
    const batch = t.collate(pairs, { padId: 0, packing });
    for (const key of ['inputIds', 'attentionMask', 'completionMask']) batch[key] = await batch[key].to('cuda');
    if (batch.packed) for (const key of ['inputIds', 'positionIds', 'segmentIndex', 'segmentBranches', 'segmentPositions', 'tokenSlot', 'sequenceIndex']) batch.packed[key] = await batch.packed[key].to('cuda');
    const r = await pairLoss(model, reference, batch, t.parseDpoLossConfig({ beta: 0.5 }), true);
    await r.result.backward();
    const grads = await Promise.all((await model.parameters()).map(async (p) => Array.from(await (await (await p.grad()).to('cpu')).toTypedArray())));
    for (const p of await model.parameters()) await (await p.grad()).zero_();
    return { loss: r.loss, grads };
  };
  const padded = await run(null);
  const packed = await run({ prefixSharing: true });
  model.dispose();
  return { loss: Math.abs(padded.loss - packed.loss), grads: Math.max(...padded.grads.map((g, i) => maxAbsDiff(g, packed.grads[i]))) };
}

// Generation on CUDA (SDPA with a rectangular mask over the cache): rows whose ids differ.
async function generationGaps(t) {
  const config = JSON.parse(fs.readFileSync(path.join(FIXTURE, 'config.json'), 'utf8'));
  const model = await t.createModel('qwen3', config, { init: false, dtype: 'float32', device: 'cuda' });
  await model.loadSafetensors(FIXTURE);
  const tokenizer = t.HfTokenizer.fromDir(FIXTURE);
  const prompts = ['hello world', 'a b c d e f g', 'x'];
  const differ = (a, b) => a.filter((g, i) => JSON.stringify(g.ids) !== JSON.stringify(b[i].ids)).length;
  const greedy = { maxNewTokens: 16, temperature: 0 };
  const cached = await t.generate(model, tokenizer, prompts, greedy);
  const plain = await t.generate(model, tokenizer, prompts, { ...greedy, useCache: false });
  const sampled = { maxNewTokens: 16, seed: 3, topP: 0.9, topK: 40 };
  const batched = await t.generate(model, tokenizer, prompts, sampled);
  const alone = await t.generate(model, tokenizer, prompts, { ...sampled, batchSize: 1 });
  model.dispose();
  return { greedy: differ(cached, plain), sampled: differ(batched, alone) };
}

// ZeRO-3 units on CUDA (NCCL all-gather / reduce-scatter, set_data into CUDA buffers), one rank. In
// bf16 the units' gradient slices are fp32 (bf16 mixed precision's working copy): they must hold the
// plain bf16 model's gradients exactly.
async function zero3Gaps(t, device = 'cuda', dtype = 'float32') {
  Object.assign(process.env, { RANK: '0', LOCAL_RANK: '0', WORLD_SIZE: '1', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(29400 + Math.floor(Math.random() * 500)) });
  const group = await t.ProcessGroup.init(t.distributedEnv(), { timeoutMs: 60000 });
  const config = JSON.parse(fs.readFileSync(path.join(FIXTURE, 'config.json'), 'utf8'));
  const load = async (on) => {
    const m = await t.createModel('qwen3', config, { init: false, dtype, device: on });
    await m.loadSafetensors(FIXTURE);
    await m.eval();
    return m;
  };
  // The sharded one is staged in host memory and sharded onto the device (as the trainer does).
  const [plain, sharded] = [await load(device), await load('cpu')];
  const zero = await t.ZeroLayers.shard(sharded, group, { device, ...(dtype === 'bfloat16' ? { gradDtype: 'float32' } : {}) });
  await sharded.to({ device });
  const ids = await (await t.randint(0, config.vocab_size, [2, 12])).to(device);
  const mask = await t.ones([2, 12], { dtype: 'int64', device });
  const lossOf = async (m) => (await (await (await m.forward(ids, mask)).to('float32')).logsumexp(2)).mean();
  const [a, b] = [await lossOf(plain), await lossOf(sharded)];
  await a.backward();
  await b.backward();
  await zero.finishMicroBatch(); // the outer unit's gradients (embeddings, norm, head) into its slice
  const named = await plain.namedParameters();
  let grads = 0;
  for (const [u, members] of zero.members.entries()) {
    const flat = [];
    for (const m of members) flat.push(...Array.from(await (await (await named.find((p) => p.name === m.name).tensor.grad()).to({ dtype: 'float32', device: 'cpu' })).toTypedArray()));
    const got = Array.from(await (await zero.units.gradShards()[u].to('cpu')).toTypedArray());
    grads = Math.max(grads, maxAbsDiff(flat, got.slice(0, flat.length)));
  }
  const loss = Math.abs((await a.item()) - (await b.item()));
  plain.dispose();
  sharded.dispose();
  group.dispose();
  return { loss, grads };
}

const maxAbsDiff = (a, b) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
const maxAbs = (a) => a.reduce((m, x) => Math.max(m, Math.abs(x)), 0);

async function compare() {
  const t = require('../dist');
  let failed = 0;
  const report = (name, diff, tolerance) => {
    const ok = diff <= tolerance;
    if (!ok) failed += 1;
    console.log(JSON.stringify({ check: name, maxAbsDiff: diff, tolerance, ok }));
  };
  const sdpa32 = await logits(t, 'sdpa', 'float32');
  const eager32 = await logits(t, 'eager', 'float32');
  report('qwen3 fp32 cuda sdpa vs Python reference', maxAbsDiff(sdpa32.ours, sdpa32.fp32), 1e-4);
  report('qwen3 fp32 cuda sdpa vs eager', maxAbsDiff(sdpa32.ours, eager32.ours), 1e-4);
  const sdpa16 = await logits(t, 'sdpa', 'bfloat16');
  report('qwen3 bf16 cuda sdpa vs Python bf16 reference', maxAbsDiff(sdpa16.ours, sdpa16.bf16), 0.03 * maxAbs(sdpa16.bf16));
  report('qwen3 cuda sdpa with dropout: checkpointed vs plain gradients', await checkpointedGradientGap(t), 1e-5);
  const lora = await loraGaps(t);
  report('qwen3 bf16 cuda LoRA: adapters off vs the plain model', lora.adaptersOff, 0);
  report('qwen3 bf16 cuda LoRA with dropout: checkpointed vs plain adapter gradients', lora.checkpointed, 1e-6);
  const packed = await packedGaps(t);
  report('qwen3 fp32 cuda prefix-shared packed vs padded: loss', packed.loss, 1e-5);
  report('qwen3 fp32 cuda prefix-shared packed vs padded: gradients', packed.grads, 1e-4);
  const generation = await generationGaps(t);
  report('qwen3 fp32 cuda generation: greedy with vs without KV cache (rows differing)', generation.greedy, 0);
  report('qwen3 fp32 cuda generation: sampled batched vs one by one (rows differing)', generation.sampled, 0);
  const zero3 = await zero3Gaps(t);
  report('qwen3 fp32 cuda ZeRO-3 (NCCL, 1 rank): sharded vs plain loss', zero3.loss, 1e-5);
  report('qwen3 fp32 cuda ZeRO-3 (NCCL, 1 rank): sharded vs plain layer gradients', zero3.grads, 1e-4);
  const zero3bf16 = await zero3Gaps(t, 'cuda', 'bfloat16');
  report('qwen3 bf16 cuda ZeRO-3 (NCCL, 1 rank, fp32 gradient slices): sharded vs plain loss', zero3bf16.loss, 1e-3);
  report('qwen3 bf16 cuda ZeRO-3 (NCCL, 1 rank, fp32 gradient slices): sharded vs plain layer gradients', zero3bf16.grads, 1e-3);
  return failed;
}

async function throughput(implementation) {
  const t = require('../dist');
  const model = await t.createModel('qwen3', { ...BIG, attn_implementation: implementation }, { dtype: 'bfloat16', device: 'cuda' });
  const params = (await model.parameters()).reduce((n, p) => n + p.numel, 0);
  const ids = await t.randint(0, BIG.vocab_size, [8, 1024], { device: 'cuda' });
  const mask = await t.ones([8, 1024], { dtype: 'int64', device: 'cuda' });
  const weights = await model.parameters();
  const step = async () => {
    for (const p of weights) (await p.grad())?.zero_();
    const out = await model.forward(ids, mask);
    const loss = await (await (await out.to('float32')).logsumexp(2)).mean();
    await loss.backward();
    await loss.item(); // waits for the device
    out.dispose();
    loss.dispose();
  };
  await step();
  const steps = 5;
  const start = process.hrtime.bigint();
  for (let i = 0; i < steps; i += 1) await step();
  const stepMs = Number(process.hrtime.bigint() - start) / 1e6 / steps;
  const peak = t.memory().cuda[0].peakAllocatedBytes;
  console.log(JSON.stringify({ bench: `qwen3 ${(params / 1e6).toFixed(0)}M bf16, 8 x 1024, fwd+bwd`, attention: implementation, stepMs, tokensPerSec: (8 * 1024 * 1000) / stepMs, peakCudaGiB: peak / 2 ** 30 }));
}

if (process.argv[2] === '--zero3-cpu') {
  // A dry run of the ZeRO-3 check on the CPU (Gloo), for machines without a GPU.
  zero3Gaps(require('../dist'), 'cpu', process.argv[3] ?? 'float32').then((r) => console.log(JSON.stringify(r))).catch((err) => { console.error(err); process.exit(1); });
} else if (process.argv[2] === '--throughput') {
  throughput(process.argv[3]).catch((err) => { console.error(err); process.exit(1); });
} else {
  compare().then((failed) => {
    for (const implementation of ['sdpa', 'eager']) {
      const child = spawnSync(process.execPath, [__filename, '--throughput', implementation], { encoding: 'utf8' });
      process.stdout.write(child.stdout);
      if (child.status !== 0) { console.log(JSON.stringify({ bench: implementation, error: child.stderr.trim().split('\n').slice(-5).join(' | ') })); failed += 1; }
    }
    process.exit(failed ? 1 : 0);
  }).catch((err) => { console.error(err); process.exit(1); });
}
