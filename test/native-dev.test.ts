// The kernel ladders of native/dev/ (README there): each builds with the addon's flags, and every
// variant matches the float64 reference at awkward sizes (edge tiles) in the three layouts of the
// linear layer. Timing is not asserted (benchmarks are run by hand; see native/dev/README.md).
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..');
const cxx = process.env.CXX ?? 'g++';
const noCompiler = spawnSync(cxx, ['--version'], { encoding: 'utf8' }).status !== 0 ? `${cxx} is not available` : null;

const run = (...args: string[]) => spawnSync('bash', ['native/dev/run.sh', ...args], { cwd: root, encoding: 'utf8' });

describe.skipIf(noCompiler !== null)(`native/dev ladders${noCompiler ? ` (skipped: ${noCompiler})` : ''}`, () => {
  it('gemm: every variant matches the reference in layouts NT, NN and TN', { timeout: 600_000 }, () => {
    for (const layout of ['NT', 'NN', 'TN']) {
      const r = run('gemm', 'all', '--m', '37', '--n', '29', '--k', '53', '--layout', layout, '--runs', '1');
      expect(r.status, r.stdout + r.stderr).toBe(0);
      const rows = r.stdout.split('\n').filter((l) => /^\d+\s/.test(l));
      expect(rows.length).toBe(4);
      for (const row of rows) expect(row, row).toMatch(/\s(ok|skipped)\s/);
      expect(rows.filter((l) => /\sok\s/.test(l)).length).toBeGreaterThanOrEqual(2);
    }
  });

  it('bad arguments are one-line errors with exit 2', { timeout: 600_000 }, () => {
    const r = run('gemm', '7');
    expect(r.status).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe("gemm: unknown variant '7'");
    const l = run('gemm', 'all', '--layout', 'TT');
    expect(l.status).toBe(2);
    expect(l.stderr.split('\n')[0]).toBe("gemm: --layout is NT, NN or TN, got 'TT'");
    expect(run('nosuch').status).toBe(2);
  });
});
