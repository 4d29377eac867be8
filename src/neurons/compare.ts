// Comparing collections (crate-ts neurons compare): per-layer scores of several models side by side,
// the paper's table (mean and population variance over layers, spec 6.2), the relative improvement
// over a baseline, and a per-layer chart in the style of the paper's figure (score per layer, one
// line per model). Collections with the same label are seeds of one model: their means are averaged,
// the standard error over neurons is combined, and the seed-to-seed spread (max − min) is reported,
// so a gap is called only when it exceeds both 2 standard errors and the spread.
import type { CollectionScores, LayerScore } from './score.js';
import { SPLIT_LABELS, SPLIT_NAMES, type SplitName } from './scoring.js';
import { escapeXml as esc, gridLine, svgOpen, ticks, yLabel, type Margins } from '../util/svg.js';

export interface ModelGroup {
  label: string;
  runs: CollectionScores[];
}

export interface GroupLayer {
  layer: number;
  /** Mean over seeds of the layer mean (×100), its combined SE, and the seed spread (max − min). */
  score: Record<SplitName, { mean: number | null; se: number | null; spread: number | null }>;
  selectivity: number | null;
  consistency: number | null;
  density: number | null;
  dead: number;
  neurons: number;
}

export interface GroupSummary {
  label: string;
  seeds: number;
  arch: string;
  /** Layers of the model the collections came from (matches a group with its random-init control). */
  nLayer: number;
  /** The random-init control of the same architecture and depth (neurons compare --baseline-init), or null. */
  init?: GroupSummary | null;
  layers: GroupLayer[];
  model: Record<SplitName, { mean: number | null; variance: number | null; se: number | null; spread: number | null }>;
  selectivity: number | null;
  consistency: number | null;
  density: number | null;
}

const avg = (xs: (number | null)[]): number | null => {
  const ok = xs.filter((x): x is number => x !== null && Number.isFinite(x));
  return ok.length === xs.length && ok.length ? ok.reduce((a, b) => a + b, 0) / ok.length : null;
};
const combinedSe = (ses: (number | null)[]): number | null =>
  ses.every((s) => s !== null) && ses.length ? Math.sqrt(ses.reduce((a, s) => a + (s as number) ** 2, 0)) / ses.length : null;
const spreadOf = (xs: (number | null)[]): number | null => {
  if (xs.length < 2 || xs.some((x) => x === null)) return null;
  return Math.max(...(xs as number[])) - Math.min(...(xs as number[]));
};

/** Group runs by label (first-seen order). */
export function groupRuns(runs: { label: string; scores: CollectionScores }[]): ModelGroup[] {
  const groups: ModelGroup[] = [];
  for (const r of runs) {
    const g = groups.find((x) => x.label === r.label);
    if (g) g.runs.push(r.scores);
    else groups.push({ label: r.label, runs: [r.scores] });
  }
  return groups;
}

export function summarizeGroup(g: ModelGroup): GroupSummary {
  const layerIds = [...new Set(g.runs.flatMap((r) => r.layers.map((l) => l.layer)))].sort((a, b) => a - b);
  const layers: GroupLayer[] = layerIds.map((layer) => {
    const rows = g.runs.map((r) => r.layers.find((l) => l.layer === layer)).filter((x): x is LayerScore => x !== undefined);
    const score = {} as GroupLayer['score'];
    for (const s of SPLIT_NAMES)
      score[s] = { mean: avg(rows.map((r) => r[s])), se: combinedSe(rows.map((r) => r.se[s])), spread: spreadOf(rows.map((r) => r[s])) };
    return {
      layer,
      score,
      selectivity: avg(rows.map((r) => r.selectivity)),
      consistency: avg(rows.map((r) => r.consistency)),
      density: avg(rows.map((r) => r.density)),
      dead: rows.reduce((a, r) => a + r.dead, 0) / Math.max(1, rows.length),
      neurons: rows[0]?.neurons ?? 0,
    };
  });
  const model = {} as GroupSummary['model'];
  for (const s of SPLIT_NAMES) {
    const means = g.runs.map((r) => r.model[s].mean);
    model[s] = {
      mean: avg(means),
      variance: avg(g.runs.map((r) => r.model[s].variance)),
      se: combinedSe(g.runs.map((r) => r.model[s].se)),
      spread: spreadOf(means),
    };
  }
  return {
    label: g.label,
    seeds: g.runs.length,
    arch: g.runs[0].manifest.checkpoint.arch,
    nLayer: Number(g.runs[0].manifest.checkpoint.config.nLayer),
    layers,
    model,
    selectivity: avg(g.runs.map((r) => r.model.selectivity)),
    consistency: avg(g.runs.map((r) => r.model.consistency)),
    density: avg(g.runs.map((r) => r.model.density)),
  };
}

