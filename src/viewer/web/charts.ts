/* eslint-disable @typescript-eslint/no-unused-vars -- browser scripts share one global scope: the other files use these names */
// SVG charts drawn by hand: the per-layer score chart of the overview and a neuron's histogram.

const PALETTE = ['#d9480f', '#1c7ed6', '#2b8a3e', '#862e9c', '#e67700', '#0b7285', '#c2255c', '#5f3dc4'];

interface Series {
  name: string;
  color: string;
  dash: string;
  points: [number, number | null][];
}

/** Nice round ticks covering [lo, hi], the axis ending on them (roundTicks of src/util/svg.ts, via svg.generated.ts). */
function axisTicks(lo: number, hi: number, n = 5): number[] {
  return roundTicks(lo, hi > lo ? hi : lo + 1, n).ticks;
}

/**
 * The per-layer score chart: x = layer, y = mean score × 100, one line per collection and metric
 * (token-lookup TaR solid, Random-only dashed, LLM scores dotted).
 */
function scoreChart(cols: CollectionSummary[]): HTMLElement {
  const series: Series[] = [];
  cols.forEach((c, ci) => {
    const color = PALETTE[ci % PALETTE.length];
    const add = (name: string, dash: string, get: (l: LayerSummary) => number | null | undefined) => {
      const pts: [number, number | null][] = c.layers.map((l) => [l.layer, get(l) ?? null]);
      if (pts.some(([, y]) => y !== null)) series.push({ name: `${c.label}: ${name}`, color, dash, points: pts });
    };
    add('lookup TaR', '', (l) => l.tar);
    add('lookup Random-only', '6 4', (l) => l.randomOnly);
    add('lookup Anthropic', '2 2 8 2', (l) => l.anthropic);
    // the random-init control (--baseline-init): the level every lookup score is read against
    add('random init, lookup TaR', '1 3', (l) => l.init?.tar);
    add('random init, lookup Random-only', '1 6', (l) => l.init?.randomOnly);
    for (const set of c.llmSets) {
      add(`LLM TaR (${set})`, '1 4', (l) => l.llm[set]?.tar);
      add(`LLM Random-only (${set})`, '1 8', (l) => l.llm[set]?.randomOnly);
    }
  });
  const W = 720,
    H = 300;
  const area = plotArea(W, H, { left: 52, right: 16, top: 16, bottom: 40 });
  const ml = area.x,
    mt = area.y,
    mr = W - area.x - area.width,
    mb = H - area.y - area.height;
  const xs = series.flatMap((sr) => sr.points.map(([x]) => x));
  const ys = series.flatMap((sr) => sr.points.map(([, y]) => y)).filter((y): y is number => y !== null);
  const x0 = Math.min(...xs, 0),
    x1 = Math.max(...xs, 1);
  const yt = axisTicks(Math.min(0, ...ys), Math.max(10, ...ys));
  const y0 = yt[0],
    y1 = yt[yt.length - 1];
  const X = (x: number) => ml + ((x - x0) / Math.max(1e-9, x1 - x0)) * (W - ml - mr);
  const Y = (y: number) => mt + (1 - (y - y0) / Math.max(1e-9, y1 - y0)) * (H - mt - mb);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: 'chart score-chart', role: 'img', 'aria-label': 'mean score per layer' });
  for (const t of yt)
    svg.appendChild(
      s(
        'g',
        {},
        s('line', { x1: ml, x2: W - mr, y1: Y(t), y2: Y(t), class: 'grid' }),
        s('text', { x: ml - 6, y: Y(t) + 4, 'text-anchor': 'end', class: 'tick' }, String(t)),
      ),
    );
  for (let l = x0; l <= x1; l++) svg.appendChild(s('text', { x: X(l), y: H - mb + 16, 'text-anchor': 'middle', class: 'tick' }, String(l)));
  svg.appendChild(s('text', { x: (ml + W - mr) / 2, y: H - 6, 'text-anchor': 'middle', class: 'axis' }, 'layer'));
  svg.appendChild(
    s('text', { x: 14, y: (mt + H - mb) / 2, 'text-anchor': 'middle', class: 'axis', transform: `rotate(-90 14 ${(mt + H - mb) / 2})` }, 'mean score × 100'),
  );
  for (const sr of series) {
    const pts = sr.points.filter((p): p is [number, number] => p[1] !== null);
    if (pts.length > 1)
      svg.appendChild(
        s('polyline', {
          points: pts.map(([x, y]) => `${X(x)},${Y(y)}`).join(' '),
          fill: 'none',
          stroke: sr.color,
          'stroke-width': 2,
          'stroke-dasharray': sr.dash || null,
          class: 'series',
        }),
      );
    for (const [x, y] of pts)
      svg.appendChild(
        s(
          'circle',
          { cx: X(x), cy: Y(y), r: 3.5, fill: sr.color, class: 'point', 'data-layer': x, 'data-value': y },
          s('title', {}, `${sr.name}, layer ${x}: ${fmt(y, 4)}`),
        ),
      );
  }
  const legend = h(
    'div',
    { class: 'legend' },
    ...series.map((sr) =>
      h(
        'span',
        { class: 'legend-item' },
        s(
          'svg',
          { width: 28, height: 10 },
          s('line', { x1: 0, x2: 28, y1: 5, y2: 5, stroke: sr.color, 'stroke-width': 2, 'stroke-dasharray': sr.dash || null }),
        ),
        ' ',
        sr.name,
      ),
    ),
  );
  return h('figure', { class: 'chart-box' }, svg, legend);
}

