import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { noGrad } from '../lib/grad-mode';
import type { CausalLM } from '../lib/models/causal-lm';
import { loadModel } from '../lib/models/load-model';
import type { LoraOptions } from '../lib/models/lora';
import { readSafetensors } from '../lib/models/safetensors';
import { Tensor } from '../lib/tensor';
import { randn } from '../lib/tensor-functions';
import { pythonTorch, runPythonCheck } from './support/python-checks';

/** LoRA on the built-in architectures: adapters, the adapters-off reference, PEFT files, merging. */
const LLAMA = join(__dirname, 'fixtures', 'hf-llama3'); // q/k/v/o and MLP biases: both linear forms
const GPT2 = join(__dirname, 'fixtures', 'tiny-gpt2'); // Conv1D layers (PEFT's fan_in_fan_out)
const IDS = [[5, 17, 33, 2, 9, 41, 0, 0], [12, 3, 60, 7, 7, 25, 38, 11]];
const MASK = [[1, 1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1]];
const ALL_LINEAR: LoraOptions = { r: 4, alpha: 8, dropout: 0.1, targetModules: 'all-linear', useRslora: false };

/** Logits in eval mode (no dropout: lora_dropout is 0.1 here). */
async function logits(model: CausalLM): Promise<Float64Array> {
  await model.eval();
  return noGrad(async () => (await (await model.forward(Tensor.from(IDS, { dtype: 'int64' }), Tensor.from(MASK, { dtype: 'int64' }))).to('float64')).toTypedArray() as Promise<Float64Array>);
}

