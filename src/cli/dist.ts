// What a command needs to run on several ranks: --dist, a first line by rank 0, quiet ranks, and
// the way out when a rank is lost (one line, exit at once) or when every rank holds the same error
// (rank 0 prints it).
import { CrateError } from '../errors.js';
import type { Communicator } from '../distributed/communicator.js';
import { isEchoOfRankZero } from '../distributed/agree.js';
import { MpiCommunicator, RankLostError } from '../distributed/mpi.js';
import { checkDistChoice, openCommunicator } from '../distributed/select.js';
import { cliMessage } from './flags.js';

/** The --dist lines of a command's help, the description starting at column `col`. */
export function distHelp(col: number): string {
  const pad = ' '.repeat(col);
  return [
    `  ${'--dist MODE'.padEnd(col - 2)}auto | single | mpi | nccl (default auto: mpi when mpirun or srun started`,
    `${pad}several ranks, nccl for torchrun-style RANK/WORLD_SIZE with --backend cuda,`,
    `${pad}else single); run as: mpirun -np N npx crate-ts ...`,
  ].join('\n');
}

/** The communicator --dist asks for (value: the flag, or undefined for auto). */
export function openFromFlag(value: string | boolean | undefined, backend: unknown): Promise<Communicator> {
  return openCommunicator(checkDistChoice(typeof value === 'string' ? value : 'auto'), { backend: typeof backend === 'string' ? backend : undefined });
}

/** One line for rank 0 to print when several ranks run, else null. */
export function distLine(comm: Communicator): string | null {
  return comm.worldSize > 1 ? `distributed: rank 0 of ${comm.worldSize}, ${comm.description}` : null;
}

/** A signal in a distributed run: if a peer is gone, say so in one line and leave at once. */
export function exitIfPeerLost(comm: Communicator, print: (line: string) => void, cmd: string): void {
  if (!(comm instanceof MpiCommunicator)) return;
  const lost = comm.lostPeers();
  if (lost.length) {
    print(`crate-ts ${cmd}: ${comm.lostMessage(lost[0])}`);
    comm.exitNow(1);
  }
}

/**
 * The end of a failed distributed command. A lost rank: one line, exit at once (a worker may sit
 * in an MPI call that will never return). An error every rank holds: rank 0 reports it (rethrown),
 * the others return its exit code silently. Anything else is rethrown.
 */
export function distFailure(comm: Communicator, e: unknown, cmd: string): number {
  if (e instanceof RankLostError && comm instanceof MpiCommunicator) {
    process.stderr.write(`crate-ts ${cmd}: ${cliMessage(e)}\n`);
    comm.exitNow(1);
  }
  if (isEchoOfRankZero(e, comm)) {
    comm.close();
    return (e as CrateError).exitCode;
  }
  throw e;
}
