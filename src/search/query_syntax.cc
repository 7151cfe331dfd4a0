// Quantities with units, ranges and colon-less comparisons (see query_syntax.h).
//
// Numbers are read with std::from_chars (locale-independent, correctly rounded). Every
// unit here is a power of ten of the stored unit, so a value is read in one step as
// "<mantissa>e<exponent + unit exponent>": "0.1nm" is the double nearest 1e-10, the
// same double a reader computes from "1e-10", which an exact match ("pixel:0.1nm")
// relies on. Dates are computed with a proleptic Gregorian day count, never with
// timegm/mktime (time zone and locale dependent).
#include "search/query_syntax.h"

#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace scisearch::search {
namespace {

// ---------------------------------------------------------------------------
// Text helpers.

bool IsAsciiSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsIgnoreAsciiCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (AsciiLower(a[i]) != AsciiLower(b[i])) return false;
  }
  return true;
}

// Spaces people paste between a number and its unit: ASCII white space, no-break space
// (U+00A0), thin space (U+2009) and narrow no-break space (U+202F).
constexpr std::array<std::string_view, 3> kUnicodeSpaces = {"\xC2\xA0", "\xE2\x80\x89",
                                                            "\xE2\x80\xAF"};

size_t LeadingSpaceLength(std::string_view t) {
  if (t.empty()) return 0;
  if (IsAsciiSpace(t.front())) return 1;
  for (std::string_view space : kUnicodeSpaces) {
    if (t.starts_with(space)) return space.size();
  }
  return 0;
}

size_t TrailingSpaceLength(std::string_view t) {
  if (t.empty()) return 0;
  if (IsAsciiSpace(t.back())) return 1;
  for (std::string_view space : kUnicodeSpaces) {
    if (t.ends_with(space)) return space.size();
  }
  return 0;
}

std::string_view Trim(std::string_view t) {
  while (size_t n = LeadingSpaceLength(t)) t.remove_prefix(n);
  while (size_t n = TrailingSpaceLength(t)) t.remove_suffix(n);
  return t;
}

// Length of the well-formed UTF-8 sequence at the start of `t` (1-4), or 0 when the
// bytes there are not one (stray continuation byte, overlong form, surrogate, > U+10FFFF,
// truncated sequence).
size_t Utf8SequenceLength(std::string_view t) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(t[i]); };
  const unsigned char b0 = byte(0);
  if (b0 < 0x80) return 1;
  size_t length = 0;
  unsigned char low = 0x80;  // allowed range of the second byte
  unsigned char high = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    length = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    length = 3;
    if (b0 == 0xE0) low = 0xA0;   // overlong
    if (b0 == 0xED) high = 0x9F;  // surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    length = 4;
    if (b0 == 0xF0) low = 0x90;   // overlong
    if (b0 == 0xF4) high = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (t.size() < length) return 0;
  if (byte(1) < low || byte(1) > high) return 0;
  for (size_t i = 2; i < length; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xBF) return 0;
  }
  return length;
}

// User text as it goes into an error message: at most about 60 bytes of it, with control
// characters and bytes that are not UTF-8 shown as \xNN, so that a message stays short,
// printable and valid UTF-8 whatever was typed.
std::string Printable(std::string_view text) {
  constexpr size_t kMaxShown = 60;
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    if (out.size() >= kMaxShown) {
      out += "... (" + std::to_string(text.size()) + " bytes)";
      break;
    }
    const auto c = static_cast<unsigned char>(text[i]);
    const size_t length = Utf8SequenceLength(text.substr(i));
    if (c < 0x20 || c == 0x7F || length == 0) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
      ++i;
    } else {
      out.append(text.substr(i, length));
      i += length;
    }
  }
  return out;
}

std::string Quoted(std::string_view text) { return "'" + Printable(text) + "'"; }

// ---------------------------------------------------------------------------
// Kinds and their units.

// A spelling of a unit (compared ignoring ASCII case) and its power of ten relative to
// the unit the kind is stored in.
struct Unit {
  std::string_view spelling;
  std::string_view name;  // the conventional spelling, for messages
  int exponent;
};

