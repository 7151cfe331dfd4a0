// Round trips of the Velox and Berkeley EMD writers through formats::OpenDataset
// (which reads EMD in scisearch-hdf5-worker processes): shapes, dtypes, axes, pixel
// bytes and the normalised fields each format stores; invalid input; concurrency.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
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
using test::OpenWritten;

class EmdWriterTest : public test::WriterTest {};

// Deterministic, position-dependent bytes (no two neighbouring elements alike, so a
// transposition or an offset error shows).
NdArray SeededArray(DType dtype, std::vector<int64_t> shape, uint32_t seed) {
  NdArray array;
  array.dtype = dtype;
  array.shape = std::move(shape);
  array.bytes.resize(size_t(array.ElementCount()) * formats::DTypeSize(dtype));
  uint32_t state = seed * 2654435761u + 12345u;
  for (size_t i = 0; i < array.bytes.size(); ++i) {
    state = state * 1664525u + 1013904223u;
    array.bytes[i] = uint8_t(state >> 24);
  }
  if (dtype == DType::kFloat32 || dtype == DType::kFloat64) {
    // Finite values only (NaN bit patterns compare unequal as floats, equal as bytes, but
    // keep the data realistic).
    const size_t size = formats::DTypeSize(dtype);
    for (size_t i = 0; i < size_t(array.ElementCount()); ++i) {
      if (dtype == DType::kFloat32) {
        const float value = float(i % 977) * 0.5f + float(seed);
        std::memcpy(array.bytes.data() + i * size, &value, size);
      } else {
        const double value = double(i % 1009) * 0.25 - double(seed);
        std::memcpy(array.bytes.data() + i * size, &value, size);
      }
    }
  }
  return array;
}

// Small non-negative counts of a spectrum image.
NdArray MakeCounts(std::vector<int64_t> shape) {
  NdArray array;
  array.dtype = DType::kUInt32;
  array.shape = std::move(shape);
  const int64_t n = array.ElementCount();
  array.bytes.resize(size_t(n) * 4);
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t value = uint32_t((i * 7919) % 11 == 0 ? 3 : (i % 5 == 0 ? 1 : 0));
    std::memcpy(array.bytes.data() + size_t(i) * 4, &value, 4);
  }
  return array;
}

SignalToWrite MakeSignal(std::string name, std::vector<Axis> axes, DType dtype, uint32_t seed) {
  SignalToWrite signal;
  signal.name = std::move(name);
  std::vector<int64_t> shape;
  for (const Axis& axis : axes) shape.push_back(axis.size);
  signal.axes = std::move(axes);
  signal.data = SeededArray(dtype, shape, seed);
  return signal;
}

Acquisition StemAcquisition() {
  Acquisition acquisition;
  acquisition.fields.acquired = "2019-12-05T11:03:44";
  acquisition.fields.instrument = "Talos F200X";
  acquisition.fields.mode = Mode::kStemImage;
  acquisition.fields.beam_energy_kev = 200;
  acquisition.fields.magnification = 225000;
  acquisition.fields.pixel_size_m = 5e-11;
  acquisition.fields.pixel_size_units = "m";
  acquisition.fields.detector = "HAADF";
  acquisition.operator_name = "jsmith";
  acquisition.sample_description = "PbSe w lig";
  return acquisition;
}

const formats::Signal* FindSignal(const formats::Dataset& dataset, const std::string& name) {
  for (const formats::Signal& signal : dataset.signals) {
    if (signal.name == name) return &signal;
  }
  return nullptr;
}

size_t IndexOf(const formats::Dataset& dataset, const formats::Signal* signal) {
  return size_t(signal - dataset.signals.data());
}

// The whole signal read back equals `expected` byte for byte.
void ExpectPixels(formats::DatasetReader& reader, size_t index, const NdArray& expected) {
  const formats::Signal& signal = reader.dataset().signals[index];
  auto read = reader.Read(index, formats::Hyperslab::All(signal.shape));
  ASSERT_TRUE(read.ok()) << read.status().message();
  EXPECT_EQ(read->dtype, expected.dtype);
  EXPECT_EQ(read->shape, expected.shape);
  EXPECT_TRUE(read->bytes == expected.bytes) << "pixel data differ for signal " << signal.name;
}

