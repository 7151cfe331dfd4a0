// The context subcommands of the command line (link, and the linking that ingest
// and add-docs run), apart from main.cc so that only main.cc pays for CLI11. Each
// Run* returns the process's exit status and prints errors as one line
// "scisearch: <reason>" on stderr.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "catalog/catalog.h"

namespace scisearch::cli {

// Links the datasets under `root` ("" = all) to their sessions, proposals and
// publications and writes their context tags (context::LinkCatalog), printing one
// line of figures unless `quiet`. A failure is printed as a warning and returned
// as false: the catalog keeps its earlier links, and `scisearch link` retries.
bool LinkAfterWrite(catalog::Catalog& catalog, const std::string& root, bool quiet);

// `scisearch link [--root DIR]`: links, then brings the search index up to date.
int RunLink(const std::filesystem::path& data_dir, const std::string& root);

// `scisearch add-docs PATH... --kind K`: loads logs, proposals and publications
// (files or folders; see context/loaders.h), then re-links the datasets and
// updates the search index. Exit status 1 when any line or file failed to load.
int RunAddDocs(const std::filesystem::path& data_dir, const std::vector<std::string>& paths,
               const std::string& kind, const std::string& log_config);

// The dataset that `reference` names: "dataset:<id>", or a file path (a member file such as
// a .ser finds its dataset). kNotFound / kInvalidArgument name the reference.
Result<catalog::DatasetRow> FindDataset(catalog::Catalog& catalog, const std::string& reference);

// `scisearch show PATH|dataset:ID [--json]`: what the catalog knows of one dataset:
// its fields, its links with their evidence, and its tags with source, confidence
// and evidence. PATH may be any member file (a .ser shows its .emi's dataset).
int RunShow(const std::filesystem::path& data_dir, const std::string& reference, bool json);

}  // namespace scisearch::cli
