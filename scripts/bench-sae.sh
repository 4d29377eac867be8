#!/usr/bin/env bash
# SAE training speed and memory, crate-ts (cpu) against PyTorch (scripts/sae_torch.py, the same recipe),
# one after the other on the same cached activations: d_in 512 (the paper's 1-3L models), 16x = 8192
# features, batch 4096 rows. Then `crate-ts sae train`'s peak RSS at two token counts (bounded memory).
#
#   bash scripts/bench-sae.sh            REPEATS=3 STEPS=8 THREADS=2 MEM_TOKENS="100000 1000000" MEM_EXPANSION=16
#
# Needs dist/ (npm run build) and, for the PyTorch rows, Debian's python3-torch (/usr/bin/python3).
set -euo pipefail
cd "$(dirname "$0")/.."
REPEATS=${REPEATS:-3}
STEPS=${STEPS:-8}
THREADS=${THREADS:-2}
ROWS=${ROWS:-65536}
MEM_TOKENS=${MEM_TOKENS:-"100000 1000000"}
MEM_EXPANSION=${MEM_EXPANSION:-16}
PY=${PYTHON:-/usr/bin/python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "bench-sae: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); repeats $REPEATS, $STEPS timed steps each, $THREADS threads"
node scripts/bench-sae.mjs --make-acts "$work/acts.f32" --rows "$ROWS" --checkpoint-out "$work/gpt2-2l.safetensors"
for r in $(seq 1 "$REPEATS"); do
  node scripts/bench-sae.mjs --acts "$work/acts.f32" --steps "$STEPS" --threads "$THREADS"
  if "$PY" -c 'import torch' 2>/dev/null; then
    "$PY" scripts/sae_torch.py --acts "$work/acts.f32" --steps "$STEPS" --threads "$THREADS"
  else
    echo '{"impl":"pytorch","skipped":"'"$PY"' has no torch (apt-get install python3-torch)"}'
  fi
done
for n in $MEM_TOKENS; do
  /usr/bin/time -f '{"impl":"crate-ts sae train","tokens":'"$n"',"expansion":'"$MEM_EXPANSION"',"peak_rss_kib":%M,"wall_s":%e}' \
    node bin/crate-ts.js sae train --checkpoint "$work/gpt2-2l.safetensors" --layer 0 --expansion "$MEM_EXPANSION" --tokens "$n" \
    --backend cpu --threads "$THREADS" --quiet --save-every 0 --out "$work/sae-$n" 2>&1 | tail -1
done
