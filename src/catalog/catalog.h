// The catalog module: a SQLite database of datasets, their signals, metadata,
// thumbnails, tags and ingest runs, kept in <data-dir>/catalog.sqlite.
//
// This header is the module's whole interface. The database runs in WAL mode,
// so readers in other connections (or processes) proceed while one writer
// writes, and a process killed at any moment leaves the last committed state.
// Each dataset is written in one transaction together with its fingerprint, so
// the catalog never holds a fingerprint for data that was not stored.
//
// Paths stored are absolute canonical paths, as strings.
//
// Thread safety: a Catalog owns one SQLite connection and is thread-compatible:
// one thread at a time may call its methods (external synchronisation is
// needed otherwise). To read and write concurrently, open the same data
// directory once per thread; SQLite's locking (with the busy timeout) then
// serialises writers.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "formats/formats.h"

struct sqlite3;

namespace scisearch::catalog {

// The schema version this code writes (PRAGMA user_version after migration).
int SchemaVersion();

// One file of a dataset as stat() saw it.
struct FileStat {
  std::string path;  // absolute canonical path
  uint64_t size_bytes = 0;
  int64_t mtime_ns = 0;  // modification time, nanoseconds since the Unix epoch
};

// A fingerprint of a dataset's member files from their paths, sizes and
// modification times (no file contents): 32 hex digits. The order of `files`
// does not matter. Equal fingerprints mean "unchanged" for incremental ingest.
std::string ComputeFingerprint(const std::vector<FileStat>& files);

// One leaf of a metadata tree, flattened.
struct MetadataEntry {
  enum class Type { kInt, kReal, kText, kBool, kNull };
  // The leaf's path in SQLite's JSON path syntax, the key_path of the catalog's
  // metadata_entries view: '$.ExperimentalDescription."High tension [kV]"',
  // "$.Dimension[0].Units" (keys other than [A-Za-z][A-Za-z0-9]* are quoted).
  std::string key_path;
  Type type = Type::kNull;
  int64_t int_value = 0;   // kInt, and kBool as 0/1
  double real_value = 0;   // kReal (unsigned integers above INT64_MAX are stored as reals)
  std::string text_value;  // kText
};
// "int", "real", "text", "bool", "null": the value_type column.
const char* MetadataTypeName(MetadataEntry::Type type);

// Flattens `tree` into its leaves in document order, for indexes of metadata
// outside SQLite (the catalog itself serves every leaf through the
// metadata_entries view). Empty objects and arrays give no entry. So that one
// giant array cannot flood an index, only the
// first `max_array_elements` elements of each array of objects or arrays, and
// the first 16 of each array of plain values (colour tables, tilt series), are
// flattened, and nesting deeper than 64 levels is cut (the whole tree is kept
// as JSON besides).
std::vector<MetadataEntry> FlattenMetadata(const formats::Metadata& tree,
                                           size_t max_array_elements = 256);

// A thumbnail of one signal, PNG-encoded.
struct Thumbnail {
  int signal_index = 0;
  std::vector<uint8_t> png;
  int width = 0;
  int height = 0;
};

// What PutDataset stores of one signal, serialised. Serialising a DM tag tree
// costs more than inserting it, so ingest encodes on its reader threads and the
// single writer thread only inserts.
struct EncodedSignal {
  std::string shape_json;       // [1024, 1024]
  std::string axes_json;        // as SignalRow::axes_json
  std::string metadata_json;    // the whole tree (invalid UTF-8 replaced)
  int64_t metadata_leaves = 0;  // its leaves: the rows it gives the metadata_entries view
};
// Encodes every signal of `dataset`, in order. Pure; callable from any thread.
std::vector<EncodedSignal> EncodeSignals(const formats::Dataset& dataset);

// A tag derived automatically at ingest time.
struct TagSuggestion {
  std::string value;
  std::string source;  // one of: path metadata text image expert log proposal publication
  double confidence = 0;
  std::string evidence;
};

// Everything ingest learned about one dataset, written by PutDataset.
struct DatasetRecord {
  std::string path;  // the primary file (the .emi of a TIA dataset)
  std::string root;  // the ingest root it was found under
  std::string fingerprint;
  std::vector<FileStat> files;  // every member file, primary first
  formats::Dataset dataset;     // format, signals and their metadata
  // EncodeSignals(dataset), computed by the caller off the writer thread; when
  // empty, PutDataset encodes itself.
  std::vector<EncodedSignal> encoded;
  std::vector<TagSuggestion> tags;
};

// A dataset whose thumbnails are still to be made: stored ("ok") by PutDataset
// and not yet given an outcome by PutThumbnails.
struct ThumbnailJob {
  int64_t dataset_id = 0;
  std::string path;
  std::string fingerprint;  // the version of the files the thumbnails must show
};

// How making a dataset's thumbnails ended.
enum class ThumbnailOutcome {
  kMade,    // thumbnails stored
  kNone,    // the dataset has nothing to draw (no signal with data)
  kFailed,  // reading or rendering failed; the dataset itself is kept
};

// A dataset that could not be read, written by RecordError.
struct ErrorRecord {
  std::string path;
  std::string root;
  std::string fingerprint;
  std::vector<FileStat> files;
  std::string reason;
};

// A proposal: the team's request for instrument time, and the key to who may
// see its data before release_date.
struct ProposalRecord {
  std::string id;
  std::string title;
  std::string abstract;
  std::string pi;
  std::vector<std::string> team;
  std::string start_date, end_date, release_date;  // ISO dates
};

// One booking of an instrument, from the facility's user log.
struct SessionRecord {
  std::string id;
  std::string instrument;
  std::string user;
  std::string pi;
  std::string proposal_id;  // "" when the log names none
  std::string start, end;   // ISO 8601
  std::string notes;
};

struct PublicationRecord {
  std::string doi;
  std::string title;
  std::string abstract;
  std::vector<std::string> authors;
  std::string date;                    // ISO date
  std::vector<std::string> proposals;  // acknowledged proposal ids
};

// A text document of the facility: a proposal, a publication or a log entry.
// PutProposal, PutPublication and PutSession write one each (ids: the proposal
// id, the DOI, the session id); `scisearch add-docs` writes them from JSON lines.
struct DocumentRecord {
  std::string id;    // unique across kinds
  std::string kind;  // "proposal", "publication" or "log"
  std::string title;
  std::string text;
  std::vector<std::string> authors;
  std::string date;  // ISO 8601 date or time, "" when unknown
  std::string doi;
  std::string pi;
  std::vector<std::string> proposals;  // the proposals it belongs to or acknowledges
  std::string fields_json = "{}";      // the source's other fields, a JSON object
};

// A person of the facility: a user, PI or author. Logs name people by id,
// folders by surname, papers by display name.
struct PersonRecord {
  std::string id;  // "jsmith"; the display name when the source gives no id
  std::string name;
  std::string institution;
};

// Why a dataset belongs to a session, a proposal or a publication.
struct LinkRecord {
  std::string kind;  // "session", "proposal" or "publication"
  std::string target_id;
  double confidence = 0;  // 0..1
  std::string evidence;   // the reasons, for people: "acquired 2011-10-13T16:20 inside ..."
};

// What the context enrichers concluded about one dataset. PutDatasetContext
// replaces the dataset's earlier conclusions: all its links, and its suggested
// tags of `tag_sources`. Tags someone accepted or rejected stay as they are.
struct DatasetContext {
  int64_t dataset_id = 0;
  std::vector<LinkRecord> links;
  std::vector<TagSuggestion> tags;
  std::vector<std::string> tag_sources;  // the sources these tags come from
  std::string embargo_until;             // the linked proposal's release date; "" = public
  // A hash of all of the above, kept with the dataset (DatasetRow::context_fingerprint)
  // so that the next run can leave an unchanged dataset alone.
  std::string fingerprint;
};

// One tag of a dataset as stored.
struct TagRow {
  std::string value;
  std::string source;  // path metadata text image expert log proposal publication
  double confidence = 0;
  std::string evidence;
  std::string state;  // "suggested", "accepted", "rejected"
  std::string validated_by;
  std::string validated_at;  // ISO 8601 UTC; "" when nobody validated it
  int64_t id = 0;            // the tag's catalog id (the web API's tag id)
  int64_t dataset_id = 0;
};

// What the vision stage concluded about one dataset's image.
struct ImageAnalysisRecord {
  int64_t dataset_id = 0;
  std::string model_id;  // the model that looked
  int signal_index = 0;  // the signal whose frame it saw
  std::vector<float> embedding;
  std::vector<TagSuggestion> tags;  // all of source "image"
};

// A stored image embedding.
struct StoredEmbedding {
  int64_t dataset_id = 0;
  std::string model_id;
  std::vector<float> vector;
};

// A dataset's tags as people validated them: what a model learns from.
struct ValidatedTags {
  int64_t dataset_id = 0;
  std::string path;
  std::vector<std::string> accepted;  // accepted tags and experts' own, by value
  std::vector<std::string> rejected;  // rejected tags not also accepted, by value
};

// A dataset's id and primary path.
struct DatasetPath {
  int64_t id = 0;
  std::string path;
};

// The most telling facts of a dataset, for a line in a list of search results.
struct DatasetSummary {
  int64_t id = 0;
  std::string path;
  std::string format;
  std::string instrument;  // "" when unknown
  std::string mode;        // formats::ModeName of the dataset's mode
  std::string acquired;    // ISO 8601; "" when unknown
  std::string proposal_id;
  std::string pi;  // the linked proposal's PI, else the linked session's; "" when neither
  std::string embargo_until;
  bool has_thumbnail = false;  // signal 0 has a thumbnail
};

// A dataset's place in the tagging queue: the datasets in state "ok", by path.
struct QueueEntry {
  int64_t dataset_id = 0;
  int64_t position = 0;  // 1-based, in path order
  int64_t total = 0;     // datasets in the queue
};

// One search as the query log keeps it.
struct QueryLogRecord {
  int64_t id = 0;            // given by LogQuery
  std::string text;          // the query as typed
  std::string filters_json;  // a JSON object: facet filters, kind, sort, paging
  std::string user;          // "" when anonymous
  std::string at;            // ISO 8601 UTC; set by LogQuery
  int64_t total = 0;         // matching items
  double took_ms = 0;
};

// One click on a search result.
struct ClickRecord {
  int64_t query_id = 0;
  std::string item;  // the item id clicked ("dataset:12", a DOI, ...)
  int64_t rank = 0;  // its 1-based rank in the results
  std::string user;
  std::string at;  // ISO 8601 UTC; set by LogClick
};

// A tag value the catalog holds, with the number of datasets carrying it.
struct TagValueCount {
  std::string value;
  int64_t count = 0;
};

// An item whose searchable content changed at catalog change sequence `seq`.
struct ItemChange {
  std::string item;  // "dataset:<id>" or "document:<id>"
  int64_t seq = 0;
};

// What the catalog knows of a dataset for incremental decisions.
struct KnownDataset {
  std::string fingerprint;
  std::string state;  // "ok", "error" or "gone"
};

// A signal as stored.
struct SignalRow {
  int64_t id = 0;
  int index = 0;
  std::string name;
  std::string dtype;
  std::string shape_json;  // [1024, 1024]
  std::string axes_json;  // [{"name":..,"size":..,"scale":..,"offset":..,"units":..,"navigate":..}]
  std::string metadata_json;  // the whole metadata tree
  formats::NormalisedFields fields;
};

// A dataset row with its member files and signals.
struct DatasetRow {
  int64_t id = 0;
  std::string path;
  std::string root;
  std::string format;
  std::string state;  // "ok", "error", "gone"
  std::string error;  // reason when state == "error"
  std::string fingerprint;
  uint64_t size_bytes = 0;
  std::string mtime;  // newest member mtime, ISO 8601 UTC
  std::string first_seen;
  std::string last_seen;
  int64_t ingest_run_id = 0;
  std::string proposal_id;           // "" when not linked
  std::string session_id;            // "" when not linked
  std::string embargo_until;         // "" = public
  formats::NormalisedFields fields;  // the first signal's, with the most telling mode of all
                                     // (a spectrum image with its survey image: spectrum image)
  std::vector<std::string> signal_names;  // every signal's name (detector), in order
  std::string context_fingerprint;        // DatasetContext::fingerprint last written; ""
  std::vector<FileStat> files;            // filled by GetDataset only
  std::vector<SignalRow> signals;         // filled by GetDataset only
  std::vector<TagRow> tags;               // filled by GetDataset only, strongest first
};

struct CatalogCounts {
  int64_t datasets_ok = 0;
  int64_t datasets_error = 0;
  int64_t datasets_gone = 0;
  int64_t files = 0;
  int64_t signals = 0;
  int64_t metadata_entries = 0;
  int64_t thumbnails = 0;
  int64_t tags = 0;
  int64_t documents = 0;
};

// Counters of one ingest run.
struct RunStats {
  int64_t files_seen = 0;
  int64_t datasets_new = 0;
  int64_t datasets_changed = 0;
  int64_t datasets_unchanged = 0;
  int64_t datasets_gone = 0;
  int64_t errors = 0;
  int64_t bytes_read = 0;
};

struct RunRow {
  int64_t id = 0;
  std::string root;
  std::string started_at;
  std::string finished_at;  // empty while running
  std::string status;       // "running", "finished", "interrupted"
  RunStats stats;
};

struct IngestErrorRow {
  int64_t run_id = 0;
  std::string path;
  std::string reason;
  std::string at;
};

class Catalog {
 public:
  // Opens (creating when absent) `data_dir` and its catalog.sqlite, and applies
  // any pending migrations, each in its own transaction. Fails with
  // kUnsupported when the database was written by a newer schema version.
  static Result<std::unique_ptr<Catalog>> Open(const std::filesystem::path& data_dir);

