#include "core/names.h"

#include <cctype>

namespace orch {

std::string name_problem(const std::string& name) {
  const std::string rule = "names use letters, digits, '_' and '-', start with a letter or digit, and have at most " +
                           std::to_string(kMaxNameLength) + " characters";
  if (name.empty()) return rule + " (this one is empty)";
  if (name.size() > kMaxNameLength) return rule + " (this one has " + std::to_string(name.size()) + ")";
  if (!std::isalnum(static_cast<unsigned char>(name[0]))) return rule;
  for (char ch : name)
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-')) return rule;
  return "";
}

}  // namespace orch