/**
 * Attach to every group the random-init control of the same architecture and depth among `inits`
 * (init collections of one architecture and depth are seeds of one control). Returns the groups
 * that found none.
 */
export function attachInit(groups: GroupSummary[], inits: CollectionScores[]): GroupSummary[] {
  const key = (s: CollectionScores) => `${s.manifest.checkpoint.arch} init (L ${s.manifest.checkpoint.config.nLayer})`;
  const controls = groupRuns(inits.map((s) => ({ label: key(s), scores: s }))).map(summarizeGroup);
  const missing: GroupSummary[] = [];
  for (const g of groups) {
    g.init = controls.find((x) => x.arch === g.arch && x.nLayer === g.nLayer) ?? null;
    if (!g.init) missing.push(g);
  }
  return missing;
}

export interface GapVerdict {
  metric: SplitName;
  a: string;
  b: string;
  diff: number | null;
  relative: number | null;
  seDiff: number | null;
  spread: number | null;
  called: boolean;
  why: string;
}

/** (A − B)/B and whether the gap exceeds both 2 SE of the difference and the larger seed spread. */
export function gap(a: GroupSummary, b: GroupSummary, metric: SplitName): GapVerdict {
  const ma = a.model[metric],
    mb = b.model[metric];
  const base = { metric, a: a.label, b: b.label };
  if (ma.mean === null || mb.mean === null) return { ...base, diff: null, relative: null, seDiff: null, spread: null, called: false, why: 'not collected' };
  const diff = ma.mean - mb.mean;
  const relative = mb.mean !== 0 ? diff / Math.abs(mb.mean) : null;
  const seDiff = ma.se !== null && mb.se !== null ? Math.sqrt(ma.se ** 2 + mb.se ** 2) : null;
  const spread = ma.spread !== null && mb.spread !== null ? Math.max(ma.spread, mb.spread) : null;
  let why: string,
    called = false;
  if (seDiff === null) why = 'no standard error';
  else if (Math.abs(diff) <= 2 * seDiff) why = `within 2 SE (${(2 * seDiff).toFixed(2)})`;
  else if (spread === null) why = `beyond 2 SE, but a single seed: spread unknown`;
  else if (Math.abs(diff) <= spread) why = `within the seed spread (${spread.toFixed(2)})`;
  else {
    called = true;
    why = `beyond 2 SE (${(2 * seDiff).toFixed(2)}) and the seed spread (${spread.toFixed(2)})`;
  }
  return { ...base, diff, relative, seDiff, spread, called, why };
}

const f = (v: number | null | undefined, d = 2): string => (v === null || v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(d));

/** " [init 60.20]": the random-init control's mean beside a score (per layer, or the model mean). */
function initCell(g: GroupSummary, m: SplitName, layer?: number): string {
  if (!g.init) return '';
  const v = layer === undefined ? g.init.model[m].mean : (g.init.layers.find((l) => l.layer === layer)?.score[m].mean ?? null);
  return ` [init ${f(v)}]`;
}
const pad = (s: string, n: number) => s.padEnd(n);

