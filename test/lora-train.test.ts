import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { noGrad } from '../lib/grad-mode';
import type { CausalLM } from '../lib/models/causal-lm';
import { loadModel } from '../lib/models/load-model';
import type { RunParts } from '../lib/train/run-setup';
import { Tensor } from '../lib/tensor';
import { DPOTrainer } from '../lib/train/trainer';
import type { TrainerConfigInput } from '../lib/train/config';
import { cli, cliProject } from './support/cli-project';
import { freePort } from './support/free-port';

/** use_peft: DPO on LoRA adapters, the reference being the same model with its adapters off. */
const FIXTURE = join(__dirname, 'fixtures', 'hf-qwen3'); // sharded bf16 on disk
const IDS = [[5, 17, 33, 2, 9, 41, 8, 3]];

function project(): { dir: string; data: string } {
  const dir = mkdtempSync(join(tmpdir(), 'torch-dpo-lora-train-'));
  const rows = Array.from({ length: 16 }, (_, i) => ({ prompt: [0, 1, 2, 3].map((k) => `w${(4 * i + k) % 62}`).join(' '), chosen: ' w3 w4', rejected: ' w5 w9 w7' }));
  const data = join(dir, 'train.jsonl');
  writeFileSync(data, rows.map((r) => JSON.stringify(r)).join('\n'));
  return { dir, data };
}

const LORA = { use_peft: true, lora_r: 8, lora_alpha: 16, lora_target_modules: 'all-linear', learning_rate: 1e-2, dtype: 'float32' } as const;

async function logits(model: CausalLM): Promise<Float32Array> {
  const ids = Tensor.from(IDS, { dtype: 'int64' });
  return noGrad(async () => (await (await model.forward(ids, Tensor.from([IDS[0].map(() => 1)], { dtype: 'int64' }))).to('float32')).toTypedArray() as Promise<Float32Array>);
}

async function weights(model: CausalLM, which: (name: string) => boolean): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const p of await model.namedParameters()) if (which(p.name)) out.set(p.name, (await (await p.tensor.to('float32')).toTypedArray()) as Float32Array);
  return out;
}
const isAdapter = (name: string) => name.includes('.lora_');

async function train(config: TrainerConfigInput, inspect?: (t: DPOTrainer) => Promise<void>): Promise<number[]> {
  const trainer = await DPOTrainer.create({ cache_dir: false, report_to: [], save_strategy: 'no', save_final_model: false, logging_steps: 1, per_device_train_batch_size: 4, ...config });
  try {
    await trainer.train();
    await inspect?.(trainer);
    return trainer.history.filter((r) => 'loss' in r).map((r) => r.loss as number);
  } finally {
    trainer.dispose();
  }
}

