#!/usr/bin/env node
// Builds the native CPU addon (build/Release/crate_native.node) with node-gyp; `npm install` runs it.
//
// node-gyp is the copy bundled with npm (npm points npm_config_node_gyp at it during lifecycle
// scripts), and the Node headers come from this node's own installation (--nodedir) when they are
// there, so the build needs no network. A failed build never fails the install: it prints one
// warning line, writes the reason to build/native-build-error.txt (the loader quotes it when a
// native backend is requested) and exits 0; the project then runs on the reference backend.
//
//   node scripts/build-native.mjs            as npm install does
//   node scripts/build-native.mjs --strict   exit non-zero on failure (npm run build:native)
//   CRATE_TS_SKIP_NATIVE=1                   skip the build (the reason is recorded the same way)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const strict = process.argv.includes('--strict');
const errorFile = path.join(root, 'build', 'native-build-error.txt');

function giveUp(summary, details = '') {
  mkdirSync(path.dirname(errorFile), { recursive: true });
  writeFileSync(errorFile, `${summary}\n${details}`);
  console.warn(`crate-ts: native addon not built (${summary}); the reference backend still works. Details: build/native-build-error.txt`);
  process.exit(strict ? 1 : 0);
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
  const lines = output.split('\n');
  const firstError = lines.find((l) => /\berror\b/i.test(l) && !/^gyp (info|http)/.test(l)) ?? `exit status ${r.status}`;
  giveUp(`node-gyp rebuild failed: ${firstError.trim().slice(0, 300)}`, lines.slice(-80).join('\n'));
}
rmSync(errorFile, { force: true });
console.log(`crate-ts: native addon built in ${((Date.now() - t0) / 1000).toFixed(0)} s (build/Release/crate_native.node)`);
