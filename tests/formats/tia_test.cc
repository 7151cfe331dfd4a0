// Tests of the FEI/Thermo TIA reader (.emi + _N.ser) against the real files in
// ../shared/data/formats/tia. Expected pixel values were read from the .ser bytes
// with Python's struct module (element offsets from the offset array, 50- or 26-byte
// element headers, image rows stored bottom-up); metadata values are the text of the
// <ObjectInfo> XML in the .emi files and the MANIFEST descriptions.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <random>

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

template <typename T>
std::vector<T> Values(const NdArray& a) {
  std::vector<T> v(a.bytes.size() / sizeof(T));
  std::memcpy(v.data(), a.bytes.data(), v.size() * sizeof(T));
  return v;
}

Hyperslab Slab(std::vector<int64_t> start, std::vector<int64_t> count, std::vector<int64_t> step) {
  return Hyperslab{std::move(start), std::move(count), std::move(step)};
}

std::unique_ptr<DatasetReader> MustOpen(const fs::path& path) {
  auto r = OpenTia(path);
  EXPECT_TRUE(r.ok()) << r.status().message();
  if (!r.ok()) return nullptr;
  return std::move(r).value();
}

// Opens (never crashing) and, when the open succeeds, reads every signal whole.
void OpenAndReadEverything(const fs::path& path) {
  auto r = OpenTia(path);
  if (!r.ok()) {
    EXPECT_FALSE(r.status().message().empty());
    return;
  }
  DatasetReader& reader = **r;
  for (size_t i = 0; i < reader.dataset().signals.size(); ++i) {
    const Signal& s = reader.dataset().signals[i];
    ASSERT_EQ(s.shape.size(), s.axes.size());
    if (s.ByteCount() > (64u << 20)) continue;
    auto a = reader.Read(i, Hyperslab::All(s.shape));
    if (a.ok()) {
      EXPECT_EQ(a->bytes.size(), s.ByteCount());
    }
  }
  (void)DatasetToJson(reader.dataset()).dump();
}

// Copies `emi` and its _N.ser files into `dir` as t.emi, t_N.ser.
fs::path CopyDataset(const fs::path& emi, const fs::path& dir) {
  fs::copy_file(emi, dir / "t.emi", fs::copy_options::overwrite_existing);
  for (int n = 1; n < 10; ++n) {
    fs::path ser = emi.parent_path() / (emi.stem().string() + "_" + std::to_string(n) + ".ser");
    if (!fs::exists(ser)) break;
    fs::copy_file(ser, dir / ("t_" + std::to_string(n) + ".ser"),
                  fs::copy_options::overwrite_existing);
    fs::permissions(dir / ("t_" + std::to_string(n) + ".ser"), fs::perms::owner_write,
                    fs::perm_options::add);
  }
  fs::permissions(dir / "t.emi", fs::perms::owner_write, fs::perm_options::add);
  return dir / "t.emi";
}

void PutU32(std::vector<uint8_t>& b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + i] = uint8_t(v >> (8 * i));
}
void PutU64(std::vector<uint8_t>& b, size_t at, uint64_t v) {
  for (int i = 0; i < 8; ++i) b[at + i] = uint8_t(v >> (8 * i));
}

