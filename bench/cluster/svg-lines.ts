// Line plots over time as a plain SVG document (no plotting library), in the
// style of bench/svg-cdf.ts: panels in a grid, linear axes with round ticks,
// a legend per panel, and shaded x intervals (e.g. while a process was
// stopped). Used by the back-pressure report, and with a logarithmic x axis
// and point markers by the scaling report (throughput against clients).

import { assertNever } from '../../src/util/assert.js';

/** One line: (x, y) points in x order; NaN y values leave a gap. */
export interface LineSeries {
  readonly label: string;
  readonly points: readonly (readonly [number, number])[];
}

/** One panel. */
export interface LinePanel {
  readonly title: string;
  readonly yLabel: string;
  readonly series: readonly LineSeries[];
  /** Half-open x intervals [from, to) drawn as grey bands. */
  readonly shaded?: readonly (readonly [number, number])[];
  readonly shadedLabel?: string;
}

/** How x maps to the page: linear with round ticks, or base-10 logarithmic with the given ticks (all > 0). */
export type XAxis =
  | { readonly kind: 'linear' }
  | { readonly kind: 'log'; readonly ticks: readonly number[] };

/** The whole figure. */
export interface LineFigure {
  readonly title: string;
  readonly xLabel: string;
  /** Default linear. */
  readonly xAxis?: XAxis;
  /** Draw a dot at every point (default no: time series have too many). */
  readonly markers?: boolean;
  readonly panels: readonly LinePanel[];
  /** Panels per row (default 2). */
  readonly columns?: number;
}

const COLORS = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000', '#999999'];
const PANEL_W = 560;
const PANEL_H = 340;
const M = { left: 72, right: 20, top: 34, bottom: 78 };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function num(x: number): string {
  return (Math.round(x * 10) / 10).toString();
}

/** Round tick values from at or below lo to at or above hi: steps of 1, 2 or 5 × 10^k, about `count` of them. */
function ticks(lo: number, hi: number, count = 5): number[] {
  const span = hi - lo || 1;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  const first = Math.floor(lo / step + 1e-9);
  const last = Math.ceil(hi / step - 1e-9);
  for (let k = first; k <= last; k++) out.push(k * step);
  return out;
}

function label(v: number): string {
  return Math.abs(v) >= 10_000 ? `${v / 1000}k` : v.toLocaleString('en-US', { maximumFractionDigits: 2 });
}

