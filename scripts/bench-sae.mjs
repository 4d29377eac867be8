#!/usr/bin/env node
// The SAE training step of crate-ts on cached activations (scripts/bench-sae.sh): the recipe of
// `crate-ts sae train --arch relu` (normalised MSE + λ·L1, decoder-gradient projection, Adam, unit
// decoder rows) on rows read from a float32 file through the shuffled buffer, without the model.
// Prints one JSON line: tokens/s over the timed steps, peak RSS, the mean L0 (active features per row)
// of the timed steps, the SGEMM micro-kernel and the thread count.
//   node scripts/bench-sae.mjs --acts FILE --d-in 512 --expansion 16 --batch 4096 --steps 20 --warmup 2 [--backend cpu] [--threads N] [--init DIR]
//     --init DIR starts from the SAE in DIR (cfg.json + sae_weights.safetensors, as `crate-ts sae train`
//     writes) instead of the random initialisation: a trained SAE's codes are sparse (L0 in the hundreds
//     of 8192), which the first steps from random init (L0 about half of the features) are not
//   node scripts/bench-sae.mjs --make-acts FILE --rows R --checkpoint-out CKPT
//     writes a 2-layer GPT-2 checkpoint with the paper's 1-3L width (n_embd 128: 512 neurons per layer,
//     seed 1, untrained) and R rows of its blocks.0.mlp.hook_post on the embedded corpus
//   node scripts/bench-sae.mjs --small-checkpoint-out CKPT
//     writes a 1-layer GPT-2 checkpoint with n_embd 16 (64 neurons, block size 128, seed 1), on which
//     10M SAE training tokens take minutes: the bounded-memory check at 1M against 10M tokens
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { selectBackend } from '../dist/backend/select.js';
import { ResidentSae } from '../dist/sae/sae.js';
import { ActivationBuffer } from '../dist/sae/buffer.js';
import { batchVariance, saeDefaults } from '../dist/sae/train.js';
import { Rng } from '../dist/util/rng.js';

const { values: v } = parseArgs({
  options: {
    acts: { type: 'string' },
    'd-in': { type: 'string', default: '512' },
    expansion: { type: 'string', default: '16' },
    batch: { type: 'string', default: '4096' },
    steps: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '2' },
    buffer: { type: 'string', default: '32768' },
    backend: { type: 'string', default: 'cpu' },
    threads: { type: 'string' },
    init: { type: 'string' },
    'make-acts': { type: 'string' },
    rows: { type: 'string', default: '65536' },
    'checkpoint-out': { type: 'string' },
    'small-checkpoint-out': { type: 'string' },
  },
});
if (v['small-checkpoint-out']) {
  const { LanguageModel } = await import('../dist/model/lm.js');
  const { makeConfig } = await import('../dist/model/config.js');
  const { saveCheckpoint } = await import('../dist/checkpoint/checkpoint.js');
  const sel = await selectBackend('cpu', {});
  const model = new LanguageModel(sel.backend, makeConfig('char-tiny', { arch: 'gpt2', nEmbd: 16, nHead: 2, nLayer: 1, blockSize: 128 }), { seed: 1 });
  saveCheckpoint(v['small-checkpoint-out'], { model, tokenizer: 'byte' });
  model.free();
  if (!v['make-acts']) process.exit(0);
}
if (v['make-acts']) {
  const { LanguageModel } = await import('../dist/model/lm.js');
  const { makeConfig } = await import('../dist/model/config.js');
  const { saveCheckpoint } = await import('../dist/checkpoint/checkpoint.js');
  const { loadDataset } = await import('../dist/data/corpus.js');
  const { loadTokenizer } = await import('../dist/data/tokenizer.js');
  const sel = await selectBackend('cpu', {});
  const T = 128;
  const model = new LanguageModel(sel.backend, makeConfig('char-tiny', { arch: 'gpt2', nEmbd: 128, nHead: 4, nLayer: 2, blockSize: T }), { seed: 1 });
  if (v['checkpoint-out']) saveCheckpoint(v['checkpoint-out'], { model, tokenizer: 'byte' });
  const ds = await loadDataset({ tokenizer: await loadTokenizer('byte'), cacheDir: null });
  const R = Number(v.rows);
  const out = new Float32Array(R * 512);
  const hook = 'blocks.0.mlp.hook_post';
  for (let r = 0, w = 0; r < R; w++) {
    const ids = Array.from(ds.train.subarray((w * T) % (ds.train.length - T), ((w * T) % (ds.train.length - T)) + T));
    const a = model.runWithCache(ids, 1, T, { names: [hook], stopAtLayer: 1, returnLogits: false }).cache.get(hook);
    for (let t = 0; t < T && r < R; t++, r++) for (let i = 0; i < 512; i++) out[r * 512 + i] = a.get(0, t, i);
  }
  fs.writeFileSync(v['make-acts'], Buffer.from(out.buffer));
  model.free();
  process.exit(0);
}
const D = Number(v['d-in']),
  S = D * Number(v.expansion),
  N = Number(v.batch),
  steps = Number(v.steps),
  warm = Number(v.warmup);
