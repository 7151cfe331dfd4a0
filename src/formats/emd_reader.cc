// OpenEmd: Berkeley EMD and Thermo Fisher Velox EMD files (HDF5), read through a pool
// of scisearch-hdf5-worker processes. The parsing itself is in emd_hdf5.cc; the
// protocol in hdf5_worker_protocol.h.
//
// Why out of process. Debian's libhdf5 1.10 is not thread-safe, and it trusts
// structures it reads: damaged files make it crash (H5HG_read indexing past a global
// heap), corrupt its heap (found at H5Fclose) or loop forever (global heap reads).
// So this process never loads HDF5: each open and each read is one request to a
// worker process, which a crash or a deadline costs, never the caller. A worker that
// dies or misses its deadline is reaped (killed first when late) and the request
// fails with kCorrupt naming the file; the pool starts a new worker when needed.
// Workers are started with posix_spawn (no fork of this possibly multi-threaded
// process) and exit on their own when their socket closes, also when this process is
// killed.
//
// Where the worker executable is found, in order:
//   1. $SCISEARCH_HDF5_WORKER, when set (and then only there);
//   2. scisearch-hdf5-worker beside this process's executable (/proc/self/exe): the
//      build folder's top for build/scisearch, the bin directory once installed;
//   3. the path CMake built it at (SCISEARCH_HDF5_WORKER_PATH), for the test
//      programs in build/tests/;
//   4. the install bin directory (SCISEARCH_INSTALL_BINDIR).
//
// The request deadline is set by $SCISEARCH_HDF5_TIMEOUT (see RequestDeadline).
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/companion.h"
#include "formats/byte_source.h"
#include "formats/dataset_json.h"
#include "formats/emd_reader_internal.h"
#include "formats/hdf5_worker_protocol.h"
#include "formats/readers.h"
#include "formats/slab_io.h"

extern char** environ;

namespace scisearch::formats {
namespace {

using Json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

constexpr const char* kWorkerName = "scisearch-hdf5-worker";
// A worker that has not said hello by then is not a working worker.
constexpr auto kStartDeadline = std::chrono::seconds(30);

// Far above what a sound file needs (milliseconds), even on a machine loaded by
// parallel ingest or sanitizers: 60 s (or $SCISEARCH_HDF5_TIMEOUT seconds, which
// tests of damaged files lower) plus the time to read the whole file at 10 MB/s.
Clock::time_point RequestDeadline(uint64_t file_size) {
  int64_t seconds = 60;
  if (const char* configured = std::getenv("SCISEARCH_HDF5_TIMEOUT")) {
    char* end = nullptr;
    const long long value = std::strtoll(configured, &end, 10);
    if (end != configured && *end == '\0' && value > 0 && value <= 86400) seconds = value;
  }
  return Clock::now() + std::chrono::seconds(seconds) +
         std::chrono::milliseconds(file_size / 10000);
}

// See the file comment for the order.
Result<std::string> FindWorkerExecutable() {
  // Read at each start, so that a test can point it elsewhere (after StopIdleHdf5Workers).
  if (const char* configured = std::getenv("SCISEARCH_HDF5_WORKER");
      configured != nullptr && configured[0] != '\0') {
    return std::string(configured);
  }
  // CMake defines both paths (src/CMakeLists.txt).
  const std::vector<std::string> candidates =
      CompanionCandidates(kWorkerName, SCISEARCH_HDF5_WORKER_PATH, SCISEARCH_INSTALL_BINDIR);
  std::string tried;
  for (const std::string& candidate : candidates) {
    if (IsExecutableFile(candidate)) return candidate;
    tried += (tried.empty() ? "" : ", ") + candidate;
  }
  return Status::Internal(std::string("cannot find the HDF5 worker ") + kWorkerName + " (tried " +
                          tried + "): install it beside scisearch, or set " +
                          "SCISEARCH_HDF5_WORKER to its path");
}

// "signal 11" / "status 1".
std::string DescribeExit(int status) {
  if (WIFSIGNALED(status)) return "signal " + std::to_string(WTERMSIG(status));
  if (WIFEXITED(status)) return "status " + std::to_string(WEXITSTATUS(status));
  return "status " + std::to_string(status);
}

struct Reply {
  Json header;
  std::vector<uint8_t> payload;
};

// How a request ended.
struct Outcome {
  enum class Kind { kReplied, kDied, kTimedOut, kMalformed };
  Kind kind = Kind::kReplied;
  std::string detail;  // kDied: "signal 11"; kMalformed: what was wrong
  Reply reply;
};

// One worker process and this end of its socket. Destroying it closes the socket
// (the worker then exits) and reaps the process.
class WorkerProcess {
 public:
  WorkerProcess(pid_t pid, int fd) : pid_(pid), fd_(fd) {}
  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;
  ~WorkerProcess() {
    ::close(fd_);
    Reap();
  }

