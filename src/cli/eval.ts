// crate-ts eval: validation loss and perplexity of a checkpoint on a data source.
import { strOpt } from './args.js';
import { parseOptions, intFlag, encodingFlag } from './options.js';
import { guardStdout } from './output.js';
import { UsageError, DataError } from '../errors.js';
import { loadCheckpoint, modelFromCheckpoint, resolveCheckpointPath } from '../checkpoint/checkpoint.js';
import { evaluate } from '../train/trainer.js';
import { loadTokenizer, type Tokenizer } from '../data/tokenizer.js';
import { loadDataset, checkVocab, EMBEDDED_NAME } from '../data/corpus.js';
import { evalBatches, unigramEntropy, type Batch } from '../data/batches.js';
import { selectBackend } from '../backend/select.js';
import { backendOption } from './backend.js';
import { fmtInt } from '../train/progress.js';

const HELP = `usage: crate-ts eval --checkpoint PATH [options]

  --checkpoint PATH   a run directory written by crate-ts train, or a checkpoint file in it
  --data PATH         text file, directory, or nanoGPT token file(s) (default: the data the
                      checkpoint was trained on)
  --split NAME        val | train | all (default val: the split training held out)
  --seq N             window length (default: the training --seq, at most the block size)
  --batch N           windows per forward (default 16)
  --windows N         windows evaluated, evenly spaced and non-overlapping where possible (default 256; 0 = all)
  --backend NAME      reference | cpu | cuda | auto (default auto: cuda, else cpu, else reference)
  --threads N         worker threads for native backends, 1..256 (default: all cores)
  --cache-dir DIR     tokenized-data cache (default $CRATE_TS_CACHE or ~/.cache/crate-ts)
  --encoding NAME     the text's encoding: utf-8 (default, checked), utf-16le, utf-16be, latin1
  --json              one JSON object on stdout: {checkpoint, arch, tokenizer, step, data, split,
                      tokens, windows, seq, backend, tokens_per_sec, loss, perplexity, bitsPerByte,
                      bytes, unigram_entropy}; bitsPerByte = the summed loss of the evaluated
                      targets / (ln 2 x their UTF-8 bytes), comparable across tokenizers`;

