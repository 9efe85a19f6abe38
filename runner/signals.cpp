#include "runner/signals.h"

#include <atomic>
#include <csignal>
#include <initializer_list>

namespace orch::runner {

namespace {
std::atomic<int> g_stop{0};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs a lock-free flag");
extern "C" void on_stop_signal(int sig) {
  int expected = 0;
  g_stop.compare_exchange_strong(expected, sig);
}
}  // namespace

void install_stop_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int s : {SIGTERM, SIGUSR1, SIGUSR2, SIGINT}) sigaction(s, &sa, nullptr);
}

int stop_signal() { return g_stop.load(); }

void request_stop(int sig) { on_stop_signal(sig); }

void clear_stop() { g_stop.store(0); }

const char* signal_name(int sig) {
  switch (sig) {
    case SIGTERM: return "SIGTERM";
    case SIGUSR1: return "SIGUSR1";
    case SIGUSR2: return "SIGUSR2";
    case SIGINT: return "SIGINT";
    default: return "signal";
  }
}

}  // namespace orch::runner