  // Starts `executable` and waits for its hello.
  static Result<std::unique_ptr<WorkerProcess>> Start(const std::string& executable) {
    int ends[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) != 0) {
      return Status::Internal(std::string("cannot create a socket for the HDF5 worker: ") +
                              std::strerror(errno));
    }
    int child_end = ends[1];
    if (child_end == kWorkerSocketFd) {
      // dup2 onto itself would leave FD_CLOEXEC set with some C libraries.
      child_end = ::fcntl(ends[1], F_DUPFD_CLOEXEC, kWorkerSocketFd + 1);
      ::close(ends[1]);
      if (child_end < 0) {
        ::close(ends[0]);
        return Status::Internal(std::string("cannot set up the HDF5 worker's socket: ") +
                                std::strerror(errno));
      }
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, child_end, kWorkerSocketFd);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    // Default signal handling and no blocked signals, whatever this process set: a
    // crash in the worker must end the worker.
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attributes, &none);
    posix_spawnattr_setsigdefault(&attributes, &all);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    char* argv[] = {const_cast<char*>(executable.c_str()), nullptr};
    pid_t pid = -1;
    const int error = ::posix_spawn(&pid, executable.c_str(), &actions, &attributes, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    ::close(child_end);
    if (error != 0) {
      ::close(ends[0]);
      return Status::Internal("cannot start the HDF5 worker " + executable + ": " +
                              std::strerror(error) + " (install " + kWorkerName +
                              " beside scisearch, or set SCISEARCH_HDF5_WORKER to its path)");
    }
    auto worker = std::make_unique<WorkerProcess>(pid, ends[0]);
    Outcome hello = worker->Receive(Clock::now() + kStartDeadline, 0);
    if (hello.kind != Outcome::Kind::kReplied ||
        hello.reply.header.find("hello") == hello.reply.header.end() ||
        hello.reply.header["hello"] != kWorkerName ||
        hello.reply.header.find("protocol") == hello.reply.header.end() ||
        hello.reply.header["protocol"] != kWorkerProtocol) {
      worker->Terminate();  // whatever it is, it must not outlive this failure
      const std::string why = hello.kind == Outcome::Kind::kDied ? "exited (" + hello.detail + ")"
                              : hello.kind == Outcome::Kind::kTimedOut
                                  ? "did not answer"
                                  : "is not " + std::string(kWorkerName);
      return Status::Internal("the HDF5 worker " + executable + " " + why + " at start (install " +
                              kWorkerName +
                              " beside scisearch, or set SCISEARCH_HDF5_WORKER to its path)");
    }
    return worker;
  }

  // Ends the process now (its reaping follows in the destructor).
  void Terminate() {
    if (pid_ > 0) ::kill(pid_, SIGKILL);
  }

  // Sends a request and waits for its reply until `deadline`. Any outcome other than
  // kReplied leaves the worker unusable (ended and reaped).
  Outcome Call(const Json& request, const std::string& payload, Clock::time_point deadline,
               uint64_t max_reply_payload) {
    const std::vector<uint8_t> text = Json::to_msgpack(request);
    if (!SendWorkerFrame(fd_, text.data(), text.size(), payload.data(), payload.size())) {
      return Died();
    }
    return Receive(deadline, max_reply_payload);
  }

