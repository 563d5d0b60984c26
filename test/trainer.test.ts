import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../lib';
import { parseTrainerConfig } from '../lib/train/config';
import { DPOTrainer } from '../lib/train/trainer';
import type { TrainerConfigInput } from '../lib/train/config';

const MODEL = join(__dirname, 'fixtures', 'tiny-gpt2');

/** Pairs over the fixture's word-level vocabulary: the chosen answer is always the "w3" family. */
function dataset(n: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'torch-dpo-train-'));
  const rows = Array.from({ length: n }, (_, i) => ({
    prompt: `w${10 + (i % 20)} w${11 + (i % 13)}`,
    chosen: ` w3 w${4 + (i % 3)}`,
    rejected: ` w5 w${7 + (i % 4)} w9`,
  }));
  writeFileSync(join(dir, 'train.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n'));
  return dir;
}

function config(dir: string, overrides: Partial<TrainerConfigInput> = {}): TrainerConfigInput {
  return {
    model_name_or_path: MODEL, train_dataset: join(dir, 'train.jsonl'), output_dir: join(dir, 'out'), cache_dir: false,
    learning_rate: 1e-3, logging_steps: 1, max_steps: 3, per_device_train_batch_size: 8, max_grad_norm: 1.0, ...overrides,
  };
}

async function run(input: TrainerConfigInput) {
  const trainer = await DPOTrainer.create(input);
  const result = await trainer.train();
  const params = await Promise.all((await trainer.policy.namedParameters()).map(async (p) => Array.from((await p.tensor.detach().toTypedArray()) as Float64Array)));
  trainer.dispose();
  return { ...result, params };
}

