// The CNN itself: network, training, calibration, inference and the model file. The only
// translation unit of the project that includes libtorch (its headers compile slowly).
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <sstream>

#include "common/hash.h"
#include "vision/blend.h"
#include "vision/texture.h"
#include "vision/vision.h"

namespace scisearch::vision {
namespace {

using torch::Tensor;

// The model file: kMagic, then three little-endian uint64-prefixed parts (the
// description as JSON, the weights as a libtorch archive) and the FNV-1a hash of every
// byte before it. Version 2 added the texture head (in the description); later versions
// must keep reading version 1 files (models without one).
constexpr char kMagic[8] = {'S', 'C', 'I', 'S', 'V', 'I', 'S', '1'};
constexpr int kFormatVersion = 2;
// Grey levels enter the network centred: (v - 0.5) / 0.25.
constexpr float kInputMean = 0.5f, kInputScale = 0.25f;

// --- The network --------------------------------------------------------------

// 3x3 convolution, batch normalisation, ReLU.
struct BlockImpl : torch::nn::Module {
  BlockImpl(int in, int out, int stride)
      : conv(register_module(
            "conv",
            torch::nn::Conv2d(
                torch::nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false)))),
        norm(register_module("norm", torch::nn::BatchNorm2d(out))) {}
  Tensor forward(const Tensor& x) { return torch::relu(norm(conv(x))); }
  torch::nn::Conv2d conv;
  torch::nn::BatchNorm2d norm;
};
TORCH_MODULE(Block);

// Five blocks (the first with stride 2, 2x2 max pooling after the 2nd, 3rd and 4th),
// global average pooling to the embedding, then a dense head with one hidden layer.
struct NetImpl : torch::nn::Module {
  NetImpl(const Architecture& arch, int labels) {
    int in = 1;
    for (size_t i = 0; i < arch.channels.size(); ++i) {
      blocks.push_back(register_module("block" + std::to_string(i),
                                       Block(in, arch.channels[i], i == 0 ? 2 : 1)));
      in = arch.channels[i];
    }
    hidden = register_module("hidden", torch::nn::Linear(in, arch.hidden));
    dropout = register_module("dropout", torch::nn::Dropout(0.3));
    out = register_module("out", torch::nn::Linear(arch.hidden, labels));
  }
  Tensor Features(Tensor x) {
    for (size_t i = 0; i < blocks.size(); ++i) {
      x = blocks[i]->forward(x);
      if (i >= 1 && i + 1 < blocks.size()) x = torch::max_pool2d(x, 2);
    }
    return torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
  }
  // Features() of an eval-mode network, computed the fast way inference can afford: each
  // block's batch normalisation folded into its convolution's weights and bias, ReLU in
  // place, and, where libtorch has oneDNN, the activations kept in its blocked layout from
  // the first convolution to the last. Plain NCHW tensors cost oneDNN a reorder before and
  // after every convolution, and normalising, ReLU and pooling a pass over memory each: on a
  // 128 px tile and one core, 4.3 ms in all (half of it outside the convolutions) against
  // 1.7 ms this way. Equal to Features() up to float rounding
  // (Model::Impl::CheckInferenceForm). Needs a NoGradGuard.
  Tensor InferenceFeatures(Tensor x) {
    const bool blocked = at::hasMKLDNN();
    if (blocked) x = x.to_mkldnn();
    for (size_t i = 0; i < blocks.size(); ++i) {
      const BlockImpl& block = *blocks[i];
      const torch::nn::BatchNorm2dImpl& norm = *block.norm;
      const Tensor scale = norm.weight / torch::sqrt(norm.running_var + norm.options.eps());
      const Tensor weight = block.conv->weight * scale.view({-1, 1, 1, 1});
      const Tensor bias = norm.bias - norm.running_mean * scale;
      x = torch::conv2d(x, weight, bias, block.conv->options.stride(), 1);
      x.relu_();
      if (i >= 1 && i + 1 < blocks.size()) x = torch::max_pool2d(x, 2);
    }
    if (blocked) x = x.to_dense();
    return x.mean({2, 3});
  }
  Tensor Head(const Tensor& features) { return out(dropout(torch::relu(hidden(features)))); }

