import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TrainerConfigInput } from '../lib/train/config';
import { DPOTrainer } from '../lib/train/trainer';
import { cli } from './support/cli-project';
import { freePort } from './support/free-port';
import { variedPairsProject } from './support/varied-pairs';

/** Training with padding_free / prefix_sharing follows the padded run (fp64, the Qwen3 fixture). */
const FIXTURE = join(__dirname, 'fixtures', 'hf-qwen3');

const project = () => variedPairsProject(16, 'torch-dpo-packing-');

async function losses(config: TrainerConfigInput): Promise<{ losses: number[]; notices: string[]; padding: number[] }> {
  const trainer = await DPOTrainer.create({
    model_name_or_path: FIXTURE, dtype: 'float64', cache_dir: false, report_to: [], save_strategy: 'no', save_final_model: false,
    logging_steps: 1, per_device_train_batch_size: 4, max_steps: 3, learning_rate: 1e-2, ...config,
  });
  try {
    await trainer.train();
    const logs = trainer.history.filter((r) => 'loss' in r);
    return { losses: logs.map((r) => r.loss as number), notices: trainer.notices, padding: logs.map((r) => r['tokens/padding_fraction'] as number) };
  } finally {
    trainer.dispose();
  }
}

const CASES: [string, Partial<TrainerConfigInput>][] = [
  ['sigmoid', {}],
  ['ipo', { loss_type: 'ipo' }],
  ['f-divergence (js)', { f_divergence_type: 'js_divergence' }],
  ['WPO (token-level weights)', { use_weighting: true }],
  ['LD-DPO (token-level)', { ld_alpha: 0.5 }],
  ['precomputed reference', { precompute_ref_log_probs: true }],
  ['no reference', { reference_free: true }],
  ['gradient accumulation 2 × 2', { per_device_train_batch_size: 2, gradient_accumulation_steps: 2 }],
  ['activation checkpointing', { gradient_checkpointing: true }],
  ['LoRA', { use_peft: true, lora_target_modules: 'all-linear' }],
];

describe('padding_free and prefix_sharing follow the padded run (3 steps, losses within 1e-5)', () => {
  it.each(CASES)('%s', async (_, extra) => {
    const { dir, data } = project();
    const base = { train_dataset: data, ...extra };
    const padded = await losses({ ...base, output_dir: join(dir, 'padded') });
    expect(padded.losses).toHaveLength(3);
    for (const layout of [{ padding_free: true }, { prefix_sharing: true }, { padding_free: true, prefix_sharing: true }]) {
      const packed = await losses({ ...base, ...layout, output_dir: join(dir, 'packed') });
      packed.losses.forEach((l, i) => expect(Math.abs(l - padded.losses[i])).toBeLessThan(1e-5));
    }
  });

  it('logs the padding fraction of what the token-wise layers ran on: packing removes it', async () => {
    const { dir, data } = project();
    const padded = await losses({ train_dataset: data, output_dir: join(dir, 'padded') });
    const packed = await losses({ train_dataset: data, output_dir: join(dir, 'packed'), padding_free: true });
    const shared = await losses({ train_dataset: data, output_dir: join(dir, 'shared'), padding_free: true, prefix_sharing: true });
    // The stream has no padding at all (the attention blocks pad per segment, which this does not count).
    for (const [i, p] of padded.padding.entries()) {
      expect(p).toBeGreaterThan(0.2); // prompts of 2–9 words, completions of 1–5
      expect(packed.padding[i]).toBe(0);
      expect(shared.padding[i]).toBe(0);
    }
  });

  it('a traced export stays padded, with a notice', async () => {
    const { dir, data } = project();
    const folder = join(__dirname, 'fixtures', 'tiny-llama');
    const run = await losses({ model_name_or_path: join(folder, 'model.pt'), tokenizer_name_or_path: folder, train_dataset: data, output_dir: join(dir, 'traced'), padding_free: true, max_steps: 1, dtype: 'float32' });
    expect(run.notices.join('\n')).toMatch(/padding_free: .*model\.pt is a traced TorchScript export whose forward takes padded rows only; its batches stay padded/);
  });

  it('2 ranks × 2 pairs, packed and prefix-shared, follow 1 padded process × 4 pairs (launch, Gloo)', async () => {
    const { dir, data } = project();
    const config = join(dir, 'config.yaml');
    writeFileSync(config, [`model_name_or_path: ${FIXTURE}`, `train_dataset: ${data}`, 'dtype: float64', 'max_steps: 3', 'logging_steps: 1', 'learning_rate: 0.01',
      'cache_dir: false', 'save_strategy: "no"', 'save_final_model: false', 'report_to: []'].join('\n'));
    const lossesOf = (out: string) => readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((r) => 'loss' in r).map((r) => r.loss as number);
    const one = cli(['train', '--config', config, '--set', `output_dir=${join(dir, 'one')}`, '--set', 'per_device_train_batch_size=4']);
    expect(one.status === 0 ? '' : one.stderr).toBe('');
    const two = cli(['launch', '--nproc-per-node', '2', '--master-port', String(await freePort()), '--', 'train', '--config', config,
      '--set', `output_dir=${join(dir, 'two')}`, '--set', 'per_device_train_batch_size=2', '--set', 'padding_free=true', '--set', 'prefix_sharing=true']);
    expect(two.status === 0 ? '' : two.stderr).toBe('');
    const [a, b] = [lossesOf(join(dir, 'one')), lossesOf(join(dir, 'two'))];
    expect(b).toHaveLength(3);
    b.forEach((l, i) => expect(Math.abs(l - a[i])).toBeLessThan(1e-5));
  });
});
