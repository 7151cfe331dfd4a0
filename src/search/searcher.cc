// Searching the index: query parsing, ranking, facets, hit explanations.
#include <xapian.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <future>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <system_error>
#include <unordered_map>

#include "formats/text.h"
#include "nlp/vocabulary.h"
#include "search/document.h"
#include "search/query_syntax.h"
#include "search/search.h"

namespace scisearch::search {
namespace {

using internal::Slot;

constexpr size_t kMaxQueryBytes = 8192;

// Xapian keeps a writer's last committed revision and the one before: a reader
// whose revision two commits discard gets DatabaseModifiedError, and its remedy
// is to reopen on the newest and read again. Tags saved in the web UI commit
// often, so a read may have to; this many in a row means the index is churning.
constexpr int kModifiedAttempts = 10;

// Returns what `read` returns, calling `recover` (a Status) and `read` again while `read`
// throws DatabaseModifiedError, kModifiedAttempts times in all; then kIoError. `read`
// turns every other error into its result.
template <typename Read, typename Recover>
auto WhileModified(Read read, Recover recover) -> decltype(read()) {
  for (int attempt = 1;; ++attempt) {
    try {
      return read();
    } catch (const Xapian::DatabaseModifiedError& e) {
      if (attempt == kModifiedAttempts) {
        return Status::IoError("the search index changed under " +
                               std::to_string(kModifiedAttempts) +
                               " reads in a row: " + e.get_msg());
      }
    }
    SCISEARCH_RETURN_IF_ERROR(recover());
  }
}

// Values shown per facet.
constexpr size_t kFacetTop = 10;
// A query of two to this many words asks for items with every word (then those
// with some); longer queries (pasted text, descriptions) rank items on any word.
constexpr int kMaxAllWordsQuery = 6;

// BM25 at its textbook parameters: on CISI (bench/ir_eval.sh) k1 = 1.6 would
// gain a little, too little to risk over-fitting one collection.
constexpr double kBm25K1 = 1.2;
constexpr double kBm25B = 0.75;
// Pseudo-relevance feedback: the 30 most telling terms of the best 5 first-pass
// hits join the query at up to 0.7 of a query word's weight (chosen on CISI: +8%
// MAP, +3% nDCG@10 over plain BM25; bench/ir_eval.sh).
constexpr Xapian::doccount kFeedbackDocs = 5;
constexpr Xapian::termcount kFeedbackTerms = 30;
constexpr double kFeedbackWeight = 0.7;

// Words too common to require or to rank on.
const std::vector<std::string>& StopWords() {
  static const std::vector<std::string> words = {
      "a",       "about",      "all",      "also",       "an",        "and",      "any",
      "are",     "as",         "at",       "be",         "been",      "but",      "by",
      "can",     "could",      "did",      "do",         "does",      "for",      "from",
      "had",     "has",        "have",     "how",        "i",         "if",       "in",
      "into",    "is",         "it",       "its",        "may",       "me",       "more",
      "most",    "my",         "no",       "not",        "of",        "on",       "one",
      "only",    "or",         "other",    "our",        "out",       "over",     "own",
      "same",    "should",     "so",       "some",       "such",      "than",     "that",
      "the",     "their",      "them",     "then",       "there",     "these",    "they",
      "this",    "those",      "through",  "to",         "too",       "under",    "up",
      "us",      "very",       "was",      "we",         "were",      "what",     "when",
      "where",   "which",      "while",    "who",        "whom",      "why",      "will",
      "with",    "would",      "you",      "your",       "want",      "wish",     "interested",
      "please",  "find",       "show",     "concerning", "regarding", "dealing",  "relating",
      "related", "discussing", "describe", "describing", "discuss",   "anything", "something",
      "etc",     "e.g",        "i.e"};
  return words;
}

// A field processor whose errors are kept for the caller of parse_query, which
// checks them after each parse. (An exception thrown through QueryParser leaks
// its parse state.)
class CheckedField : public Xapian::FieldProcessor {
 public:
  // `error` outlives the processor (the QueryParser holding it).
  explicit CheckedField(std::string* error) : error_(error) {}

 protected:
  // Records the first error of a parse; the field matches nothing meanwhile.
  Xapian::Query Reject(const Status& status) {
    if (error_->empty()) *error_ = status.message();
    return Xapian::Query::MatchNothing;
  }

 private:
  std::string* error_;
};

Xapian::Query AnyTerm(const std::vector<std::string>& terms) {
  return Xapian::Query(Xapian::Query::OP_OR, terms.begin(), terms.end());
}

// mode: the operating mode, by its name or what people call it.
class ModeField : public CheckedField {
 public:
  using CheckedField::CheckedField;
  Xapian::Query operator()(const std::string& text) override {
    std::string key = formats::AsciiLower(text);
    std::replace(key.begin(), key.end(), '_', ' ');
    std::replace(key.begin(), key.end(), '-', ' ');
    static const std::map<std::string, std::vector<std::string>> kAliases = {
        {"tem", {"tem image"}},
        {"stem", {"stem image"}},
        {"sem", {"sem image"}},
        {"haadf", {"stem image"}},
        {"image", {"tem image", "stem image", "sem image", "optical image", "image"}},
        {"diff", {"diffraction"}},
        {"saed", {"diffraction"}},
        {"cbed", {"diffraction"}},
        {"eds", {"spectrum", "spectrum image"}},
        {"edx", {"spectrum", "spectrum image"}},
        {"eels", {"spectrum", "spectrum image"}},
        {"spectra", {"spectrum"}},
        {"si", {"spectrum image"}},
        {"map", {"spectrum image"}},
        {"4dstem", {"4d stem"}},
        {"tomogram", {"volume"}},
        {"tomography", {"volume"}},
        {"optical", {"optical image"}},
    };
    std::vector<std::string> names;
    if (auto it = kAliases.find(key); it != kAliases.end()) {
      names = it->second;
    } else {
      names = {key};
    }
    std::vector<std::string> terms;
    for (std::string name : names) {
      if (name == "4d stem") name = "4d-stem";
      if (!formats::ModeFromName(name)) {
        return Reject(Status::InvalidArgument(
            "mode: '" + text +
            "' is not a mode (tem, stem, sem, diffraction, spectrum, spectrum-image, 4d-stem, "
            "volume, optical, image)"));
      }
      terms.push_back(internal::ModeTerm(name));
    }
    return AnyTerm(terms);
  }
};

// kind: dataset, proposal, publication or log (plurals too).
class KindField : public CheckedField {
 public:
  using CheckedField::CheckedField;
  Xapian::Query operator()(const std::string& text) override {
    std::string kind = formats::AsciiLower(text);
    if (kind.size() > 1 && kind.back() == 's') kind.pop_back();
    if (kind == "file" || kind == "data") kind = "dataset";
    if (kind == "paper") kind = "publication";
    if (kind != "dataset" && kind != "proposal" && kind != "publication" && kind != "log") {
      return Reject(Status::InvalidArgument("kind: '" + text +
                                            "' is not one of dataset, proposal, publication, log"));
    }
    return Xapian::Query("K" + kind);
  }
};

// format: a file format by its name or extension.
class FormatField : public Xapian::FieldProcessor {
 public:
  Xapian::Query operator()(const std::string& text) override {
    std::string format = formats::AsciiLower(text);
    if (!format.empty() && format.front() == '.') format.erase(0, 1);
    static const std::map<std::string, std::vector<std::string>> kAliases = {
        {"ser", {"tia"}},
        {"emi", {"tia"}},
        {"tif", {"tiff"}},
        {"dm", {"dm3", "dm4"}},
        {"emd", {"emd-velox", "emd-berkeley"}},
        {"velox", {"emd-velox"}},
        {"berkeley", {"emd-berkeley"}},
        {"h5", {"emd-berkeley"}},
        {"map", {"mrc"}},
        {"jpeg", {"jpg", "jpeg"}},
        {"jpg", {"jpg", "jpeg"}},
    };
    std::vector<std::string> names = {format};
    if (auto it = kAliases.find(format); it != kAliases.end()) names = it->second;
    std::vector<std::string> terms;
    for (const std::string& name : names) terms.push_back("XF" + name);
    return AnyTerm(terms);
  }
};

// The facet values, sample bucket and numeric values (kDate .. kPixelSize) of every item
// of one revision of the index, in memory. Counting facets over thousands of matches
// reads them by document id, and a range filter tests an item's value by document id;
// reading each item's value from the index instead costs a B-tree look-up per item, most
// of the time of a faceted or ranged query over a large result set. Built in one
// sequential read of the value streams and the sample-bucket postings (~0.6 s and ~75 MB
// at a million items).
class ItemTable {
 public:
  static constexpr uint8_t kNoBucket = 0xff;

