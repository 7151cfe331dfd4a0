// Query latency of one search engine over the benchmark's query mix, in one process.
//
//   search_bench --engine scisearch --data-dir D          --queries Q.jsonl
//   search_bench --engine fts5      --fts5-db PEER.sqlite --queries Q.jsonl
//   search_bench --engine postgres  --pg "host=127.0.0.1 port=P user=postgres dbname=bench"
//                --queries Q.jsonl
//   options: --warmup-passes N (1) --passes N (3) --per-query FILE.tsv --label NAME
//            --facet-sample N (scisearch: count facets exactly over up to N matches)
//            --recent-matches N (scisearch: Query::recent_matches; 0 ranks every match)
//            --dump-results FILE.jsonl (scisearch: after the timed passes, each query's whole
//            answer, hits and facets, as JSON: two builds' answers can be compared)
//
// Q.jsonl is written by bench/search_queries.py: each line holds the scisearch query
// text and the same query in structured form (terms, phrases, filters, ranges), from
// which the SQL of the peers is built here. Every engine answers every query the same
// way: the 10 best hits by its own ranking, the total number of matches, and the counts
// of every facet over all matches (instrument, pi, year, mode, format, top 10 tags).
//
// Each query is timed alone with steady_clock, from the query text to the last row
// read: for scisearch Searcher::Search (parsing included); for the peers statement
// preparation (SQLite) or parse/plan (PostgreSQL, one round trip over loopback) and
// execution. After the warm-up passes (untimed) come the timed passes; the figures are
// per query class and over all: p50, p90, p99 (nearest rank), mean and max in ms, and
// the mean number of matches, so that engines reading a query differently show it.
//
// bench/search_vs_peers.sh builds the three engines' indexes and runs this program.
#include <libpq-fe.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "catalog/catalog.h"
#include "common/status.h"
#include "search/search.h"

namespace {

using scisearch::Result;
using scisearch::Status;
namespace fs = std::filesystem;

// --- Queries -------------------------------------------------------------------

// An inclusive range on a numeric column; an absent end is open.
struct ColumnRange {
  std::string column;  // magnification, beam_energy_kev or acquired
  std::optional<double> low, high;
};

struct BenchQuery {
  std::string id;
  std::string query_class;  // free, fielded, range
  std::string text;         // scisearch's query syntax
  std::vector<std::string> terms;
  std::vector<std::string> phrases;                          // words joined by spaces
  std::vector<std::pair<std::string, std::string>> filters;  // field -> exact value
  std::vector<ColumnRange> ranges;
};

// The columns a structured query may name, and only those: they go into SQL text.
bool IsFilterField(const std::string& f) {
  return f == "instrument" || f == "pi" || f == "mode" || f == "format" || f == "tag";
}
bool IsRangeColumn(const std::string& c) {
  return c == "magnification" || c == "beam_energy_kev" || c == "acquired";
}

Result<BenchQuery> ParseQuery(const std::string& line, int line_number) {
  const std::string where = "line " + std::to_string(line_number);
  nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return Status::InvalidArgument(where + ": not a JSON object");
  auto text_field = [&](const char* name) -> Result<std::string> {
    auto it = j.find(name);
    if (it == j.end() || !it->is_string()) {
      return Status::InvalidArgument(where + ": field '" + name + "' missing or not a string");
    }
    return it->get<std::string>();
  };
  BenchQuery q;
  SCISEARCH_ASSIGN_OR_RETURN(q.id, text_field("id"));
  SCISEARCH_ASSIGN_OR_RETURN(q.query_class, text_field("class"));
  SCISEARCH_ASSIGN_OR_RETURN(q.text, text_field("text"));
  if (auto it = j.find("terms"); it != j.end() && it->is_array()) {
    for (const auto& t : *it) {
      if (!t.is_string()) return Status::InvalidArgument(where + ": terms: not a string");
      q.terms.push_back(t.get<std::string>());
    }
  }
  if (auto it = j.find("phrases"); it != j.end() && it->is_array()) {
    for (const auto& p : *it) {
      if (!p.is_array()) return Status::InvalidArgument(where + ": phrases: not a list of words");
      std::string phrase;
      for (const auto& w : p) {
        if (!w.is_string()) return Status::InvalidArgument(where + ": phrases: not a string");
        phrase += (phrase.empty() ? "" : " ") + w.get<std::string>();
      }
      q.phrases.push_back(phrase);
    }
  }
  if (auto it = j.find("filters"); it != j.end() && it->is_object()) {
    for (const auto& [field, value] : it->items()) {
      if (!IsFilterField(field) || !value.is_string()) {
        return Status::InvalidArgument(where + ": filters: unknown field or non-text value '" +
                                       field + "'");
      }
      q.filters.emplace_back(field, value.get<std::string>());
    }
  }
  if (auto it = j.find("ranges"); it != j.end() && it->is_object()) {
    for (const auto& [column, bounds] : it->items()) {
      if (!IsRangeColumn(column) || !bounds.is_array() || bounds.size() != 2) {
        return Status::InvalidArgument(where + ": ranges: '" + column +
                                       "' is not a known column with [low, high]");
      }
      ColumnRange r{column, std::nullopt, std::nullopt};
      if (bounds[0].is_number()) r.low = bounds[0].get<double>();
      if (bounds[1].is_number()) r.high = bounds[1].get<double>();
      q.ranges.push_back(std::move(r));
    }
  }
  return q;
}

Result<std::vector<BenchQuery>> ReadQueries(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return Status::IoError(path.string() + ": cannot open");
  std::vector<BenchQuery> out;
  std::string line;
  int line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    if (line.empty()) continue;
    Result<BenchQuery> q = ParseQuery(line, line_number);
    if (!q.ok()) return q.status().WithContext(path.string());
    out.push_back(std::move(*q));
  }
  if (out.empty()) return Status::InvalidArgument(path.string() + ": no queries");
  return out;
}

