// What every format writer needs from an Acquisition before it lays out bytes: the
// acquisition time (ISO 8601 parsing into a civil clock), the checks of fields and signals
// common to all writers, length calibrations, and little-endian byte packing. Internal to
// the simulate module's writers (the plan shares the calendar and MakeAxis).
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "common/hash.h"  // Fnv1a, for names and identifiers that depend only on the acquisition
#include "common/status.h"
#include "simulate/writers.h"

namespace scisearch::simulate {

// ---------------------------------------------------------------------------
// Calendar.

// A wall-clock time as written, without a zone.
struct CivilTime {
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
};

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
int64_t DaysFromCivil(int64_t year, int month, int day);

// Seconds since 1970-01-01T00:00:00 of `t`, the clock time taken as UTC.
int64_t UnixSeconds(const CivilTime& t);

// An ISO 8601 date and time as written: the clock, its fraction of a second and its zone.
struct IsoTime {
  CivilTime clock;
  double fraction = 0;          // of a second, [0, 1)
  int zone_offset_seconds = 0;  // east of UTC; 0 for "Z" and for a time without a zone
};

// Seconds since 1970-01-01T00:00:00Z of `t`, a time without a zone taken as UTC.
double UnixInstant(const IsoTime& t);

// "YYYY-MM-DDTHH:MM:SS" (or a space for the T), optionally with fractional seconds and a
// zone ("Z", "+01:00", "-0130"). Nullopt unless the text has that form and names a real
// date in years `first_year` to `last_year` (the years the writer's format can hold), a
// time up to 23:59:59 and a zone up to 23:59.
std::optional<IsoTime> ParseIsoTime(std::string_view text, int first_year, int last_year);

// fields.acquired through ParseIsoTime (years `first_year` to `last_year`). The errors name
// the field, after "<where>: " when `where` is not empty, and say that `stored_as` keeps it
// (e.g. "the FEI Timestamp").
Result<IsoTime> AcquiredTime(const formats::NormalisedFields& fields, int first_year, int last_year,
                             const std::string& where, std::string_view stored_as);

// AcquiredTime's clock: what formats that keep the clock time without a zone store.
Result<CivilTime> AcquiredClock(const formats::NormalisedFields& fields, int first_year,
                                int last_year, const std::string& where,
                                std::string_view stored_as);

// Checks that beam_energy_kev, magnification and pixel_size_m, where set, are positive and
// finite. Errors start "<where>: " when `where` is not empty.
Status ValidatePositiveFields(const formats::NormalisedFields& fields, const std::string& where);

// ---------------------------------------------------------------------------
// Signals.

// An axis of a signal to write (formats::Axis is an aggregate; this names its fields).
formats::Axis MakeAxis(std::string name, int64_t size, double scale, double offset,
                       std::string units, bool navigate = false);

// The most elements one signal may have (1 Ti): bounds a mistaken caller's sizes.
constexpr uint64_t kMaxSignalElements = uint64_t(1) << 40;

// "acquisition.signals[<index>]", with " (<name>)" when the signal has a name.
std::string SignalLabel(size_t index, const SignalToWrite& signal);

// Checks what every writer needs of a signal, naming it by `which` (e.g. SignalLabel):
// rank >= 1, one axis per shape entry with the entry's size, sizes 1 to `max_size`, finite
// scales and offsets, at most `max_elements` elements, and data.bytes exactly the shape
// times the dtype's size. Writers check their own limits (ranks, dtypes) beside it.
Status ValidateSignalArray(const SignalToWrite& signal, const std::string& which, int64_t max_size,
                           uint64_t max_elements);

// Whether `units`, once normalised (formats::NormaliseUnits), are reciprocal ("1/nm").
bool IsReciprocalUnits(const std::string& units);

// The factor from `axis.units` to metres; nullopt when the axis is uncalibrated (no units).
// An error, naming `where` and `format`, when the units are not a length or the scale is
// not a positive length.
Result<std::optional<double>> MetresPerUnit(const formats::Axis& axis, const std::string& where,
                                            std::string_view format);

// Metres per unit of a frame's x and y axes: both set, or both nullopt (uncalibrated).
struct FrameMetres {
  std::optional<double> x, y;
};

// The frame's FrameMetres through MetresPerUnit, refusing a frame with one axis calibrated
// and not the other, and checking fields.pixel_size_m (when set) against x's pixel size:
// `format` stores lengths only, so pixel_size_units must be "m" and x must be calibrated.
Result<FrameMetres> FrameMetresPerUnit(const formats::Axis& y, const formats::Axis& x,
                                       const formats::NormalisedFields& fields,
                                       const std::string& where, std::string_view format);

// The number of `signal`'s leading navigate (scan or series) axes; the axes after them
// are its frame, a spectrum (1 axis) or an image (2). An error, naming `which`, when a
// navigate axis follows a frame axis or the frame has another rank.
Result<size_t> LeadingNavigateAxes(const SignalToWrite& signal, const std::string& which);

// ---------------------------------------------------------------------------
// Bytes.

// 128 bits derived from `key` (two chained FNV-1a hashes), for UUIDs that depend only on the
// acquisition, so that the same acquisition always gives the same file bytes.
struct Hash128 {
  uint64_t high = 0, low = 0;
};
Hash128 Fnv1a128(std::string_view key);

// Stores `value` at `at` in little-endian order.
template <typename T>
void StoreLittle(uint8_t* at, T value) {
  static_assert(std::is_trivially_copyable_v<T>);
  uint8_t bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  if constexpr (std::endian::native == std::endian::big) std::reverse(bytes, bytes + sizeof(T));
  std::memcpy(at, bytes, sizeof(T));
}

// Reads a little-endian `T` at `at`.
template <typename T>
T LoadLittle(const uint8_t* at) {
  static_assert(std::is_trivially_copyable_v<T>);
  uint8_t bytes[sizeof(T)];
  std::memcpy(bytes, at, sizeof(T));
  if constexpr (std::endian::native == std::endian::big) std::reverse(bytes, bytes + sizeof(T));
  T value;
  std::memcpy(&value, bytes, sizeof(T));
  return value;
}

// Appends `value` to `out` in little-endian order.
template <typename T>
void AppendLittle(std::vector<uint8_t>& out, T value) {
  const size_t at = out.size();
  out.resize(at + sizeof(T));
  StoreLittle(out.data() + at, value);
}

}  // namespace scisearch::simulate
