#!/usr/bin/env bash
# The C++/CUDA style of native/ (.clang-format at the repository root):
#   npm run format:native          rewrite every file of native/ in place
#   npm run format:native:check    exit 1, naming the files, when one is not formatted
# native/generated/ is left alone (scripts/gen-ops.mjs writes it; test/optable.test.ts checks it).
# The committed formatting was produced with clang-format 14 (Debian 12: apt-get install clang-format);
# CLANG_FORMAT names another binary.
set -uo pipefail
cd "$(dirname "$0")/.."
cf="${CLANG_FORMAT:-clang-format}"
if ! command -v "$cf" >/dev/null 2>&1; then
  echo "format-native: $cf not found (Debian/Ubuntu: apt-get install clang-format; or set CLANG_FORMAT)"
  exit 1
fi
mapfile -t files < <(find native -path native/generated -prune -o -type f \( -name '*.cc' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' \) -print | sort)
if [ "${1:-}" = "--check" ]; then
  bad=()
  for f in "${files[@]}"; do
    if ! "$cf" --style=file --dry-run --Werror "$f" >/dev/null 2>&1; then bad+=("$f"); fi
  done
  if [ ${#bad[@]} -gt 0 ]; then
    echo "format-native: not formatted (run npm run format:native): ${bad[*]}"
    exit 1
  fi
  echo "format-native: ${#files[@]} files formatted ($("$cf" --version | head -1))"
else
  "$cf" --style=file -i "${files[@]}" && echo "format-native: formatted ${#files[@]} files"
fi
