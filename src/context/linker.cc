#include "context/linker.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <unordered_map>

#include "common/hash.h"
#include "context/path_facts.h"
#include "context/tagger.h"
#include "formats/normalise.h"
#include "formats/text.h"
#include "nlp/keyphrases.h"
#include "nlp/vocabulary.h"

namespace scisearch::context {
namespace {

using catalog::DatasetRow;
using catalog::LinkRecord;
using catalog::ProposalRecord;
using catalog::PublicationRecord;
using catalog::SessionRecord;

// A session with its interval on the log's clock.
struct Booking {
  const SessionRecord* session = nullptr;
  int64_t start = 0, end = 0;
};

// When a dataset was acquired, and how that is known.
struct AcquisitionTime {
  int64_t seconds = 0;
  std::string iso;
  std::string how;     // "the instrument's clock", "its folder and file names", ...
  double trust = 1.0;  // how far the time itself can be relied on
  bool date_only = false;
};

std::string Minutes(const std::string& iso) {
  return iso.substr(0, std::min<size_t>(16, iso.size()));
}

// The facility's context, read once.
class ContextIndex {
 public:
  Status Load(catalog::Catalog& catalog) {
    SCISEARCH_ASSIGN_OR_RETURN(people_, catalog.ListPeople());
    SCISEARCH_ASSIGN_OR_RETURN(proposals_, catalog.ListProposals());
    SCISEARCH_ASSIGN_OR_RETURN(sessions_, catalog.ListSessions());
    SCISEARCH_ASSIGN_OR_RETURN(publications_, catalog.ListPublications());
    for (const catalog::PersonRecord& p : people_) name_of_person_[p.id] = p.name;
    for (const ProposalRecord& p : proposals_) {
      proposal_by_id_[p.id] = &p;
      // The proposal's other fields (materials, keywords) live in its document.
      Result<catalog::DocumentRecord> doc = catalog.GetDocument(p.id);
      if (!doc.ok()) continue;
      const nlohmann::json fields = nlohmann::json::parse(doc->fields_json, nullptr, false);
      if (!fields.is_object()) continue;
      auto materials = fields.find("materials");
      if (materials == fields.end() || !materials->is_array()) continue;
      for (const auto& m : *materials) {
        if (m.is_string()) materials_[p.id].push_back(m.get<std::string>());
      }
    }
    SCISEARCH_RETURN_IF_ERROR(ExtractKeyphrases());
    for (const SessionRecord& s : sessions_) {
      const std::optional<int64_t> start = formats::UnixSecondsFromIso(s.start);
      const std::optional<int64_t> end = formats::UnixSecondsFromIso(s.end);
      if (!start || !end || *end < *start) continue;
      bookings_[s.instrument].push_back({&s, *start, *end});
    }
    for (auto& [instrument, list] : bookings_) {
      std::sort(list.begin(), list.end(),
                [](const Booking& a, const Booking& b) { return a.start < b.start; });
      known_.instruments.push_back({instrument, ""});
    }
    for (const catalog::PersonRecord& p : people_) known_.people.push_back({p.id, p.name});
    for (const PublicationRecord& pub : publications_) {
      const std::vector<std::string_view> pub_concepts =
          nlp::FindConcepts(pub.title + " " + pub.abstract);
      std::set<std::string> authors;
      for (const std::string& a : pub.authors) authors.insert(nlp::NormaliseForMatching(a));
      // A paper that acknowledges proposals has said which: only one that names
      // none is matched by its authors and subject.
      const bool acknowledges_any =
          !pub.proposals.empty() ||
          std::any_of(proposals_.begin(), proposals_.end(), [&](const ProposalRecord& p) {
            return pub.abstract.find(p.id) != std::string::npos ||
                   pub.title.find(p.id) != std::string::npos;
          });
      for (const ProposalRecord& p : proposals_) {
        const bool acknowledged =
            std::find(pub.proposals.begin(), pub.proposals.end(), p.id) != pub.proposals.end();
        const bool named = !acknowledged && (pub.abstract.find(p.id) != std::string::npos ||
                                             pub.title.find(p.id) != std::string::npos);
        if (acknowledged || named) {
          papers_of_[p.id].push_back({&pub,
                                      acknowledged ? "acknowledges proposal " + p.id
                                                   : "names proposal " + p.id + " in its text",
                                      1.0});
          continue;
        }
        // No acknowledgement: the team's names among the authors and the same
        // subject, published after the proposal started, make a weaker link.
        if (acknowledges_any) continue;
        if (!p.start_date.empty() && !pub.date.empty() && pub.date < p.start_date) continue;
        std::vector<std::string> shared_authors;
        std::vector<std::string> members = p.team;
        members.push_back(p.pi);
        for (const std::string& member : members) {
          const std::string name = PersonName(member);
          if (authors.count(nlp::NormaliseForMatching(name)) &&
              std::find(shared_authors.begin(), shared_authors.end(), name) ==
                  shared_authors.end()) {
            shared_authors.push_back(name);
          }
        }
        if (shared_authors.empty()) continue;
        std::vector<std::string> shared_terms;
        for (std::string_view c : nlp::FindConcepts(p.title + " " + p.abstract)) {
          if (std::find(pub_concepts.begin(), pub_concepts.end(), c) != pub_concepts.end()) {
            shared_terms.emplace_back(c);
          }
        }
        if (shared_terms.size() < 2) continue;
        std::string why = "no acknowledgement, but shared authors (";
        for (size_t i = 0; i < shared_authors.size(); ++i) {
          why += (i ? ", " : "") + shared_authors[i];
        }
        why += ") and terms (";
        for (size_t i = 0; i < shared_terms.size() && i < 5; ++i) {
          why += (i ? ", " : "") + shared_terms[i];
        }
        why += ")";
        const double strength = std::min(
            0.7, 0.3 + 0.1 * double(shared_authors.size()) + 0.05 * double(shared_terms.size()));
        papers_of_[p.id].push_back({&pub, why, strength});
      }
    }
    return Status::Ok();
  }

