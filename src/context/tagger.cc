#include "context/tagger.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "common/status.h"
#include "context/path_facts.h"
#include "formats/text.h"
#include "nlp/chemistry.h"
#include "nlp/vocabulary.h"

namespace scisearch::context {
namespace {

using catalog::TagSuggestion;
using formats::Mode;

// Tags said by several sources, merged by a key that ignores case and separators
// ("HAADF-STEM" = "haadf stem"): the confidences combine as independent evidence
// (1 - product of doubts) and the most confident source names the tag.
class TagBag {
 public:
  void Add(const std::string& value, const std::string& source, double confidence,
           const std::string& evidence) {
    if (value.empty() || confidence <= 0) return;
    const std::string key = nlp::NormaliseForMatching(value);
    if (key.empty()) return;
    Entry& e = entries_[key];
    if (e.value.empty() || confidence > e.best) {
      e.value = value;
      e.source = source;
      e.best = confidence;
    }
    e.doubt *= 1.0 - std::min(confidence, 0.99);
    if (e.evidence.find(evidence) == std::string::npos) {
      if (!e.evidence.empty()) e.evidence += "; ";
      e.evidence += evidence;
    }
  }

  // Forgets `value` (in any case and spelling of separators).
  void Remove(const std::string& value) { entries_.erase(nlp::NormaliseForMatching(value)); }

  std::vector<TagSuggestion> Ranked() const {
    std::vector<TagSuggestion> out;
    out.reserve(entries_.size());
    for (const auto& [key, e] : entries_) {
      out.push_back({e.value, e.source, std::round((1.0 - e.doubt) * 1000.0) / 1000.0, e.evidence});
    }
    std::stable_sort(out.begin(), out.end(), [](const TagSuggestion& a, const TagSuggestion& b) {
      return a.confidence > b.confidence;
    });
    return out;
  }

