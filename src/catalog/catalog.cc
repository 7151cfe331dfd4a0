// The SQLite catalog: connection setup, atomic dataset writes, batching, lookups.
#include "catalog/catalog.h"

#include <sqlite3.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <system_error>
#include <unordered_map>

#include "catalog/sqlite_util.h"
#include "formats/text.h"

namespace scisearch::catalog {

using internal::ExecSql;
using internal::SqliteError;
using internal::Statement;

// Prepared statements keyed by the address of their (static) SQL text, so the
// per-dataset writes do not re-parse SQL thousands of times.
class Catalog::StatementCache {
 public:
  explicit StatementCache(sqlite3* db) : db_(db) {}

  // Returns the cached statement for `sql`, reset and with cleared bindings.
  // `sql` must be a string literal (its address is the key).
  Result<Statement*> Get(const char* sql) {
    auto it = statements_.find(sql);
    if (it == statements_.end()) {
      SCISEARCH_ASSIGN_OR_RETURN(Statement s, Statement::Prepare(db_, sql));
      it = statements_.emplace(sql, std::move(s)).first;
    }
    it->second.Reset();
    return &it->second;
  }

 private:
  sqlite3* db_;
  std::unordered_map<const char*, Statement> statements_;
};

namespace {

constexpr int kMaxFlattenDepth = 64;

std::string IsoFromTimespec(int64_t seconds, int64_t nanos) {
  const time_t t = static_cast<time_t>(seconds);
  struct tm tm_utc;
  if (gmtime_r(&t, &tm_utc) == nullptr) return "";
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm_utc.tm_year + 1900,
                tm_utc.tm_mon + 1, tm_utc.tm_mday, tm_utc.tm_hour, tm_utc.tm_min, tm_utc.tm_sec,
                static_cast<int>(nanos / 1000000));
  return buf;
}

std::string NowIso() {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  const int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now).count();
  return IsoFromTimespec(ns / 1000000000, ns % 1000000000);
}

std::string IsoFromNs(int64_t ns) {
  int64_t s = ns / 1000000000;
  int64_t rem = ns % 1000000000;
  if (rem < 0) {
    rem += 1000000000;
    s -= 1;
  }
  return IsoFromTimespec(s, rem);
}

// The [lower, upper) range of paths strictly under `root`, for index-friendly
// prefix queries (no LIKE, whose wildcards paths may contain).
struct PathRange {
  std::string exact;
  std::string lower;
  std::string upper;
};
PathRange UnderRoot(const std::string& root) {
  PathRange r;
  r.exact = root;
  r.lower = root;
  if (r.lower.empty() || r.lower.back() != '/') r.lower += '/';
  r.upper = r.lower;
  r.upper.back() = static_cast<char>('/' + 1);
  return r;
}

std::string AxesJson(const std::vector<formats::Axis>& axes) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const auto& a : axes) {
    nlohmann::ordered_json j;
    j["name"] = a.name;
    j["size"] = a.size;
    j["scale"] = std::isfinite(a.scale) ? nlohmann::ordered_json(a.scale) : nullptr;
    j["offset"] = std::isfinite(a.offset) ? nlohmann::ordered_json(a.offset) : nullptr;
    j["units"] = a.units;
    j["navigate"] = a.navigate;
    out.push_back(std::move(j));
  }
  return out.dump();
}

std::optional<double> Finite(const std::optional<double>& v) {
  if (v && std::isfinite(*v)) return v;
  return std::nullopt;
}

// Dumps JSON, replacing invalid UTF-8 instead of throwing (DumpJson writes what dump()
// would, faster: ingest serialises every metadata tree through here).
std::string SafeDump(const nlohmann::ordered_json& j) { return formats::DumpJson(j); }

constexpr size_t kMaxScalarArrayRows = 16;

// Appends `key` to a JSON path as SQLite's json_tree writes it: .key when the key
// is a plain identifier, else ."key" with the key JSON-escaped.
void AppendJsonPathKey(const std::string& key, std::string& path) {
  const bool plain =
      !key.empty() && std::isalpha(static_cast<unsigned char>(key[0])) &&
      std::all_of(key.begin(), key.end(), [](char c) {
        return static_cast<unsigned char>(c) < 128 && std::isalnum(static_cast<unsigned char>(c));
      });
  path += '.';
  if (plain) {
    path += key;
  } else {
    path += nlohmann::json(key).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
}

// The number of leaves (values that are neither objects nor arrays) of `tree`:
// the rows json_tree gives it. Iterative, so no depth of nesting can overflow the stack.
int64_t CountLeaves(const formats::Metadata& tree) {
  int64_t leaves = 0;
  std::vector<const formats::Metadata*> pending{&tree};
  while (!pending.empty()) {
    const formats::Metadata* node = pending.back();
    pending.pop_back();
    if (node->is_structured()) {
      for (const auto& child : *node) pending.push_back(&child);
    } else {
      ++leaves;
    }
  }
  return leaves;
}

void Flatten(const formats::Metadata& node, std::string& path, int depth, size_t max_array,
             std::vector<MetadataEntry>& out) {
  using Type = MetadataEntry::Type;
  if (depth > kMaxFlattenDepth) return;
  if (node.is_object()) {
    for (auto it = node.begin(); it != node.end(); ++it) {
      const size_t keep = path.size();
      AppendJsonPathKey(it.key(), path);
      Flatten(it.value(), path, depth + 1, max_array, out);
      path.resize(keep);
    }
    return;
  }
  if (node.is_array()) {
    // Long runs of numbers (colour tables, tilt series, calibration curves) are data,
    // not facts to search by: only their first few values become rows.
    const bool scalars = !node.empty() && node.front().is_primitive();
    const size_t n =
        std::min(node.size(), scalars ? std::min(max_array, kMaxScalarArrayRows) : max_array);
    for (size_t i = 0; i < n; ++i) {
      const size_t keep = path.size();
      path += '[' + std::to_string(i) + ']';
      Flatten(node[i], path, depth + 1, max_array, out);
      path.resize(keep);
    }
    return;
  }
  MetadataEntry e;
  e.key_path = path;
  if (node.is_boolean()) {
    e.type = Type::kBool;
    e.int_value = node.get<bool>() ? 1 : 0;
  } else if (node.is_number_unsigned()) {
    const uint64_t u = node.get<uint64_t>();
    if (u <= uint64_t(std::numeric_limits<int64_t>::max())) {
      e.type = Type::kInt;
      e.int_value = static_cast<int64_t>(u);
    } else {
      e.type = Type::kReal;
      e.real_value = static_cast<double>(u);
    }
  } else if (node.is_number_integer()) {
    e.type = Type::kInt;
    e.int_value = node.get<int64_t>();
  } else if (node.is_number_float()) {
    const double d = node.get<double>();
    if (std::isfinite(d)) {
      e.type = Type::kReal;
      e.real_value = d;
    } else {
      // SQLite stores NaN as NULL; keep the value readable as text.
      e.type = Type::kText;
      e.text_value = std::isnan(d) ? "nan" : (d > 0 ? "inf" : "-inf");
    }
  } else if (node.is_string()) {
    e.type = Type::kText;
    e.text_value = node.get<std::string>();
  } else if (node.is_binary()) {
    e.type = Type::kText;
    e.text_value = "<" + std::to_string(node.get_binary().size()) + " bytes>";
  } else {
    e.type = Type::kNull;
  }
  out.push_back(std::move(e));
}

formats::NormalisedFields ReadFields(const Statement& s, int first_col) {
  formats::NormalisedFields f;
  f.acquired = s.OptText(first_col);
  f.instrument = s.OptText(first_col + 1);
  f.mode = formats::ModeFromName(s.Text(first_col + 2)).value_or(formats::Mode::kUnknown);
  f.beam_energy_kev = s.OptReal(first_col + 3);
  f.magnification = s.OptReal(first_col + 4);
  f.pixel_size_m = s.OptReal(first_col + 5);
  f.pixel_size_units = s.OptText(first_col + 6);
  f.detector = s.OptText(first_col + 7);
  return f;
}

// Binds the eight normalised columns starting at `first`.
void BindFields(Statement& s, int first, const formats::NormalisedFields* f) {
  if (f == nullptr) {
    for (int i = 0; i < 8; ++i) s.BindNull(first + i);
    return;
  }
  s.Bind(first, f->acquired);
  s.Bind(first + 1, f->instrument);
  if (f->mode == formats::Mode::kUnknown) {
    s.BindNull(first + 2);
  } else {
    s.Bind(first + 2, formats::ModeName(f->mode));
  }
  s.Bind(first + 3, Finite(f->beam_energy_kev));
  s.Bind(first + 4, Finite(f->magnification));
  s.Bind(first + 5, Finite(f->pixel_size_m));
  s.Bind(first + 6, f->pixel_size_units);
  s.Bind(first + 7, f->detector);
}

// The columns ReadDatasetRow reads, as a macro so that the statements below are
// string literals (the StatementCache's keys).
#define SCISEARCH_DATASET_COLUMNS                                                          \
  "id, path, root, format, state, error, fingerprint, size_bytes, mtime, first_seen, "     \
  "last_seen, ingest_run_id, acquired, instrument, mode, beam_energy_kev, magnification, " \
  "pixel_size, pixel_size_units, detector, proposal_id, session_id, embargo_until, "       \
  "(SELECT json_group_array(name) FROM signals WHERE dataset_id = datasets.id), "          \
  "context_fingerprint"
constexpr const char* kDatasetColumns = SCISEARCH_DATASET_COLUMNS;
constexpr const char* kSelectDatasetByPath =
    "SELECT " SCISEARCH_DATASET_COLUMNS " FROM datasets WHERE path = ?1";
constexpr const char* kSelectDatasetById =
    "SELECT " SCISEARCH_DATASET_COLUMNS " FROM datasets WHERE id = ?1";
#undef SCISEARCH_DATASET_COLUMNS
constexpr const char* kSelectFiles =
    "SELECT path, size, mtime_ns FROM dataset_files WHERE dataset_id = ?1 "
    "ORDER BY path = ?2 DESC, path";
constexpr const char* kSelectSignals =
    "SELECT id, idx, name, dtype, shape, axes, metadata_json, acquired, instrument, mode, "
    "beam_energy_kev, magnification, pixel_size, pixel_size_units, detector FROM signals "
    "WHERE dataset_id = ?1 ORDER BY idx";
// Strongest first: what experts accepted, then by confidence; rejected tags last.
#define SCISEARCH_TAG_COLUMNS                                           \
  "value, source, IFNULL(confidence, 0), IFNULL(evidence, ''), state, " \
  "IFNULL(validated_by, ''), IFNULL(validated_at, ''), id, dataset_id"
constexpr const char* kSelectTags =
    "SELECT " SCISEARCH_TAG_COLUMNS
    " FROM tags WHERE dataset_id = ?1 "
    "ORDER BY state = 'rejected', state = 'accepted' DESC, confidence DESC, value";
constexpr const char* kSelectTagById = "SELECT " SCISEARCH_TAG_COLUMNS " FROM tags WHERE id = ?1";
#undef SCISEARCH_TAG_COLUMNS

TagRow ReadTagRow(const Statement& s) {
  return TagRow{.value = s.Text(0),
                .source = s.Text(1),
                .confidence = s.Real(2),
                .evidence = s.Text(3),
                .state = s.Text(4),
                .validated_by = s.Text(5),
                .validated_at = s.Text(6),
                .id = s.Int(7),
                .dataset_id = s.Int(8)};
}

std::vector<std::string> ReadJsonStrings(const std::string& text) {
  std::vector<std::string> out;
  const nlohmann::json array = nlohmann::json::parse(text, nullptr, false);
  if (!array.is_array()) return out;
  for (const auto& item : array) {
    if (item.is_string()) out.push_back(item.get<std::string>());
  }
  return out;
}

DatasetRow ReadDatasetRow(const Statement& s) {
  DatasetRow r;
  r.id = s.Int(0);
  r.path = s.Text(1);
  r.root = s.Text(2);
  r.format = s.Text(3);
  r.state = s.Text(4);
  r.error = s.Text(5);
  r.fingerprint = s.Text(6);
  r.size_bytes = static_cast<uint64_t>(s.Int(7));
  r.mtime = s.Text(8);
  r.first_seen = s.Text(9);
  r.last_seen = s.Text(10);
  r.ingest_run_id = s.Int(11);
  r.fields = ReadFields(s, 12);
  r.proposal_id = s.Text(20);
  r.session_id = s.Text(21);
  r.embargo_until = s.Text(22);
  r.signal_names = ReadJsonStrings(s.Text(23));
  r.context_fingerprint = s.Text(24);
  return r;
}

// SQL shared by PutDataset and RecordError. Without RETURNING: SQLite gathers a
// RETURNING clause's rows in a temporary b-tree, opened and closed by every upsert;
// kDatasetIdByPath finds the row through the path's unique index instead.
constexpr const char* kUpsertDataset =
    "INSERT INTO datasets (path, root, format, state, error, fingerprint, size_bytes, mtime, "
    "first_seen, last_seen, ingest_run_id, acquired, instrument, mode, beam_energy_kev, "
    "magnification, pixel_size, pixel_size_units, detector) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18) "
    "ON CONFLICT(path) DO UPDATE SET root = excluded.root, format = excluded.format, "
    "state = excluded.state, error = excluded.error, fingerprint = excluded.fingerprint, "
    "size_bytes = excluded.size_bytes, mtime = excluded.mtime, last_seen = excluded.last_seen, "
    "ingest_run_id = excluded.ingest_run_id, acquired = excluded.acquired, "
    "instrument = excluded.instrument, mode = excluded.mode, "
    "beam_energy_kev = excluded.beam_energy_kev, magnification = excluded.magnification, "
    "pixel_size = excluded.pixel_size, pixel_size_units = excluded.pixel_size_units, "
    "detector = excluded.detector, thumbnail_state = NULL, context_fingerprint = NULL";
constexpr const char* kDatasetIdByPath = "SELECT id FROM datasets WHERE path = ?1";
constexpr const char* kDeleteFiles = "DELETE FROM dataset_files WHERE dataset_id = ?1";
constexpr const char* kUpsertFile =
    "INSERT INTO dataset_files (dataset_id, path, size, mtime_ns) VALUES (?1, ?2, ?3, ?4) "
    "ON CONFLICT(path) DO UPDATE SET dataset_id = excluded.dataset_id, size = excluded.size, "
    "mtime_ns = excluded.mtime_ns";
constexpr const char* kDeleteSignals = "DELETE FROM signals WHERE dataset_id = ?1";
constexpr const char* kDeleteThumbnails = "DELETE FROM thumbnails WHERE dataset_id = ?1";
// Tags ingest derives and nobody validated are re-derived on every write.
constexpr const char* kDeleteDerivedTags =
    "DELETE FROM tags WHERE dataset_id = ?1 AND state = 'suggested' AND "
    "source IN ('path', 'metadata', 'text', 'image')";
constexpr const char* kDeleteEmbedding = "DELETE FROM image_embeddings WHERE dataset_id = ?1";
constexpr const char* kDeleteSubsumed = "DELETE FROM datasets WHERE path = ?1";
constexpr const char* kInsertSignal =
    "INSERT INTO signals (dataset_id, idx, name, dtype, shape, axes, acquired, instrument, mode, "
    "beam_energy_kev, magnification, pixel_size, pixel_size_units, detector, metadata_json, "
    "metadata_leaves) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, "
    "?16)";
constexpr const char* kInsertThumbnail =
    "INSERT OR REPLACE INTO thumbnails (dataset_id, signal_idx, png, width, height) "
    "VALUES (?1, ?2, ?3, ?4, ?5)";
constexpr const char* kInsertTag =
    "INSERT INTO tags (dataset_id, value, source, confidence, evidence, created_at, created_by) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'ingest') ON CONFLICT(dataset_id, value, source) DO NOTHING";
constexpr const char* kMarkThumbnails =
    "UPDATE datasets SET thumbnail_state = ?3 WHERE id = ?1 AND fingerprint = ?2 AND state = 'ok'";
constexpr const char* kInsertRunError =
    "INSERT INTO ingest_errors (run_id, path, reason, at) VALUES (?1, ?2, ?3, ?4)";

}  // namespace

