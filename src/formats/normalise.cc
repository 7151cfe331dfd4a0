#include "formats/normalise.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <vector>

#include "formats/text.h"

namespace scisearch::formats {
namespace {

bool Contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

// True when `word` occurs in `text` bounded by non-letters (so "sem" does not match "assembly").
bool HasWord(const std::string& text, std::string_view word) {
  for (size_t p = text.find(word); p != std::string::npos; p = text.find(word, p + 1)) {
    const bool left = p == 0 || !std::isalpha(static_cast<unsigned char>(text[p - 1]));
    const size_t end = p + word.size();
    const bool right = end >= text.size() || !std::isalpha(static_cast<unsigned char>(text[end]));
    if (left && right) return true;
  }
  return false;
}

// Month number (1-12) from an English, German, French or Spanish name or
// abbreviation; 0 when the word is not a month.
int MonthFromName(std::string_view word) {
  static const std::array<std::array<const char*, 4>, 12> kNames = {{
      {"jan", "jän", "janv", "ene"},
      {"feb", "fév", "fev", "feb"},
      {"mar", "mär", "mars", "mar"},
      {"apr", "avr", "abr", "apr"},
      {"may", "mai", "mayo", "mai"},
      {"jun", "juin", "jun", "jun"},
      {"jul", "juil", "jul", "jul"},
      {"aug", "aoû", "aou", "ago"},
      {"sep", "sept", "set", "sep"},
      {"oct", "okt", "oct", "oct"},
      {"nov", "nov", "nov", "nov"},
      {"dec", "dez", "déc", "dic"},
  }};
  const std::string w = AsciiLower(word);
  if (w.size() < 3) return 0;
  for (int m = 0; m < 12; ++m) {
    for (const char* name : kNames[m]) {
      const std::string_view n(name);
      if (w.compare(0, n.size(), n) == 0) return m + 1;
    }
  }
  return 0;
}

struct Civil {
  int year = 0, month = 0, day = 0;
  int hour = -1, minute = 0, second = 0;
  int micro = 0;
  bool has_fraction = false;
  std::string zone;  // "Z", "+02:00", or empty
};

bool ValidDate(const Civil& c) {
  static const int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return c.year >= 1900 && c.year <= 2200 && c.month >= 1 && c.month <= 12 && c.day >= 1 &&
         c.day <= kDays[c.month - 1];
}

bool ValidTime(const Civil& c) {
  return c.hour >= 0 && c.hour <= 23 && c.minute >= 0 && c.minute <= 59 && c.second >= 0 &&
         c.second <= 60;
}

std::string Format(const Civil& c) {
  char buf[64];
  if (c.hour < 0) {
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", c.year, c.month, c.day);
    return buf;
  }
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d", c.year, c.month, c.day, c.hour,
                c.minute, c.second);
  return std::string(buf) + c.zone;
}

// Splits text into tokens: runs of digits, runs of letters, and single punctuation marks.
struct Token {
  enum Kind { kNumber, kWord, kPunct } kind;
  std::string text;
};

std::vector<Token> Tokenise(std::string_view s) {
  std::vector<Token> out;
  size_t i = 0;
  while (i < s.size() && out.size() < 64) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (std::isspace(c)) {
      ++i;
    } else if (std::isdigit(c)) {
      size_t j = i;
      while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
      out.push_back({Token::kNumber, std::string(s.substr(i, j - i))});
      i = j;
    } else if (std::isalpha(c) || c >= 0x80) {
      size_t j = i;
      while (j < s.size() && (std::isalpha(static_cast<unsigned char>(s[j])) ||
                              static_cast<unsigned char>(s[j]) >= 0x80)) {
        ++j;
      }
      out.push_back({Token::kWord, std::string(s.substr(i, j - i))});
      i = j;
    } else {
      out.push_back({Token::kPunct, std::string(1, s[i])});
      ++i;
    }
  }
  return out;
}

int ToInt(const std::string& digits) {
  if (digits.empty() || digits.size() > 9) return -1;
  return std::stoi(digits);
}

