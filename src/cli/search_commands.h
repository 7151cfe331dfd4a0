// The search subcommands of the command line (reindex, search), apart
// from main.cc so that only main.cc pays for CLI11. Each returns the process's
// exit status and prints errors as one line "scisearch: <reason>" on stderr.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "catalog/catalog.h"

namespace scisearch::cli {

// Prints "scisearch: <message>" on stderr and returns `exit_code`.
int Fail(const Status& status, int exit_code = 1);

// Brings the search index of `catalog` up to date, printing one line of figures
// when anything changed (`quiet`: nothing on success). A locked index (another
// process writing) is a warning, not a failure: the next update applies the changes.
void UpdateIndexAfterWrite(catalog::Catalog& catalog, bool quiet);

int RunReindex(const std::filesystem::path& data_dir);

struct SearchCommand {
  std::string text;          // one query, or
  std::string queries_file;  // a JSONL batch of {"id", "text"}
  std::string like;          // "more like this" item id
  std::string kind;
  int64_t top = 10;
  int64_t offset = 0;
  std::string sort = "relevance";  // relevance, newest, oldest
  std::string output = "text";     // text, json, trec
  std::string run_tag = "scisearch";
  std::string ranking = "full";  // full, bm25 (the plain baseline)
};
int RunSearch(const std::filesystem::path& data_dir, const SearchCommand& command);

}  // namespace scisearch::cli
