// A training fault at an exact step in a real orchestrator process, loaded with LD_PRELOAD: the worker finds
// `orch_test_training_hooks` (runner/training_hooks.h) and asks it before and after each step.
// ORCH_TEST_TRAINING_FAULTS="stop_after=N" acts as if SIGTERM came after N steps; "nan_at=N" makes the loss of
// step N NaN; both may be given, comma-separated.
#include <cstdlib>
#include <cstring>
#include <string>

#include "runner/training_hooks.h"

namespace {

int64_t value_of(const std::string& spec, const std::string& key) {
  auto at = spec.find(key + "=");
  return at == std::string::npos ? -1 : std::atoll(spec.c_str() + at + key.size() + 1);
}

}  // namespace

extern "C" __attribute__((visibility("default"))) orch::runner::TrainingHooks* orch_test_training_hooks() {
  const char* spec = std::getenv("ORCH_TEST_TRAINING_FAULTS");
  if (!spec) return nullptr;
  static orch::runner::StepFaults faults(value_of(spec, "stop_after"), value_of(spec, "nan_at"));
  return &faults;
}
