#!/usr/bin/env bash
# Ranking quality on the classic IR collections in ../shared/data/ir (documents,
# queries, relevance judgments), scored with ../shared/tools/eval_ir.py: scisearch's
# full ranking next to plain BM25 on the same index (same tokens and stemming).
# Usage: bench/ir_eval.sh [COLLECTION_DIR ...]   (default: every folder of ../shared/data/ir)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${BENCH_DIR:-/tmp/scisearch-ir}
eval_ir=../shared/tools/eval_ir.py
collections=("$@")
if [[ ${#collections[@]} -eq 0 ]]; then
  for d in ../shared/data/ir/*/; do [[ -f $d/docs.jsonl ]] && collections+=("${d%/}"); done
fi
[[ ${#collections[@]} -gt 0 ]] || { echo "no collections (../shared/data/ir absent)" >&2; exit 1; }

scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target scisearch >/dev/null

printf '%-10s %-8s %8s %8s %8s %8s\n' collection ranking MAP nDCG@10 P@10 R@100
for c in "${collections[@]}"; do
  name=$(basename "$c")
  rm -rf "$work/$name"; mkdir -p "$work/$name"
  build/scisearch add-docs "$c/docs.jsonl" --kind publication --data-dir "$work/$name/data" \
    2>"$work/$name/add-docs.log"
  for ranking in bm25 full; do
    build/scisearch search --queries "$c/queries.jsonl" --format trec --top 1000 \
      --run-tag "scisearch-$ranking" --ranking "$ranking" --data-dir "$work/$name/data" \
      > "$work/$name/$ranking.trec"
    /usr/bin/python3 "$eval_ir" "$c/qrels.tsv" "$work/$name/$ranking.trec" > "$work/$name/$ranking.eval"
    read -r map ndcg p10 r100 < <(awk '/^MAP/{m=$2} /^nDCG@10/{n=$2} /^P@10/{p=$2} /^Recall@100/{r=$2}
      END {print m, n, p, r}' "$work/$name/$ranking.eval")
    printf '%-10s %-8s %8s %8s %8s %8s\n' "$name" "$ranking" "$map" "$ndcg" "$p10" "$r100"
  done
done
