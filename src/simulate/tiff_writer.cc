// FEI/Thermo Fisher TIFF writer, on libtiff: the files xT / xT UI software on Helios,
// Quanta, Nova, Apreo and Scios SEMs (and the FEI TEM export) write.
//
// The layout follows the instrument files: little-endian, one page, uncompressed grey
// uint8 or uint16, one row per strip, and the metadata as INI text ("[Section]" and
// "Key=value" lines, CRLF, a blank line between sections) in private tag 34682
// (FEI_HELIOS), or 34680 (FEI_SFEG) for the older xT 1.x instruments (Quanta, Nova, Sirion,
// Inspect, XL). The values use the instrument's units and spellings:
//   [User] Date=MM/DD/YYYY, Time=hh:mm:ss AM|PM (the acquisition PC's clock), User, UserText
//   [System] SystemType (the instrument model)
//   [Beam] HV (V), Beam (EBeam, or IRBeam for the Nav-Cam), Scan
//   [EBeam] HV, HFW (m)          [Scan] and [EScan] PixelWidth, PixelHeight, HorFieldsize (m)
//   [Image] ResolutionX/Y, MagCanvasRealWidth (m: indicated magnification x HFW)
//   [Detectors] Name, Mode       [PrivateFei] TimeOfCreation=DD.MM.YYYY HH:MM:SS
// Reals are written as Windows' C runtime prints them (three-digit exponents: 3.3724e-006)
// with the shortest digits that read back to the same double.
//
// libtiff reports errors through handlers; each write installs its own per-handle
// handlers (libtiff >= 4.5), so no global state is touched. Custom tags are registered on
// the handle with TIFFMergeFieldInfo rather than with the process-wide tag extender.
#include <tiffio.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
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

constexpr ttag_t kTagFeiSfeg = 34680;
constexpr ttag_t kTagFeiHelios = 34682;
constexpr size_t kMaxErrorText = 1000;

// ---- Date and number text ---------------------------------------------------------------

// The shortest text that reads back as `value`, with the exponent padded to three digits
// as the Microsoft C runtime prints it ("3.3724e-006").
std::string Real(double value) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  std::string text(buf, ec == std::errc() ? end : buf);
  const size_t e = text.find('e');
  if (e != std::string::npos) {
    const size_t digits = e + 2;  // after "e+" / "e-"
    if (digits <= text.size()) {
      while (text.size() - digits < 3) text.insert(digits, "0");
    }
  }
  return text;
}

// A value on one INI line: line breaks would start new keys, so they become spaces.
std::string OneLine(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) out.push_back(c == '\r' || c == '\n' || c == '\0' ? ' ' : c);
  return out;
}

// xT's UserTextUnicode: the text as UTF-16LE code units, in hex (ASCII text only; other
// bytes are written as they are, one unit each).
std::string Utf16Hex(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
    out += "00";
  }
  return out;
}

// ---- The INI text -------------------------------------------------------------------------

class IniText {
 public:
  void Section(std::string_view name) {
    if (!text_.empty()) text_ += "\r\n";
    text_ += "[";
    text_ += name;
    text_ += "]\r\n";
  }
  void Key(std::string_view key, std::string_view value) {
    text_ += key;
    text_ += "=";
    text_ += OneLine(value);
    text_ += "\r\n";
  }
  void Key(std::string_view key, double value) { Key(key, Real(value)); }
  void Key(std::string_view key, int64_t value) { Key(key, std::to_string(value)); }
  const std::string& text() const { return text_; }

 private:
  std::string text_;
};

bool ContainsAny(std::string_view text, std::initializer_list<std::string_view> words) {
  for (std::string_view w : words) {
    if (text.find(w) != std::string_view::npos) return true;
  }
  return false;
}

// The xT 1.x instruments tag their metadata FEI_SFEG; xT 2 and later FEI_HELIOS.
bool WritesSfegTag(std::string_view instrument) {
  return ContainsAny(instrument, {"Quanta", "Nova", "Sirion", "Inspect", "XL30", "XL 30"});
}

// The signal an SEM detector records: backscattered for the BSE detectors, else secondary.
std::string DetectorMode(const std::string& detector, Mode mode) {
  if (mode == Mode::kOpticalImage) return "None";
  if (mode == Mode::kTemImage || mode == Mode::kDiffraction) return "TEM";
  if (mode == Mode::kStemImage) return "STEM";
  if (ContainsAny(detector, {"BSE", "CBS", "ABS", "vCD", "DBS", "T1", "BSD"})) return "BSE";
  return "SE";
}

