// The JSON API v1 (docs/api.md): request parsing and validation, and the
// translation of catalog and search results into the API's JSON.
#include <spdlog/spdlog.h>
#include <time.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string_view>

#include "formats/formats.h"
#include "formats/text.h"
#include "nlp/vocabulary.h"
#include "server/internal.h"

#ifndef SCISEARCH_VERSION
#define SCISEARCH_VERSION "unknown"
#endif

namespace scisearch::server::internal {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;
using httplib::Request;
using httplib::Response;

constexpr size_t kMaxQueryBytes = 2000;
constexpr size_t kMaxFilterValueBytes = 200;
constexpr size_t kMaxItemBytes = 500;
constexpr int64_t kMaxPageSize = 100;
constexpr int64_t kMaxOffset = 100000;
constexpr int64_t kSimilarItems = 6;

// --- Statuses and errors ------------------------------------------------------

// Sends `status` (not OK) as the matching HTTP error. Errors of the server's own
// making (I/O, corruption, bugs) are logged and answered without their details.
void SendStatus(Response& res, const Status& status) {
  switch (status.code()) {
    case ErrorCode::kInvalidArgument:
      return SendError(res, 400, status.message());
    case ErrorCode::kNotFound:
      return SendError(res, 404, status.message());
    default:
      spdlog::error("request failed: {}", status.message());
      return SendError(res, 500, "the server could not complete the request (see its log)");
  }
}

// Names who made a request: 1-64 characters of [A-Za-z0-9._@-].
bool ValidUser(std::string_view user) {
  if (user.empty() || user.size() > 64) return false;
  return std::all_of(user.begin(), user.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '@' || c == '-';
  });
}
constexpr const char* kUserRule = "1-64 characters of A-Z a-z 0-9 . _ @ -";

// A catalog id from a route's digits (the route allows 1-18 of them).
int64_t RouteId(const Request& req, size_t group = 1) {
  return std::stoll(req.matches[group].str());
}

// The integer query parameter `name` (`fallback` when absent), within [min, max].
Result<int64_t> IntParam(const Request& req, const char* name, int64_t fallback, int64_t min,
                         int64_t max) {
  if (!req.has_param(name)) return fallback;
  const std::string text = req.get_param_value(name);
  int64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end) {
    return Status::InvalidArgument(std::string(name) + ": '" +
                                   formats::EscapeNonPrintableAscii(text.substr(0, 40)) +
                                   "' is not an integer");
  }
  if (value < min || value > max) {
    return Status::InvalidArgument(std::string(name) + ": " + std::to_string(value) +
                                   " is outside " + std::to_string(min) + ".." +
                                   std::to_string(max));
  }
  return value;
}

// The optional ?user= of a read; "" when absent.
Result<std::string> OptionalUserParam(const Request& req) {
  if (!req.has_param("user")) return std::string();
  std::string user = req.get_param_value("user");
  if (!ValidUser(user)) return Status::InvalidArgument(std::string("user: must be ") + kUserRule);
  return user;
}

// The JSON object of a request body. The body must be declared JSON (a browser
// cannot send that across sites without asking first, so no other site's page can
// change tags); `plain_text_too` also accepts text/plain (navigator.sendBeacon).
Result<json> JsonBody(const Request& req, bool plain_text_too = false) {
  const std::string type = formats::AsciiLower(req.get_header_value("Content-Type"));
  const bool is_json = type.rfind("application/json", 0) == 0;
  const bool is_text = type.rfind("text/plain", 0) == 0;
  if (!is_json && !(plain_text_too && is_text)) {
    return Status::Error(ErrorCode::kUnsupported,
                         "Content-Type must be application/json, not '" +
                             formats::EscapeNonPrintableAscii(type.substr(0, 60)) + "'");
  }
  json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) return Status::InvalidArgument("request body is not valid JSON");
  if (!body.is_object()) return Status::InvalidArgument("request body must be a JSON object");
  return body;
}

// Field `name` of `body`: a string of 1 to `max_bytes` bytes of valid UTF-8.
Result<std::string> StringField(const json& body, const char* name, size_t max_bytes) {
  auto it = body.find(name);
  if (it == body.end())
    return Status::InvalidArgument(std::string("field '") + name + "' is missing");
  if (!it->is_string()) {
    return Status::InvalidArgument(std::string("field '") + name + "' must be a string, not " +
                                   it->type_name());
  }
  std::string value = it->get<std::string>();
  if (value.empty()) return Status::InvalidArgument(std::string("field '") + name + "' is empty");
  if (value.size() > max_bytes) {
    return Status::InvalidArgument(std::string("field '") + name + "' is longer than " +
                                   std::to_string(max_bytes) + " bytes");
  }
  if (!formats::IsValidUtf8(value)) {
    return Status::InvalidArgument(std::string("field '") + name + "' is not valid UTF-8");
  }
  return value;
}

