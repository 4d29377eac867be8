// A loss-curve chart as a standalone SVG, written by hand (no dependency): training loss per step
// (faint) with a moving average, validation losses as points joined by a line, and optional
// horizontal reference lines (e.g. the unigram entropy of the validation tokens).
//
// A run starts near ln V (5.5 nats for bytes) and spends most of its steps within a few tenths of a
// nat of its final loss, so an axis that shows the first steps squeezes the part worth reading into
// the bottom of the chart. So the y axis is logarithmic, and its top is set by the run after its
// first 5% of steps (and the validation points and reference lines): the early descent leaves the
// plot at the top, and the legend says which steps and up to what loss. The legend sits in its own
// band above the plot, where no curve can run under it, and names every line drawn.
import { escapeXml as esc, gridLine, logTicks, plotArea, svgOpen, ticks, yLabel } from '../util/svg.js';

export interface ChartInput {
  title: string;
  train: { step: number; loss: number }[];
  val: { step: number; loss: number }[];
  refs?: { label: string; value: number }[];
}

function fmtNum(v: number): string {
  if (Math.abs(v) >= 1e4) return v.toExponential(1);
  return String(+v.toPrecision(4));
}

/** At most `max` points: consecutive buckets averaged (step and loss), so long runs stay small. */
function downsample(pts: { step: number; loss: number }[], max: number): { step: number; loss: number }[] {
  if (pts.length <= max) return pts;
  const out: { step: number; loss: number }[] = [];
  const size = Math.ceil(pts.length / max);
  for (let i = 0; i < pts.length; i += size) {
    const b = pts.slice(i, i + size);
    out.push({ step: b.reduce((s, p) => s + p.step, 0) / b.length, loss: b.reduce((s, p) => s + p.loss, 0) / b.length });
  }
  return out;
}

const COLOR = { train: '#1f77b4', val: '#d62728', ref: '#777' };

