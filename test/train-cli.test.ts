// The training command line as a user meets it: signals and pipes in real child processes, the log
// cadence, the progress bar on narrow terminals, the JSON log's header, and clear refusals of
// requests that used to hang, crash or silently do something else.
import { describe, it, expect, beforeAll, afterAll, vi } from 'vitest';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { capture as captureCli } from './helpers/capture.js';
import { train, Trainer, resolveRun } from '../src/train/trainer.js';
import { formatProgress } from '../src/train/progress.js';
import { estimateTrainingMemory, checkTrainingMemory } from '../src/train/memory.js';
import { removeStaleTemps } from '../src/train/rundir.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import { makeConfig } from '../src/model/config.js';
import { loadCheckpoint } from '../src/checkpoint/checkpoint.js';
import { UsageError } from '../src/errors.js';

const ROOT = path.resolve(__dirname, '..');
// bin/crate-ts.js on the TypeScript sources (no build step; see the helper)
const CLI = path.join(ROOT, 'test', 'helpers', 'crate-ts-src.mjs');
const STACK_TRACE = /\n\s+at |Error:|EPIPE|node:internal/;

let dir: string, corpus: string, cache: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-train-cli-'));
  corpus = path.join(dir, 'corpus.txt');
  cache = path.join(dir, 'cache');
  const words = ['the', 'whale', 'sea', 'ship', 'Ahab', 'white', 'boat', 'harpoon', 'and', 'of'];
  const parts: string[] = [];
  for (let i = 0; i < 3000; i++) parts.push(words[(i * 7 + (i >> 3)) % words.length]);
  fs.writeFileSync(corpus, parts.join(' '));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Flags of a tiny run on the reference backend (about a millisecond per step). */
const tinyArgs = (): string[] => [
  '--backend',
  'reference',
  '--data',
  corpus,
  '--cache-dir',
  cache,
  '--preset',
  'char-tiny',
  '--n-layer',
  '1',
  '--n-embd',
  '16',
  '--n-head',
  '2',
  '--seq',
  '16',
  '--batch',
  '2',
  '--sample-tokens',
  '0',
];
const tinyReq = () => ({
  backend: new ReferenceBackend(),
  data: corpus,
  cacheDir: cache,
  preset: 'char-tiny',
  nLayer: 1,
  nEmbd: 16,
  nHead: 2,
  seq: 16,
  batch: 2,
  sampleTokens: 0,
  quiet: true,
});

/** Run the CLI in this process, capturing what it prints (stdout is not a terminal here). */
const capture = (argv: string[]) => captureCli(argv, { notTTY: true });

interface Child {
  stdout: () => string;
  stderr: () => string;
  exit: Promise<number | null>;
  waitFor(re: RegExp, ms: number): Promise<void>;
  kill(sig: NodeJS.Signals): void;
  /** Resolves once the kernel no longer holds SIGTERM pending for the child (it was delivered). */
  termDelivered(ms: number): Promise<void>;
}

/** Start a command in a child process (argv, or a bash script when `shell`). */
function start(cmd: string[] | string): Child {
  const child =
    typeof cmd === 'string'
      ? spawn('bash', ['-c', cmd], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(process.execPath, [CLI, ...cmd], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '',
    err = '';
  const waiters: (() => void)[] = [];
  child.stdout.on('data', (d) => {
    out += String(d);
    waiters.forEach((f) => f());
  });
  child.stderr.on('data', (d) => {
    err += String(d);
  });
  const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return {
    stdout: () => out,
    stderr: () => err,
    exit,
    kill: (sig) => {
      child.kill(sig);
    },
    // Two identical signals sent while the first is still pending merge into one (POSIX), which
    // on a loaded machine happens when the child is not scheduled between the two kills: poll the
    // process-wide pending mask (ShdPnd in /proc/<pid>/status, SIGTERM = bit 14) until it clears.
    termDelivered: async (ms) => {
      const until = Date.now() + ms;
      while (Date.now() < until) {
        let pending: bigint;
        try {
          const m = /^ShdPnd:\s*([0-9a-f]+)$/m.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'));
          pending = m ? BigInt(`0x${m[1]}`) : 0n;
        } catch {
          return; // gone, or no /proc: nothing left to wait for
        }
        if ((pending & (1n << 14n)) === 0n) return;
        await new Promise((r) => setTimeout(r, 1));
      }
    },
    waitFor: (re, ms) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          reject(new Error(`timed out waiting for ${re} in stdout:\n${out}\nstderr:\n${err}`));
        }, ms);
        const check = () => {
          if (re.test(out)) {
            clearTimeout(timer);
            resolve();
          }
        };
        waiters.push(check);
        void exit.then(() => {
          clearTimeout(timer);
          if (re.test(out)) resolve();
          else reject(new Error(`exited before ${re}:\n${out}\n${err}`));
        });
        check();
      }),
  };
}

