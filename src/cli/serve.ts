// crate-ts serve: an OpenAI-compatible server for a crate-ts checkpoint (src/serve/).
import * as fs from 'node:fs';
import { parse, intOpt, numOpt, strOpt } from './args.js';
import { UsageError } from '../errors.js';
import { loadEngine } from '../serve/engine.js';
import { DEFAULT_BATCH } from '../serve/batch.js';
import { DEFAULT_SERVE, startServer } from '../serve/server.js';
import { DEFAULT_LIMITS } from '../serve/validate.js';
import { isLoopback } from '../util/loopback.js';
import type { BackendChoice } from '../backend/select.js';

const HELP = `usage: crate-ts serve --checkpoint PATH [options]

  --checkpoint PATH        a checkpoint written by crate-ts train (or its run directory)
  --host HOST              address to bind (default 127.0.0.1: this machine only); any other
                           address needs an API key or --allow-unauthenticated
  --port N                 port (default 8000; 0 picks a free one, printed on stdout)
  --api-key KEY            require "Authorization: Bearer KEY" (also CRATE_TS_API_KEY)
  --api-key-file PATH      read the key from a file (one line), so it is not in the process list
  --allow-unauthenticated  serve a non-loopback --host without a key (anyone who can reach it may use it)
  --model-name NAME        the model id clients send (default crate)
  --backend NAME           reference | cpu | cuda | auto (default auto)
  --threads N              worker threads for native backends, 1..256 (default: all cores)
  --max-prompt-tokens N    longest prompt accepted, in tokens (default ${DEFAULT_LIMITS.maxPromptTokens})
  --max-tokens N           largest max_tokens accepted (default ${DEFAULT_LIMITS.maxTokens})
  --max-request-tokens N   work of one request: prompt tokens + max_tokens over all its choices
                           (default ${DEFAULT_LIMITS.maxRequestTokens})
  --max-request-logprobs N log-probabilities one response may carry: positions × (alternatives + 1)
                           over all its choices (default ${DEFAULT_LIMITS.maxLogprobEntries})
  --echo-stride N          sliding-window stride for prompt log-probabilities of prompts longer
                           than the block size (default: half the block size)
  --max-batch N            requests computed together: decoding steps of up to N sequences share
                           one step, echo rows of waiting requests share head products (default ${DEFAULT_BATCH.maxBatch})
  --batch-wait-ms MS       how long a request arriving at an idle server waits for others to
                           join its batch (default ${DEFAULT_BATCH.batchWaitMs})
  --max-batch-memory MIB   estimated model memory the requests computing together may use; a
                           request past it gets 503 and retry-after (default ${DEFAULT_SERVE.maxBatchBytes / 2 ** 20})
  --max-queue N            requests allowed to wait for the model (default ${DEFAULT_SERVE.maxQueue}; more get 503)
  --max-queue-bytes N      request bodies the waiting and running requests may hold together
                           (default ${DEFAULT_SERVE.maxQueueBytes}; more get 503)
  --max-client-bytes N     request bodies the requests in flight of one client address may hold
                           together when it has more than one (default ${DEFAULT_SERVE.maxClientBytes}; more get
                           429 and retry-after, before the body is read)
  --parse-threads N        worker threads that parse request bodies of 64 KiB and more, off the
                           event loop (default ${DEFAULT_SERVE.parseThreads}; 0: all on the event loop)
  --max-body-bytes N       largest request body (default ${DEFAULT_SERVE.maxBodyBytes})
  --write-timeout S        drop a client that reads nothing of its response for S seconds (default ${DEFAULT_SERVE.writeTimeoutMs / 1000})
  --listen-backlog N       connections the kernel holds until they are accepted (default
                           ${DEFAULT_SERVE.listenBacklog}, capped by net.core.somaxconn)
  --max-connections N      open connections in total (default ${DEFAULT_SERVE.maxConnections})
  --max-connections-per-client N
                           open connections from one client address (default ${DEFAULT_SERVE.maxConnectionsPerClient})
  --quiet                  no access log on stderr

Endpoints: GET /v1/models, POST /v1/completions (echo + logprobs like vLLM), POST
/v1/chat/completions (plain "User:/Assistant:" template), GET /health. See README "Serving".`;

