#!/usr/bin/env bash
# Paper A's claim in miniature: CRATE's neurons (the ISTA code) against GPT-2's MLP neurons, scored
# offline with the token-lookup simulator (spec 7.8.1, a proxy for the paper's LLM simulator).
#
# For L in 1 2 3, both architectures, several seeds: train a byte-level char-tiny model (d 64,
# 4 heads, T 64) with identical settings on the first 90% of the embedded Moby-Dick, write the
# untrained model of the same seed as a random-init control, and measure both on the last 10%
# (held out: no model trained on it): held-out loss beside the unigram entropy, then
# `neurons collect --variant both`, `neurons score`, and `neurons compare` per L (table, SVG).
#
#   bash scripts/reproduce-miniature.sh [--steps 5000] [--seeds "1 2"] [--layers "1 2 3"]
#                                       [--out runs/miniature] [--backend cpu] [--threads N]
#
# Runs that already have their checkpoint / collection are reused, so the script can be resumed.
# Output: OUT/compare-L{L}.txt, .svg and .json (all four models), OUT/compare-L{L}-init.txt (the two
# random-init controls against each other), OUT/summary.md (the README table), OUT/losses.txt.
set -euo pipefail

STEPS=5000 SEEDS="1 2" LAYERS="1 2 3" OUT=runs/miniature BACKEND=cpu THREADS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) STEPS="$2"; shift 2 ;;
    --seeds) SEEDS="$2"; shift 2 ;;
    --layers) LAYERS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --backend) BACKEND="$2"; shift 2 ;;
    --threads) THREADS="--threads $2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "reproduce-miniature.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CLI=(node "$ROOT/bin/crate-ts.js")
[ -f "$ROOT/dist/cli/main.js" ] || { echo "reproduce-miniature.sh: build first (npm install or npx tsc)" >&2; exit 2; }
if [ "$BACKEND" != reference ] && [ ! -f "$ROOT/build/Release/crate_native.node" ]; then
  echo "reproduce-miniature.sh: the native addon is not built (npm run build:native), or use --backend reference" >&2; exit 2
fi
mkdir -p "$OUT/data"
OUT="$(cd "$OUT" && pwd)"

# 1. the split: first 90% of the corpus (cut at a line break) to train on, the rest held out
if [ ! -f "$OUT/data/heldout.txt" ]; then
  node --input-type=module -e "
    import { readFileSync, writeFileSync } from 'node:fs';
    import { gunzipSync } from 'node:zlib';
    const text = gunzipSync(readFileSync('$ROOT/data/moby-dick.txt.gz')).toString('utf8');
    const cut = text.indexOf('\n', Math.floor(text.length * 0.9)) + 1;
    writeFileSync('$OUT/data/train.txt', text.slice(0, cut));
    writeFileSync('$OUT/data/heldout.txt', text.slice(cut));
    console.log('train.txt ' + cut + ' chars, heldout.txt ' + (text.length - cut) + ' chars');
  "
fi

# the untrained model of a seed, written with the library (train has no --steps 0)
write_init() { # arch layers seed file
  node --input-type=module -e "
    const { LanguageModel, makeConfig, saveCheckpoint, ReferenceBackend } = await import('$ROOT/dist/index.js');
    const cfg = makeConfig('char-tiny', { arch: '$1', nLayer: $2 });
    const m = new LanguageModel(new ReferenceBackend(), cfg, { seed: $3 });
    saveCheckpoint('$4', { model: m, tokenizer: 'byte' });
  "
}