/** Histogram of a neuron's activations over the random records' tokens. */
function histogramChart(hd: NeuronData['histogram'], scale: number): HTMLElement {
  if (hd.n === 0) return h('p', { class: 'muted' }, 'no random records');
  const W = 520,
    H = 180,
    ml = 44,
    mr = 8,
    mt = 8,
    mb = 34;
  const bars = [
    ...(hd.zeros !== null ? [{ label: '≤ 0', lo: 0, hi: 0, n: hd.zeros }] : []),
    ...hd.counts.map((n, k) => ({ label: `${fmt(hd.edges[k])} – ${fmt(hd.edges[k + 1])}`, lo: hd.edges[k], hi: hd.edges[k + 1], n })),
  ];
  // log scale (counts span orders of magnitude: most tokens sit at zero)
  const maxN = Math.max(1, ...bars.map((b) => b.n));
  const Y = (n: number) => (n <= 0 ? 0 : (Math.log10(n + 1) / Math.log10(maxN + 1)) * (H - mt - mb));
  const bw = (W - ml - mr) / bars.length;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: 'chart histogram' });
  bars.forEach((b, k) => {
    const hh = Y(b.n),
      t = scale > 0 ? Math.min(1, Math.abs(b.hi) / scale) : 0;
    svg.appendChild(
      s(
        'rect',
        {
          x: ml + k * bw + 1,
          y: H - mb - hh,
          width: Math.max(1, bw - 2),
          height: hh,
          fill: k === 0 && hd.zeros !== null ? '#adb5bd' : heatColor(t),
          stroke: '#999',
          'stroke-width': 0.5,
          class: 'bar',
          'data-count': b.n,
        },
        s('title', {}, `${b.label}: ${b.n} of ${hd.n} tokens`),
      ),
    );
  });
  svg.appendChild(s('line', { x1: ml, x2: W - mr, y1: H - mb, y2: H - mb, stroke: '#555' }));
  svg.appendChild(s('text', { x: ml, y: H - mb + 14, class: 'tick' }, hd.zeros !== null ? '≤ 0' : fmt(hd.edges[0])));
  svg.appendChild(s('text', { x: W - mr, y: H - mb + 14, 'text-anchor': 'end', class: 'tick' }, fmt(hd.edges[hd.edges.length - 1])));
  svg.appendChild(
    s('text', { x: (ml + W) / 2, y: H - 4, 'text-anchor': 'middle', class: 'axis' }, `activation (${hd.n} tokens of the random records; log-scaled counts)`),
  );
  svg.appendChild(s('text', { x: ml - 4, y: mt + 10, 'text-anchor': 'end', class: 'tick' }, String(maxN)));
  return h('figure', { class: 'chart-box' }, svg);
}
