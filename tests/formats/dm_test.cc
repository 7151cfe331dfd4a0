// Tests of the DigitalMicrograph DM3/DM4 reader, on the shared sample files (expected
// values from the MANIFEST and the file bytes) and on files built here from the published
// tag layout (so that every encoded type, both byte orders and hostile sizes are covered).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <complex>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "formats/formats.h"
#include "formats/readers.h"
#include "test_paths.h"
#include "test_util.h"

namespace scisearch::formats {
namespace {

namespace fs = std::filesystem;
using ::scisearch::testing::ReadFileBytes;
using ::scisearch::testing::WriteFileBytes;

fs::path TempPath(const std::string& name) {
  return fs::temp_directory_path() /
         ("scisearch-dm-test-" + std::to_string(::getpid()) + "-" + name);
}

template <typename T>
std::vector<T> Values(const NdArray& array) {
  std::vector<T> out(array.bytes.size() / sizeof(T));
  std::memcpy(out.data(), array.bytes.data(), out.size() * sizeof(T));
  return out;
}

struct Opened {
  std::unique_ptr<DatasetReader> reader;
  const Dataset& dataset() const { return reader->dataset(); }
  NdArray ReadAll(size_t signal) {
    auto r = reader->Read(signal, Hyperslab::All(dataset().signals[signal].shape));
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? std::move(r).value() : NdArray{};
  }
};

Opened MustOpen(const fs::path& path) {
  auto r = OpenDigitalMicrograph(path);
  EXPECT_TRUE(r.ok()) << path << ": " << r.status().message();
  if (!r.ok()) return Opened{};
  return Opened{std::move(r).value()};
}

// ---------------------------------------------------------------------------------------
// The test-<n> files: a 2x2 image (1D: 2 values, 3D: 2x2x2) of DM type n holding 1..count.

struct TypeCase {
  int code;
  DType dtype;
};

void CheckCountingValues(const NdArray& a, DType dtype, int64_t count) {
  ASSERT_EQ(a.dtype, dtype);
  ASSERT_EQ(a.ElementCount(), count);
  for (int64_t i = 0; i < count; ++i) {
    const double want = double(i + 1);
    const uint8_t* p = a.bytes.data() + i * DTypeSize(dtype);
    double got = 0;
    switch (dtype) {
      case DType::kInt8:
        got = *reinterpret_cast<const int8_t*>(p);
        break;
      case DType::kUInt8:
        got = *p;
        break;
      case DType::kInt16: {
        int16_t v;
        std::memcpy(&v, p, 2);
        got = v;
        break;
      }
      case DType::kUInt16: {
        uint16_t v;
        std::memcpy(&v, p, 2);
        got = v;
        break;
      }
      case DType::kInt32: {
        int32_t v;
        std::memcpy(&v, p, 4);
        got = v;
        break;
      }
      case DType::kUInt32: {
        uint32_t v;
        std::memcpy(&v, p, 4);
        got = v;
        break;
      }
      case DType::kFloat32: {
        float v;
        std::memcpy(&v, p, 4);
        got = v;
        break;
      }
      case DType::kFloat64: {
        double v;
        std::memcpy(&v, p, 8);
        got = v;
        break;
      }
      case DType::kComplex64: {
        float v[2];
        std::memcpy(v, p, 8);
        EXPECT_EQ(v[1], 0.0f);
        got = v[0];
        break;
      }
      case DType::kComplex128: {
        double v[2];
        std::memcpy(v, p, 16);
        EXPECT_EQ(v[1], 0.0);
        got = v[0];
        break;
      }
      case DType::kRGB8:
        // A grey RGB image: R = G = B = the value.
        EXPECT_EQ(p[0], p[1]);
        EXPECT_EQ(p[1], p[2]);
        got = p[0];
        break;
      case DType::kBool:
        got = want;
        EXPECT_EQ(*p, 1);
        break;  // every value 1..n is true
      default:
        FAIL() << "unexpected dtype";
    }
    EXPECT_EQ(got, want) << "element " << i;
  }
}

TEST(DmTest, EveryDataTypeIn2dFiles) {
  SHARED_DATA_OR_SKIP(dir, "formats/dm/2D");
  // Types 5 and 27 (packed complex) are stored by SaveAsGatan as complex64 for a 2x2 image;
  // 8 and 23 (RGB) as RGB_UINT8_0.
  const std::vector<TypeCase> cases = {
      {1, DType::kInt16},      {2, DType::kFloat32},  {3, DType::kComplex64},
      {5, DType::kComplex64},  {6, DType::kUInt8},    {7, DType::kInt32},
      {8, DType::kRGB8},       {9, DType::kInt8},     {10, DType::kUInt16},
      {11, DType::kUInt32},    {12, DType::kFloat64}, {13, DType::kComplex128},
      {14, DType::kBool},      {23, DType::kRGB8},    {27, DType::kComplex64},
      {28, DType::kComplex128}};
  for (const auto& c : cases) {
    for (const char* ext : {".dm3", ".dm4"}) {
      const fs::path path = dir / ("test-" + std::to_string(c.code) + ext);
      if (!fs::exists(path)) continue;  // 27 and 28 exist only as .dm4
      SCOPED_TRACE(path.string());
      Opened f = MustOpen(path);
      ASSERT_NE(f.reader, nullptr);
      EXPECT_EQ(f.dataset().format, std::string(ext).substr(1));
      ASSERT_EQ(f.dataset().signals.size(), 1u);  // the thumbnail is skipped
      const Signal& s = f.dataset().signals[0];
      EXPECT_EQ(s.dtype, c.dtype);
      EXPECT_EQ(s.shape, (std::vector<int64_t>{2, 2}));
      ASSERT_EQ(s.axes.size(), 2u);
      EXPECT_EQ(s.axes[0].name, "y");
      EXPECT_EQ(s.axes[1].name, "x");
      CheckCountingValues(f.ReadAll(0), c.dtype, 4);
    }
  }
}

TEST(DmTest, SpectraAndStacksOfTestFiles) {
  SHARED_DATA_OR_SKIP(dir, "formats/dm");
  for (const char* ext : {".dm3", ".dm4"}) {
    {
      Opened f = MustOpen(dir / (std::string("1D/test-2") + ext));
      ASSERT_NE(f.reader, nullptr);
      const Signal& s = f.dataset().signals.at(0);
      EXPECT_EQ(s.shape, (std::vector<int64_t>{2}));
      EXPECT_EQ(s.fields.mode, Mode::kSpectrum);
      CheckCountingValues(f.ReadAll(0), DType::kFloat32, 2);
    }
    for (auto [n, dtype] : {std::pair{1, DType::kInt16}, std::pair{2, DType::kFloat32}}) {
      Opened f = MustOpen(dir / ("3D/test-" + std::to_string(n) + ext));
      ASSERT_NE(f.reader, nullptr);
      const Signal& s = f.dataset().signals.at(0);
      EXPECT_EQ(s.shape, (std::vector<int64_t>{2, 2, 2}));
      EXPECT_TRUE(s.axes[0].navigate);
      EXPECT_FALSE(s.axes[1].navigate);
      EXPECT_FALSE(s.axes[2].navigate);
      CheckCountingValues(f.ReadAll(0), dtype, 8);
      // The second frame alone.
      auto slab = f.reader->Read(0, Hyperslab{{1, 0, 0}, {1, 2, 2}, {1, 1, 1}});
      ASSERT_TRUE(slab.ok()) << slab.status().message();
      EXPECT_EQ(slab->shape, (std::vector<int64_t>{1, 2, 2}));
      if (dtype == DType::kInt16) {
        EXPECT_EQ(Values<int16_t>(*slab), (std::vector<int16_t>{5, 6, 7, 8}));
      }
    }
  }
}

TEST(DmTest, StemImage) {
  SHARED_DATA_OR_SKIP(path, "formats/dm/2D/test_STEM_image.dm3");
  Opened f = MustOpen(path);
  ASSERT_NE(f.reader, nullptr);
  ASSERT_EQ(f.dataset().signals.size(), 1u);
  const Signal& s = f.dataset().signals[0];
  EXPECT_EQ(s.dtype, DType::kUInt32);
  EXPECT_EQ(s.shape, (std::vector<int64_t>{68, 68}));
  EXPECT_EQ(s.fields.mode, Mode::kStemImage);
  EXPECT_EQ(s.fields.instrument.value_or(""), "FEI Titan");
  EXPECT_EQ(s.fields.magnification.value_or(0), 225000.0);
  EXPECT_EQ(s.fields.beam_energy_kev.value_or(0), 200.0);
  EXPECT_EQ(s.fields.detector.value_or(""), "DigiScan");
  // DataBar: "8/8/2016" "4:26:37 PM".
  EXPECT_EQ(s.fields.acquired.value_or("").substr(0, 19), "2016-08-08T16:26:37");
  EXPECT_EQ(s.axes[1].units, "nm");
  EXPECT_NEAR(s.axes[1].scale, 0.248538, 1e-6);
  EXPECT_NEAR(s.axes[1].offset, 207 * 0.24853801727294922, 1e-4);  // Origin -207
  EXPECT_NEAR(s.fields.pixel_size_m.value_or(0), 0.248538e-9, 1e-15);
  EXPECT_EQ(s.fields.pixel_size_units.value_or(""), "m");
  // The metadata is the typed tag tree.
  const Metadata& md = s.metadata;
  EXPECT_TRUE(md["ImageTags"]["Microscope Info"]["Voltage"].is_number_float());
  EXPECT_EQ(md["ImageTags"]["Microscope Info"]["Voltage"].get<double>(), 200000.0);
  EXPECT_EQ(md["ImageTags"]["DataBar"]["Acquisition Date"], "8/8/2016");
  EXPECT_TRUE(md["ImageData"]["DataType"].is_number_integer());
  EXPECT_EQ(md["ImageData"]["DataType"].get<int>(), 11);
  EXPECT_EQ(md["ImageData"]["Dimensions"], Metadata::parse("[68, 68]"));
  EXPECT_EQ(md["ImageData"]["Data"]["count"].get<int>(), 68 * 68);
  EXPECT_TRUE(md["Document"].contains("Thumbnails"));
  EXPECT_TRUE(md["Document"].contains("DocumentObjectList"));
  EXPECT_FALSE(md["Document"].contains("ImageList"));
  EXPECT_NO_THROW((void)md.dump());  // every string is valid UTF-8 ("µA" in tag names)
  EXPECT_TRUE(
      md["ImageTags"]["Microscope Info"].contains("Emission Current (\xC2\xB5"
                                                  "A)"));
  // Pixel values: compare a strided read with the raw little-endian bytes of the file.
  const uint64_t offset = md["ImageData"]["Data"]["array_offset"].get<uint64_t>();
  const std::vector<uint8_t> bytes = ReadFileBytes(path);
  auto slab = f.reader->Read(0, Hyperslab{{3, 5}, {4, 6}, {7, 9}});
  ASSERT_TRUE(slab.ok()) << slab.status().message();
  const auto got = Values<uint32_t>(*slab);
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 6; ++c) {
      uint32_t want;
      std::memcpy(&want, bytes.data() + offset + ((3 + r * 7) * 68 + 5 + c * 9) * 4, 4);
      EXPECT_EQ(got[r * 6 + c], want);
    }
  }
}

