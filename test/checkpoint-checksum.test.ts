// The checksum of crate-ts checkpoints (src/checkpoint/checksum.ts) on small in-memory files: what
// makeChecksum writes, recomputed with node:crypto, and every refusal of verifyChecksum with its exact
// message. (Written for the mutants StrykerJS found surviving in checksum.ts: README, Tests.)
import { describe, it, expect } from 'vitest';
import { createHash } from 'node:crypto';
import { CHECKSUM_KEY, makeChecksum, verifyChecksum } from '../src/checkpoint/checksum.js';
import { CheckpointError } from '../src/errors.js';
import type { SafetensorsFile, TensorEntry } from '../src/io/safetensors.js';

const sha = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');
const bytesOf = (t: TensorEntry) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);

/** A two-tensor file with two metadata entries and its checksum (edit() changes a copy first). */
function file(edit: (f: SafetensorsFile, sum: { algorithm: unknown; metadata: Record<string, unknown>; tensors: Record<string, unknown> }) => void = () => {}) {
  const tensors = new Map<string, TensorEntry>([
    ['a', { dtype: 'F64', shape: [2], data: new Float64Array([1, 2]) }],
    ['b', { dtype: 'F32', shape: [1], data: new Float32Array([3]) }],
  ]);
  const metadata: Record<string, string> = { format: 'pt', config: '{"n_layer":1}' };
  const sum = JSON.parse(
    makeChecksum(
      [...tensors].map(([n, t]) => [n, bytesOf(t)] as [string, Uint8Array]),
      metadata,
    ),
  );
  const f: SafetensorsFile = { tensors, metadata: { ...metadata } };
  edit(f, sum);
  if (!(CHECKSUM_KEY in f.metadata)) f.metadata[CHECKSUM_KEY] = JSON.stringify(sum);
  return f;
}

/** The message verifyChecksum throws for `f` (a CheckpointError), without the "<source>: " prefix. */
function refusal(f: SafetensorsFile): string {
  try {
    verifyChecksum(f, 'ck.safetensors');
  } catch (e) {
    expect(e).toBeInstanceOf(CheckpointError);
    const msg = (e as Error).message;
    expect(msg.startsWith('ck.safetensors: ')).toBe(true);
    return msg.slice('ck.safetensors: '.length);
  }
  throw new Error('verifyChecksum accepted the file');
}

describe('makeChecksum', () => {
  it('is {algorithm: sha256, metadata: sha256 of each value but the checksum itself, tensors: sha256 of each tensor`s bytes}', () => {
    const a = new Uint8Array([1, 2, 3]),
      b = new Uint8Array(0);
    const sum = JSON.parse(
      makeChecksum(
        [
          ['a', a],
          ['b', b],
        ],
        { x: 'hello', [CHECKSUM_KEY]: 'old', y: '' },
      ),
    );
    expect(sum).toEqual({ algorithm: 'sha256', metadata: { x: sha('hello'), y: sha('') }, tensors: { a: sha(a), b: sha(b) } });
    expect(sum.metadata.x).toBe('2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824');
  });
});

describe('verifyChecksum', () => {
  it('accepts the file it was made for, and a file without a checksum whatever it holds', () => {
    expect(() => verifyChecksum(file(), 'ck')).not.toThrow();
    expect(() => verifyChecksum({ tensors: new Map(), metadata: { anything: 'x' } }, 'ck')).not.toThrow();
  });

  it('a checksum that is not JSON, not an object, of another algorithm, or without its two objects is named', () => {
    const withSum = (s: string) => file((f) => void (f.metadata[CHECKSUM_KEY] = s));
    expect(refusal(withSum('{'))).toBe('metadata "checksum" is not valid JSON');
    expect(refusal(withSum('null'))).toBe('metadata "checksum" must be a JSON object, got null');
    expect(refusal(withSum('[1]'))).toBe('metadata "checksum" must be a JSON object, got [1]');
    expect(refusal(withSum('"x"'))).toBe('metadata "checksum" must be a JSON object, got "x"');
    expect(refusal(withSum('{"algorithm":"md5","metadata":{},"tensors":{}}'))).toBe(
      'metadata "checksum" names the algorithm "md5"; this crate-ts verifies sha256',
    );
    expect(refusal(withSum('{"metadata":{},"tensors":{}}'))).toBe('metadata "checksum" names the algorithm undefined; this crate-ts verifies sha256');
    for (const md of ['', ',"metadata":null', ',"metadata":[]', ',"metadata":"x"'])
      expect(refusal(withSum(`{"algorithm":"sha256"${md},"tensors":{}}`))).toBe('metadata "checksum" has no "metadata" object');
    for (const t of ['', ',"tensors":null', ',"tensors":[]'])
      expect(refusal(withSum(`{"algorithm":"sha256","metadata":{}${t}}`))).toBe('metadata "checksum" has no "tensors" object');
  });

  it('a listed hash that is not 64 lower-case hex digits is malformed, for a metadata entry or a tensor', () => {
    const good = sha('x');
    for (const bad of ['abc', good.toUpperCase(), `${good}0`, `0${good}`, `${good.slice(1)}g`, 42, null]) {
      expect(refusal(file((_, s) => void (s.tensors.b = bad)))).toBe('metadata "checksum" holds a malformed sha256 for tensor "b"');
    }
    expect(refusal(file((_, s) => void (s.metadata.format = `x${good.slice(1)}`)))).toBe(
      'metadata "checksum" holds a malformed sha256 for metadata entry "format"',
    );
  });

  it('a changed value or tensor is a mismatch naming it; metadata is checked first', () => {
    const tail = ': the file was changed or corrupted after it was written (loadCheckpoint(path, { verifyChecksum: false }) skips this check)';
    expect(refusal(file((f) => void (f.metadata.config = '{"n_layer":2}')))).toBe(`checksum mismatch in metadata entry "config"${tail}`);
    expect(refusal(file((f) => void ((f.tensors.get('a')!.data as Float64Array)[1] = 2.5)))).toBe(`checksum mismatch in tensor "a"${tail}`);
    expect(
      refusal(
        file((f) => {
          (f.tensors.get('b')!.data as Float32Array)[0] = 4;
          f.metadata.format = 'np';
        }),
      ),
    ).toBe(`checksum mismatch in metadata entry "format"${tail}`);
  });

  it('an entry or tensor present on one side only is named: added after writing, or listed but missing', () => {
    expect(refusal(file((f) => void (f.metadata.note = 'hi')))).toBe(
      'metadata entry "note" is not covered by the checksum: it was added after crate-ts wrote the file',
    );
    expect(refusal(file((f) => void f.tensors.set('c', { dtype: 'F32', shape: [1], data: new Float32Array([0]) })))).toBe(
      'tensor "c" is not covered by the checksum: it was added after crate-ts wrote the file',
    );
    expect(refusal(file((f) => void delete f.metadata.format))).toBe('metadata entry "format" listed in the checksum is missing from the file');
    expect(refusal(file((f) => void f.tensors.delete('b')))).toBe('tensor "b" listed in the checksum is missing from the file');
    // a name inherited by every object is not "listed"
    expect(refusal(file((f) => void f.tensors.set('constructor', { dtype: 'F32', shape: [1], data: new Float32Array([0]) })))).toBe(
      'tensor "constructor" is not covered by the checksum: it was added after crate-ts wrote the file',
    );
  });
});
