// PNG reading and writing through libpng (no OpenCV imgcodecs: it pulls GDAL, see DEVELOPERS.md).
//
// read_png_grey converts any PNG (grey, grey+alpha, RGB, palette; 8 or 16 bit) to 8-bit grey the way
// cv2.imread(path, 0) does for 8-bit inputs (ITU-R 601 weights); 16-bit images keep their high byte.
// Stateless and thread-safe.
#pragma once

#include <opencv2/core.hpp>
#include <string>

namespace orch {

cv::Mat read_png_grey(const std::string& path);  // CV_8UC1; throws InputError naming the file
void write_png(const std::string& path, const cv::Mat& image, int compression = 6);  // CV_8UC1 or CV_8UC3 (RGB order)

}  // namespace orch
