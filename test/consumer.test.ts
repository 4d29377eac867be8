// The package as a user gets it: `npm pack`, `npm install ./crate-ts-*.tgz` in an empty project, then
// import it from ES modules and require() it from CommonJS, build a model and run a forward pass.
// (The consumer skips the native build, CRATE_TS_SKIP_NATIVE=1, to keep the test fast; the
// reference backend must work without it.)
import { test, expect } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readdirSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { train } from '../src/train/trainer.js';
import { loadCheckpoint, modelFromCheckpoint } from '../src/checkpoint/checkpoint.js';
import { loadTokenizer } from '../src/data/tokenizer.js';
import { ReferenceBackend as RefBackend } from '../src/backend/reference.js';

test("npm pack → npm install in an empty project → import (ESM) and require (CommonJS) work; the README's API and examples/top-neurons.mjs run from it", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'crate-consumer-'));
  try {
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    execFileSync(npm, ['pack', '--silent', '--pack-destination', dir], {
      cwd: resolve('.'),
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, CRATE_TS_SKIP_NATIVE: '1' },
    });
    const tgz = readdirSync(dir).find((f) => f.endsWith('.tgz'))!;
    expect(tgz).toMatch(/^crate-ts-.*\.tgz$/);
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
    execFileSync(npm, ['install', '--no-audit', '--no-fund', '--prefer-offline', `./${tgz}`], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, CRATE_TS_SKIP_NATIVE: '1' },
    });
    const body = `
      const m = new crate.LanguageModel(new crate.ReferenceBackend(), crate.makeConfig('golden'), { seed: 1 });
      const r = m.runWithCache([1, 2, 3], 1, 3, { names: ['blocks.0.hook_neurons'] });
      const tok = await crate.loadTokenizer('byte');
      console.log(JSON.stringify({ logits: r.logits.length, neurons: r.cache.get('blocks.0.hook_neurons').shape, decoded: tok.decode(tok.encode('hi')), usage: new crate.UsageError('x').exitCode, trainer: typeof crate.Trainer, generate: typeof crate.generate }));`;
    writeFileSync(join(dir, 'esm.mjs'), `import * as crate from 'crate-ts';\n${body}`);
    writeFileSync(join(dir, 'cjs.cjs'), `const crate = require('crate-ts');\n(async () => {${body}\n})();`);
    const want = { logits: 3 * 11, neurons: [1, 3, 32], decoded: 'hi', usage: 2, trainer: 'function', generate: 'function' };
    for (const f of ['esm.mjs', 'cjs.cjs']) {
      const r = spawnSync(process.execPath, [f], { cwd: dir, encoding: 'utf8' });
      expect(r.stderr, f).toBe('');
      expect(JSON.parse(r.stdout), f).toEqual(want);
    }
    // the CLI installed as a bin
    const v = spawnSync(process.execPath, [join(dir, 'node_modules', 'crate-ts', 'bin', 'crate-ts.js'), '--version'], { encoding: 'utf8' });
    expect(v.stdout).toMatch(/^crate-ts \d+\.\d+\.\d+/);

    // what the README names is importable from 'crate-ts'
    const names = [
      'steer',
      'sweep',
      'clampHooks',
      'pearson',
      'rSquaredAboutZero',
      'absoluteDevExplained',
      'normalizeActivations',
      'tarSplit',
      'LayerCollector',
      'collect',
      'toDense',
      'view',
      'loadCheckpoint',
      'modelFromCheckpoint',
    ];
    writeFileSync(
      join(dir, 'names.mjs'),
      `import * as crate from 'crate-ts';\nconsole.log(JSON.stringify(${JSON.stringify(names)}.filter((n) => typeof crate[n] !== 'function')));`,
    );
    const missing = spawnSync(process.execPath, ['names.mjs'], { cwd: dir, encoding: 'utf8' });
    expect(JSON.parse(missing.stdout), missing.stderr).toEqual([]);

    // examples/top-neurons.mjs, run against the installed package, from a trained run
    await train({
      preset: 'char-tiny',
      nLayer: 2,
      nEmbd: 16,
      nHead: 2,
      seq: 16,
      batch: 2,
      steps: 3,
      backend: 'reference',
      out: join(dir, 'run'),
      cacheDir: null,
      sampleTokens: 0,
      quiet: true,
    });
    copyFileSync(resolve('examples', 'top-neurons.mjs'), join(dir, 'top-neurons.mjs'));
    const ex = spawnSync(process.execPath, ['top-neurons.mjs', 'run', 'The whale', '3'], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, CRATE_TS_BACKEND: 'reference' },
    });
    expect(ex.stderr).toBe('');
    expect(ex.status).toBe(0);
    // the same numbers from the sources: the last token's neurons of every layer, largest first
    const ck = loadCheckpoint(join(dir, 'run'));
    const model = modelFromCheckpoint(ck, new RefBackend());
    const tok = await loadTokenizer(ck.tokenizer, ck.tokenizerVocab);
    const ids = tok.encode('The whale');
    for (let l = 0; l < 2; l++) {
      const a = model.runWithCache(ids, 1, ids.length, { names: [`blocks.${l}.hook_neurons`] }).cache.get(`blocks.${l}.hook_neurons`);
      const last = Array.from({ length: a.shape[2] }, (_, i) => a.get(0, ids.length - 1, i));
      const top = [...last.keys()].sort((i, j) => last[j] - last[i] || i - j).slice(0, 3);
      expect(ex.stdout).toContain(`layer ${l}: ` + top.map((i) => `neuron ${i} = ${last[i].toFixed(4)}`).join(', '));
    }
    model.free();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 300_000);
