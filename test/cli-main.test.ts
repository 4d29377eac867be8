// The command dispatcher: --version, `help CMD`, "did you mean" for a mistyped command, and the
// exit-code convention (usage errors 2) — through the real bin/crate-ts.js in a child process.
import { describe, test, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { closest } from '../src/cli/suggest.js';

const cli = (...args: string[]) => spawnSync(process.execPath, ['bin/crate-ts.js', ...args], { encoding: 'utf8' });

describe('crate-ts dispatcher', () => {
  test('--version prints the package version', () => {
    const r = cli('--version');
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(`crate-ts ${JSON.parse(readFileSync('package.json', 'utf8')).version}`);
  });

  test("help CMD prints that command's own help", () => {
    const a = cli('help', 'eval'),
      b = cli('eval', '--help');
    expect(a.status).toBe(0);
    expect(a.stdout).toBe(b.stdout);
    expect(a.stdout).toMatch(/--checkpoint/);
  });

  test('a mistyped command gets a suggestion and exit code 2, without a stack trace', () => {
    const r = cli('trian');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unknown command 'trian' \(did you mean 'train'\?\)/);
    expect(r.stderr).not.toMatch(/\bat .*\.js:\d+/);
    expect(closest('smaple', ['sample', 'serve'])).toBe('sample');
    expect(closest('xyzzy', ['sample', 'serve'])).toBeNull();
  });
});
