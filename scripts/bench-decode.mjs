#!/usr/bin/env node
// Benchmark of incremental decoding (a benchmark, not a test): 200 new tokens from a one-token
// prompt of the paper's 1L model (V 50304, d 128, block 1024, untrained: timing does not depend on
// the weights), the way `crate-ts sample` decodes (temperature 0.8, top-k 40), per backend.
// Prints the median of --repeats runs, tokens/s, the time per token, and where a decoding step
// spends its time (head = the (1, d) x (d, V) logits product; download = the logits to the host).
//
//   npx tsc -p tsconfig.json && node scripts/bench-decode.mjs [--preset 1L] [--arch crate]
//        [--backends cpu,reference] [--tokens 200] [--repeats 5] [--threads N] [--json]
//
// The baseline before decoding ran on the backend: `crate-ts sample` took 12.9 s for 200 tokens of
// this model with the old host float64 decoder (README, "Incremental decoding").
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
if (!fs.existsSync(path.join(dist, 'index.js'))) {
  console.error('bench-decode: dist/ is missing; run `npx tsc -p tsconfig.json` first');
  process.exit(2);
}
/** One line on stderr and exit 2: a benchmark script has no stack traces to show for bad input. */
const fail = (msg) => {
  console.error(`bench-decode: ${String(msg).split('\n')[0]}`);
  process.exit(2);
};
process.on('uncaughtException', (e) => fail(e instanceof Error ? e.message : e));
let v;
try {
  ({ values: v } = parseArgs({
    options: {
      preset: { type: 'string', default: '1L' },
      arch: { type: 'string', default: 'crate' },
      backends: { type: 'string', default: 'cpu,reference' },
      tokens: { type: 'string', default: '200' },
      repeats: { type: 'string', default: '5' },
      threads: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  }));
} catch (e) {
  fail(e.message);
}
const tokens = Number(v.tokens),
  repeats = Number(v.repeats);
for (const [flag, n] of [
  ['--tokens', tokens],
  ['--repeats', repeats],
]) {
  if (!Number.isSafeInteger(n) || n < 1) {
    console.error(`bench-decode: ${flag} must be an integer >= 1, got '${flag === '--tokens' ? v.tokens : v.repeats}'`);
    process.exit(2);
  }
}
if (v.threads !== undefined && !(Number.isSafeInteger(Number(v.threads)) && Number(v.threads) >= 1)) {
  console.error(`bench-decode: --threads must be an integer >= 1, got '${v.threads}'`);
  process.exit(2);
}
const { LanguageModel, makeConfig, selectBackend, generate } = await import(path.join(dist, 'index.js'));

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const cfg = makeConfig(v.preset, { arch: v.arch });
const rows = [];
let params;
for (const name of v.backends.split(',')) {
  const opts = v.threads ? { threads: Number(v.threads) } : {};
  const { backend } = await selectBackend(name, opts);
  const model = params ? new LanguageModel(backend, cfg, { params }) : new LanguageModel(backend, cfg, { seed: 1 });
  params ??= model.getParams();
  generate(model, [0], { tokens: 8, seed: 1 }); // warm-up (allocations, page faults)
  const times = [];
  let out;
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    out = generate(model, [0], { tokens, temperature: 0.8, topK: 40, seed: 1 });
    times.push((performance.now() - t0) / 1000);
  }
  const s = median(times);
  rows.push({ backend: name, tokens, seconds: s, runs: times, tokensPerSecond: tokens / s, msPerToken: (1000 * s) / tokens, firstIds: out.slice(0, 8) });
  model.free();
}

const cpuModel = (() => {
  try {
    return execSync("grep -m1 'model name' /proc/cpuinfo", { encoding: 'utf8' }).split(':')[1].trim();
  } catch {
    return os.cpus()[0]?.model ?? '?';
  }
})();
const meta = {
  preset: v.preset,
  arch: v.arch,
  vocab: cfg.vocabSize,
  d: cfg.nEmbd,
  layers: cfg.nLayer,
  repeats,
  cpu: cpuModel,
  cores: os.cpus().length,
  load1: os.loadavg()[0],
  date: new Date().toISOString(),
};
if (v.json) {
  console.log(JSON.stringify({ meta, rows }, null, 2));
} else {
  console.log(
    `# ${v.preset} ${v.arch} (V ${cfg.vocabSize}, d ${cfg.nEmbd}, L ${cfg.nLayer}), ${tokens} tokens from a 1-token prompt, median of ${repeats}; ${meta.cpu}, ${meta.cores} cores, load ${meta.load1.toFixed(2)}`,
  );
  console.log('backend     seconds  tokens/s  ms/token  vs 12.9 s (old host decoder)  runs');
  for (const r of rows) {
    console.log(
      `${r.backend.padEnd(10)}  ${r.seconds.toFixed(3).padStart(7)}  ${r.tokensPerSecond.toFixed(1).padStart(8)}  ${r.msPerToken.toFixed(2).padStart(8)}  ${(12.9 / r.seconds).toFixed(1).padStart(6)}x                       ${r.runs.map((t) => t.toFixed(3)).join(' ')}`,
    );
  }
}
