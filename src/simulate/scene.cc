// Scene renderers: simple physical models of what a microscope records.
//
// Every renderer works in two steps. First it draws the noiseless signal of the
// scene as floats (atom columns, particles, spots, rings, SEM topography, spectral
// components), then a shared detector model applies the acquisition's quality
// (drift, defocus, blanking), the electron dose (Poisson shot noise) and the
// detector's gain, offset and clipping, and writes the requested dtype.
//
// Conventions (the facility plan relies on them when it writes axes and truth):
// - Image coordinates: pixel (row y, column x) has its centre at (x, y); row 0 is
//   the top. rotation_deg turns the crystal counter-clockwise as displayed.
// - Zone axes: rock salt [110] (pure cation and anion columns alternate; along
//   [001] every column holds both species), perovskite [001], fcc [110], bcc [001],
//   hcp [0001], diamond/zinc blende [110] (dumbbells), wurtzite [11-20]. For hcp and
//   wurtzite lattice_constant_nm is a; c/a is 1.633 and 1.602.
// - Species follow `elements` in site order: rock salt cation, anion; perovskite
//   A, B, O; diamond/zinc blende the two fcc sublattices; wurtzite cation, anion.
//   Missing species take the structure's defaults (PbSe, SrTiO3, Au, Fe, Ti, Si, ZnO).
// - with_defects: the seed picks vacancies, an edge dislocation or a grain
//   boundary for lattices; charging streaks for SEM (which also charge at random).
// - Diffraction: the pattern centre is within 2 pixels of (width / 2, height / 2);
//   pixel_size_nm is the reciprocal-space pixel (1/nm per pixel). uint8 patterns
//   are stored on a log scale, as export software writes them; wider types linear.
// - Full scale: the type's maximum for uint8, uint16 and int16; 65535 (a 16-bit
//   camera stored wider) for int32 and float32 images. Saturated images clip at it.
// - Spectra: channel i is at energy energy_offset_ev + i * pixel_size_nm (eV):
//   EDS with the detector's zero strobe at 0 eV, EELS with the zero-loss peak at 0 eV
//   (a high-dynamic-range spectrum, zero loss to core loss). Quality: out of focus
//   means poor energy resolution, drifted a shifted energy scale, saturated a
//   16-bit overflow (65535; EDS also piles up), blank a blanked beam.
// - Elements are symbols of the table below (C to Bi, 46 of them); any other is
//   an InvalidArgument error.
// - Spectrum images: particle_count > 0 gives a particle map (particles of the
//   given shape, sized to cover about a quarter of the scan; "C" maps to the
//   carbon support, core-shell particles put the first half of the other elements
//   in the core); particle_count == 0 gives an atomic-column map of `structure`
//   with each species' element on its own columns. Scans are 1-16384 pixels a
//   side, 8-16384 channels, at most 2^28 values in all.
//
// Speed: a 256 x 256 image renders in about 2 ms on one core. Gaussians are drawn
// separably within a few sigma of their centre; blurs are box filters; noise uses
// one 64-bit draw per pixel.

#include "simulate/scene.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <complex>
#include <cstring>
#include <limits>
#include <numeric>
#include <optional>
#include <string_view>

#include "simulate/random.h"

namespace scisearch::simulate {
namespace {

using formats::DType;
using formats::NdArray;

constexpr double kPi = 3.14159265358979323846;

// ------------------------------------------------------------------ elements

enum class EdgeShape {
  kAbrupt,   // K edges of light elements: a sharp sawtooth
  kSharp,    // white lines at the onset (L2,3 of 3d metals, M4,5 of lanthanides)
  kDelayed,  // the intensity rises over tens of eV (Cu L2,3, M4,5 of 4d/5d elements)
};

struct XrayLine {
  char family;    // 'K', 'L' or 'M'
  double kev;     // energy
  double weight;  // relative to the family's strongest line
};

struct Edge {
  double onset_ev;
  EdgeShape shape;
};

struct ElementRecord {
  std::string_view symbol;
  int z;
  std::vector<XrayLine> lines;
  std::vector<Edge> edges;  // major edges with onsets in 50-3000 eV
};

// X-ray line energies and weights and EELS edge onsets as tabulated by HyperSpy
// (hyperspy/misc/elements.py, from the NIST and EELS Atlas data), keeping lines of
// weight >= 0.02 and major edges of 50-3000 eV; edges closer than 3 eV merged.
// clang-format off
const std::vector<ElementRecord>& ElementTable() {
  static const std::vector<ElementRecord> table = {
      {"C", 6, {{'K', 0.2774, 1.000}}, {{284.0, EdgeShape::kAbrupt}}},
      {"N", 7, {{'K', 0.3924, 1.000}}, {{401.0, EdgeShape::kAbrupt}}},
      {"O", 8, {{'K', 0.5249, 1.000}}, {{532.0, EdgeShape::kAbrupt}}},
      {"F", 9, {{'K', 0.6768, 1.000}}, {{685.0, EdgeShape::kAbrupt}}},
      {"Na", 11, {{'K', 1.0410, 1.000}}, {{1072.0, EdgeShape::kAbrupt}}},
      {"Mg", 12, {{'K', 1.2536, 1.000}}, {{51.0, EdgeShape::kSharp}, {1305.0, EdgeShape::kAbrupt}}},
      {"Al", 13, {{'K', 1.4865, 1.000}}, {{73.0, EdgeShape::kSharp}, {1560.0, EdgeShape::kAbrupt}}},
      {"Si", 14,
       {{'K', 1.7397, 1.000}, {'K', 1.8389, 0.028}},
       {{99.2, EdgeShape::kSharp}, {1839.0, EdgeShape::kAbrupt}}},
      {"P", 15,
       {{'K', 2.0133, 1.000}, {'K', 2.1392, 0.050}},
       {{132.0, EdgeShape::kSharp}, {2146.0, EdgeShape::kAbrupt}}},
      {"S", 16, {{'K', 2.3072, 1.000}, {'K', 2.4643, 0.065}}, {{165.0, EdgeShape::kDelayed}}},
      {"Cl", 17, {{'K', 2.6224, 1.000}, {'K', 2.8156, 0.084}}, {{200.0, EdgeShape::kDelayed}}},
      {"K", 19, {{'K', 3.3138, 1.000}, {'K', 3.5896, 0.104}}, {{294.0, EdgeShape::kSharp}}},
      {"Ca", 20,
       {{'L', 0.3027, 1.000}, {'L', 0.3063, 0.230}, {'K', 3.6917, 1.000}, {'K', 4.0127, 0.112}},
       {{346.0, EdgeShape::kSharp}, {350.0, EdgeShape::kSharp}}},
      {"Ti", 22,
       {{'L', 0.3952, 1.000}, {'L', 0.4012, 0.491}, {'L', 0.4555, 0.694}, {'L', 0.5291, 0.166},
        {'K', 4.5109, 1.000}, {'K', 4.9318, 0.117}},
       {{456.0, EdgeShape::kSharp}, {462.0, EdgeShape::kSharp}}},
      {"V", 23,
       {{'L', 0.4464, 0.575}, {'L', 0.4540, 0.281}, {'L', 0.5129, 1.000}, {'K', 4.9522, 1.000},
        {'K', 5.4273, 0.122}},
       {{513.0, EdgeShape::kSharp}, {521.0, EdgeShape::kSharp}}},
      {"Cr", 24,
       {{'L', 0.5004, 0.690}, {'L', 0.5096, 0.235}, {'L', 0.5722, 1.000}, {'L', 0.6521, 0.031},
        {'K', 5.4147, 1.000}, {'K', 5.9467, 0.134}},
       {{575.0, EdgeShape::kSharp}, {584.0, EdgeShape::kSharp}}},
      {"Mn", 25,
       {{'L', 0.5564, 0.390}, {'L', 0.5675, 0.190}, {'L', 0.6332, 1.000}, {'L', 0.7204, 0.026},
        {'K', 5.8987, 1.000}, {'K', 6.4904, 0.125}},
       {{51.0, EdgeShape::kDelayed}, {640.0, EdgeShape::kSharp}, {651.0, EdgeShape::kSharp}}},
      {"Fe", 26,
       {{'L', 0.6152, 0.309}, {'L', 0.6282, 0.125}, {'L', 0.7045, 1.000}, {'L', 0.7921, 0.024},
        {'K', 6.4039, 1.000}, {'K', 7.0580, 0.127}},
       {{57.0, EdgeShape::kDelayed}, {708.0, EdgeShape::kSharp}, {721.0, EdgeShape::kSharp}}},
      {"Co", 27,
       {{'L', 0.6779, 0.216}, {'L', 0.6929, 0.083}, {'L', 0.7757, 1.000}, {'L', 0.8661, 0.024},
        {'K', 6.9303, 1.000}, {'K', 7.6494, 0.128}},
       {{59.0, EdgeShape::kDelayed}, {779.0, EdgeShape::kSharp}, {794.0, EdgeShape::kSharp}}},
      {"Ni", 28,
       {{'L', 0.7429, 0.141}, {'L', 0.7601, 0.097}, {'L', 0.8511, 1.000}, {'L', 0.8683, 0.168},
        {'K', 7.4781, 1.000}, {'K', 8.2647, 0.128}},
       {{68.0, EdgeShape::kDelayed}, {855.0, EdgeShape::kSharp}, {872.0, EdgeShape::kSharp}}},
      {"Cu", 29,
       {{'L', 0.8113, 0.084}, {'L', 0.9295, 1.000}, {'L', 0.9494, 0.032}, {'K', 8.0478, 1.000},
        {'K', 8.9053, 0.132}},
       {{74.0, EdgeShape::kDelayed}, {931.0, EdgeShape::kDelayed}, {951.0, EdgeShape::kDelayed}}},
      {"Zn", 30,
       {{'L', 0.8838, 0.060}, {'L', 0.9069, 0.037}, {'L', 1.0116, 1.000}, {'L', 1.0347, 0.168},
        {'K', 8.6389, 1.000}, {'K', 9.5720, 0.126}},
       {{1020.0, EdgeShape::kDelayed}, {1043.0, EdgeShape::kDelayed}}},
      {"Ga", 31,
       {{'L', 0.9573, 0.054}, {'L', 0.9842, 0.025}, {'L', 1.0980, 1.000}, {'L', 1.1249, 0.167},
        {'L', 1.1948, 0.046}, {'K', 9.2517, 1.000}, {'K', 10.2642, 0.129}},
       {{1115.0, EdgeShape::kDelayed}, {1142.0, EdgeShape::kDelayed}}},
      {"Ge", 32,
       {{'L', 1.0367, 0.051}, {'L', 1.0678, 0.020}, {'L', 1.1880, 1.000}, {'L', 1.2191, 0.167},
        {'L', 1.2935, 0.044}, {'K', 9.8864, 1.000}, {'K', 10.9823, 0.132}},
       {{1217.0, EdgeShape::kDelayed}, {1248.0, EdgeShape::kDelayed}}},
      {"As", 33,
       {{'L', 1.1196, 0.049}, {'L', 1.2819, 1.000}, {'L', 1.3174, 0.167}, {'L', 1.3860, 0.048},
        {'K', 10.5436, 1.000}, {'K', 11.7262, 0.146}},
       {{1323.0, EdgeShape::kDelayed}, {1359.0, EdgeShape::kDelayed}}},
      {"Se", 34,
       {{'L', 1.2043, 0.048}, {'L', 1.3791, 1.000}, {'L', 1.4195, 0.388}, {'L', 1.4920, 0.047},
        {'K', 11.2220, 1.000}, {'K', 12.4959, 0.150}},
       {{1436.0, EdgeShape::kDelayed}, {1476.0, EdgeShape::kDelayed}}},
      {"Sr", 38,
       {{'L', 1.5821, 0.043}, {'L', 1.8065, 1.000}, {'L', 1.8718, 0.380}, {'L', 1.9472, 0.047},
        {'K', 14.1650, 1.000}, {'K', 15.8355, 0.150}},
       {{134.0, EdgeShape::kDelayed}, {1940.0, EdgeShape::kSharp}, {2007.0, EdgeShape::kSharp}}},
      {"Y", 39,
       {{'L', 1.6864, 0.043}, {'L', 1.9226, 1.000}, {'L', 1.9959, 0.391}, {'L', 2.0722, 0.051},
        {'K', 14.9584, 1.000}, {'K', 16.7381, 0.150}},
       {{160.0, EdgeShape::kDelayed}, {2080.0, EdgeShape::kSharp}, {2155.0, EdgeShape::kSharp}}},
      {"Zr", 40,
       {{'L', 1.7920, 0.042}, {'L', 2.0423, 1.000}, {'L', 2.1243, 0.379}, {'L', 2.2011, 0.052},
        {'K', 15.7753, 1.000}, {'K', 17.6671, 0.150}},
       {{181.0, EdgeShape::kDelayed}, {2222.0, EdgeShape::kSharp}, {2307.0, EdgeShape::kSharp}}},
      {"Nb", 41,
       {{'L', 1.9021, 0.042}, {'L', 2.1659, 1.000}, {'L', 2.2573, 0.325}, {'L', 2.3347, 0.064},
        {'L', 2.3705, 0.033}, {'K', 16.6151, 1.000}, {'K', 18.6226, 0.150}},
       {{202.3, EdgeShape::kDelayed}, {2371.0, EdgeShape::kSharp}, {2465.0, EdgeShape::kSharp}}},
      {"Mo", 42,
       {{'L', 2.0156, 0.042}, {'L', 2.2932, 1.000}, {'L', 2.3948, 0.327}, {'L', 2.4732, 0.063},
        {'L', 2.5184, 0.045}, {'K', 17.4793, 1.000}, {'K', 19.6072, 0.150}},
       {{227.0, EdgeShape::kDelayed}, {2520.0, EdgeShape::kSharp}, {2625.0, EdgeShape::kSharp}}},
      {"Ag", 47,
       {{'L', 2.6336, 0.041}, {'L', 2.9844, 1.000}, {'L', 3.1509, 0.352}, {'L', 3.2034, 0.044},
        {'L', 3.2344, 0.074}, {'L', 3.3478, 0.117}, {'L', 3.5204, 0.037}, {'K', 22.1629, 1.000},
        {'K', 24.9426, 0.150}},
       {{367.0, EdgeShape::kDelayed}, {373.0, EdgeShape::kDelayed}}},
      {"Cd", 48,
       {{'L', 2.7673, 0.042}, {'L', 3.1338, 1.000}, {'L', 3.3165, 0.357}, {'L', 3.3673, 0.047},
        {'L', 3.4015, 0.077}, {'L', 3.5282, 0.129}, {'L', 3.7177, 0.042}, {'K', 23.1737, 1.000},
        {'K', 26.0947, 0.150}},
       {{404.0, EdgeShape::kDelayed}, {411.0, EdgeShape::kDelayed}}},
      {"In", 49,
       {{'L', 2.9045, 0.042}, {'L', 3.2870, 1.000}, {'L', 3.4872, 0.362}, {'L', 3.5353, 0.053},
        {'L', 3.5732, 0.088}, {'L', 3.7139, 0.137}, {'L', 3.9218, 0.045}, {'K', 24.2098, 1.000},
        {'K', 27.2756, 0.150}},
       {{443.0, EdgeShape::kDelayed}, {451.0, EdgeShape::kDelayed}}},
      {"Sn", 50,
       {{'L', 3.0450, 0.042}, {'L', 3.4440, 1.000}, {'L', 3.6628, 0.435}, {'L', 3.7083, 0.095},
        {'L', 3.7503, 0.155}, {'L', 3.9049, 0.147}, {'L', 4.1322, 0.058}, {'L', 4.3761, 0.032},
        {'K', 25.2713, 1.000}, {'K', 28.4857, 0.150}},
       {{485.0, EdgeShape::kDelayed}, {494.0, EdgeShape::kDelayed}}},
      {"Te", 52,
       {{'L', 3.3354, 0.042}, {'L', 3.7693, 1.000}, {'L', 4.0295, 0.432}, {'L', 4.0695, 0.091},
        {'L', 4.1205, 0.146}, {'L', 4.3016, 0.163}, {'L', 4.5722, 0.064}, {'L', 4.8290, 0.032},
        {'K', 27.4724, 1.000}, {'K', 30.9951, 0.150}},
       {{572.0, EdgeShape::kDelayed}, {582.0, EdgeShape::kDelayed}}},
      {"Ba", 56,
       {{'L', 3.9542, 0.043}, {'L', 4.4663, 1.000}, {'L', 4.8275, 0.430}, {'L', 4.8521, 0.089},
        {'L', 4.9266, 0.138}, {'L', 5.1571, 0.191}, {'L', 5.5311, 0.075}, {'L', 5.8091, 0.033},
        {'K', 32.1936, 1.000}, {'K', 36.3784, 0.150}},
       {{90.0, EdgeShape::kDelayed}, {781.0, EdgeShape::kSharp}, {796.0, EdgeShape::kSharp}}},
      {"La", 57,
       {{'M', 0.6403, 0.060}, {'M', 0.8162, 0.900}, {'M', 0.8173, 1.000}, {'M', 1.0245, 0.400},
        {'L', 4.1214, 0.043}, {'L', 4.6510, 1.000}, {'L', 5.0421, 0.426}, {'L', 5.0619, 0.087},
        {'L', 5.1429, 0.134}, {'L', 5.3838, 0.196}, {'L', 5.7917, 0.077}, {'L', 6.0749, 0.033},
        {'K', 33.4419, 1.000}, {'K', 37.8012, 0.150}},
       {{99.0, EdgeShape::kDelayed}, {832.0, EdgeShape::kSharp}, {849.0, EdgeShape::kSharp}}},
      {"Ce", 58,
       {{'M', 0.6761, 0.070}, {'M', 0.8154, 0.910}, {'M', 0.8455, 1.000}, {'M', 1.0754, 0.500},
        {'L', 4.2888, 0.044}, {'L', 4.8401, 1.000}, {'L', 5.2629, 0.430}, {'L', 5.2760, 0.087},
        {'L', 5.3634, 0.133}, {'L', 5.6134, 0.194}, {'L', 6.0542, 0.076}, {'L', 6.3416, 0.032},
        {'K', 34.7196, 1.000}, {'K', 39.2576, 0.150}},
       {{110.0, EdgeShape::kDelayed}, {883.0, EdgeShape::kSharp}, {901.0, EdgeShape::kSharp}}},
      {"Hf", 72,
       {{'M', 1.2813, 0.060}, {'M', 1.6446, 1.000}, {'M', 1.6993, 0.594}, {'M', 1.8939, 0.085},
        {'L', 6.9598, 0.051}, {'L', 7.8990, 1.000}, {'L', 8.9053, 0.102}, {'L', 9.0230, 0.462},
        {'L', 9.1631, 0.132}, {'L', 9.3470, 0.205}, {'L', 10.5156, 0.090}, {'L', 10.8903, 0.035},
        {'K', 55.7901, 1.000}, {'K', 63.2432, 0.150}},
       {{1662.0, EdgeShape::kDelayed}, {1716.0, EdgeShape::kDelayed}}},
      {"Ta", 73,
       {{'M', 1.7101, 1.000}, {'M', 1.7682, 0.594}, {'M', 1.9647, 0.085}, {'L', 7.1731, 0.051},
        {'L', 8.1460, 1.000}, {'L', 9.2128, 0.104}, {'L', 9.3429, 0.462}, {'L', 9.4875, 0.133},
        {'L', 9.6518, 0.208}, {'L', 10.8948, 0.091}, {'L', 11.2770, 0.035}, {'K', 57.5353, 1.000},
        {'K', 65.2224, 0.150}},
       {{1735.0, EdgeShape::kDelayed}, {1793.0, EdgeShape::kDelayed}}},
      {"W", 74,
       {{'M', 1.7756, 1.000}, {'M', 1.8351, 0.594}, {'M', 2.0356, 0.085}, {'L', 7.3872, 0.042},
        {'L', 8.3976, 1.000}, {'L', 9.5249, 0.056}, {'L', 9.6724, 0.368}, {'L', 9.8188, 0.071},
        {'L', 9.9614, 0.214}, {'L', 11.2852, 0.057}, {'L', 11.6745, 0.036}, {'K', 59.3182, 1.000},
        {'K', 67.2440, 0.150}},
       {{1809.0, EdgeShape::kDelayed}, {1872.0, EdgeShape::kDelayed}}},
      {"Pt", 78,
       {{'M', 2.0505, 1.000}, {'M', 2.1276, 0.594}, {'M', 2.3321, 0.085}, {'L', 8.2677, 0.055},
        {'L', 9.4421, 1.000}, {'L', 10.8534, 0.066}, {'L', 11.0707, 0.409}, {'L', 11.2345, 0.078},
        {'L', 11.2504, 0.218}, {'L', 12.9418, 0.084}, {'L', 13.3609, 0.022}, {'K', 66.8311, 1.000},
        {'K', 75.7494, 0.150}},
       {{2122.0, EdgeShape::kDelayed}, {2202.0, EdgeShape::kDelayed}}},
      {"Au", 79,
       {{'M', 2.1229, 1.000}, {'M', 2.2047, 0.594}, {'M', 2.4091, 0.085}, {'L', 8.4938, 0.056},
        {'L', 9.7130, 1.000}, {'L', 11.2050, 0.059}, {'L', 11.4425, 0.402}, {'L', 11.5848, 0.219},
        {'L', 11.6098, 0.069}, {'L', 13.3816, 0.084}, {'K', 68.8062, 1.000}, {'K', 77.9819, 0.150}},
       {{2206.0, EdgeShape::kDelayed}, {2291.0, EdgeShape::kDelayed}}},
      {"Pb", 82,
       {{'M', 2.3459, 1.000}, {'M', 2.4427, 0.641}, {'M', 2.6535, 0.218}, {'L', 9.1845, 0.059},
        {'L', 10.5512, 1.000}, {'L', 12.3066, 0.055}, {'L', 12.6144, 0.384}, {'L', 12.6223, 0.224},
        {'L', 12.7944, 0.060}, {'L', 14.7648, 0.083}, {'K', 74.9693, 1.000}, {'K', 84.9381, 0.150}},
       {{2484.0, EdgeShape::kDelayed}, {2586.0, EdgeShape::kDelayed}}},
      {"Bi", 83,
       {{'M', 2.4222, 1.000}, {'M', 2.5257, 0.641}, {'M', 2.7369, 0.218}, {'L', 9.4195, 0.060},
        {'L', 10.8390, 1.000}, {'L', 12.6912, 0.056}, {'L', 12.9786, 0.228}, {'L', 13.0235, 0.400},
        {'L', 13.2106, 0.061}, {'L', 15.2475, 0.080}, {'K', 77.1073, 1.000}, {'K', 87.3490, 0.150}},
       {{2580.0, EdgeShape::kDelayed}, {2688.0, EdgeShape::kDelayed}}},
  };
  return table;
}
// clang-format on

const ElementRecord* FindElement(std::string_view symbol) {
  for (const ElementRecord& record : ElementTable()) {
    if (record.symbol == symbol) return &record;
  }
  return nullptr;
}

// ------------------------------------------------------------------ noise

// An approximately normal deviate from one draw: the sum of four 16-bit uniforms
// (Irwin-Hall), scaled to unit variance. Per-pixel noise must be cheap; tails past
// 3.4 standard deviations do not matter for images.
double FastNormal(Random& rng) {
  const uint64_t r = rng.Next();
  const double sum = double(r & 0xffff) + double((r >> 16) & 0xffff) + double((r >> 32) & 0xffff) +
                     double(r >> 48);
  return ((sum + 2.0) / 65536.0 - 2.0) * 1.7320508075688772;
}

// Poisson counts without a transcendental call per draw. Means below 1: inversion
// by sequential search from a tabulated exp(-mean). Means of 1-12: inversion of a
// cumulative table for the mean rounded to 1/32 (a negligible change of the
// noise). Above: the normal approximation.
class PoissonSampler {
 public:
  static constexpr double kNormalAbove = 12.0;

