// The ingest pipeline: crawl -> classify against the catalog -> read on a pool
// of workers -> one writer thread committing batches -> mark gone -> summary.
#include "ingest/ingest.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_set>

#include "formats/formats.h"
#include "ingest/crawl.h"
#include "thumbnail/thumbnail.h"

namespace scisearch::ingest {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using internal::DatasetUnit;

enum class Change { kNew, kChanged };

struct WorkItem {
  const DatasetUnit* unit;
  Change change;
};

// What a metadata worker hands the writer.
struct ReadResult {
  const WorkItem* item = nullptr;
  bool ok = false;
  catalog::DatasetRecord record;  // when ok
  std::string error;              // when !ok
};

// What a thumbnail worker hands the writer.
struct ThumbnailResult {
  const catalog::ThumbnailJob* job = nullptr;
  catalog::ThumbnailOutcome outcome = catalog::ThumbnailOutcome::kNone;
  std::vector<catalog::Thumbnail> thumbnails;  // when kMade
  std::string warning;                         // when kFailed: why
};

// The memory a result holds while it waits for the writer, roughly: what it will
// store (a read's metadata, already encoded; a thumbnail's PNGs).
size_t QueuedBytes(const ReadResult& r) {
  size_t bytes = sizeof(r) + r.error.size();
  for (const catalog::EncodedSignal& e : r.record.encoded) {
    bytes += e.shape_json.size() + e.axes_json.size() + e.metadata_json.size();
  }
  return bytes;
}
size_t QueuedBytes(const ThumbnailResult& r) {
  size_t bytes = sizeof(r) + r.warning.size();
  for (const catalog::Thumbnail& t : r.thumbnails) bytes += t.png.size();
  return bytes;
}

// A FIFO bounded in items and in bytes (QueuedBytes): Push blocks while either is
// reached, so readers cannot run ahead of the writer and fill memory. An item
// larger than the byte bound still passes, alone.
template <typename T>
class BoundedQueue {
 public:
  BoundedQueue(size_t max_items, size_t max_bytes)
      : max_items_(std::max<size_t>(1, max_items)), max_bytes_(max_bytes) {}

  // Returns false (dropping `value`) once the queue is closed.
  bool Push(T value) {
    const size_t bytes = QueuedBytes(value);
    std::unique_lock lock(mu_);
    not_full_.wait(lock, [&] {
      return closed_ || items_.empty() ||
             (items_.size() < max_items_ && bytes_ + bytes <= max_bytes_);
    });
    if (closed_) return false;
    items_.push_back({std::move(value), bytes});
    bytes_ += bytes;
    not_empty_.notify_one();
    return true;
  }
  // Waits up to `timeout`; returns nullopt on timeout or when closed and drained.
  std::optional<T> Pop(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    not_empty_.wait_for(lock, timeout, [&] { return !items_.empty() || closed_; });
    if (items_.empty()) return std::nullopt;
    T value = std::move(items_.front().value);
    bytes_ -= items_.front().bytes;
    items_.pop_front();
    not_full_.notify_one();
    return value;
  }
  void Close() {
    std::lock_guard lock(mu_);
    closed_ = true;
    not_full_.notify_all();
    not_empty_.notify_all();
  }
  bool Drained() {
    std::lock_guard lock(mu_);
    return closed_ && items_.empty();
  }

