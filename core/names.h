// The one rule for the names a user gives that become parts of file names and run ids: the experiment's name
// (workspace/<name>), data set names (datasets/<name>.h5, run ids) and network ids (run ids, runs/<id>/).
// Letters, digits, '_' and '-', starting with a letter or digit, at most kMaxNameLength characters: no path
// separators or "..", nothing a shell or Slurm reads specially, and short enough that every file name built from
// them (run ids join a network, a data set, a seed and a digest) stays under the file system's 255 bytes.
// Stateless; thread-safe.
#pragma once

#include <string>

namespace orch {

constexpr size_t kMaxNameLength = 64;

// "" when `name` follows the rule, else what is wrong with it (for an InputError's problem).
std::string name_problem(const std::string& name);

}  // namespace orch
