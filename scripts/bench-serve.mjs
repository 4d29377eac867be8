#!/usr/bin/env node
// Benchmark of `crate-ts serve` (a benchmark, not a test): requests/s and p50/p99 latency of
// POST /v1/completions {echo: true, max_tokens: 0, logprobs: 5} on 700-token prompts (the shape of
// a simulator call), with 1, 8 and 32 concurrent clients; and generation tokens/s (64 new tokens
// from 16-token prompts, temperature 0.8, a seed per request) with 1, 8 and 32 concurrent clients.
//
//   npx tsc -p tsconfig.json && node scripts/bench-serve.mjs [--preset 2L] [--arch gpt2] [--backend cpu]
//        [--requests N] [--prompt-tokens 700] [--clients 1,8,32] [--gen-tokens 64] [--gen-requests N]
//        [--root DIR] [--server-args "--max-batch 1"] [--server-node-args "--cpu-prof"] [--json]
//
// --root runs the server (and the model code that makes the checkpoint) of another checkout with a
// built dist/, e.g. main's, so a before/after pair is measured in the same sitting with the same
// clients; --server-args adds flags to `crate-ts serve`, --server-node-args flags to the server's
// node (e.g. "--cpu-prof --cpu-prof-dir DIR" to profile the server).
//
// The model is the paper's 2L size with the GPT-2 baseline architecture (V 50304, d 128, block
// 1024), untrained (timing does not depend on the weights). The server runs as its own process
// (node bin/crate-ts.js serve --port 0); the clients run here.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: v } = parseArgs({
  options: {
    preset: { type: 'string', default: '2L' },
    arch: { type: 'string', default: 'gpt2' },
    backend: { type: 'string', default: 'cpu' },
    requests: { type: 'string' },
    'prompt-tokens': { type: 'string', default: '700' },
    clients: { type: 'string', default: '1,8,32' },
    'gen-tokens': { type: 'string', default: '64' },
    'gen-requests': { type: 'string' },
    root: { type: 'string' },
    'server-args': { type: 'string', default: '' },
    'server-node-args': { type: 'string', default: '' },
    json: { type: 'boolean', default: false },
  },
});
const root = path.resolve(v.root ?? here);
const dist = path.join(root, 'dist');
if (!fs.existsSync(path.join(dist, 'cli', 'main.js'))) {
  console.error(`bench-serve: ${dist} is missing; run \`npx tsc -p tsconfig.json\` there first`);
  process.exit(2);
}
const promptTokens = Number(v['prompt-tokens']);
const clientCounts = v.clients.split(',').map(Number);
const genTokens = Number(v['gen-tokens']);

const { LanguageModel } = await import(path.join(dist, 'model', 'lm.js'));
const { makeConfig } = await import(path.join(dist, 'model', 'config.js'));
const { selectBackend } = await import(path.join(dist, 'backend', 'select.js'));
const { saveCheckpoint } = await import(path.join(dist, 'checkpoint', 'checkpoint.js'));
const { loadTokenizer } = await import(path.join(dist, 'data', 'tokenizer.js'));

// ---- the model and the prompts ----------------------------------------------------------------
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-bench-serve-'));
const ckpt = path.join(tmp, 'ckpt.safetensors');
{
  const { backend } = await selectBackend(v.backend);
  const model = new LanguageModel(backend, makeConfig(v.preset, { arch: v.arch }), { seed: 1 });
  saveCheckpoint(ckpt, { model, tokenizer: 'gpt2' });
  model.free();
}
const tok = await loadTokenizer('gpt2');
const corpus = tok.encode(
  gunzipSync(fs.readFileSync(path.join(here, 'data', 'moby-dick.txt.gz')))
    .toString('utf8')
    .slice(0, 400_000),
);
let next = 0;
const prompt = () => {
  const p = corpus.slice(next, next + promptTokens);
  next = (next + promptTokens) % (corpus.length - promptTokens);
  return p;
};

// ---- the server ----------------------------------------------------------------------------------
const server = spawn(
  process.execPath,
  [
    ...v['server-node-args'].split(' ').filter(Boolean),
    path.join(root, 'bin', 'crate-ts.js'),
    'serve',
    '--checkpoint',
    ckpt,
    '--port',
    '0',
    '--backend',
    v.backend,
    '--quiet',
    ...v['server-args'].split(' ').filter(Boolean),
  ],
  { stdio: ['ignore', 'pipe', 'pipe'] },
);
let serverErr = '';
server.stderr.on('data', (d) => {
  serverErr += d;
});
const base = await new Promise((resolve, reject) => {
  let out = '';
  server.stdout.on('data', (d) => {
    out += d;
    const m = /OpenAI base URL (\S+)\)/.exec(out);
    if (m) resolve(m[1]);
  });
  server.on('exit', (c) => reject(new Error(`the server exited (${c}): ${serverErr}`)));
});
const info = serverErr.trim().split('\n')[0];

async function post(body) {
  const t0 = performance.now();
  const r = await fetch(`${base}/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const j = await r.json();
  if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${JSON.stringify(j).slice(0, 300)}`);
  return { ms: performance.now() - t0, json: j };
}