export function lossChartSvg(input: ChartInput): string {
  const W = 760,
    Hh = 460;
  const { x: ml, y: mt, width: pw, height: ph } = plotArea(W, Hh, { left: 64, right: 24, top: 74, bottom: 50 });
  const positive = (p: { loss: number }) => Number.isFinite(p.loss) && p.loss > 0;
  const rawTrain = input.train.filter(positive);
  const train = downsample(rawTrain, 2000);
  const val = input.val.filter(positive);
  const refs = (input.refs ?? []).filter((r) => Number.isFinite(r.value) && r.value > 0);
  const steps = [...train.map((p) => p.step), ...val.map((p) => p.step)];
  const xmin = 0,
    xmax = Math.max(1, ...steps);
  const ys = [...train.map((p) => p.loss), ...val.map((p) => p.loss), ...refs.map((r) => r.value)];
  let ymin = ys.length ? Math.min(...ys) : 1,
    ymax = ys.length ? Math.max(...ys) : 10;
  // the top: what the run reaches after its first 5% of steps
  const early = Math.max(1, Math.ceil(0.05 * xmax));
  const late = [...train.filter((p) => p.step > early).map((p) => p.loss), ...val.map((p) => p.loss), ...refs.map((r) => r.value)];
  // (short runs, under 20 logged steps, are shown whole)
  const clipped =
    rawTrain.length >= 20 && late.length > 0 && Math.max(...late) < ymax / 1.02 ? { steps: early, max: Math.max(...rawTrain.map((p) => p.loss)) } : null;
  if (clipped) ymax = Math.max(...late);
  if (ymax / ymin < 1.05) {
    ymin /= 1.05;
    ymax *= 1.05;
  }
  // 3% of the log range as a margin on each side
  const pad = 0.03 * Math.log(ymax / ymin);
  ymin *= Math.exp(-pad);
  ymax *= Math.exp(pad);
  const ly0 = Math.log(ymin),
    ly1 = Math.log(ymax);
  const X = (s: number) => ml + ((s - xmin) / (xmax - xmin)) * pw;
  const Y = (v: number) => mt + (1 - (Math.log(v) - ly0) / (ly1 - ly0)) * ph;
  const path = (pts: { step: number; loss: number }[]) => pts.map((p, i) => `${i ? 'L' : 'M'}${X(p.step).toFixed(1)},${Y(p.loss).toFixed(1)}`).join(' ');

  // moving average of the training loss (window ~2% of the run's steps, at least 1)
  const win = Math.max(1, Math.round(train.length / 50));
  const smooth: { step: number; loss: number }[] = [];
  let acc = 0;
  for (let i = 0; i < train.length; i++) {
    acc += train[i].loss;
    if (i >= win) acc -= train[i - win].loss;
    smooth.push({ step: train[i].step, loss: acc / Math.min(i + 1, win) });
  }
  const stepsPerPoint = train.length ? Math.max(1, Math.round(rawTrain.length / train.length)) : 1;

  const out: string[] = [];
  out.push(...svgOpen(W, Hh, input.title));

  // y ticks: log scale, labels at least 14 px apart
  let last = Infinity;
  for (const t of logTicks(ymin, ymax)) {
    const y = Y(t);
    out.push(gridLine(ml, ml + pw, y, '#e5e5e5'));
    if (Math.abs(last - y) >= 14) {
      out.push(yLabel(ml, y, fmtNum(t)));
      last = y;
    }
  }
  for (const t of ticks(xmin, xmax, 8)) {
    out.push(`<line x1="${X(t).toFixed(1)}" x2="${X(t).toFixed(1)}" y1="${mt}" y2="${mt + ph}" stroke="#f0f0f0"/>`);
    out.push(`<text x="${X(t).toFixed(1)}" y="${mt + ph + 16}" text-anchor="middle">${fmtNum(t)}</text>`);
  }
  out.push(`<rect x="${ml}" y="${mt}" width="${pw}" height="${ph}" fill="none" stroke="#444"/>`);
  out.push(`<text x="${ml + pw / 2}" y="${Hh - 12}" text-anchor="middle">step</text>`);
  out.push(`<text transform="translate(16,${mt + ph / 2}) rotate(-90)" text-anchor="middle">loss (nats/token, log scale)</text>`);
  for (const r of refs) {
    out.push(`<line x1="${ml}" x2="${ml + pw}" y1="${Y(r.value).toFixed(1)}" y2="${Y(r.value).toFixed(1)}" stroke="${COLOR.ref}" stroke-dasharray="6,4"/>`);
  }
  out.push(`<clipPath id="plot"><rect x="${ml}" y="${mt}" width="${pw}" height="${ph}"/></clipPath>`);
  out.push('<g clip-path="url(#plot)">');
  if (train.length > 1) out.push(`<path d="${path(train)}" fill="none" stroke="${COLOR.train}" stroke-opacity="0.3" stroke-width="1"/>`);
  if (smooth.length > 1) out.push(`<path d="${path(smooth)}" fill="none" stroke="${COLOR.train}" stroke-width="2"/>`);
  if (val.length > 1) out.push(`<path d="${path(val)}" fill="none" stroke="${COLOR.val}" stroke-width="2"/>`);
  for (const p of val) out.push(`<circle cx="${X(p.step).toFixed(1)}" cy="${Y(p.loss).toFixed(1)}" r="3" fill="${COLOR.val}"/>`);
  out.push('</g>');

  // legend: one band between the title and the plot, an entry per line drawn
  const entries: { label: string; swatch: string }[] = [];
  const sw =
    (color: string, extra = '') =>
    (x: number, y: number) =>
      `<line x1="${x}" x2="${x + 24}" y1="${y}" y2="${y}" stroke="${color}" ${extra}/>`;
  if (train.length)
    entries.push({
      label: `train loss${stepsPerPoint > 1 ? ` (mean of ${stepsPerPoint} steps)` : ' per step'}`,
      swatch: sw(COLOR.train, 'stroke-opacity="0.3" stroke-width="1"')(0, 0),
    });
  if (smooth.length > 1) entries.push({ label: `train, moving average (${win * stepsPerPoint} steps)`, swatch: sw(COLOR.train, 'stroke-width="2"')(0, 0) });
  if (val.length) entries.push({ label: 'validation', swatch: `${sw(COLOR.val, 'stroke-width="2"')(0, 0)}<circle cx="12" cy="0" r="3" fill="${COLOR.val}"/>` });
  for (const r of refs) entries.push({ label: `${r.label} ${fmtNum(r.value)}`, swatch: sw(COLOR.ref, 'stroke-dasharray="6,4"')(0, 0) });
  if (clipped)
    entries.push({
      label: `steps 1–${clipped.steps} run above the top (loss up to ${fmtNum(clipped.max)})`,
      swatch: `<path d="M12,5 L12,-6 M7,-1 L12,-6 L17,-1" fill="none" stroke="#555" stroke-width="1.5"/>`,
    });
  const charW = 6.6; // average width of a 12 px sans-serif character
  let lx = ml,
    ly = 46;
  for (const e of entries) {
    const w = 30 + e.label.length * charW + 18;
    if (lx + w > ml + pw && lx > ml) {
      lx = ml;
      ly += 16;
    }
    out.push(`<g transform="translate(${lx.toFixed(1)},${ly - 4})">${e.swatch}</g><text x="${(lx + 30).toFixed(1)}" y="${ly}">${esc(e.label)}</text>`);
    lx += w;
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}
