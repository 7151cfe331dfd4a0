#include "context/loaders.h"

#include <poppler/cpp/poppler-document.h>
#include <poppler/cpp/poppler-page.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <climits>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_map>

#include "context/documents.h"
#include "formats/normalise.h"
#include "formats/text.h"

namespace scisearch::context {
namespace {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

// Context files are text people keep by hand: a bigger one is damage or the wrong file.
constexpr uintmax_t kMaxFileBytes = uintmax_t(512) << 20;
// JSON nested deeper than this is not a record of ours (and would strain the parser).
constexpr int kMaxJsonDepth = 64;
// An unclosed quote makes the CSV parser read the rest of the file again; past this
// many the file is given up, so that a hostile file costs linear time.
constexpr size_t kMaxCsvRecoveries = 100;
// A title longer than this is a paragraph, not a title.
constexpr size_t kMaxTitleBytes = 300;

// --- Text ---------------------------------------------------------------------

// `text` cut to at most `max_bytes` without splitting a UTF-8 sequence.
std::string_view CutUtf8(std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  size_t end = max_bytes;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(0, end);
}

std::string DecodeUtf16(std::string_view bytes, bool little_endian) {
  std::string out;
  out.reserve(bytes.size());
  auto unit = [&](size_t i) -> char32_t {
    const auto lo = static_cast<unsigned char>(bytes[little_endian ? i : i + 1]);
    const auto hi = static_cast<unsigned char>(bytes[little_endian ? i + 1 : i]);
    return char32_t(hi) << 8 | lo;
  };
  for (size_t i = 0; i + 1 < bytes.size(); i += 2) {
    char32_t c = unit(i);
    if (c >= 0xD800 && c <= 0xDBFF && i + 3 < bytes.size()) {
      const char32_t low = unit(i + 2);
      if (low >= 0xDC00 && low <= 0xDFFF) {
        c = 0x10000 + ((c - 0xD800) << 10) + (low - 0xDC00);
        i += 2;
      }
    }
    if (c != 0) formats::AppendUtf8(c, out);  // unpaired surrogates become U+FFFD
  }
  return out;
}

// Lower case, with runs of spaces, '_', '-', '.' and '/' as one space: "Start_Time",
// "start-time" and "Start  Time" all read "start time".
std::string NormaliseHeader(std::string_view header) {
  std::string out;
  bool gap = false;
  for (char c : formats::TrimSpace(header)) {
    if (c == ' ' || c == '_' || c == '-' || c == '.' || c == '/' || c == '\t' || c == '"') {
      gap = !out.empty();
      continue;
    }
    if (gap) out += ' ';
    gap = false;
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

bool IsYearOrMonth(std::string_view text) {
  // "2021" or "2021-11": an ISO date of reduced precision.
  auto digits = [&](size_t from, size_t n) {
    if (text.size() < from + n) return false;
    for (size_t i = from; i < from + n; ++i) {
      if (!std::isdigit(static_cast<unsigned char>(text[i]))) return false;
    }
    return true;
  };
  if (text.size() == 4) return digits(0, 4) && text >= "1900" && text <= "2200";
  return text.size() == 7 && digits(0, 4) && text[4] == '-' && digits(5, 2) &&
         text.substr(5) >= "01" && text.substr(5) <= "12";
}

// A date given in any common form as "YYYY-MM-DD" (or "YYYY", "YYYY-MM"); "" for
// empty; the reason, naming `field`, when it is not a date.
Result<std::string> NormaliseDate(const ordered_json& value, const std::string& field) {
  SCISEARCH_ASSIGN_OR_RETURN(std::string text, JsonText(value, field));
  const std::string_view trimmed = formats::TrimSpace(text);
  if (trimmed.empty()) return std::string();
  if (IsYearOrMonth(trimmed)) return std::string(trimmed);
  std::optional<std::string> iso = formats::ParseDateTime(trimmed);
  if (!iso || iso->size() < 10) {
    return Status::InvalidArgument("\"" + field + "\" '" + std::string(CutUtf8(trimmed, 80)) +
                                   "' is not a date");
  }
  return iso->substr(0, 10);
}

// "YYYY-MM-DD" one day after `iso_date` (its first 10 characters).
std::string NextDay(const std::string& iso_date) {
  std::tm tm{};
  if (std::sscanf(iso_date.c_str(), "%4d-%2d-%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday) != 3) {
    return iso_date;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  tm.tm_mday += 1;
  tm.tm_hour = 12;
  const std::time_t t = timegm(&tm);
  std::tm out{};
  gmtime_r(&t, &out);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", out.tm_year + 1900, out.tm_mon + 1, out.tm_mday);
  return buf;
}

// --- JSON ---------------------------------------------------------------------

// The deepest nesting of arrays and objects in JSON text (strings skipped).
int JsonDepth(std::string_view text) {
  int depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      deepest = std::max(deepest, ++depth);
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return deepest;
}

int64_t LineOfOffset(std::string_view text, size_t offset) {
  return 1 + std::count(text.begin(), text.begin() + std::min(offset, text.size()), '\n');
}

// One JSON value of a file, or why it could not be read.
struct JsonRecord {
  int64_t line = 0;
  ordered_json value;
  std::string error;  // "" when `value` holds the record
};

JsonRecord ParseJsonRecord(std::string_view text, int64_t line) {
  JsonRecord record;
  record.line = line;
  if (JsonDepth(text) > kMaxJsonDepth) {
    record.error = "JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels";
    return record;
  }
  try {
    record.value = ordered_json::parse(text);
  } catch (const ordered_json::exception& e) {
    record.error = std::string("not JSON: ") + e.what();
  }
  return record;
}

void ReadJsonLines(std::string_view text, std::vector<JsonRecord>& out) {
  int64_t line = 0;
  for (size_t begin = 0; begin < text.size();) {
    size_t end = text.find('\n', begin);
    if (end == std::string_view::npos) end = text.size();
    ++line;
    const std::string_view content = formats::TrimSpace(text.substr(begin, end - begin));
    if (!content.empty()) out.push_back(ParseJsonRecord(content, line));
    begin = end + 1;
  }
}

// The elements of the JSON array starting at text[open] ('['), each parsed on its
// own so that one broken element costs only itself. Returns a file-level problem
// ("" when none).
std::string ReadJsonArray(std::string_view text, size_t open, std::vector<JsonRecord>& out) {
  int depth = 0;
  bool in_string = false;
  size_t element = std::string_view::npos;
  auto finish = [&](size_t end) {
    if (element == std::string_view::npos) return;
    out.push_back(ParseJsonRecord(formats::TrimSpace(text.substr(element, end - element)),
                                  LineOfOffset(text, element)));
    element = std::string_view::npos;
  };
  for (size_t i = open + 1; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    const bool space = std::isspace(static_cast<unsigned char>(c));
    if (depth == 0 && element == std::string_view::npos && !space && c != ',' && c != ']') {
      element = i;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    } else if (depth == 0 && (c == ',' || c == ']')) {
      finish(i);
      if (c == ']') {
        if (!formats::TrimSpace(text.substr(i + 1)).empty()) {
          return "text after the array's closing ']' on line " +
                 std::to_string(LineOfOffset(text, i));
        }
        return "";
      }
    }
  }
  const int64_t line = element != std::string_view::npos ? LineOfOffset(text, element) : 0;
  element = std::string_view::npos;
  return "the array opened on line " + std::to_string(LineOfOffset(text, open)) +
         " is never closed" +
         (line > 0 ? " (its last element, line " + std::to_string(line) + ", is cut off)" : "");
}

// The records of a JSON file: one object, an array of them, or JSON lines
// (`lines_only`: always JSON lines). A file-level problem goes to `file_error`.
std::vector<JsonRecord> ReadJsonRecords(std::string_view text, bool lines_only,
                                        std::string& file_error) {
  std::vector<JsonRecord> out;
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) {
    file_error = "empty file";
    return out;
  }
  if (lines_only) {
    ReadJsonLines(text, out);
    return out;
  }
  if (text[first] == '[') {
    file_error = ReadJsonArray(text, first, out);
    return out;
  }
  if (text[first] != '{') {
    file_error = std::string("not a JSON object or array (it starts with '") + text[first] + "')";
    return out;
  }
  JsonRecord whole = ParseJsonRecord(text.substr(first), LineOfOffset(text, first));
  if (whole.error.empty()) {
    out.push_back(std::move(whole));
    return out;
  }
  // Several objects: JSON lines in a .json file, when the first line is an object alone.
  size_t end = text.find('\n', first);
  if (end == std::string_view::npos) end = text.size();
  JsonRecord first_line = ParseJsonRecord(text.substr(first, end - first), 1);
  if (first_line.error.empty() && first_line.value.is_object()) {
    ReadJsonLines(text, out);
    return out;
  }
  file_error = whole.error;
  return out;
}

// The record's value for `key` compared case-insensitively; nullptr when absent.
std::string LowerKey(const std::string& key) { return formats::AsciiLower(key); }

// --- Logs ---------------------------------------------------------------------

enum LogField { kId, kInstrument, kUser, kPi, kProposal, kStart, kEnd, kDate, kEndDate, kNotes };
constexpr int kLogFieldCount = 10;

int LogFieldIndex(const std::string& name) {
  const auto& aliases = LogColumnAliases();
  for (size_t i = 0; i < aliases.size(); ++i) {
    if (aliases[i].first == name) return int(i);
  }
  return -1;
}

// Which column (or record key) holds each canonical field.
struct ColumnMap {
  std::array<int, kLogFieldCount> field_column;  // -1 when absent
  std::vector<int> extra_columns;                // columns of no canonical field
};

// Maps `headers` (a CSV header row, or a JSON record's keys) to the canonical
// fields: the config's columns first, then the aliases in order of preference.
Result<ColumnMap> MapColumns(const std::vector<std::string>& headers, const LogConfig& config,
                             bool config_by_position) {
  ColumnMap map;
  map.field_column.fill(-1);
  std::vector<std::string> normalised;
  normalised.reserve(headers.size());
  for (const std::string& h : headers) normalised.push_back(NormaliseHeader(h));
  std::vector<bool> taken(headers.size(), false);
  for (const auto& [field, column] : config.columns) {
    const int f = LogFieldIndex(field);
    if (f < 0) return Status::InvalidArgument("log config: unknown field '" + field + "'");
    if (config_by_position) {
      char* end = nullptr;
      const long position = std::strtol(column.c_str(), &end, 10);
      if (end == column.c_str() || *end != '\0' || position < 1 || position > 100000) {
        return Status::InvalidArgument("log config: column of '" + field + "' ('" + column +
                                       "') is not a position (1, 2, ...) for a log without header");
      }
      map.field_column[f] = int(position - 1);
      if (size_t(position - 1) < taken.size()) taken[position - 1] = true;
      continue;
    }
    const std::string wanted = NormaliseHeader(column);
    const auto it = std::find(normalised.begin(), normalised.end(), wanted);
    if (it == normalised.end()) continue;  // checked by the caller where a header must have it
    map.field_column[f] = int(it - normalised.begin());
    taken[it - normalised.begin()] = true;
  }
  const auto& aliases = LogColumnAliases();
  for (int f = 0; f < kLogFieldCount; ++f) {
    if (map.field_column[f] >= 0 || config.columns.count(aliases[f].first)) continue;
    for (const std::string& alias : aliases[f].second) {
      for (size_t c = 0; c < normalised.size() && map.field_column[f] < 0; ++c) {
        if (!taken[c] && normalised[c] == alias) {
          map.field_column[f] = int(c);
          taken[c] = true;
        }
      }
      if (map.field_column[f] >= 0) break;
    }
  }
  for (size_t c = 0; c < headers.size(); ++c) {
    if (!taken[c]) map.extra_columns.push_back(int(c));
  }
  return map;
}

// One booking as read from a row or record, before its times are interpreted.
struct LogRow {
  int64_t line = 0;
  std::array<std::string, kLogFieldCount> value;
  ordered_json extras = ordered_json::object();  // the other columns, by header
};

// A session read and checked, waiting for its id.
struct PendingSession {
  catalog::SessionRecord record;
  ordered_json extras;
  fs::path file;
  int64_t line = 0;
  bool has_id = false;
};

// The start or end of a booking from its cell, with the day from `day_cell` when the
// cell holds a time alone. Sets `own_date` when the cell held its date.
std::optional<std::string> BookingTime(const std::string& cell, const std::string& day_cell,
                                       bool day_first, const std::string& time_format,
                                       bool& own_date) {
  own_date = true;
  std::optional<std::string> t = ParseLogTime(cell, day_first, time_format);
  if (t) return t;
  if (day_cell.empty()) return std::nullopt;
  own_date = false;
  t = ParseLogTime(day_cell + " " + cell, day_first, time_format);
  if (!t && !time_format.empty()) {
    // The format describes the time cell alone: read the day on its own.
    std::optional<std::string> day = ParseLogTime(day_cell, day_first);
    std::tm tm{};
    const char* end = strptime(cell.c_str(), time_format.c_str(), &tm);
    if (day && end && formats::TrimSpace(end).empty()) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "T%02d:%02d:%02d", tm.tm_hour, tm.tm_min, tm.tm_sec);
      t = day->substr(0, 10) + buf;
    }
  }
  if (!t || t->size() != 19) return std::nullopt;  // the cell was not a time of day
  return t;
}

// Reads the rows of one log file into sessions (ids still to come).
void RowsToSessions(const fs::path& file, const std::vector<LogRow>& rows, const LogConfig& config,
                    std::vector<PendingSession>& out,
                    const std::function<void(int64_t, const std::string&)>& fail) {
  bool day_first = false;
  if (config.day_first) {
    day_first = *config.day_first;
  } else {
    std::vector<std::string_view> dates;
    for (const LogRow& row : rows) {
      for (int f : {kStart, kEnd, kDate, kEndDate}) dates.push_back(row.value[f]);
    }
    day_first = LogDatesAreDayFirst(dates);
  }
  const std::string default_instrument =
      !config.instrument.empty() ? config.instrument : file.stem().string();
  auto quoted = [](const std::string& text) {
    return "'" + std::string(CutUtf8(text, 80)) + (text.size() > 80 ? "...'" : "'");
  };
  for (const LogRow& row : rows) {
    const std::string& start_cell = row.value[kStart];
    const std::string& end_cell = row.value[kEnd];
    if (start_cell.empty() || end_cell.empty()) {
      fail(row.line, start_cell.empty() ? "no start" : "no end");
      continue;
    }
    bool start_own_date = true, end_own_date = true;
    std::optional<std::string> start =
        BookingTime(start_cell, row.value[kDate], day_first, config.time_format, start_own_date);
    const std::string& end_day =
        !row.value[kEndDate].empty() ? row.value[kEndDate] : row.value[kDate];
    std::optional<std::string> end =
        BookingTime(end_cell, end_day, day_first, config.time_format, end_own_date);
    if (!start || !end) {
      const std::string& bad = !start ? start_cell : end_cell;
      fail(row.line,
           std::string(!start ? "start " : "end ") + quoted(bad) + " is not a date and time" +
               (config.time_format.empty() ? "" : " of format '" + config.time_format + "'"));
      continue;
    }
    if (start->size() == 10) *start += "T00:00:00";  // a whole-day booking
    if (end->size() == 10) *end += "T23:59:59";
    if (*end < *start && !end_own_date && row.value[kEndDate].empty()) {
      *end = NextDay(*end) + end->substr(10);  // an overnight booking: "22:00" to "06:00"
    }
    if (*end < *start) {
      fail(row.line, "end " + *end + " is before start " + *start);
      continue;
    }
    PendingSession s;
    s.file = file;
    s.line = row.line;
    s.record.id = row.value[kId];
    s.has_id = !s.record.id.empty();
    s.record.instrument =
        !row.value[kInstrument].empty() ? row.value[kInstrument] : default_instrument;
    s.record.user = row.value[kUser];
    s.record.pi = row.value[kPi];
    s.record.proposal_id = row.value[kProposal];
    s.record.start = *start;
    s.record.end = *end;
    s.record.notes = row.value[kNotes];
    s.extras = row.extras;
    out.push_back(std::move(s));
  }
}

// Numbers the sessions without an id: "<instrument>-<YYYYMMDD>-<n>", n counting the
// instrument's bookings of that day in start order (ties in file order).
void NumberSessions(std::vector<PendingSession>& sessions) {
  std::vector<size_t> order(sessions.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const auto& x = sessions[a].record;
    const auto& y = sessions[b].record;
    return std::tie(x.instrument, x.start) < std::tie(y.instrument, y.start);
  });
  std::map<std::pair<std::string, std::string>, int> count;
  for (size_t i : order) {
    catalog::SessionRecord& r = sessions[i].record;
    std::string day = r.start.substr(0, 10);
    day.erase(std::remove(day.begin(), day.end(), '-'), day.end());
    const int n = ++count[{r.instrument, day}];
    if (!sessions[i].has_id) r.id = r.instrument + "-" + day + "-" + std::to_string(n);
  }
}

// --- Proposals and publications -------------------------------------------------

// Reads a record's fields by lower-cased key through `take`: the first key of a
// group wins; a later synonym, or any field of no group, lands in `extras`.
class RecordFields {
 public:
  explicit RecordFields(const ordered_json& object) {
    for (const auto& [key, value] : object.items()) items_.push_back({key, &value});
  }
  // The value of the first key among `names` (lower case) present; nullptr if none.
  const ordered_json* Take(std::initializer_list<const char*> names, std::string* which = nullptr) {
    for (const char* name : names) {
      for (Item& item : items_) {
        if (!item.used && LowerKey(item.key) == name) {
          item.used = true;
          if (which) *which = item.key;
          return item.value;
        }
      }
    }
    return nullptr;
  }
  // Every field not taken (except "kind", which only chose the loader).
  ordered_json Extras() const {
    ordered_json extras = ordered_json::object();
    for (const Item& item : items_) {
      if (!item.used && LowerKey(item.key) != "kind") extras[item.key] = *item.value;
    }
    return extras;
  }

