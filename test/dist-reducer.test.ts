// The bucketed gradient reduction (src/distributed/reducer.ts) in one process: the buckets are whole
// blocks from the top down; each bucket's reduction starts as soon as the backward has finished it
// (before the blocks below are computed); the result is bitwise the plain fold over micro-batches
// whatever the bucket size, with and without overlap, in both modes and on both paths (host arrays,
// and a communicator with device collectives; here a stand-in on the cpu backend's buffers, since
// the real one, NCCL on the cuda backend, needs a GPU: test/dist-nccl.test.ts). The MPI runs are in
// test/dist-overlap.test.ts.
import { describe, it, expect } from 'vitest';
import { CpuBackend, type NativeBuf } from '../src/backend/cpu.js';
import { LanguageModel } from '../src/model/lm.js';
import { makeConfig, type ModelConfig } from '../src/model/config.js';
import { Rng } from '../src/util/rng.js';
import { SingleCommunicator, foldInto, type Communicator } from '../src/distributed/communicator.js';
import { GradientReducer, gradientBuckets, type ReducerOptions } from '../src/distributed/reducer.js';

const be = new CpuBackend({ threads: 1 });
const K = 3,
  B = 2,
  T = 8;

function batches(cfg: ModelConfig): { x: Int32Array; y: Int32Array }[] {
  const rng = new Rng(7);
  return Array.from({ length: K }, () => ({
    x: Int32Array.from({ length: B * T }, () => Math.floor(rng.uniform() * cfg.vocabSize)),
    y: Int32Array.from({ length: B * T }, () => Math.floor(rng.uniform() * cfg.vocabSize)),
  }));
}

const configs: [string, ModelConfig][] = [
  ['crate', makeConfig('char-tiny', { arch: 'crate', nLayer: 3, nEmbd: 32, nHead: 2, blockSize: 16 })],
  ['crate-complete', makeConfig('char-tiny', { arch: 'crate-complete', nLayer: 3, nEmbd: 32, nHead: 2, blockSize: 16 })],
  ['gpt2', makeConfig('char-tiny', { arch: 'gpt2', nLayer: 3, nEmbd: 32, nHead: 2, blockSize: 16 })],
];

/** The fold one process computes: acc = ((0 + g0) + g1) + g2 in float32, and the losses. */
function reference(cfg: ModelConfig): { grads: Float32Array; loss: number } {
  const m = new LanguageModel(be, cfg, { seed: 3 });
  const acc = new Float32Array(m.numParameters);
  let loss = 0;
  for (const b of batches(cfg)) {
    m.zeroGrad();
    loss += m.forward(b.x, B, T, b.y, { returnLogits: false, gradScale: 1 / K }).loss as number;
    m.backward();
    foldInto(acc, [be.downloadF32(m.grads)]);
  }
  m.free();
  return { grads: acc, loss };
}

/** One step through a reducer; `log` sees every backward report (the hook) and may be read by the communicator. */
async function reduced(cfg: ModelConfig, comm: Communicator, opts: ReducerOptions, hookLog: number[] = []) {
  const m = new LanguageModel(be, cfg, { seed: 3 });
  const red = new GradientReducer<NativeBuf>(comm, be, m, opts);
  red.begin(K);
  for (const b of batches(cfg)) {
    m.zeroGrad();
    const loss = m.forward(b.x, B, T, b.y, { returnLogits: false, gradScale: 1 / K }).loss as number;
    const hook = red.startRound();
    m.backward((from) => {
      hookLog.push(from);
      hook(from);
    });
    await red.endRound(loss, false);
  }
  const r = await red.finish();
  const grads = be.downloadF32(m.grads);
  const out = { grads, loss: r.lossSum, path: red.path, buckets: red.buckets, starts: m.layerStart.bind(m), P: m.numParameters };
  red.free();
  m.free();
  return out;
}

/** One rank whose collectives run later (a timer), logging when each reduction was started. */
class DeferredCommunicator extends SingleCommunicator {
  started: { from: number; n: number; hookCalls: number }[] = [];
  constructor(private readonly hookLog: number[]) {
    super();
  }
  override allReduceOrdered(acc: Float32Array | Float64Array, c: Float32Array | Float64Array): Promise<void> {
    this.started.push({ from: acc.byteOffset / 4, n: acc.length, hookCalls: this.hookLog.length });
    return new Promise((resolve) =>
      setTimeout(() => {
        foldInto(acc, [c]);
        resolve();
      }, 1),
    );
  }
  override allReduceSum(...a: unknown[]): Promise<void> {
    const buf = a[0] as Float32Array;
    this.started.push({ from: -1, n: buf.length, hookCalls: this.hookLog.length });
    return new Promise((resolve) => setTimeout(resolve, 1));
  }
}

const same = (a: Float32Array, b: Float32Array) => Buffer.compare(Buffer.from(a.buffer), Buffer.from(b.buffer)) === 0;

