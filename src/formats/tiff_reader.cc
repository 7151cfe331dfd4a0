// TIFF reader on libtiff: plain TIFF plus the microscope dialects that keep their
// metadata in private tags or in the ImageDescription:
//   FEI/Thermo SEM (tags 34680 FEI_SFEG, 34682 FEI_HELIOS: INI text),
//   Zeiss SEM (tag 34118 CZ_SEM: "AP_xxx"/"DP_xxx" keys, "Label = value unit" lines),
//   JEOL SightX (ImageDescription: <TemReporter> XML),
//   Olympus SIS (tag 33560: binary "SIS0" structure),
//   TVIPS EM-MENU (tag 37706: TemData header, versions 1 and 2),
//   Gatan DigitalMicrograph export (tags 65003-65027: axis units, scales, offsets),
//   ImageJ (ImageDescription "ImageJ=...": key=value lines).
//
// Pages: consecutive pages of one shape and type form one stack signal (frame, y, x);
// a page that differs starts a new signal. Reduced-resolution pages and JPEG colour
// previews beside raw data are reported after the data signals.
//
// Errors: libtiff reports errors and warnings through handlers. libtiff 4.5 lets us
// install them per TIFF handle (TIFFOpenOptionsSetErrorHandlerExtR), so each reader
// collects its own messages without global state. A few libtiff code paths (some
// codecs) still use the process-wide legacy handlers, which print to stderr by
// default; those are set once, with std::call_once, to none. This is the one piece of
// global state here and it is write-once: no reader depends on its value.
#include <tiffio.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <limits>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "formats/byte_source.h"
#include "formats/dataset_json.h"
#include "formats/metadata_lookup.h"
#include "formats/normalise.h"
#include "formats/readers.h"
#include "formats/slab_io.h"
#include "formats/text.h"

namespace scisearch::formats {
namespace {

namespace fs = std::filesystem;

// Bounds that keep hostile files from making us loop or allocate without end.
constexpr int kMaxPages = 100000;
constexpr uint64_t kMaxDecodedBlockBytes = 512ull << 20;  // one decoded strip or tile band
constexpr uint64_t kMaxCompressionRatio = 2000;           // decoded bytes per stored byte
constexpr size_t kMaxXmlDepth = 64;
constexpr size_t kMaxXmlElements = 200000;
constexpr size_t kMaxTagValuesInTree = 256;  // longer numeric tags are summarised
constexpr size_t kMaxErrorText = 2000;

// ---------------------------------------------------------------------------------------
// Text helpers

// Text up to its first NUL, trimmed, as UTF-8.
std::string CleanText(std::string_view s) {
  const size_t nul = s.find('\0');
  if (nul != std::string_view::npos) s = s.substr(0, nul);
  return ToUtf8Lossless(TrimSpace(s));
}

std::optional<int64_t> ParseInt(std::string_view s) {
  s = TrimSpace(s);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<double> ParseReal(std::string_view s) {
  s = TrimSpace(s);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || !std::isfinite(v)) {
    return std::nullopt;
  }
  return v;
}

// A value typed as the text reads: integer, real, or string.
Metadata TypedValue(std::string_view text) {
  const std::string_view t = TrimSpace(text);
  if (auto i = ParseInt(t)) return *i;
  if (auto d = ParseReal(t)) return *d;
  return CleanText(t);
}

// "2016:06:13 10:11:12" (TIFF 6.0 DateTime) or "2015/07/30 7:17" (JEOL) as ISO 8601.
std::optional<std::string> IsoFromTiffDateTime(std::string_view text) {
  int v[6] = {0, 0, 0, 0, 0, 0};
  int n = 0;
  size_t i = 0;
  while (i < text.size() && n < 6) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) {
      ++i;
      continue;
    }
    int value = 0;
    int digits = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])) && digits < 5) {
      value = value * 10 + (text[i] - '0');
      ++i;
      ++digits;
    }
    v[n++] = value;
  }
  if (n < 5 || v[0] < 1900 || v[0] > 2200 || v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 ||
      v[3] > 23 || v[4] > 59 || v[5] > 60) {
    return std::nullopt;
  }
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d", v[0], v[1], v[2], v[3], v[4],
                v[5]);
  return std::string(buf);
}

// ---------------------------------------------------------------------------------------
// Vendor text formats

// FEI/Thermo INI text: "[Section]" lines and "key=value" lines.
Metadata ParseFeiIni(std::string_view text) {
  Metadata tree = Metadata::object();
  Metadata* section = nullptr;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = TrimSpace(text.substr(pos, end - pos));
    pos = end + 1;
    if (line.empty()) continue;
    if (line.front() == '[' && line.back() == ']') {
      const std::string name = CleanText(line.substr(1, line.size() - 2));
      if (!tree.contains(name)) tree[name] = Metadata::object();
      section = &tree[name];
      continue;
    }
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos || section == nullptr) continue;
    (*section)[CleanText(line.substr(0, eq))] = TypedValue(line.substr(eq + 1));
  }
  return tree;
}

// One Zeiss value "25.00 kV", "50.00 K X", "Off", "23 Dec 2015": a number and units,
// or a string.
void ZeissValue(std::string_view text, Metadata& entry) {
  text = TrimSpace(text);
  const size_t space = text.find(' ');
  if (auto i = ParseInt(text)) {
    entry["value"] = *i;
    return;
  }
  if (auto d = ParseReal(text)) {
    entry["value"] = *d;
    return;
  }
  // Units never hold digits: "23 Dec 2015" is a date, not 23 of "Dec 2015".
  const bool unit_like = space != std::string_view::npos &&
                         std::none_of(text.begin() + space, text.end(),
                                      [](unsigned char c) { return std::isdigit(c); });
  if (unit_like) {
    if (auto d = ParseReal(text.substr(0, space))) {
      auto i = ParseInt(text.substr(0, space));
      entry["value"] = i ? Metadata(*i) : Metadata(*d);
      entry["units"] = CleanText(text.substr(space + 1));
      return;
    }
  }
  entry["value"] = CleanText(text);
}

// Zeiss CZ_SEM text: numbers first (the unlabelled header), then pairs of lines:
// an upper-case key ("AP_MAG") and "Label = value" (or "Label :value" for dates).
Metadata ParseZeissSem(std::string_view text) {
  // The sections in first-seen order; a repeated key replaces its section's value in
  // place (as Metadata's operator[] would), found through `position` rather than by
  // a scan of a file's thousand-odd sections.
  std::vector<std::pair<std::string, Metadata>> tree;
  std::unordered_map<std::string, size_t> position;
  Metadata header = Metadata::array();
  std::string key;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const std::string_view trimmed = TrimSpace(line);
    if (trimmed.empty()) continue;
    bool has_upper = false;
    bool is_key = true;
    for (char c : trimmed) {
      if (std::islower(static_cast<unsigned char>(c)) || c == ' ' || c == '=') is_key = false;
      if (std::isupper(static_cast<unsigned char>(c))) has_upper = true;
    }
    if (is_key && has_upper) {
      key = CleanText(trimmed);
      continue;
    }
    if (key.empty()) {
      if (tree.empty()) header.push_back(TypedValue(trimmed));
      continue;
    }
    size_t sep = trimmed.find('=');
    if (sep == std::string_view::npos) sep = trimmed.find(':');
    Metadata entry = Metadata::object();
    if (sep == std::string_view::npos) {
      entry["value"] = CleanText(trimmed);
    } else {
      entry["label"] = CleanText(trimmed.substr(0, sep));
      ZeissValue(trimmed.substr(sep + 1), entry);
    }
    const auto [at, inserted] = position.try_emplace(key, tree.size());
    if (inserted) {
      tree.emplace_back(std::move(key), std::move(entry));
    } else {
      tree[at->second].second = std::move(entry);
    }
    key.clear();
  }
  Metadata out = Metadata::object();
  auto& members = out.get_ref<Metadata::object_t&>();
  members.reserve(tree.size() + 1);
  members.emplace_back("header", std::move(header));
  for (auto& [k, v] : tree) {
    if (k == "header") {
      members.front().second = std::move(v);  // what out["header"] = v would do
    } else {
      members.emplace_back(std::move(k), std::move(v));
    }
  }
  return out;
}

// key=value lines (ImageJ's ImageDescription).
Metadata ParseKeyValueLines(std::string_view text) {
  Metadata tree = Metadata::object();
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = TrimSpace(text.substr(pos, end - pos));
    pos = end + 1;
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    tree[CleanText(line.substr(0, eq))] = TypedValue(line.substr(eq + 1));
  }
  return tree;
}

// A small XML reader for ImageDescription documents (JEOL's <TemReporter>): elements
// become objects, repeated elements arrays, text typed values, attributes "@name".
// Bounded in depth and element count; returns nullopt for text that is not well-formed.
class XmlToJson {
 public:
  explicit XmlToJson(std::string_view text) : s_(text) {}

  std::optional<std::pair<std::string, Metadata>> Parse() {
    SkipMisc();
    if (!Peek('<')) return std::nullopt;
    std::string name;
    Metadata value;
    if (!Element(0, name, value)) return std::nullopt;
    return std::make_pair(name, std::move(value));
  }

 private:
  bool Peek(char c) const { return i_ < s_.size() && s_[i_] == c; }
  bool StartsWith(std::string_view p) const { return s_.substr(i_, p.size()) == p; }
  void SkipSpace() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  bool SkipPast(std::string_view end) {
    const size_t p = s_.find(end, i_);
    if (p == std::string_view::npos) return false;
    i_ = p + end.size();
    return true;
  }
  // Skips the prolog, comments, processing instructions and DOCTYPE.
  void SkipMisc() {
    while (true) {
      SkipSpace();
      if (StartsWith("<?")) {
        if (!SkipPast("?>")) return;
      } else if (StartsWith("<!--")) {
        if (!SkipPast("-->")) return;
      } else if (StartsWith("<!")) {
        if (!SkipPast(">")) return;
      } else {
        return;
      }
    }
  }
  std::string Name() {
    const size_t b = i_;
    while (i_ < s_.size()) {
      const char c = s_[i_];
      if (std::isspace(static_cast<unsigned char>(c)) || c == '>' || c == '/' || c == '=') break;
      ++i_;
    }
    return CleanText(s_.substr(b, i_ - b));
  }
  static std::string Unescape(std::string_view t) {
    std::string out;
    out.reserve(t.size());
    for (size_t k = 0; k < t.size(); ++k) {
      if (t[k] != '&') {
        out.push_back(t[k]);
        continue;
      }
      static const std::pair<std::string_view, char> kEntities[] = {
          {"&lt;", '<'}, {"&gt;", '>'}, {"&amp;", '&'}, {"&quot;", '"'}, {"&apos;", '\''}};
      bool done = false;
      for (const auto& [e, c] : kEntities) {
        if (t.substr(k, e.size()) == e) {
          out.push_back(c);
          k += e.size() - 1;
          done = true;
          break;
        }
      }
      if (!done) out.push_back('&');
    }
    return out;
  }
  // A repeated child name gathers its elements into an array.
  static void Add(ObjectMembers& members, std::string key, Metadata value) {
    Metadata* existing = members.Find(key);
    if (existing == nullptr) {
      members.AppendNew(std::move(key), std::move(value));
    } else if (existing->is_array()) {
      existing->push_back(std::move(value));
    } else {
      Metadata arr = Metadata::array();
      arr.push_back(std::move(*existing));
      arr.push_back(std::move(value));
      *existing = std::move(arr);
    }
  }
  static Metadata TextValue(std::string_view raw) {
    const std::string text = Unescape(TrimSpace(raw));
    if (text == "true") return true;
    if (text == "false") return false;
    return TypedValue(text);
  }