TEST(TiaTest, OldVersionStemImagesTwoDetectors) {
  SHARED_DATA_OR_SKIP(emi, "formats/tia/old/16x16_STEM_BF_DF_acquire.emi");
  auto reader = MustOpen(emi);
  ASSERT_TRUE(reader);
  const Dataset& ds = reader->dataset();
  EXPECT_EQ(ds.format, "tia");
  EXPECT_EQ(ds.path, emi);
  ASSERT_EQ(ds.member_files.size(), 3u);
  EXPECT_EQ(ds.member_files[0], emi);
  EXPECT_EQ(ds.member_files[1].filename(), "16x16_STEM_BF_DF_acquire_1.ser");
  EXPECT_EQ(ds.member_files[2].filename(), "16x16_STEM_BF_DF_acquire_2.ser");
  ASSERT_EQ(ds.signals.size(), 2u);
  // The .emi names the data objects "Acquire BF" and "Acquire DF4".
  EXPECT_EQ(ds.signals[0].name, "Acquire BF");
  EXPECT_EQ(ds.signals[0].fields.detector, "BF");
  EXPECT_EQ(ds.signals[1].name, "Acquire DF4");
  EXPECT_EQ(ds.signals[1].fields.detector, "DF4");
  for (const Signal& s : ds.signals) {
    EXPECT_EQ(s.dtype, DType::kUInt16);
    EXPECT_EQ(s.shape, (std::vector<int64_t>{16, 16}));
    EXPECT_EQ(s.axes[0].name, "y");
    EXPECT_EQ(s.axes[1].name, "x");
    EXPECT_EQ(s.axes[1].units, "m");
    EXPECT_DOUBLE_EQ(s.axes[1].scale, 2.1510044070327746e-08);  // CalibrationDeltaX
    EXPECT_EQ(s.fields.mode, Mode::kStemImage);
    // <Value>Microscope Tecnai 200 kV D2267 SuperTwin</Value>, High tension 200 kV,
    // Magnification 10000 x, <AcquireDate>Sun Feb 21 17:53:06 2016</AcquireDate>.
    EXPECT_EQ(s.fields.instrument, "Tecnai 200 kV D2267 SuperTwin");
    EXPECT_EQ(s.fields.beam_energy_kev, 200.0);
    EXPECT_EQ(s.fields.magnification, 10000.0);
    EXPECT_EQ(s.fields.acquired, "2016-02-21T17:53:06");
    EXPECT_EQ(s.fields.pixel_size_units, "m");
    EXPECT_DOUBLE_EQ(*s.fields.pixel_size_m, 2.1510044070327746e-08);
    // The typed XML tree and the SER header.
    const Metadata& md = s.metadata;
    EXPECT_EQ(
        md["ObjectInfo"]["ExperimentalConditions"]["MicroscopeConditions"]["AcceleratingVoltage"],
        200000);
    EXPECT_EQ(md["ObjectInfo"]["ExperimentalDescription"]["High tension [kV]"], 200);
    EXPECT_EQ(md["ObjectInfo"]["ExperimentalDescription"]["Emission [uA]"], 0.29);
    EXPECT_EQ(md["ObjectInfo"]["ExperimentalDescription"]["User"], "ERIC");
    EXPECT_EQ(md["ObjectInfo"]["ExperimentalDescription"]["Mode"], "STEM nP SA Zoom Diffraction");
    EXPECT_EQ(md["ObjectInfo"]["AcquireInfo"]["Magnification"], "10000 X");
    EXPECT_EQ(md["ObjectInfo"]["DetectorRange"]["StartX"], -0.3125);
    EXPECT_EQ(md["ObjectInfo"]["TrueImageHeaderInfo"]["8"], 2267);
    EXPECT_EQ(md["ser"]["SeriesVersion"], 0x0210);
    EXPECT_EQ(md["ser"]["DataTypeID"], 0x4122);
    EXPECT_EQ(md["ser"]["Element"]["DataType"], 2);
    EXPECT_EQ(md["ser"]["FirstTag"]["Time"], 1456073586u);
  }
  EXPECT_EQ(ds.signals[0].metadata["ObjectInfo"]["Uuid"], "392a0b2b-5edb-4c51-843c-57916c4059a0");
  EXPECT_EQ(ds.signals[1].metadata["ObjectInfo"]["Uuid"], "c925d651-25eb-4080-b200-0a0f0942d3cf");

  // Rows 2,4,6 and columns 3,6,9,12 (row r is stored row 15 - r).
  auto bf = reader->Read(0, Slab({2, 3}, {3, 4}, {2, 3}));
  ASSERT_TRUE(bf.ok()) << bf.status().message();
  EXPECT_EQ(bf->shape, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(Values<uint16_t>(*bf), (std::vector<uint16_t>{0, 0, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0}));
  auto df = reader->Read(1, Slab({2, 3}, {3, 4}, {2, 3}));
  ASSERT_TRUE(df.ok()) << df.status().message();
  EXPECT_EQ(Values<uint16_t>(*df), (std::vector<uint16_t>{2684, 2723, 2751, 2735, 2586, 2611, 2658,
                                                          2711, 2605, 2628, 2584, 2586}));
  // The first four stored values are the start of the last displayed row.
  auto last_row = reader->Read(1, Slab({15, 0}, {1, 4}, {1, 1}));
  ASSERT_TRUE(last_row.ok());
  EXPECT_EQ(Values<uint16_t>(*last_row), (std::vector<uint16_t>{2761, 2718, 2733, 2690}));
}

TEST(TiaTest, NewVersionImageWith64BitOffsets) {
  SHARED_DATA_OR_SKIP(emi, "formats/tia/new/128x128_TEM_acquire-sum1.emi");
  auto reader = MustOpen(emi);
  ASSERT_TRUE(reader);
  ASSERT_EQ(reader->dataset().signals.size(), 1u);
  const Signal& s = reader->dataset().signals[0];
  EXPECT_EQ(s.metadata["ser"]["SeriesVersion"], 0x0220);
  EXPECT_EQ(s.metadata["ser"]["OffsetArrayOffset"], 72);
  EXPECT_EQ(s.dtype, DType::kInt32);
  EXPECT_EQ(s.shape, (std::vector<int64_t>{128, 128}));
  EXPECT_EQ(s.fields.mode, Mode::kTemImage);  // "TEM uP SA Zoom Image"
  EXPECT_EQ(s.fields.instrument, "TalosF200X 200 kV D6308 XTwin");
  EXPECT_EQ(s.fields.acquired, "2016-02-22T18:57:51");
  EXPECT_EQ(s.fields.detector, "BM-Ceta");  // <CameraNamePath>BM-Ceta</CameraNamePath>
  EXPECT_FALSE(reader->Read(0, Slab({0, 0}, {3, 3}, {64, 1})).ok());  // row 128
  // Rows 0 and 64, columns 0 and 1; then row 127, columns 0 and 127.
  auto b = reader->Read(0, Slab({0, 0}, {2, 2}, {64, 1}));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(Values<int32_t>(*b), (std::vector<int32_t>{64, -189, -60, 0}));
  auto c = reader->Read(0, Slab({127, 0}, {1, 2}, {1, 127}));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(Values<int32_t>(*c), (std::vector<int32_t>{-62, 138}));
}

TEST(TiaTest, Float32ImageAndSeriesOfImages) {
  SHARED_DATA_OR_SKIP(emi, "formats/tia/old/64x64_TEM_images_acquire.emi");
  auto reader = MustOpen(emi);
  ASSERT_TRUE(reader);
  const Signal& s = reader->dataset().signals.at(0);
  EXPECT_EQ(s.dtype, DType::kFloat32);
  EXPECT_EQ(s.shape, (std::vector<int64_t>{64, 64}));
  EXPECT_EQ(s.fields.magnification, 19500.0);  // MANIFEST: 19.5 kx
  auto a = reader->Read(0, Slab({0, 0}, {3, 3}, {31, 10}));
  ASSERT_TRUE(a.ok());
  auto v = Values<float>(*a);
  EXPECT_FLOAT_EQ(v[0], 49154.60546875f);
  EXPECT_FLOAT_EQ(v[1], 48265.7265625f);
  EXPECT_FLOAT_EQ(v[3], 47947.71875f);
  EXPECT_FLOAT_EQ(v[4], 47974.16015625f);

  SHARED_DATA_OR_SKIP(series, "formats/tia/old/64x64x5_TEM_preview.emi");
  auto sr = MustOpen(series);
  ASSERT_TRUE(sr);
  const Signal& ss = sr->dataset().signals.at(0);
  EXPECT_EQ(ss.shape, (std::vector<int64_t>{5, 64, 64}));
  EXPECT_EQ(ss.axes[0].name, "frame");
  EXPECT_TRUE(ss.axes[0].navigate);
  EXPECT_FALSE(ss.axes[1].navigate);
}

TEST(TiaTest, DiffractionCalibrationIsReciprocal) {
  SHARED_DATA_OR_SKIP(emi, "formats/tia/old/64x64_diffraction_acquire.emi");
  auto reader = MustOpen(emi);
  ASSERT_TRUE(reader);
  const Signal& s = reader->dataset().signals.at(0);
  EXPECT_EQ(s.fields.mode, Mode::kDiffraction);
  EXPECT_EQ(s.fields.pixel_size_units, "1/m");
  EXPECT_DOUBLE_EQ(*s.fields.pixel_size_m, 101571996.19555664);
  EXPECT_EQ(s.axes[1].units, "1/m");
  EXPECT_FALSE(s.fields.magnification.has_value());  // "0 X"
  EXPECT_EQ(s.metadata["emi"]["coordinate_space"], "Reciprocal Space");
  EXPECT_EQ(s.metadata["ObjectInfo"]["ExperimentalDescription"]["Camera length [m]"], 0.49);
}

TEST(TiaTest, SpectraLineScanAndSpectrumImages) {
  SHARED_DATA_OR_SKIP(point, "formats/tia/old/16x16-point_spectrum-1x1024.emi");
  auto p = MustOpen(point);
  ASSERT_TRUE(p);
  const Signal& ps = p->dataset().signals.at(0);
  EXPECT_EQ(ps.shape, (std::vector<int64_t>{1024}));
  EXPECT_EQ(ps.dtype, DType::kInt32);
  EXPECT_EQ(ps.fields.mode, Mode::kSpectrum);
  EXPECT_EQ(ps.axes[0].name, "energy");
  EXPECT_DOUBLE_EQ(ps.axes[0].scale, 0.2);
  EXPECT_DOUBLE_EQ(ps.axes[0].offset, -20.0);
  EXPECT_EQ(ps.fields.beam_energy_kev, 300.0);
  EXPECT_EQ(ps.fields.detector, "PEELS");  // data object "Acquire PEELS Spectrum positions"

  SHARED_DATA_OR_SKIP(two, "formats/tia/old/16x16-2_point-spectra-2x1024.emi");
  auto t = MustOpen(two);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->dataset().signals.at(0).shape, (std::vector<int64_t>{2, 1024}));

  SHARED_DATA_OR_SKIP(line, "formats/tia/old/16x16-line_profile_horizontal_10x1024.emi");
  auto l = MustOpen(line);
  ASSERT_TRUE(l);
  const Signal& ls = l->dataset().signals.at(0);
  EXPECT_EQ(ls.shape, (std::vector<int64_t>{10, 1024}));
  EXPECT_EQ(ls.fields.mode, Mode::kSpectrum);
  EXPECT_TRUE(ls.axes[0].navigate);
  EXPECT_EQ(ls.axes[0].units, "m");
  auto lv = l->Read(0, Slab({0, 0}, {2, 2}, {9, 500}));
  ASSERT_TRUE(lv.ok());
  EXPECT_EQ(Values<int32_t>(*lv), (std::vector<int32_t>{20, -8, 8, 28}));

  SHARED_DATA_OR_SKIP(si, "formats/tia/old/16x16-spectrum_image-5x5x1024.emi");
  auto r = MustOpen(si);
  ASSERT_TRUE(r);
  const Signal& s = r->dataset().signals.at(0);
  EXPECT_EQ(s.shape, (std::vector<int64_t>{5, 5, 1024}));
  EXPECT_EQ(s.fields.mode, Mode::kSpectrumImage);
  EXPECT_EQ(s.axes[0].name, "scan_y");
  EXPECT_EQ(s.axes[1].name, "scan_x");
  EXPECT_DOUBLE_EQ(*s.fields.pixel_size_m, 1.2053969116531095e-10);
  // Scan (y, x) = (1, 4), (3, 4): element y * 5 + x; channels 100, 102, 104.
  auto a = r->Read(0, Slab({1, 4, 100}, {2, 1, 3}, {2, 1, 2}));
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_EQ(a->shape, (std::vector<int64_t>{2, 1, 3}));
  EXPECT_EQ(Values<int32_t>(*a), (std::vector<int32_t>{-2, 14, -2, 18, 18, 2}));
  auto b = r->Read(0, Slab({4, 0, 100}, {1, 1, 3}, {1, 1, 2}));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(Values<int32_t>(*b), (std::vector<int32_t>{8, 22, 4}));

  SHARED_DATA_OR_SKIP(ns, "formats/tia/new/16x16-spectrum_image_5x5x4000-not_square.emi");
  auto n = MustOpen(ns);
  ASSERT_TRUE(n);
  const Signal& nsig = n->dataset().signals.at(0);
  EXPECT_EQ(nsig.shape, (std::vector<int64_t>{5, 5, 4000}));
  EXPECT_EQ(nsig.dtype, DType::kUInt32);
  EXPECT_EQ(nsig.fields.mode, Mode::kSpectrumImage);
  // Non-square scan pixels: Dimension 2 delta -4.258e-9 m, dimension 1 delta 1.986e-9 m.
  EXPECT_DOUBLE_EQ(nsig.axes[0].scale, -4.258193731308558e-09);
  EXPECT_DOUBLE_EQ(nsig.axes[1].scale, 1.985914203270287e-09);
  EXPECT_DOUBLE_EQ(nsig.axes[2].scale, 5.0);
  auto all = n->Read(0, Hyperslab::All(nsig.shape));
  ASSERT_TRUE(all.ok());
  for (uint32_t v : Values<uint32_t>(*all)) ASSERT_EQ(v, 0u);  // the file's counts are all 0
}

