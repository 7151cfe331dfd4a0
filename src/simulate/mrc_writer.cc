// MRC2014 writer with the FEI2 extended header that Thermo Fisher software (Velox, EPU,
// Tomography) writes.
//
// Layout (MRC2014, https://www.ccpem.ac.uk/mrc_format/mrc2014.php): a 1024-byte header of
// little-endian 4-byte words, NSYMBT bytes of extended header, then the data with columns
// (NX) fastest, rows (NY), then sections (NZ). The extended header holds one FEI2 record
// per section, 888 bytes each (Thermo Fisher "MRC2014 file format specification", metadata
// version 2), the fields packed without padding, little-endian.
//
// Choices, each as the instruments make it:
//   - MODE from the dtype: int8 0, int16 1, float32 2, complex64 4, uint16 6; uint8 is mode 0
//     with IMOD's stamp and flags saying "bytes are unsigned" (how IMOD/SerialEM mark them).
//   - Frames (rank 2, or rank 3 that is not a volume) are an image stack: ISPG 0, MZ 1.
//     Volumes are ISPG 1, MZ = NZ. CELLA is the pixel size in Å times MX/MY/MZ.
//   - DMIN/DMAX/DMEAN/RMS are computed from the data (complex data: DMAX < DMIN and RMS -1,
//     MRC2014's "not computed").
//   - The FEI record: Timestamp (OLE date of the acquisition, local clock time), Microscope
//     type, Application, HT (V), Pixel size X/Y (m), Instrument mode (1 TEM, 2 STEM),
//     Projection mode (1 imaging, 2 diffraction), Magnification, and the detector as Camera
//     name (TEM) or STEM Detector name (STEM), with the bitmask bits of the fields written.
//     Every section gets the same record (one acquisition).
//   - The sample description, when there is one, is the first label (printable ASCII, 80
//     bytes); Velox writes no labels otherwise.
//   - Axis offsets go to ORIGIN (Å); a stack's frame axis has no calibration in MRC.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
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

constexpr size_t kHeaderBytes = 1024;
constexpr size_t kFeiRecordBytes = 888;  // FEI2, metadata version 2
constexpr int32_t kImodStamp = 1146047817;
constexpr int32_t kMrcVersion = 20140;

// Byte offsets of the FEI2 record fields this writer fills (Thermo Fisher MRC2014
// specification: the fields in order, packed).
namespace fei {
constexpr size_t kMetadataSize = 0;
constexpr size_t kMetadataVersion = 4;
constexpr size_t kBitmask1 = 8;
constexpr size_t kTimestamp = 12;
constexpr size_t kMicroscopeType = 20;
constexpr size_t kApplication = 52;
constexpr size_t kApplicationVersion = 68;
constexpr size_t kHt = 84;
constexpr size_t kPixelSizeX = 156;
constexpr size_t kPixelSizeY = 164;
constexpr size_t kInstrumentMode = 244;
constexpr size_t kProjectionMode = 248;
constexpr size_t kMagnification = 289;
constexpr size_t kBitmask2 = 297;
constexpr size_t kBinningWidth = 427;
constexpr size_t kBinningHeight = 431;
constexpr size_t kCameraName = 435;
constexpr size_t kReadoutArea = 451;  // left, top, right, bottom
constexpr size_t kBitmask3 = 490;
constexpr size_t kStemDetectorName = 519;
constexpr size_t kScanSize = 587;  // left, top, right, bottom
constexpr size_t kFullScanFovX = 603;
constexpr size_t kFullScanFovY = 611;
constexpr size_t kBitmask4 = 748;
constexpr size_t kStringBytes = 16;
}  // namespace fei

// ---- Little-endian byte writing -----------------------------------------------------------

void PutText(uint8_t* at, std::string_view text, size_t width) {
  std::memcpy(at, text.data(), std::min(text.size(), width));
}

// ---- Validation helpers -------------------------------------------------------------------

struct ModeWords {
  int32_t mode;
  bool unsigned_bytes;
};

