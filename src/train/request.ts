// From what a caller asks for (TrainRequest: anything may be left out) to what a Trainer runs
// (ResolvedRun: every value decided). Resolution picks the backend, loads the checkpoint to resume,
// applies the defaults (the checkpoint's values when resuming, else the per-backend RUN_DEFAULTS),
// validates every hyper-parameter, and loads the tokenizer and the data. Nothing is allocated for
// training and nothing is written here.
import * as path from 'node:path';
import type { Backend } from '../backend/types.js';
import { selectBackend, type BackendChoice } from '../backend/select.js';
import { makeConfig, DEFAULTS, PRESETS, type Arch, type ModelConfig } from '../model/config.js';
import { archList, isArch } from '../model/archs.js';
import { loadTokenizer, type Tokenizer } from '../data/tokenizer.js';
import { loadDataset, checkVocab, checkWindows, EMBEDDED_NAME, type Dataset, type TextEncodingName } from '../data/corpus.js';
import { metaPathFor, readNanoGptMeta } from '../data/nanogpt.js';
import { loadCheckpoint, resolveCheckpointPath, WEIGHTS_FILE, type Checkpoint, type TrainHyper } from '../checkpoint/checkpoint.js';
import { CrateError, CheckpointError, DataError, UsageError } from '../errors.js';
import { RUN_DEFAULTS, defaultLogEvery, MAX_THREADS, type DefaultModel, type DefaultsTable } from './defaults.js';
import { RequestError } from './request-error.js';

export { RequestError };

/** The weights file of a run directory (model.safetensors; before 0.2: ckpt.safetensors). */
export const CHECKPOINT_NAME = WEIGHTS_FILE;
export const CHART_NAME = 'loss.svg';

/** What a caller asks for; anything left out takes a default (or, when resuming, the checkpoint's value). */
export interface TrainRequest extends Partial<TrainHyper> {
  preset?: string;
  arch?: Arch;
  tokenizer?: string;
  nLayer?: number;
  nHead?: number;
  nEmbd?: number;
  data?: string;
  /** Encoding of text data (default UTF-8, checked; see loadDataset). */
  encoding?: TextEncodingName;
  cacheDir?: string | null;
  backend?: BackendChoice | Backend<unknown>;
  /** Worker threads for native backends, 1..MAX_THREADS (0 or none: the backend's default). */
  threads?: number;
  out?: string;
  resume?: string;
  jsonLog?: string;
  /** Stop (and save) after this step, as an interruption would; the schedule still spans `steps`. */
  stopAt?: number;
  /** train() only: tokens of sample text generated at the end (default 300 bytes or 80 BPE tokens; 0 = none). */
  sampleTokens?: number;
  samplePrompt?: string;
  /** train() only: where progress lines go (nothing is printed by the library itself). */
  log?: (line: string) => void;
  /** train() only: ignore `log`. */
  quiet?: boolean;
  /** train() only: stop (finish the step, save) when this signal aborts. */
  signal?: AbortSignal;
  /** Defaults per backend (default RUN_DEFAULTS). */
  defaults?: DefaultsTable;
}

/** Every value a Trainer needs, decided. */
export interface ResolvedRun {
  backend: Backend<unknown>;
  /** One line: which backend and why. */
  backendReason: string;
  config: ModelConfig;
  preset?: string;
  tokenizer: Tokenizer;
  dataset: Dataset;
  hyper: TrainHyper;
  /** Absolute run directory (created by the Trainer). */
  out: string;
  /** The checkpoint to continue from, or null for a fresh run. */
  resume: Checkpoint | null;
  /** Absolute path of the JSON log, if any. */
  jsonLog?: string;
  stopAt?: number;
  /** Things a caller should tell the user (e.g. the data differ from the checkpoint's). */
  notices: string[];
}

