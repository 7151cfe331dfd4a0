#include "nlp/chemistry.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "formats/text.h"
#include "nlp/vocabulary.h"

namespace scisearch::nlp {
namespace {

// ---------------------------------------------------------------------------------------
// The periodic table and the properties of elements that naming needs.

constexpr std::array<Element, 118> kElements = {{
    {1, "H", "hydrogen"},       {2, "He", "helium"},
    {3, "Li", "lithium"},       {4, "Be", "beryllium"},
    {5, "B", "boron"},          {6, "C", "carbon"},
    {7, "N", "nitrogen"},       {8, "O", "oxygen"},
    {9, "F", "fluorine"},       {10, "Ne", "neon"},
    {11, "Na", "sodium"},       {12, "Mg", "magnesium"},
    {13, "Al", "aluminium"},    {14, "Si", "silicon"},
    {15, "P", "phosphorus"},    {16, "S", "sulfur"},
    {17, "Cl", "chlorine"},     {18, "Ar", "argon"},
    {19, "K", "potassium"},     {20, "Ca", "calcium"},
    {21, "Sc", "scandium"},     {22, "Ti", "titanium"},
    {23, "V", "vanadium"},      {24, "Cr", "chromium"},
    {25, "Mn", "manganese"},    {26, "Fe", "iron"},
    {27, "Co", "cobalt"},       {28, "Ni", "nickel"},
    {29, "Cu", "copper"},       {30, "Zn", "zinc"},
    {31, "Ga", "gallium"},      {32, "Ge", "germanium"},
    {33, "As", "arsenic"},      {34, "Se", "selenium"},
    {35, "Br", "bromine"},      {36, "Kr", "krypton"},
    {37, "Rb", "rubidium"},     {38, "Sr", "strontium"},
    {39, "Y", "yttrium"},       {40, "Zr", "zirconium"},
    {41, "Nb", "niobium"},      {42, "Mo", "molybdenum"},
    {43, "Tc", "technetium"},   {44, "Ru", "ruthenium"},
    {45, "Rh", "rhodium"},      {46, "Pd", "palladium"},
    {47, "Ag", "silver"},       {48, "Cd", "cadmium"},
    {49, "In", "indium"},       {50, "Sn", "tin"},
    {51, "Sb", "antimony"},     {52, "Te", "tellurium"},
    {53, "I", "iodine"},        {54, "Xe", "xenon"},
    {55, "Cs", "caesium"},      {56, "Ba", "barium"},
    {57, "La", "lanthanum"},    {58, "Ce", "cerium"},
    {59, "Pr", "praseodymium"}, {60, "Nd", "neodymium"},
    {61, "Pm", "promethium"},   {62, "Sm", "samarium"},
    {63, "Eu", "europium"},     {64, "Gd", "gadolinium"},
    {65, "Tb", "terbium"},      {66, "Dy", "dysprosium"},
    {67, "Ho", "holmium"},      {68, "Er", "erbium"},
    {69, "Tm", "thulium"},      {70, "Yb", "ytterbium"},
    {71, "Lu", "lutetium"},     {72, "Hf", "hafnium"},
    {73, "Ta", "tantalum"},     {74, "W", "tungsten"},
    {75, "Re", "rhenium"},      {76, "Os", "osmium"},
    {77, "Ir", "iridium"},      {78, "Pt", "platinum"},
    {79, "Au", "gold"},         {80, "Hg", "mercury"},
    {81, "Tl", "thallium"},     {82, "Pb", "lead"},
    {83, "Bi", "bismuth"},      {84, "Po", "polonium"},
    {85, "At", "astatine"},     {86, "Rn", "radon"},
    {87, "Fr", "francium"},     {88, "Ra", "radium"},
    {89, "Ac", "actinium"},     {90, "Th", "thorium"},
    {91, "Pa", "protactinium"}, {92, "U", "uranium"},
    {93, "Np", "neptunium"},    {94, "Pu", "plutonium"},
    {95, "Am", "americium"},    {96, "Cm", "curium"},
    {97, "Bk", "berkelium"},    {98, "Cf", "californium"},
    {99, "Es", "einsteinium"},  {100, "Fm", "fermium"},
    {101, "Md", "mendelevium"}, {102, "No", "nobelium"},
    {103, "Lr", "lawrencium"},  {104, "Rf", "rutherfordium"},
    {105, "Db", "dubnium"},     {106, "Sg", "seaborgium"},
    {107, "Bh", "bohrium"},     {108, "Hs", "hassium"},
    {109, "Mt", "meitnerium"},  {110, "Ds", "darmstadtium"},
    {111, "Rg", "roentgenium"}, {112, "Cn", "copernicium"},
    {113, "Nh", "nihonium"},    {114, "Fl", "flerovium"},
    {115, "Mc", "moscovium"},   {116, "Lv", "livermorium"},
    {117, "Ts", "tennessine"},  {118, "Og", "oganesson"},
}};

const Element& ElementAt(int z) { return kElements[static_cast<size_t>(z - 1)]; }

bool IsUpper(char c) { return c >= 'A' && c <= 'Z'; }
bool IsLower(char c) { return c >= 'a' && c <= 'z'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsLetter(char c) { return IsUpper(c) || IsLower(c); }

// One ASCII lowercasing for the project (formats/text.h).
std::string Lower(std::string_view text) { return formats::AsciiLower(text); }

// Symbol -> atomic number, exact case and lowercased (for names written in one case).
struct SymbolIndex {
  std::unordered_map<std::string_view, int> exact;
  std::unordered_map<std::string, int> lower;
  std::unordered_map<std::string, int> by_name;
};

const SymbolIndex& Symbols() {
  static const SymbolIndex index = [] {
    SymbolIndex built;
    for (const Element& e : kElements) {
      built.exact.emplace(e.symbol, e.atomic_number);
      built.lower.emplace(Lower(e.symbol), e.atomic_number);
      built.by_name.emplace(std::string(e.name), e.atomic_number);
    }
    built.by_name.emplace("aluminum", 13);
    built.by_name.emplace("sulphur", 16);
    built.by_name.emplace("cesium", 55);
    return built;
  }();
  return index;
}

// The group (1-18) of an element; lanthanoids and actinoids count as group 3.
int GroupOf(int z) {
  if (z == 1) return 1;
  if (z == 2) return 18;
  auto in_short_period = [](int offset) { return offset <= 2 ? offset : offset + 10; };
  if (z <= 10) return in_short_period(z - 2);
  if (z <= 18) return in_short_period(z - 10);
  if (z <= 36) return z - 18;
  if (z <= 54) return z - 36;
  int offset = z <= 86 ? z - 54 : z - 86;
  if (offset <= 2) return offset;
  if (offset <= 17) return 3;
  return offset - 14;
}

bool IsNonmetal(int z) {
  switch (z) {
    case 1:
    case 2:
    case 6:
    case 7:
    case 8:
    case 9:
    case 10:
    case 15:
    case 16:
    case 17:
    case 18:
    case 34:
    case 35:
    case 36:
    case 53:
    case 54:
    case 86:
    case 118:
      return true;
    default:
      return false;
  }
}

bool IsMetalloid(int z) {
  return z == 5 || z == 14 || z == 32 || z == 33 || z == 51 || z == 52 || z == 85;
}

bool IsMetal(int z) { return !IsNonmetal(z) && !IsMetalloid(z); }

bool IsTransitionMetal(int z) {
  const int group = GroupOf(z);
  return group >= 3 && group <= 12 && z != 1;
}

// Radioactive elements that no sample in an ordinary facility contains, and whose
// symbols collide with words ("PoC", "Pa", "At"); found in text only with digits.
bool IsRareInSamples(int z) {
  return z == 43 || z == 61 || (z >= 84 && z <= 89) || z == 91 || z == 93 || z == 94 || z >= 95;
}

// Position in the IUPAC element sequence (Nomenclature of Inorganic Chemistry 2005,
// Table VI), from the most electronegative end: groups 17, 16, then H, then 15 down to
// 1, then 18; top to bottom within a group. In a binary name the element that comes
// earlier is the anion ("-ide").
int SequenceRank(int z) {
  static constexpr int kGroupOrder[] = {17, 16, 0, 15, 14, 13, 12, 11, 10, 9,
                                        8,  7,  6, 5,  4,  3,  2,  1,  18};
  const int group = z == 1 ? 0 : GroupOf(z);
  for (int i = 0; i < static_cast<int>(std::size(kGroupOrder)); ++i) {
    if (kGroupOrder[i] == group) return i * 1000 + z;
  }
  return 100000 + z;
}

// Elements whose single oxidation state makes Greek prefixes redundant in ionic names
// (CaF2 is "calcium fluoride").
bool HasFixedValence(int z) {
  const int group = GroupOf(z);
  return (group <= 2 && z != 1) || z == 21 || z == 39 || z == 57 || z == 13 || z == 31 || z == 49 ||
         z == 30 || z == 48 || z == 47;
}

struct AnionRoot {
  int z;
  std::string_view root;  // + "ide"
  // Borides, silicides, germanides and antimonides are named only with a metal
  // ("SiGe" is an alloy, not "silicon germanide").
  bool needs_metal_partner;
};

constexpr AnionRoot kAnionRoots[] = {
    {1, "hydr", false},   {5, "bor", true},     {6, "carb", false},    {7, "nitr", false},
    {8, "ox", false},     {9, "fluor", false},  {14, "silic", true},   {15, "phosph", false},
    {16, "sulf", false},  {17, "chlor", false}, {32, "german", true},  {33, "arsen", false},
    {34, "selen", false}, {35, "brom", false},  {51, "antimon", true}, {52, "tellur", false},
    {53, "iod", false},
};

const AnionRoot* AnionRootOf(int z) {
  for (const AnionRoot& root : kAnionRoots) {
    if (root.z == z) return &root;
  }
  return nullptr;
}

// B-site cations of ABO3 perovskites and the conventional name of the oxide anion.
struct PerovskiteRoot {
  int z;
  std::string_view name;
};

constexpr PerovskiteRoot kPerovskiteRoots[] = {
    {22, "titanate"},  {40, "zirconate"}, {72, "hafnate"},   {50, "stannate"},  {13, "aluminate"},
    {31, "gallate"},   {21, "scandate"},  {41, "niobate"},   {73, "tantalate"}, {23, "vanadate"},
    {44, "ruthenate"}, {77, "iridate"},   {28, "nickelate"}, {25, "manganite"}, {26, "ferrite"},
    {27, "cobaltite"}, {24, "chromite"},  {42, "molybdate"}, {82, "plumbate"},  {83, "bismuthate"},
    {58, "cerate"},    {45, "rhodate"},
};

const PerovskiteRoot* PerovskiteRootOf(int z) {
  for (const PerovskiteRoot& root : kPerovskiteRoots) {
    if (root.z == z) return &root;
  }
  return nullptr;
}

bool IsPerovskiteASite(int z) {
  const int group = GroupOf(z);
  return (group <= 2 && z != 1) || (z >= 57 && z <= 71) || z == 39 || z == 83 || z == 82;
}

struct PolyatomicIon {
  std::string_view formula;  // canonical, without charge
  std::string_view name;
  std::string_view acid;  // the name when the only cation is hydrogen; "" if none
  bool cation;
};

constexpr PolyatomicIon kPolyatomicIons[] = {
    {"NH4", "ammonium", "", true},
    {"OH", "hydroxide", "", false},
    {"CN", "cyanide", "hydrogen cyanide", false},
    {"NO3", "nitrate", "nitric acid", false},
    {"NO2", "nitrite", "nitrous acid", false},
    {"SO4", "sulfate", "sulfuric acid", false},
    {"SO3", "sulfite", "sulfurous acid", false},
    {"CO3", "carbonate", "carbonic acid", false},
    {"PO4", "phosphate", "phosphoric acid", false},
    {"ClO4", "perchlorate", "perchloric acid", false},
    {"MnO4", "permanganate", "", false},
    {"CrO4", "chromate", "", false},
    {"Cr2O7", "dichromate", "", false},
    {"WO4", "tungstate", "", false},
    {"MoO4", "molybdate", "", false},
    {"SiO4", "silicate", "", false},
    {"C2O4", "oxalate", "oxalic acid", false},
    {"BF4", "tetrafluoroborate", "", false},
    {"PF6", "hexafluorophosphate", "", false},
};

const PolyatomicIon* PolyatomicIonOf(std::string_view formula) {
  for (const PolyatomicIon& ion : kPolyatomicIons) {
    if (ion.formula == formula) return &ion;
  }
  return nullptr;
}

// Molecules whose systematic names nobody uses.
struct TrivialName {
  std::string_view formula;
  std::string_view name;
};

constexpr TrivialName kTrivialNames[] = {
    {"H2O", "water"},
    {"NH3", "ammonia"},
    {"CH4", "methane"},
    {"N2H4", "hydrazine"},
    {"H2O2", "hydrogen peroxide"},
};

constexpr std::string_view kGreekPrefixes[] = {"",     "mono",  "di",   "tri",  "tetra", "penta",
                                               "hexa", "hepta", "octa", "nona", "deca"};

// ---------------------------------------------------------------------------------------
// Formulas: the parsed form, the parser, and canonical writing.

struct Term {
  int z = 0;                // element; 0 for a bracketed group
  std::vector<Term> group;  // the members of a group
  char open = 0;            // '(' or '[' for a group
  std::string count;        // as written; "" for one
};

struct Adduct {
  std::string multiplier;  // "5" in "·5H2O"; "" for one
  std::vector<Term> terms;
};

// One formula unit: "CdSe" of "CdSe/ZnS".
struct Part {
  std::vector<Term> terms;
  std::vector<Adduct> adducts;
  std::string charge;  // "3+", "2-", "+"; "" for none
};

struct ParsedFormula {
  std::vector<Part> parts;
  std::string separators;  // separators[i] joins parts[i] and parts[i + 1]
};

void AppendTerms(const std::vector<Term>& terms, std::string& out) {
  for (const Term& term : terms) {
    if (term.z != 0) {
      out += ElementAt(term.z).symbol;
    } else {
      out += term.open;
      AppendTerms(term.group, out);
      out += term.open == '(' ? ')' : ']';
    }
    // The parser reads "δ" as 'd'; it is written back as "δ" ("SrTiO3-δ").
    if (!term.count.empty() && term.count.back() == 'd') {
      out += term.count.substr(0, term.count.size() - 1);
      out += "\xCE\xB4";
    } else {
      out += term.count;
    }
  }
}

std::string TermsCanonical(const std::vector<Term>& terms) {
  std::string out;
  AppendTerms(terms, out);
  return out;
}

std::string PartCanonical(const Part& part, bool with_charge) {
  std::string out = TermsCanonical(part.terms);
  for (const Adduct& adduct : part.adducts) {
    out += "\xC2\xB7";  // U+00B7 middle dot
    out += adduct.multiplier;
    AppendTerms(adduct.terms, out);
  }
  if (with_charge && !part.charge.empty()) {
    // "SO4^2-": a caret keeps the charge's digit apart from the last count.
    if (IsDigit(part.charge[0])) out += '^';
    out += part.charge;
  }
  return out;
}

std::string FormulaCanonical(const ParsedFormula& formula) {
  std::string out;
  for (size_t i = 0; i < formula.parts.size(); ++i) {
    if (i > 0) out += formula.separators[i - 1];
    out += PartCanonical(formula.parts[i], true);
  }
  return out;
}

void CollectElements(const std::vector<Term>& terms, std::vector<int>& out) {
  for (const Term& term : terms) {
    if (term.z != 0) {
      if (std::find(out.begin(), out.end(), term.z) == out.end()) out.push_back(term.z);
    } else {
      CollectElements(term.group, out);
    }
  }
}

std::vector<int> PartElements(const Part& part) {
  std::vector<int> out;
  CollectElements(part.terms, out);
  for (const Adduct& adduct : part.adducts) CollectElements(adduct.terms, out);
  return out;
}

bool HasGroup(const Part& part) {
  return std::any_of(part.terms.begin(), part.terms.end(), [](const Term& t) { return t.z == 0; });
}

// The value of a count when it is a plain number ("" is 1); nullopt for variables.
std::optional<double> CountValue(const std::string& count) {
  if (count.empty()) return 1.0;
  double value = 0;
  double scale = 0;
  for (char c : count) {
    if (c == '.') {
      if (scale != 0) return std::nullopt;
      scale = 1;
    } else if (IsDigit(c)) {
      if (scale == 0) {
        value = value * 10 + (c - '0');
      } else {
        scale /= 10;
        value += (c - '0') * scale;
      }
    } else {
      return std::nullopt;
    }
  }
  return value;
}

std::optional<int> IntegerCount(const std::string& count) {
  if (count.find('.') != std::string::npos) return std::nullopt;
  std::optional<double> value = CountValue(count);
  if (!value) return std::nullopt;
  return static_cast<int>(*value);
}

bool IsVariable(char c) { return c == 'x' || c == 'y' || c == 'z'; }

// Reads the count after a symbol or group at `pos`: a number ("3", "0.7"), a variable
// ("x"), or either followed by "+/-" and a variable ("1-x", "3-d" for 3-δ). Returns the
// position after it, or nullopt when a count is written wrongly ("01", "0", "1000").
std::optional<size_t> ReadCount(std::string_view s, size_t pos, bool allow_variables,
                                std::string* count) {
  count->clear();
  size_t p = pos;
  while (p < s.size() && IsDigit(s[p])) ++p;
  const size_t int_end = p;
  if (p > pos && p + 1 < s.size() && s[p] == '.' && IsDigit(s[p + 1])) {
    ++p;
    while (p < s.size() && IsDigit(s[p])) ++p;
  }
  if (p > pos) {
    const std::string_view number = s.substr(pos, p - pos);
    if (int_end - pos > 1 && s[pos] == '0') return std::nullopt;  // "01": a sequence number
    const double value = *CountValue(std::string(number));
    if (value <= 0 || value >= 1000) return std::nullopt;
    if (allow_variables && p + 1 < s.size() && (s[p] == '-' || s[p] == '+')) {
      size_t q = p + 1;
      while (q < s.size() && IsDigit(s[q])) ++q;
      if (q < s.size() && (IsVariable(s[q]) || s[q] == 'd') &&
          (q + 1 == s.size() || !IsLower(s[q + 1]))) {
        p = q + 1;
      }
    }
  } else if (allow_variables && p < s.size() && IsVariable(s[p]) &&
             (p + 1 == s.size() || !IsLower(s[p + 1]))) {
    ++p;
    while (p < s.size() && IsDigit(s[p])) ++p;
  }
  *count = std::string(s.substr(pos, p - pos));
  return p;
}

// Reads one formula unit. In exact case a symbol is an upper-case letter and an optional
// lower-case one ("Co" is cobalt, "CO" carbon and oxygen), so there is at most one
// reading; in any case ("pbse", "WSE2") every reading is produced.
class PartReader {
 public:
  PartReader(std::string_view s, bool any_case, size_t limit)
      : s_(s), any_case_(any_case), limit_(limit) {}

  // Every complete reading of the whole string, at most `limit`.
  std::vector<Part> ReadAll() {
    std::vector<Part> out;
    std::vector<Term> terms;
    Sequence(0, 0, terms, [&](std::vector<Term>& read, size_t pos) {
      Part part;
      part.terms = read;
      if (Finish(pos, part)) out.push_back(std::move(part));
    });
    return out;
  }

  // How far the furthest reading got: where the text stops being a formula.
  size_t furthest() const { return furthest_; }

 private:
  using Done = std::function<void(std::vector<Term>&, size_t)>;

  void Note(size_t pos) { furthest_ = std::max(furthest_, pos); }

  // The symbols that may start at `pos`: (atomic number, length).
  std::vector<std::pair<int, size_t>> SymbolsAt(size_t pos) const {
    std::vector<std::pair<int, size_t>> found;
    const SymbolIndex& symbols = Symbols();
    if (pos >= s_.size() || !IsLetter(s_[pos])) return found;
    if (any_case_) {
      if (pos + 1 < s_.size() && IsLetter(s_[pos + 1])) {
        auto it = symbols.lower.find(Lower(s_.substr(pos, 2)));
        if (it != symbols.lower.end()) found.emplace_back(it->second, 2);
      }
      auto it = symbols.lower.find(Lower(s_.substr(pos, 1)));
      if (it != symbols.lower.end()) found.emplace_back(it->second, 1);
      return found;
    }
    if (!IsUpper(s_[pos])) return found;
    if (pos + 1 < s_.size() && IsLower(s_[pos + 1])) {
      auto it = symbols.exact.find(s_.substr(pos, 2));
      if (it != symbols.exact.end()) {
        found.emplace_back(it->second, 2);
        return found;
      }
    }
    auto it = symbols.exact.find(s_.substr(pos, 1));
    if (it != symbols.exact.end()) found.emplace_back(it->second, 1);
    return found;
  }

  bool CanStartTerm(size_t pos) const {
    return pos < s_.size() && (IsLetter(s_[pos]) || s_[pos] == '(' || s_[pos] == '[');
  }

  void Sequence(size_t pos, int depth, std::vector<Term>& terms, const Done& done) {
    if (results_ >= limit_) return;
    Note(pos);
    if (!CanStartTerm(pos)) {
      if (!terms.empty()) done(terms, pos);
      return;
    }
    const char c = s_[pos];
    if (c == '(' || c == '[') {
      if (depth >= 4) return;
      const char close = c == '(' ? ')' : ']';
      std::vector<Term> inner;
      Sequence(pos + 1, depth + 1, inner, [&](std::vector<Term>& group, size_t end) {
        if (end >= s_.size() || s_[end] != close) return;
        Term term;
        term.open = c;
        term.group = group;
        std::optional<size_t> next = ReadCount(s_, end + 1, !any_case_, &term.count);
        if (!next) return;
        terms.push_back(std::move(term));
        Sequence(*next, depth, terms, done);
        terms.pop_back();
      });
      return;
    }
    for (auto [z, length] : SymbolsAt(pos)) {
      Term term;
      term.z = z;
      std::optional<size_t> next = ReadCount(s_, pos + length, !any_case_, &term.count);
      if (!next) {
        Note(pos + length);
        continue;
      }
      terms.push_back(std::move(term));
      Sequence(*next, depth, terms, done);
      terms.pop_back();
    }
  }

  // After the main terms: water of hydration ("*5H2O") and a charge, to the end.
  bool Finish(size_t pos, Part& part) {
    while (pos < s_.size() && s_[pos] == '*') {
      Adduct adduct;
      size_t p = pos + 1;
      while (p < s_.size() && (IsDigit(s_[p]) || s_[p] == '.')) ++p;
      adduct.multiplier = std::string(s_.substr(pos + 1, p - pos - 1));
      PartReader inner(s_.substr(p), any_case_, 1);
      std::vector<Term> terms;
      size_t end = 0;
      bool found = false;
      inner.Sequence(0, 0, terms, [&](std::vector<Term>& read, size_t e) {
        if (!found) {
          adduct.terms = read;
          end = e;
          found = true;
        }
      });
      Note(p + inner.furthest());
      if (!found) return false;
      part.adducts.push_back(std::move(adduct));
      pos = p + end;
    }
    if (pos == s_.size()) {
      ++results_;
      return true;
    }
    size_t p = pos;
    if (s_[p] == '^') ++p;
    const size_t digits = p;
    while (p < s_.size() && IsDigit(s_[p])) ++p;
    if (p - digits > 1) return false;
    if (p + 1 != s_.size() || (s_[p] != '+' && s_[p] != '-')) return false;
    part.charge = std::string(s_.substr(digits, p + 1 - digits));
    ++results_;
    return true;
  }

  std::string_view s_;
  bool any_case_;
  size_t limit_;
  size_t results_ = 0;
  size_t furthest_ = 0;
};

// Splits a formula into parts at "/", "@", ":" and at "-" before a symbol or bracket
// ("LAO-STO", "Pt-Ni"), outside brackets. A "-" inside a count ("1-x") or at the end
// (a charge) does not split.
std::vector<std::pair<std::string_view, char>> SplitComposite(std::string_view s) {
  std::vector<std::pair<std::string_view, char>> parts;
  int depth = 0;
  size_t start = 0;
  char separator = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '(' || c == '[') ++depth;
    if (c == ')' || c == ']') --depth;
    if (depth != 0) continue;
    bool split = c == '/' || c == '@' || c == ':';
    if (c == '-' && i + 1 < s.size() && (IsUpper(s[i + 1]) || s[i + 1] == '(' || s[i + 1] == '['))
      split = true;
    if (!split) continue;
    parts.emplace_back(s.substr(start, i - start), separator);
    separator = c;
    start = i + 1;
  }
  parts.emplace_back(s.substr(start), separator);
  return parts;
}

// ---------------------------------------------------------------------------------------
// Names by rule.

std::string WithPrefix(int count, std::string_view word) {
  if (count < 1 || count >= static_cast<int>(std::size(kGreekPrefixes))) return std::string(word);
  std::string prefix(kGreekPrefixes[count]);
  // "monoxide", "tetroxide", "pentoxide": the prefix's vowel is elided before "oxide".
  if (word.substr(0, 2) == "ox" && (count == 1 || count == 4 || count == 5)) prefix.pop_back();
  return prefix + std::string(word);
}

std::optional<std::string> TrivialNameOf(const Part& part) {
  const std::string canonical = TermsCanonical(part.terms);
  for (const TrivialName& trivial : kTrivialNames) {
    if (trivial.formula == canonical) return std::string(trivial.name);
  }
  return std::nullopt;
}

std::optional<std::string> BinaryName(const Part& part) {
  if (part.terms.size() != 2 || HasGroup(part)) return std::nullopt;
  const Term& cation = part.terms[0];
  const Term& anion = part.terms[1];
  if (cation.z == anion.z) return std::nullopt;
  const AnionRoot* root = AnionRootOf(anion.z);
  if (root == nullptr || SequenceRank(anion.z) >= SequenceRank(cation.z)) return std::nullopt;
  if (root->needs_metal_partner && !IsMetal(cation.z)) return std::nullopt;
  const std::optional<int> cation_count = IntegerCount(cation.count);
  const std::optional<int> anion_count = IntegerCount(anion.count);
  // Molecular compounds of non-metals take prefixes on both sides (dinitrogen
  // pentoxide); salts and solids only on the anion, and only with one cation (MoS2
  // "molybdenum disulfide", but Fe3O4 "iron oxide", CaF2 "calcium fluoride").
  const bool molecular = IsNonmetal(cation.z) && cation.z != 1;
  std::string name(ElementAt(cation.z).name);
  if (molecular && cation_count && *cation_count >= 2) name = WithPrefix(*cation_count, name);
  std::string anion_word = std::string(root->root) + "ide";
  const bool ionic_anion = !root->needs_metal_partner;
  if (anion_count && cation_count && *anion_count >= 2 && (*cation_count == 1 || molecular) &&
      !(HasFixedValence(cation.z) && ionic_anion)) {
    anion_word = WithPrefix(*anion_count, anion_word);
  } else if (anion_count && cation_count && *anion_count == 1 && *cation_count == 1 &&
             anion.z == 8 && (cation.z == 6 || cation.z == 7 || cation.z == 14)) {
    anion_word = WithPrefix(1, anion_word);  // carbon monoxide
  }
  return name + " " + anion_word;
}

bool CountsSumToOne(const std::vector<const Term*>& terms) {
  double sum = 0;
  for (const Term* term : terms) {
    std::optional<double> value = CountValue(term->count);
    if (!value) return true;  // "La1-xSrx": variables balance by construction
    sum += *value;
  }
  return std::fabs(sum - 1.0) < 0.02;
}

std::optional<std::string> PerovskiteName(const Part& part) {
  const std::vector<Term>& terms = part.terms;
  if (terms.size() < 3 || HasGroup(part)) return std::nullopt;
  const Term& oxygen = terms.back();
  if (oxygen.z != 8 || oxygen.count.empty() || oxygen.count[0] != '3') return std::nullopt;
  if (oxygen.count.size() > 1 && oxygen.count[1] != '-' && oxygen.count[1] != '+') {
    return std::nullopt;
  }
  const size_t cations = terms.size() - 1;
  for (size_t split = 1; split < cations; ++split) {
    std::vector<const Term*> a_site;
    std::vector<const Term*> b_site;
    bool fits = true;
    for (size_t i = 0; i < cations && fits; ++i) {
      if (i < split) {
        fits = IsPerovskiteASite(terms[i].z);
        a_site.push_back(&terms[i]);
      } else {
        fits = PerovskiteRootOf(terms[i].z) != nullptr;
        b_site.push_back(&terms[i]);
      }
    }
    if (!fits || !CountsSumToOne(a_site) || !CountsSumToOne(b_site)) continue;
    std::vector<int> seen;
    CollectElements(terms, seen);
    if (seen.size() != terms.size()) return std::nullopt;  // an element written twice
    std::string name;
    for (const Term* a : a_site) name += std::string(ElementAt(a->z).name) + " ";
    for (size_t i = 0; i < b_site.size(); ++i) {
      if (i > 0) name += " ";
      name += PerovskiteRootOf(b_site[i]->z)->name;
    }
    return name;
  }
  return std::nullopt;
}

// "CsPbBr3" -> "caesium lead bromide": metals (and metalloids) in formula order, then
// the one monatomic anion.
std::optional<std::string> CompositionalName(const Part& part) {
  const std::vector<Term>& terms = part.terms;
  if (terms.size() < 3 || HasGroup(part)) return std::nullopt;
  const int anion = terms.back().z;
  const AnionRoot* root = AnionRootOf(anion);
  if (root == nullptr || root->needs_metal_partner) return std::nullopt;
  std::vector<int> seen;
  CollectElements(terms, seen);
  if (seen.size() != terms.size()) return std::nullopt;
  std::string name;
  for (size_t i = 0; i + 1 < terms.size(); ++i) {
    const int z = terms[i].z;
    if (IsNonmetal(z) || z == 5 || SequenceRank(z) <= SequenceRank(anion)) return std::nullopt;
    name += std::string(ElementAt(z).name) + " ";
  }
  return name + std::string(root->root) + "ide";
}

// Salts of polyatomic ions: "(NH4)2SO4" ammonium sulfate, "NaOH" sodium hydroxide,
// "LiFePO4" lithium iron phosphate, "H2SO4" sulfuric acid.
std::optional<std::string> SaltName(const Part& part) {
  const std::vector<Term>& terms = part.terms;
  if (terms.size() < 2) return std::nullopt;
  const PolyatomicIon* anion = nullptr;
  size_t anion_start = terms.size();
  if (terms.back().z == 0) {
    anion = PolyatomicIonOf(TermsCanonical(terms.back().group));
    anion_start = terms.size() - 1;
  }
  for (size_t length = 2; anion == nullptr && length <= 3 && length < terms.size(); ++length) {
    const size_t start = terms.size() - length;
    bool plain = true;
    for (size_t i = start; i < terms.size(); ++i) plain = plain && terms[i].z != 0;
    if (!plain) continue;
    const std::vector<Term> tail(terms.begin() + static_cast<long>(start), terms.end());
    anion = PolyatomicIonOf(TermsCanonical(tail));
    anion_start = start;
  }
  if (anion == nullptr || anion->cation || anion_start == 0) return std::nullopt;
  std::vector<std::string> cations;
  bool only_hydrogen = true;
  for (size_t i = 0; i < anion_start;) {
    const Term& term = terms[i];
    if (term.z == 0 && TermsCanonical(term.group) == "NH4") {
      cations.emplace_back("ammonium");
      only_hydrogen = false;
      ++i;
    } else if (term.z == 7 && term.count.empty() && i + 1 < anion_start && terms[i + 1].z == 1 &&
               terms[i + 1].count == "4") {
      cations.emplace_back("ammonium");
      only_hydrogen = false;
      i += 2;
    } else if (term.z == 1) {
      ++i;
    } else if (term.z != 0 && IsMetal(term.z)) {
      cations.emplace_back(ElementAt(term.z).name);
      only_hydrogen = false;
      ++i;
    } else {
      return std::nullopt;
    }
  }
  if (only_hydrogen) {
    if (anion->acid.empty()) return std::nullopt;
    return std::string(anion->acid);
  }
  std::string name;
  for (const std::string& cation : cations) {
    if (name.find(cation) == std::string::npos) name += cation + " ";
  }
  return name + std::string(anion->name);
}

std::optional<std::string> PartName(const Part& part) {
  if (!part.charge.empty()) {
    if (part.adducts.empty()) {
      const PolyatomicIon* ion = PolyatomicIonOf(TermsCanonical(part.terms));
      if (ion != nullptr) return std::string(ion->name);
    }
    return std::nullopt;
  }
  Part main = part;
  main.adducts.clear();
  std::optional<std::string> name = TrivialNameOf(main);
  if (!name) name = SaltName(main);
  if (!name) name = BinaryName(main);
  if (!name) name = PerovskiteName(main);
  if (!name) name = CompositionalName(main);
  if (!name || part.adducts.empty()) return name;
  // Water of hydration: "CuSO4·5H2O" -> "copper sulfate pentahydrate".
  if (part.adducts.size() != 1 || TermsCanonical(part.adducts[0].terms) != "H2O") {
    return std::nullopt;
  }
  const std::optional<int> waters = IntegerCount(part.adducts[0].multiplier);
  if (!waters || *waters >= static_cast<int>(std::size(kGreekPrefixes))) return std::nullopt;
  return *name + " " + WithPrefix(*waters, "hydrate");
}

// ---------------------------------------------------------------------------------------
// Compound names in words: "lead selenide", "tungsten diselenide", "strontium titanate".

struct AnionWord {
  std::vector<int> elements;  // of the anion ("titanate": Ti, O); empty for "halide"
  int count = 0;              // from a Greek prefix ("diselenide": 2); 0 when none
  int monatomic = 0;          // the anion element of an "-ide" word
};

std::optional<AnionWord> ReadAnionWord(std::string word) {
  if (word.size() > 4 && word.back() == 's') word.pop_back();  // "oxides"
  if (word == "halide") return AnionWord{};
  for (const PolyatomicIon& ion : kPolyatomicIons) {
    if (ion.cation || word != ion.name) continue;
    AnionWord anion;
    PartReader reader(ion.formula, false, 1);
    for (const Part& part : reader.ReadAll()) anion.elements = PartElements(part);
    return anion;
  }
  for (const PerovskiteRoot& root : kPerovskiteRoots) {
    if (word == root.name) return AnionWord{{root.z, 8}, 0, 0};
  }
  if (word.size() < 5 || word.compare(word.size() - 3, 3, "ide") != 0) return std::nullopt;
  std::string stem = word.substr(0, word.size() - 3);
  if (stem.find("sulph") != std::string::npos) stem.replace(stem.find("sulph"), 5, "sulf");
  for (int count = 0; count < static_cast<int>(std::size(kGreekPrefixes)); ++count) {
    std::string_view prefix = kGreekPrefixes[count];
    for (int elided = 0; elided <= (prefix.empty() ? 0 : 1); ++elided) {
      const std::string_view p = prefix.substr(0, prefix.size() - static_cast<size_t>(elided));
      if (stem.compare(0, p.size(), p) != 0) continue;
      const std::string root = stem.substr(p.size());
      for (const AnionRoot& anion_root : kAnionRoots) {
        if (anion_root.root != root) continue;
        if (elided == 1 && root != "ox") continue;
        return AnionWord{{anion_root.z}, count, anion_root.z};
      }
    }
  }
  return std::nullopt;
}

// The element a word names ("gold", "Aluminum"), ignoring an oxidation state written
// after it ("iron(iii)"); 0 when none.
int ElementNamed(std::string_view lower_word) {
  const size_t paren = lower_word.find('(');
  if (paren != std::string_view::npos && lower_word.back() == ')') {
    const std::string_view roman = lower_word.substr(paren + 1, lower_word.size() - paren - 2);
    if (roman.empty() || roman.find_first_not_of("iv") != std::string_view::npos) return 0;
    lower_word = lower_word.substr(0, paren);
  }
  const SymbolIndex& symbols = Symbols();
  auto it = symbols.by_name.find(std::string(lower_word));
  return it == symbols.by_name.end() ? 0 : it->second;
}

// A compound named by cations and an anion word, each a lowercase word.
struct CompoundName {
  std::vector<int> elements;  // cations, then the anion's
  std::string formula;        // when the words fix it (binary with a prefix); else ""
  size_t words = 0;           // words read
};

// Reads a compound name from the start of `words`: one to four element names (or
// "ammonium") then an anion word.
std::optional<CompoundName> ReadCompoundName(const std::vector<std::string>& words) {
  std::vector<int> cations;
  bool ammonium = false;
  size_t i = 0;
  for (; i < words.size() && i < 4; ++i) {
    if (words[i] == "ammonium") {
      ammonium = true;
      continue;
    }
    const int z = ElementNamed(words[i]);
    if (z == 0) break;
    cations.push_back(z);
  }
  if ((cations.empty() && !ammonium) || i >= words.size()) return std::nullopt;
  std::optional<AnionWord> anion = ReadAnionWord(words[i]);
  if (!anion) return std::nullopt;
  CompoundName compound;
  compound.elements = cations;
  if (ammonium) {
    for (int z : {7, 1}) compound.elements.push_back(z);
  }
  for (int z : anion->elements) {
    if (std::find(cations.begin(), cations.end(), z) != cations.end() && anion->monatomic == z) {
      return std::nullopt;  // "oxygen oxide"
    }
    if (std::find(compound.elements.begin(), compound.elements.end(), z) ==
        compound.elements.end()) {
      compound.elements.push_back(z);
    }
  }
  if (cations.size() == 1 && !ammonium && anion->monatomic != 0 && anion->count >= 2) {
    compound.formula = std::string(ElementAt(cations[0]).symbol) +
                       std::string(ElementAt(anion->monatomic).symbol) +
                       std::to_string(anion->count);
  }
  compound.words = i + 1;
  return compound;
}

std::vector<std::string> SplitSpaces(std::string_view text) {
  const std::vector<std::string_view> views = SplitWords(text);
  return std::vector<std::string>(views.begin(), views.end());
}

// ---------------------------------------------------------------------------------------
// The vocabulary's materials, read once: each concept's formula (from a form that is a
// formula whose name by rule is another of the concept's forms) and elements.

struct VocabMaterial {
  const Concept* concept_entry = nullptr;
  std::string formula;        // canonical; "" when no form is a confirmed formula
  std::vector<int> elements;  // from the formula, else from a compound name among the forms
};

struct VocabForm {
  std::vector<std::string> words;
  size_t material = 0;
  bool abbreviation = false;  // "sto", "lao": short, not a formula, not a word
  bool formula_form = false;  // "pbse", "srtio3"
};

struct VocabIndex {
  std::vector<VocabMaterial> materials;
  std::unordered_map<std::string, size_t> by_formula;  // lowercased canonical -> material
  std::unordered_map<std::string, std::vector<VocabForm>> forms_by_first_word;
  std::unordered_set<std::string> other_words;  // one-word forms of non-material concepts
  std::string_view zeolite_id;                  // the zeolite concept, if any
};

std::vector<std::string> RuleNames(const Part& part) {
  std::vector<std::string> names;
  if (std::optional<std::string> name = PartName(part)) names.push_back(*name);
  return names;
}

// Whether `name` (a rule name) is one of the concept's forms, allowing the concept to
// drop Greek prefixes ("cerium dioxide" ~ "cerium oxide") or to qualify the name
// ("hexagonal boron nitride").
bool NameFitsConcept(const std::string& name, const Concept& concept_entry) {
  std::vector<std::string> variants = {NormaliseForMatching(name)};
  std::vector<std::string> words = SplitSpaces(variants[0]);
  if (!words.empty()) {
    if (std::optional<AnionWord> anion = ReadAnionWord(words.back());
        anion && anion->count > 0 && anion->monatomic != 0) {
      words.back() = std::string(AnionRootOf(anion->monatomic)->root) + "ide";
      std::string plain;
      for (const std::string& w : words) plain += (plain.empty() ? "" : " ") + w;
      variants.push_back(plain);
    }
  }
  for (std::string_view form : concept_entry.forms) {
    for (const std::string& variant : variants) {
      if (form == variant) return true;
      if (form.size() > variant.size() && form.substr(form.size() - variant.size()) == variant &&
          form[form.size() - variant.size() - 1] == ' ') {
        return true;
      }
    }
  }
  return false;
}

const VocabIndex& Vocab() {
  static const VocabIndex index = [] {
    VocabIndex built;
    for (const Concept& concept_entry : DomainVocabulary()) {
      if (concept_entry.kind != ConceptKind::kMaterial) {
        for (std::string_view form : concept_entry.forms) {
          if (form.find(' ') == std::string_view::npos) built.other_words.emplace(form);
        }
        continue;
      }
      if (concept_entry.id == "zeolite") built.zeolite_id = concept_entry.id;
      VocabMaterial material;
      material.concept_entry = &concept_entry;
      std::vector<std::string> formula_forms;
      for (std::string_view form : concept_entry.forms) {
        if (form.find(' ') != std::string_view::npos || form.size() > 24) continue;
        PartReader reader(form, true, 64);
        for (const Part& part : reader.ReadAll()) {
          if (PartElements(part).size() < 2) continue;
          bool fits = false;
          for (const std::string& name : RuleNames(part)) {
            fits = fits || NameFitsConcept(name, concept_entry);
          }
          if (!fits) continue;
          if (material.formula.empty()) {
            material.formula = PartCanonical(part, false);
            material.elements = PartElements(part);
          }
          formula_forms.emplace_back(form);
          built.by_formula.emplace(Lower(PartCanonical(part, false)), built.materials.size());
          break;
        }
      }
      if (material.elements.empty()) {
        for (std::string_view form : concept_entry.forms) {
          const std::vector<std::string> words = SplitSpaces(form);
          for (size_t start = 0; start < words.size() && material.elements.empty(); ++start) {
            const std::vector<std::string> tail(words.begin() + static_cast<long>(start),
                                                words.end());
            std::optional<CompoundName> compound = ReadCompoundName(tail);
            if (compound && compound->words == tail.size()) material.elements = compound->elements;
          }
          if (!material.elements.empty()) break;
        }
      }
      if (material.elements.empty()) continue;  // graphene, steel: FindConcepts' business
      for (std::string_view form : concept_entry.forms) {
        VocabForm entry;
        entry.words = SplitSpaces(form);
        if (entry.words.empty()) continue;
        entry.material = built.materials.size();
        entry.formula_form = std::find(formula_forms.begin(), formula_forms.end(),
                                       std::string(form)) != formula_forms.end();
        entry.abbreviation = entry.words.size() == 1 && form.size() <= 4 && !entry.formula_form;
        built.forms_by_first_word[entry.words.front()].push_back(std::move(entry));
      }
      built.materials.push_back(std::move(material));
    }
    return built;
  }();
  return index;
}

// ---------------------------------------------------------------------------------------
// Building the public Formula.

void AddOnce(std::vector<std::string>& list, const std::string& item) {
  if (!item.empty() && std::find(list.begin(), list.end(), item) == list.end()) {
    list.push_back(item);
  }
}

void AddOnce(std::vector<std::string_view>& list, std::string_view item) {
  if (!item.empty() && std::find(list.begin(), list.end(), item) == list.end()) {
    list.push_back(item);
  }
}

// Names and concepts of one part, vocabulary first.
void DescribePart(const Part& part, std::vector<std::string>& names,
                  std::vector<std::string_view>& concepts) {
  const VocabIndex& vocab = Vocab();
  if (part.charge.empty()) {
    // A small deviation from the ideal formula is the same material: SrTiO3-δ is STO.
    Part ideal = part;
    for (Term& term : ideal.terms) {
      const size_t sign = term.count.find_first_of("+-", 1);
      if (sign != std::string::npos && term.count.size() == sign + 2 &&
          (term.count.back() == 'd' || IsVariable(term.count.back()))) {
        term.count.resize(sign);
      }
    }
    auto it = vocab.by_formula.find(Lower(PartCanonical(ideal, false)));
    if (it != vocab.by_formula.end()) {
      const Concept& concept_entry = *vocab.materials[it->second].concept_entry;
      AddOnce(names, std::string(concept_entry.label));
      AddOnce(concepts, concept_entry.id);
    }
  }
  for (const std::string& name : RuleNames(part)) AddOnce(names, name);
}

Formula DescribeFormula(const ParsedFormula& parsed) {
  Formula formula;
  formula.canonical = FormulaCanonical(parsed);
  std::vector<int> elements;
  for (const Part& part : parsed.parts) {
    for (int z : PartElements(part)) {
      if (std::find(elements.begin(), elements.end(), z) == elements.end()) elements.push_back(z);
    }
    DescribePart(part, formula.material_names, formula.concept_ids);
  }
  for (int z : elements) formula.element_symbols.push_back(ElementAt(z).symbol);
  return formula;
}

// ---------------------------------------------------------------------------------------
// Text: decoding UTF-8 into glyphs with an ASCII spelling for the parser.

enum class GlyphClass { kSeparator, kWord, kInner };

struct Glyph {
  size_t begin = 0;
  size_t end = 0;
  GlyphClass cls = GlyphClass::kSeparator;
  std::string ascii;  // how the parser reads it: "2" for a subscript two
};

// Decodes one UTF-8 sequence at `pos`; invalid bytes decode as U+FFFD, one byte each.
char32_t DecodeAt(std::string_view text, size_t pos, size_t* length) {
  const unsigned char lead = static_cast<unsigned char>(text[pos]);
  size_t need = 0;
  char32_t cp = 0;
  if (lead < 0x80) {
    *length = 1;
    return lead;
  } else if (lead >= 0xC2 && lead <= 0xDF) {
    need = 1;
    cp = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    need = 2;
    cp = lead & 0x0F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    need = 3;
    cp = lead & 0x07;
  } else {
    *length = 1;
    return 0xFFFD;
  }
  if (pos + need >= text.size()) {
    *length = 1;
    return 0xFFFD;
  }
  for (size_t i = 1; i <= need; ++i) {
    const unsigned char c = static_cast<unsigned char>(text[pos + i]);
    if ((c & 0xC0) != 0x80) {
      *length = 1;
      return 0xFFFD;
    }
    cp = (cp << 6) | (c & 0x3F);
  }
  const bool overlong = (need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000);
  if (overlong || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    *length = 1;
    return 0xFFFD;
  }
  *length = need + 1;
  return cp;
}

int SuperscriptDigit(char32_t cp) {
  if (cp == 0x2070) return 0;
  if (cp == 0xB9) return 1;
  if (cp == 0xB2) return 2;
  if (cp == 0xB3) return 3;
  if (cp >= 0x2074 && cp <= 0x2079) return static_cast<int>(cp - 0x2070);
  return -1;
}

std::vector<Glyph> Decode(std::string_view text) {
  std::vector<Glyph> glyphs;
  bool previous_superscript = false;
  for (size_t pos = 0; pos < text.size();) {
    size_t length = 1;
    const char32_t cp = DecodeAt(text, pos, &length);
    Glyph glyph;
    glyph.begin = pos;
    glyph.end = pos + length;
    bool superscript = false;
    if (cp < 0x80) {
      const char c = static_cast<char>(cp);
      if (IsLetter(c) || IsDigit(c)) {
        glyph.cls = GlyphClass::kWord;
        glyph.ascii = std::string(1, c);
      } else if (std::string_view("()[]/@-+.,:^*%").find(c) != std::string_view::npos) {
        glyph.cls = GlyphClass::kInner;
        glyph.ascii = std::string(1, c);
      }
    } else if (cp >= 0x2080 && cp <= 0x2089) {
      glyph.cls = GlyphClass::kWord;
      glyph.ascii = std::string(1, static_cast<char>('0' + (cp - 0x2080)));
    } else if (SuperscriptDigit(cp) >= 0 || cp == 0x207A || cp == 0x207B) {
      superscript = true;
      glyph.cls = GlyphClass::kInner;
      glyph.ascii = previous_superscript ? "" : "^";
      const int digit = SuperscriptDigit(cp);
      glyph.ascii += digit >= 0 ? char('0' + digit) : (cp == 0x207A ? '+' : '-');
    } else if (cp == 0x2212 || (cp >= 0x2010 && cp <= 0x2013)) {
      glyph.cls = GlyphClass::kInner;
      glyph.ascii = "-";
    } else if (cp == 0xB7 || cp == 0x2022 || cp == 0x2219 || cp == 0x22C5) {
      glyph.cls = GlyphClass::kInner;
      glyph.ascii = "*";
    } else if (cp == 0x3B4 || cp == 0x3B1 || cp == 0x3B2) {  // δ in "O3-δ"; α, β in "Kα"
      glyph.cls = GlyphClass::kWord;
      glyph.ascii = cp == 0x3B4 ? "d" : (cp == 0x3B1 ? "a" : "b");
    } else if (cp == 0xA0 || (cp >= 0x2000 && cp <= 0x200B) || cp == 0x2014 || cp == 0x2015 ||
               (cp >= 0x2018 && cp <= 0x201F) || cp == 0x2026 || cp == 0x202F || cp == 0x205F ||
               cp == 0x3000 || cp == 0xFEFF || cp == 0xAB || cp == 0xBB || cp == 0xB0 ||
               cp == 0xD7 || cp == 0xB1 || cp == 0xB5 || cp == 0xFFFD) {
      glyph.cls = GlyphClass::kSeparator;
    } else {
      // Letters of other scripts: part of a word that is no formula ("Señor").
      glyph.cls = GlyphClass::kWord;
      glyph.ascii = "\x7f";
    }
    previous_superscript = superscript;
    glyphs.push_back(std::move(glyph));
    pos += length;
  }
  return glyphs;
}

// A word of the text as the finder reads it. In prose, a whitespace-separated token is
// cut at "/", "@", ":", ",", "-" into pieces ("In-doped" -> "In", "doped"); in names
// every separator cuts.
struct Piece {
  size_t begin = 0;  // byte range in the text
  size_t end = 0;
  std::string norm;          // ASCII spelling
  std::string lower;         // lowercased
  int raw = 0;               // index of the whitespace token it came from
  char sep_before = 0;       // separator to the previous piece of the same token
  bool comma_after = false;  // its token ended with a comma
};

struct RawChar {
  char c;
  size_t begin;
  size_t end;
};

// Index of the bracket matching chars[i] (an opening one), or npos.
size_t MatchingClose(const std::vector<RawChar>& chars, size_t i) {
  int depth = 0;
  for (size_t j = i; j < chars.size(); ++j) {
    if (chars[j].c == '(' || chars[j].c == '[') ++depth;
    if (chars[j].c == ')' || chars[j].c == ']') {
      if (--depth == 0) return j;
    }
  }
  return std::string::npos;
}

bool ClosedInside(const std::vector<RawChar>& chars, size_t last) {
  int depth = 0;
  for (size_t j = last + 1; j-- > 0;) {
    if (chars[j].c == ')' || chars[j].c == ']') ++depth;
    if (chars[j].c == '(' || chars[j].c == '[') {
      if (--depth == 0) return true;
    }
  }
  return false;
}

// Trims punctuation around a prose token: quotes and sentence punctuation, brackets that
// wrap it ("(PbSe)"), unmatched brackets, a suspended hyphen ("In- and Ga-doped").
void TrimToken(std::vector<RawChar>& chars, bool* comma_after) {
  bool changed = true;
  while (changed && !chars.empty()) {
    changed = false;
    const char first = chars.front().c;
    const char last = chars.back().c;
    if (std::string_view("/@-:,.*%^+").find(first) != std::string_view::npos) {
      chars.erase(chars.begin());
      changed = true;
    } else if (std::string_view(",.:;/@*^").find(last) != std::string_view::npos) {
      if (last == ',') *comma_after = true;
      chars.pop_back();
      changed = true;
    } else if (last == '-' && chars.size() >= 2 && IsLetter(chars[chars.size() - 2].c)) {
      chars.pop_back();
      changed = true;
    } else if (first == '(' || first == '[') {
      const size_t close = MatchingClose(chars, 0);
      if (close == std::string::npos) {
        chars.erase(chars.begin());
        changed = true;
      } else if (close == chars.size() - 1) {
        chars.pop_back();
        chars.erase(chars.begin());
        changed = true;
      }
    }
    if (!changed && !chars.empty() && (chars.back().c == ')' || chars.back().c == ']') &&
        !ClosedInside(chars, chars.size() - 1)) {
      chars.pop_back();
      changed = true;
    }
  }
}

void AddPiece(const std::vector<RawChar>& chars, size_t from, size_t to, int raw, char sep,
              std::vector<Piece>& pieces) {
  if (from >= to) return;
  Piece piece;
  piece.begin = chars[from].begin;
  piece.end = chars[to - 1].end;
  for (size_t i = from; i < to; ++i) piece.norm += chars[i].c;
  piece.lower = Lower(piece.norm);
  piece.raw = raw;
  piece.sep_before = sep;
  pieces.push_back(std::move(piece));
}

// Whether a "-" at chars[i] belongs to a count ("La1-xSrx", "O3-δ").
bool IsCountMinus(const std::vector<RawChar>& chars, size_t i) {
  if (i == 0 || i + 1 >= chars.size() || !IsDigit(chars[i - 1].c)) return false;
  const char next = chars[i + 1].c;
  if (!IsVariable(next) && next != 'd') return false;
  return i + 2 >= chars.size() || !IsLower(chars[i + 2].c);
}

std::vector<Piece> Tokenise(std::string_view text, TextStyle style) {
  const std::vector<Glyph> glyphs = Decode(text);
  std::vector<Piece> pieces;
  int raw = 0;
  size_t i = 0;
  while (i < glyphs.size()) {
    if (glyphs[i].cls == GlyphClass::kSeparator) {
      ++i;
      continue;
    }
    std::vector<RawChar> chars;
    for (; i < glyphs.size() && glyphs[i].cls != GlyphClass::kSeparator; ++i) {
      for (char c : glyphs[i].ascii) chars.push_back({c, glyphs[i].begin, glyphs[i].end});
    }
    if (chars.size() > 256) {  // no formula is this long: skip without reading it
      ++raw;
      continue;
    }
    if (style == TextStyle::kName) {
      // Every separator cuts, except "." between digits (La0.7Sr0.3MnO3).
      size_t start = 0;
      for (size_t j = 0; j <= chars.size(); ++j) {
        const bool end = j == chars.size();
        if (!end) {
          const char c = chars[j].c;
          if (IsLetter(c) || IsDigit(c) || static_cast<unsigned char>(c) == 0x7f) continue;
          if (c == '.' && j > 0 && j + 1 < chars.size() && IsDigit(chars[j - 1].c) &&
              IsDigit(chars[j + 1].c)) {
            continue;
          }
        }
        AddPiece(chars, start, j, raw++, 0, pieces);
        start = j + 1;
      }
      continue;
    }
    bool comma_after = false;
    TrimToken(chars, &comma_after);
    size_t start = 0;
    char sep = 0;
    int depth = 0;
    for (size_t j = 0; j < chars.size(); ++j) {
      const char c = chars[j].c;
      if (c == '(' || c == '[') ++depth;
      if (c == ')' || c == ']') --depth;
      if (depth != 0) continue;
      const bool cut = c == '/' || c == '@' || c == ':' || c == ',' ||
                       (c == '-' && j + 1 < chars.size() && !IsCountMinus(chars, j));
      if (!cut) continue;
      AddPiece(chars, start, j, raw, sep, pieces);
      sep = c;
      start = j + 1;
    }
    AddPiece(chars, start, chars.size(), raw, sep, pieces);
    if (!pieces.empty() && pieces.back().raw == raw) pieces.back().comma_after = comma_after;
    ++raw;
  }
  return pieces;
}

// ---------------------------------------------------------------------------------------
// Words that make a lone symbol chemistry, and words that never are.

bool InList(std::string_view word, std::initializer_list<std::string_view> list) {
  return std::find(list.begin(), list.end(), word) != list.end();
}

// Symbols that are English words or initials, which a sentence may put before a noun
// ("No nanoparticles were seen", "As atoms diffuse", "I film"): an element only with
// strong context ("In-doped", "In3+", "In 4d5/2") or in a list with a plain element.
bool IsWordLikeSymbol(std::string_view symbol) {
  return symbol.size() == 1 || InList(symbol, {"In", "As", "Be", "No", "At", "He", "Am", "Es", "Md",
                                               "Mt", "Db", "Pa", "Po", "Ra", "Fr", "Ac", "Hf"});
}

// Whether a symbol is plainly an element: not word-like, and not also a common surname,
// abbreviation or foreign word ("Li, He and Lu" are authors; "Co." a company). Such a
// symbol anchors a list ("Pt and Pd") and stands alone in a file name ("Au_grid").
bool IsPlainSymbol(std::string_view symbol) {
  return !IsWordLikeSymbol(symbol) &&
         !InList(symbol, {"Li", "Lu", "Ge", "Ho", "Re", "Th", "Pr", "Ta", "Er", "La", "Ca", "Co",
                          "Mo", "Ar", "Os", "Cs", "Sc", "Ds", "Hs", "Ts", "Cm", "Pm", "Tm", "Sm"});
}

// After a hyphen: "In-doped", "Ni-rich", "Pt-based".
bool IsHyphenSuffix(std::string_view lower) {
  return InList(lower, {"doped",
                        "codoped",
                        "rich",
                        "poor",
                        "deficient",
                        "based",
                        "containing",
                        "free",
                        "bearing",
                        "substituted",
                        "terminated",
                        "polar",
                        "decorated",
                        "coated",
                        "capped",
                        "loaded",
                        "alloyed",
                        "implanted",
                        "intercalated",
                        "exchanged",
                        "modified",
                        "stabilized",
                        "stabilised",
                        "catalyzed",
                        "catalysed",
                        "seeded",
                        "functionalized",
                        "functionalised",
                        "supported",
                        "k",
                        "l",
                        "m",
                        "ka",
                        "kb",
                        "la",
                        "lb",
                        "edge"});
}

// Core-level and edge labels after a symbol: "Fe 2p", "O 1s", "Ti L2,3", "O K-edge".
bool IsSpectroscopicLabel(std::string_view norm) {
  if (norm.size() >= 2 && norm[0] >= '1' && norm[0] <= '7' &&
      std::string_view("spdf").find(norm[1]) != std::string_view::npos) {
    const std::string_view rest = norm.substr(2);
    return rest.empty() || rest.find_first_not_of("0123456789/") == std::string_view::npos;
  }
  if (norm.empty() || std::string_view("KLM").find(norm[0]) == std::string_view::npos) {
    return false;
  }
  const std::string_view rest = norm.substr(1);
  return InList(rest, {"1", "2", "3", "4", "5", "23", "45", "a", "b", "a1", "a2", "b1"});
}

// Nouns after a symbol that make it a material: "Au nanoparticles", "Pt film".
bool IsMaterialNoun(std::string_view lower) {
  if (lower.size() > 3 && lower.back() == 's') lower.remove_suffix(1);
  return InList(lower, {"nanoparticle", "nanocrystal",
                        "nanowire",     "nanorod",
                        "nanocube",     "nanosheet",
                        "nanoplate",    "nanoplatelet",
                        "nanocluster",  "nanostructure",
                        "nanotube",     "nanodot",
                        "nanoisland",   "nanoprism",
                        "nanostar",     "particle",
                        "cluster",      "np",
                        "nps",          "nc",
                        "ncs",          "nw",
                        "nws",          "nr",
                        "nrs",          "qd",
                        "qds",          "atom",
                        "adatom",       "ion",
                        "cation",       "film",
                        "layer",        "monolayer",
                        "overlayer",    "substrate",
                        "foil",         "wafer",
                        "grid",         "electrode",
                        "catalyst",     "alloy",
                        "dopant",       "doping",
                        "content",      "concentration",
                        "vacancie",     "vacancy",
                        "interstitial", "precipitate",
                        "segregation",  "shell",
                        "core",         "matrix",
                        "coating",      "contact",
                        "metal",        "signal",
                        "map",          "mapping",
                        "peak",         "edge",
                        "crystal",      "surface",
                        "lattice",      "sublattice",
                        "column",       "dimer",
                        "trimer",       "precursor",
                        "powder",       "island",
                        "site",         "sputtering",
                        "target",       "wire",
                        "mesh",         "sheet",
                        "oct",          "octahedra",
                        "cube",         "atmosphere",
                        "gas",          "plasma",
                        "ambient",      "flow"});
}

// Morphology shorthand glued to a symbol: "AuNP", "CuNWs", "SiNW".
constexpr std::string_view kGluedMorphology[] = {"NPs", "NP", "NCs", "NC",  "NWs", "NW",
                                                 "NRs", "NR", "NTs", "QDs", "QD"};

// Mixed-case words that parse as formulas and are not ("NaN", "GeV", "HeLa").
bool IsFalseFormula(std::string_view norm) {
  return InList(norm,
                {"NaN", "GeV", "CoV", "HeLa", "BSc", "BaBar", "W3C", "LiPo", "B2C", "C4I", "C3I"});
}

// All-caps or lowercase words of file names that are never chemistry even though they
// spell symbols ("SI" spectrum image, "SN" serial number, "no").
bool IsNameAbbreviation(std::string_view lower) {
  return InList(lower,
                {"si",  "sn",  "no",  "in",  "as",  "be",   "at",  "he",   "am",  "pm", "se", "cd",
                 "cm",  "ds",  "hs",  "ts",  "es",  "md",   "mt",  "db",   "re",  "pr", "ac", "pa",
                 "po",  "ra",  "fr",  "li",  "lu",  "ge",   "ho",  "co",   "ca",  "la", "ar", "ta",
                 "th",  "np",  "ml",  "nw",  "bf",  "df",   "tb",  "nb",   "ne",  "os", "sc", "er",
                 "bin", "res", "cos", "sin", "tip", "site", "pos", "base", "case"});
}

// ---------------------------------------------------------------------------------------
// Classifying pieces.

enum class PieceKind { kNothing, kFormula, kSymbol, kElementName };

struct PieceInfo {
  PieceKind kind = PieceKind::kNothing;
  ParsedFormula parsed;  // kFormula and kSymbol
  int z = 0;             // kSymbol, kElementName
  bool strong = false;   // context that makes even a word-like symbol chemistry
  bool weak = false;     // context enough for an unambiguous symbol
  bool listed = false;   // in a list with a plain element ("Pt and Pd")
  bool accepted = false;
  bool consumed = false;  // part of a longer mention (vocabulary, compound name, composite)
  double confidence = 0;
  std::string reason;
  std::string surface_formula;  // canonical override ("Au" for "AuNP")
  std::vector<std::string> extra_names;
  std::vector<std::string_view> extra_concepts;
};

bool HasDigit(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return IsDigit(c); });
}

