// Thumbnails: frames downsampled by area averaging with robust contrast, spectra
// as line plots, PNG-encoded with libpng into memory.
#include "thumbnail/thumbnail.h"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <csetjmp>
#include <cstddef>
#include <cstring>
#include <limits>
#include <string>
#include <tuple>
#include <utility>

#include "formats/slab_io.h"

namespace scisearch::thumbnail {
namespace {

using formats::DType;

constexpr double kLowPercentile = 0.005;
constexpr double kHighPercentile = 0.995;

// The value of element `i` of a non-RGB array as a double (complex: magnitude).
double ValueAt(const uint8_t* base, DType dtype, size_t i) {
  const uint8_t* p = base + i * formats::DTypeSize(dtype);
  auto load = [p]<typename T>(T*) {
    T v;
    std::memcpy(&v, p, sizeof(T));
    return v;
  };
  switch (dtype) {
    case DType::kBool:
      return p[0] ? 1.0 : 0.0;
    case DType::kInt8:
      return load(static_cast<int8_t*>(nullptr));
    case DType::kUInt8:
      return p[0];
    case DType::kInt16:
      return load(static_cast<int16_t*>(nullptr));
    case DType::kUInt16:
      return load(static_cast<uint16_t*>(nullptr));
    case DType::kInt32:
      return load(static_cast<int32_t*>(nullptr));
    case DType::kUInt32:
      return load(static_cast<uint32_t*>(nullptr));
    case DType::kInt64:
      return static_cast<double>(load(static_cast<int64_t*>(nullptr)));
    case DType::kUInt64:
      return static_cast<double>(load(static_cast<uint64_t*>(nullptr)));
    case DType::kFloat32:
      return load(static_cast<float*>(nullptr));
    case DType::kFloat64:
      return load(static_cast<double*>(nullptr));
    case DType::kComplex64: {
      const float re = load(static_cast<float*>(nullptr));
      float im;
      std::memcpy(&im, p + 4, 4);
      return std::hypot(double(re), double(im));
    }
    case DType::kComplex128: {
      const double re = load(static_cast<double*>(nullptr));
      double im;
      std::memcpy(&im, p + 8, 8);
      return std::hypot(re, im);
    }
    case DType::kRGB8:
    case DType::kRGBA8:
      // Luminance (ITU-R BT.601) for the rare caller that wants one value.
      return 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
  }
  return 0;
}

// out[i] = element first + i of `data` as a double, for i < count: ValueAt's value, or for
// RGB(A), channel `channel`. One test of the type a row, not one a pixel.
void ValuesOf(const formats::NdArray& data, size_t first, size_t count, int channel, double* out) {
  const uint8_t* base = data.bytes.data();
  auto plain = [&]<typename T>(T*) {
    for (size_t i = 0; i < count; ++i) {
      T v;
      std::memcpy(&v, base + (first + i) * sizeof(T), sizeof(T));
      out[i] = static_cast<double>(v);
    }
  };
  switch (data.dtype) {
    case DType::kUInt8:
      return plain(static_cast<uint8_t*>(nullptr));
    case DType::kInt16:
      return plain(static_cast<int16_t*>(nullptr));
    case DType::kUInt16:
      return plain(static_cast<uint16_t*>(nullptr));
    case DType::kInt32:
      return plain(static_cast<int32_t*>(nullptr));
    case DType::kFloat32:
      return plain(static_cast<float*>(nullptr));
    case DType::kFloat64:
      return plain(static_cast<double*>(nullptr));
    case DType::kRGB8:
    case DType::kRGBA8: {
      const size_t stride = formats::DTypeSize(data.dtype);
      for (size_t i = 0; i < count; ++i) out[i] = base[(first + i) * stride + size_t(channel)];
      return;
    }
    default:  // the rarer types
      for (size_t i = 0; i < count; ++i) out[i] = ValueAt(base, data.dtype, first + i);
  }
}

// The q-quantile of n values from their order statistics k and k + 1, where pos = q * (n - 1)
// and k = floor(pos): linear interpolation between the two, as NumPy's default.
double Interpolated(double pos, double at_k, double at_k_plus_1) {
  return at_k + (pos - std::floor(pos)) * (at_k_plus_1 - at_k);
}

// The q-quantile of `values` (finite, not empty), as NumPy's default computes it. Reorders
// `values`.
double Quantile(std::vector<double>& values, double q) {
  const double pos = q * double(values.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  std::nth_element(values.begin(), values.begin() + lo, values.end());
  const double a = values[lo];
  if (lo + 1 >= values.size()) return a;
  return Interpolated(pos, a, *std::min_element(values.begin() + lo + 1, values.end()));
}

// Quantile(values, q_low) and Quantile(values, q_high), 0 <= q_low < q_high <= 1, exactly,
// at the cost of about one pass over `values` instead of two selections over all of them:
// a sample gives thresholds a and b; the order statistics sought lie among the values <= a
// and >= b, when there are enough of those, and are selected there. Reorders `values`.
std::pair<double, double> Quantiles(std::vector<double>& values, double q_low, double q_high) {
  const size_t n = values.size();
  constexpr size_t kSample = 1024;
  if (n < 16 * kSample) return {Quantile(values, q_low), Quantile(values, q_high)};
  std::vector<double> sample(kSample);
  for (size_t i = 0; i < kSample; ++i) sample[i] = values[i * (n / kSample)];
  std::sort(sample.begin(), sample.end());
  // Margins of a few standard deviations of a sample quantile, so that a fallback is rare.
  auto margin = [&](double q) { return size_t(8 + 4 * std::sqrt(double(kSample) * q * (1 - q))); };
  const double a = sample[std::min(kSample - 1, size_t(q_low * kSample) + margin(q_low))];
  const size_t from_top = size_t((1 - q_high) * kSample) + margin(q_high);
  const double b = sample[from_top >= kSample ? 0 : kSample - 1 - from_top];
  std::vector<double> low, high;  // every value <= a; every value >= b
  for (double v : values) {
    if (v <= a) low.push_back(v);
    if (v >= b) high.push_back(v);
  }
  const double pos_low = q_low * double(n - 1), pos_high = q_high * double(n - 1);
  const size_t k_low = size_t(std::floor(pos_low)), k_high = size_t(std::floor(pos_high));
  // Order statistic k of all values is order statistic k of `low` when `low` holds more than
  // k values (all others exceed them), and order statistic k - (n - high.size()) of `high`
  // when `high` holds the n - k largest values.
  const size_t k_high_next = std::min(k_high + 1, n - 1);
  if (low.size() < k_low + 2 || high.size() < n - k_high) {
    return {Quantile(values, q_low), Quantile(values, q_high)};
  }
  auto select = [](std::vector<double>& v, size_t k) {
    std::nth_element(v.begin(), v.begin() + ptrdiff_t(k), v.end());
    return v[k];
  };
  const double low_k = select(low, k_low);
  const double low_next = *std::min_element(low.begin() + ptrdiff_t(k_low) + 1, low.end());
  const size_t skipped = n - high.size();
  const double high_k = select(high, k_high - skipped);
  const double high_next =
      k_high_next == k_high
          ? high_k
          : *std::min_element(high.begin() + ptrdiff_t(k_high - skipped) + 1, high.end());
  return {Interpolated(pos_low, low_k, low_next), Interpolated(pos_high, high_k, high_next)};
}

// --- PNG encoding -------------------------------------------------------

struct PngContext {
  std::vector<uint8_t>* out = nullptr;
  bool write_failed = false;
  char message[256] = {0};
};

void PngErrorFn(png_structp png, png_const_charp message) {
  auto* ctx = static_cast<PngContext*>(png_get_error_ptr(png));
  if (ctx) std::snprintf(ctx->message, sizeof(ctx->message), "%s", message ? message : "?");
  png_longjmp(png, 1);
}
void PngWarningFn(png_structp, png_const_charp) {}  // warnings are not errors; stay quiet

void PngWriteFn(png_structp png, png_bytep data, size_t length) {
  auto* ctx = static_cast<PngContext*>(png_get_io_ptr(png));
  bool failed = false;
  try {
    ctx->out->insert(ctx->out->end(), data, data + length);
  } catch (...) {
    failed = true;
  }
  // Leave the catch block before libpng longjmps out of this callback.
  if (failed) {
    ctx->write_failed = true;
    png_error(png, "out of memory while writing PNG");
  }
}
void PngFlushFn(png_structp) {}

// Runs libpng. Holds no C++ objects with destructors, so the longjmp of an
// error cannot skip any cleanup. Returns true on success.
bool EncodeRows(png_structp png, png_infop info, PngContext* ctx, int width, int height,
                int color_type, png_bytep* rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_write_fn(png, ctx, PngWriteFn, PngFlushFn);
  png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), 8,
               color_type, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  // Thumbnails are made for every file at ingest and are small: a fast zlib level and
  // one cheap filter cost a few hundred bytes per thumbnail and save most of the time.
  png_set_compression_level(png, 2);
  png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_FILTER_SUB);
  png_set_rows(png, info, rows);
  png_write_png(png, info, PNG_TRANSFORM_IDENTITY, nullptr);
  return true;
}

// Encodes 8-bit pixels, `channels` (1 = grey, 3 = RGB) per pixel, rows top first.
Result<PngImage> EncodePng(const std::vector<uint8_t>& pixels, int width, int height,
                           int channels) {
  PngImage image;
  image.width = width;
  image.height = height;
  PngContext ctx;
  ctx.out = &image.bytes;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, PngErrorFn, PngWarningFn);
  if (png == nullptr) return Status::Internal("thumbnail: cannot create a PNG writer");
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_write_struct(&png, nullptr);
    return Status::Internal("thumbnail: cannot create PNG info");
  }
  std::vector<png_bytep> rows(static_cast<size_t>(height));
  for (int y = 0; y < height; ++y) {
    rows[size_t(y)] = const_cast<png_bytep>(pixels.data()) + size_t(y) * size_t(width) * channels;
  }
  const bool ok = EncodeRows(png, info, &ctx, width, height,
                             channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, rows.data());
  png_destroy_write_struct(&png, &info);
  if (!ok) return Status::Internal(std::string("thumbnail: PNG encoding failed: ") + ctx.message);
  return image;
}

