// Safetensors reader and writer, written from the format specification (no dependencies).
//
// File layout (https://github.com/huggingface/safetensors, "Format"):
//   [8 bytes]  N, the header length, a little-endian u64
//   [N bytes]  UTF-8 JSON object: { "<name>": { "dtype", "shape", "data_offsets": [begin, end] }, ...,
//              "__metadata__"?: { "<key>": "<string>" } }, possibly padded with trailing spaces
//   [rest]     the data buffer; data_offsets are relative to its first byte
//
// Validation follows the Rust `safetensors` crate: the header is at most 100,000,000 bytes, and the
// tensors, sorted by data_offsets, must tile the data buffer exactly (no overlap, no gap, no trailing
// bytes), each spanning exactly (element count × dtype size) bytes.
//
// Writer layout (also like the Rust crate): tensors are ordered by dtype size, largest first, then by
// name (code-unit order); the JSON header lists them in that same order, after "__metadata__"; the
// header is padded with spaces to a multiple of 8 bytes. So every tensor starts at a file offset that
// is a multiple of its element size, and the reader can return zero-copy views of it.
//
// All multi-byte values are little-endian; on a big-endian host the bytes are swapped on the way in
// and out.

import { CheckpointError } from '../errors.js';
import { AtomicWriter, writeFileAtomic } from '../util/atomic.js';
import * as fs from 'node:fs';

// ---- dtypes -------------------------------------------------------------------------------------

/** The typed array that holds each dtype's elements. F16 and BF16 are kept as raw bit patterns. */
export interface DTypeArrays {
  F64: Float64Array;
  F32: Float32Array;
  F16: Uint16Array;
  BF16: Uint16Array;
  I64: BigInt64Array;
  I32: Int32Array;
  I16: Int16Array;
  I8: Int8Array;
  U64: BigUint64Array;
  U32: Uint32Array;
  U16: Uint16Array;
  U8: Uint8Array;
  /** One byte per element, 0 = false, anything else = true. */
  BOOL: Uint8Array;
}

/** A safetensors dtype name as it appears in the header. */
export type DType = keyof DTypeArrays;

/** Any typed array a tensor can be stored in. */
export type TensorData = DTypeArrays[DType];

/** Size in bytes of one element of each dtype. */
export const DTYPE_SIZE: Readonly<Record<DType, number>> = Object.freeze({
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
});

/** Every supported dtype name. */
export const DTYPES: readonly DType[] = Object.freeze(Object.keys(DTYPE_SIZE) as DType[]);

/** True if `s` names a supported dtype. */
export function isDType(s: unknown): s is DType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_SIZE, s);
}

/** A tensor of one specific dtype. */
export interface TypedTensor<D extends DType> {
  dtype: D;
  shape: number[];
  data: DTypeArrays[D];
}

/** A tensor read from a file: a union discriminated by `dtype`, so checking it narrows `data`. */
export type TensorEntry = { [D in DType]: TypedTensor<D> }[DType];

/**
 * A tensor to write. `data` holds prod(shape) elements in row-major order: the dtype's own typed
 * array, or any array-like of numbers (bigints and booleans are accepted where they make sense).
 * For F16 and BF16, a Uint16Array is taken as raw bit patterns (what the reader returns); any
 * other numbers are rounded to nearest, ties to even.
 */
export interface TensorInput {
  dtype: DType;
  shape: readonly number[];
  data: ArrayLike<number | bigint | boolean>;
}

/** The result of parsing a file. Tensors are in data-buffer order. */
export interface SafetensorsFile {
  tensors: Map<string, TensorEntry>;
  /** The "__metadata__" object; empty when the file has none. */
  metadata: Record<string, string>;
}

/** Longest error message this module (and the checkpoint loader) produces, in characters. */
export const MAX_MESSAGE_LENGTH = 300;

/** `s` shortened to at most `max` characters by cutting out its middle (paths keep both ends). */
export function elide(s: string, max: number): string {
  if (s.length <= max) return s;
  const head = Math.ceil((max - 1) / 2),
    tail = Math.floor((max - 1) / 2);
  return `${s.slice(0, head)}…${s.slice(s.length - tail)}`;
}

/**
 * "<source>: <problem>" on one line and at most MAX_MESSAGE_LENGTH characters: a long source (path)
 * loses its middle, a long problem its end, and line breaks become spaces.
 */
