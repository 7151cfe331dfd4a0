// The real instrument files the benchmarks read: ../shared/data/formats when present,
// else testdata/formats. Private to bench/.
#pragma once

#include <filesystem>
#include <vector>

#include "formats/formats.h"

namespace scisearch::bench {

struct Corpus {
  std::filesystem::path root;                // the folder the files were found under
  std::vector<std::filesystem::path> files;  // in directory order
};

// Every file under the first corpus folder that has any that formats::IsCandidateFile
// accepts, except .ser files, which are read through their .emi. Empty when neither
// folder exists.
inline Corpus FindCorpus() {
  namespace fs = std::filesystem;
  for (fs::path root :
       {fs::path(SCISEARCH_SHARED_DATA) / "formats", fs::path(SCISEARCH_TESTDATA) / "formats"}) {
    if (!fs::exists(root)) continue;
    Corpus corpus{root, {}};
    for (const auto& entry : fs::recursive_directory_iterator(root)) {
      if (!entry.is_regular_file() || !formats::IsCandidateFile(entry.path())) continue;
      if (entry.path().extension() == ".ser") continue;
      corpus.files.push_back(entry.path());
    }
    if (!corpus.files.empty()) return corpus;
  }
  return {};
}

}  // namespace scisearch::bench
