// The small pieces every hand-written SVG chart of crate-ts shares (the loss chart of a run, the
// comparison of neuron collections, the layer-wise diagnostics, and the viewer's score chart, whose
// browser scripts compile a generated copy: scripts/gen-web-svg.mjs): escaping text for XML, "nice" axis
// ticks (linear and logarithmic), the plot area inside the margins, the opening lines of a chart
// (white background, a centred title) and the horizontal grid lines with their labels. Each chart
// keeps its own layout; what it draws with these pieces is written once here.

/** Text made safe inside an XML element or a double-quoted attribute. */
export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** The tick spacing for about `n` ticks over [lo, hi] (hi > lo): 1, 2, 2.5 or 5 × 10^k. */
export function tickStep(lo: number, hi: number, n: number): number {
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
}

/** "Nice" tick values inside [lo, hi] (about `n` of them); [lo] when the range is empty. */
export function ticks(lo: number, hi: number, n: number): number[] {
  if (!(hi > lo)) return [lo];
  const step = tickStep(lo, hi, n);
  const out: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + 1e-9 * step; v += step) out.push(+v.toPrecision(12));
  return out;
}

/**
 * "Nice" ticks covering [lo, hi] (hi > lo), the axis widened to the round ticks just outside it:
 * `lo` and `hi` returned are the first and last tick, so an axis can end on labelled values.
 */
export function roundTicks(lo: number, hi: number, n: number): { ticks: number[]; lo: number; hi: number } {
  const step = tickStep(lo, hi, n);
  const a = Math.floor(lo / step + 1e-9) * step,
    b = Math.ceil(hi / step - 1e-9) * step;
  const out: number[] = [];
  for (let v = a; v <= b + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return { ticks: out, lo: a, hi: b };
}

/**
 * Ticks for a logarithmic axis over [lo, hi] (lo > 0). Within a decade or so (loss curves) round
 * linear steps read best (2, 2.5, 3, 4, 5); over several decades the mantissas 1, 2, 5 of each.
 */
export function logTicks(lo: number, hi: number): number[] {
  if (!(lo > 0) || !(hi > lo)) return lo > 0 ? [lo] : [];
  if (hi / lo <= 20) return ticks(lo, hi, 8).filter((v) => v > 0);
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of [1, 2, 5]) {
      const v = +(m * 10 ** e).toPrecision(12);
      if (v >= lo && v <= hi) out.push(v);
    }
  }
  return out;
}

/** Space between the edge of the chart and its plot: left (y labels), right, top (title, legend), bottom (x labels). */
export interface Margins {
  left: number;
  right: number;
  top: number;
  bottom: number;
}

/** The plot's rectangle in a width × height chart with these margins. */
export function plotArea(width: number, height: number, m: Margins): { x: number; y: number; width: number; height: number } {
  return { x: m.left, y: m.top, width: width - m.left - m.right, height: height - m.top - m.bottom };
}

/**
 * A chart's opening lines: the <svg> element (12 px sans-serif), a white background and the title
 * centred at `titleX` (default the middle) on the first row.
 */
export function svgOpen(width: number, height: number, title: string, opts: { titleX?: number; titleSize?: number } = {}): string[] {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${opts.titleX ?? width / 2}" y="22" text-anchor="middle" font-size="${opts.titleSize ?? 14}">${escapeXml(title)}</text>`,
  ];
}

/** A horizontal grid line across [x1, x2] at y. */
export function gridLine(x1: number, x2: number, y: number, stroke: string): string {
  return `<line x1="${x1}" x2="${x2}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="${stroke}"/>`;
}

/** A y-axis tick label, right-aligned just left of the axis at x, centred on y. */
export function yLabel(x: number, y: number, text: string): string {
  return `<text x="${x - 6}" y="${(y + 4).toFixed(1)}" text-anchor="end">${escapeXml(text)}</text>`;
}
