// Standard output that survives a closed reader. `crate-ts sample | head -c 20` closes the pipe
// early: the next write fails with EPIPE, and an 'error' event nobody listens to ends the process
// with a stack trace. Here one permanent listener takes every stdout error (EPIPE, or EIO after a
// terminal hang-up) as "the reader is gone": later writes are dropped quietly, and commands can ask
// `stdoutClosed()` to stop producing output nobody reads.
import type { ProgressOut } from '../train/progress.js';

let installed = false;
let closed = false;

function install(): void {
  if (installed) return;
  installed = true;
  process.stdout.on('error', () => {
    closed = true;
  });
}

/** True once a write to stdout has failed (the reader went away). */
export function stdoutClosed(): boolean {
  if (!closed && (process.stdout.errored || process.stdout.destroyed)) closed = true;
  return closed;
}

/** process.stdout behind the guard (isTTY and columns read through). */
export const stdout: ProgressOut & { readonly isTTY: boolean; readonly columns: number | undefined } = {
  write(s: string): boolean {
    install();
    if (stdoutClosed()) return false;
    try {
      process.stdout.write(s);
    } catch {
      closed = true; // e.g. a synchronous EPIPE from a file descriptor
    }
    return !stdoutClosed();
  },
  get isTTY() {
    return Boolean(process.stdout.isTTY);
  },
  get columns() {
    return process.stdout.columns;
  },
};

/** Install the guard without writing (before any console.log). */
export function guardStdout(): void {
  install();
}