// --- Images -------------------------------------------------------------

struct Size {
  int64_t height;
  int64_t width;
};

Size FitInside(int64_t height, int64_t width, int max_side) {
  const int64_t longer = std::max(height, width);
  if (longer <= max_side) return {height, width};
  const double scale = double(max_side) / double(longer);
  return {std::max<int64_t>(1, std::llround(double(height) * scale)),
          std::max<int64_t>(1, std::llround(double(width) * scale))};
}

// Area-averages channel `channel` of a height x width frame into `out` pixels;
// pixels with no finite input become NaN.
std::vector<double> AreaAverage(const formats::NdArray& data, int64_t height, int64_t width,
                                Size out, int channel) {
  const size_t n_out = size_t(out.height * out.width);
  if (out.height == height && out.width == width) {  // each pixel its own average
    std::vector<double> values(n_out);
    for (int64_t y = 0; y < height; ++y) {
      double* o = values.data() + size_t(y * width);
      ValuesOf(data, size_t(y * width), size_t(width), channel, o);
      for (int64_t x = 0; x < width; ++x) {
        if (!std::isfinite(o[x])) o[x] = std::numeric_limits<double>::quiet_NaN();
      }
    }
    return values;
  }
  std::vector<double> sum(n_out, 0.0);
  std::vector<uint32_t> count(n_out, 0);
  std::vector<int64_t> column_bin(static_cast<size_t>(width));
  for (int64_t x = 0; x < width; ++x) column_bin[size_t(x)] = x * out.width / width;
  std::vector<double> row(static_cast<size_t>(width));
  for (int64_t y = 0; y < height; ++y) {
    const int64_t oy = y * out.height / height;
    ValuesOf(data, size_t(y * width), size_t(width), channel, row.data());
    for (int64_t x = 0; x < width; ++x) {
      const double v = row[size_t(x)];
      if (!std::isfinite(v)) continue;
      const size_t o = size_t(oy * out.width + column_bin[size_t(x)]);
      sum[o] += v;
      ++count[o];
    }
  }
  for (size_t o = 0; o < n_out; ++o) {
    sum[o] = count[o] ? sum[o] / count[o] : std::numeric_limits<double>::quiet_NaN();
  }
  return sum;
}

