// The errors crate-ts throws on purpose. Each class says whose mistake it is, and the command line
// maps it to an exit code and a one-line message (src/cli/main.ts):
//
//   UsageError       a bad option, argument or API call           exit 2
//   DataError        a missing, unreadable or unsuitable data file  exit 1
//   CheckpointError  a missing, malformed or mismatched checkpoint  exit 1
//   NumericsError    the numbers went wrong (divergence, NaN)       exit 1
//   InternalError    a crate-ts bug (a broken invariant)            exit 1, with the stack
//
// Any other exception reaching the command line is treated as internal too.

export type ErrorKind = 'usage' | 'data' | 'checkpoint' | 'numerics' | 'internal';

/** How a message spells an option: the library by its own name (a field of an options object), the command line by its flag. */
export type OptionNamer = (option: string) => string;
/** A message that names options, written once for both: `name('steps')` is `steps` in the library and `--steps` on the command line. */
export type OptionMessage = (name: OptionNamer) => string;

export abstract class CrateError extends Error {
  abstract readonly kind: ErrorKind;
  /** The process exit code the command line uses for this error. */
  abstract readonly exitCode: number;
  /** The option at fault, in the library's terms, when there is one. */
  readonly option?: string;
  /** The message as written, when it names options (see messageWith). */
  readonly optionMessage?: OptionMessage;
  /**
   * @param message the message, or (when it names options) a function of how options are spelled:
   *   `message` is then written with the library's names, and messageWith spells them otherwise.
   */
  constructor(message: string | OptionMessage, options?: { cause?: unknown; option?: string }) {
    super(typeof message === 'function' ? message((o) => o) : message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    if (typeof message === 'function') this.optionMessage = message;
    if (options?.option !== undefined) this.option = options.option;
  }

  /** The message with every option it names spelled by `name` (the command line passes its flags). */
  messageWith(name: OptionNamer): string {
    return this.optionMessage ? this.optionMessage(name) : this.message;
  }
}

/** The caller asked for something invalid: an option, an argument, a shape, a name. */
export class UsageError extends CrateError {
  readonly kind = 'usage' as const;
  readonly exitCode = 2;
}

/** A data file (text, tokens, collection directory) is missing, unreadable or unsuitable. */
export class DataError extends CrateError {
  readonly kind = 'data' as const;
  readonly exitCode = 1;
}

/** A checkpoint (or safetensors file) is missing, malformed or does not fit the request. */
export class CheckpointError extends CrateError {
  readonly kind = 'checkpoint' as const;
  readonly exitCode = 1;
}

/** A computation produced non-finite or otherwise unusable numbers. */
export class NumericsError extends CrateError {
  readonly kind = 'numerics' as const;
  readonly exitCode = 1;
}

/** A broken invariant inside crate-ts: a bug to report. */
export class InternalError extends CrateError {
  readonly kind = 'internal' as const;
  readonly exitCode = 1;
}

/** True for the errors a user causes (their message is all they need; no stack trace). */
export function isUserError(e: unknown): e is CrateError {
  return e instanceof CrateError && e.kind !== 'internal';
}
