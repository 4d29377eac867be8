/* eslint-disable @typescript-eslint/no-unused-vars -- browser scripts share one global scope: the other files use these names */
// The overview of a collection: model and data, the per-layer score chart of every loaded
// collection, per-layer density and dead neurons, and the neuron table of one layer (sortable by
// any column, filterable by text, score and liveness, 200 rows a page).

const PAGE_ROWS = 200;

interface TableState {
  sort: number;
  desc: boolean;
  text: string;
  col: number;
  min: string;
  max: string;
  hideDead: boolean;
  page: number;
}
const tableStates = new Map<string, TableState>();

interface Col {
  key: number;
  label: string;
  title: string;
  num: boolean;
}

const COLS: Col[] = [
  { key: 0, label: 'neuron', title: 'neuron index', num: true },
  { key: 1, label: 'TaR ×100', title: 'token-lookup score, Top-and-Random split (Pearson r × 100)', num: true },
  { key: 2, label: 'Random ×100', title: 'token-lookup score, Random-only split (Pearson r × 100)', num: true },
  { key: 3, label: 'Anthr. ×100', title: 'token-lookup score, Anthropic split (Pearson r × 100; needs quantile records)', num: true },
  { key: 4, label: 'LLM ×100', title: 'LLM simulation score (TaR, Pearson r × 100), when present', num: true },
  { key: 5, label: 'density', title: 'fraction (0-1) of the collected tokens with activation > 0', num: true },
  { key: 6, label: 'max', title: 'largest activation on the collected tokens', num: true },
  { key: 7, label: 'consist.', title: 'fraction of the top records whose selected token is the most common one', num: true },
  { key: 8, label: 'select.', title: 'fraction of random-record tokens at ≥ 10% of the max', num: true },
  { key: 9, label: 'top token', title: 'most common selected token of the top records', num: false },
  { key: 10, label: 'explanation', title: 'LLM explanation, when present', num: false },
];

/** The table's columns: the classifier scores (row index 11 on) right after the LLM score. */
function columnsOf(c: CollectionSummary): Col[] {
  const cls = c.classifierSets.map((s, k) => ({
    key: 11 + k,
    label: `${s.scorer === 'detection' ? 'Detect.' : 'Fuzz.'} ×100`,
    title: `${s.scorer} score: balanced accuracy × 100 (chance 50), judge ${s.judge} (${s.name}/)`,
    num: true,
  }));
  return [...COLS.slice(0, 5), ...cls, ...COLS.slice(5)];
}

