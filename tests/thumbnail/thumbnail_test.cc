#include "thumbnail/thumbnail.h"

#include <gtest/gtest.h>
#include <png.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstring>
#include <random>
#include <utility>
#include <vector>

namespace scisearch::thumbnail {
namespace {

using formats::DType;
using formats::Mode;
using formats::NdArray;

struct Decoded {
  int width = 0;
  int height = 0;
  int channels = 0;
  std::vector<uint8_t> pixels;
  uint8_t at(int x, int y, int c = 0) const {
    return pixels[size_t((y * width + x) * channels + c)];
  }
};

// Decodes with libpng's simplified API, keeping the file's own channel count.
Decoded Decode(const PngImage& image) {
  Decoded d;
  png_image png;
  std::memset(&png, 0, sizeof(png));
  png.version = PNG_IMAGE_VERSION;
  EXPECT_TRUE(png_image_begin_read_from_memory(&png, image.bytes.data(), image.bytes.size()))
      << png.message;
  const bool colour = png.format & PNG_FORMAT_FLAG_COLOR;
  png.format = colour ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
  d.width = int(png.width);
  d.height = int(png.height);
  d.channels = colour ? 3 : 1;
  d.pixels.resize(PNG_IMAGE_SIZE(png));
  EXPECT_TRUE(png_image_finish_read(&png, nullptr, d.pixels.data(), 0, nullptr)) << png.message;
  return d;
}

template <typename T>
NdArray MakeArray(DType dtype, std::vector<int64_t> shape, const std::vector<T>& values) {
  NdArray a;
  a.dtype = dtype;
  a.shape = std::move(shape);
  a.bytes.resize(values.size() * sizeof(T));
  std::memcpy(a.bytes.data(), values.data(), a.bytes.size());
  return a;
}

TEST(ThumbnailTest, ContrastMapsPercentilesToBlackAndWhite) {
  // 200 x 200 ramp 0..39999: the 0.5th percentile is 199.995, the 99.5th 39799.005.
  std::vector<uint16_t> v(200 * 200);
  for (size_t i = 0; i < v.size(); ++i) v[i] = uint16_t(i);
  auto png = RenderThumbnail(MakeArray(DType::kUInt16, {200, 200}, v), Mode::kTemImage);
  ASSERT_TRUE(png.ok()) << png.status().message();
  EXPECT_EQ(png->width, 200);  // small frames are not upsampled
  EXPECT_EQ(png->height, 200);
  const Decoded d = Decode(*png);
  ASSERT_EQ(d.channels, 1);
  EXPECT_EQ(d.at(0, 0), 0);      // value 0, below the low percentile
  EXPECT_EQ(d.at(199, 0), 0);    // value 199, below 199.995
  EXPECT_EQ(d.at(0, 199), 255);  // value 39800, above the high percentile
  EXPECT_EQ(d.at(199, 199), 255);
  // Midway value 20000 -> (20000 - 199.995) / 39599.01 * 255 = 127.5 -> 128 (rounded).
  EXPECT_NEAR(d.at(0, 100), 128, 1);
  for (int y = 1; y < 200; ++y) EXPECT_GE(d.at(0, y), d.at(0, y - 1));
}

// The percentile of `values` (finite) as NumPy's default computes it, by sorting.
double SortedPercentile(std::vector<double> values, double q) {
  std::sort(values.begin(), values.end());
  const double pos = q * double(values.size() - 1);
  const size_t k = size_t(std::floor(pos));
  const double next = values[std::min(k + 1, values.size() - 1)];
  return values[k] + (pos - double(k)) * (next - values[k]);
}

TEST(GreyFrameTest, StretchesBetweenTheExactPercentilesWhateverTheDistribution) {
  // Frames large enough that the percentiles are selected from a sample's thresholds, in
  // distributions chosen to mislead a sample: ties, outliers, a ramp, and values at the
  // sampled positions unlike all the others. Each pixel must be (v - p0.5) / (p99.5 - p0.5)
  // clamped, with the percentiles of a full sort; NaN pixels 0.5.
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> u(0, 1);
  const std::vector<std::pair<int64_t, int64_t>> sides = {{120, 200}, {400, 750}};
  for (const auto& [h, w] : sides) {
    const size_t n = size_t(h * w);
    for (int kind = 0; kind < 6; ++kind) {
      std::vector<double> v(n);
      for (size_t i = 0; i < n; ++i) {
        const double r = u(rng);
        switch (kind) {
          case 0:
            v[i] = r;
            break;  // uniform
          case 1:
            v[i] = std::floor(r * 4);
            break;  // four values, many ties
          case 2:
            v[i] = r < 0.003 ? -1e9 : r > 0.996 ? 1e9 : r;
            break;  // outliers in the tails
          case 3:
            v[i] = double(i);
            break;  // a ramp
          case 4:
            v[i] = i % (n / 1024) == 0 ? -5 : r;
            break;  // low values where sampled
          case 5:
            v[i] = i % (n / 1024) == 0 ? 5 : r;
            break;  // high values where sampled
        }
        if (i % 997 == 3) v[i] = std::nan("");
      }
      std::vector<double> finite;
      for (double x : v) {
        if (std::isfinite(x)) finite.push_back(x);
      }
      const double lo = SortedPercentile(finite, 0.005), hi = SortedPercentile(finite, 0.995);
      auto frame = PrepareGreyFrame(MakeArray(DType::kFloat64, {h, w}, v), Mode::kImage, 1000);
      ASSERT_TRUE(frame.ok()) << frame.status().message();
      ASSERT_EQ(frame->pixels.size(), n);
      size_t wrong = 0;
      for (size_t i = 0; i < n; ++i) {
        const float expected = !std::isfinite(v[i]) ? 0.5f
                               : hi > lo ? float(std::clamp((v[i] - lo) / (hi - lo), 0.0, 1.0))
                                         : 0.5f;
        wrong += frame->pixels[i] != expected;
      }
      EXPECT_EQ(wrong, 0u) << h << " x " << w << ", distribution " << kind;
    }
  }
}

TEST(ThumbnailTest, DownsamplesByAreaAveraging) {
  // 512 x 1024 checkerboard of 2x2 blocks of 0/100 averages to a flat grey; a
  // bright right half stays bright.
  const int64_t h = 512, w = 1024;
  std::vector<float> v(size_t(h * w));
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      v[size_t(y * w + x)] = (x >= w / 2) ? 1000.f : (((x / 2 + y / 2) % 2) ? 100.f : 0.f);
    }
  }
  auto png = RenderThumbnail(MakeArray(DType::kFloat32, {h, w}, v), Mode::kImage);
  ASSERT_TRUE(png.ok()) << png.status().message();
  EXPECT_EQ(png->width, 256);
  EXPECT_EQ(png->height, 128);
  const Decoded d = Decode(*png);
  EXPECT_EQ(d.width, 256);
  EXPECT_EQ(d.height, 128);
  // Left half: every output pixel averages a 4x4 box = 50 -> uniform grey, which
  // lies at the low end (the 0.5th percentile is 50 too) -> 0.
  for (int x = 0; x < 128; ++x) EXPECT_EQ(d.at(x, 64), d.at(0, 0));
  EXPECT_EQ(d.at(200, 64), 255);
}

