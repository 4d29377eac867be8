#!/usr/bin/env node
// Determinism witness at the model level (no trainer, no data files): 20 AdamW steps of forward,
// backward and clipping on seeded random tokens, for every architecture, on the reference and cpu
// backends. Prints a sha256 of the losses and of the final parameters; two commits that should
// compute the same thing must print the same lines.   node scripts/model-hash.mjs [--backends reference,cpu]
import { createHash } from 'node:crypto';
import { LanguageModel, makeConfig, selectBackend, AdamW, clipGradNorm, lrAt, Rng } from '../dist/index.js';

const arg = process.argv.indexOf('--backends');
const backends = arg > 0 ? process.argv[arg + 1].split(',') : ['reference', 'cpu'];
const sha = (a) =>
  createHash('sha256')
    .update(Buffer.from(Float64Array.from(a).buffer))
    .digest('hex')
    .slice(0, 16);
for (const name of backends) {
  const { backend } = await selectBackend(name);
  for (const arch of ['crate', 'crate-complete', 'gpt2']) {
    const cfg = makeConfig('char-tiny', { arch, nLayer: 2, blockSize: 32 });
    const model = new LanguageModel(backend, cfg, { seed: 7 });
    const opt = new AdamW(model);
    const rng = new Rng(11),
      B = 4,
      T = 32,
      losses = [];
    for (let step = 1; step <= 20; step++) {
      const x = Array.from({ length: B * T }, () => rng.int(cfg.vocabSize)),
        y = Array.from({ length: B * T }, () => rng.int(cfg.vocabSize));
      model.zeroGrad();
      const { loss } = model.forward(x, B, T, y, { returnLogits: false });
      model.backward();
      clipGradNorm(model, 1.0);
      opt.step(lrAt(step, { lr: 3e-3, minLr: 3e-4, warmup: 5, total: 20 }));
      losses.push(loss);
    }
    console.log(`${name.padEnd(9)} ${arch.padEnd(14)} loss[19]=${losses[19].toFixed(6)} losses=${sha(losses)} params=${sha(model.getParams())}`);
    opt.free();
    model.free();
  }
}