TEST(DmTest, DiffractionPattern) {
  SHARED_DATA_OR_SKIP(path, "formats/dm/2D/test_diffraction_pattern.dm3");
  Opened f = MustOpen(path);
  ASSERT_NE(f.reader, nullptr);
  const Signal& s = f.dataset().signals.at(0);
  EXPECT_EQ(s.dtype, DType::kInt32);
  EXPECT_EQ(s.shape, (std::vector<int64_t>{87, 87}));
  EXPECT_EQ(s.fields.mode, Mode::kDiffraction);
  EXPECT_EQ(s.axes[0].units, "1/nm");
  EXPECT_EQ(s.fields.pixel_size_units.value_or(""), "1/m");
  EXPECT_NEAR(s.fields.pixel_size_m.value_or(0), 0.17443285882472992e9, 1e3);
  EXPECT_EQ(s.fields.acquired.value_or("").substr(0, 19), "2014-07-09T18:56:37");
  EXPECT_EQ(s.fields.instrument.value_or(""), "FEI Tecnai");
  EXPECT_EQ(s.fields.detector.value_or(""), "BM-UltraScan");
}

TEST(DmTest, EelsSpectrumImage) {
  SHARED_DATA_OR_SKIP(path, "formats/dm/3D/EELS_SI.dm4");
  Opened f = MustOpen(path);
  ASSERT_NE(f.reader, nullptr);
  ASSERT_EQ(f.dataset().signals.size(), 1u);
  const Signal& s = f.dataset().signals[0];
  EXPECT_EQ(s.dtype, DType::kFloat32);
  // DM stores the 2x2 scan of 2048-channel spectra as x, y, energy (fastest first), so
  // the file's C order is energy, y, x; the reader presents it as scan_y, scan_x, energy
  // (the MANIFEST's "2x2 x 2048", HyperSpy's order).
  EXPECT_EQ(s.shape, (std::vector<int64_t>{2, 2, 2048}));
  EXPECT_EQ(s.fields.mode, Mode::kSpectrumImage);
  EXPECT_EQ(s.axes[2].name, "energy");
  EXPECT_EQ(s.axes[2].units, "eV");
  EXPECT_FALSE(s.axes[2].navigate);
  EXPECT_DOUBLE_EQ(s.axes[2].offset, 300.0);  // Origin -300, Scale 1
  EXPECT_TRUE(s.axes[0].navigate);
  EXPECT_TRUE(s.axes[1].navigate);
  EXPECT_EQ(s.axes[1].units, "um");
  EXPECT_EQ(s.fields.instrument.value_or(""), "FEI Titan");
  EXPECT_EQ(s.fields.detector.value_or(""), "US1000FTXP 1");
  // The first energy plane is the first 4 float32 of the data (8473.006, 7891.006, ...):
  // channel 0 at (y, x) = (0, 0) and (0, 1).
  auto plane = f.reader->Read(0, Hyperslab{{0, 0, 0}, {2, 2, 1}, {1, 1, 1}});
  ASSERT_TRUE(plane.ok());
  const auto v = Values<float>(*plane);
  EXPECT_NEAR(v[0], 8473.006f, 1e-2);
  EXPECT_NEAR(v[1], 7891.006f, 1e-2);
  // A whole spectrum is 2048 values 4 floats apart in the file: element k of the
  // spectrum at (0, 1) is stored float 4k + 1; check it against the plane read.
  auto spectrum = f.reader->Read(0, Hyperslab{{0, 1, 0}, {1, 1, 2048}, {1, 1, 1}});
  ASSERT_TRUE(spectrum.ok());
  EXPECT_EQ(spectrum->shape, (std::vector<int64_t>{1, 1, 2048}));
  EXPECT_NEAR(Values<float>(*spectrum)[0], 7891.006f, 1e-2);
}

