// The nccl communicator on one GPU (npm run test:gpu): NCCL loads through dlopen, a 1-rank
// communicator opens from torchrun-style variables, and its collectives return what one rank must
// (sum over one rank = the input; ordered reduction = acc + contribution in float32; gathers and
// broadcast = the bytes). The device path: the cuda backend's buffers (views at an offset too) are
// reduced in place, with no byte staged through the host (NCCL's counters), bitwise as the host path;
// and the trainer's bucketed reduction of a model's gradient takes it and gives the host path's bits.
// Without a GPU or NCCL it skips with the reason; with CRATE_TS_REQUIRE_CUDA=1 a missing GPU fails
// instead (a missing NCCL still skips, named).
import { describe, it, expect } from 'vitest';
import { tryLoadAddon } from '../src/backend/loader.js';
import { launchInfo } from '../src/distributed/launch.js';
import { NcclCommunicator } from '../src/distributed/nccl.js';
import { openCommunicator } from '../src/distributed/select.js';
import { GradientReducer } from '../src/distributed/reducer.js';
import { CudaBackend, type CudaBuf } from '../src/backend/cuda.js';
import { LanguageModel } from '../src/model/lm.js';
import { makeConfig } from '../src/model/config.js';
import { Rng } from '../src/util/rng.js';
import { cliMessage } from '../src/cli/flags.js';

const REQUIRE = process.env.CRATE_TS_REQUIRE_CUDA === '1';
const cuda = (
  tryLoadAddon().addon as unknown as {
    cuda?: { available(): { available: boolean; reason: string }; nccl_load?: () => { loaded: boolean; reason: string } };
  } | null
)?.cuda;
const gpu = cuda?.available();
const noGpu = !cuda ? 'the addon has no CUDA build' : !gpu?.available ? `no GPU: ${gpu?.reason}` : null;
const nccl = !noGpu && cuda?.nccl_load ? cuda.nccl_load() : null;
const skip = noGpu ?? (nccl === null ? 'the CUDA addon has no NCCL functions (rebuild)' : nccl.loaded ? null : nccl.reason);
if (skip) console.warn(`dist-nccl tests skipped: ${skip}`);

describe('nccl communicator without a GPU or NCCL', () => {
  it('--dist nccl on the cpu backend is one UsageError naming the fix', async () => {
    const e = await openCommunicator('nccl', { backend: 'cpu', env: {} }).then(
      () => null,
      (x: Error) => x,
    );
    expect(e?.message).toMatch(/^dist nccl needs backend cuda .*use dist mpi/);
    expect(cliMessage(e!)).toMatch(/^--dist nccl needs --backend cuda .*use --dist mpi/);
  });
  it.runIf(REQUIRE)('a GPU is there (CRATE_TS_REQUIRE_CUDA=1)', () => {
    expect(noGpu).toBeNull();
  });
});