function timestamp(): string {
  const d = new Date();
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

/** Throw a RequestError for the first hyper-parameter out of its range. */
export function checkHyper(h: TrainHyper): void {
  const show = (v: unknown) => (typeof v === 'number' ? String(v) : (JSON.stringify(v) ?? String(v)));
  // steps 0 is a run that writes its seed's initial model (the random-init control), evaluated.
  if (!Number.isSafeInteger(h.steps) || h.steps < 0)
    throw new RequestError('steps', `must be a non-negative integer (0: save the initial model), got ${show(h.steps)}`);
  for (const k of ['batch', 'seq', 'gradAccum'] as const) {
    if (!Number.isSafeInteger(h[k]) || h[k] < 1) throw new RequestError(k, `must be a positive integer, got ${show(h[k])}`);
  }
  for (const k of ['warmup', 'evalEvery', 'evalWindows', 'saveEvery', 'logEvery', 'seed'] as const) {
    if (!Number.isSafeInteger(h[k]) || h[k] < 0) throw new RequestError(k, `must be a non-negative integer, got ${show(h[k])}`);
  }
  const num = (k: keyof TrainHyper, ok: (x: number) => boolean, what: string) => {
    const x = h[k];
    if (typeof x !== 'number' || !Number.isFinite(x) || !ok(x)) throw new RequestError(k, `must be ${what}, got ${show(x)}`);
  };
  num('lr', (x) => x > 0, 'positive');
  num('minLr', (x) => x >= 0, 'non-negative');
  num('weightDecay', (x) => x >= 0, 'non-negative');
  num('beta1', (x) => x >= 0 && x < 1, 'in [0, 1)');
  num('beta2', (x) => x >= 0 && x < 1, 'in [0, 1)');
  num('eps', (x) => x > 0, 'positive');
  num('clip', (x) => x >= 0, 'non-negative (0 = no clipping)');
  num('valFraction', (x) => x > 0 && x < 1, 'in (0, 1)');
}

/** Re-throw an error from a lower layer as `Kind` unless it already is a typed crate-ts error. */
function typed<T>(Kind: new (m: string, o?: { cause?: unknown }) => CrateError, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof CrateError) throw e;
    throw new Kind((e as Error).message ?? String(e), { cause: e });
  }
}
async function typedAsync<T>(Kind: new (m: string, o?: { cause?: unknown }) => CrateError, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof CrateError) throw e;
    throw new Kind((e as Error).message ?? String(e), { cause: e });
  }
}

/** Decide every value of a run. Throws UsageError / RequestError, CheckpointError or DataError. */
export async function resolveRun(req: TrainRequest = {}): Promise<ResolvedRun> {
  const notices: string[] = [];
  checkRequest(req);
  const ck = loadResume(req);
  const { backend, backendReason } = await pickBackend(req, ck);
  const defaults = (req.defaults ?? RUN_DEFAULTS)[backend.name];
  const hyper = pickHyper(req, ck, defaults.hyper);
  const model = ck ? await resumedModel(req, ck, hyper) : await freshModel(req, hyper, backend.name, defaults, notices);
  const dataset = await loadRunData(req, ck, model.tokenizer, model.config, hyper, notices);
  return {
    backend,
    backendReason,
    config: model.config,
    preset: model.preset,
    tokenizer: model.tokenizer,
    dataset,
    hyper,
    out: runDirectory(req, ck, model.config, model.preset),
    resume: ck,
    jsonLog: req.jsonLog !== undefined ? path.resolve(req.jsonLog) : undefined,
    stopAt: req.stopAt,
    notices,
  };
}

/** The request's own fields that no default or checkpoint can fix: threads, stopAt, sizes, arch. */
function checkRequest(req: TrainRequest): void {
  if (req.threads !== undefined && (!Number.isInteger(req.threads) || req.threads < 0 || req.threads > MAX_THREADS)) {
    throw new RequestError('threads', `must be an integer from 1 to ${MAX_THREADS} (0: the backend's default), got ${req.threads}`);
  }
  if (req.stopAt !== undefined && (!Number.isSafeInteger(req.stopAt) || req.stopAt < 1))
    throw new RequestError('stopAt', `must be a positive integer, got ${req.stopAt}`);
  for (const k of ['nLayer', 'nHead', 'nEmbd'] as const) {
    const x = req[k];
    if (x !== undefined && (!Number.isSafeInteger(x) || x < 1)) throw new RequestError(k, `must be a positive integer, got ${x}`);
  }
  if (req.arch !== undefined && !isArch(req.arch)) throw new RequestError('arch', `must be ${archList()}, got '${req.arch}'`);
}

