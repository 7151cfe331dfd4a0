#include "ingest/ingest.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <random>
#include <set>
#include <thread>

#include "catalog/catalog.h"
#include "ingest/crawl.h"
#include "test_paths.h"
#include "test_util.h"

namespace scisearch::ingest {
namespace {

namespace fs = std::filesystem;
using catalog::Catalog;
using ::scisearch::testing::TempDir;
using ::scisearch::testing::WriteFileText;

// Copies ../shared/data/formats/<relative> to `dest` (writable); false when absent.
bool CopyShared(const std::string& relative, const fs::path& dest) {
  const fs::path src = testing::SharedData() / "formats" / relative;
  if (!fs::exists(src)) return false;
  fs::create_directories(dest.parent_path());
  fs::copy_file(src, dest, fs::copy_options::overwrite_existing);
  fs::permissions(dest, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::add);
  return true;
}

// Files no reader accepts: each must become a recorded error, never a crash.
void WriteBrokenFiles(const fs::path& dir, int n, uint32_t seed) {
  std::mt19937 rng(seed);
  const char* exts[] = {".dm3", ".tif", ".emi", ".mrc", ".emd", ".png", ".ser"};
  for (int i = 0; i < n; ++i) {
    std::string bytes(size_t(rng() % 300), '\0');
    for (auto& c : bytes) c = static_cast<char>(rng());
    WriteFileText(dir / ("broken_" + std::to_string(i) + exts[i % 7]), bytes);
  }
}

std::unique_ptr<Catalog> OpenCatalog(const fs::path& dir) {
  auto c = Catalog::Open(dir);
  EXPECT_TRUE(c.ok()) << c.status().message();
  return c.ok() ? std::move(c).value() : nullptr;
}

IngestSummary RunIngest(Catalog& c, const fs::path& root, int jobs = 2) {
  IngestOptions options;
  options.jobs = jobs;
  auto s = Ingest(c, root, options);
  EXPECT_TRUE(s.ok()) << s.status().message();
  return s.ok() ? *s : IngestSummary{};
}

// --- Grouping and slabs -------------------------------------------------

TEST(GroupFolderTest, GroupsTiaAndMrcSidecars) {
  const auto groups = internal::GroupFolder(
      {"a.emi", "a_1.ser", "a_2.ser", "lone_2.ser", "b_movie.mrc", "b_info.txt", "c.mrc",
       "c_info.txt", "stray_info.txt", "notes.txt", "x.dm3", "a_x.ser", "y.tif.gz"});
  const std::vector<std::vector<std::string>> expected = {{"a.emi", "a_1.ser", "a_2.ser"},
                                                          {"lone_2.ser"},
                                                          {"b_movie.mrc", "b_info.txt"},
                                                          {"c.mrc", "c_info.txt"},
                                                          {"x.dm3"},
                                                          {"a_x.ser"},
                                                          {"y.tif.gz"}};
  EXPECT_EQ(groups, expected);
}

TEST(CrawlTest, SkipsSymlinkedFoldersAndDeduplicatesSymlinkedFiles) {
  TempDir tmp;
  const fs::path root = tmp.path() / "root";
  WriteFileText(root / "a" / "x.dm3", "1");
  WriteFileText(root / "a" / "b" / "y.tif", "22");
  WriteFileText(root / "a" / "readme.txt", "no");
  WriteFileText(tmp.path() / "outside.mrc", "333");
  fs::create_directory_symlink(root, root / "a" / "loop");  // a loop if followed
  fs::create_symlink(root / "a" / "x.dm3", root / "link_to_x.dm3");
  fs::create_symlink(root / "a" / "b" / "y.tif", root / "a" / "y_link.tif");
  fs::create_symlink(tmp.path() / "outside.mrc", root / "outside_link.mrc");
  const auto crawl = internal::Crawl(root);
  std::vector<std::string> paths;
  for (const auto& u : crawl.units) paths.push_back(u.path);
  // outside.mrc is reached only through a symlink leading out of the root: left out.
  const std::vector<std::string> expected = {(root / "a" / "b" / "y.tif").string(),
                                             (root / "a" / "x.dm3").string()};
  EXPECT_EQ(paths, expected);
  EXPECT_EQ(crawl.files_seen, 2);
  EXPECT_EQ(crawl.units[0].size_bytes, 2u);
  EXPECT_EQ(crawl.units[0].fingerprint.size(), 32u);
  EXPECT_TRUE(crawl.errors.empty());
}

TEST(CrawlTest, UnreadableFolderIsAnErrorNotGone) {
  if (geteuid() == 0) GTEST_SKIP() << "root ignores folder permissions";
  TempDir tmp;
  const fs::path root = tmp.path() / "root";
  WriteFileText(root / "open" / "a.dm3", "not a dm3");
  WriteFileText(root / "closed" / "b.dm3", "not a dm3");
  TempDir data;
  auto c = OpenCatalog(data.path());
  ASSERT_TRUE(c);
  auto first = RunIngest(*c, root);
  EXPECT_EQ(first.datasets_seen, 2);
  fs::permissions(root / "closed", fs::perms::none);
  auto second = RunIngest(*c, root);
  fs::permissions(root / "closed", fs::perms::owner_all);
  EXPECT_EQ(second.crawl_errors, 1);
  EXPECT_EQ(second.datasets_gone, 0);  // unknown, not gone
  EXPECT_EQ(c->GetDataset((root / "closed" / "b.dm3").string())->state, "error");
}

// --- Incremental ingest -------------------------------------------------

class RecordingSink : public ProgressSink {
 public:
  void OnStart(const std::string& root, int64_t files, int64_t datasets, int64_t to_read) override {
    ++starts;
    this->to_read = to_read;
  }
  void OnProgress(const ProgressSnapshot& s) override { snapshots.push_back(s); }
  void OnFinish(const IngestSummary& s) override { finished = s; }

