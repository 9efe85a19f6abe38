#include "core/atomic_file.h"

#include <fstream>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/errors.h"
#include "core/file_io.h"

namespace orch {

namespace fs = std::filesystem;

AtomicFile::AtomicFile(std::string target, bool overwrite) : target_(std::move(target)) {
  if (!overwrite && fs::exists(target_))
    throw InputError(target_, "", "", "output already exists (remove it, or pass --force to replace it)");
  fs::path parent = fs::path(target_).parent_path();
  if (!parent.empty() && !fs::exists(parent)) fs::create_directories(parent);
  temp_ = target_ + ".tmp-" + std::to_string(::getpid());
  std::remove(temp_.c_str());
}

AtomicFile::~AtomicFile() {
  if (!committed_) std::remove(temp_.c_str());
}

namespace {

// "<prefix>.tmp-<digits>" with `prefix` non-empty (the name of the target).
bool is_temporary_name(const std::string& name, std::string* target = nullptr) {
  const size_t at = name.rfind(".tmp-");
  if (at == std::string::npos || at == 0 || at + 5 == name.size()) return false;
  for (size_t i = at + 5; i < name.size(); ++i)
    if (name[i] < '0' || name[i] > '9') return false;
  if (target) *target = name.substr(0, at);
  return true;
}

std::vector<std::string> remove_temporaries(const fs::path& dir, const std::string* only_target) {
  std::vector<std::string> removed;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string target;
    if (!is_temporary_name(it->path().filename().string(), &target)) continue;
    if (only_target && target != *only_target) continue;
    std::error_code rm;
    if (it->is_regular_file(rm) && fs::remove(it->path(), rm)) removed.push_back(it->path().string());
  }
  return removed;
}

}  // namespace

std::vector<std::string> remove_stale_temporaries(const std::string& target) {
  const fs::path t(target);
  const std::string name = t.filename().string();
  return remove_temporaries(t.has_parent_path() ? t.parent_path() : fs::path("."), &name);
}

std::vector<std::string> remove_stale_temporaries_in(const std::string& dir) { return remove_temporaries(dir, nullptr); }

void fsync_path(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw Error(path + ": cannot open for fsync: " + std::strerror(errno));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) throw Error(path + ": fsync failed: " + std::strerror(err));
}

void AtomicFile::commit(const PublishFence& fence) {
  fsync_path(temp_);
  auto publish = [this] {
    if (std::rename(temp_.c_str(), target_.c_str()) != 0)
      throw Error(target_ + ": cannot rename " + temp_ + " into place: " + std::strerror(errno));
    committed_ = true;
    fs::path parent = fs::path(target_).parent_path();
    fsync_path(parent.empty() ? "." : parent.string());
  };
  if (!fence) {
    publish();
  } else if (!fence(publish)) {
    throw FencedError(target_ + ": not published: this worker no longer holds the run's claim (another worker took "
                      "it over); the file stays as its new holder wrote it");
  }
}

void write_file_atomically(const std::string& path, const std::string& text, const PublishFence& fence) {
  AtomicFile f(path, true);
  write_bytes(f.temp_path(), text.data(), text.size());
  f.commit(fence);
}

}  // namespace orch

namespace orch {

void copy_file_atomically(const std::string& from, const std::string& to, const PublishFence& fence) {
  std::ifstream in(from, std::ios::binary);
  if (!in) throw Error(from + ": cannot read: " + std::strerror(errno));
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error(from + ": read failed");
  AtomicFile f(to, true);
  write_bytes(f.temp_path(), bytes.data(), bytes.size());
  f.commit(fence);
}

}  // namespace orch