// Whether a digit in `s` is followed by a letter: counts inside a formula ("Fe3O4"),
// which a sequence number never has.
bool HasInnerDigit(std::string_view s) {
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    if (IsDigit(s[i]) && IsLetter(s[i + 1])) return true;
  }
  return false;
}

bool AnyTwoLetterSymbol(const Part& part) {
  std::vector<int> elements = PartElements(part);
  return std::any_of(elements.begin(), elements.end(),
                     [](int z) { return ElementAt(z).symbol.size() == 2; });
}

bool CountsBelow(const std::vector<Term>& terms, double limit) {
  for (const Term& term : terms) {
    std::optional<double> value = CountValue(term.count);
    if (value && *value >= limit) return false;
    if (term.z == 0 && !CountsBelow(term.group, limit)) return false;
  }
  return true;
}

// Plural of an acronym that spells symbols: "ICs", "PCs", "SOCs" (I + Cs, P + Cs, ...).
bool LooksLikePluralAcronym(std::string_view norm) {
  if (norm.size() < 3 || norm.back() != 's' || HasDigit(norm)) return false;
  for (size_t i = 0; i + 1 < norm.size(); ++i) {
    if (!IsUpper(norm[i])) return false;
  }
  return true;
}

// Checks shared by both styles on a formula of two or more elements.
bool PlausibleInText(const Part& part, std::string_view norm) {
  if (IsFalseFormula(norm) || LooksLikePluralAcronym(norm)) return false;
  if (!CountsBelow(part.terms, 100)) return false;
  for (int z : PartElements(part)) {
    if (z >= 95 || (IsRareInSamples(z) && !HasDigit(norm))) return false;
    // Noble gases form compounds only with counts (XeF2); "CPXe" is an acronym.
    if (GroupOf(z) == 18 && !HasDigit(norm)) return false;
  }
  return true;
}