// Parses a time of day starting at token i: H:MM[:SS[.frac]] [AM|PM] [Z|+HH:MM].
// Returns the index after the time, or i when there is none.
size_t ParseTime(const std::vector<Token>& t, size_t i, Civil& c) {
  if (i + 2 >= t.size() + 0 || t[i].kind != Token::kNumber) return i;
  if (i + 2 >= t.size() || t[i + 1].text != ":" || t[i + 2].kind != Token::kNumber) return i;
  Civil trial = c;
  trial.hour = ToInt(t[i].text);
  trial.minute = ToInt(t[i + 2].text);
  size_t j = i + 3;
  if (j + 1 < t.size() && t[j].text == ":" && t[j + 1].kind == Token::kNumber) {
    trial.second = ToInt(t[j + 1].text);
    j += 2;
    if (j + 1 < t.size() && (t[j].text == "." || t[j].text == ",") &&
        t[j + 1].kind == Token::kNumber) {
      j += 2;  // fractions of a second are dropped: instruments' clocks are not that good
    }
  }
  if (j < t.size() && t[j].kind == Token::kWord) {
    std::string w = AsciiLower(t[j].text);
    // Spanish and other locales write the meridiem as "p.m." / "a. m.".
    if ((w == "p" || w == "a") && j + 2 < t.size() && t[j + 1].text == "." &&
        AsciiLower(t[j + 2].text) == "m") {
      w += "m";
      j += 2;
      if (j + 1 < t.size() && t[j + 1].text == ".") ++j;
    }
    if (w == "pm" || w == "am") {
      if (trial.hour < 1 || trial.hour > 12) return i;
      if (w == "pm" && trial.hour != 12) trial.hour += 12;
      if (w == "am" && trial.hour == 12) trial.hour = 0;
      ++j;
    } else if (w == "z" || w == "utc" || w == "gmt") {
      trial.zone = "Z";
      ++j;
    }
  }
  if (j + 1 < t.size() && (t[j].text == "+" || t[j].text == "-") &&
      t[j + 1].kind == Token::kNumber && (t[j + 1].text.size() == 2 || t[j + 1].text.size() == 4)) {
    std::string hh = t[j + 1].text.substr(0, 2);
    std::string mm = t[j + 1].text.size() == 4 ? t[j + 1].text.substr(2) : "00";
    size_t k = j + 2;
    if (t[j + 1].text.size() == 2 && k + 1 < t.size() && t[k].text == ":" &&
        t[k + 1].kind == Token::kNumber && t[k + 1].text.size() == 2) {
      mm = t[k + 1].text;
      k += 2;
    }
    trial.zone = t[j].text + hh + ":" + mm;
    j = k;
  }
  if (!ValidTime(trial)) return i;
  c = trial;
  return j;
}

