// `crate-ts serve` as its own process, with a small V8 heap, under the attacks that
// froze it or killed it: a long word (quadratic BPE on the event loop), a reply larger than the
// process (echo × logprobs), and a queue of large requests. The server must answer /health all
// along, refuse what it cannot do with an OpenAI-shaped 4xx/503, and still be alive at the end.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { tinyCheckpoint, startChild, request, postJson, type ChildServer } from './serve-helpers/child.js';

let dir: string, gpt2: string, bytes: string;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-serve-hard-'));
  gpt2 = await tinyCheckpoint(path.join(dir, 'gpt2.safetensors'), 'gpt2', 64);
  bytes = await tinyCheckpoint(path.join(dir, 'byte.safetensors'), 'byte', 64);
}, 120_000);
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Poll /health until `done()`; every answer must come within `limitMs` (a frozen loop gives none). */
async function healthWhile(s: ChildServer, done: () => boolean, limitMs: number): Promise<number> {
  let n = 0;
  while (!done()) {
    const h = await request(s.base + '/health', { timeoutMs: limitMs });
    expect(h.status).toBe(200);
    n++;
    await sleep(200);
  }
  return n;
}

function expectOpenAiError(text: string, code: string): void {
  const j = JSON.parse(text);
  expect(Object.keys(j)).toEqual(['error']);
  expect(Object.keys(j.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(j.error.code).toBe(code);
}

describe('crate-ts serve survives hostile requests (child process, small heap)', () => {
  it('a 2,000,000-letter word: /health keeps answering while it is tokenized, and the prompt is refused as too long', async () => {
    const s = await startChild(['--checkpoint', gpt2, '--quiet'], { heapMb: 256 });
    try {
      let done = false;
      const attack = postJson(s.base, '/v1/completions', { model: 'crate', prompt: 'a'.repeat(2_000_000), max_tokens: 1 }, { timeoutMs: 600_000 }).finally(
        () => (done = true),
      );
      await sleep(500);
      // before the fix the word took hours to encode and /health got no answer
      const polls = await healthWhile(s, () => done, 20_000);
      const r = await attack;
      expect(r.status).toBe(400);
      expectOpenAiError(r.text, 'context_length_exceeded');
      expect(JSON.parse(r.text).error.message).toMatch(/^prompt 0 has at least \d+ tokens, more than this server accepts \(--max-prompt-tokens 16384\)$/);
      expect(polls).toBeGreaterThanOrEqual(0);
      // text longer than 16384 × 128 characters is refused without being encoded at all
      const t0 = performance.now();
      const r2 = await postJson(s.base, '/v1/completions', { model: 'crate', prompt: 'b'.repeat(2_200_000), max_tokens: 1 }, { timeoutMs: 60_000 });
      expect(r2.status).toBe(400);
      expectOpenAiError(r2.text, 'context_length_exceeded');
      expect(performance.now() - t0).toBeLessThan(30_000);
      expect(s.alive()).toBe(true);
    } finally {
      await s.stop();
    }
  }, 600_000);

  it('a reply larger than the heap is refused, 150 queued 1 MiB requests do not exhaust it, and the server lives on', async () => {
    // one request computes at a time (no batching), so the burst below queues behind the slow one
    const s = await startChild(['--checkpoint', bytes, '--quiet', '--max-batch', '1'], { heapMb: 256 });
    try {
      // 64 prompts × 4000 token ids, echo with 20 alternatives each: 5.4 M log-probabilities (about
      // 300 MB of JSON); before the fix it was built whole in memory and the process died.
      const ids = Array.from({ length: 4000 }, (_, i) => 32 + (i % 90));
      const huge = await postJson(
        s.base,
        '/v1/completions',
        { model: 'crate', prompt: Array(64).fill(ids), max_tokens: 0, echo: true, logprobs: 20 },
        { timeoutMs: 300_000 },
      );
      expect(huge.status).toBe(400);
      expectOpenAiError(huge.text, 'request_too_large');
      expect(JSON.parse(huge.text).error.param).toBe('logprobs');
      // one slow request holds the model while 150 requests of ~1 MiB (64 prompts × 3900 token ids each) arrive
      // from several client addresses; the excess is turned away with 429 or 503.
      const slow = postJson(
        s.base,
        '/v1/completions',
        { model: 'crate', prompt: 'x', max_tokens: 4096, n: 16, temperature: 1, seed: 1 },
        { timeoutMs: 600_000 },
      );
      slow.catch(() => {});
      await sleep(300);
      const big = JSON.stringify({ model: 'crate', prompt: Array(64).fill(ids.slice(0, 3900)), max_tokens: 0 });
      let done = false;
      const burst = Promise.all(
        Array.from({ length: 150 }, (_, i) =>
          postJson(s.base, '/v1/completions', big, { localAddress: `127.0.0.${2 + (i % 8)}`, timeoutMs: 600_000 }).catch((e: Error) => ({
            status: -1,
            headers: {},
            text: e.message,
          })),
        ),
      ).finally(() => (done = true));
      await healthWhile(s, () => done, 30_000);
      const answers = await burst;
      const statuses = answers.map((a) => a.status);
      // before the fix the process ran out of heap here and every request failed
      expect(statuses.filter((x) => x === -1)).toEqual([]);
      // the excess is turned away: by an address's share of request bytes (429, before the body is
      // read: --max-client-bytes) or by the queue's memory budget (503)
      for (const a of answers) expect([200, 429, 503]).toContain(a.status);
      expect(statuses.filter((x) => x !== 200).length).toBeGreaterThan(0);
      for (const a of answers.filter((x) => x.status !== 200)) expectOpenAiError(a.text, a.status === 429 ? 'rate_limit_exceeded' : 'overloaded');
      expect((await slow).status).toBe(200);
      expect(s.alive()).toBe(true);
      const ok = await postJson(s.base, '/v1/completions', { model: 'crate', prompt: 'hello', max_tokens: 3, temperature: 0 });
      expect(ok.status).toBe(200);
    } finally {
      await s.stop();
    }
  }, 600_000);
});
