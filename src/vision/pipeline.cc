// What feeds the network and what it writes back: frames from files, training sets from
// folders and from the catalog, cross-validation, the tagging pass and similar images.
// No libtorch here: only the Model interface.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <limits>
#include <map>
#include <mutex>
#include <numeric>
#include <random>
#include <set>
#include <thread>

#include "catalog/catalog.h"
#include "common/parallel.h"
#include "formats/formats.h"
#include "vision/texture.h"
#include "vision/vision.h"

namespace scisearch::vision {
namespace {

namespace fs = std::filesystem;

std::string NoFrameMessage(const std::string& path) {
  return path + ": no image to look at (no signal with a frame)";
}

// ReadFileFrame's work: nullopt when the dataset has no frame (a spectrum), which is no
// problem of the file's.
Result<std::optional<FileFrame>> ReadFrameIfAny(const fs::path& path,
                                                const Preprocessing& preprocessing) {
  const std::string where = path.string() + ": ";
  try {
    auto reader = formats::OpenDataset(path);
    if (!reader.ok()) return reader.status();
    const formats::Dataset& dataset = (*reader)->dataset();
    const std::optional<size_t> index = thumbnail::ChoosePreviewSignal(dataset);
    if (!index || !thumbnail::HasFrame(dataset.signals[*index])) {
      return std::optional<FileFrame>();
    }
    const formats::Signal& signal = dataset.signals[*index];
    // Twice the CNN's side, so that area averaging sees every other pixel at least; the
    // texture statistics want the pixels themselves, up to their side.
    const int64_t read_side =
        std::max<int64_t>({2 * int64_t(preprocessing.frame_side), preprocessing.texture_side, 64});
    auto data = (*reader)->Read(*index, thumbnail::PreviewSlab(signal, read_side));
    if (!data.ok()) return data.status();
    auto image = Model::PrepareImage(*data, signal.fields.mode, preprocessing);
    if (!image.ok()) return Status::Error(image.status().code(), where + image.status().message());
    const thumbnail::GreyFrame& frame = image->frame;
    if (std::min(frame.height, frame.width) < kMinFrameSide) {
      return Status::InvalidArgument(where + "its frame is " + std::to_string(frame.height) +
                                     " x " + std::to_string(frame.width) +
                                     " px, too small for the vision model (at least " +
                                     std::to_string(kMinFrameSide) + " on each side)");
    }
    return std::optional<FileFrame>(FileFrame{std::move(*image), signal.fields.mode, int(*index)});
  } catch (const std::exception& e) {
    return Status::Internal(where + "reader failed: " + e.what());
  }
}

// Reads the frames of `paths` in parallel: frames[i] set, or frameless[i] true (the
// dataset has none), or problems[i] says why not.
void ReadFrames(const std::vector<std::string>& paths, const Preprocessing& preprocessing,
                int threads, std::vector<std::optional<FileFrame>>& frames,
                std::vector<bool>& frameless, std::vector<std::string>& problems) {
  frames.assign(paths.size(), std::nullopt);
  problems.assign(paths.size(), "");
  // One byte per path: std::vector<bool> packs bits, which threads cannot set apart.
  std::vector<uint8_t> none(paths.size(), 0);
  ParallelFor(paths.size(), threads, [&](size_t i) {
    Result<std::optional<FileFrame>> frame = ReadFrameIfAny(paths[i], preprocessing);
    if (!frame.ok()) {
      problems[i] = frame.status().message();
    } else if (!*frame) {
      none[i] = 1;
    } else {
      frames[i] = std::move(**frame);
    }
  });
  frameless.assign(none.begin(), none.end());
}

// Reads the frames of `paths` in parallel and appends each to set.examples with labels[i] and
// groups[i]; a file that cannot be read goes to set.problems, except, when `frameless_ok`,
// one without a frame (a spectrum is no image to learn from, and no problem either).
void AppendExamples(const std::vector<std::string>& paths, std::vector<std::vector<int>> labels,
                    const std::vector<std::string>& groups, const Preprocessing& preprocessing,
                    int threads, bool frameless_ok, FolderSet& set) {
  std::vector<std::optional<FileFrame>> frames;
  std::vector<bool> frameless;
  std::vector<std::string> problems;
  ReadFrames(paths, preprocessing, threads, frames, frameless, problems);
  for (size_t i = 0; i < paths.size(); ++i) {
    if (frames[i]) {
      set.examples.push_back(
          {std::move(frames[i]->image), std::move(labels[i]), groups[i], paths[i]});
    } else if (frameless[i] && !frameless_ok) {
      set.problems.push_back(NoFrameMessage(paths[i]));
    } else if (!frameless[i]) {
      set.problems.push_back(problems[i]);
    }
  }
}

// The folder a dataset lies in: images of one session folder form one group, so that
// near-copies of a field of view never sit on both sides of a validation split.
std::string FolderGroup(const std::string& path) {
  return fs::path(path).parent_path().generic_string();
}

std::string Short(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

}  // namespace

Result<PreparedImage> Model::PrepareImage(const formats::NdArray& data, formats::Mode mode,
                                          const Preprocessing& preprocessing) {
  PreparedImage image;
  SCISEARCH_ASSIGN_OR_RETURN(image.frame,
                             thumbnail::PrepareGreyFrame(data, mode, preprocessing.frame_side));
  if (preprocessing.texture_side > 0) {
    SCISEARCH_ASSIGN_OR_RETURN(thumbnail::GreyFrame fine,
                               thumbnail::PrepareGreyFrame(data, mode, preprocessing.texture_side));
    image.texture = TextureViews(fine);
  }
  return image;
}

Result<FileFrame> ReadFileFrame(const fs::path& path, const Preprocessing& preprocessing) {
  SCISEARCH_ASSIGN_OR_RETURN(std::optional<FileFrame> frame, ReadFrameIfAny(path, preprocessing));
  if (!frame) return Status::Unsupported(NoFrameMessage(path.string()));
  return std::move(*frame);
}

Status AnalyseFiles(
    const std::vector<std::string>& paths, const Model& model, int threads, int batch,
    const std::function<Status(size_t first, std::vector<FileAnalysis>& results)>& on_batch) {
  const size_t size = size_t(std::max(1, batch));
  std::mutex mutex;  // guards failure and the calls of on_batch
  Status failure = Status::Ok();
  ParallelFor((paths.size() + size - 1) / size, threads, [&](size_t b) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (!failure.ok()) return;
    }
    const size_t first = b * size, end = std::min(paths.size(), first + size);
    std::vector<FileAnalysis> results(end - first);
    std::vector<PreparedImage> images;
    std::vector<size_t> analysed;  // the results[] of images[]
    for (size_t i = 0; i < results.size(); ++i) {
      const std::string& path = paths[first + i];
      Result<std::optional<FileFrame>> frame = ReadFrameIfAny(path, model.preprocessing());
      if (!frame.ok()) {
        results[i].status = frame.status();
      } else if (!*frame) {
        results[i].frameless = true;
        results[i].status = Status::Unsupported(NoFrameMessage(path));
      } else {
        results[i].signal_index = (*frame)->signal_index;
        images.push_back(std::move((*frame)->image));
        analysed.push_back(i);
      }
    }
    Result<std::vector<Analysis>> analyses = std::vector<Analysis>();
    if (!images.empty()) analyses = model.AnalyseBatch(images);
    for (size_t k = 0; k < analysed.size(); ++k) {
      FileAnalysis& result = results[analysed[k]];
      if (analyses.ok()) {
        result.analysis = std::move((*analyses)[k]);
      } else {
        result.status = Status::Error(analyses.status().code(), paths[first + analysed[k]] + ": " +
                                                                    analyses.status().message());
      }
    }
    std::lock_guard<std::mutex> lock(mutex);
    if (failure.ok()) failure = on_batch(first, results);
  });
  return failure;
}

