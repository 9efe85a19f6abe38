#!/usr/bin/python3
"""Bad input through the CLI: a clear message naming the file, field and value; exit code 2; no output.
Also `orchestrator models --json` against spec §3.12."""
import json
import os
import subprocess

import numpy as np

from common import BIN, orch, run, scratch


def expect_error(args, *needles, out=None):
    p = orch(*args, check=False)
    assert p.returncode == 2, f"exit {p.returncode}: {p.stdout} {p.stderr}"
    for n in needles:
        assert n in p.stderr, f"{n!r} not in: {p.stderr}"
    if out:
        assert not os.path.exists(out), f"{out} left behind"
        assert not any(f.startswith(os.path.basename(out) + ".tmp") for f in os.listdir(os.path.dirname(out)))


def make_src(d, count=8):
    src = os.path.join(d, "src")
    orch("synth", "--kind", "lh", "--count", count, "--size", 64, "--seed", 1, "--out", src)
    return src


def prep_args(src, out):
    return ["prepare", "--out", out, "--size", 64, "--landmarks", f"{src}/landmarks", "--images", f"{src}/images",
            "--splits", f"{src}/splits"]


def test_unknown_command_and_option():
    p = orch("frobnicate", check=False)
    assert p.returncode == 2 and "unknown command" in p.stderr
    expect_error(["synth", "--kind", "lh", "--out", "/tmp/x", "--colour", "red"], "colour")


def test_help_on_every_command():
    for cmd in ("run", "synth", "prepare", "preview"):
        p = orch(cmd, "--help")
        assert "usage: orchestrator " + cmd in p.stdout, p.stdout


def test_bad_synth_values():
    with scratch() as d:
        expect_error(["synth", "--kind", "lungs", "--out", f"{d}/a"], "--kind", "lungs")
        expect_error(["synth", "--kind", "lh", "--count", "2", "--out", f"{d}/a"], "--count", "2")
        os.makedirs(f"{d}/exists")
        expect_error(["synth", "--kind", "lh", "--count", "5", "--size", "32", "--out", f"{d}/exists"], "exists")


def test_prepare_bad_landmarks():
    with scratch() as d:
        src = make_src(d)
        out = f"{d}/o.h5"
        np.save(f"{src}/landmarks/RL/synlh_0003.npy", np.zeros((40, 2)))
        expect_error(prep_args(src, out), "RL/synlh_0003.npy", "40", out=out)
        np.save(f"{src}/landmarks/RL/synlh_0003.npy", np.full((44, 2), np.inf))
        expect_error(prep_args(src, out), "RL/synlh_0003.npy", "inf", out=out)
        os.remove(f"{src}/landmarks/RL/synlh_0003.npy")
        expect_error(prep_args(src, out), "RL/synlh_0003.npy", out=out)


def test_prepare_existing_output_untouched():
    with scratch() as d:
        src = make_src(d)
        out = f"{d}/o.h5"
        open(out, "w").write("precious")
        expect_error(prep_args(src, out), "o.h5", "already exists")
        assert open(out).read() == "precious"


def test_prepare_split_without_image():
    with scratch() as d:
        src = make_src(d)
        with open(f"{src}/splits/train.txt", "a") as f:
            f.write("nobody_0001\n")
        expect_error(prep_args(src, f"{d}/o.h5"), "nobody_0001", out=f"{d}/o.h5")


def test_run_bad_experiment():
    with scratch() as d:
        exp = f"{d}/e.json"
        json.dump({"name": "x", "datasets": {"a": {"kind": "lh", "synthetic": {"count": -4}}}}, open(exp, "w"))
        expect_error(["run", exp, "--workspace", f"{d}/ws"], "e.json", "datasets.a.synthetic.count", "-4")
        expect_error(["run", exp, "--workspace", f"{d}/ws", "--set", "datasets.a.kind=x"], "datasets.a.kind")
        json.dump({"name": "x", "datasets": {"real": {"kind": "l", "landmarks": d, "raw_png": f"{d}/missing",
                                                       "split_seed": 1}},
                   "networks": ["ours"]}, open(exp, "w"))
        expect_error(["run", exp, "--workspace", f"{d}/ws"], "e.json: datasets.real", f"{d}/missing", "missing folder")
        expect_error(["run", exp, "--workspace", f"{d}/ws", "--set", 'networks=["ours","resnet"]'], "networks", "resnet")


