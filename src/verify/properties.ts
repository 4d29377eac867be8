// The checkable mathematical properties P1–P23 of spec section 4, each run on random instances drawn
// from a seed. Every check reports the number of instances it tried, the worst value it observed of
// its measure, the tolerance that measure is held to, and pass/fail (`measure` says what "worst" is and
// how it is compared). Checks never throw: an exception becomes a failed check with the message as note.
//
// The checks live by spec section in ./properties/ (coding-rate.ts 4.1, ista.ts 4.2, model.ts 4.3).
// Paper layout (d×N, tokens as columns) throughout, see src/verify/codingrate.ts; conversions to the
// code layout happen where the reference operators (src/reference/ista.ts) or the model are called.
//
// Fault injection: runChecks({ inject: { istaSignFlip: true } }) flips the sign of the gradient term in
// the checks' OWN ISTA step (a + ηDᵀ(u − Da) becomes a − ηDᵀ(u − Da)); the checks that compare with it
// or iterate it (P10, P12, P13, P17) must then fail. The reference operators are never modified.
import { Rng } from '../util/rng.js';
import type { PropertyCheck, CheckResult, CheckReport, RunChecksOptions, ChecksSummary } from './properties/types.js';
import { P1, P2, P3, P4, P5, P6, P7, P8, P9 } from './properties/coding-rate.js';
import { P10, P11, P12, P13, P14, P15, P16, P17 } from './properties/ista.js';
import { P18, P19, P20, P21, P22, P23 } from './properties/model.js';
export type { Faults, CheckOptions, CheckResult, PropertyCheck, CheckReport, RunChecksOptions, ChecksSummary } from './properties/types.js';
export { p8Regime } from './properties/coding-rate.js';
export { PARAM_TABLE } from './properties/model.js';

// ---- registry and runner -------------------------------------------------------------------------------------

export const CHECKS: PropertyCheck[] = [P1, P2, P3, P4, P5, P6, P7, P8, P9, P10, P11, P12, P13, P14, P15, P16, P17, P18, P19, P20, P21, P22, P23];

export const CHECK_IDS = CHECKS.map((c) => c.id);

/** The check's own random stream: depends on the seed and the id only, so --only reproduces a full run. */
function checkRng(seed: number, id: string): Rng {
  const k = Number(id.slice(1));
  return new Rng(((seed >>> 0) ^ Math.imul(k, 0x9e3779b1)) >>> 0);
}

/** Run the checks (all, or those in `only`), each on its own seeded stream. Never throws for a failing check. */
export function runChecks(opts: RunChecksOptions = {}): ChecksSummary {
  const seed = opts.seed ?? 0;
  let selected = CHECKS;
  if (opts.only && opts.only.length) {
    const wanted = opts.only.map((s) => s.trim().toUpperCase()).filter((s) => s.length);
    const unknown = wanted.filter((w) => !CHECK_IDS.includes(w));
    if (unknown.length) throw new Error(`unknown property id(s) ${unknown.join(', ')}; known: ${CHECK_IDS.join(', ')}`);
    selected = CHECKS.filter((c) => wanted.includes(c.id));
  }
  const checks: CheckReport[] = selected.map((c) => {
    const t0 = performance.now();
    let r: CheckResult;
    try {
      r = c.run(checkRng(seed, c.id), { inject: opts.inject });
    } catch (err) {
      r = { instances: 0, worst: NaN, tolerance: NaN, pass: false, note: `threw: ${(err as Error).message}` };
    }
    return { id: c.id, statement: c.statement, measure: c.measure, ...r, ms: performance.now() - t0 };
  });
  return { pass: checks.every((c) => c.pass), seed, checks };
}