/** The text report: per-layer table, model table (mean, variance over layers), relative improvement and gap calls. */
export function renderComparison(groups: GroupSummary[], baseline: number): string {
  const metrics = SPLIT_NAMES.filter((s) => groups.some((g) => g.model[s].mean !== null || g.layers.some((l) => l.score[s].mean !== null)));
  const w = Math.max(12, ...groups.map((g) => g.label.length + 2));
  const out: string[] = [];
  out.push('Per-layer scores (token-lookup simulator, mean over neurons ×100 ± SE; seeds averaged):');
  const withInit = groups.some((g) => g.init);
  const cellW = withInit ? 29 : 16;
  out.push(
    pad('model', w) +
      'layer  ' +
      metrics.map((m) => pad(SPLIT_LABELS[m] + (withInit ? ' [random init]' : ''), cellW)).join('') +
      'select.  consist.  density  dead',
  );
  for (const g of groups) {
    for (const l of g.layers) {
      out.push(
        pad(g.label, w) +
          pad(String(l.layer), 7) +
          metrics.map((m) => pad(`${f(l.score[m].mean)} ± ${f(l.score[m].se)}${initCell(g, m, l.layer)}`, cellW)).join('') +
          pad(f(l.selectivity, 3), 9) +
          pad(f(l.consistency, 3), 10) +
          pad(f(l.density, 3), 9) +
          f(l.dead, 1),
      );
    }
  }
  out.push('');
  out.push("Model means over layers (the paper's table; variance = population variance of the layer means; spread = seed max − min):");
  const modelW = withInit ? 55 : 42;
  out.push(
    pad('model', w) + 'seeds  ' + metrics.map((m) => pad(`${SPLIT_LABELS[m]} mean (var) ± SE [spread]${withInit ? ' [random init]' : ''}`, modelW)).join(''),
  );
  for (const g of groups) {
    out.push(
      pad(g.label, w) +
        pad(String(g.seeds), 7) +
        metrics
          .map((m) => {
            const x = g.model[m];
            return pad(`${f(x.mean)} (${f(x.variance)}) ± ${f(x.se)} [${f(x.spread)}]${initCell(g, m)}`, modelW);
          })
          .join(''),
    );
  }
  if (withInit) {
    out.push('');
    out.push('Above the random-init control of the same architecture and depth (what training added), and whether the gap is called:');
    for (const g of groups) {
      if (!g.init) {
        out.push(`  ${pad(g.label, w)} no random-init control of ${g.arch} with ${g.nLayer} layer${g.nLayer === 1 ? '' : 's'} was given (--baseline-init)`);
        continue;
      }
      for (const m of metrics) {
        const v = gap(g, g.init, m);
        out.push(
          `  ${pad(g.label, w)} ${pad(SPLIT_LABELS[m], 12)} ${v.diff === null ? '-' : `${v.diff >= 0 ? '+' : ''}${v.diff.toFixed(2)} points`} over ${g.init.label}  ${v.called ? 'CALLED' : 'not called'}: ${v.why}`,
        );
      }
    }
  }
  const base = groups[baseline];
  if (groups.length > 1 && base) {
    out.push('');
    out.push(`Relative improvement over ${base.label} ((A − B)/|B|), and whether the gap is called:`);
    for (const [i, g] of groups.entries()) {
      if (i === baseline) continue;
      for (const m of metrics) {
        const v = gap(g, base, m);
        out.push(
          `  ${pad(g.label, w)} ${pad(SPLIT_LABELS[m], 12)} ${v.diff === null ? '-' : `${v.diff >= 0 ? '+' : ''}${v.diff.toFixed(2)} points`}  ${v.relative === null ? '' : `(${v.relative >= 0 ? '+' : ''}${(100 * v.relative).toFixed(1)}%)`}  ${v.called ? 'CALLED' : 'not called'}: ${v.why}`,
        );
      }
    }
  }
  return out.join('\n');
}

