// The value types of formats.h, their JSON form and the .npy writer.
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <clocale>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <type_traits>

#include "formats/dataset_json.h"
#include "formats/formats.h"
#include "formats/readers.h"
#include "formats/slab_io.h"
#include "formats/text.h"

namespace scisearch::formats {

std::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kBool:
      return "bool";
    case DType::kInt8:
      return "int8";
    case DType::kUInt8:
      return "uint8";
    case DType::kInt16:
      return "int16";
    case DType::kUInt16:
      return "uint16";
    case DType::kInt32:
      return "int32";
    case DType::kUInt32:
      return "uint32";
    case DType::kInt64:
      return "int64";
    case DType::kUInt64:
      return "uint64";
    case DType::kFloat32:
      return "float32";
    case DType::kFloat64:
      return "float64";
    case DType::kComplex64:
      return "complex64";
    case DType::kComplex128:
      return "complex128";
    case DType::kRGB8:
      return "rgb8";
    case DType::kRGBA8:
      return "rgba8";
  }
  return "unknown";
}

size_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kBool:
    case DType::kInt8:
    case DType::kUInt8:
      return 1;
    case DType::kInt16:
    case DType::kUInt16:
      return 2;
    case DType::kInt32:
    case DType::kUInt32:
    case DType::kFloat32:
      return 4;
    case DType::kInt64:
    case DType::kUInt64:
    case DType::kFloat64:
    case DType::kComplex64:
      return 8;
    case DType::kComplex128:
      return 16;
    case DType::kRGB8:
      return 3;
    case DType::kRGBA8:
      return 4;
  }
  return 1;
}

std::string NpyDescr(DType dtype) {
  switch (dtype) {
    case DType::kBool:
      return "'|b1'";
    case DType::kInt8:
      return "'|i1'";
    case DType::kUInt8:
      return "'|u1'";
    case DType::kInt16:
      return "'<i2'";
    case DType::kUInt16:
      return "'<u2'";
    case DType::kInt32:
      return "'<i4'";
    case DType::kUInt32:
      return "'<u4'";
    case DType::kInt64:
      return "'<i8'";
    case DType::kUInt64:
      return "'<u8'";
    case DType::kFloat32:
      return "'<f4'";
    case DType::kFloat64:
      return "'<f8'";
    case DType::kComplex64:
      return "'<c8'";
    case DType::kComplex128:
      return "'<c16'";
    case DType::kRGB8:
      return "[('R', '|u1'), ('G', '|u1'), ('B', '|u1')]";
    case DType::kRGBA8:
      return "[('R', '|u1'), ('G', '|u1'), ('B', '|u1'), ('A', '|u1')]";
  }
  return "'|u1'";
}

std::string_view ModeName(Mode mode) {
  switch (mode) {
    case Mode::kUnknown:
      return "unknown";
    case Mode::kTemImage:
      return "tem image";
    case Mode::kStemImage:
      return "stem image";
    case Mode::kDiffraction:
      return "diffraction";
    case Mode::kSemImage:
      return "sem image";
    case Mode::kSpectrum:
      return "spectrum";
    case Mode::kSpectrumImage:
      return "spectrum image";
    case Mode::k4dStem:
      return "4d-stem";
    case Mode::kVolume:
      return "volume";
    case Mode::kOpticalImage:
      return "optical image";
    case Mode::kImage:
      return "image";
  }
  return "unknown";
}

namespace {
int64_t Product(const std::vector<int64_t>& shape) {
  auto n = CheckedElementCount(shape);
  return n.ok() ? *n : 0;
}
}  // namespace

int64_t Signal::ElementCount() const { return Product(shape); }
int64_t NdArray::ElementCount() const { return Product(shape); }

Hyperslab Hyperslab::All(const std::vector<int64_t>& shape) {
  Hyperslab slab;
  slab.start.assign(shape.size(), 0);
  slab.count = shape;
  slab.step.assign(shape.size(), 1);
  return slab;
}

