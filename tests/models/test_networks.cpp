// The eleven networks: parameter counts against spec §3.12, output structure, forward and backward at 64 px,
// and a few optimisation steps on a fixed batch lowering each one's loss.
#include <gtest/gtest.h>

#include <set>
#include <torch/torch.h>

#include <map>

#include "core/distance_map.h"
#include "core/mask.h"
#include "core/synth/shape_model.h"
#include "core/synth/xray_render.h"
#include "models/registry.h"

using namespace orch;
using namespace orch::models;

namespace {

struct Expected {
  int64_t lh, l, frozen_lh, frozen_l;
};

// Spec §3.12 (trainable parameters, and the frozen UNet where there is one).
const std::map<std::string, Expected> kCounts = {
    {"hybridgnet", {4831986, 4828450, 0, 0}},
    {"hybridgnet_igsc", {17511090, 4878466, 0, 0}},
    {"unet", {1292749, 1292740, 0, 0}},
    {"unet_joint", {1693107, 1693016, 1292749, 1292740}},
    {"hourglass", {4898762, 4895144, 1292749, 1292740}},
    {"hourglass_concat", {4898844, 4895226, 1292749, 1292740}},
    {"multitask", {5588641, 5585096, 0, 0}},
    {"no_joint", {4882002, 4878466, 0, 0}},
    {"mse_only", {5298956, 5295338, 1292749, 1292740}},
    {"rasterize", {17511090, 4878466, 0, 0}},
    {"ours", {5298956, 5295338, 1292749, 1292740}},
};

Targets make_batch(DatasetKind kind, int size, int batch, torch::Tensor* image) {
  auto layout = OrganLayout::of(kind);
  ShapeModel model(kind);
  std::vector<torch::Tensor> imgs, masks, maps, lms;
  for (int b = 0; b < batch; ++b) {
    Rng rng(100 + b);
    auto lm = model.sample(rng, size);
    cv::Mat img = render_xray(layout, lm, size, rng).image;
    cv::Mat mask = label_mask(layout, lm, size);
    auto d = distance_maps(layout, mask);
    cv::Mat imgf;
    img.convertTo(imgf, CV_32F, 1.0 / 255);
    imgs.push_back(torch::from_blob(imgf.data, {1, size, size}, torch::kFloat32).clone());
    masks.push_back(torch::from_blob(mask.data, {size, size}, torch::kUInt8).to(torch::kInt64));
    std::vector<torch::Tensor> ch;
    for (auto& m : d) ch.push_back(torch::from_blob(m.data, {size, size}, torch::kFloat32).clone());
    maps.push_back(torch::stack(ch));
    std::vector<float> pts;
    for (auto& p : lm) {
      pts.push_back(static_cast<float>(p.x / size));
      pts.push_back(static_cast<float>(p.y / size));
    }
    lms.push_back(torch::tensor(pts).reshape({-1, 2}));
  }
  *image = torch::stack(imgs);
  return {torch::stack(masks), torch::stack(maps), torch::stack(lms)};
}

}  // namespace

TEST(Registry, ElevenNetworksInThePapersOrder) {
  std::vector<std::string> ids;
  for (const auto& e : model_registry()) ids.push_back(e.id);
  ids.resize(std::min<size_t>(ids.size(), 11));  // a test may have added a twelfth after the paper's
  EXPECT_EQ(ids, (std::vector<std::string>{"hybridgnet", "hybridgnet_igsc", "unet", "unet_joint", "hourglass",
                                            "hourglass_concat", "multitask", "no_joint", "mse_only", "rasterize", "ours"}));
  EXPECT_EQ(find_model("ours").info->dependency, "unet");
  EXPECT_EQ(find_model("rasterize").info->dependency, "hybridgnet_igsc");
  EXPECT_THROW(find_model("resnet"), std::exception);
  ModelConfig bad;
  bad.size = 100;
  EXPECT_THROW(create_model("unet", bad), std::exception);
}

