// crate-ts serve: an OpenAI-compatible server for a crate-ts checkpoint (src/serve/).
import { parse, intOpt, strOpt } from './args.js';
import { UsageError } from '../errors.js';
import { loadEngine } from '../serve/engine.js';
import { startServer } from '../serve/server.js';
import { DEFAULT_LIMITS } from '../serve/validate.js';
import type { BackendChoice } from '../backend/select.js';

const HELP = `usage: crate-ts serve --checkpoint PATH [options]

  --checkpoint PATH        a checkpoint written by crate-ts train (or its run directory)
  --host HOST              address to bind (default 127.0.0.1: this machine only)
  --port N                 port (default 8000; 0 picks a free one, printed on stdout)
  --api-key KEY            require "Authorization: Bearer KEY" (also CRATE_TS_API_KEY)
  --model-name NAME        the model id clients send (default crate)
  --backend NAME           reference | cpu | cuda | auto (default auto)
  --threads N              worker threads for native backends, 1..256 (default: all cores)
  --max-prompt-tokens N    longest prompt accepted, in tokens (default ${DEFAULT_LIMITS.maxPromptTokens})
  --max-tokens N           largest max_tokens accepted (default ${DEFAULT_LIMITS.maxTokens})
  --echo-stride N          sliding-window stride for prompt log-probabilities of prompts longer
                           than the block size (default: half the block size)
  --max-queue N            requests allowed to wait for the model (default 256; more get 503)
  --max-body-bytes N       largest request body (default 8388608)
  --quiet                  no access log on stderr

Endpoints: GET /v1/models, POST /v1/completions (echo + logprobs like vLLM), POST
/v1/chat/completions (plain "User:/Assistant:" template), GET /health. See README "Serving".`;

export async function run(argv: string[]): Promise<number> {
  const v = parse(argv, {
    help: { type: 'boolean', short: 'h' },
    checkpoint: { type: 'string' },
    host: { type: 'string' },
    port: { type: 'string' },
    'api-key': { type: 'string' },
    'model-name': { type: 'string' },
    backend: { type: 'string' },
    threads: { type: 'string' },
    'max-prompt-tokens': { type: 'string' },
    'max-tokens': { type: 'string' },
    'echo-stride': { type: 'string' },
    'max-queue': { type: 'string' },
    'max-body-bytes': { type: 'string' },
    quiet: { type: 'boolean' },
  });
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  const ck = strOpt(v, 'checkpoint');
  if (!ck) throw new UsageError('--checkpoint is required (a file written by crate-ts train, or its run directory)');
  const port = intOpt(v, 'port', 8000, 0);
  if (port > 65535) throw new UsageError(`--port must be in [0, 65535], got ${port}`);
  const backend = (strOpt(v, 'backend') ?? 'auto') as BackendChoice;
  if (!['reference', 'cpu', 'cuda', 'auto'].includes(backend)) throw new UsageError(`--backend must be reference, cpu, cuda or auto, got '${backend}'`);
  const strideRaw = strOpt(v, 'echo-stride');
  const { engine, backendReason, path } = await loadEngine(ck, backend, {
    threads: intOpt(v, 'threads', 0, 1) || undefined,
    echoStride: strideRaw === undefined ? undefined : intOpt(v, 'echo-stride', 1, 1),
  });
  const quiet = v.quiet === true;
  const apiKey = strOpt(v, 'api-key') ?? process.env.CRATE_TS_API_KEY ?? null;
  const srv = await startServer(engine, {
    host: strOpt(v, 'host') ?? '127.0.0.1',
    port,
    apiKey,
    modelName: strOpt(v, 'model-name') ?? 'crate',
    limits: {
      maxPromptTokens: intOpt(v, 'max-prompt-tokens', DEFAULT_LIMITS.maxPromptTokens, 1),
      maxTokens: intOpt(v, 'max-tokens', DEFAULT_LIMITS.maxTokens, 0),
    },
    maxQueue: intOpt(v, 'max-queue', 256, 0),
    maxBodyBytes: intOpt(v, 'max-body-bytes', 8 * 1024 * 1024, 1024),
    onRequest: quiet
      ? undefined
      : (r) =>
          process.stderr.write(
            `${new Date().toISOString()} ${r.method} ${r.path} ${r.status} ${r.ms.toFixed(1)}ms prompt=${r.promptTokens} completion=${r.completionTokens}\n`,
          ),
  });
  const c = engine.model.config;
  process.stderr.write(
    `crate-ts serve: ${path} (${c.arch}, ${engine.tokenizer.name} tokens, L ${c.nLayer}, d ${c.nEmbd}, block ${c.blockSize}); backend ${backendReason}; echo stride ${engine.echoStride}${apiKey ? '; API key required' : ''}\n`,
  );
  // The one line on stdout: scripts read the URL (and the port chosen for --port 0) from it.
  process.stdout.write(`listening on ${srv.url.replace(/\/v1$/, '')} (OpenAI base URL ${srv.url})\n`);
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
  engine.model.free();
  return 0;
}
