import { copyFileSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataError, NativeError, Tensor, noGrad, sequenceLogps } from '../lib';
import { CausalLM, createModel } from '../lib/models/causal-lm';
import { loadModel } from '../lib/models/load-model';
import { bakedDevices } from '../lib/models/traced-graph';
import { readSafetensors } from '../lib/models/safetensors';
import { ScriptModule } from '../lib/models/script-module';
import { float32Values as values, maxDiff, modelFixture } from './support/fixture-model';

const { dir: FIXTURE, reference, ids, mask } = modelFixture('tiny-gpt2');

/** A model folder holding only some of the fixture's files. */
function folderWith(files: string[], edit: (dir: string) => void = () => {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'torch-dpo-model-'));
  for (const f of files) copyFileSync(join(FIXTURE, f), join(dir, f));
  edit(dir);
  return dir;
}
const SAFETENSORS_ONLY = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors'];

async function trainStep(model: CausalLM, lr = 0.5): Promise<void> {
  const logits = await model.forward(ids(), mask());
  const completion = Tensor.from(reference.attention_mask.map((row) => row.map((m, t) => (t >= 2 ? m : 0))), { dtype: 'bool' });
  const { logps } = await sequenceLogps(logits, ids(), completion);
  await (await (await logps.sum()).neg()).backward();
  await noGrad(async () => {
    for (const p of await model.parameters()) {
      const grad = await p.grad();
      if (grad) {
        await p.add_(grad, -lr);
        await grad.zero_();
      }
    }
  });
}

describe('HF TorchScript export (traced fixture)', () => {
  it('loads and reproduces the Python logits within 1e-5', async () => {
    const model = await loadModel(FIXTURE);
    expect(model.info).toMatchObject({ source: 'torchscript', vocabSize: 64, forwardArgs: ['input_ids', 'attention_mask'], architecture: 'GPT2LMHeadModel' });
    const logits = await model.forward(ids(), mask());
    expect(logits.shape).toEqual(reference.logits_shape);
    expect(maxDiff(await values(logits), reference.logits)).toBeLessThan(1e-5);
  });

  it('lists tied weights once, trains, and keeps a reference copy unchanged', async () => {
    const model = await loadModel(join(FIXTURE, 'model.pt'));
    const named = await model.namedParameters();
    const wte = named.find((p) => p.name === 'transformer.wte.weight')!;
    expect(wte.aliases).toEqual(['lm_head.weight']);
    expect(named.some((p) => p.name === 'lm_head.weight')).toBe(false);
    const ref = await model.referenceCopy();
    const before = await values(await model.forward(ids(), mask()));
    await trainStep(model);
    const after = await values(await model.forward(ids(), mask()));
    expect(maxDiff(after, before)).toBeGreaterThan(1e-3);
    expect(maxDiff(await values(await noGrad(() => ref.forward(ids(), mask()))), reference.logits)).toBeLessThan(1e-5);
    expect((await ref.parameters()).every((p) => !p.requiresGrad)).toBe(true);
  });
});

describe('what a trace baked in', () => {
  it('finds the device constants of the traced fixture and warns only on another device', async () => {
    const module = await ScriptModule.load(join(FIXTURE, 'model.pt'));
    const forward = (await module.describe()).methods.find((m) => m.name === 'forward')!;
    expect(bakedDevices(forward.graph)).toEqual(['cpu']);
    expect((await loadModel(FIXTURE)).info.warnings).toEqual([]);
    const scripted = await createModel('gpt2', { vocab_size: 64, n_positions: 32, n_embd: 32, n_layer: 1, n_head: 4 });
    const dir = mkdtempSync(join(tmpdir(), 'torch-dpo-scripted-'));
    await scripted.save(join(dir, 'model.pt'));
    const graph = (await (await ScriptModule.load(join(dir, 'model.pt'))).describe()).methods.find((m) => m.name === 'forward')!.graph;
    expect(bakedDevices(graph)).toEqual([]); // scripted source follows the input's device
  });

  it('warns when a model was saved in eval mode', async () => {
    const module = await ScriptModule.load(join(FIXTURE, 'model.pt'));
    await module.eval();
    const dir = folderWith(['config.json', 'tokenizer.json']);
    await module.save(join(dir, 'model.pt'));
    const model = await loadModel(dir);
    expect(model.info.warnings.join('\n')).toMatch(/saved in eval mode/);
  });
});