  PoissonSampler() {
    for (int i = 0; i <= kExpSteps; ++i) exp_table_[size_t(i)] = std::exp(-double(i) / kExpPerUnit);
    for (int b = 0; b < kBuckets; ++b) {
      const double mean = 1.0 + (double(b) + 0.5) / kBucketsPerUnit;
      double p = std::exp(-mean);
      double cdf = p;
      for (int k = 0; k < kMaxK; ++k) {
        cdf_[size_t(b)][size_t(k)] = cdf;
        p *= mean / double(k + 1);
        cdf += p;
      }
      cdf_[size_t(b)][kMaxK - 1] = 2.0;  // the search always ends
      // Guide table: where the search for u in [j / kGuide, (j + 1) / kGuide) starts.
      int k = 0;
      for (int j = 0; j < kGuide; ++j) {
        while (cdf_[size_t(b)][size_t(k)] < double(j) / kGuide) ++k;
        guide_[size_t(b)][size_t(j)] = uint8_t(k);
      }
    }
  }

  double Draw(Random& rng, double mean) const {
    if (!(mean > 0.0)) return 0.0;
    if (mean >= kNormalAbove) {
      const double x = mean + std::sqrt(mean) * FastNormal(rng);
      return x < 0.0 ? 0.0 : std::floor(x + 0.5);
    }
    const double u = rng.Uniform();
    int k = 0;
    if (mean >= 1.0) {
      const size_t bucket = size_t((mean - 1.0) * kBucketsPerUnit);
      const auto& cdf = cdf_[bucket];
      k = guide_[bucket][size_t(u * kGuide)];
      while (u > cdf[size_t(k)]) ++k;
      return double(k);
    }
    const double scaled = mean * kExpPerUnit;
    const int index = int(scaled);
    // exp(-mean) = table[index] * exp(-fraction / kExpPerUnit), the latter to first order.
    double p = exp_table_[size_t(index)] * (1.0 - (scaled - index) / kExpPerUnit);
    double cdf = p;
    while (u > cdf && k < 30) {
      ++k;
      p *= mean / k;
      cdf += p;
    }
    return double(k);
  }

 private:
  static constexpr double kExpPerUnit = 256.0;
  static constexpr int kExpSteps = 256;
  static constexpr double kBucketsPerUnit = 32.0;
  static constexpr int kBuckets = 11 * 32;
  static constexpr int kMaxK = 40;
  static constexpr int kGuide = 32;
  std::array<double, kExpSteps + 1> exp_table_{};
  std::array<std::array<double, kMaxK>, kBuckets> cdf_{};
  std::array<std::array<uint8_t, kGuide>, kBuckets> guide_{};
};

// ------------------------------------------------------------------ images

struct Image {
  Image(int64_t h, int64_t w, float fill = 0.0f)
      : height(h), width(w), pixels(size_t(h * w), fill) {}
  float* Row(int64_t y) { return pixels.data() + y * width; }
  const float* Row(int64_t y) const { return pixels.data() + y * width; }
  float& At(int64_t y, int64_t x) { return pixels[size_t(y * width + x)]; }

  int64_t height;
  int64_t width;
  std::vector<float> pixels;
};

// Adds amplitude * exp(-r^2 / 2 sigma^2) around (cx, cy). Separable: 2 (2r + 1)
// exponentials per call instead of one per pixel; the window ends at 3.5 sigma.
class GaussianStamper {
 public:
  void Add(Image& image, double cx, double cy, double sigma, double amplitude) {
    const double reach = 3.5 * sigma + 1.0;
    const int64_t x0 = std::max<int64_t>(0, int64_t(std::ceil(cx - reach)));
    const int64_t x1 = std::min<int64_t>(image.width - 1, int64_t(std::floor(cx + reach)));
    const int64_t y0 = std::max<int64_t>(0, int64_t(std::ceil(cy - reach)));
    const int64_t y1 = std::min<int64_t>(image.height - 1, int64_t(std::floor(cy + reach)));
    if (x0 > x1 || y0 > y1) return;
    const double inv = 1.0 / (2.0 * sigma * sigma);
    gx_.resize(size_t(x1 - x0 + 1));
    for (int64_t x = x0; x <= x1; ++x) {
      const double d = double(x) - cx;
      gx_[size_t(x - x0)] = float(std::exp(-d * d * inv));
    }
    for (int64_t y = y0; y <= y1; ++y) {
      const double d = double(y) - cy;
      const float a = float(amplitude * std::exp(-d * d * inv));
      float* row = image.Row(y) + x0;
      for (size_t i = 0; i < gx_.size(); ++i) row[i] += a * gx_[i];
    }
  }

