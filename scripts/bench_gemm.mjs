#!/usr/bin/env node
// SGEMM micro-benchmark of the native CPU addon: M = N = K (default 1024) in the three layouts the
// linear layer uses, median of several timed runs after warm-up, next to this machine's measured
// FMA peak for the same thread count (the machines are shared: compare ratios from one run).
//
//   node scripts/bench_gemm.mjs [--size 1024] [--runs 15] [--threads 2] [--kernel auto|avx512|avx2|scalar]
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const file = process.env.CRATE_TS_NATIVE_ADDON || path.join(root, 'build', 'Release', 'crate_native.node');
if (!existsSync(file)) {
  console.error(`bench_gemm: ${file} is not built (npm run build:native)`);
  process.exit(1);
}
const n = createRequire(import.meta.url)(file);

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
};
const S = Number(arg('size', 1024)),
  runs = Number(arg('runs', 15)),
  warmup = 3;
if (arg('threads', null) !== null) n.set_threads(Number(arg('threads')));
if (arg('kernel', null) !== null && !n.set_gemm_kernel(arg('kernel'))) {
  console.error(`bench_gemm: kernel '${arg('kernel')}' is not supported on this CPU`);
  process.exit(1);
}

const mk = (len) => {
  const b = { handle: n.alloc(len), offset: 0, length: len };
  const a = new Float32Array(len);
  for (let i = 0; i < len; i++) a[i] = Math.random() - 0.5;
  n.upload(b, a);
  return b;
};
const A = mk(S * S),
  B = mk(S * S),
  C = mk(S * S);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const layouts = [
  ['NT  out = inp W^T   (linear forward)', false, true, false],
  ['NN  dinp = dout W   (linear backward)', false, false, false],
  ['TN  dW += dout^T inp (linear backward)', true, false, true],
];
const peak = n.fma_peak_gflops(0.3);
console.log(`sgemm ${S}x${S}x${S}, kernel ${n.gemm_kernel()}, ${n.threads()} threads, median of ${runs} runs (after ${warmup} warm-up)`);
console.log(`measured FMA peak (same threads, same vector width): ${peak.toFixed(1)} GFLOP/s`);
const rows = [];
for (const [name, ta, tb, acc] of layouts) {
  const times = [];
  for (let r = 0; r < warmup + runs; r++) {
    const t0 = process.hrtime.bigint();
    n.sgemm(ta, tb, S, S, S, 1, A, B, acc, C);
    const dt = Number(process.hrtime.bigint() - t0) / 1e9;
    if (r >= warmup) times.push(dt);
  }
  const t = median(times);
  const gflops = (2 * S * S * S) / t / 1e9;
  rows.push({ layout: name, ms: t * 1e3, gflops });
  console.log(
    `  ${name.padEnd(40)} ${(t * 1e3).toFixed(2).padStart(8)} ms  ${gflops.toFixed(1).padStart(7)} GFLOP/s  (${((100 * gflops) / peak).toFixed(0)}% of measured peak)`,
  );
}
const peakAfter = n.fma_peak_gflops(0.3);
console.log(`measured FMA peak again after the runs: ${peakAfter.toFixed(1)} GFLOP/s (a large change means the machine was busy)`);
for (const b of [A, B, C]) n.free(b.handle);
if (process.argv.includes('--json')) console.log(JSON.stringify({ size: S, kernel: n.gemm_kernel(), threads: n.threads(), peak, peakAfter, rows }));
