// Spec 4.3: properties of the whole model, P18-P23.
import type { PropertyCheck } from './types.js';
import { layernormForward } from '../../reference/layernorm.js';
import { makeConfig, type Arch } from '../../model/config.js';
import { paramTable, numParams } from '../../model/params.js';
import { ReferenceBackend } from '../../backend/reference.js';
import { goldenModel, GOLDEN } from '../golden.js';
import { randomTinyConfig, randomTinyModel, randomTokens } from '../models.js';
import { fmt, maxAbs, maxAbsDiffArr } from './helpers.js';

// ---- 4.3 whole model -----------------------------------------------------------------------------------------

const ARCHS: Arch[] = ['crate', 'crate-complete', 'gpt2'];

export const P18: PropertyCheck = {
  id: 'P18',
  statement: 'Causality: outputs at t unchanged when tokens after t change',
  measure: 'max |Δ| over logits, block outputs, codes at positions ≤ t = tol = 0 (float64)',
  run(rng) {
    let worst = 0,
      n = 0,
      changedAfter = 0;
    for (let i = 0; i < 9; i++) {
      const cfg = randomTinyConfig(rng, ARCHS[i % 3]);
      const model = randomTinyModel(rng, cfg);
      const B = 2,
        T = 2 + rng.int(cfg.blockSize - 1),
        V = cfg.vocabSize,
        C = cfg.nEmbd;
      const idx = randomTokens(rng, B * T, V),
        t = rng.int(T - 1);
      const idx2 = idx.slice();
      for (let b = 0; b < B; b++) for (let s = t + 1; s < T; s++) idx2[b * T + s] = rng.int(V);
      const grab = (ids: number[]) => {
        const names = Array.from({ length: cfg.nLayer }, (_, l) => [`blocks.${l}.hook_resid_post`, `blocks.${l}.hook_neurons`]).flat();
        const { logits, cache } = model.runWithCache(ids, B, T, { names });
        const layers = Array.from({ length: cfg.nLayer }, (_, l) => ({
          out: cache.get(`blocks.${l}.hook_resid_post`).data,
          code: cache.get(`blocks.${l}.hook_neurons`).data,
        }));
        return { logits: logits as Float64Array, layers };
      };
      const r1 = grab(idx),
        r2 = grab(idx2);
      const cmp = (a: Float64Array, b: Float64Array, width: number): void => {
        for (let bb = 0; bb < B; bb++)
          for (let s = 0; s <= t; s++)
            for (let k = 0; k < width; k++) {
              const j = (bb * T + s) * width + k;
              worst = Math.max(worst, Math.abs(a[j] - b[j]));
            }
      };
      cmp(r1.logits, r2.logits, V);
      r1.layers.forEach((L, l) => {
        cmp(L.out, r2.layers[l].out, C);
        cmp(L.code, r2.layers[l].code, L.code.length / (B * T));
      });
      if (maxAbsDiffArr(r1.logits, r2.logits) > 0) changedAfter++;
      model.free();
      n++;
    }
    return {
      instances: n,
      worst,
      tolerance: 0,
      pass: worst === 0,
      note: `crate / crate-complete / gpt2 configs; later positions did change in ${changedAfter}/${n}`,
    };
  },
};