TEST(TiaTest, LineScanWithSpectraAndDiffractionIsTwoSignals) {
  SHARED_DATA_OR_SKIP(emi, "formats/tia/new/16x16-line_profile_horizontal_5x128x128_EDS.emi");
  auto reader = MustOpen(emi);
  ASSERT_TRUE(reader);
  const auto& signals = reader->dataset().signals;
  ASSERT_EQ(signals.size(), 2u);
  EXPECT_EQ(signals[0].shape, (std::vector<int64_t>{5, 4000}));
  EXPECT_EQ(signals[0].dtype, DType::kUInt32);
  EXPECT_EQ(signals[0].fields.detector, "EDX");
  EXPECT_EQ(signals[0].fields.mode, Mode::kSpectrum);
  EXPECT_EQ(signals[1].shape, (std::vector<int64_t>{5, 128, 128}));
  EXPECT_EQ(signals[1].dtype, DType::kInt32);
  EXPECT_EQ(signals[1].fields.mode, Mode::k4dStem);
  EXPECT_EQ(signals[1].fields.pixel_size_units, "1/m");
  // Each .ser has its own ObjectInfo (the one after its path in the .emi).
  EXPECT_EQ(signals[0].metadata["ObjectInfo"]["AcquireDate"], "Mon Feb 22 19:18:16 2016");
  EXPECT_EQ(signals[0].metadata["ObjectInfo"]["Manufacturer"], "FEI-Edx");
  EXPECT_EQ(signals[1].metadata["ObjectInfo"]["AcquireDate"], "Mon Feb 22 19:18:24 2016");
  EXPECT_EQ(signals[1].metadata["ObjectInfo"]["AcquireInfo"]["CameraNamePath"], "BM-Ceta");
}

