// Issue 23, the researcher's journey: what stood in the way of a new user who followed the README,
// each as a check that fails on the old behaviour. Paper presets keep their context (23.1), the
// random-init control in one command and beside every compared score (23.2), text that is not
// UTF-8 (23.4), collections protected by a lock (23.6), Ctrl-C during collect (23.7), messages that
// point the right way (23.8) and the CPU kernel in a run's metadata (23.9). The packed-package
// example of 23.3 is in test/consumer.test.ts.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { capture as captureCli } from './helpers/capture.js';
import { resolveRun, train } from '../src/train/trainer.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import { selectBackend } from '../src/backend/select.js';
import type { Backend } from '../src/backend/types.js';
import { LanguageModel } from '../src/model/lm.js';
import { makeConfig } from '../src/model/config.js';
import { loadCheckpoint, saveCheckpoint, modelFromCheckpoint } from '../src/checkpoint/checkpoint.js';
import { paramTable } from '../src/model/params.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { loadDataset, decodeText, firstInvalidUtf8 } from '../src/data/corpus.js';
import { loadTokenizer } from '../src/data/tokenizer.js';
import { collect, CollectInterrupted, LOCK_FILE } from '../src/neurons/collect.js';
import { scoreCollection } from '../src/neurons/score.js';
import { Engine } from '../src/serve/engine.js';
import { TokenBytes } from '../src/serve/tokens.js';
import { startServer, WARNING_HEADER } from '../src/serve/server.js';
import { ViewerData } from '../src/viewer/data.js';
import { cliMessage } from '../src/cli/flags.js';

const capture = (argv: string[]) => captureCli(argv, { notTTY: true });
const ROOT = path.resolve(__dirname, '..');

let dir: string, corpus: string, cache: string;
let fast: Backend<unknown>;
beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-journey-'));
  corpus = path.join(dir, 'corpus.txt');
  cache = path.join(dir, 'cache');
  const words = ['the', 'whale', 'sea', 'ship', 'Ahab', 'white', 'boat', 'harpoon', 'and', 'of', 'Queequeg', 'quiet'];
  const parts: string[] = [];
  for (let i = 0; i < 30000; i++) parts.push(words[(i * 7 + (i >> 3)) % words.length]);
  fs.writeFileSync(corpus, parts.join(' '));
  try {
    fast = (await selectBackend('cpu')).backend;
  } catch {
    fast = new ReferenceBackend() as Backend<unknown>;
  }
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A tiny byte-level run on the reference backend (milliseconds per step). */
const tiny = (over: Record<string, unknown> = {}) => ({
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
  ...over,
});

