// EMD readers on HDF5's C API: Berkeley EMD (v0.2, EMD 1.0 from py4DSTEM/emdfile,
// Prismatic's 4DSTEM_simulation files) and Thermo Fisher Velox EMD.
//
// Berkeley EMD. A group whose attribute emd_group_type is 1 (or "array" in EMD 1.0)
// holds an N-D dataset (normally "data"; Prismatic writes "datacube" and "realslice")
// and dimension datasets dim1..dimN (dim0..dimN-1 in EMD 1.0); dim1 describes the
// slowest axis (C order). A dim vector holds either one coordinate per index or
// just two values; in both cases offset = v[0] and scale = v[1] - v[0]. Attributes
// anywhere in the file, and small datasets (py4DSTEM's calibration values, NCEM's
// "acquisition times"), form the metadata tree, which mirrors the group hierarchy.
//
// Velox EMD. /Data/<Kind>/<uuid>/ groups, each with a Data dataset and a Metadata
// dataset holding a JSON document as a NUL-padded uint8 column per frame. The JSON
// of the first frame is the signal's metadata (Velox writes every value as a string;
// the tree keeps them as strings, since that is how the file types them).
//   - Image: Data is (y, x, frames) in HDF5. Signals are reported as [frames, y, x]
//     (or [y, x] for one frame), which is what a scientist expects and what
//     rosettasciio does; Read selects the matching hyperslab of the (y, x, frames)
//     dataset and transposes only the selection in memory.
//   - Complex images (FFTs with 'FloatHalfEven'/'FloatHalfOdd' packing, DPC) are
//     compounds of two float32 (real, imaginary): complex64 signals laid out exactly as
//     stored - for FFTs the non-redundant half plane Velox keeps, unshifted.
//   - Spectrum: Data is (channels, n): reported as [channels] (n == 1) or [n, channels].
//   - SpectrumImage / SpectrumStream: the spectrum image is stored as event streams,
//     one per EDS detector: uint16 channel numbers, 65535 ending each scan pixel. One
//     signal [y, x, channels] of uint32 counts summed over all frames and all
//     detectors' streams (Velox's default view); y and x come from the scan metadata
//     (ScanSize x ScanArea), channels from AcquisitionSettings.bincount. Read decodes
//     the streams, keeping only counts inside the selection, so each Read makes one
//     pass over the streams.
//
// Runs only inside scisearch-hdf5-worker (see emd_hdf5.h): the library is not
// thread-safe and trusts damaged structures, so the scisearch process never calls it.
#include "formats/emd_hdf5.h"

#include <hdf5.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "formats/byte_source.h"
#include "formats/dataset_json.h"
#include "formats/normalise.h"
#include "formats/readers.h"
#include "formats/slab_io.h"

namespace scisearch::formats {
namespace {

// Limits that keep hostile files from driving the walk or the allocations.
constexpr int kMaxGroupDepth = 24;
constexpr size_t kMaxObjects = 20000;  // groups + datasets visited per file
constexpr size_t kMaxLinksPerGroup = 20000;
constexpr int kMaxAttributesPerObject = 1024;
constexpr hssize_t kMaxAttributeElements = 4096;
constexpr hssize_t kMaxMetadataDatasetElements = 64;  // small datasets kept as values
constexpr size_t kMaxStringBytes = 1 << 20;
constexpr hsize_t kMaxVeloxJsonBytes = 16 << 20;
constexpr int kMaxRank = 32;
constexpr hsize_t kStreamBlock = 1 << 20;  // stream values read per H5Dread

// An HDF5 identifier with its close function.
class H5Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  H5Handle() = default;
  H5Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  H5Handle(H5Handle&& other) noexcept : id_(other.id_), closer_(other.closer_) { other.id_ = -1; }
  H5Handle& operator=(H5Handle&& other) noexcept {
    if (this != &other) {
      Reset();
      id_ = other.id_;
      closer_ = other.closer_;
      other.id_ = -1;
    }
    return *this;
  }
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  ~H5Handle() { Reset(); }

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void Reset() {
    if (id_ >= 0 && closer_ != nullptr) closer_(id_);
    id_ = -1;
  }

 private:
  hid_t id_ = -1;
  Closer closer_ = nullptr;
};

H5Handle Group(hid_t id) { return H5Handle(id, H5Gclose); }
H5Handle DatasetHandle(hid_t id) { return H5Handle(id, H5Dclose); }
H5Handle Space(hid_t id) { return H5Handle(id, H5Sclose); }
H5Handle Type(hid_t id) { return H5Handle(id, H5Tclose); }
H5Handle Attribute(hid_t id) { return H5Handle(id, H5Aclose); }
H5Handle Object(hid_t id) { return H5Handle(id, H5Oclose); }
H5Handle PropertyList(hid_t id) { return H5Handle(id, H5Pclose); }
H5Handle FileHandle(hid_t id) { return H5Handle(id, H5Fclose); }

// Collects the innermost description on HDF5's error stack (the cause rather than
// the API function that reported it) and clears the stack.
std::string TakeHdf5Error() {
  std::string cause;
  auto walk = [](unsigned, const H5E_error2_t* err, void* data) -> herr_t {
    if (err != nullptr && err->desc != nullptr && err->desc[0] != '\0') {
      *static_cast<std::string*>(data) = err->desc;
    }
    return 0;
  };
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, walk, &cause);
  H5Eclear2(H5E_DEFAULT);
  return cause;
}

// "<file>: <object>: <what> (HDF5: <cause>)" as kCorrupt.
Status Hdf5Failure(const std::string& file, const std::string& object, const std::string& what) {
  std::string message = file + ": " + (object.empty() ? "" : object + ": ") + what;
  const std::string cause = TakeHdf5Error();
  if (!cause.empty()) message += " (HDF5: " + cause + ")";
  return Status::Corrupt(message);
}

std::string JoinPath(const std::string& parent, const std::string& name) {
  return parent == "/" ? "/" + name : parent + "/" + name;
}

// ---------------------------------------------------------------------------------
// Types.

struct ElementType {
  DType dtype = DType::kUInt8;
  std::string real_member;  // complex compounds: the file's member names
  std::string imag_member;
};

Result<ElementType> ElementTypeOf(hid_t type, const std::string& where) {
  const H5T_class_t type_class = H5Tget_class(type);
  const size_t size = H5Tget_size(type);
  ElementType out;
  switch (type_class) {
    case H5T_INTEGER: {
      const bool is_signed = H5Tget_sign(type) == H5T_SGN_2;
      switch (size) {
        case 1:
          out.dtype = is_signed ? DType::kInt8 : DType::kUInt8;
          return out;
        case 2:
          out.dtype = is_signed ? DType::kInt16 : DType::kUInt16;
          return out;
        case 4:
          out.dtype = is_signed ? DType::kInt32 : DType::kUInt32;
          return out;
        case 8:
          out.dtype = is_signed ? DType::kInt64 : DType::kUInt64;
          return out;
        default:
          break;
      }
      break;
    }
    case H5T_FLOAT:
      if (size == 4)
        out.dtype = DType::kFloat32;
      else if (size == 8)
        out.dtype = DType::kFloat64;
      else
        break;
      return out;
    case H5T_ENUM: {
      // h5py writes booleans as a one-byte enum {FALSE, TRUE}.
      if (size == 1 && H5Tget_nmembers(type) == 2) {
        out.dtype = DType::kBool;
        return out;
      }
      break;
    }
    case H5T_COMPOUND: {
      if (H5Tget_nmembers(type) != 2) break;
      H5Handle first = Type(H5Tget_member_type(type, 0));
      H5Handle second = Type(H5Tget_member_type(type, 1));
      if (!first.valid() || !second.valid()) break;
      if (H5Tget_class(first.get()) != H5T_FLOAT || H5Tget_class(second.get()) != H5T_FLOAT) break;
      const size_t part = H5Tget_size(first.get());
      if (part != H5Tget_size(second.get()) || (part != 4 && part != 8)) break;
      char* name0 = H5Tget_member_name(type, 0);
      char* name1 = H5Tget_member_name(type, 1);
      std::string n0 = name0 ? name0 : "", n1 = name1 ? name1 : "";
      if (name0) H5free_memory(name0);
      if (name1) H5free_memory(name1);
      if (n0.empty() || n1.empty()) break;
      auto lower = [](std::string s) {
        for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
        return s;
      };
      // Velox writes (realFloat..., imagFloat...); accept either order by name.
      const bool swapped = lower(n0).rfind("imag", 0) == 0 || lower(n1).rfind("real", 0) == 0;
      out.real_member = swapped ? n1 : n0;
      out.imag_member = swapped ? n0 : n1;
      out.dtype = part == 4 ? DType::kComplex64 : DType::kComplex128;
      return out;
    }
    default:
      break;
  }
  return Status::Unsupported(where + ": element type (HDF5 class " + std::to_string(type_class) +
                             ", " + std::to_string(size) + " bytes) has no array type here");
}

