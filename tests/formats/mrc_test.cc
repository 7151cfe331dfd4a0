// Tests of the MRC reader (real EMDB, Velox and DE-Server files; synthetic variants) and of
// the PNG and JPEG readers (images written here with libpng and libjpeg).
//
// Expected values come from the files' bytes (decoded with Python's struct/NumPy while writing
// these tests), the MANIFEST descriptions and the published format specifications.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdio>

// jpeglib.h uses size_t and FILE without declaring them.
#include <jpeglib.h>
#include <png.h>
#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <csetjmp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <tuple>
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

// ---- helpers ---------------------------------------------------------------------------

template <typename T>
T Get(const std::vector<uint8_t>& bytes, size_t offset) {
  T v;
  std::memcpy(&v, bytes.data() + offset, sizeof(T));
  return v;
}
template <typename T>
void Put(std::vector<uint8_t>& bytes, size_t offset, T value) {
  std::memcpy(bytes.data() + offset, &value, sizeof(T));
}
template <typename T>
T Element(const NdArray& a, size_t index) {
  return Get<T>(a.bytes, index * sizeof(T));
}

// Opens with `open`, then reads the whole of every signal of a small file; returns whether
// both succeeded. Never crashes on bad input: that is what the robustness tests check.
template <typename Open>
bool OpenAndReadAll(Open open, const fs::path& path, Status* error = nullptr) {
  auto reader = open(path);
  if (!reader.ok()) {
    if (error) *error = reader.status();
    EXPECT_FALSE(reader.status().message().empty());
    return false;
  }
  const Dataset& ds = (*reader)->dataset();
  for (size_t i = 0; i < ds.signals.size(); ++i) {
    const Signal& s = ds.signals[i];
    EXPECT_EQ(s.shape.size(), s.axes.size());
    if (s.ByteCount() > (256u << 20)) continue;
    auto data = (*reader)->Read(i, Hyperslab::All(s.shape));
    if (!data.ok()) {
      if (error) *error = data.status();
      EXPECT_FALSE(data.status().message().empty());
      return false;
    }
    EXPECT_EQ(data->bytes.size(), s.ByteCount());
  }
  return true;
}

// A minimal MRC2014 file: little-endian header, `ext` extended header, `data`.
std::vector<uint8_t> MakeMrc(int32_t nx, int32_t ny, int32_t nz, int32_t mode,
                             const std::vector<uint8_t>& data, const std::vector<uint8_t>& ext = {},
                             const char* exttyp = "\0\0\0\0") {
  std::vector<uint8_t> f(1024, 0);
  Put<int32_t>(f, 0, nx);
  Put<int32_t>(f, 4, ny);
  Put<int32_t>(f, 8, nz);
  Put<int32_t>(f, 12, mode);
  Put<int32_t>(f, 28, nx);
  Put<int32_t>(f, 32, ny);
  Put<int32_t>(f, 36, nz);
  Put<float>(f, 40, float(nx) * 2.5f);  // 2.5 Å pixels
  Put<float>(f, 44, float(ny) * 2.5f);
  Put<float>(f, 48, float(nz) * 2.5f);
  Put<float>(f, 52, 90.f);
  Put<float>(f, 56, 90.f);
  Put<float>(f, 60, 90.f);
  Put<int32_t>(f, 64, 1);
  Put<int32_t>(f, 68, 2);
  Put<int32_t>(f, 72, 3);
  Put<int32_t>(f, 92, int32_t(ext.size()));
  std::memcpy(f.data() + 104, exttyp, 4);
  Put<int32_t>(f, 108, 20140);
  std::memcpy(f.data() + 208, "MAP ", 4);
  f[212] = 0x44;
  f[213] = 0x44;
  Put<int32_t>(f, 220, 1);
  const char* label = "synthetic test map";
  std::memcpy(f.data() + 224, label, std::strlen(label));
  f.insert(f.end(), ext.begin(), ext.end());
  f.insert(f.end(), data.begin(), data.end());
  return f;
}

// ---- MRC: real files -------------------------------------------------------------------

TEST(MrcTest, Emd3197VolumeHeaderAndVoxels) {
  SHARED_DATA_OR_SKIP(path, "formats/mrc/EMD-3197.map");
  auto reader = OpenMrc(path);
  ASSERT_TRUE(reader.ok()) << reader.status().message();
  const Dataset& ds = (*reader)->dataset();
  EXPECT_EQ(ds.format, "mrc");
  ASSERT_EQ(ds.signals.size(), 1u);
  const Signal& s = ds.signals[0];
  EXPECT_EQ(s.dtype, DType::kFloat32);
  EXPECT_EQ(s.shape, (std::vector<int64_t>{20, 20, 20}));
  EXPECT_EQ(s.fields.mode, Mode::kVolume);  // ISPG 1 and an EMDB map
  // Header words (bytes 0..1024, little-endian per MACHST 0x44 0x41).
  const Metadata& h = s.metadata["header"];
  EXPECT_EQ(h["NX"], 20);
  EXPECT_EQ(h["MODE"], 2);
  EXPECT_EQ(h["NXSTART"], -2);
  EXPECT_EQ(h["MX"], 20);
  EXPECT_DOUBLE_EQ(h["CELLA"][0].get<double>(), 228.0);
  EXPECT_DOUBLE_EQ(h["CELLB"][2].get<double>(), 90.0);
  EXPECT_EQ(h["ISPG"], 1);
  EXPECT_EQ(h["NSYMBT"], 0);
  EXPECT_EQ(h["MAP"], "MAP");
  EXPECT_EQ(h["MACHST"][1], 0x41);
  EXPECT_NEAR(h["DMIN"].get<double>(), -4.1337457, 1e-6);
  EXPECT_NEAR(h["DMAX"].get<double>(), 5.5767369, 1e-6);
  EXPECT_NEAR(h["RMS"].get<double>(), 2.3999529, 1e-6);
  ASSERT_EQ(h["labels"].size(), 1u);
  EXPECT_EQ(h["labels"][0], "::::EMDATABANK.org::::EMD-3197::::");
  // Voxel 228 / 20 = 11.4 Å (MANIFEST), axes z, y, x; NXSTART -2 gives the x offset.
  ASSERT_EQ(s.axes.size(), 3u);
  EXPECT_EQ(s.axes[0].name, "z");
  EXPECT_EQ(s.axes[2].name, "x");
  EXPECT_DOUBLE_EQ(s.axes[2].scale, 11.4);
  EXPECT_EQ(s.axes[2].units, "A");
  EXPECT_DOUBLE_EQ(s.axes[2].offset, -22.8);
  ASSERT_TRUE(s.fields.pixel_size_m.has_value());
  EXPECT_NEAR(*s.fields.pixel_size_m, 11.4e-10, 1e-18);

  auto all = (*reader)->Read(0, Hyperslab::All(s.shape));
  ASSERT_TRUE(all.ok()) << all.status().message();
  EXPECT_FLOAT_EQ(Element<float>(*all, 0), -1.8013091f);
  EXPECT_FLOAT_EQ(Element<float>(*all, 3), -1.3683348f);
  EXPECT_FLOAT_EQ(Element<float>(*all, 7999), 1.3078574f);
  Hyperslab one{{10, 5, 7}, {1, 1, 1}, {1, 1, 1}};
  auto voxel = (*reader)->Read(0, one);
  ASSERT_TRUE(voxel.ok());
  EXPECT_FLOAT_EQ(Element<float>(*voxel, 0), -0.6900783f);
}

