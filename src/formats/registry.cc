// OpenDataset: chooses a reader by magic bytes, then by extension, and unwraps gzip.
#include <libdeflate.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <system_error>
#include <thread>
#include <utility>

#include "formats/byte_source.h"
#include "formats/readers.h"

namespace scisearch::formats {
namespace {

namespace fs = std::filesystem;

// Inflated files larger than this are refused: a gzip bomb must not fill the disk.
constexpr uint64_t kMaxInflatedBytes = 8ull << 30;

std::string LowerExtension(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext;
}

bool HasMagic(std::span<const uint8_t> head, std::initializer_list<uint8_t> magic, size_t at = 0) {
  if (head.size() < at + magic.size()) return false;
  return std::equal(magic.begin(), magic.end(), head.begin() + at);
}

// Removes a file on destruction.
class TempFile {
 public:
  explicit TempFile(fs::path path) : path_(std::move(path)) {}
  TempFile(TempFile&& other) noexcept : path_(std::exchange(other.path_, {})) {}
  TempFile& operator=(TempFile&& other) noexcept {
    if (this != &other) {
      Remove();
      path_ = std::exchange(other.path_, {});
    }
    return *this;
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() { Remove(); }

  const fs::path& path() const { return path_; }

 private:
  void Remove() {
    if (path_.empty()) return;
    std::error_code ignored;
    fs::remove(path_, ignored);
    path_.clear();
  }
  fs::path path_;
};

// A reader of a gzip-compressed file: owns the inflated temporary file and the reader
// over it, and reports the original path.
class InflatedReader : public DatasetReader {
 public:
  InflatedReader(std::unique_ptr<DatasetReader> inner, TempFile temp, const fs::path& original)
      : temp_(std::move(temp)), inner_(std::move(inner)), dataset_(inner_->dataset()) {
    dataset_.path = original;
    dataset_.member_files = {original};
  }
  const Dataset& dataset() const override { return dataset_; }
  Dataset TakeDataset() override { return std::move(dataset_); }
  Result<NdArray> Read(size_t signal_index, const Hyperslab& slab) override {
    return inner_->Read(signal_index, slab);
  }