// The in-memory type to read `element` into: native little-endian numbers, and for
// complex numbers a compound {real, imag} matched to the file's members by name.
H5Handle MemoryType(const ElementType& element) {
  switch (element.dtype) {
    case DType::kBool:
    case DType::kUInt8:
      return Type(H5Tcopy(H5T_NATIVE_UINT8));
    case DType::kInt8:
      return Type(H5Tcopy(H5T_NATIVE_INT8));
    case DType::kInt16:
      return Type(H5Tcopy(H5T_NATIVE_INT16));
    case DType::kUInt16:
      return Type(H5Tcopy(H5T_NATIVE_UINT16));
    case DType::kInt32:
      return Type(H5Tcopy(H5T_NATIVE_INT32));
    case DType::kUInt32:
      return Type(H5Tcopy(H5T_NATIVE_UINT32));
    case DType::kInt64:
      return Type(H5Tcopy(H5T_NATIVE_INT64));
    case DType::kUInt64:
      return Type(H5Tcopy(H5T_NATIVE_UINT64));
    case DType::kFloat32:
      return Type(H5Tcopy(H5T_NATIVE_FLOAT));
    case DType::kFloat64:
      return Type(H5Tcopy(H5T_NATIVE_DOUBLE));
    case DType::kComplex64:
    case DType::kComplex128: {
      const bool single = element.dtype == DType::kComplex64;
      const size_t part = single ? 4 : 8;
      H5Handle compound = Type(H5Tcreate(H5T_COMPOUND, 2 * part));
      if (!compound.valid()) return compound;
      const hid_t part_type = single ? H5T_NATIVE_FLOAT : H5T_NATIVE_DOUBLE;
      if (H5Tinsert(compound.get(), element.real_member.c_str(), 0, part_type) < 0 ||
          H5Tinsert(compound.get(), element.imag_member.c_str(), part, part_type) < 0) {
        return H5Handle();
      }
      return compound;
    }
    default:
      return H5Handle();
  }
}

// The shortest decimal that round-trips a float32, as a double: 1.3575f reads as
// 1.3575 rather than 1.3574999570846558.
double FloatToDouble(float value) {
  if (!std::isfinite(value)) return value;
  char text[32];
  auto [end, ec] = std::to_chars(text, text + sizeof(text), value);
  if (ec != std::errc()) return value;
  double out = value;
  std::from_chars(text, end, out);
  return out;
}

std::string TrimString(const char* data, size_t size) {
  size_t length = 0;
  while (length < size && data[length] != '\0') ++length;
  while (length > 0 && data[length - 1] == ' ') --length;
  return std::string(data, length);
}

// Reads an attribute or dataset whose `space` holds at most `max_elements` elements as
// JSON (a scalar for one element, else a flat array). nullopt for types that have no
// JSON form (compound, opaque, references) or values that are too large.
using RawRead = std::function<herr_t(hid_t mem_type, void* buffer)>;

std::optional<Metadata> ReadValue(hid_t type, hid_t space, hssize_t max_elements,
                                  const RawRead& read) {
  const hssize_t points = H5Sget_simple_extent_npoints(space);
  if (points < 0 || points > max_elements) return std::nullopt;
  if (points == 0) return Metadata();
  const int rank = H5Sget_simple_extent_ndims(space);
  const bool scalar = points == 1 && rank <= 1;
  const size_t n = size_t(points);
  auto pack = [&](auto&& element_at) {
    if (scalar) return Metadata(element_at(0));
    Metadata array = Metadata::array();
    for (size_t i = 0; i < n; ++i) array.push_back(element_at(i));
    return array;
  };

  switch (H5Tget_class(type)) {
    case H5T_INTEGER: {
      if (H5Tget_sign(type) == H5T_SGN_NONE && H5Tget_size(type) >= 8) {
        std::vector<uint64_t> values(n);
        if (read(H5T_NATIVE_UINT64, values.data()) < 0) return std::nullopt;
        return pack([&](size_t i) { return values[i]; });
      }
      std::vector<int64_t> values(n);
      if (read(H5T_NATIVE_INT64, values.data()) < 0) return std::nullopt;
      return pack([&](size_t i) { return values[i]; });
    }
    case H5T_FLOAT: {
      if (H5Tget_size(type) <= 4) {
        std::vector<float> values(n);
        if (read(H5T_NATIVE_FLOAT, values.data()) < 0) return std::nullopt;
        return pack([&](size_t i) { return FloatToDouble(values[i]); });
      }
      std::vector<double> values(n);
      if (read(H5T_NATIVE_DOUBLE, values.data()) < 0) return std::nullopt;
      return pack([&](size_t i) { return values[i]; });
    }
    case H5T_STRING: {
      const htri_t variable = H5Tis_variable_str(type);
      if (variable < 0) return std::nullopt;
      if (variable > 0) {
        H5Handle mem = Type(H5Tcopy(H5T_C_S1));
        if (!mem.valid() || H5Tset_size(mem.get(), H5T_VARIABLE) < 0) return std::nullopt;
        H5Tset_cset(mem.get(), H5Tget_cset(type));
        std::vector<char*> values(n, nullptr);
        if (read(mem.get(), values.data()) < 0) return std::nullopt;
        std::vector<std::string> strings(n);
        for (size_t i = 0; i < n; ++i) {
          if (values[i] != nullptr) {
            strings[i] = TrimString(values[i], strnlen(values[i], kMaxStringBytes));
          }
        }
        H5Dvlen_reclaim(mem.get(), space, H5P_DEFAULT, values.data());
        return pack([&](size_t i) { return strings[i]; });
      }
      const size_t size = H5Tget_size(type);
      if (size == 0 || size > kMaxStringBytes || n * size > kMaxStringBytes) return std::nullopt;
      H5Handle mem = Type(H5Tcopy(type));
      if (!mem.valid()) return std::nullopt;
      std::vector<char> buffer(n * size);
      if (read(mem.get(), buffer.data()) < 0) return std::nullopt;
      return pack([&](size_t i) { return TrimString(buffer.data() + i * size, size); });
    }
    case H5T_ENUM: {
      H5Handle mem = Type(H5Tget_native_type(type, H5T_DIR_ASCEND));
      if (!mem.valid()) return std::nullopt;
      const size_t size = H5Tget_size(mem.get());
      if (size == 0 || size > 8) return std::nullopt;
      std::vector<uint8_t> buffer(n * size);
      if (read(mem.get(), buffer.data()) < 0) return std::nullopt;
      return pack([&](size_t i) -> Metadata {
        char name[64] = {0};
        if (H5Tenum_nameof(mem.get(), buffer.data() + i * size, name, sizeof(name)) < 0) {
          H5Eclear2(H5E_DEFAULT);
          return Metadata();
        }
        const std::string text = name;
        if (text == "TRUE") return true;
        if (text == "FALSE") return false;
        return text;
      });
    }
    default:
      return std::nullopt;
  }
}

std::optional<Metadata> ReadAttribute(hid_t attribute) {
  H5Handle type = Type(H5Aget_type(attribute));
  H5Handle space = Space(H5Aget_space(attribute));
  if (!type.valid() || !space.valid()) return std::nullopt;
  return ReadValue(type.get(), space.get(), kMaxAttributeElements,
                   [&](hid_t mem, void* buffer) { return H5Aread(attribute, mem, buffer); });
}

// A dataset transfer property list for reading `elements` values of `file_type` as
// `mem_type`. With HDF5's default list, every read that converts types allocates and
// zeroes a 1 MiB conversion buffer, whatever it reads: a fifth of the worker's work when
// ingest opens EMD files, whose metadata is many small values. A buffer sized to the
// selection (at least 4 KiB, so that it holds one element of any type read here; never
// more than the default) reads the same values.
H5Handle TransferFor(hid_t file_type, hid_t mem_type, hsize_t elements) {
  constexpr size_t kMinBuffer = 4096;
  constexpr size_t kDefaultBuffer = 1 << 20;  // HDF5's H5D_TEMP_BUF_SIZE
  const size_t element = std::max(H5Tget_size(file_type), H5Tget_size(mem_type));
  if (element == 0 || elements > kDefaultBuffer / element) return H5Handle(H5P_DEFAULT, nullptr);
  H5Handle list = PropertyList(H5Pcreate(H5P_DATASET_XFER));
  const size_t bytes = std::max<size_t>(kMinBuffer, size_t(elements) * element);
  if (!list.valid() || H5Pset_buffer(list.get(), bytes, nullptr, nullptr) < 0) {
    H5Eclear2(H5E_DEFAULT);
    return H5Handle(H5P_DEFAULT, nullptr);
  }
  return list;
}