TEST(TiaTest, PartlyFilledSeriesUsesOnlyValidElements) {
  SHARED_DATA_OR_SKIP(emi, "formats/tia/old/03_Scanning Preview.emi");
  auto reader = MustOpen(emi);
  ASSERT_TRUE(reader);
  const Signal& s = reader->dataset().signals.at(0);
  EXPECT_EQ(s.metadata["ser"]["TotalNumberElements"], 200);
  EXPECT_EQ(s.metadata["ser"]["ValidNumberElements"], 5);
  EXPECT_EQ(s.shape, (std::vector<int64_t>{5, 128, 128}));
  EXPECT_EQ(s.dtype, DType::kUInt16);
  EXPECT_EQ(s.fields.instrument, "TitanCubed 300 kV D3128 UltraTwin");
  EXPECT_EQ(s.fields.acquired, "2019-04-25T09:30:09");
  EXPECT_EQ(s.fields.detector, "HAADF");
  // Pixels (10, 20), (127, 127), (0, 0) of elements 0 and 4.
  for (auto [element, expected] :
       {std::pair<int64_t, std::vector<uint16_t>>{0, {15087, 1705, 3514}},
        {4, {15183, 4542, 2971}}}) {
    std::vector<uint16_t> got;
    for (auto [r, c] : {std::pair<int64_t, int64_t>{10, 20}, {127, 127}, {0, 0}}) {
      auto a = reader->Read(0, Slab({element, r, c}, {1, 1, 1}, {1, 1, 1}));
      ASSERT_TRUE(a.ok()) << a.status().message();
      got.push_back(Values<uint16_t>(*a)[0]);
    }
    EXPECT_EQ(got, expected) << "element " << element;
  }
}

