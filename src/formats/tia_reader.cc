// FEI/Thermo TIA (ES Vision) datasets: an .emi file holding the metadata of an
// acquisition and one <name>_<N>.ser "series" file per signal (detector).
//
// SER layout (little-endian), after Chris Boothroyd's description of the format:
//   header: ByteOrder u16 (0x4949), SeriesID u16 (0x0197), SeriesVersion u16
//   (0x0210: 32-bit offsets; 0x0220: 64-bit offsets), DataTypeID u32 (0x4120 1-D
//   elements, 0x4122 2-D elements), TagTypeID u32 (0x4152 time, 0x4142 time and
//   position), TotalNumberElements u32, ValidNumberElements u32, OffsetArrayOffset
//   (u32 or u64), NumberDimensions u32, then per series dimension: DimensionSize i32,
//   CalibrationOffset f64, CalibrationDelta f64, CalibrationElement i32,
//   DescriptionLength i32 + text, UnitsLength i32 + text.
//   At OffsetArrayOffset: TotalNumberElements data offsets, then as many tag offsets.
//   Each element: calibration(s) (offset f64, delta f64, element i32; one for 1-D,
//   X then Y for 2-D), DataType i16, ArrayLength i32 (1-D) or ArraySizeX i32,
//   ArraySizeY i32 (2-D), then the values (X fastest). A tag: TagTypeID u16, u16,
//   Time u32 (Unix seconds) [, PositionX f64, PositionY f64].
//
// The series dimensions are listed fastest first (element index = x + y * size_x),
// so the signal's series axes are the dimension array reversed. TIA stores image rows
// bottom-up; like ncempy and HyperSpy we present them top-down (row 0 = last stored).
//
// The .emi is an undocumented binary object store. What this reader uses of it:
// length-prefixed strings (0x60 0x00 <kind> <u32 length> <text>) that name the data
// objects and the .ser files they were saved to, and an XML block
// <ObjectInfo>...</ObjectInfo> after each .ser path with the microscope metadata.
#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
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

constexpr uint16_t kLittleEndianMark = 0x4949;
constexpr uint16_t kSeriesId = 0x0197;
constexpr uint16_t kVersion64BitOffsets = 0x0220;
constexpr uint32_t kElements1d = 0x4120;
constexpr uint32_t kElements2d = 0x4122;
constexpr uint16_t kTagTime = 0x4152;
constexpr uint16_t kTagTimePosition = 0x4142;

// Limits that keep hostile files from driving memory or time.
constexpr uint64_t kMaxSerHeaderBytes = 1 << 20;  // header + dimension array
constexpr uint32_t kMaxSeriesDimensions = 32;
constexpr size_t kMaxEmiStringBytes = 4096;  // names and paths in the .emi
constexpr size_t kMaxEmiStrings = 1 << 20;
constexpr size_t kMaxEmiStringTotalBytes = 64 << 20;
constexpr size_t kMaxObjectInfoBlocks = 1 << 16;
constexpr uint64_t kMaxObjectInfoBytes = 16 << 20;  // one XML block
constexpr int kMaxXmlDepth = 64;
constexpr size_t kMaxXmlNodes = 1 << 20;
constexpr int kMaxSerIndex = 1000;

std::string Hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%04llx", static_cast<unsigned long long>(v));
  return buf;
}

// A JSON value typed as the text reads: integer, finite real, or string.
Metadata TypedValue(std::string_view raw) {
  const std::string s(TrimSpace(raw));
  if (s.empty()) return s;
  const char* first = s.data();
  const char* last = s.data() + s.size();
  int64_t i = 0;
  auto ri = std::from_chars(first, last, i);
  if (ri.ec == std::errc() && ri.ptr == last) return i;
  double d = 0;
  auto rd = std::from_chars(first, last, d);
  if (rd.ec == std::errc() && rd.ptr == last && std::isfinite(d) &&
      (std::isdigit(static_cast<unsigned char>(s.back())) || s.back() == '.')) {
    return d;
  }
  return s;
}

// ---------------------------------------------------------------------------
// A small XML parser for the .emi's ObjectInfo blocks: elements, attributes,
// character data with the predefined and numeric entities, comments, CDATA,
// processing instructions. Depth and node count are bounded.

struct XmlNode {
  std::string name;
  std::vector<std::pair<std::string, std::string>> attributes;
  std::string text;
  std::vector<XmlNode> children;
};

// Decodes &lt; &gt; &amp; &quot; &apos; &#N; &#xN;. Unknown references stay as written.
std::string DecodeEntities(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (s[i] != '&') {
      out += s[i++];
      continue;
    }
    const size_t semi = s.find(';', i);
    if (semi == std::string_view::npos || semi - i > 12) {
      out += s[i++];
      continue;
    }
    const std::string_view ref = s.substr(i + 1, semi - i - 1);
    bool done = true;
    if (ref == "lt") {
      out += '<';
    } else if (ref == "gt") {
      out += '>';
    } else if (ref == "amp") {
      out += '&';
    } else if (ref == "quot") {
      out += '"';
    } else if (ref == "apos") {
      out += '\'';
    } else if (ref.size() > 1 && ref[0] == '#') {
      const bool hex = ref[1] == 'x' || ref[1] == 'X';
      const std::string_view digits = ref.substr(hex ? 2 : 1);
      uint32_t cp = 0;
      auto r = std::from_chars(digits.data(), digits.data() + digits.size(), cp, hex ? 16 : 10);
      if (r.ec == std::errc() && r.ptr == digits.data() + digits.size() && !digits.empty() &&
          cp > 0 && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff)) {
        AppendUtf8(cp, out);
      } else {
        done = false;
      }
    } else {
      done = false;
    }
    if (done) {
      i = semi + 1;
    } else {
      out += s[i++];
    }
  }
  return out;
}

class XmlParser {
 public:
  XmlParser(std::string_view text, std::string source) : text_(text), source_(std::move(source)) {}

  // Parses one document: optional prolog, comments, then a single root element.
  Result<XmlNode> ParseDocument() {
    SCISEARCH_RETURN_IF_ERROR(SkipMisc());
    if (pos_ >= text_.size() || text_[pos_] != '<') return Error("expected the root element");
    XmlNode root;
    SCISEARCH_RETURN_IF_ERROR(ParseElement(root, 0));
    SCISEARCH_RETURN_IF_ERROR(SkipMisc());
    if (pos_ != text_.size()) return Error("text after the root element");
    return root;
  }

 private:
  Status Error(const std::string& what) const {
    return Status::Corrupt(source_ + ": XML at character " + std::to_string(pos_) + ": " + what);
  }

  bool StartsWith(std::string_view s) const { return text_.substr(pos_, s.size()) == s; }