function infoList(c: CollectionSummary): HTMLElement {
  const cfg = c.config;
  const rows: [string, string][] = [
    ['model', `${c.arch}, ${cfg.nLayer} layers, d ${cfg.nEmbd}, ${cfg.nHead} heads, V ${cfg.vocabSize}, block ${cfg.blockSize}`],
    ['collection', `${c.name}, tokens sha256 ${c.tokens_sha256.slice(0, 16)}…`],
    ['checkpoint', `${c.checkpoint.file}${c.checkpoint.step !== null ? ` (step ${c.checkpoint.step})` : ''}, sha256 ${c.checkpoint.sha256.slice(0, 16)}…`],
    ['data', `${c.data.description}; ${c.data.split}; sha256 ${c.data.sha256.slice(0, 16)}…`],
    ['collected', `${c.n_tokens.toLocaleString('en-US')} tokens in windows of ${c.window}, ${c.tokenizer} tokenizer, variant ${c.variant}, seed ${c.seed}`],
    [
      'scores',
      `offline token-lookup scores: ${c.scoresSource}; LLM results: ${c.llmSets.length ? c.llmSets.join(', ') : 'none'}; detection / fuzzing: ${c.classifierSets.length ? c.classifierSets.map((s) => `${s.name} (${s.scorer}, judge ${s.judge})`).join(', ') : 'none'}`,
    ],
    ...(c.sae
      ? ([
          [
            'SAE',
            `features of ${c.sae.name ?? 'an SAE'} on ${c.sae.hook ?? '?'} (${c.sae.d_in ?? '?'} → ${c.sae.d_sae ?? '?'}${c.sae.sha256 ? `, weights sha256 ${c.sae.sha256.slice(0, 16)}…` : ''})${c.sae.available ? '' : '; not available here'}`,
          ],
        ] as [string, string][])
      : []),
    ['weights', c.model.note || (c.model.available ? 'available' : 'not available')],
    ['made by', `crate-ts ${c.crate_ts_version}, ${c.created}`],
  ];
  return h('dl', { class: 'info' }, ...rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function layerTable(c: CollectionSummary): HTMLElement {
  const sets = c.llmSets;
  const head = h(
    'tr',
    {},
    ...[
      'layer',
      'hook',
      'neurons',
      'lookup TaR ×100',
      'Random-only ×100',
      'Anthropic ×100',
      ...sets.map((st) => `LLM TaR ×100 (${st})`),
      ...c.classifierSets.map((st) => `${st.scorer} ×100 (${st.name})`),
      'density',
      'dead',
      'selectivity',
      'consistency',
    ].map((t) => h('th', {}, t)),
  );
  const body = c.layers.map((l) =>
    h(
      'tr',
      {},
      h('td', {}, h('a', { href: `${cPrefix(c.id)}/layer/${l.layer}` }, String(l.layer))),
      h('td', { class: 'mono' }, l.hook),
      h('td', {}, String(l.neurons)),
      h('td', {}, fmt(l.tar)),
      h('td', {}, fmt(l.randomOnly)),
      h('td', {}, fmt(l.anthropic)),
      ...sets.map((st) => h('td', {}, fmt(l.llm[st]?.tar))),
      ...c.classifierSets.map((st) => {
        const x = l.classifiers[st.name];
        return h(
          'td',
          {
            class: 'cls-mean',
            title: x ? `${x.scored} of ${x.judged} judged neurons have a score; F1 ×100 ${fmt(x.f1)}, AUC ×100 ${fmt(x.auc)}` : 'not judged',
          },
          fmt(x?.balancedAccuracy),
        );
      }),
      h('td', {}, fmt(l.density)),
      h('td', { class: 'dead-count' }, `${l.dead} (${fmt((100 * l.dead) / l.neurons, 2)}%)`),
      h('td', {}, fmt(l.selectivity)),
      h('td', {}, fmt(l.consistency)),
    ),
  );
  return h('table', { class: 'layers' }, h('thead', {}, head), h('tbody', {}, ...body));
}

/** Filter and sort a layer's rows as the state says. */
function selectRows(rows: TableRow[], st: TableState): TableRow[] {
  const text = st.text.trim().toLowerCase();
  const bound = (x: string) => (x.trim() === '' || !Number.isFinite(Number(x)) ? null : Number(x));
  const min = bound(st.min),
    max = bound(st.max);
  // the "score" choice (-1) is the LLM score when present, else the lookup TaR score
  const value = (r: TableRow): number | null => (st.col < 0 ? (r[4] ?? r[1]) : (r[st.col] as number | null));
  let out = rows.filter((r) => {
    if (st.hideDead && !((r[6] ?? 0) > 0)) return false;
    if (min !== null && !((value(r) ?? -Infinity) >= min)) return false;
    if (max !== null && !((value(r) ?? Infinity) <= max)) return false;
    if (text && !`${r[9] ?? ''} ${r[10] ?? ''}`.toLowerCase().includes(text)) return false;
    return true;
  });
  const k = st.sort,
    dir = st.desc ? -1 : 1;
  out = out.slice().sort((a, b) => {
    const x = a[k],
      y = b[k];
    if (x === y) return a[0] - b[0];
    if (x === null) return 1; // missing values last, whichever the direction
    if (y === null) return -1;
    return (typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y))) * dir;
  });
  return out;
}

