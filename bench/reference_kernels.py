#!/usr/bin/python3
"""The reference's Python way of the three data kernels, timed on the inputs bench_kernels dumped:
distance maps (scikit-image canny sigma 2 + scipy's exact EDT; the reference's scikit-fmm is not packaged in
Debian and is slower than the EDT), metrics the medpy way (scipy erosion + EDT with voxel spacing) for lungs
and heart, and one training augmentation (skimage resize with anti-aliasing, crop/pad, rotate, gamma LUT,
noise) of image, mask and both maps, as J/utils/dataLoader_XR.py does it.
Usage: reference_kernels.py DIR [repeats]"""
import sys
import time

import numpy as np
from scipy import ndimage as ndi
from skimage import io, transform
from skimage.feature import canny

d = sys.argv[1]
repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 5
mask = io.imread(f"{d}/mask.png")
image = io.imread(f"{d}/image.png")
pred = [io.imread(f"{d}/pred_lungs.png") > 0, io.imread(f"{d}/pred_heart.png") > 0]
landmarks = np.load(f"{d}/landmarks.npy")
CROSS = ndi.generate_binary_structure(2, 1)


def distance_maps():
    out = []
    for label in (1, 2):
        e = canny((mask == label).astype(float), sigma=2, low_threshold=0.5, high_threshold=1.5)
        dist = ndi.distance_transform_edt(~e)
        out.append(dist / dist.max())
    return np.stack(out, -1)


def hd(a, b):
    ba = a ^ ndi.binary_erosion(a, structure=CROSS, border_value=0)
    bb = b ^ ndi.binary_erosion(b, structure=CROSS, border_value=0)
    da = ndi.distance_transform_edt(~bb, sampling=0.35)[ba]
    db = ndi.distance_transform_edt(~ba, sampling=0.35)[bb]
    return max(da.max(), db.max())


def metrics():
    truth = [mask == 1, mask == 2]
    out = []
    for p, t in zip(pred, truth):
        inter = (p & t).sum()
        out.append((2 * inter / (p.sum() + t.sum()), inter / (p | t).sum(), hd(p, t)))
    return out


maps = distance_maps()
rng = np.random.default_rng(0)


def augment():
    img, msk, sdf, lm = image / 255.0, mask.astype(float), 1 - maps, landmarks.copy()
    h, w = img.shape
    wb, hb = np.ptp(lm[:, 0]), np.ptp(lm[:, 1])
    sx, sy = rng.uniform(0.8, w / wb), rng.uniform(0.8, h / hb)
    nh, nw = round(h * sy), round(w * sx)
    img = transform.resize(img, (nh, nw), anti_aliasing=True)
    msk = transform.resize(msk, (nh, nw), anti_aliasing=True)
    sdf = transform.resize(sdf, (nh, nw), anti_aliasing=True)
    lm = lm * [sx, sy]

    def fit(a, n, axis):
        if n > 1024:
            a = np.take(a, range(0, 1024), axis=axis)
        elif n < 1024:
            pad = [(0, 0)] * a.ndim
            p0 = (1024 - n) // 2
            pad[axis] = (p0, 1024 - n - p0)
            a = np.pad(a, pad)
        return a
    img, msk, sdf = (fit(fit(a, nh, 0), nw, 1) for a in (img, msk, sdf))
    angle = rng.uniform(-3, 3)
    img = transform.rotate(img, angle)
    msk = transform.rotate(msk, angle)
    sdf = transform.rotate(sdf, angle)
    gamma = rng.uniform(0.6, 1.2)
    table = np.array([((i / 255.0) ** (1.0 / gamma)) * 255 for i in range(256)]).astype(np.uint8)
    img = table[(img * 255).astype(np.uint8)] / 255.0 + rng.normal(0, 1 / 128, img.shape)
    return img, msk.astype(np.int64), 1 - sdf, lm


def time_it(name, fn):
    fn()
    ms = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t0) * 1000)
    ms.sort()
    print(f"{name:<28} median {ms[len(ms) // 2]:8.2f} ms   min {ms[0]:8.2f} ms   ({repeats} runs)")


time_it("distance_maps_1024_lh", distance_maps)
time_it("metrics_1024_lungs_heart", metrics)
time_it("augment_1024_lh", augment)