  void SkipSpace() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }

  // Skips to just after `end`, or fails naming `what`.
  Status SkipPast(std::string_view end, const char* what) {
    const size_t p = text_.find(end, pos_);
    if (p == std::string_view::npos) return Error(std::string("unterminated ") + what);
    pos_ = p + end.size();
    return Status::Ok();
  }

  // Whitespace, comments, processing instructions and a DOCTYPE.
  Status SkipMisc() {
    while (true) {
      SkipSpace();
      if (StartsWith("<?")) {
        SCISEARCH_RETURN_IF_ERROR(SkipPast("?>", "processing instruction"));
      } else if (StartsWith("<!--")) {
        SCISEARCH_RETURN_IF_ERROR(SkipPast("-->", "comment"));
      } else if (StartsWith("<!DOCTYPE")) {
        SCISEARCH_RETURN_IF_ERROR(SkipPast(">", "DOCTYPE"));
      } else {
        return Status::Ok();
      }
    }
  }

  static bool IsNameChar(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' ||
           c == ':' || (static_cast<unsigned char>(c) >= 0x80);
  }

  Result<std::string> ParseName() {
    const size_t b = pos_;
    while (pos_ < text_.size() && IsNameChar(text_[pos_])) ++pos_;
    if (pos_ == b) return Error("expected a name");
    return std::string(text_.substr(b, pos_ - b));
  }

  // Parses the element starting at '<' into `node`.
  Status ParseElement(XmlNode& node, int depth) {
    if (depth > kMaxXmlDepth) return Error("elements nested deeper than the limit");
    if (++nodes_ > kMaxXmlNodes) return Error("more elements than the limit");
    ++pos_;  // '<'
    SCISEARCH_ASSIGN_OR_RETURN(node.name, ParseName());
    while (true) {
      SkipSpace();
      if (pos_ >= text_.size()) return Error("unterminated start tag <" + node.name + ">");
      if (StartsWith("/>")) {
        pos_ += 2;
        return Status::Ok();
      }
      if (text_[pos_] == '>') {
        ++pos_;
        break;
      }
      SCISEARCH_ASSIGN_OR_RETURN(std::string attr, ParseName());
      SkipSpace();
      if (pos_ >= text_.size() || text_[pos_] != '=') return Error("expected '=' after " + attr);
      ++pos_;
      SkipSpace();
      if (pos_ >= text_.size() || (text_[pos_] != '"' && text_[pos_] != '\'')) {
        return Error("expected a quoted value for " + attr);
      }
      const char quote = text_[pos_++];
      const size_t end = text_.find(quote, pos_);
      if (end == std::string_view::npos) return Error("unterminated value of " + attr);
      node.attributes.emplace_back(attr, DecodeEntities(text_.substr(pos_, end - pos_)));
      pos_ = end + 1;
    }
    // Content.
    while (true) {
      if (pos_ >= text_.size()) return Error("element <" + node.name + "> is not closed");
      if (StartsWith("</")) {
        pos_ += 2;
        SCISEARCH_ASSIGN_OR_RETURN(std::string closing, ParseName());
        if (closing != node.name) {
          return Error("end tag </" + closing + "> does not match <" + node.name + ">");
        }
        SkipSpace();
        if (pos_ >= text_.size() || text_[pos_] != '>') return Error("unterminated end tag");
        ++pos_;
        return Status::Ok();
      }
      if (StartsWith("<!--")) {
        SCISEARCH_RETURN_IF_ERROR(SkipPast("-->", "comment"));
      } else if (StartsWith("<![CDATA[")) {
        pos_ += 9;
        const size_t end = text_.find("]]>", pos_);
        if (end == std::string_view::npos) return Error("unterminated CDATA section");
        node.text.append(text_.substr(pos_, end - pos_));
        pos_ = end + 3;
      } else if (StartsWith("<?")) {
        SCISEARCH_RETURN_IF_ERROR(SkipPast("?>", "processing instruction"));
      } else if (text_[pos_] == '<') {
        node.children.emplace_back();
        SCISEARCH_RETURN_IF_ERROR(ParseElement(node.children.back(), depth + 1));
      } else {
        const size_t end = std::min(text_.find('<', pos_), text_.size());
        node.text += DecodeEntities(text_.substr(pos_, end - pos_));
        pos_ = end;
      }
    }
  }

  std::string_view text_;
  std::string source_;
  size_t pos_ = 0;
  size_t nodes_ = 0;
};

const XmlNode* Child(const XmlNode& node, std::string_view name) {
  for (const XmlNode& c : node.children) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

Metadata XmlToJson(const XmlNode& node, const std::string& source, int depth);

// ExperimentalDescription/Root/Data{Label, Value, Unit} -> {"Label [Unit]": value}.
Metadata ExperimentalDescriptionToJson(const XmlNode& node, const std::string& source, int depth) {
  const XmlNode* root = Child(node, "Root");
  if (root == nullptr) return XmlToJson(node, source, depth + 1);
  Metadata out = Metadata::object();
  for (const XmlNode& data : root->children) {
    const XmlNode* label = Child(data, "Label");
    const XmlNode* value = Child(data, "Value");
    if (data.name != "Data" || label == nullptr || value == nullptr) continue;
    const XmlNode* unit = Child(data, "Unit");
    std::string key(TrimSpace(label->text));
    const std::string unit_text = unit ? std::string(TrimSpace(unit->text)) : std::string();
    if (!unit_text.empty()) key += " [" + unit_text + "]";
    if (key.empty()) key = "(no label)";
    std::string unique = key;
    for (int n = 2; out.contains(unique); ++n) unique = key + " (" + std::to_string(n) + ")";
    out[unique] = TypedValue(value->text);
  }
  return out;
}

// TrueImageHeaderInfo holds escaped XML: <Root><Data><Index>5</Index><Value>1</Value>...
Metadata TrueImageHeaderInfoToJson(const XmlNode& node, const std::string& source) {
  XmlParser inner(node.text, source + " TrueImageHeaderInfo");
  Result<XmlNode> parsed = inner.ParseDocument();
  if (!parsed.ok() || parsed->name != "Root") return std::string(TrimSpace(node.text));
  Metadata out = Metadata::object();
  for (const XmlNode& data : parsed->children) {
    const XmlNode* index = Child(data, "Index");
    const XmlNode* value = Child(data, "Value");
    if (index == nullptr || value == nullptr) continue;
    out[std::string(TrimSpace(index->text))] = TypedValue(value->text);
  }
  return out;
}

Metadata XmlToJson(const XmlNode& node, const std::string& source, int depth) {
  if (depth > kMaxXmlDepth) return Metadata();
  if (node.name == "ExperimentalDescription") {
    return ExperimentalDescriptionToJson(node, source, depth);
  }
  if (node.name == "TrueImageHeaderInfo" && node.children.empty()) {
    return TrueImageHeaderInfoToJson(node, source);
  }
  if (node.children.empty() && node.attributes.empty()) return TypedValue(node.text);
  ObjectMembers out;
  for (const auto& [name, value] : node.attributes) out.Set("@" + name, TypedValue(value));
  std::vector<std::string> repeated;  // names already turned into arrays
  for (const XmlNode& child : node.children) {
    Metadata value = XmlToJson(child, source, depth + 1);
    Metadata* existing = out.Find(child.name);
    if (existing == nullptr) {
      out.AppendNew(child.name, std::move(value));
      continue;
    }
    // Repeated elements become an array, in file order.
    if (std::find(repeated.begin(), repeated.end(), child.name) == repeated.end()) {
      Metadata first = std::move(*existing);
      *existing = Metadata::array();
      existing->push_back(std::move(first));
      repeated.push_back(child.name);
    }
    existing->push_back(std::move(value));
  }
  if (!TrimSpace(node.text).empty()) out.Set("#text", TypedValue(node.text));
  return out.Take();
}

// ---------------------------------------------------------------------------
// The .emi: its length-prefixed strings and the positions of its XML blocks.

struct EmiString {
  uint64_t position = 0;
  uint8_t kind_high = 0;  // the two bytes after the 0x60 0x00 mark
  uint8_t kind_low = 0;
  std::string text;
};

struct EmiIndex {
  std::vector<EmiString> strings;
  std::vector<uint64_t> object_info_starts;
};

// An unsigned little-endian integer of `bytes` bytes (at most 8).
uint64_t LoadLittle(const uint8_t* p, size_t bytes) {
  uint64_t v = 0;
  for (size_t i = bytes; i > 0; --i) v = (v << 8) | p[i - 1];
  return v;
}

bool IsTextByte(uint8_t c) { return c >= 0x20 ? c != 0x7f : (c == '\t' || c == '\r' || c == '\n'); }

// Scans the whole .emi in bounded chunks (it can hold large embedded images).
Result<EmiIndex> ScanEmi(const FileSource& emi) {
  constexpr uint64_t kChunk = 1 << 20;
  constexpr uint64_t kOverlap = kMaxEmiStringBytes + 16;
  static constexpr std::string_view kObjectInfo = "<ObjectInfo>";
  EmiIndex index;
  size_t text_bytes = 0;
  std::vector<uint8_t> buffer;
  for (uint64_t base = 0; base < emi.size(); base += kChunk) {
    const uint64_t length = std::min(emi.size() - base, kChunk + kOverlap);
    buffer.resize(length);
    SCISEARCH_RETURN_IF_ERROR(emi.ReadAt(base, length, buffer.data()));
    const size_t own = static_cast<size_t>(std::min(length, kChunk));  // positions this chunk owns
    const std::string_view view(reinterpret_cast<const char*>(buffer.data()), buffer.size());
    for (size_t p = view.find(kObjectInfo); p != std::string_view::npos && p < own;
         p = view.find(kObjectInfo, p + 1)) {
      if (index.object_info_starts.size() < kMaxObjectInfoBlocks) {
        index.object_info_starts.push_back(base + p);
      }
    }
    // Candidates start at a 0x60 byte: memchr skips to each (most of a file is pixel data).
    const size_t end = buffer.size() >= 8 ? std::min(own, buffer.size() - 7) : 0;
    for (size_t i = 0; i < end; ++i) {
      const void* hit = std::memchr(&buffer[i], 0x60, end - i);
      if (hit == nullptr) break;
      i = static_cast<size_t>(static_cast<const uint8_t*>(hit) - buffer.data());
      if (buffer[i + 1] != 0x00) continue;
      const uint64_t n = LoadLittle(&buffer[i + 4], 4);
      if (n < 2 || n > kMaxEmiStringBytes || i + 8 + n > buffer.size()) continue;
      if (!std::all_of(&buffer[i + 8], &buffer[i + 8] + n, IsTextByte)) continue;
      if (index.strings.size() >= kMaxEmiStrings || text_bytes + n > kMaxEmiStringTotalBytes) {
        break;
      }
      text_bytes += n;
      index.strings.push_back(
          {base + i, buffer[i + 2], buffer[i + 3],
           ToUtf8Lossless(std::string_view(reinterpret_cast<const char*>(&buffer[i + 8]), n))});
      i += 7 + n;
    }
  }
  return index;
}

// Reads the XML block that starts at `start`, up to and including </ObjectInfo>.
Result<std::string> ReadObjectInfo(const FileSource& emi, uint64_t start) {
  static constexpr std::string_view kEnd = "</ObjectInfo>";
  uint64_t window = 64 << 10;
  while (true) {
    const uint64_t length = std::min({window, emi.size() - start, kMaxObjectInfoBytes});
    SCISEARCH_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, emi.ReadBytes(start, length));
    const std::string_view view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    const size_t end = view.find(kEnd);
    if (end != std::string_view::npos) return std::string(view.substr(0, end + kEnd.size()));
    if (length == emi.size() - start || length == kMaxObjectInfoBytes) {
      return Status::Corrupt(emi.path().string() + ": <ObjectInfo> at byte " +
                             std::to_string(start) + " has no </ObjectInfo> " +
                             (length == kMaxObjectInfoBytes ? "within 16 MiB" : "before the end"));
    }
    window *= 4;
  }
}

