#!/usr/bin/env bash
# Runs the C++ data kernels and the reference's Python way on the same inputs, one after the other.
# Usage: bench/run_kernels.sh [build dir]
set -euo pipefail
build=${1:-build}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
echo "== C++ (orchestrator, 1 thread)"
"$build/bench/bench_kernels" 15 "$dir"
echo "== Python reference (scikit-image $(/usr/bin/python3 -c 'import skimage; print(skimage.__version__)'), scipy $(/usr/bin/python3 -c 'import scipy; print(scipy.__version__)'))"
/usr/bin/python3 "$(dirname "$0")/reference_kernels.py" "$dir" 5
