// What an installed package needs: docs/FIXTURES.md ships and is what the fixture help and the
// README cite (DESIGN.md is not in the repository or the package); cmake-js is installed with the
// package, so `npm run build:cuda --prefix node_modules/crate-ts` works in a consumer project
// (checked by hand there: it finds cmake-js and nvcc and starts compiling, see the README).
import { describe, it, expect } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';

const ROOT = path.resolve(__dirname, '..');
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  files: string[];
  scripts: Record<string, string>;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
};

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...tsFiles(p));
    else if (/\.(ts|mjs|py|md)$/.test(e.name)) out.push(p);
  }
  return out;
}

describe('packaging', () => {
  it('cmake-js comes with the package (optional), so the CUDA build runs from an installed copy', () => {
    expect(pkg.optionalDependencies?.['cmake-js'] ?? pkg.dependencies?.['cmake-js']).toBeDefined();
    expect(pkg.devDependencies?.['cmake-js']).toBeUndefined();
    expect(pkg.scripts['build:cuda']).toMatch(/^cmake-js compile /);
    for (const f of ['CMakeLists.txt', 'native', 'docs', 'scripts']) expect(pkg.files).toContain(f);
  });

  it('the package holds docs/FIXTURES.md, CMakeLists.txt and the build scripts', () => {
    const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const files = (JSON.parse(out) as { files: { path: string }[] }[])[0].files.map((f) => f.path);
    for (const f of ['docs/FIXTURES.md', 'CMakeLists.txt', 'scripts/build-native.mjs', 'binding.gyp', 'native/binding.cc']) expect(files, f).toContain(f);
  }, 120_000);

  it('nothing that ships cites DESIGN.md (not shipped); the fixture help cites docs/FIXTURES.md', async () => {
    const citing = [...tsFiles(path.join(ROOT, 'src')), ...tsFiles(path.join(ROOT, 'scripts')), path.join(ROOT, 'README.md')]
      .filter((f) => fs.readFileSync(f, 'utf8').includes('DESIGN.md'))
      .map((f) => path.relative(ROOT, f));
    expect(citing).toEqual([]);
    const fixtureCli = fs.readFileSync(path.join(ROOT, 'src', 'cli', 'fixture.ts'), 'utf8');
    expect(fixtureCli).toContain('docs/FIXTURES.md');
    const doc = fs.readFileSync(path.join(ROOT, 'docs', 'FIXTURES.md'), 'utf8');
    for (const key of [
      'idx',
      'targets',
      'logits',
      'loss',
      'grad.<parameter name>',
      'vocab_size',
      'block_size',
      'n_layer',
      'n_head',
      'n_embd',
      'overcomplete',
      'eta',
      'lam',
      'ln_eps',
    ])
      expect(doc, key).toContain(key);
  });
});
