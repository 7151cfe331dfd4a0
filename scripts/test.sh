#!/usr/bin/env bash
# Installs what scisearch needs, builds it, and runs every test:
#   1. the GoogleTest suites through ctest (Release-like build),
#   2. the same suites built with AddressSanitizer + UndefinedBehaviorSanitizer,
#   3. a short libFuzzer run of every reader (clang 14).
# Usage: scripts/test.sh [--quick]   (--quick: step 1 only)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

scripts/install-deps.sh

echo "== build and test (RelWithDebInfo)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSCISEARCH_BENCH=ON >/dev/null
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"

[[ "${1:-}" == "--quick" ]] && exit 0

echo "== build and test with AddressSanitizer + UndefinedBehaviorSanitizer"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSCISEARCH_SANITIZE=ON \
  -DSCISEARCH_BENCH=OFF >/dev/null
cmake --build build-asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j "$jobs"

echo "== fuzz every reader briefly (libFuzzer, clang 14)"
CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSCISEARCH_FUZZ=ON -DSCISEARCH_TESTS=OFF -DSCISEARCH_BENCH=OFF >/dev/null
cmake --build build-fuzz -j "$jobs" --target fuzzers
fuzz/run.sh build-fuzz "${SCISEARCH_FUZZ_SECONDS:-20}"
