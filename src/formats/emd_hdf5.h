// The EMD parser on HDF5's C API. Private to scisearch-hdf5-worker: Debian's libhdf5
// is not thread-safe and crashes, corrupts its heap or loops forever on some damaged
// files, so the scisearch process itself never loads it. OpenEmd (emd_reader.cc)
// asks a worker process, which calls this.
#pragma once

#include <filesystem>
#include <memory>
#include <vector>

#include "common/status.h"
#include "formats/formats.h"

namespace scisearch::formats {

// An EMD file opened with HDF5.
struct Hdf5Emd {
  // Keeps the file open and reads hyperslabs with HDF5. Its dataset() is the file's
  // whole dataset except that every signal's metadata tree is an empty object: the
  // trees are in `metadata`, so that the worker can send them without a copy.
  std::unique_ptr<DatasetReader> reader;
  std::vector<Metadata> metadata;  // entry k: the metadata tree of signal k
};

// Opens a Berkeley EMD (v0.2, EMD 1.0, Prismatic) or Velox EMD file with HDF5 and
// parses all its metadata. Not thread-safe: HDF5 holds global state, so one thread of
// one process (the worker's) makes every call, including the reader's destructor.
Result<Hdf5Emd> OpenEmdWithHdf5(const std::filesystem::path& path);

}  // namespace scisearch::formats
