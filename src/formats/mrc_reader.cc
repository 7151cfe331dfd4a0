// MRC2014 / CCP4 map reader, with FEI1/FEI2 extended headers and DE-Server sidecars.
//
// Layout (MRC2014, https://www.ccpem.ac.uk/mrc_format/mrc2014.php): a 1024-byte header of
// 4-byte words, then NSYMBT bytes of extended header, then the data, columns (NX) fastest,
// then rows (NY), then sections (NZ). The signal's shape is therefore (NZ, NY, NX) in C order.
//
// Choices this reader makes where the format leaves room:
//   - Byte order comes from MACHST (0x44 little, 0x11 big); when MACHST is neither, the
//     order whose MODE word is a known mode wins (old CCP4 files left MACHST blank).
//   - Mode 0 is signed int8, as MRC2014 says; an IMOD header (IMOD stamp at byte 152)
//     whose flags lack bit 0 ("bytes are signed") marks the older IMOD unsigned bytes.
//   - Mode 3 (complex int16) is widened to complex64 and mode 12 (float16) to float32 in
//     Read; the signal's dtype is the widened one. Mode 101 (4-bit packed) is refused.
//   - Axis lengths are in Å ("A"), the unit of the MRC cell: scale = cell / M along the
//     crystallographic axis that MAPC/MAPR/MAPS assign to the storage axis.
//   - Axis offsets: ORIGIN (Å) when any ORIGIN component is non-zero, else NXSTART.. x scale.
#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>

#include "formats/byte_source.h"
#include "formats/metadata_lookup.h"
#include "formats/normalise.h"
#include "formats/readers.h"
#include "formats/slab_io.h"
#include "formats/text.h"

