import { join } from 'node:path';
import { manualSeed, Tensor } from '../lib';
import { createModel, type CausalLM } from '../lib/models/causal-lm';
import { loadModel } from '../lib/models/load-model';
import { scope } from '../lib/scope';

/**
 * gradient_checkpointing: each layer keeps only its input; backward re-runs it with the RNG states
 * of its forward. Gradients must equal the plain run's, with dropout on and off.
 */
const LLAMA = { vocab_size: 64, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 3, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64 };
const GPT2 = { vocab_size: 64, n_positions: 32, n_embd: 32, n_layer: 3, n_head: 4 };

async function gradients(model: CausalLM, hidden: boolean): Promise<{ loss: number; grads: Float32Array[] }> {
  return scope(async () => {
    const ids = Tensor.from([[5, 17, 33, 2, 9, 41, 0, 0], [12, 3, 60, 7, 7, 25, 38, 11]], { dtype: 'int64' });
    const mask = Tensor.from([[1, 1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1]], { dtype: 'int64' });
    manualSeed(3); // the same dropout draws in both runs
    const out = hidden ? await model.forwardHidden(ids, mask) : await model.forward(ids, mask);
    const loss = await (await (await out.pow(2)).mean()).mul(100);
    await loss.backward();
    const params = await model.parameters();
    const grads = await Promise.all(params.map(async (p) => (await (await p.grad())!.toTypedArray()) as Float32Array));
    for (const p of params) await (await p.grad())!.zero_();
    return { loss: (await loss.item()) as number, grads };
  });
}

const maxDiff = (a: Float32Array[], b: Float32Array[]) => Math.max(...a.map((g, i) => g.reduce((m, x, j) => Math.max(m, Math.abs(x - b[i][j])), 0)));

describe.each([
  ['llama', LLAMA, { attention_dropout: 0 }, { attention_dropout: 0.3 }],
  ['qwen3', { ...LLAMA, head_dim: 8 }, {}, { attention_dropout: 0.3 }],
  ['gpt2', GPT2, { resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0 }, { resid_pdrop: 0.2, embd_pdrop: 0.2, attn_pdrop: 0.2 }],
] as const)('%s', (architecture, config, noDropout, dropout) => {
  it.each([['off', noDropout], ['on', dropout]] as const)('checkpointed gradients equal the plain ones with dropout %s (logits and hidden paths)', async (_, extra) => {
    manualSeed(1);
    const model = await createModel(architecture, { ...config, ...extra });
    await model.train(true);
    for (const hidden of [false, true]) {
      const plain = await gradients(model, hidden);
      model.setGradientCheckpointing(true);
      const checkpointed = await gradients(model, hidden);
      model.setGradientCheckpointing(false);
      expect(checkpointed.loss).toBe(plain.loss);
      expect(maxDiff(checkpointed.grads, plain.grads)).toBeLessThanOrEqual(1e-6);
      expect(Math.max(...plain.grads.map((g) => Math.max(...g.map(Math.abs))))).toBeGreaterThan(0);
    }
    model.dispose();
  });
});

it('a traced export cannot be split into layers: refused with the way out', async () => {
  const model = await loadModel(join(__dirname, 'fixtures', 'tiny-llama'));
  expect(() => model.setGradientCheckpointing(true)).toThrow(/gradient_checkpointing: .*model\.pt is a traced TorchScript export, which cannot be split into layers; load the folder's safetensors into a built-in architecture \(delete model\.pt\) or turn it off/);
  model.dispose();
});

describe('gradient_checkpointing in a DPO run', () => {
  it('gives the plain run\'s losses (fp32), and composes with bf16 mixed precision', async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { DPOTrainer } = await import('../lib/train/trainer');
    const dir = mkdtempSync(join(tmpdir(), 'torch-dpo-ckpt-'));
    const rows = Array.from({ length: 8 }, (_, i) => ({ prompt: `w${10 + i} w11 w12`, chosen: ' w3 w4', rejected: ' w5 w9 w7' }));
    writeFileSync(join(dir, 'train.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n'));
    const run = async (name: string, extra: Record<string, unknown>) => {
      const trainer = await DPOTrainer.create({
        model_name_or_path: join(__dirname, 'fixtures', 'hf-qwen3'), train_dataset: join(dir, 'train.jsonl'), output_dir: join(dir, name), cache_dir: false,
        report_to: [], save_strategy: 'no', save_final_model: false, max_steps: 3, logging_steps: 1, per_device_train_batch_size: 4, learning_rate: 1e-3, ...extra,
      });
      expect((await trainer.describeModel()).dtype).toMatch(extra.gradient_checkpointing ? /activation checkpointing per layer$/ : /^float32( masters, bfloat16 compute \(bf16 mixed precision\))?$/);
      await trainer.train();
      const losses = trainer.history.filter((r) => 'loss' in r).map((r) => r.loss as number);
      trainer.dispose();
      return losses;
    };
    const plain = await run('plain', { dtype: 'float32' });
    expect(await run('checkpointed', { dtype: 'float32', gradient_checkpointing: true })).toEqual(plain);
    const mixed = await run('mixed', { bf16: true });
    expect(await run('mixed-checkpointed', { bf16: true, gradient_checkpointing: true })).toEqual(mixed);
  });
});

it('data parallel: 2 ranks with checkpointing (and accumulation) follow 1 plain process (launch, Gloo)', async () => {
  const { spawnSync } = await import('node:child_process');
  const { mkdtempSync, readFileSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { CLI } = await import('./support/cli-project');
  const { freePort } = await import('./support/free-port');
  const dir = mkdtempSync(join(tmpdir(), 'torch-dpo-ckpt-ddp-'));
  const rows = Array.from({ length: 16 }, (_, i) => ({ prompt: `w${10 + i} w11 w12`, chosen: ' w3 w4', rejected: ' w5 w9 w7' }));
  writeFileSync(join(dir, 'train.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n'));
  const config = join(dir, 'config.yaml');
  writeFileSync(config, [`model_name_or_path: ${join(__dirname, 'fixtures', 'hf-qwen3')}`, `train_dataset: ${join(dir, 'train.jsonl')}`, 'max_steps: 4', 'logging_steps: 1',
    'learning_rate: 0.001', 'dtype: float32', 'cache_dir: false', 'save_strategy: "no"', 'save_final_model: false', 'report_to: []'].join('\n'));
  const lossesOf = (out: string) => readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((r) => 'loss' in r).map((r) => r.loss as number);
  const one = spawnSync(process.execPath, [CLI, 'train', '--config', config, '--set', `output_dir=${join(dir, 'one')}`, '--set', 'per_device_train_batch_size=4'], { encoding: 'utf8' });
  expect(one.status === 0 ? '' : one.stderr).toBe('');
  const two = spawnSync(process.execPath, [CLI, 'launch', '--nproc-per-node', '2', '--master-port', String(await freePort()), '--', 'train', '--config', config,
    '--set', `output_dir=${join(dir, 'two')}`, '--set', 'per_device_train_batch_size=1', '--set', 'gradient_accumulation_steps=2', '--set', 'gradient_checkpointing=true'], { encoding: 'utf8' });
  expect(two.status === 0 ? '' : two.stderr).toBe('');
  const [a, b] = [lossesOf(join(dir, 'one')), lossesOf(join(dir, 'two'))];
  expect(b).toHaveLength(4);
  b.forEach((l, i) => expect(Math.abs(l - a[i]) / a[i]).toBeLessThanOrEqual(1e-5));
});