std::optional<Metadata> ReadSmallDataset(hid_t dataset, hssize_t max_elements) {
  H5Handle type = Type(H5Dget_type(dataset));
  H5Handle space = Space(H5Dget_space(dataset));
  if (!type.valid() || !space.valid()) return std::nullopt;
  return ReadValue(type.get(), space.get(), max_elements, [&](hid_t mem, void* buffer) {
    const hssize_t points = H5Sget_simple_extent_npoints(space.get());
    const H5Handle transfer = TransferFor(type.get(), mem, hsize_t(std::max<hssize_t>(points, 1)));
    return H5Dread(dataset, mem, H5S_ALL, H5S_ALL, transfer.get(), buffer);
  });
}

// All attributes of an object, in name order, as a JSON object.
Metadata ReadAttributes(hid_t object) {
  Metadata out = Metadata::object();
  H5O_info_t info;
  if (H5Oget_info2(object, &info, H5O_INFO_NUM_ATTRS) < 0) {
    H5Eclear2(H5E_DEFAULT);
    return out;
  }
  const hsize_t count = std::min<hsize_t>(info.num_attrs, kMaxAttributesPerObject);
  for (hsize_t i = 0; i < count; ++i) {
    H5Handle attribute = Attribute(
        H5Aopen_by_idx(object, ".", H5_INDEX_NAME, H5_ITER_INC, i, H5P_DEFAULT, H5P_DEFAULT));
    if (!attribute.valid()) {
      H5Eclear2(H5E_DEFAULT);
      continue;
    }
    const ssize_t length = H5Aget_name(attribute.get(), 0, nullptr);
    if (length <= 0 || size_t(length) > kMaxStringBytes) continue;
    std::string name(size_t(length) + 1, '\0');
    H5Aget_name(attribute.get(), name.size(), name.data());
    name.resize(size_t(length));
    std::optional<Metadata> value = ReadAttribute(attribute.get());
    if (!value) {
      H5Eclear2(H5E_DEFAULT);
      continue;
    }
    out[name] = std::move(*value);
  }
  return out;
}

// The names of the links in a group (hard links only: soft and external links could
// lead out of the file or round in circles).
std::vector<std::string> HardLinks(hid_t group) {
  std::vector<std::string> names;
  auto collect = [](hid_t, const char* name, const H5L_info_t* info, void* data) -> herr_t {
    auto* out = static_cast<std::vector<std::string>*>(data);
    if (info->type == H5L_TYPE_HARD) out->emplace_back(name);
    return out->size() >= kMaxLinksPerGroup ? 1 : 0;
  };
  hsize_t index = 0;
  if (H5Literate(group, H5_INDEX_NAME, H5_ITER_INC, &index, collect, &names) < 0) {
    H5Eclear2(H5E_DEFAULT);
  }
  return names;
}

std::vector<int64_t> DimsOf(hid_t space) {
  const int rank = H5Sget_simple_extent_ndims(space);
  if (rank <= 0 || rank > kMaxRank) return {};
  hsize_t dims[kMaxRank];
  if (H5Sget_simple_extent_dims(space, dims, nullptr) < 0) return {};
  std::vector<int64_t> out;
  for (int i = 0; i < rank; ++i) {
    if (dims[i] > hsize_t(INT64_MAX)) return {};
    out.push_back(int64_t(dims[i]));
  }
  return out;
}

// The first `want` values of a 1-D (or any) numeric dataset, as doubles.
std::vector<double> ReadFirstValues(hid_t dataset, hsize_t want) {
  H5Handle space = Space(H5Dget_space(dataset));
  H5Handle type = Type(H5Dget_type(dataset));
  if (!space.valid() || !type.valid()) return {};
  const H5T_class_t type_class = H5Tget_class(type.get());
  if (type_class != H5T_INTEGER && type_class != H5T_FLOAT) return {};
  if (H5Sget_simple_extent_ndims(space.get()) != 1) return {};
  hsize_t size = 0;
  H5Sget_simple_extent_dims(space.get(), &size, nullptr);
  const hsize_t count = std::min(size, want);
  if (count == 0) return {};
  const hsize_t start = 0;
  if (H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, &start, nullptr, &count, nullptr) < 0) {
    return {};
  }
  H5Handle memory = Space(H5Screate_simple(1, &count, nullptr));
  std::vector<double> values(count);
  const H5Handle transfer = TransferFor(type.get(), H5T_NATIVE_DOUBLE, count);
  if (!memory.valid() || H5Dread(dataset, H5T_NATIVE_DOUBLE, memory.get(), space.get(),
                                 transfer.get(), values.data()) < 0) {
    H5Eclear2(H5E_DEFAULT);
    return {};
  }
  return values;
}

// ---------------------------------------------------------------------------------
// Signals and their sources.

// Where a signal's values come from.
struct SignalSource {
  enum class Kind { kDense, kVeloxStream };
  Kind kind = Kind::kDense;
  // kDense: the dataset, its dims, and for signal axis i the file dimension it reads.
  // File dimensions that no axis reads have size 1 and are read at index 0.
  std::string dataset_path;
  std::vector<int64_t> file_dims;
  std::vector<int> axis_to_dim;
  ElementType element;
  // kVeloxStream: the detectors' event streams, summed.
  std::vector<std::string> stream_paths;
};

std::string StringOr(const Metadata& node, std::string_view fallback = "") {
  if (node.is_string()) return node.get<std::string>();
  return std::string(fallback);
}

// A Velox JSON value (always a string) or a number, as a double.
std::optional<double> NumberOf(const Metadata* node) {
  if (node == nullptr) return std::nullopt;
  if (node->is_number()) return node->get<double>();
  if (!node->is_string()) return std::nullopt;
  const std::string& text = node->get_ref<const std::string&>();
  const char* begin = text.data();
  while (begin < text.data() + text.size() && *begin == ' ') ++begin;
  double value = 0;
  auto [end, ec] = std::from_chars(begin, text.data() + text.size(), value);
  if (ec != std::errc() || end == begin || !std::isfinite(value)) return std::nullopt;
  return value;
}

// Follows a path of object keys; nullptr when any step is missing.
const Metadata* Find(const Metadata& root, std::initializer_list<std::string_view> keys) {
  const Metadata* node = &root;
  for (std::string_view key : keys) {
    if (!node->is_object()) return nullptr;
    auto it = node->find(std::string(key));
    if (it == node->end()) return nullptr;
    node = &*it;
  }
  return node;
}

std::string FindString(const Metadata& root, std::initializer_list<std::string_view> keys) {
  const Metadata* node = Find(root, keys);
  return node == nullptr ? "" : StringOr(*node);
}

// Pixel size in m (or 1/m) from a length `scale` in `units`.
void SetPixelSize(NormalisedFields& fields, double scale, const std::string& units) {
  if (!(scale > 0) || units.empty()) return;
  const std::string normalised = NormaliseUnits(units);
  std::optional<double> factor = LengthToSi(normalised);
  if (!factor) return;
  fields.pixel_size_m = scale * *factor;
  fields.pixel_size_units = normalised.rfind("1/", 0) == 0 ? "1/m" : "m";
}

// ---------------------------------------------------------------------------------
// Berkeley EMD.

// EMD writers spell units "[n_m]", "n_m^-1", "[]": drop the brackets and underscores.
std::string CleanEmdUnits(std::string units) {
  std::string out;
  for (char c : units) {
    if (c != '[' && c != ']' && c != '_') out.push_back(c);
  }
  return NormaliseUnits(out);
}

// "300kV", "200000.0" (V), 300 (kV) -> kV.
std::optional<double> VoltageToKv(const Metadata& node) {
  std::optional<double> value = NumberOf(&node);
  if (!value && node.is_string()) {
    const std::string& text = node.get_ref<const std::string&>();
    double number = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
    if (ec != std::errc()) return std::nullopt;
    std::string unit(end, text.data() + text.size());
    unit.erase(std::remove(unit.begin(), unit.end(), ' '), unit.end());
    if (unit == "kV" || unit == "kv") return number;
    if (unit == "V" || unit == "v") return number / 1000;
    if (unit == "MV") return number * 1000;
    return std::nullopt;
  }
  if (!value || !(*value > 0)) return std::nullopt;
  return *value >= 1000 ? *value / 1000 : *value;  // bare numbers: volts when large
}

struct BerkeleyCandidate {
  std::string group_path;
  std::string dataset_name;
  std::vector<std::string> dim_names;  // dim datasets in axis order (may be shorter)
};

