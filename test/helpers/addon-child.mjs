// Runs hostile calls against the native addon in a child process, so that a crash (a use after free,
// an out-of-bounds write, a sanitizer abort) fails the calling test instead of killing the test runner.
// test/native-hardening.test.ts spawns it; it prints one JSON line with what happened.
//
//   node test/helpers/addon-child.mjs probe          argument getters that free or detach what an
//                                                   earlier argument named, proxies, reentrant calls
//   node test/helpers/addon-child.mjs hang           size arguments that used to loop for ~forever
//   node test/helpers/addon-child.mjs fuzz SEED N    N random calls; the operator table arrives on stdin
//
// The addon is build/Release/crate_native.node, or CRATE_TS_NATIVE_ADDON (npm run test:asan).
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const file = process.env.CRATE_TS_NATIVE_ADDON || path.join(root, 'build', 'Release', 'crate_native.node');
const n = createRequire(import.meta.url)(file);
const mode = process.argv[2];

const buf = (len) => ({ handle: n.alloc(len), offset: 0, length: len });
const filled = (len, value) => { const b = buf(len); n.upload(b, new Float64Array(len).fill(value)); return b; };
const errOf = (f) => { try { f(); return null; } catch (e) { return e instanceof Error ? `${e.constructor.name}: ${e.message}` : `non-Error: ${String(e)}`; } };

if (mode === 'probe') {
  const out = {};
  // 1. A later argument's getter frees an earlier input: the kernel must never read the freed memory.
  {
    const a = filled(64, 1), b = filled(64, 2), o = buf(64);
    const late = { get handle() { n.free(a.handle); n.upload(o, new Float64Array(64).fill(5)); return b.handle; }, offset: 0, length: 64 };
    out.freeEarlierInput = errOf(() => n.add(o, a, late));
    out.outputUntouched = Array.from(n.download(o)).every((x) => x === 5);
    n.free(b.handle); n.free(o.handle);
  }
  // 2. ... frees the output written by the kernel (and allocates over the freed memory).
  {
    const o = buf(4096), x = filled(4096, 3);
    let refill = null;
    const late = { handle: x.handle, offset: 0, get length() { n.free(o.handle); refill = filled(4096, 9); return 4096; } };
    out.freeEarlierOutput = errOf(() => n.relu_forward(o, late));
    out.reallocatedUntouched = Array.from(n.download(refill)).every((v) => v === 9);
    n.free(x.handle); n.free(refill.handle);
  }
  // 3. The offset getter of the last argument frees the first (linear_forward: out, inp, weight, bias).
  {
    const N = 8, C = 16, OC = 12;
    const o = buf(N * OC), inp = filled(N * C, 1), w = filled(OC * C, 1);
    const bias = { handle: filled(OC, 0).handle, get offset() { n.free(inp.handle); return 0; }, length: OC };
    out.freeViaOffset = errOf(() => n.linear_forward(o, inp, w, bias, N, C, OC));
    n.free(o.handle); n.free(w.handle); n.free(bias.handle);
  }
  // 4. A getter detaches the token ids after they were passed.
  {
    const B = 2, T = 3, C = 4, V = 5;
    const o = buf(B * T * C), wte = filled(V * C, 1);
    const idx = Int32Array.of(0, 1, 2, 3, 4, 0);
    const wpe = { handle: filled(T * C, 1).handle, offset: 0, get length() { structuredClone(idx.buffer, { transfer: [idx.buffer] }); return T * C; } };
    out.detachIds = errOf(() => n.embedding_forward(o, idx, wte, wpe, B, T, C));
    n.free(o.handle); n.free(wte.handle); n.free(wpe.handle);
  }
  // 5. A proxy as a buffer, whose traps free other arguments and call the addon again (reentrancy).
  {
    const a = filled(8, 1), o = buf(8);
    const p = new Proxy({}, { get(_t, key) { if (key === 'handle') { n.free(a.handle); return n.alloc(8); } return key === 'length' ? 8 : 0; } });
    out.proxyReentrant = errOf(() => n.add(o, a, p));
    n.free(o.handle);
  }
  // 6. A getter that throws: its own error comes back, nothing is touched.
  {
    const o = buf(4);
    out.throwingGetter = errOf(() => n.fill({ handle: o.handle, offset: 0, get length() { throw new Error('from the getter'); } }, 1));
    n.free(o.handle);
  }
  out.live = n.live_buffers();
  console.log(JSON.stringify(out));
} else if (mode === 'hang') {
  const t0 = Date.now(), A = filled(12, 0.1), empty = buf(0);
  const out = {
    istaForward: errOf(() => n.ista_forward(empty, empty, empty, A, 0, 3, 4, 0.1, 0.1, 2 ** 40)),
    istaBackward: errOf(() => n.ista_backward(empty, buf(12), empty, empty, A, empty, 0, 3, 4, 0.1, 0.1, 2 ** 40)),
    sgemmEmptyHugeK: errOf(() => n.sgemm(false, false, 0, 0, 2 ** 41, 1, empty, empty, false, empty)),
    savedSize: errOf(() => n.attention_saved_size(2 ** 21, 2 ** 21, 2 ** 21)),
  };
  out.ms = Date.now() - t0;
  console.log(JSON.stringify(out));
} else if (mode === 'fuzz') {
  const ops = JSON.parse(readFileSync(0, 'utf8'));
  const seed = Number(process.argv[3]), calls = Number(process.argv[4]);
  console.log(JSON.stringify(fuzz(ops, seed, calls)));
} else {
  console.error(`addon-child: unknown mode '${mode}'`);
  process.exit(64);
}

