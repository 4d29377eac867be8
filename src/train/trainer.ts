// The training loop as a library (spec 5.1, scaled down): random windows, gradient accumulation,
// AdamW with warm-up + cosine decay, global-norm clipping, evaluation on fixed windows, atomic
// checkpoints, and a resume that continues bitwise-identically on the same backend.
//
//   const trainer = await Trainer.create({ preset: 'char-tiny', steps: 200 });   // or new Trainer(await resolveRun(req))
//   trainer.on('step', (s) => ...);            // also 'eval', 'save', 'done'
//   const result = await trainer.run({ signal });  // stop() or an aborted signal: finish the step, save, return
//   trainer.free();
//
// The library prints nothing and never exits the process; errors are the typed errors of
// src/errors.ts with field names (steps, gradAccum), which the command line maps to its flags.
// train() below is the one-call convenience on top of it.
import { cpuKernelOf } from '../backend/cpu.js';
import { EventEmitter } from 'node:events';
import * as path from 'node:path';
import type { Backend } from '../backend/types.js';
import { LanguageModel } from '../model/lm.js';
import type { ModelConfig } from '../model/config.js';
import { numParams } from '../model/params.js';
import type { Tokenizer } from '../data/tokenizer.js';
import type { Dataset } from '../data/corpus.js';
import { BatchSampler, evalBatches, unigramEntropy, type Batch } from '../data/batches.js';
import { AdamW, clipGradNorm, lrAt } from './optimizer.js';
import { fmtDuration, fmtInt, formatProgress } from './progress.js';
import { lossChartSvg } from './svg.js';
import {
  saveCheckpoint,
  saveRunCheckpoint,
  modelFromCheckpoint,
  optimizerFromCheckpoint,
  type TrainHyper,
  type TrainState,
  type HistoryPoint,
  type EvalPoint,
} from '../checkpoint/checkpoint.js';
import { generate } from '../sample/generate.js';
import { CheckpointError, NumericsError, UsageError } from '../errors.js';
import { resolveRun, CHECKPOINT_NAME, CHART_NAME, type ResolvedRun, type TrainRequest } from './request.js';
import { checkTrainingMemory, type MemoryEstimate } from './memory.js';
import { makeRunDir, removeStaleTemps } from './rundir.js';
import { writeFileAtomic } from '../util/atomic.js';
import { JsonLog, readRunHistory, historyRecords } from './jsonlog.js';
import { crateTsVersion, machineInfo } from '../util/version.js';
import { SINGLE, type Communicator } from '../distributed/communicator.js';
import { prepareTogether } from '../distributed/agree.js';
import { runFingerprint, splitGradAccum } from '../distributed/train.js';
import { DEFAULT_BUCKET_BYTES, GradientReducer } from '../distributed/reducer.js';

/** How a trainer trains with other ranks (defaults: one process). */
export interface DistOptions {
  comm?: Communicator;
  /** 'ordered' (default; bitwise equal to one process) or 'sum' (one all-reduce per step). */
  reduce?: 'ordered' | 'sum';
  /** Gradient bucket size in bytes for reductions that overlap the backward; 0: no overlap (default 256 KiB). */
  bucketBytes?: number;
}

export { resolveRun, checkHyper, RequestError, CHECKPOINT_NAME, CHART_NAME, type TrainRequest, type ResolvedRun } from './request.js';

/** The run's JSON log in its run directory, always written; it holds the loss history. */
export const RUN_LOG_NAME = 'train.jsonl';
export { RUN_DEFAULTS, defaultLogEvery, type DefaultModel } from './defaults.js';

/** One optimizer update. */
export interface StepResult {
  /** Completed updates after this one. */
  step: number;
  /** Mean training loss of the step's micro-batches (before the update). */
  loss: number;
  lr: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Tokens per second over this trainer's steps so far. */
  tokensPerSec: number;
}

export interface StepEvent extends StepResult {
  /** The run's last step (the schedule's length). */
  total: number;
  /** Tokens trained on since step 0 (resumes included). */
  tokens: number;
  /** Training seconds since step 0 (resumes included). */
  elapsed: number;
  /** Seconds left at this trainer's speed. */
  eta: number;
}

export interface EvalEvent {
  step: number;
  split: 'val' | 'train';
  loss: number;
}
export interface SaveEvent {
  step: number;
  path: string;
  seconds: number;
}

