// Training: resume after an interruption gives bitwise the same losses and parameters as an
// uninterrupted run (reference backend: determinism after a reload), plus clear errors for bad data.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { train, type TrainRequest } from '../src/train/trainer.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import { loadCheckpoint } from '../src/checkpoint/checkpoint.js';
import { lrAt, clipGradNorm, AdamW } from '../src/train/optimizer.js';
import { LanguageModel } from '../src/model/lm.js';
import { makeConfig } from '../src/model/config.js';
import { Rng } from '../src/util/rng.js';
import { toFloat64 } from '../src/io/safetensors.js';
import { lossChartSvg } from '../src/train/svg.js';
import { main } from '../src/cli/main.js';
import { selectBackend } from '../src/backend/select.js';

// The native CPU backend, when this build has it (resume must be bitwise there too, same thread count).
const cpu = await selectBackend('cpu', { threads: 2 }).then(
  (s) => s.backend,
  () => null,
);

let dir: string;
let text: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-train-'));
  const words = ['the', 'whale', 'sea', 'ship', 'Ahab', 'white', 'boat', 'harpoon', 'and', 'of'];
  const parts: string[] = [];
  for (let i = 0; i < 3000; i++) parts.push(words[(i * 7 + (i >> 3)) % words.length]);
  text = parts.join(' ');
  fs.writeFileSync(path.join(dir, 'corpus.txt'), text);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const tiny = (over: Partial<TrainRequest> = {}): TrainRequest => ({
  preset: 'char-tiny',
  nEmbd: 16,
  nHead: 2,
  nLayer: 1,
  seq: 16,
  batch: 2,
  gradAccum: 2,
  steps: 6,
  warmup: 2,
  lr: 1e-2,
  evalEvery: 2,
  evalWindows: 4,
  saveEvery: 2,
  sampleTokens: 0,
  quiet: true,
  cacheDir: null,
  data: path.join(dir, 'corpus.txt'),
  backend: new ReferenceBackend(),
  ...over,
});

function tensorsEqualBitwise(a: string, b: string): void {
  const A = loadCheckpoint(a).file.tensors,
    B = loadCheckpoint(b).file.tensors;
  expect([...A.keys()].sort()).toEqual([...B.keys()].sort());
  for (const [name, t] of A) {
    const x = toFloat64(t, name),
      y = toFloat64(B.get(name)!, name);
    expect(Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength)), name).toBe(true);
  }
}

