// The `mpi` communicator: the optional MPI addon (native/mpi/mpi_binding.cc, built by
// `npm run build:mpi` into build/mpi/crate_mpi.node with mpicxx). Loading is lazy: a machine
// without MPI never touches it, and asking for it there is one UsageError naming what is missing.
//
// A lost rank: while a collective is pending, the ranks on the same machine as a peer check every
// half second that its process still exists (the pids were exchanged at start), and fail with a
// RankLostError naming it; across machines the launcher ends the job (mpirun and srun terminate
// the other ranks when one dies), and MPI errors are returned, not fatal (MPI_ERRORS_RETURN).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { DataError, UsageError } from '../errors.js';
import { foldInto, type Communicator } from './communicator.js';

interface MpiAddon {
  init(): { rank: number; size: number; localRank: number; localSize: number; processor: string; library: string };
  allReduceSum(b: Float32Array | Float64Array): Promise<void>;
  allReduceOrdered(acc: Float32Array | Float64Array, c: Float32Array | Float64Array): Promise<void>;
  broadcast(b: Uint8Array | Float32Array | Float64Array, root: number): Promise<void>;
  barrier(): Promise<void>;
  gather(b: Uint8Array, root: number, all: boolean): Promise<Uint8Array[] | null>;
  finalize(): void;
  abort(code: number): never;
  exitNow(code: number): never;
}

/** A peer of this rank stopped existing (killed, crashed) while the job ran. */
export class RankLostError extends DataError {
  constructor(
    readonly lostRank: number,
    message: string,
  ) {
    super(message);
  }
}

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Where `npm run build:mpi` puts the addon ($CRATE_TS_MPI_ADDON overrides). */
export function mpiAddonPath(): string {
  return process.env.CRATE_TS_MPI_ADDON || path.join(root, 'build', 'mpi', 'crate_mpi.node');
}

const HOW_TO_BUILD = 'install an MPI (Debian/Ubuntu: apt-get install openmpi-bin libopenmpi-dev) and run `npm run build:mpi`';

let addon: MpiAddon | null = null;
/** The addon, or a UsageError saying what is missing and how to build it. */
function loadAddon(): MpiAddon {
  if (addon) return addon;
  const file = mpiAddonPath();
  if (!fs.existsSync(file))
    throw new UsageError((n) => `${n('dist')} mpi needs the MPI addon, which is not built (${file} is missing): ${HOW_TO_BUILD}`, { option: 'dist' });
  try {
    addon = createRequire(import.meta.url)(file) as MpiAddon;
  } catch (e) {
    const why = (e as Error).message.split('\n')[0];
    throw new UsageError((n) => `${n('dist')} mpi: the MPI addon ${file} does not load (${why}): ${HOW_TO_BUILD}`, { option: 'dist' });
  }
  return addon;
}

/** Null when the MPI addon is built and loads, else why not (one line). */
export function mpiUnavailable(): UsageError | null {
  try {
    loadAddon();
    return null;
  } catch (e) {
    return e as UsageError;
  }
}

interface Peer {
  pid: number;
  host: string;
}

const WATCH_MS = 500;

export class MpiCommunicator implements Communicator {
  readonly kind = 'mpi' as const;
  readonly rank: number;
  readonly worldSize: number;
  readonly localRank: number;
  readonly description: string;
  private peers: Peer[] = [];
  private closed = false;
  private readonly m: MpiAddon;

  private constructor(m: MpiAddon) {
    this.m = m;
    const i = m.init();
    this.rank = i.rank;
    this.worldSize = i.size;
    this.localRank = i.localRank;
    this.description = `mpi: ${i.size} rank${i.size === 1 ? '' : 's'} (${i.library})`;
  }

  /** Initialise MPI and exchange the peers' process ids (for the lost-rank check). */
  static async open(): Promise<MpiCommunicator> {
    const c = new MpiCommunicator(loadAddon());
    const me = Buffer.from(JSON.stringify({ pid: process.pid, host: os.hostname() }));
    const all = await c.m.gather(me, 0, true);
    c.peers = (all ?? []).map((b) => JSON.parse(Buffer.from(b).toString('utf8')) as Peer);
    return c;
  }

  /** The same-machine peers that no longer exist. */
  lostPeers(): number[] {
    const host = os.hostname(),
      lost: number[] = [];
    this.peers.forEach((p, r) => {
      if (r === this.rank || p.host !== host) return;
      try {
        process.kill(p.pid, 0);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ESRCH') lost.push(r);
      }
    });
    return lost;
  }

  /** One line naming a lost rank. */
  lostMessage(r: number): string {
    const p = this.peers[r];
    return `rank ${r} (pid ${p?.pid} on ${p?.host}) was lost; rank ${this.rank} stops (the last checkpoint written is intact; --resume continues the run)`;
  }

  /** Await a collective, failing with RankLostError when a same-machine peer disappears meanwhile. */
  private guard<T>(what: string, p: Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new UsageError(`${what}: the MPI communicator was closed`));
    return new Promise<T>((resolve, reject) => {
      const timer = setInterval(() => {
        const lost = this.lostPeers();
        if (lost.length) {
          clearInterval(timer);
          reject(new RankLostError(lost[0], this.lostMessage(lost[0])));
        }
      }, WATCH_MS);
      p.then(
        (v) => {
          clearInterval(timer);
          resolve(v);
        },
        (e: Error) => {
          clearInterval(timer);
          const lost = this.lostPeers();
          reject(lost.length ? new RankLostError(lost[0], this.lostMessage(lost[0])) : new DataError(`${what}: ${e.message}`));
        },
      );
    });
  }

  allReduceSum(buf: Float32Array | Float64Array): Promise<void> {
    if (this.worldSize === 1) return Promise.resolve();
    return this.guard('all-reduce', this.m.allReduceSum(buf));
  }
  allReduceOrdered(acc: Float32Array | Float64Array, contribution: Float32Array | Float64Array): Promise<void> {
    if (this.worldSize === 1) {
      foldInto(acc, [contribution]);
      return Promise.resolve();
    }
    return this.guard('ordered all-reduce', this.m.allReduceOrdered(acc, contribution));
  }
  broadcast(buf: Uint8Array | Float32Array | Float64Array, root = 0): Promise<void> {
    return this.guard('broadcast', this.m.broadcast(buf, root));
  }
  barrier(): Promise<void> {
    return this.guard('barrier', this.m.barrier());
  }
  gather(bytes: Uint8Array, root = 0): Promise<Uint8Array[] | null> {
    return this.guard('gather', this.m.gather(bytes, root, false));
  }
  async allGather(bytes: Uint8Array): Promise<Uint8Array[]> {
    return (await this.guard('all-gather', this.m.gather(bytes, 0, true))) ?? [];
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.m.finalize();
  }
  /** Leave the process at once (exit handlers are skipped: a worker may sit in an MPI call that never returns). */
  exitNow(code: number): never {
    return this.m.exitNow(code);
  }
}