export interface RunResult {
  /** Completed updates. */
  step: number;
  /** True when the schedule's last step was reached; false when stopped (stop(), a signal, stopAt). */
  finished: boolean;
  /** Training loss of every update made by this trainer, in order. */
  losses: number[];
  /** Loss on the fixed training / validation windows after the last step (a stopped run: NaN / the last evaluation). */
  trainLoss: number;
  valLoss: number;
  tokensPerSec: number;
  /** Seconds spent in training steps by this trainer. */
  trainSeconds: number;
  checkpoint: string;
}

export interface TrainerEvents {
  step: [StepEvent];
  eval: [EvalEvent];
  save: [SaveEvent];
  done: [RunResult];
}

/** Mean loss of a model over batches (forward only). */
export function evaluate(model: LanguageModel<unknown>, batches: Batch[], T: number): number {
  let total = 0,
    count = 0;
  for (const b of batches) {
    const B = b.x.length / T;
    const r = model.forward(b.x, B, T, b.y, { returnLogits: false, grad: false });
    total += (r.loss as number) * B;
    count += B;
  }
  return total / count;
}

export class Trainer extends EventEmitter<TrainerEvents> {
  readonly backend: Backend<unknown>;
  readonly backendReason: string;
  readonly config: ModelConfig;
  readonly preset: string | undefined;
  readonly tokenizer: Tokenizer;
  readonly dataset: Dataset;
  readonly hyper: TrainHyper;
  /** Absolute run directory, and the weights file, the chart and the JSON log inside it. */
  readonly out: string;
  readonly checkpointPath: string;
  readonly chartPath: string;
  readonly logPath: string;
  /** Entropy (nats) of the validation tokens' unigram distribution: the loss a model must beat. */
  readonly unigramEntropy: number;
  readonly memory: MemoryEstimate;
  /** The step this trainer started from (0, or the resumed checkpoint's). */
  readonly startStep: number;
  readonly resumedFrom: string | null;
  readonly stopAt: number | undefined;
  /** Messages for the user: data that differ from the checkpoint's, stale temporaries removed. */
  readonly notices: string[];
  /** Training loss of every update made by this trainer. */
  readonly losses: number[] = [];
  /** The ranks training together (SINGLE: this process alone); rank 0 alone writes files. */
  readonly comm: Communicator;
  /**
   * How a distributed step sums the ranks' gradients: 'ordered' (default; bitwise equal to one
   * process with the same micro-batches, one all-gather per round of micro-batches) or 'sum' (one
   * all-reduce per step in the library's order: fewer bytes for many ranks, not bitwise).
   */
  readonly reduce: 'ordered' | 'sum';

  private readonly writer: boolean;
  /** Sum of the micro-batch gradients of a step with gradAccum > 1 (one process). */
  private accBuf: unknown = null;
  /** A distributed step's gradient reduction, and its bucket size in bytes (0: no overlap). */
  private reducer: GradientReducer<unknown> | null = null;
  private readonly bucketBytes: number;
  /** A distributed run stops when any rank asked to, after the same step on every rank. */
  private agreedStop = false;
  /** Seconds the latest distributed step waited for collectives (peers included; what the backward did not hide). */
  private lastCommSeconds = 0;

  private readonly model: LanguageModel<unknown>;
  private readonly opt: AdamW<unknown>;
  private readonly sampler: BatchSampler;
  private readonly valBatches: Batch[];
  private trainBatches: Batch[] | null = null;
  /** The run log (train.jsonl) and the --json-log copy, if any. */
  private readonly logs: JsonLog[] = [];
  private history: HistoryPoint[] = [];
  private evals: EvalPoint[] = [];
  private done = 0;
  private tokensSeen = 0;
  private elapsedBefore = 0;
  private trainSeconds = 0;
  private runTokens = 0;
  private lastVal = NaN;
  private stopRequested = false;
  private freed = false;
  private readonly createdAt = performance.now();

  /** Resolve a request (defaults, backend, checkpoint, data) and build a trainer for it. */
  static async create(req: TrainRequest & DistOptions = {}): Promise<Trainer> {
    const comm = req.comm ?? SINGLE;
    if (comm.worldSize === 1) return new Trainer(await resolveRun(req), { comm });
    // Every rank resolves the run; all start, or all stop with the failing rank's message or the
    // first difference between the ranks' runs. gradAccum becomes the step's micro-batches over all ranks.
    const run = await prepareTogether(
      comm,
      'run',
      async () => splitGradAccum(await resolveRun(req), req.gradAccum, comm.worldSize),
      // the bucket size too: ranks that cut the gradient differently would start different collectives
      (r) => ({ ...(runFingerprint(r) as object), reduce: req.reduce ?? 'ordered', bucketBytes: req.bucketBytes ?? DEFAULT_BUCKET_BYTES }),
    );
    return prepareTogether(
      comm,
      'start',
      () => new Trainer(run, { comm, reduce: req.reduce, bucketBytes: req.bucketBytes }),
      () => null,
    );
  }