// Field `name` of `body`: an integer (a JSON number without a fraction).
Result<int64_t> IntField(const json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end())
    return Status::InvalidArgument(std::string("field '") + name + "' is missing");
  if (!it->is_number_integer()) {
    return Status::InvalidArgument(std::string("field '") + name + "' must be an integer, not " +
                                   it->type_name());
  }
  return it->get<int64_t>();
}

// The "user" field of a write's body.
Result<std::string> UserField(const json& body) {
  SCISEARCH_ASSIGN_OR_RETURN(std::string user, StringField(body, "user", 64));
  if (!ValidUser(user))
    return Status::InvalidArgument(std::string("field 'user' must be ") + kUserRule);
  return user;
}

// Sends a body-parsing failure: 415 for the wrong Content-Type, else as SendStatus.
void SendBodyError(Response& res, const Status& status) {
  if (status.code() == ErrorCode::kUnsupported) return SendError(res, 415, status.message());
  SendStatus(res, status);
}

// --- JSON of catalog records ---------------------------------------------------

json OrNull(const std::string& text) { return text.empty() ? json(nullptr) : json(text); }
json OrNull(const std::optional<std::string>& text) {
  return text && !text->empty() ? json(*text) : json(nullptr);
}
json OrNull(const std::optional<double>& number) {
  return number && std::isfinite(*number) ? json(*number) : json(nullptr);
}

std::string DatasetUrl(int64_t id) { return "/api/v1/datasets/" + std::to_string(id); }

json TagJson(const catalog::TagRow& tag) {
  return {{"id", tag.id},
          {"value", tag.value},
          {"source", tag.source},
          {"confidence", tag.confidence},
          {"state", tag.state},
          {"evidence", tag.evidence},
          {"validated_by", OrNull(tag.validated_by)},
          {"validated_at", OrNull(tag.validated_at)}};
}

// Today's date, UTC, as YYYY-MM-DD.
std::string TodayUtc() {
  const time_t now = time(nullptr);
  struct tm utc;
  gmtime_r(&now, &utc);
  char date[40];
  std::snprintf(date, sizeof(date), "%04d-%02d-%02d", utc.tm_year + 1900, utc.tm_mon + 1,
                utc.tm_mday);
  return date;
}

// True while the dataset is private to its proposal's team (until its release date).
bool Embargoed(const std::string& embargo_until) {
  return !embargo_until.empty() && embargo_until.substr(0, 10) > TodayUtc();
}

// Why dataset `d`'s primary file may not be downloaded; "" when it may.
std::string DownloadRefusal(const catalog::DatasetRow& d) {
  if (d.state != "ok") return "the dataset is not readable (state " + d.state + ")";
  if (Embargoed(d.embargo_until)) {
    return "the dataset is private to its proposal's team until " + d.embargo_until;
  }
  std::error_code ec;
  if (!fs::is_regular_file(d.path, ec)) return "the file is no longer where it was catalogued";
  return "";
}

// The search module's JSON of `results`, with what the API adds to each hit: the
// thumbnail's URL (null when the dataset has none) and a dataset's summary.
Result<json> ResultsJson(catalog::Catalog& catalog, const search::Results& results) {
  json out = json::parse(search::ResultsToJson(results), nullptr, false);
  if (out.is_discarded() || !out.contains("hits")) {
    return Status::Internal("search results gave no JSON object");
  }
  std::vector<int64_t> ids;
  for (const search::Hit& hit : results.hits) {
    if (hit.dataset_id > 0) ids.push_back(hit.dataset_id);
  }
  SCISEARCH_ASSIGN_OR_RETURN(std::vector<catalog::DatasetSummary> summaries,
                             catalog.SummariseDatasets(ids));
  std::map<int64_t, const catalog::DatasetSummary*> by_id;
  for (const catalog::DatasetSummary& s : summaries) by_id[s.id] = &s;
  json& hits = out["hits"];
  for (size_t i = 0; i < hits.size() && i < results.hits.size(); ++i) {
    json& hit = hits[i];
    auto found = by_id.find(results.hits[i].dataset_id);
    if (found == by_id.end()) {
      hit["thumbnail"] = nullptr;
      hit["dataset"] = nullptr;
      continue;
    }
    const catalog::DatasetSummary& s = *found->second;
    hit["thumbnail"] = s.has_thumbnail ? json(DatasetUrl(s.id) + "/thumbnail") : json(nullptr);
    hit["dataset"] = {{"id", s.id},
                      {"format", s.format},
                      {"instrument", OrNull(s.instrument)},
                      {"mode", OrNull(s.mode)},
                      {"acquired", OrNull(s.acquired)},
                      {"pi", OrNull(s.pi)},
                      {"proposal", OrNull(s.proposal_id)},
                      {"embargoed", Embargoed(s.embargo_until)}};
  }
  out["suggestion"] = OrNull(results.corrected);
  out["error"] = nullptr;
  return out;
}

