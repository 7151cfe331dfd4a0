// Gatan DigitalMicrograph DM3 / DM4 reader.
//
// File layout (both versions): a big-endian header {version, root length, byte order
// flag} followed by the root tag group. A group is {sorted u8, open u8, tag count}; each
// tag is {kind u8 (20 group, 21 data), name length u16, name} (DM4 then adds the tag's
// byte length as u64). A data tag is "%%%%", an info count and that many info words that
// encode the value's type (simple, string, struct, array, array of structs), then the
// value itself. Sizes, counts and info words are 32-bit in DM3 and 64-bit in DM4 and
// always big-endian; the values are in the byte order the header flag gives (1 = little).
//
// Metadata. Each signal's metadata is its own ImageList entry (ImageTags, ImageData, Name,
// UniqueID, ...) plus "Document": the file's root group without ImageList
// (DocumentObjectList, Thumbnails, Image Behavior, ...), so that every signal carries the
// whole tree that concerns it. Groups whose tags are all unnamed (DM's "TagList"s such as
// ImageList, Dimensions, Calibrations/Dimension) become JSON arrays; an unnamed tag inside
// a named group is keyed "#<index>" and a repeated name gets " #<n>" appended. Arrays of
// uint16 are DM's strings and become UTF-8 strings; other arrays of at most 256 elements
// become JSON arrays (structs: arrays of their fields); larger arrays, and every image
// "Data" array, are not loaded: they become {"array_offset", "array_bytes", "element_type",
// "count"} so that pixel data is read only by Read().
//
// Signals: every ImageList entry with ImageData/Data except the document's thumbnails
// (listed by index in the root's Thumbnails group). Shape is DM's Dimensions reversed
// (DM lists the fastest axis first) with size-1 axes dropped; axis calibration is
// offset = -Origin * Scale. RGB images (types 8 and 23, stored as 32-bit B,G,R,unused)
// become kRGB8. Packed-complex FFT images are unpacked as RosettaSciIO does: type 5 (old
// packing of a 2N x 2N FFT) to a full 2N x 2N complex64 array, types 27/28 (half-plane:
// H rows of W/2+1 values) to H x 2*(W/2) complex values.
#include <algorithm>
#include <array>
#include <cmath>
#include <complex>
#include <cstring>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "formats/byte_source.h"
#include "formats/dataset_json.h"
#include "formats/metadata_lookup.h"
#include "formats/normalise.h"
#include "formats/readers.h"
#include "formats/slab_io.h"
#include "formats/text.h"

namespace scisearch::formats {
namespace {

namespace fs = std::filesystem;

constexpr int kMaxDepth = 64;                   // nesting of groups
constexpr uint64_t kMaxInlineArray = 256;       // numeric arrays kept in the metadata
constexpr uint64_t kMaxInlineString = 1 << 16;  // uint16 arrays decoded as text
constexpr uint64_t kMaxStructFields = 1024;
constexpr uint64_t kMaxInfoWords = 3 + 2 * kMaxStructFields + 1;
constexpr uint64_t kReadBlock = 64 << 10;

// DM tag encoded types.
enum EncodedType : uint64_t {
  kEncInt16 = 2,
  kEncInt32 = 3,
  kEncUInt16 = 4,
  kEncUInt32 = 5,
  kEncFloat32 = 6,
  kEncFloat64 = 7,
  kEncBool = 8,
  kEncInt8 = 9,
  kEncUInt8 = 10,
  kEncInt64 = 11,
  kEncUInt64 = 12,
  kEncStruct = 15,
  kEncString = 18,
  kEncArray = 20,
};

// Bytes of a simple encoded type, 0 for non-simple or unknown types.
size_t SimpleSize(uint64_t type) {
  switch (type) {
    case kEncInt8:
    case kEncUInt8:
    case kEncBool:
      return 1;
    case kEncInt16:
    case kEncUInt16:
      return 2;
    case kEncInt32:
    case kEncUInt32:
    case kEncFloat32:
      return 4;
    case kEncInt64:
    case kEncUInt64:
    case kEncFloat64:
      return 8;
    default:
      return 0;
  }
}

std::string EncodedTypeName(uint64_t type) {
  switch (type) {
    case kEncInt16:
      return "int16";
    case kEncInt32:
      return "int32";
    case kEncUInt16:
      return "uint16";
    case kEncUInt32:
      return "uint32";
    case kEncFloat32:
      return "float32";
    case kEncFloat64:
      return "float64";
    case kEncBool:
      return "bool";
    case kEncInt8:
      return "int8";
    case kEncUInt8:
      return "uint8";
    case kEncInt64:
      return "int64";
    case kEncUInt64:
      return "uint64";
    case kEncStruct:
      return "struct";
    default:
      return "type " + std::to_string(type);
  }
}

// UTF-16 code units to UTF-8; unpaired surrogates become U+FFFD, trailing NULs are dropped.
std::string Utf16ToUtf8(const std::vector<uint16_t>& units) {
  size_t n = units.size();
  while (n > 0 && units[n - 1] == 0) --n;
  std::string out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    uint32_t u = units[i];
    if (u >= 0xD800 && u <= 0xDBFF && i + 1 < n && units[i + 1] >= 0xDC00 &&
        units[i + 1] <= 0xDFFF) {
      AppendUtf8(0x10000 + ((u - 0xD800) << 10) + (units[i + 1] - 0xDC00), out);
      ++i;
    } else if (u >= 0xD800 && u <= 0xDFFF) {
      AppendUtf8(0xFFFD, out);
    } else {
      AppendUtf8(u, out);
    }
  }
  return out;
}

// Positional, bounds-checked, buffered reads of the tag tree from the file.
class TagStream {
 public:
  TagStream(const FileSource& source, ByteOrder data_order)
      : source_(source), data_order_(data_order), name_(source.path().filename().string()) {}

  uint64_t position() const { return position_; }
  uint64_t remaining() const { return source_.size() - position_; }
  const std::string& name() const { return name_; }
  ByteOrder data_order() const { return data_order_; }

  Status Error(const std::string& what) const {
    return Status::Corrupt(name_ + ": " + what + " (at offset " + std::to_string(position_) + ")");
  }

