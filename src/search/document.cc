#include "search/document.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/hash.h"
#include "formats/formats.h"
#include "formats/text.h"
#include "nlp/vocabulary.h"
#include "search/query_syntax.h"

namespace scisearch::search::internal {
namespace {

// How much a tag counts, by who or what gave it. Experts' accepted tags count most;
// tags guessed from free text least.
double SourceWeight(const catalog::TagRow& tag) {
  if (tag.state == "accepted") return 1.0;
  if (tag.source == "expert") return 1.0;
  if (tag.source == "metadata") return 0.9;
  if (tag.source == "path" || tag.source == "log") return 0.8;
  if (tag.source == "proposal" || tag.source == "publication") return 0.6;
  return 0.5;  // text, image
}

// Within-document frequency for a tag: 1 to 5 by source weight x confidence, so
// that a strong tag outweighs a passing mention in linked text (BM25 saturates).
Xapian::termcount TagWdf(const catalog::TagRow& tag) {
  const double confidence = std::clamp(tag.confidence > 0 ? tag.confidence : 0.5, 0.0, 1.0);
  return Xapian::termcount(1 + std::lround(4 * SourceWeight(tag) * confidence));
}

// File and folder names separate words with '_', '-', '.' and '/', which Xapian
// would keep inside words ("Acquire_0026_1").
std::string PathWords(std::string_view path) {
  std::string out(path);
  for (char& c : out) {
    if (c == '_' || c == '-' || c == '.' || c == '/' || c == '\\') c = ' ';
  }
  return out;
}

std::string FormatNumber(double value, const char* format) {
  char text[64];
  std::snprintf(text, sizeof text, format, value);
  return text;
}

std::string HumanSize(uint64_t bytes) {
  if (bytes >= (uint64_t(1) << 30)) return FormatNumber(bytes / 1073741824.0, "%.1f GB");
  if (bytes >= (uint64_t(1) << 20)) return FormatNumber(bytes / 1048576.0, "%.1f MB");
  if (bytes >= 1024) return FormatNumber(bytes / 1024.0, "%.0f kB");
  return std::to_string(bytes) + " B";
}

std::string Magnification(double x) {
  if (x >= 1e6) return FormatNumber(x / 1e6, "%.3gM x");
  if (x >= 1e3) return FormatNumber(x / 1e3, "%.3gk x");
  return FormatNumber(x, "%.3g x");
}

std::string PixelSize(double metres, const std::string& units) {
  if (units == "1/m") return FormatNumber(metres * 1e-9, "%.3g 1/nm");
  if (metres < 1e-9) return FormatNumber(metres * 1e12, "%.3g pm");
  if (metres < 1e-6) return FormatNumber(metres * 1e9, "%.3g nm");
  return FormatNumber(metres * 1e6, "%.3g um");
}

// "[2048, 2048]" -> "2048x2048".
std::string ShapeText(const std::string& shape_json) {
  const nlohmann::json shape = nlohmann::json::parse(shape_json, nullptr, false);
  if (!shape.is_array()) return "";
  std::string out;
  for (const auto& n : shape) {
    if (!n.is_number_integer()) return "";
    if (!out.empty()) out += "x";
    out += std::to_string(n.get<int64_t>());
  }
  return out;
}

void AddValue(Xapian::Document& doc, Xapian::valueno slot, const std::optional<double>& value) {
  if (value && std::isfinite(*value)) doc.add_value(slot, Xapian::sortable_serialise(*value));
}

// Free text and a prefixed copy, with positions for phrases.
void IndexField(Xapian::TermGenerator& generator, const std::string& text, const char* prefix,
                Xapian::termcount wdf = 1) {
  if (text.empty()) return;
  generator.index_text(text, wdf, prefix);
  generator.increase_termpos();
  generator.index_text(text, wdf);
  generator.increase_termpos();
}

void AddConcepts(Xapian::Document& doc, const std::string& text) {
  for (std::string_view id : nlp::FindConcepts(text)) doc.add_term("XC" + std::string(id));
}

// Collects the text leaves of a metadata tree that read as words (sample names,
// operators' comments, detector and mode names), not numbers or codes, straight
// from the JSON text (a SAX handler: no tree is built). Bounded: a DM tag tree has
// thousands of leaves.
class MetadataTextCollector {
 public:
  explicit MetadataTextCollector(std::string& out) : out_(out) {}

