// `scisearch vision ...`: training, evaluating and running the image tagger (issue 7),
// apart from main.cc so that only main.cc pays for CLI11.
//
//   vision train --from-folders DIR --model OUT [--pretrained M [--fine-tune]]
//                                    a model on a folder per class (single label)
//   vision train --model OUT --pretrained M [--fine-tune]
//                                    stage 2: the head on the catalog's validated tags
//   vision pretrain --model OUT      stage 1: the whole network on the modes metadata tells
//   vision evaluate --from-folders DIR [--groups CSV] [--folds K] [--pretrained M]
//                                    grouped, stratified k-fold cross-validation
//   vision predict --model M PATH... [--json]
//   vision tag --model M [--root R]  writes image tags and embeddings into the catalog
//   vision similar PATH|dataset:ID   the datasets whose images look most alike
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "common/status.h"

namespace scisearch::cli {

struct VisionCommand {
  std::string action;  // train, pretrain, evaluate, predict, tag, similar
  std::filesystem::path data_dir;
  std::string from_folders;
  std::string model;       // the model to write (train, pretrain) or to use
  std::string pretrained;  // the stage-1 model whose convolutional layers are reused
  bool fine_tune = false;  // with pretrained: the last convolutional block learns too
  std::string groups_csv;  // evaluate/train: path,group columns (split_shared.csv)
  int folds = 5;
  std::vector<std::string> paths;  // predict: files; similar: one reference
  bool json = false;
  int epochs = 0;              // 0: the default of the training kind
  int min_steps = -1;          // -1: the default (see vision::TrainOptions::min_steps)
  int frame_side = 0;          // 0: the default
  int tile_side = 0;           // 0: the default
  int texture_side = -1;       // -1: the default; 0: no texture head
  double texture_weight = -1;  // the texture head's share; < 0: TrainOptions' default rule
  int threads = 2;
  int max_per_mode = 2000;  // pretrain: images per mode at most
  int min_examples = 5;     // train on the catalog: a tag needs this many datasets
  double min_confidence = 0.5;
  std::string root;  // tag: only datasets under this folder
  bool redo = false;
  int top = 10;
  uint64_t seed = 1;
};

// Runs `command` in this process (the scisearch-vision executable, which links libtorch);
// returns the process's exit status (0 ok, 1 some input failed but the rest was done, 2
// nothing could be done) after printing errors as "scisearch: reason".
int RunVision(const VisionCommand& command);

// The command as one JSON object, and back: how `scisearch vision` hands its parsed
// options to scisearch-vision. FromJson: kInvalidArgument for a malformed object.
std::string VisionCommandToJson(const VisionCommand& command);
Result<VisionCommand> VisionCommandFromJson(const std::string& json);

// Replaces this process with scisearch-vision running `command`. libtorch lives only in
// that executable, so the other commands start in milliseconds rather than half a second.
// It is looked for beside this executable, then where CMake built it, then in the install
// bin directory. Returns (2) only when it cannot be started, after saying why.
int ExecVision(const VisionCommand& command);
// As ExecVision, but in a child process, waiting for it: returns its exit status, or 2
// when it could not be started or was killed (after saying why).
int RunVisionProcess(const VisionCommand& command);

}  // namespace scisearch::cli
