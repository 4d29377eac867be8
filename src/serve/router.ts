// The request handler of `crate-ts serve`: refusals that depend on where a request comes from and
// who sends it (Host, Origin, API key: before its body is read), the route table, the body read
// under the byte budget, and every failure turned into OpenAI's error body with a 4xx/5xx status.
import type * as http from 'node:http';
import { ApiError } from './validate.js';
import { Budget, ClientBytes, ClientGone, SECURITY_HEADERS, readBody, sameSecret, sendJson } from './http.js';
import type { JsonPool } from './json-pool.js';
import type { RequestState, ServeContext } from './context.js';
import { hostAllowed } from '../util/loopback.js';
import { completions } from './routes/completions.js';
import { chat } from './routes/chat.js';
import { detokenizeRoute, tokenizeRoute, tokenizerInfo } from './routes/tokenizer.js';

interface Route {
  method: string;
  handler?: (s: ServeContext, body: unknown, res: http.ServerResponse, rq: RequestState) => Promise<void>;
  get?: (s: ServeContext, res: http.ServerResponse) => void;
}

const ROUTES: Record<string, Route> = {
  '/v1/models': {
    method: 'GET',
    get: (s, res) =>
      sendJson(res, 200, {
        object: 'list',
        data: [{ id: s.modelName, object: 'model', created: s.created, owned_by: 'crate-ts', max_model_len: s.engine.blockSize }],
      }),
  },
  '/health': {
    method: 'GET',
    get: (_s, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
    },
  },
  '/v1/completions': { method: 'POST', handler: completions },
  '/v1/chat/completions': { method: 'POST', handler: chat },
};
// The tokenizer, as lm-evaluation-harness's remote tokenizer and vLLM's routes ask for it: at the
// root and under /v1/.
for (const base of ['', '/v1']) {
  ROUTES[`${base}/tokenizer_info`] = { method: 'GET', get: (s, res) => sendJson(res, 200, tokenizerInfo(s)) };
  ROUTES[`${base}/tokenize`] = { method: 'POST', handler: tokenizeRoute };
  ROUTES[`${base}/detokenize`] = { method: 'POST', handler: detokenizeRoute };
}

export interface RouterOptions {
  apiKey?: string | null;
  maxBodyBytes: number;
  budget: Budget;
  /** Request-body bytes per client address (more than one request in flight). */
  clientBytes: ClientBytes;
  /** Parses request bodies (large ones off the event loop). */
  json: JsonPool;
  /** Host header values answered (bound to the loopback), or null (any); read at each request. */
  allowedHosts: () => Set<string> | null;
  stats: { requests: number; byPath: Record<string, number>; errors: number };
  onRequest?: (r: { method: string; path: string; status: number; ms: number; promptTokens: number; completionTokens: number }) => void;
}

/** Refusals that depend on where a request comes from (before its body is read). */
function guard(req: http.IncomingMessage, allowedHosts: Set<string> | null): void {
  if (allowedHosts && !hostAllowed(req.headers.host, allowedHosts))
    throw new ApiError(
      403,
      `this server is bound to the loopback and only answers requests to ${[...allowedHosts].join(', ')}; the Host header ${JSON.stringify((req.headers.host ?? '').slice(0, 100))} is refused`,
      null,
      'forbidden_host',
    );
  const site = req.headers['sec-fetch-site'];
  if (site === 'cross-site' || site === 'same-site')
    throw new ApiError(403, `requests made by a web page of another site are refused (Sec-Fetch-Site: ${site})`, null, 'forbidden_origin');
  const origin = req.headers.origin;
  if (origin !== undefined) {
    const h = (req.headers.host ?? '').toLowerCase();
    const o = origin.toLowerCase();
    if (!h || (o !== `http://${h}` && o !== `https://${h}`))
      throw new ApiError(403, `requests made by a web page of another origin (${origin.slice(0, 100)}) are refused`, null, 'forbidden_origin');
  }
}