TEST(ThumbnailTest, DiffractionUsesLogScale) {
  // Intensity grows exponentially along x: exp(x / 10) for x in 0..127. On a log
  // scale the grey level grows linearly, so the middle column is mid grey; on a
  // linear scale it is nearly black.
  const int64_t h = 8, w = 128;
  std::vector<double> v(size_t(h * w));
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) v[size_t(y * w + x)] = std::exp(double(x) / 10.0);
  }
  const NdArray a = MakeArray(DType::kFloat64, {h, w}, v);
  auto log_png = RenderThumbnail(a, Mode::kDiffraction, /*max_side=*/128);
  auto lin_png = RenderThumbnail(a, Mode::kTemImage, /*max_side=*/128);
  ASSERT_TRUE(log_png.ok() && lin_png.ok());
  const Decoded log_img = Decode(*log_png);
  const Decoded lin_img = Decode(*lin_png);
  // log1p(exp(6.4) - 1) = 6.4 against a range of about 0.1 .. 12.7 -> near 127.
  EXPECT_NEAR(log_img.at(64, 4), 127, 8);
  EXPECT_LT(lin_img.at(64, 4), 5);
  EXPECT_EQ(log_img.at(0, 4), 0);
  EXPECT_EQ(log_img.at(127, 4), 255);
  auto stem4d = RenderThumbnail(a, Mode::k4dStem, /*max_side=*/128);
  ASSERT_TRUE(stem4d.ok());
  EXPECT_EQ(Decode(*stem4d).at(64, 4), log_img.at(64, 4));
}

