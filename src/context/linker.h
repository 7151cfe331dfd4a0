// Linking each dataset to the facility's context: the instrument session it was
// acquired in, the proposal that paid for the time, and the papers that came out
// of it; and writing the tags that this context gives (see tagger.h).
//
// A file is placed in a session by its instrument (a folder named after it, or
// the instrument name its metadata records, learned from the files whose folder
// names it) and its time (the instrument's clock, else the date and time in its
// folder and file names, else the file's modification time), inside a booking of
// that instrument in the user logs, with clock skew tolerated. The session's log
// names its proposal; a proposal's papers are those that acknowledge it, published
// after the acquisition. Every link keeps its evidence and a confidence.
//
// This header and tagger.h are the interface of the linking stage.
#pragma once

#include <cstdint>
#include <string>

#include "catalog/catalog.h"
#include "common/status.h"

namespace scisearch::context {

struct LinkOptions {
  std::string root;  // only the datasets under this folder; "" = every dataset
  // How far an instrument's clock may be from the log's and a file still count as
  // acquired in a booking (at a lower confidence outside the booking itself).
  int64_t clock_skew_seconds = 30 * 60;
};

struct LinkSummary {
  int64_t datasets = 0;           // datasets considered (state "ok")
  int64_t with_session = 0;       // linked to a session
  int64_t with_proposal = 0;      // linked to a proposal
  int64_t with_publications = 0;  // linked to at least one publication
  int64_t tags = 0;               // context tags of the datasets considered
  int64_t unchanged = 0;          // datasets whose context was already as concluded
  double seconds = 0;
};

// Links every stored dataset under options.root and writes its context tags,
// replacing what an earlier run concluded (tags people accepted or rejected stay).
// Reads the catalog's people, proposals, sessions and publications once. Errors:
// the catalog's, with the dataset named. Thread-compatible, like the catalog.
Result<LinkSummary> LinkCatalog(catalog::Catalog& catalog, const LinkOptions& options);

}  // namespace scisearch::context
