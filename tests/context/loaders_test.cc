// Tests of the context loaders: user logs (CSV, JSON), proposals and publications
// (JSON, text, PDF), on well-formed and hostile input, through a temporary catalog.
#include "context/loaders.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "context/documents.h"
#include "test_util.h"

namespace scisearch::context {
namespace {

namespace fs = std::filesystem;
using catalog::Catalog;
using namespace std::string_literals;

// --- Pure parsers ---------------------------------------------------------------

TEST(DecodeTextTest, KeepsUtf8DropsBomAndConvertsLatin1PerLine) {
  EXPECT_EQ(DecodeText("\xEF\xBB\xBFstart,end\n"), "start,end\n");
  EXPECT_EQ(DecodeText("caf\xC3\xA9\n"), "caf\xC3\xA9\n");
  // A Latin-1 line among UTF-8 lines: only that line is converted.
  EXPECT_EQ(DecodeText("\xC2\xB5m ok\nna\xEFve 5\xB5m\n"),
            "\xC2\xB5m ok\nna\xC3\xAFve 5\xC2\xB5m\n");
  // Windows-1252's curly quotes.
  EXPECT_EQ(DecodeText("\x93quoted\x94"), "\xE2\x80\x9Cquoted\xE2\x80\x9D");
  // NUL bytes are dropped.
  EXPECT_EQ(DecodeText(std::string("a\0b", 3)), "ab");
  // UTF-16 with and without BOM.
  EXPECT_EQ(DecodeText(std::string("\xFF\xFEs\0t\0\xB5\0", 8)), "st\xC2\xB5");
  EXPECT_EQ(DecodeText(std::string("\xFE\xFF\0s\0t", 6)), "st");
  EXPECT_EQ(DecodeText(std::string("i\0d\0", 4)), "id");
}

TEST(CsvTest, Rfc4180QuotesDelimitersAndLineBreaks) {
  const CsvTable t =
      ParseCsv("a,b,c\r\n\"x, y\",\"say \"\"hi\"\"\",\"two\r\nlines\"\r\n\r\nlast,,\n", ',');
  EXPECT_TRUE(t.errors.empty());
  ASSERT_EQ(t.rows.size(), 3u);
  EXPECT_EQ(t.rows[0].cells, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(t.rows[1].line, 2);
  EXPECT_EQ(t.rows[1].cells, (std::vector<std::string>{"x, y", "say \"hi\"", "two\nlines"}));
  EXPECT_EQ(t.rows[2].line, 5);  // after the quoted line break and a blank line
  EXPECT_EQ(t.rows[2].cells, (std::vector<std::string>{"last", "", ""}));
}

TEST(CsvTest, UnbalancedQuoteCostsOnlyItsRow) {
  const CsvTable t = ParseCsv("h1,h2\n\"open,x\nok1,y\nok2,z\n", ',');
  ASSERT_EQ(t.errors.size(), 1u);
  EXPECT_EQ(t.errors[0].first, 2);
  EXPECT_NE(t.errors[0].second.find("never closed"), std::string::npos);
  ASSERT_EQ(t.rows.size(), 3u);
  EXPECT_EQ(t.rows[1].cells[0], "ok1");
  EXPECT_EQ(t.rows[1].line, 3);
  EXPECT_EQ(t.rows[2].line, 4);
}

TEST(CsvTest, LenientAboutStrayQuotesAndEmptyInput) {
  const CsvTable t = ParseCsv("ab\"c,\"q\"tail\n", ',');
  ASSERT_EQ(t.rows.size(), 1u);
  EXPECT_EQ(t.rows[0].cells, (std::vector<std::string>{"ab\"c", "qtail"}));
  EXPECT_TRUE(ParseCsv("", ',').rows.empty());
  EXPECT_TRUE(ParseCsv("\n\n\r\n", ',').rows.empty());
}

TEST(CsvTest, SniffsTheHeaderDelimiter) {
  EXPECT_EQ(SniffDelimiter("user;start;end\n1,2;3;4"), ';');
  EXPECT_EQ(SniffDelimiter("user\tstart\tend\n"), '\t');
  EXPECT_EQ(SniffDelimiter("\"a;b\",start,end\n"), ',');
  EXPECT_EQ(SniffDelimiter("single\n"), ',');
}

TEST(LogTimeTest, FormsPeopleWrite) {
  EXPECT_EQ(ParseLogTime("2011-10-13T16:20:05", false), "2011-10-13T16:20:05");
  EXPECT_EQ(ParseLogTime("2011-10-13 16:20", false), "2011-10-13T16:20:00");
  EXPECT_EQ(ParseLogTime("2011-10-13T16:20", false), "2011-10-13T16:20:00");
  EXPECT_EQ(ParseLogTime("10/13/2011 4:20 PM", false), "2011-10-13T16:20:00");
  EXPECT_EQ(ParseLogTime("10/13/2011 12:05 AM", false), "2011-10-13T00:05:00");
  EXPECT_EQ(ParseLogTime("13.10.2011 16:20", false), "2011-10-13T16:20:00");
  EXPECT_EQ(ParseLogTime("2011-10-13T16:20:00Z", false), "2011-10-13T16:20:00");
  EXPECT_EQ(ParseLogTime("2011-10-13T16:20:00+02:00", false), "2011-10-13T16:20:00");
  EXPECT_EQ(ParseLogTime("2011-10-13", false), "2011-10-13");
  // Day or month first, as the file says.
  EXPECT_EQ(ParseLogTime("03/04/2012 09:00", false), "2012-03-04T09:00:00");
  EXPECT_EQ(ParseLogTime("03/04/2012 09:00", true), "2012-04-03T09:00:00");
  EXPECT_EQ(ParseLogTime("not a date", false), std::nullopt);
  EXPECT_EQ(ParseLogTime("", false), std::nullopt);
  EXPECT_EQ(ParseLogTime("13/13/2011 10:00", false), std::nullopt);
  // An explicit format must match the whole text.
  EXPECT_EQ(ParseLogTime("13|10|2011 16h20", false, "%d|%m|%Y %Hh%M"), "2011-10-13T16:20:00");
  EXPECT_EQ(ParseLogTime("13|10|2011 16h20 junk", false, "%d|%m|%Y %Hh%M"), std::nullopt);
}

TEST(LogTimeTest, DayFirstRuleIsPerFile) {
  EXPECT_FALSE(LogDatesAreDayFirst({"03/04/2012 09:00", "12/11/2012 10:00"}));
  EXPECT_TRUE(LogDatesAreDayFirst({"03/04/2012 09:00", "13/11/2012 10:00"}));
  EXPECT_TRUE(LogDatesAreDayFirst({"", "25-12-2012"}));
  EXPECT_FALSE(LogDatesAreDayFirst({"2012-11-13 10:00", "10/13/2011"}));  // ISO, month first
  EXPECT_FALSE(LogDatesAreDayFirst({"99/04/2012", "13:30"}));
}

TEST(FindDoiTest, StripsSentencePunctuationKeepsBalancedParentheses) {
  EXPECT_EQ(FindDoi("see https://doi.org/10.1021/acs.nanolett.5b01234."),
            "10.1021/acs.nanolett.5b01234");
  EXPECT_EQ(FindDoi("(doi: 10.1016/0022-3697(69)90099-0)"), "10.1016/0022-3697(69)90099-0");
  EXPECT_EQ(FindDoi("no doi 10.12/x here, nor 210.1234/abc"), "");
  EXPECT_EQ(FindDoi("10.1234/"), "");
}

TEST(LogConfigTest, ParsesAndRejectsWithTheKeyNamed) {
  auto config = ParseLogConfig(
      R"({"columns": {"start": "Begin Time", "end": 4}, "instrument": "TitanX",
          "time_format": "%d/%m/%Y %H:%M", "day_first": true, "delimiter": "tab"})");
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ(config->columns.at("start"), "Begin Time");
  EXPECT_EQ(config->columns.at("end"), "4");
  EXPECT_EQ(config->instrument, "TitanX");
  EXPECT_EQ(config->delimiter, '\t');
  EXPECT_EQ(config->day_first, true);
  auto bad = ParseLogConfig(R"({"columns": {"begin": "x"}})");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("begin"), std::string::npos);
  bad = ParseLogConfig(R"({"colums": {}})");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("colums"), std::string::npos);
  EXPECT_FALSE(ParseLogConfig(R"({"day_first": "yes"})").ok());
  EXPECT_FALSE(ParseLogConfig("[1]").ok());
  EXPECT_FALSE(ParseLogConfig("{").ok());
}

