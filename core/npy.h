// NumPy .npy files of landmark points: shape (n, 2), (x, y), little-endian float32 or float64, C order.
//
// Readers validate the header and reject anything else with an InputError naming the file. Stateless.
#pragma once

#include <string>
#include <vector>

namespace orch {

struct Point2 {
  double x = 0, y = 0;
};

// Reads an (n, 2) float32/float64 array. Throws InputError on a bad header, shape, dtype or short file.
std::vector<Point2> read_npy_points(const std::string& path);

// Writes an (n, 2) float64 array (what the public landmark data set uses).
void write_npy_points(const std::string& path, const std::vector<Point2>& points);

}  // namespace orch
