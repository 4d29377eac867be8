#!/usr/bin/env bash
# SAE training speed and memory, crate-ts (cpu) against PyTorch (scripts/sae_torch.py, the same recipe),
# one after the other on the same cached activations: d_in 512 (the paper's 1-3L models), 16x = 8192
# features, batch 4096 rows, the same thread count for both, from the same starting weights, in two
# regimes (INITS):
#   random   the random initialisation: the first steps of a run, where about half of the features
#            fire on every row (L0 ~ 4000 of 8192), so every product is dense for both
#   trained  an SAE trained first with `crate-ts sae train` for INIT_TOKENS tokens on the activations
#            of the same checkpoint and hook, which both load (--init DIR): the sparse regime an SAE
#            spends nearly all of its training in (L0 in the hundreds), where crate-ts skips the zero
#            codes (decoder, its gradient and the encoder's weight gradient) and PyTorch computes the
#            same dense products as at step 1
# Each line reports mean_l0, the mean active features per row over the timed steps. Then `crate-ts sae train`'s peak RSS
# (the whole command: model, buffer, saves) at two token counts for two shapes: the paper's
# (d_in 512 x 8192, the 2-layer GPT-2 of width 128) and a small one on which 10M tokens take minutes
# (a 1-layer GPT-2 of width 16: d_in 64 x 512 features, SMALL_EXPANSION 8).
#
#   bash scripts/bench-sae.sh     REPEATS=3 STEPS=8 THREADS=2 MEM_TOKENS="65536 262144"
#                                 SMALL_TOKENS="1000000 10000000" SMALL_EXPANSION=8 PARTS="speed memory"
#                                 INITS="random trained" INIT_TOKENS=409600 [INIT_DIR=DIR]
#   (INIT_DIR: use the SAE in DIR for the trained rows instead of training one; it must be d_in 512 x 8192)
#   (MEM_TOKENS="" or SMALL_TOKENS="" skips that shape; the memory runs keep the default --save-every 500,
#   so the 10M run saves 4 times on the way)
#
# PyTorch's speed is its BLAS's: Debian's python3-torch calls whatever libblas.so.3 the system
# points at, which without an optimised BLAS is the reference (netlib) one, a plain triple loop
# (~1 GFLOP/s here, ~50x slower than crate-ts). The PyTorch rows therefore run on OpenBLAS: the
# directory TORCH_BLAS_DIR holding its libblas.so.3 (default: the system's openblas-pthread if
# installed; without root: `apt-get download libopenblas0-pthread && dpkg -x libopenblas0-pthread_*.deb ob`
# and TORCH_BLAS_DIR=ob/usr/lib/x86_64-linux-gnu/openblas-pthread). sae_torch.py prints the BLAS it loaded.
#
# Needs dist/ (npm run build) and, for the PyTorch rows, Debian's python3-torch (/usr/bin/python3).
set -euo pipefail
cd "$(dirname "$0")/.."
REPEATS=${REPEATS:-3}
STEPS=${STEPS:-8}
THREADS=${THREADS:-2}
ROWS=${ROWS:-65536}
MEM_TOKENS=${MEM_TOKENS-"65536 262144"}
SMALL_TOKENS=${SMALL_TOKENS-"1000000 10000000"}
SMALL_EXPANSION=${SMALL_EXPANSION:-8}
PARTS=${PARTS:-"speed memory"}
INITS=${INITS:-"random trained"}
INIT_TOKENS=${INIT_TOKENS:-409600}
PY=${PYTHON:-/usr/bin/python3}
TORCH_BLAS_DIR=${TORCH_BLAS_DIR:-/usr/lib/x86_64-linux-gnu/openblas-pthread}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "bench-sae: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); repeats $REPEATS, $STEPS timed steps each, $THREADS threads"
node scripts/bench-sae.mjs --make-acts "$work/acts.f32" --rows "$ROWS" --checkpoint-out "$work/gpt2-2l.safetensors" \
  --small-checkpoint-out "$work/gpt2-small.safetensors"
if [[ " $PARTS " == *" speed "* ]]; then
  torch_env=(env OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS")
  if [ -e "$TORCH_BLAS_DIR/libblas.so.3" ]; then
    torch_env+=(LD_LIBRARY_PATH="$TORCH_BLAS_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
  else
    echo "bench-sae: no libblas.so.3 in TORCH_BLAS_DIR=$TORCH_BLAS_DIR: PyTorch runs on the system's BLAS (see the header of this script)"
  fi
  init_dir=${INIT_DIR:-$work/sae-init}
  if [[ " $INITS " == *" trained "* ]] && [ -z "${INIT_DIR:-}" ]; then
    echo "bench-sae: training the starting SAE for the trained rows ($INIT_TOKENS tokens, crate-ts cpu, $THREADS threads)"
    node bin/crate-ts.js sae train --checkpoint "$work/gpt2-2l.safetensors" --layer 0 --expansion 16 --tokens "$INIT_TOKENS" \
      --backend cpu --threads "$THREADS" --quiet --out "$work/sae-init"
  fi
  for init in $INITS; do
    init_args=()
    [ "$init" = trained ] && init_args=(--init "$init_dir")
    for r in $(seq 1 "$REPEATS"); do
      echo "bench-sae: $init, repeat $r, load $(cut -d' ' -f1-3 /proc/loadavg)"
      node scripts/bench-sae.mjs --acts "$work/acts.f32" --steps "$STEPS" --threads "$THREADS" "${init_args[@]}"
      if "$PY" -c 'import torch' 2>/dev/null; then
        "${torch_env[@]}" "$PY" scripts/sae_torch.py --acts "$work/acts.f32" --steps "$STEPS" --threads "$THREADS" "${init_args[@]}"
      else
        echo '{"impl":"pytorch","skipped":"'"$PY"' has no torch (apt-get install python3-torch)"}'
      fi
    done
  done
fi
if [[ " $PARTS " == *" memory "* ]]; then
  mem() { # shape checkpoint expansion tokens
    /usr/bin/time -f '{"impl":"crate-ts sae train","shape":"'"$1"'","tokens":'"$4"',"expansion":'"$3"',"peak_rss_kib":%M,"wall_s":%e}' \
      node bin/crate-ts.js sae train --checkpoint "$2" --layer 0 --expansion "$3" --tokens "$4" \
      --backend cpu --threads "$THREADS" --quiet --out "$work/sae-$1-$4" 2>&1 | tail -1
  }
  for n in $MEM_TOKENS; do mem paper "$work/gpt2-2l.safetensors" 16 "$n"; done
  for n in $SMALL_TOKENS; do mem small "$work/gpt2-small.safetensors" "$SMALL_EXPANSION" "$n"; done
fi