  // Reads `db` as of its current revision. Throws Xapian::Error as the database does.
  explicit ItemTable(const Xapian::Database& db)
      : revision_(db.get_revision()), size_(Xapian::docid(db.get_lastdocid()) + 1) {
    single_.assign(size_t(size_) * kSingleFacets, 0);
    tag_begin_.assign(size_t(size_) + 1, 0);
    buckets_.assign(size_, kNoBucket);
    std::unordered_map<std::string, uint32_t> ordinals[internal::kFacetCount];
    auto ordinal = [&](size_t facet, std::string_view value) {
      auto [it, added] = ordinals[facet].try_emplace(std::string(value), 0);
      if (added) {
        values_[facet].emplace_back(value);
        it->second = uint32_t(values_[facet].size());  // 1-based: 0 is "no value"
      }
      return it->second;
    };
    Xapian::docid next_tag_doc = 0;  // tag_begin_ is filled up to here
    for (Xapian::ValueIterator it = db.valuestream_begin(internal::kFacets);
         it != db.valuestream_end(internal::kFacets); ++it) {
      const Xapian::docid did = it.get_docid();
      if (did >= size_) break;
      for (; next_tag_doc <= did; ++next_tag_doc) tag_begin_[next_tag_doc] = uint32_t(tags_.size());
      internal::UnpackFacets(*it, [&](size_t facet, std::string_view value) {
        if (facet == internal::kTagFacet) {
          tags_.push_back(ordinal(facet, value));
        } else {
          single_[size_t(did) * kSingleFacets + facet] = ordinal(facet, value);
        }
      });
    }
    for (; next_tag_doc <= size_; ++next_tag_doc) tag_begin_[next_tag_doc] = uint32_t(tags_.size());
    for (Xapian::valueno slot = 0; slot < kNumberSlots; ++slot) {
      std::vector<double>& column = numbers_[slot];
      column.assign(size_, std::numeric_limits<double>::quiet_NaN());
      for (Xapian::ValueIterator it = db.valuestream_begin(slot); it != db.valuestream_end(slot);
           ++it) {
        if (it.get_docid() >= size_) break;
        column[it.get_docid()] = Xapian::sortable_unserialise(*it);
        ++value_counts_[slot];
      }
    }
    for (int b = 0; b < internal::kSampleBuckets; ++b) {
      const std::string term = internal::SampleTerm(b);
      for (Xapian::PostingIterator it = db.postlist_begin(term); it != db.postlist_end(term);
           ++it) {
        if (*it < size_) buckets_[*it] = uint8_t(b);
        ++bucket_sizes_[b];
      }
    }
  }

  Xapian::rev revision() const { return revision_; }
  // One past the highest document id the table knows.
  Xapian::docid size() const { return size_; }
  uint8_t bucket(Xapian::docid did) const { return did < size_ ? buckets_[did] : kNoBucket; }
  // Items in buckets 0 .. buckets-1.
  Xapian::doccount InBuckets(int buckets) const {
    Xapian::doccount n = 0;
    for (int b = 0; b < std::min(buckets, internal::kSampleBuckets); ++b) n += bucket_sizes_[b];
    return n;
  }
  // Values of `facet` by ordinal - 1.
  const std::vector<std::string>& values(size_t facet) const { return values_[facet]; }

  // Whether `slot` is one of the numeric columns (kDate .. kPixelSize).
  static bool HasColumn(Xapian::valueno slot) { return slot < kNumberSlots; }
  // The value of item `did` in numeric slot `slot` (HasColumn), NaN when it has none.
  double number(Xapian::valueno slot, Xapian::docid did) const {
    return did < size_ ? numbers_[slot][did] : std::numeric_limits<double>::quiet_NaN();
  }
  // Items with a value in numeric slot `slot` (HasColumn).
  Xapian::doccount ValueCount(Xapian::valueno slot) const { return value_counts_[slot]; }

  // Calls visit(facet index, ordinal) for each value of item `did` (ordinals are 1-based).
  template <typename Visit>
  void ForEachValue(Xapian::docid did, Visit&& visit) const {
    if (did >= size_) return;
    const uint32_t* single = &single_[size_t(did) * kSingleFacets];
    for (size_t f = 0; f < kSingleFacets; ++f) {
      if (single[f] != 0) visit(f, single[f]);
    }
    for (uint32_t i = tag_begin_[did]; i < tag_begin_[did + 1]; ++i) {
      visit(internal::kTagFacet, tags_[i]);
    }
  }

 private:
  static constexpr size_t kSingleFacets = internal::kFacetCount - 1;  // all but the tags
  static constexpr Xapian::valueno kNumberSlots = internal::kPixelSize + 1;

  Xapian::rev revision_;
  Xapian::docid size_;
  std::vector<std::string> values_[internal::kFacetCount];
  std::vector<uint32_t> single_;     // [did * kSingleFacets + facet]: ordinal, 0 = none
  std::vector<uint32_t> tag_begin_;  // the tags of did: tags_[tag_begin_[did], tag_begin_[did+1])
  std::vector<uint32_t> tags_;
  std::vector<uint8_t> buckets_;  // by did; kNoBucket when the item has none
  Xapian::doccount bucket_sizes_[internal::kSampleBuckets] = {};
  std::vector<double> numbers_[kNumberSlots];  // by did; NaN when the item has no value
  Xapian::doccount value_counts_[kNumberSlots] = {};
};

// The items of sample buckets [first, end) (internal::SampleTerm) as a posting list read
// from an ItemTable: the same items as the OR of those buckets' terms, without merging up
// to 64 posting lists. The table must outlive the source and every clone.
class SampleSource : public Xapian::PostingSource {
 public:
  SampleSource(const ItemTable& table, int first, int end)
      : table_(table),
        first_(first),
        end_(end),
        count_(table.InBuckets(end) - table.InBuckets(first)) {}

  Xapian::doccount get_termfreq_min() const override { return count_; }
  Xapian::doccount get_termfreq_est() const override { return count_; }
  Xapian::doccount get_termfreq_max() const override { return count_; }
  void init(const Xapian::Database&) override { did_ = 0; }
  void next(double) override { Advance(did_ + 1); }
  void skip_to(Xapian::docid did, double) override {
    if (did > did_) Advance(did);
  }
  bool at_end() const override { return did_ >= table_.size(); }
  Xapian::docid get_docid() const override { return did_; }
  Xapian::PostingSource* clone() const override { return new SampleSource(table_, first_, end_); }
  std::string get_description() const override {
    return "SampleSource(buckets " + std::to_string(first_) + ".." + std::to_string(end_) + ")";
  }

 private:
  // Moves to the first item at or after `did` in the sample.
  void Advance(Xapian::docid did) {
    while (did < table_.size() && (table_.bucket(did) < first_ || table_.bucket(did) >= end_)) {
      ++did;
    }
    did_ = did;
  }

  const ItemTable& table_;
  const int first_, end_;
  const Xapian::doccount count_;
  Xapian::docid did_ = 0;
};

// Every document id from `floor` to `last`: the items indexed last (ids grow as items
// are added; a rebuild adds them in the order the catalog changed them).
class RecentSource : public Xapian::PostingSource {
 public:
  RecentSource(Xapian::docid floor, Xapian::docid last) : floor_(floor), last_(last) {}

  Xapian::doccount get_termfreq_min() const override { return 0; }
  Xapian::doccount get_termfreq_est() const override { return Count(); }
  Xapian::doccount get_termfreq_max() const override { return Count(); }
  void init(const Xapian::Database&) override { did_ = 0; }
  void next(double) override { did_ = std::max(did_ + 1, floor_); }
  void skip_to(Xapian::docid did, double) override { did_ = std::max({did_, did, floor_}); }
  bool at_end() const override { return did_ > last_; }
  Xapian::docid get_docid() const override { return did_; }
  Xapian::PostingSource* clone() const override { return new RecentSource(floor_, last_); }
  std::string get_description() const override {
    return "RecentSource(" + std::to_string(floor_) + ".." + std::to_string(last_) + ")";
  }

 private:
  Xapian::doccount Count() const { return last_ >= floor_ ? last_ - floor_ + 1 : 0; }

  const Xapian::docid floor_, last_;
  Xapian::docid did_ = 0;
};

// The items whose value in numeric slot `slot` lies in [low, high], read from an
// ItemTable's column: the same items as OP_VALUE_RANGE (or _GE, _LE) on the
// sortable_serialise()d bounds, tested by document id in memory. Its estimate of the
// matches comes from every 64th item (Xapian's value range guesses half the index).
// The table must outlive the source and every clone.
class RangeSource : public Xapian::PostingSource {
 public:
  RangeSource(const ItemTable& table, Xapian::valueno slot, double low, double high)
      : RangeSource(table, slot, Comparable(low), Comparable(high), /*est=*/0) {
    constexpr Xapian::docid kStride = 64;
    Xapian::doccount sampled = 0, in_range = 0;
    for (Xapian::docid did = 1; did < table.size(); did += kStride) {
      ++sampled;
      if (Matches(did)) ++in_range;
    }
    if (sampled > 0) {
      const double share = double(in_range) / double(sampled);
      est_ = std::min(max_, Xapian::doccount(std::llround(share * double(table.size() - 1))));
    }
  }

