'use strict';
// `npm run bench:model` (part): loading a ~300M-parameter Llama-style checkpoint written by the
// benchmark itself as sharded bf16 safetensors (HF layout, 200 MB shards). Each load runs in a fresh
// process: time, and peak RSS above the process's RSS just before loading, over the loaded weights'
// bytes (target ≤ 1.2×: weights read tensor by tensor straight into uninitialised parameters).
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const CONFIG = {
  model_type: 'llama', architectures: ['LlamaForCausalLM'], vocab_size: 32000, hidden_size: 1024, intermediate_size: 2816,
  num_hidden_layers: 20, num_attention_heads: 16, num_key_value_heads: 8, max_position_embeddings: 2048, tie_word_embeddings: false,
};

async function write(folder) {
  const { createModel } = require('../dist');
  const model = await createModel('llama', CONFIG, { dtype: 'bfloat16' });
  await model.exportSafetensors(folder, { maxShardSize: '200MB' });
  const words = ['<s>', '<unk>'];
  const vocab = Object.fromEntries(words.map((w, i) => [w, i]));
  fs.writeFileSync(path.join(folder, 'tokenizer.json'), JSON.stringify({ version: '1.0', added_tokens: [], normalizer: null, pre_tokenizer: { type: 'Whitespace' },
    post_processor: null, decoder: null, model: { type: 'WordLevel', vocab, unk_token: '<unk>' } }));
  const params = (await model.parameters()).reduce((n, p) => n + p.numel, 0);
  process.stdout.write(JSON.stringify({ params }));
}

async function load(folder, dtype) {
  const { loadModel, Tensor } = require('../dist');
  (await Tensor.from([1, 2, 3]).add(1)).dispose(); // the addon and libtorch are in before the baseline
  const before = process.memoryUsage().rss;
  const start = process.hrtime.bigint();
  const model = await loadModel(folder, dtype ? { dtype } : {});
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const bytes = (await model.parameters()).reduce((n, p) => n + p.numel * (p.dtype === 'float32' ? 4 : 2), 0);
  const peakAbove = process.resourceUsage().maxRSS * 1024 - before;
  process.stdout.write(JSON.stringify({ seconds, bytes, peakAbove, after: process.memoryUsage().rss - before }));
}

function child(args) {
  const result = spawnSync(process.execPath, [__filename, ...args], { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (result.status !== 0) throw new Error(`${args.join(' ')}: ${result.stderr}`);
  return JSON.parse(result.stdout);
}

function main() {
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'torch-dpo-bench-load-'));
  try {
    fs.writeFileSync(path.join(folder, 'config.json'), JSON.stringify(CONFIG));
    const { params } = child(['--write', folder]);
    const shards = fs.readdirSync(folder).filter((f) => f.endsWith('.safetensors'));
    const onDisk = shards.reduce((n, f) => n + fs.statSync(path.join(folder, f)).size, 0);
    console.log(`\ncheckpoint: Llama-style ${(params / 1e6).toFixed(0)}M parameters, bf16, ${shards.length} shards, ${(onDisk / 2 ** 20).toFixed(0)} MiB on disk`);
    console.log('| load | time | weights | peak RSS above start | peak / weights |\n|---|---|---|---|---|');
    for (const dtype of ['', 'float32']) {
      const r = child(['--load', folder, dtype]);
      const mib = (b) => `${(b / 2 ** 20).toFixed(0)} MiB`;
      console.log(`| ${dtype ? `cast to ${dtype}` : 'as stored (bfloat16)'} | ${r.seconds.toFixed(2)} s | ${mib(r.bytes)} | ${mib(r.peakAbove)} | ${(r.peakAbove / r.bytes).toFixed(2)}× |`);
    }
  } finally {
    fs.rmSync(folder, { recursive: true, force: true });
  }
}

const [mode, folder, dtype] = process.argv.slice(2);
const run = mode === '--write' ? write(folder) : mode === '--load' ? load(folder, dtype) : Promise.resolve(main());
run.catch((err) => {
  console.error(err);
  process.exit(1);
});
