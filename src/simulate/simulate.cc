// The simulator's driver: plan -> render -> write, in parallel; and the
// catalog-only variant that records the plan without files.
#include "simulate/simulate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "simulate/plan.h"
#include "simulate/random.h"
#include "simulate/scene.h"
#include "simulate/writer_input.h"
#include "simulate/writers.h"

namespace scisearch::simulate {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using formats::Axis;
using formats::DType;
using formats::NdArray;

bool IsSpectrumKind(SceneKind kind) {
  return kind == SceneKind::kEdsSpectrum || kind == SceneKind::kEelsSpectrum;
}

// Stacks `frames` equal-shaped arrays along a new leading axis.
NdArray Stack(std::vector<NdArray> frames) {
  NdArray out;
  out.dtype = frames.front().dtype;
  out.shape = frames.front().shape;
  out.shape.insert(out.shape.begin(), int64_t(frames.size()));
  for (const NdArray& frame : frames) {
    out.bytes.insert(out.bytes.end(), frame.bytes.begin(), frame.bytes.end());
  }
  return out;
}

// Renders the data of one planned signal; its shape is given by the axes:
// rank 1 a spectrum, rank 2 an image, rank 3 a spectrum image (spectrum scenes)
// or a series of frames, rank 4 a 4D-STEM scan of diffraction patterns.
Result<NdArray> RenderSignal(const PlannedSignal& signal, uint64_t seed) {
  std::vector<int64_t> shape;
  for (const Axis& axis : signal.axes) shape.push_back(axis.size);
  const SceneSpec& scene = signal.scene;
  switch (shape.size()) {
    case 1:
      return RenderSpectrum(scene, shape[0], signal.dtype, seed);
    case 2:
      return RenderImage(scene, shape[0], shape[1], signal.dtype, seed);
    case 3: {
      if (IsSpectrumKind(scene.kind)) {
        return RenderSpectrumImage(scene, shape[0], shape[1], shape[2], signal.dtype, seed);
      }
      std::vector<NdArray> frames;
      for (int64_t f = 0; f < shape[0]; ++f) {
        SCISEARCH_ASSIGN_OR_RETURN(NdArray frame,
                                   RenderImage(scene, shape[1], shape[2], signal.dtype,
                                               Random::Derive(seed, "frame", uint64_t(f))));
        frames.push_back(std::move(frame));
      }
      return Stack(std::move(frames));
    }
    case 4: {
      std::vector<NdArray> rows;
      for (int64_t y = 0; y < shape[0]; ++y) {
        std::vector<NdArray> patterns;
        for (int64_t x = 0; x < shape[1]; ++x) {
          SCISEARCH_ASSIGN_OR_RETURN(
              NdArray pattern,
              RenderImage(scene, shape[2], shape[3], signal.dtype,
                          Random::Derive(seed, "probe", uint64_t(y * shape[1] + x))));
          patterns.push_back(std::move(pattern));
        }
        rows.push_back(Stack(std::move(patterns)));
      }
      return Stack(std::move(rows));
    }
    default:
      return Status::InvalidArgument("signal " + signal.name + ": cannot render rank " +
                                     std::to_string(shape.size()));
  }
}

// Seconds since 1970 of a planned acquisition time (its clock taken as UTC); nullopt
// when there is none.
std::optional<int64_t> AcquiredUnixSeconds(const formats::NormalisedFields& fields) {
  if (!fields.acquired) return std::nullopt;
  const std::optional<IsoTime> t = ParseIsoTime(*fields.acquired, 1900, 2200);
  if (!t) return std::nullopt;
  return int64_t(std::floor(UnixInstant(*t)));
}

// Renders and writes one planned file under `out`. Returns the bytes written. Every
// file it writes takes the acquisition time as its modification time, as the
// instrument PC would have left it (best effort: a file system may refuse).
Result<int64_t> WritePlannedFile(const PlannedFile& file, const fs::path& out) {
  Acquisition acquisition;
  acquisition.fields = file.fields;
  acquisition.operator_name = file.operator_name;
  acquisition.sample_description = file.sample_description;
  for (size_t i = 0; i < file.signals.size(); ++i) {
    const PlannedSignal& planned = file.signals[i];
    Result<NdArray> data = RenderSignal(planned, Random::Derive(file.seed, "signal", i));
    if (!data.ok()) return data.status().WithContext((out / file.relative_path).string());
    acquisition.signals.push_back({planned.name, planned.axes, std::move(*data)});
  }
  const fs::path path = out / file.relative_path;
  std::vector<fs::path> written = {path};
  Status status;
  switch (file.format) {
    case FileFormat::kTia: {
      auto paths = WriteTia(path, acquisition);
      if (paths.ok()) {
        written = *paths;
      } else {
        status = paths.status();
      }
      break;
    }
    case FileFormat::kDm3:
      status = WriteDigitalMicrograph(path, acquisition, 3);
      break;
    case FileFormat::kDm4:
      status = WriteDigitalMicrograph(path, acquisition, 4);
      break;
    case FileFormat::kMrc:
      status = WriteMrc(path, acquisition);
      break;
    case FileFormat::kFeiTiff:
      status = WriteFeiTiff(path, acquisition);
      break;
    case FileFormat::kVeloxEmd:
      status = WriteVeloxEmd(path, acquisition);
      break;
    case FileFormat::kBerkeleyEmd:
      status = WriteBerkeleyEmd(path, acquisition);
      break;
  }
  if (!status.ok()) return status;  // the writers name the file
  const std::optional<int64_t> acquired = AcquiredUnixSeconds(file.fields);
  int64_t bytes = 0;
  for (const fs::path& p : written) {
    std::error_code ec;
    if (acquired) {
      fs::last_write_time(p,
                          std::chrono::file_clock::from_sys(
                              std::chrono::system_clock::from_time_t(time_t(*acquired))),
                          ec);
    }
    const uintmax_t size = fs::file_size(p, ec);
    if (!ec) bytes += int64_t(size);
  }
  return bytes;
}

}  // namespace