TEST(TiaTest, SerAloneAndSerBesideItsEmi) {
  SHARED_DATA_OR_SKIP(ser, "formats/tia/old/X - Au NP EELS_2.ser");
  auto r = OpenDataset(ser);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const Dataset& ds = (*r)->dataset();
  EXPECT_EQ(ds.format, "tia");
  EXPECT_EQ(ds.path, ser);
  EXPECT_EQ(ds.member_files, std::vector<fs::path>{ser});
  ASSERT_EQ(ds.signals.size(), 1u);
  const Signal& s = ds.signals[0];
  EXPECT_EQ(s.metadata["ser"]["TotalNumberElements"], 2);
  EXPECT_EQ(s.metadata["ser"]["ValidNumberElements"], 1);
  EXPECT_EQ(s.shape, (std::vector<int64_t>{2048}));
  EXPECT_EQ(s.dtype, DType::kInt32);
  EXPECT_EQ(s.fields.mode, Mode::kSpectrum);
  EXPECT_DOUBLE_EQ(s.axes[0].offset, 2160.0);
  // Tag time 1518137616 = 2018-02-09T00:53:36Z.
  EXPECT_EQ(s.fields.acquired, "2018-02-09T00:53:36Z");
  auto a = (*r)->Read(0, Slab({0}, {3}, {1}));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(Values<int32_t>(*a), (std::vector<int32_t>{455, 439, 465}));
  auto b = (*r)->Read(0, Slab({1000}, {2}, {1047}));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(Values<int32_t>(*b), (std::vector<int32_t>{541, 504}));

  SHARED_DATA_OR_SKIP(with_emi, "formats/tia/old/16x16_STEM_BF_DF_search_2.ser");
  auto e = OpenDataset(with_emi);
  ASSERT_TRUE(e.ok()) << e.status().message();
  EXPECT_EQ((*e)->dataset().path.filename(), "16x16_STEM_BF_DF_search.emi");
  EXPECT_EQ((*e)->dataset().signals.size(), 2u);
  EXPECT_EQ((*e)->dataset().signals[1].name, "Search DF4");
}

