#include "core/control.h"

#include <cmath>
#include <cstdlib>
#include <string>

#include "core/errors.h"

namespace orch {

namespace {

double seconds_from_env(const char* name, double fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  double x = std::strtod(v, &end);
  if (end == v || *end != '\0' || !std::isfinite(x) || x <= 0 || x > 1e7)
    throw InputError("environment", name, v, "expected a positive number of seconds (at most 10^7)");
  return x;
}

ControlTimeouts read() {
  ControlTimeouts t;
  t.store_wait_s = seconds_from_env("ORCH_STORE_WAIT_S", t.store_wait_s);
  t.lock_wait_s = seconds_from_env("ORCH_LOCK_WAIT_S", t.lock_wait_s);
  t.heartbeat_s = seconds_from_env("ORCH_HEARTBEAT_S", t.heartbeat_s);
  t.lost_after_s = seconds_from_env("ORCH_LOST_AFTER_S", t.lost_after_s);
  t.follow_poll_s = seconds_from_env("ORCH_FOLLOW_POLL_S", t.follow_poll_s);
  if (t.lost_after_s < 2 * t.heartbeat_s)
    throw InputError("environment", "ORCH_LOST_AFTER_S", std::to_string(t.lost_after_s),
                     "must be at least twice ORCH_HEARTBEAT_S (" + std::to_string(t.heartbeat_s) + ")");
  return t;
}

}  // namespace

const ControlTimeouts& control_timeouts() {
  static const ControlTimeouts t = read();
  return t;
}

}  // namespace orch