std::string ComputeFingerprint(const std::vector<FileStat>& files) {
  std::vector<const FileStat*> sorted;
  sorted.reserve(files.size());
  for (const auto& f : files) sorted.push_back(&f);
  std::sort(sorted.begin(), sorted.end(),
            [](const FileStat* a, const FileStat* b) { return a->path < b->path; });
  // Two independent 64-bit FNV-1a streams give 128 bits: collisions between a
  // file's old and new stat records are then out of the question.
  uint64_t h1 = 14695981039346656037ull;
  uint64_t h2 = 0x84222325cbf29ce4ull;
  auto mix = [&](const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < n; ++i) {
      h1 = (h1 ^ p[i]) * 1099511628211ull;
      h2 = (h2 ^ p[i]) * 0x100000001b3ull;
      h2 ^= h2 >> 29;
    }
  };
  for (const FileStat* f : sorted) {
    mix(f->path.data(), f->path.size());
    const uint8_t sep = 0;
    mix(&sep, 1);
    mix(&f->size_bytes, sizeof(f->size_bytes));
    mix(&f->mtime_ns, sizeof(f->mtime_ns));
  }
  char buf[33];
  std::snprintf(buf, sizeof(buf), "%016llx%016llx", static_cast<unsigned long long>(h1),
                static_cast<unsigned long long>(h2));
  return buf;
}

const char* MetadataTypeName(MetadataEntry::Type type) {
  switch (type) {
    case MetadataEntry::Type::kInt:
      return "int";
    case MetadataEntry::Type::kReal:
      return "real";
    case MetadataEntry::Type::kText:
      return "text";
    case MetadataEntry::Type::kBool:
      return "bool";
    case MetadataEntry::Type::kNull:
      return "null";
  }
  return "null";
}

std::vector<MetadataEntry> FlattenMetadata(const formats::Metadata& tree,
                                           size_t max_array_elements) {
  std::vector<MetadataEntry> out;
  std::string path = "$";
  Flatten(tree, path, 0, max_array_elements, out);
  return out;
}

std::vector<EncodedSignal> EncodeSignals(const formats::Dataset& dataset) {
  std::vector<EncodedSignal> out;
  out.reserve(dataset.signals.size());
  for (const formats::Signal& signal : dataset.signals) {
    EncodedSignal e;
    e.shape_json = nlohmann::json(signal.shape).dump();
    e.axes_json = AxesJson(signal.axes);
    e.metadata_json = SafeDump(signal.metadata);
    e.metadata_leaves = CountLeaves(signal.metadata);
    out.push_back(std::move(e));
  }
  return out;
}

// --- Catalog ---------------------------------------------------------------

Catalog::Catalog(std::filesystem::path data_dir, sqlite3* db)
    : data_dir_(std::move(data_dir)), db_(db), statements_(new StatementCache(db)) {}

Catalog::~Catalog() {
  statements_.reset();  // finalize statements before closing
  sqlite3_close_v2(db_);
}

