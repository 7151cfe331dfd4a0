// Chemistry in text: the periodic table, a parser of chemical formulas as materials
// scientists write them (PbSe, La0.7Sr0.3MnO3, (NH4)2SO4, CuSO4·5H2O, CdSe/ZnS, CdSe@ZnS,
// Pt/C, ZnO:Al), names for them (PbSe -> lead selenide, WSe2 -> tungsten diselenide,
// SrTiO3 -> strontium titanate) and a finder of formulas, element symbols, element
// names and material names in prose and in file and folder names.
//
// The finder prefers precision: an English word ("In this work", "As shown", "No
// signal") or a file-name abbreviation ("SI", "BF", "ML", "SN") is never an element.
// Known materials and their abbreviations ("STO") come from the domain vocabulary
// (vocabulary.h, kMaterial concepts); systematic names come from rules here.
//
// Everything here is pure: no I/O, no mutable global state; every function may be
// called from any thread.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace scisearch::nlp {

struct Element {
  int atomic_number;        // 1..118
  std::string_view symbol;  // "Pb"
  std::string_view name;    // English (IUPAC) name, lowercase: "lead", "aluminium", "sulfur"
};

// The 118 elements in order of atomic number (index = atomic_number - 1). Static
// data: valid for the life of the program.
std::span<const Element> PeriodicTable();

// The element whose symbol is exactly `symbol` (case matters: "Co" is cobalt, "CO" is
// nothing), or nullptr. The pointer refers to static data.
const Element* ElementBySymbol(std::string_view symbol);

// The element named `name` in any ASCII case ("Lead", "aluminum", "sulphur",
// "cesium" are accepted), or nullptr. The pointer refers to static data.
const Element* ElementByName(std::string_view name);

// A chemical formula, read by ParseFormula.
struct Formula {
  // The formula written canonically: symbols in their case, counts as written
  // (decimals and variables kept: "La1-xSrxMnO3"), ASCII digits for subscripts,
  // "·" before water of hydration, composite separators kept ("CdSe/ZnS").
  std::string canonical;
  // Distinct element symbols in order of first appearance (static strings).
  std::vector<std::string_view> element_symbols;
  // Names of the material, best first, each once: vocabulary labels of the
  // formula's parts, then names by rule (binary compounds, perovskites, salts,
  // hydrates, compositional names: "caesium lead bromide"). Empty when no rule
  // applies (alloys such as Pt3Ni have no name).
  std::vector<std::string> material_names;
  // Ids of the vocabulary's kMaterial concepts for the formula's parts.
  std::vector<std::string_view> concept_ids;
};

// Reads `text` as a formula; case matters ("CO" is carbon monoxide, "Co" cobalt).
// Accepts element symbols with counts (integers 1-999, decimals, variables x/y/z and
// forms like "1-x" and "3-δ"), groups in () or [] with counts, water of hydration
// after "·", "•" or "*", a trailing charge ("Fe3+", "SO4^2-", "Fe³⁺"), Unicode
// subscript digits, and composites of parts joined by "/", "@", ":" or "-". Returns
// InvalidArgument naming the byte position and the reason when `text` is not a
// formula.
Result<Formula> ParseFormula(std::string_view text);

// How a text is written, which decides what counts as chemistry.
enum class TextStyle {
  // Sentences: case matters; a lone symbol needs chemical context.
  kProse,
  // File and folder names: shorthand, any case, separators "_", "-", ".", space.
  kName,
};

// One piece of chemistry found in a text.
struct ChemistryMention {
  size_t offset = 0;    // byte offset of `surface` in the text searched
  std::string surface;  // the text as written: "PbSe", "STO", "lead selenide", "Au"
  // Canonical formula ("PbSe", "SrTiO3" for "STO", "Au" for "gold"); empty when the
  // text names a compound whose formula is not known ("iron sulfide").
  std::string formula;
  std::vector<std::string_view> element_symbols;  // distinct, static strings
  std::vector<std::string_view> element_names;    // same order as element_symbols
  std::vector<std::string> material_names;        // as Formula::material_names
  std::vector<std::string_view> concept_ids;      // vocabulary kMaterial concepts
  double confidence = 0;                          // in (0, 1]
  std::string reason;  // why it counts: "formula", "symbol with 'nanoparticles'", ...
};

// The chemistry in `text` read in `style`, in order of offset; mentions do not
// overlap. Any bytes are accepted (invalid UTF-8 included) and never cause an
// error: what cannot be read is not chemistry.
std::vector<ChemistryMention> FindChemistry(std::string_view text, TextStyle style);

}  // namespace scisearch::nlp
