// Draws empirical CDFs as a plain SVG document (no plotting library): one or
// more panels side by side, a log-scale x axis, a percent y axis, a shared
// legend. Used by the election-time report to draw the Raft paper's Figure 16.

/** One line: the raw samples; +Infinity (a censored sample) is never reached by the curve. */
export interface CdfLine {
  readonly label: string;
  readonly values: readonly number[];
}

/** A point to mark on a panel, e.g. a figure quoted from the paper. */
export interface CdfMarker {
  readonly x: number;
  /** Cumulative fraction in [0, 1]. */
  readonly y: number;
  readonly label: string;
  /** Index into the line colours, so that a marker matches its line. */
  readonly colorIndex: number;
}

/** One panel of the figure. */
export interface CdfPanel {
  readonly title: string;
  readonly lines: readonly CdfLine[];
  readonly markers?: readonly CdfMarker[];
}

/** The whole figure. */
export interface CdfFigure {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  /** The x range shown, log scale; both must be positive. */
  readonly xMin: number;
  readonly xMax: number;
  readonly panels: readonly CdfPanel[];
  /** Panels per row (default 2). */
  readonly columns?: number;
}

/** Okabe–Ito colours: distinguishable with the common colour-vision deficiencies. */
const COLORS = ['#000000', '#E69F00', '#56B4E9', '#009E73', '#D55E00', '#0072B2', '#CC79A7', '#999999'];

const PANEL_W = 560;
const PANEL_H = 360;
const M = { left: 64, right: 20, top: 34, bottom: 52 };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function num(x: number): string {
  return (Math.round(x * 10) / 10).toString();
}

function fmtTick(v: number): string {
  return v >= 10_000 ? `${v / 1000}k` : v.toLocaleString('en-US');
}