  /**
   * Build the model and optimizer (from the checkpoint when resuming). Before allocating anything it
   * checks that the run fits in memory; then it creates the run directory and removes the
   * temporaries an interrupted save left there.
   */
  constructor(run: ResolvedRun, opts: DistOptions = {}) {
    super();
    const h = run.hyper;
    this.comm = opts.comm ?? SINGLE;
    this.reduce = opts.reduce ?? 'ordered';
    this.bucketBytes = opts.bucketBytes ?? DEFAULT_BUCKET_BYTES;
    if (!Number.isFinite(this.bucketBytes) || this.bucketBytes < 0) throw new UsageError(`bucketBytes must be a number >= 0, got ${this.bucketBytes}`);
    if (this.reduce !== 'ordered' && this.reduce !== 'sum') throw new UsageError(`reduce must be 'ordered' or 'sum', got '${String(this.reduce)}'`);
    this.writer = this.comm.rank === 0;
    if (h.gradAccum % this.comm.worldSize !== 0)
      throw new UsageError(`gradAccum ${h.gradAccum} (micro-batches per step over all ranks) is not a multiple of the ${this.comm.worldSize} ranks`);
    this.backend = run.backend;
    this.backendReason = run.backendReason;
    this.config = run.config;
    this.preset = run.preset;
    this.tokenizer = run.tokenizer;
    this.dataset = run.dataset;
    this.hyper = h;
    this.stopAt = run.stopAt;
    this.notices = [...run.notices];
    this.memory = checkTrainingMemory(run.config, h.batch, h.seq, run.backend);
    const ck = run.resume;
    const extraLog = run.jsonLog !== undefined && this.writer ? new JsonLog(run.jsonLog, ck !== null) : null;
    this.out = this.writer ? makeRunDir(run.out) : path.resolve(run.out);
    this.checkpointPath = path.join(this.out, CHECKPOINT_NAME);
    this.chartPath = path.join(this.out, CHART_NAME);
    this.logPath = path.join(this.out, RUN_LOG_NAME);
    const removed = this.writer ? removeStaleTemps(this.out) : [];
    if (removed.length)
      this.notices.push(
        `removed ${removed.length} stale temporary file${removed.length > 1 ? 's' : ''} of an interrupted save in ${this.out}: ${removed.join(', ')}`,
      );
    // The loss history so far: the checkpoint's run log (a pre-0.2 checkpoint: its train_state).
    if (ck?.train) {
      const fromLog = readRunHistory(path.join(path.dirname(ck.path), RUN_LOG_NAME), ck.train.step);
      const legacy = ck.train.history?.length ? { steps: ck.train.history, evals: ck.train.evals ?? [] } : null;
      const h = fromLog.steps.length || !legacy ? fromLog : legacy;
      this.history = h.steps.map((p) => ({ ...p }));
      this.evals = h.evals.map((e) => ({ ...e }));
    }
    // Resuming in the checkpoint's own directory appends to its log; a fresh log that continues a
    // run starts with the history so far, so that the next resume finds it there.
    const continuing = ck !== null && path.resolve(path.dirname(ck.path)) === this.out && readRunHistory(this.logPath).steps.length > 0;
    if (this.writer) {
      const runLog = new JsonLog(this.logPath, continuing);
      if (ck && !continuing) for (const rec of historyRecords({ steps: this.history, evals: this.evals })) runLog.write(rec);
      this.logs.push(runLog);
      if (extraLog && path.resolve(extraLog.file) !== this.logPath) this.logs.push(extraLog);
    }
    this.unigramEntropy = unigramEntropy(run.dataset.val);
    this.resumedFrom = ck ? ck.path : null;

    this.model = ck ? modelFromCheckpoint(ck, run.backend) : new LanguageModel(run.backend, run.config, { seed: h.seed });
    this.opt = new AdamW(this.model, { beta1: h.beta1, beta2: h.beta2, eps: h.eps, weightDecay: h.weightDecay });
    this.sampler = new BatchSampler(run.dataset.train, h.seed + 1);
    try {
      if (ck?.train) {
        const st = ck.train;
        const moments = optimizerFromCheckpoint(ck, this.model);
        if (!moments) throw new CheckpointError(`${ck.path} holds no optimizer moments; it cannot be resumed`);
        this.opt.setState({ ...moments, t: st.step });
        this.sampler.setState(st.dataRng);
        this.done = st.step;
        this.tokensSeen = st.tokensSeen;
        this.elapsedBefore = st.elapsed;
      }
      this.valBatches = evalBatches(run.dataset.val, h.batch, h.seq, h.evalWindows);
    } catch (e) {
      this.free();
      throw e;
    }
    this.startStep = this.done;
    this.logWrite(this.configRecord());
  }

