/**
 * A dependency-free SVG bar chart of the bench's ratios (tsrun / runc-v2). One horizontal
 * bar per measurement, drawn from the 1.0 line on a log2 axis so that "twice as slow" and
 * "twice as fast" are bars of the same length on opposite sides. Green where tsrun does
 * better (a lower latency or memory, a higher throughput), red where it does worse.
 */
import type { Better } from './results-model.js';

/** One bar. */
export interface ChartBar {
  readonly label: string;
  /** tsrun / runc-v2; NaN or a non-positive value is drawn as "n/a". */
  readonly ratio: number;
  readonly better: Better;
}

/** What the chart shows. */
export interface ChartOptions {
  readonly title: string;
  /** A line under the chart: the machine the numbers came from. */
  readonly footer: string;
}

const labelWidth = 470;
const plotWidth = 420;
const valueWidth = 90;
const rowHeight = 22;
const top = 58;
const width = labelWidth + plotWidth + valueWidth + 20;
const good = '#2e7d32';
const bad = '#c62828';

/** Escapes text for an SVG text node or attribute. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => {
    switch (c) {
      case '&':
        return '&amp;';
      case '<':
        return '&lt;';
      case '>':
        return '&gt;';
      case '"':
        return '&quot;';
      default:
        return '&#39;';
    }
  });
}

/** Whether the ratio says tsrun did better than runc-v2. */
export function tsrunIsBetter(ratio: number, better: Better): boolean {
  return better === 'lower' ? ratio < 1 : ratio > 1;
}

/** Formats a ratio for humans: two significant decimals below 10, one above. */
export function formatRatio(ratio: number): string {
  if (!Number.isFinite(ratio) || ratio <= 0) return 'n/a';
  return ratio >= 10 ? `${ratio.toFixed(1)}x` : `${ratio.toFixed(2)}x`;
}

/** Renders the chart as a standalone SVG document. */
export function renderRatioChart(bars: readonly ChartBar[], options: ChartOptions): string {
  const valid = bars.map((b) => b.ratio).filter((r) => Number.isFinite(r) && r > 0);
  // Symmetric log2 range around 1, at least 1/4..4, in whole powers of two.
  const extent = Math.max(2, ...valid.map((r) => Math.ceil(Math.abs(Math.log2(r)) + 0.05)));
  const x = (ratio: number): number => labelWidth + ((Math.log2(ratio) + extent) / (2 * extent)) * plotWidth;
  const height = top + bars.length * rowHeight + 56;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="10" y="20" font-size="15" font-weight="bold">${escapeXml(options.title)}</text>`,
    `<text x="10" y="38" fill="#555555">ratio of medians, log scale; green: tsrun better, red: tsrun worse</text>`,
  ];
  // Grid lines and tick labels at powers of two.
  for (let e = -extent; e <= extent; e++) {
    const ratio = 2 ** e;
    const gx = x(ratio).toFixed(1);
    parts.push(
      `<line x1="${gx}" y1="${top - 6}" x2="${gx}" y2="${top + bars.length * rowHeight}" stroke="${e === 0 ? '#000000' : '#dddddd'}" stroke-width="${e === 0 ? 1.5 : 1}"/>`,
      `<text x="${gx}" y="${top + bars.length * rowHeight + 14}" text-anchor="middle" fill="#555555">${e < 0 ? `1/${2 ** -e}x` : `${ratio}x`}</text>`,
    );
  }
  bars.forEach((bar, i) => {
    const y = top + i * rowHeight;
    const hint = bar.better === 'lower' ? '(lower is better)' : '(higher is better)';
    parts.push(`<text x="${labelWidth - 8}" y="${y + 15}" text-anchor="end">${escapeXml(`${bar.label} ${hint}`)}</text>`);
    if (!Number.isFinite(bar.ratio) || bar.ratio <= 0) {
      parts.push(`<text x="${x(1) + 6}" y="${y + 15}" fill="#555555">n/a</text>`);
      return;
    }
    const clamped = Math.min(2 ** extent, Math.max(2 ** -extent, bar.ratio));
    const x0 = Math.min(x(1), x(clamped));
    const w = Math.max(1, Math.abs(x(clamped) - x(1)));
    const fill = tsrunIsBetter(bar.ratio, bar.better) ? good : bad;
    parts.push(
      `<rect x="${x0.toFixed(1)}" y="${y + 4}" width="${w.toFixed(1)}" height="${rowHeight - 8}" fill="${fill}"/>`,
      `<text x="${labelWidth + plotWidth + 8}" y="${y + 15}">${escapeXml(formatRatio(bar.ratio))}</text>`,
    );
  });
  parts.push(`<text x="10" y="${height - 12}" fill="#555555">${escapeXml(options.footer)}</text>`, '</svg>', '');
  return parts.join('\n');
}