function neuronTable(c: CollectionSummary, t: TableData): HTMLElement {
  const key = `${c.id}/${t.layer}`;
  const st = tableStates.get(key) ?? { sort: 0, desc: false, text: '', col: -1, min: '', max: '', hideDead: false, page: 0 };
  tableStates.set(key, st);
  const box = h('div', { class: 'neuron-table' });
  const draw = () => {
    const rows = selectRows(t.rows, st);
    const pages = Math.max(1, Math.ceil(rows.length / PAGE_ROWS));
    st.page = Math.min(st.page, pages - 1);
    const shown = rows.slice(st.page * PAGE_ROWS, (st.page + 1) * PAGE_ROWS);
    const cols = columnsOf(c);
    const th = cols.map((col) =>
      h(
        'th',
        {
          title: col.title,
          class: `sortable${st.sort === col.key ? (st.desc ? ' desc' : ' asc') : ''}`,
          'data-col': col.key,
          onclick: () => {
            if (st.sort === col.key) st.desc = !st.desc;
            else {
              st.sort = col.key;
              st.desc = col.num && col.key !== 0;
            }
            st.page = 0;
            draw();
          },
        },
        col.label,
      ),
    );
    const body = shown.map((r) =>
      h(
        'tr',
        { 'data-neuron': r[0], class: (r[6] ?? 0) > 0 ? '' : 'dead' },
        h('td', {}, h('a', { href: neuronHref(c.id, t.layer, r[0]) }, String(r[0]))),
        ...cols.filter((col) => col.num && col.key !== 0).map((col) => h('td', { class: 'num' }, fmt(r[col.key] as number | null))),
        h('td', { class: 'mono' }, r[9] === null ? '' : JSON.stringify(r[9])),
        h('td', { class: 'expl' }, r[10] ?? ''),
      ),
    );
    const pager = h(
      'div',
      { class: 'pager' },
      h(
        'button',
        {
          type: 'button',
          disabled: st.page === 0,
          onclick: () => {
            st.page--;
            draw();
          },
        },
        '‹ prev',
      ),
      ` page ${st.page + 1} of ${pages} `,
      h(
        'button',
        {
          type: 'button',
          disabled: st.page >= pages - 1,
          onclick: () => {
            st.page++;
            draw();
          },
        },
        'next ›',
      ),
    );
    box.replaceChildren(
      h('p', { class: 'count' }, `${rows.length} of ${t.rows.length} neurons of layer ${t.layer} (${t.hook})`),
      h('table', { class: 'neurons' }, h('thead', {}, h('tr', {}, ...th)), h('tbody', {}, ...body)),
      pager,
    );
  };
  const controls = h(
    'div',
    { class: 'filters' },
    h(
      'label',
      {},
      'text ',
      h('input', {
        type: 'search',
        class: 'filter-text',
        placeholder: 'top token or explanation',
        value: st.text,
        oninput: (e: Event) => {
          st.text = (e.target as HTMLInputElement).value;
          st.page = 0;
          draw();
        },
      }),
    ),
    h(
      'select',
      {
        class: 'filter-col',
        title: 'the column the range applies to',
        onchange: (e: Event) => {
          st.col = Number((e.target as HTMLSelectElement).value);
          st.page = 0;
          draw();
        },
      },
      ...[
        [-1, 'score (LLM, else lookup TaR)'],
        [1, 'lookup TaR'],
        [2, 'Random-only'],
        [5, 'density'],
        [6, 'max'],
        [7, 'consistency'],
        [8, 'selectivity'],
        ...c.classifierSets.map((s, k) => [11 + k, `${s.scorer} (${s.name})`]),
      ].map(([k, label]) => h('option', { value: k, selected: st.col === k }, String(label))),
    ),
    h(
      'label',
      {},
      ' from ',
      h('input', {
        type: 'number',
        step: 'any',
        class: 'filter-min',
        value: st.min,
        oninput: (e: Event) => {
          st.min = (e.target as HTMLInputElement).value;
          st.page = 0;
          draw();
        },
      }),
    ),
    h(
      'label',
      {},
      ' to ',
      h('input', {
        type: 'number',
        step: 'any',
        class: 'filter-max',
        value: st.max,
        oninput: (e: Event) => {
          st.max = (e.target as HTMLInputElement).value;
          st.page = 0;
          draw();
        },
      }),
    ),
    h(
      'label',
      {},
      h('input', {
        type: 'checkbox',
        class: 'filter-dead',
        checked: st.hideDead,
        onchange: (e: Event) => {
          st.hideDead = (e.target as HTMLInputElement).checked;
          st.page = 0;
          draw();
        },
      }),
      ' hide dead',
    ),
  );
  draw();
  return h('section', {}, controls, box);
}

async function renderOverview(root: HTMLElement, idx: IndexData, ci: number, layer: number | null): Promise<void> {
  const c = idx.collections[ci];
  if (!c) throw new Error(`collection ${ci} does not exist (${idx.collections.length} loaded)`);
  const L = layer ?? c.layers[0].layer;
  const lf = c.layers.find((l) => l.layer === L);
  if (!lf) throw new Error(`layer ${L} was not collected (collected layers: ${c.layers.map((l) => l.layer).join(', ')})`);
  const table = await load<TableData>(`c${ci}/layer-${L}/table`);
  const layerPick = h(
    'select',
    {
      class: 'layer-select',
      onchange: (e: Event) => {
        location.hash = `${cPrefix(ci)}/layer/${(e.target as HTMLSelectElement).value}`;
      },
    },
    ...c.layers.map((l) => h('option', { value: l.layer, selected: l.layer === L }, `layer ${l.layer}`)),
  );
  fill(
    root,
    h('h2', {}, c.label),
    c.warnings.length ? h('ul', { class: 'warnings' }, ...c.warnings.map((w) => h('li', {}, w))) : null,
    infoList(c),
    h('h3', {}, 'Mean score per layer', idx.collections.length > 1 ? ' (every loaded collection)' : ''),
    scoreChart(idx.collections),
    h('h3', {}, 'Layers'),
    layerTable(c),
    h('h3', {}, 'Neurons of ', layerPick),
    neuronTable(c, table),
  );
}
