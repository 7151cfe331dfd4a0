// The thumbnail module: renders a small PNG preview of a signal's data.
//
// Thread safety: RenderThumbnail is a pure function of its arguments and may be
// called from any number of threads at once.
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "formats/formats.h"

namespace scisearch::thumbnail {

// A PNG file in memory.
struct PngImage {
  std::vector<uint8_t> bytes;  // the whole PNG file
  int width = 0;
  int height = 0;
};

// The canvas of spectrum plots.
inline constexpr int kPlotWidth = 256;
inline constexpr int kPlotHeight = 160;

// Renders `data` as a PNG.
//
// Axes of size 1 are ignored. What remains decides the picture:
//  - two or more axes: the frame spanned by the last two axes (the first frame
//    of a stack), downsampled by area averaging so that its longer side is at
//    most `max_side` pixels; a frame smaller than half of `max_side` is enlarged
//    by the largest whole factor that fits, each pixel a sharp square. Grey levels stretch from the
//    0.5th to the 99.5th percentile of the finite values; diffraction modes (kDiffraction, k4dStem)
//    are shown on a log scale first. Complex data shows its magnitude. RGB(A) data stays colour
//    (alpha dropped) with no stretch.
//  - one axis: a line plot of the values (a spectrum) in black on a white
//    kPlotWidth x kPlotHeight canvas with grey axis lines at the left and bottom.
// Returns kInvalidArgument for an empty array, one whose byte count does not
// match its shape, or a `max_side` below 1; kInternal if libpng fails.
Result<PngImage> RenderThumbnail(const formats::NdArray& data, formats::Mode mode,
                                 int max_side = 256);

}  // namespace scisearch::thumbnail