describe('built-in GPT-2', () => {
  it('loaded from the fixture safetensors gives the traced fixture logits', async () => {
    const model = await loadModel(folderWith(SAFETENSORS_ONLY));
    expect(model.info.source).toBe('builtin');
    expect(model.info.hasForwardHidden).toBe(true);
    await model.eval();
    expect(maxDiff(await values(await model.forward(ids(), mask())), reference.logits)).toBeLessThan(1e-5);
    const hidden = await model.forwardHidden(ids(), mask());
    expect(hidden.shape).toEqual([2, 8, 32]);
  });

  it('keeps tied weights tied through a training step (updated once)', async () => {
    const model = await loadModel(folderWith(SAFETENSORS_ONLY));
    const params = await model.parameters();
    expect(params.length).toBe((await model.namedParameters()).length);
    await trainStep(model);
    const named = await model.namedParameters();
    const wte = named.find((p) => p.name === 'transformer.wte.weight')!;
    expect(wte.aliases).toEqual(['lm_head.weight']);
    // logits = hidden · wteᵀ after the update as well
    const hidden = await model.forwardHidden(ids(), mask());
    const manual = await hidden.matmul(await wte.tensor.transpose(0, 1));
    expect(maxDiff(await values(manual), await values(await model.forward(ids(), mask())))).toBeLessThan(1e-5);
  });

  it('round-trips through TorchScript save/load and safetensors export', async () => {
    const model = await createModel('gpt2', { vocab_size: 64, n_positions: 32, n_embd: 32, n_layer: 2, n_head: 4 });
    await model.eval();
    const expected = await values(await model.forward(ids(), mask()));
    const dir = mkdtempSync(join(tmpdir(), 'torch-dpo-export-'));
    await model.save(join(dir, 'model.pt'));
    await model.save(join(dir, 'model.pt')); // replaced whole, through a temporary file that does not stay
    expect(readdirSync(dir)).toEqual(['model.pt']);
    await expect(model.save(join(dir, 'missing-folder', 'model.pt'))).rejects.toThrow(NativeError);
    expect(readdirSync(dir)).toEqual(['model.pt']);
    const reloaded = await ScriptModule.load(join(dir, 'model.pt'));
    expect(maxDiff(await values((await reloaded.forward(ids(), mask())) as Tensor), expected)).toBeLessThan(1e-6);

    const out = join(dir, 'hf');
    await model.exportSafetensors(out);
    copyFileSync(join(FIXTURE, 'tokenizer.json'), join(out, 'tokenizer.json'));
    const fromExport = await loadModel(out);
    await fromExport.eval();
    expect(maxDiff(await values(await fromExport.forward(ids(), mask())), expected)).toBeLessThan(1e-6);
    const file = readSafetensors(join(out, 'model.safetensors'));
    expect(file.tensors.has('lm_head.weight')).toBe(false);
    expect(file.tensors.get('transformer.h.0.attn.c_attn.weight')?.shape).toEqual([32, 96]);

    await model.exportSafetensors(join(dir, 'bf16'), { dtype: 'bfloat16' });
    expect(readSafetensors(join(dir, 'bf16', 'model.safetensors')).tensors.get('transformer.wte.weight')?.dtype).toBe('bfloat16');
    expect(JSON.parse(readFileSync(join(dir, 'bf16', 'config.json'), 'utf8'))).toMatchObject({ model_type: 'gpt2', n_embd: 32, torch_dtype: 'bfloat16' });
  });
});

