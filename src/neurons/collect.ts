// crate-ts neurons collect, as a library function: run a checkpoint over N tokens cut into
// contiguous windows of its block size, stop after the last requested layer, and stream every
// neuron of the requested layers through a LayerCollector (spec 7.2-7.3). Memory does not grow
// with N (only the N token ids are kept, which tokens.u32 stores anyway). Writes the collection
// directory described in format.ts; manifest.json goes last, so a directory with a manifest is
// complete, and every file is written under a temporary name and renamed.
import { crateTsVersion } from '../util/version.js';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Backend } from '../backend/types.js';
import { cpuKernelOf } from '../backend/cpu.js';
import { loadCheckpoint, modelFromCheckpoint, resolveCheckpointPath, type Checkpoint } from '../checkpoint/checkpoint.js';
import { loadDataset, EMBEDDED_NAME, type Dataset, type TextEncodingName } from '../data/corpus.js';
import { loadTokenizer, type Tokenizer } from '../data/tokenizer.js';
import { CheckpointError, CrateError, DataError, UsageError } from '../errors.js';
import type { LanguageModel } from '../model/lm.js';
import { LayerCollector, type NeuronSelection, type Selected } from './collector.js';
import { AtomicWriter, writeFileAtomic, type WriteSyncFn } from '../util/atomic.js';
import { sha256File } from '../util/hash.js';
import { excerptDecoder, type ExcerptDecoder } from './excerpt.js';
import { saeFeatures, type SaeFeatures } from '../sae/features.js';
import { WEIGHTS_FILE } from '../sae/format.js';
import { SINGLE, type Communicator } from '../distributed/communicator.js';
import { prepareTogether } from '../distributed/agree.js';
import { shardWindows, packShards, unpackShards } from '../distributed/collect.js';
import {
  COLLECTION_FORMAT,
  COLLECTION_FORMAT_VERSION,
  finiteOrNull,
  layerDir,
  neuronRecordJson,
  type ActivationRecord,
  type CollectionManifest,
  type ExcerptGeometry,
  type Variant,
} from './format.js';

/** The paper's collection size: 8000 windows of 1024 tokens (spec 7.2). */
export const PAPER_TOKENS = 8000 * 1024;
export const TOP_K = 50;
export const N_RANDOM = 50;
export const QUANTILE = { bins: 11, perBin: 20, sample: 720 };
export const OPENAI_GEOMETRY: ExcerptGeometry = { before: 32, after: 32 };
export const ANTHROPIC_GEOMETRY: ExcerptGeometry = { before: 4, after: 4 };

export interface CollectOptions {
  /** A checkpoint file, or a run directory holding model.safetensors (or a pre-0.2 ckpt.safetensors). */
  checkpoint: string;
  /** Text file, directory or token file; undefined = the embedded corpus. */
  data?: string;
  /** Which tokens of the data: all of them in order (default), or the training / held-out split. */
  split?: 'all' | 'train' | 'val';
  /** Tokens to collect (rounded down to whole windows). Default: all, at most PAPER_TOKENS. */
  tokens?: number;
  /** Layers (default: all). */
  layers?: number[];
  /**
   * Hook: a per-layer suffix ("hook_neurons", "ista.hook_code", "hook_resid_post"), a template with
   * "{l}", or a full name ("blocks.1.mlp.hook_post"), which fixes the layer. Default hook_neurons.
   */
  hook?: string;
  variant?: Variant;
  seed?: number;
  backend: Backend<unknown>;
  /** Windows per forward (default 1). */
  batch?: number;
  out: string;
  /** Replace a collection already in `out`. */
  force?: boolean;
  /** Token cache directory for loadDataset (null: none). */
  cacheDir?: string | null;
  /** Encoding of text data (default UTF-8, checked). */
  encoding?: TextEncodingName;
  /** Called after every forward. */
  onProgress?: (p: { tokens: number; total: number; tokensPerSec: number; eta: number }) => void;
  /**
   * An SAE directory (SAELens layout): collect its features instead of the hook's units, under the
   * hook name `<SAE hook>.hook_sae_acts_post` (the SAE's hook fixes the layer).
   */
  sae?: string;
  /** The low-level write (tests replace it to simulate a full disk). */
  writeSync?: WriteSyncFn;
  /**
   * Ranks sharing the work (default: this process alone). Each rank runs its share of the windows
   * (plus a halo for the excerpts), rank 0 merges the shards exactly and alone writes the directory.
   */
  comm?: Communicator;
  /**
   * Stop when this aborts (Ctrl-C in the command line): the forward loop yields to the event loop
   * between windows, and collect() throws CollectInterrupted having written nothing.
   */
  signal?: AbortSignal;
}

