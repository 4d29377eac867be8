// crate-ts sae eval, as a library function (README "Sparse autoencoders"): on contiguous windows of the
// block size over the first N tokens (the windows of neurons collect), with x the hook's activation
// and x̂ the SAE's reconstruction:
//   l0 = Σ_n #{j: h_nj > 0} / N;  fvu = Σ_n ‖x_n − x̂_n‖² / Σ_n ‖x_n − x̄‖² (x̄ the mean over the N tokens);
//   mse = Σ_n ‖x_n − x̂_n‖² / (N·D);  cosine = mean over tokens with x ≠ 0 and x̂ ≠ 0 of cos(x_n, x̂_n);
//   deadFraction = features never active on these tokens; denseFraction = active on more than 10%;
//   ceLossClean / ceLossSpliced (hook ← x̂) / ceLossZeroAbl (hook ← 0): mean next-token cross-entropy
//   over the positions of each window that have a next token inside it;
//   lossRecovered = (zero − spliced) / (zero − clean).
import type { Backend } from '../backend/types.js';
import { loadCheckpoint, modelFromCheckpoint, resolveCheckpointPath } from '../checkpoint/checkpoint.js';
import { CheckpointError, CrateError, DataError, UsageError } from '../errors.js';
import type { LanguageModel } from '../model/lm.js';
import type { Activation } from '../model/hooks.js';
import { checkpointTokens, resolveHooks } from '../neurons/collect.js';
import { sha256File } from '../util/hash.js';
import { checkSaeFits, loadSae } from './format.js';
import { ResidentSae } from './sae.js';

export interface SaeEvalOptions {
  dir: string;
  checkpoint: string;
  data?: string;
  split?: 'all' | 'train' | 'val';
  tokens?: number;
  batch?: number;
  backend: Backend<unknown>;
  cacheDir?: string | null;
}

export interface SaeEvalResult {
  sae: string;
  checkpoint: string;
  hook: string;
  d_in: number;
  d_sae: number;
  architecture: string;
  tokens: number;
  windows: number;
  l0: number;
  fvu: number;
  mse: number;
  cosine: number;
  deadFraction: number;
  denseFraction: number;
  ceLossClean: number;
  ceLossSpliced: number;
  ceLossZeroAbl: number;
  lossRecovered: number;
  backend: string;
}

function typed<T>(f: () => T, Kind: new (m: string, o?: { cause?: unknown }) => CrateError): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof CrateError) throw e;
    throw new Kind((e as Error).message, { cause: e });
  }
}

function dense(a: Activation, B: number, T: number, D: number): Float64Array {
  const out = new Float64Array(B * T * D);
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let i = 0; i < D; i++) out[(b * T + t) * D + i] = a.get(b, t, i);
  return out;
}