  // At '<' of a start tag. Reads the element and its content.
  bool Element(size_t depth, std::string& name, Metadata& value) {
    if (depth > kMaxXmlDepth || ++elements_ > kMaxXmlElements) return false;
    ++i_;  // '<'
    name = Name();
    if (name.empty()) return false;
    ObjectMembers members;  // attributes, then children
    while (true) {
      SkipSpace();
      if (i_ >= s_.size()) return false;
      if (StartsWith("/>")) {
        i_ += 2;
        value = members.empty() ? Metadata("") : members.Take();
        return true;
      }
      if (Peek('>')) {
        ++i_;
        break;
      }
      const std::string attr = Name();
      SkipSpace();
      if (attr.empty() || !Peek('=')) return false;
      ++i_;
      SkipSpace();
      if (!Peek('"') && !Peek('\'')) return false;
      const char quote = s_[i_++];
      const size_t close = s_.find(quote, i_);
      if (close == std::string_view::npos) return false;
      if (attr.rfind("xmlns", 0) != 0) {
        members.Set("@" + attr, TextValue(s_.substr(i_, close - i_)));
      }
      i_ = close + 1;
    }
    std::string text;
    while (true) {
      const size_t lt = s_.find('<', i_);
      if (lt == std::string_view::npos) return false;
      text.append(s_.substr(i_, lt - i_));
      i_ = lt;
      if (StartsWith("</")) {
        i_ += 2;
        const std::string end = Name();
        SkipSpace();
        if (end != name || !Peek('>')) return false;
        ++i_;
        break;
      }
      if (StartsWith("<!--")) {
        if (!SkipPast("-->")) return false;
        continue;
      }
      if (StartsWith("<![CDATA[")) {
        const size_t b = i_ + 9;
        if (!SkipPast("]]>")) return false;
        text.append(s_.substr(b, i_ - 3 - b));
        continue;
      }
      if (StartsWith("<?")) {
        if (!SkipPast("?>")) return false;
        continue;
      }
      std::string child_name;
      Metadata child;
      if (!Element(depth + 1, child_name, child)) return false;
      Add(members, std::move(child_name), std::move(child));
    }
    if (members.empty()) {
      value = TextValue(text);
    } else {
      if (!TrimSpace(text).empty()) members.Set("#text", TextValue(text));
      value = members.Take();
    }
    return true;
  }

  std::string_view s_;
  size_t i_ = 0;
  size_t elements_ = 0;
};

// ---------------------------------------------------------------------------------------
// Vendor binary structures

// Olympus SIS (tag 33560): "SIS0", date fields, name and a table of sub-blocks; block
// type 1 holds the calibration (layout as documented by tifffile; little-endian).
Result<Metadata> ParseOlympusSis(const FileSource& file, uint64_t offset) {
  if (offset >= file.size() || file.size() - offset < 60) {
    return Status::Corrupt("OlympusSIS structure offset " + std::to_string(offset) +
                           " is past the end of the file");
  }
  SCISEARCH_ASSIGN_OR_RETURN(std::vector<uint8_t> head, file.ReadBytes(offset, 60));
  ByteCursor c(head, ByteOrder::kLittle, file.path().string() + " OlympusSIS");
  SCISEARCH_ASSIGN_OR_RETURN(std::string magic, c.ReadString(4, "magic"));
  if (magic != "SIS0") return Status::Corrupt("OlympusSIS structure has no 'SIS0' magic");
  SCISEARCH_RETURN_IF_ERROR(c.Skip(6, "reserved"));
  SCISEARCH_ASSIGN_OR_RETURN(int16_t minute, c.Read<int16_t>("minute"));
  SCISEARCH_ASSIGN_OR_RETURN(int16_t hour, c.Read<int16_t>("hour"));
  SCISEARCH_ASSIGN_OR_RETURN(int16_t day, c.Read<int16_t>("day"));
  SCISEARCH_ASSIGN_OR_RETURN(int16_t month, c.Read<int16_t>("month"));
  SCISEARCH_ASSIGN_OR_RETURN(int16_t year, c.Read<int16_t>("year"));
  SCISEARCH_RETURN_IF_ERROR(c.Skip(6, "reserved"));
  SCISEARCH_ASSIGN_OR_RETURN(std::string name, c.ReadString(32, "name"));
  SCISEARCH_ASSIGN_OR_RETURN(int16_t block_count, c.Read<int16_t>("block count"));
  Metadata tree = Metadata::object();
  tree["name"] = CleanText(name);
  if (month >= 0 && month <= 11 && day >= 1 && day <= 31 && hour >= 0 && hour <= 23 &&
      minute >= 0 && minute <= 59 && year >= 0 && year < 300) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:00", 1900 + year, month + 1, day,
                  hour, minute);
    tree["datetime"] = buf;
  }
  if (block_count < 0 || block_count > 256) {
    return Status::Corrupt("OlympusSIS block count " + std::to_string(block_count) +
                           " is out of range");
  }
  const uint64_t table_bytes = uint64_t(block_count) * 8;
  if (file.size() - offset - 60 < table_bytes) {
    return Status::Corrupt("OlympusSIS block table runs past the end of the file");
  }
  SCISEARCH_ASSIGN_OR_RETURN(std::vector<uint8_t> table, file.ReadBytes(offset + 60, table_bytes));
  ByteCursor t(table, ByteOrder::kLittle, file.path().string() + " OlympusSIS table");
  Metadata blocks = Metadata::array();
  for (int b = 0; b < block_count; ++b) {
    SCISEARCH_ASSIGN_OR_RETURN(int16_t type, t.Read<int16_t>("block type"));
    SCISEARCH_ASSIGN_OR_RETURN(int16_t count, t.Read<int16_t>("block count"));
    SCISEARCH_ASSIGN_OR_RETURN(uint32_t at, t.Read<uint32_t>("block offset"));
    blocks.push_back({{"type", type}, {"count", count}, {"offset", at}});
    if (type != 1) continue;
    if (at >= file.size() || file.size() - at < 112) {
      return Status::Corrupt("OlympusSIS calibration block offset " + std::to_string(at) +
                             " is past the end of the file");
    }
    SCISEARCH_ASSIGN_OR_RETURN(std::vector<uint8_t> cal, file.ReadBytes(at, 112));
    ByteCursor k(cal, ByteOrder::kLittle, file.path().string() + " OlympusSIS calibration");
    SCISEARCH_RETURN_IF_ERROR(k.Skip(10, "reserved"));
    SCISEARCH_ASSIGN_OR_RETURN(int16_t exponent, k.Read<int16_t>("length exponent"));
    SCISEARCH_ASSIGN_OR_RETURN(double xcal, k.Read<double>("x calibration"));
    SCISEARCH_ASSIGN_OR_RETURN(double ycal, k.Read<double>("y calibration"));
    SCISEARCH_RETURN_IF_ERROR(k.Skip(8, "reserved"));
    SCISEARCH_ASSIGN_OR_RETURN(double mag, k.Read<double>("magnification"));
    SCISEARCH_RETURN_IF_ERROR(k.Skip(2, "reserved"));
    SCISEARCH_ASSIGN_OR_RETURN(std::string camera, k.ReadString(34, "camera name"));
    SCISEARCH_ASSIGN_OR_RETURN(std::string picture, k.ReadString(32, "picture type"));
    if (exponent < -30 || exponent > 30) {
      return Status::Corrupt("OlympusSIS length exponent " + std::to_string(exponent) +
                             " is out of range");
    }
    const double factor = std::pow(10.0, exponent);
    if (std::isfinite(xcal)) tree["pixel_size_x_m"] = xcal * factor;
    if (std::isfinite(ycal)) tree["pixel_size_y_m"] = ycal * factor;
    if (std::isfinite(mag)) tree["magnification"] = mag;
    tree["camera_name"] = CleanText(camera);
    tree["picture_type"] = CleanText(picture);
  }
  tree["blocks"] = std::move(blocks);
  return tree;
}

// TVIPS EM-MENU TemData header (tag 37706): version 1 block, then version 2 block.
enum class TvipsKind { kI32, kU32, kF32, kUtf16, kF32Array, kC64Array };
struct TvipsField {
  const char* name;
  TvipsKind kind;
  int count;  // bytes for kUtf16, elements for arrays, 1 otherwise
};

