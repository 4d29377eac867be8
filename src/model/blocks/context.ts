// What a block sees while it runs: the backend, the configuration, the sizes of this call, the
// parameters by name, and the hook points. A block calls `point(ctx, name, buf, shape)` (or
// `hostPoint` for a tensor the backend does not hold) after it writes each named intermediate;
// without hooks that is one null check.
import type { Backend } from '../../backend/types.js';
import { ActivationCache, applyHook, view, type Activation, type HookFn } from '../activation.js';

/** What a block reads of the model's configuration (ModelConfig, src/model/config.ts, documents each field). */
export interface BlockConfig {
  readonly nLayer: number;
  readonly nHead: number;
  readonly nEmbd: number;
  readonly overcomplete: number;
  readonly istaSteps: number;
  readonly eta: number;
  readonly lam: number;
  readonly lnEps: number;
}

/** The hooks of one call: what to cache and what to patch, keyed by canonical hook name. */
export class HookState {
  /** canonical name → the names the caller asked for (an alias and the name itself may both be asked). */
  readonly cacheAs = new Map<string, string[]>();
  /** canonical name → [the caller's name, hook] in registration order. */
  readonly patches = new Map<string, [string, HookFn][]>();
  readonly cache = new ActivationCache();
  /** True once any hook has been given the chance to replace a value. */
  patched = false;

  wants(name: string): boolean {
    return this.cacheAs.has(name) || this.patches.has(name);
  }
}

export interface Ctx<Buf> {
  be: Backend<Buf>;
  cfg: BlockConfig;
  /** Sequences in the batch, positions per sequence, rows N = B·T. */
  B: number;
  T: number;
  N: number;
  param(name: string): Buf;
  grad(name: string): Buf;
  /** The hooks of this call, or null (the fast path). */
  hooks: HookState | null;
}

/**
 * A hook point over a tensor the backend holds: cache it and/or let hooks replace it (the new values
 * are uploaded before the next operator reads the buffer). `shape`/`stride`/`offset` describe the
 * tensor inside the downloaded buffer (a strided view for GPT-2's q, k, v inside qkv).
 */
export function point<Buf>(ctx: Ctx<Buf>, name: string, buf: Buf, shape: number[], stride?: number[], offset = 0): void {
  const hs = ctx.hooks;
  if (hs === null || !hs.wants(name)) return;
  const data = ctx.be.download(buf);
  const act = view(data, shape, stride, offset);
  if (runPatches(hs, name, act)) ctx.be.upload(buf, data);
  cacheIt(hs, name, act);
}

/**
 * A hook point over a tensor the backend does not materialise (the attention pattern, the
 * embeddings' two halves): `compute` makes it on the host only when asked. Returns the activation
 * and whether a hook may have changed it, or null when nobody asked for it.
 */
export function hostPoint<Buf>(ctx: Ctx<Buf>, name: string, shape: number[], compute: () => Float64Array): { act: Activation; patched: boolean } | null {
  const hs = ctx.hooks;
  if (hs === null || !hs.wants(name)) return null;
  const act = view(compute(), shape);
  const patched = runPatches(hs, name, act);
  cacheIt(hs, name, act);
  return { act, patched };
}

/** Whether any hook of this call may replace `name` (the block then takes its exact, unfused path). */
export function patches<Buf>(ctx: Ctx<Buf>, name: string): boolean {
  return ctx.hooks !== null && ctx.hooks.patches.has(name);
}

function runPatches(hs: HookState, name: string, act: Activation): boolean {
  const list = hs.patches.get(name);
  if (!list) return false;
  for (const [asked, fn] of list) applyHook(fn, act, asked);
  hs.patched = true;
  return true;
}

function cacheIt(hs: HookState, name: string, act: Activation): void {
  const as = hs.cacheAs.get(name);
  if (!as) return;
  // `act` views a fresh download, so later patches of the same buffer do not change it.
  for (const n of as) hs.cache.set(n, act);
}
