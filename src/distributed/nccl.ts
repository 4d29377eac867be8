// The `nccl` communicator: one rank per GPU, the collectives NCCL's (native/cuda/nccl.cu, loaded at
// run time with dlopen("libnccl.so.2"), so builds need no NCCL headers). The ranks find each other
// through the NCCL unique id, which rank 0 creates and hands to the others: over MPI when mpirun or
// srun started them (and the MPI addon is built), else over TCP at MASTER_ADDR:MASTER_PORT as
// torchrun sets it (RANK, WORLD_SIZE, LOCAL_RANK: the GPU is LOCAL_RANK).
//
// Two paths. The communicator interface's host arrays are staged through a device buffer, and those
// calls block. `device` (DeviceCollectives) takes the cuda backend's buffers themselves: the trainer
// reduces its flat gradient buffer in place, bucket by bucket as the backward finishes them, enqueued
// on NCCL's own stream after the operators that wrote them, with no host copy; the step joins the
// streams before the optimizer. Either way the ordered reduction gathers every rank's buffer
// (ncclAllGather) and adds them in rank order (on the host, or in a kernel on the device), like the
// MPI one, so results are bitwise those of one process. A lost peer is noticed by the launcher
// (torchrun and mpirun end the job), not by this process.
import * as net from 'node:net';
import { UsageError } from '../errors.js';
import { tryLoadAddon } from '../backend/loader.js';
import { foldInto, type Communicator, type DeviceCollectives } from './communicator.js';
import type { LaunchInfo } from './launch.js';
import { MpiCommunicator, mpiUnavailable } from './mpi.js';

interface NcclAddon {
  available(): { available: boolean; reason: string };
  nccl_load(): { loaded: boolean; reason: string; version: number };
  nccl_unique_id(): Uint8Array;
  nccl_init(id: Uint8Array, nranks: number, rank: number, device: number): void;
  nccl_all_reduce_sum(b: Float32Array): void;
  nccl_all_gather(b: Uint8Array, nranks: number): Uint8Array;
  nccl_broadcast(b: Uint8Array, root: number): void;
  nccl_all_reduce_sum_device(b: unknown): void;
  nccl_all_reduce_ordered_device(acc: unknown, c: unknown): void;
  nccl_join(): void;
  nccl_counters(): NcclCounters;
  nccl_destroy(): void;
}

/** How many calls took each path, and the bytes staged through the host / reduced on the device. */
export interface NcclCounters {
  hostCalls: number;
  hostBytes: number;
  deviceCalls: number;
  deviceBytes: number;
}

const ID_BYTES = 128;

/** The CUDA addon's NCCL functions, or a UsageError saying what is missing. */
function ncclAddon(): NcclAddon {
  const { addon, reason } = tryLoadAddon();
  const cuda = (addon as unknown as { cuda?: Partial<NcclAddon> } | null)?.cuda;
  if (!cuda)
    throw new UsageError((n) => `${n('dist')} nccl needs the CUDA build of the addon (npm run build:cuda): ${reason ?? 'this addon was built without CUDA'}`, {
      option: 'dist',
    });
  if (typeof cuda.nccl_load !== 'function' || typeof cuda.nccl_join !== 'function')
    throw new UsageError((n) => `${n('dist')} nccl: this CUDA addon predates NCCL support on device buffers; rebuild it with npm run build:cuda`, {
      option: 'dist',
    });
  const dev = cuda.available!();
  if (!dev.available) throw new UsageError((n) => `${n('dist')} nccl needs a GPU: ${dev.reason}`, { option: 'dist' });
  const st = cuda.nccl_load();
  if (!st.loaded) throw new UsageError((n) => `${n('dist')} nccl: ${st.reason}`, { option: 'dist' });
  return cuda as NcclAddon;
}

