// Tests of the EMD reader (Berkeley EMD, EMD 1.0/py4DSTEM, Prismatic, Thermo Velox) on
// the shared sample files. Expected values come from MANIFEST.md and from the files'
// bytes as read independently with h5py (noted beside each value).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "formats/emd_reader_internal.h"
#include "formats/formats.h"
#include "formats/readers.h"
#include "test_paths.h"

namespace scisearch::formats {
namespace {

std::unique_ptr<DatasetReader> OpenOrDie(const std::filesystem::path& path) {
  auto reader = OpenEmd(path);
  EXPECT_TRUE(reader.ok()) << reader.status().message();
  if (!reader.ok()) return nullptr;
  return std::move(reader).value();
}

template <typename T>
std::vector<T> ReadAll(DatasetReader& reader, size_t index) {
  const Signal& signal = reader.dataset().signals.at(index);
  auto array = reader.Read(index, Hyperslab::All(signal.shape));
  EXPECT_TRUE(array.ok()) << array.status().message();
  if (!array.ok()) return {};
  EXPECT_EQ(array->bytes.size() % sizeof(T), 0u);
  std::vector<T> out(array->bytes.size() / sizeof(T));
  std::memcpy(out.data(), array->bytes.data(), array->bytes.size());
  return out;
}

template <typename T>
T ReadOne(DatasetReader& reader, size_t index, const std::vector<int64_t>& at) {
  Hyperslab slab;
  slab.start = at;
  slab.count.assign(at.size(), 1);
  slab.step.assign(at.size(), 1);
  auto array = reader.Read(index, slab);
  EXPECT_TRUE(array.ok()) << array.status().message();
  T value{};
  if (array.ok() && array->bytes.size() == sizeof(T)) {
    std::memcpy(&value, array->bytes.data(), sizeof(T));
  }
  return value;
}

const Signal* FindSignal(const Dataset& dataset, const std::string& name) {
  for (const Signal& s : dataset.signals) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

// ----------------------------------------------------------------------------------
// Berkeley EMD.

TEST(EmdBerkeley, Acquisition18ImageAxesAndMetadata) {
  SHARED_DATA_OR_SKIP(path, "formats/emd_berkeley/Acquisition_18.emd");
  auto reader = OpenOrDie(path);
  ASSERT_NE(reader, nullptr);
  const Dataset& dataset = reader->dataset();
  EXPECT_EQ(dataset.format, "emd-berkeley");
  ASSERT_EQ(dataset.signals.size(), 1u);
  const Signal& s = dataset.signals[0];
  EXPECT_EQ(s.dtype, DType::kUInt16);  // MANIFEST: 1024x1024 uint16
  EXPECT_EQ(s.shape, (std::vector<int64_t>{1024, 1024}));
  ASSERT_EQ(s.axes.size(), 2u);
  // dim1 @name 'Y', @units 'n_m', values 0, 0.01224652, ... (float32).
  EXPECT_EQ(s.axes[0].name, "Y");
  EXPECT_EQ(s.axes[1].name, "X");
  EXPECT_EQ(s.axes[0].units, "nm");
  EXPECT_NEAR(s.axes[0].scale, 0.012246525, 1e-8);
  EXPECT_DOUBLE_EQ(s.axes[0].offset, 0.0);
  // /microscope: name 'TEAM 0.5', high tension 200000.0 V, magnification 5100000.0.
  EXPECT_EQ(s.fields.instrument, "TEAM 0.5");
  ASSERT_TRUE(s.fields.beam_energy_kev);
  EXPECT_DOUBLE_EQ(*s.fields.beam_energy_kev, 200.0);
  ASSERT_TRUE(s.fields.magnification);
  EXPECT_DOUBLE_EQ(*s.fields.magnification, 5.1e6);
  ASSERT_TRUE(s.fields.pixel_size_m);
  EXPECT_NEAR(*s.fields.pixel_size_m, 0.012246525e-9, 1e-16);
  EXPECT_EQ(s.fields.pixel_size_units, "m");
  // "acquisition times" dataset: 1570217141.484 (Unix seconds).
  EXPECT_EQ(s.fields.acquired, "2019-10-04T19:25:41Z");
  // Typed tree: strings, ints, reals, arrays.
  EXPECT_EQ(s.metadata["sample"]["sample name"], "STO laser cut");
  EXPECT_EQ(s.metadata["user"]["User name"], "Peter Ercius");
  EXPECT_TRUE(s.metadata["microscope"]["binning"].is_number_integer());
  EXPECT_EQ(s.metadata["microscope"]["binning"].get<int64_t>(), 4);
  EXPECT_TRUE(s.metadata["microscope"]["camera length"].is_number_float());
  ASSERT_TRUE(s.metadata["stage"]["position"].is_array());
  EXPECT_EQ(s.metadata["stage"]["position"].size(), 5u);
  EXPECT_DOUBLE_EQ(s.metadata["stage"]["position"][0].get<double>(), -41.923);
  EXPECT_EQ(s.metadata["version_major"].get<int64_t>(), 0);
  EXPECT_EQ(s.metadata["version_minor"].get<int64_t>(), 2);
  // Pixels (h5py): [0,0]=12487, [500,700]=9709, [1023,1]=11201.
  EXPECT_EQ(ReadOne<uint16_t>(*reader, 0, {0, 0}), 12487);
  EXPECT_EQ(ReadOne<uint16_t>(*reader, 0, {500, 700}), 9709);
  EXPECT_EQ(ReadOne<uint16_t>(*reader, 0, {1023, 1}), 11201);
}

TEST(EmdBerkeley, VariableLengthStringDims) {
  SHARED_DATA_OR_SKIP(path, "formats/emd_berkeley/emd_type1_stringDims.h5");
  auto reader = OpenOrDie(path);
  ASSERT_NE(reader, nullptr);
  ASSERT_EQ(reader->dataset().signals.size(), 1u);
  const Signal& s = reader->dataset().signals[0];
  EXPECT_EQ(s.dtype, DType::kInt64);
  EXPECT_EQ(s.shape, (std::vector<int64_t>{3, 4, 5, 6}));
  for (int k = 0; k < 4; ++k) {
    // vlen string attributes: name 'dimK', units 'unitsK'; values [0, 1].
    EXPECT_EQ(s.axes[k].name, "dim" + std::to_string(k + 1));
    EXPECT_EQ(s.axes[k].units, "units" + std::to_string(k + 1));
    EXPECT_DOUBLE_EQ(s.axes[k].scale, 1.0);
    EXPECT_DOUBLE_EQ(s.axes[k].offset, 0.0);
  }
  // data[0,0,0,:] = 0..5, data[2,3,4,5] = 359, data[1,2,3,4] = 202 (h5py).
  const auto values = ReadAll<int64_t>(*reader, 0);
  ASSERT_EQ(values.size(), 360u);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(values[i], i);
  EXPECT_EQ(values[359], 359);
  EXPECT_EQ(ReadOne<int64_t>(*reader, 0, {1, 2, 3, 4}), 202);
  // A strided selection: data[0:3:2, 1, 0:5:2, 5].
  Hyperslab slab{{0, 1, 0, 5}, {2, 1, 3, 1}, {2, 1, 2, 1}};
  auto array = reader->Read(0, slab);
  ASSERT_TRUE(array.ok()) << array.status().message();
  std::vector<int64_t> got(6);
  std::memcpy(got.data(), array->bytes.data(), 48);
  EXPECT_EQ(got, (std::vector<int64_t>{35, 47, 59, 275, 287, 299}));  // C-order indices
}

TEST(EmdBerkeley, HyperSpyWrittenFiles) {
  SHARED_DATA_OR_SKIP(meta_path, "formats/emd_berkeley/example_metadata.emd");
  SHARED_DATA_OR_SKIP(spectrum_path, "formats/emd_berkeley/example_spectrum.emd");
  SHARED_DATA_OR_SKIP(signal_path, "formats/emd_berkeley/example_signal.emd");
  auto meta = OpenOrDie(meta_path);
  ASSERT_NE(meta, nullptr);
  ASSERT_EQ(meta->dataset().signals.size(), 1u);
  const Signal& image = meta->dataset().signals[0];
  EXPECT_EQ(image.name, "This is a test!");
  EXPECT_EQ(image.dtype, DType::kInt32);
  EXPECT_EQ(image.shape, (std::vector<int64_t>{3, 3}));
  EXPECT_EQ(image.fields.instrument, "Titan");
  ASSERT_TRUE(image.fields.beam_energy_kev);
  EXPECT_DOUBLE_EQ(*image.fields.beam_energy_kev, 300.0);  // @voltage '300kV'
  EXPECT_EQ(image.metadata["user"]["name"], "John Doe");
  EXPECT_EQ(image.metadata["user"]["email"], "johndoe@web.de");
  EXPECT_EQ(image.metadata["comments"]["comment"], "Test");
  EXPECT_EQ(image.metadata["sample"]["material"], "TiO2");
  const auto& group = image.metadata["signals"]["This is a test!"];
  EXPECT_EQ(group["a"].get<int64_t>(), 1);
  EXPECT_EQ(group["b"].get<int64_t>(), 2);
  EXPECT_EQ(group["binned"], false);  // h5py bool enum
  EXPECT_EQ(group["record_by"], "image");
  EXPECT_EQ(image.fields.mode, Mode::kImage);

  auto spectrum = OpenOrDie(spectrum_path);
  ASSERT_NE(spectrum, nullptr);
  const Signal& s = spectrum->dataset().signals.at(0);
  EXPECT_EQ(s.shape, (std::vector<int64_t>{3}));
  EXPECT_EQ(s.fields.mode, Mode::kSpectrum);
  EXPECT_EQ(ReadAll<int32_t>(*spectrum, 0), (std::vector<int32_t>{0, 1, 2}));

  auto cube = OpenOrDie(signal_path);
  ASSERT_NE(cube, nullptr);
  EXPECT_EQ(cube->dataset().signals.at(0).shape, (std::vector<int64_t>{3, 3, 3}));
  const auto values = ReadAll<int32_t>(*cube, 0);  // h5py: 0..26
  ASSERT_EQ(values.size(), 27u);
  for (int i = 0; i < 27; ++i) EXPECT_EQ(values[i], i);
}

TEST(EmdBerkeley, Py4dstemDatacube) {
  SHARED_DATA_OR_SKIP(path, "formats/emd_berkeley/py4DSTEM_size2x3x4x5.h5");
  auto reader = OpenOrDie(path);
  ASSERT_NE(reader, nullptr);
  ASSERT_EQ(reader->dataset().signals.size(), 1u);
  const Signal& s = reader->dataset().signals[0];
  EXPECT_EQ(s.dtype, DType::kFloat32);
  EXPECT_EQ(s.shape, (std::vector<int64_t>{2, 3, 4, 5}));
  EXPECT_EQ(s.fields.mode, Mode::k4dStem);
  // dim0..dim3: Rx, Ry (nm, 0.12679688), Qx, Qy (A^-1, 0.04425157).
  EXPECT_EQ(s.axes[0].name, "Rx");
  EXPECT_EQ(s.axes[3].name, "Qy");
  EXPECT_EQ(s.axes[0].units, "nm");
  EXPECT_EQ(s.axes[3].units, "1/A");
  EXPECT_NEAR(s.axes[1].scale, 0.12679688, 1e-7);
  EXPECT_NEAR(s.axes[2].scale, 0.04425157, 1e-7);
  EXPECT_TRUE(s.axes[0].navigate);
  EXPECT_FALSE(s.axes[3].navigate);
  const auto& calibration = s.metadata["datacube_root"]["metadatabundle"]["calibration"];
  EXPECT_DOUBLE_EQ(calibration["R_pixel_size"].get<double>(), 0.126796875);
  EXPECT_EQ(calibration["Q_pixel_units"], "A^-1");
  EXPECT_EQ(s.metadata["authoring_program"], "emdfile");
  // data[1,2,3,4] = 772.6739, data[0,1,2,3] = -10.970058 (h5py).
  EXPECT_FLOAT_EQ(ReadOne<float>(*reader, 0, {1, 2, 3, 4}), 772.6739f);
  EXPECT_FLOAT_EQ(ReadOne<float>(*reader, 0, {0, 1, 2, 3}), -10.970058f);
}

TEST(EmdBerkeley, PrismaticFiles) {
  SHARED_DATA_OR_SKIP(path3, "formats/emd_berkeley/Si100_3D.emd");
  SHARED_DATA_OR_SKIP(path4, "formats/emd_berkeley/Si100_4D.emd");
  auto r3 = OpenOrDie(path3);
  ASSERT_NE(r3, nullptr);
  ASSERT_EQ(r3->dataset().signals.size(), 1u);
  const Signal& s3 = r3->dataset().signals[0];
  EXPECT_EQ(s3.shape, (std::vector<int64_t>{22, 22, 37}));  // MANIFEST
  EXPECT_EQ(s3.dtype, DType::kFloat32);
  EXPECT_EQ(s3.axes[2].name, "bin_outer_angle");
  EXPECT_EQ(s3.axes[2].units, "mrad");
  EXPECT_NEAR(s3.axes[2].scale, 0.001, 1e-9);  // 0.0005, 0.0015, ...
  EXPECT_NEAR(s3.axes[2].offset, 0.0005, 1e-9);
  EXPECT_EQ(s3.axes[0].units, "nm");
  EXPECT_DOUBLE_EQ(s3.axes[0].scale, 0.25);
  EXPECT_EQ(s3.metadata["4DSTEM_simulation"]["metadata"]["metadata_0"]["original"]
                       ["simulation_parameters"]["E"]
                           .get<double>(),
            100.0);

  auto r4 = OpenOrDie(path4);
  ASSERT_NE(r4, nullptr);
  ASSERT_EQ(r4->dataset().signals.size(), 2u);  // two depths
  for (const Signal& s : r4->dataset().signals) {
    EXPECT_EQ(s.shape, (std::vector<int64_t>{11, 11, 8, 8}));
    EXPECT_EQ(s.fields.mode, Mode::k4dStem);
    EXPECT_EQ(s.axes[2].name, "Q_x");
    EXPECT_EQ(s.axes[2].units, "1/nm");
    EXPECT_NEAR(s.axes[2].offset, -0.73664826, 1e-6);
    EXPECT_NEAR(s.axes[2].scale, 0.18416207, 1e-6);
    EXPECT_DOUBLE_EQ(s.axes[0].scale, 0.5);
  }
  EXPECT_EQ(r4->dataset().signals[1].name, "CBED_array_depth0001");
  EXPECT_FLOAT_EQ(ReadOne<float>(*r4, 1, {10, 5, 3, 4}), 0.017391296f);
  EXPECT_FLOAT_EQ(ReadOne<float>(*r4, 1, {0, 0, 0, 0}), 9.818247e-05f);
}

// ----------------------------------------------------------------------------------
// Velox EMD.

TEST(EmdVelox, CetaDiffractionAndImaging) {
  SHARED_DATA_OR_SKIP(diff_path, "formats/emd_velox/Camera Ceta Diffraction Micro.emd");
  SHARED_DATA_OR_SKIP(image_path, "formats/emd_velox/Camera Ceta Imaging Micro.emd");
  auto diff = OpenOrDie(diff_path);
  ASSERT_NE(diff, nullptr);
  EXPECT_EQ(diff->dataset().format, "emd-velox");
  ASSERT_EQ(diff->dataset().signals.size(), 1u);
  const Signal& d = diff->dataset().signals[0];
  EXPECT_EQ(d.dtype, DType::kInt16);  // MANIFEST: 512x512 int16, 300 kV Titan
  EXPECT_EQ(d.shape, (std::vector<int64_t>{512, 512}));
  EXPECT_EQ(d.fields.mode, Mode::kDiffraction);
  EXPECT_EQ(d.fields.instrument, "Titan");
  ASSERT_TRUE(d.fields.beam_energy_kev);
  EXPECT_DOUBLE_EQ(*d.fields.beam_energy_kev, 300.0);
  EXPECT_EQ(d.fields.detector, "BM-Ceta");
  EXPECT_EQ(d.name, "BM-Ceta");
  ASSERT_TRUE(d.fields.pixel_size_m);
  EXPECT_DOUBLE_EQ(*d.fields.pixel_size_m, 114429680.19923936);  // PixelSize.width, 1/m
  EXPECT_EQ(d.fields.pixel_size_units, "1/m");
  EXPECT_EQ(d.axes[1].units, "1/m");
  EXPECT_DOUBLE_EQ(d.axes[1].offset, -29293998131.005276);
  EXPECT_EQ(d.fields.acquired, "2020-07-29T16:48:45Z");  // DateTime 1596041325
  EXPECT_FALSE(d.fields.magnification);                  // no NominalMagnification
  // The typed tree is the Velox JSON.
  EXPECT_EQ(d.metadata["Instrument"]["InstrumentId"], "3580");
  EXPECT_EQ(d.metadata["Optics"]["ProjectorMode"], "1");

  auto image = OpenOrDie(image_path);
  ASSERT_NE(image, nullptr);
  const Signal& t = image->dataset().signals.at(0);
  EXPECT_EQ(t.fields.mode, Mode::kTemImage);
  ASSERT_TRUE(t.fields.magnification);
  EXPECT_DOUBLE_EQ(*t.fields.magnification, 26996.348999999998);
  ASSERT_TRUE(t.fields.pixel_size_m);
  EXPECT_DOUBLE_EQ(*t.fields.pixel_size_m, 3.1388370544495519e-09);
  EXPECT_EQ(t.fields.pixel_size_units, "m");
  EXPECT_EQ(t.axes[0].name, "y");
  EXPECT_EQ(t.axes[1].name, "x");
}

TEST(EmdVelox, StemFourDetectors) {
  SHARED_DATA_OR_SKIP(path, "formats/emd_velox/STEM HAADF-DF4-DF2-BF Diffraction Micro.emd");
  auto reader = OpenOrDie(path);
  ASSERT_NE(reader, nullptr);
  const Dataset& dataset = reader->dataset();
  ASSERT_EQ(dataset.signals.size(), 4u);
  std::set<std::string> names;
  for (const Signal& s : dataset.signals) {
    names.insert(s.name);
    EXPECT_EQ(s.shape, (std::vector<int64_t>{128, 128}));
    EXPECT_EQ(s.dtype, DType::kUInt16);
    EXPECT_EQ(s.fields.mode, Mode::kStemImage);
    ASSERT_TRUE(s.fields.magnification);
    EXPECT_DOUBLE_EQ(*s.fields.magnification, 7100.0);  // StemMagnification
    // AcquisitionStartDatetime.DateTime: 1596041392 for BF, 1596041391 for the others.
    EXPECT_EQ(s.fields.acquired, s.name == "BF" ? "2020-07-29T16:49:52Z" : "2020-07-29T16:49:51Z");
  }
  EXPECT_EQ(names, (std::set<std::string>{"HAADF", "DF4", "DF2", "BF"}));
  const Signal* haadf = FindSignal(dataset, "HAADF");
  ASSERT_NE(haadf, nullptr);
  const size_t index = size_t(haadf - dataset.signals.data());
  EXPECT_EQ(ReadOne<uint16_t>(*reader, index, {10, 20}), 9995);  // h5py Data[10,20,0]
  ASSERT_TRUE(haadf->fields.pixel_size_m);
  EXPECT_DOUBLE_EQ(*haadf->fields.pixel_size_m, 8.7370796142255832e-08);
  EXPECT_DOUBLE_EQ(haadf->axes[0].offset, -5.5917309531043732e-06);
}

TEST(EmdVelox, SingleHaadf) {
  SHARED_DATA_OR_SKIP(path, "formats/emd_velox/STEM HAADF Diffraction Micro.emd");
  auto reader = OpenOrDie(path);
  ASSERT_NE(reader, nullptr);
  ASSERT_EQ(reader->dataset().signals.size(), 1u);
  // h5py Data[0,0,0]=9993, [127,5,0]=9998, [5,127,0]=9992: y is the slow axis.
  EXPECT_EQ(ReadOne<uint16_t>(*reader, 0, {0, 0}), 9993);
  EXPECT_EQ(ReadOne<uint16_t>(*reader, 0, {127, 5}), 9998);
  EXPECT_EQ(ReadOne<uint16_t>(*reader, 0, {5, 127}), 9992);
}

TEST(EmdVelox, TemStackIsFramesYX) {
  SHARED_DATA_OR_SKIP(path, "formats/emd_velox/fei_example_tem_stack.emd");
  auto reader = OpenOrDie(path);
  ASSERT_NE(reader, nullptr);
  ASSERT_EQ(reader->dataset().signals.size(), 1u);
  const Signal& s = reader->dataset().signals[0];
  EXPECT_EQ(s.dtype, DType::kInt16);
  EXPECT_EQ(s.shape, (std::vector<int64_t>{2, 3, 3}));  // MANIFEST: 2 frames x 3x3
  EXPECT_EQ(s.axes[0].name, "frame");
  EXPECT_TRUE(s.axes[0].navigate);
  EXPECT_EQ(s.fields.mode, Mode::kTemImage);
  // h5py: Data[:,:,0] = 0,2,...,16 and Data[:,:,1] = 1,3,...,17 (stored (y, x, frame)).
  const auto all = ReadAll<int16_t>(*reader, 0);
  ASSERT_EQ(all.size(), 18u);
  for (int i = 0; i < 9; ++i) {
    EXPECT_EQ(all[i], 2 * i);
    EXPECT_EQ(all[9 + i], 2 * i + 1);
  }
  // Frame 1, rows 0..2 step 2, column 1: Data[0,1,1]=3, Data[2,1,1]=15.
  Hyperslab slab{{1, 0, 1}, {1, 2, 1}, {1, 2, 1}};
  auto part = reader->Read(0, slab);
  ASSERT_TRUE(part.ok()) << part.status().message();
  EXPECT_EQ(part->shape, (std::vector<int64_t>{1, 2, 1}));
  int16_t v[2];
  std::memcpy(v, part->bytes.data(), 4);
  EXPECT_EQ(v[0], 3);
  EXPECT_EQ(v[1], 15);
}

TEST(EmdVelox, ComplexFft) {
  SHARED_DATA_OR_SKIP(path, "formats/emd_velox/fei_example_complex_fft.emd");
  SHARED_DATA_OR_SKIP(even_path, "formats/emd_velox/FFTComplexEven.emd");
  SHARED_DATA_OR_SKIP(odd_path, "formats/emd_velox/FFTComplexOdd.emd");
  auto reader = OpenOrDie(path);
  ASSERT_NE(reader, nullptr);
  const Signal& s = reader->dataset().signals.at(0);
  EXPECT_EQ(s.dtype, DType::kComplex64);
  EXPECT_EQ(s.shape, (std::vector<int64_t>{3, 4}));
  const auto values = ReadAll<std::complex<float>>(*reader, 0);
  ASSERT_EQ(values.size(), 12u);
  // h5py: Data[0,0] = (1.0759727e9, -2), Data[2,3] = (-5.3503062e5, 1.2459504e4).
  EXPECT_FLOAT_EQ(values[0].real(), 1.0759727e9f);
  EXPECT_FLOAT_EQ(values[0].imag(), -2.0f);
  EXPECT_FLOAT_EQ(values[11].real(), -5.3503062e5f);
  EXPECT_FLOAT_EQ(values[11].imag(), 1.2459504e4f);
  EXPECT_FLOAT_EQ(values[5].real(), 3.8439520e6f);  // Data[1,1]
  EXPECT_FLOAT_EQ(values[5].imag(), 6.3174180e6f);

  auto even = OpenOrDie(even_path);
  ASSERT_NE(even, nullptr);
  std::map<DType, std::vector<int64_t>> shapes;
  for (const Signal& sig : even->dataset().signals) shapes[sig.dtype] = sig.shape;
  EXPECT_EQ(shapes[DType::kComplex64], (std::vector<int64_t>{70, 36}));  // MANIFEST
  EXPECT_EQ(shapes[DType::kUInt16], (std::vector<int64_t>{128, 128}));
  auto odd = OpenOrDie(odd_path);
  ASSERT_NE(odd, nullptr);
  shapes.clear();
  for (const Signal& sig : odd->dataset().signals) shapes[sig.dtype] = sig.shape;
  EXPECT_EQ(shapes[DType::kComplex64], (std::vector<int64_t>{64, 32}));
}

TEST(EmdVelox, DpcImages) {
  SHARED_DATA_OR_SKIP(path, "formats/emd_velox/fei_example_dpc_titles.emd");
  auto reader = OpenOrDie(path);
  ASSERT_NE(reader, nullptr);
  const auto& signals = reader->dataset().signals;
  ASSERT_EQ(signals.size(), 9u);  // MANIFEST: 9 derived 2x2 images
  int complex_count = 0;
  for (const Signal& s : signals) {
    EXPECT_EQ(s.shape, (std::vector<int64_t>{2, 2}));
    if (s.dtype == DType::kComplex64) ++complex_count;
  }
  EXPECT_EQ(complex_count, 1);  // the DPC (realFloat, imagFloat) image
}

TEST(EmdVelox, SpectrumImageFromStreams) {
  SHARED_DATA_OR_SKIP(path, "formats/emd_velox/Test SI 16x16 215 kx.emd");
  auto reader = OpenOrDie(path);
  ASSERT_NE(reader, nullptr);
  const auto& signals = reader->dataset().signals;
  // 5 images (4 element maps + 2-frame HAADF), 4 sum spectra, 1 spectrum image.
  ASSERT_EQ(signals.size(), 10u);
  const Signal* si = nullptr;
  std::vector<size_t> spectra;
  for (size_t i = 0; i < signals.size(); ++i) {
    if (signals[i].fields.mode == Mode::kSpectrumImage) si = &signals[i];
    if (signals[i].fields.mode == Mode::kSpectrum) spectra.push_back(i);
  }
  ASSERT_NE(si, nullptr);
  ASSERT_EQ(spectra.size(), 4u);
  EXPECT_EQ(si->shape, (std::vector<int64_t>{16, 16, 4096}));  // MANIFEST: 16x16 x 4096
  EXPECT_EQ(si->axes[2].name, "energy");
  EXPECT_EQ(si->axes[2].units, "eV");
  EXPECT_DOUBLE_EQ(si->axes[2].scale, 10.0);     // Dispersion of SuperXG2x
  EXPECT_DOUBLE_EQ(si->axes[2].offset, -250.0);  // OffsetEnergy
  EXPECT_TRUE(si->axes[0].navigate);
  const Signal* haadf = FindSignal(reader->dataset(), "HAADF");
  ASSERT_NE(haadf, nullptr);
  EXPECT_EQ(haadf->shape, (std::vector<int64_t>{2, 16, 16}));
  EXPECT_EQ(ReadOne<uint16_t>(*reader, size_t(haadf - signals.data()), {1, 3, 4}), 8658);

  // Independent check: the per-detector sum spectra (/Data/Spectrum) added together
  // equal the spectrum image summed over all scan pixels.
  const size_t si_index = size_t(si - signals.data());
  const auto cube = ReadAll<uint32_t>(*reader, si_index);
  ASSERT_EQ(cube.size(), 16u * 16u * 4096u);
  std::vector<uint64_t> from_cube(4096, 0);
  for (size_t i = 0; i < cube.size(); ++i) from_cube[i % 4096] += cube[i];
  std::vector<uint64_t> from_spectra(4096, 0);
  for (size_t index : spectra) {
    EXPECT_EQ(signals[index].shape, (std::vector<int64_t>{4096}));
    EXPECT_EQ(signals[index].dtype, DType::kUInt32);
    const auto spectrum = ReadAll<uint32_t>(*reader, index);
    ASSERT_EQ(spectrum.size(), 4096u);
    for (size_t c = 0; c < 4096; ++c) from_spectra[c] += spectrum[c];
  }
  EXPECT_EQ(from_cube, from_spectra);
  uint64_t total = 0;
  for (uint64_t v : from_cube) total += v;
  EXPECT_EQ(total, 42097u);  // h5py: non-65535 values in the four streams
  // One pixel's spectrum through a selection, checked against the whole cube.
  Hyperslab pixel{{7, 9, 0}, {1, 1, 4096}, {1, 1, 1}};
  auto spectrum = reader->Read(si_index, pixel);
  ASSERT_TRUE(spectrum.ok()) << spectrum.status().message();
  std::vector<uint32_t> got(4096);
  std::memcpy(got.data(), spectrum->bytes.data(), 4096 * 4);
  EXPECT_TRUE(std::equal(got.begin(), got.end(), cube.begin() + (7 * 16 + 9) * 4096));
  EXPECT_EQ(got[21], 2u);  // h5py decode: channels 21..25 hold 2, 5, 13, 25, 38
  EXPECT_EQ(got[25], 38u);
}

TEST(EmdVelox, SpectrumImageShapeFromScanArea) {
  SHARED_DATA_OR_SKIP(path, "formats/emd_velox/SI_empty selection.emd");
  auto reader = OpenOrDie(path);
  ASSERT_NE(reader, nullptr);
  const Signal* si = nullptr;
  for (const Signal& s : reader->dataset().signals) {
    if (s.fields.mode == Mode::kSpectrumImage) si = &s;
  }
  ASSERT_NE(si, nullptr);
  EXPECT_EQ(si->shape, (std::vector<int64_t>{16, 20, 4096}));  // MANIFEST: 16x20 x 4096
  ASSERT_TRUE(si->fields.beam_energy_kev);
  EXPECT_DOUBLE_EQ(*si->fields.beam_energy_kev, 80.0);  // MANIFEST: 80 kV
}

// ----------------------------------------------------------------------------------
// Errors and robustness.

class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() /
            ("emd_test_" + std::to_string(::getpid()) + "_" +
             std::to_string(reinterpret_cast<uintptr_t>(this)));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

std::vector<char> Slurp(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(in), {});
}

void Spit(const std::filesystem::path& path, const std::vector<char>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

// Opens `path` and, when that works, reads every signal whole: must not crash.
// Returns how the open went.
Status OpenAndReadEverything(const std::filesystem::path& path) {
  auto reader = OpenEmd(path);
  if (!reader.ok()) {
    EXPECT_FALSE(reader.status().message().empty());
    return reader.status();
  }
  const Dataset& dataset = (*reader)->dataset();
  for (size_t i = 0; i < dataset.signals.size(); ++i) {
    const Signal& s = dataset.signals[i];
    if (s.ByteCount() > (64u << 20)) continue;
    auto array = (*reader)->Read(i, Hyperslab::All(s.shape));
    if (array.ok()) {
      EXPECT_EQ(array->bytes.size(), s.ByteCount());
    } else {
      EXPECT_FALSE(array.status().message().empty());
    }
  }
  return Status::Ok();
}

TEST(EmdErrors, MissingPlainHdf5AndGarbage) {
  TempDir dir;
  auto missing = OpenEmd(dir.path() / "nope.emd");
  EXPECT_FALSE(missing.ok());

  // HDF5 signature followed by garbage.
  std::vector<char> garbage = {'\x89', 'H', 'D', 'F', '\r', '\n', '\x1a', '\n'};
  std::mt19937 rng(7);
  for (int i = 0; i < 4096; ++i) garbage.push_back(char(rng()));
  Spit(dir.path() / "garbage.h5", garbage);
  auto bad = OpenEmd(dir.path() / "garbage.h5");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kCorrupt);
  EXPECT_NE(bad.status().message().find("garbage.h5"), std::string::npos);
}

TEST(EmdErrors, Hdf5WithoutEmdIsUnsupported) {
  // A valid HDF5 file with no EMD structure: a copy of a Berkeley file whose
  // "emd_group_type" attribute and dim1/dim2 datasets are renamed in place (same
  // lengths and the same name order, so the HDF5 structure stays valid).
  SHARED_DATA_OR_SKIP(path, "formats/emd_berkeley/example_image.emd");
  TempDir dir;
  std::vector<char> bytes = Slurp(path);
  auto replace_all = [&](const std::string& from, const std::string& to) {
    int replaced = 0;
    for (size_t pos = 0; pos + from.size() <= bytes.size(); ++pos) {
      if (std::equal(from.begin(), from.end(), bytes.begin() + pos)) {
        std::copy(to.begin(), to.end(), bytes.begin() + pos);
        ++replaced;
      }
    }
    return replaced;
  };
  ASSERT_GT(replace_all("emd_group_type", "xyz_group_type"), 0);
  ASSERT_GT(replace_all("dim1", "xim1"), 0);
  ASSERT_GT(replace_all("dim2", "xim2"), 0);
  Spit(dir.path() / "plain.h5", bytes);
  auto result = OpenEmd(dir.path() / "plain.h5");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kUnsupported) << result.status().message();
  EXPECT_NE(result.status().message().find("no EMD data"), std::string::npos);
}

TEST(EmdRobustness, TruncatedCopies) {
  TempDir dir;
  for (const char* name : {"formats/emd_berkeley/example_metadata.emd",
                           "formats/emd_velox/fei_example_tem_stack.emd"}) {
    SHARED_DATA_OR_SKIP(path, name);
    const std::vector<char> bytes = Slurp(path);
    const std::filesystem::path copy = dir.path() / "truncated.emd";
    std::vector<size_t> lengths;
    for (size_t n = 0; n < 4096 && n < bytes.size(); n += 97) lengths.push_back(n);
    for (size_t n = 4096; n < bytes.size(); n += bytes.size() / 40 + 1) lengths.push_back(n);
    lengths.push_back(bytes.size() - 1);
    for (size_t n : lengths) {
      Spit(copy, std::vector<char>(bytes.begin(), bytes.begin() + long(n)));
      SCOPED_TRACE(std::string(name) + " truncated to " + std::to_string(n));
      (void)OpenAndReadEverything(copy);
    }
  }
}

// Sets an environment variable for the life of a test, then restores it.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) saved_ = old;
    ::setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (saved_) {
      ::setenv(name_, saved_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> saved_;
};

TEST(EmdRobustness, BitFlippedCopies) {
  // Some flips send HDF5 round in circles: 5 s is still 1000 times what these small
  // files need, and keeps the test quick.
  ScopedEnv timeout("SCISEARCH_HDF5_TIMEOUT", "5");
  TempDir dir;
  int loops = 0;
  for (const char* name :
       {"formats/emd_berkeley/example_metadata.emd", "formats/emd_berkeley/emd_type1_stringDims.h5",
        "formats/emd_velox/fei_example_complex_fft.emd"}) {
    SHARED_DATA_OR_SKIP(path, name);
    const std::vector<char> bytes = Slurp(path);
    const std::filesystem::path copy = dir.path() / "flipped.emd";
    // Flips concentrate on the first 16 KiB, where the superblock, object headers,
    // B-trees and heaps of these small files live.
    const size_t region = std::min<size_t>(bytes.size(), 16384);
    for (uint32_t seed = 1; seed <= 100; ++seed) {
      std::mt19937 rng(seed);
      std::vector<char> flipped = bytes;
      for (int k = 0; k < 4; ++k) {
        const size_t at = rng() % region;
        flipped[at] = char(flipped[at] ^ (1 << (rng() % 8)));
      }
      Spit(copy, flipped);
      SCOPED_TRACE(std::string(name) + " seed " + std::to_string(seed));
      const Status opened = OpenAndReadEverything(copy);
      if (opened.message().find("did not finish") != std::string::npos) {
        EXPECT_EQ(opened.code(), ErrorCode::kCorrupt);
        EXPECT_EQ(opened.message(),
                  "flipped.emd: the HDF5 library did not finish (it loops on damaged structures) "
                  "reading the file: the file is damaged");
        ++loops;
      }
    }
  }
  std::cout << loops << " bit-flipped copies made HDF5 loop\n";
}

TEST(EmdRobustness, HugeVeloxMetadataAndStreamValues) {
  // Overwrites the ScanSize in a Velox SI's JSON with a huge value of the same length
  // and a stream's channel values with out-of-range ones: open must fail or keep
  // sizes sane, and Read must report the bad channel rather than write out of bounds.
  SHARED_DATA_OR_SKIP(path, "formats/emd_velox/SI_empty selection.emd");
  TempDir dir;
  std::vector<char> bytes = Slurp(path);
  const std::string from = "\"ScanSize\":{\"width\":\"128\"";
  const std::string to = "\"ScanSize\":{\"width\":\"9e9\"";
  int replaced = 0;
  for (size_t pos = 0; pos + from.size() <= bytes.size(); ++pos) {
    if (std::equal(from.begin(), from.end(), bytes.begin() + pos)) {
      std::copy(to.begin(), to.end(), bytes.begin() + pos);
      ++replaced;
    }
  }
  ASSERT_GT(replaced, 0);
  Spit(dir.path() / "huge.emd", bytes);
  auto reader = OpenEmd(dir.path() / "huge.emd");
  if (reader.ok()) {
    for (const Signal& s : (*reader)->dataset().signals) {
      for (int64_t n : s.shape) EXPECT_LT(n, int64_t(1) << 31);
    }
    (void)OpenAndReadEverything(dir.path() / "huge.emd");
  }
}

TEST(EmdConcurrency, ParallelOpensAndReads) {
  SHARED_DATA_OR_SKIP(a, "formats/emd_velox/STEM HAADF-DF4-DF2-BF Diffraction Micro.emd");
  SHARED_DATA_OR_SKIP(b, "formats/emd_berkeley/Si100_4D.emd");
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 5; ++round) {
        auto reader = OpenEmd(t % 2 ? a : b);
        if (!reader.ok()) {
          ADD_FAILURE() << reader.status().message();
          ++failures[t];
          continue;
        }
        const Signal& s = (*reader)->dataset().signals.at(0);
        if (!(*reader)->Read(0, Hyperslab::All(s.shape)).ok()) ++failures[t];
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int f : failures) EXPECT_EQ(f, 0);
}

// The worker pool (src/formats/emd_reader.cc): HDF5 runs in worker processes.

// A copy of emd_type1_stringDims.h5 with bit 2 of byte 7847 flipped makes Debian's
// libhdf5 1.10 die of SIGSEGV (found by probing bit flips against the worker alone).
TEST(EmdWorkers, CrashingFileIsCorruptAndThePoolRecovers) {
  SHARED_DATA_OR_SKIP(good, "formats/emd_berkeley/emd_type1_stringDims.h5");
  TempDir dir;
  std::vector<char> bytes = Slurp(good);
  ASSERT_GT(bytes.size(), 7847u);
  bytes[7847] = char(bytes[7847] ^ (1 << 2));
  const std::filesystem::path damaged = dir.path() / "crashes_hdf5.h5";
  Spit(damaged, bytes);

  // The crash happens at open or at a read, depending on what the flip hits.
  Status failure = Status::Ok();
  auto reader = OpenEmd(damaged);
  if (!reader.ok()) {
    failure = reader.status();
  } else {
    for (size_t i = 0; i < (*reader)->dataset().signals.size() && failure.ok(); ++i) {
      const Signal& s = (*reader)->dataset().signals[i];
      auto array = (*reader)->Read(i, Hyperslab::All(s.shape));
      if (!array.ok()) failure = array.status();
    }
  }
  ASSERT_FALSE(failure.ok());
  EXPECT_EQ(failure.code(), ErrorCode::kCorrupt) << failure.message();
#if defined(__SANITIZE_ADDRESS__)
  // AddressSanitizer in the worker catches the SIGSEGV, reports it and aborts
  // (signal 6 with abort_on_error, else exit status 1).
  const std::string how = "(?:signal 6|signal 11|status 1)";
#else
  const std::string how = "signal 11";
#endif
  EXPECT_TRUE(std::regex_match(failure.message(),
                               std::regex("crashes_hdf5\\.h5: the HDF5 library crashed \\(" + how +
                                          "\\) reading the file: the file is damaged")))
      << failure.message();

  // The next open of a sound file works: the pool replaced the dead worker.
  auto next = OpenEmd(good);
  ASSERT_TRUE(next.ok()) << next.status().message();
  const Signal& s = (*next)->dataset().signals.at(0);
  auto array = (*next)->Read(0, Hyperslab::All(s.shape));
  ASSERT_TRUE(array.ok()) << array.status().message();
  EXPECT_EQ(array->bytes.size(), s.ByteCount());
}

TEST(EmdWorkers, EightThreadsOpenAndReadTheSameAsOne) {
  SHARED_DATA_OR_SKIP(a, "formats/emd_velox/STEM HAADF-DF4-DF2-BF Diffraction Micro.emd");
  SHARED_DATA_OR_SKIP(b, "formats/emd_berkeley/Si100_4D.emd");
  SHARED_DATA_OR_SKIP(c, "formats/emd_velox/SI_empty selection.emd");
  const std::vector<std::filesystem::path> files = {a, b, c};
  // Reference: each file's signals read whole, one thread.
  std::vector<std::vector<std::vector<uint8_t>>> expected;
  for (const auto& file : files) {
    auto reader = OpenOrDie(file);
    ASSERT_NE(reader, nullptr);
    expected.emplace_back();
    for (size_t i = 0; i < reader->dataset().signals.size(); ++i) {
      const Signal& s = reader->dataset().signals[i];
      auto array = reader->Read(i, Hyperslab::All(s.shape));
      ASSERT_TRUE(array.ok()) << array.status().message();
      expected.back().push_back(array->bytes);
    }
  }
  std::vector<std::thread> threads;
  std::vector<int> mismatches(8, 0);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 3; ++round) {
        const size_t f = size_t(t + round) % files.size();
        auto reader = OpenEmd(files[f]);
        if (!reader.ok()) {
          ++mismatches[t];
          continue;
        }
        for (size_t i = 0; i < (*reader)->dataset().signals.size(); ++i) {
          const Signal& s = (*reader)->dataset().signals[i];
          auto array = (*reader)->Read(i, Hyperslab::All(s.shape));
          if (!array.ok() || array->bytes != expected[f][i]) ++mismatches[t];
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < 8; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

TEST(EmdWorkers, SequentialOpensStartNoWorkers) {
  SHARED_DATA_OR_SKIP(path, "formats/emd_berkeley/example_image.emd");
  OpenOrDie(path);  // warm-up: at least one idle worker from here on
  const uint64_t started = Hdf5WorkersStarted();
  for (int i = 0; i < 20; ++i) {
    auto reader = OpenOrDie(path);
    ASSERT_NE(reader, nullptr);
    const Signal& s = reader->dataset().signals.at(0);
    ASSERT_TRUE(reader->Read(0, Hyperslab::All(s.shape)).ok());
  }
  EXPECT_EQ(Hdf5WorkersStarted(), started);
}

TEST(EmdWorkers, MissingWorkerExecutableIsInternalAndNamesThePath) {
  SHARED_DATA_OR_SKIP(path, "formats/emd_berkeley/example_image.emd");
  StopIdleHdf5Workers();  // the next open must start a worker
  Result<std::unique_ptr<DatasetReader>> missing = Status::Internal("not run");
  {
    ScopedEnv worker("SCISEARCH_HDF5_WORKER", "/nonexistent/scisearch-hdf5-worker");
    missing = OpenEmd(path);
  }
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), ErrorCode::kInternal) << missing.status().message();
  EXPECT_NE(missing.status().message().find("/nonexistent/scisearch-hdf5-worker"),
            std::string::npos)
      << missing.status().message();
  EXPECT_NE(missing.status().message().find("SCISEARCH_HDF5_WORKER"), std::string::npos);
  // With the variable restored, workers start again.
  EXPECT_NE(OpenOrDie(path), nullptr);
}

}  // namespace
}  // namespace scisearch::formats
