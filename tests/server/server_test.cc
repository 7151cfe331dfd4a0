// The HTTP server against a catalog built here, over loopback with httplib's
// client: every endpoint of docs/api.md, hostile requests (oversized bodies, bad
// JSON, wrong types, path traversal, HTML in names and tags), unknown ids,
// concurrent clients, and shutdown.
#include "server/server.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "catalog/catalog.h"
#include "test_util.h"

namespace scisearch::server {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ::scisearch::testing::TempDir;

constexpr const char* kHtmlName = "alpha <img src=x onerror=alert(1)> & 'q'.dm3";
constexpr const char* kHtmlTag = "<script>alert(1)</script>";
const std::vector<uint8_t> kPng = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 1, 2, 3};

struct Spec {
  std::string name;
  std::string instrument;
  std::string note;
  std::vector<catalog::TagSuggestion> tags;
};

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    data_ = dir_.path() / "data";
    files_ = dir_.path() / "files";
    web_ = dir_.path() / "web";
    fs::create_directories(files_);
    fs::create_directories(web_ / "js");
    WriteFile(web_ / "index.html", "<!doctype html><title>scisearch</title>");
    WriteFile(web_ / "js" / "app.js", "export const x = 1;\n");
    WriteFile(dir_.path() / "secret.txt", "SECRET");
    fs::create_symlink(dir_.path() / "secret.txt", web_ / "link-out.txt");

    auto opened = catalog::Catalog::Open(data_);
    ASSERT_TRUE(opened.ok()) << opened.status().message();
    catalog_ = std::move(*opened);
    auto run = catalog_->StartRun(files_.string());
    ASSERT_TRUE(run.ok());
    const std::vector<Spec> specs = {
        {kHtmlName, "FEI Titan", "lead selenide nanoparticles", {}},
        {"beta.dm3",
         "FEI Titan",
         "gold lattice",
         {{kHtmlTag, "metadata", 0.6, "from a comment"}, {"HAADF", "metadata", 0.9, "detector"}}},
        {"gamma.dm3", "JEOL ARM", "gold particles embargoed", {}},
        {"delta.dm3", "JEOL ARM", "silicon wafer", {}},
    };
    for (const Spec& spec : specs) {
      const fs::path path = files_ / spec.name;
      WriteFile(path, "DATA:" + spec.name);
      catalog::DatasetRecord r;
      r.path = path.string();
      r.root = files_.string();
      r.files = {{r.path, fs::file_size(path), 1000}};
      r.fingerprint = catalog::ComputeFingerprint(r.files);
      r.dataset.path = r.path;
      r.dataset.format = "dm3";
      formats::Signal s;
      s.name = "HAADF";
      s.dtype = formats::DType::kUInt16;
      s.shape = {8, 8};
      s.axes = {{"y", 8, 1, 0, "nm", false}, {"x", 8, 1, 0, "nm", false}};
      s.metadata = formats::Metadata::object();
      s.metadata["Comment"] = spec.note;
      s.metadata["Microscope"] = {{"Voltage", 300000}, {"Name", spec.instrument}};
      s.fields.instrument = spec.instrument;
      s.fields.mode = formats::Mode::kStemImage;
      s.fields.acquired = "2011-10-13T14:03:12";
      s.fields.beam_energy_kev = 300;
      r.dataset.signals.push_back(std::move(s));
      r.tags = spec.tags;
      ASSERT_TRUE(catalog_->PutDataset(*run, r).ok());
      auto row = catalog_->GetDataset(r.path);
      ASSERT_TRUE(row.ok());
      ids_[spec.name] = row->id;
      if (spec.name != "delta.dm3") {
        ASSERT_TRUE(catalog_
                        ->PutThumbnails(row->id, r.fingerprint, catalog::ThumbnailOutcome::kMade,
                                        {{0, kPng, 8, 8}})
                        .ok());
      }
    }
    ASSERT_TRUE(catalog_->LinkDataset((files_ / "gamma.dm3").string(), "", "", "2999-01-01").ok());
    catalog::DocumentRecord paper;
    paper.id = "10.1000/xyz-1";
    paper.kind = "publication";
    paper.title = "Gold <i>nanoparticles</i> at atomic resolution";
    paper.text = "We image gold nanoparticles with HAADF STEM.";
    paper.authors = {"A. Author"};
    paper.date = "2012-01-01";
    paper.doi = paper.id;
    ASSERT_TRUE(catalog_->PutDocument(paper).ok());

    StartServer();
  }

  void TearDown() override {
    if (server_) {
      server_->Stop();
      EXPECT_TRUE(server_->Wait().ok());
    }
  }

  void StartServer(size_t max_body = 64 * 1024, int threads = 8) {
    ServerOptions options;
    options.data_dir = data_;
    options.port = 0;
    options.threads = threads;
    options.max_body_bytes = max_body;
    options.web_root = web_;
    auto started = Server::Start(options);
    ASSERT_TRUE(started.ok()) << started.status().message();
    server_ = std::move(*started);
    ASSERT_GT(server_->port(), 0);
  }

  static void WriteFile(const fs::path& path, const std::string& text) {
    ::scisearch::testing::WriteFileText(path, text);
  }

  // A client that sends paths exactly as given (no encoding of its own).
  httplib::Client Client() {
    httplib::Client client("127.0.0.1", server_->port());
    client.set_url_encode(false);
    client.set_read_timeout(std::chrono::seconds(30));
    return client;
  }

  // GET `path`: the response, which must exist.
  httplib::Result Get(const std::string& path) {
    httplib::Client client = Client();
    return client.Get(path);
  }

  httplib::Result Post(const std::string& path, const std::string& body,
                       const std::string& type = "application/json") {
    httplib::Client client = Client();
    return client.Post(path, body, type);
  }

  // The JSON body of `res`, expecting `status` and a JSON Content-Type.
  static json JsonOf(const httplib::Result& res, int status) {
    EXPECT_TRUE(res) << "no response";
    if (!res) return json();
    EXPECT_EQ(res->status, status) << res->body;
    EXPECT_EQ(res->get_header_value("Content-Type"), "application/json") << res->body;
    json j = json::parse(res->body, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << res->body;
    return j;
  }

  // Expects a JSON error of `status` whose message contains `words`.
  static void ExpectError(const httplib::Result& res, int status, const std::string& words = "") {
    json j = JsonOf(res, status);
    ASSERT_TRUE(j.contains("error")) << j.dump();
    EXPECT_EQ(j["error"]["status"], status);
    const std::string message = j["error"]["message"].get<std::string>();
    EXPECT_FALSE(message.empty());
    EXPECT_NE(message.find(words), std::string::npos) << message;
  }

  std::string DatasetPath(const std::string& name) {
    return "/api/v1/datasets/" + std::to_string(ids_.at(name));
  }

  // Tag `value` of dataset `name` as the API shows it.
  json FindTag(const std::string& name, const std::string& value) {
    json d = JsonOf(Get(DatasetPath(name)), 200);
    for (const json& t : d["tags"]) {
      if (t["value"] == value) return t;
    }
    return json();
  }

  TempDir dir_;
  fs::path data_, files_, web_;
  std::unique_ptr<catalog::Catalog> catalog_;
  std::unique_ptr<Server> server_;
  std::map<std::string, int64_t> ids_;
};