TEST(MrcTest, Emd3001PermutedAxesSymmetryAndSlabs) {
  SHARED_DATA_OR_SKIP(path, "formats/mrc/EMD-3001.map");
  auto reader = OpenMrc(path);
  ASSERT_TRUE(reader.ok()) << reader.status().message();
  const Signal& s = (*reader)->dataset().signals[0];
  // 73 x 43 x 25 float32 (MANIFEST): shape (NZ, NY, NX).
  EXPECT_EQ(s.shape, (std::vector<int64_t>{25, 43, 73}));
  EXPECT_EQ(s.fields.mode, Mode::kVolume);
  const Metadata& h = s.metadata["header"];
  EXPECT_EQ(h["ISPG"], 4);
  EXPECT_EQ(h["NSYMBT"], 160);
  EXPECT_EQ(h["MAPC"], 3);
  EXPECT_EQ(h["MAPR"], 1);
  EXPECT_EQ(h["MAPS"], 2);
  EXPECT_EQ(h["NYSTART"], -21);
  EXPECT_NEAR(h["CELLB"][1].get<double>(), 94.326, 1e-4);
  // Columns run along Z (MAPC 3), rows along X, sections along Y.
  EXPECT_EQ(s.axes[0].name, "y");
  EXPECT_EQ(s.axes[1].name, "x");
  EXPECT_EQ(s.axes[2].name, "z");
  EXPECT_NEAR(s.axes[2].scale, 33.03 / 72, 1e-6);
  EXPECT_NEAR(s.axes[1].scale, 17.93 / 40, 1e-6);
  EXPECT_NEAR(s.axes[0].scale, 4.71 / 12, 1e-6);
  // The 160-byte extended header: two 80-character symmetry operators.
  const Metadata& ext = s.metadata["extended_header"];
  EXPECT_EQ(ext["size"], 160);
  ASSERT_EQ(ext["symmetry_operators"].size(), 2u);
  EXPECT_EQ(ext["symmetry_operators"][0], "X,  Y,  Z");
  EXPECT_EQ(ext["symmetry_operators"][1], "-X,  Y+1/2,  -Z");

  auto v = (*reader)->Read(0, Hyperslab{{0, 0, 0}, {1, 1, 1}, {1, 1, 1}});
  ASSERT_TRUE(v.ok());
  EXPECT_FLOAT_EQ(Element<float>(*v, 0), 0.042834472f);
  v = (*reader)->Read(0, Hyperslab{{24, 42, 72}, {1, 1, 1}, {1, 1, 1}});
  ASSERT_TRUE(v.ok());
  EXPECT_FLOAT_EQ(Element<float>(*v, 0), 0.06724498f);

  // A strided slab matches the raw little-endian floats after 1024 + 160 bytes.
  const std::vector<uint8_t> raw = ReadFileBytes(path);
  Hyperslab slab{{1, 2, 3}, {5, 7, 9}, {4, 5, 7}};
  auto got = (*reader)->Read(0, slab);
  ASSERT_TRUE(got.ok()) << got.status().message();
  ASSERT_EQ(got->shape, slab.count);
  size_t i = 0;
  for (int64_t z = 0; z < 5; ++z) {
    for (int64_t y = 0; y < 7; ++y) {
      for (int64_t x = 0; x < 9; ++x, ++i) {
        const size_t index = size_t(((1 + 4 * z) * 43 + (2 + 5 * y)) * 73 + (3 + 7 * x));
        EXPECT_EQ(Element<float>(*got, i), Get<float>(raw, 1184 + 4 * index));
      }
    }
  }
}

TEST(MrcTest, HaadfScanFei2ExtendedHeader) {
  SHARED_DATA_OR_SKIP(path, "formats/mrc/HAADFscan.mrc");
  auto reader = OpenMrc(path);
  ASSERT_TRUE(reader.ok()) << reader.status().message();
  const Signal& s = (*reader)->dataset().signals[0];
  EXPECT_EQ(s.dtype, DType::kUInt16);                  // mode 6
  EXPECT_EQ(s.shape, (std::vector<int64_t>{16, 16}));  // one section: an image
  EXPECT_EQ(s.fields.mode, Mode::kStemImage);
  const Metadata& ext = s.metadata["extended_header"];
  EXPECT_EQ(ext["type"], "FEI2");
  EXPECT_EQ(ext["size"], 909312);
  EXPECT_EQ(ext["record_size"], 888);  // metadata version 2 record
  EXPECT_EQ(ext["record_count"], 1024);
  const Metadata& r = ext["first_record"];
  EXPECT_EQ(r["Metadata version"], 2);
  EXPECT_EQ(r["Microscope type"], "Spectra");
  EXPECT_EQ(r["D-Number"], "3814");
  EXPECT_EQ(r["Application"], "Velox");
  EXPECT_DOUBLE_EQ(r["HT"].get<double>(), 300000.0);
  EXPECT_EQ(r["Instrument mode"], 2);
  EXPECT_EQ(r["Illumination mode"], "Probe");
  EXPECT_EQ(r["EFTEM On"], false);
  EXPECT_EQ(r["Camera name"], "BM-Ceta");
  EXPECT_EQ(r["Binning Width"], 2);
  EXPECT_EQ(r["STEM Detector name"], "HAADF");
  EXPECT_DOUBLE_EQ(r["Dwell time"].get<double>(), 0.01);
  EXPECT_EQ(r["Scan size right"], 256);
  EXPECT_NEAR(r["Pixel size X"].get<double>(), 5.679131290012676e-09, 1e-20);
  EXPECT_TRUE(r.contains("Objective aperture name"));  // last field of a version-2 record
  // Normalised: Timestamp 44900.5091088 days after 1899-12-30.
  EXPECT_EQ(s.fields.acquired, "2022-12-05T12:13:07");
  EXPECT_EQ(s.fields.instrument, "Spectra");
  EXPECT_DOUBLE_EQ(*s.fields.beam_energy_kev, 300.0);
  EXPECT_NEAR(*s.fields.pixel_size_m, 5.679131290012676e-09, 1e-20);
  EXPECT_EQ(s.fields.pixel_size_units, "m");
  EXPECT_EQ(s.fields.detector, "HAADF");
  EXPECT_FALSE(s.fields.magnification.has_value());  // the record says 0
  // Cell 908.661 Å / 16.
  EXPECT_NEAR(s.axes[2].scale, 908.661 / 16, 1e-3);

  auto all = (*reader)->Read(0, Hyperslab::All(s.shape));
  ASSERT_TRUE(all.ok()) << all.status().message();
  const uint16_t first[8] = {5715, 6654, 7842, 8618, 9399, 8798, 6513, 6395};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(Element<uint16_t>(*all, i), first[i]);
  EXPECT_EQ(Element<uint16_t>(*all, 255), 5721);
  EXPECT_EQ(Element<uint16_t>(*all, 5 * 16 + 9), 7233);
}

