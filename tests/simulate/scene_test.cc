// Tests of the scene renderers: every check measures the rendered pixels or
// counts against physics computed here independently (lattice spacings,
// reciprocal lattices, powder ring radii, tabulated line energies and edges).

#include "simulate/scene.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstring>
#include <numeric>
#include <queue>
#include <string>
#include <vector>

namespace scisearch::simulate {
namespace {

using formats::DType;
using formats::NdArray;

constexpr double kPi = 3.14159265358979323846;

// ------------------------------------------------------------------ helpers

std::vector<double> Values(const NdArray& array) {
  const size_t n = size_t(array.ElementCount());
  std::vector<double> out(n);
  const uint8_t* p = array.bytes.data();
  for (size_t i = 0; i < n; ++i) {
    switch (array.dtype) {
      case DType::kUInt8:
        out[i] = p[i];
        break;
      case DType::kUInt16: {
        uint16_t v;
        std::memcpy(&v, p + 2 * i, 2);
        out[i] = v;
        break;
      }
      case DType::kInt16: {
        int16_t v;
        std::memcpy(&v, p + 2 * i, 2);
        out[i] = v;
        break;
      }
      case DType::kInt32: {
        int32_t v;
        std::memcpy(&v, p + 4 * i, 4);
        out[i] = v;
        break;
      }
      case DType::kFloat32: {
        float v;
        std::memcpy(&v, p + 4 * i, 4);
        out[i] = v;
        break;
      }
      default:
        ADD_FAILURE() << "unexpected dtype";
    }
  }
  return out;
}

NdArray Image(const SceneSpec& spec, int64_t size = 256, uint64_t seed = 7,
              DType dtype = DType::kUInt16) {
  Result<NdArray> r = RenderImage(spec, size, size, dtype, seed);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? *r : NdArray{};
}

std::vector<double> Spectrum(const SceneSpec& spec, int64_t channels, uint64_t seed) {
  Result<NdArray> r = RenderSpectrum(spec, channels, DType::kFloat32, seed);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? Values(*r) : std::vector<double>(size_t(channels), 0.0);
}

double Mean(const std::vector<double>& v) {
  return std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
}

double Variance(const std::vector<double>& v) {
  const double m = Mean(v);
  double s = 0.0;
  for (double x : v) s += (x - m) * (x - m);
  return s / double(v.size());
}

// In-place radix-2 FFT.
void Fft(std::vector<std::complex<double>>& a) {
  const size_t n = a.size();
  for (size_t i = 1, j = 0; i < n; ++i) {
    size_t bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) std::swap(a[i], a[j]);
  }
  for (size_t len = 2; len <= n; len <<= 1) {
    const double angle = -2.0 * kPi / double(len);
    const std::complex<double> step(std::cos(angle), std::sin(angle));
    for (size_t i = 0; i < n; i += len) {
      std::complex<double> w(1.0);
      for (size_t k = 0; k < len / 2; ++k) {
        const std::complex<double> u = a[i + k];
        const std::complex<double> v = a[i + k + len / 2] * w;
        a[i + k] = u + v;
        a[i + k + len / 2] = u - v;
        w *= step;
      }
    }
  }
}

// Power spectrum of an n x n image (mean removed); index [ky * n + kx] with
// frequencies in FFT order.
std::vector<double> PowerSpectrum(const std::vector<double>& image, size_t n) {
  const double mean = Mean(image);
  std::vector<std::complex<double>> data(n * n);
  for (size_t i = 0; i < n * n; ++i) data[i] = image[i] - mean;
  std::vector<std::complex<double>> line(n);
  for (size_t y = 0; y < n; ++y) {
    for (size_t x = 0; x < n; ++x) line[x] = data[y * n + x];
    Fft(line);
    for (size_t x = 0; x < n; ++x) data[y * n + x] = line[x];
  }
  for (size_t x = 0; x < n; ++x) {
    for (size_t y = 0; y < n; ++y) line[y] = data[y * n + x];
    Fft(line);
    for (size_t y = 0; y < n; ++y) data[y * n + x] = line[y];
  }
  std::vector<double> power(n * n);
  for (size_t i = 0; i < n * n; ++i) power[i] = std::norm(data[i]);
  return power;
}

int Signed(size_t k, size_t n) { return k < n / 2 ? int(k) : int(k) - int(n); }

struct Peak {
  double kx;  // cycles per image width, x to the right
  double ky;  // cycles per image height, y up (rows reversed)
  double power;
};

// The strongest peaks of the power spectrum beyond `min_radius` cycles, one per
// direction pair (a peak and its centrosymmetric partner count once), refined to
// sub-bin positions by a centroid.
std::vector<Peak> SpectrumPeaks(const std::vector<double>& power, size_t n, double min_radius,
                                size_t count) {
  std::vector<std::pair<double, size_t>> order;
  for (size_t i = 0; i < n * n; ++i) {
    const int kx = Signed(i % n, n);
    const int ky = Signed(i / n, n);
    if (std::hypot(kx, ky) < min_radius) continue;
    order.push_back({power[i], i});
  }
  std::sort(order.rbegin(), order.rend());
  std::vector<Peak> peaks;
  for (const auto& [p, i] : order) {
    const int kx = Signed(i % n, n);
    const int ky = Signed(i / n, n);
    bool near_known = false;
    for (const Peak& q : peaks) {
      if (std::hypot(kx - q.kx, -ky - q.ky) < 3.0 || std::hypot(kx + q.kx, -ky + q.ky) < 3.0)
        near_known = true;
    }
    if (near_known) continue;
    double sx = 0.0, sy = 0.0, sw = 0.0;
    for (int dy = -1; dy <= 1; ++dy) {
      for (int dx = -1; dx <= 1; ++dx) {
        const size_t x = size_t((kx + dx + int(n)) % int(n));
        const size_t y = size_t((ky + dy + int(n)) % int(n));
        const double w = power[y * n + x];
        sx += w * (kx + dx);
        sy += w * (ky + dy);
        sw += w;
      }
    }
    peaks.push_back({sx / sw, -sy / sw, p});
    if (peaks.size() == count) break;
  }
  return peaks;
}

// Distance (in frequency bins) from a peak to the nearest non-zero point of a
// square reciprocal lattice of spacing f0 turned by `degrees` counter-clockwise.
double DistanceToSquareLattice(const Peak& peak, double f0, double degrees) {
  const double t = -degrees * kPi / 180.0;
  const double x = std::cos(t) * peak.kx - std::sin(t) * peak.ky;
  const double y = std::sin(t) * peak.kx + std::cos(t) * peak.ky;
  double h = std::round(x / f0);
  double k = std::round(y / f0);
  if (h == 0 && k == 0) h = x > 0 ? 1 : -1;
  return std::hypot(x - h * f0, y - k * f0);
}

SceneSpec Perovskite(double pixel_nm, double rotation = 0.0) {
  SceneSpec spec;
  spec.kind = SceneKind::kAtomicLattice;
  spec.structure = CrystalStructure::kPerovskite;
  spec.lattice_constant_nm = 0.3905;
  spec.pixel_size_nm = pixel_nm;
  spec.rotation_deg = rotation;
  spec.elements = {"Sr", "Ti", "O"};
  return spec;
}

// ------------------------------------------------------------------ determinism

TEST(SceneTest, SameSeedSameBytesOtherSeedOtherBytes) {
  std::vector<SceneSpec> specs;
  for (SceneKind kind :
       {SceneKind::kAtomicLattice, SceneKind::kNanoparticles, SceneKind::kSpotDiffraction,
        SceneKind::kRingDiffraction, SceneKind::kSemTexture}) {
    SceneSpec spec;
    spec.kind = kind;
    if (kind == SceneKind::kNanoparticles) spec.pixel_size_nm = 0.2;
    if (kind == SceneKind::kSpotDiffraction || kind == SceneKind::kRingDiffraction)
      spec.pixel_size_nm = 0.05;
    if (kind == SceneKind::kSemTexture) spec.pixel_size_nm = 10.0;
    spec.with_defects = true;
    specs.push_back(spec);
  }
  for (const SceneSpec& spec : specs) {
    const NdArray a = Image(spec, 96, 11);
    const NdArray b = Image(spec, 96, 11);
    const NdArray c = Image(spec, 96, 12);
    EXPECT_EQ(a.shape, (std::vector<int64_t>{96, 96}));
    EXPECT_EQ(a.bytes, b.bytes) << int(spec.kind);
    EXPECT_NE(a.bytes, c.bytes) << int(spec.kind);
  }
  for (SceneKind kind : {SceneKind::kEdsSpectrum, SceneKind::kEelsSpectrum}) {
    SceneSpec spec;
    spec.kind = kind;
    spec.pixel_size_nm = kind == SceneKind::kEdsSpectrum ? 10.0 : 0.5;
    spec.elements = {"Fe", "O"};
    EXPECT_EQ(RenderSpectrum(spec, 512, DType::kInt32, 3)->bytes,
              RenderSpectrum(spec, 512, DType::kInt32, 3)->bytes);
    EXPECT_NE(RenderSpectrum(spec, 512, DType::kInt32, 3)->bytes,
              RenderSpectrum(spec, 512, DType::kInt32, 4)->bytes);
    EXPECT_EQ(RenderSpectrumImage(spec, 6, 5, 64, DType::kFloat32, 3)->bytes,
              RenderSpectrumImage(spec, 6, 5, 64, DType::kFloat32, 3)->bytes);
    EXPECT_NE(RenderSpectrumImage(spec, 6, 5, 64, DType::kFloat32, 3)->bytes,
              RenderSpectrumImage(spec, 6, 5, 64, DType::kFloat32, 4)->bytes);
  }
}

TEST(SceneTest, EveryImageDTypeHoldsItsRange) {
  SceneSpec spec = Perovskite(0.02);
  for (DType dtype :
       {DType::kUInt8, DType::kUInt16, DType::kInt16, DType::kInt32, DType::kFloat32}) {
    const NdArray a = Image(spec, 64, 1, dtype);
    ASSERT_EQ(a.dtype, dtype);
    ASSERT_EQ(a.bytes.size(), 64u * 64u * formats::DTypeSize(dtype));
    const std::vector<double> v = Values(a);
    const double top = dtype == DType::kUInt8 ? 255.0 : dtype == DType::kInt16 ? 32767.0 : 65535.0;
    EXPECT_GE(*std::min_element(v.begin(), v.end()), 0.0);
    EXPECT_LE(*std::max_element(v.begin(), v.end()), top);
    EXPECT_GT(*std::max_element(v.begin(), v.end()), 0.3 * top);  // exposed, not dark
  }
}

// ------------------------------------------------------------------ lattices

TEST(SceneTest, LatticePeriodMatchesLatticeConstantInPixels) {
  // SrTiO3 [001]: a square lattice of a = 0.3905 nm; at 0.02 nm per pixel the
  // reciprocal lattice spacing is 256 * 0.02 / 0.3905 = 13.11 cycles per image.
  const size_t n = 256;
  const double f0 = double(n) * 0.02 / 0.3905;
  for (uint64_t seed : {1, 2, 3}) {
    const std::vector<double> image = Values(Image(Perovskite(0.02), int64_t(n), seed));
    const std::vector<Peak> peaks = SpectrumPeaks(PowerSpectrum(image, n), n, 6.0, 3);
    ASSERT_EQ(peaks.size(), 3u);
    for (const Peak& peak : peaks) {
      EXPECT_LT(DistanceToSquareLattice(peak, f0, 0.0), 1.0) << peak.kx << ", " << peak.ky;
    }
    // A lattice constant 12% off does not fit: the test can tell.
    double worst = 0.0;
    for (const Peak& peak : peaks)
      worst = std::max(worst, DistanceToSquareLattice(peak, f0 * 1.12, 0.0));
    EXPECT_GT(worst, 1.0);
  }
}

TEST(SceneTest, LatticeRotationShows) {
  const size_t n = 256;
  const double f0 = double(n) * 0.02 / 0.3905;
  const std::vector<double> image = Values(Image(Perovskite(0.02, 30.0), int64_t(n), 5));
  const std::vector<Peak> peaks = SpectrumPeaks(PowerSpectrum(image, n), n, 6.0, 2);
  ASSERT_EQ(peaks.size(), 2u);
  for (const Peak& peak : peaks) {
    EXPECT_LT(DistanceToSquareLattice(peak, f0, 30.0), 1.0);
    EXPECT_GT(DistanceToSquareLattice(peak, f0, 0.0), 2.0);
    EXPECT_GT(DistanceToSquareLattice(peak, f0, -30.0), 2.0);  // counter-clockwise, not clockwise
  }
}

TEST(SceneTest, EveryStructureRendersResolvedColumns) {
  // Per structure: the projected cell's shortest periodicity must appear; here
  // we check that columns make the image far from uniform and that defects and
  // bright field render too.
  for (CrystalStructure structure :
       {CrystalStructure::kRockSalt, CrystalStructure::kPerovskite, CrystalStructure::kFcc,
        CrystalStructure::kBcc, CrystalStructure::kHcp, CrystalStructure::kDiamond,
        CrystalStructure::kWurtzite}) {
    for (bool dark_field : {true, false}) {
      SceneSpec spec;
      spec.kind = SceneKind::kAtomicLattice;
      spec.structure = structure;
      spec.lattice_constant_nm = 0.45;
      spec.pixel_size_nm = 0.015;
      spec.dark_field = dark_field;
      spec.with_defects = true;
      const std::vector<double> v = Values(Image(spec, 128, 9));
      // HAADF columns on a dark background; bright-field phase contrast is weaker.
      EXPECT_GT(std::sqrt(Variance(v)), (dark_field ? 0.2 : 0.04) * Mean(v))
          << int(structure) << dark_field;
    }
  }
}

TEST(SceneTest, EveryStructureRepeatsWithItsProjectedCell) {
  // The projected cells on the zone axes of scene.cc, from crystallography:
  // rock salt, fcc and diamond [110]: a/sqrt2 x a; perovskite and bcc [001]: a x a;
  // hcp [0001]: the hexagonal cell a (120 degrees); wurtzite [11-20]: a sqrt3/2 x c,
  // c = 1.602 a. Every strong peak of the image's spectrum lies on the cell's
  // reciprocal lattice.
  const double a = 0.45, pixel = 0.015;
  const size_t n = 256;
  struct Cell {
    CrystalStructure structure;
    double a1x, a1y, a2x, a2y;
  };
  const double r2 = std::sqrt(2.0), r3 = std::sqrt(3.0);
  for (const Cell& cell :
       std::vector<Cell>{{CrystalStructure::kRockSalt, a / r2, 0, 0, a},
                         {CrystalStructure::kPerovskite, a, 0, 0, a},
                         {CrystalStructure::kFcc, a / r2, 0, 0, a},
                         {CrystalStructure::kBcc, a, 0, 0, a},
                         {CrystalStructure::kHcp, a, 0, -a / 2, a * r3 / 2},
                         {CrystalStructure::kDiamond, a / r2, 0, 0, a},
                         {CrystalStructure::kWurtzite, a * r3 / 2, 0, 0, 1.602 * a}}) {
    SceneSpec spec;
    spec.kind = SceneKind::kAtomicLattice;
    spec.structure = cell.structure;
    spec.lattice_constant_nm = a;
    spec.pixel_size_nm = pixel;
    const std::vector<Peak> peaks =
        SpectrumPeaks(PowerSpectrum(Values(Image(spec, int64_t(n), 2)), n), n, 6.0, 6);
    ASSERT_EQ(peaks.size(), 6u);
    for (const Peak& peak : peaks) {
      // Weak peaks may be scan-jitter sidebands of strong ones.
      if (peak.power < 0.1 * peaks[0].power) continue;
      // g in 1/nm; its components along the cell vectors are the indices h, k.
      const double gx = peak.kx / (double(n) * pixel), gy = peak.ky / (double(n) * pixel);
      const double h = gx * cell.a1x + gy * cell.a1y, k = gx * cell.a2x + gy * cell.a2y;
      const double det = cell.a1x * cell.a2y - cell.a1y * cell.a2x;
      // The nearest reciprocal lattice point round(h) b1 + round(k) b2, in bins.
      const double hr = std::round(h), kr = std::round(k);
      const double px = (hr * cell.a2y - kr * cell.a1y) / det,
                   py = (-hr * cell.a2x + kr * cell.a1x) / det;
      EXPECT_LT(std::hypot(gx - px, gy - py) * double(n) * pixel, 1.0)
          << int(cell.structure) << " peak " << peak.kx << ", " << peak.ky;
    }
  }
}

TEST(SceneTest, RockSaltColumnsAlternateInZContrast) {
  // Rock salt [110]: Pb and Se columns alternate along x at a / (2 sqrt 2); with
  // Z^1.7 contrast the pattern repeats every a / sqrt 2, so that frequency
  // (256 * 0.02 / (0.612 / sqrt 2) = 11.8 cycles) is present along x.
  SceneSpec spec;
  spec.kind = SceneKind::kAtomicLattice;
  spec.structure = CrystalStructure::kRockSalt;
  spec.lattice_constant_nm = 0.612;
  spec.pixel_size_nm = 0.02;
  spec.elements = {"Pb", "Se"};
  const size_t n = 256;
  const std::vector<double> power = PowerSpectrum(Values(Image(spec, int64_t(n), 4)), n);
  auto power_at = [&](double kx, double ky) {
    double best = 0.0;
    for (int dy = -1; dy <= 1; ++dy) {
      for (int dx = -1; dx <= 1; ++dx) {
        const int x = (int(std::lround(kx)) + dx + int(n)) % int(n);
        const int y = (int(std::lround(ky)) + dy + int(n)) % int(n);
        best = std::max(best, power[size_t(y) * n + size_t(x)]);
      }
    }
    return best;
  };
  const double f_pair = double(n) * 0.02 / (0.612 / std::sqrt(2.0));  // Pb-Se period along x
  const double f_cell = double(n) * 0.02 / 0.612;                     // along y
  // (1,1) of the a/sqrt2 x a cell exists only because Pb and Se differ.
  const double mixed = power_at(f_pair, f_cell);
  spec.elements = {"Se", "Se"};
  const std::vector<double> same = PowerSpectrum(Values(Image(spec, int64_t(n), 4)), n);
  double same_mixed = 0.0;
  for (int dy = -1; dy <= 1; ++dy) {
    for (int dx = -1; dx <= 1; ++dx) {
      const int x = (int(std::lround(f_pair)) + dx + int(n)) % int(n);
      const int y = (int(std::lround(f_cell)) + dy + int(n)) % int(n);
      same_mixed = std::max(same_mixed, same[size_t(y) * n + size_t(x)]);
    }
  }
  EXPECT_GT(mixed, 20.0 * same_mixed);
}

// ------------------------------------------------------------------ particles

struct Components {
  int count = 0;
  double mean_diameter = 0.0;
};

// Connected components of pixels above `threshold` (4-connected), ignoring
// specks smaller than `min_area`.
Components Label(const std::vector<double>& image, int64_t n, double threshold, int64_t min_area) {
  std::vector<int> label(image.size(), 0);
  Components out;
  double diameters = 0.0;
  for (int64_t start = 0; start < n * n; ++start) {
    if (label[size_t(start)] != 0 || image[size_t(start)] <= threshold) continue;
    int64_t area = 0;
    std::queue<int64_t> queue;
    queue.push(start);
    label[size_t(start)] = 1;
    while (!queue.empty()) {
      const int64_t i = queue.front();
      queue.pop();
      ++area;
      const int64_t x = i % n, y = i / n;
      const int64_t next[4] = {x > 0 ? i - 1 : -1, x + 1 < n ? i + 1 : -1, y > 0 ? i - n : -1,
                               y + 1 < n ? i + n : -1};
      for (int64_t j : next) {
        if (j >= 0 && label[size_t(j)] == 0 && image[size_t(j)] > threshold) {
          label[size_t(j)] = 1;
          queue.push(j);
        }
      }
    }
    if (area < min_area) continue;
    ++out.count;
    diameters += 2.0 * std::sqrt(double(area) / kPi);
  }
  out.mean_diameter = out.count ? diameters / out.count : 0.0;
  return out;
}

std::vector<double> BoxSmooth(const std::vector<double>& image, int64_t n) {
  std::vector<double> out(image.size());
  for (int64_t y = 0; y < n; ++y) {
    for (int64_t x = 0; x < n; ++x) {
      double s = 0.0;
      int c = 0;
      for (int64_t dy = -1; dy <= 1; ++dy) {
        for (int64_t dx = -1; dx <= 1; ++dx) {
          const int64_t xx = x + dx, yy = y + dy;
          if (xx < 0 || yy < 0 || xx >= n || yy >= n) continue;
          s += image[size_t(yy * n + xx)];
          ++c;
        }
      }
      out[size_t(y * n + x)] = s / c;
    }
  }
  return out;
}

double Percentile(std::vector<double> v, double q) {
  const size_t k = std::min(v.size() - 1, size_t(q * double(v.size())));
  std::nth_element(v.begin(), v.begin() + std::ptrdiff_t(k), v.end());
  return v[k];
}

TEST(SceneTest, ParticlesCountAndSizeMatchTheSpec) {
  // 20 spheres of 5 nm at 0.2 nm per pixel: 25 pixels across.
  const int64_t n = 256;
  for (bool dark_field : {true, false}) {
    for (uint64_t seed : {1, 2}) {
      SceneSpec spec;
      spec.kind = SceneKind::kNanoparticles;
      spec.pixel_size_nm = 0.2;
      spec.particle_diameter_nm = 5.0;
      spec.particle_size_spread = 0.1;
      spec.particle_count = 20;
      spec.dark_field = dark_field;
      spec.structure = CrystalStructure::kFcc;
      spec.lattice_constant_nm = 0.408;
      spec.elements = {"Au"};
      std::vector<double> image = BoxSmooth(Values(Image(spec, n, seed)), n);
      if (!dark_field) {
        for (double& v : image) v = -v;  // particles dark on a bright support
      }
      const double background = Percentile(image, 0.5);
      const double particles = Percentile(image, 0.995);
      const Components c = Label(image, n, background + 0.3 * (particles - background), 30);
      EXPECT_GE(c.count, 17) << dark_field << seed;
      EXPECT_LE(c.count, 20) << dark_field << seed;
      EXPECT_NEAR(c.mean_diameter, 25.0, 0.2 * 25.0) << dark_field << seed;
    }
  }
}

TEST(SceneTest, EveryParticleShapeRenders) {
  for (ParticleShape shape : {ParticleShape::kSphere, ParticleShape::kCube, ParticleShape::kRod,
                              ParticleShape::kTriangle, ParticleShape::kCoreShell}) {
    SceneSpec spec;
    spec.kind = SceneKind::kNanoparticles;
    spec.pixel_size_nm = 0.25;
    spec.particle_diameter_nm = 4.0;
    spec.particle_count = 6;
    spec.particle_shape = shape;
    const int64_t n = 192;
    std::vector<double> image = BoxSmooth(Values(Image(spec, n, 3)), n);
    const double background = Percentile(image, 0.5);
    const double particles = Percentile(image, 0.995);
    EXPECT_GT(particles, 2.0 * background) << int(shape);
    const Components c = Label(image, n, background + 0.3 * (particles - background), 10);
    EXPECT_GE(c.count, 4) << int(shape);
    EXPECT_LE(c.count, 6) << int(shape);
  }
}

// ------------------------------------------------------------------ diffraction

// The brightest pixel: the direct beam.
std::pair<double, double> BrightestPixel(const std::vector<double>& image, int64_t n) {
  const size_t i = size_t(std::max_element(image.begin(), image.end()) - image.begin());
  return {double(i % size_t(n)), double(i / size_t(n))};
}

// The intensity at (x, y) above the local background: the maximum within 2
// pixels minus the median of a ring 5-8 pixels out.
double SpotContrast(const std::vector<double>& image, int64_t n, double x, double y) {
  double peak = 0.0;
  std::vector<double> ring;
  for (int64_t dy = -8; dy <= 8; ++dy) {
    for (int64_t dx = -8; dx <= 8; ++dx) {
      const int64_t xx = int64_t(std::lround(x)) + dx, yy = int64_t(std::lround(y)) + dy;
      if (xx < 0 || yy < 0 || xx >= n || yy >= n) continue;
      const double r = std::hypot(double(dx), double(dy));
      const double v = image[size_t(yy * n + xx)];
      if (r <= 2.0) peak = std::max(peak, v);
      if (r >= 5.0 && r <= 8.0) ring.push_back(v);
    }
  }
  return peak - Percentile(ring, 0.5);
}

TEST(SceneTest, SpotPatternHasDirectBeamAtCentreAndReflectionsOnTheReciprocalLattice) {
  // Rock salt on [110]: the projected cell is a/sqrt2 x a, so g(h,k) = (h sqrt2 / a,
  // k / a). Allowed: h, k both even or both odd (111 and 002 types); (1,0) and
  // (0,1) are forbidden. At 0.05 1/nm per pixel with a = 0.6 nm: (1,1) at
  // (47.1, 33.3) px, (2,0) at (94.3, 0), (0,2) at (0, 66.7).
  SceneSpec spec;
  spec.kind = SceneKind::kSpotDiffraction;
  spec.structure = CrystalStructure::kRockSalt;
  spec.lattice_constant_nm = 0.6;
  spec.pixel_size_nm = 0.05;
  spec.elements = {"Pb", "Se"};
  const int64_t n = 256;
  for (uint64_t seed : {1, 2, 3}) {
    const std::vector<double> image = Values(Image(spec, n, seed));
    const auto [cx, cy] = BrightestPixel(image, n);
    EXPECT_NEAR(cx, 128.0, 3.0);
    EXPECT_NEAR(cy, 128.0, 3.0);
    const double gx = std::sqrt(2.0) / 0.6 / 0.05;
    const double gy = 1.0 / 0.6 / 0.05;
    double weakest_allowed = 1e300;
    for (auto [h, k] : std::vector<std::pair<int, int>>{
             {1, 1}, {-1, 1}, {1, -1}, {-1, -1}, {2, 0}, {-2, 0}, {0, 2}, {0, -2}}) {
      weakest_allowed = std::min(weakest_allowed, SpotContrast(image, n, cx + h * gx, cy - k * gy));
    }
    double strongest_forbidden = 0.0;
    for (auto [h, k] : std::vector<std::pair<int, int>>{{1, 0}, {-1, 0}, {0, 1}, {0, -1}}) {
      strongest_forbidden =
          std::max(strongest_forbidden, SpotContrast(image, n, cx + h * gx, cy - k * gy));
    }
    const double background = Percentile(image, 0.5);
    EXPECT_GT(weakest_allowed, 0.2 * background) << seed;
    EXPECT_GT(weakest_allowed, 8.0 * strongest_forbidden + 1.0) << seed;
  }
}

TEST(SceneTest, RingPatternRadiiAreTheAllowedSpacingsOfFcc) {
  // Gold, a = 0.408 nm: fcc allows (111), (200), (220), (311); at 0.06 1/nm per
  // pixel the rings lie at sqrt(h^2 + k^2 + l^2) / a / 0.06 pixels; (100) and
  // (110) are forbidden.
  SceneSpec spec;
  spec.kind = SceneKind::kRingDiffraction;
  spec.structure = CrystalStructure::kFcc;
  spec.lattice_constant_nm = 0.408;
  spec.pixel_size_nm = 0.06;
  spec.elements = {"Au"};
  const int64_t n = 256;
  auto radius = [](double s2) { return std::sqrt(s2) / 0.408 / 0.06; };
  for (uint64_t seed : {1, 2}) {
    const std::vector<double> image = Values(Image(spec, n, seed));
    auto [cx, cy] = BrightestPixel(image, n);
    // Refine the centre with the direct beam's centroid.
    double sx = 0.0, sy = 0.0, sw = 0.0;
    const double floor_level = Percentile(image, 0.5);
    for (int64_t y = int64_t(cy) - 4; y <= int64_t(cy) + 4; ++y) {
      for (int64_t x = int64_t(cx) - 4; x <= int64_t(cx) + 4; ++x) {
        const double w = std::max(0.0, image[size_t(y * n + x)] - floor_level);
        sx += w * double(x);
        sy += w * double(y);
        sw += w;
      }
    }
    cx = sx / sw;
    cy = sy / sw;
    // Radial mean profile in half-pixel bins.
    std::vector<double> sum(400, 0.0), count(400, 0.0);
    for (int64_t y = 0; y < n; ++y) {
      for (int64_t x = 0; x < n; ++x) {
        const size_t b = size_t(2.0 * std::hypot(double(x) - cx, double(y) - cy));
        if (b < sum.size()) {
          sum[b] += image[size_t(y * n + x)];
          count[b] += 1.0;
        }
      }
    }
    auto profile = [&](double r) {
      const size_t b = size_t(2.0 * r);
      return count[b] > 0 ? sum[b] / count[b] : 0.0;
    };
    auto local_max_near = [&](double r) {
      double best = 0.0, where = 0.0;
      for (double q = r - 2.0; q <= r + 2.0; q += 0.5) {
        if (profile(q) > best) {
          best = profile(q);
          where = q;
        }
      }
      return std::make_pair(where, best);
    };
    for (double s2 : {3.0, 4.0, 8.0}) {
      const auto [where, value] = local_max_near(radius(s2));
      EXPECT_NEAR(where, radius(s2), 1.5) << "ring " << s2 << " seed " << seed;
    }
    // Each ring stands above the profile's minimum just inside it; at the
    // forbidden (110) spacing there is no ring.
    for (double s2 : {3.0, 4.0, 8.0}) {
      double inside = 1e300;
      for (double q = radius(s2) - 7.0; q <= radius(s2) - 3.0; q += 0.5)
        inside = std::min(inside, profile(q));
      EXPECT_GT(local_max_near(radius(s2)).second, 1.05 * inside)
          << "ring " << s2 << " seed " << seed;
    }
    const double forbidden = profile(radius(2.0));
    EXPECT_LT(forbidden, 1.05 * std::max(profile(radius(2.0) - 3.0), profile(radius(2.0) + 3.0)));
  }
}

// ------------------------------------------------------------------ SEM

TEST(SceneTest, SemTexturesHaveContrast) {
  SceneSpec spec;
  spec.kind = SceneKind::kSemTexture;
  spec.pixel_size_nm = 5.0;
  spec.particle_diameter_nm = 100.0;
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    const std::vector<double> v = Values(Image(spec, 128, seed));
    EXPECT_GT(std::sqrt(Variance(v)), 0.1 * Mean(v)) << seed;
  }
}

