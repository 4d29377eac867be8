// The viewer in a real browser: Debian's chromium driven by playwright-core (no browser download).
// An exported site is opened from the file system with the network off; the overview's chart and
// table, sorting and filtering, a neuron page addressed by URL (heatmap cells carry the records'
// values), the LLM overlay, the link to the other collection and an error page are checked; then the
// server's live steering box. Screenshots go to the test's temp directory (and to
// $CRATE_TS_VIEWER_SHOTS when set, to look at them).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { ReferenceBackend } from '../src/backend/reference.js';
import { readLayer, readManifest } from '../src/neurons/format.js';
import { ViewerData } from '../src/viewer/data.js';
import { exportSite } from '../src/viewer/site.js';
import { startServer } from '../src/viewer/server.js';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { buildAppJs, makeCollections, H, type Fixture } from './viewer-fixture.js';

const CHROMIUM = [process.env.CRATE_TS_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find(
  (p): p is string => !!p && fs.existsSync(p),
);
const skip = CHROMIUM ? false : 'no chromium found (apt-get install chromium, or set CRATE_TS_CHROMIUM)';
if (skip) console.warn(`viewer browser tests skipped: ${skip}`);

let dir: string, fx: Fixture, appJs: string, data: ViewerData, site: string, browser: Browser;
const offsite: string[] = [];

beforeAll(async () => {
  if (skip) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-viewer-browser-'));
  fx = await makeCollections(dir);
  appJs = buildAppJs();
  data = await ViewerData.open([fx.crate, fx.gpt2], { labels: ['crate', 'gpt2'], backend: new ReferenceBackend(), live: false });
  site = path.join(dir, 'site');
  exportSite(data, site, { appJs });
  const { chromium } = await import('playwright-core');
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
}, 180_000);

afterAll(async () => {
  await browser?.close();
  data?.free();
  const keep = process.env.CRATE_TS_VIEWER_SHOTS;
  if (keep && dir) for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.png'))) fs.copyFileSync(path.join(dir, f), path.join(keep, f));
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

async function open(hash: string, live?: string, siteDir = site): Promise<Page> {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, offline: !live });
  const page = await ctx.newPage();
  page.on('request', (r) => {
    if (!r.url().startsWith('file:') && !(live && r.url().startsWith(live))) offsite.push(r.url());
  });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(live ? `${live}${hash}` : `${pathToFileURL(path.join(siteDir, 'index.html')).href}${hash}`);
  await page.waitForSelector('body[data-ready]', { timeout: 60_000 });
  expect(errors).toEqual([]);
  return page;
}

type Obj = Record<string, any>;

describe.skipIf(skip)('the exported site in chromium (file://, offline)', () => {
  it('overview: the chart has a point per layer and score, the table one row per neuron; sorting and filtering work', async () => {
    const page = await open('#/');
    expect(await page.getAttribute('body', 'data-ready')).toBe('overview');
    const idx = data.index() as Obj;
    // every (collection, layer, score) that exists is a point carrying its value
    const want: string[] = [];
    for (const c of idx.collections)
      for (const l of c.layers) {
        for (const v of [l.tar, l.randomOnly, l.anthropic]) if (v !== null) want.push(`${l.layer}:${v}`);
        for (const set of c.llmSets) for (const k of ['tar', 'randomOnly']) if (l.llm[set]?.[k] != null) want.push(`${l.layer}:${l.llm[set][k]}`);
      }
    const got = await page.$$eval('svg.score-chart circle.point', (els) => els.map((e) => `${e.getAttribute('data-layer')}:${e.getAttribute('data-value')}`));
    expect(got.sort()).toEqual(want.sort());
    expect(want.length).toBe(11); // crate: 3 lookup splits x 2 layers + LLM TaR on layer 0; gpt2: 2 splits x 2 layers
    expect(await page.$$eval('table.layers tbody tr', (els) => els.length)).toBe(2);
    expect(await page.$$eval('table.neurons tbody tr', (els) => els.length)).toBe(H);
    await page.screenshot({ path: path.join(dir, 'overview.png') });

    // sort by max, descending (a numeric column starts descending)
    await page.click('th[data-col="6"]');
    const order = await page.$$eval('table.neurons tbody tr', (els) => els.map((e) => Number(e.getAttribute('data-neuron'))));
    const rows = (data.table(0, 0) as Obj).rows as Obj[];
    const expected = rows
      .slice()
      .sort((a, b) => (b[6] ?? -Infinity) - (a[6] ?? -Infinity) || a[0] - b[0])
      .map((r) => r[0]);
    expect(order).toEqual(expected);
    // filter by explanation text: the four neurons with an LLM explanation
    await page.fill('input.filter-text', 'explanation of neuron');
    const filtered = await page.$$eval('table.neurons tbody tr', (els) => els.map((e) => Number(e.getAttribute('data-neuron'))));
    expect(filtered.sort((a, b) => a - b)).toEqual([0, 1, 2, 3]);
    expect(await page.textContent('p.count')).toMatch(/^4 of 64 neurons of layer 0/);
    // a range on another column: density from the median up, dead neurons hidden
    await page.fill('input.filter-text', '');
    await page.selectOption('select.filter-col', '5');
    const dens = rows.map((r) => r[5] as number).sort((a, b) => a - b),
      med = dens[dens.length >> 1];
    await page.fill('input.filter-min', String(med));
    await page.check('input.filter-dead');
    const ranged = await page.$$eval('table.neurons tbody tr', (els) => els.map((e) => Number(e.getAttribute('data-neuron'))));
    expect(ranged.sort((a, b) => a - b)).toEqual(rows.filter((r) => r[5] >= med && r[6] > 0).map((r) => r[0]));
    await page.fill('input.filter-min', '');
    await page.uncheck('input.filter-dead');
    await page.fill('input.filter-text', 'explanation of neuron');
    // an explanation with markup is shown as text, not HTML
    expect(await page.$$eval('td.expl b', (els) => els.length)).toBe(0);
    await page.context().close();
  }, 120_000);

  it('a neuron page addressed by URL: heatmap cells carry the record values, the selected token is marked, one scale', async () => {
    const page = await open('#/layer/1/neuron/9');
    expect(await page.textContent('h2')).toMatch(/^Layer 1, neuron 9/);
    const m = readManifest(fx.crate),
      ld = readLayer(fx.crate, m, 1),
      rec = ld.records[9];
    const tops = rec.most_positive_activation_records;
    expect(await page.$$eval('.records[data-kind="top"] .record', (els) => els.length)).toBe(tops.length);
    for (const j of [0, 1, tops.length - 1]) {
      const cells = await page.$$eval(`.records[data-kind="top"] .record-row:nth-child(${j + 1}) .tok`, (els) =>
        els.map((e) => ({
          a: e.getAttribute('data-a'),
          text: e.textContent,
          sel: e.classList.contains('sel'),
          bg: (e as HTMLElement).style.background,
          title: e.getAttribute('title'),
        })),
      );
      expect(cells.map((c) => Number(c.a))).toEqual(tops[j].activations);
      expect(cells.map((c) => c.text)).toEqual(tops[j].tokens.map((t) => t.replace(/\n/g, '↵').replace(/\t/g, '→').replace(/\r/g, '␍')));
      const q = ld.positions[9].top[j],
        s = q - Math.max(0, q - m.excerpt.top.before);
      expect(cells.findIndex((c) => c.sel)).toBe(s);
      expect(cells.filter((c) => c.sel)).toHaveLength(1);
      expect(cells[s].title).toContain('selected token');
    }
    // the page's largest value is drawn in the full colour; zero is white
    const scale = Math.max(...[...tops, ...rec.random_sample, ...(rec.random_sample_by_quantile ?? []).flat()].flatMap((r) => r.activations.map(Math.abs)));
    const bgOf = (v: number) =>
      page.$$eval('.tok[data-a]', (els, x) => els.filter((e) => Number(e.getAttribute('data-a')) === x).map((e) => getComputedStyle(e).backgroundColor)[0], v);
    expect(await bgOf(scale)).toBe('rgb(230, 85, 13)');
    if (tops[0].activations.includes(0)) expect(await bgOf(0)).toBe('rgb(255, 255, 255)');
    expect(await page.$$eval('.qbin', (els) => els.length)).toBe(rec.random_sample_by_quantile!.length);
    expect(await page.$$eval('.records[data-kind="random"] .record', (els) => els.length)).toBe(rec.random_sample.length);
    expect(await page.$$eval('svg.histogram rect.bar', (els) => els.length)).toBe(((data.neuron(0, 1, 9) as Obj).histogram.zeros !== null ? 1 : 0) + 24);
    expect(await page.$$eval('table.lookup tbody tr', (els) => els.length)).toBeGreaterThan(0);
    expect(await page.$$eval('.related-col table.related', (els) => els.length)).toBe(3);
    expect(await page.$$eval('table.steer tbody tr', (els) => els.length)).toBe((ld.stats[9].max ?? 0) > 0 ? 10 : 0);
    await page.screenshot({ path: path.join(dir, 'neuron.png'), fullPage: true });
    expect(offsite).toEqual([]);
    await page.context().close();
  }, 120_000);

  it('LLM overlay, the link to the same index in the other collection, prev/next, and an error page', async () => {
    const page = await open('#/layer/0/neuron/1');
    expect(await page.textContent('.explanation')).toBe('explanation: explanation of neuron 1: letters <b>near</b> "the"');
    expect(await page.textContent('.llm-score')).toBe('20'); // x100, as every score on the pages
    expect(await page.$$eval('.record.simulated', (els) => els.length)).toBe(2);
    const sims = await page.$$eval('.sim-pair:first-of-type .record.simulated .tok', (els) => els.map((e) => Number(e.getAttribute('data-a'))));
    const recs = readLayer(fx.crate, readManifest(fx.crate), 0).records[1].most_positive_activation_records.slice(0, 2);
    const max = Math.max(1e-9, ...recs.flatMap((r) => r.activations));
    sims.forEach((v, k) => expect(v).toBeCloseTo(10 - (2 * recs[0].activations[k]) / max, 9));
    await page.click('a.other');
    await page.waitForFunction(() => location.hash === '#/c/1/layer/0/neuron/1' && document.body.dataset.ready === 'neuron');
    expect(await page.textContent('.crumbs')).toMatch(/^gpt2 › layer 0/);
    await page.click('a.next');
    await page.waitForFunction(() => location.hash === '#/c/1/layer/0/neuron/2' && document.body.dataset.ready === 'neuron');
    await page.evaluate(() => {
      location.hash = '#/layer/1/neuron/999';
    });
    await page.waitForFunction(() => document.body.dataset.ready === 'error');
    expect(await page.textContent('.error')).toBe('neuron 999 is out of range: layer 1 has 64 neurons (0..63)');
    expect(offsite).toEqual([]);
    await page.context().close();
  }, 120_000);

  it('the server: the same pages over http on 127.0.0.1, and the live steering box', async () => {
    const live = await ViewerData.open([fx.crate], { backend: new ReferenceBackend(), live: true });
    const srv = await startServer(live, { port: 0, appJs });
    try {
      const page = await open('#/layer/1/neuron/3', srv.url);
      await page.fill('input.steer-value', '7.5');
      await page.fill('input.steer-prompt', 'the sea');
      await page.click('form.steer-box button');
      await page.waitForSelector('.live-out table.steer');
      const tokens = await page.$$eval('.live-out table.steer tbody td:first-child', (els) => els.map((e) => e.textContent));
      const want = live.steer(0, 1, 3, 7.5, 'the sea') as Obj;
      expect(tokens).toEqual(want.top.map((e: Obj) => JSON.stringify(e.token)));
      await page.fill('input.steer-value', '');
      await page.click('form.steer-box button');
      await page.waitForSelector('.live-out .error');
      expect(await page.textContent('.live-out .error')).toMatch(/'value' must be a finite decimal number/);
      await page.context().close();
    } finally {
      await srv.close();
      live.free();
    }
  }, 120_000);

  it('units and bins: every score x100 and labelled, quantile bins numbered from 0 as in neurons show, all-zero bins folded', async () => {
    const page = await open('#/');
    const heads = await page.$$eval('table.layers thead th', (els) => els.map((e) => e.textContent));
    expect(heads).toContain('lookup TaR ×100');
    const cols = await page.$$eval('table.neurons thead th', (els) => els.map((e) => e.textContent));
    expect(cols.slice(1, 5)).toEqual(['TaR ×100', 'Random ×100', 'Anthr. ×100', 'LLM ×100']);
    // the layer table's TaR is the mean of the neuron table's TaR column, in the same unit
    const idx = data.index() as Obj;
    const rows = (data.table(0, 0) as Obj).rows as Obj[];
    const tar = rows.map((r) => r[1]).filter((x: number | null) => x !== null) as number[];
    const layerTar = Number(await page.textContent('table.layers tbody tr:first-child td:nth-child(4)'));
    expect(layerTar).toBeCloseTo(idx.collections[0].layers[0].tar, 1);
    expect(layerTar).toBeCloseTo(tar.reduce((a, b) => a + b, 0) / tar.length, 1);
    await page.context().close();

    // a sparse neuron: the quantile records of bins 0-5 of layer 1 neuron 9 made all zero (as a
    // sparse neuron's lower bins are), in a copy of the collection exported on its own
    const sparse = path.join(dir, 'coll-sparse');
    fs.cpSync(fx.crate, sparse, { recursive: true });
    const rf = path.join(sparse, 'layer-1', 'records.jsonl');
    const lines = fs.readFileSync(rf, 'utf8').split('\n');
    const pick = 9,
      zeroBins = [0, 1, 2, 3, 4, 5];
    const rec = JSON.parse(lines[pick]);
    for (const k of zeroBins) {
      for (const r of rec.random_sample_by_quantile[k]) r.activations = r.activations.map(() => 0);
      rec.quantile_boundaries[k] = 0;
    }
    rec.quantile_boundaries[6] = 0;
    lines[pick] = JSON.stringify(rec);
    fs.writeFileSync(rf, lines.join('\n'));
    const sd = await ViewerData.open([sparse], { steer: false, weights: false });
    const sparseSite = path.join(dir, 'site-sparse');
    exportSite(sd, sparseSite, { appJs });
    const n = sd.neuron(0, 1, pick) as Obj;
    sd.free();
    const np = await open(`#/layer/1/neuron/${pick}`, undefined, sparseSite);
    // every bin is on the page, numbered from 0; the all-zero ones inside closed <details>
    const titles = await np.$$eval('.qbin h4', (els) => els.map((e) => e.textContent ?? ''));
    expect(titles.map((t) => Number(/^quantile bin (\d+):/.exec(t)?.[1]))).toEqual(n.quantile.map((_: Obj, k: number) => k));
    const folded = await np.$$eval('details.qbins-zero .qbin', (els) => els.map((e) => Number(e.getAttribute('data-bin'))));
    expect(folded).toEqual(zeroBins);
    expect(await np.$$eval('details.qbins-zero', (els) => els.every((e) => !(e as HTMLDetailsElement).open))).toBe(true);
    const visible = await np.$$eval('.qbin', (els) => els.filter((e) => (e as any).checkVisibility()).map((e) => Number(e.getAttribute('data-bin'))));
    expect(visible).toEqual(n.quantile.map((_: Obj, k: number) => k).filter((k: number) => !zeroBins.includes(k)));
    expect(await np.textContent('details.qbins-zero summary')).toMatch(/^quantile bins? \d+(–\d+)?: every activation in their \d+ records is 0 \(show\)$/);
    expect(await np.textContent('.stats')).toMatch(/lookup TaR ×100/);
    await np.screenshot({ path: path.join(dir, 'sparse-neuron.png'), fullPage: true });
    await np.click('details.qbins-zero summary');
    expect(await np.$$eval('.qbin', (els) => els.filter((e) => (e as any).checkVisibility()).length)).toBeGreaterThan(visible.length);
    await np.context().close();
  }, 120_000);

  it("another origin's page (file://, another localhost port) cannot read the live viewer's data or make it steer", async () => {
    const live = await ViewerData.open([fx.crate], { backend: new ReferenceBackend(), live: true });
    const srv = await startServer(live, { port: 0, appJs });
    const seen: { url: string; status: number }[] = [];
    const v = `http://127.0.0.1:${srv.port}`;
    // the attacker's page: the data as a classic script (the export's loading scheme), steering by <img> and no-cors fetch
    const evil = `<!doctype html><html><body><script>
      window.got = []; window.crateViewerData = (k, d) => window.got.push(k);
      window.loaded = 0; window.failed = 0;
    </script>
    <script src="${v}/data/index.js" onload="loaded++" onerror="failed++"></script>
    <script src="${v}/data/c0/layer-1/n3.js" onload="loaded++" onerror="failed++"></script>
    <img src="${v}/api/steer?c=0&layer=1&neuron=3&value=1&prompt=img1"><img src="${v}/api/steer?c=0&layer=1&neuron=3&value=1&prompt=img2">
    <script>fetch("${v}/api/steer?c=0&layer=1&neuron=3&value=1&prompt=fetch", { mode: 'no-cors' }).catch(() => 0).finally(() => { window.fetched = 1; });</script>
    </body></html>`;
    const other = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(evil);
    });
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', () => r()));
    const evilFile = path.join(dir, 'evil.html');
    fs.writeFileSync(evilFile, evil);
    try {
      for (const url of [
        `http://127.0.0.1:${(other.address() as AddressInfo).port}/`,
        `http://localhost:${(other.address() as AddressInfo).port}/`,
        pathToFileURL(evilFile).href,
      ]) {
        const ctx = await browser.newContext();
        const page = await ctx.newPage();
        page.on('request', (r) => {
          if (r.url().startsWith(v)) seen.push({ url: r.url(), status: 0 });
        });
        await page.goto(url);
        await page.waitForFunction(() => (window as any).fetched === 1 && (window as any).loaded + (window as any).failed === 2, undefined, {
          timeout: 30_000,
        });
        expect(await page.evaluate(() => (window as any).got), url).toEqual([]);
        expect(await page.evaluate(() => (window as any).loaded), url).toBe(0);
        await page.waitForTimeout(300);
        await ctx.close();
      }
      expect(live.steerCacheSize(0)).toBe(0); // no steering request did any work
      // the page did ask (two scripts, two images, a fetch, from each of the three origins)
      expect(seen.length).toBeGreaterThanOrEqual(15);
      // and the viewer's own page still works on the same server
      const page = await open('#/layer/1/neuron/3', srv.url);
      expect(await page.textContent('h2')).toMatch(/^Layer 1, neuron 3/);
      await page.context().close();
    } finally {
      other.close();
      await srv.close();
      live.free();
    }
  }, 120_000);
});