TEST(MrcTest, DeServerMovieIs4dStemWithSidecar) {
  SHARED_DATA_OR_SKIP(path, "formats/mrc/20241021_00405_movie.mrc");
  auto reader = OpenMrc(path);
  ASSERT_TRUE(reader.ok()) << reader.status().message();
  const Dataset& ds = (*reader)->dataset();
  ASSERT_EQ(ds.member_files.size(), 2u);
  EXPECT_EQ(ds.member_files[1].filename(), "20241021_00405_info.txt");
  const Signal& s = ds.signals[0];
  // 32 frames of 8x4 with an 8x4 scan (info.txt "Scan - Size X/Y" = 8 / 4).
  EXPECT_EQ(s.shape, (std::vector<int64_t>{4, 8, 4, 8}));
  EXPECT_EQ(s.fields.mode, Mode::k4dStem);
  ASSERT_EQ(s.axes.size(), 4u);
  EXPECT_EQ(s.axes[0].name, "scan_y");
  EXPECT_TRUE(s.axes[0].navigate);
  EXPECT_FALSE(s.axes[3].navigate);
  EXPECT_DOUBLE_EQ(s.axes[0].scale, 0.2);  // Specimen Pixel Size Y (nanometers)
  EXPECT_DOUBLE_EQ(s.axes[1].scale, 0.1);
  EXPECT_EQ(s.axes[1].units, "nm");
  const Metadata& de = s.metadata["de_server"];
  EXPECT_EQ(de["Scan - Size X"], 8);
  EXPECT_TRUE(de["Scan - Size X"].is_number_integer());
  EXPECT_EQ(de["Camera Model"], "DESim");
  EXPECT_DOUBLE_EQ(de["Scan - Dwell Time (microseconds)"].get<double>(), 1464.212499);
  EXPECT_EQ(de["Local time"], "Mon Oct 21 14:36:50 2024");
  EXPECT_EQ(de["Autosave Crude Frames File Path"], "");
  EXPECT_EQ(de["Instrument Accelerating Voltage (V) Allowed Values"],
            "300000,200000,120000,80000,0");
  EXPECT_EQ(de.size(), 552u);                            // one key per line of the 552-line file
  EXPECT_EQ(s.fields.acquired, "2024-10-21T19:36:50Z");  // Timestamp 1729539410 (UTC)
  EXPECT_DOUBLE_EQ(*s.fields.beam_energy_kev, 300.0);
  EXPECT_EQ(s.fields.detector, "DESim");
  EXPECT_EQ(s.metadata["header"]["NZ"], 32);

  // Frame k holds the value k everywhere (checked with NumPy): scan (y, x) is frame 8y + x.
  auto frame = (*reader)->Read(0, Hyperslab{{3, 7, 0, 0}, {1, 1, 4, 8}, {1, 1, 1, 1}});
  ASSERT_TRUE(frame.ok()) << frame.status().message();
  for (size_t i = 0; i < 32; ++i) EXPECT_EQ(Element<uint16_t>(*frame, i), 31);
  auto column = (*reader)->Read(0, Hyperslab{{0, 2, 1, 1}, {4, 1, 1, 1}, {1, 1, 1, 1}});
  ASSERT_TRUE(column.ok());
  for (size_t y = 0; y < 4; ++y) EXPECT_EQ(Element<uint16_t>(*column, y), 8 * y + 2);
}

TEST(MrcTest, MovieWithoutSidecarFollowsIspg) {
  SHARED_DATA_OR_SKIP(path, "formats/mrc/20241021_00405_movie.mrc");
  TempDir dir;
  const fs::path copy = dir.path() / "20241021_00405_movie.mrc";
  fs::copy_file(path, copy);
  auto reader = OpenMrc(copy);
  ASSERT_TRUE(reader.ok()) << reader.status().message();
  const Signal& s = (*reader)->dataset().signals[0];
  EXPECT_EQ(s.shape, (std::vector<int64_t>{32, 4, 8}));
  EXPECT_FALSE(s.metadata.contains("de_server"));
  EXPECT_EQ((*reader)->dataset().member_files.size(), 1u);
  // DE-Server writes ISPG 1 (a volume, in MRC2014 terms); without the sidecar that is all
  // the file says.
  EXPECT_EQ(s.fields.mode, Mode::kVolume);
  // Cell -80 x -40 x 0: no usable voxel size, so the axes stay unitless.
  EXPECT_EQ(s.axes[2].units, "");
  EXPECT_DOUBLE_EQ(s.axes[2].scale, 1.0);
  EXPECT_FALSE(s.fields.pixel_size_m.has_value());

  // With ISPG 0 the sections are frames of an image stack.
  std::vector<uint8_t> f = ReadFileBytes(copy);
  Put<int32_t>(f, 88, 0);
  WriteFileBytes(dir.path() / "stack.mrc", f);
  reader = OpenMrc(dir.path() / "stack.mrc");
  ASSERT_TRUE(reader.ok()) << reader.status().message();
  const Signal& t = (*reader)->dataset().signals[0];
  EXPECT_EQ(t.fields.mode, Mode::kImage);
  EXPECT_EQ(t.axes[0].name, "frame");
  EXPECT_TRUE(t.axes[0].navigate);
}

TEST(MrcTest, BigEndianCopyReadsTheSameValues) {
  SHARED_DATA_OR_SKIP(path, "formats/mrc/EMD-3197.map");
  std::vector<uint8_t> f = ReadFileBytes(path);
  auto swap4 = [&](size_t at) { std::reverse(f.begin() + at, f.begin() + at + 4); };
  for (size_t at = 0; at < 104; at += 4) swap4(at);  // every numeric word before EXTTYP
  for (size_t at = 108; at < 208; at += 4) swap4(at);
  swap4(216);
  swap4(220);
  f[212] = 0x11;
  f[213] = 0x11;
  for (size_t at = 1024; at < f.size(); at += 4) swap4(at);
  TempDir dir;
  WriteFileBytes(dir.path() / "big.map", f);
  auto reader = OpenMrc(dir.path() / "big.map");
  ASSERT_TRUE(reader.ok()) << reader.status().message();
  const Signal& s = (*reader)->dataset().signals[0];
  EXPECT_EQ(s.metadata["header"]["byte_order"], "big");
  EXPECT_EQ(s.shape, (std::vector<int64_t>{20, 20, 20}));
  EXPECT_DOUBLE_EQ(s.axes[2].scale, 11.4);
  auto all = (*reader)->Read(0, Hyperslab::All(s.shape));
  ASSERT_TRUE(all.ok());
  EXPECT_FLOAT_EQ(Element<float>(*all, 0), -1.8013091f);
  EXPECT_FLOAT_EQ(Element<float>(*all, 7999), 1.3078574f);
}

// ---- MRC: synthetic modes ---------------------------------------------------------------