/** The checkpoint to resume (null for a fresh run); one without training state is refused. */
function loadResume(req: TrainRequest): Checkpoint | null {
  if (req.resume === undefined) return null;
  const ck = typed(CheckpointError, () => loadCheckpoint(resolveCheckpointPath(req.resume as string)));
  if (!ck.train)
    throw new CheckpointError(
      ck.trainProblem ??
        `${ck.path} holds no training state (no optimizer.safetensors beside it, no train_state metadata); it can be sampled or evaluated but not resumed`,
    );
  return ck;
}

/**
 * The backend: the caller's object, else the named one; a resumed run stays on the checkpoint's
 * backend unless told otherwise, so that it continues bitwise as the uninterrupted run would.
 */
async function pickBackend(req: TrainRequest, ck: Checkpoint | null): Promise<{ backend: Backend<unknown>; backendReason: string }> {
  const threads = req.threads || undefined;
  if (typeof req.backend === 'object') return { backend: req.backend, backendReason: `${req.backend.name}: given by the caller` };
  if (req.backend === undefined && ck && ['reference', 'cpu', 'cuda'].includes(ck.backend)) {
    try {
      const sel = await selectBackend(ck.backend as BackendChoice, { threads });
      return { backend: sel.backend, backendReason: `${sel.name}: the backend the checkpoint was trained on` };
    } catch (e) {
      const sel = await typedAsync(UsageError, () => selectBackend('auto', { threads }));
      return {
        backend: sel.backend,
        backendReason: `${sel.reason} (the checkpoint's backend ${ck.backend} is unavailable: ${(e as Error).message}; losses will not match an uninterrupted run bitwise)`,
      };
    }
  }
  const sel = await typedAsync(UsageError, () => selectBackend((req.backend as BackendChoice | undefined) ?? 'auto', { threads }));
  return { backend: sel.backend, backendReason: sel.reason };
}

/** Hyper-parameters: the request's, else the checkpoint's, else the backend's defaults (not yet checked). */
function pickHyper(req: TrainRequest, ck: Checkpoint | null, defaults: TrainHyper): TrainHyper {
  const prev = ck?.train?.hyper;
  const pick = <K extends keyof TrainHyper>(k: K): TrainHyper[K] => (req[k] ?? prev?.[k] ?? defaults[k]) as TrainHyper[K];
  const hyper: TrainHyper = {
    steps: pick('steps'),
    batch: pick('batch'),
    seq: pick('seq'),
    gradAccum: pick('gradAccum'),
    lr: pick('lr'),
    minLr: req.minLr ?? prev?.minLr ?? (req.lr !== undefined ? req.lr / 10 : defaults.minLr),
    warmup: pick('warmup'),
    weightDecay: pick('weightDecay'),
    beta1: pick('beta1'),
    beta2: pick('beta2'),
    eps: pick('eps'),
    clip: pick('clip'),
    seed: pick('seed'),
    evalEvery: pick('evalEvery'),
    evalWindows: pick('evalWindows'),
    saveEvery: pick('saveEvery'),
    logEvery: 0,
    valFraction: pick('valFraction'),
  };
  hyper.logEvery = req.logEvery ?? prev?.logEvery ?? defaultLogEvery(hyper.steps);
  // a short run (steps given) warms up for at most a tenth of its steps
  if (req.warmup === undefined && !ck && req.steps !== undefined && Number.isSafeInteger(hyper.steps)) {
    hyper.warmup = Math.min(defaults.warmup, Math.max(1, Math.floor(hyper.steps / 10)));
  }
  return hyper;
}

