// The run directory: created one component at a time with every result checked, cleaned of the
// temporaries a killed save left behind, and written to atomically.
//
// Why not fs.mkdirSync(dir, { recursive: true }): on Node 20 it loops forever on some paths it
// cannot create (e.g. under /proc, where mkdir answers ENOENT for a parent that exists), and a
// failure deep inside it names no component.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RequestError } from './request-error.js';

/**
 * The project's temporary-file naming, `.<target>.tmp-<pid>-<hex>` (the atomic writer of
 * src/util/atomic.ts, which every file crate-ts writes goes through).
 */
export const TEMP_PATTERN = /\.tmp-(\d+)-[0-9a-f]+$/;

const errCode = (e: unknown): string => String((e as { code?: unknown }).code ?? (e as Error).message);

/**
 * Create `dir` (and missing parents) or throw a RequestError for field `field` naming the first
 * component that failed. Existing directories are fine; an existing non-directory is not. Returns
 * the absolute path.
 */
export function makeRunDir(dir: string, field = 'out'): string {
  const abs = path.resolve(dir);
  const fail = (why: string): never => {
    throw new RequestError(field, `'${abs}' cannot be used as the run directory: ${why}`);
  };
  // Walk up to the deepest existing ancestor.
  const missing: string[] = [];
  for (let cur = abs; ; cur = path.dirname(cur)) {
    let st: fs.Stats | null = null;
    try {
      st = fs.statSync(cur);
    } catch (e) {
      if (errCode(e) !== 'ENOENT' && errCode(e) !== 'ENOTDIR') fail(`cannot inspect '${cur}' (${errCode(e)})`);
    }
    if (st) {
      if (!st.isDirectory()) fail(`'${cur}' exists and is not a directory`);
      break;
    }
    missing.push(cur);
    if (path.dirname(cur) === cur) fail(`the root '${cur}' does not exist`);
  }
  // Create the missing components top-down, stopping at the first failure.
  for (const d of missing.reverse()) {
    try {
      fs.mkdirSync(d);
    } catch (e) {
      const code = errCode(e);
      if (code === 'EEXIST' && isDirectory(d)) continue; // made concurrently
      fail(`mkdir '${d}' failed (${code})`);
    }
    if (!isDirectory(d)) fail(`mkdir '${d}' reported success but no directory is there`);
  }
  try {
    fs.accessSync(abs, fs.constants.W_OK | fs.constants.X_OK);
  } catch (e) {
    fail(`it is not writable (${errCode(e)})`);
  }
  return abs;
}

function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errCode(e) === 'EPERM'; // exists, owned by someone else
  }
}

/**
 * Remove temporaries that an interrupted save left in `dir`: regular files named by TEMP_PATTERN,
 * last modified before this process started, whose writer is not a running process (a live writer,
 * another run saving into the same directory, keeps its file). Returns the names removed.
 */
export function removeStaleTemps(dir: string, startedAt = performance.timeOrigin): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return removed;
  }
  for (const name of names) {
    const m = TEMP_PATTERN.exec(name);
    if (!m) continue;
    const p = path.join(dir, name);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch {
      continue;
    }
    if (!st.isFile() || st.mtimeMs >= startedAt) continue;
    const pid = Number(m[1]);
    if (pid !== process.pid && pidAlive(pid)) continue;
    try {
      fs.unlinkSync(p);
      removed.push(name);
    } catch {
      /* gone already, or not ours to remove */
    }
  }
  return removed;
}
