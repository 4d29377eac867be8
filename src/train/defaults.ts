// The defaults of a training run that names nothing: per backend, a model and hyper-parameters that
// finish in a few minutes. The command line applies them (src/cli/train.ts); train() applies them
// too, so that library callers get what `crate-ts train` gets. The Trainer itself takes only
// resolved values.
import type { TrainHyper } from '../checkpoint/checkpoint.js';

/** The model a run with no preset trains: a preset plus size overrides, and its sequence length. */
export interface DefaultModel {
  preset: string;
  seq: number;
  nLayer?: number;
  nHead?: number;
  nEmbd?: number;
}

export type DefaultsTable = Record<'reference' | 'cpu' | 'cuda', { model: DefaultModel; hyper: TrainHyper }>;

/** What a backend changes of the base run: any model field, any hyper-parameter. */
export interface DefaultsOverride {
  model?: Partial<DefaultModel>;
  hyper?: Partial<TrainHyper>;
}

/**
 * The base run: the native CPU backend's (C++: 20-35k tokens/s for char-tiny), the full 2-layer
 * char-tiny with 64-token windows for 5M tokens (~2.5-5 minutes on 2 cores).
 */
const BASE: { model: DefaultModel; hyper: TrainHyper } = {
  model: { preset: 'char-tiny', seq: 64 },
  hyper: {
    steps: 5000,
    batch: 16,
    seq: 64,
    gradAccum: 1,
    lr: 3e-3,
    minLr: 3e-4,
    warmup: 100,
    weightDecay: 0.1,
    beta1: 0.9,
    beta2: 0.95,
    eps: 1e-8,
    clip: 1.0,
    seed: 1337,
    evalEvery: 1000,
    evalWindows: 256,
    saveEvery: 1000,
    logEvery: 250,
    valFraction: 0.1,
  },
};

/** What each backend changes of the base run. */
const OVERRIDES: Record<keyof DefaultsTable, DefaultsOverride> = {
  // float64 TypeScript: ~1k tokens/s on 2 busy cores, so a 1-layer model with 32-token windows
  // (256k tokens, ~3-6 minutes), a higher learning rate and a shorter warm-up for the short run.
  reference: {
    model: { nLayer: 1, seq: 32 },
    hyper: { steps: 500, seq: 32, lr: 5e-3, minLr: 5e-4, warmup: 20, evalEvery: 100, evalWindows: 128, saveEvery: 100, logEvery: 25 },
  },
  cpu: {},
  // not tuned or timed on a GPU: the base model, batch and learning rates, with fewer steps and
  // evaluation, saving and log lines more often.
  cuda: { hyper: { steps: 3000, evalEvery: 500, saveEvery: 500, logEvery: 100 } },
};

/** A backend's defaults: the base run with its overrides applied. */
export function withOverrides(base: { model: DefaultModel; hyper: TrainHyper }, o: DefaultsOverride): { model: DefaultModel; hyper: TrainHyper } {
  return { model: { ...base.model, ...o.model }, hyper: { ...base.hyper, ...o.hyper } };
}

/**
 * Defaults for a run with no arguments, per backend: the base run plus each backend's overrides.
 * They were chosen by timing and sweeping on a 2-core machine (see src/train/README.md): a
 * byte-level CRATE on the embedded Moby-Dick that ends well below the unigram entropy of the
 * validation text within a few minutes.
 */
export const RUN_DEFAULTS: DefaultsTable = {
  reference: withOverrides(BASE, OVERRIDES.reference),
  cpu: withOverrides(BASE, OVERRIDES.cpu),
  cuda: withOverrides(BASE, OVERRIDES.cuda),
};

/**
 * Plain log lines (stdout not a terminal) every this many steps when none is asked for: about 20
 * lines per run whatever its length (plus step 1 and the last step), so a 200-step run logs every
 * 10 steps and the 5000-step default every 250.
 */
export function defaultLogEvery(steps: number): number {
  return Math.max(1, Math.ceil(steps / 20));
}

/** Worker threads a request may ask for (0 or none: the backend's default). */
export const MAX_THREADS = 256;
