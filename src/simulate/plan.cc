// The facility plan: instruments, people, proposals, bookings, files and
// papers, all drawn from one seed through simulate::Random.
//
// How a plan is made, and why in this order:
//   1. fixed instruments and a vocabulary of materials (the words on disk);
//   2. people, grouped under PIs; proposals with windows, teams and materials;
//   3. sessions booked inside each proposal's window, whole days per instrument
//      so two bookings never overlap (a day-occupancy table per instrument);
//   4. publications after their proposal's sessions (so file -> paper links
//      follow from dates, as they do in reality);
//   5. files, session by session, each session from its own derived random
//      stream, so that planning is linear in the number of files.
// Every random draw goes through Random, every collection is walked in a fixed
// order (no unordered iteration), so the same options give the same plan.
#include "simulate/plan.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "simulate/random.h"
#include "simulate/writer_input.h"

namespace scisearch::simulate {
namespace {

using formats::Axis;
using formats::DType;
using formats::Mode;

// ---------------------------------------------------------------------------
// Calendar: days since 1970-01-01 in the proleptic Gregorian calendar (DaysFromCivil in
// writer_input.h; the algorithms of H. Hinnant, "chrono-compatible low-level date algorithms").
// Times are local wall-clock seconds since the epoch; the facility has one
// time zone and the instruments write local time.

constexpr int64_t kSecondsPerDay = 86400;

struct CivilDate {
  int year;
  int month;
  int day;
};

CivilDate CivilFromDays(int64_t z) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int day = int(doy - (153 * mp + 2) / 5 + 1);
  const int month = int(mp < 10 ? mp + 3 : mp - 9);
  return {int(yoe + era * 400 + (month <= 2)), month, day};
}

// 0 = Sunday ... 6 = Saturday (1970-01-01 was a Thursday).
int WeekdayOf(int64_t days) { return int(((days % 7) + 11) % 7); }

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

std::string IsoDate(int64_t days) {
  const CivilDate c = CivilFromDays(days);
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%04d-%02d-%02d", c.year, c.month, c.day);
  return buffer;
}

std::string IsoDateTime(int64_t seconds) {
  const int64_t days = FloorDiv(seconds, kSecondsPerDay);
  const int64_t in_day = seconds - days * kSecondsPerDay;
  const CivilDate c = CivilFromDays(days);
  char buffer[48];
  std::snprintf(buffer, sizeof(buffer), "%04d-%02d-%02dT%02d:%02d:%02d", c.year, c.month, c.day,
                int(in_day / 3600), int(in_day / 60 % 60), int(in_day % 60));
  return buffer;
}

// The date forms people type into folder names: 20111013, 2011-10-13, 13Oct11.
std::string TypedDate(int64_t days, int form) {
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const CivilDate c = CivilFromDays(days);
  char buffer[32];
  switch (form) {
    case 1:
      std::snprintf(buffer, sizeof(buffer), "%04d-%02d-%02d", c.year, c.month, c.day);
      break;
    case 2:
      std::snprintf(buffer, sizeof(buffer), "%02d%s%02d", c.day, kMonths[c.month - 1],
                    c.year % 100);
      break;
    default:
      std::snprintf(buffer, sizeof(buffer), "%04d%02d%02d", c.year, c.month, c.day);
  }
  return buffer;
}

// ---------------------------------------------------------------------------
// The materials vocabulary: what the facility's users study, with the words
// they use for it. The first name is the canonical one (it goes into tags).

enum class Category {
  kNanocrystal,
  kMetal,
  kCatalyst,
  kOxide,
  kTwoD,
  kSemiconductor,
  kAlloy,
  kPorous
};
constexpr int kCategoryCount = 8;

struct Material {
  std::string formula;
  std::vector<std::string> names;      // common names; names[0] is canonical
  std::vector<std::string> shorthand;  // what people type in folder and file names
  std::vector<std::string> elements;
  Category category;
  CrystalStructure structure;
  double lattice_nm;
  ParticleShape shape;
  double diameter_nm;
};

const std::vector<Material>& Materials() {
  using C = Category;
  using S = CrystalStructure;
  using P = ParticleShape;
  static const std::vector<Material> kMaterials = {
      // clang-format off
      // formula, names, shorthand, elements, category, structure, a (nm), shape, size (nm)
      {"PbSe", {"lead selenide"},
       {"PbSe", "PbSe NCs", "PbSe QDs", "pbse"},
       {"Pb", "Se"}, C::kNanocrystal, S::kRockSalt, 0.612, P::kCube, 6.0},
      {"PbS", {"lead sulfide"},
       {"PbS", "PbS NCs", "PbS QDs"},
       {"Pb", "S"}, C::kNanocrystal, S::kRockSalt, 0.594, P::kSphere, 5.0},
      {"CdSe", {"cadmium selenide"},
       {"CdSe", "CdSe QDs", "CdSe dots"},
       {"Cd", "Se"}, C::kNanocrystal, S::kWurtzite, 0.430, P::kSphere, 4.0},
      {"CdSe/ZnS", {"core-shell quantum dots", "cadmium selenide", "zinc sulfide"},
       {"CdSe-ZnS", "CdSe@ZnS", "core shell QDs", "CSQD"},
       {"Cd", "Se", "Zn", "S"}, C::kNanocrystal, S::kWurtzite, 0.430, P::kCoreShell, 6.5},
      {"CsPbBr3", {"cesium lead bromide", "halide perovskite"},
       {"CsPbBr3", "CsPbBr3 NCs", "perovskite cubes", "CPB"},
       {"Cs", "Pb", "Br"}, C::kNanocrystal, S::kPerovskite, 0.587, P::kCube, 9.0},
      {"Fe3O4", {"magnetite", "iron oxide"},
       {"Fe3O4", "Fe3O4 NPs", "magnetite", "IONP"},
       {"Fe", "O"}, C::kNanocrystal, S::kFcc, 0.8396, P::kSphere, 10.0},
      {"Au", {"gold", "gold nanoparticles"},
       {"Au NP", "Au NPs", "AuNP", "gold"},
       {"Au"}, C::kMetal, S::kFcc, 0.408, P::kSphere, 5.0},
      {"Ag", {"silver", "silver nanoprisms"},
       {"Ag prisms", "Ag NPr", "Ag triangles"},
       {"Ag"}, C::kMetal, S::kFcc, 0.409, P::kTriangle, 20.0},
      {"Cu", {"copper", "copper nanowires"},
       {"Cu NW", "CuNWs", "Cu wires"},
       {"Cu"}, C::kMetal, S::kFcc, 0.361, P::kRod, 30.0},
      {"Pd", {"palladium", "palladium nanocubes"},
       {"Pd cubes", "Pd NCs", "Pd"},
       {"Pd"}, C::kMetal, S::kFcc, 0.389, P::kCube, 10.0},
      {"Pt", {"platinum", "platinum nanoparticles"},
       {"Pt NPs", "Pt", "PtNP"},
       {"Pt"}, C::kMetal, S::kFcc, 0.392, P::kSphere, 4.0},
      {"Pt/C", {"platinum on carbon", "Pt catalyst"},
       {"Pt-C", "PtC", "Pt-C cat"},
       {"Pt", "C"}, C::kCatalyst, S::kFcc, 0.392, P::kSphere, 2.5},
      {"Pt3Ni", {"platinum nickel", "Pt-Ni octahedra"},
       {"Pt3Ni", "PtNi oct", "PtNi"},
       {"Pt", "Ni"}, C::kCatalyst, S::kFcc, 0.383, P::kTriangle, 8.0},
      {"CeO2", {"ceria", "cerium oxide"},
       {"CeO2", "ceria cubes", "ceria"},
       {"Ce", "O"}, C::kCatalyst, S::kFcc, 0.541, P::kCube, 8.0},
      {"Co3O4", {"cobalt oxide"},
       {"Co3O4", "CoOx"},
       {"Co", "O"}, C::kCatalyst, S::kFcc, 0.808, P::kSphere, 12.0},
      {"TiO2", {"titanium dioxide", "titania", "anatase"},
       {"TiO2", "P25", "anatase"},
       {"Ti", "O"}, C::kCatalyst, S::kFcc, 0.379, P::kSphere, 20.0},
      {"SrTiO3", {"strontium titanate"},
       {"STO", "SrTiO3", "Nb-STO"},
       {"Sr", "Ti", "O"}, C::kOxide, S::kPerovskite, 0.3905, P::kSphere, 0.0},
      {"BaTiO3", {"barium titanate"},
       {"BTO", "BaTiO3"},
       {"Ba", "Ti", "O"}, C::kOxide, S::kPerovskite, 0.400, P::kSphere, 0.0},
      {"LaAlO3", {"lanthanum aluminate"},
       {"LAO", "LAO-STO", "LaAlO3"},
       {"La", "Al", "O"}, C::kOxide, S::kPerovskite, 0.379, P::kSphere, 0.0},
      {"BiFeO3", {"bismuth ferrite"},
       {"BFO", "BiFeO3"},
       {"Bi", "Fe", "O"}, C::kOxide, S::kPerovskite, 0.396, P::kSphere, 0.0},
      {"La0.7Sr0.3MnO3", {"lanthanum strontium manganite"},
       {"LSMO", "LSMO film"},
       {"La", "Sr", "Mn", "O"}, C::kOxide, S::kPerovskite, 0.387, P::kSphere, 0.0},
      {"PbTiO3", {"lead titanate"},
       {"PTO", "PbTiO3", "PTO-STO SL"},
       {"Pb", "Ti", "O"}, C::kOxide, S::kPerovskite, 0.390, P::kSphere, 0.0},
      {"NiO", {"nickel oxide"},
       {"NiO", "NiO film"},
       {"Ni", "O"}, C::kOxide, S::kRockSalt, 0.4177, P::kSphere, 0.0},
      {"MgO", {"magnesium oxide", "periclase"},
       {"MgO", "MgO cubes", "MgO smoke"},
       {"Mg", "O"}, C::kOxide, S::kRockSalt, 0.421, P::kCube, 0.0},
      {"LiCoO2", {"lithium cobalt oxide", "LCO cathode"},
       {"LCO", "LiCoO2", "cathode"},
       {"Li", "Co", "O"}, C::kOxide, S::kHcp, 0.282, P::kSphere, 0.0},
      {"MoS2", {"molybdenum disulfide"},
       {"MoS2", "ML MoS2", "moly"},
       {"Mo", "S"}, C::kTwoD, S::kHcp, 0.316, P::kSphere, 0.0},
      {"WS2", {"tungsten disulfide"},
       {"WS2", "WS2 flake"},
       {"W", "S"}, C::kTwoD, S::kHcp, 0.315, P::kSphere, 0.0},
      {"WSe2", {"tungsten diselenide"},
       {"WSe2", "WSe2 ML"},
       {"W", "Se"}, C::kTwoD, S::kHcp, 0.328, P::kSphere, 0.0},
      {"C", {"graphene"},
       {"graphene", "Gr", "SLG", "BLG"},
       {"C"}, C::kTwoD, S::kHcp, 0.246, P::kSphere, 0.0},
      {"BN", {"hexagonal boron nitride", "hBN"},
       {"hBN", "h-BN", "BN"},
       {"B", "N"}, C::kTwoD, S::kHcp, 0.250, P::kSphere, 0.0},
      {"GaN", {"gallium nitride"},
       {"GaN", "GaN NW", "GaN-AlGaN"},
       {"Ga", "N"}, C::kSemiconductor, S::kWurtzite, 0.319, P::kRod, 40.0},
      {"ZnO", {"zinc oxide"},
       {"ZnO", "ZnO NWs", "ZnO rods"},
       {"Zn", "O"}, C::kSemiconductor, S::kWurtzite, 0.325, P::kRod, 50.0},
      {"Si", {"silicon"},
       {"Si", "Si 110", "Si wafer", "c-Si"},
       {"Si"}, C::kSemiconductor, S::kDiamond, 0.543, P::kSphere, 0.0},
      {"Ge", {"germanium"},
       {"Ge", "Ge NW"},
       {"Ge"}, C::kSemiconductor, S::kDiamond, 0.566, P::kRod, 30.0},
      {"GaAs", {"gallium arsenide"},
       {"GaAs", "GaAs-AlGaAs", "GaAs NW"},
       {"Ga", "As"}, C::kSemiconductor, S::kDiamond, 0.565, P::kRod, 60.0},
      {"InP", {"indium phosphide"},
       {"InP", "InP QDs"},
       {"In", "P"}, C::kSemiconductor, S::kDiamond, 0.587, P::kSphere, 4.0},
      {"316L", {"316L stainless steel", "austenitic stainless steel", "steel"},
       {"316L", "SS316", "316 steel"},
       {"Fe", "Cr", "Ni", "Mo"}, C::kAlloy, S::kFcc, 0.359, P::kSphere, 0.0},
      {"Fe-9Cr-1Mo", {"ferritic-martensitic steel", "T91 steel", "steel"},
       {"T91", "FM steel", "HT9"},
       {"Fe", "Cr", "Mo"}, C::kAlloy, S::kBcc, 0.287, P::kSphere, 0.0},
      {"Ti-6Al-4V", {"titanium alloy", "Ti64"},
       {"Ti64", "Ti-6-4", "Ti6Al4V"},
       {"Ti", "Al", "V"}, C::kAlloy, S::kHcp, 0.295, P::kSphere, 0.0},
      {"AA2024", {"aluminium alloy", "2024 aluminium"},
       {"AA2024", "Al 2024", "Al alloy"},
       {"Al", "Cu", "Mg"}, C::kAlloy, S::kFcc, 0.405, P::kSphere, 0.0},
      {"Inconel 718", {"nickel superalloy", "Inconel"},
       {"IN718", "Inconel", "718"},
       {"Ni", "Cr", "Fe", "Nb"}, C::kAlloy, S::kFcc, 0.359, P::kSphere, 0.0},
      {"ZSM-5", {"zeolite ZSM-5", "zeolite", "MFI"},
       {"ZSM-5", "ZSM5", "MFI zeolite"},
       {"Si", "Al", "O"}, C::kPorous, S::kBcc, 2.0, P::kCube, 300.0},
      {"NaY", {"zeolite Y", "faujasite", "zeolite"},
       {"zeolite Y", "FAU", "NaY"},
       {"Na", "Si", "Al", "O"}, C::kPorous, S::kFcc, 2.43, P::kTriangle, 500.0},
      {"ZIF-8", {"metal-organic framework", "ZIF-8", "MOF"},
       {"ZIF-8", "ZIF8", "MOF"},
       {"Zn", "C", "N"}, C::kPorous, S::kBcc, 1.70, P::kSphere, 150.0},
      // clang-format on
  };
  return kMaterials;
}

std::string_view ElementName(std::string_view symbol) {
  static constexpr std::pair<const char*, const char*> kNames[] = {
      {"Pb", "lead"},      {"Se", "selenium"},  {"S", "sulfur"},     {"Cd", "cadmium"},
      {"Zn", "zinc"},      {"Cs", "cesium"},    {"Br", "bromine"},   {"Fe", "iron"},
      {"O", "oxygen"},     {"Au", "gold"},      {"Ag", "silver"},    {"Cu", "copper"},
      {"Pd", "palladium"}, {"Pt", "platinum"},  {"C", "carbon"},     {"Ni", "nickel"},
      {"Ce", "cerium"},    {"Co", "cobalt"},    {"Ti", "titanium"},  {"Sr", "strontium"},
      {"Ba", "barium"},    {"La", "lanthanum"}, {"Al", "aluminium"}, {"Bi", "bismuth"},
      {"Mn", "manganese"}, {"Mg", "magnesium"}, {"Li", "lithium"},   {"Mo", "molybdenum"},
      {"W", "tungsten"},   {"B", "boron"},      {"N", "nitrogen"},   {"Ga", "gallium"},
      {"Si", "silicon"},   {"Ge", "germanium"}, {"As", "arsenic"},   {"In", "indium"},
      {"P", "phosphorus"}, {"Cr", "chromium"},  {"V", "vanadium"},   {"Nb", "niobium"},
      {"Na", "sodium"},
  };
  for (const auto& [sym, name] : kNames) {
    if (symbol == sym) return name;
  }
  return {};
}

bool HasParticles(Category c) {
  return c == Category::kNanocrystal || c == Category::kMetal || c == Category::kCatalyst;
}

// Words people add to a sample's shorthand, by category ("PbSe w lig", "STO XS").
const std::vector<std::string>& SampleQualifiers(Category c) {
  static const std::array<std::vector<std::string>, kCategoryCount> kQualifiers = {{
      {"w lig", "no lig", "after anneal", "batch 2", "on C", "lig exchange", "as synth",
       "w ligands"},
      {"5nm", "10nm", "on C", "seeds", "overgrowth", "batch B", "washed"},
      {"fresh", "spent", "after 500C", "reduced", "calcined", "on C"},
      {"film", "on STO", "XS", "cross section", "FIB lamella", "plan view", "sample B", "SL"},
      {"monolayer", "flake 3", "on SiN", "suspended", "bilayer", "twisted"},
      {"NW", "110", "XS", "interface", "lamella 2", "QW"},
      {"fracture surface", "polished", "etched", "weld", "as received", "after creep",
       "irradiated"},
      {"calcined", "low dose", "crystal 2", "as made", "activated"},
  }};
  return kQualifiers[int(c)];
}

// ---------------------------------------------------------------------------
// Instruments and what they write.

enum InstrumentIndex { kTitan = 0, kTalos = 1, kHelios = 2, kCamera4d = 3, kInstrumentCount = 4 };

struct InstrumentInfo {
  Instrument instrument;
  int64_t first_day;  // in service from
  const char* shared_account;
};

std::vector<InstrumentInfo> InstrumentTable() {
  return {
      {{"TitanX", "FEI Titan", "tem"}, DaysFromCivil(2011, 1, 3), "SUPERVISOR"},
      {{"Talos", "Talos F200X", "tem"}, DaysFromCivil(2016, 6, 1), "user"},
      {{"Helios-SEM", "FEI Helios", "sem"}, DaysFromCivil(2012, 3, 1), "supervisor"},
      {{"4DCamera", "TEAM 0.5", "4dstem"}, DaysFromCivil(2019, 1, 14), "ncem"},
  };
}

// How likely a proposal of each category is to book each instrument.
constexpr double kInstrumentAffinity[kCategoryCount][kInstrumentCount] = {
    {0.40, 0.25, 0.15, 0.20}, {0.35, 0.25, 0.20, 0.20}, {0.35, 0.25, 0.25, 0.15},
    {0.45, 0.20, 0.10, 0.25}, {0.35, 0.20, 0.10, 0.35}, {0.35, 0.25, 0.20, 0.20},
    {0.15, 0.10, 0.65, 0.10}, {0.35, 0.25, 0.20, 0.20},
};

const int64_t kLastDay = DaysFromCivil(2024, 12, 31);
const int64_t kFirstDay = DaysFromCivil(2011, 1, 3);

// ---------------------------------------------------------------------------
// People.

constexpr const char* kFirstNames[] = {
    "Jane",   "Peter",  "Colin",  "Mary", "Andrew", "Wei",   "Priya",  "Tomas", "Laura",  "Karen",
    "Hiro",   "Sofia",  "Daniel", "Yuki", "Ahmed",  "Elena", "Marco",  "Chen",  "Olga",   "Rahul",
    "Sarah",  "James",  "Lucia",  "Ben",  "Mina",   "Jonas", "Ana",    "Ravi",  "Emma",   "David",
    "Fatima", "Lars",   "Mei",    "Noah", "Isabel", "Kenji", "Julia",  "Omar",  "Grace",  "Stefan",
    "Aisha",  "Victor", "Hannah", "Li",   "Mateo",  "Nadia", "Paul",   "Rosa",  "Samuel", "Tara",
    "Ulrich", "Vera",   "Xin",    "Yara", "Zoe",    "Felix", "Ingrid", "Kofi",  "Leila",  "Pedro"};
constexpr const char* kLastNames[] = {
    "Ercius",    "Ophus",    "Minor",   "Kisielowski", "Dahmen",   "Ciston",   "Radmilovic",
    "Smith",     "Nguyen",   "Garcia",  "Chen",        "Muller",   "Rossi",    "Kim",
    "Tanaka",    "Patel",    "Novak",   "Schmidt",     "Ivanova",  "Larsen",   "Okafor",
    "Haddad",    "Moreau",   "Silva",   "Kowalski",    "Yamamoto", "Fischer",  "Lopez",
    "Andersson", "Wang",     "Zhang",   "Hughes",      "Brennan",  "Duarte",   "Sato",
    "Petrov",    "Becker",   "Rahman",  "Olsen",       "Ferreira", "Kaur",     "Lindqvist",
    "Morales",   "Watanabe", "Park",    "Singh",       "Costa",    "Weber",    "Hoffmann",
    "Bauer",     "Jensen",   "Romano",  "Nakamura",    "Ali",      "Oliveira", "Kovacs",
    "Meyer",     "Suzuki",   "Torres",  "Dubois",      "Herrera",  "Lee",      "Murphy",
    "Walsh",     "Ortiz",    "Popescu", "Horvath",     "Yilmaz",   "Eriksen",  "Mendes"};
constexpr const char* kInstitutions[] = {"Lawrence Berkeley National Laboratory",
                                         "UC Berkeley",
                                         "Stanford University",
                                         "MIT",
                                         "Cornell University",
                                         "University of Michigan",
                                         "Northwestern University",
                                         "Caltech",
                                         "UCLA",
                                         "University of Illinois Urbana-Champaign",
                                         "Georgia Tech",
                                         "ETH Zurich",
                                         "University of Oxford",
                                         "KAIST",
                                         "University of Toronto",
                                         "Argonne National Laboratory",
                                         "Oak Ridge National Laboratory",
                                         "Intel Corporation"};

template <typename T, size_t N>
constexpr size_t CountOf(const T (&)[N]) {
  return N;
}

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  }
  return out;
}

