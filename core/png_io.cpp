#include "core/png_io.h"

#include <png.h>

#include <cstdio>
#include <memory>
#include <vector>

#include "core/errors.h"

namespace orch {

namespace {
struct FileCloser {
  void operator()(FILE* f) const { if (f) std::fclose(f); }
};
[[noreturn]] void png_error_fn(png_structp png, png_const_charp msg) {
  auto* where = static_cast<std::string*>(png_get_error_ptr(png));
  *where = msg;
  png_longjmp(png, 1);
}
void png_warning_fn(png_structp, png_const_charp) {}
}  // namespace

cv::Mat read_png_grey(const std::string& path) {
  std::unique_ptr<FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  if (!f) throw InputError(path, "", "", "cannot open image");
  unsigned char sig[8];
  if (std::fread(sig, 1, 8, f.get()) != 8 || png_sig_cmp(sig, 0, 8) != 0)
    throw InputError(path, "", "", "not a PNG image");
  std::string err;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &err, png_error_fn, png_warning_fn);
  png_infop info = png_create_info_struct(png);
  cv::Mat out;
  std::vector<png_bytep> rows;
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw InputError(path, "", "", "corrupt PNG: " + err);
  }
  png_init_io(png, f.get());
  png_set_sig_bytes(png, 8);
  png_read_info(png, info);
  png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  int depth = png_get_bit_depth(png, info), color = png_get_color_type(png, info);
  if (depth == 16) png_set_strip_16(png);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (color & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
  if (color == PNG_COLOR_TYPE_RGB || color == PNG_COLOR_TYPE_RGB_ALPHA || color == PNG_COLOR_TYPE_PALETTE)
    png_set_rgb_to_gray_fixed(png, 1, 29900, 58700);  // ITU-R 601, as OpenCV's grey conversion
  png_read_update_info(png, info);
  if (png_get_channels(png, info) != 1) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw InputError(path, "", "", "unsupported PNG channel layout");
  }
  out.create(static_cast<int>(h), static_cast<int>(w), CV_8UC1);
  rows.resize(h);
  for (png_uint_32 y = 0; y < h; ++y) rows[y] = out.ptr<png_byte>(static_cast<int>(y));
  png_read_image(png, rows.data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return out;
}

void write_png(const std::string& path, const cv::Mat& image, int compression) {
  if (image.depth() != CV_8U || (image.channels() != 1 && image.channels() != 3))
    throw Error(path + ": write_png needs an 8-bit grey or RGB image");
  cv::Mat img = image.isContinuous() ? image : image.clone();
  std::unique_ptr<FILE, FileCloser> f(std::fopen(path.c_str(), "wb"));
  if (!f) throw Error(path + ": cannot create PNG file");
  std::string err;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &err, png_error_fn, png_warning_fn);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    throw Error(path + ": PNG write failed: " + err);
  }
  png_init_io(png, f.get());
  png_set_compression_level(png, compression);
  png_set_IHDR(png, info, img.cols, img.rows, 8, img.channels() == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < img.rows; ++y) png_write_row(png, img.ptr<png_byte>(y));
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  if (std::fflush(f.get()) != 0) throw Error(path + ": PNG write failed");
}

}  // namespace orch