TEST(DmTest, SpectraModesAndAxes) {
  SHARED_DATA_OR_SKIP(dir, "formats/dm");
  {
    Opened f = MustOpen(dir / "1D/test-EDS_spectrum.dm3");
    ASSERT_NE(f.reader, nullptr);
    const Signal& s = f.dataset().signals.at(0);
    EXPECT_EQ(s.shape, (std::vector<int64_t>{4096}));
    EXPECT_EQ(s.dtype, DType::kUInt32);
    EXPECT_EQ(s.fields.mode, Mode::kSpectrum);
    EXPECT_EQ(s.axes[0].units, "keV");
    EXPECT_FALSE(s.fields.pixel_size_m.has_value());
  }
  {
    Opened f = MustOpen(dir / "1D/test-EELS_spectrum.dm3");
    ASSERT_NE(f.reader, nullptr);
    const Signal& s = f.dataset().signals.at(0);
    EXPECT_EQ(s.shape, (std::vector<int64_t>{2048}));
    EXPECT_EQ(s.dtype, DType::kFloat32);
    EXPECT_EQ(s.axes[0].name, "energy");
  }
  {
    Opened f = MustOpen(dir / "1D/test-MonoCL_spectrum-ccd.dm4");
    ASSERT_NE(f.reader, nullptr);
    const Signal& s = f.dataset().signals.at(0);
    EXPECT_EQ(s.shape, (std::vector<int64_t>{1336}));
    EXPECT_EQ(s.fields.mode, Mode::kSpectrum);
    EXPECT_EQ(s.axes[0].name, "wavelength");
    EXPECT_EQ(s.fields.beam_energy_kev.value_or(0), 5.0);
  }
  {
    // Stored as a 2048 x 1 image: the size-1 axis is dropped.
    Opened f = MustOpen(dir / "ncempy/08_carbon.dm3");
    ASSERT_NE(f.reader, nullptr);
    const Signal& s = f.dataset().signals.at(0);
    EXPECT_EQ(s.shape, (std::vector<int64_t>{2048}));
    EXPECT_EQ(s.fields.mode, Mode::kSpectrum);
    EXPECT_EQ(s.fields.instrument.value_or(""), "NCEM TEAM 0.5");
    EXPECT_EQ(s.fields.beam_energy_kev.value_or(0), 300.0);
  }
}

