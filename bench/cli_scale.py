#!/usr/bin/python3
"""The grid commands as a user runs them, at the sizes sweeps reach, each command a separate process, timed with its
peak RSS. experiments/demo.json widened to many seeds, on the Slurm backend; several binaries (say, the previous
commit's and this one's) run back to back on the same workspaces, so both sides of a comparison come from one run.

  bench/cli_scale.py --bin new=build/cli/orchestrator [--bin old=/path/to/old/orchestrator] \
      [--runs 1000,10000,100000] [--skip old:100000] [--timeout 600] [--filled] [--keep DIR]

Each workspace holds calibration rows of every network (so `status` estimates the time left). First, with nothing
submitted: `plan`, `plan --estimate`, `status`, `status --json`. With --filled, then: `submit` to a fake Slurm
(sbatch, sacct, squeue and scontrol stand-ins on PATH that answer at once: every task pending), `status` and
`status --json` with every run queued, `cancel`, and, after every run is marked done with per-image test metrics
written straight into the store (48 test images, two organs; every epoch's row; empty artefact files),
`status`, `status --json` and `report --no-figures`.
A command past --timeout is reported as such."""
import argparse
import contextlib
import json
import shutil
import sqlite3
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
    doc["backend"] = "slurm"
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


def run_measured(cmd, timeout, env=None):
    """Runs `cmd` under /usr/bin/time for its peak RSS."""
    t0 = time.time()
    p = subprocess.Popen(["/usr/bin/time", "-f", "%M", *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True, start_new_session=True, env=env)
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


FAKE_SBATCH = """#!/usr/bin/python3
import os, sys
d = os.environ["FAKE_SLURM_DIR"]
n = len(os.listdir(d))
open(os.path.join(d, str(9000 + n)), "w").write(sys.argv[-1])
print(9000 + n)
"""
# Every task of every array the fake sbatch accepted: pending (sacct -P format, or squeue's).
FAKE_SACCT = """#!/usr/bin/python3
import os, sys
d = os.environ["FAKE_SLURM_DIR"]
wanted = set(sys.argv[sys.argv.index("-j") + 1].split(",")) if "-j" in sys.argv else None
out = []
for job in os.listdir(d):
    if wanted is not None and job not in wanted:
        continue
    tasks = len(open(open(os.path.join(d, job)).read()).read().splitlines())
    out.extend(f"{job}_{i}|PENDING|0|Unknown|Unknown|" for i in range(tasks))
print("\\n".join(out))
"""
FAKE_QUIET = "#!/bin/sh\nexit 0\n"


def fake_slurm(tmp):
    bin_dir, state = os.path.join(tmp, "fakebin"), os.path.join(tmp, "fakestate")
    os.makedirs(bin_dir, exist_ok=True)
    os.makedirs(state, exist_ok=True)
    for name, text in (("sbatch", FAKE_SBATCH), ("sacct", FAKE_SACCT), ("squeue", FAKE_QUIET), ("scontrol", FAKE_QUIET),
                       ("scancel", FAKE_QUIET)):
        path = os.path.join(bin_dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o755)
    return dict(os.environ, PATH=bin_dir + ":" + os.environ["PATH"], FAKE_SLURM_DIR=state)


def mark_done(ws, images=48):
    """Every run of the store done as workers leave them: the attempt that trained it, its epochs' rows (training
    loss, validation criterion, seconds), per-image test metrics and inference times, the metric aggregates a worker
    writes with them (schema 5 on), and its best checkpoint and predictions as files (empty: `status` checks that
    they exist, the report reads the store)."""
    db = sqlite3.connect(os.path.join(ws, "orchestrator.db"))
    runs = [(r, json.loads(s).get("training", {}).get("epochs", 1)) for r, s in db.execute("SELECT run_id, settings_json FROM runs")]
    ids = [r for r, _ in runs]
    db.execute("UPDATE runs SET state = 'done', claim_attempt = NULL")
    # The attempt that trained it, ended (what ClaimsTable::finish_done leaves): status reads each run's attempts.
    db.execute("INSERT INTO attempts(run_id, ended_at, host, pid, job_id, exit_status, holder, backend, heartbeat_at, "
               "started_unix, ended_unix, start_epoch, start_batch, end_epoch, end_batch) SELECT r.run_id, "
               "strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), 'node1', 4242, COALESCE((SELECT MAX(j.job_id) FROM jobs j "
               "WHERE j.run_id = r.run_id), ''), 0, 'node1:4242:1', 'slurm', 1.7e9, 1.7e9, 1.7e9 + 600, 0, 0, 1, 0 "
               "FROM runs r")
    attempt = dict(db.execute("SELECT run_id, MAX(attempt_id) FROM attempts GROUP BY run_id"))
    db.executemany("INSERT OR REPLACE INTO epoch_metrics(run_id, attempt_id, epoch, train_loss, val_criterion, "
                   "learning_rate, seconds) VALUES (?, ?, ?, ?, ?, 1e-4, 2.5)",
                   ((r, attempt[r], e, 1.0 / e, 1.0 / e + 0.01) for r, epochs in runs for e in range(1, epochs + 1)))
    rows = ((r, f"img{i:03d}", organ, 0.9 + (hash((r, i)) % 100) / 2000, 0.8, 5.0 + i % 7)
            for r in ids for i in range(images) for organ in ("lungs", "heart"))
    db.executemany("INSERT OR REPLACE INTO test_metrics VALUES (?, ?, ?, ?, ?, ?)", rows)
    db.executemany("INSERT INTO inference_times(run_id, image_id, seconds) VALUES (?, ?, ?)",
                   ((r, f"img{i:03d}", 0.01) for r in ids for i in range(images)))
    if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'metric_aggregates'").fetchone():
        # What MetricsTable writes with a run's rows (storage/metrics_table.cpp), for every run at once.
        db.execute("INSERT OR REPLACE INTO metric_aggregates(run_id, organ, dice, jaccard, hausdorff_mm, images, "
                   "hausdorff_defined) SELECT run_id, organ, AVG(dice), AVG(jaccard), AVG(hausdorff_mm), COUNT(*), "
                   "COUNT(hausdorff_mm) FROM test_metrics GROUP BY run_id, organ")
        timed = "FROM epoch_metrics e WHERE e.run_id = i.run_id AND e.seconds > 0 AND e.seconds < 1e300"
        db.execute("INSERT OR REPLACE INTO metric_aggregates(run_id, organ, inference_s, inference_cold_s, "
                   "inference_launch_all_s, device, epoch_seconds, epochs_timed) SELECT i.run_id, '', "
                   "AVG(CASE WHEN i.cold = 0 THEN i.seconds END), MAX(CASE WHEN i.cold = 1 THEN i.seconds END), "
                   f"AVG(i.launch_seconds), MAX(i.device), (SELECT SUM(e.seconds) {timed}), (SELECT COUNT(*) {timed}) "
                   "FROM inference_times i GROUP BY i.run_id")
    db.commit()
    db.close()
    for r in ids:
        run_dir = os.path.join(ws, "runs", r)
        os.makedirs(os.path.join(run_dir, "checkpoints"), exist_ok=True)
        for name in (os.path.join("checkpoints", "best.h5"), "predictions.h5"):
            open(os.path.join(run_dir, name), "w").close()


def timed(label, n, name, cmd, timeout, env=None):
    wall, rss = run_measured(cmd, timeout, env)
    shown = f"{'>' + str(int(timeout)):>8}" if wall is None else f"{wall:>8.2f} {rss:>9.0f}"
    print(f"{n:>8} {name:>6} {label:>24} {shown}")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", action="append", required=True, help="name=path of an orchestrator binary")
    ap.add_argument("--runs", default="1000,10000,100000")
    ap.add_argument("--skip", action="append", default=[], help="name:runs pairs not to run (known too slow)")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--filled", action="store_true", help="also submit, cancel, fill the store and report")
    ap.add_argument("--keep", metavar="DIR", help="build the workspaces in DIR (new) and keep them, to profile a "
                    "command on them afterwards (each has its experiment, exp<N>.json, and fake Slurm, fakebin/)")
    a = ap.parse_args()
    bins = [b.split("=", 1) for b in a.bin]
    sizes = [int(x) for x in a.runs.split(",")]
    skip = {tuple(s.split(":")) for s in a.skip}
    print(f"{'runs':>8} {'binary':>6} {'command':>24} {'wall s':>8} {'peak MiB':>9}")
    if a.keep:
        os.makedirs(a.keep)
    with (contextlib.nullcontext(a.keep) if a.keep else tempfile.TemporaryDirectory(prefix="orch-bench-")) as tmp:
        cal = calibration(tmp)
        for size in sizes:
            for name, path in bins:
                if (name, str(size)) in skip:
                    print(f"{size:>8} {name:>6} {'(skipped)':>24}")
                    continue
                run_dir = os.path.join(tmp, f"{name}-{size}")
                os.makedirs(run_dir)
                exp, ws, n = experiment(run_dir, size)
                subprocess.run([path, "calibrate", exp, "--import", cal], check=True, capture_output=True)
                for label, extra in (("plan", []), ("plan --estimate", ["--estimate"]), ("status", []),
                                     ("status --json", ["--json"])):
                    timed(label, n, name, [path, label.split()[0], exp, *extra], a.timeout)
                if not a.filled:
                    continue
                env = fake_slurm(run_dir)
                timed("submit (fake Slurm)", n, name, [path, "submit", exp], a.timeout, env)
                timed("status, all queued", n, name, [path, "status", exp], a.timeout, env)
                timed("status --json, all queued", n, name, [path, "status", exp, "--json"], a.timeout, env)
                timed("cancel", n, name, [path, "cancel", exp], a.timeout, env)
                mark_done(ws)
                timed("status, all done", n, name, [path, "status", exp], a.timeout, env)
                timed("status --json, all done", n, name, [path, "status", exp, "--json"], a.timeout, env)
                timed("report --no-figures", n, name, [path, "report", exp, "--no-figures"], a.timeout, env)
                if not a.keep:
                    shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
