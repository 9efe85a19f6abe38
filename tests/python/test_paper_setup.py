"""experiments/paper.json as a user who clones the repository meets it: its default paths are inside the
repository (data/...), so plan works and prepare names every missing folder; pointed at the real annotations
(../shared/data here) with stand-in images, prepare builds both data sets with the paper's sizes and splits."""
import json
import os
import shutil
import subprocess

from common import BIN, SHARED, SOURCE, run, scratch


def fresh_clone(tmp):
    """The repository's tracked files that matter here, as a clone has them: experiments/ and data/ (no
    ../shared next to it)."""
    root = os.path.join(tmp, "clone")
    files = subprocess.run(["git", "-C", SOURCE, "ls-files", "experiments", "data"], capture_output=True, text=True,
                           check=True).stdout.split()
    untracked = subprocess.run(["git", "-C", SOURCE, "ls-files", "--others", "--exclude-standard", "experiments", "data"],
                               capture_output=True, text=True, check=True).stdout.split()
    for f in files + untracked:
        os.makedirs(os.path.dirname(os.path.join(root, f)), exist_ok=True)
        shutil.copy(os.path.join(SOURCE, f), os.path.join(root, f))
    return root


def orch_in(cwd, *args):
    return subprocess.run([BIN, *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def test_default_paths_are_inside_the_repository_and_missing_ones_are_named():
    with scratch() as tmp:
        root = fresh_clone(tmp)
        assert "../shared" not in open(os.path.join(root, "experiments", "paper.json")).read()
        p = orch_in(root, "plan", "experiments/paper.json")
        assert p.returncode == 0 and "66 run(s)" in p.stdout, (p.returncode, p.stdout[-500:], p.stderr)
        assert "data/raw/JSRT (raw_jsrt): missing" in p.stderr, p.stderr
        p = orch_in(root, "prepare", "experiments/paper.json")
        assert p.returncode == 2, (p.returncode, p.stderr)
        for folder in ("data/landmarks", "data/raw/JSRT", "data/raw/Padchest", "data/raw/Montgomery", "data/raw/Shenzhen"):
            assert folder in p.stderr, (folder, p.stderr)
        assert "data/splits" not in p.stderr, "the split lists ship with the repository"
        assert "shared" not in p.stderr


def test_pointed_at_the_annotations_with_stand_in_images_prepare_builds_the_papers_data_sets():
    landmarks = os.path.join(SHARED, "data", "chest-xray-landmarks")
    if not os.path.isdir(landmarks):
        print("skip: ../shared/data is not on this machine")
        return
    with scratch() as tmp:
        root = fresh_clone(tmp)
        sets = []
        for ds in ("jsrt_padchest", "montgomery_shenzhen"):
            sets += ["--set", f"datasets.{ds}.landmarks={landmarks}", "--set", f"datasets.{ds}.raw_png=null",
                     "--set", f"datasets.{ds}.blank_images=true", "--set", f"datasets.{ds}.size=64"]
        sets += ["--set", "datasets.jsrt_padchest.raw_jsrt=null"]
        p = orch_in(root, "prepare", "experiments/paper.json", "--workspace", os.path.join(tmp, "ws"), *sets)
        assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
        assert "data set jsrt_padchest: lh, 64 px, 383 images: 267 train / 58 val / 58 test" in p.stdout, p.stdout
        assert "data set montgomery_shenzhen: l, 64 px, 528 images: 369 train / 80 val / 79 test" in p.stdout, p.stdout
        # A split list naming an id without landmarks: prepare names the missing files.
        lists = os.path.join(root, "data", "splits", "Montgomery", "test_list.txt")
        with open(lists, "a") as f:
            f.write("\nMCUCXR_9999_0\nMCUCXR_9998_1\n")
        p = orch_in(root, "prepare", "experiments/paper.json", "--workspace", os.path.join(tmp, "ws2"), *sets)
        assert p.returncode == 2 and "RL/MCUCXR_9999_0.npy" in p.stderr and "RL/MCUCXR_9998_1.npy" in p.stderr, p.stderr


if __name__ == "__main__":
    run([test_default_paths_are_inside_the_repository_and_missing_ones_are_named,
         test_pointed_at_the_annotations_with_stand_in_images_prepare_builds_the_papers_data_sets])
