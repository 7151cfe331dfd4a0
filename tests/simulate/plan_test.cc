// Tests of the facility plan and its ecosystem files: the plan must agree with
// itself (files inside their sessions, sessions inside their proposals, papers
// after their data), look like a facility (names, formats, modes, units), be
// deterministic, and its files must parse back.
#include "simulate/plan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace scisearch::simulate {
namespace {

namespace fs = std::filesystem;
using formats::DType;
using formats::Mode;
using Json = nlohmann::json;

FacilityPlan MakePlan(int64_t files, uint64_t seed = 1, int64_t size = 256) {
  PlanOptions options;
  options.files = files;
  options.seed = seed;
  options.image_size = size;
  Result<FacilityPlan> plan = MakeFacilityPlan(options);
  EXPECT_TRUE(plan.ok()) << plan.status().message();
  if (!plan.ok()) return {};
  return std::move(plan).value();
}

// The default plan, made once: most tests only read it.
const FacilityPlan& DefaultPlan() {
  static const FacilityPlan* plan = new FacilityPlan(MakePlan(2000));
  return *plan;
}

// Everything in a plan, as one JSON document (for comparing plans).
std::string Serialise(const FacilityPlan& plan) {
  Json j;
  for (const Instrument& i : plan.instruments) j["instruments"].push_back({i.id, i.name, i.kind});
  for (const Person& p : plan.people) j["people"].push_back({p.id, p.name, p.institution});
  for (const Proposal& p : plan.proposals) {
    j["proposals"].push_back({p.id, p.title, p.abstract, p.pi, p.team, p.start_date, p.end_date,
                              p.release_date, p.materials});
  }
  for (const Session& s : plan.sessions) {
    j["sessions"].push_back(
        {s.id, s.instrument, s.user, s.pi, s.proposal, s.start, s.end, s.notes});
  }
  for (const Publication& p : plan.publications) {
    j["publications"].push_back({p.doi, p.title, p.abstract, p.authors, p.date, p.proposals});
  }
  for (const PlannedFile& f : plan.files) {
    Json signals = Json::array();
    for (const PlannedSignal& s : f.signals) {
      Json axes = Json::array();
      for (const formats::Axis& a : s.axes) {
        axes.push_back({a.name, a.size, a.scale, a.offset, a.units, a.navigate});
      }
      const SceneSpec& c = s.scene;
      signals.push_back({s.name, int(s.dtype), axes, int(c.kind), int(c.quality), c.pixel_size_nm,
                         int(c.structure), c.lattice_constant_nm, c.rotation_deg, c.with_defects,
                         int(c.particle_shape), c.particle_diameter_nm, c.particle_size_spread,
                         c.particle_count, c.elements, c.beam_energy_kev, c.dark_field});
    }
    const formats::NormalisedFields& x = f.fields;
    j["files"].push_back({f.relative_path.generic_string(), int(f.format), f.session, f.proposal,
                          f.publications, x.acquired.value_or(""), x.instrument.value_or(""),
                          int(x.mode), x.beam_energy_kev.value_or(-1), x.magnification.value_or(-1),
                          x.pixel_size_m.value_or(-1), x.pixel_size_units.value_or(""),
                          x.detector.value_or(""), f.operator_name, f.sample_description, signals,
                          f.expert_tags, f.seed});
  }
  return j.dump();
}

template <typename T>
std::unordered_map<std::string, const T*> ById(const std::vector<T>& items) {
  std::unordered_map<std::string, const T*> map;
  for (const T& item : items) map.emplace(item.id, &item);
  return map;
}

std::unordered_map<std::string, const Publication*> ByDoi(const std::vector<Publication>& pubs) {
  std::unordered_map<std::string, const Publication*> map;
  for (const Publication& p : pubs) map.emplace(p.doi, &p);
  return map;
}

bool Contains(const std::vector<std::string>& items, const std::string& item) {
  return std::find(items.begin(), items.end(), item) != items.end();
}

TEST(PlanTest, InvalidOptionsAreRejected) {
  for (int64_t files : {int64_t(0), int64_t(-5)}) {
    PlanOptions options;
    options.files = files;
    Result<FacilityPlan> plan = MakeFacilityPlan(options);
    ASSERT_FALSE(plan.ok()) << files;
    EXPECT_EQ(plan.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(plan.status().message().find("files"), std::string::npos);
  }
  for (int64_t size : {int64_t(0), int64_t(15), int64_t(8193), int64_t(-256)}) {
    PlanOptions options;
    options.files = 10;
    options.image_size = size;
    Result<FacilityPlan> plan = MakeFacilityPlan(options);
    ASSERT_FALSE(plan.ok()) << size;
    EXPECT_EQ(plan.status().code(), ErrorCode::kInvalidArgument);
  }
  for (int64_t size : {int64_t(16), int64_t(8192)}) {
    PlanOptions options;
    options.files = 50;
    options.image_size = size;
    EXPECT_TRUE(MakeFacilityPlan(options).ok()) << size;
  }
}

TEST(PlanTest, SameOptionsGiveTheSamePlan) {
  const std::string a = Serialise(MakePlan(3000, 42));
  const std::string b = Serialise(MakePlan(3000, 42));
  EXPECT_EQ(a, b);
  EXPECT_NE(a, Serialise(MakePlan(3000, 43)));
  EXPECT_EQ(Serialise(DefaultPlan()), Serialise(MakePlan(2000)));
}

TEST(PlanTest, ExactFileCountsAtEveryScale) {
  for (int64_t n : {1, 2, 7, 31, 100, 1001, 12345}) {
    const FacilityPlan plan = MakePlan(n, uint64_t(n));
    EXPECT_EQ(int64_t(plan.files.size()), n);
    EXPECT_FALSE(plan.sessions.empty());
    EXPECT_FALSE(plan.proposals.empty());
    EXPECT_EQ(plan.instruments.size(), 4u);
  }
}

// The invariants every plan keeps, whatever its size, image size and seed.
void CheckInvariants(const FacilityPlan& plan, const std::string& label) {
  const auto proposals = ById(plan.proposals);
  const auto sessions = ById(plan.sessions);
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> spans;
  for (const Session& s : plan.sessions) {
    ASSERT_TRUE(proposals.count(s.proposal)) << label << " " << s.id;
    EXPECT_TRUE(Contains(proposals.at(s.proposal)->team, s.user)) << label << " " << s.id;
    EXPECT_LT(s.start, s.end) << label << " " << s.id;
    spans[s.instrument].emplace_back(s.start, s.end);
  }
  for (auto& [instrument, list] : spans) {
    std::sort(list.begin(), list.end());
    for (size_t i = 1; i < list.size(); ++i) {
      EXPECT_LE(list[i - 1].second, list[i].first) << label << " " << instrument;
    }
  }
  // Papers by proposal, to check that a file lists exactly the papers of its
  // proposal dated after its session (those could show its data).
  std::unordered_map<std::string, std::vector<const Publication*>> papers;
  for (const Publication& p : plan.publications) {
    for (const std::string& id : p.proposals) papers[id].push_back(&p);
  }
  std::unordered_set<std::string> paths;
  for (const PlannedFile& f : plan.files) {
    ASSERT_TRUE(sessions.count(f.session)) << label;
    const Session& s = *sessions.at(f.session);
    std::set<std::string> expected;
    for (const Publication* p : papers[f.proposal]) {
      if (p->date > s.end.substr(0, 10)) expected.insert(p->doi);
    }
    EXPECT_EQ(std::set<std::string>(f.publications.begin(), f.publications.end()), expected)
        << label << " " << f.relative_path;
    EXPECT_EQ(std::set<std::string>(f.publications.begin(), f.publications.end()).size(),
              f.publications.size())
        << label << " " << f.relative_path;
    EXPECT_TRUE(paths.insert(f.relative_path.generic_string()).second)
        << label << " " << f.relative_path;
    EXPECT_GE(*f.fields.acquired, s.start) << label << " " << f.relative_path;
    EXPECT_LE(*f.fields.acquired, s.end) << label << " " << f.relative_path;
    EXPECT_EQ(f.relative_path.begin()->string(), s.instrument) << label;
    for (const PlannedSignal& signal : f.signals) {
      for (const formats::Axis& a : signal.axes) {
        // Renderers accept 8..16384 pixels per side; spectra and scans stay small.
        EXPECT_GE(a.size, a.navigate ? 1 : 8) << label << " " << f.relative_path;
        EXPECT_LE(a.size, 16384) << label << " " << f.relative_path;
      }
    }
  }
}

// Papers that appear while their proposal still has sessions to come.
int PapersBeforeLaterSessions(const FacilityPlan& plan) {
  int count = 0;
  for (const Publication& p : plan.publications) {
    for (const Session& s : plan.sessions) {
      if (Contains(p.proposals, s.proposal) && s.end.substr(0, 10) >= p.date) {
        ++count;
        break;
      }
    }
  }
  return count;
}

TEST(PlanTest, InvariantsHoldAtEveryScaleSizeAndSeed) {
  const int64_t sizes[] = {16, 64, 256, 1024, 8192};
  const int64_t counts[] = {1, 3, 40, 500, 4000};
  int early_papers = 0;
  for (int i = 0; i < 5; ++i) {
    for (uint64_t seed : {uint64_t(1), uint64_t(99), uint64_t(0xdeadbeef)}) {
      const std::string label = std::to_string(counts[i]) + " files, size " +
                                std::to_string(sizes[i]) + ", seed " + std::to_string(seed);
      const FacilityPlan plan = MakePlan(counts[i], seed, sizes[i]);
      ASSERT_EQ(int64_t(plan.files.size()), counts[i]) << label;
      CheckInvariants(plan, label);
      early_papers += PapersBeforeLaterSessions(plan);
    }
  }
  // So that the file -> paper check above meets papers that must not be listed.
  EXPECT_GT(early_papers, 0);
}

TEST(PlanTest, PeopleProposalsAndScale) {
  const FacilityPlan& plan = DefaultPlan();
  EXPECT_GE(plan.people.size(), 20u);
  EXPECT_LE(plan.people.size(), 60u);
  std::set<std::string> ids;
  for (const Person& p : plan.people) {
    EXPECT_TRUE(ids.insert(p.id).second) << "duplicate person " << p.id;
    EXPECT_FALSE(p.name.empty());
    EXPECT_FALSE(p.institution.empty());
  }
  std::set<std::string> proposal_ids;
  int released = 0, private_now = 0;
  for (const Proposal& p : plan.proposals) {
    EXPECT_TRUE(proposal_ids.insert(p.id).second) << p.id;
    EXPECT_TRUE(ids.count(p.pi)) << p.id;
    ASSERT_FALSE(p.team.empty());
    EXPECT_EQ(p.team[0], p.pi);
    for (const std::string& member : p.team) EXPECT_TRUE(ids.count(member)) << member;
    EXPECT_LT(p.start_date, p.end_date);
    EXPECT_LT(p.end_date, p.release_date);
    EXPECT_GE(p.start_date, "2011-01-01");
    ASSERT_FALSE(p.materials.empty());
    // The abstract names what is studied as a formula.
    EXPECT_NE(p.abstract.find(p.materials[0]), std::string::npos) << p.abstract;
    (p.release_date < "2025-06-01" ? released : private_now)++;
  }
  EXPECT_GT(released, 0);
  EXPECT_GT(private_now, 0);
  EXPECT_GE(plan.proposals.size(), 5u);
}

TEST(PlanTest, SessionsBelongToTheirProposalsAndNeverOverlap) {
  const FacilityPlan& plan = DefaultPlan();
  const auto proposals = ById(plan.proposals);
  const auto instruments = ById(plan.instruments);
  std::map<std::string, std::vector<const Session*>> by_instrument;
  std::set<std::string> ids;
  for (const Session& s : plan.sessions) {
    EXPECT_TRUE(ids.insert(s.id).second) << s.id;
    ASSERT_TRUE(proposals.count(s.proposal)) << s.id;
    const Proposal& p = *proposals.at(s.proposal);
    EXPECT_TRUE(Contains(p.team, s.user)) << s.id << " user " << s.user;
    EXPECT_EQ(s.pi, p.pi) << s.id;
    EXPECT_TRUE(instruments.count(s.instrument)) << s.id;
    EXPECT_LT(s.start, s.end) << s.id;
    EXPECT_GE(s.start.substr(0, 10), p.start_date) << s.id;
    EXPECT_LE(s.end.substr(0, 10), p.end_date) << s.id;
    EXPECT_GE(s.start, "2011-01-01") << s.id;
    EXPECT_LE(s.end, "2025-01-01") << s.id;
    by_instrument[s.instrument].push_back(&s);
  }
  for (auto& [instrument, sessions] : by_instrument) {
    std::sort(sessions.begin(), sessions.end(),
              [](const Session* a, const Session* b) { return a->start < b->start; });
    for (size_t i = 1; i < sessions.size(); ++i) {
      EXPECT_LE(sessions[i - 1]->end, sessions[i]->start)
          << instrument << ": " << sessions[i - 1]->id << " overlaps " << sessions[i]->id;
    }
  }
  // Several instruments and years in use.
  EXPECT_GE(by_instrument.size(), 3u);
  std::set<std::string> years;
  for (const Session& s : plan.sessions) years.insert(s.start.substr(0, 4));
  EXPECT_GE(years.size(), 6u);
}

TEST(PlanTest, FilesLieInsideTheirSessionsInTimeOrder) {
  const FacilityPlan& plan = DefaultPlan();
  const auto sessions = ById(plan.sessions);
  std::map<std::string, std::string> last_in_session;
  const std::regex iso(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)");
  for (const PlannedFile& f : plan.files) {
    ASSERT_TRUE(sessions.count(f.session)) << f.relative_path;
    const Session& s = *sessions.at(f.session);
    EXPECT_EQ(f.proposal, s.proposal) << f.relative_path;
    ASSERT_TRUE(f.fields.acquired.has_value());
    const std::string& t = *f.fields.acquired;
    EXPECT_TRUE(std::regex_match(t, iso)) << t;
    EXPECT_GE(t, s.start) << f.relative_path;
    EXPECT_LE(t, s.end) << f.relative_path;
    auto [it, first] = last_in_session.emplace(f.session, t);
    if (!first) {
      EXPECT_LT(it->second, t) << "timestamps not increasing in " << f.session;
      it->second = t;
    }
  }
}

TEST(PlanTest, PathsFollowTheFacilityPatternAndAreUnique) {
  const FacilityPlan& plan = DefaultPlan();
  const auto sessions = ById(plan.sessions);
  std::unordered_map<std::string, std::string> surname;  // person id -> last name
  for (const Person& p : plan.people) surname[p.id] = p.name.substr(p.name.rfind(' ') + 1);
  const std::map<FileFormat, std::regex> names = {
      {FileFormat::kTia,
       std::regex(R"(\d\d\.\d\d\.\d\d (Scanning Acquire|CCD Acquire|Search|Preview|)"
                  R"(Spectrum Acquire|Spectrum Imaging)_\d{4}\.emi)")},
      {FileFormat::kDm3, std::regex(R"(.+\.dm3)")},
      {FileFormat::kDm4, std::regex(R"(.+\.dm4)")},
      {FileFormat::kVeloxEmd, std::regex(R"(\d{4} .+\.emd)")},
      {FileFormat::kFeiTiff, std::regex(R"(.+\.tif)")},
      {FileFormat::kBerkeleyEmd,
       std::regex(R"((scan_x\d+_y\d+_\d{4}|data_scan\d{7}_id\d{5})\.emd)")},
      {FileFormat::kMrc, std::regex(R"(.+\.mrc)")},
  };
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::unordered_set<std::string> seen;
  std::set<int> date_forms;
  int lower_case_folders = 0;
  for (const PlannedFile& f : plan.files) {
    const std::string path = f.relative_path.generic_string();
    EXPECT_TRUE(seen.insert(path).second) << "duplicate " << path;
    std::vector<std::string> parts;
    for (const fs::path& part : f.relative_path) parts.push_back(part.string());
    ASSERT_EQ(parts.size(), 5u) << path;
    const Session& s = *sessions.at(f.session);
    EXPECT_EQ(parts[0], s.instrument) << path;
    EXPECT_EQ(parts[1], surname[s.pi]) << path;
    EXPECT_EQ(parts[2], s.start.substr(0, 4)) << path;
    // The folder starts with the session's date in one of the typed forms.
    const std::string y = s.start.substr(0, 4), m = s.start.substr(5, 2), d = s.start.substr(8, 2);
    const std::string compact = y + m + d, iso = y + "-" + m + "-" + d;
    const std::string dmy = d + kMonths[std::stoi(m) - 1] + y.substr(2);
    const std::string& folder = parts[3];
    if (folder.rfind(compact + " - ", 0) == 0) {
      date_forms.insert(0);
    } else if (folder.rfind(compact + "_", 0) == 0) {
      date_forms.insert(3);
    } else if (folder.rfind(iso + " ", 0) == 0) {
      date_forms.insert(1);
    } else if (folder.rfind(dmy + " ", 0) == 0) {
      date_forms.insert(2);
    } else {
      ADD_FAILURE() << "folder without its date: " << path;
    }
    if (std::none_of(folder.begin() + 9, folder.end(),
                     [](char c) { return c >= 'A' && c <= 'Z'; })) {
      ++lower_case_folders;
    }
    EXPECT_TRUE(std::regex_match(parts[4], names.at(f.format))) << path;
    for (const std::string& part : parts) {
      EXPECT_EQ(part.find_first_of("\\:*?\"<>|"), std::string::npos) << path;
      EXPECT_FALSE(part.empty());
    }
  }
  EXPECT_GE(date_forms.size(), 3u) << "people type dates in several forms";
  EXPECT_GT(lower_case_folders, 0);
}

TEST(PlanTest, MetadataIsConsistentWithSceneAndInstrument) {
  const FacilityPlan& plan = DefaultPlan();
  const auto sessions = ById(plan.sessions);
  const auto instruments = ById(plan.instruments);
  std::set<FileFormat> formats_seen;
  std::set<Mode> modes_seen;
  int poor = 0, multi = 0, four_d = 0, spectrum_images = 0, series = 0;
  for (const PlannedFile& f : plan.files) {
    const std::string path = f.relative_path.generic_string();
    const Instrument& instrument = *instruments.at(sessions.at(f.session)->instrument);
    formats_seen.insert(f.format);
    modes_seen.insert(f.fields.mode);
    EXPECT_EQ(f.fields.instrument.value_or(""), instrument.name) << path;
    ASSERT_FALSE(f.signals.empty()) << path;
    ASSERT_TRUE(f.fields.beam_energy_kev.has_value()) << path;
    const double kv = *f.fields.beam_energy_kev;
    if (instrument.kind == "sem") {
      EXPECT_EQ(f.format, FileFormat::kFeiTiff) << path;
      EXPECT_EQ(f.fields.mode, Mode::kSemImage) << path;
      EXPECT_GE(kv, 1.0);
      EXPECT_LE(kv, 30.0);
    } else {
      EXPECT_GE(kv, 80.0) << path;
      EXPECT_LE(kv, 300.0) << path;
      EXPECT_NE(f.format, FileFormat::kFeiTiff) << path;
    }
    if (instrument.kind == "4dstem") {
      EXPECT_TRUE(f.format == FileFormat::kBerkeleyEmd || f.format == FileFormat::kMrc) << path;
    }
    if (f.signals.size() > 1) ++multi;
    bool poor_file = false;
    for (const PlannedSignal& s : f.signals) {
      ASSERT_FALSE(s.axes.empty()) << path;
      for (const formats::Axis& a : s.axes) {
        EXPECT_GT(a.size, 0) << path;
        EXPECT_GT(a.scale, 0.0) << path;
        EXPECT_FALSE(a.name.empty()) << path;
      }
      EXPECT_EQ(s.scene.beam_energy_kev, kv) << path;
      if (s.scene.quality != Quality::kGood) poor_file = true;
      const bool spectrum =
          s.scene.kind == SceneKind::kEdsSpectrum || s.scene.kind == SceneKind::kEelsSpectrum;
      if (spectrum) {
        EXPECT_EQ(s.axes.back().units, "eV") << path;
        EXPECT_EQ(s.axes.back().scale, s.scene.pixel_size_nm) << path;
        EXPECT_EQ(s.axes.back().offset, s.scene.energy_offset_ev) << path;
        // Spectra in float32; spectrum images as X-ray counts (Velox stores events).
        EXPECT_EQ(s.dtype, s.axes.size() == 1 ? DType::kFloat32 : DType::kInt32) << path;
        EXPECT_FALSE(s.scene.elements.empty()) << path;
      } else if ((s.scene.kind == SceneKind::kSpotDiffraction ||
                  s.scene.kind == SceneKind::kRingDiffraction) &&
                 f.format == FileFormat::kMrc) {
        // An MRC cell cannot hold a reciprocal length: the camera's frames are in pixels.
        EXPECT_EQ(s.axes.back().units, "") << path;
        EXPECT_FALSE(f.fields.pixel_size_m) << path;
      } else if (s.scene.kind == SceneKind::kSpotDiffraction ||
                 s.scene.kind == SceneKind::kRingDiffraction) {
        EXPECT_EQ(s.axes.back().units, "1/nm") << path;
        EXPECT_DOUBLE_EQ(s.axes.back().scale, s.scene.pixel_size_nm) << path;
      } else {
        EXPECT_EQ(s.axes.back().units, "nm") << path;
        EXPECT_DOUBLE_EQ(s.axes.back().scale, s.scene.pixel_size_nm) << path;
        if (f.format == FileFormat::kTia || f.format == FileFormat::kVeloxEmd) {
          EXPECT_EQ(s.dtype, DType::kUInt16) << path;
        }
        if (f.format == FileFormat::kFeiTiff) {
          EXPECT_TRUE(s.dtype == DType::kUInt8 || s.dtype == DType::kUInt16) << path;
          EXPECT_EQ(s.axes.size(), 2u) << path;
        }
      }
      // Leading navigation axes, then the frame's own.
      bool frame_started = false;
      for (const formats::Axis& a : s.axes) {
        if (!a.navigate) frame_started = true;
        EXPECT_FALSE(a.navigate && frame_started) << path << " navigate axis after frame axes";
      }
    }
    if (poor_file) ++poor;
    switch (f.fields.mode) {
      case Mode::kDiffraction:
        if (f.format != FileFormat::kMrc) {
          EXPECT_EQ(f.fields.pixel_size_units.value_or(""), "1/m") << path;
        }
        EXPECT_TRUE(Contains(f.expert_tags, "diffraction") || Contains(f.expert_tags, "blank"))
            << path;
        break;
      case Mode::k4dStem:
        ++four_d;
        EXPECT_EQ(f.signals[0].axes.size(), 4u) << path;
        EXPECT_TRUE(f.signals[0].axes[0].navigate && f.signals[0].axes[1].navigate) << path;
        EXPECT_EQ(f.fields.pixel_size_units.value_or(""), "1/m") << path;
        EXPECT_TRUE(Contains(f.expert_tags, "4D-STEM")) << path;
        break;
      case Mode::kSpectrumImage:
        ++spectrum_images;
        EXPECT_EQ(f.signals.back().axes.size(), 3u) << path;
        EXPECT_TRUE(Contains(f.expert_tags, "EDS")) << path;
        break;
      case Mode::kStemImage:
      case Mode::kTemImage:
      case Mode::kSemImage: {
        EXPECT_EQ(f.fields.pixel_size_units.value_or(""), "m") << path;
        ASSERT_TRUE(f.fields.pixel_size_m && f.fields.magnification) << path;
        EXPECT_NEAR(*f.fields.pixel_size_m, f.signals[0].scene.pixel_size_nm * 1e-9,
                    1e-6 * *f.fields.pixel_size_m)
            << path;
        EXPECT_GT(*f.fields.magnification, 10.0) << path;
        EXPECT_EQ(*f.fields.magnification, std::round(*f.fields.magnification)) << path;
        if (f.signals[0].axes.size() == 3) ++series;
        break;
      }
      case Mode::kSpectrum:
        EXPECT_EQ(f.signals[0].axes.size(), 1u) << path;
        break;
      default:
        ADD_FAILURE() << "unexpected mode for " << path;
    }
    // A lattice image resolves its lattice: several pixels per unit cell.
    const SceneSpec& first = f.signals[0].scene;
    if (first.kind == SceneKind::kAtomicLattice && f.fields.pixel_size_m) {
      EXPECT_LE(*f.fields.pixel_size_m, first.lattice_constant_nm * 1e-9 / 3.0) << path;
      EXPECT_EQ(*f.fields.pixel_size_units, "m") << path;
    }
  }
  EXPECT_EQ(formats_seen.size(), 7u) << "every format is written";
  EXPECT_GE(modes_seen.size(), 7u);
  const double poor_share = double(poor) / double(plan.files.size());
  EXPECT_GT(poor_share, 0.05);
  EXPECT_LT(poor_share, 0.18);
  EXPECT_GT(multi, 0);
  EXPECT_GT(four_d, 0);
  EXPECT_GT(spectrum_images, 0);
  EXPECT_GT(series, 0);
}

TEST(PlanTest, TagsNameMaterialsElementsAndTechnique) {
  const FacilityPlan& plan = DefaultPlan();
  const auto proposals = ById(plan.proposals);
  const std::set<std::string> techniques = {
      "HAADF-STEM", "HRTEM", "TEM", "SAED",   "nanobeam diffraction",
      "EDS",        "EELS",  "SEM", "4D-STEM"};
  std::map<std::string, int> tag_counts;
  for (const PlannedFile& f : plan.files) {
    const std::string path = f.relative_path.generic_string();
    const Proposal& p = *proposals.at(f.proposal);
    EXPECT_TRUE(std::any_of(p.materials.begin(), p.materials.end(),
                            [&](const std::string& m) { return Contains(f.expert_tags, m); }))
        << path << ": no material of " << p.id;
    for (const PlannedSignal& s : f.signals) {
      for (const std::string& e : s.scene.elements) {
        EXPECT_TRUE(Contains(f.expert_tags, e)) << path << " lacks element " << e;
      }
    }
    EXPECT_TRUE(std::any_of(f.expert_tags.begin(), f.expert_tags.end(), [&](const std::string& t) {
      return techniques.count(t) > 0;
    })) << path;
    std::set<std::string> unique(f.expert_tags.begin(), f.expert_tags.end());
    EXPECT_EQ(unique.size(), f.expert_tags.size()) << path << " repeats a tag";
    for (const std::string& t : f.expert_tags) {
      EXPECT_FALSE(t.empty()) << path;
      ++tag_counts[t];
    }
  }
  for (const char* common : {"atomic resolution", "nanoparticles", "diffraction", "out of focus",
                             "lattice fringes", "HAADF-STEM", "EDS"}) {
    EXPECT_GT(tag_counts[common], 0) << common;
  }
}

TEST(PlanTest, PublicationsFollowTheirSessionsAndLinkTheirFiles) {
  const FacilityPlan& plan = DefaultPlan();
  ASSERT_FALSE(plan.publications.empty());
  const auto proposals = ById(plan.proposals);
  const auto sessions = ById(plan.sessions);
  const auto pubs = ByDoi(plan.publications);
  EXPECT_EQ(pubs.size(), plan.publications.size()) << "DOIs are unique";
  std::map<std::string, std::string> first_session_end;  // proposal -> earliest session end
  for (const Session& s : plan.sessions) {
    auto [it, inserted] = first_session_end.emplace(s.proposal, s.end);
    if (!inserted) it->second = std::min(it->second, s.end);
  }
  const std::regex doi(R"(10\.\d{4,5}/\S+)");
  const std::regex date(R"(\d{4}-\d\d-\d\d)");
  for (const Publication& p : plan.publications) {
    EXPECT_TRUE(std::regex_match(p.doi, doi)) << p.doi;
    EXPECT_TRUE(std::regex_match(p.date, date)) << p.date;
    ASSERT_FALSE(p.proposals.empty()) << p.doi;
    ASSERT_FALSE(p.authors.empty()) << p.doi;
    const Proposal& first = *proposals.at(p.proposals[0]);
    for (const std::string& id : p.proposals) {
      ASSERT_TRUE(proposals.count(id)) << p.doi << " acknowledges unknown " << id;
      ASSERT_TRUE(first_session_end.count(id)) << p.doi;
      EXPECT_GT(p.date, first_session_end.at(id).substr(0, 10)) << p.doi;
    }
    const bool names_a_material =
        std::any_of(first.materials.begin(), first.materials.end(), [&](const std::string& m) {
          return p.title.find(m) != std::string::npos || p.abstract.find(m) != std::string::npos;
        });
    EXPECT_TRUE(names_a_material) << p.doi;
  }
  // A file lists exactly the papers of its proposal dated after its session.
  int linked = 0;
  for (const PlannedFile& f : plan.files) {
    const Session& s = *sessions.at(f.session);
    std::set<std::string> expected;
    for (const Publication& p : plan.publications) {
      if (Contains(p.proposals, f.proposal) && p.date > s.end.substr(0, 10)) expected.insert(p.doi);
    }
    const std::set<std::string> listed(f.publications.begin(), f.publications.end());
    EXPECT_EQ(listed, expected) << f.relative_path;
    if (!listed.empty()) ++linked;
  }
  EXPECT_GT(linked, 0);
  EXPECT_LT(linked, int(plan.files.size()));
}

// ---------------------------------------------------------------------------
// Ecosystem files.

class EcosystemTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("plan_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
            std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  fs::path dir_;
};

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// RFC 4180 rows: quoted fields may hold commas, doubled quotes and line breaks.
std::vector<std::vector<std::string>> ParseCsv(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      row.push_back(std::move(field));
      field.clear();
    } else if (c == '\r') {
      continue;
    } else if (c == '\n') {
      row.push_back(std::move(field));
      field.clear();
      rows.push_back(std::move(row));
      row.clear();
    } else {
      field += c;
    }
  }
  if (!field.empty() || !row.empty()) {
    row.push_back(std::move(field));
    rows.push_back(std::move(row));
  }
  return rows;
}

