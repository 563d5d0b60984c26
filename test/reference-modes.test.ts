import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor, loadModel, noGrad } from '../lib';
import type { TrainerConfigInput } from '../lib/train/config';
import { syncReference } from '../lib/train/reference';
import { parseTrainerConfig } from '../lib/train/config';
import { DPOTrainer } from '../lib/train/trainer';

const MODEL = join(__dirname, 'fixtures', 'tiny-gpt2');

function workspace(n: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'torch-dpo-ref-'));
  const rows = Array.from({ length: n }, (_, i) => ({ prompt: `w${10 + (i % 20)} w${11 + (i % 7)}`, chosen: ` w3 w${4 + (i % 3)}`, rejected: ` w5 w${7 + (i % 4)}` }));
  writeFileSync(join(dir, 'train.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n'));
  writeFileSync(join(dir, 'eval.jsonl'), rows.slice(0, 6).map((r) => JSON.stringify(r)).join('\n'));
  return dir;
}

function config(dir: string, extra: Partial<TrainerConfigInput>): TrainerConfigInput {
  return {
    model_name_or_path: MODEL, train_dataset: join(dir, 'train.jsonl'), eval_dataset: join(dir, 'eval.jsonl'), output_dir: join(dir, 'out'),
    cache_dir: false, learning_rate: 2e-3, logging_steps: 1, max_steps: 4, per_device_train_batch_size: 4, dtype: 'float64', ...extra,
  };
}

async function trained(input: TrainerConfigInput) {
  const t = await DPOTrainer.create(input);
  const result = await t.train();
  const evaluation = await t.evaluate();
  return { t, result, evaluation };
}

describe('reference modes', () => {
  it('precomputed reference log-probs give the live-reference trajectory, and are cached on disk', async () => {
    const dir = workspace(24);
    const live = await trained(config(dir, { output_dir: join(dir, 'live') }));
    const cacheDir = join(dir, 'cache');
    const pre = await trained(config(dir, { output_dir: join(dir, 'pre'), precompute_ref_log_probs: true, cache_dir: cacheDir }));
    expect(pre.t.reference.kind).toBe('precomputed'); // no reference model is kept
    pre.result.history.forEach((r, i) => expect(Math.abs(r.loss - live.result.history[i].loss)).toBeLessThan(1e-10));
    expect(Math.abs(pre.evaluation.eval_loss - live.evaluation.eval_loss)).toBeLessThan(1e-10);
    expect(readdirSync(join(cacheDir, 'reference')).filter((f) => f.endsWith('.reflogps'))).toHaveLength(2);
    const again = await trained(config(dir, { output_dir: join(dir, 'pre2'), precompute_ref_log_probs: true, cache_dir: cacheDir }));
    expect(again.result.history.map((r) => r.loss)).toEqual(pre.result.history.map((r) => r.loss));
    [live, pre, again].forEach((x) => x.t.dispose());
  });

  it('TR-DPO mixes the policy into the reference: ref ← α·θ + (1 − α)·ref', async () => {
    const policy = await loadModel(MODEL);
    const reference = await policy.referenceCopy();
    const [p0] = await policy.parameters();
    await noGrad(async () => p0.add_(1));
    const before = Array.from((await (await reference.parameters())[0].detach().toTypedArray()) as Float32Array);
    await syncReference(policy, reference, 0.6);
    const after = Array.from((await (await reference.parameters())[0].detach().toTypedArray()) as Float32Array);
    const pol = Array.from((await p0.detach().toTypedArray()) as Float32Array);
    after.forEach((v, i) => expect(Math.abs(v - (0.6 * pol[i] + 0.4 * before[i]))).toBeLessThan(1e-6));

    const dir = workspace(24);
    const plain = await trained(config(dir, { output_dir: join(dir, 'plain') }));
    const synced = await trained(config(dir, { output_dir: join(dir, 'sync'), sync_ref_model: true, ref_model_sync_steps: 2 }));
    expect(synced.result.history.slice(0, 2).map((r) => r.loss)).toEqual(plain.result.history.slice(0, 2).map((r) => r.loss));
    expect(synced.result.history[2].loss).not.toBe(plain.result.history[2].loss);
    [plain, synced].forEach((x) => x.t.dispose());
  });

  it('TR-DPO: a checkpoint keeps the synced reference (ref_model/), so a resume after a sync continues exactly', async () => {
    const dir = workspace(24);
    const tr = (extra: Partial<TrainerConfigInput>) => config(dir, { sync_ref_model: true, ref_model_sync_steps: 2, ref_model_mixup_alpha: 0.5, lr_scheduler_type: 'constant', max_steps: 6, save_steps: 3, report_to: [], ...extra });
    const straight = await trained(tr({ output_dir: join(dir, 'straight') }));
    (await trained(tr({ output_dir: join(dir, 'split'), max_steps: 3 }))).t.dispose(); // releases output_dir
    expect(existsSync(join(dir, 'split', 'checkpoint-3', 'ref_model', 'model.safetensors'))).toBe(true);
    const resumed = await trained(tr({ output_dir: join(dir, 'split'), resume_from_checkpoint: true }));
    expect(resumed.result.history.map((r) => r.loss)).toEqual(straight.result.history.map((r) => r.loss));
    [straight, resumed].forEach((x) => x.t.dispose());
  });

  it('exports the final model as safetensors, tokenizer and TorchScript that load back', async () => {
    const dir = workspace(8);
    const { t } = await trained(config(dir, { max_steps: 2, dtype: undefined }));
    const final = join(dir, 'out', 'final');
    for (const f of ['model.safetensors', 'config.json', 'tokenizer.json', 'model.pt']) expect(existsSync(join(final, f))).toBe(true);
    const reloaded = await loadModel(final);
    const ids = Tensor.from([[5, 6, 7]], { dtype: 'int64' });
    const mask = Tensor.from([[1, 1, 1]], { dtype: 'int64' });
    const a = Array.from((await (await noGrad(() => t.policy.forward(ids, mask))).toTypedArray()) as Float32Array);
    const b = Array.from((await (await noGrad(() => reloaded.forward(ids, mask))).toTypedArray()) as Float32Array);
    expect(Math.max(...a.map((x, i) => Math.abs(x - b[i])))).toBeLessThan(1e-6);
    t.dispose();
  });

  it('rejects impossible combinations', () => {
    expect(() => parseTrainerConfig(config('/tmp', { precompute_ref_log_probs: true, sync_ref_model: true }))).toThrow(/cannot be combined with precompute_ref_log_probs/);
    expect(() => parseTrainerConfig(config('/tmp', { precompute_ref_log_probs: true, ld_alpha: 0.5 }))).toThrow(/LD-DPO needs per-token reference/);
  });
});