export function boundedMessage(source: string, problem: string): string {
  const src = elide(source.replace(/[\r\n]+/g, ' '), 120);
  const room = MAX_MESSAGE_LENGTH - src.length - 2;
  const p = problem.replace(/[\r\n]+/g, ' ');
  return `${src}: ${p.length <= room ? p : p.slice(0, room - 1) + '…'}`;
}

/**
 * A value from an untrusted file as an error message may quote it: strings JSON-quoted and cut to
 * `max` characters, arrays of a few primitives listed, anything deeper only described. It never
 * walks more than one level, so a shape nested 100,000 deep costs nothing (JSON.stringify of it
 * would overflow the stack).
 */
export function quote(v: unknown, max = 40): string {
  if (typeof v === 'string') return JSON.stringify(v.length > max ? v.slice(0, max) : v) + (v.length > max ? '…' : '');
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint' || v === null || v === undefined) return elide(String(v), max);
  if (Array.isArray(v)) {
    if (v.length <= 4) {
      // one level only: a nested array or object is shown as [...] or {...}
      const inner = `[${v.map((x) => (Array.isArray(x) ? '[...]' : x !== null && typeof x === 'object' ? '{...}' : quote(x, 24))).join(', ')}]`;
      if (inner.length <= max + 2) return inner;
    }
    return `an array of ${v.length} element${v.length === 1 ? '' : 's'}`;
  }
  return `a${typeof v === 'object' ? 'n object' : ` ${typeof v}`}`;
}

/** Error thrown for a malformed file or bad writer input; the message starts with the source. */
export class SafetensorsError extends CheckpointError {
  constructor(
    readonly source: string,
    readonly problem: string,
  ) {
    super(boundedMessage(source, problem));
  }
}

/** Largest header accepted or written, in bytes (the Rust crate's limit). */
export const MAX_HEADER_SIZE = 100_000_000;

const METADATA_KEY = '__metadata__';
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// ---- half-precision conversions ----------------------------------------------------------------

/** 2^k as an exact double (valid for -1074 <= k <= 1023). */
function pow2(k: number): number {
  // Split so that neither factor underflows or overflows on its own.
  if (k < -1022) return 2 ** (k + 64) * 2 ** -64;
  return 2 ** k;
}