Result<std::unique_ptr<Catalog>> Catalog::Open(const std::filesystem::path& data_dir) {
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) return Status::IoError(data_dir.string() + ": cannot create folder: " + ec.message());
  const std::filesystem::path file = data_dir / "catalog.sqlite";
  sqlite3* raw = nullptr;
  const int rc =
      sqlite3_open_v2(file.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  std::unique_ptr<Catalog> catalog(new Catalog(data_dir, raw));  // owns raw even on failure
  if (rc != SQLITE_OK) {
    return Status::IoError(file.string() +
                           ": cannot open: " + (raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
  }
  sqlite3_busy_timeout(raw, 30000);
  sqlite3_extended_result_codes(raw, 1);
  {
    SCISEARCH_ASSIGN_OR_RETURN(Statement wal, Statement::Prepare(raw, "PRAGMA journal_mode = WAL"));
    SCISEARCH_ASSIGN_OR_RETURN(bool row, wal.Step());
    if (!row || wal.Text(0) != "wal") {
      return Status::IoError(file.string() + ": cannot switch to WAL journal mode");
    }
  }
  // synchronous=NORMAL: in WAL mode a crash loses at most the last commits, never
  // consistency. A 64 MiB page cache and memory-mapped reads keep ingest's writes
  // from re-reading index pages through system calls. Checkpoints every 8192 pages
  // (32 MiB of WAL) rather than SQLite's 1000: each commit of an ingest batch writes
  // the same index pages again, and a checkpoint copies a page once however often the
  // WAL holds it; the writer's work per dataset falls by a tenth (bench/catalog_bench).
  SCISEARCH_RETURN_IF_ERROR(
      ExecSql(raw,
              "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; "
              "PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY; "
              "PRAGMA mmap_size = 268435456; PRAGMA wal_autocheckpoint = 8192"));
  SCISEARCH_RETURN_IF_ERROR(internal::Migrate(raw, file.string()));
  return catalog;
}

template <typename F>
Status Catalog::Atomically(F&& body) {
  const char* begin = in_batch_ ? "SAVEPOINT put" : "BEGIN IMMEDIATE";
  const char* commit = in_batch_ ? "RELEASE put" : "COMMIT";
  const char* rollback = in_batch_ ? "ROLLBACK TO put; RELEASE put" : "ROLLBACK";
  SCISEARCH_RETURN_IF_ERROR(ExecSql(db_, begin));
  Status s = body();
  if (s.ok()) s = ExecSql(db_, commit);
  if (!s.ok()) {
    (void)ExecSql(db_, rollback);
  }
  return s;
}

Result<int64_t> Catalog::StartRun(const std::string& root) {
  int64_t id = 0;
  const std::string now = NowIso();
  Status s = Atomically([&]() -> Status {
    SCISEARCH_ASSIGN_OR_RETURN(
        Statement mark,
        Statement::Prepare(db_,
                           "UPDATE ingest_runs SET status = 'interrupted', finished_at = "
                           "NULL WHERE status = 'running'"));
    SCISEARCH_RETURN_IF_ERROR(mark.Run());
    SCISEARCH_ASSIGN_OR_RETURN(
        Statement insert,
        Statement::Prepare(db_,
                           "INSERT INTO ingest_runs (root, started_at, status) VALUES (?1, "
                           "?2, 'running')"));
    insert.Bind(1, root).Bind(2, now);
    SCISEARCH_RETURN_IF_ERROR(insert.Run());
    id = sqlite3_last_insert_rowid(db_);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return id;
}

Status Catalog::FinishRun(int64_t run_id, const RunStats& stats, const std::string& status) {
  if (status != "finished" && status != "interrupted") {
    return Status::InvalidArgument("catalog: run status must be finished or interrupted, not '" +
                                   status + "'");
  }
  return Atomically([&]() -> Status {
    SCISEARCH_ASSIGN_OR_RETURN(
        Statement s,
        Statement::Prepare(db_,
                           "UPDATE ingest_runs SET status = ?2, finished_at = ?3, files_seen = ?4, "
                           "datasets_new = ?5, datasets_changed = ?6, datasets_unchanged = ?7, "
                           "datasets_gone = ?8, errors = ?9, bytes_read = ?10 WHERE id = ?1"));
    s.Bind(1, run_id).Bind(2, status).Bind(3, NowIso()).Bind(4, stats.files_seen);
    s.Bind(5, stats.datasets_new).Bind(6, stats.datasets_changed);
    s.Bind(7, stats.datasets_unchanged).Bind(8, stats.datasets_gone).Bind(9, stats.errors);
    s.Bind(10, stats.bytes_read);
    SCISEARCH_RETURN_IF_ERROR(s.Run());
    if (sqlite3_changes(db_) != 1) {
      return Status::NotFound("catalog: no ingest run " + std::to_string(run_id));
    }
    return Status::Ok();
  });
}

Result<RunRow> Catalog::GetRun(int64_t run_id) {
  SCISEARCH_ASSIGN_OR_RETURN(
      Statement s, Statement::Prepare(db_,
                                      "SELECT id, root, started_at, finished_at, status, "
                                      "files_seen, datasets_new, datasets_changed, "
                                      "datasets_unchanged, datasets_gone, errors, bytes_read "
                                      "FROM ingest_runs WHERE id = ?1"));
  s.Bind(1, run_id);
  SCISEARCH_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return Status::NotFound("catalog: no ingest run " + std::to_string(run_id));
  RunRow r;
  r.id = s.Int(0);
  r.root = s.Text(1);
  r.started_at = s.Text(2);
  r.finished_at = s.Text(3);
  r.status = s.Text(4);
  r.stats.files_seen = s.Int(5);
  r.stats.datasets_new = s.Int(6);
  r.stats.datasets_changed = s.Int(7);
  r.stats.datasets_unchanged = s.Int(8);
  r.stats.datasets_gone = s.Int(9);
  r.stats.errors = s.Int(10);
  r.stats.bytes_read = s.Int(11);
  return r;
}

namespace {

// How much a mode says about an acquisition: a spectrum image recorded with its
// survey image is a spectrum image; an image with a diffraction pattern, diffraction.
int ModeRank(formats::Mode mode) {
  using formats::Mode;
  switch (mode) {
    case Mode::k4dStem:
      return 9;
    case Mode::kSpectrumImage:
      return 8;
    case Mode::kSpectrum:
      return 7;
    case Mode::kVolume:
      return 6;
    case Mode::kDiffraction:
      return 5;
    case Mode::kStemImage:
    case Mode::kTemImage:
    case Mode::kSemImage:
      return 4;
    case Mode::kOpticalImage:
      return 3;
    case Mode::kImage:
      return 2;
    case Mode::kUnknown:
      return 1;
  }
  return 0;
}

// The fields of a dataset row: its first signal's, with the most telling mode of
// all its signals. nullopt for a dataset without signals.
std::optional<formats::NormalisedFields> DatasetFields(const formats::Dataset& dataset) {
  if (dataset.signals.empty()) return std::nullopt;
  formats::NormalisedFields fields = dataset.signals.front().fields;
  for (const formats::Signal& signal : dataset.signals) {
    if (ModeRank(signal.fields.mode) > ModeRank(fields.mode)) fields.mode = signal.fields.mode;
  }
  return fields;
}

// The row UpsertDatasetRow wrote.
struct UpsertedDataset {
  int64_t id = 0;
  bool is_new = false;  // no row had the path before: nothing can refer to this one yet
};

// Upserts the dataset row of `path`. Keeps id and first_seen of an existing row.
Result<UpsertedDataset> UpsertDatasetRow(sqlite3* db, Statement& s, Statement& find_id,
                                         int64_t run_id, const std::string& path,
                                         const std::string& root, const std::string* format,
                                         const char* state, const std::string* error,
                                         const std::string& fingerprint,
                                         const std::vector<FileStat>& files,
                                         const formats::NormalisedFields* fields) {
  uint64_t size = 0;
  int64_t newest = std::numeric_limits<int64_t>::min();
  for (const auto& f : files) {
    size += f.size_bytes;
    newest = std::max(newest, f.mtime_ns);
  }
  s.Bind(1, path).Bind(2, root);
  if (format) {
    s.Bind(3, *format);
  } else {
    s.BindNull(3);
  }
  s.Bind(4, state);
  if (error) {
    s.Bind(5, *error);
  } else {
    s.BindNull(5);
  }
  s.Bind(6, fingerprint).Bind(7, static_cast<int64_t>(size));
  if (files.empty()) {
    s.BindNull(8);
  } else {
    s.Bind(8, IsoFromNs(newest));
  }
  s.Bind(9, NowIso()).Bind(10, run_id);
  BindFields(s, 11, fields);
  // Looked up before the upsert, which keeps an existing row's id, so that a new row's
  // id is the insert's own rowid (the index_changes trigger's insert does not change it).
  find_id.Bind(1, path);
  Result<bool> row = find_id.Step();
  UpsertedDataset out;
  out.is_new = row.ok() && !*row;
  out.id = row.ok() && *row ? find_id.Int(0) : 0;
  find_id.Reset();
  if (!row.ok()) return row.status();
  SCISEARCH_RETURN_IF_ERROR(s.Run());
  if (out.is_new) out.id = sqlite3_last_insert_rowid(db);
  return out;
}

}  // namespace

Status Catalog::ReplaceDerivedRows(int64_t dataset_id, bool is_new,
                                   const std::vector<FileStat>& files) {
  StatementCache& c = *statements_;
  // Every table below refers to datasets with ON DELETE CASCADE, so a new row has no
  // derived rows to drop (a reused id's went with the row that had it).
  if (!is_new) {
    for (const char* sql :
         {kDeleteFiles, kDeleteSignals, kDeleteThumbnails, kDeleteDerivedTags, kDeleteEmbedding}) {
      SCISEARCH_ASSIGN_OR_RETURN(Statement * del, c.Get(sql));
      del->Bind(1, dataset_id);
      SCISEARCH_RETURN_IF_ERROR(del->Run());
    }
  }
  for (const auto& f : files) {
    SCISEARCH_ASSIGN_OR_RETURN(Statement * ins, c.Get(kUpsertFile));
    ins->Bind(1, dataset_id).Bind(2, f.path).Bind(3, static_cast<int64_t>(f.size_bytes));
    ins->Bind(4, f.mtime_ns);
    SCISEARCH_RETURN_IF_ERROR(ins->Run());
  }
  return Status::Ok();
}

Status Catalog::PutDatasetUnlocked(int64_t run_id, const DatasetRecord& record) {
  if (record.path.empty()) return Status::InvalidArgument("catalog: dataset path is empty");
  StatementCache& c = *statements_;
  // A member file that was catalogued as a dataset of its own (a .ser ingested
  // before its .emi appeared) is now part of this dataset.
  for (const auto& f : record.files) {
    if (f.path == record.path) continue;
    SCISEARCH_ASSIGN_OR_RETURN(Statement * del, c.Get(kDeleteSubsumed));
    del->Bind(1, f.path);
    SCISEARCH_RETURN_IF_ERROR(del->Run());
  }
  std::optional<formats::NormalisedFields> dataset_fields = DatasetFields(record.dataset);
  const formats::NormalisedFields* fields = dataset_fields ? &*dataset_fields : nullptr;
  SCISEARCH_ASSIGN_OR_RETURN(Statement * upsert, c.Get(kUpsertDataset));
  SCISEARCH_ASSIGN_OR_RETURN(Statement * find_id, c.Get(kDatasetIdByPath));
  SCISEARCH_ASSIGN_OR_RETURN(const UpsertedDataset row,
                             UpsertDatasetRow(db_, *upsert, *find_id, run_id, record.path,
                                              record.root, &record.dataset.format, "ok", nullptr,
                                              record.fingerprint, record.files, fields));
  const int64_t id = row.id;
  SCISEARCH_RETURN_IF_ERROR(ReplaceDerivedRows(id, row.is_new, record.files));
  std::vector<EncodedSignal> encoded_here;
  if (record.encoded.size() != record.dataset.signals.size()) {
    encoded_here = EncodeSignals(record.dataset);
  }
  const std::vector<EncodedSignal>& encoded = encoded_here.empty() ? record.encoded : encoded_here;
  SCISEARCH_ASSIGN_OR_RETURN(Statement * insert_signal, c.Get(kInsertSignal));
  for (size_t i = 0; i < record.dataset.signals.size(); ++i) {
    const formats::Signal& sig = record.dataset.signals[i];
    const EncodedSignal& enc = encoded[i];
    Statement& ins = *insert_signal;
    ins.Bind(1, id).Bind(2, static_cast<int64_t>(i)).Bind(3, sig.name);
    ins.Bind(4, formats::DTypeName(sig.dtype));
    ins.Bind(5, enc.shape_json).Bind(6, enc.axes_json);
    BindFields(ins, 7, &sig.fields);
    ins.Bind(15, enc.metadata_json).Bind(16, enc.metadata_leaves);
    SCISEARCH_RETURN_IF_ERROR(ins.Run());
  }
  const std::string now = NowIso();
  for (const TagSuggestion& t : record.tags) {
    SCISEARCH_ASSIGN_OR_RETURN(Statement * ins, c.Get(kInsertTag));
    ins->Bind(1, id).Bind(2, t.value).Bind(3, t.source).Bind(4, t.confidence);
    ins->Bind(5, t.evidence).Bind(6, now);
    SCISEARCH_RETURN_IF_ERROR(ins->Run());
  }
  return Status::Ok();
}

Status Catalog::RecordErrorUnlocked(int64_t run_id, const ErrorRecord& record) {
  if (record.path.empty()) return Status::InvalidArgument("catalog: dataset path is empty");
  StatementCache& c = *statements_;
  SCISEARCH_ASSIGN_OR_RETURN(Statement * upsert, c.Get(kUpsertDataset));
  SCISEARCH_ASSIGN_OR_RETURN(Statement * find_id, c.Get(kDatasetIdByPath));
  SCISEARCH_ASSIGN_OR_RETURN(
      const UpsertedDataset row,
      UpsertDatasetRow(db_, *upsert, *find_id, run_id, record.path, record.root, nullptr, "error",
                       &record.reason, record.fingerprint, record.files, nullptr));
  SCISEARCH_RETURN_IF_ERROR(ReplaceDerivedRows(row.id, row.is_new, record.files));
  SCISEARCH_ASSIGN_OR_RETURN(Statement * err, c.Get(kInsertRunError));
  err->Bind(1, run_id).Bind(2, record.path).Bind(3, record.reason).Bind(4, NowIso());
  return err->Run();
}

Status Catalog::PutThumbnailsUnlocked(int64_t dataset_id, const std::string& fingerprint,
                                      ThumbnailOutcome outcome,
                                      const std::vector<Thumbnail>& thumbnails) {
  StatementCache& c = *statements_;
  SCISEARCH_ASSIGN_OR_RETURN(Statement * mark, c.Get(kMarkThumbnails));
  const char* state = outcome == ThumbnailOutcome::kMade   ? "made"
                      : outcome == ThumbnailOutcome::kNone ? "none"
                                                           : "failed";
  mark->Bind(1, dataset_id).Bind(2, fingerprint).Bind(3, state);
  SCISEARCH_RETURN_IF_ERROR(mark->Run());
  if (sqlite3_changes(db_) == 0) return Status::Ok();  // changed since: not this version's
  if (outcome != ThumbnailOutcome::kMade) return Status::Ok();
  SCISEARCH_ASSIGN_OR_RETURN(Statement * ins, c.Get(kInsertThumbnail));
  for (const Thumbnail& t : thumbnails) {
    ins->Bind(1, dataset_id).Bind(2, t.signal_index).BindBlob(3, t.png).Bind(4, t.width);
    ins->Bind(5, t.height);
    SCISEARCH_RETURN_IF_ERROR(ins->Run());
  }
  return Status::Ok();
}

Status Catalog::PutThumbnails(int64_t dataset_id, const std::string& fingerprint,
                              ThumbnailOutcome outcome, const std::vector<Thumbnail>& thumbnails) {
  return Atomically(
             [&] { return PutThumbnailsUnlocked(dataset_id, fingerprint, outcome, thumbnails); })
      .WithContext("writing the thumbnails of dataset " + std::to_string(dataset_id));
}

namespace {

std::string JsonArray(const std::vector<std::string>& items) {
  return SafeDump(nlohmann::ordered_json(items));
}

// Binds `text`, or NULL when it is empty.
void BindOptional(Statement& s, int index, const std::string& text) {
  if (text.empty()) {
    s.BindNull(index);
  } else {
    s.Bind(index, text);
  }
}

}  // namespace

Status Catalog::PutProposal(const ProposalRecord& p) {
  if (p.id.empty()) return Status::InvalidArgument("catalog: proposal id is empty");
  return Atomically([&]() -> Status {
           SCISEARCH_ASSIGN_OR_RETURN(
               Statement * s,
               statements_->Get("INSERT OR REPLACE INTO proposals (id, title, abstract, pi, team, "
                                "start_date, end_date, release_date) VALUES (?1, ?2, ?3, ?4, ?5, "
                                "?6, ?7, ?8)"));
           s->Bind(1, p.id).Bind(2, p.title).Bind(3, p.abstract).Bind(4, p.pi);
           s->Bind(5, JsonArray(p.team));
           BindOptional(*s, 6, p.start_date);
           BindOptional(*s, 7, p.end_date);
           BindOptional(*s, 8, p.release_date);
           SCISEARCH_RETURN_IF_ERROR(s->Run());
           // Sessions logged before their proposal arrived point at it now.
           SCISEARCH_ASSIGN_OR_RETURN(Statement * adopt,
                                      statements_->Get("UPDATE sessions SET proposal_id = ?1 "
                                                       "WHERE proposal_named = ?1"));
           SCISEARCH_RETURN_IF_ERROR(adopt->Bind(1, p.id).Run());
           nlohmann::ordered_json fields = {
               {"team", p.team}, {"end_date", p.end_date}, {"release_date", p.release_date}};
           return PutDocumentUnlocked({.id = p.id,
                                       .kind = "proposal",
                                       .title = p.title,
                                       .text = p.abstract,
                                       .date = p.start_date,
                                       .pi = p.pi,
                                       .proposals = {p.id},
                                       .fields_json = SafeDump(fields)});
         })
      .WithContext("writing proposal " + p.id);
}

Status Catalog::PutSession(const SessionRecord& r) {
  if (r.id.empty()) return Status::InvalidArgument("catalog: session id is empty");
  return Atomically([&]() -> Status {
           SCISEARCH_ASSIGN_OR_RETURN(
               Statement * s,
               statements_->Get("INSERT OR REPLACE INTO sessions (id, instrument, user, pi, "
                                "proposal_id, start, \"end\", notes, proposal_named) VALUES "
                                "(?1, ?2, ?3, ?4, (SELECT id FROM proposals WHERE id = ?5), ?6, "
                                "?7, ?8, ?5)"));
           s->Bind(1, r.id).Bind(2, r.instrument).Bind(3, r.user).Bind(4, r.pi);
           BindOptional(*s, 5, r.proposal_id);
           s->Bind(6, r.start).Bind(7, r.end).Bind(8, r.notes);
           SCISEARCH_RETURN_IF_ERROR(s->Run());
           nlohmann::ordered_json fields = {
               {"instrument", r.instrument}, {"user", r.user}, {"start", r.start}, {"end", r.end}};
           DocumentRecord log{.id = r.id,
                              .kind = "log",
                              .title = r.instrument + " session of " + r.user,
                              .text = r.notes,
                              .date = r.start,
                              .pi = r.pi,
                              .fields_json = SafeDump(fields)};
           if (!r.proposal_id.empty()) log.proposals = {r.proposal_id};
           return PutDocumentUnlocked(log);
         })
      .WithContext("writing session " + r.id);
}

Status Catalog::PutPublication(const PublicationRecord& p) {
  if (p.doi.empty()) return Status::InvalidArgument("catalog: publication doi is empty");
  return Atomically([&]() -> Status {
           SCISEARCH_ASSIGN_OR_RETURN(
               Statement * s,
               statements_->Get("INSERT OR REPLACE INTO publications (doi, title, abstract, "
                                "authors, date, proposals) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"));
           s->Bind(1, p.doi).Bind(2, p.title).Bind(3, p.abstract).Bind(4, JsonArray(p.authors));
           BindOptional(*s, 5, p.date);
           s->Bind(6, JsonArray(p.proposals));
           SCISEARCH_RETURN_IF_ERROR(s->Run());
           return PutDocumentUnlocked({.id = p.doi,
                                       .kind = "publication",
                                       .title = p.title,
                                       .text = p.abstract,
                                       .authors = p.authors,
                                       .date = p.date,
                                       .doi = p.doi,
                                       .proposals = p.proposals});
         })
      .WithContext("writing publication " + p.doi);
}

Status Catalog::PutDocumentUnlocked(const DocumentRecord& d) {
  if (d.id.empty()) return Status::InvalidArgument("document id is empty");
  if (d.kind != "proposal" && d.kind != "publication" && d.kind != "log") {
    return Status::InvalidArgument("document kind '" + d.kind +
                                   "' is not one of proposal, publication, log");
  }
  const nlohmann::json fields = nlohmann::json::parse(d.fields_json, nullptr, false);
  if (fields.is_discarded() || !fields.is_object()) {
    return Status::InvalidArgument("document fields are not a JSON object");
  }
  SCISEARCH_ASSIGN_OR_RETURN(
      Statement * s,
      statements_->Get("INSERT INTO documents (id, kind, title, text, authors, date, doi, pi, "
                       "fields, added_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) "
                       "ON CONFLICT(id) DO UPDATE SET kind = excluded.kind, "
                       "title = excluded.title, text = excluded.text, "
                       "authors = excluded.authors, date = excluded.date, doi = excluded.doi, "
                       "pi = excluded.pi, fields = excluded.fields"));
  s->Bind(1, d.id).Bind(2, d.kind).Bind(3, d.title).Bind(4, d.text);
  s->Bind(5, JsonArray(d.authors));
  BindOptional(*s, 6, d.date);
  BindOptional(*s, 7, d.doi);
  BindOptional(*s, 8, d.pi);
  s->Bind(9, d.fields_json).Bind(10, NowIso());
  SCISEARCH_RETURN_IF_ERROR(s->Run());
  // Rewriting the links re-indexes the datasets of the proposals concerned (triggers).
  SCISEARCH_ASSIGN_OR_RETURN(Statement * drop, statements_->Get("DELETE FROM document_proposals "
                                                                "WHERE document_id = ?1"));
  SCISEARCH_RETURN_IF_ERROR(drop->Bind(1, d.id).Run());
  SCISEARCH_ASSIGN_OR_RETURN(Statement * link,
                             statements_->Get("INSERT OR IGNORE INTO document_proposals "
                                              "(document_id, proposal_id) VALUES (?1, ?2)"));
  for (const std::string& proposal : d.proposals) {
    if (proposal.empty()) continue;
    link->Reset();
    SCISEARCH_RETURN_IF_ERROR(link->Bind(1, d.id).Bind(2, proposal).Run());
  }
  return Status::Ok();
}

Status Catalog::PutDocument(const DocumentRecord& document) {
  return Atomically([&] { return PutDocumentUnlocked(document); })
      .WithContext("writing document " + document.id);
}

namespace {

constexpr const char* kSelectDocument =
    "SELECT id, kind, title, text, authors, IFNULL(date, ''), IFNULL(doi, ''), IFNULL(pi, ''), "
    "fields, (SELECT json_group_array(proposal_id) FROM document_proposals "
    "WHERE document_id = documents.id) FROM documents WHERE id = ?1";

DocumentRecord ReadDocument(const Statement& s) {
  return DocumentRecord{.id = s.Text(0),
                        .kind = s.Text(1),
                        .title = s.Text(2),
                        .text = s.Text(3),
                        .authors = ReadJsonStrings(s.Text(4)),
                        .date = s.Text(5),
                        .doi = s.Text(6),
                        .pi = s.Text(7),
                        .proposals = ReadJsonStrings(s.Text(9)),
                        .fields_json = s.Text(8)};
}

}  // namespace

Result<DocumentRecord> Catalog::GetDocument(const std::string& id) {
  SCISEARCH_ASSIGN_OR_RETURN(Statement * s, statements_->Get(kSelectDocument));
  s->Bind(1, id);
  SCISEARCH_ASSIGN_OR_RETURN(bool row, s->Step());
  if (!row) return Status::NotFound("catalog: no document " + id);
  DocumentRecord d = ReadDocument(*s);
  s->Reset();
  return d;
}

Result<std::vector<DocumentRecord>> Catalog::DocumentsOfProposal(const std::string& proposal_id) {
  SCISEARCH_ASSIGN_OR_RETURN(
      Statement * s,
      statements_->Get("SELECT d.id, d.kind, d.title, '', d.authors, IFNULL(d.date, ''), "
                       "IFNULL(d.doi, ''), IFNULL(d.pi, ''), d.fields, '[]' "
                       "FROM document_proposals l JOIN documents d ON d.id = l.document_id "
                       "WHERE l.proposal_id = ?1 ORDER BY d.id = ?1 DESC, d.date, d.id"));
  s->Bind(1, proposal_id);
  std::vector<DocumentRecord> out;
  while (true) {
    SCISEARCH_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    out.push_back(ReadDocument(*s));
  }
  return out;
}

Result<std::string> Catalog::CatalogId() {
  SCISEARCH_ASSIGN_OR_RETURN(
      Statement * s, statements_->Get("SELECT value FROM catalog_info WHERE key = 'catalog_id'"));
  SCISEARCH_ASSIGN_OR_RETURN(bool row, s->Step());
  if (!row) return Status::Corrupt("catalog: catalog_info has no catalog_id");
  std::string id = s->Text(0);
  s->Reset();
  return id;
}

Result<int64_t> Catalog::ChangeSequence() {
  SCISEARCH_ASSIGN_OR_RETURN(Statement * s,
                             statements_->Get("SELECT IFNULL(MAX(seq), 0) FROM index_changes"));
  SCISEARCH_ASSIGN_OR_RETURN(bool row, s->Step());
  const int64_t seq = row ? s->Int(0) : 0;
  s->Reset();
  return seq;
}

Result<std::vector<ItemChange>> Catalog::ChangesSince(int64_t after) {
  SCISEARCH_ASSIGN_OR_RETURN(
      Statement * s,
      statements_->Get("SELECT item, seq FROM index_changes WHERE seq > ?1 ORDER BY seq"));
  s->Bind(1, after);
  std::vector<ItemChange> out;
  while (true) {
    SCISEARCH_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    out.push_back(ItemChange{s->Text(0), s->Int(1)});
  }
  return out;
}

Status Catalog::PutPerson(const PersonRecord& person) {
  if (person.id.empty()) return Status::InvalidArgument("catalog: person id is empty");
  return Atomically([&]() -> Status {
           SCISEARCH_ASSIGN_OR_RETURN(Statement * s,
                                      statements_->Get("INSERT OR REPLACE INTO people (id, name, "
                                                       "institution) VALUES (?1, ?2, ?3)"));
           return s->Bind(1, person.id).Bind(2, person.name).Bind(3, person.institution).Run();
         })
      .WithContext("writing person " + person.id);
}

Result<std::vector<PersonRecord>> Catalog::ListPeople() {
  SCISEARCH_ASSIGN_OR_RETURN(
      Statement s, Statement::Prepare(db_, "SELECT id, name, institution FROM people ORDER BY id"));
  std::vector<PersonRecord> out;
  while (true) {
    SCISEARCH_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back({s.Text(0), s.Text(1), s.Text(2)});
  }
  return out;
}

Result<std::vector<ProposalRecord>> Catalog::ListProposals() {
  SCISEARCH_ASSIGN_OR_RETURN(
      Statement s, Statement::Prepare(db_,
                                      "SELECT id, IFNULL(title, ''), IFNULL(abstract, ''), "
                                      "IFNULL(pi, ''), team, IFNULL(start_date, ''), "
                                      "IFNULL(end_date, ''), IFNULL(release_date, '') "
                                      "FROM proposals ORDER BY id"));
  std::vector<ProposalRecord> out;
  while (true) {
    SCISEARCH_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back({.id = s.Text(0),
                   .title = s.Text(1),
                   .abstract = s.Text(2),
                   .pi = s.Text(3),
                   .team = ReadJsonStrings(s.Text(4)),
                   .start_date = s.Text(5),
                   .end_date = s.Text(6),
                   .release_date = s.Text(7)});
  }
  return out;
}

Result<std::vector<SessionRecord>> Catalog::ListSessions() {
  SCISEARCH_ASSIGN_OR_RETURN(
      Statement s,
      Statement::Prepare(db_,
                         "SELECT id, IFNULL(instrument, ''), IFNULL(user, ''), IFNULL(pi, ''), "
                         "IFNULL(proposal_named, IFNULL(proposal_id, '')), IFNULL(start, ''), "
                         "IFNULL(\"end\", ''), IFNULL(notes, '') FROM sessions "
                         "ORDER BY instrument, start, id"));
  std::vector<SessionRecord> out;
  while (true) {
    SCISEARCH_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back({.id = s.Text(0),
                   .instrument = s.Text(1),
                   .user = s.Text(2),
                   .pi = s.Text(3),
                   .proposal_id = s.Text(4),
                   .start = s.Text(5),
                   .end = s.Text(6),
                   .notes = s.Text(7)});
  }
  return out;
}

Result<std::vector<PublicationRecord>> Catalog::ListPublications() {
  SCISEARCH_ASSIGN_OR_RETURN(
      Statement s,
      Statement::Prepare(db_,
                         "SELECT doi, title, IFNULL(abstract, ''), authors, "
                         "IFNULL(date, ''), proposals FROM publications ORDER BY doi"));
  std::vector<PublicationRecord> out;
  while (true) {
    SCISEARCH_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back({.doi = s.Text(0),
                   .title = s.Text(1),
                   .abstract = s.Text(2),
                   .authors = ReadJsonStrings(s.Text(3)),
                   .date = s.Text(4),
                   .proposals = ReadJsonStrings(s.Text(5))});
  }
  return out;
}

Status Catalog::PutDatasetContextUnlocked(const DatasetContext& context) {
  static const std::set<std::string> kLinkKinds = {"session", "proposal", "publication"};
  static const std::set<std::string> kTagSources = {
      "path", "metadata", "text", "image", "expert", "log", "proposal", "publication"};
  for (const LinkRecord& link : context.links) {
    if (!kLinkKinds.count(link.kind)) {
      return Status::InvalidArgument("link kind '" + link.kind +
                                     "' is not one of session, proposal, publication");
    }
  }
  for (const TagSuggestion& tag : context.tags) {
    if (!kTagSources.count(tag.source)) {
      return Status::InvalidArgument("tag source '" + tag.source + "' is unknown");
    }
  }
  const int64_t id = context.dataset_id;
  SCISEARCH_ASSIGN_OR_RETURN(Statement * drop_links,
                             statements_->Get("DELETE FROM dataset_links WHERE dataset_id = ?1"));
  SCISEARCH_RETURN_IF_ERROR(drop_links->Bind(1, id).Run());
  SCISEARCH_ASSIGN_OR_RETURN(
      Statement * add_link,
      statements_->Get("INSERT OR REPLACE INTO dataset_links (dataset_id, kind, target_id, "
                       "confidence, evidence) VALUES (?1, ?2, ?3, ?4, ?5)"));
  // The best known target of each kind becomes the dataset's own session / proposal.
  std::map<std::string, const LinkRecord*> best;
  for (const LinkRecord& link : context.links) {
    add_link->Reset();
    SCISEARCH_RETURN_IF_ERROR(add_link->Bind(1, id)
                                  .Bind(2, link.kind)
                                  .Bind(3, link.target_id)
                                  .Bind(4, link.confidence)
                                  .Bind(5, link.evidence)
                                  .Run());
    const LinkRecord*& b = best[link.kind];
    if (b == nullptr || link.confidence > b->confidence) b = &link;
  }
  auto best_id = [&](const char* kind) {
    auto it = best.find(kind);
    return it == best.end() ? std::string() : it->second->target_id;
  };
  SCISEARCH_ASSIGN_OR_RETURN(
      Statement * point,
      statements_->Get("UPDATE datasets SET session_id = (SELECT id FROM sessions WHERE id = ?2), "
                       "proposal_id = (SELECT id FROM proposals WHERE id = ?3), "
                       "embargo_until = ?4, context_fingerprint = ?5 WHERE id = ?1"));
  point->Bind(1, id).Bind(2, best_id("session")).Bind(3, best_id("proposal"));
  BindOptional(*point, 4, context.embargo_until);
  BindOptional(*point, 5, context.fingerprint);
  SCISEARCH_RETURN_IF_ERROR(point->Run());
  if (sqlite3_changes(db_) == 0) {
    return Status::NotFound("catalog: no dataset with id " + std::to_string(id));
  }
  return ReplaceSuggestedTags(id, context.tag_sources, context.tags, "context");
}

Status Catalog::ReplaceSuggestedTags(int64_t dataset_id, const std::vector<std::string>& sources,
                                     const std::vector<TagSuggestion>& tags,
                                     const char* created_by) {
  const int64_t id = dataset_id;
  SCISEARCH_ASSIGN_OR_RETURN(Statement * drop_tag,
                             statements_->Get("DELETE FROM tags WHERE dataset_id = ?1 AND "
                                              "source = ?2 AND state = 'suggested'"));
  for (const std::string& source : sources) {
    drop_tag->Reset();
    SCISEARCH_RETURN_IF_ERROR(drop_tag->Bind(1, id).Bind(2, source).Run());
  }
  // A tag someone accepted or rejected keeps its state; its evidence is refreshed.
  SCISEARCH_ASSIGN_OR_RETURN(
      Statement * add_tag,
      statements_->Get("INSERT INTO tags (dataset_id, value, source, confidence, evidence, "
                       "created_at, created_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
                       "ON CONFLICT(dataset_id, value, source) DO UPDATE SET "
                       "confidence = excluded.confidence, evidence = excluded.evidence"));
  const std::string now = NowIso();
  for (const TagSuggestion& tag : tags) {
    add_tag->Reset();
    SCISEARCH_RETURN_IF_ERROR(add_tag->Bind(1, id)
                                  .Bind(2, tag.value)
                                  .Bind(3, tag.source)
                                  .Bind(4, tag.confidence)
                                  .Bind(5, tag.evidence)
                                  .Bind(6, now)
                                  .Bind(7, created_by)
                                  .Run());
  }
  return Status::Ok();
}

Status Catalog::PutDatasetContext(const DatasetContext& context) {
  return Atomically([&] { return PutDatasetContextUnlocked(context); })
      .WithContext("writing the context of dataset " + std::to_string(context.dataset_id));
}

Result<std::vector<LinkRecord>> Catalog::DatasetLinks(int64_t dataset_id) {
  SCISEARCH_ASSIGN_OR_RETURN(
      Statement * s,
      statements_->Get("SELECT kind, target_id, confidence, evidence FROM dataset_links "
                       "WHERE dataset_id = ?1 ORDER BY kind DESC, confidence DESC, target_id"));
  s->Bind(1, dataset_id);
  std::vector<LinkRecord> out;
  while (true) {
    SCISEARCH_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    out.push_back({s->Text(0), s->Text(1), s->Real(2), s->Text(3)});
  }
  return out;
}

Status Catalog::LinkDataset(const std::string& path, const std::string& session_id,
                            const std::string& proposal_id, const std::string& embargo_until) {
  return Atomically([&]() -> Status {
           SCISEARCH_ASSIGN_OR_RETURN(
               Statement * s,
               statements_->Get("UPDATE datasets SET session_id = ?2, proposal_id = ?3, "
                                "embargo_until = ?4 WHERE path = ?1"));
           s->Bind(1, path);
           BindOptional(*s, 2, session_id);
           BindOptional(*s, 3, proposal_id);
           BindOptional(*s, 4, embargo_until);
           SCISEARCH_RETURN_IF_ERROR(s->Run());
           if (sqlite3_changes(db_) == 0) return Status::NotFound("catalog: no dataset " + path);
           return Status::Ok();
         })
      .WithContext("linking " + path);
}

Status Catalog::PutDataset(int64_t run_id, const DatasetRecord& record) {
  return Atomically([&] { return PutDatasetUnlocked(run_id, record); })
      .WithContext("writing " + record.path);
}

Status Catalog::RecordError(int64_t run_id, const ErrorRecord& record) {
  return Atomically([&] { return RecordErrorUnlocked(run_id, record); })
      .WithContext("recording the error of " + record.path);
}

Status Catalog::RecordRunError(int64_t run_id, const std::string& path, const std::string& reason) {
  return Atomically([&]() -> Status {
    SCISEARCH_ASSIGN_OR_RETURN(Statement * err, statements_->Get(kInsertRunError));
    err->Bind(1, run_id).Bind(2, path).Bind(3, reason).Bind(4, NowIso());
    return err->Run();
  });
}

Result<int64_t> Catalog::RecordUnchangedErrors(int64_t run_id, const std::string& root) {
  int64_t added = 0;
  const PathRange r = UnderRoot(root);
  Status s = Atomically([&]() -> Status {
    SCISEARCH_ASSIGN_OR_RETURN(
        Statement ins,
        Statement::Prepare(
            db_,
            "INSERT INTO ingest_errors (run_id, path, reason, at) "
            "SELECT ?1, path, COALESCE(error, ''), ?2 FROM datasets WHERE state = 'error' "
            "AND (ingest_run_id IS NULL OR ingest_run_id != ?1) "
            "AND (path = ?3 OR (path >= ?4 AND path < ?5)) ORDER BY path"));
    ins.Bind(1, run_id).Bind(2, NowIso()).Bind(3, r.exact).Bind(4, r.lower).Bind(5, r.upper);
    SCISEARCH_RETURN_IF_ERROR(ins.Run());
    added = sqlite3_changes(db_);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return added;
}

Result<int64_t> Catalog::MarkGone(int64_t run_id, const std::vector<std::string>& paths) {
  int64_t changed = 0;
  Status s = Atomically([&]() -> Status {
    SCISEARCH_ASSIGN_OR_RETURN(
        Statement up, Statement::Prepare(db_,
                                         "UPDATE datasets SET state = 'gone', ingest_run_id = ?1 "
                                         "WHERE path = ?2 AND state != 'gone'"));
    for (const auto& p : paths) {
      up.Bind(1, run_id).Bind(2, p);
      SCISEARCH_RETURN_IF_ERROR(up.Run());
      changed += sqlite3_changes(db_);
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return changed;
}

Status Catalog::TouchSeen(const std::string& root) {
  const PathRange r = UnderRoot(root);
  return Atomically([&]() -> Status {
    SCISEARCH_ASSIGN_OR_RETURN(
        Statement up,
        Statement::Prepare(db_,
                           "UPDATE datasets SET last_seen = ?1 WHERE state != 'gone' AND "
                           "(path = ?2 OR (path >= ?3 AND path < ?4))"));
    up.Bind(1, NowIso()).Bind(2, r.exact).Bind(3, r.lower).Bind(4, r.upper);
    return up.Run();
  });
}

Result<std::map<std::string, KnownDataset>> Catalog::FindFingerprints(const std::string& root) {
  const PathRange r = UnderRoot(root);
  SCISEARCH_ASSIGN_OR_RETURN(
      Statement s, Statement::Prepare(db_,
                                      "SELECT path, fingerprint, state FROM datasets WHERE "
                                      "path = ?1 OR (path >= ?2 AND path < ?3)"));
  s.Bind(1, r.exact).Bind(2, r.lower).Bind(3, r.upper);
  std::map<std::string, KnownDataset> out;
  while (true) {
    SCISEARCH_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out[s.Text(0)] = KnownDataset{s.Text(1), s.Text(2)};
  }
  return out;
}

Result<DatasetRow> Catalog::GetDataset(const std::string& path) {
  SCISEARCH_ASSIGN_OR_RETURN(Statement * s, statements_->Get(kSelectDatasetByPath));
  s->Bind(1, path);
  SCISEARCH_ASSIGN_OR_RETURN(bool row, s->Step());
  if (!row) return Status::NotFound("catalog: no dataset " + path);
  DatasetRow d = ReadDatasetRow(*s);
  s->Reset();  // ends the read: a cached statement left stepping would pin this snapshot
  SCISEARCH_RETURN_IF_ERROR(ReadDatasetDetail(d));
  return d;
}

Result<DatasetRow> Catalog::GetDatasetById(int64_t id) {
  SCISEARCH_ASSIGN_OR_RETURN(Statement * s, statements_->Get(kSelectDatasetById));
  s->Bind(1, id);
  SCISEARCH_ASSIGN_OR_RETURN(bool row, s->Step());
  if (!row) return Status::NotFound("catalog: no dataset with id " + std::to_string(id));
  DatasetRow d = ReadDatasetRow(*s);
  s->Reset();  // ends the read: a cached statement left stepping would pin this snapshot
  SCISEARCH_RETURN_IF_ERROR(ReadDatasetDetail(d));
  return d;
}

Status Catalog::ReadDatasetDetail(DatasetRow& d) {
  SCISEARCH_ASSIGN_OR_RETURN(Statement * files, statements_->Get(kSelectFiles));
  files->Bind(1, d.id).Bind(2, d.path);
  while (true) {
    SCISEARCH_ASSIGN_OR_RETURN(bool more, files->Step());
    if (!more) break;
    d.files.push_back(
        FileStat{files->Text(0), static_cast<uint64_t>(files->Int(1)), files->Int(2)});
  }
  SCISEARCH_ASSIGN_OR_RETURN(Statement * sig, statements_->Get(kSelectSignals));
  sig->Bind(1, d.id);
  while (true) {
    SCISEARCH_ASSIGN_OR_RETURN(bool more, sig->Step());
    if (!more) break;
    SignalRow r;
    r.id = sig->Int(0);
    r.index = static_cast<int>(sig->Int(1));
    r.name = sig->Text(2);
    r.dtype = sig->Text(3);
    r.shape_json = sig->Text(4);
    r.axes_json = sig->Text(5);
    r.metadata_json = sig->Text(6);
    r.fields = ReadFields(*sig, 7);
    d.signals.push_back(std::move(r));
  }
  SCISEARCH_ASSIGN_OR_RETURN(Statement * tags, statements_->Get(kSelectTags));
  tags->Bind(1, d.id);
  while (true) {
    SCISEARCH_ASSIGN_OR_RETURN(bool more, tags->Step());
    if (!more) break;
    d.tags.push_back(ReadTagRow(*tags));
  }
  return Status::Ok();
}

Result<std::string> Catalog::FindDatasetByFile(const std::string& file_path) {
  SCISEARCH_ASSIGN_OR_RETURN(
      Statement s, Statement::Prepare(db_,
                                      "SELECT d.path FROM dataset_files f JOIN datasets d ON "
                                      "d.id = f.dataset_id WHERE f.path = ?1"));
  s.Bind(1, file_path);
  SCISEARCH_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return Status::NotFound("catalog: no dataset has the file " + file_path);
  return s.Text(0);
}

Result<std::vector<DatasetRow>> Catalog::ListDatasets(const std::string& root,
                                                      const std::string& state, int64_t limit) {
  const PathRange r = UnderRoot(root);
  const std::string sql = std::string("SELECT ") + kDatasetColumns +
                          " FROM datasets WHERE (?1 = '' OR path = ?1 OR (path >= ?2 AND path < "
                          "?3)) AND (?4 = '' OR state = ?4) ORDER BY path LIMIT ?5";
  SCISEARCH_ASSIGN_OR_RETURN(Statement s, Statement::Prepare(db_, sql));
  s.Bind(1, r.exact).Bind(2, r.lower).Bind(3, r.upper).Bind(4, state);
  s.Bind(5, limit > 0 ? limit : int64_t{-1});
  std::vector<DatasetRow> out;
  while (true) {
    SCISEARCH_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(ReadDatasetRow(s));
  }
  return out;
}

Result<std::vector<ThumbnailJob>> Catalog::PendingThumbnails(const std::string& root) {
  const PathRange r = UnderRoot(root);
  // The conditions repeat the partial index datasets_thumbnail_pending, so SQLite uses it.
  SCISEARCH_ASSIGN_OR_RETURN(
      Statement s, Statement::Prepare(db_,
                                      "SELECT id, path, fingerprint FROM datasets WHERE state = "
                                      "'ok' AND thumbnail_state IS NULL AND (?1 = '' OR path = "
                                      "?1 OR (path >= ?2 AND path < ?3)) ORDER BY path"));
  s.Bind(1, r.exact).Bind(2, r.lower).Bind(3, r.upper);
  std::vector<ThumbnailJob> out;
  while (true) {
    SCISEARCH_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(ThumbnailJob{s.Int(0), s.Text(1), s.Text(2)});
  }
  return out;
}

Result<Thumbnail> Catalog::GetThumbnail(int64_t dataset_id, int signal_index) {
  SCISEARCH_ASSIGN_OR_RETURN(Statement s,
                             Statement::Prepare(db_,
                                                "SELECT png, width, height FROM thumbnails WHERE "
                                                "dataset_id = ?1 AND signal_idx = ?2"));
  s.Bind(1, dataset_id).Bind(2, signal_index);
  SCISEARCH_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) {
    return Status::NotFound("catalog: no thumbnail for dataset " + std::to_string(dataset_id) +
                            " signal " + std::to_string(signal_index));
  }
  Thumbnail t;
  t.signal_index = signal_index;
  t.png = s.Blob(0);
  t.width = static_cast<int>(s.Int(1));
  t.height = static_cast<int>(s.Int(2));
  return t;
}

Result<CatalogCounts> Catalog::Counts() {
  SCISEARCH_ASSIGN_OR_RETURN(
      Statement s,
      Statement::Prepare(db_,
                         "SELECT (SELECT COUNT(*) FROM datasets WHERE state = 'ok'), "
                         "(SELECT COUNT(*) FROM datasets WHERE state = 'error'), "
                         "(SELECT COUNT(*) FROM datasets WHERE state = 'gone'), "
                         "(SELECT COUNT(*) FROM dataset_files), (SELECT COUNT(*) FROM signals), "
                         "(SELECT COALESCE(SUM(metadata_leaves), 0) FROM signals), "
                         "(SELECT COUNT(*) FROM thumbnails), "
                         "(SELECT COUNT(*) FROM tags), (SELECT COUNT(*) FROM documents)"));
  SCISEARCH_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return Status::Internal("catalog: counts returned no row");
  CatalogCounts c;
  c.datasets_ok = s.Int(0);
  c.datasets_error = s.Int(1);
  c.datasets_gone = s.Int(2);
  c.files = s.Int(3);
  c.signals = s.Int(4);
  c.metadata_entries = s.Int(5);
  c.thumbnails = s.Int(6);
  c.tags = s.Int(7);
  c.documents = s.Int(8);
  return c;
}

Result<CatalogCounts> Catalog::QuickCounts() {
  SCISEARCH_ASSIGN_OR_RETURN(
      Statement * s, statements_->Get("SELECT (SELECT COUNT(*) FROM datasets WHERE state = 'ok'), "
                                      "(SELECT COUNT(*) FROM documents)"));
  SCISEARCH_ASSIGN_OR_RETURN(bool row, s->Step());
  if (!row) return Status::Internal("catalog: counts returned no row");
  CatalogCounts c;
  c.datasets_ok = s->Int(0);
  c.documents = s->Int(1);
  s->Reset();
  return c;
}

Result<std::vector<IngestErrorRow>> Catalog::ListErrors(int64_t run_id) {
  SCISEARCH_ASSIGN_OR_RETURN(
      Statement s, Statement::Prepare(db_,
                                      "SELECT run_id, path, reason, at FROM ingest_errors "
                                      "WHERE run_id = ?1 ORDER BY id"));
  s.Bind(1, run_id);
  std::vector<IngestErrorRow> out;
  while (true) {
    SCISEARCH_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(IngestErrorRow{s.Int(0), s.Text(1), s.Text(2), s.Text(3)});
  }
  return out;
}

Status Catalog::IntegrityCheck() {
  {
    SCISEARCH_ASSIGN_OR_RETURN(Statement s, Statement::Prepare(db_, "PRAGMA integrity_check"));
    std::string problems;
    while (true) {
      SCISEARCH_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      const std::string line = s.Text(0);
      if (line != "ok") problems += (problems.empty() ? "" : "; ") + line;
    }
    if (!problems.empty()) return Status::Corrupt("catalog: integrity_check: " + problems);
  }
  SCISEARCH_ASSIGN_OR_RETURN(Statement fk, Statement::Prepare(db_, "PRAGMA foreign_key_check"));
  SCISEARCH_ASSIGN_OR_RETURN(bool bad, fk.Step());
  if (bad) {
    return Status::Corrupt("catalog: foreign_key_check: table " + fk.Text(0) + " row " +
                           std::to_string(fk.Int(1)) + " refers to a missing " + fk.Text(2));
  }
  return Status::Ok();
}

// --- Lists for the web application ----------------------------------------

Result<std::vector<DatasetSummary>> Catalog::SummariseDatasets(const std::vector<int64_t>& ids) {
  std::vector<DatasetSummary> out;
  if (ids.empty()) return out;
  nlohmann::json id_array = nlohmann::json::array();
  for (int64_t id : ids) id_array.push_back(id);
  SCISEARCH_ASSIGN_OR_RETURN(
      Statement * s,
      statements_->Get(
          "SELECT d.id, d.path, IFNULL(d.format, ''), IFNULL(d.instrument, ''), "
          "IFNULL(d.mode, ''), IFNULL(d.acquired, ''), IFNULL(d.proposal_id, ''), "
          "COALESCE(p.pi, s.pi, ''), IFNULL(d.embargo_until, ''), "
          "EXISTS (SELECT 1 FROM thumbnails t WHERE t.dataset_id = d.id AND t.signal_idx = 0) "
          "FROM json_each(?1) j JOIN datasets d ON d.id = j.value "
          "LEFT JOIN proposals p ON p.id = d.proposal_id "
          "LEFT JOIN sessions s ON s.id = d.session_id ORDER BY j.key"));
  s->Bind(1, id_array.dump());
  while (true) {
    SCISEARCH_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    out.push_back(DatasetSummary{.id = s->Int(0),
                                 .path = s->Text(1),
                                 .format = s->Text(2),
                                 .instrument = s->Text(3),
                                 .mode = s->Text(4),
                                 .acquired = s->Text(5),
                                 .proposal_id = s->Text(6),
                                 .pi = s->Text(7),
                                 .embargo_until = s->Text(8),
                                 .has_thumbnail = s->Int(9) != 0});
  }
  return out;
}

Result<std::vector<int>> Catalog::ThumbnailSignals(int64_t dataset_id) {
  SCISEARCH_ASSIGN_OR_RETURN(
      Statement * s,
      statements_->Get(
          "SELECT signal_idx FROM thumbnails WHERE dataset_id = ?1 ORDER BY signal_idx"));
  s->Bind(1, dataset_id);
  std::vector<int> out;
  while (true) {
    SCISEARCH_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    out.push_back(static_cast<int>(s->Int(0)));
  }
  return out;
}

Result<std::vector<TagValueCount>> Catalog::TagValuesWithPrefix(const std::string& prefix,
                                                                int64_t limit) {
  std::vector<TagValueCount> out;
  if (limit <= 0) return out;
  // A range over the NOCASE index (tags_value_nocase) instead of LIKE, whose
  // wildcards a prefix may contain; the scan is capped so that a one-letter prefix
  // over millions of tags stays fast.
  SCISEARCH_ASSIGN_OR_RETURN(
      Statement * s, statements_->Get("SELECT value, COUNT(*) AS n FROM (SELECT value FROM tags "
                                      "WHERE value COLLATE NOCASE >= ?1 AND state != 'rejected' "
                                      "AND (?2 = '' OR value COLLATE NOCASE < ?2) "
                                      "ORDER BY value COLLATE NOCASE LIMIT 20000) "
                                      "GROUP BY value ORDER BY n DESC, value LIMIT ?3"));
  // The first string above every string with the prefix: the prefix with its last
  // byte raised (bytes 0xff dropped first); "" when there is none (no upper bound).
  std::string upper = prefix;
  while (!upper.empty() && static_cast<unsigned char>(upper.back()) == 0xff) upper.pop_back();
  if (!upper.empty()) upper.back() = static_cast<char>(upper.back() + 1);
  s->Bind(1, prefix).Bind(2, upper).Bind(3, limit);
  while (true) {
    SCISEARCH_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    out.push_back(TagValueCount{s->Text(0), s->Int(1)});
  }
  return out;
}

// --- People's work -----------------------------------------------------------

namespace {

// `value` trimmed, or kInvalidArgument naming what is wrong with it.
Result<std::string> CleanTagValue(const std::string& value) {
  const std::string trimmed(formats::TrimSpace(value));
  if (trimmed.empty()) return Status::InvalidArgument("tag value is empty");
  if (trimmed.size() > 200) {
    return Status::InvalidArgument("tag value is longer than 200 bytes (" +
                                   std::to_string(trimmed.size()) + ")");
  }
  if (!formats::IsValidUtf8(trimmed)) {
    return Status::InvalidArgument("tag value is not valid UTF-8");
  }
  for (unsigned char c : trimmed) {
    if (c < 0x20 || c == 0x7f) {
      return Status::InvalidArgument("tag value contains a control character");
    }
  }
  return trimmed;
}

Status CheckUser(const std::string& user) {
  if (user.empty()) return Status::InvalidArgument("user is empty: name who makes the change");
  return Status::Ok();
}

}  // namespace

Status Catalog::AppendTagEvent(const TagRow& tag, const char* action, const std::string& user,
                               const std::string& at) {
  SCISEARCH_ASSIGN_OR_RETURN(
      Statement * s,
      statements_->Get("INSERT INTO tag_events (tag_id, dataset_id, value, source, action, "
                       "user, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"));
  return s->Bind(1, tag.id)
      .Bind(2, tag.dataset_id)
      .Bind(3, tag.value)
      .Bind(4, tag.source)
      .Bind(5, action)
      .Bind(6, user)
      .Bind(7, at)
      .Run();
}

Result<TagRow> Catalog::GetTag(int64_t tag_id) {
  SCISEARCH_ASSIGN_OR_RETURN(Statement * s, statements_->Get(kSelectTagById));
  s->Bind(1, tag_id);
  SCISEARCH_ASSIGN_OR_RETURN(bool row, s->Step());
  if (!row) return Status::NotFound("catalog: no tag with id " + std::to_string(tag_id));
  TagRow tag = ReadTagRow(*s);
  s->Reset();
  return tag;
}

Result<TagRow> Catalog::AddExpertTag(int64_t dataset_id, const std::string& value,
                                     const std::string& user) {
  SCISEARCH_RETURN_IF_ERROR(CheckUser(user));
  SCISEARCH_ASSIGN_OR_RETURN(const std::string clean, CleanTagValue(value));
  TagRow tag;
  Status s = Atomically([&]() -> Status {
    SCISEARCH_ASSIGN_OR_RETURN(Statement * exists,
                               statements_->Get("SELECT 1 FROM datasets WHERE id = ?1"));
    exists->Bind(1, dataset_id);
    SCISEARCH_ASSIGN_OR_RETURN(bool found, exists->Step());
    exists->Reset();
    if (!found)
      return Status::NotFound("catalog: no dataset with id " + std::to_string(dataset_id));
    const std::string now = NowIso();
    SCISEARCH_ASSIGN_OR_RETURN(
        Statement * ins,
        statements_->Get(
            "INSERT INTO tags (dataset_id, value, source, confidence, evidence, "
            "created_at, created_by, validated_by, validated_at, state) "
            "VALUES (?1, ?2, 'expert', 1, '', ?3, ?4, ?4, ?3, 'accepted') "
            "ON CONFLICT(dataset_id, value, source) DO UPDATE SET "
            "state = 'accepted', confidence = 1, validated_by = excluded.validated_by, "
            "validated_at = excluded.validated_at RETURNING id"));
    ins->Bind(1, dataset_id).Bind(2, clean).Bind(3, now).Bind(4, user);
    SCISEARCH_ASSIGN_OR_RETURN(bool row, ins->Step());
    if (!row) return Status::Internal("catalog: adding a tag returned no id");
    const int64_t id = ins->Int(0);
    ins->Reset();
    SCISEARCH_ASSIGN_OR_RETURN(tag, GetTag(id));
    return AppendTagEvent(tag, "add", user, now);
  });
  if (!s.ok())
    return s.WithContext("adding tag '" + clean + "' to dataset " + std::to_string(dataset_id));
  return tag;
}

Result<TagRow> Catalog::SetTagState(int64_t tag_id, const std::string& state,
                                    const std::string& user) {
  SCISEARCH_RETURN_IF_ERROR(CheckUser(user));
  if (state != "accepted" && state != "rejected") {
    return Status::InvalidArgument("tag state must be accepted or rejected, not '" + state + "'");
  }
  TagRow tag;
  Status s = Atomically([&]() -> Status {
    const std::string now = NowIso();
    SCISEARCH_ASSIGN_OR_RETURN(
        Statement * up,
        statements_->Get("UPDATE tags SET state = ?2, validated_by = ?3, validated_at = ?4 "
                         "WHERE id = ?1"));
    SCISEARCH_RETURN_IF_ERROR(up->Bind(1, tag_id).Bind(2, state).Bind(3, user).Bind(4, now).Run());
    if (sqlite3_changes(db_) == 0) {
      return Status::NotFound("catalog: no tag with id " + std::to_string(tag_id));
    }
    SCISEARCH_ASSIGN_OR_RETURN(tag, GetTag(tag_id));
    return AppendTagEvent(tag, state == "accepted" ? "accept" : "reject", user, now);
  });
  if (!s.ok()) return s;
  return tag;
}

Result<TagRow> Catalog::RemoveTag(int64_t tag_id, const std::string& user) {
  SCISEARCH_RETURN_IF_ERROR(CheckUser(user));
  TagRow before;
  Status s = Atomically([&]() -> Status {
    SCISEARCH_ASSIGN_OR_RETURN(before, GetTag(tag_id));
    const std::string now = NowIso();
    if (before.source == "expert") {
      SCISEARCH_ASSIGN_OR_RETURN(Statement * del,
                                 statements_->Get("DELETE FROM tags WHERE id = ?1"));
      SCISEARCH_RETURN_IF_ERROR(del->Bind(1, tag_id).Run());
    } else {
      SCISEARCH_ASSIGN_OR_RETURN(
          Statement * up, statements_->Get("UPDATE tags SET state = 'rejected', validated_by = ?2, "
                                           "validated_at = ?3 WHERE id = ?1"));
      SCISEARCH_RETURN_IF_ERROR(up->Bind(1, tag_id).Bind(2, user).Bind(3, now).Run());
    }
    return AppendTagEvent(before, "remove", user, now);
  });
  if (!s.ok()) return s;
  return before;
}

Result<int64_t> Catalog::CountDatasetsTaggedBy(const std::string& user) {
  SCISEARCH_ASSIGN_OR_RETURN(
      Statement * s,
      statements_->Get("SELECT COUNT(DISTINCT dataset_id) FROM tag_events WHERE user = ?1"));
  s->Bind(1, user);
  SCISEARCH_ASSIGN_OR_RETURN(bool row, s->Step());
  const int64_t n = row ? s->Int(0) : 0;
  s->Reset();
  return n;
}

Result<QueueEntry> Catalog::QueueEntryOf(int64_t dataset_id, const std::string& path) {
  // Both counts are range scans of the covering index datasets_state_path.
  SCISEARCH_ASSIGN_OR_RETURN(
      Statement * s,
      statements_->Get("SELECT (SELECT COUNT(*) FROM datasets WHERE state = 'ok' AND path <= ?1), "
                       "(SELECT COUNT(*) FROM datasets WHERE state = 'ok')"));
  s->Bind(1, path);
  SCISEARCH_ASSIGN_OR_RETURN(bool row, s->Step());
  if (!row) return Status::Internal("catalog: counting the tagging queue returned no row");
  QueueEntry entry{.dataset_id = dataset_id, .position = s->Int(0), .total = s->Int(1)};
  s->Reset();
  return entry;
}

Result<QueueEntry> Catalog::NextDatasetByPath(int64_t after_id) {
  std::string after_path;
  if (after_id != 0) {
    SCISEARCH_ASSIGN_OR_RETURN(Statement * p,
                               statements_->Get("SELECT path FROM datasets WHERE id = ?1"));
    p->Bind(1, after_id);
    SCISEARCH_ASSIGN_OR_RETURN(bool row, p->Step());
    if (!row) return Status::NotFound("catalog: no dataset with id " + std::to_string(after_id));
    after_path = p->Text(0);
    p->Reset();
  }
  SCISEARCH_ASSIGN_OR_RETURN(
      Statement * next,
      statements_->Get("SELECT id, path FROM datasets WHERE state = 'ok' AND path > ?1 "
                       "ORDER BY path LIMIT 1"));
  for (const std::string& from : {after_path, std::string()}) {  // then wrap to the first
    next->Reset();
    next->Bind(1, from);
    SCISEARCH_ASSIGN_OR_RETURN(bool row, next->Step());
    if (!row) continue;
    const int64_t id = next->Int(0);
    const std::string path = next->Text(1);
    next->Reset();
    return QueueEntryOf(id, path);
  }
  return Status::NotFound("catalog: no dataset to tag (none in state ok)");
}

Result<QueueEntry> Catalog::RandomDataset(uint64_t draw, int64_t not_id) {
  // A random id between the smallest and the largest, then the first dataset in
  // state "ok" from there (wrapping): ids are dense, so nearly uniform.
  SCISEARCH_ASSIGN_OR_RETURN(
      Statement * range,
      statements_->Get("SELECT IFNULL(MIN(id), 0), IFNULL(MAX(id), 0) FROM datasets"));
  SCISEARCH_ASSIGN_OR_RETURN(bool has_range, range->Step());
  const int64_t lo = has_range ? range->Int(0) : 0;
  const int64_t hi = has_range ? range->Int(1) : 0;
  range->Reset();
  const int64_t start =
      hi >= lo && hi > 0 ? lo + static_cast<int64_t>(draw % static_cast<uint64_t>(hi - lo + 1)) : 0;
  SCISEARCH_ASSIGN_OR_RETURN(
      Statement * pick,
      // "+state": the rowid range leads. Through datasets_state_path, SQLite would read
      // and sort every 'ok' row to find the first.
      statements_->Get(
          "SELECT id, path FROM datasets WHERE +state = 'ok' AND id >= ?1 AND id != ?2 "
          "ORDER BY id LIMIT 1"));
  for (int64_t from : {start, int64_t{0}}) {
    pick->Reset();
    pick->Bind(1, from).Bind(2, not_id);
    SCISEARCH_ASSIGN_OR_RETURN(bool row, pick->Step());
    if (!row) continue;
    const int64_t id = pick->Int(0);
    const std::string path = pick->Text(1);
    pick->Reset();
    return QueueEntryOf(id, path);
  }
  // Only `not_id` is left (or nothing is).
  if (not_id != 0) {
    SCISEARCH_ASSIGN_OR_RETURN(
        Statement * only,
        statements_->Get("SELECT path FROM datasets WHERE state = 'ok' AND id = ?1"));
    only->Bind(1, not_id);
    SCISEARCH_ASSIGN_OR_RETURN(bool row, only->Step());
    if (row) {
      const std::string path = only->Text(0);
      only->Reset();
      return QueueEntryOf(not_id, path);
    }
  }
  return Status::NotFound("catalog: no dataset to tag (none in state ok)");
}

Result<int64_t> Catalog::LogQuery(const QueryLogRecord& query) {
  const nlohmann::json filters = nlohmann::json::parse(query.filters_json, nullptr, false);
  if (!filters.is_object()) {
    return Status::InvalidArgument("query log: filters_json is not a JSON object");
  }
  int64_t id = 0;
  Status s = Atomically([&]() -> Status {
    SCISEARCH_ASSIGN_OR_RETURN(
        Statement * ins,
        statements_->Get("INSERT INTO queries (text, filters, user, at, total, took_ms) "
                         "VALUES (?1, ?2, ?3, ?4, ?5, ?6)"));
    ins->Bind(1, query.text).Bind(2, query.filters_json);
    BindOptional(*ins, 3, query.user);
    ins->Bind(4, NowIso()).Bind(5, query.total).Bind(6, query.took_ms);
    SCISEARCH_RETURN_IF_ERROR(ins->Run());
    id = sqlite3_last_insert_rowid(db_);
    return Status::Ok();
  });
  if (!s.ok()) return s.WithContext("query log");
  return id;
}

Status Catalog::LogClick(const ClickRecord& click) {
  if (click.item.empty()) return Status::InvalidArgument("click: item is empty");
  if (click.rank < 1) return Status::InvalidArgument("click: rank must be 1 or more");
  return Atomically([&]() -> Status {
    SCISEARCH_ASSIGN_OR_RETURN(Statement * exists,
                               statements_->Get("SELECT 1 FROM queries WHERE id = ?1"));
    exists->Bind(1, click.query_id);
    SCISEARCH_ASSIGN_OR_RETURN(bool found, exists->Step());
    exists->Reset();
    if (!found) {
      return Status::NotFound("click: no query with id " + std::to_string(click.query_id));
    }
    SCISEARCH_ASSIGN_OR_RETURN(
        Statement * ins, statements_->Get("INSERT INTO clicks (query_id, item, rank, user, at) "
                                          "VALUES (?1, ?2, ?3, ?4, ?5)"));
    ins->Bind(1, click.query_id).Bind(2, click.item).Bind(3, click.rank);
    BindOptional(*ins, 4, click.user);
    ins->Bind(5, NowIso());
    return ins->Run();
  });
}

Result<std::vector<QueryLogRecord>> Catalog::RecentQueries(int64_t limit) {
  SCISEARCH_ASSIGN_OR_RETURN(
      Statement * s,
      statements_->Get("SELECT id, text, filters, IFNULL(user, ''), at, total, took_ms "
                       "FROM queries ORDER BY id DESC LIMIT ?1"));
  s->Bind(1, limit);
  std::vector<QueryLogRecord> out;
  while (true) {
    SCISEARCH_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    out.push_back(QueryLogRecord{.id = s->Int(0),
                                 .text = s->Text(1),
                                 .filters_json = s->Text(2),
                                 .user = s->Text(3),
                                 .at = s->Text(4),
                                 .total = s->Int(5),
                                 .took_ms = s->Real(6)});
  }
  return out;
}

Result<std::vector<ClickRecord>> Catalog::ClicksOfQuery(int64_t query_id) {
  SCISEARCH_ASSIGN_OR_RETURN(
      Statement * s,
      statements_->Get("SELECT query_id, item, rank, IFNULL(user, ''), at FROM clicks "
                       "WHERE query_id = ?1 ORDER BY id"));
  s->Bind(1, query_id);
  std::vector<ClickRecord> out;
  while (true) {
    SCISEARCH_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    out.push_back(ClickRecord{.query_id = s->Int(0),
                              .item = s->Text(1),
                              .rank = s->Int(2),
                              .user = s->Text(3),
                              .at = s->Text(4)});
  }
  return out;
}

// --- BatchWriter -----------------------------------------------------------

Catalog::BatchWriter::BatchWriter(Catalog& catalog, size_t max_writes)
    : catalog_(catalog), max_writes_(std::max<size_t>(1, max_writes)) {}

Catalog::BatchWriter::~BatchWriter() {
  if (open_) {
    (void)ExecSql(catalog_.db_, "ROLLBACK");
    catalog_.in_batch_ = false;
  }
}

Status Catalog::BatchWriter::Begin() {
  if (open_) return Status::Ok();
  SCISEARCH_RETURN_IF_ERROR(ExecSql(catalog_.db_, "BEGIN IMMEDIATE"));
  open_ = true;
  catalog_.in_batch_ = true;
  pending_ = 0;
  return Status::Ok();
}

Status Catalog::BatchWriter::AfterWrite(Status write_status) {
  if (write_status.ok()) ++pending_;
  if (pending_ >= max_writes_) SCISEARCH_RETURN_IF_ERROR(Flush());
  return write_status;
}

Status Catalog::BatchWriter::PutDataset(int64_t run_id, const DatasetRecord& record) {
  SCISEARCH_RETURN_IF_ERROR(Begin());
  return AfterWrite(catalog_.PutDataset(run_id, record));
}

Status Catalog::BatchWriter::RecordError(int64_t run_id, const ErrorRecord& record) {
  SCISEARCH_RETURN_IF_ERROR(Begin());
  return AfterWrite(catalog_.RecordError(run_id, record));
}

Status Catalog::BatchWriter::LinkDataset(const std::string& path, const std::string& session_id,
                                         const std::string& proposal_id,
                                         const std::string& embargo_until) {
  SCISEARCH_RETURN_IF_ERROR(Begin());
  return AfterWrite(catalog_.LinkDataset(path, session_id, proposal_id, embargo_until));
}

Status Catalog::BatchWriter::PutThumbnails(int64_t dataset_id, const std::string& fingerprint,
                                           ThumbnailOutcome outcome,
                                           const std::vector<Thumbnail>& thumbnails) {
  SCISEARCH_RETURN_IF_ERROR(Begin());
  return AfterWrite(catalog_.PutThumbnails(dataset_id, fingerprint, outcome, thumbnails));
}

Status Catalog::BatchWriter::PutDocument(const DocumentRecord& document) {
  SCISEARCH_RETURN_IF_ERROR(Begin());
  return AfterWrite(catalog_.PutDocument(document));
}

Status Catalog::BatchWriter::PutDatasetContext(const DatasetContext& context) {
  SCISEARCH_RETURN_IF_ERROR(Begin());
  return AfterWrite(catalog_.PutDatasetContext(context));
}

Status Catalog::BatchWriter::PutImageAnalysis(const ImageAnalysisRecord& analysis) {
  SCISEARCH_RETURN_IF_ERROR(Begin());
  return AfterWrite(catalog_.PutImageAnalysis(analysis));
}

Status Catalog::BatchWriter::Flush() {
  if (!open_) return Status::Ok();
  Status s = ExecSql(catalog_.db_, "COMMIT");
  if (!s.ok()) {
    (void)ExecSql(catalog_.db_, "ROLLBACK");
  }
  open_ = false;
  catalog_.in_batch_ = false;
  pending_ = 0;
  return s;
}

// --- The vision stage -------------------------------------------------------

namespace {

std::vector<uint8_t> EncodeFloats(const std::vector<float>& values) {
  std::vector<uint8_t> bytes(values.size() * 4);
  for (size_t i = 0; i < values.size(); ++i) {
    uint32_t bits;
    std::memcpy(&bits, &values[i], 4);
    for (int b = 0; b < 4; ++b) bytes[i * 4 + size_t(b)] = uint8_t(bits >> (8 * b));
  }
  return bytes;
}

std::vector<float> DecodeFloats(const std::vector<uint8_t>& bytes) {
  std::vector<float> values(bytes.size() / 4);
  for (size_t i = 0; i < values.size(); ++i) {
    uint32_t bits = 0;
    for (int b = 0; b < 4; ++b) bits |= uint32_t(bytes[i * 4 + size_t(b)]) << (8 * b);
    std::memcpy(&values[i], &bits, 4);
  }
  return values;
}

}  // namespace

Status Catalog::PutImageAnalysisUnlocked(const ImageAnalysisRecord& analysis) {
  if (analysis.embedding.empty()) return Status::InvalidArgument("the embedding is empty");
  for (const TagSuggestion& tag : analysis.tags) {
    if (tag.source != "image") {
      return Status::InvalidArgument("tag '" + tag.value + "' has source '" + tag.source +
                                     "', not 'image'");
    }
  }
  SCISEARCH_ASSIGN_OR_RETURN(
      Statement * put,
      statements_->Get("INSERT OR REPLACE INTO image_embeddings (dataset_id, model_id, "
                       "signal_index, vector, created_at) SELECT id, ?2, ?3, ?4, ?5 "
                       "FROM datasets WHERE id = ?1"));
  SCISEARCH_RETURN_IF_ERROR(put->Bind(1, analysis.dataset_id)
                                .Bind(2, analysis.model_id)
                                .Bind(3, analysis.signal_index)
                                .BindBlob(4, EncodeFloats(analysis.embedding))
                                .Bind(5, NowIso())
                                .Run());
  if (sqlite3_changes(db_) == 0) {
    return Status::NotFound("catalog: no dataset with id " + std::to_string(analysis.dataset_id));
  }
  return ReplaceSuggestedTags(analysis.dataset_id, {"image"}, analysis.tags, "vision");
}

Status Catalog::PutImageAnalysis(const ImageAnalysisRecord& analysis) {
  return Atomically([&] { return PutImageAnalysisUnlocked(analysis); })
      .WithContext("writing the image analysis of dataset " + std::to_string(analysis.dataset_id));
}

Result<std::vector<DatasetPath>> Catalog::DatasetsWithoutImageAnalysis(
    const std::string& root, const std::string& model_id) {
  const PathRange r = UnderRoot(root);
  SCISEARCH_ASSIGN_OR_RETURN(
      Statement * s,
      statements_->Get("SELECT d.id, d.path FROM datasets d LEFT JOIN image_embeddings e "
                       "ON e.dataset_id = d.id AND e.model_id = ?4 WHERE d.state = 'ok' "
                       "AND (?1 = '' OR d.path = ?1 OR (d.path >= ?2 AND d.path < ?3)) "
                       "AND (?4 = '' OR e.dataset_id IS NULL) ORDER BY d.path"));
  s->Bind(1, r.exact).Bind(2, r.lower).Bind(3, r.upper).Bind(4, model_id);
  std::vector<DatasetPath> out;
  while (true) {
    SCISEARCH_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    out.push_back({s->Int(0), s->Text(1)});
  }
  return out;
}

Result<StoredEmbedding> Catalog::GetImageEmbedding(int64_t dataset_id) {
  SCISEARCH_ASSIGN_OR_RETURN(Statement * s,
                             statements_->Get("SELECT model_id, vector FROM image_embeddings "
                                              "WHERE dataset_id = ?1"));
  s->Bind(1, dataset_id);
  SCISEARCH_ASSIGN_OR_RETURN(bool row, s->Step());
  if (!row) {
    return Status::NotFound("catalog: dataset " + std::to_string(dataset_id) +
                            " has no image embedding");
  }
  return StoredEmbedding{dataset_id, s->Text(0), DecodeFloats(s->Blob(1))};
}

Result<std::vector<StoredEmbedding>> Catalog::ImageEmbeddings(const std::string& model_id) {
  SCISEARCH_ASSIGN_OR_RETURN(
      Statement * s,
      statements_->Get("SELECT e.dataset_id, e.vector FROM image_embeddings e JOIN datasets d "
                       "ON d.id = e.dataset_id WHERE e.model_id = ?1 AND d.state = 'ok' "
                       "ORDER BY e.dataset_id"));
  s->Bind(1, model_id);
  std::vector<StoredEmbedding> out;
  while (true) {
    SCISEARCH_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    out.push_back({s->Int(0), model_id, DecodeFloats(s->Blob(1))});
  }
  return out;
}

Result<std::vector<ValidatedTags>> Catalog::ListValidatedTags() {
  SCISEARCH_ASSIGN_OR_RETURN(
      Statement * s,
      statements_->Get("SELECT d.id, d.path, t.value, t.state FROM tags t JOIN datasets d "
                       "ON d.id = t.dataset_id WHERE d.state = 'ok' AND t.state IN "
                       "('accepted', 'rejected') ORDER BY d.path, t.value, t.state"));
  std::vector<ValidatedTags> out;
  while (true) {
    SCISEARCH_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    const int64_t id = s->Int(0);
    if (out.empty() || out.back().dataset_id != id) out.push_back({id, s->Text(1), {}, {}});
    ValidatedTags& d = out.back();
    std::string value = s->Text(2);
    // A value accepted from one source and rejected from another counts as accepted
    // ("accepted" sorts before "rejected").
    if (s->Text(3) == "accepted") {
      if (d.accepted.empty() || d.accepted.back() != value) d.accepted.push_back(std::move(value));
    } else if (d.accepted.empty() || d.accepted.back() != value) {
      if (d.rejected.empty() || d.rejected.back() != value) d.rejected.push_back(std::move(value));
    }
  }
  return out;
}

}  // namespace scisearch::catalog
