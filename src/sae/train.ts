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
import { readSafetensors, toFloat64, writeSafetensorsStreamed, type DeferredTensor } from '../io/safetensors.js';
import type { LanguageModel } from '../model/lm.js';
import { writeFileAtomic } from '../util/atomic.js';
import { resolveHooks } from '../neurons/collect.js';
import { sha256File } from '../util/hash.js';
import { Rng } from '../util/rng.js';
import { SINGLE, type Communicator } from '../distributed/communicator.js';
import { prepareTogether } from '../distributed/agree.js';
import { ActivationBuffer, type BufferState } from './buffer.js';
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
  /**
   * Micro-batches per step on each rank (default 1; a resumed run keeps its total). A step's
   * batchTokens rows are K = gradAccum × ranks micro-batches of batchTokens / K rows, each drawn from
   * its own shard of the activation buffer fed by its own share of the windows.
   */
  gradAccum?: number;
  /** The ranks training together (default: this process alone); rank 0 alone writes files. */
  comm?: Communicator;
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
  /** Save and stop after this step (as if signalled; --resume continues). */
  stopAt?: number;
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
  if (v !== undefined && (!Number.isInteger(v) || v < min || v > max))
    throw new UsageError((n) => `${n(name)} must be an integer in ${min}..${max}, got ${v}`, { option: name });
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
  const comm = opts.comm ?? SINGLE;
  const N = comm.worldSize,
    rank = comm.rank,
    writer = rank === 0;
  // Every rank resolves the run; all start, or all stop with the failing rank's message or the
  // first difference between the ranks' runs.
  const run = await prepareTogether(
    comm,
    'SAE run',
    () => prepareRun(opts, N),
    (r) => r.fingerprint,
  );
  const { ck, ckFile, ckSha, model, prev, pc, arch, seed, layer, hook, D, S, expansion, batchTokens, k, l1, lr, steps, bufferTokens, warmup } = run;
  const { resampleAt, auxK, auxCoef, deadTokens, K, ds } = run;
  const out = opts.out;
  let sae: ResidentSae<unknown> | null = null;
  try {
    const beta1 = 0.9,
      beta2 = 0.999;
    const A = K / N; // micro-batches per rank and step
    const micro = batchTokens / K; // rows per micro-batch
    const shardRows = bufferTokens / K; // rows per shard of the buffer

    const train = ds.train;
    const T = ck.config.blockSize;
    const nWin = Math.floor(train.length / T);
    const B = Math.max(1, Math.min(nWin, Math.ceil(Math.min(micro, 4096) / T)));

    // The activation sources: shard s reads blocks of B contiguous windows of the training split,
    // the blocks dealt round-robin to the K shards (block f·K + s is shard s's f-th), wrapping around.
    // One shard (the default) reads the windows in order.
    const fetches = new Array<number>(K).fill(0);
    const mine: number[] = [];
    for (let s = rank; s < K; s += N) mine.push(s);
    let stepNow = 0;
    const ids = new Int32Array(B * T);
    const sourceOf = (s: number) => (): Float32Array => {
      const first = (fetches[s] * K + s) * B;
      for (let b = 0; b < B; b++) {
        const w = (first + b) % nWin;
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
                `${hook} is ${v} at window ${(first + b) % nWin}, position ${t}, feature ${i} (while filling the buffer for step ${stepNow + 1}); the last saved state in '${out}' is kept`,
              );
            rows[(b * T + t) * D + i] = v;
          }
      fetches[s]++;
      return rows;
    };
    const buffers = new Map<number, ActivationBuffer>();
    for (const s of mine) buffers.set(s, new ActivationBuffer(shardRows, D, new Rng(shardSeed(seed, s)), sourceOf(s)));
    const rng = new Rng(seed);

    sae = new ResidentSae(opts.backend, D, S);
    const be = opts.backend;
    const tokensSinceFired = new Float64Array(S);
    const firedSinceResample = new Uint8Array(S);
    const fires = new Float64Array(S);
    let logLines: string[] = [];
    let step = 0;
    if (prev && pc) {
      const st = readState(path.join(out, STATE_FILE), D, S, K, shardRows, mine);
      be.upload(sae.params, st.params);
      be.upload(sae.m, st.m);
      be.upload(sae.v, st.v);
      for (const s of mine) buffers.get(s)!.setState(st.buffers.get(s)!);
      rng.setState(st.rng);
      tokensSinceFired.set(st.tokensSinceFired);
      firedSinceResample.set(st.firedSinceResample);
      fires.set(st.fires);
      step = st.step;
      for (let s = 0; s < K; s++) fetches[s] = st.fetches[s] ?? 0;
      const logPath = path.join(out, TRAIN_LOG_FILE);
      if (fs.existsSync(logPath))
        logLines = fs
          .readFileSync(logPath, 'utf8')
          .split('\n')
          .filter((l) => l.length > 0 && (JSON.parse(l) as { step: number }).step <= step)
          .map((l) => l + '\n');
    } else {
      // init (spec 7.6): kaiming-uniform W_enc and W_dec, decoder rows unit norm, b_enc 0; b_dec the
      // mean of the first buffer (SAELens' "mean" init): each shard's column sums in float64, added
      // in shard order
      const Wenc = kaiming(rng, D * S, S),
        Wdec = kaiming(rng, S * D, D);
      const sums = await shardsEverywhere(comm, K, (s) => {
        const buf = buffers.get(s)!;
        buf.prime();
        const c = new Float64Array(D);
        for (let r = 0; r < shardRows; r++) for (let i = 0; i < D; i++) c[i] += buf.data[r * D + i];
        return new Uint8Array(c.buffer);
      });
      const bdec = new Float64Array(D);
      for (const part of sums) {
        const c = asF64(part);
        for (let i = 0; i < D; i++) bdec[i] += c[i];
      }
      for (let i = 0; i < D; i++) bdec[i] = Math.fround(bdec[i] / bufferTokens);
      sae.setWeights({ D, S, Wenc, benc: new Float64Array(S), Wdec, bdec });
      be.saeNormalizeRows(be.view(sae.params, saeLayout(D, S).Wdec, S * D), S, D);
      if (writer) fs.mkdirSync(out, { recursive: true });
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
        grad_accum: K,
        buffer_tokens: bufferTokens,
        tokens: steps * batchTokens,
        resample_at: resampleAt,
        loss:
          arch === 'relu'
            ? 'L = (sum_n |xhat_n - x_n|^2 + l1 * sum_{n,j} h_nj) / sum_n |x_n - mean(x)|^2 per micro-batch, averaged over the grad_accum micro-batches of a step'
            : 'L = sum_n |xhat_n - x_n|^2 / sum_n |x_n - mean(x)|^2 + aux_coef * AuxK (same normalised form on e = x - xhat) per micro-batch, averaged over the grad_accum micro-batches of a step',
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
    // Saving: every rank takes part (rank 0 gathers the other ranks' buffer shards), rank 0 writes.
    // Each file is written tensor by tensor from the resident buffers, so a save adds at most one
    // tensor's host copy to the run's memory.
    const save = async (): Promise<void> => {
      const shards = await bufferStatesToRoot(comm, K, buffers, fetches);
      if (!writer || !shards) return;
      const L = saeLayout(D, S);
      const p = sae!.host(sae!.params);
      writeWeights(out, {
        D,
        S,
        Wenc: p.subarray(L.Wenc, L.Wenc + D * S),
        benc: p.subarray(L.benc, L.benc + S),
        Wdec: p.subarray(L.Wdec, L.Wdec + S * D),
        bdec: p.subarray(L.bdec, L.bdec + D),
      });
      writeSparsity(out, fires, step * batchTokens);
      writeFileAtomic(path.join(out, TRAIN_LOG_FILE), logLines.join(''));
      writeState(path.join(out, STATE_FILE), {
        params: () => p,
        m: () => sae!.host(sae!.m),
        v: () => sae!.host(sae!.v),
        buffers: shards,
        rng: rng.getState(),
        tokensSinceFired,
        firedSinceResample,
        fires,
        step,
        fetches,
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
    const x = new Float32Array(micro * D);
    const deadMask = new Float64Array(S);
    // a step of K > 1 micro-batches: their gradients added in micro-batch order, on the device for
    // one process, on the host through the ordered all-reduce for several (the same left fold)
    const accDev = K > 1 && N === 1 ? be.alloc(saeLayout(D, S).size) : null;
    let accHost: Float32Array | Float64Array | null = null;
    let stopped = false;
    let last: SaeProgress | null = null;
    const tLoop = performance.now();
    const step0 = step;
    let resampled = 0;
    try {
      while (step < steps) {
        stepNow = step;
        let anyDead = false;
        if (arch === 'topk') {
          for (let j = 0; j < S; j++) {
            deadMask[j] = tokensSinceFired[j] >= deadTokens ? 1 : 0;
            anyDead ||= deadMask[j] !== 0;
          }
        }
        const gopt = { k, l1, auxK, auxCoef, dead: anyDead ? deadMask : null, scale: 1 / K };
        // stats of the step: loss, fvu, l1, aux summed over the micro-batches, counts[j] the rows
        // on which feature j fired
        let loss = 0,
          fvu = 0,
          l1sum = 0,
          aux = 0;
        let counts: Float64Array;
        if (K === 1) {
          buffers.get(0)!.next(micro, x);
          const st = sae.gradient(x, micro, batchVariance(x, micro, D), gopt);
          ({ loss, fvu, l1: l1sum, aux, counts } = st);
        } else {
          counts = new Float64Array(S);
          if (accDev) be.fill(accDev, 0);
          else (accHost ??= sae.host(sae.grad)).fill(0);
          for (let round = 0; round < A; round++) {
            const s = round * N + rank;
            buffers.get(s)!.next(micro, x);
            const st = sae.gradient(x, micro, batchVariance(x, micro, D), gopt);
            const info = new Float64Array(4 + S);
            info.set([st.loss, st.fvu, st.l1, st.aux]);
            info.set(st.counts, 4);
            const all = accDev ? [info] : (await comm.allGather(new Uint8Array(info.buffer))).map(asF64);
            for (const v of all) {
              loss += v[0];
              fvu += v[1];
              l1sum += v[2];
              aux += v[3];
              for (let j = 0; j < S; j++) counts[j] += v[4 + j];
            }
            if (accDev) be.add(accDev, accDev, sae.grad);
            else await comm.allReduceOrdered(accHost!, sae.host(sae.grad));
          }
          if (accDev) be.copy(sae.grad, accDev);
          else be.upload(sae.grad, accHost!);
          loss /= K;
          fvu /= K;
          aux /= K;
        }
        step++;
        if (!Number.isFinite(loss))
          throw new NumericsError(`the loss is ${loss} at step ${step} (FVU ${fvu}, L1 ${l1sum}); the last saved state in '${out}' is kept`);
        sae.update(lrAt(step), step, beta1, beta2);
        let l0 = 0;
        for (let j = 0; j < S; j++) {
          const c = counts[j];
          l0 += c;
          fires[j] += c;
          if (c > 0) {
            tokensSinceFired[j] = 0;
            firedSinceResample[j] = 1;
          } else tokensSinceFired[j] += batchTokens;
        }
        if (resampleAt.includes(step) && arch === 'relu') {
          const pool = await shardsEverywhere(comm, K, (s) => {
            const q = buffers.get(s)!.peek(Math.min(shardRows, 8 * micro));
            return new Uint8Array(q.buffer, q.byteOffset, q.byteLength);
          });
          resampled += resample(sae, concatF32(pool), rng, firedSinceResample, { D, S, k, batchTokens });
        }

        if (step % logEvery === 0 || step === steps) {
          let dead = 0;
          for (let j = 0; j < S; j++) if (tokensSinceFired[j] >= deadTokens) dead++;
          const secs = (performance.now() - tLoop) / 1000;
          const rate = ((step - step0) * batchTokens) / Math.max(secs, 1e-9);
          last = {
            step,
            steps,
            tokens: step * batchTokens,
            loss,
            fvu,
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
              loss,
              fvu,
              l1: l1sum / batchTokens,
              aux,
              l0: last.l0,
              dead_fraction: last.deadFraction,
              lr: last.lr,
              ...(resampled > 0 ? { resampled } : {}),
            }) + '\n',
          );
          resampled = 0;
          opts.onProgress?.(last);
        }
        // let signal handlers run (the loop is otherwise synchronous); several ranks stop together,
        // after the same step, when any of them was asked to
        await new Promise<void>((res) => setImmediate(res));
        let stop = (opts.shouldStop?.() ?? false) || (opts.stopAt !== undefined && step >= opts.stopAt);
        if (N > 1) stop = (await comm.allGather(Uint8Array.of(stop ? 1 : 0))).some((b) => b[0] !== 0);
        if (stop) {
          stopped = true;
          break;
        }
        if (saveEvery > 0 && step % saveEvery === 0 && step < steps) await save();
      }
      await save();
    } finally {
      if (accDev) be.free(accDev);
    }
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
  }
}

