#include "formats/slab_io.h"

#include <cstring>
#include <limits>
#include <string>

namespace scisearch::formats {
namespace {

// Calls visit(source_element_index, destination_element_index, count, step) for every
// innermost run of the selection; runs along the last axis, merged with the axes
// before it while those are taken whole with step 1.
template <typename Visit>
Status ForEachRun(const std::vector<int64_t>& shape, const Hyperslab& slab, Visit&& visit) {
  const size_t rank = shape.size();
  if (rank == 0) return visit(int64_t{0}, int64_t{0}, int64_t{1}, int64_t{1});
  for (int64_t c : slab.count) {
    if (c == 0) return Status::Ok();
  }
  std::vector<int64_t> strides(rank, 1);
  for (size_t k = rank - 1; k > 0; --k) strides[k - 1] = strides[k] * shape[k];

  // Merge trailing axes taken whole into one contiguous run.
  size_t inner = rank - 1;
  int64_t run = slab.count[inner];
  int64_t run_step = slab.step[inner];
  if (run_step == 1 && slab.start[inner] == 0 && run == shape[inner]) {
    while (inner > 0 && slab.step[inner - 1] == 1 && slab.start[inner - 1] == 0 &&
           slab.count[inner - 1] == shape[inner - 1]) {
      --inner;
      run *= shape[inner];
    }
    if (inner > 0 && slab.step[inner - 1] == 1) {
      // The axis before the merged block is contiguous too, partially taken.
      --inner;
      run *= slab.count[inner];
    }
  }

  std::vector<int64_t> index(inner, 0);  // position in the outer axes, in selection units
  int64_t dst = 0;
  while (true) {
    int64_t src = 0;
    for (size_t k = 0; k < inner; ++k)
      src += (slab.start[k] + index[k] * slab.step[k]) * strides[k];
    src += slab.start[inner] * strides[inner];
    const int64_t step = (run_step == 1) ? 1 : run_step * strides[inner];
    SCISEARCH_RETURN_IF_ERROR(visit(src, dst, run, step));
    dst += run;
    size_t k = inner;
    while (k > 0) {
      --k;
      if (++index[k] < slab.count[k]) break;
      index[k] = 0;
      if (k == 0) return Status::Ok();
    }
    if (inner == 0) return Status::Ok();
  }
}

}  // namespace

Result<int64_t> CheckedElementCount(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return Status::Corrupt("negative dimension " + std::to_string(d));
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d) {
      return Status::Corrupt("array dimensions overflow 64 bits");
    }
    n *= d;
  }
  return n;
}

Result<NdArray> ReadContiguousSlab(const FileSource& source, uint64_t offset, DType dtype,
                                   ByteOrder order, const std::vector<int64_t>& shape,
                                   const Hyperslab& slab) {
  SCISEARCH_RETURN_IF_ERROR(slab.Validate(shape));
  SCISEARCH_ASSIGN_OR_RETURN(int64_t total, CheckedElementCount(shape));
  const uint64_t esize = DTypeSize(dtype);
  if (uint64_t(total) > (source.size() / esize) + 1 || offset > source.size() ||
      uint64_t(total) * esize > source.size() - offset) {
    return Status::Corrupt(source.path().string() + ": array of " + std::to_string(total) +
                           " elements at offset " + std::to_string(offset) +
                           " does not fit in the file (" + std::to_string(source.size()) +
                           " bytes)");
  }
  NdArray out;
  out.dtype = dtype;
  out.shape = slab.count;
  SCISEARCH_ASSIGN_OR_RETURN(int64_t n, CheckedElementCount(slab.count));
  out.bytes.resize(uint64_t(n) * esize);
  std::vector<uint8_t> scratch;
  Status st =
      ForEachRun(shape, slab, [&](int64_t src, int64_t dst, int64_t count, int64_t step) -> Status {
        uint8_t* to = out.bytes.data() + uint64_t(dst) * esize;
        const uint64_t from = offset + uint64_t(src) * esize;
        if (step == 1) return source.ReadAt(from, uint64_t(count) * esize, to);
        // Strided: read the covering span when it is small, else element by element.
        const uint64_t span = (uint64_t(count - 1) * uint64_t(step) + 1) * esize;
        if (span <= (4u << 20) && span <= 16 * uint64_t(count) * esize) {
          scratch.resize(span);
          SCISEARCH_RETURN_IF_ERROR(source.ReadAt(from, span, scratch.data()));
          for (int64_t i = 0; i < count; ++i) {
            std::memcpy(to + uint64_t(i) * esize, scratch.data() + uint64_t(i * step) * esize,
                        esize);
          }
          return Status::Ok();
        }
        for (int64_t i = 0; i < count; ++i) {
          SCISEARCH_RETURN_IF_ERROR(
              source.ReadAt(from + uint64_t(i * step) * esize, esize, to + uint64_t(i) * esize));
        }
        return Status::Ok();
      });
  SCISEARCH_RETURN_IF_ERROR(st);
  if (order == ByteOrder::kBig) {
    size_t word = esize;
    if (dtype == DType::kComplex64 || dtype == DType::kComplex128) word = esize / 2;
    if (dtype == DType::kRGB8 || dtype == DType::kRGBA8) word = 1;
    SwapBytesInPlace(out.bytes.data(), out.bytes.size(), word);
  }
  return out;
}

