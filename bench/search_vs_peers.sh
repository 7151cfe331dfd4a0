#!/usr/bin/env bash
# Search at scale: scisearch against SQLite FTS5 and PostgreSQL full-text search, on the same
# RECORDS simulated catalog records and the same query mix, each engine in one process.
#
#   1. Records: `scisearch simulate --catalog-only --files RECORDS` (with REUSE_RECORDS=1, those
#      of an earlier run when the data directory holds exactly RECORDS datasets).
#   2. Queries: bench/search_queries.py samples PER_CLASS queries of each class (free text,
#      fielded, ranges) from the catalog with a fixed seed; every query asks for the 10 best
#      hits and the counts of every facet (instrument, pi, year, mode, format, top 10 tags).
#   3. scisearch: `scisearch reindex` (timed; index size by du), then search_bench in-process
#      through search::Searcher.
#   4. SQLite FTS5 (Debian's libsqlite3): the records built in SQL from catalog.sqlite into a
#      peer database: one text per dataset (path words, instrument, mode, format, detector,
#      tags, PI, proposal title and abstract; / _ - . read as spaces), numeric columns for
#      ranges, facet columns and a tags table. FTS5 with the porter tokenizer, bm25() ranking;
#      B-tree indexes on every filter and range column. Load and index timed apart.
#   5. PostgreSQL (Debian's server, started here on 127.0.0.1 in a temporary cluster under
#      BENCH_DIR, as user postgres when run as root, stopped at the end): the same rows by
#      COPY, a stored tsvector (english configuration) with a GIN index, ts_rank ranking,
#      the same B-tree indexes. Tuning below (PG_SETTINGS).
#   Then search_bench times every query: WARMUP untimed passes over the whole mix, then
#   PASSES timed passes; p50/p90/p99/mean per engine and per class.
#
# Usage: bench/search_vs_peers.sh [RECORDS=1000000]
#   env: BENCH_DIR (/tmp/scisearch-search-bench)  PER_CLASS (100)  WARMUP (1)  PASSES (3)
#        ENGINES ("scisearch fts5 postgres")  BUILD_DIR (build-bench)  REUSE_RECORDS (0)
# Everything it writes stays in BENCH_DIR; the summary is BENCH_DIR/summary.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-1000000}
work=${BENCH_DIR:-/tmp/scisearch-search-bench}
per_class=${PER_CLASS:-100}
warmup=${WARMUP:-1}
passes=${PASSES:-3}
engines=${ENGINES:-"scisearch fts5 postgres"}
build=${BUILD_DIR:-build-bench}
data=$work/data
peer_db=$work/fts5.sqlite
pgdir=$work/pg
# PostgreSQL tuning for a read-mostly benchmark on this machine (2 cores): the whole
# database fits in shared_buffers; each facet GROUP BY and sort gets work_mem; no JIT
# (compiling a plan costs more than these queries save); SSD-like random reads. The
# cluster is disposable, so durability is off (it only speeds up the load). Parallel query
# stays at PostgreSQL's default (up to 2 workers per query): the server may use both cores
# for one query, where scisearch and SQLite use one.
PG_SETTINGS=(
  -c shared_buffers=2GB -c work_mem=64MB -c maintenance_work_mem=1GB
  -c effective_cache_size=8GB -c random_page_cost=1.1 -c jit=off
  -c max_wal_size=8GB -c fsync=off -c synchronous_commit=off -c full_page_writes=off
  -c default_text_search_config=pg_catalog.english
)

scripts/install-deps.sh --bench
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSCISEARCH_TESTS=OFF \
  -DSCISEARCH_BENCH=ON >/dev/null