 private:
  std::vector<float> gx_;
};

// Moving-average filter of half-width `radius` along rows (replicated edges).
void BoxBlurRows(Image& image, int radius, std::vector<float>& scratch) {
  if (radius <= 0) return;
  const int64_t w = image.width;
  scratch.resize(size_t(w));
  const float norm = 1.0f / float(2 * radius + 1);
  for (int64_t y = 0; y < image.height; ++y) {
    float* row = image.Row(y);
    std::copy(row, row + w, scratch.begin());
    auto at = [&](int64_t x) { return scratch[size_t(std::clamp<int64_t>(x, 0, w - 1))]; };
    double sum = 0.0;
    for (int64_t x = -radius; x <= radius; ++x) sum += at(x);
    for (int64_t x = 0; x < w; ++x) {
      row[x] = float(sum) * norm;
      sum += at(x + radius + 1) - at(x - radius);
    }
  }
}

// The same along columns, a row at a time so that memory is read in order.
void BoxBlurColumns(Image& image, int radius, std::vector<float>& scratch) {
  if (radius <= 0) return;
  const int64_t w = image.width;
  const int64_t h = image.height;
  Image source = image;
  scratch.assign(size_t(w), 0.0f);
  const float norm = 1.0f / float(2 * radius + 1);
  auto row_at = [&](int64_t y) { return source.Row(std::clamp<int64_t>(y, 0, h - 1)); };
  for (int64_t y = -radius; y <= radius; ++y) {
    const float* row = row_at(y);
    for (int64_t x = 0; x < w; ++x) scratch[size_t(x)] += row[x];
  }
  for (int64_t y = 0; y < h; ++y) {
    float* out = image.Row(y);
    const float* add = row_at(y + radius + 1);
    const float* sub = row_at(y - radius);
    for (int64_t x = 0; x < w; ++x) {
      out[x] = scratch[size_t(x)] * norm;
      scratch[size_t(x)] += add[x] - sub[x];
    }
  }
}

// Gaussian blur of standard deviation `sigma` pixels: an exact separable kernel
// for small sigma, three box passes (whose variance adds up to sigma^2) above.
void GaussianBlur(Image& image, double sigma) {
  if (!(sigma > 0.3)) return;
  std::vector<float> scratch;
  if (sigma > 2.5) {
    const int radius =
        std::max(1, int(std::lround((std::sqrt(4.0 * sigma * sigma + 1.0) - 1.0) / 2.0)));
    for (int pass = 0; pass < 3; ++pass) {
      BoxBlurRows(image, radius, scratch);
      BoxBlurColumns(image, radius, scratch);
    }
    return;
  }
  const int radius = int(std::ceil(3.0 * sigma));
  std::vector<float> kernel(size_t(2 * radius + 1));
  double total = 0.0;
  for (int i = -radius; i <= radius; ++i) {
    kernel[size_t(i + radius)] = float(std::exp(-double(i * i) / (2.0 * sigma * sigma)));
    total += kernel[size_t(i + radius)];
  }
  for (float& k : kernel) k = float(k / total);
  const int64_t w = image.width;
  const int64_t h = image.height;
  Image temp(h, w);
  // Rows: copy each into a buffer padded with its edge values, so that the inner
  // loop needs no bounds checks.
  std::vector<float> padded(size_t(w + 2 * radius));
  for (int64_t y = 0; y < h; ++y) {
    const float* in = image.Row(y);
    std::fill(padded.begin(), padded.begin() + radius, in[0]);
    std::copy(in, in + w, padded.begin() + radius);
    std::fill(padded.begin() + radius + w, padded.end(), in[w - 1]);
    float* out = temp.Row(y);
    std::fill(out, out + w, 0.0f);
    for (int i = 0; i <= 2 * radius; ++i) {
      const float k = kernel[size_t(i)];
      const float* shifted = padded.data() + i;
      for (int64_t x = 0; x < w; ++x) out[x] += k * shifted[x];
    }
  }
  std::fill(image.pixels.begin(), image.pixels.end(), 0.0f);
  for (int64_t y = 0; y < h; ++y) {
    float* out = image.Row(y);
    for (int i = -radius; i <= radius; ++i) {
      const float k = kernel[size_t(i + radius)];
      const float* in = temp.Row(std::clamp<int64_t>(y + i, 0, h - 1));
      for (int64_t x = 0; x < w; ++x) out[x] += k * in[x];
    }
  }
}

// Spatially correlated noise of zero mean and unit standard deviation, grain
// `correlation_px`: amorphous carbon, surface roughness, thickness variations.
// `smooth_slopes` when derivatives are taken (continuous gradients).
Image CorrelatedNoise(int64_t h, int64_t w, double correlation_px, Random& rng,
                      bool smooth_slopes = false) {
  Image noise(h, w);
  if (correlation_px < 1.2) {
    for (float& v : noise.pixels) v = float(FastNormal(rng));
    GaussianBlur(noise, correlation_px);
  } else {
    // Smooth noise is drawn on a coarse grid and interpolated: a pixel costs a
    // few multiplications instead of a draw and a wide blur.
    const double step = correlation_px / 1.2;
    const int64_t ch = int64_t(double(h) / step) + 3;
    const int64_t cw = int64_t(double(w) / step) + 3;
    Image coarse(ch, cw);
    for (float& v : coarse.pixels) v = float(FastNormal(rng));
    GaussianBlur(coarse, 0.8);
    std::vector<int64_t> column(static_cast<size_t>(w));
    std::vector<float> fraction(static_cast<size_t>(w));
    for (int64_t x = 0; x < w; ++x) {
      const double cx = double(x) / step;
      column[size_t(x)] = int64_t(cx);
      fraction[size_t(x)] = float(cx - double(int64_t(cx)));
    }
    for (int64_t y = 0; y < h; ++y) {
      const double cy = double(y) / step;
      const int64_t j = int64_t(cy);
      const float fy = float(cy - double(j));
      const float* r0 = coarse.Row(j);
      const float* r1 = coarse.Row(j + 1);
      float* out = noise.Row(y);
      for (int64_t x = 0; x < w; ++x) {
        const int64_t i = column[size_t(x)];
        const float fx = fraction[size_t(x)];
        const float top = r0[i] + fx * (r0[i + 1] - r0[i]);
        const float bottom = r1[i] + fx * (r1[i + 1] - r1[i]);
        out[x] = top + fy * (bottom - top);
      }
    }
    if (smooth_slopes) {
      // One box pass over a grid cell smooths the interpolation's kinks, so that
      // slopes (SEM shading) vary continuously.
      std::vector<float> scratch;
      const int radius = std::max(1, int(step / 2.0));
      BoxBlurRows(noise, radius, scratch);
      BoxBlurColumns(noise, radius, scratch);
    }
  }
  double sum = 0.0;
  double sum_sq = 0.0;
  for (float v : noise.pixels) {
    sum += v;
    sum_sq += double(v) * v;
  }
  const double n = double(noise.pixels.size());
  const double mean = sum / n;
  const double sd = std::sqrt(std::max(0.0, sum_sq / n - mean * mean));
  const float scale = float(sd > 0.0 ? 1.0 / sd : 0.0);
  for (float& v : noise.pixels) v = (v - float(mean)) * scale;
  return noise;
}

// Reflects a coordinate into [0, n - 1] (mirror boundary).
double Reflect(double v, int64_t n) {
  const double last = double(n - 1);
  if (last <= 0.0) return 0.0;
  const double period = 2.0 * last;
  v = std::fmod(v, period);
  if (v < 0.0) v += period;
  return v > last ? period - v : v;
}

double SampleBilinear(const Image& image, double x, double y) {
  x = Reflect(x, image.width);
  y = Reflect(y, image.height);
  const int64_t x0 = std::min<int64_t>(int64_t(x), image.width - 1);
  const int64_t y0 = std::min<int64_t>(int64_t(y), image.height - 1);
  const int64_t x1 = std::min<int64_t>(x0 + 1, image.width - 1);
  const int64_t y1 = std::min<int64_t>(y0 + 1, image.height - 1);
  const double fx = x - double(x0);
  const double fy = y - double(y0);
  const float* r0 = image.Row(y0);
  const float* r1 = image.Row(y1);
  return (1.0 - fy) * ((1.0 - fx) * r0[x0] + fx * r0[x1]) +
         fy * ((1.0 - fx) * r1[x0] + fx * r1[x1]);
}

// STEM/SEM scan noise: each line lands slightly off along the fast scan (a
// correlated random walk with rare flyback glitches) and with its own gain.
void ApplyScanNoise(Image& image, double jitter_px, Random& rng) {
  const int64_t w = image.width;
  std::vector<float> line(static_cast<size_t>(w));
  double shift = 0.0;
  for (int64_t y = 0; y < image.height; ++y) {
    shift = 0.7 * shift + jitter_px * FastNormal(rng);
    double row_shift = shift;
    if (rng.Chance(0.004)) row_shift += rng.Uniform(2.0, 4.0) * (rng.Chance(0.5) ? 1.0 : -1.0);
    const float gain = float(1.0 + 0.008 * FastNormal(rng));
    float* row = image.Row(y);
    std::copy(row, row + w, line.begin());
    // out[x] = line[x - shift], linearly interpolated; edges hold their value.
    const double whole = std::floor(row_shift);
    const int64_t offset = int64_t(whole);
    const float f = float(row_shift - whole);
    for (int64_t x = 0; x < w; ++x) {
      const int64_t a = std::clamp<int64_t>(x - offset - 1, 0, w - 1);
      const int64_t b = std::clamp<int64_t>(x - offset, 0, w - 1);
      row[x] = gain * (f * line[size_t(a)] + (1.0f - f) * line[size_t(b)]);
    }
  }
}

// Sample drift during a slow scan: the image is stretched (or squeezed) along the
// slow axis and sheared along the fast one.
void ApplyDrift(Image& image, Random& rng) {
  const double stretch = rng.Chance(0.5) ? rng.Uniform(1.12, 1.3) : rng.Uniform(0.77, 0.89);
  const double shear = rng.Uniform(0.06, 0.2) * (rng.Chance(0.5) ? 1.0 : -1.0);
  const Image source = image;
  const double cy = 0.5 * double(image.height - 1);
  for (int64_t y = 0; y < image.height; ++y) {
    const double dy = double(y) - cy;
    const double sy = cy + dy / stretch;
    float* row = image.Row(y);
    for (int64_t x = 0; x < image.width; ++x) {
      row[x] = float(SampleBilinear(source, double(x) - shear * dy, sy));
    }
  }
}

// A smooth multiplicative gradient across the field: uneven illumination or a
// wedge-shaped specimen.
void ApplyGradient(Image& image, double strength, Random& rng) {
  const double angle = rng.Uniform(0.0, 2.0 * kPi);
  const double gx = strength * std::cos(angle) / double(image.width);
  const double gy = strength * std::sin(angle) / double(image.height);
  const double cx = 0.5 * double(image.width);
  const double cy = 0.5 * double(image.height);
  for (int64_t y = 0; y < image.height; ++y) {
    float* row = image.Row(y);
    for (int64_t x = 0; x < image.width; ++x) {
      row[x] *= float(1.0 + gx * (double(x) - cx) + gy * (double(y) - cy));
    }
  }
}

struct Vec2 {
  double x = 0.0;
  double y = 0.0;
};
Vec2 operator+(Vec2 a, Vec2 b) { return {a.x + b.x, a.y + b.y}; }
Vec2 operator-(Vec2 a, Vec2 b) { return {a.x - b.x, a.y - b.y}; }
Vec2 operator*(double s, Vec2 a) { return {s * a.x, s * a.y}; }
double Dot(Vec2 a, Vec2 b) { return a.x * b.x + a.y * b.y; }
double Norm(Vec2 a) { return std::sqrt(Dot(a, a)); }
Vec2 Rotate(Vec2 a, double radians) {
  const double c = std::cos(radians);
  const double s = std::sin(radians);
  return {c * a.x - s * a.y, s * a.x + c * a.y};
}

// ------------------------------------------------------------------ crystals

// A column of atoms seen down the zone axis: fractional position (u, v) in the
// projected cell, its species, and atoms per repeat along the beam.
struct ColumnSite {
  double u;
  double v;
  int species;
  double atoms;
};

// The crystal projected along its zone axis: a 2D cell (nm) and its columns.
// By the projection-slice theorem its Fourier transform is the zero-order Laue
// zone of the diffraction pattern on the same axis.
struct ProjectedCell {
  Vec2 a1;
  Vec2 a2;
  std::vector<ColumnSite> sites;
};

int SpeciesCount(CrystalStructure structure) {
  switch (structure) {
    case CrystalStructure::kRockSalt:
    case CrystalStructure::kDiamond:
    case CrystalStructure::kWurtzite:
      return 2;
    case CrystalStructure::kPerovskite:
      return 3;
    default:
      return 1;
  }
}

double HexagonalCOverA(CrystalStructure structure) {
  return structure == CrystalStructure::kWurtzite ? 1.602 : 1.633;
}

ProjectedCell ProjectZoneAxis(CrystalStructure structure, double a) {
  const double r2 = std::sqrt(2.0);
  switch (structure) {
    case CrystalStructure::kRockSalt:  // [110]: cation and anion columns alternate
      return {{a / r2, 0.0},
              {0.0, a},
              {{0, 0, 0, 1}, {0.5, 0.5, 0, 1}, {0.5, 0, 1, 1}, {0, 0.5, 1, 1}}};
    case CrystalStructure::kPerovskite:  // [001]: A columns, B-O columns, O columns
      return {{a, 0.0},
              {0.0, a},
              {{0, 0, 0, 1}, {0.5, 0.5, 1, 1}, {0.5, 0.5, 2, 1}, {0.5, 0, 2, 1}, {0, 0.5, 2, 1}}};
    case CrystalStructure::kFcc:  // [110]: centred rectangle a/sqrt2 x a
      return {{a / r2, 0.0}, {0.0, a}, {{0, 0, 0, 1}, {0.5, 0.5, 0, 1}}};
    case CrystalStructure::kBcc:  // [001]
      return {{a, 0.0}, {0.0, a}, {{0, 0, 0, 1}, {0.5, 0.5, 0, 1}}};
    case CrystalStructure::kHcp:  // [0001]: A and B layers project to a honeycomb
      return {
          {a, 0.0}, {-0.5 * a, 0.5 * std::sqrt(3.0) * a}, {{0, 0, 0, 1}, {1.0 / 3, 2.0 / 3, 0, 1}}};
    case CrystalStructure::kDiamond:  // [110]: dumbbells a/4 apart
      return {{a / r2, 0.0},
              {0.0, a},
              {{0, 0, 0, 1}, {0.5, 0.5, 0, 1}, {0.5, 0.25, 1, 1}, {0, 0.75, 1, 1}}};
    case CrystalStructure::kWurtzite: {  // [11-20]: a*sqrt3/2 x c, cation-anion dumbbells
      const double c = HexagonalCOverA(structure) * a;
      const double u = 0.382;
      return {
          {0.5 * std::sqrt(3.0) * a, 0.0},
          {0.0, c},
          {{2.0 / 3, 0, 0, 1}, {1.0 / 3, 0.5, 0, 1}, {2.0 / 3, u, 1, 1}, {1.0 / 3, 0.5 + u, 1, 1}}};
    }
  }
  return {{a, 0.0}, {0.0, a}, {{0, 0, 0, 1}}};
}

Vec2 SitePosition(const ProjectedCell& cell, double i, double j) {
  return i * cell.a1 + j * cell.a2;
}

// The shortest distance between two columns (nm).
double MinColumnSpacing(const ProjectedCell& cell) {
  double best = std::numeric_limits<double>::infinity();
  for (const ColumnSite& s : cell.sites) {
    for (const ColumnSite& t : cell.sites) {
      for (int i = -1; i <= 1; ++i) {
        for (int j = -1; j <= 1; ++j) {
          const double d = Norm(SitePosition(cell, t.u + i - s.u, t.v + j - s.v));
          if (d > 1e-9) best = std::min(best, d);
        }
      }
    }
  }
  return best;
}

// Reciprocal vectors b1, b2 of the projected cell (bi . aj = delta_ij), 1/nm.
std::pair<Vec2, Vec2> Reciprocal(const ProjectedCell& cell) {
  const double det = cell.a1.x * cell.a2.y - cell.a1.y * cell.a2.x;
  return {{cell.a2.y / det, -cell.a2.x / det}, {-cell.a1.y / det, cell.a1.x / det}};
}

// The 3D crystal for powder rings: cubic (conventional cell) or hexagonal.
struct Atom3 {
  double x, y, z;
  int species;
};
struct Cell3 {
  bool hexagonal;
  double a;
  double c;
  std::vector<Atom3> atoms;
};

Cell3 CrystalCell(CrystalStructure structure, double a) {
  const std::vector<Atom3> fcc = {
      {0, 0, 0, 0}, {0.5, 0.5, 0, 0}, {0.5, 0, 0.5, 0}, {0, 0.5, 0.5, 0}};
  auto shifted = [&](double dx, double dy, double dz, int species) {
    std::vector<Atom3> out;
    for (const Atom3& p : fcc) out.push_back({p.x + dx, p.y + dy, p.z + dz, species});
    return out;
  };
  Cell3 cell{false, a, a, {}};
  switch (structure) {
    case CrystalStructure::kRockSalt:
      cell.atoms = fcc;
      for (const Atom3& p : shifted(0.5, 0, 0, 1)) cell.atoms.push_back(p);
      break;
    case CrystalStructure::kPerovskite:
      cell.atoms = {
          {0, 0, 0, 0}, {0.5, 0.5, 0.5, 1}, {0.5, 0.5, 0, 2}, {0.5, 0, 0.5, 2}, {0, 0.5, 0.5, 2}};
      break;
    case CrystalStructure::kFcc:
      cell.atoms = fcc;
      break;
    case CrystalStructure::kBcc:
      cell.atoms = {{0, 0, 0, 0}, {0.5, 0.5, 0.5, 0}};
      break;
    case CrystalStructure::kDiamond:
      cell.atoms = fcc;
      for (const Atom3& p : shifted(0.25, 0.25, 0.25, 1)) cell.atoms.push_back(p);
      break;
    case CrystalStructure::kHcp:
      cell = {true,
              a,
              HexagonalCOverA(structure) * a,
              {{1.0 / 3, 2.0 / 3, 0.25, 0}, {2.0 / 3, 1.0 / 3, 0.75, 0}}};
      break;
    case CrystalStructure::kWurtzite: {
      const double u = 0.382;
      cell = {true,
              a,
              HexagonalCOverA(structure) * a,
              {{1.0 / 3, 2.0 / 3, 0, 0},
               {2.0 / 3, 1.0 / 3, 0.5, 0},
               {1.0 / 3, 2.0 / 3, u, 1},
               {2.0 / 3, 1.0 / 3, 0.5 + u, 1}}};
      break;
    }
  }
  return cell;
}

// The atomic numbers of a structure's species: `elements` in site order, the
// structure's defaults for the rest (the second diamond sublattice repeats the first).
Result<std::vector<int>> SpeciesZ(const SceneSpec& spec) {
  static constexpr std::array<std::array<std::string_view, 3>, 7> kDefaults = {{
      {"Pb", "Se", ""},   // rock salt
      {"Sr", "Ti", "O"},  // perovskite
      {"Au", "", ""},     // fcc
      {"Fe", "", ""},     // bcc
      {"Ti", "", ""},     // hcp
      {"Si", "Si", ""},   // diamond
      {"Zn", "O", ""},    // wurtzite
  }};
  const int count = SpeciesCount(spec.structure);
  std::vector<int> z;
  for (int i = 0; i < count; ++i) {
    std::string_view symbol;
    if (size_t(i) < spec.elements.size()) {
      symbol = spec.elements[size_t(i)];
    } else if (spec.structure == CrystalStructure::kDiamond && i == 1 && !spec.elements.empty()) {
      symbol = spec.elements[0];
    } else {
      symbol = kDefaults[size_t(spec.structure)][size_t(i)];
    }
    const ElementRecord* record = FindElement(symbol);
    if (record == nullptr) {
      return Status::InvalidArgument("scene: unknown element '" + std::string(symbol) + "'");
    }
    z.push_back(record->z);
  }
  return z;
}

// Electron scattering amplitude of an atom, falling with scattering vector g (1/nm).
double ScatteringFactor(int z, double g) {
  return std::pow(double(z), 0.75) / (1.0 + g * g / 25.0);
}

// A powder ring: reflections of one spacing, summed.
struct Ring {
  double g;          // 1/d, 1/nm
  double intensity;  // sum of |F|^2 over the ring's reflections
};

// The structure's reflections up to g_max (1/nm) with non-vanishing structure
// factor, grouped by spacing, strongest first by index order (smallest g first).
std::vector<Ring> PowderRings(CrystalStructure structure, double a, const std::vector<int>& z,
                              double g_max) {
  const Cell3 cell = CrystalCell(structure, a);
  const int n_ab = std::min(8, int(std::ceil(g_max * cell.a)) + 1);
  const int n_c = std::min(8, int(std::ceil(g_max * cell.c)) + 1);
  std::vector<Ring> reflections;
  for (int h = -n_ab; h <= n_ab; ++h) {
    for (int k = -n_ab; k <= n_ab; ++k) {
      for (int l = -n_c; l <= n_c; ++l) {
        if (h == 0 && k == 0 && l == 0) continue;
        double inv_d2;
        if (cell.hexagonal) {
          inv_d2 = 4.0 / 3.0 * (h * h + h * k + k * k) / (cell.a * cell.a) +
                   double(l * l) / (cell.c * cell.c);
        } else {
          inv_d2 = double(h * h + k * k + l * l) / (cell.a * cell.a);
        }
        const double g = std::sqrt(inv_d2);
        if (g > g_max) continue;
        std::complex<double> f = 0.0;
        for (const Atom3& atom : cell.atoms) {
          const double phase = 2.0 * kPi * (h * atom.x + k * atom.y + l * atom.z);
          f += ScatteringFactor(z[size_t(atom.species)], g) *
               std::complex<double>(std::cos(phase), std::sin(phase));
        }
        const double intensity = std::norm(f);
        if (intensity < 1e-6) continue;
        reflections.push_back({g, intensity});
      }
    }
  }
  std::sort(reflections.begin(), reflections.end(),
            [](const Ring& p, const Ring& q) { return p.g < q.g; });
  std::vector<Ring> rings;
  for (const Ring& r : reflections) {
    if (!rings.empty() && r.g - rings.back().g < 1e-6 * r.g) {
      rings.back().intensity += r.intensity;
    } else {
      rings.push_back(r);
    }
  }
  return rings;
}

// The spacing (nm) of the lattice fringes a particle shows: its strongest
// low-index reflection.
double FringeSpacing(CrystalStructure structure, double a, const std::vector<int>& z) {
  const std::vector<Ring> rings = PowderRings(structure, a, z, 3.5 / a);
  double best = 0.0;
  double spacing = a;
  for (size_t i = 0; i < rings.size() && i < 3; ++i) {
    if (rings[i].intensity > best) {
      best = rings[i].intensity;
      spacing = 1.0 / rings[i].g;
    }
  }
  return spacing;
}

// ------------------------------------------------------------------ scenes

// What the renderers hand to the detector model.
struct RenderedScene {
  Image signal;
  double dose = 100.0;       // electrons per pixel where the signal is 1
  bool scanned = false;      // STEM / SEM: line jitter
  bool log_display = false;  // 8-bit diffraction: exported on a log scale
};

// Where each column of a lattice lands; crystal frame in nm centred on the
// image centre, before rotation.
struct LatticeGeometry {
  ProjectedCell cell;
  Vec2 origin;  // nm, crystal frame
  double rotation = 0.0;
  double pixel_nm = 0.02;
  Vec2 centre_px;
};

Vec2 CrystalToPixel(const LatticeGeometry& geometry, Vec2 crystal_nm) {
  const Vec2 r = Rotate(crystal_nm, geometry.rotation);
  // y up in the crystal frame, rows down in the image: counter-clockwise on screen.
  return {geometry.centre_px.x + r.x / geometry.pixel_nm,
          geometry.centre_px.y - r.y / geometry.pixel_nm};
}

// Calls visit(site, crystal position nm) for every column whose position may fall
// within `radius_nm` of the image centre.
template <typename Visit>
void ForEachColumn(const LatticeGeometry& geometry, double radius_nm, Visit&& visit) {
  const auto [b1, b2] = Reciprocal(geometry.cell);
  const int64_t ni = int64_t(std::ceil(radius_nm * Norm(b1))) + 2;
  const int64_t nj = int64_t(std::ceil(radius_nm * Norm(b2))) + 2;
  for (int64_t j = -nj; j <= nj; ++j) {
    for (int64_t i = -ni; i <= ni; ++i) {
      for (const ColumnSite& site : geometry.cell.sites) {
        const Vec2 p =
            geometry.origin + SitePosition(geometry.cell, double(i) + site.u, double(j) + site.v);
        if (std::abs(p.x) > radius_nm || std::abs(p.y) > radius_nm) continue;
        visit(site, p);
      }
    }
  }
}

// Displacement (nm) of an edge dislocation with Burgers vector b along x and its
// line along the beam, at p relative to the core (isotropic elasticity, nu = 0.3).
Vec2 EdgeDislocationDisplacement(Vec2 p, double b) {
  constexpr double nu = 0.3;
  const double r2 = std::max(Dot(p, p), 0.09 * b * b);
  const double theta = std::atan2(p.y, p.x);
  const double ux = b / (2.0 * kPi) * (theta + p.x * p.y / (2.0 * (1.0 - nu) * r2));
  const double uy = -b / (2.0 * kPi) *
                    ((1.0 - 2.0 * nu) / (4.0 * (1.0 - nu)) * std::log(r2 / (b * b)) +
                     (p.x * p.x - p.y * p.y) / (4.0 * (1.0 - nu) * r2));
  return {ux, uy};
}

// Per-species column weights: HAADF ~ Z^1.7 (Rutherford-like), bright-field phase
// contrast ~ the projected potential, roughly Z^0.8.
std::vector<double> ColumnWeights(const std::vector<int>& z, bool dark_field) {
  std::vector<double> weights;
  for (int zi : z) weights.push_back(std::pow(double(zi), dark_field ? 1.7 : 0.8));
  return weights;
}

Result<RenderedScene> RenderLattice(const SceneSpec& spec, int64_t h, int64_t w, Random& rng) {
  SCISEARCH_ASSIGN_OR_RETURN(std::vector<int> z, SpeciesZ(spec));
  const std::vector<double> weights = ColumnWeights(z, spec.dark_field);
  LatticeGeometry geometry;
  geometry.cell = ProjectZoneAxis(spec.structure, spec.lattice_constant_nm);
  geometry.rotation = spec.rotation_deg * kPi / 180.0;
  geometry.pixel_nm = spec.pixel_size_nm;
  geometry.centre_px = {0.5 * double(w), 0.5 * double(h)};
  geometry.origin = SitePosition(geometry.cell, rng.Uniform(), rng.Uniform());

  RenderedScene scene{Image(h, w), spec.dark_field ? rng.Uniform(40, 300) : rng.Uniform(300, 3000),
                      spec.dark_field, false};
  Image& image = scene.signal;
  // Column intensities are scaled to the strongest column (sites sharing a
  // position add up).
  double max_column = 0.0;
  {
    for (const ColumnSite& s : geometry.cell.sites) {
      double sum = 0.0;
      for (const ColumnSite& t : geometry.cell.sites) {
        if (std::abs(t.u - s.u) < 1e-9 && std::abs(t.v - s.v) < 1e-9) {
          sum += t.atoms * weights[size_t(t.species)];
        }
      }
      max_column = std::max(max_column, sum);
    }
  }
  // A column's width: the probe (or the point spread) and thermal vibration.
  const double sigma_nm = spec.dark_field ? rng.Uniform(0.035, 0.06) : rng.Uniform(0.04, 0.07);
  const double sigma_px = std::max(0.6, sigma_nm / spec.pixel_size_nm);
  const double spacing_px = MinColumnSpacing(geometry.cell) / spec.pixel_size_nm;
  const double background = spec.dark_field ? rng.Uniform(0.03, 0.1) : 1.0;
  const double bf_contrast = rng.Uniform(0.25, 0.45);

  // Amorphous surface layers: correlated speckle about 0.15-0.3 nm across.
  {
    const Image speckle = CorrelatedNoise(
        h, w, std::clamp(rng.Uniform(0.15, 0.3) / spec.pixel_size_nm, 0.5, 6.0), rng);
    const double amplitude =
        spec.dark_field ? background * rng.Uniform(0.2, 0.5) : rng.Uniform(0.02, 0.05);
    for (size_t i = 0; i < image.pixels.size(); ++i) {
      image.pixels[i] = float(std::max(0.0, background + amplitude * speckle.pixels[i]));
    }
  }

  if (spacing_px < 1.2) {
    // Columns closer than the pixels resolve: the image averages them.
    const double cell_area_px = std::abs(geometry.cell.a1.x * geometry.cell.a2.y -
                                         geometry.cell.a1.y * geometry.cell.a2.x) /
                                (spec.pixel_size_nm * spec.pixel_size_nm);
    double mean = 0.0;
    for (const ColumnSite& s : geometry.cell.sites) mean += s.atoms * weights[size_t(s.species)];
    mean *= 2.0 * kPi * sigma_px * sigma_px / cell_area_px / max_column;
    const float delta =
        float(spec.dark_field ? std::min(mean, 1.0) : -bf_contrast * 0.7 * std::min(mean, 1.0));
    for (float& v : image.pixels) v += delta;
    return scene;
  }

  // Defects: vacancies (columns missing atoms), an edge dislocation or a tilt
  // grain boundary.
  int defect = -1;
  double vacancy_rate = 0.0;
  if (spec.with_defects) {
    defect = int(rng.Below(3));
    vacancy_rate = defect == 0 ? rng.Uniform(0.03, 0.08) : 0.01;
  }
  const double half_extent_nm =
      0.5 * std::hypot(double(w), double(h)) * spec.pixel_size_nm + 5.0 * sigma_nm;
  const double field_nm = double(std::min(w, h)) * spec.pixel_size_nm;
  const Vec2 core{rng.Uniform(-0.25, 0.25) * field_nm, rng.Uniform(-0.25, 0.25) * field_nm};
  const double burgers = Norm(geometry.cell.a1);
  const double boundary_angle = rng.Uniform(0.0, kPi);
  const Vec2 boundary_normal{std::cos(boundary_angle), std::sin(boundary_angle)};
  const Vec2 boundary_point{rng.Uniform(-0.2, 0.2) * field_nm, rng.Uniform(-0.2, 0.2) * field_nm};
  const double misorientation =
      rng.Uniform(8.0, 38.0) * kPi / 180.0 * (rng.Chance(0.5) ? 1.0 : -1.0);
  const double gap_nm = 0.4 * MinColumnSpacing(geometry.cell);

  // Columns go to their own layer: added to the background in dark field; in
  // bright field (phase contrast) subtracted, with a faint bright halo twice as
  // wide (the layer blurred by sigma * sqrt 3 has peaks a quarter as high).
  Image columns(h, w);
  GaussianStamper stamper;
  auto stamp = [&](Vec2 pixel, double weight) {
    stamper.Add(columns, pixel.x, pixel.y, sigma_px, weight / max_column);
  };
  const double margin_px = 4.0 * sigma_px;
  auto inside = [&](Vec2 p) {
    return p.x > -margin_px && p.y > -margin_px && p.x < double(w) + margin_px &&
           p.y < double(h) + margin_px;
  };
  auto column_weight = [&](const ColumnSite& site) {
    double weight = site.atoms * weights[size_t(site.species)];
    if (vacancy_rate > 0.0 && rng.Chance(vacancy_rate)) weight *= rng.Uniform(0.15, 0.6);
    return weight;
  };

  ForEachColumn(geometry, half_extent_nm, [&](const ColumnSite& site, Vec2 p) {
    Vec2 q = p;
    if (defect == 1) q = q + EdgeDislocationDisplacement(p - core, burgers);
    if (defect == 2) {
      const Vec2 image_frame = Rotate(q, geometry.rotation);
      if (Dot(image_frame - boundary_point, boundary_normal) > 0.0) return;  // the other grain
    }
    const Vec2 pixel = CrystalToPixel(geometry, q);
    if (!inside(pixel)) return;
    stamp(pixel, column_weight(site));
  });
  if (defect == 2) {
    LatticeGeometry second = geometry;
    second.rotation += misorientation;
    second.origin = SitePosition(second.cell, rng.Uniform(), rng.Uniform());
    ForEachColumn(second, half_extent_nm, [&](const ColumnSite& site, Vec2 p) {
      const Vec2 image_frame = Rotate(p, second.rotation);
      if (Dot(image_frame - boundary_point, boundary_normal) < gap_nm) return;
      const Vec2 pixel = CrystalToPixel(second, p);
      if (!inside(pixel)) return;
      stamp(pixel, column_weight(site));
    });
  }
  if (spec.dark_field) {
    for (size_t i = 0; i < image.pixels.size(); ++i) image.pixels[i] += columns.pixels[i];
  } else {
    Image halo = columns;
    GaussianBlur(halo, std::sqrt(3.0) * sigma_px);
    const float contrast = float(bf_contrast);
    for (size_t i = 0; i < image.pixels.size(); ++i) {
      image.pixels[i] += contrast * (1.2f * halo.pixels[i] - columns.pixels[i]);
    }
  }
  ApplyGradient(image, rng.Uniform(0.0, 0.2), rng);
  return scene;
}

// ------------------------------------------------------------------ particles

struct Particle {
  Vec2 centre;        // pixels
  double size_px;     // diameter (sphere, core-shell, rod width) or edge (cube, triangle)
  double reach_px;    // bounding radius
  double angle;       // in-plane orientation
  double aspect;      // rods: length / width
  double core_ratio;  // core-shell: core radius / outer radius
  bool fringes;
  bool cross_fringes;
  double fringe_angle;
  double fringe_phase;
  double fringe_modulation;
};

double ReachOf(ParticleShape shape, double size, double aspect) {
  switch (shape) {
    case ParticleShape::kCube:
      return size / std::sqrt(2.0);
    case ParticleShape::kRod:
      return 0.5 * size * aspect;
    case ParticleShape::kTriangle:
      return size / std::sqrt(3.0);
    default:
      return 0.5 * size;
  }
}

// Places up to `count` particles of mean size `mean_px` without overlaps: 60
// random trials each, so a crowded field holds fewer.
std::vector<Particle> PlaceParticles(ParticleShape shape, int count, double mean_px, double spread,
                                     int64_t h, int64_t w, Random& rng) {
  std::vector<Particle> placed;
  // A grid of cells listing the particles whose centres lie in them, so that a
  // trial position is checked against its neighbours only; at most ~4 cells per
  // particle.
  const double typical_reach = ReachOf(shape, mean_px, 3.35);
  const double cell = std::max(
      {4.0, 2.4 * typical_reach + 2.0, std::sqrt(double(h) * double(w) / (4.0 * count + 16.0))});
  const int64_t gw = int64_t(std::ceil(double(w) / cell)) + 1;
  const int64_t gh = int64_t(std::ceil(double(h) / cell)) + 1;
  std::vector<std::vector<int32_t>> grid(size_t(gw * gh));
  auto cell_of = [&](double v, int64_t n) {
    return std::clamp<int64_t>(int64_t(v / cell), 0, n - 1);
  };
  double max_reach = 0.0;
  // The field is full when 50 particles in a row found no room.
  int failures_in_a_row = 0;
  while (int(placed.size()) < count && failures_in_a_row < 50) {
    Particle p{};
    p.size_px = mean_px * std::max(0.3, 1.0 + spread * FastNormal(rng));
    p.aspect = shape == ParticleShape::kRod ? rng.Uniform(2.2, 4.5) : 1.0;
    p.reach_px = ReachOf(shape, p.size_px, p.aspect);
    p.angle = rng.Uniform(0.0, 2.0 * kPi);
    p.core_ratio = rng.Uniform(0.5, 0.75);
    const int64_t range = int64_t(std::ceil((1.1 * (p.reach_px + max_reach) + 2.0) / cell));
    int attempts = 0;
    bool ok = false;
    while (!ok && attempts < 60) {
      ++attempts;
      const double lo_x = std::min(p.reach_px + 1.0, 0.5 * double(w));
      const double lo_y = std::min(p.reach_px + 1.0, 0.5 * double(h));
      p.centre = {rng.Uniform(lo_x, double(w) - lo_x), rng.Uniform(lo_y, double(h) - lo_y)};
      ok = true;
      const int64_t ci = cell_of(p.centre.x, gw);
      const int64_t cj = cell_of(p.centre.y, gh);
      for (int64_t j = std::max<int64_t>(0, cj - range); ok && j <= std::min(gh - 1, cj + range);
           ++j) {
        for (int64_t i = std::max<int64_t>(0, ci - range); ok && i <= std::min(gw - 1, ci + range);
             ++i) {
          for (int32_t index : grid[size_t(j * gw + i)]) {
            const Particle& q = placed[size_t(index)];
            const double gap = 2.0 + 0.1 * (p.reach_px + q.reach_px);
            if (Norm(p.centre - q.centre) < p.reach_px + q.reach_px + gap) {
              ok = false;
              break;
            }
          }
        }
      }
    }
    if (!ok) {
      ++failures_in_a_row;
      continue;
    }
    failures_in_a_row = 0;
    p.fringes = rng.Chance(0.75);
    p.cross_fringes = rng.Chance(0.3);
    p.fringe_angle = rng.Uniform(0.0, kPi);
    p.fringe_phase = rng.Uniform();
    p.fringe_modulation = rng.Uniform(0.08, 0.25);
    grid[size_t(cell_of(p.centre.y, gh) * gw + cell_of(p.centre.x, gw))].push_back(
        int32_t(placed.size()));
    max_reach = std::max(max_reach, p.reach_px);
    placed.push_back(p);
  }
  return placed;
}

// Projected thickness of a particle at (u, v) pixels from its centre, in its own
// frame, relative to its size (1 through the middle of a sphere). Core-shell
// returns the Z-weighted sum of the shell and the heavier core.
double ParticleThickness(ParticleShape shape, const Particle& p, double u, double v) {
  const double r = 0.5 * p.size_px;
  switch (shape) {
    case ParticleShape::kSphere: {
      const double q = 1.0 - (u * u + v * v) / (r * r);
      return q > 0.0 ? std::sqrt(q) : 0.0;
    }
    case ParticleShape::kCoreShell: {
      const double q = 1.0 - (u * u + v * v) / (r * r);
      if (q <= 0.0) return 0.0;
      const double rc = p.core_ratio * r;
      const double qc = rc * rc - (u * u + v * v);
      const double core = qc > 0.0 ? std::sqrt(qc) / r : 0.0;
      return 0.35 * std::sqrt(q) + 0.65 * core;  // shell material everywhere, heavier core
    }
    case ParticleShape::kCube: {
      const double cu = std::clamp(r - std::abs(u) + 0.5, 0.0, 1.0);
      const double cv = std::clamp(r - std::abs(v) + 0.5, 0.0, 1.0);
      return 0.85 * cu * cv;
    }
    case ParticleShape::kRod: {
      const double half_axis = std::max(0.0, 0.5 * p.size_px * p.aspect - r);
      const double du = std::max(0.0, std::abs(u) - half_axis);
      const double q = 1.0 - (du * du + v * v) / (r * r);
      return q > 0.0 ? std::sqrt(q) : 0.0;
    }
    case ParticleShape::kTriangle: {
      // A thin equilateral plate: inside when all three edge distances are positive.
      const double inradius = p.size_px / (2.0 * std::sqrt(3.0));
      constexpr double kHalfRoot3 = 0.86602540378443865;
      const double d = std::min(
          {inradius - v, inradius + kHalfRoot3 * u + 0.5 * v, inradius - kHalfRoot3 * u + 0.5 * v});
      return 0.55 * std::clamp(d + 0.5, 0.0, 1.0);
    }
  }
  return 0.0;
}

// Draws the particles into `image`: compose(under, t) per pixel from the
// projected thickness t, modulated by lattice fringes where the pixels resolve them.
template <typename Compose>
void DrawParticles(Image& image, ParticleShape shape, const std::vector<Particle>& particles,
                   double mean_px, double fringe_px, Compose&& compose) {
  constexpr int kCosTable = 1024;
  std::array<float, kCosTable> cos_table{};
  for (int i = 0; i < kCosTable; ++i) {
    cos_table[size_t(i)] = float(std::cos(2.0 * kPi * i / kCosTable));
  }
  const bool resolved = fringe_px >= 2.5;
  for (const Particle& p : particles) {
    const int64_t x0 = std::max<int64_t>(0, int64_t(std::floor(p.centre.x - p.reach_px - 1.0)));
    const int64_t x1 =
        std::min<int64_t>(image.width - 1, int64_t(std::ceil(p.centre.x + p.reach_px + 1.0)));
    const int64_t y0 = std::max<int64_t>(0, int64_t(std::floor(p.centre.y - p.reach_px - 1.0)));
    const int64_t y1 =
        std::min<int64_t>(image.height - 1, int64_t(std::ceil(p.centre.y + p.reach_px + 1.0)));
    const double c = std::cos(p.angle);
    const double s = std::sin(p.angle);
    const double fc = std::cos(p.fringe_angle) / fringe_px;
    const double fs = std::sin(p.fringe_angle) / fringe_px;
    const double scale = std::sqrt(p.size_px / mean_px);  // bigger particles are thicker
    const bool fringes = resolved && p.fringes;
    for (int64_t y = y0; y <= y1; ++y) {
      float* row = image.Row(y);
      const double dy = double(y) - p.centre.y;
      for (int64_t x = x0; x <= x1; ++x) {
        const double dx = double(x) - p.centre.x;
        const double t = ParticleThickness(shape, p, c * dx + s * dy, -s * dx + c * dy);
        if (t <= 0.0) continue;
        double modulation = 1.0;
        if (fringes) {
          double phase = dx * fc + dy * fs + p.fringe_phase;
          modulation +=
              p.fringe_modulation *
              cos_table[size_t(int64_t(std::floor((phase - std::floor(phase)) * kCosTable)) &
                               (kCosTable - 1))];
          if (p.cross_fringes) {
            phase = -dx * fs + dy * fc + p.fringe_phase;
            modulation +=
                p.fringe_modulation *
                cos_table[size_t(int64_t(std::floor((phase - std::floor(phase)) * kCosTable)) &
                                 (kCosTable - 1))];
          }
        }
        row[x] = compose(row[x], t * scale * modulation);
      }
    }
  }
}

Result<RenderedScene> RenderNanoparticles(const SceneSpec& spec, int64_t h, int64_t w,
                                          Random& rng) {
  SCISEARCH_ASSIGN_OR_RETURN(std::vector<int> z, SpeciesZ(spec));
  const double mean_px = spec.particle_diameter_nm / spec.pixel_size_nm;
  const double fringe_px =
      FringeSpacing(spec.structure, spec.lattice_constant_nm, z) / spec.pixel_size_nm;
  RenderedScene scene{Image(h, w), spec.dark_field ? rng.Uniform(30, 200) : rng.Uniform(300, 3000),
                      spec.dark_field, false};
  Image& image = scene.signal;
  // Amorphous carbon support: speckle about 0.3-0.6 nm across, and a slow
  // thickness variation.
  const Image speckle =
      CorrelatedNoise(h, w, std::clamp(rng.Uniform(0.3, 0.6) / spec.pixel_size_nm, 0.6, 5.0), rng);
  const Image thickness = CorrelatedNoise(h, w, double(std::max(h, w)) / 10.0, rng);
  const double support = spec.dark_field ? rng.Uniform(0.08, 0.18) : 1.0;
  const double speckle_amplitude =
      spec.dark_field ? support * rng.Uniform(0.15, 0.3) : rng.Uniform(0.02, 0.05);
  for (size_t i = 0; i < image.pixels.size(); ++i) {
    const double base = spec.dark_field ? support * (1.0 + 0.15 * thickness.pixels[i])
                                        : 1.0 - 0.03 * thickness.pixels[i];
    image.pixels[i] = float(std::max(0.0, base + speckle_amplitude * speckle.pixels[i]));
  }
  const std::vector<Particle> particles = PlaceParticles(
      spec.particle_shape, spec.particle_count, mean_px, spec.particle_size_spread, h, w, rng);
  if (spec.dark_field) {
    DrawParticles(image, spec.particle_shape, particles, mean_px, fringe_px,
                  [](float under, double t) { return float(under + t); });
  } else {
    const double absorption = rng.Uniform(0.45, 0.7);
    DrawParticles(image, spec.particle_shape, particles, mean_px, fringe_px,
                  [absorption](float under, double t) {
                    return float(under * std::max(0.05, 1.0 - absorption * t));
                  });
  }
  ApplyGradient(image, rng.Uniform(0.0, 0.15), rng);
  return scene;
}

// ------------------------------------------------------------------ diffraction

// The pattern centre, direct beam and diffuse (inelastic + thermal diffuse)
// background shared by spot and ring patterns.
Vec2 PatternCentre(int64_t h, int64_t w, Random& rng) {
  return {0.5 * double(w) + rng.Uniform(-2.0, 2.0), 0.5 * double(h) + rng.Uniform(-2.0, 2.0)};
}

void AddDiffuseBackground(Image& image, Vec2 centre, Random& rng) {
  const double level = rng.Uniform(0.001, 0.006);
  const double r0 = rng.Uniform(0.04, 0.12) * double(std::min(image.width, image.height));
  const double floor_level = rng.Uniform(0.0002, 0.001);
  // level / (1 + r^2 / r0^2)^1.5, tabulated in quarter-pixel steps of r.
  constexpr double kBinsPerPx = 4.0;
  const double max_r = std::hypot(double(image.width), double(image.height)) + 4.0;
  std::vector<float> table(size_t(max_r * kBinsPerPx) + 2);
  for (size_t i = 0; i < table.size(); ++i) {
    const double r = double(i) / kBinsPerPx;
    const double q = 1.0 + r * r / (r0 * r0);
    table[i] = float(floor_level + level / (q * std::sqrt(q)));
  }
  for (int64_t y = 0; y < image.height; ++y) {
    float* row = image.Row(y);
    const double dy = double(y) - centre.y;
    for (int64_t x = 0; x < image.width; ++x) {
      const double dx = double(x) - centre.x;
      const double pos = std::sqrt(dx * dx + dy * dy) * kBinsPerPx;
      const size_t i = std::min(size_t(pos), table.size() - 2);
      const float f = float(pos - double(i));
      row[x] += table[i] + f * (table[i + 1] - table[i]);
    }
  }
}

Result<RenderedScene> RenderSpotPattern(const SceneSpec& spec, int64_t h, int64_t w, DType dtype,
                                        Random& rng) {
  SCISEARCH_ASSIGN_OR_RETURN(std::vector<int> z, SpeciesZ(spec));
  const ProjectedCell cell = ProjectZoneAxis(spec.structure, spec.lattice_constant_nm);
  const auto [b1, b2] = Reciprocal(cell);
  const double rotation = spec.rotation_deg * kPi / 180.0;
  RenderedScene scene{Image(h, w), rng.Uniform(3000, 20000), false, dtype == DType::kUInt8};
  Image& image = scene.signal;
  const Vec2 centre = PatternCentre(h, w, rng);
  AddDiffuseBackground(image, centre, rng);

  const double spot_sigma = rng.Uniform(0.8, 1.8);
  GaussianStamper stamper;
  stamper.Add(image, centre.x, centre.y, spot_sigma * rng.Uniform(1.4, 2.2), 1.0);

  // Reflections of the zero-order Laue zone: kinematic |F(g)|^2 of the projected
  // columns, times an excitation envelope centred on the Laue circle's centre
  // (the crystal is a little off the exact zone axis).
  const double g_max = 0.5 * std::hypot(double(w), double(h)) * spec.pixel_size_nm + 0.1;
  const double min_spot_px = std::min(Norm(b1), Norm(b2)) / spec.pixel_size_nm;
  const double reach_i = std::ceil(g_max * Norm(cell.a1)) + 1.0;
  const double reach_j = std::ceil(g_max * Norm(cell.a2)) + 1.0;
  // Spots closer than the pixels resolve: only the diffuse pattern remains.
  if (min_spot_px < 1.5 || (2.0 * reach_i + 1.0) * (2.0 * reach_j + 1.0) > 4e5) return scene;
  const int64_t ni = int64_t(reach_i);
  const int64_t nj = int64_t(reach_j);
  const Vec2 laue_centre{rng.Uniform(-0.1, 0.1) * g_max, rng.Uniform(-0.1, 0.1) * g_max};
  const double excitation_width = rng.Uniform(0.5, 1.0) * g_max;
  const double spot_scale = rng.Uniform(0.1, 0.3);
  struct Spot {
    Vec2 pixel;
    double intensity;
  };
  std::vector<Spot> spots;
  double strongest = 0.0;
  for (int64_t j = -nj; j <= nj; ++j) {
    for (int64_t i = -ni; i <= ni; ++i) {
      if (i == 0 && j == 0) continue;
      const Vec2 g = double(i) * b1 + double(j) * b2;
      const double g_len = Norm(g);
      if (g_len > g_max) continue;
      std::complex<double> f = 0.0;
      for (const ColumnSite& site : cell.sites) {
        const double phase = 2.0 * kPi * (double(i) * site.u + double(j) * site.v);
        f += site.atoms * ScatteringFactor(z[size_t(site.species)], g_len) *
             std::complex<double>(std::cos(phase), std::sin(phase));
      }
      const Vec2 off = g - laue_centre;
      const double intensity =
          std::norm(f) * std::exp(-Dot(off, off) / (2.0 * excitation_width * excitation_width));
      if (intensity <= 1e-9) continue;
      const Vec2 r = Rotate(g, rotation);
      spots.push_back(
          {{centre.x + r.x / spec.pixel_size_nm, centre.y - r.y / spec.pixel_size_nm}, intensity});
      strongest = std::max(strongest, intensity);
    }
  }
  for (const Spot& spot : spots) {
    const double relative = spot.intensity / strongest;
    if (relative < 1e-5) continue;
    stamper.Add(image, spot.pixel.x, spot.pixel.y, spot_sigma, spot_scale * relative);
  }
  return scene;
}

Result<RenderedScene> RenderRingPattern(const SceneSpec& spec, int64_t h, int64_t w, DType dtype,
                                        Random& rng) {
  SCISEARCH_ASSIGN_OR_RETURN(std::vector<int> z, SpeciesZ(spec));
  RenderedScene scene{Image(h, w), rng.Uniform(3000, 20000), false, dtype == DType::kUInt8};
  Image& image = scene.signal;
  const Vec2 centre = PatternCentre(h, w, rng);
  AddDiffuseBackground(image, centre, rng);
  const double r_max = std::hypot(double(w), double(h)) * 0.5 + 4.0;
  const double g_max = r_max * spec.pixel_size_nm;
  std::vector<Ring> rings = PowderRings(spec.structure, spec.lattice_constant_nm, z, g_max);
  // Rings narrower than a pixel apart blur into a continuum: keep resolvable ones.
  const double ring_sigma = rng.Uniform(0.7, 1.8);
  const double debye_waller = rng.Uniform(0.002, 0.006);  // nm^2
  double strongest = 0.0;
  for (Ring& ring : rings) {
    // Powder intensity spreads over the ring's circumference: divide by g.
    ring.intensity *= std::exp(-debye_waller * ring.g * ring.g * 4.0 * kPi * kPi / 4.0) / ring.g;
    strongest = std::max(strongest, ring.intensity);
  }
  const double ring_scale = rng.Uniform(0.04, 0.12);
  const double speckle_fraction = rng.Uniform(0.3, 0.8);
  const double grains_per_px = rng.Uniform(0.03, 0.4);  // coarse to fine grained

  // The continuous part of the rings as a radial table (quarter-pixel bins).
  constexpr double kBinsPerPx = 4.0;
  const size_t bins = size_t(r_max * kBinsPerPx) + 2;
  std::vector<float> profile(bins, 0.0f);
  GaussianStamper stamper;
  const double sigma_spot = ring_sigma;
  int64_t grain_budget = 40000;
  for (const Ring& ring : rings) {
    const double radius = ring.g / spec.pixel_size_nm;
    const double peak = ring_scale * ring.intensity / strongest;
    if (radius < 3.0 || peak < 1e-6) continue;
    const double continuous = peak * (1.0 - speckle_fraction);
    const int64_t b0 = std::max<int64_t>(0, int64_t((radius - 4.0 * ring_sigma) * kBinsPerPx));
    const int64_t b1 =
        std::min<int64_t>(int64_t(bins) - 1, int64_t((radius + 4.0 * ring_sigma) * kBinsPerPx) + 1);
    for (int64_t b = b0; b <= b1; ++b) {
      const double d = double(b) / kBinsPerPx - radius;
      profile[size_t(b)] += float(continuous * std::exp(-d * d / (2.0 * ring_sigma * ring_sigma)));
    }
    // Grain speckle: the diffracting grains, each a small spot on the ring, with
    // the same mean intensity per unit angle as the continuous part they replace.
    const double circumference = 2.0 * kPi * radius;
    const int64_t grains = std::min<int64_t>(
        grain_budget, std::max<int64_t>(3, int64_t(circumference * grains_per_px)));
    grain_budget -= grains;
    const double per_grain = peak * speckle_fraction * std::sqrt(2.0 * kPi) * ring_sigma *
                             circumference / double(grains) / (2.0 * kPi * sigma_spot * sigma_spot);
    for (int64_t k = 0; k < grains; ++k) {
      const double angle = rng.Uniform(0.0, 2.0 * kPi);
      const double rr = radius + 0.3 * ring_sigma * FastNormal(rng);
      const double amplitude = per_grain * -std::log(std::max(1e-12, rng.Uniform()));
      stamper.Add(image, centre.x + rr * std::cos(angle), centre.y + rr * std::sin(angle),
                  sigma_spot, amplitude);
    }
    if (grain_budget <= 0) grain_budget = 0;
  }
  for (int64_t y = 0; y < h; ++y) {
    float* row = image.Row(y);
    const double dy = double(y) - centre.y;
    for (int64_t x = 0; x < w; ++x) {
      const double dx = double(x) - centre.x;
      const double pos = std::sqrt(dx * dx + dy * dy) * kBinsPerPx;
      const size_t b = std::min(size_t(pos), bins - 2);
      const double f = pos - double(b);
      row[x] += float((1.0 - f) * profile[b] + f * profile[b + 1]);
    }
  }
  stamper.Add(image, centre.x, centre.y, ring_sigma * rng.Uniform(1.5, 2.5), 1.0);
  return scene;
}

// ------------------------------------------------------------------ SEM

// Secondary-electron images: yield rises where the beam meets the surface
// obliquely (bright edges), the Everhart-Thornley detector on one side shades
// facets, and insulating specimens charge.
Result<RenderedScene> RenderSemTexture(const SceneSpec& spec, int64_t h, int64_t w, Random& rng) {
  RenderedScene scene{Image(h, w), rng.Uniform(20, 150), true, false};
  Image& image = scene.signal;
  const double feature_px =
      std::clamp(spec.particle_diameter_nm / spec.pixel_size_nm, 3.0, double(std::min(h, w)) / 3.0);
  const int mode = int(rng.Below(3));  // 0 grains, 1 particles on a substrate, 2 porous
  const double detector_angle = rng.Uniform(0.0, 2.0 * kPi);
  const Vec2 detector{std::cos(detector_angle), std::sin(detector_angle)};

  // Surface relief: a height field; yield from its slope and the detector side.
  const Image relief =
      CorrelatedNoise(h, w, std::max(1.0, feature_px * rng.Uniform(0.3, 1.0)), rng, true);
  const double relief_amplitude = rng.Uniform(1.0, 3.0);
  const double base = rng.Uniform(0.25, 0.4);
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      const double gx = 0.5 * (relief.Row(y)[std::min(x + 1, w - 1)] -
                               relief.Row(y)[std::max<int64_t>(x - 1, 0)]);
      const double gy = 0.5 * (relief.Row(std::min(y + 1, h - 1))[x] -
                               relief.Row(std::max<int64_t>(y - 1, 0))[x]);
      const double slope2 = relief_amplitude * relief_amplitude * (gx * gx + gy * gy);
      const double shade = relief_amplitude * (gx * detector.x + gy * detector.y);
      image.At(y, x) = float(std::max(0.02, base * (1.0 + 1.5 * slope2 + 0.6 * shade)));
    }
  }

