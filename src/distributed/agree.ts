// Starting together or not at all: every rank runs the same preparation (load the data, resolve
// the run), then the ranks exchange the outcome. If any rank failed, every rank fails with that
// rank's message; if the ranks resolved different runs (config, hyper-parameters, data, checkpoint),
// every rank fails naming the first difference. Only rank 0 needs to print the error
// (isEchoOfRankZero tells the others).
import { CrateError, DataError, UsageError } from '../errors.js';
import type { Communicator } from './communicator.js';

const ECHO = Symbol('crate-ts.dist.echo');

/** True for an error every rank holds the same copy of, which rank 0 reports for all. */
export function isEchoOfRankZero(e: unknown, comm: Communicator): boolean {
  return comm.rank !== 0 && typeof e === 'object' && e !== null && (e as Record<symbol, unknown>)[ECHO] === true;
}

function mark<E extends Error>(e: E): E {
  (e as unknown as Record<symbol, unknown>)[ECHO] = true;
  return e;
}

interface Outcome {
  ok: boolean;
  message?: string;
  exitCode?: number;
  fingerprint?: unknown;
}

/** The first path where two JSON values differ, with both values, or null. */
export function firstDifference(a: unknown, b: unknown, at = ''): { path: string; a: unknown; b: unknown } | null {
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') {
    return JSON.stringify(a) === JSON.stringify(b) ? null : { path: at || '(value)', a, b };
  }
  if (Array.isArray(a) !== Array.isArray(b)) return { path: at || '(value)', a, b };
  const keys = [...new Set([...Object.keys(a as object), ...Object.keys(b as object)])];
  for (const k of keys) {
    const d = firstDifference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], at ? `${at}.${k}` : k);
    if (d) return d;
  }
  return null;
}

const show = (v: unknown) => (v === undefined ? 'nothing' : JSON.stringify(v));

/**
 * Run `prepare` on every rank, then agree: all ranks return its value, or all throw. `fingerprint`
 * is what must be equal on every rank (JSON-serialisable); `what` names it in messages.
 */
export async function prepareTogether<T>(comm: Communicator, what: string, prepare: () => Promise<T> | T, fingerprint: (t: T) => unknown): Promise<T> {
  let value: T | undefined, out: Outcome;
  let err: unknown = null;
  try {
    value = await prepare();
    out = { ok: true, fingerprint: fingerprint(value) };
  } catch (e) {
    err = e;
    out = { ok: false, message: (e as Error).message, exitCode: e instanceof CrateError ? e.exitCode : 1 };
  }
  if (comm.worldSize === 1) {
    if (err) throw err;
    return value as T;
  }
  const all = (await comm.allGather(Buffer.from(JSON.stringify(out)))).map((b) => JSON.parse(Buffer.from(b).toString('utf8')) as Outcome);
  const failed = all.findIndex((o) => !o.ok);
  if (failed >= 0) {
    const f = all[failed];
    const msg = `rank ${failed} of ${comm.worldSize}: ${f.message}`;
    throw mark(f.exitCode === 2 ? new UsageError(msg) : new DataError(msg));
  }
  for (let r = 1; r < all.length; r++) {
    const d = firstDifference(all[0].fingerprint, all[r].fingerprint);
    if (d)
      throw mark(
        new UsageError(
          `rank ${r} disagrees with rank 0 on the ${what}: ${d.path} is ${show(d.b)} on rank ${r} but ${show(d.a)} on rank 0; every rank must be started with the same options and files`,
        ),
      );
  }
  return value as T;
}
