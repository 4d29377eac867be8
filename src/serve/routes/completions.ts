// POST /v1/completions: prompt (string | [string] | [id] | [[id]]), max_tokens (0 allowed), echo,
// logprobs ≤ 20 (vLLM's shape), temperature, top_p, top_k, seed, stop, n, stream.
//
// The request is validated and its text length checked before it waits; inside the queue its
// prompts are tokenized and the work of the whole request is bounded before any of it starts.
// Without stream the choices are computed one at a time and each is written in pieces (the
// response is never whole in memory); with stream the answer is server-sent events (./sse.ts).
import type * as http from 'node:http';
import { ClientGone, Writer } from '../http.js';
import { contextWarning, newId, type CompletionLogprobs, type Ids, type RequestState, type ServeContext } from '../context.js';
import { parseCompletion } from '../validate.js';
import { codePoints } from '../tokens.js';
import { writeArray } from '../http.js';
import { streamCompletion } from './sse.js';

/** A completion's logprobs object (the echoed part, then the generated part) written in pieces. */
async function writeLogprobs(w: Writer, a: CompletionLogprobs | null, b: CompletionLogprobs | null): Promise<void> {
  if (!a && !b) {
    w.push('null');
    return;
  }
  const x = a ?? b!,
    y = a && b ? b : null;
  w.push('{"tokens":');
  await writeArray(w, x.tokens, y?.tokens);
  w.push(',"token_logprobs":');
  await writeArray(w, x.token_logprobs, y?.token_logprobs);
  w.push(',"top_logprobs":');
  await writeArray(w, x.top_logprobs, y?.top_logprobs);
  w.push(',"text_offset":');
  await writeArray(w, x.text_offset, y?.text_offset);
  w.push('}');
}

export async function completions(s: ServeContext, body: unknown, res: http.ServerResponse, rq: RequestState): Promise<void> {
  const { engine } = s;
  const r = parseCompletion(body, s.modelName, engine.vocabSize, s.limits);
  r.prompts.forEach((p, i) => s.precheck(p, i));
  const { acct, gone } = rq;
  const id = newId('cmpl'),
    createdAt = Math.floor(Date.now() / 1000);
  await s.queue.run(rq.client, async () => {
    if (gone()) return;
    const promptIds: Ids[] = [];
    for (let i = 0; i < r.prompts.length; i++) promptIds.push(await s.tokenize(r.prompts[i], i));
    s.checkWork(
      promptIds.map((p) => p.length),
      r.n,
      r.maxTokens,
      r.echo,
      r.logprobs,
    );
    const release = s.reserveMemory(
      promptIds.flatMap((p) => new Array<number>(r.n).fill(p.length)),
      r.echo && r.logprobs !== null,
      r.maxTokens,
      r.logprobs,
    );
    try {
      await answer(promptIds);
    } finally {
      release();
    }
  });

  async function answer(promptIds: Ids[]): Promise<void> {
    acct.p = promptIds.reduce((a, ids) => a + ids.length * r.n, 0);
    s.warn(
      res,
      contextWarning(Math.max(...promptIds.map((ids) => ids.length)), engine.blockSize, r.echo && r.logprobs !== null, r.maxTokens > 0, engine.echoStride),
    );
    const rng = s.rngFor(r);
    const gen = { maxTokens: r.maxTokens, temperature: r.temperature, topP: r.topP, topK: r.topK, rng, stop: r.stop, logprobs: r.logprobs };
    if (r.stream) {
      await streamCompletion(s, r, { id, createdAt, promptIds, gen }, res, rq);
      return;
    }
    // One choice at a time: computed, then written in pieces (the response is never whole in memory).
    const w = new Writer(res, s.writeTimeoutMs, gone, s.outbox);
    let started = false;
    const start = () => {
      if (started) return;
      started = true;
      res.writeHead(200, { 'content-type': 'application/json' });
      w.push(`{"id":${JSON.stringify(id)},"object":"text_completion","created":${createdAt},"model":${JSON.stringify(s.modelName)},"choices":[`);
    };
    // The prompts' echoes are computed together (the engine batches their rows), and so are the
    // choices of a greedy request (no draw, so no order between them); sampled choices are drawn
    // one after another from the request's Rng, as when computed alone.
    const echoes = await Promise.all(
      promptIds.map(async (ids) => {
        if (!r.echo) return null;
        if (r.logprobs !== null) {
          const e = await s.echoLogprobs(ids, r.logprobs, gone);
          return { text: e.text, lp: e.lp as CompletionLogprobs | null, offset: e.end.offset };
        }
        const t = s.promptText(ids);
        return { text: t, lp: null, offset: codePoints(t) };
      }),
    );
    const jobs = promptIds.flatMap((ids, pi) => Array.from({ length: r.n }, () => ({ ids, pi })));
    const run = (ids: Ids) => {
      if (gone()) throw new ClientGone('the client closed the connection');
      return s.generateCounted(ids, gen, acct, () => !gone());
    };
    const together = r.temperature <= 0 ? await Promise.all(jobs.map((j) => run(j.ids))) : null;
    for (let index = 0; index < jobs.length; index++) {
      const echo = echoes[jobs[index].pi];
      const out = together ? together[index] : await run(jobs[index].ids);
      const g = r.logprobs !== null ? s.generatedLogprobs(out.tokens, r.logprobs, echo?.offset ?? 0) : null;
      start();
      w.push(`${index === 0 ? '' : ','}{"index":${index},"text":${JSON.stringify((echo?.text ?? '') + out.text)},"logprobs":`);
      await writeLogprobs(w, g ? (echo?.lp ?? null) : null, g);
      w.push(`,"finish_reason":${JSON.stringify(out.finishReason)}}`);
      await w.flush();
    }
    start();
    await w.end(`],"usage":${JSON.stringify({ prompt_tokens: acct.p, completion_tokens: acct.c, total_tokens: acct.p + acct.c })}}`);
  }
}
