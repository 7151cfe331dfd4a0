// The simulator end to end: the facility it writes is read back by our own
// readers and ingest, agrees with its truth.jsonl, and is the same for a seed.
#include "simulate/simulate.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "catalog/catalog.h"
#include "formats/formats.h"
#include "ingest/ingest.h"
#include "test_util.h"

namespace scisearch::simulate {
namespace {

namespace fs = std::filesystem;
using ::scisearch::testing::ReadFileBytes;
using ::scisearch::testing::TempDir;
using ::scisearch::testing::WriteFileText;

std::vector<nlohmann::json> ReadTruth(const fs::path& out) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(out / "truth.jsonl");
  std::string line;
  while (std::getline(in, line)) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

// Every regular file under `root` with its bytes, by relative path.
std::map<std::string, std::vector<uint8_t>> TreeBytes(const fs::path& root) {
  std::map<std::string, std::vector<uint8_t>> files;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (entry.is_regular_file()) {
      files[fs::relative(entry.path(), root).string()] = ReadFileBytes(entry.path());
    }
  }
  return files;
}

SimulateOptions SmallFacility(const fs::path& out, uint64_t seed) {
  SimulateOptions options;
  options.out = out;
  options.files = 150;
  options.seed = seed;
  options.image_size = 32;
  options.jobs = 2;
  return options;
}

TEST(SimulateTest, EveryFileReadsBackAsItsTruthSays) {
  TempDir out;
  // Enough acquisitions to reach the years of every format, at the smallest size.
  SimulateOptions options = SmallFacility(out.path(), 7);
  options.files = 400;
  options.image_size = 16;
  auto summary = SimulateFacility(options);
  ASSERT_TRUE(summary.ok()) << summary.status().message();
  EXPECT_EQ(summary->files_planned, 400);
  EXPECT_EQ(summary->files_written, 400);
  EXPECT_FALSE(summary->interrupted);
  EXPECT_GT(summary->bytes_written, 400 * 16 * 16);
  EXPECT_GT(summary->proposals, 0);
  EXPECT_GT(summary->sessions, 0);

  const std::vector<nlohmann::json> truth = ReadTruth(out.path());
  ASSERT_EQ(truth.size(), 400u);
  std::set<std::string> formats_seen;
  for (const nlohmann::json& t : truth) {
    const fs::path path = out.path() / t["path"].get<std::string>();
    auto reader = formats::OpenDataset(path);
    ASSERT_TRUE(reader.ok()) << path << ": " << reader.status().message();
    const formats::Dataset& dataset = (*reader)->dataset();
    EXPECT_EQ(dataset.format, t["format"]) << path;
    formats_seen.insert(dataset.format);
    ASSERT_EQ(dataset.signals.size(), t["signals"].size()) << path;
    for (size_t i = 0; i < dataset.signals.size(); ++i) {
      const formats::Signal& signal = dataset.signals[i];
      // Velox stores a spectrum image as X-ray events, which read back as uint32 counts.
      const bool velox_events =
          dataset.format == "emd-velox" && signal.fields.mode == formats::Mode::kSpectrumImage;
      EXPECT_EQ(formats::DTypeName(signal.dtype),
                velox_events ? "uint32" : t["signals"][i]["dtype"].get<std::string>())
          << path;
      // Readers may drop axes of length 1, never data.
      int64_t elements = 1;
      for (int64_t n : t["signals"][i]["shape"]) elements *= n;
      EXPECT_EQ(signal.ElementCount(), elements) << path << " signal " << i;
      auto slab = (*reader)->Read(i, formats::Hyperslab::All(signal.shape));
      EXPECT_TRUE(slab.ok()) << path << ": " << slab.status().message();
    }
    const formats::NormalisedFields& fields = dataset.signals.front().fields;
    ASSERT_TRUE(fields.acquired.has_value()) << path;
    EXPECT_EQ(fields.acquired->substr(0, 19), t["acquired"].get<std::string>().substr(0, 19))
        << path;
    EXPECT_EQ(fields.instrument.value_or(""), t["instrument_name"]) << path;
  }
  EXPECT_EQ(formats_seen, (std::set<std::string>{"dm3", "dm4", "emd-berkeley", "emd-velox", "mrc",
                                                 "tia", "tiff"}));
  EXPECT_TRUE(fs::exists(out.path() / "logs"));
  EXPECT_TRUE(fs::exists(out.path() / "proposals"));
}

TEST(SimulateTest, IngestReadsTheWholeFacilityWithTheTruthsModes) {
  TempDir out, data;
  ASSERT_TRUE(SimulateFacility(SmallFacility(out.path(), 11)).ok());
  auto catalog = catalog::Catalog::Open(data.path());
  ASSERT_TRUE(catalog.ok());
  auto summary = ingest::Ingest(**catalog, out.path());
  ASSERT_TRUE(summary.ok()) << summary.status().message();
  EXPECT_EQ(summary->datasets_new, 150);
  EXPECT_EQ(summary->datasets_failed, 0);
  EXPECT_EQ(summary->warnings, 0);
  EXPECT_EQ(summary->thumbnails_made, 150);
  for (const nlohmann::json& t : ReadTruth(out.path())) {
    const fs::path path = fs::canonical(out.path()) / t["path"].get<std::string>();
    auto row = (*catalog)->GetDataset(path.string());
    ASSERT_TRUE(row.ok()) << path;
    EXPECT_EQ(formats::ModeName(row->fields.mode), t["mode"]) << path;
  }
}

TEST(SimulateTest, SameSeedSameBytesOtherSeedOtherFacility) {
  TempDir a, b, c;
  ASSERT_TRUE(SimulateFacility(SmallFacility(a.path(), 3)).ok());
  ASSERT_TRUE(SimulateFacility(SmallFacility(b.path(), 3)).ok());
  ASSERT_TRUE(SimulateFacility(SmallFacility(c.path(), 4)).ok());
  const auto first = TreeBytes(a.path());
  EXPECT_EQ(first.size(), TreeBytes(b.path()).size());
  EXPECT_TRUE(first == TreeBytes(b.path()));
  EXPECT_FALSE(first == TreeBytes(c.path()));
}

TEST(SimulateTest, BadOptionsAreErrors) {
  TempDir out;
  SimulateOptions options = SmallFacility(out.path(), 1);
  options.files = 0;
  EXPECT_EQ(SimulateFacility(options).status().code(), ErrorCode::kInvalidArgument);
  options = SmallFacility("", 1);
  EXPECT_EQ(SimulateFacility(options).status().code(), ErrorCode::kInvalidArgument);
  options = SmallFacility(out.path(), 1);
  options.image_size = 4;
  EXPECT_EQ(SimulateFacility(options).status().code(), ErrorCode::kInvalidArgument);
  // A file where the facility's root should be.
  WriteFileText(out.path() / "taken", "x");
  options = SmallFacility(out.path() / "taken", 1);
  EXPECT_FALSE(SimulateFacility(options).ok());
}

TEST(SimulateTest, CatalogOnlyRecordsAFacilityWithoutFiles) {
  TempDir data;
  auto catalog = catalog::Catalog::Open(data.path());
  ASSERT_TRUE(catalog.ok());
  auto summary = SimulateCatalog(**catalog, {"/facility", 400, 5});
  ASSERT_TRUE(summary.ok()) << summary.status().message();
  EXPECT_EQ(summary->files_written, 400);
  auto counts = (*catalog)->Counts();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->datasets_ok, 400);
  EXPECT_GE(counts->signals, 400);
  EXPECT_GT(counts->metadata_entries, 400 * 20);
  EXPECT_GT(counts->tags, 400);
  EXPECT_EQ(counts->thumbnails, 0);
  EXPECT_TRUE((*catalog)->IntegrityCheck().ok());
  auto rows = (*catalog)->ListDatasets("/facility");
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 400u);
  std::set<std::string> formats_seen;
  for (const catalog::DatasetRow& row : *rows) {
    formats_seen.insert(row.format);
    EXPECT_TRUE(row.fields.acquired.has_value()) << row.path;
    EXPECT_NE(row.fields.mode, formats::Mode::kUnknown) << row.path;
    EXPECT_FALSE(fs::exists(row.path)) << row.path;  // records only
  }
  EXPECT_GE(formats_seen.size(), 5u);

  // The same seed into another catalog gives the same records.
  TempDir again;
  auto other = catalog::Catalog::Open(again.path());
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(SimulateCatalog(**other, {"/facility", 400, 5}).ok());
  auto other_rows = (*other)->ListDatasets("/facility");
  ASSERT_TRUE(other_rows.ok());
  ASSERT_EQ(other_rows->size(), rows->size());
  for (size_t i = 0; i < rows->size(); ++i) {
    EXPECT_EQ((*rows)[i].path, (*other_rows)[i].path);
    EXPECT_EQ((*rows)[i].fingerprint, (*other_rows)[i].fingerprint);
  }
}

}  // namespace
}  // namespace scisearch::simulate