namespace scisearch::formats {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kHeaderBytes = 1024;
// A DE-Server info file is a few tens of kilobytes; anything far larger is not one.
constexpr uint64_t kMaxSidecarBytes = 16ull << 20;
// Symmetry records are 80-character lines; more than this is not a symmetry table.
constexpr size_t kMaxSymmetryRecords = 4096;
// The IMOD stamp ("IMOD" little-endian as an int) at byte 152.
constexpr int32_t kImodStamp = 1146047817;

// How the file stores elements, and what Read must do to them.
enum class Storage {
  kDirect,        // the file's type is the signal's type
  kFloat16,       // IEEE half floats, widened to float32
  kComplexInt16,  // pairs of int16, widened to complex64
};

// A fixed-width C string field: up to the first NUL, trailing blanks removed.
std::string FixedString(const uint8_t* data, size_t size) {
  size_t n = 0;
  while (n < size && data[n] != 0) ++n;
  return std::string(TrimSpace(std::string_view(reinterpret_cast<const char*>(data), n)));
}

// IEEE 754 binary16 to binary32.
float HalfToFloat(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exponent = (h >> 10) & 0x1f;
  uint32_t mantissa = h & 0x3ff;
  uint32_t bits;
  if (exponent == 0) {
    if (mantissa == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exponent = 127 - 15 + 1;
      while ((mantissa & 0x400) == 0) {
        mantissa <<= 1;
        --exponent;
      }
      mantissa &= 0x3ff;
      bits = sign | (exponent << 23) | (mantissa << 13);
    }
  } else if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else {
    bits = sign | ((exponent - 15 + 127) << 23) | (mantissa << 13);
  }
  return std::bit_cast<float>(bits);
}

// The MRC data modes this reader knows, with the file's element type.
struct ModeInfo {
  DType file_dtype;    // what ReadContiguousSlab reads
  DType signal_dtype;  // what Read returns
  Storage storage;
  uint64_t file_element_bytes;
};

std::optional<ModeInfo> InfoForMode(int32_t mode, bool unsigned_bytes) {
  switch (mode) {
    case 0:
      return unsigned_bytes ? ModeInfo{DType::kUInt8, DType::kUInt8, Storage::kDirect, 1}
                            : ModeInfo{DType::kInt8, DType::kInt8, Storage::kDirect, 1};
    case 1:
      return ModeInfo{DType::kInt16, DType::kInt16, Storage::kDirect, 2};
    case 2:
      return ModeInfo{DType::kFloat32, DType::kFloat32, Storage::kDirect, 4};
    case 3:
      return ModeInfo{DType::kInt16, DType::kComplex64, Storage::kComplexInt16, 4};
    case 4:
      return ModeInfo{DType::kComplex64, DType::kComplex64, Storage::kDirect, 8};
    case 6:
      return ModeInfo{DType::kUInt16, DType::kUInt16, Storage::kDirect, 2};
    case 12:
      return ModeInfo{DType::kUInt16, DType::kFloat32, Storage::kFloat16, 2};
    default:
      return std::nullopt;
  }
}

bool IsKnownMode(int32_t mode) {
  return mode == 0 || mode == 1 || mode == 2 || mode == 3 || mode == 4 || mode == 6 || mode == 12 ||
         mode == 101;
}

// The 1024-byte header, decoded.
struct MrcHeader {
  std::array<int32_t, 3> n{};  // NX NY NZ
  int32_t mode = 0;
  std::array<int32_t, 3> start{};  // NXSTART NYSTART NZSTART
  std::array<int32_t, 3> m{};      // MX MY MZ
  std::array<float, 3> cell{};     // Å
  std::array<float, 3> angles{};   // degrees
  std::array<int32_t, 3> map_crs{};
  float dmin = 0, dmax = 0, dmean = 0;
  int32_t ispg = 0;
  int32_t nsymbt = 0;
  std::string exttyp;
  int32_t nversion = 0;
  int32_t imod_stamp = 0;
  int32_t imod_flags = 0;
  int16_t nint = 0;   // SerialEM: bytes per section in the extended header
  int16_t nreal = 0;  // SerialEM: flags of the fields each section record holds
  std::array<float, 3> origin{};
  std::string map;
  std::array<uint8_t, 4> machst{};
  float rms = 0;
  int32_t nlabl = 0;
  std::vector<std::string> labels;
  ByteOrder order = ByteOrder::kLittle;
};

Result<MrcHeader> ParseHeader(const std::vector<uint8_t>& bytes, const std::string& name) {
  MrcHeader h;
  std::copy(bytes.begin() + 212, bytes.begin() + 216, h.machst.begin());
  if (h.machst[0] == 0x44) {
    h.order = ByteOrder::kLittle;
  } else if (h.machst[0] == 0x11) {
    h.order = ByteOrder::kBig;
  } else {
    // No usable stamp: pick the order in which MODE is a mode.
    ByteCursor probe(bytes, ByteOrder::kLittle, name);
    SCISEARCH_RETURN_IF_ERROR(probe.Seek(12, "MODE"));
    SCISEARCH_ASSIGN_OR_RETURN(int32_t little_mode, probe.Read<int32_t>("MODE"));
    h.order = IsKnownMode(little_mode) ? ByteOrder::kLittle : ByteOrder::kBig;
    probe.set_order(ByteOrder::kBig);
    SCISEARCH_RETURN_IF_ERROR(probe.Seek(12, "MODE"));
    SCISEARCH_ASSIGN_OR_RETURN(int32_t big_mode, probe.Read<int32_t>("MODE"));
    if (!IsKnownMode(little_mode) && !IsKnownMode(big_mode)) h.order = ByteOrder::kLittle;
  }
  ByteCursor c(bytes, h.order, name);
  for (int i = 0; i < 3; ++i) {
    SCISEARCH_ASSIGN_OR_RETURN(h.n[i], c.Read<int32_t>("NX/NY/NZ"));
  }
  SCISEARCH_ASSIGN_OR_RETURN(h.mode, c.Read<int32_t>("MODE"));
  for (int i = 0; i < 3; ++i) {
    SCISEARCH_ASSIGN_OR_RETURN(h.start[i], c.Read<int32_t>("NXSTART"));
  }
  for (int i = 0; i < 3; ++i) {
    SCISEARCH_ASSIGN_OR_RETURN(h.m[i], c.Read<int32_t>("MX/MY/MZ"));
  }
  for (int i = 0; i < 3; ++i) {
    SCISEARCH_ASSIGN_OR_RETURN(h.cell[i], c.Read<float>("cell dimensions"));
  }
  for (int i = 0; i < 3; ++i) {
    SCISEARCH_ASSIGN_OR_RETURN(h.angles[i], c.Read<float>("cell angles"));
  }
  for (int i = 0; i < 3; ++i) {
    SCISEARCH_ASSIGN_OR_RETURN(h.map_crs[i], c.Read<int32_t>("MAPC/MAPR/MAPS"));
  }
  SCISEARCH_ASSIGN_OR_RETURN(h.dmin, c.Read<float>("DMIN"));
  SCISEARCH_ASSIGN_OR_RETURN(h.dmax, c.Read<float>("DMAX"));
  SCISEARCH_ASSIGN_OR_RETURN(h.dmean, c.Read<float>("DMEAN"));
  SCISEARCH_ASSIGN_OR_RETURN(h.ispg, c.Read<int32_t>("ISPG"));
  SCISEARCH_ASSIGN_OR_RETURN(h.nsymbt, c.Read<int32_t>("NSYMBT"));
  h.exttyp = EscapeNonPrintableAscii(FixedString(bytes.data() + 104, 4));
  SCISEARCH_RETURN_IF_ERROR(c.Seek(108, "NVERSION"));
  SCISEARCH_ASSIGN_OR_RETURN(h.nversion, c.Read<int32_t>("NVERSION"));
  SCISEARCH_RETURN_IF_ERROR(c.Seek(152, "IMOD stamp"));
  SCISEARCH_ASSIGN_OR_RETURN(h.imod_stamp, c.Read<int32_t>("IMOD stamp"));
  SCISEARCH_ASSIGN_OR_RETURN(h.imod_flags, c.Read<int32_t>("IMOD flags"));
  SCISEARCH_RETURN_IF_ERROR(c.Seek(128, "NINT"));
  SCISEARCH_ASSIGN_OR_RETURN(h.nint, c.Read<int16_t>("NINT"));
  SCISEARCH_ASSIGN_OR_RETURN(h.nreal, c.Read<int16_t>("NREAL"));
  SCISEARCH_RETURN_IF_ERROR(c.Seek(196, "ORIGIN"));
  for (int i = 0; i < 3; ++i) {
    SCISEARCH_ASSIGN_OR_RETURN(h.origin[i], c.Read<float>("ORIGIN"));
  }
  h.map = EscapeNonPrintableAscii(FixedString(bytes.data() + 208, 4));
  SCISEARCH_RETURN_IF_ERROR(c.Seek(216, "RMS"));
  SCISEARCH_ASSIGN_OR_RETURN(h.rms, c.Read<float>("RMS"));
  SCISEARCH_ASSIGN_OR_RETURN(h.nlabl, c.Read<int32_t>("NLABL"));
  // NLABL says how many labels are used; when it is out of range, keep the non-empty ones.
  const bool nlabl_valid = h.nlabl >= 0 && h.nlabl <= 10;
  for (int i = 0; i < 10; ++i) {
    std::string label = EscapeNonPrintableAscii(FixedString(bytes.data() + 224 + 80 * i, 80));
    if (nlabl_valid ? i < h.nlabl : !label.empty()) h.labels.push_back(std::move(label));
  }
  return h;
}

Metadata HeaderToMetadata(const MrcHeader& h) {
  Metadata m = Metadata::object();
  m["NX"] = h.n[0];
  m["NY"] = h.n[1];
  m["NZ"] = h.n[2];
  m["MODE"] = h.mode;
  m["NXSTART"] = h.start[0];
  m["NYSTART"] = h.start[1];
  m["NZSTART"] = h.start[2];
  m["MX"] = h.m[0];
  m["MY"] = h.m[1];
  m["MZ"] = h.m[2];
  m["CELLA"] =
      Metadata::array({FiniteOrNull(h.cell[0]), FiniteOrNull(h.cell[1]), FiniteOrNull(h.cell[2])});
  m["CELLB"] = Metadata::array(
      {FiniteOrNull(h.angles[0]), FiniteOrNull(h.angles[1]), FiniteOrNull(h.angles[2])});
  m["MAPC"] = h.map_crs[0];
  m["MAPR"] = h.map_crs[1];
  m["MAPS"] = h.map_crs[2];
  m["DMIN"] = FiniteOrNull(h.dmin);
  m["DMAX"] = FiniteOrNull(h.dmax);
  m["DMEAN"] = FiniteOrNull(h.dmean);
  m["ISPG"] = h.ispg;
  m["NSYMBT"] = h.nsymbt;
  m["EXTTYP"] = h.exttyp;
  m["NVERSION"] = h.nversion;
  if (h.imod_stamp == kImodStamp) {
    m["IMOD_STAMP"] = h.imod_stamp;
    m["IMOD_FLAGS"] = h.imod_flags;
  }
  m["ORIGIN"] = Metadata::array(
      {FiniteOrNull(h.origin[0]), FiniteOrNull(h.origin[1]), FiniteOrNull(h.origin[2])});
  m["MAP"] = h.map;
  m["MACHST"] = Metadata::array({h.machst[0], h.machst[1], h.machst[2], h.machst[3]});
  m["byte_order"] = h.order == ByteOrder::kLittle ? "little" : "big";
  m["RMS"] = FiniteOrNull(h.rms);
  m["NLABL"] = h.nlabl;
  m["labels"] = h.labels;
  return m;
}

// ---- FEI1 / FEI2 extended header ----------------------------------------------------

enum class FeiType { kInt32, kUInt32, kInt64, kFloat64, kBool, kString };
struct FeiField {
  const char* name;
  FeiType type;
  uint32_t size;  // bytes (strings: the fixed width)
};

// The fields of one FEI extended-header record in file order, packed without padding, as the
// Thermo Fisher "MRC2014 file format specification" (EPU/Velox) lists them: metadata version 0
// ends after "Alpha tilt max" (768 bytes); version 2 adds the fields after it (888 bytes).
constexpr FeiField kFeiFields[] = {
    {"Metadata size", FeiType::kInt32, 4},
    {"Metadata version", FeiType::kInt32, 4},
    {"Bitmask 1", FeiType::kUInt32, 4},
    {"Timestamp", FeiType::kFloat64, 8},
    {"Microscope type", FeiType::kString, 16},
    {"D-Number", FeiType::kString, 16},
    {"Application", FeiType::kString, 16},
    {"Application version", FeiType::kString, 16},
    {"HT", FeiType::kFloat64, 8},
    {"Dose", FeiType::kFloat64, 8},
    {"Alpha tilt", FeiType::kFloat64, 8},
    {"Beta tilt", FeiType::kFloat64, 8},
    {"X-Stage", FeiType::kFloat64, 8},
    {"Y-Stage", FeiType::kFloat64, 8},
    {"Z-Stage", FeiType::kFloat64, 8},
    {"Tilt axis angle", FeiType::kFloat64, 8},
    {"Dual axis rotation", FeiType::kFloat64, 8},
    {"Pixel size X", FeiType::kFloat64, 8},
    {"Pixel size Y", FeiType::kFloat64, 8},
    {nullptr, FeiType::kString, 48},  // unused range
    {"Defocus", FeiType::kFloat64, 8},
    {"STEM Defocus", FeiType::kFloat64, 8},
    {"Applied defocus", FeiType::kFloat64, 8},
    {"Instrument mode", FeiType::kInt32, 4},
    {"Projection mode", FeiType::kInt32, 4},
    {"Objective lens mode", FeiType::kString, 16},
    {"High magnification mode", FeiType::kString, 16},
    {"Probe mode", FeiType::kInt32, 4},
    {"EFTEM On", FeiType::kBool, 1},
    {"Magnification", FeiType::kFloat64, 8},
    {"Bitmask 2", FeiType::kUInt32, 4},
    {"Camera length", FeiType::kFloat64, 8},
    {"Spot index", FeiType::kInt32, 4},
    {"Illuminated area", FeiType::kFloat64, 8},
    {"Intensity", FeiType::kFloat64, 8},
    {"Convergence angle", FeiType::kFloat64, 8},
    {"Illumination mode", FeiType::kString, 16},
    {"Wide convergence angle range", FeiType::kBool, 1},
    {"Slit inserted", FeiType::kBool, 1},
    {"Slit width", FeiType::kFloat64, 8},
    {"Acceleration voltage offset", FeiType::kFloat64, 8},
    {"Drift tube voltage", FeiType::kFloat64, 8},
    {"Energy shift", FeiType::kFloat64, 8},
    {"Shift offset X", FeiType::kFloat64, 8},
    {"Shift offset Y", FeiType::kFloat64, 8},
    {"Shift X", FeiType::kFloat64, 8},
    {"Shift Y", FeiType::kFloat64, 8},
    {"Integration time", FeiType::kFloat64, 8},
    {"Binning Width", FeiType::kInt32, 4},
    {"Binning Height", FeiType::kInt32, 4},
    {"Camera name", FeiType::kString, 16},
    {"Readout area left", FeiType::kInt32, 4},
    {"Readout area top", FeiType::kInt32, 4},
    {"Readout area right", FeiType::kInt32, 4},
    {"Readout area bottom", FeiType::kInt32, 4},
    {"Ceta noise reduction", FeiType::kBool, 1},
    {"Ceta frames summed", FeiType::kInt32, 4},
    {"Direct detector electron counting", FeiType::kBool, 1},
    {"Direct detector align frames", FeiType::kBool, 1},
    {"Camera param reserved 0", FeiType::kInt32, 4},
    {"Camera param reserved 1", FeiType::kInt32, 4},
    {"Camera param reserved 2", FeiType::kInt32, 4},
    {"Camera param reserved 3", FeiType::kInt32, 4},
    {"Bitmask 3", FeiType::kUInt32, 4},
    {"Camera param reserved 4", FeiType::kInt32, 4},
    {"Camera param reserved 5", FeiType::kInt32, 4},
    {"Camera param reserved 6", FeiType::kInt32, 4},
    {"Camera param reserved 7", FeiType::kInt32, 4},
    {"Camera param reserved 8", FeiType::kInt32, 4},
    {"Camera param reserved 9", FeiType::kInt32, 4},
    {"Phase Plate", FeiType::kBool, 1},
    {"STEM Detector name", FeiType::kString, 16},
    {"Gain", FeiType::kFloat64, 8},
    {"Offset", FeiType::kFloat64, 8},
    {"STEM param reserved 0", FeiType::kInt32, 4},
    {"STEM param reserved 1", FeiType::kInt32, 4},
    {"STEM param reserved 2", FeiType::kInt32, 4},
    {"STEM param reserved 3", FeiType::kInt32, 4},
    {"STEM param reserved 4", FeiType::kInt32, 4},
    {"Dwell time", FeiType::kFloat64, 8},
    {"Frame time", FeiType::kFloat64, 8},
    {"Scan size left", FeiType::kInt32, 4},
    {"Scan size top", FeiType::kInt32, 4},
    {"Scan size right", FeiType::kInt32, 4},
    {"Scan size bottom", FeiType::kInt32, 4},
    {"Full scan FOV X", FeiType::kFloat64, 8},
    {"Full scan FOV Y", FeiType::kFloat64, 8},
    {"Element", FeiType::kString, 16},
    {"Energy interval lower", FeiType::kFloat64, 8},
    {"Energy interval higher", FeiType::kFloat64, 8},
    {"Method", FeiType::kInt32, 4},
    {"Is dose fraction", FeiType::kBool, 1},
    {"Fraction number", FeiType::kInt32, 4},
    {"Start frame", FeiType::kInt32, 4},
    {"End frame", FeiType::kInt32, 4},
    {"Input stack filename", FeiType::kString, 80},
    {"Bitmask 4", FeiType::kUInt32, 4},
    {"Alpha tilt min", FeiType::kFloat64, 8},
    {"Alpha tilt max", FeiType::kFloat64, 8},
    // Metadata version 2.
    {"Scan rotation", FeiType::kFloat64, 8},
    {"Diffraction pattern rotation", FeiType::kFloat64, 8},
    {"Image rotation", FeiType::kFloat64, 8},
    {"Scan mode enumeration", FeiType::kInt32, 4},
    {"Acquisition time stamp", FeiType::kInt64, 8},
    {"Detector commercial name", FeiType::kString, 16},
    {"Start tilt angle", FeiType::kFloat64, 8},
    {"End tilt angle", FeiType::kFloat64, 8},
    {"Tilt per image", FeiType::kFloat64, 8},
    {"Tilt speed", FeiType::kFloat64, 8},
    {"Beam center X pixel", FeiType::kInt32, 4},
    {"Beam center Y pixel", FeiType::kInt32, 4},
    {"CFEG flash timestamp", FeiType::kInt64, 8},
    {"Phase plate position index", FeiType::kInt32, 4},
    {"Objective aperture name", FeiType::kString, 16},
};

// Decodes the fields of one record that lie wholly inside its `size` bytes. FEI writes its
// extended header little-endian whatever MACHST says.
Result<Metadata> ParseFeiRecord(const uint8_t* record, size_t size, const std::string& name) {
  ByteCursor c(record, size, ByteOrder::kLittle, name + " FEI extended header");
  Metadata out = Metadata::object();
  for (const FeiField& field : kFeiFields) {
    if (c.remaining() < field.size) break;  // an older, shorter record version
    if (field.name == nullptr) {
      SCISEARCH_RETURN_IF_ERROR(c.Skip(field.size, "unused range"));
      continue;
    }
    switch (field.type) {
      case FeiType::kInt32: {
        SCISEARCH_ASSIGN_OR_RETURN(int32_t v, c.Read<int32_t>(field.name));
        out[field.name] = v;
        break;
      }
      case FeiType::kUInt32: {
        SCISEARCH_ASSIGN_OR_RETURN(uint32_t v, c.Read<uint32_t>(field.name));
        out[field.name] = v;
        break;
      }
      case FeiType::kInt64: {
        SCISEARCH_ASSIGN_OR_RETURN(int64_t v, c.Read<int64_t>(field.name));
        out[field.name] = v;
        break;
      }
      case FeiType::kFloat64: {
        SCISEARCH_ASSIGN_OR_RETURN(double v, c.Read<double>(field.name));
        out[field.name] = FiniteOrNull(v);
        break;
      }
      case FeiType::kBool: {
        SCISEARCH_ASSIGN_OR_RETURN(uint8_t v, c.Read<uint8_t>(field.name));
        out[field.name] = v != 0;
        break;
      }
      case FeiType::kString: {
        std::vector<uint8_t> raw(field.size);
        SCISEARCH_RETURN_IF_ERROR(c.ReadRaw(raw.data(), raw.size(), field.name));
        out[field.name] = EscapeNonPrintableAscii(FixedString(raw.data(), raw.size()));
        break;
      }
    }
  }
  return out;
}

// ISO 8601 (no zone: FEI writes the acquisition PC's local time) from an OLE Automation date,
// days since 1899-12-30, the form of the FEI "Timestamp" field.
std::optional<std::string> IsoFromOleDate(double days) {
  // Between 1970 and 2200: anything else is not a real acquisition date.
  if (!std::isfinite(days) || days < 25569.0 || days > 110000.0) return std::nullopt;
  const double seconds_total = std::round((days - 25569.0) * 86400.0);
  const auto whole_days = static_cast<int64_t>(std::floor(seconds_total / 86400.0));
  const auto seconds = static_cast<int64_t>(seconds_total) - whole_days * 86400;
  const std::chrono::year_month_day ymd{std::chrono::sys_days{std::chrono::days{whole_days}}};
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%04d-%02u-%02uT%02d:%02d:%02d", int(ymd.year()),
                unsigned(ymd.month()), unsigned(ymd.day()), int(seconds / 3600),
                int((seconds / 60) % 60), int(seconds % 60));
  return std::string(buffer);
}

