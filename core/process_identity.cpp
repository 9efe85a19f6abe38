#include "core/process_identity.h"

#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

namespace orch {

namespace {

std::string read_boot_id() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  std::string hex;
  for (char c : id)
    if (std::isxdigit(static_cast<unsigned char>(c))) hex += c;
  return hex.substr(0, 8);
}

const std::string& this_boot_id() {
  static const std::string id = read_boot_id();
  return id;
}

// Field 3 (state) and field 22 (starttime) of /proc/<pid>/stat; false when there is no such process.
bool read_stat(pid_t pid, char* state, uint64_t* start) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  if (!in) return false;
  std::string line;
  std::getline(in, line);
  auto close = line.rfind(')');  // the command name may hold spaces and parentheses
  if (close == std::string::npos) return false;
  std::istringstream rest(line.substr(close + 1));
  std::vector<std::string> f;
  std::string tok;
  while (rest >> tok) f.push_back(tok);
  if (f.size() < 20) return false;
  *state = f[0].empty() ? '?' : f[0][0];
  *start = std::strtoull(f[19].c_str(), nullptr, 10);
  return true;
}

}  // namespace

std::string this_host() {
  char buf[256] = {0};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

std::string ProcessIdentity::str() const {
  return host + ":" + std::to_string(pid) + ":" + std::to_string(start_ticks) + ":" + boot_id;
}

std::optional<ProcessIdentity> ProcessIdentity::parse(const std::string& t) {
  auto digits = [](const std::string& s) {
    return !s.empty() && s.size() < 20 && s.find_first_not_of("0123456789") == std::string::npos;
  };
  ProcessIdentity p;
  if (t.rfind("local:", 0) == 0) {  // older form: local:<pid>@<host>
    auto at = t.find('@');
    if (at == std::string::npos || !digits(t.substr(6, at - 6)) || at + 1 >= t.size()) return std::nullopt;
    p.pid = std::stoll(t.substr(6, at - 6));
    p.host = t.substr(at + 1);
    return p;
  }
  std::vector<std::string> parts;
  std::stringstream ss(t);
  std::string part;
  while (std::getline(ss, part, ':')) parts.push_back(part);
  if (parts.size() != 4 || parts[0].empty() || !digits(parts[1]) || !digits(parts[2])) return std::nullopt;
  p.host = parts[0];
  p.pid = std::stoll(parts[1]);
  p.start_ticks = std::stoull(parts[2]);
  p.boot_id = parts[3];
  return p;
}

std::optional<ProcessIdentity> ProcessIdentity::of(pid_t pid) {
  char state = '?';
  uint64_t start = 0;
  if (pid <= 0 || !read_stat(pid, &state, &start) || state == 'Z' || state == 'X') return std::nullopt;
  ProcessIdentity p;
  p.host = this_host();
  p.boot_id = this_boot_id();
  p.pid = pid;
  p.start_ticks = start;
  return p;
}

ProcessIdentity ProcessIdentity::self() {
  auto p = of(::getpid());
  if (p) return *p;
  ProcessIdentity q;  // no /proc: pid and host only
  q.host = this_host();
  q.boot_id = this_boot_id();
  q.pid = ::getpid();
  return q;
}

const char* liveness_name(Liveness l) {
  switch (l) {
    case Liveness::kAlive: return "alive";
    case Liveness::kGone: return "gone";
    case Liveness::kUnknown: return "unknown";
  }
  return "?";
}

Liveness liveness(const ProcessIdentity& p) {
  if (p.host != this_host() || p.pid <= 0) return Liveness::kUnknown;
  if (!p.boot_id.empty() && p.boot_id != this_boot_id()) return Liveness::kGone;  // the host rebooted since
  if (p.start_ticks == 0) {  // an older record without a start time: existence is all we can check
    if (::kill(static_cast<pid_t>(p.pid), 0) == 0 || errno == EPERM) return Liveness::kUnknown;
    return Liveness::kGone;
  }
  auto now = ProcessIdentity::of(static_cast<pid_t>(p.pid));
  return now && now->start_ticks == p.start_ticks ? Liveness::kAlive : Liveness::kGone;
}

}  // namespace orch

namespace orch {

bool signal_process(const ProcessIdentity& p, int sig) {
  if (liveness(p) != Liveness::kAlive) return false;
  return ::kill(static_cast<pid_t>(p.pid), sig) == 0;
}

}  // namespace orch
