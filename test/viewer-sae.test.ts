// The viewer on a collection of SAE features (neurons collect --sae) and on detection / fuzzing
// scores (neurons score --scorer): the data objects against hand computations from the files (SAE
// weights read with loadSae, the model's own hooks), then the pages in Debian's chromium (an export
// from file:// and the live steering box). Screenshots go to $CRATE_TS_VIEWER_SHOTS when set.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { ReferenceBackend } from '../src/backend/reference.js';
import type { Backend } from '../src/backend/types.js';
import { loadCheckpoint, modelFromCheckpoint } from '../src/checkpoint/checkpoint.js';
import type { LanguageModel } from '../src/model/lm.js';
import { collect } from '../src/neurons/collect.js';
import { classifyCollection } from '../src/neurons/classify-run.js';
import { readLayer, readManifest } from '../src/neurons/format.js';
import { loadSae, writeWeights } from '../src/sae/format.js';
import { trainSae } from '../src/sae/train.js';
import { nextToken, softmax } from '../src/steer/steer.js';
import { ViewerData, STEER_FACTOR } from '../src/viewer/data.js';
import { exportSite } from '../src/viewer/site.js';
import { startServer } from '../src/viewer/server.js';
import { buildAppJs, makeCheckpoint, T, D } from './viewer-fixture.js';
import { capture } from './helpers/capture.js';

const ref = new ReferenceBackend() as Backend<unknown>;
const LAYER = 1;
const K = 2;
const TEXT = 'It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness, it was the epoch of belief. ';

let dir = '',
  ck = '',
  saeDir = '',
  coll = '',
  appJs = '',
  data: ViewerData;

type Obj = Record<string, any>;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-viewer-sae-'));
  const text = path.join(dir, 'text.txt');
  fs.writeFileSync(text, TEXT.repeat(12));
  ck = makeCheckpoint(dir, 'crate', 5);
  saeDir = path.join(dir, 'sae');
  // top-2 of 128 features: sparse enough that most 16-token records are silent (detection needs both classes)
  await trainSae({
    checkpoint: ck,
    layer: LAYER,
    expansion: 2,
    arch: 'topk',
    k: K,
    tokens: 8 * 128,
    batchTokens: 128,
    bufferTokens: 256,
    data: text,
    out: saeDir,
    backend: ref,
  });
  coll = path.join(dir, 'coll-sae');
  await collect({ checkpoint: ck, sae: saeDir, data: text, tokens: 48 * T, variant: 'both', seed: 3, backend: ref, batch: 8, out: coll, cacheDir: null });
  await classifyCollection({ dir: coll, kind: 'detection', judge: 'lookup' });
  await classifyCollection({ dir: coll, kind: 'fuzzing', judge: 'lookup' });
  appJs = buildAppJs();
  data = await ViewerData.open([coll], { backend: ref, live: true });
}, 300_000);

