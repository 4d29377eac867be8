// The gradient reduction of a data-parallel step, in buckets that start while the backward still runs.
//
// The backward runs from the top of the model down, one block after the other (LanguageModel.backward
// reports each point from which the flat gradient is final: a block's first parameter, then 0 after
// the embeddings). The flat buffer lays the parameters out as wte, wpe, block 0, ..., block L-1, ln_f,
// so what is final is always a tail [from, P) of it, and a bucket is a contiguous range of whole
// blocks: the top block with ln_f first, then the blocks below, and last wte + wpe (wte is tied to the
// output projection, so its gradient is complete only after the embeddings' backward). A bucket closes
// once it holds at least `bucketBytes` of float32 gradient; bucketBytes 0 is the schedule without
// overlap: one reduction of the whole buffer after each backward, awaited before the next micro-batch.
//
// Starting a bucket's reduction does not wait for it: the MPI addon runs the collectives on a worker
// thread, one at a time in the order they were started (native/mpi/mpi_binding.cc), while this thread
// goes on with the backward of the blocks below and with the next micro-batch; finish() waits for all
// of them before the optimizer step. The nccl communicator with the cuda backend reduces the device
// buffers themselves (no host copy), enqueued on NCCL's own stream after the operators that wrote them.
//
// Bucketing changes no arithmetic: 'ordered' adds the ranks' contributions onto the running sum one
// rank after the other, element by element, whatever range a call covers, so every bucket layout (and
// the schedule without overlap) gives bitwise the same sum, and N ranks stay bitwise equal to one
// process. 'sum' (one all-reduce of each rank's micro-batch sum, in the library's order) is not
// bitwise to begin with.
import type { Backend } from '../backend/types.js';
import { UsageError } from '../errors.js';
import type { Communicator } from './communicator.js';

/** Elements [from, to) of the flat gradient buffer. */
export interface Bucket {
  from: number;
  to: number;
}

/** Bytes of gradient per bucket unless asked otherwise (--dist-bucket-kb). */
export const DEFAULT_BUCKET_BYTES = 256 * 1024;

/**
 * The buckets for a buffer of `total` elements whose backward reports the final tails [r, total) for
 * r in `ready` (decreasing, the last 0), in the order they become final: consecutive ready ranges
 * joined until a bucket holds at least bucketBytes (float32); the last bucket ends at 0.
 * bucketBytes 0: one bucket, the whole buffer.
 */
export function gradientBuckets(ready: readonly number[], total: number, bucketBytes: number): Bucket[] {
  if (!Number.isFinite(bucketBytes) || bucketBytes < 0) throw new UsageError(`bucketBytes must be a number >= 0, got ${bucketBytes}`);
  if (ready.length === 0 || ready[ready.length - 1] !== 0) throw new UsageError('gradientBuckets: the ready points must end with 0');
  if (bucketBytes === 0) return [{ from: 0, to: total }];
  const out: Bucket[] = [];
  let to = total;
  for (const r of ready) {
    if (r > to) throw new UsageError('gradientBuckets: the ready points must decrease');
    if ((to - r) * 4 >= bucketBytes || r === 0) {
      if (r < to) out.push({ from: r, to });
      to = r;
    }
  }
  return out;
}

/** What the reducer needs of the model: its gradient buffer and where its blocks start. */
export interface ReducerModel<Buf> {
  readonly grads: Buf;
  readonly numParameters: number;
  readonly config: { readonly nLayer: number };
  layerStart(l: number): number;
}

export interface ReducerOptions {
  /** 'ordered' (bitwise equal to one process) or 'sum' (one all-reduce of each rank's sum). */
  mode: 'ordered' | 'sum';
  /** Close a bucket once it holds this many bytes of float32 gradient; 0: no overlap (see above). */
  bucketBytes: number;
  /** Reduce the backend's device buffers when the communicator can (default true); false: through host arrays. */
  device?: boolean;
}

/** A finished step's reduction: the losses of every rank's micro-batches, added in micro-batch order. */
export interface ReducedStep {
  lossSum: number;
  /** Some rank asked to stop after this step. */
  stop: boolean;
  /** Seconds this thread waited for collectives (the communication the backward did not hide). */
  commSeconds: number;
}

type Host = Float32Array | Float64Array;

export class GradientReducer<Buf> {
  readonly buckets: readonly Bucket[];
  /** 'device': collectives on the backend's buffers (nccl + cuda); 'host': on host copies. */
  readonly path: 'host' | 'device';
  private readonly overlap: boolean;
  private readonly f32: boolean;
  private readonly N: number;
  private accHost: Host | null = null;
  private accDev: Buf | null = null;
  private pending: Promise<unknown>[] = [];
  /** Every rank's [loss of each round..., stop], in rank order (one exchange per step). */
  private infos: Float64Array[][] = [];
  private ownLosses: number[] = [];
  private rounds = 0;
  private round = -1;
  private next = 0;
  private waited = 0;
  /** Sum mode, host path: each bucket's reduced host copy, uploaded by finish(). */
  private sums: { b: Bucket; host: Host }[] = [];

