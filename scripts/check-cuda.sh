#!/usr/bin/env bash
# Compile-only check of the CUDA twin, for CI machines without a GPU (llm.c's "CI compiles CUDA").
#
#   scripts/check-cuda.sh              compile every native/cuda/*.cu for sm_80 and sm_90 with warnings
#                                      as errors (register spills and local memory too), link the
#                                      Node-free conformance harness, syntax-check the Node-API glue
#   scripts/check-cuda.sh --emulate [FILTER]
#                                      also build the conformance harness against the CPU emulator
#                                      (native/cuda/emu: the kernels compiled by g++, every CUDA thread a
#                                      fiber) and run it: every operator of the table (native/ops.json)
#                                      checked against the CPU twin without a GPU (minutes; FILTER
#                                      selects checks);
#                                      without FILTER also build build/cuda-emu/crate_native.node (the
#                                      addon on the emulator) and run test/cuda.test.ts, the
#                                      differential suite and test/dist-nccl.test.ts (with a one-rank
#                                      stand-in for libnccl.so.2) against it (CRATE_TS_NATIVE_ADDON)
#
# Prints what it compiled; exits non-zero on any error. Without nvcc it says so and exits 1, or 0
# when CRATE_CUDA_OPTIONAL=1 (for CI images that may lack the CUDA toolkit).
# Environment: NVCC (compiler, default: nvcc on PATH, else /usr/local/cuda/bin/nvcc),
# CRATE_CUDA_ARCHS (default "80 90"), JOBS (parallel compiles, default: nproc).
set -uo pipefail
cd "$(dirname "$0")/.."

