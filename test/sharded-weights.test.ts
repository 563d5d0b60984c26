import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, DataError, empty, Tensor, noGrad } from '../lib';
import { createModel } from '../lib/models/causal-lm';
import { loadModel } from '../lib/models/load-model';
import { entryToTensor, readSafetensors, SafetensorsReader, writeSafetensors } from '../lib/models/safetensors';
import { parseShardSize, planShards, weightFiles } from '../lib/models/weight-files';
import { DPOTrainer } from '../lib/train/trainer';
import { cliProject, TINY_GPT2 } from './support/cli-project';

const ids = () => Tensor.from([[1, 5, 9, 3], [2, 2, 7, 0]], { dtype: 'int64' });
const mask = () => Tensor.from([[1, 1, 1, 1], [1, 1, 1, 0]], { dtype: 'int64' });
const logits = async (model: Awaited<ReturnType<typeof createModel>>) => Array.from((await (await noGrad(() => model.forward(ids(), mask()))).toTypedArray()) as Float32Array);
const GPT2 = { vocab_size: 64, n_positions: 32, n_embd: 32, n_layer: 2, n_head: 4 };

async function exported(maxShardSize: string) {
  const model = await createModel('gpt2', GPT2);
  await model.eval();
  const dir = mkdtempSync(join(tmpdir(), 'torch-dpo-shards-'));
  await model.exportSafetensors(dir, { maxShardSize });
  copyFileSync(join(TINY_GPT2, 'tokenizer.json'), join(dir, 'tokenizer.json'));
  return { model, dir, expected: await logits(model) };
}

describe('HF weight folders: one file or shards with an index', () => {
  it('sizes and shard plans follow transformers', () => {
    expect([parseShardSize('5GB'), parseShardSize('500MB'), parseShardSize('2GiB'), parseShardSize('10KB'), parseShardSize(123)]).toEqual([5e9, 5e8, 2 ** 31, 1e4, 123]);
    expect(() => parseShardSize('five gigs')).toThrow(ConfigError);
    // In order; a tensor larger than the limit gets a shard of its own.
    expect(planShards([4, 4, 4, 10, 1], 8)).toEqual([[0, 1], [2], [3], [4]]);
  });

  it('exports shards with model.safetensors.index.json and loads them back exactly', async () => {
    const { dir, expected } = await exported('20KB');
    const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8'));
    const shards = readdirSync(dir).filter((f) => f.startsWith('model-')).sort();
    expect(shards.length).toBeGreaterThan(2);
    expect(shards.every((f, k) => f === `model-${String(k + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`)).toBe(true);
    expect(new Set(Object.values(index.weight_map))).toEqual(new Set(shards));
    const bytes = shards.reduce((s, f) => s + [...readSafetensors(join(dir, f)).tensors.values()].reduce((t, e) => t + e.bytes.length, 0), 0);
    expect(index.metadata.total_size).toBe(bytes);
    expect(existsSync(join(dir, 'model.safetensors'))).toBe(false);
    const loaded = await loadModel(dir);
    await loaded.eval();
    expect(await logits(loaded)).toEqual(expected);
    // A fresh model takes the folder too (as a resume takes a checkpoint folder).
    const fresh = await createModel('gpt2', { ...GPT2 });
    await fresh.loadSafetensors(dir);
    await fresh.eval();
    expect(await logits(fresh)).toEqual(expected);
  });

  it('a later export in one file replaces the shards (and the other way round)', async () => {
    const { model, dir } = await exported('20KB');
    await model.exportSafetensors(dir);
    expect(readdirSync(dir).filter((f) => f.includes('safetensors')).sort()).toEqual(['model.safetensors']);
    await model.exportSafetensors(dir, { maxShardSize: '30KB' });
    expect(readdirSync(dir).filter((f) => f === 'model.safetensors')).toEqual([]);
    expect(weightFiles(dir).length).toBeGreaterThan(1);
  });

  it('names a shard the index lists but the folder lacks, and refuses pickles', async () => {
    const { dir } = await exported('20KB');
    const shard = readdirSync(dir).find((f) => f.startsWith('model-00002'))!;
    renameSync(join(dir, shard), join(dir, `${shard}.gone`));
    await expect(loadModel(dir)).rejects.toThrow(new RegExp(`names shard\\(s\\) that are not in .*: ${shard} \\(an incomplete download\\?\\)`));
    const pickles = mkdtempSync(join(tmpdir(), 'torch-dpo-bin-'));
    for (const f of ['config.json', 'tokenizer.json']) copyFileSync(join(TINY_GPT2, f), join(pickles, f));
    writeFileSync(join(pickles, 'pytorch_model.bin'), 'not read');
    rmSync(join(pickles, 'model.pt'), { force: true });
    await expect(loadModel(pickles)).rejects.toThrow(DataError);
    await expect(loadModel(pickles)).rejects.toThrow(/PyTorch pickle weights \(pytorch_model\.bin\), which torch-dpo does not read \(unpickling runs code\)/);
  });

  it('reads tensor by tensor with positioned reads, and ignores HF rotary inv_freq buffers', async () => {
    const { model, dir } = await exported('5GB');
    const file = join(dir, 'model.safetensors');
    const all = readSafetensors(file).tensors;
    const extended = new Map([...all].map(([name, e]) => [name, entryToTensor(e)]));
    extended.set('model.layers.0.self_attn.rotary_emb.inv_freq', Tensor.from([1, 0.5], { dtype: 'float32' }));
    await writeSafetensors(file, extended);
    const reader = new SafetensorsReader(file);
    try {
      const name = 'transformer.wte.weight';
      const at = reader.header.tensors.get(name)!;
      // The loader's positioned read: the tensor's bytes straight into a tensor of its dtype.
      const read = await (await empty(at.shape, { dtype: at.dtype })).readFile_(file, at.offset);
      expect(Buffer.from(new Uint8Array((await read.toTypedArray() as Float32Array).buffer))).toEqual(Buffer.from(all.get(name)!.bytes));
      expect(at.length).toBe(64 * 32 * 4);
    } finally {
      reader.close();
    }
    await model.loadSafetensors(dir); // the inv_freq entry is not "unexpected"
  });

  it('refuses data longer than the model positions before any compute, saying what to set', async () => {
    const { dir } = cliProject(1);
    const long = Array.from({ length: 4 }, () => ({ prompt: Array.from({ length: 30 }, (_, i) => `w${10 + (i % 20)}`).join(' '), chosen: ' w3 w4 w5 w6', rejected: ' w5 w9' }));
    writeFileSync(join(dir, 'long.jsonl'), long.map((r) => JSON.stringify(r)).join('\n'));
    const attempt = DPOTrainer.create({ model_name_or_path: TINY_GPT2, train_dataset: join(dir, 'long.jsonl'), output_dir: join(dir, 'out'), cache_dir: false, max_steps: 1 });
    await expect(attempt).rejects.toThrow(/^max_length 1024 lets 4 pair\(s\) exceed the model's 32 positions \(longest \d+ tokens\): set max_length: 32 or less$/);
  });
});
