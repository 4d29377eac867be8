import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import {
  bf16BitsToNumber,
  DTYPE_SIZE,
  DTYPES,
  f16BitsToNumber,
  MAX_HEADER_SIZE,
  numberToBF16Bits,
  numberToF16Bits,
  parseSafetensors,
  readSafetensors,
  SafetensorsError,
  serializeSafetensors,
  tensorBytes,
  toFloat64,
  toInt32,
  writeSafetensors,
  writeSafetensorsStreamed,
  type DeferredTensor,
  type DType,
  type TensorEntry,
  type TensorInput,
} from '../src/io/safetensors.js';

// ---- helpers -------------------------------------------------------------------------------------

/** Build a file by hand from the spec: u64 LE header length, header bytes, data bytes. */
function buildFile(header: string | Uint8Array | object, data: Uint8Array | number = 0, pad = true): Uint8Array {
  let h =
    typeof header === 'string' ? new TextEncoder().encode(header) : header instanceof Uint8Array ? header : new TextEncoder().encode(JSON.stringify(header));
  if (pad && h.length % 8 !== 0) {
    const padded = new Uint8Array(Math.ceil(h.length / 8) * 8).fill(0x20);
    padded.set(h);
    h = padded;
  }
  const d = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + h.length + d.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(d, 8 + h.length);
  return out;
}

/** Bytes 8.. of a file: the header JSON (without padding). */
function headerOf(bytes: Uint8Array): string {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return new TextDecoder().decode(bytes.subarray(8, 8 + n)).trimEnd();
}

/** Expect parsing to throw a SafetensorsError whose message names the source and contains `phrase`. */
function expectReject(bytes: Uint8Array, phrase: string): void {
  const source = 'model.safetensors';
  let error: unknown;
  try {
    parseSafetensors(bytes, source);
  } catch (e) {
    error = e;
  }
  expect(error, `expected rejection containing "${phrase}"`).toBeInstanceOf(SafetensorsError);
  const message = (error as Error).message;
  expect(message).toContain(source);
  expect(message).toContain(phrase);
}

const sameValues = (a: ArrayLike<unknown>, b: ArrayLike<unknown>): boolean => a.length === b.length && Array.from(a).every((v, i) => Object.is(v, b[i]));

const tmpDirs: string[] = [];
function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-safetensors-'));
  tmpDirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});

// ---- arbitraries -----------------------------------------------------------------------------------

/** Random values for a dtype, as a typed array of the reader's kind (F16/BF16: raw bits). */
function valuesArb(dtype: DType, n: number): fc.Arbitrary<ArrayLike<number | bigint>> {
  const arr = <T>(a: fc.Arbitrary<T>) => fc.array(a, { minLength: n, maxLength: n });
  const int = (min: number, max: number) => arr(fc.integer({ min, max }));
  switch (dtype) {
    case 'F64':
      return arr(fc.double()).map((v) => Float64Array.from(v));
    case 'F32':
      return arr(fc.float()).map((v) => Float32Array.from(v));
    case 'F16':
    case 'BF16':
      return int(0, 0xffff).map((v) => Uint16Array.from(v));
    case 'I64':
      return arr(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n })).map((v) => BigInt64Array.from(v));
    case 'U64':
      return arr(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })).map((v) => BigUint64Array.from(v));
    case 'I32':
      return int(-(2 ** 31), 2 ** 31 - 1).map((v) => Int32Array.from(v));
    case 'U32':
      return int(0, 2 ** 32 - 1).map((v) => Uint32Array.from(v));
    case 'I16':
      return int(-32768, 32767).map((v) => Int16Array.from(v));
    case 'U16':
      return int(0, 65535).map((v) => Uint16Array.from(v));
    case 'I8':
      return int(-128, 127).map((v) => Int8Array.from(v));
    case 'U8':
      return int(0, 255).map((v) => Uint8Array.from(v));
    case 'BOOL':
      return int(0, 1).map((v) => Uint8Array.from(v));
  }
}

/** Shapes with 0..3 dims (so [] = scalar) of size 0..4 (so zero-size tensors occur). */
const shapeArb = fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 });
const countOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** A tensor input; the data is either the typed array or (where unambiguous) a plain array. */
const tensorArb: fc.Arbitrary<TensorInput & { expected: ArrayLike<number | bigint> }> = fc
  .record({ dtype: fc.constantFrom(...DTYPES), shape: shapeArb, plain: fc.boolean() })
  .chain(({ dtype, shape, plain }) =>
    valuesArb(dtype, countOf(shape)).map((values) => ({
      dtype,
      shape,
      // A plain array of F16/BF16 would be read as numbers to round, not bit patterns.
      data: plain && dtype !== 'F16' && dtype !== 'BF16' ? Array.from(values as ArrayLike<number>) : values,
      expected: values,
    })),
  );

const nameArb = fc.string({ unit: 'binary', maxLength: 8 }).filter((s) => s !== '__metadata__');
const tensorsArb = fc.dictionary(nameArb, tensorArb, { maxKeys: 6 });
const metadataArb = fc.dictionary(fc.string({ unit: 'binary', maxLength: 6 }), fc.string({ unit: 'binary', maxLength: 12 }), { maxKeys: 4 });

// ---- round trip ------------------------------------------------------------------------------------

