import { join } from 'node:path';
import { ConfigError } from '../lib/errors';
import { version } from '../lib/runtime';
import { attentionKernel } from '../lib/models/attention';
import { createModel } from '../lib/models/causal-lm';
import { loadModel } from '../lib/models/load-model';
import { mistralConfigSchema, mistralSpec } from '../lib/models/mistral';
import { qwen2ConfigSchema, qwen2Spec } from '../lib/models/qwen2';
import { qwen3ConfigSchema, qwen3Spec } from '../lib/models/qwen3';
import { inverseFrequencies, ropeSpecOf } from '../lib/models/rope';
import { bakedFloatDtypes } from '../lib/models/traced-graph';

/** How HF config.json files are read: defaults that matter when a key is absent, both rope layouts. */
describe('config reading', () => {
  it('Mistral slides by 4096 when sliding_window is absent; only an explicit null gives full attention', () => {
    expect(mistralSpec(mistralConfigSchema.parse({ num_hidden_layers: 2 })).windows).toEqual([4096, 4096]);
    expect(mistralSpec(mistralConfigSchema.parse({ num_hidden_layers: 2, sliding_window: null })).windows).toEqual([0, 0]);
  });

  it('Qwen2/3 slide only with use_sliding_window, on layers >= max_window_layers, or as layer_types says', () => {
    const base = { num_hidden_layers: 4, sliding_window: 8, max_window_layers: 2 };
    expect(qwen2Spec(qwen2ConfigSchema.parse(base)).windows).toEqual([0, 0, 0, 0]);
    expect(qwen2Spec(qwen2ConfigSchema.parse({ ...base, use_sliding_window: true })).windows).toEqual([0, 0, 8, 8]);
    const types = ['sliding_attention', 'full_attention', 'sliding_attention', 'full_attention'];
    expect(qwen3Spec(qwen3ConfigSchema.parse({ ...base, use_sliding_window: true, layer_types: types })).windows).toEqual([8, 0, 8, 0]);
    expect(() => qwen3ConfigSchema.parse({ ...base, layer_types: types.slice(1) })).toThrow(/3 entries for 4 layers/);
  });

  it("Qwen3's head_dim defaults to 128 whatever hidden_size / heads is; Qwen2's q/k/v always carry biases", () => {
    expect(qwen3Spec(qwen3ConfigSchema.parse({ hidden_size: 64, num_attention_heads: 4 })).headDim).toBe(128);
    expect(qwen2Spec(qwen2ConfigSchema.parse({ hidden_size: 64, num_attention_heads: 4 }))).toMatchObject({ headDim: 16, qkvBias: true, outputBias: false });
  });

  it("reads rope settings from transformers 5's rope_parameters and from 4.x's rope_theta + rope_scaling", () => {
    const v5 = ropeSpecOf({ max_position_embeddings: 64, rope_parameters: { rope_type: 'linear', rope_theta: 5e5, factor: 4 } }, 1e4);
    const v4 = ropeSpecOf({ max_position_embeddings: 64, rope_theta: 5e5, rope_scaling: { type: 'linear', factor: 4 } }, 1e4);
    expect(v5).toEqual(v4);
    expect(v5).toMatchObject({ type: 'linear', theta: 5e5, factor: 4 });
    // rope_parameters with only a theta (transformers 5 writes it for the default type too).
    expect(ropeSpecOf({ max_position_embeddings: 64, rope_parameters: { rope_theta: 1e6 } }, 1e4)).toMatchObject({ type: 'default', theta: 1e6 });
    expect(() => ropeSpecOf({ rope_scaling: { rope_type: 'yarn', factor: 4 } }, 1e4)).toThrow(/rope_scaling\.rope_type: 'yarn' is not supported .*\(supported: default, linear, dynamic, llama3\); export the model to TorchScript/);
    expect(() => ropeSpecOf({ rope_scaling: { rope_type: 'llama3', factor: 8 } }, 1e4)).toThrow(/rope_scaling\.low_freq_factor: expected a number, got undefined/);
  });

  it('llama3 rope keeps high frequencies, divides low ones by factor, blends in between', () => {
    const spec = ropeSpecOf({ max_position_embeddings: 64, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 } }, 5e5);
    const plain = inverseFrequencies({ ...spec, type: 'default' }, 16);
    const scaled = inverseFrequencies(spec, 16);
    expect(scaled[0]).toBe(plain[0]); // wavelength 2π < 64/4
    expect(scaled[7]).toBeCloseTo(plain[7] / 8, 12); // wavelength far above 64
    const middle = scaled.findIndex((f, i) => f !== plain[i] && Math.abs(f - plain[i] / 8) > 1e-12);
    expect(middle).toBeGreaterThan(0); // some frequency in between is blended
  });

  it('dynamic rope is not bounded by max_position_embeddings; learned positions are', async () => {
    const dynamic = await createModel('llama', { vocab_size: 8, hidden_size: 8, intermediate_size: 8, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 16, rope_scaling: { rope_type: 'dynamic', factor: 2 } });
    expect(dynamic.info.maxPositions).toBe(Number.POSITIVE_INFINITY);
    const gpt2 = await createModel('gpt2', { vocab_size: 8, n_positions: 16, n_embd: 8, n_layer: 1, n_head: 2 });
    expect(gpt2.info.maxPositions).toBe(16);
    dynamic.dispose();
    gpt2.dispose();
  });
});

