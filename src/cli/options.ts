// The one option parser of the commands: strict (an unknown option is a UsageError naming it, with
// "did you mean --xyz" for a near miss), negative numbers as option values, integer and number
// flags with range errors that name the flag, and the mapping of the library's field names
// (gradAccum) to flags (--grad-accum). src/cli/args.ts is the same parser under older names.
import { parseArgs } from 'node:util';
import { UsageError } from '../errors.js';
import { cliMessage } from './flags.js';

export { flagOf, cliMessage } from './flags.js';
import { RequestError } from '../train/request-error.js';
import { closest } from './suggest.js';
import { TEXT_ENCODINGS, type TextEncodingName } from '../data/corpus.js';

export type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string; default?: string | boolean; multiple?: boolean }>;

const NEGATIVE_NUMBER = /^-(\d|\.\d|Infinity$)/;

/**
 * node's parseArgs calls `--lr -1` ambiguous (the value starts with a dash). A string option
 * followed by a negative number takes it as its value: rewritten to `--lr=-1`.
 */
export function joinNegativeValues(argv: readonly string[], options: OptionSpec): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i],
      next = argv[i + 1];
    const name = a.startsWith('--') && !a.includes('=') ? a.slice(2) : null;
    if (name !== null && options[name]?.type === 'string' && next !== undefined && NEGATIVE_NUMBER.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else {
      out.push(a);
    }
  }
  return out;
}

/**
 * Parse argv strictly; negative values allowed. Every problem is a one-line UsageError: an unknown
 * option (with the closest known one), a missing value, a value given to a switch, a positional
 * argument.
 */
export function parseOptions(argv: readonly string[], options: OptionSpec): Record<string, string | boolean | undefined> {
  try {
    const { values } = parseArgs({ args: joinNegativeValues(argv, options), options, strict: true, allowPositionals: false });
    return values as Record<string, string | boolean | undefined>;
  } catch (e) {
    throw new UsageError(explain(e as Error & { code?: string }, options), { cause: e });
  }
}

/**
 * parseArgs's messages, shortened to one line, with a did-you-mean for unknown options (for the
 * commands that call parseArgs themselves, e.g. to take positional arguments).
 */
export function parseErrorMessage(e: Error & { code?: string }, options: OptionSpec): string {
  return explain(e, options);
}

function explain(e: Error & { code?: string }, options: OptionSpec): string {
  const m = /^Unknown option '(-{1,2})([^'=]*)/.exec(e.message);
  if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && m) {
    const flag = m[1] + m[2];
    const guess = m[1] === '--' ? closest(m[2], Object.keys(options)) : null;
    return `unknown option '${flag}'${guess ? ` (did you mean '--${guess}'?)` : ''}; --help lists the options`;
  }
  const pos = /^Unexpected argument '([^']*)'/.exec(e.message);
  if (e.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL' && pos) return `unexpected argument '${pos[1]}': options are --name VALUE (--help lists them)`;
  const missing = /^Option '(-\w, )?(--[\w-]+) <value>' argument missing/.exec(e.message);
  if (missing) return `${missing[2]} needs a value`;
  const sw = /^Option '(-\w, )?(--[\w-]+)' does not take an argument/.exec(e.message);
  if (sw) return `${sw[2]} is a switch and takes no value`;
  return e.message.split('\n')[0];
}

/** An integer flag in [min, max], or undefined when absent. */
export function intFlag(values: Record<string, unknown>, name: string, min = -Infinity, max = Infinity): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const s = String(raw).trim();
  const n = s === '' ? NaN : Number(s);
  if (!Number.isSafeInteger(n)) throw new UsageError(`--${name} must be an integer, got '${String(raw)}'`);
  if (n < min || n > max) {
    const range = max === Infinity ? `>= ${min}` : min === -Infinity ? `<= ${max}` : `from ${min} to ${max}`;
    throw new UsageError(`--${name} must be ${range}, got ${n}`);
  }
  return n;
}

/** A finite number flag, or undefined when absent. */
export function numFlag(values: Record<string, unknown>, name: string): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const s = String(raw).trim();
  const n = s === '' ? NaN : Number(s);
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a finite number, got '${String(raw)}'`);
  return n;
}

/** A library RequestError reworded with the flags; anything else unchanged. */
export function withFlagNames(e: unknown): unknown {
  return e instanceof RequestError ? new UsageError(cliMessage(e), { cause: e }) : e;
}

/** --encoding NAME: one of TEXT_ENCODINGS, or undefined when absent. */
export function encodingFlag(values: Record<string, unknown>): TextEncodingName | undefined {
  const raw = values.encoding;
  if (raw === undefined) return undefined;
  const name = String(raw)
    .toLowerCase()
    .replace(/^utf(?=\d)/, 'utf-')
    .replace(/^(iso-?8859-1|latin-1)$/, 'latin1');
  if (!(TEXT_ENCODINGS as readonly string[]).includes(name))
    throw new UsageError(`--encoding must be one of ${TEXT_ENCODINGS.join(', ')}, got '${String(raw)}' (convert other encodings to UTF-8 with iconv)`);
  return name as TextEncodingName;
}