describe('round trip', () => {
  it('every dtype, random shapes (scalar and zero-size included) and values', () => {
    fc.assert(
      fc.property(tensorsArb, fc.boolean(), (tensors, asMap) => {
        const input = asMap ? new Map(Object.entries(tensors)) : tensors;
        const bytes = serializeSafetensors(input);
        const { tensors: out, metadata } = parseSafetensors(bytes);
        expect(metadata).toEqual({});
        expect(out.size).toBe(Object.keys(tensors).length);
        for (const [name, t] of Object.entries(tensors)) {
          const e = out.get(name)!;
          expect(e.dtype).toBe(t.dtype);
          expect(e.shape).toEqual(t.shape);
          expect(sameValues(e.data, t.expected)).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('covers each dtype at least with a scalar and a zero-size tensor', () => {
    for (const dtype of DTYPES) {
      const one = dtype === 'I64' || dtype === 'U64' ? [1n] : dtype === 'F16' || dtype === 'BF16' ? new Uint16Array([0x3c00]) : [1];
      const bytes = serializeSafetensors({ s: { dtype, shape: [], data: one }, z: { dtype, shape: [2, 0, 3], data: [] } });
      const { tensors } = parseSafetensors(bytes);
      expect(tensors.get('s')!.shape).toEqual([]);
      expect(tensors.get('s')!.data.length).toBe(1);
      expect(tensors.get('z')!.shape).toEqual([2, 0, 3]);
      expect(tensors.get('z')!.data.length).toBe(0);
    }
  });

  it('metadata round trips (unicode, "__proto__" keys, empty)', () => {
    fc.assert(
      fc.property(metadataArb, (metadata) => {
        const bytes = serializeSafetensors({ w: { dtype: 'F32', shape: [1], data: [1] } }, metadata);
        expect(parseSafetensors(bytes).metadata).toEqual(metadata);
      }),
    );
    const tricky = JSON.parse('{"__proto__": "x", "format": "pt", "emoji": "🦀"}') as Record<string, string>;
    const back = parseSafetensors(serializeSafetensors({}, tricky)).metadata;
    expect(Object.keys(back).sort()).toEqual(['__proto__', 'emoji', 'format']);
    expect(back['__proto__']).toBe('x');
    expect(Object.getPrototypeOf(back)).toBe(Object.prototype);
  });

  it('float inputs round to the dtype (F32 by fround, F16/BF16 by the encoders)', () => {
    fc.assert(
      fc.property(fc.array(fc.double(), { maxLength: 20 }), (xs) => {
        const bytes = serializeSafetensors({
          f32: { dtype: 'F32', shape: [xs.length], data: xs },
          f16: { dtype: 'F16', shape: [xs.length], data: Float64Array.from(xs) },
          bf16: { dtype: 'BF16', shape: [xs.length], data: xs },
        });
        const { tensors } = parseSafetensors(bytes);
        expect(sameValues(tensors.get('f32')!.data, xs.map(Math.fround))).toBe(true);
        expect(Array.from(tensors.get('f16')!.data as Uint16Array)).toEqual(xs.map(numberToF16Bits));
        expect(Array.from(tensors.get('bf16')!.data as Uint16Array)).toEqual(xs.map(numberToBF16Bits));
      }),
    );
  });
});

// ---- writer layout ---------------------------------------------------------------------------------

describe('writer layout', () => {
  it('orders by dtype size then name, pads the header to 8 with spaces, aligns every tensor', () => {
    fc.assert(
      fc.property(tensorsArb, metadataArb, (tensors, metadata) => {
        const bytes = serializeSafetensors(tensors, metadata);
        const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
        expect(n % 8).toBe(0);
        const raw = new TextDecoder().decode(bytes.subarray(8, 8 + n));
        expect(raw.trimEnd().length).toBeGreaterThan(0);
        expect(raw.trimEnd().endsWith('}')).toBe(true);
        const jsonBytes = new TextEncoder().encode(raw.trimEnd()).length;
        expect(n - jsonBytes).toBeLessThan(8);
        for (let i = 8 + jsonBytes; i < 8 + n; i++) expect(bytes[i]).toBe(0x20);

        const header = JSON.parse(raw) as Record<string, { dtype: DType; data_offsets: [number, number] }>;
        const names = Object.keys(tensors).sort((a, b) => DTYPE_SIZE[tensors[b].dtype] - DTYPE_SIZE[tensors[a].dtype] || (a < b ? -1 : a > b ? 1 : 0));
        let offset = 0;
        for (const name of names) {
          const [begin, end] = header[name].data_offsets;
          expect(begin).toBe(offset);
          expect((8 + n + begin) % DTYPE_SIZE[header[name].dtype]).toBe(0);
          offset = end;
        }
        expect(bytes.length).toBe(8 + n + offset);
      }),
      { numRuns: 200 },
    );
  });

  it('is deterministic: insertion order does not change the bytes; metadata comes first', () => {
    const a = { dtype: 'F16', shape: [1], data: [1] } as const;
    const b = { dtype: 'F64', shape: [2], data: [1, 2] } as const;
    const c = { dtype: 'F16', shape: [1], data: [2] } as const;
    const x = serializeSafetensors({ zeta: a, beta: b, alpha: c }, { k: 'v' });
    const y = serializeSafetensors(
      new Map<string, TensorInput>([
        ['beta', b],
        ['alpha', c],
        ['zeta', a],
      ]),
      { k: 'v' },
    );
    expect(Buffer.from(x).equals(Buffer.from(y))).toBe(true);
    expect(headerOf(x)).toBe(
      '{"__metadata__":{"k":"v"},' +
        '"beta":{"dtype":"F64","shape":[2],"data_offsets":[0,16]},' +
        '"alpha":{"dtype":"F16","shape":[1],"data_offsets":[16,18]},' +
        '"zeta":{"dtype":"F16","shape":[1],"data_offsets":[18,20]}}',
    );
  });

  it('keeps integer-like names in sorted order in the header (no JS object key reordering)', () => {
    const t = (v: number) => ({ dtype: 'U8' as const, shape: [1], data: [v] });
    const bytes = serializeSafetensors({ b: t(1), '10': t(2), '2': t(3) });
    expect(Object.keys(JSON.parse(headerOf(bytes)))).toEqual(['2', '10', 'b']); // a JS object reorders them…
    expect(headerOf(bytes).indexOf('"10"')).toBeLessThan(headerOf(bytes).indexOf('"2"')); // …the file keeps name order
    expect(headerOf(bytes).indexOf('"2"')).toBeLessThan(headerOf(bytes).indexOf('"b"'));
  });

  it('writes little-endian bytes', () => {
    const bytes = serializeSafetensors({ x: { dtype: 'I32', shape: [1], data: [0x01020304] } });
    expect(Array.from(bytes.subarray(bytes.length - 4))).toEqual([4, 3, 2, 1]);
  });
});

// ---- F16 / BF16 ----------------------------------------------------------------------------------------

describe('F16 and BF16 conversions', () => {
  const hex = (n: number) => `0x${n.toString(16).padStart(4, '0')}`;

  it('F16 known bit patterns', () => {
    const exact: [number, number][] = [
      [1.0, 0x3c00],
      [-2.0, 0xc000],
      [0.5, 0x3800],
      [65504, 0x7bff],
      [-65504, 0xfbff],
      [2 ** -24, 0x0001],
      [1023 * 2 ** -24, 0x03ff],
      [2 ** -14, 0x0400],
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
      [0, 0x0000],
      [-0, 0x8000],
    ];
    for (const [x, bits] of exact) {
      expect(hex(numberToF16Bits(x)), `encode ${x}`).toBe(hex(bits));
      expect(Object.is(f16BitsToNumber(bits), x), `decode ${hex(bits)}`).toBe(true);
    }
    expect(hex(numberToF16Bits(1 / 3))).toBe('0x3555');
    expect(f16BitsToNumber(0x3555)).toBe(0.333251953125);
    expect(hex(numberToF16Bits(0.1))).toBe('0x2e66');
    expect(f16BitsToNumber(0x0001)).toBe(5.960464477539063e-8);
    const nanBits = numberToF16Bits(NaN);
    expect((nanBits & 0x7c00) === 0x7c00 && (nanBits & 0x3ff) !== 0).toBe(true);
    for (const bits of [0x7c01, 0x7e00, 0xfe00, 0x7fff]) expect(f16BitsToNumber(bits)).toBeNaN();
  });

  it('F16 rounds to nearest, ties to even, straight from float64', () => {
    const cases: [number, number][] = [
      [1 + 2 ** -11, 0x3c00], // tie between 0x3c00 (even) and 0x3c01
      [1 + 3 * 2 ** -11, 0x3c02], // tie between 0x3c01 and 0x3c02 (even)
      [1 + 2 ** -11 + 2 ** -40, 0x3c01], // above the tie; float32 would round it onto the tie (double rounding)
      [65519, 0x7bff], // below the overflow midpoint
      [65519.99, 0x7bff],
      [65520, 0x7c00], // the midpoint 65520 ties to even = 65536 = inf
      [1e6, 0x7c00],
      [1e300, 0x7c00],
      [-1e300, 0xfc00],
      [2 ** -25, 0x0000], // half the smallest subnormal: tie to even zero
      [2 ** -25 + 2 ** -60, 0x0001],
      [3 * 2 ** -25, 0x0002], // tie between 1 and 2 subnormal units
      [-(2 ** -26), 0x8000], // underflows to -0
      [5e-324, 0x0000],
      [2 ** -14 - 2 ** -26, 0x0400], // largest subnormal + more than half a unit rounds up to the smallest normal
    ];
    for (const [x, bits] of cases) expect(hex(numberToF16Bits(x)), `encode ${x}`).toBe(hex(bits));
  });

  it('F16: every finite bit pattern decodes and re-encodes to itself', () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      if ((bits & 0x7c00) === 0x7c00 && (bits & 0x3ff) !== 0) continue; // NaN
      expect(numberToF16Bits(f16BitsToNumber(bits))).toBe(bits);
    }
  });

  it.skipIf(typeof (Math as { f16round?: unknown }).f16round !== 'function')('F16 agrees with Math.f16round', () => {
    const f16round = (Math as unknown as { f16round: (x: number) => number }).f16round;
    fc.assert(fc.property(fc.double(), (x) => Object.is(f16BitsToNumber(numberToF16Bits(x)), f16round(x)) || Number.isNaN(x)));
  });

  it('F16 and BF16 encoders pick the nearest value, ties to the even pattern', () => {
    const check = (encode: (x: number) => number, decode: (b: number) => number, maxFinite: number, limit: number) =>
      fc.property(fc.double({ min: -limit, max: limit, noNaN: true }), (x) => {
        const a = Math.abs(x);
        const b = encode(a);
        if (b === maxFinite + 1) return; // inf: only for a >= the overflow midpoint (checked by known cases)
        const y = decode(b);
        const err = Math.abs(y - a);
        for (const nb of [b - 1, b + 1]) {
          if (nb < 0 || nb > maxFinite) continue;
          const nerr = Math.abs(decode(nb) - a);
          expect(nerr).toBeGreaterThanOrEqual(err);
          if (nerr === err) expect(b % 2).toBe(0);
        }
      });
    fc.assert(check(numberToF16Bits, f16BitsToNumber, 0x7bff, 65519), { numRuns: 2000 });
    fc.assert(check(numberToBF16Bits, bf16BitsToNumber, 0x7f7f, 3.3e38), { numRuns: 2000 });
    // Also exercise the small (subnormal) ranges densely.
    fc.assert(check(numberToF16Bits, f16BitsToNumber, 0x7bff, 2 ** -13), { numRuns: 1000 });
    fc.assert(check(numberToBF16Bits, bf16BitsToNumber, 0x7f7f, 2 ** -125), { numRuns: 1000 });
  });

  it('sign handling: encode(-x) = encode(x) | sign bit', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true }), (x) => {
        const a = Math.abs(x);
        expect(numberToF16Bits(-a)).toBe(numberToF16Bits(a) | 0x8000);
        expect(numberToBF16Bits(-a)).toBe(numberToBF16Bits(a) | 0x8000);
      }),
    );
  });

  it('BF16 known bit patterns and rounding', () => {
    const maxFinite = (2 - 2 ** -7) * 2 ** 127;
    const cases: [number, number][] = [
      [1.0, 0x3f80],
      [-2.0, 0xc000],
      [0.5, 0x3f00],
      [Infinity, 0x7f80],
      [-Infinity, 0xff80],
      [0, 0],
      [-0, 0x8000],
      [2 ** -133, 0x0001],
      [2 ** -126, 0x0080],
      [maxFinite, 0x7f7f],
      [3.140625, 0x4049],
      [1 + 2 ** -8, 0x3f80], // tie to even
      [1 + 3 * 2 ** -8, 0x3f82], // tie to even (up)
      [1 + 2 ** -8 + 2 ** -30, 0x3f81], // above the tie; via float32 it would double-round to 0x3f80
      [(2 - 2 ** -8) * 2 ** 127, 0x7f80], // overflow midpoint ties to even = inf
      [(2 - 2 ** -8 - 2 ** -20) * 2 ** 127, 0x7f7f],
      [3.4028234663852886e38, 0x7f80], // float32 max rounds up to inf in bf16
      [2 ** -134, 0x0000], // tie to even zero
      [3 * 2 ** -134, 0x0002],
    ];
    for (const [x, bits] of cases) expect(hex(numberToBF16Bits(x)), `encode ${x}`).toBe(hex(bits));
    expect(bf16BitsToNumber(0x3f80)).toBe(1);
    expect(bf16BitsToNumber(0x0001)).toBe(2 ** -133);
    expect(bf16BitsToNumber(0x7f7f)).toBe(maxFinite);
    expect(bf16BitsToNumber(0xff80)).toBe(-Infinity);
    expect(Object.is(bf16BitsToNumber(0x8000), -0)).toBe(true);
    expect(bf16BitsToNumber(numberToBF16Bits(NaN))).toBeNaN();
    expect(bf16BitsToNumber(0x7fc1)).toBeNaN();
  });

  it('BF16: every finite bit pattern decodes and re-encodes to itself, and matches float32 bits', () => {
    const dv = new DataView(new ArrayBuffer(4));
    for (let bits = 0; bits < 0x10000; bits++) {
      if ((bits & 0x7f80) === 0x7f80 && (bits & 0x7f) !== 0) continue; // NaN
      const x = bf16BitsToNumber(bits);
      dv.setUint32(0, (bits << 16) >>> 0);
      expect(Object.is(x, dv.getFloat32(0))).toBe(true);
      expect(numberToBF16Bits(x)).toBe(bits);
    }
  });
});

