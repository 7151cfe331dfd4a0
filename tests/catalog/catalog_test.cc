#include "catalog/catalog.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <string>

#include "test_util.h"

namespace scisearch::catalog {
namespace {

namespace fs = std::filesystem;
using ::scisearch::testing::TempDir;

// Runs one SQL statement on the catalog file through a separate connection and
// returns the first column of the first row as text ("" when there is none).
std::string Query(const fs::path& dir, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open((dir / "catalog.sqlite").c_str(), &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  sqlite3_stmt* st = nullptr;
  std::string out;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  const int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW && sqlite3_column_text(st, 0)) {
    out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  }
  EXPECT_TRUE(rc == SQLITE_ROW || rc == SQLITE_DONE) << sqlite3_errmsg(db);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

formats::Signal MakeSignal(const std::string& name, double kv) {
  formats::Signal s;
  s.name = name;
  s.dtype = formats::DType::kUInt16;
  s.shape = {4, 6};
  s.axes = {{"y", 4, 0.5, 0, "nm", false}, {"x", 6, 0.5, 0, "nm", false}};
  s.metadata = formats::Metadata::parse(
      R"({"ExperimentalDescription": {"High tension [kV]": 200.0, "Mode": "STEM"},
          "Dim": [{"Units": "nm"}, {"Units": "nm"}], "Count": 3, "Flag": true})");
  s.fields.instrument = "FEI Titan";
  s.fields.mode = formats::Mode::kStemImage;
  s.fields.beam_energy_kev = kv;
  s.fields.acquired = "2011-10-18T14:03:12";
  return s;
}

DatasetRecord MakeRecord(const std::string& path, int signals, int64_t mtime = 1000) {
  DatasetRecord r;
  r.path = path;
  r.root = "/data";
  r.files = {{path, 100, mtime}};
  r.fingerprint = ComputeFingerprint(r.files);
  r.dataset.path = path;
  r.dataset.format = "tia";
  for (int i = 0; i < signals; ++i)
    r.dataset.signals.push_back(MakeSignal("s" + std::to_string(i), 200));
  return r;
}

TEST(FlattenMetadataTest, KeyPathsAndTypes) {
  const auto tree = formats::Metadata::parse(
      R"({"A": {"B [kV]": 200, "C": 1.5, "D": "text", "E": true, "F": null},
          "Arr": [1, {"X": "y"}], "Empty": {}, "Big": 18446744073709551615, "Neg": -7})");
  const auto entries = FlattenMetadata(tree);
  ASSERT_EQ(entries.size(), 9u);
  EXPECT_EQ(entries[0].key_path, "$.A.\"B [kV]\"");
  EXPECT_EQ(entries[0].type, MetadataEntry::Type::kInt);
  EXPECT_EQ(entries[0].int_value, 200);
  EXPECT_EQ(entries[1].key_path, "$.A.C");
  EXPECT_EQ(entries[1].type, MetadataEntry::Type::kReal);
  EXPECT_DOUBLE_EQ(entries[1].real_value, 1.5);
  EXPECT_EQ(entries[2].type, MetadataEntry::Type::kText);
  EXPECT_EQ(entries[2].text_value, "text");
  EXPECT_EQ(entries[3].type, MetadataEntry::Type::kBool);
  EXPECT_EQ(entries[3].int_value, 1);
  EXPECT_EQ(entries[4].key_path, "$.A.F");
  EXPECT_EQ(entries[4].type, MetadataEntry::Type::kNull);
  EXPECT_EQ(entries[5].key_path, "$.Arr[0]");
  EXPECT_EQ(entries[5].int_value, 1);
  EXPECT_EQ(entries[6].key_path, "$.Arr[1].X");
  EXPECT_EQ(entries[6].text_value, "y");
  EXPECT_EQ(entries[7].key_path, "$.Big");
  EXPECT_EQ(entries[7].type, MetadataEntry::Type::kReal);
  EXPECT_DOUBLE_EQ(entries[7].real_value, 18446744073709551615.0);
  EXPECT_EQ(entries[8].int_value, -7);
  EXPECT_STREQ(MetadataTypeName(MetadataEntry::Type::kBool), "bool");
}

TEST(FlattenMetadataTest, CapsArraysDepthAndNonFiniteReals) {
  formats::Metadata tree;
  tree["Long"] = formats::Metadata::array();
  for (int i = 0; i < 1000; ++i) tree["Long"].push_back(i);
  tree["NaN"] = std::numeric_limits<double>::quiet_NaN();
  formats::Metadata deep = 1;
  for (int i = 0; i < 200; ++i) deep = formats::Metadata{{"k", deep}};
  tree["Deep"] = deep;
  const auto entries = FlattenMetadata(tree, 10);
  ASSERT_EQ(entries.size(), 11u);  // 10 array elements + NaN; the deep leaf is cut
  EXPECT_EQ(entries[9].key_path, "$.Long[9]");
  EXPECT_EQ(entries[10].type, MetadataEntry::Type::kText);
  EXPECT_EQ(entries[10].text_value, "nan");

  // Plain values: 16 at most whatever the limit; arrays of objects: up to the limit.
  formats::Metadata lists;
  for (int i = 0; i < 100; ++i) {
    lists["Table"].push_back(i);
    lists["Records"].push_back(formats::Metadata{{"n", i}});
  }
  const auto rows = FlattenMetadata(lists, 50);
  ASSERT_EQ(rows.size(), 16u + 50u);
  EXPECT_EQ(rows[15].key_path, "$.Table[15]");
  EXPECT_EQ(rows[16].key_path, "$.Records[0].n");
  EXPECT_EQ(rows.back().key_path, "$.Records[49].n");
}

TEST(FingerprintTest, DependsOnStatsNotOrder) {
  std::vector<FileStat> a = {{"/d/x.emi", 10, 5}, {"/d/x_1.ser", 20, 6}};
  std::vector<FileStat> b = {a[1], a[0]};
  EXPECT_EQ(ComputeFingerprint(a), ComputeFingerprint(b));
  EXPECT_EQ(ComputeFingerprint(a).size(), 32u);
  auto c = a;
  c[1].mtime_ns = 7;
  EXPECT_NE(ComputeFingerprint(a), ComputeFingerprint(c));
  c = a;
  c[0].size_bytes = 11;
  EXPECT_NE(ComputeFingerprint(a), ComputeFingerprint(c));
  c = a;
  c.pop_back();
  EXPECT_NE(ComputeFingerprint(a), ComputeFingerprint(c));
}

TEST(CatalogTest, OpenCreatesWalDatabaseAndRefusesNewerSchema) {
  TempDir tmp;
  const fs::path dir = tmp.path() / "sub" / "data";
  {
    auto cat = Catalog::Open(dir);
    ASSERT_TRUE(cat.ok()) << cat.status().message();
    EXPECT_TRUE(fs::exists(dir / "catalog.sqlite"));
    ASSERT_TRUE((*cat)->IntegrityCheck().ok());
  }
  EXPECT_EQ(Query(dir, "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(Query(dir, "PRAGMA user_version"), std::to_string(SchemaVersion()));
  for (const char* table :
       {"datasets", "dataset_files", "signals", "metadata_entries", "tags", "thumbnails",
        "ingest_runs", "ingest_errors", "users", "proposals", "sessions"}) {
    EXPECT_EQ(
        Query(dir, std::string("SELECT name FROM sqlite_master WHERE name = '") + table + "'"),
        table);
  }
  ASSERT_TRUE(Catalog::Open(dir).ok());  // reopening migrates nothing
  Query(dir, "PRAGMA user_version = 99");
  auto newer = Catalog::Open(dir);
  ASSERT_FALSE(newer.ok());
  EXPECT_EQ(newer.status().code(), ErrorCode::kUnsupported);
  EXPECT_NE(newer.status().message().find("99"), std::string::npos);
}

TEST(CatalogTest, PutAndGetDataset) {
  TempDir tmp;
  auto cat = Catalog::Open(tmp.path());
  ASSERT_TRUE(cat.ok());
  Catalog& c = **cat;
  auto run = c.StartRun("/data");
  ASSERT_TRUE(run.ok());
  DatasetRecord r = MakeRecord("/data/a.emi", 2);
  r.files.push_back({"/data/a_1.ser", 300, 2000});
  r.fingerprint = ComputeFingerprint(r.files);
  r.tags.push_back({"STO", "path", 0.5, "file name"});
  ASSERT_TRUE(c.PutDataset(*run, r).ok());

  auto got = c.GetDataset("/data/a.emi");
  ASSERT_TRUE(got.ok()) << got.status().message();
  ASSERT_TRUE(
      c.PutThumbnails(got->id, r.fingerprint, ThumbnailOutcome::kMade, {{0, {1, 2, 3}, 16, 8}})
          .ok());
  EXPECT_EQ(got->state, "ok");
  EXPECT_EQ(got->format, "tia");
  EXPECT_EQ(got->fingerprint, r.fingerprint);
  EXPECT_EQ(got->size_bytes, 400u);
  EXPECT_EQ(got->ingest_run_id, *run);
  EXPECT_EQ(got->fields.instrument.value_or(""), "FEI Titan");
  EXPECT_EQ(got->fields.mode, formats::Mode::kStemImage);
  EXPECT_DOUBLE_EQ(got->fields.beam_energy_kev.value_or(0), 200);
  ASSERT_EQ(got->files.size(), 2u);
  EXPECT_EQ(got->files[0].path, "/data/a.emi");  // primary first
  EXPECT_EQ(got->files[1].mtime_ns, 2000);
  ASSERT_EQ(got->signals.size(), 2u);
  EXPECT_EQ(got->signals[1].name, "s1");
  EXPECT_EQ(got->signals[0].dtype, "uint16");
  EXPECT_EQ(got->signals[0].shape_json, "[4,6]");
  EXPECT_NE(got->signals[0].axes_json.find("\"units\":\"nm\""), std::string::npos);
  EXPECT_NE(got->signals[0].metadata_json.find("High tension [kV]"), std::string::npos);

  auto thumb = c.GetThumbnail(got->id, 0);
  ASSERT_TRUE(thumb.ok());
  EXPECT_EQ(thumb->png, (std::vector<uint8_t>{1, 2, 3}));
  EXPECT_EQ(thumb->width, 16);
  EXPECT_EQ(c.GetThumbnail(got->id, 1).status().code(), ErrorCode::kNotFound);

  auto owner = c.FindDatasetByFile("/data/a_1.ser");
  ASSERT_TRUE(owner.ok());
  EXPECT_EQ(*owner, "/data/a.emi");
  EXPECT_EQ(c.GetDataset("/data/none").status().code(), ErrorCode::kNotFound);

  // Metadata rows are typed and searchable by key path.
  EXPECT_EQ(Query(tmp.path(),
                  "SELECT COUNT(*) FROM metadata_entries WHERE key_path = "
                  "'$.ExperimentalDescription.\"High tension [kV]\"' AND value_type = 'real' AND "
                  "value = 200 AND typeof(value) = 'real'"),
            "2");
  EXPECT_EQ(
      Query(tmp.path(), "SELECT value FROM metadata_entries WHERE key_path = '$.Flag' LIMIT 1"),
      "1");
  auto counts = c.Counts();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->datasets_ok, 1);
  EXPECT_EQ(counts->files, 2);
  EXPECT_EQ(counts->signals, 2);
  EXPECT_EQ(counts->metadata_entries, 2 * 6);
  EXPECT_EQ(counts->thumbnails, 1);
  EXPECT_EQ(counts->tags, 1);
  EXPECT_TRUE(c.IntegrityCheck().ok());
}

TEST(CatalogTest, ReplaceKeepsIdAndExpertTags) {
  TempDir tmp;
  auto cat = Catalog::Open(tmp.path());
  ASSERT_TRUE(cat.ok());
  Catalog& c = **cat;
  const int64_t run = *c.StartRun("/data");
  DatasetRecord r = MakeRecord("/data/a.dm3", 3);
  r.tags.push_back({"auto", "metadata", 0.9, ""});
  ASSERT_TRUE(c.PutDataset(run, r).ok());
  const int64_t id = c.GetDataset(r.path)->id;
  Query(tmp.path(), "INSERT INTO tags (dataset_id, value, source, created_at) VALUES (" +
                        std::to_string(id) + ", 'perovskite', 'expert', 'now')");
  const std::string first_seen = c.GetDataset(r.path)->first_seen;

  DatasetRecord again = MakeRecord("/data/a.dm3", 1, 5000);
  ASSERT_TRUE(c.PutDataset(run, again).ok());
  auto got = c.GetDataset(r.path);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->id, id);
  EXPECT_EQ(got->first_seen, first_seen);
  EXPECT_EQ(got->fingerprint, again.fingerprint);
  EXPECT_EQ(got->signals.size(), 1u);
  EXPECT_EQ(Query(tmp.path(), "SELECT COUNT(*) FROM metadata_entries"), "6");
  EXPECT_EQ(Query(tmp.path(), "SELECT group_concat(value) FROM tags"), "perovskite");
  EXPECT_TRUE(c.IntegrityCheck().ok());
}

// The search index follows the catalog through its change sequence: every write that
// changes what a dataset or document shows moves that item to a new, highest sequence.
TEST(CatalogTest, EveryWriteOfASearchableItemMovesItToTheLatestChange) {
  TempDir tmp;
  auto cat = Catalog::Open(tmp.path());
  ASSERT_TRUE(cat.ok());
  Catalog& c = **cat;
  const int64_t run = *c.StartRun("/data");
  auto items_after = [](Catalog& catalog, int64_t after) {
    std::string out;
    auto changes = catalog.ChangesSince(after);
    if (!changes.ok()) return changes.status().message();
    for (const ItemChange& change : *changes) out += change.item + " ";
    return out;
  };
  ASSERT_TRUE(c.PutDataset(run, MakeRecord("/data/a.dm3", 1)).ok());
  ASSERT_TRUE(c.PutDataset(run, MakeRecord("/data/b.dm3", 1)).ok());
  const std::string a = "dataset:" + std::to_string(c.GetDataset("/data/a.dm3")->id);
  const std::string b = "dataset:" + std::to_string(c.GetDataset("/data/b.dm3")->id);
  EXPECT_EQ(items_after(c, 0), a + " " + b + " ");
  const int64_t both = *c.ChangeSequence();

  // A new version of a: it alone moves, past b, and keeps one row.
  ASSERT_TRUE(c.PutDataset(run, MakeRecord("/data/a.dm3", 2, 5000)).ok());
  EXPECT_EQ(items_after(c, both), a + " ");
  EXPECT_GT(*c.ChangeSequence(), both);
  EXPECT_EQ(items_after(c, 0), b + " " + a + " ");

  // The same after the migrations that rewrote the triggers (8) and dropped indexes of
  // datasets (9) run again on a populated catalog.
  Query(tmp.path(), "PRAGMA user_version = 7");
  cat->reset();
  cat = Catalog::Open(tmp.path());
  ASSERT_TRUE(cat.ok()) << cat.status().message();
  Catalog& reopened = **cat;
  const int64_t before_tag = *reopened.ChangeSequence();
  ASSERT_TRUE(reopened.AddExpertTag(reopened.GetDataset("/data/b.dm3")->id, "lamella", "ana").ok());
  EXPECT_EQ(items_after(reopened, before_tag), b + " ");

  DocumentRecord document;
  document.id = "P-1";
  document.kind = "proposal";
  document.title = "Lamellae";
  ASSERT_TRUE(reopened.PutDocument(document).ok());
  const int64_t with_document = *reopened.ChangeSequence();
  document.title = "Lamellae again";
  ASSERT_TRUE(reopened.PutDocument(document).ok());
  EXPECT_EQ(items_after(reopened, with_document), "document:P-1 ");
  EXPECT_EQ(Query(tmp.path(), "SELECT COUNT(*) FROM index_changes"), "3");
  EXPECT_TRUE(reopened.IntegrityCheck().ok());
}

TEST(CatalogTest, ThumbnailsArePendingUntilAnOutcomeForTheCurrentVersion) {
  TempDir tmp;
  auto cat = Catalog::Open(tmp.path());
  ASSERT_TRUE(cat.ok());
  Catalog& c = **cat;
  const int64_t run = *c.StartRun("/data");
  DatasetRecord a = MakeRecord("/data/a.dm3", 1);
  ASSERT_TRUE(c.PutDataset(run, a).ok());
  ASSERT_TRUE(c.PutDataset(run, MakeRecord("/data/b.dm3", 1)).ok());
  ASSERT_TRUE(c.PutDataset(run, MakeRecord("/elsewhere/c.dm3", 1)).ok());
  ASSERT_TRUE(c.RecordError(run, {"/data/bad.dm3", "/data", "fp", {}, "truncated"}).ok());

  auto pending = c.PendingThumbnails("/data");
  ASSERT_TRUE(pending.ok());
  ASSERT_EQ(pending->size(), 2u);  // not the failed dataset, not outside the root
  EXPECT_EQ((*pending)[0].path, "/data/a.dm3");
  EXPECT_EQ((*pending)[0].fingerprint, a.fingerprint);
  EXPECT_EQ(c.PendingThumbnails("")->size(), 3u);

  // An outcome for an older version of the files writes nothing.
  const int64_t id = (*pending)[0].dataset_id;
  ASSERT_TRUE(c.PutThumbnails(id, "stale", ThumbnailOutcome::kMade, {{0, {9}, 1, 1}}).ok());
  EXPECT_EQ(c.GetThumbnail(id, 0).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(c.PendingThumbnails("/data")->size(), 2u);

  ASSERT_TRUE(c.PutThumbnails(id, a.fingerprint, ThumbnailOutcome::kMade, {{0, {9}, 1, 1}}).ok());
  ASSERT_TRUE(c.PutThumbnails((*pending)[1].dataset_id, (*pending)[1].fingerprint,
                              ThumbnailOutcome::kNone, {})
                  .ok());
  EXPECT_TRUE(c.PendingThumbnails("/data")->empty());
  EXPECT_EQ(c.GetThumbnail(id, 0)->png, std::vector<uint8_t>{9});

  // A changed file drops its thumbnails and needs new ones.
  ASSERT_TRUE(c.PutDataset(run, MakeRecord("/data/a.dm3", 1, 7777)).ok());
  EXPECT_EQ(c.GetThumbnail(id, 0).status().code(), ErrorCode::kNotFound);
  ASSERT_EQ(c.PendingThumbnails("/data")->size(), 1u);
  EXPECT_TRUE(c.IntegrityCheck().ok());
}

TEST(CatalogTest, MetadataViewServesEveryLeafUnderFlattenMetadataKeyPaths) {
  TempDir tmp;
  auto cat = Catalog::Open(tmp.path());
  ASSERT_TRUE(cat.ok());
  Catalog& c = **cat;
  DatasetRecord r = MakeRecord("/data/a.dm3", 1);
  r.dataset.signals[0].metadata = formats::Metadata::parse(
      R"({"Plain": 1, "with space": {"a.b": [true, 2.5, "x", null]}, "1st": "q\"uote",
          "_u": -3, "Ünï": "code"})");
  ASSERT_TRUE(c.PutDataset(*c.StartRun("/data"), r).ok());
  std::string expected;
  for (const MetadataEntry& e : FlattenMetadata(r.dataset.signals[0].metadata)) {
    expected += e.key_path + "|" + MetadataTypeName(e.type) + "\n";
  }
  std::string viewed;
  for (int i = 0;; ++i) {
    const std::string row =
        Query(tmp.path(),
              "SELECT key_path || '|' || value_type FROM metadata_entries LIMIT 1 "
              "OFFSET " +
                  std::to_string(i));
    if (row.empty()) break;
    viewed += row + "\n";
  }
  EXPECT_EQ(viewed, expected);
  EXPECT_EQ(c.Counts()->metadata_entries, 8);
}

TEST(CatalogTest, ProposalsSessionsPublicationsAndLinks) {
  TempDir tmp;
  auto cat = Catalog::Open(tmp.path());
  ASSERT_TRUE(cat.ok());
  Catalog& c = **cat;
  ProposalRecord p{"P-2011-0142",
                   "Ligand exchange on PbSe nanocrystals",
                   "We image lead selenide (PbSe) quantum dots...",
                   "asmith",
                   {"asmith", "bjones"},
                   "2011-01-01",
                   "2011-12-31",
                   "2013-06-30"};
  ASSERT_TRUE(c.PutProposal(p).ok());
  SessionRecord session{"TitanX-20111013-1",
                        "TitanX",
                        "bjones",
                        "asmith",
                        p.id,
                        "2011-10-13T09:00:00",
                        "2011-10-13T17:00:00",
                        "aligned, HAADF of PbSe"};
  ASSERT_TRUE(c.PutSession(session).ok());
  SessionRecord orphan = session;
  orphan.id = "x";
  orphan.proposal_id = "P-none";
  // A log may name a proposal before it arrives: the session keeps the name and
  // points at the proposal once it is there.
  ASSERT_TRUE(c.PutSession(orphan).ok());
  EXPECT_EQ(Query(tmp.path(), "SELECT IFNULL(proposal_id, 'null') FROM sessions WHERE id = 'x'"),
            "null");
  ProposalRecord late = p;
  late.id = "P-none";
  ASSERT_TRUE(c.PutProposal(late).ok());
  EXPECT_EQ(Query(tmp.path(), "SELECT proposal_id FROM sessions WHERE id = 'x'"), "P-none");
  ASSERT_TRUE(
      c.PutPublication(
           {"10.1000/xyz", "PbSe superlattices", "abstract", {"A. Smith"}, "2012-05-01", {p.id}})
          .ok());
  ASSERT_TRUE(c.PutDataset(*c.StartRun("/data"), MakeRecord("/data/a.emi", 1)).ok());
  ASSERT_TRUE(c.LinkDataset("/data/a.emi", session.id, p.id, p.release_date).ok());
  EXPECT_EQ(c.LinkDataset("/data/none.emi", "", "", "").code(), ErrorCode::kNotFound);

  EXPECT_EQ(Query(tmp.path(), "SELECT team || abstract FROM proposals"),
            R"(["asmith","bjones"]We image lead selenide (PbSe) quantum dots...)");
  EXPECT_EQ(Query(tmp.path(), "SELECT notes FROM sessions"), "aligned, HAADF of PbSe");
  EXPECT_EQ(Query(tmp.path(), "SELECT proposals FROM publications"), R"(["P-2011-0142"])");
  EXPECT_EQ(Query(tmp.path(),
                  "SELECT session_id || ' ' || proposal_id || ' ' || embargo_until FROM datasets"),
            "TitanX-20111013-1 P-2011-0142 2013-06-30");
  EXPECT_TRUE(c.IntegrityCheck().ok());
}

TEST(CatalogTest, DatasetModeIsTheMostTellingOfItsSignals) {
  TempDir tmp;
  auto cat = Catalog::Open(tmp.path());
  ASSERT_TRUE(cat.ok());
  Catalog& c = **cat;
  DatasetRecord r = MakeRecord("/data/si.emd", 2);  // a survey image, then the spectrum image
  r.dataset.signals[1].fields.mode = formats::Mode::kSpectrumImage;
  r.dataset.signals[1].fields.detector = "Super-X";
  ASSERT_TRUE(c.PutDataset(*c.StartRun("/data"), r).ok());
  auto got = c.GetDataset(r.path);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->fields.mode, formats::Mode::kSpectrumImage);
  EXPECT_EQ(got->fields.instrument.value_or(""), "FEI Titan");  // the first signal's
  EXPECT_FALSE(got->fields.detector.has_value());
  EXPECT_EQ(got->signals[0].fields.mode, formats::Mode::kStemImage);
}