std::string Upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = char(c - 'a' + 'A');
  }
  return out;
}

// How one person types: each user is consistent, users differ.
struct TypingStyle {
  int date_form = 0;         // 0: "20111013 - words", 1: "2011-10-13 words", 2: "13Oct11 words",
                             // 3: "20111013_words"
  int case_form = 0;         // 0: as typed, 1: lower case, 2: upper case
  int dm_pattern = 0;        // how DM files are named
  int tif_pattern = 0;       // how SEM images are named
  bool underscores = false;  // "Au_NP_5nm" rather than "Au NP 5nm"
};

struct PersonInfo {
  Person person;
  std::string surname;
  TypingStyle style;
  int pi = -1;  // index of this person's PI (self for a PI)
};

// One typo: two neighbouring letters swapped, a letter dropped or doubled.
std::string WithTypo(std::string text, Random& rng) {
  if (text.size() < 4) return text;
  const size_t at = 1 + rng.Below(text.size() - 2);
  switch (rng.Below(3)) {
    case 0:
      std::swap(text[at], text[at + 1]);
      break;
    case 1:
      text.erase(at, 1);
      break;
    default:
      text.insert(at, 1, text[at]);
  }
  return text;
}

// What a person types for `words`: their case habit, separators and ~5% typos.
std::string Typed(std::string_view words, const TypingStyle& style, Random& rng) {
  std::string out = style.case_form == 1   ? Lower(words)
                    : style.case_form == 2 ? Upper(words)
                                           : std::string(words);
  if (style.underscores) std::replace(out.begin(), out.end(), ' ', '_');
  if (rng.Chance(0.05)) out = WithTypo(std::move(out), rng);
  return out;
}

