#include "context/linker.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "context/tagger.h"
#include "test_util.h"

namespace scisearch::context {
namespace {

using catalog::Catalog;
using catalog::DatasetRecord;
using ::scisearch::testing::TempDir;

// A facility of two instruments, two proposals and a paper, as the user logs and
// the proposal office would record them.
class LinkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = Catalog::Open(tmp_.path());
    ASSERT_TRUE(opened.ok()) << opened.status().message();
    catalog_ = std::move(*opened);
    Catalog& c = *catalog_;
    ASSERT_TRUE(c.PutPerson({"jsmith", "Jane Smith", "LBNL"}).ok());
    ASSERT_TRUE(c.PutPerson({"mercius", "Mia Ercius", "LBNL"}).ok());
    // The log names a proposal that arrives later: the session adopts it then.
    ASSERT_TRUE(
        c.PutSession({"TitanX-20111013-1", "TitanX", "jsmith", "jsmith", "P-1",
                      "2011-10-13T09:00:00", "2011-10-13T17:00:00", "PbSe cubes, HAADF at 300 kV"})
            .ok());
    ASSERT_TRUE(c.PutSession({"TitanX-20111013-2", "TitanX", "mercius", "mercius", "P-2",
                              "2011-10-13T18:00:00", "2011-10-14T02:00:00", "gold"})
                    .ok());
    ASSERT_TRUE(c.PutSession({"Helios-20111013-1", "Helios", "mercius", "mercius", "P-2",
                              "2011-10-13T08:00:00", "2011-10-13T20:00:00", ""})
                    .ok());
    ASSERT_TRUE(c.PutProposal({"P-1",
                               "Shape control of lead selenide nanocrystals",
                               "We image PbSe nanocrystals.",
                               "jsmith",
                               {"jsmith"},
                               "2011-01-01",
                               "2012-12-31",
                               "2013-06-30"})
                    .ok());
    ASSERT_TRUE(c.PutProposal({"P-2",
                               "Gold catalysts",
                               "Au particles.",
                               "mercius",
                               {"mercius"},
                               "2011-01-01",
                               "2012-12-31",
                               "2012-01-01"})
                    .ok());
    ASSERT_TRUE(
        c.PutPublication(
             {"10.1000/early", "An earlier paper", "", {"Jane Smith"}, "2010-05-01", {"P-1"}})
            .ok());
    ASSERT_TRUE(c.PutPublication(
                     {"10.1000/pbse", "Cubes of PbSe", "", {"Jane Smith"}, "2012-03-01", {"P-1"}})
                    .ok());
    run_ = *c.StartRun("/facility");
  }

  int64_t Put(const std::string& relative, formats::Mode mode, const std::string& acquired,
              const std::string& detector = "HAADF", const std::string& instrument = "") {
    DatasetRecord r;
    r.root = "/facility";
    r.path = "/facility/" + relative;
    r.files = {{r.path, 100, 1318500000000000000}};
    r.fingerprint = catalog::ComputeFingerprint(r.files);
    r.dataset.path = r.path;
    r.dataset.format = "tia";
    formats::Signal s;
    s.name = detector;
    s.shape = {4, 4};
    s.axes = {{"y", 4, 1, 0, "nm", false}, {"x", 4, 1, 0, "nm", false}};
    s.fields.mode = mode;
    if (!acquired.empty()) s.fields.acquired = acquired;
    if (!instrument.empty()) s.fields.instrument = instrument;
    s.fields.detector = detector;
    r.dataset.signals.push_back(s);
    EXPECT_TRUE(catalog_->PutDataset(run_, r).ok());
    return catalog_->GetDataset(r.path)->id;
  }

  std::vector<catalog::LinkRecord> Links(int64_t id, const std::string& kind) {
    std::vector<catalog::LinkRecord> out;
    const auto links = catalog_->DatasetLinks(id);
    EXPECT_TRUE(links.ok());
    for (const auto& l : *links) {
      if (l.kind == kind) out.push_back(l);
    }
    return out;
  }

  bool HasTag(int64_t id, const std::string& value) {
    const auto row = catalog_->GetDatasetById(id);
    for (const auto& t : row->tags) {
      if (t.value == value) return true;
    }
    return false;
  }

