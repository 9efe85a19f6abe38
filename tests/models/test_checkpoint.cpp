// HDF5 checkpoints: exact round trip of weights, Adam state and RNG (training continues bit-identically),
// corruption and truncation detected, fallback to the previous checkpoint.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "models/registry.h"
#include "runner/checkpoint.h"
#include "../unit/test_util.h"

using namespace orch;
using namespace orch::models;
using namespace orch::runner;
namespace fs = std::filesystem;

namespace {
struct Rig {
  std::shared_ptr<Network> net;
  std::unique_ptr<torch::optim::Adam> opt;
  GraphTensors graph = GraphTensors::of(OrganLayout::of(DatasetKind::kLungsHeart));
  ModelConfig cfg;
  explicit Rig(uint64_t seed) {
    torch::manual_seed(seed);
    cfg = resolve_config(find_model("hybridgnet"), ModelConfig().with_size(64));
    net = instantiate(find_model("hybridgnet"), cfg);
    std::vector<torch::Tensor> params;
    for (auto& p : net->parameters())
      if (p.requires_grad()) params.push_back(p);
    opt = std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(1e-3).weight_decay(1e-5));
  }
  void step(const torch::Tensor& image, const Targets& t) {
    LossContext ctx{cfg, graph};
    opt->zero_grad();
    find_model("hybridgnet").loss(net->predict(image), t, ctx).backward();  // the VAE draws from torch's RNG
    opt->step();
  }
};

bool same_weights(torch::nn::Module& a, torch::nn::Module& b) {
  auto pa = a.named_parameters(), pb = b.named_parameters();
  for (const auto& p : pa)
    if (!torch::equal(p.value(), pb[p.key()])) return false;
  return true;
}
}  // namespace

TEST(Checkpoint, RoundTripContinuesBitIdentically) {
  test::TempDir d;
  torch::manual_seed(0);
  auto image = torch::rand({2, 1, 64, 64});
  Targets t{torch::zeros({2, 64, 64}, torch::kInt64), torch::rand({2, 2, 64, 64}), torch::rand({2, 120, 2})};
  Rig a(1);
  a.step(image, t);
  a.step(image, t);
  CheckpointState s;
  s.epoch = 2;
  s.batch = 1;
  s.best_epoch = 1;
  s.best_criterion = 0.125;
  s.config_hash = "abc";
  save_checkpoint(d / "c.h5", *a.net, *a.opt, s);
  std::string why;
  EXPECT_TRUE(verify_checkpoint(d / "c.h5", &why)) << why;
  a.step(image, t);  // the uninterrupted run goes on

  Rig b(99);  // other initial weights, no optimiser state, another RNG position
  CheckpointState r = load_checkpoint(d / "c.h5", *b.net, *b.opt);
  EXPECT_EQ(r.epoch, 2);
  EXPECT_EQ(r.batch, 1);
  EXPECT_EQ(r.best_criterion, 0.125);
  EXPECT_EQ(r.config_hash, "abc");
  b.step(image, t);  // the resumed run takes the same step
  EXPECT_TRUE(same_weights(*a.net, *b.net)) << "resumed training diverged";
}

TEST(Checkpoint, CorruptionIsDetectedAndTheSeriesFallsBack) {
  test::TempDir d;
  Rig a(1);
  CheckpointSeries series(d / "ckpt", 3);
  CheckpointState s;
  std::vector<std::string> paths;
  for (int e = 1; e <= 4; ++e) {
    s.epoch = e;
    paths.push_back(series.save(*a.net, *a.opt, s));
  }
  EXPECT_EQ(series.list().size(), 3u);  // the oldest was removed
  EXPECT_FALSE(fs::exists(paths[0]));
  EXPECT_EQ(*series.newest_valid(), paths[3]);
  // Flip bytes in the middle of the newest (inside a parameter's data).
  {
    std::fstream f(paths[3], std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(paths[3]) / 2));
    const char junk[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    f.write(junk, 8);
  }
  std::string why;
  EXPECT_FALSE(verify_checkpoint(paths[3], &why));
  std::vector<std::string> warnings;
  EXPECT_EQ(*series.newest_valid(&warnings), paths[2]);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find(paths[3]), std::string::npos);
  // A truncated file is skipped as well.
  fs::resize_file(paths[2], fs::file_size(paths[2]) / 3);
  EXPECT_EQ(*series.newest_valid(), paths[1]);
  Rig b(2);
  EXPECT_THROW(load_checkpoint(paths[3], *b.net, *b.opt), std::exception);
  EXPECT_TRUE(same_weights(*b.net, *Rig(2).net)) << "a failed load modified the module";
}
