#!/usr/bin/env bash
# Collection benchmark (a benchmark, not a test): `crate-ts neurons collect` on the paper's 2L model
# (preset 2L: V 50304, d 128, 4 heads, block 1024; untrained, since only the speed matters) over
# N tokens of the embedded corpus repeated 4 times (1.27 M GPT-2 tokens), both layers, --variant
# openai, cpu backend; then, with --torch, the paper's way on the same checkpoint and tokens
# (scripts/collect_torch.py: materialise the (N, 512) activations and argsort them; Debian's
# python3-torch; slow: about 2,300 CPU seconds at N = 1 M).
#
#   npx tsc -p tsconfig.json && bash scripts/bench-collect.sh [--tokens 1048576] [--arch crate|gpt2]
#        [--out DIR] [--torch]
#
# Prints collect's summary line (tokens/s, CPU s, peak RSS) and /usr/bin/time's wall time and
# maximum resident set size for the whole command.
set -euo pipefail
TOKENS=1048576 ARCH=crate OUT="" TORCH=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tokens) TOKENS="$2"; shift 2 ;;
    --arch) ARCH="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --torch) TORCH=1; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "bench-collect.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
[ -f "$ROOT/dist/index.js" ] || { echo "bench-collect.sh: build first (npx tsc -p tsconfig.json)" >&2; exit 2; }
[ -f "$ROOT/build/Release/crate_native.node" ] || { echo "bench-collect.sh: the native addon is not built (npm run build:native)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "bench-collect.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
if [ "$TORCH" = 1 ]; then
  blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)
  case "$blas" in
    *openblas*) ;;
    *) echo "$(basename "$0"): PyTorch would run on the reference BLAS ($blas), which makes it several times slower than it is; install libopenblas0-pthread first (apt-get install libopenblas0-pthread)" >&2; exit 2 ;;
  esac
fi
OUT="${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/crate-bench-collect.XXXXXX")}"
mkdir -p "$OUT"

ckpt="$OUT/$ARCH-2L.safetensors"
[ -f "$ckpt" ] || node --input-type=module -e "
  const { LanguageModel, makeConfig, saveCheckpoint, ReferenceBackend } = await import('$ROOT/dist/index.js');
  const m = new LanguageModel(new ReferenceBackend(), makeConfig('2L', { arch: '$ARCH' }), { seed: 1 });
  saveCheckpoint('$ckpt', { model: m, tokenizer: 'gpt2' });
"
corpus="$OUT/corpus4.txt"
[ -f "$corpus" ] || node --input-type=module -e "
  import { readFileSync, writeFileSync } from 'node:fs';
  import { gunzipSync } from 'node:zlib';
  const t = gunzipSync(readFileSync('$ROOT/data/moby-dick.txt.gz')).toString('utf8');
  writeFileSync('$corpus', [t, t, t, t].join('\n'));
"
echo "# $(date -u +%FT%TZ), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
/usr/bin/time -f "whole command: %e s wall, %U s user, %S s system, max RSS %M KiB" \
  node "$ROOT/bin/crate-ts.js" neurons collect --checkpoint "$ckpt" --data "$corpus" --tokens "$TOKENS" \
  --backend cpu --out "$OUT/collection-$ARCH" --force
if [ "$TORCH" = 1 ]; then
  /usr/bin/time -f "whole command: %e s wall, %U s user, %S s system, max RSS %M KiB" \
    /usr/bin/python3 "$ROOT/scripts/collect_torch.py" --collection "$OUT/collection-$ARCH" --check
fi
