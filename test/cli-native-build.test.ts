// scripts/build-native.mjs when the addon does not build: one short line (not the compiler's
// 900-character error three times), the whole log in build/native-build-error.txt, and the retry
// command that works where crate-ts is (its own checkout: npm run build:native; an installed package:
// npm rebuild crate-ts). The build runs on a copy of the sources in a temporary directory, with a
// compiler that fails the way g++ does, so the real build/ is never touched.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { rebuildCommand } from '../src/backend/loader.js';

const ROOT = path.resolve(__dirname, '..');
const LONG = 'x'.repeat(850);
let dir: string, fakeCxx: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-native-build-'));
  fakeCxx = path.join(dir, 'fake-cxx');
  // prints one long error line like a template-heavy g++ error, and fails
  fs.writeFileSync(fakeCxx, `#!/bin/sh\necho "../native/adamw.cc:12:7: error: no matching function for call to 'frobnicate(${LONG})'" >&2\nexit 1\n`, {
    mode: 0o755,
  });
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A copy of what the build needs, at `at`; node_modules linked for node-addon-api's headers. */
function copySources(at: string): void {
  fs.mkdirSync(path.join(at, 'scripts'), { recursive: true });
  for (const f of ['binding.gyp', 'package.json']) fs.copyFileSync(path.join(ROOT, f), path.join(at, f));
  fs.cpSync(path.join(ROOT, 'native'), path.join(at, 'native'), { recursive: true });
  fs.copyFileSync(path.join(ROOT, 'scripts', 'build-native.mjs'), path.join(at, 'scripts', 'build-native.mjs'));
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(at, 'node_modules'));
}

function build(at: string, env: Record<string, string>, strict = false) {
  const r = spawnSync(process.execPath, [path.join(at, 'scripts', 'build-native.mjs'), ...(strict ? ['--strict'] : [])], {
    cwd: at,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 180_000,
  });
  return { code: r.status, out: `${r.stdout}${r.stderr}`, stderr: r.stderr };
}

describe('scripts/build-native.mjs: a failed build', () => {
  it('in a checkout: one short line, the full log saved, "npm run build:native"; exit 0 (1 with --strict)', () => {
    const at = path.join(dir, 'checkout');
    copySources(at);
    const r = build(at, { CXX: fakeCxx, CC: fakeCxx }, true);
    expect(r.code).toBe(1);
    const warn = r.stderr.trim().split('\n');
    expect(warn).toHaveLength(1);
    expect(warn[0].length).toBeLessThan(400);
    expect(warn[0]).toMatch(
      /^crate-ts: native addon not built \(node-gyp rebuild failed: \.\.\/native\/adamw\.cc:12:7: error: no matching function for call to 'frobnicate\(x+…\); the reference backend still works\. Full log: build\/native-build-error\.txt; retry: npm run build:native$/,
    );
    // the compiler's error appears once in everything printed, shortened
    expect(r.out.split('frobnicate').length - 1).toBe(1);
    const log = fs.readFileSync(path.join(at, 'build', 'native-build-error.txt'), 'utf8').split('\n');
    expect(log[0].length).toBeLessThanOrEqual(200);
    expect(log[1]).toBe('retry with: npm run build:native');
    expect(log.join('\n')).toContain(`frobnicate(${LONG})`); // the whole line is in the log
    expect(fs.existsSync(path.join(at, 'build', 'Release', 'crate_native.node'))).toBe(false);
  }, 200_000);

  it('inside node_modules (an installed package): "npm rebuild crate-ts"; npm install is not failed', () => {
    const at = path.join(dir, 'project', 'node_modules', 'crate-ts');
    copySources(at);
    const r = build(at, { CXX: fakeCxx, CC: fakeCxx });
    expect(r.code).toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/retry: npm rebuild crate-ts\n$/);
    expect(fs.readFileSync(path.join(at, 'build', 'native-build-error.txt'), 'utf8').split('\n')[1]).toBe('retry with: npm rebuild crate-ts');
  }, 200_000);

  it('CRATE_TS_SKIP_NATIVE: skipped, said once, recorded', () => {
    const at = path.join(dir, 'skip');
    copySources(at);
    const r = build(at, { CRATE_TS_SKIP_NATIVE: '1' });
    expect(r.code).toBe(0);
    expect(r.out.trim().split('\n')).toEqual([
      'crate-ts: native addon not built (skipped because CRATE_TS_SKIP_NATIVE is set); the reference backend still works. Full log: build/native-build-error.txt; retry: npm run build:native',
    ]);
    expect(fs.readFileSync(path.join(at, 'build', 'native-build-error.txt'), 'utf8')).toMatch(
      /^skipped because CRATE_TS_SKIP_NATIVE is set\nretry with: npm run build:native\n/,
    );
  });

  it('the loader advises the same command', () => {
    expect(rebuildCommand('/home/u/proj/node_modules/crate-ts')).toBe('npm rebuild crate-ts');
    expect(rebuildCommand('/home/u/src/crate-ts')).toBe('npm run build:native');
  });
});
