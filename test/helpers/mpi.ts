// Running crate-ts under mpirun from a test: whether MPI is here (mpirun on PATH and the MPI addon
// built), and one call that runs N ranks of a command and returns what they printed. Tests that
// need MPI skip with the reason when it is absent (.ci/run installs it and builds the addon).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { mpiAddonPath } from '../../src/distributed/mpi.js';

export const ROOT = path.resolve(__dirname, '..', '..');
/** bin/crate-ts.js on the TypeScript sources. */
export const CLI = path.join(ROOT, 'test', 'helpers', 'crate-ts-src.mjs');

/** Null when mpirun and the MPI addon are here, else why the MPI tests skip. */
export function mpiSkipReason(): string | null {
  const which = spawnSync('mpirun', ['--version'], { encoding: 'utf8' });
  if (which.error || which.status !== 0) return 'mpirun is not installed (apt-get install openmpi-bin libopenmpi-dev)';
  if (!fs.existsSync(mpiAddonPath())) return `the MPI addon is not built (${mpiAddonPath()}; npm run build:mpi)`;
  return null;
}

/** mpirun's flags: root is allowed in containers, and more ranks than cores. */
export function mpirunFlags(): string[] {
  const v = spawnSync('mpirun', ['--version'], { encoding: 'utf8' });
  return /Open MPI/i.test(`${v.stdout}${v.stderr}`) ? ['--allow-run-as-root', '--oversubscribe'] : [];
}

export interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** Start `mpirun` with the given per-rank argument lists (one list: every rank the same; several: MPMD). */
export function startMpi(ranks: number, args: string[] | string[][], env: Record<string, string> = {}): { child: ChildProcess; done: Promise<Ran> } {
  const t0 = performance.now();
  const apps = Array.isArray(args[0]) ? (args as string[][]) : null;
  const mpiArgs = [...mpirunFlags()];
  if (apps) apps.forEach((a, i) => mpiArgs.push(...(i ? [':'] : []), '-np', '1', process.execPath, CLI, ...a));
  else mpiArgs.push('-np', String(ranks), process.execPath, CLI, ...(args as string[]));
  const child = spawn('mpirun', mpiArgs, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '',
    stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const done = new Promise<Ran>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, seconds: (performance.now() - t0) / 1000 })),
  );
  return { child, done };
}

export function runMpi(ranks: number, args: string[] | string[][], env: Record<string, string> = {}): Promise<Ran> {
  return startMpi(ranks, args, env).done;
}

/** The pid of the process of MPI rank `rank` among the descendants of `parent` (Linux /proc). */
export function rankPid(parent: number, rank: number): number | null {
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const env = fs.readFileSync(`/proc/${e}/environ`, 'utf8').split('\0');
      if (!env.includes(`OMPI_COMM_WORLD_RANK=${rank}`) && !env.includes(`PMI_RANK=${rank}`)) continue;
      // a descendant of parent?
      let p = Number(e);
      for (let hops = 0; hops < 8 && p > 1; hops++) {
        const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
        p = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        if (p === parent) return Number(e);
      }
    } catch {
      // gone, or not ours
    }
  }
  return null;
}
