#include "cli/context_commands.h"

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/search_commands.h"
#include "context/linker.h"
#include "context/loaders.h"

namespace scisearch::cli {

namespace fs = std::filesystem;

bool LinkAfterWrite(catalog::Catalog& catalog, const std::string& root, bool quiet) {
  context::LinkOptions options;
  options.root = root;
  Result<context::LinkSummary> summary = context::LinkCatalog(catalog, options);
  if (!summary.ok()) {
    std::fprintf(stderr, "scisearch: warning: linking failed: %s\n",
                 summary.status().message().c_str());
    return false;
  }
  if (!quiet) {
    std::fprintf(
        stderr,
        "linked: %lld datasets: %lld to a session, %lld to a proposal, %lld to "
        "publications; %lld context tags; %lld unchanged; in %.1f s\n",
        static_cast<long long>(summary->datasets), static_cast<long long>(summary->with_session),
        static_cast<long long>(summary->with_proposal),
        static_cast<long long>(summary->with_publications), static_cast<long long>(summary->tags),
        static_cast<long long>(summary->unchanged), summary->seconds);
  }
  return true;
}

int RunLink(const fs::path& data_dir, const std::string& root) {
  auto catalog = catalog::Catalog::Open(data_dir);
  if (!catalog.ok()) return Fail(catalog.status());
  std::string canonical_root;
  if (!root.empty()) {
    std::error_code ec;
    canonical_root = fs::canonical(root, ec).string();
    if (ec) return Fail(Status::NotFound(root + ": cannot resolve: " + ec.message()));
  }
  if (!LinkAfterWrite(**catalog, canonical_root, /*quiet=*/false)) return 1;
  UpdateIndexAfterWrite(**catalog, /*quiet=*/false);
  return 0;
}

int RunAddDocs(const fs::path& data_dir, const std::vector<std::string>& paths,
               const std::string& kind, const std::string& log_config) {
  context::LoadOptions options;
  if (!log_config.empty()) {
    Result<context::LogConfig> config = context::ReadLogConfig(log_config);
    if (!config.ok()) return Fail(config.status());
    options.log = std::move(*config);
  }
  auto catalog = catalog::Catalog::Open(data_dir);
  if (!catalog.ok()) return Fail(catalog.status());
  const std::vector<fs::path> files(paths.begin(), paths.end());
  Result<context::LoadSummary> summary =
      context::LoadContextPaths(**catalog, files, kind, options, [](const context::LoadError& e) {
        const std::string where =
            e.line > 0 ? e.file.string() + ":" + std::to_string(e.line) : e.file.string();
        std::fprintf(stderr, "%s%s: %s\n", e.skipped ? "skipped: " : "scisearch: ", where.c_str(),
                     e.reason.c_str());
      });
  if (!summary.ok()) return Fail(summary.status());
  std::fprintf(
      stderr,
      "loaded %lld records from %lld files: %lld sessions, %lld proposals, %lld "
      "publications, %lld documents, %lld people; %lld failed\n",
      static_cast<long long>(summary->loaded), static_cast<long long>(summary->files),
      static_cast<long long>(summary->sessions), static_cast<long long>(summary->proposals),
      static_cast<long long>(summary->publications), static_cast<long long>(summary->documents),
      static_cast<long long>(summary->people), static_cast<long long>(summary->failed));
  // New context changes what the datasets link to and the tags it gives them.
  if (summary->sessions + summary->proposals + summary->publications + summary->people > 0) {
    LinkAfterWrite(**catalog, "", /*quiet=*/false);
  }
  UpdateIndexAfterWrite(**catalog, /*quiet=*/false);
  return summary->failed > 0 ? 1 : 0;
}

Result<catalog::DatasetRow> FindDataset(catalog::Catalog& catalog, const std::string& reference) {
  constexpr std::string_view kPrefix = "dataset:";
  if (reference.rfind(kPrefix, 0) == 0) {
    const std::string digits = reference.substr(kPrefix.size());
    char* end = nullptr;
    const long long id = std::strtoll(digits.c_str(), &end, 10);
    if (digits.empty() || *end != '\0' || id <= 0) {
      return Status::InvalidArgument(reference + ": not a dataset id (dataset:<number>)");
    }
    return catalog.GetDatasetById(id);
  }
  std::error_code ec;
  const fs::path canonical = fs::canonical(reference, ec);
  const std::string path = ec ? reference : canonical.string();
  Result<catalog::DatasetRow> row = catalog.GetDataset(path);
  if (row.ok()) return row;
  Result<std::string> primary = catalog.FindDatasetByFile(path);
  if (!primary.ok()) return Status::NotFound(reference + ": not in the catalog");
  return catalog.GetDataset(*primary);
}

int RunShow(const fs::path& data_dir, const std::string& reference, bool json) {
  if (!fs::exists(data_dir / "catalog.sqlite")) {
    return Fail(Status::NotFound((data_dir / "catalog.sqlite").string() +
                                 ": no catalog here (run scisearch ingest first)"));
  }
  auto catalog = catalog::Catalog::Open(data_dir);
  if (!catalog.ok()) return Fail(catalog.status());
  Result<catalog::DatasetRow> row = FindDataset(**catalog, reference);
  if (!row.ok()) return Fail(row.status());
  Result<std::vector<catalog::LinkRecord>> links = (*catalog)->DatasetLinks(row->id);
  if (!links.ok()) return Fail(links.status());
  const formats::NormalisedFields& f = row->fields;
  if (json) {
    nlohmann::ordered_json j{{"id", "dataset:" + std::to_string(row->id)},
                             {"path", row->path},
                             {"format", row->format},
                             {"state", row->state},
                             {"mode", std::string(formats::ModeName(f.mode))},
                             {"instrument", f.instrument.value_or("")},
                             {"acquired", f.acquired.value_or("")},
                             {"session", row->session_id},
                             {"proposal", row->proposal_id},
                             {"embargo_until", row->embargo_until}};
    nlohmann::ordered_json links_json = nlohmann::ordered_json::array();
    for (const catalog::LinkRecord& l : *links) {
      links_json.push_back({{"kind", l.kind},
                            {"id", l.target_id},
                            {"confidence", l.confidence},
                            {"evidence", l.evidence}});
    }
    j["links"] = std::move(links_json);
    nlohmann::ordered_json tags = nlohmann::ordered_json::array();
    for (const catalog::TagRow& t : row->tags) {
      tags.push_back({{"value", t.value},
                      {"source", t.source},
                      {"confidence", t.confidence},
                      {"state", t.state},
                      {"evidence", t.evidence}});
    }
    j["tags"] = std::move(tags);
    std::cout << j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
    return 0;
  }
  std::printf(
      "dataset:%lld %s\n  format %s, %s, %s, acquired %s\n", static_cast<long long>(row->id),
      row->path.c_str(), row->format.c_str(), std::string(formats::ModeName(f.mode)).c_str(),
      f.instrument.value_or("instrument unknown").c_str(), f.acquired.value_or("unknown").c_str());
  if (!row->embargo_until.empty()) {
    std::printf("  private to its proposal's team until %s\n", row->embargo_until.c_str());
  }
  std::printf("links:%s\n", links->empty() ? " none" : "");
  for (const catalog::LinkRecord& l : *links) {
    std::printf("  %-11s %-28s %.2f  %s\n", l.kind.c_str(), l.target_id.c_str(), l.confidence,
                l.evidence.c_str());
  }
  std::printf("tags:%s\n", row->tags.empty() ? " none" : "");
  for (const catalog::TagRow& t : row->tags) {
    std::printf("  %-28s %-11s %.2f %-9s %s\n", t.value.c_str(), t.source.c_str(), t.confidence,
                t.state.c_str(), t.evidence.c_str());
  }
  return 0;
}

}  // namespace scisearch::cli
