// The differential suite: every row of the operator table (native/ops.json), forward and backward,
// on each native backend, against the float64 reference on the same (float32-rounded) inputs, with
// shapes and values drawn by fast-check: sizes that are not multiples of any tile or vector width,
// T = 1, one head, large magnitudes, exact zeros at ReLU thresholds, ignored targets.
// The tests are generated from the table: CASES holds one input generator per row (a missing one is a
// type error and a failing test); the tolerance comes from the row's family and direction
// (native/tolerances.json, with the reasoning).
import { describe, test, expect, beforeAll, afterAll } from 'vitest';
import fc from 'fast-check';
import type { Backend } from '../src/backend/types.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import { compareTensors } from '../src/audit/compare.js';
import { OP_TOLERANCE } from '../src/audit/tolerances.js';
import { OPERATORS, opByMethod, type OpMethod, type OpSpec } from '../src/backend/op-table.js';
import { UsageError } from '../src/errors.js';
import type { Tolerance } from '../src/audit/compare.js';
import { Rng } from '../src/util/rng.js';
import { nativeBackendsPerKernel, useKernel } from './helpers/backends.js';

const ref = new ReferenceBackend();
// The cpu backend runs once per SGEMM micro-kernel this CPU has (scalar and AVX2 on any x86-64 with
// AVX2, AVX-512 where present): a bug in a kernel or packing path the addon picks on another host fails here.
const natives = await nativeBackendsPerKernel();
const RUNS = Number(process.env.CRATE_TS_DIFF_RUNS ?? 15);

/** float32-representable random values: N(0, scale²) (+ offset). */
function f32(rng: Rng, n: number, scale = 1, offset = 0): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.fround(offset + scale * rng.normal());
  return a;
}
function ints(rng: Rng, n: number, V: number): Int32Array {
  return Int32Array.from({ length: n }, () => rng.int(V));
}

type Inputs = Record<string, Float64Array>;
/** Run `body` on a backend with the inputs uploaded; return the named outputs on the host. */
function onBackend<B>(be: Backend<B>, inputs: Inputs, outputs: Record<string, number>, body: (t: Record<string, B>) => void): Record<string, Float64Array> {
  const bufs: Record<string, B> = {};
  for (const [k, v] of Object.entries(inputs)) {
    bufs[k] = be.alloc(v.length);
    be.upload(bufs[k], v);
  }
  for (const [k, n] of Object.entries(outputs)) {
    if (!(k in bufs)) bufs[k] = be.alloc(n);
  }
  try {
    body(bufs);
    const res: Record<string, Float64Array> = {};
    for (const k of Object.keys(outputs)) res[k] = be.download(bufs[k]);
    return res;
  } finally {
    for (const b of Object.values(bufs)) be.free(b);
  }
}

/**
 * `scale[name]` is the natural magnitude of an output when the reference can be exactly zero (e.g. a
 * LayerNorm over one feature has dinp ≡ 0, but each term the backend rounds is of size rstd·|g|);
 * the absolute floor is atolScale·max(max|ref|, scale).
 */
function expectClose(
  backend: string,
  op: string,
  seed: number,
  got: Record<string, Float64Array>,
  want: Record<string, Float64Array>,
  tol: Tolerance,
  scale: Record<string, number> = {},
): void {
  for (const k of Object.keys(want)) {
    const r = compareTensors(k, got[k], want[k], tol, scale[k] ?? 0);
    expect(
      r.pass,
      `${backend} ${op} seed=${seed}: ${k}[${r.worstIndex}] = ${r.worstGot}, reference ${r.worstRef} (max abs ${r.maxAbsErr}, rel ${r.maxRelErr}, tol ${r.atol} + ${r.rtol}|ref|)`,
    ).toBe(true);
  }
}

/** Natural size of LayerNorm's dinp: rstd·|dout·w| (rstd = 1/sqrt(var + eps) from the inputs). */
function lnGradScale(inputs: Inputs, N: number, C: number): number {
  let scale = 0;
  for (let n = 0; n < N; n++) {
    let m = 0,
      v = 0;
    for (let c = 0; c < C; c++) m += inputs.inp[n * C + c] / C;
    for (let c = 0; c < C; c++) v += (inputs.inp[n * C + c] - m) ** 2 / C;
    for (let c = 0; c < C; c++) scale = Math.max(scale, Math.abs(inputs.dout[n * C + c] * inputs.w[c]) / Math.sqrt(v + 1e-5));
  }
  return scale;
}

const seed = fc.integer({ min: 1, max: 2 ** 30 });
const odd = (min: number, max: number) => fc.integer({ min, max });

/** Values step·{−range..range}: float32-exact, with many exact ties. */
function grid(rng: Rng, n: number, step: number, range: number): Float64Array {
  return Float64Array.from({ length: n }, () => step * (rng.int(2 * range + 1) - range));
}
const saeArb = fc.record({ s: seed, N: odd(1, 24), D: odd(1, 40), S: odd(1, 70), k: fc.oneof(odd(1, 4), odd(1, 80)) });
type SaeShape = { s: number; N: number; D: number; S: number; k: number };
function saeInputs({ s, N, D, S }: SaeShape): Inputs {
  const rng = new Rng(s);
  const Wd = f32(rng, S * D);
  ref.saeNormalizeRows(Wd, S, D);
  return {
    x: grid(rng, N * D, 0.25, 4),
    We: grid(rng, D * S, 0.125, 4),
    be: grid(rng, S, 0.125, 2),
    bd: grid(rng, D, 0.25, 2),
    Wd: Wd.map(Math.fround),
    dxhat: f32(rng, N * D),
    dpre: f32(rng, N * S),
    dWd: f32(rng, S * D),
    dWe: f32(rng, D * S),
    dbe: f32(rng, S),
    dbd: f32(rng, D),
  };
}
/** The reference's code h for these inputs (exact: the encoder's sums are exact). */
function saeCode(inputs: Inputs, { N, D, S, k }: SaeShape): Float64Array {
  const pre = new Float64Array(N * S),
    h = new Float64Array(N * S);
  ref.saeEncodeForward(pre, h, inputs.x, inputs.We, inputs.be, inputs.bd, N, D, S, k);
  return h;
}

