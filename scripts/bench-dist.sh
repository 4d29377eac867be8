#!/usr/bin/env bash
# Data-parallel benchmark (a benchmark, not a test), on one machine: 1 rank x 2 threads against
# 2 ranks x 1 thread (mpirun), for
#   - training: the C-char config (preset char: byte-level, 2 layers, d 128, T 128), batch 8,
#     cpu backend, the embedded corpus: tokens/s over the run, and the share of a step the ranks
#     spend waiting for collectives (the all-gather of the gradient and its ordered sum, waiting
#     for the slower rank included; comm_seconds in train.jsonl), and the bytes each rank
#     receives per step against the parameter count; 2 ranks twice: without overlap
#     (--dist-bucket-kb 0: the whole buffer reduced after the backward) and with the default
#     buckets (256 KB: each started while the backward of the blocks below runs; the wait left is
#     what the backward did not hide);
#   - collection: the paper's 2L model (untrained; V 50304, d 128, T 1024), both layers, --variant
#     openai, cpu backend: collect's tokens/s.
# Each configuration runs REPS times; the medians are printed. Needs mpirun and the MPI addon
# (npm run build:mpi) and a build (npx tsc -p tsconfig.json).
#
#   bash scripts/bench-dist.sh [--steps 40] [--tokens 32768] [--reps 3] [--out DIR] [--no-collect]
set -euo pipefail
STEPS=40 TOKENS=32768 REPS=3 OUT="" COLLECT=1
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) STEPS="$2"; shift 2 ;;
    --tokens) TOKENS="$2"; shift 2 ;;
    --reps) REPS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --no-collect) COLLECT=0; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "bench-dist.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
[ -f "$ROOT/dist/index.js" ] || { echo "bench-dist.sh: build first (npx tsc -p tsconfig.json)" >&2; exit 2; }
[ -f "$ROOT/build/mpi/crate_mpi.node" ] || { echo "bench-dist.sh: the MPI addon is not built (npm run build:mpi)" >&2; exit 2; }
command -v mpirun >/dev/null || { echo "bench-dist.sh: mpirun not found (apt-get install openmpi-bin libopenmpi-dev)" >&2; exit 2; }
MPIRUN=(mpirun -np 2)
mpirun --version 2>&1 | grep -q "Open MPI" && MPIRUN+=(--allow-run-as-root --oversubscribe --bind-to none)
OUT="${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/crate-bench-dist.XXXXXX")}"
mkdir -p "$OUT"
CLI="$ROOT/bin/crate-ts.js"
echo "# $(date -u +%FT%TZ), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"

