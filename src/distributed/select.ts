// --dist auto|single|mpi|nccl: which communicator a command runs with.
//
//   single  one process (the default when no launcher started several);
//   mpi     the MPI addon; the process must have been started by mpirun or srun;
//   nccl    GPU all-reduce through NCCL in the CUDA addon (one rank per GPU), ranks from MPI or
//           from torchrun-style variables;
//   auto    mpi when a launcher started more than one rank (mpirun, srun), nccl when torchrun-style
//           variables ask for several ranks (cuda backend), else single.
import { UsageError } from '../errors.js';
import { SINGLE, type Communicator } from './communicator.js';
import { launchInfo, type LaunchInfo } from './launch.js';
import { MpiCommunicator, mpiUnavailable } from './mpi.js';
import { openNccl } from './nccl.js';

export type DistChoice = 'auto' | 'single' | 'mpi' | 'nccl';
export const DIST_CHOICES: readonly DistChoice[] = ['auto', 'single', 'mpi', 'nccl'];

export function checkDistChoice(s: string): DistChoice {
  if (!(DIST_CHOICES as readonly string[]).includes(s))
    throw new UsageError((n) => `${n('dist')} must be one of ${DIST_CHOICES.join(', ')}, got '${s}'`, { option: 'dist' });
  return s as DistChoice;
}

/** The launch in words, for messages. */
function launched(l: LaunchInfo): string {
  return l.launcher === null
    ? 'no launcher started it (no mpirun, srun or torchrun variables in its environment)'
    : `${l.launcher} started ${l.size ?? '?'} ranks (${l.source})`;
}

/**
 * Open the communicator `choice` asks for. backend: the compute backend's name ('cuda' makes auto
 * prefer NCCL for torchrun-style launches). env: the environment (tests pass their own).
 */
export async function openCommunicator(
  choice: DistChoice = 'auto',
  opts: { backend?: string; env?: Record<string, string | undefined> } = {},
): Promise<Communicator> {
  const l = launchInfo(opts.env ?? process.env);
  const several = (l.size ?? 1) > 1;
  if (choice === 'auto') {
    if (!several) return SINGLE;
    if (l.launcher === 'torchrun') choice = 'nccl';
    else {
      const why = mpiUnavailable();
      if (why)
        throw new UsageError((n) => `${launched(l)}, but ${why.messageWith(n).replace(/^\S+ mpi needs/, 'running them together needs')}`, { option: 'dist' });
      choice = 'mpi';
    }
  }
  if (choice === 'single') {
    if (several)
      throw new UsageError(
        (n) => `${n('dist')} single, but ${launched(l)}: each would train alone and overwrite the others' files (use ${n('dist')} mpi, or launch one process)`,
        { option: 'dist' },
      );
    return SINGLE;
  }
  if (choice === 'mpi') {
    if (l.launcher !== 'mpirun' && l.launcher !== 'srun')
      throw new UsageError(
        (n) =>
          `${n('dist')} mpi: ${l.launcher === 'torchrun' ? 'torchrun-style variables started it, not mpirun or srun' : 'this process was not started by mpirun or srun (no OMPI_COMM_WORLD_SIZE, PMI_SIZE, PMIX_RANK or SLURM_PROCID in its environment)'}; launch it as: mpirun -np N npx crate-ts ...`,
        { option: 'dist' },
      );
    const why = mpiUnavailable();
    if (why) throw why;
    const c = await MpiCommunicator.open();
    if (l.size !== null && c.worldSize !== l.size) {
      c.close();
      throw new UsageError(
        `MPI reports ${c.worldSize} ranks but the launcher announced ${l.size} (${l.source}): is the addon built against the MPI that launched it?`,
      );
    }
    return c;
  }
  return openNccl(l, opts.backend);
}
