// Library errors speak the library's language: an error built outside src/cli/ names options by
// their library names (`seq`, `exportDir`), written as an OptionMessage (src/errors.ts), and the
// command line spells them as its flags when it prints the message (src/cli/flags.ts). This test
// reads every error constructed in src/ outside src/cli/ and fails on one whose arguments spell a
// command-line flag (--seq).
import { describe, it, expect } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataError, UsageError } from '../src/errors.js';
import { RequestError } from '../src/train/request-error.js';
import { cliMessage, flagOf } from '../src/cli/flags.js';

const ROOT = path.resolve(import.meta.dirname, '..');

/**
 * Files still allowed to name flags in their errors, each with its reason. A file that no longer
 * does must leave the list (the test says so), so that the list only shrinks.
 */
const ALLOWED: Record<string, string> = {
  // HTTP answers (ApiError, not a CrateError) tell the client which of the server's flags sets the
  // limit its request broke: the operator who runs the server reads them as flags
  'src/serve/context.ts': 'serve limits name their --max-* flags',
  'src/serve/routes/tokenizer.ts': 'serve --max-prompt-tokens',
};

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...sourceFiles(p));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** The argument text of the call whose '(' is at `open`: up to the matching ')', strings and templates skipped over. */
function callArguments(src: string, open: number): string {
  let depth = 0;
  const templates: number[] = []; // brace depth at each `${` of an enclosing template literal
  let braces = 0;
  for (let i = open; i < src.length; i++) {
    const c = src[i];
    if (c === '"' || c === "'") {
      for (i++; i < src.length && src[i] !== c; i++) if (src[i] === '\\') i++;
    } else if (c === '`' || (c === '}' && templates.length && templates[templates.length - 1] === braces)) {
      if (c === '}') templates.pop();
      // inside a template literal: to its end, or into a ${ } substitution
      for (i++; i < src.length && src[i] !== '`'; i++) {
        if (src[i] === '\\') i++;
        else if (src[i] === '$' && src[i + 1] === '{') {
          templates.push(braces);
          i++;
          break;
        }
      }
    } else if (c === '{') braces++;
    else if (c === '}') braces--;
    else if (c === '(') depth++;
    else if (c === ')' && --depth === 0) return src.slice(open + 1, i);
  }
  return src.slice(open + 1);
}

/** Every `new SomethingError(...)` in a source text whose arguments spell a flag: [line, flag, text]. */
export function flagsInErrors(src: string): [number, string, string][] {
  const found: [number, string, string][] = [];
  for (const m of src.matchAll(/\bnew\s+([A-Z]\w*Error)\s*\(/g)) {
    const args = callArguments(src, m.index + m[0].length - 1);
    const flag = /(?:^|[\s('"`])(--[a-z][a-z0-9-]*)/.exec(args);
    if (flag) found.push([src.slice(0, m.index).split('\n').length, flag[1], args.replace(/\s+/g, ' ').slice(0, 120)]);
  }
  return found;
}

describe('library errors name options, not flags', () => {
  it('the scanner finds a flag in an error and only there', () => {
    expect(flagsInErrors("throw new UsageError(`--out '${dir}' exists`);").map((f) => f[1])).toEqual(['--out']);
    expect(flagsInErrors("reject(new DataError(\n  'x (' + y + `) use --seq ${f(')')}`));").map((f) => f[1])).toEqual(['--seq']);
    expect(flagsInErrors("throw new UsageError((n) => `${n('out')} '${dir}' exists`, { option: 'out' });")).toEqual([]);
    expect(flagsInErrors("const s = 'pass --seq';\nthrow new Error(s);")).toEqual([]);
  });

  it('no error built in src/ outside src/cli/ spells a --flag (the allow-listed files aside)', () => {
    const offenders: string[] = [];
    const stillNeeded = new Set<string>();
    for (const file of sourceFiles(path.join(ROOT, 'src'))) {
      const rel = path.relative(ROOT, file).split(path.sep).join('/');
      if (rel.startsWith('src/cli/')) continue;
      const found = flagsInErrors(fs.readFileSync(file, 'utf8'));
      if (found.length && rel in ALLOWED) stillNeeded.add(rel);
      else for (const [line, flag, text] of found) offenders.push(`${rel}:${line}: ${flag} in ${text}`);
    }
    expect(offenders).toEqual([]);
    expect(Object.keys(ALLOWED).filter((f) => !stillNeeded.has(f))).toEqual([]);
  });

  it('the command line spells the options of a library message as its flags', () => {
    const e = new UsageError((n) => `port 80 is in use; choose another with ${n('port')}`, { option: 'port' });
    expect(e.message).toBe('port 80 is in use; choose another with port');
    expect(e.option).toBe('port');
    expect(cliMessage(e)).toBe('port 80 is in use; choose another with --port');
    const r = new RequestError('resume', (n) => `is a finished run; ${n('steps')} N extends it`);
    expect(r.message).toBe('resume is a finished run; steps N extends it');
    expect(r.problem).toBe('is a finished run; steps N extends it');
    expect(cliMessage(r)).toBe('--resume is a finished run; --steps N extends it');
    expect(cliMessage(new DataError('no options here'))).toBe('no options here');
    expect([flagOf('gradAccum'), flagOf('simulatorKind'), flagOf('exportDir')]).toEqual(['--grad-accum', '--simulator', '--export']);
  });
});