describe('train (reference backend)', () => {
  for (const arch of ['crate', 'gpt2'] as const) {
    it(`${arch}: 6 steps straight equal 3 steps + resume 3 steps, bitwise`, async () => {
      const straight = await train(tiny({ arch, out: path.join(dir, `${arch}-straight`) }));
      expect(straight.losses).toHaveLength(6);
      expect(straight.interrupted).toBe(false);

      const first = await train(tiny({ arch, out: path.join(dir, `${arch}-split`), stopAt: 3 }));
      expect(first.interrupted).toBe(true);
      expect(first.step).toBe(3);
      const ck = loadCheckpoint(first.checkpoint);
      expect(ck.train?.step).toBe(3);
      expect(ck.tokenizer).toBe('byte');
      expect(ck.dtype).toBe('F64');
      // a resume takes every hyperparameter from the checkpoint
      const second = await train({ resume: path.join(dir, `${arch}-split`), backend: new ReferenceBackend(), quiet: true, cacheDir: null, sampleTokens: 0 });
      expect(second.step).toBe(6);
      const resumed = [...first.losses, ...second.losses];
      expect(resumed).toHaveLength(6);
      for (let i = 0; i < 6; i++) expect(Object.is(resumed[i], straight.losses[i]), `loss ${i + 1}: ${resumed[i]} vs ${straight.losses[i]}`).toBe(true);
      expect(Object.is(second.valLoss, straight.valLoss)).toBe(true);
      tensorsEqualBitwise(straight.checkpoint, second.checkpoint);
      expect(fs.readFileSync(second.svg, 'utf8')).toMatch(/^<svg[\s\S]*<\/svg>\n$/);
    });
  }

  it.skipIf(cpu === null)('cpu backend: 6 steps straight equal 3 + resume 3, bitwise (F32 checkpoints)', async () => {
    const straight = await train(tiny({ backend: cpu!, out: path.join(dir, 'cpu-straight') }));
    const first = await train(tiny({ backend: cpu!, out: path.join(dir, 'cpu-split'), stopAt: 3 }));
    expect(loadCheckpoint(first.checkpoint).dtype).toBe('F32');
    const second = await train({ resume: path.join(dir, 'cpu-split'), backend: cpu!, quiet: true, cacheDir: null, sampleTokens: 0 });
    const resumed = [...first.losses, ...second.losses];
    for (let i = 0; i < 6; i++) expect(Object.is(resumed[i], straight.losses[i]), `loss ${i + 1}: ${resumed[i]} vs ${straight.losses[i]}`).toBe(true);
    tensorsEqualBitwise(straight.checkpoint, second.checkpoint);
  });

  it('learns: the loss falls on a repetitive text', async () => {
    const r = await train(tiny({ steps: 100, gradAccum: 1, batch: 8, evalEvery: 0, saveEvery: 0, out: path.join(dir, 'learn') }));
    const head = r.losses.slice(0, 3).reduce((a, b) => a + b) / 3,
      tail = r.losses.slice(-3).reduce((a, b) => a + b) / 3;
    expect(tail).toBeLessThan(head - 1);
    expect(r.valLoss).toBeLessThan(r.unigramEntropy);
  });

  it('writes a JSON log with steps, evaluations and a summary', async () => {
    const log = path.join(dir, 'log.jsonl');
    await train(tiny({ steps: 4, out: path.join(dir, 'jsonlog'), jsonLog: log }));
    const lines = fs
      .readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; step: number });
    expect(lines.filter((l) => l.type === 'step').map((l) => l.step)).toEqual([1, 2, 3, 4]);
    expect(lines.some((l) => l.type === 'eval')).toBe(true);
    expect(lines[lines.length - 1].type).toBe('summary');
  });

  it('names a missing data file, an empty file, and text shorter than one window', async () => {
    await expect(train(tiny({ data: path.join(dir, 'nope.txt'), out: path.join(dir, 'e1') }))).rejects.toThrow(/data path '.*nope\.txt' does not exist/);
    fs.writeFileSync(path.join(dir, 'empty.txt'), '');
    await expect(train(tiny({ data: path.join(dir, 'empty.txt'), out: path.join(dir, 'e2') }))).rejects.toThrow(/data file '.*empty\.txt' is empty/);
    fs.writeFileSync(path.join(dir, 'short.txt'), 'Call me Ishmael. Some years ago.');
    await expect(train(tiny({ data: path.join(dir, 'short.txt'), out: path.join(dir, 'e3') }))).rejects.toThrow(
      /validation split .* has \d+ tokens, fewer than one window of 17/,
    );
  });

  it('refuses to resume a checkpoint as another architecture', async () => {
    // the library names the field; the command line names the flag
    await expect(train(tiny({ resume: path.join(dir, 'crate-split'), arch: 'gpt2' }))).rejects.toThrow(
      /^arch gpt2 does not match the checkpoint: .* holds a crate model/,
    );
    const errs: string[] = [];
    const orig = console.error;
    console.error = (...a: unknown[]) => {
      errs.push(a.join(' '));
    };
    try {
      expect(await main(['train', '--resume', path.join(dir, 'crate-split'), '--arch', 'gpt2', '--backend', 'reference', '--quiet'])).toBe(2);
    } finally {
      console.error = orig;
    }
    expect(errs[0]).toMatch(/^crate-ts train: --arch gpt2 does not match the checkpoint: .* holds a crate model/);
  });

  it('CLI: a missing file gives exit code 1, a bad option exit code 2, each a one-line message', async () => {
    const errs: string[] = [];
    const orig = console.error;
    console.error = (...a: unknown[]) => {
      errs.push(a.join(' '));
    };
    try {
      expect(await main(['train', '--data', path.join(dir, 'missing.txt'), '--backend', 'reference', '--quiet'])).toBe(1);
      expect(await main(['train', '--steps', 'many'])).toBe(2);
    } finally {
      console.error = orig;
    }
    expect(errs[0]).toMatch(/crate-ts train: data path .*missing\.txt' does not exist/);
    expect(errs[1]).toMatch(/--steps must be an integer/);
  });
});

