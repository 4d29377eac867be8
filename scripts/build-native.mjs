#!/usr/bin/env node
// Builds the native CPU addon (build/Release/crate_native.node) with node-gyp; `npm install` runs it.
//
// node-gyp is the copy bundled with npm (npm points npm_config_node_gyp at it during lifecycle
// scripts), and the Node headers come from this node's own installation (--nodedir) when they are
// there, so the build needs no network. A failed build never fails the install: it prints one
// short line (what failed, where the full log is, the command to retry), saves the summary and the
// whole compiler output in build/native-build-error.txt (the loader quotes its first line when a
// native backend is requested) and exits 0; the project then runs on the reference backend.
//
//   node scripts/build-native.mjs            as npm install does
//   node scripts/build-native.mjs --strict   exit non-zero on failure (npm run build:native)
//   CRATE_TS_SKIP_NATIVE=1                   skip the build (the reason is recorded the same way)
//
// The retry command depends on where crate-ts is: in its own checkout `npm run build:native`; as
// an installed package (inside node_modules) `npm rebuild crate-ts`, run in the consuming project.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const strict = process.argv.includes('--strict');
const errorFile = path.join(root, 'build', 'native-build-error.txt');
/** Longest summary printed or saved on the first line of the error file. */
const SUMMARY_MAX = 200;

/** The command that retries the build from where this copy of crate-ts lives. */
function retryCommand(dir = root) {
  return dir.split(path.sep).includes('node_modules') ? 'npm rebuild crate-ts' : 'npm run build:native';
}

const clip = (s, n = SUMMARY_MAX) => (s.length <= n ? s : s.slice(0, n - 1) + '…');

function giveUp(summary, details = '') {
  summary = clip(summary.replace(/\s+/g, ' ').trim());
  const retry = retryCommand();
  mkdirSync(path.dirname(errorFile), { recursive: true });
  writeFileSync(errorFile, `${summary}\nretry with: ${retry}\n\n${details}`);
  console.warn(`crate-ts: native addon not built (${summary}); the reference backend still works. Full log: ${path.relative(process.cwd(), errorFile) || errorFile}; retry: ${retry}`);
  process.exit(strict ? 1 : 0);
}

/** The most telling line of a failed build: the compiler's first error, else the first other error line. */
function firstError(output) {
  const lines = output.split('\n').map((l) => l.trim()).filter(Boolean);
  return lines.find((l) => /:\d+(:\d+)?: (fatal )?error\b/i.test(l))
    ?? lines.find((l) => /\berror\b/i.test(l) && !/^(gyp (info|http|ERR!)|make(\[\d+\])?: \*\*\*)/.test(l))
    ?? lines.find((l) => /\berror\b/i.test(l));
}

if (process.env.CRATE_TS_SKIP_NATIVE && process.env.CRATE_TS_SKIP_NATIVE !== '0') {
  giveUp('skipped because CRATE_TS_SKIP_NATIVE is set');
}

/** node-gyp: npm's bundled copy (as npm runs it for install scripts), else one on PATH. */
function findNodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    path.join(path.dirname(process.execPath), 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  for (const c of candidates) if (c && existsSync(c)) return { cmd: process.execPath, args: [c] };
  const which = spawnSync(process.platform === 'win32' ? 'where' : 'which', ['node-gyp'], { encoding: 'utf8' });
  if (which.status === 0 && which.stdout.trim()) return { cmd: which.stdout.trim().split('\n')[0], args: [] };
  return null;
}

/** The directory holding include/node/node_api.h for this node, if it was installed with headers. */
function findNodeDir() {
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  return existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) && existsSync(path.join(prefix, 'include', 'node', 'common.gypi')) ? prefix : null;
}

const gyp = findNodeGyp();
if (!gyp) giveUp('node-gyp was not found (it ships with npm)');
const args = [...gyp.args, 'rebuild', '--release', `--jobs=${Math.max(1, os.cpus().length)}`];
const nodedir = process.env.npm_config_nodedir ? null : findNodeDir();
if (nodedir) args.push(`--nodedir=${nodedir}`);

const headers = process.env.npm_config_nodedir || nodedir;
console.log(`crate-ts: building the native addon with node-gyp${headers ? ` (Node headers from ${headers})` : ''} ...`);
const t0 = Date.now();
const r = spawnSync(gyp.cmd, args, { cwd: root, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, env: { ...process.env } });
const output = `${r.stdout ?? ''}\n${r.stderr ?? ''}`;
const built = path.join(root, 'build', 'Release', 'crate_native.node');
if (r.error) giveUp(`node-gyp could not be started: ${r.error.message}`, output);
if (r.status !== 0 || !existsSync(built)) {
  giveUp(`node-gyp rebuild failed: ${firstError(output) ?? `exit status ${r.status}`}`, output);
}
rmSync(errorFile, { force: true });
console.log(`crate-ts: native addon built in ${((Date.now() - t0) / 1000).toFixed(0)} s (build/Release/crate_native.node)`);
