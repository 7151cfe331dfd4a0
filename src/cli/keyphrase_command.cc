#include "cli/keyphrase_command.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "nlp/keyphrases.h"

namespace scisearch::cli {
namespace {

using nlohmann::json;

struct Document {
  json id;  // a string or an integer, written back as given
  std::string text;
};

// The string member `name` of `record`: nullopt when absent or null; an error when it
// is there but not a string.
Result<std::optional<std::string>> OptionalString(const json& record, const char* name) {
  auto it = record.find(name);
  if (it == record.end() || it->is_null()) return std::optional<std::string>();
  if (!it->is_string()) {
    return Status::InvalidArgument(std::string("\"") + name + "\" must be a string, not " +
                                   it->type_name());
  }
  return std::optional<std::string>(it->get<std::string>());
}

// One line of the input as a document, or why it is not one.
Result<Document> ParseLine(std::string_view line) {
  json record;
  try {
    record = json::parse(line);
  } catch (const json::exception& error) {
    return Status::InvalidArgument(std::string("not valid JSON: ") + error.what());
  }
  if (!record.is_object()) {
    return Status::InvalidArgument(std::string("expected a JSON object, found ") +
                                   record.type_name());
  }
  Document document;
  auto id = record.find("id");
  if (id == record.end()) return Status::InvalidArgument("missing \"id\"");
  if (!id->is_string() && !id->is_number_integer()) {
    return Status::InvalidArgument(std::string("\"id\" must be a string or an integer, not ") +
                                   id->type_name());
  }
  document.id = *id;
  SCISEARCH_ASSIGN_OR_RETURN(std::optional<std::string> text, OptionalString(record, "text"));
  if (text) {
    document.text = std::move(*text);
    return document;
  }
  SCISEARCH_ASSIGN_OR_RETURN(std::optional<std::string> title, OptionalString(record, "title"));
  SCISEARCH_ASSIGN_OR_RETURN(std::optional<std::string> abstract,
                             OptionalString(record, "abstract"));
  if (!title && !abstract) {
    return Status::InvalidArgument("no \"text\", nor \"title\" or \"abstract\"");
  }
  // The title is a sentence of its own: the extractor weighs the first one.
  document.text = title.value_or("");
  if (title && abstract) document.text += ".\n";
  document.text += abstract.value_or("");
  return document;
}

bool IsBlank(std::string_view line) {
  return line.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

}  // namespace

int RunKeyphrases(const std::string& in_path, int top, std::ostream& out, std::ostream& err) {
  if (top < 1) {
    err << "scisearch keyphrases: --top must be at least 1 (got " << top << ")\n";
    return 2;
  }
  std::ifstream in(in_path, std::ios::binary);
  if (!in) {
    err << "scisearch keyphrases: cannot read " << in_path << ": " << std::strerror(errno) << "\n";
    return 2;
  }
  Result<nlp::PhraseStatistics> corpus = nlp::PhraseStatistics::Create();
  Result<nlp::KeyphraseExtractor> extractor = nlp::KeyphraseExtractor::Create();
  if (!corpus.ok() || !extractor.ok()) {
    const Status status = corpus.ok() ? extractor.status() : corpus.status();
    err << "scisearch keyphrases: " << status.message() << "\n";
    return 2;
  }

  // The whole file is the corpus, so every document is read before the first is ranked.
  std::vector<Document> documents;
  bool bad_line = false;
  std::string line;
  for (size_t line_number = 1; std::getline(in, line); ++line_number) {
    if (IsBlank(line)) continue;
    Result<Document> document = ParseLine(line);
    if (!document.ok()) {
      err << in_path << ":" << line_number << ": " << document.status().message() << "\n";
      bad_line = true;
      continue;
    }
    corpus->Add(document->text);
    documents.push_back(std::move(document).value());
  }
  if (in.bad()) {
    err << "scisearch keyphrases: reading " << in_path << " failed: " << std::strerror(errno)
        << "\n";
    return 2;
  }

  for (Document& document : documents) {
    json phrases = json::array();
    for (const nlp::Keyphrase& keyphrase :
         extractor->Extract(document.text, &*corpus, static_cast<size_t>(top))) {
      phrases.push_back(keyphrase.phrase);
    }
    json record = {{"id", std::move(document.id)}, {"keyphrases", std::move(phrases)}};
    out << record.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
  }
  out.flush();
  return bad_line ? 1 : 0;
}

}  // namespace scisearch::cli
