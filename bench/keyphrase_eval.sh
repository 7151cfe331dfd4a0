#!/usr/bin/env bash
# Keyphrase quality on ../shared/data/keyphrase/inspec-dev (Inspec abstracts with gold
# keyphrases), scored with ../shared/tools/eval_keyphrase.py: F1@5 and F1@10 of
# `scisearch keyphrases --top 10`, the file itself being the IDF corpus.
# Published figures to compare with (protocols differ: see the MANIFEST there):
#   YAKE F1@10 0.316 on all 2,000 Inspec abstracts (YAKE README, LIAAD/yake; Campos et al.,
#   Information Sciences 509, 2020); pke's benchmark on the 500 test abstracts (boudinfl/pke,
#   results.md; uncontrolled gold, stemmed): TextRank F@5 26.91 F@10 33.95, TopicRank
#   F@5 24.57 F@10 28.35.
# Usage: bench/keyphrase_eval.sh [DOCS.jsonl]   (default: the inspec-dev documents)
set -euo pipefail
cd "$(dirname "$0")/.."
docs=${1:-../shared/data/keyphrase/inspec-dev/docs.jsonl}
eval_keyphrase=../shared/tools/eval_keyphrase.py
if [[ ! -f $docs || ! -f $eval_keyphrase ]]; then
  echo "skipped: $docs or $eval_keyphrase absent (../shared not beside the project)"
  exit 0
fi
work=${BENCH_DIR:-/tmp/scisearch-keyphrase}
mkdir -p "$work"

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target scisearch >/dev/null

start=$(date +%s.%N)
build/scisearch keyphrases --in "$docs" --top 10 > "$work/predicted.jsonl"
end=$(date +%s.%N)
/usr/bin/python3 "$eval_keyphrase" "$docs" "$work/predicted.jsonl" > "$work/scores.txt"
awk '/F1@5/{f5=$6} /F1@10/{f10=$6} END {printf "F1@5 %s\nF1@10 %s\n", f5, f10}' "$work/scores.txt"
awk -v s="$start" -v e="$end" 'END {printf "time %.2f s\n", e - s}' /dev/null
