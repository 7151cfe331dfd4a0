// Tests of the TIFF reader (src/formats/tiff_reader.cc).
//
// Expected values come from the files' bytes (decoded independently with Python's
// tifffile/PIL, which agree with the raw strips), from MANIFEST.md, or, for the
// synthetic files, from the pixels the test itself writes with libtiff.
#include <gtest/gtest.h>
#include <tiffio.h>
#include <zlib.h>

#include <cmath>
#include <cstring>
#include <filesystem>
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
using ::scisearch::testing::TempDir;
using ::scisearch::testing::WriteFileBytes;

constexpr const char* kTiffDir = "formats/tiff/";

std::unique_ptr<DatasetReader> MustOpen(const fs::path& path) {
  auto reader = OpenDataset(path);
  EXPECT_TRUE(reader.ok()) << reader.status().message();
  if (!reader.ok()) return nullptr;
  return std::move(reader).value();
}

template <typename T>
std::vector<T> As(const NdArray& a) {
  std::vector<T> v(a.bytes.size() / sizeof(T));
  std::memcpy(v.data(), a.bytes.data(), v.size() * sizeof(T));
  return v;
}

// Sum of all elements of an integer or float array, as double.
double Sum(const NdArray& a) {
  double total = 0;
  auto add = [&](auto tag) {
    using T = decltype(tag);
    for (T v : As<T>(a)) total += double(v);
  };
  switch (a.dtype) {
    case DType::kUInt8:
      add(uint8_t{});
      break;
    case DType::kUInt16:
      add(uint16_t{});
      break;
    case DType::kInt16:
      add(int16_t{});
      break;
    case DType::kInt32:
      add(int32_t{});
      break;
    case DType::kUInt32:
      add(uint32_t{});
      break;
    case DType::kFloat32:
      add(float{});
      break;
    case DType::kFloat64:
      add(double{});
      break;
    case DType::kRGB8:
    case DType::kRGBA8:
      add(uint8_t{});
      break;
    default:
      ADD_FAILURE() << "unexpected dtype";
  }
  return total;
}

Hyperslab Strided(const std::vector<int64_t>& shape, int64_t row_start, int64_t row_step,
                  int64_t col_start, int64_t col_step) {
  Hyperslab slab = Hyperslab::All(shape);
  const size_t r = shape.size() - 2, c = shape.size() - 1;
  slab.start[r] = row_start;
  slab.step[r] = row_step;
  slab.count[r] = (shape[r] - row_start + row_step - 1) / row_step;
  slab.start[c] = col_start;
  slab.step[c] = col_step;
  slab.count[c] = (shape[c] - col_start + col_step - 1) / col_step;
  return slab;
}

// One pixel (y, x) of a 2-D signal, read as a 1x1 selection, as double.
double Pixel(DatasetReader& reader, size_t signal, int64_t y, int64_t x) {
  const Signal& s = reader.dataset().signals[signal];
  Hyperslab slab = Hyperslab::All(s.shape);
  for (size_t k = 0; k < s.shape.size(); ++k) slab.count[k] = 1;
  slab.start[s.shape.size() - 2] = y;
  slab.start[s.shape.size() - 1] = x;
  if (s.shape.size() == 3) slab.start[0] = 1;  // stacks: the second frame
  auto a = reader.Read(signal, slab);
  EXPECT_TRUE(a.ok()) << a.status().message();
  if (!a.ok()) return NAN;
  return Sum(*a);
}

// ------------------------------------------------------------------------------------
// Real files: shape, type and pixels (sums and sample pixels from tifffile/PIL).

struct Expected {
  const char* file;
  std::vector<int64_t> shape;
  DType dtype;
  double sum;
  double pixel_0_0, pixel_mid, pixel_last;  // (0,0), (h/2, w/3), (h-1, w-1)
  double strided_sum;                       // rows 1::3, columns 2::5
};

class TiffPixels : public ::testing::TestWithParam<Expected> {};

TEST_P(TiffPixels, ShapeTypeAndPixelsMatchTheFile) {
  const Expected& e = GetParam();
  SHARED_DATA_OR_SKIP(path, std::string(kTiffDir) + e.file);
  auto reader = MustOpen(path);
  ASSERT_TRUE(reader);
  const Dataset& d = reader->dataset();
  EXPECT_EQ(d.format, "tiff");
  ASSERT_GE(d.signals.size(), 1u);
  const Signal& s = d.signals[0];
  EXPECT_EQ(s.shape, e.shape);
  EXPECT_EQ(s.dtype, e.dtype);
  ASSERT_EQ(s.axes.size(), s.shape.size());
  for (size_t k = 0; k < s.axes.size(); ++k) EXPECT_EQ(s.axes[k].size, s.shape[k]);
  auto all = reader->Read(0, Hyperslab::All(s.shape));
  ASSERT_TRUE(all.ok()) << all.status().message();
  EXPECT_EQ(all->shape, s.shape);
  EXPECT_EQ(all->bytes.size(), s.ByteCount());
  EXPECT_DOUBLE_EQ(Sum(*all), e.sum);
  const int64_t h = s.shape[s.shape.size() - 2], w = s.shape.back();
  EXPECT_EQ(Pixel(*reader, 0, 0, 0), e.pixel_0_0);
  EXPECT_EQ(Pixel(*reader, 0, h / 2, w / 3), e.pixel_mid);
  EXPECT_EQ(Pixel(*reader, 0, h - 1, w - 1), e.pixel_last);
  Hyperslab slab = Strided(s.shape, 1, 3, 2, 5);
  if (s.shape.size() == 3) slab.start[0] = 1, slab.count[0] = 1;
  auto strided = reader->Read(0, slab);
  ASSERT_TRUE(strided.ok()) << strided.status().message();
  EXPECT_EQ(strided->shape, slab.count);
  EXPECT_DOUBLE_EQ(Sum(*strided), e.strided_sum);
}