  if (mode == 0) {
    // Grains: a Voronoi tessellation from one jittered seed per cell; each grain
    // has its own channelling contrast, boundaries are bright grooves.
    const double cell_px = std::max(4.0, feature_px * rng.Uniform(1.0, 2.0));
    const int64_t gw = int64_t(std::ceil(double(w) / cell_px)) + 2;
    const int64_t gh = int64_t(std::ceil(double(h) / cell_px)) + 2;
    std::vector<Vec2> seeds(size_t(gw * gh));
    std::vector<float> level(size_t(gw * gh));
    for (int64_t j = 0; j < gh; ++j) {
      for (int64_t i = 0; i < gw; ++i) {
        seeds[size_t(j * gw + i)] = {(double(i - 1) + rng.Uniform(0.1, 0.9)) * cell_px,
                                     (double(j - 1) + rng.Uniform(0.1, 0.9)) * cell_px};
        level[size_t(j * gw + i)] = float(rng.Uniform(0.6, 1.5));
      }
    }
    const double groove_px = rng.Uniform(0.8, 2.0);
    for (int64_t y = 0; y < h; ++y) {
      const int64_t cj = int64_t(double(y) / cell_px) + 1;
      for (int64_t x = 0; x < w; ++x) {
        const int64_t ci = int64_t(double(x) / cell_px) + 1;
        double d1 = std::numeric_limits<double>::infinity();
        double d2 = d1;
        size_t nearest = 0;
        for (int64_t j = std::max<int64_t>(0, cj - 1); j <= std::min(gh - 1, cj + 1); ++j) {
          for (int64_t i = std::max<int64_t>(0, ci - 1); i <= std::min(gw - 1, ci + 1); ++i) {
            const Vec2 s = seeds[size_t(j * gw + i)];
            const double d =
                (s.x - double(x)) * (s.x - double(x)) + (s.y - double(y)) * (s.y - double(y));
            if (d < d1) {
              d2 = d1;
              d1 = d;
              nearest = size_t(j * gw + i);
            } else if (d < d2) {
              d2 = d;
            }
          }
        }
        const double edge = std::max(0.0, 1.0 - 0.5 * (std::sqrt(d2) - std::sqrt(d1)) / groove_px);
        float& v = image.At(y, x);
        v = float(v * level[nearest] + 0.5 * edge * edge);
      }
    }
  } else {
    // Particles (raised spheres: bright rims, shadow away from the detector) or
    // pores (dark holes with bright rims).
    const int count = std::max(1, spec.particle_count);
    const std::vector<Particle> features =
        PlaceParticles(ParticleShape::kSphere, count, feature_px,
                       std::max(0.05, spec.particle_size_spread), h, w, rng);
    for (const Particle& p : features) {
      const double r = 0.5 * p.size_px;
      const double reach = r * 1.6 + 2.0;
      const int64_t x0 = std::max<int64_t>(0, int64_t(p.centre.x - reach));
      const int64_t x1 = std::min<int64_t>(w - 1, int64_t(p.centre.x + reach));
      const int64_t y0 = std::max<int64_t>(0, int64_t(p.centre.y - reach));
      const int64_t y1 = std::min<int64_t>(h - 1, int64_t(p.centre.y + reach));
      for (int64_t y = y0; y <= y1; ++y) {
        for (int64_t x = x0; x <= x1; ++x) {
          const double dx = double(x) - p.centre.x;
          const double dy = double(y) - p.centre.y;
          const double rho = std::sqrt(dx * dx + dy * dy);
          float& v = image.At(y, x);
          if (mode == 1) {
            if (rho < r) {
              const double cos_tilt = std::max(0.2, std::sqrt(1.0 - rho * rho / (r * r)));
              const double facing = (dx * detector.x + dy * detector.y) / r;
              v = float(0.45 * (1.0 / cos_tilt + 0.35 * facing));  // secant law
            } else {
              // The shadow: substrate behind the particle as seen from the detector.
              const double sx = dx + 0.5 * r * detector.x;
              const double sy = dy + 0.5 * r * detector.y;
              if (sx * sx + sy * sy < 1.21 * r * r) v *= 0.65f;
            }
          } else {
            if (rho < r - 1.0) {
              v = float(0.06 + 0.04 * v);
            } else {
              const double d = (rho - r) / 1.2;
              v += float(0.5 * std::exp(-d * d));
            }
          }
        }
      }
    }
  }

