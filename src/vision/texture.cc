// Texture statistics (texture.h): plain loops over float planes, an image pyramid for the
// coarser scales. Borders are mirrored (d c b a | a b c d), as scipy.ndimage's "reflect".
#include "vision/texture.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>

namespace scisearch::vision {
namespace {

// A grey plane, row-major.
struct Plane {
  int height = 0;
  int width = 0;
  std::vector<float> v;

  Plane() = default;
  Plane(int h, int w) : height(h), width(w), v(size_t(h) * size_t(w), 0.f) {}
  float& at(int y, int x) { return v[size_t(y) * size_t(width) + size_t(x)]; }
  float at(int y, int x) const { return v[size_t(y) * size_t(width) + size_t(x)]; }
};

// Index i of a line of n samples, mirrored at both ends (any i, any n >= 1).
int Mirror(int i, int n) {
  const int period = 2 * n;
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - 1 - i;
}

// `in` correlated with `kernel` (odd length, centred) along x (rows) or y (columns).
Plane Correlate(const Plane& in, const std::vector<float>& kernel, bool along_x) {
  Plane out(in.height, in.width);
  const int radius = int(kernel.size() / 2);
  const int n = along_x ? in.width : in.height;
  for (int y = 0; y < in.height; ++y) {
    for (int x = 0; x < in.width; ++x) {
      const int at = along_x ? x : y;
      float sum = 0;
      if (at >= radius && at + radius < n) {
        // Inside: no mirroring (the common case, kept simple for the compiler).
        for (int k = -radius; k <= radius; ++k) {
          sum += kernel[size_t(k + radius)] * (along_x ? in.at(y, x + k) : in.at(y + k, x));
        }
      } else {
        for (int k = -radius; k <= radius; ++k) {
          const int i = Mirror(at + k, n);
          sum += kernel[size_t(k + radius)] * (along_x ? in.at(y, i) : in.at(i, x));
        }
      }
      out.at(y, x) = sum;
    }
  }
  return out;
}

std::vector<float> GaussianKernel(double sigma) {
  const int radius = int(4 * sigma + 0.5);  // scipy's truncate = 4
  std::vector<float> k(size_t(2 * radius + 1));
  double total = 0;
  for (int i = -radius; i <= radius; ++i) {
    total += k[size_t(i + radius)] = float(std::exp(-0.5 * i * i / (sigma * sigma)));
  }
  for (float& w : k) w = float(w / total);
  return k;
}

Plane Gaussian(const Plane& in, double sigma) {
  const std::vector<float> k = GaussianKernel(sigma);
  return Correlate(Correlate(in, k, true), k, false);
}

// The 2 x 2 means of `in` (an odd last row or column is dropped); `in` itself when a side
// is shorter than 2.
Plane Halved(const Plane& in) {
  if (in.height < 2 || in.width < 2) return in;
  Plane out(in.height / 2, in.width / 2);
  for (int y = 0; y < out.height; ++y) {
    for (int x = 0; x < out.width; ++x) {
      out.at(y, x) = 0.25f * (in.at(2 * y, 2 * x) + in.at(2 * y, 2 * x + 1) +
                              in.at(2 * y + 1, 2 * x) + in.at(2 * y + 1, 2 * x + 1));
    }
  }
  return out;
}

// `in` shifted to mean 0 and scaled to standard deviation 1 (a flat plane stays flat at 0).
Plane Standardised(Plane in) {
  double sum = 0, squares = 0;
  for (float p : in.v) sum += p, squares += double(p) * p;
  const double n = double(in.v.size());
  const double mean = sum / n;
  const double sd = std::sqrt(std::max(0.0, squares / n - mean * mean));
  for (float& p : in.v) p = float((p - mean) / (sd + 1e-6));
  return in;
}

// 12-bin histogram of the standardised grey levels over -3..3, then skewness and kurtosis.
void AddHistogram(const Plane& a, std::vector<float>& out) {
  std::array<double, 12> bins{};
  double third = 0, fourth = 0;
  for (float p : a.v) {
    const double c = std::clamp(double(p), -3.0, 3.0);
    bins[size_t(std::min(11, int((c + 3) * 2)))] += 1;
    const double sq = double(p) * p;
    third += sq * p, fourth += sq * sq;
  }
  const double n = double(a.v.size());
  for (double b : bins) out.push_back(float(b / n));
  out.push_back(float(third / n));
  out.push_back(float(fourth / n));
}

// Structure-tensor coherence of `level` (gradients of its Gaussian at sigma 0.5, Sobel,
// tensor averaged at sigma 1.5): a 6-bin histogram over 0..1 and the log mean energy.
void AddCoherence(const Plane& level, std::vector<float>& out) {
  const Plane g = Gaussian(level, 0.5);
  const Plane gx = Correlate(Correlate(g, {-1, 0, 1}, true), {1, 2, 1}, false);
  const Plane gy = Correlate(Correlate(g, {1, 2, 1}, true), {-1, 0, 1}, false);
  Plane xx(g.height, g.width), yy(g.height, g.width), xy(g.height, g.width);
  for (size_t i = 0; i < g.v.size(); ++i) {
    xx.v[i] = gx.v[i] * gx.v[i], yy.v[i] = gy.v[i] * gy.v[i], xy.v[i] = gx.v[i] * gy.v[i];
  }
  const Plane jxx = Gaussian(xx, 1.5), jyy = Gaussian(yy, 1.5), jxy = Gaussian(xy, 1.5);
  std::array<double, 6> bins{};
  double energy_sum = 0;
  for (size_t i = 0; i < g.v.size(); ++i) {
    const double energy = double(jxx.v[i]) + jyy.v[i];
    const double d = double(jxx.v[i]) - jyy.v[i];
    const double coherence = std::sqrt(d * d + 4.0 * jxy.v[i] * jxy.v[i]) / (energy + 1e-9);
    bins[size_t(std::clamp(int(coherence * 6), 0, 5))] += 1;
    energy_sum += energy;
  }
  const double n = double(g.v.size());
  for (double b : bins) out.push_back(float(b / n));
  out.push_back(float(std::log(energy_sum / n + 1e-9)));
}

// Log mean |Laplacian| of `level`'s Gaussian at sigma 1 (blob and edge strength at this
// level's scale).
void AddLaplacianEnergy(const Plane& level, std::vector<float>& out) {
  const Plane g = Gaussian(level, 1.0);
  double sum = 0;
  for (int y = 0; y < g.height; ++y) {
    for (int x = 0; x < g.width; ++x) {
      const float centre = g.at(y, x);
      const float laplacian = g.at(Mirror(y - 1, g.height), x) + g.at(Mirror(y + 1, g.height), x) +
                              g.at(y, Mirror(x - 1, g.width)) + g.at(y, Mirror(x + 1, g.width)) -
                              4 * centre;
      sum += std::fabs(laplacian);
    }
  }
  out.push_back(float(std::log(sum / double(g.v.size()) + 1e-9)));
}

// 10-bin histogram of uniform 8-neighbour local binary patterns at radius r (nearest
// samples): bins 0-8 count the neighbours at least as bright as the centre when the
// circular pattern changes at most twice, bin 9 the other patterns. Zeros when the plane
// has no pixel r away from every border.
void AddLocalBinaryPatterns(const Plane& a, int r, std::vector<float>& out) {
  std::array<double, 10> bins{};
  const std::array<std::array<int, 2>, 8> offsets = {
      {{-r, 0}, {-r, r}, {0, r}, {r, r}, {r, 0}, {r, -r}, {0, -r}, {-r, -r}}};
  double count = 0;
  for (int y = r; y < a.height - r; ++y) {
    for (int x = r; x < a.width - r; ++x) {
      const float centre = a.at(y, x);
      std::array<int, 8> bit{};
      int ones = 0;
      for (size_t k = 0; k < 8; ++k) {
        bit[k] = a.at(y + offsets[k][0], x + offsets[k][1]) >= centre;
        ones += bit[k];
      }
      int transitions = 0;
      for (size_t k = 0; k < 8; ++k) transitions += bit[k] != bit[(k + 1) % 8];
      bins[size_t(transitions <= 2 ? ones : 9)] += 1;
      count += 1;
    }
  }
  for (double b : bins) out.push_back(count > 0 ? float(b / count) : 0.f);
}

std::vector<float> ViewStatistics(const Plane& view) {
  const Plane a = Standardised(view);
  std::vector<Plane> pyramid = {a};
  for (int level = 1; level <= 4; ++level) pyramid.push_back(Halved(pyramid.back()));
  std::vector<float> out;
  out.reserve(kTextureStatisticsPerView);
  AddHistogram(a, out);
  for (int level = 0; level < 4; ++level) AddCoherence(pyramid[size_t(level)], out);
  for (int level = 0; level < 5; ++level) AddLaplacianEnergy(pyramid[size_t(level)], out);
  for (int r : {1, 2, 4}) AddLocalBinaryPatterns(a, r, out);
  for (int r : {2, 4}) AddLocalBinaryPatterns(pyramid[1], r, out);
  for (float& f : out) {
    if (!std::isfinite(f)) f = 0;
  }
  return out;
}

Plane Crop(const thumbnail::GreyFrame& frame, int top, int left, int height, int width) {
  Plane out(height, width);
  for (int y = 0; y < height; ++y) {
    const float* row = frame.pixels.data() + size_t(top + y) * size_t(frame.width) + size_t(left);
    std::copy(row, row + width, out.v.begin() + ptrdiff_t(size_t(y) * size_t(width)));
  }
  return out;
}

}  // namespace

std::vector<std::vector<float>> TextureViews(const thumbnail::GreyFrame& frame) {
  std::vector<std::vector<float>> views;
  if (frame.height < 1 || frame.width < 1 ||
      frame.pixels.size() != size_t(frame.height) * size_t(frame.width)) {
    return views;
  }
  const int h = frame.height, w = frame.width;
  views.push_back(ViewStatistics(Crop(frame, 0, 0, h, w)));
  if (std::min(h, w) >= kMinSideForCrops) {
    const int ch = h / 2, cw = w / 2;
    const std::array<std::array<int, 2>, 5> corners = {
        {{0, 0}, {0, cw}, {ch, 0}, {ch, cw}, {h / 4, w / 4}}};
    for (const auto& [top, left] : corners) {
      views.push_back(ViewStatistics(Crop(frame, top, left, ch, cw)));
    }
  }
  return views;
}

}  // namespace scisearch::vision
