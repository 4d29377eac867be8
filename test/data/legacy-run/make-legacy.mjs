// How test/data/legacy-run was made (kept for the record, not run by the tests): crate-ts 0.1.0 at
// commit 35b9a6d checked out in a git worktree (`git worktree add --detach <dir> 35b9a6d`) and built
// there with `npx tsc -p tsconfig.json`; then, from this folder,
//   CRATE_TS_OLD=<dir> node make-legacy.mjs && CRATE_TS_OLD=<dir> node hash-legacy.mjs
// The runs go to CRATE_TS_LEGACY_OUT (default: a new folder under the system temp dir, printed);
// split/ckpt.safetensors and expected.json were copied here.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
const old = process.env.CRATE_TS_OLD;
if (!old) {
  console.error('make-legacy: set CRATE_TS_OLD to a built checkout of crate-ts 0.1.0 (commit 35b9a6d)');
  process.exit(2);
}
const out = process.env.CRATE_TS_LEGACY_OUT ?? fs.mkdtempSync(path.join(os.tmpdir(), 'crate-legacy-'));
const { train } = await import(pathToFileURL(path.join(old, 'dist/train/trainer.js')).href);
const { ReferenceBackend } = await import(pathToFileURL(path.join(old, 'dist/backend/reference.js')).href);
const base = { preset: 'char-tiny', nEmbd: 8, nHead: 2, nLayer: 1, seq: 16, batch: 2, gradAccum: 1, steps: 6, warmup: 2,
  lr: 1e-2, evalEvery: 2, evalWindows: 4, saveEvery: 2, sampleTokens: 0, quiet: true, cacheDir: null, seed: 5, backend: new ReferenceBackend() };
const straight = await train({ ...base, out: path.join(out, 'straight') });
const split = await train({ ...base, out: path.join(out, 'split'), stopAt: 3 });
fs.writeFileSync(path.join(out, 'expected.json'), JSON.stringify({ straightLosses: straight.losses, splitLosses: split.losses, valLoss: straight.valLoss }, null, 1));
console.log(`runs in ${out} (set CRATE_TS_LEGACY_OUT=${out} for hash-legacy.mjs)`);
console.log(straight.losses, split.losses, straight.valLoss);
