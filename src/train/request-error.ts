// A bad value in a training request, named by its field (`steps`, `gradAccum`, `out`, ...). The
// library speaks in field names; the command line spells them as its flags (--grad-accum).
import { UsageError, type OptionMessage } from '../errors.js';

export class RequestError extends UsageError {
  /** What is wrong, with options spelled by their field names. */
  readonly problem: string;
  /**
   * @param field the TrainRequest field at fault (camelCase)
   * @param problem what is wrong, e.g. "must be a positive integer, got 0"; a function of how
   *   options are spelled when it names another option
   */
  constructor(
    readonly field: string,
    problem: string | OptionMessage,
  ) {
    const text: OptionMessage = (name) => `${name(field)} ${typeof problem === 'function' ? problem(name) : problem}`;
    super(text, { option: field });
    this.problem = typeof problem === 'function' ? problem((o) => o) : problem;
  }
}