class BerkeleyWalker {
 public:
  // Walks the group at `path`, filling `node` with attributes, child groups and small
  // datasets, and recording the data sets that carry dims.
  void Walk(hid_t group, const std::string& path, int depth, Metadata& node) {
    Metadata attributes = ReadAttributes(group);
    for (auto& [key, value] : attributes.items()) node[key] = std::move(value);
    const bool emd_array = IsEmdArrayGroup(attributes);

    std::vector<std::pair<std::string, int>> dataset_ranks;
    for (const std::string& name : HardLinks(group)) {
      if (++objects_ > kMaxObjects) return;
      H5Handle object = Object(H5Oopen(group, name.c_str(), H5P_DEFAULT));
      if (!object.valid()) {
        H5Eclear2(H5E_DEFAULT);
        continue;
      }
      H5O_info_t info;
      if (H5Oget_info2(object.get(), &info, H5O_INFO_BASIC) < 0) {
        H5Eclear2(H5E_DEFAULT);
        continue;
      }
      if (!visited_.insert({info.fileno, info.addr}).second) continue;  // hard-link cycle
      const std::string key = node.contains(name) ? "/" + name : name;
      if (info.type == H5O_TYPE_GROUP) {
        if (depth >= kMaxGroupDepth) continue;
        Metadata child = Metadata::object();
        Walk(object.get(), JoinPath(path, name), depth + 1, child);
        node[key] = std::move(child);
      } else if (info.type == H5O_TYPE_DATASET) {
        H5Handle space = Space(H5Dget_space(object.get()));
        const int rank = space.valid() ? H5Sget_simple_extent_ndims(space.get()) : -1;
        dataset_ranks.emplace_back(name, rank);
        const hssize_t points = space.valid() ? H5Sget_simple_extent_npoints(space.get()) : -1;
        if (points >= 0 && points <= kMaxMetadataDatasetElements && !IsDimName(name)) {
          if (std::optional<Metadata> value =
                  ReadSmallDataset(object.get(), kMaxMetadataDatasetElements)) {
            node[key] = std::move(*value);
          }
        }
        H5Eclear2(H5E_DEFAULT);
      }
    }
    FindDataSets(path, emd_array, dataset_ranks);
  }

  std::vector<BerkeleyCandidate>& candidates() { return candidates_; }

 private:
  static bool IsEmdArrayGroup(const Metadata& attributes) {
    auto it = attributes.find("emd_group_type");
    if (it == attributes.end()) return false;
    if (it->is_number_integer()) return it->get<int64_t>() == 1;
    if (it->is_string()) return it->get<std::string>() == "array";
    return false;
  }
  static bool IsDimName(const std::string& name) {
    return name.size() > 3 && name.compare(0, 3, "dim") == 0 &&
           std::all_of(name.begin() + 3, name.end(), [](char c) { return c >= '0' && c <= '9'; });
  }

  // The generic rule: in an emd_group_type group, "data" (else any dataset whose rank
  // equals the number of dim datasets); in any other group, a dataset named "data" or
  // "datacube", or one whose rank equals the number of dim datasets beside it.
  void FindDataSets(const std::string& path, bool emd_array,
                    const std::vector<std::pair<std::string, int>>& datasets) {
    std::set<std::string> names;
    for (const auto& [name, rank] : datasets) names.insert(name);
    const int base = names.count("dim0") ? 0 : 1;
    std::vector<std::string> dims;
    for (int k = base; k < base + kMaxRank; ++k) {
      const std::string name = "dim" + std::to_string(k);
      if (!names.count(name)) break;
      dims.push_back(name);
    }
    if (!emd_array && dims.empty()) return;
    std::vector<std::string> chosen;
    if (names.count("data")) {
      chosen.push_back("data");
    } else {
      for (const auto& [name, rank] : datasets) {
        if (IsDimName(name) || rank < 1) continue;
        if ((name == "datacube" || rank == int(dims.size()))) chosen.push_back(name);
      }
    }
    for (const std::string& name : chosen) {
      candidates_.push_back(BerkeleyCandidate{path, name, dims});
    }
  }

  size_t objects_ = 0;
  std::set<std::pair<unsigned long, haddr_t>> visited_;
  std::vector<BerkeleyCandidate> candidates_;
};

Mode BerkeleyMode(const Signal& signal, const Metadata& group_node) {
  const std::string record_by = FindString(group_node, {"record_by"});
  const size_t rank = signal.shape.size();
  const bool last_reciprocal = !signal.axes.empty() && signal.axes.back().units.rfind("1/", 0) == 0;
  if (rank == 4) return Mode::k4dStem;
  if (record_by == "spectrum") return rank == 1 ? Mode::kSpectrum : Mode::kSpectrumImage;
  if (rank == 2 && last_reciprocal) return Mode::kDiffraction;
  if (record_by == "image" || rank == 2) return Mode::kImage;
  if (rank == 1) return Mode::kSpectrum;
  return Mode::kUnknown;
}

// The metadata node of the group at `path` inside the file tree `root`.
const Metadata* NodeAt(const Metadata& root, const std::string& path) {
  const Metadata* node = &root;
  size_t pos = 1;
  while (pos < path.size()) {
    size_t next = path.find('/', pos);
    if (next == std::string::npos) next = path.size();
    const std::string part = path.substr(pos, next - pos);
    if (!node->is_object() || !node->contains(part)) return nullptr;
    node = &(*node)[part];
    pos = next + 1;
  }
  return node;
}