Status Hyperslab::Validate(const std::vector<int64_t>& shape) const {
  if (start.size() != shape.size() || count.size() != shape.size() || step.size() != shape.size()) {
    return Status::InvalidArgument("selection has " + std::to_string(start.size()) +
                                   " axes, the signal has " + std::to_string(shape.size()));
  }
  for (size_t k = 0; k < shape.size(); ++k) {
    const std::string axis = "axis " + std::to_string(k);
    if (start[k] < 0 || count[k] < 0 || step[k] < 1) {
      return Status::InvalidArgument(axis + ": start and count must be >= 0 and step >= 1");
    }
    if (count[k] == 0) continue;
    if (start[k] >= shape[k] || (count[k] - 1) > (shape[k] - 1 - start[k]) / step[k]) {
      return Status::InvalidArgument(axis + ": selection runs past its size " +
                                     std::to_string(shape[k]));
    }
  }
  return Status::Ok();
}

nlohmann::ordered_json DatasetToJson(const Dataset& dataset) {
  using Json = nlohmann::ordered_json;
  Json out;
  out["path"] = dataset.path.string();
  out["format"] = dataset.format;
  Json members = Json::array();
  for (const auto& m : dataset.member_files) members.push_back(m.string());
  out["files"] = members;
  Json signals = Json::array();
  for (const Signal& s : dataset.signals) {
    Json js;
    js["name"] = s.name;
    js["shape"] = s.shape;
    js["dtype"] = std::string(DTypeName(s.dtype));
    Json axes = Json::array();
    for (const Axis& a : s.axes) {
      axes.push_back(Json{{"name", a.name},
                          {"size", a.size},
                          {"scale", a.scale},
                          {"offset", a.offset},
                          {"units", a.units},
                          {"navigate", a.navigate}});
    }
    js["axes"] = axes;
    js["metadata"] = s.metadata;
    const NormalisedFields& f = s.fields;
    js["acquired"] = f.acquired ? Json(*f.acquired) : Json(nullptr);
    js["instrument"] = f.instrument ? Json(*f.instrument) : Json(nullptr);
    js["mode"] = std::string(ModeName(f.mode));
    js["beam_energy_kev"] = f.beam_energy_kev ? Json(*f.beam_energy_kev) : Json(nullptr);
    js["magnification"] = f.magnification ? Json(*f.magnification) : Json(nullptr);
    js["pixel_size"] = f.pixel_size_m ? Json(*f.pixel_size_m) : Json(nullptr);
    js["pixel_size_units"] = f.pixel_size_units ? Json(*f.pixel_size_units) : Json(nullptr);
    js["detector"] = f.detector ? Json(*f.detector) : Json(nullptr);
    signals.push_back(std::move(js));
  }
  out["signals"] = signals;
  return out;
}

namespace {

// Whether `text` can stand between quotes as it is in JSON that dump() writes without
// ensure_ascii: valid UTF-8 (dump() replaces invalid bytes) with no quote, backslash or
// control character (dump() escapes those; DEL and non-ASCII characters are kept as they are).
bool IsPlainJsonString(std::string_view text) {
  bool ascii = true;
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == '"' || byte == '\\') return false;
    ascii = ascii && byte < 0x80;
  }
  return ascii || IsValidUtf8(text);
}

void AppendJsonString(const std::string& text, std::string& out) {
  if (IsPlainJsonString(text)) {
    out += '"';
    out += text;
    out += '"';
  } else {
    // Escapes and replacements exactly as dump() writes them.
    out += Metadata(text).dump(-1, ' ', false, Metadata::error_handler_t::replace);
  }
}

template <typename Integer>
void AppendInteger(Integer value, std::string& out) {
  char digits[24];
  const auto result = std::to_chars(digits, digits + sizeof(digits), value);
  out.append(digits, result.ptr);
}

// Recursive, as dump() is: the trees readers build are bounded in depth.
void AppendJson(const Metadata& json, std::string& out) {
  using Type = Metadata::value_t;
  switch (json.type()) {
    case Type::object: {
      out += '{';
      bool first = true;
      for (const auto& [key, value] : json.get_ref<const Metadata::object_t&>()) {
        if (!first) out += ',';
        first = false;
        AppendJsonString(key, out);
        out += ':';
        AppendJson(value, out);
      }
      out += '}';
      return;
    }
    case Type::array: {
      out += '[';
      bool first = true;
      for (const Metadata& value : json.get_ref<const Metadata::array_t&>()) {
        if (!first) out += ',';
        first = false;
        AppendJson(value, out);
      }
      out += ']';
      return;
    }
    case Type::string:
      AppendJsonString(json.get_ref<const std::string&>(), out);
      return;
    case Type::boolean:
      out += json.get<bool>() ? "true" : "false";
      return;
    case Type::number_integer:
      AppendInteger(json.get<int64_t>(), out);
      return;
    case Type::number_unsigned:
      AppendInteger(json.get<uint64_t>(), out);
      return;
    case Type::number_float: {
      const double value = json.get<double>();
      if (!std::isfinite(value)) {
        out += "null";
        return;
      }
      // The shortest round-trip form that dump() itself writes (nlohmann's Grisu2).
      char digits[64];
      out.append(digits, nlohmann::detail::to_chars(digits, digits + sizeof(digits), value));
      return;
    }
    case Type::null:
      out += "null";
      return;
    case Type::binary:
    case Type::discarded:
      out += json.dump(-1, ' ', false, Metadata::error_handler_t::replace);
      return;
  }
}

}  // namespace

