import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TokenBudgetSampler } from '../lib/data/token-budget-sampler';
import { cli } from './support/cli-project';
import { freePort } from './support/free-port';
import { variedPairsProject } from './support/varied-pairs';

/** max_tokens_per_batch: micro-batches by token budget, the same count on every rank, the loss a mean over the step's pairs. */
describe('token-budget micro-batches', () => {
  const tokens = Array.from({ length: 40 }, (_, i) => 10 + ((i * 37) % 90)); // 10 … 99 tokens

  it('fill each micro-batch up to the budget with pairs of similar length; the partition is fixed, its order shuffled per epoch', () => {
    const sampler = new TokenBudgetSampler(tokens, { budget: 200, seed: 3 });
    const epoch0 = sampler.batches(0);
    expect(epoch0).toHaveLength(sampler.stepsPerEpoch);
    for (const batch of epoch0) expect(batch.reduce((s, i) => s + tokens[i], 0)).toBeLessThanOrEqual(200);
    expect(epoch0.flat().sort((a, b) => a - b)).toEqual(Array.from(tokens.keys())); // every pair once
    // Sorted by length: the longest pairs go two by two (99 + 98), the shortest several together.
    const holding = (t: number) => epoch0.find((b) => b.some((i) => tokens[i] === t))!;
    expect(holding(99).map((i) => tokens[i]).sort()).toEqual([98, 99]);
    expect(holding(10).length).toBeGreaterThanOrEqual(3);
    expect(holding(10).every((i) => tokens[i] < 40)).toBe(true);
    const epoch1 = sampler.batches(1);
    expect(epoch1).not.toEqual(epoch0);
    const key = (b: number[]) => [...b].sort((x, y) => x - y).join(',');
    expect(epoch1.map(key).sort()).toEqual(epoch0.map(key).sort());
    expect(sampler.globalPairs(0, 0, sampler.stepsPerEpoch)).toBe(40);
  });

  it('deals micro-batches round-robin: every rank the same count, disjoint pairs, the step\'s pairs counted over ranks', () => {
    const [a, b] = [0, 1].map((rank) => new TokenBudgetSampler(tokens, { budget: 150, seed: 3, rank, worldSize: 2 }));
    const single = new TokenBudgetSampler(tokens, { budget: 150, seed: 3 });
    expect(a.stepsPerEpoch).toBe(b.stepsPerEpoch);
    expect(a.stepsPerEpoch).toBe(Math.floor(single.stepsPerEpoch / 2));
    const [ba, bb] = [a.batches(0), b.batches(0)];
    expect(new Set(ba.flat()).size + new Set(bb.flat()).size).toBe(new Set([...ba.flat(), ...bb.flat()]).size);
    // Step k of 2 ranks is micro-batches 2k and 2k+1 of one process.
    const one = single.batches(0);
    expect(ba[1]).toEqual(one[2]);
    expect(bb[1]).toEqual(one[3]);
    expect(a.globalPairs(0, 1, 2)).toBe(one[2].length + one[3].length);
  });

  it('refuses a budget below the longest pair, with the numbers', () => {
    expect(() => new TokenBudgetSampler(tokens, { budget: 90 })).toThrow(/max_tokens_per_batch 90 is below \d+ pair\(s\) \(the longest takes 99 tokens in the packed layout\): raise it to 99 or more/);
  });

  it('2 ranks × 1 micro-batch follow 1 process × 2 (launch, Gloo, fp64): the loss is the mean over the step\'s pairs', async () => {
    const { dir, data } = variedPairsProject(24, 'torch-dpo-budget-');
    const config = join(dir, 'config.yaml');
    writeFileSync(config, [`model_name_or_path: ${join(__dirname, 'fixtures', 'hf-qwen3')}`, `train_dataset: ${data}`, 'dtype: float64',
      'max_steps: 3', 'logging_steps: 1', 'learning_rate: 0.01', 'padding_free: true', 'prefix_sharing: true', 'max_tokens_per_batch: 40',
      'cache_dir: false', 'save_strategy: "no"', 'save_final_model: false', 'report_to: []'].join('\n'));
    const lossesOf = (out: string) => readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((r) => 'loss' in r).map((r) => r.loss as number);
    const one = cli(['train', '--config', config, '--set', `output_dir=${join(dir, 'one')}`, '--set', 'gradient_accumulation_steps=2']);
    expect(one.status === 0 ? '' : one.stderr).toBe('');
    const two = cli(['launch', '--nproc-per-node', '2', '--master-port', String(await freePort()), '--', 'train', '--config', config, '--set', `output_dir=${join(dir, 'two')}`]);
    expect(two.status === 0 ? '' : two.stderr).toBe('');
    const [x, y] = [lossesOf(join(dir, 'one')), lossesOf(join(dir, 'two'))];
    expect(y).toHaveLength(3);
    y.forEach((l, i) => expect(Math.abs(l - x[i])).toBeLessThan(1e-10));
    expect(one.stdout).toMatch(/micro-batches of up to 40 tokens × 2 accumulation × 1 rank\(s\); padding-free, prefix-shared layout/);
  });
});