Result<NdArray> SliceArray(const NdArray& array, const Hyperslab& slab) {
  SCISEARCH_RETURN_IF_ERROR(slab.Validate(array.shape));
  const uint64_t esize = DTypeSize(array.dtype);
  if (uint64_t(array.ElementCount()) * esize != array.bytes.size()) {
    return Status::Internal("array buffer does not match its shape");
  }
  NdArray out;
  out.dtype = array.dtype;
  out.shape = slab.count;
  SCISEARCH_ASSIGN_OR_RETURN(int64_t n, CheckedElementCount(slab.count));
  out.bytes.resize(uint64_t(n) * esize);
  Status st = ForEachRun(
      array.shape, slab, [&](int64_t src, int64_t dst, int64_t count, int64_t step) -> Status {
        for (int64_t i = 0; i < count; ++i) {
          std::memcpy(out.bytes.data() + uint64_t(dst + i) * esize,
                      array.bytes.data() + uint64_t(src + i * step) * esize, esize);
        }
        return Status::Ok();
      });
  SCISEARCH_RETURN_IF_ERROR(st);
  return out;
}

Result<NdArray> TransposeArray(const NdArray& array, const std::vector<int>& axis_of) {
  const size_t rank = array.shape.size();
  if (axis_of.size() != rank) return Status::InvalidArgument("transpose: wrong number of axes");
  std::vector<bool> used(rank, false);
  for (int a : axis_of) {
    if (a < 0 || size_t(a) >= rank || used[size_t(a)]) {
      return Status::InvalidArgument("transpose: not a permutation of the axes");
    }
    used[size_t(a)] = true;
  }
  const size_t esize = DTypeSize(array.dtype);
  if (uint64_t(array.ElementCount()) * esize != array.bytes.size()) {
    return Status::Internal("array buffer does not match its shape");
  }
  NdArray out;
  out.dtype = array.dtype;
  out.shape.resize(rank);
  for (size_t k = 0; k < rank; ++k) out.shape[k] = array.shape[size_t(axis_of[k])];
  out.bytes.resize(array.bytes.size());
  if (out.bytes.empty()) return out;
  // Strides of the input, in elements, taken in output axis order.
  std::vector<int64_t> in_strides(rank, 1);
  for (size_t k = rank; k-- > 1;) in_strides[k - 1] = in_strides[k] * array.shape[k];
  std::vector<int64_t> stride_of_out(rank);
  for (size_t k = 0; k < rank; ++k) stride_of_out[k] = in_strides[size_t(axis_of[k])];
  std::vector<int64_t> index(rank, 0);
  const int64_t n = out.ElementCount();
  int64_t src = 0;
  for (int64_t dst = 0; dst < n; ++dst) {
    std::memcpy(out.bytes.data() + uint64_t(dst) * esize,
                array.bytes.data() + uint64_t(src) * esize, esize);
    for (size_t k = rank; k-- > 0;) {
      src += stride_of_out[k];
      if (++index[k] < out.shape[k]) break;
      src -= stride_of_out[k] * out.shape[k];
      index[k] = 0;
    }
  }
  return out;
}

Result<NdArray> ReadPermutedSlab(const FileSource& source, uint64_t offset, DType dtype,
                                 ByteOrder order, const std::vector<int64_t>& stored_shape,
                                 const std::vector<int>& stored_axis_of, const Hyperslab& slab) {
  const size_t rank = stored_shape.size();
  if (stored_axis_of.size() != rank) return Status::InvalidArgument("permuted read: wrong rank");
  std::vector<int64_t> shape(rank);
  for (size_t k = 0; k < rank; ++k) shape[k] = stored_shape[size_t(stored_axis_of[k])];
  SCISEARCH_RETURN_IF_ERROR(slab.Validate(shape));
  Hyperslab stored = Hyperslab::All(stored_shape);
  for (size_t k = 0; k < rank; ++k) {
    const size_t a = size_t(stored_axis_of[k]);
    stored.start[a] = slab.start[k];
    stored.count[a] = slab.count[k];
    stored.step[a] = slab.step[k];
  }
  SCISEARCH_ASSIGN_OR_RETURN(
      NdArray raw, ReadContiguousSlab(source, offset, dtype, order, stored_shape, stored));
  return TransposeArray(raw, stored_axis_of);
}

}  // namespace scisearch::formats
