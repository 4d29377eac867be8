// The tables of scripts/reproduce-miniature.sh, from the files it wrote under OUT:
//   per L: compare-L{L}.txt / .svg / .json  every model (CRATE, GPT-2, their 16x SAEs, the random-init
//                                           controls) side by side, as `crate-ts neurons compare` prints them
//          compare-L{L}-init.txt            the two random-init controls against each other
//   summary.md                              one row per (L, model): held-out loss, the token-lookup scores,
//                                           the detection score (lookup judge), selectivity, consistency,
//                                           density, and for the SAEs L0, FVU, loss recovered, dead fraction
//
// An SAE reads one layer, so its features are one collection per layer: the collections of one model's
// SAEs are joined into one set of layers (as a model's neurons are) before seeds are grouped, and the
// SAE row is the mean over layers, then over seeds, exactly as the neuron rows are.
//
//   node scripts/miniature-table.mjs --out OUT --seeds "1 2" --layers "1 2 3" [--sae 1] [--expansion 16]
import { readFileSync, existsSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { scoreCollection, summarizeModel, modelLayers } = await import(path.join(root, 'dist/neurons/score.js'));
const { groupRuns, summarizeGroup, renderComparison, comparisonSvg } = await import(path.join(root, 'dist/neurons/compare.js'));
const { writeFileAtomic } = await import(path.join(root, 'dist/util/atomic.js'));

const { values: v } = parseArgs({
  options: { out: { type: 'string' }, seeds: { type: 'string' }, layers: { type: 'string' }, sae: { type: 'string' }, expansion: { type: 'string' } },
});
const OUT = v.out;
const SEEDS = (v.seeds ?? '1 2').trim().split(/\s+/);
const LAYERS = (v.layers ?? '1 2 3').trim().split(/\s+/).map(Number);
const withSae = (v.sae ?? '1') === '1';
const X = v.expansion ?? '16';

const NAME = { crate: 'CRATE', gpt2: 'GPT-2' };
const SAE_NAME = { crate: `CRATE-SAE${X}x`, gpt2: `GPT-SAE${X}x` };
const mean = (xs) => (xs.length && xs.every((x) => x !== null && Number.isFinite(x)) ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
const combinedSe = (ses) => (ses.length && ses.every((s) => s !== null) ? Math.sqrt(ses.reduce((a, s) => a + s * s, 0)) / ses.length : null);
const spreadOf = (xs) => (xs.length >= 2 && xs.every((x) => x !== null) ? Math.max(...xs) - Math.min(...xs) : null);
const readJson = (f) => JSON.parse(readFileSync(f, 'utf8'));

/** The collections of one model's per-layer SAEs as one collection of L layers (scores joined, model mean recomputed). */
function joinLayers(parts) {
  const layers = parts.flatMap((p) => p.layers).sort((a, b) => a.layer - b.layer);
  const manifest = parts[0].manifest;
  return {
    dir: parts.map((p) => p.dir).join('+'),
    simulator: 'lookup',
    manifest,
    layers,
    neurons: parts.flatMap((p) => p.neurons),
    model: summarizeModel(layers, modelLayers(manifest)),
  };
}

/** Detection (lookup judge) of one seed: per layer the mean balanced accuracy over the scored neurons, and its SE, from summary.json. */
function detectionLayers(dirs) {
  return dirs.flatMap((d) => readJson(path.join(d, 'detection-lookup', 'summary.json')).layers);
}

/** The mean over layers × 100 of one seed, and its SE (as the other scores' model SE); null when a layer had no scorable neuron. */
function detectionOfSeed(layers) {
  return {
    mean: mean(layers.map((l) => (l.balanced_accuracy === null ? null : 100 * l.balanced_accuracy))),
    se: combinedSe(layers.map((l) => (l.balanced_accuracy_se === null ? null : 100 * l.balanced_accuracy_se))),
    scored: layers.reduce((a, l) => a + l.scored, 0),
    neurons: layers.reduce((a, l) => a + l.neurons, 0),
  };
}

const f = (x, d = 1) => (x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d));
const cell = (c) => `${f(c.mean)} ± ${f(c.se)} [${f(c.spread)}]`;
const heldOut = (dir) => Number(/^loss ([0-9.]+) nats/m.exec(readFileSync(path.join(dir, 'eval-heldout.txt'), 'utf8'))[1]);
let entropy = null;

const rows = [
  '| L | model | seeds | held-out loss | TaR | Random-only | Anthropic | detection | selectivity | consistency | density | L0 | FVU | loss recovered | dead |',
  '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
];
for (const L of LAYERS) {
  /** label → per seed {scores, detection dirs, sae evals, run dirs}. */
  const models = [];
  const add = (label, kind, arch, perSeed) => models.push({ label, kind, arch, perSeed });
  for (const arch of ['crate', 'gpt2'])
    add(
      NAME[arch],
      'neurons',
      arch,
      SEEDS.map((s) => ({ run: path.join(OUT, `${arch}-L${L}-s${s}`) })),
    );
  if (withSae)
    for (const arch of ['crate', 'gpt2'])
      add(
        SAE_NAME[arch],
        'sae',
        arch,
        SEEDS.map((s) => ({ run: path.join(OUT, `${arch}-L${L}-s${s}`) })),
      );
  for (const arch of ['crate', 'gpt2'])
    add(
      `${NAME[arch]} init`,
      'neurons',
      arch,
      SEEDS.map((s) => ({ run: path.join(OUT, `${arch}-L${L}-s${s}-init`) })),
    );
  for (const m of models)
    for (const r of m.perSeed) {
      if (m.kind === 'neurons') {
        r.collections = [path.join(r.run, 'neurons')];
        r.scores = scoreCollection(r.collections[0]);
        r.loss = heldOut(r.run);
        entropy ??= Number(/^unigram entropy of these tokens ([0-9.]+) nats/m.exec(readFileSync(path.join(r.run, 'eval-heldout.txt'), 'utf8'))[1]);
      } else {
        r.saes = Array.from({ length: L }, (_, l) => path.join(r.run, `sae-l${l}`));
        r.collections = r.saes.map((d) => path.join(d, 'neurons'));
        for (const c of r.collections) if (!existsSync(path.join(c, 'manifest.json'))) throw new Error(`${c}: no collection (the SAE run did not finish)`);
        r.scores = joinLayers(r.collections.map((c) => scoreCollection(c)));
        r.evals = r.saes.map((d) => readJson(path.join(d, 'eval-heldout.json')));
      }
      r.detection = detectionOfSeed(detectionLayers(r.collections));
    }
  const groups = groupRuns(models.flatMap((m) => m.perSeed.map((r) => ({ label: m.label, scores: r.scores })))).map(summarizeGroup);
  const baseline = groups.findIndex((g) => g.label === NAME.gpt2);
  const title = `char-tiny L=${L}: token-lookup scores on held-out text`;
  const text = renderComparison(groups, baseline);
  writeFileAtomic(path.join(OUT, `compare-L${L}.txt`), text + '\n');
  writeFileAtomic(path.join(OUT, `compare-L${L}.svg`), comparisonSvg(groups, title));
  const inits = groups.filter((g) => g.label.endsWith(' init'));
  writeFileAtomic(
    path.join(OUT, `compare-L${L}-init.txt`),
    renderComparison(
      inits,
      inits.findIndex((g) => g.label === `${NAME.gpt2} init`),
    ) + '\n',
  );
  const extra = {};
  for (const m of models) {
    const det = m.perSeed.map((r) => r.detection);
    const e = {
      detection: {
        mean: mean(det.map((d) => d.mean)),
        se: combinedSe(det.map((d) => d.se)),
        spread: spreadOf(det.map((d) => d.mean)),
        scored: det.reduce((a, d) => a + d.scored, 0),
        neurons: det.reduce((a, d) => a + d.neurons, 0),
      },
    };
    if (m.kind === 'sae') {
      // per seed the mean over the model's layers, then the mean over seeds
      const of = (k) => mean(m.perSeed.map((r) => mean(r.evals.map((x) => x[k]))));
      e.sae = {
        l0: of('l0'),
        fvu: of('fvu'),
        lossRecovered: of('lossRecovered'),
        deadFraction: of('deadFraction'),
        ceLossClean: of('ceLossClean'),
        ceLossSpliced: of('ceLossSpliced'),
      };
    } else e.heldOutLoss = mean(m.perSeed.map((r) => r.loss));
    extra[m.label] = e;
  }
  writeFileAtomic(path.join(OUT, `compare-L${L}.json`), JSON.stringify({ baseline: groups[baseline]?.label ?? null, groups, extra }, null, 2) + '\n');
  console.log(`== L=${L}\n${text}\n`);
  for (const g of groups) {
    const e = extra[g.label];
    const s = e.sae;
    rows.push(
      `| ${L} | ${g.label} | ${g.seeds} | ${s ? '-' : f(e.heldOutLoss, 3)} | ${cell(g.model.tar)} | ${cell(g.model.randomOnly)} | ${cell(g.model.anthropic)} | ${cell(e.detection)} (${e.detection.scored}/${e.detection.neurons}) | ${f(g.selectivity, 3)} | ${f(g.consistency, 3)} | ${f(g.density, 3)} | ${s ? f(s.l0, 1) : '-'} | ${s ? f(s.fvu, 3) : '-'} | ${s ? f(s.lossRecovered, 3) : '-'} | ${s ? f(s.deadFraction, 3) : '-'} |`,
    );
  }
}
rows.push(
  '',
  `Held-out loss in nats per byte (mean over the seeds); the unigram entropy of the held-out bytes is ${f(entropy, 3)} nats.`,
  'Scores: mean × 100 ± standard error over neurons [seed spread = max − min of the seed means], model means over layers.',
  'detection: balanced accuracy × 100 of the detection scorer with the offline lookup judge (chance = 50), over the neurons that could be scored (in brackets: scored / all; a neuron is unscorable when none of its random 64-token records stays below a tenth of its maximum, so detection has no negative contexts).',
  'L0, FVU, loss recovered, dead: `sae eval --json` on the held-out tokens the collections use, mean over layers and seeds.',
);
writeFileAtomic(path.join(OUT, 'summary.md'), rows.join('\n') + '\n');
console.log(rows.join('\n'));