struct Geometry {
  uint32_t width = 0, height = 0;
  std::optional<double> pixel_x_m, pixel_y_m;
  CivilTime acquired;  // [User] Date and Time
};

std::string FeiText(const Acquisition& acquisition, const Geometry& g) {
  const formats::NormalisedFields& f = acquisition.fields;
  const CivilTime& t = g.acquired;
  const bool optical = f.mode == Mode::kOpticalImage;
  const std::string detector = f.detector.value_or(!acquisition.signals.front().name.empty()
                                                       ? acquisition.signals.front().name
                                                       : (optical ? "Nav-Cam" : ""));
  char buf[64];
  IniText ini;

  ini.Section("User");
  std::snprintf(buf, sizeof(buf), "%02d/%02d/%04d", t.month, t.day, t.year);
  ini.Key("Date", buf);
  std::snprintf(buf, sizeof(buf), "%02d:%02d:%02d %s", (t.hour + 11) % 12 + 1, t.minute, t.second,
                t.hour < 12 ? "AM" : "PM");
  ini.Key("Time", buf);
  ini.Key("User", acquisition.operator_name);
  ini.Key("UserText", acquisition.sample_description);
  ini.Key("UserTextUnicode", Utf16Hex(OneLine(acquisition.sample_description)));

  ini.Section("System");
  const bool tem =
      f.mode == Mode::kTemImage || f.mode == Mode::kStemImage || f.mode == Mode::kDiffraction;
  const std::string instrument = f.instrument.value_or("");
  ini.Key("Type",
          tem ? "TEM"
              : (ContainsAny(instrument, {"Helios", "Scios", "Versa", "Quanta 3D"}) ? "DualBeam"
                                                                                    : "SEM"));
  ini.Key("Source", "FEG");
  ini.Key("SystemType", instrument);

  const std::string beam = optical ? "IRBeam" : "EBeam";
  ini.Section("Beam");
  if (f.beam_energy_kev && !optical) {
    ini.Key("HV", *f.beam_energy_kev * 1000.0);
  } else {
    ini.Key("HV", "");
  }
  ini.Key("Beam", beam);
  ini.Key("Scan", optical ? "" : "EScan");

  // Field widths: the frame's real size, from the pixel size.
  const bool calibrated = g.pixel_x_m.has_value() && g.pixel_y_m.has_value();
  const double hfw = calibrated ? *g.pixel_x_m * g.width : 0;
  const double vfw = calibrated ? *g.pixel_y_m * g.height : 0;
  ini.Section(beam);
  if (!optical && f.beam_energy_kev) ini.Key("HV", *f.beam_energy_kev * 1000.0);
  if (calibrated) {
    ini.Key("HFW", hfw);
    ini.Key("VFW", vfw);
  }

  if (!optical) {
    for (const char* scan : {"Scan", "EScan"}) {
      ini.Section(scan);
      ini.Key("InternalScan", "true");
      if (calibrated) {
        ini.Key("PixelWidth", *g.pixel_x_m);
        ini.Key("PixelHeight", *g.pixel_y_m);
        ini.Key("HorFieldsize", hfw);
        ini.Key("VerFieldsize", vfw);
      }
    }
  }

  ini.Section("Image");
  ini.Key("ResolutionX", int64_t(g.width));
  ini.Key("ResolutionY", int64_t(g.height));
  if (f.magnification && calibrated) {
    // xT's indicated magnification is the display's real width over the field width.
    ini.Key("MagCanvasRealWidth", *f.magnification * hfw);
    ini.Key("MagnificationMode", int64_t(3));
  }

  ini.Section("Detectors");
  ini.Key("Number", int64_t(detector.empty() ? 0 : 1));
  ini.Key("Name", detector);
  ini.Key("Mode", DetectorMode(detector, f.mode));
  if (!detector.empty()) {
    ini.Section(detector);
    ini.Key("Signal", DetectorMode(detector, f.mode));
  }

  ini.Section("PrivateFei");
  std::snprintf(buf, sizeof(buf), "%02d.%02d.%04d %02d:%02d:%02d", t.day, t.month, t.year, t.hour,
                t.minute, t.second);
  ini.Key("TimeOfCreation", buf);
  return ini.text();
}

