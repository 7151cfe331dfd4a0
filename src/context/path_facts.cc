#include "context/path_facts.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <unordered_map>
#include <utility>

#include "formats/text.h"
#include "nlp/chemistry.h"
#include "nlp/vocabulary.h"

namespace scisearch::context {
namespace {

// ---------------------------------------------------------------------------------------
// Characters.

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsUpper(char c) { return c >= 'A' && c <= 'Z'; }
bool IsLower(char c) { return c >= 'a' && c <= 'z'; }
bool IsAsciiLetter(char c) { return IsUpper(c) || IsLower(c); }
// Bytes of other scripts (UTF-8) count as letters of words, like NormaliseForMatching.
bool IsWordByte(char c) {
  return IsDigit(c) || IsAsciiLetter(c) || static_cast<unsigned char>(c) >= 0x80;
}
bool IsLetterByte(char c) { return IsAsciiLetter(c) || static_cast<unsigned char>(c) >= 0x80; }

size_t DigitRunEnd(std::string_view s, size_t p) {
  while (p < s.size() && IsDigit(s[p])) ++p;
  return p;
}
size_t LetterRunEnd(std::string_view s, size_t p) {
  while (p < s.size() && IsAsciiLetter(s[p])) ++p;
  return p;
}
int ParseInt(std::string_view digits) {  // callers pass at most 9 digits
  int value = 0;
  for (char c : digits) value = value * 10 + (c - '0');
  return value;
}
int64_t ParseInt64(std::string_view digits) {  // callers pass at most 18 digits
  int64_t value = 0;
  for (char c : digits) value = value * 10 + (c - '0');
  return value;
}
bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), IsDigit);
}
bool AllUpperOrDigit(std::string_view s) { return std::none_of(s.begin(), s.end(), IsLower); }
bool HasLetter(std::string_view s) { return std::any_of(s.begin(), s.end(), IsLetterByte); }

// Lowercase with separators dropped: "Titan X" and "titan_x" give "titanx".
std::string MatchKey(std::string_view text) {
  std::string key = nlp::NormaliseForMatching(text);
  key.erase(std::remove(key.begin(), key.end(), ' '), key.end());
  return key;
}

// ---------------------------------------------------------------------------------------
// Calendar.

bool IsLeapYear(int year) { return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0; }

// Days in `month` of `year`; year 0 (unknown) allows 29 February.
int DaysInMonth(int year, int month) {
  static constexpr std::array<int, 12> kDays = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month < 1 || month > 12) return 0;
  if (month == 2 && (year == 0 || IsLeapYear(year))) return 29;
  return kDays[month - 1];
}

// Years a facility's data can carry: electron microscopes wrote files from the 1980s.
bool PlausibleYear(int year) { return year >= 1980 && year <= 2099; }

int ExpandTwoDigitYear(int yy) { return yy < 70 ? 2000 + yy : 1900 + yy; }

bool ValidDate(int year, int month, int day) {
  return (year == 0 || PlausibleYear(year)) && month >= 1 && month <= 12 && day >= 1 &&
         day <= DaysInMonth(year, month);
}

// 1-12 for an English month name or its abbreviation ("Oct", "October", "Sept"); 0 else.
int MonthFromName(std::string_view letters) {
  static constexpr std::array<std::string_view, 12> kNames = {
      "january", "february", "march",     "april",   "may",      "june",
      "july",    "august",   "september", "october", "november", "december"};
  const std::string lower = formats::AsciiLower(letters);
  if (lower == "sept") return 9;
  for (size_t m = 0; m < kNames.size(); ++m) {
    if (lower == kNames[m] || (lower.size() == 3 && kNames[m].substr(0, 3) == lower)) {
      return static_cast<int>(m) + 1;
    }
  }
  return 0;
}

std::string TwoDigits(int value) {
  std::string out(2, '0');
  out[0] = static_cast<char>('0' + (value / 10) % 10);
  out[1] = static_cast<char>('0' + value % 10);
  return out;
}

std::string DateIso(int year, int month, int day) {
  std::string iso = year > 0 ? std::to_string(year) : std::string("-");
  if (month > 0) iso += "-" + TwoDigits(month);
  if (day > 0) iso += "-" + TwoDigits(day);
  return iso;
}

// ---------------------------------------------------------------------------------------
// Chemistry just enough to keep formulas whole when splitting words.

bool IsElementSymbol(std::string_view symbol) { return nlp::ElementBySymbol(symbol) != nullptr; }

struct FormulaShape {
  bool parses = false;  // element symbols with optional counts, nothing else
  int symbols = 0;
  bool two_letter_symbol = false;
  bool inner_count = false;  // a count followed by another symbol: "Fe3O4"
};

FormulaShape ReadFormula(std::string_view s) {
  FormulaShape shape;
  size_t p = 0;
  while (p < s.size()) {
    if (!IsUpper(s[p])) return shape;
    size_t symbol_length = 1;
    if (p + 1 < s.size() && IsLower(s[p + 1]) && IsElementSymbol(s.substr(p, 2))) {
      symbol_length = 2;
    } else if (!IsElementSymbol(s.substr(p, 1))) {
      return shape;
    }
    shape.two_letter_symbol |= symbol_length == 2;
    ++shape.symbols;
    p += symbol_length;
    const size_t count_end = DigitRunEnd(s, p);
    if (count_end - p > 2 || (count_end > p && s[p] == '0')) return shape;
    if (count_end > p && count_end < s.size()) shape.inner_count = true;
    p = count_end;
  }
  shape.parses = shape.symbols > 0;
  return shape;
}

// "PbSe", "SrTiO3", "Fe3O4", "WSe2", "NaY": two or more element symbols with counts, and
// something no acronym has (a two-letter symbol or a count inside). "NP3" and "BN" are
// not formulas by this rule; they read the same whole or split.
bool IsFormula(std::string_view s) {
  const FormulaShape shape = ReadFormula(s);
  return shape.parses && shape.symbols >= 2 && (shape.two_letter_symbol || shape.inner_count);
}

bool IsFormulaOrElement(std::string_view s) {
  const FormulaShape shape = ReadFormula(s);
  return shape.parses && (shape.symbols >= 2 || (shape.symbols == 1 && HasLetter(s)));
}

// Abbreviations of nano-objects written straight after a formula: "AuNP", "CdSeQDs".
constexpr std::array<std::string_view, 14> kMorphologySuffixes = {
    "NPs", "NP", "NWs", "NW", "NRs", "NR", "NCs", "NC", "QDs", "QD", "NTs", "NT", "NSs", "NS"};

// True when `written` (any case) is a form of the domain vocabulary or an acquisition word.
bool IsTermForm(std::string_view written);

// Splits one piece (no separators inside) into words: at letter/digit boundaries and
// camelCase boundaries ("fauTilt" -> "fau", "Tilt"; "XMLFile" -> "XML", "File"), keeping
// formulas whole and parting a formula from a nano-object suffix ("AuNP3" -> "Au", "NP", "3").
// Returns [begin, end) offsets into `piece`.
std::vector<std::pair<size_t, size_t>> SplitPiece(std::string_view piece) {
  std::vector<std::pair<size_t, size_t>> words;
  if (piece.empty()) return words;
  if (AllDigits(piece) || piece.find('.') != std::string_view::npos) {
    words.emplace_back(0, piece.size());
    return words;
  }
  // Formula + nano-object suffix (+ digits).
  size_t core_end = piece.size();
  while (core_end > 0 && IsDigit(piece[core_end - 1])) --core_end;
  for (std::string_view suffix : kMorphologySuffixes) {
    if (core_end <= suffix.size()) continue;
    const size_t suffix_begin = core_end - suffix.size();
    if (piece.substr(suffix_begin, suffix.size()) != suffix) continue;
    if (!IsFormulaOrElement(piece.substr(0, suffix_begin))) continue;
    words.emplace_back(0, suffix_begin);
    words.emplace_back(suffix_begin, core_end);
    if (core_end < piece.size()) words.emplace_back(core_end, piece.size());
    return words;
  }
  if (IsFormula(piece)) {
    words.emplace_back(0, piece.size());
    return words;
  }
  size_t start = 0;
  size_t upper_run = 0;  // where the current run of capitals began
  for (size_t i = 1; i < piece.size(); ++i) {
    const char prev = piece[i - 1];
    const char cur = piece[i];
    if (!IsUpper(prev)) upper_run = i;
    const bool digit_change = IsDigit(prev) != IsDigit(cur);
    const bool lower_to_upper =
        (IsLower(prev) || static_cast<unsigned char>(prev) >= 0x80) && IsUpper(cur);
    // "XMLFile" -> "XML", "File"; but a plural "s" stays with its acronym ("QDs", "NPs"),
    // and a known acronym keeps its last capital: "HAADFimage" -> "HAADF", "image".
    const bool plural_s = i + 2 == piece.size() && piece[i + 1] == 's';
    bool acronym_end =
        IsUpper(prev) && IsUpper(cur) && i + 1 < piece.size() && IsLower(piece[i + 1]) && !plural_s;
    if (acronym_end && IsTermForm(piece.substr(upper_run, i + 1 - upper_run))) {
      words.emplace_back(start, i + 1);
      start = i + 1;
      continue;
    }
    if ((digit_change || lower_to_upper || acronym_end) && i > start) {
      words.emplace_back(start, i);
      start = i;
    }
  }
  words.emplace_back(start, piece.size());
  return words;
}