// "NaY", "KY", "CaY": a zeolite Y exchanged with the cation, not yttrium.
bool IsZeoliteY(const Part& part) {
  if (part.terms.size() != 2 || HasGroup(part) || part.terms[1].z != 39) return false;
  if (!part.terms[0].count.empty() || !part.terms[1].count.empty()) return false;
  const int cation = part.terms[0].z;
  return InList(ElementAt(cation).symbol, {"Li", "Na", "K", "Rb", "Cs", "Mg", "Ca", "Ba", "La",
                                           "Ce", "Cu", "Ag", "Ni", "Co", "Fe", "Zn", "Pt", "Pd"});
}

std::optional<Part> ReadExact(std::string_view s) {
  if (s.empty() || s.size() > 64) return std::nullopt;
  PartReader reader(s, false, 2);
  std::vector<Part> parts = reader.ReadAll();
  if (parts.empty()) return std::nullopt;
  return parts.front();
}

ParsedFormula Single(Part part) {
  ParsedFormula parsed;
  parsed.parts.push_back(std::move(part));
  return parsed;
}

bool IsRomanNumeral(std::string_view s) {
  return InList(s, {"I", "II", "III", "IV", "V", "VI", "VII", "VIII"});
}

// A piece in exact case (prose, and mixed-case names).
PieceInfo ClassifyExact(const Piece& piece) {
  PieceInfo info;
  std::string s = piece.norm;
  bool oxidation_state = false;
  if (s.size() > 3 && s.back() == ')') {
    const size_t open = s.rfind('(');
    if (open != std::string::npos && open > 0 &&
        IsRomanNumeral(std::string_view(s).substr(open + 1, s.size() - open - 2))) {
      s.resize(open);
      oxidation_state = true;
    }
  }
  // Isotopes: "57Fe", "13C".
  size_t digits = 0;
  while (digits < s.size() && IsDigit(s[digits])) ++digits;
  if (digits > 0 && digits < s.size() && digits <= 3) {
    const SymbolIndex& symbols = Symbols();
    auto it = symbols.exact.find(std::string_view(s).substr(digits));
    if (it == symbols.exact.end() || it->second == 1) return info;
    const int mass = std::stoi(s.substr(0, digits));
    const int z = it->second;
    if (mass < 2 * z - 2 || mass > z * 27 / 10 + 10) return info;
    info.kind = PieceKind::kSymbol;
    info.z = z;
    info.strong = true;
    info.reason = "isotope";
    info.surface_formula = s.substr(digits);
    return info;
  }
  bool glued_morphology = false;
  std::optional<Part> part = ReadExact(s);
  for (std::string_view suffix : kGluedMorphology) {
    if (s.size() > suffix.size() &&
        std::string_view(s).substr(s.size() - suffix.size()) == suffix) {
      // Only after a two-letter symbol: "SNR", "CNC" are acronyms, "SiNW" is a wire.
      std::optional<Part> rest = ReadExact(std::string_view(s).substr(0, s.size() - suffix.size()));
      if (rest && AnyTwoLetterSymbol(*rest)) {
        part = rest;
        glued_morphology = true;
        break;
      }
    }
  }
  if (part) {
    const std::vector<int> elements = PartElements(*part);
    const bool plain = !HasGroup(*part) && part->adducts.empty();
    if (elements.size() == 1 && plain && part->terms.size() == 1) {
      const int z = elements[0];
      const std::string_view symbol = ElementAt(z).symbol;
      if (!part->charge.empty()) {
        // "Fe3+", "O2-", "Cu+": an ion. A bare "C+" is a grade, not carbon.
        const bool digit = HasDigit(part->charge) || !part->terms[0].count.empty();
        if (!digit && symbol.size() == 1) return info;
        info.strong = true;
        info.reason = "ion";
      } else if (!part->terms[0].count.empty()) {
        return info;  // "O2", "S1": a molecule or, far more often, a label
      }
      if (oxidation_state) {
        info.strong = true;
        info.reason = "oxidation state";
      }
      if (glued_morphology) {
        info.strong = true;
        info.reason = "symbol with morphology shorthand";
      }
      if (IsRareInSamples(z)) return info;
      info.kind = PieceKind::kSymbol;
      info.z = z;
      info.parsed = Single(*part);
      info.surface_formula = std::string(symbol) + part->terms[0].count + part->charge;
      return info;
    }
    if (elements.size() >= 2 && PlausibleInText(*part, s)) {
      if (IsZeoliteY(*part)) {
        info.kind = PieceKind::kSymbol;
        info.z = part->terms[0].z;
        info.strong = true;
        info.reason = "zeolite Y";
        info.surface_formula = std::string(ElementAt(info.z).symbol) + "Y";
        info.extra_names.emplace_back("zeolite Y");
        AddOnce(info.extra_concepts, Vocab().zeolite_id);
        return info;
      }
      const bool two_letter = AnyTwoLetterSymbol(*part);
      if (!two_letter) {
        // Only single-letter symbols ("CO2", "OK", "BY"): a formula only with counts and
        // a name by rule (carbon dioxide, water), written cation first.
        if (!HasDigit(s) || RuleNames(*part).empty()) return info;
      }
      info.kind = PieceKind::kFormula;
      info.parsed = Single(*part);
      info.accepted = true;
      info.confidence = two_letter ? 0.95 : 0.85;
      info.reason = glued_morphology ? "formula with morphology shorthand" : "formula";
      return info;
    }
    return info;
  }
  const int named = ElementNamed(piece.lower);
  if (named != 0) {
    info.kind = PieceKind::kElementName;
    info.z = named;
  }
  return info;
}