std::optional<ModeWords> MrcModeFor(DType dtype) {
  switch (dtype) {
    case DType::kInt8:
      return ModeWords{0, false};
    case DType::kUInt8:
      return ModeWords{0, true};
    case DType::kInt16:
      return ModeWords{1, false};
    case DType::kFloat32:
      return ModeWords{2, false};
    case DType::kComplex64:
      return ModeWords{4, false};
    case DType::kUInt16:
      return ModeWords{6, false};
    default:
      return std::nullopt;
  }
}

// Data statistics for DMIN/DMAX/DMEAN/RMS.
struct Stats {
  float min = 0, max = -1, mean = -2, rms = -1;  // "not computed" per MRC2014
};

template <typename T>
Stats ComputeStats(const std::vector<uint8_t>& bytes) {
  const size_t n = bytes.size() / sizeof(T);
  if (n == 0) return {};
  double lo = std::numeric_limits<double>::infinity(), hi = -lo, sum = 0, sum2 = 0;
  for (size_t i = 0; i < n; ++i) {
    const double v = double(LoadLittle<T>(bytes.data() + i * sizeof(T)));
    if (!std::isfinite(v)) continue;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    sum += v;
    sum2 += v * v;
  }
  if (!(lo <= hi)) return {};
  const double mean = sum / double(n);
  Stats s;
  s.min = float(lo);
  s.max = float(hi);
  s.mean = float(mean);
  s.rms = float(std::sqrt(std::max(0.0, sum2 / double(n) - mean * mean)));
  return s;
}

Stats StatsFor(const formats::NdArray& data) {
  switch (data.dtype) {
    case DType::kInt8:
      return ComputeStats<int8_t>(data.bytes);
    case DType::kUInt8:
      return ComputeStats<uint8_t>(data.bytes);
    case DType::kInt16:
      return ComputeStats<int16_t>(data.bytes);
    case DType::kUInt16:
      return ComputeStats<uint16_t>(data.bytes);
    case DType::kFloat32:
      return ComputeStats<float>(data.bytes);
    default:
      return {};  // complex: not computed
  }
}

// What the software that writes MRC for each kind of acquisition calls itself.
struct Application {
  const char* name;
  const char* version;
};

Application ApplicationFor(Mode mode) {
  switch (mode) {
    case Mode::kStemImage:
      return {"Velox", "3.7.0.872"};
    case Mode::kVolume:
      return {"Tomography", "5.8.0"};
    default:
      return {"EPU", "2.12.1"};
  }
}

struct Layout {
  int32_t nx = 1, ny = 1, nz = 1;
  bool volume = false;
  // Å per pixel of x, y, z (0 when uncalibrated), offsets in Å.
  double ax = 0, ay = 0, az = 0;
  double ox = 0, oy = 0, oz = 0;
  std::optional<double> pixel_x_m, pixel_y_m;
  CivilTime acquired;  // the FEI Timestamp
};

