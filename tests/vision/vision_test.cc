// The vision module: preprocessing invariants, a tiny training run that must learn a
// separable toy set, the model file (round trip, refusal of damaged files), the catalog pass
// (image tags, embeddings, similar images) and the stage-2 training set from validated tags.
#include "vision/vision.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "catalog/catalog.h"
#include "common/hash.h"
#include "ingest/ingest.h"
#include "test_util.h"
#include "thumbnail/thumbnail.h"
#include "vision/blend.h"
#include "vision/texture.h"

namespace scisearch::vision {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

// A toy micrograph of `side` x `side` uint8 pixels: bright round particles on a dark
// ground ("dots") or parallel bands at a random angle and spacing ("stripes"), with noise.
formats::NdArray ToyImage(bool dots, int side, std::mt19937_64& rng) {
  formats::NdArray a;
  a.dtype = formats::DType::kUInt8;
  a.shape = {side, side};
  a.bytes.assign(size_t(side) * size_t(side), 0);
  std::uniform_real_distribution<double> u(0, 1);
  std::normal_distribution<double> noise(0, 12);
  std::vector<std::pair<double, double>> centres;
  for (int k = 0; k < side * side / 400; ++k) centres.emplace_back(u(rng) * side, u(rng) * side);
  const double angle = u(rng) * M_PI, period = 8 + 8 * u(rng), radius = 3 + 2 * u(rng);
  for (int y = 0; y < side; ++y) {
    for (int x = 0; x < side; ++x) {
      double v = 40;
      if (dots) {
        for (const auto& [cy, cx] : centres) {
          if (std::hypot(y - cy, x - cx) < radius) v = 210;
        }
      } else {
        const double t = x * std::cos(angle) + y * std::sin(angle);
        v = 125 + 85 * std::sin(2 * M_PI * t / period);
      }
      a.bytes[size_t(y * side + x)] = uint8_t(std::clamp(v + noise(rng), 0.0, 255.0));
    }
  }
  return a;
}

// Writes `array` as a PNG file (through the thumbnail renderer, which keeps a frame of
// more than half its maximum side as it is).
void WritePng(const formats::NdArray& array, const fs::path& path) {
  auto png = thumbnail::RenderThumbnail(array, formats::Mode::kImage, 256);
  ASSERT_TRUE(png.ok()) << png.status().message();
  testing::WriteFileBytes(path, png->bytes);
}

// Options small enough for a test run of a few seconds.
TrainOptions ToyOptions() {
  TrainOptions o;
  o.preprocessing = {64, 32, 2};
  o.architecture.channels = {8, 16, 16};
  o.architecture.hidden = 16;
  o.epochs = 12;
  o.min_steps = 0;
  o.batch_size = 16;
  o.learning_rate = 3e-3;
  o.threads = 2;
  return o;
}

std::vector<LabelledFrame> ToySet(int per_class, uint64_t seed, const Preprocessing& prep) {
  std::mt19937_64 rng(seed);
  std::vector<LabelledFrame> out;
  for (int i = 0; i < 2 * per_class; ++i) {
    const bool dots = i % 2 == 0;
    auto image = Model::PrepareImage(ToyImage(dots, 96, rng), formats::Mode::kImage, prep);
    EXPECT_TRUE(image.ok());
    out.push_back({*image, {dots ? 0 : 1}, "", "toy" + std::to_string(i)});
  }
  return out;
}

double Accuracy(const Model& model, const std::vector<LabelledFrame>& set) {
  std::vector<PreparedImage> images;
  for (const auto& e : set) images.push_back(e.image);
  auto analyses = model.AnalyseBatch(images);
  EXPECT_TRUE(analyses.ok());
  if (!analyses.ok()) return 0;
  int right = 0;
  for (size_t i = 0; i < set.size(); ++i) {
    right += (*analyses)[i].labels[0].label == model.labels()[size_t(set[i].labels[0])];
  }
  return double(right) / double(set.size());
}

TEST(PreprocessingTest, FramesAreBoundedStretchedAndInvariantToGainAndOffset) {
  std::mt19937_64 rng(3);
  formats::NdArray image = ToyImage(true, 300, rng);
  auto frame = thumbnail::PrepareGreyFrame(image, formats::Mode::kImage, 128);
  ASSERT_TRUE(frame.ok());
  EXPECT_EQ(frame->height, 128);
  EXPECT_EQ(frame->width, 128);
  ASSERT_EQ(frame->pixels.size(), 128u * 128u);
  float lo = 1, hi = 0;
  for (float v : frame->pixels) lo = std::min(lo, v), hi = std::max(hi, v);
  EXPECT_EQ(lo, 0.0f);
  EXPECT_EQ(hi, 1.0f);

  // The same picture as float32 counts with another gain and offset: the same frame.
  formats::NdArray scaled;
  scaled.dtype = formats::DType::kFloat32;
  scaled.shape = image.shape;
  scaled.bytes.resize(image.bytes.size() * 4);
  for (size_t i = 0; i < image.bytes.size(); ++i) {
    const float v = 7.5f * image.bytes[i] - 1000.0f;
    std::memcpy(&scaled.bytes[i * 4], &v, 4);
  }
  auto same = thumbnail::PrepareGreyFrame(scaled, formats::Mode::kImage, 128);
  ASSERT_TRUE(same.ok());
  for (size_t i = 0; i < frame->pixels.size(); ++i) {
    ASSERT_NEAR(frame->pixels[i], same->pixels[i], 1e-5) << i;
  }

  // Small frames keep their size; a flat frame is mid grey; NaN pixels are mid grey.
  formats::NdArray flat;
  flat.dtype = formats::DType::kFloat32;
  flat.shape = {1, 20, 30};
  flat.bytes.assign(20 * 30 * 4, 0);
  const float nan = std::nanf("");
  std::memcpy(&flat.bytes[0], &nan, 4);
  auto small = thumbnail::PrepareGreyFrame(flat, formats::Mode::kImage, 128);
  ASSERT_TRUE(small.ok());
  EXPECT_EQ(small->height, 20);
  EXPECT_EQ(small->width, 30);
  for (float v : small->pixels) ASSERT_EQ(v, 0.5f);

  // A spectrum is no frame; a byte count that does not match the shape is refused.
  formats::NdArray spectrum;
  spectrum.dtype = formats::DType::kUInt8;
  spectrum.shape = {1, 64};
  spectrum.bytes.assign(64, 1);
  EXPECT_EQ(thumbnail::PrepareGreyFrame(spectrum, formats::Mode::kImage, 128).status().code(),
            ErrorCode::kInvalidArgument);
  image.bytes.pop_back();
  EXPECT_EQ(thumbnail::PrepareGreyFrame(image, formats::Mode::kImage, 128).status().code(),
            ErrorCode::kInvalidArgument);
}

TEST(TrainTest, LearnsASeparableToySetAndSurvivesASaveLoadRoundTrip) {
  TrainOptions options = ToyOptions();
  const std::vector<LabelledFrame> train = ToySet(40, 11, options.preprocessing);
  const std::vector<LabelledFrame> test = ToySet(20, 12, options.preprocessing);
  TrainReport report;
  auto model = Model::Train({"dots", "stripes"}, train, options, nullptr, &report);
  ASSERT_TRUE(model.ok()) << model.status().message();
  EXPECT_EQ(report.train_images + report.validation_images, 80);
  EXPECT_GT(report.validation_images, 0);
  EXPECT_GE(Accuracy(**model, test), 0.9);

  TempDir dir;
  const fs::path file = dir.path() / "toy.model";
  ASSERT_TRUE((*model)->Save(file).ok());
  auto loaded = Model::Load(file, 2);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_EQ((*loaded)->labels(), (*model)->labels());
  EXPECT_EQ((*loaded)->id(), (*model)->id());
  EXPECT_EQ((*loaded)->preprocessing().tile_side, 32);
  EXPECT_EQ((*loaded)->report().train_images, report.train_images);
  EXPECT_TRUE((*loaded)->has_texture_head());
  EXPECT_EQ((*loaded)->texture_weight(), (*model)->texture_weight());
  auto a = (*model)->Analyse(test[0].image);
  auto b = (*loaded)->Analyse(test[0].image);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->labels.size(), b->labels.size());
  for (size_t i = 0; i < a->labels.size(); ++i) {
    EXPECT_EQ(a->labels[i].label, b->labels[i].label);
    EXPECT_NEAR(a->labels[i].confidence, b->labels[i].confidence, 1e-6);
  }
  ASSERT_EQ(a->embedding.size(), 16u);
  double norm = 0;
  for (size_t i = 0; i < a->embedding.size(); ++i) {
    EXPECT_NEAR(a->embedding[i], b->embedding[i], 1e-6);
    norm += double(a->embedding[i]) * a->embedding[i];
  }
  EXPECT_NEAR(norm, 1.0, 1e-4);