TEST_F(ServerTest, HealthCountsTheCatalog) {
  json j = JsonOf(Get("/api/v1/health"), 200);
  EXPECT_EQ(j["status"], "ok");
  EXPECT_EQ(j["datasets"], 4);
  EXPECT_EQ(j["documents"], 1);
  EXPECT_EQ(j["index_lag"], 0);
  EXPECT_FALSE(j["version"].get<std::string>().empty());
}

TEST_F(ServerTest, SearchGivesHitsFacetsAndAQueryId) {
  json j = JsonOf(Get("/api/v1/search?q=gold&limit=10"), 200);
  EXPECT_EQ(j["query"], "gold");
  EXPECT_GE(j["total"].get<int>(), 3);  // beta, gamma, the paper
  EXPECT_TRUE(j["query_id"].is_number_integer());
  EXPECT_TRUE(j["took_ms"].is_number());
  EXPECT_TRUE(j["error"].is_null());
  ASSERT_TRUE(j["facets"].contains("instrument"));
  bool saw_dataset = false;
  for (const json& hit : j["hits"]) {
    if (hit["kind"] != "dataset") {
      EXPECT_TRUE(hit["thumbnail"].is_null());
      continue;
    }
    saw_dataset = true;
    ASSERT_TRUE(hit["dataset"].is_object());
    EXPECT_EQ(hit["dataset"]["instrument"].is_string(), true);
    const int64_t id = hit["dataset"]["id"];
    EXPECT_EQ(hit["id"], "dataset:" + std::to_string(id));
    EXPECT_EQ(hit["thumbnail"], "/api/v1/datasets/" + std::to_string(id) + "/thumbnail");
  }
  EXPECT_TRUE(saw_dataset);

  // The search is in the query log, with its filters.
  auto logged = catalog_->RecentQueries(1);
  ASSERT_TRUE(logged.ok());
  ASSERT_EQ(logged->size(), 1u);
  EXPECT_EQ((*logged)[0].id, j["query_id"]);
  EXPECT_EQ((*logged)[0].text, "gold");
  EXPECT_EQ((*logged)[0].total, j["total"]);
}