// ---------------------------------------------------------------------------------------
// Words of acquisition software and of folder organisation.

enum TermFlags : unsigned {
  kNoFlags = 0,
  kFileOnly = 1,   // only in the file name ("Search", "SI")
  kUpperOnly = 2,  // only written in capitals ("SI" is spectrum imaging, "Si" silicon)
  kSilent = 4,     // consumed without a term: software and organisation words
};

struct AcquisitionWord {
  std::string_view form;        // as NormaliseForMatching writes it
  std::string_view concept_id;  // a DomainVocabulary() id, or empty
  std::string_view label;       // the term's label when concept_id is empty
  double confidence;
  unsigned flags;
};

// The names acquisition programs give files (TIA, Velox, Digital Micrograph, SEM
// software, 4D cameras) and the detectors they name, beyond the vocabulary's own forms.
constexpr AcquisitionWord kAcquisitionWords[] = {
    {"scanning acquire", "stem", "", 0.8, kNoFlags},
    {"ccd acquire", "ccd", "", 0.85, kNoFlags},
    {"spectrum acquire", "", "spectrum", 0.8, kNoFlags},
    {"spectrum", "", "spectrum", 0.6, kNoFlags},
    {"spectra", "", "spectrum", 0.6, kNoFlags},
    {"search", "search-image", "", 0.7, kFileOnly},
    {"preview", "search-image", "", 0.7, kFileOnly},
    {"si", "spectrum-image", "", 0.7, kFileOnly | kUpperOnly},
    {"se", "secondary-electrons", "", 0.7, kFileOnly | kUpperOnly},
    {"etd", "secondary-electrons", "", 0.8, kNoFlags},
    {"tld", "secondary-electrons", "", 0.8, kNoFlags},
    {"cbs", "backscattered-electrons", "", 0.8, kNoFlags},
    {"df1", "adf", "", 0.85, kNoFlags},
    {"df2", "adf", "", 0.85, kNoFlags},
    {"df3", "adf", "", 0.85, kNoFlags},
    {"df4", "adf", "", 0.85, kNoFlags},
    {"tomo", "tomography", "", 0.85, kNoFlags},
    {"tilt", "tomography", "", 0.7, kNoFlags},
    {"tilts", "tomography", "", 0.7, kNoFlags},
    {"dp stack", "4d-stem", "", 0.8, kNoFlags},
    {"4d", "4d-stem", "", 0.8, kNoFlags},
    {"dp", "diffraction", "", 0.6, kNoFlags},
    {"diff", "diffraction", "", 0.7, kNoFlags},
    {"us1000", "ccd", "", 0.8, kNoFlags},
    {"us4000", "ccd", "", 0.8, kNoFlags},
    {"gif", "eels", "", 0.6, kNoFlags},
    {"super x", "eds", "", 0.7, kNoFlags},
    {"superx", "eds", "", 0.7, kNoFlags},
    {"idpc", "dpc", "", 0.8, kNoFlags},
    {"lowmag", "overview", "", 0.8, kNoFlags},
    {"series", "", "time series", 0.6, kNoFlags},
    {"time series", "", "time series", 0.8, kNoFlags},
    {"focal series", "", "focal series", 0.8, kNoFlags},
    {"eftem", "", "EFTEM", 0.85, kNoFlags},
    {"map", "", "map", 0.5, kNoFlags},
    {"maps", "", "map", 0.5, kNoFlags},
    {"high mag", "", "high magnification", 0.7, kNoFlags},
    {"highmag", "", "high magnification", 0.7, kNoFlags},
    {"drift corrected", "", "drift corrected", 0.7, kNoFlags},
    {"ronchigram", "", "ronchigram", 0.8, kNoFlags},
    {"core loss", "eels", "", 0.8, kNoFlags},
    {"low loss", "eels", "", 0.8, kNoFlags},
    {"zero loss", "eels", "", 0.7, kNoFlags},
    // Consumed without a term.
    {"acquire", "", "", 0, kSilent},
    {"acquisition", "", "", 0, kSilent},
    {"image", "", "", 0, kSilent},
    {"images", "", "", 0, kSilent},
    {"img", "", "", 0, kSilent},
    {"data", "", "", 0, kSilent},
    {"scan", "", "", 0, kSilent},
    {"frames", "", "", 0, kSilent},
    {"frame", "", "", 0, kSilent},
    {"stack", "", "", 0, kSilent},
    {"id", "", "", 0, kSilent},
    {"export", "", "", 0, kSilent},
    {"exported", "", "", 0, kSilent},
    {"copy", "", "", 0, kSilent},
    {"raw", "", "", 0, kSilent},
    {"processed", "", "", 0, kSilent},
    {"new folder", "", "", 0, kSilent},
    {"untitled", "", "", 0, kSilent},
    {"users", "", "", 0, kSilent},
    {"user", "", "", 0, kSilent},
    {"velox", "", "", 0, kSilent},
    {"tia", "", "", 0, kSilent},
    {"gms", "", "", 0, kSilent},
    {"session", "", "", 0, kSilent},
};

struct TermEntry {
  std::string_view concept_id;
  std::string_view label;
  double confidence = 0;
  unsigned flags = kNoFlags;
  bool describes_sample = false;
};

struct TermTable {
  std::unordered_map<std::string, TermEntry> by_form;  // space-separated normalised forms
  size_t max_words = 1;
  // Single-word forms of four letters or more, for reading one-letter typos.
  std::vector<std::pair<std::string, TermEntry>> fuzzy_targets;
};

size_t CountWords(std::string_view form) {
  return static_cast<size_t>(std::count(form.begin(), form.end(), ' ')) + 1;
}