export const P19: PropertyCheck = {
  id: 'P19',
  statement: 'Adding c_t·1 to token t of a block input: block output unchanged',
  measure: 'max |Δ block-0 output, Δ logits| / max|value| ≤ tol (shift via wpe rows, |c_t| ~ 3)',
  run(rng) {
    let worst = 0,
      n = 0,
      gptChange = 0;
    for (let i = 0; i < 8; i++) {
      const arch: Arch = i % 2 ? 'crate' : 'crate-complete';
      for (const a of [arch, 'gpt2' as Arch]) {
        const cfg = randomTinyConfig(rng, a);
        const model = randomTinyModel(rng, cfg);
        const T = cfg.blockSize,
          C = cfg.nEmbd,
          idx = randomTokens(rng, T, cfg.vocabSize);
        const r1 = model.runWithCache(idx, 1, T, { names: ['blocks.0.hook_resid_post'] });
        const l1 = r1.logits,
          o1 = r1.cache.get('blocks.0.hook_resid_post').data;
        // block 0's input is wte[idx] + wpe[t]: adding c_t to every coordinate of wpe row t shifts token t by c_t·1
        const params = model.getParams(),
          wpe = model.spec('transformer.wpe.weight');
        for (let t = 0; t < T; t++) {
          const c = 3 * rng.normal();
          for (let k = 0; k < C; k++) params[wpe.offset + t * C + k] += c;
        }
        model.setParams(params);
        const r2 = model.runWithCache(idx, 1, T, { names: ['blocks.0.hook_resid_post'] });
        const l2 = r2.logits,
          o2 = r2.cache.get('blocks.0.hook_resid_post').data;
        const err = Math.max(maxAbsDiffArr(o1, o2) / maxAbs(o1), maxAbsDiffArr(l1 as Float64Array, l2 as Float64Array) / maxAbs(l1 as Float64Array));
        if (a === 'gpt2') gptChange = Math.max(gptChange, err);
        else {
          worst = Math.max(worst, err);
          n++;
        }
        model.free();
      }
    }
    return {
      instances: n,
      worst,
      tolerance: 1e-10,
      pass: worst <= 1e-10,
      note: `contrast, GPT-2 blocks (residual after the MLP): relative change up to ${fmt(gptChange)}`,
    };
  },
};

export const P20: PropertyCheck = {
  id: 'P20',
  statement: 'Incremental decoding with a cache of U_kᵀLN(z_j) = full forward',
  measure: 'max |cached − full logits| / max|logits| ≤ tol',
  run(rng) {
    let worst = 0,
      n = 0;
    for (let i = 0; i < 9; i++) {
      const cfg = randomTinyConfig(rng, ARCHS[i % 3]);
      const model = randomTinyModel(rng, cfg);
      const T = 1 + rng.int(cfg.blockSize),
        idx = randomTokens(rng, T, cfg.vocabSize);
      const full = model.forward(idx, 1, T).logits as Float64Array;
      // the model's own decoder (model.createDecoder, what `crate-ts sample` and the server call),
      // one token at a time
      const dec = model.createDecoder(1),
        V = cfg.vocabSize,
        smp = new Float64Array(T * V);
      for (let t = 0; t < T; t++) smp.set(dec.step([idx[t]]).slice(), t * V);
      dec.free();
      const scl = Math.max(1e-300, maxAbs(full));
      worst = Math.max(worst, maxAbsDiffArr(full, smp) / scl);
      model.free();
      n++;
    }
    return {
      instances: n,
      worst,
      tolerance: 1e-12,
      pass: worst <= 1e-12,
      note: 'crate / crate-complete / gpt2 with model.createDecoder on the reference backend',
    };
  },
};

