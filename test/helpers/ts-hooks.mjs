// Module hooks that let node run the TypeScript sources directly: `.js` specifiers inside a .ts
// file resolve to the .ts file beside them (the sources import with .js suffixes, as tsc wants),
// and .ts files are transpiled one at a time by the `typescript` dev dependency (types erased,
// no type checking: vitest and tsc do that). Transpiled files are cached in the system's temp
// directory by content hash, so later child processes skip loading the compiler.
import { readFile, writeFile, mkdir, rename } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';

const CACHE = path.join(os.tmpdir(), `crate-ts-test-transpiled-${process.getuid?.() ?? 'u'}`);
let ts = null;

export async function resolve(specifier, context, next) {
  if (context.parentURL?.endsWith('.ts') && /^(\.{1,2}\/|\/|file:)/.test(specifier) && specifier.endsWith('.js')) {
    const url = new URL(specifier, context.parentURL);
    if (!existsSync(url)) {
      const tsUrl = new URL(url.href.slice(0, -3) + '.ts');
      if (existsSync(tsUrl)) return { url: tsUrl.href, shortCircuit: true };
    }
  }
  return next(specifier, context);
}

export async function load(url, context, next) {
  if (!url.endsWith('.ts')) return next(url, context);
  const file = fileURLToPath(url);
  const source = await readFile(file, 'utf8');
  const key = createHash('sha256').update(file).update('\0').update(source).digest('hex').slice(0, 32);
  const cached = path.join(CACHE, `${key}.js`);
  try {
    return { format: 'module', source: await readFile(cached, 'utf8'), shortCircuit: true };
  } catch { /* not cached yet */ }
  ts ??= (await import('typescript')).default;
  const out = ts.transpileModule(source, {
    fileName: file,
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, inlineSourceMap: true },
  }).outputText;
  try {
    await mkdir(CACHE, { recursive: true });
    const tmp = `${cached}.tmp-${process.pid}-${Math.random().toString(16).slice(2)}`;
    await writeFile(tmp, out);
    await rename(tmp, cached);
  } catch { /* a cache is optional */ }
  return { format: 'module', source: out, shortCircuit: true };
}
