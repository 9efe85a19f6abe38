// The current time as UTC text, "2026-11-30T06:42:46Z" (ISO 8601, seconds): what logs, attempts, accounting rows
// and calibration rows record, so that they compare as text and sort in time order.
//
// Thread-safe (gmtime_r, no shared buffer).
#pragma once

#include <string>

namespace orch {

std::string utc_now_text();

}  // namespace orch
