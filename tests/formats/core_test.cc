// Tests of the formats module's shared pieces: dtypes, hyperslabs, slab reads,
// .npy writing, normalisation and the JSON helpers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <random>

#include "formats/byte_source.h"
#include "formats/dataset_json.h"
#include "formats/formats.h"
#include "formats/normalise.h"
#include "formats/slab_io.h"

namespace scisearch::formats {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("scisearch-core-test-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

fs::path WriteFile(const fs::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  return path;
}

TEST(DTypeTest, NamesAndSizes) {
  EXPECT_EQ(DTypeName(DType::kUInt16), "uint16");
  EXPECT_EQ(DTypeName(DType::kComplex64), "complex64");
  EXPECT_EQ(DTypeSize(DType::kComplex128), 16u);
  EXPECT_EQ(DTypeSize(DType::kRGB8), 3u);
  EXPECT_EQ(NpyDescr(DType::kInt32), "'<i4'");
}

TEST(HyperslabTest, ValidateRejectsSelectionsOutside) {
  std::vector<int64_t> shape = {4, 5};
  EXPECT_TRUE(Hyperslab::All(shape).Validate(shape).ok());
  Hyperslab slab{{0, 0}, {2, 3}, {2, 2}};
  EXPECT_TRUE(slab.Validate(shape).ok());
  Hyperslab past{{0, 1}, {2, 3}, {2, 2}};  // x indices 1, 3, 5: 5 is outside
  EXPECT_FALSE(past.Validate(shape).ok());
  Hyperslab negative{{-1, 0}, {1, 1}, {1, 1}};
  EXPECT_FALSE(negative.Validate(shape).ok());
  Hyperslab wrong_rank{{0}, {1}, {1}};
  EXPECT_FALSE(wrong_rank.Validate(shape).ok());
}

// A 3x4x5 uint16 array with value = index, written big-endian after a 7-byte prefix.
class SlabReadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::vector<uint8_t> bytes(7, 0xee);
    for (uint16_t v = 0; v < 60; ++v) {
      bytes.push_back(uint8_t(v >> 8));
      bytes.push_back(uint8_t(v & 0xff));
    }
    path_ = WriteFile(dir_.path() / "array.bin", bytes);
  }
  std::vector<uint16_t> Values(const NdArray& a) {
    std::vector<uint16_t> v(a.bytes.size() / 2);
    std::memcpy(v.data(), a.bytes.data(), a.bytes.size());
    return v;
  }
  TempDir dir_;
  fs::path path_;
  std::vector<int64_t> shape_ = {3, 4, 5};
};

TEST_F(SlabReadTest, WholeArray) {
  auto source = FileSource::Open(path_);
  ASSERT_TRUE(source.ok());
  auto a = ReadContiguousSlab(*source, 7, DType::kUInt16, ByteOrder::kBig, shape_,
                              Hyperslab::All(shape_));
  ASSERT_TRUE(a.ok()) << a.status().message();
  auto v = Values(*a);
  ASSERT_EQ(v.size(), 60u);
  for (uint16_t i = 0; i < 60; ++i) EXPECT_EQ(v[i], i);
}

TEST_F(SlabReadTest, StridedSelection) {
  auto source = FileSource::Open(path_);
  ASSERT_TRUE(source.ok());
  Hyperslab slab{{1, 1, 0}, {2, 2, 3}, {1, 2, 2}};
  auto a = ReadContiguousSlab(*source, 7, DType::kUInt16, ByteOrder::kBig, shape_, slab);
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_EQ(a->shape, (std::vector<int64_t>{2, 2, 3}));
  // element (z, y, x) has value 20z + 5y + x
  std::vector<uint16_t> expected;
  for (int z : {1, 2})
    for (int y : {1, 3})
      for (int x : {0, 2, 4}) expected.push_back(uint16_t(20 * z + 5 * y + x));
  EXPECT_EQ(Values(*a), expected);
}

TEST_F(SlabReadTest, PartialRowsMerge) {
  auto source = FileSource::Open(path_);
  ASSERT_TRUE(source.ok());
  Hyperslab slab{{0, 1, 0}, {2, 2, 5}, {1, 1, 1}};
  auto a = ReadContiguousSlab(*source, 7, DType::kUInt16, ByteOrder::kBig, shape_, slab);
  ASSERT_TRUE(a.ok());
  std::vector<uint16_t> expected = {5,  6,  7,  8,  9,  10, 11, 12, 13, 14,
                                    25, 26, 27, 28, 29, 30, 31, 32, 33, 34};
  EXPECT_EQ(Values(*a), expected);
  auto sliced = SliceArray(*ReadContiguousSlab(*source, 7, DType::kUInt16, ByteOrder::kBig, shape_,
                                               Hyperslab::All(shape_)),
                           slab);
  ASSERT_TRUE(sliced.ok());
  EXPECT_EQ(Values(*sliced), expected);
}

