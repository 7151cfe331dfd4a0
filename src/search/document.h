// The index's schema: how a catalog item becomes a Xapian document, and the term
// prefixes and value slots the query side reads back. Internal to src/search.
//
// Terms (Xapian's conventions: unprefixed and "Z"-stemmed terms for free text):
//   free text   title, path words, tags, normalised fields, metadata text, linked texts
//   S           title                      (title:)
//   XP          path words                 (path:)
//   XA          PI and authors             (pi:, author:)
//   XI          instrument                 (instrument:)
//   XD          detector                   (detector:)
//   XT          tags                       (tag:)
//   XE<f><words> the exact value of field XI, XA, XD or XT (f = I, A, D, T), boolean: its
//               words as the field's terms hold them, joined by ' ' ("XEIfei titan
//               themis"); a phrase given to the field is answered from these
//               (ExactValueWords)
//   XC<id>      a vocabulary concept the item mentions (the target of synonyms)
//   K<kind>     kind, boolean              (kind:)
//   XF<format>  file format, boolean       (format:)
//   XM<mode>    operating mode, boolean    (mode:), spaces as '-'
//   Y<year>     year, boolean              (year:)
//   Q<item id>  the item's unique id term
#pragma once

#include <xapian.h>

#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "catalog/catalog.h"

