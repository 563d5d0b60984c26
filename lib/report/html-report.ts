import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DataError } from '../errors';
import { writeFileAtomic } from '../atomic-file';
import { parseMetricsLines } from '../train/metrics-log';

type Row = Record<string, number>;

const CHARTS: { title: string; series: string[] }[] = [
  { title: 'loss', series: ['loss', 'eval_loss'] },
  { title: 'reward margin', series: ['rewards/margins', 'eval_rewards/margins'] },
  { title: 'reward accuracy', series: ['rewards/accuracies', 'eval_rewards/accuracies'] },
  { title: 'rewards', series: ['rewards/chosen', 'rewards/rejected'] },
  { title: 'log-probs', series: ['logps/chosen', 'logps/rejected'] },
  { title: 'learning rate', series: ['learning_rate'] },
  { title: 'grad norm', series: ['grad_norm'] },
  { title: 'tokens per second', series: ['tokens_per_second'] },
];
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd'];
const escape = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

function chart(title: string, rows: Row[], series: string[]): string {
  const lines = series.map((name) => ({ name, points: rows.filter((r) => Number.isFinite(r[name])).map((r) => [r.step, r[name]] as [number, number]) })).filter((l) => l.points.length > 0);
  if (lines.length === 0) return '';
  const all = lines.flatMap((l) => l.points);
  const [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  if (y0 === y1) [y0, y1] = [y0 - 1, y1 + 1];
  const W = 420, H = 220, L = 56, B = 28, T = 12, R = 12;
  const sx = (x: number) => L + ((x - x0) / Math.max(x1 - x0, 1)) * (W - L - R);
  const sy = (y: number) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  const fmt = (v: number) => (Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(1) : v.toFixed(3));
  const paths = lines.map((l, i) => `<polyline fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="1.6" points="${l.points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ')}"/>`).join('');
  const legend = lines.map((l, i) => `<tspan fill="${COLORS[i % COLORS.length]}" dx="${i ? 12 : 0}">■ ${escape(l.name)}</tspan>`).join('');
  return `<figure><figcaption>${escape(title)}</figcaption><svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img">
<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#999"/><line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#999"/>
<text x="${L - 4}" y="${T + 8}" text-anchor="end" font-size="10">${fmt(y1)}</text><text x="${L - 4}" y="${H - B}" text-anchor="end" font-size="10">${fmt(y0)}</text>
<text x="${L}" y="${H - 8}" font-size="10">step ${x0}</text><text x="${W - R}" y="${H - 8}" text-anchor="end" font-size="10">${x1}</text>
${paths}<text x="${L + 4}" y="${T + 10}" font-size="10">${legend}</text></svg></figure>`;
}

/** Reads output_dir/metrics.jsonl (training and eval_ records); a torn last line is left out with a warning. */
export function readMetrics(outputDir: string, warn: (message: string) => void = () => {}): Row[] {
  const file = join(outputDir, 'metrics.jsonl');
  if (!existsSync(file)) throw new DataError(`${file} does not exist: is ${outputDir} a torch-dpo output_dir?`);
  const { rows, torn } = parseMetricsLines(readFileSync(file, 'utf8'), file);
  if (torn) warn(torn);
  return rows;
}

/** Writes output_dir/report.html: one self-contained page of SVG charts (no scripts, no network). */
export function writeHtmlReport(outputDir: string, title = 'torch-dpo run', warn?: (message: string) => void): string {
  const rows = readMetrics(outputDir, warn);
  const last = [...rows].reverse().find((r) => Number.isFinite(r.loss));
  const lastEval = [...rows].reverse().find((r) => Number.isFinite(r.eval_loss));
  const summary = [last && `step ${last.step}: loss ${last.loss.toFixed(4)}, reward accuracy ${last['rewards/accuracies']?.toFixed(3)}, margin ${last['rewards/margins']?.toFixed(4)}`,
    lastEval && `eval at step ${lastEval.step}: loss ${lastEval.eval_loss.toFixed(4)}, reward accuracy ${lastEval['eval_rewards/accuracies']?.toFixed(3)}`].filter(Boolean);
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>${escape(title)}</title>
<style>body{font-family:system-ui,sans-serif;margin:24px;color:#222}figure{display:inline-block;margin:8px}figcaption{font-weight:600;margin-bottom:4px}</style></head>
<body><h1>${escape(title)}</h1><p>${summary.map((s) => escape(s as string)).join('<br>')}</p>
${CHARTS.map((c) => chart(c.title, rows, c.series)).join('\n')}
<p style="color:#777;font-size:12px">From ${escape(join(outputDir, 'metrics.jsonl'))} (${rows.length} records).</p></body></html>\n`;
  const path = join(outputDir, 'report.html');
  writeFileAtomic(path, html);
  return path;
}
