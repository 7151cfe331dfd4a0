// The formats module: reads instrument files into signals with typed metadata.
//
// This header is the module's whole interface. A dataset is what a scientist
// thinks of as one acquisition: a single file, or a TIA .emi with its _N.ser
// files. Opening one parses headers and metadata only; pixel data is read
// lazily, one hyperslab at a time, so memory stays bounded whatever the file's size.
//
// Thread safety: distinct DatasetReader objects may be used from distinct
// threads at once. One DatasetReader must not be used by two threads at once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace scisearch::formats {

// A metadata tree, typed as the file types it: integers stay integers, reals
// reals, strings strings; objects keep the file's order of keys.
using Metadata = nlohmann::ordered_json;

enum class DType {
  kBool,
  kInt8,
  kUInt8,
  kInt16,
  kUInt16,
  kInt32,
  kUInt32,
  kInt64,
  kUInt64,
  kFloat32,
  kFloat64,
  kComplex64,   // two float32: real, imaginary
  kComplex128,  // two float64
  kRGB8,        // three uint8: R, G, B
  kRGBA8,       // four uint8: R, G, B, A
};

// "uint16", "float32", "complex64", "rgba8", ... (NumPy's names where NumPy has one).
std::string_view DTypeName(DType dtype);
// The inverse of DTypeName; nullopt for a name it never returns.
std::optional<DType> DTypeFromName(std::string_view name);
// Bytes per element.
size_t DTypeSize(DType dtype);
// The NumPy array-protocol descr of the little-endian type: "<u2", "<c8", "|b1",
// or for RGB(A) a structured list "[('R', '|u1'), ('G', '|u1'), ('B', '|u1')]".
std::string NpyDescr(DType dtype);

// The operating mode of the instrument when the signal was acquired.
enum class Mode {
  kUnknown,
  kTemImage,       // parallel-beam TEM image
  kStemImage,      // scanned-probe image (HAADF, BF, DF, ...)
  kDiffraction,    // a diffraction pattern (SAED, CBED, nanobeam, Ronchigram)
  kSemImage,       // SEM image (secondary or backscattered electrons)
  kSpectrum,       // a single EDS/EELS/CL spectrum, or a line of them
  kSpectrumImage,  // a map of spectra (EDS/EELS spectrum image)
  k4dStem,         // a diffraction pattern per scan position
  kVolume,         // a 3-D map or tomogram (MRC maps)
  kOpticalImage,   // light-microscope or navigation-camera image
  kImage,          // an image whose mode the file does not tell
};
// "tem image", "stem image", "diffraction", "sem image", "spectrum",
// "spectrum image", "4d-stem", "volume", "optical image", "image", "unknown".
std::string_view ModeName(Mode mode);
// The inverse of ModeName; nullopt for a name it never returns.
std::optional<Mode> ModeFromName(std::string_view name);

// One axis of a signal. Physical coordinate of index i is offset + i * scale, in units.
struct Axis {
  std::string name;  // "x", "y", "energy", "frame", "scan_y", ... never empty
  int64_t size = 0;
  double scale = 1.0;
  double offset = 0.0;
  std::string units;  // as the file writes them, normalised to SI spellings ("nm", "1/nm", "eV")
  bool navigate = false;  // true for scan/series axes, false for the axes of one frame
};

// Fields that every format fills in the same way, for searching and faceting.
// A field the file does not tell is left empty.
struct NormalisedFields {
  std::optional<std::string> acquired;  // ISO 8601, "2011-10-18T14:03:12" (+offset when known)
  std::optional<std::string> instrument;
  Mode mode = Mode::kUnknown;
  std::optional<double> beam_energy_kev;        // accelerating voltage in kV (= beam energy in keV)
  std::optional<double> magnification;          // indicated magnification (x)
  std::optional<double> pixel_size_m;           // size of one pixel of the frame, metres (or 1/m in
                                                // diffraction; see pixel_size_units)
  std::optional<std::string> pixel_size_units;  // "m" or "1/m"
  std::optional<std::string> detector;
};

