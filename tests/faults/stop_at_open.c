/* A fault injector for the process tests, loaded with LD_PRELOAD: it stops its process (SIGSTOP, as a debugger, a
 * paused VM or a hung file system would) just before a chosen open(2), so that a test can freeze a real worker at
 * an exact point (for example while it evaluates, before it writes its predictions) and continue it later with
 * SIGCONT. No flag in the product. Configured by one environment variable, read at the first open:
 *
 *   ORCH_TEST_STOP_AT_OPEN=<n>:<substring>
 *     n          the n-th open (counted from 1) of a path containing <substring>, such as "predictions.h5.tmp-"
 *
 * Unset or malformed: opens pass through untouched (malformed also prints one line to stderr). Thread-safe: the
 * count is atomic. Every process that inherits the environment counts its own opens. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

typedef int (*open_fn)(const char*, int, ...);

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int active;
static long target_count;
static char substring[512];
static atomic_long seen;

static void parse(void) {
  const char* spec = getenv("ORCH_TEST_STOP_AT_OPEN");
  if (!spec || !*spec) return;
  int used = 0;
  if (sscanf(spec, "%ld:%n", &target_count, &used) != 1 || used == 0 || target_count < 1 ||
      strlen(spec + used) >= sizeof substring || !spec[used]) {
    fprintf(stderr, "stop_at_open: ignoring ORCH_TEST_STOP_AT_OPEN=%s (want <n>:<substring>)\n", spec);
    return;
  }
  strcpy(substring, spec + used);
  active = 1;
}

static void maybe_stop(const char* path) {
  pthread_once(&once, parse);
  if (active && path && strstr(path, substring) && atomic_fetch_add(&seen, 1) + 1 == target_count) raise(SIGSTOP);
}

static int forward(const char* name, const char* path, int flags, mode_t mode) {
  open_fn real = (open_fn)dlsym(RTLD_NEXT, name);
  return real(path, flags, mode);
}

/* open and open64 (what callers built with _FILE_OFFSET_BITS=64 reach) differ only in the symbol forwarded to. */
#define STOPPING_OPEN(name)                         \
  int name(const char* path, int flags, ...) {      \
    mode_t mode = 0;                                \
    if (flags & (O_CREAT | O_TMPFILE)) {            \
      va_list ap;                                   \
      va_start(ap, flags);                          \
      mode = va_arg(ap, mode_t);                    \
      va_end(ap);                                   \
    }                                               \
    maybe_stop(path);                               \
    return forward(#name, path, flags, mode);       \
  }

STOPPING_OPEN(open)
STOPPING_OPEN(open64)
