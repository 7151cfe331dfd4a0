// Round trips of the MRC and FEI TIFF writers through formats::OpenDataset, byte-level
// checks against the format descriptions (MRC2014 and the Thermo Fisher FEI2 extended
// header; TIFF 6.0 and the FEI xT metadata tag), and the writers' refusals of bad input.
//
// Expected values come from the Acquisition each test writes and from the format
// descriptions, never from reading a file back with the code under test.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "formats/formats.h"
#include "simulate/writers.h"
#include "test_paths.h"
#include "writer_test_util.h"

namespace scisearch::simulate {
namespace {

namespace fs = std::filesystem;
using formats::Axis;
using formats::DType;
using formats::Mode;
using formats::NdArray;
using scisearch::testing::ReadFileBytes;
using test::MakeArray;
using test::OpenWritten;
using test::WriterTest;

// ---- Helpers ---------------------------------------------------------------------------

// A deterministic pattern that uses the whole range of the type.
NdArray Pattern(DType dtype, std::vector<int64_t> shape) {
  switch (dtype) {
    case DType::kInt8:
      return MakeArray<int8_t>(dtype, shape,
                               [](int64_t i) { return int8_t((i * 37) % 256 - 128); });
    case DType::kUInt8:
      return MakeArray<uint8_t>(dtype, shape,
                                [](int64_t i) { return uint8_t((i * 37 + 3) % 256); });
    case DType::kInt16:
      return MakeArray<int16_t>(dtype, shape,
                                [](int64_t i) { return int16_t((i * 4099) % 65536 - 32768); });
    case DType::kUInt16:
      return MakeArray<uint16_t>(dtype, shape,
                                 [](int64_t i) { return uint16_t((i * 4099 + 7) % 65536); });
    case DType::kFloat32:
      return MakeArray<float>(dtype, shape,
                              [](int64_t i) { return float(std::sin(i * 0.1) * 1e3); });
    case DType::kComplex64: {
      NdArray re = MakeArray<float>(DType::kFloat32, shape, [](int64_t i) { return float(i) - 5; });
      NdArray out;
      out.dtype = dtype;
      out.shape = shape;
      for (size_t i = 0; i < re.bytes.size(); i += 4) {
        out.bytes.insert(out.bytes.end(), re.bytes.begin() + i, re.bytes.begin() + i + 4);
        const float im = 0.25f * float(i);
        uint8_t b[4];
        std::memcpy(b, &im, 4);
        out.bytes.insert(out.bytes.end(), b, b + 4);
      }
      return out;
    }
    default:
      return MakeArray<double>(dtype, shape, [](int64_t i) { return double(i); });
  }
}

Axis FrameAxis(int64_t n) { return Axis{"frame", n, 1.0, 0.0, "", true}; }
Axis Spatial(const char* name, int64_t n, double scale, const char* units, double offset = 0) {
  return Axis{name, n, scale, offset, units, false};
}

Acquisition OneSignal(formats::NormalisedFields fields, std::vector<Axis> axes, NdArray data,
                      std::string name = "") {
  Acquisition a;
  a.fields = std::move(fields);
  a.operator_name = "jdoe";
  a.sample_description = "PbSe w lig";
  a.signals.push_back(SignalToWrite{std::move(name), std::move(axes), std::move(data)});
  return a;
}

// The little-endian T at `at` of `b` (the test's own bounds check, then LoadLittle).
template <typename T>
T LittleEndian(const std::vector<uint8_t>& b, size_t at) {
  EXPECT_LE(at + sizeof(T), b.size());
  if (at + sizeof(T) > b.size()) return T();
  return LoadLittle<T>(b.data() + at);
}

struct Opened {
  std::unique_ptr<formats::DatasetReader> reader;
  const formats::Signal& signal() const { return reader->dataset().signals.at(0); }
};

Opened OpenOrDie(const fs::path& p) { return Opened{OpenWritten(p)}; }

std::vector<uint8_t> ReadAllBytes(Opened& o) {
  auto data = o.reader->Read(0, formats::Hyperslab::All(o.signal().shape));
  EXPECT_TRUE(data.ok()) << data.status().message();
  return data.ok() ? data->bytes : std::vector<uint8_t>();
}

void ExpectAxis(const Axis& got, const Axis& want) {
  EXPECT_EQ(got.name, want.name);
  EXPECT_EQ(got.size, want.size);
  EXPECT_EQ(got.scale, want.scale) << got.name;
  EXPECT_EQ(got.offset, want.offset) << got.name;
  EXPECT_EQ(got.units, want.units) << got.name;
  EXPECT_EQ(got.navigate, want.navigate) << got.name;
}

void ExpectInvalid(const Status& s, const std::string& mentions) {
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << s.message();
  EXPECT_NE(s.message().find(mentions), std::string::npos)
      << "'" << s.message() << "' does not mention '" << mentions << "'";
}

formats::NormalisedFields TemFields() {
  formats::NormalisedFields f;
  f.acquired = "2016-06-13T17:06:40";
  f.instrument = "Talos F200X";
  f.mode = Mode::kTemImage;
  f.beam_energy_kev = 200;
  f.magnification = 43000;
  f.pixel_size_m = 0.5e-10;  // 0.5 Å, the axes' scale
  f.pixel_size_units = "m";
  f.detector = "BM-Ceta";
  return f;
}

// ---- MRC --------------------------------------------------------------------------------

// The fields the FEI2 record and the FEI TIFF tag hold: every one must come back. The
// magnification to `magnification_tolerance` (relative): FEI TIFF stores the canvas width
// it implies, so that it comes back to rounding of two reals.
void ExpectFields(const formats::NormalisedFields& got, const formats::NormalisedFields& want,
                  double magnification_tolerance = 0) {
  EXPECT_EQ(got.acquired, want.acquired);
  EXPECT_EQ(got.instrument, want.instrument);
  EXPECT_EQ(got.mode, want.mode);
  ASSERT_TRUE(got.beam_energy_kev);
  EXPECT_DOUBLE_EQ(*got.beam_energy_kev, *want.beam_energy_kev);
  ASSERT_EQ(got.magnification.has_value(), want.magnification.has_value());
  if (want.magnification) {
    EXPECT_NEAR(*got.magnification, *want.magnification,
                *want.magnification * magnification_tolerance);
  }
  EXPECT_EQ(got.pixel_size_m, want.pixel_size_m);
  EXPECT_EQ(got.pixel_size_units, "m");
  EXPECT_EQ(got.detector, want.detector);
}

TEST_F(WriterTest, MrcStemImageRoundTrips) {
  formats::NormalisedFields f = TemFields();
  f.mode = Mode::kStemImage;
  f.detector = "HAADF";
  f.instrument = "Spectra";
  f.beam_energy_kev = 300;
  f.magnification = 1.8e6;
  f.pixel_size_m = 0.25e-10;
  const Acquisition a = OneSignal(f, {Spatial("y", 24, 0.25, "A"), Spatial("x", 32, 0.25, "A")},
                                  Pattern(DType::kUInt16, {24, 32}));
  const fs::path p = dir_ / "HAADF 1.8 Mx.mrc";
  ASSERT_TRUE(WriteMrc(p, a).ok());

  Opened o = OpenOrDie(p);
  ASSERT_TRUE(o.reader);
  EXPECT_EQ(o.reader->dataset().format, "mrc");
  const formats::Signal& s = o.signal();
  // One section that is not a volume reads back as an image.
  EXPECT_EQ(s.shape, (std::vector<int64_t>{24, 32}));
  EXPECT_EQ(s.dtype, DType::kUInt16);
  ASSERT_EQ(s.axes.size(), 2u);
  ExpectAxis(s.axes[0], Spatial("y", 24, 0.25, "A"));
  ExpectAxis(s.axes[1], Spatial("x", 32, 0.25, "A"));
  ExpectFields(s.fields, f);
  EXPECT_EQ(s.name, "HAADF");
  EXPECT_EQ(ReadAllBytes(o), a.signals[0].data.bytes);
}

TEST_F(WriterTest, MrcTemStackRoundTrips) {
  const formats::NormalisedFields f = TemFields();
  const Acquisition a = OneSignal(
      f, {FrameAxis(5), Spatial("y", 16, 0.5, "A", 4.0), Spatial("x", 20, 0.5, "A", -2.5)},
      Pattern(DType::kFloat32, {5, 16, 20}));
  const fs::path p = dir_ / "stack.mrcs";
  ASSERT_TRUE(WriteMrc(p, a).ok());
  Opened o = OpenOrDie(p);
  ASSERT_TRUE(o.reader);
  const formats::Signal& s = o.signal();
  EXPECT_EQ(s.shape, (std::vector<int64_t>{5, 16, 20}));
  EXPECT_EQ(s.dtype, DType::kFloat32);
  for (size_t k = 0; k < 3; ++k) ExpectAxis(s.axes[k], a.signals[0].axes[k]);
  ExpectFields(s.fields, f);
  EXPECT_EQ(ReadAllBytes(o), a.signals[0].data.bytes);
  // One FEI2 record per section.
  EXPECT_EQ(s.metadata["extended_header"]["record_count"], 5);
  // A slab reads the right elements: section 3, row 2, columns 4..6 (float32, 4 bytes each).
  formats::Hyperslab slab{{3, 2, 4}, {1, 1, 3}, {1, 1, 1}};
  auto part = o.reader->Read(0, slab);
  ASSERT_TRUE(part.ok()) << part.status().message();
  const size_t first = size_t((3 * 16 + 2) * 20 + 4) * 4;
  EXPECT_EQ(part->bytes, std::vector<uint8_t>(a.signals[0].data.bytes.begin() + first,
                                              a.signals[0].data.bytes.begin() + first + 12));
}

TEST_F(WriterTest, MrcVolumeRoundTrips) {
  formats::NormalisedFields f = TemFields();
  f.mode = Mode::kVolume;
  f.magnification.reset();
  f.pixel_size_m = 2e-10;
  f.detector = "Falcon 4i";
  const Acquisition a = OneSignal(
      f, {Spatial("z", 6, 4.0, "A", 8.0), Spatial("y", 10, 2.0, "A"), Spatial("x", 12, 2.0, "A")},
      Pattern(DType::kInt8, {6, 10, 12}));
  const fs::path p = dir_ / "tomogram.rec";
  ASSERT_TRUE(WriteMrc(p, a).ok());
  Opened o = OpenOrDie(p);
  ASSERT_TRUE(o.reader);
  const formats::Signal& s = o.signal();
  EXPECT_EQ(s.shape, (std::vector<int64_t>{6, 10, 12}));
  EXPECT_EQ(s.dtype, DType::kInt8);
  for (size_t k = 0; k < 3; ++k) ExpectAxis(s.axes[k], a.signals[0].axes[k]);
  EXPECT_EQ(s.fields.mode, Mode::kVolume);
  EXPECT_EQ(s.fields.acquired, f.acquired);
  EXPECT_EQ(s.fields.instrument, f.instrument);
  EXPECT_DOUBLE_EQ(*s.fields.beam_energy_kev, 200);
  EXPECT_FALSE(s.fields.magnification);
  EXPECT_EQ(s.fields.pixel_size_m, 2e-10);
  EXPECT_EQ(s.fields.detector, "Falcon 4i");
  EXPECT_EQ(ReadAllBytes(o), a.signals[0].data.bytes);
}

TEST_F(WriterTest, MrcEveryDtypeRoundTrips) {
  for (DType dtype : {DType::kInt8, DType::kUInt8, DType::kInt16, DType::kUInt16, DType::kFloat32,
                      DType::kComplex64}) {
    SCOPED_TRACE(std::string(formats::DTypeName(dtype)));
    const Acquisition a =
        OneSignal(TemFields(), {FrameAxis(3), Spatial("y", 7, 0.5, "A"), Spatial("x", 9, 0.5, "A")},
                  Pattern(dtype, {3, 7, 9}));
    const fs::path p = dir_ / (std::string(formats::DTypeName(dtype)) + ".mrc");
    ASSERT_TRUE(WriteMrc(p, a).ok());
    Opened o = OpenOrDie(p);
    ASSERT_TRUE(o.reader);
    EXPECT_EQ(o.signal().dtype, dtype);
    EXPECT_EQ(o.signal().shape, (std::vector<int64_t>{3, 7, 9}));
    EXPECT_EQ(ReadAllBytes(o), a.signals[0].data.bytes);
  }
}

TEST_F(WriterTest, MrcConvertsLengthUnitsToAngstrom) {
  formats::NormalisedFields f = TemFields();
  f.pixel_size_m = 0.137e-9;
  const Acquisition a = OneSignal(f, {Spatial("y", 8, 0.137, "nm"), Spatial("x", 8, 0.137, "nm")},
                                  Pattern(DType::kInt16, {8, 8}));
  const fs::path p = dir_ / "nm.mrc";
  ASSERT_TRUE(WriteMrc(p, a).ok());
  Opened o = OpenOrDie(p);
  ASSERT_TRUE(o.reader);
  EXPECT_EQ(o.signal().axes[1].units, "A");
  // CELLA is float32: the scale comes back to float precision.
  EXPECT_NEAR(o.signal().axes[1].scale, 1.37, 1.37e-7);
  EXPECT_DOUBLE_EQ(*o.signal().fields.pixel_size_m, 0.137e-9);
}

TEST_F(WriterTest, MrcUncalibratedStaysUncalibrated) {
  formats::NormalisedFields f = TemFields();
  f.pixel_size_m.reset();
  f.pixel_size_units.reset();
  const Acquisition a = OneSignal(f, {Spatial("y", 4, 1.0, ""), Spatial("x", 6, 1.0, "")},
                                  Pattern(DType::kUInt8, {4, 6}));
  const fs::path p = dir_ / "plain.mrc";
  ASSERT_TRUE(WriteMrc(p, a).ok());
  Opened o = OpenOrDie(p);
  ASSERT_TRUE(o.reader);
  ExpectAxis(o.signal().axes[1], Spatial("x", 6, 1.0, ""));
  EXPECT_FALSE(o.signal().fields.pixel_size_m);
}

// Byte-level checks against MRC2014 and the FEI2 extended header description.
TEST_F(WriterTest, MrcBytesFollowTheSpecification) {
  formats::NormalisedFields f = TemFields();
  f.mode = Mode::kStemImage;
  f.detector = "HAADF";
  const Acquisition a = OneSignal(
      f, {FrameAxis(2), Spatial("y", 3, 0.5, "A"), Spatial("x", 4, 0.5, "A")},
      MakeArray<uint16_t>(DType::kUInt16, {2, 3, 4}, [](int64_t i) { return uint16_t(10 + i); }));
  const fs::path p = dir_ / "bytes.mrc";
  ASSERT_TRUE(WriteMrc(p, a).ok());
  const std::vector<uint8_t> b = ReadFileBytes(p);
  const size_t nsymbt = 2 * 888;  // one 888-byte FEI2 record per section
  ASSERT_EQ(b.size(), 1024 + nsymbt + 2 * 3 * 4 * 2);
  EXPECT_EQ(LittleEndian<int32_t>(b, 0), 4);     // NX
  EXPECT_EQ(LittleEndian<int32_t>(b, 4), 3);     // NY
  EXPECT_EQ(LittleEndian<int32_t>(b, 8), 2);     // NZ
  EXPECT_EQ(LittleEndian<int32_t>(b, 12), 6);    // MODE 6: uint16
  EXPECT_EQ(LittleEndian<int32_t>(b, 28), 4);    // MX
  EXPECT_EQ(LittleEndian<float>(b, 40), 2.0f);   // CELLA x = 4 px * 0.5 Å
  EXPECT_EQ(LittleEndian<float>(b, 44), 1.5f);   // CELLA y
  EXPECT_EQ(LittleEndian<float>(b, 52), 90.0f);  // CELLB alpha
  EXPECT_EQ(LittleEndian<int32_t>(b, 64), 1);    // MAPC
  EXPECT_EQ(LittleEndian<float>(b, 76), 10.0f);  // DMIN
  EXPECT_EQ(LittleEndian<float>(b, 80), 33.0f);  // DMAX
  EXPECT_EQ(LittleEndian<float>(b, 84), 21.5f);  // DMEAN
  EXPECT_EQ(LittleEndian<int32_t>(b, 88), 0);    // ISPG 0: image stack
  EXPECT_EQ(LittleEndian<int32_t>(b, 92), int32_t(nsymbt));
  EXPECT_EQ(std::string(b.begin() + 104, b.begin() + 108), "FEI2");
  EXPECT_EQ(LittleEndian<int32_t>(b, 108), 20140);
  EXPECT_EQ(std::string(b.begin() + 208, b.begin() + 212), "MAP ");
  EXPECT_EQ(b[212], 0x44);
  EXPECT_EQ(b[213], 0x44);
  // FEI2 record: Metadata size, version, Timestamp (OLE date), Microscope type, HT (V),
  // Pixel size X (m), Instrument mode (2 STEM), Magnification, STEM Detector name.
  EXPECT_EQ(LittleEndian<int32_t>(b, 1024), 888);
  EXPECT_EQ(LittleEndian<int32_t>(b, 1028), 2);
  // 2016-06-13 17:06:40 is 42534 days and 61600 s after 1899-12-30.
  EXPECT_NEAR(LittleEndian<double>(b, 1024 + 12), 42534 + 61600.0 / 86400, 1e-9);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.data() + 1024 + 20)), "Talos F200X");
  EXPECT_EQ(LittleEndian<double>(b, 1024 + 84), 200000.0);
  EXPECT_EQ(LittleEndian<double>(b, 1024 + 156), 0.5e-10);
  EXPECT_EQ(LittleEndian<int32_t>(b, 1024 + 244), 2);
  EXPECT_EQ(LittleEndian<double>(b, 1024 + 289), 43000.0);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.data() + 1024 + 519)), "HAADF");
  // The second section's record is the same; the data follows the extended header.
  EXPECT_TRUE(std::equal(b.begin() + 1024, b.begin() + 1024 + 888, b.begin() + 1024 + 888));
  EXPECT_EQ(LittleEndian<uint16_t>(b, 1024 + nsymbt), 10);
  EXPECT_EQ(LittleEndian<uint16_t>(b, b.size() - 2), 33);
}