Result<SimulateSummary> SimulateFacility(const SimulateOptions& options) {
  const auto started = Clock::now();
  if (options.out.empty()) return Status::InvalidArgument("simulate: no output folder given");
  SCISEARCH_ASSIGN_OR_RETURN(
      const FacilityPlan plan,
      MakeFacilityPlan(PlanOptions{options.files, options.seed, options.image_size}));
  std::error_code ec;
  fs::create_directories(options.out, ec);
  if (ec) return Status::IoError(options.out.string() + ": cannot create: " + ec.message());
  SCISEARCH_RETURN_IF_ERROR(WriteEcosystem(plan, options.out));

  SimulateSummary summary;
  summary.files_planned = int64_t(plan.files.size());
  summary.proposals = int64_t(plan.proposals.size());
  summary.sessions = int64_t(plan.sessions.size());
  summary.publications = int64_t(plan.publications.size());

  const int jobs = options.jobs > 0
                       ? options.jobs
                       : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  std::atomic<size_t> next{0};
  std::atomic<int64_t> written{0}, bytes{0};
  std::mutex error_mu;
  Status first_error;
  auto stopping = [&] {
    if (options.stop != nullptr && options.stop->load()) return true;
    std::lock_guard lock(error_mu);
    return !first_error.ok();
  };
  std::vector<std::thread> threads;
  for (int j = 0; j < jobs; ++j) {
    threads.emplace_back([&] {
      while (!stopping()) {
        const size_t i = next.fetch_add(1);
        if (i >= plan.files.size()) break;
        Result<int64_t> file_bytes = WritePlannedFile(plan.files[i], options.out);
        if (!file_bytes.ok()) {
          std::lock_guard lock(error_mu);
          if (first_error.ok()) first_error = file_bytes.status();
          break;
        }
        ++written;
        bytes += *file_bytes;
      }
    });
  }
  for (auto& t : threads) t.join();
  if (!first_error.ok()) return first_error;
  summary.files_written = written;
  summary.bytes_written = bytes;
  summary.interrupted = summary.files_written < summary.files_planned;
  summary.seconds = std::chrono::duration<double>(Clock::now() - started).count();
  return summary;
}