// Voltages are stored in kV. Electron energies in eV/keV/MeV are accepted because
// microscopists quote the beam as "300 keV", numerically the accelerating voltage.
// "mV" cannot be told from "MV" case-insensitively; a millivolt beam does not exist.
constexpr std::array kVoltageUnits = {
    Unit{"v", "V", -3},   Unit{"kv", "kV", 0},   Unit{"mv", "MV", 3},
    Unit{"ev", "eV", -3}, Unit{"kev", "keV", 0}, Unit{"mev", "MeV", 3},
};

// Magnifications are stored as times; k and M are multipliers, x (or ×) says "times".
constexpr std::array kMagnificationUnits = {
    Unit{"x", "x", 0},          Unit{"\xC3\x97", "\xC3\x97", 0},  // ×
    Unit{"k", "k", 3},          Unit{"kx", "kx", 3},
    Unit{"k\xC3\x97", "kx", 3}, Unit{"m", "M", 6},
    Unit{"mx", "Mx", 6},        Unit{"m\xC3\x97", "Mx", 6},
};

// Lengths are stored in metres. µ comes as the micro sign (U+00B5) or Greek mu (U+03BC);
// Å as U+00C5, the angstrom sign U+212B, or A + combining ring (U+030A), and in lower case.
constexpr std::array kLengthUnits = {
    Unit{"pm", "pm", -12},
    Unit{"nm", "nm", -9},
    Unit{"um", "um", -6},
    Unit{"\xC2\xB5m", "\xC2\xB5m", -6},
    Unit{"\xCE\xBCm", "\xC2\xB5m", -6},
    Unit{"mm", "mm", -3},
    Unit{"cm", "cm", -2},
    Unit{"m", "m", 0},
    Unit{"a", "A", -10},
    Unit{"\xC3\x85", "\xC3\x85", -10},
    Unit{"\xC3\xA5", "\xC3\x85", -10},
    Unit{"\xE2\x84\xAB", "\xC3\x85", -10},
    Unit{"a\xCC\x8A", "\xC3\x85", -10},
};

struct KindTraits {
  std::string_view noun;       // "a voltage"
  std::string_view unit_help;  // "V, kV or MV"
  const Unit* units;
  size_t unit_count;
  bool allows_negative;
};

KindTraits TraitsOf(QuantityKind kind) {
  switch (kind) {
    case QuantityKind::kVoltage:
      return {"a voltage", "V, kV or MV", kVoltageUnits.data(), kVoltageUnits.size(), false};
    case QuantityKind::kMagnification:
      return {"a magnification", "x, k or M", kMagnificationUnits.data(),
              kMagnificationUnits.size(), false};
    case QuantityKind::kLength:
      return {"a length", "pm, nm, um, mm, m or \xC3\x85", kLengthUnits.data(), kLengthUnits.size(),
              false};
    case QuantityKind::kDate:
      return {"a date", "no unit", nullptr, 0, false};
    case QuantityKind::kNumber:
      break;
  }
  return {"a number", "no unit", nullptr, 0, true};
}

// Whether a magnification unit contains the times sign ("x", "Mx", "k×").
bool SaysTimes(std::string_view unit_text) {
  return unit_text.find_first_of("xX") != std::string_view::npos ||
         unit_text.find("\xC3\x97") != std::string_view::npos;
}

const Unit* FindUnit(const KindTraits& traits, std::string_view spelling) {
  for (size_t i = 0; i < traits.unit_count; ++i) {
    if (EqualsIgnoreAsciiCase(traits.units[i].spelling, spelling)) return &traits.units[i];
  }
  return nullptr;
}

Status CannotRead(std::string_view field, std::string_view text, const KindTraits& traits,
                  std::string_view why = {}) {
  std::string message =
      std::string(field) + ": cannot read " + Quoted(text) + " as " + std::string(traits.noun);
  if (!why.empty()) message += " (" + std::string(why) + ")";
  return Status::InvalidArgument(std::move(message));
}

// ---------------------------------------------------------------------------
// Numbers with units.

