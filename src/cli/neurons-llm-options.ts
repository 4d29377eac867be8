// The options the LLM-backed neurons commands share (neurons explain | simulate | score with an
// endpoint, and neurons score --scorer detection|fuzzing): one collection directory, the endpoint,
// the layers and neurons, and the client's concurrency, cache, retries and timeout, parsed once.
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { UsageError } from '../errors.js';
import { parseErrorMessage, type OptionSpec } from './options.js';
import { LlmClient, type ClientOptions } from '../neurons/llm/client.js';
import { DiskCache } from '../neurons/llm/cache.js';

/** The options every LLM-backed neurons command takes (each command adds its own). */
export const LLM_OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  'api-base': { type: 'string' },
  'api-key': { type: 'string' },
  model: { type: 'string' },
  layers: { type: 'string' },
  max: { type: 'string' },
  out: { type: 'string' },
  concurrency: { type: 'string' },
  'cache-dir': { type: 'string' },
  'no-cache': { type: 'boolean' },
  'max-retries': { type: 'string' },
  timeout: { type: 'string' },
  'dry-run': { type: 'boolean' },
  json: { type: 'boolean' },
} as const satisfies OptionSpec;

export type OptionValues = Record<string, string | boolean | undefined>;

/**
 * Parse `crate-ts neurons <command> DIR [options]` strictly: the option values and the one
 * collection directory, or null when --help was asked for (the caller prints its help).
 */
export function parseCollectionArgs(argv: string[], options: OptionSpec, usage: string): { v: OptionValues; dir: string } | null {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, strict: true, options });
  } catch (e) {
    throw new UsageError(parseErrorMessage(e as Error & { code?: string }, options), { cause: e });
  }
  const v = parsed.values as OptionValues;
  if (v.help) return null;
  if (parsed.positionals.length !== 1) throw new UsageError(`give exactly one collection directory: ${usage}`);
  return { v, dir: parsed.positionals[0] };
}

/**
 * An integer option >= min, or `def` when absent. `digitsOnly`: only plain decimal digits are
 * accepted (neurons score --scorer); otherwise any number JavaScript reads as an integer (1e2).
 */
export function intOption(v: OptionValues, k: string, def: number, min: number, digitsOnly = false): number {
  const raw = v[k];
  if (raw === undefined) return def;
  const n = Number(raw);
  if ((digitsOnly && (typeof raw !== 'string' || !/^\d+$/.test(raw))) || !Number.isSafeInteger(n) || n < min)
    throw new UsageError(`--${k} must be an integer >= ${min}, got '${String(raw)}'`);
  return n;
}

/** Refuse an endpoint URL that does not parse, naming the flag it came from. */
export function checkUrl(url: string, flag: string): void {
  try {
    new URL(url);
  } catch {
    throw new UsageError(`${flag} '${url}' is not a URL (e.g. http://127.0.0.1:8000/v1)`);
  }
}

/** The LLM client the options ask for: --concurrency, --cache-dir (default DIR/llm-cache) or --no-cache, --max-retries, --timeout, --dry-run. */
export function clientFromOptions(v: OptionValues, dir: string, extra: Pick<ClientOptions, 'countTokens' | 'onRetry'> = {}, digitsOnly = false): LlmClient {
  return new LlmClient({
    concurrency: intOption(v, 'concurrency', 8, 1, digitsOnly),
    cache: v['no-cache'] ? null : new DiskCache(typeof v['cache-dir'] === 'string' ? v['cache-dir'] : path.join(dir, 'llm-cache')),
    maxRetries: intOption(v, 'max-retries', 6, 0, digitsOnly),
    timeoutMs: intOption(v, 'timeout', 300, 1, digitsOnly) * 1000,
    dryRun: v['dry-run'] === true,
    ...extra,
  });
}
