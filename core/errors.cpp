#include "core/errors.h"

#include <cmath>
#include <cctype>
#include <cstdio>
#include <cstdlib>

namespace orch {

static std::string compose(const std::string& file, const std::string& field, const std::string& value,
                           const std::string& problem) {
  std::string m;
  if (!file.empty()) m += file;
  if (!field.empty()) {
    if (!m.empty()) m += ": ";
    m += field;
    if (!value.empty()) m += " = " + value;
  } else if (!value.empty()) {
    if (!m.empty()) m += ": ";
    m += "'" + value + "'";
  }
  if (!problem.empty()) {
    if (!m.empty()) m += ": ";
    m += problem;
  }
  return m;
}

InputError::InputError(const std::string& file, const std::string& field, const std::string& value,
                       const std::string& problem)
    : Error(compose(file, field, value, problem)) {}

std::string format_number(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  for (int prec = 6; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

}  // namespace orch

namespace orch {

std::string brief_reason(const std::string& message, size_t max_chars) {
  std::string m = message;
  for (const char* marker : {"Exception raised from", "frame #0", "\nBacktrace"})
    if (auto p = m.find(marker); p != std::string::npos) m.resize(p);
  std::string out;
  int lines = 0;
  size_t start = 0;
  while (start < m.size() && lines < 2) {
    size_t end = m.find('\n', start);
    std::string line = m.substr(start, end == std::string::npos ? std::string::npos : end - start);
    start = end == std::string::npos ? m.size() : end + 1;
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    size_t lead = line.find_first_not_of(" \t");
    if (lead == std::string::npos) continue;
    out += (out.empty() ? "" : "; ") + line.substr(lead);
    ++lines;
  }
  if (out.size() > max_chars) out = out.substr(0, max_chars - 3) + "...";
  return out.empty() ? "(no message)" : out;
}

}  // namespace orch
