// Layering: only the command line (src/cli/) talks to the terminal or ends the process. Library code
// reports through return values, events and typed errors (src/errors.ts), so that a program embedding
// crate-ts keeps control of its output and its lifetime.
import { describe, it, expect } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';

const SRC = path.resolve(__dirname, '..', 'src');

const FORBIDDEN: { what: string; re: RegExp }[] = [
  { what: 'process.exit', re: /\bprocess\s*\.\s*(exit|abort|reallyExit)\s*\(/ },
  { what: 'process.exitCode', re: /\bprocess\s*\.\s*exitCode\b/ },
  {
    what: 'console output',
    re: /\bconsole\s*\.\s*(log|error|warn|info|debug|trace|table|dir|dirxml|group|groupCollapsed|time|timeEnd|timeLog|count|assert)\b/,
  },
  { what: 'a write to stdout/stderr', re: /\bprocess\s*\.\s*(stdout|stderr)\s*\.\s*(write|end)\b/ },
  { what: 'a write to fd 1/2', re: /\bwrite(Sync)?\s*\(\s*[12]\s*,/ },
];

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...tsFiles(p));
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** Blank out comments (keeping line numbers), so prose that names a forbidden call does not count. */
function stripComments(src: string): string {
  let out = '',
    i = 0;
  let quote: string | null = null;
  while (i < src.length) {
    const c = src[i],
      n = src[i + 1];
    if (quote) {
      out += c;
      if (c === '\\') {
        out += n ?? '';
        i += 2;
        continue;
      }
      if (c === quote) quote = null;
      i++;
    } else if (c === '/' && n === '/') {
      while (i < src.length && src[i] !== '\n') i++;
    } else if (c === '/' && n === '*') {
      const end = src.indexOf('*/', i + 2);
      const stop = end < 0 ? src.length : end + 2;
      out += src.slice(i, stop).replace(/[^\n]/g, ' ');
      i = stop;
    } else {
      if (c === '"' || c === "'" || c === '`') quote = c;
      out += c;
      i++;
    }
  }
  return out;
}

function violations(file: string, text: string): string[] {
  const found: string[] = [];
  stripComments(text)
    .split('\n')
    .forEach((line, k) => {
      for (const f of FORBIDDEN) if (f.re.test(line)) found.push(`${path.relative(SRC, file)}:${k + 1}: ${f.what}: ${line.trim()}`);
    });
  return found;
}

/**
 * The relative modules a file loads at run time: static imports and re-exports (not `import type`,
 * nor ones whose every name is `type X`, which TypeScript erases), side-effect imports and dynamic
 * `import('./x.js')`. Paths are resolved to .ts files next to `file`.
 */
function runtimeImports(file: string, text: string): string[] {
  const deps = new Set<string>();
  const add = (spec: string) => deps.add(path.resolve(path.dirname(file), spec.replace(/\.js$/, '.ts')));
  const code = stripComments(text);
  for (const m of code.matchAll(/^\s*(?:import|export)\s+(type\s+)?([^'";]*?)\s*from\s*['"](\.[^'"]+)['"]/gms)) {
    if (m[1]) continue;
    const names = /^\{([^}]*)\}$/s.exec(m[2].trim());
    if (names) {
      const list = names[1]
        .split(',')
        .map((x) => x.trim())
        .filter((x) => x.length > 0);
      if (list.length > 0 && list.every((x) => x.startsWith('type '))) continue;
    }
    add(m[3]);
  }
  for (const m of code.matchAll(/^\s*import\s+['"](\.[^'"]+)['"]/gm)) add(m[1]);
  for (const m of code.matchAll(/\bimport\(\s*['"](\.[^'"]+)['"]\s*\)/g)) add(m[1]);
  return [...deps];
}

/** The import cycles (strongly connected components of more than one module, or a self-import). */
function importCycles(graph: Map<string, string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>(),
    low = new Map<string, number>(),
    stack: string[] = [],
    onStack = new Set<string>(),
    cycles: string[][] = [];
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || (graph.get(v) ?? []).includes(v)) cycles.push(comp.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return cycles;
}

describe('layering', () => {
  it('no process.exit and no console output in src/ outside src/cli/', () => {
    const files = tsFiles(SRC).filter((f) => !path.relative(SRC, f).startsWith('cli' + path.sep));
    expect(files.length).toBeGreaterThan(20);
    const bad = files.flatMap((f) => violations(f, fs.readFileSync(f, 'utf8')));
    expect(bad, bad.join('\n')).toEqual([]);
  });

  it('the scanner sees the calls it must and skips comments', () => {
    const src = [
      'const a = 1; // process.exit(1) in a comment',
      '/* console.log("x") */ const b = 2;',
      '  if (bad) process.exit(2);',
      '  console.error(`oops`);',
      '  process.stdout.write(text);',
      '  fs.writeSync(2, msg);',
      "  const s = 'no // comment here'; process.exitCode = 1;",
    ].join('\n');
    const v = violations(path.join(SRC, 'x.ts'), src).map((s) => s.split(': ')[0]);
    expect(v).toEqual(['x.ts:3', 'x.ts:4', 'x.ts:5', 'x.ts:6', 'x.ts:7']);
  });
  it('no runtime import cycle in src/ (static, side-effect and dynamic imports; type-only imports are erased)', () => {
    const files = tsFiles(SRC).filter((f) => !f.endsWith('.d.ts'));
    const graph = new Map(files.map((f) => [f, runtimeImports(f, fs.readFileSync(f, 'utf8'))] as const));
    const cycles = importCycles(graph).map((c) => c.map((f) => path.relative(SRC, f)).join(' <-> '));
    expect(cycles, cycles.join('\n')).toEqual([]);
  });

  it('src/testing/ (test support) is outside the library: no library module imports it', () => {
    const testing = path.join(SRC, 'testing') + path.sep;
    const bad = tsFiles(SRC)
      .filter((f) => !f.startsWith(testing))
      .flatMap((f) =>
        runtimeImports(f, fs.readFileSync(f, 'utf8'))
          .filter((d) => d.startsWith(testing))
          .map((d) => `${path.relative(SRC, f)} imports ${path.relative(SRC, d)}`),
      );
    expect(bad, bad.join('\n')).toEqual([]);
    expect(fs.existsSync(path.join(SRC, 'testing', 'checkpoint-fuzz.ts'))).toBe(true);
  });

  it('the import scanner sees runtime imports, skips type-only ones, and the cycle finder finds a cycle', () => {
    const f = path.join(SRC, 'cli', 'x.ts');
    const text = [
      "import type { A } from './a.js';",
      "import { type B, type C } from './b.js';",
      "import { closest, type D } from './c.js';",
      "import './d.js';",
      "export { e } from '../e.js';",
      "// import { f } from './f.js';",
      "const g = () => import('./g.js');",
    ].join('\n');
    const got = runtimeImports(f, text).map((p) => path.relative(SRC, p));
    expect(got.sort()).toEqual(['cli/c.ts', 'cli/d.ts', 'cli/g.ts', 'e.ts']);
    const graph = new Map<string, string[]>([
      ['main', ['backend']],
      ['backend', ['main', 'suggest']],
      ['suggest', []],
    ]);
    expect(importCycles(graph)).toEqual([['backend', 'main']]);
    graph.set('backend', ['suggest']);
    expect(importCycles(graph)).toEqual([]);
  });
});