/** Round a non-negative double to an integer, ties to even. */
function roundHalfEven(q: number): number {
  const f = Math.floor(q);
  const r = q - f; // exact for the magnitudes used here (q < 2^12)
  if (r > 0.5) return f + 1;
  if (r < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * Encode a double as a binary float with `expBits` exponent bits and `mantBits` stored mantissa
 * bits (IEEE-style: bias 2^(expBits-1)-1, subnormals, inf, NaN), rounding to nearest, ties to even.
 * Rounds straight from float64, so there is no double rounding through float32.
 */
function encodeMinifloat(x: number, expBits: number, mantBits: number): number {
  const expMax = (1 << expBits) - 1; // all-ones exponent field: inf / NaN
  const bias = expMax >> 1;
  const emin = 1 - bias;
  const signBit = Number.isNaN(x) ? 0 : x < 0 || Object.is(x, -0) ? 1 << (expBits + mantBits) : 0;
  if (Number.isNaN(x)) return (expMax << mantBits) | (1 << (mantBits - 1)); // quiet NaN
  const a = Math.abs(x);
  if (a === 0) return signBit;
  if (a === Infinity) return signBit | (expMax << mantBits);

  // e = floor(log2(a)), corrected for rounding in Math.log2; clamp to emin for subnormals.
  let e = Math.floor(Math.log2(a));
  if (pow2(e) > a) e--;
  else if (e + 1 <= 1023 && pow2(e + 1) <= a) e++;
  if (e > bias) return signBit | (expMax << mantBits); // far past the largest finite value
  if (e < emin) e = emin;

  // q is a scaled by a power of two (exact): in [2^m, 2^(m+1)) for normals, [0, 2^m) for subnormals.
  const q = a * pow2(mantBits - e);
  let m = roundHalfEven(q);
  const implicit = 1 << mantBits;
  if (m === 2 * implicit) {
    m = implicit;
    e++;
  } // rounded up into the next binade
  if (m < implicit) return signBit | m; // subnormal (or rounded to zero)
  const field = e + bias;
  if (field >= expMax) return signBit | (expMax << mantBits); // rounded past the largest finite value
  return signBit | (field << mantBits) | (m - implicit);
}

/** Encode a number as IEEE binary16 bits (round to nearest, ties to even). */
export function numberToF16Bits(x: number): number {
  return encodeMinifloat(x, 5, 10);
}

/** Encode a number as bfloat16 bits (round to nearest, ties to even, straight from float64). */
export function numberToBF16Bits(x: number): number {
  return encodeMinifloat(x, 8, 7);
}

/** Decode IEEE binary16 bits exactly (subnormals, ±0, ±inf and NaN included). */
export function f16BitsToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** Decode bfloat16 bits exactly (they are the top half of a float32). */
export function bf16BitsToNumber(bits: number): number {
  u32Scratch[0] = (bits & 0xffff) << 16;
  return f32Scratch[0];
}

// ---- reading ------------------------------------------------------------------------------------

/** Make a typed array of `dtype` over `buf[byteOffset, +count*size)`; the range must be aligned. */
function makeArray(dtype: DType, buf: ArrayBufferLike, byteOffset: number, count: number): TensorData {
  switch (dtype) {
    case 'F64':
      return new Float64Array(buf, byteOffset, count);
    case 'F32':
      return new Float32Array(buf, byteOffset, count);
    case 'F16':
    case 'BF16':
    case 'U16':
      return new Uint16Array(buf, byteOffset, count);
    case 'I64':
      return new BigInt64Array(buf, byteOffset, count);
    case 'U64':
      return new BigUint64Array(buf, byteOffset, count);
    case 'I32':
      return new Int32Array(buf, byteOffset, count);
    case 'U32':
      return new Uint32Array(buf, byteOffset, count);
    case 'I16':
      return new Int16Array(buf, byteOffset, count);
    case 'I8':
      return new Int8Array(buf, byteOffset, count);
    case 'U8':
    case 'BOOL':
      return new Uint8Array(buf, byteOffset, count);
  }
}

/** Reverse the bytes of each `size`-byte element in place (little-endian <-> big-endian). */
function swapBytes(bytes: Uint8Array, size: number): void {
  if (size === 1) return;
  for (let i = 0; i + size <= bytes.length; i += size) {
    for (let lo = i, hi = i + size - 1; lo < hi; lo++, hi--) {
      const t = bytes[lo];
      bytes[lo] = bytes[hi];
      bytes[hi] = t;
    }
  }
}

/**
 * The elements stored little-endian in `bytes[begin, end)`. A zero-copy view when the host is
 * little-endian and the absolute offset is aligned to the element size; otherwise an aligned copy.
 */
function decodeTensorData(dtype: DType, bytes: Uint8Array, begin: number, end: number): TensorData {
  const size = DTYPE_SIZE[dtype];
  const count = (end - begin) / size;
  const absolute = bytes.byteOffset + begin;
  if (LITTLE_ENDIAN_HOST && absolute % size === 0) return makeArray(dtype, bytes.buffer, absolute, count);
  // A fresh ArrayBuffer at offset 0, hence aligned. (Not bytes.slice(): on a Node Buffer, which
  // readFileSync returns, slice() is a view, and the typed array would read the file's first bytes.)
  const copy = new Uint8Array(end - begin);
  copy.set(bytes.subarray(begin, end));
  if (!LITTLE_ENDIAN_HOST) swapBytes(copy, size);
  return makeArray(dtype, copy.buffer, 0, count);
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const isNonNegativeInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Product of the dims, or null if it exceeds Number.MAX_SAFE_INTEGER. Zero-size dims give 0. */
function elementCount(shape: readonly number[]): number | null {
  if (shape.includes(0)) return 0;
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (n > Number.MAX_SAFE_INTEGER) return null;
  }
  return n;
}

/** A validated shape for a message: every dim up to 8 of them, then a count. */
const fmtShape = (shape: readonly number[]) => (shape.length <= 8 ? `[${shape.join(', ')}]` : `[${shape.slice(0, 6).join(', ')}, … (${shape.length} dims)]`);

interface HeaderTensor {
  name: string;
  dtype: DType;
  shape: number[];
  begin: number;
  end: number;
}

/** Validate one header entry (types, dtype, shape, offsets range, byte size). */
function parseHeaderTensor(name: string, raw: unknown, dataLength: number, fail: (p: string) => never): HeaderTensor {
  const t = quote(name, 80);
  if (!isPlainObject(raw)) fail(`tensor ${t}: header entry must be an object`);
  for (const key of ['dtype', 'shape', 'data_offsets']) {
    if (!(key in raw)) fail(`tensor ${t}: header entry is missing "${key}"`);
  }
  const { dtype, shape, data_offsets: offsets } = raw;
  if (typeof dtype !== 'string') fail(`tensor ${t}: "dtype" must be a string`);
  if (!isDType(dtype)) fail(`tensor ${t}: unknown dtype ${quote(dtype)}`);
  if (!Array.isArray(shape)) fail(`tensor ${t}: "shape" must be an array`);
  for (const d of shape) {
    if (!isNonNegativeInt(d)) fail(`tensor ${t}: shape dimension ${quote(d)} is not a non-negative integer`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2) fail(`tensor ${t}: "data_offsets" must be an array [begin, end]`);
  const [begin, end] = offsets;
  if (!isNonNegativeInt(begin) || !isNonNegativeInt(end)) {
    fail(`tensor ${t}: data_offsets ${quote(offsets)} must be non-negative integers`);
  }
  if (end < begin) fail(`tensor ${t}: data_offsets [${begin}, ${end}] are out of order (end < begin)`);
  if (end > dataLength) {
    fail(`tensor ${t}: data_offsets [${begin}, ${end}] extend past the end of the data buffer (${dataLength} bytes)`);
  }
  const count = elementCount(shape);
  if (count === null) fail(`tensor ${t}: element count of shape ${fmtShape(shape)} overflows`);
  const nbytes = count * DTYPE_SIZE[dtype];
  if (nbytes !== end - begin) {
    fail(`tensor ${t}: byte size mismatch: shape ${fmtShape(shape)} of ${dtype} needs ${nbytes} bytes but data_offsets span ${end - begin}`);
  }
  return { name, dtype, shape: shape.slice(), begin, end };
}

/** Check that the tensors, sorted by offset, tile [0, dataLength) exactly. Sorts `list` in place. */
function checkTiling(list: HeaderTensor[], dataLength: number, fail: (p: string) => never): void {
  list.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  let previous: HeaderTensor | null = null;
  for (const t of list) {
    if (t.begin < expected) {
      fail(
        `tensor ${quote(t.name, 80)}: data_offsets [${t.begin}, ${t.end}] overlap tensor ${quote(previous!.name, 80)} [${previous!.begin}, ${previous!.end}]`,
      );
    }
    if (t.begin > expected) {
      fail(`tensor ${quote(t.name, 80)}: gap in the data buffer: bytes [${expected}, ${t.begin}) belong to no tensor`);
    }
    expected = t.end;
    previous = t;
  }
  if (expected !== dataLength) {
    fail(`trailing unused bytes: tensors cover ${expected} of the ${dataLength}-byte data buffer`);
  }
}

/**
 * Parse a safetensors file held in memory. `source` (e.g. the file path) prefixes every error
 * message. Tensor data is a zero-copy view into `bytes` where alignment allows, so it aliases the
 * input; copy it if `bytes` will be modified.
 */
export function parseSafetensors(bytes: Uint8Array, source = '<buffer>'): SafetensorsFile {
  const fail: (problem: string) => never = (problem) => {
    throw new SafetensorsError(source, problem);
  };
  if (bytes.length < 8) fail(`truncated: ${bytes.length} bytes, shorter than the 8-byte header length prefix`);

  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getBigUint64(0, true);
  // Every safetensors header is a JSON object right after the length: a file whose 9th byte is not
  // '{' is some other file (a README, a PyTorch .pt zip), not a damaged safetensors one.
  if (bytes.length > 8 && bytes[8] !== 0x7b && (headerLength > BigInt(MAX_HEADER_SIZE) || 8 + Number(headerLength) > bytes.length)) {
    const head = Array.from(bytes.subarray(0, 12), (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
    fail(`not a safetensors file (it would start with an 8-byte header length and a JSON header '{'; this one starts with "${head}")`);
  }
  if (headerLength > BigInt(MAX_HEADER_SIZE)) fail(`header length ${headerLength} exceeds the limit of ${MAX_HEADER_SIZE} bytes`);
  const n = Number(headerLength);
  if (8 + n > bytes.length) fail(`header length ${n} extends past the end of the file (${bytes.length} bytes)`);

  let text = '';
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes.subarray(8, 8 + n));
  } catch {
    fail('header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    fail(`header is not valid JSON: ${elide((e as Error).message, 120)}`);
  }
  if (!isPlainObject(header)) fail(`header JSON must be an object, got ${header === null ? 'null' : Array.isArray(header) ? 'an array' : typeof header}`);

  const data = bytes.subarray(8 + n);
  let metadata: Record<string, string> = {};
  const list: HeaderTensor[] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === METADATA_KEY) {
      metadata = parseMetadata(raw, fail);
    } else {
      list.push(parseHeaderTensor(name, raw, data.length, fail));
    }
  }
  checkTiling(list, data.length, fail);

  const tensors = new Map<string, TensorEntry>();
  for (const t of list) {
    const entry = { dtype: t.dtype, shape: t.shape, data: decodeTensorData(t.dtype, data, t.begin, t.end) };
    tensors.set(t.name, entry as TensorEntry);
  }
  return { tensors, metadata };
}

/** Validate "__metadata__": an object of string values (null is accepted as "none"). */
function parseMetadata(raw: unknown, fail: (p: string) => never): Record<string, string> {
  if (raw === null) return {};
  if (!isPlainObject(raw)) fail(`"${METADATA_KEY}" must be an object of strings`);
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== 'string') fail(`"${METADATA_KEY}" value for key ${quote(k, 60)} is not a string`);
  }
  // Object.fromEntries defines own properties, so a "__proto__" key stays a plain key.
  return Object.fromEntries(Object.entries(raw as Record<string, string>));
}

