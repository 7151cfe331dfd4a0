// Normalisation shared by every reader: dates to ISO 8601, modes from the words
// instruments write, units to SI spellings. One place, so that the same text gives
// the same field whatever format it came in.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "formats/formats.h"

namespace scisearch::formats {

// Parses the date/time forms microscope software writes and returns ISO 8601
// ("2011-10-18T14:03:12"), or nullopt. Understands, among others:
//   "Fri Oct 14 09:38:28 2011" (TIA AcquireDate), "2016-02-22T10:51:32.123" and
//   "2016-02-22 10:51:32", "22.02.2016" and "02/22/2016" dates (with `day_first`
//   choosing between "03/04/2016" readings), "13 Jun 2016", Unix seconds (see below).
std::optional<std::string> ParseDateTime(std::string_view text, bool day_first = false);
// Combines a date and a time of day written separately (DM's DataBar "Acquisition
// Date" and "Acquisition Time": "8/8/2016" + "2:28:44 PM", also German/French forms).
std::optional<std::string> ParseDateAndTime(std::string_view date, std::string_view time,
                                            bool day_first = false);
// ISO 8601 (UTC, "Z") from seconds since 1970-01-01.
std::string IsoFromUnixSeconds(double seconds);
// The inverse: seconds since 1970-01-01 of "YYYY-MM-DD[THH:MM[:SS]]" (a space may
// stand for the T; fractions ignored). A zone ("Z", "+01:00") is applied; a time
// without one is read as written, on the same clock as other zoneless times (a
// facility's log and its instruments). Nullopt for anything else or a date that
// does not exist.
std::optional<int64_t> UnixSecondsFromIso(std::string_view iso);

// The mode named by free text such as TIA's "STEM nP SA Zoom Diffraction", Velox's
// "STEM"/"TEM", DM's "Imaging"/"Diffraction", an SEM's "SE"/"BSE". Returns kUnknown
// when the text says nothing clear.
Mode ModeFromText(std::string_view text);

// Normalises a unit spelling: "nm", "nanometer" -> "nm"; "µm", "um", "micron" -> "um";
// "1/nm", "nm^-1" -> "1/nm"; "Å", "A", "angstrom" -> "A"; "eV", "keV"; "" stays "".
std::string NormaliseUnits(std::string_view units);
// The factor that converts a length in `units` to metres (or 1/m for reciprocal
// units), or nullopt for units that are not a length.
std::optional<double> LengthToSi(std::string_view units);

}  // namespace scisearch::formats