 private:
  struct Item {
    std::string key;
    const ordered_json* value;
    bool used = false;
  };
  std::vector<Item> items_;
};

// A person named by a string (an id like "aferreira", or a display name) or by an
// object {"id", "name", "institution"}.
Result<catalog::PersonRecord> PersonFromJson(const ordered_json& value, const std::string& field) {
  catalog::PersonRecord person;
  if (value.is_string()) {
    const std::string name(formats::TrimSpace(value.get_ref<const std::string&>()));
    person.id = name;
    // A login names nobody; a display name ("Andrew Ferreira", "A. Ferreira") does.
    if (name.find_first_of(" .,") != std::string::npos) person.name = name;
  } else if (value.is_object()) {
    RecordFields fields(value);
    if (const auto* v = fields.Take({"id", "username", "login", "user"})) {
      SCISEARCH_ASSIGN_OR_RETURN(person.id, JsonText(*v, field + ".id"));
    }
    if (const auto* v = fields.Take({"name", "full_name", "display_name"})) {
      SCISEARCH_ASSIGN_OR_RETURN(person.name, JsonText(*v, field + ".name"));
    } else {
      std::string given, family;
      if (const auto* g = fields.Take({"given", "given_name", "first_name"})) {
        SCISEARCH_ASSIGN_OR_RETURN(given, JsonText(*g, field + ".given"));
      }
      if (const auto* f = fields.Take({"family", "family_name", "last_name", "surname"})) {
        SCISEARCH_ASSIGN_OR_RETURN(family, JsonText(*f, field + ".family"));
      }
      person.name = std::string(formats::TrimSpace(given + " " + family));
    }
    if (const auto* v =
            fields.Take({"institution", "affiliation", "organisation", "organization"})) {
      SCISEARCH_ASSIGN_OR_RETURN(person.institution, JsonText(*v, field + ".institution"));
    }
    person.id = std::string(formats::TrimSpace(person.id));
    person.name = std::string(formats::TrimSpace(person.name));
    if (person.id.empty()) person.id = person.name;
  } else if (!value.is_null()) {
    return Status::InvalidArgument("\"" + field + "\" is a " + value.type_name() +
                                   ", not a name or a person object");
  }
  if (person.id.empty()) {
    return Status::InvalidArgument("\"" + field + "\" names nobody (no id and no name)");
  }
  return person;
}

// A list of people: an array of names/objects, one name or object, or "A; B".
Result<std::vector<catalog::PersonRecord>> PeopleFromJson(const ordered_json& value,
                                                          const std::string& field) {
  std::vector<catalog::PersonRecord> out;
  if (value.is_null()) return out;
  if (value.is_array()) {
    for (size_t i = 0; i < value.size(); ++i) {
      SCISEARCH_ASSIGN_OR_RETURN(auto person,
                                 PersonFromJson(value[i], field + "[" + std::to_string(i) + "]"));
      out.push_back(std::move(person));
    }
    return out;
  }
  if (value.is_string()) {
    SCISEARCH_ASSIGN_OR_RETURN(std::vector<std::string> names, JsonTextList(value, field));
    for (const std::string& name : names) {
      SCISEARCH_ASSIGN_OR_RETURN(auto person, PersonFromJson(ordered_json(name), field));
      out.push_back(std::move(person));
    }
    return out;
  }
  SCISEARCH_ASSIGN_OR_RETURN(auto person, PersonFromJson(value, field));
  out.push_back(std::move(person));
  return out;
}

struct ParsedProposal {
  catalog::ProposalRecord record;
  std::vector<catalog::PersonRecord> people;
  ordered_json extras;
};

Result<ParsedProposal> ProposalFromJson(const ordered_json& object) {
  if (!object.is_object()) {
    return Status::InvalidArgument(std::string("a JSON ") + object.type_name() + ", not an object");
  }
  ParsedProposal p;
  RecordFields fields(object);
  catalog::ProposalRecord& r = p.record;
  if (const auto* v = fields.Take({"id", "proposal_id", "proposal"})) {
    SCISEARCH_ASSIGN_OR_RETURN(r.id, JsonText(*v, "id"));
  }
  r.id = std::string(formats::TrimSpace(r.id));
  if (r.id.empty()) return Status::InvalidArgument("no \"id\"");
  if (const auto* v = fields.Take({"title"})) {
    SCISEARCH_ASSIGN_OR_RETURN(r.title, JsonText(*v, "title"));
  }
  std::string key;
  if (const auto* v = fields.Take({"abstract", "text", "summary", "description"}, &key)) {
    SCISEARCH_ASSIGN_OR_RETURN(r.abstract, JsonText(*v, key));
  }
  if (const auto* v = fields.Take({"pi", "principal_investigator"}, &key)) {
    if (!v->is_null()) {
      SCISEARCH_ASSIGN_OR_RETURN(catalog::PersonRecord pi, PersonFromJson(*v, key));
      r.pi = pi.id;
      p.people.push_back(std::move(pi));
    }
  }
  if (const auto* v = fields.Take({"team", "members", "team_members"}, &key)) {
    SCISEARCH_ASSIGN_OR_RETURN(auto team, PeopleFromJson(*v, key));
    for (catalog::PersonRecord& person : team) {
      r.team.push_back(person.id);
      p.people.push_back(std::move(person));
    }
  }
  struct DateField {
    std::initializer_list<const char*> names;
    std::string* out;
  };
  for (const DateField& d :
       {DateField{{"start_date", "start"}, &r.start_date},
        DateField{{"end_date", "end"}, &r.end_date},
        DateField{{"release_date", "release", "embargo_until", "public_date"}, &r.release_date}}) {
    if (const auto* v = fields.Take(d.names, &key)) {
      SCISEARCH_ASSIGN_OR_RETURN(*d.out, NormaliseDate(*v, key));
    }
  }
  p.extras = fields.Extras();
  return p;
}

// A DOI as written in a record: without "https://doi.org/" or "doi:".
std::string CleanDoi(std::string_view doi) {
  doi = formats::TrimSpace(doi);
  const std::string lower = formats::AsciiLower(doi);
  for (const char* prefix : {"https://doi.org/", "http://doi.org/", "https://dx.doi.org/",
                             "http://dx.doi.org/", "doi:"}) {
    const std::string_view p(prefix);
    if (lower.compare(0, p.size(), p) == 0) {
      doi.remove_prefix(p.size());
      break;
    }
  }
  return std::string(formats::TrimSpace(doi));
}

struct ParsedPublication {
  catalog::PublicationRecord record;
  std::vector<catalog::PersonRecord> people;  // authors the source identifies by id
  ordered_json extras = ordered_json::object();
  bool keyed_by_doi = true;  // record.doi is a DOI (else an id standing in for one)
};

Result<ParsedPublication> PublicationFromJson(const ordered_json& object) {
  if (!object.is_object()) {
    return Status::InvalidArgument(std::string("a JSON ") + object.type_name() + ", not an object");
  }
  ParsedPublication p;
  RecordFields fields(object);
  catalog::PublicationRecord& r = p.record;
  std::string doi, id, key;
  if (const auto* v = fields.Take({"doi"})) {
    SCISEARCH_ASSIGN_OR_RETURN(doi, JsonText(*v, "doi"));
  }
  if (const auto* v = fields.Take({"id"})) {
    SCISEARCH_ASSIGN_OR_RETURN(id, JsonText(*v, "id"));
  }
  doi = CleanDoi(doi);
  id = std::string(formats::TrimSpace(id));
  if (doi.empty() && id.empty()) return Status::InvalidArgument("no \"doi\" and no \"id\"");
  r.doi = !doi.empty() ? doi : id;
  p.keyed_by_doi = !doi.empty();
  if (const auto* v = fields.Take({"title"})) {
    SCISEARCH_ASSIGN_OR_RETURN(r.title, JsonText(*v, "title"));
  }
  if (const auto* v = fields.Take({"abstract", "text", "summary"}, &key)) {
    SCISEARCH_ASSIGN_OR_RETURN(r.abstract, JsonText(*v, key));
  }
  if (const auto* v = fields.Take({"authors", "author"}, &key)) {
    SCISEARCH_ASSIGN_OR_RETURN(auto authors, PeopleFromJson(*v, key));
    for (size_t i = 0; i < authors.size(); ++i) {
      catalog::PersonRecord& a = authors[i];
      r.authors.push_back(!a.name.empty() ? a.name : a.id);
      // Only an author object that gives an id identifies a person of the facility.
      if (v->is_array() && (*v)[i].is_object() && a.id != a.name) p.people.push_back(std::move(a));
    }
  }
  if (const auto* v = fields.Take({"date", "published", "publication_date", "year"}, &key)) {
    SCISEARCH_ASSIGN_OR_RETURN(r.date, NormaliseDate(*v, key));
  }
  if (const auto* v =
          fields.Take({"proposals", "proposal", "acknowledged_proposals", "acknowledges"}, &key)) {
    SCISEARCH_ASSIGN_OR_RETURN(r.proposals, JsonTextList(*v, key));
  }
  p.extras = fields.Extras();
  if (!doi.empty() && !id.empty() && id != doi) p.extras["id"] = id;
  return p;
}

// A "Label: value" line among the first lines of `text` ("Authors: A. B; C. D").
std::string MarkedLine(std::string_view text, std::initializer_list<const char*> labels) {
  size_t begin = 0;
  for (int line = 0; line < 60 && begin < text.size(); ++line) {
    size_t end = text.find('\n', begin);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view content = formats::TrimSpace(text.substr(begin, end - begin));
    const size_t colon = content.find(':');
    if (colon != std::string_view::npos && colon < 20) {
      const std::string label = formats::AsciiLower(formats::TrimSpace(content.substr(0, colon)));
      for (const char* wanted : labels) {
        if (label == wanted) return std::string(formats::TrimSpace(content.substr(colon + 1)));
      }
    }
    begin = end + 1;
  }
  return "";
}

// The text before its reference list, where the paper's own DOI is (the references
// cite other papers').
std::string_view BeforeReferences(std::string_view text) {
  size_t begin = 0;
  while (begin < text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string_view::npos) end = text.size();
    const std::string heading =
        formats::AsciiLower(formats::TrimSpace(text.substr(begin, end - begin)));
    if (heading == "references" || heading == "bibliography" || heading == "literature cited" ||
        heading == "references and notes") {
      return text.substr(0, begin);
    }
    begin = end + 1;
  }
  return text;
}

// A title that is really the file the PDF was made from ("Microsoft Word - x.docx").
bool IsJunkTitle(std::string_view title) {
  const std::string lower = formats::AsciiLower(formats::TrimSpace(title));
  if (lower.empty() || lower == "untitled" || lower.rfind("microsoft word - ", 0) == 0) return true;
  for (const char* ext : {".doc", ".docx", ".tex", ".dvi", ".pdf", ".indd", ".odt"}) {
    const std::string_view e(ext);
    if (lower.size() > e.size() && lower.compare(lower.size() - e.size(), e.size(), e) == 0) {
      return true;
    }
  }
  return false;
}

// What a PDF gives besides its text.
struct DocumentText {
  std::string text;
  std::string title;  // "" when none
  std::string date;   // YYYY-MM-DD, "" when none
  std::string doi;    // from the XMP metadata, "" when none
  int pages = 0;
  bool truncated = false;
  size_t text_bytes = 0;  // before truncation
};

Result<DocumentText> ExtractPdf(const std::string& bytes, size_t max_text_bytes) {
  if (bytes.size() > size_t(INT_MAX)) return Status::Unsupported("the PDF is larger than 2 GB");
  try {
    // load_from_raw_data reads `bytes` in place; they outlive `document`.
    std::unique_ptr<poppler::document> document(
        poppler::document::load_from_raw_data(bytes.data(), int(bytes.size())));
    if (!document) return Status::Corrupt("not a readable PDF (damaged, or not a PDF)");
    if (document->is_locked())
      return Status::Unsupported("the PDF is encrypted (needs a password)");
    DocumentText out;
    out.pages = document->pages();
    if (out.pages <= 0) return Status::Corrupt("the PDF has no pages");
    for (int i = 0; i < out.pages; ++i) {
      std::unique_ptr<poppler::page> page(document->create_page(i));
      if (!page) continue;
      const poppler::byte_array utf8 =
          page->text(poppler::rectf(), poppler::page::non_raw_non_physical_layout).to_utf8();
      out.text_bytes += utf8.size() + 1;
      if (out.truncated) continue;
      out.text.append(utf8.data(), utf8.size());
      out.text += '\n';
      if (out.text.size() > max_text_bytes) out.truncated = true;
    }
    out.text.erase(std::remove(out.text.begin(), out.text.end(), '\0'), out.text.end());
    if (formats::TrimSpace(out.text).empty()) {
      return Status::InvalidArgument("the PDF holds no text (a scan without OCR?)");
    }
    const poppler::byte_array title = document->get_title().to_utf8();
    out.title.assign(title.data(), title.size());
    const std::time_t created = document->get_creation_date_t();
    if (created > 0) {
      std::tm tm{};
      gmtime_r(&created, &tm);
      char buf[64];
      std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                    tm.tm_mday);
      out.date = buf;
    }
    const poppler::byte_array xmp = document->metadata().to_utf8();
    out.doi = FindDoi(std::string_view(xmp.data(), xmp.size()));
    return out;
  } catch (const std::exception& e) {
    return Status::Internal(std::string("poppler failed: ") + e.what());
  }
}

