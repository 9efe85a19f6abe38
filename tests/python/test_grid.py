"""Experiment grids on the local backend: plan, submit (idempotent), dependencies honoured, status, a pool
stopped mid-run and resumed, the report's files, and an injection attempt through the experiment."""
import glob
import json
import os
import signal
import sqlite3
import struct
import subprocess
import time

from common import BIN, SOURCE, orch, run, scratch
from run_id_cases import CASES
from write_run_ids import ids_of

EXP = {
    "name": "grid-test",
    "datasets": {
        "a": {"kind": "lh", "size": 64, "synthetic": {"count": 20, "seed": 3, "size": 64}},
        "b": {"kind": "l", "size": 64, "synthetic": {"count": 20, "seed": 4, "size": 64}},
    },
    "networks": ["hybridgnet", "unet", "ours"],
    "seeds": [1, 2],
    "training": {"epochs": 2, "threads": 1, "loader_threads": 1, "device": "cpu"},
}


def write_exp(tmp, exp=EXP):
    path = os.path.join(tmp, "exp.json")
    exp = dict(exp, workspace=os.path.join(tmp, "ws"))
    with open(path, "w") as f:
        json.dump(exp, f)
    return path, exp["workspace"]


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", head[16:24])


def test_plan_submit_status_report():
    with scratch() as tmp:
        exp, ws = write_exp(tmp)
        plan = json.loads(orch("plan", exp, "--json").stdout)
        assert len(plan) == 3 * 2 * 2, "the UNet of seed 1 is also the pretrained one"
        by_id = {r["id"]: r for r in plan}
        for r in plan:
            assert {"id", "dataset", "model", "seed", "stage", "depends_on", "state", "action"} <= r.keys()
            assert r["state"] == "new" and r["action"] == "submit"
            if r["model"] == "ours":
                (dep,) = r["depends_on"]
                assert by_id[dep]["model"] == "unet" and by_id[dep]["seed"] == 1 and by_id[dep]["stage"] == "train"
                assert by_id[dep]["dataset"] == r["dataset"]
        narrowed = json.loads(orch("plan", exp, "--json", "--only", "model=ours", "--only", "dataset=a").stdout)
        assert sorted(r["model"] for r in narrowed) == ["ours", "ours", "unet"], "ours plus its pretrained UNet"

        p = orch("submit", exp, "--workers", "2")
        assert "12 done, 0 failed" in p.stdout, p.stdout
        again = orch("submit", exp, "--workers", "2")
        assert "submit: 0 run(s)" in again.stdout, again.stdout
        status = json.loads(orch("status", exp, "--json").stdout)
        assert all(r["state"] == "done" for r in status) and len(status) == 12

        db = sqlite3.connect(os.path.join(ws, "orchestrator.db"))
        # No joint network started before its UNet finished.
        for run_id, dep in db.execute("SELECT run_id, depends_on FROM runs WHERE depends_on != ''"):
            (started,) = db.execute("SELECT MIN(started_at) FROM attempts WHERE run_id = ?", (run_id,)).fetchone()
            (ended,) = db.execute("SELECT MAX(ended_at) FROM attempts WHERE run_id = ? AND exit_status = 0", (dep,)).fetchone()
            assert ended is not None and started >= ended, (run_id, started, dep, ended)

        rep = orch("report", exp)
        assert "Table 1. a" in rep.stdout and "Table 2. b" in rep.stdout
        files = os.listdir(os.path.join(ws, "report"))
        for f in ["tables.md", "tables.csv", "tables.tex", "paper_comparison.csv", "qualitative_a.png", "curves_b.png"]:
            assert f in files, files
        w, h = png_size(os.path.join(ws, "report", "qualitative_a.png"))
        assert (w, h) == (90 + 3 * 186, 34 + 3 * 186 + 24), (w, h)
        with open(os.path.join(ws, "report", "tables.csv")) as f:
            lines = f.read().splitlines()
        assert lines[0] == "table,dataset,model,organ,metric,mean,std,n_seeds"
        assert len(lines) == 1 + 3 * 6 + 3 * 4  # LH: 6 values per network; L: 3 plus inference
        assert db.execute("SELECT COUNT(*) FROM median_models WHERE experiment = 'grid-test'").fetchone()[0] == 6