  ~Catalog();
  Catalog(const Catalog&) = delete;
  Catalog& operator=(const Catalog&) = delete;

  const std::filesystem::path& data_dir() const { return data_dir_; }

  // --- Runs ---------------------------------------------------------------

  // Starts an ingest run of `root` and returns its id. Runs still marked
  // "running" (their process died) are marked "interrupted" first.
  Result<int64_t> StartRun(const std::string& root);
  // Stores the run's counters and marks it `status` ("finished" or "interrupted").
  Status FinishRun(int64_t run_id, const RunStats& stats, const std::string& status = "finished");
  Result<RunRow> GetRun(int64_t run_id);

  // --- Writes -------------------------------------------------------------
  // Each write below is atomic: it commits on its own, or, inside a BatchWriter's
  // batch, with the batch.

  // Inserts or replaces the dataset at record.path: its row (state "ok"), member
  // files, signals and metadata are replaced and its thumbnails dropped (they are made
  // again: see PendingThumbnails); its id, first_seen and
  // the tags of sources ingest does not derive (expert, log, proposal,
  // publication) or that someone validated are kept; the record's tags are
  // added. A dataset whose primary file is now a member of this one (a .ser
  // first ingested alone, before its .emi appeared) is removed.
  Status PutDataset(int64_t run_id, const DatasetRecord& record);

