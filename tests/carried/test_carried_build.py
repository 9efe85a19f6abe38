"""The no-apt path of a GPU node (issue 22, docs/gpu-clusters.md), on this machine: scripts/carry-deps packs the
libraries, scripts/setup-gpu-node builds the whole orchestrator with them while the system's development headers,
CMake packages and pkg-config files of those libraries are out of reach (hidden in a private mount namespace), and
the result, started without LD_LIBRARY_PATH, trains a run and writes its report with figures.

LibTorch stays the system's (Debian's, standing in for PyTorch's on a node), and so do MPI (a cluster's module),
the compiler and CMake. Where no mount namespace can be made, the headers each object was compiled from (ninja's
dependency log) are still checked to come from the carried folder. Takes one full build (about 6 minutes here)."""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
from common import SOURCE, run, scratch  # noqa: E402

ARCH = "/usr/lib/x86_64-linux-gnu"
# What a machine without these libraries' -dev packages lacks: headers, CMake packages, pkg-config files.
HIDDEN = ["/usr/include/boost", "/usr/include/hdf5", "/usr/include/opencv4", "/usr/include/x86_64-linux-gnu/opencv4",
          "/usr/include/cairo", "/usr/include/nlohmann", "/usr/include/libpng16", "/usr/include/sqlite3.h",
          "/usr/include/sqlite3ext.h", "/usr/include/png.h", "/usr/include/pngconf.h", "/usr/include/pnglibconf.h",
          f"{ARCH}/cmake/Boost-1.74.0", f"{ARCH}/cmake/boost_program_options-1.74.0", f"{ARCH}/cmake/hdf5",
          "/usr/share/cmake/nlohmann_json", f"{ARCH}/pkgconfig/cairo.pc", f"{ARCH}/pkgconfig/libpng16.pc",
          f"{ARCH}/pkgconfig/sqlite3.pc", f"{ARCH}/pkgconfig/hdf5-serial.pc", f"{ARCH}/pkgconfig/opencv4.pc",
          "/usr/share/pkgconfig/nlohmann_json.pc"]
CARRIED_HEADER = ("/usr/include/boost/", "/usr/include/hdf5/", "/usr/include/opencv4/", "/usr/include/cairo/",
                  "/usr/include/nlohmann/", "/usr/include/libpng16/", "/usr/include/sqlite3", "/usr/include/png")

EXP = {
    "name": "carried",
    "datasets": {"d": {"kind": "lh", "size": 64, "synthetic": {"count": 40, "seed": 5, "size": 64}}},
    "networks": ["unet"],
    "seeds": [1],
    "training": {"epochs": 2, "threads": 1, "loader_threads": 1, "device": "cpu"},
}


def hide_script():
    """Shell lines that hide each existing path of HIDDEN: an empty tmpfs over a folder, /dev/null over a file."""
    files = [f"mount --bind /dev/null '{os.path.realpath(p)}'" for p in HIDDEN if os.path.isfile(p)]
    dirs = [f"mount -t tmpfs none '{p}'" for p in HIDDEN if os.path.isdir(p)]
    return "\n".join(files + dirs)  # files first: some are links into the folders


def namespace_prefix():
    """unshare's arguments for a private mount namespace, or None where this machine allows none."""
    for args in (["unshare", "-m"], ["unshare", "-rm"]):
        if shutil.which("unshare") and subprocess.run(args + ["mount", "-t", "tmpfs", "none", "/mnt"],
                                                      capture_output=True).returncode == 0:
            return args
    return None


