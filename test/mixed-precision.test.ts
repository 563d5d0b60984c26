import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel } from '../lib/models/load-model';
import { DPOTrainer } from '../lib/train/trainer';
import type { TrainerConfigInput } from '../lib/train/config';
import { CLI } from './support/cli-project';
import { freePort } from './support/free-port';

/** bf16: true — bf16 forward/backward on a working copy, fp32 master weights, gradients and moments. */
const FIXTURE = join(__dirname, 'fixtures', 'hf-qwen3'); // sharded bf16 on disk

function project(): { dir: string; data: string } {
  const dir = mkdtempSync(join(tmpdir(), 'torch-dpo-mixed-'));
  // The prompts use every word of the vocabulary, so every embedding row gets a gradient.
  const rows = Array.from({ length: 16 }, (_, i) => ({ prompt: [0, 1, 2, 3].map((k) => `w${(4 * i + k) % 62}`).join(' '), chosen: ' w3 w4', rejected: ' w5 w9 w7' }));
  const data = join(dir, 'train.jsonl');
  writeFileSync(data, rows.map((r) => JSON.stringify(r)).join('\n'));
  return { dir, data };
}

async function train(config: TrainerConfigInput): Promise<{ losses: number[]; weights: Float32Array[] }> {
  const trainer = await DPOTrainer.create({ cache_dir: false, report_to: [], save_strategy: 'no', save_final_model: false, logging_steps: 1, per_device_train_batch_size: 4, ...config });
  await trainer.train();
  const weights = await Promise.all((await trainer.policy.parameters()).map(async (p) => (await (await p.to('float32')).toTypedArray()) as Float32Array));
  const losses = trainer.history.filter((r) => 'loss' in r).map((r) => r.loss as number);
  trainer.dispose();
  return { losses, weights };
}

const changedFraction = (before: Float32Array[], after: Float32Array[]) => {
  let changed = 0;
  let total = 0;
  before.forEach((b, i) => b.forEach((x, j) => {
    total += 1;
    if (after[i][j] !== x) changed += 1;
  }));
  return changed / total;
};