// --- Engines -------------------------------------------------------------------

// What an engine returned for one query, for the report and the cross-engine check.
struct Answer {
  int64_t total = 0;  // matching datasets
  int64_t hits = 0;   // hits returned (at most 10)
  int64_t facet_values = 0;
};

class Engine {
 public:
  virtual ~Engine() = default;
  virtual Result<Answer> Run(const BenchQuery& query) = 0;
  // The engine's whole answer to `query` as one JSON text (--dump-results), for comparing
  // two builds' hits and facets. kUnsupported where the engine has no such form.
  virtual Result<std::string> Dump(const BenchQuery& query) {
    return Status::Unsupported("--dump-results: only for --engine scisearch");
  }
};

class ScisearchEngine : public Engine {
 public:
  // facet_sample 0, recent_matches -1: scisearch's defaults.
  static Result<std::unique_ptr<Engine>> Open(const fs::path& data_dir, int64_t facet_sample,
                                              int64_t recent_matches) {
    auto engine = std::unique_ptr<ScisearchEngine>(new ScisearchEngine());
    SCISEARCH_ASSIGN_OR_RETURN(engine->catalog_, scisearch::catalog::Catalog::Open(data_dir));
    SCISEARCH_ASSIGN_OR_RETURN(engine->searcher_,
                               scisearch::search::Searcher::Open(*engine->catalog_));
    engine->facet_sample_ = facet_sample;
    engine->recent_matches_ = recent_matches;
    return std::unique_ptr<Engine>(std::move(engine));
  }

  Result<Answer> Run(const BenchQuery& query) override {
    SCISEARCH_ASSIGN_OR_RETURN(scisearch::search::Results results, Search(query));
    Answer a;
    a.total = results.total;
    a.hits = static_cast<int64_t>(results.hits.size());
    for (const auto& f : results.facets) a.facet_values += static_cast<int64_t>(f.values.size());
    return a;
  }

  Result<std::string> Dump(const BenchQuery& query) override {
    SCISEARCH_ASSIGN_OR_RETURN(scisearch::search::Results results, Search(query));
    results.seconds = 0;  // the same answer twice compares equal
    return scisearch::search::ResultsToJson(results);
  }

 private:
  ScisearchEngine() = default;

  Result<scisearch::search::Results> Search(const BenchQuery& query) {
    scisearch::search::Query q;
    q.text = query.text;
    q.kind = "dataset";  // the peers hold datasets only
    q.limit = 10;
    q.facets = true;
    if (facet_sample_ > 0) q.facet_sample = facet_sample_;
    if (recent_matches_ >= 0) q.recent_matches = recent_matches_;
    return searcher_->Search(q);
  }

  // Declared first so that it is destroyed last: the Searcher uses it.
  std::unique_ptr<scisearch::catalog::Catalog> catalog_;
  std::unique_ptr<scisearch::search::Searcher> searcher_;
  int64_t facet_sample_ = 0;
  int64_t recent_matches_ = -1;
};

