#include "cli/vision_command.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "catalog/catalog.h"
#include "cli/context_commands.h"
#include "cli/search_commands.h"
#include "context/loaders.h"
#include "vision/vision.h"

namespace scisearch::cli {
namespace {

namespace fs = std::filesystem;

// path -> group from a CSV with (at least) the columns path and group.
Result<std::map<std::string, std::string>> ReadGroupsCsv(const std::string& csv) {
  std::ifstream in(csv, std::ios::binary);
  if (!in) return Status::NotFound(csv + ": cannot open the groups file");
  std::stringstream text;
  text << in.rdbuf();
  const context::CsvTable table = context::ParseCsv(text.str(), ',');
  if (table.rows.empty()) return Status::InvalidArgument(csv + ": empty");
  const auto& header = table.rows[0].cells;
  const auto column = [&](const char* name) -> int {
    for (size_t i = 0; i < header.size(); ++i) {
      if (header[i] == name) return int(i);
    }
    return -1;
  };
  const int path = column("path"), group = column("group");
  if (path < 0 || group < 0) {
    return Status::InvalidArgument(csv + ": the header needs the columns path and group");
  }
  std::map<std::string, std::string> out;
  for (size_t r = 1; r < table.rows.size(); ++r) {
    const auto& f = table.rows[r].cells;
    if (f.size() <= size_t(std::max(path, group))) {
      return Status::InvalidArgument(csv + ":" + std::to_string(table.rows[r].line) +
                                     ": fewer fields than the header");
    }
    out[f[size_t(path)]] = f[size_t(group)];
  }
  return out;
}

nlohmann::ordered_json Json(double v) {
  return std::isfinite(v) ? nlohmann::ordered_json(v) : nlohmann::ordered_json();
}

std::string Figure(double v) {
  if (!std::isfinite(v)) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

vision::TrainOptions OptionsFor(const VisionCommand& c, bool multi_label) {
  vision::TrainOptions o;
  o.multi_label = multi_label;
  o.threads = c.threads;
  o.seed = c.seed;
  if (c.epochs > 0) o.epochs = c.epochs;
  if (c.min_steps >= 0) o.min_steps = c.min_steps;
  if (c.frame_side > 0) o.preprocessing.frame_side = c.frame_side;
  if (c.tile_side > 0) o.preprocessing.tile_side = c.tile_side;
  if (c.texture_side >= 0) o.preprocessing.texture_side = c.texture_side;
  o.texture_weight = c.texture_weight;
  o.on_epoch = [](int epoch, int epochs, double loss) {
    std::fprintf(stderr, "\repoch %d/%d  loss %.4f", epoch, epochs, loss);
    if (epoch == epochs) std::fprintf(stderr, "\n");
  };
  return o;
}

void PrintProblems(const std::vector<std::string>& problems) {
  constexpr size_t kShown = 20;
  for (size_t i = 0; i < problems.size() && i < kShown; ++i) {
    std::fprintf(stderr, "  skipped %s\n", problems[i].c_str());
  }
  if (problems.size() > kShown) {
    std::fprintf(stderr, "  ... and %zu more\n", problems.size() - kShown);
  }
}

void PrintReport(const vision::TrainReport& r, bool multi_label) {
  std::printf("trained on %d images (%d held out for calibration) for %d epochs in %.1f s\n",
              r.train_images, r.validation_images, r.epochs, r.seconds);
  if (std::isfinite(r.validation_accuracy_cnn)) {
    std::printf("held out: accuracy of the CNN alone %s, of the texture head alone %s\n",
                Figure(r.validation_accuracy_cnn).c_str(),
                Figure(r.validation_accuracy_texture).c_str());
  }
  if (multi_label) {
    std::printf("held out: precision %s recall %s at confidence 0.5, ECE %s, temperature %s\n",
                Figure(r.validation_precision).c_str(), Figure(r.validation_recall).c_str(),
                Figure(r.validation_ece).c_str(), Figure(r.temperature).c_str());
  } else {
    std::printf("held out: accuracy %s, ECE %s, temperature %s\n",
                Figure(r.validation_accuracy).c_str(), Figure(r.validation_ece).c_str(),
                Figure(r.temperature).c_str());
  }
  std::printf("texture head's share in the confidences: %s\n", Figure(r.texture_weight).c_str());
}

Result<std::unique_ptr<vision::Model>> LoadPretrained(const VisionCommand& c) {
  if (c.pretrained.empty()) return std::unique_ptr<vision::Model>();
  return vision::Model::Load(c.pretrained, c.threads);
}

vision::Transfer TransferFor(const VisionCommand& c) {
  if (c.pretrained.empty()) return vision::Transfer::kNone;
  return c.fine_tune ? vision::Transfer::kFineTuneLastBlock : vision::Transfer::kFreezeFeatures;
}

// The preprocessing of the images to train on: the pretrained model's frame and tile sides
// (its layers expect them), the options' texture side.
vision::Preprocessing PreprocessingFor(const VisionCommand& c, const vision::Model* pretrained) {
  vision::Preprocessing prep = OptionsFor(c, false).preprocessing;
  if (pretrained) {
    const int texture_side = prep.texture_side;
    prep = pretrained->preprocessing();
    prep.texture_side = texture_side;
  }
  return prep;
}

// Trains on `set`, saves to c.model and prints the figures.
int TrainAndSave(const VisionCommand& c, const vision::FolderSet& set, bool multi_label,
                 const vision::Model* pretrained) {
  if (c.model.empty()) return Fail(Status::InvalidArgument("vision: --model OUT is required"), 2);
  PrintProblems(set.problems);
  std::printf("%zu images, %zu labels:", set.examples.size(), set.labels.size());
  for (const std::string& l : set.labels) std::printf(" %s", l.c_str());
  std::printf("\n");
  vision::TrainOptions options = OptionsFor(c, multi_label);
  options.transfer = TransferFor(c);
  vision::TrainReport report;
  auto model = vision::Model::Train(set.labels, set.examples, options, pretrained, &report);
  if (!model.ok()) return Fail(model.status(), 2);
  PrintReport(report, multi_label);
  Status saved = (*model)->Save(c.model);
  if (!saved.ok()) return Fail(saved, 2);
  std::printf("model %s written to %s\n", (*model)->id().c_str(), c.model.c_str());
  return set.problems.empty() ? 0 : 1;
}

int RunTrain(const VisionCommand& c) {
  auto pretrained = LoadPretrained(c);
  if (!pretrained.ok()) return Fail(pretrained.status(), 2);
  const vision::Preprocessing prep = PreprocessingFor(c, pretrained->get());
  if (!c.from_folders.empty()) {
    std::map<std::string, std::string> groups;
    if (!c.groups_csv.empty()) {
      auto read = ReadGroupsCsv(c.groups_csv);
      if (!read.ok()) return Fail(read.status(), 2);
      groups = std::move(*read);
    }
    auto set = vision::ReadFolderSet(c.from_folders, prep, groups, c.threads);
    if (!set.ok()) return Fail(set.status(), 2);
    return TrainAndSave(c, *set, /*multi_label=*/false, pretrained->get());
  }
  // Stage 2: the experts' validated tags in the catalog.
  auto catalog = catalog::Catalog::Open(c.data_dir);
  if (!catalog.ok()) return Fail(catalog.status(), 2);
  auto set = vision::ReadValidatedTagSet(**catalog, prep, c.min_examples, c.threads);
  if (!set.ok()) return Fail(set.status(), 2);
  return TrainAndSave(c, *set, /*multi_label=*/true, pretrained->get());
}

int RunPretrain(const VisionCommand& c) {
  auto catalog = catalog::Catalog::Open(c.data_dir);
  if (!catalog.ok()) return Fail(catalog.status(), 2);
  const vision::Preprocessing prep = OptionsFor(c, false).preprocessing;
  auto set = vision::ReadModeSet(**catalog, c.root, prep, c.max_per_mode, c.threads);
  if (!set.ok()) return Fail(set.status(), 2);
  if (!c.pretrained.empty()) {
    return Fail(Status::InvalidArgument("vision pretrain starts from scratch: no --pretrained"), 2);
  }
  return TrainAndSave(c, *set, /*multi_label=*/false, nullptr);
}

int RunEvaluate(const VisionCommand& c) {
  if (c.from_folders.empty()) {
    return Fail(Status::InvalidArgument("vision evaluate: --from-folders DIR is required"), 2);
  }
  auto pretrained = LoadPretrained(c);
  if (!pretrained.ok()) return Fail(pretrained.status(), 2);
  std::map<std::string, std::string> groups;
  if (!c.groups_csv.empty()) {
    auto read = ReadGroupsCsv(c.groups_csv);
    if (!read.ok()) return Fail(read.status(), 2);
    groups = std::move(*read);
  }
  vision::TrainOptions options = OptionsFor(c, false);
  options.transfer = TransferFor(c);
  const vision::Preprocessing prep = PreprocessingFor(c, pretrained->get());
  auto set = vision::ReadFolderSet(c.from_folders, prep, groups, c.threads);
  if (!set.ok()) return Fail(set.status(), 2);
  PrintProblems(set->problems);
  auto cv = vision::CrossValidate(set->labels, set->examples, c.folds, options, pretrained->get());
  if (!cv.ok()) return Fail(cv.status(), 2);
  // Per-class accuracy and the confusion matrix (rows: truth, columns: predicted).
  const size_t n = set->labels.size();
  std::vector<std::vector<int>> confusion(n, std::vector<int>(n, 0));
  for (size_t i = 0; i < set->examples.size(); ++i) {
    if (cv->predicted[i] >= 0)
      ++confusion[size_t(set->examples[i].labels[0])][size_t(cv->predicted[i])];
  }
  if (c.json) {
    nlohmann::ordered_json examples = nlohmann::ordered_json::array();
    for (size_t i = 0; i < set->examples.size(); ++i) {
      examples.push_back({{"path", set->examples[i].source},
                          {"label", set->examples[i].labels[0]},
                          {"predicted", cv->predicted[i]},
                          {"confidence", cv->confidence[i]},
                          {"confidence_cnn", cv->confidence_cnn[i]},
                          {"confidence_texture", cv->confidence_texture[i]}});
    }
    nlohmann::ordered_json j{{"images", set->examples.size()},
                             {"labels", set->labels},
                             {"folds", cv->fold_accuracy.size()},
                             {"accuracy", cv->accuracy},
                             {"fold_accuracy", cv->fold_accuracy},
                             {"accuracy_cnn", Json(cv->accuracy_cnn)},
                             {"accuracy_texture", Json(cv->accuracy_texture)},
                             {"fold_texture_weight", cv->fold_texture_weight},
                             {"confusion", confusion},
                             {"seconds", cv->seconds},
                             {"examples", examples}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%zu images, %zu-fold grouped cross-validation: accuracy %.3f (folds:",
                set->examples.size(), cv->fold_accuracy.size(), cv->accuracy);
    for (double a : cv->fold_accuracy) std::printf(" %.3f", a);
    std::printf(") in %.0f s\n", cv->seconds);
    if (!cv->fold_texture_weight.empty()) {
      std::printf("the CNN alone %.3f, the texture head alone %.3f; texture shares:",
                  cv->accuracy_cnn, cv->accuracy_texture);
      for (double w : cv->fold_texture_weight) std::printf(" %.1f", w);
      std::printf("\n");
    }
    std::printf("confusion (rows truth, columns predicted):\n");
    for (size_t t = 0; t < n; ++t) {
      std::printf("  %-20s", set->labels[t].c_str());
      for (size_t p = 0; p < n; ++p) std::printf(" %5d", confusion[t][p]);
      std::printf("\n");
    }
  }
  return 0;
}

// Prints one line of `path`'s analysis: JSON or a readable summary of the best five labels.
void PrintAnalysis(const std::string& path, const vision::Analysis& analysis, bool json) {
  if (json) {
    nlohmann::ordered_json labels = nlohmann::ordered_json::array();
    for (const auto& l : analysis.labels) {
      labels.push_back({{"label", l.label}, {"confidence", l.confidence}});
    }
    nlohmann::ordered_json j{{"path", path}, {"labels", labels}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s:", path.c_str());
    for (size_t i = 0; i < analysis.labels.size() && i < 5; ++i) {
      std::printf(" %s (%.2f)", analysis.labels[i].label.c_str(), analysis.labels[i].confidence);
    }
    std::printf("\n");
  }
}

int RunPredict(const VisionCommand& c) {
  if (c.model.empty())
    return Fail(Status::InvalidArgument("vision predict: --model M is required"), 2);
  // c.threads workers, each on a batch of its own (vision::AnalyseFiles).
  auto model = vision::Model::Load(c.model, 1);
  if (!model.ok()) return Fail(model.status(), 2);
  // Lines keep the order of the paths: a batch waits until those before it are printed, and
  // a long list shows progress a batch at a time.
  std::map<size_t, std::vector<vision::FileAnalysis>> waiting;  // by first path index
  size_t next = 0;                                              // the next path to print
  int status = 0;
  auto print = [&](size_t first, std::vector<vision::FileAnalysis>& results) {
    waiting.emplace(first, std::move(results));
    for (auto it = waiting.find(next); it != waiting.end(); it = waiting.find(next)) {
      for (size_t i = 0; i < it->second.size(); ++i) {
        const vision::FileAnalysis& result = it->second[i];
        if (!result.status.ok()) {
          Fail(result.status);
          status = 1;
        } else {
          PrintAnalysis(c.paths[next + i], result.analysis, c.json);
        }
      }
      next += it->second.size();
      waiting.erase(it);
    }
    std::fflush(stdout);
    return Status::Ok();
  };
  const Status done = vision::AnalyseFiles(c.paths, **model, c.threads, 16, print);
  if (!done.ok()) return Fail(done);
  return status;
}

int RunTag(const VisionCommand& c) {
  if (c.model.empty()) return Fail(Status::InvalidArgument("vision tag: --model M is required"), 2);
  // c.threads workers, each on a batch of its own (vision::AnalyseFiles).
  auto model = vision::Model::Load(c.model, 1);
  if (!model.ok()) return Fail(model.status(), 2);
  auto catalog = catalog::Catalog::Open(c.data_dir);
  if (!catalog.ok()) return Fail(catalog.status(), 2);
  vision::TagPassOptions options;
  std::error_code ec;
  options.root = c.root.empty() ? "" : fs::weakly_canonical(c.root, ec).string();
  options.min_confidence = c.min_confidence;
  options.redo = c.redo;
  options.threads = c.threads;
  options.on_progress = [](int64_t done, int64_t total) {
    std::fprintf(stderr, "\rvision: %lld/%lld datasets", static_cast<long long>(done),
                 static_cast<long long>(total));
    if (done == total) std::fprintf(stderr, "\n");
  };
  auto report = vision::TagCatalog(**catalog, **model, options);
  if (!report.ok()) return Fail(report.status(), 2);
  std::printf(
      "vision: %lld analysed (%.1f images/s), %lld tags written, %lld without an image, "
      "%lld failed, in %.1f s\n",
      static_cast<long long>(report->analysed),
      report->seconds > 0 ? double(report->analysed) / report->seconds : 0.0,
      static_cast<long long>(report->tags_written), static_cast<long long>(report->skipped),
      static_cast<long long>(report->failed), report->seconds);
  PrintProblems(report->problems);
  UpdateIndexAfterWrite(**catalog, /*quiet=*/false);
  return report->failed ? 1 : 0;
}

int RunSimilar(const VisionCommand& c) {
  if (c.paths.size() != 1) {
    return Fail(Status::InvalidArgument("vision similar: give one PATH or dataset:ID"), 2);
  }
  auto catalog = catalog::Catalog::Open(c.data_dir);
  if (!catalog.ok()) return Fail(catalog.status(), 2);
  auto row = FindDataset(**catalog, c.paths[0]);
  if (!row.ok()) return Fail(row.status(), 2);
  auto similar = vision::FindSimilar(**catalog, row->id, c.top);
  if (!similar.ok()) return Fail(similar.status(), 2);
  std::vector<int64_t> ids;
  for (const auto& s : *similar) ids.push_back(s.dataset_id);
  auto summaries = (*catalog)->SummariseDatasets(ids);
  if (!summaries.ok()) return Fail(summaries.status(), 2);
  for (size_t i = 0; i < similar->size() && i < summaries->size(); ++i) {
    if (c.json) {
      nlohmann::ordered_json j{{"id", "dataset:" + std::to_string((*similar)[i].dataset_id)},
                               {"path", (*summaries)[i].path},
                               {"similarity", (*similar)[i].similarity}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("%.3f  dataset:%lld  %s\n", (*similar)[i].similarity,
                  static_cast<long long>((*similar)[i].dataset_id), (*summaries)[i].path.c_str());
    }
  }
  return 0;
}

}  // namespace

int RunVision(const VisionCommand& c) {
  if (c.action == "train") return RunTrain(c);
  if (c.action == "pretrain") return RunPretrain(c);
  if (c.action == "evaluate") return RunEvaluate(c);
  if (c.action == "predict") return RunPredict(c);
  if (c.action == "tag") return RunTag(c);
  if (c.action == "similar") return RunSimilar(c);
  return Fail(Status::InvalidArgument("vision: unknown action '" + c.action + "'"), 2);
}

}  // namespace scisearch::cli
