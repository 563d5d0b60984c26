import { Tensor, manualSeed, randint, randn } from '../../lib';

/** A fresh seed each run, printed so a failure can be replayed with TORCH_DPO_TEST_SEED. */
export function freshSeed(label: string): number {
  const seed = process.env.TORCH_DPO_TEST_SEED ? Number(process.env.TORCH_DPO_TEST_SEED) : Date.now() % 2 ** 31;
  process.stdout.write(`${label}: seed ${seed} (replay with TORCH_DPO_TEST_SEED=${seed})\n`);
  manualSeed(seed);
  return seed;
}

export interface RandomBatch {
  inputIds: Tensor;
  completionMask: Tensor;
  mask: number[][];
  ids: bigint[][];
}

/** Rows laid out as prompt, completion, right padding, with different lengths per row. */
export async function randomBatch(n: number, t: number, vocab: number, seed: number): Promise<RandomBatch> {
  let state = seed;
  const next = () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31;
  };
  const mask = Array.from({ length: n }, (_, row) => {
    const prompt = 1 + Math.floor(next() * (t / 3));
    const completion = row === 0 ? t - prompt : 1 + Math.floor(next() * (t - prompt - 1));
    return Array.from({ length: t }, (_, k) => (k >= prompt && k < prompt + completion ? 1 : 0));
  });
  const inputIds = await randint(0, vocab, [n, t]);
  const ids = [] as bigint[][];
  const flat = (await inputIds.toArray()) as bigint[];
  for (let r = 0; r < n; r += 1) ids.push(flat.slice(r * t, (r + 1) * t));
  return { inputIds, completionMask: Tensor.from(mask, { dtype: 'bool' }), mask, ids };
}

export async function randomLogits(n: number, t: number, v: number, dtype: 'float32' | 'float64' = 'float64'): Promise<Tensor> {
  return (await (await randn([n, t, v], { dtype })).mul(3)).setRequiresGrad();
}