/** Read and parse a safetensors file; errors name the path. */
export function readSafetensors(filePath: string): SafetensorsFile {
  let bytes: Uint8Array;
  try {
    const buf = fs.readFileSync(filePath);
    bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength); // a plain Uint8Array view, not a Buffer
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') throw new SafetensorsError(filePath, 'file does not exist');
    throw new SafetensorsError(filePath, `cannot read file: ${err.message}`);
  }
  return parseSafetensors(bytes, filePath);
}

// ---- conversions for consumers ---------------------------------------------------------------------

/** Number(v) for a 64-bit integer, or a clear error if it is not exactly representable. */
function safeBigToNumber(v: bigint, i: number, dtype: DType, name: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new SafetensorsError(
      name,
      `${dtype} value ${v} at index ${i} is outside the safe-integer range (±2^53−1) and cannot be converted exactly to float64`,
    );
  }
  return Number(v);
}

/**
 * The tensor's values as a fresh Float64Array. F16/BF16 are decoded exactly; integers convert
 * exactly (I64/U64 throw if a value is outside ±(2^53−1)); BOOL gives 0/1.
 * `name` only labels error messages.
 */
export function toFloat64(entry: TensorEntry, name = 'tensor'): Float64Array {
  const n = entry.data.length;
  const out = new Float64Array(n);
  switch (entry.dtype) {
    case 'F16':
      for (let i = 0; i < n; i++) out[i] = f16BitsToNumber(entry.data[i]);
      break;
    case 'BF16':
      for (let i = 0; i < n; i++) out[i] = bf16BitsToNumber(entry.data[i]);
      break;
    case 'I64':
    case 'U64':
      for (let i = 0; i < n; i++) out[i] = safeBigToNumber(entry.data[i], i, entry.dtype, name);
      break;
    case 'BOOL':
      for (let i = 0; i < n; i++) out[i] = entry.data[i] ? 1 : 0;
      break;
    default:
      out.set(entry.data);
  }
  return out;
}

