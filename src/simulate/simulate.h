// The simulate module: a realistic, reproducible facility for the demo, the
// tests and scale benchmarks. This header is the module's whole interface.
//
// SimulateFacility writes a facility's tree of instrument files (TIA, DM3/DM4,
// MRC, FEI TIFF, Velox and Berkeley EMD, written by our own writers), with its
// user logs, proposals, publications and truth.jsonl (what every file is, for
// scoring tagging and linking). SimulateCatalog writes the same kind of facility
// straight into a catalog, without files, at any scale.
//
// Deterministic: the same options give the same files (byte for byte) and the
// same records on every machine.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>

#include "catalog/catalog.h"
#include "common/status.h"

namespace scisearch::simulate {

struct SimulateOptions {
  std::filesystem::path out;  // the facility's root; created when absent
  int64_t files = 2000;       // instrument acquisitions (a TIA .emi with its .ser counts once)
  uint64_t seed = 1;
  int64_t image_size = 128;  // pixels along each side of an image; spectra and 4D-STEM follow
  int jobs = 0;              // writer threads; 0 = the number of cores
  // When set to true (e.g. by a SIGINT handler), no new file is started.
  const std::atomic<bool>* stop = nullptr;
};

struct SimulateSummary {
  int64_t files_planned = 0;
  int64_t files_written = 0;  // acquisitions written (an .emi and its .ser files count once)
  int64_t bytes_written = 0;  // instrument files only
  int64_t proposals = 0;
  int64_t sessions = 0;
  int64_t publications = 0;
  double seconds = 0;
  bool interrupted = false;
};

// Plans the facility for `options` and writes it under options.out: the
// instrument files, logs/, proposals/, publications/ and truth.jsonl. Writes
// each file atomically (it appears whole or not at all). Returns the first
// error that stops the run (kInvalidArgument for bad options, kIoError for a
// file that cannot be written), naming the file.
// Thread-safe; uses options.jobs threads of its own.
Result<SimulateSummary> SimulateFacility(const SimulateOptions& options);

struct CatalogOnlyOptions {
  std::filesystem::path root = "/facility";  // where the records say the files are
  int64_t records = 1000000;
  uint64_t seed = 1;
};

// Writes options.records datasets of a planned facility straight into `catalog`,
// as ingest would record them (paths, formats, signals with typed metadata,
// normalised fields, machine tags from paths and metadata), together with the
// facility's proposals and sessions, for index and search benchmarks at scale.
// No instrument file is written and no pixel is rendered. `catalog` must not be
// used by another thread during the call.
Result<SimulateSummary> SimulateCatalog(catalog::Catalog& catalog,
                                        const CatalogOnlyOptions& options);

}  // namespace scisearch::simulate