// A path component from typed text: no separators or characters file systems refuse.
std::string SafeComponent(std::string text) {
  for (char& c : text) {
    if (c == '/' || c == '\\' || c == ':' || c == '*' || c == '?' || c == '"' || c == '<' ||
        c == '>' || c == '|' || static_cast<unsigned char>(c) < 0x20) {
      c = '-';
    }
  }
  while (!text.empty() && (text.back() == ' ' || text.back() == '.')) text.pop_back();
  while (!text.empty() && text.front() == ' ') text.erase(0, 1);
  if (text.empty()) text = "sample";
  return text;
}

// ---------------------------------------------------------------------------
// Acquisitions: what the user did at the instrument for one file.

enum class Acq {
  kStem,              // one HAADF image
  kStemMulti,         // HAADF + BF (+ DF2) at once
  kTem,               // CCD image: HRTEM or bright field
  kDiffraction,       // SAED / nanobeam pattern
  kEds,               // one EDS spectrum
  kEels,              // one EELS spectrum
  kSpectrumImage,     // EDS map with its HAADF survey
  kSeries,            // a time series of images
  kSearch,            // low-magnification search/preview image
  kTomography,        // tilt series (MRC)
  kSem,               // SEM image
  k4dStem,            // diffraction pattern per scan position
  kDiffractionStack,  // stack of diffraction frames (MRC, 4D camera)
};
constexpr int kAcqCount = 13;

// Relative frequency of acquisitions on a TEM, before the category's adjustments.
constexpr double kTemAcqBase[kAcqCount] = {0.26, 0.06, 0.16, 0.14, 0.08, 0.06, 0.06,
                                           0.05, 0.08, 0.02, 0.0,  0.0,  0.0};

std::array<double, kAcqCount> AcqWeights(int instrument, Category category) {
  std::array<double, kAcqCount> w{};
  if (instrument == kHelios) {
    w[int(Acq::kSem)] = 1.0;
    return w;
  }
  if (instrument == kCamera4d) {
    w[int(Acq::k4dStem)] = 0.8;
    w[int(Acq::kDiffractionStack)] = 0.2;
    return w;
  }
  for (int i = 0; i < kAcqCount; ++i) w[i] = kTemAcqBase[i];
  switch (category) {
    case Category::kOxide:
    case Category::kTwoD:
      w[int(Acq::kEels)] *= 2.0;
      w[int(Acq::kStem)] *= 1.3;
      w[int(Acq::kSearch)] *= 0.5;
      break;
    case Category::kNanocrystal:
    case Category::kMetal:
    case Category::kCatalyst:
      w[int(Acq::kTem)] *= 1.3;
      w[int(Acq::kSearch)] *= 1.5;
      w[int(Acq::kEels)] *= 0.5;
      break;
    case Category::kAlloy:
      w[int(Acq::kDiffraction)] *= 1.5;
      w[int(Acq::kEds)] *= 1.5;
      break;
    case Category::kPorous:
      w[int(Acq::kStem)] *= 0.7;
      w[int(Acq::kTem)] *= 1.3;
      w[int(Acq::kEels)] *= 0.3;
      break;
    case Category::kSemiconductor:
      break;
  }
  if (instrument == kTalos) {
    // A Talos F200X has Super-X EDS but no energy filter.
    w[int(Acq::kEds)] += w[int(Acq::kEels)];
    w[int(Acq::kEels)] = 0.0;
  }
  return w;
}

template <size_t N>
int PickWeighted(const std::array<double, N>& weights, Random& rng) {
  double total = 0.0;
  for (double w : weights) total += w;
  double x = rng.Uniform() * total;
  for (size_t i = 0; i < N; ++i) {
    if (x < weights[i]) return int(i);
    x -= weights[i];
  }
  for (size_t i = N; i-- > 0;) {
    if (weights[i] > 0.0) return int(i);
  }
  return 0;
}

// Magnifications as the instruments step them: 1, 1.3, 1.8, 2.55, 3.6, 5.1, 7.2 x 10^k.
double SnapToMagnificationStep(double value) {
  static constexpr double kSteps[] = {1.0, 1.3, 1.8, 2.55, 3.6, 5.1, 7.2, 10.0};
  const double decade = std::pow(10.0, std::floor(std::log10(value)));
  const double mantissa = value / decade;
  double best = kSteps[0];
  for (double step : kSteps) {
    if (std::fabs(std::log(step / mantissa)) < std::fabs(std::log(best / mantissa))) best = step;
  }
  // Rounded to whole numbers, as the instruments display them (2.55 * 1e5 is not
  // exactly 255000 in binary).
  return decade >= 1.0 ? std::round(best * decade) : best * decade;
}

// Camera lengths (mm) of a TEM's diffraction series.
double SnapToCameraLength(double mm) {
  static constexpr double kLengths[] = {20,  25,  33,  42,  52,  66,  84,   105,  135,  170, 210,
                                        265, 330, 420, 520, 660, 840, 1050, 1350, 1700, 2100};
  double best = kLengths[0];
  for (double l : kLengths) {
    if (std::fabs(std::log(l / mm)) < std::fabs(std::log(best / mm))) best = l;
  }
  return best;
}

// Relativistic electron wavelength in metres for an accelerating voltage in kV.
double ElectronWavelengthM(double kv) {
  const double volts = kv * 1000.0;
  return 1.22639e-9 / std::sqrt(volts * (1.0 + 0.97845e-6 * volts));
}

std::string MagnificationText(double mag) {
  char buffer[32];
  if (mag >= 1e6) {
    std::snprintf(buffer, sizeof(buffer), "%.3g Mx", mag / 1e6);
  } else if (mag >= 1e3) {
    std::snprintf(buffer, sizeof(buffer), "%.3g kx", mag / 1e3);
  } else {
    std::snprintf(buffer, sizeof(buffer), "%.3g x", mag);
  }
  return buffer;
}

std::string Padded(int64_t n, int width) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%0*lld", width, static_cast<long long>(n));
  return buffer;
}

std::string ClockText(int64_t seconds, char separator, bool with_seconds) {
  const int64_t in_day = seconds - FloorDiv(seconds, kSecondsPerDay) * kSecondsPerDay;
  char buffer[32];
  if (with_seconds) {
    std::snprintf(buffer, sizeof(buffer), "%02d%c%02d%c%02d", int(in_day / 3600), separator,
                  int(in_day / 60 % 60), separator, int(in_day % 60));
  } else {
    std::snprintf(buffer, sizeof(buffer), "%02d%02d", int(in_day / 3600), int(in_day / 60 % 60));
  }
  return buffer;
}

void AddTag(std::vector<std::string>& tags, std::string tag) {
  if (std::find(tags.begin(), tags.end(), tag) == tags.end()) tags.push_back(std::move(tag));
}

// ---------------------------------------------------------------------------
// The planner: owns the partially built plan and the tables the stages share.

struct ProposalInfo {
  std::vector<int> materials;    // indices into Materials()
  std::vector<int> instruments;  // booked instruments, by preference
  int64_t first_day = 0, last_day = 0;
  std::vector<int> sessions;      // indices into plan.sessions, by start time
  std::vector<int> publications;  // indices into plan.publications
};

struct SessionInfo {
  int proposal = 0;
  int instrument = 0;
  int user = 0;                // index into people
  int64_t start = 0, end = 0;  // seconds
  double beam_kev = 200.0;
  int focus_material = 0;  // index into Materials()
  int64_t files = 0;
};

class Planner {
 public:
  explicit Planner(const PlanOptions& options)
      : options_(options), instruments_(InstrumentTable()) {}

  FacilityPlan Make() {
    for (const InstrumentInfo& info : instruments_) plan_.instruments.push_back(info.instrument);
    MakePeople();
    MakeProposals();
    MakeSessions();
    MakePublications();
    MakeFiles();
    return std::move(plan_);
  }

 private:
  uint64_t Seed(std::string_view label, uint64_t index = 0) const {
    return Random::Derive(options_.seed, label, index);
  }

  void MakePeople();
  void MakeProposals();
  void MakeSessions();
  void MakePublications();
  void MakeFiles();
  void PlanSessionFiles(int session_index, int64_t first_file_index);
  std::string SessionNotes(const SessionInfo& s, bool ended_early, Random& rng) const;

  const PlanOptions& options_;
  std::vector<InstrumentInfo> instruments_;
  FacilityPlan plan_;
  std::vector<PersonInfo> people_;
  std::vector<int> pis_;  // indices into people_
  std::vector<ProposalInfo> proposal_info_;
  std::vector<SessionInfo> session_info_;
};

void Planner::MakePeople() {
  Random rng(Seed("people"));
  // ~20 people for a demo, up to 60 for a million files.
  const double scale = std::log10(double(std::max<int64_t>(options_.files, 1)));
  const int count = std::clamp(int(20 + 40 * scale / 6.0), 20, 60);
  const int pi_count = std::max(3, count / 5);

  std::vector<int> surnames(CountOf(kLastNames));
  for (size_t i = 0; i < surnames.size(); ++i) surnames[i] = int(i);
  // Fisher-Yates with our generator: distinct surnames for everyone (a PI's
  // surname names a folder, so PIs must not share one).
  for (size_t i = surnames.size() - 1; i > 0; --i) {
    std::swap(surnames[i], surnames[rng.Below(i + 1)]);
  }
  std::unordered_set<std::string> ids;
  for (int i = 0; i < count; ++i) {
    PersonInfo p;
    const std::string first = kFirstNames[rng.Below(CountOf(kFirstNames))];
    p.surname = kLastNames[surnames[size_t(i) % surnames.size()]];
    p.person.name = first + " " + p.surname;
    std::string id = Lower(first.substr(0, 1) + p.surname);
    for (int k = 2; ids.count(id); ++k) id = Lower(first.substr(0, 1) + p.surname) + char('0' + k);
    ids.insert(id);
    p.person.id = id;
    p.style.date_form = int(rng.Below(100)) < 50 ? 0 : int(1 + rng.Below(3));
    const uint64_t c = rng.Below(100);
    p.style.case_form = c < 80 ? 0 : c < 92 ? 1 : 2;
    p.style.dm_pattern = int(rng.Below(4));
    p.style.tif_pattern = int(rng.Below(4));
    p.style.underscores = rng.Chance(0.25);
    if (i < pi_count) {
      p.pi = i;
      p.person.institution = kInstitutions[rng.Below(CountOf(kInstitutions))];
      pis_.push_back(i);
    } else {
      // Students and postdocs work for one PI, at the PI's institution mostly.
      p.pi = pis_[rng.Below(pis_.size())];
      p.person.institution = rng.Chance(0.85) ? people_[size_t(p.pi)].person.institution
                                              : kInstitutions[rng.Below(CountOf(kInstitutions))];
    }
    people_.push_back(std::move(p));
  }
  for (const PersonInfo& p : people_) plan_.people.push_back(p.person);
}

std::string JoinNames(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += i + 1 == items.size() ? " and " : ", ";
    out += items[i];
  }
  return out;
}

// "PbSe (lead selenide)" for the abstracts; names that equal the formula stay once.
std::string FormulaAndName(const Material& m) {
  if (Lower(m.names[0]) == Lower(m.formula)) return m.formula;
  return m.formula + " (" + m.names[0] + ")";
}

