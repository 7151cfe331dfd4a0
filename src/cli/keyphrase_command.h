// `scisearch keyphrases --in DOCS.jsonl --top N`: the ranked keyphrases of each
// document of a JSON-lines file, with the file itself as the corpus for IDF.
#pragma once

#include <ostream>
#include <string>

namespace scisearch::cli {

// Reads `in_path`: one JSON object per line with "id" (string or integer) and "text"
// (or, without "text", "title" and/or "abstract"; other fields are ignored; blank
// lines are skipped). Counts every text into one corpus first, then writes for each
// good line, in file order, one line {"id": <id as given>, "keyphrases": [best
// first, at most `top`]} to `out`. A bad line is reported on `err` as "FILE:N:
// reason" and skipped.
// Returns 0 when every line was good, 1 when some line was bad, 2 when nothing could
// be done (the file cannot be read, `top` < 1) after one line on `err`.
// Any thread; the streams must not be used by another thread meanwhile.
int RunKeyphrases(const std::string& in_path, int top, std::ostream& out, std::ostream& err);

}  // namespace scisearch::cli