  // Stage 2 on top: frozen features, a new head, new labels.
  TrainOptions head = options;
  head.transfer = Transfer::kFreezeFeatures;
  head.epochs = 6;
  auto transferred = Model::Train({"particles", "bands"}, train, head, loaded->get(), nullptr);
  ASSERT_TRUE(transferred.ok()) << transferred.status().message();
  EXPECT_GE(Accuracy(**transferred, test), 0.9);
  // The frozen layers did not move: the embedding (features) is the stage-1 model's.
  auto c = (*transferred)->Analyse(test[0].image);
  ASSERT_TRUE(c.ok());
  for (size_t i = 0; i < c->embedding.size(); ++i)
    EXPECT_NEAR(c->embedding[i], a->embedding[i], 1e-5);
}

TEST(TextureTest, ViewsHaveTheirStatisticsAndIgnoreGainOffsetAndQuarterTurns) {
  std::mt19937_64 rng(4);
  auto frame = thumbnail::PrepareGreyFrame(ToyImage(false, 96, rng), formats::Mode::kImage, 96);
  ASSERT_TRUE(frame.ok());
  const auto views = TextureViews(*frame);
  ASSERT_EQ(views.size(), 6u);  // the whole frame, four quadrants, the centre
  for (const auto& v : views) {
    ASSERT_EQ(v.size(), size_t(kTextureStatisticsPerView));
    for (float x : v) ASSERT_TRUE(std::isfinite(x));
  }
  // The first 12 statistics are a histogram of fractions of the pixels.
  double fractions = 0;
  for (int i = 0; i < 12; ++i) fractions += views[0][size_t(i)];
  EXPECT_NEAR(fractions, 1.0, 1e-5);

  // Standardised first: another gain and offset give the same statistics.
  thumbnail::GreyFrame dimmer = *frame;
  for (float& p : dimmer.pixels) p = 0.3f * p + 0.2f;
  const auto dim_views = TextureViews(dimmer);
  // A quarter turn: micrographs have no up, and the statistics have no direction.
  thumbnail::GreyFrame turned = *frame;
  for (int y = 0; y < 96; ++y) {
    for (int x = 0; x < 96; ++x)
      turned.pixels[size_t(x * 96 + (95 - y))] = frame->pixels[size_t(y * 96 + x)];
  }
  const auto turned_views = TextureViews(turned);
  for (size_t i = 0; i < size_t(kTextureStatisticsPerView); ++i) {
    EXPECT_NEAR(dim_views[0][i], views[0][i], 2e-3 * (1 + std::fabs(views[0][i]))) << i;
    EXPECT_NEAR(turned_views[0][i], views[0][i], 2e-3 * (1 + std::fabs(views[0][i]))) << i;
  }
  // Each quadrant's statistics are its own: the turn carries the top left quadrant (view 1)
  // to the top right (2), the top right to the bottom right (4), and so on round. (The 2 x 2
  // means of the pyramid add their pixels in another order once turned, which may tip a tie
  // between neighbours and move a pixel of a quadrant's 400 to another binary pattern.)
  const std::array<std::pair<size_t, size_t>, 4> turned_quadrant = {
      {{1, 2}, {2, 4}, {4, 3}, {3, 1}}};
  double farthest_other = 0;  // the most a statistic differs from that of another quadrant
  for (const auto& [from, to] : turned_quadrant) {
    for (size_t i = 0; i < size_t(kTextureStatisticsPerView); ++i) {
      EXPECT_NEAR(turned_views[to][i], views[from][i], 6e-3 * (1 + std::fabs(views[from][i])))
          << "view " << from << ", statistic " << i;
      farthest_other = std::max(farthest_other, double(std::fabs(views[to][i] - views[from][i])));
    }
  }
  EXPECT_GT(farthest_other, 0.1);  // the quadrants differ: the test can tell them apart

  // Bands are oriented, dots are not: more of the bands' pixels are highly coherent (the
  // last coherence bin at the finest scale: statistics 14..19 are its histogram).
  auto dots = thumbnail::PrepareGreyFrame(ToyImage(true, 96, rng), formats::Mode::kImage, 96);
  ASSERT_TRUE(dots.ok());
  EXPECT_GT(views[0][19], TextureViews(*dots)[0][19] + 0.1);

  // Small frames are one view; frames without pixels none.
  thumbnail::GreyFrame small = *frame;
  small.height = small.width = 40;
  small.pixels.resize(40 * 40);
  EXPECT_EQ(TextureViews(small).size(), 1u);
  small.pixels.pop_back();
  EXPECT_TRUE(TextureViews(small).empty());
  EXPECT_TRUE(TextureViews(thumbnail::GreyFrame{}).empty());
}