// The API's whole view of dataset `d` (GET /datasets/{id}).
Result<json> DatasetJson(Session& session, const catalog::DatasetRow& d) {
  const formats::NormalisedFields& f = d.fields;
  const fs::path path(d.path);
  json j = {
      {"id", "dataset:" + std::to_string(d.id)},
      {"path", d.path},
      {"name", path.filename().string()},
      {"folder", path.parent_path().string()},
      {"format", d.format},
      {"state", d.state},
      {"size_bytes", d.size_bytes},
      {"acquired", OrNull(f.acquired)},
      {"instrument", OrNull(f.instrument)},
      {"mode", f.mode == formats::Mode::kUnknown ? json(nullptr)
                                                 : json(std::string(formats::ModeName(f.mode)))},
      {"beam_energy_kev", OrNull(f.beam_energy_kev)},
      {"magnification", OrNull(f.magnification)},
      {"pixel_size", OrNull(f.pixel_size_m)},
      {"pixel_size_units", OrNull(f.pixel_size_units)},
      {"detector", OrNull(f.detector)},
      {"embargo_until", OrNull(d.embargo_until)},
      {"proposal", OrNull(d.proposal_id)},
      {"session", OrNull(d.session_id)}};
  json files = json::array();
  for (const catalog::FileStat& file : d.files) {
    files.push_back({{"path", file.path}, {"size", file.size_bytes}});
  }
  j["files"] = std::move(files);

  SCISEARCH_ASSIGN_OR_RETURN(std::vector<int> with_thumbnail,
                             session.catalog->ThumbnailSignals(d.id));
  json signals = json::array();
  for (const catalog::SignalRow& s : d.signals) {
    const bool has_thumbnail =
        std::find(with_thumbnail.begin(), with_thumbnail.end(), s.index) != with_thumbnail.end();
    json shape = json::parse(s.shape_json, nullptr, false);
    json axes = json::parse(s.axes_json, nullptr, false);
    signals.push_back(
        {{"index", s.index},
         {"name", s.name},
         {"dtype", s.dtype},
         {"shape", shape.is_discarded() ? json::array() : shape},
         {"axes", axes.is_discarded() ? json::array() : axes},
         {"thumbnail", has_thumbnail
                           ? json(DatasetUrl(d.id) + "/thumbnail?signal=" + std::to_string(s.index))
                           : json(nullptr)}});
  }
  j["signals"] = std::move(signals);

  json tags = json::array();
  for (const catalog::TagRow& t : d.tags) tags.push_back(TagJson(t));
  j["tags"] = std::move(tags);

  SCISEARCH_ASSIGN_OR_RETURN(std::vector<catalog::LinkRecord> links,
                             session.catalog->DatasetLinks(d.id));
  json links_json = json::array();
  for (const catalog::LinkRecord& link : links) {
    Result<catalog::DocumentRecord> document = session.catalog->GetDocument(link.target_id);
    links_json.push_back({{"kind", link.kind},
                          {"id", link.target_id},
                          {"title", document.ok() ? json(document->title) : json(nullptr)},
                          {"confidence", link.confidence},
                          {"evidence", link.evidence}});
  }
  j["links"] = std::move(links_json);

  // An item the index does not hold (not readable, or not indexed yet) has nothing
  // like it: an empty list, not an error.
  json similar = json::array();
  Result<search::Results> like =
      session.searcher->MoreLikeThis("dataset:" + std::to_string(d.id), kSimilarItems, "dataset");
  if (like.ok()) {
    SCISEARCH_ASSIGN_OR_RETURN(json like_json, ResultsJson(*session.catalog, *like));
    similar = std::move(like_json["hits"]);
  }
  j["similar"] = std::move(similar);
  j["download"] = DownloadRefusal(d).empty() ? json(DatasetUrl(d.id) + "/download") : json(nullptr);
  return j;
}