interface RunModel {
  config: ModelConfig;
  tokenizer: Tokenizer;
  preset?: string;
}

/** The checkpoint's model and tokenizer; the request may not change them, nor ask for no more steps. */
async function resumedModel(req: TrainRequest, ck: Checkpoint, hyper: TrainHyper): Promise<RunModel> {
  const config = ck.config;
  if (req.arch !== undefined && req.arch !== config.arch)
    throw new RequestError(
      'arch',
      `${req.arch} does not match the checkpoint: ${ck.path} holds a ${config.arch} model; it cannot be resumed as another architecture`,
    );
  if (req.tokenizer !== undefined && req.tokenizer !== ck.tokenizer)
    throw new RequestError('tokenizer', `${req.tokenizer} does not match the checkpoint: ${ck.path} was trained with the ${ck.tokenizer} tokenizer`);
  checkHyper(hyper);
  const done = ck.train?.step ?? 0;
  if (done >= hyper.steps)
    throw new RequestError(
      'resume',
      (n) =>
        `${path.dirname(ck.path)} is a finished run (step ${done} of ${ck.train?.hyper.steps ?? done}): nothing to resume; ${n('steps')} N with N > ${done} extends it`,
    );
  if (hyper.seq > config.blockSize) throw new RequestError('seq', `${hyper.seq} exceeds the checkpoint's block size ${config.blockSize}`);
  const tokenizer = await typedAsync(CheckpointError, () => loadTokenizer(ck.tokenizer, ck.tokenizerVocab));
  return { config, tokenizer, preset: ck.train?.preset };
}

/** A fresh run's model: the preset (or the backend's default model), its tokenizer, T and batch. */
async function freshModel(
  req: TrainRequest,
  hyper: TrainHyper,
  backendName: string,
  defaults: { model: DefaultModel; hyper: TrainHyper },
  notices: string[],
): Promise<RunModel> {
  // No preset: the backend's default model (preset + size overrides + sequence length).
  const defaultModel = defaults.model;
  const dm: Partial<DefaultModel> = req.preset === undefined ? defaultModel : {};
  const preset = req.preset ?? defaultModel.preset;
  if (!Object.prototype.hasOwnProperty.call(PRESETS, preset))
    throw new RequestError('preset', `'${preset}' is unknown; known presets: ${Object.keys(PRESETS).join(', ')}`);
  const tokenizer = await pickTokenizer(req, preset, notices);
  applyDefaultShape(req, hyper, preset, backendName, defaults, notices);
  checkHyper(hyper);
  const over: Partial<ModelConfig> = { arch: req.arch ?? 'crate', vocabSize: tokenizer.modelVocabSize, blockSize: hyper.seq };
  for (const k of ['nLayer', 'nHead', 'nEmbd'] as const) {
    const val = req[k] ?? dm[k];
    if (val !== undefined) over[k] = val;
  }
  return { config: typed(UsageError, () => makeConfig(preset, over)), tokenizer, preset };
}

/** The tokenizer a fresh run asks for, else char for a nanoGPT character dataset, else by the preset's vocabulary. */
async function pickTokenizer(req: TrainRequest, preset: string, notices: string[]): Promise<Tokenizer> {
  const presetVocab = PRESETS[preset].vocabSize ?? 50304;
  // A nanoGPT character dataset (meta.pkl beside train.bin) brings its own vocabulary.
  const meta = req.data !== undefined ? metaPathFor(req.data) : null;
  const tokName = req.tokenizer ?? (meta ? 'char' : presetVocab <= 256 ? 'byte' : 'gpt2');
  let vocab: string[] | null = null;
  if (tokName === 'char') {
    if (!meta)
      throw new RequestError(
        'tokenizer',
        (n) =>
          `char needs a vocabulary: a nanoGPT meta.pkl beside train.bin in the ${n('data')} directory (none found${req.data !== undefined ? ` for '${req.data}'` : ''})`,
      );
    vocab = readNanoGptMeta(meta).vocab;
    notices.push(`tokenizer: char, the ${vocab.length}-symbol vocabulary of ${meta} (recorded in the checkpoint)`);
  } else if (meta) {
    notices.push(`note: ${meta} (a nanoGPT character vocabulary) is not used: --tokenizer ${tokName} was given`);
  }
  return typedAsync(UsageError, () => loadTokenizer(tokName, vocab));
}

