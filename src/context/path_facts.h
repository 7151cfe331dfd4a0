// Facts mined from the folder and file names of one data file: dates and times of day,
// the instrument and the people named, technique and detector words, magnification,
// camera length, beam energy, sequence numbers, and the words that describe the sample.
//
// People type folder names by hand, so the parser reads the forms they really use:
// "20111013", "2011-10-13", "13Oct11", "Oct13" under a "2011" folder; "16.20.55" and
// "1713" at the start of a file name (the habits of TIA and Velox); "5.1 Mx", "x50k";
// "_0026_1" (element 1 of series 26); typos of one letter in longer names and words.
//
// Pure text code: no catalog, no file system. Every fact keeps the index of the path
// component it was read from, the text as written and a confidence in [0, 1], so that the
// linker and the tagger can weigh it against other evidence.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace scisearch::context {

// An instrument the facility knows: its id ("TitanX") and display name ("FEI Titan").
struct KnownInstrument {
  std::string id;
  std::string name;
};

// A person the facility knows: an account id ("aferreira") and a display name
// ("Andrew Ferreira"); the last word of the name is taken as the surname.
struct KnownPerson {
  std::string id;
  std::string name;
};

// What the facility knows, to recognise in names. Both lists may be empty.
struct PathVocabulary {
  std::vector<KnownInstrument> instruments;
  std::vector<KnownPerson> people;
};

// Where a fact was read.
struct PathEvidence {
  int component = -1;       // index into PathFacts::components (the file name is the last)
  std::string text;         // the characters as written in that component
  double confidence = 0.0;  // in [0, 1]
};

enum class DatePrecision { kYear, kMonth, kDay };

struct PathDate {
  int year = 0;   // 0 when no component gives a year ("Oct13" alone)
  int month = 0;  // 1-12; 0 for a year alone
  int day = 0;    // 1-31; 0 unless precision is kDay
  DatePrecision precision = DatePrecision::kYear;
  // The year was not written with this date but taken from another component
  // ("2011/Oct13 ws2").
  bool year_inferred = false;
  // ISO 8601: "2011-10-13", "2011-10", "2011"; "--10-13" when no year is known.
  std::string iso;
  PathEvidence evidence;
};

struct PathTime {
  int hour = 0;
  int minute = 0;
  int second = 0;
  bool has_seconds = false;
  std::string iso;  // "16:20:55", or "17:13" without seconds
  PathEvidence evidence;
};

// A known instrument or person named by a component.
struct PathEntityMatch {
  std::string id;    // KnownInstrument::id / KnownPerson::id
  std::string name;  // its display name
  int edits = 0;     // 0 exact, 1 for a one-letter typo
  PathEvidence evidence;
};

// A technique, detector, software or vocabulary word found in a name.
struct PathTerm {
  // The id of the nlp::DomainVocabulary() concept ("haadf", "saed", "ccd"); empty for
  // acquisition words the vocabulary has no concept for ("spectrum", "time series").
  std::string concept_id;
  std::string label;  // how it reads as a tag: the concept's label, else the word
  // Material and morphology concepts ("PbSe", "nanowires") describe the sample: they
  // are reported here and also stay in the sample text.
  bool describes_sample = false;
  int edits = 0;  // 1 when read through a typo ("SEAD" -> SAED)
  PathEvidence evidence;
};

struct PathQuantity {
  double value = 0.0;  // magnification in times, camera length in mm, energy in kV
  PathEvidence evidence;
};

// A number the acquisition software or the user counts files with.
struct PathSequence {
  int64_t number = -1;  // "_0026" -> 26; -1 when the component has only a copy index
  int element = -1;     // "_0026_1" -> 1 (a detector of a TIA series); -1 when absent
  int copy = -1;        // " (2)" -> 2; -1 when absent
  PathEvidence evidence;
};

// What a component was read as.
enum class ComponentRole {
  kUnknown,     // nothing recognised, or only software/organisation words
  kInstrument,  // names a known instrument and nothing else
  kPerson,      // names a known person and nothing else
  kYear,        // a year alone: "2012"
  kDate,        // a date and nothing else
  kSample,      // a folder with words left after every fact is taken out
  kFile,        // the last component
};

struct PathComponent {
  std::string text;  // as written (valid UTF-8; other bytes read as Windows-1252)
  ComponentRole role = ComponentRole::kUnknown;
  // Words left after dates, times, numbers, quantities, known names, technique and
  // software words are taken out, original casing, in order ("fau", "crystal").
  std::vector<std::string> words;
};

struct PathFacts {
  std::vector<PathComponent> components;  // in path order; the file name last
  std::string extension;                  // of the file name, lowercase, no dot: "ser"

  std::vector<PathDate> dates;   // every date read, in path order
  std::optional<PathDate> date;  // the most specific, nearest the file; year filled in
  std::vector<PathTime> times;
  std::optional<PathTime> time;  // the file name's, else the nearest

  std::vector<PathEntityMatch> instruments;  // best first
  std::vector<PathEntityMatch> people;       // best first; the role (PI, user) is unknown

  std::vector<PathTerm> terms;  // in path order; one per concept/label per component

  std::optional<PathQuantity> magnification;  // times: "18 kx" -> 18000
  std::optional<PathQuantity> camera_length;  // mm: "420mm" -> 420
  std::optional<PathQuantity> beam_energy;    // kV: "300kV" -> 300

  std::vector<PathSequence> sequences;   // every one read (folder copies included)
  std::optional<PathSequence> sequence;  // the file name's

  // The words that describe the sample, from the deepest sample folder and the file
  // name, original casing, words joined by single spaces, compounds kept whole
  // ("PbSe with ligands", "Ti-6-4 as received", "CdSe@ZnS"); empty when none.
  std::string sample_text;
  // The same split finer for word matching: "Au_NP3" -> "Au", "NP", "3"; formulas such
  // as "Fe3O4" and "SrTiO3" stay whole.
  std::vector<std::string> sample_words;
  std::vector<int> sample_components;  // the components sample_text was read from
  double sample_confidence = 0.0;
};

// Reads path facts with a facility's vocabulary compiled once (the lookup keys of every
// instrument and person), for parsing many paths. Immutable after construction: Parse may
// be called from any number of threads at once.
class PathFactsParser {
 public:
  explicit PathFactsParser(const PathVocabulary& known);
  ~PathFactsParser();
  PathFactsParser(const PathFactsParser&) = delete;
  PathFactsParser& operator=(const PathFactsParser&) = delete;
  PathFactsParser(PathFactsParser&&) noexcept;
  PathFactsParser& operator=(PathFactsParser&&) noexcept;

  // Reads the facts in `relative_path`, the path of a file under the ingest root with
  // '/' (or a backslash) between components, e.g. "TitanX/Ferreira/2012/20121011 - fau crystal
  // 2/17.57.52 Spectrum Acquire_0008.emi". Never fails: empty or hostile input gives
  // empty facts; bytes that are not UTF-8 are read as Windows-1252.
  PathFacts Parse(std::string_view relative_path) const;

  struct Keys;  // the compiled vocabulary (path_facts.cc)

 private:
  std::unique_ptr<const Keys> keys_;
};

// One-off convenience: PathFactsParser(known).Parse(relative_path). Pure function of its
// arguments; callable from any thread. Use a PathFactsParser for many paths.
PathFacts ParsePathFacts(std::string_view relative_path, const PathVocabulary& known);

// True when `a` and `b` differ by at most one edit: a letter changed, added or dropped,
// or two neighbours swapped. Compares bytes as given (callers fold case first).
bool WithinOneEdit(std::string_view a, std::string_view b);

}  // namespace scisearch::context