// Brings the search index up to date after a tag changed, so that the next search
// sees it. A failure leaves the catalog right and the index behind: logged, and
// applied by the next update.
void UpdateIndexAfterWrite(ApiContext& context) {
  Result<search::IndexStats> stats = context.index->Update();
  if (!stats.ok()) spdlog::warn("search index not updated: {}", stats.status().message());
}

// --- Handlers ------------------------------------------------------------------

void Health(ApiContext& context, const Request&, Response& res) {
  Result<SessionPool::Lease> session = context.sessions->Acquire();
  if (!session.ok()) return SendStatus(res, session.status());
  Result<catalog::CatalogCounts> counts = (*session)->catalog->QuickCounts();
  if (!counts.ok()) return SendStatus(res, counts.status());
  Result<int64_t> lag = (*session)->searcher->Lag();
  SendJson(res, 200,
           {{"status", "ok"},
            {"datasets", counts->datasets_ok},
            {"documents", counts->documents},
            {"index_lag", lag.ok() ? json(*lag) : json(nullptr)},
            {"version", SCISEARCH_VERSION}});
}

// The query text of the facet filters f=FIELD:VALUE: each a required clause.
Result<std::string> FilterClauses(const Request& req, json& filters_log) {
  static const std::set<std::string, std::less<>> kFields = {"instrument", "pi",   "year", "mode",
                                                             "format",     "kind", "tag"};
  std::string clauses;
  const size_t count = req.get_param_value_count("f");
  for (size_t i = 0; i < count; ++i) {
    const std::string filter = req.get_param_value("f", i);
    const size_t colon = filter.find(':');
    const std::string field = filter.substr(0, colon);
    if (colon == std::string::npos || !kFields.count(field)) {
      return Status::InvalidArgument(
          "f: '" + formats::EscapeNonPrintableAscii(filter.substr(0, 60)) +
          "' is not FIELD:VALUE with FIELD one of instrument, pi, year, mode, format, kind, tag");
    }
    std::string value(formats::TrimSpace(std::string_view(filter).substr(colon + 1)));
    // Quotes would end the phrase early; nothing else in a value has meaning inside one.
    value.erase(std::remove(value.begin(), value.end(), '"'), value.end());
    if (value.empty() || value.size() > kMaxFilterValueBytes || !formats::IsValidUtf8(value) ||
        std::any_of(value.begin(), value.end(),
                    [](char c) { return static_cast<unsigned char>(c) < 0x20; })) {
      return Status::InvalidArgument("f: the value of " + field +
                                     " must be 1-200 bytes of text without control characters");
    }
    clauses += " +(" + field + ":\"" + value + "\")";
    filters_log.push_back(field + ":" + value);
  }
  return clauses;
}