  // Records the outcome of making the thumbnails of dataset `dataset_id` and stores
  // `thumbnails` (for kMade), provided the dataset is still in state "ok" at
  // `fingerprint`; otherwise (it changed or vanished meanwhile) writes nothing and
  // returns OK: its next version has a job of its own.
  Status PutThumbnails(int64_t dataset_id, const std::string& fingerprint, ThumbnailOutcome outcome,
                       const std::vector<Thumbnail>& thumbnails);

  // Inserts or replaces a proposal, session or publication by its id (doi).
  // A session's proposal must exist (kInvalidArgument otherwise).
  Status PutProposal(const ProposalRecord& proposal);
  Status PutSession(const SessionRecord& session);
  Status PutPublication(const PublicationRecord& publication);

  // Inserts or replaces the person `person.id` (kInvalidArgument when empty).
  Status PutPerson(const PersonRecord& person);

  // Every person, proposal, session (proposal_id: the one its log names, known
  // or not) and publication, ordered by id (sessions by instrument and start).
  Result<std::vector<PersonRecord>> ListPeople();
  Result<std::vector<ProposalRecord>> ListProposals();
  Result<std::vector<SessionRecord>> ListSessions();
  Result<std::vector<PublicationRecord>> ListPublications();

  // Replaces what the context enrichers concluded about `context.dataset_id`
  // (see DatasetContext) in one transaction, and points the dataset's session_id
  // and proposal_id at its most confident link of each kind that the catalog
  // knows. kNotFound when no dataset has that id; kInvalidArgument for a link of
  // an unknown kind or a tag of an unknown source.
  Status PutDatasetContext(const DatasetContext& context);

