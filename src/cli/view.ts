// crate-ts neurons view: browse neuron collections in a browser, served on the loopback interface
// or exported as a static site that opens from the file system (no server, no network).
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { UsageError } from '../errors.js';
import { parseErrorMessage } from './options.js';
import { selectBackend, type BackendChoice } from '../backend/select.js';
import { ViewerData, STEER_FACTOR } from '../viewer/data.js';
import { exportSite } from '../viewer/site.js';
import { startServer } from '../viewer/server.js';
import { PAPER_PROMPT } from '../steer/steer.js';
import { scoreCollection } from '../neurons/score.js';

export const HELP = `usage: crate-ts neurons view DIR [DIR2 ...] [--port 8080] [--export OUTDIR] [options]

  DIR ...            collection directories (crate-ts neurons collect); several are shown on one
                     chart and a neuron page links to the same index in the others
  --port P           serve on http://127.0.0.1:P/ (loopback only; default 8080; 0 = any free port)
  --export OUTDIR    write a static site instead: open OUTDIR/index.html from the file system
  --labels A,B,...   names of the collections (default: directory name and architecture)
  --checkpoint CKPT  the checkpoint of a collection, once per DIR in order (default: the path in
                     its manifest; it must be the same file, checked by sha256)
  --sae DIR          the SAE of a collection of SAE features (neurons collect --sae), once per DIR
                     in order (default: the path in its manifest; checked by sha256)
  --steer-prompt T   prompt of the steering effects (default "${PAPER_PROMPT}", the paper's)
  --no-steer         no steering effects (an export computes one clamped forward per neuron)
  --no-weights       no related tokens by weights
  --backend NAME     backend of the steering forwards and weight products: reference | cpu | cuda |
                     auto (default auto)
  --baseline-init DIR,...  collections of random-init models (train --steps 0, then collect): the
                     chart draws each collection's control of the same architecture and depth

Pages: #/ (overview: model, data, per-layer scores of every collection, density and dead neurons,
the neuron table) and #/layer/L/neuron/I (#/c/K/... for collection K). A neuron page's steering
effects clamp blocks.L.hook_neurons[I] to ${STEER_FACTOR} x the neuron's largest activation on the
collected tokens; the server also has a box to steer with any value and prompt. On a collection of
SAE features the clamp is on the feature, decoded with the SAE and its error term kept. Detection
and fuzzing scores (neurons score --scorer detection|fuzzing) are shown beside the simulation scores
when the collection holds them.`;

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  port: { type: 'string' },
  export: { type: 'string' },
  labels: { type: 'string' },
  checkpoint: { type: 'string', multiple: true },
  sae: { type: 'string', multiple: true },
  'steer-prompt': { type: 'string' },
  'no-steer': { type: 'boolean' },
  'no-weights': { type: 'boolean' },
  backend: { type: 'string' },
  threads: { type: 'string' },
  'baseline-init': { type: 'string', multiple: true },
} as const;

function intArg(raw: string | undefined, name: string, min: number, max: number): number | undefined {
  if (raw === undefined) return undefined;
  const s = raw.trim(),
    n = s === '' ? NaN : Number(s);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got '${raw}'`);
  return n;
}

export async function run(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: true });
  } catch (e) {
    throw new UsageError(parseErrorMessage(e as Error, OPTIONS), { cause: e });
  }
  const v = parsed.values,
    dirs = parsed.positionals;
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  if (dirs.length === 0) throw new UsageError('give one or more collection directories: crate-ts neurons view DIR [DIR2 ...] [--export OUTDIR]');
  if (v.export !== undefined && v.port !== undefined) throw new UsageError('give either --port (serve) or --export (write a site), not both');
  const port = intArg(v.port, 'port', 0, 65535) ?? 8080;
  const labels = v.labels === undefined ? undefined : v.labels.split(',').map((s) => s.trim());
  if (labels && labels.length !== dirs.length) throw new UsageError(`--labels has ${labels.length} labels for ${dirs.length} directories`);
  if (v.checkpoint && v.checkpoint.length > dirs.length) throw new UsageError(`--checkpoint given ${v.checkpoint.length} times for ${dirs.length} directories`);
  if (v.sae && v.sae.length > dirs.length) throw new UsageError(`--sae given ${v.sae.length} times for ${dirs.length} directories`);
  const backendName = v.backend ?? 'auto';
  if (!['reference', 'cpu', 'cuda', 'auto'].includes(backendName)) throw new UsageError(`--backend must be reference, cpu, cuda or auto, got '${backendName}'`);
  const threads = intArg(v.threads, 'threads', 0, 1024);
  const steerPrompt = v['steer-prompt'] ?? PAPER_PROMPT;
  if (steerPrompt === '') throw new UsageError('--steer-prompt is empty');
  let sel;
  try {
    sel = await selectBackend(backendName as BackendChoice, threads ? { threads } : {});
  } catch (e) {
    throw new UsageError((e as Error).message, { cause: e });
  }
  const live = v.export === undefined;
  const data = await ViewerData.open(dirs, {
    labels,
    checkpoints: v.checkpoint,
    saes: v.sae,
    backend: sel.backend,
    steerPrompt,
    steer: !v['no-steer'],
    weights: !v['no-weights'],
    live,
    baselineInit: (v['baseline-init'] ?? [])
      .flatMap((x) =>
        x
          .split(',')
          .map((d) => d.trim())
          .filter(Boolean),
      )
      .map((d) => scoreCollection(d)),
  });
  try {
    for (const c of data.collections) for (const w of c.warnings) console.error(`warning: ${c.dir}: ${w}`);
    if (v.export !== undefined) {
      const tty = Boolean(process.stderr.isTTY);
      let last = 0;
      const r = exportSite(data, v.export, {
        onProgress: (done, total) => {
          const now = Date.now();
          if (!tty || (now - last < 200 && done < total)) return;
          last = now;
          process.stderr.write(`\r\x1b[2Kneuron pages ${done}/${total}`);
        },
      });
      if (tty) process.stderr.write('\r\x1b[2K');
      console.log(
        `wrote ${r.files.toLocaleString('en-US')} files (${(r.bytes / 2 ** 20).toFixed(1)} MiB) for ${r.neurons.toLocaleString('en-US')} neurons in ${r.seconds.toFixed(1)} s -> ${r.dir}`,
      );
      console.log(`open ${path.join(r.dir, 'index.html')} in a browser (it works from the file system; nothing is fetched from the network)`);
      return 0;
    }
    const srv = await startServer(data, { port });
    console.log(
      `serving ${data.collections.length} collection${data.collections.length === 1 ? '' : 's'} at ${srv.url} (loopback only; backend ${sel.name}); Ctrl-C stops`,
    );
    await new Promise<void>((resolve) => {
      const stop = () => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        resolve();
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    await srv.close();
    return 0;
  } finally {
    data.free();
  }
}