// --- Through the catalog ------------------------------------------------------

// A minimal one-page PDF whose page shows `lines` (Helvetica), with an Info
// dictionary of `title` and a creation date, and byte-exact cross references.
std::string MinimalPdf(const std::vector<std::string>& lines, const std::string& title,
                       const std::string& encrypt = "") {
  std::string content = "BT /F1 12 Tf 14 TL 72 720 Td";
  for (const std::string& line : lines) content += " (" + line + ") Tj T*";
  content += " ET";
  const std::vector<std::string> objects = {
      "<< /Type /Catalog /Pages 2 0 R >>",
      "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
      "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
      "/Resources << /Font << /F1 5 0 R >> >> >>",
      "<< /Length " + std::to_string(content.size()) + " >>\nstream\n" + content + "\nendstream",
      "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
      "<< /Title (" + title + ") /CreationDate (D:20210315120000Z) >>",
  };
  std::string pdf = "%PDF-1.4\n";
  std::vector<size_t> offsets;
  for (size_t i = 0; i < objects.size(); ++i) {
    offsets.push_back(pdf.size());
    pdf += std::to_string(i + 1) + " 0 obj\n" + objects[i] + "\nendobj\n";
  }
  const size_t xref = pdf.size();
  pdf += "xref\n0 " + std::to_string(objects.size() + 1) + "\n0000000000 65535 f \n";
  for (size_t offset : offsets) {
    char entry[32];
    std::snprintf(entry, sizeof entry, "%010zu 00000 n \n", offset);
    pdf += entry;
  }
  pdf += "trailer\n<< /Size " + std::to_string(objects.size() + 1) + " /Root 1 0 R /Info 6 0 R" +
         encrypt + " >>\nstartxref\n" + std::to_string(xref) + "\n%%EOF\n";
  return pdf;
}

class LoadersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = Catalog::Open(tmp_.path() / "data");
    ASSERT_TRUE(opened.ok()) << opened.status().message();
    catalog_ = std::move(*opened);
  }

  fs::path Write(const std::string& relative, const std::string& bytes) {
    const fs::path path = tmp_.path() / "in" / relative;
    testing::WriteFileText(path, bytes);
    return path;
  }

  // Loads `paths` as `kind`, recording every error as "file-name:line: reason".
  LoadSummary Load(const std::vector<fs::path>& paths, const std::string& kind,
                   const LoadOptions& options = {}) {
    errors_.clear();
    notes_.clear();
    auto summary = LoadContextPaths(*catalog_, paths, kind, options, [this](const LoadError& e) {
      (e.skipped ? notes_ : errors_)
          .push_back(e.file.filename().string() + ":" + std::to_string(e.line) + ": " + e.reason);
    });
    EXPECT_TRUE(summary.ok()) << summary.status().message();
    return summary.ok() ? *summary : LoadSummary{};
  }

  std::map<std::string, catalog::SessionRecord> Sessions() {
    std::map<std::string, catalog::SessionRecord> out;
    auto list = catalog_->ListSessions();
    EXPECT_TRUE(list.ok());
    if (list.ok()) {
      for (auto& s : *list) out[s.id] = s;
    }
    return out;
  }

  std::string AllErrors() const {
    std::string all;
    for (const std::string& e : errors_) all += e + "\n";
    return all;
  }

  testing::TempDir tmp_;
  std::unique_ptr<Catalog> catalog_;
  std::vector<std::string> errors_;
  std::vector<std::string> notes_;
};

