// Gatan DigitalMicrograph writer, DM3 and DM4, laid out as GMS 2 writes them.
//
// File (Chris Boothroyd's DM3 description; DM4 as RosettaSciIO and ncempy read it): a
// big-endian header {version u32, root length (u32 DM3 / u64 DM4), byte order u32 = 1
// (little-endian values)}, the root tag group, and 8 zero bytes. A group is {sorted u8,
// open u8, tag count (u32/u64)} and its tags; a tag is {kind u8 (20 group, 21 data), name
// length u16, name} (DM4 then the tag's byte length, u64), and a data tag continues
// "%%%%", the count of type-description words and the words (u32/u64, big-endian), then
// the value in little-endian order. Named groups list their tags sorted by name; DM's
// lists (ImageList, Dimensions, ...) are groups of unnamed tags.
//
// What we write, as DigitalMicrograph does:
//   - The document: ApplicationBounds, DocumentObjectList (one ImageDisplay per signal),
//     DocumentTags, Image Behavior, ImageList, ImageSourceList, Page Behavior, Thumbnails,
//     WindowPosition, ...
//   - ImageList[0] is the document's thumbnail (DataType 23, 32-bit B,G,R,0 pixels, a
//     grey rendering of the first signal, long side 64 to 128); ImageList[1..] the signals.
//   - ImageData: Calibrations {Brightness, Dimension[] {Origin, Scale, Units}, ...}, Data,
//     DataType, Dimensions[] (fastest axis first), PixelDepth. Offset = -Origin * Scale.
//     Origin and Scale are float32, as DM writes them, when that holds them exactly;
//     otherwise float64, so that the calibration reads back exactly.
//   - Spectrum images are stored energy-slowest (DM's layout: Dimensions x, y, energy),
//     transposed from the signal's (scan_y, scan_x, energy); a line scan is (scan, energy).
//   - ImageTags: DataBar (Acquisition Date "M/D/YYYY", Acquisition Time "h:mm:ss AM",
//     Acquisition Time (OS) as a Windows FILETIME, Device Name), Microscope Info (Voltage
//     in V, Indicated Magnification, Illumination/Imaging/Operation Mode, Microscope, Name,
//     Operator), Session Info (Microscope, Operator, Specimen and its Items), GMS Version,
//     Meta Data (Format, Signal) and, by kind of acquisition, Acquisition/Device (cameras
//     and spectrometers), DigiScan (scanned images) and EELS.
//
// What reads back (formats::OpenDataset): shapes, dtypes, pixel bytes, axes (names as the
// reader gives them: x, y, frame, scan, scan_y, scan_x, energy) exactly; the acquired clock
// time to the second (the DataBar keeps no zone or fraction); instrument, beam energy,
// magnification, detector (each signal's name, else fields.detector), pixel size from the
// axes; the mode (kImage and kUnknown read back as TEM images: DM's Microscope Info says
// TEM unless told otherwise). Every axis must have at least 2 entries (readers drop size-1
// dimensions); ranks 1 to 3.
//
// The file is built in one buffer and written once, through WriteBytesAtomically.
#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
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

// DigitalMicrograph's thumbnails: the long side follows the image, from 64 to 128 pixels.
constexpr int64_t kThumbnailMinSide = 64;
constexpr int64_t kThumbnailMaxSide = 128;

// DM tag encoded types.
enum Enc : uint64_t {
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
  kEncArray = 20,
};

// ---------------------------------------------------------------------------
// Acquisition time.

// 100 ns ticks since 1601-01-01, the clock time taken as UTC.
double FileTime(const CivilTime& t) { return (double(UnixSeconds(t)) + 11644473600.0) * 1e7; }

// ---------------------------------------------------------------------------
// Text.

// UTF-8 to UTF-16 code units (DM's strings); malformed bytes become U+FFFD.
std::vector<uint16_t> Utf16(std::string_view s) {
  std::vector<uint16_t> out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    uint32_t cp = 0xfffd;
    size_t n = 1;
    if (b < 0x80) {
      cp = b;
    } else if ((b >> 5) == 0x6 || (b >> 4) == 0xe || (b >> 3) == 0x1e) {
      n = (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xe ? 3 : 4;
      uint32_t v = b & (n == 2 ? 0x1f : n == 3 ? 0x0f : 0x07);
      bool ok = i + n <= s.size();
      for (size_t k = 1; ok && k < n; ++k) {
        const auto c = static_cast<unsigned char>(s[i + k]);
        ok = (c >> 6) == 0x2;
        v = (v << 6) | (c & 0x3f);
      }
      const uint32_t min = n == 2 ? 0x80 : n == 3 ? 0x800 : 0x10000;
      if (ok && v >= min && v <= 0x10ffff && !(v >= 0xd800 && v <= 0xdfff)) {
        cp = v;
      } else {
        n = 1;
      }
    }
    if (cp >= 0x10000) {
      cp -= 0x10000;
      out.push_back(uint16_t(0xd800 + (cp >> 10)));
      out.push_back(uint16_t(0xdc00 + (cp & 0x3ff)));
    } else {
      out.push_back(uint16_t(cp));
    }
    i += n;
  }
  return out;
}

// ---------------------------------------------------------------------------
// The tag tree.