TEST(DmTest, NcempySyntheticVolumesAndNonSquare) {
  SHARED_DATA_OR_SKIP(dir, "formats/dm/ncempy");
  Opened dm3 = MustOpen(dir / "dmTest_3D_int16_64,65,66.dm3");
  Opened dm4 = MustOpen(dir / "dmTest_3D_int16_64,65,66.dm4");
  ASSERT_NE(dm3.reader, nullptr);
  ASSERT_NE(dm4.reader, nullptr);
  for (Opened* f : {&dm3, &dm4}) {
    const Signal& s = f->dataset().signals.at(0);
    EXPECT_EQ(s.dtype, DType::kInt16);
    EXPECT_EQ(s.shape, (std::vector<int64_t>{66, 65, 64}));
    EXPECT_EQ(s.axes[0].units, "um");
    EXPECT_EQ(s.axes[0].scale, 4.0);
    EXPECT_TRUE(s.axes[0].navigate);
    EXPECT_EQ(s.axes[1].units, "nm");
    EXPECT_EQ(s.axes[1].scale, 3.0);
    EXPECT_EQ(s.axes[2].units, "pm");
    EXPECT_EQ(s.axes[2].scale, 2.0);
    EXPECT_NEAR(s.fields.pixel_size_m.value_or(0), 2e-12, 1e-20);
  }
  // The same volume in both versions; a strided slab equals the same selection of the whole.
  const NdArray a = dm3.ReadAll(0);
  const NdArray b = dm4.ReadAll(0);
  EXPECT_EQ(a.bytes, b.bytes);
  auto slab = dm4.reader->Read(0, Hyperslab{{1, 2, 3}, {5, 7, 9}, {13, 9, 7}});
  ASSERT_TRUE(slab.ok()) << slab.status().message();
  const auto whole = Values<int16_t>(a);
  const auto part = Values<int16_t>(*slab);
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 7; ++j)
      for (int k = 0; k < 9; ++k)
        EXPECT_EQ(part[(i * 7 + j) * 9 + k],
                  whole[((1 + 13 * i) * 65 + (2 + 9 * j)) * 64 + (3 + 7 * k)]);

  for (const char* name : {"dmTest_float32_nonSquare_diffPixelSize.dm3",
                           "dmTest_float32_nonSquare_diffPixelSize.dm4"}) {
    Opened f = MustOpen(dir / name);
    ASSERT_NE(f.reader, nullptr);
    const Signal& s = f.dataset().signals.at(0);
    EXPECT_EQ(s.dtype, DType::kFloat32);
    EXPECT_EQ(s.shape, (std::vector<int64_t>{64, 128}));
    EXPECT_EQ(s.axes[1].units, "nm");
    EXPECT_EQ(s.axes[1].scale, 1.0);
    EXPECT_EQ(s.axes[0].units, "A");
    EXPECT_EQ(s.axes[0].scale, 2.0);
  }
}

TEST(DmTest, StackAndMultiSignal) {
  SHARED_DATA_OR_SKIP(dir, "formats/dm");
  {
    Opened f = MustOpen(dir / "test_stackbuilder_imagestack.dm3");
    ASSERT_NE(f.reader, nullptr);
    const Signal& s = f.dataset().signals.at(0);
    EXPECT_EQ(s.dtype, DType::kUInt32);
    EXPECT_EQ(s.shape, (std::vector<int64_t>{3, 2, 16}));
    EXPECT_TRUE(s.axes[0].navigate);
    EXPECT_EQ(s.axes[2].units, "um");
  }
  {
    Opened f = MustOpen(dir / "2D/multi_signal.dm3");
    ASSERT_NE(f.reader, nullptr);
    ASSERT_EQ(f.dataset().signals.size(), 2u);
    const Signal& haadf = f.dataset().signals[0];
    EXPECT_EQ(haadf.name, "HAADF");
    EXPECT_EQ(haadf.dtype, DType::kUInt16);
    EXPECT_EQ(haadf.shape, (std::vector<int64_t>{512, 512}));
    EXPECT_EQ(haadf.fields.acquired.value_or("").substr(0, 19), "2019-12-10T15:32:41");
    const Signal& plot = f.dataset().signals[1];
    EXPECT_EQ(plot.name, "Plot");
    EXPECT_EQ(plot.dtype, DType::kFloat32);
    EXPECT_EQ(plot.shape, (std::vector<int64_t>{512}));
  }
  {
    Opened f = MustOpen(dir / "test_dm_image_um_unit.dm3");
    ASSERT_NE(f.reader, nullptr);
    const Signal& s = f.dataset().signals.at(0);
    EXPECT_EQ(s.shape, (std::vector<int64_t>{68, 68}));
    EXPECT_EQ(s.dtype, DType::kInt32);
    EXPECT_EQ(s.axes[0].units, "um");
    EXPECT_EQ(s.fields.acquired.value_or("").substr(0, 10), "2015-07-20");
  }
}

