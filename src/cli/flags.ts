// How the command line spells the options a library error names: the library writes its messages
// with its own option names (src/errors.ts: OptionMessage); the command line prints them with flags.
import { CrateError } from '../errors.js';

/** Library option names whose flag is not their kebab-case spelling. */
const FLAG_OF: Record<string, string> = { simulatorKind: '--simulator', exportDir: '--export' };

/** The flag of a library option (a request or options field): gradAccum -> --grad-accum. */
export const flagOf = (field: string): string => FLAG_OF[field] ?? '--' + field.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());

/** An error's message as the command line prints it: the options it names spelled as flags. */
export function cliMessage(e: Error): string {
  return e instanceof CrateError ? e.messageWith(flagOf) : e.message;
}