/** Renders the figure as a standalone SVG document. */
export function renderCdfSvg(fig: CdfFigure): string {
  const cols = Math.min(fig.columns ?? 2, fig.panels.length);
  const rows = Math.ceil(fig.panels.length / cols);
  const labels = fig.panels[0]?.lines.map((l) => l.label) ?? [];
  const legendH = 40;
  const titleH = 36;
  const width = cols * PANEL_W;
  const height = titleH + rows * PANEL_H + legendH;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(fig.title)}</text>`);
  fig.panels.forEach((panel, i) => {
    const ox = (i % cols) * PANEL_W;
    const oy = titleH + Math.floor(i / cols) * PANEL_H;
    out.push(renderPanel(fig, panel, ox, oy));
  });
  // Shared legend.
  const ly = titleH + rows * PANEL_H + 22;
  const itemW = Math.min(150, (width - 40) / Math.max(1, labels.length));
  const lx0 = (width - itemW * labels.length) / 2;
  labels.forEach((label, j) => {
    const x = lx0 + j * itemW;
    const color = COLORS[j % COLORS.length] as string;
    out.push(`<line x1="${num(x)}" y1="${ly}" x2="${num(x + 28)}" y2="${ly}" stroke="${color}" stroke-width="2.5"/>`);
    out.push(`<text x="${num(x + 34)}" y="${ly + 4}">${esc(label)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

function renderPanel(fig: CdfFigure, panel: CdfPanel, ox: number, oy: number): string {
  const pw = PANEL_W - M.left - M.right;
  const ph = PANEL_H - M.top - M.bottom;
  const x0 = ox + M.left;
  const y0 = oy + M.top;
  const lmin = Math.log10(fig.xMin);
  const lmax = Math.log10(fig.xMax);
  const sx = (v: number): number => x0 + ((Math.log10(Math.min(Math.max(v, fig.xMin), fig.xMax)) - lmin) / (lmax - lmin)) * pw;
  const sy = (f: number): number => y0 + (1 - f) * ph;
  const out: string[] = [];
  out.push(`<g>`);
  out.push(`<text x="${num(x0 + pw / 2)}" y="${oy + 20}" text-anchor="middle" font-size="13" font-weight="bold">${esc(panel.title)}</text>`);
  // Grid and ticks.
  for (let d = Math.floor(lmin); d <= Math.ceil(lmax); d++) {
    for (let m = 1; m <= 9; m++) {
      const v = m * 10 ** d;
      if (v < fig.xMin || v > fig.xMax) continue;
      const x = sx(v);
      const major = m === 1;
      out.push(`<line x1="${num(x)}" y1="${y0}" x2="${num(x)}" y2="${y0 + ph}" stroke="${major ? '#cccccc' : '#eeeeee'}" stroke-width="1"/>`);
      out.push(`<line x1="${num(x)}" y1="${y0 + ph}" x2="${num(x)}" y2="${y0 + ph + (major ? 6 : 3)}" stroke="#333333"/>`);
      if (major || ((m === 2 || m === 5) && v < 10_000)) {
        out.push(`<text x="${num(x)}" y="${y0 + ph + 18}" text-anchor="middle"${major ? '' : ' fill="#666666" font-size="10"'}>${fmtTick(v)}</text>`);
      }
    }
  }
  for (let p = 0; p <= 100; p += 20) {
    const y = sy(p / 100);
    out.push(`<line x1="${x0}" y1="${num(y)}" x2="${x0 + pw}" y2="${num(y)}" stroke="${p === 0 ? '#333333' : '#dddddd'}"/>`);
    out.push(`<line x1="${x0 - 5}" y1="${num(y)}" x2="${x0}" y2="${num(y)}" stroke="#333333"/>`);
    out.push(`<text x="${x0 - 8}" y="${num(y + 4)}" text-anchor="end">${p}%</text>`);
  }
  out.push(`<rect x="${x0}" y="${y0}" width="${pw}" height="${ph}" fill="none" stroke="#333333"/>`);
  out.push(`<text x="${num(x0 + pw / 2)}" y="${y0 + ph + 40}" text-anchor="middle">${esc(fig.xLabel)}</text>`);
  out.push(`<text transform="translate(${ox + 16},${num(y0 + ph / 2)}) rotate(-90)" text-anchor="middle">${esc(fig.yLabel)}</text>`);
  // Curves: an empirical CDF is a staircase.
  out.push(`<clipPath id="clip-${ox}-${oy}"><rect x="${x0}" y="${y0 - 2}" width="${pw}" height="${ph + 4}"/></clipPath>`);
  panel.lines.forEach((line, j) => {
    const color = COLORS[j % COLORS.length] as string;
    const sorted = line.values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
    const n = line.values.length;
    if (n === 0) return;
    const pts: string[] = [`M${num(sx(fig.xMin))},${num(sy(0))}`];
    let prevX = sx(fig.xMin);
    // Samples are snapped to half pixels, and runs at one x become one vertical step.
    const px = (v: number): number => Math.round(sx(v) * 2) / 2;
    for (let i = 0; i < sorted.length; i++) {
      const x = px(sorted[i] as number);
      if (x !== prevX) pts.push(`H${num(x)}`);
      prevX = x;
      if (i + 1 < sorted.length && px(sorted[i + 1] as number) === x) continue;
      pts.push(`V${num(sy((i + 1) / n))}`);
    }
    if (sorted.length === n) pts.push(`H${num(sx(fig.xMax))}`);
    out.push(`<path d="${pts.join('')}" fill="none" stroke="${color}" stroke-width="2" clip-path="url(#clip-${ox}-${oy})"/>`);
  });
  for (const mk of panel.markers ?? []) {
    const color = COLORS[mk.colorIndex % COLORS.length] as string;
    const x = sx(mk.x);
    const y = sy(mk.y);
    out.push(`<path d="M${num(x - 6)},${num(y - 6)}L${num(x + 6)},${num(y + 6)}M${num(x - 6)},${num(y + 6)}L${num(x + 6)},${num(y - 6)}" stroke="${color}" stroke-width="2.5"/>`);
    // Keep the label inside the plot: left of the mark near the right edge, below it at the top.
    const right = x > x0 + pw * 0.6;
    const ty = y < y0 + 12 ? y + 16 : y + 4;
    out.push(`<text x="${num(right ? x - 9 : x + 9)}" y="${num(ty)}" font-size="11" fill="#333333" stroke="#ffffff" stroke-width="3" paint-order="stroke"` +
      `${right ? ' text-anchor="end"' : ''}>${esc(mk.label)}</text>`);
  }
  out.push(`</g>`);
  return out.join('\n');
}
