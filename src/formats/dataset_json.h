// The inverse of DatasetToJson (formats.h), for moving a Dataset between processes
// (the HDF5 worker sends the datasets it parses as JSON), the parsers that build
// the metadata trees moved that way, the JSON scanner under them (ParseJsonEvents),
// and ObjectMembers, which readers use to build objects member by member. Internal to
// the formats module.
#pragma once

#include <algorithm>
#include <cerrno>
#include <clocale>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "formats/formats.h"
#include "formats/text.h"

namespace scisearch::formats {

// Rebuilds the Dataset that DatasetToJson turned into `json`, exactly (scales and
// offsets that DatasetToJson wrote as null, being NaN or infinite, come back as NaN).
// Checks every field's type; errors are kInvalidArgument naming the field.
Result<Dataset> DatasetFromJson(const nlohmann::ordered_json& json);

// Parses JSON text into the tree Metadata::parse(text, nullptr, false) builds: a key
// that repeats keeps its first position and takes its last value. nullopt when `text`
// is not exactly one JSON value (nlohmann's rules: RFC 8259, a leading UTF-8 BOM
// skipped, strings of valid UTF-8, numbers that overflow a double refused). Several
// times faster than Metadata::parse: its own scanner copies runs of plain characters
// whole, and MetadataBuilder builds the tree.
std::optional<Metadata> ParseMetadataJson(std::string_view text);

// Feeds `handler` the events of the JSON `text` that
// Metadata::sax_parse(text, &handler, input_format_t::json, /*strict=*/true) would, with
// the same rules, several times faster (ParseMetadataJson's scanner). `handler` has
// nlohmann's SAX interface; string() and key() get the scanner's scratch string, which
// the handler may take over. False when `text` is not exactly one JSON value or a call
// of `handler` returns false.
template <class Handler>
bool ParseJsonEvents(std::string_view text, Handler& handler);

// The same for one MessagePack value that fills `bytes` (what
// Metadata::from_msgpack(bytes, /*strict=*/true, /*allow_exceptions=*/false) builds),
// with a scanner of its own that reads whole strings at once, as ParseMetadataJson's
// does. Iterative: no nesting can exhaust the stack.
std::optional<Metadata> ParseMetadataMsgpack(std::string_view bytes);

// Whether two of `members` share a key. `scratch` is working space the caller keeps
// between calls, so that large objects sort their keys without allocating each time.
inline bool HasRepeatedKey(const std::vector<std::pair<std::string, Metadata>>& members,
                           std::vector<std::string_view>& scratch) {
  constexpr size_t kCompareAll = 8;  // up to this many, compare every pair
  if (members.size() <= kCompareAll) {
    for (size_t i = 1; i < members.size(); ++i) {
      for (size_t j = 0; j < i; ++j) {
        if (members[i].first == members[j].first) return true;
      }
    }
    return false;
  }
  scratch.clear();
  for (const auto& member : members) scratch.emplace_back(member.first);
  std::sort(scratch.begin(), scratch.end());
  return std::adjacent_find(scratch.begin(), scratch.end()) != scratch.end();
}

// The members of a Metadata object under construction, kept as movable pairs and made
// into the object once, by Take: ordered_json's members have const keys, so an object
// that grows member by member copies every member's whole subtree at each reallocation.
// Lookups are linear, as ordered_json's own are.
class ObjectMembers {
 public:
  bool empty() const { return members_.empty(); }

  // The value of `key`, or nullptr.
  Metadata* Find(std::string_view key) {
    for (auto& [name, value] : members_) {
      if (name == key) return &value;
    }
    return nullptr;
  }
  // What object[key] = value does: a new key is appended, a known one keeps its place.
  void Set(std::string key, Metadata value) {
    if (Metadata* existing = Find(key)) {
      *existing = std::move(value);
    } else {
      members_.emplace_back(std::move(key), std::move(value));
    }
  }
  // Appends a member whose key the caller knows to be new.
  void AppendNew(std::string key, Metadata value) {
    members_.emplace_back(std::move(key), std::move(value));
  }
  // The object, in order of first appearance; leaves this empty.
  Metadata Take() {
    Metadata object = Metadata::object();
    auto& out = object.get_ref<Metadata::object_t&>();
    out.reserve(members_.size());
    for (auto& [key, value] : members_) out.emplace_back(std::move(key), std::move(value));
    members_.clear();
    return object;
  }