const TermTable& Terms() {
  static const TermTable table = [] {
    TermTable built;
    for (const nlp::Concept& concept_entry : nlp::DomainVocabulary()) {
      const bool sample = concept_entry.kind == nlp::ConceptKind::kMaterial ||
                          concept_entry.kind == nlp::ConceptKind::kMorphology;
      for (std::string_view form : concept_entry.forms) {
        TermEntry entry{concept_entry.id, concept_entry.label, 0.9, kNoFlags, sample};
        built.by_form.emplace(std::string(form), entry);
        built.max_words = std::max(built.max_words, CountWords(form));
      }
    }
    for (const AcquisitionWord& word : kAcquisitionWords) {
      std::string_view label = word.label;
      if (!word.concept_id.empty()) {
        for (const nlp::Concept& concept_entry : nlp::DomainVocabulary()) {
          if (concept_entry.id == word.concept_id) label = concept_entry.label;
        }
      }
      // The vocabulary's own reading of a form wins.
      built.by_form.emplace(std::string(word.form),
                            TermEntry{word.concept_id, label, word.confidence, word.flags, false});
      built.max_words = std::max(built.max_words, CountWords(word.form));
    }
    for (const auto& [form, entry] : built.by_form) {
      const bool letters_only = std::all_of(form.begin(), form.end(), IsLower);
      // Short organisation words are too near ordinary ones ("frame", "flame").
      const size_t min_length = (entry.flags & kSilent) ? 7 : 4;
      if (letters_only && form.size() >= min_length) built.fuzzy_targets.emplace_back(form, entry);
    }
    std::sort(built.fuzzy_targets.begin(), built.fuzzy_targets.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    return built;
  }();
  return table;
}

bool IsTermForm(std::string_view written) {
  return Terms().by_form.count(formats::AsciiLower(written)) > 0;
}

// True when `a` is `b` with two neighbouring letters swapped.
bool IsAdjacentSwap(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  size_t i = 0;
  while (i < a.size() && a[i] == b[i]) ++i;
  return i + 1 < a.size() && a[i] == b[i + 1] && a[i + 1] == b[i] &&
         a.substr(i + 2) == b.substr(i + 2);
}

// ---------------------------------------------------------------------------------------
// One component, scanned.

struct Word {                 // a fine word: the unit of matching
  size_t begin = 0, end = 0;  // offsets in the component
  int piece = 0;
  int coarse = 0;
  bool numeric = false;
  bool consumed = false;  // taken by a fact; not a sample word
  bool identifier = false;
};

struct Piece {  // a coarse token split at '-' and '@'
  size_t begin = 0, end = 0;
  int first_word = 0, end_word = 0;
  int coarse = 0;
  std::string lower;  // NormaliseForMatching of the piece
};

struct Coarse {  // a run of word bytes, '-' and '@' between them, '.' between digits
  size_t begin = 0, end = 0;
  int first_piece = 0, end_piece = 0;
};

struct Scan {
  std::string_view text;
  int index = 0;
  bool is_file = false;
  std::vector<bool> taken;  // bytes consumed by span facts (dates, times, quantities)
  std::vector<Coarse> coarse;
  std::vector<Piece> pieces;
  std::vector<Word> words;
  bool had_year_only = false;
  bool had_date = false;
  bool whole_instrument = false;
  bool whole_person = false;
  std::vector<std::string> residual;  // coarse-level words left over
};

bool Taken(const Scan& scan, size_t begin, size_t end) {
  for (size_t i = begin; i < end; ++i) {
    if (scan.taken[i]) return true;
  }
  return false;
}

void Take(Scan& scan, size_t begin, size_t end) {
  for (size_t i = begin; i < end && i < scan.taken.size(); ++i) scan.taken[i] = true;
}

PathEvidence Evidence(const Scan& scan, size_t begin, size_t end, double confidence) {
  return PathEvidence{scan.index, std::string(scan.text.substr(begin, end - begin)), confidence};
}

// ---------------------------------------------------------------------------------------
// Span facts: dates, times, quantities, copy indices.

struct DateHit {
  size_t end = 0;
  int year = 0, month = 0, day = 0;
  double confidence = 0;
  // A time written straight after the date: "20190716_171352".
  int hour = -1, minute = -1, second = -1;
  size_t time_begin = 0;
  // Written as a date but impossible ("31Apr11", "2011-02-30"): the characters are taken
  // so that no shorter reading ("Apr11") is made of them, and no date is recorded.
  bool impossible = false;
};

DateHit ImpossibleDate(size_t end) {
  DateHit hit;
  hit.end = end;
  hit.impossible = true;
  return hit;
}

bool IsDateSeparator(char c) { return c == '-' || c == '_' || c == '.' || c == ' '; }

// Reads an optional separator then a month name at `p`: returns the month and sets
// `end`; 0 when there is none.
int ReadMonthName(std::string_view s, size_t p, size_t& end) {
  if (p < s.size() && IsDateSeparator(s[p]) && s[p] != '.') ++p;
  const size_t letters_end = LetterRunEnd(s, p);
  if (letters_end == p) return 0;
  const int month = MonthFromName(s.substr(p, letters_end - p));
  if (month > 0) end = letters_end;
  return month;
}

// Reads an optional separator then a run of `min`-`max` digits; returns the run's
// [begin, end) or an empty range.
std::pair<size_t, size_t> ReadNumber(std::string_view s, size_t p, size_t min, size_t max,
                                     bool separator_allowed) {
  if (separator_allowed && p < s.size() && IsDateSeparator(s[p])) ++p;
  const size_t end = DigitRunEnd(s, p);
  if (end - p < min || end - p > max) return {p, p};
  return {p, end};
}

bool ValidTime(int h, int m, int s) { return h >= 0 && h < 24 && m >= 0 && m < 60 && s < 60; }

// Dates starting with a digit run at `p` (p is the start of the run).
std::optional<DateHit> MatchNumericDate(std::string_view s, size_t p, bool at_start, bool is_file) {
  const size_t run_end = DigitRunEnd(s, p);
  const size_t run = run_end - p;
  const std::string_view digits = s.substr(p, run);
  DateHit hit;
  if (run == 8) {
    const int a = ParseInt(digits.substr(0, 4)), b = ParseInt(digits.substr(4, 2)),
              c = ParseInt(digits.substr(6, 2));
    if (PlausibleYear(a) && ValidDate(a, b, c)) {
      hit = {run_end, a, b, c, 0.9};
    } else {
      const int d = ParseInt(digits.substr(0, 2)), m = ParseInt(digits.substr(2, 2)),
                y = ParseInt(digits.substr(4, 4));
      const bool dmy = ValidDate(y, m, d) && PlausibleYear(y);
      const bool mdy = ValidDate(y, d, m) && PlausibleYear(y);
      if (!dmy && !mdy) return std::nullopt;
      hit = dmy ? DateHit{run_end, y, m, d, mdy ? 0.35 : 0.55} : DateHit{run_end, y, d, m, 0.55};
    }
    // "20190716_171352", "20190716-1713", "20190716T171352".
    if (run_end + 1 < s.size() && (s[run_end] == '_' || s[run_end] == '-' || s[run_end] == 'T')) {
      const size_t t = run_end + 1;
      const size_t t_end = DigitRunEnd(s, t);
      if (t_end - t == 6 || t_end - t == 4) {
        const int h = ParseInt(s.substr(t, 2)), mi = ParseInt(s.substr(t + 2, 2));
        const int sec = t_end - t == 6 ? ParseInt(s.substr(t + 4, 2)) : -1;
        if (ValidTime(h, mi, sec)) {
          hit.hour = h, hit.minute = mi, hit.second = sec, hit.time_begin = t;
          hit.end = t_end;
        }
      }
    }
    return hit;
  }
  if (run == 4 && PlausibleYear(ParseInt(digits))) {
    const int year = ParseInt(digits);
    // 2011-10-13, 2011_10_13, 2011.10.13 (one separator, the same twice).
    if (run_end < s.size() && IsDateSeparator(s[run_end]) && s[run_end] != ' ') {
      const char sep = s[run_end];
      const size_t m_end = DigitRunEnd(s, run_end + 1);
      const size_t m_len = m_end - (run_end + 1);
      if (m_len >= 1 && m_len <= 2) {
        const int month = ParseInt(s.substr(run_end + 1, m_len));
        if (m_end < s.size() && s[m_end] == sep) {
          const size_t d_end = DigitRunEnd(s, m_end + 1);
          const size_t d_len = d_end - (m_end + 1);
          if (d_len >= 1 && d_len <= 2) {
            const int day = ParseInt(s.substr(m_end + 1, d_len));
            if (ValidDate(year, month, day)) return DateHit{d_end, year, month, day, 0.9};
            return ImpossibleDate(d_end);  // "2011-02-30"
          }
        }
        // 2011-10: a month.
        if (month >= 1 && month <= 12 && (m_end >= s.size() || !IsDigit(s[m_end]))) {
          return DateHit{m_end, year, month, 0, 0.7};
        }
      }
    }
    // 2011Oct13, 2011-Oct-13.
    size_t month_end = 0;
    const int month = ReadMonthName(s, run_end, month_end);
    if (month > 0) {
      const auto [d_begin, d_end] = ReadNumber(s, month_end, 1, 2, true);
      if (d_end > d_begin) {
        const int day = ParseInt(s.substr(d_begin, d_end - d_begin));
        if (ValidDate(year, month, day)) return DateHit{d_end, year, month, day, 0.85};
      }
      return DateHit{month_end, year, month, 0, 0.7};
    }
    return std::nullopt;
  }
  if (run <= 2) {
    const int first = ParseInt(digits);
    // 13Oct11, 13-Oct-2011, 13 October 2011, 13Oct.
    size_t month_end = 0;
    const int month = ReadMonthName(s, run_end, month_end);
    if (month > 0) {
      const auto [y_begin, y_end] = ReadNumber(s, month_end, 2, 4, true);
      const size_t y_len = y_end - y_begin;
      if (y_len == 2 || y_len == 4) {
        const int yy = ParseInt(s.substr(y_begin, y_len));
        const int year = y_len == 2 ? ExpandTwoDigitYear(yy) : yy;
        if (ValidDate(year, month, first)) return DateHit{y_end, year, month, first, 0.85};
        return ImpossibleDate(y_end);  // "31Apr11"
      }
      if (ValidDate(0, month, first)) return DateHit{month_end, 0, month, first, 0.55};
      return std::nullopt;
    }
    // 13.10.2011, 10-13-2011, 13_10_2011: day or month first, a four-digit year last.
    if (run_end < s.size() && IsDateSeparator(s[run_end]) && s[run_end] != ' ') {
      const char sep = s[run_end];
      const size_t b_end = DigitRunEnd(s, run_end + 1);
      const size_t b_len = b_end - (run_end + 1);
      if (b_len >= 1 && b_len <= 2 && b_end < s.size() && s[b_end] == sep) {
        const size_t y_end = DigitRunEnd(s, b_end + 1);
        if (y_end - (b_end + 1) == 4) {
          const int second = ParseInt(s.substr(run_end + 1, b_len));
          const int year = ParseInt(s.substr(b_end + 1, 4));
          const bool dmy = ValidDate(year, second, first);
          const bool mdy = ValidDate(year, first, second);
          if (dmy && mdy && first != second) {
            // Ambiguous: dots are the European habit, dashes the American.
            return sep == '.' ? DateHit{y_end, year, second, first, 0.35}
                              : DateHit{y_end, year, first, second, 0.35};
          }
          if (dmy) return DateHit{y_end, year, second, first, 0.6};
          if (mdy) return DateHit{y_end, year, first, second, 0.6};
          return std::nullopt;
        }
      }
    }
    return std::nullopt;
  }
  // 111013 at the start of a folder name: YYMMDD, a weaker reading.
  if (run == 6 && at_start && !is_file) {
    const int year = ExpandTwoDigitYear(ParseInt(digits.substr(0, 2)));
    const int month = ParseInt(digits.substr(2, 2)), day = ParseInt(digits.substr(4, 2));
    if (ValidDate(year, month, day)) return DateHit{run_end, year, month, day, 0.45};
  }
  return std::nullopt;
}

// Dates starting with a month name at `p`: Oct13, Oct 13 2011, October 13, 2011, Oct2011.
std::optional<DateHit> MatchMonthFirstDate(std::string_view s, size_t p) {
  const size_t letters_end = LetterRunEnd(s, p);
  const int month = MonthFromName(s.substr(p, letters_end - p));
  if (month == 0) return std::nullopt;
  const auto [n_begin, n_end] = ReadNumber(s, letters_end, 1, 4, true);
  const size_t n_len = n_end - n_begin;
  if (n_len == 0 || n_len == 3) return std::nullopt;
  const int number = ParseInt(s.substr(n_begin, n_len));
  if (n_len == 4) {
    if (!PlausibleYear(number)) return std::nullopt;
    return DateHit{n_end, number, month, 0, 0.7};
  }
  // A day; a year may follow ("Oct 13 2011", "Oct-13-11", "October 13, 2011").
  size_t q = n_end;
  if (q + 1 < s.size() && s[q] == ',') ++q;
  if (q < s.size() && (IsDateSeparator(s[q]) && s[q] != '.')) {
    const size_t y_end = DigitRunEnd(s, q + 1);
    const size_t y_len = y_end - (q + 1);
    if (y_len == 4 || y_len == 2) {
      const int raw = ParseInt(s.substr(q + 1, y_len));
      const int year = y_len == 2 ? ExpandTwoDigitYear(raw) : raw;
      if (ValidDate(year, month, number)) return DateHit{y_end, year, month, number, 0.8};
    }
  }
  if (ValidDate(0, month, number)) return DateHit{n_end, 0, month, number, 0.5};
  return std::nullopt;
}

struct TimeHit {
  size_t end = 0;
  int hour = 0, minute = 0, second = -1;
  double confidence = 0;
};

// 16.20.55, 12-33-51, 12:33:51, 12_33_51 (two digits each, one separator twice); 17h13.
std::optional<TimeHit> MatchTime(std::string_view s, size_t p) {
  const size_t h_end = DigitRunEnd(s, p);
  if (h_end - p == 2 && h_end < s.size()) {
    const char sep = s[h_end];
    if (sep == '.' || sep == '-' || sep == ':' || sep == '_') {
      const size_t m_end = DigitRunEnd(s, h_end + 1);
      if (m_end - h_end == 3 && m_end < s.size() && s[m_end] == sep) {
        const size_t s_end = DigitRunEnd(s, m_end + 1);
        if (s_end - m_end == 3) {
          const int h = ParseInt(s.substr(p, 2)), m = ParseInt(s.substr(h_end + 1, 2)),
                    sec = ParseInt(s.substr(m_end + 1, 2));
          if (ValidTime(h, m, sec)) return TimeHit{s_end, h, m, sec, 0.9};
        }
      }
    }
  }
  if (h_end - p >= 1 && h_end - p <= 2 && h_end < s.size() && (s[h_end] == 'h')) {
    const size_t m_end = DigitRunEnd(s, h_end + 1);
    if (m_end - h_end == 3 && (m_end >= s.size() || !IsAsciiLetter(s[m_end]))) {
      const int h = ParseInt(s.substr(p, h_end - p)), m = ParseInt(s.substr(h_end + 1, 2));
      if (ValidTime(h, m, 0)) return TimeHit{m_end, h, m, -1, 0.5};
    }
  }
  return std::nullopt;
}

enum class QuantityKind { kMagnification, kCameraLength, kBeamEnergy };
struct QuantityHit {
  size_t end = 0;
  QuantityKind kind = QuantityKind::kMagnification;
  double value = 0;
};

// Reads digits with an optional decimal part at `p`; returns the end (p when none).
size_t ReadDecimal(std::string_view s, size_t p, double& value) {
  const size_t int_end = DigitRunEnd(s, p);
  if (int_end == p || int_end - p > 9) return p;
  size_t end = int_end;
  if (end + 1 < s.size() && s[end] == '.' && IsDigit(s[end + 1])) {
    end = DigitRunEnd(s, end + 1);
    if (end - int_end > 7) return p;
  }
  value = std::strtod(std::string(s.substr(p, end - p)).c_str(), nullptr);
  return end;
}

// 18 kx, 5.1 Mx, 910kx, 50000x, 720 x; 420mm, 66 cm; 300kV.
std::optional<QuantityHit> MatchQuantity(std::string_view s, size_t p) {
  double value = 0;
  const size_t number_end = ReadDecimal(s, p, value);
  if (number_end == p) return std::nullopt;
  size_t u = number_end;
  if (u < s.size() && s[u] == ' ') ++u;
  const size_t unit_end = LetterRunEnd(s, u);
  if (unit_end == u || (unit_end < s.size() && IsDigit(s[unit_end]))) return std::nullopt;
  const std::string unit = formats::AsciiLower(s.substr(u, unit_end - u));
  QuantityHit hit{unit_end, QuantityKind::kMagnification, value};
  if (unit == "x") {
    if (value < 10) return std::nullopt;
  } else if (unit == "kx") {
    hit.value = value * 1e3;
  } else if (unit == "mx") {
    hit.value = value * 1e6;
  } else if (unit == "mm" || unit == "cm") {
    hit.kind = QuantityKind::kCameraLength;
    hit.value = unit == "cm" ? value * 10 : value;
    if (hit.value < 1 || hit.value > 1e5) return std::nullopt;
    return hit;
  } else if (unit == "kv") {
    hit.kind = QuantityKind::kBeamEnergy;
    if (value < 1 || value > 3000) return std::nullopt;
    return hit;
  } else {
    return std::nullopt;
  }
  if (hit.value < 1 || hit.value > 1e9) return std::nullopt;
  return hit;
}

// x50k, X50000, x1.5M.
std::optional<QuantityHit> MatchPrefixMagnification(std::string_view s, size_t p) {
  if (s[p] != 'x' && s[p] != 'X') return std::nullopt;
  double value = 0;
  const size_t number_end = ReadDecimal(s, p + 1, value);
  if (number_end == p + 1) return std::nullopt;
  size_t end = number_end;
  if (end < s.size() && (s[end] == 'k' || s[end] == 'K')) {
    value *= 1e3, ++end;
  } else if (end < s.size() && s[end] == 'M') {
    value *= 1e6, ++end;
  }
  if (end < s.size() && IsWordByte(s[end])) return std::nullopt;
  if (value < 10 || value > 1e9) return std::nullopt;
  return QuantityHit{end, QuantityKind::kMagnification, value};
}

// ---------------------------------------------------------------------------------------
// The parse.

}  // namespace

