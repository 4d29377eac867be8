/* eslint-disable @typescript-eslint/no-unused-vars -- browser scripts share one global scope: the other files use these names */
// Token heatmaps: each token a span whose background runs from white (0) to the page's colour at
// the page's scale (one scale per page: the largest |activation| shown on it). Negative values (a
// residual-stream hook, say) run from white to blue. The selected token of an excerpt is outlined;
// hovering shows the token and its value; data-a carries the value (the tests read it).

/** White → orange for t in [0, 1]. */
function heatColor(t: number): string {
  const c = Math.max(0, Math.min(1, t));
  const mix = (a: number, b: number) => Math.round(a + (b - a) * c);
  return `rgb(${mix(255, 230)}, ${mix(255, 85)}, ${mix(255, 13)})`;
}

/** White → blue for t in [0, 1]. */
function coldColor(t: number): string {
  const c = Math.max(0, Math.min(1, t));
  const mix = (a: number, b: number) => Math.round(a + (b - a) * c);
  return `rgb(${mix(255, 28)}, ${mix(255, 126)}, ${mix(255, 214)})`;
}

function cellColor(a: number | null, scale: number): string {
  if (a === null) return '#e9ecef';
  if (!(scale > 0)) return '#fff';
  return a >= 0 ? heatColor(a / scale) : coldColor(-a / scale);
}

/** One record as a line of token cells. */
function heatRecord(r: { t: string[]; a: (number | null)[]; s?: number }, scale: number, cls = 'record'): HTMLElement {
  const line = h('div', { class: cls });
  r.t.forEach((tok, j) => {
    const a = r.a[j];
    const cell = h(
      'span',
      {
        class: j === r.s ? 'tok sel' : 'tok',
        'data-a': a === null ? 'null' : String(a),
        title: `${JSON.stringify(tok)}  ${a === null ? 'not finite' : fmt(a, 4)}${j === r.s ? '  (selected token)' : ''}`,
        style: `background:${cellColor(a, scale)}`,
      },
      showTok(tok),
    );
    line.appendChild(cell);
  });
  return line;
}

/** A list of records; the record's max is shown at the left. */
function heatList(records: Rec[], scale: number, label: string): HTMLElement {
  const box = h('div', { class: 'records', 'data-kind': label });
  records.forEach((r) => {
    const sel = r.s >= 0 && r.s < r.a.length ? r.a[r.s] : null;
    box.appendChild(
      h('div', { class: 'record-row' }, h('span', { class: 'rec-val', title: "the selected token's activation" }, fmt(sel)), heatRecord(r, scale)),
    );
  });
  if (records.length === 0) box.appendChild(h('p', { class: 'muted' }, 'none'));
  return box;
}

/** The colour key of a page: white at 0 to full colour at the scale. */
function colorKey(scale: number): HTMLElement {
  const steps = [0, 0.25, 0.5, 0.75, 1];
  return h(
    'div',
    { class: 'color-key' },
    'scale: ',
    ...steps.map((t) => h('span', { class: 'tok', style: `background:${heatColor(t)}` }, fmt(t * scale))),
    ' (one scale for every heatmap on this page)',
  );
}
