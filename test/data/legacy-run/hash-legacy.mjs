// Second step of make-legacy.mjs (see there): hashes the straight run's final weights into
// expected.json. CRATE_TS_OLD: the built crate-ts 0.1.0 checkout; CRATE_TS_LEGACY_OUT: the folder
// make-legacy.mjs wrote its runs and expected.json to.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
const old = process.env.CRATE_TS_OLD, out = process.env.CRATE_TS_LEGACY_OUT;
if (!old || !out) {
  console.error('hash-legacy: set CRATE_TS_OLD (built crate-ts 0.1.0 checkout) and CRATE_TS_LEGACY_OUT (the runs of make-legacy.mjs)');
  process.exit(2);
}
const { readSafetensors, toFloat64 } = await import(pathToFileURL(path.join(old, 'dist/io/safetensors.js')).href);
const st = readSafetensors(path.join(out, 'straight/ckpt.safetensors'));
const h = createHash('sha256');
for (const name of [...st.tensors.keys()].sort()) { if (name.startsWith('optimizer.')) continue; const x = toFloat64(st.tensors.get(name), name); h.update(name).update(Buffer.from(x.buffer, x.byteOffset, x.byteLength)); }
const e = JSON.parse(fs.readFileSync(path.join(out, 'expected.json'), 'utf8')); e.straightParamsSha256 = h.digest('hex'); e.made = 'crate-ts 0.1.0 at commit 35b9a6d (git worktree), scripts in the test header';
fs.writeFileSync(path.join(out, 'expected.json'), JSON.stringify(e, null, 1)); console.log(e);