  std::vector<Block> blocks;
  torch::nn::Linear hidden{nullptr};
  torch::nn::Dropout dropout{nullptr};
  torch::nn::Linear out{nullptr};
};
TORCH_MODULE(Net);

void CheckArchitecture(const Architecture& arch) {
  if (arch.channels.size() < 3 || arch.hidden < 1 ||
      std::any_of(arch.channels.begin(), arch.channels.end(), [](int c) { return c < 1; })) {
    throw std::invalid_argument("the architecture needs at least 3 blocks of width >= 1");
  }
}

// --- Frames to tensors ----------------------------------------------------------

// `image` ([C, H, W]) resampled bilinearly to height x width.
Tensor Resized(const Tensor& image, int64_t height, int64_t width) {
  return torch::nn::functional::interpolate(image.unsqueeze(0),
                                            torch::nn::functional::InterpolateFuncOptions()
                                                .size(std::vector<int64_t>{height, width})
                                                .mode(torch::kBilinear)
                                                .align_corners(false))
      .squeeze(0);
}

// A frame as a [1, H, W] tensor of centred grey levels, enlarged (bilinear) when a side is
// shorter than one tile.
Tensor FrameTensor(const thumbnail::GreyFrame& frame, int tile_side) {
  Tensor t = torch::from_blob(const_cast<float*>(frame.pixels.data()),
                              {1, frame.height, frame.width}, torch::kFloat32)
                 .clone();
  t = (t - kInputMean) / kInputScale;
  const int shorter = std::min(frame.height, frame.width);
  if (shorter < tile_side) {
    const double f = double(tile_side) / shorter;
    const int64_t h = std::max<int64_t>(tile_side, std::llround(frame.height * f));
    const int64_t w = std::max<int64_t>(tile_side, std::llround(frame.width * f));
    t = Resized(t, h, w);
  }
  return t;
}

// The evenly spread grid of at most n x n tiles that covers the frame.
std::vector<Tensor> GridTiles(const Tensor& frame, int tile, int n) {
  const int64_t h = frame.size(1), w = frame.size(2);
  auto starts = [&](int64_t length) {
    const int64_t count = std::min<int64_t>(n, (length + tile - 1) / tile);
    std::vector<int64_t> out;
    for (int64_t i = 0; i < count; ++i) {
      out.push_back(count == 1 ? (length - tile) / 2 : i * (length - tile) / (count - 1));
    }
    return out;
  };
  std::vector<Tensor> tiles;
  for (int64_t y : starts(h)) {
    for (int64_t x : starts(w)) tiles.push_back(frame.slice(1, y, y + tile).slice(2, x, x + tile));
  }
  return tiles;
}

// A random tile for training: a square of 0.75-1.33 tiles' side (as far as the frame
// allows) at a random place, scaled to one tile, turned by a multiple of 90 degrees,
// perhaps mirrored, with its contrast and brightness jittered. Micrographs have no
// preferred orientation and their magnification varies, so these change nothing a label
// depends on.
Tensor RandomTile(const Tensor& frame, int tile, std::mt19937_64& rng) {
  const int64_t h = frame.size(1), w = frame.size(2);
  std::uniform_real_distribution<double> log_scale(std::log(0.75), std::log(1.33));
  int64_t side = std::llround(tile * std::exp(log_scale(rng)));
  side = std::clamp<int64_t>(side, 1, std::min(h, w));
  const int64_t y = std::uniform_int_distribution<int64_t>(0, h - side)(rng);
  const int64_t x = std::uniform_int_distribution<int64_t>(0, w - side)(rng);
  Tensor t = frame.slice(1, y, y + side).slice(2, x, x + side);
  if (side != tile) {
    t = Resized(t, tile, tile);
  }
  const int turns = std::uniform_int_distribution<int>(0, 3)(rng);
  if (turns) t = torch::rot90(t, turns, {1, 2});
  if (std::uniform_int_distribution<int>(0, 1)(rng)) t = t.flip({2});
  std::uniform_real_distribution<double> contrast(0.8, 1.25), brightness(-0.3, 0.3);
  return t * contrast(rng) + brightness(rng);
}

// --- Calibration and figures ---------------------------------------------------

// Mean negative log-likelihood of `labels` under `logits` / temperature.
double MeanNll(const Tensor& logits, const Tensor& targets, bool multi_label, double temperature) {
  const Tensor scaled = logits / temperature;
  if (multi_label) {
    return torch::binary_cross_entropy_with_logits(scaled, targets).item<double>();
  }
  return torch::nn::functional::cross_entropy(scaled, targets).item<double>();
}

// The log-loss of each image [N] (multi-label: the mean over its labels), of logits already
// calibrated.
Tensor NllPerImage(const Tensor& logits, const Tensor& targets, bool multi_label) {
  if (multi_label) {
    return torch::binary_cross_entropy_with_logits(logits, targets, {}, {}, at::Reduction::None)
        .mean(1);
  }
  return torch::nn::functional::cross_entropy(
      logits, targets, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
}

// The temperature that minimises the validation NLL (golden-section search on its log).
double FitTemperature(const Tensor& logits, const Tensor& targets, bool multi_label) {
  double a = std::log(0.05), b = std::log(20.0);
  const double g = (std::sqrt(5.0) - 1) / 2;
  double c = b - g * (b - a), d = a + g * (b - a);
  auto f = [&](double log_t) { return MeanNll(logits, targets, multi_label, std::exp(log_t)); };
  double fc = f(c), fd = f(d);
  for (int i = 0; i < 40; ++i) {
    if (fc < fd) {
      b = d, d = c, fd = fc;
      c = b - g * (b - a), fc = f(c);
    } else {
      a = c, c = d, fc = fd;
      d = a + g * (b - a), fd = f(d);
    }
  }
  return std::exp((a + b) / 2);
}

// Expected calibration error over 10 equal-width bins of (confidence, outcome) pairs.
double CalibrationError(const std::vector<std::pair<double, double>>& pairs) {
  if (pairs.empty()) return std::numeric_limits<double>::quiet_NaN();
  double sum_conf[10] = {0}, sum_out[10] = {0};
  int count[10] = {0};
  for (const auto& [conf, outcome] : pairs) {
    const int bin = std::min(9, int(conf * 10));
    sum_conf[bin] += conf, sum_out[bin] += outcome, ++count[bin];
  }
  double ece = 0;
  for (int b = 0; b < 10; ++b) {
    if (count[b]) ece += std::abs(sum_conf[b] - sum_out[b]) / double(pairs.size());
  }
  return ece;
}

std::string Hex16(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

void PutU64(std::string& out, uint64_t v) {
  for (int b = 0; b < 8; ++b) out.push_back(char(uint8_t(v >> (8 * b))));
}

bool GetU64(const std::string& in, size_t& pos, uint64_t& v) {
  if (in.size() - pos < 8) return false;
  v = 0;
  for (int b = 0; b < 8; ++b) v |= uint64_t(uint8_t(in[pos + size_t(b)])) << (8 * b);
  pos += 8;
  return true;
}

nlohmann::json ReportJson(const TrainReport& r) {
  auto number = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); };
  return {{"train_images", r.train_images},
          {"validation_images", r.validation_images},
          {"epochs", r.epochs},
          {"seconds", number(r.seconds)},
          {"final_loss", number(r.final_loss)},
          {"validation_accuracy", number(r.validation_accuracy)},
          {"validation_precision", number(r.validation_precision)},
          {"validation_recall", number(r.validation_recall)},
          {"validation_ece", number(r.validation_ece)},
          {"temperature", r.temperature},
          {"texture_weight", r.texture_weight},
          {"validation_accuracy_cnn", number(r.validation_accuracy_cnn)},
          {"validation_accuracy_texture", number(r.validation_accuracy_texture)}};
}

double NumberOr(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>()
                                          : std::numeric_limits<double>::quiet_NaN();
}

// --- The texture head -----------------------------------------------------------

// A linear model over texture statistics (texture.h), trained on every view of an image
// as an example of its own and predicting an image by the mean of its views' logits (for
// softmax, the normalised geometric mean of the views' probabilities). L2-regularised
// full-batch gradient descent: a few thousand rows of a hundred statistics converge in
// about a second.
struct TextureHead {
  // On uhcs3 (texture head alone, five fold assignments), L2 0.003 gave 0.947-0.956 (median
  // 0.953), 0.01 gave 0.936-0.958 (median 0.944), 0.03 gave 0.931-0.944.
  static constexpr double kL2 = 0.003;
  static constexpr int kSteps = 2000;
  static constexpr double kRate = 0.5;

