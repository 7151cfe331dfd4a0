// Reading hyperslabs of arrays stored densely in C order: the one place where
// readers of raw binary layouts (TIA, DM, MRC, ...) turn a selection into reads.
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "formats/byte_source.h"
#include "formats/formats.h"

namespace scisearch::formats {

// Reads `slab` of an array of `shape` stored densely in C order at byte `offset` of
// `source`, elements of `dtype` in byte order `order`. Returns a little-endian array
// of shape slab.count. Reads only the runs of bytes the selection touches.
Result<NdArray> ReadContiguousSlab(const FileSource& source, uint64_t offset, DType dtype,
                                   ByteOrder order, const std::vector<int64_t>& shape,
                                   const Hyperslab& slab);

// Copies `slab` out of an in-memory array (for formats that must decode a whole
// frame first, such as packed complex or compressed data).
Result<NdArray> SliceArray(const NdArray& array, const Hyperslab& slab);

// Reads `slab` of a signal whose axes are a permutation of the stored array's:
// signal axis k is stored axis `stored_axis_of[k]`. Selects the matching slab of the
// stored array (ReadContiguousSlab) and transposes it into the signal's axis order.
// For readers that present an array in another order than the file stores it
// (spectrum images stored with the energy axis slowest are shown energy-last).
Result<NdArray> ReadPermutedSlab(const FileSource& source, uint64_t offset, DType dtype,
                                 ByteOrder order, const std::vector<int64_t>& stored_shape,
                                 const std::vector<int>& stored_axis_of, const Hyperslab& slab);

// Returns `array` with its axes reordered: output axis k is input axis `axis_of[k]`.
Result<NdArray> TransposeArray(const NdArray& array, const std::vector<int>& axis_of);

// The product of `shape`, or an error when it overflows or has a negative entry.
Result<int64_t> CheckedElementCount(const std::vector<int64_t>& shape);

}  // namespace scisearch::formats
