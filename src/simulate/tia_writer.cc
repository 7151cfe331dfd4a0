// FEI/Thermo TIA (ES Vision) writer: NAME.emi with the acquisition's metadata and one
// NAME_<n>.ser series file per signal, laid out as TIA 4.x writes them.
//
// SER (little-endian; Chris Boothroyd's description of the format, as in our reader):
// the header {ByteOrder 0x4949, SeriesID 0x0197, SeriesVersion 0x0220 (64-bit offsets),
// DataTypeID (0x4120 1-D elements, 0x4122 2-D), TagTypeID (0x4152 time, 0x4142 time and
// position), TotalNumberElements, ValidNumberElements, OffsetArrayOffset u64,
// NumberDimensions}, the series dimensions fastest first {size, calibration offset, delta,
// element, description, units}, then at OffsetArrayOffset the data offsets and the tag
// offsets (u64 each), the elements {calibration(s), DataType i16, sizes, values} and the
// tags {TagTypeID u16, 0 u16, Unix time u32 [, position x f64, y f64]} - the order TIA
// writes them in. Choices, as TIA makes them:
//   - A signal's leading navigate axes are the series dimensions (a single image or
//     spectrum is a series of one "Number" dimension of size 1); its last two axes are a
//     2-D element (image), its last one a 1-D element (spectrum).
//   - Calibrations are SI: length axes are converted to metres ("meters" series units,
//     "Position" description), reciprocal ones to 1/m, energies to eV.
//   - Image rows are stored bottom-up (TIA's convention; the reader turns them back).
//
// EMI: an undocumented object store. We write its header, the tagged items our reader
// and RosettaSciIO use - length-prefixed strings (0x60 0x00 <kind> <u32 length> <text>)
// naming the document, each data object (kind 00 01: "Acquire HAADF", "Acquire CCD ",
// "EDX Spectrum image"), its coordinate space (00 04: "Real Space" / "Reciprocal
// Space") and the path of its .ser file (40 04) - followed by that object's <ObjectInfo>
// XML (kind 19 04): ExperimentalConditions (AcceleratingVoltage in V),
// ExperimentalDescription (Microscope, User, High tension kV, Mode, Magnification x,
// Specimen), AcquireDate (ctime form, local clock time), AcquireInfo (Magnification "N X",
// CameraNamePath for cameras) and Manufacturer.
//
// What reads back (formats::OpenDataset): shapes, dtypes, pixel bytes and axes exactly,
// with TIA's units (metres, 1/m, eV: scale and offset multiplied by the SI factor); the
// acquired clock time to the second (TIA keeps no zone or fraction); instrument, beam
// energy, magnification; the mode (TEM/STEM image, diffraction, spectrum, spectrum image,
// 4D-STEM; TIA knows no SEM); pixel size from the axes; the detector from each signal's
// name (fields.detector when a signal has none).
//
// Every file is built in one buffer and written once, through WriteBytesAtomically; the
// .ser files first, so that a complete .emi always has its data beside it.
#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
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

constexpr uint16_t kLittleEndianMark = 0x4949;
constexpr uint16_t kSeriesId = 0x0197;
constexpr uint16_t kSeriesVersion = 0x0220;
constexpr uint32_t kElements1d = 0x4120;
constexpr uint32_t kElements2d = 0x4122;
constexpr uint16_t kTagTime = 0x4152;
constexpr uint16_t kTagTimePosition = 0x4142;
constexpr size_t kMaxSignals = 1000;  // NAME_1.ser .. NAME_1000.ser, as the reader looks

// ---------------------------------------------------------------------------
// Acquisition time.

// "Sun Feb 21 17:53:06 2016": the C library's asctime form, which TIA writes.
std::string CtimeText(const CivilTime& t) {
  static constexpr const char* kDays[] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const int64_t days = DaysFromCivil(t.year, t.month, t.day);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s %s %02d %02d:%02d:%02d %04d", kDays[((days % 7) + 7) % 7],
                kMonths[t.month - 1], t.day, t.hour, t.minute, t.second, t.year);
  return buf;
}

// ---------------------------------------------------------------------------
// Text.

