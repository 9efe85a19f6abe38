#!/usr/bin/python3
"""The grid commands as a user runs them, at the sizes sweeps reach: `plan` and `status` (which estimates the time
left and simulates the makespan) of experiments/demo.json widened to many seeds, each command a separate process,
timed with its peak RSS. Several binaries (say, the previous commit's and this one's) are run back to back on the
same workspaces, so both sides of a comparison come from one run.

  bench/cli_scale.py --bin new=build/cli/orchestrator [--bin old=/path/to/old/orchestrator] \
      [--runs 1000,10000,100000] [--skip old:100000] [--timeout 600]

Each workspace holds the experiment's store with calibration rows of every network (so `status` has estimates);
no run is done or dispatched (a grid just planned). A command past --timeout is reported as such."""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
NETWORKS = ["hybridgnet", "hybridgnet_igsc", "unet", "unet_joint", "hourglass", "hourglass_concat", "multitask",
            "no_joint", "mse_only", "rasterize", "ours"]


def experiment(tmp, runs):
    doc = json.load(open(os.path.join(SOURCE, "experiments", "demo.json")))
    per_seed = len(doc["datasets"]) * len(doc["networks"])
    seeds = max(1, round(runs / per_seed))
    doc["seeds"] = list(range(1, seeds + 1))
    doc["workspace"] = os.path.join(tmp, f"ws{runs}")
    path = os.path.join(tmp, f"exp{runs}.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    return path, doc["workspace"], seeds * per_seed


def calibration(tmp):
    rows = [{"model": m, "kind": k, "size": 64, "batch": 4, "threads": 1, "device": "cpu", "step_s": 0.05,
             "validation_image_s": 0.004, "evaluation_image_s": 0.004, "host": "bench"}
            for m in NETWORKS for k in ("lh", "l")]
    path = os.path.join(tmp, "calibration.json")
    with open(path, "w") as f:
        json.dump(rows, f)
    return path


def run_measured(cmd, timeout):
    """Runs `cmd` under /usr/bin/time for its peak RSS."""
    t0 = time.time()
    p = subprocess.Popen(["/usr/bin/time", "-f", "%M", *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True, start_new_session=True)
    try:
        _, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, 9)  # /usr/bin/time and the command alike
        p.communicate()
        return None, None
    wall = time.time() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {p.returncode}: {err[-2000:]}")
    rss_kib = int(err.strip().splitlines()[-1])
    return wall, rss_kib / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", action="append", required=True, help="name=path of an orchestrator binary")
    ap.add_argument("--runs", default="1000,10000,100000")
    ap.add_argument("--skip", action="append", default=[], help="name:runs pairs not to run (known too slow)")
    ap.add_argument("--timeout", type=float, default=600)
    a = ap.parse_args()
    bins = [b.split("=", 1) for b in a.bin]
    sizes = [int(x) for x in a.runs.split(",")]
    skip = {tuple(s.split(":")) for s in a.skip}
    print(f"{'runs':>8} {'binary':>6} {'command':>8} {'wall s':>8} {'peak MiB':>9}")
    with tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp:
        cal = calibration(tmp)
        for size in sizes:
            exp, ws, n = experiment(tmp, size)
            first = bins[0][1]
            subprocess.run([first, "calibrate", exp, "--import", cal], check=True, capture_output=True)
            for name, path in bins:
                for command in ("plan", "status"):
                    if (name, str(size)) in skip:
                        print(f"{n:>8} {name:>6} {command:>8} {'skipped':>8}")
                        continue
                    wall, rss = run_measured([path, command, exp], a.timeout)
                    if wall is None:
                        print(f"{n:>8} {name:>6} {command:>8} {'>' + str(int(a.timeout)):>8}")
                    else:
                        print(f"{n:>8} {name:>6} {command:>8} {wall:>8.2f} {rss:>9.0f}")
                    sys.stdout.flush()


if __name__ == "__main__":
    main()
