// The search module: a Xapian index derived from the catalog, and the queries
// over it.
//
// This header is the module's whole interface. The index lives in
// <data-dir>/index and holds one Xapian document per searchable item:
//   - every dataset in state "ok" (its path words and file-name shorthand, its
//     normalised metadata, the text leaves of its metadata, its tags weighted by
//     source and confidence, and the text of its linked proposal and
//     publications), item id "dataset:<catalog id>";
//   - every document of the catalog (proposal, publication, log entry), item id
//     the document's own id as given to add-docs.
//
// The catalog is the source of truth. Every change to an item's rows advances
// the catalog's change sequence (catalog::Catalog::ChangesSince); the index
// stores the last sequence it has applied in the same Xapian commit as the
// documents, so after a crash at any moment the index is the state of some
// sequence number and UpdateIndex brings it up to date. Searcher::Open checks
// the two at start (Searcher::lag).
//
// Thread safety: an Indexer or Searcher is thread-compatible: one thread at a
// time. Open one Searcher per thread to search concurrently; one Indexer (one
// writer) per data directory at a time across processes (Xapian's lock: a second
// gets kUnsupported "index is locked"). A Searcher counts the facets of a large
// result set on a thread of its own, through a second handle on the index, while the
// calling thread ranks; Search returns when both are done.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "common/status.h"