  Tensor mean, scale;  // [F]: statistics standardised as in training
  Tensor weight;       // [F, L]
  Tensor bias;         // [L]
  double temperature = 1;

  bool trained() const { return weight.defined(); }

  // Trains on `images` (each [V, F]: its views) with `targets` (class indices [N], or
  // [N, L] of 0/1 for multi-label); `class_weight` ([L], may be undefined) weights single-
  // label examples by class.
  void Fit(const std::vector<Tensor>& images, const Tensor& targets, int64_t labels,
           bool multi_label, const Tensor& class_weight) {
    std::vector<int64_t> views;
    for (const Tensor& v : images) views.push_back(v.size(0));
    const Tensor rows = torch::cat(images);
    const Tensor repeats = torch::tensor(views, torch::kInt64);
    const Tensor row_targets = targets.repeat_interleave(repeats, 0);
    mean = rows.mean(0);
    scale = rows.std(0, /*unbiased=*/false) + 1e-6;
    const Tensor x = (rows - mean) / scale;
    const Tensor y =
        multi_label ? row_targets : torch::one_hot(row_targets, labels).to(torch::kFloat32);
    Tensor row_weight = torch::ones({x.size(0), 1});
    if (!multi_label && class_weight.defined()) {
      row_weight = class_weight.index_select(0, row_targets).unsqueeze(1);
      row_weight = row_weight / row_weight.mean();
    }
    weight = torch::zeros({x.size(1), labels});
    bias = torch::zeros({labels});
    const double n = double(x.size(0));
    for (int step = 0; step < kSteps; ++step) {
      const Tensor z = torch::addmm(bias, x, weight);
      const Tensor p = multi_label ? torch::sigmoid(z) : torch::softmax(z, 1);
      const Tensor g = (p - y) * row_weight;
      weight -= kRate * (torch::mm(x.t(), g) / n + kL2 * weight);
      bias -= kRate * g.mean(0);
    }
  }

  // Uncalibrated logits [N, L] of images given their views.
  Tensor Logits(const std::vector<Tensor>& images) const {
    std::vector<Tensor> out;
    for (const Tensor& v : images)
      out.push_back(torch::addmm(bias, (v - mean) / scale, weight).mean(0));
    return torch::stack(out);
  }

  nlohmann::json ToJson() const {
    auto floats = [](const Tensor& t) {
      const Tensor c = t.contiguous();
      return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
    };
    return {{"statistics", mean.size(0)}, {"mean", floats(mean)}, {"scale", floats(scale)},
            {"weight", floats(weight)},   {"bias", floats(bias)}, {"temperature", temperature}};
  }

  // Reads ToJson's object for `labels` labels; false when a size or a value is impossible.
  bool FromJson(const nlohmann::json& j, int64_t labels) {
    const int64_t f = j.at("statistics").get<int64_t>();
    auto tensor = [](const nlohmann::json& a, std::vector<int64_t> shape) {
      std::vector<float> v = a.get<std::vector<float>>();
      int64_t n = 1;
      for (int64_t d : shape) n *= d;
      if (int64_t(v.size()) != n) return Tensor();
      for (float x : v) {
        if (!std::isfinite(x)) return Tensor();
      }
      return torch::tensor(v).reshape(shape);
    };
    if (f != kTextureStatisticsPerView) return false;
    mean = tensor(j.at("mean"), {f});
    scale = tensor(j.at("scale"), {f});
    weight = tensor(j.at("weight"), {f, labels});
    bias = tensor(j.at("bias"), {labels});
    temperature = j.at("temperature").get<double>();
    return mean.defined() && scale.defined() && weight.defined() && bias.defined() &&
           (scale > 0).all().item<bool>() && temperature > 0;
  }
};

// An image's texture statistics as a [V, F] tensor.
Tensor ViewTensor(const std::vector<std::vector<float>>& views) {
  std::vector<float> flat;
  for (const auto& v : views) flat.insert(flat.end(), v.begin(), v.end());
  return torch::tensor(flat).reshape({int64_t(views.size()), kTextureStatisticsPerView});
}

}  // namespace

// --- The model --------------------------------------------------------------------

struct Model::Impl {
  std::vector<std::string> labels;
  bool multi_label = false;
  Preprocessing preprocessing;
  Architecture architecture;
  TrainReport report;
  double temperature = 1;
  std::string id;
  Net net{nullptr};
  TextureHead texture;        // untrained when preprocessing.texture_side is 0
  double texture_weight = 0;  // the texture head's share in the confidences

  // Per-tile features of `tiles` ([N, 1, T, T]), in chunks, without gradients.
  Tensor FeaturesOf(const Tensor& tiles) {
    std::vector<Tensor> parts;
    for (int64_t at = 0; at < tiles.size(0); at += 64) {
      parts.push_back(
          net->InferenceFeatures(tiles.slice(0, at, std::min<int64_t>(at + 64, tiles.size(0)))));
    }
    return torch::cat(parts);
  }

