import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Tensor } from '../lib';
import { noGrad } from '../lib/grad-mode';
import { createModel } from '../lib/models/causal-lm';
import { loadModel } from '../lib/models/load-model';
import { INDEX_FILE } from '../lib/models/weight-files';

/**
 * The Llama-family architectures against HF-equivalent Python modules (scripts/hf_reference.py,
 * written from transformers' modeling files) on sharded bf16 checkpoints (scripts/make-hf-fixtures.py).
 */
const FIXTURES = ['hf-llama3', 'hf-mistral', 'hf-qwen2', 'hf-qwen3'] as const;
const fixtureDir = (name: string) => join(__dirname, 'fixtures', name);

interface Reference {
  input_ids: number[][]; attention_mask: number[][]; logits_shape: number[];
  logits_fp32: number[]; logits_bf16: number[];
  rope_variants?: { config: Record<string, unknown>; logits_fp32: number[] }[];
}
const referenceOf = (name: string) => JSON.parse(readFileSync(join(fixtureDir(name), 'reference.json'), 'utf8')) as Reference;

/** Logits at the real (unpadded) positions only: what a padded query sees is no model's business. */
function realPositions(reference: Reference, flat: ArrayLike<number>): number[] {
  const [, T, V] = reference.logits_shape;
  const out: number[] = [];
  reference.attention_mask.forEach((row, b) => row.forEach((m, t) => {
    if (m) for (let v = 0; v < V; v += 1) out.push(flat[(b * T + t) * V + v]);
  }));
  return out;
}

async function logitsOf(model: Awaited<ReturnType<typeof loadModel>>, reference: Reference): Promise<number[]> {
  const ids = Tensor.from(reference.input_ids, { dtype: 'int64' });
  const mask = Tensor.from(reference.attention_mask, { dtype: 'int64' });
  const logits = await noGrad(() => model.forward(ids, mask));
  const values = (await (await logits.to('float32')).toTypedArray()) as Float32Array;
  return realPositions(reference, values);
}

const maxAbsDiff = (a: number[], b: number[]) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
const maxAbs = (a: number[]) => a.reduce((m, x) => Math.max(m, Math.abs(x)), 0);

const pythonTorch = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
/** scripts/check-hf-export.py from the repository root (the test also runs compiled, from .gpu-bundle/js/test). */
function exportChecker(): string {
  for (let dir = __dirname; dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, 'scripts', 'check-hf-export.py'))) return join(dir, 'scripts', 'check-hf-export.py');
  }
  throw new Error(`no scripts/check-hf-export.py above ${__dirname}`);
}

describe.each(FIXTURES)('%s (sharded bf16 checkpoint)', (name) => {
  const dir = fixtureDir(name);
  const reference = referenceOf(name);

  it('loads in fp32 with logits equal to the HF-equivalent module (≤ 1e-5)', async () => {
    const model = await loadModel(dir, { dtype: 'float32' });
    const ours = await logitsOf(model, reference);
    expect(maxAbsDiff(ours, realPositions(reference, reference.logits_fp32))).toBeLessThanOrEqual(1e-5);
    expect(model.info).toMatchObject({ source: 'builtin', warnings: [] });
    model.dispose();
  });

  it('loads as stored (bf16) and computes in bf16 within bf16 tolerance, with a warning about pure-bf16 training', async () => {
    const model = await loadModel(dir);
    expect(new Set((await model.parameters()).map((p) => p.dtype))).toEqual(new Set(['bfloat16']));
    expect(model.info.warnings.join('\n')).toMatch(/loaded as stored, in bfloat16; training in pure bfloat16 loses small updates/);
    const ours = await logitsOf(model, reference);
    const expected = realPositions(reference, reference.logits_bf16);
    // Bit-identical on the same libtorch (the reference ran on Debian's 1.13); other builds round
    // differently within a few bf16 steps (2^-8 relative). A bias added after the matmul instead of
    // inside it moved these logits by 2% of their range.
    expect(maxAbsDiff(ours, expected)).toBeLessThanOrEqual(0.01 * maxAbs(expected));
    model.dispose();
  });

  it('exports in HF layout (shards, index, config dtype, generation_config, tokenizer) and reloads identically', async () => {
    const model = await loadModel(dir, { dtype: 'float32' });
    const out = mkdtempSync(join(tmpdir(), `torch-dpo-${name}-`));
    await model.exportSafetensors(out, { dtype: 'bfloat16', maxShardSize: '20KB' });
    const files = readdirSync(out);
    expect(files).toEqual(expect.arrayContaining(['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', INDEX_FILE]));
    expect(files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)).length).toBeGreaterThan(1);
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(config).toMatchObject({ torch_dtype: 'bfloat16', dtype: 'bfloat16', model_type: JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).model_type });
    // The bf16 weights went out unchanged (they came in as bf16): the reload is bit-identical.
    const again = await loadModel(out, { dtype: 'float32' });
    expect(await logitsOf(again, reference)).toEqual(await logitsOf(model, reference));
    model.dispose();
    again.dispose();
  });

  // Needs Debian's python3-torch (.ci/run installs it; users never need it): skipped, and counted so, without.
  (pythonTorch ? it : it.skip)('an fp32 export loads into the HF-equivalent Python module with the reference logits (≤ 1e-5)', async () => {
    const model = await loadModel(dir, { dtype: 'float32' });
    const out = mkdtempSync(join(tmpdir(), `torch-dpo-${name}-py-`));
    await model.exportSafetensors(out, { maxShardSize: '20KB' });
    model.dispose();
    const check = spawnSync('/usr/bin/python3', [exportChecker(), out, join(dir, 'reference.json')], { encoding: 'utf8' });
    expect(check.stdout + check.stderr).toMatch(/"max_abs_diff"/);
    expect(check.status).toBe(0);
  });
});

describe('llama rope types', () => {
  const reference = referenceOf('hf-llama3');
  const config = JSON.parse(readFileSync(join(fixtureDir('hf-llama3'), 'config.json'), 'utf8'));
  it.each(reference.rope_variants!.map((v) => [String((v.config.rope_scaling as { rope_type?: string; type?: string } | null)?.rope_type ?? (v.config.rope_scaling as { type?: string } | null)?.type ?? 'default'), v] as const))(
    '%s matches HF (≤ 1e-5)', async (_, variant) => {
      const model = await createModel('llama', { ...config, ...variant.config }, { init: false, dtype: 'float32' });
      await model.loadSafetensors(fixtureDir('hf-llama3'));
      expect(maxAbsDiff(await logitsOf(model, reference), realPositions(reference, variant.logits_fp32))).toBeLessThanOrEqual(1e-5);
      model.dispose();
    });
});

it('the fixtures are what they claim: sharded bf16 with an index', () => {
  for (const name of FIXTURES) {
    expect(existsSync(join(fixtureDir(name), INDEX_FILE))).toBe(true);
    expect(existsSync(join(fixtureDir(name), 'model.safetensors'))).toBe(false);
  }
});
