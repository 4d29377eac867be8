// crate-ts audit --fixture FILE [--backend NAME] [--json]
// crate-ts audit --checkpoint FILE [--data FILE] --backends cpu,reference [--batch B] [--seq T] [--json]
import { parse, strOpt, intOpt } from './args.js';
import { loadFixture, auditFixture } from '../audit/fixture.js';
import { formatTable, jsonNumber } from '../audit/compare.js';
import { FIXTURE_TOLERANCE } from '../audit/tolerances.js';
import { resolveBackend } from './backend.js';
import type { Backend } from '../backend/types.js';
import { UsageError, DataError } from '../errors.js';
import { resolveCheckpointPath } from '../checkpoint/checkpoint.js';

const HELP = `usage: crate-ts audit --fixture FILE [--backend LIST] [--json]
       crate-ts audit --checkpoint CKPT|RUN_DIR [--data FILE] [--backend LIST] [--batch B] [--seq T] [--json]

  --backend LIST   backends to audit, comma-separated: reference, cpu, cuda or auto (default auto:
                   with --fixture the best available backend; with --checkpoint every available
                   native backend). --backends is accepted as a synonym.
  --batch B        (--checkpoint) validation windows in the batch (default 2)
  --seq T          (--checkpoint) tokens per window (default min(64, block size))
  --data FILE      (--checkpoint) text for the windows (default the embedded corpus)
  --json           one JSON object on stdout

--fixture: loads a fixture (parameters, a batch, and the logits, loss and gradients another
implementation computed), runs forward and backward on the backend, and prints one row per
compared tensor: max absolute error, max relative error, tolerance, ok.

--checkpoint: runs one batch of validation windows (from --data, default the embedded corpus)
through every backend in --backends (default: cpu and cuda where available) and compares each with
the float64 reference on the same float32-rounded parameters: per layer and operator, forward
(every intermediate) and backward (every parameter gradient): max abs / rel error, error in float32
ulps, the worst element's position, and the first operator whose output holds a NaN or Inf.

--checkpoint compares native backends with the reference, so it needs at least one native backend:
an audit that compared nothing fails (exit 1). Options of the other mode are refused (exit 2).
Exit code 1 if any row is out of tolerance.`;

