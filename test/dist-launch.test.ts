// The parts of --dist that need no MPI: what the launcher's environment says (and refusing
// contradictions), which communicator --dist picks or why it cannot, the ordered fold, and how
// ranks agree (a fake two-rank communicator). The CLI's refusals are one line with exit 2.
import { describe, it, expect, afterEach } from 'vitest';
import { spawnSync } from 'node:child_process';
import { launchInfo } from '../src/distributed/launch.js';
import { openCommunicator, checkDistChoice } from '../src/distributed/select.js';
import { SINGLE, foldInto, type Communicator } from '../src/distributed/communicator.js';
import { prepareTogether, firstDifference, isEchoOfRankZero } from '../src/distributed/agree.js';
import { CLI, ROOT } from './helpers/mpi.js';
import { cliMessage } from '../src/cli/flags.js';

/** The message of what `f` throws (or rejects with) as the library writes it and as the command line prints it. */
async function messages(f: () => unknown): Promise<[string, string]> {
  try {
    await f();
  } catch (e) {
    return [(e as Error).message, cliMessage(e as Error)];
  }
  throw new Error('nothing was thrown');
}

describe('launchInfo', () => {
  it('reads mpirun, MPICH, srun and torchrun variables', () => {
    expect(launchInfo({ OMPI_COMM_WORLD_SIZE: '4', OMPI_COMM_WORLD_RANK: '2', OMPI_COMM_WORLD_LOCAL_RANK: '0' })).toMatchObject({
      launcher: 'mpirun',
      size: 4,
      rank: 2,
      localRank: 0,
    });
    expect(launchInfo({ PMI_SIZE: '2', PMI_RANK: '1' })).toMatchObject({ launcher: 'mpirun', size: 2, rank: 1 });
    expect(launchInfo({ SLURM_PROCID: '3', SLURM_NTASKS: '8', SLURM_LOCALID: '3', SLURM_STEP_ID: '0' })).toMatchObject({
      launcher: 'srun',
      size: 8,
      rank: 3,
      localRank: 3,
    });
    expect(launchInfo({ RANK: '1', WORLD_SIZE: '2', LOCAL_RANK: '1' })).toMatchObject({ launcher: 'torchrun', size: 2, rank: 1, localRank: 1 });
    expect(launchInfo({})).toMatchObject({ launcher: null, size: null });
    // an sbatch script's environment (no step) is not an srun launch
    expect(launchInfo({ SLURM_PROCID: '0', SLURM_NTASKS: '8' }).launcher).toBeNull();
  });
  it('refuses variables that disagree, in one line naming both', () => {
    expect(() => launchInfo({ OMPI_COMM_WORLD_SIZE: '2', OMPI_COMM_WORLD_RANK: '0', WORLD_SIZE: '3', RANK: '0' })).toThrow(
      /WORLD_SIZE=3 disagrees with the launcher's world size 2 \(OMPI_COMM_WORLD_SIZE/,
    );
    expect(() => launchInfo({ OMPI_COMM_WORLD_SIZE: '2', OMPI_COMM_WORLD_RANK: '1', WORLD_SIZE: '2', RANK: '0' })).toThrow(
      /RANK=0 disagrees with the launcher's rank 1/,
    );
    expect(() => launchInfo({ WORLD_SIZE: '2', RANK: '2' })).toThrow(/RANK=2 is out of range for WORLD_SIZE=2/);
    expect(() => launchInfo({ WORLD_SIZE: '2' })).toThrow(/RANK and WORLD_SIZE must be set together/);
    expect(() => launchInfo({ WORLD_SIZE: 'two', RANK: '0' })).toThrow(/WORLD_SIZE=two is not an integer/);
  });
});

