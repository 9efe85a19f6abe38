#!/usr/bin/env bash
# Training-step and inference timings of every network on Debian's reference BLAS against OpenBLAS (the
# libblas.so.3 that LibTorch calls), chosen per process through LD_LIBRARY_PATH, so nothing system-wide changes.
# Usage: bench/run_blas.sh [build dir] [sizes, default "64 256"] [threads, default 1] [models, default all]
set -euo pipefail
build=${1:-build}
sizes=${2:-"64 256"}
threads=${3:-1}
models=${4:-"hybridgnet hybridgnet_igsc unet unet_joint hourglass hourglass_concat multitask no_joint mse_only rasterize ours"}
arch=/usr/lib/x86_64-linux-gnu
for size in $sizes; do
  steps=10; [ "$size" -ge 256 ] && steps=3
  for m in $models; do
    for dir in "$arch/blas" "$arch/openblas-openmp" "$arch/openblas-pthread"; do
      [ -e "$dir/libblas.so.3" ] || continue
      echo -n "$(basename "$dir") "
      LD_LIBRARY_PATH=$dir ORCH_BENCH_SPLIT=1 "$build/bench/bench_models" "$m" "$size" 4 "$threads" "$steps" | tr '\n' ' '
      echo
    done
  done
done
