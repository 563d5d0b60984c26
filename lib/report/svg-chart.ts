// Line charts as inline SVG (no scripts, no network): ticks at round numbers, gridlines, axis titles,
// markers on sparse series (evaluations), a log scale when a positive series spans decades.

export interface Series {
  name: string;
  points: [number, number][];
  /** Draw a marker at every point (evaluations are few and each one matters). */
  markers: boolean;
  /** A dashed line (a baseline). */
  dashed?: boolean;
}

export interface ChartOptions {
  title: string;
  yTitle: string;
  /** A fixed y range (accuracies: [0, 1]); else from the data. */
  yRange?: [number, number];
  /** Allow a log y scale when the data is positive and spans more than two decades. */
  logWhenWide?: boolean;
  /** The x axis: its title (default: optimizer step) and whether its ticks are whole numbers (default true). */
  xTitle?: string;
  integerX?: boolean;
  /** Width and height in pixels (default 460 × 250). */
  size?: [number, number];
  /** Only points with x ≤ xMax (a zoom on the start of the x range). */
  xMax?: number;
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf'];
const L = 64, R = 14, T = 28, B = 44;
export const escapeHtml = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** Round tick values covering [lo, hi]: steps of 1, 2 or 5 × 10^k, about `count` of them. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  const span = hi - lo;
  const raw = span / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => span / s <= count) ?? 10 * magnitude;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) ticks.push(Math.abs(v) < step * 1e-9 ? 0 : Number(v.toPrecision(12)));
  return ticks;
}

/** The y range of the data; a flat series gets a range around it (from 0 for a positive one), never a made-up ±1. */
export function dataRange(values: number[]): [number, number] {
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (lo === hi) {
    if (lo > 0) [lo, hi] = [0, 2 * hi];
    else if (lo < 0) [lo, hi] = [2 * lo, 0];
    else [lo, hi] = [0, 1];
  } else {
    const pad = (hi - lo) * 0.05;
    [lo, hi] = [lo - pad, hi + pad];
  }
  return [lo, hi];
}

/** Tick labels in one notation per axis: exponents when the largest tick is tiny or huge, else decimals. */
export function tickFormat(ticks: number[]): (v: number) => string {
  const largest = Math.max(...ticks.map(Math.abs));
  const exponential = largest >= 1e5 || (largest > 0 && largest < 1e-3);
  return (v) => (v === 0 ? '0' : exponential ? Number(v.toPrecision(3)).toExponential().replace('e+', 'e') : String(Number(v.toPrecision(4))));
}

/** One chart as a <figure> with an inline SVG; '' when no series has a finite point. */
export function lineChart(series: Series[], options: ChartOptions): string {
  const lines = series.map((s) => ({ ...s, points: s.points.filter(([x, y]) => Number.isFinite(y) && x <= (options.xMax ?? Infinity)) })).filter((s) => s.points.length > 0);
  if (lines.length === 0) return '';
  const [W, H] = options.size ?? [460, 250];
  const xTitle = options.xTitle ?? 'optimizer step';
  const xs = lines.flatMap((l) => l.points.map((p) => p[0]));
  const ys = lines.flatMap((l) => l.points.map((p) => p[1]));
  const [x0, x1] = [Math.min(...xs), Math.max(...xs) === Math.min(...xs) ? Math.min(...xs) + 1 : Math.max(...xs)];
  const log = !!options.logWhenWide && Math.min(...ys) > 0 && Math.max(...ys) / Math.min(...ys) > 100;
  const f = log ? Math.log10 : (v: number) => v;
  const [y0, y1] = options.yRange ?? (log ? [Math.floor(f(Math.min(...ys))), Math.ceil(f(Math.max(...ys)))] : dataRange(ys));
  const sx = (x: number) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y: number) => T + (1 - (f(y) - y0) / (y1 - y0)) * (H - T - B);
  const yTicks = log ? Array.from({ length: y1 - y0 + 1 }, (_, i) => 10 ** (y0 + i)) : niceTicks(y0, y1);
  const xTicks = niceTicks(x0, x1, 6).filter((x) => options.integerX === false || Number.isInteger(x));
  const formatX = tickFormat(xTicks);
  // A log axis spans decades: each label in the notation that suits it.
  const formatTick = log ? (v: number) => tickFormat([v])(v) : tickFormat(yTicks);
  const grid = [
    ...yTicks.map((v) => `<line x1="${L}" x2="${W - R}" y1="${sy(v).toFixed(1)}" y2="${sy(v).toFixed(1)}" class="grid"/><text x="${L - 6}" y="${(sy(v) + 3.5).toFixed(1)}" text-anchor="end">${formatTick(v)}</text>`),
    ...xTicks.map((x) => `<line x1="${sx(x).toFixed(1)}" x2="${sx(x).toFixed(1)}" y1="${T}" y2="${H - B}" class="grid"/><text x="${sx(x).toFixed(1)}" y="${H - B + 15}" text-anchor="middle">${formatX(x)}</text>`),
  ].join('');
  const drawn = lines.map((l, i) => {
    const color = COLORS[i % COLORS.length];
    const path = l.points.length > 1 ? `<polyline fill="none" stroke="${color}" stroke-width="1.8"${l.dashed ? ' stroke-dasharray="6 4"' : ''} points="${l.points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ')}"/>` : '';
    const dots = l.markers || l.points.length === 1 ? l.points.map(([x, y]) => `<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3.2" fill="${color}"><title>${escapeHtml(l.name)} at ${escapeHtml(xTitle)} ${x}: ${y}</title></circle>`).join('') : '';
    return path + dots;
  }).join('');
  const legend = lines.map((l, i) => `<tspan fill="${COLORS[i % COLORS.length]}" dx="${i ? 14 : 0}">${l.markers ? '●' : l.dashed ? '╍' : '━'} ${escapeHtml(l.name)}</tspan>`).join('');
  return `<figure><figcaption>${escapeHtml(options.title)}${log ? ' <small>(log scale)</small>' : ''}</figcaption><svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${escapeHtml(options.title)}">
<g class="ticks">${grid}</g><rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" class="frame"/>
${drawn}<text x="${L}" y="${T - 10}" class="legend">${legend}</text>
<text x="${(L + W - R) / 2}" y="${H - 8}" text-anchor="middle" class="axis">${escapeHtml(xTitle)}</text>
<text transform="translate(14 ${(T + H - B) / 2}) rotate(-90)" text-anchor="middle" class="axis">${escapeHtml(options.yTitle)}</text></svg></figure>`;
}
