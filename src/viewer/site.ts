// Export a self-contained static site (crate-ts neurons view DIR --export OUT): index.html, app.js,
// style.css and the data as classic scripts, one per layer table and one per neuron,
//
//   OUT/data/index.js                     crateViewerData("index", {...})
//   OUT/data/c{k}/layer-{l}/table.js      the neuron table of layer l of collection k
//   OUT/data/c{k}/layer-{l}/n{i}.js       neuron i's page
//   OUT/crate-viewer.json                 what made the site (marks the directory as an export)
//
// Scripts, not JSON, because a page opened from file:// may not fetch() local files in Chromium
// while it may load <script src>; so the site works from the file system, with no server and no
// network. It is written into a temporary directory next to OUT and renamed into place.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { DataError, UsageError } from '../errors.js';
import { indexHtml, readAppJs, STYLE_CSS } from './assets.js';
import { VIEWER_FORMAT_VERSION, type ViewerData } from './data.js';

export const SITE_MARKER = 'crate-viewer.json';

/** The script that registers one data object under its key. */
export function dataScript(key: string, data: unknown): string {
  return `crateViewerData(${JSON.stringify(key)}, ${JSON.stringify(data)});\n`;
}

/** The script served in place of a data object that could not be built (the page shows the message). */
export function errorScript(key: string, message: string): string {
  return `crateViewerError(${JSON.stringify(key)}, ${JSON.stringify(message)});\n`;
}

export interface ExportOptions {
  /** The compiled front end (default: the build's dist/viewer/web/app.js). */
  appJs?: string;
  /** Called after each neuron page. */
  onProgress?: (done: number, total: number) => void;
}

export interface ExportSummary {
  dir: string;
  files: number;
  bytes: number;
  neurons: number;
  seconds: number;
}

function checkTarget(out: string): void {
  if (!fs.existsSync(out)) {
    const parent = path.dirname(path.resolve(out));
    if (!fs.existsSync(parent)) throw new UsageError((n) => `${n('exportDir')}: directory '${parent}' does not exist`, { option: 'exportDir' });
    return;
  }
  if (!fs.statSync(out).isDirectory()) throw new UsageError((n) => `${n('exportDir')} '${out}' exists and is not a directory`, { option: 'exportDir' });
  const entries = fs.readdirSync(out);
  if (entries.length && !entries.includes(SITE_MARKER))
    throw new UsageError((n) => `${n('exportDir')} '${out}' is a non-empty directory that is not a viewer export (no ${SITE_MARKER}); refusing to replace it`, {
      option: 'exportDir',
    });
}

/** Write the whole site to `out` (replacing an earlier export there). */
export function exportSite(data: ViewerData, out: string, opts: ExportOptions = {}): ExportSummary {
  const t0 = performance.now();
  checkTarget(out);
  const appJs = opts.appJs ?? readAppJs();
  const abs = path.resolve(out);
  const tmp = path.join(path.dirname(abs), `.${path.basename(abs)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  let files = 0,
    bytes = 0;
  const write = (rel: string, text: string) => {
    const f = path.join(tmp, rel);
    fs.mkdirSync(path.dirname(f), { recursive: true });
    fs.writeFileSync(f, text);
    files++;
    bytes += Buffer.byteLength(text);
  };
  const total = data.collections.reduce((s, c) => s + c.layers.reduce((a, l) => a + l.neurons, 0), 0);
  let done = 0;
  try {
    fs.mkdirSync(tmp);
    write('index.html', indexHtml());
    write('style.css', STYLE_CSS);
    write('app.js', appJs);
    write('data/index.js', dataScript('index', data.index()));
    for (const c of data.collections) {
      for (const lf of c.layers) {
        const dir = `c${c.index}/layer-${lf.layer}`;
        write(`data/${dir}/table.js`, dataScript(`${dir}/table`, data.table(c.index, lf.layer)));
        for (let i = 0; i < lf.neurons; i++) {
          write(`data/${dir}/n${i}.js`, dataScript(`${dir}/n${i}`, data.neuron(c.index, lf.layer, i)));
          opts.onProgress?.(++done, total);
        }
      }
    }
    write(
      SITE_MARKER,
      JSON.stringify(
        {
          format: 'crate-ts-viewer-site',
          format_version: VIEWER_FORMAT_VERSION,
          created: new Date().toISOString(),
          // names and checksums, never this machine's paths (an export is made to be shared)
          collections: data.collections.map((c) => ({
            name: path.basename(path.resolve(c.dir)),
            label: c.label,
            checkpoint_sha256: c.manifest.checkpoint.sha256,
            data_sha256: c.manifest.data.sha256,
            tokens_sha256: c.manifest.tokens_sha256,
          })),
          neurons: total,
        },
        null,
        2,
      ) + '\n',
    );
    // swap into place: an earlier export is moved aside first and removed after the rename
    let old: string | null = null;
    if (fs.existsSync(abs)) {
      old = `${tmp}.old`;
      fs.renameSync(abs, old);
    }
    fs.renameSync(tmp, abs);
    if (old) fs.rmSync(old, { recursive: true, force: true });
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    const err = e as NodeJS.ErrnoException;
    if (err.code && typeof err.code === 'string' && !(e instanceof UsageError)) {
      throw new DataError(
        `cannot write the site to '${out}': ${err.code === 'ENOSPC' ? 'no space left on the device' : err.code} (${err.message.split('\n')[0]})`,
        { cause: e },
      );
    }
    throw e;
  }
  return { dir: abs, files, bytes, neurons: total, seconds: (performance.now() - t0) / 1000 };
}