  Status Seek(uint64_t position, const char* what) {
    if (position > source_.size()) {
      return Error(std::string(what) + " points to offset " + std::to_string(position) +
                   ", past the end of the file (" + std::to_string(source_.size()) + " bytes)");
    }
    position_ = position;
    return Status::Ok();
  }

  Status Read(void* out, uint64_t count, const char* what) {
    if (count > remaining()) {
      return Error(std::string(what) + " needs " + std::to_string(count) +
                   " bytes but the file ends after " + std::to_string(remaining()));
    }
    if (position_ < buffer_start_ || position_ + count > buffer_start_ + buffer_.size()) {
      const uint64_t length = std::min<uint64_t>(std::max(count, kReadBlock), remaining());
      buffer_.resize(length);
      SCISEARCH_RETURN_IF_ERROR(source_.ReadAt(position_, length, buffer_.data()));
      buffer_start_ = position_;
    }
    std::memcpy(out, buffer_.data() + (position_ - buffer_start_), count);
    position_ += count;
    return Status::Ok();
  }

  // An unsigned integer of `bytes` (1, 2, 4 or 8) bytes in big-endian order (header fields).
  Result<uint64_t> ReadBigEndian(size_t bytes, const char* what) {
    uint8_t b[8];
    SCISEARCH_RETURN_IF_ERROR(Read(b, bytes, what));
    uint64_t v = 0;
    for (size_t i = 0; i < bytes; ++i) v = (v << 8) | b[i];
    return v;
  }

  // A value of arithmetic type T in the data byte order.
  template <typename T>
  Result<T> ReadData(const char* what) {
    uint8_t b[sizeof(T)];
    SCISEARCH_RETURN_IF_ERROR(Read(b, sizeof(T), what));
    const bool host_little = std::endian::native == std::endian::little;
    if (host_little != (data_order_ == ByteOrder::kLittle)) std::reverse(b, b + sizeof(T));
    T v;
    std::memcpy(&v, b, sizeof(T));
    return v;
  }

 private:
  const FileSource& source_;
  ByteOrder data_order_;
  std::string name_;
  uint64_t position_ = 0;
  std::vector<uint8_t> buffer_;
  uint64_t buffer_start_ = 0;
};

// Parses the tag tree of a DM3 (32-bit fields) or DM4 (64-bit fields) file into JSON.
class TagParser {
 public:
  TagParser(TagStream& stream, bool dm4) : in_(stream), word_(dm4 ? 8 : 4), dm4_(dm4) {}

  // `path` names the group in error messages ("/ImageList/#1/ImageData"); the
  // tags' paths are appended to it in turn and it is restored before returning
  // successfully, so that the whole parse builds no string per tag.
  Status ParseGroup(Metadata& out, int depth, std::string& path) {
    if (depth > kMaxDepth) {
      return in_.Error("tag groups nested deeper than " + std::to_string(kMaxDepth) + " at '" +
                       path + "'");
    }
    uint8_t flags[2];
    SCISEARCH_RETURN_IF_ERROR(in_.Read(flags, 2, "tag group flags"));
    SCISEARCH_ASSIGN_OR_RETURN(uint64_t count, in_.ReadBigEndian(word_, "tag count"));
    // Each tag takes at least its kind byte and name length (+ its size in DM4).
    const uint64_t min_tag_bytes = dm4_ ? 11 : 3;
    if (count > in_.remaining() / min_tag_bytes) {
      return in_.Error("group '" + path + "' claims " + std::to_string(count) +
                       " tags, more than the rest of the file can hold");
    }
    std::vector<std::pair<std::string, Metadata>> entries;
    bool any_named = false;
    bool any_unnamed = false;
    const size_t path_size = path.size();
    for (uint64_t i = 0; i < count; ++i) {
      SCISEARCH_ASSIGN_OR_RETURN(uint64_t kind, in_.ReadBigEndian(1, "tag kind"));
      SCISEARCH_ASSIGN_OR_RETURN(uint64_t name_length, in_.ReadBigEndian(2, "tag name length"));
      std::string name(name_length, '\0');
      SCISEARCH_RETURN_IF_ERROR(in_.Read(name.data(), name_length, "tag name"));
      if (!IsValidUtf8(name)) name = ToUtf8Lossless(name);
      path.resize(path_size);
      path += '/';
      if (name.empty()) {
        path += '#';
        path += std::to_string(i);
      } else {
        path += name;
      }
      const std::string& child_path = path;
      std::optional<uint64_t> end;
      if (dm4_) {
        SCISEARCH_ASSIGN_OR_RETURN(uint64_t size, in_.ReadBigEndian(8, "tag size"));
        if (size > in_.remaining()) {
          return in_.Error("tag '" + child_path + "' claims " + std::to_string(size) +
                           " bytes, past the end of the file");
        }
        end = in_.position() + size;
      }
      Metadata value;
      if (kind == 20) {
        value = Metadata::object();
        SCISEARCH_RETURN_IF_ERROR(ParseGroup(value, depth + 1, path));
      } else if (kind == 21) {
        SCISEARCH_RETURN_IF_ERROR(ParseData(value, name, child_path));
      } else {
        return in_.Error("tag '" + child_path + "' has unknown kind " + std::to_string(kind) +
                         " (expected 20 group or 21 data)");
      }
      if (end) {
        // DM4 tells each tag's length: trust it to find the next tag, but never step back.
        if (in_.position() > *end) {
          return in_.Error("tag '" + child_path + "' is longer than its stated size");
        }
        SCISEARCH_RETURN_IF_ERROR(in_.Seek(*end, "tag size"));
      }
      any_named = any_named || !name.empty();
      any_unnamed = any_unnamed || name.empty();
      entries.emplace_back(std::move(name), std::move(value));
    }
    path.resize(path_size);
    if (!any_named && !entries.empty()) {
      out = Metadata::array();
      for (auto& [name, value] : entries) out.push_back(std::move(value));
      return Status::Ok();
    }
    out = Metadata::object();
    // Room for every member first: ordered_json's members have const keys, so a
    // growing object copies every member's whole subtree at each reallocation.
    auto& members = out.get_ref<Metadata::object_t&>();
    members.reserve(entries.size());
    if (!any_unnamed && !HasRepeatedKey(entries, names_)) {
      // The usual case: every tag is named, once; the names are the keys.
      for (auto& [name, value] : entries) members.emplace_back(std::move(name), std::move(value));
      return Status::Ok();
    }
    std::unordered_set<std::string> keys;
    keys.reserve(entries.size());
    for (size_t i = 0; i < entries.size(); ++i) {
      std::string key = entries[i].first.empty() ? "#" + std::to_string(i) : entries[i].first;
      if (keys.count(key)) {
        int n = 2;
        while (keys.count(key + " #" + std::to_string(n))) ++n;
        key += " #" + std::to_string(n);
      }
      keys.insert(key);
      members.emplace_back(std::move(key), std::move(entries[i].second));
    }
    return Status::Ok();
  }

