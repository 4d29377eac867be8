// The site's static files: index.html, style.css, and the front end's compiled script (app.js,
// built by `tsc -p src/viewer/web/tsconfig.json` into dist/viewer/web/app.js).
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { InternalError } from '../errors.js';

/** The page every route is rendered into; the scripts are classic (file:// refuses modules). */
export function indexHtml(): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>crate-ts neurons</title>
<link rel="stylesheet" href="style.css">
</head>
<body>
<header><a class="home" href="#/">crate-ts neurons</a><nav id="tabs"></nav></header>
<main id="main"><p class="muted">loading…</p></main>
<noscript>This viewer needs JavaScript (it runs locally; nothing is fetched from the network).</noscript>
<script src="app.js"></script>
</body>
</html>
`;
}

export const STYLE_CSS = `
:root { --fg: #212529; --muted: #6c757d; --line: #dee2e6; --accent: #d9480f; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: #fff; }
header { display: flex; gap: 1.5em; align-items: baseline; padding: .6em 1.2em; border-bottom: 1px solid var(--line); background: #f8f9fa; }
header .home { font-weight: 700; color: var(--fg); text-decoration: none; }
.tab { margin-right: 1em; color: var(--muted); text-decoration: none; }
.tab.active { color: var(--accent); font-weight: 600; }
main { padding: .5em 1.2em 3em; max-width: 1200px; }
h2 { margin: .6em 0 .3em; } h3 { margin: 1.3em 0 .4em; } h4 { margin: .6em 0 .2em; font-size: 13px; }
details.qbins-zero > summary { color: var(--muted); font-size: 13px; cursor: pointer; margin: .5em 0; }
a { color: #1c7ed6; }
.muted { color: var(--muted); font-size: 12.5px; }
.error { color: #c92a2a; font-weight: 600; }
.warnings { color: #c92a2a; }
.mono, .tok { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
dl.info { display: grid; grid-template-columns: max-content 1fr; gap: .15em 1em; margin: .4em 0; }
dl.info dt { color: var(--muted); } dl.info dd { margin: 0; word-break: break-all; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: .2em .55em; text-align: left; vertical-align: top; }
th { background: #f8f9fa; font-weight: 600; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th.sortable { cursor: pointer; user-select: none; }
th.asc::after { content: " ▲"; } th.desc::after { content: " ▼"; }
tr.dead td { color: #adb5bd; }
td.expl { max-width: 420px; }
.filters { display: flex; gap: 1em; align-items: center; margin: .4em 0; flex-wrap: wrap; }
.filters input[type=number] { width: 6em; }
.pager { margin: .5em 0; }
.chart-box { margin: .3em 0; }
.chart .grid { stroke: #eee; } .chart .tick { font-size: 11px; fill: #555; } .chart .axis { font-size: 12px; fill: #333; }
.legend { display: flex; flex-wrap: wrap; gap: .3em 1.2em; font-size: 12px; }
.stats { display: flex; flex-wrap: wrap; gap: .2em 1.1em; margin: .4em 0; }
.stat b { color: var(--muted); font-weight: 500; }
.explanation { font-size: 15px; }
.hook { color: var(--muted); font-size: 14px; font-weight: 400; }
.records { margin: .2em 0; }
.record-row { display: flex; gap: .6em; align-items: flex-start; margin: 1px 0; }
.rec-val { width: 4.5em; flex: none; text-align: right; color: var(--muted); font-size: 12px; padding-top: 2px; }
.record { display: flex; flex-wrap: wrap; line-height: 1.55; }
.tok { white-space: pre; font-size: 12.5px; padding: 0; }
.tok.sel { outline: 1.5px solid #222; outline-offset: -1px; font-weight: 700; }
.tok:hover { outline: 1px solid #888; }
.color-key .tok { display: inline-block; min-width: 3.6em; text-align: center; border: 1px solid #ddd; margin-right: 2px; }
.sim-pair { margin: .35em 0; padding-left: .4em; border-left: 3px solid var(--line); }
.two-col { display: grid; grid-template-columns: 1fr 1fr; gap: 2em; }
.three-col { display: grid; grid-template-columns: 1fr 1fr 1fr; gap: 1.5em; }
.crumbs { margin-top: .6em; color: var(--muted); } .others a { margin-left: .5em; }
.steer-box { margin: .5em 0; display: flex; gap: .4em; align-items: center; }
.cls-example .rec-val { min-width: 8.5em; } .cls-example.right .rec-val { color: #2b8a3e; } .cls-example.wrong .rec-val { color: #c92a2a; }
.classifier { margin: .35em 0; padding-left: .4em; border-left: 3px solid var(--line); }
@media (max-width: 800px) { .two-col, .three-col { grid-template-columns: 1fr; } }
`;

/**
 * The compiled front end. Looked up next to this module (dist/viewer/web/app.js when running the
 * build) or in dist/ from the sources (tests pass a fresh build explicitly).
 */
export function readAppJs(): string {
  const candidates = [new URL('./web/app.js', import.meta.url), new URL('../../dist/viewer/web/app.js', import.meta.url)];
  for (const u of candidates) {
    const f = fileURLToPath(u);
    if (fs.existsSync(f)) return fs.readFileSync(f, 'utf8');
  }
  throw new InternalError('the viewer front end is not built (dist/viewer/web/app.js is missing): run `npm run build`');
}