/** Everything a run resolves before it allocates (the same on every rank of a distributed run). */
async function prepareRun(opts: SaeTrainOptions, ranks: number) {
  const out = opts.out;
  let prev: SaeCfg | null = null;
  if (opts.resume) {
    const cfgPath = path.join(out, CFG_FILE);
    if (!fs.existsSync(cfgPath)) throw new DataError((n) => `${n('resume')} '${out}': no ${CFG_FILE} (not an SAE run directory)`, { option: 'resume' });
    prev = loadSae(out).cfg;
    if (!prev.crate_ts)
      throw new DataError((n) => `${n('resume')} '${out}': cfg.json has no crate_ts block (not trained by crate-ts sae train)`, { option: 'resume' });
    if (!fs.existsSync(path.join(out, STATE_FILE)))
      throw new DataError((n) => `${n('resume')} '${out}': no ${STATE_FILE} (the optimizer state ${n('resume')} needs)`, { option: 'resume' });
  } else if (fs.existsSync(path.join(out, CFG_FILE))) {
    throw new UsageError(
      (n) => `${n('out')} '${out}' already holds an SAE (cfg.json); pass ${n('resume')} ${out} to continue it, or choose another directory`,
      { option: 'out' },
    );
  }
  const pc = prev?.crate_ts;
  const arch: SaeArch = pc ? pc.recipe.arch : (opts.arch ?? 'relu');
  if (arch !== 'relu' && arch !== 'topk') throw new UsageError((n) => `${n('arch')} must be relu or topk, got '${String(arch)}'`, { option: 'arch' });
  const ckArg = opts.checkpoint ?? pc?.checkpoint_path;
  if (!ckArg) throw new UsageError((n) => `${n('checkpoint')} is required`, { option: 'checkpoint' });
  const seed = pc ? pc.seed : (opts.seed ?? 0);
  assertInt(opts.seed, 'seed', 0, 2 ** 31 - 1);
  assertInt(opts.expansion, 'expansion', 1, 1024);
  assertInt(opts.tokens, 'tokens', 1);
  assertInt(opts.batchTokens, 'batchTokens', 1, 1 << 20);
  assertInt(opts.bufferTokens, 'bufferTokens', 2);
  assertInt(opts.warmupSteps, 'warmupSteps', 0);
  assertInt(opts.gradAccum, 'gradAccum', 1, 1 << 16);
  assertInt(opts.stopAt, 'stopAt', 1);
  if (opts.l1 !== undefined && !(Number.isFinite(opts.l1) && opts.l1 >= 0))
    throw new UsageError((n) => `${n('l1')} must be a finite number >= 0, got ${opts.l1}`, { option: 'l1' });
  if (opts.lr !== undefined && !(Number.isFinite(opts.lr) && opts.lr > 0))
    throw new UsageError((n) => `${n('lr')} must be a positive number, got ${opts.lr}`, { option: 'lr' });
  if (opts.k !== undefined && (!Number.isInteger(opts.k) || opts.k <= 0))
    throw new UsageError((n) => `${n('k')} must be a positive integer, got ${opts.k}`, { option: 'k' });

  // checkpoint, hook, data
  const ckFile = typed(() => resolveCheckpointPath(ckArg), CheckpointError);
  const ck = typed(() => loadCheckpoint(ckFile), CheckpointError);
  const ckSha = sha256File(ckFile);
  if (pc && pc.checkpoint_sha256 !== ckSha)
    throw new DataError(
      (n) =>
        `${n('resume')} '${out}': the SAE was trained on another checkpoint (sha256 ${pc.checkpoint_sha256.slice(0, 12)}…, '${ckFile}' is ${ckSha.slice(0, 12)}…)`,
      { option: 'resume' },
    );
  const model = typed(() => modelFromCheckpoint(ck, opts.backend), CheckpointError) as LanguageModel<unknown>;
  try {
    const layer = pc ? pc.layer : opts.layer;
    if (layer === undefined) throw new UsageError((n) => `${n('layer')} is required`, { option: 'layer' });
    const { hooks } = resolveHooks(model, prev ? prev.metadata.hook_name : (opts.hook ?? 'hook_neurons'), [layer]);
    const hook = hooks[0];
    const D = model.hookShape(hook, 1, 1)[2];
    const expansion = pc ? pc.recipe.expansion : (opts.expansion ?? 16);
    const S = D * expansion;
    const batchTokens = pc ? pc.recipe.batch_tokens : (opts.batchTokens ?? 4096);
    const def = saeDefaults(D, S, arch, batchTokens);
    const k = pc ? (pc.recipe.k ?? S) : arch === 'topk' ? (opts.k ?? def.k) : S;
    if (arch === 'topk' && k > S) throw new UsageError((n) => `${n('k')} ${k} exceeds d_sae = ${S} (${D} × expansion ${expansion})`, { option: 'k' });
    if (arch === 'relu' && opts.k !== undefined && !pc) throw new UsageError((n) => `${n('k')} applies to ${n('arch')} topk only`, { option: 'k' });
    const l1 = pc ? (pc.recipe.l1 ?? 0) : arch === 'relu' ? (opts.l1 ?? def.l1) : 0;
    if (arch === 'topk' && opts.l1 !== undefined && !pc)
      throw new UsageError((n) => `${n('l1')} applies to ${n('arch')} relu only (topk has no L1 term)`, { option: 'l1' });
    const lr = pc ? pc.recipe.lr : (opts.lr ?? def.lr);
    const totalTokens = opts.tokens ?? pc?.recipe.tokens ?? 1_000_000;
    const steps = Math.max(1, Math.floor(totalTokens / batchTokens));
    const bufferTokens = pc ? pc.recipe.buffer_tokens : (opts.bufferTokens ?? Math.max(2 * batchTokens, Math.min(1 << 17, 32 * batchTokens)));
    if (bufferTokens < 2 * batchTokens)
      throw new UsageError((n) => `${n('bufferTokens')} ${bufferTokens} must be at least twice ${n('batchTokens')} ${batchTokens}`, { option: 'bufferTokens' });
    // micro-batches per step over all ranks: --grad-accum per rank × ranks; a resumed run keeps its own
    const K = opts.gradAccum !== undefined ? opts.gradAccum * ranks : (pc?.recipe.grad_accum ?? ranks);
    if (pc && K !== (pc.recipe.grad_accum ?? 1))
      throw new UsageError(
        (n) =>
          `${n('resume')} '${out}': the run takes ${pc.recipe.grad_accum ?? 1} micro-batches per step, but ${opts.gradAccum ?? 1} per rank × ${ranks} rank${ranks === 1 ? '' : 's'} make ${K}; resume with ranks × ${n('gradAccum')} = ${pc.recipe.grad_accum ?? 1}`,
        { option: 'resume' },
      );
    if (K % ranks !== 0)
      throw new UsageError(`the run takes ${K} micro-batches per step, which ${ranks} ranks cannot share equally; resume on a rank count that divides ${K}`);
    if (batchTokens % K !== 0)
      throw new UsageError((n) => `${n('batchTokens')} ${batchTokens} is not divisible by the ${K} micro-batches of a step (${n('gradAccum')} × ranks)`, {
        option: 'batchTokens',
      });
    if (bufferTokens % K !== 0)
      throw new UsageError(
        (n) =>
          `${n('bufferTokens')} ${bufferTokens} is not divisible by the ${K} micro-batches of a step (${n('gradAccum')} × ranks): each has its own shard of the buffer`,
        { option: 'bufferTokens' },
      );
    const warmup = pc ? pc.recipe.warmup_steps : (opts.warmupSteps ?? Math.min(1000, Math.floor(steps / 20)));
    const resampleAt = pc ? pc.recipe.resample_at : (opts.resampleAt ?? (arch === 'relu' ? [10000, 20000, 50000, 75000, 100000] : []));
    for (const r of resampleAt)
      if (!Number.isInteger(r) || r < 1) throw new UsageError((n) => `${n('resampleAt')} takes positive step numbers, got ${r}`, { option: 'resampleAt' });
    const auxK = pc ? (pc.recipe.aux_k ?? def.auxK) : def.auxK;
    const auxCoef = pc ? (pc.recipe.aux_coef ?? def.auxCoef) : (opts.auxCoef ?? def.auxCoef);
    const deadTokens = pc ? (pc.recipe.dead_tokens ?? 0) : (opts.deadTokens ?? Math.min(10_000_000, Math.max(batchTokens, Math.floor(totalTokens / 10))));
    assertInt(deadTokens, 'deadTokens', 1);

    // memory of this rank, estimated before allocating anything large
    const f = opts.backend.dtype === 'f64' ? 8 : 4;
    const L = 2 * D * S + S + D;
    const micro = batchTokens / K;
    const need =
      (bufferTokens / ranks) * D * 4 + // this rank's shards of the activation buffer
      4 * L * f + // params, grad, Adam m and v
      micro * (5 * S + 6 * D) * f + // work buffers (pre, h, dpre, AuxK's) per micro-batch row
      (K > 1 ? 2 * L * f : 0) + // the step's gradient sum and a host copy
      L * f + // a host copy of one tensor when saving
      (ranks > 1 ? (bufferTokens - bufferTokens / ranks) * D * 4 : 0); // rank 0 gathers the other shards to save
    const limit = opts.memoryLimit ?? Math.floor(os.totalmem() * 0.8);
    if (need > limit)
      throw new UsageError(
        (n) =>
          `this run needs about ${(need / 2 ** 30).toFixed(2)} GiB (buffer ${bufferTokens} × ${D} floats, ${S} features, batch ${batchTokens}), more than the ${(limit / 2 ** 30).toFixed(2)} GiB allowed; lower ${n('bufferTokens')}, ${n('batchTokens')} or ${n('expansion')}`,
        { option: 'bufferTokens' },
      );

    const tok = await loadTokenizer(ck.tokenizer, ck.tokenizerVocab).catch((e: Error) => {
      throw new CheckpointError(`${ckFile}: ${e.message}`);
    });
    const dataArg = opts.data ?? (pc && pc.data.source !== EMBEDDED_NAME ? pc.data.source : undefined);
    const ds = await loadDataset({ data: dataArg, tokenizer: tok, cacheDir: opts.cacheDir }).catch((e: Error) => {
      throw e instanceof CrateError ? e : new DataError(e.message, { cause: e });
    });
    if (pc && pc.data.sha256 !== ds.contentHash)
      throw new DataError((n) => `${n('resume')} '${out}': the data differs from the run's (sha256 ${pc.data.sha256.slice(0, 12)}…)`, { option: 'resume' });
    const T = ck.config.blockSize;
    const V = ck.config.vocabSize;
    for (let i = 0; i < ds.train.length; i++)
      if (ds.train[i] >= V) throw new DataError(`token ${i} of '${ds.source}' has id ${ds.train[i]}, outside the vocabulary of ${V}`);
    if (Math.floor(ds.train.length / T) < 1)
      throw new DataError(`the training split of '${ds.source}' has ${ds.train.length} tokens, fewer than one window of ${T}`);
    const recipe = { arch, seed, layer, hook, D, S, expansion, batchTokens, k, l1, lr, steps, bufferTokens, warmup, resampleAt, auxK, auxCoef, deadTokens, K };
    const fingerprint = {
      recipe,
      checkpoint: ckSha,
      data: { sha256: ds.contentHash, train: ds.train.length },
      backend: { name: opts.backend.name, dtype: opts.backend.dtype },
      resume: pc ? { step: pc.steps, state: sha256File(path.join(out, STATE_FILE)) } : null,
    };
    return { ...recipe, ck, ckFile, ckSha, model, prev, pc, ds, fingerprint };
  } catch (e) {
    model.free();
    throw e;
  }
}