 private:
  Status ParseData(Metadata& out, const std::string& name, const std::string& path) {
    char delimiter[4];
    SCISEARCH_RETURN_IF_ERROR(in_.Read(delimiter, 4, "data tag delimiter"));
    if (std::memcmp(delimiter, "%%%%", 4) != 0) {
      return in_.Error("data tag '" + path + "' lacks its %%%% delimiter");
    }
    SCISEARCH_ASSIGN_OR_RETURN(uint64_t info_count, in_.ReadBigEndian(word_, "info count"));
    if (info_count == 0 || info_count > kMaxInfoWords || info_count > in_.remaining() / word_) {
      return in_.Error("data tag '" + path + "' has an implausible type description of " +
                       std::to_string(info_count) + " words");
    }
    std::vector<uint64_t>& info = info_;  // ParseData does not nest: one buffer serves all
    info.resize(info_count);
    for (auto& word : info) {
      SCISEARCH_ASSIGN_OR_RETURN(word, in_.ReadBigEndian(word_, "type description"));
    }
    const uint64_t type = info[0];
    if (SimpleSize(type) != 0) {
      if (info.size() != 1) return in_.Error("data tag '" + path + "': bad simple type length");
      return ReadSimple(type, out);
    }
    if (type == kEncString) {
      if (info.size() != 2) return in_.Error("data tag '" + path + "': bad string description");
      const uint64_t length = info[1];
      if (length > in_.remaining()) {
        return in_.Error("string '" + path + "' runs past the end of the file");
      }
      std::string raw(length, '\0');
      SCISEARCH_RETURN_IF_ERROR(in_.Read(raw.data(), length, "string"));
      out = IsValidUtf8(raw) ? std::move(raw) : ToUtf8Lossless(raw);
      return Status::Ok();
    }
    if (type == kEncStruct) {
      SCISEARCH_ASSIGN_OR_RETURN(std::vector<uint64_t> fields, StructFields(info, 0, path));
      if (info.size() != 3 + 2 * fields.size()) {
        return in_.Error("data tag '" + path + "': bad struct description");
      }
      return ReadStruct(fields, out);
    }
    if (type == kEncArray) {
      if (info.size() < 3) return in_.Error("data tag '" + path + "': bad array description");
      const uint64_t element = info[1];
      std::vector<uint64_t> fields;
      uint64_t element_size = SimpleSize(element);
      if (element == kEncStruct) {
        SCISEARCH_ASSIGN_OR_RETURN(fields, StructFields(info, 1, path));
        if (info.size() != 5 + 2 * fields.size()) {
          return in_.Error("data tag '" + path + "': bad struct array description");
        }
        element_size = 0;
        for (uint64_t f : fields) element_size += SimpleSize(f);
      } else if (info.size() != 3) {
        return in_.Error("data tag '" + path + "': bad array description");
      }
      if (element_size == 0) {
        return in_.Error("array '" + path + "' has unsupported element type " +
                         std::to_string(element));
      }
      const uint64_t count = info.back();
      if (count > in_.remaining() / element_size) {
        return in_.Error("array '" + path + "' of " + std::to_string(count) + " " +
                         EncodedTypeName(element) + " runs past the end of the file");
      }
      const uint64_t bytes = count * element_size;
      const uint64_t offset = in_.position();
      const bool is_image_data = name == "Data";
      if (!is_image_data && element == kEncUInt16 && count <= kMaxInlineString) {
        std::vector<uint16_t> units(count);
        for (auto& u : units) {
          SCISEARCH_ASSIGN_OR_RETURN(u, in_.ReadData<uint16_t>("string"));
        }
        out = Utf16ToUtf8(units);
        return Status::Ok();
      }
      // Structs count by their values: a 256-entry colour table stays out of line.
      const uint64_t values_per_element = fields.empty() ? 1 : fields.size();
      if (!is_image_data && count <= kMaxInlineArray / values_per_element) {
        out = Metadata::array();
        for (uint64_t i = 0; i < count; ++i) {
          Metadata item;
          if (fields.empty()) {
            SCISEARCH_RETURN_IF_ERROR(ReadSimple(element, item));
          } else {
            SCISEARCH_RETURN_IF_ERROR(ReadStruct(fields, item));
          }
          out.push_back(std::move(item));
        }
        return Status::Ok();
      }
      out = Metadata::object();
      out["array_offset"] = offset;
      out["array_bytes"] = bytes;
      out["element_type"] = EncodedTypeName(element);
      out["count"] = count;
      return in_.Seek(offset + bytes, "array");
    }
    return in_.Error("data tag '" + path + "' has unknown type " + std::to_string(type));
  }

  // The field types of a struct described at info[first..]: {15, name length, field count,
  // (field name length, field type)...}.
  Result<std::vector<uint64_t>> StructFields(const std::vector<uint64_t>& info, size_t first,
                                             const std::string& path) {
    if (info.size() < first + 3) {
      return in_.Error("data tag '" + path + "': truncated struct description");
    }
    const uint64_t field_count = info[first + 2];
    if (field_count > kMaxStructFields || info.size() < first + 3 + 2 * field_count) {
      return in_.Error("data tag '" + path + "': struct of " + std::to_string(field_count) +
                       " fields does not match its description");
    }
    std::vector<uint64_t> fields;
    for (uint64_t k = 0; k < field_count; ++k) {
      const uint64_t type = info[first + 4 + 2 * k];
      if (SimpleSize(type) == 0) {
        return in_.Error("data tag '" + path + "': struct field of unsupported type " +
                         std::to_string(type));
      }
      fields.push_back(type);
    }
    return fields;
  }