describe('DPOTrainer', () => {
  it('starts at ln 2 with zero rewards and logs metrics as JSONL', async () => {
    const dir = dataset(16);
    const { history } = await run(config(dir, { max_steps: 1 }));
    expect(Math.abs(history[0].loss - Math.LN2)).toBeLessThan(1e-6);
    expect(history[0]['rewards/accuracies']).toBe(0);
    expect(Math.abs(history[0]['rewards/margins'])).toBeLessThan(1e-7);
    const lines = readFileSync(join(dir, 'out', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines[0]).toMatchObject({ step: 1, loss: history[0].loss });
    for (const key of ['learning_rate', 'grad_norm', 'logps/chosen', 'logits/chosen', 'entropy', 'mean_token_accuracy', 'tokens_per_second']) {
      expect(Number.isFinite(lines[0][key])).toBe(true);
    }
  });

  it('gives the same trajectory for 1 pair × 8 accumulation steps as for 8 pairs × 1 (float64)', async () => {
    // float64 so that only the accumulation could make a difference: Adam amplifies fp32 rounding
    // in near-zero gradient coordinates.
    const dir = dataset(32);
    const big = await run(config(dir, { per_device_train_batch_size: 8, gradient_accumulation_steps: 1, dtype: 'float64' }));
    const small = await run(config(dir, { per_device_train_batch_size: 1, gradient_accumulation_steps: 8, dtype: 'float64', output_dir: join(dir, 'out2') }));
    expect(small.steps).toBe(3);
    expect(big.steps).toBe(3);
    big.history.forEach((r, i) => {
      expect(Math.abs(small.history[i].loss - r.loss)).toBeLessThan(1e-10);
      expect(Math.abs(small.history[i].grad_norm - r.grad_norm)).toBeLessThan(1e-10 * Math.max(1, r.grad_norm));
    });
    let worst = 0;
    big.params.forEach((p, i) => p.forEach((v, k) => (worst = Math.max(worst, Math.abs(v - small.params[i][k])))));
    expect(worst).toBeLessThan(1e-9);
    expect(big.history[2].loss).not.toBe(big.history[0].loss); // the weights did move
  });

  it('learns the preference: loss falls and reward accuracy rises', async () => {
    const dir = dataset(64);
    const { history } = await run(config(dir, { max_steps: 16, learning_rate: 5e-3, lr_scheduler_type: 'constant' }));
    expect(history[history.length - 1].loss).toBeLessThan(history[0].loss - 0.2);
    expect(history[history.length - 1]['rewards/accuracies']).toBeGreaterThan(0.9);
  });

  it('trains a built-in model through the fused-linear path, matching the logits path', async () => {
    const dir = dataset(16);
    const model = { architecture: 'llama' as const, config: { vocab_size: 64, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 1, num_attention_heads: 2 } };
    const base = { model, model_name_or_path: undefined, tokenizer_name_or_path: MODEL, dtype: 'float64' as const, seed: 5 };
    const fused = await run(config(dir, { ...base, use_fused_linear: true }));
    const plain = await run(config(dir, { ...base, use_fused_linear: false, output_dir: join(dir, 'out2') }));
    fused.history.forEach((r, i) => expect(Math.abs(plain.history[i].loss - r.loss)).toBeLessThan(1e-10));
    expect(Math.abs(fused.history[0].loss - Math.LN2)).toBeLessThan(1e-12);
  });

  it('resumes bit-exact: 20 steps straight equal 10 + resume + 10', async () => {
    const dir = dataset(48);
    const base = config(dir, { max_steps: 20, save_steps: 10, per_device_train_batch_size: 4, learning_rate: 2e-3 });
    const straight = await run({ ...base, output_dir: join(dir, 'straight') });

    const first = await DPOTrainer.create({ ...base, output_dir: join(dir, 'split') });
    const controller = new AbortController();
    first.on('step', ({ step }) => { if (step === 10) controller.abort(); });
    expect((await first.train({ signal: controller.signal })).stopped).toBe('aborted');
    first.dispose();
    const second = await DPOTrainer.create({ ...base, output_dir: join(dir, 'split'), resume_from_checkpoint: true });
    expect(second.step).toBe(10);
    const resumed = await second.train();
    second.dispose();
    const losses = (h: { loss: number }[]) => h.map((r) => r.loss);
    expect(losses(resumed.history)).toEqual(losses(straight.history));
    expect(resumed.history.map((r) => r['rewards/margins'])).toEqual(straight.history.map((r) => r['rewards/margins']));
  });

  it('keeps the newest checkpoints only, each complete', async () => {
    const dir = dataset(16);
    await run(config(dir, { max_steps: 5, save_steps: 2, save_total_limit: 2, per_device_train_batch_size: 2 }));
    expect(readdirSync(join(dir, 'out')).filter((n) => n.startsWith('checkpoint-')).sort()).toEqual(['checkpoint-4', 'checkpoint-5']);
    // A checkpoint is a model folder too (HF's Trainer also saves the tokenizer into each).
    expect(readdirSync(join(dir, 'out', 'checkpoint-5')).sort()).toEqual(['config.json', 'manifest.json', 'model.safetensors', 'optimizer.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'torch_dpo_state.json', 'trainer_state.json']);
    expect(readdirSync(join(dir, 'out')).some((n) => n.includes('partial'))).toBe(false);
  });

  it('skips non-finite updates and stops with a diagnostic after max_nonfinite_steps in a row', async () => {
    const dir = dataset(32);
    // A learning rate this large blows the weights up to inf/NaN within a step or two.
    const trainer = await DPOTrainer.create(config(dir, { max_steps: 30, learning_rate: 1e30, max_grad_norm: null, max_nonfinite_steps: 2, save_steps: 1000 }));
    await expect(trainer.train()).rejects.toThrow(/2 non-finite steps in a row \(last at step \d+\)/);
    trainer.dispose();
  });

  it('rejects bad configuration before loading anything', () => {
    expect(() => parseTrainerConfig({ train_dataset: 'x.jsonl', output_dir: 'out' })).toThrow(ConfigError);
    expect(() => parseTrainerConfig({ train_dataset: 'x.jsonl', output_dir: 'out' })).toThrow(/set model_name_or_path or model/);
    expect(() => parseTrainerConfig({ model_name_or_path: MODEL, train_dataset: 'x.jsonl', output_dir: 'out', loss_type: 'exo_pair' })).toThrow(/exo_pair needs label_smoothing > 0/);
    expect(() => parseTrainerConfig({ model_name_or_path: MODEL, train_dataset: 'x.jsonl', output_dir: 'out', learning_rte: 1 } as never)).toThrow(/learning_rte/);
  });
});