// ---- conversions ----------------------------------------------------------------------------------

describe('toFloat64 and toInt32', () => {
  const entry = (dtype: DType, data: ArrayLike<number | bigint>, shape = [data.length]): TensorEntry =>
    parseSafetensors(serializeSafetensors({ t: { dtype, shape, data } })).tensors.get('t')!;

  it('decodes every dtype to float64', () => {
    expect(Array.from(toFloat64(entry('F16', new Uint16Array([0x3c00, 0x0001, 0xfc00, 0x8000]))))).toEqual([1, 2 ** -24, -Infinity, -0]);
    expect(toFloat64(entry('F16', new Uint16Array([0x7e00])))[0]).toBeNaN();
    expect(Array.from(toFloat64(entry('BF16', new Uint16Array([0x3f80, 0x0001, 0x7f80]))))).toEqual([1, 2 ** -133, Infinity]);
    expect(Array.from(toFloat64(entry('F32', [0.1, -3])))).toEqual([Math.fround(0.1), -3]);
    expect(Array.from(toFloat64(entry('F64', [0.1, -3])))).toEqual([0.1, -3]);
    expect(Array.from(toFloat64(entry('I64', [2n ** 53n - 1n, -(2n ** 53n - 1n), 0n])))).toEqual([2 ** 53 - 1, -(2 ** 53 - 1), 0]);
    expect(Array.from(toFloat64(entry('U64', [7n])))).toEqual([7]);
    expect(Array.from(toFloat64(entry('I32', [-5, 2 ** 31 - 1])))).toEqual([-5, 2 ** 31 - 1]);
    expect(Array.from(toFloat64(entry('U32', [2 ** 32 - 1])))).toEqual([2 ** 32 - 1]);
    expect(Array.from(toFloat64(entry('I8', [-128])))).toEqual([-128]);
    expect(Array.from(toFloat64(entry('BOOL', [1, 0])))).toEqual([1, 0]);
    // a fresh copy, not the entry's storage
    const e = entry('F64', [1]);
    toFloat64(e)[0] = 99;
    expect(e.data[0]).toBe(1);
  });

  it('I64 outside the safe-integer range throws a clear error', () => {
    expect(() => toFloat64(entry('I64', [0n, 2n ** 53n]), 'wte')).toThrow(/wte: I64 value 9007199254740992 at index 1 is outside the safe-integer range/);
    expect(() => toFloat64(entry('I64', [-(2n ** 60n)]))).toThrow(/outside the safe-integer range/);
    expect(() => toFloat64(entry('U64', [2n ** 64n - 1n]))).toThrow(/outside the safe-integer range/);
  });

  it('toInt32 for token tensors', () => {
    expect(Array.from(toInt32(entry('I64', [0n, 50256n, -1n])))).toEqual([0, 50256, -1]);
    expect(Array.from(toInt32(entry('I32', [3, -7])))).toEqual([3, -7]);
    expect(Array.from(toInt32(entry('U8', [255])))).toEqual([255]);
    expect(() => toInt32(entry('I64', [2n ** 31n]), 'idx')).toThrow(/idx: I64 value 2147483648 at index 0 does not fit in int32/);
    expect(() => toInt32(entry('U32', [2 ** 32 - 1]))).toThrow(/does not fit in int32/);
    expect(() => toInt32(entry('F32', [1]))).toThrow(/toInt32 needs an integer dtype, got F32/);
  });
});

