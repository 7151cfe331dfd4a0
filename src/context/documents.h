// Loading the facility's documents (proposals, publications, log entries) into
// the catalog from JSON lines, the form `scisearch add-docs` takes.
//
// One JSON object a line: "id" (string or integer, required), "title", "text",
// "authors" (array of strings, or one string), "date", "doi", "proposal" (string
// or array of strings), "pi", and optionally "kind" (overrides the file's kind for
// that line). Every other field is kept in the document's fields. Blank lines are
// skipped. A line that is not such an object is reported with its number and the
// rest of the file is loaded.
#pragma once

#include <filesystem>
#include <functional>
#include <string>

#include "catalog/catalog.h"
#include "common/status.h"

namespace scisearch::context {

struct LoadSummary {
  int64_t loaded = 0;  // documents written
  int64_t failed = 0;  // lines reported to `on_error`
};

// Called with (line number, reason) for each line that could not be loaded.
using LineErrorSink = std::function<void(int64_t line, const std::string& reason)>;

// Reads `path` and writes each document, of kind `kind` ("proposal",
// "publication" or "log") unless the line says otherwise, into `catalog` (in
// batches). kInvalidArgument for an unknown kind; kIoError when the file cannot
// be read; bad lines go to `on_error` and are counted, not returned.
// Thread-compatible, like the catalog it writes.
Result<LoadSummary> LoadDocumentsJsonl(catalog::Catalog& catalog, const std::filesystem::path& path,
                                       const std::string& kind, const LineErrorSink& on_error);

// Parses one line as above into a document of default kind `kind`; the reason
// (naming the field) when it is not one.
Result<catalog::DocumentRecord> ParseDocumentLine(const std::string& line, const std::string& kind);

}  // namespace scisearch::context