namespace scisearch::search::internal {

// Value slots. Numbers are Xapian::sortable_serialise()d.
enum Slot : Xapian::valueno {
  kDate = 0,  // seconds since the Unix epoch
  kMagnification = 1,
  kVoltage = 2,    // kV
  kPixelSize = 3,  // metres (or 1/m in diffraction)
  kFacets = 4,     // PackFacets
};

// The facets of an item, in the order of kFacetNames.
inline constexpr const char* kFacetNames[] = {"kind", "instrument", "pi", "year",
                                              "mode", "format",     "tag"};
inline constexpr size_t kFacetCount = std::size(kFacetNames);
inline constexpr size_t kTagFacet = kFacetCount - 1;

// Packs one value per facet (tags: any number, in the last) into the kFacets value,
// so that counting facets reads one value per matching item: the values joined by
// '\x1e', the tags among themselves by '\x1f'.
std::string PackFacets(const std::vector<std::string>& single_values,
                       const std::vector<std::string>& tags);

// Calls visit(facet index, value) for each non-empty value of a packed kFacets value.
template <typename Visit>
void UnpackFacets(std::string_view packed, Visit&& visit) {
  size_t facet = 0;
  size_t start = 0;
  for (size_t i = 0; i <= packed.size() && facet < kFacetCount; ++i) {
    const bool end_of_value =
        i == packed.size() || packed[i] == '\x1e' || (facet == kTagFacet && packed[i] == '\x1f');
    if (!end_of_value) continue;
    if (i > start) visit(facet, packed.substr(start, i - start));
    if (i < packed.size() && packed[i] == '\x1e') ++facet;
    start = i + 1;
  }
}

// Metadata keys of the index (Xapian user metadata).
inline constexpr const char* kSequenceKey = "scisearch.catalog_sequence";
inline constexpr const char* kVocabularyKey = "scisearch.vocabulary";
inline constexpr const char* kCatalogIdKey = "scisearch.catalog_id";
// The format of the index's documents (kIndexFormat): an index of another format is
// rebuilt by UpdateIndex, and the Searcher answers it without what it lacks.
inline constexpr const char* kFormatKey = "scisearch.index_format";
// 4: exact values of tags too. 3: word-pair terms (AddWordPairs). 2: exact-value terms
// (AddExactValueTerm). 1 (no key): before them.
inline constexpr int kIndexFormat = 4;
// The first formats with exact-value terms, with word-pair terms and with exact tags.
inline constexpr int kExactValuesFormat = 2;
inline constexpr int kWordPairsFormat = 3;
inline constexpr int kExactTagsFormat = 4;
// Xapian refuses longer terms.
inline constexpr size_t kMaxTermBytes = 245;

// The index format `db` declares (kFormatKey), 1 when it declares none. Throws
// Xapian::Error as the database does.
int IndexFormat(const Xapian::Database& db);

// The catalog change sequence `db` has applied (its kSequenceKey), 0 when none or
// unreadable: re-applying every change is harmless. Throws Xapian::Error as the
// database does.
int64_t AppliedSequence(const Xapian::Database& db);

// The item id of a dataset ("dataset:<id>") and of a document (its own id), and
// the catalog's change item of each ("dataset:<id>", "document:<id>").
std::string DatasetItemId(int64_t dataset_id);

// Every item carries one boolean term "XS<bucket>", its bucket drawn from a hash
// of its id: facet counts over a large result set are made exactly over the items
// of a few buckets (an unbiased sample) and scaled.
inline constexpr int kSampleBuckets = 64;
std::string SampleTerm(int bucket);
int SampleBucket(const std::string& item_id);
std::string UniqueTerm(const std::string& item_id);

// What a dataset's document shows of its proposal and session (looked up once per
// proposal by the indexer).
struct LinkedContext {
  std::string pi;
  std::string proposal_title;
  std::string proposal_text;  // the abstract
  std::vector<std::string> publication_titles;
  std::string session_text;  // the log entry's notes
};

// The stored data of a document (JSON), read back for hits.
struct StoredItem {
  std::string id;
  std::string kind;
  std::string title;
  std::string path;
  std::string date;
  std::string summary;
  std::string text;  // what snippets are cut from
  std::vector<std::string> tags;
  int64_t dataset_id = 0;
};
std::string EncodeStoredItem(const StoredItem& item);
// Never fails: a damaged record reads as an item with what could be read.
StoredItem DecodeStoredItem(const std::string& data);

// The Xapian document of a dataset ("ok" state) with its linked context.
// `generator` must have its database set when spelling data is wanted.
Xapian::Document MakeDatasetDocument(const catalog::DatasetRow& dataset,
                                     const LinkedContext& context,
                                     Xapian::TermGenerator& generator);

// The Xapian document of a catalog document.
Xapian::Document MakeTextDocument(const catalog::DocumentRecord& document,
                                  Xapian::TermGenerator& generator);

// Seconds since the Unix epoch of an ISO 8601 date or time ("2011-10-13",
// "2011-10-13T14:03:12", with an optional zone); nullopt when it is not one.
std::optional<double> IsoToEpochSeconds(const std::string& iso);

// The exact-value term prefix of a free-text field prefix that has one ("XI" -> "XEI",
// "XA" -> "XEA", "XD" -> "XED", "XT" -> "XET"); "" for any other prefix.
std::string ExactValuePrefix(std::string_view field_prefix);

// The first index format whose documents hold the exact-value terms of the field of
// `field_prefix` (kExactTagsFormat for "XT", kExactValuesFormat for the others that have
// them): an older index answers that field's phrases from positions.
int ExactValuesFormat(std::string_view field_prefix);

// The words of `value` as a field's terms hold them (Xapian::TermGenerator's words,
// lowercased, unstemmed), in order, joined by ' '; nullopt when they cannot stand for
// a phrase match: a word the generator skipped (so the positions have a gap) or a
// term too long for Xapian.
std::optional<std::string> ExactValueWords(const std::string& value);

// Adds to `doc` the exact-value term of `value` in the field of `field_prefix` ("XI",
// "XA", "XD", "XT"); when its words cannot be one, the field's marker term (the bare exact
// prefix, "XEI"), which tells the query side to check that field's phrases by position.
void AddExactValueTerm(Xapian::Document& doc, std::string_view field_prefix,
                       const std::string& value);

// The word-pair term of two free-text terms that stand next to each other
// ("low", "dose" -> "XBlow dose"); longer than kMaxTermBytes for long words, and then
// never indexed.
std::string WordPairTerm(std::string_view first, std::string_view second);

// Adds to `doc` the word-pair term of every two free-text (unprefixed) terms at
// neighbouring positions, read from `doc`'s own positions: exactly the pairs a two-word
// phrase matches, however Xapian's term generator split the text. A phrase query is then
// answered from them instead of from the positions of every item holding its words. Call
// once all text is indexed.
void AddWordPairs(Xapian::Document& doc);

// The term of a mode name ("stem image" -> "XMstem-image").
std::string ModeTerm(std::string_view mode_name);

}  // namespace scisearch::search::internal
