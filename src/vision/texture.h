// Texture statistics of a frame: what the vision model's texture head reads beside the CNN.
// Internal to src/vision (vision.h is the module's interface); plain C++, no libtorch.
//
// Micrographs of one material class share a texture more than a layout: lamellae are
// locally oriented (high structure-tensor coherence), particles are not; the grey-level
// histogram and local binary patterns tell phases and their boundaries apart. A linear model
// over these statistics classified the uhcs3 micrographs better than the CNN did (see
// bench/vision_texture_baseline.py, the prototype these follow).
#pragma once

#include <vector>

#include "thumbnail/thumbnail.h"

namespace scisearch::vision {

// The number of statistics of one view:
//   14  intensity histogram (12 bins over -3..3 standard deviations), skewness, kurtosis;
//   28  structure-tensor coherence at 4 scales (6-bin histogram and log mean energy);
//    5  log mean |Laplacian of Gaussian| at 5 scales;
//   50  uniform local binary patterns (10 bins) at radii 1, 2, 4, and 2, 4 at half size.
// Scales are octaves of an image pyramid (2 x 2 means), so a statistic at scale s costs
// 1/s^2 of the frame's pixels.
inline constexpr int kTextureStatisticsPerView = 97;

// The statistics of `frame` and, when its shorter side is at least kMinSideForCrops, of
// five crops of half its height and width (the four quadrants, then the centre): one vector
// of kTextureStatisticsPerView finite values per view, the whole frame first. Each view is
// taken as standardised to mean 0 and standard deviation 1; a crop's filters see the
// frame's pixels beyond its edges. A frame with no pixels, or whose pixel count does not
// match its shape, gives no view. Pure; any thread.
inline constexpr int kMinSideForCrops = 64;
std::vector<std::vector<float>> TextureViews(const thumbnail::GreyFrame& frame);

}  // namespace scisearch::vision
