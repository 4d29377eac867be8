// crate-ts sae train, as a library function (README "Sparse autoencoders"). Prints nothing; the CLI
// reports progress through onProgress and stops through shouldStop.
import { crateTsVersion } from '../util/version.js';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Backend } from '../backend/types.js';
import { loadCheckpoint, modelFromCheckpoint, resolveCheckpointPath } from '../checkpoint/checkpoint.js';
import { loadDataset, EMBEDDED_NAME } from '../data/corpus.js';
import { loadTokenizer } from '../data/tokenizer.js';
import { CheckpointError, CrateError, DataError, NumericsError, UsageError } from '../errors.js';
import { readSafetensors, serializeSafetensors, toFloat64, type TensorInput } from '../io/safetensors.js';
import type { LanguageModel } from '../model/lm.js';
import { writeFileAtomic } from '../util/atomic.js';
import { resolveHooks } from '../neurons/collect.js';
import { sha256File } from '../util/hash.js';
import { Rng } from '../util/rng.js';
import { ActivationBuffer } from './buffer.js';
import {
  CFG_FILE,
  STATE_FILE,
  TRAIN_LOG_FILE,
  loadSae,
  writeCfg,
  writeSparsity,
  writeWeights,
  type CrateSaeBlock,
  type SaeArch,
  type SaeCfg,
  type SaeWeights,
} from './format.js';
import { ResidentSae, saeLayout } from './sae.js';

/** The paper's shapes (spec 7.6): 16x features on 512 neurons, lr 4e-4, L1 8e-5. */
export const PAPER = { dIn: 512, expansion: 16, lr: 4e-4, l1: 8e-5, batchTokens: 4096 };

export interface SaeTrainOptions {
  checkpoint?: string;
  layer?: number;
  hook?: string;
  expansion?: number;
  arch?: SaeArch;
  l1?: number;
  k?: number;
  auxK?: number;
  auxCoef?: number;
  deadTokens?: number;
  lr?: number;
  warmupSteps?: number;
  tokens?: number;
  batchTokens?: number;
  bufferTokens?: number;
  data?: string;
  seed?: number;
  resampleAt?: number[];
  out: string;
  /** Continue the run in `out` (its cfg.json and optimizer state). */
  resume?: boolean;
  backend: Backend<unknown>;
  cacheDir?: string | null;
  /** Steps between train.jsonl lines and progress reports (default 10). */
  logEvery?: number;
  /** Steps between saves (default 500; 0 = only at the end). */
  saveEvery?: number;
  /** Memory the run may use, in bytes (default 80% of the machine's). */
  memoryLimit?: number;
  onProgress?: (p: SaeProgress) => void;
  /** Polled after every step: true saves and stops. */
  shouldStop?: () => boolean;
}

export interface SaeProgress {
  step: number;
  steps: number;
  tokens: number;
  loss: number;
  fvu: number;
  l0: number;
  deadFraction: number;
  lr: number;
  tokensPerSec: number;
  eta: number;
}

export interface SaeTrainSummary {
  dir: string;
  steps: number;
  tokens: number;
  stopped: boolean;
  tokensPerSec: number;
  peakRssBytes: number;
  last: SaeProgress | null;
}

/** Defaults, scaled from the paper's (README "Sparse autoencoders"). */
export function saeDefaults(D: number, S: number, arch: SaeArch, batchTokens: number) {
  return {
    // lr ∝ 1/sqrt(d_sae) (the scaling OpenAI fitted for SAEs), 4e-4 at the paper's 8192 features
    lr: PAPER.lr * Math.sqrt((PAPER.dIn * PAPER.expansion) / S),
    // λ: the paper's 8e-5 per token summed over a 4096-token batch (see README "Sparse autoencoders"), per token here
    l1: arch === 'relu' ? PAPER.l1 * PAPER.batchTokens : 0,
    k: Math.min(S, 32),
    auxK: Math.min(S, Math.max(1, Math.floor(D / 2)), 256),
    auxCoef: 1 / 32,
    batchTokens,
  };
}

function assertInt(v: number | undefined, name: string, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (v !== undefined && (!Number.isInteger(v) || v < min || v > max)) throw new UsageError(`--${name} must be an integer in ${min}..${max}, got ${v}`);
}

function typed<T>(f: () => T, Kind: new (m: string, o?: { cause?: unknown }) => CrateError): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof CrateError) throw e;
    throw new Kind((e as Error).message, { cause: e });
  }
}