  Status ReadStruct(const std::vector<uint64_t>& fields, Metadata& out) {
    out = Metadata::array();
    for (uint64_t f : fields) {
      Metadata item;
      SCISEARCH_RETURN_IF_ERROR(ReadSimple(f, item));
      out.push_back(std::move(item));
    }
    return Status::Ok();
  }

  Status ReadSimple(uint64_t type, Metadata& out) {
    switch (type) {
      case kEncInt16: {
        SCISEARCH_ASSIGN_OR_RETURN(int16_t v, in_.ReadData<int16_t>("int16"));
        out = v;
        break;
      }
      case kEncInt32: {
        SCISEARCH_ASSIGN_OR_RETURN(int32_t v, in_.ReadData<int32_t>("int32"));
        out = v;
        break;
      }
      case kEncUInt16: {
        SCISEARCH_ASSIGN_OR_RETURN(uint16_t v, in_.ReadData<uint16_t>("uint16"));
        out = v;
        break;
      }
      case kEncUInt32: {
        SCISEARCH_ASSIGN_OR_RETURN(uint32_t v, in_.ReadData<uint32_t>("uint32"));
        out = v;
        break;
      }
      case kEncFloat32: {
        SCISEARCH_ASSIGN_OR_RETURN(float v, in_.ReadData<float>("float32"));
        out = double(v);
        break;
      }
      case kEncFloat64: {
        SCISEARCH_ASSIGN_OR_RETURN(double v, in_.ReadData<double>("float64"));
        out = v;
        break;
      }
      case kEncBool: {
        SCISEARCH_ASSIGN_OR_RETURN(uint8_t v, in_.ReadData<uint8_t>("bool"));
        out = v != 0;
        break;
      }
      case kEncInt8: {
        SCISEARCH_ASSIGN_OR_RETURN(int8_t v, in_.ReadData<int8_t>("int8"));
        out = v;
        break;
      }
      case kEncUInt8: {
        SCISEARCH_ASSIGN_OR_RETURN(uint8_t v, in_.ReadData<uint8_t>("uint8"));
        out = v;
        break;
      }
      case kEncInt64: {
        SCISEARCH_ASSIGN_OR_RETURN(int64_t v, in_.ReadData<int64_t>("int64"));
        out = v;
        break;
      }
      case kEncUInt64: {
        SCISEARCH_ASSIGN_OR_RETURN(uint64_t v, in_.ReadData<uint64_t>("uint64"));
        out = v;
        break;
      }
      default:
        return in_.Error("unsupported simple type " + std::to_string(type));
    }
    return Status::Ok();
  }

  TagStream& in_;
  size_t word_;
  bool dm4_;
  std::vector<uint64_t> info_;           // ParseData's type description
  std::vector<std::string_view> names_;  // HasRepeatedKey's scratch space
};

// How an image's pixels are stored and what Read() returns.
enum class Packing { kPlain, kRgb32, kPackedComplexOld, kPackedComplexHalf, kBool };

struct ImageLayout {
  std::string key;  // "ImageList[<i>]" for messages
  uint64_t offset = 0;
  uint64_t stored_bytes = 0;
  DType stored_dtype = DType::kUInt8;  // the element type read from the file
  Packing packing = Packing::kPlain;
  std::vector<int64_t> stored_shape;  // C order, as stored (squeezed)
  // Signal axis k is stored axis stored_axis_of[k]; empty when the orders agree.
  std::vector<int> stored_axis_of;
};

// DM ImageData DataType codes.
struct DataTypeInfo {
  DType stored;
  DType output;
  Packing packing;
};
std::optional<DataTypeInfo> DataTypeFor(int64_t code) {
  switch (code) {
    case 1:
      return DataTypeInfo{DType::kInt16, DType::kInt16, Packing::kPlain};
    case 2:
      return DataTypeInfo{DType::kFloat32, DType::kFloat32, Packing::kPlain};
    case 3:
      return DataTypeInfo{DType::kComplex64, DType::kComplex64, Packing::kPlain};
    case 5:
      return DataTypeInfo{DType::kFloat32, DType::kComplex64, Packing::kPackedComplexOld};
    case 6:
      return DataTypeInfo{DType::kUInt8, DType::kUInt8, Packing::kPlain};
    case 7:
      return DataTypeInfo{DType::kInt32, DType::kInt32, Packing::kPlain};
    case 8:
    case 23:
      return DataTypeInfo{DType::kRGBA8, DType::kRGB8, Packing::kRgb32};
    case 9:
      return DataTypeInfo{DType::kInt8, DType::kInt8, Packing::kPlain};
    case 10:
      return DataTypeInfo{DType::kUInt16, DType::kUInt16, Packing::kPlain};
    case 11:
      return DataTypeInfo{DType::kUInt32, DType::kUInt32, Packing::kPlain};
    case 12:
      return DataTypeInfo{DType::kFloat64, DType::kFloat64, Packing::kPlain};
    case 13:
      return DataTypeInfo{DType::kComplex128, DType::kComplex128, Packing::kPlain};
    case 14:
      return DataTypeInfo{DType::kUInt8, DType::kBool, Packing::kBool};
    case 27:
      return DataTypeInfo{DType::kComplex64, DType::kComplex64, Packing::kPackedComplexHalf};
    case 28:
      return DataTypeInfo{DType::kComplex128, DType::kComplex128, Packing::kPackedComplexHalf};
    case 39:
      return DataTypeInfo{DType::kInt64, DType::kInt64, Packing::kPlain};
    case 40:
      return DataTypeInfo{DType::kUInt64, DType::kUInt64, Packing::kPlain};
    default:
      return std::nullopt;
  }
}

bool IsReciprocal(const std::string& units) {
  return units.rfind("1/", 0) == 0 || units.find("^-1") != std::string::npos;
}

struct AxisCalibration {
  int64_t size = 0;
  double scale = 1.0;
  double offset = 0.0;
  std::string units;
};

class DmReader : public DatasetReader {
 public:
  DmReader(FileSource source, ByteOrder order, Dataset dataset, std::vector<ImageLayout> layouts)
      : source_(std::move(source)),
        order_(order),
        dataset_(std::move(dataset)),
        layouts_(std::move(layouts)) {}

  const Dataset& dataset() const override { return dataset_; }
  Dataset TakeDataset() override { return std::move(dataset_); }