TEST_F(SlabReadTest, PermutedReadMovesTheSlowestAxisLast) {
  auto source = FileSource::Open(path_);
  ASSERT_TRUE(source.ok());
  // Stored (z, y, x) = (3, 4, 5) presented as (y, x, z): value at (y, x, z) is 20z + 5y + x.
  const std::vector<int> stored_axis_of = {1, 2, 0};
  Hyperslab slab{{1, 0, 0}, {2, 2, 3}, {2, 3, 1}};
  auto a =
      ReadPermutedSlab(*source, 7, DType::kUInt16, ByteOrder::kBig, shape_, stored_axis_of, slab);
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_EQ(a->shape, (std::vector<int64_t>{2, 2, 3}));
  std::vector<uint16_t> expected;
  for (int y : {1, 3})
    for (int x : {0, 3})
      for (int z : {0, 1, 2}) expected.push_back(uint16_t(20 * z + 5 * y + x));
  EXPECT_EQ(Values(*a), expected);
  Hyperslab outside{{0, 0, 0}, {1, 1, 4}, {1, 1, 1}};  // only 3 along z
  EXPECT_FALSE(
      ReadPermutedSlab(*source, 7, DType::kUInt16, ByteOrder::kBig, shape_, stored_axis_of, outside)
          .ok());
  NdArray two;
  two.dtype = DType::kUInt8;
  two.shape = {2, 3};
  two.bytes = {1, 2, 3, 4, 5, 6};
  auto t = TransposeArray(two, {1, 0});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->shape, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(t->bytes, (std::vector<uint8_t>{1, 4, 2, 5, 3, 6}));
  EXPECT_FALSE(TransposeArray(two, {0, 0}).ok());
}

TEST_F(SlabReadTest, ArrayLargerThanFileIsCorrupt) {
  auto source = FileSource::Open(path_);
  ASSERT_TRUE(source.ok());
  std::vector<int64_t> huge = {1 << 20, 1 << 20, 1 << 20};
  auto a = ReadContiguousSlab(*source, 7, DType::kUInt16, ByteOrder::kBig, huge,
                              Hyperslab{{0, 0, 0}, {1, 1, 1}, {1, 1, 1}});
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), ErrorCode::kCorrupt);
  EXPECT_NE(a.status().message().find("array.bin"), std::string::npos);
}

TEST(FileSourceTest, ReadPastEndNamesFile) {
  TempDir dir;
  auto path = WriteFile(dir.path() / "short.bin", {1, 2, 3});
  auto source = FileSource::Open(path);
  ASSERT_TRUE(source.ok());
  uint8_t buf[4];
  Status st = source->ReadAt(1, 4, buf);
  EXPECT_EQ(st.code(), ErrorCode::kCorrupt);
  EXPECT_NE(st.message().find("short.bin"), std::string::npos);
  EXPECT_FALSE(FileSource::Open(dir.path() / "missing").ok());
}

TEST(ByteCursorTest, ReadsBothByteOrdersAndChecksBounds) {
  std::vector<uint8_t> bytes = {0x01, 0x02, 0x03, 0x04, 0x05};
  ByteCursor big(bytes, ByteOrder::kBig, "test");
  EXPECT_EQ(*big.Read<uint16_t>("a"), 0x0102);
  big.set_order(ByteOrder::kLittle);
  EXPECT_EQ(*big.Read<uint16_t>("b"), 0x0403);
  auto fail = big.Read<uint32_t>("the length field");
  ASSERT_FALSE(fail.ok());
  EXPECT_NE(fail.status().message().find("the length field"), std::string::npos);
}

TEST(NpyTest, HeaderIsNumpyVersion1AndAligned) {
  TempDir dir;
  NdArray a;
  a.dtype = DType::kFloat32;
  a.shape = {2, 3};
  a.bytes.resize(24);
  ASSERT_TRUE(WriteNpy(a, dir.path() / "a.npy").ok());
  std::ifstream in(dir.path() / "a.npy", std::ios::binary);
  std::string content((std::istreambuf_iterator<char>(in)), {});
  ASSERT_GE(content.size(), 10u);
  EXPECT_EQ(content.substr(0, 6), "\x93NUMPY");
  EXPECT_EQ(content[6], '\x01');
  const size_t header_len = uint8_t(content[8]) | (uint8_t(content[9]) << 8);
  EXPECT_EQ((10 + header_len) % 64, 0u);
  EXPECT_EQ(content.size(), 10 + header_len + 24);
  const std::string dict = content.substr(10, header_len);
  EXPECT_NE(dict.find("'descr': '<f4'"), std::string::npos);
  EXPECT_NE(dict.find("'shape': (2, 3)"), std::string::npos);
  EXPECT_EQ(dict.back(), '\n');
}