TEST_F(LoadersTest, CsvLogWithDefaultsNumbersSessionsPerInstrumentAndDay) {
  const fs::path log =
      Write("logs/TitanX.csv",
            "User,PI,Proposal,Start Time,End Time,Comments\n"
            "jsmith,Ercius,P-1,2011-10-13 16:20,2011-10-13 20:00,\"PbSe, ligands\"\n"
            "jsmith,Ercius,P-1,2011-10-13 09:00,2011-10-13 12:00,\n"
            "alee,Minor,,2011-10-14 09:00,2011-10-14 10:00,first\n");
  const LoadSummary s = Load({log}, "log");
  EXPECT_TRUE(errors_.empty()) << AllErrors();
  EXPECT_EQ(s.sessions, 3);
  EXPECT_EQ(s.loaded, 3);
  const auto sessions = Sessions();
  ASSERT_EQ(sessions.size(), 3u);
  // Numbered in start order within the day, not in file order.
  const auto& morning = sessions.at("TitanX-20111013-1");
  EXPECT_EQ(morning.start, "2011-10-13T09:00:00");
  const auto& afternoon = sessions.at("TitanX-20111013-2");
  EXPECT_EQ(afternoon.instrument, "TitanX");
  EXPECT_EQ(afternoon.user, "jsmith");
  EXPECT_EQ(afternoon.pi, "Ercius");
  EXPECT_EQ(afternoon.proposal_id, "P-1");
  EXPECT_EQ(afternoon.end, "2011-10-13T20:00:00");
  EXPECT_EQ(afternoon.notes, "PbSe, ligands");
  EXPECT_EQ(sessions.at("TitanX-20111014-1").proposal_id, "");
  // Loading again replaces, with the same natural keys.
  Load({log}, "log");
  EXPECT_EQ(Sessions().size(), 3u);
}

TEST_F(LoadersTest, CsvLogHostileInput) {
  std::string huge(1 << 20, 'x');
  huge[1000] = ',';
  const fs::path log =
      Write("Krios.csv",
            std::string("\xEF\xBB\xBF") +  // BOM
                "user;start;end;notes;session id\r\n"
                "a;13/10/2011 16:20;13/10/2011 18:00;na\xEFve \xB5m;S1\r\n"  // Latin-1, day first
                "b;;14/10/2011 18:00;no start;S2\r\n"
                "c;14/10/2011 18:00;14/10/2011 17:00;backwards;S3\r\n"
                "d;yesterday;14/10/2011 17:00;;S4\r\n"
                "e;15/10/2011 08:00;15/10/2011 09:00;\"" +
                huge + "\";S5\r\n" + "f;16/10/2011 08:00;16/10/2011 09:00;x;S6;extra;more\r\n" +
                std::string("g;17/10/2011 08:00;17/10/2011\0 09:00;nul;S7\r\n"s) +
                "h;18/10/2011 08:00\r\n"  // ragged: too few fields, so no end
                "i;19/10/2011 08:00;19/10/2011 09:00;\"unclosed;S9\r\n");
  const LoadSummary s = Load({log}, "log");
  EXPECT_EQ(s.sessions, 3) << AllErrors();
  const auto sessions = Sessions();
  ASSERT_TRUE(sessions.count("S1"));
  EXPECT_EQ(sessions.at("S1").instrument, "Krios");
  EXPECT_EQ(sessions.at("S1").start, "2011-10-13T16:20:00");
  EXPECT_EQ(sessions.at("S1").notes, "na\xC3\xAFve \xC2\xB5m");
  ASSERT_TRUE(sessions.count("S5"));
  EXPECT_EQ(sessions.at("S5").notes, huge);
  ASSERT_TRUE(sessions.count("S7"));
  EXPECT_EQ(sessions.at("S7").end, "2011-10-17T09:00:00");
  const std::string all = AllErrors();
  EXPECT_NE(all.find("Krios.csv:3: no start"), std::string::npos) << all;
  EXPECT_NE(all.find("Krios.csv:4: end 2011-10-14T17:00:00 is before start"), std::string::npos)
      << all;
  EXPECT_NE(all.find("Krios.csv:5: start 'yesterday' is not a date"), std::string::npos) << all;
  EXPECT_NE(all.find("Krios.csv:7: 7 fields where the header has 5"), std::string::npos) << all;
  EXPECT_NE(all.find("Krios.csv:9: no end"), std::string::npos) << all;
  EXPECT_NE(all.find("Krios.csv:10: a quote opened on line 10 is never closed"), std::string::npos)
      << all;
  EXPECT_EQ(s.failed, 6) << all;
}

TEST_F(LoadersTest, DuplicateSessionIdsAreReported) {
  const fs::path a = Write("a.csv", "id,start,end\nS1,2011-10-13 10:00,2011-10-13 11:00\n");
  const fs::path b = Write("b.csv", "id,start,end\nS1,2011-10-14 10:00,2011-10-14 11:00\n");
  const LoadSummary s = Load({a, b}, "log");
  EXPECT_EQ(s.sessions, 1);
  EXPECT_EQ(s.failed, 1);
  EXPECT_NE(AllErrors().find("b.csv:2: session id 'S1' is used already"), std::string::npos)
      << AllErrors();
  EXPECT_EQ(Sessions().at("S1").start, "2011-10-13T10:00:00");
}