// Parses a date starting at token i. Returns the index after it, or i when none.
size_t ParseDate(const std::vector<Token>& t, size_t i, bool day_first, Civil& c) {
  auto num = [&](size_t k) { return k < t.size() && t[k].kind == Token::kNumber; };
  auto word = [&](size_t k) { return k < t.size() && t[k].kind == Token::kWord; };
  auto sep = [&](size_t k) {
    return k < t.size() &&
           (t[k].text == "-" || t[k].text == "/" || t[k].text == "." || t[k].text == ":");
  };
  Civil trial = c;
  // 20111013 (compact year-month-day)
  if (num(i) && t[i].text.size() == 8) {
    trial.year = ToInt(t[i].text.substr(0, 4));
    trial.month = ToInt(t[i].text.substr(4, 2));
    trial.day = ToInt(t[i].text.substr(6, 2));
    if (ValidDate(trial)) {
      c = trial;
      return i + 1;
    }
    return i;
  }
  // YYYY-MM-DD, YYYY/MM/DD, YYYY:MM:DD (TIFF)
  if (num(i) && t[i].text.size() == 4 && sep(i + 1) && num(i + 2) && sep(i + 3) && num(i + 4)) {
    trial.year = ToInt(t[i].text);
    trial.month = ToInt(t[i + 2].text);
    trial.day = ToInt(t[i + 4].text);
    if (ValidDate(trial)) {
      c = trial;
      size_t j = i + 5;
      if (j < t.size() && t[j].kind == Token::kWord && AsciiLower(t[j].text) == "t") ++j;
      return j;
    }
    return i;
  }
  // DD.MM.YYYY, MM/DD/YYYY, DD/MM/YYYY, DD-MM-YYYY (two-digit years are 20YY)
  if (num(i) && sep(i + 1) && num(i + 2) && sep(i + 3) && num(i + 4) && t[i].text.size() <= 2 &&
      t[i + 2].text.size() <= 2 && (t[i + 4].text.size() == 4 || t[i + 4].text.size() == 2)) {
    int a = ToInt(t[i].text), b = ToInt(t[i + 2].text), y = ToInt(t[i + 4].text);
    if (y < 100) y += 2000;
    trial.year = y;
    const bool dotted = t[i + 1].text == ".";  // German style is always day first
    bool dfirst = day_first || dotted;
    if (!dfirst && a > 12) dfirst = true;
    if (dfirst && b > 12 && a <= 12) dfirst = false;
    trial.day = dfirst ? a : b;
    trial.month = dfirst ? b : a;
    if (ValidDate(trial)) {
      c = trial;
      return i + 5;
    }
    return i;
  }
  // [Weekday] Mon DD [time] YYYY  (ctime: "Fri Oct 14 09:38:28 2011") and "Oct 14, 2011"
  size_t k = i;
  if (word(k) && MonthFromName(t[k].text) == 0 && word(k + 1)) ++k;  // weekday
  if (word(k) && t[k].kind == Token::kWord && k < t.size() && MonthFromName(t[k].text) > 0 &&
      num(k + 1)) {
    trial.month = MonthFromName(t[k].text);
    trial.day = ToInt(t[k + 1].text);
    size_t j = k + 2;
    if (j < t.size() && t[j].text == ",") ++j;
    size_t after_time = ParseTime(t, j, trial);
    j = after_time;
    if (num(j) && t[j].text.size() == 4) {
      trial.year = ToInt(t[j].text);
      if (ValidDate(trial)) {
        c = trial;
        return j + 1;
      }
    }
    return i;
  }
  // DD Mon YYYY, "13 Jun 2016", "27. August 2016", "27 de agosto de 2016"
  if (num(i) && t[i].text.size() <= 2) {
    size_t j = i + 1;
    if (j < t.size() && t[j].text == ".") ++j;
    if (word(j) && AsciiLower(t[j].text) == "de") ++j;
    if (word(j) && MonthFromName(t[j].text) > 0) {
      trial.day = ToInt(t[i].text);
      trial.month = MonthFromName(t[j].text);
      ++j;
      if (j < t.size() && (t[j].text == "." || t[j].text == ",")) ++j;
      if (word(j) && AsciiLower(t[j].text) == "de") ++j;
      if (num(j) && t[j].text.size() == 4) {
        trial.year = ToInt(t[j].text);
        if (ValidDate(trial)) {
          c = trial;
          return j + 1;
        }
      }
    }
  }
  return i;
}

}  // namespace

std::optional<std::string> ParseDateTime(std::string_view text, bool day_first) {
  text = TrimSpace(text);
  if (text.empty() || text.size() > 200) return std::nullopt;
  const std::vector<Token> t = Tokenise(text);
  // Find the first token where a date starts; a time may come before or after it.
  for (size_t i = 0; i < t.size(); ++i) {
    Civil c;
    size_t time_end = ParseTime(t, i, c);
    size_t start = time_end != i ? time_end : i;
    size_t end = ParseDate(t, start, day_first, c);
    if (end == start) continue;
    if (c.hour < 0) ParseTime(t, end, c);
    return Format(c);
  }
  return std::nullopt;
}

std::optional<std::string> ParseDateAndTime(std::string_view date, std::string_view time,
                                            bool day_first) {
  auto d = ParseDateTime(date, day_first);
  if (!d) return std::nullopt;
  if (d->find('T') != std::string::npos) return d;
  const std::vector<Token> t = Tokenise(TrimSpace(time));
  Civil c;
  for (size_t i = 0; i < t.size(); ++i) {
    if (ParseTime(t, i, c) != i) break;
  }
  if (c.hour < 0) return d;
  char buf[32];
  std::snprintf(buf, sizeof buf, "T%02d:%02d:%02d", c.hour, c.minute, c.second);
  return *d + buf + c.zone;
}