// ------------------------------------------------------------------ quality

// The share of an image's signal power (white noise floor, measured beyond 100
// cycles, removed; noise is added after any blur) at 16-60 cycles, i.e. in
// details of 4-16 pixels. Independent of the exposure's gain.
double HighFrequencyShare(const std::vector<double>& image, size_t n) {
  const std::vector<double> power = PowerSpectrum(image, n);
  double floor_sum = 0.0, floor_bins = 0.0;
  for (size_t i = 0; i < n * n; ++i) {
    const double r = std::hypot(Signed(i % n, n), Signed(i / n, n));
    if (r >= 100.0 && r <= 127.0) {
      floor_sum += power[i];
      floor_bins += 1.0;
    }
  }
  const double noise = floor_sum / floor_bins;
  double high = 0.0, all = 0.0;
  for (size_t i = 0; i < n * n; ++i) {
    const double r = std::hypot(Signed(i % n, n), Signed(i / n, n));
    if (r < 1.0 || r > 60.0) continue;
    all += power[i] - noise;
    if (r >= 16.0) high += power[i] - noise;
  }
  return high / all;
}

TEST(SceneTest, QualityVariantsDifferMeasurably) {
  const size_t n = 256;
  SceneSpec spec = Perovskite(0.02);
  const std::vector<double> good = Values(Image(spec, int64_t(n), 21));

  spec.quality = Quality::kBlank;
  const std::vector<double> blank = Values(Image(spec, int64_t(n), 21));
  EXPECT_LT(Variance(blank), 0.01 * Variance(good));
  EXPECT_LT(Mean(blank), 0.2 * Mean(good));

  spec.quality = Quality::kSaturated;
  const std::vector<double> saturated = Values(Image(spec, int64_t(n), 21));
  const double clipped =
      double(std::count(saturated.begin(), saturated.end(), 65535.0)) / double(saturated.size());
  EXPECT_GT(clipped, 0.3);
  EXPECT_LT(double(std::count(good.begin(), good.end(), 65535.0)) / double(good.size()), 0.01);

  spec.quality = Quality::kOutOfFocus;
  const std::vector<double> blurred = Values(Image(spec, int64_t(n), 21));
  EXPECT_LT(HighFrequencyShare(blurred, n), 0.5 * HighFrequencyShare(good, n));

  // Low dose: neighbouring pixels differ more, relative to the image's contrast.
  auto roughness = [n](const std::vector<double>& v) {
    double s = 0.0;
    for (size_t i = 1; i < v.size(); ++i) {
      if (i % n) s += (v[i] - v[i - 1]) * (v[i] - v[i - 1]);
    }
    return s / double(v.size()) / Variance(v);
  };
  spec.quality = Quality::kVeryNoisy;
  const std::vector<double> noisy = Values(Image(spec, int64_t(n), 21));
  EXPECT_GT(roughness(noisy), 1.5 * roughness(good));
}

