// Round trips of the TIA (.emi + .ser) and DigitalMicrograph (DM3/DM4) writers through
// formats::OpenDataset, byte-level checks against the format descriptions (Boothroyd's SER
// and DM3 descriptions: SER magic 0x4949 0x0197 and version 0x0220, DM's big-endian header,
// byte-order flag and closing zero bytes), and the writers' refusals of bad input.
//
// Expected values come from the Acquisition each test writes (converted to the units the
// format stores where the format prescribes them: TIA calibrates in metres and eV) and from
// the format descriptions, never from reading a file back with the code under test.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "formats/formats.h"
#include "formats/normalise.h"
#include "simulate/writers.h"
#include "test_util.h"
#include "writer_test_util.h"

namespace scisearch::simulate {
namespace {

namespace fs = std::filesystem;
using formats::Axis;
using formats::DType;
using formats::Mode;
using formats::NdArray;
using scisearch::testing::ReadFileBytes;
using scisearch::testing::TempDir;

// ---- Building acquisitions ------------------------------------------------------------

// Distinct, non-trivial bytes for any dtype: element i gets bytes from a simple hash, so a
// transposed, flipped or shifted read shows as a mismatch. Floats stay finite.
NdArray PatternArray(DType dtype, std::vector<int64_t> shape) {
  NdArray a;
  a.dtype = dtype;
  a.shape = std::move(shape);
  const size_t esize = formats::DTypeSize(dtype);
  const int64_t n = a.ElementCount();
  a.bytes.resize(size_t(n) * esize);
  uint32_t h = 2166136261u;
  for (int64_t i = 0; i < n; ++i) {
    uint8_t* p = a.bytes.data() + size_t(i) * esize;
    switch (dtype) {
      case DType::kFloat32: {
        const float v = float(i % 977) * 0.25f - 17.5f;
        std::memcpy(p, &v, 4);
        break;
      }
      case DType::kFloat64: {
        const double v = double(i % 1013) * 0.125 - 3.0;
        std::memcpy(p, &v, 8);
        break;
      }
      case DType::kComplex64: {
        const std::complex<float> v(float(i % 31) - 4.5f, float(i % 17) * 0.5f);
        std::memcpy(p, &v, 8);
        break;
      }
      case DType::kComplex128: {
        const std::complex<double> v(double(i % 29) - 2.25, double(i % 13) * 1.5);
        std::memcpy(p, &v, 16);
        break;
      }
      case DType::kBool:
        p[0] = uint8_t((i * 7 + 3) % 5 < 2);
        break;
      default:
        for (size_t b = 0; b < esize; ++b) {
          h = (h ^ uint32_t(i * 131 + b)) * 16777619u;
          p[b] = uint8_t(h >> 11);
        }
    }
  }
  return a;
}

SignalToWrite MakeSignal(std::string name, std::vector<Axis> axes, DType dtype) {
  SignalToWrite s;
  s.name = std::move(name);
  std::vector<int64_t> shape;
  for (const Axis& a : axes) shape.push_back(a.size);
  s.axes = std::move(axes);
  s.data = PatternArray(dtype, shape);
  return s;
}

Acquisition BaseAcquisition(Mode mode) {
  Acquisition acq;
  acq.fields.acquired = "2016-02-21T17:53:06";  // a Sunday
  acq.fields.instrument = "Talos F200X";
  acq.fields.mode = mode;
  acq.fields.beam_energy_kev = 200.0;
  acq.fields.magnification = 115000.0;
  acq.operator_name = "ERIC";
  acq.sample_description = "PbSe w lig, grid 3";
  return acq;
}

Acquisition TemImage(DType dtype) {
  Acquisition acq = BaseAcquisition(Mode::kTemImage);
  acq.fields.magnification = 19500.0;
  acq.fields.pixel_size_m = 0.125e-9;  // the writers take it from the axes: they agree
  acq.fields.pixel_size_units = "m";
  acq.signals.push_back(MakeSignal(
      "BM-Ceta", {MakeAxis("y", 24, 0.125, -1.5, "nm"), MakeAxis("x", 32, 0.125, 2.25, "nm")},
      dtype));
  return acq;
}

Acquisition StemTwoDetectors() {
  Acquisition acq = BaseAcquisition(Mode::kStemImage);
  acq.fields.acquired = "2019-04-25T09:03:17";
  acq.fields.instrument = "Titan Cubed";
  acq.fields.beam_energy_kev = 300.0;
  acq.fields.magnification = 1300000.0;
  const std::vector<Axis> axes = {MakeAxis("y", 20, 0.0078125, 0.0, "nm"),
                                  MakeAxis("x", 16, 0.0078125, 0.0, "nm")};
  acq.signals.push_back(MakeSignal("HAADF", axes, DType::kUInt16));
  acq.signals.push_back(MakeSignal("BF", axes, DType::kInt32));
  return acq;
}

Acquisition Spectrum(DType dtype) {
  Acquisition acq = BaseAcquisition(Mode::kSpectrum);
  acq.signals.push_back(MakeSignal("EELS", {MakeAxis("energy", 300, 0.5, -20.0, "eV")}, dtype));
  return acq;
}

Acquisition SpectrumImage(DType dtype) {
  Acquisition acq = BaseAcquisition(Mode::kSpectrumImage);
  acq.signals.push_back(MakeSignal(
      "EDX",
      {MakeAxis("scan_y", 4, 0.5, 1.0, "nm", true), MakeAxis("scan_x", 5, 0.5, -2.0, "nm", true),
       MakeAxis("energy", 64, 10.0, -50.0, "eV")},
      dtype));
  return acq;
}

Acquisition ImageSeries(DType dtype) {
  Acquisition acq = BaseAcquisition(Mode::kTemImage);
  acq.fields.magnification = 5500.0;
  acq.signals.push_back(
      MakeSignal("BM-Ceta",
                 {MakeAxis("frame", 3, 1.0, 0.0, "", true), MakeAxis("y", 12, 0.25, 0.0, "nm"),
                  MakeAxis("x", 10, 0.25, 0.0, "nm")},
                 dtype));
  return acq;
}

Acquisition Diffraction() {
  Acquisition acq = BaseAcquisition(Mode::kDiffraction);
  acq.fields.magnification.reset();  // diffraction has a camera length, not a magnification
  acq.signals.push_back(MakeSignal(
      "BM-Ceta", {MakeAxis("y", 16, 0.0625, -0.5, "1/nm"), MakeAxis("x", 16, 0.0625, -0.5, "1/nm")},
      DType::kFloat32));
  return acq;
}

// ---- What the readers must report -----------------------------------------------------

// The axes as TIA stores them: lengths in metres (1/m), energies in eV; series axes named
// by what they hold.
std::vector<Axis> TiaAxes(const std::vector<Axis>& axes) {
  std::vector<Axis> out;
  size_t series = 0;
  while (series < axes.size() && axes[series].navigate) ++series;
  std::vector<size_t> scans;
  for (size_t k = 0; k < axes.size(); ++k) {
    Axis a = axes[k];
    const std::string units = formats::NormaliseUnits(a.units);
    if (auto f = formats::LengthToSi(units); f && !a.units.empty()) {
      a.scale = a.scale * *f;
      a.offset = a.offset * *f;
      a.units = units.rfind("1/", 0) == 0 ? "1/m" : "m";
      if (k < series) scans.push_back(k);
    } else if (units == "keV") {
      a.scale = a.scale * 1000.0;
      a.offset = a.offset * 1000.0;
      a.units = "eV";
    }
    out.push_back(a);
  }
  if (scans.size() == 1) out[scans[0]].name = "scan";
  if (scans.size() == 2) {
    out[scans[0]].name = "scan_y";
    out[scans[1]].name = "scan_x";
  }
  return out;
}

struct Expected {
  Mode mode = Mode::kUnknown;
  std::optional<double> pixel_size_m;
  std::optional<std::string> pixel_size_units;
};

void ExpectAxesEqual(const std::vector<Axis>& got, const std::vector<Axis>& want,
                     const std::string& where) {
  ASSERT_EQ(got.size(), want.size()) << where;
  for (size_t k = 0; k < want.size(); ++k) {
    SCOPED_TRACE(where + " axis " + std::to_string(k));
    EXPECT_EQ(got[k].name, want[k].name);
    EXPECT_EQ(got[k].size, want[k].size);
    EXPECT_EQ(got[k].scale, want[k].scale);
    EXPECT_EQ(got[k].offset, want[k].offset);
    EXPECT_EQ(got[k].units, want[k].units);
    EXPECT_EQ(got[k].navigate, want[k].navigate);
  }
}

// Opens `path`, and checks every signal of `acq` against what the reader reports: shape,
// dtype, axes (`want_axes`), pixel bytes, and the normalised fields.
void ExpectRoundTrip(const fs::path& path, const std::string& format, const Acquisition& acq,
                     const std::function<std::vector<Axis>(const std::vector<Axis>&)>& want_axes,
                     const std::vector<Expected>& expected) {
  auto reader = formats::OpenDataset(path);
  ASSERT_TRUE(reader.ok()) << reader.status().message();
  const formats::Dataset& ds = (*reader)->dataset();
  EXPECT_EQ(ds.format, format);
  ASSERT_EQ(ds.signals.size(), acq.signals.size());
  ASSERT_EQ(expected.size(), acq.signals.size());
  for (size_t i = 0; i < acq.signals.size(); ++i) {
    const SignalToWrite& in = acq.signals[i];
    const formats::Signal& out = ds.signals[i];
    const std::string where = path.filename().string() + " signal " + std::to_string(i);
    SCOPED_TRACE(where);
    EXPECT_EQ(out.dtype, in.data.dtype);
    EXPECT_EQ(out.shape, in.data.shape);
    ExpectAxesEqual(out.axes, want_axes(in.axes), where);
    auto data = (*reader)->Read(i, formats::Hyperslab::All(out.shape));
    ASSERT_TRUE(data.ok()) << data.status().message();
    EXPECT_EQ(data->dtype, in.data.dtype);
    EXPECT_EQ(data->shape, in.data.shape);
    EXPECT_TRUE(data->bytes == in.data.bytes) << "pixel data differ";

    const formats::NormalisedFields& f = out.fields;
    EXPECT_EQ(f.acquired, acq.fields.acquired);
    EXPECT_EQ(f.instrument, acq.fields.instrument);
    EXPECT_EQ(f.beam_energy_kev, acq.fields.beam_energy_kev);
    EXPECT_EQ(f.magnification, acq.fields.magnification);
    EXPECT_EQ(f.mode, expected[i].mode) << formats::ModeName(f.mode);
    EXPECT_EQ(f.detector, std::optional<std::string>(in.name));
    EXPECT_EQ(f.pixel_size_units, expected[i].pixel_size_units);
    if (acq.fields.pixel_size_m) {
      ASSERT_TRUE(f.pixel_size_m.has_value());
      EXPECT_DOUBLE_EQ(*f.pixel_size_m, *acq.fields.pixel_size_m);
      EXPECT_EQ(f.pixel_size_units, acq.fields.pixel_size_units);
    }
    if (expected[i].pixel_size_m) {
      ASSERT_TRUE(f.pixel_size_m.has_value());
      EXPECT_DOUBLE_EQ(*f.pixel_size_m, *expected[i].pixel_size_m);
    } else {
      EXPECT_FALSE(f.pixel_size_m.has_value());
    }
  }
}

std::vector<Axis> SameAxes(const std::vector<Axis>& axes) { return axes; }

uint16_t Le16(const std::vector<uint8_t>& b, size_t at) { return uint16_t(b[at] | b[at + 1] << 8); }
uint32_t Le32(const std::vector<uint8_t>& b, size_t at) {
  return uint32_t(b[at]) | uint32_t(b[at + 1]) << 8 | uint32_t(b[at + 2]) << 16 |
         uint32_t(b[at + 3]) << 24;
}
uint64_t Be(const std::vector<uint8_t>& b, size_t at, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v = v << 8 | b[at + size_t(i)];
  return v;
}

// The value at `path` (object keys) in a signal's metadata, or null.
formats::Metadata At(const formats::Metadata& m, std::initializer_list<std::string> path) {
  const formats::Metadata* node = &m;
  for (const std::string& key : path) {
    if (!node->is_object() || !node->contains(key)) return nullptr;
    node = &(*node)[key];
  }
  return *node;
}

// ---- TIA ------------------------------------------------------------------------------

class TiaWriterTest : public ::testing::Test {
 protected:
  fs::path Emi(const std::string& stem) { return dir_.path() / "session" / (stem + ".emi"); }
  TempDir dir_;
};

TEST_F(TiaWriterTest, TemImage) {
  const Acquisition acq = TemImage(DType::kUInt16);
  auto written = WriteTia(Emi("18.57.51 CCD Acquire"), acq);
  ASSERT_TRUE(written.ok()) << written.status().message();
  ASSERT_EQ(written->size(), 2u);
  EXPECT_EQ((*written)[0], Emi("18.57.51 CCD Acquire"));
  EXPECT_EQ((*written)[1].filename(), "18.57.51 CCD Acquire_1.ser");
  ExpectRoundTrip((*written)[0], "tia", acq, TiaAxes, {{Mode::kTemImage, 0.125e-9, "m"}});
  // Opening the .ser finds its .emi and the same dataset.
  auto via_ser = formats::OpenDataset((*written)[1]);
  ASSERT_TRUE(via_ser.ok()) << via_ser.status().message();
  EXPECT_EQ((*via_ser)->dataset().path, (*written)[0]);
}

TEST_F(TiaWriterTest, StemImageWithTwoDetectorsWritesTwoSerFiles) {
  const Acquisition acq = StemTwoDetectors();
  auto written = WriteTia(Emi("09.03.17 Scanning Acquire"), acq);
  ASSERT_TRUE(written.ok()) << written.status().message();
  ASSERT_EQ(written->size(), 3u);
  EXPECT_EQ((*written)[1].filename(), "09.03.17 Scanning Acquire_1.ser");
  EXPECT_EQ((*written)[2].filename(), "09.03.17 Scanning Acquire_2.ser");
  const Expected stem{Mode::kStemImage, 0.0078125e-9, "m"};
  ExpectRoundTrip((*written)[0], "tia", acq, TiaAxes, {stem, stem});
}

TEST_F(TiaWriterTest, Spectrum) {
  const Acquisition acq = Spectrum(DType::kInt32);
  auto written = WriteTia(Emi("11.34.01 Spectrum positions"), acq);
  ASSERT_TRUE(written.ok()) << written.status().message();
  ExpectRoundTrip((*written)[0], "tia", acq, TiaAxes, {{Mode::kSpectrum, {}, {}}});
}

TEST_F(TiaWriterTest, SpectrumInKeVIsStoredInEv) {
  Acquisition acq = Spectrum(DType::kFloat32);
  acq.signals[0].axes[0] = MakeAxis("energy", 300, 0.01, -0.2, "keV");
  auto written = WriteTia(Emi("kev"), acq);
  ASSERT_TRUE(written.ok()) << written.status().message();
  ExpectRoundTrip((*written)[0], "tia", acq, TiaAxes, {{Mode::kSpectrum, {}, {}}});
}

// A spectrum image with the HAADF image of its scan, as TIA saves them together.
Acquisition SpectrumImageWithSurvey(DType dtype) {
  Acquisition acq = SpectrumImage(dtype);
  acq.signals.push_back(
      MakeSignal("HAADF", {MakeAxis("y", 4, 0.5, 1.0, "nm"), MakeAxis("x", 5, 0.5, -2.0, "nm")},
                 DType::kUInt16));
  return acq;
}

TEST_F(TiaWriterTest, SpectrumImage) {
  const Acquisition acq = SpectrumImageWithSurvey(DType::kUInt32);
  auto written = WriteTia(Emi("11.56.24 Spectrum image"), acq);
  ASSERT_TRUE(written.ok()) << written.status().message();
  // The scan step is the pixel size of a spectrum image.
  ExpectRoundTrip((*written)[0], "tia", acq, TiaAxes,
                  {{Mode::kSpectrumImage, 0.5e-9, "m"}, {Mode::kStemImage, 0.5e-9, "m"}});
  // Series dimensions are listed fastest first (Boothroyd): x (5) then y (4), in metres.
  const std::vector<uint8_t> ser = ReadFileBytes((*written)[1]);
  ASSERT_GT(ser.size(), 40u);
  EXPECT_EQ(Le32(ser, 6), 0x4120u);   // 1-D elements
  EXPECT_EQ(Le32(ser, 10), 0x4142u);  // tags with time and position
  EXPECT_EQ(Le32(ser, 14), 20u);      // TotalNumberElements
  EXPECT_EQ(Le32(ser, 30), 2u);       // NumberDimensions
  EXPECT_EQ(Le32(ser, 34), 5u);       // first dimension: x
}

TEST_F(TiaWriterTest, SeriesOfImages) {
  const Acquisition acq = ImageSeries(DType::kFloat32);
  auto written = WriteTia(Emi("CCD Preview"), acq);
  ASSERT_TRUE(written.ok()) << written.status().message();
  ExpectRoundTrip((*written)[0], "tia", acq, TiaAxes, {{Mode::kTemImage, 0.25e-9, "m"}});
}

TEST_F(TiaWriterTest, DiffractionPatternIsInReciprocalSpace) {
  const Acquisition acq = Diffraction();
  auto written = WriteTia(Emi("17.51.15 CCD Acquire"), acq);
  ASSERT_TRUE(written.ok()) << written.status().message();
  ExpectRoundTrip((*written)[0], "tia", acq, TiaAxes, {{Mode::kDiffraction, 0.0625e9, "1/m"}});
}

TEST_F(TiaWriterTest, EveryTiaDataTypeRoundTrips) {
  for (DType dtype :
       {DType::kUInt8, DType::kUInt16, DType::kUInt32, DType::kInt8, DType::kInt16, DType::kInt32,
        DType::kFloat32, DType::kFloat64, DType::kComplex64, DType::kComplex128}) {
    SCOPED_TRACE(std::string(formats::DTypeName(dtype)));
    const Acquisition acq = TemImage(dtype);
    auto written =
        WriteTia(Emi(std::string("dtype_") + std::string(formats::DTypeName(dtype))), acq);
    ASSERT_TRUE(written.ok()) << written.status().message();
    ExpectRoundTrip((*written)[0], "tia", acq, TiaAxes, {{Mode::kTemImage, 0.125e-9, "m"}});
  }
}

TEST_F(TiaWriterTest, SerHeaderFollowsTheFormatDescription) {
  const Acquisition acq = TemImage(DType::kInt16);
  auto written = WriteTia(Emi("header"), acq);
  ASSERT_TRUE(written.ok()) << written.status().message();
  const std::vector<uint8_t> ser = ReadFileBytes((*written)[1]);
  ASSERT_GT(ser.size(), 64u);
  EXPECT_EQ(Le16(ser, 0), 0x4949);    // ByteOrder: little-endian
  EXPECT_EQ(Le16(ser, 2), 0x0197);    // SeriesID
  EXPECT_EQ(Le16(ser, 4), 0x0220);    // SeriesVersion: 64-bit offsets
  EXPECT_EQ(Le32(ser, 6), 0x4122u);   // 2-D elements
  EXPECT_EQ(Le32(ser, 10), 0x4152u);  // time-only tags
  EXPECT_EQ(Le32(ser, 14), 1u);       // TotalNumberElements
  EXPECT_EQ(Le32(ser, 18), 1u);       // ValidNumberElements
  // A single image is a series of one "Number" dimension, as TIA writes it.
  EXPECT_EQ(Le32(ser, 30), 1u);
  EXPECT_EQ(Le32(ser, 34), 1u);
  // The element: DataType 5 (int16), 32 x 24, the last stored row first (bottom-up).
  const uint64_t offsets_at = uint64_t(Le32(ser, 22)) | uint64_t(Le32(ser, 26)) << 32;
  const uint64_t element =
      uint64_t(Le32(ser, size_t(offsets_at))) | uint64_t(Le32(ser, size_t(offsets_at) + 4)) << 32;
  ASSERT_LT(element + 50 + 32 * 2, ser.size());
  EXPECT_EQ(Le16(ser, size_t(element) + 40), 5);
  EXPECT_EQ(Le32(ser, size_t(element) + 42), 32u);
  EXPECT_EQ(Le32(ser, size_t(element) + 46), 24u);
  const std::vector<uint8_t>& pixels = acq.signals[0].data.bytes;
  EXPECT_EQ(0, std::memcmp(ser.data() + element + 50, pixels.data() + 23 * 32 * 2, 32 * 2));
  // The .emi: TIA's object-store header.
  const std::vector<uint8_t> emi = ReadFileBytes((*written)[0]);
  ASSERT_GT(emi.size(), 12u);
  EXPECT_EQ(emi[0], 'J');
  EXPECT_EQ(emi[1], 'K');
}

TEST_F(TiaWriterTest, EmiObjectInfoHoldsTheMicroscopeMetadata) {
  const Acquisition acq = StemTwoDetectors();
  auto written = WriteTia(Emi("meta"), acq);
  ASSERT_TRUE(written.ok()) << written.status().message();
  auto reader = formats::OpenDataset((*written)[0]);
  ASSERT_TRUE(reader.ok()) << reader.status().message();
  for (const formats::Signal& s : (*reader)->dataset().signals) {
    const formats::Metadata& info = s.metadata["ObjectInfo"];
    // 2019-04-25 was a Thursday; TIA writes the C library's asctime form.
    EXPECT_EQ(At(info, {"AcquireDate"}), "Thu Apr 25 09:03:17 2019");
    EXPECT_EQ(At(info, {"ExperimentalDescription", "Microscope"}), "Microscope Titan Cubed");
    EXPECT_EQ(At(info, {"ExperimentalDescription", "User"}), "ERIC");
    EXPECT_EQ(At(info, {"ExperimentalDescription", "Specimen"}), "PbSe w lig, grid 3");
    EXPECT_EQ(At(info, {"ExperimentalDescription", "High tension [kV]"}), 300);
    EXPECT_EQ(At(info, {"ExperimentalDescription", "Magnification [x]"}), 1300000);
    EXPECT_EQ(At(info, {"ExperimentalConditions", "MicroscopeConditions", "AcceleratingVoltage"}),
              300000);
    EXPECT_EQ(At(info, {"AcquireInfo", "Magnification"}), "1300000 X");
  }
}

TEST_F(TiaWriterTest, SameAcquisitionGivesSameBytes) {
  const Acquisition acq = SpectrumImage(DType::kInt16);
  auto a = WriteTia(Emi("a/same"), acq);
  auto b = WriteTia(Emi("b/same"), acq);
  ASSERT_TRUE(a.ok() && b.ok());
  for (size_t i = 0; i < a->size(); ++i) {
    EXPECT_TRUE(ReadFileBytes((*a)[i]) == ReadFileBytes((*b)[i])) << (*a)[i];
  }
}

TEST_F(TiaWriterTest, RefusesBadInput) {
  auto expect_invalid = [&](const Acquisition& acq, const std::string& mentions,
                            const fs::path& path) {
    auto written = WriteTia(path, acq);
    ASSERT_FALSE(written.ok()) << "accepted input that should fail: " << mentions;
    EXPECT_EQ(written.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(written.status().message().find(mentions), std::string::npos)
        << written.status().message();
    EXPECT_FALSE(fs::exists(path)) << "left a file behind";
  };
  const fs::path emi = Emi("bad");
  {
    Acquisition acq = TemImage(DType::kUInt16);
    acq.fields.acquired.reset();
    expect_invalid(acq, "acquired", emi);
    acq.fields.acquired = "21/02/2016 17:53";
    expect_invalid(acq, "acquired", emi);
    acq.fields.acquired = "2015-02-29T10:00:00";  // not a leap year
    expect_invalid(acq, "acquired", emi);
  }
  {
    Acquisition acq = TemImage(DType::kUInt16);
    acq.signals.clear();
    expect_invalid(acq, "signals is empty", emi);
  }
  {
    Acquisition acq = TemImage(DType::kUInt16);
    acq.signals[0].axes.pop_back();
    expect_invalid(acq, "axes has 1 entries but data.shape has 2", emi);
  }
  {
    Acquisition acq = TemImage(DType::kUInt16);
    acq.signals[0].axes[1].size = 31;
    expect_invalid(acq, "signals[0] (BM-Ceta).axes[1] (x) has size 31", emi);
  }
  {
    Acquisition acq = TemImage(DType::kUInt16);
    acq.signals[0].data.bytes.pop_back();
    expect_invalid(acq, "data.bytes", emi);
  }
  for (DType dtype : {DType::kBool, DType::kInt64, DType::kRGB8}) {
    expect_invalid(TemImage(dtype), "data.dtype", emi);
  }
  {
    Acquisition acq = SpectrumImage(DType::kUInt16);
    acq.signals[0].axes[0].navigate = false;  // a frame axis before navigate ones
    expect_invalid(acq, "navigate axis after a frame axis", emi);
  }
  {
    Acquisition acq = ImageSeries(DType::kUInt16);
    acq.signals[0] = MakeSignal("x",
                                {MakeAxis("frame", 1, 1, 0, "", true), MakeAxis("y", 4, 1, 0, "nm"),
                                 MakeAxis("x", 4, 1, 0, "nm")},
                                DType::kUInt16);
    expect_invalid(acq, "navigate axis of size 1", emi);
  }
  {
    Acquisition acq = Spectrum(DType::kUInt16);
    acq.signals[0].axes[0].units = "nm";
    expect_invalid(acq, "eV", emi);
  }
  {
    Acquisition acq = TemImage(DType::kUInt16);
    acq.signals[0].axes[0].units = "1/nm";  // one real-space axis, one reciprocal
    expect_invalid(acq, "one space per image", emi);
  }
  {
    Acquisition acq = TemImage(DType::kUInt16);
    acq.signals[1 - 1].axes = {MakeAxis("a", 24, 1, 0, "", true),
                               MakeAxis("b", 32, 1, 0, "", true)};
    expect_invalid(acq, "0 frame", emi);
  }
  expect_invalid(TemImage(DType::kUInt16), "NAME.emi", dir_.path() / "not_an_emi.ser");
  // A refused second signal writes nothing at all, not even the first .ser.
  {
    Acquisition acq = StemTwoDetectors();
    acq.signals[1].data.dtype = DType::kBool;
    expect_invalid(acq, "signals[1] (BF)", emi);
    EXPECT_FALSE(fs::exists(emi.parent_path() / "bad_1.ser"));
  }
}

// ---- DigitalMicrograph ----------------------------------------------------------------

class DmWriterTest : public ::testing::TestWithParam<int> {
 protected:
  int version() const { return GetParam(); }
  std::string format() const { return version() == 4 ? "dm4" : "dm3"; }
  fs::path File(const std::string& stem) {
    return dir_.path() / "session" / (stem + "." + format());
  }
  TempDir dir_;
};

INSTANTIATE_TEST_SUITE_P(Versions, DmWriterTest, ::testing::Values(3, 4),
                         [](const auto& info) { return "DM" + std::to_string(info.param); });

TEST_P(DmWriterTest, TemImage) {
  const Acquisition acq = TemImage(DType::kInt16);
  const fs::path path = File("Image 1");
  ASSERT_TRUE(WriteDigitalMicrograph(path, acq, version()).ok());
  ExpectRoundTrip(path, format(), acq, SameAxes, {{Mode::kTemImage, 0.125e-9, "m"}});
}

TEST_P(DmWriterTest, StemImageWithTwoDetectorsWritesTwoImages) {
  const Acquisition acq = StemTwoDetectors();
  const fs::path path = File("HAADF BF");
  const Status st = WriteDigitalMicrograph(path, acq, version());
  ASSERT_TRUE(st.ok()) << st.message();
  const Expected stem{Mode::kStemImage, 0.0078125e-9, "m"};
  ExpectRoundTrip(path, format(), acq, SameAxes, {stem, stem});
  auto reader = formats::OpenDataset(path);
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ((*reader)->dataset().signals[0].name, "HAADF");
  EXPECT_EQ((*reader)->dataset().signals[1].name, "BF");
}

TEST_P(DmWriterTest, Spectrum) {
  const Acquisition acq = Spectrum(DType::kFloat32);
  const fs::path path = File("EELS Spectrum");
  const Status st = WriteDigitalMicrograph(path, acq, version());
  ASSERT_TRUE(st.ok()) << st.message();
  ExpectRoundTrip(path, format(), acq, SameAxes, {{Mode::kSpectrum, {}, {}}});
}

TEST_P(DmWriterTest, SpectrumImageIsStoredEnergySlowest) {
  const Acquisition acq = SpectrumImageWithSurvey(DType::kUInt32);
  const fs::path path = File("EDS SI");
  const Status st = WriteDigitalMicrograph(path, acq, version());
  ASSERT_TRUE(st.ok()) << st.message();
  ExpectRoundTrip(path, format(), acq, SameAxes,
                  {{Mode::kSpectrumImage, 0.5e-9, "m"}, {Mode::kStemImage, 0.5e-9, "m"}});
  // DM lists the fastest axis first: x (5), y (4), energy (64).
  auto reader = formats::OpenDataset(path);
  ASSERT_TRUE(reader.ok());
  const formats::Metadata& image = (*reader)->dataset().signals[0].metadata;
  EXPECT_EQ(At(image, {"ImageData", "Dimensions"}), formats::Metadata({5, 4, 64}));
  EXPECT_EQ(At(image, {"ImageTags", "Meta Data", "Signal"}), "X-ray");
  EXPECT_EQ(At(image, {"ImageTags", "Meta Data", "Format"}), "Spectrum image");
}

TEST_P(DmWriterTest, SpectrumLineScan) {
  Acquisition acq = BaseAcquisition(Mode::kSpectrumImage);
  acq.signals.push_back(MakeSignal(
      "EELS", {MakeAxis("scan", 6, 2.0, 0.0, "nm", true), MakeAxis("energy", 40, 0.25, 280, "eV")},
      DType::kFloat32));
  const fs::path path = File("line");
  const Status st = WriteDigitalMicrograph(path, acq, version());
  ASSERT_TRUE(st.ok()) << st.message();
  ExpectRoundTrip(path, format(), acq, SameAxes, {{Mode::kSpectrum, 2e-9, "m"}});
}

TEST_P(DmWriterTest, SeriesOfImages) {
  const Acquisition acq = ImageSeries(DType::kUInt16);
  const fs::path path = File("stack");
  const Status st = WriteDigitalMicrograph(path, acq, version());
  ASSERT_TRUE(st.ok()) << st.message();
  ExpectRoundTrip(path, format(), acq, SameAxes, {{Mode::kTemImage, 0.25e-9, "m"}});
}

TEST_P(DmWriterTest, DiffractionPattern) {
  const Acquisition acq = Diffraction();
  const fs::path path = File("SAED");
  const Status st = WriteDigitalMicrograph(path, acq, version());
  ASSERT_TRUE(st.ok()) << st.message();
  ExpectRoundTrip(path, format(), acq, SameAxes, {{Mode::kDiffraction, 0.0625e9, "1/m"}});
}

TEST_P(DmWriterTest, CalibrationsThatFloat32CannotHoldRoundTripExactly) {
  Acquisition acq = TemImage(DType::kFloat32);
  acq.signals[0].axes[0] = MakeAxis("y", 24, 0.1, 0.3, "nm");
  acq.signals[0].axes[1] = MakeAxis("x", 32, 1.0 / 3.0, -0.7, "um");
  acq.fields.pixel_size_m = 1e-6 / 3.0;
  const fs::path path = File("thirds");
  const Status st = WriteDigitalMicrograph(path, acq, version());
  ASSERT_TRUE(st.ok()) << st.message();
  ExpectRoundTrip(path, format(), acq, SameAxes, {{Mode::kTemImage, 1e-6 / 3.0, "m"}});
}

TEST_P(DmWriterTest, EveryDmDataTypeRoundTrips) {
  for (DType dtype : {DType::kBool, DType::kInt8, DType::kUInt8, DType::kInt16, DType::kUInt16,
                      DType::kInt32, DType::kUInt32, DType::kInt64, DType::kUInt64, DType::kFloat32,
                      DType::kFloat64, DType::kComplex64, DType::kComplex128, DType::kRGB8}) {
    SCOPED_TRACE(std::string(formats::DTypeName(dtype)));
    const Acquisition acq = TemImage(dtype);
    const fs::path path = File(std::string("dtype_") + std::string(formats::DTypeName(dtype)));
    const Status st = WriteDigitalMicrograph(path, acq, version());
    ASSERT_TRUE(st.ok()) << st.message();
    ExpectRoundTrip(path, format(), acq, SameAxes, {{Mode::kTemImage, 0.125e-9, "m"}});
  }
}

TEST_P(DmWriterTest, HeaderAndTagsFollowTheFormatDescription) {
  const Acquisition acq = StemTwoDetectors();
  const fs::path path = File("header");
  ASSERT_TRUE(WriteDigitalMicrograph(path, acq, version()).ok());
  const std::vector<uint8_t> bytes = ReadFileBytes(path);
  ASSERT_GT(bytes.size(), 64u);
  const bool dm4 = version() == 4;
  EXPECT_EQ(Be(bytes, 0, 4), uint64_t(version()));                       // big-endian version
  EXPECT_EQ(Be(bytes, 4, dm4 ? 8 : 4), bytes.size() - (dm4 ? 24 : 16));  // root length
  EXPECT_EQ(Be(bytes, dm4 ? 12 : 8, 4), 1u);                             // little-endian values
  const size_t root = dm4 ? 16 : 12;
  EXPECT_EQ(bytes[root], 1);      // the root group is sorted
  EXPECT_EQ(bytes[root + 1], 0);  // and closed
  for (size_t i = bytes.size() - 8; i < bytes.size(); ++i) EXPECT_EQ(bytes[i], 0) << i;

  auto reader = formats::OpenDataset(path);
  ASSERT_TRUE(reader.ok()) << reader.status().message();
  for (const formats::Signal& s : (*reader)->dataset().signals) {
    const formats::Metadata& m = s.metadata;
    // The document's thumbnail is ImageList[0], as DigitalMicrograph writes it.
    EXPECT_EQ(At(m, {"Document", "Thumbnails"})[0]["ImageIndex"], 0);
    const formats::Metadata tags = At(m, {"ImageTags"});
    EXPECT_EQ(At(tags, {"Microscope Info", "Voltage"}), 300000.0);
    EXPECT_EQ(At(tags, {"Microscope Info", "Indicated Magnification"}), 1300000.0);
    EXPECT_EQ(At(tags, {"Microscope Info", "Operation Mode"}), "SCANNING");
    EXPECT_EQ(At(tags, {"Microscope Info", "Microscope"}), "Titan Cubed");
    EXPECT_EQ(At(tags, {"Microscope Info", "Operator"}), "ERIC");
    EXPECT_EQ(At(tags, {"Session Info", "Operator"}), "ERIC");
    EXPECT_EQ(At(tags, {"Session Info", "Specimen"}), "PbSe w lig, grid 3");
    EXPECT_EQ(At(tags, {"DataBar", "Acquisition Date"}), "4/25/2019");
    EXPECT_EQ(At(tags, {"DataBar", "Acquisition Time"}), "9:03:17 AM");
    // FILETIME of 2019-04-25 09:03:17: (1556183,  Unix seconds 1556182997) + 11644473600, x 1e7.
    EXPECT_EQ(At(tags, {"DataBar", "Acquisition Time (OS)"}), (1556182997.0 + 11644473600.0) * 1e7);
    EXPECT_EQ(At(m, {"ImageData", "PixelDepth"}), s.dtype == DType::kUInt16 ? 2 : 4);
  }
  EXPECT_EQ(At((*reader)->dataset().signals[0].metadata, {"ImageData", "DataType"}), 10);  // uint16
  EXPECT_EQ(At((*reader)->dataset().signals[1].metadata, {"ImageData", "DataType"}), 7);   // int32
}

TEST_P(DmWriterTest, AfternoonTimeAndSemMode) {
  Acquisition acq = TemImage(DType::kUInt8);
  acq.fields.acquired = "2020-12-31T23:59:58";
  acq.fields.mode = Mode::kSemImage;
  const fs::path path = File("sem");
  ASSERT_TRUE(WriteDigitalMicrograph(path, acq, version()).ok());
  ExpectRoundTrip(path, format(), acq, SameAxes, {{Mode::kSemImage, 0.125e-9, "m"}});
}

TEST_P(DmWriterTest, SameAcquisitionGivesSameBytes) {
  const Acquisition acq = SpectrumImage(DType::kInt16);
  ASSERT_TRUE(WriteDigitalMicrograph(dir_.path() / "a" / "same.dm", acq, version()).ok());
  ASSERT_TRUE(WriteDigitalMicrograph(dir_.path() / "b" / "same.dm", acq, version()).ok());
  EXPECT_TRUE(ReadFileBytes(dir_.path() / "a" / "same.dm") ==
              ReadFileBytes(dir_.path() / "b" / "same.dm"));
}

TEST_P(DmWriterTest, RefusesBadInput) {
  const fs::path path = File("bad");
  auto expect_invalid = [&](const Acquisition& acq, const std::string& mentions, int v) {
    const Status st = WriteDigitalMicrograph(path, acq, v);
    ASSERT_FALSE(st.ok()) << "accepted input that should fail: " << mentions;
    EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(st.message().find(mentions), std::string::npos) << st.message();
    EXPECT_FALSE(fs::exists(path)) << "left a file behind";
  };
  expect_invalid(TemImage(DType::kUInt16), "version 5", 5);
  {
    Acquisition acq = TemImage(DType::kUInt16);
    acq.fields.acquired.reset();
    expect_invalid(acq, "acquired", version());
    acq.fields.acquired = "yesterday";
    expect_invalid(acq, "acquired", version());
  }
  {
    Acquisition acq = TemImage(DType::kUInt16);
    acq.signals.clear();
    expect_invalid(acq, "signals is empty", version());
  }
  {
    Acquisition acq = TemImage(DType::kUInt16);
    acq.signals[0].data.shape = {24, 32, 1};
    expect_invalid(acq, "axes has 2 entries but data.shape has 3", version());
  }
  {
    Acquisition acq = TemImage(DType::kUInt16);
    acq.signals[0].axes[0].size = 25;
    expect_invalid(acq, "axes[0] (y) has size 25 but data.shape[0] is 24", version());
  }
  expect_invalid(TemImage(DType::kRGBA8), "data.dtype rgba8", version());
  {
    Acquisition acq = TemImage(DType::kUInt16);
    acq.signals[0].data.bytes.resize(10);
    expect_invalid(acq, "data.bytes holds 10 bytes", version());
  }
  {
    Acquisition acq = TemImage(DType::kUInt16);
    acq.signals[0].axes[1].scale = 0;
    expect_invalid(acq, "scale", version());
  }
  {
    Acquisition acq = SpectrumImage(DType::kUInt16);
    acq.signals[0].axes[0].navigate = false;
    expect_invalid(acq, "navigate axis after a frame axis", version());
  }
  {
    Acquisition acq = TemImage(DType::kUInt16);
    acq.signals.push_back(MakeSignal(
        "4D",
        {MakeAxis("scan_y", 2, 1, 0, "nm", true), MakeAxis("scan_x", 2, 1, 0, "nm", true),
         MakeAxis("y", 4, 1, 0, "1/nm"), MakeAxis("x", 4, 1, 0, "1/nm")},
        DType::kUInt16));
    expect_invalid(acq, "signals[1] (4D) has rank 4", version());
  }
  {
    Acquisition acq = TemImage(DType::kUInt16);
    acq.signals[0] = MakeSignal(
        "line", {MakeAxis("y", 1, 1, 0, "nm"), MakeAxis("x", 8, 1, 0, "nm")}, DType::kUInt16);
    expect_invalid(acq, "size 1", version());
  }
}

// The simulator writes thousands of small files: each must take well under a millisecond
// or two of CPU, so that 10,000 files take seconds.
TEST(TiaDmWriterSpeed, ManySmallFiles) {
  TempDir dir;
  const Acquisition image = StemTwoDetectors();
  const Acquisition si = SpectrumImage(DType::kUInt16);
  const auto start = std::chrono::steady_clock::now();
  constexpr int kFiles = 200;
  for (int i = 0; i < kFiles; ++i) {
    const fs::path base = dir.path() / std::to_string(i % 10);
    ASSERT_TRUE(WriteTia(base / ("t" + std::to_string(i) + ".emi"), i % 2 ? image : si).ok());
    ASSERT_TRUE(WriteDigitalMicrograph(base / ("d" + std::to_string(i) + ".dm3"), image, 3).ok());
    ASSERT_TRUE(WriteDigitalMicrograph(base / ("d" + std::to_string(i) + ".dm4"), si, 4).ok());
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // 600 datasets; generous bound so that sanitizer builds pass too.
  EXPECT_LT(seconds, 30.0);
  RecordProperty("seconds_per_600_datasets", std::to_string(seconds));
}

}  // namespace
}  // namespace scisearch::simulate
