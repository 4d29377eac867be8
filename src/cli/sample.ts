// crate-ts sample: generate text from a checkpoint with incremental decoding (spec P20).
import { strOpt } from './args.js';
import { parseOptions, intFlag, numFlag } from './options.js';
import { stdout, stdoutClosed, guardStdout } from './output.js';
import { UsageError } from '../errors.js';
import { loadCheckpoint, modelFromCheckpoint, resolveCheckpointPath } from '../checkpoint/checkpoint.js';
import { loadTokenizer } from '../data/tokenizer.js';
import { selectBackend } from '../backend/select.js';
import { backendOption } from './backend.js';
import { generate } from '../sample/generate.js';
import { clampHooks, parseClamp } from '../steer/clamp.js';

const HELP = `usage: crate-ts sample --checkpoint PATH [options]

  --checkpoint PATH   a run directory written by crate-ts train, or a checkpoint file in it
  --prompt TEXT       text to continue (default: a newline, or GPT-2's <|endoftext|>)
  --tokens N          tokens to generate (default 200)
  --temperature X     softmax temperature, 0 = greedy (default 0.8)
  --top-k K           sample among the K most likely tokens, 0 = all (default 40)
  --seed N            sampling seed (default 1337)
  --clamp L:I=V       hold neuron I of layer L at V at every step (steering, spec 8; repeatable)
  --backend NAME      reference | cpu | cuda | auto (default auto: cuda, else cpu, else reference);
                      reference decodes in float64, the native backends in float32
  --threads N         worker threads for native backends, 1..256 (default: all cores)

Decoding is incremental, with a per-layer cache of the shared projection U*ᵀ LN(z) (q = k = v in
CRATE), so each new token costs one position, not a full forward. The text is
streamed as it is decoded; if the reader goes away (crate-ts sample ... | head -c 100), decoding
stops and the command exits 0 quietly.`;

/** Thrown from the token callback to end decoding once nobody reads stdout. */
class ReaderGone extends Error {}

export async function run(argv: string[]): Promise<number> {
  const v = parseOptions(argv, {
    help: { type: 'boolean', short: 'h' },
    checkpoint: { type: 'string' },
    prompt: { type: 'string' },
    tokens: { type: 'string' },
    temperature: { type: 'string' },
    'top-k': { type: 'string' },
    seed: { type: 'string' },
    clamp: { type: 'string', multiple: true },
    backend: { type: 'string' },
    threads: { type: 'string' },
  });
  guardStdout();
  if (v.help) {
    stdout.write(HELP + '\n');
    return 0;
  }
  const ckArg = strOpt(v, 'checkpoint');
  if (!ckArg) throw new UsageError('--checkpoint is required (a file written by crate-ts train, or its run directory)');
  const n = intFlag(v, 'tokens', 0) ?? 200;
  const temperature = numFlag(v, 'temperature') ?? 0.8;
  if (temperature < 0) throw new UsageError(`--temperature must be >= 0, got ${temperature}`);
  const topK = intFlag(v, 'top-k', 0) ?? 40;
  const seed = intFlag(v, 'seed', 0) ?? 1337;
  const backendName = backendOption(v),
    threads = intFlag(v, 'threads', 1, 256);

  const ck = loadCheckpoint(resolveCheckpointPath(ckArg));
  const tok = await loadTokenizer(ck.tokenizer, ck.tokenizerVocab);
  const clamps = ((v.clamp as unknown as string[] | undefined) ?? []).map(parseClamp);
  const hooks = clamps.length ? clampHooks(ck.config, clamps) : undefined;
  const { backend } = await selectBackend(backendName, { threads });
  // Validates the parameters exactly as training and eval do.
  const model = modelFromCheckpoint(ck, backend);

  const promptText = strOpt(v, 'prompt') ?? '';
  let ids = tok.encode(promptText);
  if (ids.length === 0) ids = tok.eot !== null ? [tok.eot] : tok.encode('\n');
  stdout.write(promptText);
  // Stream the text as tokens arrive; hold back an incomplete UTF-8 / BPE tail (U+FFFD) until it completes.
  const gen: number[] = [];
  let printed = 0;
  const flush = (final: boolean) => {
    let text = tok.decode(gen);
    if (!final) while (text.endsWith('\uFFFD')) text = text.slice(0, -1);
    if (text.length > printed) {
      stdout.write(text.slice(printed));
      printed = text.length;
    }
  };
  try {
    generate(model, ids, {
      tokens: n,
      temperature,
      topK,
      seed,
      maxId: tok.vocabSize,
      hooks,
      onToken: (id) => {
        gen.push(id);
        flush(false);
        if (stdoutClosed()) throw new ReaderGone();
      },
    });
  } catch (e) {
    if (e instanceof ReaderGone) return 0;
    throw e;
  } finally {
    model.free();
  }
  flush(true);
  stdout.write('\n');
  return 0;
}