// ---- hand-built files (checks the reader against the format, not our writer) ------------------------

describe('hand-built files', () => {
  it('the Rust crate documentation example (header length 60 = "<", I32 [2,2] zeros)', () => {
    const header = '{"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}';
    expect(header.length).toBe(60);
    const bytes = new Uint8Array([0x3c, 0, 0, 0, 0, 0, 0, 0, ...new TextEncoder().encode(header), ...new Array(16).fill(0)]);
    const { tensors, metadata } = parseSafetensors(bytes);
    expect(metadata).toEqual({});
    const t = tensors.get('test')!;
    expect(t.dtype).toBe('I32');
    expect(t.shape).toEqual([2, 2]);
    expect(Array.from(t.data as Int32Array)).toEqual([0, 0, 0, 0]);
  });

  it('a Python-style file: metadata, space padding, header order differs from data order', () => {
    // As safetensors.torch.save_file lays it out: largest dtypes first, header padded to 8 with spaces.
    const header =
      '{"__metadata__":{"format":"pt"},' +
      '"model.wte":{"dtype":"F32","shape":[2,2],"data_offsets":[8,24]},' +
      '"step":{"dtype":"I64","shape":[],"data_offsets":[0,8]},' +
      '"ln.w":{"dtype":"BF16","shape":[3],"data_offsets":[24,30]},' +
      '"ln.b":{"dtype":"F16","shape":[1],"data_offsets":[30,32]}}';
    const data = new Uint8Array(32);
    const dv = new DataView(data.buffer);
    dv.setBigInt64(0, 1234n, true);
    [1.5, -2, 0.25, 1e-3].forEach((v, i) => dv.setFloat32(8 + 4 * i, v, true));
    [0x3f80, 0xc000, 0x0001].forEach((b, i) => dv.setUint16(24 + 2 * i, b, true));
    dv.setUint16(30, 0x3c00, true);
    const bytes = buildFile(header, data);
    expect((bytes.length - 32 - 8) % 8).toBe(0);

    const { tensors, metadata } = parseSafetensors(bytes, 'python.safetensors');
    expect(metadata).toEqual({ format: 'pt' });
    expect([...tensors.keys()]).toEqual(['step', 'model.wte', 'ln.w', 'ln.b']); // data-buffer order
    expect(toInt32(tensors.get('step')!)[0]).toBe(1234);
    expect(tensors.get('step')!.shape).toEqual([]);
    expect(Array.from(toFloat64(tensors.get('model.wte')!))).toEqual([1.5, -2, 0.25, Math.fround(1e-3)]);
    expect(Array.from(toFloat64(tensors.get('ln.w')!))).toEqual([1, -2, 2 ** -133]);
    expect(Array.from(toFloat64(tensors.get('ln.b')!))).toEqual([1]);
  });

  it('unaligned offsets: unpadded header, odd-offset tensors, and a buffer at an odd byteOffset', () => {
    // A header whose length leaves the data buffer at an odd file offset, and an F64 at data offset 1.
    const entries = '"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"F64","shape":[2],"data_offsets":[1,17]}';
    let header = `{${entries}}`;
    if (header.length % 2 === 0) header += ' ';
    const data = new Uint8Array(17);
    data[0] = 7;
    new DataView(data.buffer).setFloat64(1, Math.PI, true);
    new DataView(data.buffer).setFloat64(9, -1 / 3, true);
    const file = buildFile(header, data, false);
    expect((8 + header.length) % 2).toBe(1); // data starts at an odd offset

    for (const shift of [0, 1, 3]) {
      const big = new Uint8Array(file.length + shift);
      big.set(file, shift);
      const { tensors } = parseSafetensors(big.subarray(shift));
      expect(Array.from(tensors.get('a')!.data as Uint8Array)).toEqual([7]);
      expect(Array.from(tensors.get('b')!.data as Float64Array)).toEqual([Math.PI, -1 / 3]);
    }
  });

  it('regression (found by the checkpoint fuzzer): unaligned tensors read from a file or a Node Buffer hold their own bytes', () => {
    // readFileSync returns a Buffer, whose slice() is a view: the "aligned copy" of an unaligned
    // tensor used to be a view of the whole file, so its values were the file's first bytes.
    const header = '{"b":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}}';
    expect((8 + header.length) % 8).not.toBe(0);
    const data = new Uint8Array(16);
    new DataView(data.buffer).setFloat64(0, Math.PI, true);
    new DataView(data.buffer).setFloat64(8, -1 / 3, true);
    const bytes = buildFile(header, data, false);
    const file = path.join(tmpDir(), 'unaligned.safetensors');
    fs.writeFileSync(file, bytes);
    expect(Array.from(readSafetensors(file).tensors.get('b')!.data as Float64Array)).toEqual([Math.PI, -1 / 3]);
    expect(Array.from(parseSafetensors(Buffer.from(bytes)).tensors.get('b')!.data as Float64Array)).toEqual([Math.PI, -1 / 3]);
  });

  it('tensorBytes are the bytes the writer stores (what checkpoint checksums hash); F64/F32 arrays are copied bit for bit', () => {
    const f64 = new Float64Array([1.5, -0, Math.PI]);
    new DataView(f64.buffer).setBigUint64(8, 0x7ff8_dead_beef_0001n, true); // a NaN with a payload
    const f32 = new Float32Array([1, 2.5]);
    new DataView(f32.buffer).setUint32(4, 0x7fc1_2345, true);
    const inputs: Record<string, TensorInput> = {
      a: { dtype: 'F64', shape: [3], data: f64 },
      b: { dtype: 'F32', shape: [2], data: f32 },
      c: { dtype: 'F32', shape: [3], data: [0.1, 1e40, -2] }, // values, rounded
      d: { dtype: 'BF16', shape: [2], data: [1, 0.3] },
      e: { dtype: 'I64', shape: [2], data: [3n, -4n] },
    };
    const bytes = serializeSafetensors(inputs);
    const parsed = parseSafetensors(bytes);
    for (const [name, t] of Object.entries(inputs)) {
      const stored = parsed.tensors.get(name)!.data;
      expect(Buffer.from(tensorBytes(name, t)).equals(Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength)), name).toBe(true);
    }
    expect(new DataView(parsed.tensors.get('a')!.data.buffer, parsed.tensors.get('a')!.data.byteOffset).getBigUint64(8, true)).toBe(0x7ff8_dead_beef_0001n);
    expect(() => tensorBytes('x', { dtype: 'F32', shape: [3], data: [1] })).toThrow(/tensor "x": data has 1 elements but shape \[3\] needs 3/);
  });

  it('aligned tensors are zero-copy views of the input', () => {
    const bytes = serializeSafetensors({ w: { dtype: 'F32', shape: [2], data: [1, 2] } });
    const e = parseSafetensors(bytes).tensors.get('w')!;
    expect(e.data.buffer).toBe(bytes.buffer);
  });

  it('accepts an empty file body, "__metadata__": null, and unknown extra entry fields', () => {
    expect(parseSafetensors(buildFile('{}')).tensors.size).toBe(0);
    const h = '{"__metadata__":null,"x":{"dtype":"U8","shape":[2],"data_offsets":[0,2],"extra":1}}';
    const { tensors, metadata } = parseSafetensors(buildFile(h, new Uint8Array([1, 2])));
    expect(metadata).toEqual({});
    expect(Array.from<number | bigint>(tensors.get('x')!.data)).toEqual([1, 2]);
  });

  it('several zero-size tensors may share an offset', () => {
    const h = {
      a: { dtype: 'F32', shape: [0], data_offsets: [0, 0] },
      b: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
      c: { dtype: 'I64', shape: [3, 0], data_offsets: [4, 4] },
      d: { dtype: 'I64', shape: [0], data_offsets: [4, 4] },
    };
    const { tensors } = parseSafetensors(buildFile(h, 4));
    expect([...tensors.keys()]).toEqual(['a', 'b', 'c', 'd']);
  });
});