TEST_F(WriterTest, MrcUnsignedBytesCarryTheImodFlags) {
  const Acquisition a =
      OneSignal(TemFields(), {Spatial("y", 2, 0.5, "A"), Spatial("x", 2, 0.5, "A")},
                Pattern(DType::kUInt8, {2, 2}));
  const fs::path p = dir_ / "u8.mrc";
  ASSERT_TRUE(WriteMrc(p, a).ok());
  const std::vector<uint8_t> b = ReadFileBytes(p);
  EXPECT_EQ(LittleEndian<int32_t>(b, 12), 0);  // MODE 0
  EXPECT_EQ(std::string(b.begin() + 152, b.begin() + 156), "IMOD");
  EXPECT_EQ(LittleEndian<int32_t>(b, 156) & 1, 0);  // bit 0 clear: unsigned bytes
}

// A diffraction pattern (uncalibrated here: MRC's cell cannot hold reciprocal lengths) is a
// TEM acquisition in diffraction projection: Instrument mode 1, Projection mode 2.
TEST_F(WriterTest, MrcDiffractionSetsTheProjectionMode) {
  formats::NormalisedFields f = TemFields();
  f.mode = Mode::kDiffraction;
  f.pixel_size_m.reset();
  f.pixel_size_units.reset();
  f.magnification.reset();
  const Acquisition a = OneSignal(f, {Spatial("y", 8, 1, ""), Spatial("x", 8, 1, "")},
                                  Pattern(DType::kFloat32, {8, 8}));
  const fs::path p = dir_ / "saed.mrc";
  ASSERT_TRUE(WriteMrc(p, a).ok());
  const std::vector<uint8_t> b = ReadFileBytes(p);
  EXPECT_EQ(LittleEndian<int32_t>(b, 1024 + 244), 1);   // Instrument mode: TEM
  EXPECT_EQ(LittleEndian<int32_t>(b, 1024 + 248), 2);   // Projection mode: diffraction
  EXPECT_EQ(LittleEndian<double>(b, 1024 + 156), 0.0);  // no pixel size
  Opened o = OpenOrDie(p);
  ASSERT_TRUE(o.reader);
  EXPECT_EQ(o.signal().fields.detector, "BM-Ceta");
  EXPECT_EQ(o.signal().metadata["extended_header"]["first_record"]["Projection mode"], 2);
  EXPECT_EQ(o.signal().fields.mode, Mode::kDiffraction);
  EXPECT_EQ(ReadAllBytes(o), a.signals[0].data.bytes);
}

