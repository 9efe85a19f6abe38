"""Shared helpers of the Python checks: the orchestrator binary, a scratch folder, a tiny test runner."""
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback

BIN = os.environ.get("ORCH_BIN", "build/cli/orchestrator")
SHARED = os.environ.get("ORCH_SHARED_DIR", os.path.join(os.path.dirname(__file__), "../../../shared"))
SOURCE = os.environ.get("ORCH_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "../.."))


def kill_at_rename(env, when, n, substring):
    """`env` with the fault injector tests/faults/kill_at_rename.c preloaded: the process (and each process it
    starts, counting its own) dies by SIGKILL at the n-th rename onto a path containing `substring`, "before" it
    (the temporary complete, not published) or "after" it (published, the caller not yet told)."""
    lib = os.environ.get("ORCH_KILL_AT_RENAME_LIB",
                         os.path.join(os.path.dirname(BIN), "..", "tests", "libkill_at_rename.so"))
    assert os.path.exists(lib), f"the fault injector {lib} is not built"
    return dict(env, LD_PRELOAD=os.path.abspath(lib), ORCH_TEST_KILL_AT_RENAME=f"{when}:{n}:{substring}")


def stop_at_open(env, n, substring):
    """`env` with the fault injector tests/faults/stop_at_open.c preloaded: the process stops itself (SIGSTOP) just
    before its n-th open of a path containing `substring`; SIGCONT continues it."""
    lib = os.environ.get("ORCH_STOP_AT_OPEN_LIB", os.path.join(os.path.dirname(BIN), "..", "tests", "libstop_at_open.so"))
    assert os.path.exists(lib), f"the fault injector {lib} is not built"
    return dict(env, LD_PRELOAD=os.path.abspath(lib), ORCH_TEST_STOP_AT_OPEN=f"{n}:{substring}")


def training_faults(env=None, stop_after=None, nan_at=None):
    """`env` (default: this process's) with tests/faults/training_faults.cpp preloaded: each training attempt in the
    process acts as if SIGTERM came after `stop_after` steps, and/or makes the loss of step `nan_at` NaN."""
    lib = os.environ.get("ORCH_TRAINING_FAULTS_LIB",
                         os.path.join(os.path.dirname(BIN), "..", "tests", "libtraining_faults.so"))
    assert os.path.exists(lib), f"the fault injector {lib} is not built"
    spec = ",".join(f"{k}={v}" for k, v in (("stop_after", stop_after), ("nan_at", nan_at)) if v is not None)
    return dict(env if env is not None else os.environ, LD_PRELOAD=os.path.abspath(lib), ORCH_TEST_TRAINING_FAULTS=spec)


def orch(*args, check=True, env=None):
    p = subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, env=env)
    if check and p.returncode != 0:
        raise AssertionError(f"orchestrator {' '.join(map(str, args))} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


def cli(*args, env=None, check=True, timeout=600):
    """orchestrator with `env` (default: this process's), its output captured; fails the test on a non-zero exit."""
    p = subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"orchestrator {' '.join(map(str, args))} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


def start(*args, env=None):
    """A command in its own process group (so a test can kill -9 the pool and its workers alike)."""
    return subprocess.Popen([BIN, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)


def store(ws):
    return sqlite3.connect(os.path.join(ws, "orchestrator.db"), timeout=30)


def wait_until(pred, timeout=120, what="condition"):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def scratch():
    return tempfile.TemporaryDirectory(prefix="orch-py-")


def run(tests):
    """Runs test functions; prints 'N passed, N failed' and exits non-zero on failure."""
    passed = failed = 0
    only = os.environ.get("ORCH_TEST_ONLY", "")  # comma-separated names: run just those (debugging)
    if only:
        tests = [t for t in tests if t.__name__ in only.split(",")]
    for t in tests:
        try:
            t()
            passed += 1
            print(f"PASS {t.__name__}")
        except Exception:
            failed += 1
            print(f"FAIL {t.__name__}")
            traceback.print_exc()
    print(f"{passed} passed, {failed} failed")
    if failed:
        sys.exit(1)