// The one reading of an all-caps or lowercase name word ("WSE2", "pt3ni"), if it is
// clearly a formula.
std::optional<Part> ReadAnyCaseFormula(std::string_view lower) {
  if (lower.size() > 32 || !HasDigit(lower)) return std::nullopt;
  PartReader reader(lower, true, 64);
  std::vector<Part> readings;
  for (Part& part : reader.ReadAll()) {
    if (PartElements(part).size() < 2 || !AnyTwoLetterSymbol(part) ||
        !PlausibleInText(part, lower)) {
      continue;
    }
    readings.push_back(std::move(part));
  }
  std::vector<Part> named;
  for (const Part& part : readings) {
    if (!RuleNames(part).empty()) named.push_back(part);
  }
  if (!named.empty()) readings = named;
  // Fewer, longer symbols first: "pt3ni" is Pt3Ni before Pt3NI.
  size_t fewest = SIZE_MAX;
  for (const Part& part : readings) fewest = std::min(fewest, PartElements(part).size());
  std::erase_if(readings, [&](const Part& part) { return PartElements(part).size() > fewest; });
  std::vector<std::string> distinct;
  for (const Part& part : readings) AddOnce(distinct, PartCanonical(part, true));
  if (distinct.size() != 1) return std::nullopt;
  const Part& part = readings.front();
  if (HasInnerDigit(lower)) return part;
  // Only trailing digits, which may be a sequence number ("bin2", "site2"): accept
  // transition-metal chalcogenides MX2/MX3 (WSE2, MOS2) and named ternaries (CSPBBR3).
  std::string letters(lower);
  while (!letters.empty() && IsDigit(letters.back())) letters.pop_back();
  if (IsNameAbbreviation(letters) || named.empty()) return std::nullopt;
  if (part.terms.size() == 2) {
    const int metal = part.terms[0].z;
    const int anion = part.terms[1].z;
    const std::optional<int> count = IntegerCount(part.terms[1].count);
    const bool chalcogen = anion == 8 || anion == 16 || anion == 34 || anion == 52;
    const bool metal_ok = IsTransitionMetal(metal) || metal == 50 || metal == 82 || metal == 83 ||
                          metal == 49 || metal == 31;
    if (chalcogen && metal_ok && count && (*count == 2 || *count == 3)) return part;
    return std::nullopt;
  }
  int metals = 0;
  for (size_t i = 0; i + 1 < part.terms.size(); ++i) {
    if (IsMetal(part.terms[i].z) && ElementAt(part.terms[i].z).symbol.size() == 2) ++metals;
  }
  if (metals >= 2) return part;
  return std::nullopt;
}

