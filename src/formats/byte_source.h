// Random-access reads from a file, and a bounds-checked cursor over bytes.
//
// Every reader goes through these two classes, so that no reader ever reads
// past the end of its input or trusts a size or offset the file claims.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "common/status.h"

namespace scisearch::formats {

// A read-only file opened for positional reads. Owns the descriptor.
// Thread-safe: ReadAt uses pread, so several threads may read at once.
class FileSource {
 public:
  static Result<FileSource> Open(const std::filesystem::path& path);

  FileSource(FileSource&& other) noexcept;
  FileSource& operator=(FileSource&& other) noexcept;
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;
  ~FileSource();

  const std::filesystem::path& path() const { return path_; }
  uint64_t size() const { return size_; }

  // Reads exactly `length` bytes at `offset` into `out`. Fails with kCorrupt,
  // naming the file, when the range runs past the end of the file.
  Status ReadAt(uint64_t offset, uint64_t length, void* out) const;
  // Reads `length` bytes at `offset` into a new buffer (same errors as above).
  Result<std::vector<uint8_t>> ReadBytes(uint64_t offset, uint64_t length) const;

 private:
  FileSource(std::filesystem::path path, int fd, uint64_t size)
      : path_(std::move(path)), fd_(fd), size_(size) {}

  std::filesystem::path path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

enum class ByteOrder { kLittle, kBig };

// A cursor over a byte buffer that it does not own. Each read checks bounds and
// returns kCorrupt with `what` (the field being read) and the position in the message.
class ByteCursor {
 public:
  ByteCursor(const uint8_t* data, size_t size, ByteOrder order, std::string source_name)
      : data_(data), size_(size), order_(order), source_name_(std::move(source_name)) {}
  ByteCursor(const std::vector<uint8_t>& bytes, ByteOrder order, std::string source_name)
      : ByteCursor(bytes.data(), bytes.size(), order, std::move(source_name)) {}

  size_t position() const { return position_; }
  size_t size() const { return size_; }
  size_t remaining() const { return size_ - position_; }
  ByteOrder order() const { return order_; }
  void set_order(ByteOrder order) { order_ = order; }

  Status Seek(size_t position, const char* what);
  Status Skip(size_t count, const char* what);
  // Reads `count` raw bytes.
  Status ReadRaw(void* out, size_t count, const char* what);
  // Reads a fixed-width string of `count` bytes (no terminator needed).
  Result<std::string> ReadString(size_t count, const char* what);

  // Reads an integer or IEEE float of type T in the cursor's byte order.
  template <typename T>
  Result<T> Read(const char* what) {
    static_assert(std::is_arithmetic_v<T>);
    T value;
    SCISEARCH_RETURN_IF_ERROR(ReadRaw(&value, sizeof(T), what));
    if constexpr (sizeof(T) > 1) {
      const bool host_little = std::endian::native == std::endian::little;
      if (host_little != (order_ == ByteOrder::kLittle)) value = Swap(value);
    }
    return value;
  }

  // A Corrupt status naming the source, the position and `what`.
  Status Error(const std::string& what) const;

 private:
  template <typename T>
  static T Swap(T value) {
    uint8_t b[sizeof(T)];
    std::memcpy(b, &value, sizeof(T));
    for (size_t i = 0; i < sizeof(T) / 2; ++i) std::swap(b[i], b[sizeof(T) - 1 - i]);
    std::memcpy(&value, b, sizeof(T));
    return value;
  }

  const uint8_t* data_;
  size_t size_;
  size_t position_ = 0;
  ByteOrder order_;
  std::string source_name_;
};

// Reverses the byte order of every `element_size`-byte word in place (complex
// types swap each half: pass the size of one component).
void SwapBytesInPlace(uint8_t* data, size_t byte_count, size_t element_size);

}  // namespace scisearch::formats
