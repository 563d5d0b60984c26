import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTrainerConfig } from '../lib';
import { readSafetensors } from '../lib/models/safetensors';
import { freePort } from './support/free-port';

const CLI = join(__dirname, '..', 'dist', 'cli', 'main.js'); // scripts/setup.sh builds dist/
// Each test launches several 2-rank trainings: 20–50 s alone, up to twice that beside another test
// worker on a 2-core machine.
jest.setTimeout(180_000);
const MODEL = join(__dirname, 'fixtures', 'tiny-gpt2');

function project(): { dir: string; config: string } {
  const dir = mkdtempSync(join(tmpdir(), 'torch-dpo-zero-'));
  const rows = Array.from({ length: 96 }, (_, i) => ({ prompt: `w${10 + (i % 20)} w${11 + (i % 7)}`, chosen: ` w3 w${4 + (i % 3)}`, rejected: ` w5 w${7 + (i % 4)}` }));
  writeFileSync(join(dir, 'train.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n'));
  const config = join(dir, 'config.yaml');
  // Weight decay and a tight clip exercise the per-slice decay flags and the norm assembled over ranks.
  writeFileSync(config, [`model_name_or_path: ${MODEL}`, `train_dataset: ${join(dir, 'train.jsonl')}`, 'max_steps: 10', 'logging_steps: 1', 'learning_rate: 0.002',
    'dtype: float64', 'cache_dir: false', 'save_steps: 5', 'report_to: []', 'lr_scheduler_type: constant', 'weight_decay: 0.1', 'max_grad_norm: 0.5'].join('\n'));
  return { dir, config };
}

const succeeded = (run: { status: number | null; stderr: string }) => expect({ status: run.status, stderr: run.status === 0 ? '' : run.stderr }).toEqual({ status: 0, stderr: '' });
const records = (file: string) => readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((r) => 'loss' in r);
const close = (a: number[], b: number[]) => {
  expect(b).toHaveLength(a.length);
  a.forEach((x, i) => expect(Math.abs(b[i] - x) / Math.max(1e-12, Math.abs(x))).toBeLessThanOrEqual(1e-5));
};
const numel = (file: string) => [...readSafetensors(file).tensors.values()].reduce((s, e) => s + e.shape.reduce((p, d) => p * d, 1), 0);

// Two ranks, each with a tiny GPT-2: after each micro-batch's backward, what gradients do the
// parameters still hold, and how big are this rank's gradient slices?
const GRADIENTS_HELD = `const t = require(${JSON.stringify(join(__dirname, '..', 'dist'))});
(async () => {
  const stage = Number(process.env.STAGE);
  const group = await t.ProcessGroup.init(t.distributedEnv(), { timeoutMs: 30000, bucketBytes: 64 * 1024 });
  t.manualSeed(1);
  const model = await t.createModel('gpt2', { vocab_size: 64, n_positions: 16, n_embd: 32, n_layer: 2, n_head: 4 });
  const params = await model.namedParameters();
  const total = params.reduce((n, p) => n + p.tensor.numel, 0);
  const options = { lr: 1e-3 };
  const optimizer = stage === 0 ? new t.AdamW(params, options, group) : new t.ShardedAdamW(params, options, group, stage);
  const held = [];
  for (let k = 0; k < 2; k += 1) {
    optimizer.beforeBackward(k === 1);
    const ids = await t.randint(0, 64, [2, 8]);
    const logits = await model.forward(ids, await t.ones([2, 8], { dtype: 'int64' }));
    await (await (await logits.logsumexp(2)).mean()).backward();
    await optimizer.afterMicroBatch();
    let n = 0;
    for (const p of params) n += (await p.tensor.grad())?.numel ?? 0;
    held.push(n);
  }
  const norm = await optimizer.reduceAndClip(undefined);
  const slices = stage === 2 ? optimizer.gradSlices.reduce((n, s) => n + s.numel, 0) : null;
  await optimizer.step();
  // Stage 2: how many buckets backward itself launched (the hooks fired as gradients became final).
  const overlap = stage === 2 ? optimizer.reducer.stats() : null;
  console.log(JSON.stringify({ rank: group.rank, total, held, slices, norm, state: optimizer.stateNumel ?? null, overlap }));
  group.dispose();
})();`;