// ---- Validation ---------------------------------------------------------------------------

Result<Geometry> Plan(const Acquisition& acquisition, const std::string& where) {
  if (acquisition.signals.size() != 1) {
    return Status::InvalidArgument(where + ": signals: FEI TIFF holds exactly one signal, got " +
                                   std::to_string(acquisition.signals.size()));
  }
  const SignalToWrite& signal = acquisition.signals.front();
  const formats::NdArray& data = signal.data;
  const formats::NormalisedFields& f = acquisition.fields;
  if (data.shape.size() != 2) {
    return Status::InvalidArgument(where + ": data.shape: rank " +
                                   std::to_string(data.shape.size()) +
                                   "; FEI TIFF holds one image (rank 2)");
  }
  if (data.dtype != DType::kUInt8 && data.dtype != DType::kUInt16) {
    return Status::InvalidArgument(where + ": data.dtype " +
                                   std::string(formats::DTypeName(data.dtype)) +
                                   " is not written by FEI SEMs (uint8, uint16)");
  }
  SCISEARCH_RETURN_IF_ERROR(ValidateSignalArray(signal, where + ": " + SignalLabel(0, signal),
                                                65535, kMaxSignalElements));
  Geometry g;
  g.height = uint32_t(data.shape[0]);
  g.width = uint32_t(data.shape[1]);
  SCISEARCH_ASSIGN_OR_RETURN(g.acquired, AcquiredClock(f, 1970, 2200, where, "[User] Date/Time"));
  switch (f.mode) {
    case Mode::kSemImage:
    case Mode::kOpticalImage:
    case Mode::kTemImage:
    case Mode::kStemImage:
    case Mode::kImage:
    case Mode::kUnknown:
      break;
    default:
      return Status::InvalidArgument(
          where + ": fields.mode '" + std::string(formats::ModeName(f.mode)) +
          "' is not written to FEI TIFF (SEM, optical, TEM, STEM image)");
  }
  SCISEARCH_RETURN_IF_ERROR(ValidatePositiveFields(f, where));
  const Axis& y = signal.axes[0];
  const Axis& x = signal.axes[1];
  SCISEARCH_ASSIGN_OR_RETURN(const FrameMetres metres,
                             FrameMetresPerUnit(y, x, f, where, "FEI TIFF"));
  if (metres.x) {
    g.pixel_x_m = x.scale * *metres.x;
    g.pixel_y_m = y.scale * *metres.y;
  }
  return g;
}

// ---- libtiff plumbing ---------------------------------------------------------------------

struct ErrorLog {
  std::string text;
};

int CollectError(TIFF*, void* user, const char* module, const char* fmt, va_list ap) {
  auto* log = static_cast<ErrorLog*>(user);
  char buf[512];
  std::vsnprintf(buf, sizeof(buf), fmt, ap);
  if (log->text.size() < kMaxErrorText) {
    if (!log->text.empty()) log->text += "; ";
    if (module != nullptr) log->text += std::string(module) + ": ";
    log->text += buf;
  }
  return 1;  // handled: libtiff prints nothing
}

int IgnoreWarning(TIFF*, void*, const char*, const char*, va_list) { return 1; }

struct OptionsFree {
  void operator()(TIFFOpenOptions* o) const { TIFFOpenOptionsFree(o); }
};
struct TiffClose {
  void operator()(TIFF* t) const { TIFFClose(t); }
};

