import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tensor } from '../../lib';

/** A model fixture written by scripts/make-fixtures.py, with its fixed inputs and Python logits. */
export function modelFixture(name: 'tiny-gpt2' | 'tiny-llama') {
  const dir = join(__dirname, '..', 'fixtures', name);
  const reference = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as {
    input_ids: number[][]; attention_mask: number[][]; logits_shape: number[]; logits: number[];
  };
  return {
    dir,
    reference,
    ids: () => Tensor.from(reference.input_ids, { dtype: 'int64' }),
    mask: () => Tensor.from(reference.attention_mask, { dtype: 'int64' }),
  };
}

export const float32Values = async (t: Tensor) => Array.from((await t.toTypedArray()) as Float32Array);
export const maxDiff = (a: number[], b: number[]) => Math.max(...a.map((x, i) => Math.abs(x - b[i])));