TEST(TrainTest, TheTextureHeadAloneLearnsAndItsStatisticsAreRequired) {
  TrainOptions options = ToyOptions();
  options.epochs = 1;  // the CNN is not what is tested here
  options.texture_weight = 1;
  const std::vector<LabelledFrame> train = ToySet(30, 21, options.preprocessing);
  const std::vector<LabelledFrame> test = ToySet(20, 22, options.preprocessing);
  TrainReport report;
  auto model = Model::Train({"dots", "stripes"}, train, options, nullptr, &report);
  ASSERT_TRUE(model.ok()) << model.status().message();
  EXPECT_EQ(report.texture_weight, 1.0);
  EXPECT_GE(report.validation_accuracy_texture, 0.9);
  EXPECT_GE(Accuracy(**model, test), 0.95);

  // An image prepared for a model without a texture head cannot be read by one with it.
  Preprocessing plain = options.preprocessing;
  plain.texture_side = 0;
  std::mt19937_64 rng(1);
  auto image = Model::PrepareImage(ToyImage(true, 96, rng), formats::Mode::kImage, plain);
  ASSERT_TRUE(image.ok());
  EXPECT_TRUE(image->texture.empty());
  auto refused = (*model)->Analyse(*image);
  EXPECT_EQ(refused.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("texture"), std::string::npos);

  // A model without a texture head (as every model file of version 1) reads it.
  options.preprocessing = plain;
  options.texture_weight = -1;
  std::vector<LabelledFrame> plain_set = ToySet(4, 23, plain);
  auto cnn_only = Model::Train({"dots", "stripes"}, plain_set, options, nullptr, nullptr);
  ASSERT_TRUE(cnn_only.ok()) << cnn_only.status().message();
  EXPECT_FALSE((*cnn_only)->has_texture_head());
  EXPECT_EQ((*cnn_only)->texture_weight(), 0.0);
  EXPECT_TRUE((*cnn_only)->Analyse(*image).ok());
}