const PALETTE = ['#d62728', '#1f77b4', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

/** GPT-2 lines dashed; random-init controls (a label with "init") faded. */
const style = (g: GroupSummary): string => (g.arch === 'gpt2' ? ' stroke-dasharray="6,3"' : '') + (/init/i.test(g.label) ? ' opacity="0.5"' : '');

/**
 * The chart: one panel per metric (score ×100 against layer), one line per model with ±1 SE bars,
 * the legend in its own column to the right so it never covers a line.
 */
export function comparisonSvg(groups: GroupSummary[], title: string): string {
  const metrics = SPLIT_NAMES.filter((s) => groups.some((g) => g.layers.some((l) => l.score[s].mean !== null)));
  const pw = 300,
    ph = 260,
    gapX = 70;
  // the right margin is the legend's column, sized to the longest label
  const m: Margins = { left: 58, right: 0, top: 56, bottom: 52 };
  const { left: ml, top: mt, bottom: mb } = m;
  const legendW = 40 + 7.5 * Math.max(...groups.map((g) => g.label.length + (g.seeds > 1 ? 10 : 0)), 6);
  const W = ml + metrics.length * (pw + gapX) + legendW,
    H = mt + ph + mb;
  const allLayers = [...new Set(groups.flatMap((g) => g.layers.map((l) => l.layer)))].sort((a, b) => a - b);
  const xmin = Math.min(...allLayers),
    xmax = Math.max(...allLayers);
  const out: string[] = [];
  out.push(...svgOpen(W, H, title, { titleX: (W - legendW) / 2, titleSize: 15 }));
  metrics.forEach((m, k) => {
    const x0 = ml + k * (pw + gapX);
    const vals = groups.flatMap((g) =>
      [...g.layers, ...(g.init?.layers ?? [])].flatMap((l) => {
        const s = l.score[m];
        return s.mean === null ? [] : [s.mean - (s.se ?? 0), s.mean + (s.se ?? 0)];
      }),
    );
    let ymin = Math.min(0, ...vals),
      ymax = Math.max(...vals, 1);
    const padY = 0.06 * (ymax - ymin);
    ymax += padY;
    if (ymin < 0) ymin -= padY;
    const X = (l: number) => x0 + (xmax === xmin ? pw / 2 : 20 + ((l - xmin) / (xmax - xmin)) * (pw - 40));
    const Y = (v: number) => mt + (1 - (v - ymin) / (ymax - ymin)) * ph;
    out.push(`<text x="${x0 + pw / 2}" y="${mt - 10}" text-anchor="middle" font-size="13" font-weight="bold">${esc(SPLIT_LABELS[m])}</text>`);
    for (const t of ticks(ymin, ymax, 6)) {
      out.push(gridLine(x0, x0 + pw, Y(t), t === 0 ? '#999' : '#e5e5e5'));
      out.push(yLabel(x0, Y(t), String(+t.toPrecision(4))));
    }
    for (const l of allLayers) out.push(`<text x="${X(l).toFixed(1)}" y="${mt + ph + 16}" text-anchor="middle">${l}</text>`);
    out.push(`<rect x="${x0}" y="${mt}" width="${pw}" height="${ph}" fill="none" stroke="#444"/>`);
    out.push(`<text x="${x0 + pw / 2}" y="${mt + ph + 36}" text-anchor="middle">layer</text>`);
    out.push(`<text transform="translate(${x0 - 42},${mt + ph / 2}) rotate(-90)" text-anchor="middle">score × 100</text>`);
    groups.forEach((g, gi) => {
      const c = PALETTE[gi % PALETTE.length];
      const ipts = g.init ? g.init.layers.filter((l) => l.score[m].mean !== null) : [];
      if (ipts.length > 0)
        out.push(
          `<path class="init" d="${ipts.map((l, i) => `${i ? 'L' : 'M'}${X(l.layer).toFixed(1)},${Y(l.score[m].mean as number).toFixed(1)}`).join(' ')}" fill="none" stroke="${c}" stroke-width="1.5" stroke-dasharray="2,3" opacity="0.7"/>`,
        );
      const dash = style(g);
      const pts = g.layers.filter((l) => l.score[m].mean !== null);
      if (pts.length === 0) return;
      out.push(
        `<path d="${pts.map((l, i) => `${i ? 'L' : 'M'}${X(l.layer).toFixed(1)},${Y(l.score[m].mean as number).toFixed(1)}`).join(' ')}" fill="none" stroke="${c}" stroke-width="2"${dash}/>`,
      );
      for (const l of pts) {
        const s = l.score[m],
          cx = X(l.layer),
          cy = Y(s.mean as number);
        if (s.se !== null)
          out.push(
            `<line x1="${cx.toFixed(1)}" x2="${cx.toFixed(1)}" y1="${Y((s.mean as number) - s.se).toFixed(1)}" y2="${Y((s.mean as number) + s.se).toFixed(1)}" stroke="${c}"/>`,
          );
        out.push(`<circle cx="${cx.toFixed(1)}" cy="${cy.toFixed(1)}" r="3.5" fill="${c}"${/init/i.test(g.label) ? ' opacity="0.5"' : ''}/>`);
      }
    });
  });
  const lx = ml + metrics.length * (pw + gapX) - gapX + 24;
  out.push(`<text x="${lx}" y="${mt}" font-weight="bold">model</text>`);
  groups.forEach((g, gi) => {
    const c = PALETTE[gi % PALETTE.length],
      y = mt + 20 + gi * 20;
    out.push(`<line x1="${lx}" x2="${lx + 24}" y1="${y - 4}" y2="${y - 4}" stroke="${c}" stroke-width="2"${style(g)}/>`);
    out.push(`<text x="${lx + 30}" y="${y}">${esc(g.label)}${g.seeds > 1 ? ` (${g.seeds} seeds)` : ''}</text>`);
  });
  const inits = groups.some((g) => g.init);
  out.push(`<text x="${lx}" y="${mt + 30 + groups.length * 20}" fill="#666" font-size="11">bars: ±1 SE over neurons</text>`);
  if (inits) out.push(`<text x="${lx}" y="${mt + 46 + groups.length * 20}" fill="#666" font-size="11">dotted, faint: each model's random init</text>`);
  out.push('</svg>');
  return out.join('\n');
}