describe('crate-ts train: signals (real child processes)', () => {
  it('SIGTERM finishes the step, saves, exits 143 and says how to resume; the resume continues bitwise', async () => {
    const out = path.join(dir, 'sigterm'),
      log = path.join(dir, 'sigterm.jsonl');
    const common = { lr: 1e-2, warmup: 5, steps: 100000, seed: 5, evalEvery: 0, saveEvery: 0, evalWindows: 2 };
    const c = start([
      'train',
      ...tinyArgs(),
      '--steps',
      String(common.steps),
      '--warmup',
      '5',
      '--lr',
      '0.01',
      '--seed',
      '5',
      '--eval-every',
      '0',
      '--save-every',
      '0',
      '--eval-windows',
      '2',
      '--log-every',
      '1',
      '--out',
      out,
      '--json-log',
      log,
    ]);
    await c.waitFor(/^step +1\/100000 /m, 60_000);
    c.kill('SIGTERM');
    expect(await c.exit).toBe(143);
    const ckpt = path.join(out, 'model.safetensors');
    expect(c.stdout()).toContain('SIGTERM: finishing this step, saving a checkpoint and stopping');
    expect(c.stdout()).toContain(`continue with: crate-ts train --resume ${out}\n`);
    expect(c.stderr()).not.toMatch(STACK_TRACE);
    const k = loadCheckpoint(ckpt).train!.step;
    expect(k).toBeGreaterThanOrEqual(1);
    expect(k).toBeLessThan(common.steps);
    const before = fs
      .readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; loss: number; step: number })
      .filter((l) => l.type === 'step');
    expect(before.map((l) => l.step)).toEqual(Array.from({ length: k }, (_, i) => i + 1));

    // the interrupted run + its resume equal one uninterrupted run, loss for loss
    const resumed = await train({ resume: out, stopAt: k + 3, quiet: true, sampleTokens: 0, cacheDir: cache });
    expect(resumed.losses).toHaveLength(3);
    const straight = await train({ ...tinyReq(), ...common, stopAt: k + 3, out: path.join(dir, 'sigterm-straight') });
    const joined = [...before.map((l) => l.loss), ...resumed.losses];
    for (let i = 0; i < k + 3; i++) expect(Object.is(joined[i], straight.losses[i]), `loss ${i + 1}`).toBe(true);
  });

  it('SIGINT exits 130 and SIGHUP 129, each after saving', async () => {
    const runs = (['SIGINT', 'SIGHUP'] as const).map((sig) => {
      const out = path.join(dir, sig);
      return { sig, out, c: start(['train', ...tinyArgs(), '--steps', '100000', '--log-every', '1', '--save-every', '0', '--out', out]) };
    });
    for (const r of runs) {
      await r.c.waitFor(/^step +1\/100000 /m, 60_000);
      r.c.kill(r.sig);
    }
    expect(await runs[0].c.exit).toBe(130);
    expect(await runs[1].c.exit).toBe(129);
    for (const r of runs) {
      expect(r.c.stdout()).toContain(`continue with: crate-ts train --resume ${r.out}\n`);
      expect(r.c.stderr()).not.toMatch(STACK_TRACE);
      expect(loadCheckpoint(path.join(r.out, 'ckpt.safetensors')).train!.step).toBeGreaterThanOrEqual(1);
    }
  });
});

