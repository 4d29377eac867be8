// The charts: loss.svg (log y axis, early steps clipped off the top and said so, the legend in its
// own band naming every line, the raw loss included) and verify --checkpoint --svg (round ticks, a
// [0, 1] sparsity axis at 0, 0.25, ..., 1, a short title, no overlapping labels). The PNGs looked at
// while making them were rendered with rsvg-convert from a 1500-step cpu run.
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { lossChartSvg } from '../src/train/svg.js';
import { escapeXml, logTicks, roundTicks, ticks } from '../src/util/svg.js';
import { diagnosticsSvg, type DiagnosticsResult } from '../src/verify/diagnostics.js';

/** <text> elements: x, y, anchor and content. */
function texts(svg: string): { x: number; y: number; anchor: string; s: string }[] {
  return [...svg.matchAll(/<text x="([\d.-]+)" y="([\d.-]+)"(?: text-anchor="(\w+)")?[^>]*>([^<]*)<\/text>/g)].map((m) => ({
    x: +m[1],
    y: +m[2],
    anchor: m[3] ?? 'start',
    s: m[4],
  }));
}

/** Horizontal extent of a 12 px label (6.6 px per character on average). */
function extent(t: { x: number; anchor: string; s: string }): [number, number] {
  const w = t.s.length * 6.6;
  return t.anchor === 'middle' ? [t.x - w / 2, t.x + w / 2] : t.anchor === 'end' ? [t.x - w, t.x] : [t.x, t.x + w];
}

function overlaps(svg: string): string[] {
  const ts = texts(svg),
    out: string[] = [];
  for (let i = 0; i < ts.length; i++) {
    for (let j = i + 1; j < ts.length; j++) {
      const a = ts[i],
        b = ts[j],
        [a0, a1] = extent(a),
        [b0, b1] = extent(b);
      if (Math.abs(a.y - b.y) < 12 && a0 < b1 && b0 < a1) out.push(`"${a.s}" and "${b.s}"`);
    }
  }
  return out;
}

/** A run like the default one: from ln 256 down fast, then slowly from 2.6 to 2.2. */
function run(n: number) {
  const train = Array.from({ length: n }, (_, i) => ({
    step: i + 1,
    loss: 2.2 + 0.4 * Math.exp(-i / (n / 3)) + 3 * Math.exp(-i / (n / 40)) + 0.03 * Math.sin(i),
  }));
  const val = Array.from({ length: 6 }, (_, k) => ({ step: ((k + 1) * n) / 6, loss: 2.18 + 0.3 * Math.exp(-k / 2) }));
  return { title: 'crate char-tiny on moby-dick (byte tokens), cpu backend', train, val, refs: [{ label: 'unigram entropy (val)', value: 3.16 }] };
}

const plotTop = (svg: string) => Number(/<rect x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="[\d.]+" fill="none" stroke="#444"\/>/.exec(svg)![1]);

describe('loss.svg', () => {
  it('names every line in a legend above the plot, the raw per-step loss included', () => {
    const svg = lossChartSvg(run(1500));
    const top = plotTop(svg);
    const legend = texts(svg)
      .filter((t) => t.y < top && t.y > 30)
      .map((t) => t.s);
    expect(legend).toEqual([
      'train loss per step',
      'train, moving average (30 steps)',
      'validation',
      'unigram entropy (val) 3.16',
      'steps 1–75 run above the top (loss up to 5.6)',
    ]);
    expect(overlaps(svg)).toEqual([]);
    expect(svg).not.toMatch(/NaN|Infinity/);
  });

  it('the axis is logarithmic and its top is the run after the first 5% of steps', () => {
    const svg = lossChartSvg({
      title: 't',
      train: [
        { step: 1, loss: 1 },
        { step: 2, loss: 2 },
        { step: 3, loss: 4 },
      ],
      val: [],
    });
    const ys = /<path d="M[\d.]+,([\d.]+) L[\d.]+,([\d.]+) L[\d.]+,([\d.]+)"/.exec(svg)!.slice(1, 4).map(Number);
    expect(Math.abs(ys[0] - ys[1] - (ys[1] - ys[2]))).toBeLessThan(0.15); // equal ratios, equal distances
    const full = lossChartSvg(run(1500));
    const labels = texts(full)
      .filter((t) => t.anchor === 'end' && /^[\d.]+$/.test(t.s))
      .map((t) => +t.s);
    expect(Math.max(...labels)).toBeLessThan(3.5); // 5.6 is off the top: the plot spends its height on 2.2–3.2
    expect(Math.min(...labels)).toBeGreaterThan(2);
    expect(full).toContain('<g clip-path="url(#plot)">');
  });

  it('a run without an early spike is not clipped; ticks are round', () => {
    const svg = lossChartSvg({ title: 't', train: Array.from({ length: 100 }, (_, i) => ({ step: i + 1, loss: 3 - i / 100 })), val: [] });
    expect(svg).not.toContain('run above the top');
    expect(logTicks(2.1, 5.7)).toEqual([2.5, 3, 3.5, 4, 4.5, 5, 5.5]);
    expect(logTicks(0.01, 10)).toEqual([0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10]);
  });
});