  // The links of dataset `dataset_id`, most confident first within each kind.
  Result<std::vector<LinkRecord>> DatasetLinks(int64_t dataset_id);

  // Inserts or replaces the document `document.id`. kInvalidArgument for an empty
  // id, an unknown kind or fields_json that is not a JSON object.
  Status PutDocument(const DocumentRecord& document);

  // Links the dataset at `path` to its session and proposal ("" for none) and sets
  // the date until which only the proposal's team may see it ("" = public).
  // kNotFound when no dataset has that path.
  Status LinkDataset(const std::string& path, const std::string& session_id,
                     const std::string& proposal_id, const std::string& embargo_until);

  // Marks the dataset at record.path as failed (state "error", with the reason
  // and fingerprint, so an unchanged bad file is skipped next time), drops its
  // signals and thumbnails, and adds an ingest_errors row to the run.
  Status RecordError(int64_t run_id, const ErrorRecord& record);

  // Adds an ingest_errors row that belongs to no dataset (an unreadable folder).
  Status RecordRunError(int64_t run_id, const std::string& path, const std::string& reason);

  // Adds, for each dataset under `root` still in state "error" that `run_id`
  // did not rewrite, an ingest_errors row repeating its reason: skipped bad
  // files are still reported by the run. Returns how many rows were added.
  Result<int64_t> RecordUnchangedErrors(int64_t run_id, const std::string& root);