/** Kaiming-uniform (PyTorch's default a = 0: bound sqrt(6 / fan_in)) from a seeded stream. */
function kaiming(rng: Rng, n: number, fanIn: number): Float64Array {
  const b = Math.sqrt(6 / fanIn);
  return Float64Array.from({ length: n }, () => Math.fround((2 * rng.uniform() - 1) * b));
}

/** Train (or resume) an SAE; see the module comment. */
export async function trainSae(opts: SaeTrainOptions): Promise<SaeTrainSummary> {
  const tStart = performance.now();
  const out = opts.out;
  let prev: SaeCfg | null = null;
  if (opts.resume) {
    const cfgPath = path.join(out, CFG_FILE);
    if (!fs.existsSync(cfgPath)) throw new DataError(`--resume '${out}': no ${CFG_FILE} (not an SAE run directory)`);
    prev = loadSae(out).cfg;
    if (!prev.crate_ts) throw new DataError(`--resume '${out}': cfg.json has no crate_ts block (not trained by crate-ts sae train)`);
    if (!fs.existsSync(path.join(out, STATE_FILE))) throw new DataError(`--resume '${out}': no ${STATE_FILE} (the optimizer state --resume needs)`);
  } else if (fs.existsSync(path.join(out, CFG_FILE))) {
    throw new UsageError(`--out '${out}' already holds an SAE (cfg.json); pass --resume ${out} to continue it, or choose another directory`);
  }
  const pc = prev?.crate_ts;
  const arch: SaeArch = pc ? pc.recipe.arch : (opts.arch ?? 'relu');
  if (arch !== 'relu' && arch !== 'topk') throw new UsageError(`--arch must be relu or topk, got '${String(arch)}'`);
  const ckArg = opts.checkpoint ?? pc?.checkpoint_path;
  if (!ckArg) throw new UsageError('--checkpoint is required');
  const seed = pc ? pc.seed : (opts.seed ?? 0);
  assertInt(opts.seed, 'seed', 0, 2 ** 31 - 1);
  assertInt(opts.expansion, 'expansion', 1, 1024);
  assertInt(opts.tokens, 'tokens', 1);
  assertInt(opts.batchTokens, 'batch-tokens', 1, 1 << 20);
  assertInt(opts.bufferTokens, 'buffer-tokens', 2);
  assertInt(opts.warmupSteps, 'warmup-steps', 0);
  if (opts.l1 !== undefined && !(Number.isFinite(opts.l1) && opts.l1 >= 0)) throw new UsageError(`--l1 must be a finite number >= 0, got ${opts.l1}`);
  if (opts.lr !== undefined && !(Number.isFinite(opts.lr) && opts.lr > 0)) throw new UsageError(`--lr must be a positive number, got ${opts.lr}`);
  if (opts.k !== undefined && (!Number.isInteger(opts.k) || opts.k <= 0)) throw new UsageError(`--k must be a positive integer, got ${opts.k}`);

  // checkpoint, hook, data
  const ckFile = typed(() => resolveCheckpointPath(ckArg), CheckpointError);
  const ck = typed(() => loadCheckpoint(ckFile), CheckpointError);
  const ckSha = sha256File(ckFile);
  if (pc && pc.checkpoint_sha256 !== ckSha)
    throw new DataError(
      `--resume '${out}': the SAE was trained on another checkpoint (sha256 ${pc.checkpoint_sha256.slice(0, 12)}…, '${ckFile}' is ${ckSha.slice(0, 12)}…)`,
    );
  const model = typed(() => modelFromCheckpoint(ck, opts.backend), CheckpointError) as LanguageModel<unknown>;
  let sae: ResidentSae<unknown> | null = null;
  try {
    const layer = pc ? pc.layer : opts.layer;
    if (layer === undefined) throw new UsageError('--layer is required');
    const { hooks } = resolveHooks(model, prev ? prev.metadata.hook_name : (opts.hook ?? 'hook_neurons'), [layer]);
    const hook = hooks[0];
    const D = model.hookShape(hook, 1, 1)[2];
    const expansion = pc ? pc.recipe.expansion : (opts.expansion ?? 16);
    const S = D * expansion;
    const batchTokens = pc ? pc.recipe.batch_tokens : (opts.batchTokens ?? 4096);
    const def = saeDefaults(D, S, arch, batchTokens);
    const k = pc ? (pc.recipe.k ?? S) : arch === 'topk' ? (opts.k ?? def.k) : S;
    if (arch === 'topk' && k > S) throw new UsageError(`--k ${k} exceeds d_sae = ${S} (${D} × expansion ${expansion})`);
    if (arch === 'relu' && opts.k !== undefined && !pc) throw new UsageError('--k applies to --arch topk only');
    const l1 = pc ? (pc.recipe.l1 ?? 0) : arch === 'relu' ? (opts.l1 ?? def.l1) : 0;
    if (arch === 'topk' && opts.l1 !== undefined && !pc) throw new UsageError('--l1 applies to --arch relu only (topk has no L1 term)');
    const lr = pc ? pc.recipe.lr : (opts.lr ?? def.lr);
    const totalTokens = opts.tokens ?? pc?.recipe.tokens ?? 1_000_000;
    const steps = Math.max(1, Math.floor(totalTokens / batchTokens));
    const bufferTokens = pc ? pc.recipe.buffer_tokens : (opts.bufferTokens ?? Math.max(2 * batchTokens, Math.min(1 << 17, 32 * batchTokens)));
    if (bufferTokens < 2 * batchTokens) throw new UsageError(`--buffer-tokens ${bufferTokens} must be at least twice --batch-tokens ${batchTokens}`);
    const warmup = pc ? pc.recipe.warmup_steps : (opts.warmupSteps ?? Math.min(1000, Math.floor(steps / 20)));
    const resampleAt = pc ? pc.recipe.resample_at : (opts.resampleAt ?? (arch === 'relu' ? [10000, 20000, 50000, 75000, 100000] : []));
    for (const r of resampleAt) if (!Number.isInteger(r) || r < 1) throw new UsageError(`--resample-at takes positive step numbers, got ${r}`);
    const auxK = pc ? (pc.recipe.aux_k ?? def.auxK) : def.auxK;
    const auxCoef = pc ? (pc.recipe.aux_coef ?? def.auxCoef) : (opts.auxCoef ?? def.auxCoef);
    const deadTokens = pc ? (pc.recipe.dead_tokens ?? 0) : (opts.deadTokens ?? Math.min(10_000_000, Math.max(batchTokens, Math.floor(totalTokens / 10))));
    assertInt(deadTokens, 'dead-tokens', 1);
    const beta1 = 0.9,
      beta2 = 0.999;

    // memory, estimated before allocating anything large
    const f = opts.backend.dtype === 'f64' ? 8 : 4;
    const need =
      bufferTokens * D * 4 + // the activation buffer
      4 * (2 * D * S + S + D) * f + // params, grad, Adam m and v
      batchTokens * (5 * S + 6 * D) * f + // work buffers (pre, h, dpre, AuxK's) per batch row
      (2 * D * S + S + D) * 8 * 3; // host copies when saving (float64)
    const limit = opts.memoryLimit ?? Math.floor(os.totalmem() * 0.8);
    if (need > limit)
      throw new UsageError(
        `this run needs about ${(need / 2 ** 30).toFixed(2)} GiB (buffer ${bufferTokens} × ${D} floats, ${S} features, batch ${batchTokens}), more than the ${(limit / 2 ** 30).toFixed(2)} GiB allowed; lower --buffer-tokens, --batch-tokens or --expansion`,
      );

    const tok = await loadTokenizer(ck.tokenizer, ck.tokenizerVocab).catch((e: Error) => {
      throw new CheckpointError(`${ckFile}: ${e.message}`);
    });
    const dataArg = opts.data ?? (pc && pc.data.source !== EMBEDDED_NAME ? pc.data.source : undefined);
    const ds = await loadDataset({ data: dataArg, tokenizer: tok, cacheDir: opts.cacheDir }).catch((e: Error) => {
      throw e instanceof CrateError ? e : new DataError(e.message, { cause: e });
    });
    if (pc && pc.data.sha256 !== ds.contentHash)
      throw new DataError(`--resume '${out}': the data differs from the run's (sha256 ${pc.data.sha256.slice(0, 12)}…)`);
    const train = ds.train;
    const T = ck.config.blockSize;
    const V = ck.config.vocabSize;
    for (let i = 0; i < train.length; i++)
      if (train[i] >= V) throw new DataError(`token ${i} of '${ds.source}' has id ${train[i]}, outside the vocabulary of ${V}`);
    const nWin = Math.floor(train.length / T);
    if (nWin < 1) throw new DataError(`the training split of '${ds.source}' has ${train.length} tokens, fewer than one window of ${T}`);
    const B = Math.max(1, Math.min(nWin, Math.ceil(Math.min(batchTokens, 4096) / T)));

    // the activation source: contiguous windows of the training split, in order, wrapping around
    let window = 0;
    let stepNow = 0;
    const ids = new Int32Array(B * T);
    const source = (): Float32Array => {
      for (let b = 0; b < B; b++) {
        const w = (window + b) % nWin;
        for (let t = 0; t < T; t++) ids[b * T + t] = train[w * T + t];
      }
      const { cache } = model.runWithCache(ids, B, T, { names: [hook], stopAtLayer: layer + 1, returnLogits: false });
      const a = cache.get(hook);
      const rows = new Float32Array(B * T * D);
      for (let b = 0; b < B; b++)
        for (let t = 0; t < T; t++)
          for (let i = 0; i < D; i++) {
            const v = a.get(b, t, i);
            if (!Number.isFinite(v))
              throw new NumericsError(
                `${hook} is ${v} at window ${(window + b) % nWin}, position ${t}, feature ${i} (while filling the buffer for step ${stepNow + 1}); the last saved state in '${out}' is kept`,
              );
            rows[(b * T + t) * D + i] = v;
          }
      window += B;
      return rows;
    };
    const bufRng = new Rng((seed ^ 0x5ae5ae) >>> 0);
    const buffer = new ActivationBuffer(bufferTokens, D, bufRng, source);
    const rng = new Rng(seed);

    sae = new ResidentSae(opts.backend, D, S);
    const be = opts.backend;
    const tokensSinceFired = new Float64Array(S);
    const firedSinceResample = new Uint8Array(S);
    const fires = new Float64Array(S);
    let logLines: string[] = [];
    let step = 0;
    if (prev && pc) {
      const st = readState(path.join(out, STATE_FILE), D, S, bufferTokens);
      be.upload(sae.params, st.params);
      be.upload(sae.m, st.m);
      be.upload(sae.v, st.v);
      buffer.setState(st.buffer);
      rng.setState(st.rng);
      tokensSinceFired.set(st.tokensSinceFired);
      firedSinceResample.set(st.firedSinceResample);
      fires.set(st.fires);
      step = st.step;
      window = st.window;
      const logPath = path.join(out, TRAIN_LOG_FILE);
      if (fs.existsSync(logPath))
        logLines = fs
          .readFileSync(logPath, 'utf8')
          .split('\n')
          .filter((l) => l.length > 0 && (JSON.parse(l) as { step: number }).step <= step)
          .map((l) => l + '\n');
    } else {
      // init (spec 7.6): kaiming-uniform W_enc and W_dec, decoder rows unit norm, b_enc 0; b_dec the
      // mean of the first buffer (SAELens' "mean" init)
      const Wenc = kaiming(rng, D * S, S),
        Wdec = kaiming(rng, S * D, D);
      buffer.prime();
      const bdec = new Float64Array(D);
      for (let r = 0; r < bufferTokens; r++) for (let i = 0; i < D; i++) bdec[i] += buffer.data[r * D + i];
      for (let i = 0; i < D; i++) bdec[i] = Math.fround(bdec[i] / bufferTokens);
      sae.setWeights({ D, S, Wenc, benc: new Float64Array(S), Wdec, bdec });
      be.saeNormalizeRows(be.view(sae.params, saeLayout(D, S).Wdec, S * D), S, D);
      fs.mkdirSync(out, { recursive: true });
    }

    const block = (): CrateSaeBlock => ({
      crate_ts_version: crateTsVersion(),
      checkpoint_sha256: ckSha,
      checkpoint_path: path.resolve(ckFile),
      layer,
      tokens_seen: step * batchTokens,
      steps: step,
      recipe: {
        arch,
        expansion,
        l1: arch === 'relu' ? l1 : null,
        k: arch === 'topk' ? k : null,
        aux_k: arch === 'topk' ? auxK : null,
        aux_coef: arch === 'topk' ? auxCoef : null,
        dead_tokens: deadTokens,
        lr,
        warmup_steps: warmup,
        beta1,
        beta2,
        batch_tokens: batchTokens,
        buffer_tokens: bufferTokens,
        tokens: steps * batchTokens,
        resample_at: resampleAt,
        loss:
          arch === 'relu'
            ? 'L = (sum_n |xhat_n - x_n|^2 + l1 * sum_{n,j} h_nj) / sum_n |x_n - mean(x)|^2 per batch'
            : 'L = sum_n |xhat_n - x_n|^2 / sum_n |x_n - mean(x)|^2 + aux_coef * AuxK (same normalised form on e = x - xhat)',
      },
      seed,
      backend: be.name,
      data: { source: ds.source, sha256: ds.contentHash, split: `train (${ds.split})` },
    });
    const cfgOf = (): SaeCfg => ({
      architecture: arch === 'relu' ? 'standard' : 'topk',
      d_in: D,
      d_sae: S,
      ...(arch === 'topk' ? { k } : {}),
      dtype: 'float32',
      device: 'cpu',
      apply_b_dec_to_input: true,
      normalize_activations: 'none',
      reshape_activations: 'none',
      metadata: {
        model_name: `crate-ts:${ck.config.arch}:${path.basename(path.dirname(path.resolve(ckFile)))}`,
        hook_name: hook,
        hook_layer: layer,
        hook_head_index: null,
        model_class_name: 'crate-ts',
        context_size: T,
        dataset_path: ds.source,
        prepend_bos: false,
      },
      crate_ts: block(),
    });
    const save = (): void => {
      const w = sae!.weights();
      writeWeights(out, w);
      writeSparsity(out, fires, step * batchTokens);
      writeFileAtomic(path.join(out, TRAIN_LOG_FILE), logLines.join(''));
      writeState(path.join(out, STATE_FILE), {
        params: be.download(sae!.params),
        m: be.download(sae!.m),
        v: be.download(sae!.v),
        buffer: buffer.getState(),
        rng: rng.getState(),
        tokensSinceFired,
        firedSinceResample,
        fires,
        step,
        window,
      });
      writeCfg(out, cfgOf());
    };

    const lrAt = (t: number): number => {
      if (warmup > 0 && t <= warmup) return (lr * t) / warmup;
      const p = steps > warmup ? (t - warmup) / (steps - warmup) : 1;
      return lr * 0.5 * (1 + Math.cos(Math.PI * Math.min(1, p)));
    };

    const logEvery = opts.logEvery ?? 10;
    const saveEvery = opts.saveEvery ?? 500;
    const x = new Float32Array(batchTokens * D);
    const deadMask = new Float64Array(S);
    let stopped = false;
    let last: SaeProgress | null = null;
    const tLoop = performance.now();
    const step0 = step;
    let resampled = 0;
    while (step < steps) {
      stepNow = step;
      buffer.next(batchTokens, x);
      const den = batchVariance(x, batchTokens, D);
      let anyDead = false;
      if (arch === 'topk') {
        for (let j = 0; j < S; j++) {
          deadMask[j] = tokensSinceFired[j] >= deadTokens ? 1 : 0;
          anyDead ||= deadMask[j] !== 0;
        }
      }
      const st = sae.gradient(x, batchTokens, den, { k, l1, auxK, auxCoef, dead: anyDead ? deadMask : null });
      step++;
      if (!Number.isFinite(st.loss))
        throw new NumericsError(`the loss is ${st.loss} at step ${step} (FVU ${st.fvu}, L1 ${st.l1}); the last saved state in '${out}' is kept`);
      sae.update(lrAt(step), step, beta1, beta2);
      let l0 = 0;
      for (let j = 0; j < S; j++) {
        const c = st.counts[j];
        l0 += c;
        fires[j] += c;
        if (c > 0) {
          tokensSinceFired[j] = 0;
          firedSinceResample[j] = 1;
        } else tokensSinceFired[j] += batchTokens;
      }
      if (resampleAt.includes(step) && arch === 'relu') resampled += resample(sae, buffer, rng, firedSinceResample, { D, S, k, batchTokens, bufferTokens });

      if (step % logEvery === 0 || step === steps) {
        let dead = 0;
        for (let j = 0; j < S; j++) if (tokensSinceFired[j] >= deadTokens) dead++;
        const secs = (performance.now() - tLoop) / 1000;
        const rate = ((step - step0) * batchTokens) / Math.max(secs, 1e-9);
        last = {
          step,
          steps,
          tokens: step * batchTokens,
          loss: st.loss,
          fvu: st.fvu,
          l0: l0 / batchTokens,
          deadFraction: dead / S,
          lr: lrAt(step),
          tokensPerSec: rate,
          eta: ((steps - step) * batchTokens) / rate,
        };
        logLines.push(
          JSON.stringify({
            step,
            tokens: last.tokens,
            loss: st.loss,
            fvu: st.fvu,
            l1: st.l1 / batchTokens,
            aux: st.aux,
            l0: last.l0,
            dead_fraction: last.deadFraction,
            lr: last.lr,
            ...(resampled > 0 ? { resampled } : {}),
          }) + '\n',
        );
        resampled = 0;
        opts.onProgress?.(last);
      }
      // let signal handlers run (the loop is otherwise synchronous)
      await new Promise<void>((res) => setImmediate(res));
      if (opts.shouldStop?.()) {
        stopped = true;
        break;
      }
      if (saveEvery > 0 && step % saveEvery === 0 && step < steps) save();
    }
    save();
    const secs = (performance.now() - tLoop) / 1000;
    return {
      dir: out,
      steps: step,
      tokens: step * batchTokens,
      stopped,
      tokensPerSec: ((step - step0) * batchTokens) / Math.max(secs, 1e-9),
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
      last: last ?? null,
    };
  } finally {
    sae?.free();
    model.free();
    void tStart;
  }
}