INSTANTIATE_TEST_SUITE_P(
    SharedFiles, TiffPixels,
    ::testing::Values(
        Expected{"FEI-Helios-Ebeam-16bits.tif",
                 {471, 512},
                 DType::kUInt16,
                 189324800,
                 0,
                 0,
                 64512,
                 15559168},
        Expected{"FEI-Helios-Ebeam-8bits.tif", {471, 512}, DType::kUInt8, 739550, 0, 0, 252, 60778},
        Expected{"FEI-Helios-navcam.tif", {551, 768}, DType::kUInt8, 0, 0, 0, 0, 0},
        Expected{"TVIPS_bin4.tif", {1024, 1024}, DType::kUInt8, 109550672, 255, 72, 109, 7362949},
        Expected{
            "olympus_SIS.tif", {101, 112}, DType::kUInt16, 90485618, 7046, 9716, 7400, 5986940},
        Expected{"test_loading_image_saved_with_DM.tif",
                 {68, 68},
                 DType::kInt32,
                 15422830,
                 3465,
                 3355,
                 3319,
                 1075360},
        Expected{"test_loading_image_saved_with_DM_stack.tif",
                 {2, 68, 68},
                 DType::kFloat32,
                 30845660,
                 3465,
                 3355,
                 3319,
                 1075360},
        Expected{"test_tiff_Zeiss_SEM_1k.tif",
                 {768, 1024},
                 DType::kUInt8,
                 128524498,
                 122,
                 156,
                 124,
                 8516466},
        Expected{"test_tiff_Zeiss_SEM_512pix.tif",
                 {384, 512},
                 DType::kUInt8,
                 29410719,
                 148,
                 139,
                 142,
                 1945643},
        Expected{"JEOL-SightX-Ronchigram-dummy.tif.gz",
                 {556, 556},
                 DType::kUInt16,
                 158586768,
                 513,
                 513,
                 513,
                 10534455},
        Expected{"JEOL-SightX-SAED-dummy.tif.gz",
                 {556, 556},
                 DType::kUInt16,
                 158586768,
                 513,
                 513,
                 513,
                 10534455},
        Expected{"JEOL-SightX-TEM-mag-dummy.tif.gz",
                 {556, 556},
                 DType::kUInt16,
                 158586768,
                 513,
                 513,
                 513,
                 10534455}),
    [](const ::testing::TestParamInfo<Expected>& info) {
      std::string name = info.param.file;
      for (char& c : name) {
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
      }
      return name;
    });

// ------------------------------------------------------------------------------------
// Vendor metadata and normalised fields.

TEST(TiffFei, HeliosMetadataIsTypedAndNormalised) {
  SHARED_DATA_OR_SKIP(path, std::string(kTiffDir) + "FEI-Helios-Ebeam-8bits.tif");
  auto reader = MustOpen(path);
  ASSERT_TRUE(reader);
  const Signal& s = reader->dataset().signals[0];
  const Metadata& fei = s.metadata.at("fei");
  EXPECT_TRUE(fei.at("Beam").at("HV").is_number_integer());
  EXPECT_EQ(fei.at("Beam").at("HV").get<int>(), 5000);
  EXPECT_TRUE(fei.at("Scan").at("PixelWidth").is_number_float());
  EXPECT_DOUBLE_EQ(fei.at("Scan").at("PixelWidth").get<double>(), 3.3724e-006);
  EXPECT_EQ(fei.at("System").at("SystemType").get<std::string>(), "Helios NanoLab\" 660");
  EXPECT_EQ(fei.at("Detectors").at("Name").get<std::string>(), "ETD");
  EXPECT_EQ(s.metadata.at("tiff").at("ImageWidth").get<int>(), 512);
  EXPECT_EQ(s.fields.acquired.value_or(""), "2016-06-13T17:06:40");
  EXPECT_EQ(s.fields.instrument.value_or(""), "Helios NanoLab 660");
  EXPECT_EQ(s.fields.mode, Mode::kSemImage);
  EXPECT_DOUBLE_EQ(s.fields.beam_energy_kev.value_or(0), 5.0);
  EXPECT_DOUBLE_EQ(s.fields.pixel_size_m.value_or(0), 3.3724e-6);
  EXPECT_EQ(s.fields.pixel_size_units.value_or(""), "m");
  EXPECT_EQ(s.fields.detector.value_or(""), "ETD");
  // MagCanvasRealWidth 0.20720 m over HFW 0.00172667 m.
  EXPECT_NEAR(s.fields.magnification.value_or(0), 0.20720 / 0.00172667, 1e-6);
  EXPECT_DOUBLE_EQ(s.axes[1].scale, 3.3724e-6);
  EXPECT_EQ(s.axes[1].units, "m");
}

TEST(TiffFei, NavCamIsAnOpticalImage) {
  SHARED_DATA_OR_SKIP(path, std::string(kTiffDir) + "FEI-Helios-navcam.tif");
  auto reader = MustOpen(path);
  ASSERT_TRUE(reader);
  const Signal& s = reader->dataset().signals[0];
  EXPECT_EQ(s.fields.mode, Mode::kOpticalImage);
  EXPECT_EQ(s.fields.acquired.value_or(""), "2022-05-17T09:07:08");
  EXPECT_EQ(s.fields.detector.value_or(""), "Nav-Cam");
  // [IRBeam] HFW 0.202732 m over [Image] ResolutionX 768.
  EXPECT_NEAR(s.fields.pixel_size_m.value_or(0), 0.202732 / 768, 1e-12);
  EXPECT_FALSE(s.fields.beam_energy_kev.has_value());

  SHARED_DATA_OR_SKIP(no_ir, std::string(kTiffDir) + "FEI-Helios-navcam-with-no-IRBeam.tif");
  auto other = MustOpen(no_ir);
  ASSERT_TRUE(other);
  EXPECT_FALSE(other->dataset().signals[0].fields.pixel_size_m.has_value());
  EXPECT_EQ(other->dataset().signals[0].fields.mode, Mode::kOpticalImage);
}

