// Crawling: a bounded, symlink-safe walk of the ingest root, and the grouping of
// files into dataset units (TIA .emi + .ser, MRC + DE-Server sidecar).
#include "ingest/crawl.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <system_error>
#include <unordered_map>
#include <unordered_set>

#include "formats/formats.h"

namespace scisearch::ingest::internal {
namespace {

namespace fs = std::filesystem;

// Folders nested deeper than this are not entered (a guard against pathological trees).
constexpr int kMaxDepth = 128;

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "<stem>_<digits>.ser" -> "<stem>", else "".
std::string SerStem(const std::string& name) {
  const std::string lower = Lower(name);
  if (!EndsWith(lower, ".ser")) return "";
  const std::string base = name.substr(0, name.size() - 4);
  const size_t underscore = base.rfind('_');
  if (underscore == std::string::npos || underscore + 1 == base.size()) return "";
  for (size_t i = underscore + 1; i < base.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(base[i]))) return "";
  }
  return base.substr(0, underscore);
}

bool IsMrc(const std::string& name) {
  const std::string lower = Lower(name);
  return EndsWith(lower, ".mrc") || EndsWith(lower, ".mrcs");
}

// The DE-Server sidecar names an MRC may have: "<prefix>_movie.mrc" ->
// "<prefix>_info.txt"; "<stem>.mrc" -> "<stem>_info.txt".
std::vector<std::string> SidecarNames(const std::string& name) {
  const std::string stem = name.substr(0, name.rfind('.'));
  std::vector<std::string> out;
  if (EndsWith(Lower(stem), "_movie")) out.push_back(stem.substr(0, stem.size() - 6) + "_info.txt");
  out.push_back(stem + "_info.txt");
  return out;
}

bool StatFile(const fs::path& path, catalog::FileStat& out, std::string& error) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    error = std::error_code(errno, std::generic_category()).message();
    return false;
  }
  out.path = path.string();
  out.size_bytes = static_cast<uint64_t>(st.st_size);
  out.mtime_ns = int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return true;
}

}  // namespace

std::vector<std::vector<std::string>> GroupFolder(const std::vector<std::string>& names) {
  std::set<std::string> present(names.begin(), names.end());
  std::map<std::string, std::vector<std::string>> groups;  // primary -> other members
  std::set<std::string> claimed;
  // An .emi claims the <stem>_N.ser files beside it.
  for (const auto& name : names) {
    const std::string stem = SerStem(name);
    if (stem.empty()) continue;
    for (const char* ext : {".emi", ".EMI", ".Emi"}) {
      const std::string emi = stem + ext;
      if (present.count(emi)) {
        groups[emi].push_back(name);
        claimed.insert(name);
        break;
      }
    }
  }
  // An MRC claims its DE-Server sidecar.
  for (const auto& name : names) {
    if (!IsMrc(name)) continue;
    for (const auto& sidecar : SidecarNames(name)) {
      if (present.count(sidecar) && !claimed.count(sidecar)) {
        groups[name].push_back(sidecar);
        claimed.insert(sidecar);
        break;
      }
    }
  }
  std::vector<std::vector<std::string>> out;
  for (const auto& name : names) {
    if (claimed.count(name) || !formats::IsCandidateFile(name)) continue;
    std::vector<std::string> unit = {name};
    auto it = groups.find(name);
    if (it != groups.end()) {
      std::sort(it->second.begin(), it->second.end());
      unit.insert(unit.end(), it->second.begin(), it->second.end());
    }
    out.push_back(std::move(unit));
  }
  return out;
}