describe('bf16 mixed precision', () => {
  it('tracks the fp32 run over 20 steps (|Δloss| ≤ 0.03) and starts at ln 2 exactly', async () => {
    const { dir, data } = project();
    const base = { model_name_or_path: FIXTURE, train_dataset: data, max_steps: 20, learning_rate: 1e-3 };
    const fp32 = await train({ ...base, output_dir: join(dir, 'fp32'), dtype: 'float32' });
    const mixed = await train({ ...base, output_dir: join(dir, 'mixed'), bf16: true });
    expect(mixed.losses[0]).toBeCloseTo(Math.LN2, 6);
    expect(mixed.losses).toHaveLength(20);
    const gap = Math.max(...mixed.losses.map((l, i) => Math.abs(l - fp32.losses[i])));
    expect(gap).toBeLessThanOrEqual(0.03);
    expect(gap).toBeGreaterThan(0); // it did compute in bf16
    expect(mixed.losses[19]).toBeLessThan(0.5); // it learns (ln 2 = 0.69 at the start)
  });

  it('updates at lr 1e-6 what fp32 updates (≥ 95% of parameters); pure bf16 loses nearly all of it', async () => {
    const { dir, data } = project();
    const start = await loadModel(FIXTURE, { dtype: 'float32' });
    const before = await Promise.all((await start.parameters()).map(async (p) => (await p.toTypedArray()) as Float32Array));
    start.dispose();
    const base = { model_name_or_path: FIXTURE, train_dataset: data, max_steps: 5, learning_rate: 1e-6 };
    const fp32 = changedFraction(before, (await train({ ...base, output_dir: join(dir, 'fp32'), dtype: 'float32' })).weights);
    const mixed = changedFraction(before, (await train({ ...base, output_dir: join(dir, 'mixed'), bf16: true })).weights);
    const pure = changedFraction(before, (await train({ ...base, output_dir: join(dir, 'pure'), dtype: 'bfloat16' })).weights);
    expect(fp32).toBeGreaterThanOrEqual(0.95);
    expect(mixed).toBeGreaterThanOrEqual(0.95);
    expect(pure).toBeLessThan(0.05);
  });

  it('checkpoints fp32 masters and resumes exactly; gradient accumulation keeps the trajectory', async () => {
    const { dir, data } = project();
    // A constant rate: the 3-step run's schedule is the 6-step run's first half.
    const base = { model_name_or_path: FIXTURE, train_dataset: data, learning_rate: 1e-3, bf16: true, lr_scheduler_type: 'constant' as const };
    const straight = await train({ ...base, output_dir: join(dir, 'straight'), max_steps: 6 });
    await train({ ...base, output_dir: join(dir, 'resumed'), max_steps: 3, save_strategy: 'steps', save_steps: 3 });
    const header = JSON.parse(readFileSync(join(dir, 'resumed', 'checkpoint-3', 'config.json'), 'utf8'));
    expect(header.torch_dtype).toBe('float32');
    const resumed = await train({ ...base, output_dir: join(dir, 'resumed'), max_steps: 6, resume_from_checkpoint: true });
    expect(resumed.losses.slice(-3)).toEqual(straight.losses.slice(3));
    expect(resumed.weights).toEqual(straight.weights);
    // 2 micro-batches × 2 pairs per step against 1 × 4: fp32 sums of the same gradients (bf16 forwards of other shapes).
    const accumulated = await train({ ...base, output_dir: join(dir, 'accumulated'), max_steps: 6, per_device_train_batch_size: 2, gradient_accumulation_steps: 2 });
    accumulated.losses.forEach((l, i) => expect(Math.abs(l - straight.losses[i])).toBeLessThanOrEqual(0.01));
  });

  it('2 ranks × 2 pairs follow 1 process × 4 pairs, with and without optimizer sharding (launch, Gloo)', async () => {
    const { dir, data } = project();
    const config = join(dir, 'config.yaml');
    writeFileSync(config, [`model_name_or_path: ${FIXTURE}`, `train_dataset: ${data}`, 'max_steps: 5', 'logging_steps: 1', 'learning_rate: 0.001',
      'bf16: true', 'cache_dir: false', 'save_strategy: "no"', 'save_final_model: false', 'report_to: []'].join('\n'));
    const lossesOf = (out: string) => readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((r) => 'loss' in r).map((r) => r.loss as number);
    const one = spawnSync(process.execPath, [CLI, 'train', '--config', config, '--set', `output_dir=${join(dir, 'one')}`, '--set', 'per_device_train_batch_size=4'], { encoding: 'utf8' });
    expect(one.status === 0 ? '' : one.stderr).toBe('');
    const two = spawnSync(process.execPath, [CLI, 'launch', '--nproc-per-node', '2', '--master-port', String(await freePort()), '--',
      'train', '--config', config, '--set', `output_dir=${join(dir, 'two')}`, '--set', 'per_device_train_batch_size=2'], { encoding: 'utf8' });
    expect(two.status === 0 ? '' : two.stderr).toBe('');
    // ZeRO-1 reduce-scatters the masters' accumulated fp32 gradients the same way.
    const sharded = spawnSync(process.execPath, [CLI, 'launch', '--nproc-per-node', '2', '--master-port', String(await freePort()), '--',
      'train', '--config', config, '--set', `output_dir=${join(dir, 'sharded')}`, '--set', 'per_device_train_batch_size=2', '--set', 'optimizer_sharding=true'], { encoding: 'utf8' });
    expect(sharded.status === 0 ? '' : sharded.stderr).toBe('');
    const a = lossesOf(join(dir, 'one'));
    for (const b of [lossesOf(join(dir, 'two')), lossesOf(join(dir, 'sharded'))]) {
      expect(b).toHaveLength(5);
      b.forEach((l, i) => expect(Math.abs(l - a[i])).toBeLessThanOrEqual(0.01));
    }
  });

  it('refuses what cannot be mixed precision, in one line', async () => {
    const { dir, data } = project();
    await expect(DPOTrainer.create({ model_name_or_path: FIXTURE, train_dataset: data, output_dir: join(dir, 'x'), bf16: true, dtype: 'bfloat16' }))
      .rejects.toThrow(/dtype: bfloat16 with bf16: true: mixed precision keeps fp32 master weights; drop dtype/);
    await expect(DPOTrainer.create({ model_name_or_path: join(__dirname, 'fixtures', 'tiny-llama'), train_dataset: data, output_dir: join(dir, 'y'), bf16: true, cache_dir: false }))
      .rejects.toThrow(/bf16: true needs a bfloat16 working copy of .*model\.pt, but the model was traced in float32 and the trace baked float32 into \d+ op\(s\)/);
    await expect(DPOTrainer.create({ model_name_or_path: FIXTURE, train_dataset: data, output_dir: join(dir, 'z'), fp16: true } as TrainerConfigInput))
      .rejects.toThrow(/fp16: .*needs dynamic loss scaling, which torch-dpo does not do: use bf16: true/);
  });
});
