#include "core/env.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/errors.h"

namespace orch {

namespace fs = std::filesystem;

Env& Env::system() {
  static Env env;
  return env;
}

void Env::write_file(const std::string& path, const void* data, size_t size) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(path + ": cannot create: " + std::strerror(errno));
  const char* p = static_cast<const char*>(data);
  size_t left = size;
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = n < 0 ? errno : ENOSPC;
      ::close(fd);
      throw Error(path + ": write failed: " + std::strerror(err));
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    throw Error(path + ": fsync failed: " + std::strerror(err));
  }
  if (::close(fd) != 0) throw Error(path + ": close failed: " + std::strerror(errno));
}

void Env::rename(const std::string& from, const std::string& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0)
    throw Error(to + ": cannot rename " + from + " into place: " + std::strerror(errno));
}

bool Env::remove(const std::string& path) {
  std::error_code ec;
  return fs::remove(path, ec);
}

std::vector<std::string> Env::list_files(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code st;
    if (it->is_regular_file(st)) out.push_back(it->path().filename().string());
  }
  return out;
}

int Env::try_lock(int fd) { return ::flock(fd, LOCK_EX | LOCK_NB) == 0 ? 0 : errno; }

double Env::now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace orch
