// How much a vision model trusts its texture head beside its CNN. Internal to src/vision
// (vision.h is the module's interface); plain C++, no libtorch.
#pragma once

#include <vector>

namespace scisearch::vision {

// The texture head's share, chosen on held-out images. `loss[s][i]` is the log-loss of
// held-out image i when the share is `shares[s]`; `fallback` is one of `shares`. Returns the
// share of the lowest mean loss when its gain over `fallback`, image by image, exceeds twice
// the standard error of that gain; `fallback` otherwise (also with fewer than two images, or
// rows of unequal length). Pure; any thread.
double ChooseTextureShare(const std::vector<double>& shares,
                          const std::vector<std::vector<double>>& loss, double fallback);

}  // namespace scisearch::vision