  // Ok when the network's fast inference form gives its features (Net::InferenceFeatures
  // against Net::Features, both in eval mode, on two fixed random tiles); Internal
  // otherwise. Leaves the network in eval mode.
  Status CheckInferenceForm() {
    torch::NoGradGuard no_grad;
    net->eval();
    const int64_t side = preprocessing.tile_side;
    const Tensor probe = torch::randn({2, 1, side, side}, at::detail::createCPUGenerator(20111013));
    const Tensor expected = net->Features(probe);
    const double difference = (net->InferenceFeatures(probe) - expected).abs().max().item<double>();
    const double tolerance = 1e-4 * std::max(1.0, expected.abs().max().item<double>());
    if (!(difference <= tolerance)) {
      return Status::Internal("vision: the network's inference form disagrees with it (by " +
                              std::to_string(difference) + ")");
    }
    return Status::Ok();
  }

  // Mean logits (uncalibrated) and unit embeddings of prepared frames. The network must be
  // in eval mode (Train and Load leave it so): Infer changes nothing, so that several
  // threads may run it at once.
  std::pair<Tensor, Tensor> Infer(const std::vector<Tensor>& frames) {
    torch::NoGradGuard no_grad;
    std::vector<Tensor> tiles;
    std::vector<int64_t> first;
    for (const Tensor& frame : frames) {
      first.push_back(int64_t(tiles.size()));
      for (Tensor& t : GridTiles(frame, preprocessing.tile_side, preprocessing.tiles_per_side)) {
        tiles.push_back(std::move(t));
      }
    }
    first.push_back(int64_t(tiles.size()));
    const Tensor features = FeaturesOf(torch::stack(tiles));
    const Tensor tile_logits = net->Head(features);
    std::vector<Tensor> logits, embeddings;
    for (size_t i = 0; i + 1 < first.size(); ++i) {
      logits.push_back(tile_logits.slice(0, first[i], first[i + 1]).mean(0));
      const Tensor e = features.slice(0, first[i], first[i + 1]).mean(0);
      embeddings.push_back(e / e.norm().clamp_min(1e-12));
    }
    return {torch::stack(logits), torch::stack(embeddings)};
  }

  // The calibrated logits of both heads, blended: the CNN's (`cnn`) and, with a texture
  // head, its logits of `texture` (the images' views), weighted by the texture share.
  Tensor Blended(const Tensor& cnn, const std::vector<Tensor>& texture_views) const {
    const Tensor calibrated = cnn / temperature;
    if (!texture.trained()) return calibrated;
    const Tensor t = texture.Logits(texture_views) / texture.temperature;
    return (1 - texture_weight) * calibrated + texture_weight * t;
  }

  Tensor Probabilities(const Tensor& blended) const {
    return multi_label ? torch::sigmoid(blended) : torch::softmax(blended, 1);
  }

  // What identifies the weights: the CNN's archive and the texture head's numbers.
  std::string ComputeId(const std::string& weights) const {
    std::string all = weights;
    if (texture.trained()) all += texture.ToJson().dump() + std::to_string(texture_weight);
    return Hex16(Fnv1a(all));
  }

  std::string Description() const {
    nlohmann::json j = {{"format", "scisearch-vision-model"},
                        {"version", kFormatVersion},
                        {"labels", labels},
                        {"multi_label", multi_label},
                        {"preprocessing",
                         {{"frame_side", preprocessing.frame_side},
                          {"tile_side", preprocessing.tile_side},
                          {"tiles_per_side", preprocessing.tiles_per_side},
                          {"texture_side", preprocessing.texture_side},
                          {"input_mean", kInputMean},
                          {"input_scale", kInputScale}}},
                        {"architecture",
                         {{"name", "scisearch-cnn"},
                          {"channels", architecture.channels},
                          {"hidden", architecture.hidden}}},
                        {"temperature", temperature},
                        {"training", ReportJson(report)}};
    if (texture.trained()) {
      j["texture"] = texture.ToJson();
      j["texture_weight"] = texture_weight;
    }
    return j.dump();
  }
};

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;

const std::vector<std::string>& Model::labels() const { return impl_->labels; }
bool Model::multi_label() const { return impl_->multi_label; }
const Preprocessing& Model::preprocessing() const { return impl_->preprocessing; }
const TrainReport& Model::report() const { return impl_->report; }
const std::string& Model::id() const { return impl_->id; }
bool Model::has_texture_head() const { return impl_->texture.trained(); }
double Model::texture_weight() const { return impl_->texture_weight; }
void Model::set_texture_weight(double weight) {
  if (impl_->texture.trained()) impl_->texture_weight = std::clamp(weight, 0.0, 1.0);
}

