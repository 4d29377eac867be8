// The backends the differential suite runs against: every native backend that loads here.
// A backend that is unavailable is listed with the reason, so the skip is visible in the output.
import type { Backend } from '../../src/backend/types.js';
import { selectBackend } from '../../src/backend/select.js';
import type { CpuBackend, GemmKernel } from '../../src/backend/cpu.js';

export interface NativeUnderTest {
  name: string;
  backend?: Backend<unknown>;
  skip?: string;
  /** For the cpu backend: the SGEMM micro-kernel to force while this entry's tests run. */
  kernel?: GemmKernel;
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

/**
 * The native backends with the cpu backend expanded into one entry per SGEMM micro-kernel this CPU
 * can run (`cpu[scalar]`, `cpu[avx2]`, `cpu[avx512]`), so a suite exercises every kernel path the addon
 * can pick on some host, not only the one it picks here. The caller forces `kernel` around the
 * entry's tests (see `useKernel`).
 */
export async function nativeBackendsPerKernel(): Promise<NativeUnderTest[]> {
  const out: NativeUnderTest[] = [];
  for (const n of await nativeBackends()) {
    if (n.name !== 'cpu' || !n.backend) {
      out.push(n);
      continue;
    }
    const cpu = n.backend as unknown as CpuBackend;
    for (const kernel of cpu.supportedGemmKernels()) out.push({ name: `cpu[${kernel}]`, backend: n.backend, kernel });
  }
  return out;
}

/** Force `n.kernel` (if any) on its backend; returns a function that restores the previous kernel. */
export function useKernel(n: NativeUnderTest): () => void {
  if (!n.kernel || !n.backend) return () => {};
  const cpu = n.backend as unknown as CpuBackend;
  const before = cpu.gemmKernel() as GemmKernel;
  if (!cpu.setGemmKernel(n.kernel)) throw new Error(`the ${n.kernel} kernel was listed as supported but cannot be set`);
  return () => void cpu.setGemmKernel(before);
}
