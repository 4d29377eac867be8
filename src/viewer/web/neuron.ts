/* eslint-disable @typescript-eslint/no-unused-vars -- browser scripts share one global scope: the other files use these names */
// A neuron's page: explanation and scores, LLM simulations (true vs simulated), the top records,
// the quantile bins and the random records as heatmaps on one scale, the token-lookup table, the
// histogram, related tokens by weights, and the steering effects (plus a live steering box when the
// viewer runs as a server).

function statLine(n: NeuronData): HTMLElement {
  const st = n.stats,
    sc = n.scores;
  const items: [string, string][] = [
    ['max', fmt(st.max, 4)],
    ['mean', fmt(st.mean)],
    ['density', fmt(st.density)],
    ['variance', fmt(st.variance)],
    ['skewness', fmt(st.skewness)],
    ['kurtosis', fmt(st.kurtosis)],
    ['lookup TaR ×100', fmt(sc?.tar)],
    ['Random-only ×100', fmt(sc?.randomOnly)],
    ['Anthropic ×100', fmt(sc?.anthropic)],
    ['selectivity', fmt(sc?.selectivity)],
    ['consistency', fmt(sc?.consistency)],
    ...n.classifiers.map((r): [string, string] => [`${r.scorer} ×100 (${r.set})`, fmt(r.balancedAccuracy)]),
  ];
  return h('div', { class: 'stats' }, ...items.map(([k, v]) => h('span', { class: 'stat' }, h('b', {}, k), ' ', v)));
}

function llmSection(n: NeuronData): HTMLElement | null {
  if (n.llm.length === 0) return null;
  return h(
    'section',
    { class: 'llm' },
    h('h3', {}, 'LLM explanation and simulation'),
    ...n.llm.map((r) =>
      h(
        'div',
        { class: 'llm-split' },
        h('p', {}, h('b', {}, `${r.split} (${r.set}): `), r.explanation, ' — score ×100 ', h('b', { class: 'llm-score' }, fmt(r.score))),
        h('p', { class: 'muted' }, 'true activations (top, normalised to 0-10 by the page max) vs simulated (bottom, 0-10):'),
        ...r.sequences.map((q) =>
          h(
            'div',
            { class: 'sim-pair' },
            heatRecord({ t: q.t, a: q.a.map((x) => (n.scale > 0 ? (10 * x) / n.scale : 0)) }, 10, 'record true'),
            heatRecord({ t: q.t, a: q.sim }, 10, 'record simulated'),
          ),
        ),
      ),
    ),
  );
}

/** What a classifier score's context is: an activating record's quantile bin, a top record, or a non-activating record. */
function contextKind(distance: number, activating: boolean, scorer: string): string {
  const from = distance > 0 ? `quantile bin ${distance}` : distance === 0 ? 'a top record' : 'a random record';
  if (scorer === 'fuzzing') return `${activating ? 'firing tokens marked' : 'other tokens marked'}, from ${from}`;
  return activating ? `fires (${from})` : 'silent (a random record)';
}

/** Detection and fuzzing (neurons score --scorer): the scores × 100 and every judged context. */
function classifierSection(n: NeuronData): HTMLElement | null {
  if (n.classifiers.length === 0) return null;
  return h(
    'section',
    { class: 'classifiers' },
    h('h3', {}, 'Detection and fuzzing'),
    h(
      'p',
      { class: 'muted' },
      'the judge reads the explanation and a context and says whether the neuron fires there (detection) or on the marked tokens (fuzzing); balanced accuracy, accuracy, F1 and AUC × 100 (chance = 50)',
    ),
    ...n.classifiers.map((r) =>
      h(
        'div',
        { class: 'classifier', 'data-set': r.set },
        h(
          'p',
          {},
          h('b', {}, `${r.scorer} (${r.set}, judge ${r.judge}): `),
          'balanced accuracy ×100 ',
          h('b', { class: 'cls-score' }, fmt(r.balancedAccuracy)),
          `, accuracy ×100 ${fmt(r.accuracy)}, F1 ×100 ${fmt(r.f1)}, AUC ×100 ${fmt(r.auc)}; ${r.n} contexts judged${r.parseFailures ? `, ${r.parseFailures} unreadable replies` : ''}`,
        ),
        r.explanation ? h('p', { class: 'muted' }, 'explanation judged: ', r.explanation) : null,
        h(
          'details',
          { class: 'cls-examples' },
          h('summary', {}, `the ${r.examples.length} contexts`),
          ...r.examples.map((e) =>
            h(
              'div',
              {
                class: `record-row cls-example ${e.correct === null ? 'unread' : e.correct ? 'right' : 'wrong'}`,
                'data-activating': String(e.activating),
                'data-prediction': String(e.prediction),
              },
              h(
                'span',
                { class: 'rec-val', title: contextKind(e.distance, e.activating, r.scorer) },
                e.correct === null ? '?' : e.correct ? '✓' : '✗',
                ' ',
                e.prediction === null ? 'no answer' : e.prediction ? 'yes' : 'no',
                e.probability !== null ? ` (p ${fmt(e.probability, 2)})` : '',
              ),
              heatRecord({ t: e.t, a: e.a }, n.scale),
            ),
          ),
        ),
      ),
    ),
  );
}