# ---- training --------------------------------------------------------------------------------------
train_args=(train --backend cpu --preset char --batch 8 --steps "$STEPS" --eval-every 0 --eval-windows 2 --save-every 0 --sample-tokens 0 --quiet)
summary() {  # $1 = run dir: "tokens/s comm-share bytes/step params"
  node -e '
    const fs = require("fs");
    const recs = fs.readFileSync(process.argv[1] + "/train.jsonl", "utf8").trim().split("\n").map(JSON.parse);
    const cfg = recs.find((r) => r.type === "config"), sum = recs.find((r) => r.type === "summary");
    const steps = recs.filter((r) => r.type === "step");
    // skip the first step (warm-up) in the communication share
    const rest = steps.slice(1);
    const stepSecs = (steps.at(-1).elapsed - steps[0].elapsed) / Math.max(1, rest.length);
    const comm = rest.reduce((s, r) => s + (r.comm_seconds ?? 0), 0) / Math.max(1, rest.length);
    const P = cfg.model.parameters, N = cfg.dist?.ranks ?? 1, A = cfg.hyper.gradAccum / N;
    // each round every rank receives the other ranks gradient buffers (float32); each step their
    // loss records (8 bytes per round and a stop flag)
    const bytes = N > 1 ? A * (N - 1) * 4 * P + (N - 1) * (8 * A + 8) : 0;
    console.log([sum.tokens_per_sec.toFixed(0), (comm / stepSecs).toFixed(3), bytes, P].join(" "));
  ' "$1"
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
for rep in $(seq 1 "$REPS"); do
  node "$CLI" "${train_args[@]}" --threads 2 --out "$OUT/train-1x2-$rep" >/dev/null
  summary "$OUT/train-1x2-$rep" >> "$OUT/train-1x2.txt"
  "${MPIRUN[@]}" node "$CLI" "${train_args[@]}" --threads 1 --dist mpi --dist-bucket-kb 0 --out "$OUT/train-2x1-flat-$rep" >/dev/null
  summary "$OUT/train-2x1-flat-$rep" >> "$OUT/train-2x1-flat.txt"
  "${MPIRUN[@]}" node "$CLI" "${train_args[@]}" --threads 1 --dist mpi --out "$OUT/train-2x1-$rep" >/dev/null
  summary "$OUT/train-2x1-$rep" >> "$OUT/train-2x1.txt"
done
t1=$(cut -d' ' -f1 "$OUT/train-1x2.txt" | median)
t2f=$(cut -d' ' -f1 "$OUT/train-2x1-flat.txt" | median)
sharef=$(cut -d' ' -f2 "$OUT/train-2x1-flat.txt" | median)
t2=$(cut -d' ' -f1 "$OUT/train-2x1.txt" | median)
share=$(cut -d' ' -f2 "$OUT/train-2x1.txt" | median)
read -r _ _ bytes params < "$OUT/train-2x1.txt"
echo "training C-char, batch 8 per rank, $STEPS steps, medians of $REPS:"
echo "  1 rank x 2 threads (grad-accum 1, 8 sequences/step):          $t1 tokens/s"
echo "  2 ranks x 1 thread, no overlap (--dist-bucket-kb 0):           $t2f tokens/s, waiting for collectives $sharef of a step"
echo "  2 ranks x 1 thread, buckets overlapping the backward:         $t2 tokens/s, waiting for collectives $share of a step"
echo "  bytes received per rank per step: $bytes for $params parameters ($(node -e "console.log(($bytes / (4 * $params)).toFixed(3))") x the float32 parameter bytes)"

# ---- collection -----------------------------------------------------------------------------------
[ "$COLLECT" = 1 ] || { echo "(runs in $OUT)"; exit 0; }
ckpt="$OUT/crate-2L.safetensors"
[ -f "$ckpt" ] || node --input-type=module -e "
  const { LanguageModel, makeConfig, saveCheckpoint, ReferenceBackend } = await import('$ROOT/dist/index.js');
  const m = new LanguageModel(new ReferenceBackend(), makeConfig('2L', { arch: 'crate' }), { seed: 1 });
  saveCheckpoint('$ckpt', { model: m, tokenizer: 'gpt2' });
"
rate() { sed -n 's/.*: \([0-9,]*\) tokens\/s.*/\1/p' | tr -d ,; }
for rep in $(seq 1 "$REPS"); do
  node "$CLI" neurons collect --checkpoint "$ckpt" --tokens "$TOKENS" --backend cpu --threads 2 --out "$OUT/coll-1x2" --force | rate >> "$OUT/coll-1x2.txt"
  "${MPIRUN[@]}" node "$CLI" neurons collect --checkpoint "$ckpt" --tokens "$TOKENS" --backend cpu --threads 1 --dist mpi --out "$OUT/coll-2x1" --force | rate >> "$OUT/coll-2x1.txt"
done
cmp -s "$OUT/coll-1x2/layer-1/records.jsonl" "$OUT/coll-2x1/layer-1/records.jsonl" && same=identical || same=DIFFERENT
echo "collection 2L ($TOKENS tokens, both layers, openai), medians of $REPS:"
echo "  1 rank x 2 threads: $(median < "$OUT/coll-1x2.txt") tokens/s"
echo "  2 ranks x 1 thread: $(median < "$OUT/coll-2x1.txt") tokens/s (records $same)"
echo "(runs in $OUT)"
