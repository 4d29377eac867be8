// Backend selection for commands: an explicit name wins; 'auto' tries cuda, cpu, reference.
import type { Backend } from '../backend/types.js';
import { ReferenceBackend } from '../backend/reference.js';

export async function resolveBackend(name: string, opts: { threads?: number } = {}): Promise<{ backend: Backend<unknown>; report: string }> {
  if (name === 'reference') return { backend: new ReferenceBackend() as Backend<unknown>, report: 'backend: reference (float64 TypeScript)' };
  const sel = await import('../backend/select.js');
  const r = await sel.selectBackend(name as 'reference' | 'cpu' | 'cuda' | 'auto', opts);
  return { backend: r.backend as Backend<unknown>, report: `backend: ${r.name}${r.reason ? ` (${r.reason})` : ''}` };
}