describe.skipIf(skip !== null)('nccl communicator on one GPU', () => {
  it('opens from torchrun-style variables and its collectives are exact on one rank', async () => {
    const env = { RANK: '0', WORLD_SIZE: '1', LOCAL_RANK: '0', MASTER_ADDR: '127.0.0.1', MASTER_PORT: '29517' };
    const c = await NcclCommunicator.open(launchInfo(env), env);
    try {
      expect([c.rank, c.worldSize, c.localRank, c.kind]).toEqual([0, 1, 0, 'nccl']);
      const x = new Float32Array([1.5, -2.25, 3e-8, 7]);
      await c.allReduceSum(x);
      expect(Array.from(x)).toEqual([1.5, -2.25, Math.fround(3e-8), 7]);
      const acc = new Float32Array([0.1, 0.2, 0.3, 0.4]);
      await c.allReduceOrdered(acc, new Float32Array([1, 2, 3, 4]));
      expect(Array.from(acc)).toEqual([0.1, 0.2, 0.3, 0.4].map((v, i) => Math.fround(Math.fround(v) + (i + 1))));
      const g = await c.allGather(new Uint8Array([9, 8, 7]));
      expect(g.map((b) => Array.from(b))).toEqual([[9, 8, 7]]);
      const b = new Uint8Array([4, 5, 6]);
      await c.broadcast(b, 0);
      expect(Array.from(b)).toEqual([4, 5, 6]);
      await c.barrier();
    } finally {
      c.close();
    }
  });
  const env = { RANK: '0', WORLD_SIZE: '1', LOCAL_RANK: '0', MASTER_ADDR: '127.0.0.1', MASTER_PORT: '29518' };
  const floats = (n: number, seed: number) => {
    const rng = new Rng(seed);
    return Float32Array.from({ length: n }, () => rng.normal());
  };
  const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');

  it('device path: the cuda buffers are reduced in place, nothing staged through the host, bitwise the host path', async () => {
    const c = await NcclCommunicator.open(launchInfo(env), env);
    const be = new CudaBackend();
    const P = 10_007,
      OFF = 13;
    const acc0 = floats(P, 1),
      contrib = floats(P, 2);
    const bufs: CudaBuf[] = [];
    try {
      expect(c.device.backend).toBe('cuda');
      // host path
      const accHost = Float32Array.from(acc0);
      await c.allReduceOrdered(accHost, contrib);
      // device path, on views at an offset
      const accD = be.alloc(P + OFF),
        gD = be.alloc(P + OFF),
        sumD = be.alloc(P + OFF);
      bufs.push(accD, gD, sumD);
      be.upload(be.view(accD, OFF, P), acc0);
      be.upload(be.view(gD, OFF, P), contrib);
      be.upload(be.view(sumD, OFF, P), contrib);
      const before = c.counters();
      c.device.allReduceOrdered(be.view(accD, OFF, P), be.view(gD, OFF, P));
      c.device.allReduceSum(be.view(sumD, OFF, P));
      c.device.join();
      const after = c.counters();
      expect(after.deviceCalls - before.deviceCalls).toBe(2);
      expect(after.deviceBytes - before.deviceBytes).toBe(2 * 4 * P);
      expect(after.hostCalls).toBe(before.hostCalls);
      expect(after.hostBytes).toBe(before.hostBytes);
      expect(bits(be.downloadF32(be.view(accD, OFF, P)))).toBe(bits(accHost));
      expect(bits(be.downloadF32(be.view(sumD, OFF, P)))).toBe(bits(contrib)); // one rank: the sum is the input
      expect(Array.from(be.downloadF32(be.view(accD, 0, OFF)))).toEqual(new Array(OFF).fill(0)); // outside the view: untouched
      expect(() => c.device.allReduceOrdered(be.view(accD, 0, 8), be.view(accD, 4, 8))).toThrow(/acc overlaps contribution/);
    } finally {
      for (const b of bufs) be.free(b);
      c.close();
    }
  });

  it("the trainer's bucketed reduction of a model's gradient takes the device path, with the host path's bits", async () => {
    const c = await NcclCommunicator.open(launchInfo(env), env);
    const be = new CudaBackend();
    const cfg = makeConfig('char-tiny', { nLayer: 3, nEmbd: 32, nHead: 2, blockSize: 16 });
    const rng = new Rng(5);
    const ids = () => Int32Array.from({ length: 2 * 8 }, () => Math.floor(rng.uniform() * cfg.vocabSize));
    const data = Array.from({ length: 2 }, () => ({ x: ids(), y: ids() }));
    const run = async (device: boolean) => {
      const m = new LanguageModel(be, cfg, { seed: 3 });
      const red = new GradientReducer<CudaBuf>(c, be, m, { mode: 'ordered', bucketBytes: 1, device });
      const before = c.counters();
      red.begin(data.length);
      for (const b of data) {
        m.zeroGrad();
        const loss = m.forward(b.x, 2, 8, b.y, { returnLogits: false, gradScale: 0.5 }).loss as number;
        m.backward(red.startRound());
        await red.endRound(loss, false);
      }
      const r = await red.finish();
      const after = c.counters();
      const out = { path: red.path, grads: bits(be.downloadF32(m.grads)), loss: r.lossSum, hostBytes: after.hostBytes - before.hostBytes, P: m.numParameters };
      red.free();
      m.free();
      return out;
    };
    try {
      const dev = await run(true),
        host = await run(false);
      expect(dev.path).toBe('device');
      expect(host.path).toBe('host');
      expect(dev.grads).toBe(host.grads);
      expect(dev.loss).toBe(host.loss);
      // the device path stages only the loss records (16 bytes per rank and round, there and back)
      expect(dev.hostBytes).toBeLessThan(200);
      expect(host.hostBytes).toBeGreaterThanOrEqual(2 * 2 * 4 * host.P);
    } finally {
      c.close();
    }
  });
});