void Planner::MakeProposals() {
  Random rng(Seed("proposals"));
  const std::vector<Material>& materials = Materials();
  const int64_t sessions_wanted = std::clamp<int64_t>((options_.files + 29) / 30, 1, 5000);
  const int64_t proposal_count = std::clamp<int64_t>((sessions_wanted + 3) / 4, 1, 1200);
  std::vector<int> per_year(2030, 0);
  for (int64_t i = 0; i < proposal_count; ++i) {
    ProposalInfo info;
    Proposal p;
    const int primary = int(rng.Below(materials.size()));
    info.materials.push_back(primary);
    const Category category = materials[size_t(primary)].category;
    const int extra = int(rng.Below(3));
    for (int k = 0; k < extra; ++k) {
      const int other = int(rng.Below(materials.size()));
      if (materials[size_t(other)].category == category &&
          std::find(info.materials.begin(), info.materials.end(), other) == info.materials.end()) {
        info.materials.push_back(other);
      }
    }
    info.first_day =
        kFirstDay + int64_t(rng.Below(uint64_t(DaysFromCivil(2023, 10, 1) - kFirstDay)));
    info.last_day = std::min(kLastDay, info.first_day + rng.Between(300, 730));
    std::array<double, kInstrumentCount> affinity{};
    for (int k = 0; k < kInstrumentCount; ++k) affinity[k] = kInstrumentAffinity[int(category)][k];
    const int booked = 1 + int(rng.Below(3));
    for (int k = 0; k < booked; ++k) {
      const int instrument = PickWeighted(affinity, rng);
      affinity[size_t(instrument)] = 0.0;
      info.instruments.push_back(instrument);
      if (std::all_of(affinity.begin(), affinity.end(), [](double w) { return w == 0.0; })) break;
    }

    const int pi = pis_[rng.Below(pis_.size())];
    p.pi = people_[size_t(pi)].person.id;
    p.team.push_back(p.pi);
    std::vector<int> group;
    for (size_t k = 0; k < people_.size(); ++k) {
      if (people_[k].pi == pi && int(k) != pi) group.push_back(int(k));
    }
    const size_t wanted = 1 + rng.Below(3);
    for (size_t k = 0; k < group.size() && p.team.size() <= wanted; ++k) {
      const int member = group[(k + rng.Below(group.size())) % group.size()];
      if (std::find(p.team.begin(), p.team.end(), people_[size_t(member)].person.id) ==
          p.team.end()) {
        p.team.push_back(people_[size_t(member)].person.id);
      }
    }
    if (rng.Chance(0.2)) {  // a collaborator from another group
      const std::string& other = people_[rng.Below(people_.size())].person.id;
      if (std::find(p.team.begin(), p.team.end(), other) == p.team.end()) p.team.push_back(other);
    }

    const CivilDate start = CivilFromDays(info.first_day);
    p.id = "P-" + std::to_string(start.year) + "-" + Padded(++per_year[size_t(start.year)], 4);
    p.start_date = IsoDate(info.first_day);
    // Proposals end at the end of their allocation period, after the last booking.
    p.end_date = IsoDate(info.last_day + rng.Between(0, 120));
    p.release_date = IsoDate(info.last_day + rng.Between(365, 730));
    for (int m : info.materials) p.materials.push_back(materials[size_t(m)].formula);

    // Title and abstract in the proposers' words.
    const Material& m = materials[size_t(primary)];
    std::vector<std::string> formulas, named;
    for (int k : info.materials) {
      formulas.push_back(materials[size_t(k)].formula);
      named.push_back(FormulaAndName(materials[size_t(k)]));
    }
    const std::string& short_name = m.shorthand[0];
    const std::string formula_list = JoinNames(formulas);
    switch (category) {
      case Category::kNanocrystal:
        p.title = "Surface structure and ligand binding of " + formula_list + " nanocrystals";
        p.abstract = "We will image colloidal " + JoinNames(named) +
                     " nanocrystals with and without ligands by aberration-corrected HAADF-STEM "
                     "and HRTEM, to resolve facets, the nanocrystal surface and how " +
                     short_name + " particles attach during superlattice assembly.";
        break;
      case Category::kMetal:
        p.title = "Shape-controlled " + m.names[0] + " nanoparticles for plasmonics";
        p.abstract = "Shape control of " + JoinNames(named) +
                     " nanoparticles depends on twinning and surface facets. We will use "
                     "HAADF-STEM, electron diffraction and EDS to relate the growth of " +
                     short_name + " to their optical response.";
        break;
      case Category::kCatalyst:
        p.title = "Atomic structure of " + formula_list + " catalysts before and after reaction";
        p.abstract = "Supported " + JoinNames(named) +
                     " catalysts lose activity by sintering. We propose HAADF-STEM and STEM-EDS "
                     "of fresh and spent " +
                     short_name +
                     " to follow particle size distributions and surface restructuring.";
        break;
      case Category::kOxide:
        p.title = "Interfaces and defects in " + formula_list + " oxide heterostructures";
        p.abstract = "Epitaxial " + JoinNames(named) +
                     " films show interface conductivity and polar distortions. We will map "
                     "cation positions by atomic-resolution HAADF-STEM and the oxygen and "
                     "transition-metal edges by EELS across the " +
                     short_name + " interface.";
        break;
      case Category::kTwoD:
        p.title = "Point defects and grain boundaries in monolayer " + formula_list;
        p.abstract = "Two-dimensional " + JoinNames(named) +
                     " hosts vacancies and grain boundaries that control transport. Low-voltage "
                     "HAADF-STEM and 4D-STEM of suspended " +
                     short_name + " will identify defect structures with single-atom sensitivity.";
        break;
      case Category::kSemiconductor:
        p.title = "Strain and composition in " + formula_list + " nanostructures";
        p.abstract = "We will measure strain and composition in " + JoinNames(named) +
                     " nanowires and quantum wells by HAADF-STEM, nanobeam diffraction and "
                     "EDS, relating " +
                     short_name + " interfaces to device performance.";
        break;
      case Category::kAlloy:
        p.title = "Microstructure of " + formula_list + " after processing and irradiation";
        p.abstract = "Grain structure, precipitates and dislocations in " + JoinNames(named) +
                     " govern mechanical properties. SEM of fracture surfaces, electron "
                     "diffraction and EDS of " +
                     short_name + " lamellae will relate them.";
        break;
      case Category::kPorous:
        p.title = "Low-dose imaging of " + formula_list + " frameworks";
        p.abstract = "Beam-sensitive " + JoinNames(named) +
                     " frameworks need low-dose methods. We will use low-dose HRTEM, "
                     "electron diffraction and 4D-STEM to image pores and defects in " +
                     short_name + " crystals.";
        break;
    }
    plan_.proposals.push_back(std::move(p));
    proposal_info_.push_back(std::move(info));
  }
}

std::string Planner::SessionNotes(const SessionInfo& s, bool ended_early, Random& rng) const {
  const Material& m = Materials()[size_t(s.focus_material)];
  const std::string& sample = m.shorthand[rng.Below(m.shorthand.size())];
  const std::vector<std::string>& quals = SampleQualifiers(m.category);
  const std::string sample_words = sample + " " + quals[rng.Below(quals.size())];
  std::vector<std::string> parts;
  if (ended_early) {
    static const std::vector<std::string> kFaults = {
        "filament issues, ended early", "gun vacuum fault, ended early",
        "HT tripped twice, gave up", "stage stuck, ended early",
        "chiller alarm, session ended early"};
    parts.push_back(kFaults[rng.Below(kFaults.size())]);
  }
  if (s.instrument == kHelios) {
    static const std::vector<std::string> kSem = {
        "SE imaging of {s}",  "{s} charging, coated w C", "BSE + SE of {s}, ok",
        "low kV imaging {s}", "FIB lamella prep {s}",     "{s}: images at 5kV and 15kV"};
    parts.push_back(kSem[rng.Below(kSem.size())]);
  } else if (s.instrument == kCamera4d) {
    static const std::vector<std::string> k4d = {
        "4D scans of {s}", "4D camera, {s}, dark ref taken", "nanobeam 4D of {s}, good",
        "{s} 4D-STEM, sync issues at start", "strain maps {s}"};
    parts.push_back(k4d[rng.Below(k4d.size())]);
  } else {
    static const std::vector<std::string> kTem = {"aligned, HAADF of {s}",
                                                  "tuned C3, nice ronchigram, HAADF {s}",
                                                  "HRTEM + SAED of {s}",
                                                  "EDS maps of {s}",
                                                  "{s}: lots of contamination, plasma cleaned",
                                                  "EELS of {s}, energy res ok",
                                                  "HAADF + EDS {s}, good",
                                                  "{s} beam damage fast, low dose",
                                                  "tomo tilt series {s}",
                                                  "alignment took forever, some HAADF of {s}"};
    parts.push_back(kTem[rng.Below(kTem.size())]);
  }
  if (rng.Chance(0.3)) {
    static const std::vector<std::string> kExtras = {
        "drift bad in the afternoon",
        "cold trap warm",
        "vacuum fault in the morning",
        "training new user",
        "LN2 refilled",
        "sample \"B2\" cracked during loading",
        "stage drift ok after 1h",
        "good session",
        "autoloader jammed once",
        "note: pixel size cal off?\nchecked w Au cross grating"};
    parts.push_back(kExtras[rng.Below(kExtras.size())]);
  }
  if (rng.Chance(0.08)) return ended_early ? parts.front() : "";
  std::string text;
  const char* joiner = rng.Chance(0.5) ? ", " : "; ";
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) text += joiner;
    text += parts[i];
  }
  for (size_t at = text.find("{s}"); at != std::string::npos; at = text.find("{s}")) {
    text.replace(at, 3, sample_words);
  }
  return text;
}