// ---- DE-Server sidecar ----------------------------------------------------------------

// A value typed as it reads: integer, finite real, or string.
Metadata TypedValue(std::string_view text) {
  if (text.empty()) return std::string();
  int64_t i = 0;
  auto [pi, ei] = std::from_chars(text.data(), text.data() + text.size(), i);
  if (ei == std::errc() && pi == text.data() + text.size()) return i;
  double d = 0;
  auto [pd, ed] = std::from_chars(text.data(), text.data() + text.size(), d);
  if (ed == std::errc() && pd == text.data() + text.size() && std::isfinite(d)) return d;
  return EscapeNonPrintableAscii(text);
}

// NAME_info.txt for NAME_movie.mrc (DE-Server's naming), or empty.
fs::path SidecarPath(const fs::path& mrc) {
  const std::string stem = mrc.stem().string();
  constexpr std::string_view kSuffix = "_movie";
  if (stem.size() <= kSuffix.size() || !stem.ends_with(kSuffix)) return {};
  fs::path info = mrc.parent_path() / (stem.substr(0, stem.size() - kSuffix.size()) + "_info.txt");
  std::error_code ec;
  if (!fs::is_regular_file(info, ec)) return {};
  return info;
}

// Parses "key = value" lines. Keys keep their first value; lines without '=' are skipped.
Result<Metadata> ParseSidecar(const fs::path& path) {
  SCISEARCH_ASSIGN_OR_RETURN(FileSource source, FileSource::Open(path));
  if (source.size() > kMaxSidecarBytes) {
    return Status::Unsupported(path.string() + ": DE-Server info file of " +
                               std::to_string(source.size()) + " bytes is larger than the " +
                               std::to_string(kMaxSidecarBytes) + " bytes read");
  }
  SCISEARCH_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, source.ReadBytes(0, source.size()));
  Metadata out = Metadata::object();
  std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  while (!text.empty()) {
    const size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    std::string key = EscapeNonPrintableAscii(TrimSpace(line.substr(0, eq)));
    if (key.empty() || out.contains(key)) continue;
    out[key] = TypedValue(TrimSpace(line.substr(eq + 1)));
  }
  return out;
}

