// Raw X-ray preprocessing into the landmark frame (spec §1.1) and resizing to the working size.
//
// The landmark annotations are defined in a 1024 x 1024 frame made by exactly these steps, so they follow the
// reference's OpenCV calls (cv2.resize bilinear; cv2's rounding and saturation to 8 bit). Stateless.
#pragma once

#include <opencv2/core.hpp>
#include <string>

namespace orch {

constexpr int kLandmarkFrame = 1024;

// JSRT .IMG: 2048 x 2048 big-endian uint16 holding 12-bit data, no header. v = 1 - raw/4096, bilinear resize to
// 1024, x255, rounded and saturated to 8 bit. Throws InputError naming the file if its size is wrong.
cv::Mat jsrt_to_frame(const std::string& path);

// Padchest / Montgomery / Shenzhen PNG (8-bit grey): crop to the bounding box of pixels > 1, zero-pad the short
// side to a square (the odd extra pixel after), bilinear resize to 1024.
cv::Mat png_to_frame(const cv::Mat& grey);

// Resizes a square 8-bit image to size x size: area averaging when shrinking, bilinear when enlarging.
cv::Mat resize_square(const cv::Mat& image, int size);

}  // namespace orch
