// Tests of the shared text helpers (formats/text.h) and metadata lookups
// (formats/metadata_lookup.h) that every reader relies on.
#include "formats/text.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "formats/metadata_lookup.h"

namespace scisearch::formats {
namespace {

TEST(TrimSpace, RemovesAsciiWhitespaceAndNulFromBothEnds) {
  EXPECT_EQ(TrimSpace("  \t\r\n abc def \0\0"), "abc def");
  EXPECT_EQ(TrimSpace(std::string_view("\0 x \0", 5)), "x");
  EXPECT_EQ(TrimSpace("   "), "");
  EXPECT_EQ(TrimSpace(""), "");
  EXPECT_EQ(TrimSpace("a"), "a");
  // Non-ASCII bytes (here UTF-8 "µm") are not whitespace.
  EXPECT_EQ(TrimSpace(" \xC2\xB5m "), "\xC2\xB5m");
}

TEST(AsciiCase, ChangesOnlyAsciiLetters) {
  EXPECT_EQ(AsciiLower("HAADF Detector 2"), "haadf detector 2");
  EXPECT_EQ(AsciiUpper("Stem mode"), "STEM MODE");
  EXPECT_EQ(AsciiLower("\xC3\x84"), "\xC3\x84");  // "Ä" stays as is
  EXPECT_EQ(AsciiLower(""), "");
}

TEST(IsValidUtf8, AcceptsWellFormedText) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii"));
  EXPECT_TRUE(IsValidUtf8("\xC2\xB5m"));         // µm
  EXPECT_TRUE(IsValidUtf8("\xE2\x82\xAC"));      // €
  EXPECT_TRUE(IsValidUtf8("\xF0\x9F\x94\xAC"));  // U+1F52C
  EXPECT_TRUE(IsValidUtf8("\xF4\x8F\xBF\xBF"));  // U+10FFFF
}

TEST(IsValidUtf8, RejectsMalformedText) {
  EXPECT_FALSE(IsValidUtf8("\xB5m"));                 // Latin-1 µ
  EXPECT_FALSE(IsValidUtf8("\xC2"));                  // truncated
  EXPECT_FALSE(IsValidUtf8("\xE2\x82"));              // truncated
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));              // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xE0\x80\xAF"));          // overlong
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));          // surrogate U+D800
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));      // above U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xF8\x88\x80\x80\x80"));  // 5-byte form
  EXPECT_FALSE(IsValidUtf8("a\x80z"));                // lone continuation byte
}

TEST(AppendUtf8, EncodesEachLength) {
  std::string out;
  AppendUtf8(U'A', out);
  AppendUtf8(0xB5, out);
  AppendUtf8(0x20AC, out);
  AppendUtf8(0x1F52C, out);
  EXPECT_EQ(out, "A\xC2\xB5\xE2\x82\xAC\xF0\x9F\x94\xAC");
  EXPECT_TRUE(IsValidUtf8(out));
}

TEST(AppendUtf8, WritesReplacementCharacterForNonCharacters) {
  std::string out;
  AppendUtf8(0xD800, out);
  AppendUtf8(0x110000, out);
  EXPECT_EQ(out, "\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(ToUtf8Lossless, KeepsValidUtf8) {
  EXPECT_EQ(ToUtf8Lossless("5 \xC2\xB5m"), "5 \xC2\xB5m");
  EXPECT_EQ(ToUtf8Lossless(""), "");
}

TEST(ToUtf8Lossless, ReadsOtherBytesAsWindows1252) {
  EXPECT_EQ(ToUtf8Lossless("5 \xB5m"), "5 \xC2\xB5m");  // µ
  EXPECT_EQ(ToUtf8Lossless("20\xB0"
                           "C"),
            "20\xC2\xB0"
            "C");                                     // °
  EXPECT_EQ(ToUtf8Lossless("\x80"), "\xE2\x82\xAC");  // €
  EXPECT_EQ(ToUtf8Lossless("\x93q\x94"), "\xE2\x80\x9Cq\xE2\x80\x9D");
  EXPECT_EQ(ToUtf8Lossless("\x81"), "\xC2\x81");  // undefined in 1252
  // One invalid byte makes the whole string code-page text, so "\xC2\xB5" is two characters.
  EXPECT_EQ(ToUtf8Lossless("\xC2\xB5\xB5"), "\xC3\x82\xC2\xB5\xC2\xB5");
  EXPECT_TRUE(IsValidUtf8(ToUtf8Lossless("\xFF\xFE\x00\x01")));
}

TEST(EscapeNonPrintableAscii, EscapesControlAndHighBytes) {
  EXPECT_EQ(EscapeNonPrintableAscii("ok text"), "ok text");
  EXPECT_EQ(EscapeNonPrintableAscii("a\tb\nc"), "a\tb\nc");
  EXPECT_EQ(EscapeNonPrintableAscii("line\r\nnext"), "line\nnext");
  EXPECT_EQ(EscapeNonPrintableAscii(std::string_view("\x00\x1F\x7F\xB5", 4)),
            "\\x00\\x1F\\x7F\\xB5");
  EXPECT_TRUE(IsValidUtf8(EscapeNonPrintableAscii("\xC0\xFF")));
}

Metadata Tree() {
  return Metadata::parse(R"({
    "Microscope Info": {"Name": "  Titan  ", "Voltage": 300000, "Blank": "  ",
                        "Flag": true, "Mag": "10000 X"},
    "List": [1, 2]
  })");
}