void Search(ApiContext& context, const Request& req, Response& res) {
  const auto started = std::chrono::steady_clock::now();
  const std::string text = req.get_param_value("q");
  if (text.size() > kMaxQueryBytes) {
    return SendError(res, 400, "q: longer than " + std::to_string(kMaxQueryBytes) + " bytes");
  }
  if (!formats::IsValidUtf8(text)) return SendError(res, 400, "q: not valid UTF-8");
  search::Query query;
  query.text = text;
  query.kind = req.get_param_value("kind");
  if (!query.kind.empty() && query.kind != "dataset" && query.kind != "proposal" &&
      query.kind != "publication" && query.kind != "log") {
    return SendError(res, 400, "kind: must be dataset, proposal, publication or log");
  }
  Result<int64_t> offset = IntParam(req, "offset", 0, 0, kMaxOffset);
  if (!offset.ok()) return SendStatus(res, offset.status());
  Result<int64_t> limit = IntParam(req, "limit", 10, 1, kMaxPageSize);
  if (!limit.ok()) return SendStatus(res, limit.status());
  query.offset = *offset;
  query.limit = *limit;
  const std::string sort = req.has_param("sort") ? req.get_param_value("sort") : "relevance";
  if (sort == "newest") {
    query.sort = search::SortOrder::kNewest;
  } else if (sort == "oldest") {
    query.sort = search::SortOrder::kOldest;
  } else if (sort != "relevance") {
    return SendError(res, 400, "sort: must be relevance, newest or oldest");
  }
  Result<std::string> user = OptionalUserParam(req);
  if (!user.ok()) return SendStatus(res, user.status());
  json filters = json::array();
  Result<std::string> clauses = FilterClauses(req, filters);
  if (!clauses.ok()) return SendStatus(res, clauses.status());
  query.text += *clauses;

  Result<SessionPool::Lease> session = context.sessions->Acquire();
  if (!session.ok()) return SendStatus(res, session.status());
  Result<search::Results> results = (*session)->searcher->Search(query);
  json out;
  if (results.ok()) {
    Result<json> decorated = ResultsJson(*(*session)->catalog, *results);
    if (!decorated.ok()) return SendStatus(res, decorated.status());
    out = std::move(*decorated);
  } else if (results.status().code() == ErrorCode::kInvalidArgument) {
    // A value the query syntax cannot read ("voltage:abc"): no results, and why,
    // for the page to show beside the box.
    search::Results none;
    none.query = query.text;
    Result<json> empty = ResultsJson(*(*session)->catalog, none);
    if (!empty.ok()) return SendStatus(res, empty.status());
    out = std::move(*empty);
    out["error"] = results.status().message();
  } else {
    session->Discard();  // its index handle may be what failed
    return SendStatus(res, results.status());
  }
  out["query"] = text;  // as typed, without the filter clauses
  const double took_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  json log_filters = {{"f", filters},
                      {"kind", query.kind},
                      {"sort", sort},
                      {"offset", query.offset},
                      {"limit", query.limit}};
  std::unique_lock<std::mutex> writing(context.catalog_writes);
  Result<int64_t> query_id = (*session)->catalog->LogQuery(
      {.text = text,
       .filters_json = log_filters.dump(-1, ' ', false, json::error_handler_t::replace),
       .user = *user,
       .total = out.value("total", int64_t{0}),
       .took_ms = took_ms});
  writing.unlock();
  if (!query_id.ok()) spdlog::warn("query not logged: {}", query_id.status().message());
  out["query_id"] = query_id.ok() ? json(*query_id) : json(nullptr);
  out["took_ms"] = std::round(took_ms * 100) / 100;
  SendJson(res, 200, out);
}

void GetDataset(ApiContext& context, const Request& req, Response& res) {
  Result<SessionPool::Lease> session = context.sessions->Acquire();
  if (!session.ok()) return SendStatus(res, session.status());
  Result<catalog::DatasetRow> row = (*session)->catalog->GetDatasetById(RouteId(req));
  if (!row.ok()) return SendStatus(res, row.status());
  Result<json> j = DatasetJson(**session, *row);
  if (!j.ok()) return SendStatus(res, j.status());
  SendJson(res, 200, *j);
}

void GetMetadata(ApiContext& context, const Request& req, Response& res) {
  Result<int64_t> signal = IntParam(req, "signal", 0, 0, 1000000);
  if (!signal.ok()) return SendStatus(res, signal.status());
  Result<SessionPool::Lease> session = context.sessions->Acquire();
  if (!session.ok()) return SendStatus(res, session.status());
  const int64_t id = RouteId(req);
  Result<catalog::DatasetRow> row = (*session)->catalog->GetDatasetById(id);
  if (!row.ok()) return SendStatus(res, row.status());
  auto s = std::find_if(row->signals.begin(), row->signals.end(),
                        [&](const catalog::SignalRow& r) { return r.index == *signal; });
  if (s == row->signals.end()) {
    return SendError(res, 404,
                     "dataset " + std::to_string(id) + " has no signal " + std::to_string(*signal));
  }
  const formats::Metadata tree = formats::Metadata::parse(s->metadata_json, nullptr, false);
  json entries = json::array();
  if (!tree.is_discarded()) {
    for (const catalog::MetadataEntry& e : catalog::FlattenMetadata(tree)) {
      // "$.a.b" reads better as "a.b"; the rest of the path syntax stays (quoted keys).
      std::string key = e.key_path;
      if (key.rfind("$.", 0) == 0) {
        key.erase(0, 2);
      } else if (key.rfind('$', 0) == 0) {
        key.erase(0, 1);
      }
      json value;
      switch (e.type) {
        case catalog::MetadataEntry::Type::kInt:
          value = e.int_value;
          break;
        case catalog::MetadataEntry::Type::kReal:
          value = std::isfinite(e.real_value) ? json(e.real_value) : json(nullptr);
          break;
        case catalog::MetadataEntry::Type::kText:
          value = e.text_value;
          break;
        case catalog::MetadataEntry::Type::kBool:
          value = e.int_value != 0;
          break;
        case catalog::MetadataEntry::Type::kNull:
          value = nullptr;
          break;
      }
      entries.push_back(
          {{"key", key}, {"type", catalog::MetadataTypeName(e.type)}, {"value", value}});
    }
  }
  SendJson(res, 200, {{"signal", *signal}, {"entries", entries}});
}

