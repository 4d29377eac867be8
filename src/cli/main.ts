// crate-ts command-line entry point: a dispatcher over one module per command.
// Each command module exports `run(argv: string[]): Promise<number>` (the exit code).
import { crateTsVersion } from '../util/version.js';
import { isUserError, InternalError, type CrateError } from '../errors.js';
import { closest } from './suggest.js';
import { cliMessage } from './flags.js';

const COMMANDS: Record<string, { summary: string; load: () => Promise<{ run: (argv: string[]) => Promise<number> }> }> = {
  audit: { summary: 'compare a backend with a fixture or with the float64 reference', load: () => import('./audit.js') },
  bench: { summary: 'time training steps and kernels per backend', load: () => import('./bench.js') },
  fixture: { summary: 'write a fixture computed by the reference', load: () => import('./fixture.js') },
  train: { summary: 'train a CRATE (or GPT-2) language model', load: () => import('./train.js') },
  sample: { summary: 'generate text from a checkpoint', load: () => import('./sample.js') },
  verify: { summary: "check the papers' equations (spec section 4) numerically; layer diagnostics of a checkpoint", load: () => import('./verify.js') },
  eval: { summary: 'validation loss and perplexity of a checkpoint', load: () => import('./eval.js') },
  neurons: { summary: 'collect, show, score and compare neuron activation records (paper A interpretability)', load: () => import('./neurons.js') },
  serve: { summary: 'serve a checkpoint over an OpenAI-compatible HTTP API (completions with echo/logprobs, chat)', load: () => import('./serve.js') },
  sae: { summary: 'train and evaluate sparse autoencoders on a hook (the dictionary-learning baseline), SAELens format', load: () => import('./sae.js') },
  steer: { summary: 'clamp one neuron and show how the next-token distribution moves (paper A steering)', load: () => import('./steer.js') },
};

export function usage(): string {
  const rows = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(9)} ${c.summary}`);
  return [
    'usage: crate-ts <command> [options]   (crate-ts help <command>, or crate-ts <command> --help, lists its options)',
    '',
    'commands:',
    ...rows,
    '',
    'crate-ts --version prints the version. Exit codes: 0 success, 1 a data, checkpoint or numerical failure, 2 a usage error.',
  ].join('\n');
}

/** crate-ts's version, from the package.json next to dist/ (or src/). */
export const version = (): string => crateTsVersion();

export async function main(argv: string[]): Promise<number> {
  let [cmd, ...rest] = argv;
  if (cmd === '--version' || cmd === '-v' || cmd === 'version') {
    console.log(`crate-ts ${version()}`);
    return 0;
  }
  if (cmd === 'help' && rest.length > 0) {
    // `crate-ts help CMD` is `crate-ts CMD --help`
    cmd = rest[0];
    rest = ['--help'];
  }
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    console.log(usage());
    return cmd === undefined ? 2 : 0;
  }
  const entry = Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined;
  if (!entry) {
    const guess = closest(cmd, Object.keys(COMMANDS));
    console.error(`crate-ts: unknown command '${cmd}'${guess ? ` (did you mean '${guess}'?)` : ''}\n\n${usage()}`);
    return 2;
  }
  let mod: { run: (argv: string[]) => Promise<number> };
  try {
    mod = await entry.load();
  } catch (err) {
    console.error(`crate-ts ${cmd}: this command is not available in this build (${(err as Error).message})`);
    return 2;
  }
  try {
    return await mod.run(rest);
  } catch (err) {
    return reportError(cmd, err);
  }
}

/**
 * Print an error that reached the command line and return its exit code: a user's mistake
 * (UsageError, DataError, CheckpointError, NumericsError, and the option parser's own errors) is one
 * line; anything else is a crate-ts bug and gets its stack trace.
 */
export function reportError(cmd: string, err: unknown): number {
  const e = err instanceof Error ? err : new Error(String(err));
  const parserError = typeof (e as { code?: unknown }).code === 'string' && String((e as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS');
  if (isUserError(e) || parserError) {
    console.error(`crate-ts ${cmd}: ${cliMessage(e)}`);
    if (process.env.CRATE_TS_DEBUG) console.error(e.stack);
    return parserError ? 2 : (e as CrateError).exitCode;
  }
  console.error(`crate-ts ${cmd}: ${cliMessage(e)}`);
  if (process.env.CRATE_TS_DEBUG || e instanceof InternalError) console.error(e.stack);
  else console.error('(set CRATE_TS_DEBUG=1 for the stack trace; if this looks like a crate-ts bug, please report it)');
  return 1;
}