  // Charging of insulating areas: bright streaks along the fast scan that decay
  // after the beam leaves a charged feature.
  if (spec.with_defects || rng.Chance(0.25)) {
    const int streaks = int(rng.Between(3, 10));
    std::vector<float> decay(static_cast<size_t>(w));
    for (int s = 0; s < streaks; ++s) {
      const int64_t y0 = int64_t(rng.Below(uint64_t(h)));
      const int64_t rows = rng.Between(1, 4);
      const int64_t x0 = int64_t(rng.Below(uint64_t(w)));
      const double amplitude = rng.Uniform(0.3, 0.8);
      const double length = rng.Uniform(20.0, 100.0);
      for (int64_t x = x0; x < w; ++x) {
        decay[size_t(x)] = float(amplitude * std::exp(-double(x - x0) / length));
      }
      for (int64_t y = y0; y < std::min(h, y0 + rows); ++y) {
        float* row = image.Row(y);
        for (int64_t x = x0; x < w; ++x) row[x] += decay[size_t(x)];
      }
    }
  }
  ApplyGradient(image, rng.Uniform(0.0, 0.3), rng);
  return scene;
}

// ------------------------------------------------------------------ detector

// The value a detector writes at full well / ADC maximum, for the image dtypes.
std::optional<double> ImageFullScale(DType dtype) {
  switch (dtype) {
    case DType::kUInt8:
      return 255.0;
    case DType::kUInt16:
    case DType::kInt32:
    case DType::kFloat32:
      return 65535.0;
    case DType::kInt16:
      return 32767.0;
    default:
      return std::nullopt;
  }
}