/** collect() was stopped by its signal before it wrote anything; `tokens` of `total` were processed. */
export class CollectInterrupted extends Error {
  constructor(
    readonly tokens: number,
    readonly total: number,
    readonly out: string,
  ) {
    super(`collection interrupted after ${tokens} of ${total} tokens; nothing was written to '${out}'`);
    this.name = 'CollectInterrupted';
  }
}

export interface CollectSummary {
  dir: string;
  manifest: CollectionManifest;
  elapsed: number;
  tokensPerSec: number;
  peakRssBytes: number;
  /** CPU seconds (user + system, all threads) of the forward + streaming phase: steadier than wall time on a shared machine. */
  cpuSeconds: number;
}

const COLLECTION_ENTRIES = /^(manifest\.json|tokens\.u32|layer-\d+|scores-[\w-]+\.jsonl)$/;
/** The lock a running collect holds on its output directory (pid and start time inside). */
export const LOCK_FILE = '.crate-ts-collect.lock';
/** Folders of the crate-ts package itself that a collection must not be written into. */
const PACKAGE_DIRS = ['src', 'dist', 'native', 'bin', 'test', 'scripts', 'docs', 'data', 'fixtures', 'node_modules', '.git', 'build'];

/** True when `dir` holds (part of) a neuron collection. */
export function holdsCollection(dir: string): boolean {
  if (!fs.existsSync(dir)) return false;
  if (!fs.statSync(dir).isDirectory()) throw new UsageError((n) => `${n('out')} '${dir}' exists and is not a directory`, { option: 'out' });
  return fs.readdirSync(dir).some((e) => COLLECTION_ENTRIES.test(e));
}

const PACKAGE_ROOT = path.resolve(fileURLToPath(new URL('../../', import.meta.url)));

/** Refuse an --out that lies inside crate-ts's own source tree, or that is a non-empty directory holding no collection. */
export function checkOutDir(out: string): void {
  const abs = path.resolve(out);
  for (const d of PACKAGE_DIRS) {
    const guarded = path.join(PACKAGE_ROOT, d);
    if (abs === guarded || abs.startsWith(guarded + path.sep))
      throw new UsageError((n) => `${n('out')} '${out}' is inside crate-ts's own ${d}/ folder (${guarded}); write collections somewhere else`, {
        option: 'out',
      });
  }
  if (!fs.existsSync(out)) return;
  if (!fs.statSync(out).isDirectory()) throw new UsageError((n) => `${n('out')} '${out}' exists and is not a directory`, { option: 'out' });
  const entries = fs.readdirSync(out).filter((e) => e !== LOCK_FILE);
  if (entries.length > 0 && !entries.some((e) => COLLECTION_ENTRIES.test(e))) {
    const shown = entries.slice(0, 3).join(', ') + (entries.length > 3 ? `, ... (${entries.length} entries)` : '');
    throw new UsageError((n) => `${n('out')} '${out}' is not empty and holds no neuron collection (${shown}); give a new or empty directory`, {
      option: 'out',
    });
  }
}

/**
 * Take the output directory's lock (creating the directory), so that two collects cannot write the
 * same collection; a lock whose process is gone is taken over. Returns the release function, which
 * also removes the directory when this call created it and nothing else was written there.
 */