  /** Completed optimizer updates (resumed ones included). */
  get stepsDone(): number {
    return this.done;
  }
  /** True once stop() was called (or the run's signal aborted). */
  get stopping(): boolean {
    return this.stopRequested;
  }
  get parameterCount(): number {
    return this.model.numParameters;
  }
  get tokensPerStep(): number {
    return this.hyper.batch * this.hyper.seq * this.hyper.gradAccum;
  }

  /**
   * One optimizer update: gradAccum micro-batches, clipping, AdamW at the scheduled learning rate.
   * With gradAccum > 1 each micro-batch's gradient is computed on its own and the gradients are
   * added in micro-batch order (acc = ((0 + g1) + g2) + ...), the sum N ranks reproduce bitwise
   * (stepAsync). A distributed trainer steps with stepAsync (run() does).
   */
  step(): StepResult {
    const h = this.hyper,
      B = h.batch,
      T = h.seq,
      K = h.gradAccum;
    this.checkStep();
    if (this.comm.worldSize > 1) throw new UsageError('step() runs one process; a distributed trainer steps with stepAsync() (run() does)');
    const ts = performance.now();
    let lossSum = 0;
    this.model.zeroGrad();
    if (K === 1) {
      lossSum += this.micro(this.sampler.next(B, T));
    } else {
      const be = this.backend,
        acc = (this.accBuf ??= be.alloc(this.model.numParameters));
      be.fill(acc, 0);
      for (let micro = 0; micro < K; micro++) {
        if (micro > 0) this.model.zeroGrad();
        lossSum += this.micro(this.sampler.next(B, T));
        be.add(acc, acc, this.model.grads);
      }
      be.copy(this.model.grads, acc);
    }
    return this.finishStep(ts, lossSum / K);
  }

  /**
   * One optimizer update of a distributed run (any rank count; one process: step()). The step's
   * K = gradAccum micro-batches are drawn by every rank from the same seeded sampler, in rounds of
   * one per rank: in round j rank r computes micro-batch j·N + r, and the ordered reduction adds the
   * N gradients onto the running sum in rank order. The sum is the same left fold over micro-batches
   * 0..K-1 as step()'s, so N ranks x K/N micro-batches give bitwise the losses and parameters of one
   * process with K. The reduction runs in buckets that start while the backward of the blocks below
   * still runs (src/distributed/reducer.ts; bitwise the same sum). Every rank then clips and applies
   * the same AdamW step.
   */
  async stepAsync(): Promise<StepResult> {
    if (this.comm.worldSize === 1) return this.step();
    const h = this.hyper,
      B = h.batch,
      T = h.seq,
      K = h.gradAccum,
      N = this.comm.worldSize,
      rank = this.comm.rank;
    this.checkStep();
    const ts = performance.now();
    const red = (this.reducer ??= new GradientReducer(this.comm, this.backend, this.model, { mode: this.reduce, bucketBytes: this.bucketBytes }));
    red.begin(K / N);
    for (let round = 0; round < K / N; round++) {
      let mine: Batch | null = null;
      for (let q = 0; q < N; q++) {
        const b = this.sampler.next(B, T);
        if (q === rank) mine = b;
      }
      this.model.zeroGrad();
      const loss = this.micro(mine as Batch, red.startRound());
      await red.endRound(loss, this.stopRequested);
    }
    const { lossSum, stop, commSeconds } = await red.finish();
    this.lastCommSeconds = commSeconds;
    if (stop) this.agreedStop = true;
    return this.finishStep(ts, lossSum / K);
  }

  private checkStep(): void {
    const h = this.hyper;
    if (this.freed) throw new UsageError('this trainer was freed');
    if (this.done >= h.steps) throw new UsageError(`the run is complete (step ${this.done} of ${h.steps}); there is no step left`);
  }

