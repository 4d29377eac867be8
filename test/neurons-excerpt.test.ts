// Excerpt token strings (src/neurons/excerpt.ts): a character split over several byte-level tokens
// shows whole on the token that completes it, as `serve` reports a sequence's tokens (TextStream),
// with the earlier pieces "" and one activation per token; then end to end: a collection of a text
// full of curly quotes shows them in `neurons show`, in the viewer's data and in an export, and
// nowhere U+FFFD.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadTokenizer } from '../src/data/tokenizer.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import { collect } from '../src/neurons/collect.js';
import { excerptDecoder } from '../src/neurons/excerpt.js';
import { readLayer, readManifest, readTokens } from '../src/neurons/format.js';
import { TextStream, TokenBytes } from '../src/serve/tokens.js';
import { ViewerData } from '../src/viewer/data.js';
import { exportSite } from '../src/viewer/site.js';
import { buildAppJs, makeCheckpoint, T } from './viewer-fixture.js';
import { capture } from './helpers/capture.js';

const QUOTED = '“Call me Ishmael,” he said — ’tis the whale’s way… café 🐋. ';

/** What serve reports for the tokens of a sequence: the text each adds given those before it. */
async function serveTokens(name: 'byte' | 'gpt2', ids: number[]): Promise<string[]> {
  const tok = await loadTokenizer(name);
  const ts = new TextStream(await TokenBytes.forTokenizer(tok));
  const out = ids.map((id) => ts.push(id));
  out[out.length - 1] += ts.flush();
  return out;
}

describe('excerpt decoding', () => {
  for (const name of ['byte', 'gpt2'] as const) {
    it(`${name}: the whole text decodes as serve reports it; a split character sits on its last token; no U+FFFD`, async () => {
      const tok = await loadTokenizer(name);
      const ids = tok.encode(QUOTED.repeat(3));
      const dec = await excerptDecoder(tok);
      const got = dec(ids, 0, ids.length);
      expect(got).toEqual(await serveTokens(name, ids));
      expect(got.join('')).toBe(QUOTED.repeat(3));
      expect(got.join('')).not.toContain('\uFFFD');
      // some tokens are pieces of a character: shown as "", the character on the next one
      expect(got.filter((s) => s === '').length).toBeGreaterThan(0);
      for (const ch of ['“', '’', '—', '…', 'é', '🐋']) expect(got.some((s) => s.includes(ch))).toBe(true);
      // each alone, the old way, is U+FFFD for some of them
      expect(ids.some((id) => tok.decode([id]).includes('\uFFFD'))).toBe(true);
    });
  }

  it('an excerpt that starts inside a character shows it whole on its first token; one cut at the end is one U+FFFD', async () => {
    const tok = await loadTokenizer('byte');
    const ids = tok.encode('ab’cd'); // ’ = e2 80 99 at ids 2..4
    const dec = await excerptDecoder(tok);
    expect(dec(ids, 3, 4)).toEqual(['', '’', 'c', 'd']); // starts at 0x80: the context holds the lead byte
    expect(dec(ids, 4, 3)).toEqual(['’', 'c', 'd']);
    expect(dec(ids, 0, 4)).toEqual(['a', 'b', '', '\uFFFD']); // ends before 0x99
    expect(dec(ids, 0, 5)).toEqual(['a', 'b', '', '', '’']);
    expect(dec(ids, 0, 0)).toEqual([]);
  });
});

describe('a collection of curly-quoted text', () => {
  let dir: string, coll: string;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-excerpt-'));
    const data = path.join(dir, 'quoted.txt');
    fs.writeFileSync(data, QUOTED.repeat(40));
    const ckpt = makeCheckpoint(dir, 'crate', 5);
    coll = path.join(dir, 'coll');
    await collect({ checkpoint: ckpt, out: coll, data, tokens: 24 * T, variant: 'both', seed: 3, backend: new ReferenceBackend(), batch: 8, cacheDir: null });
  }, 120_000);
  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('records: per token one string and one activation, each string what serve reports for that position', async () => {
    const m = readManifest(coll),
      ld = readLayer(coll, m, 1),
      tokens = Array.from(readTokens(coll, m));
    const full = await serveTokens('byte', tokens);
    let multi = 0;
    for (const [i, r] of ld.records.entries())
      r.most_positive_activation_records.forEach((rec, j) => {
        expect(rec.tokens.length).toBe(rec.activations.length);
        const q = ld.positions[i].top[j],
          start = Math.max(0, q - m.excerpt.top.before);
        // inside the excerpt (its last token aside, which may be cut) the strings are serve's
        expect(rec.tokens.slice(0, -1)).toEqual(full.slice(start, start + rec.tokens.length - 1));
        multi += rec.tokens.filter((t) => /[^\x00-\x7f]/.test(t)).length;
        for (const t of rec.tokens.slice(0, -1)) expect(t).not.toContain('\uFFFD');
      });
    expect(multi).toBeGreaterThan(0);
  });

  it('neurons show, the viewer data and an export show the characters, never U+FFFD inside an excerpt', async () => {
    const m = readManifest(coll),
      ld = readLayer(coll, m, 1);
    // a neuron whose top records hold a curly quote that is not the records' last token
    const i = ld.records.findIndex((r) => r.most_positive_activation_records.some((x) => x.tokens.slice(0, -1).some((t) => /[’“”—…é]/.test(t))));
    expect(i).toBeGreaterThanOrEqual(0);
    const shown = await capture(['neurons', 'show', coll, '--layer', '1', '--neuron', String(i), '--color', 'never', '--max', '50']);
    expect(shown.code).toBe(0);
    expect(shown.out).toMatch(/[’“”—…é]/);
    // a record's line may end in a cut character; the rest is whole
    const lines = shown.out.split('\n').filter((l) => l.startsWith('  #'));
    for (const l of lines) expect(l.replace(/\uFFFD(\[[^\]]*\])?$/, '')).not.toContain('\uFFFD');

    const v = await ViewerData.open([coll], { steer: false, weights: false });
    try {
      const n = v.neuron(0, 1, i) as { top: { t: string[]; a: (number | null)[] }[] };
      expect(n.top.map((r) => r.t)).toEqual(ld.records[i].most_positive_activation_records.map((r) => r.tokens));
      expect(n.top.some((r) => r.t.some((t) => /[’“”—…é]/.test(t)))).toBe(true);
      const site = path.join(dir, 'site');
      exportSite(v, site, { appJs: buildAppJs() });
      const js = fs.readFileSync(path.join(site, 'data', 'c0', 'layer-1', `n${i}.js`), 'utf8');
      expect(js).toMatch(/[’“”—…é]/);
    } finally {
      v.free();
    }
  }, 120_000);
});
