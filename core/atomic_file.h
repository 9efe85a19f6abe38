// Atomic publication of an output file: write to a temporary name beside it, fsync, rename over the target. Every
// write, rename, listing and removal goes through an Env (core/env.h; the system's unless one is given).
//
// A reader never sees a half-written file; a crash leaves at most a stale temporary (named
// "<target>.tmp-<pid>") that the next writer ignores and the target's owner removes (remove_stale_temporaries).
// If the AtomicFile is destroyed without commit() the temporary is removed. Not thread-safe; one AtomicFile per
// output.
//
// A fence makes publication conditional (runner/worker: only while the worker holds its run's claim, checked in
// the same store transaction as the rename, so that a worker that was taken over cannot replace what its
// successor published): the fence runs `publish` (rename and directory fsync) and returns true, or returns false
// without running it, and commit() then throws FencedError and the temporary is removed.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/env.h"
#include "core/errors.h"

namespace orch {

using PublishFence = std::function<bool(const std::function<void()>& publish)>;

// A publication refused by its fence: the worker's claim is gone. Not a failure of the run (exit 3).
class FencedError : public Error {
 public:
  using Error::Error;
};

class AtomicFile {
 public:
  // Throws InputError if `target` exists and `overwrite` is false.
  explicit AtomicFile(std::string target, bool overwrite = false, Env& env = Env::system());
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  const std::string& temp_path() const { return temp_; }
  const std::string& target() const { return target_; }
  Env& env() const { return *env_; }
  // fsyncs the temporary, renames it over the target and fsyncs the directory; the rename and the directory's
  // fsync run inside `fence` when one is given (FencedError when it refuses).
  void commit(const PublishFence& fence = nullptr);

 private:
  std::string target_, temp_;
  Env* env_;
  bool committed_ = false;
};

// Removes the temporaries ("<target>.tmp-<pid>") that writers of `target` left when they died before publishing
// it (kill -9, a lost node); a dead build of a paper-size data set leaves gigabytes. Call only where this process
// is the one writer of `target` (under the lock or claim that makes it so). Returns the paths removed; a
// temporary that cannot be removed is left and not returned.
std::vector<std::string> remove_stale_temporaries(const std::string& target, Env& env = Env::system());
// The same for every file of folder `dir` (not recursive).
std::vector<std::string> remove_stale_temporaries_in(const std::string& dir, Env& env = Env::system());

// fsync a path (file or directory); throws Error on failure.
void fsync_path(const std::string& path);

// Copies `from` over `to` atomically (temporary beside `to`, fsync, rename). Throws orch::Error on failure.
void copy_file_atomically(const std::string& from, const std::string& to, const PublishFence& fence = nullptr,
                          Env& env = Env::system());

// Writes `text` to `path` atomically (an AtomicFile: temporary, fsync, rename). Throws orch::Error on failure.
void write_file_atomically(const std::string& path, const std::string& text, const PublishFence& fence = nullptr,
                           Env& env = Env::system());

}  // namespace orch
