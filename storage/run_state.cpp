#include "storage/run_state.h"

namespace orch::run_state {

const std::vector<std::string>& all() {
  static const std::vector<std::string> s = {kNew, kQueued, kRunning, kDone, kFailed, kCancelled, kTimeout, kLost,
                                             kInterrupted};
  return s;
}

bool is_active(const std::string& s) { return s == kQueued || s == kRunning; }

bool is_resumable(const std::string& s) {
  return s == kFailed || s == kCancelled || s == kTimeout || s == kLost || s == kInterrupted;
}

}  // namespace orch::run_state