  // Marks the datasets at `paths` as state "gone". Returns how many changed state.
  Result<int64_t> MarkGone(int64_t run_id, const std::vector<std::string>& paths);

  // Sets last_seen to now for every dataset under `root` not in state "gone".
  Status TouchSeen(const std::string& root);

  // --- Reads --------------------------------------------------------------

  // path -> fingerprint and state of every dataset whose path lies under `root`
  // (any state; "gone" included).
  Result<std::map<std::string, KnownDataset>> FindFingerprints(const std::string& root);
  // The dataset whose primary path is `path`, with files and signals; kNotFound if none.
  Result<DatasetRow> GetDataset(const std::string& path);
  // As GetDataset, by catalog id.
  Result<DatasetRow> GetDatasetById(int64_t id);
  // The document `id`; kNotFound if none.
  Result<DocumentRecord> GetDocument(const std::string& id);
  // The documents that belong to or acknowledge proposal `proposal_id` (the
  // proposal's own document first, then by date), without their text.
  Result<std::vector<DocumentRecord>> DocumentsOfProposal(const std::string& proposal_id);
  // This catalog's identity: 32 hex digits drawn when it was created. Data derived
  // from a catalog keeps it, to tell a catalog made anew at the same place.
  Result<std::string> CatalogId();
  // The catalog's latest change sequence (0 for an empty catalog).
  Result<int64_t> ChangeSequence();
  // Every item whose content changed after sequence `after`, in sequence order
  // (ChangesSince(0): every item the catalog ever had, deleted ones included).
  Result<std::vector<ItemChange>> ChangesSince(int64_t after);

  // The primary path of the dataset that has `file_path` as a member (a .ser maps
  // to its .emi); kNotFound if none.
  Result<std::string> FindDatasetByFile(const std::string& file_path);
  // Datasets (without files and signals) under `root` ("" = all), ordered by path.
  // `state` filters when not empty. At most `limit` rows (0 = no limit).
  Result<std::vector<DatasetRow>> ListDatasets(const std::string& root = "",
                                               const std::string& state = "", int64_t limit = 0);
  // The datasets under `root` ("" = all) whose thumbnails are still to be made, by path.
  Result<std::vector<ThumbnailJob>> PendingThumbnails(const std::string& root);
  // The thumbnail of signal `signal_index` of dataset `dataset_id`; kNotFound if none.
  Result<Thumbnail> GetThumbnail(int64_t dataset_id, int signal_index);
  Result<CatalogCounts> Counts();
  // As Counts, but only datasets_ok and documents (the rest 0): read from indexes,
  // cheap enough at a million datasets for every health check.
  Result<CatalogCounts> QuickCounts();
  // The ingest_errors rows of a run, in insertion order.
  Result<std::vector<IngestErrorRow>> ListErrors(int64_t run_id);
  // Runs PRAGMA integrity_check and foreign_key_check; OK when both are clean.
  Status IntegrityCheck();