 private:
  enum class Got { kAll, kEnd, kLate };
  Got ReceiveExact(void* data, size_t size, Clock::time_point deadline) {
    auto* out = static_cast<char*>(data);
    while (size > 0) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return Got::kLate;
      pollfd waiting{fd_, POLLIN, 0};
      const int ready = ::poll(&waiting, 1, int(std::min<int64_t>(left.count() + 1, INT_MAX)));
      if (ready < 0 && errno == EINTR) continue;
      if (ready < 0) return Got::kEnd;
      if (ready == 0) continue;  // the deadline check above decides
      const ssize_t n = ::recv(fd_, out, size, 0);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) return Got::kEnd;
      out += n;
      size -= size_t(n);
    }
    return Got::kAll;
  }

  Outcome Receive(Clock::time_point deadline, uint64_t max_payload) {
    uint64_t sizes[2];
    Got got = ReceiveExact(sizes, sizeof(sizes), deadline);
    if (got == Got::kAll) {
      if (sizes[0] > kMaxWorkerHeaderBytes || sizes[1] > max_payload) {
        return Malformed("a reply of " + std::to_string(sizes[0]) + " + " +
                         std::to_string(sizes[1]) + " bytes");
      }
      std::string text(sizes[0], '\0');
      Outcome outcome;
      outcome.reply.payload.resize(sizes[1]);
      got = ReceiveExact(text.data(), text.size(), deadline);
      if (got == Got::kAll) {
        got = ReceiveExact(outcome.reply.payload.data(), outcome.reply.payload.size(), deadline);
      }
      if (got == Got::kAll) {
        std::optional<Json> header = ParseMetadataMsgpack(text);
        if (!header || !header->is_object()) {
          return Malformed("a reply that is not a MessagePack map");
        }
        outcome.reply.header = std::move(*header);
        return outcome;
      }
    }
    if (got == Got::kLate) {
      ::kill(pid_, SIGKILL);
      Reap();
      Outcome late;
      late.kind = Outcome::Kind::kTimedOut;
      return late;
    }
    return Died();
  }

  // The worker closed its socket: it is exiting. Its status tells why.
  Outcome Died() {
    Outcome died;
    died.kind = Outcome::Kind::kDied;
    const int status = Reap();
    died.detail = status < 0 ? "unknown status" : DescribeExit(status);
    return died;
  }

  Outcome Malformed(std::string what) {
    ::kill(pid_, SIGKILL);
    Reap();
    Outcome malformed;
    malformed.kind = Outcome::Kind::kMalformed;
    malformed.detail = std::move(what);
    return malformed;
  }

  // Waits for the process to end; its wait status, or -1 when it is not (or no
  // longer) this process's child (SIGCHLD ignored, or this is a forked copy of the
  // process that started it).
  int Reap() {
    if (pid_ <= 0) return -1;
    int status = 0;
    pid_t done;
    do {
      done = ::waitpid(pid_, &status, 0);
    } while (done < 0 && errno == EINTR);
    pid_ = -1;
    return done > 0 ? status : -1;
  }

  pid_t pid_;
  int fd_;
};

// The worker processes of this process. They are a process-wide resource - one set
// of processes however many readers and threads use them - so the pool is the one
// process-wide object of this module (see Pool()). At most hardware_concurrency()
// workers, started as requests need them; each serves one request at a time, and
// callers wait for an idle worker.
class WorkerPool {
 public:
  WorkerPool()
      : max_workers_(std::max(1u, std::thread::hardware_concurrency())), owner_(::getpid()) {}

  // A worker for one request, given back by its destructor unless Discard()ed.
  class Lease {
   public:
    Lease(WorkerPool* pool, std::unique_ptr<WorkerProcess> worker)
        : pool_(pool), worker_(std::move(worker)) {}
    Lease(Lease&&) = default;
    ~Lease() {
      if (worker_) pool_->GiveBack(std::move(worker_));
    }
    WorkerProcess* operator->() { return worker_.get(); }
    // The worker is unusable: end it and free its place in the pool.
    void Discard() {
      worker_.reset();
      pool_->Forget();
    }

   private:
    WorkerPool* pool_;
    std::unique_ptr<WorkerProcess> worker_;
  };