namespace {

// The metadata an instrument would record for a planned signal, without the
// vendor's hundreds of housekeeping tags: acquisition, optics, detector, stage
// and dimensions, typed as instruments type them.
formats::Metadata CatalogMetadata(const PlannedFile& file, const PlannedSignal& signal,
                                  Random& random) {
  const formats::NormalisedFields& f = file.fields;
  formats::Metadata m = formats::Metadata::object();
  formats::Metadata& acquisition = m["Acquisition"];
  acquisition["StartDateTime"] = f.acquired.value_or("");
  acquisition["Operator"] = file.operator_name;
  acquisition["SampleDescription"] = file.sample_description;
  acquisition["Instrument"] = f.instrument.value_or("");
  acquisition["Mode"] = std::string(formats::ModeName(f.mode));
  formats::Metadata& optics = m["Optics"];
  if (f.beam_energy_kev) optics["AccelerationVoltage"] = *f.beam_energy_kev * 1000.0;
  if (f.magnification) optics["NominalMagnification"] = *f.magnification;
  if (f.pixel_size_m) {
    optics["PixelSize"] = {{"value", *f.pixel_size_m}, {"unit", f.pixel_size_units.value_or("m")}};
  }
  optics["SpotIndex"] = random.Between(1, 11);
  optics["C2ApertureDiameter"] = random.Pick(std::vector<int>{30, 50, 70, 150});
  formats::Metadata& detector = m["Detector"];
  detector["Name"] = signal.name;
  detector["DwellTime"] = random.Uniform(0.5e-6, 20e-6);
  detector["Gain"] = random.Uniform(0.8, 4.0);
  formats::Metadata& stage = m["Stage"];
  stage["X"] = random.Uniform(-1e-3, 1e-3);
  stage["Y"] = random.Uniform(-1e-3, 1e-3);
  stage["Z"] = random.Uniform(-2e-5, 2e-5);
  stage["AlphaTilt"] = random.Uniform(-0.5, 0.5);
  stage["BetaTilt"] = random.Uniform(-0.3, 0.3);
  formats::Metadata& dimensions = m["Dimensions"];
  dimensions = formats::Metadata::array();
  for (const Axis& axis : signal.axes) {
    dimensions.push_back({{"Name", axis.name},
                          {"Size", axis.size},
                          {"Scale", axis.scale},
                          {"Offset", axis.offset},
                          {"Units", axis.units}});
  }
  return m;
}

// Bytes a planned signal takes on disk (header bytes aside).
int64_t DataBytes(const PlannedSignal& signal) {
  int64_t elements = 1;
  for (const Axis& axis : signal.axes) elements *= axis.size;
  return elements * int64_t(formats::DTypeSize(signal.dtype));
}

// The record ingest would store for a planned file under `root`, with the tags
// an enricher would suggest: each expert tag kept with probability 0.8 at a
// confidence in [0.5, 1), and now and then a wrong one.
catalog::DatasetRecord CatalogRecord(const PlannedFile& file, const fs::path& root,
                                     const std::vector<std::string>& vocabulary) {
  Random random(Random::Derive(file.seed, "catalog"));
  catalog::DatasetRecord record;
  const fs::path path = root / file.relative_path;
  record.path = path.string();
  record.root = root.string();
  const int64_t mtime_ns = AcquiredUnixSeconds(file.fields).value_or(0) * 1000000000;
  int64_t total = 0;
  for (const PlannedSignal& s : file.signals) total += DataBytes(s) + 4096;
  record.files.push_back({record.path, uint64_t(total), mtime_ns});
  if (file.format == FileFormat::kTia) {
    // The .emi holds the metadata; each signal's data sits in its own _N.ser.
    record.files.front().size_bytes = 65536;
    const std::string stem = path.stem().string();
    for (size_t i = 0; i < file.signals.size(); ++i) {
      const fs::path ser = path.parent_path() / (stem + "_" + std::to_string(i + 1) + ".ser");
      record.files.push_back({ser.string(), uint64_t(DataBytes(file.signals[i]) + 4096), mtime_ns});
    }
  }
  record.fingerprint = catalog::ComputeFingerprint(record.files);
  record.dataset.path = path;
  record.dataset.format = std::string(FileFormatName(file.format));
  for (const catalog::FileStat& f : record.files) record.dataset.member_files.push_back(f.path);
  for (const PlannedSignal& planned : file.signals) {
    formats::Signal signal;
    signal.name = planned.name;
    signal.dtype = planned.dtype;
    for (const Axis& axis : planned.axes) signal.shape.push_back(axis.size);
    signal.axes = planned.axes;
    signal.fields = file.fields;
    signal.fields.detector = planned.name;
    signal.metadata = CatalogMetadata(file, planned, random);
    record.dataset.signals.push_back(std::move(signal));
  }
  record.encoded = catalog::EncodeSignals(record.dataset);
  for (const std::string& tag : file.expert_tags) {
    if (random.Chance(0.8)) {
      record.tags.push_back({tag, "text", random.Uniform(0.5, 1.0), "simulated enricher"});
    }
  }
  if (!vocabulary.empty() && random.Chance(0.1)) {
    record.tags.push_back({random.Pick(vocabulary), "text", random.Uniform(0.5, 0.8),
                           "simulated enricher (wrong on purpose)"});
  }
  return record;
}

}  // namespace

