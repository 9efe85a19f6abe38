#include <gtest/gtest.h>

#include <fstream>

#include "core/errors.h"
#include "core/raw_image.h"
#include "test_util.h"

using namespace orch;

TEST(RawImage, JsrtIsInvertedResizedAndRounded) {
  test::TempDir d;
  std::vector<unsigned char> raw(2048 * 2048 * 2);
  for (int y = 0; y < 2048; ++y)
    for (int x = 0; x < 2048; ++x) {
      uint16_t v = x < 1024 ? 2048 : 1024;  // 12-bit values, big-endian
      size_t k = (static_cast<size_t>(y) * 2048 + x) * 2;
      raw[k] = static_cast<unsigned char>(v >> 8);
      raw[k + 1] = static_cast<unsigned char>(v & 0xff);
    }
  std::ofstream(d / "JPCLN001.IMG", std::ios::binary).write(reinterpret_cast<char*>(raw.data()), raw.size());
  cv::Mat f = jsrt_to_frame(d / "JPCLN001.IMG");
  ASSERT_EQ(f.rows, 1024);
  EXPECT_EQ(f.at<uchar>(100, 100), 128);  // (1 - 2048/4096) * 255 = 127.5 -> 128
  EXPECT_EQ(f.at<uchar>(100, 900), 191);  // (1 - 1024/4096) * 255 = 191.25 -> 191
}

TEST(RawImage, JsrtOfTheWrongSizeIsRejected) {
  test::TempDir d;
  std::ofstream(d / "short.IMG") << "0123456789";
  try {
    jsrt_to_frame(d / "short.IMG");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("short.IMG"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("10 bytes"), std::string::npos);
  }
}

TEST(RawImage, PngIsCroppedToContentPaddedAndResized) {
  // 300 wide x 200 high, content in x 50..249, y 20..119 (200 x 100): padded to 200 x 200 with 50 rows above.
  cv::Mat g = cv::Mat::zeros(200, 300, CV_8U);
  g(cv::Rect(50, 20, 200, 100)) = 200;
  cv::Mat f = png_to_frame(g);
  ASSERT_EQ(f.rows, 1024);
  ASSERT_EQ(f.cols, 1024);
  EXPECT_EQ(f.at<uchar>(100, 512), 0);     // padding above
  EXPECT_EQ(f.at<uchar>(512, 512), 200);   // content in the middle band
  EXPECT_EQ(f.at<uchar>(900, 512), 0);     // padding below
  EXPECT_EQ(f.at<uchar>(512, 3), 200);     // content spans the full width
}
