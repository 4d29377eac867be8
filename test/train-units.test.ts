// Unit tests of src/train/ that need no training run: the progress and byte formatting, the log
// cadence and learning-rate schedule edges, the loss chart's edge cases, request resolution
// (defaults, presets, warm-up, threads, tokenizer errors) and the Trainer's own messages. Written
// for the mutants that survived `npm run mutate train` (each test fails with its mutant applied).
import { describe, it, expect, beforeAll, afterAll, vi } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fmtDuration, fmtCompact, formatProgress, Progress, type ProgressInfo } from '../src/train/progress.js';
import { fmtBytes } from '../src/train/memory.js';
import { defaultLogEvery, RUN_DEFAULTS, type DefaultsTable } from '../src/train/defaults.js';
import { lrAt } from '../src/train/optimizer.js';
import { lossChartSvg } from '../src/train/svg.js';
import { JsonLog } from '../src/train/jsonlog.js';
import { checkHyper } from '../src/train/request.js';
import { RequestError } from '../src/train/request-error.js';
import type { TrainHyper } from '../src/checkpoint/checkpoint.js';
import { resolveRun, Trainer, type TrainRequest, type RunResult } from '../src/train/trainer.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import { PRESETS } from '../src/model/config.js';

let dir: string, corpus: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-train-units-'));
  corpus = path.join(dir, 'corpus.txt');
  // a little text with a fixed content (5000 words), enough windows for T 64
  const words = ['whale', 'sea', 'ship', 'the', 'and', 'a', 'captain', 'harpoon', 'deck', 'wind'];
  let x = 7;
  const parts: string[] = [];
  for (let i = 0; i < 5000; i++) {
    x = (x * 48271) % 2147483647;
    parts.push(words[x % words.length]);
  }
  fs.writeFileSync(corpus, parts.join(' '));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const tiny = (over: TrainRequest = {}): TrainRequest => ({
  backend: new ReferenceBackend(),
  data: corpus,
  cacheDir: null,
  preset: 'char-tiny',
  nLayer: 1,
  nEmbd: 16,
  nHead: 2,
  seq: 16,
  batch: 2,
  out: path.join(dir, 'run'),
  ...over,
});

describe('progress formatting', () => {
  it('fmtDuration: seconds, minutes, hours; "?" for NaN, Infinity and negatives', () => {
    expect(fmtDuration(42)).toBe('42s');
    expect(fmtDuration(171)).toBe('2m51s');
    expect(fmtDuration(3 * 3600 + 5 * 60)).toBe('3h05m');
    expect(fmtDuration(NaN)).toBe('?');
    expect(fmtDuration(Infinity)).toBe('?');
    expect(fmtDuration(-1)).toBe('?');
  });

  it('fmtCompact: plain under 10,000, then k, M and G', () => {
    expect(fmtCompact(987)).toBe('987');
    expect(fmtCompact(9999)).toBe('9999');
    expect(fmtCompact(33665)).toBe('33.7k');
    expect(fmtCompact(250_000)).toBe('250k');
    expect(fmtCompact(1_250_000)).toBe('1.25M');
    expect(fmtCompact(2.5e9)).toBe('2.5G');
    expect(fmtCompact(NaN)).toBe('?');
  });

  const p: ProgressInfo = { step: 7, total: 100, loss: 2.5, lr: 3e-3, tokensPerSec: 33665, eta: 171 };

  it('formatProgress: the step right-aligned to the total width, the bar filled in proportion', () => {
    expect(formatProgress(p)).toBe('step   7/100  loss 2.5000  lr 3.00e-3  33,665 tok/s  2m51s left');
    const full = 'step   7/100  loss 2.5000  lr 3.00e-3  33,665 tok/s  2m51s left';
    // 120 columns: room 119, spare 119 - 63 = 56: a bar of the full 30 cells, 7% of it filled
    const line = formatProgress(p, 120);
    expect(line).toBe(`[##${'.'.repeat(28)}] ${full}`);
    // room for a bar of exactly 10 cells: text + "[" + 10 + "] "
    const cols = full.length + 3 + 10 + 1;
    expect(formatProgress({ ...p, step: 50 }, cols)).toBe(`[#####.....] ${full.replace('   7/', '  50/')}`);
    // one column less than a 5-cell bar needs: the text alone
    expect(formatProgress(p, full.length + 3 + 4 + 1)).toBe(full);
  });

  it('Progress on a terminal redraws at most every 100 ms, except logged and last steps', () => {
    const writes: string[] = [];
    const out = { write: (s: string) => writes.push(s), isTTY: true, columns: 120 };
    const now = vi.spyOn(Date, 'now').mockReturnValue(1_000_000);
    try {
      const pr = new Progress(out);
      pr.update(p, false);
      expect(writes.length).toBe(1);
      pr.update({ ...p, step: 8 }, false); // 0 ms later: skipped
      expect(writes.length).toBe(1);
      pr.update({ ...p, step: 9 }, true); // a logged step: drawn
      expect(writes.length).toBe(2);
      now.mockReturnValue(1_000_050);
      pr.update({ ...p, step: 100 }, false); // the last step: drawn
      expect(writes.length).toBe(3);
      pr.update({ ...p, step: 10 }, false); // 0 ms after the last draw: skipped
      expect(writes.length).toBe(3);
      now.mockReturnValue(1_000_200);
      pr.update({ ...p, step: 11 }, false);
      expect(writes.length).toBe(4);
    } finally {
      now.mockRestore();
    }
  });
});