// The SQL both peers share: the matches of the query, materialized once per statement
// (a CTE), then the 10 best, one GROUP BY per facet, the top tags and the count.
// `match_from_where` names the tables and conditions of the match (alias d for docs)
// and `score` the rank expression; `best_first` orders the hits. `matches_first_join`
// joins the matches to their tags walking the matches (SQLite's CROSS JOIN fixes that
// order; PostgreSQL's planner chooses on its own).
struct SqlDialect {
  std::string text_type, number_type, matches_first_join;
};
const SqlDialect kSqlite{"TEXT", "REAL", "CROSS JOIN"};
const SqlDialect kPostgres{"text", "float8", "JOIN"};

std::string FacetedSql(const std::string& match_from_where, const std::string& score,
                       const std::string& best_first, const SqlDialect& dialect) {
  const std::string& text_type = dialect.text_type;
  const std::string& count_type = dialect.number_type;
  auto facet = [&](const std::string& column) {
    return " UNION ALL SELECT '" + column + "', CAST(" + column + " AS " + text_type +
           "), CAST(count(*) AS " + count_type + ") FROM m GROUP BY " + column;
  };
  return "WITH m AS MATERIALIZED (SELECT d.id, d.instrument, d.pi, d.year, d.mode, d.format, " +
         score + " AS score " + match_from_where + ") SELECT 'hit', CAST(id AS " + text_type +
         "), CAST(score AS " + count_type + ") FROM (SELECT id, score FROM m ORDER BY " +
         best_first + " LIMIT 10) AS best" + facet("instrument") + facet("pi") + facet("year") +
         facet("mode") + facet("format") + " UNION ALL SELECT 'tag', value, CAST(n AS " +
         count_type + ") FROM (SELECT t.value, count(*) AS n FROM m " + dialect.matches_first_join +
         " doc_tags t ON t.dataset_id = m.id GROUP BY t.value ORDER BY n DESC, t.value LIMIT 10) "
         "AS tags"
         " UNION ALL SELECT 'total', NULL, CAST(count(*) AS " +
         count_type + ") FROM m";
}

// The filter and range conditions on docs d, with a placeholder per value made by
// `placeholder` (which also records the value to bind).
template <typename Placeholder>
std::string Conditions(const BenchQuery& q, Placeholder&& placeholder) {
  std::string sql;
  for (const auto& [field, value] : q.filters) {
    sql += " AND ";
    if (field == "tag") {
      sql += "EXISTS (SELECT 1 FROM doc_tags ft WHERE ft.dataset_id = d.id AND ft.value = " +
             placeholder(value) + ")";
    } else {
      sql += "d." + field + " = " + placeholder(value);
    }
  }
  auto number = [](double v) {
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%.17g", v);
    return std::string(buffer);
  };
  for (const ColumnRange& r : q.ranges) {
    if (r.low) sql += " AND d." + r.column + " >= " + placeholder(number(*r.low));
    if (r.high) sql += " AND d." + r.column + " <= " + placeholder(number(*r.high));
  }
  return sql;
}

class Fts5Engine : public Engine {
 public:
  static Result<std::unique_ptr<Engine>> Open(const fs::path& db_path) {
    auto engine = std::unique_ptr<Fts5Engine>(new Fts5Engine());
    if (sqlite3_open_v2(db_path.c_str(), &engine->db_, SQLITE_OPEN_READONLY, nullptr) !=
        SQLITE_OK) {
      return Status::IoError(db_path.string() + ": cannot open: " +
                             (engine->db_ ? sqlite3_errmsg(engine->db_) : "out of memory"));
    }
    // A 1 GB page cache and the file mapped: the whole peer database stays in memory,
    // as scisearch's index stays in the page cache.
    for (const char* pragma : {"PRAGMA cache_size = -1000000", "PRAGMA mmap_size = 8000000000",
                               "PRAGMA temp_store = MEMORY"}) {
      if (sqlite3_exec(engine->db_, pragma, nullptr, nullptr, nullptr) != SQLITE_OK) {
        return Status::Internal(db_path.string() + ": " + pragma + ": " +
                                sqlite3_errmsg(engine->db_));
      }
    }
    return std::unique_ptr<Engine>(std::move(engine));
  }
  ~Fts5Engine() override { sqlite3_close_v2(db_); }

