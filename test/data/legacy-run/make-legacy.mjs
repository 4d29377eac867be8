// How test/data/legacy-run was made (kept for the record, not run by the tests): crate-ts 0.1.0 at
// commit 35b9a6d checked out with `git worktree add --detach /tmp/old-crate 35b9a6d`, built with
// `npx tsc -p tsconfig.json` there, then `node make-legacy.mjs && node hash-legacy.mjs` in /tmp/legacy;
// split/ckpt.safetensors and expected.json were copied here.
import { train } from '/tmp/old-crate/dist/train/trainer.js';
import { ReferenceBackend } from '/tmp/old-crate/dist/backend/reference.js';
import * as fs from 'node:fs';
const base = { preset: 'char-tiny', nEmbd: 8, nHead: 2, nLayer: 1, seq: 16, batch: 2, gradAccum: 1, steps: 6, warmup: 2,
  lr: 1e-2, evalEvery: 2, evalWindows: 4, saveEvery: 2, sampleTokens: 0, quiet: true, cacheDir: null, seed: 5, backend: new ReferenceBackend() };
const straight = await train({ ...base, out: '/tmp/legacy/straight' });
const split = await train({ ...base, out: '/tmp/legacy/split', stopAt: 3 });
fs.writeFileSync('/tmp/legacy/expected.json', JSON.stringify({ straightLosses: straight.losses, splitLosses: split.losses, valLoss: straight.valLoss }, null, 1));
console.log(straight.losses, split.losses, straight.valLoss);