type Body = <B>(be: Backend<B>, t: Record<string, B>) => void;

/** What a case gets: the backend under test and a comparison against the reference. */
interface Ctx {
  be: Backend<unknown>;
  name: string;
  /**
   * Run `body` on the backend and on the reference with the same inputs; compare the named outputs
   * with the tolerance of `method`'s family and direction (or `direction`).
   */
  check(
    method: OpMethod,
    s: number,
    inputs: Inputs,
    outputs: Record<string, number>,
    body: Body,
    opts?: { scale?: Record<string, number>; direction?: 'forward' | 'backward' },
  ): void;
}

// A fixed fast-check seed, so a run is reproducible (CRATE_TS_DIFF_SEED draws other cases).
const FC_SEED = Number(process.env.CRATE_TS_DIFF_SEED ?? 20261207);
const run = <T>(arb: fc.Arbitrary<T>, prop: (v: T) => void) => fc.assert(fc.property(arb, prop), { numRuns: RUNS, seed: FC_SEED });
const attnArb = fc.record({ s: seed, B: odd(1, 3), T: odd(1, 40), NH: odd(1, 4), p: odd(1, 19), scale: fc.constantFrom(0.3, 1, 4) });
const embArb = fc.record({ s: seed, B: odd(1, 3), T: odd(1, 9), C: odd(1, 37), V: odd(1, 13) });
const lnArb = fc
  .record({ s: seed, N: odd(1, 17), C: odd(1, 70), off: fc.constantFrom(0, 1, 1000), withBias: fc.boolean() })
  // An offset of 1000 costs float32 log2(1000/σ_row) bits in x − mean (PyTorch's float32 too). With a
  // handful of features σ_row can be 1e-2 and that is 17 bits: a property of the input, not of the
  // backend. Large offsets are therefore drawn with C ≥ 16, where σ_row ≈ 1.
  .filter(({ off, C }) => off < 1000 || C >= 16);
// The second shape is a decoding step's LM head: a few rows times a wide weight (the cpu addon's
// streaming GEMV path takes N <= 8 with OC >= 1024; N = 9 is the first packed-SGEMM case).
const linArb = fc.oneof(
  { weight: 3, arbitrary: fc.record({ s: seed, N: odd(1, 67), C: odd(1, 71), OC: odd(1, 69), withBias: fc.boolean(), scale: fc.constantFrom(1, 100) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      s: seed,
      N: fc.integer({ min: 1, max: 9 }),
      C: fc.integer({ min: 1, max: 140 }),
      OC: fc.integer({ min: 1024, max: 1300 }),
      withBias: fc.boolean(),
      scale: fc.constantFrom(1, 100),
    }),
  },
);
const istaArb = fc.record({ s: seed, N: odd(1, 40), C: odd(1, 37), factor: odd(1, 4), steps: odd(1, 3) });
const ceArb = fc.record({ s: seed, N: odd(1, 33), V: odd(2, 700), scale: fc.constantFrom(1, 30), gradScale: fc.constantFrom(1, 0.25) });

function lnInputs({ s, N, C, off }: { s: number; N: number; C: number; off: number }): Inputs {
  const rng = new Rng(s);
  return { inp: f32(rng, N * C, 1, off), w: f32(rng, C), bias: f32(rng, C), dout: f32(rng, N * C), dw: f32(rng, C), db: f32(rng, C) };
}
function istaInputs({ s, N, C, factor }: { s: number; N: number; C: number; factor: number }): Inputs {
  const rng = new Rng(s),
    H = factor * C;
  return { u: f32(rng, N * C, 1), A: f32(rng, H * C, Math.sqrt(2 / C)), dout: f32(rng, N * C), dA: f32(rng, H * C) };
}
function ceTargets(rng: Rng, N: number, V: number): Int32Array {
  return Int32Array.from({ length: N }, (_, n) => (n > 0 && rng.uniform() < 0.2 ? -1 : rng.int(V)));
}

/**
 * The test input generator of every row of the operator table: shapes and values drawn by fast-check,
 * the operator run on the backend and the reference (backward rows run their forward first).
 */