export function lockOutDir(out: string): () => void {
  const created = !fs.existsSync(out);
  try {
    fs.mkdirSync(out, { recursive: true });
  } catch (e) {
    throw new DataError(`cannot create output directory '${out}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const lock = path.join(out, LOCK_FILE);
  for (let attempt = 0; ; attempt++) {
    try {
      fs.writeFileSync(lock, JSON.stringify({ pid: process.pid, started: new Date().toISOString() }) + '\n', { flag: 'wx' });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0)
        throw new DataError(`cannot lock output directory '${out}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      let holder: { pid?: unknown; started?: unknown } = {};
      try {
        holder = JSON.parse(fs.readFileSync(lock, 'utf8')) as typeof holder;
      } catch {
        /* a lock being written, or garbage: treated as held by an unknown process below */
      }
      const pid = typeof holder.pid === 'number' ? holder.pid : null;
      if (pid !== null && pid !== process.pid && !alive(pid)) {
        fs.rmSync(lock, { force: true }); // its process is gone: take the lock over
        continue;
      }
      throw new UsageError(
        (n) =>
          `another crate-ts neurons collect${pid !== null ? ` (pid ${pid}${typeof holder.started === 'string' ? `, started ${holder.started}` : ''})` : ''} is writing to '${out}'; wait for it to finish or choose another ${n('out')} (if no collect is running, delete ${lock})`,
        { option: 'out' },
      );
    }
  }
  return () => {
    fs.rmSync(lock, { force: true });
    if (created) {
      try {
        fs.rmdirSync(out); // only succeeds when empty: nothing was written
      } catch {
        /* the collection (or something else) is there */
      }
    }
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A checkpoint path: the file itself, or a run directory's model.safetensors (resolveCheckpointPath). */
export function checkpointFile(p: string): string {
  return resolveCheckpointPath(p);
}

/** Errors of other modules that are not yet typed become the given kind, with their message. */
function typed<T>(f: () => T, Kind: new (m: string, o?: { cause?: unknown }) => CrateError, prefix = ''): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof CrateError) throw e;
    throw new Kind(prefix + (e as Error).message, { cause: e });
  }
}

/** Resolve --hook and --layers into one hook name per layer, validated against the model. */
export function resolveHooks(model: LanguageModel<unknown>, hook: string | undefined, layers: number[] | undefined): { layers: number[]; hooks: string[] } {
  const L = model.config.nLayer;
  const h = hook ?? 'hook_neurons';
  const full = /^blocks\.(\d+)\.(.+)$/.exec(h);
  let ls: number[];
  let nameOf: (l: number) => string;
  if (full) {
    const fixed = Number(full[1]);
    if (layers !== undefined && !(layers.length === 1 && layers[0] === fixed))
      throw new UsageError(
        (n) =>
          `${n('hook')} ${h} names layer ${fixed}, which disagrees with ${n('layers')} ${layers.join(',')} (give a hook without the blocks.{l}. prefix to collect several layers)`,
        { option: 'hook' },
      );
    ls = [fixed];
    nameOf = () => h;
  } else {
    ls = layers ?? Array.from({ length: L }, (_, l) => l);
    nameOf = h.includes('{l}') ? (l) => h.replaceAll('{l}', String(l)) : (l) => `blocks.${l}.${h}`;
  }
  if (ls.length === 0) throw new UsageError((n) => `${n('layers')} is empty`, { option: 'layers' });
  for (const l of ls) {
    if (!Number.isInteger(l) || l < 0 || l >= L)
      throw new UsageError(`layer ${l} is out of range: the model has ${L} layer${L === 1 ? '' : 's'} (0..${L - 1})`);
  }
  if (new Set(ls).size !== ls.length) throw new UsageError((n) => `${n('layers')} lists a layer twice (${ls.join(',')})`, { option: 'layers' });
  const hooks = ls.map(nameOf);
  const valid = model.hookNames();
  for (const name of hooks) {
    const alias = /^blocks\.\d+\.hook_neurons$/.test(name);
    if (!alias && !valid.includes(name)) {
      const suffixes = [...new Set(valid.filter((v) => v.startsWith('blocks.0.')).map((v) => v.slice('blocks.0.'.length)))];
      throw new UsageError(`unknown hook '${name}'; per-layer hooks of this ${model.config.arch} model: hook_neurons, ${suffixes.join(', ')}`);
    }
    const shape = model.hookShape(name, 1, 2);
    if (shape.length !== 3 || shape[1] !== 2)
      throw new UsageError(`hook '${name}' has shape [B, ${shape.slice(1).join(', ')}] for a (B, T) batch; collect needs one vector per token, (B, T, width)`);
  }
  return { layers: ls, hooks };
}

