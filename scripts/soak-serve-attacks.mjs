// The attackers of scripts/soak-serve.mjs, in a worker thread of their own: the normal clients
// whose latencies the soak reports then do not wait on the attackers' event loop (sending sixty
// 1 MiB bodies at once held a shared loop for up to 1.5 s, time the soak used to count as the
// server's). The worker runs the attacks named in workerData until workerData.endWall (Date.now())
// or a 'stop' message, then posts what each attack got back.
import * as http from 'node:http';
import * as net from 'node:net';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';

/** HTTP helpers against the server at `base` (a fresh connection per request). */
export function client(base) {
  function request(p, { method = 'GET', headers = {}, body, localAddress, timeoutMs = 600_000 } = {}) {
    return new Promise((resolve) => {
      const req = http.request(base + p, { method, headers, localAddress, agent: false }, (res) => {
        let n = 0;
        res.on('data', (c) => (n += c.length));
        res.on('end', () => resolve({ status: res.statusCode, bytes: n }));
        res.on('error', () => resolve({ status: -1, bytes: n }));
      });
      req.on('error', () => resolve({ status: -1, bytes: 0 }));
      req.setTimeout(timeoutMs, () => req.destroy());
      req.end(body);
    });
  }
  const post = (p, body, extra = {}) =>
    request(p, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(extra.headers ?? {}) },
      body: typeof body === 'string' ? body : JSON.stringify(body),
      ...extra,
    });
  return { request, post };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const ATTACKS = ['long-word', 'huge-echo', 'flood', 'slow-read', 'conn-flood', 'gone', 'browser'];

/** Run the attacks against 127.0.0.1:port until stop(); what each got back, by status. */
export async function runAttacks(port, corpus, chosen, stop) {
  const base = `http://127.0.0.1:${port}`;
  const { request, post } = client(base);
  const tally = {};
  const count = (attack, status) => {
    tally[attack] ??= {};
    tally[attack][status] = (tally[attack][status] ?? 0) + 1;
  };

  const attacks = {
    'long-word': async (stop) => {
      const body = JSON.stringify({ model: 'crate', prompt: 'a'.repeat(400_000), max_tokens: 1 });
      while (!stop()) count('long-word', (await post('/v1/completions', body)).status);
    },
    'huge-echo': async (stop) => {
      const ids = Array.from({ length: 4000 }, (_, i) => corpus[i]);
      const body = JSON.stringify({ model: 'crate', prompt: Array(64).fill(ids), max_tokens: 0, echo: true, logprobs: 20 });
      while (!stop()) {
        count('huge-echo', (await post('/v1/completions', body)).status);
        await sleep(500);
      }
    },
    flood: async (stop) => {
      const ids = Array.from({ length: 3900 }, (_, i) => corpus[i]);
      const body = JSON.stringify({ model: 'crate', prompt: Array(64).fill(ids), max_tokens: 0 });
      while (!stop()) {
        const rs = await Promise.all(Array.from({ length: 60 }, (_, i) => post('/v1/completions', body, { localAddress: `127.0.0.${2 + (i % 8)}` })));
        for (const r of rs) count('flood', r.status);
        await sleep(2000);
      }
    },
    'slow-read': async (stop) => {
      // streaming echo of long prompts (about 512 KB of events and no model work); the socket is never read
      const longest = corpus.slice(0, 16_000);
      const body = JSON.stringify({ model: 'crate', prompt: Array(8).fill(longest), max_tokens: 0, echo: true, stream: true });
      const one = async () => {
        while (!stop()) {
          await new Promise((resolve) => {
            const s = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.20' }, () => {
              s.pause();
              s.write(
                `POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
              );
            });
            s.on('error', () => {});
            s.on('close', () => {
              count('slow-read', 'dropped');
              resolve();
            });
            const t = setInterval(() => {
              if (stop()) {
                clearInterval(t);
                s.destroy();
              }
            }, 500);
            s.on('close', () => clearInterval(t));
          });
        }
      };
      await Promise.all(Array.from({ length: 10 }, one));
    },
    'conn-flood': async (stop) => {
      const socks = [];
      let refused = 0;
      for (let i = 0; i < 2000 && !stop(); i++) {
        const s = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.30' });
        s.on('error', () => {});
        s.on('close', () => refused++);
        s.resume(); // read what the server says, so its close is seen
        socks.push(s);
        if (i % 100 === 99) await sleep(50);
      }
      while (!stop()) await sleep(500);
      count('conn-flood', `closed by server: ${refused}`);
      for (const s of socks) s.destroy();
    },
    gone: async (stop) => {
      while (!stop()) {
        const ac = new AbortController();
        try {
          const r = await fetch(`${base}/v1/completions`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ model: 'crate', prompt: ['a', 'b', 'c'], n: 8, max_tokens: 200, stream: true }),
            signal: ac.signal,
          });
          await r.body.getReader().read();
          count('gone', r.status);
        } catch {
          count('gone', -1);
        }
        ac.abort();
        await sleep(1000);
      }
    },
    browser: async (stop) => {
      const body = JSON.stringify({ model: 'crate', prompt: 'hi', max_tokens: 1 });
      while (!stop()) {
        count('browser', (await request('/v1/completions', { method: 'POST', headers: { 'content-type': 'text/plain' }, body })).status);
        count('browser', (await post('/v1/completions', body, { headers: { host: 'evil.example' } })).status);
        count('browser', (await post('/v1/completions', body, { headers: { origin: 'null' } })).status);
        await sleep(500);
      }
    },
  };
  await Promise.all(chosen.map((a) => attacks[a](stop)));
  return tally;
}

if (!isMainThread && workerData?.soakAttacks) {
  const { port, corpus, chosen, endWall } = workerData;
  let stopped = false;
  parentPort.on('message', (m) => {
    if (m === 'stop') stopped = true;
  });
  const tally = await runAttacks(port, corpus, chosen, () => stopped || Date.now() >= endWall);
  parentPort.postMessage({ tally });
  parentPort.close();
}