// An array being filled one element at a time: values are clamped to
// [0, the type's maximum] (counts are never negative) and rounded half up, so
// no intermediate array of doubles is needed for large outputs.
class ArrayWriter {
 public:
  ArrayWriter(std::vector<int64_t> shape, DType dtype) {
    array_.dtype = dtype;
    array_.shape = std::move(shape);
    array_.bytes.resize(size_t(array_.ElementCount()) * formats::DTypeSize(dtype));
  }

  void Set(size_t index, double value) {
    uint8_t* out = array_.bytes.data();
    switch (array_.dtype) {
      case DType::kUInt8:
        Store(out, index, uint8_t(Round(value, 255.0)));
        break;
      case DType::kUInt16:
        Store(out, index, uint16_t(Round(value, 65535.0)));
        break;
      case DType::kInt16:
        Store(out, index, int16_t(Round(value, 32767.0)));
        break;
      case DType::kInt32:
        Store(out, index, int32_t(Round(value, 2147483647.0)));
        break;
      default:
        Store(out, index, float(std::clamp(value, 0.0, double(std::numeric_limits<float>::max()))));
        break;
    }
  }

  NdArray Take() { return std::move(array_); }

 private:
  static int64_t Round(double value, double top) {
    return int64_t(std::clamp(value + 0.5, 0.0, top));
  }
  template <typename T>
  static void Store(uint8_t* out, size_t index, T value) {
    std::memcpy(out + index * sizeof(T), &value, sizeof(T));
  }

  NdArray array_;
};

// A high quantile-like level of the signal from a strided sample.
double SignalQuantile(const Image& image, double q) {
  std::vector<float> sample;
  const size_t stride = std::max<size_t>(1, image.pixels.size() / 8192);
  for (size_t i = 0; i < image.pixels.size(); i += stride) sample.push_back(image.pixels[i]);
  const size_t k = std::min(sample.size() - 1, size_t(q * double(sample.size())));
  std::nth_element(sample.begin(), sample.begin() + std::ptrdiff_t(k), sample.end());
  return sample[k];
}

// The acquisition: quality effects, shot noise, gain, offset, read noise and
// clipping at the detector's full scale.
NdArray Expose(RenderedScene scene, Quality quality, DType dtype, double full_scale, Random& rng) {
  Image& signal = scene.signal;
  if (scene.scanned) ApplyScanNoise(signal, rng.Uniform(0.1, 0.45), rng);
  double dose = scene.dose;
  switch (quality) {
    case Quality::kDrifted:
      ApplyDrift(signal, rng);
      break;
    case Quality::kOutOfFocus:
      GaussianBlur(signal, std::max(2.5, rng.Uniform(0.02, 0.05) *
                                             double(std::min(signal.width, signal.height))));
      break;
    case Quality::kBlank: {
      // Beam blanked or far off the specimen: a dark frame with a trace of signal.
      const float level = float(rng.Uniform(0.001, 0.004));
      std::fill(signal.pixels.begin(), signal.pixels.end(), level);
      ApplyGradient(signal, 0.2, rng);
      break;
    }
    case Quality::kVeryNoisy:
      dose *= rng.Uniform(0.01, 0.03);
      break;
    default:
      break;
  }
  double peak = 0.0;
  for (float v : signal.pixels) peak = std::max(peak, double(v));
  double reference = quality == Quality::kBlank ? 1.0 : std::max(peak, 1e-6);
  double fill = rng.Uniform(0.45, 0.85);
  if (quality == Quality::kSaturated) {
    // Exposed for a much fainter object: everything above a low quantile clips.
    reference = std::max(SignalQuantile(signal, rng.Uniform(0.25, 0.5)), 1e-6);
    fill = 1.15;
  }
  const double offset = full_scale * rng.Uniform(0.004, 0.02);
  const double read_noise = dtype == DType::kUInt8 ? 0.0 : rng.Uniform(0.5, 3.0);
  // A low-dose exposure keeps roughly the detector gain of a normal one (the
  // operator raises it a little): the image is dim and grainy, not rescaled.
  const double gain_dose =
      quality == Quality::kVeryNoisy ? scene.dose / rng.Uniform(2.0, 8.0) : dose;
  const double electrons_at_reference = gain_dose * reference;
  const double gain = fill * (full_scale - offset) / electrons_at_reference;
  const double log_k = 1000.0;
  const double log_norm = 1.0 / std::log1p(log_k);
  PoissonSampler poisson;
  ArrayWriter writer({signal.height, signal.width}, dtype);
  const double read_variance = read_noise * read_noise;
  for (size_t i = 0; i < signal.pixels.size(); ++i) {
    const double mean = dose * std::max(0.0f, signal.pixels[i]);
    double adu;
    if (scene.log_display) {
      const double electrons = poisson.Draw(rng, mean);
      adu = offset + fill * (full_scale - offset) *
                         std::log1p(log_k * electrons / electrons_at_reference) * log_norm;
    } else if (mean >= PoissonSampler::kNormalAbove) {
      // Shot and read noise together as one normal deviate.
      adu = offset + gain * mean + std::sqrt(gain * gain * mean + read_variance) * FastNormal(rng);
    } else {
      adu = offset + gain * poisson.Draw(rng, mean);
      if (read_noise > 0.0) adu += read_noise * FastNormal(rng);
    }
    writer.Set(i, std::min(adu, full_scale));
  }
  return writer.Take();
}

// ------------------------------------------------------------------ spectra

bool IsSpectrum(SceneKind kind) {
  return kind == SceneKind::kEdsSpectrum || kind == SceneKind::kEelsSpectrum;
}

Result<std::vector<const ElementRecord*>> LookUpElements(const std::vector<std::string>& symbols) {
  std::vector<const ElementRecord*> records;
  for (const std::string& symbol : symbols) {
    const ElementRecord* record = FindElement(symbol);
    if (record == nullptr) {
      return Status::InvalidArgument("scene: unknown element '" + symbol + "'");
    }
    records.push_back(record);
  }
  return records;
}

// Counts of a normalised Gaussian (area `area`, centre `mean`, sd `sigma`, all
// in eV) falling into each channel (channel c centred on offset_ev + c * width_ev),
// integrated over the channel's width.
void AddGaussianCounts(std::vector<double>& counts, double width_ev, double offset_ev, double mean,
                       double sigma, double area) {
  const double reach = 5.0 * sigma + width_ev;
  mean -= offset_ev;
  const int64_t n = int64_t(counts.size());
  const int64_t c0 = std::max<int64_t>(0, int64_t(std::floor((mean - reach) / width_ev)));
  const int64_t c1 = std::min<int64_t>(n - 1, int64_t(std::ceil((mean + reach) / width_ev)));
  const double inv = 1.0 / (std::sqrt(2.0) * sigma);
  for (int64_t c = c0; c <= c1; ++c) {
    const double lo = (double(c) - 0.5) * width_ev;
    const double hi = (double(c) + 0.5) * width_ev;
    counts[size_t(c)] += area * 0.5 * (std::erf((hi - mean) * inv) - std::erf((lo - mean) * inv));
  }
}

// EDS detector efficiency: the window absorbs soft X-rays.
double EdsEfficiency(double kev) { return kev <= 0.0 ? 0.0 : std::exp(-std::pow(0.25 / kev, 2.5)); }

// Silicon drift detector resolution (eV FWHM) at energy `ev`: electronic noise
// plus Fano statistics, given the FWHM at Mn Ka (5895 eV).
double EdsFwhm(double ev, double fwhm_mn) {
  return std::sqrt(std::max(900.0, fwhm_mn * fwhm_mn + 2.32 * (ev - 5895.0)));
}