TEST(SceneTest, DriftDistortsTheLattice) {
  // At 0.04 nm per pixel the SrTiO3 lattice repeats every 9.8 pixels (26.2
  // cycles); drift stretches the slow axis by >= 12% and shears the fast one,
  // moving the reciprocal lattice by several bins.
  const size_t n = 256;
  const double f0 = double(n) * 0.04 / 0.3905;
  for (uint64_t seed : {1, 2, 3}) {
    SceneSpec spec = Perovskite(0.04);
    const std::vector<Peak> good =
        SpectrumPeaks(PowerSpectrum(Values(Image(spec, int64_t(n), seed)), n), n, 10.0, 2);
    spec.quality = Quality::kDrifted;
    const std::vector<Peak> drifted =
        SpectrumPeaks(PowerSpectrum(Values(Image(spec, int64_t(n), seed)), n), n, 10.0, 2);
    ASSERT_EQ(good.size(), 2u);
    ASSERT_EQ(drifted.size(), 2u);
    double good_worst = 0.0, drifted_worst = 0.0;
    for (const Peak& p : good)
      good_worst = std::max(good_worst, DistanceToSquareLattice(p, f0, 0.0));
    for (const Peak& p : drifted)
      drifted_worst = std::max(drifted_worst, DistanceToSquareLattice(p, f0, 0.0));
    EXPECT_LT(good_worst, 1.0) << seed;
    EXPECT_GT(drifted_worst, 1.5) << seed;
  }
}