// ---- The reader ----------------------------------------------------------------------

class MrcReader : public DatasetReader {
 public:
  MrcReader(FileSource source, Dataset dataset, uint64_t data_offset, ByteOrder order,
            ModeInfo info)
      : source_(std::move(source)),
        dataset_(std::move(dataset)),
        data_offset_(data_offset),
        order_(order),
        info_(info) {}

  const Dataset& dataset() const override { return dataset_; }
  Dataset TakeDataset() override { return std::move(dataset_); }

  Result<NdArray> Read(size_t signal_index, const Hyperslab& slab) override {
    SCISEARCH_RETURN_IF_ERROR(CheckSignalIndex(dataset_, signal_index));
    const Signal& signal = dataset_.signals[signal_index];
    switch (info_.storage) {
      case Storage::kDirect:
        return ReadContiguousSlab(source_, data_offset_, info_.file_dtype, order_, signal.shape,
                                  slab);
      case Storage::kFloat16: {
        SCISEARCH_ASSIGN_OR_RETURN(
            NdArray raw,
            ReadContiguousSlab(source_, data_offset_, DType::kUInt16, order_, signal.shape, slab));
        NdArray out;
        out.dtype = DType::kFloat32;
        out.shape = raw.shape;
        const size_t n = raw.bytes.size() / 2;
        out.bytes.resize(n * 4);
        for (size_t i = 0; i < n; ++i) {
          uint16_t h;
          std::memcpy(&h, raw.bytes.data() + 2 * i, 2);
          const float f = HalfToFloat(h);
          std::memcpy(out.bytes.data() + 4 * i, &f, 4);
        }
        return out;
      }
      case Storage::kComplexInt16: {
        // Read (…, 2) int16 with the trailing real/imaginary axis taken whole.
        std::vector<int64_t> shape = signal.shape;
        shape.push_back(2);
        SCISEARCH_RETURN_IF_ERROR(slab.Validate(signal.shape));
        Hyperslab pairs = slab;
        pairs.start.push_back(0);
        pairs.count.push_back(2);
        pairs.step.push_back(1);
        SCISEARCH_ASSIGN_OR_RETURN(
            NdArray raw,
            ReadContiguousSlab(source_, data_offset_, DType::kInt16, order_, shape, pairs));
        NdArray out;
        out.dtype = DType::kComplex64;
        out.shape = slab.count;
        const size_t n = raw.bytes.size() / 2;
        out.bytes.resize(n * 4);
        for (size_t i = 0; i < n; ++i) {
          int16_t v;
          std::memcpy(&v, raw.bytes.data() + 2 * i, 2);
          const float f = v;
          std::memcpy(out.bytes.data() + 4 * i, &f, 4);
        }
        return out;
      }
    }
    return Status::Internal("unknown MRC storage");
  }