// Same axis, physically: `expected` in its units, `actual` in SI units `si_units` when
// `factor` converts (Velox stores lengths in metres).
void ExpectAxis(const Axis& actual, const Axis& expected, double factor = 1.0,
                const std::string& si_units = "") {
  EXPECT_EQ(actual.name, expected.name);
  EXPECT_EQ(actual.size, expected.size);
  EXPECT_NEAR(actual.scale, expected.scale * factor, std::abs(expected.scale * factor) * 1e-12)
      << actual.name;
  EXPECT_NEAR(actual.offset, expected.offset * factor,
              std::abs(expected.offset * factor) * 1e-12 + 1e-300)
      << actual.name;
  EXPECT_EQ(actual.units, si_units.empty() ? expected.units : si_units) << actual.name;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// ---------------------------------------------------------------------------------
// Velox.

TEST_F(EmdWriterTest, VeloxSingleStemImage) {
  Acquisition acquisition = StemAcquisition();
  // Not square, so that a swapped x and y shows.
  acquisition.signals.push_back(MakeSignal(
      "HAADF", {MakeAxis("y", 16, 0.05, -0.4, "nm"), MakeAxis("x", 24, 0.05, -0.6, "nm")},
      DType::kUInt16, 1));
  const fs::path path = dir_ / "STEM HAADF.emd";
  ASSERT_TRUE(WriteVeloxEmd(path, acquisition).ok());
  EXPECT_FALSE(fs::exists(fs::path(path).concat(".partial")));

  auto reader = OpenWritten(path);
  ASSERT_NE(reader, nullptr);
  const formats::Dataset& dataset = reader->dataset();
  EXPECT_EQ(dataset.format, "emd-velox");
  ASSERT_EQ(dataset.signals.size(), 1u);
  const formats::Signal& signal = dataset.signals[0];
  EXPECT_EQ(signal.name, "HAADF");
  EXPECT_EQ(signal.dtype, DType::kUInt16);
  EXPECT_EQ(signal.shape, (std::vector<int64_t>{16, 24}));
  ASSERT_EQ(signal.axes.size(), 2u);
  ExpectAxis(signal.axes[0], acquisition.signals[0].axes[0], 1e-9, "m");
  ExpectAxis(signal.axes[1], acquisition.signals[0].axes[1], 1e-9, "m");
  EXPECT_FALSE(signal.axes[0].navigate);

  const formats::NormalisedFields& fields = signal.fields;
  EXPECT_EQ(fields.acquired, "2019-12-05T11:03:44Z");
  EXPECT_EQ(fields.instrument, "Talos F200X");
  EXPECT_EQ(fields.mode, Mode::kStemImage);
  ASSERT_TRUE(fields.beam_energy_kev);
  EXPECT_DOUBLE_EQ(*fields.beam_energy_kev, 200);
  ASSERT_TRUE(fields.magnification);
  EXPECT_DOUBLE_EQ(*fields.magnification, 225000);
  ASSERT_TRUE(fields.pixel_size_m);
  EXPECT_NEAR(*fields.pixel_size_m, 5e-11, 1e-24);
  EXPECT_EQ(fields.pixel_size_units, "m");
  EXPECT_EQ(fields.detector, "HAADF");

  // The JSON as Velox writes it: every value a string, SI units, Unix seconds.
  const formats::Metadata& json = signal.metadata;
  EXPECT_EQ(json["Optics"]["AccelerationVoltage"], "200000");
  EXPECT_EQ(json["Optics"]["OperatingMode"], "2");
  EXPECT_EQ(json["Acquisition"]["AcquisitionStartDatetime"]["DateTime"], "1575543824");
  EXPECT_EQ(json["Instrument"]["InstrumentClass"], "Talos");
  EXPECT_EQ(json["BinaryResult"]["PixelUnitX"], "m");
  EXPECT_EQ(json["Scan"]["ScanSize"]["width"], "24");
  EXPECT_EQ(json["Scan"]["ScanSize"]["height"], "16");
  EXPECT_EQ(json["Sample"], "PbSe w lig");
  EXPECT_EQ(json["Detectors"]["Detector-0"]["DetectorType"], "ScanningDetector");
  const std::string guid = json["Core"]["guid"].get<std::string>();
  EXPECT_EQ(guid.size(), 32u);
  EXPECT_EQ(guid.find_first_not_of("0123456789abcdef"), std::string::npos);

  ExpectPixels(*reader, 0, acquisition.signals[0].data);
  // A strided selection reads the matching elements.
  formats::Hyperslab slab{{2, 3}, {4, 5}, {3, 4}};
  auto part = reader->Read(0, slab);
  ASSERT_TRUE(part.ok()) << part.status().message();
  const auto* all = reinterpret_cast<const uint16_t*>(acquisition.signals[0].data.bytes.data());
  const auto* got = reinterpret_cast<const uint16_t*>(part->bytes.data());
  for (int64_t i = 0; i < 4; ++i) {
    for (int64_t j = 0; j < 5; ++j) {
      EXPECT_EQ(got[i * 5 + j], all[(2 + 3 * i) * 24 + (3 + 4 * j)]);
    }
  }
}

TEST_F(EmdWriterTest, VeloxTemImageAndDiffraction) {
  Acquisition tem = StemAcquisition();
  tem.fields.mode = Mode::kTemImage;
  tem.fields.instrument = "Titan";
  tem.fields.beam_energy_kev = 300;
  tem.fields.magnification = 38000;
  tem.fields.detector = "BM-Ceta";
  tem.signals.push_back(
      MakeSignal("BM-Ceta", {MakeAxis("y", 12, 0.2, 0, "nm"), MakeAxis("x", 10, 0.2, 0, "nm")},
                 DType::kInt16, 2));
  const fs::path tem_path = dir_ / "Camera Ceta Imaging.emd";
  ASSERT_TRUE(WriteVeloxEmd(tem_path, tem).ok());
  {
    auto reader = OpenWritten(tem_path);
    ASSERT_NE(reader, nullptr);
    const formats::Signal& signal = reader->dataset().signals.at(0);
    EXPECT_EQ(signal.fields.mode, Mode::kTemImage);
    ASSERT_TRUE(signal.fields.magnification);
    EXPECT_DOUBLE_EQ(*signal.fields.magnification, 38000);
    EXPECT_DOUBLE_EQ(signal.fields.beam_energy_kev.value_or(0), 300);
    EXPECT_EQ(signal.fields.instrument, "Titan");
    EXPECT_EQ(signal.metadata["BinaryResult"]["AcquisitionUnit"], "CameraImage");
    EXPECT_EQ(signal.metadata["BinaryResult"]["Encoding"], "Signed");
    ExpectPixels(*reader, 0, tem.signals[0].data);
  }

  Acquisition diffraction = tem;
  diffraction.fields.mode = Mode::kDiffraction;
  diffraction.signals[0].axes = {MakeAxis("ky", 12, 0.1, -0.6, "1/nm"),
                                 MakeAxis("kx", 10, 0.1, -0.5, "1/nm")};
  const fs::path diffraction_path = dir_ / "Camera Ceta Diffraction.emd";
  ASSERT_TRUE(WriteVeloxEmd(diffraction_path, diffraction).ok());
  auto reader = OpenWritten(diffraction_path);
  ASSERT_NE(reader, nullptr);
  const formats::Signal& signal = reader->dataset().signals.at(0);
  EXPECT_EQ(signal.fields.mode, Mode::kDiffraction);
  ASSERT_TRUE(signal.fields.pixel_size_m);
  EXPECT_NEAR(*signal.fields.pixel_size_m, 1e8, 1e-4);
  EXPECT_EQ(signal.fields.pixel_size_units, "1/m");
  EXPECT_EQ(signal.axes[1].units, "1/m");
  EXPECT_NEAR(signal.axes[1].offset, -0.5e9, 1e-3);
  EXPECT_FALSE(signal.fields.magnification);  // Velox keeps none for diffraction
  ExpectPixels(*reader, 0, diffraction.signals[0].data);
}

TEST_F(EmdWriterTest, VeloxTwoDetectorsAsTwoUuids) {
  Acquisition acquisition = StemAcquisition();
  acquisition.fields.detector.reset();
  const std::vector<Axis> axes = {MakeAxis("y", 8, 0.1, 0, "nm"), MakeAxis("x", 9, 0.1, 0, "nm")};
  acquisition.signals.push_back(MakeSignal("HAADF", axes, DType::kUInt16, 3));
  acquisition.signals.push_back(MakeSignal("DF4", axes, DType::kUInt16, 4));
  const fs::path path = dir_ / "STEM HAADF-DF4.emd";
  ASSERT_TRUE(WriteVeloxEmd(path, acquisition).ok());

  auto reader = OpenWritten(path);
  ASSERT_NE(reader, nullptr);
  const formats::Dataset& dataset = reader->dataset();
  ASSERT_EQ(dataset.signals.size(), 2u);
  // Listed in the caller's order (uuids are assigned in sorted order).
  EXPECT_EQ(dataset.signals[0].name, "HAADF");
  EXPECT_EQ(dataset.signals[1].name, "DF4");
  EXPECT_NE(dataset.signals[0].metadata["Core"]["guid"],
            dataset.signals[1].metadata["Core"]["guid"]);
  for (size_t i = 0; i < 2; ++i) {
    const formats::Signal* signal = FindSignal(dataset, acquisition.signals[i].name);
    ASSERT_NE(signal, nullptr);
    EXPECT_EQ(signal->fields.detector, acquisition.signals[i].name);
    EXPECT_EQ(signal->fields.mode, Mode::kStemImage);
    EXPECT_EQ(signal->metadata["BinaryResult"]["DetectorIndex"], std::to_string(i));
    ExpectPixels(*reader, IndexOf(dataset, signal), acquisition.signals[i].data);
  }
}

TEST_F(EmdWriterTest, VeloxImageSeries) {
  Acquisition acquisition = StemAcquisition();
  acquisition.fields.mode = Mode::kTemImage;
  acquisition.signals.push_back(
      MakeSignal("BM-Ceta",
                 {MakeAxis("frame", 5, 0.25, 0, "s", true), MakeAxis("y", 7, 0.3, 0, "nm"),
                  MakeAxis("x", 6, 0.3, 0, "nm")},
                 DType::kFloat32, 5));
  const fs::path path = dir_ / "series.emd";
  ASSERT_TRUE(WriteVeloxEmd(path, acquisition).ok());
  auto reader = OpenWritten(path);
  ASSERT_NE(reader, nullptr);
  const formats::Signal& signal = reader->dataset().signals.at(0);
  EXPECT_EQ(signal.dtype, DType::kFloat32);
  EXPECT_EQ(signal.shape, (std::vector<int64_t>{5, 7, 6}));
  ExpectAxis(signal.axes[0], acquisition.signals[0].axes[0]);
  EXPECT_TRUE(signal.axes[0].navigate);
  ExpectAxis(signal.axes[1], acquisition.signals[0].axes[1], 1e-9, "m");
  ExpectAxis(signal.axes[2], acquisition.signals[0].axes[2], 1e-9, "m");
  ExpectPixels(*reader, 0, acquisition.signals[0].data);
  // Frame 3 alone.
  auto frame = reader->Read(0, formats::Hyperslab{{3, 0, 0}, {1, 7, 6}, {1, 1, 1}});
  ASSERT_TRUE(frame.ok()) << frame.status().message();
  const size_t frame_bytes = 7 * 6 * 4;
  EXPECT_EQ(0,
            std::memcmp(frame->bytes.data(),
                        acquisition.signals[0].data.bytes.data() + 3 * frame_bytes, frame_bytes));
}

TEST_F(EmdWriterTest, VeloxSpectra) {
  Acquisition acquisition = StemAcquisition();
  acquisition.fields.mode = Mode::kSpectrum;
  acquisition.signals.push_back(
      MakeSignal("SuperXG21", {MakeAxis("energy", 300, 10, -100, "eV")}, DType::kUInt32, 6));
  acquisition.signals.push_back(MakeSignal(
      "SuperXG22",
      {MakeAxis("spectrum", 3, 1, 0, "", true), MakeAxis("energy", 200, 0.005, 0.1, "keV")},
      DType::kFloat32, 7));
  const fs::path path = dir_ / "spectra.emd";
  ASSERT_TRUE(WriteVeloxEmd(path, acquisition).ok());
  auto reader = OpenWritten(path);
  ASSERT_NE(reader, nullptr);
  const formats::Dataset& dataset = reader->dataset();
  ASSERT_EQ(dataset.signals.size(), 2u);

  const formats::Signal* single = FindSignal(dataset, "SuperXG21");
  ASSERT_NE(single, nullptr);
  EXPECT_EQ(single->shape, (std::vector<int64_t>{300}));
  EXPECT_EQ(single->fields.mode, Mode::kSpectrum);
  ExpectAxis(single->axes[0], acquisition.signals[0].axes[0]);
  ExpectPixels(*reader, IndexOf(dataset, single), acquisition.signals[0].data);

  const formats::Signal* stack = FindSignal(dataset, "SuperXG22");
  ASSERT_NE(stack, nullptr);
  EXPECT_EQ(stack->shape, (std::vector<int64_t>{3, 200}));
  EXPECT_EQ(stack->axes[1].name, "energy");
  EXPECT_NEAR(stack->axes[1].scale, 5, 1e-12);  // keV written as Velox's eV
  EXPECT_NEAR(stack->axes[1].offset, 100, 1e-12);
  EXPECT_EQ(stack->axes[1].units, "eV");
  ExpectPixels(*reader, IndexOf(dataset, stack), acquisition.signals[1].data);
}

TEST_F(EmdWriterTest, VeloxSpectrumImageAsEventStream) {
  Acquisition acquisition = StemAcquisition();
  acquisition.fields.mode = Mode::kSpectrumImage;
  acquisition.signals.push_back(
      MakeSignal("HAADF", {MakeAxis("y", 6, 0.5, 0, "nm"), MakeAxis("x", 5, 0.5, 0, "nm")},
                 DType::kUInt16, 8));
  SignalToWrite si;
  si.name = "SuperXG2";
  si.axes = {MakeAxis("y", 6, 0.5, 0, "nm", true), MakeAxis("x", 5, 0.5, 0, "nm", true),
             MakeAxis("energy", 64, 20, -200, "eV")};
  si.data = MakeCounts({6, 5, 64});
  // A quadrant's sum spectrum, calibrated differently and listed first: "SuperXG2" is a
  // prefix of its name, and each signal must still find its own calibration.
  acquisition.signals.push_back(
      MakeSignal("SuperXG21", {MakeAxis("energy", 128, 10, -100, "eV")}, DType::kUInt32, 21));
  acquisition.signals.push_back(si);
  const fs::path path = dir_ / "SI.emd";
  ASSERT_TRUE(WriteVeloxEmd(path, acquisition).ok());

  auto reader = OpenWritten(path);
  ASSERT_NE(reader, nullptr);
  const formats::Dataset& dataset = reader->dataset();
  ASSERT_EQ(dataset.signals.size(), 3u);
  const formats::Signal* haadf = FindSignal(dataset, "HAADF");
  ASSERT_NE(haadf, nullptr);
  EXPECT_EQ(haadf->fields.mode, Mode::kStemImage);
  const formats::Signal* sum = FindSignal(dataset, "SuperXG21");
  ASSERT_NE(sum, nullptr);
  ExpectAxis(sum->axes[0], acquisition.signals[1].axes[0]);
  ExpectPixels(*reader, IndexOf(dataset, sum), acquisition.signals[1].data);
  ExpectPixels(*reader, IndexOf(dataset, haadf), acquisition.signals[0].data);

  const formats::Signal* eds = FindSignal(dataset, "EDS");  // the reader's name for the SI
  ASSERT_NE(eds, nullptr);
  EXPECT_EQ(eds->dtype, DType::kUInt32);
  EXPECT_EQ(eds->shape, (std::vector<int64_t>{6, 5, 64}));
  EXPECT_EQ(eds->fields.mode, Mode::kSpectrumImage);
  EXPECT_EQ(eds->fields.detector, "SuperXG2");
  ExpectAxis(eds->axes[2], si.axes[2]);
  ExpectAxis(eds->axes[1], si.axes[1], 1e-9, "m");
  EXPECT_EQ(eds->metadata["SpectrumStreams"][0]["AcquisitionSettings"]["bincount"], "64");
  ExpectPixels(*reader, IndexOf(dataset, eds), si.data);
}

TEST_F(EmdWriterTest, VeloxDeterministic) {
  Acquisition acquisition = StemAcquisition();
  acquisition.signals.push_back(
      MakeSignal("HAADF", {MakeAxis("y", 8, 0.1, 0, "nm"), MakeAxis("x", 8, 0.1, 0, "nm")},
                 DType::kUInt16, 9));
  ASSERT_TRUE(WriteVeloxEmd(dir_ / "a" / "x.emd", acquisition).ok());
  ASSERT_TRUE(WriteVeloxEmd(dir_ / "b" / "x.emd", acquisition).ok());
  const std::string a = ReadFile(dir_ / "a" / "x.emd");
  EXPECT_GT(a.size(), 60000u);
  EXPECT_TRUE(a == ReadFile(dir_ / "b" / "x.emd"));
}

// ---------------------------------------------------------------------------------
// Berkeley.

TEST_F(EmdWriterTest, BerkeleyImage) {
  Acquisition acquisition = StemAcquisition();
  acquisition.fields.instrument = "TEAM 0.5";
  acquisition.fields.beam_energy_kev = 300;
  acquisition.fields.magnification = 5.1e6;
  acquisition.fields.acquired = "2019-10-04T19:25:41+00:00";
  acquisition.signals.push_back(MakeSignal(
      "single", {MakeAxis("Y", 20, 0.021, 0.5, "nm"), MakeAxis("X", 30, 0.021, -1, "nm")},
      DType::kFloat32, 10));
  const fs::path path = dir_ / "Acquisition_1.emd";
  ASSERT_TRUE(WriteBerkeleyEmd(path, acquisition).ok());

  auto reader = OpenWritten(path);
  ASSERT_NE(reader, nullptr);
  const formats::Dataset& dataset = reader->dataset();
  EXPECT_EQ(dataset.format, "emd-berkeley");
  ASSERT_EQ(dataset.signals.size(), 1u);
  const formats::Signal& signal = dataset.signals[0];
  EXPECT_EQ(signal.name, "single");
  EXPECT_EQ(signal.dtype, DType::kFloat32);
  EXPECT_EQ(signal.shape, (std::vector<int64_t>{20, 30}));
  for (size_t k = 0; k < 2; ++k) {
    const Axis& expected = acquisition.signals[0].axes[k];
    EXPECT_EQ(signal.axes[k].name, expected.name);
    EXPECT_EQ(signal.axes[k].units, "nm");
    EXPECT_NEAR(signal.axes[k].scale, expected.scale, 1e-12);
    EXPECT_NEAR(signal.axes[k].offset, expected.offset, 1e-12);
  }
  const formats::NormalisedFields& fields = signal.fields;
  EXPECT_EQ(fields.acquired, "2019-10-04T19:25:41Z");
  EXPECT_EQ(fields.instrument, "TEAM 0.5");
  EXPECT_EQ(fields.mode, Mode::kImage);  // Berkeley EMD does not say TEM or STEM
  EXPECT_DOUBLE_EQ(fields.beam_energy_kev.value_or(0), 300);
  EXPECT_DOUBLE_EQ(fields.magnification.value_or(0), 5.1e6);
  ASSERT_TRUE(fields.pixel_size_m);
  EXPECT_NEAR(*fields.pixel_size_m, 0.021e-9, 1e-21);
  EXPECT_EQ(fields.pixel_size_units, "m");
  // NCEM's spellings in the metadata tree.
  const formats::Metadata& tree = signal.metadata;
  EXPECT_EQ(tree["version_major"], 0);
  EXPECT_EQ(tree["version_minor"], 2);
  EXPECT_EQ(tree["data"]["single"]["emd_group_type"], 1);
  EXPECT_DOUBLE_EQ(tree["microscope"]["high tension"].get<double>(), 300000);
  EXPECT_EQ(tree["sample"]["sample name"], "PbSe w lig");
  EXPECT_EQ(tree["user"]["name"], "jsmith");
  ExpectPixels(*reader, 0, acquisition.signals[0].data);
}

TEST_F(EmdWriterTest, Berkeley4dStem) {
  Acquisition acquisition = StemAcquisition();
  acquisition.fields.mode = Mode::k4dStem;
  acquisition.signals.push_back(MakeSignal(
      "datacube",
      {MakeAxis("scan_y", 3, 0.5, 0, "nm", true), MakeAxis("scan_x", 4, 0.5, 0, "nm", true),
       MakeAxis("ky", 8, 0.02, -0.08, "1/A"), MakeAxis("kx", 10, 0.02, -0.1, "1/A")},
      DType::kUInt16, 11));
  const fs::path path = dir_ / "4dstem.emd";
  ASSERT_TRUE(WriteBerkeleyEmd(path, acquisition).ok());
  auto reader = OpenWritten(path);
  ASSERT_NE(reader, nullptr);
  const formats::Signal& signal = reader->dataset().signals.at(0);
  EXPECT_EQ(signal.shape, (std::vector<int64_t>{3, 4, 8, 10}));
  EXPECT_EQ(signal.fields.mode, Mode::k4dStem);
  const std::vector<std::string> names = {"scan_y", "scan_x", "ky", "kx"};
  for (size_t k = 0; k < 4; ++k) {
    EXPECT_EQ(signal.axes[k].name, names[k]);
    EXPECT_EQ(signal.axes[k].navigate, k < 2);
    EXPECT_EQ(signal.axes[k].units, k < 2 ? "nm" : "1/A");
  }
  EXPECT_NEAR(signal.axes[3].scale, 0.02, 1e-12);
  ASSERT_TRUE(signal.fields.pixel_size_m);
  EXPECT_NEAR(*signal.fields.pixel_size_m, 0.02e10, 1e-3);
  EXPECT_EQ(signal.fields.pixel_size_units, "1/m");
  ExpectPixels(*reader, 0, acquisition.signals[0].data);
  // One diffraction pattern.
  auto pattern = reader->Read(0, formats::Hyperslab{{2, 1, 0, 0}, {1, 1, 8, 10}, {1, 1, 1, 1}});
  ASSERT_TRUE(pattern.ok()) << pattern.status().message();
  const size_t bytes = 8 * 10 * 2;
  EXPECT_EQ(0, std::memcmp(pattern->bytes.data(),
                           acquisition.signals[0].data.bytes.data() + (2 * 4 + 1) * bytes, bytes));
}

TEST_F(EmdWriterTest, BerkeleySpectrumAndSeveralSignals) {
  Acquisition acquisition = StemAcquisition();
  acquisition.fields.mode = Mode::kSpectrum;
  acquisition.signals.push_back(
      MakeSignal("EELS", {MakeAxis("energy", 512, 0.25, 280, "eV")}, DType::kInt32, 12));
  acquisition.signals.push_back(
      MakeSignal("HAADF", {MakeAxis("y", 4, 1, 0, "nm"), MakeAxis("x", 4, 1, 0, "nm")},
                 DType::kComplex64, 13));
  const fs::path path = dir_ / "eels.emd";
  ASSERT_TRUE(WriteBerkeleyEmd(path, acquisition).ok());
  auto reader = OpenWritten(path);
  ASSERT_NE(reader, nullptr);
  const formats::Dataset& dataset = reader->dataset();
  ASSERT_EQ(dataset.signals.size(), 2u);
  const formats::Signal* eels = FindSignal(dataset, "EELS");
  ASSERT_NE(eels, nullptr);
  EXPECT_EQ(eels->dtype, DType::kInt32);
  EXPECT_EQ(eels->fields.mode, Mode::kSpectrum);
  EXPECT_EQ(eels->axes[0].name, "energy");
  EXPECT_EQ(eels->axes[0].units, "eV");
  EXPECT_NEAR(eels->axes[0].offset, 280, 1e-12);
  EXPECT_NEAR(eels->axes[0].scale, 0.25, 1e-12);
  ExpectPixels(*reader, IndexOf(dataset, eels), acquisition.signals[0].data);
  const formats::Signal* haadf = FindSignal(dataset, "HAADF");
  ASSERT_NE(haadf, nullptr);
  EXPECT_EQ(haadf->dtype, DType::kComplex64);
  ExpectPixels(*reader, IndexOf(dataset, haadf), acquisition.signals[1].data);
}

TEST_F(EmdWriterTest, BerkeleyDeterministic) {
  Acquisition acquisition = StemAcquisition();
  acquisition.signals.push_back(
      MakeSignal("s", {MakeAxis("energy", 16, 1, 0, "eV")}, DType::kBool, 14));
  for (uint8_t& byte : acquisition.signals[0].data.bytes) byte &= 1;
  ASSERT_TRUE(WriteBerkeleyEmd(dir_ / "a" / "x.emd", acquisition).ok());
  ASSERT_TRUE(WriteBerkeleyEmd(dir_ / "b" / "x.emd", acquisition).ok());
  EXPECT_TRUE(ReadFile(dir_ / "a" / "x.emd") == ReadFile(dir_ / "b" / "x.emd"));
  auto reader = OpenWritten(dir_ / "a" / "x.emd");
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->dataset().signals.at(0).dtype, DType::kBool);
  ExpectPixels(*reader, 0, acquisition.signals[0].data);
}