TEST(BlendTest, TheTextureShareMovesOnlyWhenTheHeldOutImagesShowItBetter) {
  const std::vector<double> shares = {0.0, 0.5, 1.0};
  // Share 0 is better on every image, by 0.3 give or take 0.1: it is chosen.
  std::vector<std::vector<double>> loss(3, std::vector<double>(20, 1.0));
  for (size_t i = 0; i < 20; ++i) loss[0][i] = 0.7 + (i % 2 ? 0.1 : -0.1);
  EXPECT_EQ(ChooseTextureShare(shares, loss, 0.5), 0.0);
  // Share 1 is better on average, by 0.05, but image by image it wins or loses 0.5: noise.
  loss[0].assign(20, 1.0);
  for (size_t i = 0; i < 20; ++i) loss[2][i] = 1.0 + (i % 2 ? 0.45 : -0.55);
  EXPECT_EQ(ChooseTextureShare(shares, loss, 0.5), 0.5);
  // The same gain over 500 images: twice its standard error is 2 x 0.5 / sqrt(500) = 0.045,
  // below 0.05, so the gain shows.
  for (auto& row : loss) row.resize(500, 1.0);
  for (size_t i = 0; i < 500; ++i) loss[2][i] = 1.0 + (i % 2 ? 0.45 : -0.55);
  EXPECT_EQ(ChooseTextureShare(shares, loss, 0.5), 1.0);
  // Too few images, rows of unequal length, or a fallback not on the grid: the fallback.
  EXPECT_EQ(ChooseTextureShare(shares, {{0.1}, {1.0}, {1.0}}, 0.5), 0.5);
  EXPECT_EQ(ChooseTextureShare(shares, {{0.1, 0.1}, {1.0, 1.0}, {1.0}}, 0.5), 0.5);
  EXPECT_EQ(ChooseTextureShare(shares, loss, 0.7), 0.7);
}

