#!/usr/bin/env bash
# How fast the facility simulator writes: FILES acquisitions at the default image size
# (files/s, MB/s, peak RSS), then RECORDS catalog records with --catalog-only.
# Usage: bench/simulate_rate.sh [FILES=10000] [RECORDS=0]   (RECORDS=1000000 for the issue's figure)
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-10000}; records=${2:-0}
work=${BENCH_DIR:-/tmp/scisearch-simulate-bench}
scripts/install-deps.sh --bench
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target scisearch >/dev/null
rm -rf "$work"; mkdir -p "$work"

/usr/bin/time -f "%e %M" -o "$work/time.txt" \
  build/scisearch simulate --out "$work/facility" --files "$files" > "$work/simulate.log"
read -r secs rss_kb < "$work/time.txt"
cat "$work/simulate.log"
mb=$(du -sm "$work/facility" | cut -f1)
echo "simulate: $files acquisitions, $(find "$work/facility" -type f | wc -l) files, $mb MB in $secs s:" \
  "$(awk -v n="$files" -v s="$secs" -v m="$mb" -v r="$rss_kb" \
     'BEGIN { printf "%.0f acquisitions/s, %.0f MB/s, peak RSS %.0f MB", n/s, m/s, r/1024 }')"

if [[ $records -gt 0 ]]; then
  /usr/bin/time -f "%e %M" -o "$work/time.txt" \
    build/scisearch simulate --catalog-only --files "$records" --data-dir "$work/catalog" \
    > "$work/catalog.log"
  read -r secs rss_kb < "$work/time.txt"
  cat "$work/catalog.log"
  echo "catalog-only: $records records in $secs s:" \
    "$(awk -v n="$records" -v s="$secs" -v r="$rss_kb" \
       'BEGIN { printf "%.0f records/s, peak RSS %.0f MB", n/s, r/1024 }'),"  \
    "catalog $(du -sm "$work/catalog" | cut -f1) MB"
fi