void GetThumbnail(ApiContext& context, const Request& req, Response& res) {
  Result<int64_t> signal = IntParam(req, "signal", 0, 0, 1000000);
  if (!signal.ok()) return SendStatus(res, signal.status());
  Result<SessionPool::Lease> session = context.sessions->Acquire();
  if (!session.ok()) return SendStatus(res, session.status());
  Result<catalog::Thumbnail> thumbnail =
      (*session)->catalog->GetThumbnail(RouteId(req), static_cast<int>(*signal));
  if (!thumbnail.ok()) return SendStatus(res, thumbnail.status());
  res.set_header("Cache-Control", "private, max-age=300");
  res.set_content(std::string(thumbnail->png.begin(), thumbnail->png.end()), "image/png");
}

// A Content-Disposition of `name` for every browser: an ASCII fallback and the
// UTF-8 name (RFC 6266 / 5987), neither able to end the header early.
std::string ContentDisposition(const std::string& name) {
  std::string ascii;
  std::string encoded;
  for (unsigned char c : name) {
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '.' || c == '-' || c == '_';
    ascii += plain || c == ' ' ? static_cast<char>(c) : '_';
    if (plain) {
      encoded += static_cast<char>(c);
    } else {
      char hex[4];
      std::snprintf(hex, sizeof(hex), "%%%02X", c);
      encoded += hex;
    }
  }
  return "attachment; filename=\"" + ascii + "\"; filename*=UTF-8''" + encoded;
}

void Download(ApiContext& context, const Request& req, Response& res) {
  Result<SessionPool::Lease> session = context.sessions->Acquire();
  if (!session.ok()) return SendStatus(res, session.status());
  Result<catalog::DatasetRow> row = (*session)->catalog->GetDatasetById(RouteId(req));
  if (!row.ok()) return SendStatus(res, row.status());
  const std::string refusal = DownloadRefusal(*row);
  if (!refusal.empty()) {
    return SendError(res, Embargoed(row->embargo_until) ? 403 : 404, refusal);
  }
  auto file = std::make_shared<std::ifstream>(row->path, std::ios::binary);
  std::error_code ec;
  const uintmax_t size = fs::file_size(row->path, ec);
  if (!*file || ec) return SendError(res, 404, "the file cannot be read");
  res.set_header("Content-Disposition",
                 ContentDisposition(fs::path(row->path).filename().string()));
  res.set_header("Cache-Control", "private, no-cache");
  res.set_content_provider(
      static_cast<size_t>(size), "application/octet-stream",
      [file](size_t offset, size_t length, httplib::DataSink& sink) {
        char buffer[1 << 16];
        file->clear();
        file->seekg(static_cast<std::streamoff>(offset));
        file->read(buffer, static_cast<std::streamsize>(std::min(length, sizeof(buffer))));
        const std::streamsize got = file->gcount();
        if (got <= 0) return false;  // the file shrank: end the response early
        return sink.write(buffer, static_cast<size_t>(got));
      });
}

void GetDocument(ApiContext& context, const Request& req, Response& res) {
  Result<SessionPool::Lease> session = context.sessions->Acquire();
  if (!session.ok()) return SendStatus(res, session.status());
  Result<catalog::DocumentRecord> d = (*session)->catalog->GetDocument(req.matches[1].str());
  if (!d.ok()) return SendStatus(res, d.status());
  json fields = json::parse(d->fields_json, nullptr, false);
  SendJson(res, 200,
           {{"id", d->id},
            {"kind", d->kind},
            {"title", d->title},
            {"text", d->text},
            {"authors", d->authors},
            {"date", OrNull(d->date)},
            {"doi", OrNull(d->doi)},
            {"pi", OrNull(d->pi)},
            {"proposals", d->proposals},
            {"fields", fields.is_object() ? fields : json::object()}});
}

void AddTag(ApiContext& context, const Request& req, Response& res) {
  Result<json> body = JsonBody(req);
  if (!body.ok()) return SendBodyError(res, body.status());
  Result<std::string> user = UserField(*body);
  if (!user.ok()) return SendStatus(res, user.status());
  Result<std::string> value = StringField(*body, "value", 200);
  if (!value.ok()) return SendStatus(res, value.status());
  Result<SessionPool::Lease> session = context.sessions->Acquire();
  if (!session.ok()) return SendStatus(res, session.status());
  Result<catalog::TagRow> tag = [&] {
    std::lock_guard<std::mutex> writing(context.catalog_writes);
    return (*session)->catalog->AddExpertTag(RouteId(req), *value, *user);
  }();
  if (!tag.ok()) return SendStatus(res, tag.status());
  UpdateIndexAfterWrite(context);
  SendJson(res, 201, TagJson(*tag));
}

