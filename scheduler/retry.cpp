#include "scheduler/retry.h"

#include <sys/wait.h>

#include <cctype>
#include <cmath>
#include <csignal>
#include <cstring>

#include "core/errors.h"
#include "core/exit_codes.h"

namespace orch::scheduler {

AttemptEnd classify_worker_end(int status, bool hung, double heartbeat_age_s) {
  AttemptEnd e;
  if (hung) {
    e.retryable = true;
    e.cause = "hung: no heartbeat for " + std::to_string(static_cast<long long>(heartbeat_age_s)) +
              " s (ORCH_LOST_AFTER_S), killed by its pool";
    return e;
  }
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    e.retryable = sig == SIGKILL;
    e.cause = sig == SIGKILL ? "killed by SIGKILL (out of memory, a lost node, or kill -9)"
                             : std::string("killed by signal ") + std::to_string(sig) + " (" + strsignal(sig) + ")";
    return e;
  }
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  e.retryable = code == 128 + SIGKILL;  // a shell or launcher that reports the SIGKILL as an exit status
  e.cause = code == kExitInputError ? "exit 2 (bad input)"
            : code == kExitFailure  ? "exit 1 (failed: see its log)"
            : e.retryable           ? "exit 137 (killed by SIGKILL)"
                                    : "exit " + std::to_string(code);
  return e;
}

bool should_retry(const AttemptEnd& end, int attempts, int max_attempts, std::string* note) {
  if (!end.retryable) {
    *note = "not retried: " + end.cause + " is not a transient failure";
    return false;
  }
  if (attempts >= max_attempts) {
    *note = "not retried: " + std::to_string(attempts) + " attempt(s) made, resources.max_attempts is " +
            std::to_string(max_attempts);
    return false;
  }
  *note = "retried (attempt " + std::to_string(attempts + 1) + " of " + std::to_string(max_attempts) + ")";
  return true;
}

std::string raised_mem(const std::string& mem, double factor, int oom_ends) {
  if (mem.empty() || oom_ends <= 0 || factor <= 1) return mem;
  size_t digits = 0;
  while (digits < mem.size() && std::isdigit(static_cast<unsigned char>(mem[digits]))) ++digits;
  const std::string unit = mem.substr(digits);
  if (digits == 0 || unit.size() > 1) throw InputError("", "resources.mem", mem, "expected a size such as 16G or 4000M");
  double mib = std::stod(mem.substr(0, digits));
  switch (unit.empty() ? 'M' : unit[0]) {
    case 'K': mib /= 1024; break;
    case 'M': break;
    case 'G': mib *= 1024; break;
    case 'T': mib *= 1024 * 1024; break;
    default: throw InputError("", "resources.mem", mem, "expected a size such as 16G or 4000M");
  }
  const double raised = std::ceil(mib * std::pow(factor, oom_ends));
  return std::to_string(static_cast<long long>(raised)) + "M";
}

}  // namespace orch::scheduler