cmake --build "$build" -j1 --target scisearch search_bench >/dev/null
scisearch=$PWD/$build/scisearch
search_bench=$PWD/$build/bench/search_bench
mkdir -p "$work"
summary=$work/summary.txt
: >"$summary"
say() { echo "$*" | tee -a "$summary"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
mb_of() { du -sm "$1" | cut -f1; }

say "# search_vs_peers: $records records, $(nproc) cores, $(date -u +%FT%TZ)"

# --- 1. Records -----------------------------------------------------------------------
# Made afresh unless REUSE_RECORDS=1 and the data directory holds RECORDS datasets: records
# of an older simulator would not be what this scisearch indexes.
have=0
if [[ ${REUSE_RECORDS:-0} == 1 && -f $data/catalog.sqlite ]]; then
  have=$(sqlite3 "file:$data/catalog.sqlite?mode=ro" "SELECT count(*) FROM datasets" 2>/dev/null \
         || echo 0)
fi
if [[ $have -ne $records ]]; then
  rm -rf "$data"
  t0=$(now)
  "$scisearch" simulate --catalog-only --files "$records" --data-dir "$data" >"$work/simulate.log"
  say "records: $(cat "$work/simulate.log") ($(since "$t0") s)"
else
  say "records: reusing $data ($records datasets)"
fi
catalog=$data/catalog.sqlite
say "catalog: $(mb_of "$catalog") MB"

# --- 2. Queries -----------------------------------------------------------------------
queries=$work/queries.jsonl
/usr/bin/python3 bench/search_queries.py "$catalog" "$queries" --per-class "$per_class" \
  | tee -a "$summary"
say "timing: $warmup untimed warm-up pass(es) over the whole mix, then $passes timed pass(es);" \
    "each query asks for the 10 best hits and all facet counts"

bench_flags=(--queries "$queries" --warmup-passes "$warmup" --passes "$passes")
# Each engine's figures go to results/LABEL.{build,txt,tsv}, with the checksum of the query
# mix they answered (LABEL.sha): a later run of some ENGINES only replaces theirs, and the
# report shows the engines that answered this very mix.
results=$work/results
mkdir -p "$results"
queries_sha=$(sha256sum "$queries" | cut -d' ' -f1)
record_build() {  # record_build LABEL LOAD_S INDEX_S SIZE_MB TEXT_INDEX_MB
  echo "$1|$2|$3|$4|$5" >"$results/$1.build"
}
run_bench() {  # run_bench LABEL search_bench-flags...
  local label=$1; shift
  rm -f "$results/$label".*
  local load_before; load_before=$(cut -d' ' -f1-3 /proc/loadavg)
  "$search_bench" "$@" --label "$label" "${bench_flags[@]}" --per-query "$results/$label.tsv" \
    >"$results/$label.txt"
  echo "$load_before -> $(cut -d' ' -f1-3 /proc/loadavg)" >"$results/$label.load"
  echo "$queries_sha" >"$results/$label.sha"
}

# --- 3. scisearch -----------------------------------------------------------------------
run_scisearch() {
  rm -rf "$data/index"
  t0=$(now)
  "$scisearch" reindex --data-dir "$data" >"$work/reindex.log" 2>&1
  local secs; secs=$(since "$t0")
  local size; size=$(mb_of "$data/index")
  # Facets as scisearch counts them by default (exact over the first 20000 matches, scaled
  # beyond), then exact over every match as the peers count them.
  run_bench scisearch --engine scisearch --data-dir "$data"
  record_build scisearch - "$secs" "$size" "$size"
  run_bench scisearch-exact --engine scisearch --data-dir "$data" --facet-sample 1000000000
}

# --- 4. SQLite FTS5 -----------------------------------------------------------------------
# The text of a dataset: what scisearch indexes of it, as one string.
DOC_SELECT="
SELECT d.id, d.path, d.instrument, p.pi, CAST(substr(d.acquired, 1, 4) AS INTEGER), d.mode,
       d.format, d.magnification, d.beam_energy_kev, CAST(strftime('%s', d.acquired) AS INTEGER),
       replace(replace(replace(replace(
         d.path || ' ' || coalesce(d.instrument, '') || ' ' || coalesce(d.mode, '') || ' ' ||
         coalesce(d.format, '') || ' ' || coalesce(d.detector, '') || ' ' ||
         coalesce((SELECT group_concat(value, ' ; ') FROM doc_tags WHERE dataset_id = d.id), '')
         || ' ' || coalesce(p.pi, '') || ' ' || coalesce(p.title, '') || ' ' ||
         coalesce(p.abstract, ''),
         '/', ' '), '_', ' '), '-', ' '), '.', ' ')
FROM c.datasets d LEFT JOIN c.proposals p ON p.id = d.proposal_id
WHERE d.state = 'ok' ORDER BY d.id"

run_fts5() {
  rm -f "$peer_db"
  t0=$(now)
  sqlite3 "$peer_db" >/dev/null <<SQL
PRAGMA journal_mode = OFF;
PRAGMA synchronous = OFF;
PRAGMA cache_size = -1000000;
ATTACH 'file:$catalog?mode=ro' AS c;
CREATE TABLE docs (
  id INTEGER PRIMARY KEY, path TEXT NOT NULL, instrument TEXT, pi TEXT, year INTEGER,
  mode TEXT, format TEXT, magnification REAL, beam_energy_kev REAL, acquired INTEGER,
  body TEXT NOT NULL);
CREATE TABLE doc_tags (dataset_id INTEGER NOT NULL, value TEXT NOT NULL,
                       PRIMARY KEY (dataset_id, value)) WITHOUT ROWID;
INSERT INTO doc_tags SELECT DISTINCT t.dataset_id, t.value FROM c.tags t
  JOIN c.datasets d ON d.id = t.dataset_id AND d.state = 'ok' WHERE t.state != 'rejected';
INSERT INTO docs $DOC_SELECT;
SQL
  local load; load=$(since "$t0")
  t0=$(now)
  sqlite3 "$peer_db" >/dev/null <<'SQL'
PRAGMA journal_mode = OFF;
PRAGMA synchronous = OFF;
PRAGMA cache_size = -1000000;
CREATE VIRTUAL TABLE docs_fts USING fts5(body, content = 'docs', content_rowid = 'id',
                                         tokenize = 'porter unicode61 remove_diacritics 2');
INSERT INTO docs_fts(rowid, body) SELECT id, body FROM docs;
INSERT INTO docs_fts(docs_fts) VALUES ('optimize');
CREATE INDEX docs_instrument ON docs(instrument);
CREATE INDEX docs_pi ON docs(pi);
CREATE INDEX docs_mode ON docs(mode);
CREATE INDEX docs_format ON docs(format);
CREATE INDEX docs_year ON docs(year);
CREATE INDEX docs_magnification ON docs(magnification);
CREATE INDEX docs_beam_energy ON docs(beam_energy_kev);
CREATE INDEX docs_acquired ON docs(acquired);
CREATE INDEX doc_tags_value ON doc_tags(value, dataset_id);
ANALYZE;
SQL
  local index; index=$(since "$t0")
  local fts_mb
  fts_mb=$(sqlite3 "$peer_db" "SELECT round(sum(pgsize) / 1048576.0) FROM dbstat
                               WHERE name LIKE 'docs_fts%'")
  run_bench fts5 --engine fts5 --fts5-db "$peer_db"
  record_build fts5 "$load" "$index" "$(mb_of "$peer_db")" "${fts_mb%.0}"
}

# --- 5. PostgreSQL ----------------------------------------------------------------------
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
pg_port=""
as_postgres() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}
stop_postgres() {
  if [[ -n $pg_port && -f $pgdir/data/postmaster.pid ]]; then
    as_postgres "$pg_bin/pg_ctl" -D "$pgdir/data" -m fast -w stop >/dev/null || true
  fi
}
trap stop_postgres EXIT

run_postgres() {
  rm -rf "$pgdir"; mkdir -p "$pgdir"
  [[ $(id -u) -eq 0 ]] && chown postgres: "$pgdir"
  as_postgres "$pg_bin/initdb" -D "$pgdir/data" -U postgres --auth=trust -E UTF8 \
    --locale=C.UTF-8 >"$work/initdb.log"
  pg_port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0));