  // An idle worker, or a new one while the pool has room. `fresh`: always a newly
  // started worker (an idle one is ended to make room).
  Result<Lease> Acquire(bool fresh) {
    std::unique_ptr<WorkerProcess> worker;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (owner_ != ::getpid()) {
        // A forked copy of the process: the workers belong to the parent.
        idle_.clear();
        live_ = 0;
        owner_ = ::getpid();
      }
      idle_or_room_.wait(lock, [&] { return !idle_.empty() || live_ < max_workers_; });
      if (!idle_.empty()) {
        worker = std::move(idle_.back());
        idle_.pop_back();
        if (!fresh) return Lease(this, std::move(worker));
      } else {
        ++live_;
      }
    }
    worker.reset();  // outside the lock: reaping waits for the process to exit
    Result<std::string> executable = FindWorkerExecutable();
    Result<std::unique_ptr<WorkerProcess>> started =
        executable.ok() ? WorkerProcess::Start(*executable)
                        : Result<std::unique_ptr<WorkerProcess>>(executable.status());
    if (!started.ok()) {
      Forget();
      return started.status();
    }
    started_.fetch_add(1);
    return Lease(this, std::move(started).value());
  }

  void StopIdle() {
    std::vector<std::unique_ptr<WorkerProcess>> stopping;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (owner_ != ::getpid()) return;
      stopping.swap(idle_);
      live_ -= stopping.size();
    }
    stopping.clear();
    idle_or_room_.notify_all();
  }

  uint64_t started() const { return started_.load(); }

 private:
  void GiveBack(std::unique_ptr<WorkerProcess> worker) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (owner_ != ::getpid()) return;  // leased before a fork: not this process's
      idle_.push_back(std::move(worker));
    }
    idle_or_room_.notify_one();
  }

  void Forget() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (owner_ == ::getpid() && live_ > 0) --live_;
    }
    idle_or_room_.notify_one();
  }

  const size_t max_workers_;
  std::mutex mutex_;
  std::condition_variable idle_or_room_;
  std::vector<std::unique_ptr<WorkerProcess>> idle_;  // guarded by mutex_
  size_t live_ = 0;                                   // idle + leased; guarded by mutex_
  pid_t owner_;                                       // the process the workers belong to
  std::atomic<uint64_t> started_{0};
};

WorkerPool& Pool() {
  // Never destroyed: threads may still be reading at exit, and the kernel closes the
  // sockets when the process ends, which ends the workers.
  static WorkerPool* pool = new WorkerPool();
  return *pool;
}

// Sends one request about `path` and returns the worker's reply. A worker that dies
// is replaced and the request made once more on a newly started worker, so that
// damage an earlier file did to a worker's heap is not blamed on this file; a second
// death, or a missed deadline, means the file is damaged.
Result<Reply> Ask(const Json& request, const std::filesystem::path& path, uint64_t file_size,
                  uint64_t max_reply_payload) {
  const std::string file_name = path.filename().string();
  for (int attempt = 0;; ++attempt) {
    SCISEARCH_ASSIGN_OR_RETURN(WorkerPool::Lease worker, Pool().Acquire(attempt > 0));
    Outcome outcome =
        worker->Call(request, path.string(), RequestDeadline(file_size), max_reply_payload);
    switch (outcome.kind) {
      case Outcome::Kind::kReplied: {
        const Json& header = outcome.reply.header;
        auto ok = header.find("ok");
        if (ok != header.end() && ok->is_boolean() && ok->get<bool>()) {
          return std::move(outcome.reply);
        }
        auto code = header.find("code");
        auto message = header.find("message");
        if (code == header.end() || !code->is_number_integer() ||
            code->get<int64_t>() <= int(ErrorCode::kOk) ||
            code->get<int64_t>() > int(ErrorCode::kInternal) || message == header.end() ||
            !message->is_string()) {
          worker.Discard();
          return Status::Internal(file_name + ": the HDF5 worker sent a malformed error reply");
        }
        return Status::Error(ErrorCode(code->get<int>()), message->get<std::string>());
      }
      case Outcome::Kind::kDied:
        worker.Discard();
        if (attempt == 0) continue;
        return Status::Corrupt(file_name + ": the HDF5 library crashed (" + outcome.detail +
                               ") reading the file: the file is damaged");
      case Outcome::Kind::kTimedOut:
        worker.Discard();
        return Status::Corrupt(file_name +
                               ": the HDF5 library did not finish (it loops on damaged "
                               "structures) reading the file: the file is damaged");
      case Outcome::Kind::kMalformed:
        worker.Discard();
        return Status::Internal(file_name + ": the HDF5 worker sent " + outcome.detail);
    }
  }
}

// A dataset parsed by a worker; reads are requests to the pool (to whichever worker
// is idle: each keeps its last few files open).
class EmdReader : public DatasetReader {
 public:
  EmdReader(Dataset dataset, uint64_t file_size)
      : dataset_(std::move(dataset)), file_size_(file_size) {}

  const Dataset& dataset() const override { return dataset_; }
  Dataset TakeDataset() override { return std::move(dataset_); }