  TempDir tmp_;
  std::unique_ptr<Catalog> catalog_;
  int64_t run_ = 0;
};

TEST_F(LinkerTest, FileInsideABookingLinksToSessionProposalAndLaterPapers) {
  const int64_t id = Put("TitanX/Smith/2011/20111013 - PbSe cubes/14.03.12 HAADF_0001.emi",
                         formats::Mode::kStemImage, "2011-10-13T14:03:12", "HAADF", "FEI Titan");
  auto summary = LinkCatalog(*catalog_, {});
  ASSERT_TRUE(summary.ok()) << summary.status().message();
  EXPECT_EQ(summary->datasets, 1);
  EXPECT_EQ(summary->with_session, 1);

  const auto row = catalog_->GetDatasetById(id);
  EXPECT_EQ(row->session_id, "TitanX-20111013-1");
  EXPECT_EQ(row->proposal_id, "P-1");
  EXPECT_EQ(row->embargo_until, "2013-06-30");
  const auto sessions = Links(id, "session");
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_GT(sessions[0].confidence, 0.9);
  EXPECT_NE(sessions[0].evidence.find("inside"), std::string::npos) << sessions[0].evidence;
  // Only the paper published after the acquisition.
  const auto papers = Links(id, "publication");
  ASSERT_EQ(papers.size(), 1u);
  EXPECT_EQ(papers[0].target_id, "10.1000/pbse");
  EXPECT_NE(papers[0].evidence.find("acknowledges proposal P-1"), std::string::npos);
  // Tags from the metadata and the folder names.
  EXPECT_TRUE(HasTag(id, "STEM"));
  EXPECT_TRUE(HasTag(id, "HAADF-STEM"));
  EXPECT_TRUE(HasTag(id, "PbSe"));
  EXPECT_TRUE(HasTag(id, "Se"));
}

TEST_F(LinkerTest, ClockSkewIsToleratedAtLowerConfidence) {
  // Ten minutes after the booking ended, on the instrument's clock.
  const int64_t id = Put("TitanX/late.emi", formats::Mode::kStemImage, "2011-10-13T17:10:00");
  ASSERT_TRUE(LinkCatalog(*catalog_, {}).ok());
  const auto sessions = Links(id, "session");
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_EQ(sessions[0].target_id, "TitanX-20111013-1");
  EXPECT_LT(sessions[0].confidence, 0.9);
  EXPECT_NE(sessions[0].evidence.find("near"), std::string::npos);
  // Far outside every booking: no session.
  const int64_t lost = Put("TitanX/night.emi", formats::Mode::kStemImage, "2011-10-15T03:00:00");
  ASSERT_TRUE(LinkCatalog(*catalog_, {}).ok());
  EXPECT_TRUE(Links(lost, "session").empty());
  EXPECT_EQ(catalog_->GetDatasetById(lost)->session_id, "");
}

TEST_F(LinkerTest, TheInstrumentDecidesBetweenOverlappingBookings) {
  // 19:00 is inside the second Titan booking and inside the Helios one.
  const int64_t titan = Put("TitanX/a.emi", formats::Mode::kStemImage, "2011-10-13T19:00:00");
  const int64_t helios =
      Put("Helios/b.tif", formats::Mode::kSemImage, "2011-10-13T19:00:00", "ETD", "FEI Helios");
  // No folder names the instrument: the time alone fits two bookings.
  const int64_t unknown = Put("misc/c.tif", formats::Mode::kSemImage, "2011-10-13T19:00:00");
  ASSERT_TRUE(LinkCatalog(*catalog_, {}).ok());
  EXPECT_EQ(catalog_->GetDatasetById(titan)->session_id, "TitanX-20111013-2");
  EXPECT_EQ(catalog_->GetDatasetById(helios)->session_id, "Helios-20111013-1");
  EXPECT_EQ(catalog_->GetDatasetById(unknown)->session_id, "");
  EXPECT_TRUE(HasTag(helios, "SEM"));
  EXPECT_TRUE(HasTag(helios, "secondary electrons"));
}