TEST_F(EmdWriterTest, TextInAnyEncodingIsStoredAsUtf8) {
  Acquisition acquisition = StemAcquisition();
  // "Au NP 5 µm" in UTF-8, then Latin-1 bytes and a truncated sequence.
  acquisition.sample_description = "Au NP 5 \xc2\xb5m, 5 \xb5m \xe2\x82";
  acquisition.operator_name = "J\xf6rg";
  acquisition.signals.push_back(
      MakeSignal("HAADF \xff", {MakeAxis("y", 3, 1, 0, "\xb5m"), MakeAxis("x", 3, 1, 0, "nm")},
                 DType::kUInt8, 22));
  const std::string replacement = "\xef\xbf\xbd";
  for (int format = 0; format < 2; ++format) {
    const fs::path path = dir_ / (format == 0 ? "velox.emd" : "berkeley.emd");
    const Status status =
        format == 0 ? WriteVeloxEmd(path, acquisition) : WriteBerkeleyEmd(path, acquisition);
    ASSERT_TRUE(status.ok()) << status.message();
    auto reader = OpenWritten(path);
    ASSERT_NE(reader, nullptr);
    const formats::Signal& signal = reader->dataset().signals.at(0);
    EXPECT_EQ(signal.name, "HAADF " + replacement);
    const formats::Metadata& sample =
        format == 0 ? signal.metadata["Sample"] : signal.metadata["sample"]["sample name"];
    EXPECT_EQ(sample, "Au NP 5 \xc2\xb5m, 5 " + replacement + "m " + replacement + replacement);
    ExpectPixels(*reader, 0, acquisition.signals[0].data);
  }
}

