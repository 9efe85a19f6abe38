// A small deterministic random number generator (xoshiro256** seeded through SplitMix64).
//
// Unlike std::normal_distribution, every draw here is defined by this code alone, so the same seed gives the
// same bytes with any standard library. Rng::derive(seed, a, b, ...) makes independent streams for, say,
// (seed, epoch, sample index). Not thread-safe: one Rng per thread or per task.
#pragma once

#include <cmath>
#include <cstdint>
#include <initializer_list>

namespace orch {

class Rng {
 public:
  explicit Rng(uint64_t seed) { reseed(seed); }

  // A stream determined by the seed and any number of extra keys (epoch, sample index, purpose...).
  static Rng derive(uint64_t seed, std::initializer_list<uint64_t> keys) {
    uint64_t h = mix(seed ^ 0x6a09e667f3bcc909ULL);
    for (uint64_t k : keys) h = mix(h ^ mix(k + 0x9e3779b97f4a7c15ULL));
    return Rng(h);
  }

  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Integer in [lo, hi) (hi > lo); lo when the range is empty.
  int64_t randint(int64_t lo, int64_t hi) {
    if (hi <= lo) return lo;
    return lo + static_cast<int64_t>(uniform() * static_cast<double>(hi - lo));
  }
  // Standard normal (Box-Muller; the second value is discarded for simplicity and determinism).
  double normal() {
    double u1 = uniform();
    double u2 = uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  double normal(double mean, double sd) { return mean + sd * normal(); }
  // Uniform in [0, n), n >= 1, unbiased (Lemire's multiply-and-reject) on 32-bit draws: each next() gives two, so a
  // bootstrap drawing a billion indices pays half the generator's cost.
  uint32_t below(uint32_t n) {
    uint64_t m = static_cast<uint64_t>(next32()) * n;
    auto low = static_cast<uint32_t>(m);
    if (low < n) {
      const uint32_t threshold = static_cast<uint32_t>(-n) % n;
      while (low < threshold) {
        m = static_cast<uint64_t>(next32()) * n;
        low = static_cast<uint32_t>(m);
      }
    }
    return static_cast<uint32_t>(m >> 32);
  }
  bool bernoulli(double p) { return uniform() < p; }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static uint64_t mix(uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  uint32_t next32() {
    if (have_half_) {
      have_half_ = false;
      return static_cast<uint32_t>(half_);
    }
    half_ = next();
    have_half_ = true;
    return static_cast<uint32_t>(half_ >> 32);
  }
  void reseed(uint64_t seed) {
    uint64_t z = seed;
    for (auto& s : s_) {
      z = mix(z);
      s = z;
    }
  }
  uint64_t s_[4];
  uint64_t half_ = 0;  // next32()'s unused low half
  bool have_half_ = false;
};

}  // namespace orch