describe('23.1 a paper preset keeps its shape', () => {
  it('--preset 1L trains T 1024 on cpu (not the cpu default 64), with the batch cut to the default tokens per step, printed', async () => {
    const run = await resolveRun({ preset: '1L', backend: fast, data: corpus, cacheDir: cache, steps: 10 });
    expect(run.config.blockSize).toBe(1024);
    expect(run.hyper.seq).toBe(1024);
    if (fast.name === 'cpu') {
      expect(run.hyper.batch).toBe(1); // 16 x 64 tokens per step on cpu, kept at T 1024
      expect(run.notices.join('\n')).toMatch(/batch 1: the cpu default of 1,024 tokens per step at T 1024 \(--batch N to change\)/);
    }
  });

  it('a shorter --seq is honoured and printed beside the preset T; the no-preset default says it shortened for speed', async () => {
    const short = await resolveRun({ preset: '1L', backend: fast, data: corpus, cacheDir: cache, steps: 10, seq: 64 });
    expect(short.config.blockSize).toBe(64);
    expect(short.notices).toContain('model: T 64 from --seq (the preset 1L has T 1024)');
    const dflt = await resolveRun({ backend: new ReferenceBackend(), data: corpus, cacheDir: cache, steps: 10 });
    expect(dflt.config.blockSize).toBe(32);
    expect(dflt.notices.join('\n')).toMatch(
      /model: the reference backend's default, char-tiny with 1 layer, T 32 for speed \(--preset char-tiny trains the preset's own shape, T 64\)/,
    );
  });

  it('train --help says what --seq defaults to and that the batch may be cut', async () => {
    const r = await capture(['train', '--help']);
    expect(r.out).toMatch(/--seq N {14}tokens per sequence = the model's block size T \(default: the preset's, e\.g\.\n\s+1024 for the paper's/);
    expect(r.out).toMatch(/--batch N .*or fewer when the preset's T is longer/);
  });
});

describe('23.2 the random-init control', () => {
  it("train --steps 0 writes the seed's initial model as a normal run: evaluated, loadable, equal to a fresh model of that seed", async () => {
    const out = path.join(dir, 'init0');
    const r = await train(tiny({ steps: 0, out, seed: 5 }));
    expect(r.step).toBe(0);
    expect(Number.isFinite(r.valLoss)).toBe(true);
    const ck = loadCheckpoint(out);
    expect(ck.train?.step).toBe(0);
    const fresh = new LanguageModel(new ReferenceBackend(), ck.config, { seed: 5 });
    const saved = modelFromCheckpoint(ck, new ReferenceBackend());
    const names = paramTable(ck.config).map((p) => p.name);
    expect(names.length).toBeGreaterThan(3);
    for (const name of names) expect(Array.from(saved.param(name)), name).toEqual(Array.from(fresh.param(name)));
    fresh.free();
    saved.free();
    const log = fs.readFileSync(path.join(out, 'train.jsonl'), 'utf8');
    expect(log).toMatch(/"type":"summary","step":0/);
  });

  it('train --resume of a finished run is refused with exit 2, unless --steps extends it', async () => {
    const out = path.join(dir, 'done');
    await train(tiny({ steps: 3, out }));
    const r = await capture(['train', '--resume', out, '--backend', 'reference', '--sample-tokens', '0', '--cache-dir', cache]);
    expect(r.code).toBe(2);
    expect(r.err.trim()).toBe(`crate-ts train: --resume ${out} is a finished run (step 3 of 3): nothing to resume; --steps N with N > 3 extends it`);
    const more = await resolveRun({ resume: out, steps: 5, cacheDir: cache });
    expect(more.hyper.steps).toBe(5);
  });

  describe('neurons compare --baseline-init', () => {
    let trained: string, init: string, other: string;
    beforeAll(async () => {
      const ck = (seed: number, arch: 'crate' | 'gpt2', name: string) => {
        const m = new LanguageModel(new ReferenceBackend(), makeConfig('char-tiny', { arch, nEmbd: 16, nHead: 2, nLayer: 2, blockSize: 16 }), { seed });
        const f = path.join(dir, `${name}.safetensors`);
        saveCheckpoint(f, { model: m as LanguageModel<unknown>, tokenizer: 'byte' });
        m.free();
        return f;
      };
      trained = path.join(dir, 'c-trained');
      init = path.join(dir, 'c-init');
      other = path.join(dir, 'g-trained');
      const opts = { data: corpus, tokens: 40 * 16, variant: 'both' as const, backend: fast, cacheDir: null };
      await collect({ ...opts, checkpoint: ck(1, 'crate', 'ct'), out: trained });
      await collect({ ...opts, checkpoint: ck(2, 'crate', 'ci'), out: init });
      await collect({ ...opts, checkpoint: ck(3, 'gpt2', 'gt'), out: other });
    });

    it('shows the init level beside every score in the terminal and the JSON, and draws it in the chart', async () => {
      const svg = path.join(dir, 'cmp.svg');
      const r = await capture(['neurons', 'compare', trained, other, '--labels', 'crate,gpt2', '--baseline-init', init, '--svg', svg]);
      expect(r.code).toBe(0);
      const s = scoreCollection(init);
      for (const l of s.layers) expect(r.out).toContain(`[init ${l.tar!.toFixed(2)}]`);
      expect(r.out).toContain(`[init ${s.model.tar.mean!.toFixed(2)}]`);
      expect(r.out).toMatch(/gpt2 +no random-init control of gpt2 with 2 layers was given/);
      expect(r.out).toMatch(/crate +TaR +[+-]\d+\.\d\d points over crate init \(L 2\)/);
      expect(fs.readFileSync(svg, 'utf8')).toMatch(/<path class="init" d="M/);
      const j = JSON.parse((await capture(['neurons', 'compare', trained, other, '--baseline-init', init, '--json'])).out);
      expect(j.groups[0].init.model.tar.mean).toBeCloseTo(s.model.tar.mean!, 12);
      expect(j.groups[0].init.layers.map((l: { score: { tar: { mean: number } } }) => l.score.tar.mean)).toEqual(s.layers.map((l) => l.tar));
      expect(j.groups[1].init).toBeNull();
    });

    it("the viewer's chart is fed the init level of each collection's layers (neurons view --baseline-init)", async () => {
      const s = scoreCollection(init);
      const data = await ViewerData.open([trained, other], { baselineInit: [s], steer: false, weights: false });
      try {
        const cols = (data.index() as { collections: { layers: { layer: number; init?: { tar: number } }[] }[] }).collections;
        expect(cols[0].layers.map((l) => l.init?.tar)).toEqual(s.layers.map((l) => Number(l.tar!.toPrecision(5))));
        expect(cols[1].layers.every((l) => l.init === undefined)).toBe(true); // gpt2: no control of its architecture
      } finally {
        data.free();
      }
    });

    it('a run directory given as the baseline gets the collect command to run, with the same settings', async () => {
      const out = path.join(dir, 'init0');
      if (!fs.existsSync(out)) await train(tiny({ steps: 0, out }));
      const r = await capture(['neurons', 'compare', trained, '--baseline-init', out]);
      expect(r.code).toBe(2);
      expect(r.err).toContain(
        `is a training run, not a collection: collect it as the others were, e.g. crate-ts neurons collect --checkpoint ${out} --out ${out}-neurons --tokens 640 --variant both --seed 0 --data ${corpus}`,
      );
    });
  });
});

describe('23.4 text that is not UTF-8 is refused, or read with --encoding', () => {
  const text = 'Call me Ishmael. “Whale” — café.\n';
  const utf8 = Buffer.from(text, 'utf8');
  const cases: [string, Buffer, RegExp][] = [
    [
      'utf16le-bom',
      Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]),
      /is UTF-16LE text \(byte-order mark FF FE\), not UTF-8: convert it to UTF-8 with iconv -f UTF-16LE -t UTF-8 .*, or pass --encoding utf-16le$/,
    ],
    [
      'utf16be-bom',
      Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from(text, 'utf16le').swap16()]),
      /is UTF-16BE text \(byte-order mark FE FF\), not UTF-8: .*iconv -f UTF-16BE .*--encoding utf-16be$/,
    ],
    [
      'utf16le-nobom',
      Buffer.from('plain ascii text here. '.repeat(20), 'utf16le'),
      /is UTF-16LE text without a byte-order mark \(\d+ NUL bytes at odd offsets/,
    ],
    [
      'latin1',
      Buffer.from('caf\xe9 au lait, na\xefve\n'.repeat(5), 'latin1'),
      /is not valid UTF-8 \(byte 0xE9 at offset 3, after "caf"; Latin-1 or Windows-1252\?\): convert it to UTF-8 with iconv -f LATIN1 -t UTF-8 .*, or pass --encoding latin1$/,
    ],
  ];
  for (const [name, bytes, re] of cases) {
    it(`${name}: one line naming the encoding and the conversion`, async () => {
      const f = path.join(dir, `${name}.txt`);
      fs.writeFileSync(f, bytes);
      const tok = await loadTokenizer('byte');
      const e = await loadDataset({ data: f, tokenizer: tok, cacheDir: null }).then(
        () => null,
        (e: Error) => e,
      );
      // the library names the option `encoding`; the command line prints it as --encoding
      const err = cliMessage(e!);
      expect(err).toMatch(re);
      expect(err).not.toContain('\n');
      expect(e!.message).not.toMatch(/--[a-z]/);
    });
  }

  it('train refuses UTF-16 with exit 1 and the message; --encoding utf-16le reads it as the UTF-8 text', async () => {
    const f = path.join(dir, 'u16.txt');
    fs.writeFileSync(f, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(fs.readFileSync(corpus, 'utf8'), 'utf16le')]));
    const r = await capture([
      'train',
      '--data',
      f,
      '--backend',
      'reference',
      '--steps',
      '1',
      '--preset',
      'char-tiny',
      '--n-layer',
      '1',
      '--out',
      path.join(dir, 'u16run'),
    ]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^crate-ts train: data file '.*u16\.txt' is UTF-16LE text \(byte-order mark FF FE\), not UTF-8: convert it to UTF-8 with iconv/);
    const tok = await loadTokenizer('byte');
    const a = await loadDataset({ data: f, tokenizer: tok, cacheDir: null, encoding: 'utf-16le' });
    const b = await loadDataset({ data: corpus, tokenizer: tok, cacheDir: null });
    expect(Array.from(a.train)).toEqual(Array.from(b.train));
  });

  it('a UTF-8 byte-order mark is dropped; latin1 maps bytes to code points; the validator finds the first bad byte', () => {
    expect(decodeText(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), utf8]), 'x')).toBe(text);
    expect(decodeText(Buffer.from([0x63, 0x61, 0x66, 0xe9]), 'x', 'latin1')).toBe('café');
    expect(firstInvalidUtf8(utf8)).toBe(-1);
    expect(firstInvalidUtf8(Buffer.from([0x61, 0xc0, 0x80]))).toBe(1); // overlong
    expect(firstInvalidUtf8(Buffer.from([0x61, 0xed, 0xa0, 0x80]))).toBe(1); // surrogate
    expect(firstInvalidUtf8(Buffer.from([0x61, 0xe2, 0x80]))).toBe(1); // truncated at the end
  });
});

