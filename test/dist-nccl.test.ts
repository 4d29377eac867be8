// The nccl communicator on one GPU (npm run test:gpu): NCCL loads through dlopen, a 1-rank
// communicator opens from torchrun-style variables, and its collectives return what one rank must
// (sum over one rank = the input; ordered reduction = acc + contribution in float32; gathers and
// broadcast = the bytes). Without a GPU or NCCL it skips with the reason; with
// CRATE_TS_REQUIRE_CUDA=1 a missing GPU fails instead (a missing NCCL still skips, named).
import { describe, it, expect } from 'vitest';
import { tryLoadAddon } from '../src/backend/loader.js';
import { launchInfo } from '../src/distributed/launch.js';
import { NcclCommunicator } from '../src/distributed/nccl.js';
import { openCommunicator } from '../src/distributed/select.js';

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
    await expect(openCommunicator('nccl', { backend: 'cpu', env: {} })).rejects.toThrow(/--dist nccl needs --backend cuda .*use --dist mpi/);
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
});