/** The handler for node:http's 'request' and 'checkContinue' events. */
export function makeHandler(s: ServeContext, o: RouterOptions): (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void> {
  const { stats, budget, clientBytes } = o;
  return async (req, res) => {
    const t0 = performance.now();
    const path = (req.url ?? '/').split('?')[0].replace(/\/+$/, '') || '/';
    let closed = false;
    res.on('close', () => {
      closed = true;
    });
    const rq: RequestState = {
      client: (req.socket.remoteAddress ?? '?').replace(/^::ffff:/, ''),
      acct: { p: 0, c: 0 },
      gone: () => closed || res.destroyed,
      sse: false,
    };
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
    const held = { n: 0 };
    stats.requests++;
    stats.byPath[path] = (stats.byPath[path] ?? 0) + 1;
    try {
      guard(req, o.allowedHosts());
      if (o.apiKey) {
        const auth = req.headers.authorization ?? '';
        const m = /^Bearer\s+(.+)$/i.exec(auth);
        if (!m) throw new ApiError(401, 'missing API key: send the header "Authorization: Bearer <key>"', null, 'invalid_api_key');
        if (!sameSecret(m[1].trim(), o.apiKey)) throw new ApiError(401, 'incorrect API key', null, 'invalid_api_key');
      }
      const route = ROUTES[path];
      if (!route)
        throw new ApiError(
          404,
          `no route ${req.method} ${path.slice(0, 200)}; this server answers GET /v1/models, POST /v1/completions, POST /v1/chat/completions, GET /tokenizer_info, POST /tokenize, POST /detokenize`,
          null,
          'not_found',
        );
      if (req.method !== route.method) {
        res.setHeader('allow', route.method);
        throw new ApiError(405, `${req.method} is not allowed on ${path}; use ${route.method}`, null, 'method_not_allowed');
      }
      if (route.get) {
        route.get(s, res);
        req.resume();
      } else {
        const ct = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
        if (ct !== 'application/json')
          throw new ApiError(
            415,
            `send the request body as JSON with the header "Content-Type: application/json"${ct ? ` (got ${JSON.stringify(ct.slice(0, 100))})` : ' (it is missing)'}`,
            null,
            'unsupported_media_type',
          );
        if ((req.headers.expect ?? '').toLowerCase() === '100-continue') res.writeContinue();
        const buf = await readBody(req, o.maxBodyBytes, { all: budget, client: clientBytes, key: rq.client }, held);
        const body = await o.json.parse(buf, route.handler === completions);
        await route.handler!(s, body, res, rq);
      }
    } catch (e) {
      if (e instanceof ClientGone) {
        res.destroy();
      } else {
        const err = e instanceof ApiError ? e : new ApiError(500, `internal error: ${(e as Error)?.message ?? String(e)}`, null, 'internal_error');
        stats.errors++;
        if (!res.headersSent) {
          if (err.status === 503 || err.status === 429) res.setHeader('retry-after', '1');
          // A body that was not read is not read now either: a small one is drained so the
          // connection can be reused, a large or unknown one ends the connection unread.
          const unread = !req.complete;
          const declared = Number(req.headers['content-length']);
          const drain = unread && (req.headers['content-length'] === undefined ? req.headers['transfer-encoding'] === undefined : declared <= 64 * 1024);
          if (unread && !drain) {
            res.setHeader('connection', 'close');
            req.pause();
          }
          sendJson(res, err.status, err.body());
          if (drain) req.resume();
        } else if (!res.writableEnded) {
          // a response that failed mid-way: a stream reports it in the stream; a JSON body cannot
          try {
            if (rq.sse) res.end(`data: ${JSON.stringify(err.body())}\n\n`);
            else res.destroy();
          } catch {
            /* the client is gone */
          }
        }
      }
    } finally {
      budget.give(held.n);
      clientBytes.give(rq.client, held.n);
      held.n = 0;
      o.onRequest?.({
        method: req.method ?? '?',
        path,
        status: res.statusCode,
        ms: performance.now() - t0,
        promptTokens: rq.acct.p,
        completionTokens: rq.acct.c,
      });
    }
  };
}