namespace {

// The weights of `net` as a libtorch archive.
std::string WeightBytes(Net& net) {
  torch::serialize::OutputArchive archive;
  net->save(archive);
  std::ostringstream out;
  archive.save_to(out);
  return out.str();
}

// kInvalidArgument (naming `source`) unless `image` has a frame of at least 8 x 8 pixels
// and, when `texture` (the model has a texture head), texture statistics of every view.
Status CheckImage(const PreparedImage& image, bool texture, const std::string& source) {
  const thumbnail::GreyFrame& f = image.frame;
  if (f.height < kMinFrameSide || f.width < kMinFrameSide ||
      f.pixels.size() != size_t(f.height) * size_t(f.width)) {
    return Status::InvalidArgument(source + "a frame must be at least 8 x 8 pixels, not " +
                                   std::to_string(f.height) + " x " + std::to_string(f.width));
  }
  if (texture) {
    if (image.texture.empty()) {
      return Status::InvalidArgument(source +
                                     "no texture statistics (the image was prepared for a "
                                     "model without a texture head)");
    }
    for (const auto& view : image.texture) {
      if (view.size() != size_t(kTextureStatisticsPerView)) {
        return Status::InvalidArgument(source + "texture statistics of the wrong length");
      }
    }
  }
  return Status::Ok();
}

Status CheckExamples(const std::vector<std::string>& labels,
                     const std::vector<LabelledFrame>& examples, const TrainOptions& options,
                     bool texture) {
  if (labels.empty()) return Status::InvalidArgument("training needs at least one label");
  if (examples.empty()) return Status::InvalidArgument("training needs at least one image");
  for (const LabelledFrame& e : examples) {
    if (!options.multi_label && e.labels.size() != 1) {
      return Status::InvalidArgument(e.source + ": a single-label image needs exactly one label");
    }
    for (int l : e.labels) {
      if (l < 0 || size_t(l) >= labels.size()) {
        return Status::InvalidArgument(e.source + ": label index " + std::to_string(l) +
                                       " is outside the " + std::to_string(labels.size()) +
                                       " labels");
      }
    }
    SCISEARCH_RETURN_IF_ERROR(CheckImage(e.image, texture, e.source + ": "));
  }
  return Status::Ok();
}

// Deals whole groups to validation until about `fraction` of the examples are there,
// drawing groups in a seeded random order. Returns one flag per example.
std::vector<bool> ValidationSplit(const std::vector<LabelledFrame>& examples, double fraction,
                                  uint64_t seed) {
  std::vector<bool> validation(examples.size(), false);
  if (fraction <= 0 || examples.size() < 4) return validation;
  std::map<std::string, std::vector<size_t>> groups;
  for (size_t i = 0; i < examples.size(); ++i) {
    const std::string key =
        examples[i].group.empty() ? "#" + std::to_string(i) : "g:" + examples[i].group;
    groups[key].push_back(i);
  }
  std::vector<const std::vector<size_t>*> order;
  for (const auto& entry : groups) order.push_back(&entry.second);
  std::mt19937_64 rng(seed ^ 0x5eed);
  std::shuffle(order.begin(), order.end(), rng);
  const size_t want = size_t(std::llround(fraction * double(examples.size())));
  size_t taken = 0;
  for (const auto* members : order) {
    if (taken >= want) break;
    if (taken + members->size() > want + want / 2 + 1) continue;  // keep the share near
    for (size_t i : *members) validation[i] = true;
    taken += members->size();
  }
  if (taken == examples.size()) return std::vector<bool>(examples.size(), false);
  return validation;
}

Tensor TargetsOf(const std::vector<const LabelledFrame*>& batch, size_t labels, bool multi) {
  if (!multi) {
    std::vector<int64_t> ids;
    for (const auto* e : batch) ids.push_back(e->labels[0]);
    return torch::tensor(ids, torch::kInt64);
  }
  Tensor t = torch::zeros({int64_t(batch.size()), int64_t(labels)});
  for (size_t i = 0; i < batch.size(); ++i) {
    for (int l : batch[i]->labels) t[int64_t(i)][l] = 1.0f;
  }
  return t;
}

}  // namespace

