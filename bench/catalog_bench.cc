// Cost of ingest's single writer thread: storing read datasets in the catalog, without
// reading any file in the timed loop. The records are the real files in testdata/ (and
// ../shared/data/formats when present), read and encoded once as ingest's readers do;
// each iteration writes all of them again under new paths into a catalog in a
// temporary folder, in batches of 64 as ingest commits them.
//   build-bench/bench/catalog_bench [--benchmark_filter=put_datasets]
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "corpus.h"
#include "formats/formats.h"

namespace {

namespace fs = std::filesystem;
using scisearch::catalog::Catalog;
using scisearch::catalog::DatasetRecord;

// Every readable dataset of the corpus, encoded.
std::vector<DatasetRecord> ReadCorpus() {
  std::vector<DatasetRecord> out;
  const scisearch::bench::Corpus corpus = scisearch::bench::FindCorpus();
  for (const fs::path& file : corpus.files) {
    auto reader = scisearch::formats::OpenDataset(file);
    if (!reader.ok()) continue;
    DatasetRecord record;
    record.path = file.string();
    record.root = corpus.root.string();
    record.files = {{record.path, uint64_t(fs::file_size(file)), 0}};
    record.fingerprint = scisearch::catalog::ComputeFingerprint(record.files);
    record.dataset = (*reader)->TakeDataset();
    record.encoded = scisearch::catalog::EncodeSignals(record.dataset);
    for (auto& signal : record.dataset.signals) signal.metadata = {};
    out.push_back(std::move(record));
  }
  return out;
}

void BM_PutDatasets(benchmark::State& state) {
  std::vector<DatasetRecord> records = ReadCorpus();
  const fs::path dir =
      fs::temp_directory_path() / ("scisearch-catalog-bench-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  // Declared before the catalog, so that the catalog is closed before its folder goes.
  struct RemovedAtEnd {
    fs::path dir;
    ~RemovedAtEnd() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } removed_at_end{dir};
  auto catalog = Catalog::Open(dir);
  if (!catalog.ok()) {
    state.SkipWithError(catalog.status().message().c_str());
    return;
  }
  auto run = (*catalog)->StartRun("/bench");
  if (!run.ok()) {
    state.SkipWithError(run.status().message().c_str());
    return;
  }
  int64_t copy = 0;
  for (auto _ : state) {
    Catalog::BatchWriter writer(**catalog, 64);
    for (DatasetRecord& record : records) {
      // A new path each time: ingest's first run inserts, it does not update.
      const std::string original = record.path;
      record.path = "/bench/copy" + std::to_string(copy) + original;
      record.files.front().path = record.path;
      scisearch::Status s = writer.PutDataset(*run, record);
      record.path = original;
      record.files.front().path = original;
      if (!s.ok()) {
        state.SkipWithError(s.message().c_str());
        break;
      }
    }
    if (!writer.Flush().ok()) state.SkipWithError("commit failed");
    ++copy;
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * int64_t(records.size()));
}
BENCHMARK(BM_PutDatasets)->Name("put_datasets")->Unit(benchmark::kMillisecond)->MinTime(3);

}  // namespace

BENCHMARK_MAIN();