describe('small helpers', () => {
  it('fmtBytes: 2 decimals under 10, 1 under 100, none above', () => {
    expect(fmtBytes(9.5 * 1024)).toBe('9.50 KiB');
    expect(fmtBytes(10 * 1024)).toBe('10.0 KiB');
    expect(fmtBytes(100 * 1024 * 1024)).toBe('100 MiB');
    expect(fmtBytes(512)).toBe('512 B');
  });

  it('defaultLogEvery: about 20 lines a run, at least every step', () => {
    expect(defaultLogEvery(200)).toBe(10);
    expect(defaultLogEvery(5000)).toBe(250);
    expect(defaultLogEvery(201)).toBe(11);
    expect(defaultLogEvery(5)).toBe(1);
  });

  it('lrAt: the warm-up reaches lr at its last step even when the schedule ends there', () => {
    const o = { lr: 1, minLr: 0.1, warmup: 10, total: 10 };
    expect(lrAt(5, o)).toBeCloseTo(0.5, 15);
    expect(lrAt(10, o)).toBe(1);
    expect(lrAt(11, o)).toBe(0.1);
  });

  it('JsonLog names the file and the error code when it cannot be written', () => {
    const file = path.join(dir, 'missing-dir', 'log.jsonl');
    expect(() => new JsonLog(file, false)).toThrow(new RegExp(`'${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}' cannot be written \\(ENOENT\\)$`));
  });
});

describe('loss chart edge cases', () => {
  it('drops reference lines that are not positive and finite', () => {
    const svg = lossChartSvg({
      title: 't',
      train: [
        { step: 1, loss: 3 },
        { step: 2, loss: 2 },
      ],
      val: [],
      refs: [
        { label: 'zero-ref', value: 0 },
        { label: 'nan-ref', value: NaN },
        { label: 'kept-ref', value: 2.5 },
      ],
    });
    expect(svg).toContain('kept-ref 2.5');
    expect(svg).not.toContain('zero-ref');
    expect(svg).not.toContain('nan-ref');
    expect(svg).not.toMatch(/NaN|Infinity/);
  });

  it('each legend label starts 30 px right of its swatch', () => {
    const svg = lossChartSvg({ title: 't', train: Array.from({ length: 30 }, (_, i) => ({ step: i + 1, loss: 3 - i / 20 })), val: [{ step: 30, loss: 2 }] });
    const entries = [...svg.matchAll(/<g transform="translate\(([\d.]+),[\d.-]+\)">.*?<\/g><text x="([\d.]+)"/g)];
    expect(entries.length).toBeGreaterThanOrEqual(3);
    for (const m of entries) expect(+m[2] - +m[1]).toBeCloseTo(30, 6);
  });

  it('more than 2000 steps are averaged in buckets, and the legend says how many', () => {
    const train = Array.from({ length: 5000 }, (_, i) => ({ step: i + 1, loss: 2 + 1 / (i + 1) }));
    const svg = lossChartSvg({ title: 't', train, val: [] });
    expect(svg).toContain('train loss (mean of 3 steps)');
    const raw = /<path d="([^"]+)" fill="none" stroke="#1f77b4" stroke-opacity="0.3"/.exec(svg);
    expect(raw).not.toBeNull();
    expect(raw![1].split(' ').length).toBe(Math.ceil(5000 / 3));
  });
});