  Xapian::doccount get_termfreq_min() const override { return 0; }
  Xapian::doccount get_termfreq_est() const override { return est_; }
  Xapian::doccount get_termfreq_max() const override { return max_; }
  void init(const Xapian::Database&) override {
    did_ = 0;
    on_match_ = true;
  }
  void next(double) override { Advance(did_ + 1); }
  void skip_to(Xapian::docid did, double) override {
    if (did > did_) {
      Advance(did);
    } else if (!on_match_) {
      Advance(did_ + 1);
    }
  }
  // An item is tested in place; when it does not match, the position is `did`, off
  // any match (Xapian's "indeterminate" position), and next() goes on from there.
  bool check(Xapian::docid did, double) override {
    did_ = did;
    on_match_ = Matches(did);
    return on_match_;
  }
  bool at_end() const override { return did_ >= table_.size(); }
  Xapian::docid get_docid() const override { return did_; }
  Xapian::PostingSource* clone() const override {
    return new RangeSource(table_, slot_, low_, high_, est_);
  }
  std::string get_description() const override {
    return "RangeSource(slot " + std::to_string(slot_) + ", " + std::to_string(low_) + ".." +
           std::to_string(high_) + ")";
  }

  // Serialisation, so that a query holding ranges can be rebuilt, with sources of its
  // own, for another thread (Xapian's queries and sources are not thread-safe). The
  // form is this process's: it is never stored. A registry that knows Prototype(table)
  // rebuilds the source over `table`.
  static RangeSource Prototype(const ItemTable& table) {
    return RangeSource(table, 0, 0, 0, /*est=*/0);
  }
  std::string name() const override { return "scisearch.RangeSource"; }
  std::string serialise() const override {
    const Fields fields{slot_, low_, high_, est_};
    return std::string(reinterpret_cast<const char*>(&fields), sizeof(fields));
  }
  RangeSource* unserialise(const std::string& serialised) const override {
    Fields fields;
    if (serialised.size() != sizeof(fields)) {
      throw Xapian::SerialisationError("RangeSource: bad serialised form");
    }
    std::memcpy(&fields, serialised.data(), sizeof(fields));
    return new RangeSource(table_, fields.slot, fields.low, fields.high, fields.est);
  }

 private:
  struct Fields {
    Xapian::valueno slot;
    double low, high;
    Xapian::doccount est;
  };

  RangeSource(const ItemTable& table, Xapian::valueno slot, double low, double high,
              Xapian::doccount est)
      : table_(table),
        slot_(slot),
        low_(low),
        high_(high),
        max_(table.ValueCount(slot)),
        est_(est) {}

  // `bound` as the index compares values: through sortable_serialise().
  static double Comparable(double bound) {
    return Xapian::sortable_unserialise(Xapian::sortable_serialise(bound));
  }

  bool Matches(Xapian::docid did) const {
    const double value = table_.number(slot_, did);
    return value >= low_ && value <= high_;  // false for NaN: no value
  }
  // Moves to the first match at or after `did`.
  void Advance(Xapian::docid did) {
    while (did < table_.size() && !Matches(did)) ++did;
    did_ = did;
    on_match_ = true;  // or at the end
  }

  const ItemTable& table_;
  const Xapian::valueno slot_;
  const double low_, high_;
  const Xapian::doccount max_;
  Xapian::doccount est_;
  Xapian::docid did_ = 0;
  bool on_match_ = true;  // false after a check() that found no match
};

// A range on a numeric slot: tested from the Searcher's item table when it has one
// (RangeSource), else by Xapian from the index's values; the same items either way.
class RangeField : public CheckedField {
 public:
  // `*table` is read at each parse: the item table the current search uses, or
  // nullptr. `table` outlives the processor (both belong to the Searcher).
  RangeField(std::string* error, std::string field, Xapian::valueno slot, QuantityKind kind,
             const ItemTable* const* table)
      : CheckedField(error), field_(std::move(field)), slot_(slot), kind_(kind), table_(table) {}

  Xapian::Query operator()(const std::string& text) override {
    Result<NumericRange> range = ParseRange(field_, text, kind_);
    if (!range.ok()) return Reject(range.status());
    const bool low_open = std::isinf(range->low);
    const bool high_open = std::isinf(range->high);
    if (low_open && high_open) return Xapian::Query::MatchAll;
    if (*table_ != nullptr && ItemTable::HasColumn(slot_)) {
      return Xapian::Query((new RangeSource(**table_, slot_, range->low, range->high))->release());
    }
    if (low_open) {
      return Xapian::Query(Xapian::Query::OP_VALUE_LE, slot_,
                           Xapian::sortable_serialise(range->high));
    }
    if (high_open) {
      return Xapian::Query(Xapian::Query::OP_VALUE_GE, slot_,
                           Xapian::sortable_serialise(range->low));
    }
    return Xapian::Query(Xapian::Query::OP_VALUE_RANGE, slot_,
                         Xapian::sortable_serialise(range->low),
                         Xapian::sortable_serialise(range->high));
  }

 private:
  std::string field_;
  Xapian::valueno slot_;
  QuantityKind kind_;
  const ItemTable* const* table_;
};

// Counts the facet values of every item the matcher looks at: from `table` when given
// (which must be of the searched revision), else from each item's packed kFacets value.
class FacetSpy : public Xapian::MatchSpy {
 public:
  explicit FacetSpy(const ItemTable* table) : table_(table) {
    if (table_ != nullptr) {
      for (size_t f = 0; f < internal::kFacetCount; ++f) {
        ordinal_counts_[f].assign(table_->values(f).size() + 1, 0);
      }
    }
  }

  void operator()(const Xapian::Document& doc, double) override {
    ++seen_;
    if (table_ != nullptr) {
      table_->ForEachValue(doc.get_docid(), [this](size_t facet, uint32_t ordinal) {
        ++ordinal_counts_[facet][ordinal];
      });
      return;
    }
    const std::string packed = doc.get_value(internal::kFacets);
    internal::UnpackFacets(packed, [this](size_t facet, std::string_view value) {
      auto& counts = counts_[facet];
      if (auto it = counts.find(value); it != counts.end()) {
        ++it->second;
      } else {
        counts.emplace(std::string(value), 1);
      }
    });
  }
  Xapian::MatchSpy* clone() const override { return new FacetSpy(table_); }
  std::string name() const override { return "scisearch.FacetSpy"; }

  // The facets, each value's count multiplied by `scale`, top `top` values each.
  std::vector<Facet> Facets(double scale, size_t top) const {
    std::vector<Facet> facets;
    for (size_t f = 0; f < internal::kFacetCount; ++f) {
      Facet facet;
      facet.name = internal::kFacetNames[f];
      for (const auto& [value, count] : counts_[f]) {
        facet.values.push_back({value, std::llround(count * scale)});
      }
      for (size_t ordinal = 1; ordinal < ordinal_counts_[f].size(); ++ordinal) {
        if (const int64_t count = ordinal_counts_[f][ordinal]; count > 0) {
          facet.values.push_back({table_->values(f)[ordinal - 1], std::llround(count * scale)});
        }
      }
      const auto by_count = [](const FacetValue& a, const FacetValue& b) {
        return a.count != b.count ? a.count > b.count : a.value < b.value;
      };
      if (facet.values.size() > top) {
        std::partial_sort(facet.values.begin(), facet.values.begin() + long(top),
                          facet.values.end(), by_count);
        facet.values.resize(top);
      } else {
        std::sort(facet.values.begin(), facet.values.end(), by_count);
      }
      facets.push_back(std::move(facet));
    }
    return facets;
  }
  int64_t seen() const { return seen_; }

 private:
  // Looked up by string_view, without making a string per value.
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view text) const { return std::hash<std::string_view>()(text); }
  };
  using Counts = std::unordered_map<std::string, int64_t, Hash, std::equal_to<>>;
  const ItemTable* table_;
  Counts counts_[internal::kFacetCount];                        // without a table
  std::vector<int64_t> ordinal_counts_[internal::kFacetCount];  // with one, by ordinal
  int64_t seen_ = 0;
};

// Expansion terms: plain and stemmed words only (no ids, no boolean fields), and
// not too short to mean anything.
class WordDecider : public Xapian::ExpandDecider {
 public:
  bool operator()(const std::string& term) const override {
    if (term.size() < 3) return false;
    size_t start = term[0] == 'Z' ? 1 : 0;
    for (size_t i = start; i < term.size(); ++i) {
      const unsigned char c = term[i];
      if (c >= 'A' && c <= 'Z') return false;  // a prefix
    }
    // Numbers (sequence numbers, dates) make poor expansion terms.
    return !std::all_of(term.begin() + long(start), term.end(),
                        [](unsigned char c) { return c >= '0' && c <= '9'; });
  }
};

// The field a matched term came from, by its prefix.
MatchReason ReasonOf(const std::string& stored_term) {
  // A stemmed fielded word is "Z" + prefix + stem ("ZXTtwin").
  const bool stemmed_field = stored_term.size() > 2 && stored_term[0] == 'Z' &&
                             stored_term[1] >= 'A' && stored_term[1] <= 'Z';
  const std::string term = stemmed_field ? stored_term.substr(1) : stored_term;
  static const std::pair<const char*, const char*> kPrefixes[] = {
      {"XC", "concept"},  {"XP", "path"}, {"XA", "pi"},     {"XI", "instrument"},
      {"XD", "detector"}, {"XT", "tag"},  {"XF", "format"}, {"XM", "mode"},
      {"S", "title"},     {"K", "kind"},  {"Y", "year"},    {"Z", "text"}};
  for (const auto& [prefix, field] : kPrefixes) {
    const size_t n = std::char_traits<char>::length(prefix);
    if (term.size() > n && term.compare(0, n, prefix) == 0) {
      std::string value = term.substr(n);
      if (std::string_view(prefix) == "XC") {
        for (const nlp::Concept& c : nlp::DomainVocabulary()) {
          if (c.id == value) value = std::string(c.label);
        }
      }
      return {field, value};
    }
  }
  return {"text", term};
}

