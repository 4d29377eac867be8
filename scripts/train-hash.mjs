#!/usr/bin/env node
// Determinism witness for refactors: trains 20 steps with a fixed seed on the reference and cpu
// backends for every architecture and prints a sha256 of the per-step losses and of the final
// parameters. Two commits that should compute the same thing must print the same lines.
//   node scripts/train-hash.mjs [--backends reference,cpu]
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadCheckpoint } from '../dist/index.js';
const { train } = await import('../dist/train/trainer.js').catch(() => import('../dist/index.js'));

const arg = process.argv.indexOf('--backends');
const backends = arg > 0 ? process.argv[arg + 1].split(',') : ['reference', 'cpu'];
const sha = (buf) => createHash('sha256').update(buf).digest('hex').slice(0, 16);
for (const backend of backends) {
  for (const arch of ['crate', 'crate-complete', 'gpt2']) {
    const out = mkdtempSync(path.join(os.tmpdir(), 'crate-hash-'));
    try {
      const r = await train({
        backend,
        arch,
        preset: 'char-tiny',
        nLayer: 2,
        steps: 20,
        batch: 4,
        seq: 32,
        seed: 7,
        evalEvery: 0,
        saveEvery: 0,
        evalWindows: 2,
        sampleTokens: 0,
        quiet: true,
        out,
        cacheDir: null,
      });
      const losses = sha(Buffer.from(new Float64Array(r.losses).buffer));
      const ck = loadCheckpoint(r.checkpoint);
      const h = createHash('sha256');
      for (const name of [...ck.file.tensors.keys()].sort()) {
        if (/optim|adam|exp_avg/i.test(name)) continue;
        const t = ck.file.tensors.get(name);
        h.update(name).update(Buffer.from(Float64Array.from(t.data, Number).buffer));
      }
      console.log(`${backend.padEnd(9)} ${arch.padEnd(14)} loss[19]=${r.losses[19].toFixed(6)} losses=${losses} params=${h.digest('hex').slice(0, 16)}`);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }
}