// A publication from the text of a .txt or .pdf file (see the header).
ParsedPublication PublicationFromText(const fs::path& file, DocumentText content,
                                      size_t max_text_bytes, const std::string& source) {
  ParsedPublication p;
  catalog::PublicationRecord& r = p.record;
  if (content.text_bytes == 0) content.text_bytes = content.text.size();
  if (content.text.size() > max_text_bytes) {
    content.text.resize(CutUtf8(content.text, max_text_bytes).size());
    content.truncated = true;
  }
  std::string doi = content.doi;
  if (doi.empty()) doi = FindDoi(BeforeReferences(content.text));
  if (doi.empty()) {
    // "10.1021_acs.nanolett.5b01234.pdf": a DOI with its '/' made file-name safe.
    std::string stem = file.stem().string();
    const size_t underscore = stem.find('_');
    if (underscore != std::string::npos) {
      stem[underscore] = '/';
      if (FindDoi(stem) == stem) doi = stem;
    }
  }
  p.keyed_by_doi = !doi.empty();
  r.doi = !doi.empty() ? doi : file.filename().string();
  if (!IsJunkTitle(content.title)) r.title = std::string(formats::TrimSpace(content.title));
  if (r.title.empty()) {
    size_t begin = 0;
    while (begin < content.text.size() && r.title.empty()) {
      size_t end = content.text.find('\n', begin);
      if (end == std::string::npos) end = content.text.size();
      r.title = formats::TrimSpace(std::string_view(content.text).substr(begin, end - begin));
      begin = end + 1;
    }
  }
  r.title = std::string(CutUtf8(r.title, kMaxTitleBytes));
  const std::string authors = MarkedLine(content.text, {"authors", "author", "by"});
  if (!authors.empty()) {
    // "A. One; B. Two", else "A. One, B. Two and C. Three".
    const bool semicolons = authors.find(';') != std::string::npos;
    std::string list = authors;
    for (size_t at; (at = list.find(" and ")) != std::string::npos;) list.replace(at, 5, ";");
    if (!semicolons) std::replace(list.begin(), list.end(), ',', ';');
    auto names = JsonTextList(ordered_json(list), "authors");
    if (names.ok()) r.authors = *names;
  }
  r.date = content.date;
  if (r.date.empty()) {
    const std::string marked = MarkedLine(content.text, {"date", "published", "publication date"});
    if (auto date = NormaliseDate(ordered_json(marked), "date"); date.ok()) r.date = *date;
  }
  r.abstract = std::move(content.text);
  p.extras["source"] = source;
  p.extras["file"] = file.string();
  if (content.pages > 0) p.extras["pages"] = content.pages;
  p.extras["text_truncated"] = content.truncated;
  if (content.truncated) p.extras["text_bytes"] = content.text_bytes;
  if (!content.title.empty() && r.title != content.title) p.extras["pdf_title"] = content.title;
  return p;
}

