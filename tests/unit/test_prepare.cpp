#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "core/errors.h"
#include "core/npy.h"
#include "core/png_io.h"
#include "core/mask.h"
#include "core/synth/shape_model.h"
#include "core/synth/synth_dataset.h"
#include "storage/dataset_file.h"
#include "storage/prepare.h"
#include "test_util.h"

using namespace orch;
namespace fs = std::filesystem;

namespace {
struct Fixture {
  test::TempDir dir;
  std::string src;
  Fixture(DatasetKind kind = DatasetKind::kLungsHeart, int count = 10, int size = 64) {
    src = dir / "src";
    write_synthetic_dataset(SynthOptions().with_kind(kind).with_count(count).with_size(size).with_seed(2), src, true);
  }
  PrepareOptions options(const std::string& out, int size = 64) const {
    PrepareOptions o;
    o.out = dir / out;
    o.size = size;
    o.landmarks = src + "/landmarks";
    o.images = {src + "/images"};
    o.splits = {src + "/splits"};
    o.quiet = true;
    return o;
  }
};

std::string expect_input_error(const PrepareOptions& o) {
  try {
    prepare_dataset(o);
  } catch (const InputError& e) {
    EXPECT_FALSE(fs::exists(o.out)) << "partial output left behind";
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}
}  // namespace

TEST(Prepare, RoundTripThroughTheReader) {
  Fixture f;
  auto sum = prepare_dataset(f.options("a.h5"));
  EXPECT_EQ(sum.count, 10);
  EXPECT_EQ(sum.kind, DatasetKind::kLungsHeart);
  DatasetReader r(f.dir / "a.h5");
  EXPECT_EQ(r.info().count, 10);
  EXPECT_EQ(r.info().ids.front(), "synlh_0000");
  Sample s = r.read(3);
  auto rl = read_npy_points(f.src + "/landmarks/RL/" + s.id + ".npy");
  EXPECT_NEAR(s.landmarks[5].x, rl[5].x, 1e-4);
  EXPECT_NEAR(s.landmarks[5].y, rl[5].y, 1e-4);
  cv::Mat img = read_png_grey(f.src + "/images/" + s.id + ".png");
  EXPECT_EQ(cv::norm(img, s.image, cv::NORM_INF), 0.0);
  EXPECT_EQ(s.dmaps.size(), 2u);
  EXPECT_EQ(r.info().content_digest, sum.content_digest);
}

TEST(Prepare, ResizesToTheWorkingSizeAndScalesLandmarks) {
  Fixture f;
  prepare_dataset(f.options("b.h5", 32));
  DatasetReader r(f.dir / "b.h5");
  Sample s = r.read(0);
  EXPECT_EQ(s.image.rows, 32);
  auto rl = read_npy_points(f.src + "/landmarks/RL/" + s.id + ".npy");
  EXPECT_NEAR(s.landmarks[0].x, rl[0].x / 2, 1e-4);
}

TEST(Prepare, SameInputSameDigest) {
  Fixture f;
  auto a = prepare_dataset(f.options("a.h5"));
  auto o = f.options("b.h5");
  o.threads = 1;
  auto b = prepare_dataset(o);
  EXPECT_EQ(a.content_digest, b.content_digest);
}

TEST(Prepare, RejectsAnExistingOutputUnlessForced) {
  Fixture f;
  prepare_dataset(f.options("a.h5"));
  auto before = test::read_bytes(f.dir / "a.h5");
  try {
    prepare_dataset(f.options("a.h5"));
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("a.h5"), std::string::npos);
  }
  EXPECT_EQ(test::read_bytes(f.dir / "a.h5"), before) << "existing output was touched";
  auto o = f.options("a.h5");
  o.overwrite = true;
  EXPECT_NO_THROW(prepare_dataset(o));
}

TEST(Prepare, MissingLandmarkFile) {
  Fixture f;
  fs::remove(f.src + "/landmarks/LL/synlh_0004.npy");
  std::string e = expect_input_error(f.options("x.h5"));
  EXPECT_NE(e.find("LL/synlh_0004.npy"), std::string::npos) << e;
}

TEST(Prepare, WrongPointCount) {
  Fixture f;
  write_npy_points(f.src + "/landmarks/RL/synlh_0002.npy", std::vector<Point2>(43));
  std::string e = expect_input_error(f.options("x.h5"));
  EXPECT_NE(e.find("RL/synlh_0002.npy"), std::string::npos) << e;
  EXPECT_NE(e.find("43"), std::string::npos) << e;
}