// The whitespace-separated words of `text` that are not "field:value" (filters
// and ranges are no words to match all of).
int CountWords(std::string_view text) {
  int words = 0;
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = std::min(text.find_first_of(" \t\n\r", start), text.size());
    if (end > start && text.substr(start, end - start).find(':') == std::string_view::npos) {
      ++words;
    }
    start = end + 1;
  }
  return words;
}

}  // namespace

// The exact values of one field (internal::AddExactValueTerm) in one revision.
struct ExactValues {
  // Whether every value of the field has its exact term (no marker term, and an index
  // of a format that has them).
  bool complete = false;
  std::vector<std::string> padded_words;  // each value's words, " fei titan themis "
};

// The total and facet counts of a result set.
struct FacetCount {
  int64_t total = 0;
  bool exact = true;  // else scaled from a sample of the index
  std::vector<Facet> facets;
};

// What a pass (or the terms' statistics alone) tells of the number of matches.
struct MatchBounds {
  double lower = 0, estimated = 0, upper = 0;
};

MatchBounds BoundsOf(const Xapian::MSet& mset) {
  return {double(mset.get_matches_lower_bound()), double(mset.get_matches_estimated()),
          double(mset.get_matches_upper_bound())};
}

void SetFacets(FacetCount count, Results& results) {
  results.total = count.total;
  results.total_exact = count.exact;
  results.facets_approximate = !count.exact;
  results.facets = std::move(count.facets);
}

class Searcher::Impl {
 public:
  // `db` searches; `counting_db`, a second handle on the same index, counts facets on
  // another thread while `db` ranks (Xapian's handles are not thread-safe).
  Impl(catalog::Catalog& catalog, Xapian::Database db, Xapian::Database counting_db)
      : catalog_(catalog), db_(std::move(db)), counting_db_(std::move(counting_db)) {
    stemmer_ = Xapian::Stem("english");
    stopper_ = std::make_unique<Xapian::SimpleStopper>(StopWords().begin(), StopWords().end());
    parser_.set_database(db_);
    parser_.set_stemmer(stemmer_);
    parser_.set_stemming_strategy(Xapian::QueryParser::STEM_SOME);
    parser_.set_stopper(stopper_.get());
    parser_.add_prefix("title", "S");
    parser_.add_prefix("path", "XP");
    parser_.add_prefix("pi", "XA");
    parser_.add_prefix("author", "XA");
    parser_.add_prefix("instrument", "XI");
    parser_.add_prefix("detector", "XD");
    parser_.add_prefix("tag", "XT");
    parser_.add_boolean_prefix("year", "Y");
    parser_.add_boolean_prefix("mode", (new ModeField(&field_error_))->release());
    parser_.add_boolean_prefix("kind", (new KindField(&field_error_))->release());
    parser_.add_boolean_prefix("format", (new FormatField())->release());
    const std::string unique;  // an empty grouping: every range is its own filter (ANDed)
    for (const auto& [name, slot, kind] : RangeFields()) {
      parser_.add_boolean_prefix(
          name, (new RangeField(&field_error_, name, slot, kind, &search_table_))->release(),
          &unique);
    }
  }

  struct RangeFieldSpec {
    std::string name;
    Xapian::valueno slot;
    QuantityKind kind;
  };
  static const std::vector<RangeFieldSpec>& RangeFields() {
    static const std::vector<RangeFieldSpec> fields = {
        {"mag", internal::kMagnification, QuantityKind::kMagnification},
        {"magnification", internal::kMagnification, QuantityKind::kMagnification},
        {"voltage", internal::kVoltage, QuantityKind::kVoltage},
        {"kv", internal::kVoltage, QuantityKind::kVoltage},
        {"energy", internal::kVoltage, QuantityKind::kVoltage},
        {"ht", internal::kVoltage, QuantityKind::kVoltage},
        {"pixel", internal::kPixelSize, QuantityKind::kLength},
        {"pixelsize", internal::kPixelSize, QuantityKind::kLength},
        {"date", internal::kDate, QuantityKind::kDate},
    };
    return fields;
  }
  static const std::vector<std::string>& RangeFieldNames() {
    static const std::vector<std::string> names = [] {
      std::vector<std::string> out;
      for (const auto& f : RangeFields()) out.push_back(f.name);
      return out;
    }();
    return names;
  }

  Result<Results> Search(const Query& query) {
    return OnNewestRevision([&] { return SearchOnce(query); });
  }

  Result<Results> MoreLikeThis(const std::string& id, int64_t limit, const std::string& kind) {
    return OnNewestRevision([&] { return MoreLikeThisOnce(id, limit, kind); });
  }

  Result<int64_t> Lag() {
    SCISEARCH_ASSIGN_OR_RETURN(int64_t latest, catalog_.ChangeSequence());
    return OnNewestRevision([&]() -> Result<int64_t> {
      try {
        return std::max<int64_t>(0, latest - internal::AppliedSequence(db_));
      } catch (const Xapian::DatabaseModifiedError&) {
        throw;  // OnNewestRevision's
      } catch (const Xapian::Error& e) {
        return Status::IoError("reading the search index: " + e.get_msg());
      }
    });
  }

  // Brings both handles to the index's newest revision.
  Status Reopen() {
    return WhileModified(
        [&] {
          try {
            db_.reopen();
            counting_db_.reopen();
            return Status::Ok();
          } catch (const Xapian::DatabaseModifiedError&) {
            throw;  // WhileModified's
          } catch (const Xapian::Error& e) {
            return Status::IoError("reopening the search index: " + e.get_msg());
          }
        },
        [] { return Status::Ok(); });
  }

 private:
  // Returns what `read` (a read of the index through db_ and counting_db_) returns,
  // reading again on the newest revision when a writer's commits discarded the
  // revision it was reading (Xapian's DatabaseModifiedError, which `read` lets through).
  template <typename Read>
  auto OnNewestRevision(Read read) -> decltype(read()) {
    return WhileModified(read, [&] { return Reopen(); });
  }

  Result<Results> SearchOnce(const Query& query) {
    const auto start = std::chrono::steady_clock::now();
    if (query.text.size() > kMaxQueryBytes) {
      return Status::InvalidArgument("query is " + std::to_string(query.text.size()) +
                                     " bytes long; the limit is " + std::to_string(kMaxQueryBytes));
    }
    if (query.limit < 0 || query.offset < 0) {
      return Status::InvalidArgument("query offset and limit must not be negative");
    }
    Results results;
    results.query = query.text;
    try {
      counting_in_step_ = CountingInStep();
      search_table_ = ItemTableFor(query.facets);
      const std::string text = RewriteComparisons(query.text, RangeFieldNames());
      const bool full = query.ranking == Ranking::kFull;
      const int words = CountWords(text);
      std::string corrected = SuggestSpelling(query.text);
      results.corrected = corrected;
      if (full && words > 1 && words <= kMaxAllWordsQuery) {
        // A short query means items with every word: they are what the total and
        // facets count. A page they do not fill goes on with items that have some
        // of the words; when none has them all, the query is read as any word.
        SCISEARCH_ASSIGN_OR_RETURN(Xapian::Query all, Parse(text, Xapian::Query::OP_AND, full));
        SCISEARCH_ASSIGN_OR_RETURN(Xapian::Query all_of_kind, WithKind(all, query.kind));
        SCISEARCH_RETURN_IF_ERROR(
            Run(all_of_kind, query, false, false, RankScope::kRecentWhenBroad, results));
        if (results.total > 0) {
          const int64_t shown = int64_t(results.hits.size());
          if (shown < query.limit && !IsMatchAll(all)) {
            SCISEARCH_ASSIGN_OR_RETURN(Xapian::Query any, Parse(text, Xapian::Query::OP_OR, full));
            SCISEARCH_ASSIGN_OR_RETURN(
                Xapian::Query some_of_kind,
                WithKind(Xapian::Query(Xapian::Query::OP_AND_NOT, any, all), query.kind));
            Query rest = query;
            rest.offset = std::max<int64_t>(0, query.offset - results.total);
            rest.limit = query.limit - shown;
            rest.facets = false;
            Results more;
            SCISEARCH_RETURN_IF_ERROR(
                Run(some_of_kind, rest, false, false, RankScope::kRecentWhenBroad, more));
            for (Hit& hit : more.hits) {
              hit.rank = query.offset + int64_t(results.hits.size()) + 1;
              results.hits.push_back(std::move(hit));
            }
          }
          results.seconds =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
          return results;
        }
        SCISEARCH_ASSIGN_OR_RETURN(Xapian::Query any, Parse(text, Xapian::Query::OP_OR, full));
        if (any.get_description() == all.get_description()) {
          // One phrase (or one word with filters): reading it as any word changes nothing.
          results.seconds =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
          return results;
        }
        results = Results();
        results.query = query.text;
        results.corrected = std::move(corrected);
      }
      SCISEARCH_ASSIGN_OR_RETURN(Xapian::Query parsed, Parse(text, Xapian::Query::OP_OR, full));
      SCISEARCH_ASSIGN_OR_RETURN(Xapian::Query filtered, WithKind(parsed, query.kind));
      SCISEARCH_RETURN_IF_ERROR(Run(filtered, query, full, words > kMaxAllWordsQuery,
                                    RankScope::kRecentWhenBroad, results));
    } catch (const Xapian::QueryParserError& e) {
      return Status::InvalidArgument(e.get_msg());
    } catch (const Xapian::DatabaseModifiedError&) {
      throw;  // OnNewestRevision's
    } catch (const Xapian::Error& e) {
      return Status::IoError(std::string("search index: ") + e.get_type() + ": " + e.get_msg());
    }
    results.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return results;
  }