// --- Files --------------------------------------------------------------------

Result<std::string> ReadWholeFile(const fs::path& path) {
  std::error_code error;
  const uintmax_t size = fs::file_size(path, error);
  if (error) return Status::IoError("cannot read: " + error.message());
  if (size > kMaxFileBytes) {
    return Status::Unsupported("the file is " + std::to_string(size >> 20) +
                               " MB, more than a context file may hold (512 MB)");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IoError("cannot open for reading");
  std::string bytes(size, '\0');
  in.read(bytes.data(), std::streamsize(size));
  bytes.resize(size_t(in.gcount()));
  if (in.bad()) return Status::IoError("read failed");
  return bytes;
}

std::string FormatOf(const fs::path& path) {
  const std::string ext = formats::AsciiLower(path.extension().string());
  if (ext == ".csv" || ext == ".tsv") return "csv";
  if (ext == ".json") return "json";
  if (ext == ".jsonl" || ext == ".ndjson") return "jsonl";
  if (ext == ".txt") return "txt";
  if (ext == ".pdf") return "pdf";
  return "";
}

// The kind a folder's name says its files are ("" when it says nothing).
std::string KindOfFolder(const std::string& name) {
  const std::string n = NormaliseHeader(name);
  if (n == "logs" || n == "log" || n == "user logs" || n == "bookings" || n == "sessions") {
    return "log";
  }
  if (n == "proposals" || n == "proposal") return "proposal";
  if (n == "publications" || n == "publication" || n == "papers" || n == "pubs") {
    return "publication";
  }
  return "";
}

// The kind of a JSON record judged by its fields ("" when they do not tell).
std::string KindOfRecord(const ordered_json& record, const LogConfig& config) {
  if (!record.is_object()) return "";
  std::vector<std::string> keys;
  for (const auto& item : record.items()) keys.push_back(LowerKey(item.key()));
  auto has = [&](std::initializer_list<const char*> names) {
    for (const char* name : names) {
      if (std::find(keys.begin(), keys.end(), name) != keys.end()) return true;
    }
    return false;
  };
  if (has({"doi", "authors", "author"})) return "publication";
  Result<ColumnMap> map = MapColumns(keys, config, false);
  if (map.ok() && (map->field_column[kStart] >= 0 || map->field_column[kEnd] >= 0)) return "log";
  if (has({"pi", "team", "release_date", "abstract", "start_date", "end_date"})) return "proposal";
  return "";
}

class Loader {
 public:
  Loader(catalog::Catalog& catalog, const LoadOptions& options, const LoadErrorSink& sink)
      : catalog_(catalog), options_(options), sink_(sink) {}

  // Loads one file as `kind` ("auto": decided by folder and content). False after a
  // catalog failure (see fatal()).
  bool LoadFile(const fs::path& file, const std::string& kind, bool named_explicitly);
  // Writes the sessions and people gathered; false after a catalog failure.
  bool Finish();
  const Status& fatal() const { return fatal_; }
  const LoadSummary& summary() const { return summary_; }

 private:
  void Fail(const fs::path& file, int64_t line, const std::string& reason) {
    ++summary_.failed;
    if (sink_) sink_(LoadError{file, line, reason, false});
  }
  // Reports a failed write: the record's own fault (kInvalidArgument) is reported and
  // counted; anything else stops the load. Returns whether to go on.
  bool Written(const Status& status, const fs::path& file, int64_t line) {
    if (status.ok()) return true;
    if (status.code() == ErrorCode::kInvalidArgument) {
      Fail(file, line, status.message());
      return true;
    }
    fatal_ = status.WithContext(file.string() + (line > 0 ? ":" + std::to_string(line) : ""));
    return false;
  }
  // Adds `extras` to the fields of document `id` (written just now by the catalog),
  // and clears its DOI when `clear_doi`.
  Status AmendDocument(const std::string& id, const ordered_json& extras, bool clear_doi);
  void AddPeople(std::vector<catalog::PersonRecord> people);

  void LoadCsvLog(const fs::path& file, const std::string& text);
  bool LoadJson(const fs::path& file, const std::string& text, bool lines_only,
                const std::string& kind);
  bool LoadProposal(const fs::path& file, int64_t line, const ordered_json& record);
  bool WritePublication(const fs::path& file, int64_t line, ParsedPublication p);
  bool LoadTextPublication(const fs::path& file, const std::string& bytes, bool pdf);

  catalog::Catalog& catalog_;
  const LoadOptions& options_;
  const LoadErrorSink& sink_;
  LoadSummary summary_;
  Status fatal_;
  std::vector<PendingSession> sessions_;
  std::map<std::string, catalog::PersonRecord> people_;
};

Status Loader::AmendDocument(const std::string& id, const ordered_json& extras, bool clear_doi) {
  if (extras.empty() && !clear_doi) return Status::Ok();
  SCISEARCH_ASSIGN_OR_RETURN(catalog::DocumentRecord document, catalog_.GetDocument(id));
  ordered_json fields = ordered_json::parse(document.fields_json, nullptr, false);
  if (fields.is_discarded() || !fields.is_object()) fields = ordered_json::object();
  for (const auto& [key, value] : extras.items()) {
    if (!fields.contains(key)) fields[key] = value;
  }
  document.fields_json = fields.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
  if (clear_doi) document.doi.clear();
  return catalog_.PutDocument(document);
}

void Loader::AddPeople(std::vector<catalog::PersonRecord> people) {
  for (catalog::PersonRecord& person : people) {
    catalog::PersonRecord& known = people_[person.id];
    known.id = person.id;
    if (!person.name.empty()) known.name = std::move(person.name);
    if (!person.institution.empty()) known.institution = std::move(person.institution);
  }
}

void Loader::LoadCsvLog(const fs::path& file, const std::string& text) {
  const LogConfig& config = options_.log;
  const char delimiter = config.delimiter ? config.delimiter : SniffDelimiter(text);
  CsvTable table = ParseCsv(text, delimiter);
  for (const auto& [line, reason] : table.errors) Fail(file, line, reason);
  if (table.rows.empty()) {
    if (table.errors.empty()) Fail(file, 0, "empty file");
    return;
  }
  std::vector<std::string> headers;
  size_t first_data = 0;
  if (config.header) {
    headers = table.rows[0].cells;
    first_data = 1;
  }
  Result<ColumnMap> map = MapColumns(headers, config, !config.header);
  if (!map.ok()) {
    Fail(file, 0, map.status().message());
    return;
  }
  if (config.header) {
    for (const auto& [field, column] : config.columns) {
      if (map->field_column[LogFieldIndex(field)] < 0) {
        Fail(file, table.rows[0].line,
             "log config: column '" + column + "' (" + field + ") is not in the header");
        return;
      }
    }
    if (map->field_column[kStart] < 0 || map->field_column[kEnd] < 0) {
      std::string names;
      for (const std::string& h : headers) names += (names.empty() ? "" : ", ") + h;
      Fail(file, table.rows[0].line,
           std::string("no ") + (map->field_column[kStart] < 0 ? "start" : "end") +
               " column in the header (" + std::string(CutUtf8(names, 200)) +
               "): name it in the log config, e.g. {\"columns\": {\"start\": \"Begin\"}}");
      return;
    }
  } else if (map->field_column[kStart] < 0 || map->field_column[kEnd] < 0) {
    Fail(file, 0, "log config: a log without header needs the positions of start and end");
    return;
  }
  std::vector<LogRow> rows;
  for (size_t i = first_data; i < table.rows.size(); ++i) {
    const CsvRow& csv = table.rows[i];
    if (std::all_of(csv.cells.begin(), csv.cells.end(),
                    [](const std::string& c) { return formats::TrimSpace(c).empty(); })) {
      continue;
    }
    if (config.header && csv.cells.size() > headers.size() &&
        std::any_of(csv.cells.begin() + headers.size(), csv.cells.end(),
                    [](const std::string& c) { return !formats::TrimSpace(c).empty(); })) {
      Fail(file, csv.line,
           std::to_string(csv.cells.size()) + " fields where the header has " +
               std::to_string(headers.size()) + " (a delimiter in an unquoted field?)");
      continue;
    }
    LogRow row;
    row.line = csv.line;
    for (int f = 0; f < kLogFieldCount; ++f) {
      const int c = map->field_column[f];
      if (c >= 0 && size_t(c) < csv.cells.size()) {
        row.value[f] = formats::TrimSpace(csv.cells[c]);
      }
    }
    for (int c : map->extra_columns) {
      if (size_t(c) >= csv.cells.size() || formats::TrimSpace(csv.cells[c]).empty()) continue;
      const std::string name = formats::TrimSpace(headers[c]).empty()
                                   ? "column " + std::to_string(c + 1)
                                   : std::string(formats::TrimSpace(headers[c]));
      row.extras[name] = csv.cells[c];
    }
    rows.push_back(std::move(row));
  }
  RowsToSessions(file, rows, config, sessions_,
                 [&](int64_t line, const std::string& reason) { Fail(file, line, reason); });
}

bool Loader::LoadJson(const fs::path& file, const std::string& text, bool lines_only,
                      const std::string& kind) {
  std::string file_error;
  std::vector<JsonRecord> records = ReadJsonRecords(text, lines_only, file_error);
  if (!file_error.empty()) Fail(file, 0, file_error);
  auto kind_of = [&](const ordered_json& record) -> std::string {
    if (const auto it = record.find("kind");
        it != record.end() && it->is_string() && IsDocumentKind(it->get<std::string>())) {
      return it->get<std::string>();
    }
    return kind == "auto" ? KindOfRecord(record, options_.log) : kind;
  };
  if (kind == "auto") {
    // A file none of whose records says what it is (some other program's JSON) is
    // one error, not one a record.
    const bool any_known = std::any_of(records.begin(), records.end(), [&](const JsonRecord& r) {
      return !r.error.empty() || !r.value.is_object() || !kind_of(r.value).empty();
    });
    if (!any_known && !records.empty()) {
      Fail(file, 0,
           "cannot tell whether its records are log entries, proposals or publications: "
           "give their kind");
      return true;
    }
  }
  std::vector<LogRow> log_rows;
  for (JsonRecord& record : records) {
    if (!record.error.empty()) {
      Fail(file, record.line, record.error);
      continue;
    }
    if (!record.value.is_object()) {
      Fail(file, record.line,
           std::string("a JSON ") + record.value.type_name() + ", not an object");
      continue;
    }
    const std::string record_kind = kind_of(record.value);
    if (record_kind == "proposal") {
      if (!LoadProposal(file, record.line, record.value)) return false;
    } else if (record_kind == "publication") {
      Result<ParsedPublication> p = PublicationFromJson(record.value);
      if (!p.ok()) {
        Fail(file, record.line, p.status().message());
      } else if (!WritePublication(file, record.line, std::move(*p))) {
        return false;
      }
    } else if (record_kind == "log") {
      std::vector<std::string> keys;
      std::vector<const ordered_json*> values;
      for (const auto& [key, value] : record.value.items()) {
        if (key == "kind") continue;
        keys.push_back(key);
        values.push_back(&value);
      }
      Result<ColumnMap> map = MapColumns(keys, options_.log, false);
      if (!map.ok()) {
        Fail(file, record.line, map.status().message());
        continue;
      }
      if (map->field_column[kStart] < 0 && map->field_column[kEnd] < 0) {
        // No booking: a log entry of text only.
        Result<catalog::DocumentRecord> document = DocumentFromJson(record.value, "log");
        if (!document.ok()) {
          Fail(file, record.line, document.status().message());
          continue;
        }
        const Status written = catalog_.PutDocument(*document);
        if (!Written(written, file, record.line)) return false;
        if (written.ok()) ++summary_.documents;
        continue;
      }
      LogRow row;
      row.line = record.line;
      bool ok = true;
      for (int f = 0; f < kLogFieldCount && ok; ++f) {
        const int c = map->field_column[f];
        if (c < 0) continue;
        Result<std::string> value = JsonText(*values[c], keys[c]);
        if (!value.ok()) {
          Fail(file, record.line, value.status().message());
          ok = false;
        } else {
          row.value[f] = formats::TrimSpace(*value);
        }
      }
      if (!ok) continue;
      for (int c : map->extra_columns) row.extras[keys[c]] = *values[c];
      log_rows.push_back(std::move(row));
    } else {
      Fail(file, record.line,
           "cannot tell whether this record is a log entry, a proposal or a publication: "
           "give its kind");
    }
  }
  RowsToSessions(file, log_rows, options_.log, sessions_,
                 [&](int64_t line, const std::string& reason) { Fail(file, line, reason); });
  return true;
}

bool Loader::LoadProposal(const fs::path& file, int64_t line, const ordered_json& record) {
  Result<ParsedProposal> p = ProposalFromJson(record);
  if (!p.ok()) {
    Fail(file, line, p.status().message());
    return true;
  }
  Status written = catalog_.PutProposal(p->record);
  if (written.ok()) written = AmendDocument(p->record.id, p->extras, false);
  if (!Written(written, file, line)) return false;
  if (written.ok()) {
    ++summary_.proposals;
    AddPeople(std::move(p->people));
  }
  return true;
}

bool Loader::WritePublication(const fs::path& file, int64_t line, ParsedPublication p) {
  Status written = catalog_.PutPublication(p.record);
  if (written.ok()) written = AmendDocument(p.record.doi, p.extras, !p.keyed_by_doi);
  if (!Written(written, file, line)) return false;
  if (written.ok()) {
    ++summary_.publications;
    AddPeople(std::move(p.people));
  }
  return true;
}

bool Loader::LoadTextPublication(const fs::path& file, const std::string& bytes, bool pdf) {
  DocumentText content;
  if (pdf) {
    Result<DocumentText> extracted = ExtractPdf(bytes, options_.max_text_bytes);
    if (!extracted.ok()) {
      Fail(file, 0, extracted.status().message());
      return true;
    }
    content = std::move(*extracted);
  } else {
    content.text = DecodeText(bytes);
    if (formats::TrimSpace(content.text).empty()) {
      Fail(file, 0, "empty file");
      return true;
    }
  }
  return WritePublication(
      file, 0,
      PublicationFromText(file, std::move(content), options_.max_text_bytes, pdf ? "pdf" : "txt"));
}

bool Loader::LoadFile(const fs::path& file, const std::string& kind, bool named_explicitly) {
  const std::string format = !options_.format.empty() ? options_.format : FormatOf(file);
  if (format.empty()) {
    if (named_explicitly) {
      Fail(file, 0,
           "no loader reads '" + file.extension().string() +
               "' files (.csv .json .jsonl .txt .pdf)");
    } else {
      ++summary_.files_skipped;
      if (sink_) sink_(LoadError{file, 0, "skipped: not .csv .json .jsonl .txt .pdf", true});
    }
    return true;
  }
  std::string file_kind = kind;
  if (file_kind == "auto") {
    for (fs::path dir = file.parent_path(); !dir.empty() && file_kind == "auto";
         dir = dir.parent_path()) {
      const std::string k = KindOfFolder(dir.filename().string());
      if (!k.empty()) file_kind = k;
      if (dir == dir.parent_path()) break;
    }
    if (file_kind == "auto" && format == "csv") file_kind = "log";
    if (file_kind == "auto" && (format == "txt" || format == "pdf")) file_kind = "publication";
  }
  if (format == "csv" && file_kind != "log") {
    Fail(file, 0, "a CSV file is read as a user log, not as " + file_kind + "s");
    return true;
  }
  if ((format == "txt" || format == "pdf") && file_kind != "publication") {
    Fail(file, 0, "a ." + format + " file is read as a publication, not as a " + file_kind);
    return true;
  }
  Result<std::string> bytes = ReadWholeFile(file);
  if (!bytes.ok()) {
    Fail(file, 0, bytes.status().message());
    return true;
  }
  ++summary_.files;
  if (format == "pdf") return LoadTextPublication(file, *bytes, true);
  if (format == "txt") return LoadTextPublication(file, *bytes, false);
  const std::string text = DecodeText(*bytes);
  if (format == "csv") {
    LoadCsvLog(file, text);
    return true;
  }
  return LoadJson(file, text, format == "jsonl", file_kind);
}

bool Loader::Finish() {
  NumberSessions(sessions_);
  std::unordered_map<std::string, std::pair<fs::path, int64_t>> seen;
  for (PendingSession& s : sessions_) {
    const auto [it, fresh] = seen.try_emplace(s.record.id, s.file, s.line);
    if (!fresh) {
      Fail(s.file, s.line,
           "session id '" + s.record.id + "' is used already (" + it->second.first.string() + ":" +
               std::to_string(it->second.second) + ")");
      continue;
    }
    Status written = catalog_.PutSession(s.record);
    if (written.ok()) written = AmendDocument(s.record.id, s.extras, false);
    if (!Written(written, s.file, s.line)) return false;
    if (written.ok()) ++summary_.sessions;
  }
  sessions_.clear();
  if (!people_.empty()) {
    Result<std::vector<catalog::PersonRecord>> known = catalog_.ListPeople();
    if (!known.ok()) {
      fatal_ = known.status();
      return false;
    }
    std::unordered_map<std::string, const catalog::PersonRecord*> by_id;
    for (const catalog::PersonRecord& p : *known) by_id[p.id] = &p;
    for (auto& [id, person] : people_) {
      const auto it = by_id.find(id);
      if (it != by_id.end()) {
        // What the catalog knows stays unless this load says something new.
        const catalog::PersonRecord& old = *it->second;
        if (person.name.empty()) person.name = old.name;
        if (person.institution.empty()) person.institution = old.institution;
        if (person.name == old.name && person.institution == old.institution) continue;
      }
      const Status written = catalog_.PutPerson(person);
      if (!written.ok()) {
        fatal_ = written;
        return false;
      }
      ++summary_.people;
    }
  }
  summary_.loaded =
      summary_.sessions + summary_.proposals + summary_.publications + summary_.documents;
  return true;
}

}  // namespace