describe('bad model files', () => {
  it('names what is wrong', async () => {
    await expect(loadModel(folderWith(['config.json', 'model.pt']))).rejects.toThrow(/tokenizer\.json is missing/);
    await expect(loadModel(folderWith(['tokenizer.json', 'model.pt']))).rejects.toThrow(/config\.json is missing/);
    await expect(loadModel(folderWith(['config.json', 'tokenizer.json'], (d) => writeFileSync(join(d, 'model.pt'), 'not a zip')))).rejects.toThrow(NativeError);
    await expect(loadModel(folderWith(['config.json', 'tokenizer.json'], (d) => writeFileSync(join(d, 'model.pt'), 'not a zip')))).rejects.toThrow(/not a ZIP archive|zip/i);
    const truncated = folderWith(['config.json', 'tokenizer.json'], (d) => {
      const bytes = readFileSync(join(FIXTURE, 'model.safetensors'));
      writeFileSync(join(d, 'model.safetensors'), bytes.subarray(0, bytes.length - 100));
    });
    await expect(loadModel(truncated)).rejects.toThrow(DataError);
    await expect(loadModel(truncated)).rejects.toThrow(/outside the data/);
    const wrongVocab = folderWith(['tokenizer.json', 'model.pt'], (d) => {
      const config = JSON.parse(readFileSync(join(FIXTURE, 'config.json'), 'utf8'));
      writeFileSync(join(d, 'config.json'), JSON.stringify({ ...config, vocab_size: 50 }));
    });
    await expect(loadModel(wrongVocab)).rejects.toThrow(/logits have 64 entries but config\.json says vocab_size 50/);
    const bigTokenizer = folderWith(['config.json', 'model.pt'], (d) => {
      const tok = JSON.parse(readFileSync(join(FIXTURE, 'tokenizer.json'), 'utf8'));
      tok.added_tokens.push({ id: 70, content: '<extra>', special: true });
      writeFileSync(join(d, 'tokenizer.json'), JSON.stringify(tok));
    });
    await expect(loadModel(bigTokenizer)).rejects.toThrow(/tokenizer has 71 tokens but the model's vocabulary is 64/);
  });

  it('lists the whole diff when safetensors do not fit the model', async () => {
    const model = await createModel('gpt2', { vocab_size: 64, n_positions: 32, n_embd: 32, n_layer: 3, n_head: 4 });
    const error = await model.loadSafetensors(join(FIXTURE, 'model.safetensors')).catch((e: Error) => e);
    expect(error).toBeInstanceOf(DataError);
    expect(String((error as Error).message)).toMatch(/missing from the file: transformer\.h\.2\.ln_1\.weight/);
    const narrow = await createModel('gpt2', { vocab_size: 64, n_positions: 16, n_embd: 32, n_layer: 2, n_head: 4 });
    await expect(narrow.loadSafetensors(join(FIXTURE, 'model.safetensors'))).rejects.toThrow(/shape mismatch: transformer\.wpe\.weight: file \[32,32\] vs model \[16,32\]/);
  });
});

describe('model conventions', () => {
  it('reads logits from a dict output and calls forward(input_ids) alone when that is the signature', async () => {
    const module = ScriptModule.create('DictLM');
    await module.registerParameter('table', await (await Tensor.from([[0.5, -1, 2]]).expand([5, 3])).contiguous());
    await module.define('\ndef forward(self, input_ids):\n    return {"logits": torch.embedding(self.table, input_ids)}\n');
    const dir = mkdtempSync(join(tmpdir(), 'torch-dpo-dict-'));
    await module.save(join(dir, 'model.pt'));
    const model = await loadModel(join(dir, 'model.pt'));
    expect(model.info.forwardArgs).toEqual(['input_ids']);
    expect(model.info.vocabSize).toBe(3);
    const logits = await model.forward(Tensor.from([[1, 4]], { dtype: 'int64' }), Tensor.from([[1, 1]], { dtype: 'int64' }));
    expect(await logits.toArray()).toEqual([0.5, -1, 2, 0.5, -1, 2]);
  });

  it('passes an array of tensors as a TorchScript List[Tensor] (per-layer caches) and returns lists as arrays', async () => {
    const module = ScriptModule.create('ListArgs');
    await module.define('\ndef stack_sum(self, xs: List[Tensor], scale: float):\n    return [torch.stack(xs).sum(0) * scale, xs[-1]]\n');
    const out = (await module.run('stack_sum', [[Tensor.from([1, 2]), Tensor.from([10, 20]), Tensor.from([100, 200])], 0.5])) as Tensor[];
    expect(await out[0].toArray()).toEqual([55.5, 111]);
    expect(await out[1].toArray()).toEqual([100, 200]);
    await expect(module.run('stack_sum', [[Tensor.from([1]), 3 as never], 1])).rejects.toThrow(/module input 0 \(a list of tensors\)/);
  });

  it('honours train()/eval() for dropout and draws weights like HF', async () => {
    const model = await createModel('gpt2', { vocab_size: 64, n_positions: 16, n_embd: 32, n_layer: 2, n_head: 4, resid_pdrop: 0.5, embd_pdrop: 0.5, attn_pdrop: 0.5 });
    const run = async () => values(await noGrad(() => model.forward(ids(), mask())));
    await model.train();
    expect(maxDiff(await run(), await run())).toBeGreaterThan(1e-3);
    await model.eval();
    expect(maxDiff(await run(), await run())).toBe(0);
    const named = await model.namedParameters();
    const std = async (name: string) => {
      const v = await values(named.find((p) => p.name === name)!.tensor.detach());
      const mean = v.reduce((a, b) => a + b, 0) / v.length;
      return Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
    };
    expect(await std('transformer.wte.weight')).toBeCloseTo(0.02, 2);
    expect(await std('transformer.h.0.attn.c_proj.weight')).toBeCloseTo(0.02 / Math.sqrt(4), 2);
    expect(await values(named.find((p) => p.name === 'transformer.h.0.ln_1.weight')!.tensor.detach())).toEqual(new Array(32).fill(1));
  });
});