// The number at the start of an operand, taken apart so that a unit's power of ten can
// be added to its exponent before the one conversion to double.
struct ScannedNumber {
  bool negative = false;
  std::string mantissa;  // digits and at most one '.', thousands separators removed
  int64_t exponent = 0;  // the e/E part, saturated far beyond any double
  size_t length = 0;     // bytes of the operand it took
};

enum class ScanResult { kOk, kNoNumber, kBadGrouping };

// Reads [+-] digits [, ddd]* [. digits] [e [+-] digits]. Commas must group thousands
// ("1,000,000"); "1,5" is refused rather than misread as 15 or 1.5.
ScanResult ScanNumber(std::string_view t, ScannedNumber* out) {
  constexpr int64_t kExponentLimit = int64_t{1} << 52;  // saturates; still out of range
  size_t i = 0;
  if (i < t.size() && (t[i] == '+' || t[i] == '-')) {
    out->negative = t[i] == '-';
    ++i;
  }
  size_t integer_digits = 0;
  size_t group_digits = 0;  // digits since the last comma
  bool grouped = false;
  while (i < t.size()) {
    if (IsDigit(t[i])) {
      out->mantissa += t[i];
      ++integer_digits;
      ++group_digits;
      ++i;
    } else if (t[i] == ',' && i + 1 < t.size() && IsDigit(t[i + 1])) {
      // The first group has 1-3 digits, each later one exactly 3.
      if (group_digits == 0 || (grouped ? group_digits != 3 : group_digits > 3)) {
        return ScanResult::kBadGrouping;
      }
      grouped = true;
      group_digits = 0;
      ++i;
    } else {
      break;
    }
  }
  if (grouped && group_digits != 3) return ScanResult::kBadGrouping;
  size_t fraction_digits = 0;
  if (i < t.size() && t[i] == '.') {
    out->mantissa += '.';
    ++i;
    while (i < t.size() && IsDigit(t[i])) {
      out->mantissa += t[i];
      ++fraction_digits;
      ++i;
    }
  }
  if (integer_digits + fraction_digits == 0) return ScanResult::kNoNumber;
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    // An exponent only when digits follow: otherwise the 'e' starts a unit (eV).
    size_t j = i + 1;
    bool exponent_negative = false;
    if (j < t.size() && (t[j] == '+' || t[j] == '-')) {
      exponent_negative = t[j] == '-';
      ++j;
    }
    if (j < t.size() && IsDigit(t[j])) {
      int64_t exponent = 0;
      while (j < t.size() && IsDigit(t[j])) {
        if (exponent < kExponentLimit) exponent = exponent * 10 + (t[j] - '0');
        ++j;
      }
      out->exponent = exponent_negative ? -exponent : exponent;
      i = j;
    }
  }
  out->length = i;
  return ScanResult::kOk;
}

// One end of a range (or the value of a comparison) before its unit is applied.
struct Operand {
  std::string_view text;  // trimmed, as typed
  ScannedNumber number;
  const Unit* unit = nullptr;  // nullptr: none written
};