  /** Forward and backward of one micro-batch (gradients scaled by 1/gradAccum); its loss. onReady: see LanguageModel.backward. */
  private micro(b: Batch, onReady?: (from: number) => void): number {
    const h = this.hyper;
    const r = this.model.forward(b.x, h.batch, h.seq, b.y, { returnLogits: false, gradScale: 1 / h.gradAccum });
    this.model.backward(onReady);
    return r.loss as number;
  }

  /** Clip, AdamW, and the step's bookkeeping (history, log, event). */
  private finishStep(ts: number, loss: number): StepResult {
    const h = this.hyper;
    const lr = lrAt(this.done + 1, { lr: h.lr, minLr: h.minLr, warmup: h.warmup, total: h.steps });
    if (!Number.isFinite(loss))
      throw new NumericsError(`the training loss is ${loss} at step ${this.done + 1}: training diverged (a lower learning rate may help)`);
    const gradNorm = clipGradNorm(this.model, h.clip);
    this.opt.step(lr);
    this.done++;
    this.tokensSeen += this.tokensPerStep;
    this.runTokens += this.tokensPerStep;
    this.trainSeconds += (performance.now() - ts) / 1000;
    this.losses.push(loss);
    this.history.push({ step: this.done, loss, lr });
    const tokensPerSec = this.runTokens / Math.max(this.trainSeconds, 1e-9);
    const elapsed = this.elapsedBefore + this.trainSeconds;
    const eta = ((h.steps - this.done) * this.trainSeconds) / Math.max(1, this.losses.length);
    const dist = this.comm.worldSize > 1 ? { ranks: this.comm.worldSize, comm_seconds: this.lastCommSeconds } : {};
    this.logWrite({ type: 'step', step: this.done, loss, lr, grad_norm: gradNorm, tokens: this.tokensSeen, tokens_per_sec: tokensPerSec, elapsed, ...dist });
    const result: StepResult = { step: this.done, loss, lr, gradNorm, tokensPerSec };
    this.emit('step', { ...result, total: h.steps, tokens: this.tokensSeen, elapsed, eta });
    return result;
  }

  /** Mean loss over the fixed evaluation windows of a split (the same windows every time). */
  evaluate(split: 'val' | 'train' = 'val'): number {
    if (this.freed) throw new UsageError('this trainer was freed');
    if (split !== 'val' && split !== 'train') throw new UsageError(`split must be 'val' or 'train', got '${String(split)}'`);
    const h = this.hyper;
    let batches = this.valBatches;
    if (split === 'train') batches = this.trainBatches ??= evalBatches(this.dataset.train, h.batch, h.seq, h.evalWindows);
    const loss = evaluate(this.model, batches, h.seq);
    if (split === 'val') {
      this.lastVal = loss;
      const last = this.evals[this.evals.length - 1];
      if (last && last.step === this.done) last.val = loss;
      else this.evals.push({ step: this.done, val: loss });
      this.logWrite({ type: 'eval', step: this.done, split, val_loss: loss });
    } else {
      this.logWrite({ type: 'eval', step: this.done, split, train_loss: loss });
    }
    this.emit('eval', { step: this.done, split, loss });
    return loss;
  }

  /**
   * Write a checkpoint atomically and return the weights file's path: by default into the run
   * directory (model.safetensors, config.json, optimizer.safetensors with the AdamW moments and
   * the data position; the history is in train.jsonl). Given a file, a self-contained single-file
   * checkpoint there instead (weights, moments, train_state with the history), which loads and
   * resumes the same way.
   */
  save(file?: string): string {
    if (this.freed) throw new UsageError('this trainer was freed');
    if (!this.writer) return file ?? this.checkpointPath;
    const t0 = performance.now();
    const o = this.opt.getState();
    const input = {
      model: this.model,
      tokenizer: this.tokenizer.name,
      tokenizerVocab: this.tokenizer.vocab ?? null,
      optimizer: { m: o.m, v: o.v },
      train: this.trainState(),
    };
    if (file === undefined) {
      saveRunCheckpoint(this.out, input);
      file = this.checkpointPath;
    } else {
      saveCheckpoint(file, input);
    }
    const seconds = (performance.now() - t0) / 1000;
    this.logWrite({ type: 'save', step: this.done, path: file, seconds });
    this.emit('save', { step: this.done, path: file, seconds });
    return file;
  }

  /** Ask run() to stop after the step in progress (it then saves and returns). */
  stop(): void {
    this.stopRequested = true;
  }