std::optional<Metadata> ParseMetadataJson(std::string_view text) {
  dataset_json_internal::MetadataBuilder builder(/*steal_strings=*/true);
  if (!ParseJsonEvents(text, builder)) return std::nullopt;
  return builder.Take();
}

namespace {

// ParseMetadataMsgpack's scanner: MessagePack as nlohmann's reader takes it (object keys
// must be strings; ext values become binaries with a subtype; 0xC1 is refused), with
// the same events.
class MsgpackParser {
 public:
  MsgpackParser(std::string_view bytes, dataset_json_internal::MetadataBuilder& out)
      : p_(reinterpret_cast<const uint8_t*>(bytes.data())), end_(p_ + bytes.size()), out_(out) {}

  bool Parse() {
    struct Open {
      bool is_object;
      uint64_t left;  // members or elements still to read
    };
    std::vector<Open> open;
    while (true) {
      if (!open.empty() && open.back().is_object && !Key()) return false;
      uint64_t size = 0;
      const Read read = Value(size);
      switch (read) {
        case Read::kError:
          return false;
        case Read::kObject:
        case Read::kArray:
          open.push_back(Open{read == Read::kObject, size});
          continue;  // its first member or element
        case Read::kValue:
          break;
      }
      // A value is complete: close the containers it completes.
      while (!open.empty() && --open.back().left == 0) {
        if (!(open.back().is_object ? out_.end_object() : out_.end_array())) return false;
        open.pop_back();
      }
      if (open.empty()) return p_ == end_;
    }
  }

 private:
  enum class Read { kError, kValue, kObject, kArray };

  bool Has(uint64_t count) const { return uint64_t(end_ - p_) >= count; }

  // A big-endian unsigned integer of `bytes` bytes into `out`.
  bool BigEndian(int bytes, uint64_t& out) {
    if (!Has(uint64_t(bytes))) return false;
    out = 0;
    for (int k = 0; k < bytes; ++k) out = (out << 8) | *p_++;
    return true;
  }

  template <typename Signed>
  bool SignedOf(uint64_t bits) {
    using Unsigned = std::make_unsigned_t<Signed>;
    return out_.number_integer(Metadata::number_integer_t(Signed(Unsigned(bits))));
  }

  bool Text(uint64_t length) {
    if (!Has(length)) return false;
    text_.assign(reinterpret_cast<const char*>(p_), size_t(length));
    p_ += length;
    return true;
  }

  bool Binary(uint64_t length, std::optional<uint8_t> subtype) {
    if (!Has(length)) return false;
    Metadata::binary_t bytes(std::vector<uint8_t>(p_, p_ + length));
    p_ += length;
    if (subtype) bytes.set_subtype(*subtype);
    return out_.binary(bytes);
  }

  // An ext value: its subtype (a signed byte), then `length` bytes.
  bool Extension(uint64_t length) {
    if (!Has(1)) return false;
    const uint8_t subtype = *p_++;
    return Binary(length, subtype);
  }

  static bool IsString(uint8_t type) {
    return (type >= 0xA0 && type <= 0xBF) || (type >= 0xD9 && type <= 0xDB);
  }

  // The rest of a string whose type byte, read already, is `type` (IsString) into text_.
  bool String(uint8_t type) {
    uint64_t length = type & 0x1F;
    if (type >= 0xD9 && !BigEndian(1 << (type - 0xD9), length)) return false;
    return Text(length);
  }

  // Object keys must be strings.
  bool Key() {
    if (!Has(1)) return false;
    const uint8_t type = *p_++;
    return IsString(type) && String(type) && out_.key(text_);
  }