  Result<Answer> Run(const BenchQuery& q) override {
    std::vector<std::string> values;
    auto placeholder = [&](const std::string& v) {
      values.push_back(v);
      return "?" + std::to_string(values.size());
    };
    std::string sql;
    if (q.terms.empty() && q.phrases.empty()) {
      sql = FacetedSql("FROM docs d WHERE 1" + Conditions(q, placeholder), "0.0", "id", kSqlite);
    } else {
      // Every term and phrase as an FTS5 string (implicit AND); their words are
      // letters and digits, so the quotes need no escaping.
      std::string match;
      for (const std::string& t : q.terms) match += (match.empty() ? "\"" : " \"") + t + "\"";
      for (const std::string& p : q.phrases) match += (match.empty() ? "\"" : " \"") + p + "\"";
      const std::string match_placeholder = placeholder(match);
      sql = FacetedSql("FROM docs_fts JOIN docs d ON d.id = docs_fts.rowid WHERE docs_fts MATCH " +
                           match_placeholder + Conditions(q, placeholder),
                       "bm25(docs_fts)", "score, id", kSqlite);
    }
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), static_cast<int>(sql.size()), &raw, nullptr) !=
        SQLITE_OK) {
      return Status::Internal(q.id + ": fts5: prepare: " + sqlite3_errmsg(db_));
    }
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> stmt(raw, sqlite3_finalize);
    for (size_t i = 0; i < values.size(); ++i) {
      sqlite3_bind_text(stmt.get(), static_cast<int>(i + 1), values[i].c_str(), -1,
                        SQLITE_TRANSIENT);
    }
    Answer a;
    int rc;
    while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
      const std::string_view kind(
          reinterpret_cast<const char*>(sqlite3_column_text(stmt.get(), 0)));
      if (kind == "hit") {
        ++a.hits;
      } else if (kind == "total") {
        a.total = sqlite3_column_int64(stmt.get(), 2);
      } else {
        ++a.facet_values;
      }
    }
    if (rc != SQLITE_DONE) return Status::Internal(q.id + ": fts5: " + sqlite3_errmsg(db_));
    return a;
  }

 private:
  Fts5Engine() = default;
  sqlite3* db_ = nullptr;
};

class PostgresEngine : public Engine {
 public:
  static Result<std::unique_ptr<Engine>> Open(const std::string& conninfo) {
    auto engine = std::unique_ptr<PostgresEngine>(new PostgresEngine());
    engine->conn_ = PQconnectdb(conninfo.c_str());
    if (engine->conn_ == nullptr || PQstatus(engine->conn_) != CONNECTION_OK) {
      return Status::IoError("postgres: cannot connect with '" + conninfo +
                             "': " + (engine->conn_ ? PQerrorMessage(engine->conn_) : "no memory"));
    }
    return std::unique_ptr<Engine>(std::move(engine));
  }
  ~PostgresEngine() override { PQfinish(conn_); }

  Result<Answer> Run(const BenchQuery& q) override {
    std::vector<std::string> values;
    auto placeholder = [&](const std::string& v) {
      values.push_back(v);
      return "$" + std::to_string(values.size());
    };
    std::string sql;
    if (q.terms.empty() && q.phrases.empty()) {
      sql =
          FacetedSql("FROM docs d WHERE true" + Conditions(q, placeholder), "0.0", "id", kPostgres);
    } else {
      std::string tsquery;
      if (!q.terms.empty()) {
        std::string words;
        for (const std::string& t : q.terms) words += (words.empty() ? "" : " ") + t;
        tsquery = "plainto_tsquery('english', " + placeholder(words) + ")";
      }
      for (const std::string& p : q.phrases) {
        tsquery += (tsquery.empty() ? "" : " && ") + std::string("phraseto_tsquery('english', ") +
                   placeholder(p) + ")";
      }
      sql = FacetedSql("FROM docs d, (SELECT " + tsquery + " AS q) AS tq WHERE d.tsv @@ tq.q" +
                           Conditions(q, placeholder),
                       "ts_rank(d.tsv, tq.q)", "score DESC, id", kPostgres);
    }
    std::vector<const char*> params;
    for (const std::string& v : values) params.push_back(v.c_str());
    std::unique_ptr<PGresult, void (*)(PGresult*)> result(
        PQexecParams(conn_, sql.c_str(), static_cast<int>(params.size()), nullptr, params.data(),
                     nullptr, nullptr, 0),
        PQclear);
    if (PQresultStatus(result.get()) != PGRES_TUPLES_OK) {
      return Status::Internal(q.id + ": postgres: " + PQerrorMessage(conn_));
    }
    Answer a;
    for (int row = 0; row < PQntuples(result.get()); ++row) {
      const std::string_view kind = PQgetvalue(result.get(), row, 0);
      if (kind == "hit") {
        ++a.hits;
      } else if (kind == "total") {
        a.total = std::atoll(PQgetvalue(result.get(), row, 2));
      } else {
        ++a.facet_values;
      }
    }
    return a;
  }