 private:
  TempFile temp_;  // declared before inner_, so the reader closes the file before it goes
  std::unique_ptr<DatasetReader> inner_;
  Dataset dataset_;
};

struct GzCloser {
  void operator()(gzFile f) const { gzclose(f); }
};
struct DecompressorFree {
  void operator()(libdeflate_decompressor* d) const { libdeflate_free_decompressor(d); }
};
struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

// .gz files that inflate to at most this (a 4096 x 4096 16-bit image) are inflated in
// memory, in one libdeflate call (faster than zlib's stream, and gzip-compressed
// micrographs are mostly smaller); larger ones are streamed through zlib. A reader
// thread then holds at most twice this (compressed and inflated bytes) at once.
constexpr uint64_t kMaxWholeInflateBytes = 32ull << 20;

// The inflated bytes of a .gz file of one gzip member that inflates to at most
// kMaxWholeInflateBytes. nullopt for any other file (larger, several members, damaged):
// the caller then streams it through zlib, which also names any damage.
std::optional<std::vector<uint8_t>> InflateWhole(const fs::path& gz) {
  Result<FileSource> source = FileSource::Open(gz);
  if (!source.ok()) return std::nullopt;
  const uint64_t size = source->size();
  constexpr uint64_t kMinGzipBytes = 18;  // 10-byte header, empty stream, 8-byte trailer
  if (size < kMinGzipBytes || size > kMaxWholeInflateBytes) return std::nullopt;
  Result<std::vector<uint8_t>> bytes = source->ReadBytes(0, size);
  if (!bytes.ok()) return std::nullopt;
  // The trailer's ISIZE: the inflated size modulo 2^32, little-endian.
  const uint8_t* trailer = bytes->data() + size - 4;
  const uint64_t inflated = uint64_t(trailer[0]) | uint64_t(trailer[1]) << 8 |
                            uint64_t(trailer[2]) << 16 | uint64_t(trailer[3]) << 24;
  if (inflated == 0 || inflated > kMaxWholeInflateBytes) return std::nullopt;
  std::unique_ptr<libdeflate_decompressor, DecompressorFree> decompressor(
      libdeflate_alloc_decompressor());
  if (decompressor == nullptr) return std::nullopt;
  std::vector<uint8_t> out(inflated);
  size_t in_used = 0, out_used = 0;
  const libdeflate_result result = libdeflate_gzip_decompress_ex(
      decompressor.get(), bytes->data(), size, out.data(), out.size(), &in_used, &out_used);
  if (result != LIBDEFLATE_SUCCESS || in_used != size || out_used != inflated) return std::nullopt;
  return out;
}

// Inflates `gz` into a new temporary file in `temp_dir` (the system's when empty).
Result<TempFile> Inflate(const fs::path& gz, const fs::path& temp_dir) {
  const fs::path dir = temp_dir.empty() ? fs::temp_directory_path() : temp_dir;
  // A name no other thread or process has: mkstemps creates the file exclusively. The
  // inner name ("x.tif.gz" -> "x.tif") keeps the extension readers may look at.
  const std::string suffix = "-" + gz.stem().filename().string();
  std::string name = (dir / ("scisearch-XXXXXX" + suffix)).string();
  const int fd = ::mkstemps(name.data(), int(suffix.size()));
  if (fd < 0) {
    return Status::IoError(gz.string() + ": cannot create a temporary file in " + dir.string() +
                           " to inflate it: " + std::strerror(errno));
  }
  TempFile temp(name);
  std::unique_ptr<std::FILE, FileCloser> out(::fdopen(fd, "wb"));
  if (!out) {
    ::close(fd);
    return Status::IoError(temp.path().string() + ": cannot open the temporary file");
  }
  const auto write = [&](const void* data, size_t n) -> Status {
    if (std::fwrite(data, 1, n, out.get()) != n) {
      return Status::IoError(temp.path().string() + ": write failed (disk full?)");
    }
    return Status::Ok();
  };

  if (std::optional<std::vector<uint8_t>> whole = InflateWhole(gz)) {
    SCISEARCH_RETURN_IF_ERROR(write(whole->data(), whole->size()));
  } else {
    std::unique_ptr<gzFile_s, GzCloser> in(gzopen(gz.c_str(), "rb"));
    if (!in) return Status::IoError(gz.string() + ": cannot open");
    gzbuffer(in.get(), 1 << 17);
    std::vector<char> buffer(1 << 17);
    uint64_t total = 0;
    while (true) {
      const int n = gzread(in.get(), buffer.data(), static_cast<unsigned>(buffer.size()));
      if (n < 0) {
        int err = 0;
        const char* msg = gzerror(in.get(), &err);
        return Status::Corrupt(gz.string() + ": gzip data is damaged: " + (msg ? msg : "?"));
      }
      if (n == 0) break;
      total += uint64_t(n);
      if (total > kMaxInflatedBytes) {
        return Status::Unsupported(gz.string() + ": inflates to more than " +
                                   std::to_string(kMaxInflatedBytes >> 30) + " GiB");
      }
      SCISEARCH_RETURN_IF_ERROR(write(buffer.data(), size_t(n)));
    }
  }
  if (std::fclose(out.release()) != 0) {
    return Status::IoError(temp.path().string() + ": write failed");
  }
  return temp;
}

Result<std::unique_ptr<DatasetReader>> OpenByContent(const fs::path& path, const fs::path& name,
                                                     const OpenOptions& options, int depth);

Result<std::unique_ptr<DatasetReader>> OpenGzip(const fs::path& path, const OpenOptions& options,
                                                int depth) {
  if (depth > 0) return Status::Unsupported(path.string() + ": nested gzip is not read");
  SCISEARCH_ASSIGN_OR_RETURN(TempFile temp, Inflate(path, options.temp_dir));
  auto inner = OpenByContent(temp.path(), path.stem(), options, depth + 1);
  if (!inner.ok()) {
    // Name the original file, not the temporary one.
    std::string msg = inner.status().message();
    const std::string t = temp.path().string();
    for (size_t p; (p = msg.find(t)) != std::string::npos;) msg.replace(p, t.size(), path.string());
    return Status::Error(inner.status().code(), msg);
  }
  return std::unique_ptr<DatasetReader>(
      new InflatedReader(std::move(inner).value(), std::move(temp), path));
}

// Opens `path`, whose logical name (for extension checks) is `name`.
Result<std::unique_ptr<DatasetReader>> OpenByContent(const fs::path& path, const fs::path& name,
                                                     const OpenOptions& options, int depth) {
  SCISEARCH_ASSIGN_OR_RETURN(FileSource source, FileSource::Open(path));
  std::array<uint8_t, 2048 + 8> buffer{};
  const uint64_t n = std::min<uint64_t>(buffer.size(), source.size());
  SCISEARCH_RETURN_IF_ERROR(source.ReadAt(0, n, buffer.data()));
  std::span<const uint8_t> head(buffer.data(), n);
  const std::string ext = LowerExtension(name);

  if (LooksLikeGzip(head)) return OpenGzip(path, options, depth);
  if (ext == ".emi") return OpenTia(path);
  if (LooksLikeTiaSer(head)) return OpenTia(path);
  if (LooksLikeHdf5(head)) return OpenEmd(path);
  if (LooksLikeTiff(head)) return OpenTiff(path);
  if (LooksLikePng(head)) return OpenPng(path);
  if (LooksLikeJpeg(head)) return OpenJpeg(path);
  if (LooksLikeDigitalMicrograph(head)) return OpenDigitalMicrograph(path);
  // MRC has no magic at the start; MRC2014 writes "MAP " at byte 208.
  if (HasMagic(head, {'M', 'A', 'P', ' '}, 208) || ext == ".mrc" || ext == ".mrcs" ||
      ext == ".map" || ext == ".rec" || ext == ".st" || ext == ".ali") {
    return OpenMrc(path);
  }
  if (source.size() == 0) return Status::Corrupt(path.string() + ": file is empty");
  return Status::Unsupported(path.string() + ": not a format scisearch reads (extension '" + ext +
                             "', no known magic bytes)");
}

}  // namespace

bool LooksLikeGzip(std::span<const uint8_t> head) { return HasMagic(head, {0x1f, 0x8b}); }
bool LooksLikeHdf5(std::span<const uint8_t> head) {
  // The superblock may follow a user block of 512, 1024 or 2048 bytes.
  for (size_t at : {0, 512, 1024, 2048}) {
    if (HasMagic(head, {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'}, at)) return true;
  }
  return false;
}
bool LooksLikeTiff(std::span<const uint8_t> head) {
  return HasMagic(head, {'I', 'I', 42, 0}) || HasMagic(head, {'M', 'M', 0, 42}) ||
         HasMagic(head, {'I', 'I', 43, 0}) || HasMagic(head, {'M', 'M', 0, 43});
}
bool LooksLikePng(std::span<const uint8_t> head) {
  return HasMagic(head, {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'});
}
bool LooksLikeJpeg(std::span<const uint8_t> head) { return HasMagic(head, {0xff, 0xd8, 0xff}); }
bool LooksLikeTiaSer(std::span<const uint8_t> head) {
  // ByteOrder 0x4949 then SeriesID 0x0197, both little-endian.
  return HasMagic(head, {0x49, 0x49, 0x97, 0x01});
}
bool LooksLikeDigitalMicrograph(std::span<const uint8_t> head) {
  return HasMagic(head, {0, 0, 0, 3}) || HasMagic(head, {0, 0, 0, 4});
}

bool IsCandidateFile(const fs::path& path) {
  fs::path p = path;
  if (LowerExtension(p) == ".gz") p = p.stem();
  static const std::array<std::string_view, 18> kExtensions = {
      ".emi", ".ser", ".dm3", ".dm4", ".emd",  ".h5",  ".hdf5", ".mrc",  ".mrcs",
      ".map", ".rec", ".st",  ".tif", ".tiff", ".png", ".jpg",  ".jpeg", ".ali"};
  const std::string ext = LowerExtension(p);
  return std::find(kExtensions.begin(), kExtensions.end(), ext) != kExtensions.end();
}

Result<std::unique_ptr<DatasetReader>> OpenDataset(const fs::path& path,
                                                   const OpenOptions& options) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);  // one stat for both checks
  if (!fs::exists(status)) return Status::NotFound(path.string() + ": no such file");
  if (fs::is_directory(status)) return Status::InvalidArgument(path.string() + ": is a folder");
  return OpenByContent(path, path, options, 0);
}

}  // namespace scisearch::formats
