#!/usr/bin/env bash
# Training-step and inference timings of every network (one process per configuration, so the peak memory is
# that configuration's), then Ours against PyTorch eager on the same machine.
# Usage: bench/run_models.sh [build dir] [sizes, default "256 1024"] [models, default all]
set -euo pipefail
build=${1:-build}
sizes=${2:-"256 1024"}
models=${3:-"hybridgnet hybridgnet_igsc unet unet_joint hourglass hourglass_concat multitask no_joint mse_only rasterize ours"}
tunables=glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=4294967295
for size in $sizes; do
  steps=3; [ "$size" -ge 1024 ] && steps=2
  for m in $models; do
    for t in 1 2; do "$build/bench/bench_models" "$m" "$size" 4 "$t" "$steps"; done
  done
done
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  echo "python3-torch is missing: apt-get install python3-torch to compare with PyTorch eager"; exit 0
fi
for size in $sizes; do
  steps=3; [ "$size" -ge 1024 ] && steps=2
  for t in 1 2; do
    "$build/bench/bench_models" ours "$size" 4 "$t" "$steps"
    echo -n "(malloc tuned) "; GLIBC_TUNABLES=$tunables /usr/bin/python3 "$(dirname "$0")/pytorch_ours.py" "$size" 4 "$t" "$steps"
    echo -n "(default)      "; /usr/bin/python3 "$(dirname "$0")/pytorch_ours.py" "$size" 4 "$t" "$steps"
  done
done
