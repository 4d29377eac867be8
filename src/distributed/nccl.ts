// The `nccl` communicator: placeholder until the CUDA addon carries the NCCL calls. Asking for it
// says precisely what is missing; nothing else in crate-ts depends on it.
import { UsageError } from '../errors.js';
import type { Communicator } from './communicator.js';
import type { LaunchInfo } from './launch.js';

export async function openNccl(l: LaunchInfo, backend: string | undefined): Promise<Communicator> {
  if (backend !== 'cuda') throw new UsageError(`--dist nccl needs the cuda backend (one rank per GPU), not ${backend ?? 'the default backend'}; for cpu training across processes use --dist mpi under mpirun`);
  void l;
  throw new UsageError('--dist nccl: this build of crate-ts has no NCCL communicator yet');
}
