// crate-ts verify [--seed N] [--json] [--only P5,P7]
// crate-ts verify --checkpoint CKPT|RUN_DIR [--data FILE] [--seq T] [--windows N] [--batch B] [--svg FILE] [--backend NAME] [--json]
import { parse, intOpt, strOpt } from './args.js';
import { runChecks, CHECK_IDS } from '../verify/properties.js';
import { formatChecksTable, checksJson } from '../verify/report.js';
import { UsageError, DataError } from '../errors.js';
import { writeFileAtomic } from '../util/atomic.js';

const HELP = `usage: crate-ts verify [--seed N] [--json] [--only P5,P7]
       crate-ts verify --checkpoint CKPT|RUN_DIR [--data PATH] [--seq T] [--windows N] [--batch B]
                       [--svg FILE] [--backend reference|cpu|cuda|auto] [--threads N] [--json]

Without --checkpoint: checks the mathematical properties of spec section 4 (${CHECK_IDS[0]}..${CHECK_IDS[CHECK_IDS.length - 1]}) on random
instances drawn from --seed (default 0) and prints one row per property: id, statement, instances
tried, worst observed value of the property's measure, how it must compare with the tolerance to
pass ("pass if": ≤ tol for an error; < tol or > tol with tol 0 for a decrease or a cosine), the
tolerance, pass. Exit code 0 iff all pass.
  --seed N       seed of the random instances (default 0)
  --only P5,P7   run only these properties (default: all)
  --json         print {pass, seed, checks: [{id, pass, worst, passIf, tolerance, instances, statement, measure, note?}]}

With --checkpoint (a run directory, or a checkpoint file in it): layer-wise diagnostics of a
trained model (spec E21) on validation windows of --data (a text file, directory or nanoGPT .bin;
default the embedded corpus): per layer the coding
rate R^c of the unit-normalised heads of U*ᵀLN(Z) with ε² = 0.01, the fraction of exactly-zero ISTA
codes, the mean L0 per token and the dead codes. --svg FILE also writes a chart.
  --seq T        window length (default min(64, block size))
  --windows N    number of validation windows (default 16)
  --batch B      windows per forward (default 4)
  --backend NAME reference | cpu | cuda | auto (default auto: cuda, else cpu, else reference)
  --threads N    worker threads for native backends, 1..256 (default: all cores)
  --json         print {checkpoint, config, data, split, layers: [...], sequences, tokens, seqLen, e}`;

export async function run(argv: string[]): Promise<number> {
  const v = parse(argv, {
    seed: { type: 'string' },
    json: { type: 'boolean' },
    only: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
    checkpoint: { type: 'string' },
    data: { type: 'string' },
    seq: { type: 'string' },
    windows: { type: 'string' },
    batch: { type: 'string' },
    svg: { type: 'string' },
    backend: { type: 'string' },
    threads: { type: 'string' },
  });
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  const ckpt = strOpt(v, 'checkpoint');
  if (ckpt !== undefined) return diagnostics(v, ckpt);
  for (const flag of ['data', 'seq', 'windows', 'batch', 'svg', 'backend', 'threads']) {
    if (v[flag] !== undefined) {
      console.error(`crate-ts verify: --${flag} only applies with --checkpoint\n\n${HELP}`);
      return 2;
    }
  }
  const seed = intOpt(v, 'seed', 0, 0);
  const onlyRaw = strOpt(v, 'only');
  const only =
    onlyRaw === undefined
      ? undefined
      : onlyRaw
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s.length);
  if (only !== undefined && only.length === 0) {
    console.error('crate-ts verify: --only needs a comma-separated list of property ids, e.g. --only P5,P7');
    return 2;
  }
  const summary = runChecks({ seed, only });
  if (v.json) console.log(JSON.stringify(checksJson(summary)));
  else console.log(formatChecksTable(summary));
  return summary.pass ? 0 : 1;
}

