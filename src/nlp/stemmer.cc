#include "nlp/stemmer.h"

#include <libstemmer.h>

#include <utility>

namespace scisearch::nlp {
namespace {

// Longer "words" are URLs, base64 or binary noise: stemming them buys nothing and
// libstemmer takes an int length.
constexpr size_t kMaxStemmedBytes = 1024;

}  // namespace

Result<Stemmer> Stemmer::English() {
  sb_stemmer* handle = sb_stemmer_new("english", "UTF_8");
  if (handle == nullptr) {
    return Status::Internal("libstemmer: cannot create the English (UTF-8) stemmer");
  }
  return Stemmer(handle);
}

Stemmer::Stemmer(Stemmer&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}

Stemmer& Stemmer::operator=(Stemmer&& other) noexcept {
  if (this != &other) {
    if (handle_ != nullptr) sb_stemmer_delete(handle_);
    handle_ = std::exchange(other.handle_, nullptr);
  }
  return *this;
}

Stemmer::~Stemmer() {
  if (handle_ != nullptr) sb_stemmer_delete(handle_);
}

std::string Stemmer::Stem(std::string_view word) const {
  if (handle_ == nullptr || word.empty() || word.size() > kMaxStemmedBytes) {
    return std::string(word);
  }
  const sb_symbol* stem = sb_stemmer_stem(handle_, reinterpret_cast<const sb_symbol*>(word.data()),
                                          static_cast<int>(word.size()));
  if (stem == nullptr) return std::string(word);  // libstemmer ran out of memory
  return std::string(reinterpret_cast<const char*>(stem),
                     static_cast<size_t>(sb_stemmer_length(handle_)));
}

}  // namespace scisearch::nlp