// ---- FEI TIFF -----------------------------------------------------------------------------

formats::NormalisedFields SemFields() {
  formats::NormalisedFields f;
  f.acquired = "2016-06-13T17:06:40";
  f.instrument = "Helios NanoLab 660";
  f.mode = Mode::kSemImage;
  f.beam_energy_kev = 5;
  f.magnification = 120000;
  f.pixel_size_m = 3.3724e-9;
  f.pixel_size_units = "m";
  f.detector = "TLD";
  return f;
}

TEST_F(WriterTest, TiffSemUint8RoundTrips) {
  const formats::NormalisedFields f = SemFields();
  const Acquisition a =
      OneSignal(f, {Spatial("y", 30, 3.3724e-9, "m"), Spatial("x", 40, 3.3724e-9, "m")},
                Pattern(DType::kUInt8, {30, 40}));
  const fs::path p = dir_ / "PbSe_001.tif";
  ASSERT_TRUE(WriteFeiTiff(p, a).ok());
  Opened o = OpenOrDie(p);
  ASSERT_TRUE(o.reader);
  ASSERT_EQ(o.reader->dataset().signals.size(), 1u);
  EXPECT_EQ(o.reader->dataset().format, "tiff");
  const formats::Signal& s = o.signal();
  EXPECT_EQ(s.shape, (std::vector<int64_t>{30, 40}));
  EXPECT_EQ(s.dtype, DType::kUInt8);
  for (size_t k = 0; k < 2; ++k) ExpectAxis(s.axes[k], a.signals[0].axes[k]);
  ExpectFields(s.fields, f, 1e-12);
  EXPECT_EQ(s.name, "TLD");
  EXPECT_EQ(ReadAllBytes(o), a.signals[0].data.bytes);
  // The free text lands where xT keeps it.
  EXPECT_EQ(s.metadata["fei"]["User"]["User"], "jdoe");
  EXPECT_EQ(s.metadata["fei"]["User"]["UserText"], "PbSe w lig");
}

