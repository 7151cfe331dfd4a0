// The files around the data: user logs, proposals, publications and the truth.
//
// Every file is written through WriteFileAtomically, so an interrupted run
// leaves whole files or none. truth.jsonl is streamed line by line (a million
// lines would not fit comfortably in one string).
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <vector>

#include "simulate/atomic_file.h"
#include "simulate/plan.h"

namespace scisearch::simulate {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

std::string_view SceneKindName(SceneKind kind) {
  switch (kind) {
    case SceneKind::kAtomicLattice:
      return "atomic lattice";
    case SceneKind::kNanoparticles:
      return "nanoparticles";
    case SceneKind::kSpotDiffraction:
      return "spot diffraction";
    case SceneKind::kRingDiffraction:
      return "ring diffraction";
    case SceneKind::kSemTexture:
      return "sem texture";
    case SceneKind::kEdsSpectrum:
      return "eds spectrum";
    case SceneKind::kEelsSpectrum:
      return "eels spectrum";
  }
  return "unknown";
}

std::string_view QualityName(Quality quality) {
  switch (quality) {
    case Quality::kGood:
      return "good";
    case Quality::kOutOfFocus:
      return "out of focus";
    case Quality::kSaturated:
      return "saturated";
    case Quality::kBlank:
      return "blank";
    case Quality::kVeryNoisy:
      return "very noisy";
    case Quality::kDrifted:
      return "drifted";
  }
  return "unknown";
}

// RFC 4180: a field with a comma, quote or line break is quoted, quotes doubled.
std::string CsvField(std::string_view text) {
  if (text.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(text);
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

// "10.1021/acsnano.6b01234" -> "10.1021_acsnano.6b01234"; any other character a
// file name cannot hold becomes '_' too.
std::string DoiFileName(std::string_view doi) {
  std::string out(doi);
  for (char& c : out) {
    if (c == '/' || c == '\\' || c == ':' || c == '*' || c == '?' || c == '"' || c == '<' ||
        c == '>' || c == '|' || static_cast<unsigned char>(c) < 0x20) {
      c = '_';
    }
  }
  return out;
}

Status WriteText(const fs::path& target, const std::string& text) {
  return WriteBytesAtomically(target, text.data(), text.size());
}

// Serialises with nlohmann, which throws on invalid UTF-8: the error stays here.
Result<std::string> Dump(const Json& json, int indent) {
  try {
    return json.dump(indent);
  } catch (const std::exception& e) {
    return Status::Internal(std::string("cannot serialise JSON: ") + e.what());
  }
}

Json PersonJson(const std::unordered_map<std::string, const Person*>& people,
                const std::string& id) {
  Json j = Json::object();
  j["id"] = id;
  auto it = people.find(id);
  if (it != people.end()) {
    j["name"] = it->second->name;
    j["institution"] = it->second->institution;
  }
  return j;
}

Json TruthLine(const PlannedFile& file,
               const std::unordered_map<std::string, const Session*>& sessions) {
  Json j = Json::object();
  j["path"] = file.relative_path.generic_string();
  j["format"] = FileFormatName(file.format);
  j["session"] = file.session;
  j["proposal"] = file.proposal;
  j["publications"] = file.publications;
  auto session = sessions.find(file.session);
  j["instrument"] = session != sessions.end() ? session->second->instrument : "";
  j["instrument_name"] = file.fields.instrument.value_or("");
  j["mode"] = formats::ModeName(file.fields.mode);
  j["acquired"] = file.fields.acquired.value_or("");
  j["tags"] = file.expert_tags;
  if (file.fields.detector) j["detector"] = *file.fields.detector;
  if (file.fields.beam_energy_kev) j["beam_energy_kev"] = *file.fields.beam_energy_kev;
  if (file.fields.magnification) j["magnification"] = *file.fields.magnification;
  if (file.fields.pixel_size_m) {
    j["pixel_size"] = *file.fields.pixel_size_m;
    j["pixel_size_units"] = file.fields.pixel_size_units.value_or("m");
  }
  Json signals = Json::array();
  for (const PlannedSignal& s : file.signals) {
    Json js = Json::object();
    js["name"] = s.name;
    Json shape = Json::array();
    for (const formats::Axis& a : s.axes) shape.push_back(a.size);
    js["shape"] = std::move(shape);
    js["dtype"] = formats::DTypeName(s.dtype);
    js["scene"] = SceneKindName(s.scene.kind);
    js["quality"] = QualityName(s.scene.quality);
    signals.push_back(std::move(js));
  }
  j["signals"] = std::move(signals);
  return j;
}

}  // namespace

Status WriteEcosystem(const FacilityPlan& plan, const fs::path& out) {
  std::unordered_map<std::string, const Person*> people;
  for (const Person& p : plan.people) people.emplace(p.id, &p);
  std::unordered_map<std::string, const Session*> sessions;
  for (const Session& s : plan.sessions) sessions.emplace(s.id, &s);

  // The folders exist even when empty (a facility with no papers yet).
  for (const char* folder : {"logs", "proposals", "publications"}) {
    std::error_code ec;
    fs::create_directories(out / folder, ec);
    if (ec) return Status::IoError((out / folder).string() + ": cannot create: " + ec.message());
  }

  // logs/<instrument>.csv, the bookings in time order.
  for (const Instrument& instrument : plan.instruments) {
    std::string csv = "user,pi,proposal,start,end,notes\r\n";
    for (const Session& s : plan.sessions) {
      if (s.instrument != instrument.id) continue;
      csv += CsvField(s.user) + "," + CsvField(s.pi) + "," + CsvField(s.proposal) + "," +
             CsvField(s.start) + "," + CsvField(s.end) + "," + CsvField(s.notes) + "\r\n";
    }
    SCISEARCH_RETURN_IF_ERROR(WriteText(out / "logs" / (instrument.id + ".csv"), csv));
  }

  // proposals/<id>.json
  for (const Proposal& p : plan.proposals) {
    Json j = Json::object();
    j["id"] = p.id;
    j["title"] = p.title;
    j["abstract"] = p.abstract;
    j["pi"] = PersonJson(people, p.pi);
    Json team = Json::array();
    for (const std::string& member : p.team) team.push_back(PersonJson(people, member));
    j["team"] = std::move(team);
    j["start_date"] = p.start_date;
    j["end_date"] = p.end_date;
    j["release_date"] = p.release_date;
    j["materials"] = p.materials;
    SCISEARCH_ASSIGN_OR_RETURN(std::string text, Dump(j, 2));
    SCISEARCH_RETURN_IF_ERROR(WriteText(out / "proposals" / (p.id + ".json"), text + "\n"));
  }

  // publications/<doi>.json
  for (const Publication& p : plan.publications) {
    Json j = Json::object();
    j["doi"] = p.doi;
    j["title"] = p.title;
    j["abstract"] = p.abstract;
    j["authors"] = p.authors;
    j["date"] = p.date;
    j["proposals"] = p.proposals;
    SCISEARCH_ASSIGN_OR_RETURN(std::string text, Dump(j, 2));
    SCISEARCH_RETURN_IF_ERROR(
        WriteText(out / "publications" / (DoiFileName(p.doi) + ".json"), text + "\n"));
  }

  // truth.jsonl, streamed.
  return WriteFileAtomically(out / "truth.jsonl", [&](const fs::path& temporary) -> Status {
    std::ofstream stream(temporary, std::ios::binary | std::ios::trunc);
    if (!stream) return Status::IoError(temporary.string() + ": cannot create");
    for (const PlannedFile& file : plan.files) {
      SCISEARCH_ASSIGN_OR_RETURN(std::string line, Dump(TruthLine(file, sessions), -1));
      line += '\n';
      stream.write(line.data(), std::streamsize(line.size()));
      if (!stream) return Status::IoError(temporary.string() + ": write failed");
    }
    stream.close();
    if (!stream) return Status::IoError(temporary.string() + ": write failed");
    return Status::Ok();
  });
}

}  // namespace scisearch::simulate
