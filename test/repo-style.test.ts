// One style for the repository: prettier (TypeScript, scripts) and clang-format (native/) wrap at
// the same line width, and CI runs both checks (npm run lint, npm run format:native:check in .ci/run).
import { describe, it, expect } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..');

describe('repository style', () => {
  it('prettier printWidth equals clang-format ColumnLimit', () => {
    const prettier = JSON.parse(fs.readFileSync(path.join(root, '.prettierrc.json'), 'utf8')) as { printWidth?: number };
    const m = /^ColumnLimit:\s*(\d+)\s*$/m.exec(fs.readFileSync(path.join(root, '.clang-format'), 'utf8'));
    expect(m, '.clang-format has no ColumnLimit').not.toBeNull();
    expect(prettier.printWidth).toBeGreaterThan(0);
    expect(Number(m![1])).toBe(prettier.printWidth);
  });

  it('CI runs the native format check next to lint', () => {
    const ci = fs.readFileSync(path.join(root, '.ci', 'run'), 'utf8');
    expect(ci).toMatch(/npm run --silent lint/);
    expect(ci).toMatch(/npm run --silent format:native:check/);
  });
});
