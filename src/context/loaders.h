// Loading the facility's context into the catalog: user logs (bookings of
// instruments), proposals and publications, from the files people really keep.
// `scisearch add-docs` calls LoadContextPaths.
//
// Formats, chosen by extension (or LoadOptions::format):
//   .csv .tsv    a user log. RFC 4180 (quoted fields with delimiters, doubled quotes
//                and line breaks; CRLF or LF); ',', ';', tab or '|' sniffed from the
//                header line.
//   .json        one JSON object, an array of objects, or JSON lines.
//   .jsonl       (or .ndjson) JSON lines: one object a line; blank lines skipped.
//   .txt .pdf    a publication (text from PDFs through poppler).
// Text is read as UTF-8 (a BOM is dropped); UTF-16 with a BOM is converted; a line
// that is not valid UTF-8 is read as Windows-1252 (Latin-1). NUL bytes are dropped.
//
// Logs. Each row (or JSON object) is a booking with the canonical fields id,
// instrument, user, pi, proposal, start, end, notes, and optionally date and
// end_date (when the day and the times sit in separate columns). Headers (JSON
// keys) are matched case-insensitively, with spaces, '_', '-' and '.' alike, to
// the aliases of LogColumnAliases() unless LogConfig::columns names the column.
// Other columns are kept in the session's document fields.
//  - Times are normalised to ISO 8601 local time "YYYY-MM-DDTHH:MM:SS" (see
//    ParseLogTime); a zone suffix is dropped, the wall-clock time kept. A date
//    without time starts at 00:00:00 (start) or ends at 23:59:59 (end). An end
//    given as a time alone, earlier than the start, is on the next day.
//  - Day or month first ("03/04/2012"): decided per file: when any start, end or
//    date value of the file has a first number above 12 ("13/10/2011"), the file
//    writes the day first, otherwise the month (US). Dotted dates ("13.10.2011")
//    are always day first. LogConfig::day_first overrides the rule.
//  - Session id: the id column when given, else "<instrument>-<YYYYMMDD>-<n>" with
//    the start's date and n = 1, 2, ... counting that instrument's bookings
//    starting that day in start order (over all files of one LoadContextPaths call).
//  - The instrument: the column, else LogConfig::instrument, else the file's stem
//    ("logs/TitanX.csv" -> "TitanX").
//  - A row without a valid start or end, or ending before it starts, is reported
//    with its line and reason; the other rows load.
//  - In JSON logs, an object with neither start nor end is a plain log document
//    (as ParseDocumentLine reads it, "id" required).
//
// Proposals (JSON): "id" (required), "title", "abstract" (or "text", "summary"),
// "pi" (a string, or {"id", "name", "institution"}), "team" (an array of such),
// "start_date", "end_date", "release_date" (dates normalised to YYYY-MM-DD).
// People become PersonRecords; ProposalRecord::pi/team hold their ids (the name
// when no id is given). Any other field is kept in the proposal's document fields.
//
// Publications (JSON): "doi" (else "id"), "title", "abstract" (or "text",
// "summary"), "authors" (strings, or objects with "name"), "date", "proposals"
// (acknowledged proposal ids). From .txt and .pdf: the title is the PDF's Title,
// else the first non-empty line; the id is the first DOI in the text before its
// reference list (or in the PDF's XMP metadata), else a DOI spelt in the file name
// ("10.1021_acs.nl.5b01234.pdf"), else the file name; authors only from a line
// "Authors: ..."; the date from the PDF's creation date or a "Date:" line; the text
// is kept whole up to LoadOptions::max_text_bytes (the fields say when it was cut).
//
// Any JSON record may carry "kind" ("proposal", "publication", "log") to override
// the kind it is loaded as.
//
// Thread safety: the functions writing the catalog are thread-compatible, like the
// catalog; the parsing functions are pure and may be called from any thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "catalog/catalog.h"
#include "common/status.h"

