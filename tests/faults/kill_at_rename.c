/* A fault injector for the process tests, loaded with LD_PRELOAD: it kills its process by SIGKILL at a chosen
 * rename(2), the call that publishes every atomically written file (core/atomic_file.cpp), so that a test can
 * kill -9 a real worker exactly inside or exactly after a checkpoint write without any fault flag in the
 * product. Configured by one environment variable, read at the first rename:
 *
 *   ORCH_TEST_KILL_AT_RENAME=<when>:<n>:<substring>
 *     when       "before": the temporary file is complete on disk and not yet renamed into place;
 *                "after":  the rename succeeded (the file is published) and the caller has not yet returned.
 *     n          the n-th rename (counted from 1) whose target path contains <substring>.
 *     substring  for example "/checkpoints/ckpt-" (numbered checkpoints) or "/checkpoints/" (best.h5 as well).
 *
 * Unset or malformed: renames pass through untouched (malformed also prints one line to stderr). Thread-safe:
 * the count is atomic. Every process that inherits the environment (a pool's workers) counts its own renames. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int (*rename_fn)(const char*, const char*);

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int active;
static int kill_after;
static long target_count;
static char substring[512];
static atomic_long seen;

static void parse(void) {
  const char* spec = getenv("ORCH_TEST_KILL_AT_RENAME");
  if (!spec || !*spec) return;
  char when[16];
  int used = 0;
  if (sscanf(spec, "%15[^:]:%ld:%n", when, &target_count, &used) != 2 || used == 0 || target_count < 1 ||
      (strcmp(when, "before") != 0 && strcmp(when, "after") != 0) || strlen(spec + used) >= sizeof substring) {
    fprintf(stderr, "kill_at_rename: ignoring ORCH_TEST_KILL_AT_RENAME=%s (want before|after:<n>:<substring>)\n", spec);
    return;
  }
  kill_after = strcmp(when, "after") == 0;
  strcpy(substring, spec + used);
  active = 1;
}

int rename(const char* from, const char* to) {
  static rename_fn real;
  if (!real) real = (rename_fn)dlsym(RTLD_NEXT, "rename");
  pthread_once(&once, parse);
  const int hit = active && to && strstr(to, substring) && atomic_fetch_add(&seen, 1) + 1 == target_count;
  if (hit && !kill_after) raise(SIGKILL);
  const int rc = real(from, to);
  if (hit && kill_after) raise(SIGKILL);
  return rc;
}
