// One comparison and report module for every audit: a fixture against a backend and
// backends against the float64 reference.
//
// An element passes when |got − ref| ≤ atol + rtol·|ref|, with atol = atolScale·max|ref| (a floor
// relative to the tensor's own scale, so gradients that are tiny in places are judged fairly).

export interface Tolerance {
  rtol: number;
  atolScale: number;
}

export interface CompareRow {
  name: string;
  n: number;
  maxAbsErr: number;
  /** max |got − ref| / max(|ref|, atol) over the elements. */
  maxRelErr: number;
  /** Worst element in units of float32's last place at that element's reference magnitude. */
  maxUlpF32: number;
  /** Flat index of the element with the largest tolerance ratio. */
  worstIndex: number;
  worstGot: number;
  worstRef: number;
  atol: number;
  rtol: number;
  /** First flat index where got is NaN/Inf while ref is finite, or −1. */
  firstNonFinite: number;
  pass: boolean;
}

/** Spacing of float32 numbers at |x| (2^(e−23)), with the subnormal floor. */
export function ulpF32(x: number): number {
  const a = Math.abs(x);
  if (a < 1.1754943508222875e-38) return 1.401298464324817e-45;
  return Math.pow(2, Math.floor(Math.log2(a)) - 23);
}

/**
 * Compare element by element. `scale` (optional) is the tensor's natural magnitude when the
 * reference may be exactly zero everywhere; the absolute floor is atolScale·max(max|ref|, scale).
 */
export function compareTensors(name: string, got: ArrayLike<number>, ref: ArrayLike<number>, tol: Tolerance, scale = 0): CompareRow {
  if (got.length !== ref.length) throw new Error(`compare ${name}: got ${got.length} elements, reference has ${ref.length}`);
  let refMax = 0;
  for (let i = 0; i < ref.length; i++) if (Number.isFinite(ref[i])) refMax = Math.max(refMax, Math.abs(ref[i]));
  const atol = tol.atolScale * Math.max(refMax, scale);
  let maxAbs = 0,
    maxRel = 0,
    maxUlp = 0,
    worstRatio = -1,
    worst = 0,
    firstNonFinite = -1,
    pass = true;
  for (let i = 0; i < ref.length; i++) {
    const g = got[i],
      r = ref[i];
    if (!Number.isFinite(g) || !Number.isFinite(r)) {
      const same = Object.is(g, r) || (Number.isNaN(g) && Number.isNaN(r));
      if (!same) {
        pass = false;
        if (firstNonFinite < 0) firstNonFinite = i;
        if (worstRatio < Infinity) {
          worstRatio = Infinity;
          worst = i;
        }
        maxAbs = Infinity;
        maxRel = Infinity;
        maxUlp = Infinity;
      }
      continue;
    }
    const d = Math.abs(g - r);
    maxAbs = Math.max(maxAbs, d);
    maxRel = Math.max(maxRel, d / Math.max(Math.abs(r), atol, Number.MIN_VALUE));
    maxUlp = Math.max(maxUlp, d / ulpF32(r));
    const bound = atol + tol.rtol * Math.abs(r);
    const ratio = bound > 0 ? d / bound : d > 0 ? Infinity : 0;
    if (ratio > worstRatio) {
      worstRatio = ratio;
      worst = i;
    }
    if (d > bound) pass = false;
  }
  return {
    name,
    n: ref.length,
    maxAbsErr: maxAbs,
    maxRelErr: maxRel,
    maxUlpF32: maxUlp,
    worstIndex: worst,
    worstGot: got[worst] ?? NaN,
    worstRef: ref[worst] ?? NaN,
    atol,
    rtol: tol.rtol,
    firstNonFinite,
    pass,
  };
}

const fmt = (x: number): string => (Number.isFinite(x) ? x.toExponential(2) : String(x));

/** A fixed-width terminal table, one row per compared tensor. */
export function formatTable(rows: CompareRow[], opts: { ulp?: boolean } = {}): string {
  const head = ['tensor', 'max abs err', 'max rel err', ...(opts.ulp ? ['max ulp(f32)'] : []), 'tolerance', 'ok'];
  const body = rows.map((r) => [
    r.name,
    fmt(r.maxAbsErr),
    fmt(r.maxRelErr),
    ...(opts.ulp ? [fmt(r.maxUlpF32)] : []),
    `${fmt(r.atol)} + ${fmt(r.rtol)}·|ref|`,
    r.pass ? 'ok' : 'FAIL',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

/** JSON-safe numbers (Infinity/NaN become strings). */
export function jsonNumber(x: number): number | string {
  return Number.isFinite(x) ? x : String(x);
}
