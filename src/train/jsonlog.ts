// The JSON log of a run (--json-log): one JSON object per line.
//   {"type":"config", ...}   first line of a run (and again at each resume): the resolved model
//                            configuration and hyper-parameters, data source and hash, tokenizer,
//                            the crate-ts version, the backend and the machine
//   {"type":"step", ...}     every optimizer step
//   {"type":"eval", ...}     every evaluation
//   {"type":"save", ...}     every checkpoint written
//   {"type":"summary", ...}  the end of a completed run
// A run always writes this log as train.jsonl in its run directory (--json-log FILE writes a copy
// elsewhere): it is where the loss history lives (readRunHistory), not the checkpoint.
import * as fs from 'node:fs';
import { RequestError } from './request-error.js';

function endsWithNewline(file: string): boolean {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    if (size === 0) return true;
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, size - 1);
    return b[0] === 0x0a;
  } finally {
    fs.closeSync(fd);
  }
}

export class JsonLog {
  /**
   * Open `file` for a run: truncated for a fresh run, appended to when resuming. Throws a
   * RequestError (field jsonLog) when it cannot be written.
   */
  constructor(
    readonly file: string,
    append: boolean,
  ) {
    try {
      if (append) {
        fs.appendFileSync(file, '');
        // A run killed mid-write leaves a partial last line: end it, so the next record stands alone.
        if (!endsWithNewline(file)) fs.appendFileSync(file, '\n');
      } else {
        fs.writeFileSync(file, '');
      }
    } catch (e) {
      throw new RequestError('jsonLog', `'${file}' cannot be written (${(e as { code?: string }).code ?? (e as Error).message})`);
    }
  }

  write(obj: Record<string, unknown>): void {
    fs.appendFileSync(this.file, JSON.stringify(obj) + '\n');
  }
}

/** The loss history a run log records: training steps and validation evaluations, in step order. */
export interface RunHistory {
  steps: { step: number; loss: number; lr: number }[];
  evals: { step: number; val: number }[];
}

/**
 * The history in a run's JSON log up to step `upTo` (the checkpoint's step). A `config` record
 * starts a (resumed) run at its `step`: records of an earlier attempt past that step, which a
 * killed run logged after its last save, are dropped. Unparseable lines (a line cut by a kill) are
 * skipped. A missing file gives an empty history.
 */
export function readRunHistory(file: string, upTo = Infinity): RunHistory {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return { steps: [], evals: [] };
  }
  let steps: RunHistory['steps'] = [],
    evals: RunHistory['evals'] = [];
  const num = (v: unknown): number => (typeof v === 'number' ? v : NaN); // JSON writes NaN as null
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    let r: Record<string, unknown>;
    try {
      r = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    if (typeof r !== 'object' || r === null || typeof r.step !== 'number') continue;
    const step = r.step;
    if (r.type === 'config') {
      steps = steps.filter((p) => p.step <= step);
      evals = evals.filter((p) => p.step <= step);
    } else if (r.type === 'step') {
      steps.push({ step, loss: num(r.loss), lr: num(r.lr) });
    } else if (r.type === 'eval' && r.split === 'val') {
      evals.push({ step, val: num(r.val_loss) });
    }
  }
  return { steps: steps.filter((p) => p.step <= upTo), evals: evals.filter((p) => p.step <= upTo) };
}

/** The log records of a history (to start a run log that continues it). */
export function historyRecords(h: RunHistory): Record<string, unknown>[] {
  const out: { step: number; order: number; rec: Record<string, unknown> }[] = [];
  for (const p of h.steps) out.push({ step: p.step, order: 0, rec: { type: 'step', step: p.step, loss: p.loss, lr: p.lr } });
  for (const e of h.evals) out.push({ step: e.step, order: 1, rec: { type: 'eval', step: e.step, split: 'val', val_loss: e.val } });
  return out.sort((a, b) => a.step - b.step || a.order - b.order).map((x) => x.rec);
}
