// Progress sinks: a redrawn terminal line, periodic log lines, or nothing.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "ingest/ingest.h"

namespace scisearch::ingest {
namespace {

using Clock = std::chrono::steady_clock;

std::string FormatDuration(double seconds) {
  if (!(seconds >= 0) || seconds > 360000) return "--:--";
  const long s = std::lround(seconds);
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof(buf), "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  } else {
    std::snprintf(buf, sizeof(buf), "%ld:%02ld", s / 60, s % 60);
  }
  return buf;
}

struct Rates {
  double files_per_second = 0;
  double mb_per_second = 0;
  double eta_seconds = -1;  // unknown
};

Rates ComputeRates(const ProgressSnapshot& s) {
  Rates r;
  if (s.elapsed_seconds <= 0) return r;
  r.files_per_second = double(s.files_done) / s.elapsed_seconds;
  r.mb_per_second = double(s.bytes_done) / 1e6 / s.elapsed_seconds;
  // ETA from bytes when there are any (reading time follows size), else from files.
  if (s.bytes_total > 0 && s.bytes_done > 0) {
    r.eta_seconds = double(s.bytes_total - std::min(s.bytes_done, s.bytes_total)) /
                    (double(s.bytes_done) / s.elapsed_seconds);
  } else if (s.files_done > 0) {
    r.eta_seconds = double(s.files_total - s.files_done) / r.files_per_second;
  }
  return r;
}

class TerminalProgress : public ProgressSink {
 public:
  explicit TerminalProgress(std::FILE* out) : out_(out) {}

  void OnStart(const std::string& root, int64_t files_seen, int64_t datasets_seen,
               int64_t datasets_to_read) override {
    std::fprintf(out_, "%s: %lld files in %lld datasets, %lld to read\n", root.c_str(),
                 static_cast<long long>(files_seen), static_cast<long long>(datasets_seen),
                 static_cast<long long>(datasets_to_read));
    std::fflush(out_);
  }

  void OnProgress(const ProgressSnapshot& s) override {
    if (s.datasets_total == 0) return;
    const Rates r = ComputeRates(s);
    constexpr int kBar = 24;
    const double fraction = s.files_total > 0 ? double(s.files_done) / double(s.files_total) : 1.0;
    std::string bar(kBar, ' ');
    for (int i = 0; i < static_cast<int>(fraction * kBar + 1e-9) && i < kBar; ++i) bar[i] = '#';
    if (s.phase != phase_ && drawn_) std::fputc('\n', out_);  // keep the finished pass's line
    phase_ = s.phase;
    if (s.phase == Phase::kThumbnails) {
      std::fprintf(out_, "\r[%s] thumbnails %lld/%lld  %.1f/s  ETA %s\x1b[K", bar.c_str(),
                   static_cast<long long>(s.files_done), static_cast<long long>(s.files_total),
                   r.files_per_second, FormatDuration(r.eta_seconds).c_str());
    } else {
      std::fprintf(
          out_, "\r[%s] %lld/%lld files  %.1f/%.1f MB  %.1f files/s  %.1f MB/s  ETA %s%s\x1b[K",
          bar.c_str(), static_cast<long long>(s.files_done), static_cast<long long>(s.files_total),
          double(s.bytes_done) / 1e6, double(s.bytes_total) / 1e6, r.files_per_second,
          r.mb_per_second, FormatDuration(r.eta_seconds).c_str(),
          s.datasets_failed ? ("  " + std::to_string(s.datasets_failed) + " failed").c_str() : "");
    }
    std::fflush(out_);
    drawn_ = true;
  }

  void OnFinish(const IngestSummary& summary) override {
    if (drawn_) std::fputc('\n', out_);
    std::fputs(FormatSummary(summary).c_str(), out_);
    std::fflush(out_);
  }

 private:
  std::FILE* out_;
  bool drawn_ = false;
  Phase phase_ = Phase::kMetadata;
};

class LogProgress : public ProgressSink {
 public:
  LogProgress(double every_seconds, int64_t every_files)
      : every_seconds_(every_seconds), every_files_(every_files) {}

