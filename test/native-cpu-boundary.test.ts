// Bad input at the native boundary of the cpu backend: every call either returns or throws a
// JavaScript Error that names the function and the argument; nothing crashes the process, nothing
// writes out of bounds, nothing leaks. Checked both through CpuBackend (TypeScript-side checks)
// and straight against the addon (the C++-side checks that must hold on their own). The fuzz of every
// function and the getter probes run in a child process: test/native-hardening.test.ts.
import { describe, test, expect } from 'vitest';
import { tryLoadAddon, type NativeAddon, type NativeBufRef } from '../src/backend/loader.js';
import { CpuBackend, NativeBuf } from '../src/backend/cpu.js';

const { addon, reason } = tryLoadAddon();
const suite = addon ? describe : describe.skip;
const skipNote = addon ? '' : ` (skipped: ${reason})`;

/** Expect fn to throw an Error whose message matches every pattern. */
function throwsNaming(fn: () => unknown, ...patterns: RegExp[]): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, 'expected an Error').toBeInstanceOf(Error);
  for (const p of patterns) expect((err as Error).message).toMatch(p);
}

suite(`cpu: native boundary rejects bad input${skipNote}`, () => {
  const n = addon as NativeAddon;
  const cpu = addon ? new CpuBackend() : (null as unknown as CpuBackend);
  const mk = (len: number): NativeBufRef => ({ handle: n.alloc(len), offset: 0, length: len });
  const release = (...bs: NativeBufRef[]) => bs.forEach((b) => n.free(b.handle));

  test('cpu: wrong element counts name the function, the argument and the expected product', () => {
    const out = mk(12),
      inp = mk(8),
      w = mk(100);
    throwsNaming(() => n.linear_forward(out, inp, w, null, 4, 2, 3), /^linear_forward: weight has 100 elements, expected OC\*C = 6$/);
    throwsNaming(() => n.linear_forward(mk(5), inp, mk(6), null, 4, 2, 3), /linear_forward: out has 5 elements, expected N\*OC = 12/);
    throwsNaming(() => n.linear_forward(out, inp, mk(6), mk(2), 4, 2, 3), /linear_forward: bias has 2 elements, expected OC = 3/);
    throwsNaming(() => cpu.linearForward(cpu.alloc(12), cpu.alloc(8), cpu.alloc(7), null, 4, 2, 3), /linear_forward: weight has 7 elements/);
    throwsNaming(() => n.mssa_forward(mk(24), mk(3), mk(24), 1, 4, 6, 2), /mssa_forward: saved has 3 elements, expected B\*NH\*T = 8/);
    throwsNaming(() => n.mssa_forward(mk(20), mk(4), mk(20), 1, 4, 5, 2), /mssa_forward: C = 5 is not divisible by NH = 2/);
    throwsNaming(() => n.ista_forward(mk(6), mk(5), mk(6), mk(12), 2, 3, 4, 0.1, 0.1, 2), /ista_forward: codes has 5 elements, expected steps\*N\*H = 16/);
    throwsNaming(() => n.layernorm_forward(mk(6), mk(2), mk(3), mk(6), mk(3), null, 2, 3, 1e-5), /layernorm_forward: rstd has 3 elements, expected N = 2/);
    throwsNaming(() => n.adamw_update(mk(4), mk(4), mk(3), mk(4), 1e-3, 0.9, 0.95, 1e-8, 0, 1), /adamw_update: m has 3 elements, expected size\(param\) = 4/);
    throwsNaming(() => n.add(mk(4), mk(4), mk(5)), /add: b has 5 elements/);
    release(out, inp, w);
  });

  test('cpu: token ids and targets out of range are rejected before any memory is read', () => {
    const C = 4,
      V = 5,
      T = 3;
    const out = cpu.alloc(2 * T * C),
      wte = cpu.alloc(V * C),
      wpe = cpu.alloc(T * C);
    throwsNaming(
      () => cpu.embeddingForward(out, Int32Array.of(0, 1, 2, 3, 4, 5), wte, wpe, 2, T, C),
      /embedding_forward: idx\[5\] = 5 is out of range \[0, 5\)/,
    );
    throwsNaming(() => cpu.embeddingForward(out, Int32Array.of(0, -1, 2, 3, 4, 0), wte, wpe, 2, T, C), /idx\[1\] = -1 is out of range/);
    throwsNaming(
      () => cpu.embeddingBackward(wte, wpe, out, Int32Array.of(0, 1, 2, 3, 4, 2 ** 31 - 1), 2, T, C),
      /embedding_backward: idx\[5\] = 2147483647 is out of range/,
    );
    throwsNaming(() => cpu.embeddingForward(out, Int32Array.of(0, 1, 2, 3), wte, wpe, 2, T, C), /embedding_forward: idx has 4 elements, expected B\*T = 6/);
    throwsNaming(
      () => cpu.embeddingForward(cpu.alloc(4 * C * 2), Int32Array.of(0, 1, 2, 3, 4, 0, 1, 2), wte, wpe, 2, 4, C),
      /embedding_forward: wpe has 12 elements, expected maxT\*C with maxT >= T = 4/,
    );
    const logits = cpu.alloc(2 * V);
    expect(cpu.crossEntropyForward(null, logits, Int32Array.of(-1, 4), 2, V, 1)).toBeCloseTo(Math.log(V), 6);
    throwsNaming(
      () => cpu.crossEntropyForward(null, logits, Int32Array.of(-2, 4), 2, V, 1),
      /cross_entropy_forward: targets\[0\] = -2 is out of range \[-1, 5\)/,
    );
    throwsNaming(() => cpu.crossEntropyForward(null, logits, Int32Array.of(0, 5), 2, V, 1), /targets\[1\] = 5 is out of range/);
    for (const b of [out, wte, wpe, logits]) cpu.free(b);
  });

  test('cpu: freed buffers, double free, views outside their buffer, overlapping outputs', () => {
    const before = cpu.liveBuffers();
    const a = cpu.alloc(10),
      b = cpu.alloc(10);
    cpu.free(a);
    throwsNaming(() => cpu.sumSquares(a), /sum_squares: buf refers to buffer \d+, which was freed or never allocated/);
    throwsNaming(() => cpu.free(a), /free: buffer \d+ was already freed/);
    throwsNaming(() => cpu.add(b, a, b), /add: a refers to buffer/);
    throwsNaming(() => cpu.view(b, 5, 6), /view: range \[5, 11\) is outside a buffer of 10 elements/);
    throwsNaming(() => cpu.free(cpu.view(b, 0, 10)), /free: buf is a view/);
    // A forged view past the allocation is caught by the addon itself.
    throwsNaming(() => n.sum_squares({ handle: b.handle, offset: 8, length: 5 }), /sum_squares: buf view \[8, 13\) lies outside its buffer of 10 elements/);
    throwsNaming(() => n.fill({ handle: b.handle, offset: -1, length: 2 }, 0), /fill: buf\.offset must be a non-negative integer, got -1/);
    throwsNaming(() => n.fill({ handle: 123456789, offset: 0, length: 1 }, 0), /fill: buf refers to buffer 123456789, which was freed or never allocated/);
    // Outputs may not overlap inputs (except exact aliases in elementwise ops).
    const x = cpu.alloc(12),
      w4 = cpu.alloc(4);
    throwsNaming(() => cpu.linearForward(cpu.view(x, 0, 4), cpu.view(x, 2, 4), w4, null, 2, 2, 2), /linear_forward: out overlaps inp/);
    cpu.add(cpu.view(x, 0, 4), cpu.view(x, 0, 4), cpu.view(x, 4, 4)); // exact alias is fine
    throwsNaming(() => cpu.add(cpu.view(x, 0, 4), cpu.view(x, 1, 4), cpu.view(x, 4, 4)), /add: out overlaps a \(only an exact alias is allowed\)/);
    for (const buf of [b, x, w4]) cpu.free(buf);
    expect(cpu.liveBuffers()).toBe(before);
  });

  test('cpu: wrong argument types and counts, non-integer and NaN sizes', () => {
    const b = mk(6);
    throwsNaming(() => (n.linear_forward as unknown as (...a: unknown[]) => void)(b, b, b), /linear_forward: expected 7 arguments, got 3/);
    throwsNaming(() => n.linear_forward(b, b, b, null, 2.5, 2, 3), /linear_forward: N must be an integer, got 2.5/);
    throwsNaming(() => n.linear_forward(b, b, b, null, NaN, 2, 3), /linear_forward: N must be an integer, got NaN/);
    throwsNaming(() => n.linear_forward(b, b, b, null, 2, 0, 3), /linear_forward: C must be >= 1, got 0/);
    throwsNaming(() => n.linear_forward(b, b, b, null, 2, Infinity, 3), /C must be an integer, got Infinity/);
    throwsNaming(
      () => (n.linear_forward as unknown as (...a: unknown[]) => void)(b, b, b, null, '2', 2, 3),
      /linear_forward: N must be a number, got a string/,
    );
    throwsNaming(
      () => (n.linear_forward as unknown as (...a: unknown[]) => void)(b, new Float32Array(6), b, null, 2, 3, 2),
      /linear_forward: inp must be a native buffer.*got a Float32Array/,
    );
    throwsNaming(
      () => (n.embedding_forward as unknown as (...a: unknown[]) => void)(b, [0, 1], b, b, 1, 2, 3),
      /embedding_forward: idx must be an Int32Array, got an array/,
    );
    throwsNaming(
      () => (n.cross_entropy_forward as unknown as (...a: unknown[]) => void)(null, b, new Float64Array(2), 2, 3, 1),
      /cross_entropy_forward: targets must be an Int32Array, got a Float64Array/,
    );
    throwsNaming(() => n.layernorm_forward(b, mk(2), mk(2), mk(6), mk(3), null, 2, 3, NaN), /layernorm_forward: eps must be a finite number, got NaN/);
    throwsNaming(() => n.adamw_update(b, mk(6), mk(6), mk(6), 1e-3, 1, 0.95, 1e-8, 0, 1), /adamw_update: beta1 must be in \[0, 1\), got 1/);
    throwsNaming(() => n.adamw_update(b, mk(6), mk(6), mk(6), 1e-3, 0.9, 0.95, 1e-8, 0, 0), /adamw_update: step must be >= 1, got 0/);
    throwsNaming(() => n.alloc(-1), /alloc: n must be >= 0/);
    throwsNaming(() => n.upload(b, new Float64Array(5)), /upload: src has 5 elements, expected size\(dst\) = 6/);
    throwsNaming(() => (n.upload as unknown as (...a: unknown[]) => void)(b, new Int32Array(6)), /upload: src must be a Float64Array or Float32Array/);
    throwsNaming(() => n.set_threads(0), /set_threads: n must be >= 1, got 0/);
    // TypeScript-side messages for the same mistakes
    throwsNaming(
      () => cpu.linearForward({} as NativeBuf, cpu.alloc(1), cpu.alloc(1), null, 1, 1, 1),
      /linearForward: out must be a buffer of the cpu backend, got an object/,
    );
    throwsNaming(
      () => cpu.embeddingForward(cpu.alloc(1), [0] as unknown as Int32Array, cpu.alloc(1), cpu.alloc(1), 1, 1, 1),
      /embeddingForward: idx must be an Int32Array, got an array/,
    );
    throwsNaming(() => cpu.mssaForward(cpu.alloc(1), cpu.alloc(1), cpu.alloc(1), 1, 1, 1, 0.5), /mssaForward: NH must be an integer, got 0.5/);
    throwsNaming(() => cpu.upload(cpu.alloc(2), [1, 2, 3]), /upload: src has 3 elements, expected size\(dst\) = 2/);
    throwsNaming(() => cpu.setThreads(-1), /setThreads: n must be >= 1, got -1/);
  });

  test('cpu: all-ignored targets give NaN loss and zero gradient; non-finite data is reported, not hidden', () => {
    const logits = cpu.alloc(6),
      d = cpu.alloc(6);
    cpu.fill(d, 7);
    expect(cpu.crossEntropyForward(d, logits, Int32Array.of(-1, -1), 2, 3, 1)).toBeNaN();
    expect(Array.from(cpu.download(d))).toEqual([0, 0, 0, 0, 0, 0]);
    cpu.upload(logits, [0, NaN, 1, 2, 3, 4]);
    expect(cpu.crossEntropyForward(null, logits, Int32Array.of(0, 1), 2, 3, 1)).toBeNaN();
    expect(cpu.allFinite(logits)).toBe(false);
    cpu.free(logits);
    cpu.free(d);
  });
});

test('cpu: the native test files state why they skip when the addon is not built', () => {
  if (!addon) expect(reason).toMatch(/native addon/);
  else expect(reason).toBeNull();
});