export async function run(argv: string[]): Promise<number> {
  const v = parse(argv, {
    fixture: { type: 'string' },
    checkpoint: { type: 'string' },
    data: { type: 'string' },
    backend: { type: 'string' },
    backends: { type: 'string' },
    batch: { type: 'string' },
    seq: { type: 'string' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  if (v.backend !== undefined && v.backends !== undefined) throw new UsageError('give --backend or its synonym --backends, not both');
  const list = strOpt(v, 'backend') ?? strOpt(v, 'backends');
  const checkpoint = strOpt(v, 'checkpoint'),
    path = strOpt(v, 'fixture');
  if (checkpoint && path) throw new UsageError('--fixture and --checkpoint are two modes; give one');
  if (checkpoint) return auditCheckpoint(v, resolveCheckpointPath(checkpoint), list);
  if (!path) throw new UsageError('--fixture FILE or --checkpoint CKPT is required (crate-ts help audit)');
  for (const k of ['data', 'batch', 'seq'] as const) if (v[k] !== undefined) throw new UsageError(`--${k} applies to --checkpoint audits, not to --fixture`);
  const fx = loadFixture(path);
  const backends: Backend<unknown>[] = [],
    reports: string[] = [];
  for (const n of parseBackendList(list ?? 'auto')) {
    const r = await resolveBackend(n);
    backends.push(r.backend);
    reports.push(r.report);
  }
  const results = backends.map((be) => auditFixture(fx, be, FIXTURE_TOLERANCE[be.name]));
  const pass = results.every((r) => r.pass);
  if (v.json) {
    const one = (res: (typeof results)[number]) => ({
      pass: res.pass,
      backend: res.backend,
      fixture: res.fixture,
      tensors: res.rows.map((r) => ({
        name: r.name,
        maxAbsErr: jsonNumber(r.maxAbsErr),
        maxRelErr: jsonNumber(r.maxRelErr),
        atol: r.atol,
        rtol: r.rtol,
        pass: r.pass,
      })),
    });
    console.log(JSON.stringify(results.length === 1 ? one(results[0]) : { pass, fixture: path, backends: results.map(one) }));
  } else {
    console.log(
      `fixture ${path}: ${fx.config.arch}, L=${fx.config.nLayer}, d=${fx.config.nEmbd}, heads=${fx.config.nHead}, V=${fx.config.vocabSize}, batch ${fx.B}x${fx.T}`,
    );
    results.forEach((res, i) => {
      console.log(reports[i]);
      console.log(formatTable(res.rows));
      const bad = res.rows.filter((r) => !r.pass);
      console.log(
        res.pass
          ? `PASS (${res.backend}): ${res.rows.length} tensors within tolerance`
          : `FAIL (${res.backend}): ${bad.length} of ${res.rows.length} tensors out of tolerance: ${bad.map((r) => r.name).join(', ')}`,
      );
    });
  }
  return pass ? 0 : 1;
}

/** 'cpu,cuda' → ['cpu', 'cuda']; every entry must be a backend name or auto. */
function parseBackendList(list: string): string[] {
  const names = list
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (names.length === 0) throw new UsageError('--backend needs at least one name: reference, cpu, cuda or auto');
  for (const n of names)
    if (!['reference', 'cpu', 'cuda', 'auto'].includes(n)) throw new UsageError(`--backend: unknown backend '${n}' (reference, cpu, cuda or auto)`);
  return [...new Set(names)];
}

async function auditCheckpoint(v: Record<string, string | boolean | undefined>, file: string, list: string | undefined): Promise<number> {
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
  const T = intOpt(v, 'seq', Math.min(64, cfg.blockSize), 1),
    B = intOpt(v, 'batch', 2, 1);
  if (T > cfg.blockSize) throw new UsageError(`--seq ${T} exceeds the model's block size ${cfg.blockSize}`);
  const explicit = list !== undefined && list.trim() !== 'auto';
  const asked = parseBackendList(list ?? 'auto');
  if (explicit && asked.every((n) => n === 'reference'))
    throw new UsageError(
      '--checkpoint audits compare native backends with the float64 reference; --backend reference alone compares nothing (name cpu and/or cuda)',
    );
  const names = asked.flatMap((n) => (n === 'auto' ? ['cpu', 'cuda'] : n === 'reference' ? [] : [n]));
  const backends: Backend<unknown>[] = [];
  const notes: string[] = [];
  for (const n of [...new Set(names)]) {
    try {
      backends.push((await resolveBackend(n)).backend);
    } catch (e) {
      if (explicit) throw e;
      notes.push(`(skipping ${n}: ${(e as Error).message})`);
    }
  }
  if (backends.length === 0) {
    throw new DataError(
      `no native backend is available to audit against the reference (${notes.join('; ') || 'none found'}); an audit that compares nothing cannot pass`,
    );
  }
  const tok = await loadTokenizer(ck.tokenizer, ck.tokenizerVocab);
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
    console.log(
      JSON.stringify({
        pass,
        checkpoint: file,
        data: ds.source,
        batch: [Bn, T],
        backends: audits.map((a) => ({
          backend: a.backend,
          pass: a.pass,
          loss: a.loss,
          referenceLoss: a.referenceLoss,
          firstNonFinite: a.firstNonFinite,
          rows: a.rows.map((r) => ({
            direction: r.direction,
            layer: r.layer,
            name: r.name,
            maxAbsErr: jsonNumber(r.maxAbsErr),
            maxRelErr: jsonNumber(r.maxRelErr),
            maxUlpF32: jsonNumber(r.maxUlpF32),
            where: r.where,
            pass: r.pass,
          })),
        })),
      }),
    );
  } else {
    for (const n of notes) console.log(n);
    console.log(
      `checkpoint ${file}: ${cfg.arch}, L=${cfg.nLayer}, d=${cfg.nEmbd}, heads=${cfg.nHead}, V=${cfg.vocabSize}; data ${ds.source}: ${Bn} windows x ${T} tokens`,
    );
    for (const a of audits) console.log(`\n${formatAudit(a)}`);
    console.log(
      pass
        ? '\nPASS'
        : `\nFAIL: ${audits
            .filter((a) => !a.pass)
            .map((a) => a.backend)
            .join(', ')} out of tolerance`,
    );
  }
  return pass ? 0 : 1;
}