  bool string(std::string& text) {
    constexpr size_t kMaxText = 4096;
    if (out_.size() >= kMaxText || text.size() < 3 || text.size() > 160) return true;
    const size_t letters = size_t(std::count_if(text.begin(), text.end(), [](unsigned char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    }));
    if (letters * 2 < text.size()) return true;  // dates, numbers, hex codes
    out_ += text;
    out_ += ". ";
    return true;
  }
  bool null() { return true; }
  bool boolean(bool) { return true; }
  bool number_integer(int64_t) { return true; }
  bool number_unsigned(uint64_t) { return true; }
  bool number_float(double, const std::string&) { return true; }
  bool binary(std::vector<uint8_t>&) { return true; }
  bool start_object(size_t) { return true; }
  bool key(std::string&) { return true; }
  bool end_object() { return true; }
  bool start_array(size_t) { return true; }
  bool end_array() { return true; }
  template <class Exception>
  bool parse_error(size_t, const std::string&, const Exception&) {
    return false;  // a damaged tree gives what was read before the damage
  }

 private:
  std::string& out_;
};

}  // namespace

std::string PackFacets(const std::vector<std::string>& single_values,
                       const std::vector<std::string>& tags) {
  // Separators inside a value would shift the others: they become spaces.
  auto clean = [](std::string value) {
    std::replace(value.begin(), value.end(), '\x1e', ' ');
    std::replace(value.begin(), value.end(), '\x1f', ' ');
    return value;
  };
  std::string packed;
  for (size_t i = 0; i + 1 < kFacetCount; ++i) {
    if (i < single_values.size()) packed += clean(single_values[i]);
    packed += '\x1e';
  }
  for (size_t i = 0; i < tags.size(); ++i) {
    if (i > 0) packed += '\x1f';
    packed += clean(tags[i]);
  }
  return packed;
}

int64_t AppliedSequence(const Xapian::Database& db) {
  const std::string text = db.get_metadata(kSequenceKey);
  int64_t sequence = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), sequence);
  return error == std::errc() && end == text.data() + text.size() ? sequence : 0;
}

int IndexFormat(const Xapian::Database& db) {
  const std::string text = db.get_metadata(kFormatKey);
  int format = 1;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), format);
  return error == std::errc() && end == text.data() + text.size() ? format : 1;
}

std::string ExactValuePrefix(std::string_view field_prefix) {
  if (field_prefix == "XI" || field_prefix == "XA" || field_prefix == "XD" ||
      field_prefix == "XT") {
    return "XE" + std::string(field_prefix.substr(1));
  }
  return "";
}

int ExactValuesFormat(std::string_view field_prefix) {
  return field_prefix == "XT" ? kExactTagsFormat : kExactValuesFormat;
}

// The free-text (unprefixed: prefixes are capitals) terms of `doc` at each of their
// positions, in position order.
std::vector<std::pair<Xapian::termpos, std::string>> WordsByPosition(const Xapian::Document& doc) {
  std::vector<std::pair<Xapian::termpos, std::string>> words;
  for (Xapian::TermIterator t = doc.termlist_begin(); t != doc.termlist_end(); ++t) {
    const std::string term = *t;
    if (term.empty() || (term[0] >= 'A' && term[0] <= 'Z')) continue;
    for (Xapian::PositionIterator p = t.positionlist_begin(); p != t.positionlist_end(); ++p) {
      words.emplace_back(*p, term);
    }
  }
  std::sort(words.begin(), words.end());
  return words;
}

std::optional<std::string> ExactValueWords(const std::string& value) {
  // The exact-value prefix takes 3 of Xapian's bytes.
  constexpr size_t kMaxWordsBytes = kMaxTermBytes - 5;
  Xapian::Document scratch;
  Xapian::TermGenerator generator;  // no stemmer: the field's unstemmed terms
  generator.set_document(scratch);
  generator.index_text(value);
  const std::vector<std::pair<Xapian::termpos, std::string>> words = WordsByPosition(scratch);
  std::string joined;
  for (size_t i = 0; i < words.size(); ++i) {
    if (i > 0 && words[i].first != words[i - 1].first + 1) return std::nullopt;
    if (i > 0) joined += ' ';
    joined += words[i].second;
  }
  if (joined.size() > kMaxWordsBytes) return std::nullopt;
  return joined;
}

