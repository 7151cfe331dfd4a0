#!/usr/bin/env bash
# The vision stage, measured (issue 7). Writes everything under BENCH_DIR and prints a summary.
#   1. uhcs3 (../shared/data/images/uhcs3, real SEM micrographs, 3 expert classes): grouped,
#      stratified FOLDS-fold cross-validation of (a) a CNN trained from scratch; after step 2,
#      (b) the stage-1 layers frozen + a new head, (c) the same with the last block fine-tuned;
#      each with the texture head blended in, and each head alone.
#   2. A simulated facility of FILES acquisitions (`scisearch simulate`, 192 px images),
#      ingested; stage 1 (`vision pretrain`) on the modes its metadata tells: the held-out
#      accuracy is the mode accuracy from pixels alone (held out by session folder).
#   3. bench/vision_curve.py: image-tag precision/recall against truth.jsonl with and without
#      the frozen stage-1 layers as the expert labels grow (LABELS).
#   4. Inference: `vision tag --redo` over the facility (images/s, batched as during a tag
#      pass, file reading included) and its peak RSS; `vision predict` start-up.
# Usage: bench/vision_eval.sh [FILES=3000] [EPOCHS=12] [FOLDS=5]
#   EPOCHS is for the simulated facility; uhcs3 trains UHCS_EPOCHS (30, the default of training).
#   env: BENCH_DIR (/tmp/scisearch-vision-bench) LABELS (50,200,1000) SKIP_UHCS (0) UHCS_EPOCHS
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-3000}; epochs=${2:-12}; folds=${3:-5}
work=${BENCH_DIR:-/tmp/scisearch-vision-bench}
labels=${LABELS:-50,200,1000}
uhcs=../shared/data/images/uhcs3

scripts/install-deps.sh
cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DSCISEARCH_TESTS=OFF \
  -DSCISEARCH_BENCH=ON >/dev/null
cmake --build build-bench -j "$(nproc)" --target scisearch scisearch-vision >/dev/null
bin=$PWD/build-bench/scisearch
mkdir -p "$work"
summary=$work/summary.txt
echo "# vision_eval: $(date -u +%FT%TZ), $(nproc) cores, FILES=$files EPOCHS=$epochs FOLDS=$folds" \
  | tee "$summary"

evaluate() {  # evaluate NAME [extra args]
  local name=$1; shift
  "$bin" vision evaluate --from-folders "$uhcs" --groups "$uhcs/split_shared.csv" \
    --folds "$folds" --epochs "${UHCS_EPOCHS:-30}" "$@" >"$work/uhcs-$name.txt" \
    2>"$work/uhcs-$name.log"
  # The accuracy line, then each head alone and the texture shares the folds chose.
  echo "uhcs3 ($name): $(head -2 "$work/uhcs-$name.txt" | paste -sd ' ')" | tee -a "$summary"
}

if [[ -d $uhcs && ${SKIP_UHCS:-0} != 1 ]]; then
  evaluate a-scratch
else
  echo "uhcs3: $uhcs absent; skipped" | tee -a "$summary"
fi

rm -rf "$work/facility" "$work/data"
"$bin" simulate --out "$work/facility" --files "$files" --size 192 --seed 7 >/dev/null
"$bin" ingest "$work/facility" --data-dir "$work/data" --no-thumbnails >/dev/null 2>&1
/usr/bin/time -f "%e s, peak RSS %M KB" -o "$work/pretrain.time" \
  "$bin" vision pretrain --data-dir "$work/data" --model "$work/stage1.model" \
  --max-per-mode 200 --epochs "$epochs" >"$work/pretrain.txt" 2>"$work/pretrain.log"
echo "stage 1 (modes from metadata): $(grep -E '^[0-9]+ images' "$work/pretrain.txt")" \
  | tee -a "$summary"
echo "  $(grep 'held out' "$work/pretrain.txt") ($(cat "$work/pretrain.time"))" | tee -a "$summary"

if [[ -d $uhcs && ${SKIP_UHCS:-0} != 1 ]]; then
  evaluate b-frozen --pretrained "$work/stage1.model"
  evaluate c-fine-tuned --pretrained "$work/stage1.model" --fine-tune
fi

/usr/bin/python3 bench/vision_curve.py --scisearch "$bin" --data "$work/data" \
  --facility "$work/facility" --stage1 "$work/stage1.model" --work "$work/curve" \
  --labels "$labels" --epochs "$epochs" | tee -a "$summary"

/usr/bin/time -f "%e s, peak RSS %M KB" -o "$work/tag.time" \
  "$bin" vision tag --redo --model "$work/stage1.model" --data-dir "$work/data" \
  >"$work/tag.txt" 2>"$work/tag.log"
echo "tag pass: $(grep '^vision:' "$work/tag.txt") ($(cat "$work/tag.time"))" | tee -a "$summary"
one=$(find "$work/facility" -name '*.tif' -print -quit)  # not | head: SIGPIPE under pipefail
/usr/bin/time -f "%e s" -o "$work/predict.time" \
  "$bin" vision predict --model "$work/stage1.model" "$one" >/dev/null
echo "one predict process (model load + one file): $(cat "$work/predict.time")" \
  | tee -a "$summary"
