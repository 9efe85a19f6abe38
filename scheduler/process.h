// Running the scheduler's helper commands (sbatch, sacct, squeue, scancel, scontrol) without a shell: arguments
// go to the program as they are, so no value is ever interpreted by a shell. Thread-safe (no shared state).
#pragma once

#include <string>
#include <vector>

namespace orch::scheduler {

struct CommandResult {
  int rc = -1;  // the exit status; -1 when the program could not be started, 128 + N when killed by signal N
  std::string out, err;
};

// Runs `args[0]` (searched in PATH) with `args`, capturing stdout and stderr; waits for it.
CommandResult run_command(const std::vector<std::string>& args);

}  // namespace orch::scheduler
