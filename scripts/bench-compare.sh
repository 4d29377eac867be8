#!/usr/bin/env bash
# One sitting: crate-ts (cpu backend) and PyTorch (eager, float32, 2 threads, OpenBLAS) on the same
# configs, alternating, ROUNDS times. Each line is one measurement (median of --steps steps after
# warm-up); compare medians across rounds. Needs Debian's python3-torch and libopenblas0-pthread.
#   bash scripts/bench-compare.sh [ROUNDS]     (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
py=/usr/bin/python3
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)
case "$blas" in
  *openblas*) ;;
  *) echo "$(basename "$0"): PyTorch would run on the reference BLAS ($blas), which makes it several times slower than it is; install libopenblas0-pthread first (apt-get install libopenblas0-pthread)" >&2; exit 2 ;;
esac
for r in $(seq 1 "$rounds"); do
  for c in C-char C-small C-1L; do
    node bin/crate-ts.js bench --backend cpu --config "$c" --steps 10 --warmup 2 --json | node -e '
      const j = JSON.parse(require("fs").readFileSync(0, "utf8"));
      for (const x of j.rows) console.log(["round '"$r"'", x.config, "crate-ts cpu", x.msPerStep.toFixed(1), Math.round(x.tokensPerSec), x.gflops.toFixed(1)].join("\t"));'
    "$py" scripts/bench_torch.py --config "$c" --steps 10 --warmup 2 --json | node -e '
      const lines = require("fs").readFileSync(0, "utf8").trim().split("\n").filter((l) => l.startsWith("{"));
      for (const l of lines) { const x = JSON.parse(l); console.log(["round '"$r"'", x.config, "torch cpu", x.msPerStep.toFixed(1), Math.round(x.tokensPerSec), x.gflops.toFixed(1)].join("\t")); }'
  done
  node bin/crate-ts.js bench --backend cpu --config matmul-1024 --steps 20 --json | node -e '
    const j = JSON.parse(require("fs").readFileSync(0, "utf8"));
    for (const x of j.rows) console.log(["round '"$r"'", x.config, "crate-ts cpu", x.msPerStep.toFixed(2), "-", x.gflops.toFixed(1)].join("\t"));'
done