TEST_F(ServerTest, FacetFiltersNarrowAndAndTogether) {
  json all = JsonOf(Get("/api/v1/search?q=gold&kind=dataset"), 200);
  ASSERT_EQ(all["total"], 2);
  json arm = JsonOf(Get("/api/v1/search?q=gold&kind=dataset&f=instrument:JEOL%20ARM"), 200);
  ASSERT_EQ(arm["total"], 1);
  EXPECT_EQ(arm["hits"][0]["id"], "dataset:" + std::to_string(ids_["gamma.dm3"]));
  EXPECT_EQ(arm["query"], "gold");  // as typed, without the filter clauses
  json none =
      JsonOf(Get("/api/v1/search?q=gold&f=instrument:JEOL%20ARM&f=instrument:FEI%20Titan"), 200);
  EXPECT_EQ(none["total"], 0);
  json only_filter = JsonOf(Get("/api/v1/search?f=mode:stem%20image&f=year:2011"), 200);
  EXPECT_EQ(only_filter["total"], 4);
  // A quote in a value cannot break out of its phrase.
  JsonOf(Get("/api/v1/search?q=gold&f=tag:%22)%20OR%20(gold"), 200);
}

TEST_F(ServerTest, SearchRejectsBadParametersWithJsonErrors) {
  ExpectError(Get("/api/v1/search?q=gold&limit=1000"), 400, "limit");
  ExpectError(Get("/api/v1/search?q=gold&limit=abc"), 400, "limit");
  ExpectError(Get("/api/v1/search?q=gold&offset=-1"), 400, "offset");
  ExpectError(Get("/api/v1/search?q=gold&sort=sideways"), 400, "sort");
  ExpectError(Get("/api/v1/search?q=gold&kind=cat"), 400, "kind");
  ExpectError(Get("/api/v1/search?q=gold&f=colour:red"), 400, "f");
  ExpectError(Get("/api/v1/search?q=gold&f=nocolon"), 400, "f");
  ExpectError(Get("/api/v1/search?q=%FF%FE"), 400, "UTF-8");
  ExpectError(Get("/api/v1/search?q=gold&user=a%20b"), 400, "user");
  ExpectError(Get("/api/v1/search?q=" + std::string(3000, 'a')), 400, "q");
  // A field value the query syntax cannot read: no hits, and why.
  json j = JsonOf(Get("/api/v1/search?q=voltage:abc"), 200);
  EXPECT_EQ(j["total"], 0);
  EXPECT_NE(j["error"].get<std::string>().find("voltage"), std::string::npos);
}

TEST_F(ServerTest, HtmlInNamesAndTagsStaysText) {
  json d = JsonOf(Get(DatasetPath(kHtmlName)), 200);
  EXPECT_EQ(d["name"], kHtmlName);  // a JSON string, exactly as stored
  json beta = JsonOf(Get(DatasetPath("beta.dm3")), 200);
  bool found = false;
  for (const json& t : beta["tags"]) found = found || t["value"] == kHtmlTag;
  EXPECT_TRUE(found);
  // Snippets are HTML: everything but the <b> of matches is escaped.
  for (const char* q : {"/api/v1/search?q=alpha", "/api/v1/search?q=beta"}) {
    json j = JsonOf(Get(q), 200);
    ASSERT_GE(j["hits"].size(), 1u) << q;
    for (const json& hit : j["hits"]) {
      const std::string snippet = hit["snippet"];
      EXPECT_EQ(snippet.find("<script"), std::string::npos) << snippet;
      EXPECT_EQ(snippet.find("<img"), std::string::npos) << snippet;
      EXPECT_EQ(snippet.find(" & "), std::string::npos) << snippet;
    }
  }
  // Every response says what it is, and is never sniffed as something else.
  auto res = Get(DatasetPath(kHtmlName));
  EXPECT_EQ(res->get_header_value("X-Content-Type-Options"), "nosniff");
  EXPECT_NE(res->get_header_value("Content-Security-Policy").find("script-src 'self'"),
            std::string::npos);
}

