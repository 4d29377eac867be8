// crate-ts command-line entry point: a dispatcher over one module per command.
// Each command module exports `run(argv: string[]): Promise<number>` (the exit code).
import { isUserError, InternalError, type CrateError } from '../errors.js';

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
};

export function usage(): string {
  const rows = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(9)} ${c.summary}`);
  return ['usage: crate-ts <command> [options]   (crate-ts <command> --help for its options)', '', 'commands:', ...rows].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    console.log(usage());
    return cmd === undefined ? 2 : 0;
  }
  const entry = COMMANDS[cmd];
  if (!entry) {
    console.error(`crate-ts: unknown command '${cmd}'\n\n${usage()}`);
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
    console.error(`crate-ts ${cmd}: ${e.message}`);
    if (process.env.CRATE_TS_DEBUG) console.error(e.stack);
    return parserError ? 2 : (e as CrateError).exitCode;
  }
  console.error(`crate-ts ${cmd}: ${e.message}`);
  if (process.env.CRATE_TS_DEBUG || e instanceof InternalError) console.error(e.stack);
  else console.error('(set CRATE_TS_DEBUG=1 for the stack trace; if this looks like a crate-ts bug, please report it)');
  return 1;
}
