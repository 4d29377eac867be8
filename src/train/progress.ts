// Progress reporting: a one-line progress bar redrawn in place on a terminal, or one plain line per
// log step otherwise (CI logs, pipes). Other messages are printed above the bar.

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
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return h ? `${h}h${String(m).padStart(2, '0')}m` : m ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}

export function fmtInt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

export class Progress {
  private barShown = false;
  private lastDraw = 0;
  constructor(
    private readonly out: NodeJS.WriteStream | { write(s: string): unknown; isTTY?: boolean; columns?: number },
    readonly tty: boolean = Boolean(out.isTTY),
  ) {}

  private clearBar(): void {
    if (this.barShown) { this.out.write('\r\x1b[2K'); this.barShown = false; }
  }

  /** Print a message line (above the bar on a terminal). */
  line(msg: string): void {
    this.clearBar();
    this.out.write(msg + '\n');
  }

  /** Report a step: redraws the bar on a terminal (at most ~10 times a second), or prints a line when `log`. */
  update(p: ProgressInfo, log: boolean): void {
    const text = `step ${String(p.step).padStart(String(p.total).length)}/${p.total}  loss ${p.loss.toFixed(4)}  lr ${p.lr.toExponential(2)}  ${fmtInt(p.tokensPerSec)} tok/s  ${fmtDuration(p.eta)} left`;
    if (!this.tty) {
      if (log) this.out.write(text + '\n');
      return;
    }
    const now = Date.now();
    if (!log && now - this.lastDraw < 100 && p.step !== p.total) return;
    this.lastDraw = now;
    const c = (this.out as { columns?: number }).columns;
    const cols = c !== undefined && c >= 40 ? c : 100;
    const width = Math.max(10, Math.min(30, cols - text.length - 4));
    const filled = Math.round((width * p.step) / Math.max(1, p.total));
    const bar = '[' + '#'.repeat(filled) + '.'.repeat(width - filled) + ']';
    this.out.write('\r\x1b[2K' + `${bar} ${text}`.slice(0, cols - 1));
    this.barShown = true;
  }

  /** End the bar line. */
  done(): void {
    if (this.barShown) { this.out.write('\n'); this.barShown = false; }
  }
}