// ---- rejections -----------------------------------------------------------------------------------

describe('rejects malformed files with a message naming the source and the problem', () => {
  const ok = (extra: object = {}) => ({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 8], ...extra } });

  it('truncated / bad header length', () => {
    expectReject(new Uint8Array(0), 'truncated');
    expectReject(new Uint8Array(7), 'truncated');
    const pastEnd = buildFile('{}');
    new DataView(pastEnd.buffer).setBigUint64(0, 100n, true);
    expectReject(pastEnd, 'extends past the end of the file');
    const huge = new Uint8Array(16);
    new DataView(huge.buffer).setBigUint64(0, BigInt(MAX_HEADER_SIZE + 1), true);
    expectReject(huge, 'not a safetensors file'); // the 9th byte is not the header's '{'
    huge[8] = 0x7b;
    expectReject(huge, 'exceeds the limit of 100000000 bytes');
    new DataView(huge.buffer).setBigUint64(0, 2n ** 64n - 1n, true);
    expectReject(huge, 'exceeds the limit');
    const full = serializeSafetensors({ w: { dtype: 'F64', shape: [4], data: [1, 2, 3, 4] } });
    expectReject(full.subarray(0, 12), 'extends past the end of the file');
    expectReject(full.subarray(0, full.length - 1), 'extend past the end of the data buffer');
  });

  it('header not UTF-8, not JSON, or not an object', () => {
    expectReject(buildFile(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])), 'header is not valid UTF-8');
    expectReject(buildFile('{"x": '), 'header is not valid JSON');
    expectReject(buildFile('\uFEFF{}'), 'header is not valid JSON'); // BOM is not JSON
    expectReject(buildFile('[]'), 'header JSON must be an object');
    expectReject(buildFile('null'), 'header JSON must be an object');
    expectReject(buildFile('42'), 'header JSON must be an object');
    expectReject(buildFile('"str"'), 'header JSON must be an object');
  });

  it('entries with missing fields or wrong types', () => {
    expectReject(buildFile({ x: 5 }, 8), 'tensor "x": header entry must be an object');
    expectReject(buildFile({ x: { shape: [2], data_offsets: [0, 8] } }, 8), 'missing "dtype"');
    expectReject(buildFile({ x: { dtype: 'F32', data_offsets: [0, 8] } }, 8), 'missing "shape"');
    expectReject(buildFile({ x: { dtype: 'F32', shape: [2] } }, 8), 'missing "data_offsets"');
    expectReject(buildFile(ok({ dtype: 4 }), 8), '"dtype" must be a string');
    expectReject(buildFile(ok({ shape: '2' }), 8), '"shape" must be an array');
    expectReject(buildFile(ok({ data_offsets: [0] }), 8), '"data_offsets" must be an array [begin, end]');
    expectReject(buildFile(ok({ data_offsets: { 0: 0, 1: 8 } }), 8), '"data_offsets" must be an array [begin, end]');
    expectReject(buildFile(ok({ data_offsets: ['0', 8] }), 8), 'must be non-negative integers');
    expectReject(buildFile(ok({ data_offsets: [-8, 0] }), 8), 'must be non-negative integers');
    expectReject(buildFile(ok({ data_offsets: [0, 8.5] }), 8), 'must be non-negative integers');
  });

  it('unknown dtype, named', () => {
    expectReject(buildFile(ok({ dtype: 'F8_E4M3' }), 8), 'unknown dtype "F8_E4M3"');
    expectReject(buildFile(ok({ dtype: 'float32' }), 8), 'unknown dtype "float32"');
    expectReject(buildFile(ok({ dtype: 'toString' }), 8), 'unknown dtype "toString"');
  });

  it('bad shape dims', () => {
    expectReject(buildFile(ok({ shape: [-2] }), 8), 'shape dimension -2 is not a non-negative integer');
    expectReject(buildFile(ok({ shape: [1.5] }), 8), 'shape dimension 1.5 is not a non-negative integer');
    expectReject(buildFile(ok({ shape: ['2'] }), 8), 'shape dimension "2" is not a non-negative integer');
    expectReject(buildFile(ok({ shape: [null] }), 8), 'is not a non-negative integer');
    expectReject(buildFile(ok({ shape: [2 ** 40, 2 ** 40] }), 8), 'element count of shape [1099511627776, 1099511627776] overflows');
  });

  it('offsets out of range or reversed', () => {
    expectReject(buildFile(ok({ data_offsets: [0, 16], shape: [4] }), 8), 'data_offsets [0, 16] extend past the end of the data buffer (8 bytes)');
    expectReject(buildFile(ok({ data_offsets: [8, 0] }), 8), 'data_offsets [8, 0] are out of order');
  });

  it('byte size mismatch between shape × dtype and offsets', () => {
    expectReject(buildFile(ok({ shape: [3] }), 8), 'byte size mismatch: shape [3] of F32 needs 12 bytes but data_offsets span 8');
    expectReject(buildFile(ok({ dtype: 'F64' }), 8), 'byte size mismatch');
  });

  it('overlap, gap, trailing bytes', () => {
    const f32 = (b: number, e: number) => ({ dtype: 'F32', shape: [(e - b) / 4], data_offsets: [b, e] });
    expectReject(buildFile({ a: f32(0, 8), b: f32(4, 12) }, 12), 'overlap tensor "a"');
    expectReject(buildFile({ a: f32(0, 8), b: f32(0, 8) }, 8), 'overlap');
    expectReject(buildFile({ a: f32(0, 8), z: { dtype: 'F32', shape: [0], data_offsets: [4, 4] } }, 8), 'overlap');
    expectReject(buildFile({ a: f32(0, 4), b: f32(8, 12) }, 12), 'gap in the data buffer: bytes [4, 8) belong to no tensor');
    expectReject(buildFile({ b: f32(4, 8) }, 8), 'gap in the data buffer');
    expectReject(buildFile({ a: f32(0, 4) }, 8), 'trailing unused bytes: tensors cover 4 of the 8-byte data buffer');
    expectReject(buildFile({}, 1), 'trailing unused bytes');
  });

  it('metadata that is not an object of strings', () => {
    expectReject(buildFile({ __metadata__: { format: 1 } }), '"__metadata__" value for key "format" is not a string');
    expectReject(buildFile({ __metadata__: { a: 'b', c: null } }), 'value for key "c" is not a string');
    expectReject(buildFile({ __metadata__: ['pt'] }), '"__metadata__" must be an object of strings');
    expectReject(buildFile({ __metadata__: 'pt' }), '"__metadata__" must be an object of strings');
  });

  it('readSafetensors names a missing path', () => {
    const missing = path.join(tmpDir(), 'nope.safetensors');
    expect(() => readSafetensors(missing)).toThrow(SafetensorsError);
    expect(() => readSafetensors(missing)).toThrow(`${missing}: file does not exist`);
    const dir = tmpDir();
    expect(() => readSafetensors(dir)).toThrow(`${dir}: cannot read file`);
    const bad = path.join(dir, 'bad.safetensors');
    fs.writeFileSync(bad, new Uint8Array(3));
    expect(() => readSafetensors(bad)).toThrow(`${bad}: truncated`);
  });
});

