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
[ $# -gt 0 ] && files=("$@")
CRATE_TS_NATIVE_ADDON="$PWD/$out/crate_native.node" \
LD_PRELOAD="$libasan" \
ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1" \
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
  node node_modules/vitest/vitest.mjs run "${files[@]}"
status=$?
echo "test-asan: $(( $(date +%s) - t0 )) s in all; exit status $status"
exit $status