namespace scisearch::context {

// How a user log's columns are read. Every member has a default that reads the logs
// facilities usually keep.
struct LogConfig {
  // Canonical field ("id", "instrument", "user", "pi", "proposal", "start", "end",
  // "date", "end_date", "notes") -> the header of its column (matched like the
  // aliases), or, when `header` is false, its 1-based position ("3").
  std::map<std::string, std::string> columns;
  std::string instrument;         // when the log has no instrument column; "" = the file's stem
  std::string time_format;        // strptime(3) pattern for start/end; "" = ParseLogTime's forms
  std::optional<bool> day_first;  // unset = decided per file (see above)
  char delimiter = 0;             // CSV delimiter; 0 = sniffed from the header line
  bool header = true;             // false: the CSV has no header; `columns` gives positions
};

// Reads a config from JSON text: {"columns": {"start": "Begin Time", ...},
// "instrument": "TitanX", "time_format": "%d/%m/%Y %H:%M", "day_first": true,
// "delimiter": ";", "header": false}. Every key is optional. kInvalidArgument naming
// the key for an unknown key, an unknown field or a value of the wrong type.
Result<LogConfig> ParseLogConfig(std::string_view json_text);
// ParseLogConfig on the file at `path`; kIoError when it cannot be read.
Result<LogConfig> ReadLogConfig(const std::filesystem::path& path);

// The header spellings each canonical field is recognised by, in order of
// preference, already normalised (lower case, single spaces).
const std::vector<std::pair<std::string, std::vector<std::string>>>& LogColumnAliases();

struct LoadOptions {
  LogConfig log;
  // "" = by extension; else "csv", "json", "jsonl", "txt" or "pdf" for every file.
  std::string format;
  // The text of a publication file kept at most (UTF-8 bytes).
  size_t max_text_bytes = size_t(2) << 20;
};

// One line or file that could not be loaded, or a file passed over.
struct LoadError {
  std::filesystem::path file;
  int64_t line = 0;  // 1-based; 0 when it concerns the whole file
  std::string reason;
  // True for a file passed over (an extension no loader reads), which is not a
  // failure and is not counted in LoadSummary::failed.
  bool skipped = false;
};
using LoadErrorSink = std::function<void(const LoadError&)>;

struct LoadSummary {
  int64_t loaded = 0;        // records written: sessions + proposals + publications + documents
  int64_t failed = 0;        // lines, records and files reported as errors
  int64_t sessions = 0;      // PutSession
  int64_t proposals = 0;     // PutProposal
  int64_t publications = 0;  // PutPublication
  int64_t documents = 0;     // plain documents (PutDocument of a record of no richer kind)
  int64_t people = 0;        // people added or given new details
  int64_t files = 0;         // files read
  int64_t files_skipped = 0;
};

// Loads every path (a file, or a folder searched recursively for .csv .json .jsonl
// .txt .pdf; hidden files are ignored, other files are skipped with a note) as
// `kind`: "log", "proposal", "publication", or "auto" (by the nearest folder named
// logs/log/bookings, proposals, publications/papers, else by content: .csv is a log,
// .txt/.pdf a publication, a JSON record by its fields). Session ids are numbered
// over all `paths` together. Each bad line, record or file goes to `on_error` (may
// be empty) and is counted; the rest loads. Returns kInvalidArgument for an unknown
// kind or format, kNotFound for a path that does not exist, and the catalog's
// error when writing fails for a reason other than the record itself.
Result<LoadSummary> LoadContextPaths(catalog::Catalog& catalog,
                                     const std::vector<std::filesystem::path>& paths,
                                     const std::string& kind, const LoadOptions& options,
                                     const LoadErrorSink& on_error);

// LoadContextPaths for one path.
Result<LoadSummary> LoadContextPath(catalog::Catalog& catalog, const std::filesystem::path& path,
                                    const std::string& kind, const LoadOptions& options,
                                    const LoadErrorSink& on_error);

// --- Parsing building blocks (pure) ------------------------------------------

// File bytes as UTF-8 text, as described at the top of this header.
std::string DecodeText(std::string_view bytes);

struct CsvRow {
  int64_t line = 0;  // the line the row starts on
  std::vector<std::string> cells;
};
struct CsvTable {
  std::vector<CsvRow> rows;  // blank lines skipped
  // (line, reason) of the damage met: a quote never closed. The lines after the
  // damaged row's first line are read again as rows of their own.
  std::vector<std::pair<int64_t, std::string>> errors;
};
// Parses UTF-8 `text` as RFC 4180 CSV with `delimiter`; never fails. Line breaks
// inside quoted fields are kept as "\n".
CsvTable ParseCsv(std::string_view text, char delimiter);

// The delimiter the first line of `text` uses (outside quotes): the most frequent
// of ',', ';', '\t', '|'; ',' when none occurs.
char SniffDelimiter(std::string_view text);

// True when any of `values` is a d/m/y or m/d/y date whose first number is above 12
// (the per-file rule described above).
bool LogDatesAreDayFirst(const std::vector<std::string_view>& values);

// `text` as "YYYY-MM-DDTHH:MM:SS", or "YYYY-MM-DD" when it holds a date alone;
// nullopt when it is not a date. With `time_format` ("" = any of the forms people
// use: ISO with 'T' or space, with or without seconds, "10/13/2011 4:20 PM",
// "13.10.2011 16:20", "Oct 13, 2011 16:20", ...) the whole text must match it.
// `day_first` reads "03/04/2012" as 3 April.
std::optional<std::string> ParseLogTime(std::string_view text, bool day_first,
                                        const std::string& time_format = "");

// The first DOI ("10.NNNN/suffix") in `text`, without trailing punctuation; "" if none.
std::string FindDoi(std::string_view text);

}  // namespace scisearch::context