// A piece of a file or folder name.
PieceInfo ClassifyName(const Piece& piece) {
  PieceInfo info;
  const std::string& s = piece.norm;
  const bool has_upper = std::any_of(s.begin(), s.end(), IsUpper);
  const bool has_lower = std::any_of(s.begin(), s.end(), IsLower);
  if (Vocab().other_words.count(piece.lower) > 0) return info;  // "sem", "bf", "k2", "se2"
  if (has_upper && has_lower) {
    info = ClassifyExact(piece);
    return info;
  }
  const int named = ElementNamed(piece.lower);
  if (named != 0) {
    info.kind = PieceKind::kElementName;
    info.z = named;
    return info;
  }
  if (std::optional<Part> part = ReadAnyCaseFormula(piece.lower)) {
    info.kind = PieceKind::kFormula;
    info.parsed = Single(*part);
    info.accepted = true;
    info.confidence = HasInnerDigit(piece.lower) ? 0.85 : 0.8;
    info.reason = "formula in a name";
    return info;
  }
  // A lone symbol in one case: "AU" in "AU_NP", or glued: "AUNP", "cunws".
  std::string_view letters = piece.lower;
  bool glued_morphology = false;
  for (std::string_view suffix : kGluedMorphology) {
    const std::string lower_suffix = Lower(suffix);
    if (letters.size() == lower_suffix.size() + 2 &&
        letters.substr(2) == std::string_view(lower_suffix)) {
      letters = letters.substr(0, 2);
      glued_morphology = true;
      break;
    }
  }
  if (letters.size() != 2) return info;
  auto it = Symbols().lower.find(std::string(letters));
  if (it == Symbols().lower.end() || IsRareInSamples(it->second)) return info;
  if (!glued_morphology && IsNameAbbreviation(letters)) return info;
  info.kind = PieceKind::kSymbol;
  info.z = it->second;
  info.strong = glued_morphology;
  info.reason = glued_morphology ? "symbol with morphology shorthand" : "";
  info.surface_formula = std::string(ElementAt(info.z).symbol);
  info.parsed = Single(*ReadExact(info.surface_formula));
  // One case: never accepted without a material noun after it (set by the context pass).
  info.weak = false;
  return info;
}

