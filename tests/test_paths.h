// Where the tests find their data. Tests that need ../shared/data call
// SharedDataOrSkip, which skips the test cleanly when the folder is absent.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

namespace scisearch::testing {

// The shared data folder beside the project (may not exist).
inline std::filesystem::path SharedData() { return SCISEARCH_SHARED_DATA; }
// The project's own test data (always present in a checkout).
inline std::filesystem::path TestData() { return SCISEARCH_TESTDATA; }
// The built scisearch binary.
inline std::filesystem::path ScisearchBinary() { return SCISEARCH_BINARY; }

}  // namespace scisearch::testing

// Sets `var` to the path of `relative` under ../shared/data, or skips the test.
#define SHARED_DATA_OR_SKIP(var, relative)                                           \
  const std::filesystem::path var = ::scisearch::testing::SharedData() / (relative); \
  if (!std::filesystem::exists(var)) GTEST_SKIP() << "shared data absent: " << var
