// Building the index from the catalog: UpdateIndex and RebuildIndex.
#include <xapian.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <system_error>

#include "nlp/vocabulary.h"
#include "search/document.h"
#include "search/search.h"

namespace scisearch::search {
namespace {

namespace fs = std::filesystem;
using internal::LinkedContext;

// Linked context per proposal and session, read once per run: a proposal has
// thousands of datasets.
class ContextCache {
 public:
  explicit ContextCache(catalog::Catalog& catalog) : catalog_(catalog) {}

  Result<LinkedContext> For(const catalog::DatasetRow& dataset) {
    LinkedContext context;
    if (!dataset.proposal_id.empty()) {
      auto it = proposals_.find(dataset.proposal_id);
      if (it == proposals_.end()) {
        SCISEARCH_ASSIGN_OR_RETURN(LinkedContext loaded, LoadProposal(dataset.proposal_id));
        it = proposals_.emplace(dataset.proposal_id, std::move(loaded)).first;
      }
      context = it->second;
    }
    if (!dataset.session_id.empty()) {
      Result<catalog::DocumentRecord> log = catalog_.GetDocument(dataset.session_id);
      if (log.ok()) {
        context.session_text = log->title + ". " + log->text;
        if (context.pi.empty()) context.pi = log->pi;
      } else if (log.status().code() != ErrorCode::kNotFound) {
        return log.status();
      }
    }
    return context;
  }

 private:
  Result<LinkedContext> LoadProposal(const std::string& proposal_id) {
    LinkedContext context;
    SCISEARCH_ASSIGN_OR_RETURN(std::vector<catalog::DocumentRecord> documents,
                               catalog_.DocumentsOfProposal(proposal_id));
    for (const catalog::DocumentRecord& d : documents) {
      if (d.kind == "proposal" && d.id == proposal_id) {
        SCISEARCH_ASSIGN_OR_RETURN(catalog::DocumentRecord full, catalog_.GetDocument(d.id));
        context.pi = full.pi;
        context.proposal_title = full.title;
        context.proposal_text = full.text;
      } else if (d.kind == "publication") {
        context.publication_titles.push_back(d.title);
      }
    }
    return context;
  }