constexpr TvipsField kTvipsV1[] = {
    {"HighTension", TvipsKind::kI32, 1},
    {"SphericalAberration", TvipsKind::kI32, 1},
    {"IlluminationAperture", TvipsKind::kI32, 1},
    {"Magnification", TvipsKind::kI32, 1},
    {"PostMagnification", TvipsKind::kF32, 1},
    {"FocalLength", TvipsKind::kI32, 1},
    {"Defocus", TvipsKind::kI32, 1},
    {"Astigmatism", TvipsKind::kI32, 1},
    {"AstigmatismDirection", TvipsKind::kI32, 1},
    {"BiprismVoltage", TvipsKind::kI32, 1},
    {"SpecimenTiltAngle", TvipsKind::kI32, 1},
    {"SpecimenTiltDirection", TvipsKind::kI32, 1},
    {"IlluminationTiltDirection", TvipsKind::kI32, 1},
    {"IlluminationTiltAngle", TvipsKind::kI32, 1},
    {"ImageMode", TvipsKind::kI32, 1},
    {"EnergySpread", TvipsKind::kI32, 1},
    {"ChromaticAberration", TvipsKind::kI32, 1},
    {"ShutterType", TvipsKind::kI32, 1},
    {"DefocusSpread", TvipsKind::kI32, 1},
    {"CcdNumber", TvipsKind::kI32, 1},
    {"CcdSize", TvipsKind::kI32, 1},
    {"OffsetXV1", TvipsKind::kI32, 1},
    {"OffsetYV1", TvipsKind::kI32, 1},
    {"PhysicalPixelSize", TvipsKind::kI32, 1},
    {"Binning", TvipsKind::kI32, 1},
    {"ReadoutSpeed", TvipsKind::kI32, 1},
    {"GainV1", TvipsKind::kI32, 1},
    {"SensitivityV1", TvipsKind::kI32, 1},
    {"ExposureTimeV1", TvipsKind::kI32, 1},
    {"FlatCorrected", TvipsKind::kI32, 1},
    {"DeadPxCorrected", TvipsKind::kI32, 1},
    {"ImageMean", TvipsKind::kI32, 1},
    {"ImageStd", TvipsKind::kI32, 1},
    {"DisplacementX", TvipsKind::kI32, 1},
    {"DisplacementY", TvipsKind::kI32, 1},
    {"DateV1", TvipsKind::kI32, 1},
    {"TimeV1", TvipsKind::kI32, 1},
    {"ImageMin", TvipsKind::kI32, 1},
    {"ImageMax", TvipsKind::kI32, 1},
    {"ImageStatisticsQuality", TvipsKind::kI32, 1},
};

constexpr TvipsField kTvipsV2[] = {
    {"ImageName", TvipsKind::kUtf16, 160},
    {"ImageFolder", TvipsKind::kUtf16, 160},
    {"ImageSizeX", TvipsKind::kI32, 1},
    {"ImageSizeY", TvipsKind::kI32, 1},
    {"ImageSizeZ", TvipsKind::kI32, 1},
    {"ImageSizeE", TvipsKind::kI32, 1},
    {"ImageDataType", TvipsKind::kI32, 1},
    {"Date", TvipsKind::kI32, 1},
    {"Time", TvipsKind::kI32, 1},
    {"Comment", TvipsKind::kUtf16, 1024},
    {"ImageHistory", TvipsKind::kUtf16, 1024},
    {"Scaling", TvipsKind::kF32Array, 16},
    {"ImageStatistics", TvipsKind::kC64Array, 16},
    {"ImageType", TvipsKind::kI32, 1},
    {"ImageDisplayType", TvipsKind::kI32, 1},
    {"PixelSizeX", TvipsKind::kF32, 1},
    {"PixelSizeY", TvipsKind::kF32, 1},
    {"ImageDistanceZ", TvipsKind::kF32, 1},
    {"ImageDistanceE", TvipsKind::kF32, 1},
    {"ImageMisc", TvipsKind::kF32Array, 32},
    {"TemType", TvipsKind::kUtf16, 160},
    {"TemHighTension", TvipsKind::kF32, 1},
    {"TemAberrations", TvipsKind::kF32Array, 32},
    {"TemEnergy", TvipsKind::kF32Array, 32},
    {"TemMode", TvipsKind::kI32, 1},
    {"TemMagnification", TvipsKind::kF32, 1},
    {"TemMagnificationCorrection", TvipsKind::kF32, 1},
    {"PostMagnification", TvipsKind::kF32, 1},
    {"TemStageType", TvipsKind::kI32, 1},
    {"TemStagePosition", TvipsKind::kF32Array, 5},
    {"TemImageShift", TvipsKind::kF32Array, 2},
    {"TemBeamShift", TvipsKind::kF32Array, 2},
    {"TemBeamTilt", TvipsKind::kF32Array, 2},
    {"TilingParameters", TvipsKind::kF32Array, 7},
    {"TemIllumination", TvipsKind::kF32Array, 3},
    {"TemShutter", TvipsKind::kI32, 1},
    {"TemMisc", TvipsKind::kF32Array, 32},
    {"CameraType", TvipsKind::kUtf16, 160},
    {"PhysicalPixelSizeX", TvipsKind::kF32, 1},
    {"PhysicalPixelSizeY", TvipsKind::kF32, 1},
    {"OffsetX", TvipsKind::kI32, 1},
    {"OffsetY", TvipsKind::kI32, 1},
    {"BinningX", TvipsKind::kI32, 1},
    {"BinningY", TvipsKind::kI32, 1},
    {"ExposureTime", TvipsKind::kF32, 1},
    {"Gain", TvipsKind::kF32, 1},
    {"ReadoutRate", TvipsKind::kF32, 1},
    {"FlatfieldDescription", TvipsKind::kUtf16, 160},
    {"Sensitivity", TvipsKind::kF32, 1},
    {"Dose", TvipsKind::kF32, 1},
    {"CamMisc", TvipsKind::kF32Array, 32},
    {"FeiMicroscopeInformation", TvipsKind::kUtf16, 1024},
    {"FeiSpecimenInformation", TvipsKind::kUtf16, 1024},
    {"Magic", TvipsKind::kU32, 1},
};

size_t TvipsBytes(const TvipsField& f) {
  switch (f.kind) {
    case TvipsKind::kUtf16:
      return size_t(f.count);
    case TvipsKind::kF32Array:
      return 4 * size_t(f.count);
    case TvipsKind::kC64Array:
      return 16 * size_t(f.count);
    default:
      return 4;
  }
}

// UTF-16LE/BE text of `bytes` bytes, to its first NUL, as UTF-8 (BMP only).
Result<std::string> ReadUtf16(ByteCursor& c, size_t bytes, const char* what) {
  std::string out;
  bool ended = false;
  for (size_t k = 0; k + 1 < bytes + 1 && k < bytes; k += 2) {
    SCISEARCH_ASSIGN_OR_RETURN(uint16_t u, c.Read<uint16_t>(what));
    if (u == 0) ended = true;
    if (ended) continue;
    if (u < 0x80) {
      out.push_back(static_cast<char>(u));
    } else if (u < 0x800) {
      out.push_back(static_cast<char>(0xc0 | (u >> 6)));
      out.push_back(static_cast<char>(0x80 | (u & 0x3f)));
    } else if (u < 0xd800 || u > 0xdfff) {
      out.push_back(static_cast<char>(0xe0 | (u >> 12)));
      out.push_back(static_cast<char>(0x80 | ((u >> 6) & 0x3f)));
      out.push_back(static_cast<char>(0x80 | (u & 0x3f)));
    }
  }
  return std::string(TrimSpace(out));
}

Status ReadTvipsFields(ByteCursor& c, std::span<const TvipsField> fields, Metadata& tree) {
  for (const TvipsField& f : fields) {
    switch (f.kind) {
      case TvipsKind::kI32: {
        SCISEARCH_ASSIGN_OR_RETURN(int32_t v, c.Read<int32_t>(f.name));
        tree[f.name] = v;
        break;
      }
      case TvipsKind::kU32: {
        SCISEARCH_ASSIGN_OR_RETURN(uint32_t v, c.Read<uint32_t>(f.name));
        tree[f.name] = v;
        break;
      }
      case TvipsKind::kF32: {
        SCISEARCH_ASSIGN_OR_RETURN(float v, c.Read<float>(f.name));
        tree[f.name] = FiniteOrNull(v);
        break;
      }
      case TvipsKind::kUtf16: {
        SCISEARCH_ASSIGN_OR_RETURN(std::string s, ReadUtf16(c, size_t(f.count), f.name));
        tree[f.name] = s;
        break;
      }
      case TvipsKind::kF32Array: {
        Metadata a = Metadata::array();
        for (int k = 0; k < f.count; ++k) {
          SCISEARCH_ASSIGN_OR_RETURN(float v, c.Read<float>(f.name));
          a.push_back(FiniteOrNull(v));
        }
        tree[f.name] = std::move(a);
        break;
      }
      case TvipsKind::kC64Array: {
        Metadata a = Metadata::array();
        for (int k = 0; k < f.count; ++k) {
          SCISEARCH_ASSIGN_OR_RETURN(double re, c.Read<double>(f.name));
          SCISEARCH_ASSIGN_OR_RETURN(double im, c.Read<double>(f.name));
          a.push_back(Metadata::array({FiniteOrNull(re), FiniteOrNull(im)}));
        }
        tree[f.name] = std::move(a);
        break;
      }
    }
  }
  return Status::Ok();
}

Result<Metadata> ParseTvips(const FileSource& file, uint64_t offset, ByteOrder order) {
  size_t v1_bytes = 4 + 80;
  for (const auto& f : kTvipsV1) v1_bytes += TvipsBytes(f);
  size_t v2_bytes = 0;
  for (const auto& f : kTvipsV2) v2_bytes += TvipsBytes(f);
  if (offset >= file.size() || file.size() - offset < v1_bytes) {
    return Status::Corrupt("TVIPS header at offset " + std::to_string(offset) +
                           " runs past the end of the file");
  }
  const uint64_t available = std::min<uint64_t>(file.size() - offset, v1_bytes + v2_bytes);
  SCISEARCH_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, file.ReadBytes(offset, available));
  ByteCursor c(bytes, order, file.path().string() + " TVIPS header");
  Metadata tree = Metadata::object();
  SCISEARCH_ASSIGN_OR_RETURN(int32_t version, c.Read<int32_t>("Version"));
  tree["Version"] = version;
  SCISEARCH_ASSIGN_OR_RETURN(std::string comment, c.ReadString(80, "CommentV1"));
  tree["CommentV1"] = CleanText(comment);
  SCISEARCH_RETURN_IF_ERROR(ReadTvipsFields(c, kTvipsV1, tree));
  if (version == 2) {
    SCISEARCH_RETURN_IF_ERROR(ReadTvipsFields(c, kTvipsV2, tree));
    if (tree["Magic"].get<uint32_t>() != 0xAAAAAAAAu) {
      return Status::Corrupt("TVIPS version 2 header has a wrong magic number");
    }
  } else if (version != 1) {
    return Status::Unsupported("TVIPS header version " + std::to_string(version));
  }
  return tree;
}

