// Texture statistics (texture.h): plain loops over float planes, an image pyramid for the
// coarser scales. Borders are mirrored (d c b a | a b c d), as scipy.ndimage's "reflect".
#include "vision/texture.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <utility>

namespace scisearch::vision {
namespace {

// std::allocator, except that a value-initialised element (vector(n), resize(n)) is left
// uninitialised: every plane below is written in full before it is read, and zeroing the
// twenty-odd planes of a frame first took a tenth of the time.
template <typename T>
struct UninitialisedAllocator : std::allocator<T> {
  template <typename U>
  struct rebind {
    using other = UninitialisedAllocator<U>;
  };
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

// A grey plane, row-major.
struct Plane {
  int height = 0;
  int width = 0;
  std::vector<float, UninitialisedAllocator<float>> v;

  Plane() = default;
  // A plane of h x w pixels whose values are to be written.
  Plane(int h, int w) : height(h), width(w), v(size_t(h) * size_t(w)) {}
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

// o[x] = the sum over k of c[k] * rows[k][x], for x < w. `o` is a parameter so that it may
// be __restrict: told that it aliases no row, the vectoriser need not check each of them (it
// gives up beyond ten checks).
template <size_t Taps>
void SumOfRows(const std::array<float, Taps>& c, const std::array<const float*, Taps>& rows, int w,
               float* __restrict o) {
  for (int x = 0; x < w; ++x) {
    float sum = 0;
    for (size_t k = 0; k < Taps; ++k) sum += c[k] * rows[k][x];
    o[x] = sum;
  }
}

// `in` correlated with `kernel` (2 * Radius + 1 taps, centred) along x (rows) or y (columns).
// A fixed radius unrolls the taps, so that each output pixel is one sum kept in a register
// and the loop over a row vectorises.
template <int Radius>
Plane CorrelateWith(const Plane& in, const std::vector<float>& kernel, bool along_x) {
  constexpr int kTaps = 2 * Radius + 1;
  std::array<float, kTaps> c;
  std::copy(kernel.begin(), kernel.end(), c.begin());
  Plane out(in.height, in.width);
  const int w = in.width;
  for (int y = 0; y < in.height; ++y) {
    float* o = out.v.data() + size_t(y) * size_t(w);
    if (along_x) {
      const float* row = in.v.data() + size_t(y) * size_t(w);
      const int inner_begin = std::min(Radius, w), inner_end = std::max(inner_begin, w - Radius);
      for (int x = inner_begin; x < inner_end; ++x) {
        float sum = 0;
        for (int k = 0; k < kTaps; ++k) sum += c[size_t(k)] * row[x + k - Radius];
        o[x] = sum;
      }
      auto mirrored = [&](int x) {
        float sum = 0;
        for (int k = 0; k < kTaps; ++k) sum += c[size_t(k)] * row[Mirror(x + k - Radius, w)];
        o[x] = sum;
      };
      for (int x = 0; x < inner_begin; ++x) mirrored(x);
      for (int x = inner_end; x < w; ++x) mirrored(x);
    } else {
      std::array<const float*, kTaps> rows;
      for (int k = 0; k < kTaps; ++k) {
        rows[size_t(k)] = in.v.data() + size_t(Mirror(y + k - Radius, in.height)) * size_t(w);
      }
      SumOfRows(c, rows, w, o);
    }
  }
  return out;
}

// `in` correlated with `kernel` (odd length, centred, of a radius this file uses) along x
// (rows) or y (columns).
Plane Correlate(const Plane& in, const std::vector<float>& kernel, bool along_x) {
  switch (kernel.size() / 2) {
    case 1:
      return CorrelateWith<1>(in, kernel, along_x);
    case 2:
      return CorrelateWith<2>(in, kernel, along_x);
    case 4:
      return CorrelateWith<4>(in, kernel, along_x);
    case 6:
      return CorrelateWith<6>(in, kernel, along_x);
  }
  std::abort();  // a kernel this file does not make
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

// A view: a rectangle of the frame, in the frame's pixels.
struct Rect {
  int top = 0, left = 0, height = 0, width = 0;

  // The rectangle at pyramid level `level` (sides halved `level` times) of a plane of
  // height x width pixels: clipped to it, at least one pixel.
  Rect AtLevel(int level, int plane_height, int plane_width) const {
    Rect r;
    r.top = std::min(top >> level, plane_height - 1);
    r.left = std::min(left >> level, plane_width - 1);
    r.height = std::clamp(height >> level, 1, plane_height - r.top);
    r.width = std::clamp(width >> level, 1, plane_width - r.left);
    return r;
  }
  double Area() const { return double(height) * double(width); }
};

// Calls fn(lane, value) for every value of `plane` inside `r`, lane = the value's column
// modulo kLanes. Sums and counts kept per lane do not wait on the previous pixel's
// addition, which would otherwise bound these loops (a chain of dependent additions, or
// a store to the histogram bin that the next pixel is likely to hit too).
constexpr int kLanes = 4;
template <typename T, typename F>
void ForEachIn(const T* plane, int plane_width, const Rect& r, F&& fn) {
  for (int y = r.top; y < r.top + r.height; ++y) {
    const T* row = plane + size_t(y) * size_t(plane_width) + size_t(r.left);
    int x = 0;
    for (; x + kLanes <= r.width; x += kLanes) {
      fn(0, row[x]), fn(1, row[x + 1]), fn(2, row[x + 2]), fn(3, row[x + 3]);
    }
    for (; x < r.width; ++x) fn(x % kLanes, row[x]);
  }
}

// A sum kept per lane (see ForEachIn).
struct LaneSum {
  std::array<double, kLanes> lanes{};
  void Add(int lane, double v) { lanes[size_t(lane)] += v; }
  double Total() const { return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]); }
  void Merge(const LaneSum& other) {
    for (size_t l = 0; l < kLanes; ++l) lanes[l] += other.lanes[l];
  }
};

// The sum and the sum of squares of values (see ForEachIn).
struct LaneMoments {
  LaneSum sum, squares;
  void Add(int lane, double v) { sum.Add(lane, v), squares.Add(lane, v * v); }
  void Merge(const LaneMoments& other) { sum.Merge(other.sum), squares.Merge(other.squares); }
};

// A histogram of `Bins` bins kept per lane (see ForEachIn).
template <size_t Bins>
struct LaneHistogram {
  std::array<std::array<int64_t, Bins>, kLanes> lanes{};
  void Add(int lane, size_t bin) { ++lanes[size_t(lane)][bin]; }
  int64_t Count(size_t bin) const {
    return lanes[0][bin] + lanes[1][bin] + lanes[2][bin] + lanes[3][bin];
  }
  void Merge(const LaneHistogram& other) {
    for (size_t l = 0; l < kLanes; ++l) {
      for (size_t b = 0; b < Bins; ++b) lanes[l][b] += other.lanes[l][b];
    }
  }
};

// The structure-tensor coherence of a plane (gradients of its Gaussian at sigma 0.5, Sobel,
// the tensor averaged at sigma 1.5) and the tensor's energy (its trace), pixel by pixel.
struct Coherence {
  Plane coherence, energy;
};
Coherence CoherenceOf(const Plane& level) {
  const Plane g = Gaussian(level, 0.5);
  const Plane gx = Correlate(Correlate(g, {-1, 0, 1}, true), {1, 2, 1}, false);
  const Plane gy = Correlate(Correlate(g, {1, 2, 1}, true), {-1, 0, 1}, false);
  Plane xx(g.height, g.width), yy(g.height, g.width), xy(g.height, g.width);
  for (size_t i = 0; i < g.v.size(); ++i) {
    xx.v[i] = gx.v[i] * gx.v[i], yy.v[i] = gy.v[i] * gy.v[i], xy.v[i] = gx.v[i] * gy.v[i];
  }
  const Plane jxx = Gaussian(xx, 1.5), jyy = Gaussian(yy, 1.5), jxy = Gaussian(xy, 1.5);
  Coherence out{Plane(g.height, g.width), Plane(g.height, g.width)};
  for (size_t i = 0; i < g.v.size(); ++i) {
    const float energy = jxx.v[i] + jyy.v[i];
    const float d = jxx.v[i] - jyy.v[i];
    out.coherence.v[i] = std::sqrt(d * d + 4.f * jxy.v[i] * jxy.v[i]) / (energy + 1e-9f);
    out.energy.v[i] = energy;
  }
  return out;
}

// |Laplacian| of a plane's Gaussian at sigma 1 (blob and edge strength at the plane's
// scale), pixel by pixel. At radius 1, mirrored borders are clamped ones.
Plane LaplacianMagnitude(const Plane& level) {
  const Plane g = Gaussian(level, 1.0);
  Plane out(g.height, g.width);
  for (int y = 0; y < g.height; ++y) {
    const float* up = &g.v[size_t(std::max(y - 1, 0)) * size_t(g.width)];
    const float* row = &g.v[size_t(y) * size_t(g.width)];
    const float* down = &g.v[size_t(std::min(y + 1, g.height - 1)) * size_t(g.width)];
    for (int x = 0; x < g.width; ++x) {
      const float left = row[std::max(x - 1, 0)], right = row[std::min(x + 1, g.width - 1)];
      out.at(y, x) = std::fabs(up[x] + down[x] + left + right - 4 * row[x]);
    }
  }
  return out;
}

// Uniform 8-neighbour local binary patterns at radius r (nearest samples): 0-8 count the
// neighbours at least as bright as the centre when the circular pattern changes at most
// twice, 9 marks the other patterns, kNoPattern the pixels closer than r to a border.
constexpr uint8_t kNoPattern = 255;

// The uniform-pattern code of each of the 256 patterns of 8 bits.
constexpr std::array<uint8_t, 256> UniformCodes() {
  std::array<uint8_t, 256> codes{};
  for (int bits = 0; bits < 256; ++bits) {
    int ones = 0, transitions = 0;
    for (int k = 0; k < 8; ++k) {
      ones += (bits >> k) & 1;
      transitions += ((bits >> k) & 1) != ((bits >> ((k + 1) % 8)) & 1);
    }
    codes[size_t(bits)] = uint8_t(transitions <= 2 ? ones : 9);
  }
  return codes;
}
constexpr std::array<uint8_t, 256> kUniformCode = UniformCodes();

std::vector<uint8_t> LocalBinaryPatterns(const Plane& a, int r) {
  std::vector<uint8_t> codes(a.v.size(), kNoPattern);
  const std::array<std::array<int, 2>, 8> offsets = {
      {{-r, 0}, {-r, r}, {0, r}, {r, r}, {r, 0}, {r, -r}, {0, -r}, {-r, -r}}};
  const int w = a.width;
  std::vector<uint8_t> bits(size_t(std::max(w, 0)));
  for (int y = r; y < a.height - r; ++y) {
    // One neighbour at a time along the row, so that the comparisons vectorise.
    std::fill(bits.begin(), bits.end(), 0);
    const float* centre = &a.v[size_t(y) * size_t(w)];
    for (size_t k = 0; k < 8; ++k) {
      const float* neighbour = &a.v[size_t(y + offsets[k][0]) * size_t(w)] + offsets[k][1];
      for (int x = r; x < w - r; ++x) bits[size_t(x)] |= uint8_t(neighbour[x] >= centre[x]) << k;
    }
    uint8_t* out = &codes[size_t(y) * size_t(w)];
    for (int x = r; x < w - r; ++x) out[x] = kUniformCode[bits[size_t(x)]];
  }
  return codes;
}

// Everything the statistics of any view are sums of, computed once for the whole frame:
// a view's statistics are sums over its rectangle, so that the five crops cost little more
// than their pixels. (Each view is standardised on its own: the histogram is re-scaled to
// the view's mean and deviation, and the energies, which scale with the deviation's square
// and the deviation, are corrected for it; coherence and binary patterns do not change with
// gain and offset.)
struct TexturePlanes {
  std::vector<Plane> pyramid;     // the standardised frame, then its 2 x 2 means, 5 levels
  std::vector<Coherence> tensor;  // levels 0-3
  std::vector<Plane> laplacian;   // levels 0-4
  std::vector<std::vector<uint8_t>> patterns;  // radii 1, 2, 4 at level 0; 2, 4 at level 1
};

TexturePlanes PlanesOf(const Plane& frame) {
  TexturePlanes p;
  p.pyramid.push_back(Standardised(frame));
  for (int level = 1; level <= 4; ++level) p.pyramid.push_back(Halved(p.pyramid.back()));
  for (int level = 0; level < 4; ++level) p.tensor.push_back(CoherenceOf(p.pyramid[size_t(level)]));
  for (int level = 0; level < 5; ++level) {
    p.laplacian.push_back(LaplacianMagnitude(p.pyramid[size_t(level)]));
  }
  for (int r : {1, 2, 4}) p.patterns.push_back(LocalBinaryPatterns(p.pyramid[0], r));
  for (int r : {2, 4}) p.patterns.push_back(LocalBinaryPatterns(p.pyramid[1], r));
  return p;
}

// The cells of a plane cut along every edge of some views: each view is a union of cells, so
// that sums over each cell, taken once, give the sums over each view however the views
// overlap (the whole frame and its crops cover each pixel 2.25 times). Counts come out
// exactly as a pass over each view gives them; double sums of floats up to the order of
// their additions, far below a float's precision (the statistics of the uhcs3 micrographs
// came out bit-identical).
class Cells {
 public:
  // The cells of a plane of height x width pixels cut along the edges of `views` (each
  // inside the plane).
  Cells(const std::vector<Rect>& views, int height, int width) : views_(views) {
    rows_ = {0, height}, columns_ = {0, width};
    for (const Rect& v : views) {
      rows_.insert(rows_.end(), {v.top, v.top + v.height});
      columns_.insert(columns_.end(), {v.left, v.left + v.width});
    }
    for (std::vector<int>* edges : {&rows_, &columns_}) {
      std::sort(edges->begin(), edges->end());
      edges->erase(std::unique(edges->begin(), edges->end()), edges->end());
    }
  }

