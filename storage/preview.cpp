#include "storage/preview.h"

#include <opencv2/imgproc.hpp>

#include "core/mask.h"
#include "core/png_io.h"

namespace orch {

void write_dataset_preview(const DatasetReader& data, const std::string& png_path, int count, int tile) {
  const DatasetInfo& info = data.info();
  const OrganLayout layout = info.layout();
  std::vector<int> picks = info.indices(Split::kTest);
  for (int i : info.indices(Split::kTrain)) picks.push_back(i);
  picks.resize(std::min<size_t>(picks.size(), static_cast<size_t>(count)));
  const int t = std::min(tile, info.size);
  const int cols = 1 + layout.num_classes() - 1, header = 18;
  cv::Mat canvas(static_cast<int>(picks.size()) * (t + header), cols * t, CV_8UC3, cv::Scalar(30, 30, 30));
  const cv::Scalar colours[] = {{230, 60, 60}, {60, 220, 60}, {70, 130, 255}};  // RGB
  for (size_t r = 0; r < picks.size(); ++r) {
    Sample s = data.read(picks[r]);
    const double k = static_cast<double>(t) / info.size;
    cv::Mat grey, rgb;
    cv::resize(s.image, grey, {t, t}, 0, 0, cv::INTER_AREA);
    cv::cvtColor(grey, rgb, cv::COLOR_GRAY2RGB);
    cv::Mat small_mask;
    cv::resize(s.mask, small_mask, {t, t}, 0, 0, cv::INTER_NEAREST);
    std::vector<std::vector<cv::Point>> outline;
    cv::findContours(small_mask > 0, outline, cv::RETR_LIST, cv::CHAIN_APPROX_NONE);
    cv::drawContours(rgb, outline, -1, cv::Scalar(240, 220, 60), 1);
    for (size_t o = 0; o < layout.organs.size(); ++o) {
      std::vector<cv::Point> poly;
      for (const auto& q : organ_points(layout, s.landmarks, static_cast<int>(o)))
        poly.emplace_back(static_cast<int>(q.x * k * 16), static_cast<int>(q.y * k * 16));
      cv::polylines(rgb, poly, true, colours[o], 1, cv::LINE_AA, 4);
      for (const auto& q : poly) cv::circle(rgb, q, 16, colours[o], cv::FILLED, cv::LINE_AA, 4);
    }
    int y0 = static_cast<int>(r) * (t + header);
    rgb.copyTo(canvas(cv::Rect(0, y0 + header, t, t)));
    cv::putText(canvas, s.id, {3, y0 + 13}, cv::FONT_HERSHEY_SIMPLEX, 0.4, cv::Scalar(255, 255, 255), 1, cv::LINE_AA);
    auto names = layout.class_names();
    for (size_t c = 0; c < s.dmaps.size(); ++c) {
      cv::Mat d8, small, col, col_rgb;
      cv::resize(s.dmaps[c], small, {t, t}, 0, 0, cv::INTER_AREA);
      small.convertTo(d8, CV_8U, 255.0);
      cv::applyColorMap(d8, col, cv::COLORMAP_VIRIDIS);
      cv::cvtColor(col, col_rgb, cv::COLOR_BGR2RGB);
      int x0 = static_cast<int>(c + 1) * t;
      col_rgb.copyTo(canvas(cv::Rect(x0, y0 + header, t, t)));
      cv::putText(canvas, "S " + names[c], {x0 + 3, y0 + 13}, cv::FONT_HERSHEY_SIMPLEX, 0.4, cv::Scalar(255, 255, 255), 1,
                  cv::LINE_AA);
    }
  }
  write_png(png_path, canvas);
}

}  // namespace orch