TEST(DmTest, LocaleDates) {
  SHARED_DATA_OR_SKIP(dir, "formats/dm");
  // DataBar dates and times as the German, French, Mexican and UK locales write them.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"Fei HAADF-DE_location.dm3", "2016-08-27T20:54:33"},  // "27.08.2016" "20:54:33"
      {"Fei HAADF-FR_location.dm3", "2016-08-27T20:55:20"},  // "27/08/2016" "20:55:20"
      {"Fei HAADF-MX_location.dm3", "2016-08-27T20:55:59"},  // "27/08/2016" "08:55:59 p.m."
      {"Fei HAADF-UK_location.dm3", "2016-08-27T20:52:30"},  // "27/08/2016" "20:52:30"
  };
  for (const auto& [name, want] : cases) {
    SCOPED_TRACE(name);
    Opened f = MustOpen(dir / name);
    ASSERT_NE(f.reader, nullptr);
    const Signal& s = f.dataset().signals.at(0);
    EXPECT_EQ(s.shape, (std::vector<int64_t>{4, 16}));
    EXPECT_EQ(s.dtype, DType::kUInt16);
    EXPECT_EQ(s.fields.mode, Mode::kStemImage);
    EXPECT_EQ(s.fields.magnification.value_or(0), 1300000.0);
    EXPECT_EQ(s.fields.acquired.value_or("").substr(0, 19), want);
  }
}

TEST(DmTest, PackedComplexFft) {
  SHARED_DATA_OR_SKIP(path, "formats/dm/2D/test_fft_packed_complex8.dm4");
  Opened f = MustOpen(path);
  ASSERT_NE(f.reader, nullptr);
  ASSERT_EQ(f.dataset().signals.size(), 1u);
  const Signal& s = f.dataset().signals[0];
  EXPECT_EQ(s.dtype, DType::kComplex64);
  EXPECT_EQ(s.shape, (std::vector<int64_t>{5, 4}));  // MANIFEST: unpacks to 5x4 complex64
  ASSERT_EQ(s.axes.size(), 2u);
  EXPECT_EQ(s.axes[1].size, 4);
  // The file holds 5 rows of 3 packed complex64 values; row r unpacks to
  // [p2, p1, p0, conj(p1)].
  const uint64_t offset = s.metadata["ImageData"]["Data"]["array_offset"].get<uint64_t>();
  const std::vector<uint8_t> bytes = ReadFileBytes(path);
  std::vector<std::complex<float>> packed(15);
  std::memcpy(packed.data(), bytes.data() + offset, 15 * 8);
  EXPECT_EQ(packed[2 * 3].real(), 50.0f);  // the zero-frequency value
  const auto got = Values<std::complex<float>>(f.ReadAll(0));
  ASSERT_EQ(got.size(), 20u);
  for (int r = 0; r < 5; ++r) {
    EXPECT_EQ(got[r * 4 + 0], packed[r * 3 + 2]);
    EXPECT_EQ(got[r * 4 + 1], packed[r * 3 + 1]);
    EXPECT_EQ(got[r * 4 + 2], packed[r * 3 + 0]);
    EXPECT_EQ(got[r * 4 + 3], std::conj(packed[r * 3 + 1]));
  }
  auto column = f.reader->Read(0, Hyperslab{{0, 2}, {5, 1}, {1, 1}});
  ASSERT_TRUE(column.ok());
  EXPECT_EQ(Values<std::complex<float>>(*column)[2], std::complex<float>(50.0f, 0.0f));
}

// ---------------------------------------------------------------------------------------
// Files built here from the published layout.

enum Enc : uint64_t {
  kI16 = 2,
  kI32 = 3,
  kU16 = 4,
  kU32 = 5,
  kF32 = 6,
  kF64 = 7,
  kBool = 8,
  kI8 = 9,
  kU8 = 10,
  kI64 = 11,
  kU64 = 12,
  kStruct = 15,
  kString = 18,
  kArray = 20,
};

struct Tag {
  explicit Tag(std::string tag_name = "") : name(std::move(tag_name)) {}
  std::string name;
  bool group = false;
  std::vector<Tag> children;     // groups
  std::vector<uint64_t> info;    // data tags
  std::vector<uint8_t> payload;  // data tags, already in the file's byte order
};

class DmBuilder {
 public:
  DmBuilder(int version, bool little) : version_(version), little_(little) {}

  template <typename T>
  void Put(std::vector<uint8_t>& out, T value) const {
    uint8_t b[sizeof(T)];
    std::memcpy(b, &value, sizeof(T));
    if (!little_) std::reverse(b, b + sizeof(T));
    out.insert(out.end(), b, b + sizeof(T));
  }
  template <typename T>
  Tag Value(const std::string& name, uint64_t enc, T value) const {
    Tag t{name};
    t.info = {enc};
    Put(t.payload, value);
    return t;
  }
  template <typename T>
  Tag Array(const std::string& name, uint64_t enc, const std::vector<T>& values) const {
    Tag t{name};
    t.info = {kArray, enc, values.size()};
    for (T v : values) Put(t.payload, v);
    return t;
  }
  Tag Text(const std::string& name, const std::u16string& text) const {
    return Array(name, kU16, std::vector<uint16_t>(text.begin(), text.end()));
  }
  static Tag Group(const std::string& name, std::vector<Tag> children) {
    Tag t{name};
    t.group = true;
    t.children = std::move(children);
    return t;
  }

  // An ImageList entry of `code` with DM dimensions `dims` (fastest first).
  Tag Image(int code, uint64_t enc, const std::vector<uint32_t>& dims, std::vector<uint8_t> data,
            std::vector<Tag> image_tags, const std::string& units = "nm") const {
    Tag d{"Data"};
    const size_t esize = enc == kI16 || enc == kU16                  ? 2
                         : enc == kI64 || enc == kU64 || enc == kF64 ? 8
                         : enc == kI8 || enc == kU8                  ? 1
                                                                     : 4;
    d.info = {kArray, enc, data.size() / esize};
    d.payload = std::move(data);
    std::vector<Tag> dim_tags, cal_tags;
    for (uint32_t n : dims) {
      dim_tags.push_back(Value("", kU32, n));
      cal_tags.push_back(Group("", {Value("Origin", kF32, -1.0f), Value("Scale", kF32, 0.5f),
                                    Text("Units", std::u16string(units.begin(), units.end()))}));
    }
    return Group("", {Group("ImageData", {Group("Calibrations", {Group("Dimension", cal_tags)}), d,
                                          Value("DataType", kI32, int32_t(code)),
                                          Group("Dimensions", dim_tags)}),
                      Group("ImageTags", std::move(image_tags)), Text("Name", u"built")});
  }