  Result<Results> MoreLikeThisOnce(const std::string& id, int64_t limit, const std::string& kind) {
    const auto start = std::chrono::steady_clock::now();
    Results results;
    results.query = "like:" + id;
    try {
      search_table_ = ItemTableFor(/*faceted=*/false);
      const std::string unique = internal::UniqueTerm(id);
      Xapian::PostingIterator it = db_.postlist_begin(unique);
      if (it == db_.postlist_end(unique))
        return Status::NotFound("no item " + id + " in the index");
      Xapian::RSet relevant;
      relevant.add_document(*it);
      Xapian::Enquire enquire(db_);
      WordDecider words;
      Xapian::ESet terms = enquire.get_eset(30, relevant, &words);
      std::vector<Xapian::Query> parts;
      for (Xapian::ESetIterator t = terms.begin(); t != terms.end(); ++t) {
        parts.emplace_back(Xapian::Query::OP_SCALE_WEIGHT, Xapian::Query(*t), t.get_weight());
      }
      if (parts.empty()) return results;
      Xapian::Query like(Xapian::Query::OP_OR, parts.begin(), parts.end());
      like = Xapian::Query(Xapian::Query::OP_AND_NOT, like, Xapian::Query(unique));
      SCISEARCH_ASSIGN_OR_RETURN(Xapian::Query filtered, WithKind(like, kind));
      Query query;
      query.limit = limit;
      query.facets = false;
      SCISEARCH_RETURN_IF_ERROR(
          Run(filtered, query, /*feedback=*/false, false, RankScope::kAll, results));
    } catch (const Xapian::DatabaseModifiedError&) {
      throw;  // OnNewestRevision's
    } catch (const Xapian::Error& e) {
      return Status::IoError(std::string("search index: ") + e.get_type() + ": " + e.get_msg());
    }
    results.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return results;
  }

  // Parses `text` (comparisons already rewritten) with `default_op` between
  // words. kInvalidArgument for a field value that cannot be read.
  Result<Xapian::Query> Parse(const std::string& text, Xapian::Query::op default_op,
                              bool synonyms) {
    if (!HasSearchableWords(text)) return Xapian::Query(Xapian::Query::MatchAll);
    parser_.set_default_op(default_op);
    unsigned flags = Xapian::QueryParser::FLAG_DEFAULT | Xapian::QueryParser::FLAG_PURE_NOT;
    if (synonyms) {
      flags |= Xapian::QueryParser::FLAG_AUTO_SYNONYMS |
               Xapian::QueryParser::FLAG_AUTO_MULTIWORD_SYNONYMS;
    }
    Xapian::Query parsed;
    field_error_.clear();
    try {
      parsed = parser_.parse_query(RequireFields(text), flags);
    } catch (const Xapian::QueryParserError&) {
      // A dangling operator ("gold AND"): read the text as plain words.
      field_error_.clear();
      parsed = parser_.parse_query(
          text, flags & ~(Xapian::QueryParser::FLAG_BOOLEAN | Xapian::QueryParser::FLAG_LOVEHATE |
                          Xapian::QueryParser::FLAG_PURE_NOT));
    }
    if (!field_error_.empty()) return Status::InvalidArgument(field_error_);
    if (parsed.empty()) return Xapian::Query(Xapian::Query::MatchAll);
    bool changed = false;
    Xapian::Query exact = WithExactValues(parsed, changed);
    return changed ? exact : parsed;
  }

  // `query` with each phrase given to a field that has exact-value terms
  // (instrument:"FEI Titan", pi:"Peter Ercius") answered from those terms: the
  // phrase's words ANDed (the same weight as the phrase) and filtered by the OR of the
  // field's exact values that hold the phrase ("fei titan" -> "fei titan", "fei titan
  // themis"), instead of reading the words' positions in every item that has them
  // all. The same items match. Phrases under operators whose parameters cannot be read
  // back (OP_SCALE_WEIGHT, OP_ELITE_SET) or whose weight depends on their
  // subqueries' statistics (OP_SYNONYM, OP_MAX) are left as they are. `changed`:
  // whether anything was replaced.
  Xapian::Query WithExactValues(const Xapian::Query& query, bool& changed) {
    using Q = Xapian::Query;
    const Q::op type = query.get_type();
    if (type == Q::OP_PHRASE) {
      bool exact = false;
      Q answered = ExactPhrase(query, exact);
      if (!exact) answered = PairedPhrase(query, exact);
      changed = changed || exact;
      return answered;
    }
    if (type != Q::OP_AND && type != Q::OP_OR && type != Q::OP_AND_NOT && type != Q::OP_XOR &&
        type != Q::OP_AND_MAYBE && type != Q::OP_FILTER) {
      return query;
    }
    std::vector<Q> subqueries;
    bool any = false;
    for (size_t i = 0; i < query.get_num_subqueries(); ++i) {
      subqueries.push_back(WithExactValues(query.get_subquery(i), any));
    }
    if (!any) return query;
    changed = true;
    return Q(type, subqueries.begin(), subqueries.end());
  }

  // One phrase of WithExactValues: replaced when all its words are terms of one field
  // with exact values and some values hold it.
  Xapian::Query ExactPhrase(const Xapian::Query& phrase, bool& changed) {
    using Q = Xapian::Query;
    std::vector<Q> words;
    std::string field;   // "XI"
    std::string needle;  // " fei titan "
    for (size_t i = 0; i < phrase.get_num_subqueries(); ++i) {
      Q word = phrase.get_subquery(i);
      if (word.get_type() != Q::LEAF_TERM) return phrase;
      const std::string term = *word.get_terms_begin();
      // The field's prefix, then a word (not another prefix's capital).
      if (term.size() < 3 || (term[2] >= 'A' && term[2] <= 'Z')) return phrase;
      const std::string prefix = term.substr(0, 2);
      if (i == 0) field = prefix;
      if (prefix != field || internal::ExactValuePrefix(prefix).empty()) return phrase;
      needle += " " + term.substr(2);
      words.push_back(std::move(word));
    }
    needle += ' ';
    // Only an exact phrase: one whose window is its length. (ADJ/3 makes a phrase with
    // a wider window; Xapian::Query shows the window only in its description.)
    if (Q(Q::OP_PHRASE, words.begin(), words.end()).get_description() != phrase.get_description()) {
      return phrase;
    }
    const ExactValues& values = ExactValuesOf(field);
    if (!values.complete) return phrase;
    const std::string exact_prefix = internal::ExactValuePrefix(field);
    std::vector<Q> holding;
    for (const std::string& padded : values.padded_words) {
      if (padded.find(needle) != std::string::npos) {
        holding.emplace_back(exact_prefix + padded.substr(1, padded.size() - 2));
      }
    }
    if (holding.empty()) return phrase;  // it matches nothing: no faster way to say so
    changed = true;
    return Q(Q::OP_FILTER, Q(Q::OP_AND, words.begin(), words.end()),
             Q(Q::OP_OR, holding.begin(), holding.end()));
  }

  // One phrase of WithExactValues in free text (unprefixed words), answered from word-pair
  // terms (internal::AddWordPairs) when the index has them: two words become their AND
  // (the phrase's weight) filtered by their pair, so no position is read; a longer phrase
  // keeps its position check, over the items that hold all its pairs. The same items match.
  Xapian::Query PairedPhrase(const Xapian::Query& phrase, bool& changed) {
    using Q = Xapian::Query;
    if (internal::IndexFormat(db_) < internal::kWordPairsFormat) return phrase;
    std::vector<Q> words;
    std::vector<Q> pairs;
    std::string previous;
    for (size_t i = 0; i < phrase.get_num_subqueries(); ++i) {
      Q word = phrase.get_subquery(i);
      if (word.get_type() != Q::LEAF_TERM) return phrase;
      std::string term = *word.get_terms_begin();
      if (term.empty() || (term[0] >= 'A' && term[0] <= 'Z')) return phrase;  // a prefix
      if (i > 0) {
        const std::string pair = internal::WordPairTerm(previous, term);
        if (pair.size() > internal::kMaxTermBytes) return phrase;  // never indexed
        pairs.emplace_back(pair);
      }
      previous = std::move(term);
      words.push_back(std::move(word));
    }
    // Only an exact phrase: one whose window is its length (see ExactPhrase).
    if (words.size() < 2 ||
        Q(Q::OP_PHRASE, words.begin(), words.end()).get_description() != phrase.get_description()) {
      return phrase;
    }
    changed = true;
    const Q all_pairs(Q::OP_AND, pairs.begin(), pairs.end());
    if (words.size() == 2) {
      return Q(Q::OP_FILTER, Q(Q::OP_AND, words.begin(), words.end()), all_pairs);
    }
    return Q(Q::OP_FILTER, phrase, all_pairs);
  }