TEST_F(WriterTest, TiffSemUint16RoundTrips) {
  formats::NormalisedFields f = SemFields();
  f.acquired = "2023-02-28T09:05:07";
  f.instrument = "Apreo 2";
  f.beam_energy_kev = 1.5;
  f.magnification = 2500;
  f.pixel_size_m = 1.1e-7;
  f.detector = "CBS";
  const Acquisition a = OneSignal(f, {Spatial("y", 17, 110, "nm"), Spatial("x", 23, 110, "nm")},
                                  Pattern(DType::kUInt16, {17, 23}));
  const fs::path p = dir_ / "au np.tif";
  ASSERT_TRUE(WriteFeiTiff(p, a).ok());
  Opened o = OpenOrDie(p);
  ASSERT_TRUE(o.reader);
  const formats::Signal& s = o.signal();
  EXPECT_EQ(s.shape, (std::vector<int64_t>{17, 23}));
  EXPECT_EQ(s.dtype, DType::kUInt16);
  // FEI TIFF stores the pixel size in metres.
  EXPECT_EQ(s.axes[1].units, "m");
  EXPECT_DOUBLE_EQ(s.axes[1].scale, 1.1e-7);
  ExpectFields(s.fields, f, 1e-12);
  EXPECT_EQ(s.metadata["fei"]["Detectors"]["Mode"], "BSE");
  EXPECT_EQ(ReadAllBytes(o), a.signals[0].data.bytes);
}

