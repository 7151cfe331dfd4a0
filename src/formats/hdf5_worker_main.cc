// scisearch-hdf5-worker: parses EMD files with HDF5 on behalf of OpenEmd, in a process
// of its own so that a damaged file that crashes the library, corrupts its heap or
// sends it round in circles costs this process only (OpenEmd kills and replaces it).
// The protocol is in hdf5_worker_protocol.h. Single-threaded: one request at a time,
// so HDF5, which is not thread-safe, needs no lock here.
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <list>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "formats/dataset_json.h"
#include "formats/emd_hdf5.h"
#include "formats/formats.h"
#include "formats/hdf5_worker_protocol.h"

namespace scisearch::formats {
namespace {

using Json = nlohmann::ordered_json;

bool ReadExact(int fd, void* data, size_t size) {
  auto* out = static_cast<char*>(data);
  while (size > 0) {
    const ssize_t n = ::read(fd, out, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    out += n;
    size -= size_t(n);
  }
  return true;
}

bool WriteFrame(const Json& header, const std::vector<uint8_t>& payload = {}) {
  // MessagePack carries strings as bytes, so invalid UTF-8 from a file cannot fail here.
  const std::vector<uint8_t> text = Json::to_msgpack(header);
  return SendWorkerFrame(kWorkerSocketFd, text.data(), text.size(), payload.data(), payload.size());
}

struct Request {
  Json header;
  std::string payload;
};

// False at end of input (the client closed the socket) or on a malformed frame.
bool ReadFrame(Request& request) {
  uint64_t sizes[2];
  if (!ReadExact(kWorkerSocketFd, sizes, sizeof(sizes))) return false;
  if (sizes[0] > kMaxWorkerHeaderBytes || sizes[1] > kMaxWorkerRequestPayload) return false;
  std::string text(sizes[0], '\0');
  request.payload.assign(sizes[1], '\0');
  if (!ReadExact(kWorkerSocketFd, text.data(), text.size()) ||
      !ReadExact(kWorkerSocketFd, request.payload.data(), request.payload.size())) {
    return false;
  }
  std::optional<Json> header = ParseMetadataMsgpack(text);
  if (!header || !header->is_object()) return false;
  request.header = std::move(*header);
  return true;
}

Json ErrorReply(const Status& status) {
  return Json{{"ok", false}, {"code", int(status.code())}, {"message", status.message()}};
}

// The files opened last, so that the reads that follow an open (or each other) do not
// parse the file again. A file is reused only while its identity and modification
// time are those it had when it was opened.
class OpenFiles {
 public:
  static constexpr size_t kCapacity = 4;

  // A file just opened: its kept reader, and its signals' metadata trees, which the
  // reader does not keep (reads never need them).
  struct Opened {
    DatasetReader* reader = nullptr;
    std::vector<Metadata> metadata;
  };

  // Opens `path` afresh and keeps its reader.
  Result<Opened> Open(const std::filesystem::path& path) {
    Forget(path);
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0) info = {};
    SCISEARCH_ASSIGN_OR_RETURN(Hdf5Emd file, OpenEmdWithHdf5(path));
    entries_.push_front(
        Entry{path, info.st_dev, info.st_ino, info.st_size, info.st_mtim, std::move(file.reader)});
    while (entries_.size() > kCapacity) entries_.pop_back();
    return Opened{entries_.front().reader.get(), std::move(file.metadata)};
  }

  // The kept reader of `path`, else a new one.
  Result<DatasetReader*> Get(const std::filesystem::path& path) {
    struct stat info {};
    const bool exists = ::stat(path.c_str(), &info) == 0;
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->path != path) continue;
      if (exists && it->dev == info.st_dev && it->ino == info.st_ino && it->size == info.st_size &&
          it->mtime.tv_sec == info.st_mtim.tv_sec && it->mtime.tv_nsec == info.st_mtim.tv_nsec) {
        entries_.splice(entries_.begin(), entries_, it);
        return entries_.front().reader.get();
      }
      break;
    }
    SCISEARCH_ASSIGN_OR_RETURN(Opened opened, Open(path));
    return opened.reader;
  }

 private:
  struct Entry {
    std::filesystem::path path;
    dev_t dev;
    ino_t ino;
    off_t size;
    timespec mtime;
    std::unique_ptr<DatasetReader> reader;
  };

