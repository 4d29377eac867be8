// scripts/reproduce-miniature.sh --quick end to end (the built CLI in dist/, cpu backend): every row
// of the table is there, and the new columns are what the files say: the SAE rows' L0 / FVU / loss
// recovered / dead fraction are `sae eval --json`'s, their scores the SAE collection's, the detection
// column the lookup judge's summary.json; the SAEs were trained on the training split with the
// model's seed and evaluated on the collected held-out tokens. The numbers of a quick run mean nothing.
// $CRATE_TS_MINIATURE_OUT: run (or resume: the script reuses what a directory holds) in that
// directory and keep it.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { scoreCollection } from '../src/neurons/score.js';
import { readManifest } from '../src/neurons/format.js';

const built = fs.existsSync('dist/cli/main.js') && fs.existsSync('build/Release/crate_native.node');
const skip = built ? false : 'needs the build (dist/ and the native addon: npm install)';
if (skip) console.warn(`miniature smoke test skipped: ${skip}`);

const keep = process.env.CRATE_TS_MINIATURE_OUT;
let out = '',
  run: ReturnType<typeof spawnSync> | null = null;

beforeAll(() => {
  if (skip) return;
  out = keep ? path.resolve(keep) : fs.mkdtempSync(path.join(os.tmpdir(), 'crate-miniature-'));
  run = spawnSync('bash', ['scripts/reproduce-miniature.sh', '--quick', '--threads', '1', '--out', out], { encoding: 'utf8', timeout: 1_500_000 });
}, 1_600_000);
afterAll(() => {
  if (out && !keep) fs.rmSync(out, { recursive: true, force: true });
});

type Obj = Record<string, any>;
const f1 = (x: number) => x.toFixed(1);
const f3 = (x: number) => x.toFixed(3);

describe.skipIf(skip)('reproduce-miniature.sh --quick', () => {
  it('runs, and the table has the neuron, SAE and random-init rows with the new columns', () => {
    expect(run!.status, String(run!.stderr).slice(-2000)).toBe(0);
    const md = fs.readFileSync(path.join(out, 'summary.md'), 'utf8');
    const lines = md.split('\n');
    expect(lines[0]).toBe(
      '| L | model | seeds | held-out loss | TaR | Random-only | Anthropic | detection | selectivity | consistency | density | L0 | FVU | loss recovered | dead |',
    );
    const rows = new Map(
      lines
        .filter((l) => /^\| 1 \|/.test(l))
        .map((l) => {
          const c = l.split('|').map((x) => x.trim());
          return [c[2], c.slice(1, -1)];
        }),
    );
    expect([...rows.keys()]).toEqual(['CRATE', 'GPT-2', 'CRATE-SAE4x', 'GPT-SAE4x', 'CRATE init', 'GPT-2 init']);

    for (const [label, arch] of [
      ['CRATE-SAE4x', 'crate'],
      ['GPT-SAE4x', 'gpt2'],
    ] as const) {
      const run = path.join(out, `${arch}-L1-s1`),
        sae = path.join(run, 'sae-l0');
      const r = rows.get(label)!;
      // the SAE: trained on the training split with the model's seed, on the layer's neurons, 4x
      const cfg = JSON.parse(fs.readFileSync(path.join(sae, 'cfg.json'), 'utf8'));
      expect(cfg.metadata.hook_name).toBe('blocks.0.hook_neurons');
      expect(cfg.d_sae).toBe(4 * cfg.d_in);
      expect(cfg.crate_ts.seed).toBe(1);
      expect(cfg.crate_ts.data.source).toBe(path.join(out, 'data', 'train.txt'));
      expect(cfg.crate_ts.tokens_seen).toBe(8192);
      // evaluated on the held-out tokens the collections use: L0, FVU, loss recovered, dead as sae eval --json printed them
      const ev = JSON.parse(fs.readFileSync(path.join(sae, 'eval-heldout.json'), 'utf8')) as Obj;
      const coll = path.join(sae, 'neurons');
      const m = readManifest(coll);
      expect(ev.tokens).toBe(m.n_tokens);
      expect(m.data.source).toBe(path.join(out, 'data', 'heldout.txt'));
      expect(m.hooks).toEqual(['blocks.0.hook_neurons.hook_sae_acts_post']);
      expect(m.sae?.path).toBe(sae);
      expect(r.slice(11)).toEqual([f1(ev.l0), f3(ev.fvu), f3(ev.lossRecovered), f3(ev.deadFraction)]);
      expect(r[3]).toBe('-'); // no held-out loss of its own
      // the scores of the SAE's features, as neurons score computes them
      const sc = scoreCollection(coll);
      expect(r[4]).toBe(`${f1(sc.model.tar.mean!)} ± ${f1(sc.model.tar.se!)} [-]`);
      expect(r[6]).toBe(`${f1(sc.model.anthropic.mean!)} ± ${f1(sc.model.anthropic.se!)} [-]`);
      expect(r[10]).toBe(f3(sc.model.density!));
      // the detection column: the lookup judge's summary.json
      const det = JSON.parse(fs.readFileSync(path.join(coll, 'detection-lookup', 'summary.json'), 'utf8'));
      expect(det).toMatchObject({ scorer: 'detection', judge: 'lookup' });
      const l = det.layers[0];
      expect(r[7]).toBe(
        `${l.balanced_accuracy === null ? '-' : f1(100 * l.balanced_accuracy)} ± ${l.balanced_accuracy_se === null ? '-' : f1(100 * l.balanced_accuracy_se)} [-] (${l.scored}/${l.neurons})`,
      );
    }
    for (const [label, dir] of [
      ['CRATE', 'crate-L1-s1'],
      ['GPT-2 init', 'gpt2-L1-s1-init'],
    ]) {
      const r = rows.get(label)!;
      const det = JSON.parse(fs.readFileSync(path.join(out, dir, 'neurons', 'detection-lookup', 'summary.json'), 'utf8')).layers[0];
      expect(r[7]).toMatch(new RegExp(`\\(${det.scored}/${det.neurons}\\)$`));
      if (det.balanced_accuracy !== null) expect(r[7].startsWith(`${f1(100 * det.balanced_accuracy)} ± `)).toBe(true);
      expect(r.slice(11)).toEqual(['-', '-', '-', '-']);
      expect(r[3]).toMatch(/^\d+\.\d{3}$/);
    }
    // the comparison files have every model
    const cmp = JSON.parse(fs.readFileSync(path.join(out, 'compare-L1.json'), 'utf8'));
    expect(cmp.groups.map((g: Obj) => g.label)).toEqual(['CRATE', 'GPT-2', 'CRATE-SAE4x', 'GPT-SAE4x', 'CRATE init', 'GPT-2 init']);
    expect(fs.readFileSync(path.join(out, 'compare-L1.svg'), 'utf8')).toMatch(/GPT-SAE4x/);
    expect(fs.readFileSync(path.join(out, 'compare-L1.txt'), 'utf8')).toMatch(/CRATE-SAE4x\s+0\s/);
  });
});