TEST(MrcTest, Float16IsWidenedToFloat32) {
  const uint16_t halves[6] = {0x3C00, 0xC000, 0x3555, 0x0001, 0x7BFF, 0x0000};
  std::vector<uint8_t> data(sizeof(halves));
  std::memcpy(data.data(), halves, sizeof(halves));
  TempDir dir;
  WriteFileBytes(dir.path() / "h.mrc", MakeMrc(3, 2, 1, 12, data));
  auto reader = OpenMrc(dir.path() / "h.mrc");
  ASSERT_TRUE(reader.ok()) << reader.status().message();
  const Signal& s = (*reader)->dataset().signals[0];
  EXPECT_EQ(s.dtype, DType::kFloat32);
  EXPECT_EQ(s.fields.mode, Mode::kImage);            // ISPG 0, not an EMDB name
  ASSERT_EQ(s.shape, (std::vector<int64_t>{2, 3}));  // one section: an image
  EXPECT_EQ(s.axes[1].units, "A");
  EXPECT_DOUBLE_EQ(s.axes[1].scale, 2.5);
  auto a = (*reader)->Read(0, Hyperslab::All(s.shape));
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_EQ(Element<float>(*a, 0), 1.0f);
  EXPECT_EQ(Element<float>(*a, 1), -2.0f);
  EXPECT_NEAR(Element<float>(*a, 2), 0.33325195f, 1e-7);
  EXPECT_EQ(Element<float>(*a, 3), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(Element<float>(*a, 4), 65504.0f);               // largest half
  EXPECT_EQ(Element<float>(*a, 5), 0.0f);
  auto part = (*reader)->Read(0, Hyperslab{{1, 0}, {1, 2}, {1, 2}});
  ASSERT_TRUE(part.ok());
  EXPECT_EQ(Element<float>(*part, 0), std::ldexp(1.0f, -24));
  EXPECT_EQ(Element<float>(*part, 1), 0.0f);
}

TEST(MrcTest, ComplexInt16IsWidenedToComplex64) {
  const int16_t pairs[8] = {1, -2, 300, 4, -32768, 32767, 0, 7};
  std::vector<uint8_t> data(sizeof(pairs));
  std::memcpy(data.data(), pairs, sizeof(pairs));
  TempDir dir;
  WriteFileBytes(dir.path() / "c.mrc", MakeMrc(2, 2, 1, 3, data));
  auto reader = OpenMrc(dir.path() / "c.mrc");
  ASSERT_TRUE(reader.ok()) << reader.status().message();
  EXPECT_EQ((*reader)->dataset().signals[0].dtype, DType::kComplex64);
  auto a = (*reader)->Read(0, Hyperslab{{0, 1}, {2, 1}, {1, 1}});
  ASSERT_TRUE(a.ok()) << a.status().message();
  ASSERT_EQ(a->bytes.size(), 16u);
  EXPECT_EQ(Element<float>(*a, 0), 300.0f);
  EXPECT_EQ(Element<float>(*a, 1), 4.0f);
  EXPECT_EQ(Element<float>(*a, 2), 0.0f);
  EXPECT_EQ(Element<float>(*a, 3), 7.0f);
}

TEST(MrcTest, Mode0SignedUnlessImodSaysUnsigned) {
  const std::vector<uint8_t> data = {0x00, 0x7F, 0x80, 0xFF};
  TempDir dir;
  std::vector<uint8_t> f = MakeMrc(4, 1, 1, 0, data);
  WriteFileBytes(dir.path() / "s.mrc", f);
  auto reader = OpenMrc(dir.path() / "s.mrc");
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ((*reader)->dataset().signals[0].dtype, DType::kInt8);
  auto a = (*reader)->Read(0, Hyperslab::All({1, 4}));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(Element<int8_t>(*a, 2), -128);
  // IMOD stamp 1146047817 with flags bit 0 clear: bytes are unsigned.
  Put<int32_t>(f, 152, 1146047817);
  Put<int32_t>(f, 156, 0);
  WriteFileBytes(dir.path() / "u.mrc", f);
  reader = OpenMrc(dir.path() / "u.mrc");
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ((*reader)->dataset().signals[0].dtype, DType::kUInt8);
  a = (*reader)->Read(0, Hyperslab::All({1, 4}));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(Element<uint8_t>(*a, 3), 255);
  // Flag bit 0 set: signed again.
  Put<int32_t>(f, 156, 1);
  WriteFileBytes(dir.path() / "s2.mrc", f);
  reader = OpenMrc(dir.path() / "s2.mrc");
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ((*reader)->dataset().signals[0].dtype, DType::kInt8);
}

TEST(MrcTest, SerialEmExtendedHeaderTiltsAndMagnification) {
  // NINT 4 bytes per section, NREAL 1 | 8: tilt x 100 then magnification / 100 (int16 each).
  const int16_t ext_words[4] = {-3050, 250, 1225, 250};
  std::vector<uint8_t> ext(sizeof(ext_words));
  std::memcpy(ext.data(), ext_words, sizeof(ext_words));
  std::vector<uint8_t> f = MakeMrc(2, 2, 2, 1, std::vector<uint8_t>(16), ext, "SERI");
  Put<int16_t>(f, 128, 4);
  Put<int16_t>(f, 130, 9);
  TempDir dir;
  WriteFileBytes(dir.path() / "tilt.st", f);
  auto r = OpenMrc(dir.path() / "tilt.st");
  ASSERT_TRUE(r.ok()) << r.status().message();
  const Signal& s = (*r)->dataset().signals[0];
  const Metadata& e = s.metadata["extended_header"];
  EXPECT_EQ(e["type"], "SERI");
  EXPECT_EQ(e["bytes_per_section"], 4);
  ASSERT_EQ(e["tilt_angles"].size(), 2u);
  EXPECT_DOUBLE_EQ(e["tilt_angles"][0].get<double>(), -30.5);
  EXPECT_DOUBLE_EQ(e["tilt_angles"][1].get<double>(), 12.25);
  EXPECT_EQ(e["magnifications"][0], 25000);
  EXPECT_DOUBLE_EQ(*s.fields.magnification, 25000.0);
  EXPECT_EQ(s.metadata["header"]["labels"][0], "synthetic test map");
}

TEST(MrcTest, UnsupportedAndInvalidModes) {
  TempDir dir;
  WriteFileBytes(dir.path() / "p.mrc", MakeMrc(4, 4, 1, 101, std::vector<uint8_t>(8)));
  auto r = OpenMrc(dir.path() / "p.mrc");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kUnsupported);
  EXPECT_NE(r.status().message().find("101"), std::string::npos);
  WriteFileBytes(dir.path() / "q.mrc", MakeMrc(4, 4, 1, 77, std::vector<uint8_t>(64)));
  r = OpenMrc(dir.path() / "q.mrc");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("MODE 77"), std::string::npos);
}

TEST(MrcTest, TruncationNamesExpectedAndActualSize) {
  SHARED_DATA_OR_SKIP(path, "formats/mrc/EMD-3197.map");
  const std::vector<uint8_t> f = ReadFileBytes(path);
  TempDir dir;
  const fs::path cut = dir.path() / "cut.map";
  WriteFileBytes(cut, std::vector<uint8_t>(f.begin(), f.begin() + 20000));
  auto r = OpenMrc(cut);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kCorrupt);
  EXPECT_NE(r.status().message().find("truncated"), std::string::npos);
  EXPECT_NE(r.status().message().find("33024"), std::string::npos);  // 1024 + 0 + 32000
  EXPECT_NE(r.status().message().find("20000"), std::string::npos);
  EXPECT_NE(r.status().message().find("cut.map"), std::string::npos);
  // Every prefix of the header, and a sample of prefixes of the data, is an error.
  for (size_t n = 0; n < f.size(); n += (n < 1100 ? 1 : 997)) {
    WriteFileBytes(cut, std::vector<uint8_t>(f.begin(), f.begin() + n));
    EXPECT_FALSE(OpenMrc(cut).ok()) << n;
  }
}

TEST(MrcTest, HostileHeaderFieldsAreRefused) {
  SHARED_DATA_OR_SKIP(path, "formats/mrc/HAADFscan.mrc");
  const std::vector<uint8_t> original = ReadFileBytes(path);
  TempDir dir;
  const fs::path p = dir.path() / "x.mrc";
  struct Case {
    size_t offset;
    int32_t value;
  };
  const Case cases[] = {
      {0, 0x7fffffff},  {4, 0x7fffffff},    {8, 0x7fffffff}, {0, -5},   {8, 0},
      {92, 0x7fffffff}, {92, -1},           {92, 100},       {12, -1},  {220, 1000000},
      {64, 99},         {1024, 0x7fffffff}, {1024, 0},       {1024, 5},
  };
  for (const Case& c : cases) {
    std::vector<uint8_t> f = original;
    Put<int32_t>(f, c.offset, c.value);
    WriteFileBytes(p, f);
    Status error;
    const bool ok = OpenAndReadAll([](const fs::path& q) { return OpenMrc(q); }, p, &error);
    if (c.offset <= 12 || c.offset == 92 || c.offset == 1024) {
      EXPECT_FALSE(ok) << c.offset << " = " << c.value;
      EXPECT_NE(error.message().find("x.mrc"), std::string::npos) << error.message();
    }
  }
  // NLABL out of range: the labels that are not empty are kept (none in this file).
  std::vector<uint8_t> f = original;
  Put<int32_t>(f, 220, 1000000);
  WriteFileBytes(p, f);
  auto r = OpenMrc(p);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE((*r)->dataset().signals[0].metadata["header"]["labels"].empty());
}