  Result<NdArray> Read(size_t signal_index, const Hyperslab& slab) override {
    const std::string name = dataset_.path.filename().string();
    if (signal_index >= dataset_.signals.size()) {
      return Status::NotFound(name + ": no signal " + std::to_string(signal_index));
    }
    const Signal& signal = dataset_.signals[signal_index];
    SCISEARCH_RETURN_IF_ERROR(slab.Validate(signal.shape).WithContext(name));
    SCISEARCH_ASSIGN_OR_RETURN(const int64_t elements, CheckedElementCount(slab.count));
    if (uint64_t(elements) > (uint64_t(1) << 40) / DTypeSize(signal.dtype)) {
      return Status::InvalidArgument(name + ": selection of " + std::to_string(elements) +
                                     " elements is too large for one read");
    }
    NdArray out;
    out.dtype = signal.dtype;
    out.shape = slab.count;
    const uint64_t bytes = uint64_t(elements) * DTypeSize(signal.dtype);
    if (elements == 0) return out;
    const Json request = {
        {"op", "read"},
        {"signal", signal_index},
        {"slab", {{"start", slab.start}, {"count", slab.count}, {"step", slab.step}}}};
    SCISEARCH_ASSIGN_OR_RETURN(Reply reply, Ask(request, dataset_.path, file_size_, bytes));
    const Json& header = reply.header;
    auto dtype = header.find("dtype");
    auto shape = header.find("shape");
    if (dtype == header.end() || *dtype != std::string(DTypeName(signal.dtype)) ||
        shape == header.end() || *shape != Json(slab.count) || reply.payload.size() != bytes) {
      return Status::Internal(name + ": the HDF5 worker's array does not match the selection");
    }
    out.bytes = std::move(reply.payload);
    return out;
  }

 private:
  Dataset dataset_;
  uint64_t file_size_;
};

// Moves each signal's metadata tree out of a DatasetToJson object, leaving null in its
// place, so that DatasetFromJson checks the rest without copying the trees (the bulk
// of the reply); the caller puts them into the Dataset. Entry k belongs to signal k.
std::vector<Json> TakeMetadataTrees(Json& dataset_json) {
  std::vector<Json> trees;
  if (!dataset_json.is_object()) return trees;
  auto signals = dataset_json.find("signals");
  if (signals == dataset_json.end() || !signals->is_array()) return trees;
  for (Json& signal : *signals) {
    Json tree;
    if (signal.is_object()) {
      if (auto metadata = signal.find("metadata"); metadata != signal.end()) {
        tree = std::move(*metadata);
        *metadata = nullptr;
      }
    }
    trees.push_back(std::move(tree));
  }
  return trees;
}

}  // namespace

Result<std::unique_ptr<DatasetReader>> OpenEmd(const std::filesystem::path& path) {
  const std::string file_name = path.filename().string();
  uint64_t file_size = 0;
  {
    // Plain-file checks first, for clear messages about missing or unreadable files.
    SCISEARCH_ASSIGN_OR_RETURN(FileSource source, FileSource::Open(path));
    if (source.size() < 8) return Status::Corrupt(file_name + ": too short for an HDF5 file");
    file_size = source.size();
  }
  SCISEARCH_ASSIGN_OR_RETURN(Reply reply, Ask(Json{{"op", "open"}}, path, file_size, 0));
  auto dataset_json = reply.header.find("dataset");
  if (dataset_json == reply.header.end()) {
    return Status::Internal(file_name + ": the HDF5 worker's reply has no dataset");
  }
  std::vector<Json> trees = TakeMetadataTrees(*dataset_json);
  Result<Dataset> dataset = DatasetFromJson(*dataset_json);
  if (!dataset.ok()) {
    return Status::Internal(file_name +
                            ": the HDF5 worker's dataset: " + dataset.status().message());
  }
  for (size_t k = 0; k < dataset->signals.size() && k < trees.size(); ++k) {
    dataset->signals[k].metadata = std::move(trees[k]);
  }
  // The path as given (JSON carries only UTF-8; file names need not be).
  dataset->path = path;
  dataset->member_files = {path};
  return std::unique_ptr<DatasetReader>(
      std::make_unique<EmdReader>(std::move(dataset).value(), file_size));
}

void StopIdleHdf5Workers() { Pool().StopIdle(); }

uint64_t Hdf5WorkersStarted() { return Pool().started(); }

}  // namespace scisearch::formats