  // The summaries of the datasets `ids` (any state), in the order of `ids`; ids the
  // catalog does not know are left out. One query for the whole list.
  Result<std::vector<DatasetSummary>> SummariseDatasets(const std::vector<int64_t>& ids);
  // The indexes of the signals of dataset `dataset_id` that have a thumbnail, ascending.
  Result<std::vector<int>> ThumbnailSignals(int64_t dataset_id);
  // Tag values (of tags not rejected) that start with `prefix`, ignoring the case of
  // ASCII letters, most used first, at most `limit`. Counts are exact for values
  // carried by fewer than some ten thousand tags of the prefix, and lower bounds beyond.
  Result<std::vector<TagValueCount>> TagValuesWithPrefix(const std::string& prefix, int64_t limit);

  // --- People's work: tags, the tagging queue, the query log ------------------
  // Every tag change below is one transaction that also appends a tag_events row
  // (who, what, when), and advances the dataset's change sequence (the search index
  // re-indexes it on its next UpdateIndex). `user` names the person (non-empty).

  // Adds `value` (trimmed; 1-200 bytes of valid UTF-8 without control characters) to
  // dataset `dataset_id` as `user`'s own tag: source "expert", state "accepted",
  // confidence 1, validated by `user` now. Adding a value the dataset already has as
  // an expert tag accepts that tag again. Returns the tag as stored. kNotFound for an
  // unknown dataset, kInvalidArgument for a bad value or an empty user.
  Result<TagRow> AddExpertTag(int64_t dataset_id, const std::string& value,
                              const std::string& user);
  // Sets tag `tag_id` to `state` ("accepted" or "rejected") as validated by `user` now,
  // and returns it. A tag ingest or the context stage re-derives keeps this state.
  // kNotFound for an unknown tag, kInvalidArgument for another state or an empty user.
  Result<TagRow> SetTagState(int64_t tag_id, const std::string& state, const std::string& user);
  // Removes tag `tag_id` on behalf of `user`: an expert tag is deleted; a machine's tag
  // is kept as rejected by `user`, so that no later run suggests it again. Returns the
  // tag as it was before. kNotFound for an unknown tag.
  Result<TagRow> RemoveTag(int64_t tag_id, const std::string& user);
  // Tag `tag_id` as stored; kNotFound if none.
  Result<TagRow> GetTag(int64_t tag_id);
  // How many datasets `user` added, accepted, rejected or removed a tag of.
  Result<int64_t> CountDatasetsTaggedBy(const std::string& user);

  // The dataset in state "ok" that follows dataset `after_id` in path order (the first
  // after the last: the queue wraps), with its place in the queue; `after_id` 0 gives
  // the first. kNotFound when `after_id` is no dataset or no dataset is in state "ok".
  Result<QueueEntry> NextDatasetByPath(int64_t after_id);
  // A dataset in state "ok" picked by `draw` (a uniformly random number from the
  // caller), other than `not_id` when there is another; with its place in the queue.
  // kNotFound when no dataset is in state "ok".
  Result<QueueEntry> RandomDataset(uint64_t draw, int64_t not_id = 0);

  // Appends `query` (text, filters_json, user, total, took_ms) to the query log and
  // returns its id. kInvalidArgument when filters_json is not a JSON object.
  Result<int64_t> LogQuery(const QueryLogRecord& query);
  // Appends a click on `click.item` at `click.rank` of the results of query
  // `click.query_id`. kNotFound for an unknown query, kInvalidArgument for an empty
  // item or a rank below 1.
  Status LogClick(const ClickRecord& click);
  // The latest `limit` queries, newest first.
  Result<std::vector<QueryLogRecord>> RecentQueries(int64_t limit);
  // The clicks on the results of query `query_id`, in the order they came.
  Result<std::vector<ClickRecord>> ClicksOfQuery(int64_t query_id);

  // --- The vision stage -----------------------------------------------------

  // Replaces the image tags someone has not validated and the embedding of
  // `analysis.dataset_id` with `analysis`'s, in one transaction. Validated image tags keep
  // their state. kNotFound for an unknown dataset; kInvalidArgument for a tag whose source
  // is not "image" or an empty embedding.
  Status PutImageAnalysis(const ImageAnalysisRecord& analysis);
  // The datasets in state "ok" under `root` ("" = all), by path, that have no embedding
  // from model `model_id` (every one when `model_id` is "").
  Result<std::vector<DatasetPath>> DatasetsWithoutImageAnalysis(const std::string& root,
                                                                const std::string& model_id);
  // The embedding of dataset `dataset_id`; kNotFound if none.
  Result<StoredEmbedding> GetImageEmbedding(int64_t dataset_id);
  // Every embedding of model `model_id` of a dataset in state "ok", by dataset id.
  Result<std::vector<StoredEmbedding>> ImageEmbeddings(const std::string& model_id);
  // Every dataset in state "ok" with at least one validated tag, by path.
  Result<std::vector<ValidatedTags>> ListValidatedTags();

