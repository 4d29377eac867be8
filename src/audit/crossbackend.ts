// Cross-backend numerics audit: the same parameters and batch through several backends,
// every intermediate of the forward and every parameter gradient of the backward compared with
// the float64 reference run on the same (float32-rounded) parameters.
//
// Reported per layer and operator: max absolute and relative error, the error in float32 ulps at
// the reference value, where the worst element is, and the first operator (in execution order)
// whose output holds a NaN or Inf.
import type { Backend } from '../backend/types.js';
import { LanguageModel } from '../model/lm.js';
import type { ModelConfig } from '../model/config.js';
import { paramTable } from '../model/params.js';
import { ReferenceBackend } from '../backend/reference.js';
import { compareTensors, type CompareRow, type Tolerance } from './compare.js';
import { FIXTURE_TOLERANCE } from './tolerances.js';

export interface AuditRow extends CompareRow {
  direction: 'forward' | 'backward';
  layer: number;
  /** The worst element as a readable index, e.g. "[b=0, t=5, j=17]". */
  where: string;
}

export interface BackendAudit {
  backend: string;
  pass: boolean;
  loss: number;
  referenceLoss: number;
  /** First forward operator whose output is not finite on this backend, or null. */
  firstNonFinite: string | null;
  rows: AuditRow[];
}

interface Run {
  loss: number;
  acts: { name: string; layer: number; data: Float64Array }[];
  grads: Float64Array;
}

function runOn<Buf>(be: Backend<Buf>, config: ModelConfig, params: Float64Array, idx: Int32Array, targets: Int32Array, B: number, T: number): Run {
  const model = new LanguageModel(be, config, { params });
  try {
    model.zeroGrad();
    const { loss } = model.forward(idx, B, T, targets, { returnLogits: false });
    const acts = model.activations();
    model.backward();
    return { loss: loss as number, acts, grads: model.getGrads() };
  } finally {
    model.free();
  }
}

function describeIndex(name: string, i: number, T: number, width: number): string {
  if (name.startsWith('grad.')) return `[${i}]`;
  const row = Math.floor(i / width),
    j = i % width;
  return `[b=${Math.floor(row / T)}, t=${row % T}, j=${j}]`;
}

export function auditBackends(
  config: ModelConfig,
  params: Float64Array,
  idx: Int32Array,
  targets: Int32Array,
  B: number,
  T: number,
  backends: Backend<unknown>[],
): BackendAudit[] {
  // float32-rounded parameters, so that only arithmetic differs between the backends
  const p32 = params.map(Math.fround);
  const ref = runOn(new ReferenceBackend(), config, p32, idx, targets, B, T);
  const table = paramTable(config);
  const out: BackendAudit[] = [];
  for (const be of backends) {
    const tol: Tolerance = FIXTURE_TOLERANCE[be.name] ?? FIXTURE_TOLERANCE.cpu;
    const got = runOn(be, config, p32, idx, targets, B, T);
    const rows: AuditRow[] = [];
    let firstNonFinite: string | null = null;
    got.acts.forEach((a, k) => {
      const r = compareTensors(a.name, a.data, ref.acts[k].data, tol);
      if (firstNonFinite === null && a.data.some((x) => !Number.isFinite(x))) firstNonFinite = a.name;
      rows.push({ ...r, direction: 'forward', layer: a.layer, where: describeIndex(a.name, r.worstIndex, T, a.data.length / (B * T)) });
    });
    rows.push({ ...compareTensors('loss', [got.loss], [ref.loss], tol), direction: 'forward', layer: config.nLayer, where: '' });
    for (const p of table) {
      const m = /^transformer\.h\.(\d+)\./.exec(p.name);
      const layer = m ? Number(m[1]) : p.name.includes('ln_f') ? config.nLayer : -1;
      const r = compareTensors(`grad.${p.name}`, got.grads.subarray(p.offset, p.offset + p.size), ref.grads.subarray(p.offset, p.offset + p.size), tol);
      rows.push({ ...r, direction: 'backward', layer, where: describeIndex(r.name, r.worstIndex, T, 1) });
    }
    out.push({ backend: be.name, pass: rows.every((r) => r.pass), loss: got.loss, referenceLoss: ref.loss, firstNonFinite, rows });
  }
  return out;
}

const fmt = (x: number): string => (Number.isFinite(x) ? x.toExponential(2) : String(x));

export function formatAudit(a: BackendAudit): string {
  const head = ['dir', 'layer', 'operator / tensor', 'max abs', 'max rel', 'max ulp(f32)', 'worst at', 'ok'];
  const body = a.rows.map((r) => [
    r.direction === 'forward' ? 'fwd' : 'bwd',
    r.layer < 0 ? 'emb' : String(r.layer),
    r.name,
    fmt(r.maxAbsErr),
    fmt(r.maxRelErr),
    fmt(r.maxUlpF32),
    r.where,
    r.pass ? 'ok' : 'FAIL',
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (c: string[]) => c.map((x, i) => (i === 2 || i === 6 ? x.padEnd(w[i]) : x.padStart(w[i]))).join('  ');
  return [
    `backend ${a.backend} vs float64 reference: loss ${a.loss} vs ${a.referenceLoss}; first non-finite: ${a.firstNonFinite ?? 'none'}`,
    line(head),
    w.map((x) => '-'.repeat(x)).join('  '),
    ...body.map(line),
  ].join('\n');
}