export const P21: PropertyCheck = {
  id: 'P21',
  statement: 'Tied wte gets gradient from both the embedding and the head',
  measure: 'max(rel |∇wte − (head part + embedding part)|, rel FD error) ≤ tol; both parts non-zero',
  run(rng) {
    let worstSplit = 0,
      worstFd = 0,
      n = 0,
      zeroParts = 0;
    for (let i = 0; i < 4; i++) {
      // d = 8, two heads, the paper's ISTA shape: tinier widths make LayerNorm pass almost no gradient
      const cfg = makeConfig(undefined, {
        arch: i % 2 ? 'crate' : 'crate-complete',
        vocabSize: 5 + rng.int(12),
        blockSize: 8,
        nLayer: 1 + rng.int(2),
        nHead: 2,
        nEmbd: 8,
        overcomplete: 4,
        istaSteps: 2,
      });
      const model = randomTinyModel(rng, cfg);
      const T = cfg.blockSize,
        V = cfg.vocabSize,
        C = cfg.nEmbd;
      const idx = randomTokens(rng, T, V),
        targets = randomTokens(rng, T, V);
      model.zeroGrad();
      const lastOut = `blocks.${cfg.nLayer - 1}.hook_resid_post`;
      const { logits, cache } = model.runWithCache(idx, 1, T, { targets, grad: true, names: [lastOut] });
      model.backward();
      const Gw = model.backend.download(model.grad('transformer.wte.weight'));
      const Gp = model.backend.download(model.grad('transformer.wpe.weight'));
      // head part, independently: dL/dW_head = dlogitsᵀ · LN_f(x_L), dlogits = (softmax − onehot)/T
      const xL = cache.get(lastOut).data,
        lnf = new Float64Array(T * C);
      const P = model.getParams(),
        sp = (name: string) => {
          const s = model.spec(name);
          return P.subarray(s.offset, s.offset + s.size);
        };
      layernormForward(lnf, new Float64Array(T), new Float64Array(T), xL, sp('transformer.ln_f.weight'), sp('transformer.ln_f.bias'), T, C, cfg.lnEps);
      const head = new Float64Array(V * C),
        lg = logits as Float64Array;
      for (let t = 0; t < T; t++) {
        let m = -Infinity,
          s = 0;
        for (let v = 0; v < V; v++) m = Math.max(m, lg[t * V + v]);
        for (let v = 0; v < V; v++) s += Math.exp(lg[t * V + v] - m);
        for (let v = 0; v < V; v++) {
          const dl = (Math.exp(lg[t * V + v] - m) / s - (v === targets[t] ? 1 : 0)) / T;
          for (let k = 0; k < C; k++) head[v * C + k] += dl * lnf[t * C + k];
        }
      }
      // embedding part: perturbing wte[v] in the lookup only = perturbing wpe[t] for every t with idx[t] = v (B = 1)
      const emb = new Float64Array(V * C);
      for (let t = 0; t < T; t++) for (let k = 0; k < C; k++) emb[idx[t] * C + k] += Gp[t * C + k];
      const scaleG = maxAbs(Gw);
      for (let j = 0; j < Gw.length; j++) worstSplit = Math.max(worstSplit, Math.abs(Gw[j] - head[j] - emb[j]) / scaleG);
      for (const v of new Set(idx)) {
        const nh = Math.hypot(...head.subarray(v * C, (v + 1) * C)),
          ne = Math.hypot(...emb.subarray(v * C, (v + 1) * C));
        if (!(nh > 1e-12 * scaleG) || !(ne > 1e-12 * scaleG)) zeroParts++;
      }
      // finite differences of the loss in wte (both paths at once). The ISTA ReLUs make the loss
      // piecewise smooth: two step sizes, the better one counts (a kink rarely sits within both).
      const wte = model.spec('transformer.wte.weight');
      const lossAt = (j: number, delta: number): number => {
        const p = P.slice();
        p[wte.offset + j] += delta;
        model.setParams(p);
        return model.forward(idx, 1, T, targets, { grad: false, returnLogits: false }).loss as number;
      };
      for (let r = 0; r < 6; r++) {
        const j = r < 3 ? idx[rng.int(T)] * C + rng.int(C) : rng.int(V * C);
        let best = Infinity;
        for (const h of [1e-5, 1e-6]) {
          const fd = (lossAt(j, h) - lossAt(j, -h)) / (2 * h);
          best = Math.min(best, Math.abs(fd - Gw[j]) / Math.max(Math.abs(fd), 1e-3 * scaleG));
        }
        worstFd = Math.max(worstFd, best);
      }
      model.free();
      n++;
    }
    const worst = Math.max(worstSplit, worstFd);
    return {
      instances: n,
      worst,
      tolerance: 1e-6,
      pass: worst <= 1e-6 && zeroParts === 0,
      note: `split mismatch ${fmt(worstSplit)}, FD rel. error ${fmt(worstFd)}; ${zeroParts} input tokens missing a path`,
    };
  },
};