 private:
  struct Entry {
    std::string value, source, evidence;
    double best = 0;
    double doubt = 1.0;
  };
  std::map<std::string, Entry> entries_;
};

bool HasWord(const std::string& normalised, std::string_view word) {
  const std::string padded = " " + normalised + " ";
  return padded.find(" " + std::string(word) + " ") != std::string::npos;
}

// Technique tags from the operating mode and the detectors (signal names).
void MetadataTags(const catalog::DatasetRow& d, const std::string& name_words, TagBag& tags) {
  const Mode mode = d.fields.mode;
  std::vector<std::string> names = d.signal_names;
  if (d.fields.detector) names.push_back(*d.fields.detector);
  std::string detectors;
  std::set<std::string> seen;
  for (const std::string& name : names) {
    if (!name.empty() && seen.insert(name).second) detectors += " " + name;
  }
  const std::string det = nlp::NormaliseForMatching(detectors);
  const std::string why = "operating mode " + std::string(formats::ModeName(mode)) +
                          (det.empty() ? "" : ", detectors" + detectors);
  auto add = [&](const char* tag, double confidence) {
    tags.Add(tag, "metadata", confidence, why);
  };
  switch (mode) {
    case Mode::kStemImage:
      add("STEM", 0.95);
      if (HasWord(det, "haadf")) add("HAADF-STEM", 0.95);
      if (HasWord(det, "bf")) add("BF-STEM", 0.9);
      if (HasWord(det, "abf")) add("ABF-STEM", 0.9);
      break;
    case Mode::kTemImage: {
      // Lattice fringes need pixels well below an atomic spacing.
      const bool atomic = (d.fields.pixel_size_m && *d.fields.pixel_size_m < 4e-11 &&
                           d.fields.pixel_size_units.value_or("m") == "m") ||
                          HasWord(name_words, "hrtem");
      if (atomic) {
        add("HRTEM", 0.85);
      } else {
        add("TEM", 0.9);
        add("bright field", 0.8);
      }
      break;
    }
    case Mode::kDiffraction:
      if (HasWord(name_words, "saed")) {
        add("SAED", 0.9);
      } else if (HasWord(name_words, "nbd") || HasWord(name_words, "nanobeam")) {
        add("nanobeam diffraction", 0.9);
      } else if (HasWord(name_words, "cbed")) {
        add("CBED", 0.9);
      }
      add("diffraction", 0.9);
      break;
    case Mode::kSpectrum:
    case Mode::kSpectrumImage: {
      const bool eels =
          HasWord(det, "eels") || HasWord(det, "gif") || det.find("quantum") != std::string::npos;
      const bool eds = HasWord(det, "eds") || HasWord(det, "edx") || HasWord(det, "super x") ||
                       det.find("super x") != std::string::npos || HasWord(det, "xeds");
      if (eds) add("EDS", 0.95);
      if (eels) add("EELS", 0.95);
      if (mode == Mode::kSpectrumImage) {
        add("spectrum imaging", 0.9);
        add("STEM", 0.9);
        if (eds) add("elemental map", 0.7);
      }
      break;
    }
    case Mode::kSemImage: {
      add("SEM", 0.95);
      const bool backscatter = HasWord(det, "cbs") || HasWord(det, "bse") || HasWord(det, "bsd") ||
                               det.find("backscatter") != std::string::npos;
      const bool secondary = HasWord(det, "etd") || HasWord(det, "tld") || HasWord(det, "se") ||
                             HasWord(det, "inlens") || HasWord(det, "se2") || HasWord(det, "ice");
      if (backscatter) {
        add("backscattered electrons", 0.9);
      } else if (secondary) {
        add("secondary electrons", 0.85);
      }
      if (d.fields.magnification && *d.fields.magnification < 5000) add("overview", 0.7);
      break;
    }
    case Mode::k4dStem:
      add("4D-STEM", 0.95);
      add("STEM", 0.9);
      break;
    default:
      break;
  }
}

// Words in file names that say how a file was taken.
void NameTags(const std::string& name_words, TagBag& tags) {
  auto has = [&](std::string_view w) { return HasWord(name_words, w); };
  const std::string why = "file name";
  if (has("search") || has("preview")) tags.Add("search image", "path", 0.8, why + " says search");
  if (has("tomo") || has("tomography") || has("tilt series")) {
    tags.Add("tomography", "path", 0.85, why + " says tomography");
    tags.Add("tilt series", "path", 0.8, why + " says tilt series");
  }
  if (has("series") && !has("tilt series"))
    tags.Add("time series", "path", 0.6, why + " says series");
  if (has("dp stack")) tags.Add("4D-STEM", "path", 0.7, why + " says dp stack");
}

void AddElementTags(std::string_view symbol, const std::string& source, double confidence,
                    const std::string& why, TagBag& tags) {
  const nlp::Element* element = nlp::ElementBySymbol(symbol);
  if (element == nullptr) return;
  tags.Add(std::string(element->symbol), source, confidence, why);
  tags.Add(std::string(element->name), source, confidence, why);
}

// The parts of a composite formula: "GaN-AlGaN" -> "GaN", "AlGaN"; "CdSe@ZnS" ->
// "CdSe", "ZnS". A '-' separates parts only before a capital ("La1-xSrxMnO3" is one).
std::vector<std::string> FormulaParts(const std::string& formula) {
  std::vector<std::string> parts(1);
  int depth = 0;
  for (size_t i = 0; i < formula.size(); ++i) {
    const char c = formula[i];
    if (c == '(' || c == '[') ++depth;
    if (c == ')' || c == ']') --depth;
    const bool separator =
        depth == 0 &&
        (c == '/' || c == '@' || c == ':' ||
         (c == '-' && i + 1 < formula.size() && formula[i + 1] >= 'A' && formula[i + 1] <= 'Z'));
    if (separator) {
      parts.emplace_back();
    } else {
      parts.back() += c;
    }
  }
  return parts;
}

// Material and element tags from a text where chemistry is named. In a composite
// ("GaN-AlGaN", "CdSe@ZnS") the first part is taken as the material studied and
// the others, a barrier or a shell, are less sure.
void ChemistryTags(std::string_view text, nlp::TextStyle style, const std::string& source,
                   double weight, const std::string& where, TagBag& tags) {
  const std::vector<nlp::ChemistryMention> mentions = nlp::FindChemistry(text, style);
  size_t previous_end = std::string_view::npos;
  for (const nlp::ChemistryMention& m : mentions) {
    // "GaN-AlGaN" written as two names: the second, joined by '-', '/' or '@', is a
    // part of the first's composite.
    const bool joined = previous_end != std::string_view::npos && m.offset == previous_end + 1 &&
                        std::string_view("-/@").find(text[previous_end]) != std::string_view::npos;
    previous_end = m.offset + m.surface.size();
    const double c = weight * m.confidence * (joined ? 0.5 : 1.0);
    const std::string why = where + " names '" + m.surface + "'";
    const std::vector<std::string> parts = FormulaParts(m.formula);
    std::set<std::string_view> main_elements(m.element_symbols.begin(), m.element_symbols.end());
    if (parts.size() > 1) {
      if (Result<nlp::Formula> first = nlp::ParseFormula(parts.front()); first.ok()) {
        main_elements = {first->element_symbols.begin(), first->element_symbols.end()};
        tags.Add(first->canonical, source, c * 0.9, why);
        if (!first->material_names.empty()) {
          tags.Add(first->material_names.front(), source, c * 0.85, why);
        }
      }
    }
    const double whole = parts.size() > 1 ? c * 0.5 : c;
    if (!m.formula.empty()) tags.Add(m.formula, source, whole, why);
    // The first name is the material's usual one; the others are less sure.
    for (size_t i = 0; i < m.material_names.size() && i < 2; ++i) {
      tags.Add(m.material_names[i], source, whole * (i == 0 ? 0.95 : 0.6), why);
    }
    for (std::string_view symbol : m.element_symbols) {
      AddElementTags(symbol, source, (main_elements.count(symbol) ? c : whole) * 0.95, why, tags);
    }
  }
}

// Concepts of the domain vocabulary named in a text: techniques and morphology,
// and the materials no formula names (alloys, zeolites), with their elements.
void ConceptTags(std::string_view text, const std::string& source, double weight,
                 double material_weight, const std::string& where, TagBag& tags) {
  const auto vocabulary = nlp::DomainVocabulary();
  for (std::string_view id : nlp::FindConcepts(text)) {
    for (const nlp::Concept& c : vocabulary) {
      if (c.id != id) continue;
      const std::string why = where + " says " + std::string(c.label);
      if (c.kind == nlp::ConceptKind::kMaterial) {
        // Formula materials come through the chemistry rules.
        if (c.composition.empty()) break;
        for (std::string_view symbol : c.composition) {
          AddElementTags(symbol, source, material_weight * 0.9, why, tags);
        }
        tags.Add(std::string(c.label), source, material_weight, why);
        break;
      }
      tags.Add(std::string(c.label), source, weight, why);
      break;
    }
  }
}

// What identifies a material in a text: the vocabulary's concepts and the sets of
// elements its formulas name ("PtNi" and "Pt3Ni" are the same material here).
std::set<std::string> MaterialKeys(std::string_view text) {
  std::set<std::string> keys;
  for (std::string_view id : nlp::FindConcepts(text)) keys.insert("concept:" + std::string(id));
  for (const nlp::ChemistryMention& m : nlp::FindChemistry(text, nlp::TextStyle::kName)) {
    for (std::string_view id : m.concept_ids) keys.insert("concept:" + std::string(id));
    std::vector<std::string_view> symbols = m.element_symbols;
    std::sort(symbols.begin(), symbols.end());
    std::string key = "elements:";
    for (std::string_view s : symbols) key += std::string(s) + " ";
    if (symbols.size() > 1) keys.insert(key);
  }
  return keys;
}

}  // namespace

const std::vector<std::string>& ContextTagSources() {
  static const std::vector<std::string> kSources = {"path", "metadata", "log", "proposal",
                                                    "publication"};
  return kSources;
}

std::vector<TagSuggestion> ContextTags(const DatasetEvidence& evidence) {
  TagBag tags;
  if (evidence.dataset == nullptr) return {};
  const catalog::DatasetRow& d = *evidence.dataset;

  // The folder and file names: what the person at the instrument typed.
  const std::string& path = evidence.relative_path;
  const size_t slash = path.rfind('/');
  const std::string file_name = slash == std::string::npos ? path : path.substr(slash + 1);
  const std::string name_words = nlp::NormaliseForMatching(file_name);
  MetadataTags(d, name_words, tags);
  NameTags(name_words, tags);
  PathFacts parsed;
  if (evidence.path_facts == nullptr) parsed = ParsePathFacts(path, PathVocabulary{});
  const PathFacts& facts = evidence.path_facts != nullptr ? *evidence.path_facts : parsed;
  ChemistryTags(facts.sample_text, nlp::TextStyle::kName, "path", 0.9, "the folder or file name",
                tags);
  ConceptTags(facts.sample_text, "path", 0.6, 0.85, "the folder or file name", tags);

  // The proposal's materials: the one the folder names (in whatever shorthand), or
  // the only one it studies. The proposal writes it in full ("Pt3Ni" for "PtNi").
  if (evidence.proposal != nullptr) {
    const double c = evidence.proposal_confidence;
    const std::string where = "proposal " + evidence.proposal->id;
    const std::set<std::string> sample_keys = MaterialKeys(facts.sample_text);
    for (const std::string& material : evidence.proposal_materials) {
      const std::set<std::string> keys = MaterialKeys(material);
      const bool named = std::any_of(keys.begin(), keys.end(),
                                     [&](const std::string& k) { return sample_keys.count(k); });
      const bool only = evidence.proposal_materials.size() == 1;
      if (!named && !only) continue;
      const double weight = c * (named ? 0.9 : 0.85);
      const std::string why = where + (named ? " studies " + material + ", which the folder names"
                                             : " (its only material)");
      // The folder's shorthand formula ("PtNi") yields to the proposal's ("Pt3Ni").
      if (named) {
        Result<nlp::Formula> full = nlp::ParseFormula(material);
        for (const nlp::ChemistryMention& m :
             nlp::FindChemistry(facts.sample_text, nlp::TextStyle::kName)) {
          if (full.ok() && !m.formula.empty() && m.formula != full->canonical &&
              std::is_permutation(m.element_symbols.begin(), m.element_symbols.end(),
                                  full->element_symbols.begin(), full->element_symbols.end())) {
            tags.Remove(m.formula);
          }
        }
      }
      ChemistryTags(material, nlp::TextStyle::kName, "proposal", weight, why, tags);
      ConceptTags(material, "proposal", weight, weight, why, tags);
    }
  }
  // What the proposal and the papers are about, in their own words: weak tags.
  for (size_t i = 0; i < evidence.proposal_keyphrases.size(); ++i) {
    tags.Add(evidence.proposal_keyphrases[i], "proposal",
             evidence.proposal_confidence * (0.4 - 0.02 * double(i)),
             "a keyphrase of proposal " + (evidence.proposal ? evidence.proposal->id : ""));
  }
  for (size_t i = 0; i < evidence.publication_keyphrases.size(); ++i) {
    tags.Add(evidence.publication_keyphrases[i], "publication",
             evidence.publication_confidence * (0.3 - 0.02 * double(i)),
             "a keyphrase of its publications");
  }
  // The session's log: notes about the sample and the work, for the whole session.
  if (evidence.session != nullptr && !evidence.session->notes.empty()) {
    ChemistryTags(evidence.session->notes, nlp::TextStyle::kProse, "log",
                  evidence.session_confidence * 0.5, "the log of session " + evidence.session->id,
                  tags);
  }
  return tags.Ranked();
}

}  // namespace scisearch::context
