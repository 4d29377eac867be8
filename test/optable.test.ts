// The operator table (native/ops.json) is the one source of the operator list: the generated files
// must match it, the generator must refuse rows it cannot honour, and every backend must implement
// every row (the reference backend by hand, the native ones from the table itself).
import { describe, test, expect } from 'vitest';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { render } from '../scripts/gen-ops.mjs';
import { OPERATORS, TOLERANCES, callArgs, opByMethod, type OpSpec } from '../src/backend/op-table.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import { tryLoadAddon } from '../src/backend/loader.js';
import { CpuBackend } from '../src/backend/cpu.js';

describe('operator table', () => {
  test('the generated files are up to date with native/ops.json and native/tolerances.json (npm run gen:ops)', () => {
    const files = render();
    expect(Object.keys(files).sort()).toEqual([
      'native/generated/ops_decl.inc',
      'native/generated/ops_invoke.inc',
      'native/generated/ops_table.h',
      'src/backend/ops.generated.ts',
    ]);
    for (const [rel, text] of Object.entries(files)) {
      expect(readFileSync(rel, 'utf8') === text, `${rel} is stale: run npm run gen:ops`).toBe(true);
    }
  });

  test('every row names a tolerance family, and the runtime table matches the JSON row for row', () => {
    const json = JSON.parse(readFileSync('native/ops.json', 'utf8')) as { ops: { name: string; method: string; args: string[] }[] };
    expect(OPERATORS.map((o) => o.name)).toEqual(json.ops.map((o) => o.name));
    for (const op of OPERATORS as readonly OpSpec[]) {
      expect(Object.keys(TOLERANCES.operators)).toContain(op.family);
      expect(op.args.map((a) => a.name)).toEqual(json.ops.find((o) => o.name === op.name)!.args.map((a) => a.split(':')[0]));
      expect(opByMethod(op.method)).toBe(op);
    }
    // the kinds the generic wrappers rely on
    const lf = opByMethod('linearForward')!;
    expect(callArgs(lf).map((a) => `${a.name}:${a.kind}${'nullable' in a && a.nullable ? '?' : ''}`)).toEqual([
      'out:out',
      'inp:in',
      'weight:in',
      'bias:in?',
      'N:int',
      'C:int',
      'OC:int',
    ]);
    expect(callArgs(opByMethod('add')!).map((a) => a.name)).toEqual(['out', 'a', 'b']); // n is derived, not passed
  });

  test('the reference backend implements every operator and helper of the table', () => {
    const ref = new ReferenceBackend() as unknown as Record<string, unknown>;
    for (const op of OPERATORS) expect(typeof ref[op.method], op.method).toBe('function');
  });

  const { addon, reason } = tryLoadAddon();
  test.skipIf(!addon)(`the addon exports every row of the table, and the cpu backend has every row's method${addon ? '' : ` (skipped: ${reason})`}`, () => {
    const a = addon as unknown as Record<string, unknown>;
    const cpu = new CpuBackend() as unknown as Record<string, unknown>;
    for (const op of OPERATORS) {
      expect(typeof a[op.name], op.name).toBe('function');
      expect(typeof cpu[op.method], op.method).toBe('function');
    }
  });

  test('the generator refuses rows it cannot honour, naming the row and the problem', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'crate-optable-'));
    try {
      mkdirSync(path.join(dir, 'native'));
      writeFileSync(path.join(dir, 'native', 'tolerances.json'), readFileSync('native/tolerances.json'));
      const row = (args: string[], extra: Record<string, unknown> = {}) => ({
        name: 'op_x',
        method: 'opX',
        group: 'operator',
        family: 'linear',
        direction: 'forward',
        doc: ['x'],
        args,
        ...extra,
      });
      const attempt = (r: object) => {
        writeFileSync(path.join(dir, 'native', 'ops.json'), JSON.stringify({ ops: [r] }));
        return () => render(dir);
      };
      expect(attempt(row(['out: out[N*C]', 'N: int>=0', 'C: int>=1']))).not.toThrow();
      expect(attempt(row(['out: out[N*M*C]', 'C: int>=1']))).toThrow(/op_x: out: more than one unknown size in 'N\*M\*C'/);
      expect(attempt(row(['out: out?[n]', 'n: derived']))).toThrow(/op_x: out: a nullable buffer cannot define the size 'n'/);
      expect(attempt(row(['out: out[N]', 'k: derived', 'N: int>=0']))).toThrow(/'k' is declared derived but no buffer defines it/);
      expect(attempt(row(['out: out[N]', 'N: int'], { checks: ['heads(N, H)'] }))).toThrow(/heads\(N, H\): unknown size 'H'/);
      expect(attempt(row(['out: blob[N]']))).toThrow(/cannot read the argument 'out: blob\[N\]'/);
      expect(attempt(row(['out: out[N]', 'N: int'], { family: 'nosuch' }))).toThrow(/no tolerance for the family 'nosuch'/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