describe('gradientBuckets', () => {
  it('joins whole blocks from the top down until a bucket holds bucketBytes; the last ends at 0', () => {
    // blocks start at 100, 200, 300; P = 450 (ln_f at the end); wte + wpe = [0, 100)
    const ready = [300, 200, 100, 0];
    expect(gradientBuckets(ready, 450, 1)).toEqual([
      { from: 300, to: 450 },
      { from: 200, to: 300 },
      { from: 100, to: 200 },
      { from: 0, to: 100 },
    ]);
    expect(gradientBuckets(ready, 450, 4 * 200)).toEqual([
      { from: 200, to: 450 },
      { from: 0, to: 200 },
    ]);
    expect(gradientBuckets(ready, 450, 4 * 10_000)).toEqual([{ from: 0, to: 450 }]);
    expect(gradientBuckets(ready, 450, 0)).toEqual([{ from: 0, to: 450 }]);
    expect(() => gradientBuckets(ready, 450, -1)).toThrow(/bucketBytes must be a number >= 0/);
    expect(() => gradientBuckets([300, 100], 450, 1)).toThrow(/must end with 0/);
  });
});

describe.each(configs)('bucketed reduction, %s', (_name, cfg) => {
  const ref = reference(cfg);

  it('ordered, host arrays: every bucket size gives bitwise the one-process fold and its losses', async () => {
    for (const bucketBytes of [0, 1, 16 * 1024, 1 << 30]) {
      const r = await reduced(cfg, new SingleCommunicator(), { mode: 'ordered', bucketBytes });
      expect(r.path).toBe('host');
      expect(same(r.grads, ref.grads), `bucketBytes ${bucketBytes}`).toBe(true);
      expect(r.loss).toBe(ref.loss);
    }
  });

  it('a bucket starts when the backward has finished it, before the blocks below run; the sum waits for all', async () => {
    const hookLog: number[] = [];
    const comm = new DeferredCommunicator(hookLog);
    const r = await reduced(cfg, comm, { mode: 'ordered', bucketBytes: 1 }, hookLog);
    expect(same(r.grads, ref.grads)).toBe(true);
    // 3 blocks: buckets [block 2 + ln_f], [block 1], [block 0], [wte + wpe], started in that order in every round
    expect(r.buckets.map((b) => b.from)).toEqual([r.starts(2), r.starts(1), r.starts(0), 0]);
    expect(r.buckets[0].to).toBe(r.P);
    const round0 = comm.started.slice(0, 4);
    expect(round0.map((s) => s.from)).toEqual([r.starts(2), r.starts(1), r.starts(0), 0]);
    // the top bucket started after the first report (block 2 done) while blocks 1 and 0 were still to come
    expect(round0.map((s) => s.hookCalls)).toEqual([1, 2, 3, 4]);
    expect(comm.started).toHaveLength(4 * K);
  });

  it('without overlap (bucketBytes 0): one reduction of the whole buffer after each backward', async () => {
    const hookLog: number[] = [];
    const comm = new DeferredCommunicator(hookLog);
    const r = await reduced(cfg, comm, { mode: 'ordered', bucketBytes: 0 }, hookLog);
    expect(same(r.grads, ref.grads)).toBe(true);
    expect(comm.started.map((s) => [s.from, s.n, s.hookCalls])).toEqual([
      [0, r.P, 4],
      [0, r.P, 8],
      [0, r.P, 12],
    ]);
  });

  it('sum mode: the last round sends each bucket of the rank total; bitwise equal with and without overlap', async () => {
    const a = await reduced(cfg, new SingleCommunicator(), { mode: 'sum', bucketBytes: 0 });
    const hookLog: number[] = [];
    const comm = new DeferredCommunicator(hookLog);
    const b = await reduced(cfg, comm, { mode: 'sum', bucketBytes: 1 }, hookLog);
    expect(same(a.grads, ref.grads)).toBe(true);
    expect(same(b.grads, ref.grads)).toBe(true);
    expect(a.loss).toBe(ref.loss);
    expect(b.loss).toBe(ref.loss);
    // only the last round sends, one all-reduce per bucket, each right after the backward finished it
    expect(comm.started.map((s) => s.hookCalls)).toEqual([9, 10, 11, 12]);
  });

  it('device collectives (a stand-in on the cpu buffers): no host copy of the gradient, the same bits', async () => {
    let hostCalls = 0,
      joins = 0,
      deviceCalls = 0;
    const dev = new (class extends SingleCommunicator {
      readonly device = {
        backend: 'cpu',
        allReduceSum: () => {
          deviceCalls++;
        },
        allReduceOrdered: (acc: unknown, c: unknown) => {
          deviceCalls++;
          be.add(acc as NativeBuf, acc as NativeBuf, c as NativeBuf);
        },
        join: () => {
          joins++;
        },
      };
      override allReduceOrdered(acc: Float32Array | Float64Array, c: Float32Array | Float64Array): Promise<void> {
        hostCalls++;
        return super.allReduceOrdered(acc, c);
      }
      override allReduceSum(): Promise<void> {
        hostCalls++;
        return Promise.resolve();
      }
    })();
    for (const mode of ['ordered', 'sum'] as const) {
      hostCalls = joins = deviceCalls = 0;
      const r = await reduced(cfg, dev, { mode, bucketBytes: 1 });
      expect(r.path).toBe('device');
      expect(same(r.grads, ref.grads), mode).toBe(true);
      expect(hostCalls).toBe(0);
      expect(deviceCalls).toBe(mode === 'ordered' ? 4 * K : 4);
      expect(joins).toBe(K);
    }
    // the same communicator, device collectives declined: the host path
    hostCalls = 0;
    const h = await reduced(cfg, dev, { mode: 'ordered', bucketBytes: 1, device: false });
    expect(h.path).toBe('host');
    expect(hostCalls).toBe(4 * K);
    expect(same(h.grads, ref.grads)).toBe(true);
  });
});