  // The exact values of field `field` ("XI") in the index, read once per revision.
  const ExactValues& ExactValuesOf(const std::string& field) {
    const Xapian::rev revision = db_.get_revision();
    if (revision != exact_values_revision_) {
      exact_values_.clear();
      exact_values_revision_ = revision;
    }
    auto [it, added] = exact_values_.try_emplace(field);
    ExactValues& values = it->second;
    if (!added) return values;
    // An index of an older format has no exact-value terms (of tags, or of any field).
    values.complete = internal::IndexFormat(db_) >= internal::ExactValuesFormat(field);
    const std::string prefix = internal::ExactValuePrefix(field);
    for (Xapian::TermIterator t = db_.allterms_begin(prefix);
         values.complete && t != db_.allterms_end(prefix); ++t) {
      const std::string term = *t;
      if (term == prefix) values.complete = false;  // the marker: a value without its term
      values.padded_words.push_back(" " + term.substr(prefix.size()) + " ");
    }
    return values;
  }

  // Whether `text` has anything to search for beyond stop words ("the" alone
  // browses everything, as the empty query does).
  bool HasSearchableWords(const std::string& text) const {
    if (text.find(':') != std::string::npos) return true;
    const std::string words = nlp::NormaliseForMatching(text);
    for (size_t start = 0; start < words.size();) {
      size_t end = words.find(' ', start);
      if (end == std::string::npos) end = words.size();
      if (!(*stopper_)(words.substr(start, end - start))) return true;
      start = end + 1;
    }
    return false;
  }

  // Words given to a field must hold: "oxide pi:ercius" is Ercius's items, oxide
  // ones first. Marks each such field "+" (required) unless the query has its own
  // boolean operators, which then say what is required.
  static std::string RequireFields(const std::string& text) {
    static const char* const kFields[] = {"pi",  "author", "instrument", "detector",
                                          "tag", "title",  "path"};
    for (const char* op : {"AND", "OR", "NOT", "XOR", "NEAR", "ADJ"}) {
      const std::string padded = std::string(" ") + op + " ";
      if ((" " + text + " ").find(padded) != std::string::npos) return text;
    }
    std::string out;
    bool in_quote = false;
    for (size_t i = 0; i < text.size(); ++i) {
      const bool token_start = i == 0 || text[i - 1] == ' ' || text[i - 1] == '(';
      if (!in_quote && token_start) {
        for (const char* field : kFields) {
          const size_t n = std::char_traits<char>::length(field);
          if (text.size() > i + n && text[i + n] == ':' &&
              formats::AsciiLower(text.substr(i, n)) == field) {
            out.push_back('+');
            break;
          }
        }
      }
      if (text[i] == '"') in_quote = !in_quote;
      out.push_back(text[i]);
    }
    return out;
  }

  // "Did you mean": the query with each word the index does not know (as typed
  // or stemmed) replaced by the closest known word; "" when every word is known.
  // (QueryParser's own correction also "corrects" words that exist.)
  std::string SuggestSpelling(const std::string& text) {
    static const std::set<std::string> kOperators = {"AND", "OR", "NOT", "XOR", "NEAR", "ADJ"};
    std::string out;
    bool changed = false;
    size_t start = 0;
    while (start < text.size()) {
      const size_t space = text.find_first_of(" \t", start);
      const size_t end = space == std::string::npos ? text.size() : space;
      std::string token = text.substr(start, end - start);
      const size_t first = token.find_first_not_of("(+-\"");
      const size_t last = token.find_last_not_of(")\"");
      if (first != std::string::npos && last != std::string::npos && first <= last &&
          token.find(':') == std::string::npos) {
        const std::string core = token.substr(first, last - first + 1);
        const bool letters = core.size() >= 3 && std::all_of(core.begin(), core.end(), [](char c) {
                               return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
                             });
        const std::string lower = formats::AsciiLower(core);
        if (letters && !kOperators.count(core) && !stopper_->operator()(lower) &&
            !db_.term_exists(lower) && !db_.term_exists("Z" + stemmer_(lower))) {
          // One edit for short words, two for longer: "gold" is not "tld".
          const std::string suggestion =
              db_.get_spelling_suggestion(lower, lower.size() <= 4 ? 1 : 2);
          if (!suggestion.empty()) {
            token = token.substr(0, first) + suggestion + token.substr(last + 1);
            changed = true;
          }
        }
      }
      out += token;
      if (end < text.size()) out += text[end];
      start = end + 1;
    }
    return changed ? out : "";
  }

  Result<Xapian::Query> WithKind(const Xapian::Query& query, const std::string& kind) {
    if (kind.empty()) return query;
    if (kind != "dataset" && kind != "proposal" && kind != "publication" && kind != "log") {
      return Status::InvalidArgument("kind '" + kind +
                                     "' is not one of dataset, proposal, publication, log");
    }
    return Xapian::Query(Xapian::Query::OP_FILTER, query, Xapian::Query("K" + kind));
  }

  // Adds the terms of the best first-pass hits, weighted down: they re-rank what
  // matched and bring in items that use other words for the same thing. The
  // query's filters (kind, ranges, boolean fields) and required or excluded words
  // hold for those too.
  Xapian::Query WithFeedback(const Xapian::Query& query) {
    Xapian::Enquire first(db_);
    first.set_query(query);
    first.set_weighting_scheme(Xapian::BM25Weight(kBm25K1, 0, 1, kBm25B, 0.5));
    Xapian::MSet top = first.get_mset(0, kFeedbackDocs);
    if (top.size() < 3) return query;
    Xapian::RSet relevant;
    for (Xapian::MSetIterator it = top.begin(); it != top.end(); ++it) relevant.add_document(*it);
    WordDecider words;
    Xapian::ESet terms = first.get_eset(kFeedbackTerms, relevant, &words);
    if (terms.empty()) return query;
    std::vector<Xapian::Query> parts;
    double max_weight = terms.begin().get_weight();
    for (Xapian::ESetIterator t = terms.begin(); t != terms.end(); ++t) {
      parts.emplace_back(Xapian::Query::OP_SCALE_WEIGHT, Xapian::Query(*t),
                         kFeedbackWeight * t.get_weight() / max_weight);
    }
    Xapian::Query expansion(Xapian::Query::OP_OR, parts.begin(), parts.end());
    Xapian::Query weighted = query;
    std::vector<Xapian::Query> filters;
    while (weighted.get_type() == Xapian::Query::OP_FILTER) {
      for (size_t i = 1; i < weighted.get_num_subqueries(); ++i) {
        filters.push_back(weighted.get_subquery(i));
      }
      weighted = weighted.get_subquery(0);
    }
    const Xapian::Query::op type = weighted.get_type();
    const bool any_word = type == Xapian::Query::LEAF_TERM || type == Xapian::Query::OP_OR ||
                          type == Xapian::Query::OP_SYNONYM || type == Xapian::Query::OP_ELITE_SET;
    Xapian::Query combined(any_word ? Xapian::Query::OP_OR : Xapian::Query::OP_AND_MAYBE, weighted,
                           expansion);
    if (filters.empty()) return combined;
    return Xapian::Query(Xapian::Query::OP_FILTER, combined,
                         Xapian::Query(Xapian::Query::OP_AND, filters.begin(), filters.end()));
  }

  // Which matches a ranked query ranks.
  enum class RankScope {
    kAll,
    kRecentWhenBroad,  // see Query::recent_matches
  };