export async function evalSae(opts: SaeEvalOptions): Promise<SaeEvalResult> {
  const batch = opts.batch ?? 4;
  if (!Number.isInteger(batch) || batch < 1) throw new UsageError((n) => `${n('batch')} must be a positive integer, got ${batch}`, { option: 'batch' });
  if (opts.tokens !== undefined && (!Number.isInteger(opts.tokens) || opts.tokens < 1))
    throw new UsageError((n) => `${n('tokens')} must be a positive integer, got ${opts.tokens}`, { option: 'tokens' });
  const sae = loadSae(opts.dir);
  const ckFile = typed(() => resolveCheckpointPath(opts.checkpoint), CheckpointError);
  const ck = typed(() => loadCheckpoint(ckFile), CheckpointError);
  const model = typed(() => modelFromCheckpoint(ck, opts.backend), CheckpointError) as LanguageModel<unknown>;
  let rs: ResidentSae<unknown> | null = null;
  try {
    const hook = resolveHooks(model, sae.hookName, undefined).hooks[0];
    const D = model.hookShape(hook, 1, 1)[2];
    checkSaeFits(sae, D, sha256File(ckFile), hook);
    const S = sae.weights.S;
    const split = opts.split ?? 'all';
    const { ds, avail } = await checkpointTokens(ck, ckFile, { data: opts.data, cacheDir: opts.cacheDir, split });
    const T = ck.config.blockSize;
    const want = opts.tokens ?? Math.min(avail.length, 65536);
    if (want > avail.length) throw new DataError(`the data ('${ds.source}', ${split}) has ${avail.length} tokens, fewer than the ${want} asked for`);
    const nWin = Math.floor(want / T);
    if (nWin < 1) throw new DataError(`${want} tokens are fewer than one window of ${T} (the model's block size)`);
    const N = nWin * T;

    rs = new ResidentSae(opts.backend, D, S);
    rs.setWeights(sae.weights);
    const counts = new Float64Array(S);
    const sum = new Float64Array(D),
      sumSq = new Float64Array(D);
    let err = 0,
      cosSum = 0,
      cosN = 0,
      active = 0;
    const ce = { clean: 0, spliced: 0, zero: 0, count: 0 };
    for (let w = 0; w < nWin; w += batch) {
      const B = Math.min(batch, nWin - w);
      const ids = new Int32Array(B * T),
        targets = new Int32Array(B * T);
      for (let j = 0; j < B * T; j++) ids[j] = avail[w * T + j];
      for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) targets[b * T + t] = t + 1 < T ? ids[b * T + t + 1] : -1;
      const cnt = B * (T - 1);
      let x: Float64Array | null = null;
      const clean = model.runWithHooks(
        ids,
        B,
        T,
        {
          [hook]: (a) => {
            x = dense(a, B, T, D);
          },
        },
        { targets, returnLogits: false, grad: false },
      );
      const xs = x as unknown as Float64Array;
      const { h, xhat } = rs.encodeDecode(xs, B * T, sae.k, sae.applyBDec);
      for (let n = 0; n < B * T; n++) {
        let nx = 0,
          nh = 0,
          dot = 0;
        for (let i = 0; i < D; i++) {
          const a = xs[n * D + i],
            r = xhat[n * D + i];
          sum[i] += a;
          sumSq[i] += a * a;
          err += (a - r) ** 2;
          nx += a * a;
          nh += r * r;
          dot += a * r;
        }
        if (nx > 0 && nh > 0) {
          cosSum += dot / Math.sqrt(nx * nh);
          cosN++;
        }
        for (let j = 0; j < S; j++)
          if (h[n * S + j] > 0) {
            counts[j]++;
            active++;
          }
      }
      const spliced = model.runWithHooks(ids, B, T, { [hook]: () => xhat }, { targets, returnLogits: false, grad: false });
      const zero = model.runWithHooks(ids, B, T, { [hook]: () => new Float64Array(B * T * D) }, { targets, returnLogits: false, grad: false });
      if (cnt > 0) {
        ce.clean += (clean.loss ?? NaN) * cnt;
        ce.spliced += (spliced.loss ?? NaN) * cnt;
        ce.zero += (zero.loss ?? NaN) * cnt;
        ce.count += cnt;
      }
    }
    let varSum = 0;
    for (let i = 0; i < D; i++) varSum += sumSq[i] - (sum[i] * sum[i]) / N;
    let dead = 0,
      denseF = 0;
    for (let j = 0; j < S; j++) {
      if (counts[j] === 0) dead++;
      if (counts[j] > 0.1 * N) denseF++;
    }
    const clean = ce.clean / ce.count,
      spliced = ce.spliced / ce.count,
      zero = ce.zero / ce.count;
    return {
      sae: opts.dir,
      checkpoint: ckFile,
      hook,
      d_in: D,
      d_sae: S,
      architecture: sae.cfg.architecture,
      tokens: N,
      windows: nWin,
      l0: active / N,
      fvu: varSum > 0 ? err / varSum : NaN,
      mse: err / (N * D),
      cosine: cosN > 0 ? cosSum / cosN : NaN,
      deadFraction: dead / S,
      denseFraction: denseF / S,
      ceLossClean: clean,
      ceLossSpliced: spliced,
      ceLossZeroAbl: zero,
      lossRecovered: (zero - spliced) / (zero - clean),
      backend: opts.backend.name,
    };
  } finally {
    rs?.free();
    model.free();
  }
}