void AddExactValueTerm(Xapian::Document& doc, std::string_view field_prefix,
                       const std::string& value) {
  const std::string prefix = ExactValuePrefix(field_prefix);
  if (prefix.empty()) return;
  const std::optional<std::string> words = ExactValueWords(value);
  if (!words) {
    doc.add_boolean_term(prefix);  // the field's marker: see AddExactValueTerm's contract
  } else if (!words->empty()) {
    doc.add_boolean_term(prefix + *words);
  }
}

std::string WordPairTerm(std::string_view first, std::string_view second) {
  std::string term = "XB";
  term.append(first).append(" ").append(second);
  return term;
}

void AddWordPairs(Xapian::Document& doc) {
  const std::vector<std::pair<Xapian::termpos, std::string>> words = WordsByPosition(doc);
  for (size_t i = 0; i < words.size(); ++i) {
    for (size_t j = i + 1; j < words.size() && words[j].first <= words[i].first + 1; ++j) {
      if (words[j].first != words[i].first + 1) continue;
      const std::string pair = WordPairTerm(words[i].second, words[j].second);
      if (pair.size() <= kMaxTermBytes) doc.add_boolean_term(pair);
    }
  }
}

std::string SampleTerm(int bucket) { return "XS" + std::to_string(bucket); }

int SampleBucket(const std::string& item_id) {
  uint64_t hash = Fnv1a(item_id);
  hash ^= hash >> 29;  // the low bits of FNV-1a alone mix poorly
  return int(hash % kSampleBuckets);
}

std::string DatasetItemId(int64_t dataset_id) { return "dataset:" + std::to_string(dataset_id); }

std::string UniqueTerm(const std::string& item_id) { return "Q" + item_id; }

std::string ModeTerm(std::string_view mode_name) {
  std::string term = "XM" + formats::AsciiLower(mode_name);
  std::replace(term.begin(), term.end(), ' ', '-');
  return term;
}

std::optional<double> IsoToEpochSeconds(const std::string& iso) {
  if (iso.size() < 4) return std::nullopt;
  // Date and time to the second; then an optional fraction and zone.
  size_t end = std::min<size_t>(iso.size(), 19);
  std::string civil = iso.substr(0, end);
  Result<NumericRange> range = ParseRange("date", civil, QuantityKind::kDate);
  if (!range.ok()) return std::nullopt;
  double seconds = range->low;
  size_t zone = iso.find_first_of("+-Z", 19);
  if (iso.size() > 19 && zone != std::string::npos && iso[zone] != 'Z' && iso.size() >= zone + 6) {
    const int hours = std::atoi(iso.substr(zone + 1, 2).c_str());
    const int minutes = std::atoi(iso.substr(zone + 4, 2).c_str());
    const double offset = hours * 3600.0 + minutes * 60.0;
    seconds += iso[zone] == '+' ? -offset : offset;
  }
  return seconds;
}