async function diagnostics(v: Record<string, string | boolean | undefined>, file: string): Promise<number> {
  // Loaded lazily: the property checks need none of this.
  const { loadCheckpoint, modelFromCheckpoint } = await import('../checkpoint/checkpoint.js');
  const { loadDataset, EMBEDDED_NAME } = await import('../data/corpus.js');
  const { loadTokenizer } = await import('../data/tokenizer.js');
  const { evalBatches } = await import('../data/batches.js');
  const { resolveBackend, backendOption } = await import('./backend.js');
  const { resolveCheckpointPath } = await import('../checkpoint/checkpoint.js');
  const { layerDiagnostics, formatDiagnostics, diagnosticsSvg } = await import('../verify/diagnostics.js');

  const backendName = backendOption(v);
  const threads = v.threads !== undefined ? intOpt(v, 'threads', 0, 1) : undefined;
  if (threads !== undefined && threads > 256) throw new UsageError(`--threads must be from 1 to 256, got ${threads}`);
  file = resolveCheckpointPath(file);
  const ck = loadCheckpoint(file);
  const cfg = ck.config;
  const T = intOpt(v, 'seq', Math.min(64, cfg.blockSize), 1);
  if (T > cfg.blockSize) throw new UsageError(`--seq ${T} exceeds the model's block size ${cfg.blockSize}`);
  const windows = intOpt(v, 'windows', 16, 1),
    B = intOpt(v, 'batch', 4, 1);
  const { backend, report } = await resolveBackend(backendName, { threads });
  const tok = await loadTokenizer(ck.tokenizer, ck.tokenizerVocab);
  let data = strOpt(v, 'data');
  if (data === undefined && ck.train && ck.train.data.source !== EMBEDDED_NAME) data = ck.train.data.source;
  const ds = await loadDataset({ data, tokenizer: tok, cacheDir: null });
  const tokens = ds.val.length >= T + 1 ? ds.val : ds.train;
  for (let i = 0; i < tokens.length; i++) {
    if (tokens[i] >= cfg.vocabSize) throw new DataError(`token ${i} of '${ds.source}' has id ${tokens[i]}, outside the model's vocabulary of ${cfg.vocabSize}`);
  }
  const batches = evalBatches(tokens, B, T, windows).map((b) => ({ idx: b.x, B: b.x.length / T, T }));
  const model = modelFromCheckpoint(ck, backend);
  try {
    const r = layerDiagnostics(model, batches);
    const svgPath = strOpt(v, 'svg');
    if (svgPath) writeSvg(svgPath, diagnosticsSvg(r, `${cfg.arch}: ${cfg.nLayer} layers, d ${cfg.nEmbd} (${shortName(file)})`));
    if (v.json) {
      console.log(JSON.stringify({ checkpoint: file, config: cfg, data: ds.source, split: ds.val.length >= T + 1 ? 'val' : 'train', ...r }));
    } else {
      console.log(`checkpoint ${file}: ${cfg.arch}, L=${cfg.nLayer}, d=${cfg.nEmbd}, heads=${cfg.nHead}, V=${cfg.vocabSize}; ${report}`);
      console.log(`data ${ds.source}: ${r.sequences} windows × ${T} tokens; R^c with ε² = ${r.e} on unit-normalised heads (spec E21)`);
      console.log(formatDiagnostics(r));
      if (svgPath) console.log(`wrote ${svgPath}`);
    }
  } finally {
    model.free();
  }
  return 0;
}

/** "run/model.safetensors" for a title: the file and its directory, not the whole path. */
function shortName(file: string): string {
  const parts = file.split(/[\\/]/).filter(Boolean);
  return parts.slice(-2).join('/');
}

/** Write atomically; a failure is one line naming the file. */
function writeSvg(file: string, svg: string): void {
  try {
    writeFileAtomic(file, svg);
  } catch (e) {
    throw new UsageError(`--svg ${file} cannot be written (${(e as Error).message.replace(/^cannot write '[^']*': /, '')})`);
  }
}
