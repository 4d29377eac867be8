#!/usr/bin/env node
// Builds the optional MPI addon (build/mpi/crate_mpi.node) from native/mpi/mpi_binding.cc with the
// MPI compiler wrapper (mpicxx, or $MPICXX), against the machine's MPI (Open MPI or MPICH). It is
// not part of `npm install`: a machine without MPI installs and runs everything else, and asking
// for --dist mpi there names what is missing and this command.
//
//   npm run build:mpi                 (exit 1 with one line when MPI or the compiler is missing)
//   Debian/Ubuntu: apt-get install openmpi-bin libopenmpi-dev   (or mpich libmpich-dev)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const out = path.join(root, 'build', 'mpi', 'crate_mpi.node');
const fail = (why) => {
  console.error(`crate-ts: MPI addon not built: ${why}`);
  process.exit(1);
};

const cxx = process.env.MPICXX || 'mpicxx';
const probe = spawnSync(cxx, ['--version'], { encoding: 'utf8' });
if (probe.error || probe.status !== 0)
  fail(`'${cxx}' was not found (install an MPI with its development files: apt-get install openmpi-bin libopenmpi-dev, or mpich libmpich-dev)`);

const prefix = path.resolve(path.dirname(process.execPath), '..');
const nodeInclude = [path.join(prefix, 'include', 'node'), process.env.npm_config_nodedir && path.join(process.env.npm_config_nodedir, 'include', 'node')].find(
  (d) => d && existsSync(path.join(d, 'node_api.h')),
);
if (!nodeInclude) fail(`Node's headers (node_api.h) were not found under ${prefix}/include/node`);
const napiInclude = require('node-addon-api').include_dir;

mkdirSync(path.dirname(out), { recursive: true });
const tmp = `${out}.tmp-${process.pid}`;
const args = [
  '-O2',
  '-std=gnu++17',
  '-fPIC',
  '-shared',
  '-ffp-contract=off',
  '-fexceptions',
  '-DNAPI_VERSION=8',
  '-DNAPI_CPP_EXCEPTIONS',
  '-DNODE_ADDON_API_DISABLE_DEPRECATED',
  `-I${nodeInclude}`,
  `-I${path.isAbsolute(napiInclude) ? napiInclude : path.join(root, napiInclude)}`,
  path.join(root, 'native', 'mpi', 'mpi_binding.cc'),
  '-o',
  tmp,
  '-ldl',
];
const r = spawnSync(cxx, args, { encoding: 'utf8' });
if (r.status !== 0) {
  const first = `${r.stderr}`.split('\n').find((l) => /error/i.test(l)) ?? `${cxx} exited with ${r.status}`;
  fail(first.trim());
}
renameSync(tmp, out);
console.log(`crate-ts: built ${path.relative(process.cwd(), out) || out} with ${cxx} (${probe.stdout.split('\n')[0]})`);
