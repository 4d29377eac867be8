// SAE features as neurons: neurons collect --sae collects h under <hook>.hook_sae_acts_post, and a
// feature clamp keeps the SAE's error term (an unchanged clamp reproduces the model exactly), in the
// library and through `crate-ts steer --sae`.
import { describe, expect, test, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { LanguageModel } from '../src/model/lm.js';
import { makeConfig } from '../src/model/config.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import type { Backend } from '../src/backend/types.js';
import { saveCheckpoint, loadCheckpoint, modelFromCheckpoint } from '../src/checkpoint/checkpoint.js';
import { trainSae } from '../src/sae/train.js';
import { loadSae, writeWeights } from '../src/sae/format.js';
import { saeClampHooks } from '../src/sae/features.js';
import { nextToken } from '../src/steer/steer.js';
import { collect } from '../src/neurons/collect.js';
import { readManifest } from '../src/neurons/format.js';

const ref = new ReferenceBackend() as Backend<unknown>;
const T = 16;
let dir = '',
  ck = '',
  saeDir = '';

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-sae-feat-'));
  const model = new LanguageModel(new ReferenceBackend(), makeConfig('char-tiny', { arch: 'crate', nEmbd: 8, nHead: 2, nLayer: 2, blockSize: T }), { seed: 2 });
  ck = path.join(dir, 'crate.safetensors');
  saveCheckpoint(ck, { model: model as LanguageModel<unknown>, tokenizer: 'byte' });
  saeDir = path.join(dir, 'sae');
  await trainSae({ checkpoint: ck, layer: 1, expansion: 2, tokens: 8 * 128, batchTokens: 128, bufferTokens: 256, out: saeDir, backend: ref });
}, 300_000);
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** h by hand in float64 from the weights (relu SAE). */
function features(x: Float64Array, N: number): Float64Array {
  const { weights: w } = loadSae(saeDir);
  const h = new Float64Array(N * w.S);
  for (let n = 0; n < N; n++)
    for (let j = 0; j < w.S; j++) {
      let s = w.benc[j];
      for (let i = 0; i < w.D; i++) s += (x[n * w.D + i] - w.bdec[i]) * w.Wenc[i * w.S + j];
      h[n * w.S + j] = Math.max(0, s);
    }
  return h;
}