describe('resolveRun', () => {
  it('rejects threads out of range with the range in the message', async () => {
    await expect(resolveRun(tiny({ threads: 300 }))).rejects.toThrow(/^threads must be an integer from 1 to 256 \(0: the backend's default\), got 300$/);
    await expect(resolveRun(tiny({ threads: -1 }))).rejects.toThrow(/^threads must be an integer from 1 to 256 .*got -1$/);
    await expect(resolveRun(tiny({ threads: 1.5 }))).rejects.toThrow(/got 1\.5$/);
    await expect(resolveRun(tiny({ threads: 256 }))).resolves.toBeTruthy();
  });

  it("names the caller's backend object as the reason", async () => {
    const r = await resolveRun(tiny());
    expect(r.backendReason).toBe('reference: given by the caller');
  });

  it('a fresh run with steps given warms up for a tenth of them (at most the default)', async () => {
    const r = await resolveRun(tiny({ steps: 50 }));
    expect(r.hyper.warmup).toBe(5);
    const w = await resolveRun(tiny({ steps: 50, warmup: 7 }));
    expect(w.hyper.warmup).toBe(7);
  });

  it("a named preset keeps its own block size and layers, not the backend default model's", async () => {
    const defaults: DefaultsTable = {
      ...RUN_DEFAULTS,
      reference: { model: { preset: 'char-tiny', seq: 16, nLayer: 1, nEmbd: 16, nHead: 2 }, hyper: { ...RUN_DEFAULTS.reference.hyper, batch: 2 } },
    };
    const base = { backend: new ReferenceBackend(), data: corpus, cacheDir: null, defaults, out: path.join(dir, 'p') };
    const named = await resolveRun({ ...base, preset: 'char-tiny' });
    const preset = PRESETS['char-tiny'];
    expect(named.hyper.seq).toBe(preset.blockSize);
    expect(named.config.blockSize).toBe(preset.blockSize);
    expect(named.config.nLayer).toBe(preset.nLayer);
    expect(named.config.nEmbd).toBe(preset.nEmbd);
    // no preset: the default model, and a notice that names its overrides ("1 layer", singular)
    const dflt = await resolveRun(base);
    expect(dflt.config.nLayer).toBe(1);
    expect(dflt.hyper.seq).toBe(16);
    expect(dflt.notices.join('\n')).toContain("model: the reference backend's default, char-tiny with 1 layer, T 16 for speed");
  });

  it('tokenizer char without a nanoGPT meta.pkl names what is missing and where', async () => {
    await expect(resolveRun(tiny({ tokenizer: 'char' }))).rejects.toThrow(
      `char needs a vocabulary: a nanoGPT meta.pkl beside train.bin in the data directory (none found for '${corpus}')`,
    );
  });
});

describe('Trainer messages (no training step)', () => {
  let trainer: Trainer;
  beforeAll(async () => {
    trainer = new Trainer(await resolveRun(tiny({ steps: 3, out: path.join(dir, 'msg') })));
  });
  afterAll(() => trainer.free());

  it('evaluate names a bad split', () => {
    expect(() => trainer.evaluate('test' as 'val')).toThrow("split must be 'val' or 'train', got 'test'");
  });

  it('sample: the seed given is the seed used', () => {
    const seed = trainer.hyper.seed;
    const a = trainer.sample({ tokens: 24, prompt: 'the ', seed: seed + 1 });
    expect(trainer.sample({ tokens: 24, prompt: 'the ', seed: seed + 1 })).toBe(a);
    expect(trainer.sample({ tokens: 24, prompt: 'the ' })).toBe(trainer.sample({ tokens: 24, prompt: 'the ', seed }));
    expect(trainer.sample({ tokens: 24, prompt: 'the ', seed })).not.toBe(a);
  });

  it('summary of a 0-step run says it is the initial model and has no average', () => {
    const r: RunResult = { step: 0, finished: true, losses: [], trainLoss: 5.5, valLoss: 5.6, tokensPerSec: 0, trainSeconds: 0, checkpoint: 'x' };
    const lines = trainer.summary(r, 3);
    expect(lines[0]).toBe(
      `done: 0 steps (--steps 0): the initial model of seed ${trainer.hyper.seed}, untrained, saved as a run (a random-init control); 3s wall`,
    );
    expect(lines[1]).toContain('last 0 steps averaged n/a');
  });
});

describe('checkHyper: the bounds of the numeric hyper-parameters', () => {
  const base = () => ({ ...RUN_DEFAULTS.reference.hyper });
  const refuses = (patch: Record<string, unknown>, field: string, what: RegExp) => {
    const h = { ...base(), ...patch } as TrainHyper;
    let err: unknown;
    try {
      checkHyper(h);
    } catch (e) {
      err = e;
    }
    expect(err, `${JSON.stringify(patch)} must be refused`).toBeInstanceOf(RequestError);
    expect((err as RequestError).message).toContain(field);
    expect((err as RequestError).message).toMatch(what);
  };

  it('accepts the defaults', () => {
    expect(() => checkHyper(base())).not.toThrow();
  });

  it('batch, seq and gradAccum must be at least 1 (0 is refused, naming the field)', () => {
    for (const k of ['batch', 'seq', 'gradAccum']) refuses({ [k]: 0 }, k, /must be a positive integer, got 0/);
  });

  it('eps must be positive: 0 is refused; clip and weightDecay may be 0', () => {
    refuses({ eps: 0 }, 'eps', /must be positive, got 0/);
    expect(() => checkHyper({ ...base(), clip: 0, weightDecay: 0 })).not.toThrow();
  });

  it('beta1 and beta2 may be 0; clip must not be negative, and the message says 0 turns it off', () => {
    expect(() => checkHyper({ ...base(), beta1: 0, beta2: 0 })).not.toThrow();
    refuses({ clip: -1 }, 'clip', /must be non-negative \(0 = no clipping\), got -1/);
  });

  it('valFraction lies in (0, 1), and the message says so', () => {
    refuses({ valFraction: 1 }, 'valFraction', /must be in \(0, 1\), got 1/);
    refuses({ valFraction: 0 }, 'valFraction', /must be in \(0, 1\), got 0/);
  });
});

describe('loss chart: reference lines and the legend', () => {
  it('a reference value is drawn as a dashed line across the plot, and the per-step train label is shown', () => {
    const svg = lossChartSvg({
      title: 't',
      train: [
        { step: 1, loss: 3 },
        { step: 2, loss: 2 },
      ],
      val: [],
      refs: [{ label: 'unigram', value: 2.5 }],
    });
    // the plot's left edge is x = 64 (the legend's swatch is drawn at 0 and translated)
    expect(svg).toMatch(/<line x1="64" x2="[\d.]+" y1="[\d.]+" y2="[\d.]+" stroke="[^"]+" stroke-dasharray="6,4"\/>/);
    expect(svg).toContain('train loss per step');
    // each legend entry has its swatch: a 24 px line drawn at the origin of its group
    expect(svg).toMatch(/<line x1="0" x2="24" y1="0" y2="0" stroke="[^"]+" stroke-width="2"\/>/);
  });
});
