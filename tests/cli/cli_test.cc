// The command line's exact contract: inspect --json, export --npy, exit statuses
// and one-line errors. Runs the built binary on the real files in testdata/.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "test_paths.h"

namespace scisearch {
namespace {

namespace fs = std::filesystem;

struct CommandResult {
  int exit_code = -1;
  std::string out, err;
};

// Runs the scisearch binary with `args` (each single-quoted for the shell).
CommandResult Scisearch(const std::vector<std::string>& args, const fs::path& scratch) {
  std::string cmd = "'" + testing::ScisearchBinary().string() + "'";
  for (const auto& a : args) cmd += " '" + a + "'";
  const fs::path err_file = scratch / "stderr.txt";
  cmd += " 2>'" + err_file.string() + "'";
  CommandResult run;
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (!pipe) return run;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) run.out.append(buf, n);
  const int status = ::pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(err_file);
  run.err.assign((std::istreambuf_iterator<char>(in)), {});
  return run;
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    scratch_ = fs::temp_directory_path() / ("scisearch-cli-" + std::to_string(::getpid()));
    fs::create_directories(scratch_);
  }
  void TearDown() override { fs::remove_all(scratch_); }
  fs::path scratch_;
};

TEST_F(CliTest, InspectJsonFollowsTheContract) {
  const fs::path file = testing::TestData() / "formats/tia/old/64x64_TEM_images_acquire.emi";
  CommandResult run = Scisearch({"inspect", file.string(), "--json"}, scratch_);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  auto j = nlohmann::json::parse(run.out);
  EXPECT_EQ(j["path"], file.string());
  EXPECT_EQ(j["format"], "tia");
  ASSERT_EQ(j["signals"].size(), 1u);
  const auto& s = j["signals"][0];
  // MANIFEST: one 64x64 float32 TEM image, Tecnai 200 kV, acquired 2016-02-21.
  EXPECT_EQ(s["shape"], nlohmann::json::array({64, 64}));
  EXPECT_EQ(s["dtype"], "float32");
  ASSERT_EQ(s["axes"].size(), 2u);
  for (const char* key : {"name", "size", "scale", "offset", "units"}) {
    EXPECT_TRUE(s["axes"][0].contains(key)) << key;
  }
  EXPECT_TRUE(s["metadata"].is_object());
  EXPECT_FALSE(s["metadata"].empty());
  EXPECT_EQ(s["acquired"].get<std::string>().substr(0, 10), "2016-02-21");
  EXPECT_EQ(s["mode"], "tem image");
  EXPECT_TRUE(s["instrument"].is_string());
}

TEST_F(CliTest, InspectWithoutJsonIsReadable) {
  const fs::path file = testing::TestData() / "formats/dm/2D/test_STEM_image.dm3";
  CommandResult run = Scisearch({"inspect", file.string()}, scratch_);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("shape: 68 x 68"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("uint32"), std::string::npos);
}

TEST_F(CliTest, ExportWritesNpyWithTheFilesDtype) {
  // DM type 7 (int32) 2x2 image with values 1..4 (MANIFEST).
  const fs::path file = testing::TestData() / "formats/dm/2D/test-7.dm4";
  const fs::path out = scratch_ / "out.npy";
  CommandResult run =
      Scisearch({"export", file.string(), "--signal", "0", "--npy", out.string()}, scratch_);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::ifstream in(out, std::ios::binary);
  std::string content((std::istreambuf_iterator<char>(in)), {});
  ASSERT_GT(content.size(), 10u);
  const size_t header_len = uint8_t(content[8]) | (uint8_t(content[9]) << 8);
  const std::string header = content.substr(10, header_len);
  EXPECT_NE(header.find("'<i4'"), std::string::npos) << header;
  EXPECT_NE(header.find("(2, 2)"), std::string::npos) << header;
  ASSERT_EQ(content.size(), 10 + header_len + 16);
  int32_t values[4];
  std::memcpy(values, content.data() + 10 + header_len, 16);
  EXPECT_EQ(values[0], 1);
  EXPECT_EQ(values[1], 2);
  EXPECT_EQ(values[2], 3);
  EXPECT_EQ(values[3], 4);
}

