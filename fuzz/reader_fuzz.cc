// libFuzzer driver for one reader: writes the input to a file with the reader's
// extension, opens it through OpenDataset, reads a bounded part of every signal
// and renders the JSON. Any crash, leak or sanitizer report is a bug.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "formats/formats.h"

namespace {

namespace fs = std::filesystem;

// The fuzzer's scratch file; libFuzzer runs inputs one at a time in a process.
const fs::path& ScratchPath() {
  static const fs::path path = [] {
    fs::path dir = fs::temp_directory_path() / ("scisearch-fuzz-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    return dir / (std::string("input") + FUZZ_EXTENSION);
  }();
  return path;
}

void ReadBounded(scisearch::formats::DatasetReader& reader) {
  const auto& ds = reader.dataset();
  for (size_t i = 0; i < ds.signals.size() && i < 8; ++i) {
    const auto& shape = ds.signals[i].shape;
    scisearch::formats::Hyperslab slab = scisearch::formats::Hyperslab::All(shape);
    for (size_t k = 0; k < shape.size(); ++k) {
      // The first frame, at most 64 x 64 of it, plus the last element along each axis.
      const bool frame_axis = k + 2 >= shape.size();
      slab.count[k] = std::min<int64_t>(shape[k], frame_axis ? 64 : 1);
    }
    (void)reader.Read(i, slab);
    for (size_t k = 0; k < shape.size(); ++k) {
      slab.start[k] = shape[k] > 0 ? shape[k] - 1 : 0;
      slab.count[k] = shape[k] > 0 ? 1 : 0;
    }
    (void)reader.Read(i, slab);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const fs::path& path = ScratchPath();
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  auto reader = scisearch::formats::OpenDataset(path);
  if (reader.ok()) {
    ReadBounded(**reader);
    (void)scisearch::formats::DatasetToJson((*reader)->dataset())
        .dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  }
  return 0;
}