TEST(TiffZeiss, MerlinMetadata) {
  SHARED_DATA_OR_SKIP(path, std::string(kTiffDir) + "test_tiff_Zeiss_SEM_1k.tif");
  auto reader = MustOpen(path);
  ASSERT_TRUE(reader);
  const Signal& s = reader->dataset().signals[0];
  const Metadata& z = s.metadata.at("zeiss");
  EXPECT_EQ(z.at("AP_ACTUALKV").at("label").get<std::string>(), "EHT");
  EXPECT_DOUBLE_EQ(z.at("AP_ACTUALKV").at("value").get<double>(), 25.0);
  EXPECT_EQ(z.at("AP_ACTUALKV").at("units").get<std::string>(), "kV");
  EXPECT_EQ(z.at("AP_MAG").at("value").get<int>(), 105);
  EXPECT_EQ(z.at("AP_DATE").at("value").get<std::string>(), "23 Dec 2015");
  EXPECT_EQ(z.at("SV_SERIAL_NUMBER").at("value").get<std::string>(), "Merlin-61-08");
  EXPECT_EQ(z.at("AP_IMAGE_PIXEL_SIZE").at("units").get<std::string>(), "\xC2\xB5m");  // µm
  EXPECT_DOUBLE_EQ(z.at("header").at(3).get<double>(), 2.614514e-06);
  EXPECT_EQ(s.fields.acquired.value_or(""), "2015-12-23T09:40:32");
  EXPECT_EQ(s.fields.instrument.value_or(""), "Zeiss Merlin");
  EXPECT_EQ(s.fields.mode, Mode::kSemImage);
  EXPECT_DOUBLE_EQ(s.fields.beam_energy_kev.value_or(0), 25.0);
  EXPECT_DOUBLE_EQ(s.fields.magnification.value_or(0), 105);
  EXPECT_NEAR(s.fields.pixel_size_m.value_or(0), 2.615e-6, 1e-15);
  EXPECT_EQ(s.fields.detector.value_or(""), "HE-SE2");
  // The palette is a gray ramp, so pixels are gray values.
  EXPECT_TRUE(s.metadata.at("tiff").at("ColorMap").at("gray").get<bool>());
}

TEST(TiffZeiss, UltraMetadataWithKiloMagnification) {
  SHARED_DATA_OR_SKIP(path, std::string(kTiffDir) + "test_tiff_Zeiss_SEM_512pix.tif");
  auto reader = MustOpen(path);
  ASSERT_TRUE(reader);
  const Signal& s = reader->dataset().signals[0];
  EXPECT_EQ(s.fields.acquired.value_or(""), "2018-09-25T08:20:42");
  EXPECT_EQ(s.fields.instrument.value_or(""), "Zeiss ULTRA 55");
  EXPECT_DOUBLE_EQ(s.fields.beam_energy_kev.value_or(0), 5.0);
  EXPECT_DOUBLE_EQ(s.fields.magnification.value_or(0), 50000);  // "50.00 K X"
  EXPECT_NEAR(s.fields.pixel_size_m.value_or(0), 5.825e-9, 1e-18);
  EXPECT_EQ(s.fields.detector.value_or(""), "InLens");
  // A palette with colour entries: the pixels are the indices.
  EXPECT_FALSE(s.metadata.at("tiff").at("ColorMap").at("gray").get<bool>());
}

TEST(TiffTvips, HeaderVersion2) {
  SHARED_DATA_OR_SKIP(path, std::string(kTiffDir) + "TVIPS_bin4.tif");
  auto reader = MustOpen(path);
  ASSERT_TRUE(reader);
  const Signal& s = reader->dataset().signals[0];
  const Metadata& t = s.metadata.at("tvips");
  EXPECT_EQ(t.at("Version").get<int>(), 2);
  EXPECT_EQ(t.at("CameraType").get<std::string>(), "F416");
  EXPECT_EQ(t.at("BinningX").get<int>(), 4);
  EXPECT_EQ(t.at("ImageName").get<std::string>(),
            "M14-50nmGe+5nmAl2O3-contact34-56_12-04-2017_001");
  EXPECT_DOUBLE_EQ(s.fields.beam_energy_kev.value_or(0), 99.0);
  EXPECT_DOUBLE_EQ(s.fields.magnification.value_or(0), 32000);
  EXPECT_NEAR(s.fields.pixel_size_m.value_or(0), 1.4208e-9, 1e-13);
  EXPECT_EQ(s.fields.detector.value_or(""), "F416");
  EXPECT_EQ(s.fields.mode, Mode::kTemImage);
  // Date 0x07E1040C = 2017-04-12 (the date in the image name), time 32477 s.
  EXPECT_EQ(s.fields.acquired.value_or(""), "2017-04-12T09:01:17");
}

