#include "core/progress.h"

#include <unistd.h>

#include <cstdio>
#include <exception>
#include <thread>
#include <vector>

namespace orch {

Progress::Progress(std::string label, size_t total, bool enabled)
    : label_(std::move(label)), total_(total), tty_(::isatty(STDERR_FILENO) != 0), enabled_(enabled) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

Progress::~Progress() { finish(); }

void Progress::advance(size_t n, const std::string& note) {
  done_ += n;
  std::lock_guard<std::mutex> lock(mu_);
  if (!note.empty()) note_ = note;
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_draw_).count();
  if ((tty_ && since > 0.1) || (!tty_ && since > 10.0)) {
    last_draw_ = now;
    draw(false);
  }
}

void Progress::finish() {
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return;
  finished_ = true;
  draw(true);
}

void Progress::draw(bool final_line) {
  if (!enabled_) return;
  size_t done = done_.load();
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double frac = total_ ? static_cast<double>(done) / total_ : 1.0;
  double eta = done ? elapsed * (total_ - done) / done : 0;
  if (tty_) {
    constexpr int kWidth = 30;
    int fill = static_cast<int>(frac * kWidth);
    std::string bar(fill, '#');
    bar.resize(kWidth, '.');
    std::fprintf(stderr, "\r%s [%s] %zu/%zu %.0fs ETA %.0fs %s\033[K", label_.c_str(), bar.c_str(), done, total_,
                 elapsed, eta, note_.c_str());
    if (final_line) std::fprintf(stderr, "\n");
  } else {
    std::fprintf(stderr, "%s: %zu/%zu (%.0f%%) elapsed %.1fs eta %.1fs %s\n", label_.c_str(), done, total_,
                 100 * frac, elapsed, eta, note_.c_str());
  }
  std::fflush(stderr);
}

void parallel_for(size_t n, int threads, const std::function<void(size_t)>& fn) {
  if (threads <= 1 || n <= 1) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr first;
  std::mutex mu;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      for (;;) {
        size_t i = next++;
        if (i >= n || failed) return;
        try {
          fn(i);
        } catch (...) {
          std::lock_guard<std::mutex> lock(mu);
          if (!first) first = std::current_exception();
          failed = true;
        }
      }
    });
  for (auto& th : pool) th.join();
  if (first) std::rethrow_exception(first);
}

int default_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return n ? static_cast<int>(n) : 1;
}

}  // namespace orch
