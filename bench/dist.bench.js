'use strict';
// `npm run bench:dist`: gradient all-reduce bandwidth over loopback (Gloo, 2 ranks, 25 MB buckets)
// and DPO step throughput of the built-in GPT-2 with 1 and 2 ranks (with and without optimizer
// sharding, ZeRO-1, 2 and 3), each rank on 1 thread, beside two independent runs at once as this machine's ceiling.
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const freePort = require('./free-port');

const CLI = path.join(__dirname, '..', 'dist', 'cli', 'main.js');

const ALLREDUCE = `
const t = require(${JSON.stringify(path.join(__dirname, '..', 'dist'))});
(async () => {
  const group = await t.ProcessGroup.init(t.distributedEnv(), { timeoutMs: 60000 });
  const x = await t.randn([25 * 1024 * 1024 / 4]);
  // The gradients of the benchmark's GPT-2: 52 tensors of many shapes, coalesced natively.
  const model = await t.createModel('gpt2', { vocab_size: 64, n_positions: 64, n_embd: 256, n_layer: 4, n_head: 4 });
  const grads = await Promise.all((await model.namedParameters()).map((p) => t.randn(p.tensor.shape)));
  const time = async (fn) => {
    await fn();
    const start = process.hrtime.bigint();
    for (let i = 0; i < 10; i += 1) await fn();
    return Number(process.hrtime.bigint() - start) / 1e9 / 10;
  };
  const seconds = await time(() => group.allReduce([x], 'avg'));
  const coalesced = await time(() => group.allReduce(grads, 'avg'));
  const scattered = await time(() => group.reduceScatter(grads, 'avg').then((s) => s.dispose()));
  if (group.rank === 0) process.stdout.write(JSON.stringify({ seconds, coalesced, scattered, tensors: grads.length, bytes: grads.reduce((s, g) => s + g.numel * 4, 0) }));
  group.dispose();
})();
`;

async function allReduceBandwidth() {
  const port = await freePort();
  const env = (rank) => ({ ...process.env, RANK: String(rank), WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), TORCH_DPO_NUM_THREADS: '1' });
  const run = (rank) => new Promise((resolve) => {
    const child = spawn(process.execPath, ['-e', ALLREDUCE], { env: env(rank) });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('exit', () => resolve(out));
  });
  const [out] = await Promise.all([run(0), run(1)]);
  return JSON.parse(out);
}

function summary(out) {
  const rows = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((r) => 'loss' in r).slice(2);
  const checkpoint = fs.readdirSync(out).find((f) => f.startsWith('checkpoint-'));
  const optimizerBytes = fs.readdirSync(path.join(out, checkpoint)).filter((f) => f.startsWith('optimizer')).map((f) => fs.statSync(path.join(out, checkpoint, f)).size);
  return {
    stepSeconds: rows.reduce((s, r) => s + r.step_seconds, 0) / rows.length,
    tokensPerSecond: rows.reduce((s, r) => s + r.tokens_per_second, 0) / rows.length,
    optimizerMB: Math.max(...optimizerBytes) / 1e6,
  };
}

async function steps(ranks, dir, ...extra) {
  const out = path.join(dir, `out-${ranks}-${extra.join('-').replace(/\W/g, '')}`);
  const port = await freePort();
  const args = [CLI, 'launch', '--nproc-per-node', String(ranks), '--master-port', String(port), '--', 'train', '--config', path.join(dir, 'config.yaml'), '--set', `output_dir=${out}`, ...extra];
  const run = spawnSync(process.execPath, args, { encoding: 'utf8', env: { ...process.env, TORCH_DPO_NUM_THREADS: '1' } });
  if (run.status !== 0) throw new Error(run.stderr);
  return summary(out);
}

/** Two single-process runs at once, no communication: what two processes get from this machine. */
async function twoAlone(dir) {
  const run = (k) => new Promise((resolve, reject) => {
    const out = path.join(dir, `alone-${k}`);
    const child = spawn(process.execPath, [CLI, 'train', '--config', path.join(dir, 'config.yaml'), '--set', `output_dir=${out}`], { env: { ...process.env, TORCH_DPO_NUM_THREADS: '1' }, stdio: 'ignore' });
    child.on('exit', (code) => (code === 0 ? resolve(summary(out)) : reject(new Error(`alone-${k} exited with ${code}`))));
  });
  const [a, b] = await Promise.all([run(0), run(1)]);
  return { stepSeconds: (a.stepSeconds + b.stepSeconds) / 2, tokensPerSecond: a.tokensPerSecond + b.tokensPerSecond };
}