TEST(MrcTest, BitFlippedCopiesNeverCrash) {
  SHARED_DATA_OR_SKIP(path, "formats/mrc/HAADFscan.mrc");
  std::vector<uint8_t> original = ReadFileBytes(path);
  // Keep the copies small: the header, the first FEI record, then the data.
  std::vector<uint8_t> small(original.begin(), original.begin() + 1024 + 888);
  small.insert(small.end(), original.end() - 512, original.end());
  Put<int32_t>(small, 92, 888);
  TempDir dir;
  const fs::path p = dir.path() / "flip.mrc";
  WriteFileBytes(p, small);
  ASSERT_TRUE(OpenAndReadAll([](const fs::path& q) { return OpenMrc(q); }, p));
  int opened = 0;
  for (uint32_t seed = 0; seed < 300; ++seed) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> f = small;
    const int flips = 1 + int(rng() % 8);
    for (int k = 0; k < flips; ++k) {
      const size_t at = rng() % (1024 + 888);
      f[at] ^= uint8_t(1u << (rng() % 8));
    }
    WriteFileBytes(p, f);
    opened += OpenAndReadAll([](const fs::path& q) { return OpenMrc(q); }, p);
  }
  EXPECT_GT(opened, 0);  // most flips land in fields that do not matter
}

// ---- PNG ------------------------------------------------------------------------------

struct PngSpec {
  uint32_t width = 0, height = 0;
  int color_type = PNG_COLOR_TYPE_GRAY;
  int bit_depth = 8;
  bool interlace = false;
  std::vector<uint8_t> pixels;  // rows as PNG stores them (16-bit samples big-endian)
  std::vector<png_color> palette;
  std::vector<std::tuple<std::string, std::string, int>> texts;  // key, text, compression
  std::optional<std::pair<uint32_t, uint32_t>> phys;             // pixels per metre x, y
  bool time = false;
};

void PngWriteToVector(png_structp png, png_bytep data, size_t length) {
  auto* out = static_cast<std::vector<uint8_t>*>(png_get_io_ptr(png));
  out->insert(out->end(), data, data + length);
}
void PngFlushNothing(png_structp) {}