 private:
  std::vector<std::pair<std::string, Metadata>> members_;
};

namespace dataset_json_internal {

// A SAX handler (nlohmann's interface) that builds a Metadata tree bottom-up: each
// object's members are collected with movable keys and the object is made once, at
// its end, with room for all of them. nlohmann's own DOM builder inserts into the
// object as it goes: ordered_map's vector of pairs with const keys copies every
// member's whole subtree each time it grows, and each key is looked up one by one.
class MetadataBuilder {
 public:
  using string_t = Metadata::string_t;
  using binary_t = Metadata::binary_t;

  // `steal_strings`: the parser hands over strings it no longer needs (MessagePack's
  // reader does; the JSON lexer reuses its buffer, so its strings are copied).
  explicit MetadataBuilder(bool steal_strings) : steal_strings_(steal_strings) {}

  bool null() { return Put(Metadata()); }
  bool boolean(bool value) { return Put(Metadata(value)); }
  bool number_integer(Metadata::number_integer_t value) { return Put(Metadata(value)); }
  bool number_unsigned(Metadata::number_unsigned_t value) { return Put(Metadata(value)); }
  bool number_float(Metadata::number_float_t value, const string_t& /*text*/) {
    return Put(Metadata(value));
  }
  bool string(string_t& value) {
    return Put(steal_strings_ ? Metadata(std::move(value)) : Metadata(value));
  }
  bool binary(binary_t& value) { return Put(Metadata(std::move(value))); }
  bool start_object(std::size_t /*declared_size*/) { return Push(/*is_object=*/true); }
  bool key(string_t& key) {
    if (steal_strings_) {
      Top().key = std::move(key);
    } else {
      Top().key = key;
    }
    return true;
  }
  bool end_object() {
    Frame& frame = Top();
    Metadata object = Metadata::object();
    auto& map = object.get_ref<Metadata::object_t&>();
    map.reserve(frame.members.size());
    if (HasRepeatedKey(frame.members, keys_)) {
      // The rare slow path, one lookup per member.
      for (auto& member : frame.members) {
        const std::string& key = member.first;  // (clang 14 cannot capture a binding)
        auto it = std::find_if(map.begin(), map.end(),
                               [&key](const auto& existing) { return existing.first == key; });
        if (it != map.end()) {
          it->second = std::move(member.second);
        } else {
          map.emplace_back(std::move(member.first), std::move(member.second));
        }
      }
    } else {
      for (auto& [key, value] : frame.members) map.emplace_back(std::move(key), std::move(value));
    }
    frame.members.clear();
    --depth_;
    return Put(std::move(object));
  }
  bool start_array(std::size_t /*declared_size*/) { return Push(/*is_object=*/false); }
  bool end_array() {
    Metadata array = Metadata::array();
    array.get_ref<Metadata::array_t&>() = std::move(Top().elements);
    Top().elements.clear();
    --depth_;
    return Put(std::move(array));
  }
  template <class Exception>
  bool parse_error(std::size_t /*position*/, const std::string& /*token*/,
                   const Exception& /*error*/) {
    return false;
  }

  // The tree, after a parse that succeeded.
  Metadata Take() { return std::move(root_); }

 private:
  // An object or array being read. Frames are kept for reuse when their value ends,
  // so that their vectors keep their room.
  struct Frame {
    bool is_object = false;
    std::string key;  // objects: the key of the value being read
    std::vector<std::pair<std::string, Metadata>> members;
    std::vector<Metadata> elements;
  };