/** The generator seed of buffer shard s (shard 0: the one-shard run's). */
function shardSeed(seed: number, s: number): number {
  return (seed ^ 0x5ae5ae ^ Math.imul(s, 0x9e3779b1)) >>> 0;
}

/** A copy of the bytes in an ArrayBuffer of their own (received bytes need not be aligned; a Buffer's slice() is a view). */
function own(b: Uint8Array): ArrayBuffer {
  return new Uint8Array(b).buffer;
}

function asF64(b: Uint8Array): Float64Array {
  return new Float64Array(own(b));
}

function concatF32(parts: Uint8Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.byteLength, 0) / 4);
  let at = 0;
  for (const p of parts) {
    new Uint8Array(out.buffer, at, p.byteLength).set(p);
    at += p.byteLength;
  }
  return out;
}

/** Several byte strings as one: their count, their lengths (u32) and the bytes. */
function pack(parts: Uint8Array[]): Uint8Array {
  const head = 4 * (1 + parts.length);
  const out = new Uint8Array(head + parts.reduce((n, p) => n + p.byteLength, 0));
  const dv = new DataView(out.buffer);
  dv.setUint32(0, parts.length, true);
  let at = head;
  parts.forEach((p, i) => {
    dv.setUint32(4 * (1 + i), p.byteLength, true);
    out.set(p, at);
    at += p.byteLength;
  });
  return out;
}