TEST_F(WriterTest, TiffTemImageRoundTrips) {
  formats::NormalisedFields f = TemFields();
  f.pixel_size_m = 5e-11;
  const Acquisition a = OneSignal(f, {Spatial("y", 16, 5e-11, "m"), Spatial("x", 16, 5e-11, "m")},
                                  Pattern(DType::kUInt16, {16, 16}));
  const fs::path p = dir_ / "tem.tif";
  ASSERT_TRUE(WriteFeiTiff(p, a).ok());
  Opened o = OpenOrDie(p);
  ASSERT_TRUE(o.reader);
  const formats::Signal& s = o.signal();
  EXPECT_EQ(s.shape, (std::vector<int64_t>{16, 16}));
  for (size_t k = 0; k < 2; ++k) ExpectAxis(s.axes[k], a.signals[0].axes[k]);
  EXPECT_EQ(s.fields.acquired, f.acquired);
  EXPECT_EQ(s.fields.instrument, f.instrument);
  EXPECT_EQ(s.fields.detector, f.detector);
  EXPECT_EQ(s.fields.pixel_size_m, f.pixel_size_m);
  ASSERT_TRUE(s.fields.beam_energy_kev);
  EXPECT_DOUBLE_EQ(*s.fields.beam_energy_kev, 200);
  ASSERT_TRUE(s.fields.magnification);
  EXPECT_NEAR(*s.fields.magnification, 43000, 43000 * 1e-12);
  EXPECT_EQ(s.fields.mode, Mode::kTemImage);  // from "Type=TEM" and the detector mode
  EXPECT_EQ(s.metadata["fei"]["System"]["Type"], "TEM");
  EXPECT_EQ(s.metadata["fei"]["Detectors"]["Mode"], "TEM");
  EXPECT_EQ(ReadAllBytes(o), a.signals[0].data.bytes);
}