// TVIPS dates are (year << 16) | (month << 8) | day, times seconds since midnight.
std::optional<std::string> TvipsDateTime(int64_t date, int64_t seconds) {
  const int64_t year = date >> 16, month = (date >> 8) & 0xff, day = date & 0xff;
  if (year < 1900 || year > 2200 || month < 1 || month > 12 || day < 1 || day > 31 || seconds < 0 ||
      seconds >= 86400) {
    return std::nullopt;
  }
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d", int(year), int(month), int(day),
                int(seconds / 3600), int(seconds / 60 % 60), int(seconds % 60));
  return std::string(buf);
}

// Relativistic electron wavelength in metres for an accelerating voltage in volts.
double ElectronWavelength(double volts) {
  constexpr double kH = 6.62607015e-34, kMe = 9.1093837015e-31, kE = 1.602176634e-19,
                   kC = 299792458.0;
  return kH / std::sqrt(2 * kMe * kE * volts * (1 + kE * volts / (2 * kMe * kC * kC)));
}

// ---------------------------------------------------------------------------------------
// libtiff plumbing

// Collects the messages libtiff reports for one handle.
struct ErrorLog {
  std::string errors;
  void Clear() { errors.clear(); }
};

int CollectError(TIFF*, void* user_data, const char* module, const char* fmt, va_list ap) {
  auto* log = static_cast<ErrorLog*>(user_data);
  if (log == nullptr) return 1;
  char buf[512];
  std::vsnprintf(buf, sizeof(buf), fmt, ap);
  if (log->errors.size() < kMaxErrorText) {
    if (!log->errors.empty()) log->errors += "; ";
    if (module != nullptr && *module != 0) log->errors += std::string(module) + ": ";
    log->errors += buf;
  }
  return 1;  // handled: libtiff must not also call the process-wide handler
}

int IgnoreWarning(TIFF*, void*, const char*, const char*, va_list) { return 1; }

void SilenceGlobalHandlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    TIFFSetErrorHandler(nullptr);
    TIFFSetWarningHandler(nullptr);
  });
}

struct TiffCloser {
  void operator()(TIFF* t) const { TIFFClose(t); }
};
using TiffHandle = std::unique_ptr<TIFF, TiffCloser>;

struct OptionsFree {
  void operator()(TIFFOpenOptions* o) const { TIFFOpenOptionsFree(o); }
};

// How one page (directory) is decoded.
struct PageLayout {
  tdir_t directory = 0;
  uint32_t width = 0;
  uint32_t height = 0;
  uint16_t samples = 1;  // samples per pixel in the file
  uint16_t bits = 8;
  uint16_t sample_format = SAMPLEFORMAT_UINT;
  uint16_t photometric = PHOTOMETRIC_MINISBLACK;
  uint16_t planar = PLANARCONFIG_CONTIG;
  uint16_t compression = COMPRESSION_NONE;
  bool tiled = false;
  uint32_t block_width = 0;   // tile width (tiled) or image width
  uint32_t block_height = 0;  // tile length or rows per strip
  bool reduced = false;       // NewSubfileType marks a reduced-resolution copy
  DType dtype = DType::kUInt8;
  int out_samples = 1;            // samples per pixel kept in the output element run (contig)
  bool plane_axis = false;        // planar-separate with several samples: leading "sample" axis
  std::vector<uint8_t> gray_lut;  // palette images with a gray palette: index -> gray

  // Shape key: pages with equal keys stack.
  bool SameShape(const PageLayout& o) const {
    return width == o.width && height == o.height && dtype == o.dtype &&
           out_samples == o.out_samples && plane_axis == o.plane_axis && samples == o.samples;
  }
  size_t PixelBytes() const { return DTypeSize(dtype) * size_t(out_samples); }
};

Result<DType> ScalarType(uint16_t format, uint16_t bits) {
  switch (format) {
    case SAMPLEFORMAT_UINT:
    case SAMPLEFORMAT_VOID:
      switch (bits) {
        case 1:
        case 2:
        case 4:
        case 8:
          return DType::kUInt8;
        case 16:
          return DType::kUInt16;
        case 32:
          return DType::kUInt32;
        case 64:
          return DType::kUInt64;
      }
      break;
    case SAMPLEFORMAT_INT:
      switch (bits) {
        case 8:
          return DType::kInt8;
        case 16:
          return DType::kInt16;
        case 32:
          return DType::kInt32;
        case 64:
          return DType::kInt64;
      }
      break;
    case SAMPLEFORMAT_IEEEFP:
      if (bits == 32) return DType::kFloat32;
      if (bits == 64) return DType::kFloat64;
      break;
    case SAMPLEFORMAT_COMPLEXIEEEFP:
      if (bits == 64) return DType::kComplex64;
      if (bits == 128) return DType::kComplex128;
      break;
  }
  return Status::Unsupported("sample format " + std::to_string(format) + " with " +
                             std::to_string(bits) + " bits per sample");
}

// Reads the layout of the current directory; errors say why the page cannot be read.
Result<PageLayout> ReadLayout(TIFF* tif, tdir_t directory, uint64_t file_size) {
  PageLayout p;
  p.directory = directory;
  uint32_t u32 = 0;
  if (!TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &p.width) ||
      !TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &p.height)) {
    return Status::Corrupt("page has no image width or length");
  }
  if (p.width == 0 || p.height == 0 || p.width > (1u << 30) || p.height > (1u << 30)) {
    return Status::Corrupt("image size " + std::to_string(p.width) + "x" +
                           std::to_string(p.height) + " is out of range");
  }
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &p.samples);
  TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &p.bits);
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &p.sample_format);
  TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &p.planar);
  TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &p.compression);
  if (!TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &p.photometric)) {
    p.photometric = p.samples >= 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK;
  }
  if (TIFFGetField(tif, TIFFTAG_SUBFILETYPE, &u32)) p.reduced = (u32 & FILETYPE_REDUCEDIMAGE) != 0;
  if (p.samples == 0 || p.samples > 64) {
    return Status::Corrupt("samples per pixel " + std::to_string(p.samples) + " is out of range");
  }
  if (!TIFFIsCODECConfigured(p.compression)) {
    return Status::Unsupported("compression scheme " + std::to_string(p.compression) +
                               " is not available");
  }
  if (p.photometric == PHOTOMETRIC_YCBCR) {
    if (p.compression != COMPRESSION_JPEG) {
      return Status::Unsupported("YCbCr pixels without JPEG compression");
    }
    // libjpeg converts to RGB while decoding.
    TIFFSetField(tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
  }
  if (p.bits < 8) {
    if (p.samples != 1 || (p.bits != 1 && p.bits != 2 && p.bits != 4)) {
      return Status::Unsupported(std::to_string(p.bits) + "-bit samples with " +
                                 std::to_string(p.samples) + " samples per pixel");
    }
  }
  SCISEARCH_ASSIGN_OR_RETURN(DType scalar, ScalarType(p.sample_format, p.bits));
  p.dtype = scalar;
  const bool rgb = p.photometric == PHOTOMETRIC_RGB || p.photometric == PHOTOMETRIC_YCBCR;
  if (p.planar == PLANARCONFIG_SEPARATE && p.samples > 1) {
    p.plane_axis = true;
  } else if (rgb && p.bits == 8 && scalar == DType::kUInt8 && (p.samples == 3 || p.samples == 4)) {
    p.dtype = p.samples == 3 ? DType::kRGB8 : DType::kRGBA8;
  } else {
    p.out_samples = p.samples;
  }
  if (p.photometric == PHOTOMETRIC_PALETTE && p.samples == 1 && p.bits <= 8) {
    uint16_t *r = nullptr, *g = nullptr, *b = nullptr;
    if (TIFFGetField(tif, TIFFTAG_COLORMAP, &r, &g, &b) && r && g && b) {
      const size_t n = size_t(1) << p.bits;
      bool gray = true;
      for (size_t i = 0; i < n && gray; ++i) gray = r[i] == g[i] && g[i] == b[i];
      if (gray) {
        p.gray_lut.resize(256);
        for (size_t i = 0; i < 256; ++i) p.gray_lut[i] = uint8_t(r[i < n ? i : n - 1] >> 8);
      }
    }
  }
  p.tiled = TIFFIsTiled(tif) != 0;
  if (p.tiled) {
    if (!TIFFGetField(tif, TIFFTAG_TILEWIDTH, &p.block_width) ||
        !TIFFGetField(tif, TIFFTAG_TILELENGTH, &p.block_height) || p.block_width == 0 ||
        p.block_height == 0) {
      return Status::Corrupt("tiled page has no valid tile size");
    }
  } else {
    uint32_t rows = 0;
    TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rows);
    p.block_width = p.width;
    p.block_height = rows == 0 ? p.height : std::min(rows, p.height);
  }
  // The decoded page must be plausible for the file's size: raw data cannot be larger
  // than the file, and no codec here compresses better than kMaxCompressionRatio.
  const uint64_t page_bytes = (uint64_t(p.width) * p.bits * p.samples + 7) / 8 * p.height;
  const uint64_t limit =
      p.compression == COMPRESSION_NONE ? file_size : file_size * kMaxCompressionRatio;
  if (page_bytes > limit) {
    return Status::Corrupt("page of " + std::to_string(p.width) + "x" + std::to_string(p.height) +
                           "x" + std::to_string(p.samples) + " samples of " +
                           std::to_string(p.bits) + " bits needs " + std::to_string(page_bytes) +
                           " bytes, more than the file (" + std::to_string(file_size) +
                           " bytes) can hold");
  }
  return p;
}