/** Σ_n ‖x_n − x̄‖² in float64 (N if 0): the batch's normaliser, the same definition as saeMseLoss's. */
export function batchVariance(x: Float32Array, N: number, D: number): number {
  let den = 0;
  for (let i = 0; i < D; i++) {
    let m = 0;
    for (let n = 0; n < N; n++) m += x[n * D + i];
    m /= N;
    for (let n = 0; n < N; n++) den += (x[n * D + i] - m) ** 2;
  }
  return den > 0 ? den : N;
}

/**
 * Anthropic-style resampling of the features that did not fire since the last resample: inputs are
 * drawn with probability ∝ (their reconstruction loss)², the dead feature's decoder row becomes the
 * drawn input minus b_dec, normalised; its encoder column that direction times 0.2 × the mean encoder
 * norm of the live features; its b_enc 0; its Adam moments 0.
 */
function resample(
  sae: ResidentSae<unknown>,
  buffer: ActivationBuffer,
  rng: Rng,
  fired: Uint8Array,
  s: { D: number; S: number; k: number; batchTokens: number; bufferTokens: number },
): number {
  const { D, S } = s;
  const dead: number[] = [];
  for (let j = 0; j < S; j++) if (!fired[j]) dead.push(j);
  fired.fill(0);
  if (dead.length === 0) return 0;
  const pool = buffer.peek(Math.min(s.bufferTokens, 8 * s.batchTokens));
  const P = pool.length / D;
  const w2 = new Float64Array(P);
  for (let r0 = 0; r0 < P; r0 += s.batchTokens) {
    const n = Math.min(s.batchTokens, P - r0);
    const rows = pool.subarray(r0 * D, (r0 + n) * D);
    const { xhat } = sae.encodeDecode(rows, n, s.k);
    for (let r = 0; r < n; r++) {
      let l = 0;
      for (let i = 0; i < D; i++) l += (xhat[r * D + i] - rows[r * D + i]) ** 2;
      w2[r0 + r] = l * l;
    }
  }
  const cum = new Float64Array(P);
  let tot = 0;
  for (let r = 0; r < P; r++) cum[r] = tot += w2[r];
  const be = sae.be;
  const L = 2 * D * S + S + D;
  const p = be.download(sae.params),
    m = be.download(sae.m),
    v = be.download(sae.v);
  const oBenc = D * S,
    oWdec = D * S + S,
    oBdec = 2 * D * S + S;
  let alive = 0,
    aliveNorm = 0;
  const isDead = new Uint8Array(S);
  for (const j of dead) isDead[j] = 1;
  for (let j = 0; j < S; j++) {
    if (isDead[j]) continue;
    let nn = 0;
    for (let i = 0; i < D; i++) nn += p[i * S + j] ** 2;
    aliveNorm += Math.sqrt(nn);
    alive++;
  }
  const encScale = 0.2 * (alive > 0 ? aliveNorm / alive : 1);
  for (const j of dead) {
    let r = 0;
    if (tot > 0) {
      const u = rng.uniform() * tot;
      let lo = 0,
        hi = P - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cum[mid] > u) hi = mid;
        else lo = mid + 1;
      }
      r = lo;
    } else r = rng.int(P);
    const dir = new Float64Array(D);
    let nn = 0;
    for (let i = 0; i < D; i++) {
      dir[i] = pool[r * D + i] - p[oBdec + i];
      nn += dir[i] ** 2;
    }
    const inv = nn > 0 ? 1 / Math.sqrt(nn) : 0;
    for (let i = 0; i < D; i++) {
      const u = dir[i] * inv;
      p[oWdec + j * D + i] = u;
      p[i * S + j] = u * encScale;
      m[oWdec + j * D + i] = v[oWdec + j * D + i] = 0;
      m[i * S + j] = v[i * S + j] = 0;
    }
    p[oBenc + j] = 0;
    m[oBenc + j] = v[oBenc + j] = 0;
  }
  void L;
  be.upload(sae.params, p);
  be.upload(sae.m, m);
  be.upload(sae.v, v);
  return dead.length;
}

