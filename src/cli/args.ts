// Small wrappers over node:util parseArgs so every command validates its options the same way.
import { parseArgs } from 'node:util';

export type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string; default?: string | boolean; multiple?: boolean }>;

/** Parse argv strictly: an unknown option is an error that names it. */
export function parse(argv: string[], options: OptionSpec): Record<string, string | boolean | undefined> {
  const { values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
  return values as Record<string, string | boolean | undefined>;
}

/** An integer option, with a clear error naming the flag when it is not one. */
export function intOpt(values: Record<string, unknown>, name: string, def: number, min = Number.MIN_SAFE_INTEGER): number {
  const raw = values[name];
  if (raw === undefined) return def;
  const n = Number(raw);
  if (!Number.isInteger(n)) throw new Error(`--${name} must be an integer, got '${String(raw)}'`);
  if (n < min) throw new Error(`--${name} must be >= ${min}, got ${n}`);
  return n;
}

/** A finite number option. */
export function numOpt(values: Record<string, unknown>, name: string, def: number): number {
  const raw = values[name];
  if (raw === undefined) return def;
  const n = Number(raw);
  if (!Number.isFinite(n)) throw new Error(`--${name} must be a finite number, got '${String(raw)}'`);
  return n;
}

export function strOpt(values: Record<string, unknown>, name: string): string | undefined {
  const raw = values[name];
  return typeof raw === 'string' ? raw : undefined;
}
