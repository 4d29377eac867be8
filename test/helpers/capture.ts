// Run the CLI's main() in-process and capture what it prints (stdout writes, console.log/error) and
// its exit code, for tests of command-line behaviour that do not need a child process.
// Options: `stderr` also captures direct process.stderr writes (progress lines, access logs);
// `notTTY` makes stdout look like a pipe while the command runs.
import { vi } from 'vitest';
import { main } from '../../src/cli/main.js';

export interface CaptureOptions {
  stderr?: boolean;
  notTTY?: boolean;
}

export async function capture(argv: string[], opts: CaptureOptions = {}): Promise<{ code: number; out: string; err: string }> {
  let out = '',
    err = '';
  const tty = process.stdout.isTTY;
  if (opts.notTTY) (process.stdout as { isTTY?: boolean }).isTTY = false;
  const spies = [
    vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
      out += String(s);
      return true;
    }),
    vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => {
      out += a.join(' ') + '\n';
    }),
    vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => {
      err += a.join(' ') + '\n';
    }),
  ];
  if (opts.stderr)
    spies.push(
      vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => {
        err += String(s);
        return true;
      }),
    );
  try {
    return { code: await main(argv), out, err };
  } finally {
    for (const s of spies) s.mockRestore();
    if (opts.notTTY) (process.stdout as { isTTY?: boolean }).isTTY = tty;
  }
}
