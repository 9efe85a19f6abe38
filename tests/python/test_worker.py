"""The worker as a process: kill -9 during an epoch and during a checkpoint write, a corrupted newest checkpoint,
checkpoint-and-requeue on a signal, a 2-rank MPI run, and bad input. Each interrupted run is compared with an
uninterrupted one: predictions, metrics and best weights must be bit-identical."""
import glob
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import h5py
import numpy as np

from common import BIN, kill_at_rename, orch, run, scratch, training_faults

EXP = {
    "name": "worker-test",
    "datasets": {"d": {"kind": "lh", "size": 64, "synthetic": {"count": 40, "seed": 5, "size": 64}}},
    "networks": ["hybridgnet"],
    "seeds": [1],
    "training": {"epochs": 4, "threads": 1, "loader_threads": 1, "device": "cpu"},
}
REQUEUE = 75


def setup(tmp, name):
    ws = os.path.join(tmp, name)
    exp = os.path.join(tmp, "exp.json")
    with open(exp, "w") as f:
        json.dump(EXP, f)
    return exp, ws


def train_args(exp, ws, *extra):
    return ["train", exp, "--dataset", "d", "--model", "hybridgnet", "--seed", "1", "--workspace", ws, *extra]


def run_dir(ws):
    (d,) = glob.glob(os.path.join(ws, "runs", "hybridgnet.*"))
    return d


def result(ws):
    d = run_dir(ws)
    with h5py.File(os.path.join(d, "predictions.h5"), "r") as f:
        preds = (f["ids"][:].tolist(), f["masks"][:], f["points"][:])
    with h5py.File(os.path.join(d, "checkpoints", "best.h5"), "r") as f:
        params = {k: f["parameters"][k][:] for k in f["parameters"]}
    db = sqlite3.connect(os.path.join(ws, "orchestrator.db"))
    metrics = db.execute("SELECT image_id, organ, dice, jaccard, hausdorff_mm FROM test_metrics ORDER BY 1, 2").fetchall()
    epochs = db.execute("SELECT epoch, train_loss, val_criterion FROM epoch_metrics ORDER BY 1").fetchall()
    state = db.execute("SELECT state FROM runs").fetchall()
    return preds, params, metrics, epochs, state


def assert_same(a, b):
    (ia, ma, pa), wa, mea, ea, sa = a
    (ib, mb, pb), wb, meb, eb, sb = b
    assert ia == ib
    assert np.array_equal(ma, mb), "masks differ"
    assert np.array_equal(pa, pb), "points differ"
    assert wa.keys() == wb.keys()
    for k in wa:
        assert np.array_equal(wa[k], wb[k]), f"parameter {k} differs"
    assert mea == meb, "test metrics differ"
    assert ea == eb, f"epoch metrics differ:\n{ea}\n{eb}"
    assert sa == sb == [("done",)]


REFERENCE = {}


def reference(tmp):
    if "r" not in REFERENCE:
        exp, ws = setup(tmp, "reference")
        orch(*train_args(exp, ws))
        REFERENCE["r"] = result(ws)
    return REFERENCE["r"]