void Planner::MakeSessions() {
  Random rng(Seed("sessions"));
  const int64_t sessions_wanted = std::clamp<int64_t>((options_.files + 29) / 30, 1, 5000);
  const int64_t days = kLastDay + 2 - kFirstDay;
  std::vector<std::vector<uint8_t>> occupied(kInstrumentCount, std::vector<uint8_t>(size_t(days)));
  const size_t proposal_count = proposal_info_.size();

  // Sessions per proposal: every proposal gets one, the rest go by weight.
  std::vector<double> weights(proposal_count);
  double total = 0.0;
  for (double& w : weights) total += (w = std::exp(rng.Normal(0.0, 0.6)));
  std::vector<int64_t> per_proposal(proposal_count, 1);
  int64_t assigned = int64_t(proposal_count);
  for (size_t i = 0; i < proposal_count; ++i) {
    const int64_t extra =
        int64_t(double(sessions_wanted - int64_t(proposal_count)) * weights[i] / total);
    per_proposal[i] += std::max<int64_t>(extra, 0);
    assigned += std::max<int64_t>(extra, 0);
  }
  for (size_t i = 0; assigned < sessions_wanted; i = (i + 1) % proposal_count, ++assigned) {
    ++per_proposal[i];
  }

  struct Booked {
    SessionInfo info;
    bool ended_early;
  };
  std::vector<Booked> booked;
  booked.reserve(size_t(sessions_wanted));
  for (size_t p = 0; p < proposal_count; ++p) {
    const ProposalInfo& info = proposal_info_[p];
    const Proposal& proposal = plan_.proposals[p];
    for (int64_t k = 0; k < per_proposal[p]; ++k) {
      // Instruments in service during the window, in the proposal's order;
      // the TEM is the fallback every proposal can use.
      std::vector<int> candidates;
      for (int instrument : info.instruments) {
        if (instruments_[size_t(instrument)].first_day <= info.last_day)
          candidates.push_back(instrument);
      }
      if (std::find(candidates.begin(), candidates.end(), int(kTitan)) == candidates.end()) {
        candidates.push_back(kTitan);
      }
      const int first_choice = candidates[rng.Below(candidates.size())];
      const int length = rng.Chance(0.7) ? 1 : rng.Chance(0.6) ? 2 : 3;
      const bool overnight = length == 1 && rng.Chance(0.1);
      const int span = overnight ? 2 : length;
      const int64_t want = info.first_day + rng.Between(0, info.last_day - info.first_day);
      bool placed = false;
      // The chosen instrument first, then the others when it is fully booked.
      std::vector<int> order = {first_choice};
      for (int c : candidates) {
        if (c != first_choice) order.push_back(c);
      }
      for (size_t attempt = 0; attempt < order.size() && !placed; ++attempt) {
        const int instrument = order[attempt];
        const int64_t low = std::max(info.first_day, instruments_[size_t(instrument)].first_day);
        const int64_t high = info.last_day - span + 1;
        if (low > high) continue;
        std::vector<uint8_t>& used = occupied[size_t(instrument)];
        auto free_at = [&](int64_t day) {
          for (int d = 0; d < span; ++d) {
            if (used[size_t(day + d - kFirstDay)]) return false;
          }
          // Bookings start on weekdays, mostly.
          const int weekday = WeekdayOf(day);
          return !(weekday == 0 || weekday == 6) || rng.Chance(0.05);
        };
        int64_t day = std::clamp(want, low, high);
        // Probe outwards from the wanted day: nearest free slot inside the window.
        int64_t found = -1;
        for (int64_t offset = 0; day - offset >= low || day + offset <= high; ++offset) {
          if (day + offset <= high && free_at(day + offset)) {
            found = day + offset;
            break;
          }
          if (offset > 0 && day - offset >= low && free_at(day - offset)) {
            found = day - offset;
            break;
          }
        }
        if (found < 0) continue;
        for (int d = 0; d < span; ++d) used[size_t(found + d - kFirstDay)] = 1;
        Booked b;
        SessionInfo& s = b.info;
        s.proposal = int(p);
        s.instrument = instrument;
        // Students run most sessions; the PI now and then.
        const std::string& user = proposal.team.size() > 1 && rng.Chance(0.85)
                                      ? proposal.team[1 + rng.Below(proposal.team.size() - 1)]
                                      : proposal.team[0];
        for (size_t u = 0; u < people_.size(); ++u) {
          if (people_[u].person.id == user) s.user = int(u);
        }
        b.ended_early = rng.Chance(0.05);
        if (overnight) {
          s.start = found * kSecondsPerDay + rng.Between(17 * 3600, 20 * 3600);
          s.end = (found + 1) * kSecondsPerDay + rng.Between(6 * 3600, 9 * 3600);
        } else {
          s.start = found * kSecondsPerDay + rng.Between(8 * 3600, 10 * 3600 + 1800);
          s.end = (found + length - 1) * kSecondsPerDay + rng.Between(16 * 3600, 23 * 3600);
        }
        if (b.ended_early) s.end = std::min(s.end, s.start + rng.Between(2 * 3600, 4 * 3600));
        s.start -= s.start % 60;  // bookings are in whole minutes
        s.end -= s.end % 60;
        switch (instrument) {
          case kTitan: {
            static constexpr double kKv[] = {300, 200, 80, 120};
            s.beam_kev = kKv[PickWeighted(std::array<double, 4>{0.5, 0.15, 0.3, 0.05}, rng)];
            break;
          }
          case kTalos:
            s.beam_kev = rng.Chance(0.9) ? 200.0 : 80.0;
            break;
          case kCamera4d: {
            static constexpr double kKv[] = {300, 200, 80};
            s.beam_kev = kKv[PickWeighted(std::array<double, 3>{0.4, 0.3, 0.3}, rng)];
            break;
          }
          default:
            s.beam_kev = 5.0;  // SEM: chosen per image
        }
        s.focus_material = info.materials[rng.Below(info.materials.size())];
        booked.push_back(std::move(b));
        placed = true;
      }
    }
  }
  // The log is in time order; ties cannot happen on one instrument.
  std::sort(booked.begin(), booked.end(), [](const Booked& a, const Booked& b) {
    return a.info.start != b.info.start ? a.info.start < b.info.start
                                        : a.info.instrument < b.info.instrument;
  });
  for (const Booked& b : booked) {
    const SessionInfo& s = b.info;
    Session session;
    const InstrumentInfo& instrument = instruments_[size_t(s.instrument)];
    session.id =
        instrument.instrument.id + "-" + TypedDate(FloorDiv(s.start, kSecondsPerDay), 0) + "-1";
    session.instrument = instrument.instrument.id;
    session.user = people_[size_t(s.user)].person.id;
    session.proposal = plan_.proposals[size_t(s.proposal)].id;
    session.pi = plan_.proposals[size_t(s.proposal)].pi;
    session.start = IsoDateTime(s.start);
    session.end = IsoDateTime(s.end);
    Random notes_rng(Seed("notes", plan_.sessions.size()));
    session.notes = SessionNotes(s, b.ended_early, notes_rng);
    proposal_info_[size_t(s.proposal)].sessions.push_back(int(plan_.sessions.size()));
    plan_.sessions.push_back(std::move(session));
    session_info_.push_back(s);
  }
}

struct Journal {
  const char* doi_prefix;
  int style;  // how the journal numbers its DOIs
};

void Planner::MakePublications() {
  Random rng(Seed("publications"));
  static constexpr Journal kJournals[] = {
      {"10.1021/acs.nanolett.", 0}, {"10.1021/acsnano.", 0},    {"10.1038/s41467-", 1},
      {"10.1103/PhysRevB.", 2},     {"10.1016/j.ultramic.", 3}, {"10.1017/S14319276", 4},
      {"10.1002/adma.", 5},         {"10.1038/s41563-", 1},     {"10.1021/acs.chemmater.", 0}};
  const std::vector<Material>& materials = Materials();
  std::unordered_set<std::string> dois;
  for (size_t p = 0; p < proposal_info_.size(); ++p) {
    ProposalInfo& info = proposal_info_[p];
    if (info.sessions.empty() || !rng.Chance(0.4)) continue;
    const int papers = 1 + int(rng.Below(3));
    const Proposal& proposal = plan_.proposals[p];
    // Which techniques the proposal's sessions used, for the titles.
    bool used[kInstrumentCount] = {};
    for (int s : info.sessions) used[session_info_[size_t(s)].instrument] = true;
    for (int k = 0; k < papers; ++k) {
      // A paper follows some of the sessions: after the k-th share of them.
      const size_t after =
          std::min(info.sessions.size() - 1, info.sessions.size() * size_t(k + 1) / size_t(papers));
      const int64_t after_end = session_info_[size_t(info.sessions[after])].end;
      const int64_t day = FloorDiv(after_end, kSecondsPerDay) + rng.Between(90, 720);
      const CivilDate date = CivilFromDays(day);
      Publication pub;
      const Journal& journal = kJournals[rng.Below(CountOf(kJournals))];
      std::string doi;
      do {
        const uint64_t serial = rng.Below(100000);
        switch (journal.style) {
          case 0:
            doi = std::string(journal.doi_prefix) + std::to_string(date.year % 10) + "b" +
                  Padded(int64_t(serial), 5);
            break;
          case 1:
            doi = std::string(journal.doi_prefix) + Padded(date.year % 100, 2) + "-" +
                  Padded(int64_t(serial), 5) + "-" + std::to_string(rng.Below(10));
            break;
          case 2:
            doi = std::string(journal.doi_prefix) + std::to_string(date.year - 1925) + "." +
                  Padded(int64_t(serial), 6);
            break;
          case 3:
            doi = std::string(journal.doi_prefix) + std::to_string(date.year) + "." +
                  Padded(int64_t(serial), 6);
            break;
          case 4:
            doi = std::string(journal.doi_prefix) + Padded(int64_t(serial) * 1000 + 17, 8);
            break;
          default:
            doi = std::string(journal.doi_prefix) + std::to_string(date.year) +
                  Padded(int64_t(serial), 5);
        }
      } while (!dois.insert(doi).second);
      pub.doi = doi;
      pub.date = IsoDate(day);
      pub.proposals.push_back(proposal.id);

      const Material& m = materials[size_t(info.materials[rng.Below(info.materials.size())])];
      const std::string technique = used[kCamera4d] && rng.Chance(0.5) ? "4D-STEM"
                                    : used[kHelios] && rng.Chance(0.5) ? "electron microscopy"
                                    : rng.Chance(0.5)                  ? "atomic-resolution STEM"
                                                                       : "HRTEM and EDS";
      static const std::vector<std::string> kTitleForms = {
          "{T} reveals the structure of {N} {F}", "Direct imaging of defects in {F} by {T}",
          "{N} {F}: growth, facets and interfaces seen by {T}",
          "Mapping strain and composition of {F} with {T}"};
      std::string title = kTitleForms[rng.Below(kTitleForms.size())];
      const std::string noun = HasParticles(m.category)          ? "nanocrystals"
                               : m.category == Category::kTwoD   ? "monolayers"
                               : m.category == Category::kAlloy  ? "alloys"
                               : m.category == Category::kPorous ? "frameworks"
                                                                 : "thin films";
      auto fill = [&](std::string text) {
        for (size_t at = text.find("{T}"); at != std::string::npos; at = text.find("{T}")) {
          text.replace(at, 3, technique);
        }
        for (size_t at = text.find("{N}"); at != std::string::npos; at = text.find("{N}")) {
          text.replace(at, 3, m.names[0]);
        }
        for (size_t at = text.find("{F}"); at != std::string::npos; at = text.find("{F}")) {
          text.replace(at, 3, m.formula + " " + noun);
        }
        return text;
      };
      title = fill(std::move(title));
      if (!title.empty() && title[0] >= 'a' && title[0] <= 'z') title[0] = char(title[0] - 32);
      pub.title = std::move(title);
      pub.abstract = fill(
          "We report {T} of {F}. Images of {N} show the atomic structure of facets and "
          "interfaces; electron diffraction and spectroscopy (EDS, EELS) confirm the composition "
          "(" +
          JoinNames(m.elements) + "). The results explain how {N} " + noun +
          " form and degrade, and show what {T} can resolve in beam-sensitive samples.");
      // Authors: the session users and the PI last, as groups write them.
      std::vector<std::string> authors;
      for (size_t t = 1; t < proposal.team.size(); ++t) {
        for (const PersonInfo& person : people_) {
          if (person.person.id == proposal.team[t]) authors.push_back(person.person.name);
        }
      }
      for (const PersonInfo& person : people_) {
        if (person.person.id == proposal.pi) authors.push_back(person.person.name);
      }
      pub.authors = std::move(authors);
      // Now and then a paper acknowledges an earlier proposal of the same PI too.
      if (rng.Chance(0.15)) {
        for (size_t q = 0; q < p; ++q) {
          if (plan_.proposals[q].pi == proposal.pi && !proposal_info_[q].sessions.empty() &&
              proposal_info_[q].first_day < info.first_day) {
            pub.proposals.push_back(plan_.proposals[q].id);
            proposal_info_[q].publications.push_back(int(plan_.publications.size()));
            break;
          }
        }
      }
      info.publications.push_back(int(plan_.publications.size()));
      plan_.publications.push_back(std::move(pub));
    }
  }
}