/** Rank 0 serves the id to size-1 peers at host:port; the others fetch it (retrying for up to a minute). */
async function exchangeIdTcp(id: Uint8Array | null, rank: number, size: number, host: string, port: number): Promise<Uint8Array> {
  if (rank === 0) {
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) =>
        reject(
          new UsageError(
            (n) => `${n('dist')} nccl: rank 0 cannot listen on ${host}:${port} (MASTER_ADDR:MASTER_PORT): ${(e as NodeJS.ErrnoException).code ?? e.message}`,
            { option: 'dist' },
          ),
        ),
      );
      server.listen(port, host, () => resolve());
    });
    let served = 0;
    await new Promise<void>((resolve) => {
      if (size === 1) resolve();
      server.on('connection', (s) => {
        s.end(Buffer.from(id!));
        if (++served === size - 1) resolve();
      });
    });
    server.close();
    return id!;
  }
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      return await new Promise<Uint8Array>((resolve, reject) => {
        const chunks: Buffer[] = [];
        const s = net.connect(port, host);
        s.on('data', (d: Buffer) => chunks.push(d));
        s.on('error', reject);
        s.on('end', () => {
          const b = Buffer.concat(chunks);
          if (b.length === ID_BYTES) resolve(new Uint8Array(b));
          else reject(new Error(`got ${b.length} bytes of the NCCL id, expected ${ID_BYTES}`));
        });
      });
    } catch (e) {
      if (Date.now() > deadline)
        throw new UsageError(
          (n) => `${n('dist')} nccl: rank ${rank} could not get the NCCL id from rank 0 at ${host}:${port} within 60 s (${(e as Error).message})`,
          { option: 'dist' },
        );
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

export class NcclCommunicator implements Communicator {
  readonly kind = 'nccl' as const;
  readonly description: string;
  private closed = false;

  private constructor(
    private readonly n: NcclAddon,
    readonly rank: number,
    readonly worldSize: number,
    readonly localRank: number,
    version: number,
    via: string,
    private readonly mpi: MpiCommunicator | null,
  ) {
    const v = version ? ` ${Math.floor(version / 10000)}.${Math.floor((version % 10000) / 100)}.${version % 100}` : '';
    this.description = `nccl${v}: ${worldSize} rank${worldSize === 1 ? '' : 's'}, one GPU each (id exchanged ${via})`;
  }

  /** Open NCCL for the launch `l` (its rank, size and local rank); env gives MASTER_ADDR/MASTER_PORT. */
  static async open(l: LaunchInfo, env: Record<string, string | undefined> = process.env): Promise<NcclCommunicator> {
    const n = ncclAddon();
    const size = l.size ?? 1,
      rank = l.rank ?? 0,
      local = l.localRank ?? 0;
    let id: Uint8Array, via: string;
    let mpi: MpiCommunicator | null = null;
    if ((l.launcher === 'mpirun' || l.launcher === 'srun') && mpiUnavailable() === null) {
      mpi = await MpiCommunicator.open();
      id = rank === 0 ? n.nccl_unique_id() : new Uint8Array(ID_BYTES);
      await mpi.broadcast(id, 0);
      via = 'over MPI';
    } else {
      const host = env.MASTER_ADDR,
        portS = env.MASTER_PORT;
      if (size > 1 && (!host || !portS))
        throw new UsageError(
          (n) =>
            `${n('dist')} nccl with ${size} ranks needs MASTER_ADDR and MASTER_PORT (rank 0's address and a free port), as torchrun sets them, or a launch by mpirun with the MPI addon built`,
          { option: 'dist' },
        );
      const port = Number(portS ?? 0);
      if (size > 1 && (!Number.isInteger(port) || port < 1 || port > 65535)) throw new UsageError(`MASTER_PORT=${portS} is not a port number`);
      id = size === 1 ? n.nccl_unique_id() : await exchangeIdTcp(rank === 0 ? n.nccl_unique_id() : null, rank, size, host!, port);
      via = size === 1 ? 'in process' : `over TCP at ${host}:${port}`;
    }
    n.nccl_init(id, size, rank, local);
    return new NcclCommunicator(n, rank, size, local, n.nccl_load().version, via, mpi);
  }

  readonly device: DeviceCollectives = {
    backend: 'cuda',
    allReduceSum: (buf) => this.n.nccl_all_reduce_sum_device(buf),
    allReduceOrdered: (acc, contribution) => this.n.nccl_all_reduce_ordered_device(acc, contribution),
    join: () => this.n.nccl_join(),
  };

  /** Calls and bytes of each path since the process loaded NCCL (tests: which path ran). */
  counters(): NcclCounters {
    return this.n.nccl_counters();
  }

  async allReduceSum(buf: Float32Array | Float64Array): Promise<void> {
    if (buf instanceof Float32Array) this.n.nccl_all_reduce_sum(buf);
    else {
      const parts = await this.allGatherFixed(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength));
      const sum = new Float64Array(buf.length);
      foldInto(
        sum,
        parts.map((p) => new Float64Array(p.slice().buffer)),
      );
      buf.set(sum);
    }
  }
  async allReduceOrdered(acc: Float32Array | Float64Array, contribution: Float32Array | Float64Array): Promise<void> {
    const parts = await this.allGatherFixed(new Uint8Array(contribution.buffer, contribution.byteOffset, contribution.byteLength));
    foldInto(
      acc,
      parts.map((p) => (acc instanceof Float32Array ? new Float32Array(p.slice().buffer) : new Float64Array(p.slice().buffer))),
    );
  }
  async broadcast(buf: Uint8Array | Float32Array | Float64Array, root = 0): Promise<void> {
    this.n.nccl_broadcast(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), root);
  }
  async barrier(): Promise<void> {
    this.n.nccl_all_reduce_sum(new Float32Array(1));
  }
  async gather(bytes: Uint8Array, root = 0): Promise<Uint8Array[] | null> {
    const all = await this.allGather(bytes);
    return this.rank === root ? all : null;
  }
  async allGather(bytes: Uint8Array): Promise<Uint8Array[]> {
    const lens = (await this.allGatherFixed(new Uint8Array(new Float64Array([bytes.byteLength]).buffer))).map((b) => new Float64Array(b.slice().buffer)[0]);
    const max = Math.max(...lens);
    const padded = new Uint8Array(max);
    padded.set(bytes);
    const parts = await this.allGatherFixed(padded);
    return parts.map((p, r) => p.slice(0, lens[r]));
  }
  /** Every rank's equally long bytes, in rank order. */
  private async allGatherFixed(bytes: Uint8Array): Promise<Uint8Array[]> {
    const all = this.n.nccl_all_gather(bytes, this.worldSize);
    const L = bytes.byteLength;
    return Array.from({ length: this.worldSize }, (_, r) => all.subarray(r * L, (r + 1) * L));
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.n.nccl_destroy();
    this.mpi?.close();
  }
}

export async function openNccl(l: LaunchInfo, backend: string | undefined): Promise<Communicator> {
  if (backend !== 'cuda')
    throw new UsageError(
      (n) =>
        `${n('dist')} nccl needs ${n('backend')} cuda (one rank per GPU), not ${backend ?? 'the default backend'}; for cpu training across processes use ${n('dist')} mpi under mpirun`,
      { option: 'dist' },
    );
  return NcclCommunicator.open(l);
}