// Checks the acquisition and works out the file's geometry.
Result<Layout> Plan(const Acquisition& acquisition, const std::string& where) {
  if (acquisition.signals.size() != 1) {
    return Status::InvalidArgument(where + ": signals: MRC holds exactly one signal, got " +
                                   std::to_string(acquisition.signals.size()));
  }
  const SignalToWrite& signal = acquisition.signals.front();
  const formats::NdArray& data = signal.data;
  const formats::NormalisedFields& fields = acquisition.fields;
  const size_t rank = data.shape.size();
  if (rank != 2 && rank != 3) {
    return Status::InvalidArgument(where + ": data.shape: rank " + std::to_string(rank) +
                                   "; MRC holds an image (rank 2) or a stack or volume (rank 3)");
  }
  if (!MrcModeFor(data.dtype)) {
    return Status::InvalidArgument(
        where + ": data.dtype " + std::string(formats::DTypeName(data.dtype)) +
        " has no MRC mode (int8, uint8, int16, uint16, float32, complex64)");
  }
  SCISEARCH_RETURN_IF_ERROR(ValidateSignalArray(signal, where + ": " + SignalLabel(0, signal),
                                                std::numeric_limits<int32_t>::max(),
                                                kMaxSignalElements));
  SCISEARCH_ASSIGN_OR_RETURN(const CivilTime acquired,
                             AcquiredClock(fields, 1970, 2200, where, "the FEI Timestamp"));
  switch (fields.mode) {
    case Mode::kTemImage:
    case Mode::kStemImage:
    case Mode::kDiffraction:
    case Mode::kImage:
    case Mode::kUnknown:
      break;
    case Mode::kVolume:
      if (rank != 3) {
        return Status::InvalidArgument(where + ": fields.mode volume needs rank-3 data, got rank " +
                                       std::to_string(rank));
      }
      break;
    default:
      return Status::InvalidArgument(where + ": fields.mode '" +
                                     std::string(formats::ModeName(fields.mode)) +
                                     "' is not written to MRC (TEM, STEM, diffraction, volume, "
                                     "image)");
  }
  if (fields.instrument && fields.instrument->size() > fei::kStringBytes) {
    return Status::InvalidArgument(where + ": fields.instrument '" + *fields.instrument +
                                   "' is longer than the 16 bytes of FEI 'Microscope type'");
  }
  const std::string detector = fields.detector.value_or(signal.name);
  if (detector.size() > fei::kStringBytes) {
    return Status::InvalidArgument(where + ": fields.detector '" + detector +
                                   "' is longer than the 16 bytes of the FEI detector name");
  }
  SCISEARCH_RETURN_IF_ERROR(ValidatePositiveFields(fields, where));

  Layout layout;
  layout.acquired = acquired;
  layout.nx = int32_t(data.shape[rank - 1]);
  layout.ny = int32_t(data.shape[rank - 2]);
  layout.nz = rank == 3 ? int32_t(data.shape[0]) : 1;
  layout.volume = fields.mode == Mode::kVolume;
  // Frame axes (and the z axis of a volume): Å per pixel and offsets in Å.
  const Axis& x = signal.axes[rank - 1];
  const Axis& y = signal.axes[rank - 2];
  SCISEARCH_ASSIGN_OR_RETURN(const FrameMetres metres,
                             FrameMetresPerUnit(y, x, fields, where, "MRC"));
  const std::optional<double>& x_si = metres.x;
  const std::optional<double>& y_si = metres.y;
  if (x_si) {
    layout.pixel_x_m = x.scale * *x_si;
    layout.pixel_y_m = y.scale * *y_si;
    layout.ax = *layout.pixel_x_m * 1e10;
    layout.ay = *layout.pixel_y_m * 1e10;
    layout.ox = x.offset * *x_si * 1e10;
    layout.oy = y.offset * *y_si * 1e10;
  }
  if (layout.volume) {
    const Axis& z = signal.axes[0];
    SCISEARCH_ASSIGN_OR_RETURN(std::optional<double> z_si, MetresPerUnit(z, where, "MRC"));
    if (z_si.has_value() != x_si.has_value()) {
      return Status::InvalidArgument(where + ": axes '" + z.name + "' and '" + x.name +
                                     "': one is calibrated and the other is not");
    }
    if (z_si) {
      layout.az = z.scale * *z_si * 1e10;
      layout.oz = z.offset * *z_si * 1e10;
    }
  }
  return layout;
}

