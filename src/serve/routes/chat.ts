// POST /v1/chat/completions: messages rendered through the plain template of src/serve/chat.ts and
// continued; "\n\nUser:" is always among the stop strings. Without stream the choices are
// computed one at a time and written in pieces; with stream the answer is server-sent events.
import type * as http from 'node:http';
import { ClientGone, Writer, writeArray } from '../http.js';
import { contextWarning, newId, type Ids, type RequestState, type ServeContext } from '../context.js';
import { parseChat } from '../validate.js';
import { renderChat, CHAT_STOP } from '../chat.js';
import { streamChat } from './sse.js';

export async function chat(s: ServeContext, body: unknown, res: http.ServerResponse, rq: RequestState): Promise<void> {
  const { engine } = s;
  const r = parseChat(body, s.modelName, s.limits);
  const text = renderChat(r.messages);
  s.precheck(text, 0);
  const { acct, gone } = rq;
  const id = newId('chatcmpl'),
    createdAt = Math.floor(Date.now() / 1000);
  const stop = r.stop.includes(CHAT_STOP) ? r.stop : [...r.stop, CHAT_STOP].slice(-4);
  await s.queue.run(rq.client, async () => {
    if (gone()) return;
    const prompt = await s.tokenize(text, 0);
    s.checkWork([prompt.length], r.n, r.maxTokens, false, r.logprobs ? r.topLogprobs : null);
    const release = s.reserveMemory([prompt.length], false, r.maxTokens, r.logprobs ? r.topLogprobs : null);
    try {
      await answer(prompt);
    } finally {
      release();
    }
  });

  async function answer(prompt: Ids): Promise<void> {
    acct.p = prompt.length * r.n;
    s.warn(res, contextWarning(prompt.length, engine.blockSize, false, true, engine.echoStride));
    const rng = s.rngFor(r);
    const gen = { maxTokens: r.maxTokens, temperature: r.temperature, topP: r.topP, topK: r.topK, rng, stop, logprobs: r.logprobs ? r.topLogprobs : null };
    if (r.stream) {
      await streamChat(s, r, { id, createdAt, prompt, gen }, res, rq);
      return;
    }
    const w = new Writer(res, s.writeTimeoutMs, gone, s.outbox);
    let started = false;
    const start = () => {
      if (started) return;
      started = true;
      res.writeHead(200, { 'content-type': 'application/json' });
      w.push(`{"id":${JSON.stringify(id)},"object":"chat.completion","created":${createdAt},"model":${JSON.stringify(s.modelName)},"choices":[`);
    };
    for (let j = 0; j < r.n; j++) {
      if (gone()) throw new ClientGone('the client closed the connection');
      const out = await s.generateCounted(prompt, gen, acct, () => !gone());
      start();
      w.push(`${j === 0 ? '' : ','}{"index":${j},"message":${JSON.stringify({ role: 'assistant', content: out.text.replace(/^ /, '') })},"logprobs":`);
      if (r.logprobs) {
        w.push('{"content":');
        await writeArray(w, s.chatLogprobs(out.tokens, r.topLogprobs).content);
        w.push('}');
      } else w.push('null');
      w.push(`,"finish_reason":${JSON.stringify(out.finishReason)}}`);
      await w.flush();
    }
    start();
    await w.end(`],"usage":${JSON.stringify({ prompt_tokens: acct.p, completion_tokens: acct.c, total_tokens: acct.p + acct.c })}}`);
  }
}
