// verify's table says per row which direction passes; bench prints a header row and its --json says
// where a number was measured (machine, CPU flags, threads, git commit, date).
import { describe, it, expect, beforeAll } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { runChecks, type ChecksSummary } from '../src/verify/properties.js';
import { formatChecksTable, checksJson, passIf } from '../src/verify/report.js';
import { cpuFlags, gitCommit } from '../src/bench/bench.js';
import { capture } from './helpers/capture.js';

const cmp = (op: string, a: number, b: number): boolean => (op === '≤' ? a <= b : op === '<' ? a < b : op === '>' ? a > b : op === '≥' ? a >= b : a === b);

describe('verify: "pass if"', () => {
  let full: ChecksSummary;
  beforeAll(() => {
    full = runChecks({ seed: 0 });
  });

  it('every property states its direction, and every passing row satisfies it', () => {
    for (const c of full.checks) {
      const op = passIf(c.measure);
      expect(op, `${c.id}: ${c.measure}`).not.toBeNull();
      // the stated comparison is necessary for a pass (some checks add conditions of their own)
      if (c.pass) expect(cmp(op!, c.worst, c.tolerance), `${c.id}: ${c.worst} ${op} ${c.tolerance}`).toBe(true);
    }
    // the rows a reader could not tell apart: errors held below a tolerance, a decrease below 0, a cosine above 0
    const by = (id: string) => passIf(full.checks.find((c) => c.id === id)!.measure);
    expect([by('P1'), by('P7'), by('P8'), by('P9'), by('P15')]).toEqual(['≤', '<', '>', '<', '=']);
  });

  it('the table has the column, so P8 (worst 0.685 > tol 0) and P7 (worst < 0) read as passes', () => {
    const t = formatChecksTable(full);
    const head = t.split('\n')[0];
    expect(head).toMatch(/^id\s+statement\s+inst\s+worst\s+pass if\s+tol\s+pass$/);
    const row = (id: string) => t.split('\n').find((l) => l.startsWith(id + ' '))!;
    expect(row('P8')).toMatch(/ > tol +0 +PASS$/);
    expect(row('P7')).toMatch(/ -[0-9.e-]+ +< tol +0 +PASS$/);
    expect(row('P1')).toMatch(/ ≤ tol +1\.00e-10 +PASS$/);
    expect(t).toMatch(/^pass if: how the worst value over the instances is held to the tolerance/m);
    const j = checksJson(full).checks;
    expect(j.find((c) => c.id === 'P8')!.passIf).toBe('>');
  });
});

describe('bench: header row and a traceable --json', () => {
  it('cpuFlags reads the vector extensions from /proc/cpuinfo text', () => {
    expect(cpuFlags('processor : 0\nflags : fpu sse4_2 avx avx2 fma avx512f avx512bw\n')).toEqual(['sse4_2', 'avx', 'avx2', 'fma', 'avx512f', 'avx512bw']);
    expect(cpuFlags('Features : fp asimd evtstrm\n')).toEqual(['asimd']);
    expect(cpuFlags('')).toEqual([]);
  });

  it("gitCommit is the checkout's HEAD (read without running git)", () => {
    const root = path.resolve(__dirname, '..');
    let head: string | null = null;
    try {
      head = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
    } catch {
      /* not a checkout */
    }
    expect(gitCommit(root)).toBe(head);
    expect(gitCommit(path.join(root, 'test'))).toBeNull();
  });

  it('text mode: machine and commit lines, then a header row over the numbers', async () => {
    const r = await capture(['bench', '--backend', 'reference', '--config', 'C-char', '--batch', '1', '--seq', '8', '--steps', '1', '--warmup', '0']);
    expect(r.code, r.err).toBe(0);
    const lines = r.out.trimEnd().split('\n');
    expect(lines[1]).toMatch(/^machine: .+, \d+ cores, flags /);
    const header = lines.findIndex((l) => /^config\s+backend\s+threads\s+batch×seq\s+ms\/step\s+tokens\/s\s+GFLOP\/s\s+MFU\s+FLOP per step$/.test(l));
    expect(header).toBeGreaterThan(0);
    expect(lines[header + 1]).toMatch(/^C-char\s+reference\s+-\s+1×8\s+\d+\.\d\d\s+\d+\s+\d+\.\d\s+-\s+3·\[2Vd \+ L\(36d² \+ 4Td\)\]·B·T$/);
  });

  it('--json: environment (date, version, commit, cpu, flags, cores) and rows with batch, seq, threads', async () => {
    const r = await capture(['bench', '--backend', 'reference', '--config', 'C-char', '--batch', '2', '--seq', '4', '--steps', '2', '--warmup', '0', '--json']);
    expect(r.code, r.err).toBe(0);
    const j = JSON.parse(r.out) as { environment: Record<string, unknown> & { machine: Record<string, unknown> }; rows: Record<string, unknown>[] };
    expect(Date.now() - Date.parse(j.environment.date as string)).toBeLessThan(600_000);
    expect(j.environment.crate_ts).toBe(JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')).version);
    expect(j.environment.git_commit).toBe(gitCommit());
    expect(j.environment.machine.cpu).toEqual(expect.any(String));
    expect(j.environment.machine.cpu_flags).toEqual(cpuFlags());
    expect(j.environment.machine.cores).toBeGreaterThan(0);
    expect(j.rows).toHaveLength(1);
    expect(j.rows[0]).toMatchObject({ config: 'C-char', backend: 'reference', batch: 2, seq: 4 });
    expect((j.rows[0].samples as number[]).length).toBe(2);
  });

  it('unknown configs are usage errors with a suggestion', async () => {
    const r = await capture(['bench', '--config', 'C-chr']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^crate-ts bench: --config: unknown config 'C-chr' \(did you mean 'C-char'\?\); known: /);
  });
});