Result<std::unique_ptr<Model>> Model::Train(const std::vector<std::string>& labels,
                                            const std::vector<LabelledFrame>& examples,
                                            const TrainOptions& options, const Model* pretrained,
                                            TrainReport* report) {
  const bool with_texture = options.preprocessing.texture_side > 0;
  SCISEARCH_RETURN_IF_ERROR(CheckExamples(labels, examples, options, with_texture));
  if ((options.transfer != Transfer::kNone) != (pretrained != nullptr)) {
    return Status::InvalidArgument(pretrained ? "a pretrained model needs a transfer mode"
                                              : "transfer learning needs a pretrained model");
  }
  if (options.epochs < 1 || options.batch_size < 1 || options.tiles_per_image < 1) {
    return Status::InvalidArgument("epochs, batch size and tiles per image must be at least 1");
  }
  const auto started = std::chrono::steady_clock::now();
  try {
    torch::set_num_threads(std::max(1, options.threads));
    torch::manual_seed(options.seed);
    auto impl = std::make_unique<Impl>();
    impl->labels = labels;
    impl->multi_label = options.multi_label;
    impl->preprocessing = pretrained ? pretrained->preprocessing() : options.preprocessing;
    impl->preprocessing.texture_side = options.preprocessing.texture_side;
    impl->architecture = pretrained ? pretrained->impl_->architecture : options.architecture;
    const Preprocessing& prep = impl->preprocessing;
    if (prep.tile_side < kMinFrameSide || prep.frame_side < prep.tile_side ||
        prep.tiles_per_side < 1 || prep.texture_side < 0) {
      return Status::InvalidArgument(
          "preprocessing needs tile side >= 8, frame side >= tile side, "
          "at least one tile per side and a texture side >= 0");
    }
    CheckArchitecture(impl->architecture);
    impl->net = Net(impl->architecture, int(labels.size()));
    Net& net = impl->net;

    // Transfer: copy the convolutional blocks; freeze what stays fixed.
    std::vector<Tensor> frozen_params, slow_params, fast_params;
    const size_t last_block = net->blocks.size() - 1;
    if (pretrained) {
      torch::NoGradGuard no_grad;
      auto source = pretrained->impl_->net->named_parameters();
      auto source_buffers = pretrained->impl_->net->named_buffers();
      for (auto& p : net->named_parameters()) {
        if (p.key().rfind("block", 0) == 0) p.value().copy_(source[p.key()]);
      }
      for (auto& b : net->named_buffers()) {
        if (b.key().rfind("block", 0) == 0) b.value().copy_(source_buffers[b.key()]);
      }
    }
    for (size_t i = 0; i < net->blocks.size(); ++i) {
      const bool trainable = options.transfer == Transfer::kNone ||
                             (options.transfer == Transfer::kFineTuneLastBlock && i == last_block);
      for (Tensor& p : net->blocks[i]->parameters()) {
        p.set_requires_grad(trainable);
        (trainable ? (options.transfer == Transfer::kNone ? fast_params : slow_params)
                   : frozen_params)
            .push_back(p);
      }
    }
    for (Tensor& p : net->hidden->parameters()) fast_params.push_back(p);
    for (Tensor& p : net->out->parameters()) fast_params.push_back(p);
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(
        fast_params,
        std::make_unique<torch::optim::AdamWOptions>(
            torch::optim::AdamWOptions(options.learning_rate).weight_decay(options.weight_decay)));
    if (!slow_params.empty()) {
      // The pretrained block adapts gently: a tenth of the head's learning rate.
      groups.emplace_back(slow_params, std::make_unique<torch::optim::AdamWOptions>(
                                           torch::optim::AdamWOptions(options.learning_rate / 10)
                                               .weight_decay(options.weight_decay)));
    }
    torch::optim::AdamW optimizer(std::move(groups));
    std::vector<double> base_lr;
    for (auto& g : optimizer.param_groups()) base_lr.push_back(g.options().get_lr());

    const std::vector<bool> is_validation =
        ValidationSplit(examples, options.validation_fraction, options.seed);
    std::vector<const LabelledFrame*> train_set, validation_set;
    std::vector<Tensor> train_frames, validation_frames, train_views, validation_views;
    for (size_t i = 0; i < examples.size(); ++i) {
      Tensor t = FrameTensor(examples[i].image.frame, prep.tile_side);
      Tensor views = with_texture ? ViewTensor(examples[i].image.texture) : Tensor();
      if (is_validation[i]) {
        validation_set.push_back(&examples[i]);
        validation_frames.push_back(std::move(t));
        validation_views.push_back(std::move(views));
      } else {
        train_set.push_back(&examples[i]);
        train_frames.push_back(std::move(t));
        train_views.push_back(std::move(views));
      }
    }

    // Single-label classes are weighted by inverse frequency, so that a rare mode counts.
    Tensor class_weight;
    if (!options.multi_label) {
      std::vector<double> count(labels.size(), 0);
      for (const auto* e : train_set) count[size_t(e->labels[0])] += 1;
      std::vector<float> w(labels.size(), 0.f);
      const double present =
          double(std::count_if(count.begin(), count.end(), [](double c) { return c > 0; }));
      for (size_t l = 0; l < labels.size(); ++l) {
        w[l] = count[l] > 0 ? float(double(train_set.size()) / (present * count[l])) : 0.f;
      }
      class_weight = torch::tensor(w);
    }

    std::mt19937_64 rng(options.seed);
    TrainReport r;
    r.train_images = int(train_set.size());
    r.validation_images = int(validation_set.size());
    const int64_t batches_per_epoch = std::max<int64_t>(
        1, (int64_t(train_set.size()) * options.tiles_per_image + options.batch_size - 1) /
               options.batch_size);
    const int epochs = int(std::max<int64_t>(
        options.epochs, (options.min_steps + batches_per_epoch - 1) / batches_per_epoch));
    r.epochs = epochs;
    std::vector<std::pair<size_t, int>> draws;  // (train index, tile number)
    for (int epoch = 0; epoch < epochs; ++epoch) {
      // Cosine decay of every group's learning rate, from its base to 2% of it.
      const double progress = double(epoch) / epochs;
      const double factor = 0.02 + 0.98 * 0.5 * (1 + std::cos(M_PI * progress));
      for (size_t g = 0; g < optimizer.param_groups().size(); ++g) {
        optimizer.param_groups()[g].options().set_lr(base_lr[g] * factor);
      }
      net->train();
      if (options.transfer != Transfer::kNone) {
        // Frozen blocks keep their batch-norm statistics.
        for (size_t i = 0; i < net->blocks.size(); ++i) {
          if (!(options.transfer == Transfer::kFineTuneLastBlock && i == last_block)) {
            net->blocks[i]->eval();
          }
        }
      }
      draws.clear();
      for (size_t i = 0; i < train_set.size(); ++i) {
        for (int k = 0; k < options.tiles_per_image; ++k) draws.emplace_back(i, k);
      }
      std::shuffle(draws.begin(), draws.end(), rng);
      double loss_sum = 0;
      int batches = 0;
      for (size_t at = 0; at < draws.size(); at += size_t(options.batch_size)) {
        const size_t end = std::min(draws.size(), at + size_t(options.batch_size));
        if (end - at < 2 && batches > 0) break;  // batch norm needs two samples
        std::vector<Tensor> tiles;
        std::vector<const LabelledFrame*> batch;
        for (size_t k = at; k < end; ++k) {
          tiles.push_back(RandomTile(train_frames[draws[k].first], prep.tile_side, rng));
          batch.push_back(train_set[draws[k].first]);
        }
        const Tensor input = torch::stack(tiles);
        const Tensor logits = net->Head(net->Features(input));
        const Tensor targets = TargetsOf(batch, labels.size(), options.multi_label);
        Tensor loss =
            options.multi_label
                ? torch::binary_cross_entropy_with_logits(logits, targets)
                : torch::nn::functional::cross_entropy(
                      logits, targets,
                      torch::nn::functional::CrossEntropyFuncOptions().weight(class_weight));
        optimizer.zero_grad();
        loss.backward();
        optimizer.step();
        loss_sum += loss.item<double>();
        ++batches;
      }
      r.final_loss = batches ? loss_sum / batches : 0;
      if (options.on_epoch) options.on_epoch(epoch + 1, epochs, r.final_loss);
    }
    for (Tensor& p : frozen_params) p.set_requires_grad(true);  // the file keeps no flags
    SCISEARCH_RETURN_IF_ERROR(impl->CheckInferenceForm());

    if (with_texture) {
      impl->texture.Fit(train_views, TargetsOf(train_set, labels.size(), options.multi_label),
                        int64_t(labels.size()), options.multi_label, class_weight);
      impl->texture_weight = options.texture_weight >= 0 ? std::min(1.0, options.texture_weight)
                                                         : kDefaultTextureShare;
    }

    // Calibrate on the validation images (and choose the texture share) and report on them.
    r.validation_accuracy = r.validation_precision = r.validation_recall = r.validation_ece =
        r.validation_accuracy_cnn = r.validation_accuracy_texture =
            std::numeric_limits<double>::quiet_NaN();
    if (!validation_set.empty()) {
      auto [logits, embeddings] = impl->Infer(validation_frames);
      const Tensor targets = TargetsOf(validation_set, labels.size(), options.multi_label);
      impl->temperature = FitTemperature(logits, targets, options.multi_label);
      if (with_texture) {
        const Tensor texture_logits = impl->texture.Logits(validation_views);
        impl->texture.temperature = FitTemperature(texture_logits, targets, options.multi_label);
        if (options.texture_weight < 0) {
          std::vector<double> shares;
          std::vector<std::vector<double>> loss;
          for (int tenths = 0; tenths <= 10; ++tenths) {
            impl->texture_weight = tenths / 10.0;
            const Tensor nll =
                NllPerImage(impl->Blended(logits, validation_views), targets, options.multi_label)
                    .to(torch::kFloat64)
                    .contiguous();
            shares.push_back(impl->texture_weight);
            loss.emplace_back(nll.data_ptr<double>(), nll.data_ptr<double>() + nll.numel());
          }
          impl->texture_weight = ChooseTextureShare(shares, loss, kDefaultTextureShare);
        }
        if (!options.multi_label) {
          auto accuracy = [&](const Tensor& z) {
            return z.argmax(1).eq(targets).to(torch::kFloat64).mean().item<double>();
          };
          r.validation_accuracy_cnn = accuracy(logits);
          r.validation_accuracy_texture = accuracy(texture_logits);
        }
      }
      const Tensor probs = impl->Probabilities(impl->Blended(logits, validation_views));
      std::vector<std::pair<double, double>> pairs;
      if (options.multi_label) {
        double tp = 0, fp = 0, fn = 0;
        for (int64_t i = 0; i < probs.size(0); ++i) {
          for (int64_t l = 0; l < probs.size(1); ++l) {
            const double p = probs[i][l].item<double>(), y = targets[i][l].item<double>();
            pairs.emplace_back(p, y);
            tp += (p >= 0.5 && y > 0.5), fp += (p >= 0.5 && y < 0.5), fn += (p < 0.5 && y > 0.5);
          }
        }
        r.validation_precision = tp + fp > 0 ? tp / (tp + fp) : 1.0;
        r.validation_recall = tp + fn > 0 ? tp / (tp + fn) : 1.0;
      } else {
        const Tensor best = probs.argmax(1);
        double right = 0;
        for (int64_t i = 0; i < probs.size(0); ++i) {
          const bool ok = best[i].item<int64_t>() == targets[i].item<int64_t>();
          right += ok;
          pairs.emplace_back(probs[i].max().item<double>(), ok ? 1.0 : 0.0);
        }
        r.validation_accuracy = right / double(probs.size(0));
      }
      r.validation_ece = CalibrationError(pairs);
      if (with_texture) {
        // The held-out images have served; the texture head now learns from them too (in a
        // second, as the CNN cannot), keeping the temperature they gave it.
        std::vector<Tensor> all_views = train_views;
        all_views.insert(all_views.end(), validation_views.begin(), validation_views.end());
        std::vector<const LabelledFrame*> all = train_set;
        all.insert(all.end(), validation_set.begin(), validation_set.end());
        const double temperature = impl->texture.temperature;
        impl->texture.Fit(all_views, TargetsOf(all, labels.size(), options.multi_label),
                          int64_t(labels.size()), options.multi_label, class_weight);
        impl->texture.temperature = temperature;
      }
    }
    r.temperature = impl->temperature;
    r.texture_weight = impl->texture_weight;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    impl->report = r;
    impl->id = impl->ComputeId(WeightBytes(net));
    if (report) *report = r;
    return std::unique_ptr<Model>(new Model(std::move(impl)));
  } catch (const std::exception& e) {
    return Status::Internal(std::string("training failed: ") + e.what());
  }
}