 private:
  PostgresEngine() = default;
  PGconn* conn_ = nullptr;
};

// --- Timing and report -----------------------------------------------------------

struct Sample {
  double ms;
  int64_t total;
};

// Nearest-rank percentile of sorted `ms`.
double Percentile(const std::vector<double>& sorted, double p) {
  const size_t rank =
      static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

void PrintRow(const std::string& engine, const std::string& query_class,
              const std::vector<Sample>& samples) {
  std::vector<double> ms;
  double sum = 0, total_sum = 0;
  for (const Sample& s : samples) {
    ms.push_back(s.ms);
    sum += s.ms;
    total_sum += static_cast<double>(s.total);
  }
  std::sort(ms.begin(), ms.end());
  const double n = static_cast<double>(ms.size());
  std::printf("%-15s %-8s %6zu %9.2f %9.2f %9.2f %9.2f %9.2f %12.0f\n", engine.c_str(),
              query_class.c_str(), ms.size(), Percentile(ms, 50), Percentile(ms, 90),
              Percentile(ms, 99), sum / n, ms.back(), total_sum / n);
}

struct Options {
  std::string engine;
  std::string label;  // the engine's name in the report; default the engine
  fs::path queries, data_dir, fts5_db, per_query, dump_results;
  std::string pg;
  int warmup_passes = 1, passes = 3;
  int64_t facet_sample = 0;     // 0 = scisearch's default
  int64_t recent_matches = -1;  // -1 = scisearch's default
};

constexpr const char* kUsage =
    "usage: search_bench --engine scisearch|fts5|postgres --queries Q.jsonl\n"
    "         [--data-dir D] [--fts5-db F] [--pg CONNINFO]\n"
    "         [--warmup-passes N] [--passes N] [--facet-sample N] [--recent-matches N]\n"
    "         [--per-query OUT.tsv] [--dump-results OUT.jsonl]\n";

Result<Options> ParseOptions(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) return Status::InvalidArgument(flag + ": needs a value");
    const std::string value = argv[++i];
    auto count = [&](int64_t min) -> Result<int64_t> {
      char* end = nullptr;
      const long long v = std::strtoll(value.c_str(), &end, 10);
      if (end == value.c_str() || *end != '\0' || v < min) {
        return Status::InvalidArgument(flag + ": '" + value +
                                       "' is not a whole number >= " + std::to_string(min));
      }
      return static_cast<int64_t>(v);
    };
    if (flag == "--engine") {
      o.engine = value;
    } else if (flag == "--queries") {
      o.queries = value;
    } else if (flag == "--data-dir") {
      o.data_dir = value;
    } else if (flag == "--fts5-db") {
      o.fts5_db = value;
    } else if (flag == "--pg") {
      o.pg = value;
    } else if (flag == "--label") {
      o.label = value;
    } else if (flag == "--per-query") {
      o.per_query = value;
    } else if (flag == "--dump-results") {
      o.dump_results = value;
    } else if (flag == "--warmup-passes") {
      SCISEARCH_ASSIGN_OR_RETURN(const int64_t v, count(0));
      o.warmup_passes = static_cast<int>(v);
    } else if (flag == "--passes") {
      SCISEARCH_ASSIGN_OR_RETURN(const int64_t v, count(1));
      o.passes = static_cast<int>(v);
    } else if (flag == "--facet-sample") {
      SCISEARCH_ASSIGN_OR_RETURN(o.facet_sample, count(1));
    } else if (flag == "--recent-matches") {
      SCISEARCH_ASSIGN_OR_RETURN(o.recent_matches, count(0));
    } else {
      return Status::InvalidArgument(flag + ": unknown option");
    }
  }
  if (o.queries.empty()) return Status::InvalidArgument("--queries: required");
  if (o.label.empty()) o.label = o.engine;
  if (o.engine == "scisearch" && o.data_dir.empty()) {
    return Status::InvalidArgument("--data-dir: required with --engine scisearch");
  }
  if (o.engine == "fts5" && o.fts5_db.empty()) {
    return Status::InvalidArgument("--fts5-db: required with --engine fts5");
  }
  if (o.engine == "postgres" && o.pg.empty()) {
    return Status::InvalidArgument("--pg: required with --engine postgres");
  }
  if (o.engine != "scisearch" && o.engine != "fts5" && o.engine != "postgres") {
    return Status::InvalidArgument("--engine: '" + o.engine +
                                   "' is not scisearch, fts5 or postgres");
  }
  return o;
}