  std::vector<uint8_t> Build(const Tag& root) const {
    std::vector<uint8_t> body;
    EncodeGroup(root, body);
    std::vector<uint8_t> out;
    PutBig(out, version_, 4);
    PutBig(out, body.size(), version_ == 4 ? 8 : 4);
    PutBig(out, little_ ? 1 : 0, 4);
    out.insert(out.end(), body.begin(), body.end());
    out.insert(out.end(), 8, 0);
    return out;
  }

 private:
  static void PutBig(std::vector<uint8_t>& out, uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) out.push_back(uint8_t(v >> (8 * i)));
  }
  void EncodeGroup(const Tag& g, std::vector<uint8_t>& out) const {
    out.push_back(0);
    out.push_back(0);
    PutBig(out, g.children.size(), version_ == 4 ? 8 : 4);
    for (const Tag& t : g.children) {
      out.push_back(t.group ? 20 : 21);
      PutBig(out, t.name.size(), 2);
      out.insert(out.end(), t.name.begin(), t.name.end());
      std::vector<uint8_t> body;
      if (t.group) {
        EncodeGroup(t, body);
      } else {
        body.insert(body.end(), {'%', '%', '%', '%'});
        PutBig(body, t.info.size(), version_ == 4 ? 8 : 4);
        for (uint64_t w : t.info) PutBig(body, w, version_ == 4 ? 8 : 4);
        body.insert(body.end(), t.payload.begin(), t.payload.end());
      }
      if (version_ == 4) PutBig(out, body.size(), 8);
      out.insert(out.end(), body.begin(), body.end());
    }
  }

  int version_;
  bool little_;
};

template <typename T>
std::vector<uint8_t> Bytes(const DmBuilder& b, const std::vector<T>& values) {
  std::vector<uint8_t> out;
  for (T v : values) b.Put(out, v);
  return out;
}

TEST(DmTest, BuiltFilesEveryTagTypeBothOrdersBothVersions) {
  for (int version : {3, 4}) {
    for (bool little : {true, false}) {
      SCOPED_TRACE("DM" + std::to_string(version) + (little ? " little" : " big"));
      DmBuilder b(version, little);
      Tag s{"Struct"};
      s.info = {kStruct, 0, 3, 0, kI16, 0, kF32, 0, kU8};
      b.Put(s.payload, int16_t(-7));
      b.Put(s.payload, 2.5f);
      b.Put(s.payload, uint8_t(200));
      Tag sa{"Struct array"};
      sa.info = {kArray, kStruct, 0, 2, 0, kU32, 0, kF64, 2};
      for (int i = 0; i < 2; ++i) {
        b.Put(sa.payload, uint32_t(10 + i));
        b.Put(sa.payload, 0.25 * i);
      }
      Tag str{"Old string"};
      str.info = {kString, 3};
      str.payload = {'a', 'b', 0xB5};  // Latin-1 µ
      std::vector<float> big(1000, 1.5f);
      std::vector<Tag> tags = {
          b.Value("i16", kI16, int16_t(-2)),
          b.Value("i32", kI32, int32_t(-70000)),
          b.Value("u16", kU16, uint16_t(65000)),
          b.Value("u32", kU32, uint32_t(4000000000u)),
          b.Value("f32", kF32, 0.5f),
          b.Value("f64", kF64, -1e300),
          b.Value("bool", kBool, uint8_t(1)),
          b.Value("i8", kI8, int8_t(-5)),
          b.Value("u8", kU8, uint8_t(250)),
          s,
          sa,
          str,
          b.Text("Text", u"5 \u00b5m \u2192 \U0001F600"),
          b.Array("Small", kI32, std::vector<int32_t>{1, 2, 3}),
          b.Array("Big", kF32, big),
          DmBuilder::Group("Microscope Info",
                           {b.Value("Voltage", kF64, 300000.0), b.Text("Illumination Mode", u"TEM"),
                            b.Text("Name", u"Test Scope")}),
          DmBuilder::Group("List", {b.Value("", kI32, int32_t(1)), b.Value("", kI32, int32_t(2))}),
          DmBuilder::Group("Mixed", {b.Value("", kI32, int32_t(1)), b.Value("a", kI32, int32_t(2)),
                                     b.Value("a", kI32, int32_t(3))}),
      };
      if (version == 4) {
        tags.push_back(b.Value("i64", kI64, int64_t(-5000000000)));
        tags.push_back(b.Value("u64", kU64, uint64_t(18000000000000000000ull)));
      }
      // 3 x 2 int16 image (DM dims: width 3, height 2).
      std::vector<uint8_t> pixels = Bytes(b, std::vector<int16_t>{-1, 2, -3, 4, -5, 6});
      Tag root = DmBuilder::Group(
          "", {DmBuilder::Group("ImageList", {b.Image(1, kI16, {3, 2}, pixels, tags)})});
      const fs::path path = TempPath("built.dm" + std::to_string(version));
      WriteFileBytes(path, b.Build(root));
      Opened f = MustOpen(path);
      ASSERT_NE(f.reader, nullptr);
      const Signal& sig = f.dataset().signals.at(0);
      EXPECT_EQ(sig.shape, (std::vector<int64_t>{2, 3}));
      EXPECT_EQ(sig.name, "built");
      EXPECT_EQ(sig.fields.mode, Mode::kTemImage);
      EXPECT_EQ(sig.fields.instrument.value_or(""), "Test Scope");
      EXPECT_EQ(sig.fields.beam_energy_kev.value_or(0), 300.0);
      EXPECT_DOUBLE_EQ(sig.axes[1].offset, 0.5);  // -Origin * Scale
      EXPECT_NEAR(sig.fields.pixel_size_m.value_or(0), 0.5e-9, 1e-18);
      EXPECT_EQ(Values<int16_t>(f.ReadAll(0)), (std::vector<int16_t>{-1, 2, -3, 4, -5, 6}));
      const Metadata& t = sig.metadata["ImageTags"];
      EXPECT_EQ(t["i16"].get<int>(), -2);
      EXPECT_EQ(t["i32"].get<int>(), -70000);
      EXPECT_EQ(t["u16"].get<int>(), 65000);
      EXPECT_EQ(t["u32"].get<uint64_t>(), 4000000000u);
      EXPECT_EQ(t["f32"].get<double>(), 0.5);
      EXPECT_TRUE(t["f32"].is_number_float());
      EXPECT_EQ(t["f64"].get<double>(), -1e300);
      EXPECT_EQ(t["bool"], true);
      EXPECT_EQ(t["i8"].get<int>(), -5);
      EXPECT_EQ(t["u8"].get<int>(), 250);
      EXPECT_EQ(t["Struct"], Metadata::parse("[-7, 2.5, 200]"));
      EXPECT_EQ(t["Struct array"], Metadata::parse("[[10, 0.0], [11, 0.25]]"));
      EXPECT_EQ(t["Old string"], "ab\xC2\xB5");
      EXPECT_EQ(t["Text"], "5 \xC2\xB5m \xE2\x86\x92 \xF0\x9F\x98\x80");
      EXPECT_EQ(t["Small"], Metadata::parse("[1, 2, 3]"));
      EXPECT_EQ(t["Big"]["count"].get<int>(), 1000);
      EXPECT_EQ(t["Big"]["element_type"], "float32");
      EXPECT_EQ(t["List"], Metadata::parse("[1, 2]"));
      EXPECT_EQ(t["Mixed"]["#0"], 1);
      EXPECT_EQ(t["Mixed"]["a"], 2);
      EXPECT_EQ(t["Mixed"]["a #2"], 3);
      if (version == 4) {
        EXPECT_EQ(t["i64"].get<int64_t>(), -5000000000);
        EXPECT_EQ(t["u64"].get<uint64_t>(), 18000000000000000000ull);
      }
      fs::remove(path);
    }
  }
}

