#include "context/path_facts.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

namespace scisearch::context {
namespace {

PathVocabulary Facility() {
  PathVocabulary known;
  known.instruments = {{"TitanX", "FEI Titan"}, {"TEAM_I", "TEAM I"}, {"Helios-SEM", "FEI Helios"}};
  known.people = {{"aferreira", "Andrew Ferreira"},
                  {"percius", "Peter Ercius"},
                  {"jwu", "Jing Wu"},
                  {"tchen", "Tao Chen"}};
  return known;
}

PathFacts Read(std::string_view path) { return ParsePathFacts(path, Facility()); }

std::vector<std::string> ConceptIds(const PathFacts& facts) {
  std::vector<std::string> ids;
  for (const PathTerm& term : facts.terms) {
    ids.push_back(term.concept_id.empty() ? "~" + term.label : term.concept_id);
  }
  return ids;
}

bool HasConcept(const PathFacts& facts, std::string_view id) {
  return std::any_of(facts.terms.begin(), facts.terms.end(),
                     [&](const PathTerm& term) { return term.concept_id == id; });
}

std::string DateOf(std::string_view path) {
  const PathFacts facts = ParsePathFacts(path, {});
  return facts.date ? facts.date->iso : "none";
}

// ---------------------------------------------------------------------------------------
// The example of DOMAIN.md, read whole.

TEST(PathFactsTest, ReadsTheDomainExample) {
  const PathFacts facts =
      Read("TEAM_I/Ercius/2011/20111013 - PbSe with ligands/16.20.55 Scanning Acquire_0026_1.ser");
  ASSERT_EQ(facts.components.size(), 5u);
  EXPECT_EQ(facts.extension, "ser");
  ASSERT_FALSE(facts.instruments.empty());
  EXPECT_EQ(facts.instruments[0].id, "TEAM_I");
  EXPECT_EQ(facts.instruments[0].evidence.component, 0);
  ASSERT_FALSE(facts.people.empty());
  EXPECT_EQ(facts.people[0].id, "percius");
  EXPECT_EQ(facts.people[0].evidence.text, "Ercius");
  ASSERT_TRUE(facts.date.has_value());
  EXPECT_EQ(facts.date->iso, "2011-10-13");
  EXPECT_EQ(facts.date->precision, DatePrecision::kDay);
  EXPECT_EQ(facts.date->evidence.component, 3);
  EXPECT_EQ(facts.date->evidence.text, "20111013");
  ASSERT_TRUE(facts.time.has_value());
  EXPECT_EQ(facts.time->iso, "16:20:55");
  EXPECT_EQ(facts.time->evidence.component, 4);
  ASSERT_TRUE(facts.sequence.has_value());
  EXPECT_EQ(facts.sequence->number, 26);
  EXPECT_EQ(facts.sequence->element, 1);
  EXPECT_TRUE(HasConcept(facts, "stem"));  // "Scanning Acquire"
  EXPECT_TRUE(HasConcept(facts, "pbse"));  // a material: also a sample word
  EXPECT_TRUE(HasConcept(facts, "ligand"));
  EXPECT_EQ(facts.sample_text, "PbSe with ligands");
  EXPECT_EQ(facts.sample_words, (std::vector<std::string>{"PbSe", "with", "ligands"}));
  EXPECT_EQ(facts.sample_components, std::vector<int>{3});
  EXPECT_EQ(facts.components[0].role, ComponentRole::kInstrument);
  EXPECT_EQ(facts.components[1].role, ComponentRole::kPerson);
  EXPECT_EQ(facts.components[2].role, ComponentRole::kYear);
  EXPECT_EQ(facts.components[3].role, ComponentRole::kSample);
  EXPECT_EQ(facts.components[4].role, ComponentRole::kFile);
  EXPECT_TRUE(facts.components[4].words.empty());
}

TEST(PathFactsTest, ReadsAFolderWithoutOrganisation) {
  const PathFacts facts = Read("20111013 - PbSe with ligands/16.20.55 Scanning Acquire_0026_1.ser");
  EXPECT_TRUE(facts.instruments.empty());
  EXPECT_TRUE(facts.people.empty());
  ASSERT_TRUE(facts.date.has_value());
  EXPECT_EQ(facts.date->iso, "2011-10-13");
  EXPECT_EQ(facts.sample_text, "PbSe with ligands");
}

TEST(PathFactsTest, SampleFolderDropsItsCounter) {
  const PathFacts facts =
      Read("TitanX/Ferreira/2012/20121011 - fau crystal 2/17.57.52 Spectrum Acquire_0008.emi");
  EXPECT_EQ(facts.sample_text, "fau crystal");
  EXPECT_EQ(facts.date->iso, "2012-10-11");
  EXPECT_EQ(facts.time->iso, "17:57:52");
  EXPECT_EQ(facts.sequence->number, 8);
  EXPECT_EQ(facts.sequence->element, -1);
  EXPECT_EQ(facts.instruments[0].id, "TitanX");
  EXPECT_EQ(facts.people[0].id, "aferreira");
  // "fau" is the framework code of faujasite, zeolite Y.
  EXPECT_EQ(ConceptIds(facts), (std::vector<std::string>{"zeolite-y", "~spectrum"}));
}

TEST(PathFactsTest, WithoutVocabularyOrganisationFoldersAreNotTheSample) {
  const PathFacts facts =
      ParsePathFacts("TitanX/Ferreira/2012/20121011 - fau crystal 2/fau_016.dm3", {});
  EXPECT_EQ(facts.sample_text, "fau crystal");
  EXPECT_EQ(facts.sequence->number, 16);
  // With only a year folder below them, unknown folders are organisation, not sample.
  const PathFacts bare = ParsePathFacts("TitanX/Ferreira/2012/HAADF_0003.dm3", {});
  EXPECT_EQ(bare.sample_text, "");
  EXPECT_EQ(bare.date->iso, "2012");
  EXPECT_EQ(bare.date->precision, DatePrecision::kYear);
}

// ---------------------------------------------------------------------------------------
// Dates.

TEST(PathFactsTest, ReadsEveryDateForm) {
  EXPECT_EQ(DateOf("20111013 ws2/0001.dm3"), "2011-10-13");
  EXPECT_EQ(DateOf("2011-10-13 ws2/0001.dm3"), "2011-10-13");
  EXPECT_EQ(DateOf("2011_10_13_ws2/0001.dm3"), "2011-10-13");
  EXPECT_EQ(DateOf("2011.10.13 ws2/0001.dm3"), "2011-10-13");
  EXPECT_EQ(DateOf("13Oct11 ws2/0001.dm3"), "2011-10-13");
  EXPECT_EQ(DateOf("13-Oct-2011 ws2/0001.dm3"), "2011-10-13");
  EXPECT_EQ(DateOf("13 October 2011/0001.dm3"), "2011-10-13");
  EXPECT_EQ(DateOf("October 13, 2011 ws2/0001.dm3"), "2011-10-13");
  EXPECT_EQ(DateOf("Oct-13-11 ws2/0001.dm3"), "2011-10-13");
  EXPECT_EQ(DateOf("2011Oct13/0001.dm3"), "2011-10-13");
  EXPECT_EQ(DateOf("13.10.2011 ws2/0001.dm3"), "2011-10-13");  // day first: 13 is no month
  EXPECT_EQ(DateOf("10-13-2011 ws2/0001.dm3"), "2011-10-13");  // month first: 13 is no month
  EXPECT_EQ(DateOf("2011-10 ws2/0001.dm3"), "2011-10");
  EXPECT_EQ(DateOf("Oct2011/0001.dm3"), "2011-10");
  EXPECT_EQ(DateOf("2012/0001.dm3"), "2012");
  EXPECT_EQ(DateOf("Sept 3 2014/0001.dm3"), "2014-09-03");
  EXPECT_EQ(DateOf("29Feb12/0001.dm3"), "2012-02-29");  // 2012 is a leap year
}

TEST(PathFactsTest, DatePrecisionAndEvidence) {
  const PathFacts facts = ParsePathFacts("2011/2011-10 survey/13-Oct-2011 ws2/0001.dm3", {});
  ASSERT_EQ(facts.dates.size(), 3u);
  EXPECT_EQ(facts.dates[0].precision, DatePrecision::kYear);
  EXPECT_EQ(facts.dates[1].precision, DatePrecision::kMonth);
  EXPECT_EQ(facts.dates[2].precision, DatePrecision::kDay);
  EXPECT_EQ(facts.date->iso, "2011-10-13");
  EXPECT_EQ(facts.date->evidence.text, "13-Oct-2011");
  EXPECT_EQ(facts.date->evidence.component, 2);
  EXPECT_EQ(facts.date->year, 2011);
  EXPECT_EQ(facts.date->month, 10);
  EXPECT_EQ(facts.date->day, 13);
}

TEST(PathFactsTest, MonthAndDayTakeTheYearFolder) {
  const PathFacts facts = ParsePathFacts("Ferreira/2011/Oct13 ws2/0001.dm3", {});
  ASSERT_TRUE(facts.date.has_value());
  EXPECT_EQ(facts.date->iso, "2011-10-13");
  EXPECT_TRUE(facts.date->year_inferred);
  EXPECT_EQ(facts.date->evidence.text, "Oct13");
  // Without a year anywhere: ISO's month-day form.
  EXPECT_EQ(DateOf("Oct13 ws2/0001.dm3"), "--10-13");
}

TEST(PathFactsTest, RejectsImpossibleDates) {
  EXPECT_EQ(DateOf("20111345 ws2/0001.dm3"), "none");  // month 13, day 45
  EXPECT_EQ(DateOf("2011-02-30 ws2/0001.dm3"), "none");
  EXPECT_EQ(DateOf("31Apr11 ws2/0001.dm3"), "none");
  EXPECT_EQ(DateOf("29Feb11/0001.dm3"), "none");  // 2011 is not a leap year
  EXPECT_EQ(DateOf("13-13-2011/0001.dm3"), "none");
  EXPECT_EQ(DateOf("18991231/0001.dm3"), "none");  // no microscope wrote files then
}

TEST(PathFactsTest, SequenceNumbersAreNotDates) {
  const PathFacts facts = ParsePathFacts("ws2/Scanning Acquire_0026.ser", {});
  EXPECT_FALSE(facts.date.has_value());
  EXPECT_EQ(facts.sequence->number, 26);
  const PathFacts dm = ParsePathFacts("ws2/SAED 2012.dm3", {});  // DM's counter, not a year
  EXPECT_FALSE(dm.date.has_value());
  EXPECT_EQ(dm.sequence->number, 2012);
  const PathFacts impossible = ParsePathFacts("ws2/scan_20111345.dm3", {});
  EXPECT_FALSE(impossible.date.has_value());
  EXPECT_EQ(impossible.sequence->number, 20111345);
}

TEST(PathFactsTest, DateAndTimeInTheFileName) {
  const PathFacts facts =
      ParsePathFacts("Tanaka/2019/2019-07-15 CEO2 (2)/SE_2019-07-16_081.tif", {});
  ASSERT_TRUE(facts.date.has_value());
  EXPECT_EQ(facts.date->iso, "2019-07-16");  // the file's own date, nearest the file
  EXPECT_EQ(facts.date->evidence.component, 3);
  EXPECT_EQ(facts.sequence->number, 81);
  EXPECT_TRUE(HasConcept(facts, "secondary-electrons"));
  EXPECT_EQ(facts.sample_text, "CEO2");
  const PathFacts stamp = ParsePathFacts("2012/scan_20190716_171352.h5", {});
  EXPECT_EQ(stamp.date->iso, "2019-07-16");
  EXPECT_EQ(stamp.time->iso, "17:13:52");
}

// ---------------------------------------------------------------------------------------
// Times of day.

TEST(PathFactsTest, ReadsTimesOfDay) {
  const PathFacts tia = ParsePathFacts("ws2/16.20.55 Scanning Acquire_0026_1.ser", {});
  ASSERT_TRUE(tia.time.has_value());
  EXPECT_EQ(tia.time->hour, 16);
  EXPECT_EQ(tia.time->minute, 20);
  EXPECT_EQ(tia.time->second, 55);
  EXPECT_TRUE(tia.time->has_seconds);
  const PathFacts velox = ParsePathFacts("ws2/1713 HAADF 18 kx WSE2 ML.emd", {});
  ASSERT_TRUE(velox.time.has_value());
  EXPECT_EQ(velox.time->iso, "17:13");
  EXPECT_FALSE(velox.time->has_seconds);
  EXPECT_FALSE(velox.sequence.has_value());
  const PathFacts dashed = ParsePathFacts("ws2/12-33-51_map.tif", {});
  EXPECT_EQ(dashed.time->iso, "12:33:51");
  const PathFacts colons = ParsePathFacts("ws2/img 08:05:09.tif", {});
  EXPECT_EQ(colons.time->iso, "08:05:09");
}

TEST(PathFactsTest, RejectsImpossibleTimes) {
  EXPECT_FALSE(ParsePathFacts("ws2/25.61.00 Scanning Acquire_0001.ser", {}).time.has_value());
  EXPECT_FALSE(ParsePathFacts("ws2/2471 HAADF.emd", {}).time.has_value());
  // Four digits with nothing after them are DM's counter, not an hour.
  const PathFacts counter = ParsePathFacts("ws2/1713.dm3", {});
  EXPECT_FALSE(counter.time.has_value());
  EXPECT_EQ(counter.sequence->number, 1713);
}

// ---------------------------------------------------------------------------------------
// Sequence numbers.

TEST(PathFactsTest, ReadsSequenceNumbers) {
  const PathFacts series = ParsePathFacts("2012/10.40.34 Preview_0027_1.ser", {});
  EXPECT_EQ(series.sequence->number, 27);
  EXPECT_EQ(series.sequence->element, 1);
  EXPECT_EQ(series.sequence->evidence.text, "0027_1");
  const PathFacts dm = ParsePathFacts("2012/WSE2 ML_053.dm4", {});
  EXPECT_EQ(dm.sequence->number, 53);
  EXPECT_EQ(dm.sequence->element, -1);
  EXPECT_EQ(dm.sample_text, "WSE2 ML");
  const PathFacts copy = ParsePathFacts("2012/HAADF_0004 (2).dm4", {});
  EXPECT_EQ(copy.sequence->number, 4);
  EXPECT_EQ(copy.sequence->copy, 2);
  const PathFacts camera = ParsePathFacts("2012/data_scan0000046_id42004.emd", {});
  EXPECT_EQ(camera.sequence->number, 46);  // 42004 is a record id, not a counter
  const PathFacts tilt = ParsePathFacts("2012/fau_tilt_31.mrc", {});
  EXPECT_EQ(tilt.sequence->number, 31);
  EXPECT_TRUE(HasConcept(tilt, "tomography"));
  EXPECT_EQ(tilt.sample_text, "fau");
}

TEST(PathFactsTest, FolderCopyIndex) {
  const PathFacts facts = ParsePathFacts("20121214 - nay (2)/tomo_016.mrc", {});
  ASSERT_EQ(facts.sequences.size(), 2u);
  EXPECT_EQ(facts.sequences[0].copy, 2);
  EXPECT_EQ(facts.sequences[0].evidence.component, 0);
  EXPECT_EQ(facts.sequence->number, 16);
  EXPECT_EQ(facts.sequence->copy, -1);
  EXPECT_EQ(facts.sample_text, "nay");
}

TEST(PathFactsTest, CounterRunIntoTheSampleName) {
  // The folder names the sample, so "BiFeO3" + "26".
  const PathFacts hinted = ParsePathFacts("20130612 - BiFeO3 FIB lamella/BiFeO326.tif", {});
  ASSERT_TRUE(hinted.sequence.has_value());
  EXPECT_EQ(hinted.sequence->number, 26);
  EXPECT_EQ(hinted.sample_text, "BiFeO3 FIB lamella");
  const PathFacts acronym = ParsePathFacts("20130612 - BFO/BFO65.tif", {});
  EXPECT_EQ(acronym.sequence->number, 65);
  EXPECT_EQ(acronym.sample_text, "BFO");
  // No folder hint: a formula keeps its own counts and gives up the rest.
  const PathFacts formula = ParsePathFacts("2012/Ti6Al4V35.tif", {});
  EXPECT_EQ(formula.sequence->number, 35);
  EXPECT_EQ(formula.sample_text, "Ti6Al4V");
  // Not a formula, no hint: the word stays whole.
  const PathFacts word = ParsePathFacts("2012/C60.tif", {});
  EXPECT_FALSE(word.sequence.has_value());
  EXPECT_EQ(word.sample_text, "C60");
}

// ---------------------------------------------------------------------------------------
// Magnification, camera length, energy.

double MagnificationOf(std::string_view path) {
  const PathFacts facts = ParsePathFacts(path, {});
  return facts.magnification ? facts.magnification->value : -1;
}

TEST(PathFactsTest, ReadsMagnifications) {
  EXPECT_DOUBLE_EQ(MagnificationOf("2012/1713 HAADF 18 kx.emd"), 18000);
  EXPECT_DOUBLE_EQ(MagnificationOf("2012/1250 HAADF 5.1 Mx.emd"), 5.1e6);
  EXPECT_DOUBLE_EQ(MagnificationOf("2012/ws2_910kx_01.dm3"), 910000);
  EXPECT_DOUBLE_EQ(MagnificationOf("2012/ws2 x50k.tif"), 50000);
  EXPECT_DOUBLE_EQ(MagnificationOf("2012/ws2_50000x.tif"), 50000);
  EXPECT_DOUBLE_EQ(MagnificationOf("2012/1041 Ceta 720 x.emd"), 720);
  EXPECT_DOUBLE_EQ(MagnificationOf("2012/LICOO2 1900x_28.tif"), 1900);
  EXPECT_DOUBLE_EQ(MagnificationOf("2012/img_2048x2048.tif"), -1);  // a frame size
  EXPECT_DOUBLE_EQ(MagnificationOf("2012/ws2 2x.tif"), -1);         // too small to be one
  const PathFacts facts = ParsePathFacts("2012/1250 HAADF 5.1 Mx.emd", {});
  EXPECT_EQ(facts.magnification->evidence.text, "5.1 Mx");
  EXPECT_FALSE(facts.sequence.has_value());  // "5.1" is no counter
}

TEST(PathFactsTest, ReadsCameraLengthAndEnergy) {
  const PathFacts saed = ParsePathFacts("2012/SAED 420mm 0081.dm3", {});
  ASSERT_TRUE(saed.camera_length.has_value());
  EXPECT_DOUBLE_EQ(saed.camera_length->value, 420);
  EXPECT_EQ(saed.sequence->number, 81);
  EXPECT_TRUE(HasConcept(saed, "saed"));
  const PathFacts velox = ParsePathFacts("2012/1100 Ceta 66 cm.emd", {});
  EXPECT_DOUBLE_EQ(velox.camera_length->value, 660);
  const PathFacts energy = ParsePathFacts("2012/ws2 80kV HAADF.dm3", {});
  ASSERT_TRUE(energy.beam_energy.has_value());
  EXPECT_DOUBLE_EQ(energy.beam_energy->value, 80);
  // A size is a sample word, not a camera length.
  const PathFacts size = ParsePathFacts("20140925 - Pd 5nm/0001.dm3", {});
  EXPECT_FALSE(size.camera_length.has_value());
  EXPECT_EQ(size.sample_text, "Pd 5nm");
}

// ---------------------------------------------------------------------------------------
// Known instruments and people.

std::string InstrumentOf(std::string_view path) {
  const PathFacts facts = Read(path);
  return facts.instruments.empty() ? "none" : facts.instruments[0].id;
}
std::string PersonOf(std::string_view path) {
  const PathFacts facts = Read(path);
  return facts.people.empty() ? "none" : facts.people[0].id;
}

TEST(PathFactsTest, MatchesInstrumentsBySeparatorAndCase) {
  EXPECT_EQ(InstrumentOf("TitanX/0001.dm3"), "TitanX");
  EXPECT_EQ(InstrumentOf("titan_x/0001.dm3"), "TitanX");
  EXPECT_EQ(InstrumentOf("TITAN-X/0001.dm3"), "TitanX");
  EXPECT_EQ(InstrumentOf("Titan X/0001.dm3"), "TitanX");
  EXPECT_EQ(InstrumentOf("FEI Titan/0001.dm3"), "TitanX");  // the display name
  EXPECT_EQ(InstrumentOf("Helios SEM/0001.dm3"), "Helios-SEM");
  EXPECT_EQ(InstrumentOf("TEAM I/0001.dm3"), "TEAM_I");
}

TEST(PathFactsTest, MatchesInstrumentsThroughOneTypo) {
  const PathFacts swapped = Read("TitnaX/0001.dm3");
  ASSERT_FALSE(swapped.instruments.empty());
  EXPECT_EQ(swapped.instruments[0].id, "TitanX");
  EXPECT_EQ(swapped.instruments[0].edits, 1);
  EXPECT_LT(swapped.instruments[0].evidence.confidence, 0.95);
  EXPECT_EQ(InstrumentOf("TitaX/0001.dm3"), "TitanX");    // dropped
  EXPECT_EQ(InstrumentOf("TittanX/0001.dm3"), "TitanX");  // doubled
  EXPECT_EQ(InstrumentOf("TitanQ/0001.dm3"), "TitanX");   // changed
  EXPECT_EQ(InstrumentOf("TtinaX/0001.dm3"), "none");     // two edits
}

TEST(PathFactsTest, MatchesPeopleBySurnameIdAndName) {
  EXPECT_EQ(PersonOf("Ferreira/0001.dm3"), "aferreira");
  EXPECT_EQ(PersonOf("aferreira/0001.dm3"), "aferreira");
  EXPECT_EQ(PersonOf("Andrew_Ferreira/0001.dm3"), "aferreira");
  EXPECT_EQ(PersonOf("A. Ferreira/0001.dm3"), "aferreira");
  EXPECT_EQ(PersonOf("Ferreira_2012/0001.dm3"), "aferreira");
  EXPECT_EQ(PersonOf("Ferreria/0001.dm3"), "aferreira");   // swapped
  EXPECT_EQ(PersonOf("Feerreira/0001.dm3"), "aferreira");  // doubled
  EXPECT_EQ(PersonOf("Frreira/0001.dm3"), "aferreira");    // dropped
  EXPECT_EQ(PersonOf("Ercius/0001.dm3"), "percius");
  const PathFacts facts = Read("Ferreira/2012/0001.dm3");
  EXPECT_EQ(facts.people[0].name, "Andrew Ferreira");
  EXPECT_EQ(facts.people[0].evidence.component, 0);
}

TEST(PathFactsTest, ShortNamesNeedAWholeComponentAndNoTypo) {
  EXPECT_EQ(PersonOf("Wu/0001.dm3"), "jwu");
  EXPECT_EQ(PersonOf("20121011 - Wu/0001.dm3"), "jwu");  // the date aside, it is the whole name
  EXPECT_EQ(PersonOf("20121011 - wu ws2 flake/0001.dm3"), "none");
  EXPECT_EQ(PersonOf("Chne/0001.dm3"), "none");  // four letters: no typo tolerated
  EXPECT_EQ(PersonOf("Chen/0001.dm3"), "tchen");
}

TEST(PathFactsTest, NameInsideASampleFolderIsTakenOut) {
  const PathFacts facts = Read("2012/20121011 aferreira fau crystal/0001.dm3");
  ASSERT_FALSE(facts.people.empty());
  EXPECT_EQ(facts.people[0].id, "aferreira");
  EXPECT_LT(facts.people[0].evidence.confidence, 0.95);
  EXPECT_EQ(facts.sample_text, "fau crystal");
}

TEST(PathFactsTest, UnknownWordsAreSampleWordsNotNames) {
  const PathFacts facts = Read("TitanX/Ferreira/2012/20121011 - zeoite y activated/0001.dm3");
  EXPECT_EQ(facts.sample_text, "zeoite y activated");
  EXPECT_EQ(facts.people.size(), 1u);
  EXPECT_EQ(facts.instruments.size(), 1u);
  // The vocabulary reads the typo too, as a sample word.
  bool zeolite = false;
  for (const PathTerm& term : facts.terms) {
    if (term.concept_id == "zeolite") {
      zeolite = true;
      EXPECT_EQ(term.edits, 1);
      EXPECT_TRUE(term.describes_sample);
    }
  }
  EXPECT_TRUE(zeolite);
}

// ---------------------------------------------------------------------------------------
// Technique and detector words.

TEST(PathFactsTest, ReadsAcquisitionWords) {
  const PathFacts velox = ParsePathFacts("2012/1434 HAADF-DF2-BF 7.2 Mx.emd", {});
  EXPECT_EQ(ConceptIds(velox), (std::vector<std::string>{"haadf", "adf", "bright-field"}));
  EXPECT_EQ(velox.sample_text, "");
  EXPECT_TRUE(HasConcept(ParsePathFacts("2012/NBD 420mm 0066.dm3", {}), "nbd"));
  EXPECT_TRUE(HasConcept(ParsePathFacts("2012/1003 EDS.emd", {}), "eds"));
  EXPECT_TRUE(HasConcept(ParsePathFacts("2012/EELS 0028.dm3", {}), "eels"));
  EXPECT_TRUE(HasConcept(ParsePathFacts("2012/1646 SI 255 Mx.emd", {}), "spectrum-image"));
  EXPECT_TRUE(HasConcept(ParsePathFacts("2012/tomo_015.mrc", {}), "tomography"));
  EXPECT_TRUE(HasConcept(ParsePathFacts("2012/PTO-STO SL_dp_stack_20.mrc", {}), "4d-stem"));
  EXPECT_TRUE(HasConcept(ParsePathFacts("2012/ws2 4D-STEM 0001.h5", {}), "4d-stem"));
  EXPECT_TRUE(HasConcept(ParsePathFacts("2012/ws2_4D_0001.h5", {}), "4d-stem"));
  EXPECT_TRUE(HasConcept(ParsePathFacts("2012/13.15.40 CCD Acquire_0041.emi", {}), "ccd"));
  EXPECT_TRUE(
      HasConcept(ParsePathFacts("2012/18.28.03 Spectrum Imaging_0011.emi", {}), "spectrum-image"));
  EXPECT_TRUE(HasConcept(ParsePathFacts("2012/17.17.11 Search_0012.emi", {}), "search-image"));
  EXPECT_TRUE(HasConcept(ParsePathFacts("2012/17.39.41 Preview_0013.emi", {}), "search-image"));
  EXPECT_TRUE(HasConcept(ParsePathFacts("2012/0011 Ceta 660 mm.emd", {}), "ccd"));
  EXPECT_TRUE(
      HasConcept(ParsePathFacts("2012/BSE_2019-07-15_028.tif", {}), "backscattered-electrons"));
  EXPECT_TRUE(HasConcept(ParsePathFacts("2012/fauHAADFimage_3.dm3", {}), "haadf"));
}

TEST(PathFactsTest, CapitalsOnlyCodesNeedCapitalsAndTheFileName) {
  // "Si" is silicon, "SI" in a Velox name is a spectrum image.
  EXPECT_FALSE(HasConcept(ParsePathFacts("2012/Si wafer 0001.dm3", {}), "spectrum-image"));
  EXPECT_EQ(ParsePathFacts("2012/Si wafer 0001.dm3", {}).sample_text, "Si wafer");
  // In a folder, "SE" is not read as a detector.
  const PathFacts folder = ParsePathFacts("SE cathode/0001.dm3", {});
  EXPECT_FALSE(HasConcept(folder, "secondary-electrons"));
  EXPECT_EQ(folder.sample_text, "SE cathode");
  // "Search" names a TIA image only in a file name.
  EXPECT_EQ(ParsePathFacts("search for defects/0001.dm3", {}).sample_text, "search for defects");
}

TEST(PathFactsTest, ReadsTechniqueTypos) {
  const PathFacts sead = ParsePathFacts("2012/Ti-6-4_SEAD_42.dm3", {});  // swapped
  ASSERT_TRUE(HasConcept(sead, "saed"));
  EXPECT_EQ(sead.terms.back().edits, 1);
  EXPECT_EQ(sead.sample_text, "Ti-6-4");
  EXPECT_TRUE(HasConcept(ParsePathFacts("2012/SADE 0153.dm3", {}), "saed"));
  EXPECT_TRUE(HasConcept(ParsePathFacts("2012/HRTTEM 0042.dm3", {}), "hrtem"));  // doubled
  EXPECT_TRUE(HasConcept(ParsePathFacts("2012/EESL 0030.dm3", {}), "eels"));
  EXPECT_TRUE(HasConcept(ParsePathFacts("2012/HADF 0030.dm3", {}), "haadf"));  // dropped
  const PathFacts series = ParsePathFacts("2012/seres 0161.dm3", {});
  ASSERT_EQ(series.terms.size(), 1u);
  EXPECT_EQ(series.terms[0].label, "time series");
  // Four letters tolerate only a swap; ordinary words are left alone.
  EXPECT_TRUE(ParsePathFacts("2012/steel 0001.dm3", {}).terms.size() == 1u);  // steel itself
  EXPECT_FALSE(HasConcept(ParsePathFacts("2012/step 0001.dm3", {}), "stem"));
  EXPECT_EQ(ParsePathFacts("2012/cubes 0001.dm3", {}).terms.size(), 0u);
}

TEST(PathFactsTest, TechniqueWordsInFoldersLeaveTheSample) {
  const PathFacts facts = ParsePathFacts("20220831_zif-8_low_dose/0857 Ceta 2100 mm zif-8.emd", {});
  EXPECT_TRUE(HasConcept(facts, "low-dose"));
  EXPECT_TRUE(HasConcept(facts, "ccd"));
  EXPECT_EQ(facts.sample_text, "zif-8");
  EXPECT_DOUBLE_EQ(facts.camera_length->value, 2100);
  EXPECT_EQ(facts.time->iso, "08:57");
}

// ---------------------------------------------------------------------------------------
// Sample words.

TEST(PathFactsTest, SplitsWordsButKeepsFormulas) {
  const PathFacts np = ParsePathFacts("20130729_Au_NP3/0001.dm3", {});
  EXPECT_EQ(np.sample_text, "Au NP3");
  EXPECT_EQ(np.sample_words, (std::vector<std::string>{"Au", "NP", "3"}));
  const PathFacts formulas = ParsePathFacts("Fe3O4 on SrTiO3/0001.dm3", {});
  EXPECT_EQ(formulas.sample_words, (std::vector<std::string>{"Fe3O4", "on", "SrTiO3"}));
  EXPECT_TRUE(HasConcept(formulas, "fe3o4"));
  EXPECT_TRUE(HasConcept(formulas, "srtio3"));
  const PathFacts camel = ParsePathFacts("fauCrystal_AuNPs/0001.dm3", {});
  EXPECT_EQ(camel.sample_words, (std::vector<std::string>{"fau", "Crystal", "Au", "NPs"}));
  const PathFacts compound = ParsePathFacts("2015 CdSe@ZnS QDs/0001.dm3", {});
  EXPECT_EQ(compound.sample_text, "CdSe@ZnS QDs");
  EXPECT_EQ(compound.sample_words, (std::vector<std::string>{"CdSe", "ZnS", "QDs"}));
}

TEST(PathFactsTest, KeepsOriginalCasingAndJoinsFolderAndFileWords) {
  const PathFacts facts = ParsePathFacts("20201208_WSE2 ML MONOLAYER/WSE2 ML twisted_053.dm4", {});
  EXPECT_EQ(facts.sample_text, "WSE2 ML MONOLAYER twisted");
  EXPECT_EQ(facts.sample_components, (std::vector<int>{0, 1}));
  const PathFacts pbse = ParsePathFacts("2012/PbSe vs pbse.dm3", {});
  EXPECT_EQ(pbse.sample_text, "PbSe vs");  // the same word twice, case aside, is one word
}

// ---------------------------------------------------------------------------------------
// Hostile input.

TEST(PathFactsTest, EmptyAndSeparatorOnlyInput) {
  EXPECT_TRUE(Read("").components.empty());
  EXPECT_TRUE(Read("/").components.empty());
  EXPECT_TRUE(Read("//./").components.empty());
  const PathFacts separators = Read("___/ - . + /...-_ +.dm3");
  EXPECT_EQ(separators.components.size(), 3u);
  EXPECT_FALSE(separators.date.has_value());
  EXPECT_EQ(separators.sample_text, "");
  EXPECT_TRUE(separators.terms.empty());
}

TEST(PathFactsTest, InvalidUtf8IsReadAsWindows1252) {
  const PathFacts facts = Read("20111013 - \xB5m particles \xff/0001.dm3");
  EXPECT_EQ(facts.date->iso, "2011-10-13");
  EXPECT_EQ(facts.components[0].text, "20111013 - \xC2\xB5m particles \xC3\xBF");
  EXPECT_EQ(facts.sample_text, "\xC2\xB5m particles \xC3\xBF");
  // Valid UTF-8 is kept as written.
  EXPECT_EQ(Read("Müller Probe/0001.dm3").sample_text, "Müller Probe");
}

TEST(PathFactsTest, TenThousandComponents) {
  std::string path;
  for (int i = 0; i < 10000; ++i) path += (i % 3 == 0 ? "2012/" : "ws2 flake/");
  path += "20121011 ws2 flake/16.20.55 Scanning Acquire_0026_1.ser";
  const auto start = std::chrono::steady_clock::now();
  const PathFacts facts = Read(path);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(facts.components.size(), 10002u);
  EXPECT_EQ(facts.date->iso, "2012-10-11");
  EXPECT_EQ(facts.sequence->number, 26);
  EXPECT_EQ(facts.sample_text, "ws2 flake");
  EXPECT_LT(seconds, 10.0);
}

TEST(PathFactsTest, VeryLongNames) {
  const std::string folder(1 << 20, 'a'), file(1 << 20, 'b');
  const PathFacts words = Read(folder + "/" + file + ".dm3");
  EXPECT_EQ(words.sample_text, folder + " " + file);
  const std::string digits(1 << 20, '7');
  const PathFacts numbers = Read(digits + "/" + digits + ".dm3");
  EXPECT_FALSE(numbers.date.has_value());
  EXPECT_FALSE(numbers.sequence.has_value());  // too long to be a counter
  std::string mixed;
  for (int i = 0; i < 100000; ++i) mixed += "(1) 12.3.4 x-";
  const PathFacts odd = Read(mixed + "/0001.dm3");
  EXPECT_EQ(odd.components.size(), 2u);
}

// ---------------------------------------------------------------------------------------
// The edit test.

TEST(WithinOneEditTest, CountsOneEdit) {
  EXPECT_TRUE(WithinOneEdit("titanx", "titanx"));
  EXPECT_TRUE(WithinOneEdit("titanx", "titnax"));   // swap
  EXPECT_TRUE(WithinOneEdit("titanx", "titax"));    // drop
  EXPECT_TRUE(WithinOneEdit("titanx", "tittanx"));  // double
  EXPECT_TRUE(WithinOneEdit("titanx", "titanq"));   // change
  EXPECT_TRUE(WithinOneEdit("", "a"));
  EXPECT_FALSE(WithinOneEdit("titanx", "ttinax"));
  EXPECT_FALSE(WithinOneEdit("titanx", "titan xx"));
  EXPECT_FALSE(WithinOneEdit("ab", "ba c"));
  EXPECT_FALSE(WithinOneEdit("abc", "cba"));
}

TEST(PathFactsParserTest, ParserIsReusableAndMovable) {
  PathFactsParser parser(Facility());
  PathFactsParser moved = std::move(parser);
  EXPECT_EQ(moved.Parse("TitanX/0001.dm3").instruments[0].id, "TitanX");
  EXPECT_EQ(moved.Parse("Helios-SEM/0001.tif").instruments[0].id, "Helios-SEM");
}

}  // namespace
}  // namespace scisearch::context