Status BuildBerkeleySignal(hid_t file, const std::string& file_name, const Metadata& tree,
                           const BerkeleyCandidate& candidate, Signal& signal,
                           SignalSource& source) {
  const std::string path = JoinPath(candidate.group_path, candidate.dataset_name);
  H5Handle dataset = DatasetHandle(H5Dopen2(file, path.c_str(), H5P_DEFAULT));
  if (!dataset.valid()) return Hdf5Failure(file_name, path, "cannot open the dataset");
  H5Handle type = Type(H5Dget_type(dataset.get()));
  H5Handle space = Space(H5Dget_space(dataset.get()));
  if (!type.valid() || !space.valid()) return Hdf5Failure(file_name, path, "cannot read its type");
  SCISEARCH_ASSIGN_OR_RETURN(ElementType element,
                             ElementTypeOf(type.get(), file_name + ": " + path));
  std::vector<int64_t> dims = DimsOf(space.get());
  if (dims.empty()) return Status::Corrupt(file_name + ": " + path + ": has no usable dimensions");
  SCISEARCH_RETURN_IF_ERROR(
      CheckedElementCount(dims).status().WithContext(file_name + ": " + path));

  source.kind = SignalSource::Kind::kDense;
  source.dataset_path = path;
  source.file_dims = dims;
  source.element = element;
  for (size_t k = 0; k < dims.size(); ++k) source.axis_to_dim.push_back(int(k));

  const Metadata* group_node = NodeAt(tree, candidate.group_path);
  const Metadata empty = Metadata::object();
  if (group_node == nullptr) group_node = &empty;

  signal.name = candidate.group_path.substr(candidate.group_path.rfind('/') + 1);
  if (signal.name.empty() || signal.name == "__unnamed__") signal.name = candidate.dataset_name;
  signal.dtype = element.dtype;
  signal.shape = dims;
  for (size_t k = 0; k < dims.size(); ++k) {
    Axis axis;
    axis.size = dims[k];
    axis.name = dims.size() == 2 ? (k == 0 ? "y" : "x") : "dim" + std::to_string(k + 1);
    if (k < candidate.dim_names.size()) {
      const std::string dim_path = JoinPath(candidate.group_path, candidate.dim_names[k]);
      H5Handle dim = DatasetHandle(H5Dopen2(file, dim_path.c_str(), H5P_DEFAULT));
      if (dim.valid()) {
        const std::vector<double> values = ReadFirstValues(dim.get(), 2);
        if (!values.empty() && std::isfinite(values[0])) axis.offset = values[0];
        if (values.size() == 2 && std::isfinite(values[1] - values[0]) && values[1] != values[0]) {
          axis.scale = values[1] - values[0];
        }
        const Metadata attributes = ReadAttributes(dim.get());
        const std::string name = FindString(attributes, {"name"});
        if (!name.empty()) axis.name = name;
        axis.units = CleanEmdUnits(FindString(attributes, {"units"}));
      }
      H5Eclear2(H5E_DEFAULT);
    }
    signal.axes.push_back(std::move(axis));
  }
  if (signal.axes.size() > 2) {
    for (size_t k = 0; k + 2 < signal.axes.size(); ++k) signal.axes[k].navigate = true;
  }

  signal.metadata = tree;
  NormalisedFields& fields = signal.fields;
  fields.mode = BerkeleyMode(signal, *group_node);
  if (const Metadata* microscope = Find(tree, {"microscope"})) {
    const std::string name = FindString(*microscope, {"name"});
    if (!name.empty()) fields.instrument = name;
    for (const char* key : {"high tension", "high_tension", "voltage", "accelerating voltage"}) {
      if (const Metadata* node = Find(*microscope, {key})) {
        if (std::optional<double> kv = VoltageToKv(*node)) {
          fields.beam_energy_kev = kv;
          break;
        }
      }
    }
    if (std::optional<double> mag = NumberOf(Find(*microscope, {"magnification"}))) {
      if (*mag > 0) fields.magnification = mag;
    }
  }
  for (const char* key : {"acquisition times", "acquisition_time", "acquisition time"}) {
    if (std::optional<double> seconds = NumberOf(Find(*group_node, {key}))) {
      if (*seconds > 0 && *seconds < 4.1e9) fields.acquired = IsoFromUnixSeconds(*seconds);
      break;
    }
  }
  if (!signal.axes.empty() && fields.mode != Mode::kSpectrum) {
    const Axis& last = signal.axes.back();
    SetPixelSize(fields, std::abs(last.scale), last.units);
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------
// Velox EMD.

// The JSON text of frame 0 of a Velox Metadata dataset (a uint8 array, one column per
// frame, NUL-padded).
Result<std::string> ReadVeloxText(hid_t file, const std::string& file_name,
                                  const std::string& path) {
  H5Handle dataset = DatasetHandle(H5Dopen2(file, path.c_str(), H5P_DEFAULT));
  if (!dataset.valid()) return Hdf5Failure(file_name, path, "cannot open the metadata");
  H5Handle space = Space(H5Dget_space(dataset.get()));
  std::vector<int64_t> dims = space.valid() ? DimsOf(space.get()) : std::vector<int64_t>{};
  if (dims.empty() || dims.size() > 2) {
    return Status::Corrupt(file_name + ": " + path + ": metadata is not a 1-D or 2-D byte array");
  }
  const hsize_t rows = hsize_t(dims[0]);
  if (rows > kMaxVeloxJsonBytes) {
    return Status::Corrupt(file_name + ": " + path + ": metadata claims " + std::to_string(rows) +
                           " bytes");
  }
  hsize_t start[2] = {0, 0};
  hsize_t count[2] = {rows, 1};
  if (H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start, nullptr, count, nullptr) < 0) {
    return Hdf5Failure(file_name, path, "cannot select frame 0 of the metadata");
  }
  // A memory space of the selection's own rank and shape lets HDF5 copy the column
  // as one block; a 1-D memory space makes it map every byte separately (30x slower).
  H5Handle memory = Space(H5Screate_simple(int(dims.size()), count, nullptr));
  std::string text(rows, '\0');
  if (!memory.valid() || H5Dread(dataset.get(), H5T_NATIVE_UINT8, memory.get(), space.get(),
                                 H5P_DEFAULT, text.data()) < 0) {
    return Hdf5Failure(file_name, path, "cannot read the metadata");
  }
  text.resize(strnlen(text.data(), text.size()));
  return text;
}

// Parses the JSON of frame 0 of a Velox Metadata dataset.
Result<Metadata> ReadVeloxJson(hid_t file, const std::string& file_name, const std::string& path) {
  SCISEARCH_ASSIGN_OR_RETURN(const std::string text, ReadVeloxText(file, file_name, path));
  std::optional<Metadata> json = ParseMetadataJson(text);
  if (!json || !json->is_object()) {
    return Status::Corrupt(file_name + ": " + path + ": metadata is not a JSON object");
  }
  return std::move(*json);
}

// A SAX handler (nlohmann's interface) that reads what
// FindString(ParseMetadataJson(text), {"BinaryResult", "Detector"}) would, without
// building the tree: a repeated key's last value counts, as in the tree.
class VeloxDetectorFinder {
 public:
  using string_t = Metadata::string_t;

  bool null() { return Scalar(nullptr); }
  bool boolean(bool) { return Scalar(nullptr); }
  bool number_integer(Metadata::number_integer_t) { return Scalar(nullptr); }
  bool number_unsigned(Metadata::number_unsigned_t) { return Scalar(nullptr); }
  bool number_float(Metadata::number_float_t, const string_t&) { return Scalar(nullptr); }
  bool string(string_t& value) { return Scalar(&value); }
  bool binary(Metadata::binary_t&) { return Scalar(nullptr); }
  bool start_object(std::size_t) {
    if (depth_ == 0) root_is_object_ = true;
    Scalar(nullptr);  // an object where the detector name is, or a new BinaryResult
    if (depth_ == 1) in_binary_result_ = binary_result_key_;
    ++depth_;
    return true;
  }
  bool start_array(std::size_t) {
    Scalar(nullptr);
    ++depth_;
    return true;
  }
  bool end_object() { return End(); }
  bool end_array() { return End(); }
  bool key(string_t& key) {
    if (depth_ == 1) binary_result_key_ = key == "BinaryResult";
    if (depth_ == 2) detector_key_ = key == "Detector";
    return true;
  }
  template <class Exception>
  bool parse_error(std::size_t, const std::string&, const Exception&) {
    return false;
  }

  // After a parse that succeeded: the name, or nullopt when the text is not an object.
  std::optional<std::string> detector() const {
    if (!root_is_object_) return std::nullopt;
    return detector_;
  }

 private:
  // A value starts at the current depth: `text` for a string, else null.
  bool Scalar(const std::string* text) {
    if (depth_ == 1 && binary_result_key_) {
      detector_.clear();  // a new BinaryResult replaces the old one
    } else if (depth_ == 2 && in_binary_result_ && detector_key_) {
      detector_ = text != nullptr ? *text : "";
    }
    return true;
  }
  bool End() {
    if (--depth_ == 1) in_binary_result_ = false;
    return true;
  }

  int depth_ = 0;
  bool root_is_object_ = false;
  bool binary_result_key_ = false;  // the depth-1 key is BinaryResult
  bool in_binary_result_ = false;   // inside the object of that key
  bool detector_key_ = false;       // the depth-2 key is Detector
  std::string detector_;
};

// BinaryResult.Detector of the Velox JSON `text` ("" when absent or not a string), or
// nullopt when `text` is not a JSON object.
std::optional<std::string> VeloxDetector(std::string_view text) {
  VeloxDetectorFinder finder;
  if (!ParseJsonEvents(text, finder)) return std::nullopt;
  return finder.detector();
}

// A JSON document stored as a one-element string dataset (AcquisitionSettings, ...).
std::optional<Metadata> ReadJsonStringDataset(hid_t file, const std::string& path) {
  H5Handle dataset = DatasetHandle(H5Dopen2(file, path.c_str(), H5P_DEFAULT));
  if (!dataset.valid()) {
    H5Eclear2(H5E_DEFAULT);
    return std::nullopt;
  }
  std::optional<Metadata> value = ReadSmallDataset(dataset.get(), 1);
  H5Eclear2(H5E_DEFAULT);
  if (!value) return std::nullopt;
  if (value->is_array() && value->size() == 1) value = Metadata((*value)[0]);
  if (!value->is_string()) return std::nullopt;
  return ParseMetadataJson(value->get_ref<const std::string&>());
}

void FillVeloxFields(const Metadata& json, NormalisedFields& fields) {
  if (std::optional<double> seconds =
          NumberOf(Find(json, {"Acquisition", "AcquisitionStartDatetime", "DateTime"}))) {
    if (*seconds > 0 && *seconds < 4.1e9) fields.acquired = IsoFromUnixSeconds(*seconds);
  }
  std::string instrument = FindString(json, {"Instrument", "InstrumentModel"});
  if (instrument.empty()) instrument = FindString(json, {"Instrument", "InstrumentClass"});
  if (!instrument.empty()) fields.instrument = instrument;
  if (std::optional<double> volts = NumberOf(Find(json, {"Optics", "AccelerationVoltage"}))) {
    if (*volts > 0) fields.beam_energy_kev = *volts / 1000;
  }
  std::string detector = FindString(json, {"BinaryResult", "Detector"});
  if (!detector.empty()) fields.detector = detector;

  // Velox OperatingMode: 1 = TEM, 2 = STEM. STEM magnification is a custom property;
  // TEM's is the nominal magnification (absent in diffraction).
  const std::string operating = FindString(json, {"Optics", "OperatingMode"});
  std::optional<double> magnification;
  if (operating == "2") {
    magnification = NumberOf(Find(json, {"CustomProperties", "StemMagnification", "value"}));
  } else {
    magnification = NumberOf(Find(json, {"Optics", "NominalMagnification"}));
  }
  if (magnification && *magnification > 0) fields.magnification = magnification;
}

// The mode of a Velox image: STEM when OperatingMode is 2; otherwise TEM, or
// diffraction when the camera image is calibrated in reciprocal length.
Mode VeloxImageMode(const Metadata& json, bool complex_fft) {
  const std::string operating = FindString(json, {"Optics", "OperatingMode"});
  const std::string units = NormaliseUnits(FindString(json, {"BinaryResult", "PixelUnitX"}));
  if (complex_fft) return Mode::kImage;  // a computed FFT, not a recorded pattern
  if (operating == "2") return Mode::kStemImage;
  if (units.rfind("1/", 0) == 0) return Mode::kDiffraction;
  if (operating == "1") return Mode::kTemImage;
  return Mode::kImage;
}

// The EDS detector entry named by BinaryResult.Detector ("SuperXG2" matches the
// "SuperXG21".."SuperXG24" quadrants, which share one calibration).
const Metadata* VeloxEdsDetector(const Metadata& json) {
  const std::string wanted = FindString(json, {"BinaryResult", "Detector"});
  const Metadata* detectors = Find(json, {"Detectors"});
  if (detectors == nullptr || !detectors->is_object()) return nullptr;
  for (const auto& [key, detector] : detectors->items()) {
    const std::string name = FindString(detector, {"DetectorName"});
    if (!wanted.empty() && name.rfind(wanted, 0) == 0 && detector.contains("Dispersion")) {
      return &detector;
    }
  }
  for (const auto& [key, detector] : detectors->items()) {
    if (FindString(detector, {"DetectorType"}) == "AnalyticalDetector" &&
        detector.contains("Dispersion")) {
      return &detector;
    }
  }
  return nullptr;
}

Axis EnergyAxis(const Metadata& json, int64_t channels) {
  Axis axis;
  axis.name = "energy";
  axis.size = channels;
  if (const Metadata* detector = VeloxEdsDetector(json)) {
    std::optional<double> dispersion = NumberOf(Find(*detector, {"Dispersion"}));
    std::optional<double> offset = NumberOf(Find(*detector, {"OffsetEnergy"}));
    if (dispersion && *dispersion > 0) {
      axis.scale = *dispersion;
      axis.offset = offset.value_or(0.0);
      axis.units = "eV";
    }
  }
  return axis;
}

// The y and x axes of an image or spectrum image from BinaryResult.
std::pair<Axis, Axis> VeloxFrameAxes(const Metadata& json, int64_t height, int64_t width,
                                     bool navigate) {
  Axis y, x;
  y.name = "y";
  x.name = "x";
  y.size = height;
  x.size = width;
  y.navigate = x.navigate = navigate;
  const std::string units_x = FindString(json, {"BinaryResult", "PixelUnitX"});
  std::string units_y = FindString(json, {"BinaryResult", "PixelUnitY"});
  if (units_y.empty()) units_y = units_x;
  if (std::optional<double> w = NumberOf(Find(json, {"BinaryResult", "PixelSize", "width"}))) {
    x.scale = *w;
    x.units = NormaliseUnits(units_x);
  }
  if (std::optional<double> h = NumberOf(Find(json, {"BinaryResult", "PixelSize", "height"}))) {
    y.scale = *h;
    y.units = NormaliseUnits(units_y);
  }
  x.offset = NumberOf(Find(json, {"BinaryResult", "Offset", "x"})).value_or(0.0);
  y.offset = NumberOf(Find(json, {"BinaryResult", "Offset", "y"})).value_or(0.0);
  return {y, x};
}

struct VeloxGroup {
  std::string path;  // /Data/<Kind>/<uuid>
  std::string uuid;
};

std::vector<VeloxGroup> VeloxGroups(hid_t file, const std::string& kind) {
  std::vector<VeloxGroup> out;
  const std::string path = "/Data/" + kind;
  if (H5Lexists(file, "/Data", H5P_DEFAULT) <= 0 ||
      H5Lexists(file, path.c_str(), H5P_DEFAULT) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    return out;
  }
  H5Handle group = Group(H5Gopen2(file, path.c_str(), H5P_DEFAULT));
  if (!group.valid()) {
    H5Eclear2(H5E_DEFAULT);
    return out;
  }
  for (const std::string& name : HardLinks(group.get())) {
    out.push_back(VeloxGroup{path + "/" + name, name});
  }
  return out;
}

bool IsVelox(hid_t file) {
  for (const char* kind : {"Image", "Spectrum", "SpectrumImage", "SpectrumStream"}) {
    if (!VeloxGroups(file, kind).empty()) return true;
  }
  return false;
}

// Opens <group>/Data and returns its type and dims.
Status InspectDense(hid_t file, const std::string& file_name, const std::string& path,
                    ElementType& element, std::vector<int64_t>& dims) {
  H5Handle dataset = DatasetHandle(H5Dopen2(file, path.c_str(), H5P_DEFAULT));
  if (!dataset.valid()) return Hdf5Failure(file_name, path, "cannot open the dataset");
  H5Handle type = Type(H5Dget_type(dataset.get()));
  H5Handle space = Space(H5Dget_space(dataset.get()));
  if (!type.valid() || !space.valid()) return Hdf5Failure(file_name, path, "cannot read its type");
  SCISEARCH_ASSIGN_OR_RETURN(element, ElementTypeOf(type.get(), file_name + ": " + path));
  dims = DimsOf(space.get());
  if (dims.empty()) return Status::Corrupt(file_name + ": " + path + ": has no usable dimensions");
  return CheckedElementCount(dims).status().WithContext(file_name + ": " + path);
}

Status AddVeloxImage(hid_t file, const std::string& file_name, const VeloxGroup& group,
                     std::vector<Signal>& signals, std::vector<SignalSource>& sources) {
  SCISEARCH_ASSIGN_OR_RETURN(Metadata json,
                             ReadVeloxJson(file, file_name, group.path + "/Metadata"));
  ElementType element;
  std::vector<int64_t> dims;
  const std::string data_path = group.path + "/Data";
  SCISEARCH_RETURN_IF_ERROR(InspectDense(file, file_name, data_path, element, dims));
  if (dims.size() != 3) {
    return Status::Corrupt(file_name + ": " + data_path + ": image data has " +
                           std::to_string(dims.size()) + " dimensions, expected (y, x, frames)");
  }
  Signal signal;
  SignalSource source;
  source.dataset_path = data_path;
  source.file_dims = dims;
  source.element = element;
  const bool complex = element.dtype == DType::kComplex64 || element.dtype == DType::kComplex128;
  const bool fft = complex && element.real_member.find("Half") != std::string::npos;
  auto [y, x] = VeloxFrameAxes(json, dims[0], dims[1], false);
  if (dims[2] > 1) {
    Axis frame;
    frame.name = "frame";
    frame.size = dims[2];
    frame.navigate = true;
    if (std::optional<double> t = NumberOf(Find(json, {"Scan", "FrameTime"}))) {
      frame.scale = *t;
      frame.units = "s";
    }
    signal.axes = {frame, y, x};
    source.axis_to_dim = {2, 0, 1};
  } else {
    signal.axes = {y, x};
    source.axis_to_dim = {0, 1};
  }
  for (const Axis& axis : signal.axes) signal.shape.push_back(axis.size);
  signal.dtype = element.dtype;
  signal.name = FindString(json, {"BinaryResult", "Detector"});
  if (fft) signal.name += signal.name.empty() ? "FFT" : " FFT";
  if (signal.name.empty()) signal.name = group.uuid;
  FillVeloxFields(json, signal.fields);
  signal.fields.mode = VeloxImageMode(json, fft);
  if (std::optional<double> w = NumberOf(Find(json, {"BinaryResult", "PixelSize", "width"}))) {
    SetPixelSize(signal.fields, *w, FindString(json, {"BinaryResult", "PixelUnitX"}));
  }
  signal.metadata = std::move(json);
  signals.push_back(std::move(signal));
  sources.push_back(std::move(source));
  return Status::Ok();
}

Status AddVeloxSpectrum(hid_t file, const std::string& file_name, const VeloxGroup& group,
                        std::vector<Signal>& signals, std::vector<SignalSource>& sources) {
  SCISEARCH_ASSIGN_OR_RETURN(Metadata json,
                             ReadVeloxJson(file, file_name, group.path + "/Metadata"));
  ElementType element;
  std::vector<int64_t> dims;
  const std::string data_path = group.path + "/Data";
  SCISEARCH_RETURN_IF_ERROR(InspectDense(file, file_name, data_path, element, dims));
  if (dims.size() > 2) {
    return Status::Corrupt(file_name + ": " + data_path + ": spectrum data has " +
                           std::to_string(dims.size()) + " dimensions, expected (channels, n)");
  }
  Signal signal;
  SignalSource source;
  source.dataset_path = data_path;
  source.file_dims = dims;
  source.element = element;
  Axis energy = EnergyAxis(json, dims[0]);
  if (dims.size() == 2 && dims[1] > 1) {
    Axis stack;
    stack.name = "spectrum";
    stack.size = dims[1];
    stack.navigate = true;
    signal.axes = {stack, energy};
    source.axis_to_dim = {1, 0};
  } else {
    signal.axes = {energy};
    source.axis_to_dim = {0};
  }
  for (const Axis& axis : signal.axes) signal.shape.push_back(axis.size);
  signal.dtype = element.dtype;
  signal.name = FindString(json, {"BinaryResult", "Detector"});
  if (signal.name.empty()) signal.name = group.uuid;
  FillVeloxFields(json, signal.fields);
  signal.fields.mode = Mode::kSpectrum;
  signal.fields.magnification.reset();
  signal.metadata = std::move(json);
  signals.push_back(std::move(signal));
  sources.push_back(std::move(source));
  return Status::Ok();
}

// Scan pixels of a spectrum image: the scan frame (ScanSize) times the selected
// fraction of it (ScanArea), else the stream's RasterScanDefinition.
std::optional<std::pair<int64_t, int64_t>> VeloxScanShape(const Metadata& json,
                                                          const Metadata& settings) {
  auto positive = [](std::optional<double> v) { return v && *v > 0 && *v < 1e7; };
  std::optional<double> width = NumberOf(Find(json, {"Scan", "ScanSize", "width"}));
  std::optional<double> height = NumberOf(Find(json, {"Scan", "ScanSize", "height"}));
  std::optional<double> left = NumberOf(Find(json, {"Scan", "ScanArea", "left"}));
  std::optional<double> right = NumberOf(Find(json, {"Scan", "ScanArea", "right"}));
  std::optional<double> top = NumberOf(Find(json, {"Scan", "ScanArea", "top"}));
  std::optional<double> bottom = NumberOf(Find(json, {"Scan", "ScanArea", "bottom"}));
  if (positive(width) && positive(height) && left && right && top && bottom) {
    const double x = std::round(*width * (*right - *left));
    const double y = std::round(*height * (*bottom - *top));
    if (x >= 1 && y >= 1 && x < 1e7 && y < 1e7) return std::make_pair(int64_t(y), int64_t(x));
  }
  width = NumberOf(Find(settings, {"RasterScanDefinition", "Width"}));
  height = NumberOf(Find(settings, {"RasterScanDefinition", "Height"}));
  if (positive(width) && positive(height)) {
    return std::make_pair(int64_t(std::round(*height)), int64_t(std::round(*width)));
  }
  return std::nullopt;
}

Status AddVeloxSpectrumImage(hid_t file, const std::string& file_name, std::vector<Signal>& signals,
                             std::vector<SignalSource>& sources) {
  const std::vector<VeloxGroup> images = VeloxGroups(file, "SpectrumImage");
  const std::vector<VeloxGroup> streams = VeloxGroups(file, "SpectrumStream");
  if (streams.empty()) {
    if (images.empty()) return Status::Ok();
    // Velox's own compressed SpectrumImage data without streams ("pruned" files).
    return Status::Unsupported(file_name + ": " + images.front().path +
                               ": spectrum image without spectrum streams (proprietary encoding)");
  }
  const std::string meta_path =
      (images.empty() ? streams.front().path : images.front().path) + "/Metadata";
  SCISEARCH_ASSIGN_OR_RETURN(Metadata json, ReadVeloxJson(file, file_name, meta_path));

  Signal signal;
  SignalSource source;
  source.kind = SignalSource::Kind::kVeloxStream;
  int64_t channels = 0;
  Metadata stream_list = Metadata::array();
  Metadata first_settings = Metadata::object();
  for (const VeloxGroup& stream : streams) {
    std::optional<Metadata> settings =
        ReadJsonStringDataset(file, stream.path + "/AcquisitionSettings");
    if (!settings || !settings->is_object()) {
      return Status::Corrupt(file_name + ": " + stream.path +
                             "/AcquisitionSettings: missing or not JSON");
    }
    std::optional<double> bins = NumberOf(Find(*settings, {"bincount"}));
    if (!bins || *bins < 1 || *bins > 65535) {
      return Status::Corrupt(file_name + ": " + stream.path + ": bad bincount");
    }
    const std::string encoding = FindString(*settings, {"StreamEncoding"});
    if (!encoding.empty() && encoding != "uint16") {
      return Status::Unsupported(file_name + ": " + stream.path + ": stream encoding " + encoding);
    }
    if (channels == 0) {
      channels = int64_t(*bins);
      first_settings = *settings;
    } else if (channels != int64_t(*bins)) {
      return Status::Corrupt(file_name + ": " + stream.path + ": streams disagree on bincount");
    }
    Metadata entry = Metadata::object();
    entry["path"] = stream.path + "/Data";
    // Only the detector's name is wanted: no tree is built for the rest.
    Result<std::string> stream_text = ReadVeloxText(file, file_name, stream.path + "/Metadata");
    std::optional<std::string> detector =
        stream_text.ok() ? VeloxDetector(*stream_text) : std::nullopt;
    if (detector) entry["Detector"] = std::move(*detector);
    entry["AcquisitionSettings"] = std::move(*settings);
    stream_list.push_back(std::move(entry));
    source.stream_paths.push_back(stream.path + "/Data");
  }
  std::optional<std::pair<int64_t, int64_t>> scan = VeloxScanShape(json, first_settings);
  if (!scan) {
    return Status::Corrupt(file_name + ": " + meta_path + ": no scan size for the spectrum image");
  }
  auto [y, x] = VeloxFrameAxes(json, scan->first, scan->second, true);
  signal.axes = {y, x, EnergyAxis(json, channels)};
  signal.shape = {scan->first, scan->second, channels};
  SCISEARCH_RETURN_IF_ERROR(CheckedElementCount(signal.shape).status().WithContext(file_name));
  signal.dtype = DType::kUInt32;
  signal.name = "EDS";
  FillVeloxFields(json, signal.fields);
  signal.fields.mode = Mode::kSpectrumImage;
  if (std::optional<double> w = NumberOf(Find(json, {"BinaryResult", "PixelSize", "width"}))) {
    SetPixelSize(signal.fields, *w, FindString(json, {"BinaryResult", "PixelUnitX"}));
  }
  signal.metadata = std::move(json);
  signal.metadata["SpectrumStreams"] = std::move(stream_list);
  if (!images.empty()) {
    if (std::optional<Metadata> settings =
            ReadJsonStringDataset(file, images.front().path + "/SpectrumImageSettings")) {
      signal.metadata["SpectrumImageSettings"] = std::move(*settings);
    }
  }
  signals.push_back(std::move(signal));
  sources.push_back(std::move(source));
  return Status::Ok();
}

// ---------------------------------------------------------------------------------
// The reader.

class EmdReader : public DatasetReader {
 public:
  EmdReader(Dataset dataset, std::vector<SignalSource> sources, H5Handle file)
      : dataset_(std::move(dataset)), sources_(std::move(sources)), file_(std::move(file)) {}

  const Dataset& dataset() const override { return dataset_; }

  Result<NdArray> Read(size_t signal_index, const Hyperslab& slab) override {
    if (signal_index >= dataset_.signals.size()) {
      return Status::NotFound(name() + ": no signal " + std::to_string(signal_index));
    }
    const Signal& signal = dataset_.signals[signal_index];
    SCISEARCH_RETURN_IF_ERROR(slab.Validate(signal.shape).WithContext(name()));
    SCISEARCH_ASSIGN_OR_RETURN(const int64_t elements, CheckedElementCount(slab.count));
    if (uint64_t(elements) > (uint64_t(1) << 40) / DTypeSize(signal.dtype)) {
      return Status::InvalidArgument(name() + ": selection of " + std::to_string(elements) +
                                     " elements is too large for one read");
    }
    NdArray out;
    out.dtype = signal.dtype;
    out.shape = slab.count;
    out.bytes.assign(size_t(elements) * DTypeSize(signal.dtype), 0);
    if (elements == 0) return out;
    const SignalSource& source = sources_[signal_index];
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    if (source.kind == SignalSource::Kind::kVeloxStream) {
      SCISEARCH_RETURN_IF_ERROR(ReadStreams(signal, source, slab, out));
    } else {
      SCISEARCH_RETURN_IF_ERROR(ReadDense(signal, source, slab, out));
    }
    return out;
  }

 private:
  std::string name() const { return dataset_.path.filename().string(); }

  // Reads the selection in the file's dimension order, then moves the elements into
  // the signal's axis order.
  Status ReadDense(const Signal& signal, const SignalSource& source, const Hyperslab& slab,
                   NdArray& out) {
    const std::string& path = source.dataset_path;
    H5Handle dataset = DatasetHandle(H5Dopen2(file_.get(), path.c_str(), H5P_DEFAULT));
    if (!dataset.valid()) return Hdf5Failure(name(), path, "cannot open the dataset");
    H5Handle space = Space(H5Dget_space(dataset.get()));
    if (!space.valid() || DimsOf(space.get()) != source.file_dims) {
      return Hdf5Failure(name(), path, "dataspace changed since open");
    }
    const size_t rank = source.file_dims.size();
    std::vector<hsize_t> start(rank, 0), count(rank, 1), stride(rank, 1);
    for (size_t a = 0; a < source.axis_to_dim.size(); ++a) {
      const int d = source.axis_to_dim[a];
      start[d] = hsize_t(slab.start[a]);
      count[d] = hsize_t(slab.count[a]);
      stride[d] = hsize_t(slab.step[a]);
    }
    if (H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start.data(), stride.data(), count.data(),
                            nullptr) < 0) {
      return Hdf5Failure(name(), path, "cannot select the hyperslab");
    }
    H5Handle memory = Space(H5Screate_simple(int(rank), count.data(), nullptr));
    H5Handle mem_type = MemoryType(source.element);
    if (!memory.valid() || !mem_type.valid()) {
      return Hdf5Failure(name(), path, "cannot create the memory layout");
    }
    // When the signal's axes read file dimensions in increasing order (dropped
    // dimensions have size 1), the file-order buffer is already the signal's C order.
    const bool identity = std::is_sorted(source.axis_to_dim.begin(), source.axis_to_dim.end());
    std::vector<uint8_t> file_order;
    uint8_t* target = out.bytes.data();
    if (!identity) {
      file_order.resize(out.bytes.size());
      target = file_order.data();
    }
    if (H5Dread(dataset.get(), mem_type.get(), memory.get(), space.get(), H5P_DEFAULT, target) <
        0) {
      return Hdf5Failure(name(), path, "cannot read the data");
    }
    if (identity) return Status::Ok();
    // file_order is C order over `count` (file dims); walk the output in C order.
    const size_t element = DTypeSize(signal.dtype);
    std::vector<int64_t> file_stride(rank, 1);
    for (size_t d = rank - 1; d > 0; --d) file_stride[d - 1] = file_stride[d] * int64_t(count[d]);
    const size_t axes = slab.count.size();
    std::vector<int64_t> source_stride(axes);
    for (size_t a = 0; a < axes; ++a) source_stride[a] = file_stride[source.axis_to_dim[a]];
    std::vector<int64_t> index(axes, 0);
    const int64_t total = int64_t(out.bytes.size() / element);
    int64_t offset = 0;
    for (int64_t i = 0; i < total; ++i) {
      std::memcpy(out.bytes.data() + size_t(i) * element,
                  file_order.data() + size_t(offset) * element, element);
      for (size_t a = axes; a-- > 0;) {
        offset += source_stride[a];
        if (++index[a] < slab.count[a]) break;
        offset -= source_stride[a] * index[a];
        index[a] = 0;
      }
    }
    return Status::Ok();
  }

  // Decodes the detectors' event streams (uint16 channel numbers; 65535 ends a scan
  // pixel; the pixel index wraps at the end of each frame) and counts the events that
  // fall inside the selection.
  Status ReadStreams(const Signal& signal, const SignalSource& source, const Hyperslab& slab,
                     NdArray& out) {
    const int64_t height = signal.shape[0], width = signal.shape[1], channels = signal.shape[2];
    const int64_t pixels = height * width;
    auto* counts = reinterpret_cast<uint32_t*>(out.bytes.data());
    auto selected = [&](int axis, int64_t i, int64_t& pos) {
      const int64_t rel = i - slab.start[axis];
      if (rel < 0 || rel % slab.step[axis] != 0) return false;
      pos = rel / slab.step[axis];
      return pos < slab.count[axis];
    };
    // Precomputed channel -> output position (or -1) for speed.
    std::vector<int64_t> channel_pos(size_t(channels), -1);
    for (int64_t c = 0; c < channels; ++c) {
      int64_t pos;
      if (selected(2, c, pos)) channel_pos[size_t(c)] = pos;
    }
    std::vector<uint16_t> block;
    for (const std::string& path : source.stream_paths) {
      H5Handle dataset = DatasetHandle(H5Dopen2(file_.get(), path.c_str(), H5P_DEFAULT));
      if (!dataset.valid()) return Hdf5Failure(name(), path, "cannot open the spectrum stream");
      H5Handle space = Space(H5Dget_space(dataset.get()));
      const std::vector<int64_t> dims =
          space.valid() ? DimsOf(space.get()) : std::vector<int64_t>{};
      if (dims.empty() || dims.size() > 2 || (dims.size() == 2 && dims[1] < 1)) {
        return Status::Corrupt(name() + ": " + path + ": stream is not an (n, 1) array");
      }
      const hsize_t length = hsize_t(dims[0]);
      int64_t pixel = 0;
      int64_t y_pos = 0, x_pos = 0;
      bool pixel_selected = selected(0, 0, y_pos) && selected(1, 0, x_pos);
      for (hsize_t begin = 0; begin < length; begin += kStreamBlock) {
        const hsize_t n = std::min(kStreamBlock, length - begin);
        hsize_t start[2] = {begin, 0};
        hsize_t count[2] = {n, 1};
        if (H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start, nullptr, count, nullptr) < 0) {
          return Hdf5Failure(name(), path, "cannot select a block of the stream");
        }
        H5Handle memory = Space(H5Screate_simple(1, &n, nullptr));
        block.resize(n);
        if (!memory.valid() || H5Dread(dataset.get(), H5T_NATIVE_UINT16, memory.get(), space.get(),
                                       H5P_DEFAULT, block.data()) < 0) {
          return Hdf5Failure(name(), path, "cannot read the spectrum stream");
        }
        for (uint16_t value : block) {
          if (value == 0xFFFF) {
            if (++pixel == pixels) pixel = 0;  // next frame
            pixel_selected = selected(0, pixel / width, y_pos) && selected(1, pixel % width, x_pos);
            continue;
          }
          if (value >= channels) {
            return Status::Corrupt(name() + ": " + path + ": stream channel " +
                                   std::to_string(value) + " is past the " +
                                   std::to_string(channels) + " channels");
          }
          if (!pixel_selected) continue;
          const int64_t c = channel_pos[value];
          if (c < 0) continue;
          uint32_t& cell = counts[size_t((y_pos * slab.count[1] + x_pos) * slab.count[2] + c)];
          if (cell != UINT32_MAX) ++cell;
        }
      }
    }
    return Status::Ok();
  }

  Dataset dataset_;
  std::vector<SignalSource> sources_;
  H5Handle file_;
};