/**
 * The tensor's values as a fresh Int32Array, for integer tensors such as token ids (I64, I32, and
 * the smaller integer dtypes). Throws if a value does not fit in int32, or for float/BOOL dtypes.
 */
export function toInt32(entry: TensorEntry, name = 'tensor'): Int32Array {
  const n = entry.data.length;
  const out = new Int32Array(n);
  switch (entry.dtype) {
    case 'I32':
    case 'I16':
    case 'I8':
    case 'U16':
    case 'U8':
      out.set(entry.data);
      return out;
    case 'I64':
    case 'U64':
    case 'U32':
      for (let i = 0; i < n; i++) {
        const v = entry.data[i];
        if (v > 2147483647 || v < -2147483648) {
          throw new SafetensorsError(name, `${entry.dtype} value ${v} at index ${i} does not fit in int32`);
        }
        out[i] = Number(v);
      }
      return out;
    default:
      throw new SafetensorsError(name, `toInt32 needs an integer dtype, got ${entry.dtype}`);
  }
}

/**
 * The little-endian bytes of a typed array, as a safetensors file stores them: a view of its memory
 * on a little-endian host, a byte-swapped copy otherwise. Used to checksum tensors.
 */
export function littleEndianBytes(data: TensorData): Uint8Array {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (LITTLE_ENDIAN_HOST || data.BYTES_PER_ELEMENT === 1) return bytes;
  const copy = bytes.slice();
  swapBytes(copy, data.BYTES_PER_ELEMENT);
  return copy;
}

