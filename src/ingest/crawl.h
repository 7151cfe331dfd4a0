// Crawling an ingest root into dataset units, private to the ingest module.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "catalog/catalog.h"

namespace scisearch::ingest::internal {

// The files that make one dataset: a TIA .emi with its <stem>_N.ser files, an
// MRC with its DE-Server <prefix>_info.txt, or a single file.
struct DatasetUnit {
  std::string path;                      // the primary file, absolute and canonical
  std::vector<catalog::FileStat> files;  // primary first, then the others by name
  std::string fingerprint;               // catalog::ComputeFingerprint(files)
  uint64_t size_bytes = 0;               // sum of the files' sizes
};

struct CrawlResult {
  std::vector<DatasetUnit> units;  // ordered by path
  int64_t files_seen = 0;          // candidate files and sidecars found
  // Folders that could not be listed and files that could not be stat()ed, with
  // the reason. What lies under an unreadable folder must not be taken as gone.
  std::vector<std::pair<std::string, std::string>> errors;
  std::vector<std::string> unreadable_dirs;
};

// Walks `root` (an absolute canonical folder) without following symlinked
// folders, keeping files that formats::IsCandidateFile accepts (and MRC
// sidecars), and groups them into units. Symlinked files are kept under their
// canonical path, once, when that lies under `root`. Reads no file contents: sizes and times come
// from stat().
CrawlResult Crawl(const std::filesystem::path& root);

// Groups the file names of one folder into units, each primary name first;
// names that belong to no unit (a stray _info.txt) are left out. Exposed for tests.
std::vector<std::vector<std::string>> GroupFolder(const std::vector<std::string>& names);

}  // namespace scisearch::ingest::internal