interface TrainState {
  params: Float64Array;
  m: Float64Array;
  v: Float64Array;
  buffer: ReturnType<ActivationBuffer['getState']>;
  rng: number[];
  tokensSinceFired: Float64Array;
  firedSinceResample: Uint8Array;
  fires: Float64Array;
  step: number;
  window: number;
}

function writeState(file: string, s: TrainState): void {
  const t = (dtype: TensorInput['dtype'], data: ArrayLike<number>): TensorInput => ({ dtype, shape: [data.length], data });
  const bytes = serializeSafetensors(
    new Map<string, TensorInput>([
      ['params', t('F64', s.params)],
      ['adam_m', t('F64', s.m)],
      ['adam_v', t('F64', s.v)],
      ['buffer', t('F32', s.buffer.data)],
      ['buffer_perm', t('I32', s.buffer.perm)],
      ['buffer_pending', t('F32', s.buffer.pending)],
      ['tokens_since_fired', t('F64', s.tokensSinceFired)],
      ['fired_since_resample', t('U8', s.firedSinceResample)],
      ['fires', t('F64', s.fires)],
    ]),
    {
      format: 'crate-ts-sae-state',
      step: String(s.step),
      window: String(s.window),
      rng: JSON.stringify(s.rng),
      buffer_rng: JSON.stringify(s.buffer.rng),
      buffer_read_pos: String(s.buffer.readPos),
    },
  );
  writeFileAtomic(file, bytes);
}

