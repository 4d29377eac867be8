// Backend selection for commands: an explicit name wins; 'auto' tries cuda, cpu, reference. Every
// command names it --backend with default auto (a comma-separated list where a command compares
// backends: bench, audit).
import type { Backend } from '../backend/types.js';
import type { BackendChoice } from '../backend/select.js';
import { ReferenceBackend } from '../backend/reference.js';
import { UsageError } from '../errors.js';
import { closest } from './suggest.js';

export const BACKEND_NAMES: readonly BackendChoice[] = ['reference', 'cpu', 'cuda', 'auto'];

/** The --backend option of a one-backend command (default auto), checked. */
export function backendOption(v: Record<string, unknown>): BackendChoice {
  const raw = v.backend;
  if (raw === undefined) return 'auto';
  return checkBackendName(String(raw));
}

/** A backend name, or a UsageError listing the names (with the closest one). */
export function checkBackendName(name: string, flag = '--backend'): BackendChoice {
  if ((BACKEND_NAMES as readonly string[]).includes(name)) return name as BackendChoice;
  const guess = closest(name, BACKEND_NAMES);
  throw new UsageError(`${flag}: unknown backend '${name}'${guess ? ` (did you mean '${guess}'?)` : ''}; one of ${BACKEND_NAMES.join(', ')}`);
}

/** --backend LIST (cpu,reference): distinct checked names, in order; `def` when absent. */
export function backendList(v: Record<string, unknown>, def = 'auto'): BackendChoice[] {
  const raw = v.backend === undefined ? def : String(v.backend);
  const names = raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (names.length === 0) throw new UsageError(`--backend needs at least one name: ${BACKEND_NAMES.join(', ')}`);
  return [...new Set(names.map((n) => checkBackendName(n)))];
}

export async function resolveBackend(name: string, opts: { threads?: number } = {}): Promise<{ backend: Backend<unknown>; report: string }> {
  if (name === 'reference') return { backend: new ReferenceBackend() as Backend<unknown>, report: 'backend: reference (float64 TypeScript)' };
  const sel = await import('../backend/select.js');
  const r = await sel.selectBackend(name as 'reference' | 'cpu' | 'cuda' | 'auto', opts);
  return { backend: r.backend as Backend<unknown>, report: `backend: ${r.name}${r.reason ? ` (${r.reason})` : ''}` };
}
