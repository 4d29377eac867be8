// Streamed answers (`"stream": true`): server-sent events, one per generated token, each written
// (and, when the client reads slowly, drained) before the computation goes on; a long echo goes
// out as several events whose texts and arrays concatenate. The stream ends with "data: [DONE]".
import type * as http from 'node:http';
import { ClientGone, Writer } from '../http.js';
import type { CompletionLogprobs, Ids, RequestState, ServeContext } from '../context.js';
import type { GenerateOptions } from '../engine.js';
import type { ChatRequest, CompletionRequest } from '../validate.js';
import { codePoints } from '../tokens.js';

const SSE_HEAD = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' };

/** Echoed prompt positions per server-sent event (a long echo is sent as several chunks). */
const ECHO_CHUNK = 512;

/** One server-sent event, written before the computation goes on. */
async function event(w: Writer, obj: unknown): Promise<void> {
  w.push(`data: ${JSON.stringify(obj)}\n\n`);
  await w.flush();
}

/** What a streamed completion needs beyond the request: its id, ids per prompt and sampling. */
export interface StreamJob {
  id: string;
  createdAt: number;
  promptIds: Ids[];
  gen: GenerateOptions;
}

/** POST /v1/completions with stream: true. */
export async function streamCompletion(s: ServeContext, r: CompletionRequest, job: StreamJob, res: http.ServerResponse, rq: RequestState): Promise<void> {
  const { acct, gone } = rq;
  const { id, createdAt, promptIds, gen } = job;
  const w = new Writer(res, s.writeTimeoutMs, gone, s.outbox);
  rq.sse = true;
  res.writeHead(200, SSE_HEAD);
  for (let pi = 0; pi < promptIds.length; pi++) {
    for (let j = 0; j < r.n; j++) {
      if (gone()) throw new ClientGone('the client closed the connection');
      const index = pi * r.n + j;
      const chunk = (text: string, logprobs: CompletionLogprobs | null, finish: string | null) =>
        event(w, { id, object: 'text_completion', created: createdAt, model: s.modelName, choices: [{ index, text, logprobs, finish_reason: finish }] });
      let offset = 0;
      if (r.echo) {
        if (r.logprobs !== null) {
          const e = await s.echoLogprobs(promptIds[pi], r.logprobs, gone);
          // a long echo goes out as several events (their texts and arrays concatenate)
          for (let a = 0; a < e.lp.tokens.length; a += ECHO_CHUNK) {
            const part: CompletionLogprobs = {
              tokens: e.lp.tokens.slice(a, a + ECHO_CHUNK),
              token_logprobs: e.lp.token_logprobs.slice(a, a + ECHO_CHUNK),
              top_logprobs: e.lp.top_logprobs.slice(a, a + ECHO_CHUNK),
              text_offset: e.lp.text_offset.slice(a, a + ECHO_CHUNK),
            };
            await chunk(part.tokens.join(''), part, null);
          }
          offset = e.end.offset;
        } else {
          const t = s.promptText(promptIds[pi]);
          await chunk(t, null, null);
          offset = codePoints(t);
        }
      }
      const out = await s.generateCounted(promptIds[pi], gen, acct, async (text, tok) => {
        if (gone()) return false;
        if (text === '' && (tok === null || r.logprobs === null)) return true;
        const lp = tok && r.logprobs !== null ? s.generatedLogprobs([tok], r.logprobs, offset) : null;
        offset += codePoints(text);
        await chunk(text, lp, null);
        return true;
      });
      await chunk('', null, out.finishReason);
    }
  }
  if (r.includeUsage)
    await event(w, {
      id,
      object: 'text_completion',
      created: createdAt,
      model: s.modelName,
      choices: [],
      usage: { prompt_tokens: acct.p, completion_tokens: acct.c, total_tokens: acct.p + acct.c },
    });
  await w.end('data: [DONE]\n\n');
}

/** POST /v1/chat/completions with stream: true. */
export async function streamChat(
  s: ServeContext,
  r: ChatRequest,
  job: { id: string; createdAt: number; prompt: Ids; gen: GenerateOptions },
  res: http.ServerResponse,
  rq: RequestState,
): Promise<void> {
  const { acct, gone } = rq;
  const { id, createdAt, prompt, gen } = job;
  const w = new Writer(res, s.writeTimeoutMs, gone, s.outbox);
  rq.sse = true;
  res.writeHead(200, SSE_HEAD);
  for (let j = 0; j < r.n; j++) {
    if (gone()) throw new ClientGone('the client closed the connection');
    const chunk = (delta: Record<string, string>, logprobs: unknown, finish: string | null) =>
      event(w, {
        id,
        object: 'chat.completion.chunk',
        created: createdAt,
        model: s.modelName,
        choices: [{ index: j, delta, logprobs, finish_reason: finish }],
      });
    await chunk({ role: 'assistant', content: '' }, null, null);
    let first = true;
    const out = await s.generateCounted(prompt, gen, acct, async (text, tok) => {
      if (gone()) return false;
      if (text === '' && (tok === null || !r.logprobs)) return true;
      // the completion continues "Assistant:"; its leading space belongs to the template
      if (first && text.length) {
        text = text.replace(/^ /, '');
        first = false;
      }
      await chunk({ content: text }, tok && r.logprobs ? s.chatLogprobs([tok], r.topLogprobs) : null, null);
      return true;
    });
    await chunk({}, null, out.finishReason);
  }
  if (r.includeUsage)
    await event(w, {
      id,
      object: 'chat.completion.chunk',
      created: createdAt,
      model: s.modelName,
      choices: [],
      usage: { prompt_tokens: acct.p, completion_tokens: acct.c, total_tokens: acct.p + acct.c },
    });
  await w.end('data: [DONE]\n\n');
}
