#include "core/raw_image.h"

#include <opencv2/imgproc.hpp>

#include <cstdint>
#include <fstream>
#include <vector>

#include "core/errors.h"

namespace orch {

cv::Mat jsrt_to_frame(const std::string& path) {
  constexpr int kRaw = 2048;
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw InputError(path, "", "", "cannot open JSRT image");
  auto bytes = static_cast<long long>(in.tellg());
  if (bytes != 2LL * kRaw * kRaw)
    throw InputError(path, "size", std::to_string(bytes) + " bytes",
                     "a JSRT .IMG is 2048 x 2048 big-endian uint16 (8388608 bytes)");
  in.seekg(0);
  std::vector<unsigned char> buf(static_cast<size_t>(bytes));
  in.read(reinterpret_cast<char*>(buf.data()), bytes);
  cv::Mat v(kRaw, kRaw, CV_32F);
  for (int y = 0; y < kRaw; ++y) {
    float* row = v.ptr<float>(y);
    const unsigned char* b = buf.data() + static_cast<size_t>(y) * kRaw * 2;
    for (int x = 0; x < kRaw; ++x) row[x] = 1.f - static_cast<float>((b[2 * x] << 8) | b[2 * x + 1]) / 4096.f;
  }
  cv::Mat small;
  cv::resize(v, small, {kLandmarkFrame, kLandmarkFrame}, 0, 0, cv::INTER_LINEAR);
  cv::Mat out;
  small.convertTo(out, CV_8U, 255.0);  // rounds and saturates, as cv2.imwrite of the float array
  return out;
}

cv::Mat png_to_frame(const cv::Mat& grey) {
  cv::Mat fg = grey > 1;
  cv::Rect box = cv::boundingRect(fg);
  if (box.area() == 0) box = cv::Rect(0, 0, grey.cols, grey.rows);
  cv::Mat crop = grey(box);
  int side = std::max(crop.rows, crop.cols);
  int pad_y = side - crop.rows, pad_x = side - crop.cols;
  cv::Mat square;
  cv::copyMakeBorder(crop, square, pad_y / 2, pad_y - pad_y / 2, pad_x / 2, pad_x - pad_x / 2, cv::BORDER_CONSTANT,
                     cv::Scalar(0));
  cv::Mat out;
  cv::resize(square, out, {kLandmarkFrame, kLandmarkFrame}, 0, 0, cv::INTER_LINEAR);
  return out;
}

cv::Mat resize_square(const cv::Mat& image, int size) {
  if (image.rows == size && image.cols == size) return image.clone();
  cv::Mat out;
  cv::resize(image, out, {size, size}, 0, 0, image.rows > size ? cv::INTER_AREA : cv::INTER_LINEAR);
  return out;
}

}  // namespace orch