print(s.getsockname()[1])')
  as_postgres "$pg_bin/pg_ctl" -D "$pgdir/data" -l "$pgdir/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $pgdir ${PG_SETTINGS[*]}" start >/dev/null
  local conn="host=127.0.0.1 port=$pg_port user=postgres"
  psql() { command psql -X -q -v ON_ERROR_STOP=1 "$conn dbname=${db:-bench}" "$@"; }
  db=postgres psql -c "CREATE DATABASE bench"
  t0=$(now)
  psql <<'SQL'
CREATE TABLE docs (
  id integer NOT NULL, path text NOT NULL, instrument text, pi text, year integer, mode text,
  format text, magnification float8, beam_energy_kev float8, acquired bigint, body text NOT NULL);
CREATE TABLE doc_tags (dataset_id integer NOT NULL, value text NOT NULL);
SQL
  sqlite3 -csv "$peer_db" "SELECT dataset_id, value FROM doc_tags" \
    | psql -c "COPY doc_tags FROM STDIN WITH (FORMAT csv)"
  sqlite3 -csv "$peer_db" "SELECT id, path, instrument, pi, year, mode, format, magnification,
                                  beam_energy_kev, acquired, body FROM docs ORDER BY id" \
    | psql -c "COPY docs FROM STDIN WITH (FORMAT csv)"
  local load; load=$(since "$t0")
  t0=$(now)
  psql <<'SQL'
