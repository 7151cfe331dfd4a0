// The facility plan: who used which instrument when, for which proposal, and
// what each file they wrote shows. Internal to the simulate module. The plan is
// pure data, derived from a seed; the simulator writes files from it, and
// truth.jsonl is the plan's own record of what every file is.
//
// Thread safety: MakeFacilityPlan and the writers of the ecosystem files may be
// called from any thread; a FacilityPlan is immutable once made.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "formats/formats.h"
#include "simulate/scene.h"

namespace scisearch::simulate {

enum class FileFormat { kTia, kDm3, kDm4, kMrc, kFeiTiff, kVeloxEmd, kBerkeleyEmd };
// The name formats::Dataset::format has when our readers open a file of this
// format: "tia", "dm3", "dm4", "mrc", "tiff", "emd-velox", "emd-berkeley".
std::string_view FileFormatName(FileFormat format);

struct Instrument {
  std::string id;    // folder name at the top of the tree: "TitanX", "Merlin-SEM", "4DCamera"
  std::string name;  // as the instrument software writes it: "FEI Titan", "Zeiss Merlin"
  std::string kind;  // "tem", "sem", "4dstem"
};

struct Person {
  std::string id;    // "jsmith"
  std::string name;  // "Jane Smith"
  std::string institution;
};

struct Proposal {
  std::string id;  // "P-2011-0142"
  std::string title;
  std::string abstract;  // the words scientists use: formulas and names (PbSe, lead selenide)
  std::string pi;        // Person id
  std::vector<std::string> team;                   // Person ids, PI included
  std::string start_date, end_date, release_date;  // ISO dates; data private until release_date
  std::vector<std::string> materials;  // canonical formulas studied ("PbSe", "SrTiO3", "Au")
};

struct Session {
  std::string id;          // "TitanX-20111013-1"
  std::string instrument;  // Instrument id
  std::string user;        // Person id at the instrument
  std::string pi;          // Person id
  std::string proposal;    // Proposal id
  std::string start, end;  // ISO 8601 local times of the booking
  std::string notes;       // what the user wrote in the log
};

struct Publication {
  std::string doi;
  std::string title;
  std::string abstract;
  std::vector<std::string> authors;    // display names
  std::string date;                    // ISO date
  std::vector<std::string> proposals;  // acknowledged proposal ids
};

struct PlannedSignal {
  std::string name;  // detector: "HAADF", "BF", "EDS", "SE", ...
  SceneSpec scene;
  std::vector<formats::Axis> axes;  // C order; sizes give the shape
  formats::DType dtype = formats::DType::kUInt16;
};

struct PlannedFile {
  std::filesystem::path relative_path;  // INSTRUMENT/PI/YEAR/YYYYMMDD - sample words/HH.MM.SS ...
  FileFormat format = FileFormat::kTia;
  std::string session;                    // Session id
  std::string proposal;                   // Proposal id
  std::vector<std::string> publications;  // DOIs of papers that used this file
  formats::NormalisedFields fields;  // what the instrument records (acquired inside the session)
  std::string operator_name;
  std::string sample_description;
  std::vector<PlannedSignal> signals;
  std::vector<std::string> expert_tags;  // materials, elements, technique, features
  uint64_t seed = 0;                     // for this file's renders
};

struct FacilityPlan {
  std::vector<Instrument> instruments;
  std::vector<Person> people;
  std::vector<Proposal> proposals;
  std::vector<Session> sessions;
  std::vector<Publication> publications;
  std::vector<PlannedFile> files;
};

struct PlanOptions {
  int64_t files = 2000;
  uint64_t seed = 1;
  int64_t image_size = 256;  // pixels along each side of an image (the --size flag); spectra
                             // and 4D-STEM scale from it
};

// Plans a facility of `options.files` files. Deterministic: the same options give
// the same plan on every machine. Errors: kInvalidArgument for files < 1 or a size
// outside 16..8192.
Result<FacilityPlan> MakeFacilityPlan(const PlanOptions& options);

// Writes the ecosystem beside the data: logs/<instrument>.csv (user, PI, proposal,
// start, end, notes), proposals/<id>.json, publications/<doi-as-filename>.json and
// truth.jsonl (one line per planned file: path, format, session, proposal,
// publications, instrument, mode, expert tags) under `out`.
Status WriteEcosystem(const FacilityPlan& plan, const std::filesystem::path& out);

}  // namespace scisearch::simulate