struct EdsSettings {
  double width_ev;
  double offset_ev;  // energy of channel 0
  double beam_kev;
  double fwhm_mn;
  double energy_scale;  // calibration error (drift): lines land at E * scale
};

// Expected counts of an element's characteristic lines per unit concentration.
std::vector<double> EdsLines(const ElementRecord& element, int64_t channels,
                             const EdsSettings& settings) {
  std::vector<double> counts(size_t(channels), 0.0);
  auto family_main = [&](char family) {
    double e = 0.0;
    double best = -1.0;
    for (const XrayLine& line : element.lines) {
      if (line.family == family && line.weight > best) {
        best = line.weight;
        e = line.kev;
      }
    }
    return e;
  };
  const double k = family_main('K');
  const double l = family_main('L');
  // A family is weaker when a deeper shell is also ionised and fluoresces.
  const double k_factor = 0.3 + 0.7 * std::min(1.0, element.z / 20.0);
  const double l_factor = (k > 0.0 && k < 25.0) ? 0.12 : 0.8;
  const double m_factor = (l > 0.0 && l < 25.0) ? 0.25 : 0.8;
  for (const XrayLine& line : element.lines) {
    if (line.kev * 1.15 >= settings.beam_kev) continue;  // not excited
    const double family = line.family == 'K' ? k_factor : line.family == 'L' ? l_factor : m_factor;
    const double ev = line.kev * 1000.0 * settings.energy_scale;
    const double sigma = EdsFwhm(ev, settings.fwhm_mn) / 2.3548;
    AddGaussianCounts(counts, settings.width_ev, settings.offset_ev, ev, sigma,
                      family * line.weight * EdsEfficiency(line.kev));
  }
  return counts;
}

// Kramers' bremsstrahlung, N(E) ~ Z (E0 - E) / E, seen through the window.
std::vector<double> EdsBremsstrahlung(int64_t channels, const EdsSettings& settings, double z) {
  std::vector<double> counts(size_t(channels), 0.0);
  const double e0 = settings.beam_kev;
  for (int64_t c = 1; c < channels; ++c) {
    const double kev = (settings.offset_ev + double(c) * settings.width_ev) / 1000.0;
    if (kev <= 0.0) continue;
    if (kev >= e0) break;
    counts[size_t(c)] = z * (e0 - kev) / kev * EdsEfficiency(kev) * settings.width_ev / 1000.0;
  }
  return counts;
}

// EELS components on the channel grid.
struct EelsSettings {
  double width_ev;
  double offset_ev;  // energy of channel 0
  double zlp_sigma;  // energy resolution
  double shift_ev;   // energy drift
  double plasmon_ev;
  double plasmon_width;
  double t_over_lambda;
  double background_at_100;  // per eV per zero-loss electron
  double exponent;           // power-law r
};

double EelsBackground(const EelsSettings& s, double ev) {
  const double ec = 30.0;
  return s.background_at_100 *
         std::pow((ev * ev + ec * ec) / (100.0 * 100.0 + ec * ec), -0.5 * s.exponent);
}

// Zero loss, plasmons and the power-law background, per zero-loss electron.
std::vector<double> EelsLowLoss(int64_t channels, const EelsSettings& s) {
  std::vector<double> counts(size_t(channels), 0.0);
  AddGaussianCounts(counts, s.width_ev, s.offset_ev, s.shift_ev, s.zlp_sigma, 1.0);
  // Drude loss function E G Ep^2 / ((E^2 - Ep^2)^2 + (E G)^2), normalised numerically.
  auto drude = [](double e, double ep, double gamma) {
    const double d = e * e - ep * ep;
    return e * gamma * ep * ep / (d * d + e * e * gamma * gamma);
  };
  for (int order = 1; order <= 2; ++order) {
    const double ep = s.plasmon_ev * order;
    const double gamma = s.plasmon_width * order;
    const double weight = order == 1 ? s.t_over_lambda : 0.5 * s.t_over_lambda * s.t_over_lambda;
    double norm = 0.0;
    for (double e = 0.25; e < 10.0 * ep; e += 0.25) norm += drude(e, ep, gamma) * 0.25;
    for (int64_t c = 0; c < channels; ++c) {
      const double e = s.offset_ev + double(c) * s.width_ev - s.shift_ev;
      if (e <= 0.0) continue;
      counts[size_t(c)] += weight * drude(e, ep, gamma) / norm * s.width_ev;
    }
  }
  for (int64_t c = 0; c < channels; ++c) {
    const double e = s.offset_ev + double(c) * s.width_ev - s.shift_ev;
    if (e <= 2.0 * s.plasmon_ev) continue;
    const double ramp = std::min(1.0, (e - 2.0 * s.plasmon_ev) / s.plasmon_ev);
    counts[size_t(c)] += ramp * EelsBackground(s, e) * s.width_ev;
  }
  return counts;
}

// The elements' core-loss edges per zero-loss electron, one array per element
// (its concentration included): a sawtooth from each onset decaying as the
// background does, sharpened into white lines or delayed according to
// the edge, blurred by the resolution. Edges are placed in order of energy so
// that each jump is a ratio to the whole background below it, earlier edges
// included, as jump ratios are measured.
std::vector<std::vector<double>> EelsEdgeComponents(
    const std::vector<const ElementRecord*>& elements, const std::vector<double>& concentrations,
    int64_t channels, const EelsSettings& s, Random& rng) {
  struct Placed {
    size_t element;
    Edge edge;
    double weight;
  };
  std::vector<Placed> placed;
  for (size_t e = 0; e < elements.size(); ++e) {
    double previous_onset = -1e9;
    for (const Edge& edge : elements[e]->edges) {
      // The second edge of a spin-orbit pair (L2 after L3) carries half the weight;
      // shallow edges on the plasmon tail (M2,3 of 3d metals) are weak and broad.
      double weight = edge.onset_ev - previous_onset < 60.0 ? 0.5 : 1.0;
      if (edge.onset_ev < 100.0) weight *= 0.2;
      previous_onset = edge.onset_ev;
      placed.push_back({e, edge, weight * rng.Uniform(0.8, 2.0)});
    }
  }
  std::stable_sort(placed.begin(), placed.end(), [](const Placed& a, const Placed& b) {
    return a.edge.onset_ev < b.edge.onset_ev;
  });
  std::vector<std::vector<double>> out(elements.size(), std::vector<double>(size_t(channels), 0.0));
  std::vector<double> total(size_t(channels), 0.0);
  const double sigma = std::max(s.zlp_sigma, 0.5 * s.width_ev);
  const double white_sigma = std::sqrt(1.5 * 1.5 + sigma * sigma);
  for (const Placed& p : placed) {
    const double onset = p.edge.onset_ev;
    const int64_t first = std::max<int64_t>(
        0, int64_t((onset - 6.0 * white_sigma + s.shift_ev - s.offset_ev) / s.width_ev));
    if (first >= channels) continue;
    const int64_t before = std::clamp<int64_t>(
        int64_t((onset - 3.0 + s.shift_ev - s.offset_ev) / s.width_ev), 0, channels - 1);
    const double background = EelsBackground(s, onset) + total[size_t(before)] / s.width_ev;
    const double jump = p.weight * concentrations[p.element] * background;
    const double tau = rng.Uniform(10.0, 25.0);
    std::vector<double>& counts = out[p.element];
    for (int64_t c = first; c < channels; ++c) {
      const double e = s.offset_ev + double(c) * s.width_ev - s.shift_ev;
      const double x = e - onset;
      const double step = 0.5 * std::erfc(-x / (std::sqrt(2.0) * sigma));
      const double decay = std::pow(std::max(e, onset) / onset, -s.exponent);
      double value = 0.0;
      switch (p.edge.shape) {
        case EdgeShape::kAbrupt: {
          const double d = (x - 3.0) / (1.5 + sigma);
          value = step * decay + 0.6 * std::exp(-0.5 * d * d);  // near-edge fine structure
          break;
        }
        case EdgeShape::kSharp: {
          const double d = (x - 2.0) / white_sigma;
          value = step * decay + 3.0 * std::exp(-0.5 * d * d);
          break;
        }
        case EdgeShape::kDelayed:
          value = x > 0.0 ? (1.0 - std::exp(-x / tau)) * decay * 1.4 : 0.0;
          break;
      }
      counts[size_t(c)] += jump * value * s.width_ev;
      total[size_t(c)] += jump * value * s.width_ev;
    }
  }
  return out;
}

EelsSettings MakeEelsSettings(const SceneSpec& spec, Random& rng) {
  EelsSettings s;
  s.width_ev = spec.pixel_size_nm;
  s.offset_ev = spec.energy_offset_ev;
  s.zlp_sigma = std::max(rng.Uniform(0.3, 1.2), 0.8 * spec.pixel_size_nm) / 2.3548;
  s.shift_ev = 0.0;
  s.plasmon_ev = rng.Uniform(15.0, 25.0);
  s.plasmon_width = rng.Uniform(3.0, 7.0);
  s.t_over_lambda = rng.Uniform(0.2, 0.8);
  s.background_at_100 = rng.Uniform(1e-4, 4e-4);
  s.exponent = rng.Uniform(2.5, 3.5);
  if (spec.quality == Quality::kOutOfFocus) s.zlp_sigma *= 4.0;  // poor energy resolution
  if (spec.quality == Quality::kDrifted) {
    s.shift_ev = rng.Uniform(2.0, 6.0) * (rng.Chance(0.5) ? 1.0 : -1.0);
    s.zlp_sigma *= 2.5;
  }
  return s;
}

EdsSettings MakeEdsSettings(const SceneSpec& spec, Random& rng) {
  EdsSettings s{spec.pixel_size_nm, spec.energy_offset_ev, spec.beam_energy_kev,
                rng.Uniform(122.0, 140.0), 1.0};
  if (spec.quality == Quality::kOutOfFocus) {
    s.fwhm_mn *= 2.5;  // high count rate, short process time
  }
  if (spec.quality == Quality::kDrifted) {
    s.energy_scale = 1.0 + rng.Uniform(0.01, 0.03) * (rng.Chance(0.5) ? 1.0 : -1.0);
  }
  return s;
}

// Spectrum dose by quality: a multiplier of the good exposure. A saturated EDS
// acquisition counts far too fast (see AddPileUp); a saturated EELS one is a
// single readout whose zero-loss peak overflows the 16-bit detector.
double SpectrumDoseFactor(SceneKind kind, Quality quality, Random& rng) {
  switch (quality) {
    case Quality::kVeryNoisy:
      return rng.Uniform(0.002, 0.01);
    case Quality::kSaturated:
      return kind == SceneKind::kEdsSpectrum ? rng.Uniform(20.0, 50.0) : 1.0;
    case Quality::kBlank:
      return 0.0;
    default:
      return 1.0;
  }
}

constexpr double kSpectrumSaturation = 65535.0;  // a 16-bit readout / histogram bin

// Pulse pile-up at a count rate far beyond the processor's: two X-rays arriving
// together are counted as one of their summed energy (sum peaks at 2 Ka, Ka + Kb,
// and a continuum), taking `fraction` of the counts.
void AddPileUp(std::vector<double>& mean, double fraction) {
  const size_t n = mean.size();
  const double total = std::accumulate(mean.begin(), mean.end(), 0.0);
  if (!(total > 0.0)) return;
  std::vector<double> pairs(n, 0.0);
  for (size_t i = 1; i < n; ++i) {
    if (mean[i] < 1e-4 * total / double(n)) continue;
    for (size_t j = i; i + j < n; ++j) pairs[i + j] += (i == j ? 1.0 : 2.0) * mean[i] * mean[j];
  }
  const double pair_total = std::accumulate(pairs.begin(), pairs.end(), 0.0);
  if (!(pair_total > 0.0)) return;
  for (size_t c = 0; c < n; ++c) {
    mean[c] = (1.0 - fraction) * mean[c] + fraction * total * pairs[c] / pair_total;
  }
}

std::vector<double> NoisySpectrum(const std::vector<double>& mean, Quality quality, Random& rng) {
  PoissonSampler poisson;
  std::vector<double> counts(mean.size());
  for (size_t i = 0; i < mean.size(); ++i) {
    double v = poisson.Draw(rng, mean[i]);
    if (quality == Quality::kSaturated) v = std::min(v, kSpectrumSaturation);
    counts[i] = v;
  }
  return counts;
}

// The mean EDS spectrum of a specimen with the given amounts of each element.
struct EdsComponents {
  std::vector<std::vector<double>> per_element;  // lines + the element's bremsstrahlung
  std::vector<double> strobe;                    // the detector's zero-energy pulser peak
};

EdsComponents MakeEdsComponents(const std::vector<const ElementRecord*>& elements, int64_t channels,
                                const EdsSettings& settings, double line_to_continuum) {
  EdsComponents components;
  for (const ElementRecord* element : elements) {
    std::vector<double> lines = EdsLines(*element, channels, settings);
    const std::vector<double> brems = EdsBremsstrahlung(channels, settings, double(element->z));
    double line_total = 0.0;
    double brems_total = 0.0;
    for (double v : lines) line_total += v;
    for (double v : brems) brems_total += v;
    // Scale so that every element gives the same total, lines : continuum fixed.
    const double line_scale = line_total > 0.0 ? line_to_continuum / line_total : 0.0;
    const double brems_scale = brems_total > 0.0 ? 1.0 / brems_total : 0.0;
    for (size_t i = 0; i < lines.size(); ++i) {
      lines[i] = lines[i] * line_scale + brems[i] * brems_scale;
    }
    components.per_element.push_back(std::move(lines));
  }
  components.strobe.assign(size_t(channels), 0.0);
  AddGaussianCounts(components.strobe, settings.width_ev, settings.offset_ev, 0.0, 25.0, 1.0);
  return components;
}

Result<std::vector<double>> EdsMeanSpectrum(const SceneSpec& spec, int64_t channels, Random& rng) {
  SCISEARCH_ASSIGN_OR_RETURN(std::vector<const ElementRecord*> elements,
                             LookUpElements(spec.elements));
  const EdsSettings settings = MakeEdsSettings(spec, rng);
  const EdsComponents components =
      MakeEdsComponents(elements, channels, settings, rng.Uniform(0.6, 1.5));
  const double total = rng.Uniform(2e5, 2e6) * SpectrumDoseFactor(spec.kind, spec.quality, rng);
  std::vector<double> mean(size_t(channels), 0.0);
  double concentration_sum = 0.0;
  std::vector<double> concentration;
  for (size_t e = 0; e < elements.size(); ++e) {
    concentration.push_back(rng.Uniform(0.4, 1.0));
    concentration_sum += concentration.back();
  }
  for (size_t e = 0; e < elements.size(); ++e) {
    const double share = total * concentration[e] / concentration_sum;
    for (int64_t c = 0; c < channels; ++c) {
      mean[size_t(c)] += share * components.per_element[e][size_t(c)];
    }
  }
  // Without elements (or with the beam blanked) the pulser and a little
  // continuum from the support remain.
  const double strobe = rng.Uniform(200.0, 2000.0);
  for (int64_t c = 0; c < channels; ++c) mean[size_t(c)] += strobe * components.strobe[size_t(c)];
  if (elements.empty() && spec.quality != Quality::kBlank) {
    const std::vector<double> carbon = EdsBremsstrahlung(channels, settings, 6.0);
    double sum = 0.0;
    for (double v : carbon) sum += v;
    for (int64_t c = 0; c < channels; ++c) {
      mean[size_t(c)] += 0.05 * total * carbon[size_t(c)] / std::max(sum, 1e-12);
    }
  }
  if (spec.quality == Quality::kSaturated) AddPileUp(mean, rng.Uniform(0.15, 0.3));
  return mean;
}

Result<std::vector<double>> EelsMeanSpectrum(const SceneSpec& spec, int64_t channels, Random& rng) {
  SCISEARCH_ASSIGN_OR_RETURN(std::vector<const ElementRecord*> elements,
                             LookUpElements(spec.elements));
  const EelsSettings settings = MakeEelsSettings(spec, rng);
  const double zero_loss = rng.Uniform(2e7, 1e8) * SpectrumDoseFactor(spec.kind, spec.quality, rng);
  std::vector<double> mean = EelsLowLoss(channels, settings);
  std::vector<double> concentrations;
  for (size_t e = 0; e < elements.size(); ++e) concentrations.push_back(rng.Uniform(0.4, 1.0));
  for (const std::vector<double>& edges :
       EelsEdgeComponents(elements, concentrations, channels, settings, rng)) {
    for (int64_t c = 0; c < channels; ++c) mean[size_t(c)] += edges[size_t(c)];
  }
  for (double& v : mean) v *= zero_loss;
  if (spec.quality == Quality::kBlank) {
    for (double& v : mean) v = rng.Uniform(0.5, 3.0);  // dark counts of a blanked beam
  }
  return mean;
}