/**
 * T and batch of a fresh run. A named preset keeps its shape: T is the preset's block size (the
 * paper's presets: 1024) unless seq says otherwise. Only the run that names no preset takes the
 * backend's default model, which may shorten it for speed; every such override is a notice.
 */
function applyDefaultShape(
  req: TrainRequest,
  hyper: TrainHyper,
  preset: string,
  backendName: string,
  defaults: { model: DefaultModel; hyper: TrainHyper },
  notices: string[],
): void {
  const defaultModel = defaults.model;
  const presetT = PRESETS[preset].blockSize ?? DEFAULTS.blockSize;
  if (req.seq === undefined) hyper.seq = req.preset === undefined ? defaultModel.seq : presetT;
  if (req.preset === undefined) {
    const over = [defaultModel.nLayer !== undefined ? `${defaultModel.nLayer} layer${defaultModel.nLayer === 1 ? '' : 's'}` : '', `T ${hyper.seq}`];
    if (defaultModel.nLayer !== undefined || hyper.seq !== presetT)
      notices.push(
        `model: the ${backendName} backend's default, ${preset} with ${over.filter(Boolean).join(', ')} for speed (--preset ${preset} trains the preset's own shape, T ${presetT})`,
      );
  } else if (req.seq !== undefined && req.seq !== presetT) {
    notices.push(`model: T ${req.seq} from --seq (the preset ${preset} has T ${presetT})`);
  }
  // The backend's default batch was set for its default model's T; a preset with a longer T
  // keeps the same tokens per step rather than multiplying them (an explicit batch overrides).
  if (req.batch === undefined && hyper.seq > defaultModel.seq) {
    const tokens = defaults.hyper.batch * defaultModel.seq;
    hyper.batch = Math.max(1, Math.floor(tokens / hyper.seq));
    notices.push(
      `batch ${hyper.batch}: the ${backendName} default of ${tokens.toLocaleString('en-US')} tokens per step at T ${hyper.seq} (--batch N to change)`,
    );
  }
}

/** The data: the request's, else the checkpoint's (not the embedded text), checked against T and V. */
async function loadRunData(
  req: TrainRequest,
  ck: Checkpoint | null,
  tokenizer: Tokenizer,
  config: ModelConfig,
  hyper: TrainHyper,
  notices: string[],
): Promise<Dataset> {
  let dataPath = req.data;
  if (dataPath === undefined && ck?.train && ck.train.data.source !== EMBEDDED_NAME) dataPath = ck.train.data.source;
  const dataset = await typedAsync(DataError, () =>
    loadDataset({ data: dataPath, tokenizer, valFraction: hyper.valFraction, cacheDir: req.cacheDir, encoding: req.encoding }),
  );
  if (ck?.train && ck.train.data.contentHash !== dataset.contentHash)
    notices.push(`warning: the data differ from the data the checkpoint was trained on (${ck.train.data.source})`);
  typed(DataError, () => {
    checkWindows(dataset, hyper.seq);
    checkVocab(dataset, config.vocabSize);
  });
  return dataset;
}

/** The run directory: the request's, else the resumed checkpoint's, else runs/<arch>-<preset>-<time>. */
function runDirectory(req: TrainRequest, ck: Checkpoint | null, config: ModelConfig, preset: string | undefined): string {
  return path.resolve(req.out ?? (ck ? path.dirname(ck.path) : path.join('runs', `${config.arch}-${preset ?? 'custom'}-${timestamp()}`)));
}