TEST_F(LoadersTest, CsvLogUsMonthFirstAndWholeDayAndOvernight) {
  const fs::path log =
      Write("talos.csv",
            "Operator\tDate\tFrom\tTo\tInstrument\n"
            "a\t10/12/2011\t4:20 PM\t6:00 PM\tTalos F200X\n"          // month first: 12 October
            "b\t10/13/2011\t10:00 PM\t6:00 AM\tTalos F200X\n"         // overnight
            "c\t10/14/2011\t10/14/2011\t10/15/2011\tTalos F200X\n");  // whole days
  const LoadSummary s = Load({log}, "log");
  EXPECT_EQ(s.sessions, 3) << AllErrors();
  const auto sessions = Sessions();
  ASSERT_TRUE(sessions.count("Talos F200X-20111012-1")) << AllErrors();
  EXPECT_EQ(sessions.at("Talos F200X-20111012-1").start, "2011-10-12T16:20:00");
  EXPECT_EQ(sessions.at("Talos F200X-20111012-1").user, "a");
  EXPECT_EQ(sessions.at("Talos F200X-20111013-1").end, "2011-10-14T06:00:00");
  EXPECT_EQ(sessions.at("Talos F200X-20111014-1").start, "2011-10-14T00:00:00");
  EXPECT_EQ(sessions.at("Talos F200X-20111014-1").end, "2011-10-15T23:59:59");
}

TEST_F(LoadersTest, CsvLogConfigNamesColumnsAndPositions) {
  const fs::path named = Write("booking-export.csv",
                               "Who,Begin Time,Finish Line,Remark\n"
                               "a,2012-03-04 08:00,2012-03-04 09:00,r\n");
  LoadOptions options;
  options.log.columns = {{"start", "Begin Time"}, {"end", "Finish Line"}, {"user", "Who"}};
  options.log.instrument = "TEAM I";
  LoadSummary s = Load({named}, "log", options);
  EXPECT_EQ(s.sessions, 1) << AllErrors();
  ASSERT_TRUE(Sessions().count("TEAM I-20120304-1"));
  EXPECT_EQ(Sessions().at("TEAM I-20120304-1").user, "a");
  // "Remark" is no alias of notes: it is kept in the session document's fields.
  EXPECT_EQ(Sessions().at("TEAM I-20120304-1").notes, "");
  auto doc = catalog_->GetDocument("TEAM I-20120304-1");
  ASSERT_TRUE(doc.ok());
  EXPECT_EQ(nlohmann::json::parse(doc->fields_json)["Remark"], "r");
  // A configured column missing from the header is a file error.
  options.log.columns["notes"] = "Remarks";
  Load({named}, "log", options);
  EXPECT_NE(AllErrors().find("column 'Remarks' (notes) is not in the header"), std::string::npos)
      << AllErrors();
}

TEST_F(LoadersTest, CsvHeaderProblemsAreFileErrors) {
  const fs::path no_header = Write("a.csv", "a,2011-10-13 10:00,2011-10-13 11:00\n");
  const fs::path only_header = Write("b.csv", "user,start,end,notes\n");
  const fs::path empty = Write("c.csv", "");
  const fs::path binary = Write("d.csv", std::string("\x89PNG\r\n\x1A\n\0\0\0\rIHDR", 16));
  const LoadSummary s = Load({no_header, only_header, empty, binary}, "log");
  EXPECT_EQ(s.sessions, 0);
  const std::string all = AllErrors();
  EXPECT_NE(all.find("a.csv:1: no start column in the header"), std::string::npos) << all;
  EXPECT_EQ(all.find("b.csv"), std::string::npos) << all;  // a header alone is an empty log
  EXPECT_NE(all.find("c.csv:0: empty file"), std::string::npos) << all;
  EXPECT_NE(all.find("d.csv:1: no start column"), std::string::npos) << all;
  EXPECT_EQ(s.failed, 3);

  // A log without header, read by positions.
  LoadOptions options;
  options.log.header = false;
  options.log.columns = {{"user", "1"}, {"start", "2"}, {"end", "3"}};
  EXPECT_EQ(Load({no_header}, "log", options).sessions, 1) << AllErrors();
  EXPECT_EQ(Sessions().at("a-20111013-1").user, "a");
}

TEST_F(LoadersTest, JsonLogsArrayAndLinesWithWrongTypes) {
  const fs::path array = Write("logs/TitanX.json",
                               R"([
  {"user": "a", "start": "2011-10-13T09:00", "end": "2011-10-13T10:00", "sample": "PbSe"},
  {"user": "b", "start": 1.5, "end": "2011-10-13T11:00"},
  {"user": ["x"], "start": "2011-10-13T12:00", "end": "2011-10-13T13:00"},
  {"user": "c", "start": "2011-10-13T14:00", "end": broken},
  42,
  {"id": "note-1", "text": "cold FEG flashed, vacuum good"}
])");
  const fs::path lines = Write("logs/Krios.jsonl",
                               "{\"Username\": \"d\", \"Start_Time\": \"2012-01-02 08:00\", "
                               "\"stop\": \"2012-01-02 09:00\", \"project\": \"P-9\"}\n"
                               "\n"
                               "[1, 2]\n"
                               "{\"user\": \"e\", \"start\": \"2012-01-02 10:00\"}\n" +
                                   std::string(200, '[') + "\n");
  const LoadSummary s = Load({array, lines}, "log");
  const std::string all = AllErrors();
  EXPECT_EQ(s.sessions, 2) << all;
  EXPECT_EQ(s.documents, 1) << all;
  const auto sessions = Sessions();
  ASSERT_TRUE(sessions.count("TitanX-20111013-1")) << all;
  ASSERT_TRUE(sessions.count("Krios-20120102-1")) << all;
  EXPECT_EQ(sessions.at("Krios-20120102-1").proposal_id, "P-9");
  EXPECT_EQ(sessions.at("Krios-20120102-1").user, "d");
  EXPECT_NE(all.find("TitanX.json:3: \"start\" is not a string"), std::string::npos) << all;
  EXPECT_NE(all.find("TitanX.json:4: \"user\" is not a string"), std::string::npos) << all;
  EXPECT_NE(all.find("TitanX.json:5: not JSON"), std::string::npos) << all;
  EXPECT_NE(all.find("TitanX.json:6: a JSON number, not an object"), std::string::npos) << all;
  EXPECT_NE(all.find("Krios.jsonl:3: a JSON array, not an object"), std::string::npos) << all;
  EXPECT_NE(all.find("Krios.jsonl:4: no end"), std::string::npos) << all;
  EXPECT_NE(all.find("Krios.jsonl:5: JSON nested deeper"), std::string::npos) << all;
  // Extra fields are kept in the session's document; a text-only entry is a log document.
  auto doc = catalog_->GetDocument("TitanX-20111013-1");
  ASSERT_TRUE(doc.ok());
  EXPECT_EQ(nlohmann::json::parse(doc->fields_json)["sample"], "PbSe");
  auto note = catalog_->GetDocument("note-1");
  ASSERT_TRUE(note.ok());
  EXPECT_EQ(note->kind, "log");
}