/** Renders the figure as a standalone SVG document. */
export function renderLinesSvg(fig: LineFigure): string {
  const cols = Math.min(fig.columns ?? 2, fig.panels.length);
  const rows = Math.ceil(fig.panels.length / cols);
  const titleH = 36;
  const width = cols * PANEL_W;
  const height = titleH + rows * PANEL_H;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(fig.title)}</text>`);
  fig.panels.forEach((p, i) => out.push(renderPanel(fig, p, (i % cols) * PANEL_W, titleH + Math.floor(i / cols) * PANEL_H, i)));
  out.push('</svg>');
  return out.join('\n') + '\n';
}

function renderPanel(fig: LineFigure, panel: LinePanel, ox: number, oy: number, index: number): string {
  const pw = PANEL_W - M.left - M.right;
  const ph = PANEL_H - M.top - M.bottom;
  const x0 = ox + M.left;
  const y0 = oy + M.top;
  const xs = panel.series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = panel.series.flatMap((s) => s.points.map((p) => p[1])).filter((y) => Number.isFinite(y));
  const axis: XAxis = fig.xAxis ?? { kind: 'linear' };
  let xTicks: number[];
  let fx: (v: number) => number; // x in axis units: itself, or its log10
  switch (axis.kind) {
    case 'linear':
      xTicks = ticks(Math.min(0, ...xs), Math.max(1, ...xs));
      fx = (v) => v;
      break;
    case 'log': {
      const positive = [...axis.ticks, ...xs].filter((v) => v > 0);
      xTicks = [...axis.ticks].filter((v) => v > 0).sort((a, b) => a - b);
      if (xTicks.length === 0) xTicks = [Math.min(...positive), Math.max(...positive)];
      fx = (v) => Math.log10(v);
      break;
    }
    default:
      return assertNever(axis);
  }
  const yTicks = ticks(Math.min(0, ...ys), Math.max(1, ...ys));
  // The x domain in data units (a log axis also stretches to points beyond its ticks), then in axis units.
  const xLo = Math.min(xTicks[0] as number, ...(axis.kind === 'log' ? xs.filter((v) => v > 0) : []));
  const xHi = Math.max(xTicks[xTicks.length - 1] as number, ...(axis.kind === 'log' ? xs : []));
  const xMin = fx(xLo);
  const xMax = fx(xHi);
  const yMin = yTicks[0] as number;
  const yMax = yTicks[yTicks.length - 1] as number;
  const sx = (v: number): number => x0 + ((fx(v) - xMin) / (xMax - xMin || 1)) * pw;
  const sy = (v: number): number => y0 + (1 - (v - yMin) / (yMax - yMin || 1)) * ph;
  const out: string[] = ['<g>'];
  out.push(`<text x="${num(x0 + pw / 2)}" y="${oy + 20}" text-anchor="middle" font-size="13" font-weight="bold">${esc(panel.title)}</text>`);
  for (const [a, b] of panel.shaded ?? []) {
    const left = sx(Math.max(a, xLo));
    const right = sx(Math.min(b, xHi));
    if (right > left) out.push(`<rect x="${num(left)}" y="${y0}" width="${num(Math.max(0.5, right - left))}" height="${ph}" fill="#e8e8e8"/>`);
  }
  for (const v of xTicks) {
    const x = sx(v);
    out.push(`<line x1="${num(x)}" y1="${y0}" x2="${num(x)}" y2="${y0 + ph}" stroke="#dddddd"/>`);
    out.push(`<text x="${num(x)}" y="${y0 + ph + 18}" text-anchor="middle">${label(v)}</text>`);
  }
  for (const v of yTicks) {
    const y = sy(v);
    out.push(`<line x1="${x0}" y1="${num(y)}" x2="${x0 + pw}" y2="${num(y)}" stroke="#dddddd"/>`);
    out.push(`<text x="${x0 - 8}" y="${num(y + 4)}" text-anchor="end">${label(v)}</text>`);
  }
  out.push(`<rect x="${x0}" y="${y0}" width="${pw}" height="${ph}" fill="none" stroke="#333333"/>`);
  out.push(`<text x="${num(x0 + pw / 2)}" y="${y0 + ph + 38}" text-anchor="middle">${esc(fig.xLabel)}</text>`);
  out.push(`<text transform="translate(${ox + 16},${num(y0 + ph / 2)}) rotate(-90)" text-anchor="middle">${esc(panel.yLabel)}</text>`);
  out.push(`<clipPath id="clip-l${index}"><rect x="${x0}" y="${y0 - 2}" width="${pw}" height="${ph + 4}"/></clipPath>`);
  panel.series.forEach((s, j) => {
    const color = COLORS[j % COLORS.length] as string;
    let d = '';
    let pen = false;
    for (const [x, y] of s.points) {
      if (!Number.isFinite(y)) {
        pen = false;
        continue;
      }
      d += `${pen ? 'L' : 'M'}${num(sx(x))},${num(sy(y))}`;
      pen = true;
    }
    if (d !== '') out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="1.8" clip-path="url(#clip-l${index})"/>`);
    if (fig.markers === true) {
      for (const [x, y] of s.points) {
        if (Number.isFinite(y)) out.push(`<circle cx="${num(sx(x))}" cy="${num(sy(y))}" r="3.2" fill="${color}"/>`);
      }
    }
  });
  // Legend under the axis label.
  const items = [...panel.series.map((s, j) => ({ text: s.label, color: COLORS[j % COLORS.length] as string, band: false })),
    ...(panel.shadedLabel !== undefined && (panel.shaded?.length ?? 0) > 0 ? [{ text: panel.shadedLabel, color: '#e8e8e8', band: true }] : [])];
  const itemW = pw / Math.max(1, items.length);
  items.forEach((it, j) => {
    const x = x0 + j * itemW;
    const y = y0 + ph + 60;
    out.push(it.band
      ? `<rect x="${num(x)}" y="${y - 6}" width="22" height="12" fill="${it.color}" stroke="#bbbbbb"/>`
      : `<line x1="${num(x)}" y1="${y}" x2="${num(x + 22)}" y2="${y}" stroke="${it.color}" stroke-width="2.5"/>`);
    out.push(`<text x="${num(x + 27)}" y="${y + 4}" font-size="11">${esc(it.text)}</text>`);
  });
  out.push('</g>');
  return out.join('\n');
}