function unpack(b: Uint8Array): Uint8Array[] {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const n = dv.getUint32(0, true);
  const out: Uint8Array[] = [];
  let at = 4 * (1 + n);
  for (let i = 0; i < n; i++) {
    const len = dv.getUint32(4 * (1 + i), true);
    out.push(b.subarray(at, at + len));
    at += len;
  }
  return out;
}

/** Rank r's shards are r, r + N, r + 2N, …: every shard's bytes, in shard order, on every rank. */
async function shardsEverywhere(comm: Communicator, K: number, bytesOf: (s: number) => Uint8Array): Promise<Uint8Array[]> {
  const N = comm.worldSize;
  if (N === 1) return Array.from({ length: K }, (_, s) => bytesOf(s));
  const parts: Uint8Array[] = [];
  for (let s = comm.rank; s < K; s += N) parts.push(bytesOf(s));
  const out = new Array<Uint8Array>(K);
  (await comm.allGather(pack(parts))).forEach((b, q) => unpack(b).forEach((p, i) => (out[q + i * N] = p)));
  return out;
}

/** A buffer shard's state as bytes: JSON (read position, generator) then data, perm and pending rows. */
function packBufferState(st: BufferState, fetch: number): Uint8Array {
  const bytes = (a: Float32Array | Int32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  return pack([Buffer.from(JSON.stringify({ readPos: st.readPos, rng: st.rng, fetch })), bytes(st.data), bytes(st.perm), bytes(st.pending)]);
}

function unpackBufferState(b: Uint8Array): { state: BufferState; fetch: number } {
  const [json, data, perm, pending] = unpack(b);
  const j = JSON.parse(Buffer.from(json).toString('utf8')) as { readPos: number; rng: number[]; fetch: number };
  // views when aligned (the one-process run passes its own arrays' bytes), copies otherwise
  const f32 = (p: Uint8Array) => (p.byteOffset % 4 === 0 ? new Float32Array(p.buffer, p.byteOffset, p.byteLength / 4) : new Float32Array(own(p)));
  const i32 = (p: Uint8Array) => (p.byteOffset % 4 === 0 ? new Int32Array(p.buffer, p.byteOffset, p.byteLength / 4) : new Int32Array(own(p)));
  return { state: { readPos: j.readPos, rng: j.rng, data: f32(data), perm: i32(perm), pending: f32(pending) }, fetch: j.fetch };
}

/**
 * Every buffer shard's state on rank 0, and `fetches` completed there (null on the other ranks).
 * One process hands its own buffers over as they are (no copy); several ranks send theirs to rank 0
 * (rank 0 keeps its own).
 */
async function bufferStatesToRoot(comm: Communicator, K: number, buffers: Map<number, ActivationBuffer>, fetches: number[]): Promise<BufferState[] | null> {
  const N = comm.worldSize;
  if (N === 1) return Array.from({ length: K }, (_, s) => buffers.get(s)!.getState());
  const parts: Uint8Array[] = [];
  if (comm.rank !== 0) for (let s = comm.rank; s < K; s += N) parts.push(packBufferState(buffers.get(s)!.getState(), fetches[s]));
  const all = await comm.gather(pack(parts), 0);
  if (!all) return null;
  const out = new Array<BufferState>(K);
  for (let s = 0; s < K; s += N) out[s] = buffers.get(s)!.getState();
  all.forEach((b, q) => {
    if (q > 0)
      unpack(b).forEach((p, i) => {
        const u = unpackBufferState(p);
        out[q + i * N] = u.state;
        fetches[q + i * N] = u.fetch;
      });
  });
  return out;
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
  pool: Float32Array,
  rng: Rng,
  fired: Uint8Array,
  s: { D: number; S: number; k: number; batchTokens: number },
): number {
  const { D, S } = s;
  const dead: number[] = [];
  for (let j = 0; j < S; j++) if (!fired[j]) dead.push(j);
  fired.fill(0);
  if (dead.length === 0) return 0;
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

interface TrainState<P> {
  params: P;
  m: P;
  v: P;
  /** One per buffer shard, in shard order. */
  buffers: BufferState[];
  rng: number[];
  tokensSinceFired: Float64Array;
  firedSinceResample: Uint8Array;
  fires: Float64Array;
  step: number;
  /** Blocks of windows each shard has read. */
  fetches: number[];
}

/** Shard s's tensor name: shard 0 keeps the one-shard names. */
const shardName = (name: string, s: number) => (s === 0 ? name : `${name}.${s}`);

/**
 * optimizer_state.safetensors, written tensor by tensor: the parameters and Adam moments in the
 * backend's precision (float32 for cpu and cuda: exact), each buffer shard, the counters.
 */
function writeState(file: string, s: TrainState<() => Float32Array | Float64Array>): void {
  const t = (dtype: DeferredTensor['dtype'], n: number, data: DeferredTensor['data']): DeferredTensor => ({ dtype, shape: [n], data });
  const tensors = new Map<string, DeferredTensor>();
  const p0 = s.params();
  const dt = p0 instanceof Float32Array ? 'F32' : 'F64';
  tensors.set(
    'params',
    t(dt, p0.length, () => p0),
  );
  tensors.set('adam_m', t(dt, p0.length, s.m));
  tensors.set('adam_v', t(dt, p0.length, s.v));
  const md: Record<string, string> = {
    format: 'crate-ts-sae-state',
    step: String(s.step),
    rng: JSON.stringify(s.rng),
    shards: String(s.buffers.length),
    fetches: JSON.stringify(s.fetches),
  };
  s.buffers.forEach((b, i) => {
    tensors.set(
      shardName('buffer', i),
      t('F32', b.data.length, () => b.data),
    );
    tensors.set(
      shardName('buffer_perm', i),
      t('I32', b.perm.length, () => b.perm),
    );
    tensors.set(
      shardName('buffer_pending', i),
      t('F32', b.pending.length, () => b.pending),
    );
    md[shardName('buffer_rng', i)] = JSON.stringify(b.rng);
    md[shardName('buffer_read_pos', i)] = String(b.readPos);
  });
  tensors.set(
    'tokens_since_fired',
    t('F64', s.tokensSinceFired.length, () => s.tokensSinceFired),
  );
  tensors.set(
    'fired_since_resample',
    t('U8', s.firedSinceResample.length, () => s.firedSinceResample),
  );
  tensors.set(
    'fires',
    t('F64', s.fires.length, () => s.fires),
  );
  writeSafetensorsStreamed(file, tensors, md);
}

/** The state for a rank: every counter, and the buffer shards `mine` (K shards of `rows` rows in the file). */
function readState(
  file: string,
  D: number,
  S: number,
  K: number,
  rows: number,
  mine: number[],
): Omit<TrainState<Float64Array>, 'buffers'> & { buffers: Map<number, BufferState> } {
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
  const json = (k: string, ok: (r: unknown) => boolean, what: string): unknown => {
    try {
      const r = JSON.parse(md[k] ?? '') as unknown;
      if (ok(r)) return r;
    } catch {
      /* reported below */
    }
    throw new CheckpointError(`${file}: metadata ${k} is not ${what}`);
  };
  const rngOf = (k: string) => json(k, (r) => Array.isArray(r) && r.length === 4 && r.every((x) => Number.isInteger(x)), 'a generator state') as number[];
  const shards = md.shards === undefined ? 1 : num('shards');
  if (shards !== K) throw new CheckpointError(`${file}: the state holds ${shards} buffer shards, the run takes ${K}`);
  const fetches = json('fetches', (r) => Array.isArray(r) && r.length === K && r.every((x) => Number.isInteger(x) && x >= 0), `${K} window counts`) as number[];
  const L = 2 * D * S + S + D;
  const buffers = new Map<number, BufferState>();
  for (const s of mine)
    buffers.set(s, {
      data: Float32Array.from(get(shardName('buffer', s), rows * D)),
      perm: Int32Array.from(get(shardName('buffer_perm', s), rows)),
      pending: Float32Array.from(get(shardName('buffer_pending', s), -1)),
      readPos: num(shardName('buffer_read_pos', s)),
      rng: rngOf(shardName('buffer_rng', s)),
    });
  return {
    params: get('params', L),
    m: get('adam_m', L),
    v: get('adam_v', L),
    buffers,
    rng: rngOf('rng'),
    tokensSinceFired: get('tokens_since_fired', S),
    firedSinceResample: Uint8Array.from(get('fired_since_resample', S)),
    fires: get('fires', S),
    step: num('step'),
    fetches,
  };
}

export type { SaeWeights };
