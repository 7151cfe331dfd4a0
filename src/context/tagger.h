// The tags a dataset's context gives: its metadata (operating mode, detectors),
// its folder and file names (sample, material, technique words), the notes of its
// session's log, its proposal and its publications. Each tag has a source, a
// confidence and its evidence; the same concept said several ways ("PbSe",
// "pbse", "lead selenide") is one tag, the sources' confidences combined.
//
// Part of the linking stage's interface (see linker.h).
#pragma once

#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "context/path_facts.h"

namespace scisearch::context {

// What is known of one dataset when its tags are made. Pointers may be null
// (not linked); they must outlive the call.
struct DatasetEvidence {
  const catalog::DatasetRow* dataset = nullptr;
  std::string relative_path;              // under the ingest root: "TitanX/Smith/2011/..."
  const PathFacts* path_facts = nullptr;  // of relative_path; parsed here when null
  const catalog::SessionRecord* session = nullptr;
  double session_confidence = 0;
  const catalog::ProposalRecord* proposal = nullptr;
  double proposal_confidence = 0;
  // The proposal's materials as its record lists them ("PbSe", "SrTiO3"), if any.
  std::vector<std::string> proposal_materials;
  std::vector<const catalog::PublicationRecord*> publications;
  double publication_confidence = 0;
  // The ranked keyphrases of the proposal's and the publications' texts (against
  // the facility's own documents): weak tags, for search and for experts to accept.
  std::vector<std::string> proposal_keyphrases;
  std::vector<std::string> publication_keyphrases;
};

// The ranked tags of `evidence` (strongest first), one per concept, with the
// source that says it most surely. Pure; callable from any thread.
std::vector<catalog::TagSuggestion> ContextTags(const DatasetEvidence& evidence);

// The sources ContextTags writes (what a new run replaces).
const std::vector<std::string>& ContextTagSources();

}  // namespace scisearch::context