/** Spec table 5.2, recomputed columns: [preset, CRATE, GPT-2 bias=False]. */
export const PARAM_TABLE: [string, number, number][] = [
  ['1L', 6_538_112, 6_635_904],
  ['2L', 6_637_056, 6_832_768],
  ['3L', 6_736_000, 7_029_632],
  ['S', 59_891_712, 81_110_784],
  ['B', 81_148_416, 123_587_328],
];

export const P22: PropertyCheck = {
  id: 'P22',
  statement: 'Param counts = V·d+L(6d²+5d)+2d, V·d+L(12d²+2d)+d = table 5.2',
  measure: 'max |numParams − formula|, |numParams − table| = tol = 0',
  run() {
    let worst = 0,
      n = 0;
    const rows: string[] = [];
    for (const [preset, crateT, gptT] of PARAM_TABLE) {
      for (const arch of ['crate', 'gpt2'] as Arch[]) {
        const cfg = makeConfig(preset, { arch }),
          V = cfg.vocabSize,
          d = cfg.nEmbd,
          L = cfg.nLayer;
        const got = numParams(paramTable(cfg));
        const formula = arch === 'crate' ? V * d + L * (6 * d * d + 5 * d) + 2 * d : V * d + L * (12 * d * d + 2 * d) + d;
        const table = arch === 'crate' ? crateT : gptT;
        worst = Math.max(worst, Math.abs(got - formula), Math.abs(got - table));
        if (arch === 'crate') rows.push(`${preset} ${(got / 1e6).toFixed(2)}M`);
        n++;
      }
    }
    return { instances: n, worst, tolerance: 0, pass: worst === 0, note: `CRATE ${rows.join(', ')} (the paper prints 55.9M for S: a typo, spec 5.2)` };
  },
};

export const P23: PropertyCheck = {
  id: 'P23',
  statement: 'Golden vector (Appendix A): logits, loss, layer-0 code statistics',
  measure: 'max |Δ| over logits (6 decimals), loss, code sums ≤ tol; integer statistics exact',
  run() {
    const model = goldenModel(new ReferenceBackend());
    const T = GOLDEN.idx.length,
      V = model.config.vocabSize;
    const { logits, loss, cache } = model.runWithCache(GOLDEN.idx, 1, T, { targets: GOLDEN.targets, names: ['blocks.0.hook_neurons'] });
    const lg = logits as Float64Array;
    let worst = Math.max(
      maxAbsDiffArr(lg.subarray((T - 1) * V, T * V), GOLDEN.logitsLast),
      maxAbsDiffArr(lg.subarray(0, V), GOLDEN.logitsFirst),
      Math.abs((loss as number) - GOLDEN.loss),
    );
    const code = cache.get('blocks.0.hook_neurons').data,
      H = code.length / T;
    const nz: number[] = [],
      sums: number[] = [];
    let zeros = 0;
    for (let t = 0; t < T; t++) {
      let c = 0,
        s = 0;
      for (let k = 0; k < H; k++) {
        const v = code[t * H + k];
        if (v !== 0) c++;
        else zeros++;
        s += v;
      }
      nz.push(c);
      sums.push(s);
    }
    worst = Math.max(worst, maxAbsDiffArr(sums, GOLDEN.code0Sums));
    const intOk = nz.every((v, i) => v === GOLDEN.code0Nonzeros[i]) && zeros / code.length === GOLDEN.code0ZeroFraction;
    model.free();
    return {
      instances: 1,
      worst,
      tolerance: 1e-6,
      pass: worst <= 1e-6 && intOk,
      note: `loss ${(loss as number).toPrecision(16)} (expected ${GOLDEN.loss}); layer-0 nnz [${nz.join(', ')}], zero fraction ${zeros / code.length}${intOk ? '' : ' MISMATCH'}`,
    };
  },
};
