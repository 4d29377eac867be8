// crate-ts audit --fixture FILE [--backend NAME] [--json]
// crate-ts audit --checkpoint FILE [--data FILE] --backends cpu,reference [--batch B] [--seq T] [--json]
import { parse, strOpt, intOpt } from './args.js';
import { loadFixture, auditFixture } from '../audit/fixture.js';
import { formatTable, jsonNumber } from '../audit/compare.js';
import { FIXTURE_TOLERANCE } from '../audit/tolerances.js';
import { resolveBackend } from './backend.js';
import type { Backend } from '../backend/types.js';

const HELP = `usage: crate-ts audit --fixture FILE [--backend reference|cpu|cuda|auto] [--json]
       crate-ts audit --checkpoint FILE [--data FILE] [--backends cpu,reference,cuda] [--batch B] [--seq T] [--json]

--fixture: loads a fixture (parameters, a batch, and the logits, loss and gradients another
implementation computed), runs forward and backward on the backend, and prints one row per
compared tensor: max absolute error, max relative error, tolerance, ok.

--checkpoint: runs one batch of validation windows (from --data, default the embedded corpus)
through every backend in --backends (default: cpu and cuda where available) and compares each with
the float64 reference on the same float32-rounded parameters: per layer and operator, forward
(every intermediate) and backward (every parameter gradient): max abs / rel error, error in float32
ulps, the worst element's position, and the first operator whose output holds a NaN or Inf.

Exit code 1 if any row is out of tolerance.`;

export async function run(argv: string[]): Promise<number> {
  const v = parse(argv, {
    fixture: { type: 'string' }, checkpoint: { type: 'string' }, data: { type: 'string' }, backend: { type: 'string' },
    backends: { type: 'string' }, batch: { type: 'string' }, seq: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  });
  if (v.help) { console.log(HELP); return 0; }
  const checkpoint = strOpt(v, 'checkpoint');
  if (checkpoint) return auditCheckpoint(v, checkpoint);
  const path = strOpt(v, 'fixture');
  if (!path) { console.error(`crate-ts audit: --fixture FILE or --checkpoint FILE is required\n\n${HELP}`); return 2; }
  const { backend, report } = await resolveBackend(strOpt(v, 'backend') ?? 'reference');
  const fx = loadFixture(path);
  const res = auditFixture(fx, backend, FIXTURE_TOLERANCE[backend.name]);
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

async function auditCheckpoint(v: Record<string, string | boolean | undefined>, file: string): Promise<number> {
  const { loadCheckpoint } = await import('../checkpoint/checkpoint.js');
  const { loadDataset, checkVocab } = await import('../data/corpus.js');
  const { loadTokenizer } = await import('../data/tokenizer.js');
  const { evalBatches } = await import('../data/batches.js');
  const { auditBackends, formatAudit } = await import('../audit/crossbackend.js');
  const { LanguageModel } = await import('../model/lm.js');
  const { ReferenceBackend } = await import('../backend/reference.js');
  const { loadStateDict } = await import('../checkpoint/statedict.js');

  const ck = loadCheckpoint(file);
  const cfg = ck.config;
  const T = intOpt(v, 'seq', Math.min(64, cfg.blockSize), 1), B = intOpt(v, 'batch', 2, 1);
  if (T > cfg.blockSize) throw new Error(`--seq ${T} exceeds the model's block size ${cfg.blockSize}`);
  const explicit = strOpt(v, 'backends');
  const names = (explicit ?? 'cpu,cuda').split(',').map((s) => s.trim()).filter((s) => s && s !== 'reference');
  const backends: Backend<unknown>[] = [];
  const notes: string[] = [];
  for (const n of names) {
    try { backends.push((await resolveBackend(n)).backend); } catch (e) {
      if (explicit) throw e;
      notes.push(`(skipping ${n}: ${(e as Error).message})`);
    }
  }
  const tok = await loadTokenizer(ck.tokenizer);
  const ds = await loadDataset({ data: strOpt(v, 'data'), tokenizer: tok });
  checkVocab(ds, cfg.vocabSize);
  const tokens = ds.val.length >= T + 1 ? ds.val : ds.train;
  const batch = evalBatches(tokens, B, T, B)[0];
  const Bn = batch.x.length / T;
  // parameters as float64 on the host
  const host = new LanguageModel(new ReferenceBackend(), cfg, { seed: 0 });
  loadStateDict(host as never, ck.file.tensors, file);
  const audits = auditBackends(cfg, host.getParams(), batch.x, batch.y, Bn, T, backends);
  const pass = audits.every((a) => a.pass);
  if (v.json) {
    console.log(JSON.stringify({
      pass, checkpoint: file, data: ds.source, batch: [Bn, T],
      backends: audits.map((a) => ({
        backend: a.backend, pass: a.pass, loss: a.loss, referenceLoss: a.referenceLoss, firstNonFinite: a.firstNonFinite,
        rows: a.rows.map((r) => ({ direction: r.direction, layer: r.layer, name: r.name, maxAbsErr: jsonNumber(r.maxAbsErr), maxRelErr: jsonNumber(r.maxRelErr), maxUlpF32: jsonNumber(r.maxUlpF32), where: r.where, pass: r.pass })),
      })),
    }));
  } else {
    for (const n of notes) console.log(n);
    console.log(`checkpoint ${file}: ${cfg.arch}, L=${cfg.nLayer}, d=${cfg.nEmbd}, heads=${cfg.nHead}, V=${cfg.vocabSize}; data ${ds.source}: ${Bn} windows x ${T} tokens`);
    for (const a of audits) console.log(`\n${formatAudit(a)}`);
    if (audits.length === 0) console.log('no native backend to audit (only the reference is available)');
    console.log(pass ? '\nPASS' : `\nFAIL: ${audits.filter((a) => !a.pass).map((a) => a.backend).join(', ')} out of tolerance`);
  }
  return pass ? 0 : 1;
}