Result<Operand> ReadOperand(std::string_view field, std::string_view text, QuantityKind kind) {
  const KindTraits traits = TraitsOf(kind);
  Operand operand;
  operand.text = text;
  std::string_view rest = text;
  // "x500" / "×500": magnification written with the times sign in front.
  bool times_prefix = false;
  if (kind == QuantityKind::kMagnification) {
    for (std::string_view sign :
         {std::string_view("x"), std::string_view("X"), std::string_view("\xC3\x97")}) {
      if (rest.starts_with(sign)) {
        times_prefix = true;
        rest = Trim(rest.substr(sign.size()));
        break;
      }
    }
  }
  switch (ScanNumber(rest, &operand.number)) {
    case ScanResult::kOk:
      break;
    case ScanResult::kNoNumber:
      return CannotRead(field, text, traits);
    case ScanResult::kBadGrouping:
      return CannotRead(field, text, traits,
                        "a comma may only separate thousands, as in 1,000,000");
  }
  const std::string_view unit_text = Trim(rest.substr(operand.number.length));
  if (!unit_text.empty()) {
    operand.unit = FindUnit(traits, unit_text);
    if (operand.unit == nullptr) {
      // A unit starts with a letter or a non-ASCII sign; anything else is not a unit.
      const auto first = static_cast<unsigned char>(unit_text.front());
      const bool looks_like_unit = first >= 0x80 || (AsciiLower(unit_text.front()) >= 'a' &&
                                                     AsciiLower(unit_text.front()) <= 'z');
      if (!looks_like_unit) return CannotRead(field, text, traits);
      std::string message =
          std::string(field) + ": " + Quoted(text) + ": the unit " + Quoted(unit_text);
      if (traits.unit_count == 0) {
        message += " is not understood (" + std::string(traits.noun) + " takes no unit)";
      } else {
        message += " is not " + std::string(traits.noun) + " unit (use " +
                   std::string(traits.unit_help) + ")";
      }
      return Status::InvalidArgument(std::move(message));
    }
    // "x500x" and "x1Mx" say "times" twice.
    if (times_prefix && SaysTimes(unit_text)) {
      return CannotRead(field, text, traits);
    }
  } else if (times_prefix) {
    operand.unit = FindUnit(traits, "x");
  }
  if (operand.number.negative && !traits.allows_negative) {
    return Status::InvalidArgument(std::string(field) + ": " + Quoted(text) + " is negative; " +
                                   std::string(traits.noun) + " cannot be");
  }
  return operand;
}

// The operand's value in the kind's stored unit, the unit taken to be `unit`.
Result<double> ValueOf(std::string_view field, const Operand& operand, const Unit* unit) {
  const int64_t exponent = operand.number.exponent + (unit != nullptr ? unit->exponent : 0);
  std::string literal;
  literal.reserve(operand.number.mantissa.size() + 24);
  if (operand.number.negative) literal += '-';
  literal += operand.number.mantissa;
  literal += 'e';
  literal += std::to_string(exponent);
  double value = 0;
  const char* end = literal.data() + literal.size();
  const auto [ptr, ec] = std::from_chars(literal.data(), end, value);
  if (ec == std::errc::result_out_of_range || (ec == std::errc() && !std::isfinite(value))) {
    return Status::InvalidArgument(std::string(field) + ": " + Quoted(operand.text) +
                                   " is out of range");
  }
  if (ec != std::errc() || ptr != end) {
    // The scanner only passes what from_chars reads; this is a bug, not bad input.
    return Status::Internal(std::string(field) + ": could not convert " + Quoted(operand.text));
  }
  return value;
}

// ---------------------------------------------------------------------------
// Dates.

bool IsLeapYear(int64_t year) { return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0); }

int DaysInMonth(int64_t year, int month) {
  static constexpr std::array<int, 12> kDays = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && IsLeapYear(year) ? 29 : kDays[month - 1];
}

// Days from 1970-01-01 to year-month-day in the proleptic Gregorian calendar. Counts in
// 400-year eras (146097 days each) starting on March 1st, so that the leap day is the
// last day of a counting year.
int64_t DaysFromCivil(int64_t year, int month, int day) {
  const int64_t y = month <= 2 ? year - 1 : year;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t year_of_era = y - era * 400;                               // [0, 399]
  const int64_t month_from_march = month > 2 ? month - 3 : month + 9;      // [0, 11]
  const int64_t day_of_year = (153 * month_from_march + 2) / 5 + day - 1;  // [0, 365]
  const int64_t day_of_era =
      year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;  // [0, 146096]
  return era * 146097 + day_of_era - 719468;  // 719468: days from 0000-03-01 to 1970-01-01
}

// A date as written stands for a period: its first second and the first second after it.
struct DatePeriod {
  int64_t start = 0;
  int64_t next_start = 0;
};

constexpr std::string_view kDateForms = "write 2011, 2011-10, 2011-10-13 or 2011-10-13T14:03:12";

