#!/usr/bin/env python3
"""How close `plan --estimate` from `orchestrator calibrate` comes to the measured time of each run (issue 14).

Usage: bench/estimate_accuracy.py ORCHESTRATOR EXPERIMENT MEASURED_WORKSPACE

Calibrates EXPERIMENT in a fresh scratch workspace on this machine (the threads a local pool worker gets), asks
`plan --estimate --json` for each run there (no finished runs, so calibration alone is the basis), and compares
each estimate with the wall time the local pool accounted for that run in MEASURED_WORKSPACE (its job_accounts:
from the worker's start to its exit). Run it after `orchestrator run EXPERIMENT` on an otherwise idle machine.
"""
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    binary, experiment, measured_ws = sys.argv[1:]
    db = sqlite3.connect(os.path.join(measured_ws, "orchestrator.db"))
    measured = {}
    for run_id, seconds in db.execute("SELECT run_id, SUM(elapsed_s) FROM job_accounts WHERE backend = 'local' GROUP BY run_id"):
        measured[run_id] = seconds
    scratch = tempfile.mkdtemp(prefix="orch-estimate-")
    try:
        cal = subprocess.run([binary, "calibrate", experiment, "--workspace", scratch], capture_output=True, text=True, check=True)
        plan = json.loads(subprocess.run([binary, "plan", experiment, "--workspace", scratch, "--estimate", "--json"],
                                         capture_output=True, text=True, check=True).stdout)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(cal.stdout.strip().split("\n")[-1])
    print(f"{'run':44s} {'estimate':>9s} {'measured':>9s} {'ratio':>6s}")
    ratios = []
    for r in plan:
        est = r.get("estimate", {}).get("seconds", 0)
        got = measured.get(r["id"])
        if not est or not got:
            print(f"{r['id']:44s} {est:9.1f} {'-':>9s}")
            continue
        ratios.append(est / got)
        print(f"{r['id']:44s} {est:8.1f}s {got:8.1f}s {est / got:6.2f}")
    if not ratios:
        sys.exit("no run has both an estimate and a measured time")
    inside = sum(0.7 <= x <= 1.3 for x in ratios)
    print(f"\n{len(ratios)} run(s): estimate / measured median {statistics.median(ratios):.2f}, "
          f"min {min(ratios):.2f}, max {max(ratios):.2f}; within ±30 %: {inside}/{len(ratios)}; "
          f"grid total {sum(r.get('estimate', {}).get('seconds', 0) for r in plan if r['id'] in measured):.0f} s "
          f"estimated against {sum(measured[r['id']] for r in plan if r['id'] in measured):.0f} s measured")


if __name__ == "__main__":
    main()
