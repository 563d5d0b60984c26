import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runFrontier } from '../lib/demo/frontier';
import { sentimentReward } from '../lib/demo/sentiment-task';
import { bestOfNAt, dominance, type FrontierResult } from '../lib/report/frontier-report';

const curve = [
  { n: 1, kl: 0, reward: 0, reward_se: 0.01 },
  { n: 2, kl: Math.log(2) - 1 / 2, reward: 0.3, reward_se: 0.01 },
  { n: 4, kl: Math.log(4) - 3 / 4, reward: 0.5, reward_se: 0.01 },
];

describe('demo frontier', () => {
  it('scores sentiment word by word, punctuation glued or not', () => {
    expect(sentimentReward('it was so great and bad and lovely.')).toBeCloseTo(1 / 3, 12);
    expect(sentimentReward(' it was very awful and poor and boring .')).toBe(-1);
    expect(sentimentReward('great great great great')).toBe(1);
    expect(sentimentReward('it was')).toBe(0);
  });

  it('compares DPO points with best-of-N at equal KL, beyond two standard errors, and sets aside points past its range', () => {
    expect(bestOfNAt(curve, curve[1].kl / 2)!.reward).toBeCloseTo(0.15, 12);
    expect(bestOfNAt(curve, -0.01)!.reward).toBe(0);
    expect(bestOfNAt(curve, 1)).toBeNull();
    const at = (kl: number, reward: number) => ({ step: 1, kl, reward, reward_se: 0.01 });
    const result: FrontierResult = {
      sft_reward: 0, pairs: 1, eval_samples: 1, best_of_n: curve, seconds: 1,
      runs: [{ beta: 0.1, points: [{ step: 0, kl: 0, reward: 0, reward_se: 0.01 }, at(0.2, 0.45), at(0.5, 0.38), at(0.5, 0.45), at(2, 0.9)] }],
    };
    // 0.2 nats: the curve reads ≈ 0.303 → 0.45 above; 0.5 nats: ≈ 0.439 → 0.38 below, 0.45 within 2·√2·0.01.
    expect(dominance(result)).toEqual({ compared: 3, above: 1, below: 1, meanGap: expect.any(Number), beyond: 1 });
  });

  it('runs end to end (small): SFT, pairs, best-of-N, DPO per β with checkpoints, frontier.json and frontier.html', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'torch-dpo-frontier-'));
    const write = process.stdout.write;
    const lines: string[] = [];
    process.stdout.write = ((chunk: string) => lines.push(chunk) > 0) as typeof process.stdout.write;
    try {
      expect(await runFrontier({ dir, sftSteps: 60, betas: [0.1, 1], evalSteps: [2, 4], pairPrompts: 24, evalSamples: 32 })).toBe(0);
    } finally {
      process.stdout.write = write;
    }
    const result = JSON.parse(readFileSync(join(dir, 'frontier.json'), 'utf8')) as FrontierResult;
    expect(result.runs.map((r) => [r.beta, r.points.map((p) => p.step)])).toEqual([[0.1, [0, 2, 4]], [1, [0, 2, 4]]]);
    expect(result.runs[0].points[0]).toEqual(expect.objectContaining({ kl: 0, reward: result.sft_reward }));
    // Best-of-N reads the first N of the same samples: its reward never falls as N grows; KL is the bound.
    const rewards = result.best_of_n.map((b) => b.reward);
    expect(rewards).toEqual([...rewards].sort((a, b) => a - b));
    for (const b of result.best_of_n) expect(b.kl).toBeCloseTo(Math.log(b.n) - (b.n - 1) / b.n, 12);
    expect(result.pairs).toBeGreaterThan(0);
    const html = readFileSync(join(dir, 'frontier.html'), 'utf8');
    for (const name of ['DPO β 0.1', 'DPO β 1', 'best-of-N (SFT)']) expect(html).toContain(name);
    expect(html).toMatch(/<svg[^>]*aria-label="Reward against KL/);
    expect(lines.join('')).toMatch(/report: .*frontier\.html/);
  }, 180_000); // SFT, sampling and five DPO runs: ~50 s alone, more beside another test worker on 2 cores
});
