// Child-process `crate-ts serve` for the hardening tests: a tiny checkpoint written with the
// library, a server started from the TypeScript sources (test/helpers/crate-ts-src.mjs) with its
// own V8 heap limit, its access log, and the URL read from its one stdout line.
import * as path from 'node:path';
import * as http from 'node:http';
import { spawn, type ChildProcess } from 'node:child_process';
import { LanguageModel } from '../../src/model/lm.js';
import { makeConfig } from '../../src/model/config.js';
import { selectBackend } from '../../src/backend/select.js';
import { saveCheckpoint } from '../../src/checkpoint/checkpoint.js';

const root = path.resolve(import.meta.dirname, '..', '..');
export const CLI = path.join(root, 'test', 'helpers', 'crate-ts-src.mjs');

/** An untrained 1-layer model saved as a checkpoint (byte: V 256; gpt2: V 50304). */
export async function tinyCheckpoint(file: string, tokenizer: 'byte' | 'gpt2', blockSize = 64): Promise<string> {
  const { backend } = await selectBackend('reference');
  const model = new LanguageModel(
    backend,
    makeConfig(undefined, { vocabSize: tokenizer === 'gpt2' ? 50304 : 256, blockSize, nLayer: 1, nHead: 2, nEmbd: 16 }),
    { seed: 3 },
  );
  try {
    saveCheckpoint(file, { model: model as LanguageModel<unknown>, tokenizer });
  } finally {
    model.free();
  }
  return file;
}

export interface ChildServer {
  proc: ChildProcess;
  base: string;
  port: number;
  log(): string;
  /** Whether the process is still running. */
  alive(): boolean;
  stop(): Promise<void>;
}

export async function startChild(args: string[], opts: { heapMb?: number; env?: NodeJS.ProcessEnv } = {}): Promise<ChildServer> {
  const node = opts.heapMb ? [`--max-old-space-size=${opts.heapMb}`] : [];
  const proc = spawn(process.execPath, [...node, CLI, 'serve', '--port', '0', ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...(opts.env ?? {}) },
  });
  let log = '';
  proc.stderr!.on('data', (d) => (log += String(d)));
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`crate-ts serve did not start: ${log}`)), 120_000);
    proc.stdout!.on('data', (d) => {
      out += String(d);
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+) /.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(Number(m[1]));
      }
    });
    proc.on('exit', (c) => {
      clearTimeout(t);
      reject(new Error(`crate-ts serve exited with ${c}: ${log}`));
    });
  });
  return {
    proc,
    port,
    base: `http://127.0.0.1:${port}`,
    log: () => log,
    alive: () => proc.exitCode === null && proc.signalCode === null,
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      // a frozen server never runs its SIGTERM handler: SIGKILL after a grace period
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** One HTTP request with node:http (Host and other headers as given), body read whole. */
export function request(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string | Buffer; localAddress?: string; timeoutMs?: number } = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', headers: opts.headers, localAddress: opts.localAddress, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (opts.timeoutMs) req.setTimeout(opts.timeoutMs, () => req.destroy(new Error(`no answer within ${opts.timeoutMs} ms`)));
    req.end(opts.body);
  });
}

/** POST a JSON body. */
export const postJson = (base: string, p: string, body: unknown, extra: { headers?: Record<string, string>; localAddress?: string; timeoutMs?: number } = {}) =>
  request(base + p, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(extra.headers ?? {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    localAddress: extra.localAddress,
    timeoutMs: extra.timeoutMs,
  });