  Frame& Top() { return frames_[depth_ - 1]; }

  bool Push(bool is_object) {
    if (depth_ == frames_.size()) frames_.emplace_back();
    frames_[depth_++].is_object = is_object;
    return true;
  }

  bool Put(Metadata value) {
    if (depth_ == 0) {
      root_ = std::move(value);
    } else if (Frame& frame = Top(); frame.is_object) {
      frame.members.emplace_back(std::move(frame.key), std::move(value));
    } else {
      frame.elements.push_back(std::move(value));
    }
    return true;
  }

  const bool steal_strings_;
  std::vector<Frame> frames_;  // frames_[0, depth_) are open
  size_t depth_ = 0;
  std::vector<std::string_view> keys_;  // HasRepeatedKey's scratch space
  Metadata root_;
};

// ParseJsonEvents's scanner. Iterative: no nesting can exhaust the stack.
template <class Handler>
class JsonTextParser {
 public:
  JsonTextParser(std::string_view text, Handler& out)
      : p_(text.data()), end_(text.data() + text.size()), out_(out) {}

  bool Parse() {
    if (p_ != end_ && Byte(*p_) == 0xEF) {  // a BOM, which must be whole
      if (end_ - p_ < 3 || Byte(p_[1]) != 0xBB || Byte(p_[2]) != 0xBF) return false;
      p_ += 3;
    }
    std::vector<bool> open;  // the containers open around the value being read: true = object
    while (true) {
      // A value.
      SkipSpace();
      if (p_ == end_) return false;
      const char c = *p_;
      if (c == '{' || c == '[') {
        ++p_;
        const bool object = c == '{';
        if (!(object ? out_.start_object(std::size_t(-1)) : out_.start_array(std::size_t(-1)))) {
          return false;
        }
        SkipSpace();
        if (p_ != end_ && *p_ == (object ? '}' : ']')) {
          ++p_;
          if (!(object ? out_.end_object() : out_.end_array())) return false;
        } else {
          open.push_back(object);
          if (object && !Key()) return false;
          continue;
        }
      } else if (!Scalar()) {
        return false;
      }
      // After a value: close what ends here, then go on with the next member or element.
      while (true) {
        SkipSpace();
        if (open.empty()) return p_ == end_;
        if (p_ == end_) return false;
        const bool object = open.back();
        if (*p_ == ',') {
          ++p_;
          if (object && !Key()) return false;
          break;
        }
        if (*p_ != (object ? '}' : ']')) return false;
        ++p_;
        if (!(object ? out_.end_object() : out_.end_array())) return false;
        open.pop_back();
      }
    }
  }

 private:
  static unsigned char Byte(char c) { return static_cast<unsigned char>(c); }

  void SkipSpace() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }

  // A member's key and its colon.
  bool Key() {
    SkipSpace();
    if (p_ == end_ || *p_ != '"' || !String()) return false;
    if (!out_.key(text_)) return false;
    SkipSpace();
    if (p_ == end_ || *p_ != ':') return false;
    ++p_;
    return true;
  }

  bool Scalar() {
    switch (*p_) {
      case '"':
        return String() && out_.string(text_);
      case 't':
        return Literal("true") && out_.boolean(true);
      case 'f':
        return Literal("false") && out_.boolean(false);
      case 'n':
        return Literal("null") && out_.null();
      default:
        return Number();
    }
  }