Result<FolderSet> ReadFolderSet(const fs::path& dir, const Preprocessing& preprocessing,
                                const std::map<std::string, std::string>& groups, int threads) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return Status::NotFound(dir.string() + ": not a folder of class folders");
  }
  std::vector<std::string> class_dirs;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && !name.empty() && name[0] != '.') class_dirs.push_back(name);
  }
  if (ec) return Status::IoError(dir.string() + ": " + ec.message());
  std::sort(class_dirs.begin(), class_dirs.end());
  std::vector<std::string> paths, group_of;
  std::vector<std::vector<int>> label_of;
  FolderSet set;
  for (const std::string& name : class_dirs) {
    std::vector<std::string> files;
    for (auto it = fs::recursive_directory_iterator(dir / name, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_regular_file() && formats::IsCandidateFile(it->path())) {
        files.push_back(it->path().string());
      }
    }
    if (ec) return Status::IoError((dir / name).string() + ": " + ec.message());
    if (files.empty()) {
      set.problems.push_back((dir / name).string() + ": no image files; not a class");
      continue;
    }
    std::sort(files.begin(), files.end());
    for (std::string& f : files) {
      auto g = groups.find(fs::relative(f, dir).generic_string());
      group_of.push_back(g == groups.end() ? "" : g->second);
      paths.push_back(std::move(f));
      label_of.push_back({int(set.labels.size())});
    }
    set.labels.push_back(name);
  }
  if (set.labels.empty()) return Status::NotFound(dir.string() + ": no class folder holds images");
  AppendExamples(paths, std::move(label_of), group_of, preprocessing, threads, false, set);
  return set;
}

