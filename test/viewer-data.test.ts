// The viewer's data (no browser): what the pages load is checked against the collection files, the
// offline scores, the LLM result file, the weights recomputed by hand, and steer(); the export and
// the server; bad collections, neurons and ports give one-line errors with the right exit codes.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as http from 'node:http';
import { ReferenceBackend } from '../src/backend/reference.js';
import { loadCheckpoint, modelFromCheckpoint } from '../src/checkpoint/checkpoint.js';
import type { LanguageModel } from '../src/model/lm.js';
import { readLayer, readManifest, readTokens } from '../src/neurons/format.js';
import { scoreCollection } from '../src/neurons/score.js';
import { steer } from '../src/steer/steer.js';
import { ViewerData, STEER_FACTOR, STEER_CACHE_PROMPTS, histogram } from '../src/viewer/data.js';
import { exportSite, SITE_MARKER } from '../src/viewer/site.js';
import { startServer } from '../src/viewer/server.js';
import { writeSyntheticCollection } from '../src/viewer/synthetic.js';
import { buildAppJs, makeCollections, H, type Fixture } from './viewer-fixture.js';
import { capture } from './helpers/capture.js';

let dir: string, fx: Fixture, appJs: string, data: ViewerData;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-viewer-data-'));
  fx = await makeCollections(dir);
  appJs = buildAppJs();
  data = await ViewerData.open([fx.crate, fx.gpt2], { labels: ['crate', 'gpt2'], backend: new ReferenceBackend(), live: true });
}, 120_000);
afterAll(() => {
  data?.free();
  fs.rmSync(dir, { recursive: true, force: true });
});

type Obj = Record<string, any>;

