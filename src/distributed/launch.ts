// What the launcher told this process, from its environment: mpirun (Open MPI), MPICH's hydra,
// PMIx, Slurm's srun, or torchrun-style variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
// MASTER_PORT). Pure functions of an environment object, so tests pass their own.
import { UsageError } from '../errors.js';

export interface LaunchInfo {
  /** Who started this process: 'mpirun' (Open MPI, MPICH, PMIx), 'srun', 'torchrun' or null. */
  launcher: 'mpirun' | 'srun' | 'torchrun' | null;
  /** The world size and rank the launcher announced (null when it announced none). */
  size: number | null;
  rank: number | null;
  localRank: number | null;
  /** The variables that announced them, for messages. */
  source: string;
}

type Env = Record<string, string | undefined>;

function intVar(env: Env, name: string, min: number): number | null {
  const s = env[name];
  if (s === undefined || s === '') return null;
  if (!/^\d+$/.test(s.trim()) || Number(s) < min) throw new UsageError(`${name}=${s} is not an integer >= ${min}`);
  return Number(s);
}

/** The launcher and layout announced by `env` (default process.env); contradictions are a UsageError. */
export function launchInfo(env: Env = process.env): LaunchInfo {
  const mpi: [string, string, string][] = [
    ['OMPI_COMM_WORLD_SIZE', 'OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_LOCAL_RANK'],
    ['PMI_SIZE', 'PMI_RANK', 'MPI_LOCALRANKID'],
    ['PMIX_SIZE', 'PMIX_RANK', 'PMIX_LOCAL_RANK'],
  ];
  let info: LaunchInfo = { launcher: null, size: null, rank: null, localRank: null, source: '' };
  for (const [s, r, l] of mpi) {
    if (env[s] !== undefined || (s === 'PMIX_SIZE' && env[r] !== undefined)) {
      info = { launcher: 'mpirun', size: intVar(env, s, 1), rank: intVar(env, r, 0), localRank: intVar(env, l, 0), source: `${s}/${r}` };
      break;
    }
  }
  if (info.launcher === null && env.SLURM_PROCID !== undefined && env.SLURM_NTASKS !== undefined && env.SLURM_STEP_ID !== undefined)
    info = {
      launcher: 'srun',
      size: intVar(env, 'SLURM_NTASKS', 1),
      rank: intVar(env, 'SLURM_PROCID', 0),
      localRank: intVar(env, 'SLURM_LOCALID', 0),
      source: 'SLURM_NTASKS/SLURM_PROCID',
    };
  const tw = intVar(env, 'WORLD_SIZE', 1),
    tr = intVar(env, 'RANK', 0),
    tl = intVar(env, 'LOCAL_RANK', 0);
  if ((tw === null) !== (tr === null)) throw new UsageError(`RANK and WORLD_SIZE must be set together (got ${tr === null ? 'WORLD_SIZE' : 'RANK'} only)`);
  if (tw !== null && tr !== null) {
    if (tr >= tw) throw new UsageError(`RANK=${tr} is out of range for WORLD_SIZE=${tw}`);
    if (info.launcher !== null) {
      if (info.size !== null && info.size !== tw)
        throw new UsageError(`WORLD_SIZE=${tw} disagrees with the launcher's world size ${info.size} (${info.source})`);
      if (info.rank !== null && info.rank !== tr) throw new UsageError(`RANK=${tr} disagrees with the launcher's rank ${info.rank} (${info.source})`);
    } else {
      info = { launcher: 'torchrun', size: tw, rank: tr, localRank: tl ?? 0, source: 'WORLD_SIZE/RANK' };
    }
  }
  if (info.size !== null && info.rank !== null && info.rank >= info.size)
    throw new UsageError(`the launcher's rank ${info.rank} is out of range for its world size ${info.size} (${info.source})`);
  return info;
}