function tokenList(title: string, xs: TokenValueView[] | null, what: string): HTMLElement {
  return h(
    'div',
    { class: 'related-col' },
    h('h4', {}, title),
    xs === null
      ? h('p', { class: 'muted' }, 'not available')
      : h(
          'table',
          { class: 'related' },
          h(
            'tbody',
            {},
            ...xs.map((x) => h('tr', {}, h('td', { class: 'mono' }, JSON.stringify(x.token)), h('td', { class: 'num', title: what }, fmt(x.value)))),
          ),
        ),
  );
}

function steerTable(st: SteerView): HTMLElement {
  return h(
    'div',
    { class: 'steer-result' },
    h('p', {}, `clamp = ${fmt(st.value, 4)} at every position of ${JSON.stringify(st.prompt)}; KL(after ‖ before) = ${fmt(st.kl)} nats`),
    h(
      'table',
      { class: 'steer' },
      h('thead', {}, h('tr', {}, ...['token', 'p before', 'p after', 'Δp', 'Δlogit'].map((t) => h('th', {}, t)))),
      h(
        'tbody',
        {},
        ...st.top.map((e) =>
          h(
            'tr',
            {},
            h('td', { class: 'mono' }, JSON.stringify(e.token)),
            h('td', { class: 'num' }, fmt(e.pBefore)),
            h('td', { class: 'num' }, fmt(e.pAfter)),
            h('td', { class: 'num' }, (e.delta >= 0 ? '+' : '') + fmt(e.delta)),
            h('td', { class: 'num' }, (e.logitDelta >= 0 ? '+' : '') + fmt(e.logitDelta)),
          ),
        ),
      ),
    ),
    h(
      'p',
      { class: 'muted' },
      'most likely before: ',
      st.before.map((b) => `${JSON.stringify(b.token)} ${fmt(b.p)}`).join(', '),
      '; after: ',
      st.after.map((b) => `${JSON.stringify(b.token)} ${fmt(b.p)}`).join(', '),
    ),
  );
}

function steerSection(n: NeuronData, idx: IndexData): HTMLElement {
  const sec = h(
    'section',
    { class: 'steering' },
    h('h3', {}, 'Steering'),
    h(
      'p',
      { class: 'muted' },
      `Clamp ${n.target} to a constant v at every position and compare the next-token distribution (spec 8). Default: ${idx.steer.rule}.`,
    ),
  );
  const st = n.steer;
  if (st === null) sec.appendChild(h('p', { class: 'muted' }, 'no steering effects: the checkpoint is not available, or steering was switched off'));
  else if ('skipped' in st && st.skipped) sec.appendChild(h('p', { class: 'muted' }, st.skipped));
  else sec.appendChild(steerTable(st as SteerView));
  if (idx.live) {
    const out = h('div', { class: 'live-out' });
    const value = h('input', {
      type: 'number',
      step: 'any',
      class: 'steer-value',
      value: n.stats.max !== null ? String(Number((idx.steer.factor * n.stats.max).toPrecision(4))) : '1',
    }) as HTMLInputElement;
    const prompt = h('input', { type: 'text', class: 'steer-prompt', value: idx.steer.prompt, size: 30 }) as HTMLInputElement;
    const go = async (e: Event) => {
      e.preventDefault();
      out.replaceChildren(h('p', { class: 'muted' }, 'running…'));
      try {
        const q = new URLSearchParams({ c: String(n.c), layer: String(n.layer), neuron: String(n.neuron), value: value.value, prompt: prompt.value });
        const res = await fetch(`api/steer?${q}`);
        const body = await res.json();
        if (!res.ok) throw new Error(body.error ?? res.statusText);
        out.replaceChildren(steerTable(body as SteerView));
      } catch (err) {
        out.replaceChildren(h('p', { class: 'error' }, String((err as Error).message)));
      }
    };
    sec.appendChild(h('form', { class: 'steer-box', onsubmit: go }, 'value ', value, ' prompt ', prompt, ' ', h('button', { type: 'submit' }, 'steer')));
    sec.appendChild(out);
  }
  return sec;
}

/** Quantile bin k, numbered from 0 as in `crate-ts neurons show` and the record file. */
function quantileBin(b: { lo: number | null; hi: number | null; records: Rec[] }, k: number, scale: number): HTMLElement {
  return h('div', { class: 'qbin', 'data-bin': k }, h('h4', {}, `quantile bin ${k}: ${fmt(b.lo)} – ${fmt(b.hi)}`), heatList(b.records, scale, `quantile-${k}`));
}

/**
 * The quantile bins; a run of bins in which every activation shown is zero (most bins of a sparse
 * neuron) is folded into one closed line that opens to show them.
 */
