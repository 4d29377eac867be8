// The LLM client: retries with exponential backoff and jitter on 429/5xx/timeouts (never on other
// 4xx), Retry-After, bounded concurrency, the on-disk cache (and a corrupt entry), deduplication
// of identical requests in flight, and dry runs that send nothing. Counted at a fake server.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LlmClient, LlmCallError, type Endpoint } from '../src/neurons/llm/client.js';
import { DiskCache, requestKey, canonicalJson } from '../src/neurons/llm/cache.js';
import { startFakeLlm, type FakeLlm } from './serve-helpers/fake-llm.js';

let fake: FakeLlm, ep: Endpoint, dir: string;
beforeAll(async () => {
  fake = await startFakeLlm();
  ep = { baseURL: fake.url, apiKey: 'k', model: 'm' };
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-llm-client-'));
});
afterAll(async () => {
  await fake.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const chat = (s: string) => ({ messages: [{ role: 'user', content: s }], max_tokens: 5 });
const total = () => [...fake.received.values()].reduce((a, b) => a + b, 0);

describe('retries', () => {
  it('429 and 5xx are retried with growing, jittered delays (Retry-After honoured); the request then succeeds', async () => {
    const delays: number[] = [];
    const c = new LlmClient({
      sleep: async (ms) => {
        delays.push(ms);
      },
      random: () => 0.5,
      baseDelayMs: 100,
    });
    fake.failNext(3, 503);
    const before = total();
    const r = await c.request(ep, 'chat/completions', chat('retry me'));
    expect((r as any).choices[0].message.content).toContain('vowels');
    expect(total() - before).toBe(4);
    expect(c.stats).toMatchObject({ calls: 1, retries: 3, failed: 0 });
    // base·2^k · (0.5 + 0.5·0.5)
    expect(delays).toEqual([75, 150, 300]);
    fake.failNext(1, 429, 2);
    const d2: number[] = [];
    const c2 = new LlmClient({
      sleep: async (ms) => {
        d2.push(ms);
      },
      baseDelayMs: 10,
    });
    await c2.request(ep, 'chat/completions', chat('rate limited'));
    expect(d2[0]).toBeGreaterThanOrEqual(2000);
  });

  it('a 400 fails at once with its status and message; retries stop after maxRetries', async () => {
    const c = new LlmClient({ sleep: async () => {}, maxRetries: 2 });
    fake.failNext(1, 400);
    const before = total();
    const e = (await c.request(ep, 'chat/completions', chat('bad')).catch((x: any) => x)) as any;
    expect(e).toBeInstanceOf(LlmCallError);
    expect(e.status).toBe(400);
    expect(e.message).toMatch(/HTTP 400: injected 400/);
    expect(total() - before).toBe(1);
    fake.failNext(10, 500);
    const e2 = (await c.request(ep, 'chat/completions', chat('down')).catch((x: any) => x)) as any;
    expect(e2.message).toMatch(/after 3 attempts: HTTP 500/);
    expect(c.stats.failed).toBe(2);
    fake.failNext(0, 500);
  });

  it('a timeout is retried; a refused connection fails with the reason after the retries', async () => {
    const slow = await startFakeLlm({ delayMs: 400 });
    try {
      const c = new LlmClient({ sleep: async () => {}, timeoutMs: 150, maxRetries: 1 });
      const e = (await c.request({ ...ep, baseURL: slow.url }, 'chat/completions', chat('slow')).catch((x: any) => x)) as any;
      expect(e.message).toMatch(/after 2 attempts: timed out/);
      expect([...slow.received.values()][0]).toBe(2);
    } finally {
      await slow.close();
    }
    const c = new LlmClient({ sleep: async () => {}, maxRetries: 1 });
    const e = (await c.request({ ...ep, baseURL: 'http://127.0.0.1:1/v1' }, 'chat/completions', chat('x')).catch((x: any) => x)) as any;
    expect(e.message).toMatch(/connection failed/);
  });
});

describe('concurrency, cache, dedupe, dry run', () => {
  it('never more than `concurrency` requests in flight', async () => {
    const slow = await startFakeLlm({ delayMs: 30 });
    try {
      const c = new LlmClient({ concurrency: 3 });
      await Promise.all(Array.from({ length: 12 }, (_, i) => c.request({ ...ep, baseURL: slow.url }, 'chat/completions', chat(`n${i}`))));
      expect(slow.maxInFlight).toBe(3);
      expect(c.stats.calls).toBe(12);
    } finally {
      await slow.close();
    }
  });

  it('a cached request is not sent again; identical requests in flight are sent once; a corrupt entry is refetched', async () => {
    const cache = new DiskCache(path.join(dir, 'c1'));
    const c = new LlmClient({ cache });
    const before = total();
    const [a, b] = await Promise.all([c.request(ep, 'chat/completions', chat('same')), c.request(ep, 'chat/completions', chat('same'))]);
    expect(a).toEqual(b);
    expect(total() - before).toBe(1);
    const c2 = new LlmClient({ cache });
    expect(await c2.request(ep, 'chat/completions', chat('same'))).toEqual(a);
    expect(total() - before).toBe(1);
    expect(c2.stats).toMatchObject({ calls: 0, cached: 1 });
    // key: endpoint + canonical body (key order does not matter; the model does)
    const k = requestKey('chat/completions', { ...chat('same'), model: 'm' });
    expect(k).toBe(requestKey('chat/completions', JSON.parse(canonicalJson({ model: 'm', ...chat('same') }))));
    expect(k).not.toBe(requestKey('chat/completions', { ...chat('same'), model: 'other' }));
    const f = path.join(cache.dir, k.slice(0, 2), `${k}.json.gz`);
    fs.writeFileSync(f, 'garbage');
    await c2.request(ep, 'chat/completions', chat('same'));
    expect(total() - before).toBe(2);
    expect(fs.readdirSync(path.join(cache.dir, k.slice(0, 2))).some((n) => n.includes('.tmp-'))).toBe(false);
  });

  it('a dry run sends nothing and counts the calls and prompt tokens (cached ones apart)', async () => {
    const cache = new DiskCache(path.join(dir, 'c2'));
    await new LlmClient({ cache }).request(ep, 'chat/completions', chat('known'));
    const before = total();
    const dry = new LlmClient({ cache, dryRun: true, countTokens: (t) => t.length });
    expect(await dry.request(ep, 'chat/completions', chat('new one'))).toBeNull();
    expect(await dry.request(ep, 'completions', { prompt: 'abcdef', max_tokens: 0 })).toBeNull();
    expect(await dry.request(ep, 'chat/completions', chat('known'))).not.toBeNull();
    expect(total()).toBe(before);
    expect(dry.stats).toMatchObject({ planned: 2, plannedPromptTokens: 7 + 6, cached: 1, calls: 0 });
  });
});