TEST(DmTest, BuiltThumbnailRgbInt64AndOldPackedComplex) {
  DmBuilder b(4, false);  // big-endian data
  // Thumbnail: an RGB image listed in Thumbnails.
  Tag thumb =
      b.Image(23, kU32, {2, 1}, Bytes(b, std::vector<uint32_t>{0x00010203, 0x00040506}), {});
  Tag rgb = b.Image(8, kU32, {2, 1}, Bytes(b, std::vector<uint32_t>{0x00102030, 0x00405060}), {});
  Tag i64 = b.Image(39, kI64, {3}, Bytes(b, std::vector<int64_t>{-1, 1ll << 40, 7}), {});
  // Old packed complex of a 2x2 FFT: t = [A(1,0), A(0,0), A(1,1), A(0,1)] (all real).
  Tag packed = b.Image(5, kF32, {2, 2}, Bytes(b, std::vector<float>{1, 2, 3, 4}), {});
  Tag root = DmBuilder::Group(
      "", {DmBuilder::Group("ImageList", {thumb, rgb, i64, packed}),
           DmBuilder::Group("Thumbnails",
                            {DmBuilder::Group("", {b.Value("ImageIndex", kU32, uint32_t(0))})})});
  const fs::path path = TempPath("thumb.dm4");
  WriteFileBytes(path, b.Build(root));
  Opened f = MustOpen(path);
  ASSERT_NE(f.reader, nullptr);
  ASSERT_EQ(f.dataset().signals.size(), 3u);
  EXPECT_EQ(f.dataset().signals[0].dtype, DType::kRGB8);
  EXPECT_EQ(f.dataset().signals[0].shape, (std::vector<int64_t>{2}));
  EXPECT_EQ(f.ReadAll(0).bytes, (std::vector<uint8_t>{0x10, 0x20, 0x30, 0x40, 0x50, 0x60}));
  EXPECT_EQ(f.dataset().signals[1].dtype, DType::kInt64);
  EXPECT_EQ(Values<int64_t>(f.ReadAll(1)), (std::vector<int64_t>{-1, 1ll << 40, 7}));
  EXPECT_EQ(f.dataset().signals[2].dtype, DType::kComplex64);
  EXPECT_EQ(f.dataset().signals[2].shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(Values<std::complex<float>>(f.ReadAll(2)),
            (std::vector<std::complex<float>>{2, 4, 1, 3}));
  fs::remove(path);
}

// ---------------------------------------------------------------------------------------
// Damaged and hostile files: each must give an error or a valid result, never a crash.

// Opens `bytes` as a file; when it opens, reads every signal whole.
Status OpenAndReadAll(const std::vector<uint8_t>& bytes, const fs::path& path) {
  WriteFileBytes(path, bytes);
  auto r = OpenDigitalMicrograph(path);
  if (!r.ok()) {
    EXPECT_FALSE(r.status().message().empty());
    return r.status();
  }
  for (size_t i = 0; i < (*r)->dataset().signals.size(); ++i) {
    const Signal& s = (*r)->dataset().signals[i];
    if (s.ByteCount() > (64u << 20)) continue;
    auto a = (*r)->Read(i, Hyperslab::All(s.shape));
    if (a.ok()) {
      EXPECT_EQ(a->bytes.size(), s.ByteCount());
    }
    (void)(*r)->dataset().signals[i].metadata.dump(-1, ' ', false,
                                                   nlohmann::json::error_handler_t::strict);
  }
  return Status::Ok();
}

TEST(DmTest, TruncatedFilesFailCleanly) {
  SHARED_DATA_OR_SKIP(path, "formats/dm/2D/test-1.dm4");
  for (const char* name : {"formats/dm/2D/test-1.dm4", "formats/dm/2D/test-2.dm3"}) {
    const std::vector<uint8_t> bytes = ReadFileBytes(::scisearch::testing::SharedData() / name);
    const fs::path tmp = TempPath("trunc");
    // Every prefix of the first 2 KiB (the header and first tags), then a sample.
    for (size_t n = 0; n < bytes.size(); n += (n < 2048 ? 1 : 61)) {
      std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + n);
      Status st = OpenAndReadAll(prefix, tmp);
      EXPECT_FALSE(st.ok()) << name << " truncated to " << n << " bytes opened";
    }
    fs::remove(tmp);
  }
}

