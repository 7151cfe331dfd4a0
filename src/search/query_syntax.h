// The parts of the query language that Xapian's QueryParser does not know:
// quantities with units, ranges and comparisons on them.
//
//   mag>1e6   mag:>=500k   voltage:80..300kV   voltage:200   pixel:<0.1nm
//   date:2011-10..2011-12   date:2011   date>2011-10-13   date:..2012
//
// Internal to src/search (the query parser's field processors call it). Pure
// functions: callable from any thread.
#pragma once

#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace scisearch::search {

// What a range field measures, and the unit its values are stored in.
enum class QuantityKind {
  kVoltage,        // kilovolts; a bare number is kV ("300" = 300 kV); V, kV, MV understood
  kMagnification,  // times; "1e6", "1M", "500k", "500x", "x500", "1,000,000"
  kLength,         // metres; a bare number is metres; pm, nm, um/µm, mm, m, A/Å understood
  kDate,           // seconds since the Unix epoch (UTC); ISO dates "2011", "2011-10",
                   // "2011-10-13", "2011-10-13T14:03:12" (a period stands for all of it)
  kNumber,         // a plain number, no units
};

// An inclusive interval; an open end is -infinity or +infinity.
struct NumericRange {
  double low = -std::numeric_limits<double>::infinity();
  double high = std::numeric_limits<double>::infinity();
};

// Reads the value part of a range field: "A..B", "A..", "..B", ">A", ">=A", "<B",
// "<=B", "=A" or "A". A unit on one end of "A..B" applies to the other when it has
// none ("80..300kV"). A date stands for its whole period: "2011-10..2011-12" is
// 2011-10-01T00:00:00 to the last second of 2011-12; "date:2011" is the year; ">2011-10"
// starts after October, ">=2011-10" at its start. For other kinds "A" means exactly A
// and ">A" / "<A" are treated as ">=A" / "<=A" (measured values are not exact).
// kInvalidArgument naming `field` and the text when it is not a range of that kind
// ("voltage: cannot read 'abc' as a voltage"), or when low > high.
//
// Details of the reading:
// - Units are case-insensitive and may follow a space ("300 kV"). The multipliers k and M of
//   a magnification carry across ".." like units: "1..2M" is 1M..2M, so "500..1M" is an
//   empty range (an error that says the unit was carried).
// - Commas only group thousands ("1,000,000"); "1,5" is refused rather than misread.
//   Voltages, magnifications and lengths cannot be negative. NaN, infinities and values
//   beyond a double (1e400, 1e-400) are refused.
// - Dates: the time follows 'T' or one space; 'Z' or an offset (+02:00, -0500) may follow a
//   time (UTC when none). No fractional seconds. The last second of a period is the second
//   before the next period starts ("2011-10" ends at 2011-10-31T23:59:59).
// - "", ">" (no value) and ".." (no end) are errors, not "everything".
// Quoted text in messages is cut to ~60 bytes, with control and non-UTF-8 bytes as \xNN.
Result<NumericRange> ParseRange(std::string_view field, std::string_view text, QuantityKind kind);

// Rewrites comparisons written without a colon into the field syntax ParseRange
// reads: "gold mag>1M" -> "gold mag:>1M", "voltage<=200kV" -> "voltage:<=200kV",
// "date=2011" -> "date:2011", for the names in `range_fields` only (case-insensitive)
// and only outside double quotes. Everything else is returned byte for byte.
// A name counts at the start of a word (after the start, white space, '(' or a leading
// '+'/'-'), never inside one ("image>5"), after ':' ("tag:mag>5") or in a URL ("?mag=5");
// the value must follow the operator directly ("mag> 5" is left alone). An unmatched '"'
// quotes the rest of the query.
std::string RewriteComparisons(std::string_view query,
                               const std::vector<std::string>& range_fields);

}  // namespace scisearch::search
