// End-to-end checks of each native backend: the committed PyTorch fixtures, ten AdamW steps
// against the float64 reference, and bitwise determinism for a fixed seed and thread count.
import { describe, test, expect } from 'vitest';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadFixture, auditFixture } from '../src/audit/fixture.js';
import { FIXTURE_TOLERANCE } from '../src/audit/tolerances.js';
import type { Backend } from '../src/backend/types.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import { LanguageModel } from '../src/model/lm.js';
import { makeConfig, type Arch } from '../src/model/config.js';
import { AdamW, clipGradNorm } from '../src/train/optimizer.js';
import { Rng } from '../src/util/rng.js';
import { nativeBackends } from './helpers/backends.js';
import { ARCHS_UNDER_TEST } from './helpers/archs.js';

const natives = await nativeBackends();
const FIXTURES = readdirSync('fixtures')
  .filter((f) => f.endsWith('.safetensors'))
  .map((f) => join('fixtures', f));

/** Training steps (forward, backward, clip at 1.0, AdamW) on one fixed random batch; the losses. */
function trainLosses<Buf>(be: Backend<Buf>, arch: Arch, steps = 10): number[] {
  const cfg = makeConfig(undefined, { arch, vocabSize: 61, blockSize: 16, nLayer: 2, nHead: 2, nEmbd: 20 });
  // the reference starts from the same float32-rounded parameters as the native backend
  const init = new LanguageModel(new ReferenceBackend(), cfg, { seed: 5 }).getParams().map(Math.fround);
  const model = new LanguageModel(be, cfg, { params: init });
  const opt = new AdamW(model);
  const rng = new Rng(8),
    B = 3,
    T = 13,
    losses: number[] = [];
  try {
    // one fixed batch, so the loss must fall as the model memorizes it
    const idx = Int32Array.from({ length: B * T }, () => rng.int(61));
    const tg = Int32Array.from({ length: B * T }, () => rng.int(61));
    for (let s = 0; s < steps; s++) {
      model.zeroGrad();
      losses.push(model.forward(idx, B, T, tg, { returnLogits: false }).loss as number);
      model.backward();
      clipGradNorm(model as LanguageModel<unknown>, 1.0);
      opt.step(3e-3);
    }
    return losses;
  } finally {
    opt.free();
    model.free();
  }
}

for (const n of natives) {
  const suite = n.backend ? describe : describe.skip;
  suite(`${n.name}: end to end${n.skip ? ` (skipped: ${n.skip})` : ''}`, () => {
    const be = n.backend as Backend<unknown>;
    for (const f of FIXTURES) {
      test(`${n.name}: audit of ${f} passes (float32 tolerance)`, () => {
        const res = auditFixture(loadFixture(f), be, FIXTURE_TOLERANCE[n.name]);
        expect(res.rows.filter((r) => !r.pass).map((r) => `${r.name}: rel ${r.maxRelErr}`)).toEqual([]);
      });
    }

    for (const arch of ARCHS_UNDER_TEST) {
      test(`${n.name}: ${arch}, 10 AdamW steps give the reference's losses to 1e-4 relative`, () => {
        const got = trainLosses(be, arch),
          want = trainLosses(new ReferenceBackend(), arch);
        for (let i = 0; i < want.length; i++)
          expect(Math.abs(got[i] - want[i]) / Math.abs(want[i]), `step ${i + 1}: ${got[i]} vs ${want[i]}`).toBeLessThan(1e-4);
        expect(want[9]).toBeLessThan(want[0] - 0.1); // it is actually training
      });
    }

    test(`${n.name}: two runs with the same seed give bitwise identical losses`, () => {
      const a = trainLosses(be, 'crate', 6),
        b = trainLosses(be, 'crate', 6);
      expect(b).toEqual(a);
    });

    test(`${n.name}: a model's buffers are all released by free()`, () => {
      const before = be.liveBuffers();
      trainLosses(be, 'crate', 1);
      expect(be.liveBuffers()).toBe(before);
    });
  });
}