describe('crate-ts train: a second signal', () => {
  it('exits at once with the signal code; the last periodic checkpoint stays intact', async () => {
    // steps of a few hundred ms on the reference backend: both signals land during one step, and are
    // handled one after the other when it ends
    const out = path.join(dir, 'twice');
    const c = start([
      'train',
      '--backend',
      'reference',
      '--data',
      corpus,
      '--cache-dir',
      cache,
      '--preset',
      'char-tiny',
      '--n-layer',
      '1',
      '--seq',
      '64',
      '--batch',
      '4',
      '--steps',
      '1000',
      '--save-every',
      '1',
      '--log-every',
      '1',
      '--sample-tokens',
      '0',
      '--out',
      out,
    ]);
    await c.waitFor(/^step +1\/1000 /m, 60_000);
    c.kill('SIGTERM');
    await c.termDelivered(10_000);
    await new Promise((r) => setTimeout(r, 20));
    c.kill('SIGTERM');
    expect(await c.exit).toBe(143);
    expect(c.stdout()).toContain('second SIGTERM: exiting at once without saving');
    expect(c.stdout()).not.toContain('continue with:');
    expect(c.stderr()).not.toMatch(STACK_TRACE);
    expect(loadCheckpoint(path.join(out, 'ckpt.safetensors')).train!.step).toBeGreaterThanOrEqual(1);
  });
});

describe('closed stdout (real pipes)', () => {
  it('train | head -3: three lines, then it trains silently to the end, saves, and exits 0', async () => {
    const out = path.join(dir, 'piped');
    const cmd = `'${process.execPath}' '${CLI}' train ${tinyArgs()
      .map((a) => `'${a}'`)
      .join(' ')} --steps 300 --log-every 1 --out '${out}' | head -3; exit "\${PIPESTATUS[0]}"`;
    const c = start(cmd);
    expect(await c.exit).toBe(0);
    expect(c.stderr()).not.toMatch(STACK_TRACE);
    expect(c.stdout().split('\n').filter(Boolean)).toHaveLength(3);
    expect(loadCheckpoint(path.join(out, 'ckpt.safetensors')).train!.step).toBe(300);
    expect(fs.existsSync(path.join(out, 'loss.svg'))).toBe(true);
  });

  it('sample | head -c 20: twenty bytes, no stack trace, exit 0, and decoding stops early', async () => {
    const r = await train({ ...tinyReq(), steps: 5, out: path.join(dir, 'for-sample') });
    const cmd = `'${process.execPath}' '${CLI}' sample --checkpoint '${r.checkpoint}' --tokens 400000 --prompt abc | head -c 20; exit "\${PIPESTATUS[0]}"`;
    const t0 = performance.now();
    const c = start(cmd);
    expect(await c.exit).toBe(0);
    expect(Buffer.byteLength(c.stdout())).toBe(20);
    expect(c.stderr()).toBe('');
    // 400k tokens take far longer than this; stopping at the closed pipe is what makes it short
    expect(performance.now() - t0).toBeLessThan(60_000);
  });
});