// "name_12.ser" -> 12 (case-insensitive extension), else nullopt.
std::optional<int> SerIndexOf(std::string_view filename) {
  const std::string lower = AsciiLower(filename);
  if (lower.size() < 7 || lower.substr(lower.size() - 4) != ".ser") return std::nullopt;
  const size_t digits_end = lower.size() - 4;
  size_t b = digits_end;
  while (b > 0 && std::isdigit(static_cast<unsigned char>(lower[b - 1]))) --b;
  if (b == digits_end || b == 0 || lower[b - 1] != '_' || digits_end - b > 4) return std::nullopt;
  int n = 0;
  std::from_chars(lower.data() + b, lower.data() + digits_end, n);
  if (n < 1 || n > kMaxSerIndex) return std::nullopt;
  return n;
}

// What the .emi says about one of its .ser files.
struct EmiObject {
  std::string name;   // the data object, e.g. "Acquire HAADF"
  std::string space;  // "Real Space", "Reciprocal Space", ...
  std::string ser_path;
  std::optional<XmlNode> object_info;
  std::string object_info_source;
};

// The last string before the path of .ser `n` (after the previous .ser path) that
// satisfies `pred`.
template <typename Pred>
std::string LastStringBefore(const EmiIndex& index, size_t path_index, size_t previous_path,
                             Pred pred) {
  for (size_t i = path_index; i > previous_path;) {
    --i;
    if (pred(index.strings[i])) return std::string(TrimSpace(index.strings[i].text));
  }
  return {};
}

Result<std::map<int, EmiObject>> DescribeSerObjects(const FileSource& emi, const EmiIndex& index,
                                                    const std::vector<int>& ser_numbers) {
  // The strings that are .ser paths, by their _N suffix.
  std::vector<size_t> path_strings;
  std::map<int, size_t> path_of;
  for (size_t i = 0; i < index.strings.size(); ++i) {
    const std::string& text = index.strings[i].text;
    const size_t slash = text.find_last_of("\\/");
    const std::string file = slash == std::string::npos ? text : text.substr(slash + 1);
    if (auto n = SerIndexOf(file)) {
      path_strings.push_back(i);
      path_of.emplace(*n, i);
    }
  }
  std::map<int, EmiObject> out;
  for (int n : ser_numbers) {
    EmiObject object;
    std::optional<uint64_t> xml_start;
    auto it = path_of.find(n);
    if (it != path_of.end()) {
      const size_t p = it->second;
      const auto pos = std::find(path_strings.begin(), path_strings.end(), p);
      const size_t previous = pos == path_strings.begin() ? 0 : *(pos - 1) + 1;
      const uint64_t begin = index.strings[p].position;
      const uint64_t end = (pos + 1 == path_strings.end()) ? std::numeric_limits<uint64_t>::max()
                                                           : index.strings[*(pos + 1)].position;
      object.ser_path = index.strings[p].text;
      object.name = LastStringBefore(index, p, previous, [](const EmiString& s) {
        return s.kind_high == 0x00 && s.kind_low == 0x01;
      });
      object.space = LastStringBefore(index, p, previous, [](const EmiString& s) {
        return s.text.find("Space") != std::string::npos;
      });
      for (uint64_t start : index.object_info_starts) {
        if (start > begin && start < end) {
          xml_start = start;
          break;
        }
      }
    } else if (size_t(n) <= index.object_info_starts.size()) {
      // No path names this .ser: TIA writes the blocks in .ser order (as HyperSpy assumes).
      xml_start = index.object_info_starts[size_t(n) - 1];
    }
    if (xml_start) {
      SCISEARCH_ASSIGN_OR_RETURN(std::string xml, ReadObjectInfo(emi, *xml_start));
      object.object_info_source =
          emi.path().string() + ": <ObjectInfo> at byte " + std::to_string(*xml_start);
      xml = ToUtf8Lossless(xml);
      XmlParser parser(xml, object.object_info_source);
      SCISEARCH_ASSIGN_OR_RETURN(XmlNode node, parser.ParseDocument());
      object.object_info = std::move(node);
    }
    out.emplace(n, std::move(object));
  }
  return out;
}

// ---------------------------------------------------------------------------
// The .ser file.

struct SerDimension {
  int32_t size = 0;
  double calibration_offset = 0;
  double calibration_delta = 0;
  int32_t calibration_element = 0;
  std::string description;
  std::string units;
};

struct SerCalibration {
  double offset = 0;
  double delta = 0;
  int32_t element = 0;
};

struct SerTag {
  uint16_t type = 0;
  uint32_t time = 0;
  std::optional<double> position_x, position_y;
};