TEST_F(WriterTest, TiffNavCamIsAnOpticalImage) {
  formats::NormalisedFields f = SemFields();
  f.mode = Mode::kOpticalImage;
  f.detector.reset();  // the writer names the Nav-Cam
  f.beam_energy_kev.reset();
  f.magnification.reset();
  f.pixel_size_m = 2.5e-4;
  const Acquisition a = OneSignal(f, {Spatial("y", 12, 0.25, "mm"), Spatial("x", 20, 0.25, "mm")},
                                  Pattern(DType::kUInt8, {12, 20}));
  const fs::path p = dir_ / "navcam.tif";
  ASSERT_TRUE(WriteFeiTiff(p, a).ok());
  Opened o = OpenOrDie(p);
  ASSERT_TRUE(o.reader);
  const formats::Signal& s = o.signal();
  EXPECT_EQ(s.fields.mode, Mode::kOpticalImage);
  EXPECT_EQ(s.fields.detector, "Nav-Cam");
  EXPECT_EQ(s.fields.acquired, f.acquired);
  EXPECT_FALSE(s.fields.beam_energy_kev);
  // The Nav-Cam's pixel size is its field width over the image width.
  ASSERT_TRUE(s.fields.pixel_size_m);
  EXPECT_NEAR(*s.fields.pixel_size_m, 2.5e-4, 2.5e-4 * 1e-12);
  EXPECT_EQ(ReadAllBytes(o), a.signals[0].data.bytes);
}

TEST_F(WriterTest, TiffUncalibratedImageKeepsUnitlessAxes) {
  formats::NormalisedFields f = SemFields();
  f.pixel_size_m.reset();
  f.pixel_size_units.reset();
  const Acquisition a = OneSignal(f, {Spatial("y", 5, 1, ""), Spatial("x", 7, 1, "")},
                                  Pattern(DType::kUInt8, {5, 7}));
  const fs::path p = dir_ / "plain.tif";
  ASSERT_TRUE(WriteFeiTiff(p, a).ok());
  Opened o = OpenOrDie(p);
  ASSERT_TRUE(o.reader);
  ExpectAxis(o.signal().axes[1], Spatial("x", 7, 1, ""));
  EXPECT_FALSE(o.signal().fields.pixel_size_m);
  EXPECT_FALSE(o.signal().fields.magnification);  // no field width to scale it by
}

// One IFD entry, as TIFF 6.0 lays it out (little-endian, 12 bytes).
struct IfdEntry {
  uint16_t tag, type;
  uint32_t count, value;
};

std::vector<IfdEntry> FirstIfd(const std::vector<uint8_t>& b) {
  std::vector<IfdEntry> entries;
  const uint32_t ifd = LittleEndian<uint32_t>(b, 4);
  const uint16_t n = LittleEndian<uint16_t>(b, ifd);
  for (uint16_t i = 0; i < n; ++i) {
    const size_t at = ifd + 2 + 12 * size_t(i);
    entries.push_back({LittleEndian<uint16_t>(b, at), LittleEndian<uint16_t>(b, at + 2),
                       LittleEndian<uint32_t>(b, at + 4), LittleEndian<uint32_t>(b, at + 8)});
  }
  return entries;
}

TEST_F(WriterTest, TiffBytesFollowTheFeiLayout) {
  const Acquisition a =
      OneSignal(SemFields(), {Spatial("y", 3, 3.3724e-9, "m"), Spatial("x", 5, 3.3724e-9, "m")},
                Pattern(DType::kUInt16, {3, 5}));
  const fs::path p = dir_ / "layout.tif";
  ASSERT_TRUE(WriteFeiTiff(p, a).ok());
  const std::vector<uint8_t> b = ReadFileBytes(p);
  ASSERT_GE(b.size(), 8u);
  EXPECT_EQ(std::string(b.begin(), b.begin() + 4), std::string("II*\0", 4));
  std::map<uint16_t, IfdEntry> tags;
  for (const IfdEntry& e : FirstIfd(b)) tags[e.tag] = e;
  EXPECT_EQ(tags.at(256).value, 5u);            // ImageWidth
  EXPECT_EQ(tags.at(257).value, 3u);            // ImageLength
  EXPECT_EQ(tags.at(258).value & 0xffff, 16u);  // BitsPerSample
  EXPECT_EQ(tags.at(259).value & 0xffff, 1u);   // no compression
  EXPECT_EQ(tags.at(278).value, 1u);            // RowsPerStrip 1, as xT writes
  EXPECT_EQ(tags.at(296).value & 0xffff, 3u);   // ResolutionUnit: centimetre
  ASSERT_TRUE(tags.count(34682));               // FEI_HELIOS
  const IfdEntry fei = tags.at(34682);
  EXPECT_EQ(fei.type, 2);  // ASCII
  ASSERT_LE(size_t(fei.value) + fei.count, b.size());
  const std::string text(reinterpret_cast<const char*>(b.data() + fei.value), fei.count - 1);
  EXPECT_EQ(b[fei.value + fei.count - 1], 0);  // NUL-terminated
  // xT's US date and 12-hour clock, CRLF lines.
  EXPECT_EQ(text.rfind("[User]\r\nDate=06/13/2016\r\nTime=05:06:40 PM\r\nUser=jdoe\r\n", 0), 0u);
  EXPECT_NE(text.find("\r\n[System]\r\n"), std::string::npos);
  EXPECT_NE(text.find("SystemType=Helios NanoLab 660\r\n"), std::string::npos);
  EXPECT_NE(text.find("[Beam]\r\nHV=5000\r\n"), std::string::npos);
  EXPECT_NE(text.find("[EScan]\r\n"), std::string::npos);
  EXPECT_NE(text.find("PixelWidth=3.3724e-009\r\n"), std::string::npos);
  EXPECT_NE(text.find("[Detectors]\r\nNumber=1\r\nName=TLD\r\nMode=SE\r\n"), std::string::npos);
  EXPECT_NE(text.find("TimeOfCreation=13.06.2016 17:06:40\r\n"), std::string::npos);
  // Pixel data: the first strip holds row 0 in little-endian order.
  const IfdEntry strips = tags.at(273);
  ASSERT_EQ(strips.count, 3u);
  const uint32_t row0 = LittleEndian<uint32_t>(b, strips.value);
  EXPECT_TRUE(std::equal(b.begin() + row0, b.begin() + row0 + 10, a.signals[0].data.bytes.begin()));
}

