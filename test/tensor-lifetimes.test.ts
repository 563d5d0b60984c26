import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createModel, generate, HfTokenizer, keep, loadModel, memory, scope, ScriptModule, Tensor } from '../lib';
import { retainAllTensors } from '../lib/tensor';
import { DPOTrainer } from '../lib/train/trainer';
import { TINY_GPT2 } from './support/cli-project';

const live = () => memory().liveTensors;

// Tensors other test files in this worker left to the garbage collector would otherwise be freed in
// the middle of a count: collect them first, and let their finalizers run.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
async function collectStrayTensors(): Promise<void> {
  for (let round = 0; round < 3; round += 1) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
beforeEach(collectStrayTensors);

// Every Tensor made while these tests run stays reachable (retainAllTensors), so the garbage
// collector cannot free what code forgot to dispose: only scopes and explicit disposal count.
beforeAll(() => retainAllTensors(true));
afterAll(() => retainAllTensors(false));

describe('scope()', () => {
  it('disposes what was created inside except the result and kept tensors; results move to the enclosing scope', async () => {
    const before = live();
    let inner: Tensor | null = null;
    let kept: Tensor | null = null;
    const outer = await scope(async () => {
      const a = Tensor.from([1, 2, 3]);
      inner = await scope(async () => {
        const b = await a.mul(2);
        kept = keep(await b.add(1));
        return { values: [await b.sum()] };
      }).then((r) => r.values[0]);
      expect(inner!.disposed).toBe(false);
      return await a.add(inner!);
    });
    expect(outer.disposed).toBe(false);
    expect(inner!.disposed).toBe(true); // returned by the inner scope, then dropped by the outer one
    expect(kept!.disposed).toBe(false);
    expect(await outer.toArray()).toEqual([13, 14, 15]);
    outer.dispose();
    kept!.dispose();
    expect(live()).toBe(before);
  });

  it('disposes everything created inside when the body throws', async () => {
    const before = live();
    await expect(scope(async () => {
      await Tensor.from([1]).mul(3);
      throw new Error('boom');
    })).rejects.toThrow('boom');
    expect(live()).toBe(before);
  });
});

describe('the hot path owns its tensors', () => {
  it('keeps the live tensor count identical after each of 50 training steps (with evaluation and logging)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'torch-dpo-lifetimes-'));
    const rows = Array.from({ length: 16 }, (_, i) => ({ prompt: `w${10 + (i % 20)} w11`, chosen: ' w3 w4', rejected: ' w5 w9' }));
    writeFileSync(join(dir, 'train.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n'));
    const trainer = await DPOTrainer.create({
      model_name_or_path: TINY_GPT2, train_dataset: join(dir, 'train.jsonl'), eval_dataset: join(dir, 'train.jsonl'), output_dir: join(dir, 'out'),
      cache_dir: false, max_steps: 50, per_device_train_batch_size: 2, gradient_accumulation_steps: 2, logging_steps: 5, eval_steps: 10,
      save_steps: 1000, save_final_model: false, report_to: [],
    });
    const counts: number[] = [];
    trainer.on('step', () => counts.push(live()));
    await trainer.train();
    trainer.dispose();
    expect(counts).toHaveLength(50);
    // The first step creates the optimizer moments; from then on nothing accumulates.
    expect(new Set(counts.slice(1)).size).toBe(1);
  });

  it('a trainer releases every tensor it made: load, train with evaluation, checkpoints and export, resume, dispose', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'torch-dpo-lifetimes-'));
    const rows = Array.from({ length: 16 }, (_, i) => ({ prompt: `w${10 + (i % 20)} w11`, chosen: ' w3 w4', rejected: ' w5 w9' }));
    writeFileSync(join(dir, 'train.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n'));
    const config = {
      model_name_or_path: TINY_GPT2, train_dataset: join(dir, 'train.jsonl'), eval_dataset: join(dir, 'train.jsonl'), output_dir: join(dir, 'out'),
      cache_dir: false as const, max_steps: 4, per_device_train_batch_size: 2, logging_steps: 2, eval_steps: 2, save_steps: 2,
    };
    const before = live();
    const first = await DPOTrainer.create(config);
    await first.train();
    first.dispose();
    expect(live()).toBe(before);
    const resumed = await DPOTrainer.create({ ...config, max_steps: 6, resume_from_checkpoint: true, sync_ref_model: true, ref_model_sync_steps: 1 });
    await resumed.train();
    resumed.dispose();
    expect(live()).toBe(before);
  });

  it('forward of an HF-style export disposes its past_key_values at once', async () => {
    // Like a traced HF model with use_cache: (logits, ((key, value) per layer)).
    const module = ScriptModule.create('CachedLM');
    await module.registerParameter('table', await (await Tensor.from([[0.5, -1, 2]]).expand([5, 3])).contiguous());
    await module.define(`
def forward(self, input_ids, attention_mask):
    logits = torch.embedding(self.table, input_ids)
    layer = (logits * 2.0, logits * 3.0)
    return (logits, (layer, layer))
`);
    const dir = mkdtempSync(join(tmpdir(), 'torch-dpo-cached-'));
    await module.save(join(dir, 'model.pt'));
    const model = await loadModel(join(dir, 'model.pt'));
    const ids = Tensor.from([[1, 4]], { dtype: 'int64' });
    const mask = Tensor.from([[1, 1]], { dtype: 'int64' });
    const before = live();
    for (let i = 0; i < 50; i += 1) (await model.forward(ids, mask)).dispose();
    expect(live()).toBe(before);
    // Without the scope the same 50 calls leave every extra output behind.
    const unscoped = live();
    for (let i = 0; i < 50; i += 1) await model.module.run('forward', [ids, mask]);
    expect(live()).toBeGreaterThanOrEqual(unscoped + 50 * 3);
    model.dispose();
  });

  it('generation (KV cache, sampling, and the traced slow path) leaves no tensor behind', async () => {
    const tokenizer = HfTokenizer.fromDir(TINY_GPT2);
    const traced = await loadModel(TINY_GPT2);
    const builtIn = await createModel('gpt2', traced.config);
    const before = live();
    await generate(traced, tokenizer, ['w10 w11', 'w3'], { maxNewTokens: 8, temperature: 0 });
    await generate(builtIn, tokenizer, ['w10 w11', 'w3'], { maxNewTokens: 8, topK: 5, stop: ['w7'] });
    expect(live()).toBe(before);
    traced.dispose();
    builtIn.dispose();
  });
});