// Writes a PNG with libpng (errors in the test writer abort the test via longjmp to here).
std::vector<uint8_t> WritePng(const PngSpec& spec) {
  std::vector<uint8_t> out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  std::vector<png_text> texts(spec.texts.size());
  std::vector<png_bytep> rows(spec.height);
  const size_t row_bytes = spec.pixels.size() / spec.height;
  for (uint32_t y = 0; y < spec.height; ++y) {
    rows[y] = const_cast<png_bytep>(spec.pixels.data() + y * row_bytes);
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return {};
  }
  png_set_write_fn(png, &out, PngWriteToVector, PngFlushNothing);
  png_set_IHDR(png, info, spec.width, spec.height, spec.bit_depth, spec.color_type,
               spec.interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (!spec.palette.empty()) {
    png_set_PLTE(png, info, spec.palette.data(), int(spec.palette.size()));
  }
  for (size_t i = 0; i < spec.texts.size(); ++i) {
    texts[i] = png_text{};
    texts[i].compression = std::get<2>(spec.texts[i]);
    texts[i].key = const_cast<char*>(std::get<0>(spec.texts[i]).c_str());
    texts[i].text = const_cast<char*>(std::get<1>(spec.texts[i]).c_str());
    texts[i].text_length = std::get<1>(spec.texts[i]).size();
  }
  if (!texts.empty()) png_set_text(png, info, texts.data(), int(texts.size()));
  if (spec.phys) {
    png_set_pHYs(png, info, spec.phys->first, spec.phys->second, PNG_RESOLUTION_METER);
  }
  if (spec.time) {
    png_time t{2024, 3, 5, 10, 11, 12};
    png_set_tIME(png, info, &t);
  }
  png_write_info(png, info);
  png_write_image(png, rows.data());
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  return out;
}

struct Fixture {
  TempDir dir;
  fs::path Write(const std::string& name, const std::vector<uint8_t>& bytes) {
    const fs::path p = dir.path() / name;
    WriteFileBytes(p, bytes);
    return p;
  }
};

TEST(PngTest, Gray8WithTextPhysAndTime) {
  PngSpec spec;
  spec.width = 5;
  spec.height = 3;
  for (uint32_t i = 0; i < 15; ++i) spec.pixels.push_back(uint8_t(i * 17));
  spec.texts = {{"Title", "HAADF overview", PNG_TEXT_COMPRESSION_NONE},
                {"Comment", std::string(300, 'z'), PNG_TEXT_COMPRESSION_zTXt},
                {"Beschreibung",
                 "Gr\xC3\xB6\xC3\x9F"
                 "e 5 nm",
                 PNG_ITXT_COMPRESSION_NONE},
                {"Creation Time", "2016-02-22T10:51:32", PNG_TEXT_COMPRESSION_NONE}};
  spec.phys = {{2000000, 4000000}};  // 0.5 µm x 0.25 µm
  spec.time = true;
  Fixture fx;
  auto reader = OpenPng(fx.Write("g8.png", WritePng(spec)));
  ASSERT_TRUE(reader.ok()) << reader.status().message();
  const Dataset& ds = (*reader)->dataset();
  EXPECT_EQ(ds.format, "png");
  const Signal& s = ds.signals[0];
  EXPECT_EQ(s.dtype, DType::kUInt8);
  EXPECT_EQ(s.shape, (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(s.fields.mode, Mode::kImage);
  EXPECT_EQ(s.name, "HAADF overview");
  const Metadata& m = s.metadata;
  EXPECT_EQ(m["IHDR"]["width"], 5);
  EXPECT_EQ(m["IHDR"]["bit_depth"], 8);
  EXPECT_EQ(m["text"]["Title"], "HAADF overview");
  EXPECT_EQ(m["text"]["Comment"], std::string(300, 'z'));
  EXPECT_EQ(m["text"]["Beschreibung"],
            "Gr\xC3\xB6\xC3\x9F"
            "e 5 nm");
  EXPECT_EQ(m["tIME"], "2024-03-05T10:11:12Z");
  EXPECT_EQ(m["pHYs"]["pixels_per_unit_x"], 2000000);
  EXPECT_EQ(m["pHYs"]["unit"], "metre");
  EXPECT_DOUBLE_EQ(s.axes[1].scale, 5e-7);
  EXPECT_DOUBLE_EQ(s.axes[0].scale, 2.5e-7);
  EXPECT_DOUBLE_EQ(*s.fields.pixel_size_m, 5e-7);
  EXPECT_EQ(s.fields.acquired, "2016-02-22T10:51:32");
  auto a = (*reader)->Read(0, Hyperslab::All(s.shape));
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_EQ(a->bytes, spec.pixels);
  auto part = (*reader)->Read(0, Hyperslab{{1, 1}, {2, 2}, {1, 2}});
  ASSERT_TRUE(part.ok());
  EXPECT_EQ(part->bytes, (std::vector<uint8_t>{6 * 17, 8 * 17, 11 * 17, 13 * 17}));
}

TEST(PngTest, Gray16IsLittleEndianUint16) {
  PngSpec spec;
  spec.width = 3;
  spec.height = 2;
  spec.bit_depth = 16;
  const uint16_t values[6] = {0x1234, 0xABCD, 0x0001, 0xFFFF, 0x0100, 0x8000};
  for (uint16_t v : values) {
    spec.pixels.push_back(uint8_t(v >> 8));  // PNG stores big-endian
    spec.pixels.push_back(uint8_t(v & 0xff));
  }
  Fixture fx;
  auto reader = OpenPng(fx.Write("g16.png", WritePng(spec)));
  ASSERT_TRUE(reader.ok()) << reader.status().message();
  EXPECT_EQ((*reader)->dataset().signals[0].dtype, DType::kUInt16);
  auto a = (*reader)->Read(0, Hyperslab::All({2, 3}));
  ASSERT_TRUE(a.ok()) << a.status().message();
  for (int i = 0; i < 6; ++i) EXPECT_EQ(Element<uint16_t>(*a, i), values[i]);
}

TEST(PngTest, ColourTypes) {
  Fixture fx;
  {  // RGB
    PngSpec spec{2, 2, PNG_COLOR_TYPE_RGB, 8};
    spec.pixels = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    auto r = OpenPng(fx.Write("rgb.png", WritePng(spec)));
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ((*r)->dataset().signals[0].dtype, DType::kRGB8);
    auto a = (*r)->Read(0, Hyperslab{{1, 0}, {1, 2}, {1, 1}});
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(a->bytes, (std::vector<uint8_t>{7, 8, 9, 10, 11, 12}));
  }
  {  // RGBA
    PngSpec spec{2, 1, PNG_COLOR_TYPE_RGBA, 8};
    spec.pixels = {1, 2, 3, 4, 5, 6, 7, 8};
    auto r = OpenPng(fx.Write("rgba.png", WritePng(spec)));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ((*r)->dataset().signals[0].dtype, DType::kRGBA8);
    auto a = (*r)->Read(0, Hyperslab::All({1, 2}));
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(a->bytes, spec.pixels);
  }
  {  // 16-bit RGB scaled to 8 bits: 257 * k -> k exactly
    PngSpec spec{1, 1, PNG_COLOR_TYPE_RGB, 16};
    spec.pixels = {0x0A, 0x0A, 0xFF, 0xFF, 0x00, 0x00};
    auto r = OpenPng(fx.Write("rgb16.png", WritePng(spec)));
    ASSERT_TRUE(r.ok());
    auto a = (*r)->Read(0, Hyperslab::All({1, 1}));
    ASSERT_TRUE(a.ok()) << a.status().message();
    EXPECT_EQ(a->bytes, (std::vector<uint8_t>{10, 255, 0}));
  }
  {  // gray + alpha: the gray channel only
    PngSpec spec{3, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 8};
    spec.pixels = {10, 255, 20, 0, 30, 128};
    auto r = OpenPng(fx.Write("ga.png", WritePng(spec)));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ((*r)->dataset().signals[0].dtype, DType::kUInt8);
    auto a = (*r)->Read(0, Hyperslab::All({1, 3}));
    ASSERT_TRUE(a.ok()) << a.status().message();
    EXPECT_EQ(a->bytes, (std::vector<uint8_t>{10, 20, 30}));
  }
  {  // colour palette -> RGB
    PngSpec spec{3, 1, PNG_COLOR_TYPE_PALETTE, 8};
    spec.palette = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}};
    spec.pixels = {2, 0, 1};
    auto r = OpenPng(fx.Write("pal.png", WritePng(spec)));
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ((*r)->dataset().signals[0].dtype, DType::kRGB8);
    EXPECT_EQ((*r)->dataset().signals[0].metadata["PLTE"]["entries"], 3);
    auto a = (*r)->Read(0, Hyperslab::All({1, 3}));
    ASSERT_TRUE(a.ok()) << a.status().message();
    EXPECT_EQ(a->bytes, (std::vector<uint8_t>{0, 0, 255, 255, 0, 0, 0, 255, 0}));
  }
  {  // grey 4-bit palette -> uint8 grey values
    PngSpec spec{4, 1, PNG_COLOR_TYPE_PALETTE, 4};
    spec.palette = {{0, 0, 0}, {100, 100, 100}, {200, 200, 200}};
    spec.pixels = {0x12, 0x01};  // indices 1 2 0 1, two per byte
    auto r = OpenPng(fx.Write("gpal.png", WritePng(spec)));
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ((*r)->dataset().signals[0].dtype, DType::kUInt8);
    auto a = (*r)->Read(0, Hyperslab::All({1, 4}));
    ASSERT_TRUE(a.ok()) << a.status().message();
    EXPECT_EQ(a->bytes, (std::vector<uint8_t>{100, 200, 0, 100}));
  }
  {  // 1-bit gray: raw sample values 0/1
    PngSpec spec{10, 1, PNG_COLOR_TYPE_GRAY, 1};
    spec.pixels = {0xA5, 0x80};  // 1010 0101 10
    auto r = OpenPng(fx.Write("bw.png", WritePng(spec)));
    ASSERT_TRUE(r.ok()) << r.status().message();
    auto a = (*r)->Read(0, Hyperslab::All({1, 10}));
    ASSERT_TRUE(a.ok()) << a.status().message();
    EXPECT_EQ(a->bytes, (std::vector<uint8_t>{1, 0, 1, 0, 0, 1, 0, 1, 1, 0}));
  }
}

TEST(PngTest, InterlacedDecodesWhole) {
  PngSpec spec{9, 7, PNG_COLOR_TYPE_RGB, 8, true};
  for (uint32_t i = 0; i < 9 * 7 * 3; ++i) spec.pixels.push_back(uint8_t(i * 7 + 1));
  Fixture fx;
  auto r = OpenPng(fx.Write("adam7.png", WritePng(spec)));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ((*r)->dataset().signals[0].metadata["IHDR"]["interlace"], 1);
  auto a = (*r)->Read(0, Hyperslab::All({7, 9}));
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_EQ(a->bytes, spec.pixels);
  auto p = (*r)->Read(0, Hyperslab{{2, 4}, {2, 1}, {3, 1}});
  ASSERT_TRUE(p.ok());
  const size_t p0 = (2 * 9 + 4) * 3, p1 = (5 * 9 + 4) * 3;
  EXPECT_EQ(p->bytes,
            (std::vector<uint8_t>{spec.pixels[p0], spec.pixels[p0 + 1], spec.pixels[p0 + 2],
                                  spec.pixels[p1], spec.pixels[p1 + 1], spec.pixels[p1 + 2]}));
}

uint32_t Crc(const uint8_t* data, size_t n) { return uint32_t(crc32(0, data, uInt(n))); }
void PutBe32(std::vector<uint8_t>& f, size_t at, uint32_t v) {
  f[at] = uint8_t(v >> 24);
  f[at + 1] = uint8_t(v >> 16);
  f[at + 2] = uint8_t(v >> 8);
  f[at + 3] = uint8_t(v);
}

TEST(PngTest, HostileSizesAndTruncation) {
  PngSpec spec{6, 4, PNG_COLOR_TYPE_GRAY, 8};
  spec.pixels.assign(24, 7);
  spec.texts = {{"Software", "test", PNG_TEXT_COMPRESSION_NONE}};
  const std::vector<uint8_t> good = WritePng(spec);
  Fixture fx;
  // IHDR at 8: length, "IHDR", width (16), height (20), ..., CRC at 29.
  {
    std::vector<uint8_t> f = good;
    PutBe32(f, 16, 0x7fffffff);
    PutBe32(f, 20, 0x7fffffff);
    PutBe32(f, 29, Crc(f.data() + 12, 17));
    auto r = OpenPng(fx.Write("huge.png", f));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), ErrorCode::kUnsupported);
    EXPECT_NE(r.status().message().find("1 GiB"), std::string::npos);
  }
  {  // a plausible size the data does not hold: the decode fails cleanly
    std::vector<uint8_t> f = good;
    PutBe32(f, 20, 4000);
    PutBe32(f, 29, Crc(f.data() + 12, 17));
    EXPECT_FALSE(
        OpenAndReadAll([](const fs::path& q) { return OpenPng(q); }, fx.Write("tall.png", f)));
  }
  {  // IHDR CRC damaged
    std::vector<uint8_t> f = good;
    f[18] ^= 1;
    auto r = OpenPng(fx.Write("crc.png", f));
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("CRC"), std::string::npos);
  }
  {  // chunk length past the end
    std::vector<uint8_t> f = good;
    PutBe32(f, 33, 0x7ffffff0);
    auto r = OpenPng(fx.Write("len.png", f));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), ErrorCode::kCorrupt);
  }
  {  // a zTXt bomb: 4 MiB of text in a few kilobytes
    PngSpec bomb = spec;
    bomb.texts = {{"Comment", std::string(4 << 20, 'a'), PNG_TEXT_COMPRESSION_zTXt}};
    auto r = OpenPng(fx.Write("bomb.png", WritePng(bomb)));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), ErrorCode::kUnsupported);
  }
  // Every strict prefix lacks IEND: an error, never a crash.
  const fs::path cut = fx.dir.path() / "cut.png";
  for (size_t n = 0; n < good.size(); ++n) {
    WriteFileBytes(cut, std::vector<uint8_t>(good.begin(), good.begin() + n));
    EXPECT_FALSE(OpenAndReadAll([](const fs::path& q) { return OpenPng(q); }, cut)) << n;
  }
  // Bit flips anywhere.
  int opened = 0;
  for (uint32_t seed = 0; seed < 300; ++seed) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> f = good;
    for (int k = 0; k < 1 + int(rng() % 4); ++k) f[rng() % f.size()] ^= uint8_t(1u << (rng() % 8));
    WriteFileBytes(cut, f);
    opened += OpenAndReadAll([](const fs::path& q) { return OpenPng(q); }, cut);
  }
  EXPECT_LT(opened, 300);  // CRCs catch most flips
}

