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
import { OPERATORS, type NativeBufRef, type NativeFunctions } from './op-table.js';

export type { NativeBufRef };
type B = NativeBufRef;

/**
 * The functions both the CPU addon and exports.cuda provide (native/binding.h): the memory functions,
 * sgemm, and one function per row of the operator table (NativeFunctions, generated from native/ops.json).
 * Buffers are {handle, offset, length}.
 */
export interface NativeOps extends NativeFunctions {
  alloc(n: number): number;
  free(handle: number): void;
  live_buffers(): number;
  upload(dst: B, src: Float64Array | Float32Array): void;
  download(src: B): Float64Array;
  download_f32(src: B): Float32Array;
  sgemm(transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number, A: B, Bm: B, accumulate: boolean, C: B): void;
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

/**
 * Where the addon is looked for: build/Release/crate_native.node, or the file CRATE_TS_NATIVE_ADDON
 * names (npm run test:asan points it at build-asan/crate_native.node, the sanitizer build;
 * scripts/check-cuda.sh --emulate at build/cuda-emu/crate_native.node).
 */
export function addonPath(): string {
  return process.env.CRATE_TS_NATIVE_ADDON || path.join(packageRoot(), 'build', 'Release', 'crate_native.node');
}

let cached: { addon?: NativeAddon; reason?: string } | undefined;

function buildErrorNote(): string {
  const f = path.join(packageRoot(), 'build', 'native-build-error.txt');
  if (!existsSync(f)) return '';
  try {
    // scripts/build-native.mjs writes the one-line summary first; the full compiler log follows.
    const first = readFileSync(f, 'utf8').split('\n', 1)[0].trim();
    return `; the install-time build failed: ${first.slice(0, 200) || 'see the log'} (full log: ${f})`;
  } catch {
    return '';
  }
}

/** The command that rebuilds the addon: `npm rebuild crate-ts` where crate-ts is an installed package, else `npm run build:native`. */
export function rebuildCommand(root = packageRoot()): string {
  return root.split(path.sep).includes('node_modules') ? 'npm rebuild crate-ts' : 'npm run build:native';
}

function tryLoad(): { addon?: NativeAddon; reason?: string } {
  const file = addonPath();
  if (!existsSync(file)) {
    return { reason: `native addon ${path.relative(process.cwd(), file) || file} is not built${buildErrorNote()}; build it with '${rebuildCommand()}'` };
  }
  try {
    const req = createRequire(import.meta.url);
    const addon = req(file) as NativeAddon;
    const missing = ['alloc', ...OPERATORS.map((o) => o.name)].filter((f) => typeof (addon as unknown as Record<string, unknown>)[f] !== 'function');
    if (missing.length > 0) {
      return { reason: `native addon ${file} does not export ${missing.join(', ')} (a stale build? run '${rebuildCommand()}')` };
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
