// Progress reporting for long work: a redrawn bar with an ETA when stderr is a terminal, plain periodic log
// lines otherwise (Slurm logs, CI). Thread-safe: advance() may be called from worker threads.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>

namespace orch {

class Progress {
 public:
  Progress(std::string label, size_t total, bool enabled = true);
  ~Progress();
  void advance(size_t n = 1, const std::string& note = "");
  void finish();

 private:
  void draw(bool final_line);
  std::string label_;
  size_t total_;
  std::atomic<size_t> done_{0};
  std::mutex mu_;
  std::string note_;
  bool tty_;
  bool finished_ = false;
  bool enabled_ = true;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

// Runs fn(i) for i in [0, n) on `threads` threads (dynamic assignment); rethrows the first exception after
// all threads stop. threads <= 1 runs inline.
void parallel_for(size_t n, int threads, const std::function<void(size_t)>& fn);

// The most threads any option may ask for (a larger value is an input error, not an abort).
constexpr int kMaxThreads = 1024;

// Number of worker threads to use by default: the hardware concurrency, at least 1.
int default_threads();

}  // namespace orch
