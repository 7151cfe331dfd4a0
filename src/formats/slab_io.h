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

// The product of `shape`, or an error when it overflows or has a negative entry.
Result<int64_t> CheckedElementCount(const std::vector<int64_t>& shape);

}  // namespace scisearch::formats
