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

async function open(hash: string, live?: string): Promise<Page> {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, offline: !live });
  const page = await ctx.newPage();
  page.on('request', (r) => {
    if (!r.url().startsWith('file:') && !(live && r.url().startsWith(live))) offsite.push(r.url());
  });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(live ? `${live}${hash}` : `${pathToFileURL(path.join(site, 'index.html')).href}${hash}`);
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
    expect(await page.textContent('.llm-score')).toBe('0.2');
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
      expect(await page.textContent('.live-out .error')).toMatch(/'value' must be a finite number/);
      await page.context().close();
    } finally {
      await srv.close();
      live.free();
    }
  }, 120_000);
});