// The shortest decimal text that reads back as exactly `v`, never in exponent form.
std::string NumberText(double v) {
  char buf[400];
  auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
  if (r.ec != std::errc()) r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string XmlEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        // Control characters other than tab/newline have no place in XML 1.0.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r') {
          out += ' ';
        } else {
          out += c;
        }
    }
  }
  return out;
}

// A version-4-shaped UUID derived from `seed`, so that the same acquisition always gives
// the same file bytes.
std::string UuidFrom(std::string_view seed) {
  const Hash128 hash = Fnv1a128(seed);
  uint64_t a = hash.high;
  uint64_t b = hash.low;
  a = (a & 0xffffffffffff0fffull) | 0x4000;              // version 4
  b = (b & 0x3fffffffffffffffull) | 0x8000000000000000;  // variant 1
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", unsigned(a >> 32),
                unsigned((a >> 16) & 0xffff), unsigned(a & 0xffff), unsigned(b >> 48),
                static_cast<unsigned long long>(b & 0xffffffffffffull));
  return buf;
}

// ---------------------------------------------------------------------------
// Little-endian buffers.

class LeBuffer {
 public:
  explicit LeBuffer(size_t reserve) { bytes_.reserve(reserve); }
  template <typename T>
  void Put(T v) {
    AppendLittle(bytes_, v);
  }
  void PutBytes(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    bytes_.insert(bytes_.end(), b, b + n);
  }
  void PutText(std::string_view s) { PutBytes(s.data(), s.size()); }
  template <typename T>
  void PatchAt(size_t at, T v) {
    StoreLittle(bytes_.data() + at, v);
  }
  size_t size() const { return bytes_.size(); }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

// ---------------------------------------------------------------------------
// What one .ser file holds.

std::optional<int16_t> SerDataType(DType dtype) {
  switch (dtype) {
    case DType::kUInt8:
      return 1;
    case DType::kUInt16:
      return 2;
    case DType::kUInt32:
      return 3;
    case DType::kInt8:
      return 4;
    case DType::kInt16:
      return 5;
    case DType::kInt32:
      return 6;
    case DType::kFloat32:
      return 7;
    case DType::kFloat64:
      return 8;
    case DType::kComplex64:
      return 9;
    case DType::kComplex128:
      return 10;
    default:
      return std::nullopt;
  }
}

// Metres (or 1/m) per unit of a length unit, nullopt for other units.
std::optional<double> LengthFactor(const std::string& units) {
  if (units.empty()) return std::nullopt;
  return formats::LengthToSi(units);
}

struct SerDimension {
  int32_t size = 0;
  double offset = 0, delta = 0;
  std::string description, units;
};

struct SerCalibration {
  double offset = 0, delta = 1;
};

struct SerPlan {
  const SignalToWrite* signal = nullptr;
  size_t series_rank = 0;
  bool two_d = false;
  bool reciprocal = false;
  int16_t data_type = 0;
  std::vector<SerDimension> dimensions;        // fastest first, as SER lists them
  std::array<SerCalibration, 2> calibrations;  // X (or the spectrum) then Y
  int32_t size_x = 0, size_y = 1;              // element shape (size_y 1 for spectra)
  uint32_t elements = 1;
  int scan_axes = 0;           // series axes in length units
  std::vector<int> scan_dims;  // indices into `dimensions` of scan axes
  std::string detector;
};

Result<SerPlan> PlanSer(const SignalToWrite& s, size_t index,
                        const formats::NormalisedFields& fields) {
  const std::string which = SignalLabel(index, s);
  SerPlan plan;
  plan.signal = &s;
  SCISEARCH_RETURN_IF_ERROR(
      ValidateSignalArray(s, which, std::numeric_limits<int32_t>::max(), kMaxSignalElements));
  const size_t rank = s.axes.size();
  const auto data_type = SerDataType(s.data.dtype);
  if (!data_type) {
    return Status::InvalidArgument(which + ".data.dtype " +
                                   std::string(formats::DTypeName(s.data.dtype)) +
                                   " is not a TIA data type (uint8/16/32, int8/16/32, "
                                   "float32/64, complex64/128)");
  }
  plan.data_type = *data_type;

  // Leading navigate axes: the series; the rest: the element.
  SCISEARCH_ASSIGN_OR_RETURN(const size_t series, LeadingNavigateAxes(s, which));
  const size_t frame_rank = rank - series;
  plan.series_rank = series;
  plan.two_d = frame_rank == 2;

  // Series dimensions, fastest first.
  uint64_t elements = 1;
  for (size_t k = series; k-- > 0;) {
    const Axis& a = s.axes[k];
    if (a.size < 2) {
      return Status::InvalidArgument(which + ".axes[" + std::to_string(k) + "] (" + a.name +
                                     ") is a navigate axis of size 1; TIA drops such series "
                                     "dimensions, so it would not read back");
    }
    elements *= uint64_t(a.size);
    if (elements > uint64_t(std::numeric_limits<int32_t>::max())) {
      return Status::InvalidArgument(which + " has more series elements than TIA's 2^31-1");
    }
    SerDimension d;
    d.size = int32_t(a.size);
    const auto factor = LengthFactor(a.units);
    if (factor && !IsReciprocalUnits(a.units)) {
      d.offset = a.offset * *factor;
      d.delta = a.scale * *factor;
      d.description = "Position";
      d.units = "meters";
      plan.scan_dims.push_back(int(plan.dimensions.size()));
      ++plan.scan_axes;
    } else {
      d.offset = a.offset;
      d.delta = a.scale;
      d.description = a.name == "frame" ? "Number" : a.name;
      d.units = a.units;
    }
    plan.dimensions.push_back(std::move(d));
  }
  if (plan.dimensions.empty()) {
    SerDimension d;
    d.size = 1;
    d.delta = 1;
    d.description = "Number";
    plan.dimensions.push_back(d);
  }
  plan.elements = uint32_t(elements);

  // The element's calibration, in SI units.
  if (plan.two_d) {
    const Axis& ay = s.axes[rank - 2];
    const Axis& ax = s.axes[rank - 1];
    if (ax.units.empty() != ay.units.empty() ||
        (!ax.units.empty() && IsReciprocalUnits(ax.units) != IsReciprocalUnits(ay.units))) {
      return Status::InvalidArgument(which + " image axes '" + ay.units + "' and '" + ax.units +
                                     "' are not both real-space, both reciprocal or both "
                                     "uncalibrated (TIA has one space per image)");
    }
    const Axis* pair[2] = {&ax, &ay};
    for (int k = 0; k < 2; ++k) {
      const Axis& a = *pair[k];
      if (a.units.empty()) {
        if (a.scale != 1.0 || a.offset != 0.0) {
          return Status::InvalidArgument(
              which + " image axis " + a.name + " has no units but scale " + NumberText(a.scale) +
              " and offset " + NumberText(a.offset) + " (TIA reads calibrated images as metres)");
        }
        plan.calibrations[size_t(k)] = {0.0, 1.0};
        continue;
      }
      const auto factor = LengthFactor(a.units);
      if (!factor) {
        return Status::InvalidArgument(which + " image axis " + a.name + " has units '" + a.units +
                                       "', not a length or reciprocal length");
      }
      plan.calibrations[size_t(k)] = {a.offset * *factor, a.scale * *factor};
    }
    plan.reciprocal = !ax.units.empty() && IsReciprocalUnits(ax.units);
    plan.size_x = int32_t(ax.size);
    plan.size_y = int32_t(ay.size);
  } else {
    const Axis& a = s.axes[rank - 1];
    const std::string units = formats::NormaliseUnits(a.units);
    double factor = 0;
    if (units == "eV") {
      factor = 1.0;
    } else if (units == "keV") {
      factor = 1000.0;
    } else {
      return Status::InvalidArgument(which + " spectrum axis " + a.name + " has units '" + a.units +
                                     "'; TIA spectra are calibrated in eV (or keV)");
    }
    plan.calibrations[0] = {a.offset * factor, a.scale * factor};
    plan.size_x = int32_t(a.size);
  }
  plan.detector = !s.name.empty() ? s.name : fields.detector.value_or("");
  return plan;
}

// The .ser file of one signal.
std::vector<uint8_t> BuildSer(const SerPlan& plan, uint32_t unix_time) {
  const SignalToWrite& s = *plan.signal;
  const size_t esize = formats::DTypeSize(s.data.dtype);
  const uint64_t frame_values = uint64_t(plan.size_x) * uint64_t(plan.size_y);
  const uint64_t frame_bytes = frame_values * esize;
  const size_t element_header = plan.two_d ? 50 : 26;
  const bool positions = plan.scan_axes > 0;
  const size_t tag_bytes = positions ? 24 : 8;
  size_t header = 30 + 4;
  for (const SerDimension& d : plan.dimensions) {
    header += 4 + 8 + 8 + 4 + 4 + d.description.size() + 4 + d.units.size();
  }
  const uint64_t offsets_at = header;
  const uint64_t data_at = offsets_at + 16ull * plan.elements;
  const uint64_t tags_at = data_at + uint64_t(plan.elements) * (element_header + frame_bytes);
  const uint64_t total = tags_at + uint64_t(plan.elements) * tag_bytes;

  LeBuffer out{size_t(total)};
  out.Put<uint16_t>(kLittleEndianMark);
  out.Put<uint16_t>(kSeriesId);
  out.Put<uint16_t>(kSeriesVersion);
  out.Put<uint32_t>(plan.two_d ? kElements2d : kElements1d);
  out.Put<uint32_t>(positions ? kTagTimePosition : kTagTime);
  out.Put<uint32_t>(plan.elements);  // TotalNumberElements
  out.Put<uint32_t>(plan.elements);  // ValidNumberElements
  out.Put<uint64_t>(offsets_at);
  out.Put<uint32_t>(uint32_t(plan.dimensions.size()));
  for (const SerDimension& d : plan.dimensions) {
    out.Put<int32_t>(d.size);
    out.Put<double>(d.offset);
    out.Put<double>(d.delta);
    out.Put<int32_t>(0);  // CalibrationElement
    out.Put<int32_t>(int32_t(d.description.size()));
    out.PutText(d.description);
    out.Put<int32_t>(int32_t(d.units.size()));
    out.PutText(d.units);
  }
  for (uint32_t e = 0; e < plan.elements; ++e) {
    out.Put<uint64_t>(data_at + uint64_t(e) * (element_header + frame_bytes));
  }
  for (uint32_t e = 0; e < plan.elements; ++e) out.Put<uint64_t>(tags_at + uint64_t(e) * tag_bytes);

  const uint8_t* values = s.data.bytes.data();
  const size_t row_bytes = size_t(plan.size_x) * esize;
  for (uint32_t e = 0; e < plan.elements; ++e) {
    out.Put<double>(plan.calibrations[0].offset);
    out.Put<double>(plan.calibrations[0].delta);
    out.Put<int32_t>(0);
    if (plan.two_d) {
      out.Put<double>(plan.calibrations[1].offset);
      out.Put<double>(plan.calibrations[1].delta);
      out.Put<int32_t>(0);
    }
    out.Put<int16_t>(plan.data_type);
    out.Put<int32_t>(plan.size_x);
    if (plan.two_d) out.Put<int32_t>(plan.size_y);
    const uint8_t* frame = values + uint64_t(e) * frame_bytes;
    if (plan.two_d) {
      // Bottom row first.
      for (int32_t r = plan.size_y; r-- > 0;)
        out.PutBytes(frame + size_t(r) * row_bytes, row_bytes);
    } else {
      out.PutBytes(frame, size_t(frame_bytes));
    }
  }

  // Tags: the acquisition time, and for scans the beam position of each element.
  for (uint32_t e = 0; e < plan.elements; ++e) {
    out.Put<uint16_t>(positions ? kTagTimePosition : kTagTime);
    out.Put<uint16_t>(0);
    out.Put<uint32_t>(unix_time);
    if (positions) {
      double xy[2] = {0, 0};
      uint64_t rest = e;
      int scan_seen = 0;
      for (size_t d = 0; d < plan.dimensions.size(); ++d) {
        const SerDimension& dim = plan.dimensions[d];
        const uint64_t i = rest % uint64_t(dim.size);
        rest /= uint64_t(dim.size);
        if (std::find(plan.scan_dims.begin(), plan.scan_dims.end(), int(d)) !=
                plan.scan_dims.end() &&
            scan_seen < 2) {
          xy[scan_seen++] = dim.offset + double(i) * dim.delta;
        }
      }
      out.Put<double>(xy[0]);
      out.Put<double>(xy[1]);
    }
  }
  return out.bytes();
}

// ---------------------------------------------------------------------------
// The .emi.

// The object store's items: strings, 32-bit integers, booleans.
void EmiString(LeBuffer& out, uint8_t kind_high, uint8_t kind_low, std::string_view raw) {
  // Control characters would make readers take the item for binary data.
  std::string text(raw);
  for (char& c : text) {
    const auto b = static_cast<unsigned char>(c);
    if ((b < 0x20 && c != '\t' && c != '\r' && c != '\n') || b == 0x7f) c = ' ';
  }
  out.Put<uint8_t>(0x60);
  out.Put<uint8_t>(0x00);
  out.Put<uint8_t>(kind_high);
  out.Put<uint8_t>(kind_low);
  out.Put<uint32_t>(uint32_t(text.size()));
  out.PutText(text);
}
void EmiInt(LeBuffer& out, uint8_t key_high, uint8_t key_low, int32_t v) {
  out.Put<uint8_t>(0x31);
  out.Put<uint8_t>(0x00);
  out.Put<uint8_t>(key_high);
  out.Put<uint8_t>(key_low);
  out.Put<int32_t>(v);
}
void EmiBool(LeBuffer& out, uint8_t key_high, uint8_t key_low, bool v) {
  out.Put<uint8_t>(0x70);
  out.Put<uint8_t>(0x00);
  out.Put<uint8_t>(key_high);
  out.Put<uint8_t>(key_low);
  out.Put<uint8_t>(v ? 1 : 0);
}

// TIA's microscope mode text (the ExperimentalDescription "Mode").
std::string ModeText(bool scanning, const SerPlan& plan, Mode mode) {
  if (scanning) return " STEM nP SA Zoom Diffraction";
  if (plan.reciprocal || mode == Mode::kDiffraction) return " TEM uP SA Zoom Diffraction";
  if (mode == Mode::kTemImage) return " TEM uP SA Zoom Image";
  return "";  // the file does not say
}

// Whether the acquisition scans a probe (STEM imaging, spectrum imaging, 4D-STEM).
bool IsScanning(const Acquisition& acq, const std::vector<SerPlan>& plans) {
  switch (acq.fields.mode) {
    case Mode::kStemImage:
    case Mode::kSpectrumImage:
    case Mode::kSpectrum:
    case Mode::k4dStem:
    case Mode::kSemImage:
      return true;
    default:
      break;
  }
  for (const SerPlan& p : plans) {
    if (p.scan_axes > 0) return true;
  }
  return false;
}

// The object name TIA gives a signal's data, from which readers take the detector.
std::string ObjectName(const SerPlan& plan, bool camera) {
  if (!plan.two_d) {
    const char* kind = plan.scan_axes >= 2   ? " Spectrum image"
                       : plan.scan_axes == 1 ? " Spectrum profile"
                                             : " Spectrum";
    return plan.detector.empty() ? std::string(kind + 1) : plan.detector + kind;
  }
  if (camera) return plan.reciprocal ? "Acquire CCD Pattern" : "Acquire CCD ";
  return plan.detector.empty() ? std::string("Acquire") : "Acquire " + plan.detector;
}

void DescriptionEntry(std::string& xml, std::string_view label, std::string_view value,
                      std::string_view unit) {
  xml += "<Data><Label>";
  xml += XmlEscape(label);
  xml += "</Label><Value>";
  xml += XmlEscape(value);
  xml += "</Value><Unit>";
  xml += XmlEscape(unit);
  xml += "</Unit></Data>";
}

std::string ObjectInfoXml(const Acquisition& acq, const SerPlan& plan, bool scanning, bool camera,
                          const CivilTime& when, const std::string& uuid) {
  const formats::NormalisedFields& f = acq.fields;
  std::string xml;
  xml.reserve(2048);
  xml += "<ObjectInfo><Uuid>" + uuid + "</Uuid>";
  if (f.beam_energy_kev) {
    xml += "<ExperimentalConditions><MicroscopeConditions><AcceleratingVoltage>";
    xml += NumberText(*f.beam_energy_kev * 1000.0);
    xml += "</AcceleratingVoltage><Tilt1>0.000000</Tilt1><Tilt2>0.000000</Tilt2>";
    xml += "</MicroscopeConditions></ExperimentalConditions>";
  }
  xml += "<ExperimentalDescription><Root>";
  if (f.instrument) DescriptionEntry(xml, "Microscope", "Microscope " + *f.instrument, "");
  if (!acq.operator_name.empty()) DescriptionEntry(xml, "User", acq.operator_name, "");
  DescriptionEntry(xml, "Gun type", "FEG", "");
  if (f.beam_energy_kev)
    DescriptionEntry(xml, "High tension", NumberText(*f.beam_energy_kev), "kV");
  DescriptionEntry(xml, "Mode", ModeText(scanning, plan, f.mode), "");
  DescriptionEntry(xml, "Defocus", "0.000", "um");
  if (f.magnification) DescriptionEntry(xml, "Magnification", NumberText(*f.magnification), "x");
  if (scanning) DescriptionEntry(xml, "Stem rotation", "0.0", "deg");
  DescriptionEntry(xml, "Stage A", "0.00", "deg");
  DescriptionEntry(xml, "Stage B", "0.00", "deg");
  if (!acq.sample_description.empty()) {
    DescriptionEntry(xml, "Specimen", acq.sample_description, "");
  }
  DescriptionEntry(xml, "Filter mode", "", "");
  xml += "</Root>\r\n\t</ExperimentalDescription>";
  xml += "<AcquireDate>" + CtimeText(when) + "</AcquireDate>";
  xml += "<AcquireInfo><Magnification>";
  xml += f.magnification ? NumberText(std::round(*f.magnification)) : std::string("0");
  xml += " X</Magnification>";
  xml += scanning && !camera ? "<DwellTimePath>0.000010</DwellTimePath>"
                             : "<DwellTimePath>0.100000</DwellTimePath>";
  if (camera && !plan.detector.empty()) {
    xml += "<CameraNamePath>" + XmlEscape(plan.detector) + "</CameraNamePath><Binning>1</Binning>";
  }
  xml += "</AcquireInfo>";
  xml += camera ? "<Manufacturer>FEI</Manufacturer>" : "<Manufacturer>FEI (ISAS)</Manufacturer>";
  xml += "</ObjectInfo>\r\n";
  return xml;
}

std::vector<uint8_t> BuildEmi(const Acquisition& acq, const std::vector<SerPlan>& plans,
                              const std::vector<std::string>& ser_names, const CivilTime& when,
                              const std::string& emi_name) {
  const bool scanning = IsScanning(acq, plans);
  LeBuffer out(4096 * plans.size() + 512);
  static constexpr uint8_t kHeader[] = {0x4a, 0x4b, 0x00, 0x02, 0x00, 0x00,
                                        0x00, 0x00, 0x04, 0x4d, 0x01, 0x00};
  out.PutBytes(kHeader, sizeof kHeader);
  char clock[16];
  std::snprintf(clock, sizeof clock, "%02d.%02d.%02d", when.hour, when.minute, when.second);
  const SerPlan& first = plans.front();
  const bool first_camera = first.two_d && (first.reciprocal || !scanning);
  std::string document = std::string(clock) + (!first.two_d   ? " Spectrum image"
                                               : first_camera ? " CCD Acquire"
                                                              : " Scanning Acquire");
  if (!first.two_d && first.scan_axes == 0) document = std::string(clock) + " Spectrum positions";
  EmiString(out, 0x00, 0x01, document);
  EmiString(out, 0x12, 0x07, "4.5.1101.0");  // TIA version
  EmiString(out, 0x00, 0x05, "Normal");
  EmiBool(out, 0x02, 0x05, true);
  EmiInt(out, 0x06, 0x05, 0);

  for (size_t i = 0; i < plans.size(); ++i) {
    const SerPlan& plan = plans[i];
    const bool camera = plan.two_d && (plan.reciprocal || !scanning);
    const std::string object = ObjectName(plan, camera);
    const char* display = !plan.two_d ? " Display"
                          : camera    ? " Image Display"
                                      : " Scanning Display1";
    EmiString(out, 0x00, 0x01, object + display);
    EmiString(out, 0x00, 0x05, plan.two_d ? "Normal Image Display" : "Normal Spectrum Display");
    EmiInt(out, 0x00, 0x06, 1);
    EmiString(out, 0x00, 0x01, object);
    EmiInt(out, 0x02, 0x06, plan.size_x);
    EmiInt(out, 0x03, 0x06, plan.size_y);
    EmiString(out, 0x00, 0x04, plan.reciprocal ? "Reciprocal Space" : "Real Space");
    EmiString(out, 0x40, 0x04, "D:\\TIA Data\\" + ser_names[i]);
    static constexpr uint8_t kInfoLink[] = {0x32, 0x00, 0x42, 0x04, 0x02, 0x00};
    out.PutBytes(kInfoLink, sizeof kInfoLink);
    const std::string uuid = UuidFrom(emi_name + "/" + std::to_string(i) + "/" +
                                      acq.fields.acquired.value_or("") + "/" + object);
    EmiString(out, 0x19, 0x04, ObjectInfoXml(acq, plan, scanning, camera, when, uuid));
    EmiString(out, 0x00, 0x05, "Normal");
    EmiBool(out, 0x02, 0x05, true);
    EmiString(out, 0x00, 0x0a, plan.reciprocal ? "Reciprocal Space" : "Real Space");
    EmiString(out, 0x00, 0x01, plan.two_d ? (plan.reciprocal ? "DN" : "Electrons") : "Counts");
  }
  static constexpr uint8_t kTrailer[] = {0x00, 0x00, 0x03, 0x4d, 0x00,
                                         0x08, 0x00, 0x00, 0x00, 0x00};
  out.PutBytes(kTrailer, sizeof kTrailer);
  return out.bytes();
}

bool EndsWithIgnoringCase(const std::string& s, std::string_view suffix) {
  if (s.size() < suffix.size()) return false;
  for (size_t i = 0; i < suffix.size(); ++i) {
    const char a = s[s.size() - suffix.size() + i];
    if (std::tolower(static_cast<unsigned char>(a)) != suffix[i]) return false;
  }
  return true;
}

}  // namespace

