"""Fuzzed files against the readers and the commands that read them: from a valid data set, predictions file
and checkpoint, seeded mutations (shapes, dtypes, attributes, missing parts, truncations, byte flips) are made
with h5py and raw bytes; every reader outcome is "ok" or an error naming the file, never a crash, and the
commands end with exit 0 (a report that left a panel out with a warning, a worker that fell back to an older
checkpoint), 1 or 2 naming the file, never a signal.

Environment: ORCH_BIN (the orchestrator), ORCH_FUZZ_READERS (tests/fuzz/fuzz_readers) and ORCH_FUZZ_CHECKPOINTS
(tests/fuzz/fuzz_checkpoints). The sanitizer build (scripts/sanitize) runs it with ORCH_FUZZ_ONLY_READERS=1: its
readers driver is built with AddressSanitizer and UndefinedBehaviorSanitizer."""
import glob
import json
import os
import random
import shutil
import subprocess
import time

import h5py
import numpy as np

from common import BIN, run, scratch

READERS = os.environ.get("ORCH_FUZZ_READERS", "")
CHECKPOINTS = os.environ.get("ORCH_FUZZ_CHECKPOINTS", "")
ONLY_READERS = os.environ.get("ORCH_FUZZ_ONLY_READERS") == "1"
SEED = int(os.environ.get("ORCH_FUZZ_SEED", "20261130"))
RANDOM_CASES = int(os.environ.get("ORCH_FUZZ_RANDOM", "120"))

EXP = {"name": "fuzz", "datasets": {"d": {"kind": "lh", "size": 64, "synthetic": {"count": 12, "seed": 5, "size": 64}}},
       "networks": ["hybridgnet", "unet", "ours"], "seeds": [1],
       "training": {"epochs": 2, "threads": 1, "loader_threads": 1, "device": "cpu", "checkpoint_every": 1,
                    "keep_checkpoints": 3}}