TEST(CatalogTest, EmiSubsumesLoneSer) {
  TempDir tmp;
  auto cat = Catalog::Open(tmp.path());
  ASSERT_TRUE(cat.ok());
  Catalog& c = **cat;
  const int64_t run = *c.StartRun("/data");
  ASSERT_TRUE(c.PutDataset(run, MakeRecord("/data/a_1.ser", 1)).ok());
  DatasetRecord emi = MakeRecord("/data/a.emi", 1);
  emi.files.push_back({"/data/a_1.ser", 100, 1000});
  ASSERT_TRUE(c.PutDataset(run, emi).ok());
  EXPECT_EQ(c.GetDataset("/data/a_1.ser").status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(*c.FindDatasetByFile("/data/a_1.ser"), "/data/a.emi");
  EXPECT_EQ(c.Counts()->datasets_ok, 1);
}

TEST(CatalogTest, ErrorsGoneAndRuns) {
  TempDir tmp;
  auto cat = Catalog::Open(tmp.path());
  ASSERT_TRUE(cat.ok());
  Catalog& c = **cat;
  const int64_t stale = *c.StartRun("/data");
  const int64_t run = *c.StartRun("/data");
  EXPECT_EQ(c.GetRun(stale)->status, "interrupted");
  EXPECT_EQ(c.GetRun(run)->status, "running");

  ASSERT_TRUE(c.PutDataset(run, MakeRecord("/data/good.dm3", 1)).ok());
  ASSERT_TRUE(c.PutDataset(run, MakeRecord("/data/bad.dm3", 1)).ok());
  ErrorRecord e{"/data/bad.dm3", "/data", "fp", {{"/data/bad.dm3", 5, 9}}, "truncated header"};
  ASSERT_TRUE(c.RecordError(run, e).ok());
  ASSERT_TRUE(c.PutDataset(run, MakeRecord("/database/other.dm3", 1)).ok());

  auto known = c.FindFingerprints("/data");
  ASSERT_TRUE(known.ok());
  ASSERT_EQ(known->size(), 2u);  // "/database" is not under "/data"
  EXPECT_EQ(known->at("/data/bad.dm3").state, "error");
  EXPECT_EQ(known->at("/data/bad.dm3").fingerprint, "fp");
  auto bad = c.GetDataset("/data/bad.dm3");
  EXPECT_EQ(bad->error, "truncated header");
  EXPECT_TRUE(bad->signals.empty());
  auto errors = c.ListErrors(run);
  ASSERT_TRUE(errors.ok());
  ASSERT_EQ(errors->size(), 1u);
  EXPECT_EQ((*errors)[0].reason, "truncated header");

  RunStats stats;
  stats.files_seen = 3;
  stats.errors = 1;
  ASSERT_TRUE(c.FinishRun(run, stats).ok());
  auto finished = c.GetRun(run);
  EXPECT_EQ(finished->status, "finished");
  EXPECT_EQ(finished->stats.files_seen, 3);
  EXPECT_FALSE(finished->finished_at.empty());

  // A later run that skips the unchanged bad file still reports it.
  const int64_t next = *c.StartRun("/data");
  EXPECT_EQ(*c.RecordUnchangedErrors(next, "/data"), 1);
  EXPECT_EQ(c.ListErrors(next)->at(0).path, "/data/bad.dm3");

  EXPECT_EQ(*c.MarkGone(next, {"/data/good.dm3", "/data/missing"}), 1);
  EXPECT_EQ(*c.MarkGone(next, {"/data/good.dm3"}), 0);
  EXPECT_EQ(c.GetDataset("/data/good.dm3")->state, "gone");
  EXPECT_TRUE(c.TouchSeen("/data").ok());
  auto listed = c.ListDatasets("/data");
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].path, "/data/bad.dm3");
  EXPECT_EQ(c.ListDatasets("", "gone")->size(), 1u);
  EXPECT_EQ(c.ListDatasets("", "", 1)->size(), 1u);
  EXPECT_TRUE(c.IntegrityCheck().ok());
}

