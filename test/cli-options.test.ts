// One option parser for every command (src/cli/options.ts): a mistyped option is a usage error (exit
// 2, one line) with "did you mean", negative numbers are values, and --backend means the same
// everywhere (default auto, a list where a command compares backends). Every default is in --help;
// every analysis command has --json and accepts a run directory.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseOptions } from '../src/cli/options.js';
import { train } from '../src/train/trainer.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import { UsageError } from '../src/errors.js';
import { capture } from './helpers/capture.js';

let dir: string, run: string;
beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-cli-options-'));
  fs.writeFileSync(path.join(dir, 'text.txt'), 'Call me Ishmael. Some years ago, never mind how long precisely. '.repeat(40));
  run = path.join(dir, 'run');
  await train({
    preset: 'char-tiny',
    nEmbd: 16,
    nHead: 2,
    nLayer: 1,
    seq: 16,
    batch: 2,
    steps: 3,
    evalWindows: 2,
    evalEvery: 0,
    data: path.join(dir, 'text.txt'),
    backend: new ReferenceBackend(),
    out: run,
    quiet: true,
    sampleTokens: 0,
    cacheDir: null,
  });
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const MINE = ['train', 'sample', 'eval', 'verify', 'bench', 'fixture', 'audit', 'serve'];

describe('one option parser', () => {
  it('an unknown option is a one-line usage error (exit 2) in every command', async () => {
    for (const cmd of MINE) {
      const r = await capture([cmd, '--no-such-option', '1']);
      expect(r.code, cmd).toBe(2);
      expect(r.err, cmd).toBe(`crate-ts ${cmd}: unknown option '--no-such-option'; --help lists the options\n`);
    }
  });

  it('a near miss says which option was meant', async () => {
    const cases: [string[], string][] = [
      [['train', '--stpes', '3'], '--steps'],
      [['train', '--eval-evry', '3'], '--eval-every'],
      [['eval', '--checkpiont', run], '--checkpoint'],
      [['sample', '--temprature', '1'], '--temperature'],
      [['verify', '--sed', '1'], '--seed'],
      [['bench', '--confg', 'C-char'], '--config'],
      [['fixture', '--presett', 'golden'], '--preset'],
      [['audit', '--fixtur', 'x'], '--fixture'],
      [['steer', '--layr', '0'], '--layer'],
    ];
    for (const [argv, meant] of cases) {
      const r = await capture(argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err).toMatch(new RegExp(`^crate-ts ${argv[0]}: unknown option '${argv[1]}' \\(did you mean '${meant}'\\?\\); --help lists the options\\n$`));
    }
  });

  it('the commands that take positional arguments give the same hints', async () => {
    const collect = await capture(['neurons', 'collect', '--checkpont', run]);
    expect(collect.code).toBe(2);
    expect(collect.err).toMatch(/unknown option '--checkpont' \(did you mean '--checkpoint'\?\)/);
    const view = await capture(['neurons', 'view', 'dir', '--prot', '80']);
    expect(view.code).toBe(2);
    expect(view.err).toMatch(/unknown option '--prot' \(did you mean '--port'\?\)/);
    const explain = await capture(['neurons', 'explain', 'dir', '--concurency', '4']);
    expect(explain.code).toBe(2);
    expect(explain.err).toMatch(/unknown option '--concurency' \(did you mean '--concurrency'\?\)/);
    const serve = await capture(['serve', '--checkpoint', run, '--threads', '0']);
    expect(serve.code).toBe(2);
    expect(serve.err).toMatch(/--threads must be/);
  });

  it('negative numbers are values, judged by range (not "ambiguous" parser errors)', async () => {
    const bench = await capture(['bench', '--steps', '-1']);
    expect(bench.err).toBe('crate-ts bench: --steps must be >= 1, got -1\n');
    expect(bench.code).toBe(2);
    const verify = await capture(['verify', '--seed', '-4']);
    expect(verify.err).toBe('crate-ts verify: --seed must be >= 0, got -4\n');
    const fixture = await capture(['fixture', '--out', path.join(dir, 'f.safetensors'), '--batch', '-2']);
    expect(fixture.err).toBe('crate-ts fixture: --batch must be >= 1, got -2\n');
    expect(parseOptions(['--lr', '-1e-3'], { lr: { type: 'string' } }).lr).toBe('-1e-3');
  });

  it('missing values, switches given values and positional arguments are usage errors too', () => {
    const spec = { steps: { type: 'string' as const }, json: { type: 'boolean' as const } };
    expect(() => parseOptions(['--steps'], spec)).toThrow(new UsageError('--steps needs a value'));
    expect(() => parseOptions(['--json=1'], spec)).toThrow(new UsageError('--json is a switch and takes no value'));
    expect(() => parseOptions(['extra'], spec)).toThrow(/unexpected argument 'extra'/);
  });
});

