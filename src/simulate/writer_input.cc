#include "simulate/writer_input.h"

#include <cmath>
#include <utility>

#include "formats/formats.h"
#include "formats/normalise.h"

namespace scisearch::simulate {

int64_t DaysFromCivil(int64_t year, int month, int day) {
  year -= month <= 2;
  const int64_t era = (year >= 0 ? year : year - 399) / 400;
  const int64_t year_of_era = year - era * 400;
  const int64_t day_of_year = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
  const int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146097 + day_of_era - 719468;
}

int64_t UnixSeconds(const CivilTime& t) {
  return DaysFromCivil(t.year, t.month, t.day) * 86400 + t.hour * 3600 + t.minute * 60 + t.second;
}

double UnixInstant(const IsoTime& t) {
  return double(UnixSeconds(t.clock) - t.zone_offset_seconds) + t.fraction;
}

std::optional<IsoTime> ParseIsoTime(std::string_view text, int first_year, int last_year) {
  size_t pos = 0;
  auto digits = [&](size_t count, int& out) {
    if (pos + count > text.size()) return false;
    out = 0;
    for (size_t i = 0; i < count; ++i) {
      const char c = text[pos + i];
      if (c < '0' || c > '9') return false;
      out = out * 10 + (c - '0');
    }
    pos += count;
    return true;
  };
  auto expect = [&](char c) {
    if (pos >= text.size() || text[pos] != c) return false;
    ++pos;
    return true;
  };
  IsoTime t;
  CivilTime& c = t.clock;
  if (!digits(4, c.year) || !expect('-') || !digits(2, c.month) || !expect('-') ||
      !digits(2, c.day) || !(expect('T') || expect(' ')) || !digits(2, c.hour) || !expect(':') ||
      !digits(2, c.minute) || !expect(':') || !digits(2, c.second)) {
    return std::nullopt;
  }
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (c.year % 4 == 0 && c.year % 100 != 0) || c.year % 400 == 0;
  if (c.year < first_year || c.year > last_year || c.month < 1 || c.month > 12 || c.day < 1 ||
      c.day > (c.month == 2 && leap ? 29 : kDays[c.month - 1]) || c.hour > 23 || c.minute > 59 ||
      c.second > 59) {
    return std::nullopt;
  }
  if (expect('.')) {
    double scale = 0.1;
    const size_t first = pos;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      t.fraction += (text[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == first) return std::nullopt;
  }
  if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    const int sign = text[pos] == '+' ? 1 : -1;
    ++pos;
    int hours = 0, minutes = 0;
    if (!digits(2, hours)) return std::nullopt;
    expect(':');
    if (!digits(2, minutes) || hours > 23 || minutes > 59) return std::nullopt;
    t.zone_offset_seconds = sign * (hours * 3600 + minutes * 60);
  } else {
    expect('Z');
  }
  if (pos != text.size()) return std::nullopt;
  return t;
}

Result<IsoTime> AcquiredTime(const formats::NormalisedFields& fields, int first_year, int last_year,
                             const std::string& where, std::string_view stored_as) {
  const std::string field = (where.empty() ? "" : where + ": ") + "acquisition.fields.acquired";
  if (!fields.acquired || fields.acquired->empty()) {
    return Status::InvalidArgument(field + " is not set (" + std::string(stored_as) +
                                   " stores it)");
  }
  std::optional<IsoTime> time = ParseIsoTime(*fields.acquired, first_year, last_year);
  if (!time) {
    return Status::InvalidArgument(
        field + " '" + *fields.acquired + "' is not an ISO 8601 date and time between " +
        std::to_string(first_year) + " and " + std::to_string(last_year));
  }
  return *time;
}

Result<CivilTime> AcquiredClock(const formats::NormalisedFields& fields, int first_year,
                                int last_year, const std::string& where,
                                std::string_view stored_as) {
  SCISEARCH_ASSIGN_OR_RETURN(const IsoTime time,
                             AcquiredTime(fields, first_year, last_year, where, stored_as));
  return time.clock;
}

Status ValidatePositiveFields(const formats::NormalisedFields& fields, const std::string& where) {
  for (const auto& [value, name] : {std::pair{fields.beam_energy_kev, "beam_energy_kev"},
                                    std::pair{fields.magnification, "magnification"},
                                    std::pair{fields.pixel_size_m, "pixel_size_m"}}) {
    if (value && !(*value > 0 && std::isfinite(*value))) {
      return Status::InvalidArgument((where.empty() ? "" : where + ": ") + "acquisition.fields." +
                                     name + " " + std::to_string(*value) +
                                     " is not positive and finite");
    }
  }
  return Status::Ok();
}

formats::Axis MakeAxis(std::string name, int64_t size, double scale, double offset,
                       std::string units, bool navigate) {
  formats::Axis axis;
  axis.name = std::move(name);
  axis.size = size;
  axis.scale = scale;
  axis.offset = offset;
  axis.units = std::move(units);
  axis.navigate = navigate;
  return axis;
}

std::string SignalLabel(size_t index, const SignalToWrite& signal) {
  return "acquisition.signals[" + std::to_string(index) + "]" +
         (signal.name.empty() ? std::string() : " (" + signal.name + ")");
}

Status ValidateSignalArray(const SignalToWrite& signal, const std::string& which, int64_t max_size,
                           uint64_t max_elements) {
  const formats::NdArray& data = signal.data;
  const size_t rank = signal.axes.size();
  if (rank == 0) return Status::InvalidArgument(which + ".axes is empty");
  if (rank != data.shape.size()) {
    return Status::InvalidArgument(which + ".axes has " + std::to_string(rank) +
                                   " entries but data.shape has " +
                                   std::to_string(data.shape.size()));
  }
  uint64_t elements = 1;
  for (size_t k = 0; k < rank; ++k) {
    const formats::Axis& axis = signal.axes[k];
    const std::string label = which + ".axes[" + std::to_string(k) + "] (" + axis.name + ")";
    if (axis.size != data.shape[k]) {
      return Status::InvalidArgument(label + " has size " + std::to_string(axis.size) +
                                     " but data.shape[" + std::to_string(k) + "] is " +
                                     std::to_string(data.shape[k]));
    }
    if (data.shape[k] < 1 || data.shape[k] > max_size) {
      return Status::InvalidArgument(which + ".data.shape[" + std::to_string(k) + "] is " +
                                     std::to_string(data.shape[k]) + ", outside 1.." +
                                     std::to_string(max_size));
    }
    if (!std::isfinite(axis.scale) || !std::isfinite(axis.offset)) {
      return Status::InvalidArgument(label + " has a non-finite scale or offset");
    }
    if (elements > max_elements / uint64_t(data.shape[k])) {
      return Status::InvalidArgument(which + ".data.shape has more than " +
                                     std::to_string(max_elements) + " elements");
    }
    elements *= uint64_t(data.shape[k]);
  }
  const uint64_t expected = elements * formats::DTypeSize(data.dtype);
  if (data.bytes.size() != expected) {
    return Status::InvalidArgument(which + ".data.bytes holds " +
                                   std::to_string(data.bytes.size()) + " bytes, not the " +
                                   std::to_string(expected) + " its shape and dtype need");
  }
  return Status::Ok();
}

bool IsReciprocalUnits(const std::string& units) {
  return formats::NormaliseUnits(units).rfind("1/", 0) == 0;
}

Result<std::optional<double>> MetresPerUnit(const formats::Axis& axis, const std::string& where,
                                            std::string_view format) {
  const std::string units = formats::NormaliseUnits(axis.units);
  if (units.empty()) return std::optional<double>();
  std::optional<double> si = formats::LengthToSi(units);
  if (!si || IsReciprocalUnits(units)) {
    return Status::InvalidArgument(where + ": axis '" + axis.name + "' units '" + axis.units +
                                   "' are not a length (" + std::string(format) +
                                   " stores lengths)");
  }
  if (!(axis.scale > 0) || !std::isfinite(axis.scale)) {
    return Status::InvalidArgument(where + ": axis '" + axis.name + "' scale " +
                                   std::to_string(axis.scale) + " is not a positive length");
  }
  return si;
}

Result<FrameMetres> FrameMetresPerUnit(const formats::Axis& y, const formats::Axis& x,
                                       const formats::NormalisedFields& fields,
                                       const std::string& where, std::string_view format) {
  FrameMetres metres;
  SCISEARCH_ASSIGN_OR_RETURN(metres.x, MetresPerUnit(x, where, format));
  SCISEARCH_ASSIGN_OR_RETURN(metres.y, MetresPerUnit(y, where, format));
  if (metres.x.has_value() != metres.y.has_value()) {
    return Status::InvalidArgument(where + ": axes '" + y.name + "' and '" + x.name +
                                   "': one is calibrated and the other is not");
  }
  if (fields.pixel_size_m) {
    const double px = *fields.pixel_size_m;
    if (!metres.x) {
      return Status::InvalidArgument(where + ": fields.pixel_size_m is set but axis '" + x.name +
                                     "' has no length units");
    }
    if (fields.pixel_size_units && *fields.pixel_size_units != "m") {
      return Status::InvalidArgument(where + ": fields.pixel_size_units '" +
                                     *fields.pixel_size_units + "': " + std::string(format) +
                                     " stores lengths only");
    }
    const double pixel_x_m = x.scale * *metres.x;
    if (!(std::abs(px - pixel_x_m) <= 1e-6 * std::abs(px))) {
      return Status::InvalidArgument(where + ": fields.pixel_size_m " + std::to_string(px) +
                                     " disagrees with axis '" + x.name + "' (" +
                                     std::to_string(pixel_x_m) + " m)");
    }
  }
  return metres;
}

Result<size_t> LeadingNavigateAxes(const SignalToWrite& signal, const std::string& which) {
  const size_t rank = signal.axes.size();
  size_t navigate = 0;
  while (navigate < rank && signal.axes[navigate].navigate) ++navigate;
  for (size_t k = navigate; k < rank; ++k) {
    if (signal.axes[k].navigate) {
      return Status::InvalidArgument(which + ".axes[" + std::to_string(k) +
                                     "] is a navigate axis after a frame axis (navigate axes "
                                     "come first)");
    }
  }
  const size_t frame_rank = rank - navigate;
  if (frame_rank != 1 && frame_rank != 2) {
    return Status::InvalidArgument(which + " has " + std::to_string(frame_rank) +
                                   " frame (non-navigate) axes; images have 2, spectra 1");
  }
  return navigate;
}

Hash128 Fnv1a128(std::string_view key) {
  Hash128 hash;
  hash.high = Fnv1a(key);
  hash.low = Fnv1a(key, hash.high ^ 0x9e3779b97f4a7c15ull);
  return hash;
}

}  // namespace scisearch::simulate
