// crate-ts neurons collect end to end on tiny byte-level models: every stored excerpt is recomputed
// from positions.jsonl, tokens.u32 and the checkpoint (float64 reference, float32 tolerance); the
// top-50 are the 50 largest of a brute-force pass; the moments match; and bad input gets a one-line
// error with the right exit code, including a disk that fills up mid-run.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { gunzipSync } from 'node:zlib';
import { LanguageModel } from '../src/model/lm.js';
import { makeConfig, type Arch } from '../src/model/config.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import { selectBackend } from '../src/backend/select.js';
import type { Backend } from '../src/backend/types.js';
import { saveCheckpoint, loadCheckpoint, modelFromCheckpoint } from '../src/checkpoint/checkpoint.js';
import { EMBEDDED_CORPUS } from '../src/data/corpus.js';
import { collect } from '../src/neurons/collect.js';
import { loadTokenizer } from '../src/data/tokenizer.js';
import { TextStream, TokenBytes } from '../src/serve/tokens.js';
import { readManifest, readLayer, readTokens, selectedOffset, type CollectionManifest } from '../src/neurons/format.js';
import { capture } from './helpers/capture.js';

const T = 16;
let dir: string;
let crateCkpt: string, gptCkpt: string;
let fast: { name: string; backend: Backend<unknown> };

function makeCheckpoint(arch: Arch, seed: number): string {
  const model = new LanguageModel(new ReferenceBackend(), makeConfig('char-tiny', { arch, nEmbd: 16, nHead: 2, nLayer: 2, blockSize: T }), { seed });
  const file = path.join(dir, `${arch}-${seed}.safetensors`);
  saveCheckpoint(file, { model: model as LanguageModel<unknown>, tokenizer: 'byte' });
  model.free();
  return file;
}