TEST(TiaTest, LargeStemImageFromNcempy) {
  SHARED_DATA_OR_SKIP(emi, "formats/tia/ncempy/16_STOimage.emi");
  auto reader = MustOpen(emi);
  ASSERT_TRUE(reader);
  const Signal& s = reader->dataset().signals.at(0);
  EXPECT_EQ(s.shape, (std::vector<int64_t>{1024, 1024}));
  EXPECT_EQ(s.dtype, DType::kUInt16);
  EXPECT_EQ(s.fields.instrument, "TitanCubed D3147 S-Twin");
  EXPECT_EQ(s.fields.beam_energy_kev, 80.0);
  EXPECT_EQ(s.fields.acquired, "2011-10-18T18:18:46");
  EXPECT_EQ(s.fields.detector, "HAADF");
  EXPECT_EQ(s.fields.mode, Mode::kStemImage);
}

TEST(TiaTest, BadSelectionsAreErrors) {
  SHARED_DATA_OR_SKIP(emi, "formats/tia/old/16x16x5_STEM_BF_DF_preview.emi");
  auto reader = MustOpen(emi);
  ASSERT_TRUE(reader);
  EXPECT_EQ(reader->dataset().signals.at(0).shape, (std::vector<int64_t>{5, 16, 16}));
  EXPECT_FALSE(reader->Read(2, Slab({0, 0, 0}, {1, 1, 1}, {1, 1, 1})).ok());
  EXPECT_FALSE(reader->Read(0, Slab({5, 0, 0}, {1, 1, 1}, {1, 1, 1})).ok());
  EXPECT_FALSE(reader->Read(0, Slab({0, 0}, {1, 1}, {1, 1})).ok());
  auto empty = reader->Read(0, Slab({0, 0, 0}, {0, 16, 16}, {1, 1, 1}));
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->bytes.empty());
}

// ---- Damaged and hostile copies -------------------------------------------------

TEST(TiaRobustnessTest, DamagedElementsAreNamed) {
  SHARED_DATA_OR_SKIP(src, "formats/tia/old/16x16x5_STEM_BF_DF_preview.emi");
  TempDir dir;
  const fs::path emi = CopyDataset(src, dir.path());
  const fs::path ser = dir.path() / "t_1.ser";
  const std::vector<uint8_t> good = ReadFileBytes(ser);
  // SeriesVersion 0x0210: OffsetArrayOffset (u32) at byte 22; offsets of elements 0..4 at 68.
  ASSERT_EQ(good[4], 0x10);
  const uint32_t oao = good[22] | good[23] << 8;
  ASSERT_EQ(oao, 68u);

  auto bad = good;
  PutU32(bad, oao + 4 * 3, 0x7fffff00);  // element 3 offset past the end
  WriteFileBytes(ser, bad);
  auto r = OpenTia(emi);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kCorrupt);
  EXPECT_NE(r.status().message().find("element 3"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("t_1.ser"), std::string::npos);

  bad = good;
  const uint32_t element2 = bad[oao + 8] | bad[oao + 9] << 8;
  PutU32(bad, element2 + 42, 15);  // element 2: ArraySizeX 15 instead of 16
  WriteFileBytes(ser, bad);
  r = OpenTia(emi);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("element 2"), std::string::npos) << r.status().message();

  bad = good;
  bad[element2 + 40] = 11;  // element 2 DataType 11
  WriteFileBytes(ser, bad);
  r = OpenTia(emi);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("element 2"), std::string::npos) << r.status().message();

  bad = good;
  const uint32_t element0 = bad[oao] | bad[oao + 1] << 8;
  bad[element0 + 40] = 13;  // unknown DataType in the first element
  WriteFileBytes(ser, bad);
  r = OpenTia(emi);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kUnsupported);
}