TEST_F(LoadersTest, JsonThatIsNotRecords) {
  const fs::path number = Write("a.json", "42");
  const fs::path empty = Write("b.json", " \n");
  const fs::path unclosed = Write("c.json", "[{\"id\": \"P-1\"}, {\"id\": \"P-2\"");
  const fs::path garbage = Write("d.json", "{\"id\": \"P-3\",\n \"title\": }\n");
  const LoadSummary s = Load({number, empty, unclosed, garbage}, "proposal");
  const std::string all = AllErrors();
  EXPECT_EQ(s.proposals, 1) << all;  // P-1, before the damage
  EXPECT_NE(all.find("a.json:0: not a JSON object or array"), std::string::npos) << all;
  EXPECT_NE(all.find("b.json:0: empty file"), std::string::npos) << all;
  EXPECT_NE(all.find("c.json:0: the array opened on line 1 is never closed"), std::string::npos)
      << all;
  EXPECT_NE(all.find("d.json:0: not JSON"), std::string::npos) << all;
}

TEST_F(LoadersTest, ProposalsWithPeopleAndExtras) {
  const fs::path one = Write("proposals/P-2012-0001.json", R"({
    "id": "P-2012-0001", "title": "Low-dose imaging of NaY", "abstract": "zeolite Y, low dose",
    "pi": {"id": "aferreira", "name": "Andrew Ferreira", "institution": "ETH Zurich"},
    "team": [{"id": "aferreira", "name": "Andrew Ferreira"}, "dpopescu", "Tara Kovacs",
             {"name": "No Id", "affiliation": "LBNL"}],
    "start_date": "29.03.2012", "end_date": "2013-05-26", "release_date": "Nov 2, 2014",
    "materials": ["NaY"], "keywords": "zeolite"})");
  const fs::path many = Write("proposals/more.jsonl",
                              "{\"id\": \"P-2\", \"summary\": \"s\", \"pi\": \"Jane Roe\"}\n"
                              "{\"title\": \"no id\"}\n"
                              "{\"id\": \"P-3\", \"release_date\": \"soon\"}\n"
                              "{\"id\": \"P-4\", \"team\": [1.5]}\n"
                              "{\"id\": \"P-5\", \"pi\": {\"institution\": \"x\"}}\n");
  const LoadSummary s = Load({one, many}, "proposal");
  const std::string all = AllErrors();
  EXPECT_EQ(s.proposals, 2) << all;
  EXPECT_EQ(s.failed, 4) << all;
  EXPECT_NE(all.find("more.jsonl:2: no \"id\""), std::string::npos) << all;
  EXPECT_NE(all.find("more.jsonl:3: \"release_date\" 'soon' is not a date"), std::string::npos)
      << all;
  EXPECT_NE(all.find("more.jsonl:4: \"team[0]\" is a number"), std::string::npos) << all;
  EXPECT_NE(all.find("more.jsonl:5: \"pi\" names nobody"), std::string::npos) << all;

  auto proposals = catalog_->ListProposals();
  ASSERT_TRUE(proposals.ok());
  ASSERT_EQ(proposals->size(), 2u);
  const catalog::ProposalRecord& p = (*proposals)[1];  // by id: "P-2" < "P-2012-0001"
  EXPECT_EQ(p.id, "P-2012-0001");
  EXPECT_EQ(p.pi, "aferreira");
  EXPECT_EQ(p.team, (std::vector<std::string>{"aferreira", "dpopescu", "Tara Kovacs", "No Id"}));
  EXPECT_EQ(p.start_date, "2012-03-29");
  EXPECT_EQ(p.release_date, "2014-11-02");
  EXPECT_EQ((*proposals)[0].abstract, "s");
  EXPECT_EQ((*proposals)[0].pi, "Jane Roe");

  auto people = catalog_->ListPeople();
  ASSERT_TRUE(people.ok());
  std::map<std::string, catalog::PersonRecord> by_id;
  for (const auto& person : *people) by_id[person.id] = person;
  ASSERT_EQ(by_id.size(), 5u);
  EXPECT_EQ(by_id["aferreira"].name, "Andrew Ferreira");
  EXPECT_EQ(by_id["aferreira"].institution, "ETH Zurich");  // not blanked by the team entry
  EXPECT_EQ(by_id["dpopescu"].name, "");
  EXPECT_EQ(by_id["Tara Kovacs"].name, "Tara Kovacs");
  EXPECT_EQ(by_id["No Id"].institution, "LBNL");
  EXPECT_EQ(by_id["Jane Roe"].name, "Jane Roe");
  EXPECT_EQ(s.people, 5);

  // The proposal's document: the catalog's title and text, plus the extra fields.
  auto doc = catalog_->GetDocument("P-2012-0001");
  ASSERT_TRUE(doc.ok());
  EXPECT_EQ(doc->title, "Low-dose imaging of NaY");
  EXPECT_EQ(doc->text, "zeolite Y, low dose");
  const auto fields = nlohmann::json::parse(doc->fields_json);
  EXPECT_EQ(fields["materials"], nlohmann::json::array({"NaY"}));
  EXPECT_EQ(fields["keywords"], "zeolite");
  EXPECT_EQ(fields["release_date"], "2014-11-02");

  // A later load that names a person by id alone keeps what is known of them.
  Load({Write("p6.json", R"({"id": "P-6", "pi": "aferreira"})")}, "proposal");
  people = catalog_->ListPeople();
  ASSERT_TRUE(people.ok());
  for (const auto& person : *people) {
    if (person.id == "aferreira") {
      EXPECT_EQ(person.institution, "ETH Zurich");
    }
  }
}