describe('23.6 / 23.7 collections are protected; Ctrl-C says what it stopped', () => {
  let ckpt: string;
  beforeAll(() => {
    const m = new LanguageModel(new ReferenceBackend(), makeConfig('char-tiny', { nEmbd: 16, nHead: 2, nLayer: 1, blockSize: 16 }), { seed: 9 });
    ckpt = path.join(dir, 'lock.safetensors');
    saveCheckpoint(ckpt, { model: m as LanguageModel<unknown>, tokenizer: 'byte' });
    m.free();
  });
  const base = () => ({ checkpoint: ckpt, data: corpus, tokens: 20 * 16, backend: fast, cacheDir: null });

  it('two collects into the same directory at once: the second is refused while the first holds the lock, and the first completes', async () => {
    const out = path.join(dir, 'same');
    const [a, b] = await Promise.allSettled([collect({ ...base(), out }), collect({ ...base(), out })]);
    expect(a.status).toBe('fulfilled');
    expect(b.status).toBe('rejected');
    expect((b as PromiseRejectedResult).reason.message).not.toMatch(/--[a-z]/);
    expect(cliMessage((b as PromiseRejectedResult).reason)).toMatch(
      new RegExp(
        `^another crate-ts neurons collect \\(pid ${process.pid}, started .*\\) is writing to '${out}'; wait for it to finish or choose another --out`,
      ),
    );
    expect(fs.existsSync(path.join(out, 'manifest.json'))).toBe(true);
    expect(fs.existsSync(path.join(out, LOCK_FILE))).toBe(false);
  });

  it('a lock left by a process that is gone is taken over', async () => {
    const out = path.join(dir, 'stale');
    fs.mkdirSync(out);
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    fs.writeFileSync(path.join(out, LOCK_FILE), JSON.stringify({ pid: Number(dead.stdout), started: 'then' }));
    await collect({ ...base(), out });
    expect(fs.existsSync(path.join(out, 'manifest.json'))).toBe(true);
  });

  it('a non-empty directory that is not a collection, and a folder of crate-ts itself, are refused (exit 2); nothing is written', async () => {
    const notes = path.join(dir, 'notes');
    fs.mkdirSync(notes);
    fs.writeFileSync(path.join(notes, 'thesis.tex'), 'mine');
    const r = await capture(['neurons', 'collect', '--checkpoint', ckpt, '--out', notes, '--tokens', '320', '--backend', 'reference']);
    expect(r.code).toBe(2);
    expect(r.err.trim()).toBe(`crate-ts neurons: --out '${notes}' is not empty and holds no neuron collection (thesis.tex); give a new or empty directory`);
    expect(fs.readdirSync(notes)).toEqual(['thesis.tex']);
    for (const target of [path.join(ROOT, 'src'), path.join(ROOT, 'src', 'n')]) {
      const s = await capture(['neurons', 'collect', '--checkpoint', ckpt, '--out', target, '--tokens', '320', '--backend', 'reference', '--force']);
      expect(s.code).toBe(2);
      expect(s.err).toContain(`is inside crate-ts's own src/ folder`);
    }
    expect(fs.existsSync(path.join(ROOT, 'src', 'n'))).toBe(false);
  });

  it('an aborted collect throws CollectInterrupted, writes nothing and removes the directory it made', async () => {
    const out = path.join(dir, 'aborted');
    const stop = new AbortController();
    stop.abort();
    const e = await collect({ ...base(), out, signal: stop.signal }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CollectInterrupted);
    expect((e as CollectInterrupted).tokens).toBe(16);
    expect(fs.existsSync(out)).toBe(false);
  });

  it('Ctrl-C during `neurons collect`: one line says what was interrupted and that nothing was written; exit 130', async () => {
    const out = path.join(dir, 'ctrlc');
    const before = process.listenerCount('SIGINT');
    const running = capture(['neurons', 'collect', '--checkpoint', ckpt, '--data', corpus, '--out', out, '--backend', 'reference', '--layers', '0']);
    // send SIGINT once, as soon as the command listens for it
    await new Promise<void>((resolve) => {
      const t = setInterval(() => {
        if (process.listenerCount('SIGINT') > before) {
          clearInterval(t);
          process.emit('SIGINT');
          resolve();
        }
      }, 2);
    });
    const r = await running;
    expect(r.code).toBe(130);
    expect(r.err.trim()).toMatch(
      new RegExp(
        `^crate-ts neurons collect: Ctrl-C \\(SIGINT\\): interrupted after [\\d,]+ of [\\d,]+ tokens \\(layers 0 of ${ckpt}\\); nothing was written to '${out}'`,
      ),
    );
    expect(fs.existsSync(out)).toBe(false);
    expect(process.listenerCount('SIGINT')).toBe(before);
  });
});