function readState(file: string, D: number, S: number, bufferTokens: number): TrainState {
  const st = readSafetensors(file);
  const get = (name: string, n: number): Float64Array => {
    const e = st.tensors.get(name);
    if (!e) throw new CheckpointError(`${file}: no tensor '${name}'`);
    const a = toFloat64(e, name);
    if (n >= 0 && a.length !== n) throw new CheckpointError(`${file}: ${name} has ${a.length} elements, expected ${n}`);
    return a;
  };
  const md = st.metadata;
  const num = (k: string): number => {
    const v = Number(md[k]);
    if (!Number.isInteger(v) || v < 0) throw new CheckpointError(`${file}: metadata ${k} is '${md[k]}'`);
    return v;
  };
  const rngOf = (k: string): number[] => {
    try {
      const r = JSON.parse(md[k] ?? '') as unknown;
      if (Array.isArray(r) && r.length === 4 && r.every((x) => Number.isInteger(x))) return r as number[];
    } catch {
      /* reported below */
    }
    throw new CheckpointError(`${file}: metadata ${k} is not a generator state`);
  };
  const L = 2 * D * S + S + D;
  return {
    params: get('params', L),
    m: get('adam_m', L),
    v: get('adam_v', L),
    buffer: {
      data: Float32Array.from(get('buffer', bufferTokens * D)),
      perm: Int32Array.from(get('buffer_perm', bufferTokens)),
      pending: Float32Array.from(get('buffer_pending', -1)),
      readPos: num('buffer_read_pos'),
      rng: rngOf('buffer_rng'),
    },
    rng: rngOf('rng'),
    tokensSinceFired: get('tokens_since_fired', S),
    firedSinceResample: Uint8Array.from(get('fired_since_resample', S)),
    fires: get('fires', S),
    step: num('step'),
    window: num('window'),
  };
}

export type { SaeWeights };