describe('serializeSafetensors rejects bad input', () => {
  const expectThrow = (f: () => unknown, phrase: string) => expect(f).toThrow(phrase);

  it('with clear messages', () => {
    expectThrow(
      () => serializeSafetensors({ w: { dtype: 'F32', shape: [2, 2], data: [1, 2, 3] } }),
      'tensor "w": data has 3 elements but shape [2, 2] needs 4',
    );
    expectThrow(() => serializeSafetensors({ __metadata__: { dtype: 'F32', shape: [], data: [1] } }), '"__metadata__" is reserved');
    expectThrow(() => serializeSafetensors({ w: { dtype: 'F8' as DType, shape: [], data: [1] } }), 'unknown dtype "F8"');
    expectThrow(() => serializeSafetensors({ w: { dtype: 'F32', shape: [-1], data: [] } }), 'shape dimension -1 is not a non-negative integer');
    expectThrow(() => serializeSafetensors({ w: { dtype: 'I32', shape: [1], data: [1.5] } }), 'value 1.5 at index 0 is not an integer');
    expectThrow(() => serializeSafetensors({ w: { dtype: 'I8', shape: [2], data: [1, 128] } }), 'value 128 at index 1 is out of range for I8');
    expectThrow(() => serializeSafetensors({ w: { dtype: 'U8', shape: [1], data: [-1] } }), 'out of range for U8');
    expectThrow(() => serializeSafetensors({ w: { dtype: 'I64', shape: [1], data: [2 ** 53] } }), 'is not a bigint or safe integer');
    expectThrow(() => serializeSafetensors({ w: { dtype: 'I64', shape: [1], data: [2n ** 63n] } }), 'out of range for I64');
    expectThrow(() => serializeSafetensors({ w: { dtype: 'F32', shape: [1], data: [1n] } }), 'is not a number');
    expectThrow(() => serializeSafetensors({}, { k: 1 as unknown as string }), 'metadata value for key "k" is not a string');
  });

  it('accepts numbers, bigints and booleans where they are exact', () => {
    const bytes = serializeSafetensors({
      i64: { dtype: 'I64', shape: [3], data: [1, -2n, 2 ** 53 - 1] },
      b: { dtype: 'BOOL', shape: [2], data: [true, false] },
      i32: { dtype: 'I32', shape: [1], data: [5n] },
    });
    const { tensors } = parseSafetensors(bytes);
    expect(Array.from<number | bigint>(tensors.get('i64')!.data)).toEqual([1n, -2n, 2n ** 53n - 1n]);
    expect(Array.from<number | bigint>(tensors.get('b')!.data)).toEqual([1, 0]);
    expect(Array.from<number | bigint>(tensors.get('i32')!.data)).toEqual([5]);
  });
});