TEST_F(LoadersTest, SessionsAreAdoptedByProposalsLoadedLater) {
  Load({Write("TitanX.csv", "user,proposal,start,end\na,P-7,2011-10-13 10:00,2011-10-13 11:00\n")},
       "log");
  Load({Write("p.json", R"({"id": "P-7", "title": "t"})")}, "proposal");
  auto docs = catalog_->DocumentsOfProposal("P-7");
  ASSERT_TRUE(docs.ok());
  ASSERT_EQ(docs->size(), 2u);
  EXPECT_EQ(Sessions().at("TitanX-20111013-1").proposal_id, "P-7");
}

TEST_F(LoadersTest, PublicationsFromJsonKeepIdsAuthorsAndProposals) {
  const fs::path pubs = Write("pubs.jsonl",
                              "{\"doi\": \"https://doi.org/10.1021/acs.nanolett.1c01234\", "
                              "\"title\": \"PbSe\", \"abstract\": \"a\", \"authors\": [\"Wei "
                              "Lee\", {\"name\": \"Andrew Ferreira\", \"id\": \"aferreira\"}], "
                              "\"date\": \"2021\", \"proposals\": [\"P-2012-0001\"], \"venue\": "
                              "\"Nano Letters\"}\n"
                              "{\"id\": \"paper-2\", \"title\": \"t\", \"authors\": \"A; B\"}\n"
                              "{\"title\": \"neither\"}\n"
                              "{\"doi\": \"10.1/x\", \"authors\": {\"x\": 1}}\n");
  const LoadSummary s = Load({pubs}, "publication");
  const std::string all = AllErrors();
  EXPECT_EQ(s.publications, 2) << all;
  EXPECT_NE(all.find("pubs.jsonl:3: no \"doi\" and no \"id\""), std::string::npos) << all;
  EXPECT_NE(all.find("pubs.jsonl:4: \"authors\" names nobody"), std::string::npos) << all;
  auto list = catalog_->ListPublications();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  const catalog::PublicationRecord& p = (*list)[0];
  EXPECT_EQ(p.doi, "10.1021/acs.nanolett.1c01234");
  EXPECT_EQ(p.authors, (std::vector<std::string>{"Wei Lee", "Andrew Ferreira"}));
  EXPECT_EQ(p.date, "2021");
  EXPECT_EQ(p.proposals, (std::vector<std::string>{"P-2012-0001"}));
  EXPECT_EQ((*list)[1].doi, "paper-2");
  EXPECT_EQ((*list)[1].authors, (std::vector<std::string>{"A", "B"}));
  auto doc = catalog_->GetDocument("paper-2");
  ASSERT_TRUE(doc.ok());
  EXPECT_EQ(doc->doi, "");  // an id standing in for a DOI is not shown as one
  doc = catalog_->GetDocument("10.1021/acs.nanolett.1c01234");
  ASSERT_TRUE(doc.ok());
  EXPECT_EQ(nlohmann::json::parse(doc->fields_json)["venue"], "Nano Letters");
  EXPECT_EQ(s.people, 1);  // the author given with an id
}