// ------------------------------------------------------------------ validation

bool Finite(double v) { return std::isfinite(v); }

Status ValidateSpec(const SceneSpec& spec) {
  const bool spectrum = IsSpectrum(spec.kind);
  // Bounds keep every derived pixel count far inside int64.
  if (!Finite(spec.pixel_size_nm) || spec.pixel_size_nm < (spectrum ? 1e-3 : 1e-5) ||
      spec.pixel_size_nm > (spectrum ? 1000.0 : 1e6)) {
    return Status::InvalidArgument(
        spectrum ? "scene: channel width (pixel_size_nm) must lie in 0.001-1000 eV"
                 : "scene: pixel_size_nm must lie in 1e-5 to 1e6");
  }
  const bool crystal =
      spec.kind == SceneKind::kAtomicLattice || spec.kind == SceneKind::kSpotDiffraction ||
      spec.kind == SceneKind::kRingDiffraction || spec.kind == SceneKind::kNanoparticles;
  if (crystal && (!Finite(spec.lattice_constant_nm) || spec.lattice_constant_nm < 0.05 ||
                  spec.lattice_constant_nm > 100.0)) {
    return Status::InvalidArgument("scene: lattice_constant_nm must lie in 0.05-100 nm");
  }
  if (!Finite(spec.rotation_deg)) {
    return Status::InvalidArgument("scene: rotation_deg is not finite");
  }
  if (int(spec.structure) < 0 || int(spec.structure) > int(CrystalStructure::kWurtzite)) {
    return Status::InvalidArgument("scene: unknown crystal structure");
  }
  if (int(spec.particle_shape) < 0 || int(spec.particle_shape) > int(ParticleShape::kCoreShell)) {
    return Status::InvalidArgument("scene: unknown particle shape");
  }
  if (int(spec.quality) < 0 || int(spec.quality) > int(Quality::kDrifted)) {
    return Status::InvalidArgument("scene: unknown quality");
  }
  if (!Finite(spec.particle_diameter_nm) || spec.particle_diameter_nm <= 0.0 ||
      spec.particle_diameter_nm > 1e5) {
    return Status::InvalidArgument("scene: particle_diameter_nm must lie in (0, 1e5]");
  }
  if (!Finite(spec.particle_size_spread) || spec.particle_size_spread < 0.0 ||
      spec.particle_size_spread > 2.0) {
    return Status::InvalidArgument("scene: particle_size_spread must lie in 0-2");
  }
  if (spec.particle_count < 0 || spec.particle_count > 100000) {
    return Status::InvalidArgument("scene: particle_count must lie in 0-100000");
  }
  if (!Finite(spec.beam_energy_kev) || spec.beam_energy_kev <= 0.0 ||
      spec.beam_energy_kev > 10000.0) {
    return Status::InvalidArgument("scene: beam_energy_kev must lie in (0, 10000]");
  }
  for (const std::string& symbol : spec.elements) {
    if (FindElement(symbol) == nullptr) {
      return Status::InvalidArgument("scene: unknown element '" + symbol + "'");
    }
  }
  return Status::Ok();
}

Status ValidateSize(int64_t value, int64_t minimum, const char* name) {
  if (value < minimum || value > 16384) {
    return Status::InvalidArgument(std::string("scene: ") + name + " " + std::to_string(value) +
                                   " outside " + std::to_string(minimum) + "-16384");
  }
  return Status::Ok();
}

Status ValidateSpectrumDType(DType dtype) {
  if (dtype != DType::kFloat32 && dtype != DType::kInt32) {
    return Status::InvalidArgument("scene: spectra are float32 or int32, not " +
                                   std::string(formats::DTypeName(dtype)));
  }
  return Status::Ok();
}

}  // namespace

Result<formats::NdArray> RenderImage(const SceneSpec& spec, int64_t height, int64_t width,
                                     formats::DType dtype, uint64_t seed) {
  SCISEARCH_RETURN_IF_ERROR(ValidateSpec(spec));
  if (IsSpectrum(spec.kind)) {
    return Status::InvalidArgument("scene: RenderImage given a spectrum kind");
  }
  SCISEARCH_RETURN_IF_ERROR(ValidateSize(height, 8, "height"));
  SCISEARCH_RETURN_IF_ERROR(ValidateSize(width, 8, "width"));
  const std::optional<double> full_scale = ImageFullScale(dtype);
  if (!full_scale) {
    return Status::InvalidArgument(
        "scene: images are uint8, uint16, int16, int32 or float32, not " +
        std::string(formats::DTypeName(dtype)));
  }
  Random rng(Random::Derive(seed, "scene-image"));
  Result<RenderedScene> scene = Status::InvalidArgument("scene: unknown scene kind");
  switch (spec.kind) {
    case SceneKind::kAtomicLattice:
      scene = RenderLattice(spec, height, width, rng);
      break;
    case SceneKind::kNanoparticles:
      scene = RenderNanoparticles(spec, height, width, rng);
      break;
    case SceneKind::kSpotDiffraction:
      scene = RenderSpotPattern(spec, height, width, dtype, rng);
      break;
    case SceneKind::kRingDiffraction:
      scene = RenderRingPattern(spec, height, width, dtype, rng);
      break;
    case SceneKind::kSemTexture:
      scene = RenderSemTexture(spec, height, width, rng);
      break;
    default:
      break;
  }
  if (!scene.ok()) return scene.status();
  return Expose(std::move(scene).value(), spec.quality, dtype, *full_scale, rng);
}

Result<formats::NdArray> RenderSpectrum(const SceneSpec& spec, int64_t channels,
                                        formats::DType dtype, uint64_t seed) {
  SCISEARCH_RETURN_IF_ERROR(ValidateSpec(spec));
  if (!IsSpectrum(spec.kind)) {
    return Status::InvalidArgument("scene: RenderSpectrum given an image kind");
  }
  SCISEARCH_RETURN_IF_ERROR(ValidateSize(channels, 8, "channels"));
  SCISEARCH_RETURN_IF_ERROR(ValidateSpectrumDType(dtype));
  Random rng(Random::Derive(seed, "scene-spectrum"));
  Result<std::vector<double>> mean = spec.kind == SceneKind::kEdsSpectrum
                                         ? EdsMeanSpectrum(spec, channels, rng)
                                         : EelsMeanSpectrum(spec, channels, rng);
  if (!mean.ok()) return mean.status();
  const std::vector<double> counts = NoisySpectrum(*mean, spec.quality, rng);
  ArrayWriter writer({channels}, dtype);
  for (size_t c = 0; c < counts.size(); ++c) writer.Set(c, counts[c]);
  return writer.Take();
}

Result<formats::NdArray> RenderSpectrumImage(const SceneSpec& spec, int64_t height, int64_t width,
                                             int64_t channels, formats::DType dtype,
                                             uint64_t seed) {
  SCISEARCH_RETURN_IF_ERROR(ValidateSpec(spec));
  if (!IsSpectrum(spec.kind)) {
    return Status::InvalidArgument("scene: RenderSpectrumImage given an image kind");
  }
  SCISEARCH_RETURN_IF_ERROR(ValidateSize(height, 1, "height"));
  SCISEARCH_RETURN_IF_ERROR(ValidateSize(width, 1, "width"));
  SCISEARCH_RETURN_IF_ERROR(ValidateSize(channels, 8, "channels"));
  SCISEARCH_RETURN_IF_ERROR(ValidateSpectrumDType(dtype));
  if (height * width * channels > (int64_t(1) << 28)) {
    return Status::InvalidArgument("scene: spectrum image of " +
                                   std::to_string(height * width * channels) +
                                   " values exceeds 2^28");
  }
  SCISEARCH_ASSIGN_OR_RETURN(std::vector<const ElementRecord*> elements,
                             LookUpElements(spec.elements));
  Random rng(Random::Derive(seed, "scene-spectrum-image"));

  // The maps: maps[0] is the specimen's thickness (support plus objects), then one
  // map per phase; element e reads maps[element_map[e]].
  std::vector<Image> maps;
  maps.emplace_back(height, width, 0.3f);
  std::vector<size_t> element_map(elements.size(), 0);
  if (spec.particle_count > 0) {
    const double mean_px =
        std::clamp(std::sqrt(double(height * width) / (kPi * spec.particle_count)), 1.5,
                   0.5 * double(std::min(height, width)) + 1.0);
    const std::vector<Particle> particles =
        PlaceParticles(spec.particle_shape, spec.particle_count, mean_px, spec.particle_size_spread,
                       height, width, rng);
    maps.emplace_back(height, width, 0.0f);  // 1: particles, or their cores
    maps.emplace_back(height, width, 0.0f);  // 2: shells
    maps.emplace_back(height, width, 1.0f);  // 3: the carbon support
    const bool core_shell = spec.particle_shape == ParticleShape::kCoreShell;
    for (const Particle& p : particles) {
      const int64_t x0 = std::max<int64_t>(0, int64_t(std::floor(p.centre.x - p.reach_px - 1.0)));
      const int64_t x1 =
          std::min<int64_t>(width - 1, int64_t(std::ceil(p.centre.x + p.reach_px + 1.0)));
      const int64_t y0 = std::max<int64_t>(0, int64_t(std::floor(p.centre.y - p.reach_px - 1.0)));
      const int64_t y1 =
          std::min<int64_t>(height - 1, int64_t(std::ceil(p.centre.y + p.reach_px + 1.0)));
      const double c = std::cos(p.angle);
      const double s = std::sin(p.angle);
      const double r = 0.5 * p.size_px;
      for (int64_t y = y0; y <= y1; ++y) {
        for (int64_t x = x0; x <= x1; ++x) {
          const double dx = double(x) - p.centre.x;
          const double dy = double(y) - p.centre.y;
          if (core_shell) {
            const double rho2 = dx * dx + dy * dy;
            const double outer = rho2 < r * r ? std::sqrt(1.0 - rho2 / (r * r)) : 0.0;
            const double rc = p.core_ratio * r;
            const double core = rho2 < rc * rc ? std::sqrt(rc * rc - rho2) / r : 0.0;
            maps[1].At(y, x) += float(core);
            maps[2].At(y, x) += float(outer - core);
            maps[0].At(y, x) += float(outer);
          } else {
            const double t =
                ParticleThickness(spec.particle_shape, p, c * dx + s * dy, -s * dx + c * dy);
            maps[1].At(y, x) += float(t);
            maps[0].At(y, x) += float(t);
          }
        }
      }
    }
    size_t heavy = 0;
    size_t heavy_count = 0;
    for (const ElementRecord* e : elements) heavy_count += e->symbol == "C" ? 0 : 1;
    for (size_t e = 0; e < elements.size(); ++e) {
      if (elements[e]->symbol == "C") {
        element_map[e] = 3;
      } else {
        element_map[e] = (core_shell && heavy >= (heavy_count + 1) / 2) ? 2 : 1;
        ++heavy;
      }
    }
  } else {
    // Atomic-resolution mapping: each species on its own columns, about six
    // pixels apart.
    const ProjectedCell cell = ProjectZoneAxis(spec.structure, 1.0);
    LatticeGeometry geometry;
    geometry.cell = cell;
    geometry.rotation = spec.rotation_deg * kPi / 180.0;
    geometry.pixel_nm = MinColumnSpacing(cell) / 6.0;
    geometry.centre_px = {0.5 * double(width), 0.5 * double(height)};
    geometry.origin = SitePosition(cell, rng.Uniform(), rng.Uniform());
    const int species = SpeciesCount(spec.structure);
    for (int i = 0; i < species; ++i) maps.emplace_back(height, width, 0.0f);
    maps.emplace_back(height, width, 0.2f);  // elements beyond the structure's species
    GaussianStamper stamper;
    const double radius_nm =
        0.5 * std::hypot(double(width), double(height)) * geometry.pixel_nm + 1.0;
    ForEachColumn(geometry, radius_nm, [&](const ColumnSite& site, Vec2 p) {
      const Vec2 pixel = CrystalToPixel(geometry, p);
      stamper.Add(maps[size_t(1 + site.species)], pixel.x, pixel.y, 1.3, site.atoms);
    });
    for (float& v : maps[0].pixels) v = 1.0f;
    for (size_t e = 0; e < elements.size(); ++e) {
      element_map[e] = e < size_t(species) ? 1 + e : size_t(1 + species);
    }
  }

  std::vector<double> concentration;
  for (size_t e = 0; e < elements.size(); ++e) concentration.push_back(rng.Uniform(0.5, 1.0));
  const double dose_factor = SpectrumDoseFactor(spec.kind, spec.quality, rng);
  const size_t n = size_t(channels);
  std::vector<std::vector<double>> per_element;  // counts per unit amount
  std::vector<double> thickness_component(n, 0.0);
  std::vector<double> constant_component(n, 0.0);
  if (spec.kind == SceneKind::kEdsSpectrum) {
    const EdsSettings settings = MakeEdsSettings(spec, rng);
    EdsComponents components =
        MakeEdsComponents(elements, channels, settings, rng.Uniform(0.6, 1.5));
    const double counts = rng.Uniform(100.0, 1000.0) * dose_factor;
    for (size_t e = 0; e < elements.size(); ++e) {
      for (double& v : components.per_element[e]) v *= counts * concentration[e];
      per_element.push_back(std::move(components.per_element[e]));
    }
    const double strobe = rng.Uniform(2.0, 10.0);
    for (size_t c = 0; c < n; ++c) constant_component[c] = strobe * components.strobe[c];
  } else {
    const EelsSettings settings = MakeEelsSettings(spec, rng);
    const double zero_loss = rng.Uniform(1e5, 1e6) * dose_factor;
    std::vector<double> zlp(n, 0.0);
    AddGaussianCounts(zlp, settings.width_ev, settings.offset_ev, settings.shift_ev,
                      settings.zlp_sigma, 1.0);
    const std::vector<double> low_loss = EelsLowLoss(channels, settings);
    for (size_t c = 0; c < n; ++c) {
      constant_component[c] = zero_loss * zlp[c];
      thickness_component[c] = zero_loss * (low_loss[c] - zlp[c]);
    }
    per_element = EelsEdgeComponents(elements, concentration, channels, settings, rng);
    for (std::vector<double>& edges : per_element) {
      for (double& v : edges) v *= zero_loss;
    }
  }

  PoissonSampler poisson;
  ArrayWriter writer({height, width, channels}, dtype);
  std::vector<double> mean(n);
  for (int64_t y = 0; y < height; ++y) {
    for (int64_t x = 0; x < width; ++x) {
      const double thickness = maps[0].At(y, x);
      for (size_t c = 0; c < n; ++c) {
        mean[c] = constant_component[c] + thickness * thickness_component[c];
      }
      for (size_t e = 0; e < elements.size(); ++e) {
        const double amount = maps[element_map[e]].At(y, x);
        if (amount <= 1e-6) continue;
        const std::vector<double>& component = per_element[e];
        for (size_t c = 0; c < n; ++c) mean[c] += amount * component[c];
      }
      const size_t first = size_t(y * width + x) * n;
      for (size_t c = 0; c < n; ++c) {
        double v = poisson.Draw(rng, mean[c]);
        if (spec.quality == Quality::kSaturated) v = std::min(v, kSpectrumSaturation);
        writer.Set(first + c, v);
      }
    }
  }
  return writer.Take();
}

std::vector<double> XrayLinesKeV(const std::string& element) {
  std::vector<double> energies;
  const ElementRecord* record = FindElement(element);
  if (record == nullptr) return energies;
  for (char family : {'K', 'L', 'M'}) {
    double best = -1.0;
    double energy = 0.0;
    for (const XrayLine& line : record->lines) {
      if (line.family == family && line.weight > best) {
        best = line.weight;
        energy = line.kev;
      }
    }
    if (best > 0.0 && energy >= 0.1 && energy <= 20.0) energies.push_back(energy);
  }
  std::sort(energies.begin(), energies.end());
  return energies;
}

std::vector<double> EelsEdgesEv(const std::string& element) {
  std::vector<double> onsets;
  const ElementRecord* record = FindElement(element);
  if (record == nullptr) return onsets;
  for (const Edge& edge : record->edges) onsets.push_back(edge.onset_ev);
  std::sort(onsets.begin(), onsets.end());
  return onsets;
}

}  // namespace scisearch::simulate
