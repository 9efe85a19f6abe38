// Who a process is, in a form that survives pid reuse: its host, the host's boot id, its pid and its start
// time (clock ticks after boot, field 22 of /proc/<pid>/stat). No two processes share all four, so a recorded
// identity names one process forever: after it exits, a new process that gets the same pid has another start
// time and is never mistaken for it.
//
// The local pool records its workers (and itself) by identity; liveness() tells, on the same host, whether that
// exact process still runs. On another host it cannot tell (kUnknown): callers then judge by heartbeats.
// Values and /proc reads only; thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

namespace orch {

struct ProcessIdentity {
  std::string host;
  std::string boot_id;       // first 8 hex digits of /proc/sys/kernel/random/boot_id
  int64_t pid = 0;
  uint64_t start_ticks = 0;  // 0: unknown (an identity recorded by an older version: pid and host only)

  // "<host>:<pid>:<start_ticks>:<boot>", the form stored as a local job id.
  std::string str() const;
  // Parses str()'s form, and the older "local:<pid>@<host>"; nullopt for anything else.
  static std::optional<ProcessIdentity> parse(const std::string& text);
  static ProcessIdentity self();
  // The process `pid` of this host, or nullopt when there is none (or it is a zombie).
  static std::optional<ProcessIdentity> of(pid_t pid);
};

enum class Liveness { kAlive, kGone, kUnknown };
const char* liveness_name(Liveness l);

// kAlive when that very process runs on this host (same boot, pid and start time), kGone when it does not,
// kUnknown when it belongs to another host (or no identity could be read).
Liveness liveness(const ProcessIdentity& p);

// Sends `sig` to that very process when it runs on this host (liveness kAlive); false when it does not (another
// host, gone, or a new process that reuses its pid, which is never signalled).
bool signal_process(const ProcessIdentity& p, int sig);

std::string this_host();

}  // namespace orch