describe('ZeRO stage 2 (launch, 2 ranks, Gloo)', () => {
  it('same trajectory as 1 process × 8 pairs with accumulation, clipping and weight decay; half the moments per rank; resumes exactly', async () => {
    const { dir, config } = project();
    const single = spawnSync(process.execPath, [CLI, 'train', '--config', config, '--set', `output_dir=${join(dir, 'one')}`, '--set', 'per_device_train_batch_size=8'], { encoding: 'utf8' });
    succeeded(single);
    const launch = async (...extra: string[]) => spawnSync(process.execPath, [CLI, 'launch', '--nproc-per-node', '2', '--master-port', String(await freePort()), '--',
      'train', '--config', config, '--set', 'per_device_train_batch_size=2', '--set', 'gradient_accumulation_steps=2', '--set', 'zero_stage=2', ...extra], { encoding: 'utf8' });
    succeeded(await launch('--set', `output_dir=${join(dir, 'two')}`));
    const one = records(join(dir, 'one', 'metrics.jsonl'));
    const two = records(join(dir, 'two', 'metrics.jsonl'));
    close(one.map((r) => r.loss), two.map((r) => r.loss));
    close(one.map((r) => r.grad_norm), two.map((r) => r.grad_norm));
    expect(one.some((r) => r.grad_norm > 0.5)).toBe(true); // clipping happened

    const full = numel(join(dir, 'one', 'checkpoint-10', 'optimizer.safetensors'));
    const shards = [0, 1].map((r) => numel(join(dir, 'two', 'checkpoint-10', `optimizer.rank-${r}.safetensors`)));
    expect(shards[0] + shards[1]).toBe(full);
    for (const n of shards) expect(n).toBeLessThanOrEqual(Math.ceil(full / 2) + 16);
    expect(JSON.parse(readFileSync(join(dir, 'two', 'checkpoint-10', 'torch_dpo_state.json'), 'utf8')).zeroStage).toBe(2);

    succeeded(await launch('--set', `output_dir=${join(dir, 'split')}`, '--set', 'max_steps=5'));
    succeeded(await launch('--set', `output_dir=${join(dir, 'split')}`, '--set', 'resume_from_checkpoint=true'));
    expect(records(join(dir, 'split', 'metrics.jsonl')).map((r) => r.loss)).toEqual(two.map((r) => r.loss));
    const stageOne = await launch('--set', `output_dir=${join(dir, 'split')}`, '--set', 'resume_from_checkpoint=true', '--set', 'zero_stage=1');
    expect(stageOne.status).not.toBe(0);
    expect(stageOne.stderr).toMatch(/written with zero_stage 2[;:] resume it with the same setting \(now optimizer_sharding on\)/);
    expect(existsSync(join(dir, 'two', 'final', 'model.safetensors'))).toBe(true);
  });

  it('releases every gradient after each backward and keeps only its slices (half of the gradients); the norm equals stage 0 and 1', async () => {
    const run = async (stage: number) => {
      const out = spawnSync(process.execPath, [CLI, 'launch', '--nproc-per-node', '2', '--master-port', String(await freePort()), '--', process.execPath, '-e', GRADIENTS_HELD],
        { encoding: 'utf8', env: { ...process.env, STAGE: String(stage) } });
      succeeded(out);
      return out.stdout.trim().split('\n').map((l) => JSON.parse(l.replace(/^\[rank \d+\] /, ''))).sort((a, b) => a.rank - b.rank);
    };
    const [plain, one, two] = [await run(0), await run(1), await run(2)];
    const total = plain[0].total;
    // Stage 0 and 1 keep (and accumulate) every gradient over the micro-batches; stage 2 keeps none.
    for (const r of [...plain, ...one]) expect(r.held).toEqual([total, total]);
    for (const r of two) expect(r.held).toEqual([0, 0]);
    for (const r of two) expect(r.overlap.launchedInBackward).toBe(r.overlap.buckets);
    expect(two[0].overlap.buckets).toBeGreaterThan(1);
    expect(two[0].slices + two[1].slices).toBeGreaterThanOrEqual(total);
    for (const r of two) expect(r.slices).toBeLessThanOrEqual(Math.ceil(total / 2) + 64);
    for (const r of [...one, ...two]) expect(Math.abs(r.norm - plain[0].norm) / plain[0].norm).toBeLessThan(1e-6);
    for (const r of two) expect(r.state).toBeLessThanOrEqual(Math.ceil(total / 2) + 64);
  });

  it('composes with LoRA (only the adapters are sharded) and with bf16 mixed precision (fp32 master gradients sharded; stage 3 too)', async () => {
    const { dir, config } = project();
    // bf16 needs the built-in architecture: the fixture's safetensors without its traced model.pt.
    const model = join(dir, 'model');
    mkdirSync(model);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) writeFileSync(join(model, f), readFileSync(join(MODEL, f)));
    const run = async (ranks: number, ...extra: string[]) => spawnSync(process.execPath, [CLI, ...(ranks > 1 ? ['launch', '--nproc-per-node', String(ranks), '--master-port', String(await freePort()), '--'] : []),
      'train', '--config', config, '--set', `model_name_or_path=${model}`, '--set', 'max_steps=6', ...extra], { encoding: 'utf8' });
    const twoByTwo = ['--set', 'per_device_train_batch_size=2', '--set', 'gradient_accumulation_steps=2'];
    succeeded(await run(1, '--set', `output_dir=${join(dir, 'lora-one')}`, '--set', 'per_device_train_batch_size=8', '--set', 'use_peft=true', '--set', 'lora_r=4'));
    succeeded(await run(2, '--set', `output_dir=${join(dir, 'lora-two')}`, ...twoByTwo, '--set', 'zero_stage=2', '--set', 'use_peft=true', '--set', 'lora_r=4'));
    close(records(join(dir, 'lora-one', 'metrics.jsonl')).map((r) => r.loss), records(join(dir, 'lora-two', 'metrics.jsonl')).map((r) => r.loss));
    const bf16 = ['--set', 'dtype=float32', '--set', 'bf16=true', ...twoByTwo];
    succeeded(await run(2, '--set', `output_dir=${join(dir, 'bf16-one')}`, ...bf16, '--set', 'zero_stage=1'));
    succeeded(await run(2, '--set', `output_dir=${join(dir, 'bf16-two')}`, ...bf16, '--set', 'zero_stage=2'));
    close(records(join(dir, 'bf16-one', 'metrics.jsonl')).map((r) => r.loss), records(join(dir, 'bf16-two', 'metrics.jsonl')).map((r) => r.loss));
    // Stage 3: bf16 layer units gathered, their gradients reduce-scattered in fp32, fp32 master slices updated.
    succeeded(await run(2, '--set', `output_dir=${join(dir, 'bf16-three')}`, ...bf16, '--set', 'zero_stage=3'));
    const [stageOne, stageThree] = [records(join(dir, 'bf16-one', 'metrics.jsonl')), records(join(dir, 'bf16-three', 'metrics.jsonl'))];
    close(stageOne.map((r) => r.loss), stageThree.map((r) => r.loss));
    close(stageOne.map((r) => r.grad_norm), stageThree.map((r) => r.grad_norm));
    // Its checkpoint holds the fp32 masters' slices: a resume at step 5 continues exactly.
    succeeded(await run(2, '--set', `output_dir=${join(dir, 'bf16-split')}`, ...bf16, '--set', 'zero_stage=3', '--set', 'max_steps=5'));
    succeeded(await run(2, '--set', `output_dir=${join(dir, 'bf16-split')}`, ...bf16, '--set', 'zero_stage=3', '--set', 'resume_from_checkpoint=true'));
    expect(records(join(dir, 'bf16-split', 'metrics.jsonl')).map((r) => r.loss)).toEqual(stageThree.map((r) => r.loss));
    expect(readSafetensors(join(dir, 'bf16-split', 'checkpoint-5', 'zero3-rank-1-of-2.safetensors')).tensors.get('unit.0')!.dtype).toBe('float32');
  });

  it('zero_stage takes 0 to 3, stage 3 with LoRA, bf16 and TR-DPO', () => {
    const base = { model_name_or_path: MODEL, train_dataset: 'x.jsonl', output_dir: 'out' };
    expect(parseTrainerConfig({ ...base, zero_stage: 2 }).zero_stage).toBe(2);
    expect(parseTrainerConfig({ ...base, zero_stage: 3 }).zero_stage).toBe(3);
    expect(parseTrainerConfig({ ...base, zero_stage: 3, use_peft: true }).use_peft).toBe(true);
    expect(parseTrainerConfig({ ...base, zero_stage: 3, bf16: true }).bf16).toBe(true);
    expect(parseTrainerConfig({ ...base, zero_stage: 3, sync_ref_model: true }).sync_ref_model).toBe(true);
    expect(() => parseTrainerConfig({ ...base, zero_stage: 4 })).toThrow(/zero_stage/);
  });
});

