// Text table and JSON forms of a property-check run (crate-ts verify).
import type { ChecksSummary } from './properties.js';

const num = (x: number): string => {
  if (Number.isNaN(x)) return 'NaN';
  if (x === 0) return '0';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  const a = Math.abs(x);
  return a >= 1e-3 && a < 1e5 ? String(+x.toPrecision(3)) : x.toExponential(2);
};

function clip(s: string, n: number): string {
  return s.length <= n ? s : s.slice(0, n - 1) + '…';
}

export type PassIf = '≤' | '<' | '>' | '≥' | '=';

/**
 * How a check's worst value is held to its tolerance, read from its measure ("… ≤ tol", "… > tol = 0"):
 * most checks pass when the worst error is at most the tolerance, a few (P7, P8, P9) when a
 * decrease is strictly below 0 or a cosine strictly above it. Null when the measure does not say.
 */
export function passIf(measure: string): PassIf | null {
  const m = /(≤|<=|<|≥|>=|>|=)\s*tol\b/.exec(measure);
  if (!m) return null;
  return ({ '<=': '≤', '>=': '≥' } as Record<string, PassIf>)[m[1]] ?? (m[1] as PassIf);
}

/** One row per property: id, statement, instances, worst, the direction that passes, tolerance, pass; then the notes. */
export function formatChecksTable(r: ChecksSummary, opts: { width?: number; notes?: boolean } = {}): string {
  const sw = opts.width ?? 70;
  const head = ['id', 'statement', 'inst', 'worst', 'pass if', 'tol', 'pass'];
  const rows = r.checks.map((c) => {
    const dir = passIf(c.measure);
    return [c.id, clip(c.statement, sw), String(c.instances), num(c.worst), dir ? `${dir} tol` : '(note)', num(c.tolerance), c.pass ? 'PASS' : 'FAIL'];
  });
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((s, i) => (i <= 1 || i === 4 || i === 6 ? s.padEnd(w[i]) : s.padStart(w[i])))
      .join('  ')
      .trimEnd();
  const out = [line(head), line(w.map((n) => '-'.repeat(n))), ...rows.map(line)];
  if (opts.notes ?? true) {
    const notes = r.checks.filter((c) => c.note);
    if (notes.length) {
      out.push('', 'notes:');
      for (const c of notes) out.push(`  ${c.id}${c.pass ? '' : ' (FAIL)'}: ${c.note}`);
    }
  }
  const failed = r.checks.filter((c) => !c.pass);
  const secs = r.checks.reduce((s, c) => s + c.ms, 0) / 1000;
  out.push('', 'pass if: how the worst value over the instances is held to the tolerance (≤ tol for errors; < 0 or > 0 for a decrease or a cosine).');
  out.push(
    '',
    failed.length === 0
      ? `PASS: ${r.checks.length} of ${r.checks.length} properties hold (seed ${r.seed}, ${secs.toFixed(1)} s)`
      : `FAIL: ${failed.map((c) => c.id).join(', ')} (${failed.length} of ${r.checks.length}; seed ${r.seed}, ${secs.toFixed(1)} s)`,
  );
  return out.join('\n');
}

const jnum = (x: number): number | null => (Number.isFinite(x) ? x : null);

/** The JSON object of `crate-ts verify --json`: {pass, seed, checks: [{id, pass, worst, passIf, tolerance, instances, statement, measure, note?}]}. */
export function checksJson(r: ChecksSummary): { pass: boolean; seed: number; checks: Record<string, unknown>[] } {
  return {
    pass: r.pass,
    seed: r.seed,
    checks: r.checks.map((c) => {
      const o: Record<string, unknown> = {
        id: c.id,
        pass: c.pass,
        worst: jnum(c.worst),
        passIf: passIf(c.measure),
        tolerance: jnum(c.tolerance),
        instances: c.instances,
        statement: c.statement,
        measure: c.measure,
      };
      if (c.note !== undefined) o.note = c.note;
      return o;
    }),
  };
}
