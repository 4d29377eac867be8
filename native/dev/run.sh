#!/usr/bin/env bash
# Build and run a kernel ladder of native/dev/ (see README.md there). The binary goes to
# build/dev/<name> (build/ is not committed), compiled with the addon's flags from binding.gyp.
#   bash native/dev/run.sh gemm all --size 512 --baseline 3
#   bash native/dev/run.sh gemm 4 --layout TN --m 1024 --n 128 --k 512
set -euo pipefail
cd "$(dirname "$0")/../.."
name="${1:-}"
if [ -z "$name" ] || [ ! -f "native/dev/$name.cc" ]; then
  echo "usage: bash native/dev/run.sh NAME [args...]   (NAME: $(cd native/dev && ls *.cc | sed 's/\.cc$//' | tr '\n' ' '))" >&2
  exit 2
fi
shift
cxx="${CXX:-g++}"
mkdir -p build/dev
out="build/dev/$name"
# the production code a ladder links against (its current version is one of the variants)
deps=(native/gemm.cc native/threadpool.cc)
if [ ! -x "$out" ] || [ -n "$(find "native/dev/$name.cc" "${deps[@]}" native/gemm.h native/threadpool.h -newer "$out" 2>/dev/null)" ]; then
  "$cxx" -std=gnu++17 -O3 -fno-math-errno -fno-trapping-math -ffp-contract=fast -fopenmp-simd -pthread \
    -Inative "native/dev/$name.cc" "${deps[@]}" -o "$out"
fi
exec "$out" "$@"
