"""Writes tests/fixtures/run_ids.json from a build: run once with the build whose ids are the reference (the
parser before issue 21's refactoring). Usage: ORCH_BIN=... python3 tests/python/write_run_ids.py"""
import json
import os
import subprocess
import tempfile

from common import BIN, SOURCE
from run_id_cases import CASES


def ids_of(path, sets, tmp):
    args = [BIN, "plan", path, "--workspace", tmp, "--json"]
    for s in sets:
        args += ["--set", s]
    p = subprocess.run(args, capture_output=True, text=True, cwd=SOURCE, check=True)
    return sorted(r["id"] for r in json.loads(p.stdout))


if __name__ == "__main__":
    out = {}
    for name, (path, sets) in CASES.items():
        with tempfile.TemporaryDirectory() as tmp:
            out[name] = ids_of(path, sets, os.path.join(tmp, "ws"))
    with open(os.path.join(SOURCE, "tests", "fixtures", "run_ids.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
