// crate-ts sae train / eval: SAELens' files read by an independent parser, bitwise resume, the
// stop-and-save path, eval's figures recomputed from the files in float64, and one-line errors.
import { describe, expect, test, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { LanguageModel } from '../src/model/lm.js';
import { makeConfig } from '../src/model/config.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import type { Backend } from '../src/backend/types.js';
import { saveCheckpoint, loadCheckpoint, modelFromCheckpoint } from '../src/checkpoint/checkpoint.js';
import { loadDataset } from '../src/data/corpus.js';
import { loadTokenizer } from '../src/data/tokenizer.js';
import { trainSae, type SaeTrainOptions } from '../src/sae/train.js';
import { evalSae } from '../src/sae/eval.js';
import { loadSae } from '../src/sae/format.js';
import { nativeBackends } from './helpers/backends.js';

const natives = await nativeBackends();
const cpu = natives.find((n) => n.name === 'cpu')?.backend as Backend<unknown> | undefined;
const be: Backend<unknown> = cpu ?? (new ReferenceBackend() as Backend<unknown>);
const CLI = path.resolve('test/helpers/crate-ts-src.mjs');
const T = 32;
let dir = '';
let crateCk = '';
let gptCk = '';

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-sae-'));
  for (const arch of ['crate', 'gpt2'] as const) {
    const model = new LanguageModel(new ReferenceBackend(), makeConfig('char-tiny', { arch, nEmbd: 16, nHead: 2, nLayer: 2, blockSize: T }), { seed: 5 });
    saveCheckpoint(path.join(dir, `${arch}.safetensors`), { model: model as LanguageModel<unknown>, tokenizer: 'byte' });
  }
  crateCk = path.join(dir, 'crate.safetensors');
  gptCk = path.join(dir, 'gpt2.safetensors');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** An independent safetensors reader (the format's definition: u64 header length, JSON header, raw little-endian data). */
function readST(file: string): {
  header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  meta: Record<string, string>;
  f32: (name: string) => Float32Array;
} {
  const b = fs.readFileSync(file);
  const n = Number(b.readBigUInt64LE(0));
  const h = JSON.parse(b.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>;
  const meta = (h.__metadata__ ?? {}) as Record<string, string>;
  delete h.__metadata__;
  const header = h as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  return {
    header,
    meta,
    f32: (name) => {
      const e = header[name];
      const [s, t] = e.data_offsets;
      const out = new Float32Array((t - s) / 4);
      for (let i = 0; i < out.length; i++) out[i] = b.readFloatLE(8 + n + s + 4 * i);
      return out;
    },
  };
}

function opts(out: string, extra: Partial<SaeTrainOptions> = {}): SaeTrainOptions {
  return { checkpoint: crateCk, layer: 1, expansion: 2, tokens: 16 * 256, batchTokens: 256, bufferTokens: 1024, out, backend: be, logEvery: 4, ...extra };
}

describe('sae train: files in SAELens layout', () => {
  test('cfg.json, sae_weights (F32, SAELens shapes, unit decoder rows), sparsity, train.jsonl', async () => {
    const out = path.join(dir, 'files');
    const r = await trainSae(opts(out, { resampleAt: [5] }));
    expect(r.steps).toBe(16);
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'cfg.json'), 'utf8')) as Record<string, unknown> & {
      metadata: Record<string, unknown>;
      crate_ts: Record<string, unknown>;
    };
    const D = 64,
      S = 128;
    expect(cfg).toMatchObject({ architecture: 'standard', d_in: D, d_sae: S, dtype: 'float32', apply_b_dec_to_input: true, normalize_activations: 'none' });
    expect(cfg.metadata).toMatchObject({ hook_name: 'blocks.1.hook_neurons', hook_layer: 1, context_size: T, dataset_path: 'embedded:moby-dick' });
    expect(typeof cfg.metadata.model_name).toBe('string');
    // SAELens builds SAEMetadata(**metadata): only its field names may appear there
    const saelensMeta = [
      'model_name',
      'hook_name',
      'model_class_name',
      'hook_layer',
      'hook_head_index',
      'model_from_pretrained_kwargs',
      'prepend_bos',
      'exclude_special_tokens',
      'neuronpedia_id',
      'context_size',
      'seqpos_slice',
      'dataset_path',
      'sae_lens_version',
      'sae_lens_training_version',
    ];
    for (const k of Object.keys(cfg.metadata)) expect(saelensMeta).toContain(k);
    expect(cfg.crate_ts).toMatchObject({ layer: 1, steps: 16, tokens_seen: 16 * 256, seed: 0 });
    expect((cfg.crate_ts.checkpoint_sha256 as string).length).toBe(64);

    const w = readST(path.join(out, 'sae_weights.safetensors'));
    expect(Object.keys(w.header).sort()).toEqual(['W_dec', 'W_enc', 'b_dec', 'b_enc']);
    expect(w.header.W_enc).toMatchObject({ dtype: 'F32', shape: [D, S] });
    expect(w.header.W_dec).toMatchObject({ dtype: 'F32', shape: [S, D] });
    expect(w.header.b_enc).toMatchObject({ dtype: 'F32', shape: [S] });
    expect(w.header.b_dec).toMatchObject({ dtype: 'F32', shape: [D] });
    const Wd = w.f32('W_dec');
    for (let j = 0; j < S; j++) {
      let nn = 0;
      for (let i = 0; i < D; i++) nn += Wd[j * D + i] ** 2;
      expect(Math.abs(Math.sqrt(nn) - 1)).toBeLessThan(1e-5);
    }
    const sp = readST(path.join(out, 'sparsity.safetensors'));
    expect(sp.header.sparsity).toMatchObject({ dtype: 'F32', shape: [S] });
    for (const v of sp.f32('sparsity')) expect(v <= 0).toBe(true);
    const lines = fs.readFileSync(path.join(out, 'train.jsonl'), 'utf8').trim().split('\n');
    expect(lines.map((l) => (JSON.parse(l) as { step: number }).step)).toEqual([4, 8, 12, 16]);
    for (const l of lines) expect(Object.keys(JSON.parse(l) as object)).toEqual(expect.arrayContaining(['loss', 'fvu', 'l0', 'dead_fraction', 'lr']));
    // the loader reads it back exactly
    const l = loadSae(out);
    expect(l.k).toBe(S);
    expect(Array.from(l.weights.Wdec)).toEqual(Array.from(Wd));
  });

  const py = spawnSync('python3', ['-c', 'import safetensors.numpy, numpy'], { encoding: 'utf8' });
  test.skipIf(py.status !== 0)(
    `Python's safetensors reads the weights${py.status !== 0 ? ' (skipped: python3 has no safetensors/numpy module here)' : ''}`,
    () => {
      const out = path.join(dir, 'files');
      const r = spawnSync(
        'python3',
        [
          '-c',
          `import safetensors.numpy as s; t = s.load_file("${out}/sae_weights.safetensors"); print({k: (str(v.dtype), list(v.shape)) for k, v in sorted(t.items())})`,
        ],
        { encoding: 'utf8' },
      );
      expect(r.stdout).toContain("'W_enc': ('float32', [64, 128])");
    },
  );
});

