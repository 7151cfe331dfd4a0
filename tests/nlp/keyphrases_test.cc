#include "nlp/keyphrases.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cli/keyphrase_command.h"
#include "formats/text.h"
#include "nlp/stemmer.h"
#include "test_paths.h"
#include "test_util.h"

namespace scisearch::nlp {
namespace {

Stemmer English() {
  Result<Stemmer> stemmer = Stemmer::English();
  EXPECT_TRUE(stemmer.ok()) << stemmer.status().message();
  return std::move(stemmer).value();
}

KeyphraseExtractor Extractor() {
  Result<KeyphraseExtractor> extractor = KeyphraseExtractor::Create();
  EXPECT_TRUE(extractor.ok()) << extractor.status().message();
  return std::move(extractor).value();
}

PhraseStatistics EmptyCorpus() {
  Result<PhraseStatistics> corpus = PhraseStatistics::Create();
  EXPECT_TRUE(corpus.ok()) << corpus.status().message();
  return std::move(corpus).value();
}

std::vector<std::string> Phrases(const std::vector<Keyphrase>& keyphrases) {
  std::vector<std::string> phrases;
  for (const Keyphrase& keyphrase : keyphrases) phrases.push_back(keyphrase.phrase);
  return phrases;
}

// The rank of `phrase` in `phrases`, or phrases.size() when absent.
size_t RankOf(const std::vector<std::string>& phrases, const std::string& phrase) {
  return std::find(phrases.begin(), phrases.end(), phrase) - phrases.begin();
}

std::string Lower(std::string_view text) { return formats::AsciiLower(text); }

std::vector<std::string> Words(const std::string& phrase) {
  std::istringstream in(phrase);
  std::vector<std::string> words;
  for (std::string word; in >> word;) words.push_back(Lower(word));
  return words;
}

const char kAbstract[] =
    "Grain boundary segregation in nanocrystalline steel. We study grain boundary "
    "segregation of carbon in nanocrystalline steel with atom probe tomography and "
    "high-angle annular dark-field imaging. The segregation of carbon to the grain "
    "boundaries stabilises the nanocrystalline structure against grain growth. A vacuum "
    "chamber was used once. Grain boundary segregation therefore controls the thermal "
    "stability of nanocrystalline steel.";

// --- Stemmer ---------------------------------------------------------------

TEST(StemmerTest, EnglishStemsInflectionsToOneStem) {
  Stemmer stemmer = English();
  EXPECT_EQ(stemmer.Stem("running"), "run");
  EXPECT_EQ(stemmer.Stem("boundaries"), stemmer.Stem("boundary"));
  EXPECT_EQ(stemmer.Stem("microscopes"), stemmer.Stem("microscope"));
  EXPECT_EQ(stemmer.Stem("segregation"), stemmer.Stem("segregations"));
  EXPECT_NE(stemmer.Stem("grain"), stemmer.Stem("growth"));
  // A stem stems to itself again (Snowball is idempotent on these).
  for (const char* word : {"nanoparticles", "diffraction", "imaging", "tomography"}) {
    const std::string stem = stemmer.Stem(word);
    EXPECT_FALSE(stem.empty());
    EXPECT_EQ(stemmer.Stem(stem), stem) << word;
  }
}

TEST(StemmerTest, EdgeCasesAreReturnedUnchanged) {
  Stemmer stemmer = English();
  EXPECT_EQ(stemmer.Stem(""), "");
  const std::string huge(5000, 'a');
  EXPECT_EQ(stemmer.Stem(huge), huge);
  // Non-ASCII and invalid bytes do not crash it.
  EXPECT_FALSE(stemmer.Stem("Größe").empty());
  EXPECT_FALSE(stemmer.Stem("\xff\xfe\x80").empty());
}

TEST(StemmerTest, MovesOwnership) {
  Stemmer first = English();
  Stemmer second = std::move(first);
  EXPECT_EQ(second.Stem("images"), "imag");
  EXPECT_EQ(first.Stem("images"), "images");  // NOLINT: moved-from returns the word
  first = std::move(second);
  EXPECT_EQ(first.Stem("images"), "imag");
}

// --- Candidates and ranking -----------------------------------------------

TEST(KeyphrasesTest, RepeatedTitlePhraseOutranksOneOff) {
  const KeyphraseExtractor extractor = Extractor();
  const std::vector<std::string> phrases = Phrases(extractor.Extract(kAbstract, nullptr, 50));
  ASSERT_FALSE(phrases.empty());
  EXPECT_EQ(phrases.front(), "grain boundary segregation") << ::testing::PrintToString(phrases);
  EXPECT_LT(RankOf(phrases, "grain boundary segregation"), RankOf(phrases, "vacuum chamber"));
  EXPECT_LT(RankOf(phrases, "nanocrystalline steel"), RankOf(phrases, "vacuum chamber"));
}

TEST(KeyphrasesTest, StopWordsNeverStartOrEndAPhrase) {
  const KeyphraseExtractor extractor = Extractor();
  const std::set<std::string> stop = {"the",  "of",  "and", "a",    "an",   "in",  "to",
                                      "with", "was", "we",  "once", "used", "for", "is"};
  const std::string texts[] = {
      kAbstract,
      "The design of the detector and the readout of the camera are described in this paper. "
      "We show that the camera is fast and that it is used for in situ experiments.",
  };
  for (const std::string& text : texts) {
    for (const Keyphrase& keyphrase : extractor.Extract(text, nullptr, 100)) {
      const std::vector<std::string> words = Words(keyphrase.phrase);
      ASSERT_FALSE(words.empty());
      EXPECT_FALSE(stop.contains(words.front())) << keyphrase.phrase;
      EXPECT_FALSE(stop.contains(words.back())) << keyphrase.phrase;
      EXPECT_LE(words.size(), 4u) << keyphrase.phrase;
    }
  }
}

TEST(KeyphrasesTest, AdverbsAndParticiplesDoNotEndPhrases) {
  const KeyphraseExtractor extractor = Extractor();
  const std::string text =
      "Carbon segregation significantly increases hardness. The carbon segregation "
      "measured remains stable. Carbon segregation changes quickly.";
  for (const Keyphrase& keyphrase : extractor.Extract(text, nullptr, 100)) {
    const std::vector<std::string> words = Words(keyphrase.phrase);
    for (const std::string& word : words) {
      EXPECT_NE(word, "significantly") << keyphrase.phrase;
      EXPECT_NE(word, "quickly") << keyphrase.phrase;
    }
    EXPECT_NE(words.back(), "measured") << keyphrase.phrase;
  }
}

TEST(KeyphrasesTest, FormsWithTheSameStemsAreOneCandidate) {
  const KeyphraseExtractor extractor = Extractor();
  const std::vector<std::string> phrases = Phrases(extractor.Extract(
      "Grain boundaries and dislocations. Each grain boundary of ferrite. The grain boundaries "
      "of ferrite.",
      nullptr, 50));
  std::set<std::string> seen;
  int grain_boundary_forms = 0;
  for (const std::string& phrase : phrases) {
    EXPECT_TRUE(seen.insert(Lower(phrase)).second) << "duplicate " << phrase;
    if (Lower(phrase).starts_with("grain boundar")) ++grain_boundary_forms;
  }
  EXPECT_EQ(grain_boundary_forms, 1) << ::testing::PrintToString(phrases);
  // The most frequent written form wins, its sentence-initial capital lowered.
  EXPECT_EQ(RankOf(phrases, "grain boundaries"), 0u) << ::testing::PrintToString(phrases);
}

TEST(KeyphrasesTest, PartsThatNeverOccurAloneAreNotListedBesideTheWhole) {
  const KeyphraseExtractor extractor = Extractor();
  const std::vector<std::string> phrases = Phrases(
      extractor.Extract("Convergent beam electron diffraction of silicon. Convergent beam electron "
                        "diffraction measures strain in silicon wafers.",
                        nullptr, 50));
  ASSERT_NE(RankOf(phrases, "convergent beam electron diffraction"), phrases.size())
      << ::testing::PrintToString(phrases);
  EXPECT_EQ(RankOf(phrases, "convergent beam"), phrases.size());
  EXPECT_EQ(RankOf(phrases, "beam electron diffraction"), phrases.size());
}

TEST(KeyphrasesTest, WholeNounPhrasesOutrankPiecesCutFromLongerOnes) {
  const KeyphraseExtractor extractor = Extractor();
  // "neural network" occurs three times, always cut out of a longer noun phrase and
  // never ending one (without the run features it ranks first);
  // "robot arm" twice, each time the whole phrase.
  const std::vector<std::string> phrases = Phrases(extractor.Extract(
      "Neural network controller for a robot arm. The neural network training data come "
      "from the robot arm, and neural network weights adapt online.",
      nullptr, 50));
  ASSERT_NE(RankOf(phrases, "robot arm"), phrases.size()) << ::testing::PrintToString(phrases);
  EXPECT_LT(RankOf(phrases, "robot arm"), RankOf(phrases, "neural network"))
      << ::testing::PrintToString(phrases);
}

TEST(KeyphrasesTest, SubscriptMarkupOfAbstractDatabasesIsNoWord) {
  const KeyphraseExtractor extractor = Extractor();
  const std::vector<std::string> phrases = Phrases(extractor.Extract(
      "Thin Al/sub 2/O/sub 3/ films on GaAs. The Al/sub 2/O/sub 3/ films and the /sup 1/H "
      "signal of the GaAs substrate.",
      nullptr, 50));
  ASSERT_FALSE(phrases.empty());
  for (const std::string& phrase : phrases) {
    for (const std::string& word : Words(phrase)) {
      EXPECT_NE(word, "sub") << phrase;
      EXPECT_NE(word, "sup") << phrase;
    }
  }
  // Words written as words stay words ("sub" only after a slash is markup).
  EXPECT_NE(
      RankOf(Phrases(extractor.Extract("Sub band coding. Sub band coding of speech.", nullptr, 10)),
             "sub band coding"),
      10u);
}

TEST(KeyphrasesTest, NonAsciiCapitalsFoldToOneCandidate) {
  const KeyphraseExtractor extractor = Extractor();
  // Ölfilm / ölfilm, Ångström / ångström, ΔΕ / δε: one candidate each.
  const std::vector<std::string> phrases = Phrases(extractor.Extract(
      "Ölfilm thickness at Ångström scale. The ölfilm thickness is measured at ångström "
      "scale by ΔΕ spectra. The δε spectra are broad.",
      nullptr, 50));
  const auto count_containing = [&](std::string_view part) {
    return std::count_if(phrases.begin(), phrases.end(), [&](const std::string& phrase) {
      return phrase.find(part) != std::string::npos;
    });
  };
  EXPECT_EQ(count_containing("lfilm thickness"), 1) << ::testing::PrintToString(phrases);
  EXPECT_EQ(count_containing("ngström scale"), 1) << ::testing::PrintToString(phrases);
  EXPECT_EQ(count_containing(" spectra"), 1) << ::testing::PrintToString(phrases);
}

TEST(KeyphrasesTest, CorpusRarityRanksDistinctivePhrasesFirst) {
  const KeyphraseExtractor extractor = Extractor();
  PhraseStatistics corpus = EmptyCorpus();
  for (int i = 0; i < 30; ++i) {
    corpus.Add("The electron microscopy facility supports sample " + std::to_string(i) +
               " in the electron microscopy facility.");
  }
  const std::string text =
      "Electron microscopy facility and cobalt ferrite nanocubes. The cobalt ferrite nanocubes "
      "were imaged in the electron microscopy facility.";
  corpus.Add(text);
  EXPECT_EQ(corpus.document_count(), 31u);
  EXPECT_EQ(corpus.PhraseDocumentFrequency("electron microscopy facilities"), 31u);
  EXPECT_EQ(corpus.PhraseDocumentFrequency("cobalt ferrite nanocubes"), 1u);
  EXPECT_EQ(corpus.WordDocumentFrequency("facilities"), 31u);
  EXPECT_EQ(corpus.WordDocumentFrequency("nanocube"), 1u);
  EXPECT_EQ(corpus.WordDocumentFrequency("absent"), 0u);

  const std::vector<std::string> with_corpus = Phrases(extractor.Extract(text, &corpus, 10));
  ASSERT_FALSE(with_corpus.empty());
  EXPECT_EQ(with_corpus.front(), "cobalt ferrite nanocubes")
      << ::testing::PrintToString(with_corpus);
  const std::vector<std::string> alone = Phrases(extractor.Extract(text, nullptr, 10));
  EXPECT_LT(RankOf(alone, "electron microscopy facility"),
            RankOf(alone, "cobalt ferrite nanocubes"))
      << ::testing::PrintToString(alone);
}

TEST(KeyphrasesTest, VerbsLearnedFromTheCorpusAreNotPartOfPhrases) {
  const KeyphraseExtractor extractor = Extractor();
  PhraseStatistics corpus = EmptyCorpus();
  corpus.Add("We maintain the microscope. They maintain the camera. Users can maintain it.");
  const std::vector<std::string> phrases =
      Phrases(extractor.Extract("The facility staff maintains detector alignment.", &corpus, 20));
  for (const std::string& phrase : phrases) {
    EXPECT_EQ(phrase.find("maintain"), std::string::npos) << phrase;
  }
  EXPECT_NE(RankOf(phrases, "detector alignment"), phrases.size())
      << ::testing::PrintToString(phrases);
}

TEST(KeyphrasesTest, DomainVocabularyTermsGetABonus) {
  const KeyphraseExtractor extractor = Extractor();
  // Symmetric text: the unknown phrase comes first, so only the vocabulary bonus can
  // lift the microscopy term above it.
  const std::vector<std::string> phrases = Phrases(extractor.Extract(
      "Orange paint coating and tilt series acquisition. We report orange paint coating and "
      "tilt series acquisition.",
      nullptr, 10));
  EXPECT_LT(RankOf(phrases, "tilt series acquisition"), RankOf(phrases, "orange paint coating"))
      << ::testing::PrintToString(phrases);
}

TEST(KeyphrasesTest, NamesAndHeadingsStartNewPhrases) {
  const KeyphraseExtractor extractor = Extractor();
  // A title running into its abstract with no full stop: "optimization Imaging".
  const std::vector<std::string> phrases = Phrases(extractor.Extract(
      "Scheduling optimization Imaging satellite systems acquire images on request.", nullptr, 20));
  for (const std::string& phrase : phrases) {
    EXPECT_EQ(Lower(phrase).find("optimization imaging"), std::string::npos) << phrase;
  }
}

// --- Hostile input ----------------------------------------------------------

TEST(KeyphrasesTest, EmptyAndPunctuationOnlyTextsGiveNothing) {
  const KeyphraseExtractor extractor = Extractor();
  EXPECT_TRUE(extractor.Extract("", nullptr, 10).empty());
  EXPECT_TRUE(extractor.Extract("  \n\t ", nullptr, 10).empty());
  EXPECT_TRUE(extractor.Extract("!!! ... ,,, --- ''' (()) [[]] 12 345 6.7", nullptr, 10).empty());
  EXPECT_TRUE(extractor.Extract("the of and to in", nullptr, 10).empty());
  EXPECT_TRUE(extractor.Extract(kAbstract, nullptr, 0).empty());
  PhraseStatistics corpus = EmptyCorpus();
  corpus.Add("");
  EXPECT_EQ(corpus.document_count(), 1u);
  EXPECT_TRUE(extractor.Extract("", &corpus, 10).empty());
}

TEST(KeyphrasesTest, InvalidUtf8AndControlBytesAreSeparators) {
  const KeyphraseExtractor extractor = Extractor();
  std::string text = "lead \xff selenide\xc3 nano\x80particles \xed\xa0\x80 surrogate";
  text += std::string("\0zinc oxide\x01\x02 films", 19);
  text += " Größe der Körner – grain size; \xe2\x80\x9cquoted phrase\xe2\x80\x9d";
  const std::vector<Keyphrase> keyphrases = extractor.Extract(text, nullptr, 50);
  EXPECT_FALSE(keyphrases.empty());
  for (const Keyphrase& keyphrase : keyphrases) {
    EXPECT_TRUE(formats::IsValidUtf8(keyphrase.phrase)) << keyphrase.phrase;
    EXPECT_EQ(keyphrase.phrase.find('\0'), std::string::npos);
    EXPECT_EQ(keyphrase.phrase.find("\xe2\x80\x9c"), std::string::npos) << keyphrase.phrase;
  }
  const std::vector<std::string> phrases = Phrases(keyphrases);
  EXPECT_NE(RankOf(phrases, "Körner"), phrases.size()) << ::testing::PrintToString(phrases);
  EXPECT_NE(RankOf(phrases, "grain size"), phrases.size()) << ::testing::PrintToString(phrases);
  EXPECT_NE(RankOf(phrases, "quoted phrase"), phrases.size()) << ::testing::PrintToString(phrases);
}

TEST(KeyphrasesTest, HugeTextIsHandled) {
  const KeyphraseExtractor extractor = Extractor();
  std::string text;
  text.reserve(5 << 20);
  for (int i = 0; text.size() < (5u << 20); ++i) {
    text += kAbstract;
    text += " Sample " + std::to_string(i) + " shows zirconia grain number w" +
            std::to_string(i % 977) + ". ";
  }
  PhraseStatistics corpus = EmptyCorpus();
  corpus.Add(text);
  const std::vector<Keyphrase> keyphrases = extractor.Extract(text, &corpus, 10);
  ASSERT_EQ(keyphrases.size(), 10u);
  EXPECT_EQ(keyphrases.front().phrase, "grain boundary segregation");
  for (size_t i = 1; i < keyphrases.size(); ++i) {
    EXPECT_GE(keyphrases[i - 1].score, keyphrases[i].score);
  }
  // One 5 MB "word": not a phrase, no crash.
  EXPECT_TRUE(extractor.Extract(std::string(5 << 20, 'x'), nullptr, 10).empty());
}

TEST(KeyphrasesTest, RankingIsDeterministic) {
  PhraseStatistics corpus = EmptyCorpus();
  corpus.Add(kAbstract);
  corpus.Add("Atom probe tomography of steel.");
  const std::vector<Keyphrase> first = Extractor().Extract(kAbstract, &corpus, 20);
  const std::vector<Keyphrase> second = Extractor().Extract(kAbstract, &corpus, 20);
  ASSERT_EQ(first.size(), second.size());
  for (size_t i = 0; i < first.size(); ++i) {
    EXPECT_EQ(first[i].phrase, second[i].phrase);
    EXPECT_EQ(first[i].score, second[i].score);
  }
}

// --- scisearch keyphrases --------------------------------------------------

TEST(RunKeyphrasesTest, WritesOneLinePerGoodDocumentAndReportsBadLines) {
  testing::TempDir dir;
  const std::filesystem::path docs = dir.path() / "docs.jsonl";
  testing::WriteFileText(docs,
                         std::string("{\"id\": \"a\", \"text\": \"") + kAbstract +
                             "\"}\n"
                             "\n"
                             "{\"id\": 7, \"title\": \"Tilt series of zeolite crystals\", "
                             "\"abstract\": \"We record a tilt series of zeolite crystals.\"}\n"
                             "not json\n"
                             "{\"text\": \"no id here\"}\n"
                             "{\"id\": 1.5, \"text\": \"fractional id\"}\n"
                             "{\"id\": \"b\", \"text\": 3}\n"
                             "{\"id\": \"c\"}\n"
                             "[1, 2]\n"
                             "{\"id\": \"d\", \"text\": \"\", \"other\": [1]}\n");
  std::ostringstream out;
  std::ostringstream err;
  EXPECT_EQ(cli::RunKeyphrases(docs.string(), 3, out, err), 1);

  std::vector<std::string> lines;
  std::istringstream out_lines(out.str());
  for (std::string line; std::getline(out_lines, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 3u) << out.str();
  EXPECT_TRUE(lines[0].starts_with("{\"id\":\"a\",\"keyphrases\":[\"grain boundary segregation\","))
      << lines[0];
  EXPECT_EQ(std::count(lines[0].begin(), lines[0].end(), ','), 3) << lines[0];  // 3 phrases
  EXPECT_TRUE(lines[1].starts_with("{\"id\":7,\"keyphrases\":[\"")) << lines[1];
  EXPECT_NE(lines[1].find("zeolite crystals"), std::string::npos) << lines[1];
  EXPECT_EQ(lines[2], "{\"id\":\"d\",\"keyphrases\":[]}");

  const std::string errors = err.str();
  const std::string prefix = docs.string() + ":";
  EXPECT_NE(errors.find(prefix + "4: not valid JSON"), std::string::npos) << errors;
  EXPECT_NE(errors.find(prefix + "5: missing \"id\""), std::string::npos) << errors;
  EXPECT_NE(errors.find(prefix + "6: \"id\" must be a string or an integer"), std::string::npos)
      << errors;
  EXPECT_NE(errors.find(prefix + "7: \"text\" must be a string"), std::string::npos) << errors;
  EXPECT_NE(errors.find(prefix + "8: no \"text\""), std::string::npos) << errors;
  EXPECT_NE(errors.find(prefix + "9: expected a JSON object"), std::string::npos) << errors;
  EXPECT_EQ(std::count(errors.begin(), errors.end(), '\n'), 6) << errors;
}

TEST(RunKeyphrasesTest, UnreadableFileAndBadTopFailWithOneLine) {
  testing::TempDir dir;
  std::ostringstream out;
  std::ostringstream err;
  EXPECT_EQ(cli::RunKeyphrases((dir.path() / "absent.jsonl").string(), 10, out, err), 2);
  EXPECT_TRUE(out.str().empty());
  const std::string error = err.str();
  EXPECT_NE(error.find("absent.jsonl"), std::string::npos) << error;
  EXPECT_EQ(std::count(error.begin(), error.end(), '\n'), 1) << error;

  const std::filesystem::path docs = dir.path() / "docs.jsonl";
  testing::WriteFileText(docs, "{\"id\": 1, \"text\": \"zinc oxide films\"}\n");
  std::ostringstream err_top;
  EXPECT_EQ(cli::RunKeyphrases(docs.string(), 0, out, err_top), 2);
  EXPECT_NE(err_top.str().find("--top"), std::string::npos) << err_top.str();
  std::ostringstream ok_out;
  std::ostringstream ok_err;
  EXPECT_EQ(cli::RunKeyphrases(docs.string(), 5, ok_out, ok_err), 0);
  EXPECT_EQ(ok_out.str(), "{\"id\":1,\"keyphrases\":[\"zinc oxide films\"]}\n");
  EXPECT_TRUE(ok_err.str().empty()) << ok_err.str();
}

TEST(RunKeyphrasesTest, RanksEveryInspecAbstract) {
  SHARED_DATA_OR_SKIP(docs, "keyphrase/inspec-dev/docs.jsonl");
  std::ostringstream out;
  std::ostringstream err;
  EXPECT_EQ(cli::RunKeyphrases(docs.string(), 10, out, err), 0) << err.str();
  std::istringstream lines(out.str());
  size_t count = 0;
  size_t with_phrases = 0;
  for (std::string line; std::getline(lines, line); ++count) {
    with_phrases += line.find("\"keyphrases\":[]") == std::string::npos;
  }
  EXPECT_EQ(count, 1500u);
  EXPECT_EQ(with_phrases, count);
}

}  // namespace
}  // namespace scisearch::nlp