Result<SimulateSummary> SimulateCatalog(catalog::Catalog& catalog,
                                        const CatalogOnlyOptions& options) {
  const auto started = Clock::now();
  // Images are not rendered, so their planned size only sets the shapes recorded.
  SCISEARCH_ASSIGN_OR_RETURN(const FacilityPlan plan,
                             MakeFacilityPlan(PlanOptions{options.records, options.seed, 1024}));
  SimulateSummary summary;
  summary.files_planned = int64_t(plan.files.size());
  summary.proposals = int64_t(plan.proposals.size());
  summary.sessions = int64_t(plan.sessions.size());
  summary.publications = int64_t(plan.publications.size());

  for (const Proposal& p : plan.proposals) {
    SCISEARCH_RETURN_IF_ERROR(catalog.PutProposal(
        {p.id, p.title, p.abstract, p.pi, p.team, p.start_date, p.end_date, p.release_date}));
  }
  for (const Session& s : plan.sessions) {
    SCISEARCH_RETURN_IF_ERROR(catalog.PutSession(
        {s.id, s.instrument, s.user, s.pi, s.proposal, s.start, s.end, s.notes}));
  }
  for (const Publication& p : plan.publications) {
    SCISEARCH_RETURN_IF_ERROR(
        catalog.PutPublication({p.doi, p.title, p.abstract, p.authors, p.date, p.proposals}));
  }
  std::unordered_map<std::string, std::string> release_dates;
  std::vector<std::string> vocabulary;
  for (const Proposal& p : plan.proposals) release_dates[p.id] = p.release_date;
  for (const PlannedFile& f : plan.files) {
    for (const std::string& tag : f.expert_tags) {
      if (vocabulary.size() < 512 &&
          std::find(vocabulary.begin(), vocabulary.end(), tag) == vocabulary.end()) {
        vocabulary.push_back(tag);
      }
    }
  }

  SCISEARCH_ASSIGN_OR_RETURN(const int64_t run, catalog.StartRun(options.root.string()));
  catalog::RunStats stats;
  {
    catalog::Catalog::BatchWriter batch(catalog, 512);
    for (const PlannedFile& file : plan.files) {
      const catalog::DatasetRecord record = CatalogRecord(file, options.root, vocabulary);
      SCISEARCH_RETURN_IF_ERROR(batch.PutDataset(run, record));
      SCISEARCH_RETURN_IF_ERROR(batch.LinkDataset(record.path, file.session, file.proposal,
                                                  release_dates[file.proposal]));
      ++summary.files_written;
      stats.bytes_read += int64_t(record.files.front().size_bytes);
    }
    SCISEARCH_RETURN_IF_ERROR(batch.Flush());
  }
  stats.files_seen = stats.datasets_new = summary.files_written;
  SCISEARCH_RETURN_IF_ERROR(catalog.FinishRun(run, stats));
  summary.seconds = std::chrono::duration<double>(Clock::now() - started).count();
  return summary;
}

}  // namespace scisearch::simulate
