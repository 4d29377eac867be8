// Checksums of crate-ts checkpoints (format_version 2): the metadata entry `checksum` holds
//   {"algorithm":"sha256","metadata":{"<key>":"<hex>",...},"tensors":{"<name>":"<hex>",...}}
// with the SHA-256 of every other metadata value (its UTF-8 bytes) and of every tensor's data
// (its little-endian bytes as stored in the file). Loading recomputes them and names the first
// metadata entry or tensor that differs, so an edited config (n_head 4 -> 2 keeps every shape), a
// flipped byte in a weight, or a tensor added or removed after saving is refused instead of loading
// silently as another model. Files without a `checksum` entry (PyTorch-made, fixtures, crate-ts
// format_version 1) have nothing to verify.
import { createHash } from 'node:crypto';
import { littleEndianBytes, quote, type SafetensorsFile } from '../io/safetensors.js';
import { checkpointError } from './validate.js';

export const CHECKSUM_KEY = 'checksum';
const ALGORITHM = 'sha256';

const sha256 = (bytes: Uint8Array | string): string => createHash(ALGORITHM).update(bytes).digest('hex');
const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const HEX64 = /^[0-9a-f]{64}$/;

/**
 * The `checksum` metadata value for tensors whose stored bytes are `tensorBytes` (name -> the
 * little-endian bytes the writer puts in the file) and the other metadata entries.
 */
export function makeChecksum(tensorBytes: Iterable<[string, Uint8Array]>, metadata: Record<string, string>): string {
  const md: Record<string, string> = {};
  for (const [k, v] of Object.entries(metadata)) if (k !== CHECKSUM_KEY) md[k] = sha256(v);
  const tensors: Record<string, string> = {};
  for (const [name, bytes] of tensorBytes) tensors[name] = sha256(bytes);
  return JSON.stringify({ algorithm: ALGORITHM, metadata: md, tensors });
}

/** Parse a `checksum` metadata value, or throw naming what is malformed. */
function parseChecksum(json: string, source: string): { metadata: Record<string, unknown>; tensors: Record<string, unknown> } {
  const fail = (problem: string): never => {
    throw checkpointError(source, `metadata "${CHECKSUM_KEY}" ${problem}`);
  };
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    fail('is not valid JSON');
  }
  if (!isPlainObject(raw)) fail(`must be a JSON object, got ${quote(raw)}`);
  const r = raw as Record<string, unknown>;
  if (r.algorithm !== ALGORITHM) fail(`names the algorithm ${quote(r.algorithm)}; this crate-ts verifies ${ALGORITHM}`);
  if (!isPlainObject(r.metadata)) fail('has no "metadata" object');
  if (!isPlainObject(r.tensors)) fail('has no "tensors" object');
  return { metadata: r.metadata as Record<string, unknown>, tensors: r.tensors as Record<string, unknown> };
}

/**
 * Verify a file's `checksum` entry against its metadata and tensors. Throws a CheckpointError naming
 * the metadata entry or tensor that does not match, or that is present on one side only.
 */
export function verifyChecksum(file: SafetensorsFile, source: string): void {
  const json = file.metadata[CHECKSUM_KEY];
  if (json === undefined) return;
  const want = parseChecksum(json, source);
  const check = (kind: 'metadata entry' | 'tensor', name: string, listed: Record<string, unknown>, actual: () => string) => {
    const has = Object.prototype.hasOwnProperty.call(listed, name);
    if (!has) throw checkpointError(source, `${kind} ${quote(name, 80)} is not covered by the checksum: it was added after crate-ts wrote the file`);
    const h = listed[name];
    if (typeof h !== 'string' || !HEX64.test(h))
      throw checkpointError(source, `metadata "${CHECKSUM_KEY}" holds a malformed ${ALGORITHM} for ${kind} ${quote(name, 80)}`);
    if (h !== actual())
      throw checkpointError(
        source,
        `checksum mismatch in ${kind} ${quote(name, 80)}: the file was changed or corrupted after it was written (loadCheckpoint(path, { verifyChecksum: false }) skips this check)`,
      );
  };
  for (const [k, v] of Object.entries(file.metadata)) if (k !== CHECKSUM_KEY) check('metadata entry', k, want.metadata, () => sha256(v));
  for (const [name, t] of file.tensors) check('tensor', name, want.tensors, () => sha256(littleEndianBytes(t.data)));
  for (const k of Object.keys(want.metadata)) {
    if (!Object.prototype.hasOwnProperty.call(file.metadata, k))
      throw checkpointError(source, `metadata entry ${quote(k, 80)} listed in the checksum is missing from the file`);
  }
  for (const name of Object.keys(want.tensors)) {
    if (!file.tensors.has(name)) throw checkpointError(source, `tensor ${quote(name, 80)} listed in the checksum is missing from the file`);
  }
}
