// Renders what a microscope sees, from simple physical models. Internal to the
// simulate module: the facility plan says what each file shows (a SceneSpec),
// these functions turn that into pixels or counts.
//
// Every render is a pure function of its arguments: the same spec, size and
// seed give the same array on every machine (the random source is our own
// splitmix/xoshiro generator, never std::distributions, whose output differs
// between standard libraries).
//
// Thread safety: all functions may be called from any thread at once.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "formats/formats.h"

namespace scisearch::simulate {

enum class SceneKind {
  kAtomicLattice,    // HRTEM / HAADF-STEM of a crystal on a zone axis: atom columns
  kNanoparticles,    // particles on an amorphous carbon support
  kSpotDiffraction,  // single-crystal diffraction pattern (SAED / nanobeam)
  kRingDiffraction,  // polycrystalline rings
  kSemTexture,       // SEM surface: grains, pores, particles, topographic shading
  kEdsSpectrum,      // X-ray spectrum: bremsstrahlung + characteristic lines
  kEelsSpectrum,     // EELS: zero loss, plasmon, core-loss edges on a power-law background
};

enum class CrystalStructure { kRockSalt, kPerovskite, kFcc, kBcc, kHcp, kDiamond, kWurtzite };

enum class ParticleShape { kSphere, kCube, kRod, kTriangle, kCoreShell };

// What can go wrong with an acquisition; "find the good ones" is a real task.
enum class Quality { kGood, kOutOfFocus, kSaturated, kBlank, kVeryNoisy, kDrifted };

struct SceneSpec {
  SceneKind kind = SceneKind::kAtomicLattice;
  Quality quality = Quality::kGood;
  double pixel_size_nm = 0.02;  // real-space pixel size (images); 1/nm per pixel for diffraction;
                                // eV per channel for spectra
  // kAtomicLattice, kSpotDiffraction, kRingDiffraction:
  CrystalStructure structure = CrystalStructure::kRockSalt;
  double lattice_constant_nm = 0.61;
  double rotation_deg = 0.0;
  bool with_defects = false;  // vacancies, a dislocation or a grain boundary
  // kNanoparticles:
  ParticleShape particle_shape = ParticleShape::kSphere;
  double particle_diameter_nm = 5.0;  // mean; sizes spread by particle_size_spread (relative)
  double particle_size_spread = 0.1;
  int particle_count = 30;
  // Spectra: element symbols ("Pb", "Se", "O", ...) whose lines/edges appear.
  std::vector<std::string> elements;
  double beam_energy_kev = 200.0;
  double energy_offset_ev = 0.0;  // spectra: the energy of channel 0 (the axis offset)
  // Image contrast: true for dark-field / HAADF (bright atoms on dark), false for bright field.
  bool dark_field = true;
};

// Renders an image scene (every kind but the spectra) of height x width pixels as
// `dtype` (kUInt8, kUInt16, kInt16, kInt32 or kFloat32), counts scaled to the type's
// range like a detector's. Errors: kInvalidArgument for a spectrum kind, a size
// below 8 or above 16384, or an unsupported dtype.
Result<formats::NdArray> RenderImage(const SceneSpec& spec, int64_t height, int64_t width,
                                     formats::DType dtype, uint64_t seed);

// Renders a spectrum scene as `channels` counts (kFloat32 or kInt32), channel i at
// energy offset + i * pixel_size_nm (the spec's channel width). Errors as RenderImage.
Result<formats::NdArray> RenderSpectrum(const SceneSpec& spec, int64_t channels,
                                        formats::DType dtype, uint64_t seed);

// A spectrum image: a height x width scan of spectra (shape height, width, channels)
// where the elements' intensities vary over a nanoparticle/lattice map.
Result<formats::NdArray> RenderSpectrumImage(const SceneSpec& spec, int64_t height, int64_t width,
                                             int64_t channels, formats::DType dtype, uint64_t seed);

// Energies (keV) of the characteristic X-ray lines (Ka, La, Ma as the element has
// them in 0.1-20 keV) and EELS edge onsets (eV) used by the renderers, for tests
// and for the facility plan's truth. Empty for an element the tables do not know.
std::vector<double> XrayLinesKeV(const std::string& element);
std::vector<double> EelsEdgesEv(const std::string& element);

}  // namespace scisearch::simulate
