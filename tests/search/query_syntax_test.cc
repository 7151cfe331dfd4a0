#include "search/query_syntax.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace scisearch::search {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Parses and requires success.
NumericRange Range(std::string_view text, QuantityKind kind, std::string_view field = "f") {
  Result<NumericRange> range = ParseRange(field, text, kind);
  EXPECT_TRUE(range.ok()) << "'" << text << "': " << range.status().message();
  return range.ok() ? *range : NumericRange{std::nan(""), std::nan("")};
}

// Whether `text` is well-formed UTF-8 (written independently of the code under test:
// decodes each sequence and checks the code point's range).
bool IsValidUtf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto b = static_cast<unsigned char>(text[i]);
    int extra = 0;
    uint32_t cp = 0;
    if (b < 0x80) {
      cp = b;
    } else if ((b & 0xE0) == 0xC0) {
      extra = 1;
      cp = b & 0x1F;
    } else if ((b & 0xF0) == 0xE0) {
      extra = 2;
      cp = b & 0x0F;
    } else if ((b & 0xF8) == 0xF0) {
      extra = 3;
      cp = b & 0x07;
    } else {
      return false;
    }
    if (i + extra >= text.size()) return false;  // truncated sequence
    for (int k = 1; k <= extra; ++k) {
      const auto c = static_cast<unsigned char>(text[i + k]);
      if ((c & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3F);
    }
    static constexpr uint32_t kMinimum[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMinimum[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += extra + 1;
  }
  return true;
}

// Parses and requires a kInvalidArgument naming the field; returns the message.
std::string Error(std::string_view text, QuantityKind kind, std::string_view field = "f") {
  Result<NumericRange> range = ParseRange(field, text, kind);
  EXPECT_FALSE(range.ok()) << "'" << text << "' gave [" << (range.ok() ? range->low : 0) << ", "
                           << (range.ok() ? range->high : 0) << "]";
  if (range.ok()) return "";
  EXPECT_EQ(range.status().code(), ErrorCode::kInvalidArgument) << range.status().message();
  const std::string message = range.status().message();
  EXPECT_EQ(message.rfind(std::string(field) + ": ", 0), 0u) << message;
  EXPECT_TRUE(IsValidUtf8(message)) << message;
  EXPECT_LT(message.size(), 300u) << message;
  return message;
}

#define EXPECT_RANGE(text, kind, lo, hi)              \
  do {                                                \
    const NumericRange r_ = Range((text), (kind));    \
    EXPECT_EQ(r_.low, (lo)) << "'" << (text) << "'";  \
    EXPECT_EQ(r_.high, (hi)) << "'" << (text) << "'"; \
  } while (0)

// ---------------------------------------------------------------------------
// Voltage: stored in kV.

TEST(ParseRangeVoltage, BareNumberIsKilovolts) {
  EXPECT_RANGE("300", QuantityKind::kVoltage, 300.0, 300.0);
  EXPECT_RANGE("=300", QuantityKind::kVoltage, 300.0, 300.0);
  EXPECT_RANGE("  200.5  ", QuantityKind::kVoltage, 200.5, 200.5);
}

TEST(ParseRangeVoltage, UnitsAnyCaseWithOrWithoutSpace) {
  for (const char* text :
       {"300kV", "300 kV", "300KV", "300kv", "300Kv", "300000V", "300000 v", "0.3MV", "0.3 mv",
        "300keV", "300 KEV", "3e5V", "300\xC2\xA0kV", "300\xE2\x80\x89kV"}) {
    EXPECT_RANGE(text, QuantityKind::kVoltage, 300.0, 300.0);
  }
}

TEST(ParseRangeVoltage, Comparisons) {
  EXPECT_RANGE(">=200kV", QuantityKind::kVoltage, 200.0, kInf);
  EXPECT_RANGE(">200", QuantityKind::kVoltage, 200.0, kInf);  // measured: > reads as >=
  EXPECT_RANGE("> 200 kV", QuantityKind::kVoltage, 200.0, kInf);
  EXPECT_RANGE("<200000V", QuantityKind::kVoltage, -kInf, 200.0);
  EXPECT_RANGE("<=200kV", QuantityKind::kVoltage, -kInf, 200.0);
}

TEST(ParseRangeVoltage, RangesCarryTheUnitAcross) {
  EXPECT_RANGE("80..300kV", QuantityKind::kVoltage, 80.0, 300.0);
  EXPECT_RANGE("80kV..300", QuantityKind::kVoltage, 80.0, 300.0);
  EXPECT_RANGE("80 .. 300 kV", QuantityKind::kVoltage, 80.0, 300.0);
  EXPECT_RANGE("80..300V", QuantityKind::kVoltage, 0.08, 0.3);
  EXPECT_RANGE("80000V..0.3MV", QuantityKind::kVoltage, 80.0, 300.0);
  EXPECT_RANGE("80..300", QuantityKind::kVoltage, 80.0, 300.0);
  EXPECT_RANGE("200..", QuantityKind::kVoltage, 200.0, kInf);
  EXPECT_RANGE("..300kV", QuantityKind::kVoltage, -kInf, 300.0);
  EXPECT_RANGE("300..300", QuantityKind::kVoltage, 300.0, 300.0);
}

TEST(ParseRangeVoltage, Errors) {
  EXPECT_EQ(Error("abc", QuantityKind::kVoltage, "voltage"),
            "voltage: cannot read 'abc' as a voltage");
  EXPECT_EQ(Error("300nm", QuantityKind::kVoltage, "voltage"),
            "voltage: '300nm': the unit 'nm' is not a voltage unit (use V, kV or MV)");
  EXPECT_EQ(Error("300kV..80kV", QuantityKind::kVoltage, "voltage"),
            "voltage: range 300kV..80kV is empty (start after end)");
  EXPECT_EQ(Error("300..80kV", QuantityKind::kVoltage, "voltage"),
            "voltage: range 300..80kV is empty (start after end; the unit kV of one end applies "
            "to both)");
  EXPECT_EQ(Error("-300", QuantityKind::kVoltage, "voltage"),
            "voltage: '-300' is negative; a voltage cannot be");
  EXPECT_NE(Error("kV", QuantityKind::kVoltage).find("cannot read 'kV'"), std::string::npos);
  EXPECT_NE(Error("300 k V", QuantityKind::kVoltage).find("'k V'"), std::string::npos);
  EXPECT_NE(Error("300-400", QuantityKind::kVoltage).find("cannot read"), std::string::npos);
  EXPECT_NE(Error("1e308MV", QuantityKind::kVoltage).find("out of range"), std::string::npos);
}

// ---------------------------------------------------------------------------
// Magnification: stored as times.

TEST(ParseRangeMagnification, AllSpellings) {
  for (const char* text : {"1e6", "1E6", "1M", "1m", "1 M", "1000k", "1,000,000", "1000000x",
                           "x1000000", "X1M", "x 1M", "1Mx", "1 MX", "1000kx", "1000000\xC3\x97",
                           "\xC3\x97"
                           "1M",
                           "1M\xC3\x97", "0.001e9"}) {
    EXPECT_RANGE(text, QuantityKind::kMagnification, 1e6, 1e6);
  }
  EXPECT_RANGE("500k", QuantityKind::kMagnification, 5e5, 5e5);
  EXPECT_RANGE("500K", QuantityKind::kMagnification, 5e5, 5e5);
  EXPECT_RANGE("500x", QuantityKind::kMagnification, 500.0, 500.0);
  EXPECT_RANGE("x500", QuantityKind::kMagnification, 500.0, 500.0);
  EXPECT_RANGE("1.2Mx", QuantityKind::kMagnification, 1.2e6, 1.2e6);
  EXPECT_RANGE("12,345.5", QuantityKind::kMagnification, 12345.5, 12345.5);
  EXPECT_RANGE("999", QuantityKind::kMagnification, 999.0, 999.0);
}

TEST(ParseRangeMagnification, ComparisonsAndRanges) {
  EXPECT_RANGE(">1M", QuantityKind::kMagnification, 1e6, kInf);
  EXPECT_RANGE(">=500k", QuantityKind::kMagnification, 5e5, kInf);
  EXPECT_RANGE("<=1e5", QuantityKind::kMagnification, -kInf, 1e5);
  EXPECT_RANGE("100..500x", QuantityKind::kMagnification, 100.0, 500.0);
  EXPECT_RANGE("x100..x500", QuantityKind::kMagnification, 100.0, 500.0);
  EXPECT_RANGE("1..2M", QuantityKind::kMagnification, 1e6, 2e6);  // k and M carry like units
  EXPECT_RANGE("500k..1M", QuantityKind::kMagnification, 5e5, 1e6);
  EXPECT_RANGE("500,000..1,000,000", QuantityKind::kMagnification, 5e5, 1e6);
}

TEST(ParseRangeMagnification, Errors) {
  EXPECT_EQ(Error("300kV", QuantityKind::kMagnification, "mag"),
            "mag: '300kV': the unit 'kV' is not a magnification unit (use x, k or M)");
  EXPECT_EQ(Error("1,5", QuantityKind::kMagnification, "mag"),
            "mag: cannot read '1,5' as a magnification (a comma may only separate thousands, as "
            "in 1,000,000)");
  for (const char* text : {"1,0000", "10,00,000", "1000,000", "1,000,00"}) {
    EXPECT_NE(Error(text, QuantityKind::kMagnification).find("comma"), std::string::npos) << text;
  }
  EXPECT_NE(Error(",500", QuantityKind::kMagnification).find("cannot read"), std::string::npos);
  EXPECT_NE(Error("x500x", QuantityKind::kMagnification).find("cannot read"), std::string::npos);
  EXPECT_NE(Error("xx500", QuantityKind::kMagnification).find("cannot read"), std::string::npos);
  EXPECT_NE(Error("x", QuantityKind::kMagnification).find("cannot read"), std::string::npos);
  EXPECT_EQ(Error("500..1M", QuantityKind::kMagnification, "mag"),
            "mag: range 500..1M is empty (start after end; the unit M of one end applies to "
            "both)");
  EXPECT_NE(Error("-1M", QuantityKind::kMagnification).find("negative"), std::string::npos);
}

// ---------------------------------------------------------------------------
// Length: stored in metres. Values are read in one correctly rounded step, so they
// equal the C++ literal exactly.

TEST(ParseRangeLength, AllUnits) {
  EXPECT_RANGE("0.1nm", QuantityKind::kLength, 1e-10, 1e-10);
  EXPECT_RANGE("100pm", QuantityKind::kLength, 1e-10, 1e-10);
  EXPECT_RANGE("1A", QuantityKind::kLength, 1e-10, 1e-10);
  EXPECT_RANGE("1 a", QuantityKind::kLength, 1e-10, 1e-10);
  EXPECT_RANGE("1\xC3\x85", QuantityKind::kLength, 1e-10, 1e-10);      // U+00C5
  EXPECT_RANGE("1\xE2\x84\xAB", QuantityKind::kLength, 1e-10, 1e-10);  // U+212B
  EXPECT_RANGE("1\xC3\xA5", QuantityKind::kLength, 1e-10, 1e-10);      // U+00E5
  EXPECT_RANGE("1A\xCC\x8A", QuantityKind::kLength, 1e-10, 1e-10);     // A + U+030A
  EXPECT_RANGE("2.5 \xC3\x85", QuantityKind::kLength, 2.5e-10, 2.5e-10);
  EXPECT_RANGE("1um", QuantityKind::kLength, 1e-6, 1e-6);
  EXPECT_RANGE("1UM", QuantityKind::kLength, 1e-6, 1e-6);
  EXPECT_RANGE("1\xC2\xB5m", QuantityKind::kLength, 1e-6, 1e-6);  // micro sign
  EXPECT_RANGE("1\xCE\xBCm", QuantityKind::kLength, 1e-6, 1e-6);  // Greek mu
  EXPECT_RANGE("3mm", QuantityKind::kLength, 3e-3, 3e-3);
  EXPECT_RANGE("2cm", QuantityKind::kLength, 2e-2, 2e-2);
  EXPECT_RANGE("1m", QuantityKind::kLength, 1.0, 1.0);
  EXPECT_RANGE("1NM", QuantityKind::kLength, 1e-9, 1e-9);
  EXPECT_RANGE("2", QuantityKind::kLength, 2.0, 2.0);
  EXPECT_RANGE("1.5e-10", QuantityKind::kLength, 1.5e-10, 1.5e-10);
  EXPECT_RANGE("0.15e-3um", QuantityKind::kLength, 1.5e-10, 1.5e-10);
}

TEST(ParseRangeLength, ComparisonsAndRanges) {
  EXPECT_RANGE("<0.1nm", QuantityKind::kLength, -kInf, 1e-10);
  EXPECT_RANGE(">=2\xC3\x85", QuantityKind::kLength, 2e-10, kInf);
  EXPECT_RANGE("0.1..2nm", QuantityKind::kLength, 1e-10, 2e-9);
  EXPECT_RANGE("1..20\xC3\x85", QuantityKind::kLength, 1e-10, 2e-9);
  EXPECT_RANGE("50pm..0.2nm", QuantityKind::kLength, 5e-11, 2e-10);
  EXPECT_RANGE(".5..1nm", QuantityKind::kLength, 5e-10, 1e-9);
}

TEST(ParseRangeLength, Errors) {
  EXPECT_EQ(Error("5kV", QuantityKind::kLength, "pixel"),
            "pixel: '5kV': the unit 'kV' is not a length unit (use pm, nm, um, mm, m or "
            "\xC3\x85)");
  EXPECT_NE(Error("5 furlongs", QuantityKind::kLength).find("'furlongs'"), std::string::npos);
  EXPECT_NE(Error("2..0.1nm", QuantityKind::kLength).find("is empty"), std::string::npos);
  EXPECT_NE(Error("1...2nm", QuantityKind::kLength).find("cannot read"), std::string::npos);
}

// ---------------------------------------------------------------------------
// Plain numbers.

TEST(ParseRangeNumber, SignsAndForms) {
  EXPECT_RANGE("42", QuantityKind::kNumber, 42.0, 42.0);
  EXPECT_RANGE("-5", QuantityKind::kNumber, -5.0, -5.0);
  EXPECT_RANGE("+5", QuantityKind::kNumber, 5.0, 5.0);
  EXPECT_RANGE("-5..5", QuantityKind::kNumber, -5.0, 5.0);
  EXPECT_RANGE(">-5", QuantityKind::kNumber, -5.0, kInf);
  EXPECT_RANGE("<=1e3", QuantityKind::kNumber, -kInf, 1000.0);
  EXPECT_RANGE("1,024", QuantityKind::kNumber, 1024.0, 1024.0);
  EXPECT_RANGE("0.25", QuantityKind::kNumber, 0.25, 0.25);
  EXPECT_RANGE("5.", QuantityKind::kNumber, 5.0, 5.0);
}

TEST(ParseRangeNumber, Errors) {
  EXPECT_EQ(Error("5kV", QuantityKind::kNumber, "frames"),
            "frames: '5kV': the unit 'kV' is not understood (a number takes no unit)");
  EXPECT_EQ(Error("--5", QuantityKind::kNumber, "frames"), "frames: cannot read '--5' as a number");
  EXPECT_NE(Error("+-5", QuantityKind::kNumber).find("cannot read"), std::string::npos);
  EXPECT_NE(Error("5..-5", QuantityKind::kNumber).find("is empty"), std::string::npos);
  EXPECT_NE(Error("0x10", QuantityKind::kNumber).find("'x10'"), std::string::npos);
}

// ---------------------------------------------------------------------------
// Dates: UTC seconds since the epoch.

// Days from 1970-01-01, counted one year and one month at a time: slow, obviously right,
// and independent of the day-count formula the code uses.
int64_t CountDays(int year, int month, int day) {
  const auto leap = [](int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; };
  const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int64_t days = 0;
  for (int y = 1970; y < year; ++y) days += leap(y) ? 366 : 365;
  for (int y = year; y < 1970; ++y) days -= leap(y) ? 366 : 365;
  for (int m = 1; m < month; ++m) days += month_days[m - 1] + (m == 2 && leap(year) ? 1 : 0);
  return days + day - 1;
}

double Epoch(int year, int month, int day, int hour = 0, int minute = 0, int second = 0) {
  return static_cast<double>(CountDays(year, month, day) * 86400 + hour * 3600 + minute * 60 +
                             second);
}

TEST(ParseRangeDate, OracleAgreesWithKnownInstants) {
  EXPECT_EQ(Epoch(1970, 1, 1), 0.0);
  EXPECT_EQ(Epoch(2011, 10, 1), 1317427200.0);
  EXPECT_EQ(Epoch(2000, 2, 29), 951782400.0);
  EXPECT_EQ(Epoch(1969, 12, 31), -86400.0);
  EXPECT_EQ(Epoch(2038, 1, 19, 3, 14, 7), 2147483647.0);
}

TEST(ParseRangeDate, KnownInstants) {
  EXPECT_RANGE("2011-10-01T00:00:00Z", QuantityKind::kDate, 1317427200.0, 1317427200.0);
  EXPECT_RANGE("2011-10-13T14:03:12", QuantityKind::kDate, 1318514592.0, 1318514592.0);
  EXPECT_RANGE("2011-10-13 14:03:12", QuantityKind::kDate, 1318514592.0, 1318514592.0);
  EXPECT_RANGE("2011-10-13t14:03:12z", QuantityKind::kDate, 1318514592.0, 1318514592.0);
  EXPECT_RANGE("1970-01-01T00:00:00Z", QuantityKind::kDate, 0.0, 0.0);
  EXPECT_RANGE("1969-12-31", QuantityKind::kDate, -86400.0, -1.0);
  EXPECT_RANGE("2038-01-19T03:14:07", QuantityKind::kDate, 2147483647.0, 2147483647.0);
  EXPECT_RANGE("9999-12-31T23:59:59", QuantityKind::kDate, 253402300799.0, 253402300799.0);
  EXPECT_RANGE("0001-01-01T00:00:00", QuantityKind::kDate, -62135596800.0, -62135596800.0);
}

TEST(ParseRangeDate, PeriodsCoverTheirWholeSpan) {
  EXPECT_RANGE("2011", QuantityKind::kDate, 1293840000.0, 1325376000.0 - 1);
  EXPECT_RANGE("=2011", QuantityKind::kDate, 1293840000.0, 1325376000.0 - 1);
  EXPECT_RANGE("2011-10", QuantityKind::kDate, 1317427200.0, 1320105600.0 - 1);
  EXPECT_RANGE("2011-10-13", QuantityKind::kDate, Epoch(2011, 10, 13), Epoch(2011, 10, 14) - 1);
  EXPECT_RANGE("2011-10-13T14", QuantityKind::kDate, Epoch(2011, 10, 13, 14),
               Epoch(2011, 10, 13, 15) - 1);
  EXPECT_RANGE("2011-10-13T14:03", QuantityKind::kDate, Epoch(2011, 10, 13, 14, 3),
               Epoch(2011, 10, 13, 14, 4) - 1);
  EXPECT_RANGE("2011-12-31T23:59", QuantityKind::kDate, Epoch(2011, 12, 31, 23, 59),
               1325376000.0 - 1);
  EXPECT_RANGE("2012", QuantityKind::kDate, 1325376000.0, 1356998400.0 - 1);  // 366 days
  EXPECT_RANGE("2012-02", QuantityKind::kDate, Epoch(2012, 2, 1), 1330560000.0 - 1);
  EXPECT_RANGE("2011-02", QuantityKind::kDate, Epoch(2011, 2, 1), Epoch(2011, 3, 1) - 1);
  EXPECT_RANGE("2011-12", QuantityKind::kDate, Epoch(2011, 12, 1), 1325376000.0 - 1);
}

TEST(ParseRangeDate, LeapDays) {
  EXPECT_RANGE("2012-02-29", QuantityKind::kDate, 1330473600.0, 1330560000.0 - 1);
  EXPECT_RANGE("2000-02-29", QuantityKind::kDate, 951782400.0, 951782400.0 + 86399);
  EXPECT_RANGE("1600-02-29", QuantityKind::kDate, Epoch(1600, 2, 29), Epoch(1600, 3, 1) - 1);
  EXPECT_NE(Error("2011-02-29", QuantityKind::kDate, "date")
                .find("day 29 is not in 2011-02, which has 28 days"),
            std::string::npos);
  EXPECT_NE(Error("1900-02-29", QuantityKind::kDate).find("28 days"), std::string::npos);
  EXPECT_NE(Error("2100-02-29", QuantityKind::kDate).find("28 days"), std::string::npos);
  EXPECT_NE(Error("2012-02-30", QuantityKind::kDate).find("29 days"), std::string::npos);
}

TEST(ParseRangeDate, ComparisonsUseThePeriod) {
  // After October starts November 1st; before October ends September 30th.
  EXPECT_RANGE(">2011-10", QuantityKind::kDate, 1320105600.0, kInf);
  EXPECT_RANGE(">=2011-10", QuantityKind::kDate, 1317427200.0, kInf);
  EXPECT_RANGE("<2011-10", QuantityKind::kDate, -kInf, 1317427200.0 - 1);
  EXPECT_RANGE("<=2011-10", QuantityKind::kDate, -kInf, 1320105600.0 - 1);
  EXPECT_RANGE(">2011-10-13", QuantityKind::kDate, Epoch(2011, 10, 14), kInf);
  EXPECT_RANGE(">2011", QuantityKind::kDate, 1325376000.0, kInf);
  EXPECT_RANGE(">2011-10-13T14:03:12", QuantityKind::kDate, 1318514593.0, kInf);
  EXPECT_RANGE("<2011-10-13T14:03:12", QuantityKind::kDate, -kInf, 1318514591.0);
}

TEST(ParseRangeDate, Ranges) {
  EXPECT_RANGE("2011-10..2011-12", QuantityKind::kDate, 1317427200.0, 1325376000.0 - 1);
  EXPECT_RANGE("2011..2011", QuantityKind::kDate, 1293840000.0, 1325376000.0 - 1);
  EXPECT_RANGE("2011-10..", QuantityKind::kDate, 1317427200.0, kInf);
  EXPECT_RANGE("..2012", QuantityKind::kDate, -kInf, 1356998400.0 - 1);
  EXPECT_RANGE("2011-10-13 .. 2011-10-13T12:00", QuantityKind::kDate, Epoch(2011, 10, 13),
               Epoch(2011, 10, 13, 12, 1) - 1);
  EXPECT_EQ(Error("2012..2011", QuantityKind::kDate, "date"),
            "date: range 2012..2011 is empty (start after end)");
  EXPECT_NE(Error("2011-10-14..2011-10-13", QuantityKind::kDate).find("is empty"),
            std::string::npos);
}

TEST(ParseRangeDate, TimeZones) {
  EXPECT_RANGE("2011-10-13T14:03:12+02:00", QuantityKind::kDate, 1318514592.0 - 7200,
               1318514592.0 - 7200);
  EXPECT_RANGE("2011-10-13T14:03:12-05:00", QuantityKind::kDate, 1318514592.0 + 18000,
               1318514592.0 + 18000);
  EXPECT_RANGE("2011-10-13T14:03+0530", QuantityKind::kDate, Epoch(2011, 10, 13, 8, 33),
               Epoch(2011, 10, 13, 8, 34) - 1);
  EXPECT_RANGE("2011-01-01T00:30+01:00", QuantityKind::kDate, Epoch(2010, 12, 31, 23, 30),
               Epoch(2010, 12, 31, 23, 31) - 1);
}

TEST(ParseRangeDate, Errors) {
  EXPECT_EQ(Error("2011-13", QuantityKind::kDate, "date"),
            "date: '2011-13' is not a date: month 13 is not 1-12");
  EXPECT_NE(Error("2011-00", QuantityKind::kDate).find("month 0"), std::string::npos);
  EXPECT_NE(Error("2011-10-32", QuantityKind::kDate).find("day 32"), std::string::npos);
  EXPECT_NE(Error("2011-10-00", QuantityKind::kDate).find("day 0"), std::string::npos);
  EXPECT_NE(Error("2011-10-13T24:00", QuantityKind::kDate).find("hour 24"), std::string::npos);
  EXPECT_NE(Error("2011-10-13T23:60", QuantityKind::kDate).find("minute 60"), std::string::npos);
  EXPECT_NE(Error("2011-10-13T23:59:60", QuantityKind::kDate).find("second 60"), std::string::npos);
  EXPECT_NE(Error("2011-10-13T12:00+24:00", QuantityKind::kDate).find("offset"), std::string::npos);
  for (const char* text : {"2011/10/13", "11-10-13", "2011-1", "2011-10-1", "20111013",
                           "2011-10-13T14:03:12.5", "2011-10-13Z", "2011-10-13T1", "2011-10-13T",
                           "2011-10-13  14:00", "Oct 2011", "2011kV", "-2011", "+2011", "1e3"}) {
    const std::string message = Error(text, QuantityKind::kDate, "date");
    EXPECT_EQ(message.rfind("date: cannot read '" + std::string(text) + "' as a date", 0), 0u)
        << message;
  }
}

// ---------------------------------------------------------------------------
// Forms common to every kind.

TEST(ParseRangeForms, EmptyAndMalformed) {
  for (QuantityKind kind : {QuantityKind::kVoltage, QuantityKind::kMagnification,
                            QuantityKind::kLength, QuantityKind::kDate, QuantityKind::kNumber}) {
    EXPECT_NE(Error("", kind, "x").find("no value given"), std::string::npos);
    EXPECT_NE(Error(" \t ", kind, "x").find("no value given"), std::string::npos);
    EXPECT_EQ(Error("..", kind, "x"),
              "x: '..' is an empty range: give at least one end (A..B, A.. or ..B)");
    EXPECT_NE(Error(" .. ", kind).find("empty range"), std::string::npos);
    EXPECT_NE(Error(">", kind).find("no value to compare with"), std::string::npos);
    EXPECT_NE(Error(">=", kind).find("no value to compare with"), std::string::npos);
    EXPECT_NE(Error("=", kind).find("no value to compare with"), std::string::npos);
    EXPECT_NE(Error(">1..2", kind).find("cannot read"), std::string::npos);
    EXPECT_NE(Error("1..2..3", kind).find("cannot read"), std::string::npos);
    EXPECT_NE(Error("1...2", kind).find("cannot read"), std::string::npos);
    EXPECT_NE(Error("....", kind).find("cannot read"), std::string::npos);
    EXPECT_NE(Error(">>5", kind).find("cannot read '>5'"), std::string::npos);
    EXPECT_NE(Error("=>5", kind).find("cannot read '>5'"), std::string::npos);
    EXPECT_NE(Error("<>5", kind).find("cannot read"), std::string::npos);
  }
}

TEST(ParseRangeForms, NotANumberIsRefused) {
  for (const char* text :
       {"nan", "NaN", "inf", "-inf", "infinity", "INF", "nan(123)", "1e", "e5", ".", "-", "+"}) {
    for (QuantityKind kind : {QuantityKind::kVoltage, QuantityKind::kMagnification,
                              QuantityKind::kLength, QuantityKind::kNumber}) {
      EXPECT_FALSE(ParseRange("f", text, kind).ok()) << text;
    }
  }
}

// ---------------------------------------------------------------------------
// Hostile input: always an error or a sensible value, short printable messages.

TEST(ParseRangeHostile, HugeAndTinyNumbers) {
  EXPECT_NE(Error(std::string(10000, '9'), QuantityKind::kNumber).find("out of range"),
            std::string::npos);
  EXPECT_NE(Error(std::string(10000, '9'), QuantityKind::kNumber).find("(10000 bytes)"),
            std::string::npos);
  EXPECT_RANGE("1" + std::string(300, '0'), QuantityKind::kNumber, 1e300, 1e300);
  EXPECT_RANGE("0." + std::string(300, '0') + "1e301", QuantityKind::kNumber, 1.0, 1.0);
  EXPECT_RANGE(std::string(5000, '0') + "7", QuantityKind::kNumber, 7.0, 7.0);
  EXPECT_NE(Error("1e400", QuantityKind::kNumber).find("'1e400' is out of range"),
            std::string::npos);
  EXPECT_NE(Error("1e-400", QuantityKind::kNumber).find("out of range"), std::string::npos);
  EXPECT_NE(Error("1e99999999999999999999999999", QuantityKind::kMagnification).find("range"),
            std::string::npos);
  EXPECT_NE(Error("1e-99999999999999999999999999", QuantityKind::kLength).find("range"),
            std::string::npos);
  EXPECT_NE(Error("1e308MV", QuantityKind::kVoltage).find("out of range"), std::string::npos);
  EXPECT_NE(Error("1e-320pm", QuantityKind::kLength).find("out of range"), std::string::npos);
  EXPECT_RANGE("0e99999999999999999999", QuantityKind::kNumber, 0.0, 0.0);
  EXPECT_RANGE("1e308", QuantityKind::kMagnification, 1e308, 1e308);
  // 10,000 digits after the point: far below the smallest double.
  EXPECT_NE(Error("0." + std::string(10000, '0') + "1", QuantityKind::kNumber).find("range"),
            std::string::npos);
  std::string grouped = "1";
  for (int i = 0; i < 100; ++i) grouped += ",000";
  EXPECT_RANGE(grouped, QuantityKind::kNumber, 1e300, 1e300);
}

TEST(ParseRangeHostile, BytesThatAreNotText) {
  const std::string with_nul("300\0kV", 6);
  EXPECT_NE(Error(with_nul, QuantityKind::kVoltage).find("\\x00"), std::string::npos);
  EXPECT_NE(Error(std::string("\0", 1), QuantityKind::kNumber).find("'\\x00'"), std::string::npos);
  EXPECT_NE(Error(std::string("2011\0", 5), QuantityKind::kDate).find("cannot read"),
            std::string::npos);
  EXPECT_NE(Error("300\xFF", QuantityKind::kVoltage).find("'\\xFF'"), std::string::npos);
  EXPECT_NE(Error("\xC3", QuantityKind::kLength).find("\\xC3"), std::string::npos);
  EXPECT_NE(Error("5\xE2\x84", QuantityKind::kLength).find("\\xE2\\x84"), std::string::npos);
  EXPECT_NE(Error("5\xED\xA0\x80", QuantityKind::kLength).find("\\xED"), std::string::npos);
  EXPECT_NE(Error("5\xC0\xAF", QuantityKind::kLength).find("\\xC0"), std::string::npos);
  EXPECT_NE(Error("\x1B[31m5", QuantityKind::kNumber).find("\\x1B"), std::string::npos);
  // Valid non-ASCII text is shown as it is.
  EXPECT_NE(Error("5\xE2\x82\xAC", QuantityKind::kLength).find("'\xE2\x82\xAC'"),
            std::string::npos);
}

TEST(ParseRangeHostile, LongRunsOfOperatorsDotsAndSpaces) {
  EXPECT_FALSE(ParseRange("f", std::string(10000, '>'), QuantityKind::kNumber).ok());
  EXPECT_FALSE(ParseRange("f", std::string(10000, '<'), QuantityKind::kDate).ok());
  EXPECT_FALSE(ParseRange("f", std::string(10000, '.'), QuantityKind::kLength).ok());
  EXPECT_FALSE(ParseRange("f", std::string(10000, ','), QuantityKind::kMagnification).ok());
  EXPECT_FALSE(ParseRange("f", std::string(10000, '-'), QuantityKind::kNumber).ok());
  EXPECT_FALSE(ParseRange("f", std::string(10000, 'x'), QuantityKind::kMagnification).ok());
  EXPECT_FALSE(ParseRange("f", std::string(10000, '9') + "..", QuantityKind::kNumber).ok());
  EXPECT_RANGE("5" + std::string(100000, ' ') + "kV", QuantityKind::kVoltage, 5.0, 5.0);
  std::string nbsp;
  for (int i = 0; i < 1000; ++i) nbsp += "\xC2\xA0";
  EXPECT_RANGE(nbsp + ">=2011" + nbsp, QuantityKind::kDate, 1293840000.0, kInf);
  Error(">" + std::string(10000, '='), QuantityKind::kVoltage);
}

// Random byte strings built from the pieces the grammar is made of must never crash (the
// sanitizer build checks memory), and every answer is an error or an ordered range.
TEST(ParseRangeHostile, RandomPiecesNeverCrash) {
  const std::vector<std::string> pieces = {
      "1", "0",  "9",  ".",        "..",       ",",    "e",
      "E", "-",  "+",  ">",        "<",        "=",    " ",
      "k", "V",  "x",  "M",        "nm",       "T",    ":",
      "Z", "20", "11", "\xC3\x85", "\xC2\xB5", "\xFF", std::string(1, '\0'),
      "A", "12", "31", "59",       "-0",       "e-9"};
  std::mt19937 random(12345);
  for (int trial = 0; trial < 20000; ++trial) {
    std::string text;
    const int count = static_cast<int>(random() % 12);
    for (int i = 0; i < count; ++i) text += pieces[random() % pieces.size()];
    if (trial % 7 == 0) text.push_back('\0');
    for (QuantityKind kind : {QuantityKind::kVoltage, QuantityKind::kMagnification,
                              QuantityKind::kLength, QuantityKind::kDate, QuantityKind::kNumber}) {
      Result<NumericRange> range = ParseRange("f", text, kind);
      if (range.ok()) {
        EXPECT_LE(range->low, range->high) << text;
        EXPECT_FALSE(std::isnan(range->low) || std::isnan(range->high)) << text;
      } else {
        EXPECT_EQ(range.status().code(), ErrorCode::kInvalidArgument) << text;
        EXPECT_TRUE(IsValidUtf8(range.status().message())) << range.status().message();
      }
    }
  }
}

// ---------------------------------------------------------------------------
// RewriteComparisons.

const std::vector<std::string> kFields = {"mag", "voltage", "date", "pixel"};

std::string Rewrite(std::string_view query) { return RewriteComparisons(query, kFields); }

TEST(RewriteComparisons, AddsTheColon) {
  EXPECT_EQ(Rewrite("gold mag>1M"), "gold mag:>1M");
  EXPECT_EQ(Rewrite("voltage<=200kV"), "voltage:<=200kV");
  EXPECT_EQ(Rewrite("voltage>=200kV"), "voltage:>=200kV");
  EXPECT_EQ(Rewrite("pixel<0.1nm"), "pixel:<0.1nm");
  EXPECT_EQ(Rewrite("date=2011"), "date:2011");
  EXPECT_EQ(Rewrite("date==2011"), "date:=2011");
  EXPECT_EQ(Rewrite("MAG>=500k"), "MAG:>=500k");
  EXPECT_EQ(Rewrite("Voltage>80"), "Voltage:>80");
  EXPECT_EQ(Rewrite("(mag>1e6)"), "(mag:>1e6)");
  EXPECT_EQ(Rewrite("gold AND (mag>1e6 OR voltage<80)"), "gold AND (mag:>1e6 OR voltage:<80)");
  EXPECT_EQ(Rewrite("-mag>1e6"), "-mag:>1e6");
  EXPECT_EQ(Rewrite("gold +mag>1e6"), "gold +mag:>1e6");
  EXPECT_EQ(Rewrite("gold\tmag>1M\nvoltage=300"), "gold\tmag:>1M\nvoltage:300");
  EXPECT_EQ(Rewrite("mag>1M voltage:300 date>2011-10 pixel<0.1nm"),
            "mag:>1M voltage:300 date:>2011-10 pixel:<0.1nm");
  EXPECT_EQ(Rewrite("mag>>5"), "mag:>>5");  // ParseRange reports it
}

TEST(RewriteComparisons, LeavesEverythingElseAlone) {
  for (const char* query : {"image>5",
                            "mymag>5",
                            "magnification>5",
                            "foo-mag>5",
                            "tag:mag>5",
                            "mag:>1M",
                            "voltage:80..300kV",
                            "a=b",
                            "x>5",
                            "http://example.org/search?mag=5&voltage=300",
                            "path/mag>5",
                            "a.mag>5",
                            "mag",
                            "mag>",
                            "mag> 5",
                            "mag >5",
                            "mag\">5\"",
                            "mag=",
                            "\"mag>1M\"",
                            "\"gold mag>1M",
                            "gold \"mag>1M",
                            "",
                            "   ",
                            "\xC3\xA9mag>5",
                            "_mag>5",
                            "mag_>5",
                            "mag1>5",
                            "1mag>5",
                            "--mag>5",
                            "a-mag>5",
                            ")mag>5",
                            "mag:date>5"}) {
    EXPECT_EQ(Rewrite(query), query) << query;
  }
}

TEST(RewriteComparisons, OnlyOutsideQuotes) {
  EXPECT_EQ(Rewrite("\"gold mag>1M\" mag>1M"), "\"gold mag>1M\" mag:>1M");
  EXPECT_EQ(Rewrite("mag>1M \"gold mag>2M"), "mag:>1M \"gold mag>2M");  // unmatched: rest quoted
  EXPECT_EQ(Rewrite("\"a\" \"b\" mag>1 \"c mag>2\" mag>3"),
            "\"a\" \"b\" mag:>1 \"c mag>2\" mag:>3");
  EXPECT_EQ(Rewrite("\"\"mag>1"), "\"\"mag>1");  // right after a quote: not a word start
  EXPECT_EQ(Rewrite("\"\" mag>1"), "\"\" mag:>1");
}

TEST(RewriteComparisons, FieldListMatters) {
  EXPECT_EQ(RewriteComparisons("mag>1M voltage>80", {}), "mag>1M voltage>80");
  EXPECT_EQ(RewriteComparisons("mag>1M voltage>80", {"voltage"}), "mag>1M voltage:>80");
  EXPECT_EQ(RewriteComparisons(">5 a>5", {""}), ">5 a>5");
  EXPECT_EQ(RewriteComparisons("magnification>5 mag>5", {"mag", "magnification"}),
            "magnification:>5 mag:>5");
  EXPECT_EQ(RewriteComparisons("MagniFication>5", {"MAGNIFICATION"}), "MagniFication:>5");
}

TEST(RewriteComparisons, ByteForByteWithOddBytes) {
  EXPECT_EQ(Rewrite("\xFF\xFEmag>5 \xC3\xA9 mag>5 \xC3"), "\xFF\xFEmag>5 \xC3\xA9 mag:>5 \xC3");
  const std::string with_nul("mag>5\0mag>6 \0", 13);
  EXPECT_EQ(Rewrite(with_nul), std::string("mag:>5\0mag>6 \0", 14));
  EXPECT_EQ(Rewrite(std::string("mag>\0", 5)), std::string("mag:>\0", 6));
}

TEST(RewriteComparisons, OutputParses) {
  const std::string rewritten = Rewrite("gold mag>1M");
  const size_t colon = rewritten.find(':');
  ASSERT_NE(colon, std::string::npos);
  const std::string value = rewritten.substr(colon + 1);
  EXPECT_RANGE(value, QuantityKind::kMagnification, 1e6, kInf);
  EXPECT_RANGE(Rewrite("date=2011-10").substr(5), QuantityKind::kDate, 1317427200.0,
               1320105600.0 - 1);
}

TEST(RewriteComparisons, HugeQueries) {
  std::string query, expected;
  for (int i = 0; i < 100000; ++i) {
    query += "gold mag>1M \"x mag>2\" ";
    expected += "gold mag:>1M \"x mag>2\" ";
  }
  EXPECT_EQ(Rewrite(query), expected);
  EXPECT_EQ(Rewrite("mag" + std::string(10000, '>')), "mag:" + std::string(10000, '>'));
  EXPECT_EQ(Rewrite(std::string(10000, '>')), std::string(10000, '>'));
  EXPECT_EQ(Rewrite(std::string(10001, '"') + "mag>1"), std::string(10001, '"') + "mag>1");
  EXPECT_EQ(Rewrite(std::string(10000, '"') + " mag>1"), std::string(10000, '"') + " mag:>1");
  const std::string spaces(1000000, ' ');
  EXPECT_EQ(Rewrite(spaces), spaces);
}

// Properties on random queries: rewriting twice changes nothing more, and when the query
// has no ':' or '=' the rewrite only inserts colons.
TEST(RewriteComparisons, RandomQueriesKeepTheirBytes) {
  const std::vector<std::string> pieces = {
      "mag", "MAG", "voltage", "date", "x",  "image", ">",
      ">=",  "<",   "<=",      " ",    "\"", "(",     ")",
      "-",   "+",   "1M",      "2011", "é",  "\xFF",  std::string(1, '\0'),
      "\t",  "/",   "?"};
  const std::vector<std::string> with_separators = {":", "="};
  std::mt19937 random(54321);
  for (int trial = 0; trial < 20000; ++trial) {
    std::string query;
    const bool plain = trial % 2 == 0;
    const int count = static_cast<int>(random() % 16);
    for (int i = 0; i < count; ++i) {
      if (!plain && random() % 5 == 0) {
        query += with_separators[random() % with_separators.size()];
      } else {
        query += pieces[random() % pieces.size()];
      }
    }
    const std::string once = Rewrite(query);
    EXPECT_EQ(Rewrite(once), once) << query;
    if (plain) {
      std::string without_colons;
      for (char c : once) {
        if (c != ':') without_colons += c;
      }
      EXPECT_EQ(without_colons, query);
    }
  }
}

}  // namespace
}  // namespace scisearch::search
