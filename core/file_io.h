// The one place that writes whole files' bytes to disk (checkpoints, predictions, reports, manifests), behind a
// seam that tests replace, as LevelDB's tests replace its Env: a test installs a FileSink that fails the way a
// full disk, a read-only file system or a permission error does, and asserts what survives. File writes have no
// fault flags: the process tests kill a real worker at a chosen rename from outside (tests/faults/kill_at_rename.c,
// loaded with LD_PRELOAD). (A signal and a diverged loss at an exact step, which no outside fault can time, are
// TrainingHooks that only tests install: runner/training_hooks.h.)
//
// write_bytes() writes to `path` (created or truncated) and fsyncs it; every failure is an Error naming the file
// and the system's reason (ENOSPC: "no space left on device"). The sink is process-wide: install one before any
// thread writes, and remove it (nullptr) after.
#pragma once

#include <cstddef>
#include <string>

namespace orch {

class FileSink {
 public:
  virtual ~FileSink() = default;
  // Writes and fsyncs; throws Error.
  virtual void write(const std::string& path, const void* data, size_t size) = 0;
};

// The real one: open, write in a loop, fsync, close, each checked.
FileSink& system_file_sink();
// Replaces the sink (nullptr: the system's again); returns the previous one. For tests.
FileSink* set_file_sink_for_tests(FileSink* sink);

void write_bytes(const std::string& path, const void* data, size_t size);

}  // namespace orch