// The facility's names as lookup keys: "titanx", "feititan", "ferreira", "aferreira".
struct PathFactsParser::Keys {
  struct Entry {
    bool instrument = false;
    size_t index = 0;
    bool strong = false;  // id or full name, not a surname or a name's tail
  };
  PathVocabulary known;
  std::unordered_map<std::string, std::vector<Entry>> by_key;
  std::unordered_map<size_t, std::vector<std::string>> keys_by_length;

  void Add(std::string key, Entry entry) {
    if (key.size() < 2 || AllDigits(key)) return;
    std::vector<Entry>& entries = by_key[key];
    for (const Entry& existing : entries) {
      if (existing.instrument == entry.instrument && existing.index == entry.index) return;
    }
    if (entries.empty()) keys_by_length[key.size()].push_back(key);
    entries.push_back(entry);
  }
};

namespace {

using Keys = PathFactsParser::Keys;

std::vector<std::string> NameWords(std::string_view name) {
  std::vector<std::string> words;
  const std::string normalised = nlp::NormaliseForMatching(name);
  size_t start = 0;
  while (start < normalised.size()) {
    size_t end = normalised.find(' ', start);
    if (end == std::string::npos) end = normalised.size();
    if (end > start) words.push_back(normalised.substr(start, end - start));
    start = end + 1;
  }
  return words;
}

struct PathParse {
  const Keys& keys;
  PathFacts facts;
  std::vector<Scan> scans;
  std::vector<std::string> texts;  // component texts (scans view them)

