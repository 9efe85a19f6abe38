#include <gtest/gtest.h>

#include <fstream>

#include "core/errors.h"
#include "core/npy.h"
#include "core/png_io.h"
#include "test_util.h"

using namespace orch;

TEST(Npy, RoundTripFloat64) {
  test::TempDir d;
  std::vector<Point2> p = {{1.5, 2.25}, {1023.75, 0.125}, {-3, 7}};
  write_npy_points(d / "a.npy", p);
  auto q = read_npy_points(d / "a.npy");
  ASSERT_EQ(q.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(q[i].x, p[i].x);
    EXPECT_EQ(q[i].y, p[i].y);
  }
  auto bytes = test::read_bytes(d / "a.npy");
  EXPECT_EQ((10 + static_cast<unsigned char>(bytes[8])) % 64, 0u);  // header padded to 64 bytes
}

static void write_raw_npy(const std::string& path, const std::string& header, const std::string& payload) {
  std::string h = header;
  while ((10 + h.size() + 1) % 64) h += ' ';
  h += '\n';
  std::ofstream o(path, std::ios::binary);
  o.write("\x93NUMPY\x01\x00", 8);
  char lb[2] = {static_cast<char>(h.size() & 0xff), static_cast<char>(h.size() >> 8)};
  o.write(lb, 2);
  o << h << payload;
}

TEST(Npy, ReadsFloat32) {
  test::TempDir d;
  float v[4] = {1.5f, 2.5f, 3.25f, 4.75f};
  write_raw_npy(d / "f.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }",
                std::string(reinterpret_cast<char*>(v), sizeof v));
  auto q = read_npy_points(d / "f.npy");
  ASSERT_EQ(q.size(), 2u);
  EXPECT_EQ(q[1].x, 3.25);
  EXPECT_EQ(q[1].y, 4.75);
}

TEST(Npy, RejectsBadFilesNamingThem) {
  test::TempDir d;
  double v[6] = {0, 0, 0, 0, 0, 0};
  std::string payload(reinterpret_cast<char*>(v), sizeof v);
  write_raw_npy(d / "shape.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", payload);
  write_raw_npy(d / "int.npy", "{'descr': '<i8', 'fortran_order': False, 'shape': (3, 2), }", payload);
  write_raw_npy(d / "short.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (30, 2), }", payload);
  std::ofstream(d / "junk.npy") << "hello";
  for (const char* name : {"shape.npy", "int.npy", "short.npy", "junk.npy", "missing.npy"}) {
    try {
      read_npy_points(d / name);
      FAIL() << name << " was accepted";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  }
  try {
    read_npy_points(d / "shape.npy");
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("(2, 3)"), std::string::npos) << e.what();
  }
}

TEST(Png, GreyRoundTripAndRgbToGrey) {
  test::TempDir d;
  cv::Mat g(17, 23, CV_8U);
  for (int y = 0; y < g.rows; ++y)
    for (int x = 0; x < g.cols; ++x) g.at<uchar>(y, x) = static_cast<uchar>((x * 11 + y * 7) % 256);
  write_png(d / "g.png", g);
  cv::Mat r = read_png_grey(d / "g.png");
  EXPECT_EQ(cv::norm(g, r, cv::NORM_INF), 0.0);
  cv::Mat rgb(4, 4, CV_8UC3, cv::Scalar(200, 100, 50));
  write_png(d / "c.png", rgb);
  cv::Mat c = read_png_grey(d / "c.png");
  // ITU-R 601: 0.299 R + 0.587 G + 0.114 B = 124.3
  EXPECT_NEAR(c.at<uchar>(0, 0), 124, 1);
  std::ofstream(d / "bad.png") << "not a png";
  EXPECT_THROW(read_png_grey(d / "bad.png"), InputError);
}