TEST_F(LinkerTest, InstrumentNamesAreLearnedFromTheFolders) {
  // Three files in the Helios folder say "FEI Helios"; a fourth, elsewhere, is placed by it.
  for (int i = 0; i < 3; ++i) {
    Put("Helios/s" + std::to_string(i) + ".tif", formats::Mode::kSemImage, "2011-10-13T10:00:00",
        "ETD", "FEI Helios");
  }
  const int64_t moved =
      Put("copied/d.tif", formats::Mode::kSemImage, "2011-10-13T19:00:00", "ETD", "FEI Helios");
  ASSERT_TRUE(LinkCatalog(*catalog_, {}).ok());
  const auto sessions = Links(moved, "session");
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_EQ(sessions[0].target_id, "Helios-20111013-1");
  EXPECT_NE(sessions[0].evidence.find("metadata name 'FEI Helios'"), std::string::npos);
}

TEST_F(LinkerTest, RelinkingKeepsExpertDecisionsAndReplacesMachineConclusions) {
  const int64_t id =
      Put("TitanX/Smith/20111013 PbSe/x.emi", formats::Mode::kStemImage, "2011-10-13T10:00:00");
  ASSERT_TRUE(LinkCatalog(*catalog_, {}).ok());
  const auto first = catalog_->GetDatasetById(id)->tags.size();
  ASSERT_GT(first, 0u);
  // Run again: the same tags, not twice as many; the same links; nothing rewritten.
  const int64_t changes = *catalog_->ChangeSequence();
  auto again = LinkCatalog(*catalog_, {});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->unchanged, 1);
  EXPECT_EQ(*catalog_->ChangeSequence(), changes);
  EXPECT_EQ(catalog_->GetDatasetById(id)->tags.size(), first);
  EXPECT_EQ(Links(id, "session").size(), 1u);
  // A changed log entry changes the evidence: the datasets of its session are rewritten.
  ASSERT_TRUE(catalog_
                  ->PutSession({"TitanX-20111013-1", "TitanX", "jsmith", "jsmith", "P-1",
                                "2011-10-13T09:00:00", "2011-10-13T17:00:00", "new notes"})
                  .ok());
  auto after_log = LinkCatalog(*catalog_, {});
  ASSERT_TRUE(after_log.ok());
  EXPECT_EQ(after_log->unchanged, 0);
}

TEST_F(LinkerTest, ATimeFromTheFolderAndFileNamesIsUsedWhenTheInstrumentHasNone) {
  const int64_t id = Put("TitanX/Smith/2011/20111013 - PbSe/15.20.55 Scanning Acquire_0026.emi",
                         formats::Mode::kStemImage, "");
  ASSERT_TRUE(LinkCatalog(*catalog_, {}).ok());
  const auto sessions = Links(id, "session");
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_EQ(sessions[0].target_id, "TitanX-20111013-1");
  EXPECT_NE(sessions[0].evidence.find("folder and file names"), std::string::npos)
      << sessions[0].evidence;
}

TEST(TaggerTest, MergesNearDuplicatesAndRanksByConfidence) {
  catalog::DatasetRow d;
  d.fields.mode = formats::Mode::kStemImage;
  d.signal_names = {"HAADF", "BF"};
  DatasetEvidence evidence;
  evidence.dataset = &d;
  evidence.relative_path = "Titan/20111013 PbSe PBSE/HAADF-BF 5.1 Mx.emd";
  const auto tags = ContextTags(evidence);
  ASSERT_FALSE(tags.empty());
  int pbse = 0;
  for (size_t i = 0; i < tags.size(); ++i) {
    if (i > 0) {
      EXPECT_GE(tags[i - 1].confidence, tags[i].confidence);
    }
    EXPECT_GT(tags[i].confidence, 0);
    EXPECT_LE(tags[i].confidence, 1);
    EXPECT_FALSE(tags[i].evidence.empty());
    if (tags[i].value == "PbSe" || tags[i].value == "PBSE" || tags[i].value == "pbse") ++pbse;
  }
  EXPECT_EQ(pbse, 1);
  const auto has = [&](const std::string& v) {
    return std::any_of(tags.begin(), tags.end(), [&](const auto& t) { return t.value == v; });
  };
  EXPECT_TRUE(has("BF-STEM"));
  EXPECT_TRUE(has("lead"));
  EXPECT_TRUE(has("selenium"));
  EXPECT_FALSE(has("TEM"));
}

}  // namespace
}  // namespace scisearch::context