void Planner::MakeFiles() {
  Random rng(Seed("file-counts"));
  const int64_t n = options_.files;
  const size_t count = session_info_.size();
  // Never more sessions than files: keep the first `n` sessions' worth by
  // giving sessions beyond that no files (they stay in the log: booked,
  // nothing saved - it happens).
  std::vector<double> weights(count);
  double total = 0.0;
  for (size_t i = 0; i < count; ++i) {
    const double hours = double(session_info_[i].end - session_info_[i].start) / 3600.0;
    // SEM images take seconds, so SEM sessions save more files per hour.
    const double rate = session_info_[i].instrument == kHelios ? 1.6 : 1.0;
    weights[i] = rate * std::exp(rng.Normal(0.0, 0.7)) * std::max(hours, 1.0);
    total += weights[i];
  }
  std::vector<int64_t> files(count, 0);
  int64_t assigned = 0;
  if (n >= int64_t(count)) {
    for (size_t i = 0; i < count; ++i) {
      files[i] = 1 + int64_t(double(n - int64_t(count)) * weights[i] / total);
      assigned += files[i];
    }
  } else {
    const size_t step = count / size_t(n);
    for (int64_t i = 0; i < n; ++i) files[size_t(i) * step] = 1;
    assigned = n;
  }
  // Rounding leftovers go to the sessions in turn.
  for (size_t i = 0; assigned < n; i = (i + 1) % count) {
    if (files[i] > 0) {
      ++files[i];
      ++assigned;
    }
  }
  plan_.files.reserve(size_t(n));
  int64_t first = 0;
  for (size_t i = 0; i < count; ++i) {
    session_info_[i].files = files[i];
    PlanSessionFiles(int(i), first);
    first += files[i];
  }
}

// Picks the scene's quality: one acquisition in ten is poor.
Quality PickQuality(Acq acq, Random& rng) {
  if (!rng.Chance(0.1)) return Quality::kGood;
  switch (acq) {
    case Acq::kEds:
    case Acq::kEels:
    case Acq::kSpectrumImage:
      return Quality::kVeryNoisy;
    case Acq::kDiffraction:
    case Acq::k4dStem:
    case Acq::kDiffractionStack: {
      static constexpr Quality kDiffraction[] = {Quality::kSaturated, Quality::kSaturated,
                                                 Quality::kBlank, Quality::kVeryNoisy};
      return kDiffraction[rng.Below(4)];
    }
    case Acq::kTem: {
      static constexpr Quality kTem[] = {Quality::kOutOfFocus, Quality::kOutOfFocus,
                                         Quality::kSaturated, Quality::kBlank, Quality::kVeryNoisy};
      return kTem[rng.Below(5)];
    }
    default: {
      static constexpr Quality kScanned[] = {Quality::kOutOfFocus, Quality::kSaturated,
                                             Quality::kBlank,      Quality::kVeryNoisy,
                                             Quality::kDrifted,    Quality::kDrifted};
      return kScanned[rng.Below(6)];
    }
  }
}

const char* QualityTag(Quality q) {
  switch (q) {
    case Quality::kOutOfFocus:
      return "out of focus";
    case Quality::kSaturated:
      return "saturated";
    case Quality::kBlank:
      return "blank";
    case Quality::kVeryNoisy:
      return "noisy";
    case Quality::kDrifted:
      return "drift";
    case Quality::kGood:
      break;
  }
  return "";
}

// A folder of one sample within a session.
struct SampleFolder {
  int material = 0;
  std::string typed;        // the sample words as typed ("PbSe w lig")
  std::string short_typed;  // what the user puts in file names ("PbSe")
  std::string description;  // what the user typed into the acquisition software
  std::string folder;       // the whole folder name
};

