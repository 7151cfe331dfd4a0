#include "simulate/atomic_file.h"

#include <atomic>
#include <cstdio>
#include <fstream>
#include <string>
#include <system_error>
#include <thread>

namespace scisearch::simulate {

namespace fs = std::filesystem;

namespace {

// A name no other writer of the same target uses at the same time: the thread id
// tells concurrent writers apart, the ".partial" suffix tells a reader (and a
// clean-up) that the file is not finished.
fs::path TemporaryBeside(const fs::path& target) {
  const size_t thread_hash = std::hash<std::thread::id>{}(std::this_thread::get_id());
  return fs::path(target).concat("." + std::to_string(thread_hash % 1000000007) + ".partial");
}

}  // namespace

Status WriteFileAtomically(const fs::path& target,
                           const std::function<Status(const fs::path&)>& write) {
  std::error_code ec;
  if (target.has_parent_path()) {
    fs::create_directories(target.parent_path(), ec);
    if (ec) {
      return Status::IoError(target.parent_path().string() + ": cannot create: " + ec.message());
    }
  }
  const fs::path temporary = TemporaryBeside(target);
  Status written = write(temporary);
  if (written.ok()) {
    fs::rename(temporary, target, ec);
    if (ec)
      written = Status::IoError(target.string() + ": cannot rename into place: " + ec.message());
  }
  if (!written.ok()) fs::remove(temporary, ec);
  return written;
}

Status WriteBytesAtomically(const fs::path& target, const void* bytes, size_t size) {
  return WriteFileAtomically(target, [&](const fs::path& temporary) -> Status {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    if (!out) return Status::IoError(temporary.string() + ": cannot create");
    out.write(static_cast<const char*>(bytes), std::streamsize(size));
    out.close();
    if (!out) return Status::IoError(target.string() + ": write failed (disk full?)");
    return Status::Ok();
  });
}

}  // namespace scisearch::simulate