  Result<NdArray> Read(size_t signal_index, const Hyperslab& slab) override {
    SCISEARCH_RETURN_IF_ERROR(CheckSignalIndex(dataset_, signal_index));
    const Signal& signal = dataset_.signals[signal_index];
    const ImageLayout& layout = layouts_[signal_index];
    SCISEARCH_RETURN_IF_ERROR(
        slab.Validate(signal.shape).WithContext(source_.path().string() + " " + layout.key));
    switch (layout.packing) {
      case Packing::kPlain:
        if (!layout.stored_axis_of.empty()) {
          return ReadPermutedSlab(source_, layout.offset, layout.stored_dtype, order_,
                                  layout.stored_shape, layout.stored_axis_of, slab);
        }
        return ReadContiguousSlab(source_, layout.offset, layout.stored_dtype, order_,
                                  layout.stored_shape, slab);
      case Packing::kBool: {
        SCISEARCH_ASSIGN_OR_RETURN(NdArray array,
                                   ReadContiguousSlab(source_, layout.offset, DType::kUInt8, order_,
                                                      layout.stored_shape, slab));
        for (auto& b : array.bytes) b = b != 0 ? 1 : 0;
        array.dtype = DType::kBool;
        return array;
      }
      case Packing::kRgb32: {
        // Stored as 32-bit words 0x00RRGGBB in the file's byte order.
        SCISEARCH_ASSIGN_OR_RETURN(
            NdArray array, ReadContiguousSlab(source_, layout.offset, DType::kRGBA8,
                                              ByteOrder::kLittle, layout.stored_shape, slab));
        const int64_t n = array.ElementCount();
        NdArray out;
        out.dtype = DType::kRGB8;
        out.shape = array.shape;
        out.bytes.resize(uint64_t(n) * 3);
        const bool little = order_ == ByteOrder::kLittle;
        for (int64_t i = 0; i < n; ++i) {
          const uint8_t* p = array.bytes.data() + i * 4;
          uint8_t* q = out.bytes.data() + i * 3;
          q[0] = little ? p[2] : p[1];
          q[1] = little ? p[1] : p[2];
          q[2] = little ? p[0] : p[3];
        }
        return out;
      }
      case Packing::kPackedComplexOld:
      case Packing::kPackedComplexHalf: {
        SCISEARCH_ASSIGN_OR_RETURN(NdArray frame, Unpack(signal, layout));
        return SliceArray(frame, slab);
      }
    }
    return Status::Internal("unknown packing");
  }

 private:
  // Decodes a whole packed-complex FFT frame.
  Result<NdArray> Unpack(const Signal& signal, const ImageLayout& layout) {
    SCISEARCH_ASSIGN_OR_RETURN(
        NdArray raw, ReadContiguousSlab(source_, layout.offset, layout.stored_dtype, order_,
                                        layout.stored_shape, Hyperslab::All(layout.stored_shape)));
    NdArray out;
    out.dtype = signal.dtype;
    out.shape = signal.shape;
    const int64_t rows = signal.shape[0];
    const int64_t cols = signal.shape[1];
    if (signal.dtype == DType::kComplex64 && layout.packing == Packing::kPackedComplexOld) {
      std::vector<float> t(size_t(raw.ElementCount()));
      std::memcpy(t.data(), raw.bytes.data(), t.size() * sizeof(float));
      std::vector<std::complex<float>> d(size_t(rows * cols));
      UnpackOld(t, rows / 2, d);
      out.bytes.resize(d.size() * sizeof(d[0]));
      std::memcpy(out.bytes.data(), d.data(), out.bytes.size());
      return out;
    }
    // Half-plane packing: each row holds W/2+1 values; the row is written reversed and
    // followed by the conjugates of values 1..W/2-1 (RosettaSciIO's layout).
    const int64_t packed_cols = layout.stored_shape[1];
    const size_t esize = DTypeSize(signal.dtype);
    const size_t half = esize / 2;
    out.bytes.resize(size_t(rows * cols) * esize);
    for (int64_t r = 0; r < rows; ++r) {
      const uint8_t* in_row = raw.bytes.data() + size_t(r * packed_cols) * esize;
      uint8_t* out_row = out.bytes.data() + size_t(r * cols) * esize;
      for (int64_t c = 0; c < cols; ++c) {
        if (c < packed_cols) {
          std::memcpy(out_row + c * esize, in_row + (packed_cols - 1 - c) * esize, esize);
        } else {
          const int64_t src = c - packed_cols + 1;
          std::memcpy(out_row + c * esize, in_row + src * esize, esize);
          // Negate the imaginary part.
          if (half == 4) {
            float im;
            std::memcpy(&im, out_row + c * esize + half, 4);
            im = -im;
            std::memcpy(out_row + c * esize + half, &im, 4);
          } else {
            double im;
            std::memcpy(&im, out_row + c * esize + half, 8);
            im = -im;
            std::memcpy(out_row + c * esize + half, &im, 8);
          }
        }
      }
    }
    return out;
  }

  // DM's original packing of the FFT of a real 2N x 2N image (RosettaSciIO's description).
  static void UnpackOld(const std::vector<float>& t, int64_t n,
                        std::vector<std::complex<float>>& d) {
    const int64_t w = 2 * n;
    auto at = [&](int64_t r, int64_t c) -> std::complex<float>& { return d[size_t(r * w + c)]; };
    auto cx = [&](int64_t i) { return std::complex<float>(t[size_t(i)], t[size_t(i + 1)]); };
    at(n, 0) = t[0];
    at(0, 0) = t[1];
    at(n, n) = t[size_t(2 * n * n)];
    at(0, n) = t[size_t(2 * n * n + 1)];
    for (int64_t i = 0; i < n; ++i) {  // top right quarter, except the first column
      for (int64_t k = 0; k < n - 1; ++k) at(i, n + 1 + k) = cx(2 * i * n + 2 + 2 * k);
    }
    for (int64_t k = 0; k < n - 1; ++k) at(n + 1 + k, 0) = cx(2 * n + 2 * n * k);
    const int64_t row_start = 2 * n * n + 2;
    for (int64_t k = 0; k < n - 1; ++k) at(n, n + 1 + k) = cx(row_start + 2 * k);
    const int64_t quarter_start = row_start + 2 * (n - 1);
    for (int64_t r = 0; r < n - 1; ++r) {  // bottom right quarter, except the first row
      for (int64_t c = 0; c < n; ++c) at(n + 1 + r, n + c) = cx(quarter_start + 2 * (r * n + c));
    }
    // The remaining values follow from Hermitian symmetry: A(i, j) = conj A(2N - i, 2N - j).
    for (int64_t k = 1; k < n; ++k) {
      at(0, k) = std::conj(at(0, w - k));
      at(n, k) = std::conj(at(n, w - k));
      at(k, 0) = std::conj(at(w - k, 0));
      at(k, n) = std::conj(at(w - k, n));
    }
    for (int64_t i = 1; i < n; ++i) {
      for (int64_t j = 1; j < n; ++j) at(i, j) = std::conj(at(w - i, w - j));
    }
    for (int64_t i = n + 1; i < w; ++i) {
      for (int64_t j = 1; j < n; ++j) at(i, j) = std::conj(at(w - i, w - j));
    }
  }

