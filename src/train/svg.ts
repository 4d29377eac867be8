// A loss-curve chart as a standalone SVG, written by hand (no dependency): training loss per step
// (faint) with a moving average, validation losses as points joined by a line, and optional
// horizontal reference lines (e.g. the unigram entropy of the validation tokens).

export interface ChartInput {
  title: string;
  train: { step: number; loss: number }[];
  val: { step: number; loss: number }[];
  refs?: { label: string; value: number }[];
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** "Nice" tick values covering [lo, hi] (about `n` of them). */
function ticks(lo: number, hi: number, n: number): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * step; v += step) out.push(+v.toPrecision(12));
  return out;
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

export function lossChartSvg(input: ChartInput): string {
  const W = 720, Hh = 420, ml = 60, mr = 20, mt = 40, mb = 50;
  const pw = W - ml - mr, ph = Hh - mt - mb;
  const train = downsample(input.train.filter((p) => Number.isFinite(p.loss)), 2000);
  const val = input.val.filter((p) => Number.isFinite(p.loss));
  const refs = (input.refs ?? []).filter((r) => Number.isFinite(r.value));
  const steps = [...train.map((p) => p.step), ...val.map((p) => p.step)];
  const xmin = 0, xmax = Math.max(1, ...steps);
  const ys = [...train.map((p) => p.loss), ...val.map((p) => p.loss), ...refs.map((r) => r.value)];
  let ymin = ys.length ? Math.min(...ys) : 0, ymax = ys.length ? Math.max(...ys) : 1;
  if (ymax - ymin < 1e-9) { ymin -= 0.5; ymax += 0.5; }
  const pad = 0.05 * (ymax - ymin);
  ymin = Math.max(0, ymin - pad); ymax += pad;
  const X = (s: number) => ml + ((s - xmin) / (xmax - xmin)) * pw;
  const Y = (v: number) => mt + (1 - (v - ymin) / (ymax - ymin)) * ph;
  const path = (pts: { step: number; loss: number }[]) => pts.map((p, i) => `${i ? 'L' : 'M'}${X(p.step).toFixed(1)},${Y(p.loss).toFixed(1)}`).join(' ');

  // moving average of the training loss (window ~2% of the run, at least 1)
  const win = Math.max(1, Math.round(train.length / 50));
  const smooth: { step: number; loss: number }[] = [];
  let acc = 0;
  for (let i = 0; i < train.length; i++) {
    acc += train[i].loss;
    if (i >= win) acc -= train[i - win].loss;
    smooth.push({ step: train[i].step, loss: acc / Math.min(i + 1, win) });
  }

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${Hh}" viewBox="0 0 ${W} ${Hh}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${Hh}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="14">${esc(input.title)}</text>`);
  for (const t of ticks(ymin, ymax, 6)) {
    out.push(`<line x1="${ml}" x2="${ml + pw}" y1="${Y(t).toFixed(1)}" y2="${Y(t).toFixed(1)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${ml - 6}" y="${(Y(t) + 4).toFixed(1)}" text-anchor="end">${fmtNum(t)}</text>`);
  }
  for (const t of ticks(xmin, xmax, 8)) {
    out.push(`<line x1="${X(t).toFixed(1)}" x2="${X(t).toFixed(1)}" y1="${mt}" y2="${mt + ph}" stroke="#f0f0f0"/>`);
    out.push(`<text x="${X(t).toFixed(1)}" y="${mt + ph + 16}" text-anchor="middle">${fmtNum(t)}</text>`);
  }
  out.push(`<rect x="${ml}" y="${mt}" width="${pw}" height="${ph}" fill="none" stroke="#444"/>`);
  out.push(`<text x="${ml + pw / 2}" y="${Hh - 12}" text-anchor="middle">step</text>`);
  out.push(`<text transform="translate(16,${mt + ph / 2}) rotate(-90)" text-anchor="middle">loss (nats/token)</text>`);
  for (const r of refs) {
    out.push(`<line x1="${ml}" x2="${ml + pw}" y1="${Y(r.value).toFixed(1)}" y2="${Y(r.value).toFixed(1)}" stroke="#888" stroke-dasharray="6,4"/>`);
    out.push(`<text x="${ml + pw - 4}" y="${(Y(r.value) - 4).toFixed(1)}" text-anchor="end" fill="#555">${esc(r.label)} ${fmtNum(r.value)}</text>`);
  }
  if (train.length > 1) out.push(`<path d="${path(train)}" fill="none" stroke="#1f77b4" stroke-opacity="0.25" stroke-width="1"/>`);
  if (smooth.length > 1) out.push(`<path d="${path(smooth)}" fill="none" stroke="#1f77b4" stroke-width="2"/>`);
  if (val.length > 1) out.push(`<path d="${path(val)}" fill="none" stroke="#d62728" stroke-width="2"/>`);
  for (const p of val) out.push(`<circle cx="${X(p.step).toFixed(1)}" cy="${Y(p.loss).toFixed(1)}" r="3" fill="#d62728"/>`);
  // legend
  const lx = ml + 12, ly = mt + 14;
  out.push(`<rect x="${lx - 6}" y="${ly - 12}" width="170" height="${val.length ? 40 : 22}" fill="white" fill-opacity="0.85" stroke="#ccc"/>`);
  out.push(`<line x1="${lx}" x2="${lx + 24}" y1="${ly - 4}" y2="${ly - 4}" stroke="#1f77b4" stroke-width="2"/><text x="${lx + 30}" y="${ly}">train (moving avg)</text>`);
  if (val.length) out.push(`<line x1="${lx}" x2="${lx + 24}" y1="${ly + 14}" y2="${ly + 14}" stroke="#d62728" stroke-width="2"/><text x="${lx + 30}" y="${ly + 18}">validation</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}