  // A container's start: an empty one is a whole value.
  Read Container(bool is_object, uint64_t size, uint64_t& out_size) {
    if (!(is_object ? out_.start_object(size_t(size)) : out_.start_array(size_t(size)))) {
      return Read::kError;
    }
    if (size == 0) {
      return (is_object ? out_.end_object() : out_.end_array()) ? Read::kValue : Read::kError;
    }
    out_size = size;
    return is_object ? Read::kObject : Read::kArray;
  }

  Read Value(uint64_t& size) {
    auto done = [](bool ok) { return ok ? Read::kValue : Read::kError; };
    if (!Has(1)) return Read::kError;
    const uint8_t b = *p_++;
    if (b <= 0x7F) return done(out_.number_unsigned(b));
    if (b >= 0xE0) return done(out_.number_integer(int8_t(b)));
    if (b >= 0x80 && b <= 0x8F) return Container(true, b & 0x0F, size);
    if (b >= 0x90 && b <= 0x9F) return Container(false, b & 0x0F, size);
    if (IsString(b)) return done(String(b) && out_.string(text_));
    uint64_t n = 0;
    switch (b) {
      case 0xC0:
        return done(out_.null());
      case 0xC2:
      case 0xC3:
        return done(out_.boolean(b == 0xC3));
      case 0xC4:
      case 0xC5:
      case 0xC6:
        return done(BigEndian(1 << (b - 0xC4), n) && Binary(n, std::nullopt));
      case 0xC7:
      case 0xC8:
      case 0xC9:
        return done(BigEndian(1 << (b - 0xC7), n) && Extension(n));
      case 0xCA: {
        if (!BigEndian(4, n)) return Read::kError;
        float value;
        const uint32_t bits = uint32_t(n);
        std::memcpy(&value, &bits, sizeof(value));
        return done(out_.number_float(double(value), ""));
      }
      case 0xCB: {
        if (!BigEndian(8, n)) return Read::kError;
        double value;
        std::memcpy(&value, &n, sizeof(value));
        return done(out_.number_float(value, ""));
      }
      case 0xCC:
      case 0xCD:
      case 0xCE:
      case 0xCF:
        return done(BigEndian(1 << (b - 0xCC), n) && out_.number_unsigned(n));
      case 0xD0:
        return done(BigEndian(1, n) && SignedOf<int8_t>(n));
      case 0xD1:
        return done(BigEndian(2, n) && SignedOf<int16_t>(n));
      case 0xD2:
        return done(BigEndian(4, n) && SignedOf<int32_t>(n));
      case 0xD3:
        return done(BigEndian(8, n) && SignedOf<int64_t>(n));
      case 0xD4:
      case 0xD5:
      case 0xD6:
      case 0xD7:
      case 0xD8:
        return done(Extension(uint64_t(1) << (b - 0xD4)));
      case 0xDC:
      case 0xDD:
        if (!BigEndian(b == 0xDC ? 2 : 4, n)) return Read::kError;
        return Container(false, n, size);
      case 0xDE:
      case 0xDF:
        if (!BigEndian(b == 0xDE ? 2 : 4, n)) return Read::kError;
        return Container(true, n, size);
      default:  // 0xC1, never used
        return Read::kError;
    }
  }

  const uint8_t* p_;
  const uint8_t* end_;
  dataset_json_internal::MetadataBuilder& out_;
  std::string text_;  // the string being read; MetadataBuilder takes it over
};

}  // namespace

std::optional<Metadata> ParseMetadataMsgpack(std::string_view bytes) {
  dataset_json_internal::MetadataBuilder builder(/*steal_strings=*/true);
  if (!MsgpackParser(bytes, builder).Parse()) return std::nullopt;
  return builder.Take();
}

std::string DumpJson(const nlohmann::ordered_json& json) {
  std::string out;
  AppendJson(json, out);
  return out;
}

std::optional<DType> DTypeFromName(std::string_view name) {
  for (int i = 0; i <= int(DType::kRGBA8); ++i) {
    if (DTypeName(DType(i)) == name) return DType(i);
  }
  return std::nullopt;
}

std::optional<Mode> ModeFromName(std::string_view name) {
  for (int i = 0; i <= int(Mode::kImage); ++i) {
    if (ModeName(Mode(i)) == name) return Mode(i);
  }
  return std::nullopt;
}

