// An on-disk cache of LLM requests and their responses, so that a long run that is killed (or that
// fails part-way) restarts where it stopped without repeating a call.
//
// Key: SHA-256 of the endpoint path and the canonical JSON of the request body (keys sorted), so the
// same request to another server address with the same model hits the same entry. Entry: one
// gzipped JSON file DIR/<2 hex>/<64 hex>.json.gz holding {endpoint, request, response}, written to a
// temporary name and renamed, so a kill never leaves a half-written entry under its final name.
// The response stored is what the caller keeps of it (see compactEcho in client.ts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { gzipSync, gunzipSync } from 'node:zlib';
import { writeFileAtomic } from '../../util/atomic.js';
import { DataError } from '../../errors.js';

/** JSON with object keys sorted at every level (a stable text for hashing). */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return '[' + v.map(canonicalJson).join(',') + ']';
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return (
      '{' +
      Object.keys(o)
        .filter((k) => o[k] !== undefined)
        .sort()
        .map((k) => JSON.stringify(k) + ':' + canonicalJson(o[k]))
        .join(',') +
      '}'
    );
  }
  return JSON.stringify(v) ?? 'null';
}

export function requestKey(endpoint: string, body: unknown): string {
  return createHash('sha256').update(endpoint).update('\n').update(canonicalJson(body)).digest('hex');
}

export class DiskCache {
  /** The directory is created with the first entry written. */
  constructor(readonly dir: string) {}

  private file(key: string): string {
    return path.join(this.dir, key.slice(0, 2), `${key}.json.gz`);
  }

  has(key: string): boolean {
    return fs.existsSync(this.file(key));
  }

  /** The stored response, or undefined (a corrupt entry counts as absent and is removed). */
  get(key: string): unknown {
    const f = this.file(key);
    let raw: Buffer;
    try {
      raw = fs.readFileSync(f);
    } catch {
      return undefined;
    }
    try {
      const entry = JSON.parse(gunzipSync(raw).toString('utf8')) as { response: unknown };
      return entry.response;
    } catch {
      fs.rmSync(f, { force: true });
      return undefined;
    }
  }

  set(key: string, endpoint: string, request: unknown, response: unknown): void {
    const f = this.file(key);
    try {
      writeFileAtomic(f, gzipSync(JSON.stringify({ endpoint, request, response })), { mkdir: true });
    } catch (e) {
      throw new DataError(`cannot write the cache entry '${f}': ${(e as Error).message.replace(/^cannot write '[^']*': /, '')}`);
    }
  }
}