struct SerFile {
  explicit SerFile(FileSource file) : source(std::move(file)) {}

  FileSource source;
  uint16_t series_version = 0;
  uint32_t data_type_id = 0;
  uint32_t tag_type_id = 0;
  uint32_t total_elements = 0;
  uint32_t valid_elements = 0;
  uint64_t offset_array_offset = 0;
  std::vector<SerDimension> dimensions;   // as stored: fastest first
  std::vector<uint64_t> element_offsets;  // of the valid elements
  uint64_t element_header_bytes = 0;
  int16_t data_type = 0;
  DType dtype = DType::kUInt8;
  std::vector<SerCalibration> calibrations;  // X then Y for 2-D elements
  std::vector<int64_t> frame_shape;          // [y, x] or [channels]
  std::optional<SerTag> first_tag;
};

std::optional<DType> DTypeOfSer(int16_t code) {
  switch (code) {
    case 1:
      return DType::kUInt8;
    case 2:
      return DType::kUInt16;
    case 3:
      return DType::kUInt32;
    case 4:
      return DType::kInt8;
    case 5:
      return DType::kInt16;
    case 6:
      return DType::kInt32;
    case 7:
      return DType::kFloat32;
    case 8:
      return DType::kFloat64;
    case 9:
      return DType::kComplex64;
    case 10:
      return DType::kComplex128;
    default:
      return std::nullopt;
  }
}

struct ElementHeader {
  std::vector<SerCalibration> calibrations;
  int16_t data_type = 0;
  std::vector<int64_t> shape;
};

Result<ElementHeader> ParseElementHeader(const std::vector<uint8_t>& bytes, bool two_d,
                                         const std::string& name) {
  ByteCursor c(bytes, ByteOrder::kLittle, name);
  ElementHeader h;
  for (int k = 0; k < (two_d ? 2 : 1); ++k) {
    SerCalibration cal;
    SCISEARCH_ASSIGN_OR_RETURN(cal.offset, c.Read<double>("CalibrationOffset"));
    SCISEARCH_ASSIGN_OR_RETURN(cal.delta, c.Read<double>("CalibrationDelta"));
    SCISEARCH_ASSIGN_OR_RETURN(cal.element, c.Read<int32_t>("CalibrationElement"));
    h.calibrations.push_back(cal);
  }
  SCISEARCH_ASSIGN_OR_RETURN(h.data_type, c.Read<int16_t>("DataType"));
  if (two_d) {
    SCISEARCH_ASSIGN_OR_RETURN(int32_t x, c.Read<int32_t>("ArraySizeX"));
    SCISEARCH_ASSIGN_OR_RETURN(int32_t y, c.Read<int32_t>("ArraySizeY"));
    h.shape = {y, x};
  } else {
    SCISEARCH_ASSIGN_OR_RETURN(int32_t n, c.Read<int32_t>("ArrayLength"));
    h.shape = {n};
  }
  return h;
}

// Parses the series header (up to and including the dimension array) from `head`,
// the first bytes of the file, into `ser`.
Status ParseSerHeader(const std::vector<uint8_t>& head, const std::string& name, SerFile& ser) {
  ser.dimensions.clear();
  ByteCursor c(head, ByteOrder::kLittle, name);
  SCISEARCH_ASSIGN_OR_RETURN(uint16_t byte_order, c.Read<uint16_t>("ByteOrder"));
  SCISEARCH_ASSIGN_OR_RETURN(uint16_t series_id, c.Read<uint16_t>("SeriesID"));
  if (byte_order != kLittleEndianMark || series_id != kSeriesId) {
    if (series_id == 0x9701 || byte_order == 0x4d4d) {
      return Status::Unsupported(name + ": big-endian TIA series files are not read");
    }
    return Status::Corrupt(name + ": not a TIA series file (ByteOrder " + Hex(byte_order) +
                           ", SeriesID " + Hex(series_id) + ")");
  }
  SCISEARCH_ASSIGN_OR_RETURN(ser.series_version, c.Read<uint16_t>("SeriesVersion"));
  if (ser.series_version < 0x0200 || ser.series_version > 0x02ff) {
    return Status::Unsupported(name + ": SeriesVersion " + Hex(ser.series_version) +
                               " is not a known TIA version (0x0210, 0x0220)");
  }
  const bool wide = ser.series_version >= kVersion64BitOffsets;
  SCISEARCH_ASSIGN_OR_RETURN(ser.data_type_id, c.Read<uint32_t>("DataTypeID"));
  if (ser.data_type_id != kElements1d && ser.data_type_id != kElements2d) {
    return Status::Unsupported(name + ": DataTypeID " + Hex(ser.data_type_id) +
                               " is neither 1-D (0x4120) nor 2-D (0x4122) elements");
  }
  SCISEARCH_ASSIGN_OR_RETURN(ser.tag_type_id, c.Read<uint32_t>("TagTypeID"));
  SCISEARCH_ASSIGN_OR_RETURN(ser.total_elements, c.Read<uint32_t>("TotalNumberElements"));
  SCISEARCH_ASSIGN_OR_RETURN(ser.valid_elements, c.Read<uint32_t>("ValidNumberElements"));
  if (wide) {
    SCISEARCH_ASSIGN_OR_RETURN(ser.offset_array_offset, c.Read<uint64_t>("OffsetArrayOffset"));
  } else {
    SCISEARCH_ASSIGN_OR_RETURN(uint32_t o, c.Read<uint32_t>("OffsetArrayOffset"));
    ser.offset_array_offset = o;
  }
  SCISEARCH_ASSIGN_OR_RETURN(uint32_t ndims, c.Read<uint32_t>("NumberDimensions"));
  if (ndims > kMaxSeriesDimensions) {
    return Status::Corrupt(name + ": NumberDimensions " + std::to_string(ndims) +
                           " exceeds the limit of " + std::to_string(kMaxSeriesDimensions));
  }
  for (uint32_t d = 0; d < ndims; ++d) {
    SerDimension dim;
    SCISEARCH_ASSIGN_OR_RETURN(dim.size, c.Read<int32_t>("DimensionSize"));
    SCISEARCH_ASSIGN_OR_RETURN(dim.calibration_offset, c.Read<double>("CalibrationOffset"));
    SCISEARCH_ASSIGN_OR_RETURN(dim.calibration_delta, c.Read<double>("CalibrationDelta"));
    SCISEARCH_ASSIGN_OR_RETURN(dim.calibration_element, c.Read<int32_t>("CalibrationElement"));
    SCISEARCH_ASSIGN_OR_RETURN(int32_t dl, c.Read<int32_t>("DescriptionLength"));
    if (dl < 0 || size_t(dl) > c.remaining()) {
      return c.Error("DescriptionLength " + std::to_string(dl) + " of dimension " +
                     std::to_string(d + 1) + " runs past the header");
    }
    SCISEARCH_ASSIGN_OR_RETURN(std::string description, c.ReadString(size_t(dl), "Description"));
    dim.description = ToUtf8Lossless(description);
    SCISEARCH_ASSIGN_OR_RETURN(int32_t ul, c.Read<int32_t>("UnitsLength"));
    if (ul < 0 || size_t(ul) > c.remaining()) {
      return c.Error("UnitsLength " + std::to_string(ul) + " of dimension " +
                     std::to_string(d + 1) + " runs past the header");
    }
    SCISEARCH_ASSIGN_OR_RETURN(std::string units, c.ReadString(size_t(ul), "Units"));
    dim.units = ToUtf8Lossless(units);
    if (dim.size < 0) {
      return Status::Corrupt(name + ": dimension " + std::to_string(d + 1) + " has size " +
                             std::to_string(dim.size));
    }
    ser.dimensions.push_back(std::move(dim));
  }
  return Status::Ok();
}