def build(tmp):
    deps = os.path.join(tmp, "deps.tar.gz")
    subprocess.run([os.path.join(SOURCE, "scripts", "carry-deps"), deps], check=True)
    build_dir = os.path.join(tmp, "build")
    env = dict(os.environ, BUILD_DIR=build_dir, TORCH_CMAKE_PREFIX=f"{ARCH}/cmake", ORCH_BUILD_BENCH="OFF",
               BUILD_JOBS=os.environ.get("BUILD_JOBS", "2"))
    env.pop("LD_LIBRARY_PATH", None)
    setup = os.path.join(SOURCE, "scripts", "setup-gpu-node")
    ns = namespace_prefix()
    if ns:
        script = f"set -e\n{hide_script()}\n[ ! -e /usr/include/boost/version.hpp ]\nexec '{setup}' '{deps}'\n"
        p = subprocess.run(ns + ["bash", "-c", script], env=env, capture_output=True, text=True)
    else:
        print("no mount namespace here: the build sees the system's headers; only the dependency log is checked")
        p = subprocess.run([setup, deps], env=env, capture_output=True, text=True)
    assert p.returncode == 0, f"setup-gpu-node exited {p.returncode}:\n{p.stdout[-6000:]}\n{p.stderr[-6000:]}"
    assert "cuda_available" in p.stdout, p.stdout[-3000:]  # it ends with `orchestrator doctor`
    return build_dir, os.path.join(build_dir, "carried-deps")


def check_headers(build_dir):
    """Every header of a carried library that any object was compiled from lies in the carried folder."""
    deps = subprocess.run(["ninja", "-C", build_dir, "-t", "deps"], capture_output=True, text=True, check=True).stdout
    used = {line.strip() for line in deps.splitlines() if line.startswith(" ")}
    system = sorted(h for h in used if h.startswith(CARRIED_HEADER))
    assert not system, f"compiled from the system's headers: {system[:10]}"
    carried = [h for h in used if "/carried-deps/include/" in h]
    for name in ("boost/program_options.hpp", "cairo/cairo.h", "hdf5/hdf5.h", "sqlite3.h", "nlohmann/json.hpp"):
        assert any(h.endswith(name) for h in carried), f"no object includes the carried {name}"


def check_libraries(exe, lib_dir):
    """An RPATH to the carried folder, and each carried library loaded from there with no LD_LIBRARY_PATH."""
    dyn = subprocess.run(["readelf", "-d", exe], capture_output=True, text=True, check=True).stdout
    rpath = [line for line in dyn.splitlines() if "(RPATH)" in line]
    assert rpath and lib_dir in rpath[0], f"no RPATH to {lib_dir}:\n{dyn}"
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    ldd = subprocess.run(["ldd", exe], capture_output=True, text=True, check=True, env=env).stdout
    resolved = dict(line.split()[0::2][:2] for line in ldd.splitlines() if "=>" in line and len(line.split()) >= 3)
    carried = set(os.listdir(lib_dir))
    for soname in ("libhdf5_serial.so.103", "libsqlite3.so.0", "libboost_program_options.so.1.74.0", "libcairo.so.2",
                   "libpixman-1.so.0", "libpng16.so.16"):
        assert soname in carried, f"{soname} is not carried: {sorted(carried)}"
        assert resolved.get(soname, "").startswith(lib_dir), f"{soname} loads from {resolved.get(soname)}"


def check_runs(tmp, exe):
    """The carried build trains a run through the local pool (`orchestrator run` execs orchestrator-torch, whose pool
    starts itself) and reports it."""
    exp = os.path.join(tmp, "exp.json")
    with open(exp, "w") as f:
        json.dump(dict(EXP, workspace=os.path.join(tmp, "ws")), f)
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    p = subprocess.run([exe, "run", exp], capture_output=True, text=True, env=env, timeout=900)
    assert p.returncode == 0, f"run exited {p.returncode}:\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}"
    report = os.path.join(tmp, "ws", "report")
    pngs = [f for _, _, fs in os.walk(report) for f in fs if f.endswith(".png")]
    assert pngs, f"the report has no figure: {os.listdir(report)}"
    with open(os.path.join(report, "report.html")) as f:
        assert "unet" in f.read().lower()


def test_the_whole_command_builds_from_carried_libraries_and_trains_a_run():
    with scratch() as tmp:
        build_dir, deps = build(tmp)
        check_headers(build_dir)
        exe = os.path.join(build_dir, "cli", "orchestrator")
        for each in (exe, os.path.join(build_dir, "cli", "orchestrator-torch")):  # the command and what it execs
            check_libraries(each, os.path.join(deps, "lib"))
        check_runs(tmp, exe)


if __name__ == "__main__":
    run([test_the_whole_command_builds_from_carried_libraries_and_trains_a_run])
