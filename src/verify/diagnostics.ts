// Layer-wise diagnostics of a (trained) model, the CRATE authors' measurement (spec E21):
//   compression: per layer, R^c of the unit-normalised heads of U*ᵀ LN₁(Z^ℓ) with e = ε² = 0.01
//                (blocks.{l}.attn.hook_qkv), mean and std over sequences;
//   sparsity:    per layer, of the ISTA code a_steps (blocks.{l}.hook_neurons; for GPT-2 the ReLU MLP units):
//                fraction of exact zeros, mean L0 per token, dead codes (never non-zero on the data).
// Paper B reports that across the layers of a trained model R^c decreases and sparsity increases.
import type { LanguageModel } from '../model/lm.js';
import { measuredCompression } from './codingrate.js';
import { escapeXml as esc, gridLine, plotArea, roundTicks, svgOpen, yLabel } from '../util/svg.js';

export interface LayerDiagnostics {
  layer: number;
  /** Σ_k R^c term per sequence, mean and std over all sequences (null for GPT-2, which has no U_k). */
  compressionMean: number | null;
  compressionStd: number | null;
  /** Fraction of exactly-zero entries of the code over all tokens. */
  zeroFraction: number;
  /** Mean number of non-zero code entries per token. */
  meanL0: number;
  /** Code width (neurons). */
  width: number;
  /** Codes never non-zero on any token. */
  deadCodes: number;
}

export interface DiagnosticsResult {
  layers: LayerDiagnostics[];
  sequences: number;
  tokens: number;
  seqLen: number;
  e: number;
}

/**
 * Run the model on each batch (idx: (B,T) flat) and collect the per-layer measurements.
 * `e` is ε² of E21 (0.01).
 */
export function layerDiagnostics(model: LanguageModel<unknown>, batches: { idx: ArrayLike<number>; B: number; T: number }[], e = 0.01): DiagnosticsResult {
  const c = model.config,
    L = c.nLayer,
    C = c.nEmbd,
    K = c.nHead;
  if (batches.length === 0) throw new Error('layerDiagnostics: no batches');
  // the shared projection U*ᵀ LN₁(z) of MSSA, where the block has one (CRATE; not GPT-2)
  const mssa = model.blocks.every((b) => b.hooks.some((h) => h.name === 'attn.hook_qkv'));
  const T = batches[0].T;
  const perSeq: number[][] = Array.from({ length: L }, () => []);
  const zeros = new Array<number>(L).fill(0),
    totals = new Array<number>(L).fill(0),
    width = new Array<number>(L).fill(0);
  const everActive: Uint8Array[] = [];
  let tokens = 0,
    sequences = 0;
  for (const { idx, B, T: Tb } of batches) {
    if (Tb !== T) throw new Error(`layerDiagnostics: all batches need the same T (${T} vs ${Tb})`);
    const names = Array.from({ length: L }, (_, l) => (mssa ? [`blocks.${l}.attn.hook_qkv`, `blocks.${l}.hook_neurons`] : [`blocks.${l}.hook_neurons`])).flat();
    const { cache } = model.runWithCache(idx, B, Tb, { names, returnLogits: false });
    tokens += B * Tb;
    sequences += B;
    for (let l = 0; l < L; l++) {
      if (mssa) {
        const v = cache.get(`blocks.${l}.attn.hook_qkv`).data;
        perSeq[l].push(...measuredCompression(v, B, Tb, C, K, e).perSequence);
      }
      const code = cache.get(`blocks.${l}.hook_neurons`).data,
        H = code.length / (B * Tb);
      width[l] = H;
      if (!everActive[l]) everActive[l] = new Uint8Array(H);
      const act = everActive[l];
      for (let i = 0; i < code.length; i++) {
        if (code[i] === 0) zeros[l]++;
        else act[i % H] = 1;
      }
      totals[l] += code.length;
    }
  }
  const layers: LayerDiagnostics[] = [];
  for (let l = 0; l < L; l++) {
    const xs = perSeq[l];
    let mean: number | null = null,
      std: number | null = null;
    if (xs.length) {
      mean = xs.reduce((a, b) => a + b, 0) / xs.length;
      const m = mean;
      std = xs.length > 1 ? Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1)) : 0;
    }
    const dead = everActive[l].reduce((s, a) => s + (a ? 0 : 1), 0);
    layers.push({
      layer: l,
      compressionMean: mean,
      compressionStd: std,
      zeroFraction: zeros[l] / totals[l],
      meanL0: (totals[l] - zeros[l]) / tokens,
      width: width[l],
      deadCodes: dead,
    });
  }
  return { layers, sequences, tokens, seqLen: T, e };
}