Result<CrossValidation> CrossValidate(const std::vector<std::string>& labels,
                                      const std::vector<LabelledFrame>& examples, int folds,
                                      const TrainOptions& options, const Model* pretrained) {
  if (folds < 2) return Status::InvalidArgument("cross-validation needs at least 2 folds");
  if (options.multi_label) {
    return Status::InvalidArgument("cross-validation is for single-label training");
  }
  const auto started = std::chrono::steady_clock::now();
  // Whole groups are dealt to folds, label by label, each to the fold that has the fewest
  // examples of that label so far (largest groups first), so folds stay stratified.
  std::map<std::string, std::vector<size_t>> groups;
  for (size_t i = 0; i < examples.size(); ++i) {
    if (examples[i].labels.size() != 1) {
      return Status::InvalidArgument(examples[i].source + ": needs exactly one label");
    }
    groups[examples[i].group.empty() ? "#" + std::to_string(i) : "g:" + examples[i].group]
        .push_back(i);
  }
  std::vector<const std::vector<size_t>*> order;
  for (const auto& entry : groups) order.push_back(&entry.second);
  std::mt19937_64 rng(options.seed);
  std::shuffle(order.begin(), order.end(), rng);
  std::stable_sort(order.begin(), order.end(),
                   [](const auto* a, const auto* b) { return a->size() > b->size(); });
  std::vector<int> fold_of(examples.size(), 0);
  std::vector<std::vector<int>> per_label(labels.size(), std::vector<int>(size_t(folds), 0));
  for (const auto* members : order) {
    const int label = examples[(*members)[0]].labels[0];
    auto& counts = per_label[size_t(label)];
    const int fold = int(std::min_element(counts.begin(), counts.end()) - counts.begin());
    counts[size_t(fold)] += int(members->size());
    for (size_t i : *members) fold_of[i] = fold;
  }
  CrossValidation cv;
  cv.predicted.assign(examples.size(), -1);
  cv.confidence.assign(examples.size(), {});
  cv.confidence_cnn.assign(examples.size(), {});
  cv.confidence_texture.assign(examples.size(), {});
  int right_total = 0, right_cnn = 0, right_texture = 0;
  for (int fold = 0; fold < folds; ++fold) {
    std::vector<LabelledFrame> train;
    std::vector<size_t> test;
    for (size_t i = 0; i < examples.size(); ++i) {
      if (fold_of[i] == fold) {
        test.push_back(i);
      } else {
        train.push_back(examples[i]);
      }
    }
    if (test.empty()) continue;
    TrainOptions fold_options = options;
    fold_options.seed = options.seed + uint64_t(fold);
    SCISEARCH_ASSIGN_OR_RETURN(std::unique_ptr<Model> model,
                               Model::Train(labels, train, fold_options, pretrained, nullptr));
    std::vector<PreparedImage> images;
    for (size_t i : test) images.push_back(examples[i].image);
    SCISEARCH_ASSIGN_OR_RETURN(std::vector<Analysis> analyses, model->AnalyseBatch(images));
    const auto label_index = [&](const Analysis& a) {
      return int(std::find(labels.begin(), labels.end(), a.labels[0].label) - labels.begin());
    };
    // The confidence of each label, in label order.
    const auto in_label_order = [&](const Analysis& a) {
      std::vector<double> confidence(labels.size(), 0);
      for (const LabelScore& score : a.labels) {
        const auto at = std::find(labels.begin(), labels.end(), score.label) - labels.begin();
        if (size_t(at) < labels.size()) confidence[size_t(at)] = score.confidence;
      }
      return confidence;
    };
    if (model->has_texture_head()) {
      // Each head alone, on the same images.
      cv.fold_texture_weight.push_back(model->texture_weight());
      for (const double share : {0.0, 1.0}) {
        model->set_texture_weight(share);
        SCISEARCH_ASSIGN_OR_RETURN(std::vector<Analysis> alone, model->AnalyseBatch(images));
        for (size_t k = 0; k < test.size(); ++k) {
          (share == 0 ? right_cnn : right_texture) +=
              label_index(alone[k]) == examples[test[k]].labels[0];
          (share == 0 ? cv.confidence_cnn : cv.confidence_texture)[test[k]] =
              in_label_order(alone[k]);
        }
      }
    }
    int right = 0;
    for (size_t k = 0; k < test.size(); ++k) {
      const int predicted = label_index(analyses[k]);
      cv.predicted[test[k]] = predicted;
      cv.confidence[test[k]] = in_label_order(analyses[k]);
      right += predicted == examples[test[k]].labels[0];
    }
    right_total += right;
    cv.fold_accuracy.push_back(double(right) / double(test.size()));
  }
  const double n = double(examples.size());
  cv.accuracy = examples.empty() ? 0 : right_total / n;
  cv.accuracy_cnn = cv.accuracy_texture = std::numeric_limits<double>::quiet_NaN();
  if (!cv.fold_texture_weight.empty()) {
    cv.accuracy_cnn = right_cnn / n;
    cv.accuracy_texture = right_texture / n;
  }
  cv.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return cv;
}