void Planner::PlanSessionFiles(int session_index, int64_t first_file_index) {
  const SessionInfo& s = session_info_[size_t(session_index)];
  if (s.files == 0) return;
  const Session& session = plan_.sessions[size_t(session_index)];
  const ProposalInfo& proposal_info = proposal_info_[size_t(s.proposal)];
  const PersonInfo& user = people_[size_t(s.user)];
  const std::string& pi_folder =
      people_[size_t(std::find_if(people_.begin(), people_.end(),
                                  [&](const PersonInfo& p) { return p.person.id == session.pi; }) -
                     people_.begin())]
          .surname;
  const InstrumentInfo& instrument = instruments_[size_t(s.instrument)];
  const std::vector<Material>& materials = Materials();
  Random rng(Seed("session-files", uint64_t(session_index)));
  const int64_t image = options_.image_size;
  const int64_t start_day = FloorDiv(s.start, kSecondsPerDay);
  const int year = CivilFromDays(start_day).year;

  // Sample folders: contiguous blocks of the session's files.
  const int64_t n = s.files;
  const int folder_count = int(std::min<int64_t>(n, 1 + int64_t(rng.Below(n > 8 ? 3 : 1))));
  std::vector<SampleFolder> folders(static_cast<size_t>(folder_count));
  std::unordered_set<std::string> folder_names;
  for (SampleFolder& f : folders) {
    f.material = rng.Chance(0.7)
                     ? s.focus_material
                     : proposal_info.materials[rng.Below(proposal_info.materials.size())];
    const Material& m = materials[size_t(f.material)];
    const std::string& base = m.shorthand[rng.Below(m.shorthand.size())];
    const std::vector<std::string>& quals = SampleQualifiers(m.category);
    const std::string words = rng.Chance(0.7) ? base + " " + quals[rng.Below(quals.size())] : base;
    f.typed = SafeComponent(Typed(words, user.style, rng));
    f.short_typed = SafeComponent(Typed(base, user.style, rng));
    f.description = m.names[0] + " (" + words + ")";
    const std::string date =
        TypedDate(start_day, user.style.date_form == 3 ? 0 : user.style.date_form);
    switch (user.style.date_form) {
      case 0:
        f.folder = date + " - " + f.typed;
        break;
      case 3:
        f.folder = date + "_" + f.typed;
        break;
      default:
        f.folder = date + " " + f.typed;
    }
    // The same sample twice in one session: a second folder, numbered.
    const std::string base_folder = f.folder;
    for (int k = 2; !folder_names.insert(f.folder).second; ++k) {
      f.folder = base_folder + " (" + std::to_string(k) + ")";
    }
  }
  std::vector<int64_t> folder_start(size_t(folder_count) + 1, n);
  folder_start[0] = 0;
  for (int k = 1; k < folder_count; ++k) {
    folder_start[size_t(k)] =
        folder_start[size_t(k - 1)] + 1 +
        int64_t(rng.Below(uint64_t(n - folder_start[size_t(k - 1)] - (folder_count - k))));
    folder_start[size_t(k)] = std::min(folder_start[size_t(k)], n - (folder_count - k));
  }

  // Acquisition times: random gaps scaled into the booking, 5 minutes in from
  // each end; strictly increasing whenever the booking has a second per file.
  const int64_t margin = std::min<int64_t>(300, (s.end - s.start) / 4);
  const int64_t first_time = s.start + margin, last_time = s.end - margin;
  const int64_t span = last_time - first_time;
  std::vector<int64_t> times(static_cast<size_t>(n));
  {
    double cumulative = 0.0;
    std::vector<double> gaps(size_t(n) + 1);
    for (double& g : gaps) cumulative += (g = -std::log(1.0 - rng.Uniform()) + 0.05);
    double at = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      at += gaps[size_t(i)];
      times[size_t(i)] = first_time + int64_t(double(span) * at / cumulative);
    }
    if (n <= span + 1) {
      for (int64_t i = 1; i < n; ++i) {
        times[size_t(i)] = std::max(times[size_t(i)], times[size_t(i - 1)] + 1);
      }
      for (int64_t i = n - 1; i >= 0; --i) {
        const int64_t limit = i + 1 < n ? times[size_t(i + 1)] - 1 : last_time;
        times[size_t(i)] = std::min(times[size_t(i)], limit);
      }
    } else {
      for (int64_t i = 0; i < n; ++i)
        times[size_t(i)] = std::clamp(times[size_t(i)], first_time, last_time);
    }
  }

  int64_t counter = rng.Between(1, 40);  // the acquisition software's running number
  std::unordered_set<std::string> names;
  Acq previous = Acq::kStem;
  bool has_previous = false;
  const std::string instrument_folder = instrument.instrument.id;
  const std::string year_folder = std::to_string(year);
  const std::string operator_name =
      rng.Chance(0.4) ? std::string(instrument.shared_account) : user.person.id;

  for (int folder_index = 0; folder_index < folder_count; ++folder_index) {
    const SampleFolder& folder = folders[size_t(folder_index)];
    const Material& m = materials[size_t(folder.material)];
    const std::array<double, kAcqCount> weights = AcqWeights(s.instrument, m.category);
    for (int64_t i = folder_start[size_t(folder_index)]; i < folder_start[size_t(folder_index) + 1];
         ++i) {
      const int64_t t = times[size_t(i)];
      // People repeat an acquisition a few times before moving on.
      Acq acq = has_previous && weights[int(previous)] > 0.0 && rng.Chance(0.55)
                    ? previous
                    : Acq(PickWeighted(weights, rng));
      previous = acq;
      has_previous = true;

      PlannedFile file;
      file.session = session.id;
      file.proposal = session.proposal;
      file.seed = Random::Derive(options_.seed, "file", uint64_t(first_file_index + i));
      file.operator_name = operator_name;
      file.sample_description = folder.description;
      file.fields.acquired = IsoDateTime(t);
      file.fields.instrument = instrument.instrument.name;
      const double kev =
          s.instrument == kHelios
              ? std::array<double, 8>{1, 2, 3, 5, 10, 15, 20, 30}[size_t(PickWeighted(
                    std::array<double, 8>{.08, .12, .12, .25, .15, .13, .08, .07}, rng))]
              : s.beam_kev;
      file.fields.beam_energy_kev = kev;

      // The format the software of this instrument writes for this acquisition, then.
      FileFormat format = FileFormat::kTia;
      switch (s.instrument) {
        case kTitan:
          if (acq == Acq::kTem || acq == Acq::kDiffraction || acq == Acq::kEels) {
            format = acq != Acq::kEels && rng.Chance(0.15) ? FileFormat::kTia
                     : year < 2015                         ? FileFormat::kDm3
                                                           : FileFormat::kDm4;
          } else if (acq == Acq::kTomography) {
            format = FileFormat::kMrc;
          } else if (acq == Acq::kSeries && rng.Chance(0.4)) {
            format = year < 2015 ? FileFormat::kDm3 : FileFormat::kDm4;  // a CCD drift series
          } else {
            format = year >= 2019 && rng.Chance(0.55) ? FileFormat::kVeloxEmd : FileFormat::kTia;
          }
          break;
        case kTalos:
          if (acq == Acq::kTomography) {
            format = FileFormat::kMrc;
          } else {
            format = year < 2018 && rng.Chance(0.3) ? FileFormat::kTia : FileFormat::kVeloxEmd;
          }
          break;
        case kHelios:
          format = FileFormat::kFeiTiff;
          break;
        default:
          format = acq == Acq::kDiffractionStack ? FileFormat::kMrc : FileFormat::kBerkeleyEmd;
      }
      const bool ccd_series =
          acq == Acq::kSeries && (format == FileFormat::kDm3 || format == FileFormat::kDm4);
      file.format = format;

      // The scene.
      SceneSpec scene;
      scene.quality = PickQuality(acq, rng);
      scene.structure = m.structure;
      scene.lattice_constant_nm = m.lattice_nm;
      scene.rotation_deg = rng.Uniform(0.0, 90.0);
      scene.with_defects = rng.Chance(0.2);
      scene.particle_shape = m.shape;
      scene.particle_diameter_nm =
          m.diameter_nm > 0.0 ? m.diameter_nm * rng.Uniform(0.8, 1.25) : 8.0;
      scene.particle_size_spread = rng.Uniform(0.05, 0.25);
      scene.particle_count = int(rng.Between(5, 60));
      // Only elements with X-ray lines or EELS edges in the renderer's tables show
      // in a spectrum (lithium, for one, gives no EDS line).
      for (const std::string& element : m.elements) {
        if (!XrayLinesKeV(element).empty() || !EelsEdgesEv(element).empty()) {
          scene.elements.push_back(element);
        }
      }
      scene.beam_energy_kev = kev;
      const bool particles = HasParticles(m.category) || m.diameter_nm > 0.0;
      const bool lattice_view = !particles || rng.Chance(0.4);

      std::vector<std::string> tags;
      tags.reserve(16);
      AddTag(tags, m.formula);
      AddTag(tags, m.names[0]);
      for (const std::string& e : m.elements) {
        AddTag(tags, e);
        if (!ElementName(e).empty()) AddTag(tags, std::string(ElementName(e)));
      }
      std::vector<std::string> features;
      std::string detector;
      std::string name_word;  // the acquisition's word in file names ("HAADF", "SAED"...)
      double mag = 0.0;

      // Real-space image: pixel size from the magnification ladder.
      auto plan_image = [&](bool stem, bool low_mag, bool show_lattice) {
        scene.kind = show_lattice ? SceneKind::kAtomicLattice : SceneKind::kNanoparticles;
        double pixel_nm = show_lattice ? scene.lattice_constant_nm / rng.Uniform(12.0, 30.0)
                          : low_mag    ? scene.particle_diameter_nm / rng.Uniform(1.5, 4.0)
                                       : scene.particle_diameter_nm / rng.Uniform(8.0, 30.0);
        if (stem) {
          mag = SnapToMagnificationStep(0.1 / (pixel_nm * 1e-9 * 1024.0));
          pixel_nm = 0.1 / (mag * 1024.0) * 1e9;
        } else {
          mag = SnapToMagnificationStep(15e-6 / (pixel_nm * 1e-9));
          pixel_nm = 15e-6 / mag * 1e9;
        }
        scene.pixel_size_nm = pixel_nm;
        file.fields.magnification = mag;
        file.fields.pixel_size_m = pixel_nm * 1e-9;
        file.fields.pixel_size_units = "m";
        if (show_lattice) {
          if (scene.quality != Quality::kOutOfFocus && scene.quality != Quality::kBlank) {
            features.push_back(stem ? "atomic resolution" : "lattice fringes");
          }
          if (scene.with_defects) features.push_back("defects");
        } else {
          if (scene.quality != Quality::kBlank) {
            features.push_back("nanoparticles");
            if (m.shape == ParticleShape::kRod) features.push_back("nanowires");
            if (m.shape == ParticleShape::kCube) features.push_back("nanocubes");
            if (m.shape == ParticleShape::kCoreShell) features.push_back("core-shell");
          }
        }
        if (low_mag) features.push_back("overview");
      };
      auto image_axes = [&](int64_t h, int64_t w) {
        return std::vector<Axis>{MakeAxis("y", h, scene.pixel_size_nm, 0.0, "nm", false),
                                 MakeAxis("x", w, scene.pixel_size_nm, 0.0, "nm", false)};
      };
      auto plan_diffraction = [&](int64_t size) {
        const bool rings = HasParticles(m.category)         ? rng.Chance(0.7)
                           : m.category == Category::kAlloy ? rng.Chance(0.4)
                                                            : rng.Chance(0.1);
        scene.kind = rings ? SceneKind::kRingDiffraction : SceneKind::kSpotDiffraction;
        // Reciprocal pixel: the first reflection 8-20 pixels out; camera length
        // from the detector pixel (14 um binned to this size) and the wavelength.
        const double spacing_px = std::max(3.0, double(size) * rng.Uniform(0.06, 0.15));
        double q_nm = (1.0 / scene.lattice_constant_nm) / spacing_px;
        const double detector_pixel_m = 14e-6 * 2048.0 / double(size);
        const double lambda = ElectronWavelengthM(kev);
        const double camera_mm = SnapToCameraLength(detector_pixel_m / (lambda * q_nm * 1e9) * 1e3);
        q_nm = detector_pixel_m / (lambda * camera_mm * 1e-3) * 1e-9;
        scene.pixel_size_nm = q_nm;
        file.fields.pixel_size_m = q_nm * 1e9;
        file.fields.pixel_size_units = "1/m";
        file.fields.mode = Mode::kDiffraction;
        if (scene.quality != Quality::kBlank) {
          features.push_back("diffraction");
          features.push_back(rings ? "polycrystalline" : "single crystal");
        }
        return camera_mm;
      };
      auto diffraction_axes = [&](int64_t size) {
        const double offset = -double(size / 2) * scene.pixel_size_nm;
        return std::vector<Axis>{MakeAxis("qy", size, scene.pixel_size_nm, offset, "1/nm", false),
                                 MakeAxis("qx", size, scene.pixel_size_nm, offset, "1/nm", false)};
      };
      auto add_signal = [&](std::string name, SceneSpec spec, std::vector<Axis> axes, DType dtype) {
        PlannedSignal signal;
        signal.name = std::move(name);
        signal.scene = std::move(spec);
        signal.axes = std::move(axes);
        signal.dtype = dtype;
        file.signals.push_back(std::move(signal));
      };
      const bool new_detectors = year >= 2016;
      const DType tem_dtype =
          (format == FileFormat::kDm3 || format == FileFormat::kDm4) && rng.Chance(0.2)
              ? DType::kFloat32
              : DType::kUInt16;
      double camera_mm = 0.0;

      switch (acq) {
        case Acq::kStem:
        case Acq::kSearch:
        case Acq::kStemMulti: {
          const bool search = acq == Acq::kSearch;
          plan_image(true, search, !search && lattice_view);
          file.fields.mode = Mode::kStemImage;
          scene.dark_field = true;
          detector = "HAADF";
          name_word = "HAADF";
          add_signal("HAADF", scene, image_axes(image, image), DType::kUInt16);
          AddTag(tags, "HAADF-STEM");
          AddTag(tags, "STEM");
          if (search) AddTag(tags, "search image");
          if (acq == Acq::kStemMulti) {
            if (format == FileFormat::kVeloxEmd && rng.Chance(0.5)) {
              add_signal("DF2", scene, image_axes(image, image), DType::kUInt16);
              name_word = "HAADF-DF2-BF";
            } else {
              name_word = "HAADF-BF";
            }
            SceneSpec bf = scene;
            bf.dark_field = false;
            add_signal("BF", bf, image_axes(image, image), DType::kUInt16);
            AddTag(tags, "BF-STEM");
          }
          break;
        }
        case Acq::kTem: {
          plan_image(false, false, lattice_view);
          file.fields.mode = Mode::kTemImage;
          scene.dark_field = false;
          detector = s.instrument == kTalos ? "Ceta" : new_detectors ? "OneView" : "US1000";
          const bool hr = scene.kind == SceneKind::kAtomicLattice;
          name_word = hr ? "HRTEM" : "BF";
          add_signal(detector, scene, image_axes(image, image), tem_dtype);
          AddTag(tags, hr ? "HRTEM" : "TEM");
          if (!hr) AddTag(tags, "bright field");
          break;
        }
        case Acq::kSeries: {
          const bool stem = !ccd_series;
          plan_image(stem, false, lattice_view);
          file.fields.mode = stem ? Mode::kStemImage : Mode::kTemImage;
          scene.dark_field = stem;
          detector = stem                     ? "HAADF"
                     : s.instrument == kTalos ? "Ceta"
                     : new_detectors          ? "OneView"
                                              : "US1000";
          name_word = stem ? "HAADF series" : "series";
          const int64_t frames = rng.Between(4, 8);
          const double frame_time = stem ? rng.Uniform(0.5, 8.0) : rng.Uniform(0.1, 1.0);
          std::vector<Axis> axes = image_axes(image / 2, image / 2);
          axes.insert(axes.begin(), MakeAxis("frame", frames, frame_time, 0.0, "s", true));
          add_signal(detector, scene, std::move(axes), stem ? DType::kUInt16 : tem_dtype);
          AddTag(tags,
                 stem ? "HAADF-STEM" : (scene.kind == SceneKind::kAtomicLattice ? "HRTEM" : "TEM"));
          features.push_back("time series");
          break;
        }
        case Acq::kTomography: {
          plan_image(true, false, false);
          file.fields.mode = Mode::kStemImage;
          detector = "HAADF";
          name_word = "tomo";
          const int64_t frames = rng.Between(8, 16);
          std::vector<Axis> axes = image_axes(image / 2, image / 2);
          axes.insert(axes.begin(), MakeAxis("frame", frames, 1.0, 0.0, "", true));
          add_signal("HAADF", scene, std::move(axes),
                     rng.Chance(0.5) ? DType::kUInt16 : DType::kFloat32);
          AddTag(tags, "HAADF-STEM");
          AddTag(tags, "tomography");
          features.push_back("tilt series");
          break;
        }
        case Acq::kDiffraction: {
          camera_mm = plan_diffraction(image);
          detector = s.instrument == kTalos ? "Ceta" : new_detectors ? "OneView" : "US1000";
          name_word = scene.kind == SceneKind::kSpotDiffraction && rng.Chance(0.3) ? "NBD" : "SAED";
          add_signal(detector, scene, diffraction_axes(image), tem_dtype);
          AddTag(tags, name_word == "NBD" ? "nanobeam diffraction" : "SAED");
          break;
        }
        case Acq::kEds:
        case Acq::kEels: {
          const bool eds = acq == Acq::kEds;
          scene.kind = eds ? SceneKind::kEdsSpectrum : SceneKind::kEelsSpectrum;
          file.fields.mode = Mode::kSpectrum;
          const int64_t channels = std::clamp<int64_t>(image * 8, 64, 16384);
          double offset = 0.0;
          if (eds) {
            scene.pixel_size_nm = std::max(5.0, std::round(20000.0 / double(channels)));
            offset = -100.0;
            detector = s.instrument == kTitan && !new_detectors ? "EDX" : "Super-X";
          } else {
            static constexpr double kDispersion[] = {0.1, 0.25, 0.5, 1.0};
            scene.pixel_size_nm = kDispersion[rng.Below(4)];
            offset = rng.Chance(0.35) ? -20.0 : std::round(rng.Uniform(100.0, 400.0));
            detector = "GIF Quantum";
            if (offset < 0.0) features.push_back("low loss");
          }
          name_word = eds ? "EDS" : "EELS";
          scene.energy_offset_ev = offset;
          add_signal(eds ? "EDS" : "EELS", scene,
                     {MakeAxis("energy", channels, scene.pixel_size_nm, offset, "eV", false)},
                     DType::kFloat32);
          AddTag(tags, eds ? "EDS" : "EELS");
          if (scene.quality == Quality::kGood) features.push_back("spectrum");
          break;
        }
        case Acq::kSpectrumImage: {
          // The HAADF survey first, then the EDS cube over the same scan.
          const int64_t scan = std::clamp<int64_t>(image / 8, 8, 128);
          const int64_t channels = std::clamp<int64_t>(image * 4, 64, 2048);
          // The scan is coarse: a few pixels per unit cell for an atomic-resolution
          // map, a few per particle for a particle map; the magnification is that of
          // the survey's field of view.
          plan_image(true, false, lattice_view);
          const double wanted_nm = scene.kind == SceneKind::kAtomicLattice
                                       ? scene.lattice_constant_nm / rng.Uniform(4.0, 6.0)
                                       : scene.particle_diameter_nm / rng.Uniform(3.0, 6.0);
          mag = SnapToMagnificationStep(0.1 / (wanted_nm * 1e-9 * double(scan)));
          const double scan_pixel = 0.1 / (mag * double(scan)) * 1e9;
          SceneSpec survey = scene;
          survey.quality = Quality::kGood;
          survey.pixel_size_nm = scan_pixel;
          survey.dark_field = true;
          file.fields.magnification = mag;
          file.fields.pixel_size_m = scan_pixel * 1e-9;
          file.fields.mode = Mode::kSpectrumImage;
          detector = "Super-X";
          name_word = "SI";
          add_signal("HAADF", survey,
                     {MakeAxis("y", scan, scan_pixel, 0.0, "nm", false),
                      MakeAxis("x", scan, scan_pixel, 0.0, "nm", false)},
                     DType::kUInt16);
          SceneSpec map = survey;
          map.kind = SceneKind::kEdsSpectrum;
          map.quality = scene.quality == Quality::kGood ? Quality::kGood : Quality::kVeryNoisy;
          map.pixel_size_nm = std::max(5.0, std::round(20000.0 / double(channels)));
          map.energy_offset_ev = -100.0;
          add_signal("EDS", map,
                     {MakeAxis("scan_y", scan, scan_pixel, 0.0, "nm", true),
                      MakeAxis("scan_x", scan, scan_pixel, 0.0, "nm", true),
                      MakeAxis("energy", channels, map.pixel_size_nm, -100.0, "eV", false)},
                     DType::kInt32);  // X-ray counts
          scene = map;
          AddTag(tags, "EDS");
          AddTag(tags, "STEM");
          AddTag(tags, "spectrum imaging");
          features.push_back("elemental map");
          break;
        }
        case Acq::kSem: {
          scene.kind = SceneKind::kSemTexture;
          double pixel_nm = std::exp(rng.Uniform(std::log(1.0), std::log(200.0)));
          mag = 0.127 / (pixel_nm * 1e-9 * 1024.0);
          const double digits = std::pow(10.0, std::floor(std::log10(mag)) - 1.0);
          mag = std::round(mag / digits) * digits;
          pixel_nm = 0.127 / (mag * 1024.0) * 1e9;
          scene.pixel_size_nm = pixel_nm;
          file.fields.magnification = mag;
          file.fields.pixel_size_m = pixel_nm * 1e-9;
          file.fields.pixel_size_units = "m";
          file.fields.mode = Mode::kSemImage;
          static constexpr const char* kDetectors[] = {"ETD", "TLD", "CBS", "ICE"};
          detector = kDetectors[PickWeighted(std::array<double, 4>{0.5, 0.3, 0.15, 0.05}, rng)];
          const bool bse = detector == "CBS";
          scene.dark_field = false;
          name_word = bse ? "BSE" : "SE";
          const int64_t height = std::max<int64_t>(16, image * 3 / 4);
          add_signal(detector, scene, image_axes(height, image),
                     rng.Chance(0.75) ? DType::kUInt8 : DType::kUInt16);
          AddTag(tags, "SEM");
          AddTag(tags, bse ? "backscattered electrons" : "secondary electrons");
          if (mag < 5000) features.push_back("overview");
          if (m.category == Category::kAlloy && scene.quality == Quality::kGood) {
            features.push_back("grains");
          }
          break;
        }
        case Acq::k4dStem: {
          const int64_t scan = std::clamp<int64_t>(image / 16, 4, 64);
          const int64_t pattern = std::clamp<int64_t>(image / 8, 8, 128);
          camera_mm = plan_diffraction(pattern);
          file.fields.mode = Mode::k4dStem;
          detector = "4D Camera";
          name_word = "4D";
          const double step_nm = rng.Uniform(0.2, 5.0);
          std::vector<Axis> axes = diffraction_axes(pattern);
          axes.insert(axes.begin(), MakeAxis("scan_x", scan, step_nm, 0.0, "nm", true));
          axes.insert(axes.begin(), MakeAxis("scan_y", scan, step_nm, 0.0, "nm", true));
          add_signal("4D Camera", scene, std::move(axes), DType::kUInt16);
          AddTag(tags, "4D-STEM");
          AddTag(tags, "STEM");
          break;
        }
        case Acq::kDiffractionStack: {
          const int64_t size = std::clamp<int64_t>(image / 2, 16, 1024);
          camera_mm = plan_diffraction(size);
          detector = "4D Camera";
          name_word = "dp stack";
          const int64_t frames = rng.Between(8, 24);
          // The camera's MRC holds no reciprocal calibration (an MRC cell is a length):
          // the frames are in detector pixels, the camera length names the scale.
          std::vector<Axis> axes = {MakeAxis("frame", frames, 1.0, 0.0, "", true),
                                    MakeAxis("qy", size, 1.0, 0.0, "", false),
                                    MakeAxis("qx", size, 1.0, 0.0, "", false)};
          file.fields.pixel_size_m.reset();
          file.fields.pixel_size_units.reset();
          add_signal("4D Camera", scene, std::move(axes),
                     rng.Chance(0.5) ? DType::kUInt16 : DType::kFloat32);
          AddTag(tags, "4D-STEM");
          AddTag(tags, "nanobeam diffraction");
          break;
        }
      }
      file.fields.detector = detector;
      if (acq == Acq::kSearch) mag = file.fields.magnification.value_or(0.0);
      if (scene.quality != Quality::kGood) features.push_back(QualityTag(scene.quality));
      if (m.category == Category::kPorous && s.instrument != kHelios)
        features.push_back("low dose");
      for (std::string& f : features) AddTag(tags, std::move(f));
      file.expert_tags = std::move(tags);

      // The file's name, as the software (or the user) makes it.
      const int64_t number = counter++;
      const char sep = user.style.underscores ? '_' : ' ';
      std::string name;
      switch (format) {
        case FileFormat::kTia: {
          std::string word;
          if (acq == Acq::kSearch) {
            word = rng.Chance(0.7) ? "Search" : "Preview";
          } else if (acq == Acq::kTem || acq == Acq::kDiffraction) {
            word = "CCD Acquire";
          } else if (acq == Acq::kEds) {
            word = "Spectrum Acquire";
          } else if (acq == Acq::kSpectrumImage) {
            word = "Spectrum Imaging";
          } else {
            word = "Scanning Acquire";
          }
          name = ClockText(t, '.', true) + " " + word + "_" + Padded(number, 4) + ".emi";
          break;
        }
        case FileFormat::kDm3:
        case FileFormat::kDm4: {
          std::string tech = name_word;
          if (acq == Acq::kDiffraction && rng.Chance(0.4))
            tech += sep + std::to_string(int(camera_mm)) + "mm";
          if (acq == Acq::kEels)
            tech = rng.Chance(0.5) ? "EELS" : rng.Chance(0.5) ? "core loss" : "eels";
          tech = Typed(tech, user.style, rng);
          switch (user.style.dm_pattern) {
            case 0:
              name = folder.short_typed + "_" + Padded(number, 3);
              break;
            case 1:
              name = folder.short_typed + " " + Padded(number, 4);
              break;
            case 2:
              name = folder.short_typed + "_" + tech + "_" + Padded(number, 2);
              break;
            default:
              name = tech + " " + Padded(number, 4);
          }
          name += format == FileFormat::kDm3 ? ".dm3" : ".dm4";
          break;
        }
        case FileFormat::kVeloxEmd: {
          std::string what = name_word == "HAADF series" ? "HAADF" : name_word;
          if (acq == Acq::kTem) what = "Ceta";
          if (acq == Acq::kDiffraction) what = "Ceta " + std::to_string(int(camera_mm)) + " mm";
          name = ClockText(t, ' ', false) + " " + what;
          if (mag > 0.0 && acq != Acq::kDiffraction && acq != Acq::kEds)
            name += " " + MagnificationText(mag);
          if (acq == Acq::kSeries) name += " Series";
          if (rng.Chance(0.3)) name += " " + folder.short_typed;
          name += ".emd";
          break;
        }
        case FileFormat::kFeiTiff: {
          switch (user.style.tif_pattern) {
            case 0:
              name = folder.short_typed + "_" + Padded(number, 3);
              break;
            case 1:
              name = name_word + "_" + TypedDate(FloorDiv(t, kSecondsPerDay), 1) + "_" +
                     Padded(number, 3);
              break;
            case 2: {
              char mag_text[32];
              std::snprintf(mag_text, sizeof(mag_text), "%.0fx", mag);
              name = folder.short_typed + " " + mag_text + "_" + Padded(number, 2);
              break;
            }
            default:
              name = folder.short_typed + Padded(number, 2);
          }
          name += ".tif";
          break;
        }
        case FileFormat::kBerkeleyEmd: {
          const int64_t scan = file.signals[0].axes[0].size;
          name = user.style.dm_pattern % 2 == 0 ? "scan_x" + std::to_string(scan) + "_y" +
                                                      std::to_string(scan) + "_" + Padded(number, 4)
                                                : "data_scan" + Padded(number, 7) + "_id" +
                                                      Padded(int64_t(file.seed % 100000), 5);
          name += ".emd";
          break;
        }
        case FileFormat::kMrc: {
          name = acq == Acq::kTomography
                     ? (rng.Chance(0.5) ? folder.short_typed + "_tilt_" + Padded(number, 2)
                                        : "tomo_" + Padded(number, 3))
                     : (rng.Chance(0.5) ? "scan" + Padded(number, 4) + "_frames"
                                        : folder.short_typed + "_dp_stack_" + Padded(number, 2));
          name += ".mrc";
          break;
        }
      }
      name = SafeComponent(std::move(name));
      // Names carry the session's running number, except Velox's, which carry
      // the minute only: when two collide, save-as adds a number, as users do.
      if (format == FileFormat::kVeloxEmd && !names.insert(folder.folder + "/" + name).second) {
        const size_t dot = name.rfind('.');
        const std::string stem = name.substr(0, dot), ext = name.substr(dot);
        for (int k = 2;; ++k) {
          std::string candidate = stem + " (" + std::to_string(k) + ")" + ext;
          if (names.insert(folder.folder + "/" + candidate).second) {
            name = std::move(candidate);
            break;
          }
        }
      }
      std::string path;
      path.reserve(instrument_folder.size() + pi_folder.size() + folder.folder.size() +
                   name.size() + 10);
      path.append(instrument_folder).append("/").append(pi_folder).append("/");
      path.append(year_folder).append("/").append(folder.folder).append("/").append(name);
      file.relative_path = std::move(path);

      // Papers of this proposal that came after this session used its data.
      for (int pub : proposal_info.publications) {
        const Publication& p = plan_.publications[size_t(pub)];
        if (p.date > session.end.substr(0, 10)) file.publications.push_back(p.doi);
      }
      plan_.files.push_back(std::move(file));
    }
  }
}

}  // namespace