std::string IsoFromUnixSeconds(double seconds) {
  if (!std::isfinite(seconds)) return "";
  std::time_t s = static_cast<std::time_t>(std::floor(seconds));
  std::tm tm{};
  gmtime_r(&s, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::optional<int64_t> UnixSecondsFromIso(std::string_view iso) {
  auto digits = [&](size_t at, size_t n) -> std::optional<int> {
    if (at + n > iso.size()) return std::nullopt;
    int v = 0;
    for (size_t i = at; i < at + n; ++i) {
      if (iso[i] < '0' || iso[i] > '9') return std::nullopt;
      v = v * 10 + (iso[i] - '0');
    }
    return v;
  };
  const auto year = digits(0, 4), month = digits(5, 2), day = digits(8, 2);
  if (!year || !month || !day || iso[4] != '-' || iso[7] != '-') return std::nullopt;
  static constexpr int kDaysInMonth[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (*year % 4 == 0 && *year % 100 != 0) || *year % 400 == 0;
  if (*month < 1 || *month > 12 || *day < 1 || *day > kDaysInMonth[*month - 1] ||
      (*month == 2 && *day == 29 && !leap)) {
    return std::nullopt;
  }
  int hour = 0, minute = 0, second = 0;
  size_t rest = 10;
  if (iso.size() > 10) {
    if (iso[10] != 'T' && iso[10] != ' ') return std::nullopt;
    const auto h = digits(11, 2), m = digits(14, 2);
    if (!h || !m || iso[13] != ':' || *h > 23 || *m > 59) return std::nullopt;
    hour = *h;
    minute = *m;
    rest = 16;
    if (iso.size() > 16 && iso[16] == ':') {
      const auto s = digits(17, 2);
      if (!s || *s > 60) return std::nullopt;
      second = *s;
      rest = 19;
    }
    if (rest < iso.size() && iso[rest] == '.') {
      ++rest;
      while (rest < iso.size() && iso[rest] >= '0' && iso[rest] <= '9') ++rest;
    }
  }
  // Days from civil (Howard Hinnant's algorithm).
  const int64_t y = *year - (*month <= 2 ? 1 : 0);
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t mp = (*month + 9) % 12;
  const int64_t doy = (153 * mp + 2) / 5 + *day - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  int64_t seconds = (era * 146097 + doe - 719468) * 86400 + hour * 3600 + minute * 60 + second;
  const std::string_view zone = iso.substr(std::min(rest, iso.size()));
  if (zone.empty()) return seconds;
  if (zone == "Z") return seconds;
  if ((zone[0] == '+' || zone[0] == '-') && (zone.size() == 6 || zone.size() == 5)) {
    const std::string_view z = zone.substr(1);
    const bool colon = z.size() == 5;
    if (colon && z[2] != ':') return std::nullopt;
    const int zh = (z[0] - '0') * 10 + (z[1] - '0');
    const int zm = (z[colon ? 3 : 2] - '0') * 10 + (z[colon ? 4 : 3] - '0');
    if (zh < 0 || zh > 23 || zm < 0 || zm > 59) return std::nullopt;
    const int64_t offset = zh * 3600 + zm * 60;
    return zone[0] == '+' ? seconds - offset : seconds + offset;
  }
  return std::nullopt;
}

Mode ModeFromText(std::string_view text) {
  const std::string s = AsciiLower(text);
  if (s.empty()) return Mode::kUnknown;
  if (Contains(s, "4d-stem") || Contains(s, "4dstem") || Contains(s, "4d stem")) {
    return Mode::k4dStem;
  }
  if (Contains(s, "spectrum image") || Contains(s, "spectrumimage") ||
      Contains(s, "spectrum_image") || HasWord(s, "si")) {
    return Mode::kSpectrumImage;
  }
  if (HasWord(s, "eels") || HasWord(s, "eds") || HasWord(s, "edx") || HasWord(s, "edxs") ||
      Contains(s, "spectrum") || Contains(s, "spectra") || HasWord(s, "cl") ||
      Contains(s, "x-ray")) {
    return Mode::kSpectrum;
  }
  // "STEM nP SA Zoom Diffraction" is TIA's name of the STEM imaging mode (the
  // projector is in diffraction), so STEM wins over diffraction.
  if (HasWord(s, "stem") || Contains(s, "haadf") || Contains(s, "scanning")) {
    return Mode::kStemImage;
  }
  if (Contains(s, "diffraction") || HasWord(s, "saed") || HasWord(s, "cbed") || HasWord(s, "sad") ||
      Contains(s, "ronchigram") || HasWord(s, "dp")) {
    return Mode::kDiffraction;
  }
  if (HasWord(s, "sem") || HasWord(s, "se") || HasWord(s, "bse") || HasWord(s, "se2") ||
      Contains(s, "inlens") || Contains(s, "secondary electron") || Contains(s, "backscatter")) {
    return Mode::kSemImage;
  }
  if (HasWord(s, "tem") || Contains(s, "imaging") || HasWord(s, "lm") || HasWord(s, "mag") ||
      HasWord(s, "sa") || HasWord(s, "mh")) {
    return Mode::kTemImage;
  }
  if (Contains(s, "optical") || Contains(s, "nav-cam") || Contains(s, "navcam") ||
      Contains(s, "light")) {
    return Mode::kOpticalImage;
  }
  return Mode::kUnknown;
}

std::string NormaliseUnits(std::string_view units) {
  std::string u(TrimSpace(units));
  // Common UTF-8 spellings: micro sign and Greek mu, angstrom sign and A-ring.
  for (const char* mu : {"\xc2\xb5", "\xce\xbc"}) {
    for (size_t p; (p = u.find(mu)) != std::string::npos;) u.replace(p, 2, "u");
  }
  for (const char* ang : {"\xc3\x85", "\xe2\x84\xab"}) {
    for (size_t p; (p = u.find(ang)) != std::string::npos;)
      u.replace(p, std::string(ang).size(), "A");
  }
  const std::string l = AsciiLower(u);
  struct Alias {
    const char* from;
    const char* to;
  };
  static const Alias kAliases[] = {
      {"m", "m"},           {"meter", "m"},       {"meters", "m"},    {"metre", "m"},
      {"cm", "cm"},         {"mm", "mm"},         {"um", "um"},       {"micron", "um"},
      {"microns", "um"},    {"micrometer", "um"}, {"nm", "nm"},       {"nanometer", "nm"},
      {"nanometers", "nm"}, {"pm", "pm"},         {"a", "A"},         {"angstrom", "A"},
      {"1/m", "1/m"},       {"m^-1", "1/m"},      {"1/nm", "1/nm"},   {"nm^-1", "1/nm"},
      {"1/a", "1/A"},       {"a^-1", "1/A"},      {"1/um", "1/um"},   {"1/pm", "1/pm"},
      {"ev", "eV"},         {"kev", "keV"},       {"s", "s"},         {"ms", "ms"},
      {"us", "us"},         {"ns", "ns"},         {"rad", "rad"},     {"mrad", "mrad"},
      {"deg", "deg"},       {"degree", "deg"},    {"degrees", "deg"}, {"v", "V"},
      {"kv", "kV"},         {"counts", "counts"},
  };
  for (const Alias& a : kAliases) {
    if (l == a.from) return a.to;
  }
  return u;
}

std::optional<double> LengthToSi(std::string_view units) {
  const std::string u = NormaliseUnits(units);
  static const std::pair<const char*, double> kFactors[] = {
      {"m", 1.0},   {"cm", 1e-2}, {"mm", 1e-3},  {"um", 1e-6},  {"nm", 1e-9},  {"pm", 1e-12},
      {"A", 1e-10}, {"1/m", 1.0}, {"1/nm", 1e9}, {"1/A", 1e10}, {"1/um", 1e6}, {"1/pm", 1e12},
  };
  for (const auto& [name, factor] : kFactors) {
    if (u == name) return factor;
  }
  return std::nullopt;
}

}  // namespace scisearch::formats