// ---------------------------------------------------------------------------------
// Invalid input.

struct BadCase {
  std::string what;
  std::function<void(Acquisition&)> spoil;
  std::string field;  // the error names it
};

TEST_F(EmdWriterTest, InvalidInputIsRejectedWithTheField) {
  const std::vector<BadCase> cases = {
      {"no acquired", [](Acquisition& a) { a.fields.acquired.reset(); }, "acquired"},
      {"bad acquired", [](Acquisition& a) { a.fields.acquired = "yesterday"; }, "acquired"},
      {"bad date", [](Acquisition& a) { a.fields.acquired = "2019-02-30T10:00:00"; }, "acquired"},
      {"no signals", [](Acquisition& a) { a.signals.clear(); }, "signals"},
      {"axes vs rank", [](Acquisition& a) { a.signals[0].axes.pop_back(); }, ".axes has 1 entries"},
      {"axis size", [](Acquisition& a) { a.signals[0].axes[1].size = 5; },
       "axes[1] (x) has size 5"},
      {"byte count", [](Acquisition& a) { a.signals[0].data.bytes.pop_back(); }, "data.bytes"},
      {"rgb", [](Acquisition& a) { a.signals[0].data.dtype = DType::kRGB8; }, "data.dtype"},
      {"zero size",
       [](Acquisition& a) {
         a.signals[0].data.shape[0] = 0;
         a.signals[0].axes[0].size = 0;
       },
       "data.shape"},
      {"nan scale", [](Acquisition& a) { a.signals[0].axes[0].scale = NAN; }, "axes[0]"},
      {"negative voltage", [](Acquisition& a) { a.fields.beam_energy_kev = -3; },
       "beam_energy_kev"},
      {"slash in name", [](Acquisition& a) { a.signals[0].name = "BF/DF"; }, "signals[0].name"},
  };
  for (const BadCase& bad : cases) {
    for (int format = 0; format < 2; ++format) {
      Acquisition acquisition = StemAcquisition();
      acquisition.signals.push_back(
          MakeSignal("HAADF", {MakeAxis("y", 4, 1, 0, "nm"), MakeAxis("x", 6, 1, 0, "nm")},
                     DType::kUInt16, 15));
      bad.spoil(acquisition);
      const fs::path path = dir_ / (bad.what + std::to_string(format) + ".emd");
      const Status status =
          format == 0 ? WriteVeloxEmd(path, acquisition) : WriteBerkeleyEmd(path, acquisition);
      if (bad.what == "slash in name" && format == 0) {
        // Velox names groups by uuid: any detector name is fine.
        EXPECT_TRUE(status.ok()) << status.message();
        continue;
      }
      EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument) << bad.what << ": " << status.message();
      EXPECT_NE(status.message().find(bad.field), std::string::npos)
          << bad.what << ": " << status.message();
      EXPECT_FALSE(fs::exists(path)) << bad.what;
    }
  }
  // Nothing but the one valid file was written, not even a temporary.
  std::vector<std::string> left;
  for (const auto& entry : fs::directory_iterator(dir_)) {
    left.push_back(entry.path().filename().string());
  }
  EXPECT_EQ(left, std::vector<std::string>{"slash in name0.emd"});
}