bool HasHdf5OnlyExtension(const std::filesystem::path& path) {
  std::string ext = path.extension().string();
  for (char& c : ext) c = char(std::tolower(static_cast<unsigned char>(c)));
  return ext == ".h5" || ext == ".hdf5" || ext == ".hdf" || ext == ".he5";
}

// Opens and parses the file.
Result<Hdf5Emd> OpenParsed(const std::filesystem::path& path, const std::string& file_name) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  H5Handle access = PropertyList(H5Pcreate(H5P_FILE_ACCESS));
  if (!access.valid()) return Hdf5Failure(file_name, "", "cannot create file access properties");
  // Read-only collections (NFS, read-only mounts) reject HDF5's advisory locks.
  H5Pset_file_locking(access.get(), false, true);
  H5Handle file = FileHandle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, access.get()));
  if (!file.valid()) return Hdf5Failure(file_name, "", "not a readable HDF5 file");

  Dataset dataset;
  dataset.path = path;
  dataset.member_files = {path};
  std::vector<SignalSource> sources;
  if (IsVelox(file.get())) {
    dataset.format = "emd-velox";
    for (const VeloxGroup& group : VeloxGroups(file.get(), "Image")) {
      SCISEARCH_RETURN_IF_ERROR(
          AddVeloxImage(file.get(), file_name, group, dataset.signals, sources));
    }
    for (const VeloxGroup& group : VeloxGroups(file.get(), "Spectrum")) {
      SCISEARCH_RETURN_IF_ERROR(
          AddVeloxSpectrum(file.get(), file_name, group, dataset.signals, sources));
    }
    SCISEARCH_RETURN_IF_ERROR(
        AddVeloxSpectrumImage(file.get(), file_name, dataset.signals, sources));
  } else {
    dataset.format = "emd-berkeley";
    H5Handle root = Group(H5Gopen2(file.get(), "/", H5P_DEFAULT));
    if (!root.valid()) return Hdf5Failure(file_name, "/", "cannot open the root group");
    Metadata tree = Metadata::object();
    BerkeleyWalker walker;
    walker.Walk(root.get(), "/", 0, tree);
    for (const BerkeleyCandidate& candidate : walker.candidates()) {
      Signal signal;
      SignalSource source;
      SCISEARCH_RETURN_IF_ERROR(
          BuildBerkeleySignal(file.get(), file_name, tree, candidate, signal, source));
      dataset.signals.push_back(std::move(signal));
      sources.push_back(std::move(source));
    }
  }
  H5Eclear2(H5E_DEFAULT);
  if (dataset.signals.empty()) {
    const std::string what = HasHdf5OnlyExtension(path) ? "an HDF5 file" : "an HDF5/EMD file";
    return Status::Unsupported(file_name + ": " + what +
                               " with no EMD data (no emd_group_type array group with dims, no "
                               "Velox /Data groups)");
  }
  Hdf5Emd out;
  for (Signal& signal : dataset.signals) {
    out.metadata.push_back(std::exchange(signal.metadata, Metadata::object()));
  }
  out.reader = std::make_unique<EmdReader>(std::move(dataset), std::move(sources), std::move(file));
  return out;
}

}  // namespace

Result<Hdf5Emd> OpenEmdWithHdf5(const std::filesystem::path& path) {
  const std::string file_name = path.filename().string();
  {
    // Plain-file checks first, for clear messages about missing or unreadable files.
    SCISEARCH_ASSIGN_OR_RETURN(FileSource source, FileSource::Open(path));
    if (source.size() < 8) return Status::Corrupt(file_name + ": too short for an HDF5 file");
  }
  return OpenParsed(path, file_name);
}

}  // namespace scisearch::formats
