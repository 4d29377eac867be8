// The one interface data-parallel code talks to (README "Beyond one machine"): who am I (rank,
// world size, local rank on this machine), and the few collectives training and collection need.
// Implementations: `single` (this file; one process, every collective is the identity), `mpi`
// (mpi.ts: the optional MPI addon, launched by mpirun or srun) and `nccl` (nccl.ts: GPU buffers
// through NCCL, loaded at run time by the CUDA addon).
//
// The collectives are asynchronous: a rank that waits for its peers keeps its event loop, so a
// signal from the launcher or the check that a peer is still alive can run meanwhile. A collective
// may be started before the earlier ones have finished (the trainer starts one per gradient bucket
// during the backward and waits for all before the optimizer step): they run in the order they were
// started, which must be the same on every rank.

/** Which implementation. */
export type DistKind = 'single' | 'mpi' | 'nccl';

/**
 * Collectives on a compute backend's own buffers (the nccl communicator with the cuda backend): each
 * is enqueued on the device after the operators queued so far and returns at once; join() makes the
 * operators queued after it wait for every collective enqueued before it.
 */
export interface DeviceCollectives {
  /** The backend whose buffers these take ('cuda'). */
  readonly backend: string;
  /** buf <- the sum over ranks, in the library's order. */
  allReduceSum(buf: unknown): void;
  /** acc <- ((acc + c_0) + c_1) + ... in rank order: bitwise Communicator.allReduceOrdered's result. */
  allReduceOrdered(acc: unknown, contribution: unknown): void;
  join(): void;
}

export interface Communicator {
  readonly kind: DistKind;
  /** This process's index, 0..worldSize-1; rank 0 alone writes files and prints. */
  readonly rank: number;
  readonly worldSize: number;
  /** Index among the ranks on this machine (which GPU to use). */
  readonly localRank: number;
  /** One line: the implementation, the library and the layout, for rank 0 to print. */
  readonly description: string;
  /** buf <- the elementwise sum of every rank's buf, in the library's own (fastest) order. */
  allReduceSum(buf: Float32Array | Float64Array): Promise<void>;
  /**
   * acc <- ((acc + c_0) + c_1) + ... + c_{N-1}, c_r being rank r's `contribution`, added one rank
   * after the other in the buffer's own precision: the same left fold a single process computes
   * when it adds the same buffers in rank order, so the result is bitwise reproducible and
   * independent of how the library groups messages. acc must be equal on every rank on entry.
   */
  allReduceOrdered(acc: Float32Array | Float64Array, contribution: Float32Array | Float64Array): Promise<void>;
  /** buf <- root's buf on every rank (the same byte length everywhere). */
  broadcast(buf: Uint8Array | Float32Array | Float64Array, root?: number): Promise<void>;
  barrier(): Promise<void>;
  /** Every rank's bytes (any lengths), in rank order, on `root`; null elsewhere. */
  gather(bytes: Uint8Array, root?: number): Promise<Uint8Array[] | null>;
  /** Every rank's bytes (any lengths), in rank order, on every rank. */
  allGather(bytes: Uint8Array): Promise<Uint8Array[]>;
  /** Release the library (MPI_Finalize); idempotent. */
  close(): void;
  /** Collectives on device buffers, where this communicator has them (nccl). */
  readonly device?: DeviceCollectives;
}

/** acc[i] <- acc[i] + b[i] for each b in order, in acc's precision (float32 arithmetic for a Float32Array). */
export function foldInto(acc: Float32Array | Float64Array, parts: readonly (Float32Array | Float64Array)[]): void {
  // For float32 inputs the double sum rounded to float32 is the correctly rounded float32 sum.
  for (const b of parts) {
    if (b.length !== acc.length) throw new RangeError(`foldInto: a part has ${b.length} values, the accumulator ${acc.length}`);
    if (acc instanceof Float32Array) for (let i = 0; i < acc.length; i++) acc[i] = Math.fround(acc[i] + b[i]);
    else for (let i = 0; i < acc.length; i++) acc[i] = acc[i] + b[i];
  }
}

/** One process: rank 0 of 1. Every collective returns its input. */
export class SingleCommunicator implements Communicator {
  readonly kind = 'single' as const;
  readonly rank = 0;
  readonly worldSize = 1;
  readonly localRank = 0;
  readonly description = 'single process (rank 0 of 1)';
  async allReduceSum(): Promise<void> {}
  async allReduceOrdered(acc: Float32Array | Float64Array, contribution: Float32Array | Float64Array): Promise<void> {
    foldInto(acc, [contribution]);
  }
  async broadcast(): Promise<void> {}
  async barrier(): Promise<void> {}
  async gather(bytes: Uint8Array): Promise<Uint8Array[]> {
    return [bytes.slice()];
  }
  async allGather(bytes: Uint8Array): Promise<Uint8Array[]> {
    return [bytes.slice()];
  }
  close(): void {}
}

/** The shared single-process communicator (stateless). */
export const SINGLE: Communicator = new SingleCommunicator();