TEST_F(WriterTest, TiffOlderXtInstrumentsUseTheSfegTag) {
  formats::NormalisedFields f = SemFields();
  f.instrument = "Quanta 200 FEG";
  f.pixel_size_m = 1e-8;
  const Acquisition a = OneSignal(f, {Spatial("y", 4, 1e-8, "m"), Spatial("x", 4, 1e-8, "m")},
                                  Pattern(DType::kUInt8, {4, 4}));
  const fs::path p = dir_ / "quanta.tif";
  ASSERT_TRUE(WriteFeiTiff(p, a).ok());
  std::map<uint16_t, IfdEntry> tags;
  for (const IfdEntry& e : FirstIfd(ReadFileBytes(p))) tags[e.tag] = e;
  EXPECT_TRUE(tags.count(34680));
  EXPECT_FALSE(tags.count(34682));
  Opened o = OpenOrDie(p);
  ASSERT_TRUE(o.reader);
  EXPECT_EQ(o.signal().fields.instrument, "Quanta 200 FEG");
}

TEST_F(WriterTest, TiffFreeTextCannotInjectKeys) {
  Acquisition a =
      OneSignal(SemFields(), {Spatial("y", 2, 3.3724e-9, "m"), Spatial("x", 2, 3.3724e-9, "m")},
                Pattern(DType::kUInt8, {2, 2}));
  a.sample_description = "STO_001\r\n[Beam]\r\nHV=1";
  const fs::path p = dir_ / "inject.tif";
  ASSERT_TRUE(WriteFeiTiff(p, a).ok());
  Opened o = OpenOrDie(p);
  ASSERT_TRUE(o.reader);
  EXPECT_DOUBLE_EQ(*o.signal().fields.beam_energy_kev, 5);
  EXPECT_EQ(o.signal().metadata["fei"]["User"]["UserText"], "STO_001  [Beam]  HV=1");
}

// ---- Refusals -------------------------------------------------------------------------

using Writer = Status (*)(const fs::path&, const Acquisition&);

struct BadCase {
  const char* what;
  const char* mentions;
  std::function<void(Acquisition&)> spoil;
};

void ExpectRefusals(const fs::path& dir, Writer write, const Acquisition& good,
                    const std::vector<BadCase>& cases) {
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.what);
    Acquisition a = good;
    c.spoil(a);
    const fs::path p = dir / (std::string("bad_") + c.what);
    ExpectInvalid(write(p, a), c.mentions);
    EXPECT_FALSE(fs::exists(p));
  }
  // Nothing half-written is left behind.
  for (const auto& e : fs::directory_iterator(dir)) ADD_FAILURE() << "left behind: " << e.path();
}

std::vector<BadCase> CommonBadCases() {
  return {
      {"no_signal", "signals", [](Acquisition& a) { a.signals.clear(); }},
      {"two_signals", "signals", [](Acquisition& a) { a.signals.push_back(a.signals[0]); }},
      {"rank_1", "rank 1",
       [](Acquisition& a) {
         a.signals[0].data = Pattern(DType::kUInt8, {16});
         a.signals[0].axes = {Spatial("x", 16, 1, "")};
       }},
      {"rank_4", "rank 4",
       [](Acquisition& a) {
         a.signals[0].data = Pattern(DType::kUInt8, {1, 1, 2, 2});
         a.signals[0].axes = {FrameAxis(1), FrameAxis(1), Spatial("y", 2, 1, ""),
                              Spatial("x", 2, 1, "")};
       }},
      {"float64", "float64",
       [](Acquisition& a) {
         a.signals[0].data = Pattern(DType::kFloat64, a.signals[0].data.shape);
       }},
      {"axes_count", "axes", [](Acquisition& a) { a.signals[0].axes.pop_back(); }},
      {"axis_size", "axes[1]", [](Acquisition& a) { a.signals[0].axes[1].size += 1; }},
      {"short_bytes", "data.bytes", [](Acquisition& a) { a.signals[0].data.bytes.pop_back(); }},
      {"zero_size", "data.shape[0]",
       [](Acquisition& a) {
         a.signals[0].data.shape[0] = 0;
         a.signals[0].axes[0].size = 0;
         a.signals[0].data.bytes.clear();
       }},
      {"no_acquired", "fields.acquired", [](Acquisition& a) { a.fields.acquired.reset(); }},
      {"bad_acquired", "fields.acquired",
       [](Acquisition& a) { a.fields.acquired = "13/06/2016 17:06"; }},
      {"impossible_date", "fields.acquired",
       [](Acquisition& a) { a.fields.acquired = "2016-02-30T10:00:00"; }},
      {"reciprocal_units", "1/nm",
       [](Acquisition& a) {
         for (Axis& x : a.signals[0].axes) x.units = "1/nm";
       }},
      {"half_calibrated", "calibrated", [](Acquisition& a) { a.signals[0].axes[0].units = ""; }},
      {"pixel_size_disagrees", "pixel_size_m", [](Acquisition& a) { *a.fields.pixel_size_m *= 2; }},
      {"negative_hv", "beam_energy_kev", [](Acquisition& a) { a.fields.beam_energy_kev = -5; }},
      {"spectrum_mode", "fields.mode", [](Acquisition& a) { a.fields.mode = Mode::kSpectrum; }},
  };
}