describe('23.8 messages that point the right way', () => {
  it('neurons scroe: did you mean score', async () => {
    const r = await capture(['neurons', 'scroe', 'x']);
    expect(r.code).toBe(2);
    expect(r.err).toContain("unknown subcommand 'scroe' (did you mean 'score'?)");
  });

  it('neurons score --help lists the LLM options', async () => {
    const r = await capture(['neurons', 'score', '--help']);
    expect(r.code).toBe(0);
    for (const o of ['--simulator lookup', '--api-base', '--explainer-model', '--simulator-api-base', '--max', '--layers', '--splits'])
      expect(r.out).toContain(o);
  });

  it('neurons show RUN_DIR: collect first, with the command', async () => {
    const out = path.join(dir, 'showrun');
    await train(tiny({ steps: 1, out }));
    const r = await capture(['neurons', 'show', out, '--layer', '0', '--neuron', '0']);
    expect(r.code).toBe(1);
    expect(r.err.trim()).toBe(
      `crate-ts neurons: '${out}' is a training run, not a neuron collection: collect its neurons first, e.g. crate-ts neurons collect --checkpoint ${out} --out ${out}-neurons`,
    );
  });

  it('steer --checkpoint README.md: not a safetensors file', async () => {
    const r = await capture(['steer', '--checkpoint', path.join(ROOT, 'README.md'), '--layer', '0', '--neuron', '0', '--value', '1']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/not a safetensors file \(it would start with an 8-byte header length and a JSON header '\{'; this one starts with "# crate-ts/);
    expect(r.err).not.toMatch(/header length \d{10,}/);
  });

  it('collect takes --layer and show takes --layers (the same option, both spellings)', async () => {
    const m = new LanguageModel(new ReferenceBackend(), makeConfig('char-tiny', { nEmbd: 16, nHead: 2, nLayer: 2, blockSize: 16 }), { seed: 4 });
    const ck = path.join(dir, 'spell.safetensors');
    saveCheckpoint(ck, { model: m as LanguageModel<unknown>, tokenizer: 'byte' });
    m.free();
    const out = path.join(dir, 'spell');
    const c = await capture([
      'neurons',
      'collect',
      '--checkpoint',
      ck,
      '--data',
      corpus,
      '--tokens',
      '320',
      '--layer',
      '1',
      '--out',
      out,
      '--backend',
      'reference',
    ]);
    expect(c.code).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8')).layers).toEqual([1]);
    const s = await capture(['neurons', 'show', out, '--layers', '1', '--neuron', '3']);
    expect(s.code).toBe(0);
    expect(s.out).toContain('blocks.1.hook_neurons');
    const both = await capture(['neurons', 'collect', '--checkpoint', ck, '--layer', '1', '--layers', '0', '--out', path.join(dir, 'x')]);
    expect(both.code).toBe(2);
  });
});

describe('23.9 the CPU kernel is in the run', () => {
  it('train on cpu records the SGEMM kernel in train.jsonl and model.safetensors; a collection records it too', async () => {
    if (fast.name !== 'cpu') return; // no addon here: nothing to record
    const out = path.join(dir, 'kernel');
    await train(tiny({ backend: fast, steps: 2, out }));
    const kernel = (fast as unknown as { gemmKernel(): string }).gemmKernel();
    expect(['avx512', 'avx2', 'scalar']).toContain(kernel);
    const first = JSON.parse(fs.readFileSync(path.join(out, 'train.jsonl'), 'utf8').split('\n')[0]);
    expect(first.backend.cpu_kernel).toBe(kernel);
    expect(readSafetensors(path.join(out, 'model.safetensors')).metadata.cpu_kernel).toBe(kernel);
    const col = path.join(dir, 'kernel-n');
    await collect({ checkpoint: out, data: corpus, tokens: 320, backend: fast, out: col, cacheDir: null });
    expect(JSON.parse(fs.readFileSync(path.join(col, 'manifest.json'), 'utf8')).cpu_kernel).toBe(kernel);
  });
});

describe('23.1 serve: a prompt longer than the context', () => {
  it('an echo + logprobs request gets the warning header and the onWarning call; a short prompt gets none', async () => {
    const tok = await loadTokenizer('byte');
    const model = new LanguageModel(new ReferenceBackend(), makeConfig('char-tiny', { nEmbd: 16, nHead: 2, nLayer: 1, blockSize: 16 }), { seed: 1 });
    const engine = new Engine(model as LanguageModel<unknown>, tok, await TokenBytes.forTokenizer(tok), {});
    const warnings: string[] = [];
    const srv = await startServer(engine, { port: 0, onWarning: (m) => warnings.push(m) });
    try {
      const post = (prompt: string) =>
        fetch(`http://127.0.0.1:${srv.port}/v1/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'crate', prompt, max_tokens: 0, echo: true, logprobs: 1 }),
        });
      const long = await post('x'.repeat(40));
      expect(long.status).toBe(200);
      expect(long.headers.get(WARNING_HEADER)).toBe(
        "a prompt of 40 tokens is longer than this model's context (block size 16): its log-probabilities are scored in sliding windows (stride 8), each token with at most 15 tokens of context",
      );
      expect(warnings).toEqual([long.headers.get(WARNING_HEADER)]);
      const short = await post('x'.repeat(10));
      expect(short.headers.get(WARNING_HEADER)).toBeNull();
      expect(warnings.length).toBe(1);
      // the explainer's chat requests: generation sees only the last T tokens
      const chat = await fetch(`http://127.0.0.1:${srv.port}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'crate', messages: [{ role: 'user', content: 'y'.repeat(30) }], max_tokens: 1 }),
      });
      expect(chat.status).toBe(200);
      expect(chat.headers.get(WARNING_HEADER)).toMatch(
        /^a prompt of \d+ tokens is longer than this model's context \(block size 16\): generation sees only its last 16 tokens$/,
      );
      expect(warnings.length).toBe(2);
    } finally {
      await srv.close();
      model.free();
    }
  });
});