// A data tag's value: its type description and its bytes (held, or borrowed for image data).
struct Value {
  std::vector<uint64_t> info;
  std::vector<uint8_t> bytes;
  const uint8_t* borrowed = nullptr;
  size_t borrowed_size = 0;
};

template <typename T>
Value Simple(uint64_t enc, T v) {
  Value out;
  out.info = {enc};
  AppendLittle(out.bytes, v);
  return out;
}
Value I16(int16_t v) { return Simple(kEncInt16, v); }
Value I32(int32_t v) { return Simple(kEncInt32, v); }
Value U32(uint32_t v) { return Simple(kEncUInt32, v); }
Value F32(float v) { return Simple(kEncFloat32, v); }
Value F64(double v) { return Simple(kEncFloat64, v); }
Value Bool(bool v) { return Simple<uint8_t>(kEncBool, v ? 1 : 0); }

// A number as float32 when that holds it exactly (as DM writes calibrations), else float64.
Value Real(double v) {
  const auto f = static_cast<float>(v);
  if (std::isfinite(v) && double(f) == v) return F32(f);
  return F64(v);
}

// DM's strings: arrays of UTF-16 code units.
Value Text(std::string_view s) {
  const std::vector<uint16_t> units = Utf16(s);
  Value out;
  out.info = {kEncArray, kEncUInt16, units.size()};
  out.bytes.reserve(units.size() * 2);
  for (uint16_t u : units) AppendLittle(out.bytes, u);
  return out;
}

// A struct of `count` fields of one encoded type.
template <typename T>
Value Struct(uint64_t enc, std::initializer_list<T> fields) {
  Value out;
  out.info = {kEncStruct, 0, fields.size()};
  for (T f : fields) {
    out.info.push_back(0);
    out.info.push_back(enc);
    AppendLittle(out.bytes, f);
  }
  return out;
}

class TagGroup {
 public:
  explicit TagGroup(bool list = false) : list_(list) {}
  TagGroup(TagGroup&&) = default;
  TagGroup& operator=(TagGroup&&) = default;

  // A named tag (in a list, the name is ignored: list entries are unnamed).
  TagGroup& Add(std::string name, Value v) {
    entries_.push_back({std::move(name), std::move(v), nullptr});
    return *this;
  }
  TagGroup& Add(std::string name, TagGroup g) {
    entries_.push_back({std::move(name), Value(), std::make_unique<TagGroup>(std::move(g))});
    return *this;
  }
  TagGroup& Add(Value v) { return Add(std::string(), std::move(v)); }
  TagGroup& Add(TagGroup g) { return Add(std::string(), std::move(g)); }

  bool list() const { return list_; }

  struct Entry {
    std::string name;
    Value value;
    std::unique_ptr<TagGroup> group;
  };
  const std::vector<Entry>& entries() const { return entries_; }

 private:
  bool list_;
  std::vector<Entry> entries_;
};

// Serialises a tag tree in DM3 or DM4 layout.
class TagWriter {
 public:
  TagWriter(bool dm4, std::vector<uint8_t>& out) : dm4_(dm4), out_(out) {}

  void Group(const TagGroup& group) {
    out_.push_back(group.list() ? 0 : 1);  // sorted
    out_.push_back(0);                     // open
    Word(group.entries().size());
    std::vector<const TagGroup::Entry*> order;
    order.reserve(group.entries().size());
    for (const auto& e : group.entries()) order.push_back(&e);
    if (!group.list()) {
      std::stable_sort(order.begin(), order.end(),
                       [](const auto* a, const auto* b) { return a->name < b->name; });
    }
    for (const TagGroup::Entry* e : order) {
      const std::string name = group.list() ? std::string() : e->name;
      out_.push_back(e->group ? 20 : 21);
      Big(name.size(), 2);
      out_.insert(out_.end(), name.begin(), name.end());
      size_t size_at = 0;
      if (dm4_) {
        size_at = out_.size();
        Big(0, 8);
      }
      const size_t start = out_.size();
      if (e->group) {
        Group(*e->group);
      } else {
        Data(e->value);
      }
      if (dm4_) PatchBig(size_at, out_.size() - start, 8);
    }
  }

 private:
  void Data(const Value& v) {
    static constexpr char kDelimiter[] = "%%%%";
    out_.insert(out_.end(), kDelimiter, kDelimiter + 4);
    Word(v.info.size());
    for (uint64_t w : v.info) Word(w);
    out_.insert(out_.end(), v.bytes.begin(), v.bytes.end());
    if (v.borrowed_size > 0) out_.insert(out_.end(), v.borrowed, v.borrowed + v.borrowed_size);
  }
  void Word(uint64_t v) { Big(v, dm4_ ? 8 : 4); }
  void Big(uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) out_.push_back(uint8_t(v >> (8 * i)));
  }
  void PatchBig(size_t at, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out_[at + size_t(i)] = uint8_t(v >> (8 * (bytes - 1 - i)));
  }

  bool dm4_;
  std::vector<uint8_t>& out_;
};

// ---------------------------------------------------------------------------
// Signals.

struct DmType {
  uint32_t data_type;  // ImageData/DataType
  uint64_t element;    // the Data array's element encoding (kEncStruct: complex)
  uint64_t field;      // complex: the encoding of each part
  uint32_t depth;      // PixelDepth
};