def wait_for_log(ws, text, proc, timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        for path in glob.glob(os.path.join(ws, "runs", "*", "log.txt")):
            if text in open(path).read():
                return
        if proc.poll() is not None:
            raise AssertionError(f"worker ended early with {proc.returncode}: {proc.stderr.read()}")
        time.sleep(0.02)
    raise AssertionError(f"'{text}' never appeared in the run log")


def test_kill9_during_epoch_then_resume_is_bit_identical():
    with scratch() as tmp:
        ref = reference(tmp)
        exp, ws = setup(tmp, "killed")
        p = subprocess.Popen([BIN, *train_args(exp, ws)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for_log(ws, "epoch 2/4", p)
        time.sleep(0.15)  # into epoch 3
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert p.returncode == -signal.SIGKILL
        orch(*train_args(exp, ws))
        log = open(os.path.join(run_dir(ws), "log.txt")).read()
        assert "resuming from" in log
        assert_same(ref, result(ws))


def test_kill9_during_checkpoint_write_then_resume_is_bit_identical():
    with scratch() as tmp:
        ref = reference(tmp)
        exp, ws = setup(tmp, "killed-in-write")
        env = kill_at_rename(os.environ, "before", 1, "/checkpoints/ckpt-")  # dies inside its first numbered checkpoint
        p = subprocess.run([BIN, *train_args(exp, ws)], capture_output=True, text=True, env=env)
        assert p.returncode == -signal.SIGKILL, (p.returncode, p.stderr)
        ckpts = os.path.join(run_dir(ws), "checkpoints")
        assert glob.glob(os.path.join(ckpts, "*.tmp-*")), "the half-written temporary should be there"
        assert not glob.glob(os.path.join(ckpts, "ckpt-*.h5"))
        orch(*train_args(exp, ws))
        assert not glob.glob(os.path.join(ckpts, "*.tmp-*"))
        assert_same(ref, result(ws))


def test_kill9_just_after_a_checkpoint_is_published_then_resume_records_every_epoch_once():
    """The window between publishing epoch 2's checkpoint and returning: the epoch's row must already be stored
    (it is written before the checkpoint), so the resumed run has every epoch's row, each once."""
    with scratch() as tmp:
        ref = reference(tmp)
        exp, ws = setup(tmp, "killed-after-publish")
        env = kill_at_rename(os.environ, "after", 2, "/checkpoints/ckpt-")
        p = subprocess.run([BIN, *train_args(exp, ws)], capture_output=True, text=True, env=env)
        assert p.returncode == -signal.SIGKILL, (p.returncode, p.stderr)
        ckpts = os.path.join(run_dir(ws), "checkpoints")
        assert [os.path.basename(c) for c in sorted(glob.glob(os.path.join(ckpts, "ckpt-*.h5")))][-1].startswith("ckpt-00000002-")
        orch(*train_args(exp, ws))
        assert "resuming from" in open(os.path.join(run_dir(ws), "log.txt")).read()
        assert_same(ref, result(ws))


def test_kill9_at_every_file_publication_then_resume_is_bit_identical():
    """LevelDB's crash sweep on a small run (2 epochs): the worker is killed by SIGKILL at each rename that
    publishes one of its files (best.h5, its copy, the numbered checkpoints, predictions.h5), once just before it
    and once just after it; each time one plain rerun finishes the run bit-identical to an uninterrupted one, with
    every epoch's row once and nothing half-written left. The same for the data set's build."""
    small = dict(EXP, training=dict(EXP["training"], epochs=2),
                 datasets={"d": dict(EXP["datasets"]["d"], synthetic=dict(EXP["datasets"]["d"]["synthetic"], count=20))})
    with scratch() as tmp:
        exp = os.path.join(tmp, "small.json")
        with open(exp, "w") as f:
            json.dump(small, f)
        ws = os.path.join(tmp, "reference")
        orch(*train_args(exp, ws))
        ref = result(ws)
        points = 0
        for when in ("before", "after"):
            for n in range(1, 100):
                ws = os.path.join(tmp, f"{when}-{n}")
                env = kill_at_rename(os.environ, when, n, "/runs/")
                p = subprocess.run([BIN, *train_args(exp, ws)], capture_output=True, text=True, env=env)
                if p.returncode == 0:
                    break  # fewer than n publications: the sweep of this side is complete
                assert p.returncode == -signal.SIGKILL, (when, n, p.returncode, p.stderr)
                points += 1
                orch(*train_args(exp, ws))
                left = glob.glob(os.path.join(run_dir(ws), "**", "*.tmp-*"), recursive=True)
                assert not left, (when, n, left)
                try:
                    assert_same(ref, result(ws))
                except AssertionError as e:
                    raise AssertionError(f"killed {when} publication {n}: {e}") from e
        assert points >= 2 * 6, points  # 2 epochs x (best.h5, its copy, checkpoint) + predictions, each side
        print(f"{points} kill points")
        # A data set build killed before it published: the rerun removes its temporary and builds it.
        ws = os.path.join(tmp, "dataset-build")
        p = subprocess.run([BIN, *train_args(exp, ws)], capture_output=True, text=True,
                           env=kill_at_rename(os.environ, "before", 1, "/datasets/"))
        assert p.returncode == -signal.SIGKILL, (p.returncode, p.stderr)
        assert glob.glob(os.path.join(ws, "datasets", "*.tmp-*"))
        orch(*train_args(exp, ws))
        assert not glob.glob(os.path.join(ws, "datasets", "*.tmp-*"))
        assert_same(ref, result(ws))


def test_corrupted_newest_checkpoint_falls_back_with_a_warning():
    with scratch() as tmp:
        ref = reference(tmp)
        exp, ws = setup(tmp, "corrupted")
        p = orch(*train_args(exp, ws), check=False, env=training_faults(stop_after=23))
        assert p.returncode == REQUEUE, (p.returncode, p.stderr)
        ckpts = sorted(glob.glob(os.path.join(run_dir(ws), "checkpoints", "ckpt-*.h5")))
        assert len(ckpts) >= 2
        newest = ckpts[-1]
        size = os.path.getsize(newest)
        with open(newest, "r+b") as f:  # flip bytes in the middle of the parameter data
            f.seek(size // 2)
            chunk = f.read(64)
            f.seek(size // 2)
            f.write(bytes(b ^ 0xFF for b in chunk))
        p = orch(*train_args(exp, ws))
        log = open(os.path.join(run_dir(ws), "log.txt")).read()
        assert "warning: " + newest in log and "checksum mismatch" in log, log[-2000:]
        assert_same(ref, result(ws))


def test_signal_checkpoints_and_exits_with_requeue_code():
    for sig in (signal.SIGUSR1, signal.SIGTERM):
        with scratch() as tmp:
            exp, ws = setup(tmp, "signalled")
            p = subprocess.Popen([BIN, *train_args(exp, ws)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            wait_for_log(ws, "epoch 1/4", p)
            p.send_signal(sig)
            p.wait(timeout=60)
            assert p.returncode == REQUEUE, (p.returncode, p.stderr.read())
            db = sqlite3.connect(os.path.join(ws, "orchestrator.db"))
            (state,) = db.execute("SELECT state FROM runs").fetchone()
            assert state == "queued"
            status, reason = db.execute("SELECT exit_status, reason FROM attempts ORDER BY attempt_id DESC").fetchone()
            assert status == REQUEUE and signal.Signals(sig).name in reason, reason
            assert glob.glob(os.path.join(run_dir(ws), "checkpoints", "ckpt-*.h5"))
            orch(*train_args(exp, ws))
            assert db.execute("SELECT state FROM runs").fetchone()[0] == "done"


def test_two_rank_mpi_run_trains_and_evaluates():
    if not shutil.which("mpirun"):
        raise AssertionError("mpirun not found (scripts/setup installs OpenMPI)")
    with scratch() as tmp:
        exp, ws = setup(tmp, "mpi")
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        p = subprocess.run(["mpirun", "-np", "2", "--bind-to", "none", "--oversubscribe", BIN, *train_args(exp, ws)],
                           capture_output=True, text=True, env=env, timeout=600)
        assert p.returncode == 0, p.stdout + p.stderr
        db = sqlite3.connect(os.path.join(ws, "orchestrator.db"))
        prov = dict(db.execute("SELECT key, value FROM provenance"))
        assert prov["communicator"] == "mpi" and prov["ranks"] == "2", prov
        assert db.execute("SELECT state FROM runs").fetchone()[0] == "done"
        n_test = len(h5py.File(os.path.join(run_dir(ws), "predictions.h5"), "r")["ids"])
        assert db.execute("SELECT count(*) FROM test_metrics").fetchone()[0] == 2 * n_test
        assert db.execute("SELECT count(*) FROM epoch_metrics").fetchone()[0] == 4
        assert db.execute("SELECT count(*) FROM attempts").fetchone()[0] == 1, "rank 1 must not write the store"


def test_train_refuses_a_run_another_process_is_training():
    """train dispatches to itself through the grid commands' sequence (scheduler/submission.h): a run of its chain
    that another process holds is refused under the lock (exit 4, naming the run), before anything is dispatched,
    and the holder trains on undisturbed."""
    with scratch() as tmp:
        exp, ws = setup(tmp, "held")
        args = train_args(exp, ws, "--set", "training.epochs=40")
        first = subprocess.Popen([BIN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for_log(ws, "epoch 1/40", first)
            second = orch(*args, check=False)
            assert second.returncode == 4, (second.returncode, second.stderr)
            assert "hybridgnet.d.s1-" in second.stderr and "cancel it first" in second.stderr, second.stderr
            assert first.poll() is None, "the holder stopped"
            first.send_signal(signal.SIGTERM)  # checkpoints and stops: the test need not wait for 40 epochs
            first.wait(timeout=120)
            assert first.returncode == REQUEUE, (first.returncode, first.stderr.read())
        finally:
            if first.poll() is None:
                first.kill()
        db = sqlite3.connect(os.path.join(ws, "orchestrator.db"))
        assert db.execute("SELECT count(*) FROM attempts").fetchone()[0] == 1, "the refused train must not claim"
        assert db.execute("SELECT count(*) FROM jobs").fetchone()[0] == 1, "nor record a job"


def test_bad_input_names_what_is_wrong():
    with scratch() as tmp:
        exp, ws = setup(tmp, "bad")
        p = orch("train", exp, "--dataset", "d", "--model", "unetx", "--workspace", ws, check=False)
        assert p.returncode == 2 and "unetx" in p.stderr and "--model" in p.stderr, p.stderr
        p = orch("train", exp, "--dataset", "nope", "--model", "unet", "--workspace", ws, check=False)
        assert p.returncode == 2 and "nope" in p.stderr, p.stderr
        p = orch("worker", "--workspace", ws, "--run", 'x"; touch /tmp/pwned; "', check=False)
        assert p.returncode == 2 and "not a run id" in p.stderr, p.stderr
        os.makedirs(ws, exist_ok=True)
        p = orch("worker", "--workspace", ws, "--run", "hybridgnet.d.s1-0000000000", check=False)
        assert p.returncode == 2 and "no such run" in p.stderr, p.stderr
        p = orch("train", exp, "--dataset", "d", "--model", "unet", "--workspace", ws, "--set", "training.device=tpu", check=False)
        assert p.returncode == 2 and "training.device" in p.stderr and "tpu" in p.stderr, p.stderr


if __name__ == "__main__":
    run([
        test_kill9_during_epoch_then_resume_is_bit_identical,
        test_kill9_during_checkpoint_write_then_resume_is_bit_identical,
        test_kill9_just_after_a_checkpoint_is_published_then_resume_records_every_epoch_once,
        test_kill9_at_every_file_publication_then_resume_is_bit_identical,
        test_corrupted_newest_checkpoint_falls_back_with_a_warning,
        test_signal_checkpoints_and_exits_with_requeue_code,
        test_two_rank_mpi_run_trains_and_evaluates,
        test_train_refuses_a_run_another_process_is_training,
        test_bad_input_names_what_is_wrong,
    ])