TEST(TiffOlympus, RawDataFirstThenJpegPreview) {
  SHARED_DATA_OR_SKIP(path, std::string(kTiffDir) + "olympus_SIS.tif");
  auto reader = MustOpen(path);
  ASSERT_TRUE(reader);
  const Dataset& d = reader->dataset();
  ASSERT_EQ(d.signals.size(), 2u);
  const Signal& raw = d.signals[0];
  EXPECT_EQ(raw.dtype, DType::kUInt16);
  const Metadata& sis = raw.metadata.at("olympus_sis");
  EXPECT_DOUBLE_EQ(sis.at("magnification").get<double>(), 600000);
  // TIFF DateTime "2018:11:15 19:42:31"; the SIS structure agrees to the minute.
  EXPECT_EQ(raw.fields.acquired.value_or(""), "2018-11-15T19:42:31");
  EXPECT_EQ(sis.at("datetime").get<std::string>(), "2018-11-15T19:42:00");
  EXPECT_DOUBLE_EQ(raw.fields.magnification.value_or(0), 600000);
  EXPECT_NEAR(raw.fields.pixel_size_m.value_or(0), 2.3927917758761e-11, 1e-22);
  EXPECT_EQ(raw.fields.detector.value_or(""), "Quemesa");
  EXPECT_EQ(raw.metadata.at("tiff").at("Make").get<std::string>(),
            "Olympus Soft Imaging Solutions");
  const Signal& preview = d.signals[1];
  EXPECT_EQ(preview.name, "preview");
  EXPECT_EQ(preview.dtype, DType::kRGB8);
  EXPECT_EQ(preview.shape, (std::vector<int64_t>{101, 112}));
  auto rgb = reader->Read(1, Hyperslab::All(preview.shape));
  ASSERT_TRUE(rgb.ok()) << rgb.status().message();
  // Sum and first pixel of the JPEG preview as PIL decodes it.
  EXPECT_DOUBLE_EQ(Sum(*rgb), 4857285);
}

TEST(TiffDigitalMicrograph, StackAxesFromPrivateTags) {
  SHARED_DATA_OR_SKIP(path, std::string(kTiffDir) + "test_loading_image_saved_with_DM_stack.tif");
  auto reader = MustOpen(path);
  ASSERT_TRUE(reader);
  const Signal& s = reader->dataset().signals[0];
  ASSERT_EQ(s.axes.size(), 3u);
  EXPECT_EQ(s.axes[0].name, "frame");
  EXPECT_TRUE(s.axes[0].navigate);
  EXPECT_DOUBLE_EQ(s.axes[0].scale, 2.5);        // tag 65011
  EXPECT_EQ(s.axes[0].units, "s");               // tag 65005
  EXPECT_NEAR(s.axes[1].scale, 1.68674, 1e-5);   // y: tag 65010
  EXPECT_NEAR(s.axes[2].scale, 0.168674, 1e-6);  // x: tag 65009
  EXPECT_EQ(s.axes[2].units, "um");
  EXPECT_NEAR(s.fields.pixel_size_m.value_or(0), 0.168674e-6, 1e-11);
  EXPECT_EQ(s.metadata.at("digital_micrograph").at("x_units").get<std::string>(), "\xC2\xB5m");
}

TEST(TiffJeol, SightXModesAndCalibration) {
  SHARED_DATA_OR_SKIP(saed, std::string(kTiffDir) + "JEOL-SightX-SAED-dummy.tif.gz");
  auto reader = MustOpen(saed);
  ASSERT_TRUE(reader);
  const Dataset& d = reader->dataset();
  EXPECT_EQ(d.path, saed);
  const Signal& s = d.signals[0];
  const Metadata& j = s.metadata.at("jeol");
  EXPECT_EQ(j.at("ElectronGun").at("AccelerationVoltage").get<int>(), 200000);
  EXPECT_EQ(j.at("ImageFormingSystem").at("ModeString").get<std::string>(), "DIFF");
  EXPECT_EQ(s.fields.mode, Mode::kDiffraction);
  EXPECT_DOUBLE_EQ(s.fields.beam_energy_kev.value_or(0), 200);
  EXPECT_EQ(s.fields.instrument.value_or(""), "JEOL JEM-ARM200F");
  EXPECT_EQ(s.fields.acquired.value_or("").substr(0, 19), "2015-07-30T07:17:25");
  EXPECT_EQ(s.fields.pixel_size_units.value_or(""), "1/m");
  // 1/93 inch film pixel over (400 mm x 2.5079 pm): about 0.2723 1/nm.
  EXPECT_NEAR(s.fields.pixel_size_m.value_or(0), 0.0254 / 93 / (0.4 * 2.50793e-12), 1e4);

  SHARED_DATA_OR_SKIP(mag, std::string(kTiffDir) + "JEOL-SightX-TEM-mag-dummy.tif.gz");
  auto tem = MustOpen(mag);
  ASSERT_TRUE(tem);
  const Signal& t = tem->dataset().signals[0];
  EXPECT_EQ(t.fields.mode, Mode::kTemImage);
  EXPECT_DOUBLE_EQ(t.fields.magnification.value_or(0), 150000);
  EXPECT_NEAR(t.fields.pixel_size_m.value_or(0), 0.0254 / 93 / 150000, 1e-15);
  EXPECT_EQ(t.fields.acquired.value_or("").substr(0, 19), "2019-11-27T16:11:26");

  SHARED_DATA_OR_SKIP(ronchi, std::string(kTiffDir) + "JEOL-SightX-Ronchigram-dummy.tif.gz");
  auto r = MustOpen(ronchi);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->dataset().signals[0].fields.mode, Mode::kDiffraction);
  EXPECT_FALSE(r->dataset().signals[0].fields.pixel_size_m.has_value());
}

// ------------------------------------------------------------------------------------
// Synthetic files written with libtiff: layouts the shared files do not cover.

