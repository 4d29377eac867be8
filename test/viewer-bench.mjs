#!/usr/bin/env node
// First-paint benchmark of the neuron viewer on the paper's largest shape (not a test: run it by
// hand, it takes minutes and a few hundred MB of disk):
//
//   node test/viewer-bench.mjs [--layers 12] [--neurons 3072] [--no-export] [--chromium /usr/bin/chromium]
//
// Writes a synthetic collection (src/viewer/synthetic.ts) to a temporary directory, serves it and
// exports it, and opens in Debian's chromium (playwright-core): the overview (#/) and the last
// neuron's page, cold (a fresh browser context each time). "ready" is the page's own mark
// (window.crateViewerPainted: ms from navigation start to the page rendered with its data).
import { register } from 'node:module';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

register('./helpers/ts-hooks.mjs', import.meta.url);
const { writeSyntheticCollection } = await import('../src/viewer/synthetic.ts');
const { ViewerData } = await import('../src/viewer/data.ts');
const { startServer } = await import('../src/viewer/server.ts');
const { exportSite } = await import('../src/viewer/site.ts');
const { buildAppJs } = await import('./viewer-fixture.ts');
const { chromium } = await import('playwright-core');

const { values: o } = parseArgs({ options: { layers: { type: 'string' }, neurons: { type: 'string' }, 'no-export': { type: 'boolean' }, chromium: { type: 'string' } } });
const L = Number(o.layers ?? 12), Hn = Number(o.neurons ?? 3072);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-viewer-bench-'));
const secs = (t0) => ((performance.now() - t0) / 1000).toFixed(2);
try {
  let t0 = performance.now();
  writeSyntheticCollection(path.join(dir, 'coll'), { layers: L, neurons: Hn });
  console.log(`synthetic collection: ${L} layers x ${Hn} neurons written in ${secs(t0)} s`);
  t0 = performance.now();
  const data = await ViewerData.open([path.join(dir, 'coll')], { steer: false, weights: false, live: true });
  console.log(`opened (manifest, statistics, line offsets, scores) in ${secs(t0)} s`);
  const appJs = buildAppJs();
  const browser = await chromium.launch({ executablePath: o.chromium ?? '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu'] });
  const visit = async (url, kind) => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await ctx.newPage();
    const t = performance.now();
    await page.goto(url);
    await page.waitForSelector(`body[data-ready="${kind}"]`, { timeout: 120_000 });
    const wall = performance.now() - t;
    const ready = await page.evaluate(() => globalThis.crateViewerPainted);
    const fcp = await page.evaluate(() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null);
    const rows = await page.$$eval('table.neurons tbody tr', (els) => els.length);
    await ctx.close();
    return `ready ${ready.toFixed(0)} ms after navigation start (first contentful paint ${fcp === null ? '-' : fcp.toFixed(0)} ms; ${wall.toFixed(0)} ms wall from goto${kind === 'overview' ? `; ${rows} table rows` : ''})`;
  };
  const srv = await startServer(data, { port: 0, appJs });
  console.log(`server, overview (cold: builds the index and layer 0's table): ${await visit(`${srv.url}#/`, 'overview')}`);
  console.log(`server, overview (again, table cached):                     ${await visit(`${srv.url}#/`, 'overview')}`);
  console.log(`server, neuron page #/layer/${L - 1}/neuron/${Hn - 1}:                  ${await visit(`${srv.url}#/layer/${L - 1}/neuron/${Hn - 1}`, 'neuron')}`);
  await srv.close();
  if (!o['no-export']) {
    t0 = performance.now();
    const r = exportSite(data, path.join(dir, 'site'), { appJs });
    console.log(`export: ${r.files} files, ${(r.bytes / 2 ** 20).toFixed(0)} MiB in ${secs(t0)} s; index ${(fs.statSync(path.join(dir, 'site/data/index.js')).size / 1024).toFixed(1)} KiB, layer-0 table ${(fs.statSync(path.join(dir, 'site/data/c0/layer-0/table.js')).size / 1024).toFixed(0)} KiB`);
    const base = pathToFileURL(path.join(dir, 'site', 'index.html')).href;
    console.log(`file://, overview:                 ${await visit(`${base}#/`, 'overview')}`);
    console.log(`file://, neuron page:              ${await visit(`${base}#/layer/${L - 1}/neuron/${Hn - 1}`, 'neuron')}`);
  }
  await browser.close();
  data.free();
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