describe('selectBackend', () => {
  it('an explicit reference choice, auto reporting what it skipped, and bad names', async () => {
    const r = await selectBackend('reference');
    expect(r.name).toBe('reference');
    expect(r.backend.dtype).toBe('f64');
    const a = await selectBackend('auto');
    expect(['reference', 'cpu', 'cuda']).toContain(a.name);
    expect(a.reason).toMatch(new RegExp(`^${a.name}`));
    if (a.name !== 'cuda') expect(a.reason).toMatch(/skipped cuda \(/);
    await expect(selectBackend('tpu' as 'cpu')).rejects.toThrow(/^unknown backend 'tpu': one of reference, cpu, cuda, auto$/);
    const saved = process.env.CRATE_TS_BACKEND;
    process.env.CRATE_TS_BACKEND = 'reference';
    try {
      expect((await selectBackend('auto')).reason).toMatch(/from CRATE_TS_BACKEND/);
    } finally {
      if (saved === undefined) delete process.env.CRATE_TS_BACKEND;
      else process.env.CRATE_TS_BACKEND = saved;
    }
  });
});

describe('optimizer pieces', () => {
  it('lrAt: linear warm-up from 0, cosine to minLr at total, constant after', () => {
    const o = { lr: 1, minLr: 0.1, warmup: 10, total: 110 };
    expect(lrAt(1, o)).toBeCloseTo(0.1, 15);
    expect(lrAt(10, o)).toBe(1);
    expect(lrAt(60, o)).toBeCloseTo(0.55, 12);
    expect(lrAt(110, o)).toBe(0.1);
    expect(lrAt(500, o)).toBe(0.1);
  });

  it('clipGradNorm scales the flat gradient to norm 1 and reports the norm before', () => {
    const be = new ReferenceBackend();
    const m = new LanguageModel(be, makeConfig('golden'), { seed: 3 });
    be.fill(m.grads, 0.5);
    const n = Math.sqrt(0.25 * m.numParameters);
    expect(clipGradNorm(m, 1)).toBeCloseTo(n, 12);
    expect(Math.sqrt(be.sumSquares(m.grads))).toBeCloseTo(1, 5);
    m.free();
  });

  // The decay rule of the PyTorch CRATE / nanoGPT optimiser groups, stated here by parameter name
  // (not read from the parameter table): the embeddings and every weight matrix are decayed; the
  // LayerNorm weights and biases and the attention output bias are not.
  const DECAYED = [
    /^transformer\.wte\.weight$/,
    /^transformer\.wpe\.weight$/,
    /\.attn\.c_attn\.weight$/,
    /\.attn\.c_proj\.weight$/,
    /\.ista\.weight$/,
    /\.mlp\.c_(fc|proj)\.weight$/,
  ];
  const NOT_DECAYED = [/\.prenorm_[12]\.(weight|bias)$/, /\.ln_[12]\.weight$/, /^transformer\.ln_f\.(weight|bias)$/, /\.attn\.c_proj\.bias$/];
  for (const arch of ['crate', 'crate-complete', 'gpt2'] as const) {
    it(`AdamW weight decay by name (${arch}): embeddings and weight matrices decayed; LayerNorms and c_proj.bias not`, () => {
      const be = new ReferenceBackend();
      const m = new LanguageModel(be, makeConfig('golden', { arch }), { seed: 3 });
      // nonzero values everywhere (the init's zero biases would hide a decay)
      const rng = new Rng(8);
      m.setParams(Float64Array.from({ length: m.numParameters }, () => 0.5 + rng.uniform()));
      const before = m.getParams();
      m.zeroGrad();
      const opt = new AdamW(m, { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.5 });
      opt.step(0.1); // zero gradients: only weight decay moves parameters, by the factor 1 − lr·wd
      const after = m.getParams();
      const seen = { decayed: 0, kept: 0 };
      for (const p of m.table) {
        const decayed = DECAYED.some((r) => r.test(p.name)),
          kept = NOT_DECAYED.some((r) => r.test(p.name));
        expect(decayed !== kept, `${p.name} is named by exactly one rule`).toBe(true);
        for (let i = p.offset; i < p.offset + p.size; i++) {
          if (decayed) expect(Math.abs(after[i] - before[i] * 0.95), p.name).toBeLessThanOrEqual(1e-15);
          else expect(after[i], p.name).toBe(before[i]);
        }
        seen[decayed ? 'decayed' : 'kept']++;
      }
      // golden: 2 layers; CRATE: wte, wpe, 3 matrices per layer / 2 LNs + c_proj.bias per layer, ln_f
      expect(seen).toEqual(arch === 'gpt2' ? { decayed: 2 + 2 * 4, kept: 2 * 2 + 1 } : { decayed: 2 + 2 * 3, kept: 2 * 5 + 2 });
      opt.free();
      m.free();
    });
  }

  it('lossChartSvg draws train, validation and reference lines', () => {
    const svg = lossChartSvg({
      title: 'a <test>',
      train: [
        { step: 1, loss: 5 },
        { step: 2, loss: 4 },
      ],
      val: [
        { step: 1, loss: 4.5 },
        { step: 2, loss: 3.9 },
      ],
      refs: [{ label: 'unigram', value: 3 }],
    });
    expect(svg).toContain('a &lt;test&gt;');
    expect(svg.match(/<path /g)?.length).toBe(3);
    expect(svg).toContain('stroke-dasharray');
  });
});