TEST_F(EmdWriterTest, VeloxRejectsWhatVeloxCannotStore) {
  Acquisition acquisition = StemAcquisition();
  acquisition.signals.push_back(MakeSignal("cube",
                                           {MakeAxis("a", 2, 1, 0, ""), MakeAxis("b", 2, 1, 0, ""),
                                            MakeAxis("c", 2, 1, 0, ""), MakeAxis("d", 2, 1, 0, "")},
                                           DType::kUInt8, 16));
  Status status = WriteVeloxEmd(dir_ / "4d.emd", acquisition);
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(status.message().find("signals[0].axes"), std::string::npos) << status.message();

  // Negative counts in a spectrum image.
  acquisition.signals[0] = MakeSignal("EDS",
                                      {MakeAxis("y", 2, 1, 0, "nm"), MakeAxis("x", 2, 1, 0, "nm"),
                                       MakeAxis("energy", 4, 10, 0, "eV")},
                                      DType::kInt16, 17);
  for (size_t i = 1; i < acquisition.signals[0].data.bytes.size(); i += 2) {
    acquisition.signals[0].data.bytes[i] = 0xFF;
  }
  status = WriteVeloxEmd(dir_ / "negative.emd", acquisition);
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(status.message().find("signals[0].data"), std::string::npos) << status.message();

  // Fractional counts.
  acquisition.signals[0].data = SeededArray(DType::kFloat32, {2, 2, 4}, 18);
  status = WriteVeloxEmd(dir_ / "float.emd", acquisition);
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument);

  // Two datasets of one detector; a detector with no name.
  acquisition.signals[0] = MakeSignal(
      "HAADF", {MakeAxis("y", 2, 1, 0, "nm"), MakeAxis("x", 2, 1, 0, "nm")}, DType::kUInt8, 19);
  acquisition.signals.push_back(acquisition.signals[0]);
  status = WriteVeloxEmd(dir_ / "twice.emd", acquisition);
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(status.message().find("signals[1].name"), std::string::npos) << status.message();
  acquisition.signals[1].name.clear();
  status = WriteVeloxEmd(dir_ / "unnamed.emd", acquisition);
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(status.message().find("signals[1].name"), std::string::npos) << status.message();
  EXPECT_TRUE(fs::is_empty(dir_));
}

