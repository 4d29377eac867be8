// The tokenizer, as lm-evaluation-harness's remote tokenizer and vLLM's routes ask for it:
// GET tokenizer_info, POST tokenize {"prompt"} → {"tokens"}, POST detokenize {"tokens"} → {"prompt"}.
import type * as http from 'node:http';
import { sendJson } from '../http.js';
import { EOT_TEXT, type ServeContext } from '../context.js';
import { TooManyTokens } from '../encode.js';
import { ApiError } from '../validate.js';

/** End-of-text and beginning-of-text tokens (GPT-2 uses one token for both, as its Hugging Face tokenizer says). */
export function tokenizerInfo(s: ServeContext): Record<string, unknown> {
  const t = s.engine.tokenizer;
  // A byte-level or char model has no end-of-text token; its documents are separated by a blank
  // line, so the newline stands in for it (rolling windows start after one).
  const eosId = t.eot ?? (t.name === 'byte' ? 10 : null);
  const eos = t.eot !== null ? EOT_TEXT : eosId === 10 ? '\n' : null;
  return {
    tokenizer: t.name,
    eos_token: eos,
    eos_token_id: eosId,
    bos_token: eos,
    bos_token_id: eosId,
    pad_token: null,
    vocab_size: t.vocabSize,
    model_max_length: s.engine.blockSize,
    special_tokens: t.eot !== null ? { [EOT_TEXT]: t.eot } : {},
  };
}

export async function tokenizeRoute(s: ServeContext, body: unknown, res: http.ServerResponse): Promise<void> {
  const b = body as { prompt?: unknown; add_special_tokens?: unknown };
  if (typeof b !== 'object' || b === null || Array.isArray(b)) throw new ApiError(400, 'the body must be a JSON object {"prompt": "..."}', null);
  if (typeof b.prompt !== 'string')
    throw new ApiError(400, `'prompt' must be a string, got ${b.prompt === null ? 'null' : Array.isArray(b.prompt) ? 'an array' : typeof b.prompt}`, 'prompt');
  if (b.add_special_tokens !== undefined && typeof b.add_special_tokens !== 'boolean')
    throw new ApiError(400, "'add_special_tokens' must be a boolean", 'add_special_tokens');
  s.precheck(b.prompt, 0);
  let tokens: number[];
  try {
    tokens = await s.encodeText(b.prompt, s.limits.maxPromptTokens);
  } catch (e) {
    if (e instanceof TooManyTokens) throw s.tooLong(0, `at least ${e.atLeast}`);
    throw e;
  }
  // no beginning-of-text token is added (GPT-2 adds none), whatever add_special_tokens says
  sendJson(res, 200, { tokens, count: tokens.length, max_model_len: s.engine.blockSize });
}

export async function detokenizeRoute(s: ServeContext, body: unknown, res: http.ServerResponse): Promise<void> {
  const b = body as { tokens?: unknown };
  if (typeof b !== 'object' || b === null || Array.isArray(b)) throw new ApiError(400, 'the body must be a JSON object {"tokens": [ids]}', null);
  if (!Array.isArray(b.tokens)) throw new ApiError(400, "'tokens' must be an array of token ids", 'tokens');
  if (b.tokens.length > s.limits.maxPromptTokens)
    throw new ApiError(400, `'tokens' has ${b.tokens.length} ids, more than this server accepts (--max-prompt-tokens ${s.limits.maxPromptTokens})`, 'tokens');
  const V = s.engine.tokenizer.vocabSize;
  b.tokens.forEach((t, i) => {
    if (!Number.isInteger(t) || (t as number) < 0 || (t as number) >= V)
      throw new ApiError(400, `tokens[${i}] = ${JSON.stringify(t)} is not a token id in [0, ${V})`, 'tokens');
  });
  sendJson(res, 200, { prompt: s.engine.tokenizer.decode(b.tokens as number[]) });
}
