#include "context/documents.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "formats/normalise.h"

namespace scisearch::context {
namespace {

using nlohmann::ordered_json;

bool IsKnownKind(const std::string& kind) {
  return kind == "proposal" || kind == "publication" || kind == "log";
}

// A string field, or an integer written where a string was expected.
Result<std::string> TextField(const ordered_json& value, const char* field) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_number_integer()) return value.dump();
  if (value.is_null()) return std::string();
  return Status::InvalidArgument(std::string("\"") + field + "\" is not a string");
}

Result<std::vector<std::string>> ListField(const ordered_json& value, const char* field) {
  std::vector<std::string> out;
  if (value.is_null()) return out;
  if (value.is_string()) {
    if (!value.get_ref<const std::string&>().empty()) out.push_back(value.get<std::string>());
    return out;
  }
  if (!value.is_array()) {
    return Status::InvalidArgument(std::string("\"") + field +
                                   "\" is neither a string nor an array of strings");
  }
  for (const auto& item : value) {
    if (!item.is_string()) {
      return Status::InvalidArgument(std::string("\"") + field + "\" holds a non-string");
    }
    out.push_back(item.get<std::string>());
  }
  return out;
}

}  // namespace

Result<catalog::DocumentRecord> ParseDocumentLine(const std::string& line,
                                                  const std::string& kind) {
  ordered_json object;
  try {
    object = ordered_json::parse(line);
  } catch (const ordered_json::exception& e) {
    return Status::InvalidArgument(std::string("not JSON: ") + e.what());
  }
  if (!object.is_object()) return Status::InvalidArgument("not a JSON object");
  catalog::DocumentRecord d;
  d.kind = kind;
  ordered_json fields = ordered_json::object();
  for (auto& [key, value] : object.items()) {
    if (key == "id") {
      SCISEARCH_ASSIGN_OR_RETURN(d.id, TextField(value, "id"));
    } else if (key == "title") {
      SCISEARCH_ASSIGN_OR_RETURN(d.title, TextField(value, "title"));
    } else if (key == "text") {
      SCISEARCH_ASSIGN_OR_RETURN(d.text, TextField(value, "text"));
    } else if (key == "authors") {
      SCISEARCH_ASSIGN_OR_RETURN(d.authors, ListField(value, "authors"));
    } else if (key == "date") {
      SCISEARCH_ASSIGN_OR_RETURN(std::string date, TextField(value, "date"));
      // Dates are stored in ISO 8601 when they can be read, as given otherwise.
      d.date = formats::ParseDateTime(date).value_or(date);
    } else if (key == "doi") {
      SCISEARCH_ASSIGN_OR_RETURN(d.doi, TextField(value, "doi"));
    } else if (key == "proposal" || key == "proposals") {
      SCISEARCH_ASSIGN_OR_RETURN(d.proposals, ListField(value, "proposal"));
    } else if (key == "pi") {
      SCISEARCH_ASSIGN_OR_RETURN(d.pi, TextField(value, "pi"));
    } else if (key == "kind") {
      SCISEARCH_ASSIGN_OR_RETURN(d.kind, TextField(value, "kind"));
    } else {
      fields[key] = value;
    }
  }
  if (d.id.empty()) return Status::InvalidArgument("no \"id\"");
  if (!IsKnownKind(d.kind)) {
    return Status::InvalidArgument("\"kind\" '" + d.kind +
                                   "' is not one of proposal, publication, log");
  }
  d.fields_json = fields.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
  return d;
}

Result<LoadSummary> LoadDocumentsJsonl(catalog::Catalog& catalog, const std::filesystem::path& path,
                                       const std::string& kind, const LineErrorSink& on_error) {
  if (!IsKnownKind(kind)) {
    return Status::InvalidArgument("--kind '" + kind +
                                   "' is not one of proposal, publication, log");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IoError(path.string() + ": cannot open for reading");
  // Lines longer than this are not documents but damage (or an attack).
  constexpr size_t kMaxLineBytes = size_t(64) << 20;
  LoadSummary summary;
  catalog::Catalog::BatchWriter batch(catalog, 1000);
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    if (line.size() > kMaxLineBytes) {
      ++summary.failed;
      if (on_error) on_error(number, "line is longer than 64 MB");
      continue;
    }
    Result<catalog::DocumentRecord> document = ParseDocumentLine(line, kind);
    Status written = document.ok() ? batch.PutDocument(*document) : document.status();
    if (!written.ok()) {
      ++summary.failed;
      if (on_error) on_error(number, written.message());
      continue;
    }
    ++summary.loaded;
  }
  if (in.bad())
    return Status::IoError(path.string() + ": read failed after line " + std::to_string(number));
  SCISEARCH_RETURN_IF_ERROR(batch.Flush());
  return summary;
}

}  // namespace scisearch::context
