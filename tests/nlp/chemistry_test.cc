// Tests of the chemistry rules: the periodic table, formulas and their names, and the
// finder on prose and on file names. Expected values are chemistry (IUPAC names,
// stoichiometry, element symbols), not output copied from the code.
#include "nlp/chemistry.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace scisearch::nlp {
namespace {

using Symbols = std::vector<std::string_view>;

bool Contains(const std::vector<std::string>& list, std::string_view item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

bool Contains(const std::vector<std::string_view>& list, std::string_view item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

// The mentions of `text` as "surface" strings, for compact expectations.
std::vector<std::string> Surfaces(std::string_view text, TextStyle style) {
  std::vector<std::string> out;
  for (const ChemistryMention& mention : FindChemistry(text, style)) {
    out.push_back(mention.surface);
  }
  return out;
}

// All element symbols found in `text`.
std::set<std::string_view> ElementsIn(std::string_view text, TextStyle style) {
  std::set<std::string_view> out;
  for (const ChemistryMention& mention : FindChemistry(text, style)) {
    out.insert(mention.element_symbols.begin(), mention.element_symbols.end());
  }
  return out;
}

// ------------------------------------------------------------------------------------
// Periodic table.

TEST(PeriodicTableTest, HasAll118ElementsInOrderWithUniqueSymbols) {
  const std::span<const Element> table = PeriodicTable();
  ASSERT_EQ(table.size(), 118u);
  std::set<std::string_view> symbols;
  std::set<std::string_view> names;
  for (size_t i = 0; i < table.size(); ++i) {
    EXPECT_EQ(table[i].atomic_number, static_cast<int>(i + 1));
    EXPECT_TRUE(symbols.insert(table[i].symbol).second) << table[i].symbol;
    EXPECT_TRUE(names.insert(table[i].name).second) << table[i].name;
    ASSERT_FALSE(table[i].symbol.empty());
    EXPECT_TRUE(table[i].symbol[0] >= 'A' && table[i].symbol[0] <= 'Z');
  }
  EXPECT_EQ(table[0].symbol, "H");
  EXPECT_EQ(table[25].name, "iron");
  EXPECT_EQ(table[81].symbol, "Pb");
  EXPECT_EQ(table[81].name, "lead");
  EXPECT_EQ(table[117].symbol, "Og");
  EXPECT_EQ(table[117].name, "oganesson");
}

TEST(PeriodicTableTest, SymbolLookupIsCaseExact) {
  ASSERT_NE(ElementBySymbol("Co"), nullptr);
  EXPECT_EQ(ElementBySymbol("Co")->atomic_number, 27);
  EXPECT_EQ(ElementBySymbol("CO"), nullptr);
  EXPECT_EQ(ElementBySymbol("co"), nullptr);
  EXPECT_EQ(ElementBySymbol("W")->name, "tungsten");
  EXPECT_EQ(ElementBySymbol("Xx"), nullptr);
  EXPECT_EQ(ElementBySymbol(""), nullptr);
}

TEST(PeriodicTableTest, NamesAcceptBritishAndAmericanSpellings) {
  EXPECT_EQ(ElementByName("aluminium")->atomic_number, 13);
  EXPECT_EQ(ElementByName("Aluminum")->atomic_number, 13);
  EXPECT_EQ(ElementByName("sulfur")->atomic_number, 16);
  EXPECT_EQ(ElementByName("SULPHUR")->atomic_number, 16);
  EXPECT_EQ(ElementByName("caesium")->atomic_number, 55);
  EXPECT_EQ(ElementByName("cesium")->atomic_number, 55);
  EXPECT_EQ(ElementByName("Gold")->symbol, "Au");
  EXPECT_EQ(ElementByName("goldfish"), nullptr);
  EXPECT_EQ(ElementByName(""), nullptr);
}

// ------------------------------------------------------------------------------------
// Formulas.

struct FormulaCase {
  std::string_view text;
  std::string_view canonical;
  Symbols elements;
  std::string_view name;  // the expected best name; "" when the material has none
};

TEST(ParseFormulaTest, ReadsFormulasAndNamesThem) {
  const FormulaCase cases[] = {
      {"PbSe", "PbSe", {"Pb", "Se"}, "lead selenide"},
      {"SrTiO3", "SrTiO3", {"Sr", "Ti", "O"}, "strontium titanate"},
      {"La0.7Sr0.3MnO3",
       "La0.7Sr0.3MnO3",
       {"La", "Sr", "Mn", "O"},
       "lanthanum strontium manganite"},
      {"CsPbBr3", "CsPbBr3", {"Cs", "Pb", "Br"}, "caesium lead bromide"},
      {"Pt3Ni", "Pt3Ni", {"Pt", "Ni"}, ""},  // an alloy has no compound name
      {"MoS2", "MoS2", {"Mo", "S"}, "molybdenum disulfide"},
      {"WSe2", "WSe2", {"W", "Se"}, "tungsten diselenide"},
      {"(NH4)2SO4", "(NH4)2SO4", {"N", "H", "S", "O"}, "ammonium sulfate"},
      {"ZnO", "ZnO", {"Zn", "O"}, "zinc oxide"},
      {"GaN", "GaN", {"Ga", "N"}, "gallium nitride"},
      {"TiO\xE2\x82\x82", "TiO2", {"Ti", "O"}, "titanium dioxide"},  // subscript two
      {"BaTiO3", "BaTiO3", {"Ba", "Ti", "O"}, "barium titanate"},
      {"LaAlO3", "LaAlO3", {"La", "Al", "O"}, "lanthanum aluminate"},
      {"SiC", "SiC", {"Si", "C"}, "silicon carbide"},
      {"Si3N4", "Si3N4", {"Si", "N"}, "silicon nitride"},
      {"CO", "CO", {"C", "O"}, "carbon monoxide"},
      {"CO2", "CO2", {"C", "O"}, "carbon dioxide"},
      {"H2O", "H2O", {"H", "O"}, "water"},
      {"NH3", "NH3", {"N", "H"}, "ammonia"},
      {"CaF2", "CaF2", {"Ca", "F"}, "calcium fluoride"},
      {"LaB6", "LaB6", {"La", "B"}, "lanthanum hexaboride"},
      {"OsO4", "OsO4", {"Os", "O"}, "osmium tetroxide"},
      {"SF6", "SF6", {"S", "F"}, "sulfur hexafluoride"},
      {"P2O5", "P2O5", {"P", "O"}, "diphosphorus pentoxide"},
      {"NaOH", "NaOH", {"Na", "O", "H"}, "sodium hydroxide"},
      {"Ca(OH)2", "Ca(OH)2", {"Ca", "O", "H"}, "calcium hydroxide"},
      {"H2SO4", "H2SO4", {"H", "S", "O"}, "sulfuric acid"},
      {"LiFePO4", "LiFePO4", {"Li", "Fe", "P", "O"}, "lithium iron phosphate"},
      {"LiCoO2", "LiCoO2", {"Li", "Co", "O"}, "lithium cobalt oxide"},
      {"InGaAs", "InGaAs", {"In", "Ga", "As"}, "indium gallium arsenide"},
      {"Cu2ZnSnS4", "Cu2ZnSnS4", {"Cu", "Zn", "Sn", "S"}, "copper zinc tin sulfide"},
      {"PbZr0.2Ti0.8O3", "PbZr0.2Ti0.8O3", {"Pb", "Zr", "Ti", "O"}, "lead zirconate titanate"},
      {"CuSO4\xC2\xB7"
       "5H2O",
       "CuSO4\xC2\xB7"
       "5H2O",
       {"Cu", "S", "O", "H"},
       "copper sulfate pentahydrate"},
      {"La1-xSrxMnO3", "La1-xSrxMnO3", {"La", "Sr", "Mn", "O"}, "lanthanum strontium manganite"},
      {"SiGe", "SiGe", {"Si", "Ge"}, ""},  // an alloy, not "silicon germanide"
      {"CdSe/ZnS", "CdSe/ZnS", {"Cd", "Se", "Zn", "S"}, "cadmium selenide"},
      {"CdSe@ZnS", "CdSe@ZnS", {"Cd", "Se", "Zn", "S"}, "cadmium selenide"},
      {"Pt/C", "Pt/C", {"Pt", "C"}, ""},
      {"ZnO:Al", "ZnO:Al", {"Zn", "O", "Al"}, "zinc oxide"},
  };
  for (const FormulaCase& c : cases) {
    SCOPED_TRACE(std::string(c.text));
    Result<Formula> formula = ParseFormula(c.text);
    ASSERT_TRUE(formula.ok()) << formula.status().message();
    EXPECT_EQ(formula->canonical, c.canonical);
    EXPECT_EQ(formula->element_symbols, c.elements);
    if (c.name.empty()) {
      EXPECT_TRUE(formula->material_names.empty());
    } else {
      ASSERT_FALSE(formula->material_names.empty());
      EXPECT_TRUE(Contains(formula->material_names, c.name));
    }
  }
}

TEST(ParseFormulaTest, CompositeNamesEachPart) {
  Result<Formula> formula = ParseFormula("CdSe/ZnS");
  ASSERT_TRUE(formula.ok());
  EXPECT_TRUE(Contains(formula->material_names, "cadmium selenide"));
  EXPECT_TRUE(Contains(formula->material_names, "zinc sulfide"));
}

TEST(ParseFormulaTest, KnownMaterialsComeFromTheVocabulary) {
  Result<Formula> sto = ParseFormula("SrTiO3");
  ASSERT_TRUE(sto.ok());
  EXPECT_TRUE(Contains(sto->concept_ids, "srtio3"));
  Result<Formula> magnetite = ParseFormula("Fe3O4");
  ASSERT_TRUE(magnetite.ok());
  EXPECT_TRUE(Contains(magnetite->concept_ids, "fe3o4"));
  EXPECT_TRUE(Contains(magnetite->material_names, "magnetite"));
  EXPECT_TRUE(Contains(magnetite->material_names, "iron oxide"));
  Result<Formula> ceria = ParseFormula("CeO2");
  ASSERT_TRUE(ceria.ok());
  EXPECT_TRUE(Contains(ceria->concept_ids, "ceo2"));
  EXPECT_TRUE(Contains(ceria->material_names, "cerium oxide"));
  // Oxygen-deficient STO is still STO.
  Result<Formula> deficient = ParseFormula("SrTiO3-\xCE\xB4");
  ASSERT_TRUE(deficient.ok());
  EXPECT_EQ(deficient->canonical, "SrTiO3-\xCE\xB4");
  EXPECT_TRUE(Contains(deficient->concept_ids, "srtio3"));
  // A material the vocabulary does not know still gets its systematic name.
  Result<Formula> mote2 = ParseFormula("MoTe2");
  ASSERT_TRUE(mote2.ok());
  EXPECT_TRUE(mote2->concept_ids.empty());
  EXPECT_TRUE(Contains(mote2->material_names, "molybdenum ditelluride"));
}

TEST(ParseFormulaTest, CaseDecides) {
  Result<Formula> cobalt = ParseFormula("Co");
  ASSERT_TRUE(cobalt.ok());
  EXPECT_EQ(cobalt->element_symbols, Symbols({"Co"}));
  Result<Formula> monoxide = ParseFormula("CO");
  ASSERT_TRUE(monoxide.ok());
  EXPECT_EQ(monoxide->element_symbols, Symbols({"C", "O"}));
  EXPECT_FALSE(ParseFormula("PBSE").ok());
}

TEST(ParseFormulaTest, ChargesAndIons) {
  Result<Formula> ferric = ParseFormula("Fe\xC2\xB3\xE2\x81\xBA");  // Fe³⁺
  ASSERT_TRUE(ferric.ok()) << ferric.status().message();
  EXPECT_EQ(ferric->element_symbols, Symbols({"Fe"}));
  Result<Formula> sulfate = ParseFormula("SO4^2-");
  ASSERT_TRUE(sulfate.ok());
  EXPECT_EQ(sulfate->canonical, "SO4^2-");
  EXPECT_TRUE(Contains(sulfate->material_names, "sulfate"));
}

TEST(ParseFormulaTest, RejectsNonFormulasWithPosition) {
  for (std::string_view bad : {"", "Xx", "Pb((", "CO2)", "Fe01", "Fe0", "lead", "Pb Se", "Q2",
                               "/PbSe", "PbSe//ZnS", "\xff\xfe"}) {
    SCOPED_TRACE(std::string(bad));
    Result<Formula> formula = ParseFormula(bad);
    ASSERT_FALSE(formula.ok());
    EXPECT_EQ(formula.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(formula.status().message().find("formula"), std::string::npos);
  }
  Result<Formula> leading_zero = ParseFormula("Fe01");
  EXPECT_NE(leading_zero.status().message().find("byte 2"), std::string::npos)
      << leading_zero.status().message();
}

// ------------------------------------------------------------------------------------
// Prose.

TEST(FindChemistryProseTest, FormulaGivesElementsAndMaterial) {
  const std::string text = "We imaged PbSe nanocrystals.";
  std::vector<ChemistryMention> mentions = FindChemistry(text, TextStyle::kProse);
  ASSERT_EQ(mentions.size(), 1u);
  const ChemistryMention& m = mentions[0];
  EXPECT_EQ(m.surface, "PbSe");
  EXPECT_EQ(m.offset, text.find("PbSe"));
  EXPECT_EQ(m.formula, "PbSe");
  EXPECT_EQ(m.element_symbols, Symbols({"Pb", "Se"}));
  EXPECT_EQ(m.element_names, Symbols({"lead", "selenium"}));
  EXPECT_TRUE(Contains(m.material_names, "lead selenide"));
  EXPECT_TRUE(Contains(m.concept_ids, "pbse"));
  EXPECT_GT(m.confidence, 0.9);
  EXPECT_FALSE(m.reason.empty());
}

TEST(FindChemistryProseTest, StoAbbreviationIsStrontiumTitanate) {
  std::vector<ChemistryMention> mentions =
      FindChemistry("Films were grown on STO (001) substrates.", TextStyle::kProse);
  ASSERT_EQ(mentions.size(), 1u);
  EXPECT_EQ(mentions[0].surface, "STO");
  EXPECT_EQ(mentions[0].formula, "SrTiO3");
  EXPECT_EQ(mentions[0].element_symbols, Symbols({"Sr", "Ti", "O"}));
  EXPECT_TRUE(Contains(mentions[0].material_names, "strontium titanate"));
  // Lowercase "sto" in a sentence is not the abbreviation.
  EXPECT_TRUE(FindChemistry("sto", TextStyle::kProse).empty());
}

TEST(FindChemistryProseTest, OrdinaryWordsAreNotElements) {
  for (std::string_view sentence : {
           "In this work we study the growth.",
           "As shown in Fig. 2, the contrast changes.",
           "Be careful with the holder.",
           "No signal was detected.",
           "No nanoparticles were observed.",
           "I think the drift is small.",
           "He said the beam was stable.",
           "At 300 K the film relaxes.",
           "The as-grown film; As-grown samples; In-situ heating; In-plane strain.",
           "Co-workers of Li et al. and He, Lu and Ge agree.",
           "Measured at 200 kV, 5 V, 2 C, 10 Pa and 300 K.",
           "The S/N ratio and the I/O rate; the SN number; the US and UK teams say OK.",
           "NaN values, a GeV beam, HeLa cells, ICs and PCs, the W3C and FY2023.",
           "Samples S1, C2 and B4 were cut; see O2 and Figure S3.",
           "This will lead to better results; the gold standard; a silver lining.",
           "In 3d printing, the parts are stacked.",
           // Acronyms met in a corpus of computing abstracts (Inspec).
           "The SNR of CNC machines, B2C commerce and a CPXe unit.",
           "Mercury Interactive moved to Silicon Valley.",
       }) {
    EXPECT_TRUE(FindChemistry(sentence, TextStyle::kProse).empty())
        << sentence << " -> " << Surfaces(sentence, TextStyle::kProse).front();
  }
}

TEST(FindChemistryProseTest, LoneSymbolsWithChemicalContext) {
  EXPECT_EQ(ElementsIn("The In-doped ZnO film.", TextStyle::kProse),
            (std::set<std::string_view>{"In", "Zn", "O"}));
  EXPECT_EQ(ElementsIn("Au nanoparticles on a Si substrate.", TextStyle::kProse),
            (std::set<std::string_view>{"Au", "Si"}));
  EXPECT_EQ(ElementsIn("Pt and Pd were alloyed.", TextStyle::kProse),
            (std::set<std::string_view>{"Pt", "Pd"}));
  EXPECT_EQ(ElementsIn("Mixed Au, Ag, and Cu.", TextStyle::kProse),
            (std::set<std::string_view>{"Au", "Ag", "Cu"}));
  EXPECT_EQ(ElementsIn("In and Ga were co-evaporated.", TextStyle::kProse),
            (std::set<std::string_view>{"In", "Ga"}));
  EXPECT_EQ(ElementsIn("Fe3+ ions and the O 1s peak.", TextStyle::kProse),
            (std::set<std::string_view>{"Fe", "O"}));
  EXPECT_EQ(ElementsIn("The Ti L2,3 edge and the O K edge.", TextStyle::kProse),
            (std::set<std::string_view>{"Ti", "O"}));
  EXPECT_EQ(ElementsIn("57Fe Mossbauer and 13C NMR.", TextStyle::kProse),
            (std::set<std::string_view>{"Fe", "C"}));
  EXPECT_EQ(ElementsIn("Fe(III) centres.", TextStyle::kProse), (std::set<std::string_view>{"Fe"}));
  EXPECT_EQ(ElementsIn("5 wt% Pt on the support.", TextStyle::kProse),
            (std::set<std::string_view>{"Pt"}));
  EXPECT_EQ(ElementsIn("The In 3d5/2 peak.", TextStyle::kProse),
            (std::set<std::string_view>{"In"}));
  // Case decides: "Sn" with context is tin, "SN" never.
  EXPECT_EQ(Surfaces("The Sn content rose while the SN count fell.", TextStyle::kProse),
            std::vector<std::string>{"Sn"});
  // A lone symbol without context is not enough in a sentence.
  EXPECT_TRUE(FindChemistry("The Si was etched.", TextStyle::kProse).empty());
}

TEST(FindChemistryProseTest, CompositesAndHeterostructures) {
  std::vector<ChemistryMention> mentions =
      FindChemistry("CdSe/ZnS core-shell dots and a Pt/C catalyst.", TextStyle::kProse);
  ASSERT_EQ(mentions.size(), 2u);
  EXPECT_EQ(mentions[0].formula, "CdSe/ZnS");
  EXPECT_EQ(mentions[0].element_symbols, Symbols({"Cd", "Se", "Zn", "S"}));
  EXPECT_TRUE(Contains(mentions[0].material_names, "zinc sulfide"));
  EXPECT_EQ(mentions[1].formula, "Pt/C");
  EXPECT_EQ(mentions[1].element_symbols, Symbols({"Pt", "C"}));

  EXPECT_EQ(Surfaces("A LAO-STO heterostructure.", TextStyle::kProse),
            (std::vector<std::string>{"LAO", "STO"}));
  EXPECT_EQ(ElementsIn("A LAO-STO heterostructure.", TextStyle::kProse),
            (std::set<std::string_view>{"La", "Al", "O", "Sr", "Ti"}));
  EXPECT_EQ(ElementsIn("Fe3O4@SiO2 particles", TextStyle::kProse),
            (std::set<std::string_view>{"Fe", "O", "Si"}));
}

TEST(FindChemistryProseTest, NamesOfCompoundsAndElements) {
  std::vector<ChemistryMention> mentions = FindChemistry(
      "Layers of tungsten diselenide on lead selenide, with gold and aluminum contacts.",
      TextStyle::kProse);
  ASSERT_EQ(mentions.size(), 4u);
  EXPECT_EQ(mentions[0].surface, "tungsten diselenide");
  EXPECT_EQ(mentions[0].formula, "WSe2");
  EXPECT_EQ(mentions[0].element_symbols, Symbols({"W", "Se"}));
  EXPECT_EQ(mentions[1].surface, "lead selenide");
  EXPECT_EQ(mentions[1].formula, "PbSe");
  EXPECT_TRUE(Contains(mentions[1].concept_ids, "pbse"));
  EXPECT_EQ(mentions[2].element_symbols, Symbols({"Au"}));
  EXPECT_EQ(mentions[3].element_symbols, Symbols({"Al"}));
  EXPECT_EQ(mentions[3].element_names, Symbols({"aluminium"}));

  EXPECT_EQ(ElementsIn("lanthanum strontium manganite", TextStyle::kProse),
            (std::set<std::string_view>{"La", "Sr", "Mn", "O"}));
  EXPECT_EQ(ElementsIn("lead atoms", TextStyle::kProse), (std::set<std::string_view>{"Pb"}));
}

TEST(FindChemistryProseTest, MaterialsScienceNotations) {
  EXPECT_EQ(ElementsIn("La0.7Sr0.3MnO3 films", TextStyle::kProse),
            (std::set<std::string_view>{"La", "Sr", "Mn", "O"}));
  EXPECT_EQ(ElementsIn("La1-xSrxMnO3 (x = 0.3)", TextStyle::kProse),
            (std::set<std::string_view>{"La", "Sr", "Mn", "O"}));
  EXPECT_EQ(ElementsIn("CsPbBr3 nanocubes", TextStyle::kProse),
            (std::set<std::string_view>{"Cs", "Pb", "Br"}));
  EXPECT_EQ(ElementsIn("Pt3Ni octahedra", TextStyle::kProse),
            (std::set<std::string_view>{"Pt", "Ni"}));
  EXPECT_EQ(ElementsIn("MoS2 flakes and (NH4)2SO4 salt", TextStyle::kProse),
            (std::set<std::string_view>{"Mo", "S", "N", "H", "O"}));
  EXPECT_EQ(ElementsIn("CO2 and H2O vapour", TextStyle::kProse),
            (std::set<std::string_view>{"C", "O", "H"}));
  // Zeolite Y exchanged with sodium: sodium, not yttrium.
  std::vector<ChemistryMention> zeolite = FindChemistry("NaY zeolite", TextStyle::kProse);
  ASSERT_EQ(zeolite.size(), 1u);
  EXPECT_EQ(zeolite[0].element_symbols, Symbols({"Na"}));
  EXPECT_TRUE(Contains(zeolite[0].material_names, "zeolite Y"));
}

// ------------------------------------------------------------------------------------
// File and folder names.

TEST(FindChemistryNameTest, AllCapsAndLowercaseFolders) {
  std::vector<ChemistryMention> wse2 = FindChemistry("WSE2 ML MONOLAYER", TextStyle::kName);
  ASSERT_EQ(wse2.size(), 1u);
  EXPECT_EQ(wse2[0].formula, "WSe2");
  EXPECT_EQ(wse2[0].element_names, Symbols({"tungsten", "selenium"}));
  EXPECT_TRUE(Contains(wse2[0].material_names, "tungsten diselenide"));

  for (std::string_view name : {"PBSE", "pbse nc", "PbSe_ligands"}) {
    std::vector<ChemistryMention> mentions = FindChemistry(name, TextStyle::kName);
    ASSERT_EQ(mentions.size(), 1u) << name;
    EXPECT_EQ(mentions[0].formula, "PbSe") << name;
    EXPECT_TRUE(Contains(mentions[0].material_names, "lead selenide")) << name;
  }
  EXPECT_EQ(ElementsIn("STO_LAO_interface", TextStyle::kName),
            (std::set<std::string_view>{"Sr", "Ti", "O", "La", "Al"}));
  EXPECT_EQ(ElementsIn("sto-001", TextStyle::kName), (std::set<std::string_view>{"Sr", "Ti", "O"}));
  EXPECT_EQ(ElementsIn("CSPBBR3_cubes", TextStyle::kName),
            (std::set<std::string_view>{"Cs", "Pb", "Br"}));
  EXPECT_EQ(ElementsIn("la0.7sr0.3mno3_film", TextStyle::kName),
            (std::set<std::string_view>{"La", "Sr", "Mn", "O"}));
}

TEST(FindChemistryNameTest, ShorthandForParticlesAndWires) {
  EXPECT_EQ(ElementsIn("Au NP", TextStyle::kName), (std::set<std::string_view>{"Au"}));
  EXPECT_EQ(ElementsIn("AuNP_15nm", TextStyle::kName), (std::set<std::string_view>{"Au"}));
  EXPECT_EQ(ElementsIn("AU_NPS", TextStyle::kName), (std::set<std::string_view>{"Au"}));
  EXPECT_EQ(ElementsIn("CuNWs", TextStyle::kName), (std::set<std::string_view>{"Cu"}));
  EXPECT_EQ(ElementsIn("PtNi oct", TextStyle::kName), (std::set<std::string_view>{"Pt", "Ni"}));
  EXPECT_EQ(ElementsIn("Fe3O4_NPs", TextStyle::kName), (std::set<std::string_view>{"Fe", "O"}));
  EXPECT_EQ(ElementsIn("gold_grid", TextStyle::kName), (std::set<std::string_view>{"Au"}));
  EXPECT_EQ(ElementsIn("CdS_QDs", TextStyle::kName), (std::set<std::string_view>{"Cd", "S"}));
}

TEST(FindChemistryNameTest, MicroscopyAbbreviationsAreNotChemistry) {
  for (std::string_view name : {"HAADF_SI_map",
                                "EDS STEM CCD SEM",
                                "BF DF ML NP NW",
                                "SN_0042",
                                "SI",
                                "K2_movie",
                                "SE2_detector",
                                "bin2",
                                "site2",
                                "tip1",
                                "res2",
                                "S1",
                                "C2",
                                "B4",
                                "16.20.55 Scanning "
                                "Acquire_0026_1.ser",
                                "TEAM_I",
                                "Li/2019",
                                "In_situ",
                                "No_beam",
                                "He_sample",
                                "At_300K",
                                "2011/20111013",
                                "CO2",
                                "GAN_training",
                                "CDS",
                                "pbs_buffer"}) {
    EXPECT_TRUE(FindChemistry(name, TextStyle::kName).empty())
        << name << " -> " << Surfaces(name, TextStyle::kName).front();
  }
}

TEST(FindChemistryNameTest, SiliconAndTinOnlyInMixedCaseOrWithContext) {
  EXPECT_EQ(ElementsIn("Si_wafer", TextStyle::kName), (std::set<std::string_view>{"Si"}));
  EXPECT_EQ(ElementsIn("Sn", TextStyle::kName), (std::set<std::string_view>{"Sn"}));
  EXPECT_TRUE(ElementsIn("SN", TextStyle::kName).empty());
  EXPECT_TRUE(ElementsIn("SI_01", TextStyle::kName).empty());
}

TEST(FindChemistryNameTest, RealisticPath) {
  const std::string path =
      "TEAM_I/Ercius/2011/20111013 - PbSe with ligands/16.20.55 Scanning Acquire_0026_1.ser";
  std::vector<ChemistryMention> mentions = FindChemistry(path, TextStyle::kName);
  ASSERT_EQ(mentions.size(), 1u);
  EXPECT_EQ(mentions[0].surface, "PbSe");
  EXPECT_EQ(mentions[0].offset, path.find("PbSe"));
}

// ------------------------------------------------------------------------------------
// Hostile input.

void ExpectWellFormed(std::string_view text, const std::vector<ChemistryMention>& mentions) {
  size_t previous_end = 0;
  for (const ChemistryMention& m : mentions) {
    ASSERT_LE(m.offset + m.surface.size(), text.size());
    EXPECT_EQ(text.substr(m.offset, m.surface.size()), m.surface);
    EXPECT_GE(m.offset, previous_end);  // sorted, not overlapping
    previous_end = m.offset + m.surface.size();
    EXPECT_GT(m.confidence, 0.0);
    EXPECT_LE(m.confidence, 1.0);
    EXPECT_FALSE(m.reason.empty());
    EXPECT_FALSE(m.element_symbols.empty());
    EXPECT_EQ(m.element_symbols.size(), m.element_names.size());
    for (std::string_view symbol : m.element_symbols) {
      EXPECT_NE(ElementBySymbol(symbol), nullptr) << symbol;
    }
  }
}

TEST(FindChemistryRobustnessTest, InvalidUtf8) {
  const std::string text = "\xff\xfePbSe \xc3( \xe2\x82 Au nanoparticles \xf0\x9f\x98";
  for (TextStyle style : {TextStyle::kProse, TextStyle::kName}) {
    std::vector<ChemistryMention> mentions = FindChemistry(text, style);
    ExpectWellFormed(text, mentions);
    ASSERT_FALSE(mentions.empty());
    EXPECT_EQ(mentions[0].surface, "PbSe");
    EXPECT_EQ(mentions[0].offset, 2u);
  }
  // A formula glued to letters of another script is no formula.
  EXPECT_TRUE(FindChemistry("Se\xc3\xb1or", TextStyle::kProse).empty());
}

TEST(FindChemistryRobustnessTest, LongRandomTextDoesNotCrash) {
  std::mt19937 random(20240517);
  const std::vector<std::string> words = {"PbSe",
                                          "In",
                                          "As",
                                          "the",
                                          "STO",
                                          "(",
                                          ")",
                                          "[",
                                          "]",
                                          "/",
                                          "@",
                                          "-",
                                          "Fe3+",
                                          "2p",
                                          "Au",
                                          "nanoparticles",
                                          "and",
                                          ",",
                                          ".",
                                          "La0.7Sr0.3MnO3",
                                          "\xc2\xb7",
                                          "5H2O",
                                          "((((",
                                          "1-x",
                                          "\xe2\x82\x82",
                                          "\xce\xb4",
                                          "^",
                                          "+",
                                          "lead",
                                          "selenide",
                                          "tungsten",
                                          "WSE2",
                                          "\xff",
                                          "\xe2\x80\x93",
                                          "Co",
                                          "-doped",
                                          "K",
                                          "edge",
                                          "%",
                                          "NaY",
                                          "h-BN",
                                          "0.000001"};
  std::string text;
  for (int i = 0; i < 200000; ++i) {
    const uint32_t pick = random();
    if (pick % 7 == 0) {
      text += static_cast<char>(random() % 256);  // any byte
    } else {
      text += words[pick % words.size()];
    }
    if (pick % 3 != 0) text += ' ';
  }
  for (TextStyle style : {TextStyle::kProse, TextStyle::kName}) {
    std::vector<ChemistryMention> mentions = FindChemistry(text, style);
    ExpectWellFormed(text, mentions);
    EXPECT_FALSE(mentions.empty());
  }
}

TEST(FindChemistryRobustnessTest, EmptyHugeTokensAndDeepBrackets) {
  EXPECT_TRUE(FindChemistry("", TextStyle::kProse).empty());
  EXPECT_TRUE(FindChemistry("", TextStyle::kName).empty());
  const std::string huge(100000, 'A');
  EXPECT_TRUE(FindChemistry(huge, TextStyle::kProse).empty());
  std::string alternating;
  for (int i = 0; i < 30; ++i) alternating += "CoNi";  // one long token, many readings
  ExpectWellFormed(alternating, FindChemistry(alternating, TextStyle::kProse));
  const std::string lower_alternating = "conicoinsbnbscbnoscnbcosn2";
  ExpectWellFormed(lower_alternating, FindChemistry(lower_alternating, TextStyle::kName));
  const std::string brackets = std::string(40, '(') + "Fe" + std::string(40, ')');
  ExpectWellFormed(brackets, FindChemistry(brackets, TextStyle::kProse));
  EXPECT_FALSE(ParseFormula(brackets).ok());
}

}  // namespace
}  // namespace scisearch::nlp