describe('the data the pages load', () => {
  it('index: per-layer means equal the offline scores (x100), dead counts the statistics, LLM means the result file', () => {
    const idx = data.index() as Obj;
    expect(idx.collections).toHaveLength(2);
    const [c0, c1] = idx.collections;
    const ref = scoreCollection(fx.crate);
    c0.layers.forEach((l: Obj, k: number) => {
      expect(l.tar).toBeCloseTo(ref.layers[k].tar as number, 2);
      expect(l.randomOnly).toBeCloseTo(ref.layers[k].randomOnly as number, 2);
      expect(l.anthropic).toBeCloseTo(ref.layers[k].anthropic as number, 2);
      expect(l.dead).toBe(ref.layers[k].dead);
    });
    expect(c0.scoresSource).toBe('scores-lookup.jsonl');
    expect(c1.scoresSource).toBe('computed by the viewer'); // gpt2 has no scores file
    const mean = [...fx.llmScores.values()].reduce((a, b) => a + b, 0) / fx.llmScores.size;
    expect(c0.layers[0].llm['llm-test'].tar).toBeCloseTo(100 * mean, 3);
    expect(c0.layers[1].llm).toEqual({});
    expect(c0.model.available).toBe(true);
    expect(idx.steer.prompt).toBe('1 2 3 4 5');
  });

  it('table: one row per neuron with its scores, statistics, most common top token and explanation', () => {
    const t = data.table(0, 0) as Obj;
    expect(t.rows).toHaveLength(H);
    const m = readManifest(fx.crate),
      ld = readLayer(fx.crate, m, 0),
      tokens = readTokens(fx.crate, m);
    const scores = scoreCollection(fx.crate).neurons.filter((n) => n.layer === 0);
    for (const i of [0, 5, 17, H - 1]) {
      const r = t.rows[i];
      expect(r[0]).toBe(i);
      if (Number.isFinite(scores[i].tar)) expect(r[1]).toBeCloseTo(100 * scores[i].tar, 2);
      else expect(r[1]).toBeNull();
      expect(r[5]).toBeCloseTo(ld.stats[i].density, 4);
      expect(r[6]).toBeCloseTo(ld.stats[i].max as number, 4);
      if ((ld.stats[i].max ?? 0) > 0) {
        const ids = ld.positions[i].top.map((q) => tokens[q]);
        const count = (x: number) => ids.filter((y) => y === x).length;
        const best = Math.max(...ids.map(count));
        expect(ids.filter((x) => count(x) === best).map((x) => String.fromCharCode(x))).toContain(r[9]);
      }
    }
    expect(t.rows[2][10]).toBe('explanation of neuron 2: letters <b>near</b> "the"');
    expect(t.rows[2][4]).toBeCloseTo(30, 9); // scores x100 everywhere
    expect(t.rows[7][10]).toBeNull();
  });

  it('neuron: records, selected offsets, quantile bins, lookup table, histogram, LLM sequences and one colour scale', () => {
    const n = data.neuron(0, 1, 9) as Obj;
    const m = readManifest(fx.crate),
      ld = readLayer(fx.crate, m, 1),
      rec = ld.records[9];
    expect(n.top).toHaveLength(rec.most_positive_activation_records.length);
    n.top.forEach((r: Obj, j: number) => {
      expect(r.t).toEqual(rec.most_positive_activation_records[j].tokens);
      expect(r.a).toEqual(rec.most_positive_activation_records[j].activations);
      const q = ld.positions[9].top[j];
      expect(r.s).toBe(q - Math.max(0, q - m.excerpt.top.before));
    });
    // the top records are sorted by their selected token's activation
    const sel = n.top.map((r: Obj) => r.a[r.s]);
    expect(sel).toEqual([...sel].sort((a: number, b: number) => b - a));
    expect(n.quantile).toHaveLength(rec.random_sample_by_quantile!.length);
    expect(n.quantile[0].records[0].t).toEqual(rec.random_sample_by_quantile![0][0].tokens);
    const all = [...rec.most_positive_activation_records, ...rec.random_sample, ...rec.random_sample_by_quantile!.flat()].flatMap((r) => r.activations);
    expect(n.scale).toBe(Math.max(...all.map(Math.abs)));
    const h = histogram(rec.random_sample);
    expect(n.histogram).toEqual(h);
    expect((h.zeros ?? 0) + h.counts.reduce((a, b) => a + b, 0)).toBe(rec.random_sample.reduce((a, r) => a + r.tokens.length, 0));
    for (const row of n.lookup) expect(row.value).toBeGreaterThan(0);
    const l0 = data.neuron(0, 0, 1) as Obj;
    expect(l0.llm).toHaveLength(1);
    expect(l0.llm[0]).toMatchObject({ set: 'llm-test', split: 'tar', score: 20 });
    expect(l0.llm[0].sequences[0].t).toEqual(readLayer(fx.crate, m, 0).records[1].most_positive_activation_records[0].tokens);
    expect(l0.others).toEqual([{ c: 1, label: 'gpt2' }]);
  });

  it('related tokens: the logit effects of D e_i (CRATE) and of the c_proj column (GPT-2) through ln_f and the head, recomputed by hand', () => {
    for (const [ci, ckpt] of [
      [0, fx.crateCkpt],
      [1, fx.gptCkpt],
    ] as const) {
      const model = modelFromCheckpoint(loadCheckpoint(ckpt), new ReferenceBackend()) as LanguageModel<unknown>;
      const p = model.getParams(),
        c = model.config,
        d = c.nEmbd,
        i = 13,
        layer = 1;
      const get = (name: string) => {
        const s = model.spec(name);
        return p.subarray(s.offset, s.offset + s.size);
      };
      const v = new Float64Array(d);
      if (c.arch === 'crate') v.set(get(`transformer.h.${layer}.ista.weight`).subarray(i * d, (i + 1) * d));
      else {
        const W = get(`transformer.h.${layer}.mlp.c_proj.weight`);
        for (let j = 0; j < d; j++) v[j] = W[j * H + i];
      }
      const mu = v.reduce((a, b) => a + b, 0) / d,
        sd = Math.sqrt(v.reduce((a, b) => a + (b - mu) ** 2, 0) / d + c.lnEps);
      const w = get('transformer.ln_f.weight'),
        wte = get('transformer.wte.weight');
      const logit = (t: number) => {
        let s = 0;
        for (let j = 0; j < d; j++) s += (wte[t * d + j] * w[j] * (v[j] - mu)) / sd;
        return s;
      };
      const order = Array.from({ length: 256 }, (_, t) => t).sort((a, b) => logit(b) - logit(a));
      const n = data.neuron(ci, layer, i) as Obj;
      expect(n.related.up).toHaveLength(12);
      expect(n.related.input.length).toBeGreaterThan(0);
      expect(n.related.up.map((x: Obj) => x.id)).toEqual(order.slice(0, n.related.up.length));
      expect(n.related.down.map((x: Obj) => x.id)).toEqual(order.slice(-n.related.down.length).reverse());
      n.related.up.forEach((x: Obj) => expect(x.value).toBeCloseTo(logit(x.id), 3));
      // input side: the activation of the neuron with the token alone at position 0
      for (const x of n.related.input.slice(0, 3)) {
        const a = model
          .runWithCache([x.id], 1, 1, { names: [`blocks.${layer}.hook_neurons`] })
          .cache.get(`blocks.${layer}.hook_neurons`)
          .get(0, 0, i);
        expect(x.value).toBeCloseTo(a, 3);
      }
      model.free();
    }
  });

  it('steering effects: the default clamp is max x 2, equal to steer(); the live box validates its input', () => {
    const m = readManifest(fx.crate),
      ld = readLayer(fx.crate, m, 1);
    const i = ld.stats.findIndex((s) => (s.max ?? 0) > 0);
    const n = data.neuron(0, 1, i) as Obj;
    const model = modelFromCheckpoint(loadCheckpoint(fx.crateCkpt), new ReferenceBackend()) as LanguageModel<unknown>;
    const want = steer(
      model,
      Array.from(Buffer.from('1 2 3 4 5')),
      { layer: 1, neuron: i, value: STEER_FACTOR * (ld.stats[i].max as number) },
      { top: 10, maxId: 256 },
    );
    model.free();
    expect(n.steer.value).toBeCloseTo(STEER_FACTOR * (ld.stats[i].max as number), 4);
    expect(n.steer.top.map((e: Obj) => e.id)).toEqual(want.top.map((e) => e.id));
    n.steer.top.forEach((e: Obj, k: number) => expect(e.delta).toBeCloseTo(want.top[k].delta, 4));
    const dead = ld.stats.findIndex((s) => !((s.max ?? 0) > 0));
    if (dead >= 0) expect((data.neuron(0, 1, dead) as Obj).steer.skipped).toMatch(/dead/);
    expect(() => data.steer(0, 1, H, 1, 'ab')).toThrow(/neuron 64 is out of range/);
    expect(() => data.steer(0, 1, 0, NaN, 'ab')).toThrow(/finite/);
    expect(() => data.steer(0, 1, 0, 1, '')).toThrow(/empty/);
  });
});

