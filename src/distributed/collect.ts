// Sharded collection (crate-ts neurons collect under mpirun): which windows a rank runs, and the
// byte packing of the shards' states that rank 0 merges (LayerCollector.exportShard/mergeShards).
//
// The windows are cut into the forward batches a single process would run (chunks of `batch`
// windows) and the chunks into contiguous ranges, one per rank, so every row is computed in the
// same batch as in a single pass (bitwise the same activations) and the moments see the same
// chunks. A rank also runs the chunks just before and after its range (a halo) so that excerpts
// crossing its edges are complete; the halo's rows feed only excerpts.
import { UsageError } from '../errors.js';

export interface WindowShard {
  /** Windows this rank runs, halo included: [w0, w1). */
  w0: number;
  w1: number;
  /** Its own flat positions [lo, hi). */
  lo: number;
  hi: number;
}

export function shardWindows(nWin: number, batch: number, T: number, rank: number, ranks: number, before: number, after: number): WindowShard {
  const nChunks = Math.ceil(nWin / batch);
  if (ranks === 1) return { w0: 0, w1: nWin, lo: 0, hi: nWin * T };
  if (nChunks < ranks)
    throw new UsageError(
      (n) =>
        `${nWin} windows in forward batches of ${batch} make ${nChunks} chunk${nChunks === 1 ? '' : 's'}, fewer than the ${ranks} ranks: collect more tokens, or use a smaller ${n('batch')} or fewer ranks`,
      { option: 'batch' },
    );
  const c0 = Math.floor((rank * nChunks) / ranks),
    c1 = Math.floor(((rank + 1) * nChunks) / ranks);
  const chunkTokens = batch * T;
  const hb = Math.ceil(before / chunkTokens),
    ha = Math.ceil(after / chunkTokens);
  const w0 = Math.max(0, c0 - hb) * batch,
    w1 = Math.min(nWin, (c1 + ha) * batch);
  return { w0, w1, lo: c0 * batch * T, hi: Math.min(nWin, c1 * batch) * T };
}

/** Several Float64Arrays as one byte buffer: count, lengths, then the values. */
export function packShards(arrays: readonly Float64Array[]): Uint8Array {
  const head = new Float64Array([arrays.length, ...arrays.map((a) => a.length)]);
  const total = head.length + arrays.reduce((s, a) => s + a.length, 0);
  const out = new Float64Array(total);
  out.set(head, 0);
  let at = head.length;
  for (const a of arrays) {
    out.set(a, at);
    at += a.length;
  }
  return new Uint8Array(out.buffer);
}

/** packShards undone, per rank: parts[r] holds `layers` arrays. */
export function unpackShards(parts: readonly Uint8Array[], layers: number): Float64Array[][] {
  return parts.map((p, r) => {
    if (p.byteLength % 8 !== 0) throw new RangeError(`rank ${r} sent ${p.byteLength} bytes, not whole float64 values`);
    const all =
      p.byteOffset % 8 === 0
        ? new Float64Array(p.buffer, p.byteOffset, p.byteLength / 8)
        : new Float64Array(p.buffer.slice(p.byteOffset, p.byteOffset + p.byteLength));
    const n = all[0];
    if (n !== layers) throw new RangeError(`rank ${r} sent ${n} layer states, expected ${layers}`);
    let at = 1 + n;
    const out: Float64Array[] = [];
    for (let j = 0; j < n; j++) {
      out.push(all.subarray(at, at + all[1 + j]));
      at += all[1 + j];
    }
    return out;
  });
}