TEST_F(EmdWriterTest, UnwritableTargetIsAnError) {
  Acquisition acquisition = StemAcquisition();
  acquisition.signals.push_back(MakeSignal(
      "HAADF", {MakeAxis("y", 2, 1, 0, "nm"), MakeAxis("x", 2, 1, 0, "nm")}, DType::kUInt8, 20));
  // The target's parent is a regular file.
  std::ofstream(dir_ / "file") << "x";
  const Status status = WriteBerkeleyEmd(dir_ / "file" / "x.emd", acquisition);
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("file"), std::string::npos) << status.message();
}

// ---------------------------------------------------------------------------------
// Concurrency: the writers serialise HDF5 internally.

TEST_F(EmdWriterTest, FourThreadsWriteFourValidFiles) {
  constexpr int kThreads = 4;
  std::vector<Acquisition> acquisitions(kThreads);
  std::vector<Status> results(kThreads);
  std::vector<fs::path> paths(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    acquisitions[t] = StemAcquisition();
    acquisitions[t].signals.push_back(
        MakeSignal(t % 2 == 0 ? "HAADF" : "BF",
                   {MakeAxis("frame", 3, 1, 0, "", true), MakeAxis("y", 32 + t, 0.1, 0, "nm"),
                    MakeAxis("x", 40, 0.1, 0, "nm")},
                   DType::kUInt16, 100 + uint32_t(t)));
    paths[t] = dir_ / ("thread" + std::to_string(t) + ".emd");
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Several files each, so that the threads really overlap.
      for (int round = 0; round < 5; ++round) {
        results[t] = t % 2 == 0 ? WriteVeloxEmd(paths[t], acquisitions[t])
                                : WriteBerkeleyEmd(paths[t], acquisitions[t]);
        if (!results[t].ok()) return;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_TRUE(results[t].ok()) << results[t].message();
    auto reader = OpenWritten(paths[t]);
    ASSERT_NE(reader, nullptr);
    EXPECT_EQ(reader->dataset().format, t % 2 == 0 ? "emd-velox" : "emd-berkeley");
    EXPECT_EQ(reader->dataset().signals.at(0).shape, (std::vector<int64_t>{3, 32 + t, 40}));
    ExpectPixels(*reader, 0, acquisitions[t].signals[0].data);
  }
  // Only the four finished files remain (no temporaries).
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), kThreads);
}

}  // namespace
}  // namespace scisearch::simulate