/** Trained-looking adapters: lora_B away from zero (it starts at zero, so the adapters change nothing). */
async function perturbAdapters(model: CausalLM): Promise<void> {
  await noGrad(async () => {
    for (const p of await model.namedParameters()) {
      if (p.name.endsWith('lora_B.weight')) await p.tensor.copy_(await (await randn(p.tensor.shape)).mul(0.2));
    }
  });
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Math.max(...Array.from(a, (x, i) => Math.abs(x - b[i])));

describe('LoRA adapters on a built-in model', () => {
  it('start as the base model exactly, train alone, and switch off to the base model exactly', async () => {
    const base = await loadModel(LLAMA, { dtype: 'float64' });
    const model = await loadModel(LLAMA, { dtype: 'float64', lora: ALL_LINEAR });
    const expected = await logits(base);
    expect(await logits(model)).toEqual(expected); // lora_B = 0
    const params = await model.namedParameters();
    const trainable = params.filter((p) => p.tensor.requiresGrad).map((p) => p.name);
    expect(trainable).toHaveLength(2 * 14); // 2 layers × (q, k, v, o, gate, up, down)
    expect(trainable.every((n) => /\.lora_[AB]\.weight$/.test(n))).toBe(true);
    expect(model.info.adapters!.modules).toContain('model.layers.1.mlp.down_proj');
    // lora_A Kaiming-uniform (|a| ≤ 1/√in), lora_B zero.
    const a = params.find((p) => p.name === 'model.layers.0.self_attn.q_proj.lora_A.weight')!.tensor;
    expect(a.shape).toEqual([4, 32]);
    const values = Array.from((await a.toTypedArray()) as Float64Array);
    expect(Math.max(...values.map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(32));
    expect(new Set(values).size).toBe(values.length);

    await perturbAdapters(model);
    const adapted = await logits(model);
    expect(maxDiff(adapted, expected)).toBeGreaterThan(1e-3);
    const reference = model.adaptersOff();
    expect(await logits(reference)).toEqual(expected);
    expect(await logits(model)).toEqual(adapted); // switched on again after the reference's call
    reference.dispose(); // a view: the model lives on
    expect(await logits(model)).toEqual(adapted);
    base.dispose();
    model.dispose();
  });

  it('saves PEFT files and loads them back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'torch-dpo-lora-'));
    const model = await loadModel(LLAMA, { dtype: 'float64', lora: { ...ALL_LINEAR, targetModules: ['q_proj', 'v_proj', 'down_proj'] } });
    await perturbAdapters(model);
    const adapted = await logits(model);
    await model.saveTrained(join(dir, 'adapter'));
    expect(readdirSync(join(dir, 'adapter')).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json']);
    const config = JSON.parse(readFileSync(join(dir, 'adapter', 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({ peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 4, lora_alpha: 8, lora_dropout: 0.1, bias: 'none', use_rslora: false, fan_in_fan_out: false, target_modules: ['down_proj', 'q_proj', 'v_proj'], base_model_name_or_path: LLAMA });
    const file = readSafetensors(join(dir, 'adapter', 'adapter_model.safetensors'));
    expect([...file.tensors.keys()].sort()).toContain('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight');
    expect(file.tensors.size).toBe(2 * 2 * 3);
    expect(file.tensors.get('base_model.model.model.layers.1.mlp.down_proj.lora_B.weight')!.shape).toEqual([32, 4]);

    writeFileSync(join(dir, 'input.json'), JSON.stringify({ input_ids: IDS, attention_mask: MASK }));
    const again = await loadModel(LLAMA, { dtype: 'float64', lora: { ...ALL_LINEAR, targetModules: ['q_proj', 'v_proj', 'down_proj'] } });
    await again.loadTrained(join(dir, 'adapter'));
    expect(await logits(again)).toEqual(adapted);
    model.dispose();
    again.dispose();
  });

  (pythonTorch ? it : it.skip)('writes adapters that PEFT semantics (independent Python code) apply to the same logits (≤ 1e-5, as the HF export check)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'torch-dpo-lora-py-'));
    const model = await loadModel(LLAMA, { dtype: 'float64', lora: { ...ALL_LINEAR, targetModules: ['q_proj', 'v_proj', 'down_proj'] } });
    await perturbAdapters(model);
    const adapted = await logits(model);
    await model.saveTrained(dir);
    model.dispose();
    writeFileSync(join(dir, 'input.json'), JSON.stringify({ input_ids: IDS, attention_mask: MASK }));
    const python = runPythonCheck('hf-logits.py', [LLAMA, join(dir, 'input.json'), 'float64', '--adapter', dir]);
    expect(python.status === 0 ? '' : python.stderr).toBe('');
    const peft = JSON.parse(python.stdout) as { logits: number[]; adapted: number };
    expect(peft.adapted).toBe(6);
    // Real positions only (padding queries differ by design, see hf-architectures.md).
    const real = (x: ArrayLike<number>) => Array.from(x).filter((_, i) => MASK[Math.floor(i / (8 * 64))][Math.floor(i / 64) % 8] === 1);
    expect(maxDiff(real(adapted), real(peft.logits))).toBeLessThan(1e-5);
    const base = await loadModel(LLAMA, { dtype: 'float64' });
    expect(maxDiff(real(adapted), real(await logits(base)))).toBeGreaterThan(1e-2); // the adapters count
    base.dispose();
  });

  it('exports the merged model (W + α/r·B·A, no lora tensors) with the adapted logits, for Linear and Conv1D', async () => {
    for (const [folder, lora] of [[LLAMA, ALL_LINEAR], [GPT2, { ...ALL_LINEAR, targetModules: null, useRslora: true }]] as const) {
      const dir = mkdtempSync(join(tmpdir(), 'torch-dpo-merge-'));
      const model = await loadModel(folder, { dtype: 'float64', lora });
      await perturbAdapters(model);
      const adapted = await logits(model);
      await model.exportSafetensors(dir);
      expect(existsSync(join(dir, 'model.pt'))).toBe(false);
      const names = [...readSafetensors(join(dir, 'model.safetensors')).tensors.keys()];
      expect(names.some((n) => n.includes('lora'))).toBe(false);
      const merged = await loadModel(dir, { dtype: 'float64' });
      expect(merged.info.adapters).toBeUndefined();
      expect(maxDiff(await logits(merged), adapted)).toBeLessThan(1e-10);
      model.dispose();
      merged.dispose();
    }
  });

  it("GPT-2: PEFT's default target (c_attn), fan_in_fan_out, rsLoRA scaling in the config", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'torch-dpo-lora-gpt2-'));
    // The folder has a model.pt too: LoRA takes the safetensors into the built-in architecture.
    const model = await loadModel(GPT2, { lora: { ...ALL_LINEAR, targetModules: null, useRslora: true } });
    expect(model.info.source).toBe('builtin');
    expect(model.info.adapters!.modules).toEqual(['transformer.h.0.attn.c_attn', 'transformer.h.1.attn.c_attn']);
    await model.saveTrained(dir);
    expect(JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'))).toMatchObject({ target_modules: ['c_attn'], fan_in_fan_out: true, use_rslora: true });
    model.dispose();
  });

  it('traced exports: each targeted layer gets the adapters and its parent\'s call is redirected; same logits as the built-in model', async () => {
    for (const name of ['tiny-llama', 'tiny-gpt2']) {
      const folder = join(__dirname, 'fixtures', name);
      const dir = mkdtempSync(join(tmpdir(), 'torch-dpo-lora-traced-'));
      const builtin = await loadModel(folder, { lora: ALL_LINEAR }); // safetensors + config: built in
      const traced = await loadModel(join(folder, 'model.pt'), { lora: ALL_LINEAR });
      expect(traced.info.source).toBe('torchscript');
      expect([...traced.info.adapters!.modules].sort()).toEqual([...builtin.info.adapters!.modules].sort());
      expect(traced.info.adapters!.fanInFanOut).toBe(name === 'tiny-gpt2');
      const base = await logits(traced);
      expect(maxDiff(base, await logits(builtin))).toBeLessThan(1e-5);
      await perturbAdapters(builtin);
      await builtin.saveTrained(dir);
      await traced.loadTrained(dir); // PEFT files from one into the other
      const adapted = await logits(traced);
      expect(maxDiff(adapted, base)).toBeGreaterThan(1e-2);
      expect(maxDiff(adapted, await logits(builtin))).toBeLessThan(1e-5);
      expect(await logits(traced.adaptersOff())).toEqual(base);
      const trainable = (await traced.namedParameters()).filter((p) => p.tensor.requiresGrad).map((p) => p.name);
      expect(trainable.length).toBe(2 * traced.info.adapters!.modules.length);
      builtin.dispose();
      traced.dispose();
    }
  });

  it('targets by regular expression over the whole path; refuses targets that match nothing', async () => {
    const model = await loadModel(LLAMA, { lora: { ...ALL_LINEAR, targetModules: 'model\\.layers\\.1\\.self_attn\\.(q|k)_proj' } });
    expect(model.info.adapters!.modules).toEqual(['model.layers.1.self_attn.q_proj', 'model.layers.1.self_attn.k_proj']);
    model.dispose();
    await expect(loadModel(LLAMA, { lora: { ...ALL_LINEAR, targetModules: ['qkv_proj'] } }))
      .rejects.toThrow(/lora_target_modules \["qkv_proj"\] matches no linear layer of llama \(its linear layers: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj; or 'all-linear'\)/);
    await expect(loadModel(join(__dirname, 'fixtures', 'tiny-llama', 'model.pt'), { lora: { ...ALL_LINEAR, targetModules: ['qkv_proj'] } }))
      .rejects.toThrow(/matches no linear layer of llama \(its linear layers: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj/);
  });
});
