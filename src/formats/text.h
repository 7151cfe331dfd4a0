// Text helpers shared by the format readers: trimming, ASCII case, UTF-8 validation and
// encoding, and the two ways a reader turns file bytes into metadata text (decoding 8-bit
// code-page text losslessly, or escaping what is not printable ASCII).
//
// Internal to the formats module; not part of its interface (formats.h).
#pragma once

#include <string>
#include <string_view>

namespace scisearch::formats {

// `text` without leading and trailing ASCII whitespace (space, \t, \n, \v, \f, \r) and NUL
// bytes (fixed-width fields in files are padded with either). The result views `text`.
std::string_view TrimSpace(std::string_view text);

// `text` with ASCII letters A-Z lower-cased; every other byte (including UTF-8) unchanged.
std::string AsciiLower(std::string_view text);

// `text` with ASCII letters a-z upper-cased; every other byte unchanged.
std::string AsciiUpper(std::string_view text);

// True when `bytes` is well-formed UTF-8: no overlong forms, no surrogates (U+D800-DFFF),
// nothing above U+10FFFF, no truncated sequence. The empty string is valid.
bool IsValidUtf8(std::string_view bytes);

// Appends the UTF-8 encoding of `codepoint` to `out`. Surrogates and values above U+10FFFF are
// not characters: they are written as U+FFFD, so `out` stays valid UTF-8.
void AppendUtf8(char32_t codepoint, std::string& out);

// Text from a file as valid UTF-8 without losing characters: `bytes` is kept as it is when it
// is valid UTF-8; otherwise the whole string is read as Windows-1252 (the code page the
// instrument PCs write; a superset of Latin-1's printable characters, so "µ" 0xB5 and
// "°" 0xB0 read as themselves), each byte becoming one character. The five bytes
// Windows-1252 leaves undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D) read as the Latin-1 controls
// of the same value.
std::string ToUtf8Lossless(std::string_view bytes);

// `text` as printable ASCII for metadata whose encoding is unknown or untrusted: printable
// ASCII (0x20-0x7E), tab and newline are kept, carriage returns are dropped (so CR LF line
// ends read as LF), and every other byte is written as "\xNN" (upper-case hex). The result is
// always valid UTF-8 and shows the original bytes.
std::string EscapeNonPrintableAscii(std::string_view text);

}  // namespace scisearch::formats