namespace scisearch::search {

// --- Building ---------------------------------------------------------------

struct IndexStats {
  int64_t items_indexed = 0;  // documents added or replaced
  int64_t items_removed = 0;  // documents deleted (item gone from the catalog, or no longer "ok")
  int64_t sequence = 0;       // the catalog change sequence the index now reflects
  double seconds = 0;
};

// Called now and then while indexing with (items done, items to do); any thread
// that calls UpdateIndex / RebuildIndex.
using IndexProgress = std::function<void(int64_t done, int64_t total)>;

// Applies to <data_dir>/index (created when absent) every catalog change after
// the sequence the index reflects, committing every `batch` items. Safe to call
// at any time; a no-op when the index is current. An index of another catalog, or
// written by a scisearch with another index format (its documents lack terms this
// one's queries use), is emptied and rebuilt from every item: at a million items that
// takes minutes, once. `catalog` must be an open catalog of `data_dir`.
Result<IndexStats> UpdateIndex(catalog::Catalog& catalog, size_t batch = 10000,
                               const IndexProgress& progress = nullptr);

// Builds a new index of every item from scratch beside the old one and then
// replaces it (a rename), so searches never see a half-built index and a crash
// leaves the old index or the new one. Also reloads the domain vocabulary's
// synonyms.
Result<IndexStats> RebuildIndex(catalog::Catalog& catalog, const IndexProgress& progress = nullptr);

// --- Searching --------------------------------------------------------------

enum class SortOrder {
  kRelevance,
  kNewest,  // acquisition or document date, newest first (items without a date last)
  kOldest,
};

enum class Ranking {
  kFull,       // BM25 with synonyms, every-word matching for short queries, feedback
  kPlainBm25,  // BM25 on any word of the query alone: the baseline the full ranking is
               // measured against (bench/ir_eval.sh)
};

struct Query {
  std::string text;  // the user's query, in the syntax of docs/search.md
  std::string kind;  // "" = every kind; else dataset, proposal, publication or log
  int64_t offset = 0;
  int64_t limit = 10;
  SortOrder sort = SortOrder::kRelevance;
  Ranking ranking = Ranking::kFull;
  bool facets = true;
  // Facet counts (and the total) are exact up to this many matching items; beyond,
  // they are counted over an unbiased sample of about this many and scaled
  // (Results::facets_approximate).
  int64_t facet_sample = 5000;
  // A ranked query that could match more than twice this many items ranks the datasets
  // among them over those indexed last: a span of item ids holding about this many
  // matches (Results::ranked_recent). Documents (proposals, publications, logs) are
  // ranked wherever they are, and the total and facets count every match. Why: ranking
  // every one of half a million matches takes 50-200 ms at a million items, and which of
  // them comes first is then decided by small differences in word counts, where the
  // newest data is what a facility's users look for. 0 = rank every match.
  int64_t recent_matches = 10000;
};

// One field or tag through which a hit matched the query.
struct MatchReason {
  std::string field;  // "text", "path", "tag", "pi", "instrument", "mode", "format", ...
  std::string value;  // the query word or the tag value as stored
};

struct Hit {
  std::string id;    // "dataset:<catalog id>" or the document's id
  std::string kind;  // dataset, proposal, publication, log
  int64_t rank = 0;  // 1-based
  double score = 0;  // relevance (0 when sorting by date)
  std::string title;
  std::string path;     // datasets: the primary file
  std::string date;     // acquisition time or document date, ISO 8601
  std::string summary;  // a line about the item: format, mode, instrument, size, ...
  std::string snippet;  // the part of the item's text that matched, matches in <b></b>,
                        // everything else HTML-escaped
  std::vector<MatchReason> matched;
  std::vector<std::string> tags;  // the item's tags, strongest first
  int64_t dataset_id = 0;         // datasets: catalog id (thumbnail look-up); else 0
};

struct FacetValue {
  std::string value;
  int64_t count = 0;
};
struct Facet {
  std::string name;                // instrument, pi, year, mode, format, kind, tag
  std::vector<FacetValue> values;  // most frequent first
};

struct Results {
  std::string query;      // as given
  std::string corrected;  // "did you mean" (empty when the query is fine)
  int64_t total = 0;      // matching items (an estimate when large)
  bool total_exact = true;
  std::vector<Hit> hits;
  std::vector<Facet> facets;
  bool facets_approximate = false;  // counts scaled from a sample
  // The query matched so many items that the datasets among them were ranked over
  // those indexed last (Query::recent_matches); the total and facets count them all.
  bool ranked_recent = false;
  double seconds = 0;
};

// `results` as one JSON object, the form of `scisearch search --json` and of the
// server's search API:
//   {"query", "corrected", "total", "total_exact", "seconds", "facets_approximate",
//    "ranked_recent",
//    "facets": {"<name>": [{"value", "count"}, ...], ...},
//    "hits": [{"id", "kind", "rank", "score", "title", "path", "date", "summary",
//              "snippet", "matched": [{"field", "value"}], "tags": [...],
//              "thumbnail": "/api/datasets/<id>/thumbnail" (datasets only)}]}
// Invalid UTF-8 is replaced. Pure; any thread.
std::string ResultsToJson(const Results& results);

class Searcher {
 public:
  // Opens <data_dir>/index for reading, with `catalog` (owned by the caller, which
  // keeps it open while the Searcher lives) for thumbnails and detail. kNotFound
  // when no index exists yet (run `scisearch reindex`).
  static Result<std::unique_ptr<Searcher>> Open(catalog::Catalog& catalog);

  ~Searcher();
  Searcher(const Searcher&) = delete;
  Searcher& operator=(const Searcher&) = delete;

  // Runs `query`. A field value that cannot be read (a range that is not a number
  // or date, an unknown mode or kind) gives kInvalidArgument naming the field; any
  // other text, however odd (unbalanced quotes, "name:" of no known field, stray
  // operators), gets the most sensible reading and gives results or none.
  Result<Results> Search(const Query& query);

  // Items like the item `id` (its most telling terms as a query), best first,
  // without the item itself. kNotFound for an unknown id.
  Result<Results> MoreLikeThis(const std::string& id, int64_t limit = 10,
                               const std::string& kind = "");

  // How many catalog changes the index has not applied yet (0 = current).
  Result<int64_t> Lag();

  // Sees the index's latest commit (after another process updated it).
  Status Reopen();

 private:
  class Impl;
  explicit Searcher(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace scisearch::search