describe('DPO with LoRA (use_peft)', () => {
  it('starts at ln 2 exactly, learns, trains only the adapters, and keeps the reference (the base) unchanged', async () => {
    const { dir, data } = project();
    const trainer = await DPOTrainer.create({ model_name_or_path: FIXTURE, train_dataset: data, output_dir: join(dir, 'out'), max_steps: 10, ...LORA,
      cache_dir: false, report_to: [], save_strategy: 'no', logging_steps: 1, per_device_train_batch_size: 4 });
    const reference = trainer.reference.kind === 'model' ? trainer.reference.model : null;
    expect(reference).not.toBeNull();
    const baseBefore = await weights(trainer.policy, (n) => !isAdapter(n));
    const referenceBefore = await logits(reference!);
    expect(await logits(trainer.policy)).toEqual(referenceBefore); // policy = reference at step 0
    const summary = await trainer.describeModel();
    expect(summary.dtype).toBe('float32 frozen model, float32 LoRA adapters (r 8, alpha 16) on 14 layers (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj), reference = adapters off');
    const adapterSizes = (await trainer.policy.namedParameters()).filter((p) => isAdapter(p.name)).map((p) => p.tensor.numel);
    expect(summary.trainable).toBe(adapterSizes.reduce((a, b) => a + b, 0));
    expect(adapterSizes).toHaveLength(2 * 14);

    await trainer.train();
    const losses = trainer.history.filter((r) => 'loss' in r).map((r) => r.loss as number);
    expect(losses[0]).toBeCloseTo(Math.LN2, 7); // the fp32 loss of policy = reference exactly
    expect(losses[9]).toBeLessThan(losses[0] - 0.1);
    expect(await weights(trainer.policy, (n) => !isAdapter(n))).toEqual(baseBefore);
    expect(await logits(reference!)).toEqual(referenceBefore);
    expect(await logits(trainer.policy)).not.toEqual(referenceBefore);
    // Optimizer state: the two AdamW moments of each adapter weight, nothing else.
    const state = (trainer as unknown as { run: RunParts }).run.optimizer.stateTensors();
    expect(state.size).toBe(2 * 2 * 14);
    expect([...state.keys()].every(isAdapter)).toBe(true);
    // final/: the adapter in PEFT format with the tokenizer; no full weights, no TorchScript.
    expect(readdirSync(join(dir, 'out', 'final')).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json']);
    const trained = await logits(trainer.policy);
    trainer.dispose();

    // adapter_name_or_path continues from that adapter: the same model to start with.
    const resumed = await DPOTrainer.create({ model_name_or_path: FIXTURE, train_dataset: data, output_dir: join(dir, 'more'), ...LORA, lora_r: 4, adapter_name_or_path: join(dir, 'out', 'final'), cache_dir: false, report_to: [] });
    expect(resumed.notices.join('\n')).toMatch(/its adapter_config\.json sets r 8, used instead of the lora_\* options/);
    expect(await logits(resumed.policy)).toEqual(trained);
    resumed.dispose();
  });

  it('trains adapters on a traced export (the model.pt file) the same way', async () => {
    const { dir, data } = project();
    const folder = join(__dirname, 'fixtures', 'tiny-llama');
    const losses = await train({ model_name_or_path: join(folder, 'model.pt'), tokenizer_name_or_path: folder, train_dataset: data, output_dir: join(dir, 'traced'),
      max_steps: 6, ...LORA, save_final_model: true }, async (t) => {
      expect(t.policy.info.source).toBe('torchscript');
      expect(t.policy.info.adapters!.modules).toHaveLength(14);
    });
    expect(losses[0]).toBeCloseTo(Math.LN2, 7);
    expect(losses[5]).toBeLessThan(losses[0] - 0.05);
    expect(readdirSync(join(dir, 'traced', 'final'))).toEqual(expect.arrayContaining(['adapter_config.json', 'adapter_model.safetensors']));
  });

  it('checkpoints hold the adapter and its optimizer state only; resume ≡ straight', async () => {
    const { dir, data } = project();
    const base = { model_name_or_path: FIXTURE, train_dataset: data, ...LORA, lr_scheduler_type: 'constant' as const };
    const straight = await train({ ...base, output_dir: join(dir, 'straight'), max_steps: 6 });
    await train({ ...base, output_dir: join(dir, 'resumed'), max_steps: 3, save_strategy: 'steps', save_steps: 3 });
    const files = readdirSync(join(dir, 'resumed', 'checkpoint-3'));
    expect(files).toEqual(expect.arrayContaining(['adapter_config.json', 'adapter_model.safetensors', 'optimizer.safetensors']));
    expect(files.some((f) => f.startsWith('model'))).toBe(false);
    await expect(train({ ...base, use_peft: false, output_dir: join(dir, 'resumed'), max_steps: 6, resume_from_checkpoint: true }))
      .rejects.toThrow(/checkpoint-3 holds a LoRA adapter \(adapter_config\.json\), not model weights: load it with use_peft: true/);
    const resumed = await train({ ...base, output_dir: join(dir, 'resumed'), max_steps: 6, resume_from_checkpoint: true });
    expect(resumed.slice(-3)).toEqual(straight.slice(3));
  });

  it('composes: precomputed reference, activation checkpointing, bf16 (frozen model in bf16, adapters fp32)', async () => {
    const { dir, data } = project();
    const base = { model_name_or_path: FIXTURE, train_dataset: data, ...LORA, max_steps: 4 };
    const live = await train({ ...base, output_dir: join(dir, 'live') });
    const precomputed = await train({ ...base, output_dir: join(dir, 'pre'), precompute_ref_log_probs: true });
    precomputed.forEach((l, i) => expect(l).toBeCloseTo(live[i], 6));
    const checkpointed = await train({ ...base, output_dir: join(dir, 'ckpt'), gradient_checkpointing: true, disable_dropout: false, lora_dropout: 0.2 });
    const dropout = await train({ ...base, output_dir: join(dir, 'drop'), disable_dropout: false, lora_dropout: 0.2 });
    checkpointed.forEach((l, i) => expect(l).toBeCloseTo(dropout[i], 6)); // same dropout masks on the re-run
    const dtypes = new Map<string, string>();
    const bf16 = await train({ ...base, output_dir: join(dir, 'bf16'), dtype: undefined, bf16: true }, async (t) => {
      for (const p of await t.policy.namedParameters()) dtypes.set(p.name, p.tensor.dtype);
    });
    expect(bf16[0]).toBeCloseTo(Math.LN2, 7);
    expect(bf16[3]).toBeLessThan(bf16[0]);
    expect(new Set([...dtypes].filter(([n]) => isAdapter(n)).map(([, d]) => d))).toEqual(new Set(['float32']));
    expect(new Set([...dtypes].filter(([n]) => !isAdapter(n)).map(([, d]) => d))).toEqual(new Set(['bfloat16']));
  });

  it('CLI: train with use_peft, then export --merge writes the merged HF model with the adapted logits', async () => {
    const { dir, config, out } = cliProject(2, ['use_peft: true', 'lora_target_modules: all-linear', 'save_strategy: steps', 'save_steps: 2', 'report_to: []']);
    const trained = cli(['train', '--config', config, '--set', 'learning_rate=0.05']);
    expect(trained.status === 0 ? '' : trained.stderr).toBe('');
    const merged = cli(['export', '--config', config, '--checkpoint', join(out, 'checkpoint-2'), '--out', join(dir, 'merged'), '--merge']);
    expect(merged.status === 0 ? '' : merged.stderr).toBe('');
    expect(existsSync(join(dir, 'merged', 'model.pt'))).toBe(false);
    const adapted = await loadModel(join(__dirname, 'fixtures', 'tiny-gpt2'), { lora: { r: 16, alpha: 32, dropout: 0, targetModules: 'all-linear', useRslora: false } });
    await adapted.loadTrained(join(out, 'checkpoint-2'));
    await adapted.eval();
    const plain = await loadModel(join(dir, 'merged'));
    const [a, b] = [await logits(adapted), await logits(plain)];
    expect(Math.max(...Array.from(a, (x, i) => Math.abs(x - b[i])))).toBeLessThan(1e-4);
    expect(a).not.toEqual(await logits(await loadModel(join(__dirname, 'fixtures', 'tiny-gpt2'))));
    const plainExport = cli(['export', '--config', config, '--checkpoint', join(out, 'checkpoint-2'), '--out', join(dir, 'adapter')]);
    expect(plainExport.status === 0 ? '' : plainExport.stderr).toBe('');
    expect(readdirSync(join(dir, 'adapter'))).toEqual(expect.arrayContaining(['adapter_config.json', 'adapter_model.safetensors', 'tokenizer.json']));
  });

  it('2 ranks × 2 pairs follow 1 process × 4 pairs, with and without optimizer sharding (launch, Gloo)', async () => {
    const { dir, data } = project();
    const config = join(dir, 'config.yaml');
    writeFileSync(config, [`model_name_or_path: ${FIXTURE}`, `train_dataset: ${data}`, 'max_steps: 4', 'logging_steps: 1', 'learning_rate: 0.01', 'dtype: float32',
      'use_peft: true', 'lora_target_modules: all-linear', 'cache_dir: false', 'save_strategy: "no"', 'save_final_model: false', 'report_to: []'].join('\n'));
    const lossesOf = (out: string) => readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((r) => 'loss' in r).map((r) => r.loss as number);
    const one = cli(['train', '--config', config, '--set', `output_dir=${join(dir, 'one')}`, '--set', 'per_device_train_batch_size=4']);
    expect(one.status === 0 ? '' : one.stderr).toBe('');
    for (const [name, extra] of [['two', []], ['sharded', ['--set', 'optimizer_sharding=true']]] as const) {
      const two = cli(['launch', '--nproc-per-node', '2', '--master-port', String(await freePort()), '--', 'train', '--config', config,
        '--set', `output_dir=${join(dir, name)}`, '--set', 'per_device_train_batch_size=2', ...extra]);
      expect(two.status === 0 ? '' : two.stderr).toBe('');
      const [a, b] = [lossesOf(join(dir, 'one')), lossesOf(join(dir, name))];
      expect(b).toHaveLength(4);
      b.forEach((l, i) => expect(l).toBeCloseTo(a[i], 5));
    }
  });

  it('refuses what LoRA cannot do, in one line', async () => {
    const { dir, data } = project();
    const base = { model_name_or_path: FIXTURE, train_dataset: data, output_dir: join(dir, 'x') };
    await expect(DPOTrainer.create({ ...base, use_peft: true, sync_ref_model: true })).rejects.toThrow(/sync_ref_model: with use_peft the reference is the model with its adapters off/);
    await expect(DPOTrainer.create({ ...base, adapter_name_or_path: dir })).rejects.toThrow(/adapter_name_or_path: needs use_peft: true/);
    await expect(DPOTrainer.create({ ...base, use_peft: true, adapter_name_or_path: dir })).rejects.toThrow(/no adapter_config\.json \(not a PEFT adapter folder\)/);
    await expect(DPOTrainer.create({ ...base, use_peft: true, bf16: true, dtype: 'float32' })).rejects.toThrow(/the frozen model computes in bfloat16/);
  });
});
