// The domain vocabulary of electron microscopy: the concepts experts tag with and
// the surface forms people write for each (HAADF = high-angle annular dark field,
// PbSe = lead selenide, STO = SrTiO3 = strontium titanate).
//
// This header is the interface of the vocabulary. The vocabulary is compiled into
// the program (immutable data); the search index uses it for synonyms, the text
// enrichers for keyphrases and tags.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace scisearch::nlp {

enum class ConceptKind {
  kTechnique,  // imaging or analysis technique / operating mode
  kDetector,
  kMaterial,  // compounds and materials (elements are in the chemistry tables)
  kMorphology,
  kQuality,  // how an image looks: atomic resolution, drift, beam damage
};

struct Concept {
  std::string_view id;     // stable, lowercase ASCII: "haadf"; the index term is built from it
  std::string_view label;  // how a tag shows it: "HAADF"
  ConceptKind kind;
  // Every way of writing it, lowercase, words separated by single spaces, hyphens
  // written as spaces ("high angle annular dark field"); the label's own form included.
  std::vector<std::string_view> forms;
  // For a material that no formula names (an alloy, a zeolite, a framework): the
  // symbols of its principal elements ("Fe", "Cr", "Ni", "Mo" for 316L steel).
  // Empty otherwise: a formula's elements come from the chemistry rules.
  std::vector<std::string_view> composition = {};
};

// Every concept of the vocabulary, in a fixed order. The returned span refers to
// static data: valid for the life of the program, callable from any thread.
std::span<const Concept> DomainVocabulary();

// Lowercases ASCII letters and turns every run of characters other than ASCII
// letters and digits into one space, trimmed: "High-angle annular dark-field" ->
// "high angle annular dark field". Bytes of other scripts (UTF-8) are kept as they
// are. The form in which Concept::forms are written and matched.
std::string NormaliseForMatching(std::string_view text);

// The words of `text` between single spaces (empty words skipped), as views into
// `text`: the words of a NormaliseForMatching result.
std::vector<std::string_view> SplitWords(std::string_view text);

// The ids of the concepts whose forms occur in `text` (whole words, after
// NormaliseForMatching), each once, in vocabulary order.
std::vector<std::string_view> FindConcepts(std::string_view text);

// A fingerprint of the vocabulary's contents (16 hex digits): it changes whenever
// a concept or form does, so that derived data (the index's synonyms) knows to refresh.
std::string VocabularyFingerprint();

}  // namespace scisearch::nlp