Result<FacilityPlan> MakeFacilityPlan(const PlanOptions& options) {
  if (options.files < 1) {
    return Status::InvalidArgument("facility plan: files must be at least 1 (got " +
                                   std::to_string(options.files) + ")");
  }
  // A bound well above the million the simulator is meant for, so that a
  // mistyped count fails here rather than exhausting memory.
  if (options.files > 100'000'000) {
    return Status::InvalidArgument("facility plan: files must be at most 100000000 (got " +
                                   std::to_string(options.files) + ")");
  }
  if (options.image_size < 16 || options.image_size > 8192) {
    return Status::InvalidArgument("facility plan: image size must be in 16..8192 (got " +
                                   std::to_string(options.image_size) + ")");
  }
  Planner planner(options);
  return planner.Make();
}

std::string_view FileFormatName(FileFormat format) {
  switch (format) {
    case FileFormat::kTia:
      return "tia";
    case FileFormat::kDm3:
      return "dm3";
    case FileFormat::kDm4:
      return "dm4";
    case FileFormat::kMrc:
      return "mrc";
    case FileFormat::kFeiTiff:
      return "tiff";
    case FileFormat::kVeloxEmd:
      return "emd-velox";
    case FileFormat::kBerkeleyEmd:
      return "emd-berkeley";
  }
  return "unknown";
}

}  // namespace scisearch::simulate