describe('traced exports and dtypes', () => {
  const graph = [
    '  %23 : int = prim::Constant[value=6]()',
    '  %24 : int = prim::Constant[value=15]()',
    '  %5 : int = prim::Constant[value=-1]()',
    '  %x.1 : Tensor = aten::to(%mask, %23, %false, %false, %none) # modeling.py:10:0',
    '  %y : Tensor = aten::softmax(%w, %5, %23)',
    '  %z : Tensor = aten::full_like(%x.1, %fill, %24, %none, %none, %none, %none)',
  ].join('\n');

  it('finds floating dtypes baked into casts and factories (not softmax upcasts)', () => {
    expect(bakedFloatDtypes(graph)).toEqual([
      { dtype: 'float32', node: '%x.1 : Tensor = aten::to(%mask, %23, %false, %false, %none)' },
      { dtype: 'bfloat16', node: '%z : Tensor = aten::full_like(%x.1, %fill, %24, %none, %none, %none, %none)' },
    ]);
  });

  it('refuses to cast a float32 trace to bfloat16, up front, naming the op; its own dtype is fine', async () => {
    const dir = join(__dirname, 'fixtures', 'tiny-llama');
    await expect(loadModel(dir, { dtype: 'bfloat16' })).rejects.toThrow(ConfigError);
    await expect(loadModel(dir, { dtype: 'bfloat16' })).rejects.toThrow(
      /model\.pt: dtype bfloat16 cannot be applied: the model was traced in float32 and the trace baked float32 into \d+ op\(s\) \(first: .*aten::to.*\); trace it in bfloat16 .*or delete model\.pt so the folder's safetensors load into the built-in 'llama' architecture/);
    (await loadModel(dir, { dtype: 'float32' })).dispose();
  });
});

describe('attention kernel', () => {
  it('uses SDPA from libtorch 2.0 and the eager path before; asking SDPA of 1.13 is an error', () => {
    const major = Number(version().torch.split('.')[0]);
    expect(attentionKernel().implementation).toBe(major >= 2 ? 'sdpa' : 'eager');
    expect(attentionKernel('eager').implementation).toBe('eager');
    if (major < 2) expect(() => attentionKernel('sdpa')).toThrow(/attn_implementation: 'sdpa' needs libtorch ≥ 2\.0, this one is 1\./);
  });
});

it('a float32 trace cast up to float64 runs, with a warning that the baked ops stay in float32', async () => {
  const model = await loadModel(join(__dirname, 'fixtures', 'tiny-gpt2'), { dtype: 'float64' });
  expect(model.info.warnings.join('\n')).toMatch(/cast to float64, but the model was traced in float32 and the trace baked float32 into \d+ op\(s\) .*: those ops still compute in float32/);
  model.dispose();
});

it("a fresh built-in model's export names HF's class and writes no torch-dpo-only keys", async () => {
  const { mkdtempSync, readFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const model = await createModel('qwen3', { vocab_size: 16, hidden_size: 8, intermediate_size: 8, num_hidden_layers: 1, num_attention_heads: 2, head_dim: 4 });
  const out = mkdtempSync(join(tmpdir(), 'torch-dpo-fresh-'));
  await model.exportSafetensors(out);
  const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
  expect(config).toMatchObject({ model_type: 'qwen3', architectures: ['Qwen3ForCausalLM'], head_dim: 4, torch_dtype: 'float32' });
  expect(config).not.toHaveProperty('attn_implementation');
  model.dispose();
});
