// Plain documents of the facility (proposals, publications, log entries) as
// `scisearch add-docs` has always taken them: JSON lines, one document a line.
//
// One JSON object a line: "id" (string or integer, required), "title", "text",
// "authors" (array of strings, or one string; "A; B" names two), "date", "doi",
// "proposal" (string or array of strings), "pi", and optionally "kind" (overrides
// the file's kind for that line). Every other field is kept in the document's
// fields. Blank lines are skipped. A line that is not such an object is reported
// with its number and the rest of the file is loaded.
//
// The richer records (sessions, proposals, publications with their people) are
// read by loaders.h, which falls back on DocumentFromJson for a record of no
// richer kind; this header also holds the JSON field readers both share.
#pragma once

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "common/status.h"
#include "context/loaders.h"

namespace scisearch::context {

// True for the document kinds the catalog knows: "proposal", "publication", "log".
bool IsDocumentKind(const std::string& kind);

// A JSON value read as text: a string as it is, an integer in decimal, null as "".
// kInvalidArgument naming `field` for anything else.
Result<std::string> JsonText(const nlohmann::ordered_json& value, const std::string& field);

// A JSON value read as a list of strings: an array of strings (or integers), or one
// string, split at ';' when it holds one ("A. Author; B. Author"). Empty items are
// dropped. kInvalidArgument naming `field` for anything else.
Result<std::vector<std::string>> JsonTextList(const nlohmann::ordered_json& value,
                                              const std::string& field);

// `object` as a plain document of default kind `kind` (see the top of this header);
// the reason, naming the field, when it is not one.
Result<catalog::DocumentRecord> DocumentFromJson(const nlohmann::ordered_json& object,
                                                 const std::string& kind);

// Parses one line as above into a document of default kind `kind`; the reason
// (naming the field) when it is not one.
Result<catalog::DocumentRecord> ParseDocumentLine(const std::string& line, const std::string& kind);

// Called with (line number, reason) for each line that could not be loaded.
using LineErrorSink = std::function<void(int64_t line, const std::string& reason)>;

// Reads the file at `path` as JSON lines (whatever its extension) and loads each
// line as LoadContextPaths does with kind `kind` ("proposal", "publication" or
// "log"): a line with the fields of a richer record (a booking's start and end,
// for instance) becomes that record, any other a plain document. kInvalidArgument
// for an unknown kind; kIoError when the file cannot be read; bad lines go to
// `on_error` and are counted, not returned. Thread-compatible, like the catalog.
Result<LoadSummary> LoadDocumentsJsonl(catalog::Catalog& catalog, const std::filesystem::path& path,
                                       const std::string& kind, const LineErrorSink& on_error);

}  // namespace scisearch::context