// Typed values of one libtiff custom tag (count, pointer) as JSON.
Metadata TagArray(const TIFFField* field, const void* data, uint64_t count) {
  const TIFFDataType type = TIFFFieldDataType(field);
  const int size = TIFFFieldSetGetSize(field);
  if (type == TIFF_ASCII) {
    return CleanText(std::string_view(static_cast<const char*>(data), count));
  }
  if (count > kMaxTagValuesInTree) {
    return Metadata{{"type", int(type)}, {"count", count}, {"note", "long value, not expanded"}};
  }
  Metadata a = Metadata::array();
  for (uint64_t i = 0; i < count; ++i) {
    switch (type) {
      case TIFF_BYTE:
      case TIFF_UNDEFINED:
        a.push_back(static_cast<const uint8_t*>(data)[i]);
        break;
      case TIFF_SBYTE:
        a.push_back(static_cast<const int8_t*>(data)[i]);
        break;
      case TIFF_SHORT:
        a.push_back(static_cast<const uint16_t*>(data)[i]);
        break;
      case TIFF_SSHORT:
        a.push_back(static_cast<const int16_t*>(data)[i]);
        break;
      case TIFF_LONG:
      case TIFF_IFD:
        a.push_back(static_cast<const uint32_t*>(data)[i]);
        break;
      case TIFF_SLONG:
        a.push_back(static_cast<const int32_t*>(data)[i]);
        break;
      case TIFF_LONG8:
      case TIFF_IFD8:
        a.push_back(static_cast<const uint64_t*>(data)[i]);
        break;
      case TIFF_SLONG8:
        a.push_back(static_cast<const int64_t*>(data)[i]);
        break;
      case TIFF_FLOAT:
      case TIFF_RATIONAL:
      case TIFF_SRATIONAL:
        if (size == 8) {
          a.push_back(FiniteOrNull(static_cast<const double*>(data)[i]));
        } else {
          a.push_back(FiniteOrNull(static_cast<const float*>(data)[i]));
        }
        break;
      case TIFF_DOUBLE:
        a.push_back(FiniteOrNull(static_cast<const double*>(data)[i]));
        break;
      default:
        return Metadata{{"type", int(type)}, {"count", count}};
    }
  }
  if (a.size() == 1) return a[0];
  return a;
}

// The raw bytes of an anonymous (unknown to libtiff) tag, or nullopt.
struct RawTag {
  const TIFFField* field = nullptr;
  const void* data = nullptr;
  uint64_t count = 0;
};

std::optional<RawTag> GetCustomTag(TIFF* tif, uint32_t tag) {
  const TIFFField* field = TIFFFieldWithTag(tif, tag);
  if (field == nullptr) return std::nullopt;
  RawTag raw;
  raw.field = field;
  if (TIFFFieldPassCount(field)) {
    if (TIFFFieldReadCount(field) == TIFF_VARIABLE2) {
      uint32_t n = 0;
      if (!TIFFGetField(tif, tag, &n, &raw.data)) return std::nullopt;
      raw.count = n;
    } else {
      uint16_t n = 0;
      if (!TIFFGetField(tif, tag, &n, &raw.data)) return std::nullopt;
      raw.count = n;
    }
  } else if (TIFFFieldDataType(field) == TIFF_ASCII) {
    const char* s = nullptr;
    if (!TIFFGetField(tif, tag, &s) || s == nullptr) return std::nullopt;
    raw.data = s;
    raw.count = std::strlen(s);
  } else {
    return std::nullopt;  // a known scalar tag returned by value: read by name elsewhere
  }
  if (raw.data == nullptr && raw.count > 0) return std::nullopt;
  return raw;
}

std::string TagText(const RawTag& raw) {
  return std::string(static_cast<const char*>(raw.data), raw.count);
}

std::optional<uint64_t> TagOffset(const RawTag& raw) {
  if (raw.count < 1) return std::nullopt;
  switch (TIFFFieldDataType(raw.field)) {
    case TIFF_LONG:
    case TIFF_IFD:
      return static_cast<const uint32_t*>(raw.data)[0];
    case TIFF_LONG8:
    case TIFF_IFD8:
      return static_cast<const uint64_t*>(raw.data)[0];
    default:
      return std::nullopt;
  }
}

// Tags whose contents the vendor parsers turn into their own subtrees.
bool IsVendorTag(uint32_t tag) {
  return tag == 34680 || tag == 34682 || tag == 34118 || tag == 33560 || tag == 37706 ||
         (tag >= 65000 && tag <= 65030);
}

const char* CompressionName(uint16_t c) {
  switch (c) {
    case COMPRESSION_NONE:
      return "none";
    case COMPRESSION_CCITTRLE:
    case COMPRESSION_CCITTFAX3:
    case COMPRESSION_CCITTFAX4:
      return "ccitt";
    case COMPRESSION_LZW:
      return "lzw";
    case COMPRESSION_OJPEG:
    case COMPRESSION_JPEG:
      return "jpeg";
    case COMPRESSION_ADOBE_DEFLATE:
    case COMPRESSION_DEFLATE:
      return "deflate";
    case COMPRESSION_PACKBITS:
      return "packbits";
    case COMPRESSION_LZMA:
      return "lzma";
    case COMPRESSION_ZSTD:
      return "zstd";
    case COMPRESSION_WEBP:
      return "webp";
    default:
      return "other";
  }
}

// ---------------------------------------------------------------------------------------
// Metadata of one page, and the normalised fields read from it.

struct PageInfo {
  PageLayout layout;
  Metadata metadata = Metadata::object();
  NormalisedFields fields;
  std::string name = "image";
  bool preview = false;
  // Calibration of the frame axes: scale and units of x (fast) and y, and the frame axis.
  double x_scale = 1, y_scale = 1, x_offset = 0, y_offset = 0;
  std::string xy_units;
  double z_scale = 1, z_offset = 0;
  std::string z_units;
};

void SetPixelSize(PageInfo& page, double size, const std::string& units) {
  if (!(size > 0) || !std::isfinite(size)) return;
  page.x_scale = page.y_scale = size;
  page.xy_units = units;
  if (auto si = LengthToSi(units)) {
    page.fields.pixel_size_m = size * *si;
    page.fields.pixel_size_units = NormaliseUnits(units).find("1/") == 0 ? "1/m" : "m";
  }
}

void NormaliseFei(const Metadata& fei, PageInfo& page) {
  if (auto d = FindText(fei, {"User", "Date"})) {
    const std::string t = FindText(fei, {"User", "Time"}).value_or("");
    page.fields.acquired = ParseDateAndTime(*d, t);
  }
  if (auto type = FindText(fei, {"System", "SystemType"})) {
    std::string clean;
    for (char c : *type) {
      if (c == '"') continue;
      if (c == ' ' && (clean.empty() || clean.back() == ' ')) continue;
      clean.push_back(c);
    }
    while (!clean.empty() && clean.back() == ' ') clean.pop_back();
    if (!clean.empty()) page.fields.instrument = clean;
  }
  const std::string beam = FindText(fei, {"Beam", "Beam"}).value_or("");
  const std::string detector = FindText(fei, {"Detectors", "Name"}).value_or("");
  if (!detector.empty()) {
    page.fields.detector = detector;
    page.name = detector;
  }
  // The Nav-Cam (beam "IRBeam") is the chamber's optical navigation camera. A TEM
  // exporting through xT says "Type=TEM" under [System] and TEM/STEM as the detector mode.
  const bool tem = FindText(fei, {"System", "Type"}).value_or("") == "TEM";
  const Mode detector_mode = ModeFromText(FindText(fei, {"Detectors", "Mode"}).value_or(""));
  if (detector == "Nav-Cam" || beam == "IRBeam") {
    page.fields.mode = Mode::kOpticalImage;
  } else if (tem) {
    page.fields.mode = detector_mode == Mode::kStemImage ? Mode::kStemImage : Mode::kTemImage;
  } else {
    page.fields.mode = Mode::kSemImage;
  }
  const bool electron_image = page.fields.mode != Mode::kOpticalImage;
  std::optional<double> hv = FindNumber(fei, {"Beam", "HV"});
  if (!hv && !beam.empty()) hv = FindNumber(fei, {beam.c_str(), "HV"});
  if (hv && electron_image) page.fields.beam_energy_kev = *hv / 1000.0;
  std::optional<double> width = FindNumber(fei, {"Scan", "PixelWidth"});
  std::optional<double> hfw = FindNumber(fei, {"Scan", "HorFieldsize"});
  if (!hfw && !beam.empty()) hfw = FindNumber(fei, {beam.c_str(), "HFW"});
  if (!width && hfw) {
    if (auto rx = FindNumber(fei, {"Image", "ResolutionX"}); rx && *rx > 0) width = *hfw / *rx;
  }
  if (width) SetPixelSize(page, *width, "m");
  // xT software's indicated magnification: the display's real width over the field width.
  if (auto canvas = FindNumber(fei, {"Image", "MagCanvasRealWidth"});
      canvas && hfw && *hfw > 0 && electron_image) {
    page.fields.magnification = *canvas / *hfw;
  }
}

// A Zeiss entry's numeric value, and (when `units` is given) its units.
std::optional<double> ZeissNumber(const Metadata& z, std::string_view key, std::string* units) {
  std::optional<double> value = FindNumber(z, {key, "value"});
  if (value && units != nullptr) *units = FindText(z, {key, "units"}).value_or("");
  return value;
}

void NormaliseZeiss(const Metadata& z, PageInfo& page) {
  page.fields.mode = Mode::kSemImage;
  auto date = FindText(z, {"AP_DATE", "value"});
  auto time = FindText(z, {"AP_TIME", "value"});
  if (date) page.fields.acquired = ParseDateAndTime(*date, time.value_or(""), true);
  // The column model: DP_SEM ("Merlin"), else the serial number without its trailing
  // "-NN-NN" unit number ("ULTRA 55-36-06" -> "ULTRA 55").
  if (auto sem = FindText(z, {"DP_SEM", "value"})) {
    page.fields.instrument = "Zeiss " + *sem;
  } else if (auto serial = FindText(z, {"SV_SERIAL_NUMBER", "value"})) {
    std::string model = *serial;
    for (int k = 0; k < 2; ++k) {
      const size_t dash = model.rfind('-');
      if (dash == std::string::npos || dash + 1 >= model.size() ||
          !std::all_of(model.begin() + dash + 1, model.end(),
                       [](unsigned char c) { return std::isdigit(c); })) {
        break;
      }
      model.resize(dash);
    }
    page.fields.instrument = "Zeiss " + model;
  }
  std::string units;
  if (auto kv = ZeissNumber(z, "AP_ACTUALKV", &units)) {
    page.fields.beam_energy_kev = units == "V" ? *kv / 1000 : *kv;
  } else if (auto kv2 = ZeissNumber(z, "AP_MANUALKV", &units)) {
    page.fields.beam_energy_kev = units == "V" ? *kv2 / 1000 : *kv2;
  }
  if (auto mag = ZeissNumber(z, "AP_MAG", &units)) {
    const bool kilo = !units.empty() && (units[0] == 'K' || units[0] == 'k');
    page.fields.magnification = kilo ? *mag * 1000 : *mag;
  }
  for (const char* key : {"AP_IMAGE_PIXEL_SIZE", "AP_PIXEL_SIZE"}) {
    if (auto size = ZeissNumber(z, key, &units)) {
      SetPixelSize(page, *size, NormaliseUnits(units));
      break;
    }
  }
  if (auto det = FindText(z, {"DP_DETECTOR_CHANNEL", "value"})) {
    page.fields.detector = *det;
    page.name = *det;
  }
}