// ---- writing --------------------------------------------------------------------------------------

const INT_RANGE: Partial<Record<DType, [number, number]>> = {
  I32: [-2147483648, 2147483647],
  I16: [-32768, 32767],
  I8: [-128, 127],
  U32: [0, 4294967295],
  U16: [0, 65535],
  U8: [0, 255],
  BOOL: [0, 1],
};
const BIG_RANGE: Partial<Record<DType, [bigint, bigint]>> = {
  I64: [-(2n ** 63n), 2n ** 63n - 1n],
  U64: [0n, 2n ** 64n - 1n],
};

/** Encode one tensor's elements as little-endian bytes, validating every value. */
function encodeTensorData(name: string, t: TensorInput, count: number, fail: (p: string) => never): Uint8Array {
  const { dtype, data } = t;
  const label = `tensor ${JSON.stringify(name)} (${dtype})`;
  const out = makeArray(dtype, new ArrayBuffer(count * DTYPE_SIZE[dtype]), 0, count);
  const badValue = (i: number, why: string): never => fail(`${label}: value ${String(data[i])} at index ${i} ${why}`);

  if (((dtype === 'F16' || dtype === 'BF16') && data instanceof Uint16Array) || isOwnFloatArray(dtype, data)) {
    // raw bit patterns (F16/BF16), or a float array of the dtype itself: a bit-exact copy (memcpy)
    (out as Uint16Array | Float32Array | Float64Array).set(data as Uint16Array | Float32Array | Float64Array);
  } else if (dtype === 'F64' || dtype === 'F32' || dtype === 'F16' || dtype === 'BF16') {
    const encode = dtype === 'F16' ? numberToF16Bits : dtype === 'BF16' ? numberToBF16Bits : (x: number) => x;
    const dst = out as Float64Array | Float32Array | Uint16Array;
    for (let i = 0; i < count; i++) {
      const v = data[i];
      if (typeof v !== 'number') badValue(i, 'is not a number');
      dst[i] = encode(v as number); // Float32Array stores round-to-nearest-even (Math.fround)
    }
  } else if (dtype === 'I64' || dtype === 'U64') {
    const [lo, hi] = BIG_RANGE[dtype]!;
    const dst = out as BigInt64Array | BigUint64Array;
    for (let i = 0; i < count; i++) {
      const v = data[i];
      let b: bigint;
      if (typeof v === 'bigint') b = v;
      else if (typeof v === 'number' && Number.isSafeInteger(v)) b = BigInt(v);
      else b = badValue(i, 'is not a bigint or safe integer');
      if (b < lo || b > hi) badValue(i, `is out of range for ${dtype}`);
      dst[i] = b;
    }
  } else {
    const [lo, hi] = INT_RANGE[dtype]!;
    const dst = out as Exclude<TensorData, BigInt64Array | BigUint64Array>;
    for (let i = 0; i < count; i++) {
      const raw = data[i];
      const v = typeof raw === 'boolean' ? Number(raw) : typeof raw === 'bigint' ? Number(raw) : raw;
      if (typeof v !== 'number' || !Number.isInteger(v)) badValue(i, 'is not an integer');
      if (v < lo || v > hi) badValue(i, `is out of range for ${dtype}`);
      dst[i] = v;
    }
  }
  const bytes = new Uint8Array(out.buffer);
  if (!LITTLE_ENDIAN_HOST) swapBytes(bytes, DTYPE_SIZE[dtype]);
  return bytes;
}