TEST_F(EcosystemTest, FilesParseBackAndAgreeWithThePlan) {
  const FacilityPlan plan = MakePlan(1500, 7);
  ASSERT_TRUE(WriteEcosystem(plan, dir_).ok());

  // Logs: one row per session, in the plan's order, every field as planned.
  size_t rows_total = 0;
  bool quoted_note = false;
  for (const Instrument& instrument : plan.instruments) {
    const fs::path log = dir_ / "logs" / (instrument.id + ".csv");
    ASSERT_TRUE(fs::exists(log)) << log;
    const auto rows = ParseCsv(ReadAll(log));
    ASSERT_FALSE(rows.empty());
    EXPECT_EQ(rows[0],
              (std::vector<std::string>{"user", "pi", "proposal", "start", "end", "notes"}));
    std::vector<const Session*> expected;
    for (const Session& s : plan.sessions) {
      if (s.instrument == instrument.id) expected.push_back(&s);
    }
    ASSERT_EQ(rows.size(), expected.size() + 1) << log;
    for (size_t i = 0; i < expected.size(); ++i) {
      const Session& s = *expected[i];
      EXPECT_EQ(rows[i + 1],
                (std::vector<std::string>{s.user, s.pi, s.proposal, s.start, s.end, s.notes}))
          << log << " row " << i + 1;
      if (s.notes.find_first_of(",\"\n") != std::string::npos) quoted_note = true;
    }
    rows_total += expected.size();
  }
  EXPECT_EQ(rows_total, plan.sessions.size());
  EXPECT_TRUE(quoted_note) << "some notes need CSV quoting";

  for (const Proposal& p : plan.proposals) {
    const fs::path file = dir_ / "proposals" / (p.id + ".json");
    ASSERT_TRUE(fs::exists(file)) << file;
    const Json j = Json::parse(ReadAll(file));
    EXPECT_EQ(j.at("id"), p.id);
    EXPECT_EQ(j.at("title"), p.title);
    EXPECT_EQ(j.at("abstract"), p.abstract);
    EXPECT_EQ(j.at("pi").at("id"), p.pi);
    EXPECT_FALSE(j.at("pi").at("name").get<std::string>().empty());
    EXPECT_EQ(j.at("team").size(), p.team.size());
    EXPECT_EQ(j.at("start_date"), p.start_date);
    EXPECT_EQ(j.at("end_date"), p.end_date);
    EXPECT_EQ(j.at("release_date"), p.release_date);
    EXPECT_EQ(j.at("materials").get<std::vector<std::string>>(), p.materials);
  }
  size_t publication_files = 0;
  for (const auto& entry : fs::directory_iterator(dir_ / "publications")) {
    (void)entry;
    ++publication_files;
  }
  EXPECT_EQ(publication_files, plan.publications.size());
  for (const Publication& p : plan.publications) {
    std::string name = p.doi;
    std::replace(name.begin(), name.end(), '/', '_');
    const fs::path file = dir_ / "publications" / (name + ".json");
    ASSERT_TRUE(fs::exists(file)) << file;
    const Json j = Json::parse(ReadAll(file));
    EXPECT_EQ(j.at("doi"), p.doi);
    EXPECT_EQ(j.at("title"), p.title);
    EXPECT_EQ(j.at("date"), p.date);
    EXPECT_EQ(j.at("authors").get<std::vector<std::string>>(), p.authors);
    EXPECT_EQ(j.at("proposals").get<std::vector<std::string>>(), p.proposals);
  }

  std::ifstream truth(dir_ / "truth.jsonl");
  ASSERT_TRUE(truth.good());
  std::string line;
  size_t index = 0;
  const auto sessions = ById(plan.sessions);
  while (std::getline(truth, line)) {
    ASSERT_LT(index, plan.files.size());
    const PlannedFile& f = plan.files[index++];
    const Json j = Json::parse(line);
    EXPECT_EQ(j.at("path"), f.relative_path.generic_string());
    EXPECT_EQ(j.at("session"), f.session);
    EXPECT_EQ(j.at("proposal"), f.proposal);
    EXPECT_EQ(j.at("publications").get<std::vector<std::string>>(), f.publications);
    EXPECT_EQ(j.at("instrument"), sessions.at(f.session)->instrument);
    EXPECT_EQ(j.at("mode"), std::string(formats::ModeName(f.fields.mode)));
    EXPECT_EQ(j.at("acquired"), *f.fields.acquired);
    EXPECT_EQ(j.at("tags").get<std::vector<std::string>>(), f.expert_tags);
    const std::string format = j.at("format");
    const std::set<std::string> known = {"tia",  "dm3",       "dm4",         "mrc",
                                         "tiff", "emd-velox", "emd-berkeley"};
    EXPECT_TRUE(known.count(format)) << format;
    EXPECT_EQ(j.at("signals").size(), f.signals.size());
  }
  EXPECT_EQ(index, plan.files.size());
  // Nothing half-written is left behind.
  for (const auto& entry : fs::recursive_directory_iterator(dir_)) {
    EXPECT_EQ(entry.path().string().find(".partial"), std::string::npos) << entry.path();
  }
}

