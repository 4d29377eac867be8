/* eslint-disable @typescript-eslint/no-unused-vars -- browser scripts share one global scope: the other files use these names */
// DOM helpers and the data loader. Every string from the data goes in as text (textContent),
// never as HTML: token strings and LLM explanations are untrusted.

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | null | undefined | ((e: Event) => void)>;

/** Create an element: h('a', { href: '#/', class: 'x', onclick: f }, 'text', child). */
function h(tag: string, attrs: Attrs = {}, ...children: Child[]): HTMLElement {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** Create an SVG element. */
function s(tag: string, attrs: Attrs = {}, ...children: Child[]): SVGElement {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el: Element, attrs: Attrs): void {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (typeof v === 'function') el.addEventListener(k.replace(/^on/, ''), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

function append(el: Element, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
}

/** Replace an element's children (null/false children are skipped). */
function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

/** A number for display: 3 significant digits, or '–' when missing. */
function fmt(x: number | null | undefined, digits = 3): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '–';
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1e4 || a < 1e-3) return x.toExponential(digits - 1);
  return Number(x.toPrecision(digits)).toString();
}

/** A token string made visible: newlines and tabs as symbols (the record keeps the real string). */
function showTok(t: string): string {
  return t.replace(/\n/g, '↵').replace(/\t/g, '→').replace(/\r/g, '␍');
}

// ---- data loading: one classic <script> per data file, which calls crateViewerData(key, data) ----
// (fetch() of file:// URLs is blocked in Chromium, script tags are not.)

const loaded = new Map<string, unknown>();
const waiting = new Map<string, { resolve: (v: unknown) => void; reject: (e: Error) => void }[]>();

window.crateViewerData = (key: string, data: unknown) => {
  loaded.set(key, data);
  for (const w of waiting.get(key) ?? []) w.resolve(data);
  waiting.delete(key);
};

window.crateViewerError = (key: string, message: string) => {
  for (const w of waiting.get(key) ?? []) w.reject(new Error(message));
  waiting.delete(key);
};

/** Load data/<key>.js once; resolves with the object it registers. */
function load<T>(key: string): Promise<T> {
  if (loaded.has(key)) return Promise.resolve(loaded.get(key) as T);
  return new Promise<T>((resolve, reject) => {
    const first = !waiting.has(key);
    waiting.set(key, [...(waiting.get(key) ?? []), { resolve: resolve as (v: unknown) => void, reject }]);
    if (!first) return;
    const el = document.createElement('script');
    el.src = `data/${key}.js`;
    el.onerror = () => window.crateViewerError(key, `could not load data/${key}.js (missing from the site?)`);
    el.onload = () => {
      el.remove();
      if (waiting.has(key)) window.crateViewerError(key, `data/${key}.js did not register its data`);
    };
    document.head.appendChild(el);
  });
}

/** The hash of a collection's page (collection 0 has the short form). */
function cPrefix(c: number): string {
  return c === 0 ? '#' : `#/c/${c}`;
}

function neuronHref(c: number, layer: number, neuron: number): string {
  return `${cPrefix(c)}/layer/${layer}/neuron/${neuron}`;
}