  constructor(
    private readonly comm: Communicator,
    private readonly be: Backend<Buf>,
    private readonly model: ReducerModel<Buf>,
    private readonly opts: ReducerOptions,
  ) {
    if (opts.mode !== 'ordered' && opts.mode !== 'sum') throw new UsageError(`reduce must be 'ordered' or 'sum', got '${String(opts.mode)}'`);
    const ready: number[] = [];
    for (let l = model.config.nLayer - 1; l >= 0; l--) ready.push(model.layerStart(l));
    ready.push(0);
    this.buckets = gradientBuckets(ready, model.numParameters, opts.bucketBytes);
    this.overlap = opts.bucketBytes > 0;
    this.f32 = be.dtype === 'f32' && typeof (be as { downloadF32?: unknown }).downloadF32 === 'function';
    this.N = comm.worldSize;
    this.path = opts.device !== false && comm.device !== undefined && comm.device.backend === be.name ? 'device' : 'host';
  }

  /** Start a step of `rounds` micro-batches per rank. */
  begin(rounds: number): void {
    if (!Number.isInteger(rounds) || rounds < 1) throw new UsageError(`rounds must be a positive integer, got ${rounds}`);
    this.rounds = rounds;
    this.round = -1;
    this.pending = [];
    this.infos = [];
    this.ownLosses = [];
    this.sums = [];
    this.waited = 0;
    const P = this.model.numParameters;
    if (this.opts.mode === 'ordered' && this.path === 'host') (this.accHost ??= this.f32 ? new Float32Array(P) : new Float64Array(P)).fill(0);
    else this.be.fill((this.accDev ??= this.be.alloc(P)), 0);
  }

  /** Before a micro-batch's backward (after zeroGrad): the callback to hand LanguageModel.backward. */
  startRound(): (from: number) => void {
    if (this.round + 1 >= this.rounds) throw new UsageError(`startRound: the step has ${this.rounds} rounds`);
    this.round++;
    this.next = 0;
    return (from) => this.ready(from);
  }

  /** After the backward: this rank's loss and stop request; without overlap, waits for the round's collectives. */
  async endRound(loss: number, stop: boolean): Promise<void> {
    this.ready(0);
    const last = this.round === this.rounds - 1;
    this.ownLosses.push(loss);
    if (this.opts.mode === 'sum' && !last) this.be.add(this.accDev!, this.accDev!, this.model.grads);
    // one exchange of the losses and stop requests per step, after the last bucket: it is a host
    // collective, and on NCCL it waits for the device collectives before it, so an exchange per
    // micro-batch would hold the next micro-batch back until this one's last bucket is reduced
    if (last) this.gatherInfo(new Float64Array([...this.ownLosses, stop ? 1 : 0]));
    // the next micro-batch's zeroGrad must not overwrite gradients NCCL still reads
    if (this.path === 'device') this.comm.device!.join();
    if (!this.overlap) await this.wait();
  }

  /** Wait for every collective of the step; the step's gradient sum is then in model.grads. */
  async finish(): Promise<ReducedStep> {
    if (this.round !== this.rounds - 1) throw new UsageError(`finish: ${this.round + 1} of ${this.rounds} rounds done`);
    await this.wait();
    const g = this.model.grads;
    if (this.opts.mode === 'ordered') {
      if (this.path === 'host') this.be.upload(g, this.accHost!);
      else this.be.copy(g, this.accDev!);
    } else if (this.path === 'host') {
      for (const { b, host } of this.sums) this.be.upload(this.be.view(g, b.from, b.to - b.from), host);
    } else this.be.copy(g, this.accDev!);
    // the losses in micro-batch order: round by round, rank by rank within a round
    const all = this.infos[0];
    let lossSum = 0;
    for (let r = 0; r < this.rounds; r++) for (const v of all) lossSum += v[r];
    const stop = all.some((v) => v[this.rounds] !== 0);
    return { lossSum, stop, commSeconds: this.waited };
  }

  free(): void {
    if (this.accDev !== null) this.be.free(this.accDev);
    this.accDev = null;
    this.accHost = null;
  }

  /** The backward says [from, P) is final: start every bucket inside it not started yet. */
  private ready(from: number): void {
    while (this.next < this.buckets.length && this.buckets[this.next].from >= from) this.send(this.buckets[this.next++]);
  }

  private send(b: Bucket): void {
    const be = this.be,
      n = b.to - b.from,
      grad = be.view(this.model.grads, b.from, n);
    if (this.opts.mode === 'ordered') {
      if (this.path === 'device') this.comm.device!.allReduceOrdered(be.view(this.accDev!, b.from, n), grad);
      else this.pending.push(this.comm.allReduceOrdered(this.accHost!.subarray(b.from, b.to), this.download(grad)));
      return;
    }
    // sum: each rank's own micro-batches are added on the backend; the last round sends the total
    if (this.round < this.rounds - 1) return;
    const acc = be.view(this.accDev!, b.from, n);
    be.add(acc, acc, grad);
    if (this.path === 'device') this.comm.device!.allReduceSum(acc);
    else {
      const host = this.download(acc);
      this.sums.push({ b, host });
      this.pending.push(this.comm.allReduceSum(host));
    }
  }

  private download(b: Buf): Host {
    return this.f32 ? (this.be as unknown as { downloadF32(b: Buf): Float32Array }).downloadF32(b) : this.be.download(b);
  }

  private gatherInfo(info: Float64Array): void {
    const i = this.infos.length;
    this.infos.push([]);
    this.pending.push(
      this.comm.allGather(new Uint8Array(info.buffer)).then((parts) => {
        this.infos[i] = parts.map((p) => new Float64Array(p.buffer.slice(p.byteOffset, p.byteOffset + p.byteLength)));
      }),
    );
  }

  private async wait(): Promise<void> {
    const t = performance.now();
    const p = this.pending;
    this.pending = [];
    try {
      await Promise.all(p);
    } finally {
      this.waited += (performance.now() - t) / 1000;
    }
  }
}