TEST(NpyTest, OneDimensionalShapeHasTrailingComma) {
  TempDir dir;
  NdArray a;
  a.dtype = DType::kUInt8;
  a.shape = {5};
  a.bytes.resize(5);
  ASSERT_TRUE(WriteNpy(a, dir.path() / "a.npy").ok());
  std::ifstream in(dir.path() / "a.npy", std::ios::binary);
  std::string content((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(content.find("'shape': (5,)"), std::string::npos);
}

TEST(NormaliseTest, DatesInTheFormsInstrumentsWrite) {
  EXPECT_EQ(ParseDateTime("Fri Oct 14 09:38:28 2011"), "2011-10-14T09:38:28");
  EXPECT_EQ(ParseDateTime("2016-02-22T10:51:32.123"), "2016-02-22T10:51:32");
  EXPECT_EQ(ParseDateTime("2016-02-22 10:51:32"), "2016-02-22T10:51:32");
  EXPECT_EQ(ParseDateTime("2016:06:13 10:11:12"), "2016-06-13T10:11:12");
  EXPECT_EQ(ParseDateTime("22.02.2016"), "2016-02-22");
  EXPECT_EQ(ParseDateTime("02/22/2016"), "2016-02-22");
  EXPECT_EQ(ParseDateTime("03/04/2016"), "2016-03-04");
  EXPECT_EQ(ParseDateTime("03/04/2016", /*day_first=*/true), "2016-04-03");
  EXPECT_EQ(ParseDateTime("13 Jun 2016"), "2016-06-13");
  EXPECT_EQ(ParseDateTime("20111013"), "2011-10-13");
  EXPECT_EQ(ParseDateTime("2016-02-22T10:51:32+02:00"), "2016-02-22T10:51:32+02:00");
  EXPECT_EQ(ParseDateTime("not a date"), std::nullopt);
  EXPECT_EQ(ParseDateTime("2016-13-45"), std::nullopt);
  EXPECT_EQ(ParseDateTime(""), std::nullopt);
}

TEST(NormaliseTest, SeparateDateAndTime) {
  EXPECT_EQ(ParseDateAndTime("8/8/2016", "2:28:44 PM"), "2016-08-08T14:28:44");
  EXPECT_EQ(ParseDateAndTime("27.08.2016", "14:28:44"), "2016-08-27T14:28:44");
  EXPECT_EQ(ParseDateAndTime("27/08/2016", "12:05:00 AM"), "2016-08-27T00:05:00");
  EXPECT_EQ(ParseDateAndTime("8/8/2016", "garbage"), "2016-08-08");
  EXPECT_EQ(ParseDateAndTime("27/08/2016", "08:55:59 p.m."), "2016-08-27T20:55:59");
  EXPECT_EQ(ParseDateAndTime("27/08/2016", "08:55:59 a. m."), "2016-08-27T08:55:59");
}

TEST(NormaliseTest, UnixSeconds) {
  EXPECT_EQ(IsoFromUnixSeconds(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(IsoFromUnixSeconds(1456138292), "2016-02-22T10:51:32Z");
}

TEST(NormaliseTest, ModesFromInstrumentWords) {
  EXPECT_EQ(ModeFromText("STEM nP SA Zoom Diffraction"), Mode::kStemImage);
  EXPECT_EQ(ModeFromText("TEM uP SA Zoom Image"), Mode::kTemImage);
  EXPECT_EQ(ModeFromText("DIFFRACTION"), Mode::kDiffraction);
  EXPECT_EQ(ModeFromText("EELS"), Mode::kSpectrum);
  EXPECT_EQ(ModeFromText("SE"), Mode::kSemImage);
  EXPECT_EQ(ModeFromText("assembly"), Mode::kUnknown);  // "se" and "sem" are words, not parts
  EXPECT_EQ(ModeFromText(""), Mode::kUnknown);
}

TEST(NormaliseTest, Units) {
  EXPECT_EQ(NormaliseUnits("\xc2\xb5m"), "um");
  EXPECT_EQ(NormaliseUnits("nanometer"), "nm");
  EXPECT_EQ(NormaliseUnits("\xc3\x85"), "A");
  EXPECT_EQ(NormaliseUnits("nm^-1"), "1/nm");
  EXPECT_EQ(NormaliseUnits("keV"), "keV");
  EXPECT_EQ(LengthToSi("nm"), 1e-9);
  EXPECT_EQ(LengthToSi("1/nm"), 1e9);
  EXPECT_EQ(LengthToSi("eV"), std::nullopt);
}

TEST(DatasetJsonTest, RoundTripIsExact) {
  Dataset dataset;
  dataset.path = "/data/run 7/scan.emd";
  dataset.format = "emd-velox";
  dataset.member_files = {dataset.path, "/data/run 7/scan_1.ser"};
  Signal image;
  image.name = "HAADF";
  image.dtype = DType::kComplex64;
  image.shape = {3, 4, 5};
  for (int k = 0; k < 3; ++k) {
    Axis axis;
    axis.name = k == 0 ? "frame" : k == 1 ? "y" : "x";
    axis.size = image.shape[size_t(k)];
    axis.scale = 0.1 + k / 3.0;  // not exact in decimal: must survive anyway
    axis.offset = -1.0e-9 * k;
    axis.units = k == 0 ? "s" : "nm";
    axis.navigate = k == 0;
    image.axes.push_back(axis);
  }
  image.metadata = Metadata::parse(
      R"({"b": 1, "a": {"z": [1, 2.5, "x", null, true], "y": -9223372036854775807},
          "u": 18446744073709551615})");
  image.fields.acquired = "2020-01-02T03:04:05+01:00";
  image.fields.instrument = "Talos F200X";
  image.fields.mode = Mode::kStemImage;
  image.fields.beam_energy_kev = 200.0;
  image.fields.magnification = 1.0 / 3.0;
  image.fields.pixel_size_m = 1.234567890123e-10;
  image.fields.pixel_size_units = "m";
  image.fields.detector = "HAADF";
  dataset.signals.push_back(image);
  Signal bare;  // every optional field empty, unknown mode
  bare.name = "";
  bare.dtype = DType::kRGBA8;
  bare.shape = {0};
  bare.axes = {Axis{"x", 0, 1.0, 0.0, "", false}};
  dataset.signals.push_back(bare);

  // Through text, as between processes.
  const std::string text = DatasetToJson(dataset).dump();
  Result<Dataset> back = DatasetFromJson(Metadata::parse(text));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->path, dataset.path);
  EXPECT_EQ(back->format, dataset.format);
  EXPECT_EQ(back->member_files, dataset.member_files);
  ASSERT_EQ(back->signals.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const Signal& want = dataset.signals[i];
    const Signal& got = back->signals[i];
    EXPECT_EQ(got.name, want.name);
    EXPECT_EQ(got.dtype, want.dtype);
    EXPECT_EQ(got.shape, want.shape);
    ASSERT_EQ(got.axes.size(), want.axes.size());
    for (size_t k = 0; k < want.axes.size(); ++k) {
      EXPECT_EQ(got.axes[k].name, want.axes[k].name);
      EXPECT_EQ(got.axes[k].size, want.axes[k].size);
      EXPECT_EQ(got.axes[k].scale, want.axes[k].scale);  // bit-exact
      EXPECT_EQ(got.axes[k].offset, want.axes[k].offset);
      EXPECT_EQ(got.axes[k].units, want.axes[k].units);
      EXPECT_EQ(got.axes[k].navigate, want.axes[k].navigate);
    }
    EXPECT_EQ(got.metadata, want.metadata);
    EXPECT_EQ(got.metadata.dump(), want.metadata.dump());  // key order too
    EXPECT_EQ(got.fields.acquired, want.fields.acquired);
    EXPECT_EQ(got.fields.instrument, want.fields.instrument);
    EXPECT_EQ(got.fields.mode, want.fields.mode);
    EXPECT_EQ(got.fields.beam_energy_kev, want.fields.beam_energy_kev);
    EXPECT_EQ(got.fields.magnification, want.fields.magnification);
    EXPECT_EQ(got.fields.pixel_size_m, want.fields.pixel_size_m);
    EXPECT_EQ(got.fields.pixel_size_units, want.fields.pixel_size_units);
    EXPECT_EQ(got.fields.detector, want.fields.detector);
  }
  EXPECT_TRUE(back->signals[0].metadata["u"].is_number_unsigned());
  EXPECT_EQ(DatasetToJson(*back).dump(), text);
}

TEST(DatasetJsonTest, EveryNameMapsBack) {
  for (int i = 0; i <= int(DType::kRGBA8); ++i) {
    EXPECT_EQ(DTypeFromName(DTypeName(DType(i))), DType(i));
  }
  for (int i = 0; i <= int(Mode::kImage); ++i) {
    EXPECT_EQ(ModeFromName(ModeName(Mode(i))), Mode(i));
  }
  EXPECT_EQ(DTypeFromName("uint12"), std::nullopt);
  EXPECT_EQ(ModeFromName("Image"), std::nullopt);
}

TEST(DatasetJsonTest, BadFieldsAreNamed) {
  Dataset dataset;
  dataset.path = "x.emd";
  Signal signal;
  signal.shape = {2};
  signal.axes = {Axis{"x", 2, 1.0, 0.0, "", false}};
  dataset.signals.push_back(signal);
  const Metadata good = DatasetToJson(dataset);
  ASSERT_TRUE(DatasetFromJson(good).ok());
  auto expect_error = [&](Metadata json, const std::string& field) {
    Result<Dataset> result = DatasetFromJson(json);
    ASSERT_FALSE(result.ok()) << field;
    EXPECT_EQ(result.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(result.status().message().find(field), std::string::npos)
        << result.status().message();
  };
  Metadata bad = good;
  bad["signals"][0]["dtype"] = "uint12";
  expect_error(bad, "signals[0].dtype");
  bad = good;
  bad["signals"][0]["shape"][0] = "2";
  expect_error(bad, "signals[0].shape[0]");
  bad = good;
  bad["signals"][0]["axes"][0]["navigate"] = 1;
  expect_error(bad, "signals[0].axes[0].navigate");
  bad = good;
  bad["signals"][0].erase("mode");
  expect_error(bad, "signals[0].mode");
  bad = good;
  bad["files"] = "x.emd";
  expect_error(bad, "files");
  expect_error(Metadata::array(), "the document");
}

// What dump() writes, the reference DumpJson must match byte for byte.
std::string ReferenceDump(const Metadata& json) {
  return json.dump(-1, ' ', false, Metadata::error_handler_t::replace);
}

TEST(DumpJsonTest, MatchesDumpOnEveryKindOfValue) {
  Metadata tree = Metadata::object();
  tree["plain"] = "HAADF detector 1";
  tree["escaped"] = "a \"quoted\" back\\slash\n\t\r\b\f\x01\x1f end";
  tree["del and utf8"] = "\x7f caf\xc3\xa9 \xe2\x84\xab \xf0\x9f\x94\xac";
  tree["invalid utf8"] = std::string(
      "lone \x80 cut \xc3 overlong \xc0\xaf surrogate \xed\xa0\x80"
      " big \xf4\x90\x80\x80 tail \xe2\x84");
  tree["key \"with\" \xff escapes\n"] = 1;
  tree["numbers"] = Metadata::array(
      {0, -1, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(),
       std::numeric_limits<uint64_t>::max(), 0.0, -0.0, 1.5, 1.0 / 3.0, 1e300, -2.5e-300, 100.0,
       1e21, 123456789.0, std::nan(""), std::numeric_limits<double>::infinity()});
  tree["flags"] = Metadata::array({true, false, nullptr});
  tree["empty"] = Metadata::object(
      {{"object", Metadata::object()}, {"array", Metadata::array()}, {"string", ""}});
  tree["nested"] = Metadata::array({Metadata::object({{"a", Metadata::array({1, "x"})}})});
  tree["binary"] = Metadata::binary({1, 2, 3}, 7);
  EXPECT_EQ(DumpJson(tree), ReferenceDump(tree));
  EXPECT_EQ(DumpJson(Metadata()), "null");
  EXPECT_EQ(DumpJson(Metadata("x")), "\"x\"");
}

TEST(DumpJsonTest, MatchesDumpOnRandomBytes) {
  // Strings of random bytes, mostly printable, exercise every escaping and
  // replacement path of dump() against DumpJson's copy-whole fast path.
  std::mt19937 random(12345);
  for (int round = 0; round < 2000; ++round) {
    std::string text;
    const int length = int(random() % 24);
    for (int i = 0; i < length; ++i) {
      const uint32_t pick = random() % 10;
      text += pick < 6 ? char(0x20 + random() % 0x5f) : char(random() % 256);
    }
    Metadata tree = Metadata::object();
    tree[text] = text;
    ASSERT_EQ(DumpJson(tree), ReferenceDump(tree)) << round;
  }
}

// nlohmann's own parser driving MetadataBuilder: what ParseMetadataJson must match.
std::optional<Metadata> ReferenceParse(std::string_view text) {
  dataset_json_internal::MetadataBuilder builder(/*steal_strings=*/false);
  if (!Metadata::sax_parse(text, &builder, Metadata::input_format_t::json, /*strict=*/true)) {
    return std::nullopt;
  }
  return builder.Take();
}

// Same values of the same JSON types (dump() alone prints 1 and 1u alike). Iterative:
// the trees may be nested deeper than the stack allows recursion.
bool SameTree(const Metadata& a, const Metadata& b) {
  std::vector<std::pair<const Metadata*, const Metadata*>> pending{{&a, &b}};
  while (!pending.empty()) {
    const auto [x, y] = pending.back();
    pending.pop_back();
    if (x->type() != y->type()) return false;
    if (x->is_object()) {
      if (x->size() != y->size()) return false;
      for (auto ix = x->begin(), iy = y->begin(); ix != x->end(); ++ix, ++iy) {
        if (ix.key() != iy.key()) return false;
        pending.emplace_back(&ix.value(), &iy.value());
      }
    } else if (x->is_array()) {
      if (x->size() != y->size()) return false;
      for (size_t i = 0; i < x->size(); ++i) pending.emplace_back(&(*x)[i], &(*y)[i]);
    } else if (x->is_string()) {  // bytes, which need not be UTF-8 (dump() would throw)
      if (x->get_ref<const std::string&>() != y->get_ref<const std::string&>()) return false;
    } else if (x->dump() != y->dump()) {
      return false;
    }
  }
  return true;
}

// A SAX handler that writes down every event, to compare the event streams of two
// parsers. It refuses the event after the first `budget` (never when negative).
class EventLog {
 public:
  explicit EventLog(int budget = -1) : budget_(budget) {}

  bool null() { return Add("null"); }
  bool boolean(bool value) { return Add(value ? "true" : "false"); }
  bool number_integer(Metadata::number_integer_t value) {
    return Add("int:" + std::to_string(value));
  }
  bool number_unsigned(Metadata::number_unsigned_t value) {
    return Add("uint:" + std::to_string(value));
  }
  bool number_float(Metadata::number_float_t value, const std::string& text) {
    char exact[64];
    std::snprintf(exact, sizeof(exact), "%a", value);
    return Add(std::string("float:") + exact + "/" + text);
  }
  bool string(std::string& value) { return Add("string:" + value); }
  bool binary(Metadata::binary_t&) { return Add("binary"); }
  bool start_object(std::size_t) { return Add("{"); }
  bool key(std::string& key) { return Add("key:" + key); }
  bool end_object() { return Add("}"); }
  bool start_array(std::size_t) { return Add("["); }
  bool end_array() { return Add("]"); }
  template <class Exception>
  bool parse_error(std::size_t, const std::string&, const Exception&) {
    return false;
  }

  const std::string& events() const { return events_; }

 private:
  bool Add(const std::string& event) {
    if (budget_ == 0) return false;
    if (budget_ > 0) --budget_;
    events_ += event;
    events_ += '\n';
    return true;
  }

  int budget_;
  std::string events_;
};

// `data` after one to three random edits, each replacing, inserting or deleting one
// element; new elements come from `draw`.
template <class Container, class Draw>
Container Mutated(Container data, std::mt19937& random, Draw draw) {
  const int edits = 1 + int(random() % 3);
  for (int e = 0; e < edits; ++e) {
    const size_t at = random() % (data.size() + 1);
    const auto element = draw();
    switch (random() % 3) {
      case 0:
        if (at < data.size()) data[at] = element;
        break;
      case 1:
        data.insert(data.begin() + std::ptrdiff_t(at), element);
        break;
      default:
        if (at < data.size()) data.erase(data.begin() + std::ptrdiff_t(at));
    }
  }
  return data;
}

void ExpectParsesLikeNlohmann(std::string_view text) {
  const std::optional<Metadata> got = ParseMetadataJson(text);
  const std::optional<Metadata> want = ReferenceParse(text);
  ASSERT_EQ(got.has_value(), want.has_value()) << "'" << text << "'";
  if (got) {
    EXPECT_TRUE(SameTree(*got, *want)) << "'" << text << "'";
    // The raw events too (a repeated key, say, before any tree merges it).
    EventLog ours, theirs;
    EXPECT_TRUE(ParseJsonEvents(text, ours));
    EXPECT_TRUE(Metadata::sax_parse(text, &theirs, Metadata::input_format_t::json, true));
    EXPECT_EQ(ours.events(), theirs.events()) << "'" << text << "'";
  }
}

TEST(ParseJsonEventsTest, StopsWhenTheHandlerRefusesAnEvent) {
  const std::string text = "{\"a\":[1,2.5,\"x\",true,null],\"b\":{}}";
  EventLog all;
  ASSERT_TRUE(ParseJsonEvents(text, all));
  const size_t events = size_t(std::count(all.events().begin(), all.events().end(), '\n'));
  ASSERT_EQ(events, 13u);
  for (int budget = 0; budget < int(events); ++budget) {
    EventLog some(budget);
    EXPECT_FALSE(ParseJsonEvents(text, some)) << budget;
    EXPECT_EQ(size_t(std::count(some.events().begin(), some.events().end(), '\n')), size_t(budget));
  }
}

TEST(ParseMetadataJsonTest, AcceptsAndRefusesWhatNlohmannDoes) {
  for (const char* text : {"{}",
                           "[]",
                           " { } ",
                           "\xEF\xBB\xBF{}",
                           "\xEF\xBB{}",
                           "\xEF{}",
                           " \xEF\xBB\xBF{}",
                           "",
                           "  ",
                           "{",
                           "}",
                           "[1,]",
                           "{\"a\":1,}",
                           "{\"a\" 1}",
                           "{1:2}",
                           "[1 2]",
                           "[1]]",
                           "{\"a\":1}}",
                           "true",
                           "false",
                           "null",
                           "tru",
                           "nul",
                           "trueX",
                           "[true,false,null]",
                           "0",
                           "-0",
                           "01",
                           "-",
                           "1.",
                           ".5",
                           "+1",
                           "1e",
                           "1e+",
                           "1E-2",
                           "1.5e3",
                           "-12.25",
                           "18446744073709551615",
                           "18446744073709551616",
                           "-9223372036854775808",
                           "-9223372036854775809",
                           "1e308",
                           "1e309",
                           "-1e400",
                           "123456789012345678901234567890",
                           "\"plain\"",
                           "\"a\\\"b\\\\c\\/d\"",
                           "\"\\b\\f\\n\\r\\t\"",
                           "\"\\u0041\\u00e9\\u20AC\"",
                           "\"\\u0000\"",
                           "\"\\ud83d\\ude00\"",
                           "\"\\ud83d\"",
                           "\"\\ude00\"",
                           "\"\\ud83d\\u0041\"",
                           "\"\\u12\"",
                           "\"\\uZZZZ\"",
                           "\"\\x\"",
                           "\"unterminated",
                           "\"tab\there\"",
                           "\"caf\xC3\xA9\"",
                           "\"bad \xC3\"",
                           "\"bad \x80\"",
                           "\"over \xC0\xAF\"",
                           "\"sur \xED\xA0\x80\"",
                           "\"big \xF4\x90\x80\x80\"",
                           "\"del \x7F\"",
                           "{\"k\":1,\"k\":2,\"j\":3}",
                           "{\"\":\"\"}",
                           "[[[[[]]]]]",
                           "[{\"a\":[{\"b\":{}}]}]",
                           "{\"a\":1} x",
                           "{\"a\":1}\n\t\r "}) {
    ExpectParsesLikeNlohmann(text);
  }
  ExpectParsesLikeNlohmann(std::string_view("[1,\0]", 5));
  ExpectParsesLikeNlohmann(std::string_view("\"a\0b\"", 5));
  ExpectParsesLikeNlohmann(std::string(100000, '[') + std::string(100000, ']'));
}

TEST(ParseMetadataJsonTest, MatchesNlohmannOnMutatedDocuments) {
  const std::string seed =
      "\xEF\xBB\xBF{\"Core\":{\"MetadataDefinitionVersion\":\"7.9\",\"Guid\":\"a1b2\"},"
      "\"Optics\":{\"AccelerationVoltage\":\"300000\",\"Apertures\":[{\"Number\":\"1\","
      "\"Diameter\":\"1.5E-05\"}],\"Unicode\":\"\\u00b5m caf\xC3\xA9 \\ud83d\\ude00\","
      "\"Escapes\":\"line\\nnext\\t\\\"q\\\" \\\\\"},\"Numbers\":[0,-1,2.5,-3e-2,1E+2,"
      "18446744073709551615,-9223372036854775808,true,false,null],\"Empty\":{},\"List\":[]}";
  ExpectParsesLikeNlohmann(seed);
  const std::string alphabet =
      "{}[]:,\"\\/u0123456789abcdefABCDEF.-+eEtrufalsn \t\n\r\x7f\x80\xC3\xED\xEF\xBB\xBF";
  std::mt19937 random(2026);
  for (int round = 0; round < 20000; ++round) {
    const std::string text =
        Mutated(seed, random, [&] { return alphabet[random() % alphabet.size()]; });
    ExpectParsesLikeNlohmann(text);
    if (::testing::Test::HasFailure()) break;
  }
}

std::optional<Metadata> ReferenceMsgpack(std::string_view bytes) {
  dataset_json_internal::MetadataBuilder builder(/*steal_strings=*/false);
  if (!Metadata::sax_parse(bytes, &builder, Metadata::input_format_t::msgpack,
                           /*strict=*/true)) {
    return std::nullopt;
  }
  return builder.Take();
}

void ExpectMsgpackParsesLikeNlohmann(const std::vector<uint8_t>& bytes) {
  const std::string_view view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  const std::optional<Metadata> got = ParseMetadataMsgpack(view);
  const std::optional<Metadata> want = ReferenceMsgpack(view);
  std::string hex;
  for (uint8_t b : bytes) hex += std::to_string(int(b)) + " ";
  ASSERT_EQ(got.has_value(), want.has_value()) << hex;
  if (got) {
    EXPECT_TRUE(SameTree(*got, *want)) << hex;
  }
}

TEST(ParseMetadataMsgpackTest, MatchesNlohmannOnEveryTypeAndOnMutations) {
  Metadata seed = Metadata::object();
  seed["fix"] = 5;
  seed["negative fix"] = -3;
  seed["u8"] = 200;
  seed["u16"] = 60000;
  seed["u32"] = 4000000000u;
  seed["u64"] = std::numeric_limits<uint64_t>::max();
  seed["i8"] = -100;
  seed["i16"] = -30000;
  seed["i32"] = -2000000000;
  seed["i64"] = std::numeric_limits<int64_t>::min();
  seed["float32"] = 2.5;
  seed["float64"] = 0.1;
  seed["flags"] = {true, false, nullptr};
  seed["str8"] = std::string(40, 'x');
  seed["str16"] = std::string(300, 'y');
  seed["utf-8"] = "caf\xC3\xA9 \xC2\xB5m";
  seed["empty object"] = Metadata::object();
  seed["empty array"] = Metadata::array();
  seed["nested"] = {{"a", {1, 2, {{"b", "c"}}}}};
  seed["binary"] = Metadata::binary({1, 2, 3});
  seed["ext"] = Metadata::binary({1, 2, 3, 4}, 7);
  seed["ext8"] = Metadata::binary(std::vector<uint8_t>(5, 9), 200);
  for (int i = 0; i < 20; ++i) seed["array16"].push_back(i);
  for (int i = 0; i < 20; ++i) seed["map16"]["k" + std::to_string(i)] = i;
  const std::vector<uint8_t> encoded = Metadata::to_msgpack(seed);
  ExpectMsgpackParsesLikeNlohmann(encoded);
  ASSERT_TRUE(ParseMetadataMsgpack(
      std::string_view(reinterpret_cast<const char*>(encoded.data()), encoded.size())));

  for (const std::vector<uint8_t>& bytes : std::vector<std::vector<uint8_t>>{
           {},
           {0xC1},
           {0xC0, 0xC0},                          // a value, then more
           {0x81, 0x01, 0x02},                    // a key that is not a string
           {0x91},                                // an array one element short
           {0xCA, 0x40, 0x20, 0x00, 0x00},        // float32
           {0xCB, 0x7F, 0xF8, 0, 0, 0, 0, 0, 0},  // NaN
           {0xD4, 0x05, 0xAA},                    // fixext 1
           {0xD8, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
           {0xC7, 0x02, 0xFF, 0x01, 0x02},            // ext 8
           {0xC9, 0, 0, 0, 1, 0x80, 0x01},            // ext 32
           {0xC6, 0, 0, 0, 2, 0x01},                  // bin 32, cut short
           {0xDB, 0, 0, 0, 1, 'a'},                   // str 32
           {0xDD, 0, 0, 0, 1, 0xC0},                  // array 32
           {0xDF, 0, 0, 0, 1, 0xA1, 'k', 0x01},       // map 32
           {0xDE, 0, 1, 0xD9, 1, 'k', 0xC2},          // map 16 with a str 8 key
           {0xDD, 0xFF, 0xFF, 0xFF, 0xFF},            // a huge array, no elements
           {0x82, 0xA1, 'k', 0x01, 0xA1, 'k', 0x02},  // a repeated key
           {0x93, 0x90, 0x80, 0x91, 0x80}}) {         // empty containers nested
    ExpectMsgpackParsesLikeNlohmann(bytes);
  }

  std::mt19937 random(2026);
  for (int round = 0; round < 20000; ++round) {
    ExpectMsgpackParsesLikeNlohmann(Mutated(encoded, random, [&] { return uint8_t(random()); }));
    if (::testing::Test::HasFailure()) break;
  }
}

TEST(ObjectMembersTest, BuildsWhatOperatorBracketsBuild) {
  ObjectMembers members;
  Metadata expected = Metadata::object();
  EXPECT_TRUE(members.empty());
  for (const auto& [key, value] :
       std::vector<std::pair<std::string, int>>{{"b", 1}, {"a", 2}, {"b", 3}, {"c", 4}, {"a", 5}}) {
    members.Set(key, value);
    expected[key] = value;
  }
  members.AppendNew("d", 6);
  expected["d"] = 6;
  ASSERT_NE(members.Find("c"), nullptr);
  EXPECT_EQ(*members.Find("c"), 4);
  EXPECT_EQ(members.Find("e"), nullptr);
  const Metadata built = members.Take();
  EXPECT_EQ(built.dump(), expected.dump());  // same members, same order
  EXPECT_TRUE(members.empty());
}

}  // namespace
}  // namespace scisearch::formats
