#include "core/npy.h"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>

#include "core/errors.h"

namespace orch {

std::vector<Point2> read_npy_points(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, "", "", "cannot open landmark file");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() < 10 || std::memcmp(bytes.data(), "\x93NUMPY", 6) != 0)
    throw InputError(path, "", "", "not a NumPy .npy file (bad magic)");
  int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len, header_start;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw InputError(path, "", "", "truncated .npy header");
    header_len = 0;
    for (int i = 0; i < 4; ++i) header_len |= static_cast<size_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    header_start = 12;
  } else {
    throw InputError(path, "version", std::to_string(major), "unsupported .npy version");
  }
  if (bytes.size() < header_start + header_len) throw InputError(path, "", "", "truncated .npy header");
  std::string header = bytes.substr(header_start, header_len);

  std::smatch m;
  if (!std::regex_search(header, m, std::regex("'descr'\\s*:\\s*'([^']*)'")))
    throw InputError(path, "descr", "", "missing dtype in .npy header");
  std::string descr = m[1];
  size_t elem;
  if (descr == "<f8" || descr == "=f8") elem = 8;
  else if (descr == "<f4" || descr == "=f4") elem = 4;
  else throw InputError(path, "dtype", descr, "expected little-endian float32 or float64");
  if (std::regex_search(header, m, std::regex("'fortran_order'\\s*:\\s*True")))
    throw InputError(path, "fortran_order", "True", "expected C order");
  if (!std::regex_search(header, m, std::regex("'shape'\\s*:\\s*\\(([^)]*)\\)")))
    throw InputError(path, "shape", "", "missing shape in .npy header");
  std::vector<long> shape;
  std::stringstream ss(m[1].str());
  std::string tok;
  std::string shape_text = "(" + m[1].str() + ")";
  while (std::getline(ss, tok, ',')) {
    const size_t a = tok.find_first_not_of(" \t"), b = tok.find_last_not_of(" \t");
    if (a == std::string::npos) continue;
    const std::string t = tok.substr(a, b - a + 1);
    if (t.empty() || t.size() > 12 || t.find_first_not_of("0123456789") != std::string::npos)
      throw InputError(path, "shape", shape_text, "expected non-negative integers");
    shape.push_back(std::stol(t));
  }
  if (shape.size() != 2 || shape[1] != 2) throw InputError(path, "shape", shape_text, "expected (n, 2) points");
  size_t n = static_cast<size_t>(shape[0]);
  size_t data_start = header_start + header_len;
  if (n > bytes.size() || bytes.size() < data_start + n * 2 * elem)
    throw InputError(path, "", "", "truncated .npy data: " + std::to_string(bytes.size() - data_start) + " bytes for " +
                                       std::to_string(n) + " points");
  std::vector<Point2> pts(n);
  const char* p = bytes.data() + data_start;
  for (size_t i = 0; i < n; ++i) {
    double v[2];
    for (int k = 0; k < 2; ++k) {
      if (elem == 8) {
        std::memcpy(&v[k], p + (2 * i + k) * 8, 8);
      } else {
        float f;
        std::memcpy(&f, p + (2 * i + k) * 4, 4);
        v[k] = f;
      }
    }
    pts[i] = {v[0], v[1]};
  }
  return pts;
}

void write_npy_points(const std::string& path, const std::vector<Point2>& points) {
  std::string header = "{'descr': '<f8', 'fortran_order': False, 'shape': (" + std::to_string(points.size()) + ", 2), }";
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  if (!out) throw Error(path + ": cannot write .npy file");
  out.write("\x93NUMPY\x01\x00", 8);
  uint16_t len = static_cast<uint16_t>(header.size());
  char lb[2] = {static_cast<char>(len & 0xff), static_cast<char>(len >> 8)};
  out.write(lb, 2);
  out << header;
  for (const auto& p : points) {
    out.write(reinterpret_cast<const char*>(&p.x), 8);
    out.write(reinterpret_cast<const char*>(&p.y), 8);
  }
  if (!out) throw Error(path + ": write failed");
}

}  // namespace orch
