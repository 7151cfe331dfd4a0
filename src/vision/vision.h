// The vision module: a compact CNN that tags images, trained the way a facility with few
// expert labels can (issue 7). Stage 1 trains the whole network on labels the metadata
// gives for free (the operating mode); stage 2 freezes its convolutional layers and trains
// only the dense head on the tags experts validated.
//
// Beside the CNN, a model has a texture head: a linear model over texture statistics of the
// image at a finer scale than the CNN reads (grey-level histogram, structure-tensor
// coherence, local binary patterns). The model's confidences blend the two: the texture
// head's share is kDefaultTextureShare unless the held-out images show another to be better
// (TrainOptions::texture_weight). On the uhcs3 micrographs the texture head is the better
// classifier (how the blend fares on a facility's operating modes is not measured yet).
//
// This header is the module's whole interface and includes no libtorch header: libtorch
// stays inside the module's own translation units (it compiles slowly and costs 0.35 s
// per process start only when a model is actually used).
//
// Thread safety: Analyse and AnalyseBatch may run on several threads at once; the other
// methods of a Model need it to themselves. Train and Load may run on any thread; each sets
// libtorch's intra-op thread count to the `threads` it is given (libtorch's count is per
// process: the last call wins).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "thumbnail/thumbnail.h"

namespace scisearch::catalog {
class Catalog;
}

