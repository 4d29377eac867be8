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
});