 private:
  struct Entry {
    T value;
    size_t bytes;
  };
  std::mutex mu_;
  std::condition_variable not_full_, not_empty_;
  std::deque<Entry> items_;
  size_t bytes_ = 0;
  const size_t max_items_;
  const size_t max_bytes_;
  bool closed_ = false;
};

// Runs produce(i) for every i < count on `jobs` worker threads and consume(result,
// batch) for each result on one writer thread, which commits through a BatchWriter
// in batches of options.batch_size or every options.commit_interval_seconds. The
// calling thread calls tick() about five times a second until every result is
// consumed. A consume error stops the pipeline and is returned; so is an exception
// escaping it (bad_alloc). produce must not throw. With `stop` set, no new item
// is started and what was produced is still consumed and committed.
template <typename Result>
Status RunPipeline(catalog::Catalog& catalog, const IngestOptions& options, int jobs, size_t count,
                   const std::function<bool()>& stop, const std::function<Result(size_t)>& produce,
                   const std::function<Status(Result&, catalog::Catalog::BatchWriter&)>& consume,
                   const std::function<void()>& tick) {
  // A deep queue: reading and writing costs vary by file by a hundred times (a bare
  // MRC header against a DM tag tree; an EMD file waits for an HDF5 worker), and a
  // queue of two results per reader, often full or empty, left a fifth of both
  // cores idle in the metadata pass. The byte bound keeps its memory small.
  constexpr size_t kQueueBytes = 64 << 20;
  BoundedQueue<Result> queue(static_cast<size_t>(32 * jobs + 2), kQueueBytes);
  std::atomic<size_t> next{0};
  std::atomic<size_t> consumed{0};
  std::atomic<bool> abort{false};
  auto stopping = [&] { return abort.load() || stop(); };

  std::vector<std::thread> workers;
  std::atomic<int> workers_left{jobs};
  for (int j = 0; j < jobs; ++j) {
    workers.emplace_back([&] {
      while (!stopping()) {
        const size_t i = next.fetch_add(1);
        if (i >= count) break;
        if (!queue.Push(produce(i))) break;
      }
      if (workers_left.fetch_sub(1) == 1) queue.Close();
    });
  }

  Status writer_status;
  auto write_all = [&] {
    catalog::Catalog::BatchWriter batch(catalog, options.batch_size);
    auto batch_started = Clock::now();
    const auto interval = std::chrono::duration<double>(options.commit_interval_seconds);
    auto fail = [&](Status s) {
      writer_status = s;
      abort = true;
      queue.Close();
    };
    // Nothing below should throw, but an escaping exception (bad_alloc) would
    // terminate the process: turn it into a failed run instead.
    try {
      while (true) {
        std::optional<Result> r = queue.Pop(std::chrono::milliseconds(100));
        if (r) {
          if (batch.pending() == 0) batch_started = Clock::now();
          Status s = consume(*r, batch);
          if (!s.ok()) return fail(s);
          ++consumed;
        } else if (queue.Drained()) {
          break;
        }
        if (batch.pending() > 0 && Clock::now() - batch_started >= interval) {
          Status s = batch.Flush();
          if (!s.ok()) return fail(s);
        }
      }
      Status s = batch.Flush();
      if (!s.ok()) fail(s);
    } catch (const std::exception& e) {
      fail(Status::Internal(std::string("ingest writer failed: ") + e.what()));
    }
  };
  // The loop below ticks every 200 ms and wakes at once when the writer ends, so
  // that the end of a pass is not reported up to a tick late.
  std::mutex writer_done_mu;
  std::condition_variable writer_done_cv;
  bool writer_done = false;
  std::thread writer([&] {
    write_all();
    std::lock_guard lock(writer_done_mu);
    writer_done = true;
    writer_done_cv.notify_all();
  });

  {
    std::unique_lock lock(writer_done_mu);
    while (!writer_done && consumed.load() < count && !stopping()) {
      lock.unlock();
      tick();
      lock.lock();
      writer_done_cv.wait_for(lock, std::chrono::milliseconds(200), [&] { return writer_done; });
    }
  }
  for (auto& w : workers) w.join();
  writer.join();
  tick();
  return writer_status;
}

// Opens one unit and encodes what the catalog stores of it. Never throws: a
// reader's exception becomes an error.
ReadResult ReadUnit(const WorkItem& item, const std::string& root,
                    const formats::OpenOptions& open_options) {
  ReadResult result;
  result.item = &item;
  const DatasetUnit& unit = *item.unit;
  try {
    auto reader = formats::OpenDataset(unit.path, open_options);
    if (!reader.ok()) {
      result.error = reader.status().message();
      return result;
    }
    catalog::DatasetRecord& record = result.record;
    record.path = unit.path;
    record.root = root;
    record.fingerprint = unit.fingerprint;
    record.files = unit.files;
    record.dataset = (*reader)->TakeDataset();  // the reader is dropped: move, not copy
    record.encoded = catalog::EncodeSignals(record.dataset);
    // The writer stores the encoded trees: free the parsed ones here, on a reader
    // thread, not while the result waits and then on the writer.
    for (formats::Signal& signal : record.dataset.signals) signal.metadata = formats::Metadata();
    result.ok = true;
  } catch (const std::exception& e) {
    result = ReadResult{&item, false, {}, unit.path + ": reader failed: " + e.what()};
  } catch (...) {
    result = ReadResult{&item, false, {}, unit.path + ": reader failed with an unknown exception"};
  }
  return result;
}

// Opens a stored dataset again and renders the thumbnail of its chosen signal.
// Never throws.
ThumbnailResult MakeThumbnails(const catalog::ThumbnailJob& job,
                               const formats::OpenOptions& open_options) {
  using catalog::ThumbnailOutcome;
  ThumbnailResult result;
  result.job = &job;
  auto failed = [&](const std::string& why) {
    result.outcome = ThumbnailOutcome::kFailed;
    result.warning = "thumbnail: " + why;
    return std::move(result);
  };
  try {
    auto reader = formats::OpenDataset(job.path, open_options);
    if (!reader.ok()) return failed(reader.status().message());
    const formats::Dataset& dataset = (*reader)->dataset();
    std::optional<size_t> index = thumbnail::ChoosePreviewSignal(dataset);
    if (!index) {
      result.outcome = ThumbnailOutcome::kNone;
      return result;
    }
    const formats::Signal& signal = dataset.signals[*index];
    auto pixels = (*reader)->Read(*index, thumbnail::PreviewSlab(signal));
    if (!pixels.ok()) return failed(pixels.status().message());
    auto png = thumbnail::RenderThumbnail(*pixels, signal.fields.mode);
    if (!png.ok()) return failed(png.status().message());
    result.outcome = ThumbnailOutcome::kMade;
    result.thumbnails.push_back(
        {static_cast<int>(*index), std::move(png->bytes), png->width, png->height});
  } catch (const std::exception& e) {
    return failed(std::string("reader failed: ") + e.what());
  } catch (...) {
    return failed("reader failed with an unknown exception");
  }
  return result;
}

// Counters shared between the writer and the progress loop.
struct SharedProgress {
  std::atomic<int64_t> files_done{0};
  std::atomic<uint64_t> bytes_done{0};
  std::atomic<int64_t> datasets_done{0};
  std::atomic<int64_t> failed{0};
  std::atomic<int64_t> warnings{0};
  std::atomic<int64_t> written_new{0};
  std::atomic<int64_t> written_changed{0};
  std::atomic<int64_t> thumbnails_done{0};
  std::atomic<int64_t> thumbnails_made{0};
};

bool under_any(const std::string& path, const std::vector<std::string>& dirs) {
  for (const auto& d : dirs) {
    if (path.size() > d.size() && path.compare(0, d.size(), d) == 0 && path[d.size()] == '/') {
      return true;
    }
  }
  return false;
}

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

Result<IngestSummary> Ingest(catalog::Catalog& catalog, const fs::path& root,
                             const IngestOptions& options) {
  const auto started = Clock::now();
  std::error_code ec;
  const fs::path canonical = fs::canonical(root, ec);
  if (ec) return Status::NotFound(root.string() + ": cannot resolve ingest root: " + ec.message());
  if (!fs::is_directory(canonical, ec)) {
    return Status::InvalidArgument(root.string() + ": ingest root is not a folder");
  }
  auto silent = MakeSilentProgress();
  ProgressSink& sink = options.progress ? *options.progress : *silent;
  IngestSummary summary;
  summary.root = canonical.string();
  SCISEARCH_ASSIGN_OR_RETURN(summary.run_id, catalog.StartRun(summary.root));
  const int64_t run = summary.run_id;

  internal::CrawlResult crawl = internal::Crawl(canonical);
  summary.files_seen = crawl.files_seen;
  summary.datasets_seen = static_cast<int64_t>(crawl.units.size());
  summary.crawl_errors = static_cast<int64_t>(crawl.errors.size());
  for (const auto& [path, reason] : crawl.errors) {
    SCISEARCH_RETURN_IF_ERROR(catalog.RecordRunError(run, path, reason));
  }

  // Classify against the catalog.
  SCISEARCH_ASSIGN_OR_RETURN(auto known, catalog.FindFingerprints(summary.root));
  std::vector<WorkItem> work;
  ProgressSnapshot totals;
  std::unordered_set<std::string> seen;
  for (const DatasetUnit& unit : crawl.units) {
    seen.insert(unit.path);
    for (const auto& f : unit.files) seen.insert(f.path);
    auto it = known.find(unit.path);
    if (it == known.end()) {
      work.push_back({&unit, Change::kNew});
    } else if (it->second.state == "gone" || it->second.fingerprint != unit.fingerprint) {
      work.push_back({&unit, Change::kChanged});
    } else {
      ++summary.datasets_unchanged;
      if (it->second.state == "error") ++summary.failed_unchanged;
      continue;
    }
    totals.files_total += static_cast<int64_t>(unit.files.size());
    totals.bytes_total += unit.size_bytes;
  }
  totals.datasets_total = static_cast<int64_t>(work.size());
  std::vector<std::string> gone;
  for (const auto& [path, k] : known) {
    if (k.state == "gone" || seen.count(path)) continue;
    if (under_any(path, crawl.unreadable_dirs)) continue;  // unknown, not gone
    gone.push_back(path);
  }
  sink.OnStart(summary.root, summary.files_seen, summary.datasets_seen, totals.datasets_total);

  // Metadata readers spend most of their time waiting (on HDF5 workers, and on the
  // disk or a network file system), so they outnumber the cores; thumbnail makers
  // decode pixels, so one more than the cores keeps them busy without more memory.
  const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  const int metadata_jobs = options.jobs > 0 ? options.jobs : 4 * cores;
  const int thumbnail_jobs = options.jobs > 0 ? options.jobs : cores + 1;
  const formats::OpenOptions open_options{options.temp_dir};
  SharedProgress progress;
  auto stop_requested = [&] { return options.stop != nullptr && options.stop->load(); };
  auto snapshot = [&] {
    ProgressSnapshot s = totals;
    s.files_done = progress.files_done;
    s.bytes_done = progress.bytes_done;
    s.datasets_done = progress.datasets_done;
    s.datasets_failed = progress.failed;
    s.elapsed_seconds = SecondsSince(started);
    return s;
  };

  // Pass 1: headers and metadata.
  Status read_status = RunPipeline<ReadResult>(
      catalog, options, metadata_jobs, work.size(), stop_requested,
      [&](size_t i) { return ReadUnit(work[i], summary.root, open_options); },
      [&](ReadResult& r, catalog::Catalog::BatchWriter& batch) -> Status {
        const DatasetUnit& unit = *r.item->unit;
        if (r.ok) {
          Status s = batch.PutDataset(run, r.record);
          if (!s.ok()) {
            // The dataset itself may be unstorable (hostile metadata): record
            // it as an error; a failing catalog fails the next write too.
            r.ok = false;
            r.error = "cannot store in the catalog: " + s.message();
          }
        }
        if (!r.ok) {
          SCISEARCH_RETURN_IF_ERROR(batch.RecordError(
              run, {unit.path, summary.root, unit.fingerprint, unit.files, r.error}));
          ++progress.failed;
          spdlog::debug("ingest: {} failed: {}", unit.path, r.error);
        } else {
          ++(r.item->change == Change::kNew ? progress.written_new : progress.written_changed);
        }
        progress.files_done += static_cast<int64_t>(unit.files.size());
        progress.bytes_done += unit.size_bytes;
        ++progress.datasets_done;
        return Status::Ok();
      },
      [&] { sink.OnProgress(snapshot()); });
  if (!read_status.ok()) {
    (void)catalog.FinishRun(run, {}, "interrupted");
    return read_status;
  }

  summary.interrupted = stop_requested() && progress.datasets_done.load() < totals.datasets_total;
  if (!summary.interrupted) {
    SCISEARCH_ASSIGN_OR_RETURN(summary.datasets_gone, catalog.MarkGone(run, gone));
    SCISEARCH_RETURN_IF_ERROR(catalog.TouchSeen(summary.root));
  }
  summary.metadata_seconds = SecondsSince(started);

  // Pass 2: thumbnails of every stored dataset under the root that lacks them
  // (this run's, and those an interrupted run left).
  if (options.thumbnails && !stop_requested()) {
    const auto thumbnails_started = Clock::now();
    SCISEARCH_ASSIGN_OR_RETURN(const std::vector<catalog::ThumbnailJob> jobs_to_do,
                               catalog.PendingThumbnails(summary.root));
    ProgressSnapshot thumbnail_totals;
    thumbnail_totals.phase = Phase::kThumbnails;
    thumbnail_totals.files_total = thumbnail_totals.datasets_total =
        static_cast<int64_t>(jobs_to_do.size());
    Status thumbnail_status = RunPipeline<ThumbnailResult>(
        catalog, options, thumbnail_jobs, jobs_to_do.size(), stop_requested,
        [&](size_t i) { return MakeThumbnails(jobs_to_do[i], open_options); },
        [&](ThumbnailResult& r, catalog::Catalog::BatchWriter& batch) -> Status {
          SCISEARCH_RETURN_IF_ERROR(
              batch.PutThumbnails(r.job->dataset_id, r.job->fingerprint, r.outcome, r.thumbnails));
          if (!r.warning.empty()) {
            SCISEARCH_RETURN_IF_ERROR(catalog.RecordRunError(run, r.job->path, r.warning));
            ++progress.warnings;
          }
          if (r.outcome == catalog::ThumbnailOutcome::kMade) ++progress.thumbnails_made;
          ++progress.thumbnails_done;
          return Status::Ok();
        },
        [&] {
          ProgressSnapshot s = thumbnail_totals;
          s.files_done = s.datasets_done = progress.thumbnails_done;
          s.elapsed_seconds = SecondsSince(thumbnails_started);
          sink.OnProgress(s);
        });
    if (!thumbnail_status.ok()) {
      (void)catalog.FinishRun(run, {}, "interrupted");
      return thumbnail_status;
    }
    summary.thumbnail_seconds = SecondsSince(thumbnails_started);
    summary.interrupted =
        summary.interrupted || progress.thumbnails_done.load() < thumbnail_totals.datasets_total;
  }
  SCISEARCH_ASSIGN_OR_RETURN(const int64_t reported,
                             catalog.RecordUnchangedErrors(run, summary.root));
  (void)reported;

  summary.datasets_new = progress.written_new;
  summary.datasets_changed = progress.written_changed;
  summary.datasets_failed = progress.failed;
  summary.warnings = progress.warnings;
  summary.thumbnails_made = progress.thumbnails_made;
  summary.bytes_read = progress.bytes_done;
  summary.seconds = SecondsSince(started);
  const double secs = std::max(summary.metadata_seconds, 1e-9);
  summary.files_per_second = double(progress.files_done.load()) / secs;
  summary.mb_per_second = double(summary.bytes_read) / 1e6 / secs;

  catalog::RunStats stats;
  stats.files_seen = summary.files_seen;
  stats.datasets_new = summary.datasets_new;
  stats.datasets_changed = summary.datasets_changed;
  stats.datasets_unchanged = summary.datasets_unchanged;
  stats.datasets_gone = summary.datasets_gone;
  stats.errors = summary.datasets_failed + summary.failed_unchanged + summary.crawl_errors;
  stats.bytes_read = static_cast<int64_t>(summary.bytes_read);
  SCISEARCH_RETURN_IF_ERROR(
      catalog.FinishRun(run, stats, summary.interrupted ? "interrupted" : "finished"));
  sink.OnFinish(summary);
  return summary;
}

}  // namespace scisearch::ingest
