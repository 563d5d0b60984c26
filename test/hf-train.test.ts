import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, lossRows } from './support/cli-project';
import { Tensor } from '../lib';
import { noGrad } from '../lib/grad-mode';
import { CausalLM, createModel } from '../lib/models/causal-lm';
import { loadModel } from '../lib/models/load-model';

/** Each Llama-family fixture (sharded bf16) trains through `torch-dpo train` and exports in HF layout. */
describe.each(['hf-llama3', 'hf-mistral', 'hf-qwen2', 'hf-qwen3'])('torch-dpo train on %s', (name) => {
  it('starts at ln 2, takes its steps, and exports the trained weights as safetensors and TorchScript alike', async () => {
    const dir = mkdtempSync(join(tmpdir(), `torch-dpo-${name}-`));
    const rows = Array.from({ length: 8 }, (_, i) => ({ prompt: `w${10 + i} w11 w12`, chosen: ' w3 w4', rejected: ' w5 w9 w7' }));
    writeFileSync(join(dir, 'train.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n'));
    const out = join(dir, 'out');
    writeFileSync(join(dir, 'config.yaml'), [
      `model_name_or_path: ${join(__dirname, 'fixtures', name)}`, `train_dataset: ${join(dir, 'train.jsonl')}`, `output_dir: ${out}`,
      'dtype: float32', 'max_steps: 2', 'logging_steps: 1', 'per_device_train_batch_size: 2', 'cache_dir: false', 'learning_rate: 0.01', 'report_to: none',
    ].join('\n'));
    const run = cli(['train', '--config', join(dir, 'config.yaml')]);
    expect(run.stderr).not.toMatch(/Error/);
    expect(run.status).toBe(0);
    const losses = lossRows(out);
    expect(losses.map((r) => r.step)).toEqual([1, 2]);
    expect(losses[0].loss).toBeCloseTo(Math.LN2, 6);
    expect(losses[1].loss).not.toBeCloseTo(Math.LN2, 6);
    const final = join(out, 'final');
    expect(readdirSync(final)).toEqual(expect.arrayContaining(['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json']));
    expect(JSON.parse(readFileSync(join(final, 'config.json'), 'utf8')).torch_dtype).toBe('float32');
    // final/ holds the trained weights twice: TorchScript model.pt and HF safetensors for the built-in architecture.
    const traced = await loadModel(join(final, 'model.pt'));
    const config = JSON.parse(readFileSync(join(final, 'config.json'), 'utf8'));
    const fromSafetensors = await createModel(config.model_type, config, { init: false });
    await fromSafetensors.loadSafetensors(final);
    const original = await loadModel(join(__dirname, 'fixtures', name), { dtype: 'float32' });
    const ids = Tensor.from([[5, 17, 33, 2]], { dtype: 'int64' });
    const mask = Tensor.from([[1, 1, 1, 1]], { dtype: 'int64' });
    const logits = async (m: CausalLM) => Array.from((await (await noGrad(() => m.forward(ids, mask))).toTypedArray()) as Float32Array);
    expect(await logits(fromSafetensors)).toEqual(await logits(traced));
    expect(await logits(fromSafetensors)).not.toEqual(await logits(original));
    for (const m of [traced, fromSafetensors, original]) m.dispose();
  });
});
