// How much memory a training run needs, estimated before anything is allocated, so that an
// impossible request (batch 10^9, say) is refused with the numbers instead of ending in a V8 fatal
// error or the OOM killer half a minute later.
//
// Elements, with N = B·T tokens per micro-batch, d = nEmbd, h = overcomplete·d, V, L layers, NH heads:
//   parameters, gradients, AdamW m and v     4·P            (P = every parameter, wpe included)
//   saved activations per layer              what the architecture's block keeps (Block.sizes), e.g.
//       (5 + q)·N·d + 4N + S_att + codes, q = 3 (GPT-2 q,k,v) or 1 (CRATE's shared projection),
//       S_att = backend.attentionSavedSize(B, NH, T), codes: CRATE istaSteps·N·h (every ISTA
//       iterate), GPT-2 2·N·h (pre- and post-ReLU), complete CRATE 0
//   final LayerNorm, logits and their gradient   2·N·d + 2N + 2·N·V
//   backward scratch                         3·N·d + 2·N·max(3d, h)
// times the backend's element size (8 bytes reference, 4 native), plus host memory: the token ids of
// a micro-batch (int32 inputs and targets, and the model's validated copies) and, while saving, the
// float64 host copies of parameters and moments and the serialized file.
import * as os from 'node:os';
import type { ModelConfig } from '../model/config.js';
import { paramTable, totalSize } from '../model/params.js';
import { architecture } from '../model/archs.js';
import type { Backend } from '../backend/types.js';
import { UsageError } from '../errors.js';

export interface MemoryEstimate {
  /** Bytes on the backend's device (the host for reference and cpu). */
  activations: number;
  /** Parameters, gradients and the two AdamW moments. */
  state: number;
  /** Host bytes besides the device's: token ids, and checkpoint copies while saving. */
  host: number;
  /** Everything, in bytes. */
  total: number;
  /** The memory it is compared with, and what that is. */
  available: number;
  availableWhat: string;
}

type SizedBackend = Pick<Backend<unknown>, 'name' | 'dtype' | 'attentionSavedSize'> & { memoryInfo?: () => { totalBytes: number } };

/** Estimate the memory of training `config` on (B, T) micro-batches on `backend`. */
export function estimateTrainingMemory(config: ModelConfig, B: number, T: number, backend: SizedBackend): MemoryEstimate {
  const e = backend.dtype === 'f64' ? 8 : 4;
  const N = B * T,
    d = config.nEmbd,
    h = config.overcomplete * d,
    V = config.vocabSize;
  let att: number;
  try {
    att = backend.attentionSavedSize(B, config.nHead, T);
  } catch {
    att = B * config.nHead * T * T; // the most any backend keeps: every score
  }
  const perLayer = Object.values(architecture(config.arch).block(0, config).sizes(N, att)).reduce((a, b) => a + b, 0);
  const tail = 2 * N * d + 2 * N + 2 * N * V;
  const scratch = 3 * N * d + 2 * N * Math.max(3 * d, h);
  const P = totalSize(paramTable(config));
  const activations = (perLayer * config.nLayer + tail + scratch) * e;
  const state = 4 * P * e;
  const host = 4 * N * 4 + 3 * P * 8 + 3 * P * e;
  const total = activations + state + host;
  let available = os.totalmem(),
    availableWhat = 'of memory';
  if (backend.name === 'cuda' && typeof backend.memoryInfo === 'function') {
    try {
      available = backend.memoryInfo().totalBytes;
      availableWhat = 'of GPU memory';
      // the device holds activations and state; the host part is small next to the machine's memory
      return { activations, state, host, total: activations + state, available, availableWhat };
    } catch {
      /* fall back to the host's memory */
    }
  }
  return { activations, state, host, total, available, availableWhat };
}

export function fmtBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n < 10 && i > 0 ? n.toFixed(2) : n < 100 && i > 0 ? n.toFixed(1) : Math.round(n)} ${units[i]}`;
}

/** Throw a UsageError naming the estimate and the machine's memory when the run cannot fit. */
export function checkTrainingMemory(config: ModelConfig, B: number, T: number, backend: SizedBackend): MemoryEstimate {
  const est = estimateTrainingMemory(config, B, T, backend);
  if (!(est.total <= est.available)) {
    throw new UsageError(
      `training with batch ${B} x seq ${T} needs about ${fmtBytes(est.total)} (activations of one forward+backward ${fmtBytes(est.activations)}, ` +
        `parameters, gradients and AdamW moments ${fmtBytes(est.state)}) but this machine has ${fmtBytes(est.available)} ${est.availableWhat} ` +
        `on the ${backend.name} backend; use a smaller batch or sequence length (gradient accumulation keeps the tokens per step)`,
    );
  }
  return est;
}
