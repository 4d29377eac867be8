// A fake OpenAI-compatible LLM server for the explain/simulate tests: fast, deterministic, and
// programmable (failures, stalls), counting every request it receives by the hash of its body.
//
// - /v1/chat/completions: an explanation, or (when the prompt asks for lines with blanks) the
//   logprob-free rewrite of the target lines with values from `rule`.
// - /v1/completions with echo: the prompt cut by a tokenizer unlike GPT-2's (words are split into
//   chunks of at most 3 letters, non-ASCII characters into "bytes:\xNN" tokens, each newline its own
//   token), with top_logprobs at every position; at a position that follows a tab, the
//   distribution over "0".."10" is `rule(line token)`.
// - /v1/completions with max_tokens 1: that distribution for the line the prompt ends in.
import * as http from 'node:http';
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';

/** The fake simulator's belief: the value distribution for a line's token. */
export function rule(token: string): Record<string, number> {
  const v = /[aeiou]/i.test(token) ? 7 : /\d/.test(token) ? 3 : 0;
  // mostly v, some 0 and 10 ("10" is one token here, unlike in Llama's tokenizer)
  return v === 0 ? { '0': Math.log(0.9), '10': Math.log(0.05), x: Math.log(0.05) } : { [String(v)]: Math.log(0.6), '0': Math.log(0.3), '10': Math.log(0.1) };
}

/** The expected value the parser should compute from rule(token). */
export function ruleExpected(token: string): number {
  const d = rule(token);
  let s = 0,
    t = 0;
  for (const [k, lp] of Object.entries(d))
    if (/^(10|[0-9])$/.test(k)) {
      s += Number(k) * Math.exp(lp);
      t += Math.exp(lp);
    }
  return s / t;
}

/** The fake tokenizer. */
export function fakeTokenize(text: string): string[] {
  const out: string[] = [];
  const re = /\n|\t|[A-Za-z]{1,3}|[0-9]|[\x00-\x7f]|[^\x00-\x7f]/gsu;
  for (const m of text.matchAll(re)) {
    const s = m[0];
    if (/^[\x00-\x7f]+$/.test(s)) out.push(s);
    else for (const b of Buffer.from(s, 'utf8')) out.push(`bytes:\\x${b.toString(16).padStart(2, '0')}`);
  }
  return out;
}

export interface FakeLlm {
  url: string;
  /** Bodies received (hash → count), and the order of hashes. */
  received: Map<string, number>;
  order: string[];
  /** Hashes answered with a 200 (the response was written). */
  answered: Set<string>;
  /** Fail the next n requests with this status. */
  failNext(n: number, status: number, retryAfter?: number): void;
  /** Answer at most this many more requests; later ones wait until release(). */
  stallAfter(n: number): void;
  release(): void;
  maxInFlight: number;
  /** Answer echo requests without logprobs (as llama.cpp's server and Ollama do). */
  noEchoLogprobs: boolean;
  close(): Promise<void>;
}

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

