// An advisory file lock (flock) held while a command plans, records and dispatches the runs of a workspace, or
// while a data set is built: concurrent commands on one workspace serialise instead of racing. The kernel
// releases the lock when its process exits, kill -9 included, so a crash never leaves a workspace locked.
//
// The holder writes who it is (what for, pid, host, since when) into the lock file; a process that waits longer
// than its bound gets a BusyError naming the file and that holder. Locks are per open file: one FileLock per
// path per process (a second one in the same process would wait for the first). Not thread-safe.
#pragma once

#include <functional>
#include <string>

#include "core/env.h"

namespace orch {

class FileLock {
 public:
  // Waits up to `wait_s` seconds; `on_wait` (if set) is called once, with the holder's description, when the
  // lock is not free at once. Throws BusyError after the wait, Error if the file cannot be opened. The lock is
  // taken through `env` (core/env.h).
  FileLock(const std::string& path, const std::string& purpose, double wait_s,
           const std::function<void(const std::string& holder)>& on_wait = nullptr, Env& env = Env::system());
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

  // Releases early (the destructor then does nothing).
  void release();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

// The holder's description written in a lock file ("" when none could be read).
std::string lock_holder(const std::string& path);

}  // namespace orch