// --- Public -------------------------------------------------------------------

const std::vector<std::pair<std::string, std::vector<std::string>>>& LogColumnAliases() {
  // Order matches LogField; within a field, the preferred spelling first (so that
  // "start time" is the start and "start date" the day when a log has both).
  static const auto* const kAliases =
      new std::vector<std::pair<std::string, std::vector<std::string>>>{
          {"id", {"id", "session id", "session", "booking id", "booking", "reservation id"}},
          {"instrument",
           {"instrument", "microscope", "tool", "instrument name", "system", "resource"}},
          {"user", {"user", "username", "user name", "operator", "login", "user id", "booked by"}},
          {"pi", {"pi", "principal investigator", "group", "pi name", "group leader"}},
          {"proposal", {"proposal", "proposal id", "project", "project id", "proposal number"}},
          {"start",
           {"start", "start time", "start datetime", "begin", "begin time", "from", "starts",
            "start date"}},
          {"end",
           {"end", "end time", "end datetime", "stop", "stop time", "to", "ends", "finish",
            "end date"}},
          {"date", {"date", "day", "booking date", "start date"}},
          {"end_date", {"end date", "stop date"}},
          {"notes", {"notes", "note", "comment", "comments", "remarks", "description"}},
      };
  return *kAliases;
}