std::vector<uint8_t> BuildHeader(const Acquisition& acquisition, const Layout& layout,
                                 const ModeWords& mode, const Stats& stats) {
  std::vector<uint8_t> h(kHeaderBytes, 0);
  uint8_t* p = h.data();
  const bool calibrated = layout.ax > 0;
  const int32_t mz = layout.volume ? layout.nz : 1;
  StoreLittle<int32_t>(p + 0, layout.nx);
  StoreLittle<int32_t>(p + 4, layout.ny);
  StoreLittle<int32_t>(p + 8, layout.nz);
  StoreLittle<int32_t>(p + 12, mode.mode);
  // NXSTART, NYSTART, NZSTART stay 0: the offsets go to ORIGIN.
  StoreLittle<int32_t>(p + 28, layout.nx);
  StoreLittle<int32_t>(p + 32, layout.ny);
  StoreLittle<int32_t>(p + 36, mz);
  if (calibrated) {
    StoreLittle<float>(p + 40, float(layout.ax * layout.nx));
    StoreLittle<float>(p + 44, float(layout.ay * layout.ny));
    StoreLittle<float>(p + 48, float((layout.volume ? layout.az : layout.ax) * mz));
  }
  StoreLittle<float>(p + 52, 90.0f);
  StoreLittle<float>(p + 56, 90.0f);
  StoreLittle<float>(p + 60, 90.0f);
  StoreLittle<int32_t>(p + 64, 1);  // MAPC: columns are X
  StoreLittle<int32_t>(p + 68, 2);  // MAPR: rows are Y
  StoreLittle<int32_t>(p + 72, 3);  // MAPS: sections are Z
  StoreLittle<float>(p + 76, stats.min);
  StoreLittle<float>(p + 80, stats.max);
  StoreLittle<float>(p + 84, stats.mean);
  StoreLittle<int32_t>(p + 88, layout.volume ? 1 : 0);  // ISPG: 0 image stack, 1 volume
  StoreLittle<int32_t>(p + 92, int32_t(kFeiRecordBytes * size_t(layout.nz)));
  PutText(p + 104, "FEI2", 4);
  StoreLittle<int32_t>(p + 108, kMrcVersion);
  if (mode.mode == 0) {
    // IMOD's stamp and flags: bit 0 set means signed bytes.
    StoreLittle<int32_t>(p + 152, kImodStamp);
    StoreLittle<int32_t>(p + 156, mode.unsigned_bytes ? 0 : 1);
  }
  StoreLittle<float>(p + 196, float(layout.ox));
  StoreLittle<float>(p + 200, float(layout.oy));
  StoreLittle<float>(p + 204, float(layout.volume ? layout.oz : 0.0));
  PutText(p + 208, "MAP ", 4);
  p[212] = 0x44;  // MACHST: little-endian
  p[213] = 0x44;
  StoreLittle<float>(p + 216, stats.rms);
  // The sample description, when the user typed one, as a label (printable ASCII, 80 bytes).
  std::vector<std::string> labels;
  if (!acquisition.sample_description.empty()) {
    std::string text;
    for (char c : acquisition.sample_description) {
      text.push_back(c >= 0x20 && c < 0x7f ? c : ' ');
    }
    labels.push_back(text.substr(0, 80));
  }
  StoreLittle<int32_t>(p + 220, int32_t(labels.size()));
  for (size_t i = 0; i < labels.size(); ++i) PutText(p + 224 + 80 * i, labels[i], 80);
  return h;
}

