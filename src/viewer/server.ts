// Serve the viewer on the loopback interface (crate-ts neurons view DIR --port P). The same pages as
// an export, but every data file is built when first asked for (a large collection opens at once),
// and the neuron page gets a live steering box (GET api/steer). Only 127.0.0.1 is bound, and only
// requests whose Host header names the loopback are answered (a web page elsewhere cannot reach it
// through a rebound DNS name). Every response says `Cross-Origin-Resource-Policy: same-origin` and
// `X-Content-Type-Options: nosniff`, so a page of another origin (another localhost port, a file
// opened from disk) cannot load the data scripts with <script src> or read them as anything else;
// and a request that the browser marks `Sec-Fetch-Site: cross-site` or `same-site` is refused
// before any work on /data/* and /api/steer (an <img> flood from another page computes nothing), as
// is one whose Origin header names another origin.
// The steering box's parameters are decimal numbers (no hex, no Infinity) and the value must fit a
// float32, as the model computes in it.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { CrateError, UsageError } from '../errors.js';
import { hostAllowed, loopbackHosts } from '../util/loopback.js';
import { indexHtml, readAppJs, STYLE_CSS } from './assets.js';
import { asDataError, type ViewerData } from './data.js';
import { dataScript, errorScript } from './site.js';

export interface ServerOptions {
  /** Port on 127.0.0.1 (0: any free port). */
  port: number;
  /** The compiled front end (default: the build's). */
  appJs?: string;
}

export interface RunningServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

const CACHE_PAGES = 512;
const DATA_KEY = /^\/data\/(index|c(\d+)\/layer-(\d+)\/(table|n(\d+)))\.js$/;
/** A decimal number as a person types it: no hex, binary, octal, Infinity or blanks. */
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const INDEX = /^\d{1,9}$/;
const CSP = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/** Start the server; resolves once it listens, rejects with a one-line UsageError when the port is taken. */
export function startServer(data: ViewerData, opts: ServerOptions): Promise<RunningServer> {
  let appJs = '';
  const cache = new Map<string, string>();
  let port = opts.port;
  const send = (res: http.ServerResponse, status: number, type: string, body: string, head: boolean) => {
    res.writeHead(status, {
      'content-type': type,
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-cache',
      'x-content-type-options': 'nosniff',
      'cross-origin-resource-policy': 'same-origin',
      'content-security-policy': CSP,
    });
    res.end(head ? undefined : body);
  };
  const json = (res: http.ServerResponse, status: number, body: unknown, head: boolean) =>
    send(res, status, 'application/json; charset=utf-8', JSON.stringify(body), head);

  const dataFile = (p: string): string | null => {
    const m = DATA_KEY.exec(p);
    if (!m) return null;
    const key = m[1];
    const hit = cache.get(key);
    if (hit) return hit;
    let body: string;
    try {
      const value =
        key === 'index' ? data.index() : m[4] === 'table' ? data.table(Number(m[2]), Number(m[3])) : data.neuron(Number(m[2]), Number(m[3]), Number(m[5]));
      body = dataScript(key, value);
      if (key !== 'index') {
        cache.set(key, body);
        // bounded: the oldest pages go first (a neuron page of the paper's records is ~100 KB)
        if (cache.size > CACHE_PAGES) cache.delete(cache.keys().next().value as string);
      }
    } catch (e) {
      body = errorScript(key, data.publicText(asDataError(e).message));
    }
    return body;
  };

  const server = http.createServer((req, res) => {
    const head = req.method === 'HEAD';
    if (req.method !== 'GET' && !head) {
      res.setHeader('allow', 'GET, HEAD');
      json(res, 405, { error: `method ${req.method} is not allowed` }, head);
      return;
    }
    if (!hostAllowed(req.headers.host, loopbackHosts('127.0.0.1', port))) {
      json(res, 403, { error: `this viewer only answers requests to 127.0.0.1:${port}` }, head);
      return;
    }
    let url: URL;
    try {
      url = new URL(req.url ?? '/', `http://127.0.0.1:${port}`);
    } catch {
      json(res, 400, { error: 'bad request URL' }, head);
      return;
    }
    const p = url.pathname;
    const site = String(req.headers['sec-fetch-site'] ?? '').toLowerCase();
    const origin = req.headers.origin;
    if (p === '/api/steer' || p.startsWith('/data/')) {
      if (site === 'cross-site' || site === 'same-site') {
        json(res, 403, { error: `this viewer does not answer other sites' pages (Sec-Fetch-Site: ${site})` }, head);
        return;
      }
      // a browser without Sec-Fetch-* still names the page's origin on a cross-origin fetch
      if (origin !== undefined && origin !== `http://127.0.0.1:${port}` && origin !== `http://localhost:${port}`) {
        json(res, 403, { error: `this viewer does not answer other sites' pages (Origin: ${origin.slice(0, 80)})` }, head);
        return;
      }
    }
    if (p === '/' || p === '/index.html') return send(res, 200, 'text/html; charset=utf-8', indexHtml(), head);
    if (p === '/app.js') return send(res, 200, 'text/javascript; charset=utf-8', appJs, head);
    if (p === '/style.css') return send(res, 200, 'text/css; charset=utf-8', STYLE_CSS, head);
    if (p === '/api/steer') {
      const q = url.searchParams;
      try {
        const index = (k: string): number => {
          const v = q.get(k) ?? '';
          if (!INDEX.test(v)) throw new UsageError(`'${k}' must be a non-negative decimal integer, got '${v.slice(0, 40)}'`);
          return Number(v);
        };
        const c = index('c'),
          layer = index('layer'),
          neuron = index('neuron');
        const raw = q.get('value') ?? '';
        const value = DECIMAL.test(raw) ? Number(raw) : NaN;
        if (!Number.isFinite(value)) throw new UsageError(`'value' must be a finite decimal number, got '${raw.slice(0, 40)}'`);
        const prompt = q.get('prompt') ?? '';
        if (prompt.length > 4000) throw new UsageError('the prompt is longer than 4000 characters');
        return json(res, 200, data.steer(c, layer, neuron, value, prompt), head);
      } catch (e) {
        const err = asDataError(e);
        return json(
          res,
          err instanceof UsageError ? 400 : err instanceof CrateError && err.kind !== 'internal' ? 422 : 500,
          { error: data.publicText(err.message) },
          head,
        );
      }
    }
    const body = dataFile(p);
    if (body !== null) return send(res, 200, 'text/javascript; charset=utf-8', body, head);
    json(res, 404, { error: `no such page: ${p}` }, head);
  });

  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EADDRINUSE')
        reject(new UsageError((n) => `port ${opts.port} is in use on 127.0.0.1; choose another with ${n('port')}`, { option: 'port' }));
      else if (e.code === 'EACCES')
        reject(new UsageError((n) => `port ${opts.port} needs privileges on this system; choose one above 1023 with ${n('port')}`, { option: 'port' }));
      else reject(new UsageError(`cannot listen on 127.0.0.1:${opts.port}: ${e.code ?? e.message}`));
    });
    server.listen(opts.port, '127.0.0.1', () => {
      port = (server.address() as AddressInfo).port;
      // the front end is read once the port is ours (a taken port is the first thing to report)
      try {
        appJs = opts.appJs ?? readAppJs();
      } catch (e) {
        server.close();
        reject(e);
        return;
      }
      resolve({
        url: `http://127.0.0.1:${port}/`,
        port,
        close: () =>
          new Promise<void>((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      });
    });
  });
}
