#!/usr/bin/env bash
# Paper A's claim in miniature: CRATE's neurons (the ISTA code) against GPT-2's MLP neurons, and both
# against the paper's dictionary-learning baseline (16x sparse autoencoders on those neurons), scored
# offline with the token-lookup simulator (spec 7.8.1, a proxy for the paper's LLM simulator) and
# with the detection scorer's offline lookup judge.
#
# For L in 1 2 3, both architectures, several seeds: train a byte-level char-tiny model (d 64,
# 4 heads, T 64) with identical settings on the first 90% of the embedded Moby-Dick, write the
# untrained model of the same seed as a random-init control, and measure both on the last 10%
# (held out: no model trained on it): held-out loss beside the unigram entropy, then
# `neurons collect --variant both`, `neurons score`, `neurons score --scorer detection --judge
# lookup`. For every layer of every trained model, an SAE (`crate-ts sae train`, default recipe:
# relu + L1, --expansion 16 on blocks.{l}.hook_neurons = GPT-2's mlp.hook_post, CRATE's ISTA code)
# on the training split with the model's seed, `sae eval --json` on the held-out tokens the
# collections use (L0, FVU, loss recovered, dead fraction), `neurons collect --sae` and the same
# scores. Then one comparison per L (table, SVG, JSON) of all six models: CRATE, GPT-2, CRATE-SAE,
# GPT-SAE, and the two random-init controls (scripts/miniature-table.mjs).
#
#   bash scripts/reproduce-miniature.sh [--steps 5000] [--seeds "1 2"] [--layers "1 2 3"]
#                                       [--sae-tokens 1000000] [--sae-expansion 16] [--sae-batch 4096] [--no-sae]
#                                       [--collect-tokens N] [--out runs/miniature] [--backend cpu]
#                                       [--threads N] [--quick]
#
# --collect-tokens N: collect, evaluate and score on the first N held-out tokens (default: all).
# --quick: a smoke run for tests and CI (30 steps, seed 1, L = 1, 4x SAEs on 8192 tokens in
# 1024-token batches, 2048 collected tokens; options after it override it); its numbers mean nothing.
# Runs that already have their checkpoint / SAE / collection / scores are reused, so the script can
# be resumed. Output: OUT/compare-L{L}.txt, .svg and .json (all six models), OUT/compare-L{L}-init.txt
# (the two random-init controls against each other), OUT/summary.md (the README table), OUT/losses.txt.
set -euo pipefail

STEPS=5000 SEEDS="1 2" LAYERS="1 2 3" OUT=runs/miniature BACKEND=cpu THREADS=""
SAE=1 SAE_TOKENS=1000000 SAE_EXPANSION=16 SAE_BATCH="" COLLECT_TOKENS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) STEPS=30 SEEDS="1" LAYERS="1" SAE_TOKENS=8192 SAE_EXPANSION=4 SAE_BATCH="--batch-tokens 1024" COLLECT_TOKENS=2048; shift ;;
    --sae-tokens) SAE_TOKENS="$2"; shift 2 ;;
    --sae-expansion) SAE_EXPANSION="$2"; shift 2 ;;
    --sae-batch) SAE_BATCH="--batch-tokens $2"; shift 2 ;;
    --no-sae) SAE=0; shift ;;
    --collect-tokens) COLLECT_TOKENS="$2"; shift 2 ;;
    --steps) STEPS="$2"; shift 2 ;;
    --seeds) SEEDS="$2"; shift 2 ;;
    --layers) LAYERS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --backend) BACKEND="$2"; shift 2 ;;
    --threads) THREADS="--threads $2"; shift 2 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
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

TOK=() EVALWIN=(--windows 0)
if [ -n "$COLLECT_TOKENS" ]; then TOK=(--tokens "$COLLECT_TOKENS") EVALWIN=(--windows "$((COLLECT_TOKENS / 64))"); fi

# the detection score with the offline lookup judge (delphi's detection scorer, README "Detection and fuzzing")
detect() { # collection
  if [ ! -f "$1/detection-lookup/summary.json" ]; then
    "${CLI[@]}" neurons score "$1" --scorer detection --judge lookup > /dev/null
  fi
}