namespace {

using Json = nlohmann::ordered_json;

// Field readers for DatasetFromJson: each checks the type and names `field` on error.
Status FieldError(const std::string& field, const char* expected) {
  return Status::InvalidArgument("dataset JSON: " + field + ": expected " + expected);
}

Result<const Json*> Member(const Json& object, const char* key, const std::string& where) {
  auto it = object.find(key);
  if (it == object.end())
    return Status::InvalidArgument("dataset JSON: " + where + key + ": missing");
  return &*it;
}

Result<std::string> StringField(const Json& object, const char* key, const std::string& where) {
  SCISEARCH_ASSIGN_OR_RETURN(const Json* value, Member(object, key, where));
  if (!value->is_string()) return FieldError(where + key, "a string");
  return value->get<std::string>();
}

Result<int64_t> IntField(const Json& object, const char* key, const std::string& where) {
  SCISEARCH_ASSIGN_OR_RETURN(const Json* value, Member(object, key, where));
  if (value->is_number_unsigned() && value->get<uint64_t>() > uint64_t(INT64_MAX)) {
    return FieldError(where + key, "a 64-bit integer");
  }
  if (!value->is_number_integer()) return FieldError(where + key, "an integer");
  return value->get<int64_t>();
}

// Reals; null stands for NaN or infinity, which JSON cannot spell.
Result<double> RealField(const Json& object, const char* key, const std::string& where) {
  SCISEARCH_ASSIGN_OR_RETURN(const Json* value, Member(object, key, where));
  if (value->is_null()) return std::nan("");
  if (!value->is_number()) return FieldError(where + key, "a number");
  return value->get<double>();
}

Result<bool> BoolField(const Json& object, const char* key, const std::string& where) {
  SCISEARCH_ASSIGN_OR_RETURN(const Json* value, Member(object, key, where));
  if (!value->is_boolean()) return FieldError(where + key, "true or false");
  return value->get<bool>();
}

Result<std::optional<std::string>> OptionalString(const Json& object, const char* key,
                                                  const std::string& where) {
  SCISEARCH_ASSIGN_OR_RETURN(const Json* value, Member(object, key, where));
  if (value->is_null()) return std::optional<std::string>();
  if (!value->is_string()) return FieldError(where + key, "a string or null");
  return std::optional<std::string>(value->get<std::string>());
}

Result<std::optional<double>> OptionalReal(const Json& object, const char* key,
                                           const std::string& where) {
  SCISEARCH_ASSIGN_OR_RETURN(const Json* value, Member(object, key, where));
  if (value->is_null()) return std::optional<double>();
  if (!value->is_number()) return FieldError(where + key, "a number or null");
  return std::optional<double>(value->get<double>());
}

Result<Axis> AxisFromJson(const Json& json, const std::string& where) {
  if (!json.is_object()) return FieldError(where.substr(0, where.size() - 1), "an object");
  Axis axis;
  SCISEARCH_ASSIGN_OR_RETURN(axis.name, StringField(json, "name", where));
  SCISEARCH_ASSIGN_OR_RETURN(axis.size, IntField(json, "size", where));
  SCISEARCH_ASSIGN_OR_RETURN(axis.scale, RealField(json, "scale", where));
  SCISEARCH_ASSIGN_OR_RETURN(axis.offset, RealField(json, "offset", where));
  SCISEARCH_ASSIGN_OR_RETURN(axis.units, StringField(json, "units", where));
  SCISEARCH_ASSIGN_OR_RETURN(axis.navigate, BoolField(json, "navigate", where));
  return axis;
}

Result<Signal> SignalFromJson(const Json& json, const std::string& where) {
  if (!json.is_object()) return FieldError(where.substr(0, where.size() - 1), "an object");
  Signal signal;
  SCISEARCH_ASSIGN_OR_RETURN(signal.name, StringField(json, "name", where));
  SCISEARCH_ASSIGN_OR_RETURN(const std::string dtype, StringField(json, "dtype", where));
  std::optional<DType> parsed_dtype = DTypeFromName(dtype);
  if (!parsed_dtype) return FieldError(where + "dtype", "a dtype name");
  signal.dtype = *parsed_dtype;
  SCISEARCH_ASSIGN_OR_RETURN(const Json* shape, Member(json, "shape", where));
  if (!shape->is_array()) return FieldError(where + "shape", "an array of integers");
  for (size_t k = 0; k < shape->size(); ++k) {
    const Json& n = (*shape)[k];
    if (!n.is_number_integer() || (n.is_number_unsigned() && n.get<uint64_t>() > INT64_MAX)) {
      return FieldError(where + "shape[" + std::to_string(k) + "]", "an integer");
    }
    signal.shape.push_back(n.get<int64_t>());
  }
  SCISEARCH_ASSIGN_OR_RETURN(const Json* axes, Member(json, "axes", where));
  if (!axes->is_array()) return FieldError(where + "axes", "an array");
  for (size_t k = 0; k < axes->size(); ++k) {
    SCISEARCH_ASSIGN_OR_RETURN(
        Axis axis, AxisFromJson((*axes)[k], where + "axes[" + std::to_string(k) + "]."));
    signal.axes.push_back(std::move(axis));
  }
  SCISEARCH_ASSIGN_OR_RETURN(const Json* metadata, Member(json, "metadata", where));
  signal.metadata = *metadata;
  NormalisedFields& f = signal.fields;
  SCISEARCH_ASSIGN_OR_RETURN(f.acquired, OptionalString(json, "acquired", where));
  SCISEARCH_ASSIGN_OR_RETURN(f.instrument, OptionalString(json, "instrument", where));
  SCISEARCH_ASSIGN_OR_RETURN(const std::string mode, StringField(json, "mode", where));
  std::optional<Mode> parsed_mode = ModeFromName(mode);
  if (!parsed_mode) return FieldError(where + "mode", "a mode name");
  f.mode = *parsed_mode;
  SCISEARCH_ASSIGN_OR_RETURN(f.beam_energy_kev, OptionalReal(json, "beam_energy_kev", where));
  SCISEARCH_ASSIGN_OR_RETURN(f.magnification, OptionalReal(json, "magnification", where));
  SCISEARCH_ASSIGN_OR_RETURN(f.pixel_size_m, OptionalReal(json, "pixel_size", where));
  SCISEARCH_ASSIGN_OR_RETURN(f.pixel_size_units, OptionalString(json, "pixel_size_units", where));
  SCISEARCH_ASSIGN_OR_RETURN(f.detector, OptionalString(json, "detector", where));
  return signal;
}

}  // namespace

