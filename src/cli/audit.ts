// crate-ts audit --fixture FILE [--backend reference|cpu|cuda|auto] [--json]
import { parse, strOpt } from './args.js';
import { loadFixture, auditFixture } from '../audit/fixture.js';
import { formatTable, jsonNumber } from '../audit/compare.js';
import { FIXTURE_TOLERANCE } from '../audit/tolerances.js';
import { resolveBackend } from './backend.js';

const HELP = `usage: crate-ts audit --fixture FILE [--backend reference|cpu|cuda|auto] [--json]

Loads a fixture (parameters, a batch, and the logits, loss and gradients another implementation
computed), runs forward and backward on the backend, and prints one row per compared tensor:
max absolute error, max relative error, tolerance, ok. Exits 1 if any row fails.`;

export async function run(argv: string[]): Promise<number> {
  const v = parse(argv, { fixture: { type: 'string' }, backend: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } });
  if (v.help) { console.log(HELP); return 0; }
  const path = strOpt(v, 'fixture');
  if (!path) { console.error(`crate-ts audit: --fixture FILE is required\n\n${HELP}`); return 2; }
  const { backend, report } = await resolveBackend(strOpt(v, 'backend') ?? 'reference');
  const fx = loadFixture(path);
  const tol = FIXTURE_TOLERANCE[backend.name];
  const res = auditFixture(fx, backend, tol);
  if (v.json) {
    console.log(JSON.stringify({
      pass: res.pass, backend: res.backend, fixture: res.fixture,
      tensors: res.rows.map((r) => ({ name: r.name, maxAbsErr: jsonNumber(r.maxAbsErr), maxRelErr: jsonNumber(r.maxRelErr), atol: r.atol, rtol: r.rtol, pass: r.pass })),
    }));
  } else {
    console.log(`fixture ${path}: ${fx.config.arch}, L=${fx.config.nLayer}, d=${fx.config.nEmbd}, heads=${fx.config.nHead}, V=${fx.config.vocabSize}, batch ${fx.B}x${fx.T}`);
    console.log(report);
    console.log(formatTable(res.rows));
    const bad = res.rows.filter((r) => !r.pass);
    console.log(res.pass ? `PASS: ${res.rows.length} tensors within tolerance` : `FAIL: ${bad.length} of ${res.rows.length} tensors out of tolerance: ${bad.map((r) => r.name).join(', ')}`);
  }
  return res.pass ? 0 : 1;
}
