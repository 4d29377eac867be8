// Progress reporting: a one-line progress bar redrawn in place on a terminal, or one plain line per
// log step otherwise (CI logs, pipes). Other messages are printed above the bar. The formatting is
// pure (formatProgress); the Progress class only writes what it is given to the stream it is given.

export interface ProgressInfo {
  step: number;
  total: number;
  loss: number;
  lr: number;
  tokensPerSec: number;
  /** Seconds left at the current speed. */
  eta: number;
}

export function fmtDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  s = Math.round(s);
  const h = Math.floor(s / 3600),
    m = Math.floor((s % 3600) / 60),
    sec = s % 60;
  return h ? `${h}h${String(m).padStart(2, '0')}m` : m ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}

export function fmtInt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** 987, 33.7k, 1.25M: a count in at most 6 characters. */
export function fmtCompact(n: number): string {
  if (!Number.isFinite(n)) return '?';
  const a = Math.abs(n);
  if (a < 10_000) return String(Math.round(n));
  if (a < 1e6) return `${(n / 1e3).toFixed(a < 1e5 ? 1 : 0)}k`;
  if (a < 1e9) return `${(n / 1e6).toFixed(a < 1e7 ? 2 : a < 1e8 ? 1 : 0)}M`;
  return `${(n / 1e9).toFixed(1)}G`;
}

const BAR_MAX = 30,
  BAR_MIN = 5;

/**
 * The progress text. Without `columns`: the full line (plain log lines). With `columns` (a
 * terminal's width): a bar and the most complete text that fits in columns - 1 characters. The
 * bar shrinks first (30 down to 5 cells, then none); only then does the text get terser, and even
 * the tersest form keeps the step, the loss, tokens/s and the time left.
 */
export function formatProgress(p: ProgressInfo, columns?: number): string {
  const stepW = String(p.total).length;
  const step = `${String(p.step).padStart(stepW)}/${p.total}`;
  const eta = fmtDuration(p.eta);
  const variants = [
    `step ${step}  loss ${p.loss.toFixed(4)}  lr ${p.lr.toExponential(2)}  ${fmtInt(p.tokensPerSec)} tok/s  ${eta} left`,
    `${step} loss ${p.loss.toFixed(4)} lr ${p.lr.toExponential(1)} ${fmtCompact(p.tokensPerSec)} tok/s ${eta} left`,
    `${step} ${p.loss.toFixed(3)} ${fmtCompact(p.tokensPerSec)} tok/s ${eta}`,
  ];
  if (columns === undefined) return variants[0];
  const room = Math.max(1, columns - 1);
  for (const text of variants) {
    const spare = room - text.length;
    if (spare < 0) continue;
    const width = Math.min(BAR_MAX, spare - 3); // "[" + cells + "] "
    if (width < BAR_MIN) return text;
    const filled = Math.min(width, Math.round((width * p.step) / Math.max(1, p.total)));
    return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${text}`;
  }
  return variants[variants.length - 1].slice(0, room);
}

/** Where progress goes: a stream-like object (process.stdout, or a guard around it). */
export interface ProgressOut {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export class Progress {
  private barShown = false;
  private lastDraw = 0;
  constructor(
    private readonly out: ProgressOut,
    readonly tty: boolean = Boolean(out.isTTY),
  ) {}

  private clearBar(): void {
    if (this.barShown) {
      this.out.write('\r\x1b[2K');
      this.barShown = false;
    }
  }

  /** Print a message line (above the bar on a terminal). */
  line(msg: string): void {
    this.clearBar();
    this.out.write(msg + '\n');
  }

  /** Report a step: redraws the bar on a terminal (at most ~10 times a second), or prints a line when `log`. */
  update(p: ProgressInfo, log: boolean): void {
    if (!this.tty) {
      if (log) this.out.write(formatProgress(p) + '\n');
      return;
    }
    const now = Date.now();
    if (!log && now - this.lastDraw < 100 && p.step !== p.total) return;
    this.lastDraw = now;
    const c = this.out.columns;
    const cols = c !== undefined && c >= 20 ? c : 100;
    this.out.write('\r\x1b[2K' + formatProgress(p, cols));
    this.barShown = true;
  }

  /** End the bar line. */
  done(): void {
    if (this.barShown) {
      this.out.write('\n');
      this.barShown = false;
    }
  }
}
