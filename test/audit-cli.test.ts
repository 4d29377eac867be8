// crate-ts audit through the real CLI: --backend (list form, synonym --backends) is honoured in both
// modes, options of the other mode are refused, and an audit that compares nothing cannot pass.
import { describe, test, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { train } from '../src/train/trainer.js';
import { nativeBackends } from './helpers/backends.js';

const cli = (...args: string[]) => spawnSync(process.execPath, ['bin/crate-ts.js', 'audit', ...args], { encoding: 'utf8' });
const FX = 'fixtures/crate-small.safetensors';
const hasCpu = (await nativeBackends()).some((n) => n.name === 'cpu' && n.backend);
let dir = '';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'crate-audit-'));
  await train({
    backend: 'reference',
    preset: 'char-tiny',
    nLayer: 1,
    steps: 2,
    batch: 2,
    seq: 16,
    evalEvery: 0,
    saveEvery: 0,
    evalWindows: 1,
    sampleTokens: 0,
    quiet: true,
    out: dir,
    cacheDir: null,
  });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('crate-ts audit options', () => {
  test.runIf(hasCpu)('--fixture audits every backend named by --backend / --backends (not silently the reference)', () => {
    for (const flag of ['--backend', '--backends']) {
      const r = cli('--fixture', FX, flag, 'cpu', '--json');
      expect(r.status, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).backend).toBe('cpu');
    }
    const both = cli('--fixture', FX, '--backend', 'reference,cpu', '--json');
    expect(JSON.parse(both.stdout).backends.map((b: { backend: string }) => b.backend)).toEqual(['reference', 'cpu']);
  });

  test('options of the other mode, unknown backends and contradictory flags are usage errors (exit 2, one line)', () => {
    for (const args of [
      ['--fixture', FX, '--seq', '3'],
      ['--fixture', FX, '--backend', 'gpu'],
      ['--fixture', FX, '--backend', 'cpu', '--backends', 'cpu'],
      ['--fixture', FX, '--checkpoint', dir],
      [],
    ]) {
      const r = cli(...args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  });

  test('a --checkpoint audit of only the reference compares nothing and is refused; a run directory is accepted', () => {
    const r = cli('--checkpoint', dir, '--backend', 'reference');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/compares nothing/);
    if (hasCpu) {
      const ok = cli('--checkpoint', dir, '--backend', 'cpu', '--json', '--batch', '1', '--seq', '8');
      expect(ok.status, ok.stderr).toBe(0);
      const j = JSON.parse(ok.stdout);
      expect(j.pass).toBe(true);
      expect(j.backends.map((b: { backend: string }) => b.backend)).toEqual(['cpu']);
    }
  });
});