std::optional<DmType> DmTypeOf(DType dtype) {
  switch (dtype) {
    case DType::kBool:
      return DmType{14, kEncBool, 0, 1};
    case DType::kInt8:
      return DmType{9, kEncInt8, 0, 1};
    case DType::kUInt8:
      return DmType{6, kEncUInt8, 0, 1};
    case DType::kInt16:
      return DmType{1, kEncInt16, 0, 2};
    case DType::kUInt16:
      return DmType{10, kEncUInt16, 0, 2};
    case DType::kInt32:
      return DmType{7, kEncInt32, 0, 4};
    case DType::kUInt32:
      return DmType{11, kEncUInt32, 0, 4};
    case DType::kInt64:
      return DmType{39, kEncInt64, 0, 8};
    case DType::kUInt64:
      return DmType{40, kEncUInt64, 0, 8};
    case DType::kFloat32:
      return DmType{2, kEncFloat32, 0, 4};
    case DType::kFloat64:
      return DmType{12, kEncFloat64, 0, 8};
    case DType::kComplex64:
      return DmType{3, kEncStruct, kEncFloat32, 8};
    case DType::kComplex128:
      return DmType{13, kEncStruct, kEncFloat64, 16};
    case DType::kRGB8:
      return DmType{23, kEncInt32, 0, 4};
    default:
      return std::nullopt;
  }
}

struct ImagePlan {
  const SignalToWrite* signal = nullptr;
  DmType type{};
  bool spectral = false;
  bool reciprocal = false;
  std::vector<const Axis*> dm_axes;  // DM order: fastest first
  std::vector<uint8_t> stored;       // data rearranged for the file (empty: data as given)
  std::string detector;
};

// Moves the last axis of a C-order array of `shape` to the front (energy slowest).
std::vector<uint8_t> LastAxisFirst(const formats::NdArray& a) {
  const size_t esize = formats::DTypeSize(a.dtype);
  const uint64_t channels = uint64_t(a.shape.back());
  const uint64_t positions = uint64_t(a.ElementCount()) / channels;
  std::vector<uint8_t> out(a.bytes.size());
  const uint8_t* in = a.bytes.data();
  for (uint64_t p = 0; p < positions; ++p) {
    for (uint64_t c = 0; c < channels; ++c) {
      std::memcpy(out.data() + (c * positions + p) * esize, in + (p * channels + c) * esize, esize);
    }
  }
  return out;
}

Result<ImagePlan> PlanImage(const SignalToWrite& s, size_t index,
                            const formats::NormalisedFields& fields) {
  const std::string which = SignalLabel(index, s);
  ImagePlan plan;
  plan.signal = &s;
  SCISEARCH_RETURN_IF_ERROR(
      ValidateSignalArray(s, which, std::numeric_limits<int32_t>::max(), kMaxSignalElements));
  const size_t rank = s.axes.size();
  if (rank > 3) {
    return Status::InvalidArgument(which + " has rank " + std::to_string(rank) +
                                   "; the DigitalMicrograph writer writes ranks 1 to 3");
  }
  for (size_t k = 0; k < rank; ++k) {
    const Axis& a = s.axes[k];
    const std::string axis = which + ".axes[" + std::to_string(k) + "] (" + a.name + ")";
    if (a.size < 2) {
      return Status::InvalidArgument(axis + " has size " + std::to_string(a.size) +
                                     " (DM sizes here are 2 or more: readers drop size-1 "
                                     "dimensions)");
    }
    if (a.scale == 0) {
      return Status::InvalidArgument(axis + " has scale 0 (DM needs a non-zero scale)");
    }
  }
  const auto type = DmTypeOf(s.data.dtype);
  if (!type) {
    return Status::InvalidArgument(
        which + ".data.dtype " + std::string(formats::DTypeName(s.data.dtype)) +
        " is not a DigitalMicrograph data type (bool, int8-64, uint8-64, float32/64, "
        "complex64/128, rgb8)");
  }
  plan.type = *type;
  SCISEARCH_ASSIGN_OR_RETURN(const size_t navigate, LeadingNavigateAxes(s, which));
  const size_t frame_rank = rank - navigate;
  plan.spectral = frame_rank == 1;
  if (plan.spectral && s.data.dtype == DType::kRGB8) {
    return Status::InvalidArgument(which + ": an rgb8 spectrum makes no sense");
  }
  if (!plan.spectral) {
    const Axis& ay = s.axes[rank - 2];
    const Axis& ax = s.axes[rank - 1];
    plan.reciprocal = IsReciprocalUnits(ax.units) || IsReciprocalUnits(ay.units);
  }

  // DM order is fastest first. Spectra with scan axes are stored energy-slowest.
  if (plan.spectral && rank == 3) {
    plan.dm_axes = {&s.axes[1], &s.axes[0], &s.axes[2]};
    plan.stored = LastAxisFirst(s.data);
  } else {
    for (size_t k = rank; k-- > 0;) plan.dm_axes.push_back(&s.axes[k]);
  }
  if (s.data.dtype == DType::kRGB8) {
    // 32-bit words 0x00RRGGBB, little-endian: B, G, R, 0.
    const size_t n = size_t(s.data.ElementCount());
    plan.stored.resize(n * 4);
    for (size_t i = 0; i < n; ++i) {
      const uint8_t* p = s.data.bytes.data() + i * 3;
      uint8_t* q = plan.stored.data() + i * 4;
      q[0] = p[2];
      q[1] = p[1];
      q[2] = p[0];
      q[3] = 0;
    }
  }
  plan.detector = !s.name.empty() ? s.name : fields.detector.value_or("");
  return plan;
}