TEST_F(LoadersTest, PublicationsFromTextAndPdf) {
  const fs::path txt = Write("papers/lee2021.txt",
                             "\n  Atomic structure of WSe2 monolayers  \n"
                             "Authors: Wei Lee, Andrew Ferreira and Tara Kovacs\n"
                             "Date: 2021-11-02\n"
                             "DOI: 10.1021/acs.chemmater.1b78360.\n"
                             "We thank user proposal #12345 and proposal P-2020-0001.\n"
                             "References\n1. Other paper, doi:10.1000/other\n");
  const fs::path pdf = Write(
      "papers/paper.pdf",
      MinimalPdf({"Gold nanorods grown in solution", "https://doi.org/10.1038/s41563-022-01234-5",
                  "This work used proposal P-2012-0001."},
                 "Gold nanorods by HAADF-STEM"));
  const fs::path no_doi = Write("papers/10.1000_xyz.123.pdf", MinimalPdf({"Plain words"}, ""));
  const fs::path broken = Write("papers/broken.pdf", "%PDF-1.4\n1 0 obj\n<< /Type /Cat");
  const fs::path not_pdf = Write("papers/fake.pdf", std::string(3000, 'z'));
  std::string half = MinimalPdf({"Half a file"}, "Half");
  const fs::path truncated = Write("papers/truncated.pdf", half.substr(0, half.size() / 3));
  const fs::path empty = Write("papers/empty.txt", "  \n");
  const fs::path locked = Write(
      "papers/locked.pdf", MinimalPdf({"Secret"}, "Secret",
                                      " /Encrypt << /Filter /Standard /V 1 /R 2 /O <" +
                                          std::string(64, 'A') + "> /U <" + std::string(64, 'B') +
                                          "> /P -4 >> /ID [<0123456789ABCDEF0123456789ABCDEF>"
                                          "<0123456789ABCDEF0123456789ABCDEF>]"));
  const LoadSummary s = Load({tmp_.path() / "in" / "papers"}, "auto");
  const std::string all = AllErrors();
  EXPECT_GE(s.publications, 3) << all;
  EXPECT_NE(all.find("broken.pdf:0: "), std::string::npos) << all;
  EXPECT_NE(all.find("fake.pdf:0: "), std::string::npos) << all;
  EXPECT_NE(all.find("empty.txt:0: empty file"), std::string::npos) << all;
  EXPECT_NE(all.find("locked.pdf:0: "), std::string::npos) << all;
  EXPECT_EQ(all.find("lee2021"), std::string::npos) << all;
  // The truncated file is either refused or read, never a crash; it is counted either way.
  EXPECT_EQ(s.publications + s.failed, 8) << all;

  auto text_pub = catalog_->GetDocument("10.1021/acs.chemmater.1b78360");
  ASSERT_TRUE(text_pub.ok()) << all;
  EXPECT_EQ(text_pub->title, "Atomic structure of WSe2 monolayers");
  EXPECT_EQ(text_pub->authors,
            (std::vector<std::string>{"Wei Lee", "Andrew Ferreira", "Tara Kovacs"}));
  EXPECT_EQ(text_pub->date, "2021-11-02");
  EXPECT_NE(text_pub->text.find("user proposal #12345"), std::string::npos);

  auto pdf_pub = catalog_->GetDocument("10.1038/s41563-022-01234-5");
  ASSERT_TRUE(pdf_pub.ok()) << all;
  EXPECT_EQ(pdf_pub->title, "Gold nanorods by HAADF-STEM");
  EXPECT_EQ(pdf_pub->date, "2021-03-15");
  EXPECT_TRUE(pdf_pub->authors.empty());
  EXPECT_NE(pdf_pub->text.find("proposal P-2012-0001"), std::string::npos) << pdf_pub->text;
  const auto fields = nlohmann::json::parse(pdf_pub->fields_json);
  EXPECT_EQ(fields["source"], "pdf");
  EXPECT_EQ(fields["pages"], 1);
  EXPECT_EQ(fields["text_truncated"], false);

  // No DOI in the text: the one spelt in the file name; no title in the PDF: its first line.
  auto named = catalog_->GetDocument("10.1000/xyz.123");
  ASSERT_TRUE(named.ok()) << all;
  EXPECT_EQ(named->title, "Plain words");
}

TEST_F(LoadersTest, PublicationTextIsCappedAndSaysSo) {
  std::string text = "Title line\n";
  while (text.size() < 5000) text += "\xC2\xB5m-scale grains and more words. ";
  const fs::path txt = Write("long.txt", text);
  LoadOptions options;
  options.max_text_bytes = 1001;
  EXPECT_EQ(Load({txt}, "publication", options).publications, 1) << AllErrors();
  auto doc = catalog_->GetDocument("long.txt");
  ASSERT_TRUE(doc.ok());
  EXPECT_LE(doc->text.size(), 1001u);
  EXPECT_GT(doc->text.size(), 990u);
  const auto fields = nlohmann::json::parse(doc->fields_json);  // valid UTF-8 after the cut
  EXPECT_EQ(fields["text_truncated"], true);
  EXPECT_EQ(fields["text_bytes"], text.size());
}

TEST_F(LoadersTest, KindMismatchesAndUnknownFilesAreReported) {
  const fs::path csv = Write("x/log.csv", "start,end\n");
  const fs::path pdf = Write("x/p.pdf", MinimalPdf({"t"}, "t"));
  const fs::path other = Write("x/readme.md", "# hi");
  Write("x/.hidden.csv", "garbage");
  LoadSummary s = Load({tmp_.path() / "in" / "x"}, "proposal");
  const std::string all = AllErrors();
  EXPECT_NE(all.find("log.csv:0: a CSV file is read as a user log"), std::string::npos) << all;
  EXPECT_NE(all.find("p.pdf:0: a .pdf file is read as a publication"), std::string::npos) << all;
  EXPECT_EQ(all.find("hidden"), std::string::npos) << all;
  ASSERT_EQ(notes_.size(), 1u);
  EXPECT_NE(notes_[0].find("readme.md"), std::string::npos);
  EXPECT_EQ(s.files_skipped, 1);
  EXPECT_EQ(s.failed, 2);
  // An unknown file named explicitly is an error; so is an unknown kind or a missing path.
  s = Load({other}, "log");
  EXPECT_EQ(s.failed, 1);
  EXPECT_FALSE(LoadContextPath(*catalog_, other, "paper", {}, nullptr).ok());
  EXPECT_EQ(LoadContextPath(*catalog_, tmp_.path() / "nope", "log", {}, nullptr).status().code(),
            ErrorCode::kNotFound);
}

TEST_F(LoadersTest, AutoKindByFolderAndRecord) {
  Write("mixed/logs/TitanX.csv", "user,start,end\na,2011-10-13 10:00,2011-10-13 11:00\n");
  Write("mixed/proposals/p.json", R"({"id": "P-1", "pi": "x"})");
  Write("mixed/publications/q.json", R"({"id": "paper", "title": "t"})");
  Write("mixed/other.jsonl",
        "{\"id\": \"P-2\", \"team\": [\"y\"]}\n"
        "{\"doi\": \"10.1234/abc\"}\n"
        "{\"instrument\": \"Krios\", \"start\": \"2012-01-01 08:00\", \"end\": \"2012-01-01 "
        "09:00\"}\n"
        "{\"id\": \"z\", \"kind\": \"log\", \"text\": \"a note\"}\n"
        "{\"id\": \"what\"}\n");
  // Some other program's JSON: one error for the file, not one a record.
  Write("mixed/truth.jsonl", "{\"path\": \"a.ser\"}\n{\"path\": \"b.ser\"}\n");
  const LoadSummary s = Load({tmp_.path() / "in" / "mixed"}, "auto");
  const std::string all = AllErrors();
  EXPECT_NE(all.find("truth.jsonl:0: cannot tell"), std::string::npos) << all;
  EXPECT_EQ(s.sessions, 2) << all;
  EXPECT_EQ(s.proposals, 2) << all;
  EXPECT_EQ(s.publications, 2) << all;
  EXPECT_EQ(s.documents, 1) << all;
  EXPECT_NE(all.find("other.jsonl:5: cannot tell"), std::string::npos) << all;
  EXPECT_EQ(s.failed, 2) << all;
  EXPECT_TRUE(Sessions().count("Krios-20120101-1"));
}

