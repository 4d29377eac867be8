// The PyTorch-made fixtures (fixtures/, made by scripts/make_fixture.py) reproduced by the float64
// reference to 1e-10 relative, and the audit's failure path on a fixture with a perturbed gradient.
import { describe, test, expect } from 'vitest';
import { readdirSync, readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadFixture, auditFixture, writeFixture } from '../src/audit/fixture.js';
import { FIXTURE_TOLERANCE } from '../src/audit/tolerances.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import { parseSafetensors, serializeSafetensors, type TensorInput } from '../src/io/safetensors.js';
import { makeConfig } from '../src/model/config.js';
import { Rng } from '../src/util/rng.js';

const FIXTURES = readdirSync('fixtures')
  .filter((f) => f.endsWith('.safetensors'))
  .map((f) => join('fixtures', f));
const be = new ReferenceBackend();

describe('fixtures: reference backend', () => {
  test('there are PyTorch fixtures for CRATE (ordinary, T = 1, large values) and GPT-2', () => {
    expect(FIXTURES.map((f) => f.replace('fixtures/', '')).sort()).toEqual(
      expect.arrayContaining(['crate-small.safetensors', 'crate-t1.safetensors', 'crate-large-values.safetensors', 'gpt2-small.safetensors']),
    );
  });

  for (const f of FIXTURES) {
    test(`reference reproduces ${f} (logits, loss, every gradient) to 1e-10 relative`, () => {
      const fx = loadFixture(f);
      const res = auditFixture(fx, be, FIXTURE_TOLERANCE.reference);
      const bad = res.rows.filter((r) => !r.pass).map((r) => `${r.name}: abs ${r.maxAbsErr} rel ${r.maxRelErr}`);
      expect(bad).toEqual([]);
      expect(res.rows.length).toBe(2 + fx.config.nLayer * (fx.config.arch === 'gpt2' ? 6 : 8) + (fx.config.arch === 'gpt2' ? 3 : 4));
    });
  }

  test('a fixture with one gradient perturbed fails, and the bad tensor is named', () => {
    const bytes = readFileSync('fixtures/crate-small.safetensors');
    const file = parseSafetensors(bytes, 'crate-small');
    const tensors: Record<string, TensorInput> = {};
    for (const [name, t] of file.tensors) tensors[name] = t;
    const g = Float64Array.from(file.tensors.get('grad.transformer.h.1.ista.weight')!.data as Float64Array);
    g[17] += 1e-6 * Math.max(...g.map(Math.abs));
    tensors['grad.transformer.h.1.ista.weight'] = { dtype: 'F64', shape: file.tensors.get('grad.transformer.h.1.ista.weight')!.shape, data: g };
    const dir = mkdtempSync(join(tmpdir(), 'crate-fx-'));
    const path = join(dir, 'perturbed.safetensors');
    writeFileSync(path, serializeSafetensors(tensors, file.metadata));
    const res = auditFixture(loadFixture(path), be, FIXTURE_TOLERANCE.reference);
    expect(res.pass).toBe(false);
    expect(res.rows.filter((r) => !r.pass).map((r) => r.name)).toEqual(['grad.transformer.h.1.ista.weight']);
  });

  test('a fixture written by `crate-ts fixture` round-trips through the audit', () => {
    const dir = mkdtempSync(join(tmpdir(), 'crate-fx-'));
    const path = join(dir, 'ref.safetensors');
    const rng = new Rng(3);
    writeFixture(path, be, makeConfig('golden'), 5, 2, 6, (n, V) => Int32Array.from({ length: n }, () => rng.int(V)));
    const res = auditFixture(loadFixture(path), be, { rtol: 0, atolScale: 0 });
    expect(res.pass).toBe(true); // bitwise: same backend, same order
  });

  test('fixture errors name the problem', () => {
    const dir = mkdtempSync(join(tmpdir(), 'crate-fx-'));
    const file = parseSafetensors(readFileSync('fixtures/crate-t1.safetensors'), 't1');
    const drop = (name: string, meta = file.metadata) => {
      const tensors: Record<string, TensorInput> = {};
      for (const [n, t] of file.tensors) if (n !== name) tensors[n] = t;
      const p = join(dir, `no-${name}.safetensors`);
      writeFileSync(p, serializeSafetensors(tensors, meta));
      return p;
    };
    expect(() => auditFixture(loadFixture(drop('transformer.h.0.ista.weight')), be, FIXTURE_TOLERANCE.reference)).toThrow(
      /missing tensors: transformer\.h\.0\.ista\.weight/,
    );
    expect(() => loadFixture(drop('idx'))).toThrow(/fixture has no 'idx' tensor/);
    expect(() => loadFixture(drop('x', { ...file.metadata, config: '{"vocab_size": 3' }))).toThrow(/"config" is not valid JSON/);
    expect(() => loadFixture(join(dir, 'absent.safetensors'))).toThrow(/absent\.safetensors/);
  });
});