TEST_F(EcosystemTest, UnwritableTargetIsAnError) {
  const FacilityPlan plan = MakePlan(20, 3);
  // A file where the logs directory should be.
  std::ofstream(dir_ / "logs") << "x";
  const Status status = WriteEcosystem(plan, dir_);
  EXPECT_FALSE(status.ok());
}

TEST(PlanScaleTest, HundredThousandFilesPlanQuickly) {
  const auto start = std::chrono::steady_clock::now();
  const FacilityPlan plan = MakePlan(100000, 5);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("planned %zu files, %zu sessions, %zu proposals, %zu papers in %.2f s\n",
              plan.files.size(), plan.sessions.size(), plan.proposals.size(),
              plan.publications.size(), seconds);
  ASSERT_EQ(plan.files.size(), 100000u);
  std::unordered_set<std::string> paths;
  paths.reserve(plan.files.size());
  for (const PlannedFile& f : plan.files) {
    EXPECT_TRUE(paths.insert(f.relative_path.generic_string()).second) << f.relative_path;
  }
  // Bookings stay disjoint when the facility is busy.
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> by_instrument;
  for (const Session& s : plan.sessions) by_instrument[s.instrument].emplace_back(s.start, s.end);
  for (auto& [instrument, spans] : by_instrument) {
    std::sort(spans.begin(), spans.end());
    for (size_t i = 1; i < spans.size(); ++i) {
      EXPECT_LE(spans[i - 1].second, spans[i].first) << instrument;
    }
  }
}

}  // namespace
}  // namespace scisearch::simulate