TEST(TrainTest, RefusesBadInput) {
  TrainOptions options = ToyOptions();
  std::vector<LabelledFrame> set = ToySet(2, 1, options.preprocessing);
  EXPECT_EQ(Model::Train({"a", "b"}, {}, options, nullptr, nullptr).status().code(),
            ErrorCode::kInvalidArgument);
  set[0].labels = {5};
  auto bad = Model::Train({"a", "b"}, set, options, nullptr, nullptr);
  EXPECT_EQ(bad.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("toy0"), std::string::npos) << bad.status().message();
  set[0].labels = {0};
  options.transfer = Transfer::kFreezeFeatures;
  EXPECT_EQ(Model::Train({"a", "b"}, set, options, nullptr, nullptr).status().code(),
            ErrorCode::kInvalidArgument);
}

TEST(ModelFileTest, RefusesDamagedTruncatedAndForeignFiles) {
  TrainOptions options = ToyOptions();
  options.epochs = 1;
  auto model = Model::Train({"dots", "stripes"}, ToySet(4, 2, options.preprocessing), options,
                            nullptr, nullptr);
  ASSERT_TRUE(model.ok());
  TempDir dir;
  const fs::path good = dir.path() / "good.model";
  ASSERT_TRUE((*model)->Save(good).ok());
  const std::vector<uint8_t> bytes = testing::ReadFileBytes(good);

  std::vector<uint8_t> flipped = bytes;
  flipped[flipped.size() / 2] ^= 0x40;
  testing::WriteFileBytes(dir.path() / "flipped.model", flipped);
  auto r = Model::Load(dir.path() / "flipped.model");
  EXPECT_EQ(r.status().code(), ErrorCode::kCorrupt);
  EXPECT_NE(r.status().message().find("flipped.model"), std::string::npos);
  EXPECT_NE(r.status().message().find("checksum"), std::string::npos) << r.status().message();

  testing::WriteFileBytes(dir.path() / "short.model",
                          std::vector<uint8_t>(bytes.begin(), bytes.begin() + bytes.size() / 3));
  EXPECT_EQ(Model::Load(dir.path() / "short.model").status().code(), ErrorCode::kCorrupt);
  const std::string foreign = "PK\x03\x04 not a model at all, really";
  testing::WriteFileBytes(dir.path() / "foreign.model",
                          std::vector<uint8_t>(foreign.begin(), foreign.end()));
  EXPECT_EQ(Model::Load(dir.path() / "foreign.model").status().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(Model::Load(dir.path() / "absent.model").status().code(), ErrorCode::kNotFound);
}

// A model file as version 1 wrote it: the description without the texture side, version 1.
TEST(ModelFileTest, ReadsVersionOneFilesAsTheCnnAlone) {
  TrainOptions options = ToyOptions();
  options.epochs = 1;
  options.preprocessing.texture_side = 0;
  const std::vector<LabelledFrame> set = ToySet(4, 3, options.preprocessing);
  auto model = Model::Train({"dots", "stripes"}, set, options, nullptr, nullptr);
  ASSERT_TRUE(model.ok()) << model.status().message();
  TempDir dir;
  ASSERT_TRUE((*model)->Save(dir.path() / "v2.model").ok());
  const std::vector<uint8_t> bytes = testing::ReadFileBytes(dir.path() / "v2.model");
  const std::string file(bytes.begin(), bytes.end());
  auto u64 = [&](size_t at) {
    uint64_t v = 0;
    for (int b = 0; b < 8; ++b) v |= uint64_t(uint8_t(file[at + size_t(b)])) << (8 * b);
    return v;
  };
  auto put = [](std::string& out, uint64_t v) {
    for (int b = 0; b < 8; ++b) out.push_back(char(uint8_t(v >> (8 * b))));
  };
  const size_t description_size = size_t(u64(8));
  std::string description = file.substr(16, description_size);
  const std::string rest =
      file.substr(16 + description_size, file.size() - 8 - 16 - description_size);
  for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
           {"\"version\":2", "\"version\":1"}, {",\"texture_side\":0", ""}}) {
    const size_t at = description.find(from);
    ASSERT_NE(at, std::string::npos) << from << " in " << description;
    description.replace(at, from.size(), to);
  }
  std::string v1 = file.substr(0, 8);
  put(v1, description.size());
  v1 += description + rest;
  put(v1, Fnv1a(v1));
  testing::WriteFileBytes(dir.path() / "v1.model", std::vector<uint8_t>(v1.begin(), v1.end()));

  auto loaded = Model::Load(dir.path() / "v1.model");
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_FALSE((*loaded)->has_texture_head());
  EXPECT_EQ((*loaded)->preprocessing().texture_side, 0);
  auto a = (*model)->Analyse(set[0].image);
  auto b = (*loaded)->Analyse(set[0].image);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NEAR(a->labels[0].confidence, b->labels[0].confidence, 1e-6);
}