// The catalogue (no LibTorch) and the registry (factories, losses) list the same networks, and what the catalogue
// says of each holds for the network the registry builds.
TEST(Catalogue, EveryRegistryEntryHasACatalogueRowAndTheReverse) {
  std::set<std::string> in_registry, in_catalogue;
  for (const auto& e : model_registry()) {
    in_registry.insert(e.id);
    ASSERT_NE(e.info, nullptr) << e.id;
    EXPECT_EQ(e.info->id, e.id);
    EXPECT_EQ(e.info, find_network(e.id)) << "the registry points at the catalogue's own row";
  }
  for (const auto& n : network_catalogue()) in_catalogue.insert(n.id);
  EXPECT_EQ(in_registry, in_catalogue);
  EXPECT_EQ(paired_test_baseline().id, "ours");
  ModelConfig c;
  c.size = 64;
  for (const auto& n : network_catalogue()) {
    if (!in_registry.count(n.id)) continue;
    auto net = create_model(n.id, c);
    if (n.role == DependencyRole::kNone) continue;
    // A network that starts from another's weights has a module for them, named as the catalogue says.
    auto dep = net->dependency_module();
    ASSERT_TRUE(dep) << n.id;
    auto from = create_model(n.dependency, c);
    auto names = from->named_parameters();
    for (const auto& p : dep->named_parameters())
      EXPECT_TRUE(names.contains(n.weight_prefix + p.key())) << n.id << ": " << n.weight_prefix + p.key();
    EXPECT_EQ(n.evaluate_dense, n.id == "unet_joint" || n.id == "rasterize") << n.id;
  }
}

TEST(Registry, ParameterCountsEqualTheSpecAt1024) {
  torch::NoGradGuard g;
  for (auto kind : {DatasetKind::kLungsHeart, DatasetKind::kLungs}) {
    for (const auto& e : model_registry()) {
      auto net = create_model(e.id, ModelConfig().with_kind(kind).with_size(1024));
      auto c = count_parameters(*net);
      const Expected& x = kCounts.at(e.id);
      bool lh = kind == DatasetKind::kLungsHeart;
      EXPECT_EQ(c.trainable, lh ? x.lh : x.l) << e.id << " " << kind_name(kind);
      EXPECT_EQ(c.frozen, lh ? x.frozen_lh : x.frozen_l) << e.id << " " << kind_name(kind);
    }
  }
}

TEST(Networks, ForwardBackwardAndTrainingLowersTheLoss) {
  at::set_num_threads(2);
  for (auto kind : {DatasetKind::kLungsHeart, DatasetKind::kLungs}) {
    torch::Tensor image;
    Targets t = make_batch(kind, 64, 2, &image);
    auto layout = OrganLayout::of(kind);
    GraphTensors graph = GraphTensors::of(layout);
    for (const auto& e : model_registry()) {
      SCOPED_TRACE(e.id + " " + kind_name(kind));
      torch::manual_seed(7);
      ModelConfig cfg = resolve_config(e, ModelConfig().with_kind(kind).with_size(64));
      auto net = instantiate(e, cfg);
      LossContext ctx{cfg, graph};
      std::vector<torch::Tensor> params;
      for (auto& p : net->parameters())
        if (p.requires_grad()) params.push_back(p);
      torch::optim::Adam opt(params, torch::optim::AdamOptions(1e-3));
      double first = 0, last = 0;
      for (int step = 0; step < 8; ++step) {
        opt.zero_grad();
        Prediction p = net->predict(image);
        if (step == 0) {
          ASSERT_EQ(p.points.size(), p.coarse.size());
          for (size_t k = 0; k < p.points.size(); ++k)
            EXPECT_EQ(p.points[k].size(1), p.coarse[k] ? 60 - (kind == DatasetKind::kLungs ? 13 : 0) : layout.total_points());
          if (e.info->evaluate_dense) {
            ASSERT_TRUE(p.segmentation.defined());
            EXPECT_EQ(p.segmentation.sizes(), (std::vector<int64_t>{2, layout.num_classes(), 64, 64}));
          }
        }
        torch::Tensor loss = e.loss(p, t, ctx);
        ASSERT_TRUE(std::isfinite(loss.item<double>()));
        loss.backward();
        if (step == 0) {
          double gsum = 0;
          for (auto& q : params)
            if (q.grad().defined()) gsum += q.grad().abs().sum().item<double>();
          EXPECT_GT(gsum, 0);
        }
        opt.step();
        (step == 0 ? first : last) = loss.item<double>();
      }
      EXPECT_LT(last, first);
      net->eval();
      torch::NoGradGuard g;
      Prediction p = net->predict(image);
      double crit = e.criterion(p, t, ctx).item<double>();
      EXPECT_TRUE(std::isfinite(crit));
    }
  }
}

TEST(Networks, FrozenUNetGetsNoGradientAndEvalIsDeterministic) {
  torch::Tensor image;
  Targets t = make_batch(DatasetKind::kLungsHeart, 64, 2, &image);
  auto net = create_model("ours", ModelConfig().with_size(64));
  auto dep = net->dependency_module();
  ASSERT_TRUE(dep);
  for (auto& p : dep->parameters()) EXPECT_FALSE(p.requires_grad());
  net->eval();
  torch::NoGradGuard g;
  auto a = net->predict(image).points[0], b = net->predict(image).points[0];
  EXPECT_TRUE(torch::equal(a, b));  // z = mu in evaluation
}