// ------------------------------------------------------------------ spectra

TEST(SceneTest, TablesHoldTheTabulatedEnergies) {
  // Reference values (Bearden 1967; EELS Atlas): Ka of O, Si, Fe, Cu; La of Au;
  // Ma of Pb; K edges of C and O; L3 of Ti and Fe.
  auto has = [](const std::vector<double>& v, double x, double tolerance) {
    return std::any_of(v.begin(), v.end(), [&](double e) { return std::abs(e - x) <= tolerance; });
  };
  EXPECT_TRUE(has(XrayLinesKeV("O"), 0.525, 0.002));
  EXPECT_TRUE(has(XrayLinesKeV("Si"), 1.740, 0.002));
  EXPECT_TRUE(has(XrayLinesKeV("Fe"), 6.404, 0.002));
  EXPECT_TRUE(has(XrayLinesKeV("Cu"), 8.048, 0.002));
  EXPECT_TRUE(has(XrayLinesKeV("Cu"), 0.930, 0.002));
  EXPECT_TRUE(has(XrayLinesKeV("Au"), 9.713, 0.002));
  EXPECT_TRUE(has(XrayLinesKeV("Au"), 2.123, 0.002));
  EXPECT_TRUE(has(XrayLinesKeV("Pb"), 2.346, 0.002));
  EXPECT_FALSE(has(XrayLinesKeV("Au"), 68.8, 1.0));  // outside 0.1-20 keV
  EXPECT_TRUE(has(EelsEdgesEv("C"), 284.0, 1.0));
  EXPECT_TRUE(has(EelsEdgesEv("O"), 532.0, 1.0));
  EXPECT_TRUE(has(EelsEdgesEv("Ti"), 456.0, 1.0));
  EXPECT_TRUE(has(EelsEdgesEv("Fe"), 708.0, 1.0));
  EXPECT_TRUE(XrayLinesKeV("Xx").empty());
  EXPECT_TRUE(EelsEdgesEv("Xx").empty());
  for (const char* symbol : {"C",  "N",  "O",  "F",  "Na", "Mg", "Al", "Si", "P",  "S",  "Cl", "K",
                             "Ca", "Ti", "V",  "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge",
                             "As", "Se", "Sr", "Y",  "Zr", "Nb", "Mo", "Ag", "Cd", "In", "Sn", "Te",
                             "Ba", "La", "Ce", "Hf", "Ta", "W",  "Pt", "Au", "Pb", "Bi"}) {
    EXPECT_FALSE(XrayLinesKeV(symbol).empty()) << symbol;
    EXPECT_FALSE(EelsEdgesEv(symbol).empty()) << symbol;
  }
}

