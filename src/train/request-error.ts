// A bad value in a training request, named by its field (`steps`, `gradAccum`, `out`, ...). The
// library speaks in field names; the command line rewrites the field as its flag (--grad-accum).
import { UsageError } from '../errors.js';

export class RequestError extends UsageError {
  /**
   * @param field the TrainRequest field at fault (camelCase)
   * @param problem what is wrong, e.g. "must be a positive integer, got 0"
   */
  constructor(
    readonly field: string,
    readonly problem: string,
  ) {
    super(`${field} ${problem}`);
  }
}
