"""Shared helpers of the Python checks: the orchestrator binary, a scratch folder, a tiny test runner."""
import os
import subprocess
import sys
import tempfile
import traceback

BIN = os.environ.get("ORCH_BIN", "build/cli/orchestrator")
SHARED = os.environ.get("ORCH_SHARED_DIR", os.path.join(os.path.dirname(__file__), "../../../shared"))
SOURCE = os.environ.get("ORCH_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "../.."))


def orch(*args, check=True):
    p = subprocess.run([BIN, *map(str, args)], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError(f"orchestrator {' '.join(map(str, args))} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


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