void ValidateTag(ApiContext& context, const Request& req, Response& res) {
  Result<json> body = JsonBody(req);
  if (!body.ok()) return SendBodyError(res, body.status());
  Result<std::string> user = UserField(*body);
  if (!user.ok()) return SendStatus(res, user.status());
  const std::string state = req.matches[2].str() == "accept" ? "accepted" : "rejected";
  Result<SessionPool::Lease> session = context.sessions->Acquire();
  if (!session.ok()) return SendStatus(res, session.status());
  Result<catalog::TagRow> tag = [&] {
    std::lock_guard<std::mutex> writing(context.catalog_writes);
    return (*session)->catalog->SetTagState(RouteId(req), state, *user);
  }();
  if (!tag.ok()) return SendStatus(res, tag.status());
  UpdateIndexAfterWrite(context);
  SendJson(res, 200, TagJson(*tag));
}

void RemoveTag(ApiContext& context, const Request& req, Response& res) {
  if (!req.has_param("user")) return SendError(res, 400, "user: missing (?user=NAME)");
  Result<std::string> user = OptionalUserParam(req);
  if (!user.ok()) return SendStatus(res, user.status());
  Result<SessionPool::Lease> session = context.sessions->Acquire();
  if (!session.ok()) return SendStatus(res, session.status());
  Result<catalog::TagRow> removed = [&] {
    std::lock_guard<std::mutex> writing(context.catalog_writes);
    return (*session)->catalog->RemoveTag(RouteId(req), *user);
  }();
  if (!removed.ok()) return SendStatus(res, removed.status());
  UpdateIndexAfterWrite(context);
  res.status = 204;
}

void TaggingNext(ApiContext& context, const Request& req, Response& res) {
  Result<std::string> user = OptionalUserParam(req);
  if (!user.ok()) return SendStatus(res, user.status());
  Result<int64_t> after = IntParam(req, "after", 0, 0, std::numeric_limits<int64_t>::max());
  if (!after.ok()) return SendStatus(res, after.status());
  const std::string order = req.has_param("order") ? req.get_param_value("order") : "path";
  if (order != "path" && order != "random") {
    return SendError(res, 400, "order: must be path or random");
  }
  Result<SessionPool::Lease> session = context.sessions->Acquire();
  if (!session.ok()) return SendStatus(res, session.status());
  catalog::Catalog& catalog = *(*session)->catalog;
  Result<catalog::QueueEntry> entry = order == "path"
                                          ? catalog.NextDatasetByPath(*after)
                                          : catalog.RandomDataset(std::random_device{}(), *after);
  if (!entry.ok()) return SendStatus(res, entry.status());
  Result<catalog::DatasetRow> row = catalog.GetDatasetById(entry->dataset_id);
  if (!row.ok()) return SendStatus(res, row.status());
  Result<json> dataset = DatasetJson(**session, *row);
  if (!dataset.ok()) return SendStatus(res, dataset.status());
  int64_t tagged = 0;
  if (!user->empty()) {
    Result<int64_t> count = catalog.CountDatasetsTaggedBy(*user);
    if (!count.ok()) return SendStatus(res, count.status());
    tagged = *count;
  }
  SendJson(res, 200,
           {{"dataset", std::move(*dataset)},
            {"position", entry->position},
            {"total", entry->total},
            {"tagged_by_user", tagged}});
}

const char* ConceptKindName(nlp::ConceptKind kind) {
  switch (kind) {
    case nlp::ConceptKind::kTechnique:
      return "technique";
    case nlp::ConceptKind::kDetector:
      return "detector";
    case nlp::ConceptKind::kMaterial:
      return "material";
    case nlp::ConceptKind::kMorphology:
      return "morphology";
    case nlp::ConceptKind::kQuality:
      return "quality";
  }
  return "concept";
}