Result<Dataset> DatasetFromJson(const nlohmann::ordered_json& json) {
  if (!json.is_object()) return FieldError("the document", "an object");
  Dataset dataset;
  SCISEARCH_ASSIGN_OR_RETURN(const std::string path, StringField(json, "path", ""));
  dataset.path = path;
  SCISEARCH_ASSIGN_OR_RETURN(dataset.format, StringField(json, "format", ""));
  SCISEARCH_ASSIGN_OR_RETURN(const Json* files, Member(json, "files", ""));
  if (!files->is_array()) return FieldError("files", "an array of strings");
  for (size_t k = 0; k < files->size(); ++k) {
    if (!(*files)[k].is_string()) return FieldError("files[" + std::to_string(k) + "]", "a string");
    dataset.member_files.emplace_back((*files)[k].get<std::string>());
  }
  SCISEARCH_ASSIGN_OR_RETURN(const Json* signals, Member(json, "signals", ""));
  if (!signals->is_array()) return FieldError("signals", "an array");
  for (size_t k = 0; k < signals->size(); ++k) {
    SCISEARCH_ASSIGN_OR_RETURN(
        Signal signal, SignalFromJson((*signals)[k], "signals[" + std::to_string(k) + "]."));
    dataset.signals.push_back(std::move(signal));
  }
  return dataset;
}