TEST_F(ServerTest, DatasetDetailHasEverything) {
  json d = JsonOf(Get(DatasetPath("beta.dm3")), 200);
  EXPECT_EQ(d["id"], "dataset:" + std::to_string(ids_["beta.dm3"]));
  EXPECT_EQ(d["path"], (files_ / "beta.dm3").string());
  EXPECT_EQ(d["name"], "beta.dm3");
  EXPECT_EQ(d["folder"], files_.string());
  EXPECT_EQ(d["format"], "dm3");
  EXPECT_EQ(d["state"], "ok");
  EXPECT_EQ(d["instrument"], "FEI Titan");
  EXPECT_EQ(d["mode"], "stem image");
  EXPECT_EQ(d["beam_energy_kev"], 300);
  EXPECT_TRUE(d["embargo_until"].is_null());
  ASSERT_EQ(d["files"].size(), 1u);
  EXPECT_EQ(d["files"][0]["size"], fs::file_size(files_ / "beta.dm3"));
  ASSERT_EQ(d["signals"].size(), 1u);
  EXPECT_EQ(d["signals"][0]["shape"], json::array({8, 8}));
  EXPECT_EQ(d["signals"][0]["axes"][0]["units"], "nm");
  EXPECT_EQ(d["signals"][0]["thumbnail"], DatasetPath("beta.dm3") + "/thumbnail?signal=0");
  ASSERT_EQ(d["tags"].size(), 2u);
  EXPECT_EQ(d["tags"][0]["value"], "HAADF");  // strongest first
  EXPECT_EQ(d["tags"][0]["source"], "metadata");
  EXPECT_EQ(d["tags"][0]["state"], "suggested");
  EXPECT_TRUE(d["tags"][0]["id"].is_number_integer());
  EXPECT_TRUE(d["tags"][0]["validated_by"].is_null());
  EXPECT_TRUE(d["links"].is_array());
  EXPECT_TRUE(d["similar"].is_array());
  EXPECT_EQ(d["download"], DatasetPath("beta.dm3") + "/download");

  json no_thumbnail = JsonOf(Get(DatasetPath("delta.dm3")), 200);
  EXPECT_TRUE(no_thumbnail["signals"][0]["thumbnail"].is_null());
  json embargoed = JsonOf(Get(DatasetPath("gamma.dm3")), 200);
  EXPECT_EQ(embargoed["embargo_until"], "2999-01-01");
  EXPECT_TRUE(embargoed["download"].is_null());
}

TEST_F(ServerTest, UnknownIdsAndPathsAreJson404s) {
  ExpectError(Get("/api/v1/datasets/999999"), 404, "999999");
  ExpectError(Get("/api/v1/datasets/abc"), 404);
  ExpectError(Get("/api/v1/datasets/99999999999999999999999"), 404);
  ExpectError(Get("/api/v1/datasets/999999/metadata"), 404);
  ExpectError(Get("/api/v1/datasets/999999/thumbnail"), 404);
  ExpectError(Get("/api/v1/datasets/999999/download"), 404);
  ExpectError(Get("/api/v1/documents/no-such-document"), 404);
  ExpectError(Get("/api/v1/nothing"), 404, "no such endpoint");
  ExpectError(Get("/api/v2/search?q=gold"), 404);
  ExpectError(Post("/api/v1/nothing", "{}"), 404);
  ExpectError(Post("/api/v1/tags/999999/accept", R"({"user":"ann"})"), 404);
  httplib::Client client = Client();
  ExpectError(client.Delete("/api/v1/tags/999999?user=ann"), 404);
}