const CASES: Record<OpMethod, (c: Ctx) => void> = {
  // ---- helpers --------------------------------------------------------------------------------------
  fill: (c) =>
    run(fc.tuple(seed, odd(1, 1000), fc.constantFrom(0, -2.5, 7, NaN, Infinity)), ([s, n, value]) => {
      c.check('fill', s, { a: f32(new Rng(s), n) }, { a: 0 }, (b, t) => b.fill(t.a, value));
    }),
  copy: (c) =>
    run(fc.tuple(seed, odd(1, 1000)), ([s, n]) => {
      const rng = new Rng(s);
      c.check('copy', s, { a: f32(rng, n), b: f32(rng, n) }, { a: 0 }, (b, t) => b.copy(t.a, t.b));
    }),
  add: (c) =>
    run(fc.tuple(seed, odd(1, 1000)), ([s, n]) => {
      const rng = new Rng(s);
      c.check('add', s, { a: f32(rng, n), b: f32(rng, n) }, { a: 0, c: n }, (b, t) => {
        b.add(t.c, t.a, t.b);
        b.add(t.a, t.a, t.c);
      });
    }),
  scale: (c) =>
    run(fc.tuple(seed, odd(1, 1000), fc.constantFrom(0.5, -3, 0)), ([s, n, k]) => {
      c.check('scale', s, { a: f32(new Rng(s), n) }, { a: 0 }, (b, t) => b.scale(t.a, k));
    }),
  sumSquares: (c) =>
    run(fc.tuple(seed, odd(1, 5000)), ([s, n]) => {
      const out: number[] = [];
      c.check('sumSquares', s, { a: f32(new Rng(s), n, 3) }, {}, (b, t) => {
        out.push(b.sumSquares(t.a));
      });
      expect(Math.abs(out[0] - out[1])).toBeLessThanOrEqual(OP_TOLERANCE.elementwise.forward.rtol * out[1]);
    }),
  allFinite: (c) =>
    run(fc.tuple(seed, odd(1, 1000), fc.constantFrom(NaN, Infinity, -Infinity, 1)), ([s, n, bad]) => {
      const a = f32(new Rng(s), n);
      a[s % n] = bad;
      const out: boolean[] = [];
      c.check('allFinite', s, { a }, {}, (b, t) => {
        out.push(b.allFinite(t.a));
      });
      expect(out).toEqual([Number.isFinite(bad), Number.isFinite(bad)]);
    }),

  // ---- ReLU -----------------------------------------------------------------------------------------
  reluForward: (c) =>
    run(fc.tuple(seed, odd(1, 300)), ([s, n]) => {
      const rng = new Rng(s),
        inp = f32(rng, n);
      for (let i = 0; i < n; i += 3) inp[i] = 0;
      if (n > 1) inp[1] = -0;
      if (n > 2) inp[2] = NaN; // propagates, as in PyTorch: never silently becomes 0
      c.check('reluForward', s, { inp }, { out: n }, (b, t) => b.reluForward(t.out, t.inp));
    }),
  reluBackward: (c) =>
    run(fc.tuple(seed, odd(1, 300)), ([s, n]) => {
      const rng = new Rng(s),
        inp = f32(rng, n);
      for (let i = 0; i < n; i += 3) inp[i] = 0; // exact zeros give zero gradient
      c.check('reluBackward', s, { inp, dout: f32(rng, n) }, { out: n, dinp: n }, (b, t) => {
        b.reluForward(t.out, t.inp);
        b.reluBackward(t.dinp, t.dout, t.out);
      });
    }),

  // ---- embedding ------------------------------------------------------------------------------------
  embeddingForward: (c) =>
    run(embArb, ({ s, B, T, C, V }) => {
      const rng = new Rng(s),
        idx = ints(rng, B * T, V);
      c.check('embeddingForward', s, { wte: f32(rng, V * C), wpe: f32(rng, T * C) }, { out: B * T * C }, (b, t) =>
        b.embeddingForward(t.out, idx, t.wte, t.wpe, B, T, C),
      );
    }),
  embeddingBackward: (c) =>
    run(embArb, ({ s, B, T, C, V }) => {
      const rng = new Rng(s),
        idx = ints(rng, B * T, V); // repeated ids accumulate
      c.check('embeddingBackward', s, { dout: f32(rng, B * T * C), dwte: f32(rng, V * C), dwpe: f32(rng, T * C) }, { dwte: 0, dwpe: 0 }, (b, t) =>
        b.embeddingBackward(t.dwte, t.dwpe, t.dout, idx, B, T, C),
      );
    }),

  // ---- LayerNorm ------------------------------------------------------------------------------------
  layernormForward: (c) =>
    run(lnArb, (a) => {
      const { s, N, C, withBias } = a;
      c.check('layernormForward', s, lnInputs(a), { out: N * C, mean: N, rstd: N }, (b, t) =>
        b.layernormForward(t.out, t.mean, t.rstd, t.inp, t.w, withBias ? t.bias : null, N, C, 1e-5),
      );
    }),
  layernormBackward: (c) =>
    run(lnArb, (a) => {
      const { s, N, C, withBias } = a,
        inputs = lnInputs(a);
      c.check(
        'layernormBackward',
        s,
        inputs,
        { dinp: N * C, dw: 0, db: 0, mean: N, rstd: N, out: N * C },
        (b, t) => {
          b.layernormForward(t.out, t.mean, t.rstd, t.inp, t.w, withBias ? t.bias : null, N, C, 1e-5);
          b.layernormBackward(t.dinp, t.dw, withBias ? t.db : null, t.dout, t.inp, t.w, t.mean, t.rstd, N, C);
        },
        { scale: { dinp: lnGradScale(inputs, N, C) } },
      );
    }),

  // ---- linear ---------------------------------------------------------------------------------------
  linearForward: (c) =>
    run(linArb, ({ s, N, C, OC, withBias, scale }) => {
      const rng = new Rng(s);
      c.check('linearForward', s, { x: f32(rng, N * C, scale), W: f32(rng, OC * C), b: f32(rng, OC) }, { out: N * OC }, (b, t) =>
        b.linearForward(t.out, t.x, t.W, withBias ? t.b : null, N, C, OC),
      );
    }),
  linearBackward: (c) =>
    run(linArb, ({ s, N, C, OC, withBias, scale }) => {
      const rng = new Rng(s);
      const inputs: Inputs = { x: f32(rng, N * C, scale), W: f32(rng, OC * C), dout: f32(rng, N * OC), dW: f32(rng, OC * C), db: f32(rng, OC) };
      c.check('linearBackward', s, inputs, { dx: N * C, dW: 0, db: 0 }, (b, t) =>
        b.linearBackward(t.dx, t.dW, withBias ? t.db : null, t.dout, t.x, t.W, N, C, OC),
      );
      c.check('linearBackward', s, inputs, { dW: 0 }, (b, t) => b.linearBackward(null, t.dW, null, t.dout, t.x, t.W, N, C, OC)); // dinp skipped
    }),

  // ---- attention ------------------------------------------------------------------------------------
  attentionSavedSize: (c) =>
    run(fc.record({ B: odd(0, 5), NH: odd(1, 6), T: odd(0, 70) }), ({ B, NH, T }) => {
      // What is saved differs by backend (the reference keeps P, the native twins one logsumexp per row),
      // so the property is the contract: an integer, and exactly the size the forward accepts.
      const n = c.be.attentionSavedSize(B, NH, T);
      expect(Number.isInteger(n) && n >= 0).toBe(true);
      if (B * T > 0) {
        const C = NH * 2,
          v = c.be.alloc(B * T * C),
          y = c.be.alloc(B * T * C),
          st = c.be.alloc(n),
          st1 = c.be.alloc(n + 1);
        c.be.mssaForward(y, st, v, B, T, C, NH);
        expect(() => c.be.mssaForward(y, st1, v, B, T, C, NH)).toThrow(/saved has \d+ elements/);
        for (const b of [v, y, st, st1]) c.be.free(b);
      }
    }),
  mssaForward: (c) =>
    run(attnArb, ({ s, B, T, NH, p, scale }) => {
      const rng = new Rng(s),
        C = NH * p,
        n = B * T * C;
      c.check('mssaForward', s, { v: f32(rng, n, scale) }, { y: n }, (b, t) => {
        const st = b.alloc(b.attentionSavedSize(B, NH, T));
        b.mssaForward(t.y, st, t.v, B, T, C, NH);
        b.free(st);
      });
    }),
  mssaBackward: (c) =>
    run(attnArb, ({ s, B, T, NH, p, scale }) => {
      const rng = new Rng(s),
        C = NH * p,
        n = B * T * C;
      c.check('mssaBackward', s, { v: f32(rng, n, scale), dy: f32(rng, n) }, { dv: n }, (b, t) => {
        const st = b.alloc(b.attentionSavedSize(B, NH, T)),
          y = b.alloc(n);
        b.mssaForward(y, st, t.v, B, T, C, NH);
        b.mssaBackward(t.dv, t.dy, t.v, y, st, B, T, C, NH);
        b.free(st);
        b.free(y);
      });
    }),
  attentionForward: (c) =>
    run(attnArb, ({ s, B, T, NH, p, scale }) => {
      const rng = new Rng(s),
        C = NH * p,
        n = B * T * C;
      c.check('attentionForward', s, { qkv: f32(rng, 3 * n, scale) }, { y: n }, (b, t) => {
        const st = b.alloc(b.attentionSavedSize(B, NH, T));
        b.attentionForward(t.y, st, t.qkv, B, T, C, NH);
        b.free(st);
      });
    }),
  attentionBackward: (c) =>
    run(attnArb, ({ s, B, T, NH, p, scale }) => {
      const rng = new Rng(s),
        C = NH * p,
        n = B * T * C;
      c.check('attentionBackward', s, { qkv: f32(rng, 3 * n, scale), dy: f32(rng, n) }, { dqkv: 3 * n }, (b, t) => {
        const st = b.alloc(b.attentionSavedSize(B, NH, T)),
          y = b.alloc(n);
        b.attentionForward(y, st, t.qkv, B, T, C, NH);
        b.attentionBackward(t.dqkv, t.dy, t.qkv, y, st, B, T, C, NH);
        b.free(st);
        b.free(y);
      });
    }),
  attentionDecode: (c) =>
    run(
      fc.record({ s: seed, B: odd(1, 3), Tmax: odd(1, 40), tRaw: odd(0, 39), NH: odd(1, 4), p: odd(1, 19), scale: fc.constantFrom(0.3, 1, 4) }),
      ({ s, B, Tmax, tRaw, NH, p, scale }) => {
        const rng = new Rng(s),
          C = NH * p,
          t = tRaw % Tmax;
        const inputs = { q: f32(rng, B * C, scale), k: f32(rng, B * Tmax * C, scale), v: f32(rng, B * Tmax * C) };
        c.check('attentionDecode', s, inputs, { y: B * C }, (b, x) => b.attentionDecode(x.y, x.q, x.k, x.v, B, t, Tmax, C, NH));
        // CRATE: q is row t of the cache and the cache serves as both k and v (B = 1: the row is a view)
        c.check('attentionDecode', s, { k: inputs.k.subarray(0, Tmax * C) }, { y: C }, (b, x) =>
          b.attentionDecode(x.y, b.view(x.k, t * C, C), x.k, x.k, 1, t, Tmax, C, NH),
        );
      },
    ),

  // ---- ISTA -----------------------------------------------------------------------------------------
  istaForward: (c) =>
    run(istaArb, (a) => {
      const { s, N, C, factor, steps } = a,
        H = factor * C;
      c.check('istaForward', s, istaInputs(a), { out: N * C, codes: steps * N * H }, (b, t) =>
        b.istaForward(t.out, t.codes, t.u, t.A, N, C, H, 0.1, 0.1, steps),
      );
    }),
  istaBackward: (c) =>
    run(istaArb, (a) => {
      const { s, N, C, factor, steps } = a,
        H = factor * C,
        inputs = istaInputs(a);
      // backward on the reference's own codes (float32-rounded), so both see the same ReLU masks
      const codes = onBackend(ref, inputs, { codes: steps * N * H, out: N * C }, (t) =>
        ref.istaForward(t.out, t.codes, t.u, t.A, N, C, H, 0.1, 0.1, steps),
      ).codes.map(Math.fround);
      c.check('istaBackward', s, { ...inputs, codes }, { du: N * C, dA: 0 }, (b, t) =>
        b.istaBackward(t.du, t.dA, t.dout, t.u, t.A, t.codes, N, C, H, 0.1, 0.1, steps),
      );
    }),
  istaCompleteForward: (c) =>
    run(fc.tuple(seed, odd(1, 40), odd(1, 37)), ([s, N, C]) => {
      const rng = new Rng(s);
      c.check('istaCompleteForward', s, { x: f32(rng, N * C), W: f32(rng, C * C, 1 / Math.sqrt(C)) }, { out: N * C }, (b, t) =>
        b.istaCompleteForward(t.out, t.x, t.W, N, C, 0.1, 0.1),
      );
    }),
  istaCompleteBackward: (c) =>
    run(fc.tuple(seed, odd(1, 40), odd(1, 37)), ([s, N, C]) => {
      const rng = new Rng(s);
      const inputs: Inputs = { x: f32(rng, N * C), W: f32(rng, C * C, 1 / Math.sqrt(C)), dout: f32(rng, N * C), dW: f32(rng, C * C) };
      const out = onBackend(ref, inputs, { out: N * C }, (t) => ref.istaCompleteForward(t.out, t.x, t.W, N, C, 0.1, 0.1)).out.map(Math.fround);
      c.check('istaCompleteBackward', s, { ...inputs, out }, { dx: N * C, dW: 0 }, (b, t) =>
        b.istaCompleteBackward(t.dx, t.dW, t.dout, t.x, t.W, t.out, N, C, 0.1, 0.1),
      );
    }),

  // ---- loss and optimizer ---------------------------------------------------------------------------
  crossEntropyForward: (c) =>
    run(ceArb, ({ s, N, V, scale, gradScale }) => {
      // fused with the softmax backward: the loss at the forward tolerance, dlogits at the backward one
      const rng = new Rng(s),
        targets = ceTargets(rng, N, V),
        inputs = { logits: f32(rng, N * V, scale) };
      const losses: number[] = [];
      c.check(
        'crossEntropyForward',
        s,
        inputs,
        { dlogits: N * V },
        (b, t) => {
          losses.push(b.crossEntropyForward(t.dlogits, t.logits, targets, N, V, gradScale));
        },
        // dlogits = gradScale·(p − onehot)/N: its natural size is gradScale/N even when every entry is
        // tiny (a confident row has p ≈ onehot, and p − 1 in float32 is off by about one ulp of 1)
        { direction: 'backward', scale: { dlogits: gradScale / N } },
      );
      expectClose(
        c.name,
        'crossEntropyForward (loss)',
        s,
        { loss: Float64Array.of(losses[0]) },
        { loss: Float64Array.of(losses[1]) },
        OP_TOLERANCE.crossEntropy.forward,
      );
      // forward-only call gives the same loss
      onBackend(c.be, inputs, {}, (t) => {
        losses.push(c.be.crossEntropyForward(null, t.logits, targets, N, V, 1));
      });
      expect(losses[2]).toBe(losses[0]);
    }),
  // ---- serving (src/reference/logits.ts): logit rows to log-sum-exp, target logit, top k, and a draw -----
  // Grid logits (float32-exact, many exact ties) so the top-k tie rule decides; M below V cuts the
  // listed ids; K past M leaves empty places (−1, −∞).
  logitsStats: (c) =>
    run(fc.record({ s: seed, N: odd(1, 17), V: odd(1, 400), cut: odd(0, 5), K: odd(0, 9), scale: fc.constantFrom(0.25, 4) }), ({ s, N, V, cut, K, scale }) => {
      const rng = new Rng(s),
        M = Math.max(1, V - cut);
      const targets = ints(rng, N, V);
      c.check('logitsStats', s, { logits: grid(rng, N * V, scale, 6) }, { stats: N * 3, top: N * K * 2 }, (b, t) =>
        b.logitsStats(t.stats, t.top, t.logits, targets, N, V, M, K),
      );
    }),
  sampleLogits: (c) =>
    run(
      fc.record({
        s: seed,
        V: odd(1, 300),
        cut: odd(0, 5),
        temperature: fc.constantFrom(0, 0.5, 1, 1.7),
        topK: fc.constantFrom(0, 1, 3, 40, 1000),
        topP: fc.constantFrom(1, 0.9, 0.5, 1e-9),
      }),
      ({ s, V, cut, temperature, topK, topP }) => {
        // the draw is an id: the twin must pick the reference's id for every u (grid logits: ties too)
        const rng = new Rng(s),
          n = Math.max(1, V - cut);
        const logits = grid(rng, V, 0.5, 8);
        const got: number[] = [],
          want: number[] = [];
        const us = Array.from({ length: 25 }, () => rng.uniform());
        onBackend(c.be, { logits }, {}, (t) => {
          for (const u of us) got.push(c.be.sampleLogits(t.logits, n, temperature, topK, topP, u));
        });
        for (const u of us) want.push(ref.sampleLogits(logits, n, temperature, topK, topP, u));
        expect(got, `${c.name} sampleLogits seed=${s}`).toEqual(want);
      },
    ),
  adamwUpdate: (c) =>
    run(fc.tuple(seed, odd(1, 500), fc.constantFrom(0, 0.1)), ([s, n, wd]) => {
      const rng = new Rng(s);
      const inputs = { p: f32(rng, n), g: f32(rng, n, 1e-3), m: f32(rng, n, 1e-4), v: Float64Array.from(f32(rng, n, 1e-4), (x) => Math.fround(x * x)) };
      c.check('adamwUpdate', s, inputs, { p: 0, m: 0, v: 0 }, (b, t) => {
        for (let step = 1; step <= 3; step++) b.adamwUpdate(t.p, t.g, t.m, t.v, 1e-3, 0.9, 0.95, 1e-8, wd, step);
      });
    }),
  // ---- sparse autoencoder (src/reference/sae.ts) ---------------------------------------------------------
  // Encoder inputs lie on a grid (x: quarters, W_enc: eighths, D <= 40) so every sum is exact in float32:
  // both twins see identical pre-activations and keep identical top-k entries, ties included. k spans 1,
  // mid and >= S (plain relu), so the native twin's sparse (density < 1/8) and dense paths both run.
  saeTopk: (c) =>
    run(fc.record({ s: seed, N: odd(1, 20), S: odd(1, 90), k: odd(1, 100), masked: fc.boolean() }), ({ s, N, S, k, masked }) => {
      const rng = new Rng(s);
      const inputs: Inputs = { pre: grid(rng, N * S, 0.5, 3) };
      if (masked) inputs.mask = Float64Array.from({ length: S }, () => (rng.uniform() < 0.6 ? 1 : 0));
      c.check('saeTopk', s, inputs, { h: N * S }, (b, t) => b.saeTopk(t.h, t.pre, masked ? t.mask : null, N, S, k));
    }),
  saeEncodeForward: (c) =>
    run(saeArb, (a) => {
      c.check('saeEncodeForward', a.s, saeInputs(a), { pre: a.N * a.S, h: a.N * a.S }, (b, t) =>
        b.saeEncodeForward(t.pre, t.h, t.x, t.We, t.be, t.bd, a.N, a.D, a.S, a.k),
      );
    }),
  saeDecodeForward: (c) =>
    run(fc.record({ saeArb, bias: fc.boolean() }), ({ saeArb: a, bias }) => {
      const inputs = saeInputs(a);
      c.check('saeDecodeForward', a.s, { ...inputs, h: saeCode(inputs, a) }, { xhat: a.N * a.D }, (b, t) =>
        b.saeDecodeForward(t.xhat, t.h, t.Wd, bias ? t.bd : null, a.N, a.D, a.S),
      );
    }),
  saeDecodeBackward: (c) =>
    run(fc.record({ saeArb, bias: fc.boolean(), l1: fc.constantFrom(0, 1e-3, 0.5) }), ({ saeArb: a, bias, l1 }) => {
      const inputs = saeInputs(a);
      c.check('saeDecodeBackward', a.s, { ...inputs, h: saeCode(inputs, a) }, { dpre: a.N * a.S, dWd: 0, dbd: 0 }, (b, t) =>
        b.saeDecodeBackward(t.dpre, t.dWd, bias ? t.dbd : null, t.dxhat, t.h, t.Wd, a.N, a.D, a.S, l1),
      );
    }),
  saeEncodeBackward: (c) =>
    run(saeArb, (a) => {
      const inputs = saeInputs(a);
      // dpre with the sparsity pattern of the code (the native twin's sparse path) or dense
      const h = saeCode(inputs, a);
      const dpre = Float64Array.from(inputs.dpre, (g, e) => (h[e] > 0 || a.k >= a.S ? g : 0));
      c.check('saeEncodeBackward', a.s, { ...inputs, dpre }, { dWe: 0, dbe: 0, dbd: 0 }, (b, t) =>
        b.saeEncodeBackward(t.dWe, t.dbe, t.dbd, t.dpre, t.x, t.We, t.bd, a.N, a.D, a.S),
      );
    }),
  saeMseLoss: (c) =>
    run(fc.record({ s: seed, N: odd(1, 40), D: odd(1, 50), gs: fc.constantFrom(1, 0.25), withGrad: fc.boolean(), constant: fc.boolean() }), (a) => {
      const rng = new Rng(a.s);
      const x = a.constant ? new Float64Array(a.N * a.D).fill(1.5) : f32(rng, a.N * a.D, 2, 1);
      const losses: number[] = [];
      c.check('saeMseLoss', a.s, { x, xhat: f32(rng, a.N * a.D, 2, 1) }, a.withGrad ? { d: a.N * a.D } : {}, (b, t) => {
        losses.push(b.saeMseLoss(a.withGrad ? t.d : null, t.xhat, t.x, a.N, a.D, a.gs));
      });
      expect(Math.abs(losses[0] - losses[1])).toBeLessThanOrEqual(OP_TOLERANCE.sae.forward.rtol * Math.abs(losses[1]));
    }),
  saeFireCounts: (c) =>
    run(saeArb, (a) => {
      const h = saeCode(saeInputs(a), a);
      const sums: number[] = [];
      c.check('saeFireCounts', a.s, { h }, { counts: a.S }, (b, t) => {
        sums.push(b.saeFireCounts(t.counts, t.h, a.N, a.S));
      });
      expect(Math.abs(sums[0] - sums[1])).toBeLessThanOrEqual(1e-6 * Math.abs(sums[1]) + 1e-12);
    }),
  saeDecoderProject: (c) =>
    run(fc.record({ s: seed, S: odd(0, 40), D: odd(1, 60), zeroRow: fc.boolean() }), ({ s, S, D, zeroRow }) => {
      const rng = new Rng(s);
      const W = f32(rng, S * D);
      if (zeroRow && S > 0) W.fill(0, 0, D);
      const g = f32(rng, S * D);
      // the result can cancel to exactly 0 (D = 1): its natural scale is the gradient's
      const scale = { g: g.reduce((m, v) => Math.max(m, Math.abs(v)), 0) };
      c.check('saeDecoderProject', s, { W, g }, { g: 0 }, (b, t) => b.saeDecoderProject(t.g, t.W, S, D), { scale });
    }),
  saeNormalizeRows: (c) =>
    run(fc.record({ s: seed, S: odd(0, 40), D: odd(1, 60), scale: fc.constantFrom(1e-3, 1, 300) }), ({ s, S, D, scale }) => {
      c.check('saeNormalizeRows', s, { W: f32(new Rng(s), S * D, scale) }, { W: 0 }, (b, t) => b.saeNormalizeRows(t.W, S, D));
    }),
};

