// The thumbnail module: renders a small PNG preview of a signal's data.
//
// Thread safety: RenderThumbnail is a pure function of its arguments and may be
// called from any number of threads at once.
#pragma once

#include <cstdint>
#include <optional>
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

// --- What to preview ------------------------------------------------------
// Thumbnails (at ingest) and the vision stage both look at one frame of a dataset; these
// choose it the same way for both.

// Frames are read with a step so that at most about this many pixels per side are read.
inline constexpr int64_t kMaxPreviewSide = 1024;
// Spectra are read with a step so that at most this many channels are read.
inline constexpr int64_t kMaxSpectrumPoints = 65536;

// True when the preview of `signal` is a frame (its last two axes), false when it is a
// spectrum (its last axis): spectrum modes, and signals whose second-last axis is a
// navigation axis, give spectra.
bool HasFrame(const formats::Signal& signal);

// The signal to show: the first with a frame, else the first with data; nullopt when the
// dataset has no signal with data.
std::optional<size_t> ChoosePreviewSignal(const formats::Dataset& dataset);

// The bounded selection to read: index 0 of every leading axis and the frame (or spectrum)
// subsampled with one step so that its longer side is at most about `max_side` (or the
// spectrum at most kMaxSpectrumPoints long).
formats::Hyperslab PreviewSlab(const formats::Signal& signal, int64_t max_side = kMaxPreviewSide);

// A frame as grey levels for a model: height x width floats in row-major order.
struct GreyFrame {
  std::vector<float> pixels;  // 0 = the 0.5th percentile, 1 = the 99.5th; NaN-free
  int height = 0;
  int width = 0;
};

// The frame spanned by the last two axes of `data` (the first frame of a stack), area-averaged
// so that its longer side is at most `max_side`, stretched as RenderThumbnail stretches it
// (percentiles, log scale for diffraction) and clamped to [0, 1]; RGB(A) becomes luminance;
// non-finite pixels become 0.5. Frames smaller than `max_side` keep their size.
// Returns kInvalidArgument for an empty array, fewer than two axes of size > 1, a byte count
// that does not match the shape, or a `max_side` below 1. Pure; any thread.
Result<GreyFrame> PrepareGreyFrame(const formats::NdArray& data, formats::Mode mode, int max_side);

}  // namespace scisearch::thumbnail