double MedianOf(const std::vector<double>& counts, int64_t c0, int64_t c1) {
  std::vector<double> v;
  for (int64_t c = std::max<int64_t>(0, c0); c <= std::min<int64_t>(int64_t(counts.size()) - 1, c1);
       ++c) {
    v.push_back(counts[size_t(c)]);
  }
  return Percentile(v, 0.5);
}

TEST(SceneTest, EdsPeaksSitAtTheLinesOfTheGivenElementsOnly) {
  SceneSpec spec;
  spec.kind = SceneKind::kEdsSpectrum;
  spec.pixel_size_nm = 10.0;  // eV per channel
  spec.elements = {"Fe", "Cu", "Si", "O"};
  const int64_t channels = 2048;
  for (uint64_t seed : {1, 2, 3}) {
    const std::vector<double> counts = Spectrum(spec, channels, seed);
    for (const std::string& element : spec.elements) {
      for (double kev : XrayLinesKeV(element)) {
        const int64_t c = int64_t(std::lround(kev * 100.0));
        int64_t best = c - 5;
        for (int64_t k = c - 5; k <= c + 5; ++k) {
          if (counts[size_t(k)] > counts[size_t(best)]) best = k;
        }
        const double background =
            std::min(MedianOf(counts, c - 40, c - 20), MedianOf(counts, c + 20, c + 40));
        EXPECT_LE(std::abs(best - c), 2) << element << " " << kev << " seed " << seed;
        EXPECT_GT(counts[size_t(best)], 1.3 * background + 5.0 * std::sqrt(background) + 10.0)
            << element << " " << kev << " seed " << seed;
      }
    }
    for (const char* missing : {"Ti", "Au", "Zn", "Ca"}) {
      for (double kev : XrayLinesKeV(missing)) {
        const int64_t c = int64_t(std::lround(kev * 100.0));
        const double here =
            (counts[size_t(c - 1)] + counts[size_t(c)] + counts[size_t(c + 1)]) / 3.0;
        const double background =
            std::max(MedianOf(counts, c - 40, c - 20), MedianOf(counts, c + 20, c + 40));
        EXPECT_LT(here, 1.1 * background + 5.0 * std::sqrt(background) + 5.0)
            << missing << " " << kev;
      }
    }
  }
}