struct Signal {
  std::string name;  // the detector or dataset name when the file gives one
  DType dtype = DType::kUInt8;
  std::vector<int64_t> shape;              // C order: slowest axis first
  std::vector<Axis> axes;                  // one per entry of shape, same order
  Metadata metadata = Metadata::object();  // the metadata of this signal: the file's whole tree
  NormalisedFields fields;

  int64_t ElementCount() const;
  uint64_t ByteCount() const { return uint64_t(ElementCount()) * DTypeSize(dtype); }
};

// A dense array in C order, little-endian, with the file's own element type.
struct NdArray {
  DType dtype = DType::kUInt8;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;  // ElementCount() * DTypeSize(dtype) bytes

  int64_t ElementCount() const;
};

// A regular selection of a signal: along axis k, indices start[k], start[k]+step[k], ...,
// count[k] of them. All three vectors have one entry per axis of the signal.
struct Hyperslab {
  std::vector<int64_t> start;
  std::vector<int64_t> count;
  std::vector<int64_t> step;

  // The whole signal of this shape.
  static Hyperslab All(const std::vector<int64_t>& shape);
  // Checks that the selection lies inside `shape`; the error names the axis.
  Status Validate(const std::vector<int64_t>& shape) const;
};

struct Dataset {
  std::filesystem::path path;  // the file opened (the .emi for a TIA dataset)
  std::string format;          // "tia", "dm3", "dm4", "emd-berkeley", "emd-velox", "mrc",
                               // "tiff", "png", "jpeg"
  std::vector<std::filesystem::path> member_files;  // every file the dataset reads, path first
  std::vector<Signal> signals;
};

// An open dataset. Owns its file handles; closing happens in the destructor.
class DatasetReader {
 public:
  virtual ~DatasetReader() = default;

  // Headers and metadata, parsed at open time.
  virtual const Dataset& dataset() const = 0;

  // Moves the dataset out of the reader, for a caller that needs nothing more of it
  // (ingest's metadata pass): no copy of the metadata trees is made. Afterwards the
  // reader may only be destroyed. The default copies dataset().
  virtual Dataset TakeDataset() { return dataset(); }

  // Reads a selection of signal `signal_index` into a new array of shape slab.count.
  // Reads only the bytes the selection needs. Errors name the file and the reason.
  virtual Result<NdArray> Read(size_t signal_index, const Hyperslab& slab) = 0;
};

struct OpenOptions {
  // Where gzip-compressed inputs are inflated to (a temporary file, removed when
  // the reader is destroyed). Empty: the system's temporary directory.
  std::filesystem::path temp_dir;
};

// Opens the dataset at `path`, choosing the reader by the file's magic bytes and
// then its extension. For a .ser whose .emi lies beside it, opens the .emi's dataset.
// Returns kUnsupported for files no reader knows, kCorrupt for damaged files.
// Thread-safe: may be called from any thread.
Result<std::unique_ptr<DatasetReader>> OpenDataset(const std::filesystem::path& path,
                                                   const OpenOptions& options = {});

// True when `path` has an extension that some reader handles (.emi .ser .dm3 .dm4 .emd
// .h5 .hdf5 .mrc .mrcs .map .rec .st .tif .tiff .png .jpg .jpeg, optionally + .gz).
bool IsCandidateFile(const std::filesystem::path& path);

// Writes `array` to `out` as a NumPy .npy file (format version 1.0).
Status WriteNpy(const NdArray& array, const std::filesystem::path& out);

// Streams signal `signal_index` of `reader` to a .npy file in slabs of at most
// `max_slab_bytes`, so that memory stays bounded for any signal size.
Status ExportNpy(DatasetReader& reader, size_t signal_index, const std::filesystem::path& out,
                 uint64_t max_slab_bytes = 64ull << 20);

// The metadata, shape, axes and fields of a dataset as the JSON object of
// `scisearch inspect --json`.
nlohmann::ordered_json DatasetToJson(const Dataset& dataset);

// `json` as compact JSON text: byte for byte json.dump(-1, ' ', false,
// error_handler_t::replace) (invalid UTF-8 in a string becomes U+FFFD), written several
// times faster for the string-heavy metadata trees of instrument files: strings that
// need no escaping are copied whole rather than decoded byte by byte.
std::string DumpJson(const nlohmann::ordered_json& json);

}  // namespace scisearch::formats
