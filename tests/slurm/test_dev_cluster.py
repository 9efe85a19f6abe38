"""Against a real Slurm cluster started by slurm/dev-cluster/start: a 2-task MPI run of the worker through
srun, fake GPUs in a GPU-requesting job, checkpoint-and-requeue of the worker's own job on SIGUSR1, and the grid
backend: arrays per dependency set and resources, afterok on array tasks, per-network time limits, accounting
against sacct, a failed dependency stopping only its dependents. The cluster is stopped afterwards
(slurm/dev-cluster/stop)."""
import glob
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
from common import BIN, SOURCE, run, training_faults  # noqa: E402  (orch below runs with SLURM_CONF)

LAB = tempfile.mkdtemp(prefix="orch-slurm-test-")
ENV = dict(os.environ, SLURM_CONF=os.path.join(LAB, "etc", "slurm.conf"))


def sh(*args, check=True, **kw):
    p = subprocess.run(list(args), capture_output=True, text=True, env=ENV, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {p.returncode}: {p.stdout}\n{p.stderr}")
    return p


def wait_state(job, states, timeout=180):
    t0 = time.time()
    last = ""
    while time.time() - t0 < timeout:
        out = sh("sacct", "-X", "-P", "-n", "-j", job, "-o", "State", check=False).stdout.split()
        last = out[0] if out else ""
        if last in states:
            return last
        time.sleep(0.5)
    raise AssertionError(f"job {job} stayed {last!r}")


def hurry_requeued(job, timeout=30):
    """Starts a requeued job now instead of after Slurm's requeue hold-off, once it is pending again. Not sooner:
    slurmd refuses a launch whose credential is not newer than the job's revocation at the kill (one-second
    resolution), and the job then ends FAILED ("Job credential revoked"); the hold-off exists for that."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if sh("squeue", "-h", "-j", job, "-o", "%T", check=False).stdout.strip() == "PENDING":
            time.sleep(2.0)
            sh("scontrol", "update", f"jobid={job}", "StartTime=now", check=False)
            return
        time.sleep(0.2)
    # Not pending within the timeout: Slurm started it by itself, or the caller's own deadline will tell.


def experiment(tmp, epochs):
    doc = {"name": "slurm-test", "workspace": os.path.join(tmp, "ws"),
           "datasets": {"d": {"kind": "lh", "size": 64, "synthetic": {"count": 24, "seed": 5, "size": 64}}},
           "networks": ["hybridgnet"], "seeds": [1],
           "training": {"epochs": epochs, "threads": 1, "loader_threads": 1, "device": "cpu"}}
    path = os.path.join(tmp, "exp.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    return path, doc["workspace"]


def script(tmp, name, body, extra=""):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(f"#!/bin/bash\n#SBATCH -o {tmp}/{name}.%j.out\n{extra}\n{body}\n")
    return path


def test_two_task_mpi_run_through_srun():
    with tempfile.TemporaryDirectory(prefix="orch-slurm-") as tmp:
        exp, ws = experiment(tmp, 2)
        s = script(tmp, "mpi.sh", f"srun {BIN} train {exp} --dataset d --model hybridgnet --workspace {ws}", "#SBATCH -n 2")
        job = sh("sbatch", "--parsable", s).stdout.strip()
        assert wait_state(job, {"COMPLETED", "FAILED", "CANCELLED"}) == "COMPLETED", open(f"{tmp}/mpi.sh.{job}.out").read()
        db = sqlite3.connect(os.path.join(ws, "orchestrator.db"))
        prov = dict(db.execute("SELECT key, value FROM provenance"))
        assert prov["communicator"] == "mpi" and prov["ranks"] == "2", prov
        assert db.execute("SELECT state FROM runs").fetchone()[0] == "done"
        assert db.execute("SELECT job_id FROM attempts").fetchone()[0] == job


def test_fake_gpus_are_scheduled():
    with tempfile.TemporaryDirectory(prefix="orch-slurm-") as tmp:
        s = script(tmp, "gpu.sh", "echo CVD=$CUDA_VISIBLE_DEVICES", "#SBATCH --gres=gpu:2")
        job = sh("sbatch", "--parsable", s).stdout.strip()
        assert wait_state(job, {"COMPLETED", "FAILED"}) == "COMPLETED"
        assert "CVD=0,1" in open(f"{tmp}/gpu.sh.{job}.out").read()


def test_sigusr1_checkpoints_and_requeues_its_own_job():
    with tempfile.TemporaryDirectory(prefix="orch-slurm-") as tmp:
        exp, ws = experiment(tmp, 40)
        # One step through `train` prepares the data set and records the run (exit 75); the job then runs the
        # worker as a scheduled job would.
        p = subprocess.run([BIN, "train", exp, "--dataset", "d", "--model", "hybridgnet", "--workspace", ws,
                            ], capture_output=True, text=True, env=training_faults(ENV, stop_after=1))
        assert p.returncode == 75, p.stderr
        db = sqlite3.connect(os.path.join(ws, "orchestrator.db"))
        (run_id,) = db.execute("SELECT run_id FROM runs").fetchone()
        s = script(tmp, "requeue.sh", f"exec {BIN} worker --workspace {ws} --run {run_id}", "#SBATCH --requeue")
        job = sh("sbatch", "--parsable", s).stdout.strip()
        log = os.path.join(ws, "runs", run_id, "log.txt")
        t0 = time.time()
        while time.time() - t0 < 120 and "slurm job " + job not in (open(log).read() if os.path.exists(log) else ""):
            time.sleep(0.2)
        time.sleep(1.0)
        sh("scancel", "--signal=USR1", "--full", job)
        t0 = time.time()
        while time.time() - t0 < 60:
            reasons = [r[0] for r in db.execute("SELECT reason FROM attempts")]
            if any("requeued Slurm job" in r for r in reasons):
                break
            time.sleep(0.3)
        assert any("stopped by SIGUSR1" in r and "requeued Slurm job " + job in r for r in reasons), reasons
        hurry_requeued(job)
        assert wait_state(job, {"COMPLETED", "FAILED", "CANCELLED"}, timeout=300) == "COMPLETED"
        assert db.execute("SELECT state FROM runs").fetchone()[0] == "done"
        assert "resuming from" in open(log).read()


def grid_experiment(tmp, name="sg", epochs=2, networks=("hybridgnet", "ours"), seeds=(1, 2), resources=None):
    doc = {"name": name, "workspace": os.path.join(tmp, "ws"), "backend": "slurm",
           "datasets": {"a": {"kind": "lh", "size": 64, "synthetic": {"count": 20, "seed": 3, "size": 64}}},
           "networks": list(networks), "seeds": list(seeds),
           "training": {"epochs": epochs, "threads": 1, "loader_threads": 1, "device": "cpu"},
           "resources": dict({"cpus": 1, "array_throttle": 2}, **(resources or {}))}
    path = os.path.join(tmp, "exp.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    return path, doc["workspace"]


def orch(*args, check=True):
    p = subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, env=ENV)
    if check and p.returncode != 0:
        raise AssertionError(f"orchestrator {' '.join(map(str, args))} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


def wait_all(exp, states=("done",), timeout=300):
    t0 = time.time()
    while time.time() - t0 < timeout:
        st = json.loads(orch("status", exp, "--json").stdout)
        if all(r["state"] in states for r in st):
            return st
        time.sleep(1)
    raise AssertionError(f"not all {states}: {st}")


def slurm_diagnosis(job, ws):
    """What Slurm and the job's logs say about a job that did not do what a test expected."""
    parts = [sh("scontrol", "show", "job", job, check=False).stdout, sh("squeue", "-a", check=False).stdout,
             sh("sacct", "-P", "-j", job.split("_")[0], "-o", "JobID,State,ExitCode,Start,End,Reason", check=False).stdout]
    for path in sorted(glob.glob(os.path.join(glob.escape(ws), "logs", "*"))) if ws else []:
        parts.append(path + ":\n" + open(path, errors="replace").read()[-3000:])
    ctld = os.path.join(LAB, "log", "slurmctld.log")
    if os.path.exists(ctld):
        parts.append("slurmctld:\n" + "".join(open(ctld, errors="replace").readlines()[-60:]))
    return "\n".join(parts)


def jobs_in_slurm():
    """Distinct job (array) ids Slurm knows."""
    return {j.split("_")[0] for j in sh("sacct", "-X", "-P", "-n", "-o", "JobID").stdout.split()}


def test_grid_as_arrays_honours_dependencies_and_a_second_submit_adds_nothing():
    with tempfile.TemporaryDirectory(prefix="orch-slurm-") as tmp:
        exp, ws = grid_experiment(tmp)
        p = orch("submit", exp)
        assert "5 run(s) in 2 Slurm array job(s)" in p.stdout, p.stdout
        arrays = set(p.stdout.split("array job(s) ")[1].split(";")[0].split())
        script = open(sorted(glob.glob(os.path.join(ws, "slurm", "*-g0.sbatch")))[0]).read()
        for line in ("--array=0-2%2", "--requeue", "--signal=B:USR1@120", "--open-mode=append"):
            assert line in script, line
        assert ws not in script, "no workspace path is written into a job script"
        before = jobs_in_slurm() - arrays
        assert "0 run(s) in 0 Slurm array job(s)" in orch("submit", exp).stdout
        wait_all(exp)
        assert jobs_in_slurm() - before == arrays, "a second submit added jobs"
        db = sqlite3.connect(os.path.join(ws, "orchestrator.db"))
        for run_id, dep in db.execute("SELECT run_id, depends_on FROM runs WHERE depends_on != ''"):
            (started,) = db.execute("SELECT MIN(started_at) FROM attempts WHERE run_id = ?", (run_id,)).fetchone()
            (ended,) = db.execute("SELECT MAX(ended_at) FROM attempts WHERE run_id = ? AND exit_status = 0", (dep,)).fetchone()
            assert started >= ended, (run_id, started, dep, ended)
        assert glob.glob(os.path.join(ws, "logs", "*_*.out"))
        # The orchestrator "dies" between sbatch and recording the job ids: its runs keep the placeholder it
        # recorded before sbatch, and the next submit finds the arrays by name instead of submitting again.
        # (tests/python/test_slurm_scripts.py does the same while the jobs are still pending.)
        recorded = dict(db.execute("SELECT run_id, job_id FROM jobs"))
        for manifest in glob.glob(os.path.join(ws, "slurm", "*.manifest")):
            base = os.path.basename(manifest)[:-len(".manifest")]
            for run_id in open(manifest).read().split():
                db.execute("UPDATE jobs SET job_id = ? WHERE run_id = ?", ("manifest:" + base, run_id))
        db.commit()
        p = orch("submit", exp)
        assert "reconciled" in p.stdout and "0 run(s) in 0 Slurm array job(s)" in p.stdout, p.stdout
        assert jobs_in_slurm() - before == arrays
        assert dict(db.execute("SELECT run_id, job_id FROM jobs")) == recorded


def test_scancel_then_resume_continues_from_the_checkpoint():
    with tempfile.TemporaryDirectory(prefix="orch-slurm-") as tmp:
        exp, ws = grid_experiment(tmp, epochs=60, networks=("unet",), seeds=(1,))
        orch("submit", exp)
        (run,) = json.loads(orch("status", exp, "--json").stdout)
        log = os.path.join(ws, "runs", run["id"], "log.txt")
        t0 = time.time()
        while time.time() - t0 < 120 and "epoch 3/60" not in (open(log).read() if os.path.exists(log) else ""):
            time.sleep(0.2)
        sh("scancel", run["job"])
        wait_state(run["job"], {"CANCELLED"})
        (after,) = json.loads(orch("status", exp, "--json").stdout)
        assert after["state"] in ("cancelled", "queued"), after  # the worker may record its checkpoint first
        plan = json.loads(orch("plan", exp, "--json").stdout)
        assert plan[0]["action"] == "submit", plan
        orch("resume", exp)
        wait_all(exp)
        assert "resuming from" in open(log).read()


def restart_slurmctld():
    """Stops the controller (SIGTERM) and starts it again from its saved state, as an operator's restart would."""
    pid_file = os.path.join(LAB, "run", "slurmctld.pid")
    pid = int(open(pid_file).read())
    os.kill(pid, 15)
    t0 = time.time()
    while time.time() - t0 < 60 and os.path.exists(f"/proc/{pid}"):
        time.sleep(0.2)
    sh("slurmctld")
    t0 = time.time()
    while time.time() - t0 < 60 and "UP" not in sh("scontrol", "ping", check=False).stdout:
        time.sleep(0.5)


def test_requeue_by_hand_and_a_controller_restart_mid_grid():
    """Done by hand to a running grid, these must keep working: `scontrol requeue` of a running task (its worker
    checkpoints, the task comes back and continues) and a slurmctld restart mid-grid. status answers throughout,
    and the grid ends with every run done and every epoch trained once."""
    with tempfile.TemporaryDirectory(prefix="orch-slurm-") as tmp:
        exp, ws = grid_experiment(tmp, epochs=40, networks=("hybridgnet",), seeds=(1, 2))
        orch("submit", exp)
        db = sqlite3.connect(os.path.join(ws, "orchestrator.db"), timeout=30)
        t0 = time.time()
        while time.time() - t0 < 180 and db.execute("SELECT COUNT(*) FROM epoch_metrics").fetchone()[0] < 3:
            time.sleep(0.3)
        running = [r for r in json.loads(orch("status", exp, "--json").stdout) if r["state"] == "running"]
        assert running, orch("status", exp).stdout
        job = running[0]["job"]
        sh("scontrol", "requeue", job)
        hurry_requeued(job)
        restart_slurmctld()
        states = {r["state"] for r in json.loads(orch("status", exp, "--json").stdout)}
        assert states <= {"queued", "running", "done"}, states
        rows = wait_all(exp, timeout=420)
        assert all(r["state"] == "done" for r in rows), rows
        for r in rows:
            epochs = [e for (e,) in db.execute("SELECT epoch FROM epoch_metrics WHERE run_id = ? ORDER BY epoch", (r["id"],))]
            assert epochs == list(range(1, 41)), (r["id"], epochs)
        reasons = [x for (x,) in db.execute("SELECT reason FROM attempts WHERE run_id = ?", (running[0]["id"],))]
        assert len(reasons) >= 2 and reasons[-1] == "done", reasons


def one_run_training(tmp, epochs=40, follow=None):
    """A one-run grid submitted to the cluster and three epochs into its training: (exp, ws, store, its status row,
    its worker's pid). With `follow` (a list), the submit is a `submit --follow` left running, appended to it."""
    exp, ws = grid_experiment(tmp, epochs=epochs, networks=("hybridgnet",), seeds=(1,))
    if follow is None:
        orch("submit", exp)
    else:
        follow.append(subprocess.Popen([BIN, "submit", exp, "--follow"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       text=True, env=dict(ENV, ORCH_FOLLOW_POLL_S="1")))
    t0 = time.time()
    while not os.path.exists(os.path.join(ws, "orchestrator.db")) and time.time() - t0 < 60:
        time.sleep(0.2)  # --follow's first round has not made the store yet
    db = sqlite3.connect(os.path.join(ws, "orchestrator.db"), timeout=30)
    while time.time() - t0 < 180:
        try:
            if db.execute("SELECT COUNT(*) FROM epoch_metrics").fetchone()[0] >= 3:
                break
        except sqlite3.OperationalError:  # the store's tables are being made
            pass
        time.sleep(0.3)
    (run,) = json.loads(orch("status", exp, "--json").stdout)
    (pid,) = db.execute("SELECT pid FROM attempts").fetchone()
    return exp, ws, db, run, pid


def test_a_worker_killed_by_sigkill_is_retried_by_its_task():
    """The retry policy on Slurm: a worker killed by SIGKILL (as the OOM killer would) is retried by its own job
    script, which requeues the task (resources.max_attempts); the run continues from its checkpoint and ends done
    without a `resume`, every epoch trained once."""
    with tempfile.TemporaryDirectory(prefix="orch-slurm-") as tmp:
        exp, ws, db, run, pid = one_run_training(tmp)
        os.kill(pid, 9)
        hurry_requeued(run["job"], timeout=60)
        (r,) = wait_all(exp, timeout=300)
        assert r["state"] == "done", r
        epochs = [e for (e,) in db.execute("SELECT epoch FROM epoch_metrics ORDER BY epoch")]
        assert epochs == list(range(1, 41)), epochs
        attempts = db.execute("SELECT pid, reason FROM attempts ORDER BY attempt_id").fetchall()
        assert len(attempts) == 2 and attempts[0][0] == pid and "gone" in attempts[0][1], attempts
        out = "".join(open(f).read() for f in glob.glob(os.path.join(ws, "logs", "*.out")))
        assert "killed by SIGKILL" in out and "retried (attempt 2 of 3)" in out, out


def test_a_node_crash_mid_run_is_found_and_resume_finishes_the_grid():
    """slurmd killed with its steps, the job script and the worker (kill -9, as a node crash), then started again:
    Slurm still counts the task as running (the node came back before Slurm timed it out), status tells the truth
    (lost: its worker is gone), and resume cancels the stale task and continues the run from its checkpoint; every
    epoch is trained once."""
    with tempfile.TemporaryDirectory(prefix="orch-slurm-") as tmp:
        exp, ws, db, run, pid = one_run_training(tmp)
        crash_the_node(pid)
        time.sleep(2)
        (lost,) = json.loads(orch("status", exp, "--json").stdout)
        assert lost["state"] == "lost" and "gone" in lost["why"], lost
        p = orch("resume", exp)
        assert "cancelling the job(s) of lost run(s): " + run["job"] in p.stdout, p.stdout
        (r,) = wait_all(exp, timeout=300)
        assert r["state"] == "done", (r, slurm_diagnosis(run["job"], ws))
        epochs = [e for (e,) in db.execute("SELECT epoch FROM epoch_metrics ORDER BY epoch")]
        assert epochs == list(range(1, 41)), epochs
        assert wait_state(run["job"], {"CANCELLED"}, timeout=60) == "CANCELLED"


def crash_the_node(pid):
    """slurmd killed with its steps, the job script and the worker (kill -9, as a node crash), then started again."""
    slurmd = int(open(os.path.join(LAB, "run", "slurmd.pid")).read())
    os.kill(slurmd, 9)
    sh("pkill", "-9", "slurmstepd", check=False)
    sh("pkill", "-9", "-f", "slurm_script", check=False)  # the job script: nothing of the job survives
    os.kill(pid, 9)
    sh("slurmd", "-N", "localhost")


def test_a_node_crash_needs_no_resume_while_submit_follow_runs():
    """The retry policy without a person: the same node crash while `submit --follow` runs. Slurm still counts the
    task as running; --follow finds the run lost, cancels the stale task and dispatches the run again (attempt 2
    of 3), which continues from its checkpoint; --follow then ends with exit 0. Every epoch is trained once."""
    with tempfile.TemporaryDirectory(prefix="orch-slurm-") as tmp:
        follow = []
        exp, ws, db, run, pid = one_run_training(tmp, follow=follow)
        crash_the_node(pid)
        try:
            out, _ = follow[0].communicate(timeout=300)
        except subprocess.TimeoutExpired:
            follow[0].kill()
            raise AssertionError("--follow did not end: " + follow[0].communicate()[0] + slurm_diagnosis(run["job"], ws))
        assert follow[0].returncode == 0, out
        assert "cancelling the job(s) of lost run(s): " + run["job"] in out, out
        (r,) = json.loads(orch("status", exp, "--json").stdout)
        assert r["state"] == "done" and r["attempts"] == 2, r
        epochs = [e for (e,) in db.execute("SELECT epoch FROM epoch_metrics ORDER BY epoch")]
        assert epochs == list(range(1, 41)), epochs
        assert wait_state(run["job"], {"CANCELLED"}, timeout=60) == "CANCELLED"


def test_time_limit_signal_checkpoint_requeue_and_finish():
    with tempfile.TemporaryDirectory(prefix="orch-slurm-") as tmp:
        exp, ws = grid_experiment(tmp, epochs=400, networks=("hybridgnet",), seeds=(1,),
                                  resources={"time": "1", "signal_seconds": 40})
        orch("submit", exp)
        (run,) = json.loads(orch("status", exp, "--json").stdout)
        db = sqlite3.connect(os.path.join(ws, "orchestrator.db"))
        hurried = 0
        t0 = time.time()
        while time.time() - t0 < 420:
            (state,) = db.execute("SELECT state FROM runs").fetchone()
            if state == "done":
                break
            (requeues,) = db.execute("SELECT COUNT(*) FROM attempts WHERE reason LIKE '%requeued Slurm job%'").fetchone()
            if requeues > hurried:
                hurry_requeued(run["job"])
                hurried = requeues
            time.sleep(1)
        reasons = [r[0] for r in db.execute("SELECT reason FROM attempts")]
        assert state == "done", (state, reasons, slurm_diagnosis(run["job"], ws))
        assert any("stopped by SIGUSR1" in r and "requeued Slurm job" in r for r in reasons), reasons


def test_hostile_workspace_paths_work_on_the_real_cluster():
    with tempfile.TemporaryDirectory(prefix="orch-slurm-") as tmp:
        target = os.path.join(tmp, "PWNED")
        root = os.path.join(tmp, f"a dir with 'quotes' \"and\" $(touch {target}) `touch {target}2`")
        os.makedirs(root)
        exp, ws = grid_experiment(root, name="hostile", networks=("hybridgnet",), seeds=(1,))
        orch("submit", exp)
        (r,) = wait_all(exp)
        assert r["state"] == "done"
        logs = glob.glob(os.path.join(glob.escape(ws), "logs", "*_*.out"))
        assert logs and "run(s) " + r["id"] in open(logs[0]).read(), logs
        assert not os.path.exists(target) and not os.path.exists(target + "2")


def test_injection_through_the_experiment_name_runs_nothing():
    with tempfile.TemporaryDirectory(prefix="orch-slurm-") as tmp:
        target = os.path.join(tmp, "pwned")
        exp, ws = grid_experiment(tmp, name=f'x"; touch {target}; "', networks=("hybridgnet",), seeds=(1,))
        before = jobs_in_slurm()
        p = orch("submit", exp, check=False)  # names follow one rule (core/names.h): refused before anything runs
        assert p.returncode == 2 and "letters, digits" in p.stderr, (p.returncode, p.stderr)
        assert jobs_in_slurm() == before and not os.path.exists(ws)
        assert not os.path.exists(target)


def two_dataset_experiment(tmp, networks, name="deps"):
    """unet and unet_joint on two data sets; `networks` carries the per-network and per-data-set overrides."""
    ds = lambda seed: {"kind": "lh", "size": 64, "synthetic": {"count": 20, "seed": seed, "size": 64}}  # noqa: E731
    doc = {"name": name, "workspace": os.path.join(tmp, "ws"), "backend": "slurm",
           "datasets": {"a": ds(3), "b": ds(4)}, "networks": networks, "seeds": [1],
           "training": {"epochs": 2, "threads": 1, "loader_threads": 1, "device": "cpu"},
           "resources": {"cpus": 1, "array_throttle": 4, "time": "00:10:00"}}
    path = os.path.join(tmp, "exp.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    return path, doc["workspace"]


def sacct_rows(jobs, fields="JobID,State,ElapsedRaw,Start,End"):
    out = sh("sacct", "-D", "-X", "-P", "-n", "-j", ",".join(jobs), "-o", fields).stdout.split("\n")
    return [line.split("|") for line in out if line]


def wait_accounted(jobs, timeout=120):
    """Waits until sacct has every job (array task) ended: the store says done when the worker finishes, before
    the job itself ends and before slurmdbd has its record, which lags further on a loaded machine."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        rows = {r[0]: r for r in sacct_rows(jobs, "JobID,State,End")}
        if all(j in rows and rows[j][1] not in ("PENDING", "RUNNING", "REQUEUED", "COMPLETING") and
               rows[j][2] not in ("Unknown", "None", "") for j in jobs):
            return
        time.sleep(0.5)
    raise AssertionError(f"sacct did not show {jobs} ended within {timeout} s: {sacct_rows(jobs, 'JobID,State,End')}")


def by_run(exp):
    return {(r["model"], r["dataset"]): r for r in json.loads(orch("status", exp, "--json").stdout)}


def test_per_run_dependencies_per_network_time_limits_and_accounting():
    with tempfile.TemporaryDirectory(prefix="orch-slurm-") as tmp:
        # b's UNet trains far longer than a's: a's joint network must not wait for it.
        exp, ws = two_dataset_experiment(tmp, {
            "unet": {"resources": {"time": "00:20:00"}, "datasets": {"b": {"training": {"epochs": 250}}}},
            "unet_joint": {}})
        p = orch("submit", exp)
        assert "4 run(s) in 3 Slurm array job(s)" in p.stdout, p.stdout
        runs = by_run(exp)
        unet_job = runs[("unet", "a")]["job"].split("_")[0]
        joint_a = runs[("unet_joint", "a")]["job"]
        # Per-network time limits: in the scripts and in squeue (the joint arrays wait, so squeue lists them).
        scripts = {os.path.basename(f): open(f).read() for f in glob.glob(os.path.join(ws, "slurm", "*.sbatch"))}
        assert sum("#SBATCH --time=00:20:00" in t for t in scripts.values()) == 1, scripts
        assert sum("#SBATCH --time=00:10:00" in t for t in scripts.values()) == 2, scripts
        queue = {f[0]: f[1:] for f in (line.split() for line in sh("squeue", "-h", "-r", "-o", "%i %l %E").stdout.split("\n")) if f}
        # b's joint run waits on b's UNet task alone (a's may have finished already: its limit is checked if listed).
        assert queue[runs[("unet_joint", "b")]["job"]][1].startswith("afterok:" + runs[("unet", "b")]["job"] + "("), queue
        assert queue[runs[("unet_joint", "b")]["job"]][0] == "10:00", queue
        assert queue.get(joint_a, ["10:00"])[0] == "10:00", queue
        limits = {j: f[0] for j, f in queue.items()}
        assert limits.get(runs[("unet", "b")]["job"], "20:00") == "20:00", limits  # it may have ended already
        plan = orch("plan", exp).stdout
        assert "time 00:20:00" in plan and "time 00:10:00" in plan, plan
        wait_all(exp, timeout=420)
        runs = by_run(exp)
        wait_accounted([runs[k]["job"] for k in runs])
        rows = {r[0]: r for r in sacct_rows([runs[k]["job"] for k in runs])}
        start = lambda k: rows[runs[k]["job"]][3]  # noqa: E731  (ISO times compare as text)
        end = lambda k: rows[runs[k]["job"]][4]  # noqa: E731
        assert start(("unet_joint", "a")) >= end(("unet", "a")), rows
        assert start(("unet_joint", "a")) < end(("unet", "b")), ("a's joint run waited for b's UNet", rows)
        assert start(("unet_joint", "b")) >= end(("unet", "b")), rows
        # Accounting: what status recorded is what sacct says, row for row (requeues included, -D).
        orch("status", exp)
        db = sqlite3.connect(os.path.join(ws, "orchestrator.db"))
        stored = {(j, r): (st, el) for j, r, st, el in db.execute("SELECT job_id, run_id, state, elapsed_s FROM job_accounts")}
        for k, r in runs.items():
            assert (r["job"], r["id"]) in stored, (k, stored)
        jobs = sorted({j for j, _ in stored})
        truth = {(row[0], row[3]): (row[1].split()[0], float(row[2])) for row in sacct_rows(jobs) if row[3] not in ("Unknown", "None")}
        mine = {(j, s): (st, el) for j, s, st, el in
                db.execute("SELECT DISTINCT job_id, started, state, elapsed_s FROM job_accounts WHERE backend = 'slurm'")}
        assert mine == truth, (mine, truth)
        assert unet_job in {j.split("_")[0] for j in jobs}
        report = orch("report", exp)
        assert report.returncode == 0


def test_failed_unet_of_one_dataset_leaves_the_other_going():
    with tempfile.TemporaryDirectory(prefix="orch-slurm-") as tmp:
        # a's UNet asks for CUDA, which this machine has not: it fails at once.
        exp, ws = two_dataset_experiment(tmp, {
            "unet": {"datasets": {"a": {"training": {"device": "cuda"}}}, "training": {"epochs": 10}},
            "unet_joint": {}}, name="fails")
        orch("submit", exp)
        t0 = time.time()
        while time.time() - t0 < 300:
            runs = by_run(exp)
            if runs[("unet_joint", "b")]["state"] == "done" and runs[("unet_joint", "a")]["state"] not in ("queued", "running"):
                break
            time.sleep(2)
        assert runs[("unet", "a")]["state"] == "failed", runs[("unet", "a")]
        assert runs[("unet", "b")]["state"] == "done" and runs[("unet_joint", "b")]["state"] == "done", runs
        joint = runs[("unet_joint", "a")]
        assert joint["state"] == "cancelled", joint
        assert "its dependency " + runs[("unet", "a")]["id"] + " ended failed" in joint["last_error"] + orch("status", exp).stdout
        # kill_invalid_depend: Slurm cancelled it (an array never started is listed as 12_[0])
        (row,) = sacct_rows([joint["job"].split("_")[0]])
        assert row[1].startswith("CANCELLED"), row
        plan = json.loads(orch("plan", exp, "--json").stdout)
        assert {(r["model"], r["dataset"]) for r in plan if r["action"] == "submit"} == {("unet", "a"), ("unet_joint", "a")}


def test_runs_packed_on_one_fake_gpu_share_its_task_and_its_hours():
    with tempfile.TemporaryDirectory(prefix="orch-slurm-") as tmp:
        exp, ws = grid_experiment(tmp, name="packed", networks=("hybridgnet",), seeds=(1, 2),
                                  resources={"gpus": 1, "runs_per_gpu": 2})
        p = orch("submit", exp)
        assert "2 run(s) in 1 Slurm array job(s)" in p.stdout, p.stdout
        script = open(glob.glob(os.path.join(ws, "slurm", "*.sbatch"))[0]).read()
        assert "#SBATCH --gres=gpu:1" in script and "--array=0-0%" in script, script
        runs = wait_all(exp)
        (task,) = {r["job"] for r in runs}
        db = sqlite3.connect(os.path.join(ws, "orchestrator.db"))
        rows = list(db.execute("SELECT job_id, gpus FROM attempts"))
        assert sorted(rows) == [(task, 0.5), (task, 0.5)], rows  # two workers, one fake GPU between them
        wait_accounted([task])
        (tres,) = sacct_rows([task], "AllocTRES")[0]
        assert "gres/gpu=1" in tres, tres
        orch("status", exp)
        accounts = list(db.execute("SELECT run_id, gpus FROM job_accounts WHERE job_id = ?", (task,)))
        assert len(accounts) == 2 and all(g == 1 for _, g in accounts), accounts  # the job's GPU, split by the report
        logs = open(glob.glob(os.path.join(ws, "logs", "*_0.out"))[0]).read()
        assert all(r["id"] in logs for r in runs), logs  # one task ran both


def set_slurm_conf(key, value):
    """Sets one slurm.conf parameter and restarts the controller with it (MaxArraySize needs a restart)."""
    conf = os.path.join(LAB, "etc", "slurm.conf")
    lines = [l for l in open(conf).read().splitlines() if not l.startswith(key + "=")]
    with open(conf, "w") as f:
        f.write("\n".join(lines + [f"{key}={value}"]) + "\n")
    restart_slurmctld()
    shown = dict(l.split("=", 1) for l in sh("scontrol", "show", "config").stdout.splitlines() if "=" in l)
    running = {k.strip(): v.strip() for k, v in shown.items()}.get(key, "")
    # every word of the value set (Slurm may show more: limits implies associations)
    assert set(str(value).lower().split(",")) <= set(running.lower().split(",")), \
        f"slurmctld runs with {key} = {running!r} after setting {value!r}"


def grid_queue(name):
    """The tasks of this grid's arrays Slurm has pending or running now (squeue, one line per task)."""
    out = sh("squeue", "-h", "-r", "-t", "PENDING,RUNNING,CONFIGURING,COMPLETING", "-o", "%j %i", check=False).stdout
    return [l for l in out.splitlines() if l.startswith(f"orch-{name}-")]


def cancel_grid_jobs(name):
    """Cancels every job of this grid still in Slurm's queue, so that a failed test leaves none to the next one."""
    out = sh("squeue", "-h", "-o", "%A %j", check=False).stdout
    jobs = [f[0] for f in (l.split() for l in out.splitlines()) if len(f) == 2 and f[1].startswith(f"orch-{name}-")]
    if jobs:
        sh("scancel", *jobs, check=False)


def trim_checkpoints(ws, done_ids, trimmed):
    """Empties the checkpoint files of done runs (kept, so that nothing shows them damaged): each trivial run
    leaves 24 MB of them (three 8 MB files), 72 GB at 3,000 runs, more than this VM's disk has free."""
    for run_id in done_ids:
        if run_id in trimmed:
            continue
        for path in glob.glob(os.path.join(ws, "runs", run_id, "checkpoints", "*.h5")):
            os.truncate(path, 0)
        trimmed.add(run_id)


def test_a_large_grid_under_array_and_queue_limits_survives_a_killed_follow():
    """Issue 19's limits on the real cluster: MaxArraySize lowered to 101 and resources.max_queued set, a grid of
    ORCH_SLURM_SCALE_RUNS trivial runs (a seed sweep; 300 by default, 3,000 by hand) under `submit --follow`, which
    is killed (SIGKILL) half way; `resume --follow` finishes it. Throughout, no array has more than 101 tasks and
    the grid never has more than max_queued tasks pending or running in Slurm, and status never shows a run failed
    or lost; at the end every run is done and was trained once (one attempt each)."""
    runs = int(os.environ.get("ORCH_SLURM_SCALE_RUNS", "300"))
    limit = min(runs // 2, max(150, runs // 10))  # above 101 from 300 runs: the first submission's array is cut
    set_slurm_conf("MaxArraySize", 101)
    with tempfile.TemporaryDirectory(prefix="orch-slurm-") as tmp:
        exp, ws = grid_experiment(tmp, name="big", epochs=1, networks=("hybridgnet",), seeds=range(1, runs + 1),
                                  resources={"max_queued": limit, "array_throttle": 4})
        env = dict(ENV, ORCH_FOLLOW_POLL_S="2")
        log = open(os.path.join(tmp, "follow.out"), "w")
        follow = subprocess.Popen([BIN, "submit", exp, "--follow"], stdout=log, stderr=subprocess.STDOUT, env=env)
        most_queued, samples, done, killed, t0, trimmed = 0, 0, 0, False, time.time(), set()
        try:
            while time.time() - t0 < 40 * runs:
                queued = len(grid_queue("big"))
                most_queued = max(most_queued, queued)
                assert queued <= limit, f"{queued} tasks of the grid in Slurm's queue, max_queued {limit}"
                # status tops the queue up too, racing --follow for the room: a done run's task that Slurm still lists
                # (COMPLETING) must keep taking room for both (151 of 150 seen once before it did).
                st = (json.loads(orch("status", exp, "--json").stdout)
                      if os.path.exists(os.path.join(ws, "orchestrator.db")) else [])
                samples += 1
                active = sum(r["state"] in ("queued", "running") for r in st)
                assert active <= limit, f"status says {active} runs queued or running, max_queued {limit}"
                bad = [r for r in st if r["state"] in ("failed", "lost", "cancelled", "timeout")]
                assert not bad, (bad[:3], slurm_diagnosis(bad[0]["job"], ws))
                now = sum(r["state"] == "done" for r in st)
                assert now >= done, f"done went from {done} to {now}"
                trim_checkpoints(ws, [r["id"] for r in st if r["state"] == "done"], trimmed)
                done = now
                if not killed and done >= runs // 2:
                    follow.kill()
                    follow.wait()
                    killed = True
                    follow = subprocess.Popen([BIN, "resume", exp, "--follow"], stdout=log, stderr=subprocess.STDOUT, env=env)
                if killed and follow.poll() is not None:
                    break
                time.sleep(3)
        finally:  # a failed assertion leaves neither the follower nor the grid's jobs behind
            if follow.poll() is None:
                follow.kill()
                follow.wait()
            if not (killed and follow.returncode == 0):
                cancel_grid_jobs("big")
        assert killed and follow.returncode == 0, (follow.poll(), open(log.name).read()[-3000:])
        st = json.loads(orch("status", exp, "--json").stdout)
        assert len(st) == runs and all(r["state"] == "done" for r in st), [r for r in st if r["state"] != "done"][:3]
        db = sqlite3.connect(os.path.join(ws, "orchestrator.db"))
        per_run = dict(db.execute("SELECT run_id, COUNT(*) FROM attempts GROUP BY run_id"))
        assert len(per_run) == runs and set(per_run.values()) == {1}, "every run trained once"
        sizes = [len(open(m).read().split()) for m in glob.glob(os.path.join(ws, "slurm", "*.manifest"))]
        assert max(sizes) <= 101 and sum(sizes) == runs, sizes
        assert runs < 204 or 101 in sizes, ("a submission with room for more than 101 runs is cut at 101", sizes)
        arrays = {l.split("_")[0] for l in sh("sacct", "-X", "-P", "-n", "--name", ",".join(
            open(m + ".jobname").read().strip() for m in glob.glob(os.path.join(ws, "slurm", "*.manifest"))),
            "-o", "JobID").stdout.split()}
        assert len(arrays) == len(sizes), (arrays, sizes)
        print(f"  {runs} runs in {len(sizes)} arrays (largest {max(sizes)}), at most {most_queued} of {limit} queued, "
              f"{samples} status samples, {time.time() - t0:.0f} s")


def test_a_qos_submit_limit_is_read_and_respected():
    """Where Slurm enforces limits (AccountingStorageEnforce=limits,qos), the user's QOS MaxSubmitJobsPerUser (5)
    is read with sacctmgr: a submit of twelve runs queues five and holds seven back, `submit --follow` submits the
    rest as jobs end, sbatch is never refused, and every run ends done, trained once."""
    sh("sacctmgr", "-i", "modify", "qos", "normal", "set", "MaxSubmitJobsPerUser=5")
    set_slurm_conf("AccountingStorageEnforce", "associations,limits,qos")
    with tempfile.TemporaryDirectory(prefix="orch-slurm-") as tmp:
        exp, ws = grid_experiment(tmp, name="qos", epochs=1, networks=("hybridgnet",), seeds=range(1, 13))
        p = subprocess.run([BIN, "submit", exp, "--follow"], capture_output=True, text=True, timeout=600,
                           env=dict(ENV, ORCH_FOLLOW_POLL_S="1"))
        assert p.returncode == 0, p.stdout + p.stderr
        assert "5 run(s) in 1 Slurm array job(s)" in p.stdout and "7 run(s) held back" in p.stdout, p.stdout
        st = json.loads(orch("status", exp, "--json").stdout)
        assert len(st) == 12 and all(r["state"] == "done" for r in st), st
        db = sqlite3.connect(os.path.join(ws, "orchestrator.db"))
        assert not db.execute("SELECT job_id FROM jobs WHERE job_id LIKE 'sbatch-failed:%'").fetchall(), "sbatch refused"
        assert {n for (n,) in db.execute("SELECT COUNT(*) FROM attempts GROUP BY run_id")} == {1}


def main():
    if os.geteuid() != 0:
        print("skip: the dev cluster needs root")
        sys.exit(77)
    start = subprocess.run([os.path.join(SOURCE, "slurm", "dev-cluster", "start"), LAB], capture_output=True, text=True)
    if start.returncode != 0:
        print(start.stdout, start.stderr)
        sys.exit(1)
    print(start.stdout.strip())
    try:
        run([test_fake_gpus_are_scheduled, test_two_task_mpi_run_through_srun, test_sigusr1_checkpoints_and_requeues_its_own_job,
             test_grid_as_arrays_honours_dependencies_and_a_second_submit_adds_nothing,
             test_scancel_then_resume_continues_from_the_checkpoint, test_injection_through_the_experiment_name_runs_nothing,
             test_hostile_workspace_paths_work_on_the_real_cluster,
             test_time_limit_signal_checkpoint_requeue_and_finish,
             test_requeue_by_hand_and_a_controller_restart_mid_grid,
             test_a_worker_killed_by_sigkill_is_retried_by_its_task,
             test_a_node_crash_mid_run_is_found_and_resume_finishes_the_grid,
             test_a_node_crash_needs_no_resume_while_submit_follow_runs,
             test_per_run_dependencies_per_network_time_limits_and_accounting,
             test_failed_unet_of_one_dataset_leaves_the_other_going,
             test_runs_packed_on_one_fake_gpu_share_its_task_and_its_hours,
             # last: these change the cluster's configuration
             test_a_large_grid_under_array_and_queue_limits_survives_a_killed_follow,
             test_a_qos_submit_limit_is_read_and_respected])
    finally:
        subprocess.run([os.path.join(SOURCE, "slurm", "dev-cluster", "stop"), LAB], env=ENV)


if __name__ == "__main__":
    main()