namespace scisearch::vision {

// How a frame becomes the network's input; stored in every model file, so that a model
// always sees images prepared as in its training.
struct Preprocessing {
  int frame_side = 320;    // frames are area-averaged to this longer side (smaller stay)
  int tile_side = 128;     // the network reads square tiles of this side cut from the frame
  int tiles_per_side = 3;  // inference averages a grid of at most this many tiles per side
  // The texture statistics are taken of the image area-averaged to this longer side
  // (smaller stay): they need the fine detail the CNN's frame has lost (in the Python
  // prototype, bench/vision_texture_baseline.py, they lost 1-2 points of accuracy on uhcs3
  // at 448 px). 0 = no texture head.
  int texture_side = 768;
};

// The shortest frame side a model reads (and the shortest tile side it is trained with): a
// frame shorter than a tile is enlarged, but below this it holds too little to enlarge.
inline constexpr int kMinFrameSide = 8;

// What a model reads of one image (Model::PrepareImage makes it).
struct PreparedImage {
  thumbnail::GreyFrame frame;  // the CNN's input, at Preprocessing::frame_side
  // The texture statistics of the image and of crops of it (vision/texture.h: one vector of
  // statistics a view); empty when Preprocessing::texture_side is 0.
  std::vector<std::vector<float>> texture;
};

// The network's widths: the five convolutional blocks and the dense head's hidden layer.
// The embedding is the last block's width.
struct Architecture {
  std::vector<int> channels = {16, 32, 48, 64, 96};
  int hidden = 64;
};

// One image to learn from.
struct LabelledFrame {
  PreparedImage image;      // prepared as the model to train needs (Model::PrepareImage)
  std::vector<int> labels;  // indexes into the label list; exactly one unless multi-label
                            // (multi-label: every label not listed counts as absent)
  std::string group;        // frames of one group (one field of view, one sample) never straddle
                            // the training/validation split; "" = a group of its own
  std::string source;       // where it came from (a path), for messages
};

// How the convolutional layers of a `pretrained` model are reused.
enum class Transfer {
  kNone,              // train everything from scratch (no pretrained model)
  kFreezeFeatures,    // keep the pretrained convolutional layers fixed; train the head
  kFineTuneLastBlock  // as kFreezeFeatures, but the last convolutional block also learns
};

// The texture head's share in a model's confidences when the held-out images do not show
// another to be better. On uhcs3 (out-of-fold confidences of two fold assignments,
// bench/vision_blend.py), shares 0.6-0.8 scored 0.957-0.958, the CNN alone 0.911, the texture
// head alone 0.953, and the share each model chose as the lowest log-loss of its 72 held-out
// images 0.950: so few images cannot tell nearby shares apart. A third fold assignment, run
// after the pick, scored 0.950 at 0.7 and 0.947 with the share each model chose.
inline constexpr double kDefaultTextureShare = 0.7;

struct TrainOptions {
  // With a pretrained model, its frame and tile sides are kept; texture_side is always this.
  Preprocessing preprocessing;
  Architecture architecture;  // ignored with a pretrained model: its own is kept
  bool multi_label = false;   // sigmoid per label (tags) rather than softmax (classes)
  int epochs = 30;
  // Small sets get more epochs, up to this many optimiser steps in all: fifty labelled images
  // make two batches an epoch, and thirty epochs of them teach a head next to nothing.
  int min_steps = 400;
  int batch_size = 32;
  int tiles_per_image = 4;  // random tiles drawn from each image per epoch
  double learning_rate = 2e-3;
  double weight_decay = 1e-4;
  // Part of the groups held out to calibrate the confidences (temperature scaling) and to
  // report validation figures; 0 = none (confidences stay uncalibrated).
  double validation_fraction = 0.2;
  Transfer transfer = Transfer::kNone;
  // The texture head's share in the blended confidences (0 = the CNN alone, 1 = the texture
  // head alone). Below 0: kDefaultTextureShare, unless the share in 0, 0.1, ..., 1 that
  // gives the held-out images the lowest log-loss beats it by more than twice the standard
  // error of the per-image difference.
  double texture_weight = -1;
  int threads = 2;
  uint64_t seed = 1;
  // Called after every epoch with (epoch, epochs, mean training loss); may be empty.
  std::function<void(int, int, double)> on_epoch;
};

// What training measured.
struct TrainReport {
  int train_images = 0;
  int validation_images = 0;
  int epochs = 0;
  double seconds = 0;
  double final_loss = 0;
  // On the validation images, after calibration: single-label accuracy, or for
  // multi-label the micro-averaged precision and recall at confidence 0.5; and the
  // expected calibration error (10 bins). NaN when there was no validation image.
  double validation_accuracy = 0;
  double validation_precision = 0;
  double validation_recall = 0;
  double validation_ece = 0;
  double temperature = 1;     // the CNN's
  double texture_weight = 0;  // the texture head's share (0 without a texture head)
  // On the validation images: single-label accuracy of the CNN alone and of the texture head
  // alone (NaN when not measured).
  double validation_accuracy_cnn = 0;
  double validation_accuracy_texture = 0;
};

// A label and how sure the model is of it (a calibrated probability, 0..1).
struct LabelScore {
  std::string label;
  double confidence = 0;
};

// What a model makes of one frame.
struct Analysis {
  std::vector<LabelScore> labels;  // every label, most confident first
  std::vector<float> embedding;    // unit length; compare two by their dot product
};

class Model {
 public:
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // Trains a model on `examples` with the label list `labels`. With `pretrained`, its
  // preprocessing, architecture and convolutional weights are the start, reused as
  // options.transfer says; options.transfer must be kNone exactly when `pretrained` is
  // null. Errors: kInvalidArgument for no examples, a label index outside `labels`, a
  // single-label example without exactly one label, or a transfer without a pretrained
  // model. `report` (may be null) receives the figures.
  static Result<std::unique_ptr<Model>> Train(const std::vector<std::string>& labels,
                                              const std::vector<LabelledFrame>& examples,
                                              const TrainOptions& options, const Model* pretrained,
                                              TrainReport* report);

  // Reads a model file written by Save. Errors name the file and the reason: kNotFound,
  // kCorrupt (bad magic, damaged or truncated content, weights that do not fit the
  // architecture), kUnsupported (a newer model format).
  static Result<std::unique_ptr<Model>> Load(const std::filesystem::path& path, int threads = 2);

