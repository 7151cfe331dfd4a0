// Choosing what part of a dataset to read for its thumbnail, private to ingest.
#pragma once

#include <cstdint>
#include <optional>

#include "formats/formats.h"

namespace scisearch::ingest::internal {

// Frames are read with a step so that at most about this many pixels per side are read.
inline constexpr int64_t kMaxThumbnailSide = 1024;
// Spectra are read with a step so that at most this many channels are read.
inline constexpr int64_t kMaxSpectrumPoints = 65536;

// True when the thumbnail of `signal` is a frame (its last two axes), false
// when it is a spectrum (its last axis): spectrum modes, and signals whose
// second-last axis is a navigation axis, give spectra.
bool HasFrame(const formats::Signal& signal);

// The signal to show: the first with a frame, else signal 0; nullopt when the
// dataset has no signal with data.
std::optional<size_t> ChooseThumbnailSignal(const formats::Dataset& dataset);

// The bounded selection to read: index 0 of every leading axis and the frame
// (or spectrum) subsampled with one step so that it fits the limits above.
formats::Hyperslab ThumbnailSlab(const formats::Signal& signal);

}  // namespace scisearch::ingest::internal
