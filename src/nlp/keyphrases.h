// Keyphrase extraction: the few phrases of a text that say what it is about
// ("wavelength services", "annular dark field imaging"), ranked.
//
// Unsupervised, in the spirit of SingleRank/PositionRank (a random walk over the
// graph of co-occurring words, biased to words that come early), YAKE (local
// statistics of each word: frequency, spread over sentences, casing) and TF-IDF
// against the facility's own corpus (a PhraseStatistics). Candidates are
// noun-phrase-like runs of 1-4 words bounded by punctuation, stop words and words
// that cannot begin or end an English noun phrase; candidates with the same
// Snowball stems ("grain boundaries", "grain boundary") are one candidate. A phrase
// the text writes as a whole noun phrase outranks a piece cut out of a longer one
// ("adaptive wavelet transform", not "adaptive wavelet"). Terms of the domain
// vocabulary (vocabulary.h) get a bonus. Letters of Latin, Greek and Cyrillic script
// are compared without case; abstract-database markup ("Al/sub 2/O/sub 3/") is no word.
//
// Everything here is deterministic: the same text and corpus give the same ranking
// on every machine.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/status.h"
#include "nlp/stemmer.h"

namespace scisearch::nlp {

struct Keyphrase {
  // As the text writes it (its most frequent written form, whitespace folded; a
  // capital that only starts a sentence is lowercased). Valid UTF-8.
  std::string phrase;
  // Higher is better. Comparable only between phrases of one extraction.
  double score = 0;
};

namespace keyphrase_internal {
// How often a word follows a verb marker ("to", "we", "can" ...) and a noun-phrase
// marker ("the", "of" ...). Internal to keyphrases.cc.
struct ContextCounts {
  uint32_t after_verb_marker = 0;
  uint32_t after_noun_marker = 0;
};
}  // namespace keyphrase_internal

// Document frequencies over a corpus: in how many texts each word (by stem) and
// each candidate phrase (by its stems) occurs. Gives the extractor its IDF, so a
// phrase every proposal of a facility uses ("electron microscopy") ranks below one
// that marks this text out.
//
// Movable, not copyable. Not thread-safe: its methods stem with its own Stemmer, so
// one thread at a time. Extractors on several threads may read one PhraseStatistics
// at once (Extract stems nothing with it) while none of its methods is running.
class PhraseStatistics {
 public:
  // An empty corpus. Fails only when the stemmer cannot be created (Stemmer::English).
  static Result<PhraseStatistics> Create();

  // Counts `text` (any bytes; invalid UTF-8 is skipped) as one more document.
  void Add(std::string_view text);

  // The number of Add() calls so far.
  size_t document_count() const { return document_count_; }

  // The number of documents containing `word` (any form of it: it is stemmed here).
  size_t WordDocumentFrequency(std::string_view word) const;

  // The number of documents with `phrase` (any forms of its words, e.g. "grain
  // boundaries" for "grain boundary") among their candidate phrases.
  size_t PhraseDocumentFrequency(std::string_view phrase) const;

 private:
  friend class KeyphraseExtractor;
  explicit PhraseStatistics(Stemmer stemmer) : stemmer_(std::move(stemmer)) {}

  // Keys: a stem's or stem sequence's 64-bit fingerprint (see keyphrases.cc).
  size_t Frequency(const std::unordered_map<uint64_t, uint32_t>& table, uint64_t key) const;

  Stemmer stemmer_;
  size_t document_count_ = 0;
  std::unordered_map<uint64_t, uint32_t> word_documents_;
  std::unordered_map<uint64_t, uint32_t> phrase_documents_;
  // By stem key: tells verbs from nouns without a tagger (see ContextCounts).
  std::unordered_map<uint64_t, keyphrase_internal::ContextCounts> word_contexts_;
};

// Ranks the keyphrases of texts. Movable, not copyable. Not thread-safe (it owns a
// Stemmer): use one extractor per thread.
class KeyphraseExtractor {
 public:
  // Fails only when the stemmer cannot be created (Stemmer::English).
  static Result<KeyphraseExtractor> Create();

  // At most `top` keyphrases of `text`, best first, no two with the same stems and
  // none a word-for-word part of a better one that occurs no more often. `corpus`
  // (may be null: then every word is taken as equally rare) gives the IDF and the
  // evidence that tells verbs from nouns; `text`
  // itself need not be in it. Any bytes are accepted: invalid UTF-8 and control
  // characters separate words; an empty text, or one with no candidate, gives an empty
  // list. Time and memory grow linearly with the text (10 MB take a few seconds).
  std::vector<Keyphrase> Extract(std::string_view text, const PhraseStatistics* corpus,
                                 size_t top) const;

 private:
  KeyphraseExtractor(Stemmer stemmer, std::vector<uint64_t> vocabulary)
      : stemmer_(std::move(stemmer)), vocabulary_(std::move(vocabulary)) {}

  Stemmer stemmer_;
  // Fingerprints of the stems of every domain vocabulary form, sorted (see keyphrases.cc).
  std::vector<uint64_t> vocabulary_;
};

}  // namespace scisearch::nlp