Result<SerFile> OpenSer(const fs::path& path) {
  SCISEARCH_ASSIGN_OR_RETURN(FileSource source, FileSource::Open(path));
  const std::string name = path.string();
  SerFile ser(std::move(source));
  const FileSource& src = ser.source;
  // The header is parsed from the file's first kMaxSerHeaderBytes. It takes a few
  // hundred bytes: read a small prefix first, and all of them only when the header
  // does not parse from it (the results are those of parsing all of them).
  constexpr uint64_t kFirstHeaderBytes = 16 << 10;
  const uint64_t header_bytes = std::min(src.size(), kMaxSerHeaderBytes);
  SCISEARCH_ASSIGN_OR_RETURN(std::vector<uint8_t> head,
                             src.ReadBytes(0, std::min(header_bytes, kFirstHeaderBytes)));
  Status parsed = ParseSerHeader(head, name, ser);
  if (!parsed.ok() && head.size() < header_bytes) {
    SCISEARCH_ASSIGN_OR_RETURN(head, src.ReadBytes(0, header_bytes));
    parsed = ParseSerHeader(head, name, ser);
  }
  SCISEARCH_RETURN_IF_ERROR(parsed);
  const bool wide = ser.series_version >= kVersion64BitOffsets;

  if (ser.valid_elements > ser.total_elements) {
    return Status::Corrupt(name + ": ValidNumberElements " + std::to_string(ser.valid_elements) +
                           " exceeds TotalNumberElements " + std::to_string(ser.total_elements));
  }
  if (ser.valid_elements == 0) {
    return Status::Corrupt(name + ": the series holds no valid elements (acquisition aborted?)");
  }

  // The offset arrays: the valid data offsets must lie in the file.
  const uint64_t word = wide ? 8 : 4;
  const uint64_t oao = ser.offset_array_offset;
  if (oao > src.size() || uint64_t(ser.valid_elements) > (src.size() - oao) / word) {
    return Status::Corrupt(name + ": offset array at " + std::to_string(oao) + " with " +
                           std::to_string(ser.valid_elements) +
                           " valid elements runs past the end of the file (" +
                           std::to_string(src.size()) + " bytes)");
  }
  ser.element_offsets.reserve(ser.valid_elements);
  {
    constexpr uint64_t kBatch = 1 << 16;
    std::vector<uint8_t> raw;
    for (uint64_t first = 0; first < ser.valid_elements; first += kBatch) {
      const uint64_t count = std::min<uint64_t>(kBatch, ser.valid_elements - first);
      raw.resize(count * word);
      SCISEARCH_RETURN_IF_ERROR(src.ReadAt(oao + first * word, count * word, raw.data()));
      ByteCursor oc(raw, ByteOrder::kLittle, name);
      for (uint64_t i = 0; i < count; ++i) {
        uint64_t offset = 0;
        if (wide) {
          SCISEARCH_ASSIGN_OR_RETURN(int64_t o, oc.Read<int64_t>("DataOffsetArray"));
          if (o < 0) {
            return Status::Corrupt(name + ": element " + std::to_string(first + i) +
                                   " has negative offset " + std::to_string(o));
          }
          offset = uint64_t(o);
        } else {
          SCISEARCH_ASSIGN_OR_RETURN(uint32_t o, oc.Read<uint32_t>("DataOffsetArray"));
          offset = o;
        }
        ser.element_offsets.push_back(offset);
      }
    }
  }

  // Every valid element: its header must lie in the file and match the first's shape
  // and type, and its values must fit.
  const bool two_d = ser.data_type_id == kElements2d;
  ser.element_header_bytes = two_d ? 50 : 26;
  std::vector<uint8_t> eh(ser.element_header_bytes);
  for (size_t e = 0; e < ser.element_offsets.size(); ++e) {
    const uint64_t at = ser.element_offsets[e];
    const std::string which = "element " + std::to_string(e);
    if (at > src.size() || src.size() - at < ser.element_header_bytes) {
      return Status::Corrupt(name + ": " + which + " offset " + std::to_string(at) +
                             " is past the end of the file (" + std::to_string(src.size()) +
                             " bytes)");
    }
    SCISEARCH_RETURN_IF_ERROR(src.ReadAt(at, eh.size(), eh.data()));
    SCISEARCH_ASSIGN_OR_RETURN(ElementHeader h, ParseElementHeader(eh, two_d, name));
    if (e == 0) {
      const auto dtype = DTypeOfSer(h.data_type);
      if (!dtype) {
        return Status::Unsupported(name + ": " + which + " has DataType " +
                                   std::to_string(h.data_type) + " (known: 1 to 10)");
      }
      for (int64_t s : h.shape) {
        if (s < 0) return Status::Corrupt(name + ": " + which + " has a negative array size");
      }
      ser.dtype = *dtype;
      ser.data_type = h.data_type;
      ser.frame_shape = h.shape;
      ser.calibrations = h.calibrations;
    } else if (h.data_type != ser.data_type || h.shape != ser.frame_shape) {
      return Status::Corrupt(
          name + ": " + which + " has DataType " + std::to_string(h.data_type) + " and " +
          (two_d ? "size " + std::to_string(h.shape[1]) + "x" + std::to_string(h.shape[0])
                 : "length " + std::to_string(h.shape[0])) +
          ", unlike element 0");
    }
    const uint64_t values = uint64_t(ser.frame_shape[0]) *
                            uint64_t(two_d ? ser.frame_shape[1] : 1) * DTypeSize(ser.dtype);
    if (values > src.size() - at - ser.element_header_bytes) {
      return Status::Corrupt(name + ": " + which + " at offset " + std::to_string(at) + " (" +
                             std::to_string(values) + " bytes of values) runs past the end of " +
                             "the file (" + std::to_string(src.size()) + " bytes)");
    }
  }

  // The first element's tag, when its offset is sound (TIA sometimes writes bad ones).
  if (oao <= src.size() && uint64_t(ser.total_elements) + 1 <= (src.size() - oao) / word) {
    std::array<uint8_t, 8> raw{};
    SCISEARCH_RETURN_IF_ERROR(
        src.ReadAt(oao + uint64_t(ser.total_elements) * word, word, raw.data()));
    uint64_t tag_offset = LoadLittle(raw.data(), size_t(word));
    if (wide && tag_offset > uint64_t(std::numeric_limits<int64_t>::max())) tag_offset = 0;
    if (tag_offset > 0 && tag_offset <= src.size() && src.size() - tag_offset >= 8) {
      const uint64_t n = std::min<uint64_t>(24, src.size() - tag_offset);
      SCISEARCH_ASSIGN_OR_RETURN(std::vector<uint8_t> tb, src.ReadBytes(tag_offset, n));
      ByteCursor tc(tb, ByteOrder::kLittle, name);
      SerTag tag;
      SCISEARCH_ASSIGN_OR_RETURN(tag.type, tc.Read<uint16_t>("TagTypeID"));
      SCISEARCH_RETURN_IF_ERROR(tc.Skip(2, "tag padding"));
      SCISEARCH_ASSIGN_OR_RETURN(tag.time, tc.Read<uint32_t>("Time"));
      if (tag.type == kTagTimePosition && tc.remaining() >= 16) {
        SCISEARCH_ASSIGN_OR_RETURN(double x, tc.Read<double>("PositionX"));
        SCISEARCH_ASSIGN_OR_RETURN(double y, tc.Read<double>("PositionY"));
        tag.position_x = x;
        tag.position_y = y;
      }
      if (tag.type == ser.tag_type_id && (tag.type == kTagTime || tag.type == kTagTimePosition)) {
        ser.first_tag = tag;
      }
    }
  }
  return ser;
}

// ---------------------------------------------------------------------------
// Signals.

bool IsLengthUnit(const std::string& normalised) {
  return !normalised.empty() && normalised.rfind("1/", 0) != 0 && LengthToSi(normalised);
}