std::string EncodeStoredItem(const StoredItem& item) {
  nlohmann::json j = {{"id", item.id},     {"kind", item.kind}, {"title", item.title},
                      {"path", item.path}, {"date", item.date}, {"summary", item.summary},
                      {"text", item.text}, {"tags", item.tags}, {"dataset", item.dataset_id}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

StoredItem DecodeStoredItem(const std::string& data) {
  StoredItem item;
  const nlohmann::json j = nlohmann::json::parse(data, nullptr, false);
  if (!j.is_object()) return item;
  auto text = [&j](const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  item.id = text("id");
  item.kind = text("kind");
  item.title = text("title");
  item.path = text("path");
  item.date = text("date");
  item.summary = text("summary");
  item.text = text("text");
  if (auto it = j.find("tags"); it != j.end() && it->is_array()) {
    for (const auto& tag : *it) {
      if (tag.is_string()) item.tags.push_back(tag.get<std::string>());
    }
  }
  if (auto it = j.find("dataset"); it != j.end() && it->is_number_integer()) {
    item.dataset_id = it->get<int64_t>();
  }
  return item;
}

Xapian::Document MakeDatasetDocument(const catalog::DatasetRow& dataset,
                                     const LinkedContext& context,
                                     Xapian::TermGenerator& generator) {
  Xapian::Document doc;
  generator.set_document(doc);
  const formats::NormalisedFields& f = dataset.fields;
  const std::string item_id = DatasetItemId(dataset.id);
  const std::string file_name = std::filesystem::path(dataset.path).filename().string();
  const std::string mode =
      f.mode == formats::Mode::kUnknown ? "" : std::string(formats::ModeName(f.mode));

  // The path below the ingest root says most (instrument, PI, date, sample); the
  // file name twice: it is the title.
  std::string relative = dataset.path;
  if (!dataset.root.empty() && relative.rfind(dataset.root, 0) == 0) {
    relative = relative.substr(dataset.root.size());
  }
  IndexField(generator, PathWords(file_name), "S", 2);
  IndexField(generator, PathWords(relative), "XP", 2);

  std::string all_text = relative;  // everything, for concepts and the snippet
  auto add_field = [&](const std::optional<std::string>& value, const char* prefix) {
    if (!value || value->empty()) return;
    IndexField(generator, *value, prefix);
    AddExactValueTerm(doc, prefix, *value);
    all_text += " · " + *value;
  };
  add_field(f.instrument, "XI");
  add_field(f.detector, "XD");
  if (!mode.empty()) {
    generator.index_text(mode);
    generator.increase_termpos();
    doc.add_boolean_term(ModeTerm(mode));
    all_text += " · " + mode;
  }
  if (!dataset.format.empty()) {
    doc.add_boolean_term("XF" + formats::AsciiLower(dataset.format));
    generator.index_text(dataset.format);
    generator.increase_termpos();
  }
  doc.add_boolean_term("Kdataset");
  doc.add_boolean_term(UniqueTerm(item_id));
  doc.add_boolean_term(SampleTerm(SampleBucket(item_id)));

  // Tags, strongest first; rejected ones are not the item's.
  std::vector<std::string> tags;
  for (const catalog::TagRow& tag : dataset.tags) {
    if (tag.state == "rejected" || tag.value.empty()) continue;
    if (std::find(tags.begin(), tags.end(), tag.value) != tags.end()) continue;
    IndexField(generator, tag.value, "XT", TagWdf(tag));
    AddExactValueTerm(doc, "XT", tag.value);
    tags.push_back(tag.value);
  }
  if (!tags.empty()) {
    all_text += " · tags: ";
    for (size_t i = 0; i < tags.size(); ++i) all_text += (i ? ", " : "") + tags[i];
  }

  // Context: PI, proposal, publications, the log entry.
  if (!context.pi.empty()) {
    IndexField(generator, context.pi, "XA", 2);
    AddExactValueTerm(doc, "XA", context.pi);
    all_text += " · PI " + context.pi;
  }
  // The linked texts are the same for the thousands of datasets of a proposal:
  // their words count, their positions would only grow the index (phrases in them
  // are found on the proposal's or paper's own item).
  if (!context.proposal_title.empty()) {
    generator.index_text_without_positions(context.proposal_title, 2);
    all_text += " · " + context.proposal_title;
  }
  generator.index_text_without_positions(context.proposal_text);
  for (const std::string& title : context.publication_titles) {
    generator.index_text_without_positions(title);
  }
  generator.index_text_without_positions(context.session_text);

  // Metadata text leaves, once for the whole dataset.
  std::string metadata_text;
  for (const catalog::SignalRow& signal : dataset.signals) {
    if (!signal.name.empty()) metadata_text += signal.name + ". ";
    MetadataTextCollector collector(metadata_text);
    nlohmann::json::sax_parse(signal.metadata_json, &collector,
                              nlohmann::json::input_format_t::json, /*strict=*/false);
  }
  generator.index_text_without_positions(metadata_text);

  // Concepts of the vocabulary, so that synonyms reach this item from any form.
  AddConcepts(doc, all_text + " " + context.proposal_text + " " + metadata_text);

  // Values: ranges, sorting, facets.
  std::string year;
  if (f.acquired) {
    std::optional<double> seconds = IsoToEpochSeconds(*f.acquired);
    AddValue(doc, kDate, seconds);
    if (seconds && f.acquired->size() >= 4) {
      year = f.acquired->substr(0, 4);
      doc.add_boolean_term("Y" + year);
      generator.index_text(year);  // "PbSe 2011" finds the year as a word too
    }
  }
  AddValue(doc, kMagnification, f.magnification);
  AddValue(doc, kVoltage, f.beam_energy_kev);
  AddValue(doc, kPixelSize, f.pixel_size_m);
  doc.add_value(kFacets, PackFacets({"dataset", f.instrument.value_or(""), context.pi, year, mode,
                                     dataset.format},
                                    tags));

  // The line a hit shows: what it is, at a glance.
  std::vector<std::string> parts;
  if (!dataset.format.empty()) parts.push_back(dataset.format);
  if (!mode.empty()) parts.push_back(mode);
  if (f.instrument) parts.push_back(*f.instrument);
  if (f.beam_energy_kev) parts.push_back(FormatNumber(*f.beam_energy_kev, "%.0f kV"));
  if (f.magnification) parts.push_back(Magnification(*f.magnification));
  if (f.pixel_size_m) parts.push_back(PixelSize(*f.pixel_size_m, f.pixel_size_units.value_or("m")));
  if (!dataset.signals.empty()) {
    std::string shape = ShapeText(dataset.signals.front().shape_json);
    if (!shape.empty()) parts.push_back(shape);
    if (dataset.signals.size() > 1) {
      parts.push_back(std::to_string(dataset.signals.size()) + " signals");
    }
  }
  parts.push_back(HumanSize(dataset.size_bytes));
  std::string summary;
  for (size_t i = 0; i < parts.size(); ++i) summary += (i ? " · " : "") + parts[i];

  StoredItem stored;
  stored.id = item_id;
  stored.kind = "dataset";
  stored.title = file_name;
  stored.path = dataset.path;
  stored.date = f.acquired.value_or("");
  stored.summary = summary;
  stored.text = all_text.substr(0, 2000);
  stored.tags.assign(tags.begin(), tags.begin() + std::min<size_t>(tags.size(), 12));
  stored.dataset_id = dataset.id;
  doc.set_data(EncodeStoredItem(stored));
  AddWordPairs(doc);
  return doc;
}

Xapian::Document MakeTextDocument(const catalog::DocumentRecord& document,
                                  Xapian::TermGenerator& generator) {
  Xapian::Document doc;
  generator.set_document(doc);
  IndexField(generator, document.title, "S", 2);
  generator.index_text(document.text);
  generator.increase_termpos();
  std::string people;
  for (const std::string& author : document.authors) {
    IndexField(generator, author, "XA");
    AddExactValueTerm(doc, "XA", author);
    people += (people.empty() ? "" : ", ") + author;
  }
  if (!document.pi.empty()) {
    IndexField(generator, document.pi, "XA", 2);
    AddExactValueTerm(doc, "XA", document.pi);
  }
  AddConcepts(doc, document.title + " " + document.text);
  doc.add_boolean_term("K" + document.kind);
  doc.add_boolean_term(UniqueTerm(document.id));
  doc.add_boolean_term(SampleTerm(SampleBucket(document.id)));
  std::string year;
  if (std::optional<double> seconds = IsoToEpochSeconds(document.date)) {
    AddValue(doc, kDate, seconds);
    year = document.date.substr(0, 4);
    doc.add_boolean_term("Y" + year);
  }
  doc.add_value(kFacets, PackFacets({document.kind, "", document.pi, year, "", ""}, {}));

  std::vector<std::string> parts = {document.kind};
  if (!document.pi.empty()) parts.push_back("PI " + document.pi);
  if (!people.empty())
    parts.push_back(people.size() > 120 ? people.substr(0, 117) + "..." : people);
  if (!document.doi.empty()) parts.push_back("doi:" + document.doi);
  if (!document.proposals.empty() && document.kind != "proposal") {
    parts.push_back("proposal " + document.proposals.front());
  }
  std::string summary;
  for (size_t i = 0; i < parts.size(); ++i) summary += (i ? " · " : "") + parts[i];

  StoredItem stored;
  stored.id = document.id;
  stored.kind = document.kind;
  stored.title = document.title.empty() ? document.id : document.title;
  stored.date = document.date;
  stored.summary = summary;
  stored.text = document.text.substr(0, 4000);
  doc.set_data(EncodeStoredItem(stored));
  AddWordPairs(doc);
  return doc;
}

}  // namespace scisearch::search::internal