// ---------------------------------------------------------------------------------------
// The finder.

struct Finder {
  std::string_view text;
  TextStyle style;
  std::vector<Piece> pieces;
  std::vector<PieceInfo> info;
  std::vector<ChemistryMention> mentions;

  bool SameToken(size_t a, size_t b) const { return pieces[a].raw == pieces[b].raw; }

  std::string Surface(size_t first, size_t last) const {
    return std::string(text.substr(pieces[first].begin, pieces[last].end - pieces[first].begin));
  }

  ChemistryMention& Emit(size_t first, size_t last, double confidence, std::string reason) {
    for (size_t i = first; i <= last; ++i) info[i].consumed = true;
    ChemistryMention mention;
    mention.offset = pieces[first].begin;
    mention.surface = Surface(first, last);
    mention.confidence = confidence;
    mention.reason = std::move(reason);
    mentions.push_back(std::move(mention));
    return mentions.back();
  }

  static void SetElements(ChemistryMention& mention, const std::vector<int>& elements) {
    for (int z : elements) {
      if (std::find(mention.element_symbols.begin(), mention.element_symbols.end(),
                    ElementAt(z).symbol) != mention.element_symbols.end()) {
        continue;
      }
      mention.element_symbols.push_back(ElementAt(z).symbol);
      mention.element_names.push_back(ElementAt(z).name);
    }
  }

