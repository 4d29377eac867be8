// The reference backend: the pure-TypeScript float64 operators of src/reference behind the
// Backend interface. Buffers are Float64Array; a view is a subarray sharing memory.
import type { Backend } from './types.js';
import { embeddingForward, embeddingBackward } from '../reference/embedding.js';
import { layernormForward, layernormBackward } from '../reference/layernorm.js';
import { linearForward, linearBackward } from '../reference/linear.js';
import { reluForward, reluBackward, add } from '../reference/elementwise.js';
import { attentionSavedSize, mssaForward, mssaBackward, attentionForward, attentionBackward, attentionDecode } from '../reference/mssa.js';
import { istaForward, istaBackward, istaCompleteForward, istaCompleteBackward } from '../reference/ista.js';
import { crossEntropyForward } from '../reference/loss.js';
import { logitsStats, sampleLogits } from '../reference/logits.js';
import { adamwUpdate } from '../reference/adamw.js';
import {
  saeTopk,
  saeEncodeForward,
  saeDecodeForward,
  saeDecodeBackward,
  saeEncodeBackward,
  saeMseLoss,
  saeDecoderProject,
  saeNormalizeRows,
  saeFireCounts,
} from '../reference/sae.js';

export class ReferenceBackend implements Backend<Float64Array> {
  readonly name = 'reference' as const;
  readonly dtype = 'f64' as const;
  // Memory: a buffer is an ordinary Float64Array that the garbage collector reclaims once nothing
  // references it, freed or not; the backend keeps no strong reference to it (a Set of every
  // allocation kept 400 unfreed small models, 590 MB, alive). liveBuffers() counts allocations not
  // yet freed, whether or not the collector has since reclaimed them, so a missing free() still
  // shows in leak tests deterministically. The WeakSet makes free() idempotent.
  private allocated = new WeakSet<ArrayBuffer>();
  private unfreed = 0;

  alloc(n: number): Float64Array {
    if (!Number.isInteger(n) || n < 0) throw new Error(`alloc: size must be a non-negative integer, got ${n}`);
    const a = new Float64Array(n);
    this.allocated.add(a.buffer as ArrayBuffer);
    this.unfreed++;
    return a;
  }
  view(buf: Float64Array, offset: number, length: number): Float64Array {
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > buf.length) {
      throw new Error(`view: range [${offset}, ${offset + length}) is outside a buffer of ${buf.length} elements`);
    }
    return buf.subarray(offset, offset + length);
  }
  size(buf: Float64Array): number {
    return buf.length;
  }
  upload(dst: Float64Array, src: ArrayLike<number>): void {
    if (src.length !== dst.length) throw new Error(`upload: source has ${src.length} elements, destination ${dst.length}`);
    for (let i = 0; i < src.length; i++) dst[i] = src[i];
  }
  download(src: Float64Array): Float64Array {
    return Float64Array.from(src);
  }
  fill(buf: Float64Array, value: number): void {
    buf.fill(value);
  }
  copy(dst: Float64Array, src: Float64Array): void {
    if (src.length !== dst.length) throw new Error(`copy: source has ${src.length} elements, destination ${dst.length}`);
    dst.set(src);
  }
  free(buf: Float64Array): void {
    if (this.allocated.delete(buf.buffer as ArrayBuffer)) this.unfreed--;
  }
  liveBuffers(): number {
    return this.unfreed;
  }

  add(out: Float64Array, a: Float64Array, b: Float64Array): void {
    add(out, a, b);
  }
  scale(buf: Float64Array, s: number): void {
    for (let i = 0; i < buf.length; i++) buf[i] *= s;
  }
  sumSquares(buf: Float64Array): number {
    let s = 0;
    for (let i = 0; i < buf.length; i++) s += buf[i] * buf[i];
    return s;
  }
  allFinite(buf: Float64Array): boolean {
    for (let i = 0; i < buf.length; i++) if (!Number.isFinite(buf[i])) return false;
    return true;
  }

  embeddingForward = embeddingForward;
  embeddingBackward = embeddingBackward;
  layernormForward = layernormForward;
  layernormBackward = layernormBackward;
  linearForward = linearForward;
  linearBackward = linearBackward;
  reluForward = reluForward;
  reluBackward = reluBackward;
  attentionSavedSize = attentionSavedSize;
  attentionDecode = attentionDecode;
  mssaForward = mssaForward;
  mssaBackward = mssaBackward;
  attentionForward = attentionForward;
  attentionBackward = attentionBackward;
  istaForward = istaForward;
  istaBackward = istaBackward;
  istaCompleteForward = istaCompleteForward;
  istaCompleteBackward = istaCompleteBackward;
  crossEntropyForward = crossEntropyForward;
  logitsStats = logitsStats;
  sampleLogits(logits: Float64Array, n: number, temperature: number, topK: number, topP: number, u: number): number {
    return sampleLogits(logits, logits.length, n, temperature, topK, topP, u);
  }
  adamwUpdate = adamwUpdate;
  saeTopk = saeTopk;
  saeEncodeForward = saeEncodeForward;
  saeDecodeForward = saeDecodeForward;
  saeDecodeBackward = saeDecodeBackward;
  saeEncodeBackward = saeEncodeBackward;
  saeMseLoss = saeMseLoss;
  saeDecoderProject = saeDecoderProject;
  saeNormalizeRows = saeNormalizeRows;
  saeFireCounts = saeFireCounts;
}
