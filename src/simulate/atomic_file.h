// Writing a file so that it appears whole or not at all. Internal to the simulate module.
#pragma once

#include <filesystem>
#include <functional>

#include "common/status.h"

namespace scisearch::simulate {

// Calls `write(temporary)` with a fresh path beside `target`, then renames the
// temporary onto `target`. When `write` fails, or the rename does, removes the
// temporary and returns the error; `target` is then untouched. Creates missing
// parent directories. Thread-safe for distinct targets.
Status WriteFileAtomically(const std::filesystem::path& target,
                           const std::function<Status(const std::filesystem::path&)>& write);

// The common case: `bytes` into `target`, atomically as above.
Status WriteBytesAtomically(const std::filesystem::path& target, const void* bytes, size_t size);

}  // namespace scisearch::simulate