// JEOL SightX <TemReporter>. `resolution_m` is the pixel size that the resolution tags
// give: SightX writes the film-plane (screen) pixel, so the specimen pixel is that over
// the magnification, and in diffraction that over camera length times wavelength.
void NormaliseJeol(const Metadata& j, double resolution_m, PageInfo& page) {
  if (auto dt = FindText(j, {"DateTime"})) page.fields.acquired = ParseDateTime(*dt);
  if (auto inst = FindText(j, {"Instruments"})) {
    const std::string maker = FindText(j, {"Manufacturer"}).value_or("");
    const std::string first = maker.substr(0, maker.find(' '));
    page.fields.instrument =
        first.empty() || inst->rfind(first, 0) == 0 ? *inst : first + " " + *inst;
  }
  const std::optional<double> volts = FindNumber(j, {"ElectronGun", "AccelerationVoltage"});
  if (volts) page.fields.beam_energy_kev = *volts / 1000.0;
  const std::string eos = FindText(j, {"Eos", "EosMode"}).value_or("");
  const std::string mode = FindText(j, {"ImageFormingSystem", "ModeString"}).value_or("");
  const std::optional<double> selector = FindNumber(j, {"ImageFormingSystem", "SelectorValue"});
  const std::string selector_units =
      FindText(j, {"ImageFormingSystem", "SelectorUnitString"}).value_or("");
  if (auto det = FindText(j, {"ImageSourceDetector"})) {
    page.fields.detector = *det;
    page.name = *det;
  }
  const bool stem = eos == "eosASID";
  const std::string detector = page.fields.detector.value_or("");
  const bool camera =
      detector.find("amera") != std::string::npos || detector.find("CCD") != std::string::npos;
  if (mode == "DIFF") {
    page.fields.mode = Mode::kDiffraction;
    // Reciprocal pixel size: (print pixel size on the film plane) / (L * lambda).
    double length = selector.value_or(0);
    if (selector_units == "mm") length /= 1000;
    if (selector_units == "cm") length /= 100;
    if (length > 0 && volts && *volts > 0 && resolution_m > 0) {
      SetPixelSize(page, resolution_m / (length * ElectronWavelength(*volts)), "1/m");
    }
  } else if (stem && camera) {
    // A camera image in STEM (ASID) mode is the probe's Ronchigram.
    page.fields.mode = Mode::kDiffraction;
    if (mode == "MAG" && selector) page.fields.magnification = *selector;
  } else if (stem) {
    page.fields.mode = Mode::kStemImage;
    if (selector) page.fields.magnification = *selector;
  } else if (mode == "MAG" || mode == "LOWMAG" || mode == "MAG2") {
    page.fields.mode = Mode::kTemImage;
    if (selector && *selector > 0) {
      page.fields.magnification = *selector;
      if (resolution_m > 0) SetPixelSize(page, resolution_m / *selector, "m");
    }
  } else {
    page.fields.mode = Mode::kTemImage;
  }
}

void NormaliseTvips(const Metadata& t, PageInfo& page) {
  page.fields.mode = Mode::kTemImage;
  if (auto v = FindNumber(t, {"TemHighTension"}); v && *v > 0) {
    page.fields.beam_energy_kev = *v / 1000.0;
  }
  if (auto m = FindNumber(t, {"TemMagnification"}); m && *m > 0) page.fields.magnification = *m;
  if (auto px = FindNumber(t, {"PixelSizeX"}); px && *px > 0) SetPixelSize(page, *px, "nm");
  if (auto cam = FindText(t, {"CameraType"})) {
    page.fields.detector = *cam;
    page.name = *cam;
  }
  if (auto tem = FindText(t, {"TemType"})) page.fields.instrument = *tem;
  auto date = FindNumber(t, {"Date"});
  auto time = FindNumber(t, {"Time"});
  if (!date) date = FindNumber(t, {"DateV1"}), time = FindNumber(t, {"TimeV1"});
  if (date && time) page.fields.acquired = TvipsDateTime(int64_t(*date), int64_t(*time));
}

void NormaliseSis(const Metadata& s, PageInfo& page) {
  // Olympus SIS (iTEM) drives TEM cameras (Quemesa, Veleta, Morada).
  page.fields.mode = Mode::kTemImage;
  // The SIS date has minutes only: the TIFF DateTime, when present, has the seconds.
  if (auto dt = FindText(s, {"datetime"}); dt && !page.fields.acquired) {
    page.fields.acquired = *dt;
  }
  if (auto m = FindNumber(s, {"magnification"}); m && *m > 0) page.fields.magnification = *m;
  if (auto px = FindNumber(s, {"pixel_size_x_m"}); px && *px > 0) SetPixelSize(page, *px, "m");
  if (auto cam = FindText(s, {"camera_name"})) page.fields.detector = *cam;
}

