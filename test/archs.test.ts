// The architecture registry (src/model/archs.ts): the package registers exactly its three
// architectures; nothing in src/model/ outside the blocks and the registry branches on an
// architecture's name; the parameter table, the parameter count and the hook names are folds over
// what the blocks declare, so a fourth architecture (the toy of test/helpers/mlp-only.ts) is one new
// file plus one registration line.
import { describe, test, expect } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { archNames, architecture, architectures, registerArchitecture, BUILTIN_ARCHS } from '../src/model/archs.js';
import { configParameterCount, makeConfig, type Arch } from '../src/model/config.js';
import { paramTable, totalSize } from '../src/model/params.js';
import { hookPoints, hookTable, neuronHook } from '../src/model/hooks.js';
import { LanguageModel } from '../src/model/lm.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import { detectArch, normalizeStateDict, stateDictFromModel } from '../src/checkpoint/statedict.js';
import { estimateTrainingMemory } from '../src/train/memory.js';
import { UsageError } from '../src/errors.js';

const MODEL = path.resolve(__dirname, '..', 'src', 'model');

/** The .ts files of src/model/ outside blocks/ and the registry, with comments blanked out. */
function modelFilesOutsideBlocks(): { file: string; text: string }[] {
  return readdirSync(MODEL)
    .filter((f) => f.endsWith('.ts') && f !== 'archs.ts')
    .map((f) => ({
      file: f,
      text: readFileSync(path.join(MODEL, f), 'utf8')
        .replace(/\/\*[\s\S]*?\*\//g, '')
        .replace(/\/\/.*$/gm, ''),
    }));
}

/** Places that decide by an architecture's name: `arch === x`, `x !== c.arch`, `=== 'gpt2'`, `case 'crate':`. */
function archBranches(text: string): string[] {
  const names = BUILTIN_ARCHS.map((n) => n.replace(/-/g, '\\-')).join('|'),
    q = '[\'"`]';
  const re = new RegExp(
    `\\barch\\s*[!=]==|[!=]==\\s*[\\w.]*\\.arch\\b|[!=]==\\s*${q}(${names})${q}|${q}(${names})${q}\\s*[!=]==|case\\s*${q}(${names})${q}`,
    'g',
  );
  return [...text.matchAll(re)].map((m) => m[0]);
}

// Before the toy below registers itself (a describe's body runs when the file is collected).
const REGISTERED_AT_START = archNames();
const UNKNOWN_ARCH_ERROR = (() => {
  try {
    makeConfig(undefined, { arch: 'rnn' as Arch });
  } catch (e) {
    return e;
  }
})();

describe('architecture registry', () => {
  test('the package registers exactly crate, crate-complete and gpt2; an unknown name is a usage error that lists them', () => {
    expect(REGISTERED_AT_START).toEqual(['crate', 'crate-complete', 'gpt2']);
    expect(BUILTIN_ARCHS).toEqual(['crate', 'crate-complete', 'gpt2']);
    expect(UNKNOWN_ARCH_ERROR).toBeInstanceOf(UsageError);
    expect((UNKNOWN_ARCH_ERROR as Error).message).toBe('config.arch must be crate, crate-complete or gpt2, got "rnn"');
    expect(() => architecture('rnn')).toThrow(UsageError);
    expect(() => registerArchitecture(architecture('gpt2'))).toThrow(/'gpt2' is already registered/);
  });

  test('no file of src/model/ outside blocks/ and the registry branches on an architecture name', () => {
    const files = modelFilesOutsideBlocks();
    expect(files.map((f) => f.file)).toEqual(expect.arrayContaining(['lm.ts', 'params.ts', 'hooks.ts', 'config.ts', 'decoder.ts']));
    const found = files.flatMap((f) => archBranches(f.text).map((m) => `${f.file}: ${m}`));
    expect(found, found.join('\n')).toEqual([]);
    // the scanner sees what it must
    expect(
      archBranches(
        `if (c.arch === 'gpt2') x(); const y = cfg.arch !== z; if (k === config.arch) w(); a = b === 'crate-complete'; switch (n) { case 'crate': }`,
      ),
    ).toEqual(['arch ===', 'arch !==', '=== config.arch', "=== 'crate-complete'", "case 'crate'"]);
    expect(archBranches(`const DEFAULTS = { arch: 'crate' };`)).toEqual([]);
  });

  test('the parameter table is the blocks’ declarations under transformer.h.{l}., between the embeddings and ln_f', () => {
    for (const a of architectures()) {
      const c = makeConfig('golden', { arch: a.name as Arch, nLayer: 3 });
      const names = paramTable(c).map((p) => p.name);
      const blocks = [0, 1, 2].flatMap((l) => a.block(l, c).params.map((p) => `transformer.h.${l}.${p.name}`));
      expect(names).toEqual([
        'transformer.wte.weight',
        'transformer.wpe.weight',
        ...blocks,
        'transformer.ln_f.weight',
        ...(a.bias ? ['transformer.ln_f.bias'] : []),
      ]);
    }
  });
});

describe('a fourth architecture registered by a test (test/helpers/mlp-only.ts)', async () => {
  const { ARCHS_UNDER_TEST } = await import('./helpers/archs.js');
  const toy = 'mlp-only' as Arch;

  test('it is registered after the built-in ones, and configs, hook names and the hook table know it', () => {
    expect(ARCHS_UNDER_TEST).toEqual(['crate', 'crate-complete', 'gpt2', 'mlp-only']);
    const c = makeConfig('golden', { arch: toy });
    expect(neuronHook(c, 1)).toBe('blocks.1.mlp.hook_post');
    expect(hookPoints(c, 2, 3).find((p) => p.name === 'blocks.0.mlp.hook_post')!.shape).toEqual([2, 3, c.overcomplete * c.nEmbd]);
    const rows = hookTable();
    expect(rows.filter((r) => r.archs === 'mlp-only').map((r) => r.name)).toEqual([
      'blocks.{l}.ln.hook_normalized',
      'blocks.{l}.mlp.hook_pre',
      'blocks.{l}.mlp.hook_post',
      'blocks.{l}.hook_mlp_out',
    ]);
    // attention hooks are no longer every architecture's
    expect(rows.find((r) => r.name === 'blocks.{l}.attn.hook_z')!.archs).toBe('crate, crate-complete, gpt2');
    expect(rows.find((r) => r.name === 'blocks.{l}.hook_resid_post')!.archs).toBe('all');
  });

  test('configParameterCount equals the parameter table for every registered architecture and size', () => {
    fc.assert(
      fc.property(
        fc.constantFrom<Arch>(...ARCHS_UNDER_TEST),
        fc.integer({ min: 1, max: 300 }),
        fc.integer({ min: 1, max: 64 }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 5 }),
        (arch, V, T, L, H, p, oc) => {
          const c = makeConfig(undefined, { arch, vocabSize: V, blockSize: T, nLayer: L, nHead: H, nEmbd: H * p, overcomplete: oc });
          expect(configParameterCount(c)).toBe(totalSize(paramTable(c)));
        },
      ),
      { numRuns: 200 },
    );
  });

  test('its state_dict names it, and the memory estimate counts what its block keeps', () => {
    const be = new ReferenceBackend();
    const m = new LanguageModel(be, makeConfig('golden', { arch: toy }), { seed: 1 }) as LanguageModel<unknown>;
    expect(detectArch(normalizeStateDict(stateDictFromModel(m, 'F64')).params)).toEqual({
      arch: 'mlp-only',
      evidence: 'transformer.h.0.mlp.fc_in.weight',
    });
    const B = 2,
      T = 8,
      N = B * T,
      c = m.config,
      d = c.nEmbd,
      h = c.overcomplete * d;
    const est = estimateTrainingMemory(c, B, T, be);
    // per layer: x, ln (N·d each), mean, rstd (N each), pre, post (N·h each); then the model's tail and scratch
    const perLayer = 2 * N * d + 2 * N + 2 * N * h;
    const tail = 2 * N * d + 2 * N + 2 * N * c.vocabSize,
      scratch = 3 * N * d + 2 * N * Math.max(3 * d, h);
    expect(est.activations).toBe((c.nLayer * perLayer + tail + scratch) * 8);
    m.free();
  });
});