echo "# held-out loss (nats/token) and unigram entropy of the held-out bytes" > "$OUT/losses.txt"
for L in $LAYERS; do
  DIRS=() LABELS=()
  for kind in trained init; do
    for arch in crate gpt2; do
      for seed in $SEEDS; do
        run="$OUT/$arch-L$L-s$seed"
        if [ "$kind" = trained ]; then
          ckpt="$run"
          if [ ! -f "$run/model.safetensors" ] && [ ! -f "$run/ckpt.safetensors" ]; then
            echo "== train $arch L=$L seed=$seed ($STEPS steps)"
            "${CLI[@]}" train --preset char-tiny --arch "$arch" --n-layer "$L" --steps "$STEPS" --seed "$seed" \
              --data "$OUT/data/train.txt" --backend "$BACKEND" $THREADS --out "$run" --sample-tokens 0 --quiet
          elif [ -f "$run/model.safetensors" ] && ! grep -q '"type":"summary","step":'"$STEPS"',' "$run/train.jsonl" 2>/dev/null; then
            # an interrupted run (SIGINT/SIGTERM save a checkpoint): finish it, bitwise as if uninterrupted,
            # and drop what was measured on the unfinished model
            echo "== resume $arch L=$L seed=$seed to $STEPS steps"
            rm -rf "$run/neurons" "$run/eval-heldout.txt" "$run/eval-heldout.txt.tmp"
            "${CLI[@]}" train --resume "$run" --steps "$STEPS" --backend "$BACKEND" $THREADS --sample-tokens 0 --quiet
          fi
        else
          mkdir -p "$run-init"
          ckpt="$run-init/model.safetensors"
          [ -f "$ckpt" ] || write_init "$arch" "$L" "$seed" "$ckpt"
          run="$run-init"
        fi
        if [ ! -f "$run/neurons/manifest.json" ]; then
          "${CLI[@]}" neurons collect --checkpoint "$ckpt" --data "$OUT/data/heldout.txt" --variant both --seed 0 \
            --backend "$BACKEND" $THREADS --batch 16 --out "$run/neurons" --force
        fi
        if [ ! -s "$run/eval-heldout.txt" ]; then
          "${CLI[@]}" eval --checkpoint "$ckpt" --data "$OUT/data/heldout.txt" --split all --windows 0 --backend "$BACKEND" $THREADS > "$run/eval-heldout.txt.tmp"
          mv "$run/eval-heldout.txt.tmp" "$run/eval-heldout.txt"
        fi
        loss=$(sed -n -e 's/^loss \([0-9.]*\) nats.*/\1/p' -e 's/^unigram entropy of these tokens \([0-9.]*\) nats.*/\1/p' "$run/eval-heldout.txt" | paste -sd' ')
        echo "$arch-L$L-s$seed $kind: held-out loss, unigram entropy = $loss" | tee -a "$OUT/losses.txt"
        DIRS+=("$run/neurons")
        LABELS+=("$( [ "$arch" = crate ] && echo CRATE || echo GPT-2 )$( [ "$kind" = init ] && echo ' init' || true )")
      done
    done
  done
  IFS=,; labels="${LABELS[*]}"; unset IFS
  "${CLI[@]}" neurons compare "${DIRS[@]}" --labels "$labels" --baseline GPT-2 \
    --title "char-tiny L=$L: token-lookup scores on held-out text" --svg "$OUT/compare-L$L.svg" | tee "$OUT/compare-L$L.txt"
  "${CLI[@]}" neurons compare "${DIRS[@]}" --labels "$labels" --baseline GPT-2 --json > "$OUT/compare-L$L.json"
  # the random-init controls against each other (the baseline every trained gap is read against)
  n=${#DIRS[@]}
  "${CLI[@]}" neurons compare "${DIRS[@]:$((n / 2))}" --labels "$(IFS=,; echo "${LABELS[*]:$((n / 2))}")" --baseline "GPT-2 init" > "$OUT/compare-L$L-init.txt"
done

# 3. the summary table (markdown) from the compare JSON files
node --input-type=module -e "
  import { readFileSync, writeFileSync } from 'node:fs';
  const f = (v, d = 1) => (v === null || v === undefined ? '-' : v.toFixed(d));
  const rows = ['| L | model | seeds | held-out loss | TaR | Random-only | Anthropic | selectivity | consistency | density |', '|---|---|---|---|---|---|---|---|---|---|'];
  // held-out loss per run (nats/token), averaged over the seeds of a group
  const evalOf = (dir) => Number(/^loss ([0-9.]+) nats/m.exec(readFileSync(dir + '/eval-heldout.txt', 'utf8'))[1]);
  let entropy = null;
  for (const L of '$LAYERS'.split(' ')) {
    const j = JSON.parse(readFileSync('$OUT/compare-L' + L + '.json', 'utf8'));
    for (const g of j.groups) {
      const arch = g.label.startsWith('CRATE') ? 'crate' : 'gpt2', init = g.label.endsWith('init') ? '-init' : '';
      const losses = '$SEEDS'.split(' ').map((s) => evalOf('$OUT/' + arch + '-L' + L + '-s' + s + init));
      entropy ??= Number(/^unigram entropy of these tokens ([0-9.]+) nats/m.exec(readFileSync('$OUT/' + arch + '-L' + L + '-s' + '$SEEDS'.split(' ')[0] + init + '/eval-heldout.txt', 'utf8'))[1]);
      const c = (m) => f(g.model[m].mean) + ' ± ' + f(g.model[m].se) + ' [' + f(g.model[m].spread) + ']';
      rows.push('| ' + L + ' | ' + g.label + ' | ' + g.seeds + ' | ' + f(losses.reduce((a, b) => a + b, 0) / losses.length, 3) + ' | ' + c('tar') + ' | ' + c('randomOnly') + ' | ' + c('anthropic') + ' | ' + f(g.selectivity, 3) + ' | ' + f(g.consistency, 3) + ' | ' + f(g.density, 3) + ' |');
    }
  }
  rows.push('', 'Held-out loss in nats per byte (mean over the seeds); the unigram entropy of the held-out bytes is ' + f(entropy, 3) + ' nats.');
  writeFileSync('$OUT/summary.md', rows.join('\n') + '\n');
  console.log(rows.join('\n'));
"
echo "wrote $OUT/summary.md, $OUT/losses.txt, $OUT/compare-L*.{txt,svg,json}"
