'use strict';
// `npm run bench:model` (part): forward+backward tokens/s and peak RSS of each built-in architecture
// at ~50M parameters (hidden 512, 8 layers, 8 heads / 4 kv heads, vocab 32000; GPT-2 at the same
// width and depth), batch 1 × T for T = 512 and 1024, fp32. Each case runs in a fresh process (peak
// RSS is per process). Loss: mean logsumexp of the logits. Last rows: Llama with activation
// checkpointing per layer (gradient_checkpointing), against the plain rows above it.
const { spawnSync } = require('node:child_process');

const STEPS = 2;
const LENGTHS = [512, 1024];
const DECODER = { vocab_size: 32000, hidden_size: 512, intermediate_size: 1408, num_hidden_layers: 8, num_attention_heads: 8, num_key_value_heads: 4, max_position_embeddings: 4096 };
const CONFIGS = {
  gpt2: { vocab_size: 32000, n_positions: 4096, n_embd: 512, n_layer: 8, n_head: 8, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0 },
  llama: { ...DECODER, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 1024 } },
  mistral: { ...DECODER, sliding_window: 256 },
  qwen2: { ...DECODER, use_sliding_window: true, sliding_window: 256, max_window_layers: 4 },
  qwen3: { ...DECODER, head_dim: 64 },
};

async function measure(architecture, T, checkpointing) {
  const { createModel, randint, ones, numThreads } = require('../dist');
  const model = await createModel(architecture, CONFIGS[architecture]);
  model.setGradientCheckpointing(checkpointing);
  const params = (await model.parameters()).reduce((n, p) => n + p.numel, 0);
  const ids = await randint(0, 32000, [1, T]);
  const mask = await ones([1, T], { dtype: 'int64' });
  const weights = await model.parameters();
  const step = async () => {
    for (const p of weights) (await p.grad())?.zero_();
    const logits = await model.forward(ids, mask);
    const loss = await (await logits.logsumexp(2)).mean();
    await loss.backward();
    logits.dispose();
    loss.dispose();
  };
  await step();
  const start = process.hrtime.bigint();
  for (let i = 0; i < STEPS; i += 1) await step();
  const stepMs = Number(process.hrtime.bigint() - start) / 1e6 / STEPS;
  process.stdout.write(JSON.stringify({ params, stepMs, tokensPerSec: (T * 1000) / stepMs, peakRssMiB: process.resourceUsage().maxRSS / 1024, threads: numThreads() }));
}

function main() {
  const cases = Object.keys(CONFIGS).flatMap((architecture) => LENGTHS.map((T) => ({ architecture, T, checkpointing: false })));
  cases.push(...LENGTHS.map((T) => ({ architecture: 'llama', T, checkpointing: true })));
  const rows = [];
  for (const { architecture, T, checkpointing } of cases) {
    const child = spawnSync(process.execPath, [__filename, '--case', architecture, String(T), String(checkpointing)], { encoding: 'utf8' });
    if (child.status !== 0) throw new Error(`${architecture} T=${T}: ${child.stderr}`);
    rows.push({ architecture: checkpointing ? `${architecture} + checkpointing` : architecture, T, ...JSON.parse(child.stdout) });
  }
  console.log(`\nbuilt-in architectures, fp32, batch 1 × T, forward + backward, ${rows[0].threads} threads, mean of ${STEPS} steps after one warm-up`);
  console.log('| architecture | params | T | step | tokens/s | peak RSS |\n|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(`| ${r.architecture} | ${(r.params / 1e6).toFixed(1)}M | ${r.T} | ${r.stepMs.toFixed(0)} ms | ${r.tokensPerSec.toFixed(0)} | ${r.peakRssMiB.toFixed(0)} MiB |`);
  }
}

if (process.argv[2] === '--case') {
  measure(process.argv[3], Number(process.argv[4]), process.argv[5] === 'true').catch((err) => {
    console.error(err);
    process.exit(1);
  });
} else {
  main();
}