std::vector<uint8_t> BuildFeiRecord(const Acquisition& acquisition, const Layout& layout) {
  const formats::NormalisedFields& fields = acquisition.fields;
  const SignalToWrite& signal = acquisition.signals.front();
  std::vector<uint8_t> r(kFeiRecordBytes, 0);
  uint8_t* p = r.data();
  uint32_t mask1 = 0, mask2 = 0, mask3 = 0, mask4 = 0;
  StoreLittle<int32_t>(p + fei::kMetadataSize, int32_t(kFeiRecordBytes));
  StoreLittle<int32_t>(p + fei::kMetadataVersion, 2);

  const CivilTime& clock = layout.acquired;
  const double unix_days = double(DaysFromCivil(clock.year, clock.month, clock.day));
  const int64_t second_of_day = int64_t(clock.hour) * 3600 + clock.minute * 60 + clock.second;
  StoreLittle<double>(p + fei::kTimestamp, 25569.0 + unix_days + double(second_of_day) / 86400.0);
  mask1 |= 1u << 0;
  if (fields.instrument) {
    PutText(p + fei::kMicroscopeType, *fields.instrument, fei::kStringBytes);
    mask1 |= 1u << 1;
  }
  const Application app = ApplicationFor(fields.mode);
  PutText(p + fei::kApplication, app.name, fei::kStringBytes);
  PutText(p + fei::kApplicationVersion, app.version, fei::kStringBytes);
  mask1 |= (1u << 3) | (1u << 4);
  if (fields.beam_energy_kev) {
    StoreLittle<double>(p + fei::kHt, *fields.beam_energy_kev * 1000.0);
    mask1 |= 1u << 5;
  }
  if (layout.pixel_x_m) {
    StoreLittle<double>(p + fei::kPixelSizeX, *layout.pixel_x_m);
    StoreLittle<double>(p + fei::kPixelSizeY, *layout.pixel_y_m);
    mask1 |= (1u << 14) | (1u << 15);
  }
  const bool stem = fields.mode == Mode::kStemImage;
  const bool tem = fields.mode == Mode::kTemImage || fields.mode == Mode::kDiffraction;
  if (stem || tem) {
    StoreLittle<int32_t>(p + fei::kInstrumentMode, stem ? 2 : 1);
    StoreLittle<int32_t>(p + fei::kProjectionMode, fields.mode == Mode::kDiffraction ? 2 : 1);
    mask1 |= (1u << 25) | (1u << 26);
  }
  if (fields.magnification) {
    StoreLittle<double>(p + fei::kMagnification, *fields.magnification);
    mask1 |= 1u << 31;
  }
  const std::string detector = fields.detector.value_or(signal.name);
  if (stem) {
    if (!detector.empty()) {
      PutText(p + fei::kStemDetectorName, detector, fei::kStringBytes);
      mask3 |= 1u << 7;
    }
    StoreLittle<int32_t>(p + fei::kScanSize + 8, layout.nx);
    StoreLittle<int32_t>(p + fei::kScanSize + 12, layout.ny);
    mask3 |= 0xfu << 17;
    if (layout.pixel_x_m) {
      StoreLittle<double>(p + fei::kFullScanFovX, *layout.pixel_x_m * layout.nx);
      StoreLittle<double>(p + fei::kFullScanFovY, *layout.pixel_y_m * layout.ny);
      mask3 |= (1u << 21) | (1u << 22);
    }
  } else {
    if (!detector.empty()) {
      PutText(p + fei::kCameraName, detector, fei::kStringBytes);
      mask2 |= 1u << 19;
    }
    StoreLittle<int32_t>(p + fei::kBinningWidth, 1);
    StoreLittle<int32_t>(p + fei::kBinningHeight, 1);
    StoreLittle<int32_t>(p + fei::kReadoutArea + 8, layout.nx);
    StoreLittle<int32_t>(p + fei::kReadoutArea + 12, layout.ny);
    mask2 |= (1u << 17) | (1u << 18) | (0xfu << 20);
  }
  StoreLittle<uint32_t>(p + fei::kBitmask1, mask1);
  StoreLittle<uint32_t>(p + fei::kBitmask2, mask2);
  StoreLittle<uint32_t>(p + fei::kBitmask3, mask3);
  StoreLittle<uint32_t>(p + fei::kBitmask4, mask4);
  return r;
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

}  // namespace

Status WriteMrc(const fs::path& path, const Acquisition& acquisition) {
  const std::string where = path.string();
  SCISEARCH_ASSIGN_OR_RETURN(Layout layout, Plan(acquisition, where));
  const formats::NdArray& data = acquisition.signals.front().data;
  const ModeWords mode = *MrcModeFor(data.dtype);
  const std::vector<uint8_t> header = BuildHeader(acquisition, layout, mode, StatsFor(data));
  const std::vector<uint8_t> record = BuildFeiRecord(acquisition, layout);

  return WriteFileAtomically(path, [&](const fs::path& temporary) -> Status {
    std::unique_ptr<std::FILE, FileCloser> file(std::fopen(temporary.c_str(), "wb"));
    if (!file) return Status::IoError(temporary.string() + ": cannot create");
    bool ok = std::fwrite(header.data(), 1, header.size(), file.get()) == header.size();
    for (int32_t section = 0; ok && section < layout.nz; ++section) {
      ok = std::fwrite(record.data(), 1, record.size(), file.get()) == record.size();
    }
    // NdArray bytes are little-endian, the order MACHST declares.
    if (ok && !data.bytes.empty()) {
      ok = std::fwrite(data.bytes.data(), 1, data.bytes.size(), file.get()) == data.bytes.size();
    }
    if (std::fclose(file.release()) != 0) ok = false;
    if (!ok) return Status::IoError(where + ": write failed (disk full?)");
    return Status::Ok();
  });
}

}  // namespace scisearch::simulate