echo "# held-out loss (nats/token) and unigram entropy of the held-out bytes" > "$OUT/losses.txt"
for L in $LAYERS; do
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
            rm -rf "$run/neurons" "$run/eval-heldout.txt" "$run/eval-heldout.txt.tmp" "$run"/sae-l*
            "${CLI[@]}" train --resume "$run" --steps "$STEPS" --backend "$BACKEND" $THREADS --sample-tokens 0 --quiet
          fi
        else
          mkdir -p "$run-init"
          ckpt="$run-init/model.safetensors"
          [ -f "$ckpt" ] || write_init "$arch" "$L" "$seed" "$ckpt"
          run="$run-init"
        fi
        if [ ! -f "$run/neurons/manifest.json" ]; then
          "${CLI[@]}" neurons collect --checkpoint "$ckpt" --data "$OUT/data/heldout.txt" --variant both --seed 0 "${TOK[@]}" \
            --backend "$BACKEND" $THREADS --batch 16 --out "$run/neurons" --force
        fi
        detect "$run/neurons"
        if [ ! -s "$run/eval-heldout.txt" ]; then
          "${CLI[@]}" eval --checkpoint "$ckpt" --data "$OUT/data/heldout.txt" --split all "${EVALWIN[@]}" --backend "$BACKEND" $THREADS > "$run/eval-heldout.txt.tmp"
          mv "$run/eval-heldout.txt.tmp" "$run/eval-heldout.txt"
        fi
        loss=$(sed -n -e 's/^loss \([0-9.]*\) nats.*/\1/p' -e 's/^unigram entropy of these tokens \([0-9.]*\) nats.*/\1/p' "$run/eval-heldout.txt" | paste -sd' ')
        echo "$arch-L$L-s$seed $kind: held-out loss, unigram entropy = $loss" | tee -a "$OUT/losses.txt"
        # the SAE baseline: one SAE per layer of a trained model, on the layer's neurons (hook_neurons)
        if [ "$kind" = trained ] && [ "$SAE" = 1 ]; then
          ntok=$(node -e "console.log(JSON.parse(require('fs').readFileSync(process.argv[1], 'utf8')).n_tokens)" "$run/neurons/manifest.json")
          for ((l = 0; l < L; l++)); do
            sae="$run/sae-l$l"
            if [ ! -f "$sae/cfg.json" ] || [ -f "$sae/.training" ]; then
              echo "== sae train $arch L=$L seed=$seed layer $l ($SAE_TOKENS tokens, ${SAE_EXPANSION}x)"
              mkdir -p "$sae" && touch "$sae/.training"
              if [ -f "$sae/optimizer_state.safetensors" ]; then
                "${CLI[@]}" sae train --resume "$sae" --tokens "$SAE_TOKENS" --backend "$BACKEND" $THREADS --quiet
              else
                "${CLI[@]}" sae train --checkpoint "$run" --layer "$l" --expansion "$SAE_EXPANSION" --tokens "$SAE_TOKENS" $SAE_BATCH \
                  --seed "$seed" --data "$OUT/data/train.txt" --backend "$BACKEND" $THREADS --out "$sae" --quiet
              fi
              rm -f "$sae/.training" "$sae/eval-heldout.json"
              rm -rf "$sae/neurons"
            fi
            if [ ! -s "$sae/eval-heldout.json" ]; then
              "${CLI[@]}" sae eval "$sae" --checkpoint "$run" --data "$OUT/data/heldout.txt" --split all --tokens "$ntok" \
                --backend "$BACKEND" $THREADS --json > "$sae/eval-heldout.json.tmp"
              mv "$sae/eval-heldout.json.tmp" "$sae/eval-heldout.json"
            fi
            if [ ! -f "$sae/neurons/manifest.json" ]; then
              "${CLI[@]}" neurons collect --checkpoint "$run" --sae "$sae" --data "$OUT/data/heldout.txt" --variant both --seed 0 "${TOK[@]}" \
                --backend "$BACKEND" $THREADS --batch 16 --out "$sae/neurons" --force
            fi
            detect "$sae/neurons"
          done
        fi
      done
    done
  done
done

# 3. per L: the comparison of every model (text, SVG, JSON), the controls against each other, and
# the summary table (markdown)
node "$ROOT/scripts/miniature-table.mjs" --out "$OUT" --seeds "$SEEDS" --layers "$LAYERS" --sae "$SAE" --expansion "$SAE_EXPANSION"
echo "wrote $OUT/summary.md, $OUT/losses.txt, $OUT/compare-L*.{txt,svg,json}"