// Area-averages a non-RGB height x width frame to `out` pixels and stretches it so that
// the 0.5th percentile is 0 and the 99.5th is 1 (values beyond lie outside [0, 1]);
// diffraction modes are taken on a log scale first. A flat frame is 0.5 everywhere;
// pixels with no finite input are NaN.
std::vector<double> StretchedGrey(const formats::NdArray& data, int64_t height, int64_t width,
                                  Size out, formats::Mode mode) {
  std::vector<double> values = AreaAverage(data, height, width, out, 0);
  if (mode == formats::Mode::kDiffraction || mode == formats::Mode::k4dStem) {
    // Diffraction intensities span decades: show log(1 + I - min).
    double lowest = std::numeric_limits<double>::infinity();
    for (double v : values) {
      if (std::isfinite(v)) lowest = std::min(lowest, v);
    }
    for (double& v : values) {
      if (std::isfinite(v)) v = std::log1p(std::max(0.0, v - lowest));
    }
  }
  std::vector<double> finite;
  finite.reserve(values.size());
  for (double v : values) {
    if (std::isfinite(v)) finite.push_back(v);
  }
  double lo = 0, hi = 0;
  if (!finite.empty()) std::tie(lo, hi) = Quantiles(finite, kLowPercentile, kHighPercentile);
  for (double& v : values) {
    if (!std::isfinite(v)) continue;
    v = hi > lo ? (v - lo) / (hi - lo) : 0.5;  // a flat frame: mid grey, not a misleading black
  }
  return values;
}