/** Every layer's hook activations over all N tokens, window by window: (N, H) row-major. */
function bruteForce(ckpt: string, backend: Backend<unknown>, tokens: Uint32Array, hooks: string[], batch: number): Float64Array[] {
  const model = modelFromCheckpoint(loadCheckpoint(ckpt), backend) as LanguageModel<unknown>;
  const nWin = tokens.length / T;
  const out = hooks.map((h) => new Float64Array(tokens.length * model.hookShape(h, 1, T)[2]));
  for (let w = 0; w < nWin; w += batch) {
    const B = Math.min(batch, nWin - w);
    const { cache } = model.runWithCache(Array.from(tokens.subarray(w * T, (w + B) * T)), B, T, { names: hooks });
    hooks.forEach((h, j) => {
      const a = cache.get(h),
        H = a.shape[2];
      for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let i = 0; i < H; i++) out[j][((w + b) * T + t) * H + i] = a.get(b, t, i);
    });
  }
  model.free();
  return out;
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-neurons-'));
  crateCkpt = makeCheckpoint('crate', 3);
  gptCkpt = makeCheckpoint('gpt2', 4);
  try {
    const s = await selectBackend('cpu');
    fast = { name: 'cpu', backend: s.backend };
  } catch {
    fast = { name: 'reference', backend: new ReferenceBackend() as Backend<unknown> };
  }
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('neurons collect: records recomputed from positions, tokens and the checkpoint', () => {
  let m: CollectionManifest, out: string;
  beforeAll(async () => {
    out = path.join(dir, 'crate-both');
    await collect({ checkpoint: crateCkpt, tokens: 40 * T + 5, variant: 'both', seed: 7, backend: fast.backend, batch: 3, out, cacheDir: null });
    m = readManifest(out);
  });

  it('manifest: N cut to whole windows, layers, hooks, widths, geometry; tokens.u32 = the first N bytes of the corpus', () => {
    expect(m.n_tokens).toBe(40 * T);
    expect(m.window).toBe(T);
    expect(m.layers).toEqual([0, 1]);
    expect(m.hooks).toEqual(['blocks.0.hook_neurons', 'blocks.1.hook_neurons']);
    expect(m.neurons).toEqual([64, 64]);
    expect(m.excerpt.top).toEqual({ before: 32, after: 32 });
    expect(m.excerpt.quantile).toEqual({ before: 4, after: 4 });
    expect(m.checkpoint.sha256).toMatch(/^[0-9a-f]{64}$/);
    const tokens = readTokens(out, m);
    const corpus = gunzipSync(fs.readFileSync(EMBEDDED_CORPUS));
    expect(Array.from(tokens)).toEqual(Array.from(corpus.subarray(0, m.n_tokens)));
  });

  it('every excerpt equals a float64 recomputation to float32 tolerance, and its tokens are the text each adds (as serve reports them)', async () => {
    const tokens = readTokens(out, m);
    const ref = bruteForce(crateCkpt, new ReferenceBackend() as Backend<unknown>, tokens, m.hooks, 4);
    // the text each token adds to the corpus before it (src/serve/tokens.ts); an excerpt's last
    // token may end inside a character, which then shows as U+FFFD
    const stream = new TextStream(await TokenBytes.forTokenizer(await loadTokenizer('byte')));
    const full = Array.from(tokens, (id) => stream.push(id));
    let checked = 0,
      worst = 0;
    const bad: string[] = [];
    m.layers.forEach((l, j) => {
      const ld = readLayer(out, m, l),
        H = m.neurons[j];
      ld.records.forEach((r, i) => {
        const p = ld.positions[i];
        const kinds: [typeof r.random_sample, number[], typeof m.excerpt.top][] = [
          [r.most_positive_activation_records, p.top, m.excerpt.top],
          [r.random_sample, p.random, m.excerpt.random],
          ...(r.random_sample_by_quantile ?? []).map(
            (bin, b) => [bin, p.quantile![b], m.excerpt.quantile] as [typeof r.random_sample, number[], typeof m.excerpt.top],
          ),
        ];
        for (const [recs, qs, g] of kinds) {
          recs.forEach((rec, k) => {
            const q = qs[k],
              s = Math.max(0, q - g.before),
              e = Math.min(m.n_tokens, q + g.after);
            expect(rec.tokens.length).toBe(e - s);
            expect(selectedOffset(q, g)).toBe(q - s);
            rec.activations.forEach((a, t) => {
              const want = ref[j][(s + t) * H + i];
              worst = Math.max(worst, Math.abs(a - want));
              if (!(Math.abs(a - want) <= 2e-5 + 1e-4 * Math.abs(want))) bad.push(`layer ${l} neuron ${i} position ${s + t}: ${a} vs ${want}`);
              const last = t === rec.tokens.length - 1;
              if (rec.tokens[t] !== full[s + t] && !(last && rec.tokens[t] === full[s + t] + '\uFFFD'))
                bad.push(`layer ${l} neuron ${i} position ${s + t}: token ${JSON.stringify(rec.tokens[t])}`);
              checked++;
            });
          });
        }
      });
    });
    expect(bad.slice(0, 5)).toEqual([]);
    expect(checked).toBeGreaterThan(100_000);
    expect(worst).toBeLessThan(1e-4);
  });

  it('the top-50 are the 50 largest of a brute-force pass on the same backend (ties to the lower position), descending', () => {
    const tokens = readTokens(out, m);
    const bf = bruteForce(crateCkpt, fast.backend, tokens, m.hooks, 3);
    let ties = 0;
    m.layers.forEach((l, j) => {
      const ld = readLayer(out, m, l),
        H = m.neurons[j];
      for (let i = 0; i < H; i++) {
        const v = (q: number) => bf[j][q * H + i];
        const order = Array.from({ length: m.n_tokens }, (_, q) => q).sort((a, b) => v(b) - v(a) || a - b);
        expect(ld.positions[i].top).toEqual(order.slice(0, 50));
        const top = ld.records[i].most_positive_activation_records;
        const sel = top.map((rec, k) => rec.activations[selectedOffset(ld.positions[i].top[k], m.excerpt.top)]);
        expect(sel).toEqual(order.slice(0, 50).map(v));
        for (let k = 1; k < 50; k++) if (sel[k] === sel[k - 1]) ties++;
        // moments over all N tokens
        const col = Array.from({ length: m.n_tokens }, (_, q) => v(q));
        const mean = col.reduce((a, b) => a + b, 0) / col.length;
        const variance = col.reduce((a, b) => a + (b - mean) ** 2, 0) / col.length;
        const st = ld.stats[i];
        expect(st.mean).toBeCloseTo(mean, 10);
        expect(st.variance).toBeCloseTo(variance, 10);
        expect(ld.records[i].mean).toBe(st.mean);
        expect(st.density).toBe(col.filter((a) => a > 0).length / col.length);
        expect(st.max).toBe(Math.max(...col));
        if (variance > 0) expect(ld.records[i].kurtosis).toBeCloseTo(st.m4! / variance ** 2, 8);
      }
    });
    expect(ties).toBeGreaterThan(0); // the untrained ReLU code has exact zeros among some neurons' top-50
  });

  it('the same seed reproduces the records byte for byte; random positions are uniform with replacement over [0, N)', async () => {
    const again = path.join(dir, 'crate-both-again');
    await collect({ checkpoint: crateCkpt, tokens: 40 * T, variant: 'both', seed: 7, backend: fast.backend, batch: 3, out: again, cacheDir: null });
    for (const f of ['layer-0/records.jsonl', 'layer-1/positions.jsonl', 'layer-1/stats.jsonl', 'tokens.u32']) {
      expect(fs.readFileSync(path.join(again, f)).equals(fs.readFileSync(path.join(out, f))), f).toBe(true);
    }
    const ld = readLayer(out, m, 0);
    const all = ld.positions.flatMap((p) => p.random);
    expect(all.length).toBe(64 * 50);
    expect(Math.abs(all.reduce((a, b) => a + b, 0) / all.length - m.n_tokens / 2)).toBeLessThan(m.n_tokens * 0.05);
  });
});

