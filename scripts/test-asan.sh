#!/usr/bin/env bash
# npm run test:asan: the CPU addon built with AddressSanitizer and UndefinedBehaviorSanitizer into
# build-asan/crate_native.node (its own directory: build/Release stays the optimized addon), then the
# native test files run against it (the loader honours CRATE_TS_NATIVE_ADDON) with libasan preloaded
# into node. Any sanitizer report aborts the process it happens in, so the test that triggered it fails.
#
#   bash scripts/test-asan.sh [vitest arguments]     default: the native test files below
#
# Objects are rebuilt when their source or any native header is newer. Needs g++ (with libasan, as
# Debian's g++ 12 has it) and the Node-API headers (node-addon-api, node-api-headers: dev dependencies).
set -uo pipefail
cd "$(dirname "$0")/.."

out=build-asan
mkdir -p "$out/obj"
napi=$(node -p "require('node-addon-api').include_dir") || exit 1
apih=$(node -p "require('node-api-headers').include_dir") || exit 1
libasan=$(g++ -print-file-name=libasan.so)
if [ ! -e "$libasan" ]; then echo "test-asan: g++ has no libasan ($libasan)"; exit 1; fi

san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
export ASAN_CXXFLAGS="-std=gnu++17 -O1 -g $san -fPIC -fexceptions -fno-math-errno -fno-trapping-math -ffp-contract=fast \
  -fopenmp-simd -pthread -Wall -Wextra -DNAPI_VERSION=8 -DNAPI_CPP_EXCEPTIONS -DNODE_ADDON_API_DISABLE_DEPRECATED \
  -I$napi -I$apih -Inative"
newest_header=$(ls -t native/*.h native/generated/* | head -1)
export out newest_header
compile() {
  local src="$1" obj
  obj="$out/obj/$(basename "$src" .cc).o"
  if [ "$obj" -nt "$src" ] && [ "$obj" -nt "$newest_header" ]; then return 0; fi
  # shellcheck disable=SC2086
  g++ $ASAN_CXXFLAGS -c "$src" -o "$obj" || { echo "test-asan: compiling $src failed"; return 1; }
}
export -f compile
t0=$(date +%s)
echo "test-asan: building $out/crate_native.node (-fsanitize=address,undefined)"
if ! ls native/*.cc | xargs -P "$(nproc 2>/dev/null || echo 2)" -I{} bash -c 'compile "$@"' _ {}; then exit 1; fi
# shellcheck disable=SC2086
g++ -shared $san -o "$out/crate_native.node" "$out"/obj/*.o -pthread || exit 1
echo "test-asan: built in $(( $(date +%s) - t0 )) s; running the native tests under the sanitizers"

files=(test/native-hardening.test.ts test/native-cpu-boundary.test.ts test/optable.test.ts test/differential.test.ts
       test/native-cpu-reference.test.ts test/native-model.test.ts)
# Every SGEMM micro-kernel the addon can pick on some host runs under the sanitizers here, not only the
# one this CPU picks: the differential suite forces each supported kernel in turn (test/helpers/
# backends.ts), and the files that run whole models run again with CRATE_TS_CPU_KERNEL set to each
# other kernel this CPU has (scalar everywhere, avx2 with AVX2+FMA, avx512 with AVX-512F). The
# element-wise operators are compiled once per ISA by target_clones from one source, so source-level
# undefined behaviour in them shows in whichever clone runs.
per_kernel=(test/native-cpu-reference.test.ts test/native-model.test.ts)
if [ $# -gt 0 ]; then files=("$@"); per_kernel=(); fi
flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
kernels=(scalar)
if [[ " $flags " == *" avx2 "* && " $flags " == *" fma "* ]]; then kernels+=(avx2); fi
if [[ " $flags " == *" avx512f "* ]]; then kernels+=(avx512); fi
run_tests() {  # $1: CRATE_TS_CPU_KERNEL ('' = the addon's own choice); then the test files
  local kernel="$1"
  shift
  echo "test-asan: kernel ${kernel:-auto}: $*"
  CRATE_TS_CPU_KERNEL="$kernel" \
  CRATE_TS_NATIVE_ADDON="$PWD/$out/crate_native.node" \
  LD_PRELOAD="$libasan" \
  ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1" \
  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
    node node_modules/vitest/vitest.mjs run "$@"
}
status=0
run_tests "" "${files[@]}" || status=$?
best=${kernels[${#kernels[@]}-1]}
if [ ${#per_kernel[@]} -gt 0 ]; then
  for k in "${kernels[@]}"; do
    [ "$k" = "$best" ] && continue  # the first pass ran the best kernel
    run_tests "$k" "${per_kernel[@]}" || status=$?
  done
fi
echo "test-asan: kernels ${kernels[*]}; $(( $(date +%s) - t0 )) s in all; exit status $status"
exit $status
