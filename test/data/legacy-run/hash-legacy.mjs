// How test/data/legacy-run was made (kept for the record, not run by the tests): crate-ts 0.1.0 at
// commit 35b9a6d checked out with `git worktree add --detach /tmp/old-crate 35b9a6d`, built with
// `npx tsc -p tsconfig.json` there, then `node make-legacy.mjs && node hash-legacy.mjs` in /tmp/legacy;
// split/ckpt.safetensors and expected.json were copied here.
import { readSafetensors, toFloat64 } from '/tmp/old-crate/dist/io/safetensors.js';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
const st = readSafetensors('/tmp/legacy/straight/ckpt.safetensors');
const h = createHash('sha256');
for (const name of [...st.tensors.keys()].sort()) { if (name.startsWith('optimizer.')) continue; const x = toFloat64(st.tensors.get(name), name); h.update(name).update(Buffer.from(x.buffer, x.byteOffset, x.byteLength)); }
const e = JSON.parse(fs.readFileSync('expected.json','utf8')); e.straightParamsSha256 = h.digest('hex'); e.made = 'crate-ts 0.1.0 at commit 35b9a6d (git worktree), scripts in the test header';
fs.writeFileSync('expected.json', JSON.stringify(e, null, 1)); console.log(e);
