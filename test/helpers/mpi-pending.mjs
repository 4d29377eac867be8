#!/usr/bin/env node
// Run under mpirun by test/dist-overlap.test.ts: starts many collectives of different sizes and kinds
// without waiting for any (as the trainer starts one per gradient bucket during the backward), then
// waits for all and checks every result against what the ranks sent. Prints "ok <count>" or the
// first wrong result, one line per rank.
import { register } from 'node:module';

register('./ts-hooks.mjs', import.meta.url);
const { MpiCommunicator } = await import('../../src/distributed/mpi.ts');
const c = await MpiCommunicator.open();
const N = c.worldSize,
  me = c.rank,
  COUNT = Number(process.argv[2] ?? 200);
const value = (rank, i, k) => Math.fround(rank * 0.5 + i + k / 1024);
const checks = [];
for (let i = 0; i < COUNT; i++) {
  const n = 1 + ((i * 7919) % 3001);
  if (i % 3 === 2) {
    const bytes = new Uint8Array(1 + ((i + me) % 17)).fill((i + me) & 255);
    checks.push(
      c.allGather(bytes).then((parts) => {
        for (let r = 0; r < N; r++)
          if (parts[r].length !== 1 + ((i + r) % 17) || parts[r][0] !== ((i + r) & 255)) return `collective ${i}: rank ${r}'s bytes are wrong`;
        return null;
      }),
    );
  } else {
    const acc = new Float32Array(n).fill(1);
    const mine = Float32Array.from({ length: n }, (_, k) => value(me, i, k));
    checks.push(
      c.allReduceOrdered(acc, mine).then(() => {
        for (let k = 0; k < n; k++) {
          let want = Math.fround(1);
          for (let r = 0; r < N; r++) want = Math.fround(want + value(r, i, k));
          if (acc[k] !== want) return `collective ${i} (${n} floats): element ${k} is ${acc[k]}, expected ${want}`;
        }
        return null;
      }),
    );
  }
}
const errors = (await Promise.allSettled(checks)).map((s) => (s.status === 'rejected' ? String(s.reason?.message ?? s.reason) : s.value)).filter((e) => e);
process.stdout.write(`rank ${me}: ${errors.length ? errors[0] : `ok ${COUNT}`}\n`);
c.close();