// Origin such that -Origin * scale == offset exactly, when a nearby double gives it.
double OriginFor(double offset, double scale) {
  const double guess = -offset / scale;
  double best = guess;
  if (-guess * scale == offset) return guess;
  double up = guess, down = guess;
  for (int i = 0; i < 16; ++i) {
    up = std::nextafter(up, std::numeric_limits<double>::infinity());
    down = std::nextafter(down, -std::numeric_limits<double>::infinity());
    if (-up * scale == offset) return up;
    if (-down * scale == offset) return down;
  }
  return best;
}

// DM's spelling of a few units.
std::string DmUnits(const std::string& units) {
  if (units == "um") return "\xc2\xb5m";
  if (units == "1/um") return "1/\xc2\xb5m";
  return units;
}

TagGroup Calibration(double origin, double scale, const std::string& units) {
  TagGroup g;
  g.Add("Origin", Real(origin));
  g.Add("Scale", Real(scale));
  g.Add("Units", Text(units));
  return g;
}

Value DataArray(const DmType& type, const uint8_t* data, size_t bytes, uint64_t count) {
  Value v;
  if (type.element == kEncStruct) {
    v.info = {kEncArray, kEncStruct, 0, 2, 0, type.field, 0, type.field, count};
  } else {
    v.info = {kEncArray, type.element, count};
  }
  v.borrowed = data;
  v.borrowed_size = bytes;
  return v;
}

TagGroup UniqueId(uint64_t seed) {
  TagGroup g(/*list=*/true);
  uint64_t h = seed;
  for (int i = 0; i < 4; ++i) {
    h = Fnv1a(std::to_string(i), h);
    g.Add(U32(uint32_t(h >> 33)));
  }
  return g;
}

// ---------------------------------------------------------------------------
// The thumbnail: the first frame (or spectrum) of the first signal, in grey.

double ValueAt(const formats::NdArray& a, size_t i) {
  const uint8_t* p = a.bytes.data() + i * formats::DTypeSize(a.dtype);
  auto load = [p](auto v) {
    std::memcpy(&v, p, sizeof v);
    return v;
  };
  switch (a.dtype) {
    case DType::kBool:
    case DType::kUInt8:
      return *p;
    case DType::kInt8:
      return load(int8_t());
    case DType::kInt16:
      return load(int16_t());
    case DType::kUInt16:
      return load(uint16_t());
    case DType::kInt32:
      return load(int32_t());
    case DType::kUInt32:
      return load(uint32_t());
    case DType::kInt64:
      return double(load(int64_t()));
    case DType::kUInt64:
      return double(load(uint64_t()));
    case DType::kFloat32:
      return load(float());
    case DType::kFloat64:
      return load(double());
    case DType::kComplex64:
      return std::abs(load(std::complex<float>()));
    case DType::kComplex128:
      return std::abs(load(std::complex<double>()));
    case DType::kRGB8:
    case DType::kRGBA8:
      return (p[0] + p[1] + p[2]) / 3.0;
  }
  return 0;
}

struct Thumbnail {
  int width = 0, height = 0;
  std::vector<uint8_t> pixels;  // B, G, R, 0 per pixel
};

Thumbnail RenderThumbnail(const ImagePlan& plan) {
  const formats::NdArray& a = plan.signal->data;
  Thumbnail t;
  std::vector<double> grey;
  if (!plan.spectral) {
    const int64_t h = a.shape[a.shape.size() - 2];
    const int64_t w = a.shape.back();
    const int64_t longest = std::max(w, h);
    const int64_t side = std::clamp(longest, kThumbnailMinSide, kThumbnailMaxSide);
    t.width = int(std::max<int64_t>(1, side * w / longest));
    t.height = int(std::max<int64_t>(1, side * h / longest));
    grey.resize(size_t(t.width) * size_t(t.height));
    for (int y = 0; y < t.height; ++y) {
      const int64_t sy = int64_t(y) * h / t.height;
      for (int x = 0; x < t.width; ++x) {
        const int64_t sx = int64_t(x) * w / t.width;
        grey[size_t(y) * size_t(t.width) + size_t(x)] = ValueAt(a, size_t(sy * w + sx));
      }
    }
  } else {
    // A line plot of the first spectrum: bright under the curve.
    const int64_t n = a.shape.back();
    t.width = int(std::clamp(n, kThumbnailMinSide, kThumbnailMaxSide));
    t.height = t.width / 2;
    std::vector<double> column(size_t(t.width));
    for (int x = 0; x < t.width; ++x)
      column[size_t(x)] = ValueAt(a, size_t(int64_t(x) * n / t.width));
    const auto [lo, hi] = std::minmax_element(column.begin(), column.end());
    const double span = *hi > *lo ? *hi - *lo : 1.0;
    grey.resize(size_t(t.width) * size_t(t.height));
    for (int x = 0; x < t.width; ++x) {
      const int level = int((column[size_t(x)] - *lo) / span * (t.height - 1));
      for (int y = 0; y < t.height; ++y) {
        grey[size_t(y) * size_t(t.width) + size_t(x)] = (t.height - 1 - y) <= level ? 1.0 : 0.0;
      }
    }
  }
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (double v : grey) {
    if (std::isfinite(v)) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  }
  const double span = hi > lo ? hi - lo : 1.0;
  t.pixels.resize(grey.size() * 4);
  for (size_t i = 0; i < grey.size(); ++i) {
    const double v = std::isfinite(grey[i]) ? (grey[i] - lo) / span : 0.0;
    const auto g = uint8_t(std::clamp(v * 255.0 + 0.5, 0.0, 255.0));
    t.pixels[i * 4] = g;
    t.pixels[i * 4 + 1] = g;
    t.pixels[i * 4 + 2] = g;
  }
  return t;
}