struct PageSpec {
  uint32_t width = 7, height = 5;
  uint16_t bits = 16, samples = 1, format = SAMPLEFORMAT_UINT;
  uint16_t photometric = PHOTOMETRIC_MINISBLACK;
  uint16_t planar = PLANARCONFIG_CONTIG;
  uint16_t compression = COMPRESSION_NONE;
  uint32_t rows_per_strip = 2;
  uint32_t tile = 0;              // tile width and length (multiple of 16) when tiled
  std::vector<uint8_t> data;      // rows of packed samples (per plane when planar separate)
  std::vector<uint16_t> palette;  // 3 * 2^bits entries
};

void WriteTiff(const fs::path& path, const std::vector<PageSpec>& pages) {
  TIFF* tif = TIFFOpen(path.c_str(), "w");
  ASSERT_NE(tif, nullptr);
  for (const PageSpec& p : pages) {
    TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, p.width);
    TIFFSetField(tif, TIFFTAG_IMAGELENGTH, p.height);
    TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, p.bits);
    TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, p.samples);
    TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, p.format);
    TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, p.photometric);
    TIFFSetField(tif, TIFFTAG_PLANARCONFIG, p.planar);
    TIFFSetField(tif, TIFFTAG_COMPRESSION, p.compression);
    if (p.samples == 4) {
      uint16_t extra = EXTRASAMPLE_UNASSALPHA;
      TIFFSetField(tif, TIFFTAG_EXTRASAMPLES, 1, &extra);
    }
    if (!p.palette.empty()) {
      const size_t n = p.palette.size() / 3;
      TIFFSetField(tif, TIFFTAG_COLORMAP, p.palette.data(), p.palette.data() + n,
                   p.palette.data() + 2 * n);
    }
    const size_t plane_samples = p.planar == PLANARCONFIG_SEPARATE ? 1 : p.samples;
    const size_t row_bytes = (size_t(p.width) * p.bits * plane_samples + 7) / 8;
    const size_t planes = p.planar == PLANARCONFIG_SEPARATE ? p.samples : 1;
    if (p.tile == 0) {
      TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, p.rows_per_strip);
      for (size_t plane = 0; plane < planes; ++plane) {
        for (uint32_t r = 0; r < p.height; ++r) {
          std::vector<uint8_t> row(p.data.begin() + (plane * p.height + r) * row_bytes,
                                   p.data.begin() + (plane * p.height + r + 1) * row_bytes);
          ASSERT_EQ(TIFFWriteScanline(tif, row.data(), r, uint16_t(plane)), 1);
        }
      }
    } else {
      TIFFSetField(tif, TIFFTAG_TILEWIDTH, p.tile);
      TIFFSetField(tif, TIFFTAG_TILELENGTH, p.tile);
      const size_t px = size_t(p.bits / 8) * p.samples;
      std::vector<uint8_t> buf(size_t(p.tile) * p.tile * px);
      for (uint32_t y = 0; y < p.height; y += p.tile) {
        for (uint32_t x = 0; x < p.width; x += p.tile) {
          std::fill(buf.begin(), buf.end(), 0);
          for (uint32_t r = 0; r < p.tile && y + r < p.height; ++r) {
            for (uint32_t c = 0; c < p.tile && x + c < p.width; ++c) {
              std::memcpy(&buf[(size_t(r) * p.tile + c) * px],
                          &p.data[(size_t(y + r) * p.width + x + c) * px], px);
            }
          }
          ASSERT_GE(TIFFWriteTile(tif, buf.data(), x, y, 0, 0), 0);
        }
      }
    }
    ASSERT_EQ(TIFFWriteDirectory(tif), 1);
  }
  TIFFClose(tif);
}

