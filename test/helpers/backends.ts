// The backends the differential suite runs against: every native backend that loads here.
// A backend that is unavailable is listed with the reason, so the skip is visible in the output.
import type { Backend } from '../../src/backend/types.js';
import { selectBackend } from '../../src/backend/select.js';

export interface NativeUnderTest {
  name: string;
  backend?: Backend<unknown>;
  skip?: string;
}

export async function nativeBackends(): Promise<NativeUnderTest[]> {
  const out: NativeUnderTest[] = [];
  for (const name of ['cpu', 'cuda'] as const) {
    try {
      const r = await selectBackend(name);
      out.push({ name, backend: r.backend });
    } catch (e) {
      out.push({ name, skip: (e as Error).message.split('\n')[0] });
    }
  }
  return out;
}