Status WriteTiff(const fs::path& temporary, const std::string& where, const Acquisition& acq,
                 const Geometry& g, const std::string& fei_text) {
  const formats::NdArray& data = acq.signals.front().data;
  ErrorLog log;
  std::unique_ptr<TIFFOpenOptions, OptionsFree> options(TIFFOpenOptionsAlloc());
  if (!options) return Status::Internal(where + ": out of memory");
  TIFFOpenOptionsSetErrorHandlerExtR(options.get(), CollectError, &log);
  TIFFOpenOptionsSetWarningHandlerExtR(options.get(), IgnoreWarning, nullptr);
  // "w": create, "l": little-endian as the instruments write.
  std::unique_ptr<TIFF, TiffClose> tif(TIFFOpenExt(temporary.c_str(), "wl", options.get()));
  if (!tif)
    return Status::IoError(where + ": cannot create " + temporary.string() + ": " + log.text);

  const ttag_t fei_tag =
      WritesSfegTag(acq.fields.instrument.value_or("")) ? kTagFeiSfeg : kTagFeiHelios;
  static const TIFFFieldInfo kFeiFields[] = {
      {kTagFeiSfeg, -1, -1, TIFF_ASCII, FIELD_CUSTOM, 1, 0, const_cast<char*>("FEI_SFEG")},
      {kTagFeiHelios, -1, -1, TIFF_ASCII, FIELD_CUSTOM, 1, 0, const_cast<char*>("FEI_HELIOS")},
  };
  if (TIFFMergeFieldInfo(tif.get(), kFeiFields, 2) != 0) {
    return Status::Internal(where + ": libtiff refused the FEI tag definitions: " + log.text);
  }
  const uint16_t bits = data.dtype == DType::kUInt16 ? 16 : 8;
  bool ok = TIFFSetField(tif.get(), TIFFTAG_IMAGEWIDTH, g.width) &&
            TIFFSetField(tif.get(), TIFFTAG_IMAGELENGTH, g.height) &&
            TIFFSetField(tif.get(), TIFFTAG_BITSPERSAMPLE, bits) &&
            TIFFSetField(tif.get(), TIFFTAG_SAMPLESPERPIXEL, uint16_t(1)) &&
            TIFFSetField(tif.get(), TIFFTAG_COMPRESSION, COMPRESSION_NONE) &&
            TIFFSetField(tif.get(), TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK) &&
            TIFFSetField(tif.get(), TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG) &&
            TIFFSetField(tif.get(), TIFFTAG_ROWSPERSTRIP, uint32_t(1));
  // Resolution: the pixel size in pixels per centimetre when calibrated; otherwise the
  // 64 dpi xT writes.
  if (g.pixel_x_m) {
    ok = ok && TIFFSetField(tif.get(), TIFFTAG_RESOLUTIONUNIT, RESUNIT_CENTIMETER) &&
         TIFFSetField(tif.get(), TIFFTAG_XRESOLUTION, float(0.01 / *g.pixel_x_m)) &&
         TIFFSetField(tif.get(), TIFFTAG_YRESOLUTION, float(0.01 / *g.pixel_y_m));
  } else {
    ok = ok && TIFFSetField(tif.get(), TIFFTAG_RESOLUTIONUNIT, RESUNIT_INCH) &&
         TIFFSetField(tif.get(), TIFFTAG_XRESOLUTION, 64.0f) &&
         TIFFSetField(tif.get(), TIFFTAG_YRESOLUTION, 64.0f);
  }
  ok = ok && TIFFSetField(tif.get(), fei_tag, fei_text.c_str());
  if (!ok) return Status::Internal(where + ": libtiff refused a tag: " + log.text);

  const size_t row_bytes = size_t(g.width) * (bits / 8);
  std::vector<uint8_t> swapped;  // rows in native order, for big-endian hosts
  for (uint32_t row = 0; row < g.height; ++row) {
    const uint8_t* src = data.bytes.data() + size_t(row) * row_bytes;
    if constexpr (std::endian::native == std::endian::big) {
      if (bits == 16) {
        swapped.assign(src, src + row_bytes);
        for (size_t i = 0; i + 1 < row_bytes; i += 2) std::swap(swapped[i], swapped[i + 1]);
        src = swapped.data();
      }
    }
    if (TIFFWriteEncodedStrip(tif.get(), row, const_cast<uint8_t*>(src), tmsize_t(row_bytes)) < 0) {
      return Status::IoError(where + ": writing row " + std::to_string(row) + ": " + log.text);
    }
  }
  if (!TIFFFlush(tif.get())) {
    return Status::IoError(where + ": writing the TIFF directory: " + log.text);
  }
  TIFFClose(tif.release());  // errors while closing arrive through the handler
  if (!log.text.empty()) return Status::IoError(where + ": " + log.text);
  return Status::Ok();
}

}  // namespace

Status WriteFeiTiff(const fs::path& path, const Acquisition& acquisition) {
  const std::string where = path.string();
  SCISEARCH_ASSIGN_OR_RETURN(Geometry geometry, Plan(acquisition, where));
  const std::string fei_text = FeiText(acquisition, geometry);
  return WriteFileAtomically(path, [&](const fs::path& temporary) {
    return WriteTiff(temporary, where, acquisition, geometry, fei_text);
  });
}

}  // namespace scisearch::simulate
