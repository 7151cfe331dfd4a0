#!/usr/bin/env bash
# Linking and context tags on a simulated facility, scored against its truth.jsonl.
#   1. `scisearch simulate` writes a facility of FILES acquisitions with its user logs,
#      proposals, publications and truth.jsonl;
#   2. `scisearch ingest` catalogs the instrument files; `scisearch add-docs` loads the
#      proposals, the logs and the publications (each load re-links the datasets);
#   3. bench/context_eval.py scores sessions, proposals, publications and tags.
# Usage: bench/context_eval.sh [FILES=2000] [SEED=7]   env: BENCH_DIR (/tmp/scisearch-context), VERBOSE=1 (most missed and spurious tags)
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-2000}; seed=${2:-7}
work=${BENCH_DIR:-/tmp/scisearch-context}
cmake -S . -B build -G Ninja >/dev/null
cmake --build build --target scisearch scisearch-hdf5-worker >/dev/null
rm -rf "$work"; mkdir -p "$work"
build/scisearch simulate --out "$work/facility" --files "$files" --seed "$seed" --size 32
build/scisearch ingest "$work/facility" --no-thumbnails --data-dir "$work/data" 2>&1 | tail -3
build/scisearch add-docs "$work/facility/proposals" --kind proposal --data-dir "$work/data"
build/scisearch add-docs "$work/facility/logs" --kind log --data-dir "$work/data"
build/scisearch add-docs "$work/facility/publications" --kind publication --data-dir "$work/data"
/usr/bin/python3 bench/context_eval.py "$work/data/catalog.sqlite" "$work/facility" ${VERBOSE:+--verbose}