// Mean counts over [e0, e1] eV divided by the pre-edge background there, as
// EELS analysis does it: a power law A E^-r fitted (log-log least squares) to
// [onset - 40, onset - 5] eV and extrapolated.
double OverBackground(const std::vector<double>& counts, double width_ev, double onset, double e0,
                      double e1) {
  double sx = 0.0, sy = 0.0, sxx = 0.0, sxy = 0.0, n = 0.0;
  for (int64_t c = int64_t((onset - 40.0) / width_ev); c <= int64_t((onset - 5.0) / width_ev);
       ++c) {
    const double x = std::log(double(c) * width_ev);
    const double y = std::log(std::max(counts[size_t(c)], 0.5));
    sx += x;
    sy += y;
    sxx += x * x;
    sxy += x * y;
    n += 1.0;
  }
  const double slope = (n * sxy - sx * sy) / (n * sxx - sx * sx);
  const double intercept = (sy - slope * sx) / n;
  double measured = 0.0, extrapolated = 0.0;
  for (int64_t c = int64_t(e0 / width_ev); c <= int64_t(e1 / width_ev); ++c) {
    measured += counts[size_t(c)];
    extrapolated += std::exp(intercept + slope * std::log(double(c) * width_ev));
  }
  return measured / extrapolated;
}