TEST(TiaRobustnessTest, HostileHeaderFields) {
  SHARED_DATA_OR_SKIP(src, "formats/tia/new/128x128x5-diffraction_preview.emi");
  TempDir dir;
  const fs::path emi = CopyDataset(src, dir.path());
  const fs::path ser = dir.path() / "t_1.ser";
  const std::vector<uint8_t> good = ReadFileBytes(ser);
  ASSERT_EQ(good[4], 0x20);  // SeriesVersion 0x0220: u64 OffsetArrayOffset at 22
  struct Edit {
    const char* what;
    size_t at;
    uint64_t value;
    int bytes;
  };
  const uint64_t oao = good[22] | good[23] << 8;
  const std::vector<Edit> edits = {
      {"TotalNumberElements", 14, 0xffffffff, 4},
      {"ValidNumberElements", 18, 0xffffffff, 4},
      {"both counts", 14, 0xffffffffffffffffull, 8},
      {"OffsetArrayOffset", 22, 0x7fffffffffffffffull, 8},
      {"OffsetArrayOffset negative", 22, 0xfffffffffffffff0ull, 8},
      {"NumberDimensions", 30, 0xffffffff, 4},
      {"NumberDimensions 2", 30, 2, 4},
      {"DimensionSize", 34, 0x7fffffff, 4},
      {"DimensionSize negative", 34, 0x80000000, 4},
      {"DescriptionLength", 34 + 24, 0x7fffffff, 4},
      {"element 0 offset", oao, 0x7fffffffffffffffull, 8},
      {"element 0 offset negative", oao, 0x8000000000000000ull, 8},
      {"element 4 offset", oao + 32, uint64_t(good.size() - 10), 8},
      {"tag offset", oao + 40, 0xffffffffffffull, 8},
      {"data type id", 6, 0x4121, 4},
      {"series version", 4, 0x0300, 2},
  };
  for (const Edit& e : edits) {
    auto bad = good;
    if (e.bytes == 8) {
      PutU64(bad, e.at, e.value);
    } else if (e.bytes == 4) {
      PutU32(bad, e.at, uint32_t(e.value));
    } else {
      bad[e.at] = uint8_t(e.value);
      bad[e.at + 1] = uint8_t(e.value >> 8);
    }
    WriteFileBytes(ser, bad);
    SCOPED_TRACE(e.what);
    OpenAndReadEverything(emi);
    OpenAndReadEverything(ser);
  }
  // Oversized 2-D element sizes in every element.
  for (uint32_t size : {0x7fffffffu, 0x80000000u, 0x10000u}) {
    auto bad = good;
    for (int k = 0; k < 5; ++k) {
      const uint64_t at =
          good[oao + 8 * k] | good[oao + 8 * k + 1] << 8 | uint64_t(good[oao + 8 * k + 2]) << 16;
      PutU32(bad, at + 42, size);
      PutU32(bad, at + 46, size);
    }
    WriteFileBytes(ser, bad);
    auto r = OpenTia(emi);
    EXPECT_FALSE(r.ok());
  }
}