TEST_F(ServerTest, MetadataIsFlattened) {
  json j = JsonOf(Get(DatasetPath("beta.dm3") + "/metadata?signal=0"), 200);
  EXPECT_EQ(j["signal"], 0);
  std::map<std::string, json> entries;
  for (const json& e : j["entries"]) entries[e["key"]] = e;
  ASSERT_TRUE(entries.count("Comment")) << j.dump();
  EXPECT_EQ(entries["Comment"]["value"], "gold lattice");
  EXPECT_EQ(entries["Comment"]["type"], "text");
  ASSERT_TRUE(entries.count("Microscope.Voltage")) << j.dump();
  EXPECT_EQ(entries["Microscope.Voltage"]["value"], 300000);
  EXPECT_EQ(entries["Microscope.Voltage"]["type"], "int");
  ExpectError(Get(DatasetPath("beta.dm3") + "/metadata?signal=5"), 404, "signal 5");
  ExpectError(Get(DatasetPath("beta.dm3") + "/metadata?signal=x"), 400, "signal");
}

TEST_F(ServerTest, ThumbnailsArePngOr404) {
  auto res = Get(DatasetPath("beta.dm3") + "/thumbnail");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "image/png");
  EXPECT_EQ(res->body, std::string(kPng.begin(), kPng.end()));
  ExpectError(Get(DatasetPath("beta.dm3") + "/thumbnail?signal=3"), 404);
  ExpectError(Get(DatasetPath("delta.dm3") + "/thumbnail"), 404);
  ExpectError(Get(DatasetPath("beta.dm3") + "/thumbnail?signal=-1"), 400);
  // Traversal through the thumbnail URL reaches nothing.
  ExpectError(Get("/api/v1/datasets/1/../../../secret.txt"), 404);
  ExpectError(Get("/api/v1/datasets/%2e%2e%2f%2e%2e%2fsecret.txt/thumbnail"), 404);
  ExpectError(Get("/api/v1/datasets/1%00/thumbnail"), 404);
}

TEST_F(ServerTest, DownloadServesThePrimaryFileUnlessEmbargoed) {
  auto res = Get(DatasetPath(kHtmlName) + "/download");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  EXPECT_EQ(res->body, std::string("DATA:") + kHtmlName);
  EXPECT_EQ(res->get_header_value("Content-Type"), "application/octet-stream");
  const std::string disposition = res->get_header_value("Content-Disposition");
  EXPECT_EQ(
      disposition.rfind("attachment; filename=\"alpha _img src_x onerror_alert_1__ _ _q_.dm3\"", 0),
      0u)
      << disposition;
  // httplib's client percent-decodes header values: the UTF-8 name comes back whole.
  EXPECT_NE(disposition.find(std::string("; filename*=UTF-8''") + kHtmlName), std::string::npos)
      << disposition;
  ExpectError(Get(DatasetPath("gamma.dm3") + "/download"), 403, "2999-01-01");
  fs::remove(files_ / "delta.dm3");
  ExpectError(Get(DatasetPath("delta.dm3") + "/download"), 404, "no longer");
}

TEST_F(ServerTest, DocumentsByIdEvenWithASlash) {
  for (const char* path :
       {"/api/v1/documents/10.1000/xyz-1", "/api/v1/documents/10.1000%2Fxyz-1"}) {
    json j = JsonOf(Get(path), 200);
    EXPECT_EQ(j["id"], "10.1000/xyz-1") << path;
    EXPECT_EQ(j["kind"], "publication");
    EXPECT_EQ(j["title"], "Gold <i>nanoparticles</i> at atomic resolution");
    EXPECT_EQ(j["authors"], json::array({"A. Author"}));
    EXPECT_EQ(j["doi"], "10.1000/xyz-1");
    EXPECT_TRUE(j["fields"].is_object());
  }
}