  int starts = 0;
  int64_t to_read = 0;
  std::vector<ProgressSnapshot> snapshots;
  std::optional<IngestSummary> finished;
};

TEST(IngestTest, IncrementalRuns) {
  SHARED_DATA_OR_SKIP(emi, "formats/tia/old/64x64_TEM_images_acquire.emi");
  TempDir tree, data;
  const fs::path root = tree.path();
  ASSERT_TRUE(CopyShared("tia/old/64x64_TEM_images_acquire.emi", root / "tia" / "t.emi"));
  ASSERT_TRUE(CopyShared("tia/old/64x64_TEM_images_acquire_1.ser", root / "tia" / "t_1.ser"));
  ASSERT_TRUE(CopyShared("dm/2D/test-1.dm3", root / "dm" / "image.dm3"));
  ASSERT_TRUE(
      CopyShared("mrc/20241021_00405_movie.mrc", root / "mrc" / "20241021_00405_movie.mrc"));
  ASSERT_TRUE(CopyShared("mrc/20241021_00405_info.txt", root / "mrc" / "20241021_00405_info.txt"));
  ASSERT_TRUE(CopyShared("tiff/FEI-Helios-Ebeam-8bits.tif", root / "tif" / "sem.tif"));
  WriteFileText(root / "bad" / "empty.tif", "");
  WriteFileText(root / "bad" / "text.dm3", "this is not a DigitalMicrograph file");
  WriteFileText(root / "bad" / "README.txt", "not a candidate");
  const std::set<std::string> good = {
      (root / "tia" / "t.emi").string(), (root / "dm" / "image.dm3").string(),
      (root / "mrc" / "20241021_00405_movie.mrc").string(), (root / "tif" / "sem.tif").string()};

  auto c = OpenCatalog(data.path());
  ASSERT_TRUE(c);
  RecordingSink sink;
  IngestOptions options;
  options.jobs = 2;
  options.progress = &sink;
  auto first = Ingest(*c, root, options);
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_EQ(first->files_seen, 8);
  EXPECT_EQ(first->datasets_seen, 6);
  EXPECT_EQ(first->datasets_new, 4);
  EXPECT_EQ(first->datasets_failed, 2);
  EXPECT_EQ(first->datasets_unchanged, 0);
  EXPECT_GT(first->bytes_read, 0u);
  EXPECT_EQ(sink.starts, 1);
  EXPECT_EQ(sink.to_read, 6);
  // Pass 1 reports files read; pass 2 the thumbnails of the 4 datasets stored.
  auto last_snapshot = [&](Phase phase) {
    std::optional<ProgressSnapshot> last;
    for (const auto& s : sink.snapshots) {
      if (s.phase == phase) last = s;
    }
    return last;
  };
  ASSERT_TRUE(last_snapshot(Phase::kMetadata).has_value());
  EXPECT_EQ(last_snapshot(Phase::kMetadata)->files_done, 8);
  EXPECT_EQ(last_snapshot(Phase::kMetadata)->files_total, 8);
  ASSERT_TRUE(last_snapshot(Phase::kThumbnails).has_value());
  EXPECT_EQ(last_snapshot(Phase::kThumbnails)->files_done, 4);
  EXPECT_EQ(last_snapshot(Phase::kThumbnails)->files_total, 4);
  EXPECT_EQ(sink.snapshots.back().phase, Phase::kThumbnails);
  EXPECT_EQ(first->thumbnails_made, 4);
  ASSERT_TRUE(sink.finished.has_value());
  EXPECT_EQ(sink.finished->run_id, first->run_id);
  EXPECT_NE(FormatSummary(*first).find("4 new"), std::string::npos);

  for (const auto& path : good) {
    auto d = c->GetDataset(path);
    ASSERT_TRUE(d.ok()) << path;
    EXPECT_EQ(d->state, "ok") << path << ": " << d->error;
    EXPECT_FALSE(d->signals.empty()) << path;
    EXPECT_TRUE(c->GetThumbnail(d->id, 0).ok() || d->signals.size() > 1) << path;
  }
  EXPECT_EQ(*c->FindDatasetByFile((root / "tia" / "t_1.ser").string()),
            (root / "tia" / "t.emi").string());
  EXPECT_EQ(*c->FindDatasetByFile((root / "mrc" / "20241021_00405_info.txt").string()),
            (root / "mrc" / "20241021_00405_movie.mrc").string());
  auto bad = c->GetDataset((root / "bad" / "text.dm3").string());
  ASSERT_TRUE(bad.ok());
  EXPECT_EQ(bad->state, "error");
  EXPECT_FALSE(bad->error.empty());
  EXPECT_EQ(c->ListErrors(first->run_id)->size(), 2u);
  EXPECT_EQ(c->GetRun(first->run_id)->status, "finished");

  // Second run: nothing changed; the bad files are skipped but still reported.
  auto second = RunIngest(*c, root);
  EXPECT_EQ(second.datasets_new + second.datasets_changed + second.datasets_failed, 0);
  EXPECT_EQ(second.datasets_unchanged, 6);
  EXPECT_EQ(second.failed_unchanged, 2);
  EXPECT_EQ(second.bytes_read, 0u);
  EXPECT_EQ(second.thumbnails_made, 0);
  EXPECT_EQ(c->ListErrors(second.run_id)->size(), 2u);

  // Touch a .ser: its .emi dataset changed. Delete the tif: gone. Add a bad file.
  const fs::path ser = root / "tia" / "t_1.ser";
  fs::last_write_time(ser, fs::last_write_time(ser) + std::chrono::seconds(5));
  fs::remove(root / "tif" / "sem.tif");
  WriteFileText(root / "bad" / "new.emd", "garbage");
  auto third = RunIngest(*c, root);
  EXPECT_EQ(third.datasets_changed, 1);
  EXPECT_EQ(third.datasets_gone, 1);
  EXPECT_EQ(third.datasets_new, 0);
  EXPECT_EQ(third.datasets_failed, 1);
  EXPECT_EQ(third.datasets_unchanged, 4);
  EXPECT_EQ(third.thumbnails_made, 1);  // the changed .emi's
  EXPECT_EQ(c->GetDataset((root / "tif" / "sem.tif").string())->state, "gone");
  EXPECT_EQ(c->GetDataset((root / "tia" / "t.emi").string())->state, "ok");
  EXPECT_EQ(c->GetDataset((root / "bad" / "new.emd").string())->state, "error");

  // The tif comes back: re-read and ok again.
  ASSERT_TRUE(CopyShared("tiff/FEI-Helios-Ebeam-8bits.tif", root / "tif" / "sem.tif"));
  auto fourth = RunIngest(*c, root);
  EXPECT_EQ(fourth.datasets_changed, 1);
  EXPECT_EQ(c->GetDataset((root / "tif" / "sem.tif").string())->state, "ok");
  auto counts = c->Counts();
  EXPECT_EQ(counts->datasets_ok, 4);
  EXPECT_EQ(counts->datasets_error, 3);
  EXPECT_EQ(counts->datasets_gone, 0);
  EXPECT_TRUE(c->IntegrityCheck().ok());
}

TEST(IngestTest, ThumbnailsLeftForLaterAreMadeByTheNextRun) {
  SHARED_DATA_OR_SKIP(dm3, "formats/dm/2D/test-1.dm3");
  TempDir tree, data;
  ASSERT_TRUE(CopyShared("dm/2D/test-1.dm3", tree.path() / "a.dm3"));
  ASSERT_TRUE(CopyShared("tiff/FEI-Helios-Ebeam-8bits.tif", tree.path() / "b.tif"));
  auto c = OpenCatalog(data.path());
  ASSERT_TRUE(c);
  IngestOptions options;
  options.thumbnails = false;
  auto metadata_only = Ingest(*c, tree.path(), options);
  ASSERT_TRUE(metadata_only.ok()) << metadata_only.status().message();
  EXPECT_EQ(metadata_only->datasets_new, 2);
  EXPECT_EQ(metadata_only->thumbnails_made, 0);
  EXPECT_EQ(c->Counts()->thumbnails, 0);
  EXPECT_EQ(c->PendingThumbnails("")->size(), 2u);

  auto later = RunIngest(*c, tree.path());
  EXPECT_EQ(later.datasets_unchanged, 2);
  EXPECT_EQ(later.thumbnails_made, 2);
  EXPECT_EQ(c->Counts()->thumbnails, 2);
  EXPECT_TRUE(c->PendingThumbnails("")->empty());
}

TEST(IngestTest, BadRootAndStop) {
  TempDir data;
  auto c = OpenCatalog(data.path());
  ASSERT_TRUE(c);
  EXPECT_EQ(Ingest(*c, data.path() / "missing").status().code(), ErrorCode::kNotFound);
  WriteFileText(data.path() / "file.dm3", "x");
  EXPECT_EQ(Ingest(*c, data.path() / "file.dm3").status().code(), ErrorCode::kInvalidArgument);

  TempDir tree;
  WriteBrokenFiles(tree.path(), 20, 1);
  std::atomic<bool> stop{true};
  IngestOptions options;
  options.jobs = 1;
  options.stop = &stop;
  auto stopped = Ingest(*c, tree.path(), options);
  ASSERT_TRUE(stopped.ok());
  EXPECT_TRUE(stopped->interrupted);
  EXPECT_EQ(c->GetRun(stopped->run_id)->status, "interrupted");
  auto resumed = RunIngest(*c, tree.path());
  EXPECT_FALSE(resumed.interrupted);
  EXPECT_EQ(c->Counts()->datasets_error, 20);
}

// --- Crash safety -------------------------------------------------------

// Builds a tree of many small datasets: real files when present, plus broken ones.
int64_t BuildCrashTree(const fs::path& root) {
  int64_t units = 0;
  // Enough datasets that the writes, not process start-up, fill most of a run.
  for (int i = 0; i < 24; ++i) {
    const fs::path dir = root / ("copy" + std::to_string(i));
    if (CopyShared("tia/old/16x16-spectrum_image-5x5x1024.emi", dir / "si.emi") &&
        CopyShared("tia/old/16x16-spectrum_image-5x5x1024_1.ser", dir / "si_1.ser")) {
      ++units;
    }
    if (CopyShared("dm/2D/test-1.dm3", dir / "a.dm3")) ++units;
    if (CopyShared("tiff/FEI-Helios-Ebeam-8bits.tif", dir / "b.tif")) ++units;
    if (CopyShared("emd_berkeley/example_image.emd", dir / "c.emd")) ++units;
    WriteBrokenFiles(dir, 10, uint32_t(i));
    units += 10;
  }
  return units;
}

struct Digest {
  catalog::CatalogCounts counts;
  std::vector<std::string> rows;  // path, state, fingerprint of every dataset
};

Digest TakeDigest(Catalog& c) {
  Digest d;
  d.counts = *c.Counts();
  auto rows = c.ListDatasets();
  EXPECT_TRUE(rows.ok());
  for (const auto& row : *rows) {
    d.rows.push_back(row.path + " " + row.state + " " + row.fingerprint);
  }
  return d;
}

TEST(IngestTest, SurvivesKillNineAtAnyMoment) {
  TempDir tree, clean_dir;
  const int64_t units = BuildCrashTree(tree.path());

  Digest clean;
  {
    auto c = OpenCatalog(clean_dir.path());
    ASSERT_TRUE(c);
    auto s = RunIngest(*c, tree.path());
    EXPECT_EQ(s.datasets_seen, units);
    clean = TakeDigest(*c);
  }
  EXPECT_EQ(clean.counts.datasets_ok + clean.counts.datasets_error, units);

  // A child process ingests the tree into `data`; it is killed after `delay`
  // (or, with a negative delay, waited for). Returns the child's running time.
  auto run_child = [&](const fs::path& data, std::chrono::microseconds delay) {
    const auto started = std::chrono::steady_clock::now();
    const pid_t child = fork();
    EXPECT_GE(child, 0);
    if (child == 0) {
      auto c = Catalog::Open(data);
      if (!c.ok()) _exit(2);
      IngestOptions options;
      options.jobs = 2;
      options.batch_size = 1;  // a commit per dataset: many states a kill can land in
      options.commit_interval_seconds = 0.001;
      auto s = Ingest(**c, tree.path(), options);
      _exit(s.ok() ? 0 : 1);
    }
    if (delay.count() >= 0) {
      std::this_thread::sleep_for(delay);
      ::kill(child, SIGKILL);
    }
    int status = 0;
    EXPECT_EQ(waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 0));
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                                 started);
  };
  // Kill at fractions of an undisturbed child's running time, so the kills
  // land before, during and after the writes whatever the machine's speed.
  std::chrono::microseconds full_run;
  {
    TempDir data;
    full_run = run_child(data.path(), std::chrono::microseconds(-1));
  }
  int partial_catalogs = 0;
  for (double fraction : {0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9}) {
    const auto delay = std::chrono::microseconds(int64_t(double(full_run.count()) * fraction));
    TempDir data;
    // Killed twice before the final run: a rerun after a crash must itself
    // survive a crash.
    run_child(data.path(), delay);
    run_child(data.path(), delay / 2);
    auto c = OpenCatalog(data.path());
    ASSERT_TRUE(c);
    ASSERT_TRUE(c->IntegrityCheck().ok()) << "fraction " << fraction;
    {
      const auto partial = *c->Counts();
      const int64_t stored = partial.datasets_ok + partial.datasets_error;
      if (stored > 0 && stored < units) ++partial_catalogs;
    }
    auto s = RunIngest(*c, tree.path());
    EXPECT_EQ(s.datasets_gone, 0);
    EXPECT_EQ(s.datasets_seen, units);
    const Digest after = TakeDigest(*c);
    ASSERT_TRUE(c->IntegrityCheck().ok()) << "fraction " << fraction;
    EXPECT_EQ(after.rows, clean.rows) << "fraction " << fraction;  // each dataset exactly once
    EXPECT_EQ(after.counts.datasets_ok, clean.counts.datasets_ok) << "fraction " << fraction;
    EXPECT_EQ(after.counts.datasets_error, clean.counts.datasets_error);
    EXPECT_EQ(after.counts.files, clean.counts.files);
    EXPECT_EQ(after.counts.signals, clean.counts.signals);
    EXPECT_EQ(after.counts.metadata_entries, clean.counts.metadata_entries);
    EXPECT_EQ(after.counts.thumbnails, clean.counts.thumbnails);
    // No run is left "running".
    EXPECT_TRUE(c->ListDatasets("", "gone")->empty());
    for (int64_t id = 1; id < s.run_id; ++id) {
      auto run = c->GetRun(id);
      if (run.ok()) {
        EXPECT_NE(run->status, "running");
      }
    }
  }
  std::cout << partial_catalogs << " of 10 kills left a partly written catalog\n";
  // The kills did interrupt ingests midway (else this test proves nothing).
  EXPECT_GE(partial_catalogs, 1) << "full run took " << full_run.count() << " us";
}

}  // namespace
}  // namespace scisearch::ingest