// Small frames (a 16 x 16 scan) would be specks in a results page: enlarge them by the
// largest whole factor that keeps the longer side within max_side, repeating pixels so
// that each stays a sharp square.
Result<PngImage> EncodeEnlarged(const std::vector<uint8_t>& pixels, Size size, int channels,
                                int max_side) {
  const int64_t factor = std::max<int64_t>(1, max_side / std::max(size.height, size.width));
  if (factor == 1) return EncodePng(pixels, int(size.width), int(size.height), channels);
  const int64_t w = size.width * factor, h = size.height * factor;
  std::vector<uint8_t> big(size_t(w * h * channels));
  for (int64_t y = 0; y < h; ++y) {
    const uint8_t* row = pixels.data() + size_t((y / factor) * size.width * channels);
    uint8_t* out = big.data() + size_t(y * w * channels);
    for (int64_t x = 0; x < w; ++x) {
      std::memcpy(out + x * channels, row + (x / factor) * channels, size_t(channels));
    }
  }
  return EncodePng(big, int(w), int(h), channels);
}

Result<PngImage> RenderImage(const formats::NdArray& data, int64_t height, int64_t width,
                             formats::Mode mode, int max_side) {
  const Size out = FitInside(height, width, max_side);
  const size_t n_out = size_t(out.height * out.width);
  const bool rgb = data.dtype == DType::kRGB8 || data.dtype == DType::kRGBA8;
  if (rgb) {
    std::vector<uint8_t> pixels(n_out * 3);
    for (int c = 0; c < 3; ++c) {
      const std::vector<double> channel = AreaAverage(data, height, width, out, c);
      for (size_t o = 0; o < n_out; ++o) {
        const double v = channel[o];
        pixels[o * 3 + size_t(c)] =
            std::isfinite(v) ? static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L)) : 0;
      }
    }
    return EncodeEnlarged(pixels, out, 3, max_side);
  }

  const std::vector<double> values = StretchedGrey(data, height, width, out, mode);
  std::vector<uint8_t> pixels(n_out, 0);
  for (size_t o = 0; o < n_out; ++o) {
    const double v = values[o];
    if (!std::isfinite(v)) continue;
    pixels[o] = static_cast<uint8_t>(std::clamp(std::lround(v * 255.0), 0L, 255L));
  }
  return EncodeEnlarged(pixels, out, 1, max_side);
}

// --- Spectra ------------------------------------------------------------

constexpr int kPlotLeft = 6;
constexpr int kPlotRight = kPlotWidth - 4;
constexpr int kPlotTop = 4;
constexpr int kPlotBottom = kPlotHeight - 7;
constexpr uint8_t kAxisGrey = 150;
constexpr uint8_t kCurve = 0;

