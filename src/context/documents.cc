#include "context/documents.h"

#include "formats/normalise.h"
#include "formats/text.h"

namespace scisearch::context {

using nlohmann::ordered_json;

bool IsDocumentKind(const std::string& kind) {
  return kind == "proposal" || kind == "publication" || kind == "log";
}

Result<std::string> JsonText(const ordered_json& value, const std::string& field) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_number_integer()) return value.dump();
  if (value.is_null()) return std::string();
  return Status::InvalidArgument("\"" + field + "\" is not a string");
}

Result<std::vector<std::string>> JsonTextList(const ordered_json& value, const std::string& field) {
  std::vector<std::string> out;
  auto add = [&out](std::string_view item) {
    item = formats::TrimSpace(item);
    if (!item.empty()) out.emplace_back(item);
  };
  if (value.is_null()) return out;
  if (value.is_string()) {
    const std::string& text = value.get_ref<const std::string&>();
    size_t begin = 0;
    for (size_t semicolon; (semicolon = text.find(';', begin)) != std::string::npos;) {
      add(std::string_view(text).substr(begin, semicolon - begin));
      begin = semicolon + 1;
    }
    add(std::string_view(text).substr(begin));
    return out;
  }
  if (!value.is_array()) {
    return Status::InvalidArgument("\"" + field + "\" is neither a string nor an array of strings");
  }
  for (const auto& item : value) {
    if (!item.is_string() && !item.is_number_integer()) {
      return Status::InvalidArgument("\"" + field + "\" holds a " + item.type_name() +
                                     ", not a string");
    }
    add(item.is_string() ? item.get_ref<const std::string&>() : item.dump());
  }
  return out;
}

Result<catalog::DocumentRecord> DocumentFromJson(const ordered_json& object,
                                                 const std::string& kind) {
  if (!object.is_object()) {
    return Status::InvalidArgument(std::string("a JSON ") + object.type_name() + ", not an object");
  }
  catalog::DocumentRecord d;
  d.kind = kind;
  ordered_json fields = ordered_json::object();
  for (const auto& [key, value] : object.items()) {
    if (key == "id") {
      SCISEARCH_ASSIGN_OR_RETURN(d.id, JsonText(value, "id"));
    } else if (key == "title") {
      SCISEARCH_ASSIGN_OR_RETURN(d.title, JsonText(value, "title"));
    } else if (key == "text") {
      SCISEARCH_ASSIGN_OR_RETURN(d.text, JsonText(value, "text"));
    } else if (key == "authors") {
      SCISEARCH_ASSIGN_OR_RETURN(d.authors, JsonTextList(value, "authors"));
    } else if (key == "date") {
      SCISEARCH_ASSIGN_OR_RETURN(std::string date, JsonText(value, "date"));
      // Dates are stored in ISO 8601 when they can be read, as given otherwise.
      d.date = formats::ParseDateTime(date).value_or(date);
    } else if (key == "doi") {
      SCISEARCH_ASSIGN_OR_RETURN(d.doi, JsonText(value, "doi"));
    } else if (key == "proposal" || key == "proposals") {
      SCISEARCH_ASSIGN_OR_RETURN(d.proposals, JsonTextList(value, key));
    } else if (key == "pi") {
      SCISEARCH_ASSIGN_OR_RETURN(d.pi, JsonText(value, "pi"));
    } else if (key == "kind") {
      SCISEARCH_ASSIGN_OR_RETURN(d.kind, JsonText(value, "kind"));
    } else {
      fields[key] = value;
    }
  }
  if (d.id.empty()) return Status::InvalidArgument("no \"id\"");
  if (!IsDocumentKind(d.kind)) {
    return Status::InvalidArgument("\"kind\" '" + d.kind +
                                   "' is not one of proposal, publication, log");
  }
  d.fields_json = fields.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
  return d;
}

Result<catalog::DocumentRecord> ParseDocumentLine(const std::string& line,
                                                  const std::string& kind) {
  ordered_json object;
  try {
    object = ordered_json::parse(line);
  } catch (const ordered_json::exception& e) {
    return Status::InvalidArgument(std::string("not JSON: ") + e.what());
  }
  return DocumentFromJson(object, kind);
}

Result<LoadSummary> LoadDocumentsJsonl(catalog::Catalog& catalog, const std::filesystem::path& path,
                                       const std::string& kind, const LineErrorSink& on_error) {
  if (!IsDocumentKind(kind)) {
    return Status::InvalidArgument("--kind '" + kind +
                                   "' is not one of proposal, publication, log");
  }
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) {
    return Status::IoError(path.string() + ": cannot open for reading (not a regular file)");
  }
  LoadOptions options;
  options.format = "jsonl";
  return LoadContextPath(catalog, path, kind, options, [&on_error](const LoadError& e) {
    if (on_error && !e.skipped) on_error(e.line, e.reason);
  });
}

}  // namespace scisearch::context