  void ScanSpans(Scan& scan) {
    std::string_view s = scan.text;
    const size_t first_word = [&] {
      size_t i = 0;
      while (i < s.size() && !IsWordByte(s[i])) ++i;
      return i;
    }();
    for (size_t p = 0; p < s.size(); ++p) {
      if (scan.taken[p]) continue;
      const char c = s[p];
      const bool run_start_digit = IsDigit(c) && (p == 0 || !IsDigit(s[p - 1]));
      const bool run_start_letter = IsAsciiLetter(c) && (p == 0 || !IsAsciiLetter(s[p - 1]));
      // A decimal's fraction is not a number of its own.
      const bool after_decimal_point = p >= 2 && s[p - 1] == '.' && IsDigit(s[p - 2]);
      if (run_start_digit && !after_decimal_point) {
        if (auto date = MatchNumericDate(s, p, p == first_word, scan.is_file)) {
          AddDate(scan, p, *date);
          p = date->end - 1;
          continue;
        }
        if (auto time = MatchTime(s, p)) {
          AddTime(scan, p, time->end, time->hour, time->minute, time->second,
                  scan.is_file ? time->confidence : time->confidence * 0.7);
          p = time->end - 1;
          continue;
        }
        if (auto quantity = MatchQuantity(s, p)) {
          AddQuantity(scan, p, *quantity);
          p = quantity->end - 1;
          continue;
        }
        // 1713 HAADF 18 kx.emd: Velox starts a file name with the hour and minute.
        const size_t run_end = DigitRunEnd(s, p);
        if (scan.is_file && p == first_word && run_end - p == 4 && run_end + 1 < s.size() &&
            (s[run_end] == ' ' || s[run_end] == '_' || s[run_end] == '-') &&
            HasLetter(s.substr(run_end))) {
          const int h = ParseInt(s.substr(p, 2)), m = ParseInt(s.substr(p + 2, 2));
          if (ValidTime(h, m, 0)) {
            AddTime(scan, p, run_end, h, m, -1, 0.6);
            p = run_end - 1;
            continue;
          }
        }
        p = run_end - 1;
        continue;
      }
      if (run_start_letter) {
        if (auto date = MatchMonthFirstDate(s, p)) {
          AddDate(scan, p, *date);
          p = date->end - 1;
          continue;
        }
        if (p == 0 || !IsWordByte(s[p - 1])) {
          if (auto quantity = MatchPrefixMagnification(s, p)) {
            AddQuantity(scan, p, *quantity);
            p = quantity->end - 1;
            continue;
          }
        }
      }
      // " (2)": a copy made by the file manager or the user.
      if (c == '(') {
        size_t q = p + 1;
        while (q < s.size() && s[q] == ' ') ++q;
        const size_t n_end = DigitRunEnd(s, q);
        size_t close = n_end;
        while (close < s.size() && s[close] == ' ') ++close;
        if (n_end > q && n_end - q <= 3 && close < s.size() && s[close] == ')') {
          PathSequence copy;
          copy.copy = ParseInt(s.substr(q, n_end - q));
          copy.evidence = Evidence(scan, p, close + 1, 0.8);
          facts.sequences.push_back(copy);
          Take(scan, p, close + 1);
          p = close;
        }
      }
    }
  }

  void AddDate(Scan& scan, size_t begin, const DateHit& hit) {
    Take(scan, begin, hit.end);
    if (hit.impossible) return;
    PathDate date;
    date.year = hit.year, date.month = hit.month, date.day = hit.day;
    date.precision = hit.day > 0     ? DatePrecision::kDay
                     : hit.month > 0 ? DatePrecision::kMonth
                                     : DatePrecision::kYear;
    date.iso = DateIso(hit.year, hit.month, hit.day);
    const size_t date_end = hit.hour >= 0 ? hit.time_begin - 1 : hit.end;
    date.evidence = Evidence(scan, begin, date_end, hit.confidence);
    facts.dates.push_back(std::move(date));
    if (hit.hour >= 0) {
      AddTime(scan, hit.time_begin, hit.end, hit.hour, hit.minute, hit.second, 0.8);
    }
    Take(scan, begin, hit.end);
    scan.had_date = true;
  }

  void AddTime(Scan& scan, size_t begin, size_t end, int h, int m, int sec, double confidence) {
    PathTime time;
    time.hour = h, time.minute = m, time.has_seconds = sec >= 0;
    time.second = std::max(sec, 0);
    time.iso = TwoDigits(h) + ":" + TwoDigits(m) + (sec >= 0 ? ":" + TwoDigits(sec) : "");
    time.evidence = Evidence(scan, begin, end, confidence);
    facts.times.push_back(std::move(time));
    Take(scan, begin, end);
  }

  void AddQuantity(Scan& scan, size_t begin, const QuantityHit& hit) {
    std::optional<PathQuantity>& slot =
        hit.kind == QuantityKind::kMagnification  ? facts.magnification
        : hit.kind == QuantityKind::kCameraLength ? facts.camera_length
                                                  : facts.beam_energy;
    const double confidence = scan.is_file ? 0.85 : 0.7;
    // The file name's own value wins; among folders, the deepest (later) one.
    if (!slot || slot->evidence.component <= scan.index) {
      slot = PathQuantity{hit.value, Evidence(scan, begin, hit.end, confidence)};
    }
    Take(scan, begin, hit.end);
  }

  // Coarse tokens, pieces and words of what the span facts left.
  void Tokenise(Scan& scan) {
    std::string_view s = scan.text;
    auto word_byte = [&](size_t i) { return i < s.size() && !scan.taken[i] && IsWordByte(s[i]); };
    size_t p = 0;
    while (p < s.size()) {
      if (!word_byte(p)) {
        ++p;
        continue;
      }
      Coarse coarse;
      coarse.begin = p;
      coarse.first_piece = static_cast<int>(scan.pieces.size());
      size_t q = p;
      while (q < s.size()) {
        if (word_byte(q)) {
          ++q;
          continue;
        }
        const char c = s[q];
        const bool binder =
            !scan.taken[q] && q > coarse.begin && word_byte(q + 1) &&
            (c == '-' || c == '@' || (c == '.' && IsDigit(s[q - 1]) && IsDigit(s[q + 1])));
        if (!binder) break;
        ++q;
      }
      coarse.end = q;
      const int coarse_index = static_cast<int>(scan.coarse.size());
      // Pieces: split at '-' and '@'.
      size_t piece_begin = coarse.begin;
      for (size_t i = coarse.begin; i <= coarse.end; ++i) {
        if (i < coarse.end && s[i] != '-' && s[i] != '@') continue;
        if (i > piece_begin) AddPiece(scan, piece_begin, i, coarse_index);
        piece_begin = i + 1;
      }
      coarse.end_piece = static_cast<int>(scan.pieces.size());
      scan.coarse.push_back(coarse);
      p = q;
    }
  }

  void AddPiece(Scan& scan, size_t begin, size_t end, int coarse_index) {
    Piece piece;
    piece.begin = begin, piece.end = end, piece.coarse = coarse_index;
    const std::string_view text = scan.text.substr(begin, end - begin);
    piece.lower = MatchKey(text);
    piece.first_word = static_cast<int>(scan.words.size());
    for (const auto& [b, e] : SplitPiece(text)) {
      Word word;
      word.begin = begin + b, word.end = begin + e;
      word.piece = static_cast<int>(scan.pieces.size());
      word.coarse = coarse_index;
      const std::string_view w = text.substr(b, e - b);
      word.numeric = AllDigits(w) || (!HasLetter(w) && IsDigit(w.front()));
      scan.words.push_back(word);
    }
    piece.end_word = static_cast<int>(scan.words.size());
    scan.pieces.push_back(std::move(piece));
  }

  bool PieceFree(const Scan& scan, int piece) const {
    const Piece& p = scan.pieces[piece];
    for (int w = p.first_word; w < p.end_word; ++w) {
      if (scan.words[w].consumed) return false;
    }
    return true;
  }
  bool PieceNumeric(const Scan& scan, int piece) const {
    const Piece& p = scan.pieces[piece];
    for (int w = p.first_word; w < p.end_word; ++w) {
      if (!scan.words[w].numeric) return false;
    }
    return true;
  }
  void ConsumePieces(Scan& scan, int first, int end) {
    for (int i = first; i < end; ++i) {
      for (int w = scan.pieces[i].first_word; w < scan.pieces[i].end_word; ++w) {
        scan.words[w].consumed = true;
      }
    }
  }
  // No span fact sits between two pieces (n-grams do not reach across a date).
  bool Adjacent(const Scan& scan, int a, int b) const {
    return !Taken(scan, scan.pieces[a].end, scan.pieces[b].begin);
  }

  // A folder that is only a year: "2012"; a year token among other words.
  void FindYears(Scan& scan) {
    if (scan.is_file) return;
    int free_tokens = 0;
    for (const Coarse& coarse : scan.coarse) {
      for (int i = coarse.first_piece; i < coarse.end_piece; ++i) free_tokens += PieceFree(scan, i);
    }
    for (const Coarse& coarse : scan.coarse) {
      if (coarse.end_piece - coarse.first_piece != 1) continue;
      const Piece& piece = scan.pieces[coarse.first_piece];
      const std::string_view text = scan.text.substr(piece.begin, piece.end - piece.begin);
      if (text.size() != 4 || !AllDigits(text) || !PlausibleYear(ParseInt(text))) continue;
      const bool alone = free_tokens == 1 && !scan.had_date;
      PathDate date;
      date.year = ParseInt(text);
      date.precision = DatePrecision::kYear;
      date.iso = DateIso(date.year, 0, 0);
      date.evidence = Evidence(scan, piece.begin, piece.end, alone ? 0.9 : 0.5);
      facts.dates.push_back(std::move(date));
      ConsumePieces(scan, coarse.first_piece, coarse.end_piece);
      scan.had_year_only = alone;
    }
  }

