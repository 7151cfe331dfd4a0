// Lookups in a reader's metadata tree that never throw: a missing key, a node of the wrong
// JSON type or a non-finite number give "absent" (nullptr / std::nullopt), never an error,
// because every instrument omits or mistypes some fields.
//
// Internal to the formats module; not part of its interface (formats.h).
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include "formats/formats.h"

namespace scisearch::formats {

// The node at `path` (object keys from `root` down), or nullptr when a key is missing or a
// node on the way is not an object. An empty path gives `root`. The pointer is into `root`.
const Metadata* FindPath(const Metadata& root, std::initializer_list<std::string_view> path);

// The text at `path`: a string value with surrounding whitespace trimmed (TrimSpace), or a
// number written as JSON writes it ("300", "2.5"). Absent when the node is missing, of another
// type, or a string that is empty after trimming.
std::optional<std::string> FindText(const Metadata& root,
                                    std::initializer_list<std::string_view> path);

// The finite number at `path`. Only JSON numbers count: a string is absent even when it
// holds digits (use NumberOrLeadingNumber for text such as "25.00 kV").
std::optional<double> FindNumber(const Metadata& root,
                                 std::initializer_list<std::string_view> path);

// The finite number `value` holds: a JSON number, or a string whose text (after leading
// whitespace) starts with a decimal number, as in "10000 X" or "25.00 kV" (10000, 25).
std::optional<double> NumberOrLeadingNumber(const Metadata& value);

// `value` as a metadata number, or null when it is NaN or infinite (JSON has no such numbers;
// bit-flipped files produce them).
Metadata FiniteOrNull(double value);

}  // namespace scisearch::formats