/**
 * The bytes the writer stores for one tensor (validated like serializeSafetensors does), e.g. to
 * checksum them before the header that will hold the checksum is written.
 */
export function tensorBytes(name: string, t: TensorInput): Uint8Array {
  const fail: (problem: string) => never = (problem) => {
    throw new SafetensorsError('tensorBytes', problem);
  };
  const label = `tensor ${quote(name, 80)}`;
  if (!isDType(t.dtype)) fail(`${label}: unknown dtype ${quote(t.dtype)}`);
  for (const d of t.shape) if (!isNonNegativeInt(d)) fail(`${label}: shape dimension ${quote(d)} is not a non-negative integer`);
  const count = elementCount(t.shape);
  if (count === null || t.data.length !== count) fail(`${label}: data has ${t.data.length} elements but shape ${fmtShape(t.shape)} needs ${count}`);
  // The writer copies such an array bit for bit: its own bytes are the stored bytes (no copy here).
  if (isOwnFloatArray(t.dtype, t.data)) return littleEndianBytes(t.data);
  return encodeTensorData(name, t, count!, fail);
}

/** True when `data` is the typed array of float dtype `dtype` itself (F64: Float64Array, F32: Float32Array). */
function isOwnFloatArray(dtype: DType, data: TensorInput['data']): data is Float64Array | Float32Array {
  return (dtype === 'F64' && data instanceof Float64Array) || (dtype === 'F32' && data instanceof Float32Array);
}

/** The writer's tensor order: by dtype size (largest first), then by name. */
function byLayoutOrder(a: { name: string; dtype: DType }, b: { name: string; dtype: DType }): number {
  return DTYPE_SIZE[b.dtype] - DTYPE_SIZE[a.dtype] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/** The header JSON of tensors already in layout order, and the padded header and data lengths. */
function buildHeader(
  tensors: readonly { name: string; dtype: DType; shape: readonly number[]; byteLength: number }[],
  metadata: Record<string, string> | undefined,
  fail: (problem: string) => never,
): { json: Uint8Array; headerLength: number; offset: number } {
  // Build the JSON by hand so key order is exactly ours (JS objects move integer-like keys first).
  const parts: string[] = [];
  if (metadata !== undefined && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') fail(`metadata value for key ${JSON.stringify(k)} is not a string`);
    }
    parts.push(`${JSON.stringify(METADATA_KEY)}:${JSON.stringify(metadata)}`);
  }
  let offset = 0;
  for (const t of tensors) {
    const info = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.byteLength] };
    parts.push(`${JSON.stringify(t.name)}:${JSON.stringify(info)}`);
    offset += t.byteLength;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const headerLength = Math.ceil(json.length / 8) * 8;
  if (headerLength > MAX_HEADER_SIZE) fail(`header of ${headerLength} bytes exceeds the limit of ${MAX_HEADER_SIZE} bytes`);
  return { json, headerLength, offset };
}

/**
 * Serialize tensors (and optional string metadata) to safetensors bytes. Tensors are laid out by
 * dtype size (largest first), then by name, contiguously; the header is space-padded to a multiple
 * of 8 bytes so every tensor is aligned to its element size within the file.
 */