emulate=0
filter=""
while [ $# -gt 0 ]; do
  case "$1" in
    --emulate) emulate=1; if [ $# -gt 1 ] && [ "${2#--}" = "$2" ]; then filter="$2"; shift; fi ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "check-cuda: unknown argument '$1' (see --help)"; exit 64 ;;
  esac
  shift
done

NVCC="${NVCC:-}"
if [ -z "$NVCC" ]; then
  if command -v nvcc >/dev/null 2>&1; then NVCC=$(command -v nvcc)
  elif [ -x /usr/local/cuda/bin/nvcc ]; then NVCC=/usr/local/cuda/bin/nvcc
  fi
fi
if [ -z "$NVCC" ] || ! "$NVCC" --version >/dev/null 2>&1; then
  if [ "${CRATE_CUDA_OPTIONAL:-0}" = "1" ]; then
    echo "check-cuda: nvcc not found; skipping the CUDA compile check (CRATE_CUDA_OPTIONAL=1)"
    exit 0
  fi
  echo "check-cuda: nvcc not found (install the CUDA toolkit, or set NVCC=/path/to/nvcc;"
  echo "            CRATE_CUDA_OPTIONAL=1 makes a missing toolkit a skip instead of a failure)"
  exit 1
fi

archs="${CRATE_CUDA_ARCHS:-80 90}"
gencode=""
for a in $archs; do gencode="$gencode -gencode arch=compute_$a,code=sm_$a"; done
jobs="${JOBS:-$(nproc 2>/dev/null || echo 2)}"
out=$(mktemp -d "${TMPDIR:-/tmp}/crate-check-cuda.XXXXXX")
trap 'rm -rf "$out"' EXIT
version=$("$NVCC" --version | grep -o 'release [0-9.]*' || true)
echo "check-cuda: $NVCC ($version), archs: $archs, $jobs parallel"

# -Werror all-warnings: host and device warnings; -warn-spills / -warn-lmem-usage: a kernel that
# spills registers or uses local memory fails the check (a spill costs more than it saves on these
# kernels, so it is treated as a bug).
flags="-std=c++17 -O3 $gencode -Inative -Xcompiler -Wall,-Wextra -Werror all-warnings -Xptxas -warn-spills,-warn-lmem-usage"
export NVCC flags out

compile_one() {
  local src="$1" obj
  obj="$out/$(basename "$src" .cu).o"
  if "$NVCC" $flags -c "$src" -o "$obj" >"$obj.log" 2>&1; then
    echo "  ok    $src"
  else
    echo "  FAIL  $src"
    sed 's/^/        /' "$obj.log" | head -40
    return 1
  fi
}
export -f compile_one

fail=0
sources=$(ls native/cuda/*.cu)
echo "check-cuda: compiling $(echo "$sources" | wc -w) CUDA sources"
if ! printf '%s\n' $sources | xargs -P "$jobs" -I{} bash -c 'compile_one "$@"' _ {}; then fail=1; fi

# The conformance harness links the kernels with the CPU twin (every native/*.cc but binding.cc).
if [ $fail -eq 0 ]; then
  cpu=$(ls native/*.cc | grep -v '/binding\.cc$')
  if "$NVCC" $gencode -o "$out/crate_conformance" "$out"/*.o $cpu -std=c++17 -O3 -Inative \
      -Xcompiler -fopenmp-simd,-pthread >"$out/link.log" 2>&1; then
    echo "  ok    crate_conformance (native/cuda/conformance.cu + kernels + CPU twin) linked"
  else
    echo "  FAIL  crate_conformance link"; sed 's/^/        /' "$out/link.log" | head -40; fail=1
  fi
fi

# The Node-API glue is plain C++: syntax-check it when the Node-API headers are installed.
napi=$(node -p "require('node-addon-api').include_dir" 2>/dev/null || true)
apih=$(node -p "require('node-api-headers').include_dir" 2>/dev/null || true)
if [ -n "$napi" ] && [ -n "$apih" ]; then
  if g++ -std=gnu++17 -fsyntax-only -Wall -Wextra -Werror -DNAPI_VERSION=8 -DNAPI_CPP_EXCEPTIONS \
      -DNODE_ADDON_API_DISABLE_DEPRECATED -I"$napi" -I"$apih" -Inative native/cuda/binding_cuda.cc >"$out/glue.log" 2>&1; then
    echo "  ok    native/cuda/binding_cuda.cc (g++ -fsyntax-only)"
  else
    echo "  FAIL  native/cuda/binding_cuda.cc"; sed 's/^/        /' "$out/glue.log" | head -40; fail=1
  fi
else
  echo "  skip  native/cuda/binding_cuda.cc (node-addon-api / node-api-headers not installed)"
fi

if [ $fail -eq 0 ] && [ $emulate -eq 1 ]; then
  echo "check-cuda: building the conformance harness on the CPU emulator (native/cuda/emu)"
  emu="$out/emu"
  mkdir -p "$emu/native/cuda" "$emu/native/generated" "$emu/obj"
  cp native/*.h "$emu/native/"
  cp native/generated/* "$emu/native/generated/"
  for f in native/cuda/*.cu native/cuda/*.cuh native/cuda/*.h; do
    python3 native/cuda/emu/rewrite_launches.py "$f" "$emu/native/cuda/$(basename "$f")" || fail=1
  done
  build_emu() {  # $1 = source; compiled with g++ as C++ with the emulator header forced in
    local f="$1" o
    case "$f" in *.cu) o="$emu/obj/$(basename "$f" .cu).o"; g++ -std=gnu++17 -O2 -w -x c++ -include native/cuda/emu/cuda_emu.h -c "$emu/native/cuda/$(basename "$f")" -o "$o" ;;
                 *.cc) o="$emu/obj/cpu_$(basename "$f" .cc).o"; g++ -std=gnu++17 -O3 -fno-math-errno -ffp-contract=fast -fopenmp-simd -pthread -Inative -c "$f" -o "$o" ;;
    esac
  }
  export -f build_emu; export emu
  if printf '%s\n' native/cuda/*.cu $(ls native/*.cc | grep -v '/binding\.cc$') | xargs -P "$jobs" -I{} bash -c 'build_emu "$@"' _ {} \
      && g++ -o "$emu/crate_conformance_emu" "$emu"/obj/*.o -pthread; then
    echo "  ok    crate_conformance_emu built; running it${filter:+ (--filter $filter)}"
    if ! "$emu/crate_conformance_emu" ${filter:+--filter "$filter"}; then fail=1; fi
  else
    echo "  FAIL  emulator build"; fail=1
  fi
  # The addon with the emulated CUDA twin, so the TypeScript side (src/backend/cuda.ts, the glue,
  # test/cuda.test.ts, the differential suite) runs too: build/cuda-emu/crate_native.node.
  if [ $fail -eq 0 ] && [ -n "$napi" ] && [ -n "$apih" ] && [ -z "$filter" ]; then
    napiflags="-DNAPI_VERSION=8 -DNAPI_CPP_EXCEPTIONS -DNODE_ADDON_API_DISABLE_DEPRECATED -I$napi -I$apih"
    rm -rf "$emu/addon" && mkdir -p "$emu/addon" build/cuda-emu
    build_addon_obj() {
      local f="$1"
      case "$f" in
        *conformance.cu) ;;
        *.cu) g++ -std=gnu++17 -O2 -fPIC -w -x c++ -include native/cuda/emu/cuda_emu.h -c "$emu/native/cuda/$(basename "$f")" -o "$emu/addon/$(basename "$f" .cu).o" ;;
        *binding_cuda.cc) g++ -std=gnu++17 -O2 -fPIC $napiflags -Inative -c "$f" -o "$emu/addon/binding_cuda.o" ;;
        *.cc) g++ -std=gnu++17 -O3 -fPIC -fno-math-errno -ffp-contract=fast -fopenmp-simd -pthread -DCRATE_WITH_CUDA=1 $napiflags -Inative -c "$f" -o "$emu/addon/cpu_$(basename "$f" .cc).o" ;;
      esac
    }
    export -f build_addon_obj; export napiflags
    if printf '%s\n' native/cuda/*.cu native/*.cc native/cuda/binding_cuda.cc | xargs -P "$jobs" -I{} bash -c 'build_addon_obj "$@"' _ {} \
        && g++ -shared -o build/cuda-emu/crate_native.node "$emu"/addon/*.o -pthread; then
      echo "  ok    build/cuda-emu/crate_native.node (the addon with the emulated CUDA twin)"
      # a one-rank stand-in for libnccl.so.2 (copies; not NCCL), so test/dist-nccl.test.ts runs the
      # nccl communicator's code on the emulator
      mkdir -p build/cuda-emu/nccl
      if g++ -std=gnu++17 -O2 -fPIC -shared -o build/cuda-emu/nccl/libnccl.so.2 native/cuda/emu/nccl_one_rank.cc; then
        echo "  ok    build/cuda-emu/nccl/libnccl.so.2 (one-rank stand-in, native/cuda/emu/nccl_one_rank.cc)"
      else
        echo "  FAIL  build/cuda-emu/nccl/libnccl.so.2"; fail=1
      fi
      if [ -f node_modules/vitest/vitest.mjs ]; then
        echo "check-cuda: test/cuda.test.ts, the differential suite and test/dist-nccl.test.ts on the emulated cuda backend"
        if ! CRATE_TS_REQUIRE_CUDA=1 CRATE_TS_NATIVE_ADDON="$PWD/build/cuda-emu/crate_native.node" \
            LD_LIBRARY_PATH="$PWD/build/cuda-emu/nccl${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
            node node_modules/vitest/vitest.mjs run test/cuda.test.ts test/differential.test.ts test/dist-nccl.test.ts; then fail=1; fi
      fi
    else
      echo "  FAIL  emulated addon build"; fail=1
    fi
  fi
fi

if [ $fail -eq 0 ]; then echo "check-cuda: all CUDA sources compile"; else echo "check-cuda: FAILED"; fi
exit $fail
