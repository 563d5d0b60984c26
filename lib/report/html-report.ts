import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DataError } from '../errors';
import { writeFileAtomic } from '../atomic-file';
import { parseMetricsLines } from '../train/metrics-log';
import { readRunInfo, type RunInfo } from '../train/run-info';
import { escapeHtml as escape, lineChart, type ChartOptions } from './svg-chart';

type Row = Record<string, number>;

/** The charts: training series as lines, their eval_ counterparts with a marker per evaluation. */
const CHARTS: (ChartOptions & { series: string[] })[] = [
  { title: 'DPO loss', yTitle: 'loss', series: ['loss', 'eval_loss'], logWhenWide: true },
  { title: 'reward accuracy', yTitle: 'fraction of pairs', series: ['rewards/accuracies', 'eval_rewards/accuracies'], yRange: [0, 1] },
  { title: 'reward margin', yTitle: 'β·Δ log-ratio', series: ['rewards/margins', 'eval_rewards/margins'] },
  { title: 'rewards', yTitle: 'β·log-ratio', series: ['rewards/chosen', 'rewards/rejected'] },
  { title: 'log-probs of the completions', yTitle: 'sum of log p', series: ['logps/chosen', 'logps/rejected'] },
  { title: 'learning rate', yTitle: 'learning rate', series: ['learning_rate'] },
  { title: 'gradient norm (before clipping)', yTitle: 'L2 norm', series: ['grad_norm'], logWhenWide: true },
  { title: 'throughput', yTitle: 'tokens / second', series: ['tokens_per_second'] },
];

/** Reads output_dir/metrics.jsonl (training and eval_ records); a torn last line is left out with a warning. */
export function readMetrics(outputDir: string, warn: (message: string) => void = () => {}): Row[] {
  const file = join(outputDir, 'metrics.jsonl');
  if (!existsSync(file)) throw new DataError(`${file} does not exist: is ${outputDir} a torch-dpo output_dir?`);
  const { rows, torn } = parseMetricsLines(readFileSync(file, 'utf8'), file);
  if (torn) warn(torn);
  return rows;
}

const table = (rows: [string, string][]) => `<table>${rows.map(([k, v]) => `<tr><th>${escape(k)}</th><td>${escape(v)}</td></tr>`).join('')}</table>`;
const show = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));
const duration = (seconds: number) => (seconds >= 3600 ? `${(seconds / 3600).toFixed(1)} h` : seconds >= 60 ? `${(seconds / 60).toFixed(1)} min` : `${seconds.toFixed(1)} s`);

function dataRows(name: string, d: Record<string, unknown> | null): [string, string][] {
  if (!d) return [];
  const dropped = Object.entries((d.dropped ?? {}) as Record<string, number>).map(([k, n]) => `${k} ${n}`).join(', ') || 'none';
  const kept = Number(d.kept);
  return [
    [`${name}: pairs kept`, `${kept} of ${show(d.rowsRead)} rows (${Object.entries((d.formats ?? {}) as Record<string, number>).map(([k, n]) => `${k} ${n}`).join(', ')})`],
    [`${name}: dropped`, dropped],
    [`${name}: truncated`, `${show(d.truncated)} (${((100 * Number(d.truncated)) / Math.max(kept, 1)).toFixed(1)}%)`],
    [`${name}: boundary mismatches`, show(d.boundaryMismatches)],
    [`${name}: files`, ((d.files ?? []) as string[]).join(', ')],
  ];
}

/** What the run was: model, data, versions, segments (durations and outcomes), the whole config. */
function metadata(info: RunInfo | null): string {
  if (!info) return '<p class="note">No run.json in this output_dir (written by torch-dpo ≥ 0.2): only the curves are shown.</p>';
  const m = info.model as Record<string, unknown>;
  const run: [string, string][] = [
    ['run name', info.run_name ?? '(none)'],
    ['model', `${show(m.architecture)} (${show(m.source)}${m.path ? ` from ${show(m.path)}` : ''}), ${Number(m.parameters).toLocaleString('en-US')} parameters${m.trainable !== undefined && m.trainable !== m.parameters ? ` (${Number(m.trainable).toLocaleString('en-US')} trainable)` : ''}, ${show(m.dtype)} on ${show(m.device)}`],
    ...((m.warnings ?? []) as string[]).map((w): [string, string] => ['model warning', w]),
    ...dataRows('train data', info.data.train as Record<string, unknown>),
    ...dataRows('eval data', info.data.eval as Record<string, unknown> | null),
    ['non-finite steps skipped', String(info.nonfinite_steps)],
    ['versions', Object.entries(info.versions).map(([k, v]) => `${k} ${v}`).join(', ')],
    ...info.segments.map((s, i): [string, string] => [`run ${i + 1}${s.from_step > 0 ? ' (resumed)' : ''}`,
      `steps ${s.from_step} → ${s.to_step ?? '?'}, started ${s.started}${s.seconds !== undefined ? `, ${duration(s.seconds)}` : ''}, ${s.outcome ?? 'killed or still running'}`]),
  ];
  const config = Object.entries(info.config).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]): [string, string] => [k, show(v)]);
  return `<h2>Run</h2>${table(run)}<details><summary>Config (${config.length} options, defaults filled in)</summary>${table(config)}</details>`;
}

/** Writes output_dir/report.html: one self-contained page (no scripts, no network) of charts and the run's metadata. */
export function writeHtmlReport(outputDir: string, title?: string, warn?: (message: string) => void): string {
  const rows = readMetrics(outputDir, warn);
  const info = readRunInfo(outputDir);
  const heading = title ?? (info?.run_name ? `torch-dpo run ${info.run_name}` : 'torch-dpo run');
  const last = [...rows].reverse().find((r) => Number.isFinite(r.loss));
  const lastEval = [...rows].reverse().find((r) => Number.isFinite(r.eval_loss));
  const summary = [last && `step ${last.step}: loss ${last.loss.toFixed(4)}, reward accuracy ${last['rewards/accuracies']?.toFixed(3)}, margin ${last['rewards/margins']?.toFixed(4)}`,
    lastEval && `eval at step ${lastEval.step}: loss ${lastEval.eval_loss.toFixed(4)}, reward accuracy ${lastEval['eval_rewards/accuracies']?.toFixed(3)}`].filter(Boolean) as string[];
  const charts = CHARTS.map(({ series, ...options }) => lineChart(series.map((name) => ({
    name, markers: name.startsWith('eval_'), points: rows.filter((r) => Number.isFinite(r[name])).map((r) => [r.step, r[name]] as [number, number]),
  })), options)).join('\n');
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>${escape(heading)}</title>
<style>body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1500px}figure{display:inline-block;margin:8px 10px}
figcaption{font-weight:600;margin-bottom:2px}svg text{font-size:11px;fill:#333}svg .axis{font-size:12px;fill:#555}.grid{stroke:#e3e3e3}
.frame{fill:none;stroke:#999}table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f6f6f6;font-weight:600;white-space:nowrap}td{word-break:break-word}.note{color:#777;font-size:12px}</style></head>
<body><h1>${escape(heading)}</h1><p>${summary.map(escape).join('<br>')}</p>
${charts}
${metadata(info)}
<p class="note">From ${escape(join(outputDir, 'metrics.jsonl'))} (${rows.length} records)${info ? ` and ${escape(join(outputDir, 'run.json'))}` : ''}.</p></body></html>\n`;
  const path = join(outputDir, 'report.html');
  writeFileAtomic(path, html);
  return path;
}