  // Vocabulary forms over consecutive pieces ("STO", "lead selenide", "h-BN").
  void MatchVocabulary() {
    const VocabIndex& vocab = Vocab();
    for (size_t i = 0; i < pieces.size(); ++i) {
      if (info[i].consumed) continue;
      auto it = vocab.forms_by_first_word.find(pieces[i].lower);
      if (it == vocab.forms_by_first_word.end()) continue;
      const VocabForm* best = nullptr;
      for (const VocabForm& form : it->second) {
        if (i + form.words.size() > pieces.size()) continue;
        bool match = true;
        for (size_t k = 1; k < form.words.size() && match; ++k) {
          match = !info[i + k].consumed && pieces[i + k].lower == form.words[k];
        }
        if (!match || (best != nullptr && best->words.size() >= form.words.size())) continue;
        // A short formula in one case is too often an acronym in names ("GAN", "CDS",
        // "PBS" buffer): only its own case counts, which the formula pass reads.
        if (style == TextStyle::kName && form.formula_form && form.words[0].size() <= 3) continue;
        if (style == TextStyle::kProse && form.words.size() == 1) {
          // In sentences a formula must be written in its case (the formula pass reads
          // it) and an abbreviation in capitals: "STO", not "sto".
          if (form.formula_form) continue;
          if (form.abbreviation &&
              std::count_if(pieces[i].norm.begin(), pieces[i].norm.end(), IsUpper) < 2) {
            continue;
          }
        }
        best = &form;
      }
      if (best == nullptr) continue;
      const VocabMaterial& material = vocab.materials[best->material];
      const size_t last = i + best->words.size() - 1;
      ChemistryMention& mention =
          Emit(i, last, best->abbreviation ? 0.85 : 0.95,
               best->abbreviation ? "vocabulary abbreviation" : "vocabulary material");
      mention.formula = material.formula;
      SetElements(mention, material.elements);
      AddOnce(mention.material_names, std::string(material.concept_entry->label));
      AddOnce(mention.concept_ids, material.concept_entry->id);
      if (!material.formula.empty()) {
        if (std::optional<Part> part = ReadExact(material.formula)) {
          for (const std::string& name : RuleNames(*part)) AddOnce(mention.material_names, name);
        }
      }
    }
  }

  // "lead selenide", "tungsten diselenide", "lanthanum strontium manganite".
  void MatchCompoundNames() {
    for (size_t i = 0; i < pieces.size(); ++i) {
      if (info[i].consumed || info[i].kind != PieceKind::kElementName) continue;
      std::vector<std::string> words;
      for (size_t k = i; k < pieces.size() && k < i + 5 && !info[k].consumed; ++k) {
        words.push_back(pieces[k].lower);
      }
      std::optional<CompoundName> compound = ReadCompoundName(words);
      if (!compound) continue;
      const size_t last = i + compound->words - 1;
      ChemistryMention& mention = Emit(i, last, 0.95, "compound name");
      mention.formula = compound->formula;
      SetElements(mention, compound->elements);
      std::string name;
      for (size_t k = i; k <= last; ++k) name += (name.empty() ? "" : " ") + pieces[k].lower;
      if (const size_t sulph = name.find("sulph"); sulph != std::string::npos) {
        name.replace(sulph, 5, "sulf");
      }
      // "iron(iii) oxide" -> "iron(III) oxide"
      for (size_t open = name.find('('); open != std::string::npos;
           open = name.find('(', open + 1)) {
        for (size_t k = open + 1; k < name.size() && name[k] != ')'; ++k) {
          name[k] = static_cast<char>(name[k] - 'a' + 'A');
        }
      }
      AddOnce(mention.material_names, name);
      if (!compound->formula.empty()) {
        if (std::optional<Part> part = ReadExact(compound->formula)) {
          ParsedFormula parsed = Single(*part);
          Formula described = DescribeFormula(parsed);
          for (const std::string& n : described.material_names) AddOnce(mention.material_names, n);
          for (std::string_view id : described.concept_ids) AddOnce(mention.concept_ids, id);
        }
      }
    }
  }

  size_t NextPiece(size_t i) const { return i + 1 < pieces.size() ? i + 1 : pieces.size(); }

  // Strong and weak context from the neighbours of a lone symbol.
  void ApplyContext(size_t i) {
    PieceInfo& self = info[i];
    const size_t next = NextPiece(i);
    if (next < pieces.size()) {
      const Piece& after = pieces[next];
      const bool hyphen = SameToken(i, next) && after.sep_before == '-';
      if (hyphen && IsHyphenSuffix(after.lower)) {
        self.strong = true;
        self.reason = "symbol with '-" + after.lower + "'";
      } else if (!SameToken(i, next) && IsSpectroscopicLabel(after.norm)) {
        // "In 3d" is indium's core level, but also "in 3d printing": a bare "Nd" label
        // is not enough for a word-like symbol.
        const bool bare_d = after.norm.size() == 2 && after.norm[1] == 'd';
        if (bare_d && IsWordLikeSymbol(ElementAt(self.z).symbol)) {
          self.weak = true;
        } else {
          self.strong = true;
        }
        self.reason = "symbol with core level or edge '" + after.norm + "'";
      } else if (!SameToken(i, next) && after.norm.size() == 1 &&
                 std::string_view("KLM").find(after.norm[0]) != std::string_view::npos &&
                 next + 1 < pieces.size() &&
                 (pieces[next + 1].lower == "edge" || pieces[next + 1].lower == "edges")) {
        self.strong = true;
        self.reason = "symbol with edge '" + after.norm + " edge'";
      } else if (IsMaterialNoun(after.lower) && (style == TextStyle::kName || !hyphen)) {
        self.weak = true;
        if (self.reason.empty()) self.reason = "symbol with '" + after.lower + "'";
      }
    }
    if (i > 0 && !SameToken(i - 1, i) && style == TextStyle::kProse) {
      const std::string& before = pieces[i - 1].lower;
      if (!before.empty() && before.back() == '%') {
        self.weak = true;
        if (self.reason.empty()) self.reason = "symbol after a percentage";
      }
    }
  }