afterAll(() => {
  data?.free();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** The SAE's features of an (N, D) block of the hook, by hand in float64 from the weights: relu of the top K pre-activations (ties to the lower index). */
function features(x: Float64Array, N: number): Float64Array {
  const { weights: w } = loadSae(saeDir);
  const h = new Float64Array(N * w.S);
  for (let n = 0; n < N; n++) {
    const pre = Array.from({ length: w.S }, (_, j) => {
      let s = w.benc[j];
      for (let i = 0; i < w.D; i++) s += (x[n * w.D + i] - w.bdec[i]) * w.Wenc[i * w.S + j];
      return s;
    });
    const keep = pre
      .map((v, j) => ({ v, j }))
      .sort((a, b) => b.v - a.v || a.j - b.j)
      .slice(0, K);
    for (const { v, j } of keep) h[n * w.S + j] = Math.max(0, v);
  }
  return h;
}

const hookOf = (model: LanguageModel<unknown>, ids: number[]) => {
  const a = model.runWithCache(ids, 1, ids.length, { names: [`blocks.${LAYER}.hook_neurons`] }).cache.get(`blocks.${LAYER}.hook_neurons`);
  const W = a.shape[2];
  return { x: Float64Array.from({ length: ids.length * W }, (_, e) => a.get(0, Math.floor(e / W), e % W)), W };
};

const classifierLines = (name: string) =>
  fs
    .readFileSync(path.join(coll, name, `layer-${LAYER}.jsonl`), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Obj);

describe('a collection of SAE features in the viewer', () => {
  it('the collection records its SAE; the index names it (no path) and the model note says it is open', () => {
    const m = readManifest(coll);
    expect(m.sae).toMatchObject({ path: path.resolve(saeDir), hook: `blocks.${LAYER}.hook_neurons`, d_in: 4 * D, d_sae: 8 * D });
    const c = (data.index() as Obj).collections[0];
    expect(c.sae).toEqual({ name: 'sae', sha256: m.sae!.sha256, hook: `blocks.${LAYER}.hook_neurons`, d_in: 4 * D, d_sae: 8 * D, available: true });
    expect(c.model.note).toMatch(/SAE sae on blocks\.1\.hook_neurons \(64 → 128 features\)/);
    expect(JSON.stringify(data.index())).not.toContain(dir);
  });

  it('related tokens: the input side encodes each one-token context with the SAE; the logit effects follow W_dec[j] through the block', () => {
    const model = modelFromCheckpoint(loadCheckpoint(ck), new ReferenceBackend()) as LanguageModel<unknown>;
    const { weights: w } = loadSae(saeDir);
    const m = readManifest(coll),
      ld = readLayer(coll, m, LAYER);
    const j = ld.stats.findIndex((s) => (s.max ?? 0) > 0);
    expect(j).toBeGreaterThanOrEqual(0);
    const n = data.neuron(0, LAYER, j) as Obj;
    // input side: h_j of every byte alone at position 0, by hand; the page's list is the top of it
    const hj = Array.from({ length: 256 }, (_, t) => features(hookOf(model, [t]).x, 1)[j]);
    const order = hj
      .map((v, t) => ({ t, v }))
      .filter((x) => x.v > 0)
      .sort((a, b) => b.v - a.v || a.t - b.t);
    expect(n.related.input.length).toBeGreaterThan(0);
    expect(n.related.input.map((x: Obj) => x.id)).toEqual(order.slice(0, n.related.input.length).map((x) => x.t));
    n.related.input.forEach((x: Obj) => expect(x.value).toBeCloseTo(hj[x.id], 3));
    // output side: the feature's direction in the residual stream, measured through the model: adding
    // ε W_dec[j] to the code moves the block's output (CRATE: D a2, no skip around ISTA) by ε times it
    const ids = [104, 105];
    const base = model.runWithCache(ids, 1, 2, { names: [`blocks.${LAYER}.hook_resid_post`] }).cache.get(`blocks.${LAYER}.hook_resid_post`);
    const eps = 1e-3,
      W = w.D;
    let v = new Float64Array(0);
    model.runWithHooks(ids, 1, 2, [
      [
        `blocks.${LAYER}.hook_neurons`,
        (act) => {
          for (let i = 0; i < W; i++) act.set(0, 1, i, act.get(0, 1, i) + eps * w.Wdec[j * W + i]);
        },
      ],
      [
        `blocks.${LAYER}.hook_resid_post`,
        (act) => {
          v = Float64Array.from({ length: act.shape[2] }, (_, e) => (act.get(0, 1, e) - base.get(0, 1, e)) / eps);
        },
      ],
    ]);
    expect(v.length).toBe(model.config.nEmbd);
    const p = model.getParams();
    const get = (name: string) => {
      const s = model.spec(name);
      return p.subarray(s.offset, s.offset + s.size);
    };
    const d = model.config.nEmbd;
    const mu = v.reduce((a, b) => a + b, 0) / d,
      sd = Math.sqrt(v.reduce((a, b) => a + (b - mu) ** 2, 0) / d + model.config.lnEps);
    const lw = get('transformer.ln_f.weight'),
      wte = get('transformer.wte.weight');
    const logit = (t: number) => {
      let s = 0;
      for (let e = 0; e < d; e++) s += (wte[t * d + e] * lw[e] * (v[e] - mu)) / sd;
      return s;
    };
    const byLogit = Array.from({ length: 256 }, (_, t) => t).sort((a, b) => logit(b) - logit(a));
    expect(n.related.up.map((x: Obj) => x.id)).toEqual(byLogit.slice(0, 12));
    expect(n.related.down.map((x: Obj) => x.id)).toEqual(byLogit.slice(-12).reverse());
    n.related.up.forEach((x: Obj) => expect(x.value).toBeCloseTo(logit(x.id), 3));
    model.free();
  });

  it('steering clamps the feature and decodes with the SAE keeping its error term: the hand hook x + (v − h_j)·W_dec[j] gives the same distribution', () => {
    const model = modelFromCheckpoint(loadCheckpoint(ck), new ReferenceBackend()) as LanguageModel<unknown>;
    const { weights: w } = loadSae(saeDir);
    const ld = readLayer(coll, readManifest(coll), LAYER);
    const j = ld.stats.findIndex((s) => (s.max ?? 0) > 0);
    const ids = Array.from(Buffer.from('1 2 3 4 5'));
    const hand = (value: number, prompt = ids) =>
      nextToken(model, prompt, {
        [`blocks.${LAYER}.hook_neurons`]: (act) => {
          const [, Tn, W] = act.shape;
          const x = Float64Array.from({ length: Tn * W }, (_, e) => act.get(0, Math.floor(e / W), e % W));
          const h = features(x, Tn);
          for (let t = 0; t < Tn; t++) for (let i = 0; i < W; i++) act.set(0, t, i, x[t * W + i] + (value - h[t * w.S + j]) * w.Wdec[j * W + i]);
        },
      });
    const before = nextToken(model, ids);
    const n = data.neuron(0, LAYER, j) as Obj;
    const value = STEER_FACTOR * (ld.stats[j].max as number);
    expect(n.steer.value).toBeCloseTo(value, 4);
    expect(n.target).toMatch(new RegExp(`^feature ${j} of the SAE on blocks\\.1\\.hook_neurons \\(decoded with the SAE, keeping its error term`));
    const after = hand(value);
    const delta = Array.from({ length: 256 }, (_, t) => after.probs[t] - before.probs[t]);
    const top = Array.from({ length: 256 }, (_, t) => t).sort((a, b) => delta[b] - delta[a] || a - b);
    expect(n.steer.top.map((e: Obj) => e.id)).toEqual(top.slice(0, 10));
    n.steer.top.forEach((e: Obj) => {
      expect(e.pAfter).toBeCloseTo(after.probs[e.id], 5);
      expect(e.pBefore).toBeCloseTo(before.probs[e.id], 5);
    });
    // the live box: any value; clamping to −3 differs from clamping to the default
    const live = data.steer(0, LAYER, j, -3, 'it was') as Obj;
    const ids2 = Array.from(Buffer.from('it was'));
    const b2 = softmax(nextToken(model, ids2).logits),
      a2 = hand(-3, ids2);
    live.top.forEach((e: Obj) => {
      expect(e.pAfter).toBeCloseTo(a2.probs[e.id], 5);
      expect(e.pBefore).toBeCloseTo(b2[e.id], 5);
    });
    expect(() => data.steer(0, LAYER, 8 * D, 1, 'ab')).toThrow(/out of range/);
    model.free();
  });

  it('without its SAE the pages say why; an SAE given with --sae must be the one the features came from', async () => {
    const moved = path.join(dir, 'sae-moved');
    fs.renameSync(saeDir, moved);
    try {
      const v = await ViewerData.open([coll], { backend: ref });
      const c = (v.index() as Obj).collections[0];
      expect(c.sae.available).toBe(false);
      expect(c.model.note).toMatch(/the SAE directory 'sae' is not available .*pass --sae/);
      const n = v.neuron(0, LAYER, 0) as Obj;
      expect(n.related).toEqual({ up: null, down: null, input: null, note: expect.stringMatching(/not available/) });
      expect(n.steer.skipped).toMatch(/not available/);
      expect(() => v.steer(0, LAYER, 0, 1, 'ab')).toThrow(/not available/);
      v.free();
      // given explicitly at its new place, it works again
      const v2 = await ViewerData.open([coll], { backend: ref, saes: [moved] });
      expect((v2.index() as Obj).collections[0].sae.available).toBe(true);
      v2.free();
      // another SAE (one weight changed) given explicitly: a one-line data error
      const other = path.join(dir, 'sae-other');
      fs.cpSync(moved, other, { recursive: true });
      const w = loadSae(other).weights;
      w.benc[0] += 1;
      writeWeights(other, w);
      await expect(ViewerData.open([coll], { backend: ref, saes: [other] })).rejects.toThrow(/is not the one collection .* was made from/);
      const r = await capture(['neurons', 'view', coll, '--sae', other, '--export', path.join(dir, 'site-x')]);
      expect(r.code).toBe(1);
      expect(r.err.trim().split('\n')).toHaveLength(1);
    } finally {
      fs.renameSync(moved, saeDir);
    }
  });
});

describe('detection and fuzzing scores in the viewer', () => {
  it('per layer the mean balanced accuracy x100 (equal to summary.json), per neuron the line of layer-{l}.jsonl with its contexts', () => {
    const c = (data.index() as Obj).collections[0];
    expect(c.classifierSets).toEqual([
      { name: 'detection-lookup', scorer: 'detection', judge: 'lookup' },
      { name: 'fuzzing-lookup', scorer: 'fuzzing', judge: 'lookup' },
    ]);
    const t = data.table(0, LAYER) as Obj;
    expect(t.columns.slice(11)).toEqual(['detection-lookup:balancedAccuracy', 'fuzzing-lookup:balancedAccuracy']);
    for (const [k, name] of ['detection-lookup', 'fuzzing-lookup'].entries()) {
      const summary = JSON.parse(fs.readFileSync(path.join(coll, name, 'summary.json'), 'utf8'));
      const lines = classifierLines(name);
      const scored = lines.filter((l) => l.balanced_accuracy !== null);
      expect(scored.length).toBeGreaterThan(0);
      const layer = c.layers[0].classifiers[name];
      expect(layer.scored).toBe(summary.layers[0].scored);
      expect(layer.balancedAccuracy).toBeCloseTo(100 * summary.layers[0].balanced_accuracy, 3);
      // the table's column is the same numbers, one per neuron, x100
      lines.forEach((l) => expect(t.rows[l.neuron][11 + k]).toBe(l.balanced_accuracy === null ? null : Number((100 * l.balanced_accuracy).toPrecision(5))));
      const col = t.rows.map((r: Obj) => r[11 + k]).filter((x: number | null) => x !== null);
      expect(layer.balancedAccuracy).toBeCloseTo(col.reduce((a: number, b: number) => a + b, 0) / col.length, 2);
      // one neuron's page: the scores x100 and every judged context as the file has it
      const l = scored[0];
      const n = data.neuron(0, LAYER, l.neuron) as Obj;
      const r = n.classifiers.find((x: Obj) => x.set === name);
      expect(r).toMatchObject({ scorer: name.split('-')[0], judge: 'lookup', n: l.n, parseFailures: l.parse_failures, explanation: l.explanation });
      expect(r.balancedAccuracy).toBeCloseTo(100 * l.balanced_accuracy, 3);
      expect(r.f1).toBeCloseTo(100 * l.f1, 3);
      expect(r.examples.map((e: Obj) => [e.t, e.a, e.activating, e.prediction, e.correct])).toEqual(
        l.examples.map((e: Obj) => [e.str_tokens, e.activations, e.activating, e.prediction, e.correct]),
      );
    }
  });

  it('a classifier file that is not what it should be is a warning on the overview, not an error', async () => {
    const copy = path.join(dir, 'coll-bad');
    fs.cpSync(coll, copy, { recursive: true });
    fs.writeFileSync(path.join(copy, 'fuzzing-lookup', `layer-${LAYER}.jsonl`), '{"layer": 1, "neuron": 0}\n{not json\n');
    fs.writeFileSync(path.join(copy, 'detection-lookup', 'summary.json'), '{"scorer": "detection", "judge": "lookup"');
    const v = await ViewerData.open([copy], { steer: false, weights: false });
    const c = (v.index() as Obj).collections[0];
    expect(c.classifierSets.map((s: Obj) => s.name)).toEqual(['fuzzing-lookup']);
    expect(c.warnings.join('\n')).toMatch(/detection-lookup\/summary\.json could not be read/);
    expect(c.warnings.join('\n')).toMatch(/fuzzing-lookup\/layer-1\.jsonl:2: /);
    expect(c.warnings.join('\n')).not.toContain('{not json');
    expect(c.layers[0].classifiers).toEqual({});
    v.free();
  });
});

const CHROMIUM = [process.env.CRATE_TS_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find(
  (p): p is string => !!p && fs.existsSync(p),
);
const skip = CHROMIUM ? false : 'no chromium found (apt-get install chromium, or set CRATE_TS_CHROMIUM)';

describe.skipIf(skip)('the SAE collection and the classifier scores in chromium', () => {
  let browser: Browser;
  beforeAll(async () => {
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    const keep = process.env.CRATE_TS_VIEWER_SHOTS;
    if (keep && dir) for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.png'))) fs.copyFileSync(path.join(dir, f), path.join(keep, f));
  });

  async function open(url: string): Promise<Page> {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await ctx.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(url);
    await page.waitForSelector('body[data-ready]', { timeout: 60_000 });
    expect(errors).toEqual([]);
    return page;
  }

  it('export: the layer table and the neuron table show the detection and fuzzing scores x100, the neuron page every judged context', async () => {
    const site = path.join(dir, 'site');
    const ex = await ViewerData.open([coll], { backend: ref });
    exportSite(ex, site, { appJs });
    const idx = ex.index() as Obj;
    const t = ex.table(0, LAYER) as Obj;
    const page = await open(`${pathToFileURL(path.join(site, 'index.html')).href}#/`);
    const heads = await page.$$eval('table.layers thead th', (els) => els.map((e) => e.textContent));
    expect(heads).toContain('detection ×100 (detection-lookup)');
    expect(heads).toContain('fuzzing ×100 (fuzzing-lookup)');
    const cells = await page.$$eval('table.layers tbody td.cls-mean', (els) => els.map((e) => Number(e.textContent)));
    const want = ['detection-lookup', 'fuzzing-lookup'].map((s) => idx.collections[0].layers[0].classifiers[s].balancedAccuracy);
    cells.forEach((x, k) => expect(x).toBeCloseTo(want[k], 0));
    const cols = await page.$$eval('table.neurons thead th', (els) => els.map((e) => e.textContent));
    expect(cols.slice(1, 7)).toEqual(['TaR ×100', 'Random ×100', 'Anthr. ×100', 'LLM ×100', 'Detect. ×100', 'Fuzz. ×100']);
    expect(await page.textContent('dl.info')).toMatch(/SAE.*features of sae on blocks\.1\.hook_neurons \(64 → 128, weights sha256/);
    // sort by the detection column: descending, missing values last
    await page.click('th[data-col="11"]');
    const order = await page.$$eval('table.neurons tbody tr', (els) => els.map((e) => Number(e.getAttribute('data-neuron'))));
    const byDet = (t.rows as Obj[])
      .slice()
      .sort((a, b) => (a[11] === b[11] ? a[0] - b[0] : a[11] === null ? 1 : b[11] === null ? -1 : b[11] - a[11]))
      .map((r) => r[0]);
    expect(order).toEqual(byDet.slice(0, order.length));
    await page.screenshot({ path: path.join(dir, 'sae-overview.png'), fullPage: true });
    await page.context().close();

    const j = byDet[0];
    const n = ex.neuron(0, LAYER, j) as Obj;
    const np = await open(`${pathToFileURL(path.join(site, 'index.html')).href}#/layer/${LAYER}/neuron/${j}`);
    for (const r of n.classifiers) {
      const box = `.classifier[data-set="${r.set}"]`;
      expect(Number(await np.textContent(`${box} .cls-score`))).toBeCloseTo(r.balancedAccuracy, 0);
      expect(await np.$$eval(`${box} .cls-example`, (els) => els.length)).toBe(r.examples.length);
      const marks = await np.$$eval(`${box} .cls-example`, (els) =>
        els.map((e) => [e.getAttribute('data-activating'), e.getAttribute('data-prediction'), e.classList.contains('right')]),
      );
      expect(marks).toEqual(r.examples.map((e: Obj) => [String(e.activating), String(e.prediction), e.correct === true]));
    }
    expect(await np.textContent('.stats')).toMatch(/detection ×100 \(detection-lookup\)/);
    expect(await np.textContent('section.steering')).toContain(`Clamp feature ${j} of the SAE on blocks.1.hook_neurons`);
    expect(await np.$$eval('.related-col table.related', (els) => els.length)).toBe(3);
    await np.click(`.classifier[data-set="detection-lookup"] details.cls-examples summary`);
    await np.screenshot({ path: path.join(dir, 'sae-neuron.png'), fullPage: true });
    await np.screenshot({ path: path.join(dir, 'sae-neuron-top.png') });
    await np.locator('section.classifiers').screenshot({ path: path.join(dir, 'sae-classifiers.png') });
    await np.locator('section.related-box').screenshot({ path: path.join(dir, 'sae-related.png') });
    await np.locator('section.steering').screenshot({ path: path.join(dir, 'sae-steering.png') });
    await np.context().close();
    ex.free();
  }, 180_000);

  it('the server: the live steering box clamps the SAE feature', async () => {
    const srv = await startServer(data, { port: 0, appJs });
    try {
      const ld = readLayer(coll, readManifest(coll), LAYER);
      const j = ld.stats.findIndex((s) => (s.max ?? 0) > 0);
      const page = await open(`${srv.url}#/layer/${LAYER}/neuron/${j}`);
      await page.fill('input.steer-value', '4.5');
      await page.fill('input.steer-prompt', 'the age');
      await page.click('form.steer-box button');
      await page.waitForSelector('.live-out table.steer');
      const tokens = await page.$$eval('.live-out table.steer tbody td:first-child', (els) => els.map((e) => e.textContent));
      const want = data.steer(0, LAYER, j, 4.5, 'the age') as Obj;
      expect(tokens).toEqual(want.top.map((e: Obj) => JSON.stringify(e.token)));
      expect(await page.textContent('.live-out')).toContain('clamp = 4.5');
      await page.context().close();
    } finally {
      await srv.close();
    }
  }, 120_000);
});