TEST(TiaRobustnessTest, TruncatedSerAndEmi) {
  SHARED_DATA_OR_SKIP(src, "formats/tia/old/16x16-spectrum_image-5x5x1024.emi");
  TempDir dir;
  const fs::path emi = CopyDataset(src, dir.path());
  const fs::path ser = dir.path() / "t_1.ser";
  const std::vector<uint8_t> ser_bytes = ReadFileBytes(ser);
  const std::vector<uint8_t> emi_bytes = ReadFileBytes(emi);
  // Every prefix of the header and offset arrays, and a sample of longer ones; made
  // by shrinking one copy (cheap on slow disks), longest first.
  std::vector<size_t> lengths;
  for (size_t n = 0; n <= 600; ++n) lengths.push_back(n);
  for (size_t n = 600; n < ser_bytes.size(); n += 997) lengths.push_back(n);
  lengths.push_back(ser_bytes.size() - 1);
  std::sort(lengths.rbegin(), lengths.rend());
  for (size_t n : lengths) {
    fs::resize_file(ser, n);
    auto r = OpenTia(emi);
    // Every element's values must be present, so a file shortened by more than the
    // last element's 24-byte tag (time and position) never opens.
    if (n < ser_bytes.size() - 24) {
      EXPECT_FALSE(r.ok()) << "length " << n;
    }
    OpenAndReadEverything(ser);
  }
  WriteFileBytes(ser, ser_bytes);
  for (size_t n = emi_bytes.size() - 1; n > 0; n -= (n < 200 ? 1 : 211)) {
    fs::resize_file(emi, n);
    OpenAndReadEverything(emi);
  }
}

TEST(TiaRobustnessTest, BitFlippedCopies) {
  SHARED_DATA_OR_SKIP(src, "formats/tia/old/16x16_STEM_BF_DF_acquire.emi");
  TempDir dir;
  const fs::path emi = CopyDataset(src, dir.path());
  const fs::path ser = dir.path() / "t_2.ser";
  const std::vector<uint8_t> ser_bytes = ReadFileBytes(ser);
  const std::vector<uint8_t> emi_bytes = ReadFileBytes(emi);
  for (uint32_t seed = 1; seed <= 300; ++seed) {
    std::mt19937 rng(seed);
    auto bad = ser_bytes;
    const int flips = 1 + int(rng() % 4);
    for (int i = 0; i < flips; ++i) {
      // Mostly the header, offset array and element header (first 140 bytes).
      const size_t at = (rng() % 4 != 0) ? rng() % 140 : rng() % bad.size();
      bad[at] ^= uint8_t(1u << (rng() % 8));
    }
    WriteFileBytes(ser, bad);
    SCOPED_TRACE("ser seed " + std::to_string(seed));
    OpenAndReadEverything(emi);
  }
  WriteFileBytes(ser, ser_bytes);
  for (uint32_t seed = 1; seed <= 200; ++seed) {
    std::mt19937 rng(seed);
    auto bad = emi_bytes;
    for (int i = 0; i < 1 + int(rng() % 8); ++i) {
      bad[rng() % bad.size()] ^= uint8_t(1u << (rng() % 8));
    }
    WriteFileBytes(emi, bad);
    SCOPED_TRACE("emi seed " + std::to_string(seed));
    OpenAndReadEverything(emi);
  }
}

TEST(TiaRobustnessTest, HostileEmi) {
  SHARED_DATA_OR_SKIP(src, "formats/tia/old/16x16_STEM_BF_DF_search.emi");
  TempDir dir;
  const fs::path emi = CopyDataset(src, dir.path());
  auto text_emi = [&](const std::string& body) {
    WriteFileBytes(emi, std::vector<uint8_t>(body.begin(), body.end()));
  };
  // An ObjectInfo that never ends, nesting far past the limit, a mismatched tag, and
  // string records with huge lengths: errors or results, never crashes.
  text_emi("<ObjectInfo><Uuid>x</Uuid>");
  OpenAndReadEverything(emi);
  std::string deep = "<ObjectInfo>";
  for (int i = 0; i < 5000; ++i) deep += "<a>";
  text_emi(deep + "</ObjectInfo>");
  auto r = OpenTia(emi);
  EXPECT_FALSE(r.ok());
  text_emi("<ObjectInfo><A>1</B></ObjectInfo>");
  r = OpenTia(emi);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("</B>"), std::string::npos) << r.status().message();
  std::string records;
  for (int i = 0; i < 100; ++i) records += std::string("\x60\x00\x00\x01\xff\xff\xff\x7f", 8);
  text_emi(records);
  OpenAndReadEverything(emi);
  // An .emi with no .ser files beside it.
  fs::remove(dir.path() / "t_1.ser");
  fs::remove(dir.path() / "t_2.ser");
  r = OpenTia(emi);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kUnsupported);
}

}  // namespace
}  // namespace scisearch::formats