  FileSource source_;
  ByteOrder order_;
  Dataset dataset_;
  std::vector<ImageLayout> layouts_;
};

// Fills the normalised fields from the ImageTags of one image.
void FillFields(const Metadata& tags, const Signal& signal, int spectral_axis,
                NormalisedFields& fields) {
  // Date and time of acquisition.
  auto date = FindText(tags, {"DataBar", "Acquisition Date"});
  auto time = FindText(tags, {"DataBar", "Acquisition Time"});
  if (date && time) {
    fields.acquired = ParseDateAndTime(*date, *time);
    if (!fields.acquired) fields.acquired = ParseDateAndTime(*date, *time, /*day_first=*/true);
  }
  if (!fields.acquired) {
    // Windows FILETIME: 100 ns ticks since 1601-01-01 (UTC).
    if (auto ticks = FindNumber(tags, {"DataBar", "Acquisition Time (OS)"}); ticks && *ticks > 0) {
      fields.acquired = IsoFromUnixSeconds(*ticks / 1e7 - 11644473600.0);
    }
  }
  for (auto path : {std::initializer_list<std::string_view>{"Session Info", "Microscope"},
                    std::initializer_list<std::string_view>{"Microscope Info", "Microscope"},
                    std::initializer_list<std::string_view>{"Microscope Info", "Name"}}) {
    if (auto name = FindText(tags, path)) {
      fields.instrument = *name;
      break;
    }
  }
  if (auto volts = FindNumber(tags, {"Microscope Info", "Voltage"}); volts && *volts > 0) {
    fields.beam_energy_kev = *volts / 1000.0;
  }
  for (std::string_view key : {"Indicated Magnification", "Actual Magnification"}) {
    if (auto mag = FindNumber(tags, {"Microscope Info", key}); mag && *mag > 0) {
      fields.magnification = *mag;
      break;
    }
  }
  for (auto path : {std::initializer_list<std::string_view>{"Acquisition", "Device", "Name"},
                    std::initializer_list<std::string_view>{"DataBar", "Device Name"},
                    std::initializer_list<std::string_view>{"Session Info", "Detector"},
                    std::initializer_list<std::string_view>{"Meta Data", "Signal"}}) {
    if (auto name = FindText(tags, path)) {
      fields.detector = *name;
      break;
    }
  }
  // Pixel size: the fastest axis that is not the spectral one.
  for (int i = int(signal.axes.size()) - 1; i >= 0; --i) {
    if (i == spectral_axis) continue;
    const Axis& axis = signal.axes[size_t(i)];
    if (auto factor = LengthToSi(axis.units); factor && axis.scale > 0) {
      fields.pixel_size_m = axis.scale * *factor;
      fields.pixel_size_units = IsReciprocal(axis.units) ? "1/m" : "m";
    }
    break;
  }
}

// Builds one signal from an ImageList entry. Returns nullopt (no error) for entries that
// hold no image data.
Result<std::optional<std::pair<Signal, ImageLayout>>> BuildSignal(const Metadata& image,
                                                                  size_t index,
                                                                  const FileSource& source) {
  using Out = std::optional<std::pair<Signal, ImageLayout>>;
  const std::string key = "ImageList[" + std::to_string(index) + "]";
  const std::string where = source.path().string() + ": " + key;
  const Metadata* data = FindPath(image, {"ImageData", "Data"});
  if (data == nullptr) return Out();
  const Metadata* data_offset = FindPath(*data, {"array_offset"});
  const Metadata* data_bytes = FindPath(*data, {"array_bytes"});
  if (data_offset == nullptr || data_bytes == nullptr || !data_offset->is_number_unsigned() ||
      !data_bytes->is_number_unsigned()) {
    return Status::Corrupt(where + ": ImageData/Data is not an array");
  }
  const Metadata* type_tag = FindPath(image, {"ImageData", "DataType"});
  if (type_tag == nullptr || !type_tag->is_number_integer()) {
    return Status::Corrupt(where + ": ImageData/DataType is missing");
  }
  const int64_t type_code = type_tag->get<int64_t>();
  const auto type = DataTypeFor(type_code);
  if (!type) {
    return Status::Unsupported(where + ": DM image data type " + std::to_string(type_code) +
                               " is not supported");
  }
  const Metadata* dims_tag = FindPath(image, {"ImageData", "Dimensions"});
  if (dims_tag == nullptr || !dims_tag->is_array() || dims_tag->empty() || dims_tag->size() > 16) {
    return Status::Corrupt(where + ": ImageData/Dimensions is missing or malformed");
  }
  // DM order: fastest axis first.
  std::vector<AxisCalibration> dm_axes;
  const Metadata* calibrations = FindPath(image, {"ImageData", "Calibrations", "Dimension"});
  for (size_t k = 0; k < dims_tag->size(); ++k) {
    const Metadata& d = (*dims_tag)[k];
    if (!d.is_number_integer() || d.get<int64_t>() < 0) {
      return Status::Corrupt(where + ": dimension " + std::to_string(k) + " is not a size");
    }
    AxisCalibration axis;
    axis.size = d.get<int64_t>();
    if (calibrations != nullptr && calibrations->is_array() && k < calibrations->size()) {
      const Metadata& c = (*calibrations)[k];
      const double scale = FindNumber(c, {"Scale"}).value_or(1.0);
      const double origin = FindNumber(c, {"Origin"}).value_or(0.0);
      axis.scale = scale;
      axis.offset = -origin * scale;
      axis.units = NormaliseUnits(FindText(c, {"Units"}).value_or(""));
    }
    dm_axes.push_back(axis);
  }
  // Drop size-1 axes (DM stores a spectrum as W x 1 at times); keep at least one.
  std::vector<AxisCalibration> kept;
  for (const auto& a : dm_axes) {
    if (a.size != 1) kept.push_back(a);
  }
  if (kept.empty()) kept.push_back(dm_axes.front());
  std::reverse(kept.begin(), kept.end());  // C order

  ImageLayout layout;
  layout.key = key;
  layout.offset = data_offset->get<uint64_t>();
  layout.stored_bytes = data_bytes->get<uint64_t>();
  layout.stored_dtype = type->stored;
  layout.packing = type->packing;
  Signal signal;
  signal.dtype = type->output;
  for (const auto& a : kept) signal.shape.push_back(a.size);
  layout.stored_shape = signal.shape;
  if (type->packing == Packing::kPackedComplexHalf || type->packing == Packing::kPackedComplexOld) {
    if (signal.shape.size() != 2) {
      return Status::Unsupported(where + ": packed complex data of rank " +
                                 std::to_string(signal.shape.size()) + " is not supported");
    }
    const int64_t rows = signal.shape[0];
    const int64_t cols = signal.shape[1];
    if (type->packing == Packing::kPackedComplexHalf) {
      layout.stored_shape = {rows, cols / 2 + 1};
      signal.shape = {rows, 2 * (cols / 2)};
    } else {
      if (rows != cols || rows % 2 != 0) {
        return Status::Unsupported(where + ": old-style packed complex data must be 2N x 2N, not " +
                                   std::to_string(rows) + " x " + std::to_string(cols));
      }
      layout.stored_shape = {rows * cols};
    }
  }
  auto stored_count = CheckedElementCount(layout.stored_shape);
  if (!stored_count.ok()) return stored_count.status().WithContext(where);
  const uint64_t esize = DTypeSize(layout.stored_dtype);
  if (uint64_t(*stored_count) > layout.stored_bytes / esize) {
    return Status::Corrupt(where + ": Data holds " + std::to_string(layout.stored_bytes) +
                           " bytes, too few for its dimensions (" + std::to_string(*stored_count) +
                           " elements of " + std::to_string(esize) + " bytes)");
  }
  if (layout.offset > source.size() || layout.stored_bytes > source.size() - layout.offset) {
    return Status::Corrupt(where + ": Data runs past the end of the file");
  }

  const Metadata empty = Metadata::object();
  const Metadata* tags_ptr = FindPath(image, {"ImageTags"});
  const Metadata& tags = tags_ptr != nullptr ? *tags_ptr : empty;
  if (auto name = FindText(image, {"Name"})) signal.name = *name;

  // Spectral signals: the Meta Data says what the signal is.
  const std::string signal_kind = AsciiUpper(FindText(tags, {"Meta Data", "Signal"}).value_or(""));
  const std::string format = AsciiUpper(FindText(tags, {"Meta Data", "Format"}).value_or(""));
  const bool spectral = signal_kind == "EELS" || signal_kind == "X-RAY" || signal_kind == "EDS" ||
                        signal_kind == "EDX" || signal_kind == "CL" ||
                        format.find("SPECTRUM") != std::string::npos || kept.size() == 1;
  const size_t rank = kept.size();
  int spectral_axis = -1;
  if (spectral) {
    // The energy (or wavelength) axis: the one in eV/keV/nm when the spectrum says so,
    // else DM's slowest axis for spectrum images and the fastest for spectra.
    for (size_t i = 0; i < rank; ++i) {
      const std::string& u = kept[i].units;
      if (u == "eV" || u == "keV" || (signal_kind == "CL" && u == "nm")) spectral_axis = int(i);
    }
    if (spectral_axis < 0) spectral_axis = (rank == 3) ? 0 : int(rank) - 1;
  }
  static constexpr const char* kFrameNames[] = {"x", "y"};
  int frame_index = 0;
  for (size_t i = rank; i-- > 0;) {
    Axis axis;
    axis.size = kept[i].size;
    axis.scale = kept[i].scale;
    axis.offset = kept[i].offset;
    axis.units = kept[i].units;
    if (int(i) == spectral_axis) {
      axis.name = (signal_kind == "CL" && axis.units == "nm") ? "wavelength" : "energy";
    } else if (spectral) {
      axis.name = rank == 2 ? "scan" : (frame_index == 0 ? "scan_x" : "scan_y");
      ++frame_index;
      axis.navigate = true;
    } else if (frame_index < 2) {
      axis.name = kFrameNames[frame_index++];
    } else {
      axis.name = axis.units.empty() || frame_index > 2 ? "frame" : "z";
      if (frame_index > 2) axis.name += std::to_string(frame_index - 2);
      ++frame_index;
      axis.navigate = true;
    }
    signal.axes.insert(signal.axes.begin(), axis);
  }
  if (spectral && rank >= 2 && spectral_axis != int(rank) - 1) {
    // DM stores a spectrum image energy-slowest; scientists (and HyperSpy) read it as
    // scan_y, scan_x, energy: present it so, reading through the permutation.
    for (int k = 0; k < int(rank); ++k) {
      if (k != spectral_axis) layout.stored_axis_of.push_back(k);
    }
    layout.stored_axis_of.push_back(spectral_axis);
    std::vector<int64_t> shape;
    std::vector<Axis> axes;
    for (int k : layout.stored_axis_of) {
      shape.push_back(signal.shape[size_t(k)]);
      axes.push_back(signal.axes[size_t(k)]);
    }
    signal.shape = std::move(shape);
    signal.axes = std::move(axes);
    spectral_axis = int(rank) - 1;
  }
  if (signal.shape != layout.stored_shape || type->packing != Packing::kPlain) {
    // Packed complex changes the column count; keep the axes in step with the shape.
    for (size_t i = 0; i < signal.axes.size(); ++i) signal.axes[i].size = signal.shape[i];
  }

  // Mode.
  Mode mode = Mode::kUnknown;
  if (spectral) {
    mode = rank >= 3 ? Mode::kSpectrumImage : Mode::kSpectrum;
  } else {
    bool reciprocal = false;
    for (const Axis& a : signal.axes)
      reciprocal = reciprocal || (!a.navigate && IsReciprocal(a.units));
    const std::string illumination =
        AsciiUpper(FindText(tags, {"Microscope Info", "Illumination Mode"}).value_or(""));
    const std::string operation =
        AsciiUpper(FindText(tags, {"Microscope Info", "Operation Mode"}).value_or(""));
    const std::string imaging =
        AsciiUpper(FindText(tags, {"Microscope Info", "Imaging Mode"}).value_or(""));
    const std::string device = AsciiUpper(FindText(tags, {"DataBar", "Device Name"}).value_or(""));
    if (reciprocal) {
      mode = Mode::kDiffraction;
    } else if (illumination == "SEM") {
      mode = Mode::kSemImage;
    } else if (operation.find("SCANNING") != std::string::npos ||
               illumination.find("STEM") != std::string::npos || device == "DIGISCAN" ||
               FindPath(tags, {"DigiScan"}) != nullptr) {
      mode = Mode::kStemImage;
    } else {
      for (const std::string& text : {operation, imaging}) {
        if (text.empty()) continue;
        mode = ModeFromText(text);
        if (mode != Mode::kUnknown) break;
      }
      if (mode == Mode::kUnknown && FindPath(tags, {"Microscope Info"}) != nullptr) {
        mode = Mode::kTemImage;
      }
      if (mode == Mode::kUnknown) mode = Mode::kImage;
    }
  }
  signal.fields.mode = mode;
  FillFields(tags, signal, spectral_axis, signal.fields);
  return Out(std::make_pair(std::move(signal), std::move(layout)));
}

}  // namespace

