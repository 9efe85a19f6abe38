#include "core/file_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "core/errors.h"

namespace orch {

namespace {

class SystemSink : public FileSink {
 public:
  void write(const std::string& path, const void* data, size_t size) override {
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
};

std::atomic<FileSink*> g_sink{nullptr};

}  // namespace

FileSink& system_file_sink() {
  static SystemSink s;
  return s;
}

FileSink* set_file_sink_for_tests(FileSink* sink) { return g_sink.exchange(sink); }

void write_bytes(const std::string& path, const void* data, size_t size) {
  FileSink* s = g_sink.load();
  (s ? *s : system_file_sink()).write(path, data, size);
}

}  // namespace orch