  // Known instruments and people, longest n-gram of pieces first.
  void FindEntities(Scan& scan) {
    if (keys.by_key.empty()) return;
    std::vector<int> named;  // free, non-numeric pieces
    for (int i = 0; i < static_cast<int>(scan.pieces.size()); ++i) {
      if (PieceFree(scan, i) && !PieceNumeric(scan, i)) named.push_back(i);
    }
    constexpr size_t kMaxPieces = 4;
    size_t k = 0;
    while (k < named.size()) {
      bool matched = false;
      for (size_t n = std::min(kMaxPieces, named.size() - k); n >= 1 && !matched; --n) {
        const int first = named[k], last = named[k + n - 1];
        bool contiguous = true;
        for (size_t j = k + 1; j < k + n; ++j) {
          contiguous &= named[j] == named[j - 1] + 1 && Adjacent(scan, named[j - 1], named[j]);
        }
        if (!contiguous) continue;
        std::string key;
        for (int i = first; i <= last; ++i) key += scan.pieces[i].lower;
        const bool whole = n == named.size();
        const bool coarse_aligned = scan.coarse[scan.pieces[first].coarse].first_piece == first &&
                                    scan.coarse[scan.pieces[last].coarse].end_piece == last + 1;
        matched = MatchEntity(scan, key, first, last, whole, coarse_aligned);
        if (matched) k += n;
      }
      if (!matched) ++k;
    }
  }

  bool MatchEntity(Scan& scan, const std::string& key, int first, int last, bool whole,
                   bool coarse_aligned) {
    const std::vector<Keys::Entry>* entries = nullptr;
    int edits = 0;
    auto exact = keys.by_key.find(key);
    if (exact != keys.by_key.end()) {
      entries = &exact->second;
    } else if (coarse_aligned && key.size() >= (whole ? 5u : 6u)) {
      // One typo: compare with the keys one letter longer, shorter or as long.
      for (size_t length = key.size() - 1; length <= key.size() + 1 && !entries; ++length) {
        auto bucket = keys.keys_by_length.find(length);
        if (bucket == keys.keys_by_length.end()) continue;
        for (const std::string& candidate : bucket->second) {
          if (candidate.size() >= 5 && WithinOneEdit(key, candidate)) {
            entries = &keys.by_key.at(candidate);
            edits = 1;
            break;
          }
        }
      }
    }
    if (entries == nullptr) return false;
    // Short keys and surnames inside a longer name are too easily ordinary words.
    std::vector<Keys::Entry> accepted;
    for (const Keys::Entry& entry : *entries) {
      const size_t min_partial = entry.strong ? 3 : 4;
      if (whole || key.size() >= min_partial) accepted.push_back(entry);
    }
    if (accepted.empty()) return false;
    const size_t begin = scan.pieces[first].begin, end = scan.pieces[last].end;
    for (const Keys::Entry& entry : accepted) {
      double confidence = whole ? 0.95 : (entry.strong ? 0.75 : 0.5);
      if (edits > 0) confidence *= 0.8;
      if (accepted.size() > 1) confidence *= 0.5;
      PathEntityMatch match;
      if (entry.instrument) {
        match.id = keys.known.instruments[entry.index].id;
        match.name = keys.known.instruments[entry.index].name;
      } else {
        match.id = keys.known.people[entry.index].id;
        match.name = keys.known.people[entry.index].name;
      }
      match.edits = edits;
      match.evidence = Evidence(scan, begin, end, confidence);
      (entry.instrument ? facts.instruments : facts.people).push_back(std::move(match));
      if (whole) (entry.instrument ? scan.whole_instrument : scan.whole_person) = true;
    }
    ConsumePieces(scan, first, last + 1);
    return true;
  }

  void AddTerm(Scan& scan, const TermEntry& entry, size_t begin, size_t end, int edits) {
    if (entry.flags & kSilent) return;
    PathTerm term;
    term.concept_id = std::string(entry.concept_id);
    term.label = std::string(entry.label);
    term.describes_sample = entry.describes_sample;
    term.edits = edits;
    double confidence = entry.confidence * (scan.is_file ? 1.0 : 0.9);
    if (edits > 0) confidence *= 0.7;
    term.evidence = Evidence(scan, begin, end, confidence);
    // One per concept (or label) per component.
    for (PathTerm& existing : facts.terms) {
      if (existing.evidence.component == scan.index && existing.concept_id == term.concept_id &&
          existing.label == term.label) {
        existing.evidence.confidence = std::max(existing.evidence.confidence, confidence);
        return;
      }
    }
    facts.terms.push_back(std::move(term));
  }

  // Looks `form` up; the entry when it applies here (file-only words in the file name,
  // capitals-only words in capitals).
  const TermEntry* LookUpTerm(const Scan& scan, const std::string& form,
                              std::string_view written) const {
    const TermTable& table = Terms();
    auto it = table.by_form.find(form);
    if (it == table.by_form.end()) return nullptr;
    const TermEntry& entry = it->second;
    if ((entry.flags & kFileOnly) && !scan.is_file) return nullptr;
    if ((entry.flags & kUpperOnly) && !AllUpperOrDigit(written)) return nullptr;
    return &entry;
  }

  // Technique, detector, software and vocabulary words: piece n-grams, then the words
  // inside compound pieces ("HAADFimage"), then one-letter typos of single pieces.
  void FindTerms(Scan& scan) {
    const TermTable& table = Terms();
    std::vector<bool> sample_term(scan.pieces.size(), false);
    const int piece_count = static_cast<int>(scan.pieces.size());
    for (int i = 0; i < piece_count;) {
      if (!PieceFree(scan, i) || sample_term[i]) {
        ++i;
        continue;
      }
      int matched = 0;
      for (int n = static_cast<int>(std::min<size_t>(table.max_words, piece_count - i));
           n >= 1 && matched == 0; --n) {
        std::string form = scan.pieces[i].lower;
        bool usable = true;
        for (int j = i + 1; j < i + n && usable; ++j) {
          usable = PieceFree(scan, j) && !sample_term[j] && Adjacent(scan, j - 1, j);
          form += ' ';
          form += scan.pieces[j].lower;
        }
        if (!usable) continue;
        const size_t begin = scan.pieces[i].begin, end = scan.pieces[i + n - 1].end;
        const TermEntry* entry = LookUpTerm(scan, form, scan.text.substr(begin, end - begin));
        if (entry == nullptr) continue;
        AddTerm(scan, *entry, begin, end, 0);
        for (int j = i; j < i + n; ++j) {
          if (entry->describes_sample) {
            sample_term[j] = true;
          } else {
            ConsumePieces(scan, j, j + 1);
          }
        }
        matched = n;
      }
      i += std::max(matched, 1);
    }
    // Words inside compound pieces.
    for (int i = 0; i < piece_count; ++i) {
      const Piece& piece = scan.pieces[i];
      if (piece.end_word - piece.first_word < 2 || !PieceFree(scan, i) || sample_term[i]) {
        continue;
      }
      for (int w = piece.first_word; w < piece.end_word; ++w) {
        Word& word = scan.words[w];
        if (word.numeric) {
          // "id42004": a record number, not a sequence.
          if (w > piece.first_word && scan.words[w - 1].consumed &&
              MatchKey(scan.text.substr(scan.words[w - 1].begin,
                                        scan.words[w - 1].end - scan.words[w - 1].begin)) == "id") {
            word.identifier = true;
            word.consumed = true;
          }
          continue;
        }
        const std::string_view written = scan.text.substr(word.begin, word.end - word.begin);
        const TermEntry* entry = LookUpTerm(scan, MatchKey(written), written);
        if (entry == nullptr || entry->describes_sample) continue;
        AddTerm(scan, *entry, word.begin, word.end, 0);
        word.consumed = true;
      }
    }
    // One-letter typos of single letter-only pieces ("SEAD", "HRTTEM", "seres").
    for (int i = 0; i < piece_count; ++i) {
      if (!PieceFree(scan, i) || sample_term[i]) continue;
      const std::string& lower = scan.pieces[i].lower;
      if (lower.size() < 4 || !std::all_of(lower.begin(), lower.end(), IsLower)) continue;
      const TermEntry* found = nullptr;
      bool ambiguous = false;
      for (const auto& [target, entry] : table.fuzzy_targets) {
        if (target == lower) {
          found = nullptr;  // the word itself is a form that did not apply here
          ambiguous = true;
          break;
        }
        const bool close =
            target.size() >= 5 ? WithinOneEdit(lower, target) : IsAdjacentSwap(lower, target);
        if (!close) continue;
        const std::string_view written =
            scan.text.substr(scan.pieces[i].begin, scan.pieces[i].end - scan.pieces[i].begin);
        const TermEntry* applicable = LookUpTerm(scan, target, written);
        if (applicable == nullptr) continue;
        if (found != nullptr &&
            (found->concept_id != applicable->concept_id || found->label != applicable->label)) {
          ambiguous = true;
        }
        found = applicable;
      }
      if (found == nullptr || ambiguous) continue;
      AddTerm(scan, *found, scan.pieces[i].begin, scan.pieces[i].end, 1);
      if (!found->describes_sample) ConsumePieces(scan, i, i + 1);
    }
  }

