// Helpers shared by the unit tests: temporary folders and fixture loading.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

namespace orch::test {

// A fresh folder under /tmp, removed when the object dies.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    static int counter = 0;
    path = std::filesystem::temp_directory_path() /
           ("orch-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

inline nlohmann::json load_fixture(const std::string& name) {
  std::ifstream in(std::string(ORCH_FIXTURES_DIR) + "/" + name);
  return nlohmann::json::parse(in);
}

inline cv::Mat decode_mask(const nlohmann::json& rows) {
  int h = static_cast<int>(rows.size()), w = static_cast<int>(rows[0].get<std::string>().size());
  cv::Mat m(h, w, CV_8U);
  for (int y = 0; y < h; ++y) {
    std::string r = rows[y];
    for (int x = 0; x < w; ++x) m.at<uchar>(y, x) = r[x] == '1';
  }
  return m;
}

inline std::vector<char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace orch::test