TEST(FindPath, WalksObjectsOnly) {
  const Metadata tree = Tree();
  EXPECT_EQ(FindPath(tree, {}), &tree);
  ASSERT_NE(FindPath(tree, {"Microscope Info", "Voltage"}), nullptr);
  EXPECT_EQ(*FindPath(tree, {"Microscope Info", "Voltage"}), 300000);
  EXPECT_EQ(FindPath(tree, {"Microscope Info", "Missing"}), nullptr);
  EXPECT_EQ(FindPath(tree, {"List", "0"}), nullptr);  // arrays are not walked
  EXPECT_EQ(FindPath(tree, {"Microscope Info", "Voltage", "x"}), nullptr);
}

TEST(FindText, TrimsStringsAndWritesNumbers) {
  const Metadata tree = Tree();
  EXPECT_EQ(FindText(tree, {"Microscope Info", "Name"}), "Titan");
  EXPECT_EQ(FindText(tree, {"Microscope Info", "Voltage"}), "300000");
  EXPECT_EQ(FindText(tree, {"Microscope Info", "Blank"}), std::nullopt);
  EXPECT_EQ(FindText(tree, {"Microscope Info", "Flag"}), std::nullopt);
  EXPECT_EQ(FindText(tree, {"Nothing"}), std::nullopt);
}

TEST(FindNumber, OnlyFiniteJsonNumbers) {
  Metadata tree = Tree();
  EXPECT_EQ(FindNumber(tree, {"Microscope Info", "Voltage"}), 300000.0);
  EXPECT_EQ(FindNumber(tree, {"Microscope Info", "Mag"}), std::nullopt);
  EXPECT_EQ(FindNumber(tree, {"Microscope Info", "Name"}), std::nullopt);
  tree["NaN"] = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(FindNumber(tree, {"NaN"}), std::nullopt);
}

TEST(NumberOrLeadingNumber, ReadsNumbersAndLeadingNumbersOfText) {
  EXPECT_EQ(NumberOrLeadingNumber(Metadata(2.5)), 2.5);
  EXPECT_EQ(NumberOrLeadingNumber(Metadata("10000 X")), 10000.0);
  EXPECT_EQ(NumberOrLeadingNumber(Metadata(" 25.00 kV")), 25.0);
  EXPECT_EQ(NumberOrLeadingNumber(Metadata("kV 25")), std::nullopt);
  EXPECT_EQ(NumberOrLeadingNumber(Metadata("")), std::nullopt);
  EXPECT_EQ(NumberOrLeadingNumber(Metadata(true)), std::nullopt);
  EXPECT_EQ(NumberOrLeadingNumber(Metadata(std::numeric_limits<double>::infinity())), std::nullopt);
}

TEST(FiniteOrNull, NullForNanAndInfinity) {
  EXPECT_EQ(FiniteOrNull(1.5), Metadata(1.5));
  EXPECT_TRUE(FiniteOrNull(std::numeric_limits<double>::quiet_NaN()).is_null());
  EXPECT_TRUE(FiniteOrNull(-std::numeric_limits<double>::infinity()).is_null());
}

}  // namespace
}  // namespace scisearch::formats