Result<FolderSet> ReadModeSet(catalog::Catalog& catalog, const std::string& root,
                              const Preprocessing& preprocessing, int max_per_label, int threads) {
  SCISEARCH_ASSIGN_OR_RETURN(std::vector<catalog::DatasetRow> rows,
                             catalog.ListDatasets(root, "ok"));
  // Modes whose picture is a frame and that the metadata names for sure.
  std::map<std::string, std::vector<const catalog::DatasetRow*>> by_mode;
  for (const catalog::DatasetRow& row : rows) {
    const formats::Mode mode = row.fields.mode;
    if (mode == formats::Mode::kUnknown || mode == formats::Mode::kImage ||
        mode == formats::Mode::kSpectrum || mode == formats::Mode::kSpectrumImage) {
      continue;
    }
    by_mode[std::string(formats::ModeName(mode))].push_back(&row);
  }
  FolderSet set;
  std::vector<std::string> paths, group_of;
  std::vector<std::vector<int>> label_of;
  for (auto& [mode, members] : by_mode) {
    // Spread the sample over the whole catalog (path order: instruments, years, sessions).
    const size_t take = std::min(members.size(), size_t(std::max(1, max_per_label)));
    for (size_t k = 0; k < take; ++k) {
      paths.push_back(members[k * members.size() / take]->path);
      group_of.push_back(FolderGroup(paths.back()));
      label_of.push_back({int(set.labels.size())});
    }
    set.labels.push_back(mode);
  }
  if (set.labels.empty()) {
    return Status::NotFound("the catalog has no image whose metadata tells its mode");
  }
  AppendExamples(paths, std::move(label_of), group_of, preprocessing, threads, false, set);
  return set;
}