  /**
   * Train to the end of the schedule (or to stopAt, or until stop() / the signal), evaluating and
   * saving every evalEvery / saveEvery steps; then evaluate (if the schedule is complete) and save.
   */
  async run(opts: { signal?: AbortSignal; stopAt?: number } = {}): Promise<RunResult> {
    const h = this.hyper;
    const onAbort = () => this.stop();
    if (opts.signal?.aborted) this.stop();
    opts.signal?.addEventListener('abort', onAbort);
    const lastStep = Math.min(h.steps, opts.stopAt ?? this.stopAt ?? Infinity);
    try {
      const dist = this.comm.worldSize > 1;
      while (this.done < lastStep && !(dist ? this.agreedStop : this.stopRequested)) {
        if (dist) await this.stepAsync();
        else this.step();
        const s = this.done;
        if (h.evalEvery > 0 && s % h.evalEvery === 0 && s !== h.steps && this.writer) this.evaluate('val');
        if (h.saveEvery > 0 && s % h.saveEvery === 0 && s < lastStep) this.save();
        // let signals, aborts and I/O through between steps
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      const finished = this.done >= h.steps;
      let trainLoss = NaN,
        valLoss = this.lastVal;
      if (finished && this.writer) {
        valLoss = this.evaluate('val');
        trainLoss = this.evaluate('train');
      }
      this.save();
      const result: RunResult = {
        step: this.done,
        finished,
        losses: [...this.losses],
        trainLoss,
        valLoss,
        tokensPerSec: this.runTokens / Math.max(this.trainSeconds, 1e-9),
        trainSeconds: this.trainSeconds,
        checkpoint: this.checkpointPath,
      };
      if (finished) {
        this.logWrite({
          type: 'summary',
          step: this.done,
          train_loss: trainLoss,
          val_loss: valLoss,
          unigram_entropy: this.unigramEntropy,
          tokens_per_sec: result.tokensPerSec,
          backend: this.backend.name,
          wall_seconds: (performance.now() - this.createdAt) / 1000,
        });
      }
      this.emit('done', result);
      return result;
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** The loss chart (training loss per step, validation points, the unigram entropy) as SVG text. */
  lossChart(): string {
    return lossChartSvg({
      title: `${this.config.arch} ${this.preset ?? ''} on ${path.basename(this.dataset.source)} (${this.tokenizer.name} tokens), ${this.backend.name} backend`,
      train: this.history.map((p) => ({ step: p.step, loss: p.loss })),
      val: this.evals.map((e) => ({ step: e.step, loss: e.val })),
      refs: [{ label: 'unigram entropy (val)', value: this.unigramEntropy }],
    });
  }

  /** Write the loss chart atomically (default: loss.svg in the run directory); returns its path. */
  writeLossChart(file: string = this.chartPath): string {
    if (this.writer) writeFileAtomic(file, this.lossChart());
    return file;
  }

  /** Text continuing `prompt`, decoded incrementally on the training backend from the current parameters. */
  sample(opts: { tokens: number; prompt?: string; temperature?: number; topK?: number; seed?: number }): string {
    const prompt = opts.prompt ?? 'The ';
    const ids = this.tokenizer.encode(prompt);
    const gen = generate(this.model, ids.length ? ids : [this.tokenizer.eot ?? 10], {
      tokens: opts.tokens,
      temperature: opts.temperature ?? 0.8,
      topK: opts.topK ?? 40,
      seed: opts.seed ?? this.hyper.seed,
      maxId: this.tokenizer.vocabSize,
    });
    return prompt + this.tokenizer.decode(gen);
  }

  /** What this run is, in a few lines (backend, data, model, schedule, notices). */
  describe(): string[] {
    const c = this.config,
      h = this.hyper,
      ds = this.dataset;
    const lines = [
      `backend: ${this.backendReason}${cpuKernelOf(this.backend) !== null ? `; SGEMM kernel ${cpuKernelOf(this.backend)} (runs are bitwise reproducible per kernel)` : ''}`,
      `data: ${ds.source} (${ds.kind}, tokenizer ${this.tokenizer.name}): ${fmtInt(ds.train.length)} training + ${fmtInt(ds.val.length)} validation tokens (${ds.split}); cache: ${ds.cache}`,
      `unigram entropy of the validation tokens: ${this.unigramEntropy.toFixed(4)} nats (a model must beat this)`,
    ];
    if (this.resumedFrom) lines.push(`resuming from ${this.resumedFrom} at step ${this.startStep} of ${h.steps}`);
    lines.push(
      `model: ${c.arch} ${this.preset ?? ''} (V ${c.vocabSize}, T ${c.blockSize}, L ${c.nLayer}, heads ${c.nHead}, d ${c.nEmbd}): ${fmtInt(numParams(this.model.table))} parameters (${fmtInt(this.model.numParameters)} with wpe)`,
      `training: ${h.steps} steps x ${fmtInt(this.tokensPerStep)} tokens (batch ${h.batch} x seq ${h.seq} x accum ${h.gradAccum}), lr ${h.lr} -> ${h.minLr} (warm-up ${h.warmup}), out ${this.out}`,
      ...this.notices,
    );
    return lines;
  }

  /** The end-of-run summary of a finished run, in lines. */
  summary(r: RunResult, wallSeconds: number): string[] {
    const tail = r.losses.slice(-Math.max(1, Math.min(20, r.losses.length)));
    const avg = tail.length ? (tail.reduce((a, b) => a + b, 0) / tail.length).toFixed(4) : 'n/a';
    const H1 = this.unigramEntropy;
    return [
      r.step === 0
        ? `done: 0 steps (--steps 0): the initial model of seed ${this.hyper.seed}, untrained, saved as a run (a random-init control); ${fmtDuration(wallSeconds)} wall`
        : `done: ${r.step} steps, ${fmtInt(this.tokensSeen)} tokens; this run ${fmtDuration(wallSeconds)} wall, ${fmtInt(r.tokensPerSec)} tokens/s on the ${this.backend.name} backend`,
      `  train loss ${r.trainLoss.toFixed(4)} (perplexity ${Math.exp(r.trainLoss).toFixed(2)}; last ${tail.length} steps averaged ${avg})`,
      `  val loss   ${r.valLoss.toFixed(4)} (perplexity ${Math.exp(r.valLoss).toFixed(2)})`,
      `  unigram entropy of the validation tokens ${H1.toFixed(4)} nats (perplexity ${Math.exp(H1).toFixed(2)}): the model is ${Math.abs(H1 - r.valLoss).toFixed(3)} nats/token ${H1 - r.valLoss >= 0 ? 'better' : 'worse (train longer)'}`,
      `  checkpoint ${this.checkpointPath}`,
    ];
  }

  /** Release the model's and optimizer's buffers (idempotent). */
  free(): void {
    if (this.freed) return;
    this.freed = true;
    this.opt?.free();
    if (this.accBuf !== null) this.backend.free(this.accBuf);
    this.accBuf = null;
    this.reducer?.free();
    this.model?.free();
  }

  private logWrite(rec: Record<string, unknown>): void {
    for (const log of this.logs) log.write(rec);
  }

  private trainState(): TrainState {
    const ds = this.dataset;
    return {
      step: this.done,
      dataRng: this.sampler.getState(),
      tokensSeen: this.tokensSeen,
      elapsed: this.elapsedBefore + this.trainSeconds,
      hyper: this.hyper,
      data: { source: ds.source, contentHash: ds.contentHash, kind: ds.kind, split: ds.split, unigramEntropy: this.unigramEntropy },
      history: this.history,
      evals: this.evals,
      preset: this.preset,
    };
  }

  private configRecord(): Record<string, unknown> {
    const ds = this.dataset;
    return {
      type: 'config',
      version: crateTsVersion(),
      time: new Date().toISOString(),
      resumed_from: this.resumedFrom,
      step: this.done,
      out: this.out,
      checkpoint: this.checkpointPath,
      log: this.logPath,
      model: { ...this.config, preset: this.preset ?? null, parameters: this.model.numParameters },
      hyper: this.hyper,
      stop_at: this.stopAt ?? null,
      data: {
        source: ds.source,
        kind: ds.kind,
        content_hash: ds.contentHash,
        split: ds.split,
        train_tokens: ds.train.length,
        val_tokens: ds.val.length,
        unigram_entropy: this.unigramEntropy,
      },
      tokenizer: this.tokenizer.name,
      backend: { name: this.backend.name, dtype: this.backend.dtype, reason: this.backendReason, cpu_kernel: cpuKernelOf(this.backend) },
      dist: { kind: this.comm.kind, ranks: this.comm.worldSize, reduce: this.reduce, bucket_bytes: this.bucketBytes, description: this.comm.description },
      machine: machineInfo(),
    };
  }
}

// ---- the driver loop ------------------------------------------------------------------------------
// One loop for a whole run, shared by train() below and `crate-ts train` (src/cli/train.ts): describe
// the run, report the logged steps and the evaluations, run the Trainer to the end (or to its stop),
// write loss.svg, then the stop line or the summary and, for a finished run, a sample. The callers
// differ only in where the lines go (a callback; the terminal's progress bar), in how a run is
// stopped (an AbortSignal; the CLI's signal handlers call trainer.stop()) and in whether a sample is
// drawn. A data-parallel run goes through it too: Trainer.run steps every rank together.

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

export interface DriveOptions {
  /** performance.now() when the run was asked for (its wall time counts from here). */
  t0: number;
  /** Where the run's lines go: its description, evaluations, the stop line or summary, the sample. */
  log: (line: string) => void;
  /**
   * Every step; `logged` is true for the steps that get a line (every logEvery steps, the first and
   * the last). Default: a formatProgress line on the logged steps. null: steps and evaluations are
   * not reported at all (a quiet terminal).
   */
  onStep?: ((s: StepEvent, logged: boolean) => void) | null;
  /** Called when the Trainer's run returns or throws (the terminal ends its progress bar). */
  afterRun?: () => void;
  signal?: AbortSignal;
  /** Stop (and save) after this step; the schedule still spans its steps. */
  stopAt?: number;
  /** Tokens of sample text at the end of a finished run (default 300 for byte and char tokenizers, 80 for gpt2; 0: none). */
  sampleTokens?: number;
  samplePrompt?: string;
  /** Whether to draw the sample once the run has finished (default yes). */
  wantSample?: () => boolean;
}

/** Run a created Trainer through to its result (the caller frees the trainer). */
export async function driveRun(trainer: Trainer, o: DriveOptions): Promise<TrainResult> {
  const log = o.log;
  for (const line of trainer.describe()) log(line);
  const h = trainer.hyper,
    lastStep = Math.min(h.steps, o.stopAt ?? Infinity);
  if (o.onStep !== null) {
    const onStep = o.onStep ?? ((s: StepEvent, logged: boolean) => (logged ? log(formatProgress(s)) : undefined));
    trainer.on('step', (s) => onStep(s, h.logEvery > 0 && (s.step % h.logEvery === 0 || s.step === 1 || s.step === lastStep)));
    trainer.on('eval', (e) => {
      if (e.split === 'val' && e.step < h.steps) log(`step ${e.step}: validation loss ${e.loss.toFixed(4)} (perplexity ${Math.exp(e.loss).toFixed(2)})`);
    });
  }
  let r;
  try {
    r = await trainer.run({ signal: o.signal, stopAt: o.stopAt });
  } finally {
    o.afterRun?.();
  }
  // A stop during the final evaluation and save lets them finish.
  const svg = trainer.writeLossChart();
  const wallSeconds = (performance.now() - o.t0) / 1000;
  const result: TrainResult = {
    out: trainer.out,
    checkpoint: r.checkpoint,
    svg,
    backend: trainer.backend.name,
    backendReason: trainer.backendReason,
    config: trainer.config,
    tokenizer: trainer.tokenizer.name,
    step: r.step,
    losses: r.losses,
    trainLoss: r.trainLoss,
    valLoss: r.valLoss,
    unigramEntropy: trainer.unigramEntropy,
    tokensPerSec: r.tokensPerSec,
    wallSeconds,
    interrupted: !r.finished,
  };
  if (!r.finished) {
    log(`stopped at step ${r.step} of ${h.steps} after ${fmtDuration(wallSeconds)}; checkpoint saved to ${r.checkpoint}`);
    return result;
  }
  log('');
  for (const line of trainer.summary(r, wallSeconds)) log(line);
  log(`  loss curve ${svg}`);
  const nSample = o.sampleTokens ?? (trainer.tokenizer.name === 'gpt2' ? 80 : 300);
  if (nSample > 0 && (o.wantSample?.() ?? true)) {
    result.sample = trainer.sample({ tokens: nSample, prompt: o.samplePrompt });
    log(`sample (temperature 0.8, top-k 40):\n${result.sample}`);
  }
  return result;
}

/**
 * Run (or resume) training in one call: a Trainer run to the end (or to stopAt / req.signal), then
 * loss.svg and, for a finished run, a sample. Prints nothing: progress lines go to req.log.
 */
export async function train(req: TrainRequest = {}): Promise<TrainResult> {
  const t0 = performance.now();
  const log = req.quiet || !req.log ? () => {} : req.log;
  const trainer = await Trainer.create(req);
  try {
    return await driveRun(trainer, { t0, log, signal: req.signal, stopAt: req.stopAt, sampleTokens: req.sampleTokens, samplePrompt: req.samplePrompt });
  } finally {
    trainer.free();
  }
}
