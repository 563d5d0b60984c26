import { join } from 'node:path';
import { writeFileAtomic } from '../atomic-file';
import { escapeHtml, lineChart } from './svg-chart';

export interface FrontierPoint {
  step: number;
  kl: number;
  reward: number;
  /** Standard error of the mean reward (sample standard deviation / √samples). */
  reward_se: number;
}

/** What `torch-dpo demo frontier` measured (frontier.json). */
export interface FrontierResult {
  sft_reward: number;
  pairs: number;
  eval_samples: number;
  /** Best-of-N from the SFT model, at KL = log N − (N−1)/N (its upper bound). */
  best_of_n: { n: number; kl: number; reward: number; reward_se: number }[];
  runs: { beta: number; points: FrontierPoint[] }[];
  seconds: number;
}

export interface Dominance {
  /**
   * DPO checkpoints (step > 0) within the baseline's KL range, and how many lie above or below its
   * curve by more than two standard errors (of the difference); the rest are within the noise.
   */
  compared: number;
  above: number;
  below: number;
  /** Mean of (DPO reward − best-of-N reward at the same KL) over the compared points. */
  meanGap: number;
  /** Checkpoints past the baseline's largest KL (not comparable). */
  beyond: number;
}

/** The best-of-N curve at `kl`, linear between its points, with its standard error (null past its last point). */
export function bestOfNAt(curve: FrontierResult['best_of_n'], kl: number): { reward: number; se: number } | null {
  const x = Math.max(0, kl);
  for (let i = 1; i < curve.length; i += 1) {
    if (x <= curve[i].kl) {
      const [a, b] = [curve[i - 1], curve[i]];
      const t = (x - a.kl) / (b.kl - a.kl);
      return { reward: a.reward + t * (b.reward - a.reward), se: Math.max(a.reward_se, b.reward_se) };
    }
  }
  return null;
}

/** Whether DPO's points lie above the best-of-N curve at equal KL, beyond the sampling noise. */
export function dominance(result: FrontierResult): Dominance {
  let compared = 0, above = 0, below = 0, gap = 0, beyond = 0;
  for (const run of result.runs) {
    for (const p of run.points.filter((q) => q.step > 0)) {
      const baseline = bestOfNAt(result.best_of_n, p.kl);
      if (baseline === null) {
        beyond += 1;
        continue;
      }
      compared += 1;
      const difference = p.reward - baseline.reward;
      const noise = 2 * Math.hypot(p.reward_se, baseline.se);
      gap += difference;
      if (difference > noise) above += 1;
      else if (difference < -noise) below += 1;
    }
  }
  return { compared, above, below, meanGap: compared ? gap / compared : 0, beyond };
}

/** frontier.html: reward against KL for every β and the best-of-N baseline, the verdict, the points. */
export function writeFrontierReport(dir: string, result: FrontierResult): string {
  const d = dominance(result);
  const series = [
    ...result.runs.map((r) => ({ name: `DPO β ${r.beta}`, markers: true, points: r.points.map((p) => [p.kl, p.reward] as [number, number]) })),
    { name: 'best-of-N (SFT)', markers: true, dashed: true, points: result.best_of_n.map((b) => [b.kl, b.reward] as [number, number]) },
  ];
  const axes = { yTitle: 'mean reward (held-out prompts)', xTitle: 'KL(π‖π_ref), nats per sample', integerX: false, size: [760, 430] as [number, number] };
  const limit = result.best_of_n.at(-1)!.kl;
  const charts = [lineChart(series, { title: 'Reward against KL(π‖π_ref)', ...axes })];
  const widest = Math.max(...result.runs.flatMap((r) => r.points.map((p) => p.kl)));
  if (widest > 2 * limit) charts.push(lineChart(series, { title: `The same, up to the baseline's largest KL (${limit.toFixed(2)} nats)`, ...axes, xMax: limit * 1.05 }));
  const verdict = `Of ${d.compared} DPO checkpoints within the baseline's KL range (≤ ${limit.toFixed(2)} nats), ${d.above} lie above the best-of-N curve at equal KL and ${d.below} below it by more than two standard errors (${d.compared - d.above - d.below} within the noise; mean difference ${d.meanGap >= 0 ? '+' : ''}${d.meanGap.toFixed(3)} reward)${d.beyond ? `; ${d.beyond} lie past that KL` : ''}.`;
  const rows = result.runs.flatMap((r) => r.points.map((p) => `<tr><td>DPO β ${r.beta}</td><td>${p.step}</td><td>${p.kl.toFixed(3)}</td><td>${p.reward.toFixed(3)} ± ${p.reward_se.toFixed(3)}</td><td>${fmt(bestOfNAt(result.best_of_n, p.kl)?.reward ?? null)}</td></tr>`));
  const baseline = result.best_of_n.map((b) => `<tr><td>best-of-${b.n}</td><td>–</td><td>≤ ${b.kl.toFixed(3)}</td><td>${b.reward.toFixed(3)} ± ${b.reward_se.toFixed(3)}</td><td></td></tr>`);
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>torch-dpo frontier</title>
<style>body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}figure{margin:8px 0}figcaption{font-weight:600}
svg text{font-size:11px;fill:#333}svg .axis{font-size:12px;fill:#555}.grid{stroke:#e3e3e3}.frame{fill:none;stroke:#999}
table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}th{background:#f6f6f6}td:first-child{text-align:left}.note{color:#666;font-size:13px}</style></head>
<body><h1>DPO reward–KL frontier (controlled sentiment, review world)</h1>
<p>${escapeHtml(verdict)}</p>
${charts.join('\n')}
<p class="note">Reward: the review's sentiment ((positive − negative words) / 3, in [−1, 1]); the SFT model's mean is ${result.sft_reward.toFixed(3)}. Each DPO run starts at the SFT model (KL 0) and trains on ${result.pairs} pairs sampled from it; each point is a checkpoint, evaluated on ${result.eval_samples} samples of held-out prompts (temperature 1), KL estimated from the same samples as the mean of Σ log π − Σ log π_ref. Best-of-N picks the highest-reward of N SFT samples per prompt, plotted at KL log N − (N−1)/N, an upper bound of its KL. ${result.seconds.toFixed(0)} s in all.</p>
<table><tr><th>run</th><th>step</th><th>KL (nats)</th><th>mean reward ± s.e.</th><th>best-of-N at this KL</th></tr>${[...rows, ...baseline].join('')}</table>
</body></html>\n`;
  const path = join(dir, 'frontier.html');
  writeFileAtomic(path, html);
  return path;
}

const fmt = (v: number | null) => (v === null ? 'beyond' : v.toFixed(3));