Result<FolderSet> ReadValidatedTagSet(catalog::Catalog& catalog, const Preprocessing& preprocessing,
                                      int min_examples, int threads) {
  SCISEARCH_ASSIGN_OR_RETURN(std::vector<catalog::ValidatedTags> validated,
                             catalog.ListValidatedTags());
  std::map<std::string, int> count;
  for (const auto& v : validated) {
    for (const std::string& tag : v.accepted) ++count[tag];
  }
  FolderSet set;
  std::map<std::string, int> index;
  for (const auto& [tag, n] : count) {
    if (n >= min_examples) {
      index[tag] = int(set.labels.size());
      set.labels.push_back(tag);
    }
  }
  if (set.labels.empty()) {
    return Status::NotFound("no accepted tag is carried by at least " +
                            std::to_string(min_examples) + " datasets: nothing to learn yet");
  }
  std::vector<std::string> paths, group_of;
  std::vector<std::vector<int>> label_of;
  for (const auto& v : validated) {
    paths.push_back(v.path);
    group_of.push_back(FolderGroup(v.path));
    std::vector<int> labels;
    for (const std::string& tag : v.accepted) {
      auto it = index.find(tag);
      if (it != index.end()) labels.push_back(it->second);
    }
    label_of.push_back(std::move(labels));
  }
  AppendExamples(paths, std::move(label_of), group_of, preprocessing, threads, true, set);
  return set;
}

Result<TagPassReport> TagCatalog(catalog::Catalog& catalog, const Model& model,
                                 const TagPassOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  SCISEARCH_ASSIGN_OR_RETURN(
      std::vector<catalog::DatasetPath> todo,
      catalog.DatasetsWithoutImageAnalysis(options.root, options.redo ? "" : model.id()));
  std::vector<std::string> paths;
  for (const catalog::DatasetPath& d : todo) paths.push_back(d.path);
  TagPassReport report;
  catalog::Catalog::BatchWriter writer(catalog, 256);
  int64_t done = 0;
  auto note_problem = [&](const std::string& problem) {
    ++report.failed;
    if (report.problems.size() < 100) report.problems.push_back(problem);
  };
  auto write = [&](size_t first, std::vector<FileAnalysis>& results) {
    for (size_t i = 0; i < results.size(); ++i) {
      FileAnalysis& result = results[i];
      if (result.frameless) {
        ++report.skipped;
        continue;
      }
      if (!result.status.ok()) {
        note_problem(result.status.message());
        continue;
      }
      catalog::ImageAnalysisRecord record;
      record.dataset_id = todo[first + i].id;
      record.model_id = model.id();
      record.signal_index = result.signal_index;
      record.embedding = std::move(result.analysis.embedding);
      for (const LabelScore& score : result.analysis.labels) {
        if (score.confidence < options.min_confidence) break;  // most confident first
        record.tags.push_back({score.label, "image", score.confidence,
                               "image model " + model.id() + " sees it in the image (" +
                                   Short(score.confidence) + ")"});
        if (!model.multi_label()) break;  // one class per image
      }
      Status put = writer.PutImageAnalysis(record);
      if (!put.ok()) {
        note_problem(paths[first + i] + ": " + put.message());
        continue;
      }
      ++report.analysed;
      report.tags_written += int64_t(record.tags.size());
    }
    done += int64_t(results.size());
    if (options.on_progress) options.on_progress(done, int64_t(todo.size()));
    return Status::Ok();
  };
  SCISEARCH_RETURN_IF_ERROR(AnalyseFiles(paths, model, options.threads, options.batch, write));
  SCISEARCH_RETURN_IF_ERROR(writer.Flush());
  report.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return report;
}

Result<std::vector<SimilarDataset>> FindSimilar(catalog::Catalog& catalog, int64_t dataset_id,
                                                int limit) {
  SCISEARCH_ASSIGN_OR_RETURN(catalog::StoredEmbedding query, catalog.GetImageEmbedding(dataset_id));
  SCISEARCH_ASSIGN_OR_RETURN(std::vector<catalog::StoredEmbedding> all,
                             catalog.ImageEmbeddings(query.model_id));
  std::vector<SimilarDataset> out;
  for (const catalog::StoredEmbedding& e : all) {
    if (e.dataset_id == dataset_id || e.vector.size() != query.vector.size()) continue;
    double dot = 0;
    for (size_t i = 0; i < e.vector.size(); ++i) dot += double(e.vector[i]) * query.vector[i];
    out.push_back({e.dataset_id, dot});
  }
  const size_t keep = std::min(out.size(), size_t(std::max(0, limit)));
  std::partial_sort(out.begin(), out.begin() + ptrdiff_t(keep), out.end(),
                    [](const SimilarDataset& a, const SimilarDataset& b) {
                      return a.similarity > b.similarity ||
                             (a.similarity == b.similarity && a.dataset_id < b.dataset_id);
                    });
  out.resize(keep);
  return out;
}

}  // namespace scisearch::vision