if (!v.acts) {
  console.error('bench-sae.mjs: --acts FILE is required');
  process.exit(2);
}
const file = fs.readFileSync(v.acts);
const all = new Float32Array(file.buffer, file.byteOffset, file.byteLength / 4);
const rowsTotal = all.length / D;
let at = 0;
const source = () => {
  const n = Math.min(N, rowsTotal - at);
  const out = all.slice(at * D, (at + n) * D);
  at = (at + n) % rowsTotal;
  return out;
};
const sel = await selectBackend(v.backend, { threads: v.threads ? Number(v.threads) : undefined });
const be = sel.backend;
const def = saeDefaults(D, S, 'relu', N);
const buffer = new ActivationBuffer(Number(v.buffer), D, new Rng(1), source);
const sae = new ResidentSae(be, D, S);
if (v.init) {
  const { loadSae } = await import('../dist/sae/format.js');
  const init = loadSae(v.init);
  if (init.weights.D !== D || init.weights.S !== S) {
    console.error(`bench-sae.mjs: --init ${v.init} is d_in ${init.weights.D} x d_sae ${init.weights.S}, not ${D} x ${S}`);
    process.exit(2);
  }
  sae.setWeights(init.weights);
} else {
  const rng = new Rng(0);
  const b = (n, fan) => Float64Array.from({ length: n }, () => Math.fround((2 * rng.uniform() - 1) * Math.sqrt(6 / fan)));
  sae.setWeights({ D, S, Wenc: b(D * S, S), benc: new Float64Array(S), Wdec: b(S * D, D), bdec: new Float64Array(D) });
}
const x = new Float32Array(N * D);
let t0 = 0;
let l0 = 0,
  l0Timed = 0,
  fvu = 0;
for (let step = 1; step <= warm + steps; step++) {
  if (step === warm + 1) t0 = performance.now();
  buffer.next(N, x);
  const st = sae.gradient(x, N, batchVariance(x, N, D), { k: S, l1: def.l1 });
  sae.update(def.lr, step, 0.9, 0.999);
  l0 = st.counts.reduce((a, c) => a + c, 0) / N;
  if (step > warm) l0Timed += l0 / steps;
  fvu = st.fvu;
}
const secs = (performance.now() - t0) / 1000;
console.log(
  JSON.stringify({
    impl: 'crate-ts',
    backend: sel.name,
    threads: typeof be.threads === 'function' ? be.threads() : null,
    gemm_kernel: typeof be.gemmKernel === 'function' ? be.gemmKernel() : null,
    init: v.init ? 'trained' : 'random',
    d_in: D,
    d_sae: S,
    batch: N,
    steps,
    tokens_per_s: (steps * N) / secs,
    peak_rss_mib: (process.resourceUsage().maxRSS * 1024) / 2 ** 20,
    last_fvu: fvu,
    last_l0: l0,
    mean_l0: l0Timed,
  }),
);
sae.free();
