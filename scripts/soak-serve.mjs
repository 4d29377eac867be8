#!/usr/bin/env node
// Soak of `crate-ts serve` under hostile clients (a soak, not a test): a server on the
// loopback answers normal clients, first alone (the idle baseline), then while attackers replay
// the attacks that once froze or killed it:
//
//   long-word   "a" × 400,000 as a prompt (quadratic BPE before the fix)
//   huge-echo   64 prompts × 4000 ids, echo, logprobs 20 (a 500 MB reply before the fix)
//   flood       bursts of 60 requests of ~1 MiB each from 8 client addresses (the queue held them all)
//   slow-read   10 streaming clients that never read (each held its output in memory)
//   conn-flood  2000 idle connections from one address
//   gone        streaming clients that leave after the first event
//   browser     text/plain POST, a foreign Host, Origin: null (a web page's requests)
//
// It reports the p50/p99 latency of the normal requests, idle and under attack, the server's peak
// RSS (VmHWM) and largest sampled RSS, what each attack got back, and whether the server process
// stayed alive (exit code 1 if it died or stopped answering /health).
//
//   npx tsc -p tsconfig.json && node scripts/soak-serve.mjs [--seconds 300] [--idle-seconds S]
//        [--clients 2] [--heap-mb 1024] [--backend cpu] [--threads 1] [--attacks a,b,...] [--json]
//        [--serve-args '--parse-threads 0 ...']   (more flags for `crate-ts serve`, to compare settings)
//
// The server gets one worker thread by default (--threads): on a machine shared with other work a
// thread pool larger than the free cores makes latencies depend on the neighbours, not the server.
//
// The attackers run in a worker thread of their own (scripts/soak-serve-attacks.mjs), so the normal
// clients' latencies are the server's and not the wait on a client event loop shared with them.
//
// Loopback only: the server binds 127.0.0.1, and the attackers connect from 127.0.0.0/8.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { ATTACKS, client, sleep } from './soak-serve-attacks.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
const fail = (msg) => {
  console.error(`soak-serve: ${msg}`);
  process.exit(2);
};
if (!fs.existsSync(path.join(dist, 'cli', 'main.js'))) fail('dist/ is missing; run `npx tsc -p tsconfig.json` first');
let v;
try {
  ({ values: v } = parseArgs({
    options: {
      seconds: { type: 'string', default: '300' },
      'idle-seconds': { type: 'string' },
      clients: { type: 'string', default: '2' },
      'heap-mb': { type: 'string', default: '1024' },
      backend: { type: 'string', default: 'cpu' },
      threads: { type: 'string', default: '1' },
      attacks: { type: 'string' },
      'serve-args': { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  }));
} catch (e) {
  fail(e.message);
}
const seconds = Number(v.seconds);
if (!(seconds >= 10 && seconds <= 3600)) fail(`--seconds must be in [10, 3600], got ${v.seconds}`);
const idleSeconds = v['idle-seconds'] === undefined ? Math.max(5, Math.round(seconds * 0.2)) : Number(v['idle-seconds']);
if (!(idleSeconds >= 2 && idleSeconds < seconds)) fail(`--idle-seconds must be in [2, --seconds), got ${v['idle-seconds']}`);
const clients = Number(v.clients);
if (!Number.isInteger(clients) || clients < 1 || clients > 16) fail(`--clients must be an integer in [1, 16], got ${v.clients}`);
const heapMb = Number(v['heap-mb']);
if (!Number.isInteger(heapMb) || heapMb < 64) fail(`--heap-mb must be an integer >= 64, got ${v['heap-mb']}`);

const { LanguageModel } = await import(path.join(dist, 'model', 'lm.js'));
const { makeConfig } = await import(path.join(dist, 'model', 'config.js'));
const { selectBackend } = await import(path.join(dist, 'backend', 'select.js'));
const { saveCheckpoint } = await import(path.join(dist, 'checkpoint', 'checkpoint.js'));
const { loadTokenizer } = await import(path.join(dist, 'data', 'tokenizer.js'));

// ---- the model, the server --------------------------------------------------------------------
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-soak-serve-'));
const ckpt = path.join(tmp, 'ckpt.safetensors');
{
  const { backend } = await selectBackend(v.backend);
  const model = new LanguageModel(backend, makeConfig(undefined, { vocabSize: 50304, blockSize: 256, nLayer: 2, nHead: 2, nEmbd: 64 }), { seed: 1 });
  saveCheckpoint(ckpt, { model, tokenizer: 'gpt2' });
  model.free();
}
const tok = await loadTokenizer('gpt2');
const corpus = tok.encode(
  gunzipSync(fs.readFileSync(path.join(root, 'data', 'moby-dick.txt.gz')))
    .toString('utf8')
    .slice(0, 100_000),
);

const server = spawn(
  process.execPath,
  [
    `--max-old-space-size=${heapMb}`,
    ...(process.env.SOAK_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean),
    path.join(root, 'bin', 'crate-ts.js'),
    'serve',
    '--checkpoint',
    ckpt,
    '--port',
    '0',
    '--backend',
    v.backend,
    '--threads',
    v.threads,
    '--quiet',
    ...(v['serve-args'] ?? '').split(' ').filter(Boolean),
  ],
  { stdio: ['ignore', 'pipe', 'pipe'] },
);
let serverErr = '',
  died = null;
server.stderr.on('data', (d) => (serverErr += d));
server.on('exit', (code, sig) => (died = { code, sig }));
const port = await new Promise((resolve, reject) => {
  let out = '';
  server.stdout.on('data', (d) => {
    out += d;
    const m = /listening on http:\/\/127\.0\.0\.1:(\d+) /.exec(out);
    if (m) resolve(Number(m[1]));
  });
  server.on('exit', (c) => reject(new Error(`the server exited (${c}): ${serverErr}`)));
});
const base = `http://127.0.0.1:${port}`;

// ---- clients ------------------------------------------------------------------------------------
const { request, post } = client(base);

let phase = 'idle';
const lat = { idle: [], attack: [] };
const normalErrors = { idle: 0, attack: 0 };
let next = 0;
async function normalClient(stop) {
  let i = 0;
  while (!stop()) {
    const p = corpus.slice(next, next + 64);
    next = (next + 64) % (corpus.length - 64);
    const body =
      i++ % 2 === 0
        ? { model: 'crate', prompt: p, max_tokens: 0, echo: true, logprobs: 5 }
        : { model: 'crate', prompt: p.slice(0, 16), max_tokens: 16, temperature: 0 };
    const ph = phase;
    const t0 = performance.now();
    const r = await post('/v1/completions', body);
    if (r.status === 200) lat[ph].push(performance.now() - t0);
    else normalErrors[ph]++;
  }
}

// ---- the run ------------------------------------------------------------------------------------
const rss = [];
let healthFailures = 0;
const status = () => {
  try {
    return fs.readFileSync(`/proc/${server.pid}/status`, 'utf8');
  } catch {
    return '';
  }
};
const kb = (s, key) => Number((new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(s) ?? [])[1] ?? NaN);
const sampler = setInterval(() => {
  const s = status();
  if (s) rss.push(kb(s, 'VmRSS'));
}, 500);
const healthLat = [];
let healthStop = false;
const health = (async () => {
  while (!healthStop && !died) {
    const t0 = performance.now();
    const r = await request('/health', { timeoutMs: 30_000 });
    if (r.status === 200) healthLat.push(performance.now() - t0);
    else healthFailures++;
    await sleep(1000);
  }
})();

const t0 = performance.now();
const end = t0 + seconds * 1000;
const attackStart = t0 + idleSeconds * 1000;
const stopAll = () => performance.now() >= end || died !== null;
const normals = Array.from({ length: clients }, () => normalClient(stopAll));
while (performance.now() < attackStart && !died) await sleep(100);
const chosen = v.attacks === undefined ? ATTACKS : v.attacks.split(',');
for (const a of chosen) if (!ATTACKS.includes(a)) fail(`unknown attack '${a}'; the attacks are ${ATTACKS.join(', ')}`);
phase = 'attack';
// the attackers run in a worker thread (scripts/soak-serve-attacks.mjs): their event loop is not the normal clients'
const attacker = new Worker(new URL('./soak-serve-attacks.mjs', import.meta.url), {
  workerData: { soakAttacks: true, port, corpus: corpus.slice(0, 16_000), chosen, endWall: Date.now() + (end - performance.now()) },
});
const watchDeath = setInterval(() => died && attacker.postMessage('stop'), 200);
const tally = await new Promise((resolve, reject) => {
  attacker.once('message', (m) => resolve(m.tally));
  attacker.once('error', reject);
});
clearInterval(watchDeath);
await Promise.all(normals);
healthStop = true;
await health;
clearInterval(sampler);
const exitedDuringRun = died;
const final = died ? { status: -1 } : await request('/health', { timeoutMs: 30_000 });
const st = status();
const peakKb = kb(st, 'VmHWM');
if (!died) {
  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));
}
fs.rmSync(tmp, { recursive: true, force: true });

