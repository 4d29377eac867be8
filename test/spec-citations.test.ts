// Every citation of the spec in the repository ("spec E19", "spec 3.1", "spec 7.8.2-7.8.4",
// "spec P20", "spec Appendix A", "spec sections 2.1–2.3, 2.5", "Spec table 5.2", "(spec E17/E19)")
// names a heading of docs/spec.md. The scan covers src/, native/, test/, scripts/ and README.md;
// a citation is the word "spec" (or "spec's") followed by an optional "section(s)", "table",
// "appendix", "equation(s)" or "§" and a list of ids joined by commas, slashes, "and" or ranges
// (E16-E19, 7.3–7.5: both ends, and for E/P ranges every id between). An id is E<n>, P<n>, a
// section number (3, 3.1, 7.8.1) or "Appendix <letter>".
import { describe, it, expect } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..');
const SPEC = path.join(root, 'docs', 'spec.md');
const SCANNED = ['src', 'native', 'test', 'scripts', 'README.md'];
const TEXT = /\.(ts|mts|mjs|js|cjs|json|md|cc|h|cu|cuh|inc|py|sh|txt)$/;

/** The ids the spec's headings define: "## 3.1 Forward", "#### E19. ISTA", "## Appendix A. Golden". */
function headingIds(markdown: string): Set<string> {
  const ids = new Set<string>();
  for (const m of markdown.matchAll(/^#{1,6}[ \t]+(Appendix[ \t]+[A-Z]|[EP]\d+|\d+(?:\.\d+)*)(?=[.: \t]|$)/gm)) ids.add(m[1].replace(/\s+/g, ' '));
  return ids;
}

const ID = String.raw`(?:Appendix\s+[A-Z]\b|[EP]\d+\b|\d+(?:\.\d+)*(?![\d.]*\d))`;
const SEP = String.raw`(?:\s*(?:,|/|-|–|—|\band\b)\s*)`;
const CITATION = new RegExp(String.raw`\bspec(?:'s)?\b\s*\(?\s*(?:(?:sections?|tables?|appendix|equations?|eqs?\.?|§)\s*)?(${ID}(?:${SEP}${ID})*)`, 'gi');

/** The ids one citation list names: "E16-E19" gives E16, E17, E18, E19; "7.3-7.5" gives 7.3 and 7.5. */
function expand(list: string): string[] {
  const out: string[] = [];
  const parts = list.split(/\s*(,|\/|\band\b)\s*/).filter((p) => p && !/^(,|\/|and)$/.test(p));
  for (const part of parts) {
    const r = /^(.+?)\s*[-–—]\s*(.+)$/.exec(part);
    if (!r) {
      out.push(part.trim());
      continue;
    }
    const [a, b] = [r[1].trim(), r[2].trim()];
    const ea = /^([EP])(\d+)$/.exec(a),
      eb = /^([EP])(\d+)$/.exec(b);
    if (ea && eb && ea[1] === eb[1]) for (let i = Number(ea[2]); i <= Number(eb[2]); i++) out.push(`${ea[1]}${i}`);
    else out.push(a, b);
  }
  return out.map((s) => s.replace(/^appendix\s+/i, 'Appendix ').replace(/\s+/g, ' '));
}

/** Every citation in a text: [line number, the cited id, the citation as written]. */
function citations(text: string): { line: number; id: string; written: string }[] {
  const found: { line: number; id: string; written: string }[] = [];
  for (const m of text.matchAll(CITATION)) {
    const line = text.slice(0, m.index).split('\n').length;
    for (const id of expand(m[1])) found.push({ line, id, written: m[0].replace(/\s+/g, ' ') });
  }
  return found;
}

function files(p: string): string[] {
  const abs = path.join(root, p);
  if (!fs.existsSync(abs)) return [];
  if (fs.statSync(abs).isFile()) return [abs];
  return fs.readdirSync(abs, { withFileTypes: true }).flatMap((e) => {
    if (e.isDirectory()) return ['node_modules', 'build', 'dist'].includes(e.name) ? [] : files(path.join(p, e.name));
    return TEXT.test(e.name) ? [path.join(abs, e.name)] : [];
  });
}

describe('spec citations', () => {
  const ids = headingIds(fs.readFileSync(SPEC, 'utf8'));

  it('docs/spec.md has a heading for every numbered section, equation and property', () => {
    for (let i = 1; i <= 22; i++) expect(ids.has(`E${i}`), `E${i}`).toBe(true);
    for (let i = 1; i <= 23; i++) expect(ids.has(`P${i}`), `P${i}`).toBe(true);
    const sections = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'Appendix A'];
    sections.push('2.1', '2.2', '2.3', '2.4', '2.5', '2.6', '3.1', '3.2', '3.3', '4.1', '4.2', '4.3', '5.1', '5.2');
    sections.push('6.1', '6.2', '6.3', '6.4', '7.1', '7.2', '7.3', '7.4', '7.5', '7.6', '7.7', '7.8');
    for (let i = 1; i <= 5; i++) sections.push(`7.8.${i}`);
    for (let i = 1; i <= 10; i++) sections.push(`2.6.${i}`);
    for (let i = 1; i <= 11; i++) sections.push(`9.${i}`);
    const missing = sections.filter((s) => !ids.has(s));
    expect(missing).toEqual([]);
  });

  it('every citation in src/, native/, test/, scripts/ and README.md resolves to a heading of docs/spec.md', () => {
    const all = SCANNED.flatMap(files);
    expect(all.length).toBeGreaterThan(100);
    let n = 0;
    const bad: string[] = [];
    for (const f of all) {
      for (const c of citations(fs.readFileSync(f, 'utf8'))) {
        n++;
        if (!ids.has(c.id)) bad.push(`${path.relative(root, f)}:${c.line}: '${c.written}' cites ${c.id}, which docs/spec.md has no heading for`);
      }
    }
    expect(n).toBeGreaterThan(140);
    expect(bad, bad.join('\n')).toEqual([]);
  });

  it('the scanner reads the citation forms the code uses, and nothing else', () => {
    const text = [
      '// spec E19 and (spec E17, E19, E14); spec E16-E18; (spec E17/E19)',
      '// spec 7.8.2-7.8.4. spec sections 2.1–2.3, 2.5; Spec table 5.2, recomputed; spec 4.3.',
      "// the spec's Appendix A model; spec section 4 (P1); spec 2.6 items 2–3",
      'const spec: ParamSpec = x; m.spec(name); Top-k (spec: 50); spec 3.2 for CRATE, 3.3 for GPT',
    ].join('\n');
    expect(citations(text).map((c) => `${c.line}:${c.id}`)).toEqual([
      '1:E19',
      '1:E17',
      '1:E19',
      '1:E14',
      '1:E16',
      '1:E17',
      '1:E18',
      '1:E17',
      '1:E19',
      '2:7.8.2',
      '2:7.8.4',
      '2:2.1',
      '2:2.3',
      '2:2.5',
      '2:5.2',
      '2:4.3',
      '3:Appendix A',
      '3:4',
      '3:2.6',
      '4:3.2',
    ]);
    const h = headingIds('# Title\n## 3.1 Forward\n#### E19. ISTA\n### 7.8.1 Lookup\n## Appendix A. Golden\nE20 in text\n### 12ab no\n');
    expect([...h].sort()).toEqual(['3.1', '7.8.1', 'Appendix A', 'E19']);
  });
});
