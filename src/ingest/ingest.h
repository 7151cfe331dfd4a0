// The ingest module: walks a folder tree, reads every new or changed dataset in
// parallel and records it in the catalog, incrementally and crash-safely.
//
// Incremental: each dataset unit (a file, a TIA .emi with its .ser files, an
// MRC with its DE-Server sidecar) is fingerprinted from stat() alone; units
// whose fingerprint the catalog already holds are skipped, including known bad
// files (they are reported again, not re-read). Units no longer on disk are
// marked "gone".
//
// Crash-safe: datasets are committed in batches, each dataset's fingerprint in
// the same transaction as its data, so after a kill at any moment a rerun
// finds a consistent catalog and reads exactly what was not committed.
//
// Two passes: first the headers and metadata of every dataset to read are
// stored (the catalog is complete and searchable as soon as possible), then
// the thumbnails of every stored dataset still without them are made. A run
// stopped in either pass leaves the rest for the next run.
//
// Memory-bounded: worker threads hand results to one writer thread through a
// bounded queue, and thumbnails are rendered from bounded hyperslabs (at most
// about 1024 x 1024 pixels of the first frame, or the first spectrum).
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "catalog/catalog.h"
#include "common/status.h"

namespace scisearch::ingest {

// What an ingest run did.
struct IngestSummary {
  int64_t run_id = 0;
  std::string root;           // the canonical root
  int64_t files_seen = 0;     // candidate files (and sidecars) found
  int64_t datasets_seen = 0;  // dataset units found
  int64_t datasets_new = 0;
  int64_t datasets_changed = 0;    // fingerprint changed, or back after being gone
  int64_t datasets_unchanged = 0;  // skipped; includes known bad ones
  int64_t datasets_gone = 0;       // newly marked gone
  int64_t datasets_failed = 0;     // read this run and failed
  int64_t failed_unchanged = 0;    // known bad files skipped (and reported again)
  int64_t warnings = 0;            // e.g. a thumbnail that could not be made; the dataset is kept
  int64_t crawl_errors = 0;        // unreadable folders, unstat-able files
  uint64_t bytes_read = 0;         // total size of the datasets read
  int64_t thumbnails_made = 0;     // datasets given thumbnails by the second pass
  double seconds = 0;              // the whole run
  double metadata_seconds = 0;     // crawl and first pass: until the catalog held every dataset
  double thumbnail_seconds = 0;    // second pass
  double files_per_second = 0;     // files of the datasets read / metadata_seconds
  double mb_per_second = 0;        // bytes_read / 1e6 / metadata_seconds
  bool interrupted = false;        // stopped early by IngestOptions::stop
};

enum class Phase {
  kMetadata,    // reading headers and metadata into the catalog
  kThumbnails,  // making thumbnails; files_* count datasets, bytes_* stay 0
};

// A progress report: counts cover the work of the current phase of this run.
struct ProgressSnapshot {
  Phase phase = Phase::kMetadata;
  int64_t files_total = 0;
  int64_t files_done = 0;
  uint64_t bytes_total = 0;
  uint64_t bytes_done = 0;
  int64_t datasets_total = 0;
  int64_t datasets_done = 0;
  int64_t datasets_failed = 0;
  double elapsed_seconds = 0;
};

// Receives progress. Ingest calls a sink only from the thread that called
// Ingest, so implementations need no locking. OnProgress is called about five
// times a second; the sink decides what to show.
class ProgressSink {
 public:
  virtual ~ProgressSink() = default;
  // After the crawl: how much was found and how much must be read.
  virtual void OnStart(const std::string& root, int64_t files_seen, int64_t datasets_seen,
                       int64_t datasets_to_read) = 0;
  virtual void OnProgress(const ProgressSnapshot& snapshot) = 0;
  virtual void OnFinish(const IngestSummary& summary) = 0;
};

// A single progress line redrawn with '\r' on `out` (a terminal): files
// done/total, MB, files/s, MB/s, ETA; then the summary. Does not own `out`.
std::unique_ptr<ProgressSink> MakeTerminalProgress(std::FILE* out);
// Plain spdlog lines every `every_seconds` or every `every_files` files, and the summary.
std::unique_ptr<ProgressSink> MakeLogProgress(double every_seconds = 10,
                                              int64_t every_files = 1000);
// MakeTerminalProgress(stderr) when stderr is a terminal, else MakeLogProgress().
std::unique_ptr<ProgressSink> MakeDefaultProgress();
// A sink that shows nothing.
std::unique_ptr<ProgressSink> MakeSilentProgress();
// The multi-line human summary ("files seen: ...").
std::string FormatSummary(const IngestSummary& summary);

struct IngestOptions {
  // Threads of each pass; 0 = the machine's defaults: four times the cores for the
  // metadata pass (its readers mostly wait on HDF5 workers, and on the disk or a network
  // file system: on 2 cores and a local disk 0-10% faster than one more than the cores,
  // depending on the day), one more than the cores for thumbnails.
  int jobs = 0;
  ProgressSink* progress = nullptr;    // not owned; nullptr = silent
  std::filesystem::path temp_dir;      // for inflating .gz files; empty = the system's
  bool thumbnails = true;              // false: the second pass is left for a later run
  size_t batch_size = 64;              // datasets per transaction
  double commit_interval_seconds = 2;  // a partial batch is committed after this long
  // When set to true (e.g. by a SIGINT handler), no new dataset is started; what
  // was read is committed, nothing is marked gone, and the run ends "interrupted".
  const std::atomic<bool>* stop = nullptr;
};

// Ingests the tree at `root` (a folder) into `catalog` and returns what was
// done. Errors in single datasets (unreadable, corrupt, a reader that throws)
// are recorded in the catalog and counted, never returned; the returned Status
// is an error only when the run itself cannot proceed (no such root, the
// catalog cannot be written). `catalog` is used by Ingest's threads for the
// duration of the call: the caller must not use it concurrently.
Result<IngestSummary> Ingest(catalog::Catalog& catalog, const std::filesystem::path& root,
                             const IngestOptions& options = {});

}  // namespace scisearch::ingest
