// The training loop (spec 5.1, scaled down): random windows, gradient accumulation, AdamW with
// warm-up + cosine decay, global-norm clipping, periodic evaluation and atomic checkpoints, Ctrl-C
// saves and stops, --resume continues bitwise-identically on the same backend.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Backend } from '../backend/types.js';
import { selectBackend, type BackendChoice } from '../backend/select.js';
import { LanguageModel } from '../model/lm.js';
import { makeConfig, PRESETS, type Arch, type ModelConfig } from '../model/config.js';
import { numParams } from '../model/params.js';
import { loadTokenizer, type Tokenizer } from '../data/tokenizer.js';
import { loadDataset, checkVocab, checkWindows, EMBEDDED_NAME, type Dataset } from '../data/corpus.js';
import { BatchSampler, evalBatches, unigramEntropy, type Batch } from '../data/batches.js';
import { AdamW, clipGradNorm, lrAt } from './optimizer.js';
import { Progress, fmtDuration, fmtInt } from './progress.js';
import { lossChartSvg } from './svg.js';
import { saveCheckpoint, loadCheckpoint, modelFromCheckpoint, optimizerFromCheckpoint, type TrainHyper, type TrainState, type HistoryPoint, type EvalPoint } from '../checkpoint/checkpoint.js';
import { generate } from '../sample/generate.js';

/** What a caller asks for; anything left out takes a default (or, when resuming, the checkpoint's value). */
export interface TrainRequest extends Partial<TrainHyper> {
  preset?: string;
  arch?: Arch;
  tokenizer?: string;
  nLayer?: number; nHead?: number; nEmbd?: number;
  data?: string;
  cacheDir?: string | null;
  backend?: BackendChoice | Backend<unknown>;
  threads?: number;
  out?: string;
  resume?: string;
  jsonLog?: string;
  /** Stop (and save) after this step, as an interruption would; the schedule still spans `steps`. */
  stopAt?: number;
  sampleTokens?: number;
  samplePrompt?: string;
  /** Where messages go (default process.stdout). */
  stdout?: { write(s: string): unknown; isTTY?: boolean; columns?: number };
  /** Install a SIGINT handler that saves and stops (the CLI does; tests don't). Default false. */
  handleSigint?: boolean;
  /** Print nothing but errors. */
  quiet?: boolean;
}

export interface TrainResult {
  out: string;
  checkpoint: string;
  svg: string;
  backend: string;
  backendReason: string;
  config: ModelConfig;
  tokenizer: string;
  /** Step reached (completed updates). */
  step: number;
  /** Training loss of every update made by this call, in order. */
  losses: number[];
  /** Loss on fixed training / validation windows after the last step (NaN if not evaluated). */
  trainLoss: number;
  valLoss: number;
  unigramEntropy: number;
  tokensPerSec: number;
  wallSeconds: number;
  interrupted: boolean;
  sample?: string;
}

/** The model a run with no --preset trains: a preset plus size overrides, and its sequence length. */
export interface DefaultModel { preset: string; seq: number; nLayer?: number; nHead?: number; nEmbd?: number }

/**
 * Defaults for a run with no arguments, per backend. They were chosen by timing and sweeping on a
 * 2-core machine (see src/train/README.md): a byte-level CRATE on the embedded Moby-Dick that ends
 * well below the unigram entropy of the validation text within a few minutes.
 */