Result<std::unique_ptr<Engine>> OpenEngine(const Options& o) {
  if (o.engine == "scisearch") {
    return ScisearchEngine::Open(o.data_dir, o.facet_sample, o.recent_matches);
  }
  if (o.engine == "fts5") return Fts5Engine::Open(o.fts5_db);
  return PostgresEngine::Open(o.pg);
}

Status Run(const Options& options) {
  SCISEARCH_ASSIGN_OR_RETURN(const std::vector<BenchQuery> queries, ReadQueries(options.queries));
  SCISEARCH_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine, OpenEngine(options));
  std::FILE* per_query = nullptr;
  if (!options.per_query.empty()) {
    per_query = std::fopen(options.per_query.c_str(), "w");
    if (per_query == nullptr) return Status::IoError(options.per_query.string() + ": cannot write");
  }
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> per_query_closer(per_query, std::fclose);
  if (per_query)
    std::fprintf(per_query, "engine\tid\tclass\tpass\tms\ttotal\thits\tfacet_values\n");

  for (int pass = 0; pass < options.warmup_passes; ++pass) {
    for (const BenchQuery& q : queries) {
      Result<Answer> a = engine->Run(q);
      if (!a.ok()) return a.status().WithContext(q.id + " '" + q.text + "'");
    }
  }
  std::map<std::string, std::vector<Sample>> by_class;
  std::vector<Sample> all;
  for (int pass = 0; pass < options.passes; ++pass) {
    for (const BenchQuery& q : queries) {
      const auto start = std::chrono::steady_clock::now();
      Result<Answer> a = engine->Run(q);
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count();
      if (!a.ok()) return a.status().WithContext(q.id + " '" + q.text + "'");
      by_class[q.query_class].push_back({ms, a->total});
      all.push_back({ms, a->total});
      if (per_query) {
        std::fprintf(per_query, "%s\t%s\t%s\t%d\t%.3f\t%lld\t%lld\t%lld\n", options.label.c_str(),
                     q.id.c_str(), q.query_class.c_str(), pass + 1, ms,
                     static_cast<long long>(a->total), static_cast<long long>(a->hits),
                     static_cast<long long>(a->facet_values));
      }
    }
  }
  std::printf("# %s: %zu queries, %d warm-up pass(es) untimed, %d timed pass(es); ms per query\n",
              options.label.c_str(), queries.size(), options.warmup_passes, options.passes);
  std::printf("%-15s %-8s %6s %9s %9s %9s %9s %9s %12s\n", "engine", "class", "n", "p50", "p90",
              "p99", "mean", "max", "mean_matches");
  for (const auto& [query_class, samples] : by_class) {
    PrintRow(options.label, query_class, samples);
  }
  PrintRow(options.label, "all", all);
  if (!options.dump_results.empty()) {
    std::ofstream dump(options.dump_results);
    if (!dump) return Status::IoError(options.dump_results.string() + ": cannot write");
    for (const BenchQuery& q : queries) {
      SCISEARCH_ASSIGN_OR_RETURN(const std::string answer, engine->Dump(q));
      dump << "{\"id\": " << nlohmann::json(q.id).dump() << ", \"results\": " << answer << "}\n";
    }
    if (!dump.flush()) return Status::IoError(options.dump_results.string() + ": write failed");
  }
  return Status::Ok();
}

}  // namespace

int main(int argc, char** argv) {
  Result<Options> options = ParseOptions(argc, argv);
  if (!options.ok()) {
    std::fprintf(stderr, "search_bench: %s\n%s", options.status().message().c_str(), kUsage);
    return 2;
  }
  const Status status = Run(*options);
  if (!status.ok()) {
    std::fprintf(stderr, "search_bench: %s\n", status.message().c_str());
    return 1;
  }
  return 0;
}