/**
 * CPU seconds the server process has used (user + system, Linux /proc; null elsewhere): on a shared
 * machine wall-clock rates depend on the neighbours, the server's own CPU time per request much less.
 */
const clk = 100; // USER_HZ on Linux
function serverCpu() {
  try {
    const f = fs.readFileSync(`/proc/${server.pid}/stat`, 'utf8');
    const parts = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return (Number(parts[11]) + Number(parts[12])) / clk;
  } catch {
    return null;
  }
}
const cpuSince = (c0) => {
  const c1 = serverCpu();
  return c0 === null || c1 === null ? null : c1 - c0;
};

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};

// warm-up (allocations, page faults of the first large buffers)
await post({ model: 'crate', prompt: prompt(), max_tokens: 0, echo: true, logprobs: 5 });

const echoRows = [];
for (const c of clientCounts) {
  const total = Number(v.requests ?? Math.max(8, 2 * c));
  const lat = [];
  let sent = 0;
  const c0 = serverCpu();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: c }, async () => {
      while (sent < total) {
        sent++;
        const r = await post({ model: 'crate', prompt: prompt(), max_tokens: 0, echo: true, logprobs: 5 });
        if (r.json.choices[0].logprobs.tokens.length !== promptTokens) throw new Error('wrong number of echoed tokens');
        lat.push(r.ms);
      }
    }),
  );
  const wall = (performance.now() - t0) / 1000;
  const cpu = cpuSince(c0);
  echoRows.push({
    server_cpu_ms_per_request: cpu === null ? null : (1000 * cpu) / lat.length,
    clients: c,
    requests: lat.length,
    wall_s: wall,
    req_per_s: lat.length / wall,
    p50_ms: pct(lat, 50),
    p99_ms: pct(lat, 99),
    prompt_tokens_per_s: (lat.length * promptTokens) / wall,
  });
}

// generation: 16-token prompts, genTokens new tokens each, temperature 0.8, a seed per request
const genRows = [];
let seed = 0;
for (const c of clientCounts) {
  const total = Number(v['gen-requests'] ?? Math.max(3, 2 * c));
  const lat = [];
  let sent = 0,
    tokens = 0;
  const c0 = serverCpu();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: c }, async () => {
      while (sent < total) {
        const i = sent++;
        const r = await post({ model: 'crate', prompt: corpus.slice(1000 * i, 1000 * i + 16), max_tokens: genTokens, temperature: 0.8, seed: seed++ });
        tokens += r.json.usage.completion_tokens;
        lat.push(r.ms);
      }
    }),
  );
  const wall = (performance.now() - t0) / 1000;
  const cpu = cpuSince(c0);
  genRows.push({
    server_cpu_ms_per_token: cpu === null ? null : (1000 * cpu) / tokens,
    clients: c,
    requests: lat.length,
    tokens,
    wall_s: wall,
    tokens_per_s: tokens / wall,
    p50_ms: pct(lat, 50),
    p99_ms: pct(lat, 99),
  });
}

server.kill('SIGTERM');
await new Promise((r) => (server.exitCode !== null ? r() : server.on('exit', r)));
fs.rmSync(tmp, { recursive: true, force: true });

const result = {
  server: info,
  model: `${v.preset} ${v.arch}`,
  prompt_tokens: promptTokens,
  echo: echoRows,
  generation: { tokens_per_request: genTokens, rows: genRows },
  node: process.version,
  cpus: os.cpus().length,
  loadavg_1m: os.loadavg()[0],
};
if (v.json) console.log(JSON.stringify(result, null, 2));
else {
  console.log(result.server);
  console.log(`POST /v1/completions, echo, max_tokens 0, logprobs 5, ${promptTokens}-token prompts (${result.model}, untrained)`);
  console.log('clients  requests  req/s   p50 ms   p99 ms   prompt tok/s  server CPU ms/request');
  for (const r of echoRows)
    console.log(
      `${String(r.clients).padEnd(9)}${String(r.requests).padEnd(10)}${r.req_per_s.toFixed(2).padEnd(8)}${r.p50_ms.toFixed(0).padEnd(9)}${r.p99_ms.toFixed(0).padEnd(9)}${r.prompt_tokens_per_s.toFixed(0).padEnd(14)}${r.server_cpu_ms_per_request?.toFixed(0) ?? '-'}`,
    );
  console.log(`generation: ${genTokens} new tokens from 16-token prompts, temperature 0.8`);
  console.log('clients  requests  tokens/s  p50 ms   p99 ms   server CPU ms/token');
  for (const r of genRows)
    console.log(
      `${String(r.clients).padEnd(9)}${String(r.requests).padEnd(10)}${r.tokens_per_s.toFixed(1).padEnd(10)}${r.p50_ms.toFixed(0).padEnd(9)}${r.p99_ms.toFixed(0).padEnd(9)}${r.server_cpu_ms_per_token?.toFixed(2) ?? '-'}`,
    );
  console.log(`(${result.cpus} CPUs, 1-minute load average ${result.loadavg_1m.toFixed(1)} at the end)`);
}