// Gatan DigitalMicrograph export tags: 65003-65005 units, 65006-65008 offsets and
// 65009-65011 scales of x (fast axis), y and z; 65022/65024/65025 intensity units,
// offset and scale; 65027 DM's own tag tree (binary, not expanded here).
void ReadDigitalMicrograph(TIFF* tif, PageInfo& page) {
  static const std::pair<uint32_t, const char*> kNames[] = {{65002, "intensity_units_long"},
                                                            {65003, "x_units"},
                                                            {65004, "y_units"},
                                                            {65005, "z_units"},
                                                            {65006, "x_offset"},
                                                            {65007, "y_offset"},
                                                            {65008, "z_offset"},
                                                            {65009, "x_scale"},
                                                            {65010, "y_scale"},
                                                            {65011, "z_scale"},
                                                            {65012, "x_units_long"},
                                                            {65013, "y_units_long"},
                                                            {65014, "z_units_long"},
                                                            {65015, "x_calibrated"},
                                                            {65016, "y_calibrated"},
                                                            {65017, "z_calibrated"},
                                                            {65022, "intensity_units"},
                                                            {65024, "intensity_offset"},
                                                            {65025, "intensity_scale"},
                                                            {65026, "intensity_calibrated"},
                                                            {65027, "tag_tree"}};
  Metadata dm = Metadata::object();
  for (uint32_t tag = 65000; tag <= 65030; ++tag) {
    auto raw = GetCustomTag(tif, tag);
    if (!raw) continue;
    std::string name = "tag_" + std::to_string(tag);
    for (const auto& [t, n] : kNames) {
      if (t == tag) name = n;
    }
    if (tag == 65027) {
      dm[name] = {{"bytes", raw->count}, {"note", "DigitalMicrograph tag tree, not expanded"}};
    } else {
      dm[name] = TagArray(raw->field, raw->data, raw->count);
    }
  }
  if (dm.empty()) return;
  auto num = [&](const char* k) -> std::optional<double> {
    auto it = dm.find(k);
    if (it != dm.end() && it->is_number()) return it->get<double>();
    return std::nullopt;
  };
  auto text = [&](const char* k) -> std::string {
    auto it = dm.find(k);
    return it != dm.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  if (auto s = num("x_scale"); s && *s != 0) {
    page.x_scale = *s;
    page.xy_units = NormaliseUnits(text("x_units"));
    if (auto si = LengthToSi(page.xy_units)) {
      page.fields.pixel_size_m = *s * *si;
      page.fields.pixel_size_units = page.xy_units.find("1/") == 0 ? "1/m" : "m";
    }
  }
  if (auto s = num("y_scale"); s && *s != 0) page.y_scale = *s;
  if (auto o = num("x_offset")) page.x_offset = *o;
  if (auto o = num("y_offset")) page.y_offset = *o;
  if (auto s = num("z_scale"); s && *s != 0) page.z_scale = *s;
  if (auto o = num("z_offset")) page.z_offset = *o;
  page.z_units = NormaliseUnits(text("z_units"));
  page.metadata["digital_micrograph"] = std::move(dm);
}

// Reads every tag of the current directory into page.metadata and fills the fields.
void ReadPageMetadata(TIFF* tif, const FileSource& file, PageInfo& page) {
  Metadata tiff = Metadata::object();
  const PageLayout& p = page.layout;
  tiff["ImageWidth"] = p.width;
  tiff["ImageLength"] = p.height;
  tiff["BitsPerSample"] = p.bits;
  tiff["SamplesPerPixel"] = p.samples;
  tiff["SampleFormat"] = p.sample_format;
  tiff["PhotometricInterpretation"] = p.photometric;
  tiff["PlanarConfiguration"] = p.planar;
  tiff["Compression"] = p.compression;
  tiff["CompressionName"] = CompressionName(p.compression);
  if (p.tiled) {
    tiff["TileWidth"] = p.block_width;
    tiff["TileLength"] = p.block_height;
  } else {
    tiff["RowsPerStrip"] = p.block_height;
  }
  uint32_t u32 = 0;
  uint16_t u16 = 0, u16b = 0;
  float f = 0;
  if (TIFFGetField(tif, TIFFTAG_SUBFILETYPE, &u32)) tiff["NewSubfileType"] = u32;
  if (TIFFGetField(tif, TIFFTAG_ORIENTATION, &u16)) tiff["Orientation"] = u16;
  if (TIFFGetField(tif, TIFFTAG_FILLORDER, &u16)) tiff["FillOrder"] = u16;
  if (TIFFGetField(tif, TIFFTAG_PAGENUMBER, &u16, &u16b)) tiff["PageNumber"] = {u16, u16b};
  std::optional<double> xres;
  uint16_t res_unit = RESUNIT_INCH;
  if (TIFFGetField(tif, TIFFTAG_XRESOLUTION, &f)) tiff["XResolution"] = FiniteOrNull(f), xres = f;
  if (TIFFGetField(tif, TIFFTAG_YRESOLUTION, &f)) tiff["YResolution"] = FiniteOrNull(f);
  if (TIFFGetField(tif, TIFFTAG_RESOLUTIONUNIT, &res_unit)) tiff["ResolutionUnit"] = res_unit;
  if (p.photometric == PHOTOMETRIC_PALETTE) {
    uint16_t *r = nullptr, *g = nullptr, *b = nullptr;
    if (TIFFGetField(tif, TIFFTAG_COLORMAP, &r, &g, &b) && r && g && b && p.bits <= 16) {
      Metadata map = Metadata::object();
      const size_t n = size_t(1) << p.bits;
      if (n <= 256) {
        map["red"] = std::vector<uint16_t>(r, r + n);
        map["green"] = std::vector<uint16_t>(g, g + n);
        map["blue"] = std::vector<uint16_t>(b, b + n);
      } else {
        map["entries"] = n;
      }
      map["gray"] = !p.gray_lut.empty();
      tiff["ColorMap"] = std::move(map);
    }
  }
  std::string description;
  std::optional<RawTag> fei, zeiss, sis, tvips;
  const int custom = TIFFGetTagListCount(tif);
  for (int i = 0; i < custom && i < 10000; ++i) {
    const uint32_t tag = TIFFGetTagListEntry(tif, i);
    if (tag == 34680 || tag == 34682) fei = GetCustomTag(tif, tag);
    if (tag == 34118) zeiss = GetCustomTag(tif, tag);
    if (tag == 33560) sis = GetCustomTag(tif, tag);
    if (tag == 37706) tvips = GetCustomTag(tif, tag);
    if (IsVendorTag(tag)) continue;
    auto raw = GetCustomTag(tif, tag);
    if (!raw) {
      if (tag == TIFFTAG_EXIFIFD) {
        uint64_t off = 0;
        if (TIFFGetField(tif, tag, &off)) tiff["ExifIFD"] = off;
      }
      continue;
    }
    const char* name = TIFFFieldName(raw->field);
    const std::string key = name ? name : "Tag" + std::to_string(tag);
    if (tag == TIFFTAG_IMAGEDESCRIPTION) {
      description = TagText(*raw);
      continue;
    }
    tiff[key] = TagArray(raw->field, raw->data, raw->count);
  }

  // Generic fields first; vendor parsers below override them.
  page.fields.mode = Mode::kImage;
  if (auto it = tiff.find("DateTime"); it != tiff.end() && it->is_string()) {
    page.fields.acquired = IsoFromTiffDateTime(it->get<std::string>());
  }

  const std::string_view desc =
      TrimSpace(std::string_view(description)
                    .substr(0, std::min(description.size(), description.find('\0'))));
  double resolution_m = 0;  // size of one pixel as the resolution tags print it
  if (xres && *xres > 0) {
    if (res_unit == RESUNIT_INCH) resolution_m = 0.0254 / *xres;
    if (res_unit == RESUNIT_CENTIMETER) resolution_m = 0.01 / *xres;
  }
  if (!desc.empty()) {
    bool parsed = false;
    if (desc.front() == '<') {
      if (auto xml = XmlToJson(desc).Parse()) {
        parsed = true;
        if (xml->first == "TemReporter") {
          NormaliseJeol(xml->second, resolution_m, page);
          page.metadata["jeol"] = std::move(xml->second);
        } else {
          page.metadata["xml"] = Metadata{{xml->first, std::move(xml->second)}};
        }
      }
    } else if (desc.rfind("ImageJ=", 0) == 0) {
      parsed = true;
      Metadata ij = ParseKeyValueLines(desc);
      if (auto unit = ij.find("unit"); unit != ij.end() && unit->is_string() && xres && *xres > 0) {
        SetPixelSize(page, 1.0 / *xres, NormaliseUnits(unit->get<std::string>()));
      }
      if (auto spacing = ij.find("spacing"); spacing != ij.end() && spacing->is_number()) {
        page.z_scale = spacing->get<double>();
      }
      page.metadata["imagej"] = std::move(ij);
    }
    if (!parsed) tiff["ImageDescription"] = CleanText(desc);
  }
  if (fei) {
    Metadata tree = ParseFeiIni(TagText(*fei));
    NormaliseFei(tree, page);
    page.metadata["fei"] = std::move(tree);
  }
  if (zeiss) {
    Metadata tree = ParseZeissSem(TagText(*zeiss));
    NormaliseZeiss(tree, page);
    page.metadata["zeiss"] = std::move(tree);
  }
  if (sis) {
    if (auto off = TagOffset(*sis)) {
      auto tree = ParseOlympusSis(file, *off);
      if (tree.ok()) {
        NormaliseSis(*tree, page);
        // SIS writes the camera model ("Quemesa") in Model when its own name is empty.
        if (auto model = tiff.find("Model");
            !page.fields.detector && model != tiff.end() && model->is_string()) {
          page.fields.detector = model->get<std::string>();
        }
        if (page.fields.detector) page.name = *page.fields.detector;
        page.metadata["olympus_sis"] = std::move(tree).value();
      } else {
        page.metadata["olympus_sis"] = {{"error", tree.status().message()}};
      }
    }
  }
  if (tvips) {
    if (auto off = TagOffset(*tvips)) {
      auto tree =
          ParseTvips(file, *off, TIFFIsBigEndian(tif) ? ByteOrder::kBig : ByteOrder::kLittle);
      if (tree.ok()) {
        NormaliseTvips(*tree, page);
        page.metadata["tvips"] = std::move(tree).value();
      } else {
        page.metadata["tvips"] = {{"error", tree.status().message()}};
      }
    }
  }
  ReadDigitalMicrograph(tif, page);
  Metadata ordered = Metadata::object();
  ordered["tiff"] = std::move(tiff);
  for (auto& [k, v] : page.metadata.items()) ordered[k] = std::move(v);
  page.metadata = std::move(ordered);
}

// ---------------------------------------------------------------------------------------
// The reader

struct SignalPlan {
  std::vector<PageLayout> frames;  // one per entry of the frame axis (or one page)
};

class TiffReader : public DatasetReader {
 public:
  TiffReader(std::unique_ptr<ErrorLog> log, TiffHandle tif, Dataset dataset,
             std::vector<SignalPlan> plans)
      : log_(std::move(log)),
        tif_(std::move(tif)),
        dataset_(std::move(dataset)),
        plans_(std::move(plans)) {}

  const Dataset& dataset() const override { return dataset_; }
  Dataset TakeDataset() override { return std::move(dataset_); }

  Result<NdArray> Read(size_t signal_index, const Hyperslab& slab) override {
    SCISEARCH_RETURN_IF_ERROR(CheckSignalIndex(dataset_, signal_index));
    const Signal& signal = dataset_.signals[signal_index];
    SCISEARCH_RETURN_IF_ERROR(slab.Validate(signal.shape).WithContext(dataset_.path.string()));
    const SignalPlan& plan = plans_[signal_index];
    const PageLayout& first = plan.frames.front();
    // Axis positions in the signal's shape.
    size_t axis = 0;
    const int frame_axis = plan.frames.size() > 1 ? int(axis++) : -1;
    const int plane_axis = first.plane_axis ? int(axis++) : -1;
    const int row_axis = int(axis++);
    const int col_axis = int(axis++);
    const int sample_axis = first.out_samples > 1 ? int(axis++) : -1;

    NdArray out;
    out.dtype = signal.dtype;
    out.shape = slab.count;
    SCISEARCH_ASSIGN_OR_RETURN(int64_t elements, CheckedElementCount(slab.count));
    const size_t esize = DTypeSize(signal.dtype);
    if (uint64_t(elements) > (uint64_t(1) << 62) / esize) {
      return Status::InvalidArgument(dataset_.path.string() + ": selection is too large");
    }
    out.bytes.resize(size_t(elements) * esize);
    if (elements == 0) return out;

    auto pick = [&](int ax, int64_t k) -> int64_t {
      return ax < 0 ? 0 : slab.start[ax] + k * slab.step[ax];
    };
    auto count = [&](int ax) -> int64_t { return ax < 0 ? 1 : slab.count[ax]; };
    uint8_t* dst = out.bytes.data();
    for (int64_t fi = 0; fi < count(frame_axis); ++fi) {
      const PageLayout& page = plan.frames[size_t(pick(frame_axis, fi))];
      for (int64_t pi = 0; pi < count(plane_axis); ++pi) {
        const uint16_t plane = uint16_t(pick(plane_axis, pi));
        for (int64_t ri = 0; ri < count(row_axis); ++ri) {
          const uint32_t row = uint32_t(pick(row_axis, ri));
          SCISEARCH_ASSIGN_OR_RETURN(const uint8_t* src, Row(page, plane, row));
          const size_t pixel = page.PixelBytes();
          for (int64_t ci = 0; ci < count(col_axis); ++ci) {
            const uint8_t* px = src + size_t(pick(col_axis, ci)) * pixel;
            for (int64_t si = 0; si < count(sample_axis); ++si) {
              std::memcpy(dst, px + size_t(pick(sample_axis, si)) * esize, esize);
              dst += esize;
            }
          }
        }
      }
    }
    if constexpr (std::endian::native == std::endian::big) {
      const size_t word = signal.dtype == DType::kComplex64                               ? 4
                          : signal.dtype == DType::kComplex128                            ? 8
                          : signal.dtype == DType::kRGB8 || signal.dtype == DType::kRGBA8 ? 1
                                                                                          : esize;
      if (word > 1) SwapBytesInPlace(out.bytes.data(), out.bytes.size(), word);
    }
    return out;
  }

 private:
  Status Fail(const PageLayout& page, const std::string& what) {
    std::string msg =
        dataset_.path.string() + ": page " + std::to_string(page.directory) + ": " + what;
    if (!log_->errors.empty()) msg += ": " + log_->errors;
    log_->Clear();
    return Status::Corrupt(msg);
  }

  // A pointer to `row` of `plane` of `page`, decoded to one element run per pixel
  // (PixelBytes each, native byte order). Decodes the strip or the band of tiles that
  // holds the row, and keeps it for the rows that follow.
  Result<const uint8_t*> Row(const PageLayout& page, uint16_t plane, uint32_t row) {
    const uint32_t band = row / page.block_height;
    const size_t row_bytes = size_t(page.width) * page.PixelBytes();
    if (!(band_valid_ && band_directory_ == page.directory && band_plane_ == plane &&
          band_index_ == band)) {
      band_valid_ = false;
      SCISEARCH_RETURN_IF_ERROR(DecodeBand(page, plane, band));
      band_valid_ = true;
      band_directory_ = page.directory;
      band_plane_ = plane;
      band_index_ = band;
    }
    return band_.data() + size_t(row - band * page.block_height) * row_bytes;
  }

  Status DecodeBand(const PageLayout& page, uint16_t plane, uint32_t band) {
    log_->Clear();
    if (TIFFCurrentDirectory(tif_.get()) != page.directory || !directory_loaded_) {
      if (!TIFFSetDirectory(tif_.get(), page.directory)) return Fail(page, "cannot read page");
      if (page.photometric == PHOTOMETRIC_YCBCR) {
        TIFFSetField(tif_.get(), TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
      }
      directory_loaded_ = true;
    }
    TIFF* tif = tif_.get();
    const uint32_t first_row = band * page.block_height;
    const uint32_t rows = std::min(page.block_height, page.height - first_row);
    const uint16_t file_samples = page.plane_axis ? 1 : page.samples;
    // Bytes of one row as stored (packed for sub-byte samples).
    const uint64_t packed_row = (uint64_t(page.width) * page.bits * file_samples + 7) / 8;
    const size_t pixel = page.PixelBytes();
    const uint64_t unpacked_bytes = uint64_t(page.width) * pixel * rows;
    if (unpacked_bytes > kMaxDecodedBlockBytes) {
      return Status::Unsupported(dataset_.path.string() + ": page " +
                                 std::to_string(page.directory) + ": a strip of " +
                                 std::to_string(unpacked_bytes) + " bytes is too large");
    }
    std::vector<uint8_t> packed;
    if (!page.tiled) {
      const tmsize_t strip_size = TIFFStripSize(tif);
      if (strip_size <= 0 || uint64_t(strip_size) > kMaxDecodedBlockBytes) {
        return Fail(page, "invalid strip size");
      }
      const uint32_t strip = TIFFComputeStrip(tif, first_row, plane);
      if (strip >= TIFFNumberOfStrips(tif)) return Fail(page, "strip index out of range");
      packed.resize(size_t(strip_size));
      const tmsize_t want = tmsize_t(packed_row * rows);
      const tmsize_t got = TIFFReadEncodedStrip(tif, strip, packed.data(), want);
      if (got < want) {
        return Fail(page, "strip " + std::to_string(strip) + " decodes to " +
                              std::to_string(got < 0 ? 0 : got) + " of " + std::to_string(want) +
                              " bytes");
      }
    } else {
      const tmsize_t tile_size = TIFFTileSize(tif);
      const tmsize_t tile_row = TIFFTileRowSize(tif);
      if (tile_size <= 0 || tile_row <= 0 || uint64_t(tile_size) > kMaxDecodedBlockBytes) {
        return Fail(page, "invalid tile size");
      }
      packed.assign(size_t(packed_row * rows), 0);
      std::vector<uint8_t> tile(static_cast<size_t>(tile_size));
      if (page.bits % 8 != 0) return Fail(page, "tiled sub-byte samples are not supported");
      const size_t bytes_per_pixel = size_t(page.bits / 8) * file_samples;
      for (uint32_t x = 0; x < page.width; x += page.block_width) {
        const uint32_t index = TIFFComputeTile(tif, x, first_row, 0, plane);
        if (index >= TIFFNumberOfTiles(tif)) return Fail(page, "tile index out of range");
        const tmsize_t got = TIFFReadEncodedTile(tif, index, tile.data(), tile_size);
        if (got < tile_size) {
          return Fail(page, "tile " + std::to_string(index) + " decodes to " +
                                std::to_string(got < 0 ? 0 : got) + " of " +
                                std::to_string(tile_size) + " bytes");
        }
        const size_t run = size_t(std::min(page.block_width, page.width - x)) * bytes_per_pixel;
        for (uint32_t r = 0; r < rows; ++r) {
          std::memcpy(packed.data() + r * packed_row + size_t(x) * bytes_per_pixel,
                      tile.data() + size_t(r) * size_t(tile_row), run);
        }
      }
    }
    // Unpack to one element run per pixel.
    band_.resize(size_t(unpacked_bytes));
    if (page.bits >= 8) {
      for (uint32_t r = 0; r < rows; ++r) {
        std::memcpy(band_.data() + size_t(r) * page.width * pixel, packed.data() + r * packed_row,
                    size_t(page.width) * pixel);
      }
    } else {
      const unsigned mask = (1u << page.bits) - 1;
      for (uint32_t r = 0; r < rows; ++r) {
        const uint8_t* in = packed.data() + r * packed_row;
        uint8_t* o = band_.data() + size_t(r) * page.width;
        for (uint32_t c = 0; c < page.width; ++c) {
          const size_t bit = size_t(c) * page.bits;
          o[c] = uint8_t((in[bit / 8] >> (8 - page.bits - bit % 8)) & mask);
        }
      }
    }
    if (!page.gray_lut.empty()) {
      for (uint8_t& v : band_) v = page.gray_lut[v];
    }
    return Status::Ok();
  }

  std::unique_ptr<ErrorLog> log_;  // outlives tif_: libtiff holds a pointer to it
  TiffHandle tif_;
  Dataset dataset_;
  std::vector<SignalPlan> plans_;
  std::vector<uint8_t> band_;
  bool band_valid_ = false;
  bool directory_loaded_ = false;
  tdir_t band_directory_ = 0;
  uint16_t band_plane_ = 0;
  uint32_t band_index_ = 0;
};

Signal MakeSignal(const std::vector<PageInfo>& pages, size_t begin, size_t end) {
  const PageInfo& head = pages[begin];
  const PageLayout& p = head.layout;
  Signal s;
  s.name = head.preview ? "preview" : head.name;
  s.dtype = p.dtype;
  s.metadata = head.metadata;
  s.fields = head.fields;
  const int64_t frames = int64_t(end - begin);
  if (frames > 1) {
    s.shape.push_back(frames);
    s.axes.push_back(Axis{"frame", frames, head.z_scale, head.z_offset, head.z_units, true});
    s.metadata["pages"] = frames;
  }
  if (p.plane_axis) {
    s.shape.push_back(p.samples);
    s.axes.push_back(Axis{"sample", p.samples, 1, 0, "", false});
  }
  s.shape.push_back(p.height);
  s.axes.push_back(Axis{"y", p.height, head.y_scale, head.y_offset, head.xy_units, false});
  s.shape.push_back(p.width);
  s.axes.push_back(Axis{"x", p.width, head.x_scale, head.x_offset, head.xy_units, false});
  if (p.out_samples > 1) {
    s.shape.push_back(p.out_samples);
    s.axes.push_back(Axis{"sample", p.out_samples, 1, 0, "", false});
  }
  return s;
}

}  // namespace

Result<std::unique_ptr<DatasetReader>> OpenTiff(const fs::path& path) {
  SilenceGlobalHandlers();
  SCISEARCH_ASSIGN_OR_RETURN(FileSource file, FileSource::Open(path));
  auto log = std::make_unique<ErrorLog>();
  std::unique_ptr<TIFFOpenOptions, OptionsFree> options(TIFFOpenOptionsAlloc());
  if (!options) return Status::Internal(path.string() + ": out of memory");
  TIFFOpenOptionsSetErrorHandlerExtR(options.get(), CollectError, log.get());
  TIFFOpenOptionsSetWarningHandlerExtR(options.get(), IgnoreWarning, nullptr);
  TIFFOpenOptionsSetMaxSingleMemAlloc(options.get(), tmsize_t(kMaxDecodedBlockBytes));
  // "r": read only; "m": no memory mapping (reads go through the file descriptor).
  TiffHandle tif(TIFFOpenExt(path.c_str(), "rm", options.get()));
  if (!tif) {
    return Status::Corrupt(path.string() + ": not a readable TIFF" +
                           (log->errors.empty() ? std::string() : ": " + log->errors));
  }

  std::vector<PageInfo> pages;
  Metadata skipped = Metadata::array();
  Status first_error;
  tdir_t directory = 0;
  do {
    if (directory >= kMaxPages) break;
    auto layout = ReadLayout(tif.get(), directory, file.size());
    if (layout.ok()) {
      PageInfo page;
      page.layout = std::move(layout).value();
      ReadPageMetadata(tif.get(), file, page);
      pages.push_back(std::move(page));
    } else {
      if (first_error.ok()) {
        first_error = layout.status().WithContext("page " + std::to_string(directory));
      }
      skipped.push_back({{"page", directory}, {"reason", layout.status().message()}});
    }
    ++directory;
    log->Clear();
  } while (TIFFReadDirectory(tif.get()));
  const std::string directory_error = log->errors;
  log->Clear();

  if (pages.empty()) {
    const std::string reason =
        !first_error.ok() ? first_error.message()
                          : (directory_error.empty() ? "no readable page" : directory_error);
    return Status::Error(first_error.ok() ? ErrorCode::kCorrupt : first_error.code(),
                         path.string() + ": " + reason);
  }

  // A JPEG-compressed colour page beside grey data is a preview, as is a page marked
  // reduced-resolution; previews go after the data.
  bool has_data_page = false;
  for (const PageInfo& p : pages) {
    if (!p.layout.reduced && p.layout.dtype != DType::kRGB8 && p.layout.dtype != DType::kRGBA8) {
      has_data_page = true;
    }
  }
  for (PageInfo& p : pages) {
    const bool colour_jpeg = p.layout.compression == COMPRESSION_JPEG &&
                             (p.layout.dtype == DType::kRGB8 || p.layout.dtype == DType::kRGBA8);
    p.preview = p.layout.reduced || (colour_jpeg && has_data_page);
  }

  // Runs of consecutive same-shape pages (and same preview status) form one signal.
  struct Run {
    size_t begin, end;
  };
  std::vector<Run> runs;
  for (size_t i = 0; i < pages.size(); ++i) {
    if (!runs.empty() && pages[runs.back().begin].layout.SameShape(pages[i].layout) &&
        pages[runs.back().begin].preview == pages[i].preview) {
      runs.back().end = i + 1;
    } else {
      runs.push_back({i, i + 1});
    }
  }
  std::stable_partition(runs.begin(), runs.end(),
                        [&](const Run& r) { return !pages[r.begin].preview; });

  Dataset dataset;
  dataset.path = path;
  dataset.format = "tiff";
  dataset.member_files = {path};
  std::vector<SignalPlan> plans;
  for (const Run& run : runs) {
    Signal s = MakeSignal(pages, run.begin, run.end);
    if (!skipped.empty()) s.metadata["skipped_pages"] = skipped;
    if (!directory_error.empty()) s.metadata["directory_error"] = ToUtf8Lossless(directory_error);
    SignalPlan plan;
    for (size_t i = run.begin; i < run.end; ++i) plan.frames.push_back(pages[i].layout);
    dataset.signals.push_back(std::move(s));
    plans.push_back(std::move(plan));
  }
  return std::unique_ptr<DatasetReader>(
      new TiffReader(std::move(log), std::move(tif), std::move(dataset), std::move(plans)));
}

}  // namespace scisearch::formats
