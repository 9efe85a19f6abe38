#include "core/atomic_file.h"

#include <fstream>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/errors.h"

namespace orch {

namespace fs = std::filesystem;

AtomicFile::AtomicFile(std::string target, bool overwrite, Env& env) : target_(std::move(target)), env_(&env) {
  if (!overwrite && fs::exists(target_))
    throw InputError(target_, "", "", "output already exists (remove it, or pass --force to replace it)");
  fs::path parent = fs::path(target_).parent_path();
  if (!parent.empty() && !fs::exists(parent)) fs::create_directories(parent);
  temp_ = target_ + ".tmp-" + std::to_string(::getpid());
  env_->remove(temp_);
}

AtomicFile::~AtomicFile() {
  if (!committed_) env_->remove(temp_);
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

std::vector<std::string> remove_temporaries(Env& env, const fs::path& dir, const std::string* only_target) {
  std::vector<std::string> removed;
  for (const std::string& name : env.list_files(dir.string())) {
    std::string target;
    if (!is_temporary_name(name, &target)) continue;
    if (only_target && target != *only_target) continue;
    const std::string path = (dir / name).string();
    if (env.remove(path)) removed.push_back(path);
  }
  return removed;
}

}  // namespace

std::vector<std::string> remove_stale_temporaries(const std::string& target, Env& env) {
  const fs::path t(target);
  const std::string name = t.filename().string();
  return remove_temporaries(env, t.has_parent_path() ? t.parent_path() : fs::path("."), &name);
}

std::vector<std::string> remove_stale_temporaries_in(const std::string& dir, Env& env) {
  return remove_temporaries(env, dir, nullptr);
}

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
    env_->rename(temp_, target_);
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

void write_file_atomically(const std::string& path, const std::string& text, const PublishFence& fence, Env& env) {
  AtomicFile f(path, true, env);
  env.write_file(f.temp_path(), text.data(), text.size());
  f.commit(fence);
}

}  // namespace orch

namespace orch {

void copy_file_atomically(const std::string& from, const std::string& to, const PublishFence& fence, Env& env) {
  std::ifstream in(from, std::ios::binary);
  if (!in) throw Error(from + ": cannot read: " + std::strerror(errno));
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error(from + ": read failed");
  AtomicFile f(to, true, env);
  env.write_file(f.temp_path(), bytes.data(), bytes.size());
  f.commit(fence);
}

}  // namespace orch