/** Collect activation records; see the module comment. Library code: prints nothing. */
/**
 * The tokens a collection (or an SAE evaluation) reads: the checkpoint's tokenizer, the data
 * (`data` or the embedded corpus), the split asked for (train, val, or both in that order), every id
 * checked against the checkpoint's vocabulary.
 */
export async function checkpointTokens(
  ck: Checkpoint,
  ckFile: string,
  opts: { data?: string; cacheDir?: string | null; encoding?: TextEncodingName; split: 'train' | 'val' | 'all' },
): Promise<{ tok: Tokenizer; ds: Dataset; avail: Uint16Array }> {
  const tok: Tokenizer = await loadTokenizer(ck.tokenizer, ck.tokenizerVocab).catch((e: Error) => {
    throw new CheckpointError(`${ckFile}: ${e.message}`);
  });
  const ds = await loadDataset({ data: opts.data, tokenizer: tok, cacheDir: opts.cacheDir, encoding: opts.encoding }).catch((e: Error) => {
    throw e instanceof CrateError ? e : new DataError(e.message, { cause: e });
  });
  let avail: Uint16Array;
  if (opts.split === 'train') avail = ds.train;
  else if (opts.split === 'val') avail = ds.val;
  else {
    avail = new Uint16Array(ds.train.length + ds.val.length);
    avail.set(ds.train);
    avail.set(ds.val, ds.train.length);
  }
  const V = ck.config.vocabSize;
  for (let i = 0; i < avail.length; i++)
    if (avail[i] >= V)
      throw new DataError(
        `token ${i} of '${ds.source}' has id ${avail[i]}, outside the vocabulary of ${V} of this ${ck.tokenizer}-tokenizer checkpoint (data made with another tokenizer?)`,
      );
  return { tok, ds, avail };
}

export async function collect(opts: CollectOptions): Promise<CollectSummary> {
  const t0 = performance.now();
  const variant = opts.variant ?? 'openai';
  const seed = opts.seed ?? 0;
  const batch = opts.batch ?? 1;
  if (!['openai', 'anthropic', 'both'].includes(variant)) throw new UsageError(`variant must be openai, anthropic or both, got '${variant}'`);
  if (!Number.isInteger(batch) || batch < 1) throw new UsageError(`batch must be a positive integer, got ${batch}`);
  if (!Number.isInteger(seed) || seed < 0) throw new UsageError(`seed must be a non-negative integer, got ${seed}`);
  if (opts.tokens !== undefined && (!Number.isInteger(opts.tokens) || opts.tokens < 1))
    throw new UsageError(`tokens must be a positive integer, got ${opts.tokens}`);
  const writer = (opts.comm?.rank ?? 0) === 0; // rank 0 alone writes (and locks) the directory
  if (writer) checkOutDir(opts.out);
  if (!opts.force && holdsCollection(opts.out))
    throw new UsageError((n) => `output directory '${opts.out}' already holds a neuron collection; pass ${n('force')} to replace it`, { option: 'force' });
  const unlock = writer ? lockOutDir(opts.out) : () => {};
  try {
    return await collectLocked(opts, t0, variant, seed, batch);
  } finally {
    unlock();
  }
}

