// Fixture audits: a fixture (docs/FIXTURES.md) holds a model's parameters, a batch, and the
// logits, loss and every parameter gradient some implementation computed. Auditing runs the same
// forward and backward on a backend here and compares tensor by tensor.
import type { Backend } from '../backend/types.js';
import { LanguageModel } from '../model/lm.js';
import type { ModelConfig } from '../model/config.js';
import { archList, isArch } from '../model/archs.js';
import { readSafetensors, toFloat64, toInt32, writeSafetensors, type TensorInput, type TensorEntry } from '../io/safetensors.js';
import { loadStateDict, configFromMetadata, configToMetadata, stateDictFromModel } from '../checkpoint/statedict.js';
import { compareTensors, type CompareRow, type Tolerance } from './compare.js';

export interface Fixture {
  path: string;
  config: ModelConfig;
  tensors: Map<string, TensorEntry>;
  idx: Int32Array;
  targets: Int32Array;
  B: number;
  T: number;
}

const NON_PARAM = (n: string): boolean => n === 'idx' || n === 'targets' || n === 'logits' || n === 'loss' || n.startsWith('grad.');

export function loadFixture(path: string): Fixture {
  const file = readSafetensors(path);
  // fixtures made by scripts/make_fixture.py carry the architecture as its own metadata entry
  const config = configFromMetadata(file.metadata, path);
  const arch = file.metadata.arch;
  if (arch !== undefined) {
    if (!isArch(arch)) throw new Error(`${path}: metadata 'arch' is '${arch}', expected ${archList()}`);
    config.arch = arch;
  }
  const need = (name: string): TensorEntry => {
    const t = file.tensors.get(name);
    if (!t) throw new Error(`${path}: fixture has no '${name}' tensor`);
    return t;
  };
  const idxT = need('idx');
  if (idxT.shape.length !== 2) throw new Error(`${path}: idx must have shape [B, T], got [${idxT.shape}]`);
  const [B, T] = idxT.shape;
  const tgT = need('targets');
  if (tgT.shape.length !== 2 || tgT.shape[0] !== B || tgT.shape[1] !== T)
    throw new Error(`${path}: targets has shape [${tgT.shape}], expected [${B}, ${T}] like idx`);
  return { path, config, tensors: file.tensors, idx: toInt32(idxT, 'idx'), targets: toInt32(tgT, 'targets'), B, T };
}

export interface AuditResult {
  pass: boolean;
  backend: string;
  fixture: string;
  rows: CompareRow[];
}

/** Run forward + backward of the fixture's batch on `backend` and compare logits, loss and gradients. */
export function auditFixture<Buf>(fx: Fixture, backend: Backend<Buf>, tol: Tolerance): AuditResult {
  const model = new LanguageModel(backend, fx.config);
  try {
    loadStateDict(model as LanguageModel<unknown>, fx.tensors, { allowExtra: NON_PARAM, source: fx.path });
    model.zeroGrad();
    const { logits, loss } = model.forward(fx.idx, fx.B, fx.T, fx.targets);
    model.backward();
    const grads = model.getGrads();
    const rows: CompareRow[] = [];
    const ref = (name: string): Float64Array => {
      const t = fx.tensors.get(name);
      if (!t) throw new Error(`${fx.path}: fixture has no '${name}' tensor`);
      return toFloat64(t, name);
    };
    rows.push(compareTensors('logits', logits as Float64Array, ref('logits'), tol));
    rows.push(compareTensors('loss', [loss as number], ref('loss'), tol));
    for (const p of model.table) {
      rows.push(compareTensors(`grad.${p.name}`, grads.subarray(p.offset, p.offset + p.size), ref(`grad.${p.name}`), tol));
    }
    return { pass: rows.every((r) => r.pass), backend: backend.name, fixture: fx.path, rows };
  } finally {
    model.free();
  }
}

/** Compute a fixture with `backend` (normally the float64 reference) and write it atomically. */
export function writeFixture<Buf>(
  path: string,
  backend: Backend<Buf>,
  config: ModelConfig,
  seed: number,
  B: number,
  T: number,
  rngInts: (n: number, V: number) => Int32Array,
): void {
  const model = new LanguageModel(backend, config, { seed });
  try {
    const idx = rngInts(B * T, config.vocabSize),
      targets = rngInts(B * T, config.vocabSize);
    model.zeroGrad();
    const { logits, loss } = model.forward(idx, B, T, targets);
    model.backward();
    const grads = model.getGrads();
    const tensors: Record<string, TensorInput> = stateDictFromModel(model as LanguageModel<unknown>, 'F64');
    tensors.idx = { dtype: 'I64', shape: [B, T], data: BigInt64Array.from(idx, (x) => BigInt(x)) };
    tensors.targets = { dtype: 'I64', shape: [B, T], data: BigInt64Array.from(targets, (x) => BigInt(x)) };
    tensors.logits = { dtype: 'F64', shape: [B, T, config.vocabSize], data: logits as Float64Array };
    tensors.loss = { dtype: 'F64', shape: [], data: Float64Array.of(loss as number) };
    for (const p of model.table) tensors[`grad.${p.name}`] = { dtype: 'F64', shape: p.shape, data: grads.slice(p.offset, p.offset + p.size) };
    writeSafetensors(path, tensors, { ...configToMetadata(config), generator: `crate-ts fixture (${backend.name} backend)`, seed: String(seed) });
  } finally {
    model.free();
  }
}
