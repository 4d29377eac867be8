// `crate-ts serve`: an OpenAI-compatible HTTP server for a crate-ts model (node:http).
//
//   GET  /v1/models             the one served model
//   POST /v1/completions        prompt (string | [string] | [id] | [[id]]), max_tokens (0 allowed),
//                               echo, logprobs ≤ 20 (vLLM's shape), temperature, top_p, top_k, seed,
//                               stop, n, stream (server-sent events)      routes/completions.ts
//   POST /v1/chat/completions   messages through the plain template of src/serve/chat.ts
//                                                                          routes/chat.ts
//   GET  /tokenizer_info, POST /tokenize, /detokenize (also under /v1)    routes/tokenizer.ts
//   GET  /health                200 "ok"
//
// Streams (server-sent events) are written by routes/sse.ts; the route table, the checks before a
// body is read and the error bodies are router.ts; body reading and piecewise writing are http.ts;
// what the routes share (queue, tokenization, work bounds, logprobs objects) is context.ts.
//
// Up to `maxBatch` requests compute at once, their model work batched by the engine
// (src/serve/batch.ts: the answers are those each gets alone); the others wait, taken round-robin
// over client addresses. At most `maxQueue` wait, and the request bodies held by waiting and running
// requests stay under `maxQueueBytes`; beyond either, or past the estimated model memory of a
// batch, the answer is 503. A request that is invalid in any way gets a 4xx with the OpenAI error
// body {error: {message, type, param, code}}, and the server goes on.
//
// What one client can make the server do is bounded (README "Serving" lists the limits):
// - text is tokenized inside the queue, in time slices, and refused as soon as it is known to be
//   longer than --max-prompt-tokens (src/serve/encode.ts); the work of one request (tokens run
//   through the model, log-probabilities returned) is checked before any of it starts;
// - responses are written as they are made, a piece at a time, honouring the socket's
//   backpressure; a client that does not read for `writeTimeoutMs` is dropped, and a client that
//   has gone stops the computation for it;
// - connections are capped in total and per client address; a request refused before its body
//   is read (authentication, Host, Origin, content type) does not have its body read; an address
//   with more than one request in flight keeps their bodies within --max-client-bytes (429 on
//   Content-Length, before reading); bodies of 64 KiB and more are parsed by a worker thread
//   (./json-pool.ts), so the event loop and /health are not held by them; the listen queue is deep
//   enough that a burst of connections does not make the kernel drop other clients' SYNs;
// - bound to the loopback, only requests naming the loopback in Host are answered (DNS
//   rebinding), requests from a web page of another origin are refused, and POST bodies must be
//   application/json, so a page in a browser on this machine cannot use the server.
import * as http from 'node:http';
import type { Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Engine } from './engine.js';
import { DEFAULT_LIMITS, type ServeLimits } from './validate.js';
import { UsageError } from '../errors.js';
import { isLoopback, loopbackHosts } from '../util/loopback.js';
import { Budget, ClientBytes, busy } from './http.js';
import { JsonPool } from './json-pool.js';
import { ServeContext } from './context.js';
import { makeHandler } from './router.js';

export { WARNING_HEADER, contextWarning } from './context.js';

export interface ServeOptions {
  host?: string;
  port?: number;
  /** Require `Authorization: Bearer <apiKey>` on every request. */
  apiKey?: string | null;
  /** The model id clients must send (default "crate"). */
  modelName?: string;
  limits?: Partial<ServeLimits>;
  /** Largest accepted request body in bytes (default 8 MiB). */
  maxBodyBytes?: number;
  /**
   * Requests computed at the same time, their steps batched by the engine (default: the engine's
   * maxBatch); the others wait their turn.
   */
  maxBatch?: number;
  /** Requests allowed to wait for the model (default 256). */
  maxQueue?: number;
  /** Bytes of request bodies that waiting and running requests may hold together (default 64 MiB). */
  maxQueueBytes?: number;
  /**
   * Bytes of request bodies the requests in flight of one client address may hold together when it
   * has more than one (default 4 MiB); beyond it the answer is 429 with retry-after, decided on
   * Content-Length before the body is read.
   */
  maxClientBytes?: number;
  /**
   * Worker threads that parse request bodies of 64 KiB and more, so the event loop stays free
   * (default 1; 0 parses every body on the event loop).
   */
  parseThreads?: number;
  /**
   * Estimated bytes of model memory the requests computing together may use (default 2 GiB); a
   * request that would take the batch past it is refused with 503 and retry-after, not allocated.
   */
  maxBatchBytes?: number;
  /** A response write that has not drained after this long drops the client (default 30 s). */
  writeTimeoutMs?: number;
  /** Connections the kernel holds until the server accepts them (default 4096, capped by net.core.somaxconn). */
  listenBacklog?: number;
  /** Open connections in total (default 512) and from one client address (default 64). */
  maxConnections?: number;
  maxConnectionsPerClient?: number;
  /** Called once per answered request (method, path, status, milliseconds). */
  onRequest?: (r: { method: string; path: string; status: number; ms: number; promptTokens: number; completionTokens: number }) => void;
  /** Called when a completion's prompt is longer than the model's context (the CLI prints it once). */
  onWarning?: (message: string) => void;
}

export const DEFAULT_SERVE = {
  maxBodyBytes: 8 * 1024 * 1024,
  maxQueue: 256,
  maxQueueBytes: 64 * 1024 * 1024,
  maxClientBytes: 4 * 1024 * 1024,
  parseThreads: 1,
  listenBacklog: 4096,
  maxBatchBytes: 2 * 1024 * 1024 * 1024,
  writeTimeoutMs: 30_000,
  maxConnections: 512,
  maxConnectionsPerClient: 64,
} as const;