TEST_F(WriterTest, MrcRefusesBadInput) {
  const Acquisition good =
      OneSignal(TemFields(), {Spatial("y", 4, 0.5, "A"), Spatial("x", 4, 0.5, "A")},
                Pattern(DType::kInt16, {4, 4}));
  std::vector<BadCase> cases = CommonBadCases();
  cases.push_back({"long_instrument", "fields.instrument",
                   [](Acquisition& a) { a.fields.instrument = "Titan Themis Z 300 kV"; }});
  cases.push_back(
      {"volume_rank_2", "volume", [](Acquisition& a) { a.fields.mode = Mode::kVolume; }});
  cases.push_back(
      {"sem_mode", "fields.mode", [](Acquisition& a) { a.fields.mode = Mode::kSemImage; }});
  ExpectRefusals(dir_, &WriteMrc, good, cases);
}

TEST_F(WriterTest, TiffRefusesBadInput) {
  const Acquisition good =
      OneSignal(SemFields(), {Spatial("y", 4, 3.3724e-9, "m"), Spatial("x", 4, 3.3724e-9, "m")},
                Pattern(DType::kUInt8, {4, 4}));
  std::vector<BadCase> cases = CommonBadCases();
  cases.push_back({"stack", "rank 3", [](Acquisition& a) {
                     a.signals[0].data = Pattern(DType::kUInt8, {2, 4, 4});
                     a.signals[0].axes.insert(a.signals[0].axes.begin(), FrameAxis(2));
                   }});
  cases.push_back({"float32", "float32", [](Acquisition& a) {
                     a.signals[0].data = Pattern(DType::kFloat32, {4, 4});
                   }});
  cases.push_back(
      {"volume_mode", "fields.mode", [](Acquisition& a) { a.fields.mode = Mode::kVolume; }});
  ExpectRefusals(dir_, &WriteFeiTiff, good, cases);
}

// A failed write leaves an earlier file under the same name as it was.
TEST_F(WriterTest, FailedWriteLeavesTheTargetUntouched) {
  const Acquisition sem =
      OneSignal(SemFields(), {Spatial("y", 4, 3.3724e-9, "m"), Spatial("x", 4, 3.3724e-9, "m")},
                Pattern(DType::kUInt8, {4, 4}));
  const Acquisition tem =
      OneSignal(TemFields(), {Spatial("y", 4, 0.5, "A"), Spatial("x", 4, 0.5, "A")},
                Pattern(DType::kUInt8, {4, 4}));
  for (const auto& [write, good, name] :
       {std::tuple{&WriteMrc, tem, "a.mrc"}, std::tuple{&WriteFeiTiff, sem, "a.tif"}}) {
    const fs::path p = dir_ / name;
    ASSERT_TRUE(write(p, good).ok());
    const std::vector<uint8_t> before = ReadFileBytes(p);
    Acquisition bad = good;
    bad.fields.acquired.reset();
    EXPECT_FALSE(write(p, bad).ok());
    EXPECT_EQ(ReadFileBytes(p), before);
    EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()),
              write == &WriteMrc ? 1 : 2);
  }
}

// The simulator writes many small files from several threads: every one must read back.
TEST_F(WriterTest, ManySmallFilesFromTwoThreads) {
  constexpr int kPerThread = 150;
  std::atomic<int> failures{0};
  auto work = [&](int thread) {
    for (int i = 0; i < kPerThread; ++i) {
      formats::NormalisedFields f = i % 2 ? SemFields() : TemFields();
      const double px = i % 2 ? 3.3724e-9 : 0.5e-10;
      f.pixel_size_m = px;
      const Acquisition a = OneSignal(f, {Spatial("y", 32, px, "m"), Spatial("x", 32, px, "m")},
                                      Pattern(i % 2 ? DType::kUInt8 : DType::kUInt16, {32, 32}));
      const fs::path p =
          dir_ / std::to_string(thread) / ("f" + std::to_string(i) + (i % 2 ? ".tif" : ".mrc"));
      const Status s = i % 2 ? WriteFeiTiff(p, a) : WriteMrc(p, a);
      if (!s.ok()) ++failures;
    }
  };
  std::thread t0(work, 0), t1(work, 1);
  t0.join();
  t1.join();
  EXPECT_EQ(failures, 0);
  int files = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir_)) {
    if (!e.is_regular_file()) continue;
    ++files;
    auto r = formats::OpenDataset(e.path());
    ASSERT_TRUE(r.ok()) << e.path() << ": " << r.status().message();
    EXPECT_EQ(r.value()->dataset().signals.at(0).shape.back(), 32);
  }
  EXPECT_EQ(files, 2 * kPerThread);
}

}  // namespace
}  // namespace scisearch::simulate
