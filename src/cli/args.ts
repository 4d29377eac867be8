// The option helpers under their first names, kept for the commands that use them: the same parser
// as src/cli/options.ts (one parser for every command: negative values, typed UsageErrors,
// did-you-mean), with required defaults.
import { parseOptions, intFlag, numFlag, type OptionSpec } from './options.js';

export type { OptionSpec };

/** Parse argv strictly: an unknown option is a UsageError that names it (and the closest known one). */
export const parse = parseOptions;

/** An integer option >= min, or `def` when absent; a UsageError naming the flag otherwise. */
export function intOpt(values: Record<string, unknown>, name: string, def: number, min = Number.MIN_SAFE_INTEGER): number {
  return intFlag(values, name, min) ?? def;
}

/** A finite number option, or `def` when absent. */
export function numOpt(values: Record<string, unknown>, name: string, def: number): number {
  return numFlag(values, name) ?? def;
}

export function strOpt(values: Record<string, unknown>, name: string): string | undefined {
  const raw = values[name];
  return typeof raw === 'string' ? raw : undefined;
}