TEST(CatalogTest, BatchWriterCommitsInBatchesAndIsolatesFailures) {
  TempDir tmp;
  auto cat = Catalog::Open(tmp.path());
  ASSERT_TRUE(cat.ok());
  Catalog& c = **cat;
  const int64_t run = *c.StartRun("/data");
  auto reader = Catalog::Open(tmp.path());  // a second connection sees only commits
  ASSERT_TRUE(reader.ok());
  {
    Catalog::BatchWriter batch(c, 4);
    for (int i = 0; i < 10; ++i) {
      ASSERT_TRUE(batch.PutDataset(run, MakeRecord("/data/f" + std::to_string(i), 1)).ok());
      if (i == 5) {
        DatasetRecord broken = MakeRecord("/data/broken", 1);
        broken.tags.push_back({"x", "not-a-source", 1, ""});  // violates the CHECK
        EXPECT_FALSE(batch.PutDataset(run, broken).ok());
      }
    }
    EXPECT_EQ(batch.pending(), 2u);
    EXPECT_EQ((*reader)->Counts()->datasets_ok, 8);
    // Destroyed without Flush: the last two writes are rolled back.
  }
  EXPECT_EQ(c.Counts()->datasets_ok, 8);
  EXPECT_EQ(c.GetDataset("/data/broken").status().code(), ErrorCode::kNotFound);
  {
    Catalog::BatchWriter batch(c, 100);
    ASSERT_TRUE(batch.PutDataset(run, MakeRecord("/data/f8", 1)).ok());
    ASSERT_TRUE(batch.RecordError(run, {"/data/f9", "/data", "fp", {}, "bad"}).ok());
    ASSERT_TRUE(batch.Flush().ok());
  }
  EXPECT_EQ((*reader)->Counts()->datasets_ok, 9);
  EXPECT_EQ((*reader)->Counts()->datasets_error, 1);
  EXPECT_TRUE(c.IntegrityCheck().ok());
}

}  // namespace
}  // namespace scisearch::catalog