async function collectLocked(opts: CollectOptions, t0: number, variant: Variant, seed: number, batch: number): Promise<CollectSummary> {
  const comm = opts.comm ?? SINGLE;
  const prepare = async () => {
    // checkpoint, tokenizer, data
    const ckFile = checkpointFile(opts.checkpoint);
    const ck: Checkpoint = typed(() => loadCheckpoint(ckFile), CheckpointError);
    const split = opts.split ?? 'all';
    const { tok, ds, avail } = await checkpointTokens(ck, ckFile, { ...opts, split });
    const T = ck.config.blockSize;
    const want = opts.tokens ?? Math.min(avail.length, PAPER_TOKENS);
    if (want > avail.length) throw new DataError(`the data ('${ds.source}', ${split}) has ${avail.length} tokens, fewer than the ${want} asked for`);
    const nWin = Math.floor(want / T);
    if (nWin < 1) throw new DataError(`${want} tokens are fewer than one window of ${T} (the model's block size)`);
    const N = nWin * T;
    const tokens = avail.subarray(0, N);
    return { ckFile, ck, tok, ds, split, avail, T, nWin, N, tokens };
  };
  // Every rank prepares; all go on, or all stop with the failing rank's message (or the difference).
  const { ckFile, ck, tok, ds, split, avail, T, nWin, N, tokens } =
    comm.worldSize > 1
      ? await prepareTogether(comm, 'collection', prepare, (p) => ({
          checkpoint: sha256File(p.ckFile),
          data: p.ds.contentHash,
          tokens: p.N,
          window: p.T,
        }))
      : await prepare();

  const model = typed(() => modelFromCheckpoint(ck, opts.backend), CheckpointError) as LanguageModel<unknown>;
  let sae: SaeFeatures | null = null;
  try {
    if (opts.sae !== undefined && opts.hook !== undefined)
      throw new UsageError((n) => `${n('sae')} and ${n('hook')} exclude each other (the SAE names its hook)`, { option: 'sae' });
    const sel = opts.sae === undefined ? resolveHooks(model, opts.hook, opts.layers) : null;
    if (opts.sae !== undefined) sae = saeFeatures(opts.sae, model, ckFile, opts.backend, opts.layers);
    const layers = sel ? sel.layers : [sae!.layer];
    const hooks = sel ? sel.hooks : [sae!.name];
    const stopAtLayer = Math.max(...layers) + 1;
    const widths = sel ? hooks.map((h) => model.hookShape(h, 1, 1)[2]) : [sae!.S];
    const geometry = {
      top: variant === 'anthropic' ? ANTHROPIC_GEOMETRY : OPENAI_GEOMETRY,
      random: variant === 'anthropic' ? ANTHROPIC_GEOMETRY : OPENAI_GEOMETRY,
      quantile: ANTHROPIC_GEOMETRY,
    };
    const quantile = variant === 'openai' ? null : QUANTILE;
    const precision = opts.backend.dtype === 'f64' ? 'f64' : 'f32';
    const reach = Math.max(geometry.top.before, geometry.random.before, quantile ? geometry.quantile.before : 0);
    const reachAfter = Math.max(geometry.top.after, geometry.random.after, quantile ? geometry.quantile.after : 0);
    // this rank's windows [w0, w1) with their halo, and its positions [lo, hi)
    const sh = shardWindows(nWin, batch, T, comm.rank, comm.worldSize, reach, reachAfter);
    const shard = comm.worldSize > 1 ? { first: sh.w0 * T, lo: sh.lo, hi: sh.hi } : undefined;
    const collectorFor = (j: number, s?: { first: number; lo: number; hi: number }) =>
      new LayerCollector({ H: widths[j], N, topK: TOP_K, nRandom: N_RANDOM, quantile, geometry, seed, layer: layers[j], precision, what: hooks[j], shard: s });
    let collectors = layers.map((_, j) => collectorFor(j, shard));

    // the forward passes
    const tStart = performance.now();
    const cpuStart = process.cpuUsage();
    const idx = new Int32Array(batch * T);
    for (let w = sh.w0; w < sh.w1; w += batch) {
      const B = Math.min(batch, nWin - w);
      const ids = B === batch ? idx : idx.subarray(0, B * T);
      for (let j = 0; j < B * T; j++) ids[j] = tokens[w * T + j];
      if (sae) {
        const { cache } = model.runWithCache(ids, B, T, { names: [sae.hook], stopAtLayer, returnLogits: false });
        collectors[0].push(sae.encode(cache.get(sae.hook), B, T), B * T);
      } else {
        const { cache } = model.runWithCache(ids, B, T, { names: hooks, stopAtLayer, returnLogits: false });
        hooks.forEach((h, j) => {
          const a = cache.get(h);
          const n = B * T,
            H = widths[j];
          const dense = a.offset === 0 && a.stride[2] === 1 && a.stride[1] === H && a.stride[0] === T * H && a.data.length >= n * H;
          collectors[j].push(dense ? a.data : denseCopy(a, B, T, H), n);
        });
      }
      if (opts.signal) {
        // let a signal handler run between windows (the forward itself is synchronous)
        await new Promise<void>((resolve) => setImmediate(resolve));
        if (opts.signal.aborted) throw new CollectInterrupted((w + B - sh.w0) * T, (sh.w1 - sh.w0) * T, opts.out);
      }
      if (opts.onProgress) {
        const total = (sh.w1 - sh.w0) * T,
          done = (w + B - sh.w0) * T,
          secs = (performance.now() - tStart) / 1000;
        const rate = done / Math.max(secs, 1e-9);
        opts.onProgress({ tokens: done, total, tokensPerSec: rate, eta: (total - done) / rate });
      }
    }
    for (const c of collectors) c.finish();
    if (comm.worldSize > 1) {
      // rank 0 merges every rank's shard into collectors over all N positions
      const parts = await comm.gather(packShards(collectors.map((c) => c.exportShard())));
      if (parts) {
        const shards = unpackShards(parts, layers.length);
        collectors = layers.map((_, j) => {
          const c = collectorFor(j);
          c.mergeShards(shards.map((s) => s[j]));
          return c;
        });
      }
    }
    const collectSecs = (performance.now() - tStart) / 1000;
    const cpu = process.cpuUsage(cpuStart);
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;

    // output (rank 0 alone writes)
    const writer = comm.rank === 0;
    if (writer) {
      prepareOut(opts.out, Boolean(opts.force));
      const decode = await excerptDecoder(tok);
      writeTokens(path.join(opts.out, 'tokens.u32'), tokens, opts.writeSync);
      layers.forEach((l, j) => writeLayer(opts.out, l, collectors[j], widths[j], tokens, decode, opts.writeSync));
    }
    const peak = process.resourceUsage().maxRSS * 1024;
    const elapsed = (performance.now() - t0) / 1000;
    const manifest: CollectionManifest = {
      format: COLLECTION_FORMAT,
      format_version: COLLECTION_FORMAT_VERSION,
      crate_ts_version: crateTsVersion(),
      created: new Date().toISOString(),
      checkpoint: { path: path.resolve(ckFile), sha256: sha256File(ckFile), arch: ck.config.arch, config: { ...ck.config }, step: ck.train?.step ?? null },
      data: {
        source: ds.source,
        description:
          ds.source === EMBEDDED_NAME
            ? 'the embedded corpus (Moby-Dick, data/moby-dick.txt.gz)'
            : `${ds.kind === 'tokens' ? 'token file' : 'text'} ${ds.source}`,
        sha256: ds.contentHash,
        split: split === 'all' ? 'all tokens in order' : `${split} (${ds.split})`,
        tokens_available: avail.length,
      },
      tokenizer: ck.tokenizer,
      n_tokens: N,
      tokens_file: 'tokens.u32',
      tokens_sha256: createHash('sha256').update(tokensU32(tokens)).digest('hex'),
      window: T,
      layers,
      hooks,
      neurons: widths,
      seed,
      variant,
      counts: {
        top: TOP_K,
        random: N_RANDOM,
        quantile_bins: quantile ? QUANTILE.bins : 0,
        quantile_per_bin: quantile ? QUANTILE.perBin : 0,
        quantile_sample: quantile ? Math.min(QUANTILE.sample, N) : 0,
      },
      excerpt: geometry,
      moments:
        'over all N tokens in float64 (chunk-merged, Pébay 2008): mean, population variance M2/N; records hold standardised skewness m3/σ³ and kurtosis m4/σ⁴ (normal = 3), stats.jsonl also the raw central moments m3, m4 (what the paper stored under those names)',
      quantiles: `ranks in twelfths of a uniform sample of ${Math.min(QUANTILE.sample, N)} positions per neuron (ties broken at random), bins 0..10 (the top twelfth is not a bin), ${QUANTILE.perBin} positions per bin without replacement; quantile_boundaries are the sample values at ranks floor(b*S/12), b = 0..11`,
      backend: opts.backend.name,
      cpu_kernel: cpuKernelOf(opts.backend),
      batch,
      elapsed_s: elapsed,
      tokens_per_s: N / collectSecs,
      cpu_s: cpuSeconds,
      peak_rss_bytes: peak,
      ...(sae && opts.sae !== undefined
        ? { sae: { path: path.resolve(opts.sae), sha256: sha256File(path.join(opts.sae, WEIGHTS_FILE)), hook: sae.hook, d_in: sae.D, d_sae: sae.S } }
        : {}),
    };
    if (writer) writeFileAtomic(path.join(opts.out, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n', opts.writeSync);
    return { dir: opts.out, manifest, elapsed, tokensPerSec: N / collectSecs, peakRssBytes: peak, cpuSeconds };
  } finally {
    sae?.free();
    model.free();
  }
}

function denseCopy(a: { data: Float64Array; shape: number[]; stride: number[]; offset: number }, B: number, T: number, H: number): Float64Array {
  const out = new Float64Array(B * T * H);
  let o = 0;
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++) for (let h = 0; h < H; h++) out[o++] = a.data[a.offset + b * a.stride[0] + t * a.stride[1] + h * a.stride[2]];
  return out;
}

/** Make `out` ready: create it, or remove a previous collection's files (manifest first). */
function prepareOut(out: string, force: boolean): void {
  if (fs.existsSync(out)) {
    if (holdsCollection(out)) {
      if (!force)
        throw new UsageError((n) => `output directory '${out}' already holds a neuron collection; pass ${n('force')} to replace it`, { option: 'force' });
      fs.rmSync(path.join(out, 'manifest.json'), { force: true });
      for (const e of fs.readdirSync(out)) if (COLLECTION_ENTRIES.test(e)) fs.rmSync(path.join(out, e), { recursive: true, force: true });
    }
  } else {
    try {
      fs.mkdirSync(out, { recursive: true });
    } catch (e) {
      throw new DataError(`cannot create output directory '${out}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
}

function tokensU32(tokens: ArrayLike<number>): Uint8Array {
  const b = Buffer.alloc(tokens.length * 4);
  for (let i = 0; i < tokens.length; i++) b.writeUInt32LE(tokens[i], 4 * i);
  return b;
}

function writeTokens(file: string, tokens: ArrayLike<number>, write?: WriteSyncFn): void {
  writeFileAtomic(file, tokensU32(tokens), write);
}

/** One excerpt as a record: its token strings (a split character on the token that completes it, src/neurons/excerpt.ts) and activations. */
function record(s: Selected, tokens: ArrayLike<number>, decode: ExcerptDecoder): ActivationRecord {
  return { tokens: decode(tokens, s.start, s.excerpt.length), activations: Array.from(s.excerpt) };
}

function writeLayer(out: string, layer: number, c: LayerCollector, H: number, tokens: ArrayLike<number>, decode: ExcerptDecoder, write?: WriteSyncFn): void {
  const dir = layerDir(out, layer);
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new DataError(`cannot create '${dir}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const writers = ['records.jsonl', 'positions.jsonl', 'stats.jsonl'].map((f) => new AtomicWriter(path.join(dir, f), write));
  const [rec, pos, st] = writers;
  try {
    for (let i = 0; i < H; i++) {
      const sel: NeuronSelection = c.neuron(i);
      const s = c.moments.summary(i);
      rec.writeString(
        neuronRecordJson({
          neuron_id: { layer_index: layer, neuron_index: i },
          random_sample: sel.random.map((x) => record(x, tokens, decode)),
          random_sample_by_quantile: sel.quantile === null ? null : sel.quantile.map((bin) => bin.map((x) => record(x, tokens, decode))),
          quantile_boundaries: sel.boundaries,
          mean: s.mean,
          variance: s.variance,
          skewness: s.skewness,
          kurtosis: s.kurtosis,
          most_positive_activation_records: sel.top.map((x) => record(x, tokens, decode)),
        }) + '\n',
      );
      pos.writeString(
        JSON.stringify({
          neuron: i,
          top: sel.top.map((x) => x.pos),
          random: sel.random.map((x) => x.pos),
          quantile: sel.quantile === null ? null : sel.quantile.map((bin) => bin.map((x) => x.pos)),
        }) + '\n',
      );
      st.writeString(
        JSON.stringify({
          neuron: i,
          count: c.moments.count,
          mean: finiteOrNull(s.mean),
          variance: finiteOrNull(s.variance),
          m3: finiteOrNull(s.m3),
          m4: finiteOrNull(s.m4),
          skewness: finiteOrNull(s.skewness),
          kurtosis: finiteOrNull(s.kurtosis),
          density: s.density,
          max: finiteOrNull(s.max),
          min: finiteOrNull(s.min),
        }) + '\n',
      );
    }
    for (const w of writers) w.close();
  } catch (e) {
    for (const w of writers) w.abort();
    throw e;
  }
}