function quantileBins(n: NeuronData): HTMLElement[] {
  const bins = n.quantile ?? [];
  const zero = bins.map((b) => b.records.length > 0 && b.records.every((r) => r.a.every((x) => x === 0)));
  const out: HTMLElement[] = [];
  for (let k = 0; k < bins.length;) {
    if (!zero[k]) {
      out.push(quantileBin(bins[k], k, n.scale));
      k++;
      continue;
    }
    let e = k;
    while (e + 1 < bins.length && zero[e + 1]) e++;
    const records = bins.slice(k, e + 1).reduce((a, b) => a + b.records.length, 0);
    const which = e > k ? `quantile bins ${k}–${e}` : `quantile bin ${k}`;
    out.push(
      h(
        'details',
        { class: 'qbins-zero' },
        h('summary', {}, `${which}: every activation in their ${records} records is 0 (show)`),
        ...bins.slice(k, e + 1).map((b, j) => quantileBin(b, k + j, n.scale)),
      ),
    );
    k = e + 1;
  }
  return out;
}

async function renderNeuron(root: HTMLElement, idx: IndexData, ci: number, layer: number, neuron: number): Promise<void> {
  const c = idx.collections[ci];
  if (!c) throw new Error(`collection ${ci} does not exist (${idx.collections.length} loaded)`);
  const lf = c.layers.find((l) => l.layer === layer);
  if (!lf) throw new Error(`layer ${layer} was not collected (collected layers: ${c.layers.map((l) => l.layer).join(', ')})`);
  if (!(neuron >= 0 && neuron < lf.neurons))
    throw new Error(`neuron ${neuron} is out of range: layer ${layer} has ${lf.neurons} neurons (0..${lf.neurons - 1})`);
  const n = await load<NeuronData>(`c${ci}/layer-${layer}/n${neuron}`);
  const nav = h(
    'nav',
    { class: 'crumbs' },
    h('a', { href: `${cPrefix(ci)}/layer/${layer}` }, `${c.label} › layer ${layer}`),
    ` › neuron ${neuron}  `,
    neuron > 0 ? h('a', { href: neuronHref(ci, layer, neuron - 1), class: 'prev' }, '‹ prev') : null,
    ' ',
    neuron + 1 < lf.neurons ? h('a', { href: neuronHref(ci, layer, neuron + 1), class: 'next' }, 'next ›') : null,
    n.others.length
      ? h('span', { class: 'others' }, '  same index in: ', ...n.others.map((o) => h('a', { href: neuronHref(o.c, layer, neuron), class: 'other' }, o.label)))
      : null,
  );
  const rel = n.related;
  fill(
    root,
    nav,
    h('h2', {}, `Layer ${layer}, neuron ${neuron}`, h('span', { class: 'hook mono' }, ` ${n.hook}`)),
    h(
      'p',
      { class: 'explanation' },
      n.explanation
        ? ['explanation: ', n.explanation].join('')
        : 'no LLM explanation (run crate-ts neurons explain); the token-lookup table below is the offline stand-in',
    ),
    statLine(n),
    colorKey(n.scale),
    llmSection(n),
    classifierSection(n),
    h('h3', {}, `Top activations (${n.top.length})`),
    heatList(n.top, n.scale, 'top'),
    n.quantile ? h('h3', {}, 'Quantile bins') : null,
    ...quantileBins(n),
    h('h3', {}, `Random records (${n.random.length})`),
    heatList(n.random, n.scale, 'random'),
    h(
      'div',
      { class: 'two-col' },
      h(
        'section',
        {},
        h('h3', {}, 'Token lookup'),
        h(
          'p',
          { class: 'muted' },
          'mean normalised activation (0-10) per token string over the TaR explanation records (top #0, 2, 4, 6, 8): the offline simulator\'s "explanation"',
        ),
        h(
          'table',
          { class: 'lookup' },
          h('thead', {}, h('tr', {}, h('th', {}, 'token'), h('th', {}, 'mean 0-10'), h('th', {}, 'count'))),
          h(
            'tbody',
            {},
            ...n.lookup.map((r) =>
              h(
                'tr',
                {},
                h('td', { class: 'mono' }, JSON.stringify(r.token)),
                h('td', { class: 'num' }, fmt(r.value)),
                h('td', { class: 'num' }, String(r.count)),
              ),
            ),
          ),
        ),
      ),
      h('section', {}, h('h3', {}, 'Activation histogram'), histogramChart(n.histogram, n.scale)),
    ),
    h(
      'section',
      { class: 'related-box' },
      h('h3', {}, 'Related tokens by weights'),
      rel === null
        ? h('p', { class: 'muted' }, 'the checkpoint is not available: no weights to read')
        : h(
            'div',
            { class: 'three-col' },
            tokenList('pushes up (output direction → ln_f → head)', rel.up, 'logit effect'),
            tokenList('pushes down', rel.down, 'logit effect'),
            tokenList('excited by (token alone at position 0)', rel.input, 'activation'),
          ),
      rel?.note ? h('p', { class: 'muted' }, rel.note) : null,
    ),
    steerSection(n, idx),
  );
}
