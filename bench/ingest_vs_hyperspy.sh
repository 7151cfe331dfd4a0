#!/usr/bin/env bash
# Ingest rate of scisearch against HyperSpy, the peer most facilities use today.
#
# Builds a corpus of at least FILES files by replicating the real instrument files
# (../shared/data/formats, else testdata/formats) as hard links in a facility-like tree,
# then measures:
#   - scisearch ingest --jobs JOBS over the whole corpus: the metadata pass (every
#     dataset's headers and metadata in the catalog: files/s, MB/s), the thumbnail
#     pass, the whole run and its peak RSS;
#   - the same ingest again (incremental: nothing changed);
#   - HyperSpy 1.7 (Debian's python3-hyperspy, lazy load = metadata only, one Python
#     process) over PEER_FILES of the same files (all of them when PEER_FILES=0).
# Usage: bench/ingest_vs_hyperspy.sh [FILES=10000] [JOBS=auto] [PEER_FILES=2000]
# Environment: BUILD (build folder, default build), BUILD_JOBS (compile jobs, default
# all cores), BENCH_DIR (work folder, default /tmp/scisearch-bench), RUNS (first
# ingests timed, default 3: the ratio uses their median metadata pass).
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-10000}; jobs=${2:-auto}; peer_files=${3:-2000}
jobs_flag=(); [[ $jobs != auto ]] && jobs_flag=(--jobs "$jobs")
work=${BENCH_DIR:-/tmp/scisearch-bench}
build=${BUILD:-build}

scripts/install-deps.sh --bench
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "${BUILD_JOBS:-$(nproc)}" --target scisearch >/dev/null

src=../shared/data/formats
[[ -d $src ]] || src=testdata/formats
rm -rf "$work"; mkdir -p "$work/tree"
per_copy=$(find "$src" -type f ! -name '*.md' | wc -l)
copies=$(( (files + per_copy - 1) / per_copy ))
for ((i = 0; i < copies; i++)); do
  cp -al "$src" "$work/tree/copy$(printf %05d $i)"
done
find "$work/tree" -name '*.md' -delete
n=$(find "$work/tree" -type f | wc -l)
mb=$(du -sLm "$work/tree" | cut -f1)
echo "corpus: $n files, $copies copies of $per_copy ($mb MB on disk: the copies are hard links)"

run_ingest() {  # run_ingest LABEL
  /usr/bin/time -f "%e %M" -o "$work/time.txt" \
    "$build/scisearch" ingest "$work/tree" "${jobs_flag[@]}" --data-dir "$work/data" \
    >"$work/ingest-$1.log" 2>&1 || true
  read -r secs rss_kb < "$work/time.txt"
  # The summary's lines: "read: X MB in S s (...)" and "thumbnails: N made in T s; ..."
  meta_secs=$(grep -o 'read: .* in [0-9.]* s' "$work/ingest-$1.log" | grep -o '[0-9.]* s$' | cut -d' ' -f1)
  read_mb=$(grep -o 'read: *[0-9.]* MB' "$work/ingest-$1.log" | grep -o '[0-9.]* MB' | cut -d' ' -f1)
  thumb_line=$(grep -o 'thumbnails: .*' "$work/ingest-$1.log" | tail -1)
  echo "$1: whole run $(awk -v s="$secs" -v r="$rss_kb" \
    'BEGIN { printf "%.1f s, peak RSS %.0f MB", s, r/1024 }')"
  echo "  metadata pass: $(awk -v n="$n" -v s="$meta_secs" -v b="$read_mb" \
    'BEGIN { printf "%.1f s, %.0f files/s, %.1f MB/s", s, n/s, b/s }')"
  echo "  $thumb_line"
}
# A first ingest into an empty catalog, RUNS times: a two-second pass on a shared
# machine moves by 10% from run to run, so the ratio uses the median pass.
first_runs=()
for ((r = 1; r <= ${RUNS:-3}; r++)); do
  rm -rf "$work/data"
  run_ingest scisearch-first
  first_runs+=("$meta_secs")
done
first_secs=$(printf '%s\n' "${first_runs[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
echo "metadata pass over ${#first_runs[@]} first ingests: ${first_runs[*]} s; median $first_secs s"
run_ingest scisearch-incremental

# HyperSpy: the files a user would load (an .emi stands for its .ser files; .txt sidecars skipped).
find "$work/tree" -type f \( ! -name '*.txt' ! -name '*.ser' -o -name 'X - Au NP EELS_2.ser' \) | sort \
  > "$work/peer-all.txt"
if [[ $peer_files -gt 0 ]]; then head -n "$peer_files" "$work/peer-all.txt" > "$work/peer.txt"
else cp "$work/peer-all.txt" "$work/peer.txt"; fi
/usr/bin/time -f "%e %M" -o "$work/time-peer.txt" /usr/bin/python3 - "$work/peer.txt" <<'PY' \
  > "$work/peer.log" 2>&1 || true
import sys, time, warnings, logging
warnings.filterwarnings("ignore"); logging.disable(logging.CRITICAL)
t0 = time.perf_counter()
import hyperspy.api as hs
t_import = time.perf_counter() - t0
paths = [p.rstrip("\n") for p in open(sys.argv[1])]
ok = failed = 0
t1 = time.perf_counter()
for p in paths:
    try:
        s = hs.load(p, lazy=True)
        for sig in (s if isinstance(s, list) else [s]):
            sig.metadata.as_dictionary(); sig.original_metadata.as_dictionary()
        ok += 1
    except Exception:
        failed += 1
t = time.perf_counter() - t1
print(f"hyperspy: {len(paths)} files ({ok} read, {failed} failed) in {t:.1f} s "
      f"(+{t_import:.1f} s import): {len(paths)/t:.1f} files/s")
PY
cat "$work/peer.log" | tail -1
read -r psecs prss_kb < "$work/time-peer.txt"
peer_rate=$(grep -o '[0-9.]* files/s' "$work/peer.log" | tail -1 | cut -d' ' -f1)
# Both sides read metadata only: compare the peer with our metadata pass, per dataset
# file the peer loads (scisearch's count of files includes every .ser).
ours_rate=$(awk -v n="$(wc -l < "$work/peer-all.txt")" -v s="$first_secs" 'BEGIN { printf "%.1f", n/s }')
echo "peer peak RSS $(awk -v r="$prss_kb" 'BEGIN { printf "%.0f", r/1024 }') MB"
echo "datasets/s: scisearch $ours_rate, hyperspy $peer_rate, ratio $(awk -v a="$ours_rate" -v b="$peer_rate" 'BEGIN { printf "%.1f", a/b }')x"