export async function run(argv: string[]): Promise<number> {
  const v = parseOptions(argv, {
    help: { type: 'boolean', short: 'h' },
    checkpoint: { type: 'string' },
    data: { type: 'string' },
    split: { type: 'string' },
    seq: { type: 'string' },
    batch: { type: 'string' },
    windows: { type: 'string' },
    backend: { type: 'string' },
    threads: { type: 'string' },
    'cache-dir': { type: 'string' },
    encoding: { type: 'string' },
    json: { type: 'boolean' },
  });
  guardStdout();
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  const backendName = backendOption(v);
  const ckArg = strOpt(v, 'checkpoint');
  if (!ckArg) throw new UsageError('--checkpoint is required (a file written by crate-ts train, or its run directory)');
  const split = strOpt(v, 'split') ?? 'val';
  if (!['val', 'train', 'all'].includes(split)) throw new UsageError(`--split must be val, train or all, got '${split}'`);
  const ck = loadCheckpoint(resolveCheckpointPath(ckArg));
  const tok = await loadTokenizer(ck.tokenizer, ck.tokenizerVocab);
  const T = intFlag(v, 'seq', 1) ?? Math.min(ck.train?.hyper.seq ?? ck.config.blockSize, ck.config.blockSize);
  if (T > ck.config.blockSize) throw new UsageError(`--seq ${T} exceeds the model's block size ${ck.config.blockSize}`);
  const B = intFlag(v, 'batch', 1) ?? 16;
  const windows = intFlag(v, 'windows', 0) ?? 256;

  let data = strOpt(v, 'data');
  if (data === undefined && ck.train && ck.train.data.source !== EMBEDDED_NAME) data = ck.train.data.source;
  const ds = await loadDataset({
    data,
    tokenizer: tok,
    valFraction: ck.train?.hyper.valFraction ?? 0.1,
    cacheDir: strOpt(v, 'cache-dir'),
    encoding: encodingFlag(v),
  });
  checkVocab(ds, ck.config.vocabSize);
  let tokens: Uint16Array;
  if (split === 'val') tokens = ds.val;
  else if (split === 'train') tokens = ds.train;
  else {
    tokens = new Uint16Array(ds.train.length + ds.val.length);
    tokens.set(ds.train);
    tokens.set(ds.val, ds.train.length);
  }
  if (tokens.length < T + 1)
    throw new DataError(
      `the ${split} split of '${ds.source}' has ${tokens.length} tokens, fewer than one window of ${T + 1}; use more text or a smaller --seq`,
    );

  const sel = await selectBackend(backendName, { threads: intFlag(v, 'threads', 1, 256) });
  const model = modelFromCheckpoint(ck, sel.backend);
  const count = windows === 0 ? Math.floor(tokens.length / (T + 1)) : windows;
  const batches = evalBatches(tokens, B, T, count);
  const nWin = batches.reduce((s, b) => s + b.x.length / T, 0);
  const t0 = performance.now();
  const loss = evaluate(model, batches, T);
  const secs = (performance.now() - t0) / 1000;
  model.free();
  const bytes = targetBytes(tok, batches);
  const bpb = bitsPerByte(loss, nWin * T, bytes);
  const H1 = unigramEntropy(tokens);
  if (v.json) {
    console.log(
      JSON.stringify({
        checkpoint: ck.path,
        arch: ck.config.arch,
        tokenizer: ck.tokenizer,
        step: ck.train?.step ?? null,
        data: ds.source,
        split,
        tokens: tokens.length,
        windows: nWin,
        seq: T,
        backend: sel.name,
        tokens_per_sec: (nWin * T) / secs,
        loss: jsonNumber(loss),
        perplexity: jsonNumber(Math.exp(loss)),
        bitsPerByte: jsonNumber(bpb),
        bytes,
        unigram_entropy: jsonNumber(H1),
      }),
    );
    return 0;
  }
  console.log(`checkpoint ${ck.path}: ${ck.config.arch}, tokenizer ${ck.tokenizer}, step ${ck.train?.step ?? '?'}`);
  console.log(
    `data ${ds.source}, ${split} split (${ds.split}): ${fmtInt(tokens.length)} tokens; ${nWin} windows of ${T} = ${fmtInt(nWin * T)} tokens evaluated`,
  );
  console.log(`backend ${sel.reason}; ${fmtInt((nWin * T) / secs)} tokens/s`);
  console.log(`loss ${loss.toFixed(4)} nats/token, perplexity ${Math.exp(loss).toFixed(3)}, ${bpb.toFixed(4)} bits/byte (${fmtInt(bytes)} bytes)`);
  console.log(`unigram entropy of these tokens ${H1.toFixed(4)} nats (perplexity ${Math.exp(H1).toFixed(3)})`);
  return 0;
}

/** UTF-8 bytes of the text the evaluated targets stand for (end-of-text and padding ids: none). */
export function targetBytes(tok: Tokenizer, batches: readonly Batch[]): number {
  let n = 0;
  for (const b of batches) for (let i = 0; i < b.y.length; i++) n += tok.byteLength(b.y[i]);
  return n;
}

/**
 * Bits per byte (lm-evaluation-harness's `bits_per_byte`): the total negative log-likelihood in nats
 * of `targets` tokens, whose mean is `meanLoss`, over ln 2 times the bytes they cover. Unlike the
 * per-token loss it does not depend on how the text was cut into tokens.
 */
export function bitsPerByte(meanLoss: number, targets: number, bytes: number): number {
  return bytes > 0 ? (meanLoss * targets) / (Math.LN2 * bytes) : NaN;
}

const jsonNumber = (x: number): number | null => (Number.isFinite(x) ? x : null);
