// Loads the native addon (build/Release/crate_native.node, built by `npm install` through
// scripts/build-native.mjs, or by `npm run build:native` / `npm run build:cmake`).
//
// If it cannot be loaded, the reason (including the compiler's complaint that the install step
// saved in build/native-build-error.txt) is kept and thrown to whoever asks for a native backend;
// the commands print it (selectBackend reports it), the library does not.
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The functions the addon exports (native/binding.cc). Buffers are {handle, offset, length}. */
export interface NativeBufRef {
  readonly handle: number;
  readonly offset: number;
  readonly length: number;
}
type B = NativeBufRef;
type OptB = NativeBufRef | null;

/** The memory and operator functions both the CPU binding and exports.cuda provide, with the same names. */
export interface NativeOps {
  alloc(n: number): number;
  free(handle: number): void;
  live_buffers(): number;
  upload(dst: B, src: Float64Array | Float32Array): void;
  download(src: B): Float64Array;
  download_f32(src: B): Float32Array;
  fill(buf: B, value: number): void;
  copy(dst: B, src: B): void;
  add(out: B, a: B, b: B): void;
  scale(buf: B, s: number): void;
  sum_squares(buf: B): number;
  all_finite(buf: B): boolean;
  relu_forward(out: B, inp: B): void;
  relu_backward(dinp: B, dout: B, out: B): void;
  embedding_forward(out: B, idx: Int32Array, wte: B, wpe: B, Bn: number, T: number, C: number): void;
  embedding_backward(dwte: B, dwpe: B, dout: B, idx: Int32Array, Bn: number, T: number, C: number): void;
  layernorm_forward(out: B, mean: B, rstd: B, inp: B, weight: B, bias: OptB, N: number, C: number, eps: number): void;
  layernorm_backward(dinp: B, dweight: B, dbias: OptB, dout: B, inp: B, weight: B, mean: B, rstd: B, N: number, C: number): void;
  linear_forward(out: B, inp: B, weight: B, bias: OptB, N: number, C: number, OC: number): void;
  linear_backward(dinp: OptB, dweight: B, dbias: OptB, dout: B, inp: B, weight: B, N: number, C: number, OC: number): void;
  sgemm(transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number, A: B, Bm: B, accumulate: boolean, C: B): void;
  attention_saved_size(Bn: number, NH: number, T: number): number;
  mssa_forward(y: B, saved: B, v: B, Bn: number, T: number, C: number, NH: number): void;
  mssa_backward(dv: B, dy: B, v: B, y: B, saved: B, Bn: number, T: number, C: number, NH: number): void;
  attention_forward(y: B, saved: B, qkv: B, Bn: number, T: number, C: number, NH: number): void;
  attention_backward(dqkv: B, dy: B, qkv: B, y: B, saved: B, Bn: number, T: number, C: number, NH: number): void;
  ista_forward(out: B, codes: B, u: B, A: B, N: number, C: number, H: number, eta: number, lam: number, steps: number): void;
  ista_backward(du: B, dA: B, dout: B, u: B, A: B, codes: B, N: number, C: number, H: number, eta: number, lam: number, steps: number): void;
  ista_complete_forward(out: B, x: B, W: B, N: number, C: number, eta: number, lam: number): void;
  ista_complete_backward(dx: B, dW: B, dout: B, x: B, W: B, out: B, N: number, C: number, eta: number, lam: number): void;
  cross_entropy_forward(dlogits: OptB, logits: B, targets: Int32Array, N: number, V: number, gradScale: number): number;
  adamw_update(param: B, grad: B, m: B, v: B, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number): void;
}

/** The CPU addon: the operators plus its runtime controls. */
export interface NativeAddon extends NativeOps {
  set_threads(n: number): void;
  threads(): number;
  gemm_kernel(): string;
  set_gemm_kernel(name: string): boolean;
  fma_peak_gflops(seconds: number): number;
}

/** The package root: this file is src/backend/loader.ts or dist/backend/loader.js. */
export function packageRoot(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
}

/** Where the addon is looked for (CRATE_TS_NATIVE_ADDON overrides). */
export function addonPath(): string {
  return process.env.CRATE_TS_NATIVE_ADDON || path.join(packageRoot(), 'build', 'Release', 'crate_native.node');
}

let cached: { addon?: NativeAddon; reason?: string } | undefined;

function buildErrorNote(): string {
  const f = path.join(packageRoot(), 'build', 'native-build-error.txt');
  if (!existsSync(f)) return '';
  try {
    const lines = readFileSync(f, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l.length > 0);
    // The first line says what failed; the most telling compiler line is usually an "error:".
    const err = lines.find((l) => /error/i.test(l) && l !== lines[0]);
    return `; the install-time build failed: ${lines[0] ?? 'see build/native-build-error.txt'}${err ? ` (${err.slice(0, 200)})` : ''}`;
  } catch {
    return '';
  }
}

function tryLoad(): { addon?: NativeAddon; reason?: string } {
  const file = addonPath();
  if (!existsSync(file)) {
    return { reason: `native addon ${path.relative(process.cwd(), file) || file} is not built${buildErrorNote()}; build it with 'npm run build:native'` };
  }
  try {
    const req = createRequire(import.meta.url);
    const addon = req(file) as NativeAddon;
    if (typeof addon.alloc !== 'function' || typeof addon.linear_forward !== 'function') {
      return { reason: `native addon ${file} does not export the expected functions (stale build? run 'npm run build:native')` };
    }
    return { addon };
  } catch (e) {
    const msg = e instanceof Error ? e.message.split('\n')[0] : String(e);
    return { reason: `native addon ${file} failed to load: ${msg}` };
  }
}

/** The addon, or null; `reason` says why not. Loads once per process. */
export function tryLoadAddon(): { addon: NativeAddon | null; reason: string | null } {
  cached ??= tryLoad();
  return { addon: cached.addon ?? null, reason: cached.reason ?? null };
}

/** The addon; throws an Error with the reason if unavailable (commands print it: selectBackend reports it). */
export function loadAddon(): NativeAddon {
  const { addon, reason } = tryLoadAddon();
  if (addon) return addon;
  throw new Error(reason ?? 'native addon unavailable');
}
