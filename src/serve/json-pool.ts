// Large request bodies parsed off the event loop. A 1 MiB body of token ids took the event loop
// 10-20 ms to decode and parse (several times that on a loaded machine), and sixty of them
// arriving together held every other request, /health included (measured with the soak script).
// Bodies of at least `minBytes` are decoded and parsed by a worker thread instead. For
// POST /v1/completions the worker hands a prompt of integer ids (at least 64 of them, each an int32
// other than -0) back as an Int32Array, transferred without a copy; the route validates either
// form, and copies the ids into a plain array only when the model is to read them (context.ts
// plainIds): a copy costs about what the parse did, so a request that needs only its prompts'
// lengths (max_tokens 0 without echo) never pays it. Everything else comes back as JSON.parse made it.
//
// A worker that fails (its heap, a value the structured clone cannot carry) does not lose the
// request: the body is parsed on the event loop as before, and the worker is replaced.
import { Worker } from 'node:worker_threads';
import { parseJson } from './http.js';
import { ApiError } from './validate.js';

/** The worker (CommonJS, evaluated from this string: no file to find beside the compiled code). */
const WORKER = `
const { parentPort } = require('node:worker_threads');
const MIN = 64;
function intArray(a) {
  if (a.length < MIN) return null;
  const out = new Int32Array(a.length);
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    if (typeof x !== 'number' || (x | 0) !== x || Object.is(x, -0)) return null;
    out[i] = x;
  }
  return out;
}
// a completion's prompt of ids, or each prompt of a list of them, becomes an Int32Array
function pack(value, transfer) {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || !Array.isArray(value.prompt)) return value;
  const p = value.prompt;
  const whole = intArray(p);
  if (whole) {
    value.prompt = whole;
    transfer.push(whole.buffer);
    return value;
  }
  for (let i = 0; i < p.length; i++) {
    if (!Array.isArray(p[i])) continue;
    const t = intArray(p[i]);
    if (t) {
      p[i] = t;
      transfer.push(t.buffer);
    }
  }
  return value;
}
parentPort.on('message', ({ id, bytes, prompt }) => {
  let text;
  try {
    text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  } catch {
    parentPort.postMessage({ id, fallback: true });
    return;
  }
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    parentPort.postMessage({ id, invalid: String(e && e.message) });
    return;
  }
  text = undefined;
  try {
    const transfer = [];
    const packed = prompt ? pack(value, transfer) : value;
    parentPort.postMessage({ id, value: packed }, transfer);
  } catch {
    parentPort.postMessage({ id, fallback: true });
  }
});
`;

interface Job {
  buf: Buffer;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

interface Slot {
  worker: Worker;
  jobs: Map<number, Job>;
}

/** Parsed JSON request bodies: small ones on the event loop, large ones by `threads` workers. */
export class JsonPool {
  private readonly slots: (Slot | null)[];
  private next = 1;
  private closed = false;
  /** Bodies parsed by a worker, and bodies a failed worker left to the event loop (tests read them). */
  readonly stats = { offloaded: 0, fallbacks: 0 };

  constructor(
    readonly threads: number,
    readonly minBytes = 64 * 1024,
  ) {
    this.slots = Array.from({ length: threads }, () => null);
  }

  /**
   * The JSON value of a request body (400 invalid_json as parseJson says it). With `prompt`, a
   * large body's `prompt` of integer ids, or each such prompt of a list, comes as an Int32Array
   * (for POST /v1/completions, whose validation takes either).
   */
  parse(buf: Buffer, prompt = false): Promise<unknown> {
    if (this.threads === 0 || this.closed || buf.length < this.minBytes) {
      try {
        return Promise.resolve(parseJson(buf));
      } catch (e) {
        return Promise.reject(e);
      }
    }
    // the worker with the fewest bodies waiting
    let best = 0;
    for (let i = 1; i < this.slots.length; i++) if ((this.slots[i]?.jobs.size ?? 0) < (this.slots[best]?.jobs.size ?? 0)) best = i;
    const slot = this.slot(best);
    const id = this.next++;
    this.stats.offloaded++;
    return new Promise((resolve, reject) => {
      slot.jobs.set(id, { buf, resolve, reject });
      // a structured clone copies a view's whole buffer: a body that shares one is copied out first
      const bytes = buf.byteOffset === 0 && buf.buffer.byteLength === buf.length ? new Uint8Array(buf.buffer) : new Uint8Array(buf);
      slot.worker.postMessage({ id, bytes, prompt });
    });
  }

  private slot(i: number): Slot {
    const have = this.slots[i];
    if (have) return have;
    const worker = new Worker(WORKER, { eval: true, resourceLimits: { maxOldGenerationSizeMb: 512 } });
    worker.unref();
    const slot: Slot = { worker, jobs: new Map() };
    worker.on('message', (m: { id: number; value?: unknown; invalid?: string; fallback?: true }) => {
      const job = slot.jobs.get(m.id);
      if (!job) return;
      slot.jobs.delete(m.id);
      if (m.fallback) this.inline(job);
      else if (m.invalid !== undefined) job.reject(new ApiError(400, `the request body is not valid JSON: ${m.invalid.slice(0, 200)}`, null, 'invalid_json'));
      else {
        try {
          job.resolve(m.value);
        } catch (e) {
          job.reject(e);
        }
      }
    });
    const lost = () => {
      if (this.slots[i] === slot) this.slots[i] = null;
      const jobs = [...slot.jobs.values()];
      slot.jobs.clear();
      for (const job of jobs) this.inline(job);
    };
    worker.on('error', lost);
    worker.on('exit', lost);
    this.slots[i] = slot;
    return slot;
  }

  private inline(job: Job): void {
    this.stats.fallbacks++;
    try {
      job.resolve(parseJson(job.buf));
    } catch (e) {
      job.reject(e);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const slots = this.slots.filter((s): s is Slot => s !== null);
    this.slots.fill(null);
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }
}
