#!/usr/bin/python3
"""synth -> prepare -> h5py: shapes, dtypes, chunking, attributes; landmarks equal the .npy values / size."""
import json
import os

import h5py
import numpy as np
from skimage import io

from common import orch, run, scratch


def check_roundtrip(kind, classes, points):
    with scratch() as d:
        src, out = os.path.join(d, "src"), os.path.join(d, "data.h5")
        orch("synth", "--kind", kind, "--count", 12, "--size", 96, "--seed", 5, "--out", src)
        orch("prepare", "--out", out, "--size", 96, "--landmarks", f"{src}/landmarks", "--images", f"{src}/images",
             "--splits", f"{src}/splits")
        with h5py.File(out, "r") as f:
            n = 12
            assert f["images"].shape == (n, 96, 96) and f["images"].dtype == np.uint8
            assert f["masks"].shape == (n, 96, 96) and f["masks"].dtype == np.uint8
            assert f["distance_maps"].shape == (n, classes, 96, 96) and f["distance_maps"].dtype == np.float32
            assert f["landmarks"].shape == (n, points, 2) and f["landmarks"].dtype == np.float32
            assert f["split"].shape == (n,) and f["split"].dtype == np.uint8
            assert f["images"].chunks == (1, 96, 96), f["images"].chunks
            assert f["distance_maps"].chunks == (1, classes, 96, 96)
            ids = [s.decode() if isinstance(s, bytes) else s for s in f["ids"][...]]
            assert ids == sorted(ids) and len(ids) == n
            assert f.attrs["format_version"] == 1
            text = lambda v: v.decode() if isinstance(v, bytes) else v  # fixed-length strings: bytes in h5py
            assert text(f.attrs["kind"]) == kind and f.attrs["size"] == 96
            organs = ["RL", "LL", "H"] if kind == "lh" else ["RL", "LL"]
            assert list(f.attrs["organs"]) == organs, f.attrs["organs"]
            assert list(f.attrs["points_per_organ"]) == [44, 50, 26][: len(organs)]
            assert len(text(f.attrs["content_digest"])) == 16
            json.loads(text(f.attrs["sources"]))
            for split, code in (("train", 0), ("val", 1), ("test", 2)):
                listed = open(f"{src}/splits/{split}.txt").read().split()
                assert sorted(listed) == [ids[i] for i in np.where(f["split"][...] == code)[0]]
            for i, sid in enumerate(ids):
                want = np.concatenate([np.load(f"{src}/landmarks/{o}/{sid}.npy") for o in organs]) / 96.0
                got = f["landmarks"][i]
                assert np.allclose(got, want.astype(np.float32), atol=1e-6), (sid, np.abs(got - want).max())
                img = io.imread(f"{src}/images/{sid}.png")
                assert np.array_equal(f["images"][i], img)
                s = f["distance_maps"][i]
                assert s.min() == 0.0 and abs(s.max() - 1.0) < 1e-6
                labels = set(np.unique(f["masks"][i]).tolist())
                assert labels <= set(range(classes + 1)) and 1 in labels


def test_roundtrip_lh():
    check_roundtrip("lh", 2, 120)


def test_roundtrip_l():
    check_roundtrip("l", 1, 94)


def test_same_seed_same_bytes():
    with scratch() as d:
        for name in ("a", "b"):
            orch("synth", "--kind", "lh", "--count", 5, "--size", 64, "--seed", 8, "--out", os.path.join(d, name))
        for rel in ("images/synlh_0004.png", "landmarks/H/synlh_0001.npy", "splits/val.txt"):
            assert open(os.path.join(d, "a", rel), "rb").read() == open(os.path.join(d, "b", rel), "rb").read(), rel


if __name__ == "__main__":
    run([test_roundtrip_lh, test_roundtrip_l, test_same_seed_same_bytes])
