// Every real file opens through OpenDataset, and damaged copies of each never crash:
// truncated, bit-flipped and with header fields overwritten by huge values, each must
// open with a clear error or open and read sanely.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <set>

#include "formats/formats.h"
#include "test_paths.h"
#include "test_util.h"

namespace scisearch::formats {
namespace {

namespace fs = std::filesystem;
using ::scisearch::testing::ReadFileBytes;
using ::scisearch::testing::TempDir;
using ::scisearch::testing::WriteFileBytes;

std::vector<fs::path> RealFiles() {
  std::vector<fs::path> files;
  fs::path root = testing::SharedData() / "formats";
  if (!fs::exists(root)) root = testing::TestData() / "formats";
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.is_regular_file() && IsCandidateFile(e.path())) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// Opens `path` and reads a bounded corner of each signal. Returns the open status.
Status OpenAndTouch(const fs::path& path) {
  auto reader = OpenDataset(path);
  if (!reader.ok()) return reader.status();
  const Dataset& ds = (*reader)->dataset();
  for (size_t i = 0; i < ds.signals.size(); ++i) {
    Hyperslab slab = Hyperslab::All(ds.signals[i].shape);
    for (size_t k = 0; k < slab.count.size(); ++k)
      slab.count[k] = std::min<int64_t>(slab.count[k], 4);
    auto data = (*reader)->Read(i, slab);
    if (data.ok()) {
      EXPECT_EQ(data->shape, slab.count) << path;
      EXPECT_EQ(data->bytes.size(), uint64_t(data->ElementCount()) * DTypeSize(data->dtype))
          << path;
    } else {
      EXPECT_FALSE(data.status().message().empty()) << path;
    }
  }
  (void)DatasetToJson(ds).dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  return Status::Ok();
}

class RobustnessTest : public ::testing::Test {
 protected:
  // A damaged copy keeps the original's name so that extension and sibling rules apply;
  // a TIA .emi is copied with its .ser files so the pair stays a pair.
  fs::path Damaged(const fs::path& original, const std::vector<uint8_t>& bytes) {
    fs::path dest = dir_.path() / original.filename();
    WriteFileBytes(dest, bytes);
    return dest;
  }
  TempDir dir_;
};

TEST_F(RobustnessTest, EveryRealFileOpens) {
  auto files = RealFiles();
  ASSERT_FALSE(files.empty());
  int opened = 0;
  for (const auto& f : files) {
    Status st = OpenAndTouch(f);
    EXPECT_TRUE(st.ok()) << f << ": " << st.message();
    opened += st.ok();
  }
  std::cout << "opened " << opened << " of " << files.size() << " real files\n";
}

TEST_F(RobustnessTest, TruncatedCopiesFailCleanly) {
  for (const auto& f : RealFiles()) {
    const auto bytes = ReadFileBytes(f);
    if (bytes.size() > (4u << 20)) continue;
    std::set<size_t> lengths = {
        0, 1, 4, 8, 16, 64, 200, 512, 1023, 1024, 1025, 4096, bytes.size() / 2, bytes.size() - 1};
    for (size_t len : lengths) {
      if (len >= bytes.size()) continue;
      fs::path copy = Damaged(f, std::vector<uint8_t>(bytes.begin(), bytes.begin() + len));
      Status st = OpenAndTouch(copy);
      if (!st.ok()) {
        EXPECT_NE(st.message().find(copy.filename().string()), std::string::npos)
            << "error does not name the file: " << st.message();
      }
    }
  }
}

TEST_F(RobustnessTest, BitFlippedCopiesNeverCrash) {
  std::mt19937 rng(20261127);
  for (const auto& f : RealFiles()) {
    const auto bytes = ReadFileBytes(f);
    if (bytes.size() > (1u << 20) || bytes.empty()) continue;
    const size_t header = std::min<size_t>(bytes.size(), 8192);
    for (int trial = 0; trial < 12; ++trial) {
      auto copy = bytes;
      for (int flips = 0; flips < 1 + trial % 4; ++flips) {
        const size_t at = rng() % header;
        copy[at] ^= uint8_t(1u << (rng() % 8));
      }
      (void)OpenAndTouch(Damaged(f, copy));
    }
  }
}

TEST_F(RobustnessTest, HugeHeaderFieldsNeverCrash) {
  std::mt19937 rng(7);
  for (const auto& f : RealFiles()) {
    const auto bytes = ReadFileBytes(f);
    if (bytes.size() > (1u << 20) || bytes.size() < 64) continue;
    const size_t header = std::min<size_t>(bytes.size(), 2048);
    for (int trial = 0; trial < 10; ++trial) {
      auto copy = bytes;
      const size_t at = (rng() % (header - 8)) & ~size_t(3);
      const uint8_t fill = trial % 2 ? 0xff : 0x7f;
      for (size_t k = 0; k < 4; ++k) copy[at + k] = fill;
      (void)OpenAndTouch(Damaged(f, copy));
    }
  }
}

}  // namespace
}  // namespace scisearch::formats