  catalog::Catalog& catalog_;
  std::map<std::string, LinkedContext> proposals_;
};

Status XapianFailure(const std::string& what, const Xapian::Error& e) {
  if (std::string(e.get_type()) == "DatabaseLockError") {
    return Status::Unsupported(what + ": the index is locked by another scisearch process (" +
                               e.get_msg() + ")");
  }
  return Status::IoError(what + ": " + e.get_type() + ": " + e.get_msg());
}

// Replaces the synonyms when the vocabulary changed since they were written.
void RefreshSynonyms(Xapian::WritableDatabase& db) {
  const std::string fingerprint = nlp::VocabularyFingerprint();
  if (db.get_metadata(internal::kVocabularyKey) == fingerprint) return;
  for (Xapian::TermIterator key = db.synonym_keys_begin(); key != db.synonym_keys_end(); ++key) {
    db.clear_synonyms(*key);
  }
  for (const nlp::Concept& concept_entry : nlp::DomainVocabulary()) {
    const std::string target = "XC" + std::string(concept_entry.id);
    for (std::string_view form : concept_entry.forms) {
      db.add_synonym(std::string(form), target);
    }
  }
  db.set_metadata(internal::kVocabularyKey, fingerprint);
}

// Brings the index's document of `item` ("dataset:<id>" or "document:<id>") in
// line with the catalog: replaced when the item exists (and, for a dataset, is
// "ok"), deleted otherwise. Returns whether a document was written.
Result<bool> IndexItem(catalog::Catalog& catalog, Xapian::WritableDatabase& db,
                       Xapian::TermGenerator& generator, ContextCache& contexts,
                       const std::string& item) {
  constexpr std::string_view kDatasetPrefix = "dataset:";
  constexpr std::string_view kDocumentPrefix = "document:";
  if (item.rfind(kDatasetPrefix, 0) == 0) {
    int64_t id = 0;
    try {
      id = std::stoll(item.substr(kDatasetPrefix.size()));
    } catch (const std::exception&) {
      return Status::Corrupt("catalog change item '" + item + "' has no dataset id");
    }
    const std::string term = internal::UniqueTerm(internal::DatasetItemId(id));
    Result<catalog::DatasetRow> dataset = catalog.GetDatasetById(id);
    if (!dataset.ok() && dataset.status().code() != ErrorCode::kNotFound) {
      return dataset.status();
    }
    if (!dataset.ok() || dataset->state != "ok") {
      db.delete_document(term);
      return false;
    }
    SCISEARCH_ASSIGN_OR_RETURN(LinkedContext context, contexts.For(*dataset));
    db.replace_document(term, internal::MakeDatasetDocument(*dataset, context, generator));
    return true;
  }
  if (item.rfind(kDocumentPrefix, 0) == 0) {
    const std::string id = item.substr(kDocumentPrefix.size());
    const std::string term = internal::UniqueTerm(id);
    Result<catalog::DocumentRecord> document = catalog.GetDocument(id);
    if (!document.ok()) {
      if (document.status().code() != ErrorCode::kNotFound) return document.status();
      db.delete_document(term);
      return false;
    }
    db.replace_document(term, internal::MakeTextDocument(*document, generator));
    return true;
  }
  return Status::Corrupt("catalog change item '" + item + "' is of no known kind");
}

// Applies `changes` to `db`, committing every `batch` items with the sequence
// reached, so that an interrupted run resumes where it stopped.
Result<IndexStats> ApplyChanges(catalog::Catalog& catalog, Xapian::WritableDatabase& db,
                                const std::vector<catalog::ItemChange>& changes, size_t batch,
                                const IndexProgress& progress) {
  const auto start = std::chrono::steady_clock::now();
  IndexStats stats;
  Xapian::TermGenerator generator;
  generator.set_stemmer(Xapian::Stem("english"));
  generator.set_stemming_strategy(Xapian::TermGenerator::STEM_SOME);
  generator.set_database(db);
  generator.set_flags(Xapian::TermGenerator::FLAG_SPELLING);
  ContextCache contexts(catalog);
  const int64_t total = int64_t(changes.size());
  for (size_t i = 0; i < changes.size(); ++i) {
    const catalog::ItemChange& change = changes[i];
    SCISEARCH_ASSIGN_OR_RETURN(bool indexed,
                               IndexItem(catalog, db, generator, contexts, change.item));
    (indexed ? stats.items_indexed : stats.items_removed)++;
    const bool last = i + 1 == changes.size();
    // Items of one sequence number are committed together (a proposal's change
    // touches all its datasets at once).
    const bool sequence_done = last || changes[i + 1].seq != change.seq;
    if ((last || (i + 1) % batch == 0) && sequence_done) {
      db.set_metadata(internal::kSequenceKey, std::to_string(change.seq));
      db.commit();
      stats.sequence = change.seq;
    }
    if (progress && ((i + 1) % 1000 == 0 || last)) progress(int64_t(i + 1), total);
  }
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

fs::path IndexDir(const catalog::Catalog& catalog) { return catalog.data_dir() / "index"; }

Result<IndexStats> UpdateDatabase(catalog::Catalog& catalog, const fs::path& dir, size_t batch,
                                  const IndexProgress& progress) {
  SCISEARCH_ASSIGN_OR_RETURN(const std::string catalog_id, catalog.CatalogId());
  SCISEARCH_ASSIGN_OR_RETURN(const int64_t latest, catalog.ChangeSequence());
  try {
    Xapian::WritableDatabase db(dir.string(), Xapian::DB_CREATE_OR_OPEN);
    int64_t applied = internal::AppliedSequence(db);
    // An index of another catalog (this one was made anew, or restored from an
    // older backup), or of another format (an older scisearch wrote it), is emptied
    // and built again from every item.
    if (db.get_doccount() > 0 &&
        (db.get_metadata(internal::kCatalogIdKey) != catalog_id || applied > latest ||
         internal::IndexFormat(db) != internal::kIndexFormat)) {
      db.close();
      db = Xapian::WritableDatabase(dir.string(), Xapian::DB_CREATE_OR_OVERWRITE);
      applied = 0;
    }
    db.set_metadata(internal::kCatalogIdKey, catalog_id);
    db.set_metadata(internal::kFormatKey, std::to_string(internal::kIndexFormat));
    RefreshSynonyms(db);
    SCISEARCH_ASSIGN_OR_RETURN(std::vector<catalog::ItemChange> changes,
                               catalog.ChangesSince(applied));
    SCISEARCH_ASSIGN_OR_RETURN(
        IndexStats stats, ApplyChanges(catalog, db, changes, std::max<size_t>(batch, 1), progress));
    if (changes.empty()) {
      stats.sequence = applied;
      db.commit();  // the synonyms and catalog id, when they were written
    }
    db.close();
    return stats;
  } catch (const Xapian::Error& e) {
    return XapianFailure("search index " + dir.string(), e);
  }
}

}  // namespace

Result<IndexStats> UpdateIndex(catalog::Catalog& catalog, size_t batch,
                               const IndexProgress& progress) {
  return UpdateDatabase(catalog, IndexDir(catalog), batch, progress);
}

Result<IndexStats> RebuildIndex(catalog::Catalog& catalog, const IndexProgress& progress) {
  const fs::path live = IndexDir(catalog);
  const fs::path fresh = catalog.data_dir() / "index.new";
  const fs::path old = catalog.data_dir() / "index.old";
  std::error_code error;
  fs::remove_all(fresh, error);
  if (error) return Status::IoError("removing " + fresh.string() + ": " + error.message());
  SCISEARCH_ASSIGN_OR_RETURN(IndexStats stats, UpdateDatabase(catalog, fresh, 10000, progress));
  // Two renames: a crash between them leaves no "index", and the next UpdateIndex
  // builds one from every change (ChangesSince(0)).
  fs::remove_all(old, error);
  if (fs::exists(live)) {
    fs::rename(live, old, error);
    if (error) return Status::IoError("moving " + live.string() + " aside: " + error.message());
  }
  fs::rename(fresh, live, error);
  if (error) return Status::IoError("renaming " + fresh.string() + ": " + error.message());
  fs::remove_all(old, error);
  return stats;
}

}  // namespace scisearch::search