  bool IsConnector(const Piece& piece) const {
    return piece.lower == "and" || piece.lower == "or" || piece.lower == "&";
  }

  bool IsChemicalCandidate(size_t i) const {
    return !info[i].consumed &&
           (info[i].kind == PieceKind::kSymbol || info[i].kind == PieceKind::kFormula);
  }

  // "Pt and Pd", "Au, Ag and Cu nanoparticles": symbols listed together with one that is
  // plainly an element are elements.
  void ApplyLists() {
    size_t i = 0;
    while (i < pieces.size()) {
      if (!IsChemicalCandidate(i)) {
        ++i;
        continue;
      }
      std::vector<size_t> members = {i};
      size_t k = i;
      while (true) {
        size_t next = k + 1;
        const bool comma = pieces[k].comma_after || (next < pieces.size() && SameToken(k, next) &&
                                                     pieces[next].sep_before == ',');
        bool linked = false;
        if (next < pieces.size() && comma && IsChemicalCandidate(next)) linked = true;
        if (!linked && next < pieces.size() && !SameToken(k, next) && IsConnector(pieces[next]) &&
            next + 1 < pieces.size() && IsChemicalCandidate(next + 1)) {
          ++next;
          linked = true;
        }
        if (!linked) break;
        members.push_back(next);
        k = next;
      }
      if (members.size() >= 2) {
        bool anchored = false;
        for (size_t m : members) {
          const PieceInfo& member = info[m];
          anchored =
              anchored || member.kind == PieceKind::kFormula || member.strong ||
              (member.kind == PieceKind::kSymbol && IsPlainSymbol(ElementAt(member.z).symbol));
        }
        // "Pt and Pd nanoparticles": the noun after the last member is every member's.
        const bool shared_noun = info[members.back()].weak;
        for (size_t m : members) {
          PieceInfo& member = info[m];
          if (member.kind != PieceKind::kSymbol || member.z == 53) continue;  // never "I"
          member.listed = member.listed || anchored;
          member.weak = member.weak || shared_noun;
          if (member.reason.empty()) member.reason = "element list";
        }
      }
      i = members.back() + 1;
    }
  }

  void DecideSymbols() {
    for (size_t i = 0; i < pieces.size(); ++i) {
      PieceInfo& self = info[i];
      if (self.kind != PieceKind::kSymbol || self.consumed) continue;
      const std::string_view symbol = ElementAt(self.z).symbol;
      const bool word_like = IsWordLikeSymbol(symbol);
      const bool exact_case = pieces[i].norm.find(symbol) != std::string::npos;
      if (self.strong) {
        self.accepted = true;
        self.confidence = 0.9;
      } else if (self.listed) {
        self.accepted = true;
        self.confidence = 0.8;
      } else if (self.weak && !word_like) {
        self.accepted = true;
        self.confidence = 0.8;
      } else if (style == TextStyle::kName && self.weak && word_like && symbol.size() == 2) {
        self.accepted = true;  // "In_NP": a name is no sentence
        self.confidence = 0.7;
      } else if (style == TextStyle::kName && exact_case && IsPlainSymbol(symbol)) {
        self.accepted = true;  // "Au_grid3", "Si_wafer": mixed case in a name
        self.confidence = 0.7;
        if (self.reason.empty()) self.reason = "symbol in a name";
      }
    }
  }

  void DecideElementNames() {
    for (size_t i = 0; i < pieces.size(); ++i) {
      PieceInfo& self = info[i];
      if (self.kind != PieceKind::kElementName || self.consumed) continue;
      const std::string_view name = ElementAt(self.z).name;
      const size_t next = NextPiece(i);
      const std::string after = next < pieces.size() ? pieces[next].lower : "";
      static const std::pair<std::string_view, std::string_view> kIdioms[] = {
          {"gold", "standard"},     {"gold", "medal"},  {"silver", "lining"},
          {"silver", "medal"},      {"carbon", "copy"}, {"carbon", "footprint"},
          {"carbon", "neutral"},    {"iron", "out"},    {"tin", "can"},
          {"mercury", "retrograde"}};
      bool idiom = false;
      for (const auto& [word, follower] : kIdioms)
        idiom = idiom || (word == name && after == follower);
      if (idiom) continue;
      // "Mercury Interactive", "Silicon Valley": a capitalised name before another
      // capitalised word is a proper noun.
      if (IsUpper(pieces[i].norm[0]) && next < pieces.size() && IsUpper(pieces[next].norm[0]) &&
          info[next].kind == PieceKind::kNothing) {
        continue;
      }
      if (name == "lead") {
        // "lead to", "leads": a verb unless a material noun follows.
        if (!IsMaterialNoun(after) && after != "halide" && after != "free") continue;
      }
      self.accepted = true;
      self.confidence = 0.9;
      self.reason = "element name";
    }
  }

  // Pieces of one token joined by "/", "@", ":" or "-" that are all chemistry, one of
  // them plainly: "CdSe/ZnS", "Pt/C", "Fe3O4@SiO2", "Pt-Ni", "Ti:sapphire".
  void MatchComposites() {
    if (style != TextStyle::kProse) return;
    size_t i = 0;
    while (i < pieces.size()) {
      size_t last = i;
      while (last + 1 < pieces.size() && SameToken(last, last + 1) &&
             std::string_view("/@:-").find(pieces[last + 1].sep_before) != std::string_view::npos &&
             pieces[last + 1].sep_before != 0) {
        ++last;
      }
      if (last == i) {
        ++i;
        continue;
      }
      bool all_chemical = true;
      bool anchored = false;
      for (size_t k = i; k <= last && all_chemical; ++k) {
        const PieceInfo& p = info[k];
        const bool chemical = !p.consumed && !p.parsed.parts.empty() &&
                              (p.kind == PieceKind::kFormula || p.kind == PieceKind::kSymbol);
        all_chemical = chemical;
        anchored = anchored || p.accepted ||
                   (p.kind == PieceKind::kSymbol && IsPlainSymbol(ElementAt(p.z).symbol));
      }
      if (!all_chemical || !anchored) {
        i = last + 1;
        continue;
      }
      ParsedFormula combined;
      double confidence = 0;
      for (size_t k = i; k <= last; ++k) {
        if (k > i) combined.separators += pieces[k].sep_before;
        combined.parts.push_back(info[k].parsed.parts.front());
        confidence = std::max(confidence, info[k].accepted ? info[k].confidence : 0.8);
      }
      const Formula formula = DescribeFormula(combined);
      ChemistryMention& mention = Emit(i, last, confidence, "composite");
      mention.formula = formula.canonical;
      std::vector<int> elements;
      for (const Part& part : combined.parts) {
        for (int z : PartElements(part)) elements.push_back(z);
      }
      SetElements(mention, elements);
      mention.material_names = formula.material_names;
      mention.concept_ids = formula.concept_ids;
      i = last + 1;
    }
  }

  void EmitAccepted() {
    for (size_t i = 0; i < pieces.size(); ++i) {
      PieceInfo& self = info[i];
      if (self.consumed || !self.accepted) continue;
      ChemistryMention& mention = Emit(i, i, self.confidence, self.reason);
      if (self.kind == PieceKind::kFormula) {
        const Formula formula = DescribeFormula(self.parsed);
        mention.formula = formula.canonical;
        std::vector<int> elements;
        for (const Part& part : self.parsed.parts) {
          for (int z : PartElements(part)) elements.push_back(z);
        }
        SetElements(mention, elements);
        mention.material_names = formula.material_names;
        mention.concept_ids = formula.concept_ids;
      } else {
        mention.formula = self.surface_formula.empty() ? std::string(ElementAt(self.z).symbol)
                                                       : self.surface_formula;
        SetElements(mention, {self.z});
        for (const std::string& name : self.extra_names) AddOnce(mention.material_names, name);
        for (std::string_view id : self.extra_concepts) AddOnce(mention.concept_ids, id);
      }
    }
  }

  void Run() {
    pieces = Tokenise(text, style);
    info.resize(pieces.size());
    MatchVocabulary();
    for (size_t i = 0; i < pieces.size(); ++i) {
      if (info[i].consumed) continue;
      info[i] = style == TextStyle::kProse ? ClassifyExact(pieces[i]) : ClassifyName(pieces[i]);
    }
    MatchCompoundNames();
    for (size_t i = 0; i < pieces.size(); ++i) {
      if (!info[i].consumed && info[i].kind == PieceKind::kSymbol) ApplyContext(i);
    }
    if (style == TextStyle::kProse) ApplyLists();
    DecideSymbols();
    DecideElementNames();
    MatchComposites();
    EmitAccepted();
    std::sort(
        mentions.begin(), mentions.end(),
        [](const ChemistryMention& a, const ChemistryMention& b) { return a.offset < b.offset; });
  }
};

}  // namespace

std::span<const Element> PeriodicTable() { return kElements; }

const Element* ElementBySymbol(std::string_view symbol) {
  const SymbolIndex& symbols = Symbols();
  auto it = symbols.exact.find(symbol);
  return it == symbols.exact.end() ? nullptr : &ElementAt(it->second);
}

const Element* ElementByName(std::string_view name) {
  if (name.size() > 16) return nullptr;
  const SymbolIndex& symbols = Symbols();
  auto it = symbols.by_name.find(Lower(name));
  return it == symbols.by_name.end() ? nullptr : &ElementAt(it->second);
}

Result<Formula> ParseFormula(std::string_view text) {
  if (text.empty()) return Status::InvalidArgument("formula: empty");
  if (text.size() > 256) {
    return Status::InvalidArgument("formula: " + std::to_string(text.size()) +
                                   " bytes is too long for a formula (at most 256)");
  }
  const std::vector<Glyph> glyphs = Decode(text);
  std::string ascii;
  std::vector<size_t> origin;  // byte offset in `text` of each ASCII character
  for (const Glyph& glyph : glyphs) {
    if (glyph.cls == GlyphClass::kSeparator || glyph.ascii == "\x7f") {
      return Status::InvalidArgument("formula: byte " + std::to_string(glyph.begin) +
                                     ": a character that no formula has");
    }
    for (char c : glyph.ascii) {
      ascii += c;
      origin.push_back(glyph.begin);
    }
  }
  ParsedFormula parsed;
  for (const auto& [part_text, separator] : SplitComposite(ascii)) {
    const size_t start = static_cast<size_t>(part_text.data() - ascii.data());
    if (part_text.empty()) {
      const size_t at = start < origin.size() ? origin[start] : text.size();
      return Status::InvalidArgument("formula: byte " + std::to_string(at) +
                                     ": an empty part between separators");
    }
    PartReader reader(part_text, false, 2);
    std::vector<Part> parts = reader.ReadAll();
    if (parts.empty()) {
      const size_t bad = std::min(start + reader.furthest(), ascii.size());
      const size_t at = bad < origin.size() ? origin[bad] : text.size();
      std::string reason = "not an element symbol, count, bracket or charge";
      if (bad < ascii.size() && IsLetter(ascii[bad])) reason = "no element symbol starts here";
      if (bad < ascii.size() && IsDigit(ascii[bad])) reason = "a count written wrongly";
      if (bad >= ascii.size()) reason = "the formula ends too early (an unclosed bracket?)";
      return Status::InvalidArgument("formula: byte " + std::to_string(at) + ": " + reason);
    }
    if (!parsed.parts.empty()) parsed.separators += separator;
    parsed.parts.push_back(std::move(parts.front()));
  }
  return DescribeFormula(parsed);
}

std::vector<ChemistryMention> FindChemistry(std::string_view text, TextStyle style) {
  Finder finder{text, style, {}, {}, {}};
  finder.Run();
  return std::move(finder.mentions);
}

}  // namespace scisearch::nlp
