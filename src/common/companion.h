// Finding the project's companion executables (the HDF5 worker, the vision program): they
// are installed beside the `scisearch` executable, and test programs elsewhere find them
// where CMake built them.
#pragma once

#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace scisearch {

// True when `path` is a regular file this process may execute.
inline bool IsExecutableFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

// Where the companion executable `name` may be, in the order to try: beside this process's
// executable (/proc/self/exe: the build folder's top, or the bin directory once installed),
// then `built_path` (where CMake built it; "" = none), then `install_bindir`/`name` ("" =
// none). Any thread.
inline std::vector<std::string> CompanionCandidates(const std::string& name,
                                                    const std::string& built_path,
                                                    const std::string& install_bindir) {
  std::vector<std::string> candidates;
  char self[PATH_MAX];
  const ssize_t length = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (length > 0) {
    const std::string exe(self, size_t(length));
    candidates.push_back(exe.substr(0, exe.rfind('/') + 1) + name);
  }
  if (!built_path.empty()) candidates.push_back(built_path);
  if (!install_bindir.empty()) candidates.push_back(install_bindir + "/" + name);
  return candidates;
}

}  // namespace scisearch