/**
 * `calls` calls of the table's functions, mostly well-formed (sizes drawn, buffers of exactly the
 * element count the row asks for, ids in range) so that kernels really run, each mutated with some
 * probability: a wrong length, a freed or forged handle, a view past its allocation, junk values, an
 * overlap, and getters that free an earlier argument or detach the ids. Every call must return or
 * throw an Error naming the function; a sentinel buffer no call ever sees must keep its contents.
 */
function fuzz(ops, seed, calls) {
  let s = seed >>> 0;
  const rnd = () => { s = (s + 0x6d2b79f5) >>> 0; let t = s; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
  const int = (k) => Math.floor(rnd() * k);
  const pick = (a) => a[int(a.length)];
  const sentinel = filled(257, 3);
  const before = n.live_buffers();
  const stats = { calls: 0, returned: 0, threw: 0, probes: 0, probesCaught: 0, perOp: {}, bad: [] };
  for (let i = 0; i < calls; i++) {
    if (rnd() < 0.05) {
      // alloc and free with junk: never a crash, and a handle never names someone else's buffer
      const fn = pick(['alloc', 'free']);
      const arg = pick([-1, 0.5, NaN, Infinity, 2 ** 41, 1e300, null, 'x', {}, sentinel.handle + 1e6, int(64)]);
      stats.calls++;
      try {
        const h = n[fn](arg);
        stats.returned++;
        if (fn === 'alloc') n.free(h);
      } catch (e) {
        stats.threw++;
        if (!(e instanceof Error) || !e.message.startsWith(`${fn}: `)) stats.bad.push(`${fn}: ${e}`);
      }
      continue;
    }
    const op = pick(ops);
    const v = { __n: int(40) };
    for (const a of op.args) if (a.kind === 'int') v[a.name] = Math.min(a.max, a.min + int(a.name === 'steps' ? 3 : 6));
    for (const c of op.checks ?? []) {
      let m;
      if ((m = /^heads\((\w+), (\w+)\)$/.exec(c))) v[m[1]] = v[m[2]] * (1 + int(5));
      else if ((m = /^(\w+) < (\w+)$/.exec(c))) v[m[1]] = int(Math.max(1, v[m[2]]));
    }
    const size = (expr) => expr.split('*').reduce((p, f) => {
      const x = /^size\(/.test(f) ? v.__n : /^\d+$/.test(f) ? Number(f) : (v[f] ??= 1 + int(5));
      return p * x;
    }, 1);
    const owned = [];
    const mk = (len) => { const b = buf(len); owned.push(b.handle); if (len > 0) n.upload(b, Float64Array.from({ length: len }, () => rnd() * 4 - 2)); return b; };
    const args = op.args.filter((a) => a.kind !== 'derived').map((a) => {
      switch (a.kind) {
        case 'int': return v[a.name];
        case 'f32': case 'f64': return a.rule === 'unitInterval' ? rnd() * 0.99 : rnd();
        case 'ids': { const hi = v[a.hi] ??= 1 + int(5); return Int32Array.from({ length: size(a.count) }, () => a.lo + int(hi - a.lo)); }
        default: return mk(size(a.shape));
      }
    });
    // mutations
    let probe = null;
    const r = rnd();
    const bufIdx = args.map((x, k) => (x && typeof x === 'object' && 'handle' in x ? k : -1)).filter((k) => k >= 0);
    if (r < 0.15 && bufIdx.length >= 2) {
      // the getter probe: a later buffer's getter frees an earlier buffer argument
      const late = bufIdx[bufIdx.length - 1], early = bufIdx[int(bufIdx.length - 1)];
      const target = args[early], b = args[late], key = pick(['handle', 'offset', 'length']);
      const o = { handle: b.handle, offset: b.offset, length: b.length };
      Object.defineProperty(o, key, { get() { try { n.free(target.handle); } catch { /* already freed */ } return b[key]; } });
      args[late] = o;
      probe = 'free';
    } else if (r < 0.2) {
      const k = args.findIndex((x) => x instanceof Int32Array);
      if (k >= 0 && bufIdx.length > 0) {
        const ids = args[k], late = bufIdx[bufIdx.length - 1], b = args[late];
        args[late] = { handle: b.handle, offset: b.offset, get length() { structuredClone(ids.buffer, { transfer: [ids.buffer] }); return b.length; } };
        probe = ids.length > 0 ? 'detach' : null;
      }
    } else if (r < 0.55 && args.length > 0) {
      const k = int(args.length), x = args[k];
      args[k] = pick([
        () => (x && typeof x === 'object' && 'handle' in x ? { ...x, length: x.length + 1 } : x),
        () => (x && typeof x === 'object' && 'handle' in x ? { ...x, offset: x.offset + 1 } : x),
        () => (typeof x === 'number' ? x + 1 : x),
        () => (typeof x === 'number' ? -1 - x : x),
        () => pick([NaN, Infinity, -0.5, 2 ** 53, 2 ** 41, 1e300]),
        () => pick([null, undefined, 'x', {}, [1], true]),
        () => ({ handle: pick([0, -1, 1e300, NaN, sentinel.handle + 1e6]), offset: 0, length: 1 }),
        () => (bufIdx.length ? args[pick(bufIdx)] : x), // an overlap with another argument
        () => new Float32Array(3),
      ])();
    }
    stats.calls++;
    const per = (stats.perOp[op.name] ??= { returned: 0, threw: 0 });
    try {
      n[op.name](...args);
      stats.returned++; per.returned++;
      if (probe) { stats.probes++; stats.bad.push(`${op.name}: a ${probe} probe returned normally`); }
    } catch (e) {
      stats.threw++; per.threw++;
      const msg = e instanceof Error ? e.message : String(e);
      if (!(e instanceof Error) || !msg.startsWith(`${op.name}: `)) stats.bad.push(`${op.name}: ${msg}`);
      if (probe) {
        // caught when the freed buffer or the detached ids were noticed; another argument error (the
        // drawn sizes may not fit) is fine too: what must never happen is a normal return
        stats.probes++;
        if ((probe === 'free' && /freed or never allocated/.test(msg)) || (probe === 'detach' && /has 0 elements/.test(msg))) stats.probesCaught++;
      }
    }
    for (const h of owned) { try { n.free(h); } catch { /* freed by a probe */ } }
  }
  stats.sentinelIntact = Array.from(n.download(sentinel)).every((x) => x === 3);
  stats.leaked = n.live_buffers() - before;
  n.free(sentinel.handle);
  return stats;
}
