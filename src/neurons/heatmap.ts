// One neuron's records as token heatmaps for a terminal (crate-ts neurons show): each token on a
// white-to-orange background by its activation relative to the neuron's maximum (one scale for all
// of the neuron's records, as OpenAI's neuron viewer does), the selected token underlined. Without
// colour (not a TTY, NO_COLOR), tokens with a non-zero activation carry their value in brackets.
// Returns strings; the CLI prints them.
import type { ActivationRecord, NeuronRecord, NeuronStats } from './format.js';

/** A token string made visible on one line: newline ↵, tab →, carriage return ␍. */
export function visibleToken(t: string): string {
  return t
    .replace(/\n/g, '↵')
    .replace(/\t/g, '→')
    .replace(/\r/g, '␍')
    .replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

const fmt = (v: number): string => (v === 0 ? '0' : Math.abs(v) >= 100 || Math.abs(v) < 0.01 ? v.toExponential(2) : v.toFixed(3));

/** ANSI 24-bit background from white (0) to orange (1), with black text. */
function colour(text: string, frac: number, selected: boolean): string {
  const f = Math.max(0, Math.min(1, frac));
  const r = 255,
    g = Math.round(255 - f * (255 - 110)),
    b = Math.round(255 - f * 255);
  return `\x1b[38;2;0;0;0;48;2;${r};${g};${b}m${selected ? '\x1b[4m' : ''}${text}\x1b[0m`;
}

/** One record as a heatmap line. scale: the neuron's maximum; offset: the selected token (or -1). */
export function renderRecord(rec: ActivationRecord, scale: number, offset: number, color: boolean): string {
  const parts = rec.tokens.map((t, j) => {
    const a = rec.activations[j];
    const s = visibleToken(t);
    if (color) return colour(s, scale > 0 && Number.isFinite(a) ? a / scale : 0, j === offset);
    const mark = j === offset ? `⟦${s}⟧` : s;
    return a !== 0 ? `${mark}[${fmt(a)}]` : mark;
  });
  return parts.join('');
}

export interface ShowOptions {
  /** Records shown per section (top, random, each quantile bin). */
  max: number;
  color: boolean;
  /** Offsets of the selected token in each record (top, random, quantile bins). */
  offsets: { top: number[]; random: number[]; quantile: number[][] | null };
  positions: { top: number[]; random: number[]; quantile: number[][] | null };
  hook: string;
}

/** The whole view of one neuron: a summary line, then the top, random and quantile records. */
export function renderNeuron(r: NeuronRecord, stats: NeuronStats, o: ShowOptions): string {
  const top = r.most_positive_activation_records;
  const scale = top.reduce((m, rec) => Math.max(m, ...rec.activations.filter(Number.isFinite)), 0);
  const out: string[] = [];
  const id = r.neuron_id;
  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  out.push(
    `layer ${id.layer_index} neuron ${id.neuron_index} (${o.hook}): max ${fmt(stats.max ?? NaN)}, mean ${fmt(stats.mean ?? NaN)}, variance ${fmt(stats.variance ?? NaN)}, skewness ${fmt(stats.skewness ?? NaN)}, kurtosis ${fmt(stats.kurtosis ?? NaN)}, density ${pct(stats.density)} of ${stats.count} tokens${(stats.max ?? 0) > 0 ? '' : ' (dead: never > 0)'}`,
  );
  const section = (title: string, recs: ActivationRecord[], offs: number[], pos: number[]) => {
    out.push('');
    out.push(`${title} (${Math.min(o.max, recs.length)} of ${recs.length}):`);
    recs.slice(0, o.max).forEach((rec, j) => {
      const a = rec.activations[offs[j]];
      out.push(`  #${String(j).padEnd(2)} pos ${String(pos[j]).padEnd(9)} act ${fmt(a).padStart(9)}  ${renderRecord(rec, scale, offs[j], o.color)}`);
    });
  };
  section('top activations', top, o.offsets.top, o.positions.top);
  section('random sample', r.random_sample, o.offsets.random, o.positions.random);
  if (r.random_sample_by_quantile && o.offsets.quantile && o.positions.quantile) {
    const qb = r.quantile_boundaries ?? [];
    r.random_sample_by_quantile.forEach((bin, b) => {
      section(
        `quantile bin ${b} (twelfth ${b + 1}, values ${fmt(qb[b] ?? NaN)} .. ${fmt(qb[b + 1] ?? NaN)})`,
        bin,
        o.offsets.quantile![b],
        o.positions.quantile![b],
      );
    });
  }
  if (!o.color) out.push('', 'legend: ⟦token⟧ is the selected position; [value] follows every token with a non-zero activation');
  return out.join('\n');
}
