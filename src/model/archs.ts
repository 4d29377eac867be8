// The architecture registry: every architecture a config may name, each one block class
// (src/model/blocks/). Adding an architecture is a new file in blocks/ that exports an Architecture,
// plus its line in BUILTIN below; everything per-architecture elsewhere (the parameter table, the
// parameter count, the hook names and shapes, the activation list, checkpoint recognition, the
// README's hook table) is a fold over the blocks.
import { UsageError } from '../errors.js';
import type { Architecture } from './blocks/block.js';
import { crate } from './blocks/crate.js';
import { crateComplete } from './blocks/crate-complete.js';
import { gpt2 } from './blocks/gpt2.js';

/** The architectures of this project, in the order the docs list them. */
const BUILTIN = [crate, crateComplete, gpt2] as const;

/** An architecture's name: crate (paper A's CRATE-LM), crate-complete (paper B's complete ISTA), gpt2 (the baseline). */
export type Arch = (typeof BUILTIN)[number]['name'];

/** The names of the built-in architectures, in the order the docs list them. */
export const BUILTIN_ARCHS: readonly Arch[] = Object.freeze(BUILTIN.map((a) => a.name));

const registry = new Map<string, Architecture>(BUILTIN.map((a) => [a.name, a]));

/**
 * Register an architecture defined outside this package (or in a test) under its name, after the
 * built-in ones; configs and checkpoints may then name it. Refuses a name already taken.
 */
export function registerArchitecture(a: Architecture): void {
  if (typeof a?.name !== 'string' || a.name === '') throw new UsageError('an architecture needs a non-empty name');
  if (registry.has(a.name)) throw new UsageError(`architecture '${a.name}' is already registered`);
  registry.set(a.name, a);
}

/** Every registered architecture, built-in ones first. */
export function architectures(): Architecture[] {
  return [...registry.values()];
}

/** Every registered architecture's name, built-in ones first. */
export function archNames(): string[] {
  return [...registry.keys()];
}

/** Whether `name` is a registered architecture. */
export function isArch(name: unknown): name is Arch {
  return typeof name === 'string' && registry.has(name);
}

/** The names as a sentence lists them: "crate, crate-complete or gpt2". */
export function archList(joiner = 'or'): string {
  const n = archNames();
  return n.length > 1 ? `${n.slice(0, -1).join(', ')} ${joiner} ${n[n.length - 1]}` : n.join('');
}

/** The architecture registered under `name`; a UsageError naming the known ones otherwise. */
export function architecture(name: string): Architecture {
  const a = registry.get(name);
  if (!a) throw new UsageError(`unknown architecture '${name}'; known: ${archNames().join(', ')}`);
  return a;
}