Result<std::vector<fs::path>> WriteTia(const fs::path& emi_path, const Acquisition& acquisition) {
  if (!EndsWithIgnoringCase(emi_path.filename().string(), ".emi") ||
      emi_path.stem().string().empty()) {
    return Status::InvalidArgument(emi_path.string() +
                                   ": a TIA dataset is written as NAME.emi (with NAME_<n>.ser)");
  }
  // TIA keeps local clock time without a zone; its SER tags hold it as 32-bit Unix time.
  SCISEARCH_ASSIGN_OR_RETURN(const CivilTime when,
                             AcquiredClock(acquisition.fields, 1970, 2105, "", "TIA"));
  if (acquisition.signals.empty()) {
    return Status::InvalidArgument("acquisition.signals is empty: nothing to write to " +
                                   emi_path.string());
  }
  if (acquisition.signals.size() > kMaxSignals) {
    return Status::InvalidArgument(
        "acquisition.signals has " + std::to_string(acquisition.signals.size()) +
        " entries; TIA datasets hold at most " + std::to_string(kMaxSignals));
  }
  std::vector<SerPlan> plans;
  plans.reserve(acquisition.signals.size());
  for (size_t i = 0; i < acquisition.signals.size(); ++i) {
    SCISEARCH_ASSIGN_OR_RETURN(SerPlan plan,
                               PlanSer(acquisition.signals[i], i, acquisition.fields));
    plans.push_back(std::move(plan));
  }

  const std::string stem = emi_path.stem().string();
  std::vector<fs::path> written = {emi_path};
  std::vector<std::string> ser_names;
  const uint32_t unix_time = uint32_t(UnixSeconds(when));
  for (size_t i = 0; i < plans.size(); ++i) {
    ser_names.push_back(stem + "_" + std::to_string(i + 1) + ".ser");
    const fs::path ser_path = emi_path.parent_path() / ser_names.back();
    const std::vector<uint8_t> ser = BuildSer(plans[i], unix_time);
    SCISEARCH_RETURN_IF_ERROR(WriteBytesAtomically(ser_path, ser.data(), ser.size()));
    written.push_back(ser_path);
  }
  const std::vector<uint8_t> emi =
      BuildEmi(acquisition, plans, ser_names, when, emi_path.filename().string());
  SCISEARCH_RETURN_IF_ERROR(WriteBytesAtomically(emi_path, emi.data(), emi.size()));
  return written;
}

}  // namespace scisearch::simulate