TEST(ThumbnailTest, SmallFramesAreEnlargedBySharpWholeFactors) {
  // A 16 x 10 ramp: 256 / 16 = 16 times larger, each source pixel a 16 x 16 square.
  std::vector<uint8_t> v(16 * 10);
  for (size_t i = 0; i < v.size(); ++i) v[i] = uint8_t(i);
  auto png = RenderThumbnail(MakeArray(DType::kUInt8, {10, 16}, v), Mode::kStemImage);
  ASSERT_TRUE(png.ok());
  EXPECT_EQ(png->width, 256);
  EXPECT_EQ(png->height, 160);
  const Decoded d = Decode(*png);
  for (int y : {0, 15, 16, 159}) {
    for (int x : {0, 15, 16, 255}) {
      EXPECT_EQ(d.at(x, y), d.at(x / 16 * 16, y / 16 * 16)) << x << "," << y;
    }
  }
  EXPECT_LT(d.at(32, 0), d.at(48, 0));  // neighbouring source pixels stay distinct
  // 200 px is more than half of 256: no enlargement, no blur.
  auto same = RenderThumbnail(MakeArray(DType::kUInt8, {10, 200}, std::vector<uint8_t>(2000)),
                              Mode::kImage);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->width, 200);
}

TEST(ThumbnailTest, SpectrumIsALinePlot) {
  const int n = 1000;
  std::vector<float> v(n);
  for (int i = 0; i < n; ++i) v[size_t(i)] = float(std::sin(i * 2 * M_PI / n));
  auto png = RenderThumbnail(MakeArray(DType::kFloat32, {1, n}, v), Mode::kSpectrum);
  ASSERT_TRUE(png.ok()) << png.status().message();
  EXPECT_EQ(png->width, kPlotWidth);
  EXPECT_EQ(png->height, kPlotHeight);
  const Decoded d = Decode(*png);
  ASSERT_EQ(d.width, kPlotWidth);
  ASSERT_EQ(d.height, kPlotHeight);
  EXPECT_EQ(d.at(kPlotWidth - 1, 0), 255);  // white background
  EXPECT_EQ(d.at(100, 0), 255);
  // Each plotted column has a dark pixel where the sine curve passes.
  const double left = 6, right = kPlotWidth - 4, top = 4, bottom = kPlotHeight - 7;
  for (int x = int(left) + 1; x < int(right); x += 5) {
    const double t = (x - left) / (right - left);
    const double expected_y = bottom - (std::sin(t * 2 * M_PI) + 1) / 2 * (bottom - top);
    int darkest = 255;
    for (int y = int(expected_y) - 3; y <= int(expected_y) + 3; ++y) {
      if (y >= 0 && y < d.height) darkest = std::min<int>(darkest, d.at(x, y));
    }
    EXPECT_LT(darkest, 64) << "column " << x;
  }
  // Axis lines: a grey vertical line at the left and horizontal at the bottom.
  EXPECT_LT(d.at(5, 80), 255);
  EXPECT_LT(d.at(128, kPlotHeight - 6), 255);
}

TEST(ThumbnailTest, ComplexShowsMagnitudeAndRgbStaysColour) {
  std::vector<std::complex<float>> c(16 * 16);
  for (size_t i = 0; i < c.size(); ++i) c[i] = std::polar(float(i % 16), float(i) * 0.3f);
  auto mag = RenderThumbnail(MakeArray(DType::kComplex64, {16, 16}, c), Mode::kImage, 16);
  ASSERT_TRUE(mag.ok());
  const Decoded m = Decode(*mag);
  EXPECT_EQ(m.at(0, 3), 0);     // magnitude 0
  EXPECT_EQ(m.at(15, 3), 255);  // magnitude 15
  for (int x = 1; x < 16; ++x) EXPECT_GE(m.at(x, 7), m.at(x - 1, 7));

  std::vector<uint8_t> rgb(8 * 8 * 3);
  for (size_t i = 0; i < 64; ++i) {
    rgb[i * 3] = 200;
    rgb[i * 3 + 1] = 10;
    rgb[i * 3 + 2] = 30;
  }
  auto colour = RenderThumbnail(MakeArray(DType::kRGB8, {8, 8}, rgb), Mode::kOpticalImage, 8);
  ASSERT_TRUE(colour.ok());
  const Decoded cd = Decode(*colour);
  ASSERT_EQ(cd.channels, 3);
  EXPECT_EQ(cd.at(3, 3, 0), 200);
  EXPECT_EQ(cd.at(3, 3, 1), 10);
  EXPECT_EQ(cd.at(3, 3, 2), 30);
}

