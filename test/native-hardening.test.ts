// Hardening of the native argument path, with hostile calls run in a child process
// (test/helpers/addon-child.mjs) so that a crash, a sanitizer abort or a hang fails the test instead of
// the test runner. Each case was a real defect of the binding before native/binding.h:
//  - a later argument's getter (handle/offset/length), a proxy, or a getter that detaches an Int32Array
//    could free or detach what an earlier argument had already been resolved to, and the kernel then
//    read or wrote freed memory: every field is now read into plain values first;
//  - an empty batch with a huge ISTA step count looped for that many steps; attention_saved_size
//    overflowed to a negative number: sizes are bounded and checked in int64;
//  - plus a bounded fuzz of every function of the operator table (seeded, getter probes included).
// `npm run test:asan` runs the same file against the sanitizer build of the addon.
import { describe, test, expect } from 'vitest';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { OPERATORS } from '../src/backend/op-table.js';
import { tryLoadAddon } from '../src/backend/loader.js';

const { addon, reason } = tryLoadAddon();
const suite = addon ? describe : describe.skip;

function child(args: string[], input?: string, timeout = 120_000): Record<string, unknown> {
  const r: SpawnSyncReturns<string> = spawnSync(process.execPath, ['test/helpers/addon-child.mjs', ...args], {
    input,
    encoding: 'utf8',
    timeout,
    env: process.env,
  });
  expect(r.error, `child did not finish: ${String(r.error)}`).toBeUndefined();
  expect(r.status, `child exited with status ${r.status} (signal ${r.signal}); stderr:\n${r.stderr.slice(-3000)}`).toBe(0);
  return JSON.parse(r.stdout.trim().split('\n').pop() as string) as Record<string, unknown>;
}

suite(`native argument path: hostile calls in a child process${addon ? '' : ` (skipped: ${reason})`}`, () => {
  test('a getter that frees or detaches what an earlier argument named gets an error, never freed memory', () => {
    const out = child(['probe']);
    expect(out.freeEarlierInput).toMatch(/^Error: add: a refers to buffer \d+, which was freed or never allocated$/);
    expect(out.outputUntouched).toBe(true);
    expect(out.freeEarlierOutput).toMatch(/^Error: relu_forward: out refers to buffer \d+, which was freed or never allocated$/);
    expect(out.reallocatedUntouched).toBe(true); // the kernel did not write into memory now owned by another buffer
    expect(out.freeViaOffset).toMatch(/^Error: linear_forward: inp refers to buffer \d+, which was freed or never allocated$/);
    expect(out.detachIds).toBe('RangeError: embedding_forward: idx has 0 elements, expected B*T = 6');
    expect(out.proxyReentrant).toMatch(/^Error: add: a refers to buffer \d+, which was freed/);
    expect(out.throwingGetter).toBe('Error: from the getter');
  });

  test('size arguments that used to loop for about forever, or to overflow, are refused at once', () => {
    const out = child(['hang'], undefined, 60_000);
    expect(out.istaForward).toBe('RangeError: ista_forward: steps must be <= 1024, got 1099511627776');
    expect(out.istaBackward).toBe('RangeError: ista_backward: steps must be <= 1024, got 1099511627776');
    expect(out.sgemmEmptyHugeK).toMatch(/^RangeError: sgemm: K must be <= 1099511627776 \(2\^40\), got 2199023255552$/);
    expect(out.savedSize).toMatch(
      /^RangeError: attention_saved_size: .*B\*NH\*T exceeds the largest buffer of 2\^40 elements \(B = 2097152, NH = 2097152, T = 2097152\)$/,
    );
    expect(out.ms as number).toBeLessThan(10_000);
  });

  test('a bounded fuzz: 2,500 seeded calls of every function of the table, getter probes included, each returns or names itself', () => {
    const out = child(['fuzz', '20261130', '2500'], JSON.stringify(OPERATORS)) as {
      calls: number;
      bad: string[];
      probes: number;
      probesCaught: number;
      sentinelIntact: boolean;
      leaked: number;
      perOp: Record<string, { returned: number; threw: number }>;
    };
    expect(out.bad).toEqual([]);
    expect(out.calls).toBe(2500);
    expect(out.sentinelIntact).toBe(true);
    expect(out.leaked).toBe(0);
    // the probes reached the handle lookup (not just a size error) most of the time
    expect(out.probes).toBeGreaterThan(200);
    expect(out.probesCaught).toBeGreaterThan(out.probes / 2);
    // every row both ran its kernel and rejected bad arguments at least once
    for (const op of OPERATORS) {
      expect(out.perOp[op.name]?.returned, `${op.name} never returned`).toBeGreaterThan(0);
      expect(out.perOp[op.name]?.threw, `${op.name} never threw`).toBeGreaterThan(0);
    }
  });
});

test('native hardening: the file states why it skips when the addon is not built', () => {
  if (!addon) expect(reason).toMatch(/native addon/);
  else expect(reason).toBeNull();
});
