// The shape of a property check and of its report (spec section 4; see ../properties.ts).

import type { Rng } from '../../util/rng.js';
export interface Faults {
  /** Flip the sign of the gradient term in the checks' own ISTA step. */
  istaSignFlip?: boolean;
}

export interface CheckOptions {
  inject?: Faults;
}

export interface CheckResult {
  instances: number;
  worst: number;
  tolerance: number;
  pass: boolean;
  note?: string;
}

export interface PropertyCheck {
  id: string;
  /** Short statement of the property (one table row). */
  statement: string;
  /** What `worst` is and how it is compared with `tolerance`. */
  measure: string;
  run(rng: Rng, opts: CheckOptions): CheckResult;
}

export interface CheckReport extends CheckResult {
  id: string;
  statement: string;
  measure: string;
  /** Wall time of the check in milliseconds. */
  ms: number;
}

export interface RunChecksOptions {
  seed?: number;
  /** Property ids to run (e.g. ['P5', 'P7']); all when absent. */
  only?: string[];
  inject?: Faults;
}

export interface ChecksSummary {
  pass: boolean;
  seed: number;
  checks: CheckReport[];
}