TEST_F(CliTest, ErrorsAreOneLineNamingTheFile) {
  const fs::path missing = scratch_ / "no such file.dm3";
  CommandResult run = Scisearch({"inspect", missing.string(), "--json"}, scratch_);
  EXPECT_NE(run.exit_code, 0);
  EXPECT_TRUE(run.out.empty());
  EXPECT_NE(run.err.find("no such file.dm3"), std::string::npos) << run.err;
  EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;

  const fs::path truncated = scratch_ / "cut.dm3";
  {
    std::ifstream in(testing::TestData() / "formats/dm/2D/test_STEM_image.dm3", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(truncated, std::ios::binary) << bytes.substr(0, 3000);
  }
  run = Scisearch({"inspect", truncated.string()}, scratch_);
  EXPECT_NE(run.exit_code, 0);
  EXPECT_NE(run.err.find("cut.dm3"), std::string::npos) << run.err;
  EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;

  run = Scisearch({"export", (testing::TestData() / "formats/dm/2D/test-7.dm4").string(),
                   "--signal", "9", "--npy", (scratch_ / "x.npy").string()},
                  scratch_);
  EXPECT_NE(run.exit_code, 0);
  EXPECT_NE(run.err.find("signal 9"), std::string::npos) << run.err;
}

TEST_F(CliTest, IngestListsWhatItCataloguedAndReportsBadFiles) {
  const fs::path tree = scratch_ / "tree";
  const fs::path data = scratch_ / "data";
  fs::create_directories(tree / "Talos/Minor/2016/2016-02-22 TEM search");
  for (const char* name : {"128x128-TEM_search.emi", "128x128-TEM_search_1.ser"}) {
    fs::copy_file(testing::TestData() / "formats/tia/new" / name,
                  tree / "Talos/Minor/2016/2016-02-22 TEM search" / name);
  }
  fs::copy_file(testing::TestData() / "formats/dm/2D/test-7.dm4", tree / "test-7.dm4");
  std::ofstream(tree / "broken.dm3", std::ios::binary) << std::string("\0\0\0\3garbage", 11);

  CommandResult run =
      Scisearch({"ingest", tree.string(), "--data-dir", data.string(), "--jobs", "2"}, scratch_);
  EXPECT_EQ(run.exit_code, 2) << run.err;  // one file could not be read
  EXPECT_NE(run.err.find("broken.dm3"), std::string::npos) << run.err;

  run = Scisearch({"list", "--json", "--data-dir", data.string()}, scratch_);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::map<std::string, nlohmann::json> by_name;
  std::istringstream lines(run.out);
  for (std::string line; std::getline(lines, line);) {
    auto j = nlohmann::json::parse(line);
    by_name[fs::path(j["path"].get<std::string>()).filename().string()] = j;
  }
  ASSERT_EQ(by_name.size(), 3u) << run.out;  // the .emi and its .ser are one dataset
  EXPECT_EQ(by_name["128x128-TEM_search.emi"]["state"], "ok");
  EXPECT_EQ(by_name["128x128-TEM_search.emi"]["format"], "tia");
  EXPECT_EQ(by_name["test-7.dm4"]["state"], "ok");
  EXPECT_EQ(by_name["broken.dm3"]["state"], "error");
  EXPECT_NE(by_name["broken.dm3"]["error"].get<std::string>().find("broken.dm3"),
            std::string::npos);

  // A second run reads nothing new and still reports the bad file.
  run = Scisearch({"ingest", tree.string(), "--data-dir", data.string()}, scratch_);
  EXPECT_EQ(run.exit_code, 2) << run.err;
  run = Scisearch({"list", "--state", "ok", "--json", "--data-dir", data.string()}, scratch_);
  EXPECT_EQ(std::count(run.out.begin(), run.out.end(), '\n'), 2) << run.out;

  run = Scisearch({"list", "--data-dir", (scratch_ / "nowhere").string()}, scratch_);
  EXPECT_NE(run.exit_code, 0);
  EXPECT_NE(run.err.find("no catalog"), std::string::npos) << run.err;
}

TEST_F(CliTest, SimulateWritesAFacilityAndCatalogOnlyWritesRecords) {
  const fs::path out = scratch_ / "facility";
  CommandResult run =
      Scisearch({"simulate", "--out", out.string(), "--files", "30", "--size", "16", "--seed", "2"},
                scratch_);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("30 of 30 acquisitions"), std::string::npos) << run.out;
  std::ifstream truth(out / "truth.jsonl");
  int lines = 0;
  for (std::string line; std::getline(truth, line);) {
    auto j = nlohmann::json::parse(line);
    EXPECT_TRUE(fs::exists(out / j["path"].get<std::string>())) << line;
    ++lines;
  }
  EXPECT_EQ(lines, 30);

  run = Scisearch({"simulate", "--files", "5"}, scratch_);  // no --out
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.err.find("--out"), std::string::npos) << run.err;

  const fs::path data = scratch_ / "data";
  run = Scisearch({"simulate", "--catalog-only", "--files", "50", "--data-dir", data.string()},
                  scratch_);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  run = Scisearch({"list", "--json", "--data-dir", data.string()}, scratch_);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(std::count(run.out.begin(), run.out.end(), '\n'), 50) << run.out;
}