  // For each view, the Sum (LaneSum, LaneMoments or LaneHistogram) that fn(sum, lane, value)
  // accumulates over the view's pixels of `plane` (row-major, plane_width pixels a row).
  // fn is called once for each pixel of the views' union.
  template <typename Sum, typename T, typename F>
  std::vector<Sum> SumsOfViews(const T* plane, int plane_width, F&& fn) const {
    std::vector<Sum> cells((rows_.size() - 1) * (columns_.size() - 1));
    for (size_t i = 0; i + 1 < rows_.size(); ++i) {
      for (size_t j = 0; j + 1 < columns_.size(); ++j) {
        const Rect cell{rows_[i], columns_[j], rows_[i + 1] - rows_[i],
                        columns_[j + 1] - columns_[j]};
        if (!Covered(cell)) continue;
        Sum& sum = cells[i * (columns_.size() - 1) + j];
        ForEachIn(plane, plane_width, cell, [&](int lane, T v) { fn(sum, lane, v); });
      }
    }
    std::vector<Sum> out(views_.size());
    for (size_t k = 0; k < views_.size(); ++k) {
      const Rect& v = views_[k];
      const size_t i0 = Index(rows_, v.top), i1 = Index(rows_, v.top + v.height);
      const size_t j0 = Index(columns_, v.left), j1 = Index(columns_, v.left + v.width);
      for (size_t i = i0; i < i1; ++i) {
        for (size_t j = j0; j < j1; ++j) out[k].Merge(cells[i * (columns_.size() - 1) + j]);
      }
    }
    return out;
  }
  // As above, each pixel's value added as it is: sum.Add(lane, value).
  template <typename Sum, typename T>
  std::vector<Sum> SumsOfViews(const T* plane, int plane_width) const {
    return SumsOfViews<Sum>(plane, plane_width, [](Sum& sum, int lane, T v) { sum.Add(lane, v); });
  }

