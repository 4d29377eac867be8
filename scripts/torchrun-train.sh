#!/usr/bin/env bash
# GPU data-parallel training launched the torchrun way: one crate-ts process per GPU, each told its
# place by RANK, WORLD_SIZE, LOCAL_RANK (its GPU) and MASTER_ADDR:MASTER_PORT (where rank 0 hands
# out the NCCL id over TCP). No MPI needed; NCCL (libnccl.so.2) and the CUDA build of the addon
# (npm run build:cuda) are.
#
#   bash scripts/torchrun-train.sh [GPUS] -- [crate-ts train options]
#     e.g. bash scripts/torchrun-train.sh 8 -- --preset B --data data/owt --batch 8 --out runs/B
#
# With PyTorch's torchrun on PATH it is used (it also restarts nothing and kills every rank when one
# fails): torchrun --nproc-per-node=GPUS --no-python npx crate-ts train ... On several nodes run the
# same on each with torchrun's --nnodes, --node-rank and --master-addr. Without torchrun the script
# starts the ranks itself, sets the same variables, and stops them all when one fails.
set -euo pipefail
GPUS="${1:-$(nvidia-smi -L 2>/dev/null | wc -l)}"
shift || true
[ "${1:-}" = "--" ] && shift
[ "$GPUS" -ge 1 ] 2>/dev/null || { echo "torchrun-train.sh: no GPU count given and nvidia-smi found none" >&2; exit 2; }
ARGS=(train --backend cuda --dist nccl "$@")

if command -v torchrun >/dev/null 2>&1; then
  exec torchrun --standalone --nproc-per-node="$GPUS" --no-python npx crate-ts "${ARGS[@]}"
fi

export MASTER_ADDR="${MASTER_ADDR:-127.0.0.1}" MASTER_PORT="${MASTER_PORT:-29500}" WORLD_SIZE="$GPUS"
pids=()
for ((r = 0; r < GPUS; r++)); do
  RANK=$r LOCAL_RANK=$r npx crate-ts "${ARGS[@]}" &
  pids+=($!)
done
status=0
# the first rank to fail stops the others (no rank is left waiting in a collective)
while [ ${#pids[@]} -gt 0 ]; do
  if wait -n "${pids[@]}"; then :; else status=$?; kill "${pids[@]}" 2>/dev/null || true; fi
  alive=()
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive+=("$p"); done
  pids=("${alive[@]+"${alive[@]}"}")
done
exit $status