// ---------------------------------------------------------------------------
// The tags of one image.

bool IsScanning(Mode mode) {
  return mode == Mode::kStemImage || mode == Mode::kSpectrumImage || mode == Mode::k4dStem ||
         mode == Mode::kSemImage;
}

std::string TwoDigits(int v) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%02d", v);
  return buf;
}

// "225kx", "1.2Mx", "800x": DM's formatted magnification.
std::string FormattedMag(double mag) {
  char buf[32];
  if (mag >= 1e6) {
    std::snprintf(buf, sizeof buf, "%gMx", mag / 1e6);
  } else if (mag >= 1e3) {
    std::snprintf(buf, sizeof buf, "%gkx", mag / 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%gx", mag);
  }
  return buf;
}

// The signal kind DM's Meta Data names for a spectrum.
std::string SpectrumSignal(const std::string& detector) {
  std::string d;
  for (char c : detector) d += char(std::toupper(static_cast<unsigned char>(c)));
  if (d.find("EDS") != std::string::npos || d.find("EDX") != std::string::npos ||
      d.find("X-RAY") != std::string::npos || d.find("SDD") != std::string::npos ||
      d.find("SUPER-X") != std::string::npos) {
    return "X-ray";
  }
  if (d == "CL" || d.find("MONOCL") != std::string::npos) return "CL";
  return "EELS";
}

TagGroup ImageTags(const Acquisition& acq, const ImagePlan& plan, const CivilTime& when,
                   uint32_t exposure_number) {
  const formats::NormalisedFields& f = acq.fields;
  const std::string instrument = f.instrument.value_or("");
  const bool scanning_mode = IsScanning(f.mode) || (plan.spectral && plan.signal->axes.size() > 1);
  const bool scanned_image = !plan.spectral && scanning_mode && !plan.reciprocal;
  const bool camera = !plan.spectral && !scanned_image;
  TagGroup tags;

  if (camera || plan.spectral) {
    TagGroup device;
    device.Add("Name", Text(plan.detector));
    device.Add("Source", Text(plan.detector));
    TagGroup acquisition;
    acquisition.Add("Device", std::move(device));
    TagGroup high_level;
    high_level.Add("Exposure (s)", F64(plan.spectral ? 0.02 : 0.5));
    TagGroup parameters;
    parameters.Add("High Level", std::move(high_level));
    acquisition.Add("Parameters", std::move(parameters));
    tags.Add("Acquisition", std::move(acquisition));
  }

  TagGroup databar;
  databar.Add("Acquisition Date", Text(std::to_string(when.month) + "/" + std::to_string(when.day) +
                                       "/" + std::to_string(when.year)));
  const int hour12 = when.hour % 12 == 0 ? 12 : when.hour % 12;
  databar.Add("Acquisition Time", Text(std::to_string(hour12) + ":" + TwoDigits(when.minute) + ":" +
                                       TwoDigits(when.second) + (when.hour < 12 ? " AM" : " PM")));
  databar.Add("Acquisition Time (OS)", F64(FileTime(when)));
  databar.Add("Device Name", Text(plan.detector));
  databar.Add("Exposure Number", U32(exposure_number));
  tags.Add("DataBar", std::move(databar));

  if (scanned_image || (plan.spectral && plan.signal->axes.size() > 1)) {
    const std::vector<int64_t>& shape = plan.signal->data.shape;
    const int64_t width = plan.spectral ? shape[shape.size() - 2] : shape.back();
    const int64_t height =
        plan.spectral ? (shape.size() > 2 ? shape[0] : 1) : shape[shape.size() - 2];
    TagGroup digiscan;
    digiscan.Add("Flyback", F64(400.0));
    digiscan.Add("Image Height", U32(uint32_t(height)));
    digiscan.Add("Image Width", U32(uint32_t(width)));
    digiscan.Add("Rotation", F64(0.0));
    digiscan.Add("Sample Time", F64(plan.spectral ? 20000.0 : 10.0));
    digiscan.Add("Synchronize Lines", Bool(false));
    tags.Add("DigiScan", std::move(digiscan));
  }

  if (plan.spectral && SpectrumSignal(plan.detector) == "EELS") {
    TagGroup conditions;
    conditions.Add("Collection semi-angle (mrad)", F32(30.0f));
    conditions.Add("Convergence semi-angle (mrad)", F32(20.0f));
    TagGroup eels;
    eels.Add("Experimental Conditions", std::move(conditions));
    tags.Add("EELS", std::move(eels));
  }

  TagGroup gms;
  gms.Add("Created", Text("2.31.734.0"));
  gms.Add("Saved", Text("2.31.734.0"));
  tags.Add("GMS Version", std::move(gms));

  TagGroup meta;
  if (plan.spectral) {
    meta.Add("Acquisition Mode", Text("Parallel dispersive"));
    meta.Add("Format", Text(plan.signal->axes.size() > 1 ? "Spectrum image" : "Spectrum"));
    meta.Add("Signal", Text(SpectrumSignal(plan.detector)));
  } else {
    meta.Add("Acquisition Mode", Text(scanned_image ? "Scanning" : "Parallel imaging"));
    meta.Add("Format", Text(plan.reciprocal ? "Diffraction image" : "Image"));
  }
  tags.Add("Meta Data", std::move(meta));

  TagGroup microscope;
  if (f.magnification) {
    microscope.Add("Formatted Indicated Mag", Text(FormattedMag(*f.magnification)));
    microscope.Add("Indicated Magnification", F64(*f.magnification));
  }
  if (f.beam_energy_kev) {
    char kv[32];
    std::snprintf(kv, sizeof kv, "%gkV", *f.beam_energy_kev);
    microscope.Add("Formatted Voltage", Text(kv));
    microscope.Add("Voltage", F64(*f.beam_energy_kev * 1000.0));
  }
  const bool diffraction = plan.reciprocal || f.mode == Mode::kDiffraction;
  std::string illumination = scanning_mode ? "STEM NANOPROBE" : "TEM";
  if (f.mode == Mode::kSemImage) illumination = "SEM";
  microscope.Add("Illumination Mode", Text(illumination));
  microscope.Add("Imaging Mode", Text(diffraction || scanning_mode ? "DIFFRACTION" : "IMAGING"));
  microscope.Add("Operation Mode", Text(scanning_mode && !plan.reciprocal ? "SCANNING"
                                        : diffraction                     ? "DIFFRACTION"
                                                                          : "IMAGING"));
  microscope.Add("Microscope", Text(instrument));
  microscope.Add("Name", Text(instrument));
  microscope.Add("Operator", Text(acq.operator_name));
  TagGroup stage;
  stage.Add("Stage Alpha", F64(0.0));
  stage.Add("Stage Beta", F64(0.0));
  stage.Add("Stage X", F64(0.0));
  stage.Add("Stage Y", F64(0.0));
  stage.Add("Stage Z", F64(0.0));
  microscope.Add("Stage Position", std::move(stage));
  tags.Add("Microscope Info", std::move(microscope));

  TagGroup session;
  TagGroup items(/*list=*/true);
  for (const auto& [label, value] :
       {std::pair<std::string, std::string>{"Specimen", acq.sample_description},
        {"Operator", acq.operator_name},
        {"Microscope", instrument}}) {
    TagGroup item;
    item.Add("Data Type", I32(20));
    item.Add("Label", Text(label));
    item.Add("Precision", U32(0));
    item.Add("Tag path", Text("Session Info:" + label));
    item.Add("Units", Text(""));
    item.Add("Value", Text(value));
    items.Add(std::move(item));
  }
  session.Add("Items", std::move(items));
  session.Add("Microscope", Text(instrument));
  session.Add("Operator", Text(acq.operator_name));
  session.Add("Specimen", Text(acq.sample_description));
  tags.Add("Session Info", std::move(session));
  return tags;
}

TagGroup ImageEntry(TagGroup image_data, TagGroup tags, const std::string& name, uint64_t id) {
  TagGroup entry;
  entry.Add("ImageData", std::move(image_data));
  entry.Add("ImageTags", std::move(tags));
  entry.Add("Name", Text(name));
  entry.Add("UniqueID", UniqueId(id));
  return entry;
}

TagGroup ImageDataOf(const ImagePlan& plan) {
  const SignalToWrite& s = *plan.signal;
  TagGroup calibrations;
  calibrations.Add("Brightness", Calibration(0.0, 1.0, "Counts"));
  TagGroup dimension(/*list=*/true);
  TagGroup dimensions(/*list=*/true);
  for (const Axis* a : plan.dm_axes) {
    dimension.Add(Calibration(OriginFor(a->offset, a->scale), a->scale, DmUnits(a->units)));
    dimensions.Add(U32(uint32_t(a->size)));
  }
  calibrations.Add("Dimension", std::move(dimension));
  calibrations.Add("DisplayCalibratedUnits", Bool(true));
  TagGroup data;
  data.Add("Calibrations", std::move(calibrations));
  const std::vector<uint8_t>& bytes = plan.stored.empty() ? s.data.bytes : plan.stored;
  data.Add("Data",
           DataArray(plan.type, bytes.data(), bytes.size(), uint64_t(s.data.ElementCount())));
  data.Add("DataType", U32(plan.type.data_type));
  data.Add("Dimensions", std::move(dimensions));
  data.Add("PixelDepth", U32(plan.type.depth));
  return data;
}

TagGroup ThumbnailData(const Thumbnail& t) {
  TagGroup calibrations;
  calibrations.Add("Brightness", Calibration(0.0, 1.0, ""));
  TagGroup dimension(/*list=*/true);
  dimension.Add(Calibration(0.0, 1.0, ""));
  dimension.Add(Calibration(0.0, 1.0, ""));
  calibrations.Add("Dimension", std::move(dimension));
  calibrations.Add("DisplayCalibratedUnits", Bool(true));
  TagGroup dimensions(/*list=*/true);
  dimensions.Add(U32(uint32_t(t.width)));
  dimensions.Add(U32(uint32_t(t.height)));
  TagGroup data;
  data.Add("Calibrations", std::move(calibrations));
  data.Add("Data", DataArray(DmType{23, kEncInt32, 0, 4}, t.pixels.data(), t.pixels.size(),
                             uint64_t(t.width) * uint64_t(t.height)));
  data.Add("DataType", U32(23));
  data.Add("Dimensions", std::move(dimensions));
  data.Add("PixelDepth", U32(4));
  return data;
}

// ---------------------------------------------------------------------------
// The document around the images.

// Two-field or four-field structs of DM's "long" (int32 in DM3, int64 in DM4).
Value Longs(bool dm4, std::initializer_list<int64_t> v) {
  Value out;
  out.info = {kEncStruct, 0, v.size()};
  for (int64_t x : v) {
    out.info.push_back(0);
    out.info.push_back(dm4 ? kEncInt64 : kEncInt32);
    if (dm4) {
      AppendLittle(out.bytes, x);
    } else {
      AppendLittle(out.bytes, int32_t(x));
    }
  }
  return out;
}

TagGroup Transform() {
  TagGroup t;
  t.Add("Offset", Struct<float>(kEncFloat32, {0.0f, 0.0f}));
  t.Add("Scale", Struct<float>(kEncFloat32, {1.0f, 1.0f}));
  return t;
}

TagGroup ImageDisplay(const ImagePlan& plan, size_t index, float width, float height) {
  TagGroup d;
  d.Add("AnnotationGroupList", TagGroup(/*list=*/true));
  d.Add("AnnotationType", I32(20));
  d.Add("BackgroundColor", Struct<int16_t>(kEncInt16, {-1, -1, -1}));
  d.Add("BackgroundMode", I16(2));
  d.Add("FillMode", I16(1));
  d.Add("ForegroundColor", Struct<int16_t>(kEncInt16, {-1, 0, 0}));
  d.Add("HasBackground", Bool(false));
  TagGroup info;
  info.Add("Brightness", F32(0.5f));
  info.Add("CaptionOn", Bool(false));
  info.Add("CLUTName", Text("Greyscale"));
  info.Add("ComplexMode", U32(4));
  info.Add("Contrast", F32(0.5f));
  info.Add("ContrastMode", U32(1));
  info.Add("Gamma", F32(0.5f));
  info.Add("IsInverted", Bool(false));
  d.Add("ImageDisplayInfo", std::move(info));
  d.Add("ImageDisplayType", I32(plan.spectral ? 3 : 1));  // line plot or raster
  d.Add("ImageSource", U32(uint32_t(index)));
  d.Add("IsMoveable", Bool(true));
  d.Add("IsResizable", Bool(true));
  d.Add("IsSelectable", Bool(true));
  d.Add("IsTranslatable", Bool(true));
  d.Add("IsVisible", Bool(true));
  TagGroup object_tags;
  object_tags.Add("__is_not_copy", Bool(true));
  object_tags.Add("__was_selected", Bool(index == 0));
  d.Add("ObjectTags", std::move(object_tags));
  d.Add("Rectangle", Struct<float>(kEncFloat32, {0.0f, 0.0f, height, width}));
  d.Add("UniqueID", U32(uint32_t(8 + index)));
  return d;
}

std::vector<uint8_t> BuildFile(const Acquisition& acq, const std::vector<ImagePlan>& plans,
                               const CivilTime& when, int version, const std::string& file_name) {
  const bool dm4 = version == 4;
  const Thumbnail thumbnail = RenderThumbnail(plans.front());
  const uint64_t seed = Fnv1a(file_name + "/" + acq.fields.acquired.value_or(""));
  const auto exposure_number = uint32_t(seed % 1000000);
  const auto tw = float(thumbnail.width), th = float(thumbnail.height);

  TagGroup root;
  root.Add("ApplicationBounds", Longs(dm4, {0, 0, 1024, 1600}));
  TagGroup objects(/*list=*/true);
  for (size_t i = 0; i < plans.size(); ++i) objects.Add(ImageDisplay(plans[i], i, tw, th));
  root.Add("DocumentObjectList", std::move(objects));
  root.Add("DocumentTags", TagGroup());
  root.Add("HasWindowPosition", Bool(true));
  TagGroup behavior;
  behavior.Add("DoIntegralZoom", Bool(false));
  behavior.Add("ImageDisplayBounds", Struct<float>(kEncFloat32, {0.0f, 0.0f, th, tw}));
  behavior.Add("IsZoomedToWindow", Bool(true));
  behavior.Add("UnscaledTransform", Transform());
  behavior.Add("ViewDisplayID", U32(8));
  behavior.Add("WindowRect", Struct<float>(kEncFloat32, {0.0f, 0.0f, th, tw}));
  behavior.Add("ZoomAndMoveTransform", Transform());
  root.Add("Image Behavior", std::move(behavior));

  TagGroup images(/*list=*/true);
  images.Add(ImageEntry(ThumbnailData(thumbnail), TagGroup(),
                        "Image Of " + fs::path(file_name).stem().string(), seed));
  for (size_t i = 0; i < plans.size(); ++i) {
    images.Add(ImageEntry(ImageDataOf(plans[i]),
                          ImageTags(acq, plans[i], when, exposure_number + uint32_t(i)),
                          plans[i].signal->name, seed + i + 1));
  }
  root.Add("ImageList", std::move(images));

  TagGroup sources(/*list=*/true);
  for (size_t i = 0; i < plans.size(); ++i) {
    TagGroup source;
    source.Add("ClassName", Text("ImageSource:Simple"));
    TagGroup id(/*list=*/true);
    id.Add(U32(uint32_t(i)));
    source.Add("Id", std::move(id));
    source.Add("ImageRef", U32(uint32_t(i + 1)));
    sources.Add(std::move(source));
  }
  root.Add("ImageSourceList", std::move(sources));
  root.Add("InImageMode", Bool(true));
  TagGroup versions(/*list=*/true);
  TagGroup required;
  required.Add("RequiredVersion", U32(50659328));
  versions.Add(std::move(required));
  root.Add("MinVersionList", std::move(versions));
  root.Add("NextDocumentObjectID", U32(uint32_t(8 + plans.size())));
  TagGroup page;
  page.Add("DoIntegralZoom", Bool(false));
  page.Add("DrawMargins", Bool(true));
  page.Add("DrawPaper", Bool(true));
  page.Add("IsFixedInPageMode", Bool(false));
  page.Add("IsZoomedToWindow", Bool(true));
  page.Add("LayedOut", Bool(false));
  page.Add("PageTransform", Transform());
  page.Add("RestoreImageDisplayBounds", Struct<float>(kEncFloat32, {0.0f, 0.0f, 0.0f, 0.0f}));
  page.Add("RestoreImageDisplayID", U32(0xffffffffu));
  page.Add("TargetDisplayID", U32(0xffffffffu));
  root.Add("Page Behavior", std::move(page));
  root.Add("SentinelList", TagGroup(/*list=*/true));
  TagGroup thumbnails(/*list=*/true);
  TagGroup thumb;
  thumb.Add("ImageIndex", U32(0));
  thumb.Add("SourceSize_Pixels", Longs(dm4, {thumbnail.width, thumbnail.height}));
  thumbnails.Add(std::move(thumb));
  root.Add("Thumbnails", std::move(thumbnails));
  root.Add("WindowPosition", Longs(dm4, {30, 8, 30 + thumbnail.height, 8 + thumbnail.width}));

  size_t payload = thumbnail.pixels.size() + 16384;
  for (const ImagePlan& p : plans) payload += p.signal->data.bytes.size() * 2 + 4096;
  std::vector<uint8_t> out;
  out.reserve(payload);
  const size_t header = dm4 ? 16 : 12;
  out.resize(header);
  TagWriter(dm4, out).Group(root);
  out.insert(out.end(), 8, 0);  // DM ends its files with 8 zero bytes
  const uint64_t root_length = out.size() - (dm4 ? 24 : 16);
  auto put_big = [&out](size_t at, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out[at + size_t(i)] = uint8_t(v >> (8 * (bytes - 1 - i)));
  };
  put_big(0, uint64_t(version), 4);
  put_big(4, root_length, dm4 ? 8 : 4);
  put_big(dm4 ? 12 : 8, 1, 4);  // values are little-endian
  return out;
}

}  // namespace