  void OnStart(const std::string& root, int64_t files_seen, int64_t datasets_seen,
               int64_t datasets_to_read) override {
    spdlog::info("ingest {}: {} files in {} datasets, {} to read", root, files_seen, datasets_seen,
                 datasets_to_read);
    last_time_ = Clock::now();
  }

  void OnProgress(const ProgressSnapshot& s) override {
    const auto now = Clock::now();
    const bool time_due = std::chrono::duration<double>(now - last_time_).count() >= every_seconds_;
    const bool files_due = every_files_ > 0 && s.files_done - last_files_ >= every_files_;
    if (s.phase != last_phase_) last_files_ = 0;
    last_phase_ = s.phase;
    if (s.files_done == last_files_ || (!time_due && !files_due)) return;
    const Rates r = ComputeRates(s);
    if (s.phase == Phase::kThumbnails) {
      spdlog::info("ingest: thumbnails {}/{}, {:.1f}/s, ETA {}", s.files_done, s.files_total,
                   r.files_per_second, FormatDuration(r.eta_seconds));
    } else {
      spdlog::info(
          "ingest: {}/{} files, {:.1f}/{:.1f} MB, {:.1f} files/s, {:.1f} MB/s, {} failed, "
          "ETA {}",
          s.files_done, s.files_total, double(s.bytes_done) / 1e6, double(s.bytes_total) / 1e6,
          r.files_per_second, r.mb_per_second, s.datasets_failed, FormatDuration(r.eta_seconds));
    }
    last_time_ = now;
    last_files_ = s.files_done;
  }

  void OnFinish(const IngestSummary& summary) override {
    std::string text = FormatSummary(summary);
    if (!text.empty() && text.back() == '\n') text.pop_back();
    spdlog::info("ingest finished:\n{}", text);
  }

 private:
  double every_seconds_;
  int64_t every_files_;
  Clock::time_point last_time_ = Clock::now();
  int64_t last_files_ = 0;
  Phase last_phase_ = Phase::kMetadata;
};

class SilentProgress : public ProgressSink {
 public:
  void OnStart(const std::string&, int64_t, int64_t, int64_t) override {}
  void OnProgress(const ProgressSnapshot&) override {}
  void OnFinish(const IngestSummary&) override {}
};

}  // namespace

std::unique_ptr<ProgressSink> MakeTerminalProgress(std::FILE* out) {
  return std::make_unique<TerminalProgress>(out);
}

std::unique_ptr<ProgressSink> MakeLogProgress(double every_seconds, int64_t every_files) {
  return std::make_unique<LogProgress>(every_seconds, every_files);
}

std::unique_ptr<ProgressSink> MakeDefaultProgress() {
  if (isatty(STDERR_FILENO)) return MakeTerminalProgress(stderr);
  return MakeLogProgress();
}

std::unique_ptr<ProgressSink> MakeSilentProgress() { return std::make_unique<SilentProgress>(); }

std::string FormatSummary(const IngestSummary& s) {
  char buf[1024];
  std::snprintf(buf, sizeof(buf),
                "%s%s\n"
                "  files seen:  %lld in %lld datasets\n"
                "  datasets:    %lld new, %lld changed, %lld unchanged, %lld gone, %lld failed"
                " (+%lld known bad, skipped)\n"
                "  warnings:    %lld; crawl errors: %lld\n"
                "  read:        %.1f MB in %.2f s (%.1f files/s, %.1f MB/s)\n"
                "  thumbnails:  %lld made in %.2f s; whole run %.2f s\n",
                s.root.c_str(), s.interrupted ? " (interrupted)" : "",
                static_cast<long long>(s.files_seen), static_cast<long long>(s.datasets_seen),
                static_cast<long long>(s.datasets_new), static_cast<long long>(s.datasets_changed),
                static_cast<long long>(s.datasets_unchanged),
                static_cast<long long>(s.datasets_gone), static_cast<long long>(s.datasets_failed),
                static_cast<long long>(s.failed_unchanged), static_cast<long long>(s.warnings),
                static_cast<long long>(s.crawl_errors), double(s.bytes_read) / 1e6,
                s.metadata_seconds, s.files_per_second, s.mb_per_second,
                static_cast<long long>(s.thumbnails_made), s.thumbnail_seconds, s.seconds);
  return buf;
}

}  // namespace scisearch::ingest