export interface RunningServer {
  url: string;
  port: number;
  host: string;
  server: http.Server;
  stats: { requests: number; byPath: Record<string, number>; errors: number };
  /** The body parser (its stats say how many bodies went to a worker). */
  json: JsonPool;
  close(): Promise<void>;
}

/** The address a connection comes from, as the per-client bound counts it. */
const clientKey = (s: Socket) => (s.remoteAddress ?? '?').replace(/^::ffff:/, '');

export async function startServer(engine: Engine, opts: ServeOptions = {}): Promise<RunningServer> {
  const host = opts.host ?? '127.0.0.1';
  const perClientMax = opts.maxConnectionsPerClient ?? DEFAULT_SERVE.maxConnectionsPerClient;
  const stats = { requests: 0, byPath: {} as Record<string, number>, errors: 0 };
  const s = await ServeContext.create(engine, {
    modelName: opts.modelName ?? 'crate',
    limits: { ...DEFAULT_LIMITS, ...(opts.limits ?? {}) },
    maxQueue: opts.maxQueue ?? DEFAULT_SERVE.maxQueue,
    maxBatch: opts.maxBatch ?? engine.maxBatch,
    maxBatchBytes: opts.maxBatchBytes ?? DEFAULT_SERVE.maxBatchBytes,
    writeTimeoutMs: opts.writeTimeoutMs ?? DEFAULT_SERVE.writeTimeoutMs,
    onWarning: opts.onWarning,
  });
  /** Host header values answered (bound to the loopback), or null (any). Set once listening. */
  let allowedHosts: Set<string> | null = null;
  const json = new JsonPool(opts.parseThreads ?? DEFAULT_SERVE.parseThreads);
  const handle = makeHandler(s, {
    apiKey: opts.apiKey,
    maxBodyBytes: opts.maxBodyBytes ?? DEFAULT_SERVE.maxBodyBytes,
    budget: new Budget(opts.maxQueueBytes ?? DEFAULT_SERVE.maxQueueBytes),
    clientBytes: new ClientBytes(opts.maxClientBytes ?? DEFAULT_SERVE.maxClientBytes),
    json,
    allowedHosts: () => allowedHosts,
    stats,
    onRequest: opts.onRequest,
  });
  const server = http.createServer(handle);
  // Expect: 100-continue is answered only once the request passed the checks above
  server.on('checkContinue', handle);
  // Idle keep-alive connections outlive the clients' own idle timeouts (undici: 4 s), so a client
  // never sends on a connection the server is closing. Headers must arrive within 30 s and a whole
  // request within 2 minutes.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 30_000;
  server.requestTimeout = 120_000;
  server.maxConnections = opts.maxConnections ?? DEFAULT_SERVE.maxConnections;
  const perClient = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    const key = clientKey(socket);
    const n = perClient.get(key) ?? 0;
    if (n >= perClientMax) {
      socket.end(
        `HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\nretry-after: 1\r\nx-content-type-options: nosniff\r\ncross-origin-resource-policy: same-origin\r\n\r\n${JSON.stringify(busy(`this client already holds ${n} connections (at most ${perClientMax})`).body())}`,
      );
      socket.destroySoon();
      return;
    }
    perClient.set(key, n + 1);
    socket.once('close', () => {
      const m = (perClient.get(key) ?? 1) - 1;
      if (m > 0) perClient.set(key, m);
      else perClient.delete(key);
    });
  });
  server.on('clientError', (_err, socket) => {
    if (socket.writable)
      socket.end(
        'HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nconnection: close\r\nx-content-type-options: nosniff\r\ncross-origin-resource-policy: same-origin\r\n\r\n{"error":{"message":"malformed HTTP request","type":"invalid_request_error","param":null,"code":"bad_request"}}',
      );
  });

  await new Promise<void>((resolve, reject) => {
    const why: Record<string, string> = {
      EADDRINUSE: 'the port is in use',
      EACCES: 'permission denied',
      EADDRNOTAVAIL: 'no such address on this machine',
      ENOTFOUND: 'no such host name',
      EAI_AGAIN: 'the host name could not be resolved now',
      EAI_NONAME: 'no such host name',
      EAI_FAIL: 'the host name could not be resolved',
      EAFNOSUPPORT: 'this machine does not support that address family',
    };
    const fail = (e: NodeJS.ErrnoException) =>
      reject(e.code && why[e.code] ? new UsageError(`cannot listen on ${host}:${opts.port ?? 8000}: ${why[e.code]} (${e.code})`) : e);
    server.once('error', fail);
    // a deep accept queue (the kernel caps it at net.core.somaxconn): a burst of connections that
    // overflows the queue makes the kernel drop new SYNs, and every client, /health included, then
    // waits for its SYN to be resent (1, 3, 7, 15 s); over the per-client bound they are accepted and
    // closed at once instead
    server.listen({ port: opts.port ?? 8000, host, backlog: opts.listenBacklog ?? DEFAULT_SERVE.listenBacklog }, () => {
      server.off('error', fail);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  if (isLoopback(host)) allowedHosts = loopbackHosts(host === 'localhost' ? 'localhost' : addr.address, addr.port);
  const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${shownHost}:${addr.port}/v1`,
    port: addr.port,
    host: addr.address,
    server,
    stats,
    json,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      });
      await json.close();
    },
  };
}