Result<LogConfig> ParseLogConfig(std::string_view json_text) {
  ordered_json object;
  try {
    object = ordered_json::parse(json_text);
  } catch (const ordered_json::exception& e) {
    return Status::InvalidArgument(std::string("log config: not JSON: ") + e.what());
  }
  if (!object.is_object()) return Status::InvalidArgument("log config: not a JSON object");
  LogConfig config;
  for (const auto& item : object.items()) {
    // Named references, not structured bindings: clang 14 cannot capture those.
    const std::string& key = item.key();
    const ordered_json& value = item.value();
    auto text = [&]() -> Result<std::string> {
      if (!value.is_string()) {
        return Status::InvalidArgument("log config: \"" + key + "\" is not a string");
      }
      return value.get<std::string>();
    };
    if (key == "columns") {
      if (!value.is_object()) {
        return Status::InvalidArgument("log config: \"columns\" is not an object");
      }
      for (const auto& [field, column] : value.items()) {
        if (LogFieldIndex(field) < 0) {
          return Status::InvalidArgument("log config: \"columns\" names an unknown field '" +
                                         field +
                                         "' (id instrument user pi proposal start end date "
                                         "end_date notes)");
        }
        if (column.is_number_unsigned()) {
          config.columns[field] = column.dump();
        } else if (column.is_string()) {
          config.columns[field] = column.get<std::string>();
        } else {
          return Status::InvalidArgument("log config: column of '" + field +
                                         "' is not a header name or a position");
        }
      }
    } else if (key == "instrument") {
      SCISEARCH_ASSIGN_OR_RETURN(config.instrument, text());
    } else if (key == "time_format") {
      SCISEARCH_ASSIGN_OR_RETURN(config.time_format, text());
    } else if (key == "day_first") {
      if (!value.is_boolean()) {
        return Status::InvalidArgument("log config: \"day_first\" is not true or false");
      }
      config.day_first = value.get<bool>();
    } else if (key == "header") {
      if (!value.is_boolean()) {
        return Status::InvalidArgument("log config: \"header\" is not true or false");
      }
      config.header = value.get<bool>();
    } else if (key == "delimiter") {
      SCISEARCH_ASSIGN_OR_RETURN(std::string d, text());
      if (d == "\\t" || d == "tab") d = "\t";
      if (d.size() != 1 || d[0] == '"' || d[0] == '\n' || d[0] == '\r') {
        return Status::InvalidArgument("log config: \"delimiter\" is not one character");
      }
      config.delimiter = d[0];
    } else {
      return Status::InvalidArgument("log config: unknown key \"" + key + "\"");
    }
  }
  return config;
}