TEST(CatalogPassTest, TagsEmbedsFindsSimilarAndLearnsFromValidatedTags) {
  TempDir dir;
  const fs::path classes = dir.path() / "classes";
  const fs::path tree = dir.path() / "tree";
  std::mt19937_64 rng(5);
  for (int i = 0; i < 24; ++i) {
    const bool dots = i % 2 == 0;
    const std::string name = std::string(dots ? "dots" : "stripes") + std::to_string(i) + ".png";
    fs::create_directories(classes / (dots ? "dots" : "stripes"));
    fs::create_directories(tree / "session");
    const formats::NdArray image = ToyImage(dots, 160, rng);
    WritePng(image, classes / (dots ? "dots" : "stripes") / name);
    WritePng(image, tree / "session" / name);
  }
  const std::string broken = "\x89PNG\r\n\x1a\n broken";
  testing::WriteFileBytes(classes / "dots" / "broken.png",
                          std::vector<uint8_t>(broken.begin(), broken.end()));
  // An image too small for any model (an icon): it fails alone, and the rest goes on. A 4 x 4
  // grey PNG, written byte by byte (WritePng would enlarge it as a thumbnail).
  const std::vector<uint8_t> tiny = {
      0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48,
      0x44, 0x52, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x04, 0x08, 0x00, 0x00, 0x00,
      0x00, 0x8c, 0x9a, 0xc1, 0xa2, 0x00, 0x00, 0x00, 0x1a, 0x49, 0x44, 0x41, 0x54, 0x78,
      0x9c, 0x63, 0x60, 0xb0, 0xa9, 0xd8, 0xc2, 0x20, 0x12, 0xd0, 0x73, 0x82, 0x41, 0x23,
      0x65, 0xc1, 0x1d, 0x10, 0xef, 0x03, 0x00, 0x3e, 0x94, 0x07, 0x81, 0x87, 0x5a, 0xf1,
      0x08, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82};
  testing::WriteFileBytes(tree / "session" / "tiny.png", tiny);

  TrainOptions options = ToyOptions();
  auto set = ReadFolderSet(classes, options.preprocessing, {{"dots/dots0.png", "g1"}}, 2);
  ASSERT_TRUE(set.ok()) << set.status().message();
  EXPECT_EQ(set->labels, (std::vector<std::string>{"dots", "stripes"}));
  EXPECT_EQ(set->examples.size(), 24u);
  ASSERT_EQ(set->problems.size(), 1u);
  EXPECT_NE(set->problems[0].find("broken.png"), std::string::npos) << set->problems[0];
  EXPECT_EQ(set->examples[0].group, "g1");

  auto model = Model::Train(set->labels, set->examples, options, nullptr, nullptr);
  ASSERT_TRUE(model.ok());

  // Files analysed by parallel workers a batch at a time: each result in its path's place and
  // as the file analysed alone gives it, errors named in place, every path passed on once.
  const std::vector<std::string> paths = {
      (classes / "dots" / "dots0.png").string(), (classes / "dots" / "broken.png").string(),
      (classes / "stripes" / "stripes1.png").string(), (tree / "session" / "tiny.png").string(),
      (classes / "stripes" / "stripes3.png").string()};
  for (int batch : {1, 2}) {
    std::vector<FileAnalysis> results(paths.size());
    std::vector<int> passed(paths.size(), 0);
    const Status analysed = AnalyseFiles(
        paths, **model, 2, batch, [&](size_t first, std::vector<FileAnalysis>& batch_results) {
          EXPECT_LE(batch_results.size(), size_t(batch));
          for (size_t i = 0; i < batch_results.size(); ++i) {
            ++passed[first + i];
            results[first + i] = std::move(batch_results[i]);
          }
          return Status::Ok();
        });
    ASSERT_TRUE(analysed.ok()) << analysed.message();
    EXPECT_EQ(passed, std::vector<int>(paths.size(), 1));
    EXPECT_NE(results[1].status.message().find("broken.png"), std::string::npos);
    EXPECT_NE(results[3].status.message().find("tiny.png"), std::string::npos);
    for (size_t i : {0u, 2u, 4u}) {
      ASSERT_TRUE(results[i].status.ok()) << results[i].status.message();
      auto frame = ReadFileFrame(paths[i], (*model)->preprocessing());
      ASSERT_TRUE(frame.ok());
      auto alone = (*model)->Analyse(frame->image);
      ASSERT_TRUE(alone.ok());
      ASSERT_EQ(results[i].analysis.labels.size(), alone->labels.size());
      for (size_t l = 0; l < alone->labels.size(); ++l) {
        EXPECT_EQ(results[i].analysis.labels[l].label, alone->labels[l].label) << paths[i];
        EXPECT_NEAR(results[i].analysis.labels[l].confidence, alone->labels[l].confidence, 1e-6);
      }
      ASSERT_EQ(results[i].analysis.embedding.size(), alone->embedding.size());
      for (size_t e = 0; e < alone->embedding.size(); ++e) {
        EXPECT_NEAR(results[i].analysis.embedding[e], alone->embedding[e], 1e-6);
      }
    }
    EXPECT_NE(results[0].analysis.embedding, results[2].analysis.embedding);
  }
  // An error of on_batch stops the work and comes back: no later batch is passed on.
  int calls = 0;
  const Status stopped = AnalyseFiles(paths, **model, 2, 1, [&](size_t, auto&) {
    ++calls;
    return Status::Internal("the consumer gave up");
  });
  EXPECT_EQ(stopped.message(), "the consumer gave up");
  EXPECT_EQ(calls, 1);

  auto catalog = catalog::Catalog::Open(dir.path() / "data");
  ASSERT_TRUE(catalog.ok());
  ingest::IngestOptions ingest_options;
  ingest_options.thumbnails = false;
  ASSERT_TRUE(ingest::Ingest(**catalog, fs::canonical(tree), ingest_options).ok());

  TagPassOptions pass;
  auto report = TagCatalog(**catalog, **model, pass);
  ASSERT_TRUE(report.ok()) << report.status().message();
  EXPECT_EQ(report->analysed, 24);
  EXPECT_EQ(report->failed, 1);
  ASSERT_EQ(report->problems.size(), 1u);
  EXPECT_NE(report->problems[0].find("tiny.png: its frame is 4 x 4 px, too small"),
            std::string::npos)
      << report->problems[0];
  EXPECT_GE(report->tags_written, 20);
  // A second pass finds nothing new for the same model.
  auto again = TagCatalog(**catalog, **model, pass);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->analysed, 0);

  auto rows = (*catalog)->ListDatasets("", "ok");
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 25u);  // the tiny image is a dataset too, without image tags
  int right = 0;
  for (const auto& row : *rows) {
    auto d = (*catalog)->GetDatasetById(row.id);
    ASSERT_TRUE(d.ok());
    const bool dots = fs::path(d->path).filename().string().rfind("dots", 0) == 0;
    for (const auto& tag : d->tags) {
      if (tag.source == "image") right += tag.value == (dots ? "dots" : "stripes");
    }
  }
  EXPECT_GE(right, 21);

  // The most similar image of a dots image is mostly dots.
  const auto& first = (*rows)[0];  // "dots0.png" sorts first
  auto similar = FindSimilar(**catalog, first.id, 5);
  ASSERT_TRUE(similar.ok());
  ASSERT_EQ(similar->size(), 5u);
  EXPECT_GE((*similar)[0].similarity, (*similar)[4].similarity);
  int dots_near = 0;
  for (const auto& s : *similar) {
    auto d = (*catalog)->GetDatasetById(s.dataset_id);
    dots_near += fs::path(d->path).filename().string().rfind("dots", 0) == 0;
  }
  EXPECT_GE(dots_near, 4);

  // Experts validate: accepted tags become stage-2 labels once enough datasets carry them.
  for (const auto& row : *rows) {
    const bool dots = fs::path(row.path).filename().string().rfind("dots", 0) == 0;
    ASSERT_TRUE((*catalog)->AddExpertTag(row.id, dots ? "particles" : "lamellae", "ada").ok());
  }
  auto validated = ReadValidatedTagSet(**catalog, options.preprocessing, 3, 2);
  ASSERT_TRUE(validated.ok()) << validated.status().message();
  EXPECT_EQ(validated->labels, (std::vector<std::string>{"lamellae", "particles"}));
  EXPECT_EQ(validated->examples.size(), 24u);  // the tiny image is named in the problems
  ASSERT_EQ(validated->problems.size(), 1u);
  EXPECT_NE(validated->problems[0].find("tiny.png"), std::string::npos);
  TrainOptions head = options;
  head.multi_label = true;
  head.transfer = Transfer::kFreezeFeatures;
  auto stage2 = Model::Train(validated->labels, validated->examples, head, model->get(), nullptr);
  ASSERT_TRUE(stage2.ok()) << stage2.status().message();
  EXPECT_TRUE((*stage2)->multi_label());
  EXPECT_EQ(ReadValidatedTagSet(**catalog, options.preprocessing, 100, 2).status().code(),
            ErrorCode::kNotFound);
}

}  // namespace
}  // namespace scisearch::vision