describe('sae train: resume and stop', () => {
  for (const arch of ['relu', 'topk'] as const) {
    test(`${arch}: stopping at step 7 and resuming gives bitwise the weights of the uninterrupted run`, async () => {
      // relu: a strong L1 kills features, so the resample at step 10 (after the resume) draws from the generator
      const extra: Partial<SaeTrainOptions> = arch === 'relu' ? { resampleAt: [5, 10], l1: 200, lr: 0.02 } : { arch: 'topk', k: 4, deadTokens: 512 };
      const a = path.join(dir, `straight-${arch}`),
        b = path.join(dir, `resumed-${arch}`);
      await trainSae(opts(a, { ...extra, saveEvery: 0 }));
      let steps = 0;
      const first = await trainSae(opts(b, { ...extra, onProgress: () => {}, shouldStop: () => ++steps === 7 }));
      expect(first.stopped).toBe(true);
      expect(first.steps).toBe(7);
      expect(JSON.parse(fs.readFileSync(path.join(b, 'cfg.json'), 'utf8')).crate_ts.steps).toBe(7);
      const second = await trainSae({ out: b, resume: true, backend: be, logEvery: 4 });
      expect(second.steps).toBe(16);
      expect(fs.readFileSync(path.join(b, 'sae_weights.safetensors')).equals(fs.readFileSync(path.join(a, 'sae_weights.safetensors')))).toBe(true);
      expect(fs.readFileSync(path.join(b, 'sparsity.safetensors')).equals(fs.readFileSync(path.join(a, 'sparsity.safetensors')))).toBe(true);
      expect(fs.readFileSync(path.join(b, 'train.jsonl'), 'utf8')).toBe(fs.readFileSync(path.join(a, 'train.jsonl'), 'utf8'));
      const log = fs
        .readFileSync(path.join(a, 'train.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { step: number; resampled?: number; dead_fraction: number });
      if (arch === 'relu') expect(log.find((l) => l.step === 12)?.resampled ?? 0).toBeGreaterThan(0);
      else expect(Math.max(...log.map((l) => l.dead_fraction))).toBeGreaterThan(0);
    });
  }
});

describe('sae eval: the figures recomputed from the files in float64', () => {
  test('l0, fvu, mse, cosine, dead/dense fractions and the three cross-entropies', async () => {
    const out = path.join(dir, 'eval-sae');
    await trainSae({ ...opts(out), checkpoint: gptCk, layer: 0, arch: 'topk', k: 6 });
    const ref = new ReferenceBackend() as Backend<unknown>;
    const N = 8 * T;
    const r = await evalSae({ dir: out, checkpoint: gptCk, tokens: N, batch: 3, backend: ref });

    // independent: weights from the file, the model's activations, the SAE by hand in float64
    const w = readST(path.join(out, 'sae_weights.safetensors'));
    const We = w.f32('W_enc'),
      be_ = w.f32('b_enc'),
      Wd = w.f32('W_dec'),
      bd = w.f32('b_dec');
    const D = w.header.W_enc.shape[0],
      S = w.header.W_enc.shape[1],
      k = (JSON.parse(fs.readFileSync(path.join(out, 'cfg.json'), 'utf8')) as { k: number }).k;
    const ck = loadCheckpoint(gptCk);
    const model = modelFromCheckpoint(ck, new ReferenceBackend()) as LanguageModel<unknown>;
    const tok = await loadTokenizer(ck.tokenizer, ck.tokenizerVocab);
    const ds = await loadDataset({ tokenizer: tok, cacheDir: null });
    const all = new Uint16Array(ds.train.length + ds.val.length);
    all.set(ds.train);
    all.set(ds.val, ds.train.length);
    const hook = 'blocks.0.hook_neurons';
    let err = 0,
      cos = 0,
      cosN = 0,
      active = 0;
    const sum = new Float64Array(D),
      sq = new Float64Array(D),
      fired = new Float64Array(S);
    let ceClean = 0,
      ceSpliced = 0,
      ceZero = 0,
      cnt = 0;
    for (let wi = 0; wi < N / T; wi++) {
      const ids = Array.from(all.subarray(wi * T, (wi + 1) * T));
      const x = new Float64Array(T * D);
      const a = model.runWithCache(ids, 1, T, { names: [hook] }).cache.get(hook);
      for (let t = 0; t < T; t++) for (let i = 0; i < D; i++) x[t * D + i] = a.get(0, t, i);
      const xh = new Float64Array(T * D);
      for (let t = 0; t < T; t++) {
        const pre = new Float64Array(S);
        for (let j = 0; j < S; j++) {
          let s = be_[j];
          for (let i = 0; i < D; i++) s += (x[t * D + i] - bd[i]) * We[i * S + j];
          pre[j] = s;
        }
        const order = Array.from({ length: S }, (_, j) => j).sort((p, q) => pre[q] - pre[p] || p - q);
        const h = new Float64Array(S);
        for (const j of order.slice(0, k)) h[j] = Math.max(0, pre[j]);
        let nx = 0,
          nh = 0,
          dot = 0;
        for (let i = 0; i < D; i++) {
          let v = bd[i];
          for (let j = 0; j < S; j++) if (h[j] !== 0) v += h[j] * Wd[j * D + i];
          xh[t * D + i] = v;
          const d = x[t * D + i];
          err += (d - v) ** 2;
          sum[i] += d;
          sq[i] += d * d;
          nx += d * d;
          nh += v * v;
          dot += d * v;
        }
        if (nx > 0 && nh > 0) {
          cos += dot / Math.sqrt(nx * nh);
          cosN++;
        }
        for (let j = 0; j < S; j++)
          if (h[j] > 0) {
            active++;
            fired[j]++;
          }
      }
      // cross-entropy over positions with a next token in the window, from the logits
      const ce = (logits: Float64Array) => {
        const V = ck.config.vocabSize;
        let s = 0;
        for (let t = 0; t + 1 < T; t++) {
          let m = -Infinity;
          for (let v = 0; v < V; v++) m = Math.max(m, logits[t * V + v]);
          let z = 0;
          for (let v = 0; v < V; v++) z += Math.exp(logits[t * V + v] - m);
          s += m + Math.log(z) - logits[t * V + ids[t + 1]];
        }
        return s;
      };
      ceClean += ce(model.forward(ids, 1, T).logits!);
      ceSpliced += ce(model.runWithHooks(ids, 1, T, { [hook]: () => xh }).logits!);
      ceZero += ce(model.runWithHooks(ids, 1, T, { [hook]: () => new Float64Array(T * D) }).logits!);
      cnt += T - 1;
    }
    let varSum = 0;
    for (let i = 0; i < D; i++) varSum += sq[i] - (sum[i] * sum[i]) / N;
    const close = (got: number, want: number) => expect(Math.abs(got - want)).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(want)));
    close(r.l0, active / N);
    close(r.fvu, err / varSum);
    close(r.mse, err / (N * D));
    close(r.cosine, cos / cosN);
    close(r.deadFraction, fired.filter((c) => c === 0).length / S);
    close(r.denseFraction, fired.filter((c) => c > 0.1 * N).length / S);
    close(r.ceLossClean, ceClean / cnt);
    close(r.ceLossSpliced, ceSpliced / cnt);
    close(r.ceLossZeroAbl, ceZero / cnt);
    close(r.lossRecovered, (ceZero - ceSpliced) / (ceZero - ceClean));
    expect(r.l0).toBeLessThanOrEqual(k);
    model.free();
  });
});