TEST(Prepare, NonFiniteCoordinate) {
  Fixture f;
  auto pts = read_npy_points(f.src + "/landmarks/H/synlh_0001.npy");
  pts[7].y = std::numeric_limits<double>::quiet_NaN();
  write_npy_points(f.src + "/landmarks/H/synlh_0001.npy", pts);
  std::string e = expect_input_error(f.options("x.h5"));
  EXPECT_NE(e.find("H/synlh_0001.npy"), std::string::npos) << e;
  EXPECT_NE(e.find("point 7"), std::string::npos) << e;
  EXPECT_NE(e.find("nan"), std::string::npos) << e;
}

TEST(Prepare, SplitIdWithoutImage) {
  Fixture f;
  std::ofstream(f.src + "/splits/test.txt", std::ios::app) << "ghost_0001\n";
  std::string e = expect_input_error(f.options("x.h5"));
  EXPECT_NE(e.find("ghost_0001"), std::string::npos) << e;
}

TEST(Prepare, WronglySizedOrUnreadableImage) {
  Fixture f;
  write_png(f.src + "/images/synlh_0006.png", cv::Mat::zeros(64, 50, CV_8U));
  std::string e = expect_input_error(f.options("x.h5"));
  EXPECT_NE(e.find("synlh_0006.png"), std::string::npos) << e;
  EXPECT_NE(e.find("50x64"), std::string::npos) << e;
  std::ofstream(f.src + "/images/synlh_0006.png") << "garbage";
  e = expect_input_error(f.options("x.h5"));
  EXPECT_NE(e.find("synlh_0006.png"), std::string::npos) << e;
}

TEST(Prepare, MixedHeartLandmarksNeedAnExplicitKind) {
  Fixture f;
  fs::remove(f.src + "/landmarks/H/synlh_0005.npy");
  std::string e = expect_input_error(f.options("x.h5"));
  EXPECT_NE(e.find("H/synlh_0005.npy"), std::string::npos) << e;
  auto o = f.options("l.h5");
  o.kind = "l";
  auto sum = prepare_dataset(o);
  EXPECT_EQ(sum.kind, DatasetKind::kLungs);
}

TEST(Prepare, SeededSplitWithoutLists) {
  Fixture f(DatasetKind::kLungs, 20);
  auto o = f.options("s.h5");
  o.splits.clear();
  o.split_seed = 3;
  auto sum = prepare_dataset(o);
  EXPECT_EQ(sum.kind, DatasetKind::kLungs);
  EXPECT_EQ(sum.train, 14);
  EXPECT_EQ(sum.val, 3);
  EXPECT_EQ(sum.test, 3);
}

TEST(Prepare, RawJsrtAndRawPngSourcesLandInTheLandmarkFrame) {
  test::TempDir d;
  // Landmarks in the 1024 frame for one JSRT-like and one Montgomery-like id (lungs only).
  Rng rng(3);
  auto lm = ShapeModel(DatasetKind::kLungs).sample(rng, 1024);
  auto layout = OrganLayout::of(DatasetKind::kLungs);
  for (const char* id : {"JPCLN001", "MCUCXR_0001_0"})
    for (int o = 0; o < 2; ++o) {
      fs::create_directories(d / ("lm/" + layout.organs[o].name));
      write_npy_points(d / ("lm/" + layout.organs[o].name + "/" + id + ".npy"), organ_points(layout, lm, o));
    }
  fs::create_directories(d / "jsrt");
  fs::create_directories(d / "png");
  {
    std::vector<unsigned char> raw(2048 * 2048 * 2, 0);
    for (size_t k = 0; k < raw.size(); k += 2) raw[k] = 0x08;  // 2048 (big-endian) everywhere: grey 128
    std::ofstream(d / "jsrt/JPCLN001.IMG", std::ios::binary).write(reinterpret_cast<char*>(raw.data()), raw.size());
  }
  cv::Mat png = cv::Mat::zeros(300, 500, CV_8U);
  png(cv::Rect(100, 0, 300, 300)) = 90;  // content 300 x 300 in a wider frame: cropped, no padding needed
  write_png(d / "png/MCUCXR_0001_0.png", png);
  PrepareOptions o;
  o.out = d / "raw.h5";
  o.size = 64;
  o.landmarks = d / "lm";
  o.raw_jsrt = {d / "jsrt"};
  o.raw_png = {d / "png"};
  o.split_seed = 1;
  o.quiet = true;
  auto sum = prepare_dataset(o);
  EXPECT_EQ(sum.count, 2);
  EXPECT_EQ(sum.kind, DatasetKind::kLungs);
  DatasetReader r(o.out);
  Sample jsrt = r.read(0), mont = r.read(1);
  EXPECT_EQ(jsrt.id, "JPCLN001");
  EXPECT_EQ(jsrt.image.at<uchar>(32, 32), 128);
  EXPECT_EQ(mont.image.at<uchar>(32, 5), 90);  // the crop removed the black side bands
  EXPECT_NEAR(jsrt.landmarks[3].x, lm[3].x / 16, 1e-3);
}