Result<std::vector<Analysis>> Model::AnalyseBatch(const std::vector<PreparedImage>& images) const {
  const bool with_texture = impl_->texture.trained();
  for (const PreparedImage& image : images) {
    SCISEARCH_RETURN_IF_ERROR(CheckImage(image, with_texture, "vision: "));
  }
  std::vector<Analysis> out;
  if (images.empty()) return out;
  try {
    std::vector<Tensor> tensors, views;
    for (const PreparedImage& image : images) {
      tensors.push_back(FrameTensor(image.frame, impl_->preprocessing.tile_side));
      if (with_texture) views.push_back(ViewTensor(image.texture));
    }
    auto [logits, embeddings] = impl_->Infer(tensors);
    const Tensor probs = impl_->Probabilities(impl_->Blended(logits, views)).contiguous();
    const Tensor emb = embeddings.contiguous();
    for (int64_t i = 0; i < probs.size(0); ++i) {
      Analysis a;
      const float* p = probs[i].data_ptr<float>();
      for (size_t l = 0; l < impl_->labels.size(); ++l) {
        a.labels.push_back({impl_->labels[l], double(p[l])});
      }
      std::stable_sort(
          a.labels.begin(), a.labels.end(),
          [](const LabelScore& x, const LabelScore& y) { return x.confidence > y.confidence; });
      const float* e = emb[i].data_ptr<float>();
      a.embedding.assign(e, e + emb.size(1));
      out.push_back(std::move(a));
    }
  } catch (const std::exception& e) {
    return Status::Internal(std::string("vision: inference failed: ") + e.what());
  }
  return out;
}

Result<Analysis> Model::Analyse(const PreparedImage& image) const {
  SCISEARCH_ASSIGN_OR_RETURN(std::vector<Analysis> all, AnalyseBatch({image}));
  return std::move(all[0]);
}

