import { copyFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor } from '../lib';
import { createModel } from '../lib/models/causal-lm';
import { loadModel } from '../lib/models/load-model';
import { float32Values as values, maxDiff, modelFixture } from './support/fixture-model';

// HF Llama math, 4 query / 2 key-value heads.
const { dir: FIXTURE, reference, ids, mask } = modelFixture('tiny-llama');

describe('Llama', () => {
  it('traced fixture reproduces the Python logits', async () => {
    const model = await loadModel(FIXTURE);
    expect(model.info.source).toBe('torchscript');
    expect(maxDiff(await values(await model.forward(ids(), mask())), reference.logits)).toBeLessThan(1e-5);
  });

  it('built-in Llama (RMSNorm, rotary, SwiGLU, GQA) loaded from the fixture safetensors matches', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'torch-dpo-llama-'));
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors']) copyFileSync(join(FIXTURE, f), join(dir, f));
    const model = await loadModel(dir);
    expect(model.info.source).toBe('builtin');
    const names = (await model.namedParameters()).map((p) => p.name);
    expect(names).toContain('model.layers.1.self_attn.k_proj.weight');
    expect(names).toContain('lm_head.weight');
    expect(maxDiff(await values(await model.forward(ids(), mask())), reference.logits)).toBeLessThan(1e-5);
    expect((await model.forwardHidden(ids(), mask())).shape).toEqual([2, 8, 32]);
  });

  it('ties the head to the embedding when asked', async () => {
    const model = await createModel('llama', {
      vocab_size: 40, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 1, num_attention_heads: 2, tie_word_embeddings: true,
    });
    const embed = (await model.namedParameters()).find((p) => p.name === 'model.embed_tokens.weight')!;
    expect(embed.aliases).toEqual(['lm_head.weight']);
    const logits = await model.forward(Tensor.from([[1, 2, 3]], { dtype: 'int64' }), Tensor.from([[1, 1, 1]], { dtype: 'int64' }));
    expect(logits.shape).toEqual([1, 3, 40]);
  });

  it('rejects impossible head layouts', async () => {
    await expect(createModel('llama', { hidden_size: 16, num_attention_heads: 4, num_key_value_heads: 3 })).rejects.toThrow(/not a multiple of 3 key\/value heads/);
    await expect(createModel('mamba')).rejects.toThrow(/model_type 'mamba' is not a built-in architecture \(built in: gpt2, llama, mistral, qwen2, qwen3\); for another one, export it to TorchScript/);
  });
});