// The series axes (slowest first): the dimension array reversed, size-1 dimensions
// dropped; a partly filled multi-dimensional series becomes one axis of the valid elements.
std::vector<Axis> SeriesAxes(const SerFile& ser) {
  std::vector<Axis> axes;
  int64_t product = 1;
  bool overflow = false;
  for (const SerDimension& d : ser.dimensions) {
    if (d.size != 0 && product > std::numeric_limits<int64_t>::max() / d.size) overflow = true;
    if (!overflow) product *= d.size;
  }
  auto axis_from = [](const SerDimension& d, int64_t size) {
    Axis a;
    a.size = size;
    a.scale = std::isfinite(d.calibration_delta) ? d.calibration_delta : 1.0;
    const double offset = d.calibration_offset - double(d.calibration_element) * a.scale;
    a.offset = std::isfinite(offset) ? offset : 0.0;
    a.units = NormaliseUnits(d.units);
    a.navigate = true;
    const std::string description = AsciiLower(TrimSpace(d.description));
    a.name = description == "number" ? "frame" : description.empty() ? "series" : description;
    return a;
  };
  const int64_t valid = ser.valid_elements;
  if (!ser.dimensions.empty() && !overflow && product == valid) {
    for (size_t k = ser.dimensions.size(); k > 0; --k) {
      const SerDimension& d = ser.dimensions[k - 1];
      if (d.size != 1) axes.push_back(axis_from(d, d.size));
    }
    std::vector<Axis*> scan;
    for (Axis& a : axes) {
      if (IsLengthUnit(a.units)) scan.push_back(&a);
    }
    if (scan.size() == 1) {
      scan[0]->name = "scan";
    } else if (scan.size() == 2) {
      scan[0]->name = "scan_y";
      scan[1]->name = "scan_x";
    } else {
      for (size_t i = 0; i < scan.size(); ++i) scan[i]->name = "scan_" + std::to_string(i);
    }
  } else if (valid > 1) {
    if (ser.dimensions.size() == 1) {
      Axis a = axis_from(ser.dimensions[0], valid);
      if (IsLengthUnit(a.units)) a.name = "scan";
      axes.push_back(a);
    } else {
      Axis a;
      a.name = "element";
      a.size = valid;
      a.navigate = true;
      axes.push_back(a);
    }
  }
  return axes;
}

Metadata SerMetadata(const SerFile& ser) {
  Metadata m = Metadata::object();
  m["file"] = ToUtf8Lossless(ser.source.path().filename().string());
  m["ByteOrder"] = kLittleEndianMark;
  m["SeriesID"] = kSeriesId;
  m["SeriesVersion"] = ser.series_version;
  m["DataTypeID"] = ser.data_type_id;
  m["TagTypeID"] = ser.tag_type_id;
  m["TotalNumberElements"] = ser.total_elements;
  m["ValidNumberElements"] = ser.valid_elements;
  m["OffsetArrayOffset"] = ser.offset_array_offset;
  m["NumberDimensions"] = ser.dimensions.size();
  Metadata dims = Metadata::array();
  for (const SerDimension& d : ser.dimensions) {
    Metadata dm = Metadata::object();
    dm["DimensionSize"] = d.size;
    dm["CalibrationOffset"] = d.calibration_offset;
    dm["CalibrationDelta"] = d.calibration_delta;
    dm["CalibrationElement"] = d.calibration_element;
    dm["Description"] = d.description;
    dm["Units"] = d.units;
    dims.push_back(std::move(dm));
  }
  m["Dimensions"] = std::move(dims);
  Metadata element = Metadata::object();
  if (ser.data_type_id == kElements2d) {
    const char* axis[2] = {"X", "Y"};
    for (int k = 0; k < 2; ++k) {
      element[std::string("CalibrationOffset") + axis[k]] = ser.calibrations[k].offset;
      element[std::string("CalibrationDelta") + axis[k]] = ser.calibrations[k].delta;
      element[std::string("CalibrationElement") + axis[k]] = ser.calibrations[k].element;
    }
    element["DataType"] = ser.data_type;
    element["ArraySizeX"] = ser.frame_shape[1];
    element["ArraySizeY"] = ser.frame_shape[0];
  } else {
    element["CalibrationOffset"] = ser.calibrations[0].offset;
    element["CalibrationDelta"] = ser.calibrations[0].delta;
    element["CalibrationElement"] = ser.calibrations[0].element;
    element["DataType"] = ser.data_type;
    element["ArrayLength"] = ser.frame_shape[0];
  }
  m["Element"] = std::move(element);
  if (ser.first_tag) {
    Metadata tag = Metadata::object();
    tag["TagTypeID"] = ser.first_tag->type;
    tag["Time"] = ser.first_tag->time;
    tag["TimeIso"] = IsoFromUnixSeconds(double(ser.first_tag->time));
    if (ser.first_tag->position_x) tag["PositionX"] = *ser.first_tag->position_x;
    if (ser.first_tag->position_y) tag["PositionY"] = *ser.first_tag->position_y;
    m["FirstTag"] = std::move(tag);
  }
  // Sanitise non-finite reals, which JSON cannot hold.
  for (auto& dm : m["Dimensions"]) {
    for (auto& [k, v] : dm.items()) {
      if (v.is_number_float() && !std::isfinite(v.get<double>())) v = nullptr;
    }
  }
  for (auto& [k, v] : m["Element"].items()) {
    if (v.is_number_float() && !std::isfinite(v.get<double>())) v = nullptr;
  }
  if (m.contains("FirstTag")) {
    for (auto& [k, v] : m["FirstTag"].items()) {
      if (v.is_number_float() && !std::isfinite(v.get<double>())) v = nullptr;
    }
  }
  return m;
}

// An ExperimentalDescription entry by label, whatever its unit: value and unit.
std::optional<std::pair<Metadata, std::string>> DescriptionEntry(const Metadata* description,
                                                                 std::string_view label) {
  if (description == nullptr || !description->is_object()) return std::nullopt;
  for (const auto& [key, value] : description->items()) {
    if (key == label) return std::make_pair(value, std::string());
    if (key.size() > label.size() + 3 && key.compare(0, label.size(), label) == 0 &&
        key.compare(label.size(), 2, " [") == 0 && key.back() == ']') {
      return std::make_pair(value, key.substr(label.size() + 2, key.size() - label.size() - 3));
    }
  }
  return std::nullopt;
}

// "Acquire HAADF" -> "HAADF", "Preview DF4" -> "DF4", "EDX Spectrum profile" -> "EDX".
std::string DetectorFromObjectName(const std::string& name) {
  std::vector<std::string> words;
  for (size_t i = 0; i < name.size();) {
    while (i < name.size() && std::isspace(static_cast<unsigned char>(name[i]))) ++i;
    size_t j = i;
    while (j < name.size() && !std::isspace(static_cast<unsigned char>(name[j]))) ++j;
    if (j > i) words.push_back(name.substr(i, j - i));
    i = j;
  }
  size_t w = 0;
  static const std::array<std::string_view, 5> kVerbs = {"acquire", "preview", "search", "live",
                                                         "focus"};
  if (w < words.size() &&
      std::find(kVerbs.begin(), kVerbs.end(), AsciiLower(words[w])) != kVerbs.end()) {
    ++w;
  }
  if (w + 1 < words.size() && words[w] == "STEM") ++w;
  return w < words.size() ? words[w] : std::string();
}

struct SignalPlan {
  Signal signal;
  size_t series_rank = 0;
  bool flip_rows = false;
};

