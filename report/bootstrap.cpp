#include "report/bootstrap.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "core/rng.h"

namespace orch::report {

namespace {

constexpr size_t kBlock = 8;       // columns per kernel pass: two vectors of four
constexpr size_t kResamples = 4;   // resamples per kernel pass: 4 x 2 vectors of sums fill eight AVX2 registers
constexpr size_t kBatch = 16;      // resamples drawn at once: the values are read from memory once per batch
constexpr size_t kRowChunk = 128;  // rows per chunk: a chunk of values (48 KB at 48 units) stays in L1/L2 for the batch

using V4 = double __attribute__((vector_size(32)));  // GCC's vector extension: AVX2 registers, or SSE2 pairs

// On x86-64, a second copy for CPUs with AVX2 and FMA, chosen when the program loads; elsewhere (an ARM GPU node)
// the compiler's own vectors.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define ORCH_WITH_AVX2_CLONE __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define ORCH_WITH_AVX2_CLONE
#endif

// sums[k * stride + c] += the sum over rows [r0, r1) of counts[k * runs + r] x m[r][c], for kResamples resamples k
// from `counts` and `sums` on: how often each run was drawn, times its values, eight sums in registers.
ORCH_WITH_AVX2_CLONE
void weighted_sums(const Rows& m, size_t r0, size_t r1, size_t c0, const double* counts, double* sums) {
  const size_t runs = m.runs(), stride = m.stride();
  V4 s[kResamples][2];
  for (size_t k = 0; k < kResamples; ++k) {
    __builtin_memcpy(&s[k][0], sums + k * stride + c0, sizeof s[k][0]);
    __builtin_memcpy(&s[k][1], sums + k * stride + c0 + 4, sizeof s[k][1]);
  }
  for (size_t r = r0; r < r1; ++r) {
    V4 x0, x1;
    __builtin_memcpy(&x0, m.row(r) + c0, sizeof x0);
    __builtin_memcpy(&x1, m.row(r) + c0 + 4, sizeof x1);
    for (size_t k = 0; k < kResamples; ++k) {
      const double w = counts[k * runs + r];
      s[k][0] += w * x0;
      s[k][1] += w * x1;
    }
  }
  for (size_t k = 0; k < kResamples; ++k) {
    __builtin_memcpy(sums + k * stride + c0, &s[k][0], sizeof s[k][0]);
    __builtin_memcpy(sums + k * stride + c0 + 4, &s[k][1], sizeof s[k][1]);
  }
}

// Every batch resample's sums of one side: rows a chunk at a time, so each chunk of values is read from memory once
// for the whole batch (a pass over every value per resample read 0.4 TB from L3 for the 100,000-run benchmark).
void batch_sums(const Rows& m, const double* counts, double* sums) {
  std::fill(sums, sums + kBatch * m.stride(), 0.0);
  for (size_t r0 = 0; r0 < m.runs(); r0 += kRowChunk) {
    const size_t r1 = std::min(m.runs(), r0 + kRowChunk);
    for (size_t c0 = 0; c0 < m.stride(); c0 += kBlock)
      for (size_t k = 0; k < kBatch; k += kResamples)
        weighted_sums(m, r0, r1, c0, counts + k * m.runs(), sums + k * m.stride());
  }
}

// kBatch resamples at a time: how often each run of either side and each unit was drawn, then the sums.
struct Batch {
  std::vector<double> a, b;                  // kBatch x runs of a side
  std::vector<std::vector<uint32_t>> units;  // per resample, the units drawn
  std::vector<double> sa, sb;                // kBatch x stride
  Batch(const Rows& ra, const Rows& rb)
      : a(kBatch * ra.runs()), b(kBatch * rb.runs()), units(kBatch, std::vector<uint32_t>(ra.units())),
        sa(kBatch * ra.stride()), sb(kBatch * rb.stride()) {}
  // The advantage of each of the batch's resamples, appended to `out`.
  void advantages(const Rows& ra, const Rows& rb, std::vector<double>& out) {
    batch_sums(ra, a.data(), sa.data());
    batch_sums(rb, b.data(), sb.data());
    const auto na = static_cast<double>(ra.runs()), nb = static_cast<double>(rb.runs());
    for (size_t k = 0; k < kBatch; ++k) {
      const double* x = sa.data() + k * ra.stride();
      const double* y = sb.data() + k * rb.stride();
      double total = 0;
      for (uint32_t u : units[k]) total += x[u] / na - y[u] / nb;
      out.push_back(total / static_cast<double>(units[k].size()));
    }
  }
};

// The sums' rounding differs between the sides (each sums its own draws), so two sides of equal values differ by about
// 1e-16 of their size rather than by zero: an advantage within kNoise of the values' largest magnitude is zero, so
// such an interval is [0, 0] and never "supported" by rounding alone.
constexpr double kNoise = 1e-12;

double largest_magnitude(const Rows& m) {
  double x = 0;
  for (size_t r = 0; r < m.runs(); ++r)
    for (size_t u = 0; u < m.units(); ++u) x = std::max(x, std::abs(m.row(r)[u]));
  return x;
}

double snapped(double advantage, double scale) { return std::abs(advantage) <= kNoise * scale ? 0.0 : advantage; }

void check(const Rows& a, const Rows& b) {
  if (a.runs() == 0 || b.runs() == 0 || a.units() == 0 || a.units() != b.units())
    throw std::logic_error("bootstrap: both sides need runs and the same units");
}

}  // namespace

Rows::Rows(size_t runs, size_t units)
    : runs_(runs), units_(units), stride_((units + kBlock - 1) / kBlock * kBlock), v_(runs * stride_, 0.0) {
  if (runs > std::numeric_limits<uint32_t>::max()) throw std::length_error("bootstrap: more than 2^32 runs");
}

double advantage(const Rows& a, const Rows& b) {
  check(a, b);
  Batch batch(a, b);  // resample 0 takes every run and unit once; the others are empty and ignored
  std::fill(batch.a.begin(), batch.a.begin() + static_cast<long>(a.runs()), 1.0);
  std::fill(batch.b.begin(), batch.b.begin() + static_cast<long>(b.runs()), 1.0);
  for (uint32_t u = 0; u < a.units(); ++u) batch.units[0][u] = u;
  std::vector<double> out;
  batch.advantages(a, b, out);
  return snapped(out.front(), std::max(largest_magnitude(a), largest_magnitude(b)));
}

Interval bootstrap_interval(const Rows& a, const Rows& b, uint64_t seed, int resamples) {
  check(a, b);
  if (resamples < 1) throw std::logic_error("bootstrap: at least one resample");
  Rng random(seed);
  Batch batch(a, b);
  const auto na = static_cast<uint32_t>(a.runs()), nb = static_cast<uint32_t>(b.runs()), nu = static_cast<uint32_t>(a.units());
  std::vector<double> draws;
  draws.reserve(static_cast<size_t>(resamples) + kBatch);
  while (draws.size() < static_cast<size_t>(resamples)) {
    std::fill(batch.a.begin(), batch.a.end(), 0.0);
    std::fill(batch.b.begin(), batch.b.end(), 0.0);
    for (size_t k = 0; k < kBatch; ++k) {
      for (uint32_t i = 0; i < na; ++i) batch.a[k * na + random.below(na)] += 1;
      for (uint32_t i = 0; i < nb; ++i) batch.b[k * nb + random.below(nb)] += 1;
      for (auto& u : batch.units[k]) u = random.below(nu);
    }
    batch.advantages(a, b, draws);
  }
  draws.resize(static_cast<size_t>(resamples));
  const double scale = std::max(largest_magnitude(a), largest_magnitude(b));
  for (auto& d : draws) d = snapped(d, scale);
  std::sort(draws.begin(), draws.end());
  const auto n = static_cast<size_t>(resamples);
  return {draws[static_cast<size_t>(0.025 * static_cast<double>(n - 1))],
          draws[static_cast<size_t>(std::ceil(0.975 * static_cast<double>(n - 1)))]};
}

}  // namespace orch::report
