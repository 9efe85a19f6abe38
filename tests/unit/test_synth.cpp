#include <gtest/gtest.h>

#include <filesystem>

#include "core/errors.h"
#include "core/npy.h"
#include "core/png_io.h"
#include "core/synth/synth_dataset.h"
#include "test_util.h"

using namespace orch;
namespace fs = std::filesystem;

TEST(Synth, WritesThePublicLayoutWithRealPointCounts) {
  test::TempDir d;
  SynthOptions o = SynthOptions().with_kind(DatasetKind::kLungsHeart).with_count(20).with_size(96).with_seed(4);
  auto s = write_synthetic_dataset(o, d / "lh", true);
  EXPECT_EQ(s.train + s.val + s.test, 20);
  EXPECT_EQ(s.train, 14);
  EXPECT_EQ(s.val, 3);
  EXPECT_EQ(s.test, 3);
  for (const char* organ : {"RL", "LL", "H"}) EXPECT_EQ(std::distance(fs::directory_iterator(d / ("lh/landmarks/" + std::string(organ))), fs::directory_iterator{}), 20);
  cv::Mat img = read_png_grey(d / "lh/images/synlh_0003.png");
  EXPECT_EQ(img.rows, 96);
  EXPECT_EQ(img.cols, 96);
  auto rl = read_npy_points(d / "lh/landmarks/RL/synlh_0003.npy");
  auto ll = read_npy_points(d / "lh/landmarks/LL/synlh_0003.npy");
  auto h = read_npy_points(d / "lh/landmarks/H/synlh_0003.npy");
  EXPECT_EQ(rl.size(), 44u);
  EXPECT_EQ(ll.size(), 50u);
  EXPECT_EQ(h.size(), 26u);
  double rl_x = 0, ll_x = 0, rl_min_y = 1e9;
  for (auto& p : rl) { rl_x += p.x / rl.size(); rl_min_y = std::min(rl_min_y, p.y); }
  for (auto& p : ll) ll_x += p.x / ll.size();
  EXPECT_LT(rl_x, ll_x) << "RL lies on the image's left";
  EXPECT_LT(rl[0].y - rl_min_y, 96 * 0.03) << "point 0 is at the apex";
}

TEST(Synth, SameSeedSameBytesWhateverTheThreads) {
  test::TempDir d;
  SynthOptions a = SynthOptions().with_kind(DatasetKind::kLungs).with_count(6).with_size(64).with_seed(9);
  a.threads = 1;
  SynthOptions b = a;
  b.threads = 2;
  SynthOptions c = a;
  c.seed = 10;
  write_synthetic_dataset(a, d / "a", true);
  write_synthetic_dataset(b, d / "b", true);
  write_synthetic_dataset(c, d / "c", true);
  EXPECT_FALSE(fs::exists(d / "a/landmarks/H"));
  for (const char* f : {"images/synl_0000.png", "images/synl_0005.png", "landmarks/RL/synl_0002.npy", "splits/train.txt"})
    EXPECT_EQ(test::read_bytes(d / ("a/" + std::string(f))), test::read_bytes(d / ("b/" + std::string(f)))) << f;
  EXPECT_NE(test::read_bytes(d / "a/images/synl_0000.png"), test::read_bytes(d / "c/images/synl_0000.png"));
}

TEST(Synth, HardCasesFollowTheirFractions) {
  test::TempDir d;
  SynthOptions o = SynthOptions().with_count(40).with_size(64);
  o.render.occluder_fraction = 1.0;
  o.render.low_contrast_fraction = 0.0;
  auto s = write_synthetic_dataset(o, d / "x", true);
  EXPECT_EQ(s.occluded, 40);
  EXPECT_EQ(s.low_contrast, 0);
}

TEST(Synth, RejectsBadOptionsAndExistingOutput) {
  test::TempDir d;
  EXPECT_THROW(write_synthetic_dataset(SynthOptions().with_count(2), d / "a", true), InputError);
  EXPECT_THROW(write_synthetic_dataset(SynthOptions().with_size(8), d / "b", true), InputError);
  fs::create_directories(d / "exists");
  EXPECT_THROW(write_synthetic_dataset(SynthOptions().with_count(3).with_size(32), d / "exists", true), InputError);
}