describe('ZeRO stage 3 (launch, 2 ranks, Gloo)', () => {
  it('layers sharded at rest: same trajectory as 1 × 8 (accumulation, clipping, weight decay); per-rank checkpoint slices; resume ≡ straight; the export (launched, and joined in one process) equals the unsharded model', async () => {
    const { dir, config } = project();
    // Stage 3 needs the built-in architecture: the fixture's safetensors without its traced model.pt.
    const model = join(dir, 'model');
    mkdirSync(model);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) writeFileSync(join(model, f), readFileSync(join(MODEL, f)));
    const single = spawnSync(process.execPath, [CLI, 'train', '--config', config, '--set', `model_name_or_path=${model}`, '--set', `output_dir=${join(dir, 'one')}`, '--set', 'per_device_train_batch_size=8'], { encoding: 'utf8' });
    succeeded(single);
    const launch = async (...extra: string[]) => spawnSync(process.execPath, [CLI, 'launch', '--nproc-per-node', '2', '--master-port', String(await freePort()), '--',
      'train', '--config', config, '--set', `model_name_or_path=${model}`, '--set', 'per_device_train_batch_size=2', '--set', 'gradient_accumulation_steps=2', '--set', 'zero_stage=3', ...extra], { encoding: 'utf8' });
    succeeded(await launch('--set', `output_dir=${join(dir, 'three')}`));
    const one = records(join(dir, 'one', 'metrics.jsonl'));
    const three = records(join(dir, 'three', 'metrics.jsonl'));
    close(one.map((r) => r.loss), three.map((r) => r.loss));
    close(one.map((r) => r.grad_norm), three.map((r) => r.grad_norm));
    // The checkpoint: each rank's slice of the layers in its own file (one tensor per layer unit,
    // the layout in the metadata), the replicated weights once; no HF weight files.
    const ckpt = join(dir, 'three', 'checkpoint-10');
    expect(readdirSync(ckpt).filter((f) => f.endsWith('.safetensors')).sort()).toEqual(['optimizer.rank-0.safetensors', 'optimizer.rank-1.safetensors', 'zero3-rank-0-of-2.safetensors', 'zero3-rank-1-of-2.safetensors', 'zero3-replicated.safetensors']);
    const modelNumel = numel(join(MODEL, 'model.safetensors'));
    for (const r of [0, 1]) {
      const file = readSafetensors(join(ckpt, `zero3-rank-${r}-of-2.safetensors`));
      // Two layers, then the outer unit (embeddings, final norm; the head is tied).
      expect([...file.tensors.keys()].sort()).toEqual(['unit.0', 'unit.1', 'unit.2']);
      const layout = JSON.parse(file.metadata.units);
      expect(layout[1][0].name).toMatch(/^transformer\.h\.1\./);
      expect(layout[2].map((m: { name: string }) => m.name)).toContain('transformer.wte.weight');
      expect(numel(join(ckpt, `zero3-rank-${r}-of-2.safetensors`))).toBeLessThanOrEqual(Math.ceil(modelNumel / 2) + 3);
    }
    expect(readSafetensors(join(ckpt, 'zero3-replicated.safetensors')).tensors.size).toBe(0); // nothing is replicated
    const shards = [0, 1].map((r) => numel(join(dir, 'three', 'checkpoint-10', `optimizer.rank-${r}.safetensors`)));
    const full = numel(join(dir, 'one', 'checkpoint-10', 'optimizer.safetensors'));
    expect(shards[0] + shards[1]).toBeGreaterThanOrEqual(full);
    for (const n of shards) expect(n).toBeLessThanOrEqual(Math.ceil(full / 2) + 64);
    // The exported weights are the unsharded run's.
    const weights = (folder: string) => {
      const out = new Map<string, number[]>();
      const files = readdirSync(folder).filter((f) => f.endsWith('.safetensors'));
      for (const f of files) for (const [name, entry] of readSafetensors(join(folder, f)).tensors) out.set(name, Array.from(new Float64Array(entry.bytes.slice().buffer)));
      return out;
    };
    const [a, b] = [weights(join(dir, 'one', 'final')), weights(join(dir, 'three', 'final'))];
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
    let worst = 0;
    for (const [name, values] of a) values.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - b.get(name)![i]))));
    expect(worst).toBeLessThan(1e-10);
    // In one process the checkpoint's slices are joined unit by unit: its export equals too.
    succeeded(spawnSync(process.execPath, [CLI, 'export', '--config', config, '--set', `model_name_or_path=${model}`, '--set', `output_dir=${join(dir, 'three')}`, '--checkpoint', ckpt, '--out', join(dir, 'joined')], { encoding: 'utf8' }));
    const joined = weights(join(dir, 'joined'));
    expect([...joined.keys()].sort()).toEqual([...a.keys()].sort());
    for (const [name, values] of a) values.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - joined.get(name)![i]))));
    expect(worst).toBeLessThan(1e-10);
    const asModel = spawnSync(process.execPath, [CLI, 'train', '--config', config, '--set', `model_name_or_path=${ckpt}`, '--set', `output_dir=${join(dir, 'wrong')}`], { encoding: 'utf8' });
    expect(asModel.stderr).toMatch(/checkpoint-10 is a ZeRO-3 checkpoint \(each rank's slice of the layers\), not a model folder: .*torch-dpo export --checkpoint/);

    succeeded(await launch('--set', `output_dir=${join(dir, 'split')}`, '--set', 'max_steps=5'));
    succeeded(await launch('--set', `output_dir=${join(dir, 'split')}`, '--set', 'resume_from_checkpoint=true'));
    expect(records(join(dir, 'split', 'metrics.jsonl')).map((r) => r.loss)).toEqual(three.map((r) => r.loss));

    const traced = await launch('--set', `model_name_or_path=${MODEL}`, '--set', `output_dir=${join(dir, 'traced')}`);
    expect(traced.status).not.toBe(0);
    expect(traced.stderr).toMatch(/zero_stage 3: .*model\.pt is a traced TorchScript export, which cannot be split into layers/);
  });
  it('LoRA: the frozen base sharded, the adapters replicated: ≡ 1 × 8; the adapter and the merged export (gathered layer by layer) equal one process\'s', async () => {
    const { dir, config } = project();
    const model = join(dir, 'model');
    mkdirSync(model);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) writeFileSync(join(model, f), readFileSync(join(MODEL, f)));
    const lora = ['--set', `model_name_or_path=${model}`, '--set', 'max_steps=6', '--set', 'use_peft=true', '--set', 'lora_r=4', '--set', 'save_steps=6'];
    const launch = async (...args: string[]) => spawnSync(process.execPath, [CLI, 'launch', '--nproc-per-node', '2', '--master-port', String(await freePort()), '--', ...args], { encoding: 'utf8' });
    succeeded(spawnSync(process.execPath, [CLI, 'train', '--config', config, ...lora, '--set', `output_dir=${join(dir, 'one')}`, '--set', 'per_device_train_batch_size=8'], { encoding: 'utf8' }));
    succeeded(await launch('train', '--config', config, ...lora, '--set', `output_dir=${join(dir, 'three')}`, '--set', 'per_device_train_batch_size=2', '--set', 'gradient_accumulation_steps=2', '--set', 'zero_stage=3'));
    close(records(join(dir, 'one', 'metrics.jsonl')).map((r) => r.loss), records(join(dir, 'three', 'metrics.jsonl')).map((r) => r.loss));
    const values = (file: string) => new Map([...readSafetensors(file).tensors].map(([n, e]) => [n, Array.from(new Float64Array(e.bytes.slice().buffer))]));
    const worstDiff = (a: Map<string, number[]>, b: Map<string, number[]>) => {
      expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
      let worst = 0;
      for (const [name, v] of a) v.forEach((x, i) => (worst = Math.max(worst, Math.abs(x - b.get(name)![i]))));
      return worst;
    };
    expect(worstDiff(values(join(dir, 'one', 'final', 'adapter_model.safetensors')), values(join(dir, 'three', 'final', 'adapter_model.safetensors')))).toBeLessThan(1e-10);
    // Merged: launched with zero_stage 3 (each layer gathered, merged, written by rank 0) vs one process.
    const exportArgs = (out: string, from: string) => ['export', '--config', config, ...lora, '--set', `output_dir=${join(dir, from)}`, '--checkpoint', join(dir, from, 'checkpoint-6'), '--out', join(dir, out), '--merge'];
    succeeded(spawnSync(process.execPath, [CLI, ...exportArgs('merged-one', 'one')], { encoding: 'utf8' }));
    succeeded(await launch(...exportArgs('merged-three', 'three'), '--set', 'zero_stage=3'));
    const merged = (folder: string) => new Map(readdirSync(join(dir, folder)).filter((f) => f.endsWith('.safetensors')).flatMap((f) => [...values(join(dir, folder, f))]));
    const [a, b] = [merged('merged-one'), merged('merged-three')];
    expect([...a.keys()].some((n) => n.includes('lora_'))).toBe(false);
    expect(worstDiff(a, b)).toBeLessThan(1e-10);
  });
  it('TR-DPO: the sharded reference mixes in the policy slice by slice: ≡ 1 × 8; its slices are checkpointed, resume ≡ straight', async () => {
    const { dir, config } = project();
    const model = join(dir, 'model');
    mkdirSync(model);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) writeFileSync(join(model, f), readFileSync(join(MODEL, f)));
    const sync = ['--set', `model_name_or_path=${model}`, '--set', 'max_steps=6', '--set', 'save_steps=3', '--set', 'sync_ref_model=true', '--set', 'ref_model_sync_steps=2', '--set', 'ref_model_mixup_alpha=0.5'];
    succeeded(spawnSync(process.execPath, [CLI, 'train', '--config', config, ...sync, '--set', `output_dir=${join(dir, 'one')}`, '--set', 'per_device_train_batch_size=8'], { encoding: 'utf8' }));
    const launch = async (...extra: string[]) => spawnSync(process.execPath, [CLI, 'launch', '--nproc-per-node', '2', '--master-port', String(await freePort()), '--', 'train', '--config', config, ...sync,
      '--set', 'per_device_train_batch_size=2', '--set', 'gradient_accumulation_steps=2', '--set', 'zero_stage=3', ...extra], { encoding: 'utf8' });
    succeeded(await launch('--set', `output_dir=${join(dir, 'three')}`));
    const [one, three] = [records(join(dir, 'one', 'metrics.jsonl')), records(join(dir, 'three', 'metrics.jsonl'))];
    // (A sync that missed the layers' slices would leave the reference's layers behind: losses from step 3 on would differ.)
    close(one.map((r) => r.loss), three.map((r) => r.loss));
    // The synced reference's slices are in the checkpoint: a resume at step 3 (after the sync at 2) continues exactly.
    expect(readdirSync(join(dir, 'three', 'checkpoint-3', 'ref_model')).filter((f) => f.startsWith('zero3-')).sort()).toEqual(['zero3-rank-0-of-2.safetensors', 'zero3-rank-1-of-2.safetensors', 'zero3-replicated.safetensors']);
    succeeded(await launch('--set', `output_dir=${join(dir, 'split')}`, '--set', 'max_steps=3'));
    succeeded(await launch('--set', `output_dir=${join(dir, 'split')}`, '--set', 'resume_from_checkpoint=true'));
    expect(records(join(dir, 'split', 'metrics.jsonl')).map((r) => r.loss)).toEqual(three.map((r) => r.loss));
  });
});