describe('--backend: one name, default auto', () => {
  it('every command that runs a model takes --backend and documents the default', async () => {
    for (const cmd of ['train', 'sample', 'eval', 'verify', 'bench']) {
      const r = await capture([cmd, '--help']);
      expect(r.code).toBe(0);
      expect(r.out, cmd).toMatch(
        /--backend (NAME|LIST)\s+reference \| cpu \| cuda \| auto \(default auto|--backend LIST\s+backends to time, comma-separated: reference, cpu, cuda, auto \(default auto/,
      );
    }
  });

  it('an unknown backend is refused with the list (and the closest name)', async () => {
    for (const cmd of ['train', 'sample', 'eval', 'bench']) {
      const r = await capture([cmd, '--backend', 'cpux', ...(cmd === 'sample' || cmd === 'eval' ? ['--checkpoint', run] : [])]);
      expect(r.code, cmd).toBe(2);
      expect(r.err, cmd).toBe(`crate-ts ${cmd}: --backend: unknown backend 'cpux' (did you mean 'cpu'?); one of reference, cpu, cuda, auto\n`);
    }
    const v = await capture(['verify', '--checkpoint', run, '--backend', 'tpu']);
    expect(v.code).toBe(2);
    expect(v.err).toMatch(/unknown backend 'tpu' \(did you mean 'cpu'\?\); one of reference, cpu, cuda, auto/);
  });
});

describe('--help shows every default', () => {
  /** Option entries of a help text: the flag, whether it takes a value, and its text (continuation lines included). */
  function entries(help: string): { flag: string; value: boolean; text: string }[] {
    const out: { flag: string; value: boolean; text: string }[] = [];
    for (const line of help.split('\n')) {
      const m = /^ {2}(--[a-z-]+)( [A-Z][A-Z0-9:=,_|]*)?/.exec(line);
      if (m) out.push({ flag: m[1], value: m[2] !== undefined, text: line });
      else if (out.length && /^ {6,}\S/.test(line)) out[out.length - 1].text += ' ' + line.trim();
    }
    return out;
  }
  // options with no default by nature: what to resume, where to copy the log, a repeatable clamp, the required inputs
  const NO_DEFAULT = new Set(['--resume', '--json-log', '--clamp', '--checkpoint']);

  for (const cmd of ['train', 'sample', 'eval', 'verify', 'bench', 'fixture']) {
    it(cmd, async () => {
      const r = await capture([cmd, '--help']);
      const list = entries(r.out);
      expect(list.length).toBeGreaterThan(3);
      const missing = list.filter((e) => e.value && !NO_DEFAULT.has(e.flag) && !/default|required/.test(e.text)).map((e) => e.text);
      expect(missing, `${cmd}: options without a stated default`).toEqual([]);
    });
  }

  it('train names the defaults the task listed', async () => {
    const r = await capture(['train', '--help']);
    const t = r.out.replace(/\s+/g, ' ');
    expect(t).toMatch(/--threads N worker threads for native backends, 1\.\.256 \(default: all cores\)/);
    expect(t).toMatch(/--eval-every N .*\(default 100 on reference, 1000 on cpu, 500 on cuda\)/);
    expect(t).toMatch(/--save-every N .*\(default 100 on reference, 1000 on cpu, 500 on cuda\)/);
    expect(t).toMatch(/--log-every N .*\(default: about 20 lines per run, steps\/20\)/);
    expect(t).toMatch(/--sample-tokens N .*\(default 300 for byte and char tokenizers, 80 for gpt2\)/);
  });

  it('bench names its backends, batch and seq defaults', async () => {
    const t = (await capture(['bench', '--help'])).out.replace(/\s+/g, ' ');
    expect(t).toMatch(/--batch N sequences per training step \(default: each config's batch/);
    expect(t).toMatch(/--seq N tokens per sequence \(default: each config's T/);
    expect(t).toMatch(/C-char +V 256, L 2, heads 4, d 128, T 128, batch 16/);
  });
});

describe('analysis commands: --json and run directories', () => {
  it('verify --checkpoint takes a run directory (it failed with EISDIR) and writes JSON', async () => {
    const r = await capture([
      'verify',
      '--checkpoint',
      run,
      '--backend',
      'reference',
      '--data',
      path.join(dir, 'text.txt'),
      '--seq',
      '8',
      '--windows',
      '2',
      '--batch',
      '2',
      '--json',
    ]);
    expect(r.code, r.err).toBe(0);
    const j = JSON.parse(r.out) as { checkpoint: string; layers: unknown[] };
    expect(j.checkpoint).toBe(path.join(run, 'model.safetensors'));
    expect(j.layers).toHaveLength(1);
  });

  it('eval --json on a run directory and on the pre-0.2 name', async () => {
    for (const ck of [run, path.join(run, 'ckpt.safetensors')]) {
      const r = await capture(['eval', '--checkpoint', ck, '--backend', 'reference', '--windows', '4', '--json']);
      expect(r.code, r.err).toBe(0);
      const j = JSON.parse(r.out) as Record<string, unknown>;
      expect(j).toMatchObject({
        checkpoint: path.join(run, 'model.safetensors'),
        arch: 'crate',
        tokenizer: 'byte',
        step: 3,
        split: 'val',
        windows: 4,
        seq: 16,
        backend: 'reference',
      });
      expect(Math.abs((j.perplexity as number) - Math.exp(j.loss as number))).toBeLessThan(1e-9);
      // byte-level: every target is one byte, so bits per byte is the loss in bits
      expect(j.bytes).toBe(4 * 16);
      expect(Math.abs((j.bitsPerByte as number) - (j.loss as number) / Math.LN2)).toBeLessThan(1e-12);
    }
  });
});