  // Writes the model as one file (atomically: a temporary file renamed into place): its
  // labels, preprocessing, architecture, calibration, training report and weights.
  Status Save(const std::filesystem::path& path) const;

  // What a file's image becomes for a model with `preprocessing`: the frame of
  // thumbnail::PrepareGreyFrame at the frame side, and the texture statistics of the frame
  // PrepareGreyFrame makes at the texture side. `data` should hold the image at (at least)
  // the longer of the two sides. Errors as PrepareGreyFrame's. Pure; any thread.
  static Result<PreparedImage> PrepareImage(const formats::NdArray& data, formats::Mode mode,
                                            const Preprocessing& preprocessing);

  // Labels and embedding of `image` (prepared for preprocessing(); a frame of any size of
  // at least 8 x 8 pixels is accepted). kInvalidArgument for a smaller or empty frame, or no
  // texture statistics when the model has a texture head.
  Result<Analysis> Analyse(const PreparedImage& image) const;
  // As Analyse for many images at once (faster: one batch).
  Result<std::vector<Analysis>> AnalyseBatch(const std::vector<PreparedImage>& images) const;

  // Whether the model has a texture head, and its share in the confidences (0 = the CNN
  // alone, 1 = the texture head alone; 0 without a texture head).
  bool has_texture_head() const;
  double texture_weight() const;
  // Sets that share, clamped to 0..1; ignored by a model without a texture head. For
  // measuring each head alone; the model file keeps the share it was saved with.
  void set_texture_weight(double weight);

  const std::vector<std::string>& labels() const;
  bool multi_label() const;
  const Preprocessing& preprocessing() const;
  const TrainReport& report() const;
  // A short identifier of the weights (16 hex digits), kept with what the model wrote.
  const std::string& id() const;

  struct Impl;