 private:
  FileSource source_;
  Dataset dataset_;
  uint64_t data_offset_;
  ByteOrder order_;
  ModeInfo info_;
};

bool IsPermutationOf123(const std::array<int32_t, 3>& v) {
  std::array<int32_t, 3> sorted = v;
  std::sort(sorted.begin(), sorted.end());
  return sorted == std::array<int32_t, 3>{1, 2, 3};
}

}  // namespace

Result<std::unique_ptr<DatasetReader>> OpenMrc(const fs::path& path) {
  SCISEARCH_ASSIGN_OR_RETURN(FileSource source, FileSource::Open(path));
  const std::string name = path.string();
  if (source.size() < kHeaderBytes) {
    return Status::Corrupt(name + ": " + std::to_string(source.size()) +
                           " bytes is shorter than the 1024-byte MRC header");
  }
  SCISEARCH_ASSIGN_OR_RETURN(std::vector<uint8_t> head, source.ReadBytes(0, kHeaderBytes));
  SCISEARCH_ASSIGN_OR_RETURN(MrcHeader h, ParseHeader(head, name));

  // ---- Validate sizes against the file before trusting any of them.
  for (int i = 0; i < 3; ++i) {
    if (h.n[i] <= 0) {
      return Status::Corrupt(name + ": MRC header field " + std::string(1, "XYZ"[i]) + " size N" +
                             std::string(1, "XYZ"[i]) + " = " + std::to_string(h.n[i]) +
                             " is not positive");
    }
  }
  if (h.mode == 101) {
    return Status::Unsupported(name + ": MRC MODE 101 (4-bit packed) is not read");
  }
  const bool unsigned_bytes = h.mode == 0 && h.imod_stamp == kImodStamp && (h.imod_flags & 1) == 0;
  std::optional<ModeInfo> info = InfoForMode(h.mode, unsigned_bytes);
  if (!info) {
    return Status::Unsupported(name + ": MRC MODE " + std::to_string(h.mode) +
                               " is not a data mode this reader knows (0, 1, 2, 3, 4, 6, 12)");
  }
  if (h.nsymbt < 0) {
    return Status::Corrupt(name + ": NSYMBT (extended header size) " + std::to_string(h.nsymbt) +
                           " is negative");
  }
  const uint64_t data_offset = kHeaderBytes + uint64_t(h.nsymbt);
  // Each dimension is below 2^31 and an element at most 8 bytes: the product fits in 2^96, so
  // check before multiplying the third factor.
  const uint64_t plane = uint64_t(h.n[0]) * uint64_t(h.n[1]) * info->file_element_bytes;
  if (plane > std::numeric_limits<uint64_t>::max() / uint64_t(h.n[2])) {
    return Status::Corrupt(name + ": MRC dimensions " + std::to_string(h.n[0]) + " x " +
                           std::to_string(h.n[1]) + " x " + std::to_string(h.n[2]) +
                           " overflow 64 bits");
  }
  const uint64_t data_bytes = plane * uint64_t(h.n[2]);
  if (data_offset > source.size() || data_bytes > source.size() - data_offset) {
    return Status::Corrupt(name + ": truncated: the header (" + std::to_string(h.n[0]) + " x " +
                           std::to_string(h.n[1]) + " x " + std::to_string(h.n[2]) + ", MODE " +
                           std::to_string(h.mode) + ", NSYMBT " + std::to_string(h.nsymbt) +
                           ") needs " + std::to_string(kHeaderBytes) + " + " +
                           std::to_string(h.nsymbt) + " + " + std::to_string(data_bytes) + " = " +
                           std::to_string(data_offset + data_bytes) + " bytes, the file has " +
                           std::to_string(source.size()));
  }

  Signal signal;
  signal.dtype = info->signal_dtype;
  signal.metadata["header"] = HeaderToMetadata(h);
  if (unsigned_bytes) signal.metadata["header"]["mode_0_unsigned"] = true;

  // ---- Extended header.
  Metadata fei;  // first FEI record, when there is one
  if (h.nsymbt > 0) {
    Metadata ext = Metadata::object();
    ext["type"] = h.exttyp;
    ext["size"] = h.nsymbt;
    if (h.exttyp == "FEI1" || h.exttyp == "FEI2") {
      // Records are "Metadata size" bytes each, one per section; the first says its size.
      const uint64_t first_size = std::min<uint64_t>(uint64_t(h.nsymbt), 4096);
      SCISEARCH_ASSIGN_OR_RETURN(std::vector<uint8_t> record,
                                 source.ReadBytes(kHeaderBytes, first_size));
      ByteCursor c(record, ByteOrder::kLittle, name + " FEI extended header");
      SCISEARCH_ASSIGN_OR_RETURN(int32_t record_size, c.Read<int32_t>("Metadata size"));
      if (record_size < 12 || uint64_t(record_size) > first_size) {
        return Status::Corrupt(name + ": FEI extended header record size (Metadata size) " +
                               std::to_string(record_size) + " is outside 12.." +
                               std::to_string(first_size));
      }
      ext["record_size"] = record_size;
      ext["record_count"] = h.nsymbt / record_size;
      SCISEARCH_ASSIGN_OR_RETURN(fei, ParseFeiRecord(record.data(), size_t(record_size), name));
      ext["first_record"] = fei;
    } else if ((h.exttyp == "SERI" || h.exttyp == "AGAR") && h.nint > 0) {
      // SerialEM: NINT bytes per section, fields chosen by the NREAL flags in a fixed order.
      // Bit 1: tilt angle x 100 (int16); bits 2 and 4: piece coordinates (6 bytes) and stage
      // position (4 bytes); bit 8: magnification / 100 (int16).
      ext["bytes_per_section"] = h.nint;
      ext["flags"] = h.nreal;
      const uint64_t sections =
          std::min<uint64_t>(uint64_t(h.n[2]), uint64_t(h.nsymbt) / uint64_t(h.nint));
      SCISEARCH_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes,
                                 source.ReadBytes(kHeaderBytes, sections * uint64_t(h.nint)));
      ByteCursor c(bytes, h.order, name + " SerialEM extended header");
      const size_t mag_at =
          ((h.nreal & 1) ? 2 : 0) + ((h.nreal & 2) ? 6 : 0) + ((h.nreal & 4) ? 4 : 0);
      Metadata tilts = Metadata::array();
      Metadata mags = Metadata::array();
      for (uint64_t i = 0; i < sections; ++i) {
        if ((h.nreal & 1) && h.nint >= 2) {
          SCISEARCH_RETURN_IF_ERROR(c.Seek(i * uint64_t(h.nint), "tilt angle"));
          SCISEARCH_ASSIGN_OR_RETURN(int16_t tilt, c.Read<int16_t>("tilt angle"));
          tilts.push_back(tilt / 100.0);
        }
        if ((h.nreal & 8) && mag_at + 2 <= size_t(h.nint)) {
          SCISEARCH_RETURN_IF_ERROR(c.Seek(i * uint64_t(h.nint) + mag_at, "magnification"));
          SCISEARCH_ASSIGN_OR_RETURN(int16_t mag, c.Read<int16_t>("magnification"));
          mags.push_back(int64_t(mag) * 100);
        }
      }
      if (!tilts.empty()) ext["tilt_angles"] = std::move(tilts);
      if (!mags.empty()) ext["magnifications"] = std::move(mags);
    } else if (h.exttyp.empty() || h.exttyp == "CCP4") {
      // CCP4 maps keep symmetry operators as 80-character text records.
      const uint64_t records = uint64_t(h.nsymbt) / 80;
      if (uint64_t(h.nsymbt) % 80 == 0 && records <= kMaxSymmetryRecords) {
        SCISEARCH_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes,
                                   source.ReadBytes(kHeaderBytes, uint64_t(h.nsymbt)));
        Metadata ops = Metadata::array();
        for (uint64_t r = 0; r < records; ++r) {
          std::string op = EscapeNonPrintableAscii(FixedString(bytes.data() + 80 * r, 80));
          if (!op.empty()) ops.push_back(std::move(op));
        }
        ext["symmetry_operators"] = std::move(ops);
      }
    }
    signal.metadata["extended_header"] = std::move(ext);
  }

  // ---- DE-Server sidecar.
  Dataset dataset;
  dataset.path = path;
  dataset.format = "mrc";
  dataset.member_files.push_back(path);
  Metadata de;
  if (fs::path info_path = SidecarPath(path); !info_path.empty()) {
    SCISEARCH_ASSIGN_OR_RETURN(de, ParseSidecar(info_path));
    signal.metadata["de_server"] = de;
    dataset.member_files.push_back(info_path);
  }

  // ---- Shape and axes: storage order (sections, rows, columns).
  // The crystallographic axis (0 = X, 1 = Y, 2 = Z) of each storage axis, slowest first.
  std::array<int, 3> crystal_axis = {2, 1, 0};
  if (IsPermutationOf123(h.map_crs)) {
    crystal_axis = {h.map_crs[2] - 1, h.map_crs[1] - 1, h.map_crs[0] - 1};
  }
  const bool has_origin = h.origin[0] != 0 || h.origin[1] != 0 || h.origin[2] != 0;
  std::array<Axis, 3> spatial;
  for (int k = 0; k < 3; ++k) {
    const int storage = 2 - k;  // index into NX/NXSTART of this axis (k = 0 is sections)
    const int ca = crystal_axis[k];
    Axis& a = spatial[k];
    a.name = std::string(1, "xyz"[ca]);
    a.size = h.n[storage];
    const double cell = h.cell[ca];
    if (h.m[ca] > 0 && std::isfinite(cell) && cell > 0) {
      a.scale = cell / h.m[ca];
      a.units = NormaliseUnits("A");
      a.offset = has_origin && std::isfinite(h.origin[ca]) ? double(h.origin[ca])
                                                           : h.start[storage] * a.scale;
    }
  }

  const std::string filename = path.filename().string();
  const bool emdb = filename.starts_with("EMD-") || filename.starts_with("emd_");
  const bool fei_stem =
      fei.is_object() &&
      (fei.value("Instrument mode", 0) == 2 ||
       (fei.value("Instrument mode", 0) != 1 && !fei.value("STEM Detector name", "").empty()));
  std::optional<int64_t> scan_x, scan_y;
  if (de.is_object()) {
    auto sx = FindNumber(de, {"Scan - Size X"});
    auto sy = FindNumber(de, {"Scan - Size Y"});
    if (sx && sy && *sx >= 1 && *sy >= 1 && *sx <= 1e9 && *sy <= 1e9 && *sx == std::floor(*sx) &&
        *sy == std::floor(*sy) && int64_t(*sx) * int64_t(*sy) == int64_t(h.n[2])) {
      scan_x = int64_t(*sx);
      scan_y = int64_t(*sy);
    }
  }

  if (scan_x) {
    // 4D-STEM: one frame per scan position, in raster order.
    signal.fields.mode = Mode::k4dStem;
    signal.shape = {*scan_y, *scan_x, h.n[1], h.n[0]};
    Axis sy{"scan_y", *scan_y, 1.0, 0.0, "", true};
    Axis sx{"scan_x", *scan_x, 1.0, 0.0, "", true};
    if (auto p = FindNumber(de, {"Specimen Pixel Size Y (nanometers)"}); p && *p > 0) {
      sy.scale = *p;
      sy.units = NormaliseUnits("nm");
    }
    if (auto p = FindNumber(de, {"Specimen Pixel Size X (nanometers)"}); p && *p > 0) {
      sx.scale = *p;
      sx.units = NormaliseUnits("nm");
    }
    // DE-Server does not state the unit of "Diffraction Pixel Size": keep it unitless.
    Axis qy{"qy", h.n[1], 1.0, 0.0, "", false};
    Axis qx{"qx", h.n[0], 1.0, 0.0, "", false};
    if (auto p = FindNumber(de, {"Diffraction Pixel Size Y"}); p && *p > 0) qy.scale = *p;
    if (auto p = FindNumber(de, {"Diffraction Pixel Size X"}); p && *p > 0) qx.scale = *p;
    signal.axes = {sy, sx, qy, qx};
  } else {
    signal.shape = {h.n[2], h.n[1], h.n[0]};
    signal.axes = {spatial[0], spatial[1], spatial[2]};
    if (fei_stem) {
      signal.fields.mode = Mode::kStemImage;
    } else if (fei.is_object() && fei.value("Instrument mode", 0) == 1) {
      // FEI's projection mode: 1 imaging, 2 diffraction.
      signal.fields.mode =
          fei.value("Projection mode", 0) == 2 ? Mode::kDiffraction : Mode::kTemImage;
    } else if (h.ispg >= 1 || emdb) {
      signal.fields.mode = Mode::kVolume;
    } else {
      signal.fields.mode = Mode::kImage;
    }
    if (signal.fields.mode != Mode::kVolume) {
      // A stack of images: sections are frames, not a spatial axis.
      Axis& frames = signal.axes[0];
      frames = Axis{"frame", h.n[2], 1.0, 0.0, "", true};
    }
    // Pixel size of a frame: the column axis.
    const Axis& column = signal.axes[2];
    if (auto to_si = LengthToSi(column.units); to_si && column.units != "") {
      signal.fields.pixel_size_m = column.scale * *to_si;
      signal.fields.pixel_size_units = "m";
    }
  }

  // ---- Normalised fields from the FEI extended header.
  if (fei.is_object()) {
    if (auto t = FindNumber(fei, {"Timestamp"})) signal.fields.acquired = IsoFromOleDate(*t);
    if (auto s = FindText(fei, {"Microscope type"})) signal.fields.instrument = *s;
    if (auto ht = FindNumber(fei, {"HT"}); ht && *ht > 0)
      signal.fields.beam_energy_kev = *ht / 1000;
    if (auto mag = FindNumber(fei, {"Magnification"}); mag && *mag > 0) {
      signal.fields.magnification = *mag;
    }
    if (auto px = FindNumber(fei, {"Pixel size X"}); px && *px > 0) {
      signal.fields.pixel_size_m = *px;
      signal.fields.pixel_size_units = "m";
      // The frame axes in Å from the FEI pixel size, when the cell did not give them.
      for (size_t k = signal.axes.size() - 2; k < signal.axes.size(); ++k) {
        if (signal.axes[k].units.empty()) {
          signal.axes[k].scale = *px * 1e10;
          signal.axes[k].units = NormaliseUnits("A");
        }
      }
    }
    std::optional<std::string> detector =
        fei_stem ? FindText(fei, {"STEM Detector name"}) : FindText(fei, {"Camera name"});
    if (detector) {
      signal.fields.detector = *detector;
      signal.name = *detector;
    }
  }
  // ---- Magnification of the first section from a SerialEM extended header.
  if (auto ext = signal.metadata.find("extended_header"); ext != signal.metadata.end()) {
    if (auto mags = ext->find("magnifications");
        mags != ext->end() && !mags->empty() && (*mags)[0].get<int64_t>() > 0) {
      signal.fields.magnification = double((*mags)[0].get<int64_t>());
    }
  }
  // ---- Normalised fields from the DE-Server sidecar.
  if (de.is_object()) {
    if (auto t = FindNumber(de, {"Timestamp (seconds since Epoch)"}); t && *t > 0 && *t < 1e11) {
      signal.fields.acquired = IsoFromUnixSeconds(*t);
    }
    if (auto v = FindNumber(de, {"Instrument Accelerating Voltage (V)"}); v && *v > 0) {
      signal.fields.beam_energy_kev = *v / 1000;
    }
    if (auto mag = FindNumber(de, {"Instrument Project Magnification"}); mag && *mag > 0) {
      signal.fields.magnification = *mag;
    }
    std::optional<std::string> camera = FindText(de, {"Camera Model"});
    if (!camera) camera = FindText(de, {"Camera Name"});
    if (camera) {
      signal.fields.detector = *camera;
      signal.name = *camera;
    }
  }

  // ---- A single section that is not a volume is one image: (y, x), as every format
  // shows one image (the data layout is the same without the leading axis of 1).
  if (signal.shape.size() == 3 && signal.shape[0] == 1 && signal.fields.mode != Mode::kVolume) {
    signal.shape.erase(signal.shape.begin());
    signal.axes.erase(signal.axes.begin());
  }

  dataset.signals.push_back(std::move(signal));
  return std::unique_ptr<DatasetReader>(
      new MrcReader(std::move(source), std::move(dataset), data_offset, h.order, *info));
}

}  // namespace scisearch::formats