for (const nat of natives) {
  const suite = nat.backend ? describe : describe.skip;
  suite(`differential: ${nat.name} vs reference${nat.skip ? ` (skipped: ${nat.skip})` : ''}`, () => {
    const be = nat.backend as Backend<unknown>;
    let restoreKernel = (): void => {};
    beforeAll(() => {
      restoreKernel = useKernel(nat);
    });
    afterAll(() => restoreKernel());
    const ctx: Ctx = {
      be,
      name: nat.name,
      check(method, s, inputs, outputs, body, opts = {}) {
        const op = opByMethod(method) as OpSpec;
        const dir = opts.direction ?? op.direction;
        const got = onBackend(be, inputs, outputs, (t) => body(be, t));
        const want = onBackend(ref, inputs, outputs, (t) => body(ref, t));
        expectClose(nat.name, `${method} (${op.family} ${dir})`, s, got, want, OP_TOLERANCE[op.family as keyof typeof OP_TOLERANCE][dir], opts.scale);
      },
    };

    // one test per row of the operator table
    for (const op of OPERATORS) {
      test(`${nat.name}: ${op.method} (${op.name}; ${op.family} ${op.direction})`, () => CASES[op.method](ctx));
    }

    test(`${nat.name}: ISTA entries exactly at the threshold are zero in forward and pass no gradient`, () => {
      // one atom e_0 and u_0 = λ: the first step's pre-activation η·u_0 − ηλ is exactly 0 (η = 0.5, λ = 0.25)
      const C = 3,
        H = 1,
        inputs = { u: Float64Array.from([0.25, 1, -2]), A: Float64Array.from([1, 0, 0]), dout: Float64Array.from([1, 1, 1]) };
      const got = onBackend(be, inputs, { out: C, codes: H, du: C, dA: H * C }, (t) => {
        be.istaForward(t.out, t.codes, t.u, t.A, 1, C, H, 0.5, 0.25, 1);
        be.istaBackward(t.du, t.dA, t.dout, t.u, t.A, t.codes, 1, C, H, 0.5, 0.25, 1);
      });
      expect(Array.from(got.codes)).toEqual([0]);
      expect(Array.from(got.out)).toEqual([0, 0, 0]);
      expect(Array.from(got.du)).toEqual([0, 0, 0]);
      expect(Array.from(got.dA)).toEqual([0, 0, 0]);
      // a NaN input gives NaN codes and output (propagated, not clamped to 0 by the ReLU)
      const nan = onBackend(be, { ...inputs, u: Float64Array.from([NaN, 1, -2]) }, { out: C, codes: H }, (t) =>
        be.istaForward(t.out, t.codes, t.u, t.A, 1, C, H, 0.5, 0.25, 1),
      );
      expect(Number.isNaN(nan.codes[0])).toBe(true);
      expect(nan.out.every(Number.isNaN)).toBe(true);
    });

    test(`${nat.name}: SAE products at the edges of the sparse path (no code active, every code, k = 1, k = d_sae, ties, the 1/8 density switch, several cache blocks)`, () => {
      // The native twin computes everything downstream of the code h from its non-zeros when fewer
      // than 1/8 of them are active (row- and feature-blocked), densely otherwise. b_enc shifted by
      // ±1000 makes no pre-activation (or every one) positive; with every one positive top-k keeps
      // exactly k per row, so S = 64 with k = 8 sits exactly on the switch (sparse) and k = 9 just
      // above it (dense). N = 600 and S = 1100 span two row blocks (512) and two feature blocks (1024).
      const cases = [
        { name: 'no code active', N: 9, D: 13, S: 70, k: 70, shift: -1000 },
        { name: 'every code active', N: 9, D: 13, S: 70, k: 70, shift: 1000 },
        { name: 'k = 1', N: 140, D: 11, S: 150, k: 1, shift: 0 },
        { name: 'k = 1, every pre-activation positive (ties broken by index)', N: 140, D: 11, S: 150, k: 1, shift: 1000 },
        { name: 'k = d_sae', N: 140, D: 11, S: 150, k: 150, shift: 0 },
        { name: 'relu, mostly inactive', N: 140, D: 11, S: 150, k: 150, shift: -2 },
        { name: 'two row blocks and two feature blocks', N: 600, D: 5, S: 1100, k: 3, shift: 0 },
        { name: 'density exactly 1/8 (sparse)', N: 33, D: 17, S: 64, k: 8, shift: 1000 },
        { name: 'density just above 1/8 (dense)', N: 33, D: 17, S: 64, k: 9, shift: 1000 },
      ];
      for (const cs of cases) {
        const a = { s: 7 + cs.N + cs.S + cs.k, N: cs.N, D: cs.D, S: cs.S, k: cs.k };
        const inputs = saeInputs(a);
        inputs.be = inputs.be.map((v) => v + cs.shift);
        const h = saeCode(inputs, a);
        const active = h.reduce((n, v) => n + (v > 0 ? 1 : 0), 0);
        if (cs.shift === -1000) expect(active).toBe(0);
        if (cs.shift === 1000) expect(active).toBe(cs.N * Math.min(cs.k, cs.S));
        const dpre = Float64Array.from(inputs.dpre, (g, e) => (h[e] > 0 ? g : 0));
        const outputs = { pre: a.N * a.S, h2: a.N * a.S, xhat: a.N * a.D, dpre2: a.N * a.S, dWd: 0, dbd: 0, dWe: 0, dbe: 0, dbd2: 0 };
        const body = <B>(b: Backend<B>, t: Record<string, B>) => {
          b.saeEncodeForward(t.pre, t.h2, t.x, t.We, t.be, t.bd, a.N, a.D, a.S, a.k);
          b.saeDecodeForward(t.xhat, t.h, t.Wd, t.bd, a.N, a.D, a.S);
          b.saeDecodeBackward(t.dpre2, t.dWd, t.dbd, t.dxhat, t.h, t.Wd, a.N, a.D, a.S, 0.5);
          b.saeEncodeBackward(t.dWe, t.dbe, t.dbd2, t.dpre, t.x, t.We, t.bd, a.N, a.D, a.S);
        };
        const bufs = { ...inputs, h, dpre, dbd2: Float64Array.from(inputs.dbd) };
        const got = onBackend(be, bufs, outputs, (t) => body(be, t));
        const want = onBackend(ref, bufs, outputs, (t) => body(ref, t));
        const pick = (r: Record<string, Float64Array>, keys: string[]) => Object.fromEntries(keys.map((k) => [k, r[k]]));
        const fwd = ['pre', 'h2', 'xhat'],
          bwd = ['dpre2', 'dWd', 'dbd', 'dWe', 'dbe', 'dbd2'];
        expectClose(nat.name, `SAE ${cs.name} (sae forward)`, a.s, pick(got, fwd), pick(want, fwd), OP_TOLERANCE.sae.forward);
        expectClose(nat.name, `SAE ${cs.name} (sae backward)`, a.s, pick(got, bwd), pick(want, bwd), OP_TOLERANCE.sae.backward);
      }
    });

    test(`${nat.name}: cross-entropy with every target ignored is NaN, like PyTorch's mean over nothing`, () => {
      const allIgnored = onBackend(be, { l: Float64Array.from([1, 2, 3]) }, {}, (t) => {
        expect(Number.isNaN(be.crossEntropyForward(null, t.l, Int32Array.from([-1]), 1, 3, 1))).toBe(true);
      });
      expect(allIgnored).toEqual({});
    });

    test(`${nat.name}: views, fill and copy share memory as documented`, () => {
      const got = onBackend(be, { a: Float64Array.from([1, 2, 3, 4, 5]) }, { a: 0, c: 5 }, (t) => {
        expect(be.allFinite(t.a)).toBe(true);
        const v = be.view(t.a, 1, 3);
        expect(be.size(v)).toBe(3);
        be.fill(v, 7);
        be.copy(t.c, t.a);
        be.upload(be.view(t.c, 4, 1), [Infinity]);
        expect(be.allFinite(t.c)).toBe(false);
        expect(be.allFinite(be.view(t.c, 0, 4))).toBe(true);
      });
      expect(Array.from(got.a)).toEqual([1, 7, 7, 7, 5]);
      expect(Array.from(got.c)).toEqual([1, 7, 7, 7, Infinity]);
    });

    test(`${nat.name}: sizes beyond a float32 buffer are refused, not wrapped around`, () => {
      // B·NH·T = 2^60 overflows neither int64 nor a double, but exceeds any buffer: an error, not a number
      expect(() => be.attentionSavedSize(2 ** 20, 2 ** 20, 2 ** 20)).toThrow(UsageError);
      expect(() => be.attentionSavedSize(2 ** 20, 2 ** 20, 2 ** 20)).toThrow(/exceeds the largest buffer of 2\^40 elements/);
      expect(() => be.attentionSavedSize(2 ** 40, 2 ** 40, 2 ** 40)).toThrow(/exceeds the largest buffer/); // 2^120 would overflow int64
    });

    test(`${nat.name}: no native buffer leaks across the suite's operations`, () => {
      const before = be.liveBuffers();
      const rng = new Rng(1);
      onBackend(be, { x: f32(rng, 100), W: f32(rng, 5) }, { out: 20 }, (t) => be.linearForward(t.out, t.x, t.W, null, 20, 5, 1));
      expect(be.liveBuffers()).toBe(before);
      const b = be.alloc(10);
      expect(be.liveBuffers()).toBe(before + 1);
      be.free(b);
      expect(be.liveBuffers()).toBe(before);
    });
  });
}

test('differential suite: every row of the operator table has a case, and nothing else does', () => {
  expect(Object.keys(CASES).sort()).toEqual(OPERATORS.map((o) => o.method).sort());
});

test('differential suite: at least the reference is available, and each native backend is either tested or skipped with a reason', () => {
  for (const n of natives) expect(n.backend !== undefined || (n.skip ?? '').length > 0).toBe(true);
  expect(ref.liveBuffers()).toBe(0);
});