 private:
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// --- Images from files -------------------------------------------------------

// The image of the file at `path` (the first signal with a frame; the first frame of a
// stack) prepared for `preprocessing`, and its operating mode. kUnsupported when the
// dataset has no frame (spectra), kInvalidArgument when the prepared frame is shorter than
// kMinFrameSide on a side, other errors as formats::OpenDataset and Read give them.
struct FileFrame {
  PreparedImage image;
  formats::Mode mode = formats::Mode::kUnknown;
  int signal_index = 0;
};
Result<FileFrame> ReadFileFrame(const std::filesystem::path& path,
                                const Preprocessing& preprocessing);
// What AnalyseFiles made of one file.
struct FileAnalysis {
  Status status;           // ok, or why the file has no analysis (its path and the reason)
  bool frameless = false;  // the dataset has no frame (spectra): no fault of the file's
  int signal_index = 0;    // the signal analysed
  Analysis analysis;       // when status is ok
};
// Reads the files of `paths` (as ReadFileFrame) and analyses them with `model` on `threads`
// workers: each reads a batch of `batch` files, runs the model once on them, then takes the
// next batch, so that reading and the network overlap and no worker waits for another. The
// workers are the parallelism: the model should run on one libtorch thread
// (Model::Load(path, 1)). After each batch, on_batch(first, results) gets results[i] for
// paths[first + i]; the calls come one at a time, batches in no particular order. An error
// on_batch returns stops the work (batches under way are not passed on) and is returned.
Status AnalyseFiles(
    const std::vector<std::string>& paths, const Model& model, int threads, int batch,
    const std::function<Status(size_t first, std::vector<FileAnalysis>& results)>& on_batch);

// A training set laid out as one folder per class (DIR/<label>/<image files>), labels in
// name order. Files no reader knows are skipped; files that fail to read are listed in
// `problems` as "PATH: reason" and skipped. `groups` maps a path relative to DIR (as
// "class/file.jpg") to its group; files it does not name are groups of their own.
struct FolderSet {
  std::vector<std::string> labels;
  std::vector<LabelledFrame> examples;
  std::vector<std::string> problems;
};
Result<FolderSet> ReadFolderSet(const std::filesystem::path& dir,
                                const Preprocessing& preprocessing,
                                const std::map<std::string, std::string>& groups, int threads);

// --- Evaluation --------------------------------------------------------------

// Grouped k-fold cross-validation of single-label training: the groups are dealt to
// `folds` folds within each label (stratified), each fold is predicted by a model trained
// on the others. Returns the accuracy of every fold and the predicted label index of every
// example; with a texture head, also the accuracy of each head alone.
struct CrossValidation {
  std::vector<double> fold_accuracy;
  double accuracy = 0;  // over all examples
  std::vector<int> predicted;
  // By example: the confidence of each label, in label order (empty for an example no
  // fold predicted). The folds depend on the seed only, so runs with other settings
  // can be combined example by example.
  std::vector<std::vector<double>> confidence;
  // The same folds' models with their texture share set to 0 (the CNN alone) and to 1 (the
  // texture head alone), and the share each fold's model chose; NaN and empty without a
  // texture head.
  double accuracy_cnn = 0;
  double accuracy_texture = 0;
  std::vector<std::vector<double>> confidence_cnn;      // as `confidence`; empty entries
  std::vector<std::vector<double>> confidence_texture;  // without a texture head
  std::vector<double> fold_texture_weight;
  double seconds = 0;
};
Result<CrossValidation> CrossValidate(const std::vector<std::string>& labels,
                                      const std::vector<LabelledFrame>& examples, int folds,
                                      const TrainOptions& options, const Model* pretrained);

// --- The catalog pass ----------------------------------------------------------

// Stage 1 examples: every dataset in state "ok" under `root` ("" = all) with a frame and a
// known mode (not "unknown" or plain "image"), labelled by mode, at most `max_per_label`
// of each mode (spread over the catalog's path order). Labels are the modes found, in
// name order. Unreadable files go to `problems`.
Result<FolderSet> ReadModeSet(catalog::Catalog& catalog, const std::string& root,
                              const Preprocessing& preprocessing, int max_per_label, int threads);

// Stage 2 examples: every dataset with a tag someone accepted (or an expert added),
// multi-label; labels are the accepted tag values carried by at least `min_examples`
// datasets, in name order.
Result<FolderSet> ReadValidatedTagSet(catalog::Catalog& catalog, const Preprocessing& preprocessing,
                                      int min_examples, int threads);

struct TagPassOptions {
  std::string root;             // "" = the whole catalog
  double min_confidence = 0.5;  // labels below this are not written as tags
  bool redo = false;            // also datasets this model already analysed
  // Workers and files per model call, as AnalyseFiles takes them: load the model with one
  // libtorch thread (Model::Load(path, 1)).
  int threads = 2;
  int batch = 16;
  std::function<void(int64_t done, int64_t total)> on_progress;  // may be empty
};
struct TagPassReport {
  int64_t analysed = 0;
  int64_t skipped = 0;  // no frame (spectra) or already analysed
  int64_t failed = 0;
  int64_t tags_written = 0;
  double seconds = 0;
  std::vector<std::string> problems;  // "PATH: reason", at most 100
};
// Analyses every dataset under options.root that `model` has not analysed yet: writes its
// labels at or above min_confidence as tags of source "image" (replacing the image tags
// this or an earlier model suggested; validated tags keep their state) and its embedding.
Result<TagPassReport> TagCatalog(catalog::Catalog& catalog, const Model& model,
                                 const TagPassOptions& options);

// The datasets whose stored embeddings are nearest to dataset `dataset_id`'s (same model),
// most similar first, at most `limit`, with their cosine similarity. kNotFound when the
// dataset has no embedding.
struct SimilarDataset {
  int64_t dataset_id = 0;
  double similarity = 0;
};
Result<std::vector<SimilarDataset>> FindSimilar(catalog::Catalog& catalog, int64_t dataset_id,
                                                int limit);

}  // namespace scisearch::vision