Status Model::Save(const std::filesystem::path& path) const {
  std::string bytes(kMagic, sizeof kMagic);
  try {
    const std::string description = impl_->Description();
    const std::string weights = WeightBytes(impl_->net);
    PutU64(bytes, description.size());
    bytes += description;
    PutU64(bytes, weights.size());
    bytes += weights;
  } catch (const std::exception& e) {
    return Status::Internal("vision: cannot serialise the model: " + std::string(e.what()));
  }
  PutU64(bytes, Fnv1a(bytes));
  std::filesystem::path temp = path;
  temp += ".tmp";
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), std::streamsize(bytes.size()));
    out.flush();
    if (!out) return Status::IoError("cannot write the model file " + temp.string());
  }
  std::error_code ec;
  std::filesystem::rename(temp, path, ec);
  if (ec)
    return Status::IoError("cannot move the model into " + path.string() + ": " + ec.message());
  return Status::Ok();
}

Result<std::unique_ptr<Model>> Model::Load(const std::filesystem::path& path, int threads) {
  const std::string where = "model " + path.string() + ": ";
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound(where + "cannot open the file");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() < sizeof kMagic + 24 || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0) {
    return Status::Corrupt(where + "not a scisearch vision model (bad magic)");
  }
  size_t pos = bytes.size() - 8;
  uint64_t stored_hash = 0;
  GetU64(bytes, pos, stored_hash);
  if (Fnv1a(std::string_view(bytes).substr(0, bytes.size() - 8)) != stored_hash) {
    return Status::Corrupt(where + "the file is damaged or truncated (checksum mismatch)");
  }
  pos = sizeof kMagic;
  uint64_t description_size = 0, weights_size = 0;
  if (!GetU64(bytes, pos, description_size) || description_size > bytes.size() - pos) {
    return Status::Corrupt(where + "bad description length");
  }
  const std::string description = bytes.substr(pos, description_size);
  pos += description_size;
  if (!GetU64(bytes, pos, weights_size) || weights_size > bytes.size() - 8 - pos) {
    return Status::Corrupt(where + "bad weights length");
  }
  const std::string weights = bytes.substr(pos, weights_size);
  auto impl = std::make_unique<Model::Impl>();
  try {
    const nlohmann::json j = nlohmann::json::parse(description);
    if (j.value("format", "") != "scisearch-vision-model") {
      return Status::Corrupt(where + "not a scisearch vision model");
    }
    const int version = j.at("version").get<int>();
    if (version > kFormatVersion) {
      return Status::Unsupported(where + "model format " + std::to_string(version) +
                                 " is newer than this scisearch reads (" +
                                 std::to_string(kFormatVersion) + ")");
    }
    impl->labels = j.at("labels").get<std::vector<std::string>>();
    impl->multi_label = j.at("multi_label").get<bool>();
    const auto& p = j.at("preprocessing");
    impl->preprocessing.frame_side = p.at("frame_side").get<int>();
    impl->preprocessing.tile_side = p.at("tile_side").get<int>();
    impl->preprocessing.tiles_per_side = p.at("tiles_per_side").get<int>();
    impl->preprocessing.texture_side = p.value("texture_side", 0);  // version 1: no texture head
    const auto& a = j.at("architecture");
    impl->architecture.channels = a.at("channels").get<std::vector<int>>();
    impl->architecture.hidden = a.at("hidden").get<int>();
    impl->temperature = j.at("temperature").get<double>();
    const auto& t = j.at("training");
    impl->report.train_images = t.value("train_images", 0);
    impl->report.validation_images = t.value("validation_images", 0);
    impl->report.epochs = t.value("epochs", 0);
    impl->report.seconds = NumberOr(t, "seconds");
    impl->report.final_loss = NumberOr(t, "final_loss");
    impl->report.validation_accuracy = NumberOr(t, "validation_accuracy");
    impl->report.validation_precision = NumberOr(t, "validation_precision");
    impl->report.validation_recall = NumberOr(t, "validation_recall");
    impl->report.validation_ece = NumberOr(t, "validation_ece");
    impl->report.temperature = impl->temperature;
    impl->report.validation_accuracy_cnn = NumberOr(t, "validation_accuracy_cnn");
    impl->report.validation_accuracy_texture = NumberOr(t, "validation_accuracy_texture");
    if (impl->labels.empty() || !(impl->temperature > 0) || impl->preprocessing.tile_side < 8 ||
        impl->preprocessing.frame_side < impl->preprocessing.tile_side ||
        impl->preprocessing.tiles_per_side < 1 || impl->preprocessing.texture_side < 0) {
      return Status::Corrupt(where + "the description has impossible values");
    }
    if (impl->preprocessing.texture_side > 0) {
      if (!j.contains("texture") ||
          !impl->texture.FromJson(j.at("texture"), int64_t(impl->labels.size()))) {
        return Status::Corrupt(where + "the texture head is missing or does not fit");
      }
      impl->texture_weight = j.at("texture_weight").get<double>();
      if (!(impl->texture_weight >= 0 && impl->texture_weight <= 1)) {
        return Status::Corrupt(where + "the texture share is outside 0..1");
      }
      impl->report.texture_weight = impl->texture_weight;
    }
  } catch (const std::exception& e) {
    return Status::Corrupt(where + "bad description: " + e.what());
  }
  try {
    torch::set_num_threads(std::max(1, threads));
    CheckArchitecture(impl->architecture);
    impl->net = Net(impl->architecture, int(impl->labels.size()));
    torch::serialize::InputArchive archive;
    std::istringstream weights_in(weights);
    archive.load_from(weights_in);
    impl->net->load(archive);
    impl->net->eval();
  } catch (const std::exception& e) {
    std::string message = e.what();
    message = message.substr(0, message.find('\n'));
    return Status::Corrupt(where + "the weights do not fit the architecture: " + message);
  }
  try {
    const Status form = impl->CheckInferenceForm();
    if (!form.ok()) return Status::Internal(where + form.message());
  } catch (const std::exception& e) {
    return Status::Internal(where + "cannot run the network: " + e.what());
  }
  impl->id = impl->ComputeId(weights);
  return std::unique_ptr<Model>(new Model(std::move(impl)));
}

}  // namespace scisearch::vision