  // Runs `query` into `results`; `feedback`: re-rank with the best hits' terms
  // (and, when `widen`, let them match too).
  Status Run(const Xapian::Query& query, const Query& request, bool feedback, bool widen,
             RankScope scope, Results& results) {
    Xapian::Enquire enquire(db_);
    const bool ranked = request.sort == SortOrder::kRelevance;
    Xapian::Query final_query = query;
    const bool has_words = query.get_length() > 0 && !IsMatchAll(query);
    // Feedback is for long queries (pasted text, descriptions), where it finds the
    // items that say the same in other words. A short query's own words decide: its
    // best hits' thirty other terms would outweigh them (a proposal's abstract lifting
    // its datasets above the file actually named so).
    if (feedback && widen && ranked && has_words && db_.get_doccount() > kFeedbackDocs) {
      final_query = WithFeedback(query);
    }
    enquire.set_query(final_query);
    enquire.set_weighting_scheme(Xapian::BM25Weight(kBm25K1, 0, 1, kBm25B, 0.5));
    // Items without a date come last either way: the key of a missing value sorts
    // below every date when newest come first, above every date otherwise.
    Xapian::MultiValueKeyMaker by_date;
    if (request.sort != SortOrder::kRelevance) {
      const bool newest = request.sort == SortOrder::kNewest;
      by_date.add_value(internal::kDate, newest, newest ? "" : std::string(16, '\xff'));
      enquire.set_sort_by_key_then_relevance(&by_date, false);
    }
    // Facets are counted in this pass, exactly, when it checks every match anyway: the
    // matcher is asked to check at least `facet_sample` items; a larger result set gets
    // a sampled second pass (CountFacets).
    const int64_t facet_sample = std::max<int64_t>(request.facet_sample, 1);
    const ItemTable* table = request.facets ? search_table_ : nullptr;
    // From the terms' statistics alone: no posting is read. The upper bound is what
    // ranking would look at (a phrase's estimate guesses how many of those hold it).
    const Xapian::MSet estimate = enquire.get_mset(0, 0);
    // A result set likely larger than the sample has its facets counted over a sample
    // of the index (CountFacets), on the other core while this thread ranks.
    std::future<FacetCount> counting;
    if (request.facets && double(estimate.get_matches_estimated()) > double(facet_sample)) {
      counting = CountFacetsAside(final_query, facet_sample, BoundsOf(estimate), table);
    }
    // The hits, then the facets counted aside (if any): the two overlap.
    const auto finish = [&](const Xapian::MSet& mset) {
      Status status = AddHits(enquire, mset, query, request, results);
      if (counting.valid()) SetFacets(counting.get(), results);
      return status;
    };
    if (ranked && scope == RankScope::kRecentWhenBroad) {
      std::optional<Xapian::MSet> recent;
      // The terms' statistics, then what the recent span showed.
      MatchBounds likely = BoundsOf(estimate);
      if (request.recent_matches > 0 &&
          int64_t(estimate.get_matches_upper_bound()) > 2 * request.recent_matches) {
        recent = RankRecent(enquire, final_query, request, estimate, likely);
      }
      if (recent) {
        results.ranked_recent = true;
        if (request.facets && !counting.valid()) {
          // The terms' statistics guessed a result set no larger than the sample, but the
          // span says otherwise (words that always meet, a range holding most of what
          // the words match): counted with the span's guess, aside while the hits are
          // made when it can be.
          if (likely.estimated > double(facet_sample)) {
            counting = CountFacetsAside(final_query, facet_sample, likely, table);
          }
          if (!counting.valid()) {
            SetFacets(CountFacets(db_, final_query, facet_sample, likely, table), results);
          }
        } else {
          results.total = estimate.get_matches_estimated();
          results.total_exact = false;
        }
        return finish(*recent);
      }
      enquire.set_query(final_query);
    }
    FacetSpy spy(table);
    Xapian::doccount check_at_least = 0;
    if (request.facets && !counting.valid()) {
      // Counted in this pass, exactly, when it checks every match anyway.
      enquire.add_matchspy(&spy);
      check_at_least = Xapian::doccount(std::min<int64_t>(facet_sample, db_.get_doccount()));
    }
    Xapian::MSet mset = enquire.get_mset(Xapian::doccount(request.offset),
                                         Xapian::doccount(request.limit), check_at_least);
    results.total = mset.get_matches_estimated();
    results.total_exact = mset.get_matches_lower_bound() == mset.get_matches_upper_bound();
    if (request.facets && !counting.valid()) {
      if (results.total_exact && spy.seen() == int64_t(mset.get_matches_lower_bound())) {
        results.total = spy.seen();
        results.facets = spy.Facets(1.0, kFacetTop);
        results.facets_approximate = false;
      } else {
        SetFacets(CountFacets(db_, final_query, facet_sample, BoundsOf(mset), table), results);
      }
    }
    return finish(mset);
  }

  // Whether counting_db_ sees the revision db_ does, after bringing it to the latest
  // (it is newer when the index changed since db_ was last reopened).
  bool CountingInStep() {
    if (counting_db_.get_revision() != db_.get_revision()) counting_db_.reopen();
    return counting_db_.get_revision() == db_.get_revision();
  }

  // Starts CountFacets of `query` on counting_db_, in a thread of its own, over a copy
  // of the query with sources of its own. An invalid future when it cannot (the two
  // handles see different revisions, or a part of the query cannot be copied): the
  // caller then counts on its own thread.
  std::future<FacetCount> CountFacetsAside(const Xapian::Query& query, int64_t sample,
                                           const MatchBounds& first, const ItemTable* table) {
    if (!counting_in_step_) return {};
    std::string serialised;
    try {
      serialised = query.serialise();
    } catch (const Xapian::Error&) {
      return {};
    }
    try {
      return std::async(std::launch::async, [&db = counting_db_, serialised = std::move(serialised),
                                             sample, first, table] {
        Xapian::Registry registry;
        if (table != nullptr) registry.register_posting_source(RangeSource::Prototype(*table));
        return CountFacets(db, Xapian::Query::unserialise(serialised, registry), sample, first,
                           table);
      });
    } catch (const std::system_error&) {  // no thread to be had
      return {};
    }
  }

  // Ranks the page `request` asks for among the items indexed last that `query` (whose
  // matches `estimate` estimates) matches: first over a span of document ids that
  // should hold request.recent_matches of them (more for a deep page), then, while the span
  // holds too few, over four times the span. Documents (proposals, publications, logs)
  // are ranked wherever they are. `enquire` is left set to the query that ranked.
  // nullopt when the span would have to be every item: the caller ranks every match.
  // `likely` is raised to what the last span counted, scaled to the whole index: the
  // terms' statistics can guess far too few, while a span that holds few matches says
  // little of the older items.
  std::optional<Xapian::MSet> RankRecent(Xapian::Enquire& enquire, const Xapian::Query& query,
                                         const Query& request, const Xapian::MSet& estimate,
                                         MatchBounds& likely) {
    const Xapian::docid last = db_.get_lastdocid();
    const double wanted =
        std::max(double(request.recent_matches), 2.0 * double(request.offset + request.limit));
    // Between the estimate (which can be far too low for a phrase) and the upper bound
    // (far too high for words that rarely meet).
    const double matches = std::sqrt(std::max<double>(estimate.get_matches_estimated(), 1) *
                                     std::max<double>(estimate.get_matches_upper_bound(), 1));
    double share = wanted / matches;
    while (share < 1) {
      const Xapian::docid span = Xapian::docid(std::ceil(share * last));
      const Xapian::docid floor = last - span + 1;
      const Xapian::Query recent((new RecentSource(floor, last))->release());
      const std::vector<Xapian::Query> in_scope = {
          recent, Xapian::Query("Kproposal"), Xapian::Query("Kpublication"), Xapian::Query("Klog")};
      enquire.set_query(
          Xapian::Query(Xapian::Query::OP_FILTER, query,
                        Xapian::Query(Xapian::Query::OP_OR, in_scope.begin(), in_scope.end())));
      // Checking half of what is wanted makes the count of those reliable (a phrase
      // is otherwise checked only where it could change the page).
      Xapian::MSet mset =
          enquire.get_mset(Xapian::doccount(request.offset), Xapian::doccount(request.limit),
                           Xapian::doccount(wanted / 2));
      likely.lower = std::max(likely.lower, double(mset.get_matches_lower_bound()));
      likely.estimated =
          std::clamp(std::max(likely.estimated, double(mset.get_matches_estimated()) * last / span),
                     likely.lower, std::max(likely.lower, likely.upper));
      if (double(mset.get_matches_lower_bound()) >= wanted / 2) return mset;
      share *= 4;
    }
    return std::nullopt;
  }

  // Appends the hits of `mset` (the page of `request`, found by `enquire` for `query`
  // before any feedback) to `results`.
  Status AddHits(Xapian::Enquire& enquire, const Xapian::MSet& mset, const Xapian::Query& query,
                 const Query& request, Results& results) {
    const bool ranked = request.sort == SortOrder::kRelevance;
    int64_t rank = request.offset;
    for (Xapian::MSetIterator it = mset.begin(); it != mset.end(); ++it) {
      const Xapian::Document doc = it.get_document();
      internal::StoredItem stored = internal::DecodeStoredItem(doc.get_data());
      Hit hit;
      hit.id = stored.id;
      hit.kind = stored.kind;
      hit.rank = ++rank;
      hit.score = ranked ? it.get_weight() : 0;
      hit.title = stored.title;
      hit.path = stored.path;
      hit.date = stored.date;
      hit.summary = stored.summary;
      hit.tags = stored.tags;
      hit.dataset_id = stored.dataset_id;
      hit.snippet =
          mset.snippet(stored.text, 240, stemmer_,
                       Xapian::MSet::SNIPPET_BACKGROUND_MODEL | Xapian::MSet::SNIPPET_EXHAUSTIVE,
                       "<b>", "</b>", "…");
      hit.matched = Explain(enquire, it, query, stored, results.query);
      results.hits.push_back(std::move(hit));
    }
    return Status::Ok();
  }