def test_pool_stopped_then_resumed():
    with scratch() as tmp:
        exp_doc = dict(EXP, networks=["unet"], seeds=[1, 2], training=dict(EXP["training"], epochs=30))
        exp_doc["datasets"] = {"a": EXP["datasets"]["a"]}
        exp, ws = write_exp(tmp, exp_doc)
        p = subprocess.Popen([BIN, "submit", exp, "--workers", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 120
        while time.time() < deadline:
            logs = glob.glob(os.path.join(ws, "runs", "*", "log.txt"))
            if any("epoch 2/30" in open(l).read() for l in logs):
                break
            time.sleep(0.05)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=120)
        assert "stopping" in err, err
        status = {r["id"]: r for r in json.loads(orch("status", exp, "--json").stdout)}
        states = sorted(r["state"] for r in status.values())
        assert "done" not in states or states.count("done") < 2, states
        plan = json.loads(orch("plan", exp, "--json").stdout)
        assert any(r["action"] == "submit" for r in plan)
        r = orch("resume", exp)  # continues the interrupted run from its checkpoint
        assert ", 0 failed" in r.stdout, r.stdout
        status = json.loads(orch("status", exp, "--json").stdout)
        assert [s["state"] for s in status].count("done") >= 1, status
        assert all(s["state"] in ("done", "new") for s in status), status
        orch("submit", exp)  # what never started
        status = json.loads(orch("status", exp, "--json").stdout)
        assert all(s["state"] == "done" for s in status), status
        db = sqlite3.connect(os.path.join(ws, "orchestrator.db"))
        reasons = [row[0] for row in db.execute("SELECT reason FROM attempts")]
        assert any("SIGTERM" in x for x in reasons), reasons
        logs = "".join(open(l).read() for l in glob.glob(os.path.join(ws, "runs", "*", "log.txt")))
        assert "resuming from" in logs


def test_injection_through_the_experiment_runs_nothing():
    with scratch() as tmp:
        target = os.path.join(tmp, "pwned")
        doc = dict(EXP, name=f'x"; touch {target}; "')
        exp, ws = write_exp(tmp, doc)
        p = orch("submit", exp, check=False)
        assert p.returncode == 2 and "name" in p.stderr and "letters, digits" in p.stderr, p.stderr
        doc = dict(EXP)
        doc["datasets"] = {f'x"; touch {target}; "': EXP["datasets"]["a"]}
        exp, ws = write_exp(tmp, doc)
        p = orch("submit", exp, check=False)
        assert p.returncode == 2 and "datasets." in p.stderr, p.stderr
        doc["datasets"] = {"a": EXP["datasets"]["a"]}
        doc["networks"] = [f'unet"; touch {target}; "']
        exp, ws = write_exp(tmp, doc)
        p = orch("submit", exp, check=False)
        assert p.returncode == 2 and "networks" in p.stderr, p.stderr
        assert not os.path.exists(target)


def test_runs_packed_on_one_gpu_share_it_and_its_hours():
    """resources.runs_per_gpu on the local pool: two workers per GPU index at most, each told its GPU and that it
    shares it; attempts and the pool's accounting carry half a GPU each. (CPU training: the GPU is only assigned.)"""
    with scratch() as tmp:
        exp_doc = dict(EXP, networks=["hybridgnet"], seeds=[1, 2, 3],
                       resources={"gpus": 1, "runs_per_gpu": 2, "local_gpus": [0]})
        exp, ws = write_exp(tmp, exp_doc)
        p = orch("submit", exp)
        assert "6 done, 0 failed" in p.stdout and "(2 worker(s))" in p.stdout, p.stdout
        db = sqlite3.connect(os.path.join(ws, "orchestrator.db"))
        gpus = [g for (g,) in db.execute("SELECT gpus FROM attempts")]
        assert gpus == [0.5] * 6, gpus
        accounted = [g for (g,) in db.execute("SELECT gpus FROM job_accounts WHERE backend = 'local'")]
        assert accounted == [0.5] * 6, accounted
        spans = sorted(db.execute("SELECT started_unix, ended_unix FROM attempts"))
        for i, (start, _) in enumerate(spans):  # never more than two at once
            assert sum(s <= start < e for s, e in spans[:i]) <= 1, spans


def test_a_sweep_plans_trains_narrows_and_reports_per_point():
    """A 2-point sweep of the learning rate with early stopping: plan and status list the points, --only narrows to
    one, a key that does not exist is refused naming it, and the report writes each point's tables and the summary,
    with every run's convergence in runs.csv."""
    with scratch() as tmp:
        doc = dict(EXP, networks={"hybridgnet": {}}, seeds=[1], datasets={"b": EXP["datasets"]["b"]},
                   training=dict(EXP["training"], epochs=6, early_stop={"patience": 1, "min_delta": 1.0}),
                   sweep={"training.learning_rate": [1e-4, 3e-4]})
        exp, ws = write_exp(tmp, doc)
        plan = orch("plan", exp)
        assert "sweep: 2 point(s)" in plan.stdout and "training.learning_rate=0.0003" in plan.stdout, plan.stdout
        only = json.loads(orch("plan", exp, "--json", "--only", "training.learning_rate=1e-4").stdout)
        assert [r["sweep_points"] for r in only] == [["training.learning_rate=0.0001"]], only
        bad = orch("plan", exp, "--set", "sweep={\"training.learning_rat\": [0.1]}", check=False)
        assert bad.returncode == 2 and "training.learning_rat" in bad.stderr and "Abort" not in bad.stderr, bad.stderr
        bad = orch("plan", exp, "--only", "training.lr_gamma=0.5", check=False)
        assert bad.returncode == 2 and "training.lr_gamma" in bad.stderr, bad.stderr

        orch("submit", exp, "--workers", "2")
        status = json.loads(orch("status", exp, "--json").stdout)
        assert len(status) == 2 and all(r["state"] == "done" for r in status), status
        assert all(r["epochs_done"] == 2 for r in status), "early stop after epoch 2 of 6"
        assert "sweep: 2 point(s)" in orch("status", exp).stdout

        orch("report", exp, "--no-figures")
        rep = os.path.join(ws, "report")
        for f in ["sweep.md", "sweep.csv", "sweep.tex", "sweep.html"]:
            assert os.path.exists(os.path.join(rep, f)), f
        for point in ["01-training.learning_rate=0.0001", "02-training.learning_rate=0.0003"]:
            for f in ["tables.md", "report.html", "runs.csv"]:
                assert os.path.exists(os.path.join(rep, "sweep", point, f)), (point, f)
        with open(os.path.join(rep, "sweep.csv")) as f:
            rows = f.read().splitlines()
        assert rows[0] == "dataset,model,point,training.learning_rate,metric,value,n_seeds,best", rows
        assert [r.split(",")[:4] for r in rows[1:]] == [["b", "hybridgnet", "1", "0.0001"], ["b", "hybridgnet", "2", "0.0003"]]
        with open(os.path.join(rep, "sweep", "01-training.learning_rate=0.0001", "runs.csv")) as f:
            runs = f.read().splitlines()
        header = runs[0].split(",")
        (row,) = [dict(zip(header, r.split(","))) for r in runs[1:]]
        assert row["epochs"] == "2" and row["planned_epochs"] == "6" and row["plateau"] in ("yes", "no"), row


def test_run_ids_are_those_pinned_before_the_typed_experiment():
    """tests/fixtures/run_ids.json holds the ids the parser gave before it became typed (issue 21); a change in how
    a setting is written into a run's settings would change ids and retrain every existing workspace."""
    with open(os.path.join(SOURCE, "tests", "fixtures", "run_ids.json")) as f:
        pinned = json.load(f)
    assert set(pinned) == set(CASES), sorted(pinned)
    for name, (path, sets) in CASES.items():
        with scratch() as tmp:
            ids = ids_of(path, sets, os.path.join(tmp, "ws"))
        assert ids == pinned[name], (name, sorted(set(ids) ^ set(pinned[name]))[:6])


if __name__ == "__main__":
    run([test_run_ids_are_those_pinned_before_the_typed_experiment, test_a_sweep_plans_trains_narrows_and_reports_per_point, test_plan_submit_status_report, test_pool_stopped_then_resumed, test_injection_through_the_experiment_runs_nothing,
         test_runs_packed_on_one_gpu_share_it_and_its_hours])