/** The API key from --api-key, --api-key-file or CRATE_TS_API_KEY (null: none), checked. */
function apiKeyOf(v: Record<string, unknown>): string | null {
  const flag = strOpt(v, 'api-key'),
    file = strOpt(v, 'api-key-file'),
    env = process.env.CRATE_TS_API_KEY;
  if (flag !== undefined && file !== undefined) throw new UsageError('give --api-key or --api-key-file, not both');
  let key: string | undefined, from: string;
  if (file !== undefined) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      throw new UsageError(`--api-key-file ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    // one line: a final line break is not part of the key
    key = text.replace(/\r?\n$/, '');
    from = `--api-key-file ${file}`;
    if (/[\r\n]/.test(key)) throw new UsageError(`${from}: the key must be one line`);
  } else if (flag !== undefined) {
    key = flag;
    from = '--api-key';
  } else {
    key = env;
    from = 'CRATE_TS_API_KEY';
  }
  if (key === undefined) return null;
  if (key.length === 0) throw new UsageError(`${from} is empty; an empty key would turn authentication off (leave it unset to serve without a key)`);
  if (key.trim() !== key) throw new UsageError(`${from} begins or ends with whitespace; give the key without it`);
  return key;
}

export async function run(argv: string[]): Promise<number> {
  const v = parse(argv, {
    help: { type: 'boolean', short: 'h' },
    checkpoint: { type: 'string' },
    host: { type: 'string' },
    port: { type: 'string' },
    'api-key': { type: 'string' },
    'api-key-file': { type: 'string' },
    'allow-unauthenticated': { type: 'boolean' },
    'model-name': { type: 'string' },
    backend: { type: 'string' },
    threads: { type: 'string' },
    'max-prompt-tokens': { type: 'string' },
    'max-tokens': { type: 'string' },
    'max-request-tokens': { type: 'string' },
    'max-request-logprobs': { type: 'string' },
    'echo-stride': { type: 'string' },
    'max-queue': { type: 'string' },
    'max-batch': { type: 'string' },
    'batch-wait-ms': { type: 'string' },
    'max-batch-memory': { type: 'string' },
    'max-queue-bytes': { type: 'string' },
    'max-body-bytes': { type: 'string' },
    'max-client-bytes': { type: 'string' },
    'parse-threads': { type: 'string' },
    'listen-backlog': { type: 'string' },
    'write-timeout': { type: 'string' },
    'max-connections': { type: 'string' },
    'max-connections-per-client': { type: 'string' },
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
  const host = strOpt(v, 'host') ?? '127.0.0.1';
  if (host.trim() === '') throw new UsageError('--host is empty; give an address such as 127.0.0.1');
  const apiKey = apiKeyOf(v);
  if (!apiKey && !isLoopback(host) && v['allow-unauthenticated'] !== true)
    throw new UsageError(
      `--host ${host} serves other machines, and no API key is set: give --api-key-file PATH (or --api-key / CRATE_TS_API_KEY), or --allow-unauthenticated to serve anyone who can reach it`,
    );
  const writeTimeout = numOpt(v, 'write-timeout', DEFAULT_SERVE.writeTimeoutMs / 1000);
  if (!(writeTimeout > 0) || writeTimeout > 3600) throw new UsageError(`--write-timeout must be in (0, 3600] seconds, got ${writeTimeout}`);
  const parseThreads = intOpt(v, 'parse-threads', DEFAULT_SERVE.parseThreads, 0);
  if (parseThreads > 64) throw new UsageError(`--parse-threads must be in [0, 64], got ${parseThreads}`);
  const options = {
    limits: {
      maxPromptTokens: intOpt(v, 'max-prompt-tokens', DEFAULT_LIMITS.maxPromptTokens, 1),
      maxTokens: intOpt(v, 'max-tokens', DEFAULT_LIMITS.maxTokens, 0),
      maxRequestTokens: intOpt(v, 'max-request-tokens', DEFAULT_LIMITS.maxRequestTokens, 1),
      maxLogprobEntries: intOpt(v, 'max-request-logprobs', DEFAULT_LIMITS.maxLogprobEntries, 1),
    },
    maxQueue: intOpt(v, 'max-queue', DEFAULT_SERVE.maxQueue, 0),
    maxBatchBytes: intOpt(v, 'max-batch-memory', DEFAULT_SERVE.maxBatchBytes / 2 ** 20, 1) * 2 ** 20,
    maxQueueBytes: intOpt(v, 'max-queue-bytes', DEFAULT_SERVE.maxQueueBytes, 1024),
    maxBodyBytes: intOpt(v, 'max-body-bytes', DEFAULT_SERVE.maxBodyBytes, 1024),
    maxClientBytes: intOpt(v, 'max-client-bytes', DEFAULT_SERVE.maxClientBytes, 1024),
    parseThreads,
    listenBacklog: intOpt(v, 'listen-backlog', DEFAULT_SERVE.listenBacklog, 1),
    writeTimeoutMs: Math.round(writeTimeout * 1000),
    maxConnections: intOpt(v, 'max-connections', DEFAULT_SERVE.maxConnections, 1),
    maxConnectionsPerClient: intOpt(v, 'max-connections-per-client', DEFAULT_SERVE.maxConnectionsPerClient, 1),
  };
  const strideRaw = strOpt(v, 'echo-stride');
  const { engine, backendReason, path } = await loadEngine(ck, backend, {
    threads: intOpt(v, 'threads', 0, 1) || undefined,
    echoStride: strideRaw === undefined ? undefined : intOpt(v, 'echo-stride', 1, 1),
    maxBatch: intOpt(v, 'max-batch', DEFAULT_BATCH.maxBatch, 1),
    batchWaitMs: numOpt(v, 'batch-wait-ms', DEFAULT_BATCH.batchWaitMs),
  });
  const quiet = v.quiet === true;
  let warned = false;
  let srv;
  try {
    srv = await startServer(engine, {
      ...options,
      host,
      port,
      apiKey,
      modelName: strOpt(v, 'model-name') ?? 'crate',
      // once per server: a simulator run sends thousands of such prompts
      onWarning: (msg) => {
        if (warned) return;
        warned = true;
        process.stderr.write(`crate-ts serve: warning: ${msg} (also sent as the x-crate-ts-warning header; printed once)\n`);
      },
      onRequest: quiet
        ? undefined
        : (r) =>
            process.stderr.write(
              `${new Date().toISOString()} ${r.method} ${r.path} ${r.status} ${r.ms.toFixed(1)}ms prompt=${r.promptTokens} completion=${r.completionTokens}\n`,
            ),
    });
  } catch (e) {
    engine.model.free();
    throw e;
  }
  const c = engine.model.config;
  process.stderr.write(
    `crate-ts serve: ${path} (${c.arch}, ${engine.tokenizer.name} tokens, L ${c.nLayer}, d ${c.nEmbd}, block ${c.blockSize}); backend ${backendReason}; echo stride ${engine.echoStride}; batches of up to ${engine.maxBatch}${apiKey ? '; API key required' : isLoopback(host) ? '' : '; NO API KEY: anyone who can reach this address may use it'}\n`,
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