TEST_F(ServerTest, ExpertTagsAreAddedValidatedAndSearchableAtOnce) {
  const std::string beta = DatasetPath("beta.dm3");
  json added = JsonOf(Post(beta + "/tags", R"({"user":"ann","value":"  grain boundary "})"), 201);
  EXPECT_EQ(added["value"], "grain boundary");
  EXPECT_EQ(added["source"], "expert");
  EXPECT_EQ(added["state"], "accepted");
  EXPECT_EQ(added["confidence"], 1.0);
  EXPECT_EQ(added["validated_by"], "ann");
  EXPECT_TRUE(added["validated_at"].is_string());
  // The index has it before the answer came back.
  json found = JsonOf(Get("/api/v1/search?q=tag:%22grain%20boundary%22"), 200);
  ASSERT_EQ(found["total"], 1);
  EXPECT_EQ(found["hits"][0]["id"], "dataset:" + std::to_string(ids_["beta.dm3"]));

  // Accept and reject the machine's suggestions.
  const json haadf = FindTag("beta.dm3", "HAADF");
  const json script = FindTag("beta.dm3", kHtmlTag);
  ASSERT_FALSE(haadf.is_null());
  EXPECT_EQ(JsonOf(Get("/api/v1/search?q=tag:alert"), 200)["total"], 1);
  json accepted =
      JsonOf(Post("/api/v1/tags/" + std::to_string(haadf["id"].get<int64_t>()) + "/accept",
                  R"({"user":"bob"})"),
             200);
  EXPECT_EQ(accepted["state"], "accepted");
  EXPECT_EQ(accepted["validated_by"], "bob");
  json rejected =
      JsonOf(Post("/api/v1/tags/" + std::to_string(script["id"].get<int64_t>()) + "/reject",
                  R"({"user":"bob"})"),
             200);
  EXPECT_EQ(rejected["state"], "rejected");
  EXPECT_EQ(JsonOf(Get("/api/v1/search?q=tag:alert"), 200)["total"], 0);  // not its tag now

  // Removing: an expert tag goes; a machine's is kept as rejected.
  httplib::Client client = Client();
  auto removed =
      client.Delete("/api/v1/tags/" + std::to_string(added["id"].get<int64_t>()) + "?user=ann");
  ASSERT_TRUE(removed);
  EXPECT_EQ(removed->status, 204);
  EXPECT_TRUE(FindTag("beta.dm3", "grain boundary").is_null());
  json gone = JsonOf(Get("/api/v1/search?q=tag:%22grain%20boundary%22"), 200);
  EXPECT_EQ(gone["total"], 0);
  auto removed_machine =
      client.Delete("/api/v1/tags/" + std::to_string(haadf["id"].get<int64_t>()) + "?user=cy");
  ASSERT_TRUE(removed_machine);
  EXPECT_EQ(removed_machine->status, 204);
  EXPECT_EQ(FindTag("beta.dm3", "HAADF")["state"], "rejected");
  EXPECT_EQ(FindTag("beta.dm3", "HAADF")["validated_by"], "cy");
  ExpectError(client.Delete("/api/v1/tags/" + std::to_string(haadf["id"].get<int64_t>())), 400,
              "user");

  // Who tagged how many datasets.
  auto count = catalog_->CountDatasetsTaggedBy("bob");
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 1);
}

TEST_F(ServerTest, WritesRejectBadBodies) {
  const std::string tags = DatasetPath("beta.dm3") + "/tags";
  ExpectError(Post(tags, "{not json"), 400, "not valid JSON");
  ExpectError(Post(tags, "[1,2]"), 400, "JSON object");
  ExpectError(Post(tags, R"({"user":"ann","value":5})"), 400, "'value' must be a string");
  ExpectError(Post(tags, R"({"user":"ann"})"), 400, "'value' is missing");
  ExpectError(Post(tags, R"({"value":"x"})"), 400, "'user' is missing");
  ExpectError(Post(tags, R"({"user":"a b","value":"x"})"), 400, "'user' must be");
  ExpectError(Post(tags, R"({"user":"ann","value":"   "})"), 400, "empty");
  ExpectError(Post(tags, R"({"user":"ann","value":"a\u0001b"})"), 400, "control");
  ExpectError(Post(tags, R"({"user":"ann","value":"x"})", "text/plain"), 415, "Content-Type");
  ExpectError(Post(tags, R"({"user":"ann","value":"x"})", "application/x-www-form-urlencoded"),
              415);
  ExpectError(Post("/api/v1/datasets/999999/tags", R"({"user":"ann","value":"x"})"), 404);
  // Larger than the limit: refused before it is read.
  const std::string huge = R"({"user":"ann","value":")" + std::string(200000, 'a') + "\"}";
  ExpectError(Post(tags, huge), 413, "too large");
  // An HTML tag is stored as text and comes back as a JSON string.
  json added = JsonOf(
      Post(tags, json{{"user", "ann"}, {"value", "<img src=x onerror=alert(1)>"}}.dump()), 201);
  EXPECT_EQ(added["value"], "<img src=x onerror=alert(1)>");
}