describe('openCommunicator', () => {
  const saved = process.env.CRATE_TS_MPI_ADDON;
  afterEach(() => {
    if (saved === undefined) delete process.env.CRATE_TS_MPI_ADDON;
    else process.env.CRATE_TS_MPI_ADDON = saved;
  });
  it('auto without a launcher, and single, are the single process', async () => {
    expect(await openCommunicator('auto', { env: {} })).toBe(SINGLE);
    expect(await openCommunicator('single', { env: { OMPI_COMM_WORLD_SIZE: '1', OMPI_COMM_WORLD_RANK: '0' } })).toBe(SINGLE);
  });
  it('refuses --dist mpi without mpirun, --dist single under a several-rank launch, and a missing addon', async () => {
    // the library names the option `dist`; the command line prints --dist
    let [lib, cli] = await messages(() => openCommunicator('mpi', { env: {} }));
    expect(lib).toMatch(/^dist mpi: this process was not started by mpirun or srun .* mpirun -np N npx crate-ts/);
    expect(cli).toMatch(/^--dist mpi: this process was not started by mpirun or srun .* mpirun -np N npx crate-ts/);
    [lib, cli] = await messages(() => openCommunicator('single', { env: { OMPI_COMM_WORLD_SIZE: '2', OMPI_COMM_WORLD_RANK: '0' } }));
    expect(lib).toMatch(/^dist single, but mpirun started 2 ranks.*\(use dist mpi,/);
    expect(cli).toMatch(/^--dist single, but mpirun started 2 ranks.*\(use --dist mpi,/);
    process.env.CRATE_TS_MPI_ADDON = '/nonexistent/crate_mpi.node';
    [lib, cli] = await messages(() => openCommunicator('auto', { env: { OMPI_COMM_WORLD_SIZE: '2', OMPI_COMM_WORLD_RANK: '0' } }));
    for (const m of [lib, cli])
      expect(m).toMatch(
        /^mpirun started 2 ranks .*, but running them together needs the MPI addon, which is not built .*apt-get install openmpi-bin libopenmpi-dev.*npm run build:mpi/,
      );
    [lib, cli] = await messages(() => openCommunicator('mpi', { env: { OMPI_COMM_WORLD_SIZE: '2', OMPI_COMM_WORLD_RANK: '0' } }));
    expect(lib).toMatch(/^dist mpi needs the MPI addon, which is not built/);
    expect(cli).toMatch(/^--dist mpi needs the MPI addon, which is not built/);
    [lib, cli] = await messages(() => checkDistChoice('gloo'));
    expect(lib).toBe("dist must be one of auto, single, mpi, nccl, got 'gloo'");
    expect(cli).toBe("--dist must be one of auto, single, mpi, nccl, got 'gloo'");
  });
});

describe('foldInto and agreement', () => {
  it('foldInto adds in order in float32', () => {
    const acc = new Float32Array([1e8, 0.1]);
    foldInto(acc, [new Float32Array([1, 0.2]), new Float32Array([-1e8, 0.3])]);
    let a = Math.fround(1e8);
    a = Math.fround(a + 1);
    a = Math.fround(a + Math.fround(-1e8));
    let b = Math.fround(0.1);
    b = Math.fround(b + Math.fround(0.2));
    b = Math.fround(b + Math.fround(0.3));
    expect(Array.from(acc)).toEqual([a, b]);
  });

  /** Two ranks in one process: allGather returns this rank's bytes and `other`'s. */
  const fake = (rank: number, other: unknown): Communicator => ({
    ...SINGLE,
    kind: 'mpi',
    rank,
    worldSize: 2,
    localRank: rank,
    description: 'fake',
    allGather: async (b: Uint8Array) => {
      const o = new Uint8Array(Buffer.from(JSON.stringify(other)));
      return rank === 0 ? [b, o] : [o, b];
    },
  });

  it('all ranks fail with the failing rank named, or with the first difference; rank 0 alone reports', async () => {
    const c1 = fake(1, { ok: false, message: 'no data at /x', exitCode: 1 });
    await expect(
      prepareTogether(
        c1,
        'run',
        () => 5,
        (v) => v,
      ),
    ).rejects.toThrow(/^rank 0 of 2: no data at \/x$/);
    const c0 = fake(0, { ok: true, fingerprint: { hyper: { lr: 0.002, steps: 5 } } });
    const err = await prepareTogether(
      c0,
      'run',
      () => ({ hyper: { lr: 0.003, steps: 5 } }),
      (v) => v,
    ).catch((e: unknown) => e);
    expect(String(err)).toMatch(/rank 1 disagrees with rank 0 on the run: hyper\.lr is 0\.002 on rank 1 but 0\.003 on rank 0/);
    expect(isEchoOfRankZero(err, c0)).toBe(false);
    const err1 = await prepareTogether(
      fake(1, { ok: true, fingerprint: 1 }),
      'run',
      () => 2,
      (v) => v,
    ).catch((e: unknown) => e);
    expect(isEchoOfRankZero(err1, fake(1, null))).toBe(true);
    expect(
      await prepareTogether(
        fake(1, { ok: true, fingerprint: { a: [1, 2] } }),
        'run',
        () => ({ a: [1, 2] }),
        (v) => v,
      ),
    ).toEqual({ a: [1, 2] });
    expect(firstDifference({ a: { b: [1, 2] } }, { a: { b: [1, 3] } })).toEqual({ path: 'a.b.1', a: 2, b: 3 });
  });
});

describe('crate-ts train --dist refusals', () => {
  const run = (args: string[], env: Record<string, string> = {}) =>
    spawnSync(process.execPath, [CLI, 'train', ...args], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env } });
  it('--dist mpi without mpirun, and a bad --dist, are one line with exit 2', () => {
    for (const [args, re] of [
      [['--dist', 'mpi'], /^crate-ts train: --dist mpi: this process was not started by mpirun or srun/],
      [['--dist', 'bogus'], /^crate-ts train: --dist must be one of auto, single, mpi, nccl, got 'bogus'/],
      [['--dist', 'nccl', '--backend', 'cpu'], /^crate-ts train: --dist nccl needs --backend cuda/],
    ] as const) {
      const r = run([...args]);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(re);
    }
    const r = run(['--steps', '1'], { WORLD_SIZE: '2', RANK: '5' });
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toMatch(/^crate-ts train: RANK=5 is out of range for WORLD_SIZE=2$/);
  });
});
