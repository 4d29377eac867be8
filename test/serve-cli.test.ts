// `crate-ts serve` on the command line: API keys that would silently turn authentication off, a
// network address without a key, --api-key-file, and a --host that does not resolve are one-line
// usage errors (exit 2) before anything is served.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { capture } from './helpers/capture.js';
import { tinyCheckpoint, startChild, postJson } from './serve-helpers/child.js';

let dir: string, ck: string;
beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-serve-cli-'));
  ck = await tinyCheckpoint(path.join(dir, 'byte.safetensors'), 'byte', 32);
}, 120_000);
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function usage(argv: string[], env: Record<string, string | undefined> = {}): Promise<string> {
  const saved: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(env)) {
    saved[k] = process.env[k];
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  try {
    const r = await capture(['serve', '--checkpoint', ck, '--port', '0', ...argv]);
    expect(r.code, r.err + r.out).toBe(2);
    const lines = r.err.trim().split('\n');
    expect(lines.length, r.err).toBe(1);
    return lines[0];
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

describe('crate-ts serve: keys and addresses', () => {
  it('an empty or whitespace-edged key is refused, from the flag, the environment or the file', async () => {
    expect(await usage(['--api-key', ''], { CRATE_TS_API_KEY: undefined })).toMatch(/--api-key is empty; an empty key would turn authentication off/);
    expect(await usage(['--api-key', ' k3y'], { CRATE_TS_API_KEY: undefined })).toMatch(/--api-key begins or ends with whitespace/);
    expect(await usage([], { CRATE_TS_API_KEY: '' })).toMatch(/CRATE_TS_API_KEY is empty/);
    expect(await usage([], { CRATE_TS_API_KEY: 'k3y\t' })).toMatch(/CRATE_TS_API_KEY begins or ends with whitespace/);
    const empty = path.join(dir, 'empty.key');
    fs.writeFileSync(empty, '\n');
    expect(await usage(['--api-key-file', empty])).toMatch(/--api-key-file .*empty\.key is empty/);
    const two = path.join(dir, 'two.key');
    fs.writeFileSync(two, 'a\nb\n');
    expect(await usage(['--api-key-file', two])).toMatch(/the key must be one line/);
    expect(await usage(['--api-key-file', path.join(dir, 'missing.key')])).toMatch(/--api-key-file .*missing\.key: cannot read it \(ENOENT\)/);
    expect(await usage(['--api-key', 'a', '--api-key-file', two])).toMatch(/not both/);
  });

  it('a non-loopback --host needs a key or --allow-unauthenticated', async () => {
    const line = await usage(['--host', '0.0.0.0'], { CRATE_TS_API_KEY: undefined });
    expect(line).toMatch(/--host 0\.0\.0\.0 serves other machines, and no API key is set: give --api-key-file PATH .* or --allow-unauthenticated/);
    expect(await usage(['--host', '::'], { CRATE_TS_API_KEY: undefined })).toMatch(/no API key is set/);
  });

  it('an engine option out of range is reported under its flag', async () => {
    // the library error names echoStride; the command line says --echo-stride
    expect(await usage(['--echo-stride', '33'])).toMatch(/^crate-ts serve: --echo-stride must be an integer in \[1, 32\] \(the block size\), got 33$/);
  }, 60_000);

  it('a --host that does not resolve is a usage error, not a crate-ts bug', async () => {
    const line = await usage(['--host', 'no-such-host.invalid', '--allow-unauthenticated'], { CRATE_TS_API_KEY: undefined });
    expect(line).toMatch(
      /cannot listen on no-such-host\.invalid:0: (no such host name|the host name could not be resolved( now)?) \((ENOTFOUND|EAI_AGAIN|EAI_FAIL|EAI_NONAME)\)/,
    );
  }, 60_000);

  it('--api-key-file: the key (without its final line break) is required by the server', async () => {
    const kf = path.join(dir, 'server.key');
    fs.writeFileSync(kf, 's3cret-key\n', { mode: 0o600 });
    const s = await startChild(['--checkpoint', ck, '--api-key-file', kf, '--quiet'], { env: { CRATE_TS_API_KEY: '' } });
    try {
      const body = { model: 'crate', prompt: 'hi', max_tokens: 1 };
      expect((await postJson(s.base, '/v1/completions', body)).status).toBe(401);
      expect((await postJson(s.base, '/v1/completions', body, { headers: { authorization: 'Bearer s3cret-ke' } })).status).toBe(401);
      expect((await postJson(s.base, '/v1/completions', body, { headers: { authorization: 'Bearer s3cret-key' } })).status).toBe(200);
      expect(s.proc.spawnargs.join(' ')).not.toContain('s3cret-key');
    } finally {
      await s.stop();
    }
  }, 180_000);
});
