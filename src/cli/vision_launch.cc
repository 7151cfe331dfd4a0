// Handing `scisearch vision` over to the scisearch-vision executable.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/search_commands.h"
#include "cli/vision_command.h"
#include "common/companion.h"

namespace scisearch::cli {

std::string VisionCommandToJson(const VisionCommand& c) {
  nlohmann::json j{{"action", c.action},
                   {"data_dir", c.data_dir.string()},
                   {"from_folders", c.from_folders},
                   {"model", c.model},
                   {"pretrained", c.pretrained},
                   {"fine_tune", c.fine_tune},
                   {"groups_csv", c.groups_csv},
                   {"folds", c.folds},
                   {"paths", c.paths},
                   {"json", c.json},
                   {"epochs", c.epochs},
                   {"min_steps", c.min_steps},
                   {"frame_side", c.frame_side},
                   {"tile_side", c.tile_side},
                   {"texture_side", c.texture_side},
                   {"texture_weight", c.texture_weight},
                   {"threads", c.threads},
                   {"max_per_mode", c.max_per_mode},
                   {"min_examples", c.min_examples},
                   {"min_confidence", c.min_confidence},
                   {"root", c.root},
                   {"redo", c.redo},
                   {"top", c.top},
                   {"seed", c.seed}};
  return j.dump();
}

Result<VisionCommand> VisionCommandFromJson(const std::string& json) {
  try {
    const nlohmann::json j = nlohmann::json::parse(json);
    VisionCommand c;
    c.action = j.at("action").get<std::string>();
    c.data_dir = j.at("data_dir").get<std::string>();
    c.from_folders = j.at("from_folders").get<std::string>();
    c.model = j.at("model").get<std::string>();
    c.pretrained = j.at("pretrained").get<std::string>();
    c.fine_tune = j.at("fine_tune").get<bool>();
    c.groups_csv = j.at("groups_csv").get<std::string>();
    c.folds = j.at("folds").get<int>();
    c.paths = j.at("paths").get<std::vector<std::string>>();
    c.json = j.at("json").get<bool>();
    c.epochs = j.at("epochs").get<int>();
    c.min_steps = j.at("min_steps").get<int>();
    c.frame_side = j.at("frame_side").get<int>();
    c.tile_side = j.at("tile_side").get<int>();
    c.texture_side = j.at("texture_side").get<int>();
    c.texture_weight = j.at("texture_weight").get<double>();
    c.threads = j.at("threads").get<int>();
    c.max_per_mode = j.at("max_per_mode").get<int>();
    c.min_examples = j.at("min_examples").get<int>();
    c.min_confidence = j.at("min_confidence").get<double>();
    c.root = j.at("root").get<std::string>();
    c.redo = j.at("redo").get<bool>();
    c.top = j.at("top").get<int>();
    c.seed = j.at("seed").get<uint64_t>();
    return c;
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string("vision: bad command: ") + e.what());
  }
}

namespace {

// scisearch-vision: beside this executable, else where CMake built it, else installed.
Result<std::string> FindVisionExecutable() {
  constexpr const char* kName = "scisearch-vision";
  // CMake defines both paths (src/CMakeLists.txt).
  for (const std::string& path :
       CompanionCandidates(kName, SCISEARCH_VISION_PATH, SCISEARCH_INSTALL_BINDIR)) {
    if (IsExecutableFile(path)) return path;
  }
  return Status::NotFound(std::string("vision: ") + kName +
                          " is not installed beside scisearch nor where it was built");
}

// The environment of the vision process: this one's, and for the passes that read files
// while the network runs (predict, tag), OMP_WAIT_POLICY=PASSIVE unless the user set it.
// libtorch's OpenMP threads otherwise spin for a while after each batch, on the cores that
// the reading threads need (predict over uhcs3: 13.4 s passive, 15.9 s active). It
// must be in the environment when the process starts: libgomp reads it as it loads.
class VisionEnvironment {
 public:
  explicit VisionEnvironment(const VisionCommand& command) {
    bool wait_policy_set = false;
    for (char** e = environ; *e != nullptr; ++e) {
      wait_policy_set |= std::strncmp(*e, "OMP_WAIT_POLICY=", 16) == 0;
      pointers_.push_back(*e);
    }
    if (!wait_policy_set && (command.action == "predict" || command.action == "tag")) {
      pointers_.push_back(passive_.data());
    }
    pointers_.push_back(nullptr);
  }
  VisionEnvironment(const VisionEnvironment&) = delete;
  VisionEnvironment& operator=(const VisionEnvironment&) = delete;
  // Valid while this object lives; the strings are environ's or this object's.
  char* const* get() const { return pointers_.data(); }

 private:
  std::string passive_ = "OMP_WAIT_POLICY=PASSIVE";
  std::vector<char*> pointers_;
};

}  // namespace

int ExecVision(const VisionCommand& command) {
  Result<std::string> path = FindVisionExecutable();
  if (!path.ok()) return Fail(path.status(), 2);
  const std::string json = VisionCommandToJson(command);
  const char* argv[] = {path->c_str(), "--command", json.c_str(), nullptr};
  const VisionEnvironment environment(command);
  ::execve(path->c_str(), const_cast<char* const*>(argv), environment.get());
  return Fail(Status::IoError("vision: cannot start " + *path + ": " + std::strerror(errno)), 2);
}

int RunVisionProcess(const VisionCommand& command) {
  Result<std::string> path = FindVisionExecutable();
  if (!path.ok()) return Fail(path.status(), 2);
  const std::string json = VisionCommandToJson(command);
  const char* argv[] = {path->c_str(), "--command", json.c_str(), nullptr};
  const VisionEnvironment environment(command);
  pid_t pid = 0;
  const int spawned = ::posix_spawn(&pid, path->c_str(), nullptr, nullptr,
                                    const_cast<char* const*>(argv), environment.get());
  if (spawned != 0) {
    return Fail(Status::IoError("vision: cannot start " + *path + ": " + std::strerror(spawned)),
                2);
  }
  int wstatus = 0;
  while (::waitpid(pid, &wstatus, 0) < 0) {
    if (errno != EINTR) return Fail(Status::IoError("vision: lost the vision process"), 2);
  }
  if (WIFEXITED(wstatus)) return WEXITSTATUS(wstatus);
  return Fail(Status::Internal("vision: the vision process was killed by signal " +
                               std::to_string(WTERMSIG(wstatus))),
              2);
}

}  // namespace scisearch::cli