namespace {

// The .npy version 1.0 header for `dtype` and `shape`, padded so that the data
// starts on a 64-byte boundary as NumPy writes it.
std::string NpyHeader(DType dtype, const std::vector<int64_t>& shape) {
  std::string dict = "{'descr': " + NpyDescr(dtype) + ", 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < shape.size(); ++i) {
    dict += std::to_string(shape[i]);
    if (shape.size() == 1 || i + 1 < shape.size()) dict += ",";
    if (i + 1 < shape.size()) dict += " ";
  }
  dict += "), }";
  const size_t preamble = 10;  // magic (6) + version (2) + header length (2)
  size_t total = preamble + dict.size() + 1;
  size_t padded = (total + 63) / 64 * 64;
  dict.append(padded - total, ' ');
  dict += '\n';
  std::string header = "\x93NUMPY";
  header += '\x01';
  header += '\x00';
  const uint16_t len = static_cast<uint16_t>(dict.size());
  header += static_cast<char>(len & 0xff);
  header += static_cast<char>(len >> 8);
  return header + dict;
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using UniqueFile = std::unique_ptr<std::FILE, FileCloser>;

Status WriteAll(std::FILE* f, const void* data, size_t size, const std::filesystem::path& out) {
  if (size > 0 && std::fwrite(data, 1, size, f) != size) {
    return Status::IoError(out.string() + ": write failed");
  }
  return Status::Ok();
}

}  // namespace

Status CheckSignalIndex(const Dataset& dataset, size_t index) {
  if (index < dataset.signals.size()) return Status::Ok();
  return Status::InvalidArgument(dataset.path.string() + ": no signal " + std::to_string(index) +
                                 " (the file has " + std::to_string(dataset.signals.size()) + ")");
}

Status WriteNpy(const NdArray& array, const std::filesystem::path& out) {
  UniqueFile f(std::fopen(out.c_str(), "wb"));
  if (!f) return Status::IoError(out.string() + ": cannot create");
  const std::string header = NpyHeader(array.dtype, array.shape);
  SCISEARCH_RETURN_IF_ERROR(WriteAll(f.get(), header.data(), header.size(), out));
  SCISEARCH_RETURN_IF_ERROR(WriteAll(f.get(), array.bytes.data(), array.bytes.size(), out));
  if (std::fclose(f.release()) != 0) return Status::IoError(out.string() + ": close failed");
  return Status::Ok();
}

Status ExportNpy(DatasetReader& reader, size_t signal_index, const std::filesystem::path& out,
                 uint64_t max_slab_bytes) {
  const Dataset& ds = reader.dataset();
  SCISEARCH_RETURN_IF_ERROR(CheckSignalIndex(ds, signal_index));
  const Signal& signal = ds.signals[signal_index];
  UniqueFile f(std::fopen(out.c_str(), "wb"));
  if (!f) return Status::IoError(out.string() + ": cannot create");
  const std::string header = NpyHeader(signal.dtype, signal.shape);
  SCISEARCH_RETURN_IF_ERROR(WriteAll(f.get(), header.data(), header.size(), out));

  if (signal.ElementCount() > 0) {
    // Slabs along the slowest axis whose rows, each the product of the faster axes,
    // fit in max_slab_bytes; when one row is too large, split the next axis too.
    const size_t rank = signal.shape.size();
    size_t split_axis = 0;
    uint64_t row_bytes = signal.ByteCount() / uint64_t(signal.shape[0]);
    while (split_axis + 1 < rank && row_bytes > max_slab_bytes) {
      ++split_axis;
      row_bytes /= uint64_t(signal.shape[split_axis]);
    }
    const int64_t rows_per_slab = std::max<int64_t>(
        1, std::min<int64_t>(signal.shape[split_axis],
                             int64_t(max_slab_bytes / std::max<uint64_t>(row_bytes, 1))));
    Hyperslab slab = Hyperslab::All(signal.shape);
    std::vector<int64_t> outer(split_axis, 0);
    while (true) {
      for (size_t k = 0; k < split_axis; ++k) {
        slab.start[k] = outer[k];
        slab.count[k] = 1;
      }
      for (int64_t row = 0; row < signal.shape[split_axis]; row += rows_per_slab) {
        slab.start[split_axis] = row;
        slab.count[split_axis] = std::min(rows_per_slab, signal.shape[split_axis] - row);
        SCISEARCH_ASSIGN_OR_RETURN(NdArray part, reader.Read(signal_index, slab));
        SCISEARCH_RETURN_IF_ERROR(WriteAll(f.get(), part.bytes.data(), part.bytes.size(), out));
      }
      size_t k = split_axis;
      bool done = true;
      while (k > 0) {
        --k;
        if (++outer[k] < signal.shape[k]) {
          done = false;
          break;
        }
        outer[k] = 0;
      }
      if (done) break;
    }
  }
  if (std::fclose(f.release()) != 0) return Status::IoError(out.string() + ": close failed");
  return Status::Ok();
}

}  // namespace scisearch::formats