function cli(args: string[]): { status: number | null; stderr: string; stdout: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 300_000 });
  return { status: r.status, stderr: r.stderr, stdout: r.stdout };
}

describe('sae: bad input is a one-line error with exit 2 (usage) or 1 (data)', () => {
  const base = () => ['sae', 'train', '--checkpoint', crateCk, '--backend', 'reference', '--tokens', '512', '--batch-tokens', '256', '--buffer-tokens', '512'];
  const cases: [string, () => string[], number, RegExp][] = [
    [
      'an unknown hook (the valid ones listed)',
      () => [...base(), '--layer', '0', '--hook', 'mlp.hook_nope', '--out', path.join(dir, 'x1')],
      2,
      /unknown hook 'blocks\.0\.mlp\.hook_nope'.*ista\.hook_code/,
    ],
    ['a layer out of range', () => [...base(), '--layer', '5', '--out', path.join(dir, 'x2')], 2, /layer 5 is out of range/],
    ['--k > d_sae', () => [...base(), '--layer', '0', '--arch', 'topk', '--k', '100000', '--out', path.join(dir, 'x3')], 2, /--k 100000 exceeds d_sae/],
    ['--k 0', () => [...base(), '--layer', '0', '--arch', 'topk', '--k', '0', '--out', path.join(dir, 'x4')], 2, /--k must be a positive integer/],
    ['--l1 < 0', () => [...base(), '--layer', '0', '--l1', '-1', '--out', path.join(dir, 'x5')], 2, /--l1 must be >= 0/],
    [
      'a buffer larger than memory',
      () => [...base(), '--layer', '0', '--buffer-tokens', '100000000000', '--out', path.join(dir, 'x6')],
      2,
      /GiB allowed; lower --buffer-tokens/,
    ],
    ['an SAE directory without cfg.json', () => ['sae', 'eval', dir, '--checkpoint', crateCk, '--backend', 'reference'], 1, /has no cfg\.json/],
  ];
  for (const [what, args, code, msg] of cases) {
    test(
      what,
      () => {
        const r = cli(args());
        expect(r.stderr.trim().split('\n').length, r.stderr).toBe(1);
        expect(r.stderr).toMatch(msg);
        expect(r.status).toBe(code);
      },
      300_000,
    );
  }
  test('truncated weights, another architecture, another model', async () => {
    const src = path.join(dir, 'files');
    const copy = (name: string) => {
      const d = path.join(dir, name);
      fs.cpSync(src, d, { recursive: true });
      return d;
    };
    const trunc = copy('trunc');
    const wf = path.join(trunc, 'sae_weights.safetensors');
    fs.truncateSync(wf, fs.statSync(wf).size - 100);
    let r = cli(['sae', 'eval', trunc, '--checkpoint', crateCk, '--backend', 'reference']);
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n').length).toBe(1);
    const gated = copy('gated');
    const cfg = JSON.parse(fs.readFileSync(path.join(gated, 'cfg.json'), 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(path.join(gated, 'cfg.json'), JSON.stringify({ ...cfg, architecture: 'gated' }));
    r = cli(['sae', 'eval', gated, '--checkpoint', crateCk, '--backend', 'reference']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/architecture 'gated' is not supported/);
    // the same SAE against the GPT-2 checkpoint: its hook has the same width here, so the sha256 decides
    r = cli(['sae', 'eval', src, '--checkpoint', gptCk, '--backend', 'reference']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/was trained on another checkpoint/);
    expect(r.stderr.trim().split('\n').length).toBe(1);
  }, 600_000);
  test('SIGTERM finishes the step, saves a complete SAE directory and exits 143; --resume continues it', async () => {
    const out = path.join(dir, 'sigterm');
    const child = spawn(
      process.execPath,
      [
        CLI,
        'sae',
        'train',
        '--checkpoint',
        crateCk,
        '--layer',
        '0',
        '--expansion',
        '2',
        '--tokens',
        '10000000',
        '--batch-tokens',
        '256',
        '--buffer-tokens',
        '1024',
        '--backend',
        be.name === 'cpu' ? 'cpu' : 'reference',
        '--log-every',
        '1',
        '--out',
        out,
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let sent = false;
    child.stdout.on('data', (d: Buffer) => {
      if (!sent && /step 3\//.test(d.toString())) {
        sent = true;
        child.kill('SIGTERM');
      }
    });
    const code = await new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
    expect(code).toBe(143);
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'cfg.json'), 'utf8')) as { crate_ts: { steps: number } };
    expect(cfg.crate_ts.steps).toBeGreaterThanOrEqual(3);
    expect(loadSae(out).weights.S).toBe(128);
    const r = cli(['sae', 'train', '--resume', out, '--tokens', String((cfg.crate_ts.steps + 2) * 256), '--backend', be.name === 'cpu' ? 'cpu' : 'reference']);
    expect(r.status, r.stderr).toBe(0);
    expect((JSON.parse(fs.readFileSync(path.join(out, 'cfg.json'), 'utf8')) as { crate_ts: { steps: number } }).crate_ts.steps).toBe(cfg.crate_ts.steps + 2);
  }, 400_000);
});

describe('sae train: activations that are not finite', () => {
  // ln_2 and c_fc of block 0 scaled to 1e38 (finite in float32): their product overflows float32,
  // so the cpu backend's hook_neurons reads Infinity; the run stops naming where, and writes nothing.
  test.runIf(cpu)(
    'stop with the window, position and feature named (exit 1), nothing half-written',
    async () => {
      const model = new LanguageModel(new ReferenceBackend(), makeConfig('char-tiny', { arch: 'gpt2', nEmbd: 16, nHead: 2, nLayer: 2, blockSize: T }), {
        seed: 5,
      });
      const p = model.getParams();
      for (const name of ['transformer.h.0.ln_2.weight', 'transformer.h.0.mlp.c_fc.weight']) {
        const s = model.spec(name);
        for (let i = 0; i < s.size; i++) p[s.offset + i] = Math.sign(p[s.offset + i] || 1) * 1e38;
      }
      model.setParams(p);
      const ck = path.join(dir, 'gpt2-overflow.safetensors');
      saveCheckpoint(ck, { model: model as LanguageModel<unknown>, tokenizer: 'byte' });
      const out = path.join(dir, 'overflow-run');
      await expect(trainSae({ ...opts(out), checkpoint: ck, layer: 0 })).rejects.toThrow(
        /blocks\.0\.hook_neurons is (-?Infinity|NaN) at window \d+, position \d+, feature \d+ \(while filling the buffer for step 1\)/,
      );
      expect(fs.existsSync(path.join(out, 'cfg.json'))).toBe(false);
      expect(fs.existsSync(path.join(out, 'sae_weights.safetensors'))).toBe(false);
      const r = cli([
        'sae',
        'train',
        '--checkpoint',
        ck,
        '--layer',
        '0',
        '--backend',
        'cpu',
        '--tokens',
        '512',
        '--batch-tokens',
        '256',
        '--buffer-tokens',
        '512',
        '--out',
        path.join(dir, 'overflow-cli'),
      ]);
      expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
      expect(r.stderr).toMatch(/is (-?Infinity|NaN) at window \d+, position \d+, feature \d+/);
      expect(r.status).toBe(1);
    },
    300_000,
  );
});