TEST(SceneTest, EelsHasZeroLossAndEdgesAtTheOnsetsOfTheGivenElementsOnly) {
  SceneSpec spec;
  spec.kind = SceneKind::kEelsSpectrum;
  spec.pixel_size_nm = 0.5;  // eV per channel
  spec.elements = {"C", "Ti", "O", "Fe"};
  const int64_t channels = 2048;  // 0-1024 eV
  for (uint64_t seed : {1, 2, 3}) {
    const std::vector<double> counts = Spectrum(spec, channels, seed);
    const size_t zlp = size_t(std::max_element(counts.begin(), counts.end()) - counts.begin());
    EXPECT_LE(zlp, 2u);
    // A plasmon: a maximum between 10 and 30 eV well above the counts at 60 eV.
    EXPECT_GT(*std::max_element(counts.begin() + 20, counts.begin() + 60), 3.0 * counts[120]);
    // C K, Ti L3, O K, Fe L3: a rise over the extrapolated background just above
    // the onset, none just below it.
    for (double onset : {284.0, 456.0, 532.0, 708.0}) {
      EXPECT_GT(OverBackground(counts, 0.5, onset, onset + 3.0, onset + 30.0), 1.15)
          << onset << " seed " << seed;
      EXPECT_LT(OverBackground(counts, 0.5, onset, onset - 20.0, onset - 4.0), 1.05)
          << onset << " seed " << seed;
    }
    for (double onset : {401.0, 855.0}) {  // N K and Ni L3: absent
      EXPECT_LT(OverBackground(counts, 0.5, onset, onset + 3.0, onset + 30.0), 1.1)
          << onset << " seed " << seed;
    }
  }
}

TEST(SceneTest, SpectrumQualityVariants) {
  SceneSpec spec;
  spec.kind = SceneKind::kEelsSpectrum;
  spec.pixel_size_nm = 0.5;
  spec.elements = {"O"};
  spec.quality = Quality::kSaturated;
  const std::vector<double> saturated = Spectrum(spec, 1024, 1);
  EXPECT_GE(std::count(saturated.begin(), saturated.end(), 65535.0), 3);
  spec.quality = Quality::kBlank;
  const std::vector<double> blank = Spectrum(spec, 1024, 1);
  EXPECT_LT(*std::max_element(blank.begin(), blank.end()), 30.0);
  spec.kind = SceneKind::kEdsSpectrum;
  spec.pixel_size_nm = 10.0;
  spec.quality = Quality::kVeryNoisy;
  const std::vector<double> noisy = Spectrum(spec, 1024, 1);
  spec.quality = Quality::kGood;
  const std::vector<double> good = Spectrum(spec, 1024, 1);
  EXPECT_LT(std::accumulate(noisy.begin(), noisy.end(), 0.0),
            0.05 * std::accumulate(good.begin(), good.end(), 0.0));
}

// Correlation over the scan of two elements' line counts.
double LineMapCorrelation(const NdArray& cube, double width_ev, double kev_a, double kev_b) {
  const int64_t h = cube.shape[0], w = cube.shape[1], channels = cube.shape[2];
  const std::vector<double> v = Values(cube);
  auto line_map = [&](double kev) {
    std::vector<double> map(size_t(h * w), 0.0);
    const int64_t c = int64_t(std::lround(kev * 1000.0 / width_ev));
    for (int64_t p = 0; p < h * w; ++p) {
      for (int64_t k = c - 6; k <= c + 6; ++k) map[size_t(p)] += v[size_t(p * channels + k)];
    }
    return map;
  };
  const std::vector<double> a = line_map(kev_a), b = line_map(kev_b);
  const double ma = Mean(a), mb = Mean(b);
  double sab = 0.0, saa = 0.0, sbb = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  return sab / std::sqrt(saa * sbb);
}

TEST(SceneTest, SpectrumImagesMapElementsOverParticlesOrColumns) {
  SceneSpec spec;
  spec.kind = SceneKind::kEdsSpectrum;
  spec.pixel_size_nm = 10.0;
  spec.elements = {"Pb", "Se"};
  spec.particle_count = 6;
  spec.structure = CrystalStructure::kRockSalt;
  Result<NdArray> particles = RenderSpectrumImage(spec, 32, 32, 1024, DType::kFloat32, 5);
  ASSERT_TRUE(particles.ok()) << particles.status().message();
  EXPECT_EQ(particles->shape, (std::vector<int64_t>{32, 32, 1024}));
  // Pb M (2.35 keV) and Se L (1.38 keV) come from the same particles.
  EXPECT_GT(LineMapCorrelation(*particles, 10.0, 2.346, 1.379), 0.5);
  // Atomic-resolution mapping: Pb and Se sit on different columns.
  spec.particle_count = 0;
  Result<NdArray> columns = RenderSpectrumImage(spec, 32, 32, 1024, DType::kFloat32, 5);
  ASSERT_TRUE(columns.ok());
  EXPECT_LT(LineMapCorrelation(*columns, 10.0, 2.346, 1.379), 0.1);
  // Core-shell: core and shell elements anti-correlate against the particle map less.
  spec.kind = SceneKind::kEelsSpectrum;
  spec.pixel_size_nm = 1.0;
  spec.particle_count = 4;
  Result<NdArray> eels = RenderSpectrumImage(spec, 16, 16, 256, DType::kInt32, 5);
  ASSERT_TRUE(eels.ok());
  EXPECT_EQ(eels->shape, (std::vector<int64_t>{16, 16, 256}));
}

// ------------------------------------------------------------------ errors