describe('neurons collect on GPT-2 with an explicit hook, and the CLI', () => {
  it('--hook blocks.1.mlp.hook_post collects layer 1 only, equal to the reference', async () => {
    const out = path.join(dir, 'gpt-l1');
    const r = await capture([
      'neurons',
      'collect',
      '--checkpoint',
      gptCkpt,
      '--tokens',
      String(20 * T),
      '--hook',
      'blocks.1.mlp.hook_post',
      '--backend',
      fast.name,
      '--out',
      out,
    ]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/collected 320 tokens .* tokens\/s .* peak RSS \d+ MiB/);
    const m = readManifest(out);
    expect(m.layers).toEqual([1]);
    expect(m.hooks).toEqual(['blocks.1.mlp.hook_post']);
    const ref = bruteForce(gptCkpt, new ReferenceBackend() as Backend<unknown>, readTokens(out, m), m.hooks, 2)[0];
    const ld = readLayer(out, m, 1);
    for (let i = 0; i < 64; i++) {
      const q = ld.positions[i].top[0];
      const a = ld.records[i].most_positive_activation_records[0].activations[selectedOffset(q, m.excerpt.top)];
      expect(Math.abs(a - ref[q * 64 + i])).toBeLessThanOrEqual(2e-5 + 1e-4 * Math.abs(ref[q * 64 + i]));
    }
  });

  it('score --json, scores-lookup.jsonl, show, and compare --svg', async () => {
    const a = path.join(dir, 'cli-crate'),
      b = path.join(dir, 'cli-gpt');
    expect(
      (
        await capture([
          'neurons',
          'collect',
          '--checkpoint',
          crateCkpt,
          '--tokens',
          String(30 * T),
          '--variant',
          'anthropic',
          '--backend',
          fast.name,
          '--out',
          a,
        ])
      ).code,
    ).toBe(0);
    expect(
      (await capture(['neurons', 'collect', '--checkpoint', gptCkpt, '--tokens', String(30 * T), '--variant', 'anthropic', '--backend', fast.name, '--out', b]))
        .code,
    ).toBe(0);
    const s = await capture(['neurons', 'score', a, '--json']);
    expect(s.code).toBe(0);
    const j = JSON.parse(s.out) as {
      layers: { layer: number; tar: number; randomOnly: number; anthropic: number; neurons: number; scored: { tar: number }; dead: number }[];
      model: { tar: { mean: number; variance: number } };
    };
    expect(j.layers.map((l) => l.layer)).toEqual([0, 1]);
    for (const l of j.layers) {
      expect(l.neurons).toBe(64);
      for (const v of [l.tar, l.randomOnly, l.anthropic]) {
        expect(v).toBeGreaterThan(-100);
        expect(v).toBeLessThanOrEqual(100);
      }
    }
    const lines = fs
      .readFileSync(path.join(a, 'scores-lookup.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((x) => JSON.parse(x) as { tar: number | null; dead: boolean });
    expect(lines).toHaveLength(128);
    // the layer mean is the mean of the per-neuron scores that are defined, ×100
    const l0 = lines
      .slice(0, 64)
      .filter((x) => x.tar !== null)
      .map((x) => x.tar as number);
    expect(j.layers[0].tar).toBeCloseTo((100 * l0.reduce((x, y) => x + y, 0)) / l0.length, 9);
    expect(j.layers[0].scored.tar).toBe(l0.length);
    expect(j.model.tar.mean).toBeCloseTo((j.layers[0].tar + j.layers[1].tar) / 2, 9);

    const show = await capture(['neurons', 'show', a, '--layer', '1', '--neuron', '5', '--max', '2']);
    expect(show.code).toBe(0);
    expect(show.out).toMatch(/^layer 1 neuron 5 \(blocks\.1\.hook_neurons\)/);
    expect(show.out).toMatch(/top activations \(2 of 50\)/);
    expect(show.out).toMatch(/quantile bin 10/);
    expect(show.out).not.toMatch(/\x1b\[/); // not a TTY: plain text
    const colored = await capture(['neurons', 'show', a, '--layer', '1', '--neuron', '5', '--max', '1', '--color', 'always']);
    expect(colored.out).toMatch(/\x1b\[38;2;0;0;0;48;2;255;\d+;\d+m/); // white-to-orange backgrounds
    expect((await capture(['neurons', 'show', a, '--layer', '1', '--neuron', '64'])).err).toMatch(/--neuron 64 is out of range: layer 1 has 64 neurons/);

    const svg = path.join(dir, 'cmp.svg');
    const c = await capture(['neurons', 'compare', a, b, '--labels', 'CRATE,GPT-2', '--svg', svg]);
    expect(c.code).toBe(0);
    expect(c.out).toMatch(/Relative improvement over GPT-2/);
    const text = fs.readFileSync(svg, 'utf8');
    expect(text.startsWith('<svg')).toBe(true);
    for (const label of ['CRATE', 'GPT-2', 'TaR', 'Random-only', 'Anthropic', 'layer', 'score × 100']) expect(text).toContain(label);
  });
});

describe('neurons collect: bad input is a one-line error', () => {
  const oneLine = (r: { err: string }) => expect(r.err.trim().split('\n')).toHaveLength(1);
  const base = (out: string) => ['neurons', 'collect', '--checkpoint', crateCkpt, '--tokens', String(8 * T), '--backend', 'reference', '--out', out];

  it('missing, truncated and foreign checkpoints', async () => {
    const missing = await capture(['neurons', 'collect', '--checkpoint', path.join(dir, 'nope.safetensors'), '--out', path.join(dir, 'x1')]);
    expect(missing.code).toBe(1);
    oneLine(missing);
    expect(missing.err).toMatch(/nope\.safetensors' does not exist/);
    const trunc = path.join(dir, 'trunc.safetensors');
    fs.writeFileSync(trunc, fs.readFileSync(crateCkpt).subarray(0, 3000));
    const t = await capture(['neurons', 'collect', '--checkpoint', trunc, '--out', path.join(dir, 'x2')]);
    expect(t.code).toBe(1);
    oneLine(t);
    expect(t.err).toMatch(/trunc\.safetensors/);
    const text = path.join(dir, 'not-a-checkpoint.txt');
    fs.writeFileSync(text, 'hello');
    const n = await capture(['neurons', 'collect', '--checkpoint', text, '--out', path.join(dir, 'x3')]);
    expect(n.code).toBe(1);
    oneLine(n);
  });

  it('data of another tokenizer (GPT-2 ids for a byte model), missing data, N below one window', async () => {
    const bin = path.join(dir, 'gpt2-ids.bin');
    const b = Buffer.alloc(2 * 400);
    for (let i = 0; i < 400; i++) b.writeUInt16LE(i % 2 ? 15496 : 995, 2 * i);
    fs.writeFileSync(bin, b);
    const r = await capture([...base(path.join(dir, 'y1')), '--data', bin]);
    expect(r.code).toBe(1);
    oneLine(r);
    expect(r.err).toMatch(/id 995, outside the vocabulary of 256.*another tokenizer/);
    const miss = await capture([...base(path.join(dir, 'y2')), '--data', path.join(dir, 'absent.txt')]);
    expect(miss.code).toBe(1);
    oneLine(miss);
    expect(miss.err).toMatch(/absent\.txt' does not exist/);
    const small = await capture(['neurons', 'collect', '--checkpoint', crateCkpt, '--tokens', '10', '--backend', 'reference', '--out', path.join(dir, 'y3')]);
    expect(small.code).toBe(1);
    oneLine(small);
    expect(small.err).toMatch(/10 tokens are fewer than one window of 16/);
  });

  it('layers out of range, an unknown hook (the valid ones listed), bad options', async () => {
    const l = await capture([...base(path.join(dir, 'z1')), '--layers', '0,2']);
    expect(l.code).toBe(2);
    oneLine(l);
    expect(l.err).toMatch(/layer 2 is out of range: the model has 2 layers \(0\.\.1\)/);
    const h = await capture([...base(path.join(dir, 'z2')), '--hook', 'mlp.hook_post']);
    expect(h.code).toBe(2);
    oneLine(h);
    expect(h.err).toMatch(/unknown hook 'blocks\.0\.mlp\.hook_post'.*hook_neurons.*ista\.hook_code/);
    const shape = await capture([...base(path.join(dir, 'z3')), '--hook', 'attn.hook_pattern']);
    expect(shape.code).toBe(2);
    oneLine(shape);
    expect(shape.err).toMatch(/one vector per token/);
    for (const bad of [['--variant', 'x'], ['--tokens', 'many'], ['--bogus']]) {
      const r = await capture([...base(path.join(dir, 'z4')), ...bad]);
      expect(r.code).toBe(2);
      oneLine(r);
    }
  });

  it('an output directory holding another collection is refused unless --force', async () => {
    const out = path.join(dir, 'twice');
    expect((await capture(base(out))).code).toBe(0);
    const before = fs.readFileSync(path.join(out, 'manifest.json'), 'utf8');
    const again = await capture(base(out));
    expect(again.code).toBe(2);
    oneLine(again);
    expect(again.err).toMatch(/already holds a neuron collection; pass --force/);
    expect(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8')).toBe(before);
    const forced = await capture([...base(out), '--force', '--seed', '9']);
    expect(forced.code).toBe(0);
    expect(readManifest(out).seed).toBe(9);
  });

  it('a disk that fills up mid-run: DataError, no records.jsonl or manifest left looking complete, temporaries removed', async () => {
    const out = path.join(dir, 'full');
    let written = 0;
    const writeSync = (fd: number, buf: Uint8Array, off: number, len: number) => {
      if (written + len > 50_000) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      written += len;
      return fs.writeSync(fd, buf, off, len);
    };
    await expect(
      collect({ checkpoint: crateCkpt, tokens: 8 * T, backend: new ReferenceBackend() as Backend<unknown>, out, cacheDir: null, writeSync }),
    ).rejects.toThrow(/cannot write '.*records\.jsonl': no space left on the device/);
    expect(fs.existsSync(path.join(out, 'manifest.json'))).toBe(false);
    expect(fs.existsSync(path.join(out, 'layer-0', 'records.jsonl'))).toBe(false);
    expect(fs.readdirSync(path.join(out, 'layer-0')).filter((f) => f.includes('.tmp-'))).toEqual([]);
    const s = await capture(['neurons', 'score', out]);
    expect(s.code).toBe(1);
    oneLine(s);
    expect(s.err).toMatch(/not a complete neuron collection/);
  });

  it('a real full filesystem (a 200 KiB tmpfs; needs root, else skipped with the reason)', async (ctx) => {
    const mnt = path.join(dir, 'tmpfs');
    fs.mkdirSync(mnt);
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=200k', 'tmpfs', mnt], { stdio: 'pipe' });
    } catch (e) {
      ctx.skip(`cannot mount a tmpfs here (${String((e as Error).message).split('\n')[0]})`);
      return;
    }
    try {
      const r = await capture([
        'neurons',
        'collect',
        '--checkpoint',
        crateCkpt,
        '--tokens',
        String(40 * T),
        '--backend',
        'reference',
        '--out',
        path.join(mnt, 'c'),
      ]);
      expect(r.code).toBe(1);
      oneLine(r);
      expect(r.err).toMatch(/no space left on the device/);
      expect(fs.existsSync(path.join(mnt, 'c', 'manifest.json'))).toBe(false);
      const left = fs.existsSync(path.join(mnt, 'c', 'layer-0')) ? fs.readdirSync(path.join(mnt, 'c', 'layer-0')) : [];
      expect(left.filter((f) => f === 'records.jsonl' || f.includes('.tmp-'))).toEqual([]);
    } finally {
      execFileSync('umount', [mnt]);
    }
  });
});
