// File helpers shared by the tests: a temporary folder that cleans up after itself, and
// whole-file byte reads and writes.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace scisearch::testing {

// A fresh, empty folder under the system temporary directory, unique to this process, test and
// instance (mkdtemp), removed with everything in it when the TempDir is destroyed. Fails the
// current test (fatally for the folder's users: path() is then empty) when it cannot be made.
class TempDir {
 public:
  TempDir() {
    std::string name = "scisearch-" + std::to_string(::getpid());
    if (const auto* info = ::testing::UnitTest::GetInstance()->current_test_info()) {
      name += std::string("-") + info->test_suite_name() + "-" + info->name();
    }
    for (char& c : name) {
      if (c == '/') c = '_';  // parameterised test names hold '/'
    }
    std::string pattern = (std::filesystem::temp_directory_path() / (name + "-XXXXXX")).string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      ADD_FAILURE() << "cannot create a temporary folder " << pattern;
      return;
    }
    path_ = std::filesystem::canonical(pattern);
  }
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// The whole content of the file at `path`; empty when it cannot be read.
inline std::vector<uint8_t> ReadFileBytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

// Makes the file at `path` hold exactly `text`, creating missing parent folders. An existing
// file is unlinked first rather than truncated: ext4 flushes a file truncated and rewritten in
// place (auto_da_alloc), which would make the robustness loops take seconds instead of
// milliseconds. Fails the current test when the file cannot be written.
inline void WriteFileText(const std::filesystem::path& path, std::string_view text) {
  std::error_code ignored;
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ignored);
  std::filesystem::remove(path, ignored);
  std::ofstream out(path, std::ios::binary);
  out.write(text.data(), std::streamsize(text.size()));
  out.close();
  if (!out) ADD_FAILURE() << "cannot write " << path;
}

// WriteFileText for binary content.
inline void WriteFileBytes(const std::filesystem::path& path, const std::vector<uint8_t>& bytes) {
  WriteFileText(path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

}  // namespace scisearch::testing
