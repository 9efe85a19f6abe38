"""A grid that finishes unattended (issue 18), with real processes: a damaged data set ends its run with a clear
error instead of an abort, a hostile experiment file is refused, a hung (SIGSTOPped) local worker is judged lost
and taken over by `resume`, which kills it, and a worker frozen while it evaluates, then continued after another
worker took its run over, publishes nothing and exits 3."""
import glob
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time

import h5py
import numpy as np

import common
from common import BIN, run, scratch, stop_at_open

EXP = {
    "name": "unattended",
    "datasets": {"d": {"kind": "lh", "size": 64, "synthetic": {"count": 20, "seed": 3, "size": 64}}},
    "networks": ["hybridgnet"],
    "seeds": [1],
    "training": {"epochs": 2, "threads": 1, "loader_threads": 1, "device": "cpu"},
}
# Heartbeats every half second; a claim without one for 4 s is lost.
FAST = dict(os.environ, ORCH_HEARTBEAT_S="0.5", ORCH_LOST_AFTER_S="4", ORCH_LOCK_WAIT_S="120")
NOT_CLAIMED = 3


def write_exp(tmp, **changes):
    doc = dict(EXP, workspace=os.path.join(tmp, "ws"), **changes)
    path = os.path.join(tmp, "exp.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    return path, doc["workspace"]


def cli(*args, env=FAST, check=True, timeout=600):
    return common.cli(*args, env=env, check=check, timeout=timeout)


def start(*args, env=FAST):
    return common.start(*args, env=env)


db = common.store


def wait_until(pred, timeout=180, what="condition"):
    return common.wait_until(pred, timeout, what)


def count(con, sql):
    """A count from the store, 0 while its schema is not created yet (the file exists a moment before)."""
    try:
        return con.execute(sql).fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def proc_state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def only_status(exp):
    (row,) = json.loads(cli("status", exp, "--json").stdout)
    return row


def test_a_nan_landmark_fails_the_run_with_a_clear_error():
    """Landmarks written as NaN by another tool: the loader thread's error reaches the worker, which records a
    failure naming the file, the field and the sample, exit 2 (it used to abort: std::future_error, SIGABRT)."""
    with scratch() as tmp:
        exp, ws = write_exp(tmp)
        cli("prepare", exp)
        path = os.path.join(ws, "datasets", "d.h5")
        with h5py.File(path, "r+") as f:
            train = np.flatnonzero(f["split"][:] == 0)
            bad = int(train[len(train) // 2])
            f["landmarks"][bad] = np.nan
        p = cli("train", exp, "--dataset", "d", "--model", "hybridgnet", check=False)
        assert p.returncode == 2, (p.returncode, p.stderr)  # bad input, named
        for text in ("d.h5", "/landmarks", f"sample {bad}", "nan"):
            assert text in p.stderr, (text, p.stderr)
        for text in ("terminate", "future_error", "Aborted"):
            assert text not in p.stderr, p.stderr
        (state, reason), = db(ws).execute(
            "SELECT r.state, a.reason FROM runs r JOIN attempts a ON a.run_id = r.run_id").fetchall()
        assert state == "failed" and "/landmarks" in reason and "d.h5" in reason, (state, reason)


def test_hostile_experiment_files_are_refused_with_exit_2():
    with scratch() as tmp:
        exp, ws = write_exp(tmp)
        deep = os.path.join(tmp, "deep.json")
        with open(deep, "w") as f:
            f.write('{"name": "x", "description": ' + "[" * 100000 + "]" * 100000 + "}")
        p = cli("plan", deep, check=False)
        assert p.returncode == 2 and "deep.json" in p.stderr and "nested deeper than 256" in p.stderr, p
        dup = os.path.join(tmp, "dup.json")
        with open(dup, "w") as f:
            f.write(json.dumps(dict(EXP, workspace=ws))[:-1] + ', "seeds": [2]}')
        p = cli("plan", dup, check=False)
        assert p.returncode == 2 and "seeds" in p.stderr and "twice" in p.stderr, p.stderr
        for name in ("../../x", "a" * 300):
            doc = dict(EXP, name=name)
            with open(exp, "w") as f:
                json.dump(doc, f)
            p = subprocess.run([os.path.abspath(BIN), "plan", exp], capture_output=True, text=True, cwd=tmp)
            assert p.returncode == 2 and "name" in p.stderr and "letters, digits" in p.stderr, p.stderr
        assert not os.path.exists(os.path.join(tmp, "..", "x")) and not os.path.exists(os.path.join(tmp, "workspace"))
        exp, ws = write_exp(tmp)
        p = cli("plan", exp, "--only", "model=../x", check=False)
        assert p.returncode == 2 and "--only" in p.stderr and "../x" in p.stderr and "hybridgnet" in p.stderr, p.stderr


def test_a_hung_worker_of_a_dead_pool_is_lost_and_resume_takes_it_over():
    """A worker stopped by SIGSTOP keeps its pid but stops beating; its pool is then killed (kill -9), so nobody
    watches it: status says lost (pid alive but not progressing), resume kills it and trains the run to the end
    from its checkpoint."""
    with scratch() as tmp:
        exp, ws = write_exp(tmp, training=dict(EXP["training"], epochs=14))
        pool = start("submit", exp)
        wait_until(lambda: os.path.exists(os.path.join(ws, "orchestrator.db")), what="the store")
        con = db(ws)
        wait_until(lambda: count(con, "SELECT COUNT(*) FROM epoch_metrics") >= 2, what="two epochs")
        (pid,), = con.execute("SELECT pid FROM attempts").fetchall()
        os.kill(pid, signal.SIGSTOP)
        os.kill(pool.pid, signal.SIGKILL)  # its SIGTERM (parent death) waits, pending, while the worker is stopped
        pool.communicate(timeout=60)
        wait_until(lambda: only_status(exp)["state"] == "lost", timeout=30, what="the run judged lost")
        row = only_status(exp)
        assert "no heartbeat for" in row["last_error"] and f"pid {pid} alive but not progressing" in row["last_error"], row
        assert proc_state(pid) == "T"
        p = cli("resume", exp)
        assert f"killed the hung worker" in p.stdout + p.stderr, (p.stdout, p.stderr)
        assert only_status(exp)["state"] == "done"
        wait_until(lambda: proc_state(pid) in (None, "Z"), timeout=30, what="the hung worker gone")
        attempts = con.execute("SELECT pid, reason, exit_status FROM attempts ORDER BY attempt_id").fetchall()
        assert len(attempts) == 2 and attempts[0][0] == pid, attempts
        assert "no heartbeat" in attempts[0][1] and "killed by orchestrator resume" in attempts[0][1], attempts
        epochs = [e for (e,) in con.execute("SELECT epoch FROM epoch_metrics ORDER BY epoch")]
        assert epochs == list(range(1, 15)), epochs


def test_the_pool_retries_transient_ends_and_only_those():
    """resources.max_attempts: a worker killed by SIGKILL (as the OOM killer would) and a worker that hangs
    (SIGSTOP: the pool sees its heartbeat stop and kills it) are dispatched again by their pool, which then ends
    with every run done and exit 0; a run whose data are bad (NaN landmarks) fails once and is not retried."""
    with scratch() as tmp:
        exp, ws = write_exp(tmp, seeds=[1, 2], training=dict(EXP["training"], epochs=10))
        pool = start("submit", exp, "--workers", "2")
        wait_until(lambda: os.path.exists(os.path.join(ws, "orchestrator.db")), what="the store")
        con = db(ws)
        wait_until(lambda: count(con, "SELECT COUNT(DISTINCT run_id) FROM epoch_metrics") == 2,
                   what="both runs training")
        (killed, _), (stopped, _) = con.execute("SELECT pid, run_id FROM attempts ORDER BY attempt_id").fetchall()
        os.kill(killed, signal.SIGKILL)
        os.kill(stopped, signal.SIGSTOP)
        out, err = pool.communicate(timeout=300)
        assert pool.returncode == 0, (pool.returncode, out, err)
        assert "2 done, 0 failed" in out, out
        assert "hung:" in err and "retry " in err, err
        reasons = [r for (r,) in con.execute("SELECT reason FROM attempts ORDER BY attempt_id")]
        assert len(reasons) == 4, reasons
        assert any("killed by SIGKILL" in r and "retried (attempt 2 of 3)" in r for r in reasons), reasons
        assert any("hung: no heartbeat" in r and "retried (attempt 2 of 3)" in r for r in reasons), reasons
        assert all(s == "done" for (s,) in con.execute("SELECT state FROM runs")), reasons
        assert proc_state(stopped) is None
        histories = [r["attempt_history"] for r in json.loads(cli("status", exp, "--json").stdout)]
        assert sorted(len(h) for h in histories) == [2, 2], histories
        assert all("retried (attempt 2 of 3)" in h[0]["cause"] and h[1]["cause"] == "done" for h in histories), histories

    with scratch() as tmp:
        exp, ws = write_exp(tmp)
        cli("prepare", exp)
        with h5py.File(os.path.join(ws, "datasets", "d.h5"), "r+") as f:
            f["landmarks"][int(np.flatnonzero(f["split"][:] == 0)[0])] = np.nan
        p = cli("submit", exp, check=False)
        assert p.returncode == 1 and "FAILED" in p.stdout + p.stderr, (p.stdout, p.stderr)
        assert "retry" not in p.stdout + p.stderr, p.stderr
        assert db(ws).execute("SELECT COUNT(*) FROM attempts").fetchone()[0] == 1


def snapshot(ws, run_dir):
    files = {}
    for path in sorted(glob.glob(os.path.join(run_dir, "**"), recursive=True)):
        if os.path.isfile(path) and not path.endswith("log.txt"):
            with open(path, "rb") as f:
                files[os.path.relpath(path, run_dir)] = f.read()
    con = db(ws)
    rows = {t: con.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
            for t in ("test_metrics", "epoch_metrics", "inference_times")}
    rows["runs"] = con.execute("SELECT run_id, state, claim_attempt FROM runs").fetchall()
    return files, rows


def test_a_worker_taken_over_while_evaluating_publishes_nothing():
    """Worker A (on another host when the test runs as root: a UTS namespace) stops (SIGSTOP) while evaluating,
    just before it writes its predictions; its heartbeat goes stale,
    worker B takes the run over and finishes it. Continued, A must not replace B's predictions.h5 (nor any
    checkpoint) nor change the store: it exits 3, and every file and row is as B left it."""
    with scratch() as tmp:
        exp, ws = write_exp(tmp)
        args = ["train", exp, "--dataset", "d", "--model", "hybridgnet"]
        env = stop_at_open(FAST, 1, "predictions.h5.tmp-")
        if os.geteuid() == 0 and shutil.which("unshare"):  # A on "another host": a UTS namespace of its own
            a = subprocess.Popen(["unshare", "--uts", "sh", "-c", 'hostname other-host && exec "$0" "$@"',
                                  os.path.abspath(BIN), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, env=env, start_new_session=True)
        else:
            a = start(*args, env=env)
        wait_until(lambda: a.poll() is not None or proc_state(a.pid) == "T", what="worker A stopped while evaluating")
        assert a.poll() is None, a.communicate()
        con = db(ws)
        (run_id,), = con.execute("SELECT run_id FROM runs").fetchall()
        assert not os.path.exists(os.path.join(ws, "runs", run_id, "predictions.h5"))
        time.sleep(5)  # A's heartbeat is now older than ORCH_LOST_AFTER_S
        b = cli("worker", "--workspace", ws, "--run", run_id)
        assert "took over from attempt" in open(os.path.join(ws, "runs", run_id, "log.txt")).read(), b.stderr
        if a.args[0] == "unshare":
            hosts = [h for (h,) in con.execute("SELECT host FROM attempts ORDER BY attempt_id")]
            assert hosts[0] == "other-host" and hosts[1] != "other-host", hosts
        run_dir = os.path.join(ws, "runs", run_id)
        before = snapshot(ws, run_dir)
        assert "predictions.h5" in before[0] and before[1]["runs"][0][1] == "done", before[1]["runs"]
        os.kill(a.pid, signal.SIGCONT)
        out, err = a.communicate(timeout=120)
        assert a.returncode == NOT_CLAIMED, (a.returncode, out, err)
        assert "another worker holds this run now" in err, err
        after = snapshot(ws, run_dir)
        assert after[0].keys() == before[0].keys(), (sorted(before[0]), sorted(after[0]))
        for name in before[0]:
            assert after[0][name] == before[0][name], f"{name} was replaced by the fenced worker"
        assert after[1] == before[1], "the fenced worker changed the store"
        assert not glob.glob(os.path.join(run_dir, "*.tmp-*")), os.listdir(run_dir)


def by_model(exp):
    return {r["model"]: r for r in json.loads(cli("status", exp, "--json").stdout)}


def test_damaged_done_runs_are_shown_and_rebuilt_only_when_asked():
    """A done HybridGNet+IGSC whose checkpoints folder was deleted, and whose dependent Rasterize is done: status
    shows it damaged (what is missing), a plain resume leaves it, resume --rebuild-damaged retrains it and then
    Rasterize from scratch (its old checkpoints set aside, not deleted). A run that lost only its predictions is
    re-evaluated from its checkpoint, not retrained."""
    with scratch() as tmp:
        exp, ws = write_exp(tmp, networks=["hybridgnet_igsc", "rasterize", "hybridgnet"])
        cli("submit", exp)
        runs = by_model(exp)
        assert all(r["state"] == "done" for r in runs.values()), runs
        igsc, rast, hg = (runs[m]["id"] for m in ("hybridgnet_igsc", "rasterize", "hybridgnet"))
        shutil.rmtree(os.path.join(ws, "runs", igsc, "checkpoints"))
        os.remove(os.path.join(ws, "runs", hg, "predictions.h5"))
        runs = by_model(exp)
        assert runs["hybridgnet_igsc"]["state"] == "damaged", runs["hybridgnet_igsc"]
        assert "best checkpoint" in runs["hybridgnet_igsc"]["why"], runs["hybridgnet_igsc"]
        assert runs["hybridgnet"]["state"] == "damaged" and "predictions" in runs["hybridgnet"]["why"]
        assert runs["rasterize"]["state"] == "done"
        plain = cli("resume", exp)
        assert "0 run(s) to the local pool" in plain.stdout, plain.stdout
        assert by_model(exp)["hybridgnet_igsc"]["state"] == "damaged"
        con = db(ws)
        epochs_before = con.execute("SELECT run_id, epoch, train_loss FROM epoch_metrics WHERE run_id = ?", (hg,)).fetchall()
        p = cli("resume", exp, "--rebuild-damaged")
        assert "3 run(s) to the local pool" in p.stdout, p.stdout
        assert "retraining " + rast + " from scratch" in p.stderr, p.stderr
        runs = by_model(exp)
        assert all(r["state"] == "done" for r in runs.values()), runs
        assert os.path.exists(os.path.join(ws, "runs", igsc, "checkpoints", "best.h5"))
        assert glob.glob(os.path.join(ws, "runs", rast, "checkpoints.replaced-*", "best.h5"))
        assert os.path.exists(os.path.join(ws, "runs", hg, "predictions.h5"))
        log = open(os.path.join(ws, "runs", rast, "log.txt")).read()
        assert log.count("resuming from") == 0, log  # retrained from scratch, twice, never resumed
        epochs_after = con.execute("SELECT run_id, epoch, train_loss FROM epoch_metrics WHERE run_id = ?", (hg,)).fetchall()
        assert epochs_after == epochs_before  # only re-evaluated
        assert by_model(exp)["hybridgnet"]["attempts"] == 2


def test_concurrent_reports_into_one_folder_each_write_a_whole_report():
    """Six reports into one folder at once: they take turns (a lock per report folder), each temporary is the
    process's own, and every report ends with its figures, no warning and no temporary left (they used to share
    '<figure>.png.tmp.png' and lose figures)."""
    with scratch() as tmp:
        exp, ws = write_exp(tmp)
        cli("submit", exp)
        out = os.path.join(tmp, "report")
        procs = [start("report", exp, "--out", out) for _ in range(6)]
        for p in procs:
            o, e = p.communicate(timeout=300)
            assert p.returncode == 0, (p.returncode, o, e)
            assert "warning" not in (o + e).lower(), (o, e)
        html = open(os.path.join(out, "report.html")).read()
        assert html.count("data:image/png;base64,") >= 2, "figures missing from report.html"
        assert not glob.glob(os.path.join(out, "*.tmp*")), os.listdir(out)
        assert 'href="../ws/runs/' in html, html[:500]


if __name__ == "__main__":
    run([test_a_nan_landmark_fails_the_run_with_a_clear_error, test_hostile_experiment_files_are_refused_with_exit_2,
         test_a_hung_worker_of_a_dead_pool_is_lost_and_resume_takes_it_over, test_the_pool_retries_transient_ends_and_only_those,
         test_a_worker_taken_over_while_evaluating_publishes_nothing,
         test_damaged_done_runs_are_shown_and_rebuilt_only_when_asked,
         test_concurrent_reports_into_one_folder_each_write_a_whole_report])
