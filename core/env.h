// Env: the operating system as the orchestrator's durable state meets it, behind one seam, as LevelDB's Env: whole
// files written and fsynced, renames, removals, directory listings, advisory locks and the wall clock. The code
// that publishes files (core/atomic_file.h, checkpoints, predictions, HDF5 images), takes locks
// (storage/workspace_lock.h) or judges heartbeats (the run store's claims) takes an Env through its options or
// constructor, Env::system() by default; tests pass one that fails the way a full disk, a read-only file system or
// a failed rename does, or a clock that jumps, and assert what survives (tests/unit/test_env.cpp,
// tests/models/test_trainer.cpp). No fault flag lives in production code: a kill at a chosen rename comes from
// outside (tests/faults/kill_at_rename.c, loaded with LD_PRELOAD), and a signal or a diverged loss at an exact
// step is a TrainingHooks that only tests install (runner/training_hooks.h).
//
// Every method is virtual with the system's behaviour as its default, so a test's Env overrides only the
// operation it faults and calls Env::method() for the rest. Failures are Errors naming the file and the
// system's reason (ENOSPC: "no space left on device"). Thread-safe: the system Env holds no state; a test Env
// must be as thread-safe as the code it is given to (a Trainer writes from its own thread; heartbeats read the
// clock from theirs).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace orch {

class Env {
 public:
  virtual ~Env() = default;
  // The one Env that is the system itself.
  static Env& system();

  // Creates or truncates `path`, writes `size` bytes, fsyncs and closes it.
  virtual void write_file(const std::string& path, const void* data, size_t size);
  // rename(2): `from` replaces `to` atomically.
  virtual void rename(const std::string& from, const std::string& to);
  // Removes a file; false when there was none (or it could not be removed), never throws.
  virtual bool remove(const std::string& path);
  // The names (not paths) of the regular files in `dir`; empty when it cannot be read.
  virtual std::vector<std::string> list_files(const std::string& dir);
  // flock(fd, LOCK_EX | LOCK_NB): 0 when taken, else the errno (EWOULDBLOCK: another process holds it).
  virtual int try_lock(int fd);
  // Unix time in seconds (heartbeats, claims, accounting).
  virtual double now();
};

}  // namespace orch