const pct = (xs, p) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};
const report = {
  seconds,
  serve_args: v['serve-args'] ?? '',
  idle_seconds: idleSeconds,
  normal_clients: clients,
  heap_mb: heapMb,
  load_average: os.loadavg().map((x) => Number(x.toFixed(2))),
  cpus: os.cpus().length,
  idle: { requests: lat.idle.length, errors: normalErrors.idle, p50_ms: pct(lat.idle, 50), p99_ms: pct(lat.idle, 99) },
  attack: { requests: lat.attack.length, errors: normalErrors.attack, p50_ms: pct(lat.attack, 50), p99_ms: pct(lat.attack, 99) },
  p99_ratio: pct(lat.attack, 99) / pct(lat.idle, 99),
  health: { answered: healthLat.length, failed: healthFailures, max_ms: Math.max(...healthLat) },
  peak_rss_mib: peakKb / 1024,
  max_sampled_rss_mib: Math.max(...rss) / 1024,
  attacks: tally,
  server_alive: exitedDuringRun === null && final.status === 200,
  server_exit: exitedDuringRun,
  final_health_status: final.status,
};
if (v.json) console.log(JSON.stringify(report, null, 2));
else {
  const f = (x) => (Number.isFinite(x) ? x.toFixed(1) : String(x));
  console.log(
    `soak-serve: ${seconds} s (${idleSeconds} s idle, then attacks), ${clients} normal clients, heap limit ${heapMb} MiB, --threads ${v.threads}, ${report.cpus} CPUs, load average ${report.load_average.join(' ')}`,
  );
  console.log(`| phase  | normal requests | errors | p50 ms | p99 ms |`);
  console.log(`|--------|-----------------|--------|--------|--------|`);
  for (const ph of ['idle', 'attack'])
    console.log(`| ${ph.padEnd(6)} | ${report[ph].requests} | ${report[ph].errors} | ${f(report[ph].p50_ms)} | ${f(report[ph].p99_ms)} |`);
  console.log(`p99 under attack / idle: ${f(report.p99_ratio)}x`);
  console.log(`/health: ${report.health.answered} answered, ${report.health.failed} failed, slowest ${f(report.health.max_ms)} ms`);
  console.log(`server RSS: peak ${f(report.peak_rss_mib)} MiB (VmHWM), largest sample ${f(report.max_sampled_rss_mib)} MiB`);
  for (const [k, t] of Object.entries(tally))
    console.log(
      `  ${k}: ${Object.entries(t)
        .map(([s, n]) => `${s} × ${n}`)
        .join(', ')}`,
    );
  console.log(
    report.server_alive
      ? 'the server process stayed alive all along and answers /health at the end'
      : exitedDuringRun
        ? `THE SERVER PROCESS EXITED during the run: ${JSON.stringify(exitedDuringRun)} ${serverErr.slice(-500)}`
        : `the server process is alive but /health at the end got ${final.status}`,
  );
}
process.exit(report.server_alive ? 0 : 1);