 private:
  static size_t Index(const std::vector<int>& edges, int edge) {
    return size_t(std::lower_bound(edges.begin(), edges.end(), edge) - edges.begin());
  }
  bool Covered(const Rect& cell) const {
    return std::any_of(views_.begin(), views_.end(), [&](const Rect& v) {
      return cell.top >= v.top && cell.top < v.top + v.height && cell.left >= v.left &&
             cell.left < v.left + v.width;
    });
  }

  std::vector<Rect> views_;
  std::vector<int> rows_, columns_;  // sorted edges, 0 and the side included
};

// The views at pyramid level `level`, in a plane of height x width pixels.
std::vector<Rect> AtLevel(const std::vector<Rect>& views, int level, int height, int width) {
  std::vector<Rect> out;
  for (const Rect& v : views) out.push_back(v.AtLevel(level, height, width));
  return out;
}

// The statistics of each of `views` (rectangles of the frame), in kTextureStatisticsPerView
// finite values each.
std::vector<std::vector<float>> ViewStatistics(const TexturePlanes& p,
                                               const std::vector<Rect>& views) {
  std::vector<std::vector<float>> out(views.size());
  for (auto& o : out) o.reserve(kTextureStatisticsPerView);
  const Plane& a = p.pyramid[0];

  // Each view's own mean and deviation (in units of the frame's), then its histogram.
  std::vector<double> sds(views.size());
  {
    const std::vector<LaneMoments> moments =
        Cells(views, a.height, a.width).SumsOfViews<LaneMoments>(a.v.data(), a.width);
    for (size_t k = 0; k < views.size(); ++k) {
      const double n = views[k].Area();
      const double mean = moments[k].sum.Total() / n;
      const double sd =
          std::sqrt(std::max(0.0, moments[k].squares.Total() / n - mean * mean)) + 1e-6;
      sds[k] = sd;
      const double inverse_sd = 1 / sd;
      LaneHistogram<12> bins;
      LaneSum third, fourth;
      ForEachIn(a.v.data(), a.width, views[k], [&](int lane, float raw) {
        const double v = (raw - mean) * inverse_sd;
        bins.Add(lane, size_t(std::min(11, int((std::clamp(v, -3.0, 3.0) + 3) * 2))));
        const double cube = v * v * v;
        third.Add(lane, cube);
        fourth.Add(lane, cube * v);
      });
      for (size_t b = 0; b < 12; ++b) out[k].push_back(float(double(bins.Count(b)) / n));
      out[k].push_back(float(third.Total() / n));
      out[k].push_back(float(fourth.Total() / n));
    }
  }

  for (size_t level = 0; level < p.tensor.size(); ++level) {
    const Coherence& t = p.tensor[level];
    const std::vector<Rect> rects = AtLevel(views, int(level), t.energy.height, t.energy.width);
    const Cells cells(rects, t.energy.height, t.energy.width);
    const auto bins = cells.SumsOfViews<LaneHistogram<6>>(
        t.coherence.v.data(), t.coherence.width, [](LaneHistogram<6>& h, int lane, float c) {
          h.Add(lane, size_t(std::clamp(int(c * 6), 0, 5)));
        });
    const auto energy = cells.SumsOfViews<LaneSum>(t.energy.v.data(), t.energy.width);
    for (size_t k = 0; k < views.size(); ++k) {
      const double area = rects[k].Area();
      for (size_t b = 0; b < 6; ++b) out[k].push_back(float(double(bins[k].Count(b)) / area));
      out[k].push_back(float(std::log(energy[k].Total() / area / (sds[k] * sds[k]) + 1e-9)));
    }
  }
  for (size_t level = 0; level < p.laplacian.size(); ++level) {
    const Plane& l = p.laplacian[level];
    const std::vector<Rect> rects = AtLevel(views, int(level), l.height, l.width);
    const auto totals = Cells(rects, l.height, l.width).SumsOfViews<LaneSum>(l.v.data(), l.width);
    for (size_t k = 0; k < views.size(); ++k) {
      out[k].push_back(float(std::log(totals[k].Total() / rects[k].Area() / sds[k] + 1e-9)));
    }
  }
  for (size_t m = 0; m < p.patterns.size(); ++m) {
    const int level = m < 3 ? 0 : 1;
    const Plane& plane = p.pyramid[size_t(level)];
    const std::vector<Rect> rects = AtLevel(views, level, plane.height, plane.width);
    const auto codes =
        Cells(rects, plane.height, plane.width)
            .SumsOfViews<LaneHistogram<256>>(p.patterns[m].data(),  // by code, kNoPattern included
                                             plane.width);
    for (size_t k = 0; k < views.size(); ++k) {
      int64_t count = 0;
      for (size_t code = 0; code < 10; ++code) count += codes[k].Count(code);
      for (size_t code = 0; code < 10; ++code) {
        out[k].push_back(count > 0 ? float(double(codes[k].Count(code)) / double(count)) : 0.f);
      }
    }
  }
  for (auto& o : out) {
    for (float& f : o) {
      if (!std::isfinite(f)) f = 0;
    }
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
  Plane whole(h, w);
  whole.v.assign(frame.pixels.begin(), frame.pixels.end());
  std::vector<Rect> rects = {{0, 0, h, w}};
  if (std::min(h, w) >= kMinSideForCrops) {
    const int ch = h / 2, cw = w / 2;
    const std::array<std::array<int, 2>, 5> corners = {
        {{0, 0}, {0, cw}, {ch, 0}, {ch, cw}, {h / 4, w / 4}}};
    for (const auto& [top, left] : corners) rects.push_back({top, left, ch, cw});
  }
  return ViewStatistics(PlanesOf(whole), rects);
}

}  // namespace scisearch::vision