describe('log cadence and progress bar', () => {
  it('without a terminal a 40-step run logs about 20 lines (every 2 steps), not just the first and last', async () => {
    const r = await capture(['train', ...tinyArgs(), '--steps', '40', '--out', path.join(dir, 'cadence')]);
    expect(r.code).toBe(0);
    const steps = [...r.out.matchAll(/^step +(\d+)\/40 /gm)].map((m) => Number(m[1]));
    expect(steps).toEqual([1, ...Array.from({ length: 20 }, (_, i) => 2 * (i + 1))]);
    expect(r.out).toMatch(/done: 40 steps/);
  });

  it('formatProgress: the bar shrinks before the numbers do, at 40, 60, 80 and 120 columns', () => {
    const p = { step: 1234, total: 5000, loss: 1.83021, lr: 3e-3, tokensPerSec: 33665, eta: 171 };
    const lines = new Map([40, 60, 80, 120].map((w) => [w, formatProgress(p, w)]));
    for (const [w, s] of lines) {
      expect(s.length, `width ${w}: ${s}`).toBeLessThanOrEqual(w - 1);
      expect(s, `width ${w}`).toContain('1234/5000');
      expect(s, `width ${w}`).toMatch(/1\.830/);
      expect(s, `width ${w}`).toMatch(/(33,665|33\.7k) tok\/s/);
      expect(s, `width ${w}`).toContain('2m51s');
    }
    const bar = (s: string) => /^\[([#.]*)\] /.exec(s)?.[1].length ?? 0;
    expect(bar(lines.get(120)!)).toBe(30);
    expect(bar(lines.get(80)!)).toBeGreaterThanOrEqual(5);
    expect(bar(lines.get(80)!)).toBeLessThan(30);
    // the full text (with the learning rate) is kept while any bar fits
    expect(lines.get(120)).toContain('lr 3.00e-3');
    expect(lines.get(80)).toContain('lr 3.00e-3');
    // the bar's fill follows the step
    expect(lines.get(120)!.split('#').length - 1).toBe(Math.round((30 * 1234) / 5000));
    // no terminal: the plain log line
    expect(formatProgress(p)).toBe('step 1234/5000  loss 1.8302  lr 3.00e-3  33,665 tok/s  2m51s left');
  });
});

describe('--json-log', () => {
  it('starts with the resolved configuration, the version, the backend and the machine', async () => {
    const log = path.join(dir, 'header.jsonl');
    const r = await train({ ...tinyReq(), steps: 3, evalEvery: 2, out: path.join(dir, 'header'), jsonLog: log });
    const lines = fs
      .readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, any>);
    const h = lines[0];
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(h.type).toBe('config');
    expect(h.version).toBe(pkg.version);
    expect(h.backend.name).toBe('reference');
    expect(h.machine.node).toBe(process.version);
    expect(h.machine.cores).toBe(os.availableParallelism());
    expect(h.machine.cpu).toBe(os.cpus()[0].model.trim());
    expect(h.machine.os).toContain(os.type());
    expect(h.model).toMatchObject({ ...makeConfig('char-tiny', { nLayer: 1, nEmbd: 16, nHead: 2, blockSize: 16 }), preset: 'char-tiny' });
    expect(h.hyper).toMatchObject({ steps: 3, batch: 2, seq: 16, evalEvery: 2 });
    expect(h.tokenizer).toBe('byte');
    const ck = loadCheckpoint(r.checkpoint);
    expect(h.data.source).toBe(corpus);
    expect(h.data.content_hash).toBe(ck.train!.data.contentHash);
    expect(lines.filter((l) => l.type === 'step').map((l) => l.step)).toEqual([1, 2, 3]);
    expect(lines.filter((l) => l.type === 'eval' && l.split === 'val').map((l) => l.step)).toEqual([2, 3]);
    expect(lines.filter((l) => l.type === 'save').length).toBeGreaterThanOrEqual(1);
    expect(lines[lines.length - 1].type).toBe('summary');
  });
});

describe('requests that used to hang, crash or fall back silently', () => {
  it('--out that cannot be created stops at once with a one-line message (was: an endless recursive mkdir)', async () => {
    const file = path.join(dir, 'a-file');
    fs.writeFileSync(file, 'x');
    const r = await capture(['train', ...tinyArgs(), '--steps', '2', '--out', path.join(file, 'run')]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^crate-ts train: --out '.*a-file\/run' cannot be used as the run directory: '.*a-file' exists and is not a directory\n$/);
    if (fs.existsSync('/proc/self')) {
      const p = await capture(['train', ...tinyArgs(), '--steps', '2', '--out', '/proc/x']);
      expect(p.code).toBe(2);
      expect(p.err).toMatch(/^crate-ts train: --out '\/proc\/x' cannot be used as the run directory: mkdir '\/proc\/x' failed \(ENOENT\)\n$/);
    }
  });

  it('--batch 1000000000 is refused before allocating, naming the estimate and the machine memory (was: a V8 fatal error)', async () => {
    const out = path.join(dir, 'huge');
    const r = await capture(['train', ...tinyArgs(), '--batch', '1000000000', '--out', out]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(
      /^crate-ts train: training with batch 1000000000 x seq 16 needs about [\d.]+ [KMGTPE]iB .* but this machine has [\d.]+ [KMGTPE]iB of memory on the reference backend;/,
    );
    expect(fs.existsSync(out)).toBe(false);
  });

  it('the memory estimate grows with the batch and admits the default runs', () => {
    const be = new ReferenceBackend();
    const cfg = makeConfig('char-tiny', { nLayer: 1, blockSize: 32 });
    const a = estimateTrainingMemory(cfg, 16, 32, be),
      b = estimateTrainingMemory(cfg, 32, 32, be);
    expect(b.activations).toBeCloseTo(2 * a.activations, 6);
    expect(b.state).toBe(a.state);
    // reference: float64; the activations include the (B, NH, T, T) attention scores and the logits twice
    expect(a.activations).toBeGreaterThan(8 * (16 * 4 * 32 * 32 + 2 * 16 * 32 * 256));
    expect(() => checkTrainingMemory(cfg, 16, 32, be)).not.toThrow();
    expect(() => checkTrainingMemory(cfg, 1e9, 32, be)).toThrow(UsageError);
  });

  it('--threads 1000 is a usage error (was: a silent fallback to the reference backend)', async () => {
    const r = await capture([
      'train',
      ...tinyArgs().filter((a) => a !== 'reference' && a !== '--backend'),
      '--threads',
      '1000',
      '--steps',
      '2',
      '--out',
      path.join(dir, 't'),
    ]);
    expect(r.code).toBe(2);
    expect(r.err).toBe('crate-ts train: --threads must be from 1 to 256, got 1000\n');
    await expect(resolveRun({ ...tinyReq(), threads: 1000 })).rejects.toThrow(/^threads must be an integer from 1 to 256/);
  });

  it('negative numbers are values (--lr -1, --lr=-1) and get a range error naming the option', async () => {
    for (const args of [['--lr', '-1'], ['--lr=-1']]) {
      const r = await capture(['train', ...tinyArgs(), ...args, '--out', path.join(dir, 'neg')]);
      expect(r.code).toBe(2);
      expect(r.err).toBe('crate-ts train: --lr must be positive, got -1\n');
    }
    const s = await capture(['train', ...tinyArgs(), '--steps', '-5', '--out', path.join(dir, 'neg')]);
    expect(s.err).toBe('crate-ts train: --steps must be a non-negative integer (0: save the initial model), got -5\n');
    const g = await capture(['train', ...tinyArgs(), '--grad-accum', '0', '--out', path.join(dir, 'neg')]);
    expect(g.err).toBe('crate-ts train: --grad-accum must be a positive integer, got 0\n');
    // the library speaks in field names
    await expect(train({ ...tinyReq(), gradAccum: 0, out: path.join(dir, 'neg') })).rejects.toThrow(/^gradAccum must be a positive integer, got 0$/);
    const t = await capture(['sample', '--checkpoint', dir, '--temperature', '-0.5']);
    expect(t.err).toBe('crate-ts sample: --temperature must be >= 0, got -0.5\n');
    expect(fs.existsSync(path.join(dir, 'neg'))).toBe(false);
  });

  it('stale temporaries of a killed save are removed when a run starts; live and foreign files are kept', async () => {
    const out = path.join(dir, 'stale');
    fs.mkdirSync(out);
    const hourAgo = new Date(Date.now() - 3600_000),
      inAnHour = new Date(Date.now() + 3600_000);
    const put = (name: string, when: Date) => {
      fs.writeFileSync(path.join(out, name), 'partial');
      fs.utimesSync(path.join(out, name), when, when);
    };
    put('ckpt.safetensors.tmp-99999999-0123456789ab', hourAgo); // writer gone: stale
    put('loss.svg.tmp-99999998-abcdef', hourAgo); // writer gone: stale
    put('ckpt.safetensors.tmp-99999997-00ff00ff00ff', inAnHour); // newer than this process: kept
    put(`ckpt.safetensors.tmp-${process.ppid}-0123456789ab`, hourAgo); // its writer is alive: kept
    put('notes.tmp-1-xyz', hourAgo); // not our naming: kept
    put('data.txt', hourAgo);
    const lines: string[] = [];
    await train({ ...tinyReq(), quiet: false, log: (l) => lines.push(l), steps: 2, out });
    const left = fs.readdirSync(out).sort();
    expect(left).not.toContain('ckpt.safetensors.tmp-99999999-0123456789ab');
    expect(left).not.toContain('loss.svg.tmp-99999998-abcdef');
    for (const kept of [
      'ckpt.safetensors.tmp-99999997-00ff00ff00ff',
      `ckpt.safetensors.tmp-${process.ppid}-0123456789ab`,
      'notes.tmp-1-xyz',
      'data.txt',
      'model.safetensors',
      'optimizer.safetensors',
      'config.json',
      'train.jsonl',
      'loss.svg',
    ]) {
      expect(left).toContain(kept);
    }
    expect(lines.some((l) => /^removed 2 stale temporary files of an interrupted save/.test(l))).toBe(true);
    // resuming cleans too
    put('ckpt.safetensors.tmp-99999996-abab', hourAgo);
    expect(removeStaleTemps(out)).toEqual(['ckpt.safetensors.tmp-99999996-abab']);
  });
});

describe('Trainer (library)', () => {
  it('train() and crate-ts train run one driver loop: the same lines, stopped and finished', async () => {
    // digits (losses aside, times and speeds vary) and each run's own directory masked
    const mask = (lines: string[], out: string) => lines.map((l) => l.replaceAll(out, 'OUT').replace(/\d+(\.\d+)?/g, '#'));
    for (const [extra, req] of [
      [['--steps', '6', '--stop-at', '3'], { steps: 6, stopAt: 3 }],
      [['--steps', '3', '--sample-tokens', '12'], { steps: 3, sampleTokens: 12 }],
    ] as const) {
      const tag = `drive-${req.steps}`;
      const lib: string[] = [];
      await train({ ...tinyReq(), backend: 'reference', ...req, quiet: false, log: (l) => lib.push(...l.split('\n')), out: path.join(dir, `${tag}-lib`) });
      const c = await capture(['train', ...tinyArgs(), ...extra, '--log-every', '1', '--out', path.join(dir, `${tag}-cli`)]);
      expect(c.code).toBe(0);
      const cli = c.out.split('\n');
      if (cli[cli.length - 1] === '') cli.pop();
      const stopped = 'stopAt' in req;
      // the command line adds how to continue a stopped run
      if (stopped) expect(cli.pop()).toBe(`continue with: crate-ts train --resume ${path.join(dir, `${tag}-cli`)}`);
      expect(mask(lib, path.join(dir, `${tag}-lib`)).filter((l) => !l.startsWith('step #/#'))).toEqual(
        mask(cli, path.join(dir, `${tag}-cli`)).filter((l) => !l.startsWith('step #/#')),
      );
      expect(lib.some((l) => l.startsWith(stopped ? 'stopped at step 3 of 6 after ' : 'sample (temperature 0.8, top-k 40):'))).toBe(true);
    }
  });

  it('step / evaluate / save / stop / run, with events, and nothing printed', async () => {
    const write = vi.spyOn(process.stdout, 'write');
    const log = vi.spyOn(console, 'log');
    try {
      const t = await Trainer.create({ ...tinyReq(), steps: 6, evalEvery: 0, saveEvery: 0, out: path.join(dir, 'lib') });
      const events: string[] = [];
      t.on('step', (s) => events.push(`step ${s.step}/${s.total}`));
      t.on('eval', (e) => events.push(`eval ${e.split} ${e.step}`));
      t.on('save', (s) => events.push(`save ${s.step}`));
      t.on('done', (r) => events.push(`done ${r.step} ${r.finished}`));
      const s1 = t.step();
      expect(s1.step).toBe(1);
      expect(s1.lr).toBeGreaterThan(0);
      expect(Number.isFinite(s1.loss) && Number.isFinite(s1.gradNorm) && s1.tokensPerSec > 0).toBe(true);
      const v = t.evaluate('val');
      expect(t.evaluate('val')).toBe(v); // fixed windows, forward only: the same number again
      const p = t.save(path.join(dir, 'lib', 'early.safetensors'));
      expect(loadCheckpoint(p).train!.step).toBe(1);
      const ac = new AbortController();
      t.once('step', () => ac.abort());
      const stopped = await t.run({ signal: ac.signal });
      expect(stopped).toMatchObject({ step: 2, finished: false });
      expect(loadCheckpoint(t.checkpointPath).train!.step).toBe(2);
      expect(t.stopping).toBe(true);
      t.free();
      expect(events).toEqual(['step 1/6', 'eval val 1', 'eval val 1', 'save 1', 'step 2/6', 'save 2', 'done 2 false']);

      // a fresh trainer resumes from it and runs to the end
      const t2 = await Trainer.create({ resume: path.join(dir, 'lib'), quiet: true, cacheDir: cache });
      expect(t2.stepsDone).toBe(2);
      const done = await t2.run();
      expect(done).toMatchObject({ step: 6, finished: true });
      expect(done.losses).toHaveLength(4);
      expect(done.valLoss).toBeLessThan(10);
      expect(() => t2.step()).toThrow(/the run is complete \(step 6 of 6\)/);
      t2.free();
      expect(write).not.toHaveBeenCalled();
      expect(log).not.toHaveBeenCalled();
    } finally {
      write.mockRestore();
      log.mockRestore();
    }
  });
});