  // Counts the facets of the items `query` matches, which `first` (a pass, or the terms'
  // statistics) puts at more than `sample`: over the items of the first few sample
  // buckets (internal::SampleTerm: a hash of the item id, so an unbiased sample), scaled
  // to the total, computing no weights. The estimate in `first` can be far off (a
  // phrase's matches are guessed from a few checked items), so the buckets are taken in
  // two steps: a quarter of what that estimate asks for (at least two buckets), then,
  // when the sample holds too few items, as many more as its own count asks for. Each
  // step is a pass over the query's postings, and each bucket adds to it: counting what
  // the estimate asks for at once paid for its errors
  // (a tag whose two words always meet, estimated at a tenth of its 237,000 items:
  // 16 buckets where 4 do, 53 against 24 ms), a quarter alone took two passes for most
  // broad queries (estimated well, needing two buckets). At a million items the floor
  // of two took the mix's p99 from 21-24 to 21 ms, with the same totals.
  // A pass costs about the same for 1 bucket as for 10 (5-10 ms at a million items:
  // reading the postings is most of it), so a sample that holds three quarters of
  // `sample` items is taken as it is: a second pass for the last quarter (1.4% rather
  // than 1.6% standard error) was the slowest part of most broad queries.
  // The total is the sample's estimate (items seen / share of the index in the sample),
  // kept within `first`'s bounds.
  // Any thread, with a `db` and a `query` no other thread uses; `table` is read only.
  static FacetCount CountFacets(const Xapian::Database& db, const Xapian::Query& query,
                                int64_t sample, const MatchBounds& first, const ItemTable* table) {
    constexpr int kAll = internal::kSampleBuckets;
    const Xapian::Query counted(Xapian::Query::OP_SCALE_WEIGHT, query, 0);
    const double estimate = std::max(first.estimated, 1.0);
    const auto buckets_for = [&](double total) {
      return std::clamp(int(std::ceil(kAll * double(sample) / std::max(total, 1.0))), 1, kAll);
    };
    FacetSpy spy(table);
    int counted_buckets = 0;
    const int first_step = std::max(buckets_for(estimate) / 4, std::min(2, buckets_for(estimate)));
    for (int target : {first_step, 0}) {
      if (target == 0) {
        // The second step: as many buckets as the count so far asks for.
        if (4 * spy.seen() >= 3 * sample || counted_buckets == kAll) break;
        const double share = SampleShare(db, table, counted_buckets);
        target = spy.seen() == 0 ? kAll : buckets_for(double(spy.seen()) / share);
        if (target <= counted_buckets) break;
      }
      Xapian::Enquire counter(db);
      counter.set_query(Xapian::Query(Xapian::Query::OP_FILTER, counted,
                                      SampleQuery(table, counted_buckets, target)));
      counter.set_weighting_scheme(Xapian::BoolWeight());
      counter.add_matchspy(&spy);
      counter.get_mset(0, 0, db.get_doccount());
      counted_buckets = target;
    }
    FacetCount count;
    count.exact = counted_buckets == kAll;
    double total = double(spy.seen());
    if (!count.exact) {
      total = std::round(total / SampleShare(db, table, counted_buckets));
      total = std::clamp(total, first.lower, first.upper);
    }
    count.total = int64_t(total);
    const double scale = spy.seen() > 0 ? total / double(spy.seen()) : 1.0;
    count.facets = spy.Facets(scale, kFacetTop);
    return count;
  }

  // The items of sample buckets [first, end).
  static Xapian::Query SampleQuery(const ItemTable* table, int first, int end) {
    if (table != nullptr) return Xapian::Query((new SampleSource(*table, first, end))->release());
    std::vector<Xapian::Query> terms;
    for (int b = first; b < end; ++b) terms.emplace_back(internal::SampleTerm(b));
    return Xapian::Query(Xapian::Query::OP_OR, terms.begin(), terms.end());
  }

  // The share of the index's items in sample buckets [0, buckets).
  static double SampleShare(const Xapian::Database& db, const ItemTable* table, int buckets) {
    const double items = std::max<double>(db.get_doccount(), 1);
    if (table != nullptr) return std::max(double(table->InBuckets(buckets)), 1.0) / items;
    double in_sample = 0;
    for (int b = 0; b < buckets; ++b) in_sample += db.get_termfreq(internal::SampleTerm(b));
    return std::max(in_sample, 1.0) / items;
  }

  // The item table of the current revision for a search (`faceted`: one that counts
  // facets), built (or rebuilt after the index changed) at this Searcher's second
  // faceted search, so that a one-query Searcher (the command line) never pays for
  // it. nullptr: count facets and test ranges from the index.
  const ItemTable* ItemTableFor(bool faceted) {
    const Xapian::rev revision = db_.get_revision();
    if (item_table_ != nullptr && item_table_->revision() == revision) return item_table_.get();
    if (!faceted || ++faceted_searches_ < 2) return nullptr;
    item_table_.reset();  // the old one's memory first
    item_table_ = std::make_unique<ItemTable>(db_);
    return item_table_.get();
  }

  static bool IsMatchAll(const Xapian::Query& query) {
    return query.get_type() == Xapian::Query::LEAF_MATCH_ALL;
  }

  // The fields and tags through which the item matched the user's own query
  // (feedback terms are not reasons).
  std::vector<MatchReason> Explain(Xapian::Enquire& enquire, const Xapian::MSetIterator& it,
                                   const Xapian::Query& user_query,
                                   const internal::StoredItem& stored,
                                   const std::string& query_text) {
    std::set<std::string> query_terms(user_query.get_unique_terms_begin(),
                                      user_query.get_unique_terms_end());
    std::vector<MatchReason> reasons;
    std::set<std::pair<std::string, std::string>> seen;
    std::set<std::string> matched_words;  // stemmed, for finding the tags that matched
    std::map<std::string, std::string> word_of_stem;
    std::vector<std::string> terms;
    for (Xapian::TermIterator t = enquire.get_matching_terms_begin(it);
         t != enquire.get_matching_terms_end(it); ++t) {
      // Exact-value and word-pair terms stand for a phrase's words, which are reasons
      // themselves.
      if (query_terms.count(*t) && (*t).rfind("XE", 0) != 0 && (*t).rfind("XB", 0) != 0) {
        terms.push_back(*t);
      }
    }
    // Show the user's own words, not their stems.
    const std::string words = nlp::NormaliseForMatching(query_text);
    for (size_t start = 0; start < words.size();) {
      size_t end = words.find(' ', start);
      if (end == std::string::npos) end = words.size();
      const std::string word = words.substr(start, end - start);
      word_of_stem.emplace(stemmer_(word), word);
      start = end + 1;
    }
    for (const std::string& term : terms) {
      MatchReason reason = ReasonOf(term);
      if (reason.field == "text" || reason.field == "tag") {
        const std::string stem = term[0] == 'Z' ? reason.value : stemmer_(reason.value);
        matched_words.insert(stem);
        // A word and its stem are one reason, shown as the word.
        if (auto w = word_of_stem.find(stem); w != word_of_stem.end()) reason.value = w->second;
      }
      if (seen.insert({reason.field, reason.value}).second) reasons.push_back(std::move(reason));
    }
    for (const std::string& tag : stored.tags) {
      const std::string words = nlp::NormaliseForMatching(tag);
      size_t start = 0;
      while (start < words.size()) {
        size_t end = words.find(' ', start);
        if (end == std::string::npos) end = words.size();
        if (matched_words.count(stemmer_(words.substr(start, end - start)))) {
          if (seen.insert({"tag", tag}).second) reasons.push_back({"tag", tag});
          break;
        }
        start = end + 1;
      }
    }
    return reasons;
  }

  catalog::Catalog& catalog_;
  Xapian::Database db_;
  Xapian::Database counting_db_;   // CountFacetsAside's, on the same index
  bool counting_in_step_ = false;  // counting_db_ sees db_'s revision (CountingInStep)
  std::string field_error_;        // the first field error of the current parse (CheckedField)
  Xapian::Stem stemmer_;
  std::unique_ptr<Xapian::SimpleStopper> stopper_;
  Xapian::QueryParser parser_;
  std::unique_ptr<ItemTable> item_table_;  // see ItemTableFor
  int64_t faceted_searches_ = 0;           // without a current item table
  // The item table of the search under way (ItemTableFor), read by RangeField.
  const ItemTable* search_table_ = nullptr;
  // The exact values of each field that has them (ExactValuesOf), of one revision.
  Xapian::rev exact_values_revision_ = 0;
  std::map<std::string, ExactValues> exact_values_;
};

Searcher::Searcher(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Searcher::~Searcher() = default;

Result<std::unique_ptr<Searcher>> Searcher::Open(catalog::Catalog& catalog) {
  const std::filesystem::path dir = catalog.data_dir() / "index";
  if (!std::filesystem::exists(dir)) {
    return Status::NotFound("no search index in " + dir.string() + " (run `scisearch reindex`)");
  }
  return WhileModified(
      [&]() -> Result<std::unique_ptr<Searcher>> {
        try {
          Xapian::Database db(dir.string());
          Xapian::Database counting_db(dir.string());
          return std::unique_ptr<Searcher>(
              new Searcher(std::make_unique<Impl>(catalog, std::move(db), std::move(counting_db))));
        } catch (const Xapian::DatabaseModifiedError&) {
          throw;  // WhileModified's
        } catch (const Xapian::Error& e) {
          return Status::IoError("opening the search index " + dir.string() + ": " + e.get_type() +
                                 ": " + e.get_msg());
        }
      },
      [] { return Status::Ok(); });
}

Result<Results> Searcher::Search(const Query& query) { return impl_->Search(query); }

Result<Results> Searcher::MoreLikeThis(const std::string& id, int64_t limit,
                                       const std::string& kind) {
  return impl_->MoreLikeThis(id, limit, kind);
}

Result<int64_t> Searcher::Lag() { return impl_->Lag(); }

Status Searcher::Reopen() { return impl_->Reopen(); }

}  // namespace scisearch::search