describe('verify --checkpoint --svg', () => {
  const result = (L: number, arch: 'crate' | 'gpt2' = 'crate'): DiagnosticsResult => ({
    layers: Array.from({ length: L }, (_, l) => ({
      layer: l,
      compressionMean: arch === 'gpt2' ? null : 117 - (23 * l) / Math.max(1, L - 1),
      compressionStd: arch === 'gpt2' ? null : 1.5,
      zeroFraction: 0.65 + (0.13 * l) / Math.max(1, L - 1),
      meanL0: 80,
      width: 256,
      deadCodes: 0,
    })),
    sequences: 16,
    tokens: 1024,
    seqLen: 64,
    e: 0.01,
  });

  it('the sparsity axis is [0, 1] at 0, 0.25, 0.5, 0.75, 1; the R^c axis ends on round ticks', () => {
    const svg = diagnosticsSvg(result(2), 'crate: 2 layers, d 64 (run/model.safetensors)');
    const left = texts(svg)
      .filter((t) => t.anchor === 'end')
      .map((t) => t.s);
    expect(left.slice(-5)).toEqual(['0', '0.25', '0.5', '0.75', '1']);
    const rc = left.slice(0, -5).map(Number);
    expect(rc).toEqual([90, 100, 110, 120]);
  });

  it('no labels overlap, also with 12 layers, and a GPT-2 panel says n/a', () => {
    for (const r of [result(2), result(12), result(12, 'gpt2')])
      expect(overlaps(diagnosticsSvg(r, 'crate: 12 layers, d 768 (run/model.safetensors)'))).toEqual([]);
    expect(diagnosticsSvg(result(3, 'gpt2'))).toContain('n/a (no such tensor in this architecture)');
  });

  it('a long title is cut short', () => {
    const svg = diagnosticsSvg(result(2), 'x'.repeat(300));
    expect(texts(svg)[0].s.length).toBeLessThanOrEqual(90);
  });
});

// In a mutation-testing sandbox (npm run mutate) StrykerJS rewrites src/ (mutant switches, a
// `// @ts-nocheck` header), so the generated copy cannot equal it there; everywhere else this runs.
const instrumented = process.env.STRYKER_MUTATOR_WORKER !== undefined;

describe('the shared SVG pieces (src/util/svg.ts)', () => {
  it.skipIf(instrumented)("the viewer's front end compiles the same functions: src/viewer/web/svg.generated.ts is up to date (npm run gen:web-svg)", () => {
    const r = spawnSync(process.execPath, [path.join(import.meta.dirname, '..', 'scripts', 'gen-web-svg.mjs'), '--check'], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('escapes the XML specials in text and attributes, and nothing else', () => {
    expect(escapeXml(`a<b & "c" > d's`)).toBe(`a&lt;b &amp; &quot;c&quot; &gt; d's`);
    expect(escapeXml('&amp;')).toBe('&amp;amp;');
  });

  it('ticks lie inside the range at a step of 1, 2, 2.5 or 5 x 10^k; roundTicks widen the axis to the ticks outside it', () => {
    expect(ticks(0, 10, 5)).toEqual([0, 2, 4, 6, 8, 10]);
    expect(ticks(0.13, 0.87, 4)).toEqual([0.2, 0.4, 0.6, 0.8]);
    expect(ticks(0, 10, 4)).toEqual([0, 2.5, 5, 7.5, 10]);
    expect(ticks(3, 3, 5)).toEqual([3]);
    expect(roundTicks(0.13, 0.87, 4)).toEqual({ ticks: [0, 0.2, 0.4, 0.6, 0.8, 1], lo: 0, hi: 1 });
    expect(roundTicks(101.3, 117.9, 4)).toEqual({ ticks: [100, 105, 110, 115, 120], lo: 100, hi: 120 });
  });
});