void DrawLine(std::vector<uint8_t>& canvas, int x0, int y0, int x1, int y1, uint8_t value) {
  const int dx = std::abs(x1 - x0), sx = x0 < x1 ? 1 : -1;
  const int dy = -std::abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
  int err = dx + dy;
  while (true) {
    if (x0 >= 0 && x0 < kPlotWidth && y0 >= 0 && y0 < kPlotHeight) {
      canvas[size_t(y0 * kPlotWidth + x0)] = value;
    }
    if (x0 == x1 && y0 == y1) break;
    const int e2 = 2 * err;
    if (e2 >= dy) {
      err += dy;
      x0 += sx;
    }
    if (e2 <= dx) {
      err += dx;
      y0 += sy;
    }
  }
}

Result<PngImage> RenderSpectrum(const formats::NdArray& data, size_t n) {
  std::vector<uint8_t> canvas(size_t(kPlotWidth * kPlotHeight), 255);
  DrawLine(canvas, kPlotLeft - 1, kPlotTop, kPlotLeft - 1, kPlotBottom + 1, kAxisGrey);
  DrawLine(canvas, kPlotLeft - 1, kPlotBottom + 1, kPlotRight, kPlotBottom + 1, kAxisGrey);

  double lo = std::numeric_limits<double>::infinity();
  double hi = -lo;
  for (size_t i = 0; i < n; ++i) {
    const double v = ValueAt(data.bytes.data(), data.dtype, i);
    if (!std::isfinite(v)) continue;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  if (lo <= hi) {
    if (hi == lo) {  // a flat spectrum: draw it mid-height
      lo -= 1;
      hi += 1;
    }
    const double span_x = double(kPlotRight - kPlotLeft);
    const double span_y = double(kPlotBottom - kPlotTop);
    auto px = [&](size_t i) {
      return kPlotLeft + int(std::lround(n > 1 ? double(i) * span_x / double(n - 1) : 0.0));
    };
    auto py = [&](double v) {
      return kPlotBottom - int(std::lround((v - lo) / (hi - lo) * span_y));
    };
    bool have_previous = false;
    int prev_x = 0, prev_y = 0;
    for (size_t i = 0; i < n; ++i) {
      const double v = ValueAt(data.bytes.data(), data.dtype, i);
      if (!std::isfinite(v)) {
        have_previous = false;  // a gap in the curve
        continue;
      }
      const int x = px(i), y = py(v);
      if (have_previous) {
        DrawLine(canvas, prev_x, prev_y, x, y, kCurve);
      } else if (n == 1) {
        DrawLine(canvas, kPlotLeft, y, kPlotRight, y, kCurve);
      } else {
        DrawLine(canvas, x, y, x, y, kCurve);
      }
      have_previous = true;
      prev_x = x;
      prev_y = y;
    }
  }
  return EncodePng(canvas, kPlotWidth, kPlotHeight, 1);
}

// The checks RenderThumbnail and PrepareGreyFrame share: a usable max_side and an array whose
// bytes match its shape.
Status CheckArray(const formats::NdArray& data, int max_side) {
  if (max_side < 1) {
    return Status::InvalidArgument("thumbnail: max_side must be at least 1, not " +
                                   std::to_string(max_side));
  }
  SCISEARCH_ASSIGN_OR_RETURN(const int64_t count, formats::CheckedElementCount(data.shape));
  if (count == 0) return Status::InvalidArgument("thumbnail: the array is empty");
  if (uint64_t(count) > std::numeric_limits<uint64_t>::max() / formats::DTypeSize(data.dtype) ||
      uint64_t(count) * formats::DTypeSize(data.dtype) != data.bytes.size()) {
    return Status::InvalidArgument("thumbnail: the array holds " +
                                   std::to_string(data.bytes.size()) + " bytes, its shape needs " +
                                   std::to_string(count) + " elements of " +
                                   std::string(formats::DTypeName(data.dtype)));
  }
  return Status::Ok();
}

// The sizes of the axes that are not 1, slowest first.
std::vector<int64_t> NonUnitDims(const std::vector<int64_t>& shape) {
  std::vector<int64_t> dims;
  for (int64_t d : shape) {
    if (d != 1) dims.push_back(d);
  }
  return dims;
}

}  // namespace