export async function startFakeLlm(opts: { delayMs?: number } = {}): Promise<FakeLlm> {
  let failures: { n: number; status: number; retryAfter?: number } = { n: 0, status: 500 };
  let budget = Infinity;
  let waiting: (() => void)[] = [];
  let inFlight = 0;
  const state: FakeLlm = {
    url: '',
    received: new Map(),
    order: [],
    answered: new Set(),
    maxInFlight: 0,
    noEchoLogprobs: false,
    failNext(n, status, retryAfter) {
      failures = { n, status, retryAfter };
    },
    stallAfter(n) {
      budget = n;
    },
    release() {
      budget = Infinity;
      const w = waiting;
      waiting = [];
      w.forEach((f) => f());
    },
    close: async () => {},
  };
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const h = sha(`${req.url}\n${raw}`);
    state.received.set(h, (state.received.get(h) ?? 0) + 1);
    state.order.push(h);
    inFlight++;
    state.maxInFlight = Math.max(state.maxInFlight, inFlight);
    try {
      if (failures.n > 0) {
        failures.n--;
        const headers: Record<string, string> = { 'content-type': 'application/json' };
        if (failures.retryAfter !== undefined) headers['retry-after'] = String(failures.retryAfter);
        res.writeHead(failures.status, headers);
        res.end(JSON.stringify({ error: { message: `injected ${failures.status}`, type: 'server_error', param: null, code: null } }));
        return;
      }
      if (budget <= 0) await new Promise<void>((r) => waiting.push(r));
      budget--;
      if (opts.delayMs) await new Promise((r) => setTimeout(r, opts.delayMs));
      const body = JSON.parse(raw);
      let out: unknown;
      if (req.url?.endsWith('/chat/completions')) out = chat(body);
      else if (req.url?.endsWith('/completions')) {
        out = completion(body);
        if (state.noEchoLogprobs) (out as { choices: { logprobs: unknown }[] }).choices[0].logprobs = null;
      } else {
        res.writeHead(404);
        res.end('{}');
        return;
      }
      const text = JSON.stringify(out);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(text, () => state.answered.add(h));
    } finally {
      inFlight--;
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  state.close = () =>
    new Promise((r) => {
      state.release();
      server.closeAllConnections();
      server.close(() => r());
    });
  return state;
}

function chat(body: { messages: { role: string; content: string }[]; model: string }) {
  const last = body.messages[body.messages.length - 1].content;
  let content: string;
  const m = /Passage without activations:\n([\s\S]*?)\nPassage with activations:\n$/.exec(last);
  if (m) {
    // logprob-free: copy the lines, filling the blank with the rule's most likely value
    content = m[1]
      .split(' \u00b6\n')
      .filter((l) => l.length)
      .map((l) => {
        const tok = l.slice(0, l.lastIndexOf('\t'));
        const d = rule(tok);
        const best = Object.entries(d)
          .filter(([k]) => /^\d+$/.test(k))
          .sort((a, b) => b[1] - a[1])[0][0];
        return `${tok}\t${best} \u00b6\n`;
      })
      .join('');
  } else {
    content = ` tokens with vowels (${sha(last).slice(0, 6)})`;
  }
  return {
    id: 'chatcmpl-fake',
    object: 'chat.completion',
    created: 0,
    model: body.model,
    choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
    usage: { prompt_tokens: Math.ceil(last.length / 4), completion_tokens: 8, total_tokens: 0 },
  };
}

function completion(body: { prompt: string; echo?: boolean; max_tokens?: number; logprobs?: number; model: string }) {
  const prompt = body.prompt;
  if (body.echo) {
    const tokens = fakeTokenize(prompt);
    const top: (Record<string, number> | null)[] = [];
    // the token before each tab: the text of the line since the last newline
    let line = '';
    for (let i = 0; i < tokens.length; i++) {
      if (i === 0) top.push(null);
      else if (tokens[i - 1] === '\t') top.push(rule(line.slice(0, -1)));
      else top.push({ [tokens[i]]: -0.1, the: -3 });
      const t = tokens[i];
      const txt = t.startsWith('bytes:') ? Buffer.from([parseInt(t.slice(8), 16)]).toString('latin1') : t;
      if (t === '\n') line = '';
      else line += txt;
    }
    return {
      id: 'cmpl-fake',
      object: 'text_completion',
      created: 0,
      model: body.model,
      choices: [
        {
          index: 0,
          text: prompt,
          logprobs: { tokens, token_logprobs: tokens.map((_, i) => (i ? -1 : null)), top_logprobs: top, text_offset: codePointOffsets(tokens) },
          finish_reason: 'length',
        },
      ],
      usage: { prompt_tokens: tokens.length, completion_tokens: 0, total_tokens: tokens.length },
    };
  }
  // token-by-token: the prompt ends with "token\t"
  const lastLine = prompt.slice(prompt.lastIndexOf('\n') + 1, -1);
  return {
    id: 'cmpl-fake',
    object: 'text_completion',
    created: 0,
    model: body.model,
    choices: [
      {
        index: 0,
        text: '0',
        logprobs: { tokens: ['0'], token_logprobs: [-0.1], top_logprobs: [rule(lastLine)], text_offset: [prompt.length] },
        finish_reason: 'length',
      },
    ],
    usage: { prompt_tokens: Math.ceil(prompt.length / 4), completion_tokens: 1, total_tokens: 0 },
  };
}

/** Code-point offsets of tokens whose bytes concatenate to the text (byte tokens count once complete). */
function codePointOffsets(tokens: string[]): number[] {
  const out: number[] = [];
  let bytes: number[] = [],
    cps = 0;
  for (const t of tokens) {
    out.push(cps);
    if (t.startsWith('bytes:')) {
      bytes.push(parseInt(t.slice(8), 16));
      const s = Buffer.from(bytes).toString('utf8');
      if (!s.includes('\ufffd')) {
        cps += [...s].length;
        bytes = [];
      }
    } else cps += [...t].length;
  }
  return out;
}
