#include "formats/metadata_lookup.h"

#include <charconv>
#include <cmath>

#include "formats/text.h"

namespace scisearch::formats {

const Metadata* FindPath(const Metadata& root, std::initializer_list<std::string_view> path) {
  const Metadata* node = &root;
  for (std::string_view key : path) {
    if (!node->is_object()) return nullptr;
    auto it = node->find(std::string(key));
    if (it == node->end()) return nullptr;
    node = &*it;
  }
  return node;
}

std::optional<std::string> FindText(const Metadata& root,
                                    std::initializer_list<std::string_view> path) {
  const Metadata* node = FindPath(root, path);
  if (node == nullptr) return std::nullopt;
  if (node->is_number()) return node->dump();
  if (!node->is_string()) return std::nullopt;
  const std::string_view text = TrimSpace(node->get_ref<const std::string&>());
  if (text.empty()) return std::nullopt;
  return std::string(text);
}

std::optional<double> FindNumber(const Metadata& root,
                                 std::initializer_list<std::string_view> path) {
  const Metadata* node = FindPath(root, path);
  if (node == nullptr || !node->is_number()) return std::nullopt;
  const double value = node->get<double>();
  if (!std::isfinite(value)) return std::nullopt;
  return value;
}

std::optional<double> NumberOrLeadingNumber(const Metadata& value) {
  if (value.is_number()) {
    const double d = value.get<double>();
    if (!std::isfinite(d)) return std::nullopt;
    return d;
  }
  if (!value.is_string()) return std::nullopt;
  const std::string_view text = TrimSpace(value.get_ref<const std::string&>());
  double d = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), d);
  if (ec != std::errc() || end == text.data() || !std::isfinite(d)) return std::nullopt;
  return d;
}

Metadata FiniteOrNull(double value) {
  return std::isfinite(value) ? Metadata(value) : Metadata(nullptr);
}

}  // namespace scisearch::formats
