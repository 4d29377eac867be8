// The HTTP plumbing of `crate-ts serve`, independent of what is computed: request bodies read
// under a byte budget, JSON in and out, and responses written a piece at a time under the socket's
// backpressure (a client that stops reading is dropped; one that has gone stops the computation).
import type * as http from 'node:http';
import { timingSafeEqual, createHash } from 'node:crypto';
import { yieldNow } from './sampling.js';
import { ApiError } from './validate.js';

/** 503 with retry-after: the server is too busy for this request now. */
export const busy = (what: string) => new ApiError(503, `the server is busy: ${what}; retry later`, null, 'overloaded', 'server_error');

/** Bytes of request bodies held by the requests in flight. */
export class Budget {
  used = 0;
  constructor(readonly limit: number) {}
  take(n: number): boolean {
    if (this.used + n > this.limit) return false;
    this.used += n;
    return true;
  }
  give(n: number): void {
    this.used -= n;
  }
}

/** 429 with retry-after: this client has more in flight than its share (OpenAI's rate-limit shape). */
export const tooMany = (what: string) => new ApiError(429, `too many requests from this client: ${what}; retry later`, null, 'rate_limit_exceeded', 'requests');

/**
 * Bytes of request bodies held by the requests in flight of each client address. A client may
 * always have one request in flight (up to the body limit); past that, all its requests' bodies
 * together stay within `limit`. So one address sending many large bodies at once has most of them
 * refused before they are read, and the others' requests are not queued behind their parsing.
 */
export class ClientBytes {
  private readonly used = new Map<string, number>();
  constructor(readonly limit: number) {}
  held(client: string): number {
    return this.used.get(client) ?? 0;
  }
  /** n more bytes for a request of `client` that holds `mine` already. */
  take(client: string, n: number, mine: number): boolean {
    const u = this.held(client);
    if (u - mine > 0 && u + n > this.limit) return false;
    this.used.set(client, u + n);
    return true;
  }
  give(client: string, n: number): void {
    const u = this.held(client) - n;
    if (u > 0) this.used.set(client, u);
    else this.used.delete(client);
  }
}

/** What one request's body may take: the server's budget, and its client's share. */
export interface BodyBudget {
  all: Budget;
  client: ClientBytes;
  key: string;
}

/**
 * Read a request body of at most `limit` bytes, reserving its bytes in `budget` as they arrive
 * (`held.n` counts what this request holds; the caller gives it back). A larger body is answered
 * with 413 once its upload has been read and discarded (answering while the client still writes
 * would reset the connection under it); past 64 MiB more the connection is dropped. A body that
 * does not fit the client's share is answered 429, one that does not fit the server's budget 503;
 * when its length is declared (Content-Length) that is decided before any of it is read.
 */
export function readBody(req: http.IncomingMessage, limit: number, budget: BodyBudget, held: { n: number }): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    const tooLarge = (n: number | null) =>
      new ApiError(
        413,
        n === null
          ? `the request body is larger than this server accepts (${limit} bytes)`
          : `the request body is ${n} bytes, more than this server accepts (${limit})`,
        null,
        'request_too_large',
      );
    /** Reserve n more bytes for this request, or the refusal. */
    const take = (n: number): ApiError | null => {
      if (!budget.client.take(budget.key, n, held.n))
        return tooMany(
          `its requests in flight already hold ${budget.client.held(budget.key) - held.n} bytes of request bodies (at most ${budget.client.limit} with more than one request)`,
        );
      if (!budget.all.take(n)) {
        budget.client.give(budget.key, n);
        return busy(`request bodies in the queue already hold ${budget.all.used} of ${budget.all.limit} bytes`);
      }
      held.n += n;
      return null;
    };
    const chunks: Buffer[] = [];
    let size = 0,
      over = Number.isFinite(declared) && declared > limit,
      settled = false;
    if (!over && Number.isFinite(declared) && declared > 0) {
      const no = take(declared);
      if (no) {
        settled = true;
        reject(no);
        return;
      }
    }
    req.on('data', (c: Buffer) => {
      if (settled) return;
      size += c.length;
      if (size > limit) over = true;
      if (over) {
        chunks.length = 0;
        if (size > limit + 64 * 1024 * 1024) req.destroy();
        return;
      }
      if (size > held.n) {
        const no = take(size - held.n);
        if (no) {
          settled = true;
          chunks.length = 0;
          reject(no);
          return;
        }
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (settled) return;
      settled = true;
      if (over) reject(tooLarge(Number.isFinite(declared) ? declared : null));
      else resolve(Buffer.concat(chunks));
    });
    req.on('error', (e) => {
      if (settled) return;
      settled = true;
      reject(new ApiError(400, `could not read the request body: ${e.message}`));
    });
  });
}

