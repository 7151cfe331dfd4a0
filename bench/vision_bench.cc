// What the vision model reads of an image: the whole preparation of a real SEM micrograph
// (JPEG read, the CNN's frame, the texture statistics) and the texture statistics alone, for
// a few image sides; and the model itself on a batch of prepared frames. The whole pass is
// measured end to end by `scisearch vision predict` and `vision tag` (bench/vision_eval.sh).
//   build-bench/bench/vision_bench [--benchmark_filter=texture]
#include <benchmark/benchmark.h>

#include <filesystem>
#include <random>

#include "vision/texture.h"
#include "vision/vision.h"

namespace {

namespace fs = std::filesystem;
using namespace scisearch;

// A frame of random texture (smoothed noise) of the given sides.
thumbnail::GreyFrame NoiseFrame(int height, int width) {
  thumbnail::GreyFrame f;
  f.height = height, f.width = width;
  f.pixels.resize(size_t(height) * size_t(width));
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(0, 1);
  for (float& p : f.pixels) p = u(rng);
  return f;
}

void BM_TextureViews(benchmark::State& state) {
  const int width = int(state.range(0)), height = width * 3 / 4;
  const thumbnail::GreyFrame frame = NoiseFrame(height, width);
  for (auto _ : state) benchmark::DoNotOptimize(vision::TextureViews(frame));
  state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(BM_TextureViews)
    ->Name("texture/views")
    ->Arg(320)
    ->Arg(645)
    ->Arg(768)
    ->Arg(1024)
    ->Unit(benchmark::kMillisecond);

// One uhcs3 micrograph (645 x 475 JPEG) read and prepared as the default model reads it.
void BM_ReadFileFrame(benchmark::State& state) {
  const fs::path file = fs::path(SCISEARCH_SHARED_DATA) / "images/uhcs3/pearlite/micrograph202.jpg";
  if (!fs::exists(file)) {
    state.SkipWithError("../shared/data/images/uhcs3 is absent");
    return;
  }
  const vision::Preprocessing defaults;
  for (auto _ : state) benchmark::DoNotOptimize(vision::ReadFileFrame(file, defaults));
  state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(BM_ReadFileFrame)->Name("read_file_frame/uhcs3_default")->Unit(benchmark::kMillisecond);

// The model on a batch of 16 prepared frames of 320 x 240 px (six 128 px tiles each, and
// the texture head's few multiplications), on one libtorch thread, as each worker of a tag
// pass runs it. The weights come from one training step on noise: the cost does not depend
// on them.
void BM_AnalyseBatch(benchmark::State& state) {
  vision::TrainOptions options;
  options.epochs = options.min_steps = 1;
  options.threads = 1;
  options.validation_fraction = 0;
  std::vector<vision::LabelledFrame> examples(4);
  for (size_t i = 0; i < examples.size(); ++i) {
    examples[i].image.frame = NoiseFrame(240, 320);
    examples[i].image.texture = vision::TextureViews(examples[i].image.frame);
    examples[i].labels = {int(i % 2)};
  }
  auto model = vision::Model::Train({"a", "b"}, examples, options, nullptr, nullptr);
  if (!model.ok()) {
    state.SkipWithError(model.status().message().c_str());
    return;
  }
  const std::vector<vision::PreparedImage> batch(16, examples[0].image);
  for (auto _ : state) benchmark::DoNotOptimize((*model)->AnalyseBatch(batch));
  state.SetItemsProcessed(int64_t(state.iterations()) * int64_t(batch.size()));
}
BENCHMARK(BM_AnalyseBatch)->Name("analyse_batch/16x320px_1thread")->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