Result<LogConfig> ReadLogConfig(const fs::path& path) {
  Result<std::string> bytes = ReadWholeFile(path);
  if (!bytes.ok()) return bytes.status().WithContext(path.string());
  Result<LogConfig> config = ParseLogConfig(DecodeText(*bytes));
  if (!config.ok()) return config.status().WithContext(path.string());
  return config;
}

std::string DecodeText(std::string_view bytes) {
  auto starts = [&](std::string_view prefix) { return bytes.substr(0, prefix.size()) == prefix; };
  if (starts("\xEF\xBB\xBF")) bytes.remove_prefix(3);
  if (starts("\xFF\xFE")) return DecodeUtf16(bytes.substr(2), true);
  if (starts("\xFE\xFF")) return DecodeUtf16(bytes.substr(2), false);
  // UTF-16 without BOM: ASCII text with every other byte NUL.
  if (bytes.size() >= 4 && bytes[0] != 0 && bytes[1] == 0 && bytes[2] != 0 && bytes[3] == 0) {
    return DecodeUtf16(bytes, true);
  }
  if (bytes.size() >= 4 && bytes[0] == 0 && bytes[1] != 0 && bytes[2] == 0 && bytes[3] != 0) {
    return DecodeUtf16(bytes, false);
  }
  std::string text;
  text.reserve(bytes.size());
  for (char c : bytes) {
    if (c != '\0') text += c;  // NUL is never text; it would cut C strings short
  }
  if (formats::IsValidUtf8(text)) return text;
  // Line by line, so that a file mostly UTF-8 keeps it where it is valid.
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  for (size_t begin = 0; begin < text.size();) {
    size_t end = text.find('\n', begin);
    end = end == std::string::npos ? text.size() : end + 1;
    out += formats::ToUtf8Lossless(std::string_view(text).substr(begin, end - begin));
    begin = end;
  }
  return out;
}

char SniffDelimiter(std::string_view text) {
  std::array<std::pair<char, int>, 4> counts = {{{',', 0}, {';', 0}, {'\t', 0}, {'|', 0}}};
  bool quoted = false;
  for (char c : text) {
    if (c == '"') quoted = !quoted;
    if (!quoted && (c == '\n' || c == '\r')) break;
    if (quoted) continue;
    for (auto& [d, n] : counts) n += c == d;
  }
  char best = ',';
  int most = 0;
  for (const auto& [d, n] : counts) {
    if (n > most) {
      best = d;
      most = n;
    }
  }
  return best;
}