  void Forget(const std::filesystem::path& path) {
    entries_.remove_if([&](const Entry& e) { return e.path == path; });
  }

  std::list<Entry> entries_;
};

Result<std::vector<int64_t>> IntArray(const Json& slab, const char* key) {
  auto it = slab.find(key);
  if (it == slab.end() || !it->is_array()) {
    return Status::InvalidArgument(std::string("request: slab.") + key + ": expected an array");
  }
  std::vector<int64_t> out;
  for (const Json& value : *it) {
    if (!value.is_number_integer()) {
      return Status::InvalidArgument(std::string("request: slab.") + key + ": expected integers");
    }
    out.push_back(value.get<int64_t>());
  }
  return out;
}

// Serves one read request; returns the reply header and fills `payload`.
Json ServeRead(OpenFiles& files, const Request& request, std::vector<uint8_t>& payload) {
  auto signal = request.header.find("signal");
  auto slab_json = request.header.find("slab");
  if (signal == request.header.end() || !signal->is_number_unsigned() ||
      slab_json == request.header.end() || !slab_json->is_object()) {
    return ErrorReply(Status::InvalidArgument("request: read needs signal and slab"));
  }
  Hyperslab slab;
  for (auto [key, target] : {std::pair{"start", &slab.start}, std::pair{"count", &slab.count},
                             std::pair{"step", &slab.step}}) {
    Result<std::vector<int64_t>> values = IntArray(*slab_json, key);
    if (!values.ok()) return ErrorReply(values.status());
    *target = std::move(values).value();
  }
  Result<DatasetReader*> reader = files.Get(request.payload);
  if (!reader.ok()) return ErrorReply(reader.status());
  Result<NdArray> array = (*reader)->Read(signal->get<size_t>(), slab);
  if (!array.ok()) return ErrorReply(array.status());
  payload = std::move(array->bytes);
  return Json{{"ok", true},
              {"dtype", std::string(DTypeName(array->dtype))},
              {"shape", array->shape},
              {"bytes", payload.size()}};
}

// The open reply: DatasetToJson of the file's dataset, with its signals' metadata trees
// moved in rather than copied (they are most of the reply).
Json OpenReply(OpenFiles::Opened opened) {
  Json dataset = DatasetToJson(opened.reader->dataset());
  Json& signals = dataset["signals"];
  for (size_t k = 0; k < opened.metadata.size() && k < signals.size(); ++k) {
    signals[k]["metadata"] = std::move(opened.metadata[k]);
  }
  Json reply = Json::object();
  reply["ok"] = true;
  reply["dataset"] = std::move(dataset);
  return reply;
}

int Serve() {
  if (!WriteFrame(Json{{"hello", "scisearch-hdf5-worker"}, {"protocol", kWorkerProtocol}})) {
    return 1;
  }
  OpenFiles files;
  Request request;
  while (ReadFrame(request)) {
    std::vector<uint8_t> payload;
    Json reply;
    try {
      const Json& op = request.header["op"];
      if (op == "open") {
        Result<OpenFiles::Opened> opened = files.Open(request.payload);
        reply = opened.ok() ? OpenReply(std::move(opened).value()) : ErrorReply(opened.status());
      } else if (op == "read") {
        reply = ServeRead(files, request, payload);
      } else {
        reply = ErrorReply(Status::InvalidArgument("request: unknown op"));
      }
    } catch (const std::exception& e) {
      payload.clear();
      reply = ErrorReply(Status::Internal(std::string("HDF5 worker: ") + e.what()));
    }
    if (!WriteFrame(reply, payload)) break;
  }
  return 0;
}

}  // namespace
}  // namespace scisearch::formats

int main() {
  // Descriptors the client leaked into this process (those it opened without
  // O_CLOEXEC) could keep its pipes or files open after it is gone.
  ::close_range(scisearch::formats::kWorkerSocketFd + 1, ~0U, 0);
  std::signal(SIGPIPE, SIG_IGN);
  const int status = scisearch::formats::Serve();
  // _exit: the files are open read-only, there is nothing to flush, and closing files
  // that a damaged structure left HDF5 half-parsed can itself crash the library.
  std::fflush(nullptr);
  ::_exit(status);
}
