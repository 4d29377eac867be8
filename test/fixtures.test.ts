// The PyTorch-made fixtures (fixtures/, made by scripts/make_fixture.py) reproduced by the float64
// reference to 1e-10 relative, and the audit's failure path on a fixture with a perturbed gradient.
import { describe, test, expect } from 'vitest';
import { readdirSync, readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadFixture, auditFixture, writeFixture } from '../src/audit/fixture.js';
import { FIXTURE_TOLERANCE } from '../src/audit/tolerances.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import { parseSafetensors, serializeSafetensors, toFloat64, type TensorInput } from '../src/io/safetensors.js';
import { compareTensors } from '../src/audit/compare.js';
import { loadStateDict } from '../src/checkpoint/statedict.js';
import { saveCheckpoint, loadCheckpoint, modelFromCheckpoint } from '../src/checkpoint/checkpoint.js';
import { LanguageModel } from '../src/model/lm.js';
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

  test('η 0.3 ≠ λ 0.05 (crate-eta-lam, made by PyTorch): read as such, reproduced, told apart from the swap, and kept bitwise by a checkpoint', () => {
    const fx = loadFixture('fixtures/crate-eta-lam.safetensors');
    expect([fx.config.eta, fx.config.lam]).toEqual([0.3, 0.05]);
    expect(auditFixture(fx, be, FIXTURE_TOLERANCE.reference).pass).toBe(true);
    // the same weights with η and λ exchanged miss the PyTorch logits by far more than the tolerance
    const swapped = auditFixture({ ...fx, config: { ...fx.config, eta: fx.config.lam, lam: fx.config.eta } }, be, FIXTURE_TOLERANCE.reference);
    const logitsRow = swapped.rows.find((r) => r.name === 'logits')!;
    expect(logitsRow.pass).toBe(false);
    expect(logitsRow.maxRelErr).toBeGreaterThan(1e-4);
    // a checkpoint of the fixture's model loads back with η, λ and the PyTorch logits
    const m = new LanguageModel(be, fx.config);
    loadStateDict(m as LanguageModel<unknown>, fx.tensors, { allowExtra: (n) => !n.startsWith('transformer.'), source: fx.path });
    const file = join(mkdtempSync(join(tmpdir(), 'crate-fx-')), 'eta-lam.safetensors');
    saveCheckpoint(file, { model: m as LanguageModel<unknown>, tokenizer: 'byte' });
    const ck = loadCheckpoint(file);
    expect([ck.config.eta, ck.config.lam]).toEqual([0.3, 0.05]);
    const m2 = modelFromCheckpoint(ck, be);
    const a = m.forward(fx.idx, fx.B, fx.T, null, { grad: false }).logits as Float64Array,
      b = m2.forward(fx.idx, fx.B, fx.T, null, { grad: false }).logits as Float64Array;
    expect(Buffer.from(b.buffer, b.byteOffset, b.byteLength).equals(Buffer.from(a.buffer, a.byteOffset, a.byteLength))).toBe(true);
    expect(compareTensors('logits', b, toFloat64(fx.tensors.get('logits')!, 'logits'), FIXTURE_TOLERANCE.reference).pass).toBe(true);
    m.free();
    m2.free();
  });

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