TEST(ThumbnailTest, StacksUseFirstFrameAndBadInputIsRefused) {
  std::vector<uint8_t> stack(3 * 4 * 4, 0);
  for (size_t i = 0; i < 16; ++i) stack[i] = uint8_t(i);  // frame 0 is a ramp, others zero
  auto png = RenderThumbnail(MakeArray(DType::kUInt8, {3, 4, 4}, stack), Mode::kImage, 4);
  ASSERT_TRUE(png.ok());
  EXPECT_EQ(png->width, 4);
  const Decoded d = Decode(*png);
  EXPECT_EQ(d.at(0, 0), 0);
  EXPECT_EQ(d.at(3, 3), 255);

  NdArray wrong = MakeArray(DType::kUInt16, {4, 4}, std::vector<uint16_t>(15));
  EXPECT_EQ(RenderThumbnail(wrong, Mode::kImage).status().code(), ErrorCode::kInvalidArgument);
  NdArray empty;
  empty.shape = {0, 5};
  EXPECT_FALSE(RenderThumbnail(empty, Mode::kImage).ok());
  EXPECT_FALSE(
      RenderThumbnail(MakeArray(DType::kUInt8, {2, 2}, std::vector<uint8_t>(4)), Mode::kImage, 0)
          .ok());
  // NaNs do not poison the stretch; a flat frame is mid grey.
  std::vector<float> nan(9, 5.f);
  nan[4] = std::nanf("");
  auto flat = RenderThumbnail(MakeArray(DType::kFloat32, {3, 3}, nan), Mode::kImage);
  ASSERT_TRUE(flat.ok());
  EXPECT_EQ(Decode(*flat).at(0, 0), 128);
}

}  // namespace
TEST(PreviewSlabTest, BoundsFramesAndPicksSpectra) {
  formats::Signal image;
  image.shape = {5, 4096, 3000};
  image.axes = {
      {"frame", 5, 1, 0, "", true}, {"y", 4096, 1, 0, "", false}, {"x", 3000, 1, 0, "", false}};
  auto slab = PreviewSlab(image);
  EXPECT_EQ(slab.start, (std::vector<int64_t>{0, 0, 0}));
  EXPECT_EQ(slab.step, (std::vector<int64_t>{1, 4, 4}));
  EXPECT_EQ(slab.count, (std::vector<int64_t>{1, 1024, 750}));
  EXPECT_TRUE(slab.Validate(image.shape).ok());

  formats::Signal si;  // a 5x5 spectrum image with 1024 channels
  si.shape = {5, 5, 1024};
  si.axes = {{"y", 5, 1, 0, "", true}, {"x", 5, 1, 0, "", true}, {"energy", 1024, 1, 0, "", false}};
  EXPECT_FALSE(HasFrame(si));
  slab = PreviewSlab(si);
  EXPECT_EQ(slab.count, (std::vector<int64_t>{1, 1, 1024}));

  formats::Signal spectrum_mode = image;
  spectrum_mode.fields.mode = formats::Mode::kSpectrum;
  EXPECT_FALSE(HasFrame(spectrum_mode));
  formats::Signal big_spectrum;
  big_spectrum.shape = {200000};
  slab = PreviewSlab(big_spectrum);
  EXPECT_EQ(slab.step[0], 4);
  EXPECT_EQ(slab.count[0], 50000);
  EXPECT_TRUE(slab.Validate(big_spectrum.shape).ok());

  formats::Dataset d;
  d.signals = {si, image};
  EXPECT_EQ(ChoosePreviewSignal(d), std::optional<size_t>(1));
  d.signals = {si};
  EXPECT_EQ(ChoosePreviewSignal(d), std::optional<size_t>(0));
  d.signals.clear();
  EXPECT_FALSE(ChoosePreviewSignal(d).has_value());
}

}  // namespace scisearch::thumbnail