// ---- fuzz ---------------------------------------------------------------------------------------------

describe('fuzz', () => {
  /** Parse and require: success with consistent tensors, or a SafetensorsError (nothing else). */
  function parseOrReject(bytes: Uint8Array): void {
    let result;
    try {
      result = parseSafetensors(bytes, 'fuzz');
    } catch (e) {
      expect(e).toBeInstanceOf(SafetensorsError);
      expect((e as Error).message.startsWith('fuzz: ')).toBe(true);
      return;
    }
    for (const t of result.tensors.values()) {
      expect(t.data.length).toBe(countOf(t.shape));
      expect(DTYPES).toContain(t.dtype);
    }
    for (const v of Object.values(result.metadata)) expect(typeof v).toBe('string');
  }

  const fileArb = fc.tuple(tensorsArb, metadataArb).map(([t, m]) => serializeSafetensors(t, m));

  it('mutated, truncated and spliced valid files parse or throw SafetensorsError', { timeout: 60_000 }, () => {
    const mutationArb = fc.oneof(
      fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
      fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ maxLength: 4 }) }),
      fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 4 }) }),
      fc.record({ kind: fc.constant('headerLength' as const), value: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) }),
    );
    fc.assert(
      fc.property(fileArb, fc.array(mutationArb, { minLength: 1, maxLength: 4 }), (file, mutations) => {
        let bytes = file;
        for (const m of mutations) {
          const at = bytes.length === 0 ? 0 : 'at' in m ? m.at % (bytes.length + 1) : 0;
          if (m.kind === 'truncate') bytes = bytes.slice(0, at);
          else if (m.kind === 'flip') {
            bytes = bytes.slice();
            if (at < bytes.length) bytes[at] = m.value;
          } else if (m.kind === 'insert') bytes = new Uint8Array([...bytes.subarray(0, at), ...m.bytes, ...bytes.subarray(at)]);
          else if (m.kind === 'delete') bytes = new Uint8Array([...bytes.subarray(0, at), ...bytes.subarray(at + m.n)]);
          else if (bytes.length >= 8) {
            bytes = bytes.slice();
            new DataView(bytes.buffer).setBigUint64(0, m.value, true);
          }
        }
        parseOrReject(bytes);
      }),
      { numRuns: 3000 },
    );
  });

  it('arbitrary JSON headers parse or throw SafetensorsError', { timeout: 60_000 }, () => {
    const entryArb = fc.record(
      {
        dtype: fc.oneof(fc.constantFrom(...DTYPES, 'F8_E5M2', ''), fc.jsonValue()),
        shape: fc.oneof(fc.array(fc.integer({ min: -1, max: 5 }), { maxLength: 3 }), fc.jsonValue()),
        data_offsets: fc.oneof(fc.tuple(fc.integer({ min: -1, max: 70 }), fc.integer({ min: -1, max: 70 })), fc.jsonValue()),
      },
      { requiredKeys: [] },
    );
    const headerArb = fc.dictionary(fc.oneof(fc.constant('__metadata__'), fc.string({ maxLength: 4 })), fc.oneof(entryArb, fc.jsonValue()), { maxKeys: 4 });
    fc.assert(
      fc.property(fc.oneof(headerArb, fc.jsonValue()), fc.integer({ min: 0, max: 64 }), (header, dataLength) => {
        parseOrReject(buildFile(JSON.stringify(header) ?? 'undefined', dataLength));
      }),
      { numRuns: 3000 },
    );
  });
});