// ---- JPEG -----------------------------------------------------------------------------

struct JpegSpec {
  uint32_t width = 0, height = 0;
  int components = 1;
  bool progressive = false;
  std::vector<uint8_t> pixels;
  std::vector<uint8_t> exif;  // APP1 payload after "Exif\0\0"
  std::string comment;
};

struct JpegWriteError {
  jpeg_error_mgr mgr;
  jmp_buf jump;
};
void JpegWriteErrorExit(j_common_ptr cinfo) {
  std::longjmp(reinterpret_cast<JpegWriteError*>(cinfo->err)->jump, 1);
}

std::vector<uint8_t> WriteJpeg(const JpegSpec& spec) {
  jpeg_compress_struct cinfo{};
  JpegWriteError err{};
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = JpegWriteErrorExit;
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  std::vector<JSAMPROW> rows(spec.height);
  for (uint32_t y = 0; y < spec.height; ++y) {
    rows[y] = const_cast<JSAMPROW>(spec.pixels.data() + y * spec.width * spec.components);
  }
  if (setjmp(err.jump)) {
    jpeg_destroy_compress(&cinfo);
    std::free(buffer);
    return {};
  }
  jpeg_create_compress(&cinfo);
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = spec.width;
  cinfo.image_height = spec.height;
  cinfo.input_components = spec.components;
  cinfo.in_color_space = spec.components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, 100, TRUE);
  cinfo.density_unit = 1;
  cinfo.X_density = 300;
  cinfo.Y_density = 150;
  if (spec.progressive) jpeg_simple_progression(&cinfo);
  jpeg_start_compress(&cinfo, TRUE);
  if (!spec.exif.empty()) {
    std::vector<uint8_t> app1 = {'E', 'x', 'i', 'f', 0, 0};
    app1.insert(app1.end(), spec.exif.begin(), spec.exif.end());
    jpeg_write_marker(&cinfo, JPEG_APP0 + 1, app1.data(), unsigned(app1.size()));
  }
  if (!spec.comment.empty()) {
    jpeg_write_marker(&cinfo, JPEG_COM, reinterpret_cast<const JOCTET*>(spec.comment.data()),
                      unsigned(spec.comment.size()));
  }
  jpeg_write_scanlines(&cinfo, rows.data(), spec.height);
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  std::vector<uint8_t> out(buffer, buffer + size);
  std::free(buffer);
  return out;
}

// A little-endian EXIF TIFF block: IFD0 with Make, Model, DateTime and an Exif sub-IFD
// pointer; the Exif IFD with DateTimeOriginal and ExposureTime 1/250.
std::vector<uint8_t> MakeExif() {
  std::vector<uint8_t> t = {'I', 'I', 42, 0, 8, 0, 0, 0};
  auto u16 = [&](uint16_t v) {
    t.push_back(uint8_t(v));
    t.push_back(uint8_t(v >> 8));
  };
  auto u32 = [&](uint32_t v) {
    for (int i = 0; i < 4; ++i) t.push_back(uint8_t(v >> (8 * i)));
  };
  const std::string make = "Canon", model = "Canon EOS 5D", when = "2021:06:07 08:09:10",
                    original = "2020:01:02 03:04:05";
  // IFD0 at 8: 4 entries (2 + 48 + 4 bytes) -> data area at 62.
  const uint32_t data0 = 8 + 2 + 4 * 12 + 4;
  const uint32_t make_at = data0, model_at = make_at + 6, when_at = model_at + 13;
  const uint32_t exif_ifd = when_at + 20;
  u16(4);
  u16(0x010F), u16(2), u32(6), u32(make_at);
  u16(0x0110), u16(2), u32(13), u32(model_at);
  u16(0x0132), u16(2), u32(20), u32(when_at);
  u16(0x8769), u16(4), u32(1), u32(exif_ifd);
  u32(0);
  for (const std::string* s : {&make, &model, &when}) {
    t.insert(t.end(), s->begin(), s->end());
    t.push_back(0);
  }
  // Exif IFD: 2 entries -> data after 2 + 24 + 4 bytes.
  const uint32_t original_at = exif_ifd + 2 + 2 * 12 + 4, exposure_at = original_at + 20;
  u16(2);
  u16(0x9003), u16(2), u32(20), u32(original_at);
  u16(0x829A), u16(5), u32(1), u32(exposure_at);
  u32(0);
  t.insert(t.end(), original.begin(), original.end());
  t.push_back(0);
  u32(1), u32(250);
  return t;
}