  const PathVocabulary& known() const { return known_; }
  // The keyphrases of a proposal's or a publication's title and text.
  std::vector<std::string> Keyphrases(const std::string& id) const {
    auto it = keyphrases_.find(id);
    return it == keyphrases_.end() ? std::vector<std::string>{} : it->second;
  }
  const std::map<std::string, std::vector<Booking>>& bookings() const { return bookings_; }
  const ProposalRecord* Proposal(const std::string& id) const {
    auto it = proposal_by_id_.find(id);
    return it == proposal_by_id_.end() ? nullptr : it->second;
  }
  std::vector<std::string> Materials(const std::string& proposal_id) const {
    auto it = materials_.find(proposal_id);
    return it == materials_.end() ? std::vector<std::string>{} : it->second;
  }
  struct Paper {
    const PublicationRecord* publication;
    std::string why;
    double strength;  // 1 for an acknowledgement; less for shared authors and terms
  };
  const std::vector<Paper>& Papers(const std::string& proposal_id) const {
    static const std::vector<Paper> kNone;
    auto it = papers_of_.find(proposal_id);
    return it == papers_of_.end() ? kNone : it->second;
  }
  const std::vector<ProposalRecord>& proposals() const { return proposals_; }
  // The display name of person `id`, else the id itself.
  std::string PersonName(const std::string& id) const {
    auto it = name_of_person_.find(id);
    return it == name_of_person_.end() || it->second.empty() ? id : it->second;
  }

 private:
  std::vector<catalog::PersonRecord> people_;
  std::vector<ProposalRecord> proposals_;
  std::vector<SessionRecord> sessions_;
  std::vector<PublicationRecord> publications_;
  std::unordered_map<std::string, const ProposalRecord*> proposal_by_id_;
  std::unordered_map<std::string, std::string> name_of_person_;
  std::unordered_map<std::string, std::vector<std::string>> materials_;
  std::map<std::string, std::vector<Booking>> bookings_;  // by instrument, by start
  std::unordered_map<std::string, std::vector<Paper>> papers_of_;
  PathVocabulary known_;
  std::unordered_map<std::string, std::vector<std::string>> keyphrases_;

