#include "storage/workspace_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/errors.h"
#include "core/process_identity.h"
#include "core/utc_time.h"

namespace orch {

namespace fs = std::filesystem;

std::string lock_holder(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

FileLock::FileLock(const std::string& path, const std::string& purpose, double wait_s,
                   const std::function<void(const std::string&)>& on_wait, Env& env)
    : path_(path) {
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0 && (errno == EROFS || errno == EACCES)) fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw Error(path + ": cannot open the lock file: " + std::strerror(errno));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(wait_s);
  bool told = false;
  for (int err; (err = env.try_lock(fd_)) != 0;) {
    if (err != EWOULDBLOCK && err != EINTR) {
      ::close(fd_);
      fd_ = -1;
      throw Error(path + ": cannot lock: " + std::strerror(err));
    }
    if (!told && on_wait) on_wait(lock_holder(path));
    told = true;
    if (std::chrono::steady_clock::now() >= deadline) {
      std::string holder = lock_holder(path);
      ::close(fd_);
      fd_ = -1;
      char waited[32];
      std::snprintf(waited, sizeof waited, "%.0f", wait_s);
      throw BusyError(path + ": busy: held by " + (holder.empty() ? "another process" : holder) + "; waited " + waited +
                      " s (ORCH_LOCK_WAIT_S sets the wait)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // Who holds it, for anyone who waits (best effort: a read-only workspace keeps the old text).
  std::string text = "'" + purpose + "' (pid " + std::to_string(::getpid()) + " on " + this_host() + ", since " +
                     utc_now_text() + ")\n";
  if (::ftruncate(fd_, 0) == 0 && ::pwrite(fd_, text.data(), text.size(), 0) < 0) {
    // A full disk: the lock itself still holds.
  }
}

void FileLock::release() {
  if (fd_ < 0) return;
  ::flock(fd_, LOCK_UN);
  ::close(fd_);
  fd_ = -1;
}

FileLock::~FileLock() { release(); }

}  // namespace orch