export const RUN_DEFAULTS: Record<'reference' | 'cpu' | 'cuda', { model: DefaultModel; hyper: TrainHyper }> = {
  // float64 TypeScript: ~1k tokens/s on 2 busy cores, so a 1-layer d-64 model with 32-token windows
  // (256k tokens, ~3-6 minutes).
  reference: {
    model: { preset: 'char-tiny', nLayer: 1, seq: 32 },
    hyper: {
      steps: 500, batch: 16, seq: 32, gradAccum: 1, lr: 5e-3, minLr: 5e-4, warmup: 20,
      weightDecay: 0.1, beta1: 0.9, beta2: 0.95, eps: 1e-8, clip: 1.0, seed: 1337,
      evalEvery: 100, evalWindows: 128, saveEvery: 100, logEvery: 25, valFraction: 0.1,
    },
  },
  // native C++: 20-35k tokens/s for char-tiny, so the full 2-layer char-tiny for 5M tokens (~2.5-5 minutes).
  cpu: {
    model: { preset: 'char-tiny', seq: 64 },
    hyper: {
      steps: 5000, batch: 16, seq: 64, gradAccum: 1, lr: 3e-3, minLr: 3e-4, warmup: 100,
      weightDecay: 0.1, beta1: 0.9, beta2: 0.95, eps: 1e-8, clip: 1.0, seed: 1337,
      evalEvery: 1000, evalWindows: 256, saveEvery: 1000, logEvery: 250, valFraction: 0.1,
    },
  },
  // not yet measured on a GPU: the cpu defaults.
  cuda: {
    model: { preset: 'char-tiny', seq: 64 },
    hyper: {
      steps: 3000, batch: 16, seq: 64, gradAccum: 1, lr: 3e-3, minLr: 3e-4, warmup: 100,
      weightDecay: 0.1, beta1: 0.9, beta2: 0.95, eps: 1e-8, clip: 1.0, seed: 1337,
      evalEvery: 500, evalWindows: 256, saveEvery: 500, logEvery: 100, valFraction: 0.1,
    },
  },
};

export const CHECKPOINT_NAME = 'ckpt.safetensors';
export const CHART_NAME = 'loss.svg';

function timestamp(): string {
  const d = new Date();
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

function checkHyper(h: TrainHyper): void {
  const ints: (keyof TrainHyper)[] = ['steps', 'batch', 'seq', 'gradAccum'];
  for (const k of ints) if (!Number.isInteger(h[k]) || h[k] < 1) throw new Error(`--${flag(k)} must be a positive integer, got ${h[k]}`);
  for (const k of ['warmup', 'evalEvery', 'evalWindows', 'saveEvery', 'logEvery', 'seed'] as const) {
    if (!Number.isInteger(h[k]) || h[k] < 0) throw new Error(`--${flag(k)} must be a non-negative integer, got ${h[k]}`);
  }
  if (!(h.lr > 0)) throw new Error(`--lr must be positive, got ${h.lr}`);
  if (!(h.minLr >= 0)) throw new Error(`--min-lr must be non-negative, got ${h.minLr}`);
}

const flag = (k: string) => k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());

/** Mean loss of a model over batches (forward only). */
export function evaluate(model: LanguageModel<unknown>, batches: Batch[], T: number): number {
  let total = 0, count = 0;
  for (const b of batches) {
    const B = b.x.length / T;
    const r = model.forward(b.x, B, T, b.y, { returnLogits: false, grad: false });
    total += (r.loss as number) * B;
    count += B;
  }
  return total / count;
}