// --- Search (issue 4): add-docs, reindex, search --------------------------------

// Writes `text` to `path`.
void WriteText(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::vector<std::string> Columns(const std::string& line) {
  std::vector<std::string> columns;
  std::istringstream in(line);
  for (std::string c; in >> c;) columns.push_back(c);
  return columns;
}

TEST_F(CliTest, AddDocsReportsBadLinesByNumberAndLoadsTheRest) {
  const fs::path data = scratch_ / "data";
  const fs::path docs = scratch_ / "papers.jsonl";
  WriteText(docs,
            "{\"id\": \"paper-1\", \"title\": \"Gold nanorods\", \"text\": \"gold nanorods grown "
            "in solution\", \"venue\": \"Nano Letters\"}\n"
            "{\"id\": \"paper-2\", \"title\": \n"
            "{\"title\": \"a paper without id\", \"text\": \"gold\"}\n"
            "{\"id\": \"paper-4\", \"title\": \"Platinum cubes\", \"text\": \"platinum cubes, "
            "gold seeds\", \"authors\": [\"A. Author\"], \"date\": \"2012-03-04\"}\n");
  CommandResult run = Scisearch(
      {"add-docs", docs.string(), "--kind", "publication", "--data-dir", data.string()}, scratch_);
  EXPECT_EQ(run.exit_code, 1) << run.err;
  EXPECT_NE(run.err.find(docs.string() + ":2:"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find(docs.string() + ":3:"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("id"), std::string::npos) << run.err;
  EXPECT_EQ(run.err.find(":1:"), std::string::npos) << run.err;
  EXPECT_EQ(run.err.find(":4:"), std::string::npos) << run.err;

  // The good lines are searchable, with the ids add-docs was given.
  run = Scisearch({"search", "gold", "--json", "--data-dir", data.string()}, scratch_);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto j = nlohmann::json::parse(run.out);
  std::set<std::string> ids;
  for (const auto& hit : j["hits"]) ids.insert(hit["id"].get<std::string>());
  EXPECT_EQ(ids, (std::set<std::string>{"paper-1", "paper-4"})) << run.out;
  EXPECT_EQ(j["total"], 2);

  // Unknown fields are kept in the catalog (its documents table, read with sqlite3).
  if (::system("command -v sqlite3 >/dev/null 2>&1") == 0) {
    const std::string cmd = "sqlite3 '" + (data / "catalog.sqlite").string() +
                            "' \"SELECT json_extract(fields, '$.venue') FROM documents WHERE "
                            "id = 'paper-1'\"";
    FILE* pipe = ::popen(cmd.c_str(), "r");
    ASSERT_NE(pipe, nullptr);
    char buf[256] = {};
    const size_t n = std::fread(buf, 1, sizeof buf - 1, pipe);
    ::pclose(pipe);
    EXPECT_EQ(std::string(buf, n), "Nano Letters\n");
  }
}

TEST_F(CliTest, SearchJsonTrecBatchAndReindex) {
  const fs::path data = scratch_ / "data";
  const fs::path docs = scratch_ / "docs.jsonl";
  std::string lines;
  for (int i = 0; i < 12; ++i) {
    lines += "{\"id\": \"D" + std::to_string(i) + "\", \"title\": \"Note " + std::to_string(i) +
             "\", \"text\": \"" + (i % 3 ? "gold nanorods" : "platinum cubes") +
             " imaged at atomic resolution\", \"date\": \"2011-10-" + std::to_string(10 + i) +
             "\"}\n";
  }
  WriteText(docs, lines);
  CommandResult run = Scisearch(
      {"add-docs", docs.string(), "--kind", "log", "--data-dir", data.string()}, scratch_);
  ASSERT_EQ(run.exit_code, 0) << run.err;

  run = Scisearch({"search", "gold nanorods", "--json", "--top", "5", "--data-dir", data.string()},
                  scratch_);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  auto j = nlohmann::json::parse(run.out);
  ASSERT_TRUE(j["hits"].is_array());
  EXPECT_EQ(j["hits"].size(), 5u);
  EXPECT_EQ(j["total"], 8);
  EXPECT_TRUE(j["facets"].is_object());
  ASSERT_TRUE(j["facets"]["kind"].is_array());
  EXPECT_EQ(j["facets"]["kind"][0]["value"], "log");
  EXPECT_EQ(j["facets"]["kind"][0]["count"], 8);
  for (const auto& hit : j["hits"]) {
    EXPECT_EQ(hit["kind"], "log");
    EXPECT_NE(hit["snippet"].get<std::string>().find("<b>"), std::string::npos) << hit;
  }

  // TREC run lines: qid Q0 docid rank score tag, ranks 1..n, the add-docs ids.
  run = Scisearch({"search", "platinum", "--format", "trec", "--run-tag", "mytag", "--top", "10",
                   "--data-dir", data.string()},
                  scratch_);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto trec = Lines(run.out);
  ASSERT_GE(trec.size(), 4u) << run.out;
  std::set<std::string> platinum = {"D0", "D3", "D6", "D9"};
  for (size_t i = 0; i < trec.size(); ++i) {
    const auto c = Columns(trec[i]);
    ASSERT_EQ(c.size(), 6u) << trec[i];
    EXPECT_EQ(c[0], "1");
    EXPECT_EQ(c[1], "Q0");
    EXPECT_EQ(c[3], std::to_string(i + 1));
    EXPECT_NO_THROW((void)std::stod(c[4]));
    EXPECT_EQ(c[5], "mytag");
    if (i < 4) {
      EXPECT_EQ(platinum.count(c[2]), 1u) << trec[i];
    }
  }

  // A batch of queries.
  const fs::path queries = scratch_ / "queries.jsonl";
  WriteText(queries,
            "{\"id\": \"q1\", \"text\": \"platinum cubes\"}\n"
            "{\"id\": 2, \"text\": \"gold\"}\n");
  run = Scisearch({"search", "--queries", queries.string(), "--format", "trec", "--top", "3",
                   "--run-tag", "batch", "--data-dir", data.string()},
                  scratch_);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::map<std::string, std::vector<std::string>> by_query;
  for (const std::string& line : Lines(run.out)) {
    const auto c = Columns(line);
    ASSERT_EQ(c.size(), 6u) << line;
    EXPECT_EQ(c[5], "batch");
    by_query[c[0]].push_back(c[3]);
  }
  EXPECT_EQ(by_query["q1"], (std::vector<std::string>{"1", "2", "3"}));
  EXPECT_EQ(by_query["2"], (std::vector<std::string>{"1", "2", "3"}));
  EXPECT_EQ(by_query.size(), 2u) << run.out;

  // Paging: --offset gives the next ranks.
  run = Scisearch({"search", "gold", "--format", "trec", "--top", "3", "--offset", "3",
                   "--data-dir", data.string()},
                  scratch_);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto page = Lines(run.out);
  ASSERT_EQ(page.size(), 3u);
  EXPECT_EQ(Columns(page[0])[3], "4");

  // reindex prints how many items it indexed.
  run = Scisearch({"reindex", "--data-dir", data.string()}, scratch_);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("12 items"), std::string::npos) << run.out;

  // A field value that cannot be read: one line naming the field, no results.
  run = Scisearch({"search", "gold mode:banana", "--data-dir", data.string()}, scratch_);
  EXPECT_NE(run.exit_code, 0);
  EXPECT_NE(run.err.find("mode"), std::string::npos) << run.err;
  EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
}

TEST_F(CliTest, SearchWithoutCatalogFailsNamingThePath) {
  const fs::path nowhere = scratch_ / "no data here";
  CommandResult run = Scisearch({"search", "gold", "--data-dir", nowhere.string()}, scratch_);
  EXPECT_NE(run.exit_code, 0);
  EXPECT_TRUE(run.out.empty()) << run.out;
  EXPECT_NE(run.err.find(nowhere.string()), std::string::npos) << run.err;
  EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
  EXPECT_FALSE(fs::exists(nowhere / "catalog.sqlite"));  // searching creates nothing

  run = Scisearch({"reindex", "--data-dir", nowhere.string()}, scratch_);
  EXPECT_NE(run.exit_code, 0);
  EXPECT_NE(run.err.find(nowhere.string()), std::string::npos) << run.err;
}

TEST_F(CliTest, VisionTrainsPredictsAndNamesBadModels) {
  // Two "classes" of real SEM images: enough to check the command's contract end to end
  // (the vision module's own tests check that training learns).
  const fs::path classes = scratch_ / "classes";
  const fs::path zeiss =
      fs::path(SCISEARCH_TESTDATA) / "formats/tiff/test_tiff_Zeiss_SEM_512pix.tif";
  const fs::path fei = fs::path(SCISEARCH_TESTDATA) / "formats/tiff/FEI-Helios-Ebeam-8bits.tif";
  for (int i = 0; i < 2; ++i) {
    fs::create_directories(classes / "zeiss");
    fs::create_directories(classes / "fei");
    fs::copy_file(zeiss, classes / "zeiss" / ("z" + std::to_string(i) + ".tif"));
    fs::copy_file(fei, classes / "fei" / ("f" + std::to_string(i) + ".tif"));
  }
  const std::string model = (scratch_ / "m.model").string();
  CommandResult run =
      Scisearch({"vision", "train", "--from-folders", classes.string(), "--model", model,
                 "--epochs", "1", "--min-steps", "0", "--frame-side", "64", "--tile-side", "32"},
                scratch_);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("4 images, 2 labels: fei zeiss"), std::string::npos) << run.out;
  ASSERT_TRUE(fs::exists(model));

  run = Scisearch({"vision", "predict", "--model", model, "--json", zeiss.string(),
                   (scratch_ / "absent.tif").string()},
                  scratch_);
  EXPECT_EQ(run.exit_code, 1);  // one file could not be read; the other was
  const auto line = nlohmann::json::parse(run.out.substr(0, run.out.find('\n')));
  EXPECT_EQ(line["path"], zeiss.string());
  ASSERT_EQ(line["labels"].size(), 2u);
  EXPECT_GE(line["labels"][0]["confidence"].get<double>(),
            line["labels"][1]["confidence"].get<double>());
  EXPECT_NE(run.err.find("absent.tif"), std::string::npos) << run.err;

  // Many files are read a chunk at a time in parallel: the lines keep the order of the paths.
  std::vector<std::string> args = {"vision", "predict", "--model", model, "--json"};
  std::vector<std::string> expected;
  for (int i = 0; i < 40; ++i) {
    const std::string path = (i % 3 == 0 ? fei : zeiss).string();
    args.push_back(path);
    expected.push_back(path);
  }
  args.insert(args.begin() + 20, (scratch_ / "absent.tif").string());
  run = Scisearch(args, scratch_);
  EXPECT_EQ(run.exit_code, 1);
  std::vector<std::string> printed;
  std::istringstream lines(run.out);
  for (std::string l; std::getline(lines, l);) printed.push_back(nlohmann::json::parse(l)["path"]);
  EXPECT_EQ(printed, expected);

  const fs::path broken = scratch_ / "broken.model";
  {
    std::ofstream out(broken, std::ios::binary);
    out << "SCISVIS1 but nothing else that makes a model";
  }
  run = Scisearch({"vision", "predict", "--model", broken.string(), zeiss.string()}, scratch_);
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.err.find("broken.model"), std::string::npos) << run.err;
  EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
}

}  // namespace
}  // namespace scisearch