Result<PngImage> RenderThumbnail(const formats::NdArray& data, formats::Mode mode, int max_side) {
  SCISEARCH_RETURN_IF_ERROR(CheckArray(data, max_side));
  const std::vector<int64_t> dims = NonUnitDims(data.shape);
  if (dims.size() == 1) return RenderSpectrum(data, size_t(dims[0]));
  if (dims.empty()) return RenderImage(data, 1, 1, mode, max_side);
  // The first frame of a stack is its first height * width elements (C order).
  return RenderImage(data, dims[dims.size() - 2], dims.back(), mode, max_side);
}

// --- What to preview -----------------------------------------------------

bool HasFrame(const formats::Signal& signal) {
  const size_t rank = signal.shape.size();
  if (rank < 2) return false;
  const formats::Mode mode = signal.fields.mode;
  if (mode == formats::Mode::kSpectrum || mode == formats::Mode::kSpectrumImage) return false;
  if (signal.axes.size() == rank && signal.axes[rank - 2].navigate) return false;
  return true;
}

std::optional<size_t> ChoosePreviewSignal(const formats::Dataset& dataset) {
  std::optional<size_t> first_with_data;
  for (size_t i = 0; i < dataset.signals.size(); ++i) {
    const formats::Signal& s = dataset.signals[i];
    if (s.shape.empty()) continue;
    if (std::any_of(s.shape.begin(), s.shape.end(), [](int64_t d) { return d <= 0; })) continue;
    if (HasFrame(s)) return i;
    if (!first_with_data) first_with_data = i;
  }
  return first_with_data;
}

formats::Hyperslab PreviewSlab(const formats::Signal& signal, int64_t max_side) {
  const size_t rank = signal.shape.size();
  formats::Hyperslab slab;
  slab.start.assign(rank, 0);
  slab.count.assign(rank, 1);
  slab.step.assign(rank, 1);
  if (rank == 0) return slab;
  if (HasFrame(signal)) {
    const int64_t h = signal.shape[rank - 2], w = signal.shape[rank - 1];
    const int64_t longer = std::max(h, w);
    const int64_t step = std::max<int64_t>(1, (longer + max_side - 1) / max_side);
    slab.step[rank - 2] = slab.step[rank - 1] = step;
    slab.count[rank - 2] = (h + step - 1) / step;
    slab.count[rank - 1] = (w + step - 1) / step;
  } else {
    const int64_t n = signal.shape[rank - 1];
    const int64_t step = std::max<int64_t>(1, (n + kMaxSpectrumPoints - 1) / kMaxSpectrumPoints);
    slab.step[rank - 1] = step;
    slab.count[rank - 1] = (n + step - 1) / step;
  }
  return slab;
}

Result<GreyFrame> PrepareGreyFrame(const formats::NdArray& data, formats::Mode mode, int max_side) {
  SCISEARCH_RETURN_IF_ERROR(CheckArray(data, max_side));
  const std::vector<int64_t> dims = NonUnitDims(data.shape);
  if (dims.size() < 2) {
    return Status::InvalidArgument(
        "vision input: a frame needs two axes longer than 1, the array has " +
        std::to_string(dims.size()));
  }
  const int64_t height = dims[dims.size() - 2], width = dims.back();
  const Size out = FitInside(height, width, max_side);
  std::vector<double> values;
  const bool rgb = data.dtype == DType::kRGB8 || data.dtype == DType::kRGBA8;
  if (rgb) {
    // Luminance (ITU-R BT.601) from the area-averaged channels, on the 0-255 scale.
    const double weights[3] = {0.299, 0.587, 0.114};
    values.assign(size_t(out.height * out.width), 0.0);
    for (int c = 0; c < 3; ++c) {
      const std::vector<double> channel = AreaAverage(data, height, width, out, c);
      for (size_t o = 0; o < values.size(); ++o) values[o] += weights[c] * channel[o] / 255.0;
    }
  } else {
    values = StretchedGrey(data, height, width, out, mode);
  }
  GreyFrame frame;
  frame.height = int(out.height);
  frame.width = int(out.width);
  frame.pixels.resize(values.size());
  for (size_t o = 0; o < values.size(); ++o) {
    const double v = values[o];
    frame.pixels[o] = std::isfinite(v) ? float(std::clamp(v, 0.0, 1.0)) : 0.5f;
  }
  return frame;
}

}  // namespace scisearch::thumbnail
