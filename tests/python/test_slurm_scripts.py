"""The generated Slurm job scripts, run through bash in every branch, with a fake sbatch (and sacct, squeue,
scontrol, scancel) that records what it was asked: workspace paths with spaces, quotes, $(...) and backticks reach
the worker literally and run nothing; a bad manifest line ends in the error branch; runs packed onto one GPU each
get a worker and requeue their task together; each array depends only on the tasks its runs need."""
import fcntl
import json
import os
import sqlite3
import stat
import signal
import subprocess
import time

from common import BIN, run, scratch

FAKE_SBATCH = r'''#!/usr/bin/python3
import json, os, sys
state = os.environ["FAKE_SLURM_DIR"]
n = len(open(os.path.join(state, "calls")).read().splitlines()) if os.path.exists(os.path.join(state, "calls")) else 0
job = str(7000 + n)
with open(os.path.join(state, "calls"), "a") as f:
    f.write(json.dumps({"argv": sys.argv[1:], "job": job}) + "\n")
print(job)
'''
FAKE_RECORDER = r'''#!/usr/bin/python3
import json, os, sys
with open(os.path.join(os.environ["FAKE_SLURM_DIR"], os.path.basename(sys.argv[0]) + ".log"), "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\n")
'''
# scontrol: records what it is asked; `show config` answers MaxArraySize and MaxJobCount from FAKE_MAX_ARRAY_SIZE
# and FAKE_MAX_JOB_COUNT, and AccountingStorageEnforce from FAKE_ENFORCE, when set.
FAKE_SCONTROL = FAKE_RECORDER + r'''
if sys.argv[1:] == ["show", "config"] and os.environ.get("FAKE_ENFORCE"):
    print("AccountingStorageEnforce = " + os.environ["FAKE_ENFORCE"])
if sys.argv[1:] == ["show", "config"] and os.environ.get("FAKE_MAX_ARRAY_SIZE"):
    print("MaxArraySize            = " + os.environ["FAKE_MAX_ARRAY_SIZE"])
if sys.argv[1:] == ["show", "config"] and os.environ.get("FAKE_MAX_JOB_COUNT"):
    print("MaxJobCount             = " + os.environ["FAKE_MAX_JOB_COUNT"])
'''
# sacctmgr: the user's associations (FAKE_ASSOC) and the QOS rows (FAKE_QOS), as `-nP` prints them.
FAKE_SACCTMGR = FAKE_RECORDER + r'''
if "assoc" in sys.argv:
    sys.stdout.write(os.environ.get("FAKE_ASSOC", ""))
if "qos" in sys.argv:
    sys.stdout.write(os.environ.get("FAKE_QOS", ""))
'''
# squeue: asked for a user's tasks in the queue (-u, -o %F), prints the array id of each task the fake sbatch
# accepted that is still in the queue (PENDING unless FAKE_SLURM_DIR/task_states.json says otherwise; COMPLETING
# counts), then the ids in FAKE_USER_JOBS (other work of the user), one line per task.
FAKE_SQUEUE = FAKE_RECORDER + r'''
if "-u" in sys.argv:
    state = os.environ["FAKE_SLURM_DIR"]
    calls = [json.loads(l) for l in open(os.path.join(state, "calls"))] if os.path.exists(os.path.join(state, "calls")) else []
    states_path = os.path.join(state, "task_states.json")
    states = json.load(open(states_path)) if os.path.exists(states_path) else {}
    for c in calls:
        for i in range(len(open(c["argv"][-1]).read().splitlines())):
            if states.get(f"{c['job']}_{i}", "PENDING") in ("PENDING", "RUNNING", "COMPLETING"):
                print(c["job"])
    for job in os.environ.get("FAKE_USER_JOBS", "").split():
        print(job)
'''
# Stands in for the orchestrator binary inside the job script: records its arguments, exits with the code the
# test asks for per run id.
FAKE_ORCHESTRATOR = r'''#!/usr/bin/python3
import json, os, sys
d = os.environ["FAKE_SLURM_DIR"]
with open(os.path.join(d, "worker.log"), "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\n")
run = sys.argv[sys.argv.index("--run") + 1]
codes = json.loads(os.environ.get("FAKE_EXIT", "{}"))
if codes.get(run) == 137 and os.environ.get("FAKE_OOM_FILE"):  # the OOM killer took it: the cgroup counts one more
    with open(os.environ["FAKE_OOM_FILE"], "w") as f:
        f.write("oom 1\noom_kill 1\n")
sys.exit(codes.get(run, 0))
'''

# Answers as Slurm's accounting would for the jobs the fake sbatch accepted: every task PENDING unless the test wrote
# another state for it in FAKE_SLURM_DIR/task_states.json ({"7000_1": "NODE_FAIL"}); by job name too.
FAKE_SACCT = r'''#!/usr/bin/python3
import json, os, re, sys
state = os.environ["FAKE_SLURM_DIR"]
calls = [json.loads(l) for l in open(os.path.join(state, "calls"))] if os.path.exists(os.path.join(state, "calls")) else []
def tasks(call):
    manifest = call["argv"][-1]
    return len(open(manifest).read().splitlines())
def name(call):
    script = next(a for a in call["argv"] if a.endswith(".sbatch"))
    return re.search(r"#SBATCH --job-name=(\S+)", open(script).read()).group(1)
args = sys.argv[1:]
named = [a.split("=", 1)[1] for a in args if a.startswith("--name=")]
wanted = args[args.index("-j") + 1].split(",") if "-j" in args else None
for c in calls:
    if named and name(c) not in named:
        continue
    if wanted is not None and c["job"] not in wanted:
        continue
    states_path = os.path.join(state, "task_states.json")
    states = json.load(open(states_path)) if os.path.exists(states_path) else {}
    for i in range(tasks(c)):
        task = f"{c['job']}_{i}"
        print(task if named else f"{task}|{states.get(task, 'PENDING')}|0|Unknown|Unknown|")
'''

HOSTILE = ["with space", "q'uote", 'd"quote', "$(touch PWNED)", "`touch PWNED2`", "semi;colon&amp", "tab\there"]