export function serializeSafetensors(tensors: Record<string, TensorInput> | Map<string, TensorInput>, metadata?: Record<string, string>): Uint8Array {
  const fail: (problem: string) => never = (problem) => {
    throw new SafetensorsError('serializeSafetensors', problem);
  };
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);

  const prepared = entries.map(([name, t]) => {
    const label = `tensor ${JSON.stringify(name)}`;
    if (name === METADATA_KEY) fail(`"${METADATA_KEY}" is reserved and cannot name a tensor`);
    if (!isDType(t.dtype)) fail(`${label}: unknown dtype ${quote(t.dtype)}`);
    for (const d of t.shape) {
      if (!isNonNegativeInt(d)) fail(`${label}: shape dimension ${quote(d)} is not a non-negative integer`);
    }
    const count = elementCount(t.shape);
    if (count === null) fail(`${label}: element count of shape ${fmtShape(t.shape)} overflows`);
    if (t.data.length !== count) {
      fail(`${label}: data has ${t.data.length} elements but shape ${fmtShape(t.shape)} needs ${count}`);
    }
    return { name, dtype: t.dtype, shape: [...t.shape], bytes: encodeTensorData(name, t, count!, fail) };
  });
  prepared.sort(byLayoutOrder);
  const { json, headerLength, offset } = buildHeader(
    prepared.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, byteLength: t.bytes.length })),
    metadata,
    fail,
  );

  const out = new Uint8Array(8 + headerLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength);
  let pos = 8 + headerLength;
  for (const t of prepared) {
    out.set(t.bytes, pos);
    pos += t.bytes.length;
  }
  return out;
}

/**
 * Serialize and write atomically (src/util/atomic.ts): the bytes go to a temporary file in the same
 * directory, are fsynced, and the temporary file is renamed over `filePath` (then the directory is
 * fsynced, best effort). A crash leaves either the old file or the new one, never a truncated one.
 */
export function writeSafetensors(filePath: string, tensors: Record<string, TensorInput> | Map<string, TensorInput>, metadata?: Record<string, string>): void {
  const bytes = serializeSafetensors(tensors, metadata);
  try {
    writeFileAtomic(filePath, bytes, { fsync: true });
  } catch (e) {
    throw new SafetensorsError(filePath, `cannot write file: ${(e as Error).message.replace(/^cannot write '[^']*': /, '')}`);
  }
}

/** A tensor whose data is produced only when the writer reaches it (TensorInput with data deferred). */
export interface DeferredTensor {
  dtype: DType;
  shape: readonly number[];
  data: () => TensorInput['data'];
}

/**
 * Write the same bytes as writeSafetensors without holding the whole file in memory: the header is
 * computed from the shapes, then each tensor's data is produced, encoded and written in turn
 * (atomically, as writeSafetensors). For large files (optimizer state, activation buffers) whose
 * serialized copy would double the memory a command needs.
 */
export function writeSafetensorsStreamed(filePath: string, tensors: Map<string, DeferredTensor>, metadata?: Record<string, string>): void {
  const fail: (problem: string) => never = (problem) => {
    throw new SafetensorsError('writeSafetensorsStreamed', problem);
  };
  const list = [...tensors.entries()].map(([name, t]) => {
    if (name === METADATA_KEY) fail(`"${METADATA_KEY}" is reserved and cannot name a tensor`);
    if (!isDType(t.dtype)) fail(`tensor ${quote(name, 80)}: unknown dtype ${quote(t.dtype)}`);
    for (const d of t.shape) if (!isNonNegativeInt(d)) fail(`tensor ${quote(name, 80)}: shape dimension ${quote(d)} is not a non-negative integer`);
    const count = elementCount(t.shape);
    if (count === null) fail(`tensor ${quote(name, 80)}: element count of shape ${fmtShape(t.shape)} overflows`);
    return { name, dtype: t.dtype, shape: [...t.shape], byteLength: count! * DTYPE_SIZE[t.dtype], data: t.data };
  });
  list.sort(byLayoutOrder);
  const { json, headerLength } = buildHeader(list, metadata, fail);
  const w = new AtomicWriter(filePath, { fsync: true });
  try {
    const head = new Uint8Array(8 + headerLength);
    new DataView(head.buffer).setBigUint64(0, BigInt(headerLength), true);
    head.set(json, 8);
    head.fill(0x20, 8 + json.length);
    w.writeBytes(head);
    for (const t of list) {
      const bytes = tensorBytes(t.name, { dtype: t.dtype, shape: t.shape, data: t.data() });
      if (bytes.length !== t.byteLength) fail(`tensor ${quote(t.name, 80)}: ${bytes.length} bytes, expected ${t.byteLength}`);
      w.writeBytes(bytes);
    }
    w.close();
  } catch (e) {
    w.abort();
    if (e instanceof SafetensorsError) throw e;
    throw new SafetensorsError(filePath, `cannot write file: ${(e as Error).message.replace(/^cannot write '[^']*': /, '')}`);
  }
}
