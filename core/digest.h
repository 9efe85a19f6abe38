// A 64-bit content digest (FNV-1a) for change detection of data sets and settings; not a security hash.
// Incremental and cheap; one Digest per stream, not thread-safe.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace orch {

class Digest {
 public:
  Digest& add(const void* data, size_t n) {
    const unsigned char* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) {
      h_ ^= p[i];
      h_ *= 0x100000001b3ULL;
    }
    return *this;
  }
  Digest& add(const std::string& s) {
    uint64_t n = s.size();
    add(&n, sizeof n);
    return add(s.data(), s.size());
  }
  uint64_t value() const { return h_; }
  std::string hex() const {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h_));
    return buf;
  }

 private:
  uint64_t h_ = 0xcbf29ce484222325ULL;
};

}  // namespace orch