def orch(*args, check=True):
    p = subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, timeout=300)
    assert p.returncode >= 0, f"orchestrator {' '.join(map(str, args))} died by signal {-p.returncode}:\n{p.stderr}"
    if check and p.returncode != 0:
        raise AssertionError(f"orchestrator {' '.join(map(str, args))} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


def make_bases(tmp):
    """A trained workspace: its data set, a predictions file and a checkpoint of HybridGNet."""
    exp = os.path.join(tmp, "exp.json")
    ws = os.path.join(tmp, "ws")
    with open(exp, "w") as f:
        json.dump(dict(EXP, workspace=ws), f)
    orch("submit", exp, "--workers", "1")
    (run_dir,) = glob.glob(os.path.join(ws, "runs", "hybridgnet.*"))
    return exp, ws, {"dataset": os.path.join(ws, "datasets", "d.h5"),
                     "predictions": os.path.join(run_dir, "predictions.h5"),
                     "checkpoint": sorted(glob.glob(os.path.join(run_dir, "checkpoints", "ckpt-*.h5")))[-1]}


# Structural mutations, applied with h5py to a copy: (name, function of the open file).
def replace(f, name, data):
    del f[name]
    f[name] = data


def set_attr(name, value):
    return lambda f: f.attrs.__setitem__(name, value)


def del_attr(name):
    return lambda f: f.attrs.__delitem__(name)


def del_obj(name):
    return lambda f: f.__delitem__(name)


DATASET = [
    ("rows_plus_one", lambda f: replace(f, "images", np.zeros((f["images"].shape[0] + 1,) + f["images"].shape[1:], "u1"))),
    ("wider_images", lambda f: replace(f, "images", np.zeros(f["images"].shape[:2] + (f["images"].shape[2] + 8,), "u1"))),
    ("float_images", lambda f: replace(f, "images", f["images"][:].astype("f4"))),
    ("fewer_masks", lambda f: replace(f, "masks", f["masks"][:-1])),
    ("mask_label_7", lambda f: f["masks"].__setitem__((0, 3, 3), 7)),
    ("maps_extra_channel", lambda f: replace(f, "distance_maps", np.zeros(f["distance_maps"].shape[:1] + (3,) + f["distance_maps"].shape[2:], "f4"))),
    ("maps_nan", lambda f: f["distance_maps"].__setitem__((0, 0, 0, 0), np.nan)),
    ("maps_int", lambda f: replace(f, "distance_maps", f["distance_maps"][:].astype("i2"))),
    ("landmarks_rank2", lambda f: replace(f, "landmarks", f["landmarks"][:].reshape(f["landmarks"].shape[0], -1))),
    ("landmarks_wrong_count", lambda f: replace(f, "landmarks", f["landmarks"][:, :-4])),
    ("landmarks_inf", lambda f: f["landmarks"].__setitem__((1, 0, 0), np.inf)),
    ("landmarks_huge", lambda f: f["landmarks"].__setitem__((1, 0, 0), 1e6)),
    ("split_longer", lambda f: replace(f, "split", np.concatenate([f["split"][:], np.zeros(3, "u1")]))),
    ("split_value_9", lambda f: f["split"].__setitem__(0, 9)),
    ("ids_2d", lambda f: replace(f, "ids", np.array([[s] for s in f["ids"].asstr()[:]], dtype=h5py.string_dtype()))),
    ("ids_integers", lambda f: replace(f, "ids", np.arange(f["ids"].shape[0]))),
    ("ids_bytes_2d", lambda f: replace(f, "ids", np.array([[s.encode()] for s in f["ids"].asstr()[:]]))),
    ("size_array", set_attr("size", np.array([64, 64]))),
    ("version_array", set_attr("format_version", np.array([1, 1]))),
    ("kind_array", set_attr("kind", np.array(["lh", "l"], dtype=h5py.string_dtype()))),
    ("kind_unknown", set_attr("kind", "xyz")),
    ("kind_integer", set_attr("kind", 3)),
    ("size_huge", set_attr("size", 10**9)),
    ("size_negative", set_attr("size", -64)),
    ("size_text", set_attr("size", "64")),
    ("version_2", set_attr("format_version", 2)),
    ("no_kind", del_attr("kind")),
    ("no_size", del_attr("size")),
    ("no_images", del_obj("images")),
    ("no_split", del_obj("split")),
    ("no_ids", del_obj("ids")),
    ("images_a_group", lambda f: (f.__delitem__("images"), f.create_group("images"))),
]

PREDICTIONS = [
    ("no_points", del_obj("points")),
    ("masks_oversized", lambda f: replace(f, "masks", np.zeros((f["masks"].shape[0], 74, 74), "u1"))),
    ("masks_more_rows", lambda f: replace(f, "masks", np.zeros((f["masks"].shape[0] + 2, 64, 64), "u1"))),
    ("points_rank2", lambda f: replace(f, "points", f["points"][:].reshape(f["points"].shape[0], -1))),
    ("points_wrong_count", lambda f: replace(f, "points", f["points"][:, :50])),
    ("points_int", lambda f: replace(f, "points", f["points"][:].astype("i4"))),
    ("size_array", set_attr("size", np.array([64, 64]))),
    ("evaluated_both", set_attr("evaluated", "both")),
    ("kind_array", set_attr("kind", np.array(["lh", "l"], dtype=h5py.string_dtype()))),
    ("ids_2d", lambda f: replace(f, "ids", np.array([[s] for s in f["ids"].asstr()[:]], dtype=h5py.string_dtype()))),
    ("no_masks", del_obj("masks")),
    ("version_5", set_attr("format_version", 5)),
]

CHECKPOINT = [
    ("parameter_reshaped", lambda f: (lambda k: replace(f["parameters"], k, f["parameters"][k][:].reshape(-1)))(sorted(f["parameters"])[3])),
    ("parameter_int", lambda f: (lambda k: replace(f["parameters"], k, f["parameters"][k][:].astype("i4")))(sorted(f["parameters"])[0])),
    ("no_parameters", del_obj("parameters")),
    ("missing_parameter", lambda f: f["parameters"].__delitem__(sorted(f["parameters"])[0])),
    ("rng_short", lambda f: replace(f, "rng", np.zeros(10, "u1"))),
    ("epoch_array", set_attr("epoch", np.array([1, 2]))),
    ("criterion_text", set_attr("best_criterion", "abc")),
    ("no_checksum", del_attr("checksum")),
    ("adam_shape", lambda f: replace(f["optimizer/0"], "exp_avg", np.zeros(3, "f4"))),
    ("buffers_a_dataset", lambda f: (f.__delitem__("buffers"), f.__setitem__("buffers", np.zeros(2)))),
]


FNV_OFFSET, FNV_PRIME, MASK = 0xcbf29ce484222325, 0x100000001b3, (1 << 64) - 1


def restamp(path):
    """Recomputes the checksum in a memory-built file's user block after h5py changed it (predictions): the
    structural damage must reach the readers' checks, not only the checksum's."""
    data = bytearray(open(path, "rb").read())
    if data[:8] != b"ORCHSUM1":
        return
    h = FNV_OFFSET
    for byte in data[512:]:
        h = ((h ^ byte) * FNV_PRIME) & MASK
    data[8:16] = (len(data) - 512).to_bytes(8, "little")
    data[16:24] = h.to_bytes(8, "little")
    open(path, "wb").write(bytes(data))


def structural(base, cases, outdir, prefix, stamp=False):
    out = []
    for name, fn in cases:
        path = os.path.join(outdir, f"{prefix}-s-{name}.h5")
        shutil.copy(base, path)
        with h5py.File(path, "r+") as f:
            fn(f)
        if stamp:
            restamp(path)
        out.append(path)
    return out


def random_bytes(base, count, outdir, prefix, rng):
    data = open(base, "rb").read()
    out = []
    for i in range(count):
        b = bytearray(data)
        how = rng.choice(["truncate", "flip", "flip", "zero"])
        if how == "truncate":
            b = b[:rng.randrange(0, len(b))]
        elif how == "flip":
            for _ in range(rng.randint(1, 16)):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        else:
            start = rng.randrange(len(b))
            n = rng.randint(1, 512)
            b[start:start + n] = bytes(len(b[start:start + n]))
        path = os.path.join(outdir, f"{prefix}-r{i:03d}-{how}.h5")
        with open(path, "wb") as f:
            f.write(bytes(b))
        out.append(path)
    return out


def drive(driver, files):
    """Runs a driver over the files; asserts no crash and an outcome line per file naming it on error."""
    p = subprocess.run([driver, *files], capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, ASAN_OPTIONS="detect_leaks=0:abort_on_error=0", UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"))
    assert p.returncode in (0, 1) and p.returncode >= 0, f"{driver} died (exit {p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-6000:]}"
    lines = {l.split(": ", 1)[0]: l for l in p.stdout.splitlines() if ": " in l}
    assert set(lines) >= set(files), "missing outcomes: " + str(sorted(set(files) - set(lines))[:5])
    assert p.returncode == 0, "an error did not name its file:\n" + p.stdout
    return {f: lines[f] for f in files}


def check_structural_refused(outcomes, files):
    accepted = [f for f in files if outcomes[f].endswith(": ok")]
    assert not accepted, "structural damage read as valid: " + ", ".join(os.path.basename(f) for f in accepted)


def test_readers_refuse_every_damaged_file_without_crashing():
    rng = random.Random(SEED)
    with scratch() as tmp:
        exp, ws, bases = make_bases(tmp)
        cases = os.path.join(tmp, "cases")
        os.makedirs(cases)
        ds_s = structural(bases["dataset"], DATASET, cases, "dataset")
        pr_s = structural(bases["predictions"], PREDICTIONS, cases, "predictions", stamp=True)
        ds_r = random_bytes(bases["dataset"], RANDOM_CASES, cases, "dataset", rng)
        pr_r = random_bytes(bases["predictions"], RANDOM_CASES // 2, cases, "predictions", rng)
        shutil.copy(bases["dataset"], os.path.join(cases, "dataset-valid.h5"))
        shutil.copy(bases["predictions"], os.path.join(cases, "predictions-valid.h5"))
        valid = [os.path.join(cases, "dataset-valid.h5"), os.path.join(cases, "predictions-valid.h5")]
        t0 = time.time()
        out = drive(READERS, valid + ds_s + pr_s + ds_r + pr_r)
        assert all(out[v].endswith(": ok") for v in valid), [out[v] for v in valid]
        check_structural_refused(out, ds_s + pr_s)
        n = len(out)
        if not ONLY_READERS:
            ck_s = structural(bases["checkpoint"], CHECKPOINT, cases, "checkpoint")
            ck_r = random_bytes(bases["checkpoint"], RANDOM_CASES // 2, cases, "checkpoint", rng)
            shutil.copy(bases["checkpoint"], os.path.join(cases, "checkpoint-valid.h5"))
            out = drive(CHECKPOINTS, [os.path.join(cases, "checkpoint-valid.h5")] + ck_s + ck_r)
            assert out[os.path.join(cases, "checkpoint-valid.h5")].endswith(": ok")
            check_structural_refused(out, ck_s)
            n += len(out)
        print(f"{n} files read by the drivers in {time.time() - t0:.1f} s")


def test_commands_that_read_damaged_files_end_with_a_clear_error():
    if ONLY_READERS:
        return
    rng = random.Random(SEED + 1)
    with scratch() as tmp:
        exp, ws, bases = make_bases(tmp)
        cases = os.path.join(tmp, "cases")
        os.makedirs(cases)
        # preview reads a data set.
        damaged = structural(bases["dataset"], rng.sample(DATASET, 10), cases, "dataset")
        for path in damaged + random_bytes(bases["dataset"], 5, cases, "dataset", rng):
            p = orch("preview", "--data", path, "--out", path + ".png", check=False)
            # A random flip may land in pixel data and leave a readable file (exit 0); damage is named.
            assert p.returncode in (1, 2) or (p.returncode == 0 and path not in damaged), (os.path.basename(path), p.returncode, p.stderr)
            assert p.returncode == 0 or path in p.stderr, (os.path.basename(path), p.stderr)
        # report reads predictions for its figure: the run loses its panel with a warning, the tables are written.
        (run_dir,) = glob.glob(os.path.join(ws, "runs", "hybridgnet.*"))
        target = os.path.join(run_dir, "predictions.h5")
        base = os.path.join(cases, "predictions-base.h5")
        shutil.copy(target, base)
        for path in structural(base, PREDICTIONS, cases, "predictions", stamp=True)[:8] + \
                random_bytes(base, 4, cases, "predictions", rng):
            shutil.copy(path, target)
            tables = os.path.join(ws, "report", "tables.md")
            if os.path.exists(tables):
                os.remove(tables)
            p = orch("report", exp, check=False)
            assert p.returncode == 0, (os.path.basename(path), p.returncode, p.stderr)
            assert os.path.exists(tables)
            if "left out of the qualitative figure" in p.stdout:
                assert target in p.stdout, p.stdout
        shutil.copy(base, target)
        # The worker reads the dependency's best checkpoint: with it and its copy damaged, exit 2 naming them.
        (unet_dir,) = glob.glob(os.path.join(ws, "runs", "unet.*"))
        (ours_dir,) = glob.glob(os.path.join(ws, "runs", "ours.*"))
        ours_id = os.path.basename(ours_dir)
        for name in ("best.h5", "best.copy.h5"):
            best = os.path.join(unet_dir, "checkpoints", name)
            with open(best, "r+b") as f:
                f.seek(os.path.getsize(best) // 2)
                f.write(os.urandom(64))
        import sqlite3
        db = sqlite3.connect(os.path.join(ws, "orchestrator.db"))
        db.execute("UPDATE runs SET state = 'failed', claim_attempt = NULL WHERE run_id = ?", (ours_id,))
        db.commit()
        p = orch("worker", "--workspace", ws, "--run", ours_id, check=False)
        assert p.returncode in (1, 2) and os.path.join(unet_dir, "checkpoints") in p.stderr, (p.returncode, p.stderr)
        (reason,) = db.execute("SELECT reason FROM attempts WHERE run_id = ? ORDER BY attempt_id DESC LIMIT 1", (ours_id,)).fetchone()
        assert "\n" not in reason and len(reason) <= 400 and "best" in reason, reason

if __name__ == "__main__":
    assert READERS, "ORCH_FUZZ_READERS is not set"
    run([test_readers_refuse_every_damaged_file_without_crashing, test_commands_that_read_damaged_files_end_with_a_clear_error])