export function parseJson(buf: Buffer): unknown {
  if (buf.length === 0) throw new ApiError(400, 'the request body is empty; send a JSON object', null, 'invalid_json');
  const text = buf.toString('utf8');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ApiError(400, `the request body is not valid JSON: ${(e as Error).message.slice(0, 200)}`, null, 'invalid_json');
  }
}

/** Constant-time comparison of two secrets (of any lengths). */
export function sameSecret(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest(),
    hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

/** The client went away, or did not read for the write timeout: stop computing for it. */
export class ClientGone extends Error {
  constructor(why: string) {
    super(why);
    this.name = 'ClientGone';
  }
}

/** Bytes gathered before a write to the socket. */
const PIECE = 64 * 1024;
/**
 * Output a response may leave unsent in memory (beyond the socket's buffers) before its
 * computation waits for the client, and the total over all responses. Within these a slow reader
 * does not hold the model: its request finishes and the rest drains after it.
 */
const RESPONSE_BUFFER = 4 * 1024 * 1024;
const ALL_BUFFERS = 64 * 1024 * 1024;

/** The responses with output still to send. */
export class Outbox {
  private readonly open = new Set<http.ServerResponse>();
  add(res: http.ServerResponse): void {
    if (this.open.has(res)) return;
    this.open.add(res);
    res.once('close', () => this.open.delete(res));
  }
  get buffered(): number {
    let n = 0;
    for (const r of this.open) n += r.writableLength;
    return n;
  }
}

/**
 * A response written a piece at a time: push() gathers text, flush() writes it and, when the
 * socket's buffer is full, waits for it to drain (yielding the event loop); a drain that does not
 * come within the write timeout destroys the connection.
 */
export class Writer {
  private parts: string[] = [];
  private size = 0;
  constructor(
    private readonly res: http.ServerResponse,
    private readonly timeoutMs: number,
    private readonly gone: () => boolean,
    private readonly outbox: Outbox,
  ) {
    outbox.add(res);
  }
  get full(): boolean {
    return this.size >= PIECE;
  }
  push(s: string): void {
    this.parts.push(s);
    this.size += s.length;
  }
  async flush(): Promise<void> {
    if (this.gone()) throw new ClientGone('the client closed the connection');
    if (this.size === 0) return;
    const s = this.parts.length === 1 ? this.parts[0] : this.parts.join('');
    this.parts = [];
    this.size = 0;
    if (!this.res.write(s) && (this.res.writableLength > RESPONSE_BUFFER || this.outbox.buffered > ALL_BUFFERS)) await this.drain();
    else if (s.length >= PIECE) await yieldNow();
  }
  async end(s = ''): Promise<void> {
    if (s) this.push(s);
    await this.flush();
    this.res.end();
    // what is still buffered drains after the request; a client that reads none of it for the
    // write timeout is dropped (the socket's inactivity timer: any progress restarts it)
    if (!this.res.writableFinished) {
      const sock = this.res.socket;
      sock?.setTimeout(this.timeoutMs, () => sock.destroy());
    }
  }
  private drain(): Promise<void> {
    const res = this.res;
    return new Promise((resolve, reject) => {
      const done = (err: Error | null) => {
        clearTimeout(timer);
        res.off('drain', onDrain);
        res.off('close', onClose);
        if (err) reject(err);
        else resolve();
      };
      const onDrain = () => done(null);
      const onClose = () => done(new ClientGone('the client closed the connection'));
      const timer = setTimeout(() => {
        res.destroy();
        done(new ClientGone(`the client read nothing for ${this.timeoutMs} ms; dropped`));
      }, this.timeoutMs);
      res.on('drain', onDrain);
      res.on('close', onClose);
    });
  }
}

/** Write `items` as a JSON array, flushing as pieces fill. */
export async function writeArray<T>(w: Writer, items: readonly T[], more: readonly T[] = []): Promise<void> {
  w.push('[');
  let first = true;
  for (const list of [items, more])
    for (const x of list) {
      w.push(first ? JSON.stringify(x) : ',' + JSON.stringify(x));
      first = false;
      if (w.full) await w.flush();
    }
  w.push(']');
}

export const SECURITY_HEADERS = { 'x-content-type-options': 'nosniff', 'cross-origin-resource-policy': 'same-origin' } as const;

/** A whole JSON response (small bodies only: large ones go through Writer). */
export function sendJson(res: http.ServerResponse, status: number, obj: unknown): void {
  const body = JSON.stringify(obj);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