describe('the synthetic collection of the first-paint benchmark', () => {
  it('is a valid collection (the neurons reader accepts it); without a checkpoint the viewer says so', async () => {
    const d = path.join(dir, 'synthetic');
    const m = writeSyntheticCollection(d, { layers: 2, neurons: 8, tokens: 4096 });
    const ld = readLayer(d, readManifest(d), 1);
    expect(ld.records).toHaveLength(8);
    expect(
      ld.records[3].most_positive_activation_records[0].activations[ld.positions[3].top[0] - Math.max(0, ld.positions[3].top[0] - m.excerpt.top.before)],
    ).toBe(ld.stats[3].max);
    const v = await ViewerData.open([d]);
    const c = (v.index() as Obj).collections[0];
    expect(c.model).toEqual({ available: false, note: expect.stringMatching(/checkpoint is not available/) });
    expect((v.neuron(0, 1, 3) as Obj).related).toBeNull();
    expect((v.table(0, 1) as Obj).rows).toHaveLength(8);
    v.free();
  });
});

describe('export and server', () => {
  it('exports every page as a script (one per neuron), replaces an earlier export, refuses a foreign directory', () => {
    const out = path.join(dir, 'site');
    const r = exportSite(data, out, { appJs });
    const neurons = 2 * H + 2 * H;
    expect(r.neurons).toBe(neurons);
    expect(fs.existsSync(path.join(out, 'data/c0/layer-1/n63.js'))).toBe(true);
    expect(fs.readFileSync(path.join(out, 'data/c1/layer-0/table.js'), 'utf8')).toMatch(/^crateViewerData\("c1\/layer-0\/table", \{/);
    expect(fs.readFileSync(path.join(out, 'index.html'), 'utf8')).not.toMatch(/https?:\/\//); // nothing from the network
    fs.writeFileSync(path.join(out, 'stale.txt'), 'x');
    exportSite(data, out, { appJs });
    expect(fs.existsSync(path.join(out, 'stale.txt'))).toBe(false);
    expect(fs.existsSync(path.join(out, SITE_MARKER))).toBe(true);
    const foreign = path.join(dir, 'foreign');
    fs.mkdirSync(foreign);
    fs.writeFileSync(path.join(foreign, 'keep.txt'), 'mine');
    expect(() => exportSite(data, foreign, { appJs })).toThrow(/not a viewer export.*refusing/);
    expect(fs.readFileSync(path.join(foreign, 'keep.txt'), 'utf8')).toBe('mine');
    expect(fs.readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('serves on 127.0.0.1 only: pages, data scripts, steering API, 404/405/403/400, errors shown as scripts', async () => {
    const srv = await startServer(data, { port: 0, appJs });
    const get = (p: string, host = `127.0.0.1:${srv.port}`, method = 'GET') =>
      new Promise<{ status: number; body: string; type: string }>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: srv.port, path: p, method, headers: { host } }, (res) => {
          let body = '';
          res.on('data', (c) => {
            body += c;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body, type: String(res.headers['content-type']) }));
        });
        req.on('error', reject);
        req.end();
      });
    try {
      expect((await get('/')).body).toMatch(/<script src="app.js">/);
      expect((await get('/app.js')).body).toBe(appJs);
      const idx = await get('/data/index.js');
      expect(idx.body).toMatch(/"live":true/);
      const n = await get('/data/c0/layer-1/n3.js');
      expect(n.type).toMatch(/javascript/);
      expect(JSON.parse(n.body.slice(n.body.indexOf(', ') + 2, -3))).toEqual(JSON.parse(JSON.stringify(data.neuron(0, 1, 3))));
      expect((await get(`/data/c0/layer-1/n${H}.js`)).body).toMatch(
        /^crateViewerError\("c0\/layer-1\/n64", "neuron 64 is out of range: layer 1 has 64 neurons/,
      );
      const s = await get('/api/steer?c=0&layer=1&neuron=3&value=2.5&prompt=ab');
      expect(s.status).toBe(200);
      expect(JSON.parse(s.body)).toEqual(JSON.parse(JSON.stringify(data.steer(0, 1, 3, 2.5, 'ab'))));
      const bad = await get('/api/steer?c=0&layer=1&neuron=3&value=abc');
      expect(bad.status).toBe(400);
      expect(JSON.parse(bad.body).error).toMatch(/'value' must be a finite decimal number/);
      expect((await get('/api/steer?c=0&layer=7&neuron=3&value=1')).status).toBe(422);
      expect((await get('/nope')).status).toBe(404);
      expect((await get('/', `127.0.0.1:${srv.port}`, 'POST')).status).toBe(405);
      expect((await get('/', `evil.example:${srv.port}`)).status).toBe(403);
    } finally {
      await srv.close();
    }
  });
});

describe('bad input: one line, non-zero exit', () => {
  const copy = (src: string, name: string) => {
    const d = path.join(dir, name);
    fs.cpSync(src, d, { recursive: true });
    return d;
  };

  it('a collection of another format version, an incomplete one, a missing one, a file', async () => {
    const v2 = copy(fx.gpt2, 'v2');
    const mf = path.join(v2, 'manifest.json');
    fs.writeFileSync(mf, JSON.stringify({ ...JSON.parse(fs.readFileSync(mf, 'utf8')), format_version: 2 }));
    const noManifest = copy(fx.gpt2, 'nomanifest');
    fs.rmSync(path.join(noManifest, 'manifest.json'));
    const truncated = copy(fx.gpt2, 'truncated');
    const rf = path.join(truncated, 'layer-1', 'records.jsonl');
    const lines = fs.readFileSync(rf, 'utf8').split('\n');
    fs.writeFileSync(rf, lines.slice(0, 10).join('\n') + '\n' + lines[10].slice(0, 50));
    const noLayer = copy(fx.gpt2, 'nolayer');
    fs.rmSync(path.join(noLayer, 'layer-0'), { recursive: true });
    const cases: [string, RegExp][] = [
      [v2, /format_version 2 is not supported/],
      [noManifest, /not a complete neuron collection: it has no manifest\.json/],
      [truncated, /records\.jsonl: 11 lines, but the manifest says there are 64 neurons/],
      [noLayer, /incomplete: layer 0 is in the manifest but .* is missing/],
      [path.join(dir, 'missing'), /does not exist/],
      [path.join(dir, 'text.txt'), /is not a directory/],
    ];
    for (const [d, re] of cases) {
      const r = await capture(['neurons', 'view', d, '--export', path.join(dir, 'never'), '--backend', 'reference']);
      expect(r.code, d).toBe(1);
      expect(r.err.trim().split('\n'), r.err).toHaveLength(1);
      expect(r.err).toMatch(re);
    }
    expect(fs.existsSync(path.join(dir, 'never'))).toBe(false);
  });

  it("a port in use (exit 2), bad options (exit 2), a checkpoint that is not the collection's (exit 1)", async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const r = await capture(['neurons', 'view', fx.gpt2, '--port', String(port), '--backend', 'reference', '--no-steer', '--no-weights']);
      expect(r.code).toBe(2);
      expect(r.err.trim()).toBe(`crate-ts neurons: port ${port} is in use on 127.0.0.1; choose another with --port`);
    } finally {
      blocker.close();
    }
    const bad: [string[], RegExp][] = [
      [['--port', '70000'], /--port must be an integer from 0 to 65535/],
      [['--port', '1', '--export', 'x'], /either --port .* or --export/],
      [['--labels', 'a,b'], /--labels has 2 labels for 1 directories/],
      [['--frobnicate'], /unknown option '--frobnicate'/i],
    ];
    for (const [args, re] of bad) {
      const r = await capture(['neurons', 'view', fx.gpt2, ...args]);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(re);
    }
    const wrong = await capture(['neurons', 'view', fx.gpt2, '--checkpoint', fx.crateCkpt, '--export', path.join(dir, 'never2'), '--backend', 'reference']);
    expect(wrong.code).toBe(1);
    expect(wrong.err).toMatch(/is not the one collection .* was made from \(sha256/);
  });

  it('a neuron out of range in the library; a hostile LLM file becomes a warning, not a crash', async () => {
    expect(() => data.neuron(0, 0, H)).toThrow(/neuron 64 is out of range: layer 0 has 64 neurons \(0\.\.63\)/);
    expect(() => data.table(0, 5)).toThrow(/layer 5 was not collected/);
    const hostile = copy(fx.crate, 'hostile');
    fs.writeFileSync(path.join(hostile, 'llm-test', 'tar', 'layer-0.jsonl'), '{"dataclass_name": "NeuronSimulationResults", "neuron_id": 3}\n');
    const v = await ViewerData.open([hostile], { backend: new ReferenceBackend(), steer: false, weights: false });
    const idx = v.index() as Obj;
    expect(idx.collections[0].warnings.join('\n')).toMatch(/LLM results .*layer-0\.jsonl could not be read: .*no neuron_id\.neuron_index/);
    expect((v.neuron(0, 0, 0) as Obj).llm).toEqual([]);
    v.free();
  });
});

describe('one unit for scores', () => {
  it("the layer table's mean is the mean of the neuron table's column, and a neuron page shows its row's value", () => {
    const idx = data.index() as Obj;
    for (const [ci, c] of (idx.collections as Obj[]).entries())
      for (const l of c.layers) {
        const rows = (data.table(ci, l.layer) as Obj).rows as Obj[];
        for (const [k, key] of [
          [1, 'tar'],
          [2, 'randomOnly'],
        ] as const) {
          const xs = rows.map((r) => r[k]).filter((x): x is number => x !== null);
          expect(xs.length).toBeGreaterThan(0);
          expect(l[key]).toBeCloseTo(xs.reduce((a, b) => a + b, 0) / xs.length, 1);
        }
        const n = data.neuron(ci, l.layer, 5) as Obj;
        expect(n.scores?.tar ?? null).toBe(rows[5][1]);
      }
    // the LLM means too
    const rows0 = (data.table(0, 0) as Obj).rows as Obj[];
    const llm = rows0.map((r) => r[4]).filter((x): x is number => x !== null);
    expect(idx.collections[0].layers[0].llm['llm-test'].tar).toBeCloseTo(llm.reduce((a, b) => a + b, 0) / llm.length, 3);
  });
});

/** GET through node's http client with any headers (the viewer's Host by default). */
function request(port: number, p: string, headers: Record<string, string> = {}, method = 'GET') {
  return new Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, method, headers: { host: `127.0.0.1:${port}`, ...headers } }, (res) => {
      let body = '';
      res.on('data', (c) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Every file under a directory, as [relative path, text]. */
function allFiles(root: string): [string, string][] {
  const out: [string, string][] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const f = path.join(d, e.name);
      if (e.isDirectory()) walk(f);
      else out.push([path.relative(root, f), fs.readFileSync(f, 'utf8')]);
    }
  };
  walk(root);
  return out;
}

describe('safe while browsing', () => {
  it('every response carries Cross-Origin-Resource-Policy: same-origin and X-Content-Type-Options: nosniff', async () => {
    const srv = await startServer(data, { port: 0, appJs });
    try {
      const paths: [string, string?, Record<string, string>?][] = [
        ['/'],
        ['/app.js'],
        ['/style.css'],
        ['/data/index.js'],
        ['/data/c0/layer-0/table.js'],
        ['/data/c0/layer-1/n3.js'],
        ['/data/c0/layer-1/n999.js'],
        ['/api/steer?c=0&layer=1&neuron=3&value=1&prompt=ab'],
        ['/api/steer?c=0&layer=1&neuron=3&value=x'],
        ['/nope'],
        ['/', 'POST'],
        ['/data/index.js', 'GET', { host: 'evil.example' }],
        ['/data/index.js', 'GET', { 'sec-fetch-site': 'cross-site' }],
      ];
      const seen = new Set<number>();
      for (const [p, method, headers] of paths) {
        const r = await request(srv.port, p, headers ?? {}, method ?? 'GET');
        seen.add(r.status);
        expect(r.headers['cross-origin-resource-policy'], p).toBe('same-origin');
        expect(r.headers['x-content-type-options'], p).toBe('nosniff');
      }
      expect([...seen].sort()).toEqual([200, 400, 403, 404, 405]);
    } finally {
      await srv.close();
    }
  });

  it("refuses another site's page (Sec-Fetch-Site cross-site or same-site, a foreign Origin) on /data/* and /api/steer before doing any work", async () => {
    const v = await ViewerData.open([fx.crate], { backend: new ReferenceBackend(), live: true, steer: false, weights: false });
    const srv = await startServer(v, { port: 0, appJs });
    try {
      for (const site of ['cross-site', 'same-site', 'CROSS-SITE']) {
        for (const p of ['/data/index.js', '/data/c0/layer-1/n3.js', '/api/steer?c=0&layer=1&neuron=3&value=1&prompt=other']) {
          const r = await request(srv.port, p, { 'sec-fetch-site': site });
          expect(r.status, `${site} ${p}`).toBe(403);
          expect(JSON.parse(r.body).error).toMatch(/does not answer other sites' pages/);
        }
      }
      for (const origin of ['null', 'http://127.0.0.1:1', `http://evil.example:${srv.port}`, `https://127.0.0.1:${srv.port}`]) {
        const r = await request(srv.port, '/api/steer?c=0&layer=1&neuron=3&value=1&prompt=other', { origin });
        expect(r.status, origin).toBe(403);
        expect(JSON.parse(r.body).error).toMatch(/\(Origin: /);
      }
      expect(v.steerCacheSize(0)).toBe(0); // nothing was computed
      expect((await request(srv.port, '/api/steer?c=0&layer=1&neuron=3&value=1&prompt=ab', { origin: `http://127.0.0.1:${srv.port}` })).status).toBe(200);
      // the viewer's own pages (same-origin) and a typed address or bookmark (none) are served
      for (const site of ['same-origin', 'none']) {
        expect((await request(srv.port, '/data/index.js', { 'sec-fetch-site': site })).status).toBe(200);
        expect((await request(srv.port, '/api/steer?c=0&layer=1&neuron=3&value=1&prompt=ab', { 'sec-fetch-site': site })).status).toBe(200);
      }
      // navigating to the viewer from elsewhere still opens it (the page itself holds no data)
      expect((await request(srv.port, '/', { 'sec-fetch-site': 'cross-site' })).status).toBe(200);
    } finally {
      await srv.close();
      v.free();
    }
  });

  it('the steering parameters are strict decimals: 0x10 is not 16, a value past float32 is a 400, not an empty result', async () => {
    const srv = await startServer(data, { port: 0, appJs });
    const steerQ = (q: string) => request(srv.port, `/api/steer?${q}&prompt=ab`);
    try {
      const ok = await steerQ('c=0&layer=1&neuron=3&value=16');
      expect(ok.status).toBe(200);
      expect(JSON.parse(ok.body).value).toBe(16);
      for (const value of ['0x10', '0b10000', '0o20', 'Infinity', '-Infinity', '1e39', '-3.5e38', '3.4028236e38', ' 16', '16 ', '1_6', '']) {
        const r = await steerQ(`c=0&layer=1&neuron=3&value=${encodeURIComponent(value)}`);
        expect(r.status, value).toBe(400);
        expect(JSON.parse(r.body).error, value).toMatch(/'value' must be a finite decimal number|outside float32's range/);
      }
      expect(JSON.parse((await steerQ('c=0&layer=1&neuron=3&value=1e39')).body).error).toMatch(/outside float32's range/);
      for (const q of ['c=0x0&layer=1&neuron=3', 'c=0&layer=1.0&neuron=3', 'c=0&layer=1&neuron=0x3', 'c=0&layer=1&neuron=-1', 'c=0&layer=1&neuron=%203'])
        expect((await steerQ(`${q}&value=1`)).status, q).toBe(400);
      // the largest float32 itself and decimals of every shape are numbers
      for (const value of ['3.4028234e38', '-2.5', '.5', '5.', '+1e-3'])
        expect((await steerQ(`c=0&layer=1&neuron=3&value=${encodeURIComponent(value)}`)).status, value).toBe(200);
      expect(() => data.steer(0, 1, 3, 1e39, 'ab')).toThrow(/outside float32's range/);
    } finally {
      await srv.close();
    }
  });

  it(`the unsteered distributions are an LRU of ${STEER_CACHE_PROMPTS} prompts: many distinct prompts do not grow it, and results do not change`, () => {
    const first = JSON.stringify(data.steer(0, 1, 3, 2, 'p0'));
    for (let k = 0; k < 3 * STEER_CACHE_PROMPTS; k++) {
      data.steer(0, 1, 3, 2, `p${k}`);
      expect(data.steerCacheSize(0)).toBeLessThanOrEqual(STEER_CACHE_PROMPTS);
    }
    expect(data.steerCacheSize(0)).toBe(STEER_CACHE_PROMPTS);
    expect(JSON.stringify(data.steer(0, 1, 3, 2, 'p0'))).toBe(first); // recomputed after eviction: the same
  });
});

describe('what an export or a shared collection gives away', () => {
  const copy = (src: string, name: string) => {
    const d = path.join(dir, name);
    fs.cpSync(src, d, { recursive: true });
    return d;
  };
  const SECRET = 'root:x:0:0:secret-content';

  it('no absolute path of this machine in an export, the live index, warnings or error pages: names and sha256s', async () => {
    // a collection with problems whose messages name files: a bad LLM file (a warning), a bad record line (an error page)
    const col = copy(fx.crate, 'paths-crate');
    fs.writeFileSync(path.join(col, 'llm-test', 'tar', 'layer-1.jsonl'), '{"dataclass_name": "NeuronSimulationResults"}\n');
    const v = await ViewerData.open([col, fx.gpt2], { backend: new ReferenceBackend(), live: true, checkpoints: [fx.crateCkpt] });
    const real = fs.realpathSync(dir);
    const leaks = (text: string) => [dir, real, os.homedir() + path.sep, process.cwd() + path.sep].filter((p) => text.includes(p));
    try {
      const out = path.join(dir, 'paths-site');
      exportSite(v, out, { appJs, onProgress: () => undefined });
      const files = allFiles(out);
      expect(files.length).toBeGreaterThan(100);
      for (const [f, text] of files) expect(leaks(text), f).toEqual([]);
      const idx = v.index() as Obj;
      const c0 = idx.collections[0];
      expect(c0.name).toBe('paths-crate');
      expect(c0.checkpoint).toMatchObject({ file: 'crate.safetensors', sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
      expect(c0.data.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(c0.data.source).toBe('text.txt');
      expect(c0.warnings.join('\n')).toMatch(/LLM results paths-crate\/llm-test\/tar\/layer-1\.jsonl could not be read/);
      expect(c0.model.note).toMatch(/^weights from crate\.safetensors/);
      const marker = JSON.parse(fs.readFileSync(path.join(out, SITE_MARKER), 'utf8'));
      expect(marker.collections[0]).toEqual({
        name: 'paths-crate',
        label: c0.label,
        checkpoint_sha256: c0.checkpoint.sha256,
        data_sha256: c0.data.sha256,
        tokens_sha256: c0.tokens_sha256,
      });
      // then a record line goes bad (same length: the line offsets hold), for an error page
      const rf = path.join(col, 'layer-1', 'records.jsonl');
      const lines = fs.readFileSync(rf, 'utf8').split('\n');
      lines[7] = '{' + ' '.repeat(lines[7].length - 1);
      fs.writeFileSync(rf, lines.join('\n'));
      const srv = await startServer(v, { port: 0, appJs });
      try {
        const live = await request(srv.port, '/data/index.js');
        expect(live.status).toBe(200);
        expect(leaks(live.body)).toEqual([]);
        const bad = await request(srv.port, '/data/c0/layer-1/n7.js');
        expect(bad.body).toMatch(/^crateViewerError\("c0\/layer-1\/n7", "paths-crate\/layer-1\/records\.jsonl:8: not valid JSON/);
        expect(leaks(bad.body)).toEqual([]);
      } finally {
        await srv.close();
      }
    } finally {
      v.free();
    }
  }, 120_000);

  it('a link that leaves the collection is refused (required files) or skipped with a warning (optional ones); nothing quotes the target', async () => {
    const outside = path.join(dir, 'outside.txt');
    fs.writeFileSync(outside, `${SECRET}\n`.repeat(H));
    for (const rel of ['manifest.json', 'layer-0/stats.jsonl', 'layer-1/records.jsonl', 'layer-1/positions.jsonl', 'tokens.u32', 'layer-0']) {
      const col = copy(fx.gpt2, `link-${rel.replace(/\W/g, '-')}`);
      fs.rmSync(path.join(col, rel), { recursive: true });
      fs.symlinkSync(rel === 'layer-0' ? path.join(fx.crate, 'layer-0') : outside, path.join(col, rel));
      let msg = '';
      try {
        await ViewerData.open([col], { steer: false, weights: false });
      } catch (e) {
        msg = (e as Error).message;
      }
      expect(msg, rel).toMatch(new RegExp(`'${rel}' is a link that leaves the collection directory; refusing to follow it`));
      expect(msg).not.toContain('root:x');
    }
    // a link inside the collection is fine
    const inside = copy(fx.gpt2, 'link-inside');
    fs.renameSync(path.join(inside, 'layer-0', 'stats.jsonl'), path.join(inside, 'stats-0.jsonl'));
    fs.symlinkSync(path.join('..', 'stats-0.jsonl'), path.join(inside, 'layer-0', 'stats.jsonl'));
    (await ViewerData.open([inside], { steer: false, weights: false })).free();
    // optional files: skipped with a warning
    const opt = copy(fx.crate, 'link-optional');
    for (const f of ['scores-lookup.jsonl', 'llm-test/tar/layer-0.jsonl']) {
      fs.rmSync(path.join(opt, f));
      fs.symlinkSync(outside, path.join(opt, f));
    }
    const v = await ViewerData.open([opt], { steer: false, weights: false });
    const w = ((v.index() as Obj).collections[0].warnings as string[]).join('\n');
    v.free();
    expect(w).toMatch(/scores-lookup\.jsonl was not read: 'scores-lookup\.jsonl' is a link that leaves the collection directory/);
    expect(w).toMatch(/LLM results .*layer-0\.jsonl were not read: 'llm-test\/tar\/layer-0\.jsonl' is a link that leaves/);
    expect(w).not.toContain('root:x');
  });

  it('parse errors say where, never what the file holds (page, export, terminal)', async () => {
    const cases: [string, (col: string) => void, RegExp][] = [
      ['stats', (col) => fs.writeFileSync(path.join(col, 'layer-0', 'stats.jsonl'), `${SECRET}\n`.repeat(H)), /stats\.jsonl:1: not valid JSON/],
      ['manifest', (col) => fs.writeFileSync(path.join(col, 'manifest.json'), SECRET), /manifest\.json: not valid JSON/],
    ];
    for (const [name, spoil, re] of cases) {
      const col = copy(fx.gpt2, `parse-${name}`);
      spoil(col);
      const r = await capture(['neurons', 'view', col, '--export', path.join(dir, 'never-parse'), '--backend', 'reference']);
      expect(r.code, name).toBe(1);
      expect(r.err).toMatch(re);
      expect(r.err).not.toContain('root:x');
    }
    // optional files and a neuron's record line: warnings and error pages without the content
    const col = copy(fx.crate, 'parse-optional');
    fs.writeFileSync(path.join(col, 'scores-lookup.jsonl'), `${SECRET}\n`);
    fs.writeFileSync(path.join(col, 'llm-test', 'tar', 'layer-0.jsonl'), `${SECRET}\n`);
    fs.mkdirSync(path.join(col, 'llm-test', 'explanations'));
    fs.writeFileSync(path.join(col, 'llm-test', 'explanations', 'layer-1.jsonl'), `${SECRET}\n`);
    const col2 = copy(fx.crate, 'parse-record');
    const rf = path.join(col2, 'layer-1', 'records.jsonl');
    const lines = fs.readFileSync(rf, 'utf8').split('\n');
    lines[2] = SECRET;
    fs.writeFileSync(rf, lines.join('\n'));
    const v = await ViewerData.open([col, col2], { steer: false, weights: false, live: true });
    const srv = await startServer(v, { port: 0, appJs });
    try {
      const idx = await request(srv.port, '/data/index.js');
      expect(idx.body).toMatch(/scores-lookup\.jsonl:1: not valid JSON/);
      expect(idx.body).toMatch(/llm-test\/tar\/layer-0\.jsonl could not be read: .*layer-0\.jsonl:1: not valid JSON/);
      expect(idx.body).toMatch(/explanations\/layer-1\.jsonl could not be read: .*not valid JSON/);
      const page = await request(srv.port, '/data/c1/layer-1/n2.js');
      expect(page.body).toMatch(/records\.jsonl:3: not valid JSON/);
      for (const body of [idx.body, page.body]) expect(body).not.toContain('root:x');
    } finally {
      await srv.close();
      v.free();
    }
  });
});
