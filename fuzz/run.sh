#!/usr/bin/env bash
# Runs every reader's fuzzer for SECONDS each, seeded with the real files of that
# format (testdata/, and ../shared/data/formats when present).
# Usage: fuzz/run.sh BUILD_DIR SECONDS
set -euo pipefail
build=${1:?build dir}; seconds=${2:-20}
root=$(cd "$(dirname "$0")/.." && pwd)
shared="$root/../shared/data/formats"
declare -A patterns=(
  [tia]='*.ser' [emi]='*.emi' [dm3]='*.dm3' [dm4]='*.dm4' [emd]='*.emd'
  [mrc]='*.mrc' [tiff]='*.tif' [png]='*.png' [jpeg]='*.jpg' [gzip]='*.gz' [context]='')
# A damaged HDF5 file can send the library into a loop; the EMD reader then gives up
# after SCISEARCH_HDF5_TIMEOUT seconds (twice: it retries once on a fresh worker). Keep
# that well below libFuzzer's -timeout, so the reader's own deadline is what is exercised.
export SCISEARCH_HDF5_TIMEOUT=${SCISEARCH_HDF5_TIMEOUT:-3}
status=0
for name in "${!patterns[@]}"; do
  bin="$build/fuzz/fuzz_$name"
  [[ -x "$bin" ]] || { echo "fuzz: missing $bin" >&2; status=1; continue; }
  corpus=$(mktemp -d)
  if [[ $name == context ]]; then
    # Seeds of the text the context stage reads: a log, a path, prose with chemistry.
    printf 'user,pi,proposal,start,end,notes\r\njs,aa,P-1,2011-10-13T09:00,13/10/2011 17:00,"PbSe, ""cubes"""\r\n' \
      > "$corpus/log.csv"
    printf 'TitanX/Ferreira/2012/20121011 - fau crystal 2/17.57.52 Spectrum Acquire_0008_1.ser' \
      > "$corpus/path.txt"
    printf 'In this work, La0.7Sr0.3MnO3 and CdSe@ZnS (doi 10.1021/nl.5b01234) were imaged by HAADF.' \
      > "$corpus/prose.txt"
  fi
  for dir in "$root/testdata" "$shared"; do
    [[ -n ${patterns[$name]} && -d "$dir" ]] &&
      find "$dir" -name "${patterns[$name]}" -size -3M -exec cp {} "$corpus/" \; 2>/dev/null || true
  done
  # Keep the seeds few and small so each run explores instead of re-reading big files.
  artifacts="$build/fuzz-artifacts/$name/"; mkdir -p "$artifacts"
  # A fixed seed makes CI's short run repeat the one checked before committing; set
  # SCISEARCH_FUZZ_SEED (0 = random) for longer exploratory runs.
  if "$bin" "$corpus" -seed="${SCISEARCH_FUZZ_SEED:-1}" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
      -max_len=262144 -artifact_prefix="$artifacts" -print_final_stats=1 >"$build/fuzz-$name.log" 2>&1; then
    echo "fuzz $name: ok ($(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$build/fuzz-$name.log" | grep -o '[0-9]*$') runs)"
  else
    echo "fuzz $name: FAILED — see $build/fuzz-$name.log" >&2
    tail -40 "$build/fuzz-$name.log" >&2
    status=1
  fi
  rm -rf "$corpus"
done
exit $status