void Vocabulary(ApiContext& context, const Request& req, Response& res) {
  const std::string prefix(formats::TrimSpace(req.get_param_value("prefix")));
  if (prefix.size() > 100 || !formats::IsValidUtf8(prefix)) {
    return SendError(res, 400, "prefix: at most 100 bytes of UTF-8");
  }
  Result<int64_t> limit = IntParam(req, "limit", 10, 1, 50);
  if (!limit.ok()) return SendStatus(res, limit.status());
  json suggestions = json::array();
  if (prefix.empty()) return SendJson(res, 200, {{"suggestions", suggestions}});
  const size_t wanted = static_cast<size_t>(*limit);
  std::set<std::string> seen;  // lowercased labels already suggested
  auto add = [&](const std::string& label, const char* kind) {
    if (suggestions.size() >= wanted || !seen.insert(formats::AsciiLower(label)).second) return;
    suggestions.push_back({{"label", label}, {"kind", kind}});
  };
  // Labels that start with the prefix, then the catalog's tags, then concepts one
  // of whose other names starts with it ("high angle" -> HAADF).
  const std::string lower = formats::AsciiLower(prefix);
  const std::string normalised = nlp::NormaliseForMatching(prefix);
  for (const nlp::Concept& c : nlp::DomainVocabulary()) {
    if (formats::AsciiLower(c.label).rfind(lower, 0) == 0) {
      add(std::string(c.label), ConceptKindName(c.kind));
    }
  }
  Result<SessionPool::Lease> session = context.sessions->Acquire();
  if (!session.ok()) return SendStatus(res, session.status());
  Result<std::vector<catalog::TagValueCount>> tags =
      (*session)->catalog->TagValuesWithPrefix(prefix, *limit);
  if (!tags.ok()) return SendStatus(res, tags.status());
  for (const catalog::TagValueCount& t : *tags) add(t.value, "tag");
  if (!normalised.empty()) {
    for (const nlp::Concept& c : nlp::DomainVocabulary()) {
      for (std::string_view form : c.forms) {
        if (form.rfind(normalised, 0) == 0) {
          add(std::string(c.label), ConceptKindName(c.kind));
          break;
        }
      }
    }
  }
  SendJson(res, 200, {{"suggestions", suggestions}});
}

void Click(ApiContext& context, const Request& req, Response& res) {
  Result<json> body = JsonBody(req, /*plain_text_too=*/true);
  if (!body.ok()) return SendBodyError(res, body.status());
  Result<std::string> user = UserField(*body);
  if (!user.ok()) return SendStatus(res, user.status());
  Result<int64_t> query_id = IntField(*body, "query_id");
  if (!query_id.ok()) return SendStatus(res, query_id.status());
  Result<std::string> item = StringField(*body, "item", kMaxItemBytes);
  if (!item.ok()) return SendStatus(res, item.status());
  Result<int64_t> rank = IntField(*body, "rank");
  if (!rank.ok()) return SendStatus(res, rank.status());
  Result<SessionPool::Lease> session = context.sessions->Acquire();
  if (!session.ok()) return SendStatus(res, session.status());
  std::unique_lock<std::mutex> writing(context.catalog_writes);
  Status logged = (*session)->catalog->LogClick(
      {.query_id = *query_id, .item = *item, .rank = *rank, .user = *user});
  if (!logged.ok()) return SendStatus(res, logged);
  res.status = 204;
}

}  // namespace

void RegisterApi(httplib::Server& http, ApiContext& context) {
  using Handler = void (*)(ApiContext&, const Request&, Response&);
  auto bind = [&context](Handler handler) {
    return [&context, handler](const Request& req, Response& res) { handler(context, req, res); };
  };
  constexpr const char* kId = R"((\d{1,18}))";
  const std::string datasets = std::string("/api/v1/datasets/") + kId;
  http.Get("/api/v1/health", bind(Health));
  http.Get("/api/v1/search", bind(Search));
  http.Get(datasets, bind(GetDataset));
  http.Get(datasets + "/metadata", bind(GetMetadata));
  http.Get(datasets + "/thumbnail", bind(GetThumbnail));
  http.Get(datasets + "/download", bind(Download));
  http.Get("/api/v1/documents/(.+)", bind(GetDocument));
  http.Post(datasets + "/tags", bind(AddTag));
  http.Post(std::string("/api/v1/tags/") + kId + "/(accept|reject)", bind(ValidateTag));
  http.Delete(std::string("/api/v1/tags/") + kId, bind(RemoveTag));
  http.Get("/api/v1/tagging/next", bind(TaggingNext));
  http.Get("/api/v1/vocabulary", bind(Vocabulary));
  http.Post("/api/v1/clicks", bind(Click));
  // Every other API path: a JSON 404 (not the web UI's files).
  http.Get("/api/.*", [](const Request& req, Response& res) {
    SendError(res, 404,
              "no such endpoint: GET " + formats::EscapeNonPrintableAscii(req.path.substr(0, 200)));
  });
}

}  // namespace scisearch::server::internal
