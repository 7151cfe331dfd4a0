// Per-format cost of opening a file (headers + whole metadata tree) and of making
// its thumbnail, over the real files in testdata/ (and ../shared/data/formats when present).
//   build/bench/formats_bench [--benchmark_filter=open/dm]
#include <benchmark/benchmark.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "corpus.h"
#include "formats/formats.h"
#include "thumbnail/thumbnail.h"

namespace {

namespace fs = std::filesystem;
using scisearch::formats::OpenDataset;

// Real files grouped by their top folder (the format family).
std::map<std::string, std::vector<fs::path>> FilesByFormat() {
  std::map<std::string, std::vector<fs::path>> out;
  const scisearch::bench::Corpus corpus = scisearch::bench::FindCorpus();
  for (const fs::path& file : corpus.files) {
    out[fs::relative(file, corpus.root).begin()->string()].push_back(file);
  }
  return out;
}

void BM_Open(benchmark::State& state, std::vector<fs::path> files) {
  int64_t opened = 0;
  for (auto _ : state) {
    for (const auto& f : files) {
      auto reader = OpenDataset(f);
      opened += reader.ok();
      benchmark::DoNotOptimize(reader);
    }
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * int64_t(files.size()));
  state.counters["ok_files"] = double(opened) / double(state.iterations());
}

void BM_OpenAndThumbnail(benchmark::State& state, std::vector<fs::path> files) {
  for (auto _ : state) {
    for (const auto& f : files) {
      auto reader = OpenDataset(f);
      if (!reader.ok()) continue;
      // The same choice of signal and bounded selection as ingest makes.
      const auto& ds = (*reader)->dataset();
      auto index = scisearch::thumbnail::ChoosePreviewSignal(ds);
      if (!index) continue;
      const auto& signal = ds.signals[*index];
      auto pixels = (*reader)->Read(*index, scisearch::thumbnail::PreviewSlab(signal));
      if (!pixels.ok()) continue;
      auto thumb = scisearch::thumbnail::RenderThumbnail(*pixels, signal.fields.mode);
      benchmark::DoNotOptimize(thumb);
    }
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * int64_t(files.size()));
}

int RegisterAll() {
  for (auto& [family, files] : FilesByFormat()) {
    benchmark::RegisterBenchmark(("open/" + family).c_str(), BM_Open, files)
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("open+thumbnail/" + family).c_str(), BM_OpenAndThumbnail, files)
        ->Unit(benchmark::kMillisecond);
  }
  return 0;
}
const int registered = RegisterAll();

}  // namespace

BENCHMARK_MAIN();