describe('SAE features as neurons', () => {
  test("neurons collect --sae: the hook name, the width, and each feature's maximum equal h computed from the files", async () => {
    const out = path.join(dir, 'col');
    await collect({ checkpoint: ck, sae: saeDir, tokens: 4 * T, backend: ref, out, variant: 'openai' });
    const m = readManifest(out);
    expect(m.hooks).toEqual(['blocks.1.hook_neurons.hook_sae_acts_post']);
    expect(m.layers).toEqual([1]);
    const S = loadSae(saeDir).weights.S;
    expect(m.neurons).toEqual([S]);
    // independent: the activations of the first 4 windows, h by hand, per-feature max
    const model = modelFromCheckpoint(loadCheckpoint(ck), new ReferenceBackend()) as LanguageModel<unknown>;
    const tb = fs.readFileSync(path.join(out, 'tokens.u32'));
    const toks = Uint32Array.from({ length: tb.length / 4 }, (_, i) => tb.readUInt32LE(4 * i));
    const D = 32;
    const x = new Float64Array(4 * T * D);
    for (let w = 0; w < 4; w++) {
      const a = model
        .runWithCache(Array.from(toks.subarray(w * T, (w + 1) * T)), 1, T, { names: ['blocks.1.hook_neurons'] })
        .cache.get('blocks.1.hook_neurons');
      for (let t = 0; t < T; t++) for (let i = 0; i < D; i++) x[(w * T + t) * D + i] = a.get(0, t, i);
    }
    const h = features(x, 4 * T);
    const stats = fs
      .readFileSync(path.join(out, 'layer-1', 'stats.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { neuron: number; max: number | null });
    for (const s of stats) {
      let mx = -Infinity;
      for (let n = 0; n < 4 * T; n++) mx = Math.max(mx, h[n * S + s.neuron]);
      expect(Math.abs((s.max ?? NaN) - mx)).toBeLessThan(1e-12);
    }
    model.free();
  });

  test('a feature clamp keeps the error term: clamping to its own value reproduces the model bitwise; another value moves x by (v − h_j)·W_dec[j]', () => {
    const model = modelFromCheckpoint(loadCheckpoint(ck), new ReferenceBackend()) as LanguageModel<unknown>;
    const ids = Array.from({ length: T }, (_, t) => 65 + ((t * 7) % 26));
    const clean = model.forward(ids, 1, T).logits!;
    // a copy of the SAE whose feature 0 never fires (b_enc = -1e6): clamping it to 0 changes nothing
    const silentDir = path.join(dir, 'sae-silent');
    fs.cpSync(saeDir, silentDir, { recursive: true });
    const sw = loadSae(silentDir).weights;
    sw.benc[0] = -1e6;
    writeWeights(silentDir, sw);
    const same = model.runWithHooks(ids, 1, T, saeClampHooks(silentDir, model, ck, ref, 0, 0)).logits!;
    expect(Array.from(same)).toEqual(Array.from(clean));
    const x = new Float64Array(T * 32);
    const a = model.runWithCache(ids, 1, T, { names: ['blocks.1.hook_neurons'] }).cache.get('blocks.1.hook_neurons');
    for (let t = 0; t < T; t++) for (let i = 0; i < 32; i++) x[t * 32 + i] = a.get(0, t, i);
    const h = features(x, T);
    const S = loadSae(saeDir).weights.S;
    // clamp feature 0 to 5: the hooked activation is x + (5 − h_0)·W_dec[0]
    const { weights: w } = loadSae(saeDir);
    let seen: Float64Array | null = null;
    const hooks = saeClampHooks(saeDir, model, ck, ref, 0, 5);
    const after = model.runWithHooks(ids, 1, T, [
      ...Object.entries(hooks),
      [
        'blocks.1.hook_neurons',
        (act) => {
          seen = Float64Array.from({ length: T * 32 }, (_, e) => act.get(0, Math.floor(e / 32), e % 32));
        },
      ],
    ]).logits!;
    for (let t = 0; t < T; t++)
      for (let i = 0; i < 32; i++) expect(Math.abs(seen![t * 32 + i] - (x[t * 32 + i] + (5 - h[t * S]) * w.Wdec[i]))).toBeLessThan(1e-12);
    expect(Array.from(after)).not.toEqual(Array.from(clean));
    expect(() => saeClampHooks(saeDir, model, ck, ref, S, 1)).toThrow(/feature \d+ is out of range/);
    model.free();
  });
});

describe('crate-ts steer --sae DIR --feature J', () => {
  const CLI = path.resolve('test/helpers/crate-ts-src.mjs');
  const steer = (args: string[]) => spawnSync(process.execPath, [CLI, 'steer', '--checkpoint', ck, '--backend', 'reference', ...args], { encoding: 'utf8' });
  type Out = { kl: number; layer: number; feature: number; hook: string; top: { id: number; pBefore: number; pAfter: number; logitDelta: number }[] };

  test('a clamp that leaves the feature as it is reproduces the model exactly (KL 0, every logit unchanged)', () => {
    const silent = path.join(dir, 'sae-silent-cli');
    fs.cpSync(saeDir, silent, { recursive: true });
    const sw = loadSae(silent).weights;
    sw.benc[3] = -1e6; // feature 3 never fires: clamping it to 0 changes nothing
    writeWeights(silent, sw);
    const r = steer(['--sae', silent, '--feature', '3', '--value', '0', '--json', '--top', '50']);
    expect(r.status, r.stderr).toBe(0);
    const o = JSON.parse(r.stdout) as Out;
    expect(o).toMatchObject({ layer: 1, feature: 3, hook: 'blocks.1.hook_neurons.hook_sae_acts_post' });
    expect(o.kl).toBe(0);
    for (const e of o.top) {
      expect(e.pAfter).toBe(e.pBefore);
      expect(e.logitDelta).toBe(0);
    }
  });

  test("a clamp changes the output, exactly as the library's hooks do", () => {
    const r = steer(['--sae', saeDir, '--feature', '2', '--value', '8', '--json', '--top', '5']);
    expect(r.status, r.stderr).toBe(0);
    const o = JSON.parse(r.stdout) as Out;
    expect(o.kl).toBeGreaterThan(1e-6);
    const model = modelFromCheckpoint(loadCheckpoint(ck), ref) as LanguageModel<unknown>;
    const ids = Array.from(Buffer.from('1 2 3 4 5'));
    const want = nextToken(model, ids, saeClampHooks(saeDir, model, ck, ref, 2, 8)).probs;
    const base = nextToken(model, ids).probs;
    for (const e of o.top) {
      expect(Math.abs(e.pAfter - want[e.id])).toBeLessThan(1e-12);
      expect(Math.abs(e.pBefore - base[e.id])).toBeLessThan(1e-12);
    }
    model.free();
    const text = steer(['--sae', saeDir, '--feature', '2', '--value', '8']);
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/clamp feature 2 of the SAE .* \(blocks\.1\.hook_neurons\.hook_sae_acts_post/);
  });

  test('a feature out of range, an SAE for another checkpoint, --neuron with --sae: one line, exit 2 / 1 / 2', () => {
    const S = loadSae(saeDir).weights.S;
    let r = steer(['--sae', saeDir, '--feature', String(S), '--value', '1']);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(new RegExp(`feature ${S} is out of range: the SAE has ${S} features`));
    const other = path.join(dir, 'other.safetensors');
    const m = new LanguageModel(new ReferenceBackend(), makeConfig('char-tiny', { arch: 'crate', nEmbd: 8, nHead: 2, nLayer: 2, blockSize: T }), { seed: 3 });
    saveCheckpoint(other, { model: m as LanguageModel<unknown>, tokenizer: 'byte' });
    m.free();
    r = spawnSync(process.execPath, [CLI, 'steer', '--checkpoint', other, '--sae', saeDir, '--feature', '0', '--value', '1'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/trained on another checkpoint/);
    r = steer(['--sae', saeDir, '--neuron', '0', '--feature', '0', '--value', '1']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/give --feature J, not --neuron/);
  });
});