TEST(DmTest, BitFlippedFilesNeverCrash) {
  SHARED_DATA_OR_SKIP(path, "formats/dm/2D/test-7.dm3");
  for (const char* name : {"formats/dm/2D/test-7.dm3", "formats/dm/2D/test-7.dm4"}) {
    const std::vector<uint8_t> bytes = ReadFileBytes(::scisearch::testing::SharedData() / name);
    const fs::path tmp = TempPath("flip");
    int opened = 0;
    for (uint32_t seed = 1; seed <= 300; ++seed) {
      std::mt19937 rng(seed);
      std::vector<uint8_t> copy = bytes;
      const int flips = 1 + int(rng() % 8);
      for (int k = 0; k < flips; ++k) {
        const size_t at = rng() % copy.size();
        copy[at] ^= uint8_t(1u << (rng() % 8));
      }
      if (OpenAndReadAll(copy, tmp).ok()) ++opened;
    }
    EXPECT_GT(opened, 0);  // most flips land in values and names, which stay readable
    fs::remove(tmp);
  }
}

TEST(DmTest, HostileSizesAreRejected) {
  const fs::path tmp = TempPath("hostile");
  for (int version : {3, 4}) {
    DmBuilder b(version, true);
    const std::vector<uint8_t> pixels = Bytes(b, std::vector<int16_t>{1, 2, 3, 4});
    auto image = [&](std::vector<uint32_t> dims) {
      return DmBuilder::Group(
          "", {DmBuilder::Group("ImageList", {b.Image(1, kI16, dims, pixels, {})})});
    };
    // Dimensions far larger than the data.
    EXPECT_FALSE(OpenAndReadAll(b.Build(image({0xFFFFFFFF, 0xFFFFFFFF})), tmp).ok());
    EXPECT_FALSE(OpenAndReadAll(b.Build(image({3, 2})), tmp).ok());
    EXPECT_TRUE(OpenAndReadAll(b.Build(image({2, 2})), tmp).ok());

    const std::vector<uint8_t> good = b.Build(image({2, 2}));
    const size_t word = version == 4 ? 8 : 4;
    // Root tag count (after version, length, order, 2 flag bytes) set to all ones.
    std::vector<uint8_t> bad = good;
    const size_t count_at = 4 + word + 4 + 2;
    std::fill(bad.begin() + count_at, bad.begin() + count_at + word, 0xFF);
    EXPECT_FALSE(OpenAndReadAll(bad, tmp).ok());
    // Every 4- or 8-byte big-endian word in the first 600 bytes set to a huge value.
    for (size_t at = 0; at + word <= std::min<size_t>(good.size(), 600); ++at) {
      std::vector<uint8_t> copy = good;
      std::fill(copy.begin() + at, copy.begin() + at + word, 0x7F);
      (void)OpenAndReadAll(copy, tmp);
    }
    // Deep nesting.
    Tag deep = DmBuilder::Group("leaf", {});
    for (int i = 0; i < 200; ++i) deep = DmBuilder::Group("g", {deep});
    Status st = OpenAndReadAll(b.Build(DmBuilder::Group("", {deep})), tmp);
    EXPECT_FALSE(st.ok());
    EXPECT_NE(st.message().find("nested"), std::string::npos) << st.message();
    // An array that claims more elements than the file holds.
    Tag huge{"Huge"};
    huge.info = {kArray, kF64, 0xFFFFFFF0u};
    st = OpenAndReadAll(b.Build(DmBuilder::Group("", {huge})), tmp);
    EXPECT_FALSE(st.ok());
    EXPECT_NE(st.message().find("Huge"), std::string::npos) << st.message();
    // A struct with an absurd field count.
    Tag s{"S"};
    s.info = {kStruct, 0, 1ull << 30};
    EXPECT_FALSE(OpenAndReadAll(b.Build(DmBuilder::Group("", {s})), tmp).ok());
    // ImageData/Data as a group that mimics the array descriptor with wrong types.
    Tag fake = DmBuilder::Group(
        "", {DmBuilder::Group("ImageData",
                              {DmBuilder::Group("Data", {b.Text("array_offset", u"x"),
                                                         b.Value("array_bytes", kF32, -1.0f)}),
                               b.Value("DataType", kI32, int32_t(1)),
                               DmBuilder::Group("Dimensions", {b.Value("", kU32, uint32_t(2))})})});
    st =
        OpenAndReadAll(b.Build(DmBuilder::Group("", {DmBuilder::Group("ImageList", {fake})})), tmp);
    EXPECT_FALSE(st.ok());
    EXPECT_NE(st.message().find("ImageList[0]"), std::string::npos) << st.message();
    // No image at all.
    EXPECT_FALSE(OpenAndReadAll(b.Build(DmBuilder::Group("", {b.Value("x", kI32, 1)})), tmp).ok());
  }
  fs::remove(tmp);
}

}  // namespace
}  // namespace scisearch::formats