Result<DatePeriod> ReadDate(std::string_view field, std::string_view text) {
  const KindTraits traits = TraitsOf(QuantityKind::kDate);
  size_t i = 0;
  // Reads exactly `count` ASCII digits.
  const auto digits = [&](size_t count, int* value) {
    if (text.size() - i < count) return false;
    int v = 0;
    for (size_t k = 0; k < count; ++k) {
      if (!IsDigit(text[i + k])) return false;
      v = v * 10 + (text[i + k] - '0');
    }
    *value = v;
    i += count;
    return true;
  };
  const auto at = [&](std::string_view chars) {
    return i < text.size() && chars.find(text[i]) != std::string_view::npos;
  };
  enum class Precision { kYear, kMonth, kDay, kHour, kMinute, kSecond };
  Precision precision = Precision::kYear;
  int year = 0, month = 1, day = 1, hour = 0, minute = 0, second = 0;
  int64_t offset_seconds = 0;  // local time minus UTC
  if (!digits(4, &year)) return CannotRead(field, text, traits, kDateForms);
  if (at("-")) {
    ++i;
    if (!digits(2, &month)) return CannotRead(field, text, traits, kDateForms);
    precision = Precision::kMonth;
    if (at("-")) {
      ++i;
      if (!digits(2, &day)) return CannotRead(field, text, traits, kDateForms);
      precision = Precision::kDay;
      if (at("Tt ")) {
        ++i;
        if (!digits(2, &hour)) return CannotRead(field, text, traits, kDateForms);
        precision = Precision::kHour;
        if (at(":")) {
          ++i;
          if (!digits(2, &minute)) return CannotRead(field, text, traits, kDateForms);
          precision = Precision::kMinute;
          if (at(":")) {
            ++i;
            if (!digits(2, &second)) return CannotRead(field, text, traits, kDateForms);
            precision = Precision::kSecond;
          }
        }
        if (at("Zz")) {
          ++i;
        } else if (at("+-")) {
          const bool east = text[i] == '+';
          ++i;
          int offset_hours = 0, offset_minutes = 0;
          if (!digits(2, &offset_hours)) return CannotRead(field, text, traits, kDateForms);
          if (at(":")) ++i;
          if (!digits(2, &offset_minutes)) return CannotRead(field, text, traits, kDateForms);
          if (offset_hours > 23 || offset_minutes > 59) {
            return CannotRead(field, text, traits, "the time zone offset is not a time of day");
          }
          offset_seconds = (east ? 1 : -1) * (offset_hours * 3600 + offset_minutes * 60);
        }
      }
    }
  }
  if (i != text.size()) return CannotRead(field, text, traits, kDateForms);

  const auto invalid = [&](const std::string& why) {
    return Status::InvalidArgument(std::string(field) + ": " + Quoted(text) +
                                   " is not a date: " + why);
  };
  if (month < 1 || month > 12) {
    return invalid("month " + std::to_string(month) + " is not 1-12");
  }
  if (day < 1 || day > DaysInMonth(year, month)) {
    return invalid("day " + std::to_string(day) + " is not in " + std::string(text.substr(0, 7)) +
                   ", which has " + std::to_string(DaysInMonth(year, month)) + " days");
  }
  if (hour > 23) return invalid("hour " + std::to_string(hour) + " is not 0-23");
  if (minute > 59) return invalid("minute " + std::to_string(minute) + " is not 0-59");
  if (second > 59) return invalid("second " + std::to_string(second) + " is not 0-59");

  DatePeriod period;
  period.start =
      DaysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset_seconds;
  int64_t length = 1;
  switch (precision) {
    case Precision::kYear:
      length = (IsLeapYear(year) ? 366 : 365) * int64_t{86400};
      break;
    case Precision::kMonth:
      length = DaysInMonth(year, month) * int64_t{86400};
      break;
    case Precision::kDay:
      length = 86400;
      break;
    case Precision::kHour:
      length = 3600;
      break;
    case Precision::kMinute:
      length = 60;
      break;
    case Precision::kSecond:
      length = 1;
      break;
  }
  period.next_start = period.start + length;
  return period;
}

// ---------------------------------------------------------------------------
// Ranges.

enum class Form { kExact, kGreater, kGreaterOrEqual, kLess, kLessOrEqual, kBetween };

