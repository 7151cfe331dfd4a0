// libFuzzer target for the text the context stage reads from outside: user logs
// (CSV parsing, encodings, times), DOIs in papers, folder and file names,
// chemistry in names and prose, and keyphrase extraction. Every function must
// accept any bytes without crashing, hanging or reading out of bounds.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "context/loaders.h"
#include "context/path_facts.h"
#include "nlp/chemistry.h"
#include "nlp/keyphrases.h"

namespace {

using namespace scisearch;

void Exercise(std::string_view bytes) {
  const std::string text = context::DecodeText(bytes);
  const char delimiter = context::SniffDelimiter(text);
  const context::CsvTable table = context::ParseCsv(text, delimiter ? delimiter : ',');
  for (const auto& row : table.rows) {
    for (const std::string& cell : row.cells) {
      (void)context::ParseLogTime(cell, false, "");
      (void)context::ParseLogTime(cell, true, "");
    }
  }
  (void)context::FindDoi(text);
  const context::PathVocabulary known{{{"TitanX", "FEI Titan"}},
                                      {{"aferreira", "Andrew Ferreira"}}};
  (void)context::ParsePathFacts(bytes, known);
  (void)nlp::FindChemistry(bytes, nlp::TextStyle::kName);
  (void)nlp::FindChemistry(bytes, nlp::TextStyle::kProse);
  (void)nlp::ParseFormula(bytes.substr(0, 256));
  static const auto extractor = nlp::KeyphraseExtractor::Create();
  if (extractor.ok()) (void)extractor->Extract(text, nullptr, 10);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Exercise(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
