// English word stemming through Snowball (Debian's libstemmer): "microscopes",
// "microscopy" and "microscope" meet at one stem, so that counts and matches see
// one word where a writer used several forms.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

struct sb_stemmer;  // libstemmer's handle (libstemmer.h), kept out of this header

namespace scisearch::nlp {

// Owns one Snowball stemmer. Movable, not copyable.
//
// Thread safety: an instance keeps its working buffer inside the C stemmer, so one
// instance must be used by one thread at a time; make one per thread (they are cheap:
// a few hundred bytes).
class Stemmer {
 public:
  // The Snowball "english" (Porter 2) stemmer over UTF-8 input. Fails with kInternal
  // only when libstemmer cannot create it (out of memory, a build without English).
  static Result<Stemmer> English();

  Stemmer(Stemmer&& other) noexcept;
  Stemmer& operator=(Stemmer&& other) noexcept;
  Stemmer(const Stemmer&) = delete;
  Stemmer& operator=(const Stemmer&) = delete;
  ~Stemmer();

  // The stem of `word`, which should be one lowercase word ("running" -> "run",
  // "microscopies" -> "microscopi"). Snowball lowercases nothing itself: "Running"
  // stems as written. The empty word, a word over 1 KiB (no stem worth computing) and
  // a word libstemmer fails on are returned unchanged.
  std::string Stem(std::string_view word) const;

 private:
  explicit Stemmer(sb_stemmer* handle) : handle_(handle) {}

  sb_stemmer* handle_;  // owned; null only in a moved-from instance
};

}  // namespace scisearch::nlp