def test_models_json_lists_the_registry_with_the_spec_counts():
    # Spec §3.12, lungs-only data set at 1024 px: (trainable, frozen).
    want = {"hybridgnet": (4828450, 0), "hybridgnet_igsc": (4878466, 0), "unet": (1292740, 0),
            "unet_joint": (1693016, 1292740), "hourglass": (4895144, 1292740), "hourglass_concat": (4895226, 1292740),
            "multitask": (5585096, 0), "no_joint": (4878466, 0), "mse_only": (5295338, 1292740),
            "rasterize": (4878466, 0), "ours": (5295338, 1292740)}
    got = json.loads(orch("models", "--dataset", "l", "--size", "1024", "--json").stdout)
    assert [m["id"] for m in got] == list(want), [m["id"] for m in got]
    for m in got:
        assert (m["trainable"], m["frozen"]) == want[m["id"]], m
    ours = next(m for m in got if m["id"] == "ours")
    assert ours["outputs"][0]["shape"] == [1, 94, 2] and len(ours["outputs"]) == 7
    expect_error(["models", "--dataset", "l", "--size", "100"], "size", "100")


def test_doctor_reports_the_libraries_this_build_uses():
    """`orchestrator doctor`: the versions it prints are those of the libraries Python's own modules load here
    (the same Debian packages), and it says when no GPU is usable."""
    import sqlite3
    import h5py
    p = orch("doctor")
    facts = dict(line.split(None, 1) for line in p.stdout.splitlines() if line and not line.startswith(("No ", "CUDA ")) and " " in line)
    assert facts["sqlite"] == sqlite3.sqlite_version, facts
    assert facts["hdf5"] == h5py.version.hdf5_version, facts
    assert facts["torch"].count(".") == 2 and facts["cuda_available"] in ("yes", "no"), facts
    assert os.path.exists(facts["blas"]) or facts["blas"] in ("", "unknown"), facts
    if facts["cuda_available"] == "no":
        assert "No CUDA device is usable" in p.stdout, p.stdout
    assert "USE_CUDA" in orch("doctor", "--torch-config").stdout


def test_control_plane_without_libtorch():
    """`orchestrator` links no LibTorch (it starts in milliseconds, and on a node without LibTorch); it execs
    orchestrator-torch beside it for the commands that need it, and says so clearly when that is missing."""
    import shutil
    libs = subprocess.run(["ldd", BIN], capture_output=True, text=True, check=True).stdout
    assert "libtorch" not in libs and "libc10" not in libs, libs
    torch_bin = os.path.join(os.path.dirname(BIN), "orchestrator-torch")
    assert "libtorch" in subprocess.run(["ldd", torch_bin], capture_output=True, text=True, check=True).stdout
    assert orch("--help").stdout == subprocess.run([torch_bin, "--help"], capture_output=True, text=True).stdout
    assert "torch " in orch("doctor").stdout  # run by orchestrator-torch
    with scratch() as d:
        shutil.copy(BIN, d)
        lone = os.path.join(d, os.path.basename(BIN))
        p = subprocess.run([lone, "train", "x.json"], capture_output=True, text=True)
        assert p.returncode == 1 and "needs LibTorch" in p.stderr and os.path.join(d, "orchestrator-torch") in p.stderr, p
        assert "usage: orchestrator status" in subprocess.run([lone, "status", "--help"], capture_output=True, text=True).stdout


if __name__ == "__main__":
    run([test_doctor_reports_the_libraries_this_build_uses, test_unknown_command_and_option, test_help_on_every_command, test_control_plane_without_libtorch,
         test_bad_synth_values,
         test_prepare_bad_landmarks, test_prepare_existing_output_untouched, test_prepare_split_without_image,
         test_run_bad_experiment, test_models_json_lists_the_registry_with_the_spec_counts])