TEST(SceneTest, InvalidArgumentsAreErrors) {
  SceneSpec image = Perovskite(0.02);
  SceneSpec eds;
  eds.kind = SceneKind::kEdsSpectrum;
  eds.pixel_size_nm = 10.0;
  eds.elements = {"Fe"};
  auto invalid = [](const Status& status) { return status.code() == ErrorCode::kInvalidArgument; };

  EXPECT_TRUE(invalid(RenderImage(eds, 64, 64, DType::kUInt16, 1).status()));
  EXPECT_TRUE(invalid(RenderImage(image, 7, 64, DType::kUInt16, 1).status()));
  EXPECT_TRUE(invalid(RenderImage(image, 64, 16385, DType::kUInt16, 1).status()));
  EXPECT_TRUE(invalid(RenderImage(image, 64, -1, DType::kUInt16, 1).status()));
  EXPECT_TRUE(invalid(RenderImage(image, 64, 64, DType::kFloat64, 1).status()));
  EXPECT_TRUE(invalid(RenderImage(image, 64, 64, DType::kRGB8, 1).status()));
  EXPECT_TRUE(invalid(RenderSpectrum(image, 64, DType::kFloat32, 1).status()));
  EXPECT_TRUE(invalid(RenderSpectrum(eds, 7, DType::kFloat32, 1).status()));
  EXPECT_TRUE(invalid(RenderSpectrum(eds, 64, DType::kInt16, 1).status()));
  EXPECT_TRUE(invalid(RenderSpectrumImage(eds, 0, 4, 64, DType::kFloat32, 1).status()));
  EXPECT_TRUE(invalid(RenderSpectrumImage(eds, 16384, 16384, 16384, DType::kFloat32, 1).status()));
  EXPECT_TRUE(invalid(RenderSpectrumImage(image, 4, 4, 64, DType::kFloat32, 1).status()));

  SceneSpec bad = image;
  bad.pixel_size_nm = std::nan("");
  EXPECT_TRUE(invalid(RenderImage(bad, 64, 64, DType::kUInt16, 1).status()));
  bad = image;
  bad.pixel_size_nm = 0.0;
  EXPECT_TRUE(invalid(RenderImage(bad, 64, 64, DType::kUInt16, 1).status()));
  bad = image;
  bad.pixel_size_nm = 1e-300;
  EXPECT_TRUE(invalid(RenderImage(bad, 64, 64, DType::kUInt16, 1).status()));
  bad = image;
  bad.lattice_constant_nm = -0.4;
  EXPECT_TRUE(invalid(RenderImage(bad, 64, 64, DType::kUInt16, 1).status()));
  bad = image;
  bad.rotation_deg = INFINITY;
  EXPECT_TRUE(invalid(RenderImage(bad, 64, 64, DType::kUInt16, 1).status()));
  bad = image;
  bad.elements = {"Sr", "Unobtainium"};
  const Status unknown = RenderImage(bad, 64, 64, DType::kUInt16, 1).status();
  EXPECT_TRUE(invalid(unknown));
  EXPECT_NE(unknown.message().find("Unobtainium"), std::string::npos);
  bad = image;
  bad.kind = SceneKind::kNanoparticles;
  bad.particle_count = -3;
  EXPECT_TRUE(invalid(RenderImage(bad, 64, 64, DType::kUInt16, 1).status()));
  bad.particle_count = 5;
  bad.particle_diameter_nm = 0.0;
  EXPECT_TRUE(invalid(RenderImage(bad, 64, 64, DType::kUInt16, 1).status()));
  bad.particle_diameter_nm = 1e300;
  EXPECT_TRUE(invalid(RenderImage(bad, 64, 64, DType::kUInt16, 1).status()));
  bad = image;
  bad.structure = static_cast<CrystalStructure>(42);
  EXPECT_TRUE(invalid(RenderImage(bad, 64, 64, DType::kUInt16, 1).status()));
  bad = image;
  bad.kind = static_cast<SceneKind>(99);
  EXPECT_TRUE(invalid(RenderImage(bad, 64, 64, DType::kUInt16, 1).status()));
  SceneSpec bad_eds = eds;
  bad_eds.elements = {"Fe", "Qq"};
  EXPECT_TRUE(invalid(RenderSpectrum(bad_eds, 64, DType::kFloat32, 1).status()));
  bad_eds = eds;
  bad_eds.pixel_size_nm = 5000.0;  // eV per channel
  EXPECT_TRUE(invalid(RenderSpectrum(bad_eds, 64, DType::kFloat32, 1).status()));
  bad_eds = eds;
  bad_eds.beam_energy_kev = -200.0;
  EXPECT_TRUE(invalid(RenderSpectrum(bad_eds, 64, DType::kFloat32, 1).status()));
}

TEST(SceneTest, ExtremeButValidScalesStayBounded) {
  // Columns far below a pixel, huge particles, spots closer than a pixel, an SEM
  // feature larger than the field: all render without blowing up.
  SceneSpec spec = Perovskite(5.0);
  EXPECT_TRUE(RenderImage(spec, 64, 64, DType::kUInt16, 1).ok());
  spec = Perovskite(0.0005);
  EXPECT_TRUE(RenderImage(spec, 64, 64, DType::kUInt16, 1).ok());
  spec.kind = SceneKind::kNanoparticles;
  spec.particle_diameter_nm = 100.0;
  spec.pixel_size_nm = 0.1;
  spec.particle_count = 1000;
  EXPECT_TRUE(RenderImage(spec, 64, 64, DType::kUInt16, 1).ok());
  spec.particle_diameter_nm = 0.3;  // far more particles than fit: placement stops when full
  spec.particle_count = 100000;
  EXPECT_TRUE(RenderImage(spec, 128, 128, DType::kUInt16, 1).ok());
  spec.kind = SceneKind::kSpotDiffraction;
  spec.pixel_size_nm = 100.0;
  EXPECT_TRUE(RenderImage(spec, 64, 64, DType::kUInt16, 1).ok());
  spec.pixel_size_nm = 0.0001;
  EXPECT_TRUE(RenderImage(spec, 64, 64, DType::kUInt16, 1).ok());
  spec.kind = SceneKind::kRingDiffraction;
  spec.pixel_size_nm = 50.0;
  EXPECT_TRUE(RenderImage(spec, 64, 64, DType::kUInt16, 1).ok());
  spec.kind = SceneKind::kSemTexture;
  spec.pixel_size_nm = 0.01;
  EXPECT_TRUE(RenderImage(spec, 64, 64, DType::kUInt16, 1).ok());
  // The limits of every scale at once (UBSan watches the conversions).
  for (SceneKind kind :
       {SceneKind::kAtomicLattice, SceneKind::kNanoparticles, SceneKind::kSpotDiffraction,
        SceneKind::kRingDiffraction, SceneKind::kSemTexture}) {
    for (double pixel : {1e-5, 1e6}) {
      for (double size : {1e-6, 1e5}) {
        SceneSpec extreme;
        extreme.kind = kind;
        extreme.pixel_size_nm = pixel;
        extreme.particle_diameter_nm = size;
        extreme.lattice_constant_nm = size < 1.0 ? 0.05 : 100.0;
        extreme.with_defects = true;
        EXPECT_TRUE(RenderImage(extreme, 32, 32, DType::kUInt8, 1).ok())
            << int(kind) << " " << pixel << " " << size;
      }
    }
  }
}

}  // namespace
}  // namespace scisearch::simulate
