#include "cli/search_commands.h"

#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "search/search.h"

namespace scisearch::cli {
namespace {

namespace fs = std::filesystem;

Result<std::unique_ptr<catalog::Catalog>> OpenExistingCatalog(const fs::path& data_dir) {
  if (!fs::exists(data_dir / "catalog.sqlite")) {
    return Status::NotFound((data_dir / "catalog.sqlite").string() +
                            ": no catalog here (run scisearch ingest or add-docs first)");
  }
  return catalog::Catalog::Open(data_dir);
}

// "<b>x</b> &amp; y" -> "x & y": snippets are HTML, a terminal shows text.
std::string PlainText(const std::string& html) {
  std::string out;
  for (size_t i = 0; i < html.size(); ++i) {
    if (html[i] == '<') {
      const size_t close = html.find('>', i);
      if (close == std::string::npos) break;
      i = close;
      continue;
    }
    if (html[i] == '&') {
      static const std::pair<const char*, char> kEntities[] = {
          {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&#39;", '\''}};
      bool replaced = false;
      for (const auto& [entity, c] : kEntities) {
        if (html.compare(i, std::char_traits<char>::length(entity), entity) == 0) {
          out.push_back(c);
          i += std::char_traits<char>::length(entity) - 1;
          replaced = true;
          break;
        }
      }
      if (replaced) continue;
    }
    out.push_back(html[i]);
  }
  return out;
}

void PrintText(const search::Results& results) {
  if (!results.corrected.empty()) std::printf("Did you mean: %s\n", results.corrected.c_str());
  // A short query's total counts the items with every word; its page may go on
  // with items that have some of them.
  const bool partial_follow = !results.hits.empty() && results.hits.back().rank > results.total;
  std::printf("%s%lld result%s (%.1f ms)%s%s\n", results.total_exact ? "" : "about ",
              static_cast<long long>(results.total), results.total == 1 ? "" : "s",
              results.seconds * 1e3, partial_follow ? "; then items with some of the words" : "",
              results.ranked_recent ? "; datasets ranked among the most recently added" : "");
  for (const search::Hit& hit : results.hits) {
    std::printf("\n%lld. %s  [%s]  %.2f\n", static_cast<long long>(hit.rank), hit.title.c_str(),
                hit.kind.c_str(), hit.score);
    if (!hit.path.empty()) std::printf("   %s\n", hit.path.c_str());
    std::printf("   %s%s%s\n", hit.summary.c_str(), hit.date.empty() ? "" : " · ",
                hit.date.c_str());
    const std::string snippet = PlainText(hit.snippet);
    if (!snippet.empty()) std::printf("   %s\n", snippet.c_str());
    if (!hit.matched.empty()) {
      std::string reasons;
      for (const search::MatchReason& m : hit.matched) {
        reasons += (reasons.empty() ? "" : ", ") + m.field + ": " + m.value;
      }
      std::printf("   matched %s\n", reasons.c_str());
    }
  }
  for (const search::Facet& facet : results.facets) {
    if (facet.values.empty()) continue;
    std::string line;
    for (const search::FacetValue& v : facet.values) {
      line += (line.empty() ? "" : ", ") + v.value + " (" + std::to_string(v.count) + ")";
    }
    std::printf("%s%-10s %s\n", &facet == &results.facets.front() ? "\n" : "", facet.name.c_str(),
                line.c_str());
  }
}

// TREC run lines: "qid Q0 docid rank score tag".
void PrintTrec(const std::string& query_id, const search::Results& results,
               const std::string& run_tag) {
  for (const search::Hit& hit : results.hits) {
    std::printf("%s Q0 %s %lld %.6f %s\n", query_id.c_str(), hit.id.c_str(),
                static_cast<long long>(hit.rank), hit.score, run_tag.c_str());
  }
}

Result<search::SortOrder> SortOrderOf(const std::string& name) {
  if (name == "relevance") return search::SortOrder::kRelevance;
  if (name == "newest") return search::SortOrder::kNewest;
  if (name == "oldest") return search::SortOrder::kOldest;
  return Status::InvalidArgument("--sort '" + name + "' is not relevance, newest or oldest");
}

search::Ranking RankingOf(const std::string& name) {
  return name == "bm25" ? search::Ranking::kPlainBm25 : search::Ranking::kFull;
}

int RunBatch(search::Searcher& searcher, const SearchCommand& command) {
  std::ifstream in(command.queries_file, std::ios::binary);
  if (!in) return Fail(Status::IoError(command.queries_file + ": cannot open for reading"));
  std::string line;
  int64_t number = 0;
  int failed = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const nlohmann::json q = nlohmann::json::parse(line, nullptr, false);
    const std::string where = command.queries_file + ":" + std::to_string(number);
    if (!q.is_object() || !q.contains("id") || !q.contains("text") || !q["text"].is_string() ||
        !(q["id"].is_string() || q["id"].is_number_integer())) {
      Fail(Status::InvalidArgument(where + ": not a {\"id\", \"text\"} object"));
      ++failed;
      continue;
    }
    const std::string id = q["id"].is_string() ? q["id"].get<std::string>() : q["id"].dump();
    search::Query query;
    query.text = q["text"].get<std::string>();
    query.kind = command.kind;
    query.limit = command.top;
    query.facets = false;
    query.ranking = RankingOf(command.ranking);
    Result<search::Results> results = searcher.Search(query);
    if (!results.ok()) {
      Fail(results.status().WithContext(where));
      ++failed;
      continue;
    }
    if (command.output == "json") {
      std::cout << search::ResultsToJson(*results) << "\n";
    } else {
      PrintTrec(id, *results, command.run_tag);
    }
  }
  return failed > 0 ? 1 : 0;
}

}  // namespace

int Fail(const Status& status, int exit_code) {
  std::fprintf(stderr, "scisearch: %s\n", status.message().c_str());
  return exit_code;
}

void UpdateIndexAfterWrite(catalog::Catalog& catalog, bool quiet) {
  // A long update (an index of an older format is rebuilt once) says so even when quiet,
  // so that a search that waits minutes for it does not look hung.
  bool announced = false;
  const search::IndexProgress progress = [&announced](int64_t done, int64_t total) {
    if (announced || total < 50000) return;
    announced = true;
    std::fprintf(stderr,
                 "index: bringing %lld items up to date (minutes at a million; "
                 "`scisearch reindex` does this ahead of time)\n",
                 static_cast<long long>(total));
  };
  Result<search::IndexStats> stats = search::UpdateIndex(catalog, 10000, progress);
  if (!stats.ok()) {
    std::fprintf(stderr, "scisearch: warning: search index not updated: %s\n",
                 stats.status().message().c_str());
    return;
  }
  if (quiet || stats->items_indexed + stats->items_removed == 0) return;
  std::fprintf(stderr, "index: %lld items indexed, %lld removed in %.1f s\n",
               static_cast<long long>(stats->items_indexed),
               static_cast<long long>(stats->items_removed), stats->seconds);
}

int RunReindex(const fs::path& data_dir) {
  auto catalog = OpenExistingCatalog(data_dir);
  if (!catalog.ok()) return Fail(catalog.status());
  Result<search::IndexStats> stats = search::RebuildIndex(**catalog);
  if (!stats.ok()) return Fail(stats.status());
  std::printf("index: %lld items in %.1f s (%.0f items/s), catalog change %lld\n",
              static_cast<long long>(stats->items_indexed), stats->seconds,
              stats->seconds > 0 ? double(stats->items_indexed) / stats->seconds : 0.0,
              static_cast<long long>(stats->sequence));
  return 0;
}

int RunSearch(const fs::path& data_dir, const SearchCommand& command) {
  auto catalog = OpenExistingCatalog(data_dir);
  if (!catalog.ok()) return Fail(catalog.status());
  Result<search::SortOrder> sort = SortOrderOf(command.sort);
  if (!sort.ok()) return Fail(sort.status());
  // The index follows the catalog: apply what changed since it was last updated.
  UpdateIndexAfterWrite(**catalog, /*quiet=*/true);
  auto searcher = search::Searcher::Open(**catalog);
  if (!searcher.ok()) return Fail(searcher.status());
  if (!command.queries_file.empty()) return RunBatch(**searcher, command);

  Result<search::Results> results = Status::Internal("no query");
  if (!command.like.empty()) {
    results = (*searcher)->MoreLikeThis(command.like, command.top, command.kind);
  } else {
    search::Query query;
    query.text = command.text;
    query.kind = command.kind;
    query.limit = command.top;
    query.offset = command.offset;
    query.sort = *sort;
    query.ranking = RankingOf(command.ranking);
    query.facets = command.output != "trec";
    results = (*searcher)->Search(query);
  }
  if (!results.ok()) return Fail(results.status());
  if (command.output == "json") {
    std::cout << search::ResultsToJson(*results) << "\n";
  } else if (command.output == "trec") {
    PrintTrec("1", *results, command.run_tag);
  } else {
    PrintText(*results);
  }
  return 0;
}

}  // namespace scisearch::cli