TEST_F(LoadersTest, LegacyJsonlDocumentsStillLoad) {
  const fs::path docs = Write("docs.jsonl",
                              "{\"id\": \"a1\", \"title\": \"Gold rods\", \"text\": \"gold\", "
                              "\"venue\": \"Nano Letters\"}\n"
                              "{\"id\": \"a2\", \"title\": broken\n"
                              "{\"title\": \"no id\"}\n");
  std::vector<int64_t> lines;
  auto summary = LoadDocumentsJsonl(
      *catalog_, docs, "log", [&](int64_t line, const std::string&) { lines.push_back(line); });
  ASSERT_TRUE(summary.ok());
  EXPECT_EQ(summary->loaded, 1);
  EXPECT_EQ(summary->failed, 2);
  EXPECT_EQ(lines, (std::vector<int64_t>{2, 3}));
  auto doc = catalog_->GetDocument("a1");
  ASSERT_TRUE(doc.ok());
  EXPECT_EQ(doc->kind, "log");
  EXPECT_FALSE(LoadDocumentsJsonl(*catalog_, docs, "memo", nullptr).ok());
}

// Damaged copies of good files (bytes overwritten, cut short) are loaded or reported,
// never a crash, and every record is accounted for.
TEST_F(LoadersTest, RandomDamageIsReportedNeverACrash) {
  const std::vector<std::pair<std::string, std::string>> originals = {
      {"logs/TitanX.csv",
       "user;start;end;notes\na;13/10/2011 16:20;13/10/2011 18:00;\"x;\"\"y\"\"\"\n"
       "b;14/10/2011 16:20;14/10/2011 18:00;plain\n"},
      {"proposals/p.json",
       R"([{"id": "P-1", "pi": {"id": "a", "name": "A B"}, "team": ["c"], "release_date":
       "2014-11-02"}, {"id": "P-2", "title": "t", "materials": [1, {"x": null}]}])"},
      {"publications/q.jsonl",
       "{\"doi\": \"10.1021/x\", \"authors\": [\"A\"], \"date\": \"2021-01-02\"}\n"},
      {"publications/r.pdf", MinimalPdf({"A title", "doi 10.1038/abc"}, "T")},
  };
  uint64_t seed = 88172645463325252ull;  // xorshift64: the same damage on every run
  auto next = [&seed]() {
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
  };
  int64_t loaded = 0, failed = 0;
  for (int round = 0; round < 60; ++round) {
    std::vector<fs::path> paths;
    for (const auto& [name, bytes] : originals) {
      std::string damaged = bytes;
      for (int i = 0; i < 1 + int(next() % 4); ++i) damaged[next() % damaged.size()] = char(next());
      if (next() % 3 == 0) damaged.resize(next() % damaged.size());
      paths.push_back(Write(std::to_string(round) + "/" + name, damaged));
    }
    const LoadSummary s = Load(paths, "auto");
    EXPECT_GT(s.loaded + s.failed, 0) << "round " << round;
    loaded += s.loaded;
    failed += s.failed;
  }
  EXPECT_GT(loaded, 0);
  EXPECT_GT(failed, 0);
}

// The simulated facility's context tree loads completely (needs the scisearch binary).
TEST_F(LoadersTest, SimulatedFacilityLoadsCompletely) {
  const fs::path sim = tmp_.path() / "sim";
  const std::string command = std::string(SCISEARCH_BINARY) + " simulate --out '" + sim.string() +
                              "' --files 120 --size 32 >/dev/null 2>&1";
  if (!fs::exists(SCISEARCH_BINARY) || std::system(command.c_str()) != 0) {
    GTEST_SKIP() << "scisearch simulate is not available";
  }
  size_t log_rows = 0;
  for (const auto& entry : fs::directory_iterator(sim / "logs")) {
    std::ifstream in(entry.path());
    for (std::string line; std::getline(in, line);) log_rows += !line.empty();
    --log_rows;  // the header
  }
  size_t proposals = 0, publications = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(sim / "proposals")) ++proposals;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(sim / "publications")) {
    ++publications;
  }
  const LoadSummary s = Load({sim / "logs", sim / "proposals", sim / "publications"}, "auto");
  EXPECT_EQ(s.failed, 0) << AllErrors();
  EXPECT_EQ(size_t(s.sessions), log_rows);
  EXPECT_EQ(size_t(s.proposals), proposals);
  EXPECT_EQ(size_t(s.publications), publications);
  EXPECT_GT(s.people, 0);
  // Session ids agree with the simulator's truth.
  std::ifstream truth(sim / "truth.jsonl");
  const auto sessions = Sessions();
  size_t checked = 0;
  for (std::string line; std::getline(truth, line);) {
    const auto j = nlohmann::json::parse(line);
    if (!j.contains("session") || !j["session"].is_string()) continue;
    EXPECT_TRUE(sessions.count(j["session"].get<std::string>())) << j["session"];
    ++checked;
  }
  EXPECT_GT(checked, 0u);
}

}  // namespace
}  // namespace scisearch::context