ALTER TABLE docs ADD PRIMARY KEY (id);
ALTER TABLE doc_tags ADD PRIMARY KEY (dataset_id, value);
ALTER TABLE docs ADD COLUMN tsv tsvector
  GENERATED ALWAYS AS (to_tsvector('english', body)) STORED;
CREATE INDEX docs_tsv ON docs USING gin (tsv);
CREATE INDEX docs_instrument ON docs (instrument);
CREATE INDEX docs_pi ON docs (pi);
CREATE INDEX docs_mode ON docs (mode);
CREATE INDEX docs_format ON docs (format);
CREATE INDEX docs_year ON docs (year);
CREATE INDEX docs_magnification ON docs (magnification);
CREATE INDEX docs_beam_energy ON docs (beam_energy_kev);
CREATE INDEX docs_acquired ON docs (acquired);
CREATE INDEX doc_tags_value ON doc_tags (value, dataset_id);
VACUUM ANALYZE docs;
VACUUM ANALYZE doc_tags;
SQL
  local index; index=$(since "$t0")
  local sizes
  sizes=$(psql -At -c "SELECT round(pg_database_size('bench') / 1048576.0),
                              round(pg_relation_size('docs_tsv') / 1048576.0)")
  run_bench postgres --engine postgres --pg "$conn dbname=bench"
  record_build postgres "$load" "$index" "${sizes%|*}" "${sizes#*|}"
  stop_postgres
  pg_port=""
}

for engine in $engines; do
  case $engine in
    scisearch) run_scisearch ;;
    fts5) run_fts5 ;;
    postgres)
      [[ -f $peer_db ]] || run_fts5  # PostgreSQL loads the rows the FTS5 peer built
      run_postgres ;;
    *) echo "search_vs_peers: unknown engine '$engine' in ENGINES" >&2; exit 2 ;;
  esac
done

# --- Report -----------------------------------------------------------------------------
labels=()
for label in scisearch scisearch-exact fts5 postgres; do
  [[ -f $results/$label.sha && $(cat "$results/$label.sha") == "$queries_sha" ]] && labels+=("$label")
done
say ""
say "Index build ($records records; load = records into the engine's tables, index = text"
say "index + B-trees + statistics; scisearch reindex reads the catalog and does both):"
printf '%-15s %9s %9s %9s %12s %9s %14s\n' engine load_s index_s total_s records/s size_MB \
  text_index_MB | tee -a "$summary"
for label in "${labels[@]}"; do
  [[ -f $results/$label.build ]] || continue
  IFS='|' read -r name load index size text <"$results/$label.build"
  awk -v n="$name" -v l="$load" -v i="$index" -v s="$size" -v t="$text" -v r="$records" \
    'BEGIN { tot = (l == "-" ? 0 : l) + i;
             printf "%-15s %9s %9.1f %9.1f %12.0f %9s %14s\n", n, l, i, tot, r / tot, s, t }' \
    | tee -a "$summary"
done
say ""
say "Query latency (ms; p50/p90/p99 nearest rank over the timed passes; mean_matches = the"
say "engine's mean number of matching datasets, a check that the engines read queries alike):"
first=1
for label in "${labels[@]}"; do
  if [[ $first -eq 1 ]]; then grep -v '^#' "$results/$label.txt" | head -1 | tee -a "$summary"; fi
  first=0
  grep -v '^#' "$results/$label.txt" | tail -n +2 | tee -a "$summary"
done
say ""
for label in "${labels[@]}"; do
  say "load average (1/5/15 min) before -> after $label: $(cat "$results/$label.load")"
done
# How often two engines agree on the number of matches (first timed pass).
for a in scisearch-exact fts5; do
  for b in fts5 postgres; do
    [[ $a != "$b" && -f $results/$a.tsv && -f $results/$b.tsv ]] || continue
    awk -F'\t' -v a="$a" -v b="$b" '
      FNR == 1 || $4 != 1 { next }
      $1 == a { ta[$2] = $6 }
      $1 == b { tb[$2] = $6 }
      END { n = 0; same = 0; near = 0
            for (q in ta) if (q in tb) { n++; if (ta[q] == tb[q]) same++
              d = ta[q] - tb[q]; if (d < 0) d = -d; m = (ta[q] > tb[q] ? ta[q] : tb[q])
              if (d <= 0.1 * m) near++ }
            printf "matches %s vs %s: equal on %d of %d queries, within 10%% on %d\n",
                   a, b, same, n, near }' "$results/$a.tsv" "$results/$b.tsv" | tee -a "$summary"
  done
done
say "details: $results/*.{txt,tsv}, queries $queries"