SignalPlan BuildSignal(const SerFile& ser, const EmiObject* object, const std::string& emi_name) {
  SignalPlan plan;
  Signal& sig = plan.signal;
  const bool two_d = ser.data_type_id == kElements2d;
  sig.dtype = ser.dtype;
  sig.name = object && !object->name.empty() ? object->name : ser.source.path().stem().string();

  // Metadata: the EMI's ObjectInfo tree, what the .emi says of the object, the SER header.
  if (object && object->object_info) {
    sig.metadata[object->object_info->name] =
        XmlToJson(*object->object_info, object->object_info_source, 0);
  }
  if (object) {
    Metadata emi = Metadata::object();
    emi["file"] = ToUtf8Lossless(emi_name);
    if (!object->name.empty()) emi["data_object"] = object->name;
    if (!object->space.empty()) emi["coordinate_space"] = object->space;
    if (!object->ser_path.empty()) emi["ser_path"] = object->ser_path;
    sig.metadata["emi"] = std::move(emi);
  }
  sig.metadata["ser"] = SerMetadata(ser);

  // Axes.
  std::vector<Axis> axes = SeriesAxes(ser);
  plan.series_rank = axes.size();
  int scan_axes = 0;
  std::optional<double> scan_step_m;
  for (const Axis& a : axes) {
    if (IsLengthUnit(a.units)) {
      ++scan_axes;
      // Point spectra at hand-placed positions have an uncalibrated step of 1 m.
      const double step = std::fabs(a.scale) * LengthToSi(a.units).value_or(1.0);
      if (step > 0 && step < 1e-2) scan_step_m = step;
    }
  }
  bool reciprocal = false;
  bool calibrated = false;
  if (two_d) {
    const SerCalibration& cx = ser.calibrations[0];
    calibrated = std::isfinite(cx.delta) && cx.delta != 0 && !(cx.delta == 1.0 && cx.offset == 0);
    if (object && object->space.find("Reciprocal") != std::string::npos) {
      reciprocal = true;
    } else if (object && object->space.find("Real") != std::string::npos) {
      reciprocal = false;
    } else {
      // No .emi: real-space pixels are far below a metre, reciprocal ones far above 1/m.
      reciprocal = calibrated && std::fabs(cx.delta) >= 1.0;
    }
    const std::string units = calibrated ? (reciprocal ? "1/m" : "m") : "";
    const char* names[2] = {"x", "y"};
    for (int k = 1; k >= 0; --k) {
      const SerCalibration& cal = ser.calibrations[k];
      Axis a;
      a.name = names[k];
      a.size = ser.frame_shape[1 - k];
      a.scale = std::isfinite(cal.delta) ? cal.delta : 1.0;
      const double offset = cal.offset - double(cal.element) * a.scale;
      a.offset = std::isfinite(offset) ? offset : 0.0;
      a.units = units;
      axes.push_back(a);
    }
    plan.flip_rows = true;
  } else {
    const SerCalibration& cal = ser.calibrations[0];
    Axis a;
    a.name = "energy";
    a.size = ser.frame_shape[0];
    a.scale = std::isfinite(cal.delta) ? cal.delta : 1.0;
    const double offset = cal.offset - double(cal.element) * a.scale;
    a.offset = std::isfinite(offset) ? offset : 0.0;
    a.units = "eV";
    axes.push_back(a);
  }
  for (const Axis& a : axes) sig.shape.push_back(a.size);
  sig.axes = std::move(axes);

  // Normalised fields.
  NormalisedFields& f = sig.fields;
  const Metadata* info = FindPath(sig.metadata, {"ObjectInfo"});
  const Metadata* description = info ? FindPath(*info, {"ExperimentalDescription"}) : nullptr;
  if (info) {
    if (const Metadata* date = FindPath(*info, {"AcquireDate"}); date && date->is_string()) {
      f.acquired = ParseDateTime(date->get<std::string>());
    }
  }
  if (!f.acquired && ser.first_tag && ser.first_tag->time > 0) {
    f.acquired = IsoFromUnixSeconds(double(ser.first_tag->time));
  }
  if (auto m = DescriptionEntry(description, "Microscope"); m && m->first.is_string()) {
    std::string text(TrimSpace(m->first.get<std::string>()));
    if (text.rfind("Microscope ", 0) == 0) text = std::string(TrimSpace(text.substr(11)));
    if (!text.empty()) f.instrument = text;
  }
  if (auto ht = DescriptionEntry(description, "High tension")) {
    if (auto v = NumberOrLeadingNumber(ht->first); v && *v > 0) {
      const std::string unit = AsciiLower(ht->second);
      f.beam_energy_kev = unit == "v" ? *v / 1000 : unit == "mv" ? *v * 1000 : *v;
    }
  }
  if (!f.beam_energy_kev && info) {
    const Metadata* volts =
        FindPath(*info, {"ExperimentalConditions", "MicroscopeConditions", "AcceleratingVoltage"});
    if (auto v = volts ? NumberOrLeadingNumber(*volts) : std::nullopt; v && *v > 0)
      f.beam_energy_kev = *v / 1000;
  }
  if (auto mag = DescriptionEntry(description, "Magnification")) {
    if (auto v = NumberOrLeadingNumber(mag->first); v && *v > 0) f.magnification = *v;
  }
  if (!f.magnification && info) {
    const Metadata* mag = FindPath(*info, {"AcquireInfo", "Magnification"});
    // Diffraction acquisitions write "0 X" or "1 X" here: no magnification.
    if (auto v = mag ? NumberOrLeadingNumber(*mag) : std::nullopt; v && *v > 1)
      f.magnification = *v;
  }
  Mode text_mode = Mode::kUnknown;
  if (auto mode = DescriptionEntry(description, "Mode"); mode && mode->first.is_string()) {
    text_mode = ModeFromText(mode->first.get<std::string>());
  }
  if (!two_d) {
    f.mode = scan_axes >= 2 ? Mode::kSpectrumImage : Mode::kSpectrum;
  } else if (reciprocal) {
    f.mode = scan_axes >= 1 ? Mode::k4dStem : Mode::kDiffraction;
  } else if (text_mode == Mode::kStemImage || text_mode == Mode::kTemImage) {
    f.mode = text_mode;
  } else {
    f.mode = Mode::kImage;
  }
  if (two_d && calibrated) {
    f.pixel_size_m = std::fabs(ser.calibrations[0].delta);
    f.pixel_size_units = reciprocal ? "1/m" : "m";
  } else if (!two_d && scan_step_m && *scan_step_m > 0) {
    f.pixel_size_m = *scan_step_m;
    f.pixel_size_units = "m";
  }
  std::string detector = object ? DetectorFromObjectName(object->name) : std::string();
  if (detector.empty() || detector == "CCD") {
    const Metadata* camera = info ? FindPath(*info, {"AcquireInfo", "CameraNamePath"}) : nullptr;
    if (camera && camera->is_string() && !TrimSpace(camera->get<std::string>()).empty()) {
      detector = std::string(TrimSpace(camera->get<std::string>()));
    }
  }
  if (!detector.empty()) f.detector = detector;
  return plan;
}

// ---------------------------------------------------------------------------
// The reader.

class TiaReader : public DatasetReader {
 public:
  TiaReader(Dataset dataset, std::vector<SerFile> sers, std::vector<SignalPlan> plans)
      : dataset_(std::move(dataset)), sers_(std::move(sers)) {
    for (SignalPlan& p : plans) {
      layouts_.push_back({p.series_rank, p.flip_rows});
      dataset_.signals.push_back(std::move(p.signal));
    }
  }

  const Dataset& dataset() const override { return dataset_; }
  Dataset TakeDataset() override { return std::move(dataset_); }