TEST_F(ServerTest, TaggingQueueWalksPathOrderAndWraps) {
  // Paths in order: alpha..., beta, delta, gamma.
  json first = JsonOf(Get("/api/v1/tagging/next?user=ann"), 200);
  EXPECT_EQ(first["position"], 1);
  EXPECT_EQ(first["total"], 4);
  EXPECT_EQ(first["tagged_by_user"], 0);
  EXPECT_EQ(first["dataset"]["name"], kHtmlName);
  const std::string first_id = first["dataset"]["id"];
  std::string after = first_id.substr(first_id.find(':') + 1);
  std::vector<std::string> names;
  for (int i = 0; i < 4; ++i) {
    json next = JsonOf(Get("/api/v1/tagging/next?user=ann&after=" + after), 200);
    names.push_back(next["dataset"]["name"]);
    const std::string id = next["dataset"]["id"];
    after = id.substr(id.find(':') + 1);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"beta.dm3", "delta.dm3", "gamma.dm3", kHtmlName}));
  JsonOf(Post(DatasetPath("delta.dm3") + "/tags", R"({"user":"ann","value":"wafer"})"), 201);
  json counted = JsonOf(Get("/api/v1/tagging/next?user=ann&order=random&after=" + after), 200);
  EXPECT_EQ(counted["tagged_by_user"], 1);
  EXPECT_NE(counted["dataset"]["id"], "dataset:" + after);
  EXPECT_GE(counted["position"].get<int>(), 1);
  ExpectError(Get("/api/v1/tagging/next?order=sideways"), 400, "order");
  ExpectError(Get("/api/v1/tagging/next?after=999999"), 404);
  ExpectError(Get("/api/v1/tagging/next?after=-3"), 400, "after");
}

TEST_F(ServerTest, VocabularyCompletesLabelsAndCatalogTags) {
  json j = JsonOf(Get("/api/v1/vocabulary?prefix=haa&limit=10"), 200);
  bool haadf = false;
  for (const json& s : j["suggestions"]) haadf = haadf || (s["label"] == "HAADF");
  EXPECT_TRUE(haadf) << j.dump();
  JsonOf(Post(DatasetPath("delta.dm3") + "/tags", R"({"user":"ann","value":"Zebra stripes"})"),
         201);
  json tags = JsonOf(Get("/api/v1/vocabulary?prefix=zEbRa"), 200);
  ASSERT_EQ(tags["suggestions"].size(), 1u) << tags.dump();
  EXPECT_EQ(tags["suggestions"][0]["label"], "Zebra stripes");
  EXPECT_EQ(tags["suggestions"][0]["kind"], "tag");
  EXPECT_EQ(JsonOf(Get("/api/v1/vocabulary?prefix="), 200)["suggestions"].size(), 0u);
  json one = JsonOf(Get("/api/v1/vocabulary?prefix=s&limit=1"), 200);
  EXPECT_EQ(one["suggestions"].size(), 1u);
  ExpectError(Get("/api/v1/vocabulary?prefix=a&limit=0"), 400, "limit");
}

TEST_F(ServerTest, ClicksAreLogged) {
  json search = JsonOf(Get("/api/v1/search?q=gold&user=ann"), 200);
  const int64_t query_id = search["query_id"];
  auto res = Post(
      "/api/v1/clicks",
      json{{"user", "ann"}, {"query_id", query_id}, {"item", "dataset:2"}, {"rank", 1}}.dump());
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 204);
  // navigator.sendBeacon sends text/plain.
  res = Post("/api/v1/clicks",
             json{{"user", "ann"}, {"query_id", query_id}, {"item", "x"}, {"rank", 2}}.dump(),
             "text/plain;charset=UTF-8");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 204);
  auto clicks = catalog_->ClicksOfQuery(query_id);
  ASSERT_TRUE(clicks.ok());
  ASSERT_EQ(clicks->size(), 2u);
  EXPECT_EQ((*clicks)[0].item, "dataset:2");
  EXPECT_EQ((*clicks)[0].user, "ann");
  ExpectError(
      Post("/api/v1/clicks", R"({"user":"ann","query_id":999999,"item":"dataset:2","rank":1})"),
      404, "query");
  ExpectError(Post("/api/v1/clicks", R"({"user":"ann","query_id":1,"item":"x","rank":"1"})"), 400,
              "'rank' must be an integer");
  ExpectError(Post("/api/v1/clicks", R"({"user":"ann","query_id":1,"item":"x","rank":0})"), 400,
              "rank");
}

