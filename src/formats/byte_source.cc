#include "formats/byte_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace scisearch::formats {

Result<FileSource> FileSource::Open(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return Status::IoError(path.string() + ": cannot open: " + std::strerror(errno));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return Status::IoError(path.string() + ": cannot stat: " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::InvalidArgument(path.string() + ": not a regular file");
  }
  return FileSource(path, fd, static_cast<uint64_t>(st.st_size));
}

FileSource::FileSource(FileSource&& other) noexcept
    : path_(std::move(other.path_)), fd_(std::exchange(other.fd_, -1)), size_(other.size_) {}

FileSource& FileSource::operator=(FileSource&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
    size_ = other.size_;
  }
  return *this;
}

FileSource::~FileSource() {
  if (fd_ >= 0) ::close(fd_);
}

Status FileSource::ReadAt(uint64_t offset, uint64_t length, void* out) const {
  if (offset > size_ || length > size_ - offset) {
    return Status::Corrupt(path_.string() + ": read of " + std::to_string(length) +
                           " bytes at offset " + std::to_string(offset) +
                           " runs past the end of the file (" + std::to_string(size_) +
                           " bytes); the file is truncated or its header is damaged");
  }
  auto* dst = static_cast<uint8_t*>(out);
  while (length > 0) {
    ssize_t n = ::pread(fd_, dst, length, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::IoError(path_.string() + ": read failed: " + std::strerror(errno));
    }
    if (n == 0) {
      return Status::Corrupt(path_.string() + ": file shrank while being read");
    }
    dst += n;
    offset += static_cast<uint64_t>(n);
    length -= static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

Result<std::vector<uint8_t>> FileSource::ReadBytes(uint64_t offset, uint64_t length) const {
  if (offset > size_ || length > size_ - offset) {
    return ReadAt(offset, length, nullptr);  // the same error message
  }
  std::vector<uint8_t> bytes(length);
  SCISEARCH_RETURN_IF_ERROR(ReadAt(offset, length, bytes.data()));
  return bytes;
}

Status ByteCursor::Error(const std::string& what) const {
  return Status::Corrupt(source_name_ + ": " + what + " (at byte " + std::to_string(position_) +
                         " of " + std::to_string(size_) + ")");
}

Status ByteCursor::Seek(size_t position, const char* what) {
  if (position > size_) return Error(std::string(what) + ": offset past the end");
  position_ = position;
  return Status::Ok();
}

Status ByteCursor::Skip(size_t count, const char* what) {
  if (count > remaining()) return Error(std::string(what) + ": runs past the end");
  position_ += count;
  return Status::Ok();
}

Status ByteCursor::ReadRaw(void* out, size_t count, const char* what) {
  if (count > remaining()) return Error(std::string(what) + ": runs past the end");
  std::memcpy(out, data_ + position_, count);
  position_ += count;
  return Status::Ok();
}

Result<std::string> ByteCursor::ReadString(size_t count, const char* what) {
  if (count > remaining()) return Error(std::string(what) + ": runs past the end");
  std::string s(reinterpret_cast<const char*>(data_ + position_), count);
  position_ += count;
  return s;
}

void SwapBytesInPlace(uint8_t* data, size_t byte_count, size_t element_size) {
  if (element_size <= 1) return;
  for (size_t i = 0; i + element_size <= byte_count; i += element_size) {
    for (size_t a = 0, b = element_size - 1; a < b; ++a, --b) std::swap(data[i + a], data[i + b]);
  }
}

}  // namespace scisearch::formats