CsvTable ParseCsv(std::string_view text, char delimiter) {
  CsvTable table;
  size_t pos = 0;
  int64_t line = 1;
  size_t recoveries = 0;
  const size_t n = text.size();
  auto at_line_end = [&](size_t i) { return i >= n || text[i] == '\n' || text[i] == '\r'; };
  auto skip_line_end = [&](size_t& i) {
    if (i < n && text[i] == '\r') ++i;
    if (i < n && text[i] == '\n') ++i;
    ++line;
  };
  while (pos < n) {
    const size_t row_begin = pos;
    const int64_t row_line = line;
    CsvRow row;
    row.line = row_line;
    bool broken = false;
    while (true) {
      std::string field;
      if (pos < n && text[pos] == '"') {
        ++pos;
        bool closed = false;
        while (pos < n) {
          const char c = text[pos];
          if (c == '"') {
            if (pos + 1 < n && text[pos + 1] == '"') {
              field += '"';
              pos += 2;
              continue;
            }
            ++pos;
            closed = true;
            break;
          }
          if (c == '\r' || c == '\n') {
            if (c == '\r' && pos + 1 < n && text[pos + 1] == '\n') ++pos;
            field += '\n';
            ++line;
            ++pos;
            continue;
          }
          field += c;
          ++pos;
        }
        if (!closed) {
          broken = true;
          break;
        }
      }
      // Unquoted text, or what follows a closing quote (kept as it is, leniently).
      while (pos < n && text[pos] != delimiter && !at_line_end(pos)) field += text[pos++];
      row.cells.push_back(std::move(field));
      if (pos < n && text[pos] == delimiter) {
        ++pos;
        continue;
      }
      skip_line_end(pos);
      break;
    }
    if (broken) {
      table.errors.push_back({row_line, "a quote opened on line " + std::to_string(row_line) +
                                            " is never closed; the row is skipped"});
      if (++recoveries > kMaxCsvRecoveries) {
        table.errors.push_back({row_line, "too many unclosed quotes; the rest is not read"});
        break;
      }
      // Read the lines after the damaged row's first line again, as rows of their own.
      pos = row_begin;
      while (!at_line_end(pos)) ++pos;
      line = row_line;
      skip_line_end(pos);
      continue;
    }
    if (row.cells.size() == 1 && formats::TrimSpace(row.cells[0]).empty()) continue;
    table.rows.push_back(std::move(row));
  }
  return table;
}

bool LogDatesAreDayFirst(const std::vector<std::string_view>& values) {
  for (std::string_view value : values) {
    value = formats::TrimSpace(value);
    size_t i = 0;
    int first = 0;
    while (i < value.size() && i < 3 && std::isdigit(static_cast<unsigned char>(value[i]))) {
      first = first * 10 + (value[i++] - '0');
    }
    if (i == 0 || i > 2 || i >= value.size()) continue;
    const char separator = value[i];
    if (separator != '/' && separator != '-' && separator != '.') continue;
    size_t j = i + 1;
    while (j < value.size() && std::isdigit(static_cast<unsigned char>(value[j]))) ++j;
    if (j == i + 1 || j - i - 1 > 2 || j >= value.size() || value[j] != separator) continue;
    if (first > 12 && first <= 31) return true;
  }
  return false;
}

std::optional<std::string> ParseLogTime(std::string_view text, bool day_first,
                                        const std::string& time_format) {
  text = formats::TrimSpace(text);
  if (text.empty() || text.size() > 200) return std::nullopt;
  if (!time_format.empty()) {
    std::tm tm{};
    tm.tm_mday = 1;
    const std::string copy(text);
    const char* end = strptime(copy.c_str(), time_format.c_str(), &tm);
    if (end == nullptr || !formats::TrimSpace(end).empty()) return std::nullopt;
    const int year = tm.tm_year + 1900;
    if (year < 1900 || year > 2200) return std::nullopt;
    bool has_time = false;
    for (size_t i = 0; i + 1 < time_format.size(); ++i) {
      if (time_format[i] == '%' &&
          std::string_view("HIRTklcrs").find(time_format[i + 1]) != std::string_view::npos) {
        has_time = true;
      }
    }
    char buf[64];
    if (has_time) {
      std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d", year, tm.tm_mon + 1,
                    tm.tm_mday, tm.tm_hour, tm.tm_min, std::min(tm.tm_sec, 59));
    } else {
      std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", year, tm.tm_mon + 1, tm.tm_mday);
    }
    return std::string(buf);
  }
  std::optional<std::string> iso = formats::ParseDateTime(text, day_first);
  if (!iso) return std::nullopt;
  if (iso->size() >= 19 && (*iso)[10] == 'T') return iso->substr(0, 19);  // zone dropped
  if (iso->size() == 10) return iso;
  return std::nullopt;
}

std::string FindDoi(std::string_view text) {
  for (size_t at = text.find("10."); at != std::string_view::npos; at = text.find("10.", at + 1)) {
    if (at > 0 && std::isalnum(static_cast<unsigned char>(text[at - 1]))) continue;
    size_t i = at + 3;
    const size_t registrant = i;
    while (i < text.size() &&
           (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) {
      ++i;
    }
    if (i - registrant < 4 || i - registrant > 20 || i >= text.size() || text[i] != '/') continue;
    const size_t suffix = ++i;
    while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i])) &&
           std::string_view("\"<>{}|\\^`").find(text[i]) == std::string_view::npos) {
      ++i;
    }
    std::string doi(text.substr(at, i - at));
    // Trailing punctuation belongs to the sentence, and a ')' to the text unless the
    // DOI opened it ("10.1016/0022-3697(69)90099-0").
    while (!doi.empty()) {
      const char last = doi.back();
      if (std::string_view(".,;:'").find(last) != std::string_view::npos ||
          ((last == ')' || last == ']') &&
           std::count(doi.begin(), doi.end(), last == ')' ? '(' : '[') <
               std::count(doi.begin(), doi.end(), last))) {
        doi.pop_back();
      } else {
        break;
      }
    }
    if (doi.size() > suffix - at) return doi;
  }
  return "";
}

Result<LoadSummary> LoadContextPaths(catalog::Catalog& catalog, const std::vector<fs::path>& paths,
                                     const std::string& kind, const LoadOptions& options,
                                     const LoadErrorSink& on_error) {
  if (!IsDocumentKind(kind) && kind != "auto") {
    return Status::InvalidArgument("kind '" + kind +
                                   "' is not one of log, proposal, publication, auto");
  }
  if (!options.format.empty() && options.format != "csv" && options.format != "json" &&
      options.format != "jsonl" && options.format != "txt" && options.format != "pdf") {
    return Status::InvalidArgument("format '" + options.format +
                                   "' is not one of csv, json, jsonl, txt, pdf");
  }
  Loader loader(catalog, options, on_error);
  for (const fs::path& path : paths) {
    std::error_code error;
    const fs::file_status status = fs::status(path, error);
    if (error || !fs::exists(status)) return Status::NotFound(path.string() + ": no such file");
    if (!fs::is_directory(status)) {
      if (!loader.LoadFile(path, kind, true)) return loader.fatal();
      continue;
    }
    std::vector<fs::path> files;
    fs::recursive_directory_iterator it(path, fs::directory_options::skip_permission_denied, error);
    if (error) return Status::IoError(path.string() + ": cannot list: " + error.message());
    for (; it != fs::recursive_directory_iterator(); it.increment(error)) {
      if (error) break;
      const std::string name = it->path().filename().string();
      if (!name.empty() && name[0] == '.') {
        if (it->is_directory(error)) it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file(error)) files.push_back(it->path());
    }
    if (error) return Status::IoError(path.string() + ": cannot list: " + error.message());
    std::sort(files.begin(), files.end());
    for (const fs::path& file : files) {
      if (!loader.LoadFile(file, kind, false)) return loader.fatal();
    }
  }
  if (!loader.Finish()) return loader.fatal();
  return loader.summary();
}

Result<LoadSummary> LoadContextPath(catalog::Catalog& catalog, const fs::path& path,
                                    const std::string& kind, const LoadOptions& options,
                                    const LoadErrorSink& on_error) {
  return LoadContextPaths(catalog, {path}, kind, options, on_error);
}

}  // namespace scisearch::context
