// The cross-backend audit: forward intermediates and parameter gradients of each backend against
// the float64 reference, and the first operator where a NaN/Inf appears.
import { describe, test, expect } from 'vitest';
import { auditBackends, formatAudit } from '../src/audit/crossbackend.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import { LanguageModel } from '../src/model/lm.js';
import { makeConfig } from '../src/model/config.js';
import { Rng } from '../src/util/rng.js';
import { nativeBackends } from './helpers/backends.js';

const cfg = makeConfig(undefined, { vocabSize: 40, blockSize: 8, nLayer: 2, nHead: 2, nEmbd: 12 });
const params = new LanguageModel(new ReferenceBackend(), cfg, { seed: 3 }).getParams();
const rng = new Rng(4),
  B = 2,
  T = 7;
const idx = Int32Array.from({ length: B * T }, () => rng.int(40)),
  targets = Int32Array.from({ length: B * T }, () => rng.int(40));
const natives = await nativeBackends();

describe('cross-backend audit', () => {
  test('reference against itself: every operator and gradient listed, zero error', () => {
    const [a] = auditBackends(cfg, params, idx, targets, B, T, [new ReferenceBackend()]);
    expect(a.pass).toBe(true);
    expect(a.firstNonFinite).toBeNull();
    const fwd = a.rows.filter((r) => r.direction === 'forward').map((r) => r.name);
    const block = (l: number) =>
      [
        'hook_resid_pre',
        'ln1.hook_normalized',
        'attn.hook_qkv',
        'attn.hook_z',
        'hook_resid_mid',
        'ln2.hook_normalized',
        'ista.hook_code1',
        'ista.hook_code',
        'hook_resid_post',
      ].map((n) => `blocks.${l}.${n}`);
    expect(fwd).toEqual([...block(0), ...block(1), 'ln_final.hook_normalized', 'unembed.hook_out', 'loss']);
    expect(a.rows.filter((r) => r.direction === 'backward').length).toBe(2 + 2 * 8 + 2);
    expect(Math.max(...a.rows.map((r) => r.maxAbsErr))).toBe(0);
    expect(formatAudit(a)).toContain('blocks.1.ista.hook_code');
  });

  for (const n of natives) {
    const t = n.backend ? test : test.skip;
    t(`${n.name}: agrees with the reference within the float32 tolerance, and names the first operator that overflows`, () => {
      const [a] = auditBackends(cfg, params, idx, targets, B, T, [n.backend!]);
      expect(a.rows.filter((r) => !r.pass).map((r) => `${r.name} ${r.maxRelErr}`)).toEqual([]);
      // ULP errors are reported and small for the forward
      expect(a.rows.find((r) => r.name === 'unembed.hook_out')!.maxUlpF32).toBeLessThan(1e4);
      // weights of 1e25 in layer 1's ISTA dictionary: finite in float32, but their products overflow it
      const big = Float64Array.from(params);
      const m = new LanguageModel(new ReferenceBackend(), cfg, { params });
      const s = m.spec('transformer.h.1.ista.weight');
      for (let i = 0; i < s.size; i++) big[s.offset + i] *= 1e25;
      const [b] = auditBackends(cfg, big, idx, targets, B, T, [n.backend!]);
      expect(b.firstNonFinite).toMatch(/^blocks\.1\.(ista\.|hook_ista)/);
      expect(b.pass).toBe(false);
    });
  }
});