  // --- Batching -----------------------------------------------------------

  // Groups writes into transactions of up to `max_writes` writes, for speed:
  // one fsync per batch instead of per dataset. A crash loses at most the
  // uncommitted batch; the catalog stays consistent either way.
  //
  // While a BatchWriter exists, use the Catalog only through it (same thread).
  // Call Flush() before destroying it: the destructor rolls back an unflushed
  // batch.
  class BatchWriter {
   public:
    BatchWriter(Catalog& catalog, size_t max_writes);
    ~BatchWriter();
    BatchWriter(const BatchWriter&) = delete;
    BatchWriter& operator=(const BatchWriter&) = delete;

    // As Catalog::PutDataset / RecordError, committing when the batch is full.
    // A failed write is rolled back alone; the batch's other writes stay.
    Status PutDataset(int64_t run_id, const DatasetRecord& record);
    Status RecordError(int64_t run_id, const ErrorRecord& record);
    Status LinkDataset(const std::string& path, const std::string& session_id,
                       const std::string& proposal_id, const std::string& embargo_until);
    Status PutThumbnails(int64_t dataset_id, const std::string& fingerprint,
                         ThumbnailOutcome outcome, const std::vector<Thumbnail>& thumbnails);
    Status PutDocument(const DocumentRecord& document);
    Status PutDatasetContext(const DatasetContext& context);
    Status PutImageAnalysis(const ImageAnalysisRecord& analysis);
    // Commits the open batch, if any.
    Status Flush();
    // Writes in the open batch.
    size_t pending() const { return pending_; }

   private:
    Status Begin();
    Status AfterWrite(Status write_status);

    Catalog& catalog_;
    size_t max_writes_;
    size_t pending_ = 0;
    bool open_ = false;
  };

 private:
  class StatementCache;

  Catalog(std::filesystem::path data_dir, sqlite3* db);

  // Runs `body` atomically: in its own IMMEDIATE transaction, or, inside a
  // batch, in a savepoint of the batch's transaction.
  template <typename F>
  Status Atomically(F&& body);
  Status PutDatasetUnlocked(int64_t run_id, const DatasetRecord& record);
  // Rewrites the member files of dataset `dataset_id` and drops what ingest derives
  // from its contents (signals with their metadata, thumbnails, machine tags).
  // `is_new`: the dataset's row was inserted just now, so there is nothing to drop.
  Status ReplaceDerivedRows(int64_t dataset_id, bool is_new, const std::vector<FileStat>& files);
  // Fills d.files, d.signals and d.tags.
  Status ReadDatasetDetail(DatasetRow& d);
  Status PutDocumentUnlocked(const DocumentRecord& document);
  Status PutDatasetContextUnlocked(const DatasetContext& context);
  Status PutImageAnalysisUnlocked(const ImageAnalysisRecord& analysis);
  // Drops dataset `dataset_id`'s suggested tags of each of `sources` and adds `tags`
  // (a tag someone validated keeps its state; its confidence and evidence are refreshed).
  Status ReplaceSuggestedTags(int64_t dataset_id, const std::vector<std::string>& sources,
                              const std::vector<TagSuggestion>& tags, const char* created_by);
  Status RecordErrorUnlocked(int64_t run_id, const ErrorRecord& record);
  Status PutThumbnailsUnlocked(int64_t dataset_id, const std::string& fingerprint,
                               ThumbnailOutcome outcome, const std::vector<Thumbnail>& thumbnails);
  // Appends the tag_events row of `action` on `tag` by `user` at `at`.
  Status AppendTagEvent(const TagRow& tag, const char* action, const std::string& user,
                        const std::string& at);
  // The queue entry of dataset `dataset_id`, whose path is `path`.
  Result<QueueEntry> QueueEntryOf(int64_t dataset_id, const std::string& path);

  std::filesystem::path data_dir_;
  sqlite3* db_;  // owned; closed in the destructor after the cached statements
  std::unique_ptr<StatementCache> statements_;
  bool in_batch_ = false;  // a BatchWriter holds an open transaction
};

}  // namespace scisearch::catalog