Result<std::unique_ptr<DatasetReader>> OpenDigitalMicrograph(const fs::path& path) {
  SCISEARCH_ASSIGN_OR_RETURN(FileSource source, FileSource::Open(path));
  const std::string name = path.string();
  if (source.size() < 16) {
    return Status::Corrupt(name + ": too short for a DigitalMicrograph header (" +
                           std::to_string(source.size()) + " bytes)");
  }
  uint8_t head[4];
  SCISEARCH_RETURN_IF_ERROR(source.ReadAt(0, 4, head));
  const uint32_t version =
      (uint32_t(head[0]) << 24) | (uint32_t(head[1]) << 16) | (uint32_t(head[2]) << 8) | head[3];
  if (version != 3 && version != 4) {
    return Status::Unsupported(name + ": DigitalMicrograph version " + std::to_string(version) +
                               " is not supported (3 or 4)");
  }
  const bool dm4 = version == 4;
  TagStream stream(source, ByteOrder::kBig);
  SCISEARCH_RETURN_IF_ERROR(stream.Seek(4, "header"));
  SCISEARCH_ASSIGN_OR_RETURN(uint64_t root_length,
                             stream.ReadBigEndian(dm4 ? 8 : 4, "root length"));
  (void)root_length;  // DM writes it inconsistently; the tag sizes bound the parse instead
  SCISEARCH_ASSIGN_OR_RETURN(uint64_t order_flag, stream.ReadBigEndian(4, "byte order flag"));
  if (order_flag > 1) {
    return Status::Corrupt(name + ": byte order flag is " + std::to_string(order_flag) +
                           " (expected 0 big-endian or 1 little-endian)");
  }
  const ByteOrder order = order_flag == 1 ? ByteOrder::kLittle : ByteOrder::kBig;
  TagStream tags(source, order);
  SCISEARCH_RETURN_IF_ERROR(tags.Seek(stream.position(), "root group"));
  Metadata root = Metadata::object();
  TagParser parser(tags, dm4);
  std::string tag_path;
  SCISEARCH_RETURN_IF_ERROR(parser.ParseGroup(root, 0, tag_path).WithContext(name));
  if (!root.is_object()) root = Metadata{{"#0", std::move(root)}};

  Dataset dataset;
  dataset.path = path;
  dataset.format = dm4 ? "dm4" : "dm3";
  dataset.member_files = {path};

  std::set<int64_t> thumbnails;
  if (const Metadata* list = FindPath(root, {"Thumbnails"}); list != nullptr && list->is_array()) {
    for (const Metadata& t : *list) {
      if (auto idx = FindNumber(t, {"ImageIndex"}); idx && *idx >= 0 && *idx < 1e9) {
        thumbnails.insert(int64_t(*idx));
      }
    }
  }
  // The trees are moved, not copied, out of `root` (its keys are unique): the document
  // is every top-level tag but the image list, and each image's tree becomes its
  // signal's metadata, with the document under "Document".
  Metadata document = Metadata::object();
  Metadata* images = nullptr;
  {
    auto& members = root.get_ref<Metadata::object_t&>();
    auto& document_members = document.get_ref<Metadata::object_t&>();
    document_members.reserve(members.size());
    for (auto& [key, value] : members) {
      if (key == "ImageList") {
        images = &value;
      } else {
        document_members.emplace_back(key, std::move(value));
      }
    }
  }
  std::vector<ImageLayout> layouts;
  if (images != nullptr) {
    if (!images->is_array()) {
      return Status::Corrupt(name + ": ImageList is not a list of images");
    }
    for (size_t i = 0; i < images->size(); ++i) {
      if (thumbnails.count(int64_t(i)) != 0) continue;
      Metadata& image = (*images)[i];
      SCISEARCH_ASSIGN_OR_RETURN(auto built, BuildSignal(image, i, source));
      if (!built) continue;
      auto& [signal, layout] = *built;
      signal.metadata = image.is_object() ? std::move(image) : Metadata::object();
      dataset.signals.push_back(std::move(signal));
      layouts.push_back(std::move(layout));
    }
  }
  for (size_t k = 0; k < dataset.signals.size(); ++k) {
    Metadata& md = dataset.signals[k].metadata;
    if (k + 1 < dataset.signals.size()) {
      md["Document"] = document;
    } else {
      md["Document"] = std::move(document);
    }
  }
  if (dataset.signals.empty()) {
    return Status::Corrupt(name +
                           ": the file holds no image data (no ImageList entry with "
                           "ImageData/Data other than the thumbnail)");
  }
  return std::unique_ptr<DatasetReader>(
      new DmReader(std::move(source), order, std::move(dataset), std::move(layouts)));
}

}  // namespace scisearch::formats