Status WriteDigitalMicrograph(const fs::path& path, const Acquisition& acquisition, int version) {
  if (version != 3 && version != 4) {
    return Status::InvalidArgument("DigitalMicrograph version " + std::to_string(version) +
                                   " for " + path.string() + " (3 or 4)");
  }
  SCISEARCH_ASSIGN_OR_RETURN(const CivilTime when, AcquiredClock(acquisition.fields, 1601, 9999, "",
                                                                 "DigitalMicrograph's DataBar"));
  if (acquisition.signals.empty()) {
    return Status::InvalidArgument("acquisition.signals is empty: nothing to write to " +
                                   path.string());
  }
  std::vector<ImagePlan> plans;
  plans.reserve(acquisition.signals.size());
  for (size_t i = 0; i < acquisition.signals.size(); ++i) {
    SCISEARCH_ASSIGN_OR_RETURN(ImagePlan plan,
                               PlanImage(acquisition.signals[i], i, acquisition.fields));
    plans.push_back(std::move(plan));
  }
  // DM3's 32-bit lengths and counts bound its files to 4 GiB (less room for the tags).
  uint64_t data_bytes = 0;
  for (const ImagePlan& p : plans) {
    data_bytes += p.stored.empty() ? p.signal->data.bytes.size() : p.stored.size();
  }
  if (version == 3 && data_bytes > std::numeric_limits<uint32_t>::max() - (uint64_t(1) << 24)) {
    return Status::InvalidArgument(path.string() + ": " + std::to_string(data_bytes) +
                                   " bytes of data is more than a DM3 file can hold; use DM4");
  }
  const std::vector<uint8_t> bytes =
      BuildFile(acquisition, plans, when, version, path.filename().string());
  return WriteBytesAtomically(path, bytes.data(), bytes.size());
}

}  // namespace scisearch::simulate