CrawlResult Crawl(const fs::path& root) {
  CrawlResult result;
  std::unordered_set<std::string> member_paths;  // canonical paths already in a unit
  std::vector<fs::path> symlinked_files;
  std::vector<std::pair<fs::path, int>> pending = {{root, 0}};
  while (!pending.empty()) {
    auto [dir, depth] = std::move(pending.back());
    pending.pop_back();
    std::error_code ec;
    fs::directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
    if (ec) {
      result.errors.emplace_back(dir.string(), "cannot list folder: " + ec.message());
      result.unreadable_dirs.push_back(dir.string());
      continue;
    }
    std::vector<std::string> names;
    for (; it != fs::directory_iterator(); it.increment(ec)) {
      if (ec) break;
      const fs::directory_entry& entry = *it;
      std::error_code type_ec;
      const fs::file_status link_status = entry.symlink_status(type_ec);
      if (type_ec) continue;
      const std::string name = entry.path().filename().string();
      if (fs::is_symlink(link_status)) {
        // Symlinked folders are not followed (no loops, no escaping the root);
        // symlinked files are taken under their canonical path.
        if (fs::is_regular_file(entry.status(type_ec)) && !type_ec &&
            formats::IsCandidateFile(name)) {
          symlinked_files.push_back(entry.path());
        }
        continue;
      }
      if (fs::is_directory(link_status)) {
        if (depth + 1 > kMaxDepth) {
          result.errors.emplace_back(entry.path().string(), "folder nested too deep; skipped");
          result.unreadable_dirs.push_back(entry.path().string());
        } else {
          pending.emplace_back(entry.path(), depth + 1);
        }
        continue;
      }
      if (!fs::is_regular_file(link_status)) continue;
      if (formats::IsCandidateFile(name) || EndsWith(Lower(name), "_info.txt")) {
        names.push_back(name);
      }
    }
    if (ec) {
      result.errors.emplace_back(dir.string(), "error while listing folder: " + ec.message());
      result.unreadable_dirs.push_back(dir.string());
    }
    std::sort(names.begin(), names.end());
    for (auto& group : GroupFolder(names)) {
      DatasetUnit unit;
      bool ok = true;
      for (const auto& name : group) {
        catalog::FileStat stat;
        std::string error;
        if (!StatFile(dir / name, stat, error)) {
          result.errors.emplace_back((dir / name).string(), "cannot stat: " + error);
          if (name == group.front()) ok = false;
          continue;
        }
        unit.size_bytes += stat.size_bytes;
        unit.files.push_back(std::move(stat));
      }
      if (!ok || unit.files.empty()) continue;
      unit.path = unit.files.front().path;
      for (const auto& f : unit.files) member_paths.insert(f.path);
      result.files_seen += static_cast<int64_t>(unit.files.size());
      result.units.push_back(std::move(unit));
    }
  }
  // Symlinked files: once each, and not when the target is already in a unit.
  for (const auto& link : symlinked_files) {
    std::error_code ec;
    const fs::path target = fs::canonical(link, ec);
    if (ec) {
      result.errors.emplace_back(link.string(), "cannot resolve symlink: " + ec.message());
      continue;
    }
    if (member_paths.count(target.string())) continue;
    // A target outside the root would be catalogued outside it, where later runs
    // of this root could neither find it unchanged nor mark it gone.
    const std::string prefix = root.string() + "/";
    if (target.string().compare(0, prefix.size(), prefix) != 0) continue;
    DatasetUnit unit;
    catalog::FileStat stat;
    std::string error;
    if (!StatFile(target, stat, error)) {
      result.errors.emplace_back(target.string(), "cannot stat: " + error);
      continue;
    }
    unit.path = stat.path;
    unit.size_bytes = stat.size_bytes;
    unit.files.push_back(std::move(stat));
    member_paths.insert(unit.path);
    result.files_seen += 1;
    result.units.push_back(std::move(unit));
  }
  for (auto& unit : result.units) unit.fingerprint = catalog::ComputeFingerprint(unit.files);
  std::sort(result.units.begin(), result.units.end(),
            [](const DatasetUnit& a, const DatasetUnit& b) { return a.path < b.path; });
  return result;
}

}  // namespace scisearch::ingest::internal