  bool Literal(std::string_view word) {
    if (size_t(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word) return false;
    p_ += word.size();
    return true;
  }

  // At the opening quote: reads the string into text_.
  bool String() {
    ++p_;
    text_.clear();
    while (true) {
      const char* run = p_;
      bool ascii = true;
      while (p_ != end_) {
        const unsigned char b = Byte(*p_);
        if (b == '"' || b == '\\' || b < 0x20) break;
        ascii = ascii && b < 0x80;
        ++p_;
      }
      const std::string_view plain(run, size_t(p_ - run));
      if (!ascii && !IsValidUtf8(plain)) return false;
      text_.append(plain);
      if (p_ == end_ || Byte(*p_) < 0x20) return false;  // unterminated, or a control character
      if (*p_++ == '"') return true;
      if (p_ == end_) return false;
      switch (*p_++) {
        case '"':
          text_ += '"';
          break;
        case '\\':
          text_ += '\\';
          break;
        case '/':
          text_ += '/';
          break;
        case 'b':
          text_ += '\b';
          break;
        case 'f':
          text_ += '\f';
          break;
        case 'n':
          text_ += '\n';
          break;
        case 'r':
          text_ += '\r';
          break;
        case 't':
          text_ += '\t';
          break;
        case 'u': {
          std::optional<char32_t> unit = Hex4();
          if (!unit) return false;
          char32_t codepoint = *unit;
          if (codepoint >= 0xDC00 && codepoint <= 0xDFFF) return false;  // a lone low surrogate
          if (codepoint >= 0xD800 && codepoint <= 0xDBFF) {
            if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') return false;
            p_ += 2;
            std::optional<char32_t> low = Hex4();
            if (!low || *low < 0xDC00 || *low > 0xDFFF) return false;
            codepoint = 0x10000 + ((codepoint - 0xD800) << 10) + (*low - 0xDC00);
          }
          AppendUtf8(codepoint, text_);
          break;
        }
        default:
          return false;
      }
    }
  }

  std::optional<char32_t> Hex4() {
    if (end_ - p_ < 4) return std::nullopt;
    char32_t value = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = *p_++;
      int digit;
      if (c >= '0' && c <= '9') {
        digit = c - '0';
      } else if (c >= 'a' && c <= 'f') {
        digit = c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        digit = c - 'A' + 10;
      } else {
        return std::nullopt;
      }
      value = value * 16 + char32_t(digit);
    }
    return value;
  }

  // RFC 8259's number grammar, converted as nlohmann converts it: integers through
  // strtoll/strtoull when they fit, everything else through strtod (refused when it
  // overflows), with the locale's decimal point.
  bool Number() {
    auto digit = [&] { return p_ != end_ && *p_ >= '0' && *p_ <= '9'; };
    const char* start = p_;
    const bool negative = *p_ == '-';
    if (negative) ++p_;
    if (!digit()) return false;
    if (*p_ == '0') {
      ++p_;
    } else {
      while (digit()) ++p_;
    }
    bool integer = true;
    if (p_ != end_ && *p_ == '.') {
      integer = false;
      ++p_;
      if (!digit()) return false;
      while (digit()) ++p_;
    }
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      integer = false;
      ++p_;
      if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (!digit()) return false;
      while (digit()) ++p_;
    }
    number_.assign(start, p_);
    if (!integer) {
      const char point = *std::localeconv()->decimal_point;
      if (point != '.') std::replace(number_.begin(), number_.end(), '.', point);
    }
    char* number_end = nullptr;
    errno = 0;
    if (integer && !negative) {
      const unsigned long long value = std::strtoull(number_.c_str(), &number_end, 10);
      if (errno == 0) return out_.number_unsigned(value);
    } else if (integer) {
      const long long value = std::strtoll(number_.c_str(), &number_end, 10);
      if (errno == 0) return out_.number_integer(value);
    }
    const double value = std::strtod(number_.c_str(), &number_end);
    if (!std::isfinite(value)) return false;
    return out_.number_float(value, number_);
  }

  const char* p_;
  const char* end_;
  Handler& out_;
  std::string text_;    // the string being read; the handler may take it over
  std::string number_;  // the number being read
};

}  // namespace dataset_json_internal

template <class Handler>
bool ParseJsonEvents(std::string_view text, Handler& handler) {
  return dataset_json_internal::JsonTextParser<Handler>(text, handler).Parse();
}

}  // namespace scisearch::formats