template <typename T>
std::vector<uint8_t> Bytes(const std::vector<T>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// Writes `bytes` gzip-compressed as `members` gzip members (gzip -c a >f; gzip -c b >>f).
void WriteGzip(const fs::path& path, const std::vector<uint8_t>& bytes, int members) {
  size_t done = 0;
  for (int m = 0; m < members; ++m) {
    const size_t end = m + 1 == members ? bytes.size() : bytes.size() * size_t(m + 1) / members;
    gzFile out = gzopen(path.c_str(), m == 0 ? "wb" : "ab");
    ASSERT_NE(out, nullptr);
    ASSERT_EQ(gzwrite(out, bytes.data() + done, unsigned(end - done)), int(end - done));
    ASSERT_EQ(gzclose(out), Z_OK);
    done = end;
  }
}

// Small single-member files are inflated in one call, others streamed: both read the
// same, keep one temporary file while open and none after, and damage names the .gz.
TEST(TiffSynthetic, GzipInflatedWholeOrStreamedReadsTheSame) {
  TempDir dir;
  PageSpec p;
  p.width = 40;
  p.height = 35;
  std::vector<uint16_t> v(size_t(p.width) * p.height);
  for (size_t i = 0; i < v.size(); ++i) v[i] = uint16_t(i * 7919 % 65521);
  p.data = Bytes(v);
  WriteTiff(dir.path() / "image.tif", {p});
  std::ifstream in(dir.path() / "image.tif", std::ios::binary);
  const std::vector<uint8_t> tiff((std::istreambuf_iterator<char>(in)), {});
  ASSERT_GT(tiff.size(), v.size() * 2);
  WriteGzip(dir.path() / "one.tif.gz", tiff, 1);
  WriteGzip(dir.path() / "three.tif.gz", tiff, 3);
  const fs::path temp_dir = dir.path() / "tmp";
  fs::create_directories(temp_dir);
  const auto temp_files = [&] {
    return std::distance(fs::directory_iterator(temp_dir), fs::directory_iterator());
  };

  for (const char* name : {"one.tif.gz", "three.tif.gz"}) {
    SCOPED_TRACE(name);
    {
      auto reader = OpenDataset(dir.path() / name, OpenOptions{temp_dir});
      ASSERT_TRUE(reader.ok()) << reader.status().message();
      const Dataset& d = (*reader)->dataset();
      EXPECT_EQ(d.path, dir.path() / name);
      ASSERT_EQ(d.signals.size(), 1u);
      EXPECT_EQ(d.signals[0].shape, (std::vector<int64_t>{35, 40}));
      auto all = (*reader)->Read(0, Hyperslab::All(d.signals[0].shape));
      ASSERT_TRUE(all.ok()) << all.status().message();
      EXPECT_EQ(As<uint16_t>(*all), v);
      EXPECT_EQ(temp_files(), 1);
    }
    EXPECT_EQ(temp_files(), 0);
  }

  std::ifstream gz(dir.path() / "one.tif.gz", std::ios::binary);
  std::vector<uint8_t> cut((std::istreambuf_iterator<char>(gz)), {});
  cut.resize(cut.size() / 2);
  WriteFileBytes(dir.path() / "cut.tif.gz", cut);
  auto cut_reader = OpenDataset(dir.path() / "cut.tif.gz", OpenOptions{temp_dir});
  ASSERT_FALSE(cut_reader.ok());
  EXPECT_NE(cut_reader.status().message().find((dir.path() / "cut.tif.gz").string()),
            std::string::npos)
      << cut_reader.status().message();
  EXPECT_EQ(cut_reader.status().message().find(temp_dir.string()), std::string::npos)
      << cut_reader.status().message();
  EXPECT_EQ(temp_files(), 0);
}

TEST(TiffSynthetic, TiledDeflateInt16WithStridedRead) {
  TempDir dir;
  PageSpec p;
  p.width = 40;
  p.height = 35;
  p.format = SAMPLEFORMAT_INT;
  p.compression = COMPRESSION_ADOBE_DEFLATE;
  p.tile = 16;
  std::vector<int16_t> v(size_t(p.width) * p.height);
  for (size_t i = 0; i < v.size(); ++i) v[i] = int16_t(int(i * 37 % 2001) - 1000);
  p.data = Bytes(v);
  WriteTiff(dir.path() / "tiled.tif", {p});
  auto reader = MustOpen(dir.path() / "tiled.tif");
  ASSERT_TRUE(reader);
  const Signal& s = reader->dataset().signals[0];
  EXPECT_EQ(s.dtype, DType::kInt16);
  EXPECT_EQ(s.shape, (std::vector<int64_t>{35, 40}));
  auto all = reader->Read(0, Hyperslab::All(s.shape));
  ASSERT_TRUE(all.ok()) << all.status().message();
  EXPECT_EQ(As<int16_t>(*all), v);
  Hyperslab slab = Strided(s.shape, 3, 4, 5, 7);
  auto part = reader->Read(0, slab);
  ASSERT_TRUE(part.ok()) << part.status().message();
  std::vector<int16_t> expect;
  for (int64_t r = 0; r < slab.count[0]; ++r) {
    for (int64_t c = 0; c < slab.count[1]; ++c) {
      expect.push_back(v[size_t(3 + 4 * r) * 40 + size_t(5 + 7 * c)]);
    }
  }
  EXPECT_EQ(As<int16_t>(*part), expect);
}

TEST(TiffSynthetic, Float64LzwAndStackOfPages) {
  TempDir dir;
  std::vector<PageSpec> pages;
  std::vector<double> all;
  for (int k = 0; k < 3; ++k) {
    PageSpec p;
    p.bits = 64;
    p.format = SAMPLEFORMAT_IEEEFP;
    p.compression = COMPRESSION_LZW;
    std::vector<double> v(size_t(p.width) * p.height);
    for (size_t i = 0; i < v.size(); ++i) v[i] = k * 100 + i * 0.25;
    all.insert(all.end(), v.begin(), v.end());
    p.data = Bytes(v);
    pages.push_back(p);
  }
  WriteTiff(dir.path() / "stack.tif", pages);
  auto reader = MustOpen(dir.path() / "stack.tif");
  ASSERT_TRUE(reader);
  ASSERT_EQ(reader->dataset().signals.size(), 1u);
  const Signal& s = reader->dataset().signals[0];
  EXPECT_EQ(s.shape, (std::vector<int64_t>{3, 5, 7}));
  EXPECT_EQ(s.dtype, DType::kFloat64);
  auto a = reader->Read(0, Hyperslab::All(s.shape));
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_EQ(As<double>(*a), all);
  Hyperslab last = Hyperslab::All(s.shape);
  last.start = {2, 4, 6};
  last.count = {1, 1, 1};
  auto px = reader->Read(0, last);
  ASSERT_TRUE(px.ok());
  EXPECT_EQ(As<double>(*px)[0], 200 + 34 * 0.25);
}

TEST(TiffSynthetic, RgbaPlanarSeparateBilevelAndPalette) {
  TempDir dir;
  // RGBA, 8-bit, contiguous.
  PageSpec rgba;
  rgba.bits = 8;
  rgba.samples = 4;
  rgba.photometric = PHOTOMETRIC_RGB;
  for (size_t i = 0; i < size_t(rgba.width) * rgba.height * 4; ++i) {
    rgba.data.push_back(uint8_t(i * 7));
  }
  WriteTiff(dir.path() / "rgba.tif", {rgba});
  auto r1 = MustOpen(dir.path() / "rgba.tif");
  ASSERT_TRUE(r1);
  EXPECT_EQ(r1->dataset().signals[0].dtype, DType::kRGBA8);
  auto a1 = r1->Read(0, Hyperslab::All(r1->dataset().signals[0].shape));
  ASSERT_TRUE(a1.ok());
  EXPECT_EQ(a1->bytes, rgba.data);

  // Two 16-bit samples stored as separate planes: a leading "sample" axis.
  PageSpec planes;
  planes.samples = 2;
  planes.planar = PLANARCONFIG_SEPARATE;
  std::vector<uint16_t> pv(size_t(planes.width) * planes.height * 2);
  for (size_t i = 0; i < pv.size(); ++i) pv[i] = uint16_t(i * 1000 + 3);
  planes.data = Bytes(pv);
  WriteTiff(dir.path() / "planes.tif", {planes});
  auto r2 = MustOpen(dir.path() / "planes.tif");
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->dataset().signals[0].shape, (std::vector<int64_t>{2, 5, 7}));
  auto a2 = r2->Read(0, Hyperslab::All({2, 5, 7}));
  ASSERT_TRUE(a2.ok()) << a2.status().message();
  EXPECT_EQ(As<uint16_t>(*a2), pv);

  // Bilevel: 1 bit per pixel, rows padded to a byte; values 0/1 as stored.
  PageSpec bits;
  bits.bits = 1;
  bits.width = 11;
  bits.height = 3;
  bits.data = {0b10110000, 0b01100000, 0b00000000, 0b11100000, 0b11111111, 0b11100000};
  WriteTiff(dir.path() / "bilevel.tif", {bits});
  auto r3 = MustOpen(dir.path() / "bilevel.tif");
  ASSERT_TRUE(r3);
  auto a3 = r3->Read(0, Hyperslab::All({3, 11}));
  ASSERT_TRUE(a3.ok()) << a3.status().message();
  const std::vector<uint8_t> expect3 = {1, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1,  //
                                        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1,  //
                                        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  EXPECT_EQ(a3->bytes, expect3);

  // 4-bit palette with colours: pixels are the indices.
  PageSpec pal;
  pal.bits = 4;
  pal.width = 4;
  pal.height = 2;
  pal.photometric = PHOTOMETRIC_PALETTE;
  pal.data = {0x01, 0x23, 0xfe, 0xdc};
  for (int c = 0; c < 3; ++c) {
    for (int i = 0; i < 16; ++i) pal.palette.push_back(uint16_t(c == 0 ? i * 4096 : 0));
  }
  WriteTiff(dir.path() / "palette.tif", {pal});
  auto r4 = MustOpen(dir.path() / "palette.tif");
  ASSERT_TRUE(r4);
  EXPECT_EQ(r4->dataset().signals[0].dtype, DType::kUInt8);
  auto a4 = r4->Read(0, Hyperslab::All({2, 4}));
  ASSERT_TRUE(a4.ok()) << a4.status().message();
  EXPECT_EQ(a4->bytes, (std::vector<uint8_t>{0, 1, 2, 3, 15, 14, 13, 12}));
}

TEST(TiffSynthetic, PagesOfDifferentShapesAreSeparateSignals) {
  TempDir dir;
  PageSpec a;
  a.data.assign(size_t(a.width) * a.height * 2, 1);
  PageSpec b;
  b.width = 3;
  b.height = 2;
  b.bits = 8;
  b.data.assign(6, 9);
  WriteTiff(dir.path() / "mixed.tif", {a, b, b});
  auto reader = MustOpen(dir.path() / "mixed.tif");
  ASSERT_TRUE(reader);
  const Dataset& d = reader->dataset();
  ASSERT_EQ(d.signals.size(), 2u);
  EXPECT_EQ(d.signals[0].shape, (std::vector<int64_t>{5, 7}));
  EXPECT_EQ(d.signals[1].shape, (std::vector<int64_t>{2, 2, 3}));
  auto x = reader->Read(1, Hyperslab::All(d.signals[1].shape));
  ASSERT_TRUE(x.ok());
  EXPECT_EQ(x->bytes, std::vector<uint8_t>(12, 9));
  // Reading back the first signal after the second re-selects its page.
  auto y = reader->Read(0, Hyperslab::All(d.signals[0].shape));
  ASSERT_TRUE(y.ok());
  EXPECT_EQ(Sum(*y), 35 * 257);
}

TEST(TiffErrors, SelectionOutsideTheSignalIsRejected) {
  TempDir dir;
  PageSpec p;
  p.data.assign(size_t(p.width) * p.height * 2, 0);
  WriteTiff(dir.path() / "small.tif", {p});
  auto reader = MustOpen(dir.path() / "small.tif");
  ASSERT_TRUE(reader);
  Hyperslab slab = Hyperslab::All({5, 7});
  slab.start[1] = 3;
  auto r = reader->Read(0, slab);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_FALSE(reader->Read(1, Hyperslab::All({5, 7})).ok());
}

// ------------------------------------------------------------------------------------
// Damaged files: every variant opens to an error or to a reader whose reads return
// errors or data; none may crash (run under ASan/UBSan).

// Opens `path` and, when it opens, reads every signal whole; reports whether it opened.
bool Exercise(const fs::path& path) {
  auto reader = OpenTiff(path);
  if (!reader.ok()) {
    EXPECT_FALSE(reader.status().message().empty());
    return false;
  }
  for (size_t k = 0; k < (*reader)->dataset().signals.size(); ++k) {
    const Signal& s = (*reader)->dataset().signals[k];
    if (s.ByteCount() > (64u << 20)) continue;
    auto a = (*reader)->Read(k, Hyperslab::All(s.shape));
    if (a.ok()) {
      EXPECT_EQ(a->bytes.size(), s.ByteCount());
    } else {
      EXPECT_FALSE(a.status().message().empty());
    }
    (void)DatasetToJson((*reader)->dataset()).dump();  // metadata must be valid UTF-8 JSON
  }
  return true;
}

// A small copy of a vendor file with its vendor tag kept: files under 120 kB only.
const char* kSmallFiles[] = {"test_loading_image_saved_with_DM.tif",
                             "test_loading_image_saved_with_DM_stack.tif", "olympus_SIS.tif"};

TEST(TiffRobustness, TruncatedCopies) {
  TempDir dir;
  for (const char* name : kSmallFiles) {
    SHARED_DATA_OR_SKIP(path, std::string(kTiffDir) + name);
    const std::vector<uint8_t> bytes = ReadFileBytes(path);
    std::vector<size_t> lengths;
    for (size_t n = 0; n < 64; ++n) lengths.push_back(n);
    for (size_t n = 64; n < bytes.size(); n += bytes.size() / 97 + 1) lengths.push_back(n);
    lengths.push_back(bytes.size() - 1);
    for (size_t n : lengths) {
      const fs::path cut = dir.path() / "cut.tif";
      WriteFileBytes(cut, std::vector<uint8_t>(bytes.begin(), bytes.begin() + long(n)));
      Exercise(cut);
    }
  }
}

TEST(TiffRobustness, BitFlippedCopies) {
  TempDir dir;
  for (const char* name : kSmallFiles) {
    SHARED_DATA_OR_SKIP(path, std::string(kTiffDir) + name);
    const std::vector<uint8_t> bytes = ReadFileBytes(path);
    std::mt19937 rng(1234);
    for (int trial = 0; trial < 120; ++trial) {
      std::vector<uint8_t> copy = bytes;
      // Flip bits mostly in the header and IFD regions, where damage matters most.
      const int flips = 1 + int(rng() % 4);
      for (int f = 0; f < flips; ++f) {
        size_t at =
            rng() % 2 == 0 ? rng() % std::min<size_t>(copy.size(), 512) : rng() % copy.size();
        if (rng() % 3 == 0) at = copy.size() - 1 - rng() % std::min<size_t>(copy.size(), 2048);
        copy[at] ^= uint8_t(1u << (rng() % 8));
      }
      const fs::path flipped = dir.path() / "flip.tif";
      WriteFileBytes(flipped, copy);
      Exercise(flipped);
    }
  }
}

TEST(TiffRobustness, OversizedDimensionsAndOffsets) {
  TempDir dir;
  PageSpec p;
  p.data.assign(size_t(p.width) * p.height * 2, 5);
  const fs::path good = dir.path() / "good.tif";
  WriteTiff(good, {p});
  const std::vector<uint8_t> bytes = ReadFileBytes(good);
  // Walk the first IFD (little-endian classic TIFF, as libtiff writes here) and patch
  // each entry's value to hostile numbers.
  ASSERT_EQ(bytes[0], 'I');
  uint32_t ifd = 0;
  std::memcpy(&ifd, &bytes[4], 4);
  uint16_t entries = 0;
  std::memcpy(&entries, &bytes[ifd], 2);
  int opened_with_hostile = 0;
  for (uint16_t e = 0; e < entries; ++e) {
    const size_t entry = ifd + 2 + size_t(e) * 12;
    for (uint32_t value : {0u, 0x7fffffffu, 0xffffffffu, 65536u, 3u}) {
      std::vector<uint8_t> copy = bytes;
      uint16_t type = 0;
      std::memcpy(&type, &copy[entry + 2], 2);
      if (type == TIFF_SHORT) {
        const uint16_t v16 = uint16_t(value);
        std::memcpy(&copy[entry + 8], &v16, 2);
      } else {
        std::memcpy(&copy[entry + 8], &value, 4);
      }
      const fs::path bad = dir.path() / "bad.tif";
      WriteFileBytes(bad, copy);
      if (Exercise(bad)) ++opened_with_hostile;
    }
    // A huge count as well.
    std::vector<uint8_t> copy = bytes;
    const uint32_t count = 0x40000000u;
    std::memcpy(&copy[entry + 4], &count, 4);
    WriteFileBytes(dir.path() / "count.tif", copy);
    Exercise(dir.path() / "count.tif");
  }
  // Width 0x7fffffff cannot fit in the file: the reader refuses it with a reason.
  std::vector<uint8_t> wide = bytes;
  for (uint16_t e = 0; e < entries; ++e) {
    const size_t entry = ifd + 2 + size_t(e) * 12;
    uint16_t tag = 0, type = 0;
    std::memcpy(&tag, &wide[entry], 2);
    std::memcpy(&type, &wide[entry + 2], 2);
    if (tag == TIFFTAG_IMAGEWIDTH) {
      const uint32_t big = 1u << 29;
      if (type == TIFF_LONG) {
        std::memcpy(&wide[entry + 8], &big, 4);
      } else {
        const uint16_t v16 = 65535;
        std::memcpy(&wide[entry + 8], &v16, 2);
      }
    }
  }
  WriteFileBytes(dir.path() / "wide.tif", wide);
  auto r = OpenTiff(dir.path() / "wide.tif");
  EXPECT_FALSE(r.ok());
  if (!r.ok()) {
    EXPECT_NE(r.status().message().find("wide.tif"), std::string::npos);
  }
  (void)opened_with_hostile;
}

TEST(TiffErrors, NotATiffAndEmptyFiles) {
  TempDir dir;
  WriteFileBytes(dir.path() / "empty.tif", {});
  auto a = OpenTiff(dir.path() / "empty.tif");
  EXPECT_FALSE(a.ok());
  WriteFileBytes(dir.path() / "text.tif", {'I', 'I', 42, 0, 'h', 'e', 'l', 'l', 'o'});
  auto b = OpenTiff(dir.path() / "text.tif");
  EXPECT_FALSE(b.ok());
  if (!b.ok()) {
    EXPECT_NE(b.status().message().find("text.tif"), std::string::npos);
  }
}

}  // namespace
}  // namespace scisearch::formats
