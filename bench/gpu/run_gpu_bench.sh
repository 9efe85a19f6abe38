#!/bin/bash
# Issue 15's GPU benchmark, in one run on a lent GPU machine (device side; output under $OUT):
#   here:  scripts/carry-deps .carry/deps.tar.gz   (the worker's non-LibTorch libraries; .carry is git-ignored)
#   there: bash bench/gpu/run_gpu_bench.sh          (run tool, carry [".carry"], timeout about 600 s)
# It builds bench/gpu_bench against that machine's PyTorch LibTorch (CUDA), runs it at 1024² (parts 1-5, see
# bench/gpu_bench.cpp), then bench/pytorch_ours.py's Ours step in that machine's own PyTorch (eager) at 1024²,
# batch 4, in fp32, tf32 and bf16. GB_ARGS adds options (e.g. "--only steps,epoch"); GB_TIMEOUT bounds the run.
# Dry run on a CPU machine: GB_DRY=1 bash bench/gpu/run_gpu_bench.sh (the main build's gpu_bench, 64², quick).
set -u
OUT=${OUT:-/tmp/gpu_bench_out}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
date
if [ "${GB_DRY:-0}" = 1 ]; then
  BIN=${GB_BIN:-build/bench/gpu_bench}
  time "$BIN" /tmp/gb_dry --size 64 --steps 2 --warmup 1 --quick ${GB_ARGS:-}
  echo "gpu_bench rc=$?"
  /usr/bin/python3 bench/pytorch_ours.py 64 4 2 3 cpu fp32 || echo "pytorch_ours: no PyTorch here (apt install python3-torch)"
  cp /tmp/gb_dry/gpu_bench.json /tmp/gb_dry/calibration_*.json "$OUT/" 2>/dev/null
  exit 0
fi
nvidia-smi -L; nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv
nproc
TP=$(python3 -c "import torch;print(torch.utils.cmake_prefix_path)")
echo "torch $(python3 -c "import torch;print(torch.__version__, torch.version.cuda)") at $TP"
NC=$(python3 -c "import nvidia.nccl, os; print(os.path.dirname(nvidia.nccl.__file__) if nvidia.nccl.__file__ else list(nvidia.nccl.__path__)[0])" 2>/dev/null)
mkdir -p /tmp/deps && tar xzf "${DEPS_TAR:-.carry/deps.tar.gz}" -C /tmp/deps || exit 3
NCCL_ARGS=""
if [ ! -e /usr/local/cuda/include/nccl.h ] && [ -n "$NC" ]; then
  NCCL_ARGS="-DNCCL_INCLUDE_DIR=$NC/include -DNCCL_LIBRARY=$(ls $NC/lib/libnccl.so* | head -1)"
fi
CAP=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)
cmake -S . -B /tmp/b -G Ninja -DCMAKE_PREFIX_PATH="$TP" -DORCH_DEPS_DIR=/tmp/deps -DORCH_BUILD_CLI=OFF \
  -DORCH_BUILD_TESTS=OFF -DTORCH_CUDA_ARCH_LIST="${CAP:0:1}.${CAP:1}" -DCMAKE_CUDA_ARCHITECTURES="$CAP" $NCCL_ARGS 2>&1 | tail -5
time ninja -C /tmp/b -j "$(nproc)" gpu_bench 2>&1 | grep -E "error|FAILED" -A4 | head -60
ls -la /tmp/b/bench/gpu_bench || exit 4
TL=$(python3 -c "import torch,os;print(os.path.join(os.path.dirname(torch.__file__),'lib'))")
export LD_LIBRARY_PATH=/tmp/deps/lib:$TL:${NC:+$NC/lib}
time timeout "${GB_TIMEOUT:-420}" /tmp/b/bench/gpu_bench /tmp/gb --size 1024 ${GB_ARGS:-}
echo "gpu_bench rc=$?"
for p in fp32 tf32 bf16; do timeout 60 python3 bench/pytorch_ours.py 1024 4 "$(nproc)" 10 cuda "$p"; done
cp /tmp/gb/gpu_bench.json /tmp/gb/calibration_*.json "$OUT/" 2>/dev/null
nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv
