// Velox and Berkeley EMD writers on HDF5's C API.
//
// Both writers work in two steps. First they turn the acquisition into a FileLayout:
// the groups, datasets and attributes of the file, with every byte of every dataset
// ready (axes permuted into the file's order, Velox's JSON rendered, spectrum images
// encoded as event streams). That step is plain C++ and runs in parallel on any
// thread. Then WriteLayout creates the file with HDF5, holding the one mutex that
// serialises this file's HDF5 calls, since Debian's libhdf5 is built without its
// thread-safety option.
//
// Velox (Thermo Fisher), as Velox 8-11 writes it and emd_hdf5.cc reads it:
//   /Data/Image/<uuid>/Data              (y, x, frames), the element type of the signal
//   /Data/Image/<uuid>/Metadata          (60000, frames) uint8: the JSON per frame, NUL-padded
//   /Data/Image/<uuid>/FrameLookupTable  (frames,) uint32
//   /Data/Spectrum/<uuid>/Data           (channels, n)
//   /Data/SpectrumStream/<uuid>/Data     (events, 1) uint16: channel numbers, 65535 ending
//                                        each scan pixel; AcquisitionSettings (JSON string:
//                                        bincount, RasterScanDefinition), FrameLocationTable
//   /Data/SpectrumImage/<uuid>/          Metadata and SpectrumImageSettings of that stream
//   /Version, /Experiment, /Data/Text/<uuid>: JSON strings (format version, log);
//   /Operations, /Presentation: Velox's display state (empty)
// One uuid per detector; the JSON writes every value as a string, lengths in metres
// (1/m for diffraction), energies in eV, voltages in V, times as Unix seconds.
// Velox keeps a spectrum image as the detector's event stream (its own SpectrumImage
// dataset is a proprietary compressed form), so that is what we write: a signal of
// integer counts [y, x, channels] becomes one stream that reads back as the same counts.
//
// Berkeley EMD v0.2, as NCEM's TEAM instruments write it (Acquisition_18.emd):
//   file attributes version_major = 0, version_minor = 2
//   /data/<name>  (emd_group_type = 1, record_by = "image" | "spectrum" below rank 4)
//       data, dim1..dimN (one coordinate per index; name and units attributes, units
//       spelt the EMD way: "[n_m]", "[1_/_n_m]", "[e_V]"), "acquisition times" (Unix s)
//   /microscope   attributes name, high tension (V), magnification
//   /sample       attribute "sample name";  /user  attribute name;  /comments
//
// What each format keeps of the acquisition (the rest is not in the format):
//   Velox: acquired (whole seconds), instrument, beam energy, magnification (STEM as
//     CustomProperties.StemMagnification, TEM as Optics.NominalMagnification, none in
//     diffraction), mode through OperatingMode and the calibration units, pixel size,
//     detector per signal, sample description. No operator field. Image axes come
//     back as frame/y/x in metres (1/m), spectrum axes in eV; the reader names the
//     spectrum image "EDS" (its detector stays in BinaryResult.Detector).
//   Berkeley: acquired (per signal group), instrument, beam energy, magnification,
//     axes (names and units as given), operator and sample; the mode only as far as
//     rank, record_by and units tell (image, diffraction, spectrum, spectrum image,
//     4D-STEM); the detector as a /microscope attribute. The reader lists signals in
//     name order.
#include <hdf5.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "formats/normalise.h"
#include "simulate/atomic_file.h"
#include "simulate/writer_input.h"
#include "simulate/writers.h"

namespace scisearch::simulate {
namespace {

namespace fs = std::filesystem;
using formats::Axis;
using formats::DType;
using formats::Mode;
using formats::NdArray;
using Json = nlohmann::ordered_json;

// Bounds that keep a mistaken caller from asking for absurd files.
constexpr int kMaxRank = 32;
constexpr uint64_t kMaxElements = uint64_t(1) << 34;
// Velox reserves 60000 bytes of JSON per frame; longer documents get longer columns.
constexpr size_t kVeloxMetadataRows = 60000;
// Event-stream values (uint16) of one spectrum image: 256 MiB.
constexpr uint64_t kMaxStreamValues = uint64_t(1) << 27;
constexpr uint16_t kStreamPixelEnd = 0xFFFF;

// ---------------------------------------------------------------------------------
// The file as data.

using AttributeValue = std::variant<int32_t, double, std::string>;

struct AttributeSpec {
  std::string name;
  AttributeValue value;
};

struct GroupSpec {
  std::string path;
  std::vector<AttributeSpec> attributes;
};

struct DatasetSpec {
  std::string path;
  // An array dataset: its dims (empty for a scalar), element type and bytes (C order,
  // little-endian): `owned`, or `borrowed` when the caller's array is already laid out.
  std::vector<hsize_t> dims;
  DType dtype = DType::kUInt8;
  std::vector<uint8_t> owned;
  const uint8_t* borrowed = nullptr;
  // Or a one-element variable-length string dataset (Velox's JSON documents).
  std::optional<std::string> text;
  std::vector<AttributeSpec> attributes;