  // Numbers standing alone (or left alone once the words beside them were taken) are
  // counters, not sample words: "crystal 2", "_0026_1", "scan0000046".
  std::vector<int> LooseNumbers(const Scan& scan) const {
    std::vector<int> loose;
    for (int w = 0; w < static_cast<int>(scan.words.size()); ++w) {
      const Word& word = scan.words[w];
      if (!word.numeric || word.consumed) continue;
      const Coarse& coarse = scan.coarse[word.coarse];
      bool alone = true;
      for (int p = coarse.first_piece; p < coarse.end_piece && alone; ++p) {
        for (int o = scan.pieces[p].first_word; o < scan.pieces[p].end_word; ++o) {
          const Word& other = scan.words[o];
          if (o != w && !other.consumed && !other.numeric) alone = false;
        }
      }
      if (alone) loose.push_back(w);
    }
    return loose;
  }

  std::string_view WordText(const Scan& scan, const Word& word) const {
    return scan.text.substr(word.begin, word.end - word.begin);
  }

  void FindSequence(Scan& scan, const std::vector<std::string>& hint) {
    std::vector<int> loose = LooseNumbers(scan);
    for (int w : loose) scan.words[w].consumed = true;
    if (!scan.is_file) return;
    std::vector<int> counters;
    for (int w : loose) {
      if (WordText(scan, scan.words[w]).find('.') == std::string_view::npos) {
        counters.push_back(w);
      }
    }
    if (!counters.empty()) {
      PathSequence sequence;
      const Word& last = scan.words[counters.back()];
      size_t begin = last.begin;
      const std::string_view last_text = WordText(scan, last);
      sequence.number = last_text.size() <= 12 ? ParseInt64(last_text) : -1;
      // "_0026_1": element 1 of the series numbered 26 (TIA writes one _N.ser per detector).
      if (counters.size() >= 2) {
        const Word& before = scan.words[counters[counters.size() - 2]];
        const std::string_view between = scan.text.substr(before.end, last.begin - before.end);
        const std::string_view before_text = WordText(scan, before);
        if (between == "_" && before_text.size() >= 3 && before_text.size() <= 12 &&
            last_text.size() <= 2) {
          sequence.element = ParseInt(last_text);
          sequence.number = ParseInt64(before_text);
          begin = before.begin;
        }
      }
      if (sequence.number < 0) return;
      sequence.evidence = Evidence(scan, begin, last.end, 0.85);
      facts.sequences.push_back(sequence);
      return;
    }
    SplitTrailingCounter(scan, hint);
  }

  // "BiFeO326.tif" under "BiFeO3 FIB lamella", "CdSe-ZnS36.tif": digits run into the
  // sample's name. They are split off when the folder names the sample, or when what
  // is left of the word is a formula and two digits or more remain.
  void SplitTrailingCounter(Scan& scan, const std::vector<std::string>& hint) {
    for (int c = static_cast<int>(scan.coarse.size()) - 1; c >= 0; --c) {
      const Coarse& coarse = scan.coarse[c];
      const Piece& last_piece = scan.pieces[coarse.end_piece - 1];
      if (scan.words[last_piece.end_word - 1].consumed) continue;
      const std::string_view text = scan.text.substr(coarse.begin, coarse.end - coarse.begin);
      size_t digits = text.size();
      while (digits > 0 && IsDigit(text[digits - 1])) --digits;
      if (text.size() - digits < 2 || !HasLetter(text.substr(0, digits))) return;
      size_t split = std::string_view::npos;
      double confidence = 0.7;
      for (size_t cut = digits; cut + 2 <= text.size(); ++cut) {
        const std::string name = formats::AsciiLower(text.substr(0, cut));
        if (std::find(hint.begin(), hint.end(), name) != hint.end()) split = cut;
      }
      if (split == std::string_view::npos) {
        const size_t piece_start = last_piece.begin - coarse.begin;
        for (size_t cut = text.size() - 2; cut >= digits && cut > piece_start; --cut) {
          if (IsFormula(text.substr(piece_start, cut - piece_start))) {
            split = cut;
            confidence = 0.5;
            break;
          }
        }
      }
      if (split == std::string_view::npos) return;
      const std::string_view counter = text.substr(split);
      if (counter.size() > 12) return;
      PathSequence sequence;
      sequence.number = ParseInt64(counter);
      sequence.evidence = Evidence(scan, coarse.begin + split, coarse.end, confidence);
      facts.sequences.push_back(sequence);
      Take(scan, coarse.begin + split, coarse.end);
      trimmed_coarse_end_[c] = coarse.begin + split;
      return;
    }
  }

  // The words left over, at coarse-token level: runs of free words of a token, written
  // as they are ("Ti-6-4", "CdSe@ZnS").
  void CollectResidual(Scan& scan) {
    for (int c = 0; c < static_cast<int>(scan.coarse.size()); ++c) {
      const Coarse& coarse = scan.coarse[c];
      const size_t limit = trimmed_coarse_end_.count(c) ? trimmed_coarse_end_[c] : coarse.end;
      size_t run_begin = std::string_view::npos, run_end = 0;
      auto flush = [&] {
        if (run_begin != std::string_view::npos && run_end > run_begin) {
          std::string_view word = scan.text.substr(run_begin, run_end - run_begin);
          while (!word.empty() && (word.back() == '-' || word.back() == '@')) {
            word.remove_suffix(1);
          }
          if (HasLetter(word)) scan.residual.emplace_back(word);
        }
        run_begin = std::string_view::npos;
      };
      for (int p = coarse.first_piece; p < coarse.end_piece; ++p) {
        for (int w = scan.pieces[p].first_word; w < scan.pieces[p].end_word; ++w) {
          const Word& word = scan.words[w];
          if (word.consumed || word.begin >= limit) {
            flush();
            continue;
          }
          if (run_begin == std::string_view::npos) run_begin = word.begin;
          run_end = std::min(word.end, limit);
        }
      }
      flush();
    }
  }

  std::unordered_map<int, size_t> trimmed_coarse_end_;

  void Analyse(Scan& scan, const std::vector<std::string>& hint) {
    trimmed_coarse_end_.clear();
    scan.taken.assign(scan.text.size(), false);
    ScanSpans(scan);
    Tokenise(scan);
    FindYears(scan);
    FindEntities(scan);
    FindTerms(scan);
    FindSequence(scan, hint);
    CollectResidual(scan);
  }
};

// Splits a word list entry into the fine words of sample_words.
void AppendFineWords(std::string_view text, std::vector<std::string>& out) {
  size_t begin = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    if (i < text.size() && IsWordByte(text[i])) continue;
    if (i > begin) {
      const std::string_view piece = text.substr(begin, i - begin);
      if (piece.find('.') == std::string_view::npos) {
        for (const auto& [b, e] : SplitPiece(piece)) out.emplace_back(piece.substr(b, e - b));
      }
    }
    begin = i + 1;
  }
}

}  // namespace

bool WithinOneEdit(std::string_view a, std::string_view b) {
  if (a.size() > b.size()) std::swap(a, b);
  if (b.size() - a.size() > 1) return false;
  size_t i = 0;
  while (i < a.size() && a[i] == b[i]) ++i;
  if (i == a.size()) return true;  // equal, or one letter added at the end
  if (a.size() == b.size()) {
    if (a.substr(i + 1) == b.substr(i + 1)) return true;  // one letter changed
    return i + 1 < a.size() && a[i] == b[i + 1] && a[i + 1] == b[i] &&
           a.substr(i + 2) == b.substr(i + 2);  // two neighbours swapped
  }
  return a.substr(i) == b.substr(i + 1);  // one letter added or dropped
}