  // Keyphrases of every proposal and publication, ranked against all of them and
  // the logs' notes: the facility's own corpus.
  Status ExtractKeyphrases() {
    constexpr size_t kPerDocument = 5;
    SCISEARCH_ASSIGN_OR_RETURN(nlp::PhraseStatistics corpus, nlp::PhraseStatistics::Create());
    SCISEARCH_ASSIGN_OR_RETURN(nlp::KeyphraseExtractor extractor,
                               nlp::KeyphraseExtractor::Create());
    std::vector<std::pair<std::string, std::string>> texts;  // id, text
    for (const ProposalRecord& p : proposals_) texts.push_back({p.id, p.title + ". " + p.abstract});
    for (const PublicationRecord& p : publications_) {
      texts.push_back({p.doi, p.title + ". " + p.abstract});
    }
    for (const auto& [id, text] : texts) corpus.Add(text);
    for (const SessionRecord& s : sessions_) corpus.Add(s.notes);
    for (const auto& [id, text] : texts) {
      for (const nlp::Keyphrase& k : extractor.Extract(text, &corpus, kPerDocument)) {
        keyphrases_[id].push_back(k.phrase);
      }
    }
    return Status::Ok();
  }
};

std::string RelativePath(const DatasetRow& d) {
  if (!d.root.empty() && d.path.size() > d.root.size() + 1 &&
      d.path.compare(0, d.root.size(), d.root) == 0 && d.path[d.root.size()] == '/') {
    return d.path.substr(d.root.size() + 1);
  }
  return d.path;
}

std::optional<AcquisitionTime> TimeOf(const DatasetRow& d, const PathFacts& facts) {
  if (d.fields.acquired) {
    if (auto s = formats::UnixSecondsFromIso(*d.fields.acquired)) {
      return AcquisitionTime{*s, *d.fields.acquired, "the instrument's clock", 1.0, false};
    }
  }
  if (facts.date && facts.date->precision == DatePrecision::kDay && facts.date->year > 0) {
    std::string iso = facts.date->iso;
    if (facts.time) iso += "T" + facts.time->iso + (facts.time->has_seconds ? "" : ":00");
    if (auto s = formats::UnixSecondsFromIso(iso)) {
      return AcquisitionTime{*s, iso, "its folder and file names",
                             0.85 * facts.date->evidence.confidence, !facts.time};
    }
  }
  // The file's modification time is UTC and may be a copy's: the weakest clue.
  if (auto s = formats::UnixSecondsFromIso(d.mtime)) {
    return AcquisitionTime{*s, d.mtime, "the file's modification time", 0.5, false};
  }
  return std::nullopt;
}

// The booking of `bookings` (sorted by start) that holds `t`: inside one, else the
// nearest within `skew`. For a date only, the only booking that day.
std::optional<std::pair<const Booking*, double>> FindBooking(const std::vector<Booking>& bookings,
                                                             const AcquisitionTime& t,
                                                             int64_t skew) {
  if (t.date_only) {
    const Booking* only = nullptr;
    int count = 0;
    for (const Booking& b : bookings) {
      if (b.start <= t.seconds + 86400 - 1 && b.end >= t.seconds) {
        only = &b;
        ++count;
      }
    }
    if (count == 1) return std::make_pair(only, 0.7);
    return std::nullopt;
  }
  const Booking* best = nullptr;
  int64_t best_distance = skew + 1;
  for (const Booking& b : bookings) {
    if (b.start - skew > t.seconds) break;
    if (b.end + skew < t.seconds) continue;
    const int64_t distance =
        t.seconds < b.start ? b.start - t.seconds : (t.seconds > b.end ? t.seconds - b.end : 0);
    if (distance < best_distance) {
      best = &b;
      best_distance = distance;
    }
  }
  if (best == nullptr) return std::nullopt;
  // Inside the booking: sure; in the margin, less so the further out.
  const double confidence =
      best_distance == 0 ? 1.0
                         : 0.85 - 0.25 * double(best_distance) / double(std::max<int64_t>(skew, 1));
  return std::make_pair(best, confidence);
}

// What a run concluded of a dataset, hashed (see DatasetContext::fingerprint).
std::string Fingerprint(const catalog::DatasetContext& context) {
  uint64_t h = Fnv1a(context.embargo_until);
  auto mix = [&h](const std::string& text, double number) {
    h = Fnv1a(text, h);
    h = Fnv1a("\x1f" + std::to_string(std::llround(number * 1e6)) + "\x1e", h);
  };
  for (const LinkRecord& l : context.links)
    mix(l.kind + "\x1f" + l.target_id + "\x1f" + l.evidence, l.confidence);
  for (const catalog::TagSuggestion& t : context.tags) {
    mix(t.value + "\x1f" + t.source + "\x1f" + t.evidence, t.confidence);
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

}  // namespace

Result<LinkSummary> LinkCatalog(catalog::Catalog& catalog, const LinkOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  ContextIndex index;
  SCISEARCH_RETURN_IF_ERROR(index.Load(catalog));
  SCISEARCH_ASSIGN_OR_RETURN(std::vector<DatasetRow> datasets,
                             catalog.ListDatasets(options.root, "ok"));

  // Pass 1: what the instruments' own names are (the metadata's "FEI Titan" in
  // folders named "TitanX"). The facts are parsed again in pass 2 rather than kept:
  // a million datasets' facts would not fit comfortably in memory.
  const PathFactsParser parser(index.known());
  std::map<std::string, std::map<std::string, int>> instrument_of_name;
  for (const DatasetRow& d : datasets) {
    const auto& name = d.fields.instrument;
    if (!name || name->empty()) continue;
    const PathFacts facts = parser.Parse(RelativePath(d));
    if (!facts.instruments.empty()) ++instrument_of_name[*name][facts.instruments.front().id];
  }
  // A name maps to an instrument when most files that record it sit in its folder.
  std::map<std::string, std::string> learned_instrument;
  for (const auto& [name, counts] : instrument_of_name) {
    int total = 0, top = 0;
    std::string best;
    for (const auto& [instrument, n] : counts) {
      total += n;
      if (n > top) {
        top = n;
        best = instrument;
      }
    }
    if (top >= 3 && top * 10 >= total * 8) learned_instrument[name] = best;
  }

  LinkSummary summary;
  catalog::Catalog::BatchWriter batch(catalog, 500);
  for (size_t i = 0; i < datasets.size(); ++i) {
    const DatasetRow& d = datasets[i];
    const PathFacts f = parser.Parse(RelativePath(d));
    ++summary.datasets;
    std::vector<LinkRecord> links;

    // Instrument.
    std::string instrument = f.instruments.empty() ? "" : f.instruments.front().id;
    const std::string person = f.people.empty() ? "" : f.people.front().id;
    std::string instrument_why;
    double instrument_trust = 1.0;
    if (!instrument.empty()) {
      instrument_why = "instrument " + instrument + " from the folder names";
    } else if (d.fields.instrument) {
      auto it = learned_instrument.find(*d.fields.instrument);
      if (it != learned_instrument.end()) {
        instrument = it->second;
        instrument_why =
            "instrument " + instrument + " from its metadata name '" + *d.fields.instrument + "'";
        instrument_trust = 0.95;
      }
    }

    // Session.
    const SessionRecord* session = nullptr;
    double session_confidence = 0;
    std::optional<AcquisitionTime> time = TimeOf(d, f);
    if (time) {
      std::vector<std::pair<std::string, const std::vector<Booking>*>> candidates;
      if (!instrument.empty()) {
        auto it = index.bookings().find(instrument);
        if (it != index.bookings().end()) candidates.push_back({instrument, &it->second});
      } else {
        for (const auto& [name, list] : index.bookings()) candidates.push_back({name, &list});
      }
      std::vector<std::pair<const Booking*, double>> found;
      for (const auto& [name, list] : candidates) {
        if (auto hit = FindBooking(*list, *time, options.clock_skew_seconds)) found.push_back(*hit);
      }
      // Without the instrument, a time inside two instruments' bookings decides nothing.
      if (found.size() == 1) {
        const Booking& b = *found.front().first;
        session = b.session;
        session_confidence = found.front().second * time->trust * instrument_trust *
                             (instrument.empty() ? 0.7 : 0.97);
        std::string why = (time->date_only ? "dated " : "acquired ") + Minutes(time->iso) + " (" +
                          time->how + ")" + (found.front().second == 1.0 ? " inside " : " near ") +
                          "the " + b.session->instrument + " booking " + Minutes(b.session->start) +
                          " to " + Minutes(b.session->end) + " of " +
                          index.PersonName(b.session->user);
        why += instrument_why.empty() ? "; instrument not known from the path or metadata"
                                      : "; " + instrument_why;
        // The PI's folder agrees or not.
        if (!person.empty()) {
          if (person == b.session->pi || person == b.session->user) {
            session_confidence = std::min(0.99, session_confidence + 0.02);
            why += "; folder names " + index.PersonName(person);
          } else {
            session_confidence *= 0.8;
            why += "; but the folder names " + index.PersonName(person);
          }
        }
        links.push_back({"session", session->id, session_confidence, why});
      }
    }

    // Proposal: the session's log names it; else the only proposal of the folder's
    // person running at that time.
    const ProposalRecord* proposal = nullptr;
    double proposal_confidence = 0;
    if (session != nullptr && !session->proposal_id.empty()) {
      proposal = index.Proposal(session->proposal_id);
      if (proposal != nullptr) {
        proposal_confidence = session_confidence * 0.99;
        links.push_back({"proposal", proposal->id, proposal_confidence,
                         "the log of session " + session->id + " names proposal " + proposal->id});
      }
    }
    if (proposal == nullptr && !person.empty() && time) {
      const ProposalRecord* only = nullptr;
      int count = 0;
      const std::string day = time->iso.substr(0, 10);
      for (const ProposalRecord& p : index.proposals()) {
        const bool member =
            p.pi == person || std::find(p.team.begin(), p.team.end(), person) != p.team.end();
        const bool running = (p.start_date.empty() || p.start_date <= day) &&
                             (p.end_date.empty() || day <= p.end_date);
        if (member && running) {
          only = &p;
          ++count;
        }
      }
      if (count == 1) {
        proposal = only;
        proposal_confidence = 0.6 * time->trust;
        links.push_back({"proposal", proposal->id, proposal_confidence,
                         index.PersonName(person) + " (named by the folders) is on proposal " +
                             proposal->id + ", running on " + day});
      }
    }

    // Publications of the proposal that appeared after the acquisition.
    std::vector<const PublicationRecord*> papers;
    double paper_confidence = 0;
    if (proposal != nullptr) {
      const std::string day = time ? time->iso.substr(0, 10) : "";
      for (const auto& paper : index.Papers(proposal->id)) {
        const PublicationRecord& pub = *paper.publication;
        if (!day.empty() && !pub.date.empty() && pub.date < day) continue;
        const double confidence = proposal_confidence * 0.95 * paper.strength;
        paper_confidence = std::max(paper_confidence, confidence);
        papers.push_back(&pub);
        links.push_back({"publication", pub.doi, confidence,
                         "published " + pub.date + ", after the acquisition; " + paper.why});
      }
    }

    DatasetEvidence evidence;
    evidence.dataset = &d;
    evidence.relative_path = RelativePath(d);
    evidence.path_facts = &f;
    evidence.session = session;
    evidence.session_confidence = session_confidence;
    evidence.proposal = proposal;
    evidence.proposal_confidence = proposal_confidence;
    if (proposal != nullptr) evidence.proposal_materials = index.Materials(proposal->id);
    evidence.publications = papers;
    if (proposal != nullptr) evidence.proposal_keyphrases = index.Keyphrases(proposal->id);
    for (const PublicationRecord* pub : papers) {
      for (std::string& k : index.Keyphrases(pub->doi)) {
        evidence.publication_keyphrases.push_back(std::move(k));
      }
    }
    evidence.publication_confidence = paper_confidence;

    catalog::DatasetContext context;
    context.dataset_id = d.id;
    context.links = std::move(links);
    context.tags = ContextTags(evidence);
    context.tag_sources = ContextTagSources();
    if (proposal != nullptr) context.embargo_until = proposal->release_date;
    context.fingerprint = Fingerprint(context);
    summary.with_session += session != nullptr;
    summary.with_proposal += proposal != nullptr;
    summary.with_publications += !papers.empty();
    summary.tags += static_cast<int64_t>(context.tags.size());
    if (context.fingerprint == d.context_fingerprint) {
      ++summary.unchanged;
      continue;
    }
    SCISEARCH_RETURN_IF_ERROR(batch.PutDatasetContext(context));
  }
  SCISEARCH_RETURN_IF_ERROR(batch.Flush());
  summary.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return summary;
}

}  // namespace scisearch::context
