// Data-parallel training's two decisions outside the step itself (the step is Trainer.stepAsync):
// how many micro-batches a step has over all ranks, and what every rank must agree on to start.
import { sha256File } from '../util/hash.js';
import { UsageError } from '../errors.js';
import type { ResolvedRun } from '../train/request.js';

/**
 * A distributed run's hyper.gradAccum is the number of micro-batches per step over all ranks (what
 * checkpoints store, so that a run resumes on another rank count): `perRank` (--grad-accum) times
 * the ranks; without it, a resumed run keeps its checkpoint's total, a fresh one takes the default
 * per rank.
 */
export function splitGradAccum(run: ResolvedRun, perRank: number | undefined, ranks: number): ResolvedRun {
  let total: number;
  if (perRank !== undefined) total = perRank * ranks;
  else if (run.resume?.train) total = run.hyper.gradAccum;
  else total = run.hyper.gradAccum * ranks;
  if (total % ranks !== 0)
    throw new UsageError(
      (n) =>
        `${n('gradAccum')}: the checkpoint's run takes ${total} micro-batches per step, which ${ranks} ranks cannot share equally; resume on a rank count that divides ${total}, or give ${n('gradAccum')} (per rank; the run then changes)`,
      { option: 'gradAccum' },
    );
  return { ...run, hyper: { ...run.hyper, gradAccum: total } };
}

/** What must be equal on every rank for them to train one run together. */
export function runFingerprint(run: ResolvedRun): unknown {
  return {
    config: run.config,
    preset: run.preset ?? null,
    tokenizer: run.tokenizer.name,
    data: { contentHash: run.dataset.contentHash, train: run.dataset.train.length, val: run.dataset.val.length },
    hyper: run.hyper,
    backend: { name: run.backend.name, dtype: run.backend.dtype },
    stopAt: run.stopAt ?? null,
    resume: run.resume ? { step: run.resume.train?.step ?? null, sha256: sha256File(run.resume.path) } : null,
  };
}