(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'torch-dpo-bench-dist-'));
  const words = Array.from({ length: 60 }, (_, i) => `w${i + 2}`);
  const rows = Array.from({ length: 256 }, (_, i) => ({ prompt: words.slice(i % 20, (i % 20) + 20).join(' '), chosen: ' ' + words.slice(0, 24).join(' '), rejected: ' ' + words.slice(30, 54).join(' ') }));
  fs.writeFileSync(path.join(dir, 'train.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n'));
  fs.writeFileSync(path.join(dir, 'config.yaml'), [
    'model: { architecture: gpt2, config: { vocab_size: 64, n_positions: 64, n_embd: 256, n_layer: 4, n_head: 4 } }',
    `tokenizer_name_or_path: ${path.join(__dirname, '..', 'test', 'fixtures', 'tiny-gpt2')}`,
    `train_dataset: ${path.join(dir, 'train.jsonl')}`, 'per_device_train_batch_size: 4', 'max_steps: 8', 'logging_steps: 1',
    'cache_dir: false', 'save_steps: 1000', 'save_final_model: false', 'report_to: []'].join('\n'));
  const collective = await allReduceBandwidth();
  const one = await steps(1, dir);
  const two = await steps(2, dir);
  const sharded = await steps(2, dir, '--set', 'optimizer_sharding=true');
  const stage2 = await steps(2, dir, '--set', 'zero_stage=2');
  const stage3 = await steps(2, dir, '--set', 'zero_stage=3');
  const alone = await twoAlone(dir);
  const mb = (collective.bytes / 1e6).toFixed(1);
  console.log('\ndist: Gloo over loopback, 2 ranks × 1 thread; GPT-2 (3.2M params), 4 pairs per rank, steps 3-8');
  console.log('| measure | value |\n|---|---|');
  console.log(`| all-reduce (avg) of one 25 MB tensor | ${(collective.seconds * 1000).toFixed(1)} ms, ${(25 / 1024 / collective.seconds).toFixed(2)} GB/s algorithm bandwidth |`);
  console.log(`| all-reduce (avg) of the ${collective.tensors} gradients (${mb} MB, coalesced) | ${(collective.coalesced * 1000).toFixed(1)} ms |`);
  console.log(`| reduce-scatter (avg) of the same | ${(collective.scattered * 1000).toFixed(1)} ms (Gloo: an all-reduce of the padded buffer) |`);
  console.log(`| 1 rank: step, tokens/s, optimizer state | ${one.stepSeconds.toFixed(3)} s, ${Math.round(one.tokensPerSecond)}, ${one.optimizerMB.toFixed(1)} MB |`);
  console.log(`| 2 ranks: step, tokens/s (both ranks), optimizer state per rank | ${two.stepSeconds.toFixed(3)} s, ${Math.round(two.tokensPerSecond)} (${(two.tokensPerSecond / one.tokensPerSecond).toFixed(2)}× one rank), ${two.optimizerMB.toFixed(1)} MB |`);
  console.log(`| 2 ranks, optimizer_sharding | ${sharded.stepSeconds.toFixed(3)} s, ${Math.round(sharded.tokensPerSecond)} (${(sharded.tokensPerSecond / one.tokensPerSecond).toFixed(2)}× one rank), ${sharded.optimizerMB.toFixed(1)} MB |`);
  console.log(`| 2 ranks, zero_stage 2 (gradients reduce-scattered during backward) | ${stage2.stepSeconds.toFixed(3)} s, ${Math.round(stage2.tokensPerSecond)} (${(stage2.tokensPerSecond / one.tokensPerSecond).toFixed(2)}× one rank), ${stage2.optimizerMB.toFixed(1)} MB |`);
  console.log(`| 2 ranks, zero_stage 3 (layers sharded at rest, gathered per layer, checkpointed) | ${stage3.stepSeconds.toFixed(3)} s, ${Math.round(stage3.tokensPerSecond)} (${(stage3.tokensPerSecond / one.tokensPerSecond).toFixed(2)}× one rank), ${stage3.optimizerMB.toFixed(1)} MB |`);
  console.log(`| ceiling: 2 independent 1-rank runs at once (no communication) | ${alone.stepSeconds.toFixed(3)} s, ${Math.round(alone.tokensPerSecond)} together (${(alone.tokensPerSecond / one.tokensPerSecond).toFixed(2)}× one rank) |`);
  fs.rmSync(dir, { recursive: true, force: true });
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