  const uint8_t* bytes() const { return borrowed != nullptr ? borrowed : owned.data(); }
};

// Groups are created in order (parents first), then datasets.
struct FileLayout {
  std::vector<AttributeSpec> root_attributes;
  std::vector<GroupSpec> groups;
  std::vector<DatasetSpec> datasets;
};

// ---------------------------------------------------------------------------------
// HDF5.

// An HDF5 identifier with the function that closes it.
class H5Id {
 public:
  using Closer = herr_t (*)(hid_t);
  H5Id(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  H5Id(H5Id&& other) noexcept : id_(other.id_), closer_(other.closer_) { other.id_ = -1; }
  H5Id& operator=(H5Id&& other) noexcept {
    if (this != &other) {
      if (id_ >= 0) closer_(id_);
      id_ = other.id_;
      closer_ = other.closer_;
      other.id_ = -1;
    }
    return *this;
  }
  H5Id(const H5Id&) = delete;
  H5Id& operator=(const H5Id&) = delete;
  ~H5Id() {
    if (id_ >= 0) closer_(id_);
  }
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  // Gives up ownership (for closing with a checked result).
  hid_t release() {
    const hid_t id = id_;
    id_ = -1;
    return id;
  }

 private:
  hid_t id_;
  Closer closer_;
};

H5Id FileId(hid_t id) { return H5Id(id, H5Fclose); }
H5Id GroupId(hid_t id) { return H5Id(id, H5Gclose); }
H5Id DatasetId(hid_t id) { return H5Id(id, H5Dclose); }
H5Id SpaceId(hid_t id) { return H5Id(id, H5Sclose); }
H5Id TypeId(hid_t id) { return H5Id(id, H5Tclose); }
H5Id AttributeId(hid_t id) { return H5Id(id, H5Aclose); }
H5Id PropertiesId(hid_t id) { return H5Id(id, H5Pclose); }

// Turns HDF5's printing of errors to stderr off for the current scope and restores
// the previous handler after it (callers hold the HDF5 mutex).
class QuietHdf5Errors {
 public:
  QuietHdf5Errors() {
    H5Eget_auto2(H5E_DEFAULT, &function_, &data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~QuietHdf5Errors() {
    H5Eclear2(H5E_DEFAULT);
    H5Eset_auto2(H5E_DEFAULT, function_, data_);
  }
  QuietHdf5Errors(const QuietHdf5Errors&) = delete;
  QuietHdf5Errors& operator=(const QuietHdf5Errors&) = delete;

 private:
  H5E_auto2_t function_ = nullptr;
  void* data_ = nullptr;
};

// The innermost description on HDF5's error stack (the cause, not the API call that
// reported it); clears the stack.
std::string TakeHdf5Cause() {
  std::string cause;
  auto walk = [](unsigned, const H5E_error2_t* error, void* data) -> herr_t {
    if (error != nullptr && error->desc != nullptr && error->desc[0] != '\0') {
      *static_cast<std::string*>(data) = error->desc;
    }
    return 0;
  };
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, walk, &cause);
  H5Eclear2(H5E_DEFAULT);
  return cause;
}

// "<file>: <object>: <what> (HDF5: <cause>)".
Status Hdf5Failure(const std::string& file, const std::string& object, const std::string& what) {
  std::string message = file + ": " + object + ": " + what;
  const std::string cause = TakeHdf5Cause();
  if (!cause.empty()) message += " (HDF5: " + cause + ")";
  return Status::IoError(message);
}

// The HDF5 type of `dtype`, little-endian as NdArray's bytes are, so it serves as the
// file type and the memory type alike. Booleans as h5py writes them (an int8 enum
// FALSE/TRUE), complex numbers as a compound {r, i}.
H5Id TypeOf(DType dtype) {
  auto copy = [](hid_t type) { return TypeId(H5Tcopy(type)); };
  switch (dtype) {
    case DType::kBool: {
      H5Id type = TypeId(H5Tenum_create(H5T_STD_I8LE));
      if (!type.valid()) return type;
      const int8_t no = 0, yes = 1;
      if (H5Tenum_insert(type.get(), "FALSE", &no) < 0 ||
          H5Tenum_insert(type.get(), "TRUE", &yes) < 0) {
        return TypeId(-1);
      }
      return type;
    }
    case DType::kInt8:
      return copy(H5T_STD_I8LE);
    case DType::kUInt8:
      return copy(H5T_STD_U8LE);
    case DType::kInt16:
      return copy(H5T_STD_I16LE);
    case DType::kUInt16:
      return copy(H5T_STD_U16LE);
    case DType::kInt32:
      return copy(H5T_STD_I32LE);
    case DType::kUInt32:
      return copy(H5T_STD_U32LE);
    case DType::kInt64:
      return copy(H5T_STD_I64LE);
    case DType::kUInt64:
      return copy(H5T_STD_U64LE);
    case DType::kFloat32:
      return copy(H5T_IEEE_F32LE);
    case DType::kFloat64:
      return copy(H5T_IEEE_F64LE);
    case DType::kComplex64:
    case DType::kComplex128: {
      const bool single = dtype == DType::kComplex64;
      const size_t part = single ? 4 : 8;
      H5Id type = TypeId(H5Tcreate(H5T_COMPOUND, 2 * part));
      if (!type.valid()) return type;
      const hid_t part_type = single ? H5T_IEEE_F32LE : H5T_IEEE_F64LE;
      if (H5Tinsert(type.get(), "r", 0, part_type) < 0 ||
          H5Tinsert(type.get(), "i", part, part_type) < 0) {
        return TypeId(-1);
      }
      return type;
    }
    case DType::kRGB8:
    case DType::kRGBA8:
      break;
  }
  return TypeId(-1);
}

// `text` with every byte that does not start or continue a valid UTF-8 sequence
// replaced by U+FFFD, so that strings declared UTF-8 are UTF-8 (callers pass what
// users typed, in whatever encoding).
std::string ValidUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const auto byte = static_cast<unsigned char>(text[i]);
    size_t length = byte < 0x80           ? 1
                    : (byte >> 5) == 0x6  ? 2
                    : (byte >> 4) == 0xE  ? 3
                    : (byte >> 3) == 0x1E ? 4
                                          : 0;
    if (length == 2 && byte < 0xC2) length = 0;  // overlong
    if (length == 4 && byte > 0xF4) length = 0;  // past U+10FFFF
    bool valid = length > 0 && i + length <= text.size();
    for (size_t k = 1; valid && k < length; ++k) {
      valid = (static_cast<unsigned char>(text[i + k]) & 0xC0) == 0x80;
    }
    if (valid && length == 3) {
      const auto second = static_cast<unsigned char>(text[i + 1]);
      valid = !(byte == 0xE0 && second < 0xA0) && !(byte == 0xED && second >= 0xA0);
    }
    if (valid && length == 4) {
      const auto second = static_cast<unsigned char>(text[i + 1]);
      valid = !(byte == 0xF0 && second < 0x90) && !(byte == 0xF4 && second >= 0x90);
    }
    if (valid) {
      out.append(text.substr(i, length));
      i += length;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

// A fixed-length UTF-8 string type of `length` bytes (at least one).
H5Id FixedStringType(size_t length) {
  H5Id type = TypeId(H5Tcopy(H5T_C_S1));
  if (!type.valid()) return type;
  if (H5Tset_size(type.get(), std::max<size_t>(length, 1)) < 0 ||
      H5Tset_strpad(type.get(), H5T_STR_NULLPAD) < 0 ||
      H5Tset_cset(type.get(), H5T_CSET_UTF8) < 0) {
    return TypeId(-1);
  }
  return type;
}

Status WriteAttribute(hid_t object, const AttributeSpec& attribute, const std::string& file,
                      const std::string& object_path) {
  const std::string where = object_path + " attribute " + attribute.name;
  H5Id space = SpaceId(H5Screate(H5S_SCALAR));
  if (!space.valid()) return Hdf5Failure(file, where, "cannot create its dataspace");
  struct Writer {
    H5Id type;
    const void* buffer;
  };
  std::string padded;
  Writer writer = std::visit(
      [&](const auto& value) -> Writer {
        using T = std::decay_t<decltype(value)>;
        if constexpr (std::is_same_v<T, int32_t>) {
          return {TypeId(H5Tcopy(H5T_STD_I32LE)), &value};
        } else if constexpr (std::is_same_v<T, double>) {
          return {TypeId(H5Tcopy(H5T_IEEE_F64LE)), &value};
        } else {
          padded = ValidUtf8(value);
          const size_t length = padded.size();
          if (padded.empty()) padded.push_back('\0');
          return {FixedStringType(length), padded.data()};
        }
      },
      attribute.value);
  if (!writer.type.valid()) return Hdf5Failure(file, where, "cannot create its type");
  H5Id id = AttributeId(H5Acreate2(object, attribute.name.c_str(), writer.type.get(), space.get(),
                                   H5P_DEFAULT, H5P_DEFAULT));
  if (!id.valid()) return Hdf5Failure(file, where, "cannot create the attribute");
  if (H5Awrite(id.get(), writer.type.get(), writer.buffer) < 0) {
    return Hdf5Failure(file, where, "cannot write the attribute");
  }
  return Status::Ok();
}

Status WriteAttributes(hid_t object, const std::vector<AttributeSpec>& attributes,
                       const std::string& file, const std::string& object_path) {
  for (const AttributeSpec& attribute : attributes) {
    SCISEARCH_RETURN_IF_ERROR(WriteAttribute(object, attribute, file, object_path));
  }
  return Status::Ok();
}

Status WriteDataset(hid_t file_id, const DatasetSpec& spec, hid_t create_properties,
                    hid_t transfer_properties, const std::string& file) {
  H5Id type = TypeId(-1);
  H5Id space = SpaceId(-1);
  if (spec.text) {
    type = TypeId(H5Tcopy(H5T_C_S1));
    if (type.valid() &&
        (H5Tset_size(type.get(), H5T_VARIABLE) < 0 || H5Tset_cset(type.get(), H5T_CSET_UTF8) < 0)) {
      type = TypeId(-1);
    }
    const hsize_t one = 1;
    space = SpaceId(H5Screate_simple(1, &one, nullptr));
  } else {
    type = TypeOf(spec.dtype);
    space = SpaceId(spec.dims.empty()
                        ? H5Screate(H5S_SCALAR)
                        : H5Screate_simple(int(spec.dims.size()), spec.dims.data(), nullptr));
  }
  if (!type.valid()) return Hdf5Failure(file, spec.path, "cannot create the element type");
  if (!space.valid()) return Hdf5Failure(file, spec.path, "cannot create the dataspace");
  H5Id dataset = DatasetId(H5Dcreate2(file_id, spec.path.c_str(), type.get(), space.get(),
                                      H5P_DEFAULT, create_properties, H5P_DEFAULT));
  if (!dataset.valid()) return Hdf5Failure(file, spec.path, "cannot create the dataset");
  herr_t written;
  if (spec.text) {
    const char* strings[1] = {spec.text->c_str()};
    written = H5Dwrite(dataset.get(), type.get(), H5S_ALL, H5S_ALL, transfer_properties, strings);
  } else {
    written = H5Dwrite(dataset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, spec.bytes());
  }
  if (written < 0) return Hdf5Failure(file, spec.path, "cannot write the data");
  return WriteAttributes(dataset.get(), spec.attributes, file, spec.path);
}

// Creates `path` (the temporary) holding `layout`. `display` names the file in errors.
Status WriteLayout(const fs::path& path, const std::string& display, const FileLayout& layout) {
  // Debian's libhdf5 is built without thread safety: concurrent calls corrupt its
  // global state. This mutex serialises every HDF5 call of this file. It is the
  // module's one piece of global mutable state, and unavoidable: the library's state
  // is global, so the lock guarding it must be too.
  static std::mutex hdf5_mutex;
  std::lock_guard<std::mutex> lock(hdf5_mutex);
  QuietHdf5Errors quiet;

  H5Id access = PropertiesId(H5Pcreate(H5P_FILE_ACCESS));
  // Network and read-only-mounted file systems reject HDF5's advisory locks; the
  // temporary name is ours alone anyway.
  if (!access.valid() || H5Pset_file_locking(access.get(), false, true) < 0) {
    return Hdf5Failure(display, "/", "cannot set the file access properties");
  }
  H5Id file = FileId(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, access.get()));
  if (!file.valid()) return Hdf5Failure(display, "/", "cannot create the file");

  // No modification times in object headers: the same acquisition gives the same bytes.
  // Arrays are written whole, so HDF5 need not fill them first (variable-length
  // strings need their fill value, so they keep the default).
  H5Id group_properties = PropertiesId(H5Pcreate(H5P_GROUP_CREATE));
  H5Id text_properties = PropertiesId(H5Pcreate(H5P_DATASET_CREATE));
  H5Id array_properties = PropertiesId(H5Pcreate(H5P_DATASET_CREATE));
  if (!group_properties.valid() || !text_properties.valid() || !array_properties.valid() ||
      H5Pset_obj_track_times(group_properties.get(), false) < 0 ||
      H5Pset_obj_track_times(text_properties.get(), false) < 0 ||
      H5Pset_obj_track_times(array_properties.get(), false) < 0 ||
      H5Pset_layout(text_properties.get(), H5D_CONTIGUOUS) < 0 ||
      H5Pset_layout(array_properties.get(), H5D_CONTIGUOUS) < 0 ||
      H5Pset_fill_time(array_properties.get(), H5D_FILL_TIME_NEVER) < 0) {
    return Hdf5Failure(display, "/", "cannot set the creation properties");
  }
  // Writing variable-length strings converts them through a buffer that HDF5 allocates
  // and zeroes per write, 1 MiB by default: most of the time of a small file.
  H5Id transfer_properties = PropertiesId(H5Pcreate(H5P_DATASET_XFER));
  if (!transfer_properties.valid() ||
      H5Pset_buffer(transfer_properties.get(), 4096, nullptr, nullptr) < 0) {
    return Hdf5Failure(display, "/", "cannot set the transfer properties");
  }

  {
    H5Id root = GroupId(H5Gopen2(file.get(), "/", H5P_DEFAULT));
    if (!root.valid()) return Hdf5Failure(display, "/", "cannot open the root group");
    SCISEARCH_RETURN_IF_ERROR(WriteAttributes(root.get(), layout.root_attributes, display, "/"));
  }
  for (const GroupSpec& spec : layout.groups) {
    H5Id group = GroupId(H5Gcreate2(file.get(), spec.path.c_str(), H5P_DEFAULT,
                                    group_properties.get(), H5P_DEFAULT));
    if (!group.valid()) return Hdf5Failure(display, spec.path, "cannot create the group");
    SCISEARCH_RETURN_IF_ERROR(WriteAttributes(group.get(), spec.attributes, display, spec.path));
  }
  for (const DatasetSpec& spec : layout.datasets) {
    const hid_t properties = spec.text ? text_properties.get() : array_properties.get();
    SCISEARCH_RETURN_IF_ERROR(
        WriteDataset(file.get(), spec, properties, transfer_properties.get(), display));
  }
  if (H5Fflush(file.get(), H5F_SCOPE_LOCAL) < 0) {
    return Hdf5Failure(display, "/", "cannot flush the file");
  }
  // Closing writes the superblock and the metadata cache: its failure is a failed write.
  if (H5Fclose(file.release()) < 0) return Hdf5Failure(display, "/", "cannot close the file");
  return Status::Ok();
}

Status WriteLayoutAtomically(const fs::path& target, const FileLayout& layout) {
  const std::string display = target.string();
  return WriteFileAtomically(
      target, [&](const fs::path& temporary) { return WriteLayout(temporary, display, layout); });
}

// ---------------------------------------------------------------------------------
// Validation shared by both writers.

std::string SignalField(size_t index, std::string_view field) {
  return "acquisition.signals[" + std::to_string(index) + "]." + std::string(field);
}

// Seconds since the Unix epoch of the acquisition (a time without a zone taken as UTC, the
// simulator's clock).
Result<double> AcquiredSeconds(const formats::NormalisedFields& fields) {
  SCISEARCH_ASSIGN_OR_RETURN(const IsoTime acquired, AcquiredTime(fields, 1970, 9999, "", "EMD"));
  const double seconds = UnixInstant(acquired);
  if (seconds < 0) {
    return Status::InvalidArgument("acquisition.fields.acquired: '" + *fields.acquired +
                                   "' is before 1970");
  }
  return seconds;
}

// Checks that signal `index` is a consistent array of a type EMD stores.
Status ValidateSignal(const SignalToWrite& signal, size_t index) {
  const NdArray& data = signal.data;
  if (data.dtype == DType::kRGB8 || data.dtype == DType::kRGBA8) {
    return Status::InvalidArgument(SignalField(index, "data.dtype") + ": " +
                                   std::string(formats::DTypeName(data.dtype)) +
                                   " is not an EMD element type");
  }
  if (data.shape.size() > size_t(kMaxRank)) {
    return Status::InvalidArgument(SignalField(index, "data.shape") + ": rank " +
                                   std::to_string(data.shape.size()) + " (1 to 32 supported)");
  }
  return ValidateSignalArray(signal, SignalLabel(index, signal), int64_t(kMaxElements),
                             kMaxElements);
}

Status ValidateAcquisition(const Acquisition& acquisition) {
  if (acquisition.signals.empty()) {
    return Status::InvalidArgument("acquisition.signals: empty (nothing to write)");
  }
  SCISEARCH_RETURN_IF_ERROR(ValidatePositiveFields(acquisition.fields, ""));
  for (size_t i = 0; i < acquisition.signals.size(); ++i) {
    SCISEARCH_RETURN_IF_ERROR(ValidateSignal(acquisition.signals[i], i));
  }
  return Status::Ok();
}

// The name a signal is stored under: its own, else the acquisition's detector. Empty
// when neither is known.
std::string SignalName(const Acquisition& acquisition, const SignalToWrite& signal) {
  if (!signal.name.empty()) return signal.name;
  if (acquisition.signals.size() == 1 && acquisition.fields.detector) {
    return *acquisition.fields.detector;
  }
  return "";
}

// Element `i` of `data` as an unsigned count, or nullopt for negative, fractional or
// non-integer-typed values.
std::optional<uint64_t> CountAt(const NdArray& data, size_t i) {
  const uint8_t* p = data.bytes.data() + i * formats::DTypeSize(data.dtype);
  auto load = [p](auto zero) {
    decltype(zero) value;
    std::memcpy(&value, p, sizeof(value));
    return value;
  };
  auto non_negative = [](int64_t v) -> std::optional<uint64_t> {
    if (v < 0) return std::nullopt;
    return uint64_t(v);
  };
  switch (data.dtype) {
    case DType::kBool:
    case DType::kUInt8:
      return load(uint8_t{});
    case DType::kUInt16:
      return load(uint16_t{});
    case DType::kUInt32:
      return load(uint32_t{});
    case DType::kUInt64:
      return load(uint64_t{});
    case DType::kInt8:
      return non_negative(load(int8_t{}));
    case DType::kInt16:
      return non_negative(load(int16_t{}));
    case DType::kInt32:
      return non_negative(load(int32_t{}));
    case DType::kInt64:
      return non_negative(load(int64_t{}));
    default:
      return std::nullopt;
  }
}

// Moves the elements of a C-order array of `shape` so that file dimension d holds
// source axis order[d]: out has shape (shape[order[0]], shape[order[1]], ...).
std::vector<uint8_t> Permute(const NdArray& data, const std::vector<int>& order) {
  const size_t element = formats::DTypeSize(data.dtype);
  const size_t rank = data.shape.size();
  std::vector<int64_t> source_stride(rank, 1);
  for (size_t a = rank - 1; a > 0; --a) source_stride[a - 1] = source_stride[a] * data.shape[a];
  std::vector<int64_t> out_shape(rank), stride(rank);
  for (size_t d = 0; d < rank; ++d) {
    out_shape[d] = data.shape[size_t(order[d])];
    stride[d] = source_stride[size_t(order[d])];
  }
  std::vector<uint8_t> out(data.bytes.size());
  std::vector<int64_t> index(rank, 0);
  const size_t total = data.bytes.size() / element;
  int64_t offset = 0;
  for (size_t i = 0; i < total; ++i) {
    std::memcpy(out.data() + i * element, data.bytes.data() + size_t(offset) * element, element);
    for (size_t d = rank; d-- > 0;) {
      offset += stride[d];
      if (++index[d] < out_shape[d]) break;
      offset -= stride[d] * index[d];
      index[d] = 0;
    }
  }
  return out;
}

// 32 lower-case hex digits, as Velox names its groups, derived from `key`.
std::string UuidFor(const std::string& key) {
  const Hash128 hash = Fnv1a128(key);
  char text[33];
  std::snprintf(text, sizeof(text), "%016llx%016llx", static_cast<unsigned long long>(hash.high),
                static_cast<unsigned long long>(hash.low));
  return text;
}

bool IsEnergyAxis(const Axis& axis) {
  const std::string units = formats::NormaliseUnits(axis.units);
  return units == "eV" || units == "keV" || axis.name == "energy";
}

// ---------------------------------------------------------------------------------
// Velox.

// Velox writes numbers as strings with 17 significant digits ("0.30099999999999999").
std::string VeloxNumber(double value) {
  char text[40];
  std::snprintf(text, sizeof(text), "%.17g", value);
  return text;
}

enum class VeloxKind { kImage, kSpectrum, kSpectrumImage };

struct VeloxSignal {
  size_t index = 0;
  const SignalToWrite* input = nullptr;
  VeloxKind kind = VeloxKind::kImage;
  std::string detector;
  std::string uuid;
  int detector_index = 0;
};

// A length axis in metres (or 1/m): scale, offset and the unit Velox writes.
struct VeloxLength {
  double scale = 1;
  double offset = 0;
  std::string units;
};

VeloxLength ToVeloxLength(const Axis& axis) {
  const std::string units = formats::NormaliseUnits(axis.units);
  std::optional<double> factor = formats::LengthToSi(units);
  if (!factor) return {axis.scale, axis.offset, units};
  return {axis.scale * *factor, axis.offset * *factor, IsReciprocalUnits(units) ? "1/m" : "m"};
}

// Velox's OperatingMode: 1 TEM (images and diffraction), 2 STEM (scanned images, EDS).
std::optional<std::string> VeloxOperatingMode(Mode mode) {
  switch (mode) {
    case Mode::kStemImage:
    case Mode::kSpectrum:
    case Mode::kSpectrumImage:
    case Mode::k4dStem:
      return "2";
    case Mode::kTemImage:
    case Mode::kDiffraction:
      return "1";
    default:
      return std::nullopt;
  }
}

// Classifies the signals, names their detectors and gives each a uuid. Uuids are
// assigned in sorted order so that the reader, which lists groups by name, returns
// the signals of each kind in the caller's order.
Result<std::vector<VeloxSignal>> PlanVeloxSignals(const fs::path& path,
                                                  const Acquisition& acquisition) {
  std::vector<VeloxSignal> signals;
  std::set<std::string> detectors;
  bool have_spectrum_image = false;
  for (size_t i = 0; i < acquisition.signals.size(); ++i) {
    const SignalToWrite& input = acquisition.signals[i];
    VeloxSignal signal;
    signal.index = i;
    signal.input = &input;
    signal.detector = ValidUtf8(SignalName(acquisition, input));
    if (signal.detector.empty()) {
      return Status::InvalidArgument(SignalField(i, "name") +
                                     ": empty (Velox names every dataset by its detector)");
    }
    if (!detectors.insert(signal.detector).second) {
      return Status::InvalidArgument(SignalField(i, "name") + ": detector '" + signal.detector +
                                     "' appears twice (Velox writes one dataset per detector)");
    }
    const size_t rank = input.axes.size();
    const Axis& last = input.axes.back();
    if (IsEnergyAxis(last)) {
      const std::string units = formats::NormaliseUnits(last.units);
      if (units != "eV" && units != "keV") {
        return Status::InvalidArgument(
            SignalField(i, "axes[" + std::to_string(rank - 1) + "].units") + ": '" + last.units +
            "', Velox calibrates spectra in eV");
      }
      if (rank <= 2) {
        signal.kind = VeloxKind::kSpectrum;
      } else if (rank == 3) {
        if (have_spectrum_image) {
          return Status::InvalidArgument(SignalField(i, "axes") +
                                         ": a second spectrum image (Velox files hold one)");
        }
        if (input.axes[0].size * input.axes[1].size > int64_t(kMaxStreamValues)) {
          return Status::InvalidArgument(SignalField(i, "axes") + ": too many scan pixels");
        }
        if (input.axes[2].size > 65535) {
          return Status::InvalidArgument(SignalField(i, "axes[2].size") +
                                         ": Velox streams hold at most 65535 channels");
        }
        have_spectrum_image = true;
        signal.kind = VeloxKind::kSpectrumImage;
      } else {
        return Status::InvalidArgument(SignalField(i, "axes") + ": a rank-" + std::to_string(rank) +
                                       " spectral signal (Velox stores " +
                                       "spectra, stacks of spectra and spectrum images)");
      }
    } else if (rank == 2 || rank == 3) {
      signal.kind = VeloxKind::kImage;
    } else {
      return Status::InvalidArgument(SignalField(i, "axes") + ": a rank-" + std::to_string(rank) +
                                     " signal (Velox stores images and image series)");
    }
    signals.push_back(std::move(signal));
  }
  for (VeloxKind kind : {VeloxKind::kImage, VeloxKind::kSpectrum, VeloxKind::kSpectrumImage}) {
    std::vector<std::string> uuids;
    for (const VeloxSignal& signal : signals) {
      if (signal.kind != kind) continue;
      uuids.push_back(UuidFor(path.filename().string() + "\n" + *acquisition.fields.acquired +
                              "\n" + std::to_string(int(kind)) + "\n" + signal.detector + "\n" +
                              std::to_string(signal.index)));
    }
    std::sort(uuids.begin(), uuids.end());
    size_t next = 0;
    for (VeloxSignal& signal : signals) {
      if (signal.kind == kind) signal.uuid = uuids[next++];
    }
  }
  return signals;
}

// The Detectors section: every detector of the acquisition, imaging and scanning
// detectors in the caller's order, then the analytical (EDS) ones by name. Readers
// find an EDS calibration by the first detector whose name starts with
// BinaryResult.Detector ("SuperXG2" stands for the quadrants "SuperXG21".."SuperXG24"),
// so a name must come before the names it is a prefix of.
Json VeloxDetectors(std::vector<VeloxSignal>& signals, const std::string& operating_mode) {
  std::vector<VeloxSignal*> order;
  for (VeloxSignal& signal : signals) order.push_back(&signal);
  std::stable_sort(order.begin(), order.end(), [](const VeloxSignal* a, const VeloxSignal* b) {
    const bool a_eds = a->kind != VeloxKind::kImage, b_eds = b->kind != VeloxKind::kImage;
    if (a_eds != b_eds) return b_eds;
    return a_eds && a->detector < b->detector;
  });
  Json detectors = Json::object();
  int index = 0;
  for (VeloxSignal* pointer : order) {
    VeloxSignal& signal = *pointer;
    Json entry = Json::object();
    entry["DetectorName"] = signal.detector;
    const SignalToWrite& input = *signal.input;
    if (signal.kind == VeloxKind::kImage && operating_mode != "2") {
      const int64_t height = input.axes[input.axes.size() - 2].size;
      const int64_t width = input.axes.back().size;
      entry["DetectorType"] = "ImagingDetector";
      entry["Binning"] = Json{{"width", "1"}, {"height", "1"}};
      entry["ReadOutArea"] = Json{{"left", "0"},
                                  {"top", "0"},
                                  {"right", std::to_string(width)},
                                  {"bottom", std::to_string(height)}};
    } else if (signal.kind == VeloxKind::kImage) {
      entry["DetectorType"] = "ScanningDetector";
      entry["Inserted"] = "true";
      entry["Enabled"] = "true";
    } else {
      const Axis& energy = input.axes.back();
      const double to_ev = formats::NormaliseUnits(energy.units) == "keV" ? 1000.0 : 1.0;
      entry["DetectorType"] = "AnalyticalDetector";
      entry["Inserted"] = "true";
      entry["Enabled"] = "true";
      entry["Dispersion"] = VeloxNumber(energy.scale * to_ev);
      entry["OffsetEnergy"] = VeloxNumber(energy.offset * to_ev);
    }
    signal.detector_index = index;
    detectors["Detector-" + std::to_string(index++)] = std::move(entry);
  }
  return detectors;
}

// The JSON document Velox stores with one signal.
Json VeloxMetadata(const Acquisition& acquisition, const VeloxSignal& signal, const Json& detectors,
                   double acquired_seconds, const std::optional<std::string>& operating_mode) {
  const formats::NormalisedFields& fields = acquisition.fields;
  const SignalToWrite& input = *signal.input;
  const bool stem = operating_mode == std::optional<std::string>("2");
  Json json = Json::object();
  json["Core"] = Json{{"MetadataDefinitionVersion", "7.9"},
                      {"MetadataSchemaVersion", "v1/2013/07"},
                      {"guid", signal.uuid}};
  Json instrument = Json::object();
  instrument["Manufacturer"] = "FEI Company";
  if (fields.instrument && !fields.instrument->empty()) {
    const std::string model = ValidUtf8(*fields.instrument);
    instrument["InstrumentClass"] = model.substr(0, model.find(' '));
    instrument["InstrumentModel"] = model;
  }
  json["Instrument"] = std::move(instrument);
  const std::string seconds = std::to_string(int64_t(std::floor(acquired_seconds)));
  json["Acquisition"] = Json{{"AcquisitionStartDatetime", Json{{"DateTime", seconds}}},
                             {"AcquisitionDatetime", Json{{"DateTime", seconds}}}};

  // The frame calibration (images and spectrum images).
  std::optional<VeloxLength> x, y;
  int64_t width = 0, height = 0;
  if (signal.kind != VeloxKind::kSpectrum) {
    const size_t x_axis = signal.kind == VeloxKind::kImage ? input.axes.size() - 1 : 1;
    x = ToVeloxLength(input.axes[x_axis]);
    y = ToVeloxLength(input.axes[x_axis - 1]);
    width = input.axes[x_axis].size;
    height = input.axes[x_axis - 1].size;
    if (x->units.empty() && fields.pixel_size_m) {
      // The axes carry no length: the acquisition's pixel size is the calibration.
      const std::string units = fields.pixel_size_units.value_or("m");
      x = VeloxLength{*fields.pixel_size_m, 0, units};
      y = x;
    }
  }

  Json optics = Json::object();
  if (fields.beam_energy_kev) {
    optics["AccelerationVoltage"] = VeloxNumber(*fields.beam_energy_kev * 1000);
  }
  if (operating_mode) optics["OperatingMode"] = *operating_mode;
  if (fields.magnification && !stem && fields.mode != Mode::kDiffraction) {
    optics["NominalMagnification"] = VeloxNumber(*fields.magnification);
  }
  if (stem && x && x->units == "m") {
    optics["FullScanFieldOfView"] = Json{{"x", VeloxNumber(x->scale * double(width))},
                                         {"y", VeloxNumber(y->scale * double(height))}};
  }
  json["Optics"] = std::move(optics);

  Json scan = Json::object();
  if (stem && signal.kind != VeloxKind::kSpectrum) {
    scan["ScanSize"] = Json{{"width", std::to_string(width)}, {"height", std::to_string(height)}};
    scan["ScanArea"] = Json{{"left", "0"}, {"top", "0"}, {"right", "1"}, {"bottom", "1"}};
  } else {
    scan["ScanSize"] = Json{{"width", "0"}, {"height", "0"}};
  }
  if (signal.kind == VeloxKind::kImage && input.axes.size() == 3 &&
      formats::NormaliseUnits(input.axes[0].units) == "s") {
    scan["FrameTime"] = VeloxNumber(input.axes[0].scale);
  }
  json["Scan"] = std::move(scan);
  json["Detectors"] = detectors;

  Json binary = Json::object();
  const bool camera = signal.kind == VeloxKind::kImage && !stem;
  binary["AcquisitionUnit"] = camera ? "CameraImage" : "";
  binary["CompositionType"] = "";
  if (camera) {
    binary["ImageSize"] =
        Json{{"width", std::to_string(width)}, {"height", std::to_string(height)}};
  }
  binary["DetectorIndex"] = std::to_string(signal.detector_index);
  binary["Detector"] = signal.detector;
  if (x) {
    binary["PixelSize"] = Json{{"width", VeloxNumber(x->scale)}, {"height", VeloxNumber(y->scale)}};
    binary["PixelUnitX"] = x->units;
    binary["PixelUnitY"] = y->units;
    binary["Offset"] = Json{{"x", VeloxNumber(x->offset)}, {"y", VeloxNumber(y->offset)}};
  }
  std::string encoding;
  if (camera) {
    switch (input.data.dtype) {
      case DType::kInt8:
      case DType::kInt16:
      case DType::kInt32:
      case DType::kInt64:
        encoding = "Signed";
        break;
      case DType::kUInt8:
      case DType::kUInt16:
      case DType::kUInt32:
      case DType::kUInt64:
        encoding = "Unsigned";
        break;
      default:
        break;
    }
  }
  binary["Encoding"] = encoding;
  if (!encoding.empty()) {
    binary["BitsPerPixel"] = std::to_string(8 * formats::DTypeSize(input.data.dtype));
  }
  json["BinaryResult"] = std::move(binary);
  json["Sample"] = ValidUtf8(acquisition.sample_description);
  Json custom = Json::object();
  if (stem && fields.magnification) {
    custom["StemMagnification"] =
        Json{{"type", "double"}, {"value", VeloxNumber(*fields.magnification)}};
  }
  json["CustomProperties"] = std::move(custom);
  return json;
}

// A Velox Metadata dataset: the JSON of every frame in its own NUL-padded column.
DatasetSpec VeloxMetadataDataset(const std::string& path, const Json& json, size_t frames) {
  const std::string text = json.dump(4, ' ', false, Json::error_handler_t::replace) + "\n";
  const size_t rows = std::max(kVeloxMetadataRows, text.size() + 1);
  DatasetSpec spec;
  spec.path = path;
  spec.dims = {hsize_t(rows), hsize_t(frames)};
  spec.dtype = DType::kUInt8;
  spec.owned.assign(rows * frames, 0);
  for (size_t r = 0; r < text.size(); ++r) {
    for (size_t f = 0; f < frames; ++f) spec.owned[r * frames + f] = uint8_t(text[r]);
  }
  return spec;
}

DatasetSpec TextDataset(const std::string& path, const Json& json) {
  DatasetSpec spec;
  spec.path = path;
  spec.text = json.dump(4, ' ', false, Json::error_handler_t::replace) + "\n";
  return spec;
}

// Velox's event stream of a [y, x, channels] count array: per scan pixel, each count's
// channel number once per count, then kStreamPixelEnd.
Result<std::vector<uint8_t>> EncodeSpectrumStream(const SignalToWrite& input, size_t index) {
  const NdArray& data = input.data;
  const int64_t pixels = data.shape[0] * data.shape[1];
  const int64_t channels = data.shape[2];
  uint64_t values = uint64_t(pixels);
  for (size_t i = 0; i < data.bytes.size() / formats::DTypeSize(data.dtype); ++i) {
    std::optional<uint64_t> count = CountAt(data, i);
    if (!count) {
      return Status::InvalidArgument(
          SignalField(index, "data") + ": a spectrum image holds non-negative integer counts (" +
          std::string(formats::DTypeName(data.dtype)) + " element " + std::to_string(i) + ")");
    }
    values += *count;
    if (values > kMaxStreamValues) {
      return Status::InvalidArgument(SignalField(index, "data") + ": more than " +
                                     std::to_string(kMaxStreamValues) + " counts in all");
    }
  }
  std::vector<uint8_t> stream(values * 2);
  size_t at = 0;
  auto put = [&](uint16_t value) {
    stream[at++] = uint8_t(value & 0xFF);
    stream[at++] = uint8_t(value >> 8);
  };
  for (int64_t p = 0; p < pixels; ++p) {
    for (int64_t c = 0; c < channels; ++c) {
      const uint64_t count = *CountAt(data, size_t(p * channels + c));
      for (uint64_t n = 0; n < count; ++n) put(uint16_t(c));
    }
    put(kStreamPixelEnd);
  }
  return stream;
}

// Velox's log text: percent-encoded lines "<time> <event>" (UTC here).
std::string VeloxLogText(double acquired_seconds, const std::string& experiment) {
  const std::string time = formats::IsoFromUnixSeconds(acquired_seconds);
  const std::string stamp = time.substr(0, 10) + " " + time.substr(11, 8);
  const std::string plain = stamp + " Started acquisition for experiment of type " + experiment +
                            "\n" + stamp + " Finished acquisition for experiment of type " +
                            experiment + "\n";
  std::string encoded;
  for (unsigned char c : plain) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_') {
      encoded.push_back(char(c));
    } else {
      char hex[4];
      std::snprintf(hex, sizeof(hex), "%%%02X", c);
      encoded += hex;
    }
  }
  return encoded;
}

Result<FileLayout> VeloxLayout(const fs::path& path, const Acquisition& acquisition) {
  SCISEARCH_RETURN_IF_ERROR(ValidateAcquisition(acquisition));
  SCISEARCH_ASSIGN_OR_RETURN(const double acquired, AcquiredSeconds(acquisition.fields));
  SCISEARCH_ASSIGN_OR_RETURN(std::vector<VeloxSignal> signals, PlanVeloxSignals(path, acquisition));
  const std::optional<std::string> operating_mode = VeloxOperatingMode(acquisition.fields.mode);
  const Json detectors = VeloxDetectors(signals, operating_mode.value_or(""));

  FileLayout layout;
  std::set<std::string> kinds;
  layout.groups.push_back({"/Data", {}});
  for (const VeloxSignal& signal : signals) {
    const SignalToWrite& input = *signal.input;
    const Json json = VeloxMetadata(acquisition, signal, detectors, acquired, operating_mode);
    const char* kind = signal.kind == VeloxKind::kImage      ? "Image"
                       : signal.kind == VeloxKind::kSpectrum ? "Spectrum"
                                                             : "SpectrumStream";
    if (kinds.insert(kind).second) layout.groups.push_back({std::string("/Data/") + kind, {}});
    const std::string group = std::string("/Data/") + kind + "/" + signal.uuid;
    layout.groups.push_back({group, {}});

    DatasetSpec data;
    data.path = group + "/Data";
    data.dtype = input.data.dtype;
    const std::vector<int64_t>& shape = input.data.shape;
    size_t frames = 1;
    switch (signal.kind) {
      case VeloxKind::kImage:
        if (shape.size() == 2) {
          data.dims = {hsize_t(shape[0]), hsize_t(shape[1]), 1};
          data.borrowed = input.data.bytes.data();
        } else {
          frames = size_t(shape[0]);
          data.dims = {hsize_t(shape[1]), hsize_t(shape[2]), hsize_t(shape[0])};
          data.owned = Permute(input.data, {1, 2, 0});  // (frame, y, x) -> (y, x, frame)
        }
        break;
      case VeloxKind::kSpectrum:
        if (shape.size() == 1) {
          data.dims = {hsize_t(shape[0]), 1};
          data.borrowed = input.data.bytes.data();
        } else {
          data.dims = {hsize_t(shape[1]), hsize_t(shape[0])};
          data.owned = Permute(input.data, {1, 0});  // (n, channels) -> (channels, n)
        }
        break;
      case VeloxKind::kSpectrumImage: {
        SCISEARCH_ASSIGN_OR_RETURN(data.owned, EncodeSpectrumStream(input, signal.index));
        data.dtype = DType::kUInt16;
        data.dims = {hsize_t(data.owned.size() / 2), 1};
        Json settings = Json::object();
        settings["encoding"] = "uint16";
        settings["bincount"] = std::to_string(shape[2]);
        settings["StreamEncoding"] = "uint16";
        settings["RasterScanDefinition"] =
            Json{{"Width", std::to_string(shape[1])}, {"Height", std::to_string(shape[0])}};
        layout.datasets.push_back(TextDataset(group + "/AcquisitionSettings", settings));
        DatasetSpec locations;
        locations.path = group + "/FrameLocationTable";
        locations.dims = {1, 1};
        locations.dtype = DType::kUInt64;
        locations.owned.assign(8, 0);  // frame 0 starts at stream value 0
        layout.datasets.push_back(std::move(locations));
        // Velox's SpectrumImage entry: the same metadata and the frame range (one frame).
        // Its Data, Velox's proprietary compressed cube, is not written: readers decode
        // the stream, as they must for every Velox file.
        const std::string image_group = "/Data/SpectrumImage/" + UuidFor(signal.uuid + "\nimage");
        layout.groups.push_back({"/Data/SpectrumImage", {}});
        layout.groups.push_back({image_group, {}});
        layout.datasets.push_back(VeloxMetadataDataset(image_group + "/Metadata", json, 1));
        layout.datasets.push_back(
            TextDataset(image_group + "/SpectrumImageSettings",
                        Json{{"startFramePosition", "1"}, {"endFramePosition", "1"}}));
        break;
      }
    }
    layout.datasets.push_back(std::move(data));
    layout.datasets.push_back(VeloxMetadataDataset(group + "/Metadata", json, frames));
    if (signal.kind == VeloxKind::kImage) {
      DatasetSpec lookup;
      lookup.path = group + "/FrameLookupTable";
      lookup.dims = {hsize_t(frames)};
      lookup.dtype = DType::kUInt32;
      lookup.owned.resize(frames * 4);
      for (size_t f = 0; f < frames; ++f) {
        const uint32_t value = uint32_t(f);
        std::memcpy(lookup.owned.data() + f * 4, &value, 4);
      }
      layout.datasets.push_back(std::move(lookup));
    }
  }

  const bool any_spectrum_image = kinds.count("SpectrumStream") > 0;
  const std::string experiment = any_spectrum_image                                  ? "SI"
                                 : operating_mode == std::optional<std::string>("2") ? "STEM"
                                                                                     : "Camera";
  const std::string log_uuid =
      UuidFor(path.filename().string() + "\nlog\n" + *acquisition.fields.acquired);
  layout.groups.push_back({"/Data/Text", {}});
  layout.datasets.push_back(
      TextDataset("/Data/Text/" + log_uuid, Json{{"text", VeloxLogText(acquired, experiment)}}));
  layout.datasets.push_back(TextDataset("/Experiment", Json{{"log", "/Data/Text/" + log_uuid}}));
  layout.datasets.push_back(TextDataset("/Version", Json{{"version", "11"}, {"format", "Velox"}}));
  // Velox's display state lives here; readers (HyperSpy among them) expect the groups.
  for (const char* group : {"/Operations", "/Presentation", "/Presentation/Displays",
                            "/Presentation/Displays/ImageDisplay"}) {
    layout.groups.push_back({group, {}});
  }
  return layout;
}

// ---------------------------------------------------------------------------------
// Berkeley EMD.

// The EMD specification's spelling of units, which HyperSpy writes and reads: in
// brackets, an underscore between characters ("[n_m]", "[1_/_n_m]", "[e_V]").
std::string EmdUnits(const std::string& units) {
  const std::string normalised = formats::NormaliseUnits(units);
  if (normalised.empty()) return "";
  std::string out = "[";
  for (size_t i = 0; i < normalised.size(); ++i) {
    if (i > 0) out.push_back('_');
    out.push_back(normalised[i]);
  }
  return out + "]";
}

// A dataset or group name for signal `index`: no '/', not "." or "..".
Result<std::string> BerkeleyName(const Acquisition& acquisition, size_t index) {
  std::string name = ValidUtf8(SignalName(acquisition, acquisition.signals[index]));
  if (name.empty()) name = index == 0 ? "signal" : "signal" + std::to_string(index + 1);
  if (name.find('/') != std::string::npos || name == "." || name == "..") {
    return Status::InvalidArgument(SignalField(index, "name") + ": '" + name +
                                   "' cannot name an HDF5 group");
  }
  return name;
}

Result<FileLayout> BerkeleyLayout(const fs::path& path, const Acquisition& acquisition) {
  SCISEARCH_RETURN_IF_ERROR(ValidateAcquisition(acquisition));
  SCISEARCH_ASSIGN_OR_RETURN(const double acquired, AcquiredSeconds(acquisition.fields));
  const formats::NormalisedFields& fields = acquisition.fields;

  FileLayout layout;
  layout.root_attributes = {{"version_major", int32_t(0)}, {"version_minor", int32_t(2)}};
  layout.groups.push_back({"/data", {{"filename", path.stem().string()}}});
  std::set<std::string> names;
  for (size_t i = 0; i < acquisition.signals.size(); ++i) {
    const SignalToWrite& input = acquisition.signals[i];
    SCISEARCH_ASSIGN_OR_RETURN(const std::string name, BerkeleyName(acquisition, i));
    if (!names.insert(name).second) {
      return Status::InvalidArgument(SignalField(i, "name") + ": '" + name + "' appears twice");
    }
    const std::string group = "/data/" + name;
    GroupSpec group_spec{group, {{"emd_group_type", int32_t(1)}}};
    const size_t rank = input.axes.size();
    if (rank != 4) {
      group_spec.attributes.push_back(
          {"record_by", IsEnergyAxis(input.axes.back()) ? "spectrum" : "image"});
    }
    layout.groups.push_back(std::move(group_spec));

    DatasetSpec data;
    data.path = group + "/data";
    data.dtype = input.data.dtype;
    for (int64_t size : input.data.shape) data.dims.push_back(hsize_t(size));
    data.borrowed = input.data.bytes.data();
    layout.datasets.push_back(std::move(data));

    for (size_t k = 0; k < rank; ++k) {
      const Axis& axis = input.axes[k];
      DatasetSpec dim;
      dim.path = group + "/dim" + std::to_string(k + 1);
      dim.dtype = DType::kFloat64;
      dim.dims = {hsize_t(axis.size)};
      dim.owned.resize(size_t(axis.size) * 8);
      for (int64_t j = 0; j < axis.size; ++j) {
        const double value = axis.offset + double(j) * axis.scale;
        std::memcpy(dim.owned.data() + size_t(j) * 8, &value, 8);
      }
      dim.attributes = {{"name", axis.name}, {"units", EmdUnits(axis.units)}};
      layout.datasets.push_back(std::move(dim));
    }
    DatasetSpec times;
    times.path = group + "/acquisition times";
    times.dtype = DType::kFloat64;
    times.owned.resize(8);
    std::memcpy(times.owned.data(), &acquired, 8);
    layout.datasets.push_back(std::move(times));
  }

  GroupSpec microscope{"/microscope", {}};
  if (fields.instrument) microscope.attributes.push_back({"name", *fields.instrument});
  if (fields.beam_energy_kev) {
    microscope.attributes.push_back({"high tension", *fields.beam_energy_kev * 1000});
  }
  if (fields.magnification)
    microscope.attributes.push_back({"magnification", *fields.magnification});
  if (fields.detector) microscope.attributes.push_back({"detector", *fields.detector});
  layout.groups.push_back(std::move(microscope));
  GroupSpec sample{"/sample", {}};
  if (!acquisition.sample_description.empty()) {
    sample.attributes.push_back({"sample name", acquisition.sample_description});
  }
  layout.groups.push_back(std::move(sample));
  GroupSpec user{"/user", {}};
  if (!acquisition.operator_name.empty()) {
    user.attributes.push_back({"name", acquisition.operator_name});
  }
  layout.groups.push_back(std::move(user));
  layout.groups.push_back({"/comments", {}});
  return layout;
}

}  // namespace

Status WriteVeloxEmd(const fs::path& path, const Acquisition& acquisition) {
  SCISEARCH_ASSIGN_OR_RETURN(const FileLayout layout, VeloxLayout(path, acquisition));
  return WriteLayoutAtomically(path, layout);
}

Status WriteBerkeleyEmd(const fs::path& path, const Acquisition& acquisition) {
  SCISEARCH_ASSIGN_OR_RETURN(const FileLayout layout, BerkeleyLayout(path, acquisition));
  return WriteLayoutAtomically(path, layout);
}

}  // namespace scisearch::simulate