TEST(JpegTest, GrayWithExifCommentAndDensity) {
  JpegSpec spec{16, 8, 1};
  for (uint32_t y = 0; y < 8; ++y) {
    for (uint32_t x = 0; x < 16; ++x) spec.pixels.push_back(x < 8 ? 40 : 200);
  }
  spec.exif = MakeExif();
  spec.comment = "scisearch test comment";
  Fixture fx;
  auto r = OpenJpeg(fx.Write("g.jpg", WriteJpeg(spec)));
  ASSERT_TRUE(r.ok()) << r.status().message();
  const Dataset& ds = (*r)->dataset();
  EXPECT_EQ(ds.format, "jpeg");
  const Signal& s = ds.signals[0];
  EXPECT_EQ(s.dtype, DType::kUInt8);
  EXPECT_EQ(s.shape, (std::vector<int64_t>{8, 16}));
  const Metadata& m = s.metadata;
  EXPECT_EQ(m["SOF"]["process"], "baseline");
  EXPECT_EQ(m["SOF"]["components"], 1);
  EXPECT_EQ(m["JFIF"]["density_units"], "dots per inch");
  EXPECT_EQ(m["JFIF"]["x_density"], 300);
  EXPECT_EQ(m["JFIF"]["y_density"], 150);
  ASSERT_EQ(m["comments"].size(), 1u);
  EXPECT_EQ(m["comments"][0], "scisearch test comment");
  EXPECT_EQ(m["EXIF"]["IFD0"]["Make"], "Canon");
  EXPECT_EQ(m["EXIF"]["IFD0"]["DateTime"], "2021:06:07 08:09:10");
  EXPECT_EQ(m["EXIF"]["Exif"]["DateTimeOriginal"], "2020:01:02 03:04:05");
  EXPECT_DOUBLE_EQ(m["EXIF"]["Exif"]["ExposureTime"].get<double>(), 1.0 / 250);
  EXPECT_EQ(s.fields.instrument, "Canon EOS 5D");
  EXPECT_EQ(s.fields.acquired, "2020-01-02T03:04:05");  // DateTimeOriginal wins
  EXPECT_EQ(s.fields.mode, Mode::kImage);
  auto a = (*r)->Read(0, Hyperslab::All(s.shape));
  ASSERT_TRUE(a.ok()) << a.status().message();
  for (size_t i = 0; i < a->bytes.size(); ++i) {
    EXPECT_NEAR(a->bytes[i], spec.pixels[i], 3) << i;  // quality 100: near-lossless
  }
  auto part = (*r)->Read(0, Hyperslab{{0, 1}, {2, 2}, {3, 13}});
  ASSERT_TRUE(part.ok());
  EXPECT_NEAR(part->bytes[0], 40, 3);
  EXPECT_NEAR(part->bytes[1], 200, 3);
}

TEST(JpegTest, ProgressiveRgb) {
  JpegSpec spec{24, 16, 3, true};
  for (uint32_t y = 0; y < 16; ++y) {
    for (uint32_t x = 0; x < 24; ++x) {
      const bool red = (x / 8 + y / 8) % 2 == 0;
      spec.pixels.insert(spec.pixels.end(), {uint8_t(red ? 220 : 30), 60, uint8_t(red ? 30 : 200)});
    }
  }
  Fixture fx;
  auto r = OpenJpeg(fx.Write("p.jpg", WriteJpeg(spec)));
  ASSERT_TRUE(r.ok()) << r.status().message();
  const Signal& s = (*r)->dataset().signals[0];
  EXPECT_EQ(s.dtype, DType::kRGB8);
  EXPECT_EQ(s.metadata["SOF"]["process"], "progressive");
  auto a = (*r)->Read(0, Hyperslab::All(s.shape));
  ASSERT_TRUE(a.ok()) << a.status().message();
  ASSERT_EQ(a->bytes.size(), spec.pixels.size());
  // Block interiors (away from chroma edges) keep their colour.
  for (uint32_t y : {2u, 12u}) {
    for (uint32_t x : {3u, 12u, 20u}) {
      const size_t i = (y * 24 + x) * 3;
      for (int c = 0; c < 3; ++c)
        EXPECT_NEAR(a->bytes[i + c], spec.pixels[i + c], 8) << x << "," << y;
    }
  }
}

TEST(JpegTest, HostileSizesTruncationAndBitFlips) {
  JpegSpec spec{16, 16, 1};
  for (uint32_t i = 0; i < 256; ++i) spec.pixels.push_back(uint8_t(i));
  spec.exif = MakeExif();
  const std::vector<uint8_t> good = WriteJpeg(spec);
  Fixture fx;
  // Find the SOF0 segment and claim 65535 x 65535 RGB: 12 GiB decoded.
  size_t sof = 2;
  while (sof + 4 < good.size() && !(good[sof] == 0xFF && good[sof + 1] == 0xC0)) {
    sof += 2 + (size_t(good[sof + 2]) << 8 | good[sof + 3]);
  }
  ASSERT_LT(sof + 10, good.size());
  {
    std::vector<uint8_t> f = good;
    f[sof + 5] = f[sof + 6] = f[sof + 7] = f[sof + 8] = 0xFF;  // height, width = 65535
    auto r = OpenJpeg(fx.Write("huge.jpg", f));
    ASSERT_FALSE(r.ok());  // 65535^2 gray bytes = 4 GiB
    EXPECT_EQ(r.status().code(), ErrorCode::kUnsupported);
    EXPECT_NE(r.status().message().find("1 GiB"), std::string::npos);
  }
  {  // 12-bit precision
    std::vector<uint8_t> f = good;
    f[sof + 4] = 12;
    auto r = OpenJpeg(fx.Write("p12.jpg", f));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), ErrorCode::kUnsupported);
  }
  {  // a plausible size the data does not hold: the decode fails cleanly
    std::vector<uint8_t> f = good;
    f[sof + 5] = 0x01;  // height 256 + 16
    EXPECT_FALSE(
        OpenAndReadAll([](const fs::path& q) { return OpenJpeg(q); }, fx.Write("tall.jpg", f)));
  }
  {  // EXIF IFD0 offset far outside the block: reported in the metadata, image still read
    std::vector<uint8_t> f = good;
    const uint8_t tiff_header[] = {'I', 'I', 42, 0, 8, 0, 0, 0};
    auto at = std::search(f.begin(), f.end(), std::begin(tiff_header), std::end(tiff_header));
    ASSERT_NE(at, f.end());
    at[4] = at[5] = at[6] = 0xF0;
    auto r = OpenJpeg(fx.Write("exif.jpg", f));
    ASSERT_TRUE(r.ok()) << r.status().message();
    const Metadata& m = (*r)->dataset().signals[0].metadata;
    EXPECT_FALSE(m.contains("EXIF"));
    EXPECT_NE(m["EXIF_error"].get<std::string>().find("EXIF IFD"), std::string::npos);
  }
  // Prefixes: before the image data the open fails; inside it the read fails. Never a crash.
  const fs::path cut = fx.dir.path() / "cut.jpg";
  for (size_t n = 0; n + 2 < good.size(); ++n) {
    WriteFileBytes(cut, std::vector<uint8_t>(good.begin(), good.begin() + n));
    EXPECT_FALSE(OpenAndReadAll([](const fs::path& q) { return OpenJpeg(q); }, cut)) << n;
  }
  for (uint32_t seed = 0; seed < 300; ++seed) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> f = good;
    for (int k = 0; k < 1 + int(rng() % 4); ++k) f[rng() % f.size()] ^= uint8_t(1u << (rng() % 8));
    WriteFileBytes(cut, f);
    OpenAndReadAll([](const fs::path& q) { return OpenJpeg(q); }, cut);
  }
}

}  // namespace
}  // namespace scisearch::formats