  Result<NdArray> Read(size_t signal_index, const Hyperslab& slab) override {
    SCISEARCH_RETURN_IF_ERROR(CheckSignalIndex(dataset_, signal_index));
    const SerFile& ser = sers_[signal_index];
    const Signal& sig = dataset_.signals[signal_index];
    const Layout& layout = layouts_[signal_index];
    SCISEARCH_RETURN_IF_ERROR(slab.Validate(sig.shape).WithContext(ser.source.path().string()));
    const size_t ns = layout.series_rank;
    const size_t nf = sig.shape.size() - ns;
    const uint64_t esize = DTypeSize(sig.dtype);

    NdArray out;
    out.dtype = sig.dtype;
    out.shape = slab.count;
    SCISEARCH_ASSIGN_OR_RETURN(int64_t total, CheckedElementCount(slab.count));
    if (uint64_t(total) > std::numeric_limits<uint64_t>::max() / esize) {
      return Status::InvalidArgument(ser.source.path().string() + ": selection too large");
    }
    out.bytes.resize(uint64_t(total) * esize);
    if (total == 0) return out;

    // The selection within one frame; image rows are stored bottom-up.
    const std::vector<int64_t> frame_shape(sig.shape.begin() + ns, sig.shape.end());
    Hyperslab frame;
    frame.start.assign(slab.start.begin() + ns, slab.start.end());
    frame.count.assign(slab.count.begin() + ns, slab.count.end());
    frame.step.assign(slab.step.begin() + ns, slab.step.end());
    if (layout.flip_rows && nf == 2) {
      frame.start[0] = frame_shape[0] - 1 - (frame.start[0] + (frame.count[0] - 1) * frame.step[0]);
    }
    const uint64_t frame_bytes =
        uint64_t(total) * esize / uint64_t(std::max<int64_t>(1, SeriesCount(slab, ns)));
    const std::vector<int64_t> series_shape(sig.shape.begin(), sig.shape.begin() + ns);

    std::vector<int64_t> index(ns, 0);
    uint64_t dst = 0;
    while (true) {
      int64_t element = 0;
      for (size_t k = 0; k < ns; ++k) {
        element = element * series_shape[k] + slab.start[k] + index[k] * slab.step[k];
      }
      if (element < 0 || uint64_t(element) >= ser.element_offsets.size()) {
        return Status::Internal(ser.source.path().string() + ": element index out of range");
      }
      const uint64_t offset = ser.element_offsets[size_t(element)] + ser.element_header_bytes;
      SCISEARCH_ASSIGN_OR_RETURN(
          NdArray part, ReadContiguousSlab(ser.source, offset, sig.dtype, ByteOrder::kLittle,
                                           frame_shape, frame));
      if (part.bytes.size() != frame_bytes) {
        return Status::Internal(ser.source.path().string() + ": frame read size mismatch");
      }
      if (layout.flip_rows && nf == 2) {
        const uint64_t row = uint64_t(frame.count[1]) * esize;
        const uint64_t rows = uint64_t(frame.count[0]);
        for (uint64_t r = 0; r < rows; ++r) {
          std::memcpy(out.bytes.data() + dst + r * row, part.bytes.data() + (rows - 1 - r) * row,
                      row);
        }
      } else {
        std::memcpy(out.bytes.data() + dst, part.bytes.data(), frame_bytes);
      }
      dst += frame_bytes;
      // Next series position (odometer, last axis fastest).
      size_t k = ns;
      while (k > 0) {
        --k;
        if (++index[k] < slab.count[k]) break;
        index[k] = 0;
        if (k == 0) return out;
      }
      if (ns == 0) return out;
    }
  }

 private:
  struct Layout {
    size_t series_rank = 0;
    bool flip_rows = false;
  };

  static int64_t SeriesCount(const Hyperslab& slab, size_t ns) {
    int64_t n = 1;
    for (size_t k = 0; k < ns; ++k) n *= slab.count[k];
    return n;
  }

  Dataset dataset_;
  std::vector<SerFile> sers_;
  std::vector<Layout> layouts_;
};

bool Exists(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// name_N.ser beside the .emi (either case of extension), if it exists.
std::optional<fs::path> SerBeside(const fs::path& emi, int n) {
  const std::string base = emi.stem().string() + "_" + std::to_string(n);
  for (const char* ext : {".ser", ".SER", ".Ser"}) {
    fs::path p = emi.parent_path() / (base + ext);
    if (Exists(p)) return p;
  }
  return std::nullopt;
}

Result<std::unique_ptr<DatasetReader>> OpenEmi(const fs::path& emi_path, std::optional<int> also) {
  SCISEARCH_ASSIGN_OR_RETURN(FileSource emi, FileSource::Open(emi_path));
  if (emi.size() == 0) return Status::Corrupt(emi_path.string() + ": file is empty");
  SCISEARCH_ASSIGN_OR_RETURN(EmiIndex index, ScanEmi(emi));

  // The .ser files: those the .emi names, those numbered consecutively from 1, and
  // the one the caller opened.
  std::vector<std::pair<int, fs::path>> sers;
  auto add = [&](int n) {
    for (const auto& [m, p] : sers) {
      if (m == n) return true;
    }
    if (auto p = SerBeside(emi_path, n)) {
      sers.emplace_back(n, *p);
      return true;
    }
    return false;
  };
  for (const EmiString& s : index.strings) {
    const size_t slash = s.text.find_last_of("\\/");
    if (auto n = SerIndexOf(slash == std::string::npos ? s.text : s.text.substr(slash + 1))) {
      add(*n);
    }
  }
  for (int n = 1; n <= kMaxSerIndex && add(n); ++n) {
  }
  if (also) add(*also);
  if (sers.empty()) {
    return Status::Unsupported(emi_path.string() + ": no " + emi_path.stem().string() +
                               "_<N>.ser data files beside it (TIA keeps the data there)");
  }
  std::sort(sers.begin(), sers.end());
  std::vector<int> numbers;
  for (const auto& s : sers) numbers.push_back(s.first);
  SCISEARCH_ASSIGN_OR_RETURN(auto objects, DescribeSerObjects(emi, index, numbers));

  Dataset dataset;
  dataset.path = emi_path;
  dataset.format = "tia";
  dataset.member_files.push_back(emi_path);
  std::vector<SerFile> files;
  std::vector<SignalPlan> plans;
  for (const auto& [n, path] : sers) {
    SCISEARCH_ASSIGN_OR_RETURN(SerFile ser, OpenSer(path));
    dataset.member_files.push_back(path);
    plans.push_back(BuildSignal(ser, &objects.at(n), emi_path.filename().string()));
    files.push_back(std::move(ser));
  }
  return std::unique_ptr<DatasetReader>(
      new TiaReader(std::move(dataset), std::move(files), std::move(plans)));
}

Result<std::unique_ptr<DatasetReader>> OpenSerAlone(const fs::path& ser_path) {
  SCISEARCH_ASSIGN_OR_RETURN(SerFile ser, OpenSer(ser_path));
  Dataset dataset;
  dataset.path = ser_path;
  dataset.format = "tia";
  dataset.member_files.push_back(ser_path);
  std::vector<SignalPlan> plans;
  plans.push_back(BuildSignal(ser, nullptr, ""));
  std::vector<SerFile> files;
  files.push_back(std::move(ser));
  return std::unique_ptr<DatasetReader>(
      new TiaReader(std::move(dataset), std::move(files), std::move(plans)));
}

}  // namespace

Result<std::unique_ptr<DatasetReader>> OpenTia(const std::filesystem::path& path) {
  const std::string ext = AsciiLower(path.extension().string());
  if (ext == ".emi") return OpenEmi(path, std::nullopt);
  // A .ser: open the .emi beside it when there is one.
  const std::string filename = path.filename().string();
  if (auto n = SerIndexOf(filename)) {
    const std::string stem = path.stem().string();
    const std::string base = stem.substr(0, stem.rfind('_'));
    for (const char* emi_ext : {".emi", ".EMI", ".Emi"}) {
      const fs::path emi = path.parent_path() / (base + emi_ext);
      if (Exists(emi)) return OpenEmi(emi, *n);
    }
  }
  return OpenSerAlone(path);
}

}  // namespace scisearch::formats