def tool(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def fake_slurm(tmp):
    bin_dir = os.path.join(tmp, "fakebin")
    state = os.path.join(tmp, "fakestate")
    os.makedirs(bin_dir)
    os.makedirs(state)
    tool(os.path.join(bin_dir, "sbatch"), FAKE_SBATCH)
    tool(os.path.join(bin_dir, "sacct"), FAKE_SACCT)
    tool(os.path.join(bin_dir, "scancel"), FAKE_RECORDER)
    tool(os.path.join(bin_dir, "squeue"), FAKE_SQUEUE)
    tool(os.path.join(bin_dir, "sacctmgr"), FAKE_SACCTMGR)
    tool(os.path.join(bin_dir, "scontrol"), FAKE_SCONTROL)
    tool(os.path.join(bin_dir, "fake-orchestrator"), FAKE_ORCHESTRATOR)
    env = dict(os.environ, PATH=bin_dir + ":" + os.environ["PATH"], FAKE_SLURM_DIR=state)
    return env, state, os.path.join(bin_dir, "fake-orchestrator")


def scontrol_requeues(state):
    """The `scontrol requeue` calls the fake recorded (submit also asks `scontrol show config`)."""
    log = os.path.join(state, "scontrol.log")
    return [c for c in map(json.loads, open(log)) if c[:1] == ["requeue"]] if os.path.exists(log) else []


def experiment(tmp, ws, networks=("hybridgnet",), seeds=(1,), resources=None, datasets=None):
    doc = {"name": "scripts", "workspace": ws, "backend": "slurm",
           "datasets": datasets or {"a": {"kind": "lh", "size": 64, "synthetic": {"count": 12, "seed": 3, "size": 64}}},
           "networks": list(networks), "seeds": list(seeds),
           "training": {"epochs": 1, "threads": 1, "loader_threads": 1, "device": "cpu"},
           "resources": dict({"cpus": 1}, **(resources or {}))}
    path = os.path.join(tmp, f"exp-{abs(hash(ws))}.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    return path


def submit(exp, env, check=True):
    p = subprocess.run([BIN, "submit", exp], capture_output=True, text=True, env=env)
    if check:
        assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    return p


def calls(state):
    path = os.path.join(state, "calls")
    return [json.loads(l) for l in open(path)] if os.path.exists(path) else []


def run_task(call, task, env, fake_bin, exit_codes=None, restarts=0):
    """Runs one array task of a recorded sbatch call through bash, as Slurm would, with the fake orchestrator."""
    argv = call["argv"]
    script = next(a for a in argv if a.endswith(".sbatch"))
    args = argv[argv.index(script) + 1:]
    assert len(args) == 3, args
    e = dict(env, SLURM_ARRAY_TASK_ID=str(task), SLURM_ARRAY_JOB_ID=call["job"], SLURM_JOB_ID=str(int(call["job"]) + task),
             FAKE_EXIT=json.dumps(exit_codes or {}), SLURM_RESTART_COUNT=str(restarts))
    return subprocess.run(["bash", script, fake_bin, args[1], args[2]], capture_output=True, text=True, env=e,
                           cwd=os.path.dirname(script)), args


def worker_calls(state):
    path = os.path.join(state, "worker.log")
    out = [json.loads(l) for l in open(path)] if os.path.exists(path) else []
    if os.path.exists(path):
        os.remove(path)
    return out


def test_hostile_workspace_paths_reach_the_worker_literally_and_run_nothing():
    with scratch() as tmp:
        env, state, fake_bin = fake_slurm(tmp)
        for name in HOSTILE:
            ws = os.path.join(tmp, name, "ws")
            exp = experiment(tmp, ws)
            before = len(calls(state))
            submit(exp, env)
            (call,) = calls(state)[before:]
            argv = call["argv"]
            assert f"--output={ws}/logs/%A_%a.out" in argv, argv
            r, args = run_task(call, 0, env, fake_bin)
            assert r.returncode == 0, (name, r.stdout, r.stderr)
            assert args[1] == ws
            (w,) = worker_calls(state)
            assert w[:3] == ["worker", "--workspace", ws], (name, w)
            manifest = open(args[2]).read().split()
            assert w[4] == manifest[0]
        assert not any("PWNED" in f for _, _, files in os.walk(tmp) for f in files), "a path was executed"
        assert not os.path.exists("PWNED") and not os.path.exists("PWNED2")


def test_the_error_branch_names_the_manifest_and_runs_nothing():
    with scratch() as tmp:
        env, state, fake_bin = fake_slurm(tmp)
        ws = os.path.join(tmp, "$(touch PWNED) dir", "ws")
        exp = experiment(tmp, ws)
        submit(exp, env)
        (call,) = calls(state)
        script = next(a for a in call["argv"] if a.endswith(".sbatch"))
        manifest = call["argv"][-1]
        with open(manifest, "w") as f:
            f.write("x;touch PWNED3\n\n-rf\n")
        for task in (0, 1, 2, 5):
            r, _ = run_task(call, task, env, fake_bin)
            assert r.returncode == 2, (task, r.returncode, r.stderr)
            assert manifest in r.stderr, r.stderr
        assert not worker_calls(state)
        assert not any("PWNED" in f for _, _, files in os.walk(tmp) for f in files)
        assert os.path.exists(script)


def test_refused_workspace_paths():
    with scratch() as tmp:
        env, state, _ = fake_slurm(tmp)
        for name in ("100%", "back\\slash"):
            exp = experiment(tmp, os.path.join(tmp, name, "ws"))
            p = submit(exp, env, check=False)
            assert p.returncode == 2 and "Slurm cannot take this path literally" in p.stderr, (name, p.stderr)
        assert not calls(state), "nothing may be submitted for a refused path"


def test_runs_packed_on_one_gpu_each_get_a_worker_and_requeue_together():
    with scratch() as tmp:
        env, state, fake_bin = fake_slurm(tmp)
        ws = os.path.join(tmp, "with space", "ws")
        exp = experiment(tmp, ws, seeds=(1, 2, 3), resources={"gpus": 1, "runs_per_gpu": 2, "cpus": 2})
        submit(exp, env)
        (call,) = calls(state)
        script = open(next(a for a in call["argv"] if a.endswith(".sbatch"))).read()
        assert "#SBATCH --array=0-1%4" in script and "#SBATCH --gres=gpu:1" in script and "#SBATCH --cpus-per-task=4" in script, script
        lines = open(call["argv"][-1]).read().splitlines()
        assert [len(l.split()) for l in lines] == [2, 1]
        r, _ = run_task(call, 0, env, fake_bin)
        assert r.returncode == 0, r.stderr
        ws_calls = worker_calls(state)
        assert sorted(w[4] for w in ws_calls) == sorted(lines[0].split())
        assert all("--no-self-requeue" in w and w[2] == ws for w in ws_calls), ws_calls
        # One of the two checkpointed (75): the task requeues itself and exits 75.
        first = lines[0].split()[0]
        r, _ = run_task(call, 0, env, fake_bin, exit_codes={first: 75})
        assert r.returncode == 75, (r.returncode, r.stderr)
        requeues = scontrol_requeues(state)
        assert requeues == [["requeue", call["job"] + "_0"]], requeues
        assert len(worker_calls(state)) == 2
        # The single-run task of the same array runs one worker, which requeues itself.
        r, _ = run_task(call, 1, env, fake_bin)
        assert r.returncode == 0 and worker_calls(state)[0][4] == lines[1], r.stderr


def test_a_worker_killed_by_sigkill_is_retried_up_to_max_attempts():
    """The job script's retry policy: a worker that ended by SIGKILL (137: the OOM killer, kill -9) makes the task
    requeue itself while SLURM_RESTART_COUNT + 1 < resources.max_attempts; a failure (exit 1) is never retried; a
    single worker's own requeue (75) is not repeated by the script."""
    with scratch() as tmp:
        env, state, fake_bin = fake_slurm(tmp)
        ws = os.path.join(tmp, "ws")
        submit(experiment(tmp, ws, resources={"max_attempts": 2}), env)
        (call,) = calls(state)
        (run_id,) = open(call["argv"][-1]).read().split()
        requeues = lambda: scontrol_requeues(state)  # noqa: E731
        r, _ = run_task(call, 0, env, fake_bin, exit_codes={run_id: 137})
        assert r.returncode == 75 and "retried (attempt 2 of 2)" in r.stderr, (r.returncode, r.stderr)
        assert requeues() == [["requeue", call["job"] + "_0"]], requeues()
        r, _ = run_task(call, 0, env, fake_bin, exit_codes={run_id: 137}, restarts=1)
        assert r.returncode == 137 and "not retried" in r.stderr, (r.returncode, r.stderr)
        assert len(requeues()) == 1
        r, _ = run_task(call, 0, env, fake_bin, exit_codes={run_id: 1})
        assert r.returncode == 1 and len(requeues()) == 1, (r.returncode, r.stderr)
        r, _ = run_task(call, 0, env, fake_bin, exit_codes={run_id: 75})
        assert r.returncode == 75 and len(requeues()) == 1, (r.returncode, r.stderr)
        assert all("--no-self-requeue" not in w for w in worker_calls(state))


def fake_memory_cgroup(tmp):
    """A cgroup tree under tmp where the job script (a child of this process, so in its cgroup) reads its memory
    cgroup's OOM kills: (ORCH_CGROUP_ROOT, the counter file), the counter at 0."""
    lines = open("/proc/self/cgroup").read().splitlines()
    v2 = [l[3:] for l in lines if l.startswith("0::")]
    v1 = [l.split(":", 2)[2] for l in lines if "memory" in l.split(":")[1].split(",")]
    root = os.path.join(tmp, "cgroup")
    if v2:
        path = root + v2[0].rstrip("/") + "/memory.events"
    else:
        path = root + "/memory" + v1[0].rstrip("/") + "/memory.oom_control"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("oom 0\noom_kill 0\n")
    return root, path


def test_a_worker_the_oom_killer_took_is_not_requeued_with_the_same_memory():
    """A worker killed by SIGKILL while its memory cgroup's oom_kill count rose (the OOM killer, not kill -9): the
    task does not requeue itself with the memory that was too little; it ends with 137 and says that submit
    --follow or resume dispatches it again with more (test_a_run_that_ran_out_of_memory_asks_for_more...)."""
    with scratch() as tmp:
        env, state, fake_bin = fake_slurm(tmp)
        root, counter = fake_memory_cgroup(tmp)
        env.update(ORCH_CGROUP_ROOT=root, FAKE_OOM_FILE=counter)
        ws = os.path.join(tmp, "ws")
        submit(experiment(tmp, ws, resources={"max_attempts": 3}), env)
        (call,) = calls(state)
        (run_id,) = open(call["argv"][-1]).read().split()
        r, _ = run_task(call, 0, env, fake_bin, exit_codes={run_id: 137})
        assert r.returncode == 137 and "out-of-memory killer" in r.stderr, (r.returncode, r.stderr)
        assert scontrol_requeues(state) == [], "not requeued with the same memory"
        with open(counter, "w") as f:
            f.write("oom 1\noom_kill 1\n")  # an earlier kill, before this task: kill -9 now is retried as before
        env.pop("FAKE_OOM_FILE")
        r, _ = run_task(call, 0, env, fake_bin, exit_codes={run_id: 137})
        assert r.returncode == 75 and "retried (attempt 2 of 3)" in r.stderr, (r.returncode, r.stderr)


def test_a_run_that_ran_out_of_memory_asks_for_more_when_dispatched_again():
    """resources.oom_mem_factor: a run whose Slurm job ended OUT_OF_MEMORY (sacct's state, in the store's
    accounting rows) is dispatched again by resume with resources.mem times the factor per such end; the other
    runs keep their memory (and so another array)."""
    with scratch() as tmp:
        env, state, fake_bin = fake_slurm(tmp)
        ws = os.path.join(tmp, "ws")
        exp = experiment(tmp, ws, seeds=(1, 2), resources={"mem": "4G", "oom_mem_factor": 1.5})
        submit(exp, env)
        db = sqlite3.connect(os.path.join(ws, "orchestrator.db"))
        (oom, _), (other, _) = sorted(db.execute("SELECT run_id, state FROM runs"))
        db.execute("UPDATE runs SET state = 'failed'")
        db.execute("INSERT INTO job_accounts(job_id, run_id, backend, state, elapsed_s, gpus, started, ended) "
                   "VALUES ('77_0', ?, 'slurm', 'OUT_OF_MEMORY', 10, 0, 'x', 'y')", (oom,))
        db.commit()
        before = len(calls(state))
        p = subprocess.run([BIN, "resume", exp], capture_output=True, text=True, env=env)
        assert p.returncode == 0, (p.stdout, p.stderr)
        mem = {}
        for call in calls(state)[before:]:
            script = open(next(a for a in call["argv"] if a.endswith(".sbatch"))).read()
            for run_id in open(call["argv"][-1]).read().split():
                mem[run_id] = [l for l in script.splitlines() if l.startswith("#SBATCH --mem=")]
        assert mem == {oom: ["#SBATCH --mem=6144M"], other: ["#SBATCH --mem=4G"]}, mem


def test_an_array_larger_than_max_array_size_is_cut():
    """Slurm refuses an array with more tasks than its MaxArraySize (`scontrol show config`): five runs of one
    shape under MaxArraySize 2 go as three arrays of at most two tasks, every run in exactly one."""
    with scratch() as tmp:
        env, state, _ = fake_slurm(tmp)
        env["FAKE_MAX_ARRAY_SIZE"] = "2"
        ws = os.path.join(tmp, "ws")
        submit(experiment(tmp, ws, seeds=(1, 2, 3, 4, 5)), env)
        arrays = [open(c["argv"][-1]).read().split() for c in calls(state)]
        assert sorted(len(a) for a in arrays) == [1, 2, 2], arrays
        assert len({r for a in arrays for r in a}) == 5, arrays
        for c in calls(state):
            script = next(a for a in c["argv"] if a.endswith(".sbatch"))
            tasks = len(open(c["argv"][-1]).read().splitlines())
            assert f"#SBATCH --array=0-{tasks - 1}%" in open(script).read()


def queued_tasks(state):
    """Every run id each recorded sbatch call queued, per call."""
    return [open(c["argv"][-1]).read().split() for c in calls(state)]


def set_task_states(state, states):
    """What the fake sacct and squeue say of these tasks from now on ({"7000_1": "COMPLETED"})."""
    path = os.path.join(state, "task_states.json")
    merged = json.load(open(path)) if os.path.exists(path) else {}
    merged.update(states)
    with open(path + ".tmp", "w") as f:
        json.dump(merged, f)
    os.rename(path + ".tmp", path)


def mark_done(ws, where, args=(), task_state="COMPLETED"):
    """Stands in for runs' jobs ending: the runs `where` selects become done, with (empty) artefacts where a done
    run has them, so that nothing shows them damaged, and their latest tasks take `task_state` in the fake Slurm
    beside the workspace (fake_slurm(tmp)): COMPLETED has left the queue, COMPLETING not yet; returns how many.
    The files come first, as a worker writes them before it records the run done: a `--follow` polling meanwhile
    would otherwise see a done run without them (damaged)."""
    db = sqlite3.connect(os.path.join(ws, "orchestrator.db"))
    with db:
        ids = [r for (r,) in db.execute("SELECT run_id FROM runs WHERE " + where, args)]
        for r in ids:
            os.makedirs(os.path.join(ws, "runs", r, "checkpoints"), exist_ok=True)
            for name in ("checkpoints/best.h5", "predictions.h5"):
                open(os.path.join(ws, "runs", r, name), "w").close()
        db.executemany("UPDATE runs SET state = 'done' WHERE run_id = ?", [(r,) for r in ids])
        tasks = [t for r in ids for (t,) in
                 db.execute("SELECT job_id FROM jobs WHERE run_id = ? ORDER BY rowid DESC LIMIT 1", (r,))]
    db.close()
    set_task_states(os.path.join(os.path.dirname(ws), "fakestate"), {t: task_state for t in tasks})
    return len(ids)


def finish_queued(ws):
    """Stands in for the jobs ending: every queued run of the store becomes done; returns how many were queued."""
    return mark_done(ws, "state = 'queued'")


def test_a_queue_limit_holds_runs_back_and_follow_or_resume_submits_them_as_jobs_end():
    """resources.max_queued 2 over five runs: submit queues two and holds three back ("new" in the store); a
    `submit --follow` killed while it waits loses nothing; `resume` tops the queue up to the limit; a second
    --follow submits the last as soon as room appears and ends once every run is done. No sbatch call ever queues
    more than the room left.
    Slurm's MaxJobCount caps the same way when the experiment sets no limit, and so does the user's MaxSubmitJobs
    (sacctmgr) less their other queued jobs where Slurm enforces limits."""
    with scratch() as tmp:
        env, state, _ = fake_slurm(tmp)
        env["ORCH_FOLLOW_POLL_S"] = "0.2"
        ws = os.path.join(tmp, "ws")
        exp = experiment(tmp, ws, seeds=(1, 2, 3, 4, 5), resources={"max_queued": 2})
        first = submit(exp, env)
        assert "3 run(s) held back by the queue limit (at most 2" in first.stdout, first.stdout
        assert [len(t) for t in queued_tasks(state)] == [2]
        follow = subprocess.Popen([BIN, "submit", exp, "--follow"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        time.sleep(1.5)  # a few rounds with no room
        follow.send_signal(signal.SIGKILL)
        follow.wait()
        assert [len(t) for t in queued_tasks(state)] == [2], "no room: nothing more submitted"
        assert finish_queued(ws) == 2
        again = subprocess.run([BIN, "resume", exp], capture_output=True, text=True, env=env)
        assert again.returncode == 0 and "1 run(s) held back" in again.stdout, again.stdout + again.stderr
        assert [len(t) for t in queued_tasks(state)] == [2, 2]
        follow = subprocess.Popen([BIN, "submit", exp, "--follow"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        time.sleep(0.8)
        assert follow.poll() is None, "still following: no room yet"
        assert finish_queued(ws) == 2
        t0 = time.time()
        while len(queued_tasks(state)) < 3 and time.time() - t0 < 60:
            time.sleep(0.1)
        assert [len(t) for t in queued_tasks(state)] == [2, 2, 1]
        time.sleep(0.8)
        assert follow.poll() is None, "still following: the last run is queued, not done"
        assert finish_queued(ws) == 1
        out, err = follow.communicate(timeout=60)
        assert follow.returncode == 0, out + err
        assert "5 done, 0 queued or running, 0 held back, 0 ended without a retry" in out, out
        assert [len(t) for t in queued_tasks(state)] == [2, 2, 1], out
        assert len({r for t in queued_tasks(state) for r in t}) == 5, "every run queued exactly once"

    with scratch() as tmp:
        env, state, _ = fake_slurm(tmp)
        env["FAKE_MAX_JOB_COUNT"] = "3"
        ws = os.path.join(tmp, "ws")
        p = submit(experiment(tmp, ws, seeds=(1, 2, 3, 4, 5)), env)
        assert [len(t) for t in queued_tasks(state)] == [3] and "2 run(s) held back" in p.stdout, p.stdout

    # Where Slurm enforces limits: the user's QOS MaxSubmitJobsPerUser (4), less the user's other job in the queue.
    with scratch() as tmp:
        env, state, _ = fake_slurm(tmp)
        env.update(FAKE_ENFORCE="associations,limits,qos", FAKE_ASSOC="|||normal|\n", FAKE_QOS="normal|4||\n",
                   FAKE_USER_JOBS="99")
        ws = os.path.join(tmp, "ws")
        p = submit(experiment(tmp, ws, seeds=(1, 2, 3, 4, 5)), env)
        assert [len(t) for t in queued_tasks(state)] == [3] and "2 run(s) held back" in p.stdout, p.stdout
        assert "MaxSubmitJobs" in p.stdout, p.stdout
        # The user's other tasks fill the limit (five against four): nothing fits, every run is held back.
        p = submit(experiment(tmp, os.path.join(tmp, "ws3"), seeds=(1, 2, 3)), dict(env, FAKE_USER_JOBS="91 92 93 94 95"))
        assert len(calls(state)) == 1 and "3 run(s) held back by the queue limit (at most 0" in p.stdout, p.stdout
        env.pop("FAKE_ENFORCE")  # not enforced: sacctmgr is not asked and nothing holds runs back
        p = submit(experiment(tmp, os.path.join(tmp, "ws2"), seeds=(1, 2, 3, 4, 5)), env)
        assert [len(t) for t in queued_tasks(state)] == [3, 5], p.stdout


def test_a_queue_limit_counts_the_whole_grid_whatever_only_lists():
    """--only narrows what is submitted, not what takes room: with max_queued 2, the runs of seed 1 and 2 queued,
    `submit --only seed=3,4` queues nothing (the grid's queue is full) and holds both back; and a run whose
    dependency is done but not listed is ready (`submit --only model=unet_joint` after UNet is done queues it)."""
    with scratch() as tmp:
        env, state, _ = fake_slurm(tmp)
        ws = os.path.join(tmp, "ws")
        exp = experiment(tmp, ws, seeds=(1, 2, 3, 4), resources={"max_queued": 2})
        p = subprocess.run([BIN, "submit", exp, "--only", "seed=1,2"], capture_output=True, text=True, env=env)
        assert p.returncode == 0 and [len(t) for t in queued_tasks(state)] == [2], p.stdout + p.stderr
        p = subprocess.run([BIN, "submit", exp, "--only", "seed=3,4"], capture_output=True, text=True, env=env)
        assert p.returncode == 0 and "2 run(s) held back by the queue limit (at most 2" in p.stdout, p.stdout + p.stderr
        assert [len(t) for t in queued_tasks(state)] == [2], "the grid's queue already holds max_queued runs"
        assert finish_queued(ws) == 2
        p = subprocess.run([BIN, "resume", exp, "--only", "seed=3,4"], capture_output=True, text=True, env=env)
        assert p.returncode == 0 and [len(t) for t in queued_tasks(state)] == [2, 2], p.stdout + p.stderr

    with scratch() as tmp:
        env, state, _ = fake_slurm(tmp)
        ws = os.path.join(tmp, "ws")
        exp = experiment(tmp, ws, networks=("unet", "unet_joint"), resources={"max_queued": 2})
        p = subprocess.run([BIN, "submit", exp, "--only", "model=unet"], capture_output=True, text=True, env=env)
        assert p.returncode == 0 and [len(t) for t in queued_tasks(state)] == [1], p.stdout + p.stderr
        assert finish_queued(ws) == 1
        p = subprocess.run([BIN, "submit", exp, "--only", "model=unet_joint"], capture_output=True, text=True, env=env)
        assert p.returncode == 0 and "held back" not in p.stdout, p.stdout + p.stderr
        assert [len(t) for t in queued_tasks(state)] == [1, 1], p.stdout


def test_status_tops_the_queue_up_with_held_back_runs_only():
    """resources.max_queued 2 over five runs: `status` submits nothing while the queue is full; once the two queued
    runs end (one done, one failed), `status` submits the runs held back, never the failed run (retries are
    submit's and resume's), and says so on stderr; `status --no-top-up` only reads; `status --json` tops up too.
    A done run whose task Slurm still lists (COMPLETING) takes room until it leaves the queue, as Slurm's own
    limits count it. A second process holding the workspace lock makes status skip the top-up with a clear line,
    not wait."""
    with scratch() as tmp:
        env, state, _ = fake_slurm(tmp)
        ws = os.path.join(tmp, "ws")
        exp = experiment(tmp, ws, seeds=(1, 2, 3, 4, 5), resources={"max_queued": 2})
        submit(exp, env)
        assert [len(t) for t in queued_tasks(state)] == [2]
        p = subprocess.run([BIN, "status", exp], capture_output=True, text=True, env=env)
        assert p.returncode == 0 and [len(t) for t in queued_tasks(state)] == [2], p.stdout + p.stderr
        first, job = queued_tasks(state)[0], calls(state)[0]["job"]
        assert mark_done(ws, "run_id = ?", (first[0],), task_state="COMPLETING") == 1
        db = sqlite3.connect(os.path.join(ws, "orchestrator.db"))
        with db:
            db.execute("UPDATE runs SET state = 'failed' WHERE run_id = ?", (first[1],))
        db.close()
        set_task_states(state, {f"{job}_1": "FAILED"})
        p = subprocess.run([BIN, "status", exp, "--no-top-up"], capture_output=True, text=True, env=env)
        assert p.returncode == 0 and len(queued_tasks(state)) == 1, p.stdout + p.stderr
        with open(os.path.join(ws, ".orchestrator.lock"), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            t0 = time.time()
            p = subprocess.run([BIN, "status", exp], capture_output=True, text=True, env=env)
            assert p.returncode == 0 and len(queued_tasks(state)) == 1, p.stdout + p.stderr
            assert "not topped up" in p.stderr and time.time() - t0 < 20, p.stderr
        p = subprocess.run([BIN, "status", exp], capture_output=True, text=True, env=env)
        assert p.returncode == 0, p.stdout + p.stderr
        assert "submitted 1 run(s) the queue limit held back" in p.stderr and "2 still held back" in p.stderr, p.stderr
        set_task_states(state, {f"{job}_0": "COMPLETED"})  # the done run's task has left the queue
        p = subprocess.run([BIN, "status", exp], capture_output=True, text=True, env=env)
        assert "submitted 1 run(s) the queue limit held back" in p.stderr and "1 still held back" in p.stderr, p.stderr
        tasks = queued_tasks(state)
        assert [len(t) for t in tasks] == [2, 1, 1] and first[1] not in tasks[1] + tasks[2], tasks
        p = subprocess.run([BIN, "status", exp, "--json"], capture_output=True, text=True, env=env)
        runs = {r["id"]: r["state"] for r in json.loads(p.stdout)}
        assert runs[first[1]] == "failed" and sum(s == "queued" for s in runs.values()) == 2, runs
        assert len(queued_tasks(state)) == 3, "the queue is full again: nothing more submitted"
        assert mark_done(ws, "state = 'queued'") == 2
        p = subprocess.run([BIN, "status", exp, "--json"], capture_output=True, text=True, env=env)
        assert [len(t) for t in queued_tasks(state)] == [2, 1, 1, 1], p.stderr
        assert len({r for t in queued_tasks(state) for r in t}) == 5, "every run queued exactly once"


def test_status_leaves_a_run_waiting_on_a_failed_dependency_alone():
    """max_queued 1 over UNet and UNet Joint (which needs UNet's best checkpoint): UNet Joint is held back; once UNet
    has failed, status finds nothing ready, so it neither takes the workspace lock (held here: a top-up attempt
    would say it was busy) nor submits anything."""
    with scratch() as tmp:
        env, state, _ = fake_slurm(tmp)
        ws = os.path.join(tmp, "ws")
        exp = experiment(tmp, ws, networks=("unet", "unet_joint"), resources={"max_queued": 1})
        first = submit(exp, env)
        assert "1 run(s) held back" in first.stdout, first.stdout
        ((unet,),) = queued_tasks(state)
        db = sqlite3.connect(os.path.join(ws, "orchestrator.db"))
        with db:
            db.execute("UPDATE runs SET state = 'failed' WHERE run_id = ?", (unet,))
        db.close()
        with open(os.path.join(ws, ".orchestrator.lock"), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            p = subprocess.run([BIN, "status", exp], capture_output=True, text=True, env=env)
        assert p.returncode == 0 and "topped up" not in p.stderr and len(calls(state)) == 1, p.stdout + p.stderr


def test_follow_dispatches_again_only_what_the_retry_policy_allows():
    """`submit --follow` after its first round: a task Slurm ended NODE_FAIL (the node failed, not the run) is
    dispatched again without a person, in a new array; a task that ended FAILED is not (a failure of the run itself
    waits for a person). A round that fails (the workspace lock held by someone else past ORCH_LOCK_WAIT_S) is said
    and tried again. Once nothing is queued, --follow ends with exit 1 and names the run that is not done."""
    with scratch() as tmp:
        env, state, _ = fake_slurm(tmp)
        env.update(ORCH_FOLLOW_POLL_S="0.2", ORCH_LOCK_WAIT_S="0.3")
        ws = os.path.join(tmp, "ws")
        exp = experiment(tmp, ws, seeds=(1, 2, 3))
        follow = subprocess.Popen([BIN, "submit", exp, "--follow"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=env, text=True)
        t0 = time.time()
        while not calls(state) and time.time() - t0 < 60:
            time.sleep(0.1)
        ((job, ids),) = [(c["job"], open(c["argv"][-1]).read().split()) for c in calls(state)]
        with open(os.path.join(ws, ".orchestrator.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another command holding the workspace: --follow's rounds fail
            time.sleep(1.5)
        set_task_states(state, {f"{job}_0": "NODE_FAIL", f"{job}_1": "FAILED"})
        t0 = time.time()
        while len(calls(state)) < 2 and time.time() - t0 < 60:
            time.sleep(0.1)
        assert queued_tasks(state)[1:] == [[ids[0]]], "the NODE_FAIL task alone, dispatched again"
        assert queued_tasks(state)[0] == ids, "a dispatch in the same second leaves the first array's manifest alone"
        time.sleep(1.0)
        assert follow.poll() is None and len(calls(state)) == 2, "still following; nothing more dispatched"
        assert mark_done(ws, "run_id IN (?, ?)", (ids[0], ids[2])) == 2
        out, err = follow.communicate(timeout=60)
        assert follow.returncode == 1, (follow.returncode, out, err)
        assert "the grid has ended with 1 run(s) not done" in out and ids[1] in out, out
        assert "not retried unattended" in out and "Slurm: FAILED" in out, out
        assert "this round failed (1 of 10 in a row before giving up)" in out, out
        assert len(calls(state)) == 2, "the FAILED task was never dispatched again"


def test_each_array_depends_only_on_the_tasks_its_runs_need():
    with scratch() as tmp:
        env, state, _ = fake_slurm(tmp)
        ws = os.path.join(tmp, "ws")
        datasets = {"a": {"kind": "lh", "size": 64, "synthetic": {"count": 12, "seed": 3, "size": 64}},
                    "b": {"kind": "l", "size": 64, "synthetic": {"count": 12, "seed": 4, "size": 64}}}
        exp = experiment(tmp, ws, networks=("unet", "ours", "hybridgnet_igsc", "rasterize"), seeds=(1, 2),
                         datasets=datasets, resources={"time": "1:00:00"})
        submit(exp, env)
        plan = {r["id"]: r for r in json.loads(subprocess.run([BIN, "plan", exp, "--json"], capture_output=True, text=True,
                                                              env=env).stdout)}
        task_of = {r["id"]: r["job"] for r in plan.values()}
        assert all(j and "_" in j for j in task_of.values()), task_of
        for call in calls(state):
            manifest = open(call["argv"][-1]).read().split()
            deps = next((a.split("=", 1)[1] for a in call["argv"] if a.startswith("--dependency=")), "")
            wanted = set()
            for run_id in manifest:
                wanted |= {task_of[d] for d in plan[run_id]["depends_on"]}
            got = set(deps.split(":")[1:]) if deps else set()
            assert got == wanted, (manifest, deps, wanted)
            assert len({tuple(plan[r]["depends_on"]) for r in manifest}) == 1, "an array mixes dependency sets"
        # Joint networks of one data set wait for that data set's UNet task only.
        ours = [r for r in plan.values() if r["model"] == "ours"]
        for r in ours:
            (dep,) = r["depends_on"]
            assert plan[dep]["dataset"] == r["dataset"] and plan[dep]["model"] == "unet"
        rasterize = sorted((r for r in plan.values() if r["model"] == "rasterize"), key=lambda r: (r["dataset"], r["seed"]))
        for r in rasterize:  # rasterize_init "shared" (the default): every seed fine-tunes the data set's IGSC seed 1
            (dep,) = r["depends_on"]
            assert (plan[dep]["model"], plan[dep]["dataset"], plan[dep]["seed"]) == ("hybridgnet_igsc", r["dataset"], 1), r
        assert len({r["job"].split("_")[0] for r in rasterize}) == 2, "one array per data set: its seeds wait for one run"


def test_a_submission_that_died_after_sbatch_is_reconciled_not_repeated():
    with scratch() as tmp:
        env, state, _ = fake_slurm(tmp)
        ws = os.path.join(tmp, "ws")
        exp = experiment(tmp, ws, networks=("hybridgnet", "unet", "ours"), seeds=(1, 2))
        submit(exp, env)
        first = calls(state)
        plan = json.loads(subprocess.run([BIN, "plan", exp, "--json"], capture_output=True, text=True, env=env).stdout)
        assert all(r["state"] == "queued" for r in plan), plan
        recorded = {r["id"]: r["job"] for r in plan}
        # Died after sbatch, before the ids were recorded: the runs hold the placeholder of their manifest.
        con = sqlite3.connect(os.path.join(ws, "orchestrator.db"))
        for call in first:
            base = os.path.basename(call["argv"][-1])[:-len(".manifest")]
            for run_id in open(call["argv"][-1]).read().split():
                con.execute("UPDATE jobs SET job_id = ? WHERE run_id = ?", ("manifest:" + base, run_id))
        con.commit()
        p = submit(exp, env)
        assert "reconciled" in p.stdout and "0 run(s) in 0 Slurm array job(s)" in p.stdout, p.stdout
        assert calls(state) == first, "the reconciled arrays were submitted again"
        plan = json.loads(subprocess.run([BIN, "plan", exp, "--json"], capture_output=True, text=True, env=env).stdout)
        assert {r["id"]: r["job"] for r in plan} == recorded
        # Died before sbatch ran at all: nothing by that name in Slurm; the runs are lost and resume submits them.
        con.execute("UPDATE jobs SET job_id = 'manifest:20990101T000000-1-g0'")
        con.commit()
        p = subprocess.run([BIN, "resume", exp], capture_output=True, text=True, env=env)
        assert p.returncode == 0 and "in 2 Slurm array job(s)" in p.stdout, (p.stdout, p.stderr)


def test_time_auto_asks_for_the_estimate_times_the_margin():
    with scratch() as tmp:
        env, state, _ = fake_slurm(tmp)
        ws = os.path.join(tmp, "ws")
        exp = experiment(tmp, ws, networks=("hybridgnet", "ours"), resources={"time": "auto"})
        p = submit(exp, env, check=False)
        assert p.returncode == 2 and "resources.time" in p.stderr and "orchestrator calibrate" in p.stderr, p.stderr
        assert not calls(state), "nothing is submitted without an estimate"
        # Timings measured elsewhere (seconds per step, per validation image, per test image), imported.
        rows = [{"model": m, "kind": "lh", "size": 64, "batch": 4, "threads": 1, "device": "cpu", "step_s": step,
                 "validation_image_s": 10, "evaluation_image_s": 20} for m, step in
                (("hybridgnet", 600), ("unet", 300), ("ours", 1200))]
        cal = os.path.join(tmp, "cal.json")
        with open(cal, "w") as f:
            json.dump(rows, f)
        p = subprocess.run([BIN, "calibrate", exp, "--import", cal], capture_output=True, text=True, env=env)
        assert p.returncode == 0, p.stderr
        # 12 images: 8 train (2 steps of 4), 2 validation, 2 test; 1 epoch; + 5 s start-up; x 1.3, whole minutes.
        expected = {"hybridgnet": "00:28:00", "unet": "00:15:00", "ours": "00:54:00"}
        plan = json.loads(subprocess.run([BIN, "plan", exp, "--json", "--estimate"], capture_output=True, text=True,
                                         env=env).stdout)
        for r in plan:
            step = {"hybridgnet": 600, "unet": 300, "ours": 1200}[r["model"]]
            assert abs(r["estimate"]["seconds"] - (2 * step + 2 * 10 + 2 * 20 + 5)) < 1e-6, r
            assert r["estimate"]["time_limit"] == expected[r["model"]], r
        submit(exp, env)
        limits = {}
        for call in calls(state):
            script = open(next(a for a in call["argv"] if a.endswith(".sbatch"))).read()
            models = {r["model"] for r in plan if r["id"] in open(call["argv"][-1]).read().split()}
            limits[tuple(sorted(models))] = script.split("#SBATCH --time=")[1].split("\n")[0]
        # An array asks for its longest run's limit.
        assert limits == {("hybridgnet", "unet"): "00:28:00", ("ours",): "00:54:00"}, limits
        # status tells what is left: 3 queued runs, 1265 + 665 + 2465 s; the critical path unet -> ours.
        st = subprocess.run([BIN, "status", exp], capture_output=True, text=True, env=env).stdout
        assert "left: 3 run(s), 1.2 GPU-hours, 1.2 h of run time" in st, st
        assert "makespan on 3 GPU(s) or workers: 52 min with per-run dependencies, 1.0 h with one array per level" in st, st
        bad = os.path.join(tmp, "bad.json")
        with open(bad, "w") as f:
            json.dump([dict(rows[0], step_s=-1)], f)
        p = subprocess.run([BIN, "calibrate", exp, "--import", bad], capture_output=True, text=True, env=env)
        assert p.returncode == 2 and "[0].step_s" in p.stderr and "-1" in p.stderr, p.stderr


def test_calibration_is_kept_per_precision_and_packing_and_a_packed_grid_uses_its_own():
    """calibrate records precision, device model and runs per GPU; --runs-per-gpu N times N copies at once; the
    estimate of a grid packed N to a GPU takes that row, and without it the solo one with a warning."""
    with scratch() as tmp:
        env, _, _ = fake_slurm(tmp)
        ws = os.path.join(tmp, "ws")
        exp = experiment(tmp, ws, resources={"gpus": 1, "runs_per_gpu": 2})
        for extra in ([], ["--runs-per-gpu", "2"]):
            p = subprocess.run([BIN, "calibrate", exp, "--steps", "2", "--warmup", "1", "--images", "1", *extra],
                               capture_output=True, text=True, env=env)
            assert p.returncode == 0, (p.stdout, p.stderr)
        con = sqlite3.connect(os.path.join(ws, "orchestrator.db"))
        rows = con.execute("SELECT precision, device_model, runs_per_gpu, step_s FROM calibration ORDER BY 3").fetchall()
        assert [r[2] for r in rows] == [1, 2], rows
        assert all(r[0] == "fp32" and r[1] and r[3] > 0 for r in rows), rows  # a CPU computes in float32
        plan = json.loads(subprocess.run([BIN, "plan", exp, "--json", "--estimate"], capture_output=True, text=True,
                                         env=env).stdout)
        (r,) = plan
        assert "--runs-per-gpu" not in r["estimate"]["basis"] and rows[1][1] in r["estimate"]["basis"], r
        con.execute("DELETE FROM calibration WHERE runs_per_gpu = 2")
        con.commit()
        plan = json.loads(subprocess.run([BIN, "plan", exp, "--json", "--estimate"], capture_output=True, text=True,
                                         env=env).stdout)
        assert "--runs-per-gpu 2" in plan[0]["estimate"]["basis"], plan[0]
        # Imported rows are validated: a precision that is none of the three is refused, naming the row and field.
        bad = os.path.join(tmp, "bad.json")
        with open(bad, "w") as f:
            json.dump([{"model": "unet", "kind": "lh", "size": 64, "batch": 4, "threads": 1, "device": "cuda:0",
                        "step_s": 1, "validation_image_s": 1, "evaluation_image_s": 1, "precision": "fp8"}], f)
        p = subprocess.run([BIN, "calibrate", exp, "--import", bad], capture_output=True, text=True, env=env)
        assert p.returncode == 2 and "[0].precision" in p.stderr and "fp8" in p.stderr, p.stderr
        p = subprocess.run([BIN, "calibrate", exp, "--runs-per-gpu", "0"], capture_output=True, text=True, env=env)
        assert p.returncode == 2 and "--runs-per-gpu" in p.stderr, p.stderr

if __name__ == "__main__":
    run([test_hostile_workspace_paths_reach_the_worker_literally_and_run_nothing,
         test_the_error_branch_names_the_manifest_and_runs_nothing,
         test_refused_workspace_paths,
         test_runs_packed_on_one_gpu_each_get_a_worker_and_requeue_together,
         test_a_worker_killed_by_sigkill_is_retried_up_to_max_attempts,
         test_a_run_that_ran_out_of_memory_asks_for_more_when_dispatched_again,
         test_each_array_depends_only_on_the_tasks_its_runs_need,
         test_an_array_larger_than_max_array_size_is_cut,
         test_calibration_is_kept_per_precision_and_packing_and_a_packed_grid_uses_its_own,
         test_a_worker_the_oom_killer_took_is_not_requeued_with_the_same_memory,
         test_a_queue_limit_holds_runs_back_and_follow_or_resume_submits_them_as_jobs_end,
         test_a_queue_limit_counts_the_whole_grid_whatever_only_lists,
         test_status_tops_the_queue_up_with_held_back_runs_only, test_status_leaves_a_run_waiting_on_a_failed_dependency_alone,
         test_follow_dispatches_again_only_what_the_retry_policy_allows,
         test_a_submission_that_died_after_sbatch_is_reconciled_not_repeated,
         test_time_auto_asks_for_the_estimate_times_the_margin])
