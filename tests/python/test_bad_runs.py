"""Diverging training, lost best checkpoints, full disks, read-only workspaces and settings that cannot work:
each ends in a clear error (or a clean recovery), never a crash, and never in wasted epochs."""
import glob
import json
import os
import sqlite3
import subprocess
import tempfile

from common import BIN, orch, run, scratch, training_faults

EXP = {
    "name": "bad-runs",
    "datasets": {"d": {"kind": "lh", "size": 64, "synthetic": {"count": 20, "seed": 5, "size": 64}}},
    "networks": ["hybridgnet"],
    "seeds": [1],
    "training": {"epochs": 6, "threads": 1, "loader_threads": 1, "device": "cpu"},
}


def setup(tmp, workspace=None, **changes):
    doc = dict(EXP, workspace=workspace or os.path.join(tmp, "ws"), **changes)
    path = os.path.join(tmp, "exp.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    return path, doc["workspace"]


def train(exp, *extra, check=False, env=None):
    return orch("train", exp, "--dataset", "d", "--model", "hybridgnet", *extra, check=check, env=env)


def db(ws):
    return sqlite3.connect(os.path.join(ws, "orchestrator.db"))


def run_dir(ws):
    (d,) = glob.glob(os.path.join(ws, "runs", "hybridgnet.*"))
    return d


def test_a_non_finite_loss_stops_the_run_at_that_step():
    with scratch() as tmp:
        exp, ws = setup(tmp)
        p = train(exp, env=training_faults(nan_at=9))  # 14 training images: 4 steps an epoch, so epoch 3, step 1
        assert p.returncode == 1, (p.returncode, p.stderr)
        assert p.returncode >= 0
        con = db(ws)
        (state,) = con.execute("SELECT state FROM runs").fetchone()
        (reason,) = con.execute("SELECT reason FROM attempts").fetchone()
        assert state == "failed", state
        assert "non-finite loss" in reason and "epoch 3, step 1" in reason and "newest good checkpoint" in reason, reason
        assert "ckpt-00000002-000000.h5" in reason, reason
        assert "\n" not in reason and "Exception raised from" not in reason, reason
        epochs = [e for (e,) in con.execute("SELECT epoch FROM epoch_metrics")]
        assert epochs == [1, 2], f"trained on after the NaN: {epochs}"
        # resume continues from the good checkpoint and finishes
        p = train(exp)
        assert p.returncode == 0, p.stderr
        # "skip" skips the batch and goes on
        exp2, ws2 = setup(tmp, workspace=os.path.join(tmp, "ws2"), training=dict(EXP["training"], nonfinite="skip"))
        p = train(exp2, env=training_faults(nan_at=5))
        assert p.returncode == 0, p.stderr
        log = open(os.path.join(run_dir(ws2), "log.txt")).read()
        assert "batch skipped" in log, log[-2000:]


def test_a_lost_best_checkpoint_is_restored_or_rebuilt():
    with scratch() as tmp:
        exp, ws = setup(tmp)
        assert train(exp, env=training_faults(stop_after=10)).returncode == 75
        ck = os.path.join(run_dir(ws), "checkpoints")
        os.remove(os.path.join(ck, "best.h5"))  # its copy is still there
        assert train(exp, env=training_faults(stop_after=4)).returncode == 75
        log = open(os.path.join(run_dir(ws), "log.txt")).read()
        assert "best.h5 was missing; restored from" in log, log[-2000:]
        for name in ("best.h5", "best.copy.h5"):  # both gone: rebuilt from the newest good checkpoint
            os.remove(os.path.join(ck, name))
        p = train(exp)
        assert p.returncode == 0, p.stderr
        log = open(os.path.join(run_dir(ws), "log.txt")).read()
        assert "the best checkpoint was lost" in log and "rebuilt from the newest good checkpoint" in log, log[-2000:]
        (state,) = db(ws).execute("SELECT state FROM runs").fetchone()
        assert state == "done"


def is_root():
    return os.geteuid() == 0


def test_a_full_disk_ends_the_run_with_a_message_and_no_crash():
    if not is_root():
        print("skip: mounting a small file system needs root")
        return
    with tempfile.TemporaryDirectory(prefix="orch-full-") as mnt:
        for size in ("6m", "8m", "12m"):  # runs out in the first best.h5, in its copy, or in a numbered checkpoint
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", mnt], check=True)
            try:
                with scratch() as tmp:
                    exp, ws = setup(tmp, workspace=os.path.join(mnt, "ws"))
                    p = train(exp)
                    assert p.returncode == 1, (size, p.returncode, p.stderr)
                    assert "No space left on device" in p.stderr, (size, p.stderr)
                    assert not glob.glob(os.path.join(mnt, "ws", "runs", "*", "checkpoints", "*.tmp-*")), "a temporary left behind"
                    s = orch("status", exp, check=False)  # status works on a full workspace
                    assert s.returncode == 0 and "bad-runs" in s.stdout, (s.returncode, s.stderr)
            finally:
                subprocess.run(["umount", mnt], check=True)


def test_a_read_only_workspace():
    if not is_root():
        print("skip: a read-only bind mount needs root")
        return
    with scratch() as tmp:
        exp, ws = setup(tmp, training=dict(EXP["training"], epochs=1))
        assert train(exp).returncode == 0
        ro = os.path.join(tmp, "ro")
        os.makedirs(ro)
        subprocess.run(["mount", "--bind", "-o", "ro", ws, ro], check=True)
        try:
            exp_ro, _ = setup(tmp, workspace=ro, training=dict(EXP["training"], epochs=1))
            s = orch("status", exp_ro, check=False)
            assert s.returncode == 0 and "done 1" in s.stdout, (s.returncode, s.stdout, s.stderr)
            p = orch("submit", exp_ro, "--set", "training.epochs=2", check=False)
            assert p.returncode == 1 and ro in p.stderr, (p.returncode, p.stderr)
            p = orch("worker", "--workspace", ro, "--run", os.path.basename(run_dir(ws)), check=False)
            assert p.returncode in (0, 1), (p.returncode, p.stderr)  # already done: nothing to write
        finally:
            subprocess.run(["umount", ro], check=True)


def expect_refused(args, *needles):
    p = orch(*args, check=False)
    assert p.returncode == 2, (args, p.returncode, p.stdout, p.stderr)
    for n in needles:
        assert n in p.stderr, (n, p.stderr)


def test_settings_that_cannot_work_are_refused_when_the_experiment_loads():
    with scratch() as tmp:
        exp, ws = setup(tmp)
        expect_refused(["plan", exp, "--set", "datasets.d.size=32"], "datasets.d.size", "32", "at least 64")
        expect_refused(["plan", exp, "--set", "networks={\"hybridgnet\": {\"latents\": 0}}"], "latents", "0")
        expect_refused(["plan", exp, "--set", "networks={\"hybridgnet\": {\"cheb_k\": 4294967297}}"], "cheb_k", "4294967297")
        expect_refused(["plan", exp, "--set", "resources.gpus=4294967297"], "resources.gpus", "4294967297")
        expect_refused(["plan", exp, "--set", "training.epochs=9223372036854775808"], "training.epochs")
        expect_refused(["plan", exp, "--set", "seeds=[18446744073709551615]"], "seeds")
        expect_refused(["plan", exp, "--set", "training.best_after_epoch=6"], "best_after_epoch")
        expect_refused(["plan", exp, "--set", "training.precision=fp8"], "training.precision", "fp8")
        expect_refused(["submit", exp, "--workers", "100000"], "--workers")
        expect_refused(["synth", "--kind", "lh", "--count", "5", "--out", os.path.join(tmp, "s"), "--threads", "1000000000"], "--threads")
        expect_refused(["worker", "--workspace", ws, "--run", "x", "--threads", "-3"], "--threads")
        p = subprocess.run([BIN.encode(), b"plan", exp.encode(), b"--set", b"name=\xff\xfe"],
                           capture_output=True)
        assert p.returncode == 2 and b"UTF-8" in p.stderr, (p.returncode, p.stderr)
        # a .npy file with a broken header: its name and what is wrong, not "stol"
        src = os.path.join(tmp, "src")
        orch("synth", "--kind", "lh", "--count", "5", "--size", "64", "--out", src)
        npy = os.path.join(src, "landmarks", "RL", "synlh_0001.npy")
        data = open(npy, "rb").read()
        open(npy, "wb").write(data.replace(b"'shape': (44, 2)", b"'shape': (4x, 2)"))
        expect_refused(["prepare", "--out", os.path.join(tmp, "o.h5"), "--size", "64", "--landmarks", f"{src}/landmarks",
                        "--images", f"{src}/images", "--splits", f"{src}/splits"], npy, "shape")
        open(npy, "wb").write(data.replace(b"'shape': (44, 2)", b"'shape': (99999999999999999999, 2)"))
        expect_refused(["prepare", "--out", os.path.join(tmp, "o.h5"), "--size", "64", "--landmarks", f"{src}/landmarks",
                        "--images", f"{src}/images", "--splits", f"{src}/splits"], npy)
        # coordinates: 1e300 (stored as inf before) and far outside the frame
        import numpy as np
        np.save(npy, np.full((44, 2), 1e300))
        expect_refused(["prepare", "--out", os.path.join(tmp, "o.h5"), "--size", "64", "--landmarks", f"{src}/landmarks",
                        "--images", f"{src}/images", "--splits", f"{src}/splits"], npy, "frame")


if __name__ == "__main__":
    run([test_a_non_finite_loss_stops_the_run_at_that_step,
         test_a_lost_best_checkpoint_is_restored_or_rebuilt,
         test_a_full_disk_ends_the_run_with_a_message_and_no_crash,
         test_a_read_only_workspace,
         test_settings_that_cannot_work_are_refused_when_the_experiment_loads])
