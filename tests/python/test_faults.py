"""The control plane's promises under injected faults, with real processes and a real SQLite store:
no run is trained twice, cancel cancels, an interrupted or killed pool resumes with one command, concurrent
commands serialise, a reused pid fools nothing, and a damaged or locked store is an error naming it."""
import glob
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time

import common
from common import BIN, kill_at_rename, orch, run, scratch, wait_until

EXP = {
    "name": "faults",
    "datasets": {"a": {"kind": "lh", "size": 64, "synthetic": {"count": 20, "seed": 3, "size": 64}}},
    "networks": ["hybridgnet"],
    "seeds": [1, 2],
    "training": {"epochs": 6, "threads": 1, "loader_threads": 1, "device": "cpu"},
}
FAST = dict(os.environ, ORCH_HEARTBEAT_S="0.5", ORCH_LOST_AFTER_S="5", ORCH_LOCK_WAIT_S="120")


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


def log_has(ws, text):
    for path in glob.glob(os.path.join(ws, "runs", "*", "log.txt")):
        if text in open(path).read():
            return True
    return False


def workers_alive(ws):
    out = subprocess.run(["pgrep", "-f", f"worker --workspace {ws}"], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def states(exp):
    return {r["id"]: r["state"] for r in json.loads(cli("status", exp, "--json").stdout)}


def assert_each_trained_once(ws, epochs):
    """Every run done by exactly one attempt that finished, its epochs recorded once, no two attempts of a run
    alive at once, and every later attempt resumed from a checkpoint rather than starting over."""
    con = db(ws)
    for (run_id,) in con.execute("SELECT run_id FROM runs"):
        rows = con.execute("SELECT attempt_id, exit_status, start_epoch, start_batch, started_unix, ended_unix, heartbeat_at, "
                           "reason FROM attempts WHERE run_id = ? ORDER BY attempt_id", (run_id,)).fetchall()
        assert sum(1 for r in rows if r[1] == 0) == 1, (run_id, rows)
        n = con.execute("SELECT COUNT(*), COUNT(DISTINCT epoch), MIN(epoch), MAX(epoch) FROM epoch_metrics WHERE run_id = ?",
                        (run_id,)).fetchone()
        assert n == (epochs, epochs, 1, epochs), (run_id, n)
        for prev, nxt in zip(rows, rows[1:]):
            last_seen = max(x for x in (prev[4], prev[5], prev[6]) if x is not None)
            assert nxt[4] >= last_seen - 0.5, f"{run_id}: attempt {nxt[0]} started while attempt {prev[0]} was alive"
        for r in rows[1:]:
            started_over = (r[2], r[3]) == (0, 0)
            ckpt_before = con.execute("SELECT COUNT(*) FROM epoch_metrics WHERE run_id = ? AND attempt_id < ?",
                                      (run_id, r[0])).fetchone()[0]
            assert not (started_over and ckpt_before), f"{run_id}: attempt {r[0]} started over after {ckpt_before} epochs"


def test_cancel_of_a_running_run_stays_cancelled_and_no_worker_survives():
    with scratch() as tmp:
        exp, ws = write_exp(tmp, seeds=[1], training=dict(EXP["training"], epochs=200))
        p = start("submit", exp, "--workers", "1")
        wait_until(lambda: log_has(ws, "epoch 2/200"), what="training")
        c = cli("cancel", exp)
        assert "1 run(s) cancelled" in c.stdout, c.stdout
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, (p.returncode, out, err)
        assert "requeue" not in err, "a cancelled run was restarted:\n" + err
        time.sleep(2)
        assert not workers_alive(ws)
        assert list(states(exp).values()) == ["cancelled"]
        con = db(ws)
        assert con.execute("SELECT COUNT(*) FROM attempts").fetchone()[0] == 1, "started again after the cancel"
        (reason,) = con.execute("SELECT reason FROM attempts").fetchone()
        assert "cancelled" in reason and "checkpointed" in reason, reason
        # resume continues it from its checkpoint
        r = cli("resume", exp, "--workers", "1")
        assert ", 0 failed" in r.stdout, r.stdout
        assert list(states(exp).values()) == ["done"]
        assert_each_trained_once(ws, 200)


def kill_group(p):
    """SIGKILL to the pool's process group, then waits until none of its processes is left: a killed worker takes a
    moment to exit (its memory unmapped) on a loaded machine, and until then it is alive to a status."""
    os.killpg(p.pid, signal.SIGKILL)
    p.communicate(timeout=30)
    t0 = time.time()
    while time.time() - t0 < 30:
        try:
            os.killpg(p.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def test_kill9_of_the_pool_before_dispatch_during_training_and_in_a_checkpoint_write_then_resume():
    with scratch() as tmp:
        exp, ws = write_exp(tmp)
        # Before dispatch: while the data set is being built, nothing is queued yet.
        p = start("submit", exp, "--workers", "2")
        wait_until(lambda: os.path.exists(os.path.join(ws, "raw")), what="preparation to start")
        kill_group(p)
        # During training: the pool and its workers die by SIGKILL mid-epoch.
        p = start("submit", exp, "--workers", "2")
        wait_until(lambda: log_has(ws, "epoch 2/6"), what="training")
        kill_group(p)
        shown = states(exp)
        assert set(shown.values()) <= {"lost", "new", "done"} and "lost" in shown.values(), shown
        # A plain submit does not start lost runs twice by itself; resume does, from their checkpoints.
        # In a checkpoint write: the worker dies inside its next checkpoint, and the pool with it.
        env = kill_at_rename(FAST, "before", 1, "/checkpoints/ckpt-")
        p = start("resume", exp, "--workers", "2", env=env)
        wait_until(lambda: glob.glob(os.path.join(ws, "runs", "*", "checkpoints", "*.tmp-*")), what="a half-written checkpoint")
        kill_group(p)
        r = cli("resume", exp, "--workers", "2")
        assert ", 0 failed" in r.stdout, r.stdout + r.stderr
        shown = states(exp)
        assert set(shown.values()) == {"done"}, shown
        assert_each_trained_once(ws, 6)
        assert "resuming from" in "".join(open(f).read() for f in glob.glob(os.path.join(ws, "runs", "*", "log.txt")))


def test_concurrent_submits_on_an_empty_workspace_train_every_run_once():
    with scratch() as tmp:
        exp, ws = write_exp(tmp, seeds=[1, 2, 3])
        procs = [start(verb, exp, "--workers", "2") for verb in ("submit", "submit", "resume", "submit")]
        outs = [p.communicate(timeout=600) for p in procs]
        for p, (out, err) in zip(procs, outs):
            assert p.returncode == 0, (p.returncode, out, err)
        assert set(states(exp).values()) == {"done"}
        con = db(ws)
        per_run = con.execute("SELECT run_id, COUNT(*) FROM attempts GROUP BY run_id").fetchall()
        assert len(per_run) == 3 and all(n == 1 for _, n in per_run), per_run
        assert sum("3 run(s) to the local pool" in out for out, _ in outs) == 1, [o for o, _ in outs]


def test_a_reused_pid_is_neither_alive_nor_signalled():
    with scratch() as tmp:
        exp, ws = write_exp(tmp, seeds=[1])
        cli("submit", exp, "--workers", "1")
        con = db(ws)
        (run_id,) = con.execute("SELECT run_id FROM runs").fetchone()
        # An unrelated process now holds the pid the store's claim names, with another start time.
        bystander = subprocess.Popen(["sleep", "600"])
        try:
            host = os.uname().nodename
            boot = open("/proc/sys/kernel/random/boot_id").read().replace("-", "")[:8]
            fake = f"{host}:{bystander.pid}:1:{boot}"  # start time 1 tick after boot: not the bystander's
            con.execute("INSERT INTO attempts(run_id, holder, job_id, backend, heartbeat_at, started_unix, host, pid) "
                        "VALUES (?, ?, '', 'local', ?, ?, ?, ?)", (run_id, fake, time.time(), time.time(), host, bystander.pid))
            (attempt,) = con.execute("SELECT MAX(attempt_id) FROM attempts").fetchone()
            con.execute("UPDATE runs SET state = 'running', claim_attempt = ?", (attempt,))
            con.commit()
            (st,) = json.loads(cli("status", exp, "--json").stdout)
            assert st["state"] == "lost" and "is gone" in st["last_error"], st
            cli("cancel", exp)
            time.sleep(0.5)
            assert bystander.poll() is None, "cancel signalled an unrelated process"
            assert json.loads(cli("plan", exp, "--json").stdout)[0]["action"] == "submit"
        finally:
            bystander.kill()


def test_sigterm_to_submit_exits_143_and_names_the_stopped_runs():
    with scratch() as tmp:
        exp, ws = write_exp(tmp, seeds=[1, 2, 3], training=dict(EXP["training"], epochs=200))
        p = start("submit", exp, "--workers", "2")
        wait_until(lambda: log_has(ws, "epoch 2/200"), what="training")
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
        assert p.returncode == 143, (p.returncode, out, err)
        assert "interrupted by SIGTERM" in out and "orchestrator resume" in out, out
        assert "never started" in out, out
        shown = states(exp)
        assert sorted(shown.values()) == ["interrupted", "interrupted", "new"], shown
        for run_id, st in shown.items():
            if st == "interrupted":
                assert run_id in out, out
        time.sleep(1)
        assert not workers_alive(ws)
        plan = json.loads(cli("plan", exp, "--json").stdout)
        assert all(r["action"] == "submit" for r in plan), plan
        # SIGINT likewise: 130
        p = start("resume", exp, "--workers", "2")
        wait_until(lambda: len(workers_alive(ws)) == 2, what="workers")
        time.sleep(1.5)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        assert p.returncode == 130, (p.returncode, out, err)


def test_a_damaged_store_and_a_locked_store_are_errors_naming_them():
    with scratch() as tmp:
        exp, ws = write_exp(tmp, seeds=[1], training=dict(EXP["training"], epochs=1))
        cli("submit", exp, "--workers", "1")
        store = os.path.join(ws, "orchestrator.db")
        # Locked: another process holds it exclusively; status waits a bounded time and names the lock.
        holder = subprocess.Popen(["python3", "-c", f"""
import sqlite3, sys, time
c = sqlite3.connect({store!r}, isolation_level=None)
c.execute("PRAGMA locking_mode=EXCLUSIVE")
c.execute("BEGIN EXCLUSIVE")
c.execute("UPDATE runs SET state = state")
print("locked", flush=True)
time.sleep(60)
"""], stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "locked"
            t0 = time.time()
            p = cli("status", exp, env=dict(FAST, ORCH_STORE_WAIT_S="1"), check=False)
            assert time.time() - t0 < 30
            assert p.returncode == 4, (p.returncode, p.stdout, p.stderr)
            assert store in p.stderr and "locked" in p.stderr and "ORCH_STORE_WAIT_S" in p.stderr, p.stderr
            p = cli("submit", exp, env=dict(FAST, ORCH_STORE_WAIT_S="1"), check=False)
            assert p.returncode == 4, (p.returncode, p.stdout, p.stderr)
        finally:
            holder.kill()
            holder.wait()
        # Damaged: never an empty view.
        with open(store, "r+b") as f:
            f.write(b"garbage, not an SQLite header")
        for cmd in ("status", "plan", "submit", "report"):
            p = cli(cmd, exp, check=False)
            assert p.returncode == 1, (cmd, p.returncode, p.stdout, p.stderr)
            assert store in p.stderr and "damaged" in p.stderr and "integrity_check" in p.stderr, (cmd, p.stderr)
            assert "new" not in p.stdout, (cmd, p.stdout)


def test_a_busy_workspace_names_its_holder():
    with scratch() as tmp:
        exp, ws = write_exp(tmp, seeds=[1], training=dict(EXP["training"], epochs=1))
        cli("submit", exp, "--workers", "1")
        lock = os.path.join(ws, ".orchestrator.lock")
        holder = subprocess.Popen(["python3", "-c", f"""
import fcntl, os, time
fd = os.open({lock!r}, os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0)
os.write(fd, b"'orchestrator submit other.json' (pid 4242 on elsewhere, since then)\\n")
print("locked", flush=True)
time.sleep(60)
"""], stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "locked"
            for cmd in ("cancel", "submit", "resume"):
                p = cli(cmd, exp, env=dict(FAST, ORCH_LOCK_WAIT_S="1"), check=False)
                assert p.returncode == 4, (cmd, p.returncode, p.stderr)
                assert "busy" in p.stderr and "orchestrator submit other.json" in p.stderr and lock in p.stderr, p.stderr
            assert cli("status", exp).returncode == 0, "status reads without the lock"
        finally:
            holder.kill()
            holder.wait()
        cli("cancel", exp)


if __name__ == "__main__":
    run([
        test_cancel_of_a_running_run_stays_cancelled_and_no_worker_survives,
        test_kill9_of_the_pool_before_dispatch_during_training_and_in_a_checkpoint_write_then_resume,
        test_concurrent_submits_on_an_empty_workspace_train_every_run_once,
        test_a_reused_pid_is_neither_alive_nor_signalled,
        test_sigterm_to_submit_exits_143_and_names_the_stopped_runs,
        test_a_damaged_store_and_a_locked_store_are_errors_naming_them,
        test_a_busy_workspace_names_its_holder,
    ])