TEST_F(ServerTest, StaticFilesStayInsideTheWebRoot) {
  auto index = Get("/");
  ASSERT_TRUE(index);
  EXPECT_EQ(index->status, 200);
  EXPECT_EQ(index->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(index->body.find("<title>scisearch</title>"), std::string::npos);
  auto script = Get("/js/app.js");
  ASSERT_TRUE(script);
  EXPECT_EQ(script->status, 200);
  EXPECT_EQ(script->get_header_value("Content-Type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(script->get_header_value("Cache-Control"), "no-cache");
  const std::string etag = script->get_header_value("ETag");
  ASSERT_FALSE(etag.empty());
  httplib::Client client = Client();
  auto again = client.Get("/js/app.js", {{"If-None-Match", etag}});
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 304);

  for (const char* path :
       {"/../secret.txt", "/js/../../secret.txt", "/%2e%2e/secret.txt", "/%2e%2e%2fsecret.txt",
        "/js/%2E%2E/%2E%2E/secret.txt", "/..%2fsecret.txt", "/%2fetc%2fpasswd", "//etc/passwd",
        "/link-out.txt", "/index.html%00.png", "/js/", "/js", "/.hidden", "/nope.html",
        "/%5c..%5csecret.txt"}) {
    auto res = Get(path);
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 404) << path;
    EXPECT_EQ(res->body.find("SECRET"), std::string::npos) << path;
    EXPECT_EQ(res->get_header_value("Content-Type"), "application/json") << path;
  }
}

TEST_F(ServerTest, LimitsOnUrisAndHeaders) {
  auto long_uri = Get("/api/v1/search?q=" + std::string(20000, 'a'));
  ASSERT_TRUE(long_uri);
  EXPECT_EQ(long_uri->status, 414);
  httplib::Headers many;
  for (int i = 0; i < 100; ++i) many.emplace("X-Junk-" + std::to_string(i), "1");
  httplib::Client client = Client();
  ExpectError(client.Get("/api/v1/health", many), 431, "headers");
}

TEST_F(ServerTest, ConcurrentClientsSearchAndTagConsistently) {
  constexpr int kClients = 8;
  constexpr int kRounds = 15;
  std::atomic<int> failures{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      httplib::Client client("127.0.0.1", server_->port());
      for (int i = 0; i < kRounds; ++i) {
        auto search = client.Get("/api/v1/search?q=gold&limit=5");
        if (!search || search->status != 200) ++failures;
        auto detail = client.Get(DatasetPath("beta.dm3"));
        if (!detail || detail->status != 200) ++failures;
        const json body = {{"user", "u" + std::to_string(c)},
                           {"value", "t" + std::to_string(c) + "-" + std::to_string(i)}};
        auto tag = client.Post(DatasetPath("delta.dm3") + "/tags", body.dump(), "application/json");
        if (!tag || tag->status != 201) ++failures;
      }
    });
  }
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(failures.load(), 0);
  json delta = JsonOf(Get(DatasetPath("delta.dm3")), 200);
  EXPECT_EQ(delta["tags"].size(), static_cast<size_t>(kClients * kRounds));
  // Every tag is in the index.
  json found = JsonOf(Get("/api/v1/search?q=tag:t3-14"), 200);
  EXPECT_EQ(found["total"], 1);
  EXPECT_EQ(JsonOf(Get("/api/v1/health"), 200)["index_lag"], 0);
}

TEST_F(ServerTest, StopsCleanlyAndRefusesConnectionsAfter) {
  const int port = server_->port();
  server_->Stop();
  server_->Stop();  // twice is harmless
  EXPECT_TRUE(server_->Wait().ok());
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(std::chrono::seconds(1));
  EXPECT_FALSE(client.Get("/api/v1/health"));
  server_.reset();
}

TEST(ServerStartTest, RefusesBadOptionsAndMissingCatalogs) {
  TempDir dir;
  ServerOptions options;
  options.data_dir = dir.path() / "none";
  auto missing = Server::Start(options);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), ErrorCode::kNotFound);
  options.threads = 0;
  EXPECT_EQ(Server::Start(options).status().code(), ErrorCode::kInvalidArgument);
  options.threads = 2;
  options.port = 70000;
  EXPECT_EQ(Server::Start(options).status().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace scisearch::server