PathFactsParser::PathFactsParser(const PathVocabulary& known) {
  auto keys = std::make_unique<Keys>();
  keys->known = known;
  for (size_t i = 0; i < known.instruments.size(); ++i) {
    const KnownInstrument& instrument = known.instruments[i];
    keys->Add(MatchKey(instrument.id), {true, i, true});
    keys->Add(MatchKey(instrument.name), {true, i, true});
    // "FEI Titan" is also written "Titan": the tails of the name.
    const std::vector<std::string> words = NameWords(instrument.name);
    for (size_t start = 1; start < words.size(); ++start) {
      std::string tail;
      for (size_t j = start; j < words.size(); ++j) tail += words[j];
      if (tail.size() >= 4) keys->Add(tail, {true, i, false});
    }
  }
  for (size_t i = 0; i < known.people.size(); ++i) {
    const KnownPerson& person = known.people[i];
    keys->Add(MatchKey(person.id), {false, i, true});
    const std::vector<std::string> words = NameWords(person.name);
    if (words.empty()) continue;
    const std::string& surname = words.back();
    keys->Add(surname, {false, i, false});
    if (words.size() >= 2) {
      const std::string& given = words.front();
      keys->Add(given + surname, {false, i, true});
      keys->Add(surname + given, {false, i, true});
      keys->Add(given.substr(0, 1) + surname, {false, i, true});
      keys->Add(surname + given.substr(0, 1), {false, i, true});
      std::string full;
      for (const std::string& word : words) full += word;
      keys->Add(full, {false, i, true});
    }
  }
  keys_ = std::move(keys);
}

PathFactsParser::~PathFactsParser() = default;
PathFactsParser::PathFactsParser(PathFactsParser&&) noexcept = default;
PathFactsParser& PathFactsParser::operator=(PathFactsParser&&) noexcept = default;

PathFacts PathFactsParser::Parse(std::string_view relative_path) const {
  PathParse parse{*keys_, {}, {}, {}, {}};
  PathFacts& facts = parse.facts;
  const std::string path = formats::ToUtf8Lossless(relative_path);

  // Components; "." and empty ones (doubled slashes) are not names.
  size_t start = 0;
  for (size_t i = 0; i <= path.size(); ++i) {
    if (i < path.size() && path[i] != '/' && path[i] != '\\') continue;
    std::string_view component(path.data() + start, i - start);
    if (!component.empty() && component != "." && component != "..") {
      parse.texts.emplace_back(component);
    }
    start = i + 1;
  }
  if (parse.texts.empty()) return facts;
  for (const std::string& text : parse.texts) {
    facts.components.push_back(PathComponent{text, ComponentRole::kUnknown, {}});
  }

  // The file name's extension: a dot followed by 1-8 letters and digits, a letter first.
  std::string_view file_stem = parse.texts.back();
  const size_t dot = file_stem.rfind('.');
  if (dot != std::string_view::npos && dot > 0 && file_stem.size() - dot - 1 >= 1 &&
      file_stem.size() - dot - 1 <= 8 && IsAsciiLetter(file_stem[dot + 1]) &&
      std::all_of(file_stem.begin() + dot + 1, file_stem.end(),
                  [](char c) { return IsDigit(c) || IsAsciiLetter(c); })) {
    facts.extension = formats::AsciiLower(file_stem.substr(dot + 1));
    file_stem = file_stem.substr(0, dot);
  }

  const int count = static_cast<int>(parse.texts.size());
  parse.scans.resize(count);
  for (int i = 0; i < count; ++i) {
    Scan& scan = parse.scans[i];
    scan.index = i;
    scan.is_file = i == count - 1;
    scan.text = scan.is_file ? file_stem : std::string_view(parse.texts[i]);
  }

  // Folders first: the sample folder's words help read the file name.
  const std::vector<std::string> no_hint;
  for (int i = 0; i + 1 < count; ++i) parse.Analyse(parse.scans[i], no_hint);

  int organisation_depth = -1;  // the deepest instrument, person or year folder
  for (int i = 0; i + 1 < count; ++i) {
    Scan& scan = parse.scans[i];
    PathComponent& component = facts.components[i];
    component.words = scan.residual;
    if (scan.whole_instrument) {
      component.role = ComponentRole::kInstrument;
    } else if (scan.whole_person) {
      component.role = ComponentRole::kPerson;
    } else if (!scan.residual.empty()) {
      component.role = ComponentRole::kSample;
    } else if (scan.had_year_only) {
      component.role = ComponentRole::kYear;
    } else if (scan.had_date) {
      component.role = ComponentRole::kDate;
    }
    if (component.role == ComponentRole::kInstrument || component.role == ComponentRole::kPerson ||
        component.role == ComponentRole::kYear) {
      organisation_depth = i;
    }
  }
  int sample_folder = -1;
  for (int i = count - 2; i > organisation_depth; --i) {
    if (facts.components[i].role == ComponentRole::kSample) {
      sample_folder = i;
      break;
    }
  }
  std::vector<std::string> hint;
  for (int i = 0; i + 1 < count; ++i) {
    if (sample_folder >= 0 && i != sample_folder) continue;
    for (const std::string& word : facts.components[i].words) {
      hint.push_back(formats::AsciiLower(word));
      std::vector<std::string> fine;
      AppendFineWords(word, fine);
      for (const std::string& f : fine) hint.push_back(formats::AsciiLower(f));
    }
  }
  Scan& file = parse.scans[count - 1];
  parse.Analyse(file, hint);
  facts.components.back().role = ComponentRole::kFile;
  facts.components.back().words = file.residual;

  // Sample text: the sample folder's words, then the file name's words it lacks.
  std::vector<std::string> sample;
  std::vector<std::string> seen;
  auto add_words = [&](int component) {
    bool used = false;
    for (const std::string& word : facts.components[component].words) {
      const std::string lower = formats::AsciiLower(word);
      if (std::find(seen.begin(), seen.end(), lower) != seen.end()) continue;
      seen.push_back(lower);
      sample.push_back(word);
      used = true;
    }
    if (used) facts.sample_components.push_back(component);
  };
  if (sample_folder >= 0) add_words(sample_folder);
  add_words(count - 1);
  for (size_t i = 0; i < sample.size(); ++i) {
    if (i > 0) facts.sample_text += ' ';
    facts.sample_text += sample[i];
    AppendFineWords(sample[i], facts.sample_words);
  }
  if (!sample.empty()) {
    const bool dated_folder = sample_folder >= 0 && parse.scans[sample_folder].had_date;
    facts.sample_confidence = sample_folder < 0 ? 0.5 : (dated_folder ? 0.8 : 0.65);
  }

  // The best date: the most specific, nearest the file, most confident; a year taken
  // from elsewhere when it has none.
  const PathDate* best = nullptr;
  const PathDate* best_year = nullptr;
  for (const PathDate& date : facts.dates) {
    auto better = [](const PathDate& a, const PathDate* b) {
      if (b == nullptr) return true;
      const bool a_year = a.year > 0, b_year = b->year > 0;
      if (a.precision != b->precision) return a.precision > b->precision;
      if (a_year != b_year) return a_year;
      if (a.evidence.component != b->evidence.component) {
        return a.evidence.component > b->evidence.component;
      }
      return a.evidence.confidence > b->evidence.confidence;
    };
    if (better(date, best)) best = &date;
    if (date.year > 0 &&
        (best_year == nullptr || date.evidence.confidence > best_year->evidence.confidence)) {
      best_year = &date;
    }
  }
  if (best != nullptr) {
    PathDate chosen = *best;
    if (chosen.year == 0 && best_year != nullptr) {
      chosen.year = best_year->year;
      chosen.year_inferred = true;
      if (ValidDate(chosen.year, chosen.month, chosen.day)) {
        chosen.iso = DateIso(chosen.year, chosen.month, chosen.day);
        chosen.evidence.confidence *= 0.9;
      } else {  // 29 February in a year without one
        chosen.year = 0;
        chosen.year_inferred = false;
      }
    }
    // A year folder that disagrees lowers the trust in both.
    for (const PathDate& other : facts.dates) {
      if (other.year > 0 && chosen.year > 0 && other.year != chosen.year &&
          other.evidence.confidence >= 0.5) {
        chosen.evidence.confidence *= 0.7;
        break;
      }
    }
    facts.date = std::move(chosen);
  }

  // The time: the file name's, else the deepest folder's.
  for (const PathTime& time : facts.times) {
    if (!facts.time || time.evidence.component > facts.time->evidence.component ||
        (time.evidence.component == facts.time->evidence.component &&
         time.evidence.confidence > facts.time->evidence.confidence)) {
      facts.time = time;
    }
  }
  for (const PathSequence& sequence : facts.sequences) {
    if (sequence.evidence.component == count - 1) {
      if (!facts.sequence) {
        facts.sequence = sequence;
      } else if (sequence.number >= 0 && facts.sequence->number < 0) {
        facts.sequence->number = sequence.number;
        facts.sequence->element = sequence.element;
      } else if (sequence.copy >= 0) {
        facts.sequence->copy = sequence.copy;
      }
    }
  }
  auto by_confidence = [](const PathEntityMatch& a, const PathEntityMatch& b) {
    return a.evidence.confidence > b.evidence.confidence;
  };
  std::stable_sort(facts.instruments.begin(), facts.instruments.end(), by_confidence);
  std::stable_sort(facts.people.begin(), facts.people.end(), by_confidence);
  return facts;
}

PathFacts ParsePathFacts(std::string_view relative_path, const PathVocabulary& known) {
  return PathFactsParser(known).Parse(relative_path);
}

}  // namespace scisearch::context