struct Comparison {
  std::string_view op;
  Form form;
};

// Longest first, so that ">=" is not read as ">" followed by "=...".
constexpr std::array kComparisons = {
    Comparison{">=", Form::kGreaterOrEqual}, Comparison{"<=", Form::kLessOrEqual},
    Comparison{">", Form::kGreater},         Comparison{"<", Form::kLess},
    Comparison{"=", Form::kExact},
};

Status EmptyRange(std::string_view field, std::string_view text, const Unit* carried) {
  std::string message =
      std::string(field) + ": range " + Printable(text) + " is empty (start after end";
  if (carried != nullptr) {
    message += "; the unit " + std::string(carried->name) + " of one end applies to both";
  }
  return Status::InvalidArgument(message + ")");
}

Result<NumericRange> ParseDateRange(std::string_view field, std::string_view text, Form form,
                                    std::string_view low_text, std::string_view high_text) {
  NumericRange range;
  std::optional<DatePeriod> low, high;
  if (!low_text.empty()) {
    SCISEARCH_ASSIGN_OR_RETURN(low, ReadDate(field, low_text));
  }
  if (!high_text.empty()) {
    SCISEARCH_ASSIGN_OR_RETURN(high, ReadDate(field, high_text));
  }
  // The last second of a period is the one before the next period starts.
  switch (form) {
    case Form::kExact:
      range.low = static_cast<double>(low->start);
      range.high = static_cast<double>(low->next_start - 1);
      break;
    case Form::kGreater:
      range.low = static_cast<double>(low->next_start);
      break;
    case Form::kGreaterOrEqual:
      range.low = static_cast<double>(low->start);
      break;
    case Form::kLess:
      range.high = static_cast<double>(low->start - 1);
      break;
    case Form::kLessOrEqual:
      range.high = static_cast<double>(low->next_start - 1);
      break;
    case Form::kBetween:
      if (low) range.low = static_cast<double>(low->start);
      if (high) range.high = static_cast<double>(high->next_start - 1);
      if (low && high && low->start > high->next_start - 1) {
        return EmptyRange(field, text, nullptr);
      }
      break;
  }
  return range;
}

Result<NumericRange> ParseQuantityRange(std::string_view field, std::string_view text,
                                        QuantityKind kind, Form form, std::string_view low_text,
                                        std::string_view high_text) {
  std::optional<Operand> low, high;
  if (!low_text.empty()) {
    SCISEARCH_ASSIGN_OR_RETURN(low, ReadOperand(field, low_text, kind));
  }
  if (!high_text.empty()) {
    SCISEARCH_ASSIGN_OR_RETURN(high, ReadOperand(field, high_text, kind));
  }
  // "80..300kV": a unit written on one end only applies to both.
  const Unit* carried = nullptr;
  if (low && high) {
    if (low->unit == nullptr && high->unit != nullptr) {
      carried = low->unit = high->unit;
    } else if (high->unit == nullptr && low->unit != nullptr) {
      carried = high->unit = low->unit;
    }
  }
  NumericRange range;
  if (low) {
    SCISEARCH_ASSIGN_OR_RETURN(range.low, ValueOf(field, *low, low->unit));
  }
  if (high) {
    SCISEARCH_ASSIGN_OR_RETURN(range.high, ValueOf(field, *high, high->unit));
  }
  // Measured values are not exact: ">A" reads as ">=A".
  switch (form) {
    case Form::kExact:
      range.high = range.low;
      break;
    case Form::kGreater:
    case Form::kGreaterOrEqual:
      break;
    case Form::kLess:
    case Form::kLessOrEqual:
      range.high = range.low;
      range.low = -std::numeric_limits<double>::infinity();
      break;
    case Form::kBetween:
      if (range.low > range.high) return EmptyRange(field, text, carried);
      break;
  }
  return range;
}

}  // namespace

