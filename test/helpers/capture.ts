// Run the CLI's main() in-process and capture what it prints (stdout writes, console.log/error) and
// its exit code, for tests of command-line behaviour that do not need a child process.
import { vi } from 'vitest';
import { main } from '../../src/cli/main.js';

export async function capture(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '',
    err = '';
  const w = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
    out += String(s);
    return true;
  });
  const l = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => {
    out += a.join(' ') + '\n';
  });
  const e = vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => {
    err += a.join(' ') + '\n';
  });
  try {
    return { code: await main(argv), out, err };
  } finally {
    w.mockRestore();
    l.mockRestore();
    e.mockRestore();
  }
}