// ---- atomic writer ------------------------------------------------------------------------------

describe('writeSafetensors', () => {
  it('writes, replaces an existing file, and leaves no temp file behind', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'ckpt.safetensors');
    writeSafetensors(file, { w: { dtype: 'F32', shape: [2], data: [1, 2] } }, { step: '1' });
    expect(fs.readdirSync(dir)).toEqual(['ckpt.safetensors']);
    expect(readSafetensors(file).metadata).toEqual({ step: '1' });

    writeSafetensors(file, new Map([['v', { dtype: 'BF16' as const, shape: [3], data: [1, 2, 3] }]]), { step: '2' });
    expect(fs.readdirSync(dir)).toEqual(['ckpt.safetensors']);
    const back = readSafetensors(file);
    expect(back.metadata).toEqual({ step: '2' });
    expect([...back.tensors.keys()]).toEqual(['v']);
    expect(Array.from(toFloat64(back.tensors.get('v')!))).toEqual([1, 2, 3]);
    expect(fs.readFileSync(file).equals(Buffer.from(serializeSafetensors({ v: { dtype: 'BF16', shape: [3], data: [1, 2, 3] } }, { step: '2' })))).toBe(true);
  });

  it('a failed rename names the path, cleans up the temp file, and keeps the target', () => {
    const dir = tmpDir();
    const target = path.join(dir, 'is-a-dir');
    fs.mkdirSync(target);
    fs.writeFileSync(path.join(target, 'keep'), 'x');
    expect(() => writeSafetensors(target, { w: { dtype: 'U8', shape: [1], data: [1] } })).toThrow(`${target}: cannot write file`);
    expect(fs.readdirSync(dir)).toEqual(['is-a-dir']);
    expect(fs.readdirSync(target)).toEqual(['keep']);
  });

  it('bad input writes nothing; a missing directory is a clear error', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'x.safetensors');
    fs.writeFileSync(file, 'old');
    expect(() => writeSafetensors(file, { w: { dtype: 'I8', shape: [1], data: [999] } })).toThrow('out of range for I8');
    expect(fs.readdirSync(dir)).toEqual(['x.safetensors']);
    expect(fs.readFileSync(file, 'utf8')).toBe('old');
    const nowhere = path.join(dir, 'no', 'such', 'dir.safetensors');
    expect(() => writeSafetensors(nowhere, {})).toThrow(`${nowhere}: cannot write file`);
  });
});

describe('writeSafetensorsStreamed', () => {
  it('writes the bytes serializeSafetensors makes (mixed dtypes, names out of order, metadata), producing each tensor once', () => {
    const tensors: Record<string, TensorInput> = {
      zeta: { dtype: 'F32', shape: [2, 3], data: Float32Array.from([1, -2, 3.5, 0, -0, 7]) },
      alpha: { dtype: 'F64', shape: [3], data: Float64Array.from([Math.PI, -1e-300, 2]) },
      mid: { dtype: 'F32', shape: [2], data: Float64Array.from([0.1, 1 / 3]) },
      ints: { dtype: 'I32', shape: [2, 2], data: Int32Array.from([1, -2, 3, 2147483647]) },
      bytes: { dtype: 'U8', shape: [3], data: Uint8Array.from([0, 1, 255]) },
      empty: { dtype: 'F32', shape: [0], data: new Float32Array(0) },
    };
    const md = { format: 'pt', note: 'x'.repeat(13) };
    const calls: string[] = [];
    const deferred = new Map<string, DeferredTensor>(
      Object.entries(tensors).map(([n, t]) => [n, { dtype: t.dtype, shape: t.shape, data: () => (calls.push(n), t.data) }]),
    );
    const file = path.join(tmpDir(), 'streamed.safetensors');
    writeSafetensorsStreamed(file, deferred, md);
    expect(Buffer.from(fs.readFileSync(file)).equals(Buffer.from(serializeSafetensors(tensors, md)))).toBe(true);
    expect(calls.sort()).toEqual(Object.keys(tensors).sort());
    expect(fs.readdirSync(path.dirname(file))).toEqual(['streamed.safetensors']);
  });

  it('a tensor whose data does not fit its shape fails with one line and leaves no file', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'bad.safetensors');
    const bad = new Map<string, DeferredTensor>([['w', { dtype: 'F32', shape: [4], data: () => new Float32Array(3) }]]);
    expect(() => writeSafetensorsStreamed(file, bad)).toThrow(SafetensorsError);
    expect(() => writeSafetensorsStreamed(file, bad)).toThrow(/data has 3 elements but shape \[4\] needs 4/);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});