Result<NumericRange> ParseRange(std::string_view field, std::string_view text, QuantityKind kind) {
  const std::string_view value = Trim(text);
  const KindTraits traits = TraitsOf(kind);
  if (value.empty()) {
    return Status::InvalidArgument(std::string(field) + ": no value given (write A, A..B, A.., " +
                                   "..B, >A or <B)");
  }
  Form form = Form::kExact;
  std::string_view low_text = value;  // the single value of a comparison, or the start
  std::string_view high_text;
  bool has_operator = false;
  for (const Comparison& comparison : kComparisons) {
    if (value.starts_with(comparison.op)) {
      form = comparison.form;
      low_text = Trim(value.substr(comparison.op.size()));
      has_operator = true;
      break;
    }
  }
  const size_t dots = value.find("..");
  if (dots != std::string_view::npos) {
    // One "..", not combined with a comparison; "1...2" and "1..2..3" are not ranges.
    if (has_operator || value.find("..", dots + 2) != std::string_view::npos ||
        value.find("...") != std::string_view::npos) {
      return CannotRead(field, value, traits, "write A..B, A.. or ..B");
    }
    form = Form::kBetween;
    low_text = Trim(value.substr(0, dots));
    high_text = Trim(value.substr(dots + 2));
    if (low_text.empty() && high_text.empty()) {
      return Status::InvalidArgument(std::string(field) + ": " + Quoted(value) +
                                     " is an empty range: give at least one end (A..B, A.. or " +
                                     "..B)");
    }
  } else if (low_text.empty()) {
    return Status::InvalidArgument(std::string(field) + ": " + Quoted(value) +
                                   " has no value to compare with");
  }
  if (kind == QuantityKind::kDate) {
    return ParseDateRange(field, value, form, low_text, high_text);
  }
  return ParseQuantityRange(field, value, kind, form, low_text, high_text);
}

namespace {

// Whether a field name may start at query[i]: at the start, after white space or '(',
// or after a '+'/'-' that itself starts a word ("-mag>1M"). Not inside a word ("image>5"),
// after ':' ("tag:mag>5"), nor inside a URL or path ("?mag=5", "/mag>5").
bool StartsWord(std::string_view query, size_t i) {
  if (i == 0) return true;
  const char before = query[i - 1];
  if (IsAsciiSpace(before) || before == '(') return true;
  if (before == '+' || before == '-') {
    return i == 1 || IsAsciiSpace(query[i - 2]) || query[i - 2] == '(';
  }
  return false;
}

// At query[i], the length of a range field name followed by a comparison operator and a
// value, or 0.
size_t MatchComparison(std::string_view query, size_t i,
                       const std::vector<std::string>& range_fields) {
  for (const std::string& name : range_fields) {
    if (name.empty() || query.size() - i < name.size() + 2) continue;
    if (!EqualsIgnoreAsciiCase(query.substr(i, name.size()), name)) continue;
    const std::string_view after = query.substr(i + name.size());
    size_t op_length = 0;
    if (after.starts_with(">=") || after.starts_with("<=")) {
      op_length = 2;
    } else if (after.front() == '>' || after.front() == '<' || after.front() == '=') {
      op_length = 1;
    } else {
      continue;
    }
    // "mag>" alone or "mag> 5" is not a comparison Xapian would see as one word.
    if (after.size() == op_length || IsAsciiSpace(after[op_length]) || after[op_length] == '"') {
      continue;
    }
    return name.size();
  }
  return 0;
}

}  // namespace

std::string RewriteComparisons(std::string_view query,
                               const std::vector<std::string>& range_fields) {
  std::string out;
  out.reserve(query.size() + 8);
  bool quoted = false;  // an unmatched '"' quotes the rest of the query
  size_t i = 0;
  while (i < query.size()) {
    const char c = query[i];
    if (c == '"') {
      quoted = !quoted;
    } else if (!quoted && StartsWord(query, i)) {
      if (const size_t name_length = MatchComparison(query, i, range_fields)) {
        out.append(query.substr(i, name_length));
        out += ':';
        i += name_length;
        if (query[i] == '=') ++i;  // "date=2011" -> "date:2011"; ">" and "<" are kept
        continue;
      }
    }
    out += c;
    ++i;
  }
  return out;
}

}  // namespace scisearch::search
