#include "core/errors.h"

#include <cmath>
#include <cstdio>

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