/** A fixed-width text table of the diagnostics. */
export function formatDiagnostics(r: DiagnosticsResult): string {
  const head = ['layer', 'R^c mean', 'R^c std', 'zero frac', 'mean L0', 'width', 'dead codes'];
  const rows = r.layers.map((d) => [
    String(d.layer),
    d.compressionMean === null ? '-' : d.compressionMean.toFixed(3),
    d.compressionStd === null ? '-' : d.compressionStd.toFixed(3),
    d.zeroFraction.toFixed(4),
    d.meanL0.toFixed(1),
    String(d.width),
    `${d.deadCodes} (${((100 * d.deadCodes) / d.width).toFixed(1)}%)`,
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((s, i) => (i === 0 ? s.padEnd(w[i]) : s.padStart(w[i]))).join('  ');
  return [line(head), line(w.map((n) => '-'.repeat(n))), ...rows.map(line)].join('\n');
}

/**
 * An SVG with two panels over the layer index: compression R^c (mean ± std) and sparsity
 * (fraction of zero code entries, on a fixed [0, 1] axis). Self-contained, no scripts. Axes end
 * on round ticks; the title, panel labels, tick labels and caption each have their own row.
 */
export function diagnosticsSvg(r: DiagnosticsResult, title = 'layer-wise compression and sparsity'): string {
  const W = 760,
    Hh = 340,
    gap = 72;
  // two panels side by side in the plot area, `gap` apart
  const area = plotArea(W, Hh, { left: 64, right: 24, top: 66, bottom: 70 });
  const pad = { l: area.x, t: area.y },
    pw = (area.width - gap) / 2,
    ph = area.height;
  const L = r.layers.length;
  const xAt = (x0: number, l: number) => x0 + (L === 1 ? pw / 2 : 12 + (l / (L - 1)) * (pw - 24));
  const out: string[] = [];
  out.push(...svgOpen(W, Hh, title.length > 90 ? title.slice(0, 89) + '…' : title));
  const fmt = (v: number) => String(+v.toFixed(6)); // round ticks: 0, 0.25, 0.5, 100, 110
  const panel = (x0: number, label: string, ys: (number | null)[], err: (number | null)[], color: string, fixed01: boolean) => {
    const vals = ys.filter((v): v is number => v !== null);
    out.push(`<text x="${x0 + pw / 2}" y="${pad.t - 12}" text-anchor="middle">${esc(label)}</text>`);
    out.push(`<rect x="${x0}" y="${pad.t}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`);
    if (!vals.length) {
      out.push(`<text x="${x0 + pw / 2}" y="${pad.t + ph / 2}" text-anchor="middle" fill="#888">n/a (no such tensor in this architecture)</text>`);
      return;
    }
    let lo: number, hi: number, tks: number[];
    if (fixed01) {
      ({ ticks: tks, lo, hi } = { ticks: [0, 0.25, 0.5, 0.75, 1], lo: 0, hi: 1 });
    } else {
      let a = Math.min(...vals.map((v, i) => v - (err[i] ?? 0))),
        b = Math.max(...vals.map((v, i) => v + (err[i] ?? 0)));
      if (b - a < 1e-9 * Math.max(1, Math.abs(a))) {
        a -= 1;
        b += 1;
      }
      ({ ticks: tks, lo, hi } = roundTicks(a, b, 4));
    }
    const yAt = (v: number) => pad.t + ph - ((v - lo) / (hi - lo)) * ph;
    for (const v of tks) {
      const y = yAt(v);
      out.push(gridLine(x0, x0 + pw, y, '#eee'));
      out.push(gridLine(x0 - 4, x0, y, '#888'));
      out.push(yLabel(x0, y, fmt(v)));
    }
    // layer labels: every layer while they fit (one per 24 px), else every k-th
    const every = Math.max(1, Math.ceil((L * 24) / pw));
    for (let l = 0; l < L; l += every) out.push(`<text x="${xAt(x0, l).toFixed(1)}" y="${pad.t + ph + 16}" text-anchor="middle">${l}</text>`);
    out.push(`<text x="${x0 + pw / 2}" y="${pad.t + ph + 34}" text-anchor="middle">layer</text>`);
    const pts = ys.map((v, l) => (v === null ? null : `${xAt(x0, l).toFixed(1)},${yAt(v).toFixed(1)}`)).filter((p): p is string => p !== null);
    out.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="${color}" stroke-width="2"/>`);
    ys.forEach((v, l) => {
      if (v === null) return;
      const x = xAt(x0, l).toFixed(1),
        e = err[l];
      if (e) out.push(`<line x1="${x}" x2="${x}" y1="${yAt(v - e).toFixed(1)}" y2="${yAt(v + e).toFixed(1)}" stroke="${color}"/>`);
      out.push(`<circle cx="${x}" cy="${yAt(v).toFixed(1)}" r="3.5" fill="${color}"/>`);
    });
  };
  panel(
    pad.l,
    `compression R^c (ε² = ${r.e}), mean ± std`,
    r.layers.map((d) => d.compressionMean),
    r.layers.map((d) => d.compressionStd),
    '#1f77b4',
    false,
  );
  panel(
    pad.l + pw + gap,
    'sparsity: fraction of zero codes',
    r.layers.map((d) => d.zeroFraction),
    r.layers.map(() => null),
    '#d62728',
    true,
  );
  out.push(`<text x="${W / 2}" y="${Hh - 10}" text-anchor="middle" fill="#666">${r.sequences} sequences × ${r.seqLen} tokens</text>`);
  out.push('</svg>');
  return out.join('\n');
}
