// Helpers shared by the writer tests: arrays to write (axes: MakeAxis in writer_input.h), a
// per-test folder, and opening a written file through formats::OpenDataset.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "formats/formats.h"
#include "simulate/writer_input.h"
#include "simulate/writers.h"
#include "test_util.h"

namespace scisearch::simulate::test {

// `shape` filled with values of type T from `at(i)`, little-endian.
template <typename T>
formats::NdArray MakeArray(formats::DType dtype, std::vector<int64_t> shape,
                           const std::function<T(int64_t)>& at) {
  formats::NdArray a;
  a.dtype = dtype;
  a.shape = std::move(shape);
  const int64_t n = a.ElementCount();
  a.bytes.resize(size_t(n) * sizeof(T));
  for (int64_t i = 0; i < n; ++i) StoreLittle(a.bytes.data() + size_t(i) * sizeof(T), at(i));
  return a;
}

// A test with its own empty folder, dir_, removed after the test.
class WriterTest : public ::testing::Test {
 protected:
  scisearch::testing::TempDir temp_;
  const std::filesystem::path dir_ = temp_.path();
};

// The reader of a written file; a test failure (and nullptr) when it does not open.
inline std::unique_ptr<formats::DatasetReader> OpenWritten(const std::filesystem::path& path) {
  auto opened = formats::OpenDataset(path);
  EXPECT_TRUE(opened.ok()) << path << ": " << opened.status().message();
  if (!opened.ok()) return nullptr;
  return std::move(opened).value();
}

}  // namespace scisearch::simulate::test