/** Run (or resume) training. */
export async function train(req: TrainRequest = {}): Promise<TrainResult> {
  const stdout = req.stdout ?? process.stdout;
  const progress = new Progress(stdout);
  const say = (s: string) => { if (!req.quiet) progress.line(s); };
  const t0 = Date.now();

  // ---- checkpoint to resume ----------------------------------------------------------------------
  const ck = req.resume !== undefined ? loadCheckpoint(resolveCheckpointPath(req.resume)) : null;
  if (ck && !ck.train) throw new Error(`${ck.path} holds no training state (train_state metadata); it can be sampled or evaluated but not resumed`);

  // ---- backend: a resumed run stays on the checkpoint's backend unless told otherwise, so that it
  // continues bitwise as the uninterrupted run would -------------------------------------------------
  let backend: Backend<unknown>, backendReason: string;
  if (typeof req.backend === 'object') {
    backend = req.backend;
    backendReason = `${backend.name}: given by the caller`;
  } else if (req.backend === undefined && ck && ['reference', 'cpu', 'cuda'].includes(ck.backend)) {
    try {
      const sel = await selectBackend(ck.backend as BackendChoice, { threads: req.threads });
      backend = sel.backend;
      backendReason = `${sel.name}: the backend the checkpoint was trained on`;
    } catch (e) {
      const sel = await selectBackend('auto', { threads: req.threads });
      backend = sel.backend;
      backendReason = `${sel.reason} (the checkpoint's backend ${ck.backend} is unavailable: ${(e as Error).message}; losses will not match an uninterrupted run bitwise)`;
    }
  } else {
    const sel = await selectBackend(req.backend ?? 'auto', { threads: req.threads });
    backend = sel.backend;
    backendReason = sel.reason;
  }
  say(`backend: ${backendReason}`);

  const defaults = RUN_DEFAULTS[backend.name].hyper, defaultModel = RUN_DEFAULTS[backend.name].model;
  const pick = <K extends keyof TrainHyper>(k: K): TrainHyper[K] => (req[k] ?? ck?.train?.hyper[k] ?? defaults[k]) as TrainHyper[K];
  const hyper: TrainHyper = {
    steps: pick('steps'), batch: pick('batch'), seq: pick('seq'), gradAccum: pick('gradAccum'),
    lr: pick('lr'), minLr: req.minLr ?? ck?.train?.hyper.minLr ?? (req.lr !== undefined ? req.lr / 10 : defaults.minLr),
    warmup: pick('warmup'), weightDecay: pick('weightDecay'), beta1: pick('beta1'), beta2: pick('beta2'), eps: pick('eps'),
    clip: pick('clip'), seed: pick('seed'), evalEvery: pick('evalEvery'), evalWindows: pick('evalWindows'),
    saveEvery: pick('saveEvery'), logEvery: pick('logEvery'), valFraction: pick('valFraction'),
  };
  if (req.warmup === undefined && !ck && req.steps !== undefined) hyper.warmup = Math.min(defaults.warmup, Math.max(1, Math.floor(hyper.steps / 10)));
  checkHyper(hyper);

  let config: ModelConfig;
  let tokenizer: Tokenizer;
  let preset: string | undefined;
  if (ck) {
    config = ck.config;
    if (req.arch !== undefined && req.arch !== config.arch) throw new Error(`${ck.path} holds a ${config.arch} model; it cannot be resumed as --arch ${req.arch}`);
    if (req.tokenizer !== undefined && req.tokenizer !== ck.tokenizer) throw new Error(`${ck.path} was trained with the ${ck.tokenizer} tokenizer; it cannot be resumed with --tokenizer ${req.tokenizer}`);
    if (hyper.seq > config.blockSize) throw new Error(`--seq ${hyper.seq} exceeds the checkpoint's block size ${config.blockSize}`);
    tokenizer = await loadTokenizer(ck.tokenizer);
    preset = ck.train?.preset;
  } else {
    // No --preset: the backend's default model (preset + size overrides + sequence length).
    const dm: Partial<DefaultModel> = req.preset === undefined ? defaultModel : {};
    preset = req.preset ?? defaultModel.preset;
    if (!PRESETS[preset]) throw new Error(`unknown preset '${preset}'; known presets: ${Object.keys(PRESETS).join(', ')}`);
    const presetVocab = PRESETS[preset].vocabSize ?? 50304;
    tokenizer = await loadTokenizer(req.tokenizer ?? (presetVocab <= 256 ? 'byte' : 'gpt2'));
    if (req.seq === undefined) hyper.seq = dm.seq ?? PRESETS[preset].blockSize ?? hyper.seq;
    const over: Partial<ModelConfig> = { arch: req.arch ?? 'crate', vocabSize: tokenizer.modelVocabSize, blockSize: hyper.seq };
    for (const k of ['nLayer', 'nHead', 'nEmbd'] as const) {
      const val = req[k] ?? dm[k];
      if (val !== undefined) over[k] = val;
    }
    config = makeConfig(preset, over);
  }

  // ---- data ------------------------------------------------------------------------------------
  let dataPath = req.data;
  if (dataPath === undefined && ck?.train && ck.train.data.source !== EMBEDDED_NAME) dataPath = ck.train.data.source;
  const ds: Dataset = await loadDataset({ data: dataPath, tokenizer, valFraction: hyper.valFraction, cacheDir: req.cacheDir });
  if (ck?.train && ck.train.data.contentHash !== ds.contentHash) say(`warning: the data differ from the data the checkpoint was trained on (${ck.train.data.source})`);
  checkWindows(ds, hyper.seq);
  checkVocab(ds, config.vocabSize);
  const H1 = unigramEntropy(ds.val);
  say(`data: ${ds.source} (${ds.kind}, tokenizer ${tokenizer.name}): ${fmtInt(ds.train.length)} training + ${fmtInt(ds.val.length)} validation tokens (${ds.split}); cache: ${ds.cache}`);
  say(`unigram entropy of the validation tokens: ${H1.toFixed(4)} nats (a model must beat this)`);

  // ---- model, optimizer, sampler -----------------------------------------------------------------
  const model = ck ? modelFromCheckpoint(ck, backend) : new LanguageModel(backend, config, { seed: hyper.seed });
  const opt = new AdamW(model, { beta1: hyper.beta1, beta2: hyper.beta2, eps: hyper.eps, weightDecay: hyper.weightDecay });
  const sampler = new BatchSampler(ds.train, hyper.seed + 1);
  let step = 0, tokensSeen = 0, elapsedBefore = 0;
  let history: HistoryPoint[] = [], evals: EvalPoint[] = [];
  if (ck?.train) {
    const st = ck.train;
    const moments = optimizerFromCheckpoint(ck, model);
    if (!moments) throw new Error(`${ck.path} holds no optimizer moments; it cannot be resumed`);
    opt.setState({ ...moments, t: st.step });
    sampler.setState(st.dataRng);
    step = st.step; tokensSeen = st.tokensSeen; elapsedBefore = st.elapsed;
    history = st.history ?? []; evals = st.evals ?? [];
    say(`resuming from ${ck.path} at step ${step} of ${hyper.steps}`);
  }

  const out = path.resolve(req.out ?? (ck ? path.dirname(ck.path) : path.join('runs', `${config.arch}-${preset ?? 'custom'}-${timestamp()}`)));
  fs.mkdirSync(out, { recursive: true });
  const ckptPath = path.join(out, CHECKPOINT_NAME);
  const svgPath = path.join(out, CHART_NAME);
  const T = hyper.seq, B = hyper.batch;
  const tokensPerStep = B * T * hyper.gradAccum;
  say(`model: ${config.arch} ${preset ?? ''} (V ${config.vocabSize}, T ${config.blockSize}, L ${config.nLayer}, heads ${config.nHead}, d ${config.nEmbd}): ${fmtInt(numParams(model.table))} parameters (${fmtInt(model.numParameters)} with wpe)`);
  say(`training: ${hyper.steps} steps x ${fmtInt(tokensPerStep)} tokens (batch ${B} x seq ${T} x accum ${hyper.gradAccum}), lr ${hyper.lr} -> ${hyper.minLr} (warm-up ${hyper.warmup}), out ${out}`);

  const jsonLog = req.jsonLog ? path.resolve(req.jsonLog) : null;
  if (jsonLog && !ck) fs.writeFileSync(jsonLog, '');
  const logJson = (obj: Record<string, unknown>) => { if (jsonLog) fs.appendFileSync(jsonLog, JSON.stringify(obj) + '\n'); };

  const valBatches = evalBatches(ds.val, B, T, hyper.evalWindows);
  const trainEvalBatches = evalBatches(ds.train, B, T, hyper.evalWindows);

  const trainState = (): TrainState => ({
    step, dataRng: sampler.getState(), tokensSeen, elapsed: elapsedBefore + trainSeconds, hyper,
    data: { source: ds.source, contentHash: ds.contentHash, kind: ds.kind, split: ds.split, unigramEntropy: H1 },
    history, evals, preset,
  });
  const save = () => {
    const o = opt.getState();
    saveCheckpoint(ckptPath, { model, tokenizer: tokenizer.name, optimizer: { m: o.m, v: o.v }, train: trainState() });
  };

  // ---- Ctrl-C ------------------------------------------------------------------------------------
  let interrupted = false;
  const onSigint = () => {
    if (interrupted) { progress.line('second Ctrl-C: exiting without waiting for the checkpoint'); process.exit(130); }
    interrupted = true;
    progress.line('Ctrl-C: finishing this step, saving a checkpoint and stopping (press again to quit at once)');
  };
  if (req.handleSigint) process.on('SIGINT', onSigint);

  // ---- loop --------------------------------------------------------------------------------------
  const losses: number[] = [];
  let trainSeconds = 0, runTokens = 0;
  const lastStep = Math.min(hyper.steps, req.stopAt ?? Infinity);
  let lastVal = NaN;
  try {
    while (step < lastStep && !interrupted) {
      const ts = performance.now();
      const lr = lrAt(step + 1, { lr: hyper.lr, minLr: hyper.minLr, warmup: hyper.warmup, total: hyper.steps });
      model.zeroGrad();
      let lossSum = 0;
      for (let micro = 0; micro < hyper.gradAccum; micro++) {
        const b = sampler.next(B, T);
        const r = model.forward(b.x, B, T, b.y, { returnLogits: false, gradScale: 1 / hyper.gradAccum });
        model.backward();
        lossSum += r.loss as number;
      }
      const loss = lossSum / hyper.gradAccum;
      if (!Number.isFinite(loss)) throw new Error(`the training loss is ${loss} at step ${step + 1}: training diverged (try a lower --lr)`);
      const gradNorm = clipGradNorm(model, hyper.clip);
      opt.step(lr);
      step++;
      tokensSeen += tokensPerStep; runTokens += tokensPerStep;
      trainSeconds += (performance.now() - ts) / 1000;
      losses.push(loss);
      history.push({ step, loss, lr });
      const tps = runTokens / trainSeconds;
      const logNow = hyper.logEvery > 0 && (step % hyper.logEvery === 0 || step === 1 || step === lastStep);
      if (!req.quiet) progress.update({ step, total: hyper.steps, loss, lr, tokensPerSec: tps, eta: ((hyper.steps - step) * trainSeconds) / Math.max(1, losses.length) }, logNow);
      logJson({ type: 'step', step, loss, lr, grad_norm: gradNorm, tokens: tokensSeen, tokens_per_sec: tps, elapsed: elapsedBefore + trainSeconds });

      if (hyper.evalEvery > 0 && step % hyper.evalEvery === 0 && step !== hyper.steps) {
        lastVal = evaluate(model, valBatches, T);
        evals.push({ step, val: lastVal });
        say(`step ${step}: validation loss ${lastVal.toFixed(4)} (perplexity ${Math.exp(lastVal).toFixed(2)})`);
        logJson({ type: 'eval', step, val_loss: lastVal });
      }
      if (hyper.saveEvery > 0 && step % hyper.saveEvery === 0 && step < lastStep) save();
      // let signals and I/O through between steps
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    progress.done();
    // The handler stays installed through the final evaluation, save and sample: a Ctrl-C there just
    // lets them finish (a second one exits at once; the last periodic checkpoint is intact).

    // ---- wrap up -----------------------------------------------------------------------------------
    const finished = step >= hyper.steps;
    let trainLoss = NaN, valLoss = NaN;
    if (finished) {
      valLoss = evaluate(model, valBatches, T);
      trainLoss = evaluate(model, trainEvalBatches, T);
      if (!evals.length || evals[evals.length - 1].step !== step) evals.push({ step, val: valLoss });
    } else {
      valLoss = lastVal;
    }
    save();
    fs.writeFileSync(svgPath, lossChartSvg({
      title: `${config.arch} ${preset ?? ''} on ${path.basename(ds.source)} (${tokenizer.name} tokens), ${backend.name} backend`,
      train: history.map((h) => ({ step: h.step, loss: h.loss })),
      val: evals.map((e) => ({ step: e.step, loss: e.val })),
      refs: [{ label: 'unigram entropy (val)', value: H1 }],
    }));
    const tokensPerSec = runTokens / Math.max(trainSeconds, 1e-9);
    const wallSeconds = (Date.now() - t0) / 1000;
    const result: TrainResult = {
      out, checkpoint: ckptPath, svg: svgPath, backend: backend.name, backendReason, config, tokenizer: tokenizer.name,
      step, losses, trainLoss, valLoss, unigramEntropy: H1, tokensPerSec, wallSeconds, interrupted: !finished,
    };

    if (!finished) {
      say(`stopped at step ${step} of ${hyper.steps}; checkpoint saved to ${ckptPath}`);
      say(`continue with: crate-ts train --resume ${ckptPath}`);
    } else {
      const tail = losses.slice(-Math.max(1, Math.min(20, losses.length)));
      say('');
      say(`done: ${step} steps, ${fmtInt(tokensSeen)} tokens; this run ${fmtDuration(wallSeconds)} wall, ${fmtInt(tokensPerSec)} tokens/s on the ${backend.name} backend`);
      say(`  train loss ${trainLoss.toFixed(4)} (perplexity ${Math.exp(trainLoss).toFixed(2)}; last ${tail.length} steps averaged ${(tail.reduce((a, b) => a + b, 0) / tail.length).toFixed(4)})`);
      say(`  val loss   ${valLoss.toFixed(4)} (perplexity ${Math.exp(valLoss).toFixed(2)})`);
      say(`  unigram entropy of the validation tokens ${H1.toFixed(4)} nats (perplexity ${Math.exp(H1).toFixed(2)}): the model is ${(H1 - valLoss).toFixed(3)} nats/token better`);
      say(`  checkpoint ${ckptPath}`);
      say(`  loss curve ${svgPath}`);
      const nSample = req.sampleTokens ?? (tokenizer.name === 'byte' ? 300 : 80);
      if (nSample > 0) {
        const prompt = req.samplePrompt ?? 'The ';
        const ids = tokenizer.encode(prompt);
        const gen = generate(config, model.getParams(), ids.length ? ids : [tokenizer.eot ?? 10], {
          tokens: nSample, temperature: 0.8, topK: 40, seed: hyper.seed, maxId: tokenizer.vocabSize,
        });
        result.sample = prompt + tokenizer.decode(gen);
        say(`sample (temperature 0.8, top-k 40):\n${result.sample}`);
      }
      logJson({ type: 'summary', step, train_loss: trainLoss, val_loss: valLoss, unigram_entropy: H1, tokens_per_sec: tokensPerSec, backend: backend.name, wall_seconds: wallSeconds });
    }
    return result;
  } finally {
    progress.done();
    if (req.handleSigint) process.removeListener('SIGINT', onSigint);
    opt.free();
    model.free();
  }
}

/** A checkpoint file, or a run directory holding ckpt.safetensors. */
export function resolveCheckpointPath(p: string): string {
  try {
    if (fs.statSync(p).isDirectory()) return path.join(p, CHECKPOINT_NAME);
  } catch {
    throw new Error(`checkpoint '${p}' does not exist`);
  }
  return p;
}
