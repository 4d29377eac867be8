// The viewer's router: the URL's hash addresses every page, so a neuron can be shared as a link.
//   #/                              overview of the first collection (its first layer's table)
//   #/layer/L                       overview, layer L's table
//   #/layer/L/neuron/I              neuron I of layer L (first collection)
//   #/c/K, #/c/K/layer/L[/neuron/I] the same for collection K

interface Route {
  c: number;
  layer: number | null;
  neuron: number | null;
}

function parseRoute(hash: string): Route | null {
  const m = /^#?\/?(?:c\/(\d+)\/?)?(?:layer\/(\d+)\/?(?:neuron\/(\d+)\/?)?)?$/.exec(hash);
  if (!m) return null;
  return { c: m[1] === undefined ? 0 : Number(m[1]), layer: m[2] === undefined ? null : Number(m[2]), neuron: m[3] === undefined ? null : Number(m[3]) };
}

let renderSeq = 0;

async function route(): Promise<void> {
  const seq = ++renderSeq;
  const root = document.getElementById('main') as HTMLElement;
  const tabs = document.getElementById('tabs') as HTMLElement;
  document.body.removeAttribute('data-ready');
  try {
    const idx = await load<IndexData>('index');
    const r = parseRoute(location.hash);
    if (!r) throw new Error(`no page at '${location.hash}' (try #/layer/0/neuron/0)`);
    tabs.replaceChildren(
      ...idx.collections.map((c) => h('a', { href: c.id === 0 ? '#/' : `#/c/${c.id}`, class: c.id === r.c ? 'tab active' : 'tab' }, c.label)),
    );
    const page = h('div', {});
    if (r.neuron !== null && r.layer !== null) await renderNeuron(page, idx, r.c, r.layer, r.neuron);
    else await renderOverview(page, idx, r.c, r.layer);
    if (seq !== renderSeq) return; // a newer navigation won
    root.replaceChildren(page);
    document.title = r.neuron !== null ? `layer ${r.layer} neuron ${r.neuron} · crate-ts neurons` : `${idx.collections[r.c].label} · crate-ts neurons`;
    document.body.setAttribute('data-ready', r.neuron !== null ? 'neuron' : 'overview');
  } catch (e) {
    if (seq !== renderSeq) return;
    root.replaceChildren(h('p', { class: 'error' }, String((e as Error).message)));
    document.body.setAttribute('data-ready', 'error');
  }
  if (window.crateViewerPainted === undefined) window.crateViewerPainted = performance.now();
  window.scrollTo(0, 0);
}

window.addEventListener('hashchange', () => {
  void route();
});
void route();
