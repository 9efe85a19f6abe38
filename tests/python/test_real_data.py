#!/usr/bin/python3
"""The real annotations of ../shared/data: both combined data sets prepare with the reference's sizes and
splits (blank stand-in images, the X-rays are not public), and the distance maps agree with the reference's
definition (scikit-image Canny sigma 2, thresholds 0.5/1.5, then an exact EDT) to within 1.5 px: the default
(ported Canny) to float precision, the --edges boundary option to within 2.5 px (measured: 2 px).
Exits 77 (skipped) when ../shared/data is absent."""
import os
import sys

import h5py
import numpy as np
from scipy import ndimage as ndi
from skimage.feature import canny

from common import SHARED, orch, run, scratch

DATA = os.path.join(SHARED, "data")
LANDMARKS = os.path.join(DATA, "chest-xray-landmarks")
SPLITS = os.path.join(DATA, "splits")


def prepare(d, name, splits, size, *extra):
    out = os.path.join(d, name + ".h5")
    args = ["prepare", "--out", out, "--size", size, "--landmarks", LANDMARKS, "--blank-images", *extra]
    for s in splits:
        args += ["--splits", os.path.join(SPLITS, s)]
    orch(*args)
    return out


def counts(path):
    with h5py.File(path, "r") as f:
        s = f["split"][...]
        kind = f.attrs["kind"]
        kind = kind.decode() if isinstance(kind, bytes) else kind  # fixed-length strings read as bytes
        return kind, len(s), [int((s == k).sum()) for k in range(3)], f["landmarks"].shape


def test_jsrt_padchest():
    with scratch() as d:
        kind, n, split, shape = counts(prepare(d, "lh", ["JSRT_Padchest"], 64))
        assert kind == "lh" and n == 383 and split == [267, 58, 58] and shape == (383, 120, 2), (kind, n, split, shape)


def test_montgomery_shenzhen():
    with scratch() as d:
        kind, n, split, shape = counts(prepare(d, "l", ["Montgomery", "Shenzen"], 64))
        assert kind == "l" and n == 528 and split == [369, 80, 79] and shape == (528, 94, 2), (kind, n, split, shape)


def test_landmarks_are_the_real_ones_normalised():
    with scratch() as d:
        path = prepare(d, "l", ["Montgomery"], 64)
        with h5py.File(path, "r") as f:
            ids = [s.decode() if isinstance(s, bytes) else s for s in f["ids"][...]]
            for i in (0, 57, len(ids) - 1):
                want = np.concatenate([np.load(f"{LANDMARKS}/{o}/{ids[i]}.npy") for o in ("RL", "LL")]) / 1024.0
                assert np.allclose(f["landmarks"][i], want, atol=1e-6)


def reference_map(mask, label):
    edges = canny((mask == label).astype(float), sigma=2, low_threshold=0.5, high_threshold=1.5)
    d = ndi.distance_transform_edt(~edges)
    return d / d.max(), d.max()


def test_distance_maps_agree_with_canny_edt():
    ids = [l.strip().rsplit(".", 1)[0] for l in open(os.path.join(SPLITS, "JSRT_Padchest", "test_files.txt")) if l.strip()]
    ids = ids[:4] + ids[-2:]  # JSRT and Padchest cases
    with scratch() as d:
        sub = os.path.join(d, "sub")
        os.makedirs(sub)
        open(os.path.join(sub, "test.txt"), "w").write("\n".join(ids) + "\n")
        canny_h5 = prepare(d, "canny", [sub], 1024)
        boundary_h5 = prepare(d, "boundary", [sub], 1024, "--edges", "boundary")
        worst = {"canny": 0.0, "boundary": 0.0}
        with h5py.File(canny_h5, "r") as fc, h5py.File(boundary_h5, "r") as fb:
            for i in range(len(ids)):
                mask = fc["masks"][i]
                assert np.array_equal(mask, fb["masks"][i])
                for c, label in ((0, 1), (1, 2)):
                    ref, far = reference_map(mask, label)
                    for name, f in (("canny", fc), ("boundary", fb)):
                        err_px = float(np.abs(f["distance_maps"][i, c] - ref).max() * far)
                        worst[name] = max(worst[name], err_px)
        print("largest difference to skimage canny + exact EDT over %d real cases: default (canny) %.4f px, "
              "boundary %.3f px" % (len(ids), worst["canny"], worst["boundary"]))
        # The default is the reference's definition (float32 storage aside); the boundary option stays close.
        assert worst["canny"] <= 1.5 and worst["canny"] < 0.01, worst
        assert worst["boundary"] <= 2.5, worst


if __name__ == "__main__":
    if not os.path.isdir(LANDMARKS):
        print(f"skipped: {LANDMARKS} not present")
        sys.exit(77)
    run([test_jsrt_padchest, test_montgomery_shenzhen, test_landmarks_are_the_real_ones_normalised,
         test_distance_maps_agree_with_canny_edt])
